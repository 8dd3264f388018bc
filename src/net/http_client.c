/*
 * http_client.c: the outbound HTTP/1.1 client.
 *
 * A request walks KICK -> (pooled connection | DNS -> SSRF check -> connect
 * -> TLS handshake) -> WRITE -> WAIT -> READ -> done. It owns two timers:
 * the total timer runs from hk_client_send to the end; the phase timer
 * first defers the start to the next loop iteration (so the callback never
 * runs inside hk_client_send), then bounds the DNS lookup (c-ares on the
 * loop, resolver.h), the connect phase (TCP and TLS) and the wait for the
 * first response byte.
 *
 * A connection belongs to one origin (scheme, host, port and the TLS files
 * used; http_origin.c keeps the table of them and frees those nobody uses)
 * and carries one request at a time. When a response ends cleanly and
 * both sides agreed on keep-alive, it goes back to its origin's idle list;
 * an idle connection keeps reading so that a server's close is seen at
 * once, and a connection that still dies on reuse before any response byte
 * gets its request retried once on a fresh connection.
 *
 * Memory: requests and connections are freed only in the close callbacks of
 * their embedded handles; write buffers belong to their write request and
 * are freed in the write callback (also on UV_ECANCELED). The client itself
 * goes once everything it created is gone.
 */
#include "http_client.h"

#include <arpa/inet.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http_origin.h"
#include "log.h"
#include "resolver.h"
#include "ssrf.h"
#include "tls.h"
#include "url.h"

#define READ_BUF_SIZE 65536
#define PLAIN_BUF_SIZE 16384
#define MAX_REASON_LEN 256
#define ERROR_TEXT_LEN 600

/* One uv_write carries the request: its length must fit in an unsigned. */
#define HK_CLIENT_MAX_REQUEST_BODY (256u * 1024 * 1024)

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_FIRST_BYTE_TIMEOUT_MS 30000
#define DEFAULT_TOTAL_TIMEOUT_MS 60000
#define DEFAULT_MAX_RESPONSE_BYTES 65536
#define DEFAULT_IDLE_TIMEOUT_MS 30000

enum conn_state { CS_CONNECTING, CS_HANDSHAKE, CS_ACTIVE, CS_IDLE, CS_CLOSING };

enum phase { PH_KICK, PH_DNS, PH_CONNECT, PH_WRITE, PH_WAIT };

struct conn;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* idle timeout */
    uv_connect_t connect;
    hk_client *c;
    struct hk__origin *o;
    struct creq *req; /* the request carried, NULL when idle */
    hk_tls_conn *tls;
    struct conn *prev, *next;   /* all connections of the client */
    struct conn *iprev, *inext; /* the origin's idle list */
    enum conn_state state;
    int open_handles;
    size_t writes_pending;
    bool tls_resumed;
};

struct write_req {
    uv_write_t w;
    struct conn *conn;
    char *buf;
    bool request_end; /* the last bytes of the request */
};

struct creq {
    hk_client *c;
    struct creq *prev, *next; /* requests in flight */
    hk_client_cb cb;
    void *arg;
    uv_timer_t total_timer, phase_timer;
    hk_resolve_req *dns; /* the lookup in flight, NULL when none */
    int open_handles;
    enum phase phase;
    struct hk__origin *o;
    struct conn *conn;
    char *out; /* request head and body as sent */
    size_t out_len;
    char *head; /* the head alone, NUL-terminated, for the result */
    bool head_only;
    uint64_t start_ns;
    bool done, retried, reused, tls_resumed;
    bool sent; /* the head went out at least once */

    /* The response. */
    llhttp_t parser;
    bool got_bytes, complete, keep_alive, headers_done;
    int status;
    char status_line[MAX_REASON_LEN + 32];
    char reason[MAX_REASON_LEN + 1];
    size_t reason_len;
    hk_buf rhead; /* "Name: value\r\n" lines, at most HK_CLIENT_MAX_RESPONSE_HEAD - 1 bytes */
    hk_buf body;  /* at most max_response_bytes */
    bool truncated;
    int cb_error; /* set by a parser callback that gives up */
    const char *cb_error_text;

    int error;
    char error_text[ERROR_TEXT_LEN];
    hk_ssrf_refusal refused; /* the SSRF guard's refusal (rule "" when none) */
};

struct hk_client {
    uv_loop_t *loop;
    hk_client_opts o;
    char *ca_file, *dns_servers, *user_agent;
    hk_ssrf *ssrf;
    hk_resolver *resolver;
    hk_tls_ctx *tls;
    llhttp_settings_t settings;
    hk__origins origins; /* the origins in use, and the unused ones for a while (http_origin.h) */
    struct creq *active;
    size_t nactive;
    struct conn *conns;
    size_t live;         /* requests, connections, the resolver, the origin timer and the sentinel not yet freed */
    uv_timer_t sentinel; /* closed last, so that `closed` always runs from the loop */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
    char read_buf[READ_BUF_SIZE];
    char plain_buf[PLAIN_BUF_SIZE];
};

static void req_fail(struct creq *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void conn_fail(struct conn *cn, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void req_finish(struct creq *r);
static void req_resolve(struct creq *r);
static void conn_close(struct conn *cn);
static void conn_send_request(struct conn *cn);
static void client_maybe_freed(hk_client *c);
static void on_phase_timeout(uv_timer_t *t);

/* ---- response parsing ------------------------------------------------------------ */

static int cb_fail(struct creq *r, int err, const char *text)
{
    r->cb_error = err;
    r->cb_error_text = text;
    return HPE_USER;
}

static int head_append(struct creq *r, const char *at, size_t len)
{
    /* The peer decides how much this grows: fail the request, not the process. */
    int rc = hk_buf_try_append(&r->rhead, at, len, HK_CLIENT_MAX_RESPONSE_HEAD - 1);
    if (rc == HK_ETOOBIG)
        return cb_fail(r, HK_ETOOBIG, "response header block too large");
    if (rc != 0)
        return cb_fail(r, rc, "out of memory for the response header block");
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct creq *r = p->data;
    /* Also runs for the final response after a 1xx: forget the interim one. */
    hk_buf_reset(&r->rhead);
    r->reason_len = 0;
    r->reason[0] = '\0';
    r->headers_done = false;
    r->status = 0;
    return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len)
{
    struct creq *r = p->data;
    if (r->reason_len + len > MAX_REASON_LEN)
        len = MAX_REASON_LEN - r->reason_len;
    memcpy(r->reason + r->reason_len, at, len);
    r->reason_len += len;
    r->reason[r->reason_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    return head_append(p->data, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    return head_append(p->data, ": ", 2);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    return head_append(p->data, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    return head_append(p->data, "\r\n", 2);
}

static int on_headers_complete(llhttp_t *p)
{
    struct creq *r = p->data;
    r->status = p->status_code;
    r->headers_done = true;
    snprintf(r->status_line, sizeof(r->status_line), "HTTP/%d.%d %d%s%s", p->http_major, p->http_minor, p->status_code,
             r->reason_len ? " " : "", r->reason);
    /* The response to HEAD has no body whatever its headers say. */
    return r->head_only && p->status_code >= 200 ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct creq *r = p->data;
    size_t max = r->c->o.max_response_bytes;
    size_t keep = r->body.len < max ? max - r->body.len : 0;
    if (keep > len)
        keep = len;
    if (keep < len)
        r->truncated = true;
    if (keep == 0)
        return 0;
    if (hk_buf_try_append(&r->body, at, keep, max) != 0)
        return cb_fail(r, UV_ENOMEM, "out of memory for the response body");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct creq *r = p->data;
    /* Interim responses (100 Continue, 103 Early Hints) precede the real one. */
    if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
        hk_buf_reset(&r->body);
        r->truncated = false;
        return 0;
    }
    r->complete = true;
    r->keep_alive = llhttp_should_keep_alive(p) && p->status_code != 101;
    return HPE_PAUSED;
}

/* ---- request life ------------------------------------------------------------------ */

static uint64_t ms_since(uint64_t start_ns)
{
    return (uv_hrtime() - start_ns) / 1000000u;
}

static void req_reset_response(struct creq *r)
{
    r->got_bytes = r->complete = r->keep_alive = r->headers_done = r->truncated = false;
    r->status = 0;
    r->status_line[0] = '\0';
    r->reason_len = 0;
    r->reason[0] = '\0';
    hk_buf_reset(&r->rhead);
    hk_buf_reset(&r->body);
    r->cb_error = 0;
    r->cb_error_text = NULL;
    llhttp_init(&r->parser, HTTP_RESPONSE, &r->c->settings);
    r->parser.data = r;
}

static void req_maybe_free(struct creq *r)
{
    if (r->open_handles > 0)
        return;
    hk_client *c = r->c;
    hk__origin_unref(&c->origins, r->o);
    free(r->out);
    free(r->head);
    hk_buf_free(&r->rhead);
    hk_buf_free(&r->body);
    free(r);
    c->live--;
    client_maybe_freed(c);
}

static void req_handle_closed(uv_handle_t *h)
{
    struct creq *r = h->data;
    r->open_handles--;
    req_maybe_free(r);
}

/* Ends a request: detaches it, runs its callback and lets its handles close. */
static void req_finish(struct creq *r)
{
    if (r->done)
        return;
    r->done = true;
    hk_client *c = r->c;
    if (r->conn != NULL)
        conn_close(r->conn); /* a request that ends while attached failed: its connection is unusable */
    if (r->prev)
        r->prev->next = r->next;
    else
        c->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    c->nactive--;
    if (r->dns != NULL) {
        hk_resolve_cancel(r->dns); /* its callback will not run */
        r->dns = NULL;
    }
    uv_close((uv_handle_t *)&r->total_timer, req_handle_closed);
    uv_close((uv_handle_t *)&r->phase_timer, req_handle_closed);

    hk_client_result res = {0};
    res.error = r->error;
    res.error_text = r->error ? r->error_text : "";
    res.status = r->headers_done ? r->status : 0;
    res.status_line = r->headers_done ? r->status_line : "";
    res.headers = r->headers_done ? hk_buf_cstr(&r->rhead) : "";
    res.headers_len = r->headers_done ? r->rhead.len : 0;
    res.body = hk_buf_cstr(&r->body);
    res.body_len = r->body.len;
    res.body_truncated = r->truncated;
    res.request_head = r->sent ? r->head : "";
    res.duration_ms = ms_since(r->start_ns);
    res.reused = r->reused;
    res.tls_resumed = r->tls_resumed;
    bool refused = r->error == HK_EFORBIDDEN && r->refused.rule[0] != '\0';
    res.refused_addr = refused ? r->refused.addr : "";
    res.refused_rule = refused ? r->refused.rule : "";
    r->cb(&res, r->arg);
}

static void req_fail(struct creq *r, int err, const char *fmt, ...)
{
    if (r->done)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error_text, sizeof(r->error_text), fmt, ap);
    va_end(ap);
    r->error = err;
    hk_debug("http client: %s: %s", r->o->name, r->error_text);
    req_finish(r);
}

static void on_total_timeout(uv_timer_t *t)
{
    struct creq *r = hk_container_of(t, struct creq, total_timer);
    req_fail(r, UV_ETIMEDOUT, "request took longer than %llu ms", (unsigned long long)r->c->o.total_timeout_ms);
}

/* ---- connections ---------------------------------------------------------------------- */

static void idle_unlink(struct conn *cn)
{
    struct hk__origin *o = cn->o;
    if (cn->iprev)
        cn->iprev->inext = cn->inext;
    else
        o->idle = cn->inext;
    if (cn->inext)
        cn->inext->iprev = cn->iprev;
    cn->iprev = cn->inext = NULL;
    o->nidle--;
}

static void conn_handle_closed(uv_handle_t *h)
{
    struct conn *cn = h->data;
    if (--cn->open_handles > 0)
        return;
    hk_client *c = cn->c;
    hk__origin_unref(&c->origins, cn->o);
    hk_tls_conn_free(cn->tls);
    free(cn);
    c->live--;
    client_maybe_freed(c);
}

/* Closes a connection and detaches its request (the caller decides the request's fate). */
static void conn_close(struct conn *cn)
{
    if (cn->state == CS_CLOSING)
        return;
    hk_client *c = cn->c;
    if (cn->state == CS_IDLE)
        idle_unlink(cn);
    if (cn->req != NULL) {
        cn->req->conn = NULL;
        cn->req = NULL;
    }
    cn->state = CS_CLOSING;
    if (cn->prev)
        cn->prev->next = cn->next;
    else
        c->conns = cn->next;
    if (cn->next)
        cn->next->prev = cn->prev;
    /* Pending connect and write requests get their callbacks with
     * UV_ECANCELED before the close callbacks, which free the connection. */
    uv_close((uv_handle_t *)&cn->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&cn->tcp, conn_handle_closed);
}

static bool dead_on_reuse(int err)
{
    return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ECONNABORTED;
}

/* Fails the connection and its request; a reused connection that died before any response byte gets one retry. */
static void conn_fail(struct conn *cn, int err, const char *fmt, ...)
{
    struct creq *r = cn->req;
    conn_close(cn);
    if (r == NULL || r->done)
        return;
    if (r->reused && !r->got_bytes && !r->retried && dead_on_reuse(err)) {
        hk_debug("http client: %s: pooled connection was closed by the server, retrying on a new one", r->o->name);
        r->retried = true;
        r->reused = false;
        uv_timer_stop(&r->phase_timer);
        req_reset_response(r);
        req_resolve(r);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error_text, sizeof(r->error_text), fmt, ap);
    va_end(ap);
    r->error = err;
    hk_debug("http client: %s: %s", r->o->name, r->error_text);
    req_finish(r);
}

static void on_idle_timeout(uv_timer_t *t)
{
    conn_close(hk_container_of(t, struct conn, timer));
}

/* The response is complete: the connection goes back to the pool or is closed, then the callback runs. */
static void req_complete(struct creq *r)
{
    struct conn *cn = r->conn;
    hk_client *c = r->c;
    struct hk__origin *o = r->o;
    r->conn = NULL;
    cn->req = NULL;
    if (r->keep_alive && cn->writes_pending == 0 && !c->closing && o->nidle < c->o.max_idle_per_origin) {
        cn->state = CS_IDLE;
        cn->iprev = NULL;
        cn->inext = o->idle;
        if (o->idle)
            o->idle->iprev = cn;
        o->idle = cn;
        o->nidle++;
        uv_timer_start(&cn->timer, on_idle_timeout, c->o.idle_timeout_ms, 0);
    } else {
        conn_close(cn);
    }
    r->error = 0;
    req_finish(r);
}

/* The whole request is with the kernel: wait for the first byte. */
static void request_written(struct conn *cn, bool request_end)
{
    struct creq *r = cn->req;
    if (request_end && r != NULL && r->phase == PH_WRITE) {
        r->phase = PH_WAIT;
        if (!r->got_bytes)
            uv_timer_start(&r->phase_timer, on_phase_timeout, r->c->o.first_byte_timeout_ms, 0);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = hk_container_of(w, struct write_req, w);
    struct conn *cn = wr->conn;
    bool request_end = wr->request_end;
    free(wr->buf);
    free(wr);
    cn->writes_pending--;
    if (cn->state == CS_CLOSING)
        return;
    if (status != 0) {
        if (status == UV_ECONNRESET || status == UV_EPIPE)
            conn_fail(cn, status, "connection reset by peer");
        else
            conn_fail(cn, status, "write failed: %s", uv_strerror(status));
        return;
    }
    request_written(cn, request_end);
}

/* Queues buf (malloc'd; freed here or in on_write) on the connection. */
static int conn_write(struct conn *cn, char *buf, size_t len, bool request_end)
{
    size_t off = 0;
    if (cn->writes_pending == 0) {
        /* Usually the kernel takes it all at once: no write request, no
         * callback, no poll change. */
        uv_buf_t t = uv_buf_init(buf, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&cn->tcp, &t, 1);
        if (n == (int)len) {
            free(buf);
            request_written(cn, request_end);
            return 0;
        }
        if (n > 0)
            off = (size_t)n;
    }
    struct write_req *wr = hk_malloc(sizeof(*wr));
    wr->conn = cn;
    wr->buf = buf;
    wr->request_end = request_end;
    uv_buf_t b = uv_buf_init(buf + off, (unsigned)(len - off));
    int rc = uv_write(&wr->w, (uv_stream_t *)&cn->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(buf);
        free(wr);
        return rc;
    }
    cn->writes_pending++;
    return 0;
}

/* Sends whatever ciphertext mbedTLS produced. */
static int conn_flush_tls(struct conn *cn, bool request_end)
{
    char *buf;
    size_t len;
    hk_tls_take_output(cn->tls, &buf, &len);
    if (buf == NULL)
        return 0;
    return conn_write(cn, buf, len, request_end);
}

static void conn_send_request(struct conn *cn)
{
    struct creq *r = cn->req;
    uv_timer_stop(&r->phase_timer); /* the connect phase is over */
    r->phase = PH_WRITE;
    r->sent = true;
    req_reset_response(r);
    int rc;
    if (cn->tls != NULL) {
        char err[ERROR_TEXT_LEN];
        if (hk_tls_write(cn->tls, r->out, r->out_len, err, sizeof(err)) != 0) {
            conn_fail(cn, HK_ETLS, "%s", err);
            return;
        }
        rc = conn_flush_tls(cn, true);
    } else {
        /* The buffer is the write request's: the request may end before the write does. */
        char *copy = hk_malloc(r->out_len);
        memcpy(copy, r->out, r->out_len);
        rc = conn_write(cn, copy, r->out_len, true);
    }
    if (rc != 0)
        conn_fail(cn, rc, "%s", rc == UV_EPIPE || rc == UV_ECONNRESET ? "connection reset by peer" : uv_strerror(rc));
}

/* Plaintext response bytes for the connection's request. */
static void conn_plain(struct conn *cn, const char *data, size_t len)
{
    struct creq *r = cn->req;
    if (cn->state != CS_ACTIVE || r == NULL) {
        /* Bytes nobody asked for on an idle connection: it cannot be trusted with a request. */
        conn_close(cn);
        return;
    }
    if (!r->got_bytes) {
        r->got_bytes = true;
        if (r->phase == PH_WAIT)
            uv_timer_stop(&r->phase_timer);
    }
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED && r->complete) {
        const char *pos = llhttp_get_error_pos(&r->parser);
        if (pos != NULL && pos < data + len)
            r->keep_alive = false; /* bytes beyond the response: the stream is out of step */
        req_complete(r);
        return;
    }
    if (e == HPE_USER && r->cb_error != 0) {
        conn_fail(cn, r->cb_error, "%s", r->cb_error_text);
        return;
    }
    conn_fail(cn, HK_EPROTO, "invalid response: %s", llhttp_get_error_reason(&r->parser));
}

static void conn_eof(struct conn *cn, int status)
{
    struct creq *r = cn->req;
    if (r == NULL) {
        conn_close(cn); /* the server closed an idle connection */
        return;
    }
    if (cn->state == CS_HANDSHAKE) {
        conn_fail(cn, HK_ETLS, "TLS: %s during the handshake",
                  status == UV_EOF ? "connection closed by the server" : uv_strerror(status));
        return;
    }
    if (r->got_bytes) {
        if (status == UV_EOF) {
            /* A close-delimited body ends here. */
            llhttp_errno_t e = llhttp_finish(&r->parser);
            if (r->complete && (e == HPE_OK || e == HPE_PAUSED)) {
                r->keep_alive = false;
                req_complete(r);
                return;
            }
        }
        conn_fail(cn, status == UV_EOF ? HK_EPROTO : status, "%s before the response was complete",
                  status == UV_EOF          ? "connection closed"
                  : status == UV_ECONNRESET ? "connection reset by peer"
                                            : uv_strerror(status));
        return;
    }
    if (status == UV_EOF)
        conn_fail(cn, UV_EOF, "connection closed before a response");
    else if (status == UV_ECONNRESET)
        conn_fail(cn, status, "connection reset by peer");
    else
        conn_fail(cn, status, "read failed: %s", uv_strerror(status));
}

static void conn_handshake(struct conn *cn)
{
    char err[ERROR_TEXT_LEN];
    int rc = hk_tls_handshake(cn->tls, err, sizeof(err));
    /* Send what the handshake produced, an alert included. */
    int wrc = conn_flush_tls(cn, false);
    if (rc == HK_TLS_WANT_READ && wrc == 0)
        return;
    if (rc != 0 && rc != HK_TLS_WANT_READ) {
        /* A session the server no longer likes must not poison later connections. */
        hk_tls_session_free(cn->o->session);
        cn->o->session = NULL;
        conn_fail(cn, HK_ETLS, "%s", err);
        return;
    }
    if (wrc != 0) {
        conn_fail(cn, wrc, "%s", wrc == UV_EPIPE ? "connection reset by peer" : uv_strerror(wrc));
        return;
    }
    cn->tls_resumed = hk_tls_resumed(cn->tls);
    cn->req->tls_resumed = cn->tls_resumed;
    hk_tls_session *s = hk_tls_session_save(cn->tls);
    if (s != NULL) {
        hk_tls_session_free(cn->o->session);
        cn->o->session = s;
    }
    cn->state = CS_ACTIVE;
    conn_send_request(cn);
}

static void conn_tls_input(struct conn *cn)
{
    hk_client *c = cn->c;
    if (cn->state == CS_HANDSHAKE) {
        conn_handshake(cn);
        if (cn->state != CS_ACTIVE)
            return;
    }
    for (;;) {
        char err[ERROR_TEXT_LEN];
        int n = hk_tls_read(cn->tls, c->plain_buf, sizeof(c->plain_buf), err, sizeof(err));
        if (n == 0)
            break;
        if (n == UV_EOF) {
            conn_eof(cn, UV_EOF);
            return;
        }
        if (n < 0) {
            conn_flush_tls(cn, false);
            conn_fail(cn, HK_ETLS, "%s", err);
            return;
        }
        conn_plain(cn, c->plain_buf, (size_t)n);
        if (cn->state == CS_CLOSING)
            return;
    }
    if (conn_flush_tls(cn, false) != 0)
        conn_fail(cn, UV_EPIPE, "connection reset by peer");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    HK_UNUSED(suggested);
    struct conn *cn = h->data;
    /* One buffer for all connections: each read is consumed before the next. */
    *buf = uv_buf_init(cn->c->read_buf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *cn = s->data;
    if (cn->state == CS_CLOSING || nread == 0)
        return;
    if (nread < 0) {
        conn_eof(cn, (int)nread);
        return;
    }
    if (cn->tls != NULL) {
        hk_tls_feed(cn->tls, buf->base, (size_t)nread);
        conn_tls_input(cn);
    } else {
        conn_plain(cn, buf->base, (size_t)nread);
    }
}

static void on_connect(uv_connect_t *creq, int status)
{
    struct conn *cn = hk_container_of(creq, struct conn, connect);
    if (status == UV_ECANCELED || cn->state == CS_CLOSING)
        return;
    if (status != 0) {
        if (status == UV_ECONNREFUSED)
            conn_fail(cn, status, "connection refused");
        else if (status == UV_ECONNRESET)
            conn_fail(cn, status, "connection reset by peer");
        else
            conn_fail(cn, status, "connect failed: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cn->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_fail(cn, rc, "read failed: %s", uv_strerror(rc));
        return;
    }
    struct hk__origin *o = cn->o;
    if (!o->tls) {
        cn->state = CS_ACTIVE;
        conn_send_request(cn);
        return;
    }
    char err[ERROR_TEXT_LEN];
    if (hk_tls_conn_create(&cn->tls, cn->c->tls, o->host, o->ca_file, o->cert, o->key_file, o->session, err,
                           sizeof(err)) != 0) {
        conn_fail(cn, HK_ETLS, "%s", err);
        return;
    }
    cn->state = CS_HANDSHAKE;
    conn_handshake(cn);
}

/* Opens a fresh connection for r to sa. */
static void conn_open(struct creq *r, const struct sockaddr *sa)
{
    hk_client *c = r->c;
    struct conn *cn = hk_calloc(1, sizeof(*cn));
    cn->c = c;
    cn->o = r->o;
    hk__origin_ref(cn->o);
    uv_tcp_init(c->loop, &cn->tcp);
    uv_timer_init(c->loop, &cn->timer);
    cn->tcp.data = cn;
    cn->timer.data = cn;
    cn->open_handles = 2;
    cn->state = CS_CONNECTING;
    cn->next = c->conns;
    if (c->conns)
        c->conns->prev = cn;
    c->conns = cn;
    c->live++;
    cn->req = r;
    r->conn = cn;
    r->reused = false;
    r->phase = PH_CONNECT;
    uv_timer_start(&r->phase_timer, on_phase_timeout, c->o.connect_timeout_ms, 0);
    int rc = uv_tcp_connect(&cn->connect, &cn->tcp, sa, on_connect);
    if (rc != 0)
        conn_fail(cn, rc, "%s", rc == UV_ECONNREFUSED ? "connection refused" : uv_strerror(rc));
}

/* ---- DNS and the SSRF guard ---------------------------------------------------------- */

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct creq *r = arg;
    r->dns = NULL;
    if (status != 0) {
        req_fail(r, status, "DNS lookup for %s failed: %s", r->o->host, text[0] ? text : uv_strerror(status));
        return;
    }
    /* The first address the guard allows is used; when none is, the
     * refusal of the first one is reported. */
    const struct sockaddr_storage *chosen = NULL;
    hk_ssrf_refusal why;
    for (size_t i = 0; i < n && chosen == NULL; i++) {
        if (hk_ssrf_check(r->c->ssrf, (const struct sockaddr *)&addrs[i], &why) == 0)
            chosen = &addrs[i];
        else if (r->refused.rule[0] == '\0')
            r->refused = why;
    }
    if (chosen == NULL) {
        if (r->refused.rule[0] == '\0')
            req_fail(r, HK_EFORBIDDEN, "refused by SSRF guard: no usable address for the host");
        else
            req_fail(r, HK_EFORBIDDEN, "refused by SSRF guard: %s is %s", r->refused.addr, r->refused.rule);
        return;
    }
    struct sockaddr_storage sa = *chosen;
    uint16_t port = htons((uint16_t)r->o->port);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = port;
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = port;
    conn_open(r, (struct sockaddr *)&sa);
}

/* Looks the origin's host up (IP literals too, answered without a query), bounded by the DNS timeout. */
static void req_resolve(struct creq *r)
{
    r->phase = PH_DNS;
    memset(&r->refused, 0, sizeof(r->refused));
    int rc = hk_resolve(r->c->resolver, r->o->host, &r->dns, on_resolved, r);
    if (rc != 0) {
        req_fail(r, rc, "DNS lookup for %s failed: %s", r->o->host, hk_strerror(rc));
        return;
    }
    uv_timer_start(&r->phase_timer, on_phase_timeout, r->c->o.dns_timeout_ms, 0);
}

/* The phase timer: the deferred start, then the connect and first-byte limits. */
static void on_phase_timeout(uv_timer_t *t)
{
    struct creq *r = hk_container_of(t, struct creq, phase_timer);
    hk_client *c = r->c;
    switch (r->phase) {
    case PH_KICK: {
        struct hk__origin *o = r->o;
        if (o->idle != NULL) {
            struct conn *cn = o->idle;
            idle_unlink(cn);
            uv_timer_stop(&cn->timer);
            cn->state = CS_ACTIVE;
            cn->req = r;
            r->conn = cn;
            r->reused = true;
            r->tls_resumed = cn->tls_resumed;
            conn_send_request(cn);
        } else {
            req_resolve(r);
        }
        break;
    }
    case PH_DNS:
        hk_resolve_cancel(r->dns);
        r->dns = NULL;
        req_fail(r, UV_ETIMEDOUT, "DNS lookup for %s timed out after %llu ms", r->o->host,
                 (unsigned long long)c->o.dns_timeout_ms);
        break;
    case PH_CONNECT:
        req_fail(r, UV_ETIMEDOUT, "connect timeout after %llu ms", (unsigned long long)c->o.connect_timeout_ms);
        break;
    case PH_WAIT:
        req_fail(r, UV_ETIMEDOUT, "no response within %llu ms", (unsigned long long)c->o.first_byte_timeout_ms);
        break;
    default: break;
    }
}

/* ---- request checks ------------------------------------------------------------------ */

static bool valid_method(const char *m)
{
    if (*m == '\0' || strlen(m) > 32)
        return false;
    for (; *m; m++)
        if (!((*m >= 'A' && *m <= 'Z') || *m == '-' || *m == '_'))
            return false;
    return true;
}

/* Extra headers must be "Name: value\r\n" lines: no bare CR or LF that could end the head early. */
static bool valid_headers(const char *h)
{
    while (*h != '\0') {
        const char *eol = strstr(h, "\r\n");
        size_t len = eol ? (size_t)(eol - h) : strlen(h);
        if (len == 0 || memchr(h, ':', len) == NULL || h[0] == ' ' || h[0] == '\t')
            return false;
        for (size_t i = 0; i < len; i++)
            if (h[i] == '\r' || h[i] == '\n' || h[i] == '\0')
                return false;
        h += len + (eol ? 2 : 0);
    }
    return true;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? hk_strdup(s) : NULL;
}

/* ---- API ------------------------------------------------------------------------------ */

int hk_client_create(hk_client **out, uv_loop_t *loop, const hk_client_opts *opts)
{
    hk_client *c = hk_calloc(1, sizeof(*c));
    char err[200] = "";
    int rc;
    *out = NULL;
    if (hk_ssrf_create(&c->ssrf, opts->allow_targets, err, sizeof(err)) != 0) {
        hk_error("http client: allow_targets: %s", err);
        rc = HK_EINVAL;
        goto free_client;
    }
    c->o = *opts;
    c->ca_file = dup_or_null(opts->ca_file);
    c->dns_servers = dup_or_null(opts->dns_servers);
    c->user_agent = hk_strdup(opts->user_agent && *opts->user_agent ? opts->user_agent : "hookd/" HK_VERSION);
    c->o.ca_file = c->ca_file;
    c->o.dns_servers = c->dns_servers;
    c->o.user_agent = c->user_agent;
    c->o.allow_targets = NULL;
    if (c->o.connect_timeout_ms == 0)
        c->o.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (c->o.first_byte_timeout_ms == 0)
        c->o.first_byte_timeout_ms = DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    if (c->o.total_timeout_ms == 0)
        c->o.total_timeout_ms = DEFAULT_TOTAL_TIMEOUT_MS;
    if (c->o.max_response_bytes == 0)
        c->o.max_response_bytes = DEFAULT_MAX_RESPONSE_BYTES;
    if (c->o.idle_timeout_ms == 0)
        c->o.idle_timeout_ms = DEFAULT_IDLE_TIMEOUT_MS;
    if (c->o.dns_timeout_ms == 0)
        c->o.dns_timeout_ms = c->o.connect_timeout_ms;
    if (hk_tls_ctx_create(&c->tls, c->ca_file) != 0) {
        hk_error("http client: cannot seed the TLS random generator");
        rc = HK_ETLS;
        goto free_strings;
    }
    /* c-ares gives up on a query after its tries; the request's own DNS
     * timer fails it sooner when dns_timeout is shorter. */
    uint64_t try_ms = c->o.dns_timeout_ms / 2 > 0 ? c->o.dns_timeout_ms / 2 : 1;
    hk_resolver_opts ro = {.servers = c->dns_servers, .try_timeout_ms = try_ms, .tries = 2};
    if ((rc = hk_resolver_create(&c->resolver, loop, &ro)) != 0)
        goto free_tls;
    /* Parse the CA bundle once now, not on the first delivery; a bundle that
     * cannot be loaded fails HTTPS requests with the reason, not the client. */
    if (hk_tls_ctx_load_ca(c->tls, NULL, err, sizeof(err)) != 0)
        hk_warn("http client: %s", err);
    c->loop = loop;
    llhttp_settings_init(&c->settings);
    c->settings.on_message_begin = on_message_begin;
    c->settings.on_status = on_status;
    c->settings.on_header_field = on_header_field;
    c->settings.on_header_field_complete = on_header_field_complete;
    c->settings.on_header_value = on_header_value;
    c->settings.on_header_value_complete = on_header_value_complete;
    c->settings.on_headers_complete = on_headers_complete;
    c->settings.on_body = on_body;
    c->settings.on_message_complete = on_message_complete;
    uv_timer_init(loop, &c->sentinel);
    c->sentinel.data = c;
    hk__origins_init(&c->origins, loop, c->o.idle_timeout_ms);
    c->live = 3; /* the sentinel, the origin timer and the resolver */
    *out = c;
    return 0;

free_tls:
    hk_tls_ctx_free(c->tls);
free_strings:
    free(c->ca_file);
    free(c->dns_servers);
    free(c->user_agent);
    hk_ssrf_free(c->ssrf);
free_client:
    free(c);
    return rc;
}

int hk_client_send(hk_client *c, const hk_client_request *req, hk_client_cb cb, void *arg)
{
    if (c->closing)
        return HK_ESHUTDOWN;
    hk_url u;
    const char *method = req->method ? req->method : "POST";
    const char *extra = req->headers ? req->headers : "";
    if (hk_url_parse(req->url, &u, NULL) != 0 || !valid_method(method) || !valid_headers(extra) ||
        (req->body == NULL && req->body_len > 0))
        return HK_EINVAL;
    if (req->body_len > HK_CLIENT_MAX_REQUEST_BODY)
        return HK_ETOOBIG;
    struct creq *r = hk_calloc(1, sizeof(*r));
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->o = hk__origin_get(&c->origins, &u, req->ca_file ? req->ca_file : "", req->client_cert ? req->client_cert : "",
                          req->client_key ? req->client_key : "");
    r->head_only = strcmp(method, "HEAD") == 0;
    r->start_ns = uv_hrtime();

    /* The head: request line, the client's headers, then the caller's. */
    char authority[HK_URL_MAX_HOST + 16];
    hk_url_authority(&u, authority, sizeof(authority));
    size_t extra_len = strlen(extra);
    bool extra_crlf = extra_len > 0 && (extra_len < 2 || strcmp(extra + extra_len - 2, "\r\n") != 0);
    hk_buf out = HK_BUF_INIT;
    hk_buf_reserve(&out, strlen(method) + u.target_len + strlen(authority) + strlen(c->user_agent) + extra_len + 160 +
                             req->body_len);
    hk_buf_printf(&out,
                  "%s %s%.*s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nContent-Length: %zu\r\n"
                  "Connection: keep-alive\r\n%s%s\r\n",
                  method, u.target_len == 0 || u.target[0] == '?' ? "/" : "", (int)u.target_len, u.target, authority,
                  c->user_agent, req->body_len, extra, extra_crlf ? "\r\n" : "");
    r->head = hk_strndup(out.data, out.len);
    hk_buf_append(&out, req->body, req->body_len);
    r->out = hk_buf_steal(&out, &r->out_len);

    uv_timer_init(c->loop, &r->total_timer);
    uv_timer_init(c->loop, &r->phase_timer);
    r->total_timer.data = r;
    r->phase_timer.data = r;
    r->open_handles = 2;
    r->next = c->active;
    if (c->active)
        c->active->prev = r;
    c->active = r;
    c->nactive++;
    c->live++;
    req_reset_response(r);
    r->phase = PH_KICK;
    uv_timer_start(&r->total_timer, on_total_timeout, c->o.total_timeout_ms, 0);
    uv_timer_start(&r->phase_timer, on_phase_timeout, 0, 0);
    return 0;
}

int hk_client_header(const hk_client_result *res, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = res->headers, *end = res->headers + res->headers_len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (len > 0) {
                size_t n = (size_t)(ve - v) < len - 1 ? (size_t)(ve - v) : len - 1;
                memcpy(buf, v, n);
                buf[n] = '\0';
            }
            return 0;
        }
        p = eol + 2;
    }
    return HK_ENOTFOUND;
}

size_t hk_client_active(const hk_client *c)
{
    return c->nactive;
}

size_t hk_client_origins(const hk_client *c)
{
    return c->origins.count;
}

static void client_maybe_freed(hk_client *c)
{
    if (!c->closing || c->live > 0)
        return;
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    hk__origins_free(&c->origins);
    hk_tls_ctx_free(c->tls);
    hk_ssrf_free(c->ssrf);
    free(c->ca_file);
    free(c->dns_servers);
    free(c->user_agent);
    free(c);
    if (closed != NULL)
        closed(arg);
}

static void on_sentinel_closed(uv_handle_t *h)
{
    hk_client *c = h->data;
    c->live--;
    client_maybe_freed(c);
}

static void on_origins_closed(void *arg)
{
    hk_client *c = arg;
    c->live--;
    client_maybe_freed(c);
}

static void on_resolver_closed(void *arg)
{
    hk_client *c = arg;
    c->live--;
    client_maybe_freed(c);
}

void hk_client_close(hk_client *c, void (*closed)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = true;
    c->closed = closed;
    c->closed_arg = arg;
    while (c->active != NULL)
        req_fail(c->active, UV_ECANCELED, "canceled: the client is closing");
    while (c->conns != NULL)
        conn_close(c->conns);
    hk_resolver_close(c->resolver, on_resolver_closed, c);
    hk__origins_close(&c->origins, on_origins_closed, c);
    uv_close((uv_handle_t *)&c->sentinel, on_sentinel_closed);
}
