/*
 * engine_int.h: the delivery engine's insides, shared by its modules and
 * by no one else:
 *
 *   engine.c      life cycle: start, timers, stop, counters
 *   scheduler.c   the window of due deliveries, loading it from the
 *                 queue, per-origin concurrency, fair dispatch, sending
 *   outcome.c     the outcome rules and the outcome's commit
 *   ingest.c      signals and their fan-out into the window
 *   resend.c      queueing an event again
 *   recover.c     recovery after an outage, in bounded steps
 *   maintenance.c pruning and the queue of deleted webhooks
 *   sync.c        synchronous calls (origin slots, recording)
 *   engine_group.c the engines of several workers: who owns a webhook,
 *                 handing deliveries and wake-ups to its owner
 *
 * The window. A job is one delivery held in memory: ready (loaded, waiting
 * for its turn), sending (on the wire) or committing (its outcome is being
 * stored). Jobs are indexed by (webhook, event) so that a delivery is never
 * loaded twice. The window holds at most max_inflight jobs and a webhook at
 * most `share` of them; but work that can go on the wire at once is
 * admitted past a full window (up to twice its size): a job whose origin
 * has a free connection slot. So jobs waiting for a saturated origin (a
 * slow or dead endpoint, or many of them) never keep a healthy origin's
 * deliveries out: they can fill the window, not the wire of the others.
 *
 * Origins. Every scheme://host:port has at most concurrency_per_origin
 * requests on the wire, queued deliveries and synchronous calls together;
 * a synchronous call that finds its origin saturated waits for the next
 * free slot (ahead of queued deliveries) for up to sync_wait_ms. Origins
 * with ready jobs and a free slot are kept in a ring; within an origin,
 * its webhooks with ready jobs take turns.
 */
#ifndef HK_ENGINE_INT_H
#define HK_ENGINE_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "clock.h"
#include "delivery.h"
#include "engine.h"
#include "model.h"
#include "outcome.h"
#include "sender.h"
#include "store.h"

#define HK__WS_BUCKETS 1024
#define HK__ORIGIN_BUCKETS 256

struct hk__job;
struct hk__wstate;

/** A slot request of a synchronous call waiting for its origin. */
struct hk__slot_wait {
    struct hk__origin *origin; /**< the origin (a reference the waiting call holds) */
    uint64_t deadline_mono;    /**< gives up then */
    /** Called once: 0 with the slot taken, UV_ETIMEDOUT when none came in time, HK_ESHUTDOWN at a stop. */
    void (*granted)(struct hk__slot_wait *w, int status);
    struct hk__slot_wait *next, *prev; /**< the origin's waiters */
};

/** One scheme://host:port. Freed when nothing refers to it (refs 0). */
struct hk__origin {
    char *key;                                    /**< scheme://host:port, lower case */
    uint32_t active;                              /**< requests on the wire: deliveries and synchronous calls */
    uint32_t ready;                               /**< ready jobs of its webhooks */
    uint32_t refs;                                /**< webhooks pointing here, slots taken, waiters */
    struct hk__wstate *ws_ring;                   /**< its webhooks with ready jobs, taking turns */
    bool in_ring;                                 /**< in the engine's ring of dispatchable origins */
    struct hk__origin *ring_next, *ring_prev;     /**< the ring of dispatchable origins */
    struct hk__slot_wait *waiters, *waiters_tail; /**< synchronous calls waiting for a slot, oldest first */
    struct hk__origin *hnext;                     /**< hash chain */
};

/** What the engine knows of one webhook. */
struct hk__wstate {
    uint32_t id;  /**< the webhook's id */
    hk_webhook w; /**< the record when last read: its target is rebuilt only when what it is made of changed */
    bool known;   /**< w holds a record */
    bool active, locked, gone, cleaning;      /**< Active; operator lock; deleted; its queue is being dropped */
    uint64_t pass;                            /**< the load pass that last read the record */
    hk_target t;                              /**< url, name, secrets, custom headers, Properties */
    struct hk__origin *origin;                /**< its target's origin (a reference) */
    struct hk__job *ready_head, *ready_tail;  /**< its ready jobs, oldest first */
    uint32_t held;                            /**< jobs in the window: ready, sending or committing */
    uint32_t nready;                          /**< of which ready */
    bool in_ring;                             /**< in its origin's ring */
    uint64_t refusal_logged_mono;             /**< when an SSRF refusal of its target was last logged (0: never) */
    struct hk__wstate *ring_next, *ring_prev; /**< its origin's ring */
    struct hk__wstate *hnext;                 /**< hash chain */
};

enum hk__job_state { HK__JOB_READY, HK__JOB_SENDING, HK__JOB_COMMITTING };

/** One delivery in the window. */
struct hk__job {
    hk_commit c;               /**< the outcome's op */
    hk_engine *eng;            /**< the engine */
    struct hk__wstate *ws;     /**< its webhook */
    struct hk__origin *origin; /**< the origin whose slot it holds while sending */
    enum hk__job_state state;  /**< ready, sending or committing */
    hk_delivery d;    /**< the queue entry as loaded: webhook, event, due time (its key), attempts made, first */
    uint32_t user_id; /**< the user behind the event */
    uint64_t ts_ms;   /**< when the event was accepted (its stored time, hk_event.ts_ms) */
    char uuid[HK_EVENT_UUID_LEN]; /**< EventId text */
    char *event_name;             /**< the event's name */
    hk_body *body; /**< rendered once per event and shared by the jobs that send the same bytes (a reference) */
    /* The current attempt. */
    uint64_t started_ms, started_mono; /**< when it was sent: wall and monotonic time */
    hk_outcome out;                    /**< what follows it */
    hk_attempt rec;        /**< its record: the strings are the job's (url_copy, request, response, out.error...) */
    char *url_copy;        /**< the URL it went to (owned; custom lives in the same block) */
    char *custom;          /**< the webhook's custom header lines it was sent with (in url_copy's block) */
    hk_delivery_sigs sigs; /**< its signature header values */
    char *user_agent;      /**< the User-Agent it was sent with (from the sender's result) */
    char *request;         /**< request head and body as sent (cut) */
    size_t request_len;    /**< bytes in request */
    char *response;        /**< response as received (cut) */
    size_t response_len;   /**< bytes in response */
    struct hk__job *next;  /**< ready list */
};

/** A slot of the engine's index of jobs by (webhook, event): the key beside the job (job NULL: free). */
struct hk__jslot {
    uint64_t event_id;   /**< the job's event */
    uint32_t webhook_id; /**< the job's webhook */
    struct hk__job *job; /**< the job; NULL for a free slot */
};

/** The engine (engine.h). */
struct hk_engine {
    uv_loop_t *loop;                                                   /**< the loop */
    hk_store *store;                                                   /**< the store */
    hk_clock *clock;                                                   /**< wall and monotonic time */
    hk_sender sender;                                                  /**< puts requests on the wire */
    hk_engine_opts o;                                                  /**< the options (the schedule: see policy) */
    hk_retry_policy policy;                                            /**< the parsed retry rules */
    void (*finished)(const hk_attempt *a, void *arg);                  /**< see hk_engine_deps */
    void *finished_arg;                                                /**< passed to finished */
    uv_timer_t load_timer, tick, prune_timer, grace_timer, wait_timer; /**< what wakes the engine */
    int open_handles;                                                  /**< timers not closed yet (at a stop) */
    uint64_t load_at; /**< monotonic time load_timer fires at; 0 = not armed */
    uint64_t wait_at; /**< monotonic time wait_timer fires at; 0 = not armed */
    uint32_t share;   /**< jobs one webhook may hold */
    /* The window. */
    struct hk__jslot *jobs;                         /**< the jobs by (webhook, event), open addressing */
    size_t job_buckets;                             /**< slots of jobs (a power of two, at least twice njobs) */
    size_t njobs;                                   /**< jobs in the index */
    uint32_t mem;                                   /**< jobs held */
    uint32_t in_flight;                             /**< jobs sending */
    struct hk__wstate *ws_table[HK__WS_BUCKETS];    /**< webhooks by id */
    struct hk__origin *origins[HK__ORIGIN_BUCKETS]; /**< origins by key */
    struct hk__origin *ring;                        /**< dispatchable origins: ready jobs and a free slot */
    uint64_t pass;                                  /**< moments at which webhooks are read (see hk__new_pass) */
    uint64_t pass_mono;                             /**< the monotonic time of the current one */
    bool more_due;                                  /**< the last load left due entries in the store */
    unsigned store_failures;                        /**< outcome commits failed in a row (back-off) */
    uint64_t backoff_until;                         /**< no load before this monotonic time */
    bool dispatching, redispatch;                   /**< in hk__dispatch; another round asked for */
    uint32_t waiting;                               /**< synchronous calls waiting for a slot */
    uint32_t sync_active;                           /**< slots held by synchronous calls (on the wire) */
    hk_buf send_headers;                            /**< a sent job's header lines, made again for each send */
    /* Life cycle. */
    uint32_t committing;                                   /**< the engine's own writes not yet done */
    bool pruning;                                          /**< a prune step is committing */
    bool stopping, closing, sender_closing, sender_closed; /**< the stop's progress */
    bool released; /**< cluster mode: the node's claims given back at the stop */
    /* Cluster mode (hk_store_is_cluster): due deliveries are claimed. */
    bool claiming;              /**< a claim is in flight */
    bool claim_again;           /**< a load was asked for meanwhile */
    uint64_t started_ms;        /**< when the engine started (the node's sign of life) */
    uint64_t ticks;             /**< ticks since the start */
    hk_delivery *back;          /**< claims to give back (hk__give_back), oldest first */
    size_t nback;               /**< entries in back */
    size_t back_sent;           /**< the first entries of back being given back now (0: none in flight) */
    void (*stopped)(void *arg); /**< called once stopped */
    void *stopped_arg;          /**< passed to stopped */
    hk_engine_stats stats;      /**< counters */
    uint64_t rng[4];            /**< the generator's state */
    /* Workers (engine_group.c). */
    hk_engine_group *group; /**< the workers' engines; NULL: this engine owns every webhook */
    uint32_t worker;        /**< its index in group: it owns the webhooks whose id mod the group's size is this */
    uv_async_t inbox;       /**< with group: woken when another worker hands over deliveries or a kick */
};

/* engine.c */
/** A 64-bit value from the engine's generator (xoshiro256**, seeded once). */
uint64_t hk__rand(hk_engine *e);
/** Submits one of the engine's own ops (c->op and c->done set); a stop waits for every such op. */
void hk__submit(hk_engine *e, hk_commit *c);
/** Marks one of those ops done (from its done callback) and finishes a stop waiting for it. */
void hk__submitted(hk_engine *e);
/** A fresh EventId (a version 4 UUID) for an event or a state event. */
void hk__uuid(hk_engine *e, uint8_t uuid[16]);
/** Runs the finished hook for a committed attempt. */
void hk__finished(hk_engine *e, const hk_attempt *a);
/** Stops when nothing is left (see hk_engine_stop). */
void hk__maybe_finish_stop(hk_engine *e);

/* scheduler.c */
/** Sizes the window (the per-webhook share, the job index). */
void hk__sched_init(hk_engine *e);
/** Frees the window, the webhooks' states and the origins (at the end of a stop). */
void hk__sched_free(hk_engine *e);
/** Arms the load timer to walk the queue in delay_ms (earlier arming wins). */
void hk__schedule_load(hk_engine *e, uint64_t delay_ms);
/** Walks the queue now. */
void hk__load(hk_engine *e);
/** Sends what can be sent. */
void hk__dispatch(hk_engine *e);
/** Cluster mode (claim.c): loads the window by claiming due deliveries of the shared queue. */
void hk__claim_load(hk_engine *e);
/** Cluster mode: notes a claim of this node that it will not attempt now, to be given back (hk__give_back_flush). */
void hk__give_back(hk_engine *e, const hk_delivery *d);
/** Gives back what hk__give_back noted, unless a request for it is in flight or the stop gave everything back. */
void hk__give_back_flush(hk_engine *e);
/**
 * Starts a new moment for reading webhooks: every webhook is read from the
 * store again at its next hk__ws_get. Unless forced, a moment lasts a
 * millisecond of the loop's time: the fan-outs of one group commit read
 * each webhook once, not once per event.
 */
void hk__new_pass(hk_engine *e, bool force);
/** The webhook's state, read from the store once per moment (hk__new_pass). */
struct hk__wstate *hk__ws_get(hk_engine *e, uint32_t id);
/** Frees the state of a deleted webhook that holds no job (no-op otherwise). */
void hk__ws_forget(hk_engine *e, struct hk__wstate *ws);
/** The webhook's state when the engine has one. */
struct hk__wstate *hk__ws_lookup(hk_engine *e, uint32_t id);
/** How many more jobs ws may take into the window now. */
uint32_t hk__admit(hk_engine *e, const struct hk__wstate *ws);
/** The job of (webhook, event) when it is in the window. */
struct hk__job *hk__job_find(hk_engine *e, uint32_t wid, uint64_t eid);
/**
 * Puts a job for queue entry d of event ev into the window (the caller
 * checked hk__admit); it takes a reference to body, which must be what
 * ws's target renders for ev (hk_body_fits; NULL: rendered here).
 */
struct hk__job *hk__job_new(hk_engine *e, struct hk__wstate *ws, const hk_delivery *d, const hk_event *ev,
                            hk_body *body);
/** Makes a job that is held ready again (an immediate retry). */
void hk__job_requeue(hk_engine *e, struct hk__job *j);
/** Forgets a job: its queue entry stays in the store and is loaded again. */
void hk__job_drop(hk_engine *e, struct hk__job *j);
/** Frees the outcome texts of the job's last attempt. */
void hk__job_clear_attempt(struct hk__job *j);
/** The origin of url, created when new, with a reference taken (hk__sched_origin_put releases it). */
struct hk__origin *hk__sched_origin_get(hk_engine *e, const char *url);
void hk__sched_origin_put(hk_engine *e, struct hk__origin *o);
/**
 * Takes a slot of w->origin for a synchronous call: at once (returns 0)
 * when one is free and nobody waits; else queues w (returns 1) and calls
 * w->granted later (see struct hk__slot_wait).
 */
int hk__slot_take(hk_engine *e, struct hk__slot_wait *w);
/** Gives back a slot taken by a synchronous call. */
void hk__slot_release(hk_engine *e, struct hk__origin *o);
/** Fails waiters whose time is up (all of them when the engine stops) and re-arms the wait timer. */
void hk__slot_expire(hk_engine *e);

/* outcome.c */
/** A job's attempt finished with r: decides, records the texts and submits the outcome. */
void hk__outcome(hk_engine *e, struct hk__job *j, const hk_client_result *r);
/** A webhook disabled by the failure rules (outcome or synchronous call): it leaves the window. */
void hk__disabled(hk_engine *e, uint32_t webhook_id, const char *error);

/* ingest.c */
/**
 * Puts the new deliveries of event ev (just committed, due at ev->ts_ms)
 * for the webhooks ids (all this engine's) into the window; what does not
 * fit stays queued for the loader.
 */
void hk__fan_out(hk_engine *e, const hk_event *ev, const uint32_t *ids, size_t n);

/* engine_group.c */
/** True when this engine owns the webhook (always without a group). */
bool hk__owns(const hk_engine *e, uint32_t webhook_id);
/** Registers the engine in its group (with its inbox) at start; 0 without a group. */
int hk__group_join(hk_engine *e) HK_MUST_CHECK;
/** Unregisters it at its stop: nothing more is handed to it (its inbox is closed after). */
void hk__group_leave(hk_engine *e);
/** Hands the deliveries of ev for ids that other workers own to them (a copy of ev each). */
void hk__hand_over(hk_engine *e, const hk_event *ev, const uint32_t *ids, size_t n);
/** The webhook's queue changed: its owner walks the queue soon (this engine, or another woken). */
void hk__wake_owner(hk_engine *e, uint32_t webhook_id);
/** Kicks the other workers' engines (hk_engine_kick). */
void hk__kick_others(hk_engine *e);
/** hk_engine_kick of this engine alone. */
void hk__kick_here(hk_engine *e);

/* maintenance.c */
/** Removes the queue entries of a deleted webhook, a bounded run at a time. */
void hk__queue_drop(hk_engine *e, struct hk__wstate *ws);
/** One bounded pruning step (more follow while there is more). */
void hk__prune_start(hk_engine *e);

#endif
