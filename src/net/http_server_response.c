/*
 * http_server_response.c: the inbound server's answers.
 *
 * A response is one write: status line, Date (made once a second), Server,
 * Content-Type, Content-Length (none for 1xx, 204 and 304), "Connection:
 * close" when the connection ends after it, the caller's extra lines, and
 * the body (none for HEAD), in one buffer that belongs to its write request.
 * Usually the kernel takes it at once (uv_try_write) and the connection is
 * idle again without a write callback. Afterwards the connection closes,
 * lingers (after an error answer), or parses the pipelined bytes it held.
 * Also the reason phrases, the HTTP date, 100 Continue, and the answers the
 * server gives itself (400, 408, 413, 417, 431, 503), whose body the layer
 * above makes (hk_http_error_body).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http_server_int.h"
#include "log.h"

/* Room for the status line, Date, Server, Content-Length and Connection
 * lines of a response head; the caller's strings are counted on top. */
#define RESPONSE_HEAD_FIXED 256

/* One response: the uv_write and the bytes it sends. */
struct write_req {
    uv_write_t req;
    struct conn *c;
    char data[];
};

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

/* ---- writing ----------------------------------------------------------- */

static void after_response(uv_write_t *wr, int status)
{
    struct write_req *w = hk_container_of(wr, struct write_req, req);
    struct conn *c = w->c;
    free(w);
    if (c->state == ST_CLOSING)
        return;
    if (status == 0 && c->linger) {
        hk__server_start_linger(c);
        return;
    }
    if (status != 0 || c->close_after || !c->keep_alive || c->srv->draining || (c->peer_eof && c->pending.len == 0)) {
        hk__server_conn_close(c);
        return;
    }
    hk__server_reset_request(c);
    c->state = ST_IDLE;
    llhttp_resume(&c->parser);
    if (c->pending.len > 0) {
        /* Pipelined bytes: parse them now. hk__server_feed() may keep a new remainder,
         * so hand it the old one and free it afterwards. */
        hk_buf held = c->pending;
        c->pending = (hk_buf)HK_BUF_INIT;
        hk__server_feed(c, held.data, held.len);
        hk_buf_free(&held);
        if (c->peer_eof) {
            /* Nothing more will come: a request cut short by the EOF is lost. */
            if (c->state == ST_IDLE || c->state == ST_HEAD || c->state == ST_BODY)
                hk__server_conn_close(c);
            return;
        }
        if (c->state == ST_HEAD || c->state == ST_BODY)
            hk__server_start_reading(c);
        else if (c->state == ST_IDLE)
            hk__server_start_idle(c);
        else if (c->state == ST_HANDLING && c->pending.len < PIPELINE_HOLD_MAX)
            hk__server_start_reading(c);
        return;
    }
    hk__server_start_idle(c);
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
    if (c->req.request_id[0] != '\0')
        n += (size_t)snprintf(p + n, cap - n, "X-Request-Id: %s\r\n", c->req.request_id);
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
            hk__server_reset_request(c);
            llhttp_resume(&c->parser);
            hk__server_start_idle(c);
            return;
        }
        if (wr > 0) {
            buf.base += wr;
            buf.len -= (unsigned)wr;
        }
    }
    /* A peer that does not read its responses is cut off after the keep-alive time. */
    hk__server_arm(c, srv->cfg->keepalive_timeout_ms);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, after_response);
    if (rc != 0) {
        free(w);
        hk__server_conn_close(c);
    }
}

void hk_http_respond(hk_http_request *req, int status, const char *content_type, const char *extra_headers,
                     const char *body, size_t len)
{
    struct conn *c = hk_container_of(req, struct conn, req);
    hk__server_release_slot(c);
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
    if (c->srv->cfg->access_log) {
        const char *was = hk_log_set_request(req->request_id[0] != '\0' ? req->request_id : NULL);
        hk_info("access %s %s %.*s%s%s %d %zu %llums", req->remote, req->method_name, (int)req->path_len, req->path,
                req->query_len ? "?" : "", req->query, status, len,
                (unsigned long long)(uv_now(c->srv->loop) - req->start_ms));
        hk_log_set_request(was);
    }
    if (c->srv->on_response != NULL)
        c->srv->on_response(req->path, req->path_len, status, uv_now(c->srv->loop) - req->start_ms, c->srv->data);
    write_response(c, status, content_type, extra_headers, body, len, req->method == HTTP_HEAD);
}

void hk__server_respond_error(struct conn *c, int status, const char *message)
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
    if (srv->on_response != NULL)
        srv->on_response(path, path_len, status, c->head_ready ? uv_now(srv->loop) - c->req.start_ms : 0, srv->data);
    c->close_after = true;
    c->linger = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    write_response(c, status, "application/json; charset=utf-8", NULL, body, strlen(body), false);
    free(body);
}

static void after_continue(uv_write_t *wr, int status)
{
    HK_UNUSED(status);
    free(wr);
}

void hk__server_send_continue(struct conn *c)
{
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(cont, sizeof(cont) - 1);
    /* Queued like any write, so it is never lost or reordered; the
     * final response follows it in the same queue. */
    uv_write_t *wr = hk_malloc(sizeof(*wr));
    if (uv_write(wr, (uv_stream_t *)&c->tcp, &b, 1, after_continue) != 0)
        free(wr);
}
