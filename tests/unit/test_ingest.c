/*
 * Unit tests of ingest (ingest.c) on a real store with a fake clock and a
 * fake sender (engine_fixture.h): fan-out to the Active subscribers only,
 * Idempotency-Keys per user and window, a fan-out larger than the window,
 * and state events that never reach their own webhook.
 */
#include "engine_fixture.h"
#include "log.h"

static size_t requests_to(const fx *f, const char *part)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nreq; i++)
        n += strstr(f->req[i].url, part) != NULL;
    return n;
}

static void test_fan_out_to_active_subscribers(void)
{
    fx *f = fx_open(NULL);
    fx_webhook(f, "http://one.test/a", false, "contact.created", "other", NULL);
    fx_webhook(f, "http://two.test/b", false, "contact.created", NULL);
    uint32_t stopped = fx_webhook(f, "http://three.test/c", false, "contact.created", NULL);
    uint32_t unsubscribed = fx_webhook(f, "http://four.test/d", false, "contact.deleted", NULL);
    fx_set_state(f, stopped, "Stopped");
    struct fx_signalled s = fx_signal_as(f, "contact.created", 7, 1, NULL);
    CHECK_INT(s.status, 0);
    CHECK(s.event_id > 0 && !s.duplicate);
    CHECK_INT(f->nreq, 2);
    CHECK_INT(requests_to(f, "one.test"), 1);
    CHECK_INT(requests_to(f, "two.test"), 1);
    CHECK_INT(fx_pending(f, stopped), 0);
    CHECK_INT(fx_pending(f, unsubscribed), 0);
    /* Both bodies name the same event. */
    CHECK(strstr(f->req[0].body, "\"Event\":\"contact.created\"") != NULL);
    CHECK(strncmp(f->req[0].body, f->req[1].body, 60) == 0);
    /* An event nobody subscribes to is stored all the same. */
    s = fx_signal_as(f, "nobody.listens", 1, 1, NULL);
    CHECK_INT(s.status, 0);
    CHECK(s.event_id > 0);
    CHECK_INT(f->nreq, 2);
    fx_close(f);
}

static void test_idempotency_key(void)
{
    fx *f = fx_open(NULL); /* idempotency_window 24 h */
    fx_webhook(f, "http://one.test/a", false, "x", NULL);
    struct fx_signalled a = fx_signal_as(f, "x", 1, 1, "key-1");
    CHECK(a.status == 0 && !a.duplicate);
    struct fx_signalled b = fx_signal_as(f, "x", 2, 1, "key-1");
    CHECK(b.status == 0 && b.duplicate);
    CHECK_INT(b.event_id, a.event_id);
    CHECK_INT(f->nreq, 1);
    /* Another user's key is another key. */
    struct fx_signalled c = fx_signal_as(f, "x", 3, 2, "key-1");
    CHECK(c.status == 0 && !c.duplicate);
    CHECK_INT(f->nreq, 2);
    /* Past the window the key is new again. */
    fx_answer(f, 0, 200, NULL);
    fx_answer(f, 1, 200, NULL);
    fx_settle(f);
    hk_clock_advance(&f->clock, 86400000);
    struct fx_signalled d = fx_signal_as(f, "x", 4, 1, "key-1");
    CHECK(d.status == 0 && !d.duplicate);
    CHECK(d.event_id != a.event_id);
    CHECK_INT(f->nreq, 3);
    fx_close(f);
}

static void test_fan_out_larger_than_the_window(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.max_inflight = 4;
    o.concurrency_per_origin = 1;
    fx *f = fx_open(&o);
    for (int i = 0; i < 12; i++) {
        char url[48];
        snprintf(url, sizeof(url), "http://o%d.test/h", i);
        fx_webhook(f, url, false, "wide", NULL);
    }
    CHECK_INT(fx_signal(f, "wide", 1), 0);
    /* Every origin has a free slot: deliveries go out past the window, up to twice its size... */
    CHECK_INT(f->nreq, 8);
    for (size_t i = 0; i < 8 && i < f->nreq; i++)
        fx_answer(f, i, 200, NULL);
    fx_settle(f);
    /* ...and the rest from the queue as the first ones are done. */
    CHECK_INT(f->nreq, 12);
    for (size_t i = 8; i < f->nreq; i++)
        fx_answer(f, i, 200, NULL);
    fx_settle(f);
    CHECK_INT(fx_open_requests(f), 0);
    /* On one origin: four at a time in the window, the rest from the queue. */
    fx_close(f);
    f = fx_open(&o);
    uint32_t ids[12];
    for (int i = 0; i < 12; i++) {
        char url[48];
        snprintf(url, sizeof(url), "http://same.test/%d", i);
        ids[i] = fx_webhook(f, url, false, "wide", NULL);
    }
    CHECK_INT(fx_signal(f, "wide", 1), 0);
    CHECK_INT(f->nreq, 1);
    for (size_t k = 0; k < 12; k++) {
        CHECK_INT(f->nreq, k + 1);
        if (f->nreq != k + 1)
            break;
        fx_answer(f, k, 200, NULL);
        fx_settle(f);
    }
    for (int i = 0; i < 12; i++)
        CHECK_INT(fx_pending(f, ids[i]), 0);
    fx_close(f);
}

static void test_state_events_skip_their_own_webhook(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s";
    o.disable_after = 1;
    fx *f = fx_open(&o);
    /* A webhook subscribed to its own state events, and a watcher. */
    uint32_t w = fx_webhook(f, "http://self.test/h", false, "x", "webhook1.errors", NULL);
    CHECK_INT(w, 1);
    fx_webhook(f, "http://watcher.test/w", false, "webhook1.errors", NULL);
    CHECK_INT(fx_signal(f, "x", 1), 0);
    fx_answer(f, 0, 500, NULL);
    fx_settle(f);
    CHECK_STR(fx_state(f, w), "TooManyErrors");
    CHECK_INT(requests_to(f, "self.test"), 1);
    CHECK_INT(requests_to(f, "watcher.test"), 1);
    long i = fx_find(f, "watcher.test");
    CHECK(i >= 0);
    if (i >= 0) {
        CHECK(strstr(f->req[i].body, "\"Event\":\"webhook.errors\"") != NULL);
        CHECK(strstr(f->req[i].body, "\"PrimaryKey\":1") != NULL);
        CHECK(strstr(f->req[i].body, "\"Reason\":\"HTTP/1.1 500 Answer\"") != NULL);
    }
    fx_close(f);
}

int main(void)
{
    hk_log_set_level(HK_LOG_ERROR);
    test_fan_out_to_active_subscribers();
    test_idempotency_key();
    test_fan_out_larger_than_the_window();
    test_state_events_skip_their_own_webhook();
    return unit_done();
}
