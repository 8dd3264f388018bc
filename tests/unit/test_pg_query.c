/*
 * test_pg_query.c: attempt records and events read from PostgreSQL on
 * request (state/pg_query.c) against a real server
 * (tests/unit/pg_fixture.h): records logged through one node read the same
 * through another, newest or oldest first, from a given id, brief or
 * whole (request bytes with a NUL in them intact), one by id, none for an
 * unknown id; an event byte for byte, and HK_ENOTFOUND for one not stored.
 */
#include <libpq-fe.h>

#include "pg_fixture.h"
#include "pg_migrate.h"
#include "pg_query.h"
#include "pg_store.h"
#include "unit.h"

static uv_loop_t *loop;
static hk_pg_store *a, *b;
static uint64_t now_ms;

/* Runs the loop until *flag is set (or the bound passed); returns *flag. */
static bool run_until(const bool *flag)
{
    return fx_pg_run_until(loop, fx_pg_flag_set, (void *)flag);
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
    s->done = false;
    s->c.done = on_done;
    s->c.op.now_ms = now_ms;
    hk_pg_store_submit(a, &s->c);
    if (!run_until(&s->done))
        return UV_ETIMEDOUT;
    return s->status;
}

struct list {
    hk_pg_attempts_req r;
    bool done;
    int status;
};

static void on_list(hk_pg_attempts_req *r, int status)
{
    struct list *l = hk_container_of(r, struct list, r);
    l->done = true;
    l->status = status;
}

static int list(struct list *l, uint64_t from, bool newest, bool brief, bool exact, uint32_t max)
{
    memset(l, 0, sizeof(*l));
    l->r = (hk_pg_attempts_req){.webhook_id = 1,
                                .from_id = from,
                                .newest_first = newest,
                                .brief = brief,
                                .exact = exact,
                                .max = max,
                                .done = on_list};
    hk_pg_attempts_list(b, &l->r);
    if (!run_until(&l->done))
        return UV_ETIMEDOUT;
    return l->status;
}

static const char *ids(const struct list *l)
{
    static char out[128];
    out[0] = '\0';
    for (size_t i = 0; i < l->r.nitems; i++)
        snprintf(out + strlen(out), sizeof(out) - strlen(out), "%s%llu", i ? "," : "",
                 (unsigned long long)l->r.items[i].id);
    return out;
}

static void test_attempt_records_read_through_another_node(void)
{
    hk_webhook w;
    hk_webhook_init(&w);
    free(w.url);
    w.url = hk_strdup("http://127.0.0.1:9/");
    struct sub s = {0};
    s.c.op.type = HK_OP_WEBHOOK_PUT;
    s.c.op.u.webhook_put.webhook = &w;
    CHECK_INT(apply(&s), 0);
    hk_webhook_free(&w);
    static const char request[] = "POST / HTTP/1.1\r\n\r\nbin\0ary";
    for (int i = 1; i <= 5; i++) {
        hk_attempt rec = {.webhook_id = 1,
                          .event_name = "contact.created",
                          .event_uuid = "00112233-4455-6677-8899-aabbccddeeff",
                          .attempt = (uint32_t)i,
                          .started_ms = now_ms + (uint64_t)i,
                          .status = 500 + i,
                          .error = "HTTP 50x",
                          .url = "http://127.0.0.1:9/",
                          .request = (char *)request,
                          .request_len = sizeof(request) - 1,
                          .response = "HTTP/1.1 500",
                          .response_len = 12,
                          .user_id = 4,
                          .sync = true};
        memset(&s, 0, sizeof(s));
        s.c.op.type = HK_OP_ATTEMPT;
        s.c.op.u.attempt = (hk_op_attempt){.rec = &rec, .disable_after = 100};
        CHECK_INT(apply(&s), 0);
        CHECK_INT(s.c.op.u.attempt.log_id, i);
    }
    struct list l;
    CHECK_INT(list(&l, 0, true, false, false, 3), 0);
    CHECK_STR(ids(&l), "5,4,3");
    const hk_attempt *r5 = l.r.nitems > 0 ? &l.r.items[0] : NULL;
    CHECK(r5 != NULL && r5->request_len == sizeof(request) - 1 &&
          memcmp(r5->request, request, sizeof(request) - 1) == 0);
    CHECK(r5 != NULL && r5->response_len == 12 && r5->status == 505 && r5->attempt == 5 && r5->sync &&
          r5->user_id == 4 && strcmp(r5->error, "HTTP 50x") == 0 && r5->started_ms == now_ms + 5);
    hk_pg_attempts_req_free(&l.r);
    CHECK_INT(list(&l, 3, true, true, false, 10), 0);
    CHECK_STR(ids(&l), "3,2,1");
    CHECK(l.r.nitems == 3 && l.r.items[0].request == NULL && l.r.items[0].request_len == 0);
    hk_pg_attempts_req_free(&l.r);
    CHECK_INT(list(&l, 2, false, true, false, 2), 0);
    CHECK_STR(ids(&l), "2,3");
    hk_pg_attempts_req_free(&l.r);
    CHECK_INT(list(&l, 4, false, false, true, 1), 0);
    CHECK_STR(ids(&l), "4");
    hk_pg_attempts_req_free(&l.r);
    CHECK_INT(list(&l, 9, false, false, true, 1), HK_ENOTFOUND);
    CHECK_INT(l.r.nitems, 0);
}

struct ev {
    hk_pg_event_req r;
    bool done;
    int status;
};

static void on_event(hk_pg_event_req *r, int status)
{
    struct ev *e = hk_container_of(r, struct ev, r);
    e->done = true;
    e->status = status;
}

static void test_an_event_read_byte_for_byte(void)
{
    struct sub s = {0};
    s.c.op.type = HK_OP_SIGNAL;
    s.c.op.u.signal = (hk_op_signal){.name = "contact.created",
                                     .primary_key = -5,
                                     .data = "{\"b\":1,\"a\":\"\\u00e9\"}",
                                     .data_len = 20,
                                     .changes = "[\"b\",\"a\"]",
                                     .changes_len = 9,
                                     .user_id = 3};
    s.c.op.u.signal.uuid[0] = 0xde;
    s.c.op.u.signal.uuid[15] = 0xad;
    CHECK_INT(apply(&s), 0);
    uint64_t id = s.c.op.u.signal.event_id;
    hk_op_free_out(&s.c.op);
    struct ev e = {.r = {.id = id, .done = on_event}};
    hk_pg_event_get(b, &e.r);
    CHECK(run_until(&e.done));
    CHECK_INT(e.status, 0);
    CHECK(e.r.event.data_len == 20 && memcmp(e.r.event.data, "{\"b\":1,\"a\":\"\\u00e9\"}", 20) == 0);
    CHECK_STR(e.r.event.changes, "[\"b\",\"a\"]");
    CHECK(e.r.event.primary_key == -5 && e.r.event.user_id == 3 && e.r.event.ts_ms == now_ms);
    CHECK(e.r.event.uuid[0] == 0xde && e.r.event.uuid[15] == 0xad && e.r.event.uuid[7] == 0);
    hk_event_free(&e.r.event);
    e = (struct ev){.r = {.id = id + 100, .done = on_event}};
    hk_pg_event_get(b, &e.r);
    CHECK(run_until(&e.done));
    CHECK_INT(e.status, HK_ENOTFOUND);
}

struct qs {
    hk_pg_queue_req r;
    bool done;
    int status;
};

static void on_queue(hk_pg_queue_req *r, int status)
{
    struct qs *q = hk_container_of(r, struct qs, r);
    q->done = true;
    q->status = status;
}

static const char *summary(uint32_t webhook, uint64_t now)
{
    static char out[128];
    struct qs q = {.r = {.now_ms = now, .webhook_id = webhook, .done = on_queue}};
    hk_pg_queue_summary(b, &q.r);
    if (!run_until(&q.done) || q.status != 0)
        return "failed";
    snprintf(out, sizeof(out), "%llu %llu %llu %llu", (unsigned long long)q.r.sum.pending,
             (unsigned long long)q.r.sum.due, (unsigned long long)q.r.sum.parked,
             (unsigned long long)q.r.sum.oldest_ms);
    return out;
}

static void test_the_queue_at_a_glance(void)
{
    /* Webhook 1 (Active, subscribed to nothing) gets one entry due at now_ms + 10; webhook 2 (Stopped) two
     * entries, webhook 9 (deleted) one: parked. */
    PGconn *db = PQconnectdb(fx_pg_conninfo());
    char sql[512];
    snprintf(
        sql, sizeof(sql),
        "INSERT INTO webhooks (id, name, url, state, registered_ms, updated_ms) VALUES (2, 's', 'http://x/', 1, 1, "
        "1); INSERT INTO deliveries (webhook_id, due_ms, event_id) VALUES (2, %llu, 1), (2, %llu, 1), (9, 1, 1), "
        "(1, %llu, 1)",
        (unsigned long long)now_ms, (unsigned long long)now_ms + 5, (unsigned long long)now_ms + 10);
    PQclear(PQexec(db, sql));
    PQfinish(db);
    char want[128];
    snprintf(want, sizeof(want), "4 0 3 %llu", (unsigned long long)now_ms);
    CHECK_STR(summary(0, now_ms), want);
    snprintf(want, sizeof(want), "4 1 3 %llu", (unsigned long long)now_ms);
    CHECK_STR(summary(0, now_ms + 10), want);
    /* One webhook's. */
    snprintf(want, sizeof(want), "1 0 0 %llu", (unsigned long long)now_ms);
    CHECK_STR(summary(1, now_ms), want);
    snprintf(want, sizeof(want), "1 1 0 %llu", (unsigned long long)now_ms);
    CHECK_STR(summary(1, now_ms + 10), want);
    CHECK_STR(summary(5, now_ms), "0 0 0 0");
}

int main(void)
{
    loop = uv_default_loop();
    const char *ci = fx_pg_begin(NULL);
    now_ms = 1700000000000ull; /* a fixed day long past: the default partition takes its records */
    hk_pg_store_opts o = {.conninfo = ci, .pool_size = 2, .queue_timeout_ms = 5000};
    CHECK_INT(hk_pg_store_open(&a, loop, &o), 0);
    CHECK_INT(hk_pg_store_open(&b, loop, &o), 0);
    test_attempt_records_read_through_another_node();
    test_an_event_read_byte_for_byte();
    test_the_queue_at_a_glance();
    hk_pg_store_close(a);
    hk_pg_store_close(b);
    fx_pg_end(loop, NULL);
    return unit_done();
}
