/*
 * http_client_response.c: the outbound client's reading of a response.
 *
 * llhttp (HTTP_RESPONSE) runs over the plaintext of a connection: the
 * status line, the header block (kept as "Name: value\r\n" lines, bounded
 * by HK_CLIENT_MAX_RESPONSE_HEAD) and the body (kept up to
 * max_response_bytes, the rest read and dropped). Interim 1xx responses
 * are forgotten; the response to HEAD has no body. A complete response
 * hands the connection back (http_client_conn.c); the end of the stream
 * ends a close-delimited body, and otherwise fails the request with what
 * was missing. Also hk_client_header, which reads a header of a result.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http_client_int.h"
#include "log.h"

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

void hk__client_parser_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_status = on_status;
    s->on_header_field = on_header_field;
    s->on_header_field_complete = on_header_field_complete;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

void hk__client_req_reset(struct creq *r)
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

/* ---- the connection's input ----------------------------------------------------------- */

/* Plaintext response bytes for the connection's request. */
void hk__client_conn_input(struct conn *cn, const char *data, size_t len)
{
    struct creq *r = cn->req;
    if (cn->state != CS_ACTIVE || r == NULL) {
        /* Bytes nobody asked for on an idle connection: it cannot be trusted with a request. */
        hk__client_conn_close(cn);
        return;
    }
    if (!r->got_bytes) {
        r->got_bytes = true;
        if (r->phase == PH_WAIT)
            hk__dl_unset(r->c, &r->phase_dl);
    }
    llhttp_errno_t e = llhttp_execute(&r->parser, data, len);
    if (e == HPE_OK)
        return;
    if (e == HPE_PAUSED && r->complete) {
        const char *pos = llhttp_get_error_pos(&r->parser);
        if (pos != NULL && pos < data + len)
            r->keep_alive = false; /* bytes beyond the response: the stream is out of step */
        hk__client_req_complete(r);
        return;
    }
    if (e == HPE_USER && r->cb_error != 0) {
        hk__client_conn_fail(cn, r->cb_error, "%s", r->cb_error_text);
        return;
    }
    hk__client_conn_fail(cn, HK_EPROTO, "invalid response: %s", llhttp_get_error_reason(&r->parser));
}

void hk__client_conn_eof(struct conn *cn, int status)
{
    struct creq *r = cn->req;
    if (r == NULL) {
        hk__client_conn_close(cn); /* the server closed an idle connection */
        return;
    }
    if (cn->state == CS_HANDSHAKE) {
        hk__client_conn_fail(cn, HK_ETLS, "TLS: %s during the handshake",
                             status == UV_EOF ? "connection closed by the server" : uv_strerror(status));
        return;
    }
    if (r->got_bytes) {
        if (status == UV_EOF) {
            /* A close-delimited body ends here. */
            llhttp_errno_t e = llhttp_finish(&r->parser);
            if (r->complete && (e == HPE_OK || e == HPE_PAUSED)) {
                r->keep_alive = false;
                hk__client_req_complete(r);
                return;
            }
        }
        hk__client_conn_fail(cn, status == UV_EOF ? HK_EPROTO : status, "%s before the response was complete",
                             status == UV_EOF          ? "connection closed"
                             : status == UV_ECONNRESET ? "connection reset by peer"
                                                       : uv_strerror(status));
        return;
    }
    if (status == UV_EOF)
        hk__client_conn_fail(cn, UV_EOF, "connection closed before a response");
    else if (status == UV_ECONNRESET)
        hk__client_conn_fail(cn, status, "connection reset by peer");
    else
        hk__client_conn_fail(cn, status, "read failed: %s", uv_strerror(status));
}

/* ---- API ------------------------------------------------------------------------------ */

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
