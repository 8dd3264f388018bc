/*
 * http_server.h: the inbound HTTP/1.1 server on the libuv loop.
 *
 * One request per connection is handled at a time: when a request is
 * complete the connection stops reading until its response has been written,
 * so pipelined requests are answered in order and a client that sends
 * faster than it reads costs at most one buffered read.
 *
 * Two callbacks see a request: the optional head hook
 * (hk_http_server_on_head) when its head is complete, before any of its
 * body is read, and the handler when the whole request is in. The head
 * hook is where credentials are checked, so that a request without them
 * is refused before its body (up to max_body_bytes) is buffered.
 */
#ifndef HK_HTTP_SERVER_H
#define HK_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.h"
#include "config.h"

typedef struct hk_http_server hk_http_server;

/** One header field; both strings point into the request and live as long as it. */
typedef struct hk_header {
    const char *name;  /**< as received (not NUL-terminated) */
    size_t name_len;   /**< bytes in name */
    const char *value; /**< as received, surrounding white space removed */
    size_t value_len;  /**< bytes in value */
} hk_header;

/**
 * A complete request. Owned by the server; valid from the handler call
 * until hk_http_respond returns (the handler may answer later, from another
 * callback, but must answer exactly once).
 */
/** The longest X-Request-Id kept from a client. */
#define HK_REQUEST_ID_MAX 64

typedef struct hk_http_request {
    hk_http_server *server;  /**< the server that received it */
    uint8_t method;          /**< llhttp_method_t */
    const char *method_name; /**< "GET", "POST", ... (static) */
    const char *path;        /**< path part of the target, still percent-encoded; NUL-terminated */
    size_t path_len;         /**< bytes in path */
    const char *query;       /**< after '?', NUL-terminated; "" when none */
    size_t query_len;        /**< bytes in query */
    hk_header *headers;      /**< header fields in arrival order */
    size_t nheaders;         /**< number of header fields */
    const char *body;        /**< the de-chunked body, NUL-terminated; "" when none */
    size_t body_len;         /**< bytes in body */
    bool keep_alive;         /**< the connection stays open after the response */
    bool body_expected;      /**< a body follows the head (Content-Length > 0, or chunked) */
    uint64_t start_ms;       /**< loop time when the request was complete (in the head hook: when the head was) */
    char remote[64];         /**< peer address, for logs */
    char request_id[HK_REQUEST_ID_MAX + 1]; /**< the client's X-Request-Id when it is one (1..64 of A-Z a-z 0-9
                                                 and ._:-), else one the server made; echoed in the answer's
                                                 X-Request-Id and a field of the log lines written while the
                                                 request's head hook, handler or answer runs */
    void *slot; /**< the layer above's own data for this request (e.g. the authenticated user), set
                     by the head hook and seen by the handler; NULL until set. The server owns it once
                     set: it is freed with the slot_free given to hk_http_server_on_head when the
                     request is answered (within hk_http_respond, before it returns) or abandoned
                     (connection closed, timeout, malformed body) */
} hk_http_request;

/** Called once per complete request on the loop thread. */
typedef void (*hk_http_handler)(hk_http_request *req, void *data);

/**
 * Called on the loop thread when a request's head is complete, before any
 * of its body is read and before a 100 Continue is sent. req has every
 * field but the body (body is "" and body_len 0; body_expected says whether
 * one follows); it is valid during the call only, except that the hook may
 * set req->slot for the handler.
 *
 * The hook does one of two things, within the call:
 *   - nothing (or only set req->slot): the body is read and buffered as
 *     usual and the handler runs when the request is complete;
 *   - answer with hk_http_respond (e.g. 401 or 403): the request ends
 *     there. Its body is never read or buffered and the handler never runs
 *     for it. As the unread body cannot be skipped safely, the answer
 *     carries "Connection: close" and the connection closes after it
 *     (draining, not buffering, what the client still sends, so it can read
 *     the answer). A hook that wants to keep the connection for a request
 *     without a body (body_expected false) may leave the answer to the
 *     handler instead.
 * It must not answer later, from another callback.
 */
typedef void (*hk_http_head_hook)(hk_http_request *req, void *data);

/**
 * Formats the body of an error the server answers by itself (400, 408,
 * 413, 431) in the API dialect of path (NULL when the target is unknown).
 * Returns a malloc'd NUL-terminated JSON string the server frees.
 */
typedef char *(*hk_http_error_body)(const char *path, size_t path_len, int status, const char *message);

/**
 * Called on the loop thread for every answer the server sends, the
 * handler's and its own (400, 408, 413, 417, 431, 503), as it is queued:
 * the request's path (still percent-encoded; NULL when the target never
 * arrived), the status, and the milliseconds since the request was
 * complete (its head, for an answer before the body; 0 for an answer
 * before the head was complete). For metrics.
 */
typedef void (*hk_http_response_hook)(const char *path, size_t path_len, int status, uint64_t ms, void *data);

/** Creates a server on loop; cfg must outlive it. */
int hk_http_server_create(hk_http_server **out, uv_loop_t *loop, const hk_config *cfg, hk_http_handler handler,
                          void *data, hk_http_error_body error_body) HK_MUST_CHECK;

/**
 * Sets the head hook (NULL: none), called with the server's data, and the
 * function that frees req->slot (NULL when slots need no freeing). Call
 * before hk_http_server_listen.
 */
void hk_http_server_on_head(hk_http_server *srv, hk_http_head_hook hook, void (*slot_free)(void *slot));

/** Sets the response hook (NULL: none), called with the server's data. Call before hk_http_server_listen. */
void hk_http_server_on_response(hk_http_server *srv, hk_http_response_hook hook);

/**
 * Listens on "HOST:PORT" or "[V6]:PORT" (port 0: any free port). Logs the
 * bound address as "listening on http://ADDR".
 */
int hk_http_server_listen(hk_http_server *srv, const char *addr) HK_MUST_CHECK;

/**
 * Like hk_http_server_listen; with reuseport, the socket is made with
 * SO_REUSEPORT set before it is bound, so that servers on other loops
 * (workers) can listen on the same address and the kernel spreads the
 * connections between them. bound (may be NULL) receives the address
 * actually bound as "HOST:PORT" (port 0 resolved, HOST as given), for the
 * other workers to listen on.
 */
int hk_http_server_listen_ex(hk_http_server *srv, const char *addr, bool reuseport, char *bound,
                             size_t boundlen) HK_MUST_CHECK;

/**
 * Serves an already connected stream socket as if it had been accepted
 * (one end of a socketpair in the fuzz harness and tests). On success the
 * server owns sock and closes it with the connection; on failure the caller
 * keeps it. remote names the peer in logs. Taken even past max_connections.
 */
int hk_http_server_adopt(hk_http_server *srv, uv_os_sock_t sock, const char *remote) HK_MUST_CHECK;

/**
 * Stops accepting, closes idle connections and lets in-flight requests
 * finish; drained is called once no connection is left. Then the server
 * can be freed with hk_http_server_free once its handles are closed (after
 * the loop has run).
 */
void hk_http_server_shutdown(hk_http_server *srv, void (*drained)(hk_http_server *srv));

/** Frees the server after shutdown has drained and the loop has closed its handles. */
void hk_http_server_free(hk_http_server *srv);

/** Number of open client connections. */
uint32_t hk_http_server_connections(const hk_http_server *srv);

/**
 * Answers req. body (len bytes, may be NULL) is copied. extra_headers is
 * NULL or preformatted "Name: value\r\n" lines. A Content-Length, Date and
 * (when content_type is not NULL) Content-Type header are added. After this
 * call req must not be touched (req->slot is freed within it). Called from
 * the head hook it refuses the request before its body (see
 * hk_http_head_hook).
 */
void hk_http_respond(hk_http_request *req, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t len);

/** Finds a header by case-insensitive name; NULL when absent. */
const hk_header *hk_http_header(const hk_http_request *req, const char *name);

/** The reason phrase of an HTTP status ("OK", "Not Found", ...). */
const char *hk_http_reason(int status);

/** Writes an RFC 7231 IMF-fixdate for t (seconds) into buf (at least 30 bytes). */
void hk_http_date(char *buf, size_t len, time_t t);

#endif
