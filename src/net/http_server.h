/*
 * http_server.h: the inbound HTTP/1.1 server on the libuv loop.
 *
 * One request per connection is handled at a time: when a request is
 * complete the connection stops reading until its response has been written,
 * so pipelined requests are answered in order and a client that sends
 * faster than it reads costs at most one buffered read.
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
    uint64_t start_ms;       /**< loop time when the request was complete */
    char remote[64];         /**< peer address, for logs */
} hk_http_request;

/** Called once per complete request on the loop thread. */
typedef void (*hk_http_handler)(hk_http_request *req, void *data);

/**
 * Formats the body of an error the server answers by itself (400, 408,
 * 413, 431) in the API dialect of path (NULL when the target is unknown).
 * Returns a malloc'd NUL-terminated JSON string the server frees.
 */
typedef char *(*hk_http_error_body)(const char *path, size_t path_len, int status, const char *message);

/** Creates a server on loop; cfg must outlive it. */
int hk_http_server_create(hk_http_server **out, uv_loop_t *loop, const hk_config *cfg, hk_http_handler handler,
                          void *data, hk_http_error_body error_body) HK_MUST_CHECK;

/**
 * Listens on "HOST:PORT" or "[V6]:PORT" (port 0: any free port). Logs the
 * bound address as "listening on http://ADDR".
 */
int hk_http_server_listen(hk_http_server *srv, const char *addr) HK_MUST_CHECK;

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
 * call req must not be touched.
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
