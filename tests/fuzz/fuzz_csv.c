/*
 * fuzz_csv.c: the CSV import of nodes and accounts (`hookd node import`,
 * `hookd account import`): the RFC 4180 reader and the row rules of
 * state/accounts.c, applied as HK_OP_TREE_IMPORT to a real store in a
 * temporary directory (on /dev/shm when there is one, so commits are cheap).
 *
 * The first input byte picks nodes or accounts; the rest is the file. An
 * import is one transaction: when it fails, it names a line and nothing of
 * it is stored; when it succeeds, it stored at most one row per line.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "store.h"

static char dir[256];
static hk_store *store;
static unsigned long inputs;

static int count_node(const hk_node *n, void *arg)
{
    (void)n;
    (*(size_t *)arg)++;
    return 0;
}

static int count_account(const hk_account *a, void *arg)
{
    (void)a;
    (*(size_t *)arg)++;
    return 0;
}

static size_t rows(void)
{
    size_t n = 0;
    FUZZ_CHECK(hk_store_nodes_each(store, count_node, &n) == 0);
    FUZZ_CHECK(hk_store_accounts_each(store, count_account, &n) == 0);
    return n;
}

/* Closes the store and removes its files. */
static void discard(void)
{
    char path[320];
    static const char *const files[] = {"data.mdb", "lock.mdb", "lock"};
    hk_store_close(store);
    store = NULL;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        unlink(path);
    }
}

static void remove_dir(void)
{
    discard();
    rmdir(dir);
}

/* A fresh, empty store (the old one's files removed). */
static void reopen(void)
{
    if (store != NULL)
        discard();
    hk_store_opts o = {.data_dir = dir, .map_size = 64u << 20, .max_batch = 1};
    FUZZ_CHECK(hk_store_open(&store, NULL, &o) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/hookd-fuzz-csv-%ld", base, (long)getpid());
    FUZZ_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST);
    atexit(remove_dir);
    reopen();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* Keep the tree small enough that each input costs the same. */
    if (++inputs % 2000 == 0)
        reopen();
    size_t before = rows();
    hk_op op = {.type = HK_OP_TREE_IMPORT, .now_ms = 1700000000000ull};
    op.u.tree_import.accounts = data[0] & 1;
    op.u.tree_import.text = (const char *)data + 1;
    op.u.tree_import.len = size - 1;
    int rc = hk_store_apply(store, &op);
    size_t after = rows();
    if (rc == 0) {
        size_t lines = 1;
        for (size_t i = 1; i < size; i++)
            lines += data[i] == '\n';
        FUZZ_CHECK(op.u.tree_import.count <= lines);
        FUZZ_CHECK(after >= before && after - before <= op.u.tree_import.count);
    } else {
        FUZZ_CHECK(rc == HK_EINVAL);
        FUZZ_CHECK(strncmp(op.u.tree_import.err, "line ", 5) == 0 || op.u.tree_import.err[0] != '\0');
        FUZZ_CHECK(after == before); /* nothing of a failed import is stored */
    }
    return 0;
}
