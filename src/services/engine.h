/*
 * engine.h: the delivery engine.
 *
 * Ingest: a signal is committed by the group commit together with one
 * queue entry per Active subscribed webhook (fan-out decided at commit
 * time) and, when given, its Idempotency-Key. The pending queue lives in
 * LMDB (HK_DB_QUEUE, keyed webhook id + due time + event id), so a backlog
 * costs disk, not memory.
 *
 * Scheduling: the loop holds a bounded window of due deliveries (at most
 * max_inflight, and a per-webhook share of it), dispatches them round-robin
 * across webhooks with at most concurrency_per_origin requests per origin,
 * and commits each outcome (queue entry removed or moved to its retry
 * time, statistics, auto-disable) in the same group commit as everything
 * else. A queue entry is removed only after its outcome is committed:
 * delivery is at least once.
 */
#ifndef HK_ENGINE_H
#define HK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "attempt_log.h"
#include "config.h"
#include "event.h"
#include "http_client.h"
#include "kv.h"

typedef struct hk_engine hk_engine;

#define HK_IDEMPOTENCY_KEY_MAX 255

/** A signal on its way through the group commit. */
typedef struct hk_signal hk_signal;
struct hk_signal {
    hk_write w; /**< the store request (internal) */
    /* Input, owned by the signal (freed by hk_signal_free). */
    char *name;          /**< event name */
    int64_t primary_key; /**< PrimaryKey */
    char *data;          /**< Data as compact JSON object text */
    size_t data_len;     /**< bytes in data */
    char *changes;       /**< JSON array of Data's keys */
    size_t changes_len;  /**< bytes in changes */
    uint32_t user_id;    /**< the signalling user */
    char *idem_key;      /**< Idempotency-Key or NULL */
    char *route;         /**< subscription name to fan out on when it differs from name (state events), or NULL */
    uint32_t exclude;    /**< webhook that must not receive it (a state event's own webhook), or 0 */
    /* Output of the commit. */
    hk_event_view event; /**< the stored event (strings point at the inputs above) */
    bool duplicate;      /**< the Idempotency-Key was seen within the window: nothing stored */
    uint32_t *webhooks;  /**< webhooks a delivery was queued for */
    size_t nwebhooks;    /**< entries in webhooks */
    size_t webhooks_cap; /* internal */
    /** Called on the loop after the commit; status 0 or a store error. */
    void (*done)(hk_signal *s, int status);
    void *arg;         /**< the caller's */
    hk_engine *engine; /* internal */
};

/** Frees a signal's inputs and outputs and the signal itself. */
void hk_signal_free(hk_signal *s);

/**
 * Creates the engine on loop over store with cfg (both must outlive it),
 * creates its outbound client and starts loading due work.
 */
int hk_engine_start(hk_engine **out, uv_loop_t *loop, const hk_config *cfg, hk_kv_env *store) HK_MUST_CHECK;

/** The engine's outbound client, shared with synchronous calls; NULL once the engine has closed it. */
hk_client *hk_engine_client(hk_engine *e);

/**
 * Submits a signal; s->done runs after its commit. s must have name, data,
 * changes and user_id set; it stays owned by the caller.
 */
void hk_engine_signal(hk_engine *e, hk_signal *s);

/**
 * Stops dispatching, cancels requests in flight (their deliveries stay
 * queued and are retried after a restart) and calls stopped once nothing
 * is pending in the engine. The engine is freed after stopped returns.
 */
void hk_engine_stop(hk_engine *e, void (*stopped)(void *arg), void *arg);

/**
 * Queues event event_id for webhook webhook_id again (a resend); done runs
 * on the loop after the commit with 0, HK_ENOTFOUND (the event or webhook
 * is gone) or a store error.
 */
void hk_engine_resend(hk_engine *e, uint32_t webhook_id, uint64_t event_id,
                      void (*done)(uint32_t webhook_id, uint64_t event_id, int status, void *arg), void *arg);

/**
 * Signals the state event `webhook{ID}.<kind>` (kind "errors", "stopped" or
 * "started") for webhook id: delivered with Event "webhook.<kind>" and
 * PrimaryKey id to the webhooks subscribed to that name, never to webhook
 * id itself, so a failing webhook's own state events cannot feed its
 * failure count. detail (may be NULL) goes into Data as "Reason".
 */
void hk_engine_state_event(hk_engine *e, uint32_t id, const char *kind, const char *detail);

/**
 * Reads the webhooks and looks at the queue now rather than at the next
 * tick: after a change made elsewhere (a webhook set Active again) or, in
 * tests, after the clock moved.
 */
void hk_engine_kick(hk_engine *e);

/** Counters for logs and the benchmark. */
typedef struct hk_engine_stats {
    uint64_t attempts;  /**< attempts finished */
    uint64_t successes; /**< of which 2xx */
    uint32_t in_memory; /**< deliveries held in the window */
    uint32_t in_flight; /**< requests on the wire */
} hk_engine_stats;

void hk_engine_get_stats(const hk_engine *e, hk_engine_stats *out);

/** The parsed retry schedule: delays in ms before attempt 2, 3, ... */
int hk_retry_schedule_parse(const char *text, uint64_t **delays, size_t *n) HK_MUST_CHECK;

/**
 * Records an attempt made outside the queue (a synchronous call): the
 * webhook's statistics and auto-disable rules count it and the attempt log
 * gets its record, in one commit. a's strings are copied. is410 says the
 * receiver answered 410 Gone. done (may be NULL) runs on the loop after the
 * commit, with disabled set when this attempt disabled the webhook.
 */
void hk_engine_record(hk_engine *e, const hk_attempt_view *a, bool is410,
                      void (*done)(int status, bool disabled, void *arg), void *arg);

/** Called in the outcome transaction; returns 0 or an error that fails the batch. */
int hk_attempt_recorded(hk_txn *txn, const hk_attempt_view *a);

/** Called on the loop after the outcome is committed. */
void hk_attempt_finished(hk_engine *e, const hk_attempt_view *a);

#endif
