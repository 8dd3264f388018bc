/*
 * test_pg_store.c: the PostgreSQL engine's group commit (state/pg_store.c,
 * pg_ops.c, pg_schema/002_ops.sql) against a real server
 * (tests/unit/pg_fixture.h), checked through a second connection:
 *  - many ops submitted at once commit in few transactions, and each op's
 *    done runs once its change is visible to another session (committed);
 *  - a signal fans out to the Active subscribers only, stores the event's
 *    bytes as given, and an Idempotency-Key stores it once within its
 *    window (also per user, and again after it);
 *  - webhook put, delete and lock follow the embedded engine's rules:
 *    ids from the sequence, the lock a client cannot touch, If-Unmodified-
 *    Since, an extension held by another webhook, re-activation resetting
 *    the consecutive failures, a state event in the same commit delivered
 *    to its subscribers but not to the webhook itself;
 *  - an op the database refuses fails alone, its group's others commit;
 *  - a change to the registry is announced on hookd_registry;
 *  - with the server stopped, ops fail after the queue timeout, and work
 *    again once it is back.
 */
#include <libpq-fe.h>

#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_store.h"
#include "unit.h"

#define BOUND_MS 60000

static uv_loop_t *loop;
static hk_pg_store *store;
static PGconn *db; /* the second session the tests look through */

/* Runs the loop until *flag is set (or the bound passed); returns *flag. */
static bool run_until(const bool *flag)
{
    return fx_pg_run_until(loop, fx_pg_flag_set, (void *)flag);
}

/* The first value of a query on the second session ("" when no row, "ERROR: ..." on error). */
static const char *q1(const char *sql)
{
    static char out[1024];
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(out, sizeof(out), "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    else
        snprintf(out, sizeof(out), "ERROR: %s", PQresultErrorMessage(r));
    PQclear(r);
    return out;
}

/* A submitted op and what its done saw. */
struct sub {
    hk_commit c;
    bool done;
    int status;
    char seen[128]; /* with check_sql: its answer on the second session, taken inside done */
    const char *check_sql;
};

static void on_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    s->done = true;
    s->status = status;
    if (s->check_sql != NULL)
        snprintf(s->seen, sizeof(s->seen), "%s", q1(s->check_sql));
}

static int apply(struct sub *s)
{
    s->done = false;
    s->c.done = on_done;
    if (s->c.op.now_ms == 0)
        s->c.op.now_ms = 1000000;
    hk_pg_store_submit(store, &s->c);
    CHECK(!s->done);
    if (!run_until(&s->done))
        return UV_ETIMEDOUT;
    return s->status;
}

static void webhook(hk_webhook *w, const char *name, const char *ev1, const char *ev2)
{
    hk_webhook_init(w);
    free(w->name);
    w->name = hk_strdup(name);
    free(w->url);
    w->url = hk_strdup("http://127.0.0.1:9/hook");
    w->events = hk_calloc(2, sizeof(char *));
    if (ev1 != NULL)
        w->events[w->nevents++] = hk_strdup(ev1);
    if (ev2 != NULL)
        w->events[w->nevents++] = hk_strdup(ev2);
    w->registered_ms = w->updated_ms = 1000;
    w->registered_by = w->updated_by = 1;
}

static uint32_t create(hk_webhook *w)
{
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = w;
    CHECK_INT(apply(&s), 0);
    w->id = s.c.op.u.webhook_put.id;
    return w->id;
}

static void signal_op(struct sub *s, const char *name, const char *data, uint32_t user, const char *key, uint64_t now)
{
    memset(s, 0, sizeof(*s));
    s->c.op.type = HK_OP_SIGNAL;
    s->c.op.now_ms = now;
    hk_op_signal *g = &s->c.op.u.signal;
    g->name = name;
    g->primary_key = 42;
    g->data = data;
    g->data_len = strlen(data);
    g->changes = "[\"a\"]";
    g->changes_len = 5;
    g->user_id = user;
    for (int i = 0; i < 16; i++)
        g->uuid[i] = (uint8_t)(i * 17);
    g->idem_key = key;
    g->idem_window_ms = 60000;
}

/* ---- the tests ------------------------------------------------------------------------------ */

static hk_webhook w1, w2, w3;

static void test_webhooks_are_created_with_ids_from_the_sequence(void)
{
    webhook(&w1, "one", "contact.created", "contact.changed");
    webhook(&w2, "two", "contact.created", NULL);
    webhook(&w3, "three", "contact.created", NULL);
    w3.state = HK_WH_STOPPED;
    CHECK_INT(create(&w1), 1);
    CHECK_INT(create(&w2), 2);
    CHECK_INT(create(&w3), 3);
    CHECK_STR(q1("SELECT name || ' ' || url || ' ' || state || ' ' || array_to_string(events, ',') FROM webhooks "
                 "WHERE id = 1"),
              "one http://127.0.0.1:9/hook 0 contact.created,contact.changed");
    CHECK_STR(q1("SELECT string_agg(webhook_id::text, ',' ORDER BY webhook_id) FROM webhook_subscriptions WHERE "
                 "event = 'contact.created'"),
              "1,2,3");
    /* Event types get ids in the order the names were first used. */
    CHECK_STR(q1("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM event_types"),
              "1=contact.created,2=contact.changed");
}

static void test_a_signal_fans_out_to_active_subscribers(void)
{
    struct sub s;
    signal_op(&s, "contact.created", "{\"b\":1,\"a\":\"\\u00e9\"}", 7, NULL, 2000000);
    s.check_sql = "SELECT count(*) FROM events";
    CHECK_INT(apply(&s), 0);
    hk_op_signal *g = &s.c.op.u.signal;
    CHECK(!g->duplicate);
    CHECK(g->event_id > 0);
    CHECK_INT(g->nwebhooks, 2);
    CHECK(g->nwebhooks == 2 && g->webhooks[0] == 1 && g->webhooks[1] == 2);
    /* Done ran once another session could see the event: after COMMIT. */
    CHECK_STR(s.seen, "1");
    /* Data is stored byte for byte (key order, escapes), with the event's other fields. */
    CHECK_STR(q1("SELECT data FROM events"), "{\"b\":1,\"a\":\"\\u00e9\"}");
    CHECK_STR(q1("SELECT ts_ms || ' ' || primary_key || ' ' || user_id || ' ' || uuid || ' ' || name || ' ' || "
                 "changes FROM events"),
              "2000000 42 7 00112233-4455-6677-8899-aabbccddeeff contact.created [\"a\"]");
    CHECK_STR(q1("SELECT string_agg(webhook_id || ':' || due_ms || ':' || attempts || ':' || first_ms, ',' ORDER BY "
                 "webhook_id) FROM deliveries"),
              "1:2000000:0:2000000,2:2000000:0:2000000");
    hk_op_free_out(&s.c.op);
    /* Patterns: "*" and "prefix.*" reach every name under them, each webhook once; a state event's name
     * (webhook{ID}.<kind>) only its exact subscribers. */
    hk_webhook p1, p2;
    webhook(&p1, "star", "*", "contact.*");
    webhook(&p2, "prefix", "sale.order.*", "sale.*");
    CHECK_INT(create(&p1), 4);
    CHECK_INT(create(&p2), 5);
    static const struct {
        const char *name, *want;
    } cases[] = {{"contact.created", "1,2,4"},
                 {"sale.order.created", "4,5"},
                 {"sale.", "4"},
                 {"sale", "4"},
                 {"webhook1.stopped", ""},
                 {"x.y.z", "4"}};
    for (size_t i = 0; i < HK_ARRAY_SIZE(cases); i++) {
        signal_op(&s, cases[i].name, "{}", 12, NULL, 2500000);
        CHECK_INT(apply(&s), 0);
        char got[64] = "";
        for (size_t k = 0; k < s.c.op.u.signal.nwebhooks; k++)
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%u", k ? "," : "", s.c.op.u.signal.webhooks[k]);
        if (strcmp(got, cases[i].want) != 0)
            fprintf(stderr, "%s: %s\n", cases[i].name, got);
        CHECK_STR(got, cases[i].want);
        hk_op_free_out(&s.c.op);
    }
    /* Gone again, so that the tests below see the three webhooks they know. */
    PQclear(PQexec(
        db, "DELETE FROM webhooks WHERE id IN (4, 5); DELETE FROM deliveries; SELECT setval('webhook_id_seq', 3)"));
    hk_webhook_free(&p1);
    hk_webhook_free(&p2);
    /* A name nobody subscribes to is stored, registered, and queued for nobody. */
    signal_op(&s, "nobody.listens", "{}", 7, NULL, 2000001);
    CHECK_INT(apply(&s), 0);
    CHECK_INT(s.c.op.u.signal.nwebhooks, 0);
    CHECK_STR(q1("SELECT count(*) FROM event_types WHERE name = 'nobody.listens'"), "1");
    hk_op_free_out(&s.c.op);
}

static void test_an_idempotency_key_stores_the_event_once(void)
{
    struct sub a, b, c, d;
    const char *events_before = q1("SELECT count(*) FROM events");
    long n0 = atol(events_before);
    signal_op(&a, "contact.changed", "{}", 7, "key-1", 3000000);
    CHECK_INT(apply(&a), 0);
    CHECK(!a.c.op.u.signal.duplicate);
    signal_op(&b, "contact.changed", "{}", 7, "key-1", 3000000 + 59999);
    CHECK_INT(apply(&b), 0);
    CHECK(b.c.op.u.signal.duplicate);
    CHECK(b.c.op.u.signal.event_id == a.c.op.u.signal.event_id);
    CHECK_INT(b.c.op.u.signal.nwebhooks, 0);
    char want[32];
    snprintf(want, sizeof(want), "%ld", n0 + 1);
    CHECK_STR(q1("SELECT count(*) FROM events"), want);
    /* Another user's key is another key; a key past its window stores a new event. */
    signal_op(&c, "contact.changed", "{}", 8, "key-1", 3000000 + 1);
    CHECK_INT(apply(&c), 0);
    CHECK(!c.c.op.u.signal.duplicate);
    signal_op(&d, "contact.changed", "{}", 7, "key-1", 3000000 + 60000);
    CHECK_INT(apply(&d), 0);
    CHECK(!d.c.op.u.signal.duplicate);
    CHECK(d.c.op.u.signal.event_id != a.c.op.u.signal.event_id);
    CHECK_STR(q1("SELECT recorded_ms FROM idempotency_keys WHERE user_id = 7"), "3060000");
    /* Two of the same key in one group: the second is the duplicate. */
    struct sub e, f;
    signal_op(&e, "contact.changed", "{}", 7, "key-2", 4000000);
    signal_op(&f, "contact.changed", "{}", 7, "key-2", 4000000);
    e.c.done = f.c.done = on_done;
    hk_pg_store_submit(store, &e.c);
    hk_pg_store_submit(store, &f.c);
    CHECK(run_until(&f.done) && e.done);
    CHECK(!e.c.op.u.signal.duplicate && f.c.op.u.signal.duplicate);
    CHECK(e.c.op.u.signal.event_id == f.c.op.u.signal.event_id);
    /* A key longer than the limit is refused before it reaches the database. */
    hk_op_free_out(&a.c.op);
    char longkey[HK_IDEMPOTENCY_KEY_MAX + 2];
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    signal_op(&a, "contact.changed", "{}", 7, longkey, 5000000);
    CHECK_INT(apply(&a), HK_EINVAL);
    hk_op_free_out(&a.c.op);
    hk_op_free_out(&c.c.op);
    hk_op_free_out(&d.c.op);
    hk_op_free_out(&e.c.op);
}

#define MANY 200

static void test_many_ops_commit_in_few_transactions(void)
{
    static struct sub s[MANY];
    hk_store_counters before, after;
    hk_pg_store_get_counters(store, &before);
    for (int i = 0; i < MANY; i++) {
        signal_op(&s[i], "contact.created", "{}", 9, NULL, 6000000 + (uint64_t)i);
        s[i].c.done = on_done;
        hk_pg_store_submit(store, &s[i].c);
    }
    CHECK(hk_pg_store_busy(store));
    CHECK(run_until(&s[MANY - 1].done));
    bool all = true;
    for (int i = 0; i < MANY; i++) {
        all = all && s[i].done && s[i].status == 0 && s[i].c.op.u.signal.nwebhooks == 2;
        hk_op_free_out(&s[i].c.op);
    }
    CHECK(all);
    CHECK(!hk_pg_store_busy(store));
    hk_pg_store_get_counters(store, &after);
    /* max_batch is 64: all were waiting when the first group formed, so four groups took them. */
    CHECK_INT(after.commits - before.commits, 4);
    CHECK_INT(after.ops - before.ops, MANY);
    CHECK_STR(q1("SELECT count(*) FROM events WHERE user_id = 9"), "200");
    CHECK_STR(q1("SELECT count(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.user_id = 9"), "400");
}

static void test_an_op_the_database_refuses_fails_alone(void)
{
    /* Data that is not UTF-8 cannot be stored as text: that signal fails, its group's others commit. */
    struct sub s[3];
    signal_op(&s[0], "contact.created", "{\"ok\":1}", 10, NULL, 7000000);
    signal_op(&s[1], "contact.created", "{\"bad\":\"\xff\xfe\"}", 10, NULL, 7000000);
    signal_op(&s[2], "contact.created", "{\"ok\":2}", 10, NULL, 7000000);
    for (int i = 0; i < 3; i++) {
        s[i].c.done = on_done;
        hk_pg_store_submit(store, &s[i].c);
    }
    CHECK(run_until(&s[2].done) && s[0].done && s[1].done);
    CHECK_INT(s[0].status, 0);
    CHECK_INT(s[1].status, HK_ESTORE);
    CHECK_INT(s[2].status, 0);
    CHECK_STR(q1("SELECT string_agg(data, ',' ORDER BY id) FROM events WHERE user_id = 10"), "{\"ok\":1},{\"ok\":2}");
    for (int i = 0; i < 3; i++)
        hk_op_free_out(&s[i].c.op);
}

static void test_webhook_rules(void)
{
    struct sub s = {0};
    hk_webhook w;
    /* Replacing one that does not exist. */
    webhook(&w, "ghost", NULL, NULL);
    w.id = 99;
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply(&s), HK_ENOTFOUND);
    hk_webhook_free(&w);

    /* The operator's lock: a client can neither change nor delete a locked webhook, nor unlock it. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_LOCK;
    s.c.op.u.webhook_lock = (hk_op_webhook_lock){.id = 2, .locked = true};
    CHECK_INT(apply(&s), 0);
    CHECK_STR(q1("SELECT locked FROM webhooks WHERE id = 2"), "t");
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_LOCK;
    s.c.op.u.webhook_lock = (hk_op_webhook_lock){.id = 77, .locked = true};
    CHECK_INT(apply(&s), HK_ENOTFOUND);
    hk_webhook_copy(&w, &w2);
    free(w.name);
    w.name = hk_strdup("renamed");
    w.locked = false;
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put = (hk_op_webhook_put){.webhook = &w, .by_client = true};
    CHECK_INT(apply(&s), HK_ELOCKED);
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_DELETE;
    s.c.op.u.webhook_delete = (hk_op_webhook_delete){.id = 2, .by_client = true};
    CHECK_INT(apply(&s), HK_ELOCKED);
    /* An operator's put keeps what it says, a client's put on an unlocked one keeps the lock. */
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put = (hk_op_webhook_put){.webhook = &w, .by_client = false};
    CHECK_INT(apply(&s), 0);
    CHECK_STR(q1("SELECT name || ' ' || locked FROM webhooks WHERE id = 2"), "renamed false");
    hk_webhook_free(&w);

    /* If-Unmodified-Since, to the second: w1 was updated at 1000 ms. */
    hk_webhook_copy(&w, &w1);
    w.updated_ms = 5000;
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put = (hk_op_webhook_put){.webhook = &w, .by_client = true, .unmodified_since_ms = 999};
    CHECK_INT(apply(&s), HK_ECONFLICT);
    s.c.op.u.webhook_put.unmodified_since_ms = 1999;
    CHECK_INT(apply(&s), 0);
    hk_webhook_free(&w);

    /* An extension is one webhook's. */
    hk_webhook_copy(&w, &w1);
    w.extension = hk_strdup("ext-a");
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put = (hk_op_webhook_put){.webhook = &w};
    CHECK_INT(apply(&s), 0);
    CHECK_INT(apply(&s), 0); /* its own again */
    hk_webhook_free(&w);
    hk_webhook_copy(&w, &w2);
    w.extension = hk_strdup("ext-a");
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put = (hk_op_webhook_put){.webhook = &w};
    CHECK_INT(apply(&s), HK_EEXIST);
    CHECK_STR(q1("SELECT string_agg(id || '=' || coalesce(extension, '-'), ',' ORDER BY id) FROM webhooks"),
              "1=ext-a,2=-,3=-");
    hk_webhook_free(&w);
}

static void test_reactivation_and_its_state_event(void)
{
    /* Webhook 1 was disabled by the failure rules after 10 failures; webhook 2 listens for its state events. */
    PQclear(PQexec(db, "UPDATE webhooks SET state = 2 WHERE id = 1; INSERT INTO webhook_stats (webhook_id, calls, "
                       "errors, consecutive) VALUES (1, 12, 11, 10)"));
    hk_webhook w;
    hk_webhook_copy(&w, &w2);
    free(w.name);
    w.name = hk_strdup("renamed");
    hk_webhook_free(&w2);
    hk_webhook_copy(&w2, &w);
    free(w.events[0]);
    w.events[0] = hk_strdup("webhook1.started");
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply(&s), 0);
    hk_webhook_free(&w);
    /* Webhook 1 subscribes to its own state events too: it never gets them. */
    hk_webhook_copy(&w, &w1);
    w.extension = hk_strdup("ext-a");
    free(w.events[1]);
    w.events[1] = hk_strdup("webhook1.started");
    w.state = HK_WH_ACTIVE;
    memset(&s, 0, sizeof(s));
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.now_ms = 8000000;
    s.c.op.u.webhook_put =
        (hk_op_webhook_put){.webhook = &w, .by_client = true, .event = {.kind = "started", .reason = "by \"x\"\n"}};
    for (int i = 0; i < 16; i++)
        s.c.op.u.webhook_put.event.uuid[i] = 0xab;
    CHECK_INT(apply(&s), 0);
    hk_webhook_free(&w);
    CHECK_STR(q1("SELECT state || ' ' || consecutive || ' ' || calls FROM webhooks JOIN webhook_stats ON "
                 "webhook_id = id WHERE id = 1"),
              "0 0 12");
    CHECK_STR(q1("SELECT name || ' ' || primary_key || ' ' || user_id || ' ' || data || ' ' || changes FROM events "
                 "WHERE ts_ms = 8000000"),
              "webhook.started 1 0 {\"WebhookId\":1,\"State\":\"started\",\"Reason\":\"by \\\"x\\\"\\u000a\"} "
              "[\"WebhookId\",\"State\",\"Reason\"]");
    CHECK_STR(q1("SELECT string_agg(d.webhook_id::text, ',') FROM deliveries d JOIN events e ON e.id = d.event_id "
                 "WHERE e.ts_ms = 8000000"),
              "2");
    CHECK_STR(q1("SELECT count(*) FROM event_types WHERE name = 'webhook1.started'"), "1");
}

static void test_delete_takes_the_webhook_with_its_rows(void)
{
    PQclear(PQexec(db, "INSERT INTO attempts (webhook_id, started_ms, success) SELECT 3, 9000000 + g, false FROM "
                       "generate_series(1, 5) g"));
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_DELETE;
    s.c.op.u.webhook_delete = (hk_op_webhook_delete){.id = 3, .by_client = true};
    CHECK_INT(apply(&s), 0);
    CHECK_STR(q1("SELECT count(*) FROM webhooks WHERE id = 3"), "0");
    CHECK_STR(q1("SELECT count(*) FROM webhook_subscriptions WHERE webhook_id = 3"), "0");
    CHECK_STR(q1("SELECT count(*) FROM attempts WHERE webhook_id = 3"), "0");
    CHECK_INT(apply(&s), HK_ENOTFOUND);
    /* Its id is never given again. */
    hk_webhook w;
    webhook(&w, "four", NULL, NULL);
    CHECK_INT(create(&w), 4);
    hk_webhook_free(&w);
}

static void test_an_op_type_not_applied_yet(void)
{
    struct sub s = {0};
    s.c.op.type = (enum hk_op_type)99; /* none the seam knows */
    CHECK_INT(apply(&s), UV_ENOSYS);
}

struct heard {
    bool flag;
    char payloads[512];
};

static void on_registry(const char *channel, const char *payload, void *arg)
{
    struct heard *h = arg;
    if (payload == NULL || strncmp(payload, "webhooks ", 9) != 0)
        return;
    size_t n = strlen(h->payloads);
    snprintf(h->payloads + n, sizeof(h->payloads) - n, "%s%s", n ? "," : "", payload);
    h->flag = true;
}

static void test_registry_changes_are_announced(void)
{
    static struct heard h;
    CHECK_INT(hk_pg_listen(hk_pg_store_pool(store), "hookd_registry", on_registry, &h), 0);
    /* Subscribed (payload NULL) first; then a lock through the engine is announced. */
    uv_run(loop, UV_RUN_NOWAIT);
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_LOCK;
    s.c.op.u.webhook_lock = (hk_op_webhook_lock){.id = 1, .locked = true};
    /* The LISTEN may still be on its way: lock until the announcement comes. */
    uint64_t end = uv_now(loop) + BOUND_MS;
    while (!h.flag && uv_now(loop) < end) {
        CHECK_INT(apply(&s), 0);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    CHECK(h.flag);
    CHECK(strstr(h.payloads, "webhooks 1") != NULL);
}

static void test_a_stopped_server_fails_ops_then_they_work_again(void)
{
    struct sub s;
    CHECK_INT(fx_pg_ctl("stop"), 0);
    signal_op(&s, "contact.created", "{}", 11, "key-3", 10000000);
    CHECK_INT(apply(&s), UV_ECONNREFUSED);
    CHECK_INT(fx_pg_ctl("start"), 0);
    PQreset(db);
    CHECK_STR(q1("SELECT count(*) FROM events WHERE user_id = 11"), "0");
    signal_op(&s, "contact.created", "{}", 11, "key-3", 10000000);
    CHECK_INT(apply(&s), 0);
    CHECK(!s.c.op.u.signal.duplicate);
    CHECK_STR(q1("SELECT count(*) FROM events WHERE user_id = 11"), "1");
    hk_op_free_out(&s.c.op);
}

int main(void)
{
    loop = uv_default_loop();
    const char *ci = fx_pg_begin(&db);
    hk_pg_store_opts o = {.conninfo = ci, .pool_size = 2, .max_batch = 64, .queue_timeout_ms = 1000};
    CHECK_INT(hk_pg_store_open(&store, loop, &o), 0);
    test_webhooks_are_created_with_ids_from_the_sequence();
    test_a_signal_fans_out_to_active_subscribers();
    test_an_idempotency_key_stores_the_event_once();
    test_many_ops_commit_in_few_transactions();
    test_an_op_the_database_refuses_fails_alone();
    test_webhook_rules();
    test_reactivation_and_its_state_event();
    test_delete_takes_the_webhook_with_its_rows();
    test_an_op_type_not_applied_yet();
    test_registry_changes_are_announced();
    test_a_stopped_server_fails_ops_then_they_work_again();
    hk_pg_store_close(store);
    hk_webhook_free(&w1);
    hk_webhook_free(&w2);
    hk_webhook_free(&w3);
    fx_pg_end(loop, db);
    return unit_done();
}
