/*
 * ingest.c: signals. A signal is one op (HK_OP_SIGNAL): the event, one
 * queue entry per Active webhook subscribed to its name and its
 * Idempotency-Key, stored in one commit. Once that commit is done its
 * deliveries go straight into the window, the event's part of the body
 * rendered once and each distinct body once, shared by the webhooks that
 * send the same bytes (what does not fit waits in the queue for the loader).
 */
#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "metrics.h"

void hk_signal_free(hk_signal *s)
{
    if (s == NULL)
        return;
    hk_op_free_out(&s->c.op);
    free(s->name);
    free(s->data);
    free(s->changes);
    free(s->idem_key);
    free(s);
}

/* The stored event as the op described it (strings borrowed from the signal). */
static hk_event signal_event(const hk_signal *s)
{
    const hk_op_signal *o = &s->c.op.u.signal;
    hk_event ev = {.id = o->event_id,
                   .ts_ms = s->c.op.now_ms,
                   .primary_key = s->primary_key,
                   .user_id = s->user_id,
                   .name = s->name,
                   .changes = s->changes,
                   .changes_len = s->changes_len,
                   .data = s->data,
                   .data_len = s->data_len};
    memcpy(ev.uuid, o->uuid, sizeof(ev.uuid));
    return ev;
}

/* Bodies of one event kept while its fan-out runs: webhooks with the same
 * WebhookName and Properties share one (bounded, so that many distinct
 * subscribers cost a short scan each, not a long one). */
#define FANOUT_BODIES 8

void hk__fan_out(hk_engine *e, const hk_event *ev, const uint32_t *ids, size_t n)
{
    hk_delivery d = {.event_id = ev->id, .due_ms = ev->ts_ms, .attempts = 0, .first_ms = ev->ts_ms};
    hk_buf head = HK_BUF_INIT;
    hk_body *bodies[FANOUT_BODIES];
    size_t nbodies = 0, next = 0;
    bool left = false;
    hk__new_pass(e, false);
    for (size_t i = 0; i < n; i++) {
        struct hk__wstate *ws = hk__ws_get(e, ids[i]);
        if (hk__job_find(e, ws->id, ev->id) != NULL)
            continue;
        if (hk__admit(e, ws) == 0) {
            left = true;
            continue;
        }
        hk_body *b = NULL;
        for (size_t k = 0; k < nbodies && b == NULL; k++)
            if (hk_body_fits(bodies[k], &ws->t))
                b = bodies[k];
        if (b == NULL) {
            if (head.data == NULL)
                hk_body_head(&head, ev);
            b = hk_body_new(&head, ev, &ws->t);
            /* The oldest kept body makes room. */
            if (nbodies == FANOUT_BODIES)
                hk_body_ref(bodies[next], -1);
            else
                nbodies++;
            bodies[next] = b;
            next = (next + 1) % FANOUT_BODIES;
        }
        d.webhook_id = ws->id;
        hk__job_new(e, ws, &d, ev, b);
    }
    for (size_t k = 0; k < nbodies; k++)
        hk_body_ref(bodies[k], -1);
    hk_buf_free(&head);
    if (left) {
        e->more_due = true;
        hk__schedule_load(e, 0);
    }
    hk__dispatch(e);
}

/* Hands the new deliveries to the windows: this engine's own, and (with
 * workers) the owners' of the other webhooks. */
static void fan_out(hk_engine *e, hk_signal *s)
{
    const hk_op_signal *o = &s->c.op.u.signal;
    hk_event ev = signal_event(s);
    if (e->group == NULL) {
        hk__fan_out(e, &ev, o->webhooks, o->nwebhooks);
        return;
    }
    hk__hand_over(e, &ev, o->webhooks, o->nwebhooks);
    uint32_t *own = hk_malloc(o->nwebhooks * sizeof(*own));
    size_t mine = 0;
    for (size_t i = 0; i < o->nwebhooks; i++)
        if (hk__owns(e, o->webhooks[i]))
            own[mine++] = o->webhooks[i];
    if (mine > 0)
        hk__fan_out(e, &ev, own, mine);
    free(own);
}

/* The signal's answer, once its EventId is known; its deliveries go to the window. */
static void signal_finish(hk_signal *s, int status)
{
    hk_engine *e = s->engine;
    const hk_op_signal *o = &s->c.op.u.signal;
    if (status == 0 && !o->duplicate && o->nwebhooks > 0 && !e->stopping) {
        if (hk_store_is_cluster(e->store))
            hk__schedule_load(e, 0); /* claimed like any node's: two nodes never hold one delivery */
        else
            fan_out(e, s);
    }
    s->done(s, status);
}

/* The first event of a repeated Idempotency-Key was read: its EventId is the answer's. */
static void first_event_read(hk_store_event_req *r, int rc)
{
    hk_signal *s = r->arg;
    const hk_op_signal *o = &s->c.op.u.signal;
    if (rc == 0) {
        hk_event_uuid_str(r->event.uuid, s->event_uuid);
        hk_event_free(&r->event);
    } else {
        hk_debug("signal: the first event %llu of a repeated Idempotency-Key: %s", (unsigned long long)o->event_id,
                 hk_strerror(rc));
    }
    free(r);
    signal_finish(s, 0);
}

static void signal_done(hk_commit *c, int status)
{
    hk_signal *s = hk_container_of(c, hk_signal, c);
    const hk_op_signal *o = &c->op.u.signal;
    s->event_id = o->event_id;
    s->duplicate = o->duplicate;
    if (status == 0) {
        HK_METRIC_ADD(hk_metrics.signals_duplicate, o->duplicate);
        HK_METRIC_ADD(hk_metrics.signals_accepted, !o->duplicate);
        HK_METRIC_ADD(hk_metrics.deliveries_queued, o->duplicate ? 0 : o->nwebhooks);
    }
    s->event_uuid[0] = '\0';
    if (status == 0 && !o->duplicate) {
        hk_event_uuid_str(o->uuid, s->event_uuid);
    } else if (status == 0) {
        /* The first event's EventId: a read of the map (at once), or of the cluster's database. */
        hk_store_event_req *r = hk_calloc(1, sizeof(*r));
        r->id = o->event_id;
        r->done = first_event_read;
        r->arg = s;
        hk_store_event_read(s->engine->store, r);
        return;
    }
    signal_finish(s, status);
}

void hk_engine_signal(hk_engine *e, hk_signal *s)
{
    s->engine = e;
    memset(&s->c, 0, sizeof(s->c));
    s->c.op.type = HK_OP_SIGNAL;
    s->c.op.now_ms = hk_clock_wall(e->clock);
    hk_op_signal *o = &s->c.op.u.signal;
    o->name = s->name;
    o->primary_key = s->primary_key;
    o->data = s->data;
    o->data_len = s->data_len;
    o->changes = s->changes;
    o->changes_len = s->changes_len;
    o->user_id = s->user_id;
    hk__uuid(e, o->uuid);
    o->idem_key = s->idem_key;
    o->idem_window_ms = e->o.idempotency_window_ms;
    s->c.done = signal_done;
    hk_store_submit(e->store, &s->c);
}

void hk_engine_state_event_init(hk_engine *e, hk_state_event *ev, const char *kind, const char *reason)
{
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->reason = reason;
    hk__uuid(e, ev->uuid);
}
