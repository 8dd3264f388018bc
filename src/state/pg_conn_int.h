/*
 * pg_conn_int.h: what pg_conn.c (the pool, batches, notifications) and
 * pg_connect.c (connecting, name lookup, the watched socket) share. Internal
 * to the state layer's PostgreSQL engine: nothing else includes it.
 */
#ifndef HK_PG_CONN_INT_H
#define HK_PG_CONN_INT_H

#include <libpq-fe.h>
#include <sys/types.h>

#include "buf.h"
#include "pg_conn.h"

/** Bytes of a channel name at most (PostgreSQL identifiers are 63 bytes at most). */
#define CHANNEL_MAX 63

/** A connection's state: DOWN -> (RESOLVING) -> CONNECTING -> READY <-> BUSY, and DOWN again. */
enum conn_state { C_DOWN, C_RESOLVING, C_CONNECTING, C_READY, C_BUSY };

/** What a pipeline in flight waits for next: a statement's result (the batch's or BEGIN/COMMIT/ROLLBACK), a sync point.
 */
enum item_kind { ITEM_STMT, ITEM_INTERNAL, ITEM_SYNC };

/** One thing a pipeline waits for, in the order sent. */
struct item {
    enum item_kind kind; /**< which */
    size_t index;        /**< ITEM_STMT: the batch's statement */
};

/** A poll handle on a dup of libpq's socket; its close callback closes the dup and frees it. */
struct pg_poll {
    uv_poll_t h;      /**< data: the connection, until it is closed */
    int fd;           /**< the dup, owned */
    hk_pg_pool *pool; /**< told when the handle is closed */
};

/** One libpq connection of a pool (embedded in the pool). */
struct pg_conn {
    hk_pg_pool *pool;      /**< the owner */
    bool listener;         /**< the notification connection (no batches, no pipeline mode) */
    enum conn_state state; /**< where it is */
    PGconn *pg;            /**< libpq's connection, owned; NULL while DOWN or RESOLVING */
    struct pg_poll *poll;  /**< the watch on its socket, NULL when none */
    dev_t dev;             /**< identity of the socket watched: device */
    ino_t ino;             /**< and inode */
    int events;            /**< events the poll handle waits for (0: stopped) */
    bool want_write;       /**< libpq holds output it could not send yet */
    uv_timer_t timer;      /**< the back-off while DOWN, the connect timeout while RESOLVING or CONNECTING */
    uint64_t backoff_ms;   /**< the next pause */
    hk_resolve_req *req;   /**< the name lookup in flight, NULL when none */
    size_t rhost;          /**< the host entry being looked up */
    hk_buf hosts;          /**< the attempt's host list, a name repeated per address */
    hk_buf addrs;          /**< the matching hostaddr list */
    hk_buf ports;          /**< the matching port list, when the connection string has one port per host */
    hk_pg_batch *batch;    /**< the batch in flight (BUSY), NULL for none or an internal ROLLBACK */
    struct item *items;    /**< what the pipeline in flight waits for, owned */
    size_t nitems;         /**< entries in items */
    size_t cur;            /**< the one waited for now */
    bool got;              /**< the current statement's result is in; the NULL after it ends it */
    bool after_sync;       /**< a sync point was just read; a NULL may follow */
    int nulls;             /**< NULLs in a row that ended nothing */
    bool failed;           /**< the batch has its failure recorded */
    bool listening;        /**< listener: a LISTEN query is in flight */
};

/** A callback for a notification channel (hk_pg_listen). */
struct listener {
    char channel[CHANNEL_MAX + 1]; /**< the channel */
    hk_pg_notify_cb fn;            /**< called with each notification */
    void *arg;                     /**< fn's argument */
    bool sent;                     /**< named in the LISTEN query in flight */
    bool subscribed;               /**< LISTEN done on the current connection */
    struct listener *next;         /**< the next one, in the order they came */
};

/** The pool (pg_conn.h). */
struct hk_pg_pool {
    uv_loop_t *loop;                      /**< the loop everything runs on */
    char *conninfo;                       /**< the connection string, owned */
    hk_pg_pool_opts o;                    /**< the options, defaults applied */
    char **host_list;                     /**< the connection string's (or PGHOST's) host entries, owned */
    size_t nhosts;                        /**< entries in host_list */
    char *port_spec;                      /**< the port list as given, owned; NULL when none */
    bool resolve;                         /**< some host entry is a name, and no hostaddr is given */
    hk_resolver *resolver;                /**< looks names up */
    bool own_resolver;                    /**< resolver is the pool's, closed with it */
    struct pg_conn conns[HK_PG_POOL_MAX]; /**< the batch connections */
    size_t nconns;                        /**< those in use */
    struct pg_conn lconn;                 /**< the notification connection, once a listener exists */
    bool have_lconn;                      /**< lconn is in use */
    struct listener *listeners;           /**< notification callbacks, owned */
    hk_pg_batch *qhead;                   /**< batches waiting for a connection, oldest first */
    hk_pg_batch *qtail;                   /**< the newest of them */
    size_t queued;                        /**< how many */
    hk_pg_batch *cancelled;               /**< submitted while closing: ended once the queue timer is closed */
    uv_timer_t qtimer;                    /**< sends what waits, fails what waited past queue_timeout */
    unsigned up;                          /**< batch connections READY or BUSY */
    bool was_down;                        /**< "connection lost" was logged; "connected again" is due */
    hk_pg_pool_counters counters;         /**< since the pool was opened */
    bool closing;                         /**< hk_pg_pool_close ran */
    int pending;                          /**< handles (and the resolver) not yet closed */
    void (*closed)(void *arg);            /**< called when the last one is */
    void *closed_arg;                     /**< its argument */
};

/** A server or libpq message as one line into dst (newlines and tabs become spaces). */
void hk__pg_one_line(char *dst, size_t cap, const char *src);

/** Sets a connection up (DOWN, its timer initialised); hk__pg_conn_start starts its first attempt. */
void hk__pg_conn_init(hk_pg_pool *p, struct pg_conn *c, bool listener);
/** Starts an attempt: name lookup when needed, then libpq's connect; ends in hk__pg_conn_ready or DOWN. */
void hk__pg_conn_start(struct pg_conn *c);
/** Drives PQconnectPoll after the socket became ready (state CONNECTING). */
void hk__pg_connect_step(struct pg_conn *c);
/** Schedules the next attempt after the back-off pause (state DOWN); the pause doubles. */
void hk__pg_retry_later(struct pg_conn *c);
/** Watches libpq's current socket for events (a dup of it; a replaced socket is noticed). 0 or UV_E*. */
int hk__pg_watch(struct pg_conn *c, int events);
/** Stops watching (the dup is closed with its handle). */
void hk__pg_unwatch(struct pg_conn *c);
/** Reads the connection string's hosts (or PGHOST's) and decides whether names need looking up. */
int hk__pg_parse_hosts(hk_pg_pool *p);

/** pg_conn.c: the connection is up (READY): it takes batches, or listens. */
void hk__pg_conn_ready(struct pg_conn *c);
/** pg_conn.c: the poll callback of every connection's socket. */
void hk__pg_on_poll(uv_poll_t *h, int status, int events);
/** pg_conn.c: one of the pool's handles is closed; the last one frees a closing pool. */
void hk__pg_pending_done(hk_pg_pool *p);

#endif
