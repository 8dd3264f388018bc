/*
 * Unit tests of the engine's stop (engine_fixture.h): nothing new goes on
 * the wire once it is asked to stop; queued deliveries and synchronous
 * calls on the wire get the grace to finish; a second stop ends the grace
 * at once, cancelling what is left (deliveries stay queued, synchronous
 * callers get their answer); the engine reports stopped only after every
 * commit it made is done.
 */
#include "engine_fixture.h"
#include "log.h"
#include "sync.h"

struct sync_seen {
    int calls;
    bool success;
    char error[256];
};

static void on_sync(const hk_sync_result *res, void *arg)
{
    struct sync_seen *s = arg;
    s->calls++;
    s->success = res->success;
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

/* Runs the loop until the engine has stopped (or a bounded number of rounds). */
static void run_until_stopped(fx *f)
{
    for (int i = 0; i < 2000 && (!f->stopped || hk_store_busy(f->store)); i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* fx_close for an engine that has stopped already. */
static void close_stopped(fx *f)
{
    while (hk_store_busy(f->store))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    hk_store_close(f->store);
    CHECK_INT(uv_loop_close(&f->loop), 0);
    for (size_t i = 0; i < f->nreq; i++) {
        free(f->req[i].url);
        free(f->req[i].headers);
        free(f->req[i].body);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
}

static void test_the_grace_covers_synchronous_calls_and_nothing_new_is_sent(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.concurrency_per_origin = 1;
    o.shutdown_grace_ms = 60000; /* longer than the test: only answers end it */
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://q.test/hook", false, "ev", NULL);
    CHECK_INT(fx_signal(f, "ev", 1), 0);
    CHECK_INT(fx_signal(f, "ev", 2), 0);
    CHECK_INT(f->nreq, 1); /* one slot: the second waits */
    hk_target t;
    target(&t, "http://s.test/sync");
    struct sync_seen seen = {0};
    CHECK_INT(hk_sync_call_test(f->engine, &t, 1, on_sync, &seen), 0);
    fx_settle(f);
    CHECK_INT(f->nreq, 2);

    hk_engine_stop(f->engine, fx_stopped, f);
    fx_settle(f);
    /* The queued delivery is answered: its outcome is stored, and its slot is not given to the next. */
    fx_answer(f, 0, 200, NULL);
    fx_settle(f);
    CHECK_INT(f->nreq, 2);
    CHECK_INT(fx_pending(f, w), 1);
    /* No delivery on the wire, but the synchronous call is: the grace goes on. */
    CHECK(!f->sender_closed);
    CHECK(!f->stopped);
    CHECK_INT(seen.calls, 0);
    fx_answer(f, 1, 200, NULL);
    run_until_stopped(f);
    CHECK_INT(seen.calls, 1);
    CHECK(seen.success);
    CHECK(f->sender_closed);
    CHECK(f->stopped);
    hk_target_free(&t);
    close_stopped(f);
}

static void test_a_second_stop_ends_the_grace(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.shutdown_grace_ms = 60000;
    fx *f = fx_open(&o);
    uint32_t w = fx_webhook(f, "http://q.test/hook", false, "ev", NULL);
    CHECK_INT(fx_signal(f, "ev", 1), 0);
    CHECK_INT(f->nreq, 1);
    hk_target t;
    target(&t, "http://s.test/sync");
    struct sync_seen seen = {0};
    CHECK_INT(hk_sync_call_test(f->engine, &t, 1, on_sync, &seen), 0);
    fx_settle(f);
    CHECK_INT(f->nreq, 2);
    hk_engine_stop(f->engine, fx_stopped, f);
    fx_settle(f);
    CHECK(!f->sender_closed);
    /* Again: both are cancelled now; the delivery stays queued, the caller is answered. */
    hk_engine_stop(f->engine, NULL, NULL);
    run_until_stopped(f);
    CHECK(f->sender_closed);
    CHECK(f->stopped);
    CHECK_INT(seen.calls, 1);
    CHECK(!seen.success);
    CHECK(strstr(seen.error, "cancel") != NULL);
    CHECK_INT(fx_pending(f, w), 1);
    CHECK_INT(fx_attempts(f, w), 0);
    hk_target_free(&t);
    close_stopped(f);
}

int main(void)
{
    hk_log_set_level(HK_LOG_ERROR);
    test_the_grace_covers_synchronous_calls_and_nothing_new_is_sent();
    test_a_second_stop_ends_the_grace();
    return unit_done();
}
