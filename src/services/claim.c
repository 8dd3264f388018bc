/*
 * claim.c: the window loaded by claims in cluster mode (hk_store_is_cluster):
 * due deliveries claimed from the shared queue in batches with a lease,
 * what a claim brings that the window does not admit given back, and every
 * claim of the node given back at its stop. The embedded engine's walk of
 * the queue is in scheduler.c.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"

#define STORE_BACKOFF_MS 1000 /* a failed claim is tried again after this */
#define CLAIM_MAX 256         /* deliveries claimed per round trip at most */

struct claim_load {
    hk_store_claim c;
    hk_engine *e;
    uint32_t *skip; /* the webhooks the claim steps over (c.skip) */
};

/*
 * A claimed batch: each delivery its webhook admits becomes a job; the
 * others (a webhook parked or full, or a stop meanwhile) are given back at
 * once. One already in the window (claimed again because it is due again
 * while its job waits) stays the job's.
 */
static void on_claimed(hk_store_claim *c, int status)
{
    struct claim_load *cl = hk_container_of(c, struct claim_load, c);
    hk_engine *e = cl->e;
    e->claiming = false;
    if (status != 0) {
        if (status != UV_ECANCELED)
            hk_warn("engine: cannot claim due deliveries: %s", hk_strerror(status));
        hk__schedule_load(e, STORE_BACKOFF_MS);
    } else {
        hk__new_pass(e, false);
        for (size_t i = 0; i < c->nitems; i++) {
            const hk_delivery *d = &c->items[i].delivery;
            if (hk__job_find(e, d->webhook_id, d->event_id) != NULL)
                continue;
            struct hk__wstate *ws = e->stopping ? NULL : hk__ws_get(e, d->webhook_id);
            if (ws == NULL || hk__admit(e, ws) == 0) {
                hk__give_back(e, d);
                continue;
            }
            hk__job_new(e, ws, d, &c->items[i].event, NULL);
        }
        hk__give_back_flush(e);
        /* A full batch leaves more behind; the tick and the queue's notifications bring the rest.
         * Skipped webhooks may have due work too: a completion claims again. */
        bool full = c->nitems >= c->max;
        e->more_due = full || c->nskip > 0;
        if (full || e->claim_again)
            hk__schedule_load(e, 0);
    }
    e->claim_again = false;
    hk_store_claim_free(c);
    free(cl->skip);
    free(cl);
    hk__dispatch(e);
    hk__submitted(e);
}

/*
 * Claims this node holds but will not attempt now are given back, so that
 * any node takes them at once rather than when their leases end: in one
 * request at a time, and those a failed request could not give back (the
 * database out of reach) again at the next tick.
 */
static void on_given_back(int status, void *arg)
{
    hk_engine *e = arg;
    if (status == 0) {
        memmove(e->back, e->back + e->back_sent, (e->nback - e->back_sent) * sizeof(*e->back));
        e->nback -= e->back_sent;
    }
    e->back_sent = 0;
    hk__submitted(e);
}

void hk__give_back_flush(hk_engine *e)
{
    if (e->back_sent > 0 || e->nback == 0 || e->released)
        return;
    e->back_sent = e->nback;
    e->committing++; /* a stop waits for it */
    hk_store_release(e->store, e->back, e->nback, on_given_back, e);
}

void hk__give_back(hk_engine *e, const hk_delivery *d)
{
    e->back = hk_realloc(e->back, (e->nback + 1) * sizeof(*e->back));
    e->back[e->nback++] = *d;
}

/* The webhooks known to be admitted nothing now (their origins saturated,
 * their shares held): a claim steps over their deliveries, so that a window
 * full of jobs waiting for saturated origins still takes a healthy one's. */
static uint32_t *claim_skip(hk_engine *e, size_t *n)
{
    uint32_t *skip = NULL;
    size_t cap = 0;
    *n = 0;
    for (size_t i = 0; i < HK__WS_BUCKETS; i++) {
        for (struct hk__wstate *ws = e->ws_table[i]; ws != NULL; ws = ws->hnext) {
            if (!ws->known || !ws->active || ws->gone || hk__admit(e, ws) > 0)
                continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                skip = hk_realloc(skip, cap * sizeof(*skip));
            }
            skip[(*n)++] = ws->id;
        }
    }
    return skip;
}

/*
 * Claims due deliveries for the room left in the window (one claim at a
 * time: asked meanwhile, it follows). As the embedded walk admits work that
 * can go on the wire at once past a full window (hk__admit), a full window
 * still claims, up to twice its size, for the webhooks not skipped; what
 * hk__admit then refuses is given back.
 */
void hk__claim_load(hk_engine *e)
{
    if (e->claiming) {
        e->claim_again = true;
        return;
    }
    uint32_t max = e->o.max_inflight, hard = max > UINT32_MAX / 2 ? UINT32_MAX : max * 2;
    if (e->mem >= hard) {
        e->more_due = true; /* a completion claims again */
        return;
    }
    uint32_t room = (e->mem < max ? max : hard) - e->mem;
    struct claim_load *cl = hk_calloc(1, sizeof(*cl));
    cl->e = e;
    cl->skip = claim_skip(e, &cl->c.nskip);
    cl->c.skip = cl->skip;
    cl->c.now_ms = hk_clock_wall(e->clock);
    cl->c.lease_ms = e->o.lease_ms;
    cl->c.max = room < CLAIM_MAX ? room : CLAIM_MAX;
    cl->c.done = on_claimed;
    e->claiming = true;
    e->claim_again = false;
    e->committing++; /* a stop waits for it */
    hk_store_claim_due(e->store, &cl->c);
}

/* Walks the queue webhook by webhook, loading due entries that are not in
 * the window yet, as many as each webhook is admitted. */
