/*
 * Unit tests of the store engine: the group commit of typed ops on a real
 * libuv loop (done callbacks only after the commit and never inside submit,
 * many ops per commit, a failing op changes nothing and fails nothing else),
 * map growth from a small map, persistence across close and reopen, the
 * data directory's exclusive lock (issue 11 item 8) and the clearing of
 * reader slots left by a killed process (item 20).
 */
#include <signal.h>
#include <sys/wait.h>

#include "kv.h"
#include "state_fixture.h"
#include "tables.h"

#define NSIG_OPS 200

struct sub {
    hk_commit c;
    int status;
    int done;
    int order;
};

static int done_order;

static void sub_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    s->status = status;
    s->done++;
    s->order = done_order++;
}

static void signal_op(hk_op *op, uint64_t now, const char *name, const char *data)
{
    memset(op, 0, sizeof(*op));
    op->type = HK_OP_SIGNAL;
    op->now_ms = now;
    op->u.signal.name = name;
    op->u.signal.data = data;
    op->u.signal.data_len = strlen(data);
    op->u.signal.changes = "[]";
    op->u.signal.changes_len = 2;
}

static void test_group_commit(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fx_mkdir();
    hk_store *s = fx_open(&loop);
    hk_webhook a, b;
    fx_webhook(&a, "a", "g.e", NULL);
    a.extension = hk_strdup("ext-a");
    fx_webhook(&b, "b", "other.e", NULL);
    b.extension = hk_strdup("ext-b");
    uint32_t ida = fx_create(s, &a), idb = fx_create(s, &b);

    struct sub *subs = hk_calloc(NSIG_OPS + 1, sizeof(*subs));
    hk_store_counters before, after;
    hk_store_get_counters(s, &before);
    /* Webhook b tries to take a's extension and move to g.e: it fails, and must leave b as it was. */
    hk_webhook bad;
    hk_webhook_copy(&bad, &b);
    free(bad.extension);
    bad.extension = hk_strdup("ext-a");
    free(bad.events[0]);
    bad.events[0] = hk_strdup("g.e");
    for (int i = 0; i <= NSIG_OPS; i++) {
        if (i == NSIG_OPS / 2) {
            subs[i].c.op.type = HK_OP_WEBHOOK_PUT;
            subs[i].c.op.now_ms = 500;
            subs[i].c.op.u.webhook_put.webhook = &bad;
        } else {
            signal_op(&subs[i].c.op, 1000 + (uint64_t)i, "g.e", "{\"n\":1}");
        }
        subs[i].c.done = sub_done;
        hk_store_submit(s, &subs[i].c);
    }
    CHECK(hk_store_busy(s));
    int early = 0;
    for (int i = 0; i <= NSIG_OPS; i++)
        early += subs[i].done;
    CHECK_INT(early, 0); /* never from inside submit */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!hk_store_busy(s));
    hk_store_get_counters(s, &after);
    uint64_t commits = after.commits - before.commits;
    CHECK_INT(after.ops - before.ops, NSIG_OPS + 1);
    CHECK(commits >= 1 && commits <= NSIG_OPS / 10);
    for (int i = 0; i <= NSIG_OPS; i++) {
        CHECK_INT(subs[i].done, 1);
        CHECK_INT(subs[i].order, i);
        if (i == NSIG_OPS / 2) {
            CHECK_INT(subs[i].status, HK_EEXIST);
        } else {
            CHECK_INT(subs[i].status, 0);
            CHECK_INT(subs[i].c.op.u.signal.nwebhooks, 1);
            CHECK_INT(subs[i].c.op.u.signal.webhooks[0], ida);
            hk_op_free_out(&subs[i].c.op);
        }
    }
    /* Event ids follow the submission order with no gap where the failing op was. */
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, NSIG_OPS, &ev), 0);
    CHECK_INT(ev.ts_ms, 1000 + NSIG_OPS);
    hk_event_free(&ev);
    CHECK_INT(hk_store_event_get(s, NSIG_OPS + 1, &ev), HK_ENOTFOUND);
    /* b is untouched: its extension, its subscription and the extension index. */
    hk_webhook got;
    CHECK_INT(hk_store_webhook_get(s, idb, &got), 0);
    CHECK_STR(got.extension, "ext-b");
    CHECK_STR(got.events[0], "other.e");
    hk_webhook_free(&got);
    uint32_t id;
    CHECK_INT(hk_store_webhook_by_extension(s, "ext-a", &id), 0);
    CHECK_INT(id, ida);
    CHECK_INT(hk_store_webhook_by_extension(s, "ext-b", &id), 0);
    CHECK_INT(id, idb);
    hk_op op;
    CHECK_INT(fx_signal(s, "other.e", 5000, NULL, 1, &op), 0);
    CHECK_INT(op.u.signal.nwebhooks, 1);
    hk_op_free_out(&op);

    /* Persistence: everything is there after a reopen. */
    hk_store_close(s);
    s = fx_open(&loop);
    CHECK_INT(hk_store_event_get(s, 1, &ev), 0);
    CHECK_STR(ev.data, "{\"n\":1}");
    hk_event_free(&ev);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, ida, 99999, &pending, &due), 0);
    CHECK_INT(pending, NSIG_OPS);
    CHECK_INT(hk_store_webhook_get(s, ida, &got), 0);
    CHECK_STR(got.name, "a");
    hk_webhook_free(&got);

    free(subs);
    hk_webhook_free(&a);
    hk_webhook_free(&b);
    hk_webhook_free(&bad);
    hk_store_close(s);
    uv_loop_close(&loop);
    fx_rmdir();
}

/* A full map grows: many large events into a 1 MiB map, in commits and synchronously. */
static void test_map_growth(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fx_mkdir();
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 1u << 20, .max_batch = 16};
    hk_store *s;
    CHECK_INT(hk_store_open(&s, &loop, &o), 0);
    size_t big = 64 * 1024;
    char *data = hk_malloc(big + 1);
    memset(data, 'x', big);
    data[0] = '"';
    data[big - 1] = '"';
    data[big] = '\0';
    struct sub subs[40];
    memset(subs, 0, sizeof(subs));
    for (int i = 0; i < 40; i++) {
        signal_op(&subs[i].c.op, 10 + (uint64_t)i, "big.e", data);
        subs[i].c.done = sub_done;
        hk_store_submit(s, &subs[i].c);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 40; i++) {
        CHECK_INT(subs[i].status, 0);
        hk_op_free_out(&subs[i].c.op);
    }
    hk_op op;
    signal_op(&op, 99, "big.e", data);
    CHECK_INT(hk_store_apply(s, &op), 0);
    hk_store_counters c;
    hk_store_get_counters(s, &c);
    CHECK(c.map_size > (1u << 20));
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, 41, &ev), 0);
    CHECK_INT(ev.data_len, big);
    hk_event_free(&ev);
    free(data);
    hk_store_close(s);
    uv_loop_close(&loop);
    fx_rmdir();
}

/* Runs fn in a child process; returns its exit status. */
static int in_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int open_exclusive(void)
{
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 8, .exclusive = true};
    hk_store *s;
    int rc = hk_store_open(&s, NULL, &o);
    if (rc == HK_ELOCKED)
        return 3;
    if (rc != 0)
        return 1;
    hk_store_close(s);
    return 0;
}

/* A CLI command beside a server: opens without the lock and writes. */
static int open_shared_and_write(void)
{
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 8};
    hk_store *s;
    if (hk_store_open(&s, NULL, &o) != 0)
        return 1;
    hk_op op = {.type = HK_OP_NODE_PUT, .now_ms = 1};
    op.u.node_put.node = (hk_node){.id = 5, .parent = 0, .name = "from the cli"};
    int rc = hk_store_apply(s, &op);
    hk_store_close(s);
    return rc == 0 ? 0 : 2;
}

static void test_exclusive_lock(void)
{
    fx_mkdir();
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 8, .exclusive = true};
    hk_store *s;
    CHECK_INT(hk_store_open(&s, NULL, &o), 0);
    /* A second serving process is refused; a CLI command works beside it. */
    CHECK_INT(in_child(open_exclusive), 3);
    CHECK_INT(in_child(open_shared_and_write), 0);
    hk_node n;
    CHECK_INT(hk_store_node_get(s, 5, &n), 0);
    CHECK_STR(n.name, "from the cli");
    int fd;
    CHECK_INT(hk_store_lock_dir(fx_dir, &fd), HK_ELOCKED);
    CHECK_INT(fd, -1);
    hk_store_close(s);
    /* Released with the store: the next server starts. */
    CHECK_INT(in_child(open_exclusive), 0);
    CHECK_INT(hk_store_lock_dir(fx_dir, &fd), 0);
    CHECK(fd >= 0);
    hk_store_unlock_dir(fd);
    fx_rmdir();
}

/* A reader that is killed while its read transaction is open. */
static int read_and_die(void)
{
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 8};
    hk_store *s;
    hk_txn *txn;
    if (hk_store_open(&s, NULL, &o) != 0 || hk_kv_read(hk__store_kv(s), &txn) != 0)
        return 1;
    raise(SIGKILL);
    return 2;
}

static void test_stale_readers_cleared(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    int dead = -1;
    CHECK_INT(hk_kv_reader_check(hk__store_kv(s), &dead), 0);
    CHECK_INT(dead, 0);
    CHECK_INT(in_child(read_and_die), 128 + SIGKILL);
    CHECK_INT(hk_kv_reader_check(hk__store_kv(s), &dead), 0);
    CHECK_INT(dead, 1);
    /* A prune step clears them too. */
    CHECK_INT(in_child(read_and_die), 128 + SIGKILL);
    hk_op p = {.type = HK_OP_PRUNE, .now_ms = 1, .u.prune = {.max = 10}};
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(hk_kv_reader_check(hk__store_kv(s), &dead), 0);
    CHECK_INT(dead, 0);
    /* And opening the store. */
    CHECK_INT(in_child(read_and_die), 128 + SIGKILL);
    hk_store_close(s);
    s = fx_open(NULL);
    CHECK_INT(hk_kv_reader_check(hk__store_kv(s), &dead), 0);
    CHECK_INT(dead, 0);
    hk_store_close(s);
    fx_rmdir();
}

int main(void)
{
    test_group_commit();
    test_map_growth();
    test_exclusive_lock();
    test_stale_readers_cleared();
    return unit_done();
}
