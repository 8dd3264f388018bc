/*
 * outcome.h: the rules that decide what follows an attempt, as pure
 * functions of their inputs (no clock, no randomness of their own, no
 * store), so that they can be tested exactly.
 *
 *   - 2xx succeeds; anything else (a status, a timeout, a refused
 *     connection, a TLS or SSRF refusal) fails.
 *   - After `made` failed attempts the next one waits retry_schedule[made]
 *     moved by up to +/- jitter_pct percent; after the last entry the
 *     delivery is exhausted.
 *   - 410 Gone exhausts the delivery at once (and disables the webhook:
 *     that part is applied by the store in the outcome's commit).
 *   - 429 and 503 with a Retry-After (seconds or an HTTP date) wait at
 *     least that long, capped at retry_after_max.
 *   - Consecutive failures reaching disable_after disable an unlocked
 *     webhook (applied by the store in the commit, from the op's inputs).
 */
#ifndef HK_OUTCOME_H
#define HK_OUTCOME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "http_client.h"

/** What follows a failure. Owns delays (hk_retry_policy_free). */
typedef struct hk_retry_policy {
    uint64_t *delays;            /**< delays[i]: the wait before attempt i + 1 after a failure; delays[0]
                                      stands for the first attempt, sent when due, and is never waited */
    size_t n;                    /**< entries in delays: the attempts a delivery gets at most */
    uint32_t jitter_pct;         /**< each delay moves by up to this many percent either way */
    uint64_t retry_after_max_ms; /**< a receiver's Retry-After is honoured up to this */
    uint32_t disable_after;      /**< consecutive failures that disable an unlocked webhook */
} hk_retry_policy;

/**
 * Parses a retry schedule: comma- or space-separated durations ("0s, 5s,
 * 5m"). *delays is malloc'd (the caller frees it). HK_EINVAL when empty or
 * when an entry is not a duration.
 */
int hk_retry_schedule_parse(const char *text, uint64_t **delays, size_t *n) HK_MUST_CHECK;

/**
 * Fills p from its settings, with a copy of the n delays of a parsed
 * schedule (the configuration's retry_delays, parsed once at load).
 * HK_EINVAL when n is 0. Delays of any size are safe: every sum and product
 * below saturates at UINT64_MAX instead of wrapping.
 */
int hk_retry_policy_set(hk_retry_policy *p, const uint64_t *delays, size_t n, uint32_t jitter_pct,
                        uint64_t retry_after_max_ms, uint32_t disable_after) HK_MUST_CHECK;

/** Like hk_retry_policy_set with the schedule's text parsed as above. HK_EINVAL for a bad schedule. */
int hk_retry_policy_init(hk_retry_policy *p, const char *schedule, uint32_t jitter_pct, uint64_t retry_after_max_ms,
                         uint32_t disable_after) HK_MUST_CHECK;

/** Frees p's schedule; safe on a zeroed struct. */
void hk_retry_policy_free(hk_retry_policy *p);

/**
 * The wait before the attempt that follows `made` attempts (1 <= made <
 * p->n): delays[made] moved by a fraction of jitter_pct picked by rnd (any
 * 64-bit value, uniform: the same rnd gives the same delay). A delay that
 * the jitter would move past UINT64_MAX is UINT64_MAX.
 */
uint64_t hk_retry_delay(const hk_retry_policy *p, uint32_t made, uint64_t rnd);

/** The least and the most hk_retry_delay can give for made. */
void hk_retry_delay_bounds(const hk_retry_policy *p, uint32_t made, uint64_t *lo, uint64_t *hi);

/**
 * At least the longest a delivery can wait between its first attempt and
 * its last (every step at its jittered maximum or at retry_after_max, the
 * first entry counted too): how long an event must outlive its log records.
 */
uint64_t hk_retry_span(const hk_retry_policy *p);

/**
 * Parses a Retry-After value: delay-seconds, or an HTTP date (IMF-fixdate)
 * turned into the wait from now_ms (0 when it is past). HK_EINVAL when it
 * is neither.
 */
int hk_retry_after_parse(const char *value, uint64_t now_ms, uint64_t *delay_ms) HK_MUST_CHECK;

/** Bytes kept of an outcome's error text. */
#define HK_OUTCOME_ERROR_MAX 320

/** What follows one attempt. */
typedef struct hk_outcome {
    bool success;                     /**< a 2xx arrived */
    bool is410;                       /**< 410 Gone arrived: the webhook is to be disabled */
    bool exhausted;                   /**< a failure that no retry follows */
    int status;                       /**< HTTP status; 0 when no response came */
    uint64_t next_due_ms;             /**< a failure with a retry: when it is due; 0 otherwise */
    char error[HK_OUTCOME_ERROR_MAX]; /**< "" on success; the client's reason or the status line otherwise */
} hk_outcome;

/**
 * Decides what follows attempt number made (1 for the first) whose result
 * is r, at now_ms, with rnd for the jitter (see hk_retry_delay). A retry
 * due past UINT64_MAX ms is due at UINT64_MAX (never wrapped into the past).
 */
void hk_outcome_decide(const hk_retry_policy *p, uint32_t made, const hk_client_result *r, uint64_t now_ms,
                       uint64_t rnd, hk_outcome *out);

/**
 * The texts an attempt record keeps of an exchange, each malloc'd,
 * NUL-terminated and cut at max bytes (0: not cut): *request is the
 * request line and headers as sent followed by body (nothing at all when
 * nothing was sent and !body_when_unsent); *response the status line,
 * headers, a blank line and the body received ("" when no response came).
 */
void hk_outcome_texts(const hk_client_result *r, const char *body, size_t body_len, bool body_when_unsent, size_t max,
                      char **request, size_t *request_len, char **response, size_t *response_len);

/** The response text of hk_outcome_texts alone (malloc'd, cut at max; "" when no response came). */
void hk_outcome_response(const hk_client_result *r, size_t max, char **response, size_t *response_len);

#endif
