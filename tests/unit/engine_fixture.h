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
#include "kv.h"
#include "sender.h"
#include "unit.h"
#include "webhook.h"

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
    hk_kv_env *store;
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

static int fx_send(void *ctx, const hk_client_request *r, hk_client_cb cb, void *arg)
{
    fx *f = ctx;
    if (f->sender_closed)
        return HK_ESHUTDOWN;
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

static void fx_complete(fx *f, size_t i, const hk_client_result *r)
{
    struct fx_req *q = &f->req[i];
    CHECK(!q->done);
    if (q->done)
        return;
    q->done = true;
    q->cb(r, q->arg);
}

static void fx_closer_fired(uv_timer_t *t)
{
    fx *f = t->data;
    uv_close((uv_handle_t *)&f->closer, NULL);
    if (f->closed_cb != NULL)
        f->closed_cb(f->closed_arg);
}

static void fx_sender_close(void *ctx, void (*closed)(void *), void *arg)
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
static void fx_answer(fx *f, size_t i, int status, const char *headers)
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
static void fx_fail(fx *f, size_t i)
{
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.error = UV_ECONNREFUSED;
    r.error_text = "connection refused";
    r.status_line = r.headers = r.body = r.request_head = "";
    fx_complete(f, i, &r);
}

/** Requests not answered yet. */
static size_t fx_open_requests(const fx *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nreq; i++)
        n += !f->req[i].done;
    return n;
}

/** The first request not answered yet whose URL contains part, or -1. */
static long fx_find(const fx *f, const char *part)
{
    for (size_t i = 0; i < f->nreq; i++)
        if (!f->req[i].done && strstr(f->req[i].url, part) != NULL)
            return (long)i;
    return -1;
}

/* ---- the loop ---------------------------------------------------------------------------- */

/** Runs the loop until commits are done and no zero-delay timer is left. */
static void fx_settle(fx *f)
{
    int quiet = 0;
    for (int i = 0; i < 100000 && quiet < 3; i++) {
        if (hk_kv_busy(f->store)) {
            uv_run(&f->loop, UV_RUN_ONCE);
            quiet = 0;
        } else {
            uv_run(&f->loop, UV_RUN_NOWAIT);
            quiet++;
        }
    }
}

/** Moves the clock and lets the engine look at the queue. */
static void fx_advance(fx *f, uint64_t ms)
{
    hk_clock_advance(&f->clock, ms);
    hk_engine_kick(f->engine);
    fx_settle(f);
}

/* ---- the store, as the tests see it ----------------------------------------------- */

struct fx_put {
    json_t *rec;
    uint32_t id;
};

static int fx_put_txn(hk_txn *txn, void *arg)
{
    struct fx_put *p = arg;
    int rc = hk_webhook_put(txn, p->rec);
    p->id = (uint32_t)hk_wh_int(p->rec, "id");
    return rc;
}

/** Creates an Active webhook on url subscribed to the NULL-terminated event names; returns its id. */
static uint32_t fx_webhook(fx *f, const char *url, bool locked, ...)
{
    json_t *events = json_array();
    va_list ap;
    va_start(ap, locked);
    for (const char *ev = va_arg(ap, const char *); ev != NULL; ev = va_arg(ap, const char *))
        json_array_append_new(events, json_string(ev));
    va_end(ap);
    struct fx_put p = {.rec = json_pack("{s:I, s:s, s:s, s:o, s:s, s:s, s:b, s:o, s:o, s:o}", "id", (json_int_t)0,
                                        "name", "hook", "url", url, "events", events, "state", "Active", "secret",
                                        "s3cret", "locked", locked, "headers", json_object(), "properties",
                                        json_object(), "notify", json_array())};
    CHECK_INT(hk_kv_write_sync(f->store, fx_put_txn, &p), 0);
    json_decref(p.rec);
    return p.id;
}

struct fx_state {
    uint32_t id;
    const char *state;
};

static int fx_state_txn(hk_txn *txn, void *arg)
{
    struct fx_state *s = arg;
    json_t *rec;
    int rc = hk_webhook_get(txn, s->id, &rec);
    if (rc != 0)
        return rc;
    json_object_set_new(rec, "state", json_string(s->state));
    rc = hk_webhook_put(txn, rec);
    json_decref(rec);
    if (rc == 0 && strcmp(s->state, "Active") == 0) {
        /* Set Active again: the failure count starts over. */
        hk_webhook_stats st;
        hk_webhook_stats_get(txn, s->id, &st);
        st.consecutive = 0;
        rc = hk_webhook_stats_put(txn, s->id, &st);
    }
    return rc;
}

/** Sets a webhook's state ("Active", "Stopped", "TooManyErrors"), as the registry would. */
static void fx_set_state(fx *f, uint32_t id, const char *state)
{
    struct fx_state s = {id, state};
    CHECK_INT(hk_kv_write_sync(f->store, fx_state_txn, &s), 0);
}

/** The webhook's state name ("" when it does not exist). */
static const char *fx_state(fx *f, uint32_t id)
{
    static char out[32];
    hk_txn *txn;
    out[0] = '\0';
    if (hk_kv_read(f->store, &txn) != 0)
        return out;
    json_t *rec;
    if (hk_webhook_get(txn, id, &rec) == 0) {
        snprintf(out, sizeof(out), "%s", hk_wh_str(rec, "state"));
        json_decref(rec);
    }
    hk_txn_end(txn);
    return out;
}

/** The webhook's statistics. */
static hk_webhook_stats fx_stats(fx *f, uint32_t id)
{
    hk_webhook_stats st;
    memset(&st, 0, sizeof(st));
    hk_txn *txn;
    if (hk_kv_read(f->store, &txn) == 0) {
        hk_webhook_stats_get(txn, id, &st);
        hk_txn_end(txn);
    }
    return st;
}

/** Queue entries of webhook id (pending deliveries, due or not). */
static size_t fx_pending(fx *f, uint32_t id)
{
    size_t n = 0;
    hk_txn *txn;
    hk_cursor *c;
    if (hk_kv_read(f->store, &txn) != 0)
        return 0;
    if (hk_cursor_open(txn, HK_DB_QUEUE, &c) == 0) {
        uint8_t prefix[4];
        hk_be32(prefix, id);
        hk_val k = {prefix, 4}, v;
        for (int rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
            if (k.len != 20 || memcmp(k.data, prefix, 4) != 0)
                break;
            n++;
        }
        hk_cursor_close(c);
    }
    hk_txn_end(txn);
    return n;
}

/* ---- signals ------------------------------------------------------------------------------ */

static void fx_signal_done(hk_signal *s, int status)
{
    *(int *)s->arg = status;
    hk_signal_free(s);
}

/** Signals event name (Data {}) and waits for its commit; returns its status. */
static int fx_signal(fx *f, const char *name, int64_t pk)
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

static void fx_finished(const hk_attempt *a, void *arg)
{
    HK_UNUSED(a);
    ((fx *)arg)->finished++;
}

/** Default options: a small window, two slots per origin, no jitter, no timers of its own. */
static void fx_default_opts(hk_engine_opts *o)
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
static fx *fx_open(const hk_engine_opts *opts)
{
    fx *f = hk_calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    snprintf(f->dir, sizeof(f->dir), "/tmp/hk-engine-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        abort();
    if (hk_kv_open(&f->store, f->dir, 64u << 20, 1000, &f->loop) != 0)
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

static void fx_stopped(void *arg)
{
    ((fx *)arg)->stopped = true;
}

/** Stops the engine, closes the store and removes the directory. */
static void fx_close(fx *f)
{
    hk_engine_stop(f->engine, fx_stopped, f);
    while (!f->stopped || hk_kv_busy(f->store))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    hk_kv_close(f->store);
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
