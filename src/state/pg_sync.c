/*
 * pg_sync.c: the PostgreSQL engine driven to completion on a private loop
 * (pg_sync.h). A tick timer bounds each wait; the loop only ever runs
 * inside these calls.
 */
#include "pg_sync.h"

#include <stdio.h>
#include <string.h>

#include "pg_cache.h"

#define DEF_TIMEOUT_MS 10000

struct hk_pg_sync {
    uv_loop_t loop;
    hk_pg_store *store;
    uint64_t timeout_ms;
};

struct wait {
    hk_commit c;
    bool done;
    bool abandoned; /* the caller stopped waiting: done frees it */
    int status;
};

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(arg) or the timeout; whether cond holds. */
static bool run_until(hk_pg_sync *s, bool (*cond)(void *arg), void *arg)
{
    uv_timer_t tick;
    uv_timer_init(&s->loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uv_update_time(&s->loop);
    uint64_t end = uv_now(&s->loop) + s->timeout_ms;
    while (!cond(arg) && uv_now(&s->loop) < end)
        uv_run(&s->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    return cond(arg);
}

static bool is_ready(void *arg)
{
    return hk_pg_store_ready(arg);
}

static bool is_done(void *arg)
{
    return ((struct wait *)arg)->done;
}

static void drain(hk_pg_sync *s)
{
    hk_pg_store_close(s->store);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&s->loop) != 0)
        fprintf(stderr, "postgres: a handle of the CLI's loop was left open\n");
    free(s);
}

int hk_pg_sync_open(hk_pg_sync **out, const char *conninfo, uint64_t timeout_ms, char *err, size_t errlen)
{
    *out = NULL;
    err[0] = '\0';
    hk_pg_sync *s = hk_calloc(1, sizeof(*s));
    s->timeout_ms = timeout_ms ? timeout_ms : DEF_TIMEOUT_MS;
    int rc = uv_loop_init(&s->loop);
    if (rc != 0) {
        snprintf(err, errlen, "cannot create an event loop: %s", uv_strerror(rc));
        free(s);
        return rc;
    }
    hk_pg_store_opts o = {.conninfo = conninfo, .pool_size = 1, .queue_timeout_ms = s->timeout_ms};
    if ((rc = hk_pg_store_open(&s->store, &s->loop, &o)) != 0) {
        snprintf(err, errlen, "the [cluster] postgres connection string does not parse");
        uv_loop_close(&s->loop);
        free(s);
        return rc;
    }
    if (!run_until(s, is_ready, s->store)) {
        snprintf(err, errlen, "the cluster's database did not answer within %llu ms",
                 (unsigned long long)s->timeout_ms);
        drain(s);
        return UV_ETIMEDOUT;
    }
    *out = s;
    return 0;
}

static void on_done(hk_commit *c, int status)
{
    struct wait *w = hk_container_of(c, struct wait, c);
    w->done = true;
    w->status = status;
    if (w->abandoned)
        free(w);
}

int hk_pg_sync_apply(hk_pg_sync *s, hk_op *op)
{
    struct wait *w = hk_calloc(1, sizeof(*w));
    w->c.op = *op;
    w->c.done = on_done;
    hk_pg_store_submit(s->store, &w->c);
    if (!run_until(s, is_done, w)) {
        /* Still in flight: it ends when the engine closes (UV_ECANCELED), and frees itself then. */
        w->abandoned = true;
        return UV_ETIMEDOUT;
    }
    *op = w->c.op;
    int status = w->status;
    free(w);
    return status;
}

bool hk_pg_sync_run_until(hk_pg_sync *s, bool (*cond)(void *arg), void *arg)
{
    return run_until(s, cond, arg);
}

hk_pg_store *hk_pg_sync_store(hk_pg_sync *s)
{
    return s->store;
}

void hk_pg_sync_close(hk_pg_sync *s)
{
    if (s != NULL)
        drain(s);
}
