/*
 * http_client_int.h: what the pieces of the outbound HTTP client share.
 * INTERNAL to the client (http_client.c, http_client_conn.c,
 * http_client_response.c); nothing else includes it.
 *
 * A request (struct creq) walks KICK -> (pooled connection | DNS -> SSRF
 * check -> connect -> TLS handshake) -> WRITE -> WAIT -> READ -> done:
 *
 *   http_client.c           the API, a request's life and its deadlines
 *                           (total, and the phase: deferred start, DNS,
 *                           connect, first byte), the client's end
 *   http_client_conn.c      connections (struct conn): DNS and the SSRF
 *                           guard, TCP connect, TLS, writes and reads, the
 *                           per-origin idle pool, the retry of a request
 *                           whose pooled connection died
 *   http_client_response.c  reading the response with llhttp and what the
 *                           end of the stream means for it
 *   http_origin.c           the table of origins (http_origin.h)
 *
 * Deadlines. Every timeout of a kind is the same for all requests (the
 * client's options), so deadlines of one kind, each set at the loop's time
 * plus that timeout, expire in the order they were set: each kind is a
 * list, appended at its tail, and one timer of the client is armed for the
 * earliest head. A deadline is set and cleared in O(1) without touching
 * libuv's timer heap; the timer is re-armed only when a new deadline is
 * earlier than the one it waits for, or lazily when it fires early.
 *
 * Memory: connections are freed only in the close callback of their tcp
 * handle; a finished request goes back to the client's pool right after
 * its callback ran; write buffers belong to their write request.
 */
#ifndef HK_HTTP_CLIENT_INT_H
#define HK_HTTP_CLIENT_INT_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "http_client.h"
#include "http_origin.h"
#include "resolver.h"
#include "ssrf.h"
#include "tls.h"

/** Bytes of one read from a socket (one buffer for the whole client). */
#define READ_BUF_SIZE 65536
/** Bytes of plaintext taken from mbedTLS at a time (one buffer for the whole client). */
#define PLAIN_BUF_SIZE 16384
/** Bytes of a response's reason phrase kept. */
#define MAX_REASON_LEN 256
/** Bytes of a request's error text, NUL included. */
#define ERROR_TEXT_LEN 600

/** Where a connection is. */
enum conn_state {
    CS_CONNECTING, /**< TCP connect in flight */
    CS_HANDSHAKE,  /**< TLS handshake in flight */
    CS_ACTIVE,     /**< carries a request */
    CS_IDLE,       /**< on its origin's idle list */
    CS_CLOSING     /**< handles closing; freed in their close callbacks */
};

/** What a request's phase deadline bounds. */
enum phase {
    PH_KICK,    /**< the deferred start (timeout 0: the next run of the client's timer) */
    PH_DNS,     /**< the name lookup */
    PH_CONNECT, /**< TCP connect and TLS handshake */
    PH_WRITE,   /**< the request being written (no limit of its own) */
    PH_WAIT     /**< the wait for the first response byte */
};

/** The lists of deadlines, one per timeout (see the top of this file). */
enum dl_kind {
    DL_KICK,    /**< a request's deferred start: 0 ms */
    DL_TOTAL,   /**< a request's whole exchange: total_timeout_ms */
    DL_DNS,     /**< a request's name lookup: dns_timeout_ms */
    DL_CONNECT, /**< a request's connect and handshake: connect_timeout_ms */
    DL_WAIT,    /**< a request's wait for the first byte: first_byte_timeout_ms */
    DL_IDLE,    /**< an idle pooled connection: idle_timeout_ms */
    DL_KINDS    /**< how many lists */
};

/** A deadline: an entry of one of the client's lists, embedded in its request or connection. */
struct dl {
    uint64_t at;            /**< the loop time (uv_now) it expires at */
    uint64_t seq;           /**< when it was set: deadlines due at one moment expire in this order */
    struct dl *prev, *next; /**< its list */
    int kind;               /**< its list (enum dl_kind), -1 when not set */
};

/** One list of deadlines, in expiry order. */
struct dl_list {
    struct dl *head, *tail; /**< first to expire, last set */
};

/** One connection; belongs to one origin and carries one request at a time. */
struct conn {
    uv_tcp_t tcp;               /**< the socket; data points back here */
    struct dl idle;             /**< idle timeout (DL_IDLE) while on its origin's idle list */
    uv_connect_t connect;       /**< the connect request */
    hk_client *c;               /**< the client */
    struct hk__origin *o;       /**< its origin (one reference held) */
    struct creq *req;           /**< the request carried, NULL when idle */
    hk_tls_conn *tls;           /**< TLS state (NULL for http); freed with the connection */
    struct conn *prev, *next;   /**< all connections of the client */
    struct conn *iprev, *inext; /**< the origin's idle list */
    enum conn_state state;      /**< where it is */
    size_t writes_pending;      /**< uv_write requests not yet called back */
    bool tls_resumed;           /**< its handshake resumed a session */
};

/**
 * One request in flight, or (done) one kept in the client's pool for the
 * next. A request taken from the pool is cleared up to `status_line`; its
 * buffers are kept (emptied), and of the arrays from status_line on only
 * what is read before being written is reset.
 */
struct creq {
    hk_client *c;                             /**< the client */
    struct creq *prev, *next;                 /**< requests in flight; the pool */
    hk_client_cb cb;                          /**< the caller's callback, run once */
    void *arg;                                /**< its argument */
    struct dl total, phase_dl;                /**< the total deadline (DL_TOTAL) and the phase's (see enum phase) */
    hk_resolve_req *dns;                      /**< the lookup in flight, NULL when none */
    enum phase phase;                         /**< what the phase deadline bounds */
    struct hk__origin *o;                     /**< its origin (one reference held) */
    struct conn *conn;                        /**< the connection carrying it, NULL when none */
    char *head;                               /**< request line and headers, NUL-terminated (headbuf's data) */
    size_t head_len;                          /**< bytes in head */
    const char *out_body;                     /**< the request body, not copied: the request holds a reference */
    size_t out_body_len;                      /**< bytes in out_body */
    void (*body_ref)(void *owner, int delta); /**< takes (+1) or drops (-1) a reference to out_body */
    void *body_owner;                         /**< passed to body_ref */
    bool head_only;                           /**< a HEAD request: the response has no body */
    uint64_t start_ns;                        /**< uv_hrtime() at hk_client_send */
    bool done, retried, reused, tls_resumed;  /**< ended; retried once; on a pooled connection; TLS resumed */
    bool sent;                                /**< the head went out at least once */
    int error;                                /**< the outcome: 0 or a negative code */

    /* The response. */
    llhttp_t parser;                                    /**< llhttp in HTTP_RESPONSE mode; data points back here */
    bool got_bytes, complete, keep_alive, headers_done; /**< first byte seen; message complete; reusable; head parsed */
    int status;                                         /**< HTTP status, once headers_done */
    size_t reason_len;                                  /**< bytes in reason */
    bool truncated;                                     /**< body bytes were dropped past max_response_bytes */
    int cb_error;                                       /**< set by a parser callback that gives up */
    const char *cb_error_text;                          /**< its reason (static text) */
    hk_buf rhead;   /**< "Name: value\r\n" lines, at most HK_CLIENT_MAX_RESPONSE_HEAD - 1 bytes */
    hk_buf body;    /**< at most max_response_bytes */
    hk_buf headbuf; /**< holds head */

    char status_line[MAX_REASON_LEN + 32]; /**< "HTTP/1.1 200 OK", once headers_done */
    char reason[MAX_REASON_LEN + 1];       /**< the reason phrase, cut at MAX_REASON_LEN */
    char error_text[ERROR_TEXT_LEN];       /**< the outcome's reason */
    hk_ssrf_refusal refused;               /**< the SSRF guard's refusal (rule "" when none) */
};

/** The client (hk_client in http_client.h). */
struct hk_client {
    uv_loop_t *loop;                          /**< the loop everything runs on */
    hk_client_opts o;                         /**< the options, defaults filled in; strings point to the copies below */
    char *ca_file, *dns_servers, *user_agent; /**< copies of the options' strings (owned) */
    hk_ssrf *ssrf;                            /**< the SSRF guard (owned) */
    hk_resolver *resolver;                    /**< DNS on the loop (owned) */
    hk_tls_ctx *tls;                          /**< the TLS context (owned) */
    llhttp_settings_t settings;               /**< the response parser's callbacks (http_client_response.c) */
    hk__origins origins;         /**< the origins in use, and the unused ones for a while (http_origin.h) */
    struct creq *active;         /**< requests in flight */
    size_t nactive;              /**< requests on active */
    struct conn *conns;          /**< every connection not closing */
    struct creq *pool;           /**< finished requests kept for the next ones (linked by next) */
    size_t npool;                /**< requests in pool */
    struct dl_list dl[DL_KINDS]; /**< the deadlines, by kind */
    size_t ndl;                  /**< deadlines set */
    uint64_t dl_seq;             /**< deadlines set so far (struct dl's seq) */
    uv_timer_t timer;            /**< fires at the earliest deadline, or earlier */
    bool timer_armed;            /**< timer is active */
    bool in_timer;               /**< its callback runs: it re-arms the timer when done */
    uint64_t timer_at;           /**< the loop time timer fires at, when armed */
    size_t live; /**< requests, connections, the resolver, the origin timer, the timer and the sentinel not yet freed */
    uv_timer_t sentinel;            /**< closed last, so that `closed` always runs from the loop */
    bool closing;                   /**< hk_client_close was called */
    void (*closed)(void *arg);      /**< hk_client_close's callback */
    void *closed_arg;               /**< its argument */
    char read_buf[READ_BUF_SIZE];   /**< every connection reads here: each read is consumed before the next */
    char plain_buf[PLAIN_BUF_SIZE]; /**< plaintext out of mbedTLS, likewise shared */
};

/* ---- http_client.c: a request's life -------------------------------------- */

/** Ends r: detaches it, closes its connection if still attached, runs its callback, lets its handles close. */
void hk__client_req_finish(struct creq *r);

/** Ends r with err and a reason (printf format); nothing when it already ended. */
void hk__client_req_fail(struct creq *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Sets d (unset first when set) to expire timeout_ms from now, on the list of kind. */
void hk__dl_set(hk_client *c, struct dl *d, int kind, uint64_t timeout_ms);

/** Unsets d (nothing when not set). */
void hk__dl_unset(hk_client *c, struct dl *d);

/** Sets r's phase deadline for its phase (PH_KICK, PH_DNS, PH_CONNECT or PH_WAIT). */
void hk__client_phase_deadline(struct creq *r);

/** Frees the client once it is closing and nothing it made is left. */
void hk__client_maybe_freed(hk_client *c);

/* ---- http_client_conn.c: connections ------------------------------------ */

/** Gets r a connection: an idle one of its origin, else DNS, the SSRF guard and a new one; then sends r. */
void hk__client_req_connect(struct creq *r);

/** Closes a connection and detaches its request (the caller decides the request's fate). */
void hk__client_conn_close(struct conn *cn);

/**
 * Fails the connection and its request with err and a reason; a reused
 * connection that died before any response byte gets its request one retry.
 */
void hk__client_conn_fail(struct conn *cn, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** r's response is complete: its connection goes back to the pool or is closed, then r ends with success. */
void hk__client_req_complete(struct creq *r);

/* ---- http_client_response.c: the response ------------------------------- */

/** Fills the response parser's callbacks into s (once, at create). */
void hk__client_parser_init(llhttp_settings_t *s);

/** Forgets any response r received and restarts its parser (before each send of r). */
void hk__client_req_reset(struct creq *r);

/** Plaintext bytes from the server on cn: fed to its request's parser; bytes on an idle connection close it. */
void hk__client_conn_input(struct conn *cn, const char *data, size_t len);

/** The server closed cn, or reading from it failed (status < 0): completes or fails its request. */
void hk__client_conn_eof(struct conn *cn, int status);

#endif
