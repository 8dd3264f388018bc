/*
 * activity.h: deliveries per minute by outcome over the last hour, kept in
 * memory for the console's activity chart (GET /console/api/activity).
 *
 * Fed with every committed attempt of a queued delivery (the engine's
 * `finished` hook); synchronous calls (Execute, Test, custom actions) are
 * not deliveries and are not counted. Each attempt counts once, in the
 * minute it finished, as delivered (a 2xx), retrying (failed, a retry
 * follows) or failed (failed, no retry follows). Counters are kept for all
 * webhooks together and for each webhook that had an attempt in the last
 * hour, for at most HK_ACTIVITY_WEBHOOKS_MAX webhooks at once; a webhook
 * beyond that counts in the total only. Nothing is stored: a restart starts
 * from zero, and in a cluster each node counts the attempts it made.
 *
 * Safe from any thread: with several workers each worker's engine counts
 * into the one set (a mutex guards it).
 */
#ifndef HK_ACTIVITY_H
#define HK_ACTIVITY_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

/** Minutes of history kept: the last hour. */
#define HK_ACTIVITY_MINUTES 60

/** Webhooks whose own counters are kept at once; the least recently active one makes room when stale. */
#define HK_ACTIVITY_WEBHOOKS_MAX 4096

/** What an attempt came to. */
enum hk_activity_outcome {
    HK_ACTIVITY_DELIVERED, /**< a 2xx answer */
    HK_ACTIVITY_RETRYING,  /**< failed; a retry follows */
    HK_ACTIVITY_FAILED,    /**< failed; no retry follows (exhausted, or the webhook was disabled) */
    HK_ACTIVITY_OUTCOMES   /**< the number of outcomes */
};

/** Attempts of one minute. */
typedef struct hk_activity_minute {
    uint64_t start_ms;                    /**< the minute's first millisecond (UTC) */
    uint32_t count[HK_ACTIVITY_OUTCOMES]; /**< attempts by outcome */
} hk_activity_minute;

/** The counters; opaque. */
typedef struct hk_activity hk_activity;

/** A new, empty set of counters, owned by the caller (hk_activity_free). Aborts only when memory runs out. */
hk_activity *hk_activity_new(void);

/** Frees a; safe on NULL. */
void hk_activity_free(hk_activity *a);

/** The outcome an attempt record stands for; false for a synchronous call, which is not counted. */
bool hk_activity_classify(const hk_attempt *at, enum hk_activity_outcome *out);

/** Counts one attempt of webhook_id that finished at at_ms (ms since the epoch). */
void hk_activity_count(hk_activity *a, uint32_t webhook_id, uint64_t at_ms, enum hk_activity_outcome outcome);

/** Counts a committed attempt record (its start plus its duration is when it finished); synchronous calls are skipped.
 */
void hk_activity_attempt(hk_activity *a, const hk_attempt *at);

/**
 * The last HK_ACTIVITY_MINUTES minutes up to and including the one now_ms
 * falls in, oldest first, into out: of every webhook (webhook_id 0) or of
 * one. Minutes without attempts, and minutes counted before a webhook's
 * counters were made room for, are zeros.
 */
void hk_activity_series(const hk_activity *a, uint32_t webhook_id, uint64_t now_ms,
                        hk_activity_minute out[HK_ACTIVITY_MINUTES]);

/** Attempts of webhooks that found no room for counters of their own (counted in the total only), since start. */
uint64_t hk_activity_untracked(const hk_activity *a);

#endif
