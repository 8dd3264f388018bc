/*
 * http_server.c: llhttp on libuv streams, with the limits of hk_config.
 *
 * Each connection walks IDLE -> HEAD -> BODY -> HANDLING -> WRITING -> IDLE.
 * A per-connection timer enforces the header, body, keep-alive and write
 * timeouts. After an error the server answers itself (400, 408, 413, 417,
 * 431) the connection LINGERs: its sending side is shut down and input is
 * discarded until the peer closes or LINGER_MS passes. Request heads are copied into a per-connection buffer bounded by
 * max_header_bytes, bodies into one bounded by max_body_bytes; reads use one
 * loop-wide buffer, and bytes that follow a complete request (pipelining)
 * are kept until its response is written.
 */
#include "http_server.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "log.h"

/* One read's worth: also the most a connection keeps of pipelined bytes. */
#define READ_BUF_SIZE 65536
#define PIPELINE_HOLD_MAX 16384 /* bytes kept per connection while a request is answered */
/* A body buffer larger than this is given back between requests. */
#define BODY_BUF_KEEP 16384
/* After an error answer the server stops sending but keeps reading (and
 * discarding) for this long before it closes: closing with unread input
 * makes the kernel send a reset, which can destroy the answer before the
 * client has read it (the "lingering close" of RFC 9112 section 9.6). */
#define LINGER_MS 2000
/* The connection-limit warning is logged at most once per this interval. */
#define LIMIT_LOG_INTERVAL_MS 10000
#define LISTEN_BACKLOG 511
/* Room for the status line, Date, Server, Content-Length and Connection
 * lines of a response head; the caller's strings are counted on top. */
#define RESPONSE_HEAD_FIXED 256

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_HANDLING, ST_WRITING, ST_LINGER, ST_CLOSING };

struct hdr_span {
    uint32_t name_off, name_len, value_off, value_len;
};

struct conn {
    uv_tcp_t tcp; /* first member: the handle's owner */
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    llhttp_t parser;
    hk_http_server *srv;
    struct conn *prev, *next;
    enum conn_state state;
    int open_handles;

    /* The request being received: head bytes (target and header fields). */
    hk_buf head; /* NUL-terminated target, then the header fields; at most max_header_bytes - 1 */
    size_t url_len;
    struct hdr_span *spans;
    uint32_t nspans, spans_cap;
    int last_cb; /* 1: header field, 2: header value */
    /* Trailer fields of a chunked body are counted against the limits but
     * not kept: a trailer must not pass for a header (credentials). */
    size_t trailer_bytes;
    uint32_t ntrailers;
    hk_buf body; /* at most max_body_bytes */
    bool keep_alive;
    bool expect_continue;
    int error_status; /* set by a callback that rejects the request */
    const char *error_msg;

    /* Bytes received after a complete request, parsed once it is answered. */
    hk_buf pending;

    hk_http_request req;
    bool head_ready;    /* req's head fields are filled (by the head hook's call or dispatch) */
    bool in_head_hook;  /* the head hook is running */
    bool answered_head; /* the head hook answered: the body is never read */
    hk_header *headers;
    uint32_t headers_cap;
    bool close_after;
    bool peer_eof; /* the peer half-closed with complete requests still held */
    bool reading;
    bool fresh;  /* no request started yet: the accept armed the header timer */
    bool linger; /* answered an error: drain the input before closing */
};

struct hk_http_server {
    uv_loop_t *loop;
    const hk_config *cfg;
    hk_http_handler handler;
    void *data;
    hk_http_head_hook on_head;
    void (*slot_free)(void *slot);
    hk_http_error_body error_body;
    llhttp_settings_t settings;
    uv_tcp_t listeners[8];
    int nlisteners;
    int open_listeners;
    struct conn *conns;
    uint32_t nconns;
    bool draining;
    void (*drained)(hk_http_server *srv);
    uint64_t limit_logged_ms;
    char read_buf[READ_BUF_SIZE];
    char date[40];
    time_t date_sec;
};

struct write_req {
    uv_write_t req;
    struct conn *c;
    char data[];
};

static void conn_close(struct conn *c);
static void prepare_head(struct conn *c);
static void feed(struct conn *c, const char *data, size_t len);
static void start_idle(struct conn *c);
static void start_reading(struct conn *c);
static void start_linger(struct conn *c);

/* ---- small helpers ---------------------------------------------------- */

const char *hk_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

void hk_http_date(char *buf, size_t len, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static const char *cached_date(hk_http_server *srv)
{
    time_t now = time(NULL);
    if (now != srv->date_sec) {
        srv->date_sec = now;
        hk_http_date(srv->date, sizeof(srv->date), now);
    }
    return srv->date;
}

const hk_header *hk_http_header(const hk_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (hk_strncaseeq(req->headers[i].name, req->headers[i].name_len, name) == 0)
            return &req->headers[i];
    return NULL;
}

uint32_t hk_http_server_connections(const hk_http_server *srv)
{
    return srv->nconns;
}

/* ---- timers ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t);

static void arm(struct conn *c, uint64_t ms)
{
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* ---- writing ----------------------------------------------------------- */

/* Frees what the layer above hung on the request (hk_http_request.slot). */
static void release_slot(struct conn *c)
{
    if (c->req.slot != NULL && c->srv->slot_free != NULL)
        c->srv->slot_free(c->req.slot);
    c->req.slot = NULL;
}

static void reset_request(struct conn *c)
{
    release_slot(c);
    c->head_ready = false;
    c->answered_head = false;
    hk_buf_reset(&c->head);
    c->url_len = 0;
    c->nspans = 0;
    c->last_cb = 0;
    c->trailer_bytes = 0;
    c->ntrailers = 0;
    c->expect_continue = false;
    c->error_status = 0;
    c->error_msg = NULL;
    /* Give back a large body buffer so an idle connection stays small. */
    hk_buf_shrink(&c->body, BODY_BUF_KEEP);
}

static void after_response(uv_write_t *wr, int status)
{
    struct write_req *w = hk_container_of(wr, struct write_req, req);
    struct conn *c = w->c;
    free(w);
    if (c->state == ST_CLOSING)
        return;
    if (status == 0 && c->linger) {
        start_linger(c);
        return;
    }
    if (status != 0 || c->close_after || !c->keep_alive || c->srv->draining || (c->peer_eof && c->pending.len == 0)) {
        conn_close(c);
        return;
    }
    reset_request(c);
    c->state = ST_IDLE;
    llhttp_resume(&c->parser);
    if (c->pending.len > 0) {
        /* Pipelined bytes: parse them now. feed() may keep a new remainder,
         * so hand it the old one and free it afterwards. */
        hk_buf held = c->pending;
        c->pending = (hk_buf)HK_BUF_INIT;
        feed(c, held.data, held.len);
        hk_buf_free(&held);
        if (c->peer_eof) {
            /* Nothing more will come: a request cut short by the EOF is lost. */
            if (c->state == ST_IDLE || c->state == ST_HEAD || c->state == ST_BODY)
                conn_close(c);
            return;
        }
        if (c->state == ST_HEAD || c->state == ST_BODY)
            start_reading(c);
        else if (c->state == ST_IDLE)
            start_idle(c);
        else if (c->state == ST_HANDLING && c->pending.len < PIPELINE_HOLD_MAX)
            start_reading(c);
        return;
    }
    start_idle(c);
}

/* Queues one response; the connection is WRITING until it is flushed. */
static void write_response(struct conn *c, int status, const char *content_type, const char *extra, const char *body,
                           size_t len, bool head_only)
{
    hk_http_server *srv = c->srv;
    bool no_length = status == 204 || status == 304 || status < 200;
    bool close = c->close_after || !c->keep_alive || srv->draining || (c->peer_eof && c->pending.len == 0);
    size_t ct_len = content_type != NULL && !no_length ? strlen(content_type) : 0;
    size_t extra_len = extra ? strlen(extra) : 0;
    size_t body_len = no_length || head_only ? 0 : len;
    /* The caller's strings are counted on top of the fixed lines, so that
     * no length of theirs can overflow the head. */
    size_t cap = RESPONSE_HEAD_FIXED + ct_len + extra_len + body_len;
    struct write_req *w = hk_malloc(sizeof(*w) + cap);
    char *p = w->data;
    size_t n = (size_t)snprintf(p, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: hookd/" HK_VERSION "\r\n", status,
                                hk_http_reason(status), cached_date(srv));
    if (ct_len > 0) {
        memcpy(p + n, "Content-Type: ", 14);
        memcpy(p + n + 14, content_type, ct_len);
        memcpy(p + n + 14 + ct_len, "\r\n", 2);
        n += 16 + ct_len;
    }
    if (!no_length)
        n += (size_t)snprintf(p + n, cap - n, "Content-Length: %zu\r\n", len);
    if (close)
        n += (size_t)snprintf(p + n, cap - n, "Connection: close\r\n");
    if (extra_len > 0)
        memcpy(p + n, extra, extra_len);
    n += extra_len;
    memcpy(p + n, "\r\n", 2);
    n += 2;
    if (body_len > 0)
        memcpy(p + n, body, body_len);
    n += body_len;
    w->c = c;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)n);
    c->state = ST_WRITING;
    if (close)
        c->close_after = true;
    if (!close && c->pending.len == 0) {
        /* Usually the kernel takes the whole answer at once: then the
         * connection is idle again without a write request, its callback
         * and the poll changes they cost. (uv_try_write refuses while
         * earlier writes are queued, so answers stay in order.) */
        int wr = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
        if (wr == (int)n) {
            free(w);
            reset_request(c);
            llhttp_resume(&c->parser);
            start_idle(c);
            return;
        }
        if (wr > 0) {
            buf.base += wr;
            buf.len -= (unsigned)wr;
        }
    }
    /* A peer that does not read its responses is cut off after the keep-alive time. */
    arm(c, srv->cfg->keepalive_timeout_ms);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, after_response);
    if (rc != 0) {
        free(w);
        conn_close(c);
    }
}

void hk_http_respond(hk_http_request *req, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t len)
{
    struct conn *c = hk_container_of(req, struct conn, req);
    release_slot(c);
    if (c->in_head_hook) {
        /* An answer from the head hook: the body is not read, so the
         * connection cannot carry another request. Input is drained after
         * the answer (lingering close), never buffered. */
        c->answered_head = true;
        c->close_after = true;
        c->linger = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
    if (c->srv->cfg->access_log)
        hk_info("access %s %s %.*s%s%s %d %zu %llums", req->remote, req->method_name, (int)req->path_len, req->path,
                req->query_len ? "?" : "", req->query, status, len,
                (unsigned long long)(uv_now(c->srv->loop) - req->start_ms));
    write_response(c, status, content_type, extra_headers, body, len, req->method == HTTP_HEAD);
}

/* Answers an error the server found itself, then closes the connection. */
static void respond_error(struct conn *c, int status, const char *message)
{
    hk_http_server *srv = c->srv;
    const char *path = NULL;
    size_t path_len = 0;
    if (c->head_ready) {
        path = c->req.path;
        path_len = c->req.path_len;
    } else if (c->url_len > 0) {
        path = c->head.data;
        const char *q = memchr(path, '?', c->url_len);
        path_len = q ? (size_t)(q - path) : c->url_len;
    }
    char *body = srv->error_body(path, path_len, status, message);
    c->close_after = true;
    c->linger = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    write_response(c, status, "application/json; charset=utf-8", NULL, body, strlen(body), false);
    free(body);
}

/* ---- llhttp callbacks ------------------------------------------------- */

static int reject(struct conn *c, int status, const char *msg)
{
    c->error_status = status;
    c->error_msg = msg;
    return HPE_USER;
}

/* The head (target and fields) is a peer's: HK_ETOOBIG past the limit, UV_ENOMEM without memory. */
static int append_head(struct conn *c, const char *at, size_t len)
{
    size_t max = c->srv->cfg->max_header_bytes;
    return hk_buf_try_append(&c->head, at, len, max > 0 ? max - 1 : 0);
}

/* Rejects the request for a head that cannot grow: too large, or no memory for it. */
static int reject_head(struct conn *c, int err, const char *too_large)
{
    if (err == UV_ENOMEM)
        return reject(c, 503, "out of memory for the request head");
    return reject(c, 431, too_large);
}

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->state = ST_HEAD;
    /* On a new connection the header timer runs from the accept, so a
     * client cannot double its time by waiting before the first byte. */
    if (!c->fresh)
        arm(c, c->srv->cfg->header_timeout_ms);
    c->fresh = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    int rc = append_head(c, at, len);
    if (rc != 0)
        return reject_head(c, rc, "request target too long");
    c->url_len += len;
    return 0;
}

static int on_url_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    /* NUL-terminate the target so path and query can be used as C strings. */
    int rc = append_head(c, "", 1);
    if (rc != 0)
        return reject_head(c, rc, "request target too long");
    return 0;
}

/* Trailer fields (after a chunked body) are counted, not kept. */
static int count_trailer(struct conn *c, size_t len, bool new_field)
{
    const hk_config *cfg = c->srv->cfg;
    if (new_field && ++c->ntrailers + c->nspans > cfg->max_headers)
        return reject(c, 431, "too many header fields");
    c->trailer_bytes += len;
    if (c->head.len + c->trailer_bytes > cfg->max_header_bytes)
        return reject(c, 431, "request header fields too large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    bool new_field = c->last_cb != 1;
    c->last_cb = 1;
    if (c->state == ST_BODY)
        return count_trailer(c, len, new_field);
    if (new_field) {
        if (c->nspans >= c->srv->cfg->max_headers)
            return reject(c, 431, "too many header fields");
        if (c->nspans == c->spans_cap) {
            c->spans_cap = c->spans_cap ? c->spans_cap * 2 : 16;
            c->spans = hk_realloc(c->spans, c->spans_cap * sizeof(*c->spans));
        }
        c->spans[c->nspans++] = (struct hdr_span){(uint32_t)c->head.len, 0, (uint32_t)c->head.len, 0};
    }
    int rc = append_head(c, at, len);
    if (rc != 0)
        return reject_head(c, rc, "request header fields too large");
    c->spans[c->nspans - 1].name_len += (uint32_t)len;
    c->spans[c->nspans - 1].value_off = (uint32_t)c->head.len;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    bool first = c->last_cb != 2;
    c->last_cb = 2;
    if (c->state == ST_BODY)
        return count_trailer(c, len, false);
    if (first)
        c->spans[c->nspans - 1].value_off = (uint32_t)c->head.len;
    int rc = append_head(c, at, len);
    if (rc != 0)
        return reject_head(c, rc, "request header fields too large");
    c->spans[c->nspans - 1].value_len += (uint32_t)len;
    return 0;
}

static void after_continue(uv_write_t *wr, int status)
{
    HK_UNUSED(status);
    free(wr);
}

static int on_headers_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    const hk_config *cfg = c->srv->cfg;
    c->keep_alive = llhttp_should_keep_alive(p);
    if (p->upgrade)
        c->close_after = true; /* no protocol switch is offered: answer and close */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->max_body_bytes)
        return reject(c, 413, "request body too large");
    c->state = ST_BODY;
    arm(c, cfg->body_timeout_ms);
    for (uint32_t i = 0; i < c->nspans; i++) {
        struct hdr_span *s = &c->spans[i];
        if (hk_strncaseeq(c->head.data + s->name_off, s->name_len, "expect") == 0) {
            if (hk_strncaseeq(c->head.data + s->value_off, s->value_len, "100-continue") == 0)
                c->expect_continue = true;
            else
                return reject(c, 417, "unsupported expectation");
        }
    }
    if (c->srv->on_head != NULL) {
        /* Before the body and before any 100 Continue: the layer above may
         * answer now (401, 403) and the body is never read. */
        prepare_head(c);
        c->in_head_hook = true;
        c->srv->on_head(&c->req, c->srv->data);
        c->in_head_hook = false;
        if (c->answered_head)
            return HPE_PAUSED;
    }
    if (c->expect_continue && p->http_minor >= 1 &&
        ((p->flags & F_CONTENT_LENGTH && p->content_length > 0) || (p->flags & F_CHUNKED))) {
        static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
        /* Queued like any write, so it is never lost or reordered; the
         * final response follows it in the same queue. */
        uv_write_t *wr = hk_malloc(sizeof(*wr));
        if (uv_write(wr, (uv_stream_t *)&c->tcp, &b, 1, after_continue) != 0)
            free(wr);
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    size_t max = c->srv->cfg->max_body_bytes;
    int rc = hk_buf_try_append(&c->body, at, len, max);
    if (rc == HK_ETOOBIG)
        return reject(c, 413, "request body too large");
    if (rc != 0)
        return reject(c, 503, "out of memory for the request body");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    HK_UNUSED(p);
    /* Stop here: the request is handled before the next one is parsed. */
    return HPE_PAUSED;
}

/* ---- request dispatch ------------------------------------------------- */

static void trim_span(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* Fills the request's head fields from the parser and the head buffer (once per request). */
static void prepare_head(struct conn *c)
{
    if (c->head_ready)
        return;
    c->head_ready = true;
    hk_http_request *r = &c->req;
    hk_http_server *srv = c->srv;
    if (c->headers_cap < c->nspans) {
        c->headers_cap = c->nspans;
        c->headers = hk_realloc(c->headers, c->headers_cap * sizeof(*c->headers));
    }
    for (uint32_t i = 0; i < c->nspans; i++) {
        hk_header *h = &c->headers[i];
        h->name = c->head.data + c->spans[i].name_off;
        h->name_len = c->spans[i].name_len;
        h->value = c->head.data + c->spans[i].value_off;
        h->value_len = c->spans[i].value_len;
        trim_span(&h->value, &h->value_len);
    }
    r->server = srv;
    r->headers = c->headers;
    r->nheaders = c->nspans;
    r->method = llhttp_get_method(&c->parser);
    r->method_name = llhttp_method_name((llhttp_method_t)r->method);
    r->keep_alive = c->keep_alive;
    r->body_expected =
        (c->parser.flags & F_CHUNKED) || ((c->parser.flags & F_CONTENT_LENGTH) && c->parser.content_length > 0);
    r->start_ms = uv_now(srv->loop);
    /* The target was NUL-terminated in on_url_complete; split off the query. */
    char *target = c->head.data;
    char *q = memchr(target, '?', c->url_len);
    r->path = target;
    if (q != NULL) {
        *q = '\0';
        r->path_len = (size_t)(q - target);
        r->query = q + 1;
        r->query_len = c->url_len - r->path_len - 1;
    } else {
        r->path_len = c->url_len;
        r->query = "";
        r->query_len = 0;
    }
    r->body = "";
    r->body_len = 0;
}

static void dispatch(struct conn *c)
{
    hk_http_request *r = &c->req;
    hk_http_server *srv = c->srv;
    prepare_head(c);
    r->body = hk_buf_cstr(&c->body);
    r->body_len = c->body.len;
    /* Once the body is complete the time runs from here, as it always has. */
    r->start_ms = uv_now(srv->loop);
    c->state = ST_HANDLING;
    uv_timer_stop(&c->timer);
    srv->handler(r, srv->data);
}

/* Keeps bytes that arrive while a request is being answered (pipelining,
 * or the next request of a fast client). Reading goes on, which saves two
 * epoll_ctl calls per request, until PIPELINE_HOLD_MAX bytes wait; then the
 * connection stops reading until they have been parsed. */
static void hold(struct conn *c, const char *data, size_t len)
{
    /* Bounded by construction: reading stops at PIPELINE_HOLD_MAX, so this
     * holds at most that plus one read. */
    hk_buf_append(&c->pending, data, len);
    if (c->pending.len >= PIPELINE_HOLD_MAX && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void feed(struct conn *c, const char *data, size_t len)
{
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK)
        return;
    if (err == HPE_PAUSED && c->answered_head)
        return; /* answered from the head hook: what follows is not read */
    if (err == HPE_PAUSED) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        size_t used = pos ? (size_t)(pos - data) : len;
        if (used < len)
            hold(c, data + used, len - used);
        dispatch(c);
        return;
    }
    /* A callback that rejected the request set error_status; llhttp
     * reports that as HPE_USER from data callbacks but as HPE_CB_* from
     * notification callbacks such as on_headers_complete. */
    if (c->error_status != 0) {
        respond_error(c, c->error_status, c->error_msg);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed request: %s", llhttp_get_error_reason(&c->parser));
    hk_debug("http %s: %s", c->req.remote, msg);
    respond_error(c, 400, msg);
}

/* ---- connection life -------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    HK_UNUSED(suggested);
    struct conn *c = (struct conn *)h;
    /* One buffer for all connections: each read is parsed before the next. */
    *buf = uv_buf_init(c->srv->read_buf, READ_BUF_SIZE);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    if (c->state == ST_LINGER) {
        /* Discarded: the answer is out and only the peer's FIN is awaited. */
        if (nread < 0)
            conn_close(c);
        return;
    }
    if (nread > 0) {
        if (c->state == ST_HANDLING || c->state == ST_WRITING)
            hold(c, buf->base, (size_t)nread);
        else
            feed(c, buf->base, (size_t)nread);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or error: a request in the middle of its head or body is lost;
     * one being handled still gets its answer written (and fails there). */
    if (c->state == ST_HANDLING || c->state == ST_WRITING) {
        /* A client that sends its requests and then half-closes still gets
         * an answer to each held one; the connection closes after the last. */
        if (nread == UV_EOF && c->pending.len > 0)
            c->peer_eof = true;
        else
            c->close_after = true;
        uv_read_stop(s);
        c->reading = false;
        return;
    }
    conn_close(c);
}

static void start_reading(struct conn *c)
{
    if (!c->reading && c->state != ST_CLOSING) {
        c->reading = true;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    /* Nothing to do: the connection closes on the peer's EOF or the linger
     * timer; on UV_ECANCELED it is already closing. */
    HK_UNUSED(req);
    HK_UNUSED(status);
}

static void start_linger(struct conn *c)
{
    c->state = ST_LINGER;
    hk_buf_free(&c->pending);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    arm(c, LINGER_MS);
    start_reading(c);
}

static void start_idle(struct conn *c)
{
    c->state = ST_IDLE;
    arm(c, c->srv->cfg->keepalive_timeout_ms);
    start_reading(c);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = hk_container_of(t, struct conn, timer);
    switch (c->state) {
    case ST_HEAD:
    case ST_BODY:
        respond_error(c, 408,
                      c->state == ST_HEAD ? "request head not received in time" : "request body not received in time");
        break;
    case ST_HANDLING: break;
    default: conn_close(c); break;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    hk_http_server *srv = c->srv;
    release_slot(c);
    hk_buf_free(&c->head);
    free(c->spans);
    hk_buf_free(&c->body);
    hk_buf_free(&c->pending);
    free(c->headers);
    free(c);
    if (srv->draining && srv->nconns == 0 && srv->open_listeners == 0 && srv->drained != NULL) {
        void (*cb)(hk_http_server *) = srv->drained;
        srv->drained = NULL;
        cb(srv);
    }
}

static void conn_close(struct conn *c)
{
    if (c->state == ST_CLOSING)
        return;
    c->state = ST_CLOSING;
    hk_http_server *srv = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->nconns--;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
    hk_http_server *srv = listener->data;
    if (status != 0) {
        hk_warn("http: accept failed: %s", uv_strerror(status));
        return;
    }
    if (srv->nconns >= srv->cfg->max_connections || srv->draining) {
        /* Over the limit: accept and close at once, so the backlog drains. */
        uv_tcp_t *t = hk_malloc(sizeof(*t));
        uv_tcp_init(srv->loop, t);
        if (uv_accept(listener, (uv_stream_t *)t) == 0 && !srv->draining) {
            /* A flood of connections must not become a flood of log lines. */
            uint64_t now = uv_now(srv->loop);
            if (srv->limit_logged_ms == 0 || now - srv->limit_logged_ms >= LIMIT_LOG_INTERVAL_MS) {
                srv->limit_logged_ms = now;
                hk_warn("http: connection limit (%u) reached, closing new connections", srv->cfg->max_connections);
            }
        }
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    struct conn *c = hk_calloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        /* Not linked into the list yet: close both handles directly. */
        c->state = ST_CLOSING;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    c->req.remote[0] = '\0';
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->req.remote, sizeof(c->req.remote));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->req.remote, sizeof(c->req.remote));
    }
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    /* A new connection must send its request head within the header timeout. */
    c->state = ST_IDLE;
    c->reading = false;
    c->fresh = true;
    arm(c, srv->cfg->header_timeout_ms);
    start_reading(c);
}

/* ---- server ----------------------------------------------------------- */

int hk_http_server_create(hk_http_server **out, uv_loop_t *loop, const hk_config *cfg, hk_http_handler handler,
                          void *data, hk_http_error_body error_body)
{
    hk_http_server *srv = hk_calloc(1, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->handler = handler;
    srv->data = data;
    srv->error_body = error_body;
    llhttp_settings_init(&srv->settings);
    srv->settings.on_message_begin = on_message_begin;
    srv->settings.on_url = on_url;
    srv->settings.on_url_complete = on_url_complete;
    srv->settings.on_header_field = on_header_field;
    srv->settings.on_header_value = on_header_value;
    srv->settings.on_headers_complete = on_headers_complete;
    srv->settings.on_body = on_body;
    srv->settings.on_message_complete = on_message_complete;
    *out = srv;
    return 0;
}

void hk_http_server_on_head(hk_http_server *srv, hk_http_head_hook hook, void (*slot_free)(void *slot))
{
    srv->on_head = hook;
    srv->slot_free = slot_free;
}

int hk_http_server_listen(hk_http_server *srv, const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) {
        hk_error("http: listen address \"%s\" is not HOST:PORT", addr);
        return HK_EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 0 || port > 65535 || colon[1] == '\0') {
        hk_error("http: listen address \"%s\" has a bad port", addr);
        return HK_EINVAL;
    }
    if (srv->nlisteners == (int)HK_ARRAY_SIZE(srv->listeners)) {
        hk_error("http: too many listen addresses");
        return HK_EINVAL;
    }
    struct sockaddr_storage ss;
    unsigned flags = 0;
    int rc;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        rc = uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)&ss);
        flags = UV_TCP_IPV6ONLY;
    } else {
        rc = uv_ip4_addr(host, (int)port, (struct sockaddr_in *)&ss);
    }
    if (rc != 0) {
        hk_error("http: listen address \"%s\": %s", addr, uv_strerror(rc));
        return rc;
    }
    uv_tcp_t *l = &srv->listeners[srv->nlisteners];
    uv_tcp_init(srv->loop, l);
    l->data = srv;
    srv->nlisteners++;
    srv->open_listeners++;
    if ((rc = uv_tcp_bind(l, (struct sockaddr *)&ss, flags)) != 0 ||
        (rc = uv_listen((uv_stream_t *)l, LISTEN_BACKLOG, on_connection)) != 0) {
        hk_error("http: cannot listen on %s: %s", addr, uv_strerror(rc));
        return rc;
    }
    int len = sizeof(ss);
    char name[64];
    uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
    if (ss.ss_family == AF_INET6) {
        uv_ip6_name((struct sockaddr_in6 *)&ss, name, sizeof(name));
        hk_info("listening on http://[%s]:%d", name, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    } else {
        uv_ip4_name((struct sockaddr_in *)&ss, name, sizeof(name));
        hk_info("listening on http://%s:%d", name, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    hk_http_server *srv = h->data;
    srv->open_listeners--;
    if (srv->draining && srv->nconns == 0 && srv->open_listeners == 0 && srv->drained != NULL) {
        void (*cb)(hk_http_server *) = srv->drained;
        srv->drained = NULL;
        cb(srv);
    }
}

void hk_http_server_shutdown(hk_http_server *srv, void (*drained)(hk_http_server *srv))
{
    if (srv->draining)
        return;
    srv->draining = true;
    srv->drained = drained;
    for (int i = 0; i < srv->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&srv->listeners[i]))
            uv_close((uv_handle_t *)&srv->listeners[i], on_listener_closed);
    /* Idle connections go now; busy ones close after their response. */
    struct conn *c = srv->conns;
    while (c != NULL) {
        struct conn *next = c->next;
        /* A lingering connection has had its answer; waiting for its
         * peer's FIN would only hold the drain up. */
        if ((c->state == ST_IDLE && c->head.len == 0) || c->state == ST_LINGER)
            conn_close(c);
        else
            c->close_after = true;
        c = next;
    }
    if (srv->nlisteners == 0 && srv->nconns == 0 && srv->drained != NULL) {
        srv->drained = NULL;
        drained(srv);
    }
}

void hk_http_server_free(hk_http_server *srv)
{
    free(srv);
}
