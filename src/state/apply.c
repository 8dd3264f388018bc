/*
 * apply.c: the delivery-side ops applied inside a commit: a signal with its
 * Idempotency-Key and its fan-out to Active subscribers, state events,
 * delivery outcomes and synchronous attempts with the statistics and
 * auto-disable rules, resends, the clean-up of a deleted webhook's queue and
 * the retention step. Every rule reads the stored state and the op's inputs
 * only (the time is op->now_ms), so the same op on the same state gives the
 * same result.
 *
 * The idempotency table (owned here): HK_DB_IDEMPOTENCY maps user id (u32)
 * + Idempotency-Key to a record, version 1: u8 version, u64 time, u64
 * event id (version 0: the same without the version byte, 16 bytes).
 * HK_DB_IDEMPOTENCY_TIME holds time (u64) + the same key, for pruning.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json_text.h"
#include "log.h"
#include "tables.h"

#define IDEM_V0 16
#define IDEM_V1 17

/* ---- idempotency records ---------------------------------------------------- */

static int idem_decode(const void *data, size_t len, uint64_t *time_ms, uint64_t *event_id)
{
    const uint8_t *p = data;
    if (len == IDEM_V1 && p[0] == HK__V1)
        p++;
    else if (len != IDEM_V0)
        return HK_ESTORE;
    *time_ms = hk_rd64(p);
    *event_id = hk_rd64(p + 8);
    return 0;
}

static int idem_put(hk_txn *txn, const uint8_t *ikey, size_t iklen, uint64_t now, uint64_t eid)
{
    uint8_t v[IDEM_V1], tkey[8 + 4 + HK_IDEMPOTENCY_KEY_MAX];
    v[0] = HK__V1;
    hk_be64(v + 1, now);
    hk_be64(v + 9, eid);
    int rc = hk_put(txn, HK_DB_IDEMPOTENCY, ikey, iklen, v, IDEM_V1, 0);
    if (rc != 0)
        return rc;
    hk_be64(tkey, now);
    memcpy(tkey + 8, ikey, iklen);
    return hk_put(txn, HK_DB_IDEMPOTENCY_TIME, tkey, 8 + iklen, "", 0, 0);
}

/* ---- events and fan-out ------------------------------------------------------- */

/* Room for n + 1 webhook ids in an array grown in powers of two (from 8). */
static uint32_t *grow_ids(uint32_t *ids, size_t n)
{
    if (n == 0)
        return hk_realloc(ids, 8 * sizeof(*ids));
    if (n >= 8 && (n & (n - 1)) == 0)
        return hk_realloc(ids, 2 * n * sizeof(*ids));
    return ids;
}

struct fanout {
    const char *route; /* the subscription name */
    uint32_t exclude;  /* a webhook that never receives it (0: none) */
    uint32_t **ids;    /* out: webhooks queued for (may be NULL: not wanted) */
    size_t *nids;
};

/* Adds the webhooks subscribed under exactly key (klen bytes) to *w. */
static int subscribers_under(hk_txn *txn, const char *key, size_t klen, uint32_t **w, size_t *n)
{
    hk_cursor *c;
    hk_val k = {key, klen}, v;
    int rc = hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c);
    if (rc != 0)
        return rc;
    for (rc = hk_cursor_get(c, HK_SEEK_EXACT, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != klen || memcmp(k.data, key, klen) != 0 || v.len != 4)
            break;
        *w = grow_ids(*w, *n);
        (*w)[(*n)++] = hk_rd32(v.data);
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* A state event's route, webhook{ID}.{kind}: reached only by its exact name, never by a pattern. */
static bool state_event_route(const char *route)
{
    if (strncmp(route, "webhook", 7) != 0 || route[7] < '0' || route[7] > '9')
        return false;
    const char *p = route + 7;
    while (*p >= '0' && *p <= '9')
        p++;
    return *p == '.';
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/*
 * The webhooks subscribed to route, each once, in id order: by its exact
 * name, and (unless it is a state event's) by the patterns that match it:
 * "*" and "p.*" for every prefix p of route that ends before one of its
 * dots. A lookup per dot, never a walk over every pattern.
 */
static int subscribers(hk_txn *txn, const char *route, uint32_t **w, size_t *n)
{
    size_t len = strlen(route);
    int rc = subscribers_under(txn, route, len, w, n);
    if (rc != 0 || state_event_route(route) || len > HK_EVENT_NAME_MAX)
        return rc;
    if ((rc = subscribers_under(txn, "*", 1, w, n)) != 0)
        return rc;
    char key[HK_EVENT_NAME_MAX + 2];
    for (size_t i = 0; i + 1 < len; i++) {
        if (route[i] != '.')
            continue;
        memcpy(key, route, i + 1);
        key[i + 1] = '*';
        if ((rc = subscribers_under(txn, key, i + 2, w, n)) != 0)
            return rc;
    }
    if (*n > 1) {
        qsort(*w, *n, sizeof(**w), cmp_u32);
        size_t o = 1;
        for (size_t i = 1; i < *n; i++)
            if ((*w)[i] != (*w)[o - 1])
                (*w)[o++] = (*w)[i];
        *n = o;
    }
    return 0;
}

/*
 * Queues event eid (accepted at now) for every Active webhook subscribed to
 * f->route (see subscribers). A subscriber's state is read at a fixed
 * offset of its record: nothing is decoded per subscriber.
 */
static int fan_out(hk_txn *txn, uint64_t eid, uint64_t now, struct fanout *f)
{
    uint32_t *subs = NULL;
    size_t nsubs = 0;
    int rc = subscribers(txn, f->route, &subs, &nsubs);
    for (size_t i = 0; rc == 0 && i < nsubs; i++) {
        uint32_t wid = subs[i];
        enum hk_webhook_state state;
        bool locked;
        if (wid == f->exclude)
            continue;
        int prc = hk__webhook_peek(txn, wid, &state, &locked);
        if (prc == HK_ESTORE)
            hk_warn("store: webhook %u cannot be read; it gets no deliveries", wid);
        /* A record that cannot be read is not Active, as before: the others still get theirs. */
        if (prc == HK_ENOTFOUND || prc == HK_ESTORE || (prc == 0 && state != HK_WH_ACTIVE))
            continue;
        hk_delivery d = {.webhook_id = wid, .event_id = eid, .due_ms = now, .attempts = 0, .first_ms = now};
        if ((rc = hk__queue_put(txn, &d)) != 0)
            break;
        if (f->ids != NULL) {
            *f->ids = grow_ids(*f->ids, *f->nids);
            (*f->ids)[(*f->nids)++] = wid;
        }
    }
    free(subs);
    return rc;
}

/* Stores an event (id from the sequence into *eid) and registers the name it fans out on. */
static int event_store(hk_txn *txn, uint64_t now, int64_t pk, uint32_t user_id, const uint8_t uuid[16],
                       const char *name, const char *route, const char *changes, size_t changes_len, const char *data,
                       size_t data_len, uint64_t *eid)
{
    uint8_t ek[8];
    uint32_t tid;
    int rc = hk_seq_next(txn, "seq:event", eid);
    if (rc != 0)
        return rc;
    hk__wbuf b = {0};
    hk__event_encode(&b, now, pk, user_id, uuid, name, strlen(name), changes, changes_len, data, data_len);
    hk_be64(ek, *eid);
    rc = hk_put(txn, HK_DB_EVENTS, ek, 8, b.p, b.len, 0);
    free(b.p);
    if (rc != 0)
        return rc;
    return hk__event_type_register(txn, route, &tid);
}

int hk__state_event_store(hk_txn *txn, uint64_t now, uint32_t id, const hk_state_event *ev)
{
    if (ev == NULL || ev->kind == NULL)
        return 0;
    char route[64], name[48];
    snprintf(route, sizeof(route), "webhook%u.%s", id, ev->kind);
    snprintf(name, sizeof(name), "webhook.%s", ev->kind);
    /* Data as the old engine wrote it: {"WebhookId","State"[,"Reason"]}. */
    hk_buf data = HK_BUF_INIT;
    hk_buf_printf(&data, "{\"WebhookId\":%u,\"State\":", id);
    hk_json_text_quote(&data, ev->kind, strlen(ev->kind));
    const char *changes = "[\"WebhookId\",\"State\"]";
    if (ev->reason != NULL) {
        hk_buf_puts(&data, ",\"Reason\":");
        hk_json_text_quote(&data, ev->reason, strlen(ev->reason));
        changes = "[\"WebhookId\",\"State\",\"Reason\"]";
    }
    hk_buf_putc(&data, '}');
    uint64_t eid;
    int rc = event_store(txn, now, id, 0, ev->uuid, name, route, changes, strlen(changes), data.data, data.len, &eid);
    hk_buf_free(&data);
    if (rc != 0)
        return rc;
    struct fanout f = {route, id, NULL, NULL};
    return fan_out(txn, eid, now, &f);
}

int hk__apply_signal(hk_txn *txn, hk_op *op)
{
    hk_op_signal *s = &op->u.signal;
    uint64_t now = op->now_ms;
    uint8_t ikey[4 + HK_IDEMPOTENCY_KEY_MAX];
    size_t iklen = 0;
    int rc;
    s->event_id = 0;
    s->duplicate = false;
    s->nwebhooks = 0;
    if (s->idem_key != NULL) {
        size_t n = strlen(s->idem_key);
        if (n > HK_IDEMPOTENCY_KEY_MAX)
            return HK_EINVAL;
        hk_be32(ikey, s->user_id);
        memcpy(ikey + 4, s->idem_key, n);
        iklen = 4 + n;
        hk_val v;
        uint64_t at, first;
        rc = hk_get(txn, HK_DB_IDEMPOTENCY, ikey, iklen, &v);
        if (rc == 0 && idem_decode(v.data, v.len, &at, &first) == 0 && at + s->idem_window_ms > now) {
            s->duplicate = true;
            s->event_id = first;
            return 0;
        }
        if (rc != 0 && rc != HK_ENOTFOUND)
            return rc;
    }
    uint64_t eid;
    rc = event_store(txn, now, s->primary_key, s->user_id, s->uuid, s->name, s->name, s->changes ? s->changes : "[]",
                     s->changes ? s->changes_len : 2, s->data ? s->data : "{}", s->data ? s->data_len : 2, &eid);
    if (rc != 0)
        return rc;
    struct fanout f = {s->name, 0, &s->webhooks, &s->nwebhooks};
    if ((rc = fan_out(txn, eid, now, &f)) != 0)
        return rc;
    if (s->idem_key != NULL && (rc = idem_put(txn, ikey, iklen, now, eid)) != 0)
        return rc;
    s->event_id = eid;
    return 0;
}

/* ---- outcomes and the failure rules ------------------------------------------- */

/*
 * Counts one attempt of webhook wid in its statistics and disables it when
 * the rules say so: a 410, or disable_after failures in a row, unless it is
 * locked or not Active. The state event of a disable is stored here, in the
 * same commit. Shared by queued deliveries and synchronous calls.
 */
static int count_attempt(hk_txn *txn, uint64_t now, const hk_attempt *a, bool is410, uint32_t disable_after,
                         const hk_state_event *on_disable, bool *disabled)
{
    hk_webhook_stats st;
    int rc = hk__stats_read(txn, a->webhook_id, &st);
    *disabled = false;
    if (rc != 0)
        return rc;
    st.calls++;
    if (a->success) {
        st.consecutive = 0;
    } else {
        st.errors++;
        st.consecutive++;
        st.last_error_ms = now;
        snprintf(st.last_error, sizeof(st.last_error), "%s", a->error ? a->error : "");
        enum hk_webhook_state state;
        bool locked;
        if (is410 || st.consecutive >= disable_after) {
            if ((rc = hk__webhook_peek(txn, a->webhook_id, &state, &locked)) != 0)
                return rc;
            if (!locked && state == HK_WH_ACTIVE) {
                hk_webhook w;
                if ((rc = hk__webhook_read(txn, a->webhook_id, &w)) != 0)
                    return rc;
                w.state = HK_WH_TOO_MANY_ERRORS;
                rc = hk__webhook_write(txn, &w, &w);
                hk_webhook_free(&w);
                if (rc != 0)
                    return rc;
                *disabled = true;
                if ((rc = hk__state_event_store(txn, now, a->webhook_id, on_disable)) != 0)
                    return rc;
            }
        }
    }
    return hk__stats_write(txn, a->webhook_id, &st);
}

static bool webhook_exists(hk_txn *txn, uint32_t wid, int *rc)
{
    enum hk_webhook_state state;
    bool locked;
    *rc = hk__webhook_peek(txn, wid, &state, &locked);
    if (*rc == HK_ENOTFOUND) {
        *rc = 0;
        return false;
    }
    return *rc == 0;
}

int hk__apply_outcome(hk_txn *txn, hk_op *op)
{
    hk_op_outcome *o = &op->u.outcome;
    const hk_delivery *d = &o->delivery;
    hk_delivery stored;
    int rc;
    o->vanished = false;
    o->disabled = false;
    o->log_id = 0;
    /* The record counts for and is logged under its webhook: it must be the entry's. */
    if (o->rec == NULL || o->rec->webhook_id != d->webhook_id)
        return HK_EINVAL;
    rc = hk__queue_get(txn, d->webhook_id, d->due_ms, d->event_id, &stored);
    if (rc == HK_ENOTFOUND) {
        o->vanished = true; /* the webhook was deleted, or its queue dropped, meanwhile */
        return 0;
    }
    if (rc != 0 || (rc = hk__queue_del(txn, &stored)) != 0)
        return rc;
    if (!webhook_exists(txn, d->webhook_id, &rc)) {
        o->vanished = rc == 0;
        return rc;
    }
    if ((rc = count_attempt(txn, op->now_ms, o->rec, o->is410, o->disable_after, &o->on_disable, &o->disabled)) != 0)
        return rc;
    if (!o->rec->success && o->next_due_ms != 0) {
        hk_delivery next = {.webhook_id = d->webhook_id,
                            .event_id = d->event_id,
                            .due_ms = o->next_due_ms,
                            .attempts = stored.attempts + 1,
                            .first_ms = stored.first_ms};
        if ((rc = hk__queue_put(txn, &next)) != 0)
            return rc;
    }
    return hk__log_append(txn, o->rec, o->disabled, &o->log_id);
}

int hk__apply_attempt(hk_txn *txn, hk_op *op)
{
    hk_op_attempt *a = &op->u.attempt;
    int rc;
    a->vanished = false;
    a->disabled = false;
    a->log_id = 0;
    if (a->rec == NULL)
        return HK_EINVAL;
    if (!webhook_exists(txn, a->rec->webhook_id, &rc)) {
        a->vanished = rc == 0;
        return rc;
    }
    if ((rc = count_attempt(txn, op->now_ms, a->rec, a->is410, a->disable_after, &a->on_disable, &a->disabled)) != 0)
        return rc;
    return hk__log_append(txn, a->rec, a->disabled, &a->log_id);
}

int hk__apply_resend(hk_txn *txn, hk_op *op)
{
    const hk_op_resend *r = &op->u.resend;
    uint8_t ek[8];
    hk_val v;
    int rc;
    if (!webhook_exists(txn, r->webhook_id, &rc))
        return rc != 0 ? rc : HK_ENOTFOUND;
    hk_be64(ek, r->event_id);
    if ((rc = hk_get(txn, HK_DB_EVENTS, ek, 8, &v)) != 0)
        return rc;
    hk_delivery d = {.webhook_id = r->webhook_id,
                     .event_id = r->event_id,
                     .due_ms = op->now_ms,
                     .attempts = 0,
                     .first_ms = op->now_ms};
    return hk__queue_put(txn, &d);
}

int hk__apply_queue_drop(hk_txn *txn, hk_op *op)
{
    hk_op_queue_drop *q = &op->u.queue_drop;
    int rc;
    q->more = false;
    /* Ids are never reused, so entries under a live id are not orphans: keep them. */
    if (webhook_exists(txn, q->webhook_id, &rc) || rc != 0)
        return rc;
    return hk__queue_drop_webhook(txn, q->webhook_id, q->max ? q->max : 1, &q->more);
}

/* ---- retention ------------------------------------------------------------------- */

/* Events dated after the op's time stepped over per step at most: a long
 * run of them (a clock that was set far ahead) cannot make a step long. */
#define PRUNE_FUTURE_MAX 10000

/*
 * Deletes events older than before with their queue entries, oldest
 * (lowest id) first. Ids grow with arrival, so the first event that is not
 * old ends the run, with two exceptions that must not stop retention for
 * good: an event dated after now (a clock set back, a damaged record) says
 * nothing about its age by its time and is stepped over, the ones after it
 * still judged; and an event that cannot be read (it can be neither
 * delivered nor shown) is deleted as it is met.
 */
static int prune_events(hk_txn *txn, uint64_t now, uint64_t before, uint64_t budget, hk_op_prune *p)
{
    hk_cursor *c;
    hk_val k, v;
    if (before == 0)
        return 0;
    int rc = hk_cursor_open(txn, HK_DB_EVENTS, &c);
    if (rc != 0)
        return rc;
    uint64_t used = 0, future = 0, unreadable = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        uint64_t ts = 0;
        if (k.len != 8)
            continue;
        bool readable = hk__event_time(v.data, v.len, &ts) == 0;
        if (readable && now != 0 && ts > now) {
            if (++future > PRUNE_FUTURE_MAX)
                break;
            continue;
        }
        if (readable && ts >= before)
            break;
        if (used >= budget) {
            p->more = true;
            break;
        }
        uint64_t dropped = 0;
        if ((rc = hk__queue_drop_event(txn, hk_rd64(k.data), &dropped)) != 0)
            break;
        /* The cursor then stands on the next event, which HK_NEXT returns. */
        if ((rc = hk_cursor_del(c)) != 0)
            break;
        p->dropped_deliveries += dropped;
        p->removed++;
        used += 1 + dropped;
        if (!readable)
            unreadable++;
    }
    hk_cursor_close(c);
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    if (unreadable > 0)
        hk_warn("store: %llu unreadable event%s removed by retention", (unsigned long long)unreadable,
                unreadable == 1 ? "" : "s");
    return 0;
}

/* Deletes expired Idempotency-Keys in time order; a key reused after its
 * expiry has a newer record, which its older time entry must not take. */
static int prune_idempotency(hk_txn *txn, uint64_t before, uint64_t budget, hk_op_prune *p)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_IDEMPOTENCY_TIME, &c);
    if (rc != 0)
        return rc;
    uint64_t used = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len < 8 || hk_rd64(k.data) >= before)
            break;
        if (used >= budget) {
            p->more = true;
            break;
        }
        uint64_t at = hk_rd64(k.data), at_stored, eid;
        const uint8_t *ikey = (const uint8_t *)k.data + 8;
        size_t iklen = k.len - 8;
        hk_val rec;
        int grc = hk_get(txn, HK_DB_IDEMPOTENCY, ikey, iklen, &rec);
        if (grc == 0 && (idem_decode(rec.data, rec.len, &at_stored, &eid) != 0 || at_stored == at)) {
            if ((rc = hk_del(txn, HK_DB_IDEMPOTENCY, ikey, iklen, NULL, 0)) != 0)
                break;
            p->removed++;
        } else if (grc != 0 && grc != HK_ENOTFOUND) {
            rc = grc;
            break;
        }
        if ((rc = hk_cursor_del(c)) != 0)
            break;
        used++;
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__apply_prune(hk_txn *txn, hk_op *op)
{
    hk_op_prune *p = &op->u.prune;
    uint64_t max = p->max ? p->max : 1;
    p->more = false;
    p->removed = 0;
    p->dropped_deliveries = 0;
    int rc = hk__log_prune(txn, p->attempts_before_ms, max, &p->removed, &p->more);
    uint64_t used = p->removed;
    if (rc == 0 && used < max)
        rc = prune_events(txn, op->now_ms, p->events_before_ms, max - used, p);
    else if (rc == 0)
        p->more = true;
    used = p->removed + p->dropped_deliveries;
    if (rc == 0 && used < max)
        rc = prune_idempotency(txn, p->idempotency_before_ms, max - used, p);
    else if (rc == 0)
        p->more = true;
    return rc;
}
