/*
 * engine_fixture.h: a delivery engine on a real store in a temporary
 * directory, driven by a fake clock and a fake sender, for the engine's
 * unit tests. Nothing sleeps: the test moves the clock, answers requests
 * itself and runs the loop until the engine has nothing left to do at
 * that moment (fx_settle).
 *
 * The fake sender keeps every request (URL, headers, body) in arrival
 * order with its callback; fx_answer completes one with a status and
 * headers, fx_fail with a transport error.
 */
#ifndef HK_ENGINE_FIXTURE_H
#define HK_ENGINE_FIXTURE_H

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "engine.h"
#include "model.h"
#include "sender.h"
#include "store.h"
#include "unit.h"

#define FX_START_MS 1800000000000ull /* the fake clock's start */
#define FX_MAX_REQ 4096

struct fx_req {
    char *url;
    char *headers;
    char *body;
    hk_client_cb cb;
    void *arg;
    bool done;
};

typedef struct fx {
    uv_loop_t loop;
    char dir[64];
    hk_store *store;
    hk_clock clock;
    hk_engine *engine;
    hk_engine_opts opts;
    struct fx_req req[FX_MAX_REQ];
    size_t nreq;
    bool sender_closed;
    uv_timer_t closer;
    void (*closed_cb)(void *);
    void *closed_arg;
    size_t finished; /* attempts reported by the finished hook */
    bool stopped;
} fx;

/* ---- the fake sender --------------------------------------------------------------- */

static inline int fx_send(void *ctx, const hk_client_request *r, hk_client_cb cb, void *arg)
{
    fx *f = ctx;
    if (f->sender_closed)
        return HK_ESHUTDOWN;
    if (strncmp(r->url, "http://", 7) != 0 && strncmp(r->url, "https://", 8) != 0)
        return HK_EINVAL; /* as the real client refuses what is not an absolute http(s) URL */
    if (f->nreq == FX_MAX_REQ)
        abort();
    struct fx_req *q = &f->req[f->nreq++];
    q->url = hk_strdup(r->url);
    q->headers = hk_strdup(r->headers ? r->headers : "");
    q->body = hk_strndup(r->body ? r->body : "", r->body_len);
    q->cb = cb;
    q->arg = arg;
    q->done = false;
    return 0;
}

static inline void fx_complete(fx *f, size_t i, const hk_client_result *r)
{
    CHECK(i < f->nreq);
    if (i >= f->nreq)
        return;
    struct fx_req *q = &f->req[i];
    CHECK(!q->done);
    if (q->done)
        return;
    q->done = true;
    q->cb(r, q->arg);
}

static inline void fx_closer_fired(uv_timer_t *t)
{
    fx *f = t->data;
    uv_close((uv_handle_t *)&f->closer, NULL);
    if (f->closed_cb != NULL)
        f->closed_cb(f->closed_arg);
}

static inline void fx_sender_close(void *ctx, void (*closed)(void *), void *arg)
{
    fx *f = ctx;
    f->sender_closed = true;
    for (size_t i = 0; i < f->nreq; i++) {
        if (f->req[i].done)
            continue;
        hk_client_result r;
        memset(&r, 0, sizeof(r));
        r.error = UV_ECANCELED;
        r.error_text = "cancelled";
        r.status_line = r.headers = r.body = r.request_head = "";
        fx_complete(f, i, &r);
    }
    f->closed_cb = closed;
    f->closed_arg = arg;
    uv_timer_init(&f->loop, &f->closer);
    f->closer.data = f;
    uv_timer_start(&f->closer, fx_closer_fired, 0, 0);
}

/** Answers request i with status and header lines ("Name: v\r\n..."). */
static inline void fx_answer(fx *f, size_t i, int status, const char *headers)
{
    char line[64];
    snprintf(line, sizeof(line), "HTTP/1.1 %d Answer", status);
    char head[256];
    snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\n", f->req[i].url);
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.status_line = line;
    r.headers = headers ? headers : "";
    r.headers_len = strlen(r.headers);
    r.body = "";
    r.request_head = head;
    r.duration_ms = 1;
    fx_complete(f, i, &r);
}

/** Fails request i as a refused connection would. */
static inline void fx_fail(fx *f, size_t i)
{
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.error = UV_ECONNREFUSED;
    r.error_text = "connection refused";
    r.status_line = r.headers = r.body = r.request_head = "";
    fx_complete(f, i, &r);
}

/** Requests not answered yet. */
static inline size_t fx_open_requests(const fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nreq; i++)
        n += !f->req[i].done;
    return n;
}

/** The first request not answered yet whose URL contains part, or -1. */
static inline long fx_find(const fx *f, const char *part)
{
    for (size_t i = 0; i < f->nreq; i++)
        if (!f->req[i].done && strstr(f->req[i].url, part) != NULL)
            return (long)i;
    return -1;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/** Runs the loop until commits are done and no zero-delay timer is left. */
static inline void fx_settle(fx *f)
{
    int quiet = 0;
    for (int i = 0; i < 100000 && quiet < 3; i++) {
        if (hk_store_busy(f->store)) {
            uv_run(&f->loop, UV_RUN_ONCE);
            quiet = 0;
        } else {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            quiet++;
        }
    }
}

/** Moves the clock and lets the engine look at the queue. */
static inline void fx_advance(fx *f, uint64_t ms)
{
    hk_clock_advance(&f->clock, ms);
    hk_engine_kick(f->engine);
    fx_settle(f);
}

/* ---- the store, as the tests see it ----------------------------------------------- */

/** Creates an Active webhook on url subscribed to the NULL-terminated event names; returns its id. */
static inline uint32_t fx_webhook(fx *f, const char *url, bool locked, ...)
{
    hk_webhook w;
    hk_webhook_init(&w);
    free(w.name);
    w.name = hk_strdup("hook");
    free(w.url);
    w.url = hk_strdup(url);
    free(w.secret);
    w.secret = hk_strdup("s3cret");
    w.locked = locked;
    va_list ap;
    va_start(ap, locked);
    for (const char *ev = va_arg(ap, const char *); ev != NULL; ev = va_arg(ap, const char *)) {
        w.events = hk_realloc(w.events, (w.nevents + 1) * sizeof(*w.events));
        w.events[w.nevents++] = hk_strdup(ev);
    }
    va_end(ap);
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = hk_clock_wall(&f->clock)};
    op.u.webhook_put.webhook = &w;
    CHECK_INT(hk_store_apply(f->store, &op), 0);
    hk_webhook_free(&w);
    return op.u.webhook_put.id;
}

/** Sets a webhook's state ("Active", "Stopped", "TooManyErrors"), as the registry would. */
static inline void fx_set_state(fx *f, uint32_t id, const char *state)
{
    hk_webhook w;
    CHECK_INT(hk_store_webhook_get(f->store, id, &w), 0);
    w.state = (enum hk_webhook_state)hk_webhook_state_parse(state);
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = hk_clock_wall(&f->clock)};
    op.u.webhook_put.webhook = &w;
    CHECK_INT(hk_store_apply(f->store, &op), 0);
    hk_webhook_free(&w);
}

/** Deletes a webhook, as the registry would. */
static inline void fx_delete(fx *f, uint32_t id)
{
    hk_op op = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = hk_clock_wall(&f->clock)};
    op.u.webhook_delete.id = id;
    CHECK_INT(hk_store_apply(f->store, &op), 0);
}

/** The webhook's state name ("" when it does not exist). */
static inline const char *fx_state(fx *f, uint32_t id)
{
    hk_webhook w;
    const char *out = "";
    if (hk_store_webhook_get(f->store, id, &w) == 0)
        out = hk_webhook_state_name(w.state);
    hk_webhook_free(&w);
    return out;
}

/** The webhook's statistics. */
static inline hk_webhook_stats fx_stats(fx *f, uint32_t id)
{
    hk_webhook_stats st;
    memset(&st, 0, sizeof(st));
    CHECK_INT(hk_store_webhook_stats(f->store, id, &st), 0);
    return st;
}

/** Queue entries of webhook id (pending deliveries, due or not). */
static inline size_t fx_pending(fx *f, uint32_t id)
{
    uint64_t pending = 0, due = 0;
    CHECK_INT(hk_store_pending(f->store, id, hk_clock_wall(&f->clock), &pending, &due), 0);
    return (size_t)pending;
}

static inline int fx_count_attempt(const hk_attempt *a, void *arg)
{
    HK_UNUSED(a);
    (*(size_t *)arg)++;
    return 0;
}

/** Attempt records of webhook id. */
static inline size_t fx_attempts(fx *f, uint32_t id)
{
    size_t n = 0;
    CHECK_INT(hk_store_attempts_each(f->store, id, 0, true, fx_count_attempt, &n), 0);
    return n;
}

/* ---- signals ------------------------------------------------------------------------------ */

static inline void fx_signal_done(hk_signal *s, int status)
{
    *(int *)s->arg = status;
    hk_signal_free(s);
}

struct fx_signalled {
    int status;
    bool duplicate;
    uint64_t event_id;
};

static inline void fx_signal_seen(hk_signal *s, int status)
{
    struct fx_signalled *out = s->arg;
    out->status = status;
    out->duplicate = s->duplicate;
    out->event_id = s->event_id;
    hk_signal_free(s);
}

/** Signals event name (Data {}) by user with Idempotency-Key key (may be NULL) and waits for its commit. */
static inline struct fx_signalled fx_signal_as(fx *f, const char *name, int64_t pk, uint32_t user, const char *key)
{
    struct fx_signalled out = {.status = 1};
    hk_signal *s = hk_calloc(1, sizeof(*s));
    s->name = hk_strdup(name);
    s->primary_key = pk;
    s->data = hk_strdup("{}");
    s->data_len = 2;
    s->changes = hk_strdup("[]");
    s->changes_len = 2;
    s->user_id = user;
    s->idem_key = key ? hk_strdup(key) : NULL;
    s->done = fx_signal_seen;
    s->arg = &out;
    hk_engine_signal(f->engine, s);
    fx_settle(f);
    return out;
}

/** Signals event name (Data {}) and waits for its commit; returns its status. */
static inline int fx_signal(fx *f, const char *name, int64_t pk)
{
    int status = 1;
    hk_signal *s = hk_calloc(1, sizeof(*s));
    s->name = hk_strdup(name);
    s->primary_key = pk;
    s->data = hk_strdup("{}");
    s->data_len = 2;
    s->changes = hk_strdup("[]");
    s->changes_len = 2;
    s->user_id = 1;
    s->done = fx_signal_done;
    s->arg = &status;
    hk_engine_signal(f->engine, s);
    fx_settle(f);
    return status;
}

/* ---- set-up and tear-down ---------------------------------------------------------------- */

static inline void fx_finished(const hk_attempt *a, void *arg)
{
    HK_UNUSED(a);
    ((fx *)arg)->finished++;
}

/** Default options: a small window, two slots per origin, no jitter, no timers of its own. */
static inline void fx_default_opts(hk_engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_inflight = 64;
    o->concurrency_per_origin = 2;
    o->retry_schedule = "0s,10s,100s,1000s";
    o->retry_jitter_pct = 0;
    o->retry_after_max_ms = 60000;
    o->disable_after = 3;
    o->idempotency_window_ms = 86400000;
    o->log_retention_ms = 7 * 86400000ull;
    o->prune_interval_ms = 0;
    o->tick_ms = 0;
    o->sync_wait_ms = 5000;
    o->shutdown_grace_ms = 0;
    o->seed = 42;
}

/** Opens a store in a new temporary directory and starts the engine with opts (NULL: the defaults). */
static inline fx *fx_open(const hk_engine_opts *opts)
{
    fx *f = hk_calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hk-engine-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        abort();
    hk_store_opts so = {.data_dir = f->dir, .map_size = 64u << 20, .max_batch = 1000};
    if (hk_store_open(&f->store, &f->loop, &so) != 0)
        abort();
    hk_clock_fake(&f->clock, FX_START_MS);
    if (opts != NULL)
        f->opts = *opts;
    else
        fx_default_opts(&f->opts);
    hk_engine_deps deps = {.loop = &f->loop,
                           .store = f->store,
                           .clock = &f->clock,
                           .sender = {.send = fx_send, .close = fx_sender_close, .ctx = f},
                           .finished = fx_finished,
                           .finished_arg = f};
    if (hk_engine_start(&f->engine, &deps, &f->opts) != 0)
        abort();
    fx_settle(f);
    return f;
}

static inline void fx_stopped(void *arg)
{
    ((fx *)arg)->stopped = true;
}

/** Stops the engine, closes the store and removes the directory. */
static inline void fx_close(fx *f)
{
    hk_engine_stop(f->engine, fx_stopped, f);
    while (!f->stopped || hk_store_busy(f->store))
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

#endif
