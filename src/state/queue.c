/*
 * queue.c: the pending queue (HK_DB_QUEUE) and its index by event
 * (HK_DB_QUEUE_EVENTS), kept in step by every write here, so that pruning
 * an event finds its queue entries without walking the queue.
 *
 * Key: webhook id (u32) + due ms (u64) + event id (u64), so one webhook's
 * entries are together and in due order. Entry, version 1: u8 version, u32
 * attempts made, u64 first attempt ms. Version 0 is the same without the
 * version byte (12 bytes).
 */
#include <string.h>

#include "log.h"
#include "tables.h"

#define QKEY_LEN 20
#define QVAL_V0 12
#define QVAL_V1 13
/* Set once the by-event index has been built. A version before the index
 * (or the old engine's writes) may have changed the queue since: a store
 * last written by another version (hk_kv_foreign_commits) is checked again
 * at open, so the marker only says that the check was ever made. */
#define INDEX_BUILT "queue_events:built"

static void qkey(uint8_t k[QKEY_LEN], uint32_t wid, uint64_t due, uint64_t eid)
{
    hk_be32(k, wid);
    hk_be64(k + 4, due);
    hk_be64(k + 12, eid);
}

static void ekey(uint8_t k[QKEY_LEN], uint64_t eid, uint32_t wid, uint64_t due)
{
    hk_be64(k, eid);
    hk_be32(k + 8, wid);
    hk_be64(k + 12, due);
}

static int val_decode(const void *data, size_t len, uint32_t *attempts, uint64_t *first_ms)
{
    const uint8_t *p = data;
    if (len == QVAL_V1 && p[0] == HK__V1)
        p++;
    else if (len != QVAL_V0)
        return HK_ESTORE;
    *attempts = hk_rd32(p);
    *first_ms = hk_rd64(p + 4);
    return 0;
}

int hk__queue_put(hk_txn *txn, const hk_delivery *d)
{
    uint8_t k[QKEY_LEN], ek[QKEY_LEN], v[QVAL_V1];
    qkey(k, d->webhook_id, d->due_ms, d->event_id);
    ekey(ek, d->event_id, d->webhook_id, d->due_ms);
    v[0] = HK__V1;
    hk_be32(v + 1, d->attempts);
    hk_be64(v + 5, d->first_ms);
    int rc = hk_put(txn, HK_DB_QUEUE, k, QKEY_LEN, v, QVAL_V1, 0);
    if (rc == 0)
        rc = hk_put(txn, HK_DB_QUEUE_EVENTS, ek, QKEY_LEN, "", 0, 0);
    return rc;
}

int hk__queue_get(hk_txn *txn, uint32_t wid, uint64_t due, uint64_t eid, hk_delivery *d)
{
    uint8_t k[QKEY_LEN];
    hk_val v;
    qkey(k, wid, due, eid);
    int rc = hk_get(txn, HK_DB_QUEUE, k, QKEY_LEN, &v);
    if (rc != 0)
        return rc;
    d->webhook_id = wid;
    d->due_ms = due;
    d->event_id = eid;
    return val_decode(v.data, v.len, &d->attempts, &d->first_ms);
}

/* Deletes the index entry of a queue entry; one written before the index existed has none. */
static int unindex(hk_txn *txn, uint32_t wid, uint64_t due, uint64_t eid)
{
    uint8_t ek[QKEY_LEN];
    ekey(ek, eid, wid, due);
    int rc = hk_del(txn, HK_DB_QUEUE_EVENTS, ek, QKEY_LEN, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__queue_del(hk_txn *txn, const hk_delivery *d)
{
    uint8_t k[QKEY_LEN];
    qkey(k, d->webhook_id, d->due_ms, d->event_id);
    int rc = hk_del(txn, HK_DB_QUEUE, k, QKEY_LEN, NULL, 0);
    if (rc == 0)
        rc = unindex(txn, d->webhook_id, d->due_ms, d->event_id);
    return rc;
}

/* Queue entries of the webhook whose id prefix is *arg. */
static bool queued_for(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == QKEY_LEN && memcmp(k->data, arg, 4) == 0;
}

static int drop_index_entry(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    HK_UNUSED(arg);
    const uint8_t *p = k->data;
    return unindex(txn, hk_rd32(p), hk_rd64(p + 4), hk_rd64(p + 12));
}

int hk__queue_drop_webhook(hk_txn *txn, uint32_t wid, uint32_t max, bool *more)
{
    uint8_t prefix[4];
    hk_be32(prefix, wid);
    hk_val from = {prefix, 4};
    *more = false;
    return hk_delete_run(txn, HK_DB_QUEUE, &from, queued_for, drop_index_entry, prefix, max, more);
}

/* Index entries of the event whose id prefix is *arg. */
static bool of_event(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == QKEY_LEN && memcmp(k->data, arg, 8) == 0;
}

static int drop_queue_entry(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    uint64_t *count = arg;
    const uint8_t *p = k->data;
    uint8_t q[QKEY_LEN];
    qkey(q, hk_rd32(p + 8), hk_rd64(p + 12), hk_rd64(p));
    int rc = hk_del(txn, HK_DB_QUEUE, q, QKEY_LEN, NULL, 0);
    if (rc == 0)
        (*count)++;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

struct event_run {
    uint8_t prefix[8];
    uint64_t count;
};

static bool of_event_run(const hk_val *k, const hk_val *v, void *arg)
{
    return of_event(k, v, ((struct event_run *)arg)->prefix);
}

static int drop_event_entry(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    return drop_queue_entry(txn, k, v, &((struct event_run *)arg)->count);
}

int hk__queue_drop_event(hk_txn *txn, uint64_t eid, uint64_t *count)
{
    struct event_run run = {{0}, 0};
    bool more = false;
    hk_be64(run.prefix, eid);
    hk_val from = {run.prefix, 8};
    int rc = hk_delete_run(txn, HK_DB_QUEUE_EVENTS, &from, of_event_run, drop_event_entry, &run, SIZE_MAX, &more);
    *count = run.count;
    return rc;
}

int hk__queue_has(hk_txn *txn, uint32_t wid, uint64_t eid, bool *queued)
{
    uint8_t prefix[12];
    hk_be64(prefix, eid);
    hk_be32(prefix + 8, wid);
    hk_val k = {prefix, sizeof(prefix)}, v;
    hk_cursor *c;
    *queued = false;
    int rc = hk_cursor_open(txn, HK_DB_QUEUE_EVENTS, &c);
    if (rc != 0)
        return rc;
    /* The index holds (event, webhook, due): the entries of this pair are together. */
    rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    if (rc == 0)
        *queued = k.len == QKEY_LEN && memcmp(k.data, prefix, sizeof(prefix)) == 0;
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* ---- the check at open ------------------------------------------------------- */

/* Entries visited per transaction of the check: each commit stays short. */
#define CHECK_STEP 50000

enum { CHECK_QUEUE, CHECK_INDEX, CHECK_DONE };

/* Where a step of the check starts, and what it found. */
struct check {
    int phase;
    uint8_t from[QKEY_LEN]; /* the first key of the step (from_len 0: the table's first) */
    size_t from_len;
    uint64_t indexed; /* index entries added for queue entries that had none */
    uint64_t stale;   /* index entries removed whose queue entry was gone */
    hk__orphans gone; /* queue entries removed whose event was gone, by webhook */
};

static void orphans_add(hk__orphans *o, uint32_t wid, uint64_t n)
{
    if (o->n > 0 && o->v[o->n - 1].webhook_id == wid) {
        o->v[o->n - 1].count += n;
        return;
    }
    if (o->n == o->cap) {
        o->cap = o->cap ? 2 * o->cap : 8;
        o->v = hk_realloc(o->v, o->cap * sizeof(*o->v));
    }
    o->v[o->n].webhook_id = wid;
    o->v[o->n].count = n;
    o->n++;
}

void hk__orphans_free(hk__orphans *o)
{
    free(o->v);
    memset(o, 0, sizeof(*o));
}

/* Positions c at the step's first key; records where the next step starts when the step is full. */
static int check_seek(hk_cursor *c, const struct check *at, hk_val *k, hk_val *v)
{
    if (at->from_len == 0)
        return hk_cursor_get(c, HK_FIRST, k, v);
    k->data = at->from;
    k->len = at->from_len;
    return hk_cursor_get(c, HK_SEEK, k, v);
}

static void check_stop(struct check *next, const hk_val *k)
{
    next->from_len = k->len < QKEY_LEN ? k->len : QKEY_LEN;
    memcpy(next->from, k->data, next->from_len);
}

/* The queue: an entry whose event is gone is dropped; one without an index entry gets one. */
static int check_queue(hk_txn *txn, struct check *next)
{
    hk_cursor *c;
    hk_val k, v;
    size_t n = 0;
    int rc = hk_cursor_open(txn, HK_DB_QUEUE, &c);
    if (rc != 0)
        return rc;
    for (rc = check_seek(c, next, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (n++ == CHECK_STEP) {
            check_stop(next, &k);
            goto out;
        }
        if (k.len != QKEY_LEN)
            continue;
        const uint8_t *p = k.data;
        uint32_t wid = hk_rd32(p);
        uint64_t due = hk_rd64(p + 4), eid = hk_rd64(p + 12);
        uint8_t ek[QKEY_LEN];
        hk_val ev;
        hk_be64(ek, eid);
        int grc = hk_get(txn, HK_DB_EVENTS, ek, 8, &ev);
        if (grc == HK_ENOTFOUND) {
            /* Its event was pruned by a version that left queue entries behind:
             * nothing can be delivered. The cursor then stands on the next entry. */
            if ((rc = hk_cursor_del(c)) != 0 || (rc = unindex(txn, wid, due, eid)) != 0)
                goto out;
            orphans_add(&next->gone, wid, 1);
            continue;
        }
        if (grc != 0) {
            rc = grc;
            goto out;
        }
        ekey(ek, eid, wid, due);
        grc = hk_get(txn, HK_DB_QUEUE_EVENTS, ek, QKEY_LEN, &ev);
        if (grc == HK_ENOTFOUND) {
            if ((rc = hk_put(txn, HK_DB_QUEUE_EVENTS, ek, QKEY_LEN, "", 0, 0)) != 0)
                goto out;
            next->indexed++;
        } else if (grc != 0) {
            rc = grc;
            goto out;
        }
    }
    if (rc == HK_ENOTFOUND) {
        rc = 0;
        next->phase = CHECK_INDEX;
        next->from_len = 0;
    }
out:
    hk_cursor_close(c);
    return rc;
}

/* The index: an entry whose queue entry is gone (delivered by a version that did not index) is removed. */
static int check_index(hk_txn *txn, struct check *next)
{
    hk_cursor *c;
    hk_val k, v;
    size_t n = 0;
    int rc = hk_cursor_open(txn, HK_DB_QUEUE_EVENTS, &c);
    if (rc != 0)
        return rc;
    for (rc = check_seek(c, next, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (n++ == CHECK_STEP) {
            check_stop(next, &k);
            goto out;
        }
        const uint8_t *p = k.data;
        uint8_t q[QKEY_LEN];
        hk_val qv;
        int grc = HK_ENOTFOUND;
        if (k.len == QKEY_LEN) {
            qkey(q, hk_rd32(p + 8), hk_rd64(p + 12), hk_rd64(p));
            grc = hk_get(txn, HK_DB_QUEUE, q, QKEY_LEN, &qv);
        }
        if (grc == HK_ENOTFOUND) {
            if ((rc = hk_cursor_del(c)) != 0)
                goto out;
            next->stale++;
        } else if (grc != 0) {
            rc = grc;
            goto out;
        }
    }
    if (rc == HK_ENOTFOUND) {
        next->phase = CHECK_DONE;
        rc = hk_put(txn, HK_DB_META, INDEX_BUILT, strlen(INDEX_BUILT), "1", 1, 0);
    }
out:
    hk_cursor_close(c);
    return rc;
}

struct check_step {
    struct check at, next;
};

/* One transaction of the check. It may run again (after the map grows), so it starts from `at` afresh. */
static int check_step(hk_txn *txn, void *arg)
{
    struct check_step *cs = arg;
    hk__orphans_free(&cs->next.gone);
    cs->next = cs->at;
    cs->next.indexed = cs->next.stale = 0;
    memset(&cs->next.gone, 0, sizeof(cs->next.gone));
    return cs->at.phase == CHECK_QUEUE ? check_queue(txn, &cs->next) : check_index(txn, &cs->next);
}

static bool index_built(hk_kv_env *kv, int *rc)
{
    hk_txn *txn;
    hk_val v;
    if ((*rc = hk_kv_read(kv, &txn)) != 0)
        return false;
    *rc = hk_get(txn, HK_DB_META, INDEX_BUILT, strlen(INDEX_BUILT), &v);
    hk_txn_end(txn);
    if (*rc == HK_ENOTFOUND) {
        *rc = 0;
        return false;
    }
    return *rc == 0;
}

int hk__queue_check(hk_kv_env *kv, bool foreign, hk__orphans *gone)
{
    int rc;
    memset(gone, 0, sizeof(*gone));
    if (index_built(kv, &rc) && !foreign)
        return 0;
    if (rc != 0)
        return rc;
    struct check_step cs;
    uint64_t indexed = 0, stale = 0;
    memset(&cs, 0, sizeof(cs));
    while (cs.at.phase != CHECK_DONE) {
        if ((rc = hk_kv_write_sync(kv, check_step, &cs)) != 0)
            break;
        indexed += cs.next.indexed;
        stale += cs.next.stale;
        for (size_t i = 0; i < cs.next.gone.n; i++)
            orphans_add(gone, cs.next.gone.v[i].webhook_id, cs.next.gone.v[i].count);
        hk__orphans_free(&cs.next.gone);
        cs.at = cs.next;
    }
    hk__orphans_free(&cs.next.gone);
    if (rc != 0) {
        hk__orphans_free(gone);
        return rc;
    }
    if (indexed > 0 || stale > 0)
        hk_info("store: queue index by event brought up to date: %llu added, %llu stale removed",
                (unsigned long long)indexed, (unsigned long long)stale);
    return 0;
}

/* ---- reading the queue ------------------------------------------------------- */

int hk__queue_scan_due(hk_txn *txn, hk_due_scan *scan)
{
    hk_cursor *c;
    hk_val k, v;
    uint64_t now = scan->now_ms;
    scan->next_due_ms = UINT64_MAX;
    scan->stopped = false;
    scan->gone = 0;
    int rc = hk_cursor_open(txn, HK_DB_QUEUE, &c);
    if (rc != 0)
        return rc;
    rc = hk_cursor_get(c, HK_FIRST, &k, &v);
    while (rc == 0) {
        if (k.len != QKEY_LEN) {
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
            continue;
        }
        uint32_t wid = hk_rd32(k.data);
        uint32_t want = scan->webhook(wid, scan->arg), n = 0;
        while (want > 0 && rc == 0 && k.len == QKEY_LEN && hk_rd32(k.data) == wid) {
            const uint8_t *p = k.data;
            hk_delivery d = {.webhook_id = wid, .due_ms = hk_rd64(p + 4), .event_id = hk_rd64(p + 12)};
            if (d.due_ms > now) {
                if (d.due_ms < scan->next_due_ms)
                    scan->next_due_ms = d.due_ms;
                break;
            }
            if (n == want)
                break;
            hk_event ev;
            int erc = val_decode(v.data, v.len, &d.attempts, &d.first_ms);
            if (erc != 0) {
                hk_warn("store: queue entry of webhook %u, event %llu is malformed; skipping it", wid,
                        (unsigned long long)d.event_id);
            } else if (scan->held != NULL && scan->held(&d, scan->arg)) {
                /* held by the caller already: neither read nor counted */
            } else if ((erc = hk__event_read(txn, d.event_id, &ev)) == HK_ENOTFOUND) {
                /* Nothing to deliver. Only another version leaves such entries
                 * behind, and the next open drops them (with a warning). */
                scan->gone++;
            } else if (erc != 0) {
                /* Unreadable: nothing to deliver, and the others still go. */
                hk_warn("store: event %llu of a queued delivery is unreadable; skipping it",
                        (unsigned long long)d.event_id);
            } else {
                bool go_on = scan->delivery(&d, &ev, scan->arg);
                hk_event_free(&ev);
                n++;
                if (!go_on) {
                    scan->stopped = true;
                    rc = 0;
                    goto out;
                }
            }
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
        }
        if (rc != 0 || wid == UINT32_MAX)
            break;
        /* On to the next webhook's entries. */
        uint8_t next[4];
        hk_be32(next, wid + 1);
        k.data = next;
        k.len = 4;
        rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    }
    if (rc == HK_ENOTFOUND)
        rc = 0;
out:
    hk_cursor_close(c);
    return rc;
}

int hk__queue_pending(hk_txn *txn, uint32_t wid, uint64_t now_ms, uint64_t max, hk_queue_summary *out)
{
    hk_cursor *c;
    uint8_t prefix[4];
    hk_be32(prefix, wid);
    hk_val k = {prefix, 4}, v;
    memset(out, 0, sizeof(*out));
    int rc = hk_cursor_open(txn, HK_DB_QUEUE, &c);
    if (rc != 0)
        return rc;
    for (rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != QKEY_LEN || hk_rd32(k.data) != wid)
            break;
        if (max != 0 && out->pending == max) {
            out->capped = true;
            break;
        }
        out->pending++;
        if (hk_rd64((const uint8_t *)k.data + 4) <= now_ms)
            out->due++;
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* ---- the queue at a glance (metrics) ------------------------------------------ */

/* How many index entries are tried for the oldest event: only an older
 * version leaves entries whose event is gone, and the open drops them. */
#define OLDEST_TRIES 8

/* The accepted time of the oldest event with a queue entry: the first
 * entries of the index by event, whose key starts with the event id. */
static int oldest_pending(hk_txn *txn, uint64_t *oldest_ms)
{
    hk_cursor *c;
    hk_val k, v;
    *oldest_ms = 0;
    int rc = hk_cursor_open(txn, HK_DB_QUEUE_EVENTS, &c);
    if (rc != 0)
        return rc;
    rc = hk_cursor_get(c, HK_FIRST, &k, &v);
    for (int i = 0; rc == 0 && i < OLDEST_TRIES; i++, rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != QKEY_LEN)
            continue;
        hk_event ev;
        int erc = hk__event_read(txn, hk_rd64(k.data), &ev);
        if (erc == 0) {
            *oldest_ms = ev.ts_ms;
            hk_event_free(&ev);
            break;
        }
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__queue_summary(hk_txn *txn, uint64_t now_ms, uint64_t max, hk_queue_summary *out)
{
    memset(out, 0, sizeof(*out));
    out->pending = hk_count(txn, HK_DB_QUEUE);
    int rc = oldest_pending(txn, &out->oldest_ms);
    if (rc != 0 || out->pending == 0)
        return rc;
    hk_cursor *c;
    hk_val k, v;
    uint64_t walked = 0;
    if ((rc = hk_cursor_open(txn, HK_DB_QUEUE, &c)) != 0)
        return rc;
    rc = hk_cursor_get(c, HK_FIRST, &k, &v);
    while (rc == 0) {
        if (k.len != QKEY_LEN) {
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
            continue;
        }
        uint32_t wid = hk_rd32(k.data);
        enum hk_webhook_state state;
        bool locked;
        /* A webhook that is gone (its entries are being dropped) is as parked as a stopped one. */
        bool parked = hk__webhook_peek(txn, wid, &state, &locked) != 0 || state != HK_WH_ACTIVE;
        /* Within a webhook entries are in due order: an Active webhook's
         * walk ends at its first entry that is not due yet. */
        while (rc == 0 && k.len == QKEY_LEN && hk_rd32(k.data) == wid) {
            if (!parked && hk_rd64((const uint8_t *)k.data + 4) > now_ms)
                break;
            if (walked == max) {
                out->capped = true;
                goto out;
            }
            walked++;
            if (parked)
                out->parked++;
            else
                out->due++;
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
        }
        if (rc != 0 || wid == UINT32_MAX)
            break;
        uint8_t next[4];
        hk_be32(next, wid + 1);
        k.data = next;
        k.len = 4;
        rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    }
out:
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}
