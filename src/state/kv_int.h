/*
 * kv_int.h: what kv.c (the environment, transactions, helpers) and
 * commit.c (the group commit, the log around it, checkpoints) share about
 * the environment. Internal to those two files.
 */
#ifndef HK_KV_INT_H
#define HK_KV_INT_H

#include <lmdb.h>

#include "kv.h"
#include "wal.h"

struct hk_txn {
    MDB_txn *txn;
    hk_kv_env *store;
    bool write;
    /* The first LMDB error that left the transaction unusable (LMDB then
     * refuses its commit). Kept here because an apply may report it as an
     * error of its own, or not at all, and the batch must still know that
     * the map needs to grow. */
    int broken;
};

/* Outcomes of a write for its whole batch, beside 0 and a failing error. */
#define FATE_GROW 1

/* How many times a batch or a synchronous write is retried after growing the map. */
#define GROW_ATTEMPTS 8

/* Reader slots of killed processes are cleared at least this often on a busy store. */
#define READER_CHECK_MS 60000

/* hk_write.flags bit set by the store: the write's log record could not be made, it is not applied. */
#define HK__WRITE_SKIP (1u << 31)

/** A thread's cached read transaction on one environment. */
struct hk__rcache {
    hk_txn rtxn;             /**< reset between uses (txn NULL: none yet) */
    bool busy;               /**< in use by its thread */
    uv_thread_t thread;      /**< the thread it belongs to */
    struct hk__rcache *next; /**< the environment's list */
};

struct hk_kv_env {
    MDB_env *env;
    MDB_dbi dbi[HK_DB__COUNT];
    uv_loop_t *loop;
    uv_rwlock_t resize;
    uint32_t max_batch;
    /* Group commit: requests wait in `queue` while `batch` is being committed. */
    hk_write *queue_head, *queue_tail;
    hk_write *batch;
    int batch_status;
    bool working;
    uv_work_t work;
    /* One cached read transaction per reading thread (each worker's loop), renewed per use. */
    uint64_t id;                /**< unique among the environments of the process (the threads' caches' key) */
    uv_mutex_t rcache_mu;       /**< guards the list (not the entries: each belongs to its thread) */
    struct hk__rcache *rcaches; /**< every thread's cached reader, aborted at close */
    uv_thread_t loop_thread;    /**< the thread that opened the environment (with a loop) */
    /* A map grown by another process, adopted on the threadpool because the
     * loop could not take the resize lock without waiting; queued on the
     * loop of the thread that found it (adopt_loop). Set and cleared atomically. */
    uv_work_t adopt_work;
    bool adopting;
    uint64_t commits, writes;
    /* Ops per group commit and its latency in us (from the start of the group to its end). */
    hk_histogram batch_ops, commit_us;
    uint32_t batch_n;          /**< ops in the group being committed */
    uint64_t batch_started_ns; /**< uv_hrtime() when it started */
    uint64_t failed_commits;   /**< group commits that failed */
    int last_status;           /**< the last group commit's status */
    bool foreign;              /**< the last commit before this open was not stamped by this version */
    uint64_t reader_check_at;  /**< loop time of the last stale-reader check */
    /* Checkpoints (see commit.c), on once hk_kv_checkpoints was called. */
    char *ckpt_path;    /**< the checkpoint file; NULL: no checkpoints */
    bool ckpt_owner;    /**< commits with MDB_NOSYNC and keeps `pin`; otherwise each synchronous write saves one */
    uv_mutex_t ckpt_mu; /**< one checkpoint at a time */
    MDB_txn *pin;       /**< read transaction on the last checkpoint's snapshot (owner) */
    hk__wal *wal;       /**< the log each group is appended to first (owner, sync = log); borrowed */
    bool ckpt_running;  /**< a background checkpoint is queued or running */
    uv_work_t ckpt_work;
    uint64_t ckpt_at;      /**< loop time of the last background checkpoint's start */
    uint64_t writeback_ns; /**< uv_hrtime() of the last early writeback of LMDB's pages (commit thread) */
    uint64_t ckpt_bytes;   /**< hk__wal_bytes at that start */
};

/** Holds the resize lock shared for a transaction of this thread, and releases it. */
void hk__kv_hold(hk_kv_env *s);
void hk__kv_release(hk_kv_env *s);

/** LMDB's code as hookd's. */
int hk__kv_map_err(int rc);

/** Begins a transaction holding the resize lock shared (released by the caller with hk__kv_release after
 * the transaction ends); adopts a map another process grew. An LMDB code, or UV_EAGAIN. */
int hk__kv_txn_begin(hk_kv_env *s, bool write, MDB_txn **txn);

/** Grows the map (adopt: to the size another process gave it); UV_EAGAIN when this thread cannot wait. */
int hk__kv_resize(hk_kv_env *s, bool adopt);

/** Records the transaction's id under HK_KV_WRITER_STAMP. */
int hk__kv_stamp(hk_txn *t);

/** Ends checkpointing and releases what it holds (commit.c; from hk_kv_close). */
void hk__kv_checkpoints_free(hk_kv_env *s);

#endif
