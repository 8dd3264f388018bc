/*
 * http_origin.h: the outbound client's table of origins. INTERNAL to the
 * HTTP client (http_client*.c); nothing else includes it.
 *
 * An origin is what pooled connections must share: scheme, host, port and
 * the TLS files of the request. It holds the idle connections and the TLS
 * session that new connections resume. Requests and connections hold
 * references; an origin nobody references is kept for linger_ms on the
 * unused list, oldest first, so a TLS session survives between deliveries,
 * then freed, as is the oldest one past HK_CLIENT_MAX_UNUSED_ORIGINS:
 * memory follows the origins in use, not every target ever sent to.
 */
#ifndef HK_HTTP_ORIGIN_H
#define HK_HTTP_ORIGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls.h"
#include "url.h"

struct conn; /* the client's connection (http_client_int.h) */

/** One origin. Fields below the line are the client's to use; the table owns the others. */
struct hk__origin {
    struct hk__origin *prev, *next;   /**< all origins of the table */
    struct hk__origin *uprev, *unext; /**< the unused list */
    uint32_t refs;                    /**< requests and connections using it */
    bool unused;                      /**< on the unused list */
    uint64_t unused_since;            /**< loop time it became unused */
    uint32_t hash;                    /**< of what a pooled connection must match: scheme, host, port, TLS files */
    struct hk__origin *hnext;         /**< its bucket of the table */
    /* ---- */
    char *name;                      /**< "https://host:port", for logs */
    bool tls;                        /**< https */
    char *host;                      /**< without brackets */
    int port;                        /**< the port connected to */
    char *ca_file, *cert, *key_file; /**< TLS files of the requests (NULL when not set) */
    struct conn *idle;               /**< idle connections, most recently used first (the client's list) */
    uint32_t nidle;                  /**< connections on idle */
    hk_tls_session *session;         /**< the session new connections resume (NULL: none); freed with the origin */
};

/** Buckets of the table of origins (a power of two). */
#define HK__ORIGIN_BUCKETS 256

/** The table, embedded in the client. */
typedef struct hk__origins {
    uv_loop_t *loop;                                /**< the loop (its time dates unused origins) */
    struct hk__origin *buckets[HK__ORIGIN_BUCKETS]; /**< every origin, by hash */
    uint64_t linger_ms;                             /**< how long an unused origin is kept */
    struct hk__origin *all;                         /**< every origin */
    size_t count;                                   /**< origins in all */
    struct hk__origin *unused_head, *unused_tail;   /**< unreferenced origins, oldest first */
    size_t nunused;                                 /**< origins on the unused list */
    uv_timer_t timer;                               /**< frees unused origins when their time is up */
    bool closing;                                   /**< hk__origins_close was called: nothing is freed until the end */
    void (*closed)(void *arg);                      /**< called once the timer is closed */
    void *closed_arg;                               /**< its argument */
} hk__origins;

/** Initialises an empty table on loop. */
void hk__origins_init(hk__origins *t, uv_loop_t *loop, uint64_t linger_ms);

/**
 * The origin of a request to u with the given TLS files ("" for none; all
 * ignored for plain http), found or made, with one reference taken for the
 * caller. Never NULL (allocation aborts: the sizes are the URL's).
 */
struct hk__origin *hk__origin_get(hk__origins *t, const hk_url *u, const char *ca, const char *cert, const char *key);

/** Takes another reference (a connection made for a request). */
void hk__origin_ref(struct hk__origin *o);

/** Drops a reference; the last one puts the origin on the unused list (or frees the oldest past the limit). */
void hk__origin_unref(hk__origins *t, struct hk__origin *o);

/** Closes the table's timer; closed(arg) runs once it is closed. Origins stay until hk__origins_free. */
void hk__origins_close(hk__origins *t, void (*closed)(void *arg), void *arg);

/** Frees every origin (after hk__origins_close, when no request or connection is left). */
void hk__origins_free(hk__origins *t);

#endif
