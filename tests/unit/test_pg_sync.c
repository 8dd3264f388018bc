/*
 * test_pg_sync.c: the PostgreSQL engine for the CLI (state/pg_sync.c)
 * against a real server (tests/unit/pg_fixture.h): opened without a loop
 * of the caller's, it answers the registry at once, applies ops one by
 * one with their refusals (a second CLI sees the first's changes), and a
 * database that is not there fails the open within its timeout, saying so.
 */
#include "pg_cache.h"
#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_sync.h"
#include "unit.h"

static void test_the_cli_applies_ops_and_reads_the_registry(const char *ci)
{
    char err[256];
    hk_pg_sync *one, *two;
    CHECK_INT(hk_pg_sync_open(&one, ci, 20000, err, sizeof(err)), 0);
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = 1000};
    snprintf(op.u.user_put.user.code, sizeof(op.u.user_put.user.code), "admin");
    op.u.user_put.user.perms = HK_PERM_ALL;
    op.u.user_put.only_first = true;
    CHECK_INT(hk_pg_sync_apply(one, &op), 0);
    CHECK_INT(op.u.user_put.id, 1);
    CHECK(!op.u.user_put.skipped);
    hk_op node = {.type = HK_OP_NODE_PUT, .now_ms = 1000};
    node.u.node_put.node = (hk_node){.id = 5, .parent = 4, .name = "x"};
    CHECK_INT(hk_pg_sync_apply(one, &node), HK_EINVAL);
    CHECK_STR(node.u.node_put.err, "node 4 does not exist");
    /* A second CLI run reads the first one's user from its registry. */
    CHECK_INT(hk_pg_sync_open(&two, ci, 20000, err, sizeof(err)), 0);
    hk_user u;
    CHECK_INT(hk_pg_user_by_code(hk_pg_sync_store(two), "ADMIN", &u), 0);
    CHECK_INT(u.id, 1);
    size_t n = 0;
    CHECK_INT(hk_pg_user_count(hk_pg_sync_store(two), &n), 0);
    CHECK_INT(n, 1);
    op.u.user_put = (hk_op_user_put){.only_first = true};
    snprintf(op.u.user_put.user.code, sizeof(op.u.user_put.user.code), "other");
    CHECK_INT(hk_pg_sync_apply(two, &op), 0);
    CHECK(op.u.user_put.skipped);
    hk_pg_sync_close(one);
    hk_pg_sync_close(two);
}

static void test_no_database_fails_the_open(void)
{
    char err[256];
    hk_pg_sync *s = NULL;
    /* A port nothing listens on (the fixture's server is on another). */
    CHECK_INT(hk_pg_sync_open(&s, "host=127.0.0.1 port=1 dbname=x connect_timeout=1", 1500, err, sizeof(err)),
              UV_ETIMEDOUT);
    CHECK(s == NULL);
    CHECK(strstr(err, "did not answer within 1500 ms") != NULL);
    CHECK_INT(hk_pg_sync_open(&s, "host=127.0.0.1 port=", 1500, err, sizeof(err)) != 0, 1);
}

int main(void)
{
    char err[512];
    const char *ci = fx_pg_conninfo();
    if (hk_pg_migrate(ci, true, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        return 1;
    }
    test_the_cli_applies_ops_and_reads_the_registry(ci);
    test_no_database_fails_the_open();
    return unit_done();
}
