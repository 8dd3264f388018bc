/*
 * Unit tests of the engine's recoveries (services/recover.c) with a fake
 * clock and a fake sender: a run of several steps per webhook (the next
 * submitted from the previous one's done), the redeliveries sent with the
 * original webhook-id, every webhook one after the other, what is refused,
 * and a stop between two steps.
 */
#include "engine_fixture.h"

struct result {
    int status;
    uint64_t n;
    int calls;
};

static void recovered(int status, uint64_t n, void *arg)
{
    struct result *r = arg;
    r->status = status;
    r->n = n;
    r->calls++;
}

/* The webhook-id header of request i ("" when none). */
static void webhook_id(const fx *f, size_t i, char *out, size_t len)
{
    const char *h = strstr(f->req[i].headers, "webhook-id: ");
    out[0] = '\0';
    if (h != NULL)
        snprintf(out, len, "%.*s", (int)strcspn(h + 12, "\r\n"), h + 12);
}

/* Answers every open request to host with status; returns how many. */
static size_t answer_all(fx *f, const char *host, int status)
{
    size_t n = 0;
    for (long i; (i = fx_find(f, host)) >= 0; n++)
        fx_answer(f, (size_t)i, status, NULL);
    fx_settle(f);
    return n;
}

static struct result recover(fx *f, uint32_t wid, uint64_t since, uint64_t until)
{
    struct result r = {.status = 1};
    hk_engine_recover(f->engine, wid, since, until, recovered, &r);
    fx_settle(f);
    CHECK_INT(r.calls, 1);
    return r;
}

static void test_recovery_runs_in_steps_and_redelivers_with_the_same_webhook_id(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s"; /* one attempt: a failure is final */
    o.disable_after = 1000;
    o.concurrency_per_origin = 8;
    o.recover_step_max = 2;
    fx *f = fx_open(&o);
    uint32_t a = fx_webhook(f, "http://a.example/x", false, "ev", NULL);
    uint32_t b = fx_webhook(f, "http://b.example/y", false, "ev", NULL);
    uint64_t since = hk_clock_wall(&f->clock);
    fx_advance(f, 1000);
    for (int pk = 1; pk <= 3; pk++)
        CHECK_INT(fx_signal(f, "ev", pk), 0);
    /* a fails all three; b the first only. */
    char first[3][96];
    size_t na = 0;
    for (size_t i = 0; i < f->nreq; i++)
        if (strstr(f->req[i].url, "a.example") != NULL && na < 3)
            webhook_id(f, i, first[na++], sizeof(first[0]));
    CHECK_INT(na, 3);
    CHECK_INT(answer_all(f, "a.example", 500), 3);
    fx_answer(f, (size_t)fx_find(f, "b.example"), 503, NULL);
    CHECK_INT(answer_all(f, "b.example", 200), 2);
    CHECK_INT(fx_attempts(f, a), 3);
    CHECK_INT(fx_attempts(f, b), 3);
    CHECK_INT(fx_pending(f, a), 0);
    fx_advance(f, 1000);
    uint64_t until = hk_clock_wall(&f->clock);
    fx_advance(f, 1000);

    size_t before = f->nreq;
    hk_store_counters c0, c1;
    hk_store_get_counters(f->store, &c0);
    struct result r = recover(f, a, since, until);
    hk_store_get_counters(f->store, &c1);
    CHECK_INT(r.status, 0);
    CHECK_INT(r.n, 3);
    CHECK(c1.ops - c0.ops >= 3); /* steps of two records (or notes) each, one commit each */
    /* Sent again at once, each with its original webhook-id. */
    CHECK_INT(f->nreq - before, 3);
    for (size_t i = before; i < f->nreq; i++) {
        char id[96];
        webhook_id(f, i, id, sizeof(id));
        CHECK(strstr(f->req[i].url, "a.example") != NULL);
        CHECK(id[0] != '\0' && (strcmp(id, first[0]) == 0 || strcmp(id, first[1]) == 0 || strcmp(id, first[2]) == 0));
        for (size_t j = before; j < i; j++) {
            char other[96];
            webhook_id(f, j, other, sizeof(other));
            CHECK(strcmp(id, other) != 0);
        }
    }
    CHECK_INT(answer_all(f, "a.example", 200), 3);

    /* Every webhook: a's have succeeded since, b's first is left. */
    before = f->nreq;
    r = recover(f, 0, since, hk_clock_wall(&f->clock));
    CHECK_INT(r.status, 0);
    CHECK_INT(r.n, 1);
    CHECK_INT(f->nreq - before, 1);
    CHECK(fx_find(f, "b.example") >= 0);
    CHECK_INT(answer_all(f, "b.example", 200), 1);
    r = recover(f, a, since, until);
    CHECK_INT(r.status, 0);
    CHECK_INT(r.n, 0);

    /* Refused before any step. */
    r = recover(f, 999, since, until);
    CHECK_INT(r.status, HK_ENOTFOUND);
    r = recover(f, a, until, since);
    CHECK_INT(r.status, HK_EINVAL);

    /* A stop between two steps ends the run: what was queued stays queued. */
    r = (struct result){.status = 1};
    hk_engine_recover(f->engine, a, since, hk_clock_wall(&f->clock), recovered, &r);
    fx_close(f);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.status, HK_ESHUTDOWN);
}

static void test_a_webhook_deleted_during_its_recovery(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s";
    o.disable_after = 1000;
    o.concurrency_per_origin = 8;
    o.recover_step_max = 1;
    fx *f = fx_open(&o);
    uint32_t a = fx_webhook(f, "http://a.example/x", false, "ev", NULL);
    uint32_t b = fx_webhook(f, "http://b.example/y", false, "ev", NULL);
    uint64_t since = hk_clock_wall(&f->clock);
    for (int pk = 1; pk <= 4; pk++)
        CHECK_INT(fx_signal(f, "ev", pk), 0);
    answer_all(f, "a.example", 500);
    answer_all(f, "b.example", 500);
    fx_advance(f, 1000);
    uint64_t until = hk_clock_wall(&f->clock);

    /* Deleted after its first step: 404 for it alone; every webhook's recovery goes on with the others. */
    struct result r = {.status = 1}, all = {.status = 1};
    hk_store_counters c0, c;
    hk_store_get_counters(f->store, &c0);
    hk_engine_recover(f->engine, a, since, until, recovered, &r);
    do /* until the first step is committed (its done has submitted the second) */
        uv_run(&f->loop, UV_RUN_ONCE);
    while (hk_store_get_counters(f->store, &c), c.ops == c0.ops);
    CHECK_INT(r.calls, 0);
    fx_delete(f, a);
    fx_settle(f);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.status, HK_ENOTFOUND);
    CHECK_INT(r.n, 0);
    size_t before = f->nreq;
    hk_engine_recover(f->engine, 0, since, until, recovered, &all);
    fx_settle(f);
    CHECK_INT(all.status, 0);
    CHECK_INT(all.n, 4);
    CHECK_INT(f->nreq - before, 4);
    CHECK_INT(fx_pending(f, b), 4);
    fx_close(f);
}

int main(void)
{
    test_recovery_runs_in_steps_and_redelivers_with_the_same_webhook_id();
    test_a_webhook_deleted_during_its_recovery();
    return unit_done();
}
