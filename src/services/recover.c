/*
 * recover.c: recoveries after an outage (HK_OP_RECOVER). A recovery is a
 * run of bounded steps, each its own commit in the group commit with
 * everyone else's ops: the next step is submitted from the done of the
 * previous one, so ingest waits behind one step at most, never behind a
 * whole window. For every webhook, webhooks are recovered one after the
 * other, in id order.
 */
#include <stdio.h>

#include "engine_int.h"
#include "log.h"

struct recover {
    hk_commit c;
    hk_engine *eng;
    bool all;          /* every webhook: the current one is c.op.u.recover.webhook_id */
    uint64_t total;    /* deliveries queued so far */
    uint32_t webhooks; /* webhooks whose run is over */
    void (*done)(int status, uint64_t recovered, void *arg);
    void *arg;
};

/* The first webhook id above after, into *id; HK_ENOTFOUND when none. */
static int first_id(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    HK_UNUSED(st);
    *(uint32_t *)arg = w->id;
    return 1;
}

static int next_webhook(hk_store *s, uint32_t after, uint32_t *id)
{
    *id = 0;
    if (after == UINT32_MAX)
        return HK_ENOTFOUND;
    int rc = hk_store_webhooks_each(s, after + 1, first_id, id);
    if (rc < 0)
        return rc;
    return *id != 0 ? 0 : HK_ENOTFOUND;
}

static void finish(struct recover *r, int status)
{
    char what[48];
    if (r->all)
        snprintf(what, sizeof(what), "%u webhook%s", r->webhooks, r->webhooks == 1 ? "" : "s");
    else
        snprintf(what, sizeof(what), "webhook %u", r->c.op.u.recover.webhook_id);
    if (status == 0)
        hk_info("recovery of %s: %llu deliver%s queued again", what, (unsigned long long)r->total,
                r->total == 1 ? "y" : "ies");
    else if (r->total > 0)
        hk_warn("recovery of %s stopped (%s) after queueing %llu deliver%s again", what, hk_strerror(status),
                (unsigned long long)r->total, r->total == 1 ? "y" : "ies");
    r->done(status, r->total, r->arg);
    free(r);
}

/* Starts the run of the webhook the op names (a fresh run: from the first record). */
static void start_webhook(struct recover *r)
{
    hk_op_recover *o = &r->c.op.u.recover;
    uint64_t now = hk_clock_wall(r->eng->clock);
    r->c.op.now_ms = now;
    o->run_ms = now;
    o->run = (uint32_t)hk__rand(r->eng);
    o->from_log_id = 0;
    hk__submit(r->eng, &r->c);
}

/* What follows a step: the next step, the next webhook's run, or the end (status into *status). */
static bool go_on(struct recover *r, int *status)
{
    hk_engine *e = r->eng;
    hk_op_recover *o = &r->c.op.u.recover;
    bool over = false; /* this webhook's run is over */
    if (*status == 0) {
        r->total += o->queued;
        if (o->queued > 0)
            hk__wake_owner(e, o->webhook_id);
        if (o->gone && !r->all)
            *status = HK_ENOTFOUND; /* deleted during its recovery */
        over = o->done;
    } else if (*status == HK_ENOTFOUND && r->all) {
        over = true; /* deleted between the listing and its first step: the others go on */
        *status = 0;
    }
    if (*status != 0)
        return false;
    uint32_t next = 0;
    if (over) {
        r->webhooks++;
        int rc = r->all ? next_webhook(e->store, o->webhook_id, &next) : HK_ENOTFOUND;
        if (rc != 0) {
            *status = rc == HK_ENOTFOUND ? 0 : rc; /* the last webhook's run is over */
            return false;
        }
    }
    if (e->stopping) {
        *status = HK_ESHUTDOWN; /* what was queued stays queued */
        return false;
    }
    if (!over) {
        o->from_log_id = o->next_log_id;
        r->c.op.now_ms = hk_clock_wall(e->clock);
        hk__submit(e, &r->c);
        return true;
    }
    o->webhook_id = next;
    start_webhook(r);
    return true;
}

static void step_done(hk_commit *c, int status)
{
    struct recover *r = hk_container_of(c, struct recover, c);
    hk_engine *e = r->eng;
    if (!go_on(r, &status))
        finish(r, status);
    /* After the next step's submission: a stop waits for it. */
    hk__submitted(e);
}

void hk_engine_recover(hk_engine *e, uint32_t webhook_id, uint64_t since_ms, uint64_t until_ms,
                       void (*done)(int status, uint64_t recovered, void *arg), void *arg)
{
    struct recover *r = hk_calloc(1, sizeof(*r));
    r->eng = e;
    r->done = done;
    r->arg = arg;
    r->all = webhook_id == 0;
    r->c.op.type = HK_OP_RECOVER;
    r->c.done = step_done;
    hk_op_recover *o = &r->c.op.u.recover;
    o->since_ms = since_ms;
    o->until_ms = until_ms;
    o->max = e->o.recover_step_max;
    int rc = 0;
    if (e->stopping)
        rc = HK_ESHUTDOWN;
    else if (since_ms > until_ms)
        rc = HK_EINVAL;
    else if (r->all)
        rc = next_webhook(e->store, 0, &webhook_id);
    if (rc == HK_ENOTFOUND && r->all) {
        finish(r, 0); /* no webhook at all */
        return;
    }
    if (rc != 0) {
        finish(r, rc);
        return;
    }
    o->webhook_id = webhook_id;
    start_webhook(r);
}
