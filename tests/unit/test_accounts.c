/* Unit tests of accounts.c: the tree stays a tree, the subtree check, the CSV import. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accounts.h"
#include "kv.h"
#include "unit.h"

static char err[512];

static int put_node(hk_txn *txn, void *arg)
{
    return hk_node_put(txn, arg, err, sizeof(err));
}

static int put_account(hk_txn *txn, void *arg)
{
    return hk_account_put(txn, arg, err, sizeof(err));
}

static int node(hk_kv_env *s, uint32_t id, uint32_t parent, const char *name)
{
    hk_node n = {id, parent, ""};
    snprintf(n.name, sizeof(n.name), "%s", name);
    err[0] = '\0';
    return hk_kv_write_sync(s, put_node, &n);
}

static int account(hk_kv_env *s, uint32_t id, uint32_t nd, const char *name)
{
    hk_account a = {id, nd, ""};
    snprintf(a.name, sizeof(a.name), "%s", name);
    err[0] = '\0';
    return hk_kv_write_sync(s, put_account, &a);
}

struct imp {
    enum hk_import_kind kind;
    const char *text;
    size_t count;
};

static int import_txn(hk_txn *txn, void *arg)
{
    struct imp *im = arg;
    return hk_accounts_import(txn, im->kind, im->text, strlen(im->text), &im->count, err, sizeof(err));
}

static int import(hk_kv_env *s, enum hk_import_kind kind, const char *text, size_t *count)
{
    struct imp im = {kind, text, 0};
    err[0] = '\0';
    int rc = hk_kv_write_sync(s, import_txn, &im);
    *count = im.count;
    return rc;
}

static bool within(hk_kv_env *s, bool is_account, uint32_t id, uint32_t top)
{
    hk_txn *txn;
    if (hk_kv_read(s, &txn) != 0)
        return false;
    bool r = is_account ? hk_account_within(txn, id, top) : hk_node_within(txn, id, top);
    hk_txn_end(txn);
    return r;
}

int main(void)
{
    char dir[] = "/tmp/hk-accounts-XXXXXX";
    if (mkdtemp(dir) == NULL)
        return 1;
    hk_kv_env *s;
    if (hk_kv_open(&s, dir, 16u << 20, 64, NULL) != 0)
        return 1;

    /* 1 > 2 > 3, and 9 a root of its own. */
    CHECK_INT(node(s, 1, 0, "root"), 0);
    CHECK_INT(node(s, 2, 1, "mid"), 0);
    CHECK_INT(node(s, 3, 2, "leaf"), 0);
    CHECK_INT(node(s, 9, 0, "other"), 0);
    CHECK_INT(node(s, 0, 0, "zero"), HK_EINVAL);
    CHECK_INT(node(s, 4, 0, ""), HK_EINVAL);
    CHECK_INT(node(s, 4, 77, "orphan"), HK_EINVAL);
    CHECK(strstr(err, "77") != NULL);
    /* Re-parenting 1 under its own descendant would make a cycle. */
    CHECK_INT(node(s, 1, 3, "root"), HK_EINVAL);
    CHECK(strstr(err, "ancestor") != NULL);
    CHECK_INT(node(s, 2, 2, "self"), HK_EINVAL);
    /* Moving a subtree elsewhere is fine. */
    CHECK_INT(node(s, 2, 9, "mid"), 0);
    CHECK(within(s, false, 3, 9));
    CHECK(!within(s, false, 3, 1));
    CHECK_INT(node(s, 2, 1, "mid"), 0);

    CHECK_INT(account(s, 100, 3, "acct"), 0);
    CHECK_INT(account(s, 101, 9, "acct2"), 0);
    CHECK_INT(account(s, 102, 55, "nowhere"), HK_EINVAL);
    CHECK_INT(account(s, 0, 3, "zero"), HK_EINVAL);

    CHECK(within(s, true, 100, 1));
    CHECK(within(s, true, 100, 2));
    CHECK(within(s, true, 100, 3));
    CHECK(!within(s, true, 100, 9));
    CHECK(within(s, true, 101, 9));
    CHECK(!within(s, true, 101, 1));
    CHECK(!within(s, true, 100, 0)); /* no topmost node: nothing */
    CHECK(!within(s, true, 555, 1)); /* unknown account */

    hk_txn *txn;
    hk_node n;
    hk_account a;
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_node_get(txn, 2, &n), 0);
    CHECK_INT(n.parent, 1);
    CHECK_STR(n.name, "mid");
    CHECK_INT(hk_account_get(txn, 100, &a), 0);
    CHECK_INT(a.node, 3);
    CHECK_INT(hk_node_get(txn, 42, &n), HK_ENOTFOUND);
    hk_txn_end(txn);

    /* A chain longer than the limit is refused. */
    int rc = 0;
    for (uint32_t i = 0; i < HK_NODE_DEPTH_MAX && rc == 0; i++)
        rc = node(s, 1000 + i, i == 0 ? 0 : 1000 + i - 1, "deep");
    CHECK_INT(rc, 0);
    /* 5000 has HK_NODE_DEPTH_MAX ancestors, the most allowed; one more level is refused. */
    CHECK_INT(node(s, 5000, 1000 + HK_NODE_DEPTH_MAX - 1, "deepest"), 0);
    CHECK(within(s, false, 5000, 1000));
    CHECK_INT(node(s, 5001, 5000, "too deep"), HK_EINVAL);
    CHECK(strstr(err, "deeper") != NULL);

    /* Import: header, quotes, CRLF, forward references, BOM. */
    size_t count;
    CHECK_INT(import(s, HK_IMPORT_NODES,
                     "\xef\xbb\xbfid,parent,name\r\n21,20,\"a, \"\"quoted\"\" name\"\r\n20,,top\r\n\r\n22,21,c\n",
                     &count),
              0);
    CHECK_INT(count, 3);
    CHECK(within(s, false, 22, 20));
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_node_get(txn, 21, &n), 0);
    CHECK_STR(n.name, "a, \"quoted\" name");
    hk_txn_end(txn);

    /* A multi-line quoted name counts its lines; errors name the record's line. */
    CHECK_INT(import(s, HK_IMPORT_ACCOUNTS, "1,20,\"two\nlines\"\n2,20,ok\n3,abc,bad\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 4:", 7) == 0);
    CHECK_INT(import(s, HK_IMPORT_ACCOUNTS, "1,20,a\n2,20,b,extra\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 2:", 7) == 0);
    CHECK_INT(import(s, HK_IMPORT_ACCOUNTS, "1,20,\"open\n", &count), HK_EINVAL);
    CHECK(strstr(err, "unterminated") != NULL);
    CHECK_INT(import(s, HK_IMPORT_ACCOUNTS, "7,20,a\n8,20,b\n7,21,c\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 3:", 7) == 0);
    CHECK_INT(import(s, HK_IMPORT_NODES, "60,61,a\n61,60,b\n", &count), HK_EINVAL);
    CHECK(strstr(err, "ancestor") != NULL);
    /* Nothing of a failed import is kept. */
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_account_get(txn, 1, &a), HK_ENOTFOUND);
    CHECK_INT(hk_node_get(txn, 60, &n), HK_ENOTFOUND);
    hk_txn_end(txn);
    CHECK_INT(import(s, HK_IMPORT_ACCOUNTS, "id,node,name\n1,22,a\n2,20,b", &count), 0);
    CHECK_INT(count, 2);
    CHECK(within(s, true, 1, 20));

    hk_kv_close(s);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return unit_done();
}
