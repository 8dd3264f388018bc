/*
 * test_pg_claim.c: claiming due deliveries with leases (state/pg_claim.c)
 * against a real server (tests/unit/pg_fixture.h), with two engine
 * instances standing for two nodes:
 *  - two nodes claiming at once get disjoint batches, together every due
 *    delivery of an Active webhook once, each with its event; entries not
 *    due yet and those of a stopped webhook are not claimed;
 *  - while a lease holds nobody else claims the delivery; once it has
 *    ended, the other node claims it (a node that died);
 *  - an outcome ends the claim: the entry is gone, its retry is unleased;
 *  - claims given back (some, or all of a node's) are claimable at once,
 *    and a node gives back only its own.
 */
#include <libpq-fe.h>

#include "pg_claim.h"
#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_store.h"
#include "unit.h"

#define N 30

static uv_loop_t *loop;
static hk_pg_store *a, *b;
static PGconn *db;

/* Runs the loop until cond(arg) holds or the bound passes. */
static bool run_until(bool (*cond)(void *arg), void *arg)
{
    return fx_pg_run_until(loop, cond, arg);
}

static const char *q1(const char *sql)
{
    return fx_pg_q1(db, sql);
}

struct claim {
    hk_pg_claim c;
    bool done;
    int status;
};

static void on_claimed(hk_pg_claim *c, int status)
{
    struct claim *k = hk_container_of(c, struct claim, c);
    k->done = true;
    k->status = status;
}

static void claim_start(struct claim *k, hk_pg_store *on, const char *node, uint64_t now, uint32_t max)
{
    memset(k, 0, sizeof(*k));
    k->c = (hk_pg_claim){.node = node, .now_ms = now, .lease_ms = 30000, .max = max, .done = on_claimed};
    hk_pg_claim_due(on, &k->c);
    CHECK(!k->done);
}

static int claim(struct claim *k, hk_pg_store *on, const char *node, uint64_t now, uint32_t max)
{
    claim_start(k, on, node, now, max);
    if (!run_until(fx_pg_flag_set, &k->done))
        return UV_ETIMEDOUT;
    return k->status;
}

struct sub {
    hk_commit c;
    bool done;
    int status;
};

static void on_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    s->done = true;
    s->status = status;
}

static int apply(struct sub *s)
{
    s->c.done = on_done;
    if (s->c.op.now_ms == 0)
        s->c.op.now_ms = 1000;
    hk_pg_store_submit(a, &s->c);
    if (!run_until(fx_pg_flag_set, &s->done))
        return UV_ETIMEDOUT;
    return s->status;
}

static bool both_done(void *arg)
{
    struct claim *k = arg;
    return k[0].done && k[1].done;
}

/* ---- the tests ---------------------------------------------------------------------------------- */

static void test_two_nodes_claim_disjoint_batches(void)
{
    /* Webhooks 1 and 2 Active, 3 stopped; N events for each, due at 1000; one more of webhook 1 due later. */
    CHECK_STR(q1("INSERT INTO webhooks (id, name, url, state, registered_ms, updated_ms) VALUES (1, 'a', 'http://x/', "
                 "0, 1, 1), (2, 'b', 'http://x/', 0, 1, 1), (3, 'c', 'http://x/', 1, 1, 1)"),
              "OK");
    CHECK_STR(
        q1("INSERT INTO events (id, ts_ms, primary_key, user_id, uuid, name, changes, data) SELECT g, 1000, g, 7, "
           "'00112233-4455-6677-8899-aabbccddeeff', 'contact.created', '[\"a\"]', '{\"n\":' || g || '}' FROM "
           "generate_series(1, 31) g"),
        "OK");
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO deliveries (webhook_id, due_ms, event_id, first_ms) SELECT w, 1000, g, 1000 FROM "
             "generate_series(1, %d) g, generate_series(1, 3) w",
             N);
    CHECK_STR(q1(sql), "OK");
    CHECK_STR(q1("INSERT INTO deliveries (webhook_id, due_ms, event_id) VALUES (1, 5000, 31)"), "OK");

    /* Both at once, more than either can have alone. */
    static struct claim k[2];
    claim_start(&k[0], a, "node-a", 2000, 2 * N);
    claim_start(&k[1], b, "node-b", 2000, 2 * N);
    CHECK(run_until(both_done, k));
    CHECK_INT(k[0].status, 0);
    CHECK_INT(k[1].status, 0);
    CHECK_INT(k[0].c.nitems + k[1].c.nitems, 2 * N);
    /* Disjoint, each of webhooks 1 and 2 with every event once. */
    static int seen[3][N + 2];
    memset(seen, 0, sizeof(seen));
    bool shaped = true;
    for (int n = 0; n < 2; n++)
        for (size_t i = 0; i < k[n].c.nitems; i++) {
            const hk_pg_claimed *it = &k[n].c.items[i];
            if (it->delivery.webhook_id < 1 || it->delivery.webhook_id > 2 || it->delivery.event_id > N)
                shaped = false;
            else
                seen[it->delivery.webhook_id][it->delivery.event_id]++;
            /* The event comes with it, byte for byte. */
            char want[32];
            snprintf(want, sizeof(want), "{\"n\":%llu}", (unsigned long long)it->delivery.event_id);
            shaped = shaped && it->event.id == it->delivery.event_id && strcmp(it->event.data, want) == 0 &&
                     it->event.data_len == strlen(want) && strcmp(it->event.name, "contact.created") == 0 &&
                     it->event.uuid[15] == 0xff && it->event.user_id == 7 && it->delivery.first_ms == 1000;
        }
    CHECK(shaped);
    int once = 0;
    for (int w = 1; w <= 2; w++)
        for (int e = 1; e <= N; e++)
            once += seen[w][e] == 1;
    CHECK_INT(once, 2 * N);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE leased_by = 'node-a'");
    char want[16];
    snprintf(want, sizeof(want), "%zu", k[0].c.nitems);
    CHECK_STR(q1(sql), want);
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE lease_until IS NOT NULL AND lease_until <> 32000"), "0");
    hk_pg_claim_free(&k[0].c);
    hk_pg_claim_free(&k[1].c);
    /* Nothing more is due at 2000 while the leases hold (the entry due at 5000 is not due yet). */
    struct claim more;
    CHECK_INT(claim(&more, b, "node-b", 2000, 100), 0);
    CHECK_INT(more.c.nitems, 0);
    hk_pg_claim_free(&more.c);
}

static void test_an_ended_lease_is_claimed_by_the_other_node(void)
{
    /* Node a took everything of webhook 1 until 32000 and dies; at 32000 node b claims it. */
    CHECK_STR(q1("UPDATE deliveries SET leased_by = 'node-a' WHERE webhook_id = 1 AND due_ms = 1000"), "OK");
    struct claim k;
    CHECK_INT(claim(&k, b, "node-b", 32000, 1000), 0);
    /* Both webhooks' N entries (their leases all ended at 32000); the one due at 5000 too. */
    CHECK_INT(k.c.nitems, 2 * N + 1);
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE leased_by = 'node-a'"), "0");
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE leased_by = 'node-b' AND lease_until = 62000"), "61");
    hk_pg_claim_free(&k.c);
}

static void test_an_outcome_ends_the_claim(void)
{
    hk_attempt rec = {.webhook_id = 2,
                      .event_id = 1,
                      .event_name = "contact.created",
                      .started_ms = 33000,
                      .error = "HTTP 503",
                      .url = "http://x/"};
    struct sub s = {0};
    s.c.op.type = HK_OP_OUTCOME;
    s.c.op.now_ms = 33000;
    s.c.op.u.outcome = (hk_op_outcome){.delivery = {.webhook_id = 2, .event_id = 1, .due_ms = 1000},
                                       .rec = &rec,
                                       .next_due_ms = 40000,
                                       .disable_after = 100};
    CHECK_INT(apply(&s), 0);
    CHECK(!s.c.op.u.outcome.vanished);
    CHECK_STR(q1("SELECT due_ms || ' ' || attempts || ' ' || coalesce(leased_by, '-') FROM deliveries WHERE "
                 "webhook_id = 2 AND event_id = 1"),
              "40000 1 -");
    /* Due at 40000 and unleased: node a claims the retry at once. */
    struct claim k;
    CHECK_INT(claim(&k, a, "node-a", 40000, 10), 0);
    CHECK_INT(k.c.nitems, 1);
    CHECK(k.c.nitems == 1 && k.c.items[0].delivery.attempts == 1 && k.c.items[0].delivery.due_ms == 40000);
    hk_pg_claim_free(&k.c);
}

struct rel {
    hk_pg_release r;
    bool done;
    int status;
};

static void on_released(hk_pg_release *r, int status)
{
    struct rel *x = hk_container_of(r, struct rel, r);
    x->done = true;
    x->status = status;
}

static void test_claims_given_back_are_claimable_at_once(void)
{
    /* Node b holds 60 claims until 62000 (the test above); it gives two back, then all. */
    struct claim k;
    CHECK_INT(claim(&k, a, "node-a", 40000, 100), 0);
    CHECK_INT(k.c.nitems, 0);
    hk_pg_claim_free(&k.c);
    hk_delivery two[2] = {{.webhook_id = 1, .due_ms = 1000, .event_id = 3},
                          {.webhook_id = 1, .due_ms = 1000, .event_id = 4}};
    struct rel x = {.r = {.node = "node-a", .ds = two, .n = 2, .done = on_released}};
    hk_pg_claim_release(a, &x.r); /* not node a's: nothing */
    CHECK(run_until(fx_pg_flag_set, &x.done));
    CHECK_INT(x.status, 0);
    CHECK_INT(x.r.released, 0);
    x = (struct rel){.r = {.node = "node-b", .ds = two, .n = 2, .done = on_released}};
    hk_pg_claim_release(b, &x.r);
    CHECK(run_until(fx_pg_flag_set, &x.done));
    CHECK_INT(x.status, 0);
    CHECK_INT(x.r.released, 2);
    CHECK_INT(claim(&k, a, "node-a", 40000, 100), 0);
    CHECK_INT(k.c.nitems, 2);
    CHECK(k.c.nitems == 2 && k.c.items[0].delivery.event_id == 3 && k.c.items[1].delivery.event_id == 4);
    hk_pg_claim_free(&k.c);
    x = (struct rel){.r = {.node = "node-b", .done = on_released}};
    hk_pg_claim_release(b, &x.r);
    CHECK(run_until(fx_pg_flag_set, &x.done));
    CHECK_INT(x.r.released, 58);
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE leased_by = 'node-b'"), "0");
}

int main(void)
{
    loop = uv_default_loop();
    const char *ci = fx_pg_begin(&db);
    hk_pg_store_opts o = {.conninfo = ci, .pool_size = 2, .queue_timeout_ms = 5000};
    CHECK_INT(hk_pg_store_open(&a, loop, &o), 0);
    CHECK_INT(hk_pg_store_open(&b, loop, &o), 0);
    test_two_nodes_claim_disjoint_batches();
    test_an_ended_lease_is_claimed_by_the_other_node();
    test_an_outcome_ends_the_claim();
    test_claims_given_back_are_claimable_at_once();
    hk_pg_store_close(a);
    hk_pg_store_close(b);
    fx_pg_end(loop, db);
    return unit_done();
}
