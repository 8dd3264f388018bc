/* Unit tests of accounts.c: the tree stays a tree, the subtree check, the CSV import. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "state_fixture.h"
#include "unit.h"

static char err[512];

static int node(hk_store *s, uint32_t id, uint32_t parent, const char *name)
{
    hk_op op = {.type = HK_OP_NODE_PUT, .now_ms = 1000};
    op.u.node_put.node = (hk_node){id, parent, ""};
    snprintf(op.u.node_put.node.name, sizeof(op.u.node_put.node.name), "%s", name);
    int rc = hk_store_apply(s, &op);
    snprintf(err, sizeof(err), "%s", op.u.node_put.err);
    return rc;
}

static int account(hk_store *s, uint32_t id, uint32_t nd, const char *name)
{
    hk_op op = {.type = HK_OP_ACCOUNT_PUT, .now_ms = 1000};
    op.u.account_put.account = (hk_account){id, nd, ""};
    snprintf(op.u.account_put.account.name, sizeof(op.u.account_put.account.name), "%s", name);
    int rc = hk_store_apply(s, &op);
    snprintf(err, sizeof(err), "%s", op.u.account_put.err);
    return rc;
}

enum import_kind { IMPORT_NODES, IMPORT_ACCOUNTS };

static int import(hk_store *s, enum import_kind kind, const char *text, size_t *count)
{
    hk_op op = {.type = HK_OP_TREE_IMPORT, .now_ms = 1000};
    op.u.tree_import.accounts = kind == IMPORT_ACCOUNTS;
    op.u.tree_import.text = text;
    op.u.tree_import.len = strlen(text);
    int rc = hk_store_apply(s, &op);
    snprintf(err, sizeof(err), "%s", op.u.tree_import.err);
    *count = op.u.tree_import.count;
    return rc;
}

/* Node id is within top (hk_store_node_within), or account id (hk_auth_account_within). */
static bool within(hk_store *s, bool is_account, uint32_t id, uint32_t top)
{
    bool in = false;
    int rc = is_account ? hk_auth_account_within(s, id, top, &in) : hk_store_node_within(s, id, top, &in);
    return rc == 0 && in;
}

int main(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);

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

    hk_node n;
    hk_account a;
    CHECK_INT(hk_store_node_get(s, 2, &n), 0);
    CHECK_INT(n.parent, 1);
    CHECK_STR(n.name, "mid");
    CHECK_INT(hk_store_account_get(s, 100, &a), 0);
    CHECK_INT(a.node, 3);
    CHECK_INT(hk_store_node_get(s, 42, &n), HK_ENOTFOUND);

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
    CHECK_INT(import(s, IMPORT_NODES,
                     "\xef\xbb\xbfid,parent,name\r\n21,20,\"a, \"\"quoted\"\" name\"\r\n20,,top\r\n\r\n22,21,c\n",
                     &count),
              0);
    CHECK_INT(count, 3);
    CHECK(within(s, false, 22, 20));
    CHECK_INT(hk_store_node_get(s, 21, &n), 0);
    CHECK_STR(n.name, "a, \"quoted\" name");

    /* A multi-line quoted name counts its lines; errors name the record's line. */
    CHECK_INT(import(s, IMPORT_ACCOUNTS, "1,20,\"two\nlines\"\n2,20,ok\n3,abc,bad\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 4:", 7) == 0);
    CHECK_INT(import(s, IMPORT_ACCOUNTS, "1,20,a\n2,20,b,extra\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 2:", 7) == 0);
    CHECK_INT(import(s, IMPORT_ACCOUNTS, "1,20,\"open\n", &count), HK_EINVAL);
    CHECK(strstr(err, "unterminated") != NULL);
    CHECK_INT(import(s, IMPORT_ACCOUNTS, "7,20,a\n8,20,b\n7,21,c\n", &count), HK_EINVAL);
    CHECK(strncmp(err, "line 3:", 7) == 0);
    CHECK_INT(import(s, IMPORT_NODES, "60,61,a\n61,60,b\n", &count), HK_EINVAL);
    CHECK(strstr(err, "ancestor") != NULL);
    /* Nothing of a failed import is kept. */
    CHECK_INT(hk_store_account_get(s, 1, &a), HK_ENOTFOUND);
    CHECK_INT(hk_store_node_get(s, 60, &n), HK_ENOTFOUND);
    CHECK_INT(import(s, IMPORT_ACCOUNTS, "id,node,name\n1,22,a\n2,20,b", &count), 0);
    CHECK_INT(count, 2);
    CHECK(within(s, true, 1, 20));

    hk_store_close(s);
    fx_rmdir();
    return unit_done();
}
