/*
 * store.h: the storage seam. Everything above the state layer changes state
 * only by submitting typed operations here and reads it only through the
 * typed queries below; nothing above it sees a transaction, a key or a
 * stored byte.
 *
 * Operations. An hk_op is a plain description of one change (a signal with
 * its fan-out, a delivery outcome, a webhook saved, a key revoked, a prune
 * step...). It carries every input its application needs, including the
 * time (now_ms) and any random values (EventIds), so applying it is
 * deterministic: the same op applied to the same state gives the same
 * result. That is what lets a write-ahead log replay ops after a crash and a
 * second engine (PostgreSQL) apply them on another node. Rules that must be
 * decided against the stored state at commit time (a webhook's consecutive
 * failures reaching disable_after, an Idempotency-Key seen before, an
 * extension already taken) are applied by the engine, from the op's inputs,
 * inside the commit; their results come back in the op's out fields.
 *
 * Commits. hk_store_submit queues an op; the engine applies many ops in one
 * transaction (group commit, one device sync per group, off the loop) and
 * then runs each op's done callback on the loop, with status 0 only once
 * the change is durable: a 2xx is sent from done, never before. An op that
 * fails (HK_EEXIST, HK_ELOCKED, HK_ENOTFOUND...) changes nothing and does
 * not fail the others in its group. The op's inputs must stay valid and
 * unchanged until done runs; the out fields are written by the engine and
 * read in done.
 *
 * Queries. Registry reads (webhooks, statistics, users, keys, nodes,
 * accounts, event types) are synchronous and never block: the LMDB engine
 * reads its memory map, a remote engine its in-memory copy. Bulk reads (due
 * deliveries, attempt records) visit typed records through a callback. A
 * query may be made from inside another query's callback. Any query may
 * fail with UV_EAGAIN, meaning "retry later", never "the store is broken":
 * the LMDB engine answers so when another process (the CLI) has grown the
 * map and adopting it would have to wait (for a commit's device sync, or
 * for the enclosing query of a nested one); it adopts it off the loop.
 *
 * Errors: every function returns 0 or a negative HK_E* / UV_E* code.
 */
#ifndef HK_STORE_H
#define HK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"
#include "metrics.h"
#include "model.h"

typedef struct hk_store hk_store;

/**
 * The store's format version, recorded in the store. A store recording a
 * newer one is refused at open (HK_EFORMAT, with a message naming both); an
 * older one (or one written before formats were recorded, 0) is upgraded at
 * open and then records this one. Raise it when a change of what is stored
 * would be misread by the previous version.
 */
#define HK_STORE_FORMAT 1

/* ---- opening ---------------------------------------------------------------- */

/** How to open the store. */
typedef struct hk_store_opts {
    const char *data_dir; /**< directory of the embedded engine's files */
    uint64_t map_size;    /**< initial LMDB map size in bytes; grows when full */
    uint32_t max_batch;   /**< ops per group commit at most */
    bool exclusive;       /**< a serving process: hold an exclusive lock on data_dir/lock (HK_ELOCKED when taken) */
    /**
     * With exclusive: acknowledge each group after one fdatasync of a
     * write-ahead log in data_dir/wal instead of LMDB's own two syncs
     * ([store] sync = log). Without it, a log left in data_dir/wal is
     * replayed at open and removed (sync = lmdb). Ignored without
     * exclusive: a CLI process replays a log left by a crashed server when
     * no server holds the directory, and otherwise writes as it always
     * does, recording each commit where a server's recovery will find it.
     */
    bool wal;
    uint64_t wal_segment; /**< bytes per log segment (0: 32 MiB) */
    /**
     * Cluster mode: the libpq connection string or URI of the cluster's
     * PostgreSQL ([cluster] postgres); NULL or "": the embedded engine in
     * data_dir. The other fields but max_batch are then ignored. With a
     * loop, the engine connects in the background: the process runs its
     * loop until hk_store_ready before it serves. Without one (the CLI),
     * the open waits until the registry is read (pg_timeout_ms).
     */
    const char *postgres;
    bool migrate; /**< with postgres and a loop: apply missing migrations at open ([cluster] migrate = auto) */
    uint64_t pg_timeout_ms; /**< with postgres: how long a CLI waits for the database (0: 10 s) */
    const char *node_name;  /**< with postgres: this node's name in its leases (NULL: host name and pid) */
    /**
     * With postgres: receives, as one line, why the open failed (the CLI
     * prints it as its one error line); NULL: the reason is logged.
     * Borrowed; errlen bytes.
     */
    char *err;
    size_t errlen; /**< size of err */
} hk_store_opts;

/**
 * Opens (creating when missing) the store. loop is the loop done callbacks
 * run on; NULL for a process that only uses hk_store_apply (the CLI). On
 * success *out is owned by the caller until hk_store_close. With
 * o->exclusive, a second exclusive open of the same directory (another
 * `hookd serve`) fails with HK_ELOCKED and a logged message; opens without
 * it (CLI commands) work beside it. Stale reader slots left by killed
 * processes are cleared here and on every prune op. A store in a newer
 * format (HK_STORE_FORMAT) is refused with HK_EFORMAT. In cluster mode, a
 * database whose schema is newer than this hookd's is refused with
 * HK_EFORMAT, one whose schema is missing or older (and not migrated at
 * open) with HK_ECONFLICT: `hookd migrate` brings it up to date.
 */
int hk_store_open(hk_store **out, uv_loop_t *loop, const hk_store_opts *o) HK_MUST_CHECK;

/**
 * Takes the exclusive lock of a serving process on dir/lock (an flock,
 * released when the process ends). *fd receives the lock's descriptor;
 * HK_ELOCKED when another process holds it, HK_ESTORE when the file cannot
 * be opened. hk_store_open with exclusive calls this.
 */
int hk_store_lock_dir(const char *dir, int *fd) HK_MUST_CHECK;

/** Releases a lock taken by hk_store_lock_dir (fd < 0: nothing). */
void hk_store_unlock_dir(int fd);

/**
 * Closes the store. No op may be in flight (hk_store_busy is false). Safe
 * on NULL. A cluster store with a loop closes its connections on that
 * loop: run it (uv_run) afterwards until it has no handles left.
 */
void hk_store_close(hk_store *s);

/**
 * hk_store_close, then closed(arg) (may be NULL) runs once the store's
 * handles are closed: within the call for NULL, the embedded engine and the
 * CLI's cluster store; for a server's cluster store on the loop, once its
 * connections have closed (run the loop, UV_RUN_ONCE, until then: other
 * handles, such as connections abandoned at shutdown, may keep it alive).
 */
void hk_store_close_then(hk_store *s, void (*closed)(void *arg), void *arg);

/**
 * True once the store answers its queries: at once for the embedded
 * engine; in cluster mode once the registry has been read from the
 * database (a server runs its loop until then, before it listens).
 */
bool hk_store_ready(hk_store *s);

/**
 * True while the store can take writes as far as it knows: always for the
 * embedded engine (its failures show in last_commit_status); in cluster
 * mode while a connection to the database is up. /readyz follows it.
 */
bool hk_store_available(hk_store *s);

/** True in cluster mode (due deliveries are claimed: hk_store_claim_due; the bulk reads are asynchronous). */
bool hk_store_is_cluster(const hk_store *s);

/** This node's name in the cluster (its leases, cluster_members); "" for the embedded engine. Borrowed. */
const char *hk_store_node_name(const hk_store *s);

/** True while ops are queued or being committed. */
bool hk_store_busy(const hk_store *s);

/**
 * Counters since open: commits and ops committed; map size and bytes used;
 * failed commits; the group commit's histograms.
 */
typedef struct hk_store_counters {
    uint64_t commits;        /**< group commits */
    uint64_t ops;            /**< ops committed */
    uint64_t map_size;       /**< bytes mapped */
    uint64_t used;           /**< bytes in use (cluster mode: the database's size, read every 10 s) */
    uint64_t failed_commits; /**< group commits that failed (full disk or store, I/O error...) */
    int last_commit_status;  /**< the last group commit, whoever submitted its ops: 0 (or none yet), or the
                                  error every op of it got; readiness follows it */
    hk_histogram batch_ops;  /**< ops per group commit (hk_buckets_batch) */
    hk_histogram commit_us;  /**< a group commit's latency in us, from its start to durable (hk_buckets_commit_us) */
} hk_store_counters;

void hk_store_get_counters(hk_store *s, hk_store_counters *out);

/**
 * Writes a hot, compacted copy of the store to the new directory path,
 * usable as a data directory (its data.mdb): a consistent snapshot of the
 * last commit, taken in one read transaction, so a server running on the
 * store goes on meanwhile. The copy is built under "path.partial-XXXXXX"
 * beside path, synced and renamed to path, so a crash never leaves a part
 * of a backup under path. HK_EEXIST when path exists (nothing is
 * overwritten), HK_EFULL when the disk is full, HK_ESTORE otherwise
 * (logged). It blocks for as long as the copy takes: not for the loop.
 */
int hk_store_backup(hk_store *s, const char *path) HK_MUST_CHECK;

/* ---- operations ----------------------------------------------------------------- */

enum hk_op_type {
    HK_OP_SIGNAL = 1,     /**< an event accepted, with its fan-out and Idempotency-Key */
    HK_OP_OUTCOME,        /**< a queued delivery's attempt finished */
    HK_OP_ATTEMPT,        /**< a synchronous call's attempt: counted and logged, nothing queued */
    HK_OP_RESEND,         /**< queue an event for a webhook again */
    HK_OP_WEBHOOK_PUT,    /**< create or replace a webhook */
    HK_OP_WEBHOOK_DELETE, /**< delete a webhook, its statistics and indexes */
    HK_OP_WEBHOOK_LOCK,   /**< set or clear the operator lock */
    HK_OP_QUEUE_DROP,     /**< remove a bounded run of a deleted webhook's queue entries */
    HK_OP_USER_PUT,       /**< create or replace a user */
    HK_OP_KEY_PUT,        /**< store a new API key */
    HK_OP_KEY_REVOKE,     /**< revoke a key by its short id or its hash */
    HK_OP_NODE_PUT,       /**< create or replace a node */
    HK_OP_ACCOUNT_PUT,    /**< create or replace an account */
    HK_OP_PRUNE,          /**< one bounded step of retention: attempt records, events, Idempotency-Keys */
    HK_OP_TREE_IMPORT,    /**< nodes or accounts from CSV text, all or nothing */
    HK_OP_RECOVER         /**< one bounded step of a recovery: failed deliveries of a time window queued again */
};

/**
 * A state event that an op stores in its own commit: `webhook{ID}.<kind>`
 * delivered with Event "webhook.<kind>", PrimaryKey webhook_id and Data
 * {"WebhookId": ID, "State": kind, "Reason": reason} to the Active webhooks
 * subscribed to that exact name, never to webhook_id itself.
 */
typedef struct hk_state_event {
    const char *kind;   /**< "errors", "stopped" or "started"; NULL = none */
    const char *reason; /**< Data.Reason; NULL leaves the member out */
    uint8_t uuid[16];   /**< its EventId, chosen by the submitter */
} hk_state_event;

typedef struct hk_op_signal {
    /* in */
    const char *name;        /**< event name */
    int64_t primary_key;     /**< PrimaryKey */
    const char *data;        /**< Data as compact JSON object text */
    size_t data_len;         /**< bytes in data */
    const char *changes;     /**< JSON array text of Data's keys */
    size_t changes_len;      /**< bytes in changes */
    uint32_t user_id;        /**< the signalling user */
    uint8_t uuid[16];        /**< EventId, chosen by the submitter */
    const char *idem_key;    /**< Idempotency-Key or NULL */
    uint64_t idem_window_ms; /**< how long a key is remembered */
    /* out */
    uint64_t event_id;  /**< the stored event (or, when duplicate, the first one) */
    bool duplicate;     /**< the key was seen within the window: nothing stored */
    uint32_t *webhooks; /**< webhooks a delivery was queued for (malloc'd; freed by hk_op_free) */
    size_t nwebhooks;   /**< entries in webhooks */
} hk_op_signal;

typedef struct hk_op_outcome {
    /* in */
    hk_delivery delivery;      /**< the queue entry as loaded (its due time is part of its key) */
    const hk_attempt *rec;     /**< the attempt record to log (id assigned by the engine); its webhook_id must be the
                                    delivery's (HK_EINVAL) */
    bool is410;                /**< the receiver answered 410 Gone: disable now */
    uint64_t next_due_ms;      /**< failure with a retry: when it is due; 0 when none follows */
    uint32_t disable_after;    /**< consecutive failures that disable an unlocked webhook */
    hk_state_event on_disable; /**< stored when this outcome disables the webhook (kind "errors") */
    /* out */
    bool vanished;   /**< the entry or its webhook is gone: nothing was recorded */
    bool disabled;   /**< this outcome set the webhook to TooManyErrors */
    uint64_t log_id; /**< the attempt record's id */
} hk_op_outcome;

typedef struct hk_op_attempt {
    /* in */
    const hk_attempt *rec;     /**< the attempt record to log */
    bool is410;                /**< the receiver answered 410 Gone */
    uint32_t disable_after;    /**< as in hk_op_outcome */
    hk_state_event on_disable; /**< as in hk_op_outcome */
    /* out */
    bool vanished;   /**< the webhook is gone: nothing was recorded */
    bool disabled;   /**< this attempt set the webhook to TooManyErrors */
    uint64_t log_id; /**< the attempt record's id */
} hk_op_attempt;

typedef struct hk_op_resend {
    uint32_t webhook_id; /**< the webhook (HK_ENOTFOUND when gone) */
    uint64_t event_id;   /**< the event (HK_ENOTFOUND when pruned) */
} hk_op_resend;

typedef struct hk_op_webhook_put {
    /* in */
    const hk_webhook *webhook;    /**< the complete new record; id 0 creates one; NULL: HK_EINVAL */
    bool by_client;               /**< HK_ELOCKED when the stored webhook is locked; the stored lock is kept */
    uint64_t unmodified_since_ms; /**< non-zero: HK_ECONFLICT when the stored webhook was updated in a later second */
    hk_state_event event;         /**< a state event stored in the same commit (kind NULL: none) */
    /* out */
    uint32_t id; /**< the webhook's id (assigned on create) */
} hk_op_webhook_put;

/** Deletes the webhook, its statistics and indexes and a bounded number of its attempt records. */
typedef struct hk_op_webhook_delete {
    uint32_t id;                  /**< HK_ENOTFOUND when absent */
    bool by_client;               /**< HK_ELOCKED when locked */
    uint64_t unmodified_since_ms; /**< as in hk_op_webhook_put */
} hk_op_webhook_delete;

typedef struct hk_op_webhook_lock {
    uint32_t id; /**< HK_ENOTFOUND when absent */
    bool locked; /**< the new lock */
} hk_op_webhook_lock;

typedef struct hk_op_queue_drop {
    uint32_t webhook_id; /**< a deleted webhook */
    uint32_t max;        /**< entries removed at most */
    bool more;           /**< out: entries remain */
} hk_op_queue_drop;

typedef struct hk_op_user_put {
    hk_user user;      /**< id 0 creates (id assigned); HK_EEXIST when the code is taken by another user */
    const hk_key *key; /**< NULL, or a key stored for the user in the same commit (its user_id is ignored) */
    bool only_first;   /**< create only when the store has no user yet (the first admin) */
    uint32_t id;       /**< out: the user's id */
    bool skipped;      /**< out: only_first and a user existed: nothing was stored */
} hk_op_user_put;

typedef struct hk_op_key_put {
    hk_key key; /**< HK_ENOTFOUND when the user does not exist, HK_EEXIST when the hash does */
} hk_op_key_put;

typedef struct hk_op_key_revoke {
    char short_id[9]; /**< revoke the key with this short id (HK_ECONFLICT when several keys have it), or, when "", */
    uint8_t hash[32]; /**< the key with this hash; HK_ENOTFOUND when none */
    char err[128];    /**< out: why, with HK_ECONFLICT */
} hk_op_key_revoke;

typedef struct hk_op_node_put {
    hk_node node;  /**< HK_EINVAL when the id is 0, the name bad or the parent chain missing, cyclic or too deep */
    char err[256]; /**< out: why, with HK_EINVAL */
} hk_op_node_put;

typedef struct hk_op_account_put {
    hk_account account; /**< HK_EINVAL when the id is 0, the name bad or its node does not exist */
    char err[256];      /**< out: why, with HK_EINVAL */
} hk_op_account_put;

/**
 * CSV import (RFC 4180; blank lines skipped; a first line whose first field
 * is "id" is a header): rows are stored first and checked after, so a
 * parent may come later in the file. HK_EINVAL with "line N: reason" in err
 * stores nothing.
 */
typedef struct hk_op_tree_import {
    bool accounts;    /**< false: nodes "id,parent,name"; true: accounts "id,node,name" */
    const char *text; /**< the CSV text */
    size_t len;       /**< bytes in text */
    size_t count;     /**< out: rows stored */
    char err[256];    /**< out: why, with HK_EINVAL */
} hk_op_tree_import;

typedef struct hk_op_prune {
    /* in */
    uint64_t attempts_before_ms;    /**< attempt records older than this go */
    uint64_t events_before_ms;      /**< events older than this go, with their queue entries (in arrival order;
                                         one dated after now_ms is kept and stepped over, one that cannot be
                                         read goes) */
    uint64_t idempotency_before_ms; /**< Idempotency-Keys recorded before this go */
    uint32_t max;                   /**< records removed in the step, counting queue entries of pruned events; an event
                                         and its entries are never split, so the last one may run past max */
    /* out */
    bool more;                   /**< out: the step stopped at max */
    uint64_t removed;            /**< out: records removed */
    uint64_t dropped_deliveries; /**< out: queue entries removed with their expired events */
} hk_op_prune;

/** Attempt records (and notes) a recovery step handles at most when its max is 0. */
#define HK_RECOVER_STEP_MAX 1000

/** How long a recovery may take from its first step to its last; a later step is refused (UV_ETIMEDOUT). */
#define HK_RECOVER_RUN_MAX_MS (24ull * 3600 * 1000)

/**
 * One step of a recovery after an outage: queues again, once each, every
 * event whose delivery to webhook_id ended failed within the window
 * [since_ms, until_ms]. That is: the last attempt record of the (webhook,
 * event) that started in the window is a failure after which no retry
 * was due (retries exhausted, or a 410); no attempt of it succeeded after
 * that record, in the window or after it; the event is still stored; and
 * the delivery is not queued any more (one waiting for its retry, or
 * parked while its webhook is Stopped or TooManyErrors, is still going to
 * be delivered and is left alone). Synchronous calls are never recovered.
 *
 * A recovery is a run of steps with the same inputs but from_log_id, each
 * its own commit, so ingest never waits behind more than one step. The
 * steps walk the webhook's attempt records in log order, from its oldest
 * to its newest (a success after the window counts), at most max per
 * step (records that started before the window are only peeked at, and
 * 16 of them count as one), and note the candidates in the store under
 * (run_ms, run, webhook); once a step has reached the newest record, it queues the
 * noted events (as many as its budget leaves), due at now_ms, with a fresh
 * attempt count: each carries its event and webhook, so the same
 * webhook-id as the original deliveries. The submitter passes next_log_id
 * back as from_log_id until done. A webhook that is not Active holds what
 * is queued until it is Active again, as any queued delivery.
 *
 * Notes of a recovery that never finished (its process stopped) are
 * removed by later steps of any recovery once HK_RECOVER_RUN_MAX_MS has
 * passed; nothing of them is queued.
 */
typedef struct hk_op_recover {
    /* in */
    uint32_t webhook_id;  /**< the webhook: HK_ENOTFOUND at the first step (from_log_id 0) when it does not exist */
    uint64_t since_ms;    /**< the window's start: attempts started at or after it */
    uint64_t until_ms;    /**< the window's end: attempts started at or before it (HK_EINVAL when before since_ms) */
    uint64_t run_ms;      /**< when the recovery began (its first step's now_ms); UV_ETIMEDOUT once
                               HK_RECOVER_RUN_MAX_MS has passed since */
    uint32_t run;         /**< a number the submitter chose for the recovery, so that two at once keep apart */
    uint64_t from_log_id; /**< where the walk goes on: 0 at the first step, then the previous step's next_log_id */
    uint32_t max;         /**< attempt records and notes handled in the step at most (0: HK_RECOVER_STEP_MAX) */
    /* out */
    uint64_t next_log_id; /**< the resume position: the next step's from_log_id */
    uint64_t queued;      /**< deliveries this step queued */
    bool done;            /**< the recovery is complete: no step follows */
    bool gone;            /**< the webhook was deleted since the first step: its notes were dropped, nothing queued */
} hk_op_recover;

/** One operation. The union member is the one type names. */
typedef struct hk_op {
    enum hk_op_type type;
    uint64_t now_ms; /**< the time the op is applied as: decided by the submitter */
    union {
        hk_op_signal signal;
        hk_op_outcome outcome;
        hk_op_attempt attempt;
        hk_op_resend resend;
        hk_op_webhook_put webhook_put;
        hk_op_webhook_delete webhook_delete;
        hk_op_webhook_lock webhook_lock;
        hk_op_queue_drop queue_drop;
        hk_op_user_put user_put;
        hk_op_key_put key_put;
        hk_op_key_revoke key_revoke;
        hk_op_node_put node_put;
        hk_op_account_put account_put;
        hk_op_prune prune;
        hk_op_tree_import tree_import;
        hk_op_recover recover;
    } u;
} hk_op;

/** Frees what the engine allocated in op's out fields (signal.webhooks). */
void hk_op_free_out(hk_op *op);

/**
 * Serialises op's inputs (for a write-ahead log): *out is malloc'd, the
 * caller frees it; HK_EINVAL for an op that could never apply (an unknown
 * type, a webhook put without its webhook). hk_op_decode reads them back
 * into op (HK_EINVAL when buf is malformed or holds such an op), allocating
 * what op points to: free that with hk_op_decode_free (buf need not
 * outlive op).
 */
int hk_op_encode(const hk_op *op, uint8_t **out, size_t *len) HK_MUST_CHECK;
int hk_op_decode(hk_op *op, const uint8_t *buf, size_t len) HK_MUST_CHECK;

/** Frees what hk_op_decode allocated for op's inputs (and its out fields); op is zeroed. */
void hk_op_decode_free(hk_op *op);

/** A submitted op. Embed it in the caller's struct; recover that with hk_container_of. */
typedef struct hk_commit hk_commit;
struct hk_commit {
    hk_op op; /**< the change */
    /** Runs on the loop once the op is durable (status 0) or failed (a negative code). */
    void (*done)(hk_commit *c, int status);
    /** 0, or HK_COMMIT_LAZY: done may run once the op is applied, before it is durable. */
    unsigned flags;
    /* Internal to the store. */
    int status;
    hk_commit *next;
    struct hk_store_port *port;                  /* submitted on a port: done runs on its loop */
    void (*port_done)(hk_commit *c, int status); /* done, while the store's loop has it */
};

/**
 * For an op whose loss in a crash only means it is done again (a delivery's
 * success: the delivery is made again, at least once as promised): on the
 * embedded engine with its write-ahead log, a group of only such ops is
 * appended to the log without a sync of its own and becomes durable with
 * the next synced group, the next checkpoint or hk_store_sync_lazy. Other
 * engines and sync = lmdb make it durable as any other op.
 */
#define HK_COMMIT_LAZY 1u

/**
 * On the store's loop (elsewhere nothing): lazy ops already done become
 * durable soon (one log sync in turn with the group commit), if any are
 * waiting. For a periodic timer, to bound how long one stays undurable
 * when no other write comes.
 */
void hk_store_sync_lazy(hk_store *s);

/**
 * Queues c; c->done runs on the loop later, never from inside this call.
 * On a thread with a port (hk_store_port_open), c goes to the store's loop
 * and c->done runs on the port's loop.
 */
void hk_store_submit(hk_store *s, hk_commit *c);

/* ---- several loops over one store (workers) ---------------------------------------- */

/**
 * A worker's way into a store opened on another thread's loop: ops
 * submitted on its thread join the store's group commit (handed to the
 * store's loop through a queue guarded by a mutex, woken by a uv_async_t)
 * and their done callbacks run on the port's loop. The queries need no
 * port: every thread reads in its own read transactions; a port also marks
 * its thread as a loop thread for them (it never waits for a lock held
 * across a commit's sync).
 */
typedef struct hk_store_port hk_store_port;

/**
 * Lets ports be opened: call on the store's loop thread. Ops of ports are
 * taken into the group commit on that loop from then on (its handle does
 * not keep the loop alive by itself: hk_store_busy says when ops wait).
 * HK_EINVAL for a store opened without a loop.
 */
int hk_store_share(hk_store *s) HK_MUST_CHECK;

/**
 * Ends sharing, once every port is closed: closes the handle (run the loop
 * after it to free it). An op still submitted on a port later gets done
 * with HK_ESHUTDOWN. Safe when not shared.
 */
void hk_store_unshare(hk_store *s);

/**
 * Opens a port for the calling thread, which runs loop (one port per
 * thread; after hk_store_share). HK_EINVAL when not shared or the thread
 * has one. *out is owned by the caller until hk_store_port_close. Its
 * handle keeps loop alive while an op submitted through it is in flight.
 */
int hk_store_port_open(hk_store *s, uv_loop_t *loop, hk_store_port **out) HK_MUST_CHECK;

/** True while an op submitted through p has not had its done run; false on NULL. */
bool hk_store_port_busy(const hk_store_port *p);

/**
 * Closes p on its thread once it is not busy (hk_store_port_busy); it is
 * freed when its handle has closed (run its loop after). Safe on NULL.
 */
void hk_store_port_close(hk_store_port *p);

/**
 * Applies op in its own transaction on the calling thread and commits it
 * (CLI, start-up). UV_EAGAIN (nothing applied) as for the queries below.
 * In cluster mode it waits for the database: a CLI store on its private
 * loop, a server's store by running the server's loop, so a server calls
 * it only before its loop runs (start-up).
 */
int hk_store_apply(hk_store *s, hk_op *op) HK_MUST_CHECK;

/* ---- registry queries (synchronous, never blocking) ------------------------------- */

/** Webhook id into *out (which the caller frees with hk_webhook_free). HK_ENOTFOUND when absent. */
int hk_store_webhook_get(hk_store *s, uint32_t id, hk_webhook *out) HK_MUST_CHECK;

/**
 * A webhook's state and lock without decoding the whole record (cheap enough
 * for every webhook of a queue walk). HK_ENOTFOUND when absent.
 */
int hk_store_webhook_state(hk_store *s, uint32_t id, enum hk_webhook_state *state, bool *locked) HK_MUST_CHECK;

/** A webhook's statistics (zeros when it has none yet, or when they cannot be read: logged). */
int hk_store_webhook_stats(hk_store *s, uint32_t id, hk_webhook_stats *out) HK_MUST_CHECK;

/** The webhook whose extension is exactly ext. HK_ENOTFOUND when none. */
int hk_store_webhook_by_extension(hk_store *s, const char *ext, uint32_t *id) HK_MUST_CHECK;

/** Every extension in use (byte order) with its webhook; fn as in hk_store_webhooks_each. ext is borrowed. */
int hk_store_extensions_each(hk_store *s, int (*fn)(const char *ext, uint32_t id, void *arg), void *arg);

/**
 * Calls fn for every webhook in id order, from the first id >= from_id,
 * until fn returns non-zero (returned). w and st are borrowed for the call.
 */
int hk_store_webhooks_each(hk_store *s, uint32_t from_id,
                           int (*fn)(const hk_webhook *w, const hk_webhook_stats *st, void *arg), void *arg);

/** Event types (names ever subscribed or signalled) in id order; fn as above. */
int hk_store_event_types_each(hk_store *s, int (*fn)(uint32_t id, const char *name, void *arg), void *arg);

/** Looks an event type up by name. HK_ENOTFOUND when unknown. */
int hk_store_event_type_id(hk_store *s, const char *name, uint32_t *id) HK_MUST_CHECK;

int hk_store_user_get(hk_store *s, uint32_t id, hk_user *out) HK_MUST_CHECK;
/** By login code, case-insensitively. */
int hk_store_user_by_code(hk_store *s, const char *code, hk_user *out) HK_MUST_CHECK;
/** The key with this SHA-256 and its user. HK_ENOTFOUND when unknown (revoked keys are found: check key->revoked). */
int hk_store_key_get(hk_store *s, const uint8_t hash[32], hk_key *key, hk_user *user) HK_MUST_CHECK;
/** Users in id order; fn as above. */
int hk_store_users_each(hk_store *s, int (*fn)(const hk_user *u, void *arg), void *arg);
/** Keys of user_id (0: every key); fn as above. */
int hk_store_keys_each(hk_store *s, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg);
/** Number of users. */
int hk_store_user_count(hk_store *s, size_t *n) HK_MUST_CHECK;

int hk_store_node_get(hk_store *s, uint32_t id, hk_node *out) HK_MUST_CHECK;
int hk_store_account_get(hk_store *s, uint32_t id, hk_account *out) HK_MUST_CHECK;
/** Nodes and accounts in id order; fn as above. */
int hk_store_nodes_each(hk_store *s, int (*fn)(const hk_node *n, void *arg), void *arg);
int hk_store_accounts_each(hk_store *s, int (*fn)(const hk_account *a, void *arg), void *arg);
/** True when node is top or below it (0 = no limit: always true). *within is set; errors are returned. */
int hk_store_node_within(hk_store *s, uint32_t node, uint32_t top, bool *within) HK_MUST_CHECK;

/* ---- bulk queries ---------------------------------------------------------------------- */

/*
 * The synchronous bulk queries below are the embedded engine's. In cluster
 * mode a CLI store answers them by waiting on its private loop; a server's
 * store answers UV_ENOTSUP: a server uses the asynchronous forms (after
 * them) and, for due deliveries, claims.
 */

/** An event by id into *out (the caller frees it with hk_event_free). HK_ENOTFOUND when pruned. */
int hk_store_event_get(hk_store *s, uint64_t id, hk_event *out) HK_MUST_CHECK;

/**
 * One pass over the pending queue in (webhook, due, event) order.
 * For each webhook with entries, webhook() says how many of its due
 * entries the caller wants (0 skips it: parked, gone, or its share is
 * full); then delivery() is called for each due entry (due <= now_ms) with
 * its event, up to that many, until it returns false (which ends the
 * whole pass). Entries whose event cannot be read are skipped with a
 * warning; entries whose event is gone are skipped and counted in gone.
 * d and ev are borrowed for the call. The scan only reads.
 *
 * Queue entries whose event is gone: this version removes an event's
 * entries in the commit that prunes it, but an older one (or the old
 * engine) left them behind. Opening the store after another version wrote
 * it drops them, in bounded commits, with one warning per webhook naming
 * the count, and brings the queue's index by event up to date: nothing
 * for the caller to do.
 */
typedef struct hk_due_scan {
    uint64_t now_ms; /**< in: what counts as due */
    uint32_t (*webhook)(uint32_t webhook_id, void *arg);
    /** Optional (NULL: none): true skips a due entry before its event is read, and it does not count
        towards webhook()'s number (the caller holds that delivery already). d is borrowed for the call. */
    bool (*held)(const hk_delivery *d, void *arg);
    bool (*delivery)(const hk_delivery *d, const hk_event *ev, void *arg);
    void *arg;
    uint64_t next_due_ms; /**< out: the earliest due time > now_ms seen (UINT64_MAX when none) */
    bool stopped;         /**< out: delivery() ended the pass early */
    uint64_t gone;        /**< out: due entries skipped because their event is gone (see above) */
} hk_due_scan;

int hk_store_scan_due(hk_store *s, hk_due_scan *scan) HK_MUST_CHECK;

/** Queue entries of webhook id: how many, and how many are due at now_ms (every entry walked: not on a loop). */
int hk_store_pending(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t *pending, uint64_t *due) HK_MUST_CHECK;

/** The pending queue at a glance, for metrics (hk_store_queue_summary). */
typedef struct hk_queue_summary {
    uint64_t pending;   /**< every queue entry: exact, from the table's entry count */
    uint64_t due;       /**< entries of Active webhooks due at now_ms (a lower bound when capped) */
    uint64_t parked;    /**< entries of webhooks not Active, or deleted and being dropped (a lower bound when capped) */
    bool capped;        /**< the walk stopped after max entries */
    uint64_t oldest_ms; /**< when the oldest event with a queue entry was accepted (parked ones count); 0: none */
} hk_queue_summary;

/**
 * As hk_store_pending into out->pending and out->due, the embedded engine
 * walking at most max entries (0: all): out->capped when it stopped there,
 * and then both are lower bounds. The cluster engine counts them all (in
 * the database).
 */
int hk_store_pending_max(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t max,
                         hk_queue_summary *out) HK_MUST_CHECK;

/**
 * Summarises the pending queue for metrics. pending is the queue table's
 * entry count and oldest_ms comes from the first entries of the queue's
 * index by event: neither walks the queue. due and parked come from a
 * walk that visits only the entries they count, webhook by webhook (an
 * Active webhook's entries that are not due yet are stepped over with one
 * seek), and stops after max entries (capped set).
 */
int hk_store_queue_summary(hk_store *s, uint64_t now_ms, uint64_t max, hk_queue_summary *out) HK_MUST_CHECK;

/** Webhooks by state, indexed by enum hk_webhook_state (a walk of the webhook table without decoding records). */
int hk_store_webhook_states(hk_store *s, uint64_t counts[3]) HK_MUST_CHECK;

/**
 * Attempt records of webhook_id, newest first when newest_first, starting
 * at log id from_id (0: at the newest or oldest). fn returns non-zero to
 * stop (returned). a is borrowed for the call.
 */
int hk_store_attempts_each(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first,
                           int (*fn)(const hk_attempt *a, void *arg), void *arg);

/**
 * Like hk_store_attempts_each, but each record's request and response are
 * left out (NULL, length 0): for listings, which show neither, at a
 * fraction of the cost of copying them.
 */
int hk_store_attempts_each_brief(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first,
                                 int (*fn)(const hk_attempt *a, void *arg), void *arg);

/** One attempt record into *out (freed with hk_attempt_free). HK_ENOTFOUND when absent or pruned. */
int hk_store_attempt_get(hk_store *s, uint32_t webhook_id, uint64_t log_id, hk_attempt *out) HK_MUST_CHECK;

/* ---- asynchronous bulk queries ------------------------------------------------------------------- */

/*
 * The same reads with done instead of a return: the embedded engine calls
 * done at once, from inside the call; in cluster mode it runs on the loop
 * once the database has answered. A request is the caller's (embed it);
 * its in fields stay unchanged until done.
 */

typedef struct hk_store_attempts_req hk_store_attempts_req;

/** Attempt records of one webhook, as hk_store_attempts_each visits them (or, exact, hk_store_attempt_get). */
struct hk_store_attempts_req {
    /* in */
    uint32_t webhook_id; /**< the webhook */
    uint64_t from_id;    /**< start at this log id, included (0: at the newest or the oldest) */
    bool newest_first;   /**< newest (highest id) first */
    bool brief;          /**< leave request and response out (NULL, length 0) */
    bool exact;          /**< only the record from_id: none found is HK_ENOTFOUND */
    uint32_t max;        /**< records at most (0: 1) */
    /** 0 with items (perhaps none), HK_ENOTFOUND (exact, none), or the failure. */
    void (*done)(hk_store_attempts_req *r, int status);
    void *arg; /**< the caller's */
    /* out, valid in done until hk_store_attempts_req_free */
    hk_attempt *items; /**< the records in the order asked (owned by the request) */
    size_t nitems;     /**< entries in items */
};

/** Reads as r says. */
void hk_store_attempts_read(hk_store *s, hk_store_attempts_req *r);
/** Frees r's items; safe to call twice. */
void hk_store_attempts_req_free(hk_store_attempts_req *r);

typedef struct hk_store_event_req hk_store_event_req;

/** One event by id, as hk_store_event_get. */
struct hk_store_event_req {
    uint64_t id;                                     /**< in: the event */
    void (*done)(hk_store_event_req *r, int status); /**< 0, HK_ENOTFOUND (pruned), or the failure */
    void *arg;                                       /**< the caller's */
    hk_event event; /**< out, with status 0: the event (the caller frees it with hk_event_free) */
};

/** Reads as r says. */
void hk_store_event_read(hk_store *s, hk_store_event_req *r);

typedef struct hk_store_queue_req hk_store_queue_req;

/** The queue's summary (hk_store_queue_summary) or, with webhook_id, one webhook's entries (hk_store_pending). */
struct hk_store_queue_req {
    uint64_t now_ms;     /**< in: what counts as due */
    uint32_t webhook_id; /**< in: 0: the whole queue; else this webhook's entries */
    uint64_t max; /**< in: the embedded engine's walk, as hk_store_queue_summary (one webhook: hk_store_pending_max) */
    void (*done)(hk_store_queue_req *r, int status); /**< 0 with sum, or the failure */
    void *arg;                                       /**< the caller's */
    hk_queue_summary sum; /**< out: the summary; for one webhook, pending and due (its entries) */
};

/** Reads as r says. */
void hk_store_queue_read(hk_store *s, hk_store_queue_req *r);

/* ---- cluster mode: claims and shared decisions ---------------------------------------------------- */

/** One claimed delivery with its event. */
typedef struct hk_claimed {
    hk_delivery delivery; /**< the queue entry as stored (its key is what its outcome names) */
    hk_event event;       /**< its event (owned by the claim) */
} hk_claimed;

typedef struct hk_store_claim hk_store_claim;

/**
 * Due deliveries of Active webhooks claimed with a lease, in due order:
 * they are this node's until now_ms + lease_ms (no other node claims
 * them), then anybody's again. An outcome ends a claim; hk_store_release
 * gives claims back early. Cluster mode only (UV_ENOTSUP otherwise).
 */
struct hk_store_claim {
    /* in */
    uint64_t now_ms;   /**< what counts as due */
    uint64_t lease_ms; /**< the lease */
    uint32_t max;      /**< deliveries at most (0: 1) */
    /** Webhooks whose deliveries are not claimed (say, those whose origins are saturated); borrowed until done
        runs; NULL with nskip 0 */
    const uint32_t *skip;
    size_t nskip; /**< entries in skip */
    /** On the loop: 0 with items (perhaps none), or the failure (nothing claimed, or leases that simply end). */
    void (*done)(hk_store_claim *c, int status);
    void *arg; /**< the caller's */
    /* out, valid in done until hk_store_claim_free */
    hk_claimed *items; /**< owned by the claim */
    size_t nitems;     /**< entries in items */
};

/** Claims as c says; c->done runs on the loop later, never from inside this call. */
void hk_store_claim_due(hk_store *s, hk_store_claim *c);
/** Frees a claim's items; safe to call twice. */
void hk_store_claim_free(hk_store_claim *c);

/**
 * Gives back this node's claims of the n deliveries ds (copied: the
 * caller's array may go at once), or, with n 0, every claim of this node
 * (at a stop). done (may be NULL) runs on the loop with the status and
 * arg. Nothing happens for the embedded engine (done runs at once).
 */
void hk_store_release(hk_store *s, const hk_delivery *ds, size_t n, void (*done)(int status, void *arg), void *arg);

/**
 * Calls fn(arg) on the loop whenever a commit of any node has queued
 * deliveries (and after a lost notification connection is back), until it
 * is called again (fn NULL: no listener). Cluster mode only: 0, or
 * UV_ENOTSUP for the embedded engine.
 */
int hk_store_on_queue(hk_store *s, void (*fn)(void *arg), void *arg) HK_MUST_CHECK;

/**
 * Whether this node sends a failure mail about webhook_id now, decided for
 * the whole cluster (one mail per webhook per min_interval_ms): done runs
 * with send true or false (the embedded engine: at once, true).
 */
void hk_store_mail_gate(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t min_interval_ms,
                        void (*done)(bool send, void *arg), void *arg);

/** Records this node's sign of life (cluster_members); nothing for the embedded engine. Failures are logged. */
void hk_store_member_seen(hk_store *s, uint64_t started_ms, uint64_t now_ms);

#endif
