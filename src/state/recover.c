/*
 * recover.c: HK_OP_RECOVER, a recovery after an outage in bounded steps
 * (store.h says what it queues and how a run of steps goes).
 *
 * Whether a delivery is to be recovered is known only once every later
 * record of its (webhook, event) has been seen: a resend that succeeded
 * after the window, say, takes it out again. The attempt log has no index
 * by event, so the steps walk the webhook's records in log order (the
 * order in which attempts were committed; the attempts of one delivery
 * follow each other) and keep what they have decided so far in the store,
 * as notes, which survive from one step's commit to the next:
 *
 *   - a record that started in the window and ended its delivery failed
 *     (no retry due: exhausted, or a 410) notes its (webhook, event);
 *   - any other record of the window (a success, or a failure with a
 *     retry due), and a success after the window, removes the note;
 *   - records before the window, and synchronous calls, change nothing.
 *
 * When a step reaches the newest record, the notes left are the events to
 * recover: each is queued unless its event is gone or a delivery of it to
 * that webhook is queued already, and its note removed. Records committed
 * meanwhile are walked first by every later step, so a success that lands
 * between two steps still counts.
 *
 * Notes live in HK_DB_META under "recover:" + run_ms (u64) + run (u32) +
 * webhook id (u32) + event id (u64), with empty values: one recovery's
 * notes of one webhook are together, and those of recoveries that began
 * long ago come first, which is how abandoned ones are found and removed.
 */
#include <string.h>

#include "tables.h"

#define NOTE_TAG "recover:"
#define NOTE_TAG_LEN 8
#define NOTE_RUN_LEN (NOTE_TAG_LEN + 8 + 4 + 4) /* the part of a note's key naming its recovery and webhook */
#define NOTE_LEN (NOTE_RUN_LEN + 8)
#define STALE_STEP 256 /* notes of abandoned recoveries removed per step at most */
/* Records that started before the window are only peeked at (a fixed
 * offset of each): this many of them cost one unit of a step's budget. */
#define SKIP_PER_UNIT 16

static void note_key(uint8_t k[NOTE_LEN], const hk_op_recover *r, uint64_t eid)
{
    memcpy(k, NOTE_TAG, NOTE_TAG_LEN);
    hk_be64(k + NOTE_TAG_LEN, r->run_ms);
    hk_be32(k + NOTE_TAG_LEN + 8, r->run);
    hk_be32(k + NOTE_TAG_LEN + 12, r->webhook_id);
    hk_be64(k + NOTE_RUN_LEN, eid);
}

static int note(hk_txn *txn, const hk_op_recover *r, uint64_t eid, bool on)
{
    uint8_t k[NOTE_LEN];
    note_key(k, r, eid);
    if (on)
        return hk_put(txn, HK_DB_META, k, sizeof(k), "", 0, 0);
    int rc = hk_del(txn, HK_DB_META, k, sizeof(k), NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* What one record says of its (webhook, event); see the file comment. */
static int judge(hk_txn *txn, const hk_op_recover *r, const hk__attempt_brief *a)
{
    if (a->sync || a->event_id == 0 || a->started_ms < r->since_ms)
        return 0;
    bool in_window = a->started_ms <= r->until_ms;
    if (in_window && !a->success && (a->exhausted || a->next_due_ms == 0))
        return note(txn, r, a->event_id, true);
    if (in_window || a->success)
        return note(txn, r, a->event_id, false);
    return 0;
}

/* Walks the webhook's records from r->from_log_id within *budget; *top once none is left. */
static int walk(hk_txn *txn, hk_op_recover *r, uint64_t *budget, bool *top)
{
    uint8_t start[12];
    hk_be32(start, r->webhook_id);
    hk_be64(start + 4, r->from_log_id);
    hk_val k = {start, sizeof(start)}, v;
    hk_cursor *c;
    *top = false;
    r->next_log_id = r->from_log_id;
    int rc = hk_cursor_open(txn, HK_DB_LOG, &c);
    if (rc != 0)
        return rc;
    uint64_t skipped = 0;
    for (rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 12 || hk_rd32(k.data) != r->webhook_id) {
            rc = HK_ENOTFOUND; /* past the webhook's records */
            break;
        }
        if (*budget == 0)
            break;
        hk__attempt_brief a;
        bool counts = true;
        /* A record that cannot be read says nothing, as listings leave it out. */
        if (hk__attempt_peek(v.data, v.len, &a) == 0) {
            if (a.started_ms < r->since_ms)
                counts = ++skipped % SKIP_PER_UNIT == 0;
            else if ((rc = judge(txn, r, &a)) != 0)
                break;
        }
        if (counts)
            (*budget)--;
        r->next_log_id = hk_rd64((const uint8_t *)k.data + 4) + 1;
    }
    hk_cursor_close(c);
    if (rc == HK_ENOTFOUND) {
        *top = true;
        rc = 0;
    }
    return rc;
}

/* ---- the notes of a recovery, and of abandoned ones -------------------------------- */

struct release {
    hk_op_recover *r;
    uint64_t now_ms;
    bool queue; /* false: the notes only go (a deleted webhook) */
    uint8_t prefix[NOTE_RUN_LEN];
    uint64_t stale_before; /* for the abandoned ones: run_ms below this */
    uint64_t stale;        /* abandoned notes removed */
};

static bool of_run(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    const struct release *rel = arg;
    return k->len == NOTE_LEN && memcmp(k->data, rel->prefix, NOTE_RUN_LEN) == 0;
}

/* Queues the noted event again, due now, unless it is gone or already queued for the webhook. */
static int queue_noted(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    struct release *rel = arg;
    uint32_t wid = rel->r->webhook_id;
    uint64_t eid = hk_rd64((const uint8_t *)k->data + NOTE_RUN_LEN);
    uint8_t ek[8];
    hk_val ev;
    bool queued;
    if (!rel->queue)
        return 0;
    hk_be64(ek, eid);
    int rc = hk_get(txn, HK_DB_EVENTS, ek, sizeof(ek), &ev);
    if (rc == HK_ENOTFOUND)
        return 0; /* pruned: nothing left to deliver */
    if (rc != 0 || (rc = hk__queue_has(txn, wid, eid, &queued)) != 0 || queued)
        return rc;
    hk_delivery d = {.webhook_id = wid, .event_id = eid, .due_ms = rel->now_ms, .attempts = 0, .first_ms = rel->now_ms};
    if ((rc = hk__queue_put(txn, &d)) == 0)
        rel->r->queued++;
    return rc;
}

/* Removes (and with rel->queue, queues) up to *budget notes of the recovery; *more when some remain. */
static int release(hk_txn *txn, struct release *rel, uint64_t *budget, bool *more)
{
    uint8_t k[NOTE_LEN];
    note_key(k, rel->r, 0);
    memcpy(rel->prefix, k, NOTE_RUN_LEN);
    hk_val from = {k, NOTE_RUN_LEN};
    *more = false;
    return hk_delete_run(txn, HK_DB_META, &from, of_run, queue_noted, rel, (size_t)*budget, more);
}

static bool abandoned(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    const struct release *rel = arg;
    return k->len == NOTE_LEN && memcmp(k->data, NOTE_TAG, NOTE_TAG_LEN) == 0 &&
           hk_rd64((const uint8_t *)k->data + NOTE_TAG_LEN) < rel->stale_before;
}

static int count_abandoned(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(txn);
    HK_UNUSED(k);
    HK_UNUSED(v);
    ((struct release *)arg)->stale++;
    return 0;
}

int hk__apply_recover(hk_txn *txn, hk_op *op)
{
    hk_op_recover *r = &op->u.recover;
    uint64_t now = op->now_ms, budget = r->max ? r->max : HK_RECOVER_STEP_MAX;
    struct release rel = {.r = r, .now_ms = now, .queue = true};
    bool top = false, more = false;
    enum hk_webhook_state state;
    bool locked;
    int rc;
    r->next_log_id = r->from_log_id;
    r->queued = 0;
    r->done = false;
    r->gone = false;
    if (r->since_ms > r->until_ms)
        return HK_EINVAL;
    if (now > r->run_ms && now - r->run_ms > HK_RECOVER_RUN_MAX_MS)
        return UV_ETIMEDOUT;

    /* Notes of recoveries that began too long ago to be going on. */
    if (now > HK_RECOVER_RUN_MAX_MS) {
        uint8_t from[NOTE_TAG_LEN];
        memcpy(from, NOTE_TAG, NOTE_TAG_LEN);
        hk_val f = {from, NOTE_TAG_LEN};
        bool stale_more = false;
        rel.stale_before = now - HK_RECOVER_RUN_MAX_MS;
        rc = hk_delete_run(txn, HK_DB_META, &f, abandoned, count_abandoned, &rel,
                           budget < STALE_STEP ? budget : STALE_STEP, &stale_more);
        if (rc != 0)
            return rc;
        budget -= rel.stale;
    }

    rc = hk__webhook_peek(txn, r->webhook_id, &state, &locked);
    if (rc == HK_ENOTFOUND && r->from_log_id == 0)
        return HK_ENOTFOUND;
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    if (rc == HK_ENOTFOUND) {
        /* Deleted during the recovery: its notes go, and nothing is queued. */
        rel.queue = false;
        r->gone = true;
        rc = release(txn, &rel, &budget, &more);
        r->done = rc == 0 && !more;
        return rc;
    }
    if ((rc = walk(txn, r, &budget, &top)) != 0 || !top)
        return rc;
    rc = release(txn, &rel, &budget, &more);
    r->done = rc == 0 && !more;
    return rc;
}
