/*
 * http_server_request.c: the inbound server's reading of a request.
 *
 * llhttp (HTTP_REQUEST, no lenient flags) runs over a connection's bytes.
 * The target and header fields are copied into a per-connection buffer
 * bounded by max_header_bytes (with at most max_headers fields), the body
 * into one bounded by max_body_bytes; trailer fields of a chunked body are
 * counted against the same limits but not kept. A callback that refuses
 * the request sets the status the server answers with (413, 417, 431, or
 * 503 when memory runs out). Once the head is complete the head hook may
 * answer before the body is read; once the message is complete the parser
 * pauses and the request goes to the handler, and bytes after it are held
 * until it is answered (pipelining).
 */
#include <stdio.h>
#include <string.h>

#include "http_server_int.h"
#include "log.h"

/* A body buffer larger than this is given back between requests. */
#define BODY_BUF_KEEP 16384

static void prepare_head(struct conn *c);

/* ---- the request's state ---------------------------------------------- */

void hk__server_release_slot(struct conn *c)
{
    if (c->req.slot != NULL && c->srv->slot_free != NULL)
        c->srv->slot_free(c->req.slot);
    c->req.slot = NULL;
}

void hk__server_reset_request(struct conn *c)
{
    hk__server_release_slot(c);
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
        hk__server_arm(c, c->srv->cfg->header_timeout_ms);
    c->fresh = false;
    c->req.request_id[0] = '\0';
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
    hk__server_arm(c, cfg->body_timeout_ms);
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
        hk_log_set_request(c->req.request_id);
        c->srv->on_head(&c->req, c->srv->data);
        hk_log_set_request(NULL);
        c->in_head_hook = false;
        if (c->answered_head)
            return HPE_PAUSED;
    }
    if (c->expect_continue && p->http_minor >= 1 &&
        ((p->flags & F_CONTENT_LENGTH && p->content_length > 0) || (p->flags & F_CHUNKED)))
        hk__server_send_continue(c);
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

void hk__server_parser_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_url_complete = on_url_complete;
    s->on_header_field = on_header_field;
    s->on_header_value = on_header_value;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* ---- request dispatch ------------------------------------------------- */

static void trim_span(const char **s, size_t *len)
{
    while (*len > 0 && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
        (*len)--;
}

/* A client's X-Request-Id is kept when it is 1..HK_REQUEST_ID_MAX characters a log line can carry bare. */
static bool request_id_ok(const char *v, size_t len)
{
    if (len == 0 || len > HK_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = v[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

static void set_request_id(struct conn *c)
{
    hk_http_request *r = &c->req;
    const hk_header *h = hk_http_header(r, "X-Request-Id");
    if (h != NULL && request_id_ok(h->value, h->value_len)) {
        memcpy(r->request_id, h->value, h->value_len);
        r->request_id[h->value_len] = '\0';
    } else {
        snprintf(r->request_id, sizeof(r->request_id), "%08x%08x", c->srv->id_prefix, c->srv->id_next++);
    }
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
    set_request_id(c);
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
    hk__server_disarm(c);
    hk_log_set_request(r->request_id);
    srv->handler(r, srv->data);
    hk_log_set_request(NULL);
}

void hk__server_feed(struct conn *c, const char *data, size_t len)
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
            hk__server_hold(c, data + used, len - used);
        dispatch(c);
        return;
    }
    /* A callback that rejected the request set error_status; llhttp
     * reports that as HPE_USER from data callbacks but as HPE_CB_* from
     * notification callbacks such as on_headers_complete. */
    if (c->error_status != 0) {
        hk__server_respond_error(c, c->error_status, c->error_msg);
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed request: %s", llhttp_get_error_reason(&c->parser));
    hk_debug("http %s: %s", c->req.remote, msg);
    hk__server_respond_error(c, 400, msg);
}

/* ---- API -------------------------------------------------------------- */

const hk_header *hk_http_header(const hk_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->nheaders; i++)
        if (hk_strncaseeq(req->headers[i].name, req->headers[i].name_len, name) == 0)
            return &req->headers[i];
    return NULL;
}
