/*
 * maintenance.c: keeping the store small. Pruning removes attempt records,
 * events and Idempotency-Keys past their windows; the queue entries of a
 * deleted webhook are removed. Both delete in small transactions, so that
 * every group commit stays short and ingest never waits behind a clean-up.
 */
#include <string.h>

#include "engine_int.h"

#define PRUNE_CHUNK 500    /* records deleted per transaction */
#define CLEANUP_CHUNK 5000 /* queue entries of a deleted webhook removed per transaction */

/* ---- the queue of a deleted webhook -------------------------------------------- */

struct cleanup {
    hk_write w;
    hk_engine *eng;
    uint32_t wid;
    bool more;
};

/* Queue entries of the webhook whose id prefix is *arg. */
static bool queued_for(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == 20 && memcmp(k->data, arg, 4) == 0;
}

static int cleanup_apply(hk_txn *txn, hk_write *w)
{
    struct cleanup *cl = hk_container_of(w, struct cleanup, w);
    uint8_t prefix[4];
    hk_be32(prefix, cl->wid);
    cl->more = false;
    /* Ids are never reused, so entries under a deleted webhook's id are
     * orphans; check that it is gone anyway. */
    hk_val wv;
    if (hk_get(txn, HK_DB_WEBHOOKS, prefix, 4, &wv) == 0)
        return 0;
    hk_val from = {prefix, 4};
    return hk_delete_run(txn, HK_DB_QUEUE, &from, queued_for, NULL, prefix, CLEANUP_CHUNK, &cl->more);
}

static void cleanup_done(hk_write *w, int status)
{
    struct cleanup *cl = hk_container_of(w, struct cleanup, w);
    hk_engine *e = cl->eng;
    struct hk__wstate *ws = hk__ws_lookup(e, cl->wid);
    if (ws != NULL)
        ws->cleaning = false;
    if (status == 0 && cl->more)
        hk__schedule_load(e, 0);
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
    cl->wid = ws->id;
    hk__submit(e, &cl->w, cleanup_apply, cleanup_done, 0);
}

/* ---- pruning ------------------------------------------------------------------------ */

struct prune {
    hk_write w;
    hk_engine *eng;
    uint64_t log_before, event_before, idem_before;
    bool more;
};

/* Pairs keyed by a leading big-endian time older than *before. */
static bool older_key(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len >= 8 && hk_rd64(k->data) < *(const uint64_t *)arg;
}

/* An idempotency time-index entry takes its key (the rest of the index key) with it. */
static int drop_idempotency_key(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    HK_UNUSED(arg);
    int rc = hk_del(txn, HK_DB_IDEMPOTENCY, (const uint8_t *)k->data + 8, k->len - 8, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* Events (numbered in arrival order, oldest first) whose stored time is older. */
static bool older_event(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(k);
    return v->len >= 8 && hk_rd64(v->data) < *(const uint64_t *)arg;
}

static int prune_apply(hk_txn *txn, hk_write *w)
{
    struct prune *p = hk_container_of(w, struct prune, w);
    bool more = false;
    p->more = false;
    int rc = hk_log_prune(txn, p->log_before, PRUNE_CHUNK, &more);
    p->more |= more;
    if (rc == 0)
        rc = hk_delete_run(txn, HK_DB_EVENTS, NULL, older_event, NULL, &p->event_before, PRUNE_CHUNK, &p->more);
    if (rc == 0)
        rc = hk_delete_run(txn, HK_DB_IDEMPOTENCY_TIME, NULL, older_key, drop_idempotency_key, &p->idem_before,
                           PRUNE_CHUNK, &p->more);
    return rc;
}

static void prune_done(hk_write *w, int status)
{
    struct prune *p = hk_container_of(w, struct prune, w);
    hk_engine *e = p->eng;
    bool more = status == 0 && p->more;
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
    p->log_before = now > e->o.log_retention_ms ? now - e->o.log_retention_ms : 0;
    /* An event outlives its log records and every retry of its deliveries:
     * a delivery queued at the retention's edge may still wait out the
     * whole schedule, each step stretched by jitter or Retry-After. */
    uint64_t span = hk_retry_span(&e->policy);
    p->event_before = p->log_before > span ? p->log_before - span : 0;
    p->idem_before = now > e->o.idempotency_window_ms ? now - e->o.idempotency_window_ms : 0;
    e->pruning = true;
    hk__submit(e, &p->w, prune_apply, prune_done, 0);
}
