/*
 * Unit tests of the delivery engine's rules, driven by a fake clock and a
 * fake sender on a real store (engine_fixture.h): the retry schedule and
 * its jitter, Retry-After, 410, consecutive failures and auto-disable, the
 * locked exemption, parking and resuming, fairness between the webhooks of
 * an origin and between origins, and synchronous calls sharing slots.
 */
#include "engine_fixture.h"
#include "log.h"
#include "sync.h"

static bool has_header(const fx *f, size_t i, const char *line)
{
    return strstr(f->req[i].headers, line) != NULL;
}

static void test_retry_schedule(void)
{
    fx *f = fx_open(NULL);
    uint32_t w = fx_webhook(f, "http://a.test/hook", false, "contact.created", NULL);
    CHECK_INT(fx_signal(f, "contact.created", 7), 0);
    CHECK_INT(f->nreq, 1);
    CHECK(has_header(f, 0, "X-SuperOffice-Retry: 0\r\n"));
    CHECK(strstr(f->req[0].body, "\"PrimaryKey\":7") != NULL);
    fx_answer(f, 0, 500, NULL);
    fx_settle(f);
    CHECK_INT(fx_pending(f, w), 1);
    CHECK_INT(fx_stats(f, w).consecutive, 1);
    /* The second attempt waits 10 s, not a millisecond less. */
    fx_advance(f, 9999);
    CHECK_INT(f->nreq, 1);
    fx_advance(f, 1);
    CHECK_INT(f->nreq, 2);
    CHECK(has_header(f, 1, "X-SuperOffice-Retry: 1\r\n"));
    fx_fail(f, 1);
    fx_settle(f);
    fx_advance(f, 99999);
    CHECK_INT(f->nreq, 2);
    fx_advance(f, 1);
    CHECK_INT(f->nreq, 3);
    fx_answer(f, 2, 200, NULL);
    fx_settle(f);
    CHECK_INT(fx_pending(f, w), 0);
    hk_webhook_stats st = fx_stats(f, w);
    CHECK_INT(st.calls, 3);
    CHECK_INT(st.errors, 2);
    CHECK_INT(st.consecutive, 0);
    CHECK_INT(f->finished, 3);
    CHECK_INT(fx_attempts(f, w), 3); /* each attempt in the log */
    fx_close(f);
}

static void test_exhausted_after_the_last_entry(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s,10s";
    o.disable_after = 100;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    fx_answer(f, 0, 500, NULL);
    fx_settle(f);
    fx_advance(f, 10000);
    CHECK_INT(f->nreq, 2);
    fx_answer(f, 1, 500, NULL);
    fx_settle(f);
    CHECK_INT(fx_pending(f, w), 0);
    fx_advance(f, 10000000);
    CHECK_INT(f->nreq, 2);
    CHECK_STR(fx_state(f, w), "Active");
    fx_close(f);
}

static void test_jitter_stays_within_bounds(void)
{
    for (uint64_t seed = 1; seed <= 5; seed++) {
        hk_engine_opts o;
        fx_default_opts(&o);
        o.retry_jitter_pct = 20;
        o.seed = seed;
        fx *f = fx_open(&o);
        fx_webhook(f, "http://a.test/hook", false, "x", NULL);
        CHECK_INT(fx_signal(f, "x", 1), 0);
        fx_answer(f, 0, 500, NULL);
        fx_settle(f);
        /* 10 s +/- 20 %: never before 8 s, always by 12 s. */
        fx_advance(f, 7999);
        CHECK_INT(f->nreq, 1);
        fx_advance(f, 4001);
        CHECK_INT(f->nreq, 2);
        fx_close(f);
    }
}

static void test_retry_after(void)
{
    fx *f = fx_open(NULL); /* retry_after_max 60 s */
    fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    /* 429 with 30 s: longer than the schedule's 10 s, so 30 s. */
    fx_answer(f, 0, 429, "Retry-After: 30\r\n");
    fx_settle(f);
    fx_advance(f, 29999);
    CHECK_INT(f->nreq, 1);
    fx_advance(f, 1);
    CHECK_INT(f->nreq, 2);
    /* 503 with an hour: capped at retry_after_max. */
    fx_answer(f, 1, 503, "Retry-After: 3600\r\n");
    fx_settle(f);
    fx_advance(f, 99999); /* the schedule's 100 s is longer than the cap: the schedule wins */
    CHECK_INT(f->nreq, 2);
    fx_advance(f, 1);
    CHECK_INT(f->nreq, 3);
    fx_close(f);

    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s,1s,1s";
    f = fx_open(&o);
    fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    fx_answer(f, 0, 503, "Retry-After: 3600\r\n");
    fx_settle(f);
    fx_advance(f, 59999);
    CHECK_INT(f->nreq, 1);
    fx_advance(f, 1);
    CHECK_INT(f->nreq, 2);
    fx_close(f);
}

static void test_410_disables_and_signals_the_state_event(void)
{
    fx *f = fx_open(NULL);
    uint32_t w = fx_webhook(f, "http://gone.test/hook", false, "x", NULL);
    char watch[32];
    snprintf(watch, sizeof(watch), "webhook%u.errors", w);
    uint32_t watcher = fx_webhook(f, "http://watcher.test/w", false, watch, NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    CHECK_INT(fx_signal(f, "x", 2), 0);
    CHECK_INT(f->nreq, 2);
    fx_answer(f, 0, 410, NULL);
    fx_settle(f);
    CHECK_STR(fx_state(f, w), "TooManyErrors");
    /* No retry of the 410; the other delivery stays queued (parked). */
    fx_answer(f, 1, 200, NULL);
    fx_settle(f);
    long i = fx_find(f, "watcher.test");
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK(strstr(f->req[i].body, "\"Event\":\"webhook.errors\"") != NULL);
        CHECK(strstr(f->req[i].body, "410") != NULL);
        fx_answer(f, (size_t)i, 200, NULL);
    }
    fx_advance(f, 1000000);
    CHECK_INT(fx_find(f, "gone.test"), -1);
    CHECK_INT(fx_pending(f, watcher), 0);
    fx_close(f);
}

static void test_consecutive_failures_count_reset_and_disable(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s"; /* one attempt per delivery */
    o.disable_after = 3;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    int answers[] = {500, 500, 200, 500, 500};
    for (size_t k = 0; k < HK_ARRAY_SIZE(answers); k++) {
        CHECK_INT(fx_signal(f, "x", (int64_t)k), 0);
        fx_answer(f, k, answers[k], NULL);
        fx_settle(f);
    }
    hk_webhook_stats st = fx_stats(f, w);
    CHECK_INT(st.consecutive, 2);
    CHECK_INT(st.errors, 4);
    CHECK_INT(st.calls, 5);
    CHECK_STR(fx_state(f, w), "Active");
    /* The third failure in a row disables it. */
    CHECK_INT(fx_signal(f, "x", 9), 0);
    fx_fail(f, 5);
    fx_settle(f);
    CHECK_INT(fx_stats(f, w).consecutive, 3);
    CHECK_STR(fx_state(f, w), "TooManyErrors");
    /* Disabled: a new signal queues nothing for it. */
    CHECK_INT(fx_signal(f, "x", 10), 0);
    CHECK_INT(f->nreq, 6);
    CHECK_INT(fx_pending(f, w), 0);
    fx_close(f);
}

static void test_locked_webhooks_are_never_disabled(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s";
    o.disable_after = 2;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://a.test/hook", true, "x", NULL);
    for (size_t k = 0; k < 4; k++) {
        CHECK_INT(fx_signal(f, "x", (int64_t)k), 0);
        fx_answer(f, k, k == 3 ? 410 : 500, NULL);
        fx_settle(f);
    }
    CHECK_INT(fx_stats(f, w).consecutive, 4);
    CHECK_STR(fx_state(f, w), "Active");
    CHECK_INT(fx_signal(f, "x", 5), 0);
    CHECK_INT(f->nreq, 5);
    fx_close(f);
}

static void test_parked_webhooks_keep_their_queue_and_resume(void)
{
    fx *f = fx_open(NULL);
    uint32_t w = fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    fx_answer(f, 0, 500, NULL);
    fx_settle(f);
    /* Stopped: the retry stays queued and is not sent, however long. */
    fx_set_state(f, w, "Stopped");
    fx_advance(f, 1000000);
    CHECK_INT(f->nreq, 1);
    CHECK_INT(fx_pending(f, w), 1);
    CHECK_INT(fx_signal(f, "x", 2), 0); /* a Stopped webhook gets nothing new */
    CHECK_INT(fx_pending(f, w), 1);
    fx_set_state(f, w, "Active");
    fx_advance(f, 0);
    CHECK_INT(f->nreq, 2);
    CHECK(has_header(f, 1, "X-SuperOffice-Retry: 1\r\n"));
    fx_answer(f, 1, 200, NULL);
    fx_settle(f);
    CHECK_INT(fx_pending(f, w), 0);

    /* TooManyErrors parks what is queued the same way. */
    for (int k = 0; k < 3; k++) {
        CHECK_INT(fx_signal(f, "x", 10 + k), 0);
    }
    CHECK_INT(f->nreq, 4); /* two slots per origin */
    fx_answer(f, 2, 500, NULL);
    fx_answer(f, 3, 500, NULL);
    fx_settle(f);
    CHECK_INT(f->nreq, 5);
    fx_answer(f, 4, 500, NULL); /* the third failure in a row */
    fx_settle(f);
    CHECK_STR(fx_state(f, w), "TooManyErrors");
    CHECK_INT(fx_pending(f, w), 3);
    fx_advance(f, 1000000);
    CHECK_INT(f->nreq, 5);
    fx_set_state(f, w, "Active");
    fx_advance(f, 0);
    CHECK_INT(f->nreq, 7);
    CHECK_INT(fx_open_requests(f), 2);
    fx_close(f);
}

static void test_a_deleted_webhooks_queue_is_dropped(void)
{
    fx *f = fx_open(NULL);
    uint32_t w = fx_webhook(f, "http://a.test/hook", false, "x", NULL);
    for (int k = 0; k < 5; k++)
        CHECK_INT(fx_signal(f, "x", k), 0);
    CHECK_INT(fx_pending(f, w), 5);
    CHECK_INT(f->nreq, 2);
    fx_delete(f, w);
    /* What is on the wire finishes; the outcomes find nothing to record, and
     * once one has shown the webhook gone, nothing more of it is sent. */
    for (size_t i = 0; i < f->nreq; i++) {
        fx_answer(f, i, i % 2 ? 500 : 200, NULL);
        fx_settle(f);
    }
    CHECK(f->nreq < 5);
    fx_advance(f, 0);
    CHECK_INT(fx_pending(f, w), 0);
    CHECK_INT(fx_attempts(f, w), 0);
    hk_engine_stats st;
    hk_engine_get_stats(f->engine, &st);
    CHECK_INT(st.in_memory, 0);
    fx_close(f);
}

static void test_webhooks_of_one_origin_take_turns(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.concurrency_per_origin = 1;
    fx *f = fx_open(&o);
    fx_webhook(f, "http://same.test/a", false, "a.ev", NULL);
    fx_webhook(f, "http://same.test/b", false, "b.ev", NULL);
    for (int k = 0; k < 3; k++)
        CHECK_INT(fx_signal(f, "a.ev", k), 0);
    for (int k = 0; k < 3; k++)
        CHECK_INT(fx_signal(f, "b.ev", k), 0);
    char order[8] = "";
    for (size_t k = 0; k < 6; k++) {
        CHECK_INT(fx_open_requests(f), 1);
        CHECK_INT(f->nreq, k + 1);
        if (f->nreq != k + 1)
            break;
        order[k] = f->req[k].url[strlen(f->req[k].url) - 1];
        fx_answer(f, k, 200, NULL);
        fx_settle(f);
    }
    CHECK_STR(order, "ababab");
    fx_close(f);
}

static void test_saturated_origins_do_not_hold_back_a_healthy_one(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.max_inflight = 8;
    o.concurrency_per_origin = 1;
    fx *f = fx_open(&o);
    /* Four dead origins, three webhooks on each, a backlog of 20 events each: far more than the window. */
    for (int d = 0; d < 4; d++) {
        for (int k = 0; k < 3; k++) {
            char url[64];
            snprintf(url, sizeof(url), "http://dead%d.test/%d", d, k);
            fx_webhook(f, url, false, "load", NULL);
        }
    }
    uint32_t h = fx_webhook(f, "http://healthy.test/ok", false, "ok", NULL);
    for (int n = 0; n < 20; n++)
        CHECK_INT(fx_signal(f, "load", n), 0);
    CHECK_INT(fx_open_requests(f), 4); /* one per dead origin */
    hk_engine_stats st;
    hk_engine_get_stats(f->engine, &st);
    CHECK(st.in_memory >= 8);
    /* Each healthy delivery goes out at once, window or not. */
    for (int n = 0; n < 10; n++) {
        CHECK_INT(fx_signal(f, "ok", n), 0);
        long i = fx_find(f, "healthy.test");
        CHECK(i >= 0);
        if (i < 0)
            break;
        fx_answer(f, (size_t)i, 200, NULL);
        fx_settle(f);
    }
    CHECK_INT(fx_pending(f, h), 0);
    /* A backlog of the healthy webhook drains while the others stay stuck. */
    for (int n = 0; n < 10; n++)
        CHECK_INT(fx_signal(f, "ok", 100 + n), 0);
    for (int n = 0; n < 10; n++) {
        long i = fx_find(f, "healthy.test");
        CHECK(i >= 0);
        if (i < 0)
            break;
        fx_answer(f, (size_t)i, 200, NULL);
        fx_settle(f);
    }
    CHECK_INT(fx_pending(f, h), 0);
    CHECK_INT(fx_open_requests(f), 4);
    hk_engine_get_stats(f->engine, &st);
    CHECK(st.in_memory <= 16); /* never past twice the window */
    fx_close(f);
}

static void test_origins_are_served_independently(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.concurrency_per_origin = 2;
    fx *f = fx_open(&o);
    fx_webhook(f, "http://one.test/a", false, "ev", NULL);
    fx_webhook(f, "http://one.test/b", false, "ev", NULL); /* same origin as a */
    fx_webhook(f, "http://two.test/c", false, "ev", NULL);
    for (int n = 0; n < 5; n++)
        CHECK_INT(fx_signal(f, "ev", n), 0);
    /* Two slots for one.test (shared by a and b, one each), two for two.test. */
    size_t one = 0, two = 0;
    for (size_t i = 0; i < f->nreq; i++) {
        one += strstr(f->req[i].url, "one.test") != NULL;
        two += strstr(f->req[i].url, "two.test") != NULL;
    }
    CHECK_INT(one, 2);
    CHECK_INT(two, 2);
    CHECK(fx_find(f, "one.test/a") >= 0 && fx_find(f, "one.test/b") >= 0);
    fx_close(f);
}

/* ---- synchronous calls ---------------------------------------------------------------- */

struct sync_seen {
    int calls;
    bool success, unavailable;
    char error[256];
};

static void on_sync(const hk_sync_result *res, void *arg)
{
    struct sync_seen *s = arg;
    s->calls++;
    s->success = res->success;
    s->unavailable = res->unavailable;
    snprintf(s->error, sizeof(s->error), "%s", res->error);
}

static void target(hk_target *t, const char *url)
{
    memset(t, 0, sizeof(*t));
    t->url = hk_strdup(url);
    t->name = hk_strdup("t");
    t->secret = hk_strdup("");
    t->prev_secret = hk_strdup("");
    t->headers = hk_strdup("");
    t->props = hk_strdup("");
}

static void test_sync_calls_share_the_origins_slots(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.concurrency_per_origin = 1;
    o.sync_wait_ms = 5000;
    fx *f = fx_open(&o);
    fx_webhook(f, "http://x.test/queued", false, "ev", NULL);
    CHECK_INT(fx_signal(f, "ev", 1), 0);
    CHECK_INT(fx_signal(f, "ev", 2), 0);
    CHECK_INT(f->nreq, 1);
    hk_target t;
    target(&t, "http://x.test/sync");
    struct sync_seen a = {0}, b = {0};
    CHECK_INT(hk_sync_call_test(f->engine, &t, 1, on_sync, &a), 0);
    fx_settle(f);
    CHECK_INT(f->nreq, 1); /* waits for the slot */
    hk_engine_stats st;
    hk_engine_get_stats(f->engine, &st);
    CHECK_INT(st.waiting, 1);
    /* The slot goes to the waiting call before the next queued delivery. */
    fx_answer(f, 0, 200, NULL);
    fx_settle(f);
    CHECK_INT(f->nreq, 2);
    CHECK(strstr(f->req[1].url, "/sync") != NULL);
    CHECK(has_header(f, 1, "X-Hook-Test: true\r\n"));
    fx_answer(f, 1, 200, NULL);
    fx_settle(f);
    CHECK_INT(a.calls, 1);
    CHECK(a.success && !a.unavailable);
    CHECK_INT(f->nreq, 3); /* then the queued one */
    /* A call that finds no slot within sync_wait_ms: unavailable, nothing sent. */
    CHECK_INT(hk_sync_call_test(f->engine, &t, 1, on_sync, &b), 0);
    fx_advance(f, 4999);
    CHECK_INT(b.calls, 0);
    fx_advance(f, 1);
    CHECK_INT(b.calls, 1);
    CHECK(b.unavailable && !b.success);
    CHECK(strstr(b.error, "busy") != NULL);
    CHECK_INT(f->nreq, 3);
    hk_engine_get_stats(f->engine, &st);
    CHECK_INT(st.waiting, 0);
    hk_target_free(&t);
    fx_close(f);
}

int main(void)
{
    hk_log_set_level(HK_LOG_ERROR); /* the engine's warnings are what these tests provoke */
    test_retry_schedule();
    test_exhausted_after_the_last_entry();
    test_jitter_stays_within_bounds();
    test_retry_after();
    test_410_disables_and_signals_the_state_event();
    test_consecutive_failures_count_reset_and_disable();
    test_locked_webhooks_are_never_disabled();
    test_parked_webhooks_keep_their_queue_and_resume();
    test_a_deleted_webhooks_queue_is_dropped();
    test_webhooks_of_one_origin_take_turns();
    test_saturated_origins_do_not_hold_back_a_healthy_one();
    test_origins_are_served_independently();
    test_sync_calls_share_the_origins_slots();
    return unit_done();
}
