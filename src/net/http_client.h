/*
 * http_client.h: the outbound HTTP/1.1 client used for every delivery,
 * test call and synchronous invocation.
 *
 * POST (or any method) with a Content-Length body over plain TCP or TLS
 * (mbedTLS over memory BIOs on the libuv stream). Keep-alive connections are
 * pooled per origin (scheme, host, port) and reused; TLS sessions are
 * resumed on new connections to the same origin. An origin no request or
 * connection uses is forgotten after idle_timeout_ms, so memory follows
 * the origins in use, not every target ever sent to. DNS runs on the loop
 * (resolver.h, c-ares: never on the threadpool the group commit uses)
 * with its own timeout; every resolved address passes the SSRF guard
 * (ssrf.h) before a connection is made, and a refusal names the address
 * and the rule. URLs are parsed by hk_url_parse (url.h), the parser that
 * also checks them when they are saved. Separate DNS, connect, first-byte
 * and total timeouts each fail with their own error text. The loop never
 * blocks.
 */
#ifndef HK_HTTP_CLIENT_H
#define HK_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "common.h"

typedef struct hk_client hk_client;

/**
 * Client-wide settings; copied at create (strings too). A timeout, size or
 * idle time of 0 takes the default in brackets.
 */
typedef struct hk_client_opts {
    uint64_t connect_timeout_ms;    /**< TCP connect plus TLS handshake [10 s] */
    uint64_t first_byte_timeout_ms; /**< request written to first response byte [30 s] */
    uint64_t total_timeout_ms;      /**< whole exchange, DNS included [60 s] */
    size_t max_response_bytes;      /**< response body kept; the rest is read and dropped [64 KiB] */
    const char *ca_file;            /**< PEM CA bundle for verifying servers [HK_TLS_DEFAULT_CA_FILE] */
    const char *allow_targets;      /**< CIDR list the SSRF guard lets through ("" or NULL = none) */
    uint32_t max_idle_per_origin;   /**< idle keep-alive connections kept per origin (0: no pooling) */
    uint64_t idle_timeout_ms;       /**< an idle pooled connection is closed after this [30 s] */
    const char *user_agent;         /**< User-Agent header value ["hookd/" HK_VERSION] */
    uint64_t dns_timeout_ms;        /**< one name lookup [connect_timeout_ms] */
    const char *dns_servers;        /**< "IP[:PORT],..." DNS servers to ask instead of /etc/resolv.conf's
                                         (NULL or "": the system's); /etc/hosts is read first either way */
} hk_client_opts;

/**
 * One request. Everything is copied by hk_client_send and nothing needs to
 * outlive the call, except a body given with body_ref: that one is not
 * copied, the client holds references to it instead.
 */
typedef struct hk_client_request {
    const char *method;      /**< "POST" when NULL */
    const char *url;         /**< absolute http:// or https:// URL, as hk_url_parse accepts it */
    const char *headers;     /**< extra "Name: value\r\n" lines; the client adds Host, Content-Length,
                                  User-Agent and Connection */
    const char *body;        /**< request body (may be NULL when body_len is 0) */
    size_t body_len;         /**< bytes in body */
    const char *ca_file;     /**< per-request CA bundle overriding the client's (NULL: client's) */
    const char *client_cert; /**< PEM client certificate file for mutual TLS (NULL: none) */
    const char *client_key;  /**< PEM private key of client_cert */
    /**
     * NULL: body is copied. Otherwise body stays where it is and the client
     * calls body_ref(body_owner, +1) for every holder it makes (the request,
     * a write still queued in the kernel's stead) and body_ref(body_owner,
     * -1) when that holder is done, possibly after the request's callback;
     * body must stay valid and unchanged until the last -1.
     */
    void (*body_ref)(void *owner, int delta);
    void *body_owner; /**< passed to body_ref */
} hk_client_request;

/**
 * The outcome of one exchange; valid only during the callback (copy what
 * you keep).
 */
typedef struct hk_client_result {
    int error;                /**< 0 when a complete response arrived; else a negative code */
    const char *error_text;   /**< readable reason when error != 0, e.g. "connect timeout after 5000 ms",
                                   "TLS: certificate verify failed: ...", "refused by SSRF guard: 127.0.0.1
                                   is loopback", "connection refused", "DNS lookup for x.example timed out
                                   after 5000 ms" */
    const char *refused_addr; /**< when the SSRF guard refused the target (error HK_EFORBIDDEN): the address it
                                   refused, e.g. "127.0.0.1"; "" otherwise. For a log line "webhook N: refused
                                   address A by rule R" */
    const char *refused_rule; /**< the rule that refused refused_addr, e.g. "loopback", "private (RFC 1918)";
                                   "" when nothing was refused */
    int status;               /**< HTTP status; 0 when no response came */
    const char *status_line;  /**< "HTTP/1.1 200 OK" ("" when none) */
    const char *headers;      /**< raw response header lines "Name: value\r\n..." ("" when none) */
    size_t headers_len;       /**< bytes in headers */
    const char *body;         /**< response body, at most max_response_bytes ("" when none) */
    size_t body_len;          /**< bytes in body */
    bool body_truncated;      /**< the body was longer than what is kept */
    const char *request_head; /**< request line and headers as sent ("" when nothing was sent) */
    const char *user_agent;   /**< the User-Agent value the client sends (never NULL from the client) */
    uint64_t duration_ms;     /**< from hk_client_send to completion */
    bool reused;              /**< a pooled connection carried it */
    bool tls_resumed;         /**< the TLS connection resumed a saved session (abbreviated handshake) */
} hk_client_result;

/** Called once per request on the loop thread (also with UV_ECANCELED when the client closes). */
typedef void (*hk_client_cb)(const hk_client_result *res, void *arg);

/** Origins without requests or connections kept at most (their TLS sessions with them); older ones are freed. */
#define HK_CLIENT_MAX_UNUSED_ORIGINS 256

/** Response status line plus header block kept at most; a longer head fails the request. */
#define HK_CLIENT_MAX_RESPONSE_HEAD 65536

/**
 * Creates a client on loop. HK_EINVAL (logged, naming the entry) when
 * allow_targets or dns_servers do not parse; HK_ETLS when the DRBG cannot
 * be seeded; UV_ENOMEM or HK_ECONFIG when the resolver cannot start.
 */
int hk_client_create(hk_client **out, uv_loop_t *loop, const hk_client_opts *opts) HK_MUST_CHECK;

/**
 * Starts a request; cb runs later, never from within this call. Returns 0,
 * or an error without calling cb: HK_EINVAL for a URL hk_url_parse refuses
 * (not absolute http(s), userinfo, '%' in the host, ...), a bad method or
 * malformed extra headers; HK_ETOOBIG for a body over 256 MiB; HK_ESHUTDOWN once
 * hk_client_close was called.
 */
int hk_client_send(hk_client *c, const hk_client_request *req, hk_client_cb cb, void *arg) HK_MUST_CHECK;

/**
 * Writes the head hk_client_send makes for a request into out (appended):
 * request line, Host, User-Agent, Content-Length, Connection, then extra
 * ("Name: value\r\n" lines; a missing final CRLF is added) and the empty
 * line. HK_EINVAL (out unchanged) when url does not parse. Also used to
 * show a request as it was sent from what an attempt record keeps.
 */
int hk_client_head(hk_buf *out, const char *method, const char *url, const char *user_agent, size_t body_len,
                   const char *extra) HK_MUST_CHECK;

/**
 * Finds the first response header called name (case-insensitive) in res and
 * copies its value, NUL-terminated and cut to len - 1 bytes, into buf.
 * 0 when found, HK_ENOTFOUND when not.
 */
int hk_client_header(const hk_client_result *res, const char *name, char *buf, size_t len);

/**
 * Closes every connection, failing requests in flight with UV_ECANCELED
 * (their callbacks run from within this call; hk_client_send then returns
 * HK_ESHUTDOWN). Once all its handles are closed the client is freed and
 * then closed(arg) runs (closed may be NULL), always from the loop, never
 * from within this call. Further calls are ignored.
 */
void hk_client_close(hk_client *c, void (*closed)(void *arg), void *arg);

/** Number of requests in flight. */
size_t hk_client_active(const hk_client *c);

/**
 * Origins (scheme, host, port, TLS files) the client holds state for: those
 * with requests or connections, plus unused ones kept for idle_timeout_ms
 * (at most HK_CLIENT_MAX_UNUSED_ORIGINS) so a TLS session can resume.
 */
size_t hk_client_origins(const hk_client *c);

#endif
