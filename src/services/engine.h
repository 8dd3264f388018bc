/*
 * engine.h: the delivery engine, what the API and the app see of it.
 *
 * Ingest (ingest.c): a signal is committed by the group commit together
 * with one queue entry per Active subscribed webhook (fan-out decided at
 * commit time) and, when given, its Idempotency-Key. The pending queue
 * lives in the store, so a backlog costs disk, not memory.
 *
 * Scheduling (scheduler.c): the loop holds a bounded window of due
 * deliveries and sends them with at most concurrency_per_origin requests
 * per origin, origins and the webhooks of one origin taking turns; a slow
 * or dead origin (or many) never holds back a healthy one (see
 * engine_int.h). Outcomes (outcome.c) are committed in the same group
 * commit as everything else; a queue entry is removed only by the commit
 * of its outcome: delivery is at least once.
 *
 * The engine gets everything it uses from its caller: the loop, the store,
 * a clock and a sender (tests pass a fake clock and a fake sender), and its
 * options. It keeps no global state.
 */
#ifndef HK_ENGINE_H
#define HK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "clock.h"
#include "config.h"
#include "model.h"
#include "sender.h"
#include "store.h"

typedef struct hk_engine hk_engine;

/**
 * The engines of a server's workers (one event loop, one thread and one
 * engine each; engine_group.c), for the hand-over between them: worker i
 * owns the webhooks whose id mod n is i (only its engine loads and sends
 * their deliveries); a signal accepted on any worker hands the deliveries
 * of other workers' webhooks to their engines; kicks, resends and
 * recoveries wake the owner. Everything else in an engine is its own
 * worker's (see src/services/README.md).
 */
typedef struct hk_engine_group hk_engine_group;
typedef struct hk_engine_stats hk_engine_stats;

/** A group of n engines (n >= 1, else HK_EINVAL); *out is the caller's until hk_engine_group_free. */
int hk_engine_group_new(hk_engine_group **out, uint32_t n) HK_MUST_CHECK;

/** Frees the group once no engine of it runs (each has stopped). Safe on NULL. */
void hk_engine_group_free(hk_engine_group *g);

/** The counters of the group's running engines, summed (from any thread). */
void hk_engine_group_stats(hk_engine_group *g, hk_engine_stats *out);

/** The engine's settings (see conf/hookd.conf, [delivery]). */
typedef struct hk_engine_opts {
    uint32_t max_inflight;           /**< deliveries held in memory (the window) */
    uint32_t concurrency_per_origin; /**< requests on the wire per scheme://host:port */
    /**
     * The retry schedule, parsed: nretry_delays waits in ms, the first one
     * standing for the first attempt (the configuration's retry_delays,
     * parsed once at load). Copied at start.
     */
    const uint64_t *retry_delays;
    size_t nretry_delays;           /**< entries in retry_delays */
    const char *retry_schedule;     /**< when retry_delays is NULL: the schedule's text, parsed at start (tests) */
    uint32_t retry_jitter_pct;      /**< +/- percent applied to each retry delay */
    uint64_t retry_after_max_ms;    /**< a receiver's Retry-After is honoured up to this */
    uint32_t disable_after;         /**< consecutive failures that disable an unlocked webhook */
    uint64_t idempotency_window_ms; /**< how long an Idempotency-Key is remembered */
    uint64_t log_retention_ms;      /**< attempt records older than this are pruned */
    uint64_t prune_interval_ms;     /**< how often pruning starts; 0: never by itself */
    uint64_t tick_ms;               /**< how often the queue is walked anyway (re-activated webhooks); 0: never */
    uint64_t sync_wait_ms;          /**< how long a synchronous call waits for a slot of a saturated origin */
    uint64_t lease_ms;              /**< cluster mode: how long claimed deliveries stay this node's (0: 5 minutes) */
    uint64_t shutdown_grace_ms;     /**< how long a stop lets requests on the wire finish */
    uint64_t seed;                  /**< seeds EventIds and jitter; 0: from the kernel */
    uint32_t recover_step_max;      /**< attempt records per step of a recovery; 0: HK_RECOVER_STEP_MAX */
    int log_deliveries;             /**< which attempts get a log line: an hk_log_deliveries (0: none) */
} hk_engine_opts;

/** The engine's options from the configuration. */
void hk_engine_opts_from_config(hk_engine_opts *o, const hk_config *cfg);

/** What the engine runs on. Everything must outlive the engine. */
typedef struct hk_engine_deps {
    uv_loop_t *loop;  /**< the loop every callback runs on */
    hk_store *store;  /**< the store */
    hk_clock *clock;  /**< wall and monotonic time */
    hk_sender sender; /**< puts requests on the wire; the engine closes it when it stops */
    /** Runs on the loop for every committed attempt (queued or synchronous), e.g. to send mails; may be NULL. */
    void (*finished)(const hk_attempt *a, void *arg);
    void *finished_arg;     /**< passed to finished */
    hk_engine_group *group; /**< the workers' engines (NULL: one engine owns every webhook) */
    uint32_t worker;        /**< this engine's index in group */
} hk_engine_deps;

/**
 * Creates the engine and starts loading due work. HK_ECONFIG (logged) when
 * the retry schedule is empty or, given as text, does not parse.
 */
int hk_engine_start(hk_engine **out, const hk_engine_deps *deps, const hk_engine_opts *opts) HK_MUST_CHECK;

/**
 * Stops dispatching, fails waiting synchronous calls, lets requests on the
 * wire finish for shutdown_grace_ms, then cancels the rest (their
 * deliveries stay queued and are sent again after a restart), closes the
 * sender and calls stopped (may be NULL) once nothing is pending in the
 * engine. The engine is freed after stopped returns. Called again before
 * that, it ends the grace at once (its arguments are ignored).
 */
void hk_engine_stop(hk_engine *e, void (*stopped)(void *arg), void *arg);

/** True once hk_engine_stop was called. */
bool hk_engine_stopping(const hk_engine *e);

/**
 * Reads the webhooks and looks at the queue now rather than at the next
 * tick: after a change made elsewhere (a webhook set Active again) or, in
 * tests, after the clock moved. With a group, every worker's engine does.
 */
void hk_engine_kick(hk_engine *e);

/**
 * A webhook was deleted (its delete committed): its queue entries are
 * removed now, in bounded steps (HK_OP_QUEUE_DROP). The embedded engine's
 * walk of the queue would find them anyway; in cluster mode, where claims
 * never bring a deleted webhook's entries, this is what removes them.
 */
void hk_engine_webhook_deleted(hk_engine *e, uint32_t id);

/* ---- ingest (ingest.c) ----------------------------------------------------------- */

/**
 * A signal on its way through the group commit (HK_OP_SIGNAL): the event,
 * its fan-out to the Active webhooks subscribed to its name and its
 * Idempotency-Key, stored in one commit.
 */
typedef struct hk_signal hk_signal;
struct hk_signal {
    hk_commit c; /**< the op (internal) */
    /* Input, owned by the signal (freed by hk_signal_free). */
    char *name;          /**< event name */
    int64_t primary_key; /**< PrimaryKey */
    char *data;          /**< Data as compact JSON object text */
    size_t data_len;     /**< bytes in data */
    char *changes;       /**< JSON array of Data's keys */
    size_t changes_len;  /**< bytes in changes */
    uint32_t user_id;    /**< the signalling user */
    char *idem_key;      /**< Idempotency-Key or NULL */
    /* Output of the commit, read in done. */
    uint64_t event_id;                  /**< the stored event (or, for a duplicate, the first one) */
    bool duplicate;                     /**< the Idempotency-Key was seen within the window: nothing stored */
    char event_uuid[HK_EVENT_UUID_LEN]; /**< the event's EventId (the first event's for a duplicate); empty when that
                                             event can no longer be read */
    /** Called on the loop after the commit; status 0 or a store error. */
    void (*done)(hk_signal *s, int status);
    void *arg;         /**< the caller's */
    hk_engine *engine; /* internal */
};

/** Frees a signal's inputs and outputs and the signal itself; safe on NULL. */
void hk_signal_free(hk_signal *s);

/**
 * Submits a signal; s->done runs after its commit. s must have name, data,
 * changes and user_id set; it stays owned by the caller.
 */
void hk_engine_signal(hk_engine *e, hk_signal *s);

/**
 * Fills ev for an op that carries a state event: kind ("errors",
 * "stopped", "started"), reason (borrowed; NULL leaves Data.Reason out) and
 * a fresh EventId from the engine's generator. A state event is always
 * stored in the commit of the change it reports (hk_op_webhook_put.event,
 * the on_disable of hk_op_outcome and hk_op_attempt), never on its own.
 */
void hk_engine_state_event_init(hk_engine *e, hk_state_event *ev, const char *kind, const char *reason);

/* ---- resend (resend.c) ------------------------------------------------------------ */

/**
 * Queues event event_id for webhook webhook_id again (a resend); done runs
 * on the loop after the commit with 0, HK_ENOTFOUND (the event or webhook
 * is gone) or a store error.
 */
void hk_engine_resend(hk_engine *e, uint32_t webhook_id, uint64_t event_id,
                      void (*done)(uint32_t webhook_id, uint64_t event_id, int status, void *arg), void *arg);

/* ---- recovery after an outage (recover.c) ---------------------------------------------- */

/**
 * Queues again, once each, the deliveries to webhook_id (0: to every
 * webhook, one after the other) that ended failed within [since_ms,
 * until_ms], as HK_OP_RECOVER says (store.h): in steps of at most
 * HK_RECOVER_STEP_MAX attempt records, each its own commit, the next
 * submitted from the previous one's done. done runs on the loop once the
 * window is done, with 0 and the number queued; or with HK_ENOTFOUND (the
 * webhook does not exist, or was deleted during its recovery), HK_EINVAL
 * (since_ms after until_ms), HK_ESHUTDOWN (the engine is stopping: what
 * was queued stays queued) or a store error, and the number queued until
 * then. When the recovery cannot begin at all, done runs before this
 * returns.
 */
void hk_engine_recover(hk_engine *e, uint32_t webhook_id, uint64_t since_ms, uint64_t until_ms,
                       void (*done)(int status, uint64_t recovered, void *arg), void *arg);

/* ---- counters ------------------------------------------------------------------------ */

/** Counters for logs, tests and the benchmark (with a group: summed over its engines). */
struct hk_engine_stats {
    uint64_t attempts;  /**< attempts of queued deliveries finished */
    uint64_t successes; /**< of which 2xx */
    uint32_t in_memory; /**< deliveries held in the window */
    uint32_t in_flight; /**< deliveries on the wire */
    uint32_t waiting;   /**< synchronous calls waiting for an origin slot */
};

void hk_engine_get_stats(const hk_engine *e, hk_engine_stats *out);

#endif
