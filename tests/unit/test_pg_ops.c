/*
 * test_pg_ops.c: the PostgreSQL engine's remaining ops (state/pg_ops.c,
 * pg_schema/003_ops.sql) against a real server (tests/unit/pg_fixture.h),
 * with two engine instances standing for two nodes, checked through a
 * second session:
 *  - an outcome counts the attempt, logs it, moves the delivery to its
 *    retry or removes it; one whose entry is gone is vanished;
 *  - failures committed concurrently by two nodes for one webhook disable
 *    it exactly once (one state event), and a locked webhook is never
 *    disabled; both nodes' registries show the new state;
 *  - two nodes' groups touching the same webhooks in opposite orders
 *    both commit whole (statements run in webhook order: no deadlock);
 *  - a synchronous attempt, a resend, a queue drop of a deleted webhook;
 *  - users (the first admin once, codes unique case-insensitively) and
 *    keys (put, revoke by short id or hash, an ambiguous short id);
 *  - nodes (missing parent, cycle) and accounts;
 *  - a recovery in steps: the failed deliveries of a window queued again
 *    once each (not one with a retry due, a later success, queued still,
 *    or outside the window); refusals of a bad window, an unknown webhook
 *    and a run too old;
 *  - a prune step: old attempt partitions dropped whole, old events with
 *    their deliveries, expired Idempotency-Keys.
 */
#include <libpq-fe.h>

#include "auth.h"
#include "pg_cache.h"
#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_store.h"
#include "unit.h"

#define DAY_MS 86400000ull

static uv_loop_t *loop;
static hk_pg_store *a, *b;
static PGconn *db;
static uint64_t now_ms; /* the ops' time: today, so the attempt log's partitions exist */

/* Runs the loop until cond(arg) holds or the bound passes. */
static bool run_until(bool (*cond)(void *arg), void *arg)
{
    return fx_pg_run_until(loop, cond, arg);
}

static bool ready(void *arg)
{
    return hk_pg_store_ready(arg);
}

static const char *q1(const char *sql)
{
    return fx_pg_q1(db, sql);
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

static void submit(hk_pg_store *on, struct sub *s)
{
    s->done = false;
    s->c.done = on_done;
    if (s->c.op.now_ms == 0)
        s->c.op.now_ms = now_ms;
    hk_pg_store_submit(on, &s->c);
}

static int apply(hk_pg_store *on, struct sub *s)
{
    submit(on, s);
    if (!run_until(fx_pg_flag_set, &s->done))
        return UV_ETIMEDOUT;
    return s->status;
}

static uint32_t create(const char *name, const char *ev, bool locked)
{
    hk_webhook w;
    hk_webhook_init(&w);
    free(w.name);
    w.name = hk_strdup(name);
    free(w.url);
    w.url = hk_strdup("http://127.0.0.1:9/hook");
    w.events = hk_calloc(1, sizeof(char *));
    w.events[w.nevents++] = hk_strdup(ev);
    w.locked = locked;
    w.registered_ms = w.updated_ms = now_ms;
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply(a, &s), 0);
    hk_webhook_free(&w);
    return s.c.op.u.webhook_put.id;
}

static uint64_t signal_event(const char *name)
{
    struct sub s = {0};
    s.c.op.type = HK_OP_SIGNAL;
    s.c.op.u.signal.name = name;
    s.c.op.u.signal.data = "{}";
    s.c.op.u.signal.data_len = 2;
    CHECK_INT(apply(a, &s), 0);
    uint64_t id = s.c.op.u.signal.event_id;
    hk_op_free_out(&s.c.op);
    return id;
}

static hk_attempt rec_of(uint32_t wid, uint64_t eid, bool success, const char *error)
{
    hk_attempt r = {.webhook_id = wid,
                    .event_id = eid,
                    .event_name = "contact.created",
                    .event_uuid = "00000000-0000-0000-0000-000000000000",
                    .attempt = 1,
                    .started_ms = now_ms,
                    .duration_ms = 5,
                    .success = success,
                    .status = success ? 200 : 500,
                    .error = (char *)error,
                    .url = "http://127.0.0.1:9/hook",
                    .request = "POST / HTTP/1.1\r\n\r\n\0x",
                    .request_len = 21};
    return r;
}

static void outcome_op(struct sub *s, hk_delivery d, const hk_attempt *rec, uint64_t next_due, uint32_t disable_after)
{
    memset(s, 0, sizeof(*s));
    s->c.op.type = HK_OP_OUTCOME;
    s->c.op.u.outcome = (hk_op_outcome){.delivery = d,
                                        .rec = rec,
                                        .next_due_ms = next_due,
                                        .disable_after = disable_after,
                                        .on_disable = {.kind = "errors", .reason = "too many"}};
}

/* ---- the tests ---------------------------------------------------------------------------------- */

static uint32_t w1, w2, w3;

static void test_an_outcome_counts_logs_and_moves_the_delivery(void)
{
    w1 = create("one", "contact.created", false);
    w2 = create("listener", "webhook1.errors", false);
    w3 = create("locked", "contact.created", true);
    uint64_t eid = signal_event("contact.created");
    hk_delivery d = {.webhook_id = w1, .event_id = eid, .due_ms = now_ms, .first_ms = now_ms};
    hk_attempt rec = rec_of(w1, eid, false, "HTTP 500");
    struct sub s;
    outcome_op(&s, d, &rec, now_ms + 60000, 10);
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.outcome.vanished && !s.c.op.u.outcome.disabled);
    CHECK(s.c.op.u.outcome.log_id > 0);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT calls || ' ' || errors || ' ' || consecutive || ' ' || (last_error_ms = %llu) || ' ' || "
             "last_error FROM webhook_stats WHERE webhook_id = %u",
             (unsigned long long)now_ms, w1);
    CHECK_STR(q1(sql), "1 1 1 true HTTP 500");
    snprintf(sql, sizeof(sql),
             "SELECT (due_ms - %llu) || ' ' || attempts || ' ' || (first_ms = %llu) FROM deliveries WHERE webhook_id "
             "= %u",
             (unsigned long long)now_ms, (unsigned long long)now_ms, w1);
    CHECK_STR(q1(sql), "60000 1 true");
    snprintf(sql, sizeof(sql),
             "SELECT status || ' ' || error || ' ' || length(request) || ' ' || success || ' ' || disabled FROM "
             "attempts WHERE id = %llu",
             (unsigned long long)s.c.op.u.outcome.log_id);
    CHECK_STR(q1(sql), "500 HTTP 500 21 false false");
    /* The same entry again: it moved, so this one is gone. */
    CHECK_INT(apply(a, &s), 0);
    CHECK(s.c.op.u.outcome.vanished);
    /* The retry succeeds: the entry goes, the failures in a row are forgotten. */
    d.due_ms = now_ms + 60000;
    d.attempts = 1;
    hk_attempt ok = rec_of(w1, eid, true, "");
    outcome_op(&s, d, &ok, 0, 10);
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.outcome.vanished);
    snprintf(sql, sizeof(sql),
             "SELECT calls || ' ' || errors || ' ' || consecutive FROM webhook_stats WHERE webhook_id = %u", w1);
    CHECK_STR(q1(sql), "2 1 0");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = %u", w1);
    CHECK_STR(q1(sql), "0");
    /* A record of another webhook than the entry's is refused. */
    hk_attempt other = rec_of(w3, eid, true, "");
    outcome_op(&s, d, &other, 0, 10);
    CHECK_INT(apply(a, &s), HK_EINVAL);
}

#define RACE 12

struct both_done {
    struct sub *s;
    size_t n;
};

static bool all_done(void *arg)
{
    struct both_done *bd = arg;
    for (size_t i = 0; i < bd->n; i++)
        if (!bd->s[i].done)
            return false;
    return true;
}

static hk_pg_store *other; /* the node that did not disable it */

static bool sees_disabled(void *arg)
{
    enum hk_webhook_state st;
    bool locked;
    return hk_pg_webhook_state(other, *(uint32_t *)arg, &st, &locked) == 0 && st == HK_WH_TOO_MANY_ERRORS;
}

static bool both_see_stats(void *arg)
{
    uint32_t id = *(uint32_t *)arg;
    hk_webhook_stats x, y;
    return hk_pg_webhook_stats(a, id, &x) == 0 && hk_pg_webhook_stats(b, id, &y) == 0 && x.consecutive == 12 &&
           x.calls == 14 && y.consecutive == 12 && y.calls == 14 && y.errors == 13;
}

static void test_two_nodes_disable_a_webhook_once(void)
{
    /* RACE due deliveries of w1 (and of the locked w3), failed by both nodes at once with disable_after 10. */
    static uint64_t eids[RACE];
    for (int i = 0; i < RACE; i++)
        eids[i] = signal_event("contact.created");
    static hk_attempt recs[2 * RACE];
    static struct sub s[2 * RACE];
    for (int i = 0; i < RACE; i++) {
        hk_delivery d = {.webhook_id = w1, .event_id = eids[i], .due_ms = now_ms, .first_ms = now_ms};
        recs[i] = rec_of(w1, eids[i], false, "refused");
        outcome_op(&s[i], d, &recs[i], 0, 10);
        submit(i % 2 ? b : a, &s[i]);
        hk_delivery d3 = {.webhook_id = w3, .event_id = eids[i], .due_ms = now_ms, .first_ms = now_ms};
        recs[RACE + i] = rec_of(w3, eids[i], false, "refused");
        outcome_op(&s[RACE + i], d3, &recs[RACE + i], 0, 10);
        submit(i % 2 ? a : b, &s[RACE + i]);
    }
    struct both_done bd = {s, 2 * RACE};
    CHECK(run_until(all_done, &bd));
    int disabled = 0, ok = 0;
    for (int i = 0; i < 2 * RACE; i++) {
        ok += s[i].status == 0 && !s[i].c.op.u.outcome.vanished;
        disabled += s[i].c.op.u.outcome.disabled;
        CHECK(!(i >= RACE && s[i].c.op.u.outcome.disabled));
    }
    CHECK_INT(ok, 2 * RACE);
    CHECK_INT(disabled, 1);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT state || ' ' || consecutive || ' ' || calls FROM webhooks JOIN webhook_stats ON webhook_id = id "
             "WHERE id = %u",
             w1);
    CHECK_STR(q1(sql), "2 12 14");
    snprintf(sql, sizeof(sql),
             "SELECT state || ' ' || consecutive FROM webhooks JOIN webhook_stats ON webhook_id = id "
             "WHERE id = %u",
             w3);
    CHECK_STR(q1(sql), "0 12");
    /* One state event, queued for its listener, logged on the disabling attempt. */
    CHECK_STR(q1("SELECT count(*) FROM events WHERE name = 'webhook.errors'"), "1");
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.name = 'webhook.errors' "
             "AND d.webhook_id = %u",
             w2);
    CHECK_STR(q1(sql), "1");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM attempts WHERE webhook_id = %u AND disabled", w1);
    CHECK_STR(q1(sql), "1");
    /* Both registries show it: the node that disabled it at once, the other after the notification. */
    hk_pg_store *by = NULL;
    for (int i = 0; i < RACE; i++)
        if (s[i].c.op.u.outcome.disabled)
            by = i % 2 ? b : a;
    enum hk_webhook_state st = HK_WH_ACTIVE;
    bool locked;
    CHECK(by != NULL && hk_pg_webhook_state(by, w1, &st, &locked) == 0);
    CHECK_INT(st, HK_WH_TOO_MANY_ERRORS);
    other = by == a ? b : a;
    CHECK(run_until(sees_disabled, &w1));
    /* The statistics reach both nodes' registries (read once a second), last error included. */
    CHECK(run_until(both_see_stats, &w1));
    hk_webhook_stats ws;
    CHECK_INT(hk_pg_webhook_stats(a, w1, &ws), 0);
    CHECK_STR(ws.last_error, "refused");
    CHECK_INT(hk_pg_webhook_stats(b, 999, &ws), 0);
    CHECK_INT(ws.calls, 0);
}

#define CROSS 16

static void test_groups_of_two_nodes_lock_webhooks_in_one_order(void)
{
    /* CROSS webhooks with one due delivery each; node a submits their outcomes in id order, node b the same
     * webhooks' second deliveries in reverse: both groups lock the same rows, and would deadlock if each took
     * them in its own order (the database would then refuse one group, applied again op by op). */
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO webhooks (id, name, url, registered_ms, updated_ms) SELECT 100 + g, 'x', 'http://x/', 1, 1 "
             "FROM generate_series(1, %d) g; INSERT INTO deliveries (webhook_id, due_ms, event_id) SELECT 100 + g, "
             "1, e FROM generate_series(1, %d) g, generate_series(1, 2) e",
             CROSS, CROSS);
    CHECK_STR(q1(sql), "OK");
    static hk_attempt recs[2 * CROSS];
    static struct sub s[2 * CROSS];
    hk_store_counters ca, cb, ca2, cb2;
    hk_pg_store_get_counters(a, &ca);
    hk_pg_store_get_counters(b, &cb);
    for (int i = 0; i < CROSS; i++) {
        uint32_t wa = 100 + 1 + (uint32_t)i, wb = 100 + CROSS - (uint32_t)i;
        recs[i] = rec_of(wa, 1, false, "x");
        outcome_op(&s[i], (hk_delivery){.webhook_id = wa, .event_id = 1, .due_ms = 1}, &recs[i], 0, 100);
        submit(a, &s[i]);
        recs[CROSS + i] = rec_of(wb, 2, false, "x");
        outcome_op(&s[CROSS + i], (hk_delivery){.webhook_id = wb, .event_id = 2, .due_ms = 1}, &recs[CROSS + i], 0,
                   100);
        submit(b, &s[CROSS + i]);
    }
    struct both_done bd = {s, 2 * CROSS};
    CHECK(run_until(all_done, &bd));
    int ok = 0;
    for (int i = 0; i < 2 * CROSS; i++)
        ok += s[i].status == 0 && !s[i].c.op.u.outcome.vanished;
    CHECK_INT(ok, 2 * CROSS);
    /* Each node's ops in one transaction: none was refused and applied again one by one. */
    hk_pg_store_get_counters(a, &ca2);
    hk_pg_store_get_counters(b, &cb2);
    CHECK_INT(ca2.commits - ca.commits, 1);
    CHECK_INT(cb2.commits - cb.commits, 1);
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE webhook_id > 100"), "0");
}

static void test_a_synchronous_attempt_resend_and_queue_drop(void)
{
    /* A 410 to a synchronous call disables an unlocked webhook at once, never a locked one. */
    uint32_t w4 = create("four", "x.y", false);
    hk_attempt rec = rec_of(w4, 0, false, "HTTP 410");
    rec.sync = true;
    struct sub s = {0};
    s.c.op.type = HK_OP_ATTEMPT;
    s.c.op.u.attempt = (hk_op_attempt){.rec = &rec, .is410 = true, .disable_after = 10};
    CHECK_INT(apply(a, &s), 0);
    CHECK(s.c.op.u.attempt.disabled && !s.c.op.u.attempt.vanished && s.c.op.u.attempt.log_id > 0);
    hk_attempt rec3 = rec_of(w3, 0, false, "HTTP 410");
    s.c.op.u.attempt = (hk_op_attempt){.rec = &rec3, .is410 = true, .disable_after = 10};
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.attempt.disabled);
    hk_attempt gone = rec_of(999, 0, true, "");
    s.c.op.u.attempt = (hk_op_attempt){.rec = &gone, .disable_after = 10};
    CHECK_INT(apply(a, &s), 0);
    CHECK(s.c.op.u.attempt.vanished);

    /* Resend: a known event to a known webhook, due now. */
    uint64_t eid = signal_event("x.y");
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_RESEND;
    s.c.op.u.resend = (hk_op_resend){.webhook_id = w3, .event_id = eid};
    CHECK_INT(apply(b, &s), 0);
    s.c.op.u.resend = (hk_op_resend){.webhook_id = 999, .event_id = eid};
    CHECK_INT(apply(b, &s), HK_ENOTFOUND);
    s.c.op.u.resend = (hk_op_resend){.webhook_id = w3, .event_id = eid + 1000};
    CHECK_INT(apply(b, &s), HK_ENOTFOUND);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = %u AND event_id = %llu", w3,
             (unsigned long long)eid);
    CHECK_STR(q1(sql), "1");

    /* Queue drop: a live webhook's entries stay; a deleted one's go in steps. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_QUEUE_DROP;
    s.c.op.u.queue_drop = (hk_op_queue_drop){.webhook_id = w3, .max = 5};
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.queue_drop.more);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = %u", w3);
    CHECK_STR(q1(sql), "2"); /* the first test's event, and the resend */
    snprintf(sql, sizeof(sql),
             "INSERT INTO deliveries (webhook_id, due_ms, event_id) SELECT %u, %llu, g FROM generate_series(1, 12) g",
             w1, (unsigned long long)now_ms);
    CHECK_STR(q1(sql), "OK");
    snprintf(sql, sizeof(sql), "DELETE FROM webhooks WHERE id = %u", w1);
    CHECK_STR(q1(sql), "OK");
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM deliveries WHERE webhook_id = %u", w1);
    CHECK_STR(q1(sql), "12");
    s.c.op.u.queue_drop = (hk_op_queue_drop){.webhook_id = w1, .max = 10};
    CHECK_INT(apply(a, &s), 0);
    CHECK(s.c.op.u.queue_drop.more);
    CHECK_STR(q1(sql), "2");
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.queue_drop.more);
    CHECK_STR(q1(sql), "0");
}

static void test_users_and_keys(void)
{
    hk_key k1;
    char text[HK_KEY_TEXT_LEN];
    hk_key_make(&k1, 0, NULL, now_ms, text);
    struct sub s = {0};
    s.c.op.type = HK_OP_USER_PUT;
    s.c.op.u.user_put = (hk_op_user_put){
        .user = {.code = "Admin", .full_name = "The Admin", .perms = HK_PERM_ALL}, .key = &k1, .only_first = true};
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.user_put.skipped);
    uint32_t admin = s.c.op.u.user_put.id;
    CHECK_INT(admin, 1);
    /* Seen at once by its node, with its key. */
    hk_key k;
    hk_user u;
    CHECK_INT(hk_pg_key_get(a, k1.hash, &k, &u), 0);
    CHECK_STR(u.code, "Admin");
    /* The first admin only once. */
    s.c.op.u.user_put = (hk_op_user_put){.user = {.code = "Other"}, .only_first = true};
    CHECK_INT(apply(b, &s), 0);
    CHECK(s.c.op.u.user_put.skipped);
    /* Codes are unique case-insensitively; a bad code is refused. */
    s.c.op.u.user_put = (hk_op_user_put){.user = {.code = "ADMIN"}};
    CHECK_INT(apply(b, &s), HK_EEXIST);
    s.c.op.u.user_put = (hk_op_user_put){.user = {.code = ""}};
    CHECK_INT(apply(b, &s), HK_EINVAL);
    s.c.op.u.user_put = (hk_op_user_put){.user = {.code = "ops", .full_name = "Ops"}};
    CHECK_INT(apply(b, &s), 0);
    uint32_t ops = s.c.op.u.user_put.id;
    CHECK_INT(ops, 2);
    /* A rename to its own code in another case is fine. */
    s.c.op.u.user_put = (hk_op_user_put){.user = {.id = ops, .code = "OPS", .full_name = "Ops"}};
    CHECK_INT(apply(b, &s), 0);
    s.c.op.u.user_put = (hk_op_user_put){.user = {.id = 77, .code = "nobody"}};
    CHECK_INT(apply(b, &s), HK_ENOTFOUND);

    /* Keys: for an unknown user, a hash already stored. */
    hk_key k2;
    hk_key_make(&k2, 99, NULL, now_ms, text);
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_KEY_PUT;
    s.c.op.u.key_put.key = k2;
    CHECK_INT(apply(b, &s), HK_ENOTFOUND);
    s.c.op.u.key_put.key.user_id = ops;
    CHECK_INT(apply(b, &s), 0);
    CHECK_INT(apply(b, &s), HK_EEXIST);
    /* Revoke by short id; seen at once by b, and by a after the notification. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_KEY_REVOKE;
    memcpy(s.c.op.u.key_revoke.short_id, k2.short_id, sizeof(k2.short_id));
    CHECK_INT(apply(b, &s), 0);
    CHECK_INT(hk_pg_key_get(b, k2.hash, &k, &u), 0);
    CHECK(k.revoked);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT revoked FROM api_keys WHERE short_id = '%s'", k2.short_id);
    CHECK_STR(q1(sql), "t");
    /* Two keys with one short id: refused, with the reason. */
    uint8_t twin[32];
    memcpy(twin, k2.hash, 32);
    twin[31] ^= 1;
    PGresult *r;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", twin[i]);
    snprintf(sql, sizeof(sql),
             "INSERT INTO api_keys (hash, user_id, created_ms, short_id) VALUES (decode('%s', 'hex'), %u, 1, '%s')",
             hex, ops, k2.short_id);
    r = PQexec(db, sql);
    CHECK_INT(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    CHECK_INT(apply(b, &s), HK_ECONFLICT);
    CHECK(strstr(s.c.op.u.key_revoke.err, "matches 2 keys") != NULL);
    /* By hash; an unknown one. */
    memset(&s.c.op.u.key_revoke, 0, sizeof(s.c.op.u.key_revoke));
    memcpy(s.c.op.u.key_revoke.hash, twin, 32);
    CHECK_INT(apply(a, &s), 0);
    s.c.op.u.key_revoke.hash[0] ^= 0xff;
    CHECK_INT(apply(a, &s), HK_ENOTFOUND);
    snprintf(s.c.op.u.key_revoke.short_id, sizeof(s.c.op.u.key_revoke.short_id), "zzzzzzzz");
    CHECK_INT(apply(a, &s), HK_ENOTFOUND);
}

static void test_nodes_and_accounts(void)
{
    struct sub s = {0};
    s.c.op.type = HK_OP_NODE_PUT;
    s.c.op.u.node_put.node = (hk_node){.id = 1, .parent = 0, .name = "root"};
    CHECK_INT(apply(a, &s), 0);
    s.c.op.u.node_put.node = (hk_node){.id = 2, .parent = 1, .name = "child"};
    CHECK_INT(apply(a, &s), 0);
    hk_node n;
    CHECK_INT(hk_pg_node_get(a, 2, &n), 0);
    CHECK_INT(n.parent, 1);
    s.c.op.u.node_put.node = (hk_node){.id = 3, .parent = 9, .name = "orphan"};
    CHECK_INT(apply(a, &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.node_put.err, "node 9 does not exist");
    s.c.op.u.node_put.node = (hk_node){.id = 1, .parent = 2, .name = "root"};
    CHECK_INT(apply(b, &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.node_put.err, "node 1 cannot be its own ancestor (parent 2)");
    s.c.op.u.node_put.node = (hk_node){.id = 0, .name = "zero"};
    CHECK_INT(apply(b, &s), HK_EINVAL);
    s.c.op.u.node_put.node = (hk_node){.id = 4, .name = ""};
    CHECK_INT(apply(b, &s), HK_EINVAL);
    CHECK_STR(q1("SELECT string_agg(id || ':' || parent, ',' ORDER BY id) FROM nodes"), "1:0,2:1");

    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_ACCOUNT_PUT;
    s.c.op.u.account_put.account = (hk_account){.id = 10, .node = 2, .name = "acct"};
    CHECK_INT(apply(b, &s), 0);
    hk_account ac;
    CHECK_INT(hk_pg_account_get(b, 10, &ac), 0);
    s.c.op.u.account_put.account = (hk_account){.id = 11, .node = 5, .name = "lost"};
    CHECK_INT(apply(b, &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.account_put.err, "node 5 does not exist");
}

static int import(hk_pg_store *on, bool accounts, const char *text, struct sub *s)
{
    memset(s, 0, sizeof(*s));
    s->c.op.type = HK_OP_TREE_IMPORT;
    s->c.op.u.tree_import = (hk_op_tree_import){.accounts = accounts, .text = text, .len = strlen(text)};
    return apply(on, s);
}

static bool sees_node_30(void *arg)
{
    hk_node n;
    return hk_pg_node_get(arg, 30, &n) == 0;
}

static void test_a_tree_import(void)
{
    struct sub s;
    /* A header, a byte order mark, CRLF, a quoted name, a parent later in the file. */
    CHECK_INT(import(a, false, "\xef\xbb\xbfid,parent,name\r\n21,20,\"Sales, North\"\r\n\r\n20,2,Sales\r\n", &s), 0);
    CHECK_INT(s.c.op.u.tree_import.count, 2);
    CHECK_STR(q1("SELECT string_agg(id || ':' || parent || ':' || name, ',' ORDER BY id) FROM nodes WHERE id >= 20"),
              "20:2:Sales,21:20:Sales, North");
    /* A cycle through the file undoes all of it, with the line. */
    CHECK_INT(import(a, false, "30,0,new\n20,21,moved\n", &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.tree_import.err, "line 2: node 20 cannot be its own ancestor (parent 21)");
    CHECK_INT(s.c.op.u.tree_import.count, 0);
    CHECK_STR(q1("SELECT count(*) || ' ' || (SELECT parent FROM nodes WHERE id = 20) FROM nodes WHERE id = 30"), "0 2");
    /* Refused before the database: a repeated id, a bad field. */
    CHECK_INT(import(a, false, "30,0,a\n30,0,b\n", &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.tree_import.err, "line 2: id 30 is already on line 1");
    CHECK_INT(import(a, false, "x,0,a\n", &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.tree_import.err, "line 1: id \"x\" is not a positive integer");
    /* Accounts: each under an existing node. */
    CHECK_INT(import(b, true, "40,21,acct one\n41,99,lost\n", &s), HK_EINVAL);
    CHECK_STR(s.c.op.u.tree_import.err, "line 2: node 99 does not exist");
    CHECK_STR(q1("SELECT count(*) FROM accounts WHERE id >= 40"), "0");
    CHECK_INT(import(b, true, "40,21,acct one\n41,20,acct two\n", &s), 0);
    CHECK_STR(q1("SELECT count(*) FROM accounts WHERE id >= 40"), "2");
    /* Both registries read the imported rows. */
    CHECK_INT(import(b, false, "30,0,new\n", &s), 0);
    CHECK(run_until(sees_node_30, b));
    CHECK(run_until(sees_node_30, a));
    hk_account ac;
    CHECK_INT(hk_pg_account_get(a, 41, &ac), 0);
}

static int recover_step(uint32_t wid, uint64_t since, uint64_t until, uint64_t run_ms, uint64_t from, uint32_t max,
                        hk_op_recover *out)
{
    struct sub s = {0};
    s.c.op.type = HK_OP_RECOVER;
    s.c.op.now_ms = now_ms;
    s.c.op.u.recover = (hk_op_recover){
        .webhook_id = wid, .since_ms = since, .until_ms = until, .run_ms = run_ms, .from_log_id = from, .max = max};
    int rc = apply(a, &s);
    *out = s.c.op.u.recover;
    return rc;
}

static void test_a_recovery(void)
{
    uint32_t w = create("recovering", "r.s", false);
    uint64_t ev[6];
    for (int i = 0; i < 6; i++)
        ev[i] = signal_event("r.s");
    char sql[1024];
    uint64_t since = now_ms - 3600000, until = now_ms - 60000;
    snprintf(sql, sizeof(sql), "DELETE FROM deliveries WHERE webhook_id = %u", w);
    CHECK_STR(q1(sql), "OK");
    /* 0: failed, no retry, in the window: recovered. 1: the same, then a success after the window: not.
     * 2: a retry was due: not. 3: failed before the window: not. 4: queued still: not. 5: a 410 (no retry due,
     * not marked exhausted) in the window, after an earlier success: recovered. */
    snprintf(sql, sizeof(sql),
             "INSERT INTO attempts (webhook_id, event_id, started_ms, success, exhausted, next_due_ms) VALUES "
             "(%u, %llu, %llu, false, true, 0), (%u, %llu, %llu, false, true, 0), (%u, %llu, %llu, true, false, 0), "
             "(%u, %llu, %llu, false, false, %llu), (%u, %llu, %llu, false, true, 0), "
             "(%u, %llu, %llu, false, true, 0), (%u, %llu, %llu, true, false, 0), (%u, %llu, %llu, false, false, 0)",
             w, (unsigned long long)ev[0], (unsigned long long)(since + 1000), w, (unsigned long long)ev[1],
             (unsigned long long)(since + 2000), w, (unsigned long long)ev[1], (unsigned long long)(until + 1000), w,
             (unsigned long long)ev[2], (unsigned long long)(since + 3000), (unsigned long long)now_ms, w,
             (unsigned long long)ev[3], (unsigned long long)(since - 1000), w, (unsigned long long)ev[4],
             (unsigned long long)(since + 4000), w, (unsigned long long)ev[5], (unsigned long long)(since + 5000), w,
             (unsigned long long)ev[5], (unsigned long long)(since + 6000));
    CHECK_STR(q1(sql), "OK");
    snprintf(sql, sizeof(sql), "INSERT INTO deliveries (webhook_id, due_ms, event_id) VALUES (%u, %llu, %llu)", w,
             (unsigned long long)(now_ms + 3600000), (unsigned long long)ev[4]);
    CHECK_STR(q1(sql), "OK");

    /* Steps of one: two deliveries, then a step that finds nothing more. */
    hk_op_recover r;
    uint64_t from = 0, queued = 0;
    int steps = 0;
    do {
        CHECK_INT(recover_step(w, since, until, now_ms, from, 1, &r), 0);
        CHECK(!r.gone);
        queued += r.queued;
        from = r.next_log_id;
    } while (!r.done && ++steps < 10);
    CHECK(r.done);
    CHECK_INT(steps, 2);
    CHECK_INT(queued, 2);
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(event_id::text, ',' ORDER BY event_id) FROM deliveries WHERE webhook_id = %u AND "
             "due_ms = %llu AND attempts = 0",
             w, (unsigned long long)now_ms);
    char want[64];
    snprintf(want, sizeof(want), "%llu,%llu", (unsigned long long)ev[0], (unsigned long long)ev[5]);
    CHECK_STR(q1(sql), want);
    /* A second recovery of the window queues nothing more: they are queued. */
    CHECK_INT(recover_step(w, since, until, now_ms, 0, 0, &r), 0);
    CHECK(r.done && r.queued == 0);

    CHECK_INT(recover_step(999, since, until, now_ms, 0, 0, &r), HK_ENOTFOUND);
    CHECK_INT(recover_step(w, until, since, now_ms, 0, 0, &r), HK_EINVAL);
    CHECK_INT(recover_step(w, since, until, now_ms - 2 * DAY_MS, 0, 0, &r), UV_ETIMEDOUT);
    /* A webhook deleted during the run: its later steps say so and queue nothing. */
    CHECK_INT(recover_step(999, since, until, now_ms, 5, 0, &r), 0);
    CHECK(r.gone && r.done && r.queued == 0);
}

static void test_a_prune_step(void)
{
    /* An attempt partition of ten days ago with a record, old events with deliveries, old Idempotency-Keys. */
    uint64_t old = now_ms - 10 * DAY_MS;
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT hookd_attempts_partition(%llu); INSERT INTO attempts (webhook_id, started_ms) VALUES (1, %llu); "
             "UPDATE events SET ts_ms = %llu WHERE id <= 3; INSERT INTO idempotency_keys VALUES (1, 'k1', %llu, 1), "
             "(1, 'k2', %llu, 1)",
             (unsigned long long)(old / DAY_MS), (unsigned long long)old, (unsigned long long)old,
             (unsigned long long)old, (unsigned long long)now_ms);
    PQclear(PQexec(db, sql));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM attempts WHERE started_ms = %llu", (unsigned long long)old);
    CHECK_STR(q1(sql), "1");
    const char *before_deliveries = q1("SELECT count(*) FROM deliveries WHERE event_id > 3");
    long keep = atol(before_deliveries);
    struct sub s = {0};
    s.c.op.type = HK_OP_PRUNE;
    s.c.op.u.prune = (hk_op_prune){.attempts_before_ms = now_ms - DAY_MS * 5,
                                   .events_before_ms = now_ms - DAY_MS * 5,
                                   .idempotency_before_ms = now_ms - DAY_MS * 5,
                                   .max = 1000};
    CHECK_INT(apply(a, &s), 0);
    CHECK(!s.c.op.u.prune.more);
    /* Events 1..3 and the old key went; the partition was dropped whole. */
    CHECK_INT(s.c.op.u.prune.removed, 4);
    snprintf(sql, sizeof(sql),
             "SELECT to_regclass('attempts_' || to_char(to_timestamp(%llu / 1000) AT TIME ZONE "
             "'UTC', 'YYYYMMDD')) IS NULL",
             (unsigned long long)old);
    CHECK_STR(q1(sql), "t");
    CHECK_STR(q1("SELECT count(*) FROM events WHERE id <= 3"), "0");
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE event_id <= 3"), "0");
    CHECK_STR(q1("SELECT string_agg(convert_from(key, 'UTF8'), ',') FROM idempotency_keys"), "k2");
    char want[32];
    snprintf(want, sizeof(want), "%ld", keep);
    CHECK_STR(q1("SELECT count(*) FROM deliveries WHERE event_id > 3"), want);
}

static void test_a_prune_step_stops_at_max(void)
{
    PQclear(PQexec(db, "UPDATE events SET ts_ms = 1 WHERE id <= 8"));
    struct sub s = {0};
    s.c.op.type = HK_OP_PRUNE;
    s.c.op.u.prune = (hk_op_prune){.events_before_ms = 2, .max = 2};
    CHECK_INT(apply(b, &s), 0);
    CHECK(s.c.op.u.prune.more);
    CHECK(s.c.op.u.prune.removed >= 1 && s.c.op.u.prune.removed <= 2);
    /* Steps until done. */
    for (int i = 0; i < 10 && s.c.op.u.prune.more; i++)
        CHECK_INT(apply(b, &s), 0);
    CHECK(!s.c.op.u.prune.more);
    CHECK_STR(q1("SELECT count(*) FROM events WHERE ts_ms = 1"), "0");
}

int main(void)
{
    loop = uv_default_loop();
    const char *ci = fx_pg_begin(&db);
    now_ms = (uint64_t)atoll(q1("SELECT (extract(epoch FROM now()) * 1000)::bigint"));
    hk_pg_store_opts o = {.conninfo = ci, .pool_size = 2, .queue_timeout_ms = 5000};
    CHECK_INT(hk_pg_store_open(&a, loop, &o), 0);
    CHECK_INT(hk_pg_store_open(&b, loop, &o), 0);
    CHECK(run_until(ready, a) && run_until(ready, b));
    test_an_outcome_counts_logs_and_moves_the_delivery();
    test_two_nodes_disable_a_webhook_once();
    test_groups_of_two_nodes_lock_webhooks_in_one_order();
    test_a_synchronous_attempt_resend_and_queue_drop();
    test_users_and_keys();
    test_nodes_and_accounts();
    test_a_tree_import();
    test_a_recovery();
    test_a_prune_step();
    test_a_prune_step_stops_at_max();
    hk_pg_store_close(a);
    hk_pg_store_close(b);
    fx_pg_end(loop, db);
    return unit_done();
}
