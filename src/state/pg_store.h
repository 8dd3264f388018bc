/*
 * pg_store.h: the PostgreSQL engine of the storage seam (cluster mode),
 * behind store.h when [cluster] postgres is set (store.c, store_pg.c). Its functions mirror store.h's and keep its
 * contract: ops are submitted, many are applied in one transaction (a group commit, one round trip: each op is one
 * statement of a pipeline, pg_ops.c), and each op's done callback runs on the loop once the transaction has committed
 * (status 0: durable as the server's synchronous_commit makes a commit).
 * An op the rules refuse (HK_ENOTFOUND, HK_ELOCKED, HK_EEXIST,
 * HK_ECONFLICT) changes nothing and does not fail the others of its group;
 * neither does one the database refuses (HK_ESTORE): the group is then
 * applied again one op per transaction, so that only that op fails.
 *
 * Every op type of store.h is applied (an unknown one ends with
 * UV_ENOSYS). The registry queries are pg_cache.h's, answered from
 * memory kept current by LISTEN/NOTIFY.
 *
 * Statuses besides store.h's: UV_ECONNREFUSED (no connection to the
 * database within the queue timeout: nothing was applied), UV_ECONNRESET
 * (the connection was lost during the commit: whether the op was applied
 * is unknown; the retry of a signal with the same Idempotency-Key is safe),
 * HK_ESTORE (the database refused the op: logged with its message).
 */
#ifndef HK_PG_STORE_H
#define HK_PG_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "pg_conn.h"
#include "store.h"

typedef struct hk_pg_store hk_pg_store;

/** How to open the engine. 0 or NULL takes the default in brackets. */
typedef struct hk_pg_store_opts {
    const char *conninfo;      /**< libpq connection string or URI of a database hk_pg_migrate brought up to date */
    unsigned pool_size;        /**< connections [4] */
    uint32_t max_batch;        /**< ops per group commit at most [2048] */
    uint64_t queue_timeout_ms; /**< a commit waits this long for a connection before failing [5000] */
    hk_resolver *resolver;     /**< looks host names up (borrowed); NULL: the pool's own */
} hk_pg_store_opts;

/**
 * Opens the engine on loop (connecting in the background). HK_EINVAL for a
 * connection string that does not parse. *out is the caller's until
 * hk_pg_store_close.
 */
int hk_pg_store_open(hk_pg_store **out, uv_loop_t *loop, const hk_pg_store_opts *o) HK_MUST_CHECK;

/**
 * Closes the engine; no op may be in flight (hk_pg_store_busy is false).
 * Its connections close on the loop, which frees it once they have. Safe
 * on NULL.
 */
void hk_pg_store_close(hk_pg_store *s);

/**
 * hk_pg_store_close, then closed(arg) runs on the loop once its
 * connections and handles are closed and it is freed (closed may be NULL).
 * Nothing runs for NULL or a store already closing.
 */
void hk_pg_store_close_then(hk_pg_store *s, void (*closed)(void *arg), void *arg);

/** True while ops are queued or being committed. */
bool hk_pg_store_busy(const hk_pg_store *s);

/** Group commits and ops committed since open (map_size and used stay 0). */
void hk_pg_store_get_counters(const hk_pg_store *s, hk_store_counters *out);

/** Queues c as hk_store_submit does; c->done runs on the loop later, never from within this call. */
void hk_pg_store_submit(hk_pg_store *s, hk_commit *c);

/**
 * True once the registry has been read into memory (pg_cache.h): the
 * queries answer UV_EAGAIN before. A server runs its loop until it is
 * before it serves.
 */
bool hk_pg_store_ready(const hk_pg_store *s);

/** The engine's connection pool (borrowed): for its queries and notifications. */
hk_pg_pool *hk_pg_store_pool(hk_pg_store *s);

#endif
