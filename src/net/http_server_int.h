/*
 * http_server_int.h: what the pieces of the inbound HTTP server share.
 * INTERNAL to the server (http_server.c, http_server_request.c,
 * http_server_response.c); nothing else includes it.
 *
 * Each connection walks IDLE -> HEAD -> BODY -> HANDLING -> WRITING -> IDLE
 * (LINGER after an error answer, CLOSING at the end):
 *
 *   http_server.c           listeners, accepting and adopting connections,
 *                           the connection limit, reading and holding
 *                           pipelined bytes, the timeouts, lingering close,
 *                           draining at shutdown
 *   http_server_request.c   the request: llhttp callbacks with the header and
 *                           body limits, the head hook, dispatch to the handler
 *   http_server_response.c  the response: status line, Date, the head and body
 *                           in one write, keep-alive or close afterwards,
 *                           100 Continue, the server's own error answers
 *
 * Memory: a connection is freed only once both of its handles are closed;
 * a response's bytes belong to its write request (struct write_req in
 * http_server_response.c), freed in the write callback.
 */
#ifndef HK_HTTP_SERVER_INT_H
#define HK_HTTP_SERVER_INT_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "buf.h"
#include "http_server.h"

/** One read's worth: also the most a connection keeps of pipelined bytes. */
#define READ_BUF_SIZE 65536
/** Bytes kept per connection while a request is answered; reading stops past it. */
#define PIPELINE_HOLD_MAX 16384

/** Where a connection is. */
enum conn_state {
    ST_IDLE,     /**< between requests (or before the first) */
    ST_HEAD,     /**< receiving a request head */
    ST_BODY,     /**< receiving a request body */
    ST_HANDLING, /**< the handler has the request */
    ST_WRITING,  /**< the response is queued */
    ST_LINGER,   /**< answered an error: sending side shut, input discarded until EOF or LINGER_MS */
    ST_CLOSING   /**< handles closing; freed in their close callbacks */
};

/** Where one header field lies in struct conn's head buffer. */
struct hdr_span {
    uint32_t name_off, name_len, value_off, value_len; /**< offsets and lengths in head */
};

/** One connection. */
struct conn {
    uv_tcp_t tcp;               /**< first member: the handle's owner */
    uv_timer_t timer;           /**< header, body, keep-alive, write and linger timeouts (see hk__server_arm) */
    uint64_t deadline;          /**< loop time the current timeout ends; UINT64_MAX: none (handling) */
    uint64_t timer_due;         /**< loop time the timer was last started for */
    uv_shutdown_t shutdown_req; /**< the shutdown of a lingering close */
    llhttp_t parser;            /**< llhttp in HTTP_REQUEST mode; data points back here */
    hk_http_server *srv;        /**< the server */
    struct conn *prev, *next;   /**< the server's connections */
    enum conn_state state;      /**< where it is */
    int open_handles;           /**< tcp and timer not yet closed */

    /* The request being received: head bytes (target and header fields). */
    hk_buf head;                /**< NUL-terminated target, then the header fields; at most max_header_bytes - 1 */
    size_t url_len;             /**< bytes of the target in head */
    struct hdr_span *spans;     /**< the header fields in head (owned) */
    uint32_t nspans, spans_cap; /**< entries used and allocated in spans */
    int last_cb;                /**< 1: header field, 2: header value */
    /* Trailer fields of a chunked body are counted against the limits but
     * not kept: a trailer must not pass for a header (credentials). */
    size_t trailer_bytes;  /**< trailer bytes counted */
    uint32_t ntrailers;    /**< trailer fields counted */
    hk_buf body;           /**< at most max_body_bytes */
    bool keep_alive;       /**< llhttp says the connection may carry another request */
    bool expect_continue;  /**< the request asked for 100 Continue */
    int error_status;      /**< set by a callback that rejects the request */
    const char *error_msg; /**< its reason (static text) */

    /** Bytes received after a complete request, parsed once it is answered. */
    hk_buf pending;

    hk_http_request req;  /**< the request handed to the layer above */
    bool head_ready;      /**< req's head fields are filled (by the head hook's call or dispatch) */
    bool in_head_hook;    /**< the head hook is running */
    bool answered_head;   /**< the head hook answered: the body is never read */
    hk_header *headers;   /**< req.headers (owned) */
    uint32_t headers_cap; /**< entries allocated in headers */
    bool close_after;     /**< close once the response is written */
    bool peer_eof;        /**< the peer half-closed with complete requests still held */
    bool reading;         /**< uv_read_start is in effect */
    bool fresh;           /**< no request started yet: the accept armed the header timer */
    bool linger;          /**< answered an error: drain the input before closing */
};

/** The server (hk_http_server in http_server.h). */
struct hk_http_server {
    uv_loop_t *loop;                      /**< the loop everything runs on */
    const hk_config *cfg;                 /**< limits and timeouts (the caller's; outlives the server) */
    hk_http_handler handler;              /**< gets each complete request */
    void *data;                           /**< the handler's and the head hook's argument */
    hk_http_head_hook on_head;            /**< runs on each request head before its body (NULL: none) */
    void (*slot_free)(void *slot);        /**< frees hk_http_request.slot (NULL: nothing to free) */
    hk_http_response_hook on_response;    /**< sees every answer (NULL: none) */
    hk_http_error_body error_body;        /**< makes the body of the server's own error answers */
    llhttp_settings_t settings;           /**< the request parser's callbacks (http_server_request.c) */
    uv_tcp_t listeners[8];                /**< listening sockets */
    int nlisteners;                       /**< entries of listeners initialised */
    int open_listeners;                   /**< listeners not yet closed */
    struct conn *conns;                   /**< every connection not closing */
    uint32_t nconns;                      /**< connections on conns */
    bool draining;                        /**< hk_http_server_shutdown was called */
    void (*drained)(hk_http_server *srv); /**< its callback, run once */
    uint64_t limit_logged_ms;             /**< loop time the connection limit was last logged */
    char read_buf[READ_BUF_SIZE];         /**< every connection reads here: each read is parsed before the next */
    char date[40];                        /**< the Date header value for date_sec */
    time_t date_sec;                      /**< the second date was made for */
    uint32_t id_prefix;                   /**< random, so that request ids of different processes differ */
    uint32_t id_next;                     /**< the counter of request ids this server made */
};

/* ---- http_server.c: connections ----------------------------------------- */

/** The connection timer's callback: a late head or body gets a 408, anything else but HANDLING closes. */
void hk__server_on_timeout(uv_timer_t *t);

/** The furthest ahead a connection's timer is started: the shortest of the timeouts a request sets. */
static inline uint64_t hk__server_timer_span(const struct conn *c)
{
    const hk_config *cfg = c->srv->cfg;
    uint64_t span = cfg->header_timeout_ms;
    if (cfg->body_timeout_ms < span)
        span = cfg->body_timeout_ms;
    if (cfg->keepalive_timeout_ms < span)
        span = cfg->keepalive_timeout_ms;
    return span > 0 ? span : 1;
}

/**
 * The connection's timeout ends ms from now. The timer is started only
 * when it would go off too late: it is started at most the shortest
 * timeout ahead, and when it goes off before the deadline it is started
 * again for the rest (hk__server_on_timeout). So a keep-alive request's
 * head, body and idle timeouts cost no timer operation, and each timeout
 * still ends exactly at its deadline.
 */
static inline void hk__server_arm(struct conn *c, uint64_t ms)
{
    c->deadline = uv_now(c->srv->loop) + ms;
    if (uv_is_active((const uv_handle_t *)&c->timer) && c->timer_due <= c->deadline)
        return;
    uint64_t span = hk__server_timer_span(c);
    uint64_t run = ms < span ? ms : span;
    c->timer_due = uv_now(c->srv->loop) + run;
    uv_timer_start(&c->timer, hk__server_on_timeout, run, 0);
}

/** No timeout while the request is handled (the timer may go off meanwhile and does nothing). */
static inline void hk__server_disarm(struct conn *c)
{
    c->deadline = UINT64_MAX;
}

/** Closes the connection (once); it is freed when both handles are closed. */
void hk__server_conn_close(struct conn *c);

/** Starts reading unless it is reading or closing. */
void hk__server_start_reading(struct conn *c);

/** Between requests: IDLE, the keep-alive timer, reading. */
void hk__server_start_idle(struct conn *c);

/** After an error answer is written: shuts the sending side down and discards input until EOF or LINGER_MS. */
void hk__server_start_linger(struct conn *c);

/** Keeps bytes that arrive while a request is answered; stops reading past PIPELINE_HOLD_MAX. */
void hk__server_hold(struct conn *c, const char *data, size_t len);

/* ---- http_server_request.c: the request --------------------------------- */

/** Fills the request parser's callbacks into s (once, at create). */
void hk__server_parser_init(llhttp_settings_t *s);

/** Parses bytes of the peer's: dispatches a complete request, holds what follows it, answers a bad one. */
void hk__server_feed(struct conn *c, const char *data, size_t len);

/** Frees what the layer above hung on the request (hk_http_request.slot). */
void hk__server_release_slot(struct conn *c);

/** Forgets the request just answered, so the connection can take the next one. */
void hk__server_reset_request(struct conn *c);

/* ---- http_server_response.c: the response ------------------------------- */

/** Answers an error the server found itself (400, 408, 413, 417, 431, 503), then lingers and closes. */
void hk__server_respond_error(struct conn *c, int status, const char *message);

/** Queues "100 Continue" (before the body is read); the final response follows it in the same queue. */
void hk__server_send_continue(struct conn *c);

#endif
