/*
 * store_int.h: the store handle (store.h's hk_store), shared by the files
 * that dispatch to its engine: store.c (the embedded LMDB engine and the
 * dispatch of the registry queries) and store_pg.c (cluster mode on the
 * PostgreSQL engine, and the asynchronous bulk reads of both). Internal to
 * this folder.
 */
#ifndef HK_STORE_INT_H
#define HK_STORE_INT_H

#include "kv.h"
#include "pg_store.h"
#include "pg_sync.h"
#include "store.h"
#include "wal.h"

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
};

/** Opens s in cluster mode (o->postgres set) on loop (NULL: the CLI); s->lock_fd is -1. Logs why it fails. */
int hk__store_pg_open(hk_store *s, uv_loop_t *loop, const hk_store_opts *o) HK_MUST_CHECK;
/** Closes the cluster engine of s (not s itself). */
void hk__store_pg_close(hk_store *s);
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

#endif
