/*
 * activity.c: per-minute attempt counters for the console (activity.h).
 *
 * A ring of HK_ACTIVITY_MINUTES slots, indexed by minute number modulo the
 * ring's size, holds the counters; a slot whose minute number is not the
 * one asked for is stale and reads as zeros, so nothing ever has to be
 * swept. The total has one ring; webhooks get theirs on their first
 * attempt, kept in an array sorted by webhook id (a binary search finds
 * one). When the array is full, the webhook whose last attempt is oldest
 * gives up its ring, but only when that attempt is over an hour old: its
 * ring holds nothing the series would show.
 *
 * With several workers ([server] workers) every worker's engine counts
 * into the one set and the console reads it from any worker: a mutex
 * guards it, held for a few counter updates per attempt.
 */
#include "activity.h"

#include <string.h>
#include <uv.h>

#define MINUTE_MS 60000u

/* Attempts of the last hour, by minute. minute[i] is the minute number
 * (ms / MINUTE_MS) plus one whose counts slot i holds; 0: never used. */
struct ring {
    uint64_t minute[HK_ACTIVITY_MINUTES];
    uint32_t count[HK_ACTIVITY_MINUTES][HK_ACTIVITY_OUTCOMES];
};

struct tracked {
    uint32_t webhook_id;
    uint64_t last_minute; /* the newest minute number counted, plus one */
    struct ring *ring;
};

struct hk_activity {
    uv_mutex_t mu; /* guards everything below */
    struct ring total;
    struct tracked *v; /* sorted by webhook_id */
    size_t n, cap;
    uint64_t untracked;
};

hk_activity *hk_activity_new(void)
{
    hk_activity *a = hk_calloc(1, sizeof(hk_activity));
    uv_mutex_init(&a->mu);
    return a;
}

void hk_activity_free(hk_activity *a)
{
    if (a == NULL)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->v[i].ring);
    free(a->v);
    uv_mutex_destroy(&a->mu);
    free(a);
}

bool hk_activity_classify(const hk_attempt *at, enum hk_activity_outcome *out)
{
    if (at->sync)
        return false;
    if (at->success)
        *out = HK_ACTIVITY_DELIVERED;
    else if (at->exhausted || at->disabled)
        *out = HK_ACTIVITY_FAILED;
    else
        *out = HK_ACTIVITY_RETRYING;
    return true;
}

static void ring_count(struct ring *r, uint64_t minute, enum hk_activity_outcome o)
{
    size_t slot = (size_t)(minute % HK_ACTIVITY_MINUTES);
    /* A slot holding a later minute holds one an hour or more after this
     * one: this attempt is outside any window that minute's is in. */
    if (r->minute[slot] > minute + 1)
        return;
    if (r->minute[slot] != minute + 1) {
        r->minute[slot] = minute + 1;
        memset(r->count[slot], 0, sizeof(r->count[slot]));
    }
    r->count[slot][o]++;
}

/* Index of webhook_id in a->v, or where it would go (*found false). */
static size_t find(const hk_activity *a, uint32_t webhook_id, bool *found)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->v[mid].webhook_id < webhook_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < a->n && a->v[lo].webhook_id == webhook_id;
    return lo;
}

/* Removes the entry whose last attempt is oldest, when that attempt is over
 * an hour before minute; false when every entry counted something since. */
static bool evict_stale(hk_activity *a, uint64_t minute)
{
    size_t oldest = 0;
    for (size_t i = 1; i < a->n; i++)
        if (a->v[i].last_minute < a->v[oldest].last_minute)
            oldest = i;
    if (a->n == 0 || a->v[oldest].last_minute + HK_ACTIVITY_MINUTES > minute + 1)
        return false;
    free(a->v[oldest].ring);
    memmove(&a->v[oldest], &a->v[oldest + 1], (a->n - oldest - 1) * sizeof(a->v[0]));
    a->n--;
    return true;
}

/* The ring of webhook_id, made when it has none; NULL when there is no room. */
static struct ring *webhook_ring(hk_activity *a, uint32_t webhook_id, uint64_t minute)
{
    bool found;
    size_t i = find(a, webhook_id, &found);
    if (!found) {
        if (a->n == HK_ACTIVITY_WEBHOOKS_MAX) {
            if (!evict_stale(a, minute))
                return NULL;
            i = find(a, webhook_id, &found);
        }
        if (a->n == a->cap) {
            a->cap = a->cap ? a->cap * 2 : 16;
            a->v = hk_realloc(a->v, a->cap * sizeof(a->v[0]));
        }
        memmove(&a->v[i + 1], &a->v[i], (a->n - i) * sizeof(a->v[0]));
        a->v[i] = (struct tracked){.webhook_id = webhook_id, .ring = hk_calloc(1, sizeof(struct ring))};
        a->n++;
    }
    if (a->v[i].last_minute < minute + 1)
        a->v[i].last_minute = minute + 1;
    return a->v[i].ring;
}

void hk_activity_count(hk_activity *a, uint32_t webhook_id, uint64_t at_ms, enum hk_activity_outcome outcome)
{
    uint64_t minute = at_ms / MINUTE_MS;
    uv_mutex_lock(&a->mu);
    ring_count(&a->total, minute, outcome);
    struct ring *r = webhook_ring(a, webhook_id, minute);
    if (r != NULL)
        ring_count(r, minute, outcome);
    else
        a->untracked++;
    uv_mutex_unlock(&a->mu);
}

void hk_activity_attempt(hk_activity *a, const hk_attempt *at)
{
    enum hk_activity_outcome o;
    if (hk_activity_classify(at, &o))
        hk_activity_count(a, at->webhook_id, at->started_ms + at->duration_ms, o);
}

void hk_activity_series(const hk_activity *a, uint32_t webhook_id, uint64_t now_ms,
                        hk_activity_minute out[HK_ACTIVITY_MINUTES])
{
    uv_mutex_t *mu = (uv_mutex_t *)&a->mu; /* the counters are read, the lock is taken */
    uv_mutex_lock(mu);
    const struct ring *r = &a->total;
    if (webhook_id != 0) {
        bool found;
        size_t i = find(a, webhook_id, &found);
        r = found ? a->v[i].ring : NULL;
    }
    uint64_t now_minute = now_ms / MINUTE_MS;
    for (size_t k = 0; k < HK_ACTIVITY_MINUTES; k++) {
        /* out[0] is the oldest minute; a clock before the epoch's first hour has fewer. */
        uint64_t back = HK_ACTIVITY_MINUTES - 1 - k;
        hk_activity_minute *m = &out[k];
        memset(m, 0, sizeof(*m));
        if (back > now_minute)
            continue;
        uint64_t minute = now_minute - back;
        m->start_ms = minute * MINUTE_MS;
        size_t slot = (size_t)(minute % HK_ACTIVITY_MINUTES);
        if (r != NULL && r->minute[slot] == minute + 1)
            memcpy(m->count, r->count[slot], sizeof(m->count));
    }
    uv_mutex_unlock(mu);
}

uint64_t hk_activity_untracked(const hk_activity *a)
{
    uv_mutex_t *mu = (uv_mutex_t *)&a->mu;
    uv_mutex_lock(mu);
    uint64_t n = a->untracked;
    uv_mutex_unlock(mu);
    return n;
}
