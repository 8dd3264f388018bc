/*
 * kv.h: hookd's state in one LMDB environment, for the state layer (store.h
 * is what the layers above use). No other module calls mdb_* directly;
 * they use the helpers here.
 *
 * Reads run on the caller's thread (an event loop: the environment's own
 * or a worker's) in short read transactions, each thread renewing a cached
 * one of its own. Writes are submitted as hk_write requests and applied in
 * groups on the libuv threadpool: many requests, one transaction, one fsync
 * (of the write-ahead log when there is one, see commit.c). A request's
 * done callback runs on the loop only after the commit that holds its
 * change has returned, so a 2xx sent from it is always durable.
 */
#ifndef HK_KV_H
#define HK_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"
#include "metrics.h"

/** The named databases. Keys holding integers are big-endian so they sort numerically. */
enum hk_db {
    HK_DB_META,             /**< sequences and settings: name -> value */
    HK_DB_USERS,            /**< user id (u32) -> user record (auth.c) */
    HK_DB_USER_CODES,       /**< lower-cased user code -> user id (u32) */
    HK_DB_KEYS,             /**< SHA-256 of an API key (32 bytes) -> key record */
    HK_DB_WEBHOOKS,         /**< webhook id (u32) -> webhook record (webhook.c) */
    HK_DB_EXTENSIONS,       /**< webhook extension -> webhook id (u32) */
    HK_DB_EVENT_TYPES,      /**< event type id (u32) -> name */
    HK_DB_EVENT_NAMES,      /**< event name -> event type id (u32) */
    HK_DB_SUBSCRIPTIONS,    /**< event name -> webhook id (u32), sorted duplicates */
    HK_DB_EVENTS,           /**< event id (u64) -> stored event */
    HK_DB_QUEUE,            /**< webhook id (u32) + due ms (u64) + event id (u64) -> queue entry: the pending queue */
    HK_DB_DELIVERIES,       /**< unused (kept so that old environments open unchanged) */
    HK_DB_IDEMPOTENCY,      /**< user id + Idempotency-Key -> first answer */
    HK_DB_IDEMPOTENCY_TIME, /**< time (u64 ms) + user id + Idempotency-Key -> nothing: pruning order */
    HK_DB_LOG,              /**< webhook id (u32) + log id (u64) -> attempt record */
    HK_DB_LOG_TIME,         /**< time (u64 ms) + webhook id + log id -> nothing: pruning order */
    HK_DB_NODES,            /**< node id (u32) -> node record */
    HK_DB_ACCOUNTS,         /**< account id (u32) -> account record */
    HK_DB_STATS,            /**< webhook id (u32) -> delivery statistics */
    HK_DB_QUEUE_EVENTS,     /**< event id (u64) + webhook id (u32) + due ms (u64) -> nothing: queue entries by event */
    HK_DB__COUNT
};

typedef struct hk_kv_env hk_kv_env;
typedef struct hk_txn hk_txn;
typedef struct hk_cursor hk_cursor;

/** A view of bytes inside the store: valid until the transaction that produced it ends. */
typedef struct hk_val {
    const void *data; /**< points into the memory map; never write through it */
    size_t len;       /**< length in bytes */
} hk_val;

/** A write request. Embed it in the caller's own struct and recover that with hk_container_of. */
typedef struct hk_write hk_write;
struct hk_write {
    /**
     * Applies the change inside the batch's transaction, on a threadpool
     * thread: it may touch only the txn and its own request. It may run more
     * than once (the batch is retried after the map grows), so it must
     * overwrite, not accumulate, what it records in its request. Returns 0 or
     * a negative error that becomes the request's status.
     */
    int (*apply)(hk_txn *txn, hk_write *w);
    /** Called on the loop thread after the commit (or the failure); status is 0 or an error. */
    void (*done)(hk_write *w, int status);
    /**
     * HK_WRITE_ISOLATED: a failing apply undoes only its own writes (a
     * nested transaction). HK_WRITE_LAZY: under a log, done may run before
     * the write is durable (see hk_kv_sync_lazy).
     */
    unsigned flags;
    /**
     * Optional: the write's record for the write-ahead log (sync = log),
     * made on the threadpool before apply runs; *out is malloc'd and freed
     * by the store. An error fails the write without applying it. NULL: the
     * write has no record, and under a log its group is made durable by a
     * checkpoint of its own before done runs.
     */
    int (*encode)(hk_write *w, uint8_t **out, size_t *len);
    /* Internal to the store. */
    int status;
    hk_write *next;
};

#define HK_WRITE_ISOLATED 1u
/**
 * A write whose loss in a crash is harmless because it is done again (a
 * delivery's success): a group of only such writes is appended to the log
 * without its own fdatasync and becomes durable with the next synced group,
 * the next checkpoint or hk_kv_sync_lazy, whichever comes first. Without a
 * log the flag changes nothing.
 */
#define HK_WRITE_LAZY 2u

/** hk_put flag: fail with HK_EEXIST instead of replacing. */
#define HK_PUT_NOOVERWRITE 1u

/**
 * Opens (creating when missing) the environment in dir. loop may be NULL
 * for a process that only uses hk_kv_write_sync (the CLI); with a loop,
 * call it on the loop's thread. On success *out is owned by the caller
 * until hk_kv_close.
 */
int hk_kv_open(hk_kv_env **out, const char *dir, uint64_t map_size, uint32_t max_batch, uv_loop_t *loop) HK_MUST_CHECK;

/** Closes the environment. The loop must have no write in flight (hk_kv_busy is false). */
void hk_kv_close(hk_kv_env *store);

/**
 * The key in HK_DB_META under which every write transaction of this
 * version records its own id (8 bytes, big-endian).
 */
#define HK_KV_WRITER_STAMP "kv:writer_txn"

/**
 * True when, at open, the environment's last commit was not one of this
 * version's (it lacks HK_KV_WRITER_STAMP with its id): an older version
 * wrote since, and what this one keeps beside its records (indexes) may be
 * incomplete. False for a new environment.
 */
bool hk_kv_foreign_commits(const hk_kv_env *store);

/** True while writes are queued or being committed, or a map grown by another process is being adopted. */
bool hk_kv_busy(const hk_kv_env *store);

/** Submits a write. w must stay valid until its done callback has run. */
void hk_kv_submit(hk_kv_env *store, hk_write *w);

/**
 * Runs fn in its own write transaction on the calling thread and commits it
 * (CLI, startup). UV_EAGAIN as for hk_kv_read.
 */
int hk_kv_write_sync(hk_kv_env *store, int (*fn)(hk_txn *txn, void *arg), void *arg) HK_MUST_CHECK;

/**
 * Begins a read transaction; end it with hk_txn_end soon: it holds back page
 * reuse. UV_EAGAIN (retry later; nothing is wrong with the store) when
 * another process has grown the map and it cannot be adopted without
 * waiting: while this thread has another transaction open (a read inside a
 * read's callback), or on the loop while a group commit is syncing (the map
 * is then adopted on the threadpool as soon as it can be).
 */
int hk_kv_read(hk_kv_env *store, hk_txn **out) HK_MUST_CHECK;

/**
 * Marks the calling thread as one that runs loop (a worker's loop other than
 * the environment's own): it never waits for the resize lock there, and a
 * map grown by another process is adopted on loop's threadpool queue. Call
 * on the thread, before its first read; NULL unmarks it.
 */
void hk_kv_thread_loop(uv_loop_t *loop);

/** Ends a read transaction begun with hk_kv_read (on the thread that began it); every hk_val from it becomes invalid.
 */
void hk_txn_end(hk_txn *txn);

/** Looks up key; HK_ENOTFOUND when absent. */
int hk_get(hk_txn *txn, enum hk_db db, const void *key, size_t klen, hk_val *out) HK_MUST_CHECK;

/** Stores key -> value (write transactions only). */
int hk_put(hk_txn *txn, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen,
           unsigned flags) HK_MUST_CHECK;

/** Deletes key (and for duplicate-sorted databases only the pair with val, when val is given). */
int hk_del(hk_txn *txn, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen) HK_MUST_CHECK;

/** Returns the next value of the named sequence (1, 2, ...); never reuses a value. */
int hk_seq_next(hk_txn *txn, const char *name, uint64_t *out) HK_MUST_CHECK;

/** Reads the named sequence's last issued value (0 when none). */
uint64_t hk_seq_peek(hk_txn *txn, const char *name);

/** Cursor positions. */
enum hk_cursor_op {
    HK_FIRST,     /**< first key */
    HK_LAST,      /**< last key */
    HK_NEXT,      /**< next key (or next duplicate) */
    HK_PREV,      /**< previous key */
    HK_SEEK,      /**< first key >= the given key */
    HK_SEEK_EXACT /**< the given key exactly */
};

/** Opens a cursor on db; close it before the transaction ends. */
int hk_cursor_open(hk_txn *txn, enum hk_db db, hk_cursor **out) HK_MUST_CHECK;

/**
 * Moves the cursor; key is input for HK_SEEK/HK_SEEK_EXACT (may be NULL
 * otherwise) and output always. HK_ENOTFOUND at either end.
 */
int hk_cursor_get(hk_cursor *c, enum hk_cursor_op op, hk_val *key, hk_val *val) HK_MUST_CHECK;

/** Deletes the pair under the cursor (write transactions only). */
int hk_cursor_del(hk_cursor *c) HK_MUST_CHECK;

/** Closes a cursor; safe on NULL. */
void hk_cursor_close(hk_cursor *c);

/**
 * Deletes a run of pairs of db: from the first key >= from (NULL: the very
 * first key) for as long as take(key, val, arg) is true, at most max pairs.
 * before (may be NULL) runs for each pair first, to delete what refers to
 * it elsewhere; an error from it ends the run. *more is set to true (never
 * cleared) when the run stopped at max. Pruning in small transactions is
 * built on this.
 */
int hk_delete_run(hk_txn *txn, enum hk_db db, const hk_val *from,
                  bool (*take)(const hk_val *key, const hk_val *val, void *arg),
                  int (*before)(hk_txn *txn, const hk_val *key, const hk_val *val, void *arg), void *arg, size_t max,
                  bool *more) HK_MUST_CHECK;

/** Number of keys in db. */
size_t hk_count(hk_txn *txn, enum hk_db db);

/** Clears reader slots left by processes that died; *dead (may be NULL) receives how many. */
int hk_kv_reader_check(hk_kv_env *store, int *dead) HK_MUST_CHECK;

/* ---- the write-ahead log and checkpoints (commit.c) -------------------------------- */

typedef struct hk__wal hk__wal;

/** The key in HK_DB_META holding the LSN of the last log record applied (8 bytes, big-endian). */
#define HK_KV_LSN_KEY "wal:lsn"

/** The LSN of the last log record applied in the newest snapshot (0: none, or it cannot be read). */
uint64_t hk_kv_applied_lsn(hk_kv_env *store);

/**
 * Starts saving checkpoints (checkpoint.h) into the file at path. The
 * owner (the process that holds the data directory's lock and writes the
 * log) commits with MDB_NOSYNC from now on, holds a read transaction on
 * the last checkpoint's snapshot, and makes a first checkpoint here (state
 * open). Any other process (a CLI command beside a server) saves a
 * checkpoint after each of its synchronous writes, keeping the stored
 * state. Call before any write is submitted.
 */
int hk_kv_checkpoints(hk_kv_env *store, const char *path, bool owner) HK_MUST_CHECK;

/**
 * Appends every group to wal, durably, before applying it (owner only),
 * and checkpoints in the background after groups, recycling wal's
 * segments. wal is borrowed until hk_kv_close.
 */
void hk_kv_attach_log(hk_kv_env *store, hk__wal *wal);

/**
 * A checkpoint now, on the calling thread (no transaction of it open);
 * clean marks an orderly close. Nothing without hk_kv_checkpoints.
 */
int hk_kv_checkpoint(hk_kv_env *store, bool clean) HK_MUST_CHECK;

/**
 * On the loop: makes lazy writes already committed durable soon, with one
 * log sync on the threadpool (in turn with the group commit), unless
 * nothing is waiting for one. For a periodic timer: it bounds how long a
 * lazy write can stay undurable while no other write comes.
 */
void hk_kv_sync_lazy(hk_kv_env *store);

/** Stops checkpointing (after a last hk_kv_checkpoint): synced commits again, the pin released. */
void hk_kv_checkpoints_stop(hk_kv_env *store);

/**
 * Like hk_kv_write_sync, also recording lsn as the last log record
 * applied, and never followed by a checkpoint: for replaying the log.
 */
int hk_kv_write_replay(hk_kv_env *store, int (*fn)(hk_txn *txn, void *arg), void *arg, uint64_t lsn) HK_MUST_CHECK;

/**
 * Runs fn in a transaction nested in txn: its writes are kept when it
 * returns 0 and undone otherwise. Returns fn's result, or the store's
 * error when the nested transaction could not be begun or committed (a
 * full map is then the enclosing transaction's too).
 */
int hk_kv_nested(hk_txn *txn, int (*fn)(hk_txn *txn, void *arg), void *arg);

/** Current map size and bytes in use, for logs and the benchmark. */
void hk_kv_usage(hk_kv_env *store, uint64_t *map_size, uint64_t *used);

/** Counters since open: commits and write requests committed. */
void hk_kv_counters(const hk_kv_env *store, uint64_t *commits, uint64_t *writes);

/**
 * Writes a compacted copy of the environment's data file to fd (LMDB's
 * mdb_env_copyfd2 with MDB_CP_COMPACT): a consistent snapshot, taken in a
 * read transaction, so writers beside it (a running server) go on. Not on
 * the loop: it takes as long as the store is large. The caller syncs and
 * closes fd.
 */
int hk_kv_copy(hk_kv_env *store, int fd) HK_MUST_CHECK;

/** Copies of the group commit's histograms since open: write requests per commit, commit latency in us. */
void hk_kv_commit_histograms(const hk_kv_env *store, hk_histogram *batch_ops, hk_histogram *commit_us);

/**
 * Group commits that failed since open, and the status of the last one
 * (0 when it succeeded or none was made yet; else the error every write
 * of its group got).
 */
void hk_kv_commit_status(const hk_kv_env *store, uint64_t *failed, int *last_status);

/** Big-endian encoders for integer keys. */
static inline void hk_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void hk_be64(uint8_t *p, uint64_t v)
{
    hk_be32(p, (uint32_t)(v >> 32));
    hk_be32(p + 4, (uint32_t)v);
}
static inline uint32_t hk_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t hk_rd64(const uint8_t *p)
{
    return (uint64_t)hk_rd32(p) << 32 | hk_rd32(p + 4);
}

#endif
