/*
 * Unit tests of synchronous calls (sync.c) on a real store with a fake
 * clock and a fake sender (engine_fixture.h): the result and its texts,
 * recording (statistics, the auto-disable rule, the attempt log), test
 * calls recorded nowhere, URLs refused at once, and calls waiting for a
 * slot when the engine stops.
 */
#include "engine_fixture.h"
#include "log.h"
#include "sync.h"

struct seen {
    int calls;
    bool success, unavailable, disabled;
    int status, record_status;
    char error[256], request[512], response[512], uuid[40], message[512];
};

static void on_result(const hk_sync_result *r, void *arg)
{
    struct seen *s = arg;
    s->calls++;
    s->success = r->success;
    s->unavailable = r->unavailable;
    s->disabled = r->disabled;
    s->status = r->status;
    s->record_status = r->record_status;
    snprintf(s->error, sizeof(s->error), "%s", r->error);
    snprintf(s->request, sizeof(s->request), "%.*s", (int)r->request_len, r->request);
    snprintf(s->response, sizeof(s->response), "%.*s", (int)r->response_len, r->response);
    snprintf(s->uuid, sizeof(s->uuid), "%s", r->event_uuid);
    char *m = hk_sync_message(r);
    snprintf(s->message, sizeof(s->message), "%s", m);
    free(m);
}

static void target_of(fx *f, uint32_t id, hk_target *t)
{
    hk_webhook w;
    CHECK_INT(hk_store_webhook_get(f->store, id, &w), 0);
    memset(t, 0, sizeof(*t));
    hk_target_from_webhook(t, &w);
    hk_webhook_free(&w);
}

static int call(fx *f, const hk_target *t, bool record, struct seen *s)
{
    hk_sync_event ev = {.name = "webhook.execute",
                        .primary_key = (int64_t)t->webhook_id,
                        .data = "{\"WebhookBody\":\"hi\"}",
                        .changes = "[\"WebhookBody\"]",
                        .user_id = 9,
                        .record = record};
    return hk_sync_call(f->engine, t, &ev, on_result, s);
}

static int count_sync(const hk_attempt *a, void *arg)
{
    int *n = arg;
    if (a->sync && a->event_id == 0 && a->user_id == 9 && strcmp(a->event_name, "webhook.execute") == 0)
        (*n)++;
    return 0;
}

static void test_a_recorded_call(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.disable_after = 2;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://x.test/run", false, "x", NULL);
    fx_webhook(f, "http://watcher.test/w", false, "webhook1.errors", NULL);
    hk_target t;
    target_of(f, w, &t);
    struct seen a = {0};
    CHECK_INT(call(f, &t, true, &a), 0);
    fx_settle(f);
    CHECK_INT(f->nreq, 1);
    CHECK(strstr(f->req[0].body, "\"Event\":\"webhook.execute\"") != NULL);
    CHECK(strstr(f->req[0].body, "\"Data\":{\"WebhookBody\":\"hi\"}") != NULL);
    CHECK(strstr(f->req[0].headers, "X-SuperOffice-Signature: ") != NULL);
    CHECK_INT(a.calls, 0);
    fx_answer(f, 0, 200, "X-R: 1\r\n");
    fx_settle(f);
    CHECK_INT(a.calls, 1);
    CHECK(a.success && !a.unavailable && !a.disabled);
    CHECK_INT(a.status, 200);
    CHECK_INT(a.record_status, 0);
    CHECK(strncmp(a.request, "POST http://x.test/run HTTP/1.1\r\n", 33) == 0);
    CHECK(strstr(a.request, "\"WebhookBody\":\"hi\"") != NULL);
    CHECK_STR(a.response, "HTTP/1.1 200 Answer\r\nX-R: 1\r\n\r\n");
    CHECK(strstr(f->req[0].body, a.uuid) != NULL);
    CHECK_INT(fx_stats(f, w).calls, 1);
    /* Two failures in a row: the auto-disable rule applies to synchronous calls too. */
    struct seen b = {0}, c = {0};
    CHECK_INT(call(f, &t, true, &b), 0);
    fx_settle(f);
    fx_fail(f, 1);
    fx_settle(f);
    CHECK(b.calls == 1 && !b.success && !b.disabled);
    CHECK_STR(b.error, "connection refused");
    CHECK_STR(b.message, "connection refused"); /* no response: the reason */
    CHECK_STR(b.response, "");
    CHECK_INT(call(f, &t, true, &c), 0);
    fx_settle(f);
    fx_answer(f, 2, 410, NULL);
    fx_settle(f);
    CHECK(c.calls == 1 && c.disabled);
    CHECK_INT(c.status, 410);
    CHECK_STR(fx_state(f, w), "TooManyErrors");
    hk_webhook_stats st = fx_stats(f, w);
    CHECK_INT(st.calls, 3);
    CHECK_INT(st.errors, 2);
    /* Recorded as synchronous attempts, which have no event to resend. */
    int n = 0;
    CHECK_INT(hk_store_attempts_each(f->store, w, 0, true, count_sync, &n), 0);
    CHECK_INT(n, 3);
    /* Its state event reached the watcher. */
    CHECK(fx_find(f, "watcher.test") >= 0);
    /* Nothing queued for the webhook itself. */
    CHECK_INT(fx_pending(f, w), 0);
    hk_target_free(&t);
    fx_close(f);
}

static void test_a_test_call_records_nothing(void)
{
    fx *f = fx_open(NULL);
    uint32_t w = fx_webhook(f, "http://x.test/run", false, "x", NULL);
    hk_target t;
    target_of(f, w, &t);
    struct seen a = {0};
    CHECK_INT(hk_sync_call_test(f->engine, &t, 1, on_result, &a), 0);
    fx_settle(f);
    CHECK(strstr(f->req[0].body, "\"Event\":\"test\"") != NULL);
    CHECK(strstr(f->req[0].body, "\"Entity\":\"test\"") != NULL);
    CHECK(strstr(f->req[0].headers, "X-Hook-Test: true\r\n") != NULL);
    fx_answer(f, 0, 500, NULL);
    fx_settle(f);
    CHECK(a.calls == 1 && !a.success);
    CHECK_STR(a.message, "HTTP/1.1 500 Answer\r\n\r\n"); /* the response, as SuperOffice's Message */
    CHECK_INT(fx_stats(f, w).calls, 0);
    CHECK_INT(fx_attempts(f, w), 0);
    hk_target_free(&t);
    fx_close(f);
}

static void test_a_url_that_cannot_be_sent(void)
{
    fx *f = fx_open(NULL);
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_webhook w;
    hk_webhook_init(&w);
    free(w.url);
    w.url = hk_strdup("ftp://x.test/");
    hk_target_from_webhook(&t, &w);
    hk_webhook_free(&w);
    struct seen a = {0};
    CHECK_INT(call(f, &t, false, &a), HK_EINVAL);
    fx_settle(f);
    CHECK_INT(a.calls, 0);
    CHECK_INT(f->nreq, 0);
    hk_target_free(&t);
    fx_close(f);
}

static void test_waiting_calls_get_an_answer_at_stop(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.concurrency_per_origin = 1;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://x.test/run", false, "x", NULL);
    hk_target t;
    target_of(f, w, &t);
    struct seen a = {0}, b = {0};
    CHECK_INT(call(f, &t, false, &a), 0);
    CHECK_INT(call(f, &t, false, &b), 0);
    fx_settle(f);
    CHECK_INT(f->nreq, 1);
    hk_engine_stats st;
    hk_engine_get_stats(f->engine, &st);
    CHECK_INT(st.waiting, 1);
    /* The stop answers the waiting call (unavailable) and cancels the one on the wire. */
    fx_close(f);
    CHECK_INT(b.calls, 1);
    CHECK(b.unavailable);
    CHECK_STR(b.error, "server is shutting down");
    CHECK_INT(a.calls, 1);
    CHECK(!a.success && !a.unavailable);
    hk_target_free(&t);
}

int main(void)
{
    hk_log_set_level(HK_LOG_ERROR);
    test_a_recorded_call();
    test_a_test_call_records_nothing();
    test_a_url_that_cannot_be_sent();
    test_waiting_calls_get_an_answer_at_stop();
    return unit_done();
}
