/*
 * maintenance.c: keeping the store small. Pruning removes attempt records,
 * events (with their queue entries) and Idempotency-Keys past their
 * windows; the queue entries of a deleted webhook are removed. Both go in
 * bounded steps (HK_OP_PRUNE, HK_OP_QUEUE_DROP), so that every group commit
 * stays short and ingest never waits behind a clean-up.
 */
#include "engine_int.h"
#include "log.h"

#define PRUNE_CHUNK 500    /* records removed per step */
#define CLEANUP_CHUNK 5000 /* queue entries of a deleted webhook removed per step */

/* ---- the queue of a deleted webhook -------------------------------------------- */

struct cleanup {
    hk_commit c;
    hk_engine *eng;
};

static void cleanup_done(hk_commit *c, int status)
{
    struct cleanup *cl = hk_container_of(c, struct cleanup, c);
    hk_engine *e = cl->eng;
    struct hk__wstate *ws = hk__ws_lookup(e, c->op.u.queue_drop.webhook_id);
    if (ws != NULL)
        ws->cleaning = false;
    if (status != 0)
        hk_warn("engine: the queue of deleted webhook %u could not be cleared: %s", c->op.u.queue_drop.webhook_id,
                hk_strerror(status));
    else if (c->op.u.queue_drop.more)
        hk__schedule_load(e, 0);
    else if (ws != NULL)
        hk__ws_forget(e, ws); /* nothing of it is left: the engine forgets it too */
    free(cl);
    hk__submitted(e);
}

void hk__queue_drop(hk_engine *e, struct hk__wstate *ws)
{
    if (ws->cleaning || e->stopping)
        return;
    ws->cleaning = true;
    struct cleanup *cl = hk_calloc(1, sizeof(*cl));
    cl->eng = e;
    cl->c.op.type = HK_OP_QUEUE_DROP;
    cl->c.op.now_ms = hk_clock_wall(e->clock);
    cl->c.op.u.queue_drop.webhook_id = ws->id;
    cl->c.op.u.queue_drop.max = CLEANUP_CHUNK;
    cl->c.done = cleanup_done;
    hk__submit(e, &cl->c);
}

void hk_engine_webhook_deleted(hk_engine *e, uint32_t id)
{
    if (e->stopping)
        return;
    struct hk__wstate *ws = hk__ws_lookup(e, id);
    if (ws != NULL)
        ws->pass = 0; /* read again now, whatever this moment read before */
    ws = hk__ws_get(e, id);
    if (ws->gone)
        hk__queue_drop(e, ws);
}

/* ---- pruning ------------------------------------------------------------------------ */

struct prune {
    hk_commit c;
    hk_engine *eng;
};

static void prune_done(hk_commit *c, int status)
{
    struct prune *p = hk_container_of(c, struct prune, c);
    hk_engine *e = p->eng;
    const hk_op_prune *o = &c->op.u.prune;
    if (status != 0)
        hk_warn("engine: pruning failed: %s", hk_strerror(status));
    else if (o->dropped_deliveries > 0)
        hk_warn("engine: %llu pending deliveries dropped with their events, older than the retention",
                (unsigned long long)o->dropped_deliveries);
    bool more = status == 0 && o->more;
    e->pruning = false;
    free(p);
    if (more && !e->stopping)
        hk__prune_start(e);
    hk__submitted(e);
}

void hk__prune_start(hk_engine *e)
{
    if (e->pruning || e->stopping)
        return;
    uint64_t now = hk_clock_wall(e->clock);
    struct prune *p = hk_calloc(1, sizeof(*p));
    p->eng = e;
    p->c.op.type = HK_OP_PRUNE;
    p->c.op.now_ms = now;
    hk_op_prune *o = &p->c.op.u.prune;
    o->attempts_before_ms = now > e->o.log_retention_ms ? now - e->o.log_retention_ms : 0;
    /* An event outlives its log records and every retry of its deliveries:
     * a delivery queued at the retention's edge may still wait out the
     * whole schedule, each step stretched by jitter or Retry-After. */
    uint64_t span = hk_retry_span(&e->policy);
    o->events_before_ms = o->attempts_before_ms > span ? o->attempts_before_ms - span : 0;
    o->idempotency_before_ms = now > e->o.idempotency_window_ms ? now - e->o.idempotency_window_ms : 0;
    o->max = PRUNE_CHUNK;
    p->c.done = prune_done;
    e->pruning = true;
    hk__submit(e, &p->c);
}
