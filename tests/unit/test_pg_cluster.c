/*
 * test_pg_cluster.c: the cluster's shared decisions (state/pg_cluster.c)
 * against a real server (tests/unit/pg_fixture.h), two engine instances
 * standing for two nodes: two nodes asking the failure mail gate at once
 * about one webhook are told yes once; within the interval nobody is,
 * after it one node is again, and another webhook has a gate of its own;
 * a node's sign of life is recorded and moved on.
 */
#include <libpq-fe.h>

#include "pg_cluster.h"
#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_store.h"
#include "unit.h"

#define BOUND_MS 60000
#define ASKS 8

static uv_loop_t *loop;
static hk_pg_store *a, *b;
static PGconn *db;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int pending;

static bool run_all(void)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    uint64_t end = uv_now(loop) + BOUND_MS;
    while (pending > 0 && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return pending == 0;
}

static const char *q1(const char *sql)
{
    static char out[256];
    PGresult *r = PQexec(db, sql);
    snprintf(out, sizeof(out), "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : PQresultErrorMessage(r));
    PQclear(r);
    return out;
}

struct ask {
    hk_pg_mail_gate g;
    int status;
};

static void on_gate(hk_pg_mail_gate *g, int status)
{
    hk_container_of(g, struct ask, g)->status = status;
    pending--;
}

/* Asks ASKS times at once, alternating nodes; returns how many were told to send. */
static int ask_many(uint32_t webhook, uint64_t now)
{
    static struct ask asks[ASKS];
    for (int i = 0; i < ASKS; i++) {
        asks[i] = (struct ask){.g = {.webhook_id = webhook, .now_ms = now, .min_interval_ms = 60000, .done = on_gate},
                               .status = 1};
        pending++;
        hk_pg_mail_gate_ask(i % 2 ? b : a, &asks[i].g);
    }
    CHECK(run_all());
    int yes = 0;
    for (int i = 0; i < ASKS; i++) {
        CHECK_INT(asks[i].status, 0);
        yes += asks[i].g.send;
    }
    return yes;
}

static void test_one_failure_mail_per_interval_for_the_cluster(void)
{
    CHECK_INT(ask_many(7, 1000000), 1);
    CHECK_INT(ask_many(7, 1000000 + 59999), 0);
    CHECK_INT(ask_many(8, 1000000 + 59999), 1);
    CHECK_INT(ask_many(7, 1000000 + 60000), 1);
    CHECK_STR(q1("SELECT string_agg(webhook_id || ':' || sent_ms, ',' ORDER BY webhook_id) FROM failure_mails"),
              "7:1060000,8:1059999");
}

static void on_member(hk_pg_member *m, int status)
{
    (void)m;
    CHECK_INT(status, 0);
    pending--;
}

static void test_a_nodes_sign_of_life(void)
{
    hk_pg_member m = {.name = "node-a", .version = "1.2.3", .started_ms = 5, .now_ms = 10, .done = on_member};
    pending++;
    hk_pg_member_seen(a, &m);
    CHECK(run_all());
    m.now_ms = 20;
    pending++;
    hk_pg_member_seen(a, &m);
    CHECK(run_all());
    CHECK_STR(q1("SELECT string_agg(name || ' ' || started_ms || ' ' || seen_ms || ' ' || version, ',') FROM "
                 "cluster_members"),
              "node-a 5 20 1.2.3");
}

int main(void)
{
    loop = uv_default_loop();
    const char *ci = fx_pg_begin(&db);
    hk_pg_store_opts o = {.conninfo = ci, .pool_size = 4, .queue_timeout_ms = 5000};
    CHECK_INT(hk_pg_store_open(&a, loop, &o), 0);
    CHECK_INT(hk_pg_store_open(&b, loop, &o), 0);
    test_one_failure_mail_per_interval_for_the_cluster();
    test_a_nodes_sign_of_life();
    hk_pg_store_close(a);
    hk_pg_store_close(b);
    fx_pg_end(loop, db);
    return unit_done();
}
