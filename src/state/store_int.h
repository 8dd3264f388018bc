/*
 * store_int.h: the store handle (store.h's hk_store), shared by the files
 * that dispatch to its engine and hand ops over between threads: store.c
 * (the embedded LMDB engine and the dispatch of the registry queries),
 * store_pg.c (cluster mode on the PostgreSQL engine, and the asynchronous
 * bulk reads of both) and store_port.c (submissions from other threads).
 * Internal to this folder.
 */
#ifndef HK_STORE_INT_H
#define HK_STORE_INT_H

#include <stdbool.h>
#include <uv.h>

#include "kv.h"
#include "pg_store.h"
#include "pg_sync.h"
#include "store.h"
#include "wal.h"

struct hk__share;

/** The store: one engine or the other. */
struct hk_store {
    hk_kv_env *kv;               /**< the embedded engine (NULL in cluster mode) */
    int lock_fd;                 /**< the data directory's lock (exclusive opens), or -1 */
    uv_loop_t *loop;             /**< where done callbacks run (NULL: synchronous use only) */
    hk__wal *wal;                /**< sync = log: the log the group commit appends to; NULL otherwise */
    hk_pg_store *pg;             /**< cluster mode: the PostgreSQL engine (owned; pgsync's in the CLI) */
    hk_pg_sync *pgsync;          /**< cluster mode without a loop (the CLI): the engine on its private loop (owned) */
    char node_name[128];         /**< cluster mode: this node's name in its leases */
    void (*queue_fn)(void *arg); /**< cluster mode: hk_store_on_queue's listener (NULL: none now) */
    void *queue_arg;             /**< passed to queue_fn */
    bool listening;              /**< the LISTEN on hookd_queue is asked for */
    struct hk__share *share;     /**< ops of other threads' ports (store_port.c); NULL: not shared */
};

/** Opens s in cluster mode (o->postgres set) on loop (NULL: the CLI); s->lock_fd is -1. Logs why it fails. */
int hk__store_pg_open(hk_store *s, uv_loop_t *loop, const hk_store_opts *o) HK_MUST_CHECK;
/** Closes the cluster engine of s (not s itself); closed(arg) (may be NULL) runs once its handles are closed:
    at once for the CLI's, on the loop for a server's. */
void hk__store_pg_close(hk_store *s, void (*closed)(void *arg), void *arg);
/** hk_store_apply in cluster mode. */
int hk__store_pg_apply(hk_store *s, hk_op *op) HK_MUST_CHECK;

/* The synchronous bulk queries in cluster mode: a CLI store waits on its loop, a server's answers UV_ENOTSUP. */
int hk__store_pg_event_get(hk_store *s, uint64_t id, hk_event *out) HK_MUST_CHECK;
int hk__store_pg_pending(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t *pending,
                         uint64_t *due) HK_MUST_CHECK;
int hk__store_pg_queue_summary(hk_store *s, uint64_t now_ms, hk_queue_summary *out) HK_MUST_CHECK;
int hk__store_pg_attempts_each(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first, bool brief,
                               int (*fn)(const hk_attempt *a, void *arg), void *arg);
int hk__store_pg_attempt_get(hk_store *s, uint32_t webhook_id, uint64_t log_id, hk_attempt *out) HK_MUST_CHECK;

struct hk__share;

/** Submits c to the group commit on the store's loop thread (hk_store_submit without the hand-over). */
void hk__store_submit_here(hk_store *s, hk_commit *c);

/** The loop done callbacks run on (NULL: a store for hk_store_apply only). */
uv_loop_t *hk__store_loop(hk_store *s);

/** The store's side of the hand-over (NULL: not shared), and setting it (hk_store_share, hk_store_unshare). */
struct hk__share *hk__store_share(hk_store *s);
void hk__store_set_share(hk_store *s, struct hk__share *sh);

/** Marks the calling thread as one running loop for the store's reads (NULL: unmarks it). */
void hk__store_thread_loop(hk_store *s, uv_loop_t *loop);

/** True while ops of ports wait to be taken into the group commit. */
bool hk__share_busy(struct hk__share *sh);

/**
 * When the calling thread has a port on s: hands c to the store's loop and
 * returns true (c->done will run on the port's loop). False otherwise.
 */
bool hk__port_forward(hk_store *s, hk_commit *c);

#endif
