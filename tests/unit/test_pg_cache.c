/*
 * test_pg_cache.c: the PostgreSQL engine's registry in memory
 * (state/pg_cache.c) against a real server (tests/unit/pg_fixture.h), with
 * two engine instances on one loop standing for two nodes:
 *  - what is in the database when an engine opens is there once it is
 *    ready (webhooks with their lists, extensions, users, keys, nodes,
 *    accounts, event types); before that, queries answer UV_EAGAIN;
 *  - a webhook created, changed, locked or deleted through one node is
 *    seen by that node as soon as its op is done (with the event types its
 *    put registered), and by the other once the notification has come (the
 *    loop polled, bounded);
 *  - a failed attempt's statistics (errors, last error) are seen by the
 *    node that committed it inside the op's done, by the other once it
 *    polls them;
 *  - a change made outside hookd (psql) reaches both;
 *  - after the listen connection is lost (the server restarted), the
 *    whole registry is read again and changes made meanwhile are seen;
 *  - a storm of changes (2000 rows in one statement) reaches the registry.
 */
#include <libpq-fe.h>

#include "pg_cache.h"
#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_store.h"
#include "unit.h"

#define BOUND_MS 60000

static uv_loop_t *loop;
static hk_pg_store *a, *b; /* two nodes */
static PGconn *db;

/* Runs the loop until cond(arg) holds or the bound passes. */
static bool run_until(bool (*cond)(void *arg), void *arg)
{
    return fx_pg_run_until(loop, cond, arg);
}

static bool ready(void *arg)
{
    return hk_pg_store_ready(arg);
}

static void exec(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

struct sub {
    hk_commit c;
    bool done;
    int status;
    hk_pg_store *on;
    bool seen_at_once; /* inside done: the node that committed already answers with the change */
    uint32_t expect_id;
};

static void on_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    s->done = true;
    s->status = status;
}

static void webhook(hk_webhook *w, const char *name)
{
    hk_webhook_init(w);
    free(w->name);
    w->name = hk_strdup(name);
    free(w->url);
    w->url = hk_strdup("http://127.0.0.1:9/hook");
    w->events = hk_calloc(3, sizeof(char *));
    w->events[w->nevents++] = hk_strdup("contact.created");
    w->events[w->nevents++] = hk_strdup("*");
    w->events[w->nevents++] = hk_strdup("sale.\"odd\",{x}\\ y");
    w->headers = hk_calloc(1, sizeof(hk_pair));
    w->headers[0].name = hk_strdup("X-A");
    w->headers[0].value = hk_strdup("1, \"2\"");
    w->nheaders = 1;
    w->registered_ms = w->updated_ms = 1000;
    w->registered_by = w->updated_by = 1;
}

/* The name of webhook id as node s sees it ("" when absent, "EAGAIN" before it is ready). */
static const char *name_on(hk_pg_store *s, uint32_t id)
{
    static char out[128];
    hk_webhook w = {0};
    int rc = hk_pg_webhook_get(s, id, &w);
    snprintf(out, sizeof(out), "%s", rc == 0 ? w.name : rc == UV_EAGAIN ? "EAGAIN" : "");
    hk_webhook_free(&w);
    return out;
}

struct wait_name {
    hk_pg_store *s;
    uint32_t id;
    const char *want;
};

static bool name_is(void *arg)
{
    struct wait_name *w = arg;
    return strcmp(name_on(w->s, w->id), w->want) == 0;
}

/* ---- the tests ------------------------------------------------------------------------------- */

static void test_what_is_stored_is_loaded_at_open(void)
{
    exec("INSERT INTO webhooks (id, name, url, state, locked, extension, events, header_names, header_values, "
         "property_names, property_values, notify, registered_ms, updated_ms) VALUES (1, 'pre', 'http://x/', 1, true, "
         "'ext-1', '{a.b,\"c d\"}', '{H}', '{v}', '{P}', '{\"{\\\"k\\\":1}\"}', '{ops@example.com}', 5, 6); "
         "SELECT setval('webhook_id_seq', 1); "
         "INSERT INTO users (id, code, code_lower, full_name, perms, top_node) VALUES (1, 'Admin', 'admin', 'The "
         "Admin', 63, 0); "
         "INSERT INTO api_keys (hash, user_id, created_ms, short_id) VALUES (decode(repeat('ab', 32), 'hex'), 1, 7, "
         "'abababab'); "
         "INSERT INTO nodes (id, parent, name) VALUES (10, 0, 'root'), (11, 10, 'child'); "
         "INSERT INTO accounts (id, node, name) VALUES (100, 11, 'acct'); "
         "INSERT INTO event_types (name) VALUES ('a.b'), ('c d')");
    hk_pg_store_opts o = {.conninfo = fx_pg_conninfo(), .pool_size = 2, .queue_timeout_ms = 2000};
    CHECK_INT(hk_pg_store_open(&a, loop, &o), 0);
    CHECK_INT(hk_pg_store_open(&b, loop, &o), 0);
    hk_webhook w = {0};
    CHECK_INT(hk_pg_webhook_get(a, 1, &w), UV_EAGAIN);
    CHECK(run_until(ready, a) && run_until(ready, b));

    CHECK_INT(hk_pg_webhook_get(a, 1, &w), 0);
    CHECK_STR(w.name, "pre");
    CHECK_INT(w.state, HK_WH_STOPPED);
    CHECK(w.locked);
    CHECK_STR(w.extension, "ext-1");
    CHECK_INT(w.nevents, 2);
    CHECK(w.nevents == 2 && strcmp(w.events[1], "c d") == 0);
    CHECK(w.nproperties == 1 && strcmp(w.properties[0].value, "{\"k\":1}") == 0);
    CHECK(w.nnotify == 1 && strcmp(w.notify[0], "ops@example.com") == 0);
    CHECK(w.registered_ms == 5 && w.updated_ms == 6);
    hk_webhook_free(&w);
    CHECK_INT(hk_pg_webhook_get(a, 2, &w), HK_ENOTFOUND);
    uint32_t id = 0;
    CHECK_INT(hk_pg_webhook_by_extension(b, "ext-1", &id), 0);
    CHECK_INT(id, 1);
    CHECK_INT(hk_pg_webhook_by_extension(b, "ext-2", &id), HK_ENOTFOUND);

    hk_user u;
    CHECK_INT(hk_pg_user_by_code(a, "ADMIN", &u), 0);
    CHECK_STR(u.full_name, "The Admin");
    uint8_t hash[32];
    memset(hash, 0xab, sizeof(hash));
    hk_key k;
    CHECK_INT(hk_pg_key_get(a, hash, &k, &u), 0);
    CHECK_STR(k.short_id, "abababab");
    CHECK_INT(u.id, 1);
    CHECK(!k.revoked);
    bool within = false;
    CHECK_INT(hk_pg_node_within(a, 11, 10, &within), 0);
    CHECK(within);
    CHECK_INT(hk_pg_node_within(a, 10, 11, &within), 0);
    CHECK(!within);
    hk_account acc;
    CHECK_INT(hk_pg_account_get(b, 100, &acc), 0);
    CHECK_STR(acc.name, "acct");
    CHECK_INT(hk_pg_event_type_id(a, "c d", &id), 0);
    CHECK_INT(id, 2);
    size_t n = 0;
    CHECK_INT(hk_pg_user_count(b, &n), 0);
    CHECK_INT(n, 1);
}

static void seen_in_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    on_done(c, status);
    uint32_t id = c->op.type == HK_OP_WEBHOOK_PUT ? c->op.u.webhook_put.id : s->expect_id;
    hk_webhook w = {0};
    int rc = hk_pg_webhook_get(s->on, id, &w);
    if (c->op.type == HK_OP_WEBHOOK_DELETE)
        s->seen_at_once = rc == HK_ENOTFOUND;
    else if (c->op.type == HK_OP_WEBHOOK_LOCK)
        s->seen_at_once = rc == 0 && w.locked == c->op.u.webhook_lock.locked;
    else
        s->seen_at_once = rc == 0 && strcmp(w.name, c->op.u.webhook_put.webhook->name) == 0;
    /* A put's subscriptions are event types at once too. */
    for (size_t i = 0; c->op.type == HK_OP_WEBHOOK_PUT && i < w.nevents; i++) {
        uint32_t tid = 0;
        s->seen_at_once = s->seen_at_once && hk_pg_event_type_id(s->on, w.events[i], &tid) == 0 && tid > 0;
    }
    hk_webhook_free(&w);
}

/* Inside a failed attempt's done: the committing node's statistics of its webhook (struct sub's expect_id). */
static void stats_in_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    on_done(c, status);
    hk_webhook_stats st;
    s->seen_at_once = hk_pg_webhook_stats(s->on, s->expect_id, &st) == 0 && st.calls == 1 && st.errors == 1 &&
                      st.consecutive == 1 && strcmp(st.last_error, "HTTP 500 from the receiver") == 0;
}

static int apply_seen(hk_pg_store *on, struct sub *s)
{
    s->done = false;
    s->on = on;
    s->c.done = seen_in_done;
    if (s->c.op.now_ms == 0)
        s->c.op.now_ms = 1000000;
    hk_pg_store_submit(on, &s->c);
    if (!run_until(fx_pg_flag_set, &s->done))
        return UV_ETIMEDOUT;
    return s->status;
}

static void test_a_change_through_one_node_reaches_the_other(void)
{
    hk_webhook w;
    webhook(&w, "made on a");
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply_seen(a, &s), 0);
    uint32_t id = s.c.op.u.webhook_put.id;
    CHECK_INT(id, 2);
    /* Node a used it at once, inside the op's done; node b once the notification came. */
    CHECK(s.seen_at_once);
    struct wait_name wn = {b, id, "made on a"};
    CHECK(run_until(name_is, &wn));
    hk_webhook got = {0};
    CHECK_INT(hk_pg_webhook_get(b, id, &got), 0);
    CHECK(got.nevents == 3 && strcmp(got.events[2], "sale.\"odd\",{x}\\ y") == 0 && strcmp(got.events[1], "*") == 0);
    CHECK(got.nheaders == 1 && strcmp(got.headers[0].value, "1, \"2\"") == 0);
    CHECK(got.extension == NULL);
    hk_webhook_free(&got);
    /* The event types it registered reach both. */
    uint32_t tid = 0;
    uint64_t end = uv_now(loop) + BOUND_MS;
    while (hk_pg_event_type_id(b, "sale.\"odd\",{x}\\ y", &tid) != 0 && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    CHECK(tid > 0);

    /* Changed through b: b at once, a after the notification. */
    w.id = id;
    free(w.name);
    w.name = hk_strdup("changed on b");
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply_seen(b, &s), 0);
    CHECK(s.seen_at_once);
    wn = (struct wait_name){a, id, "changed on b"};
    CHECK(run_until(name_is, &wn));

    /* Locked through a. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_LOCK;
    s.c.op.u.webhook_lock = (hk_op_webhook_lock){.id = id, .locked = true};
    s.expect_id = id;
    CHECK_INT(apply_seen(a, &s), 0);
    CHECK(s.seen_at_once);
    end = uv_now(loop) + BOUND_MS;
    enum hk_webhook_state st = HK_WH_ACTIVE;
    bool locked = false;
    while ((hk_pg_webhook_state(b, id, &st, &locked) != 0 || !locked) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    CHECK(locked);

    /* Deleted through b. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_DELETE;
    s.c.op.u.webhook_delete = (hk_op_webhook_delete){.id = id};
    s.expect_id = id;
    CHECK_INT(apply_seen(b, &s), 0);
    CHECK(s.seen_at_once);
    wn = (struct wait_name){a, id, ""};
    CHECK(run_until(name_is, &wn));
    hk_webhook_free(&w);
}

struct wait_stats {
    hk_pg_store *s;
    uint32_t id;
};

static bool stats_errors(void *arg)
{
    struct wait_stats *w = arg;
    hk_webhook_stats st;
    return hk_pg_webhook_stats(w->s, w->id, &st) == 0 && st.errors == 1 &&
           strcmp(st.last_error, "HTTP 500 from the receiver") == 0;
}

static void test_an_own_attempt_s_statistics_are_seen_at_once(void)
{
    hk_webhook w;
    webhook(&w, "stats");
    free(w.events[0]);
    w.events[0] = hk_strdup("stats.only.here");
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply_seen(a, &s), 0);
    CHECK(s.seen_at_once);
    uint32_t id = s.c.op.u.webhook_put.id;
    hk_webhook_free(&w);

    hk_attempt rec = {.webhook_id = id,
                      .event_name = "stats.only.here",
                      .event_uuid = "00000000-0000-0000-0000-000000000000",
                      .attempt = 1,
                      .started_ms = 1000000,
                      .duration_ms = 5,
                      .status = 500,
                      .error = "HTTP 500 from the receiver",
                      .url = "http://127.0.0.1:9/hook",
                      .sync = true};
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_ATTEMPT;
    s.c.op.u.attempt = (hk_op_attempt){.rec = &rec, .disable_after = 10};
    s.c.op.now_ms = 1000000;
    s.on = a;
    s.expect_id = id;
    s.c.done = stats_in_done;
    hk_pg_store_submit(a, &s.c);
    CHECK(run_until(fx_pg_flag_set, &s.done));
    CHECK_INT(s.status, 0);
    CHECK(!s.c.op.u.attempt.vanished);
    CHECK(s.seen_at_once);
    /* The other node once it polls the statistics changed. */
    struct wait_stats ws = {b, id};
    CHECK(run_until(stats_errors, &ws));
}

struct wait_user {
    hk_pg_store *s;
    const char *name; /* NULL: the user is gone */
};

static bool user_is(void *arg)
{
    struct wait_user *w = arg;
    hk_user u;
    int rc = hk_pg_user_get(w->s, 2, &u);
    return w->name == NULL ? rc == HK_ENOTFOUND : rc == 0 && strcmp(u.full_name, w->name) == 0;
}

static bool key_revoked(void *arg)
{
    uint8_t hash[32];
    hk_key k;
    hk_user u;
    memset(hash, 0xab, sizeof(hash));
    return hk_pg_key_get(arg, hash, &k, &u) == 0 && k.revoked;
}

static void test_a_change_made_outside_hookd_reaches_both(void)
{
    exec("INSERT INTO users (id, code, code_lower, full_name) VALUES (2, 'Ops', 'ops', 'Operator')");
    struct wait_user wu = {a, "Operator"};
    CHECK(run_until(user_is, &wu));
    wu.s = b;
    CHECK(run_until(user_is, &wu));
    exec("UPDATE api_keys SET revoked = true");
    CHECK(run_until(key_revoked, a));
    CHECK(run_until(key_revoked, b));
    exec("DELETE FROM users WHERE id = 2");
    wu = (struct wait_user){a, NULL};
    CHECK(run_until(user_is, &wu));
}

static bool loads_grew(void *arg)
{
    return hk__pg_cache_loads(hk__pg_store_cache(a)) > *(uint64_t *)arg;
}

static void test_after_a_lost_connection_the_registry_is_read_again(void)
{
    uint64_t loads = hk__pg_cache_loads(hk__pg_store_cache(a));
    CHECK_INT(fx_pg_ctl("stop"), 0);
    CHECK_INT(fx_pg_ctl("start"), 0);
    PQreset(db);
    /* Made while a's listen connection was down or coming back: no notification reaches a for it. */
    exec("UPDATE nodes SET name = 'renamed root' WHERE id = 10");
    CHECK(run_until(loads_grew, &loads));
    uint64_t end = uv_now(loop) + BOUND_MS;
    hk_node nd = {0};
    while ((hk_pg_node_get(a, 10, &nd) != 0 || strcmp(nd.name, "renamed root") != 0) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_STR(nd.name, "renamed root");
}

static int count_node(const hk_node *nd, void *arg)
{
    (void)nd;
    (*(size_t *)arg)++;
    return 0;
}

static bool has_node_2999(void *arg)
{
    hk_node n;
    return hk_pg_node_get(arg, 2999, &n) == 0;
}

static void test_a_storm_of_changes_reaches_the_registry(void)
{
    /* 2000 nodes in one statement: 2000 notifications, read key by key while they are few, whole once more than
     * 1000 wait; either way every node is there. */
    exec("INSERT INTO nodes (id, parent, name) SELECT g, 0, 'n' || g FROM generate_series(1000, 2999) g");
    CHECK(run_until(has_node_2999, b));
    size_t n = 0;
    CHECK_INT(hk_pg_nodes_each(b, count_node, &n), 0);
    CHECK_INT(n, 2002);
}

int main(void)
{
    loop = uv_default_loop();
    fx_pg_begin(&db);
    test_what_is_stored_is_loaded_at_open();
    test_a_change_through_one_node_reaches_the_other();
    test_an_own_attempt_s_statistics_are_seen_at_once();
    test_a_change_made_outside_hookd_reaches_both();
    test_after_a_lost_connection_the_registry_is_read_again();
    test_a_storm_of_changes_reaches_the_registry();
    hk_pg_store_close(a);
    hk_pg_store_close(b);
    fx_pg_end(loop, db);
    return unit_done();
}
