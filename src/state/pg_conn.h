/*
 * pg_conn.h: PostgreSQL from the event loop. A small pool of libpq
 * connections, each driven with libpq's asynchronous API: a non-blocking
 * connect (PQconnectStartParams / PQconnectPoll, host names looked up
 * beforehand with the loop's resolver, since libpq's own lookup blocks),
 * the socket watched with uv_poll, and batches of statements sent in
 * pipeline mode, so a batch costs one round trip however many statements it
 * holds. Results come back on the loop. A connection the server closes
 * (a restart, a failover) is replaced, with a growing pause between
 * attempts; LISTEN/NOTIFY notifications arrive on a connection of their own
 * and go to callbacks.
 *
 * Nothing here blocks the loop: every libpq call made is non-blocking
 * (PQsetnonblocking), and PQgetResult only runs once PQisBusy says it
 * will not wait.
 *
 * Errors: 0 or a negative HK_E* / UV_E* code.
 */
#ifndef HK_PG_CONN_H
#define HK_PG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"
#include "resolver.h"

/** libpq's result, for the state layer's pg_*.c files (which include libpq-fe.h to read it). */
struct pg_result;

typedef struct hk_pg_pool hk_pg_pool;

/** Connections in a pool at most. */
#define HK_PG_POOL_MAX 64

/** How to open a pool. 0 or NULL takes the default in brackets. */
typedef struct hk_pg_pool_opts {
    const char *conninfo;        /**< libpq connection string or URI (copied); required */
    unsigned size;               /**< connections for batches [4], 1..HK_PG_POOL_MAX */
    uint64_t connect_timeout_ms; /**< one connection attempt, name lookup included [10000] */
    uint64_t retry_min_ms;       /**< the first pause before reconnecting [100]; it doubles per failure */
    uint64_t retry_max_ms;       /**< the longest pause [5000] */
    uint64_t queue_timeout_ms;   /**< a batch waiting while no connection is up fails after this [5000] */
    hk_resolver *resolver;       /**< looks host names up (borrowed; outlives the pool); NULL: the pool has its own */
} hk_pg_pool_opts;

/**
 * Opens a pool on loop and starts connecting (in the background: batches
 * submitted meanwhile wait). HK_EINVAL when conninfo does not parse (the
 * reason is logged, never the string: it may hold a password). *out is
 * owned by the caller until hk_pg_pool_close.
 */
int hk_pg_pool_open(hk_pg_pool **out, uv_loop_t *loop, const hk_pg_pool_opts *o) HK_MUST_CHECK;

/**
 * Closes the pool: every batch queued or in flight ends with UV_ECANCELED
 * (callbacks run from within this call; one in flight may have committed),
 * connections are closed, and once every handle is closed, closed(arg)
 * runs from the loop and the pool is freed (closed may be NULL). Safe on
 * NULL (closed is then not called) and from within a callback of the pool.
 */
void hk_pg_pool_close(hk_pg_pool *p, void (*closed)(void *arg), void *arg);

/** True when at least one batch connection is connected. */
bool hk_pg_pool_up(const hk_pg_pool *p);

/** Counters since the pool was opened. */
typedef struct hk_pg_pool_counters {
    uint64_t connects;         /**< connections established (batch and listen connections) */
    uint64_t connect_failures; /**< attempts that failed */
    uint64_t disconnects;      /**< established connections lost */
    uint64_t batches;          /**< batches ended, whatever their status */
    uint64_t notifications;    /**< notifications delivered to a callback */
    unsigned up;               /**< batch connections connected now */
    size_t queued;             /**< batches waiting for a connection now */
} hk_pg_pool_counters;

void hk_pg_pool_get_counters(const hk_pg_pool *p, hk_pg_pool_counters *out);

/* ---- batches ------------------------------------------------------------------------ */

/** One statement of a batch. Everything it points to stays valid until the batch's done runs. */
typedef struct hk_pg_stmt {
    const char *sql;           /**< one SQL statement, parameters as $1, $2, ... */
    int nparams;               /**< parameters */
    const char *const *values; /**< parameter values; a NULL entry is SQL NULL */
    const int *lengths;        /**< bytes of each binary value; NULL when every value is text */
    const int *formats;        /**< per parameter 1 binary, 0 text; NULL: all text */
    bool binary_result;        /**< results in binary instead of text */
} hk_pg_stmt;

typedef struct hk_pg_batch hk_pg_batch;

/**
 * The end of a batch, on the loop. status:
 *  - 0: every statement succeeded (a transaction: it committed, with the
 *    durability the server's synchronous_commit gives);
 *  - HK_ESTORE: a statement failed (b->failed, b->err, b->sqlstate). A
 *    transaction changed nothing; without one, the other statements ran;
 *  - UV_ECONNRESET: the connection was lost with the batch sent: whether a
 *    transaction committed is unknown;
 *  - UV_ECONNREFUSED: no connection was up for queue_timeout: nothing sent;
 *  - UV_ECANCELED: the pool was closed (in flight: unknown, as above).
 */
typedef void (*hk_pg_batch_cb)(hk_pg_batch *b, int status);

/**
 * Statements sent together in pipeline mode on one connection. Embed it in
 * the caller's struct (recover that with hk_container_of); it and stmts
 * stay valid, and unchanged, until done runs.
 */
struct hk_pg_batch {
    const hk_pg_stmt *stmts; /**< the statements, run in order */
    size_t nstmts;           /**< entries in stmts (at least 1) */
    bool transaction;        /**< all in one transaction (BEGIN ... COMMIT); false: each on its own */
    hk_pg_batch_cb done;     /**< required */
    /**
     * Out, valid in done: one result per statement (NULL for one that did
     * not run), freed by the pool when done returns. A callback may keep
     * one by taking it (results[i] = NULL) and PQclear-ing it itself. done
     * may free the batch (and its stmts).
     */
    struct pg_result **results;
    size_t failed;    /**< out, with HK_ESTORE: the statement that failed (nstmts: BEGIN or COMMIT) */
    char err[256];    /**< out: why, when status != 0 (one line) */
    char sqlstate[6]; /**< out, with HK_ESTORE: the SQLSTATE ("" when none) */
    /* Internal to the pool. */
    hk_pg_batch *next;
    uint64_t queued_ms;
};

/** Queues b; b->done runs on the loop later, never from within this call. */
void hk_pg_submit(hk_pg_pool *p, hk_pg_batch *b);

/* ---- notifications ------------------------------------------------------------------- */

/**
 * A notification on channel with its payload (borrowed for the call), or,
 * with payload NULL, word that the pool has (re)subscribed to channel: after
 * a lost connection notifications may have been missed, so a cache fed by
 * them reloads. The first such call follows hk_pg_listen once the LISTEN
 * is in place.
 */
typedef void (*hk_pg_notify_cb)(const char *channel, const char *payload, void *arg);

/**
 * Listens on channel (letters, digits and _; HK_EINVAL otherwise) for the
 * life of the pool, on a connection of its own (opened on the first call).
 * 0, or HK_EINVAL, HK_ESHUTDOWN when the pool is closing.
 */
int hk_pg_listen(hk_pg_pool *p, const char *channel, hk_pg_notify_cb fn, void *arg) HK_MUST_CHECK;

#endif
