/*
 * tables.h: the typed table functions of the state layer (internal to
 * src/state; nothing above it includes this). Each table has one owner
 * module holding its codec; the others go through these functions. Every
 * function runs inside a transaction the caller holds, and the appliers
 * (hk__apply_*) apply one op deterministically from its inputs and now_ms.
 *
 * Stored records start with a format version byte (HK__V1 today); records
 * written before versioning (JSON objects, or the old binary layouts) are
 * read as version 0 and rewritten in the current format when next changed.
 */
#ifndef HK_TABLES_H
#define HK_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "kv.h"
#include "model.h"
#include "store.h"

/** The current format version of every record. */
#define HK__V1 1

/**
 * The LMDB environment under a store (owned by the store), for the state
 * layer's own tests: records of older versions written byte for byte,
 * reader slots. Nothing in src/ uses it.
 */
hk_kv_env *hk__store_kv(hk_store *s);

/* ---- webhook.c: webhooks, their indexes, statistics, event types ----------- */

/** Encodes w in the current format into out (appended). */
void hk__webhook_encode(const hk_webhook *w, hk__wbuf *out);
/** Decodes a stored webhook of any version into *out (zeroed first; free it with hk_webhook_free). */
int hk__webhook_decode(const void *p, size_t len, hk_webhook *out) HK_MUST_CHECK;
/** Reads webhook id (out->id is id, whatever the record says); HK_ENOTFOUND when absent. */
int hk__webhook_read(hk_txn *txn, uint32_t id, hk_webhook *out) HK_MUST_CHECK;
/** A webhook's state and lock without decoding the whole record (fan-out). */
int hk__webhook_peek(hk_txn *txn, uint32_t id, enum hk_webhook_state *state, bool *locked) HK_MUST_CHECK;
/** Webhooks by state (indexed by enum hk_webhook_state); unreadable records are left out. */
int hk__webhook_count_states(hk_txn *txn, uint64_t counts[3]) HK_MUST_CHECK;
/**
 * Stores w (id 0: a new id is assigned into w->id) and moves its indexes
 * from old (NULL: none) to w: subscriptions, extension (HK_EEXIST when
 * another webhook has it) and the event types it names.
 */
int hk__webhook_write(hk_txn *txn, hk_webhook *w, const hk_webhook *old) HK_MUST_CHECK;
/**
 * Rewrites every webhook still in format 0 (JSON) in the current format, so
 * that fan-out reads its state without a decode; *upgraded counts them.
 */
int hk__webhook_upgrade_all(hk_txn *txn, size_t *upgraded) HK_MUST_CHECK;
/** Deletes old's record, indexes and statistics. */
int hk__webhook_remove(hk_txn *txn, const hk_webhook *old) HK_MUST_CHECK;
/** The webhook whose extension is exactly ext; HK_ENOTFOUND when none. */
int hk__webhook_by_extension(hk_txn *txn, const char *ext, uint32_t *id) HK_MUST_CHECK;

/** Reads statistics: zeros when none, and when malformed (with a warning); errors only from the store. */
int hk__stats_read(hk_txn *txn, uint32_t id, hk_webhook_stats *out) HK_MUST_CHECK;
/** Writes statistics in the current format. */
int hk__stats_write(hk_txn *txn, uint32_t id, const hk_webhook_stats *st) HK_MUST_CHECK;

/** Calls fn for every event type in id order until it returns non-zero (returned). */
int hk__event_types_each(hk_txn *txn, int (*fn)(uint32_t id, const char *name, void *arg), void *arg);
/** Looks an event type up by name; HK_ENOTFOUND when unknown. */
int hk__event_type_id(hk_txn *txn, const char *name, uint32_t *id) HK_MUST_CHECK;
/** Registers an event name (nothing when known) and gives its id. */
int hk__event_type_register(hk_txn *txn, const char *name, uint32_t *id) HK_MUST_CHECK;

int hk__apply_webhook_put(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_webhook_delete(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_webhook_lock(hk_txn *txn, hk_op *op) HK_MUST_CHECK;

/* ---- event.c: events --------------------------------------------------------- */

/** Encodes an event's fields in the current format into out. */
void hk__event_encode(hk__wbuf *out, uint64_t ts_ms, int64_t primary_key, uint32_t user_id, const uint8_t uuid[16],
                      const char *name, size_t name_len, const char *changes, size_t changes_len, const char *data,
                      size_t data_len);
/** Decodes a stored event of any version into *out (owned strings). */
int hk__event_decode(const void *p, size_t len, uint64_t id, hk_event *out) HK_MUST_CHECK;
/** Reads event id; HK_ENOTFOUND when absent. */
int hk__event_read(hk_txn *txn, uint64_t id, hk_event *out) HK_MUST_CHECK;
/** The time of a stored event of any version, without decoding the rest. HK_ESTORE when malformed. */
int hk__event_time(const void *p, size_t len, uint64_t *ts_ms) HK_MUST_CHECK;

/* ---- queue.c: the pending queue and its by-event index ------------------------- */

/** Queues (or requeues) d: its key is (webhook, due, event). */
int hk__queue_put(hk_txn *txn, const hk_delivery *d) HK_MUST_CHECK;
/** Reads the entry of (webhook_id, due_ms, event_id) into *d; HK_ENOTFOUND when absent. */
int hk__queue_get(hk_txn *txn, uint32_t webhook_id, uint64_t due_ms, uint64_t event_id, hk_delivery *d) HK_MUST_CHECK;
/** Deletes that entry; HK_ENOTFOUND when absent. */
int hk__queue_del(hk_txn *txn, const hk_delivery *d) HK_MUST_CHECK;
/** Deletes up to max entries of webhook_id; *more when some remain. */
int hk__queue_drop_webhook(hk_txn *txn, uint32_t webhook_id, uint32_t max, bool *more) HK_MUST_CHECK;
/** Deletes every entry of event_id; *count receives how many. */
int hk__queue_drop_event(hk_txn *txn, uint64_t event_id, uint64_t *count) HK_MUST_CHECK;
/** Whether event_id has a queue entry for webhook_id (pending, whenever due) into *queued. */
int hk__queue_has(hk_txn *txn, uint32_t webhook_id, uint64_t event_id, bool *queued) HK_MUST_CHECK;
/** Queue entries removed by the check at open, by webhook (in webhook order). */
typedef struct hk__orphans {
    struct {
        uint32_t webhook_id; /**< the webhook */
        uint64_t count;      /**< its entries removed */
    } * v;                   /**< malloc'd; free with hk__orphans_free */
    size_t n, cap;           /**< entries used and allocated */
} hk__orphans;

void hk__orphans_free(hk__orphans *o);

/**
 * The check at open, in transactions of its own (bounded, so none is long):
 * when the queue's index was never built, or another version wrote the
 * store since this one last did (foreign), every queue entry gets its index
 * entry, stale index entries go, and an entry whose event is gone (pruned by
 * a version that left queue entries behind: nothing can be delivered) is
 * removed, counted by webhook in *gone (the caller frees it). Idempotent.
 */
int hk__queue_check(hk_kv_env *kv, bool foreign, hk__orphans *gone) HK_MUST_CHECK;
int hk__queue_scan_due(hk_txn *txn, hk_due_scan *scan) HK_MUST_CHECK;
/** One webhook's entries and how many are due, walking at most max of them (0: all); out->capped when it stopped. */
int hk__queue_pending(hk_txn *txn, uint32_t webhook_id, uint64_t now_ms, uint64_t max,
                      hk_queue_summary *out) HK_MUST_CHECK;
/** The queue at a glance for metrics (see hk_store_queue_summary). */
int hk__queue_summary(hk_txn *txn, uint64_t now_ms, uint64_t max, hk_queue_summary *out) HK_MUST_CHECK;

/* ---- attempt_log.c: attempt records and their time index ---------------------- */

/** Appends a, with `disabled` as its disabled flag; its new id into *id. */
int hk__log_append(hk_txn *txn, const hk_attempt *a, bool disabled, uint64_t *id) HK_MUST_CHECK;
/** Decodes a stored record of any version (key: webhook id + log id) into *out. */
int hk__attempt_decode(const void *p, size_t len, uint32_t webhook_id, uint64_t log_id, hk_attempt *out) HK_MUST_CHECK;
int hk__log_read(hk_txn *txn, uint32_t webhook_id, uint64_t log_id, hk_attempt *out) HK_MUST_CHECK;
/** What a recovery reads of an attempt record (recover.c), without its texts. */
typedef struct hk__attempt_brief {
    uint64_t started_ms;  /**< when the attempt started */
    uint64_t event_id;    /**< its event (0: a synchronous call without one) */
    bool success;         /**< a 2xx arrived */
    bool exhausted;       /**< no retry followed */
    bool sync;            /**< a synchronous call */
    uint64_t next_due_ms; /**< when its retry was due (0: none) */
} hk__attempt_brief;
/** Reads those fields of a stored record of any version (version 1 at fixed offsets, nothing copied). */
int hk__attempt_peek(const void *p, size_t len, hk__attempt_brief *out) HK_MUST_CHECK;

/** Visits records (brief: without request and response) as hk_store_attempts_each(_brief). */
int hk__log_each(hk_txn *txn, uint32_t webhook_id, uint64_t from_id, bool newest_first, bool brief,
                 int (*fn)(const hk_attempt *a, void *arg), void *arg);
/** Deletes up to max records older than before_ms; counts into *removed, *more when older ones remain. */
int hk__log_prune(hk_txn *txn, uint64_t before_ms, uint64_t max, uint64_t *removed, bool *more) HK_MUST_CHECK;
/** Deletes up to max records of webhook_id; *more when some remain. */
int hk__log_drop_webhook(hk_txn *txn, uint32_t webhook_id, size_t max, bool *more) HK_MUST_CHECK;

/* ---- auth.c: users and keys ----------------------------------------------------- */

int hk__user_read(hk_txn *txn, uint32_t id, hk_user *out) HK_MUST_CHECK;
int hk__user_by_code(hk_txn *txn, const char *code, hk_user *out) HK_MUST_CHECK;
int hk__users_each(hk_txn *txn, int (*fn)(const hk_user *u, void *arg), void *arg);
int hk__key_read(hk_txn *txn, const uint8_t hash[32], hk_key *out) HK_MUST_CHECK;
int hk__keys_each(hk_txn *txn, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg);
int hk__apply_user_put(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_key_put(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_key_revoke(hk_txn *txn, hk_op *op) HK_MUST_CHECK;

/* ---- accounts.c: nodes and accounts -------------------------------------------- */

int hk__node_read(hk_txn *txn, uint32_t id, hk_node *out) HK_MUST_CHECK;
int hk__account_read(hk_txn *txn, uint32_t id, hk_account *out) HK_MUST_CHECK;
int hk__nodes_each(hk_txn *txn, int (*fn)(const hk_node *n, void *arg), void *arg);
int hk__accounts_each(hk_txn *txn, int (*fn)(const hk_account *a, void *arg), void *arg);
int hk__node_within(hk_txn *txn, uint32_t node, uint32_t top, bool *within) HK_MUST_CHECK;
int hk__apply_node_put(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_account_put(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_tree_import(hk_txn *txn, hk_op *op) HK_MUST_CHECK;

/* ---- apply.c: signals, outcomes, resends, retention ------------------------------ */

/**
 * Stores the state event ev of webhook id (kind NULL: nothing) with its
 * fan-out to the webhooks subscribed to `webhook{ID}.<kind>`, never to id.
 */
int hk__state_event_store(hk_txn *txn, uint64_t now_ms, uint32_t id, const hk_state_event *ev) HK_MUST_CHECK;
int hk__apply_signal(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_outcome(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_attempt(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_resend(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_queue_drop(hk_txn *txn, hk_op *op) HK_MUST_CHECK;
int hk__apply_prune(hk_txn *txn, hk_op *op) HK_MUST_CHECK;

/* ---- recover.c: recoveries after an outage ---------------------------------------- */

int hk__apply_recover(hk_txn *txn, hk_op *op) HK_MUST_CHECK;

#endif
