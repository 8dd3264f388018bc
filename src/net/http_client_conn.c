/*
 * http_client_conn.c: the outbound client's connections.
 *
 * A request without an idle connection of its origin looks the host up
 * (c-ares on the loop, resolver.h), takes the first address the SSRF guard
 * allows, connects, and for https runs the TLS handshake (mbedTLS over
 * memory buffers, resuming the origin's session); then its bytes are
 * written. A connection carries one request at a time. When a response
 * ends cleanly and both sides agreed on keep-alive, it goes back to its
 * origin's idle list; an idle connection keeps reading so that a server's
 * close is seen at once, and a connection that still dies on reuse before
 * any response byte gets its request retried once on a fresh connection.
 *
 * Memory: a connection is freed only in the close callback of its tcp
 * handle; what a queued write sends belongs to its write request (a
 * copy of the head's unsent part, ciphertext) or is held by a reference
 * (the body), released in the write callback (also on UV_ECANCELED).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http_client_int.h"
#include "log.h"
#include "metrics.h"

/* One uv_write of a connection: owns own (freed in on_write), holds a reference to body when it has one. */
struct write_req {
    uv_write_t w;
    struct conn *conn;
    char *own;
    void (*body_ref)(void *owner, int delta);
    void *body_owner;
    bool request_end; /* the last bytes of the request */
};

static void idle_unlink(struct conn *cn);
static void conn_send_request(struct conn *cn);
static void req_resolve(struct creq *r);

/* ---- closing and failing ------------------------------------------------------------------- */

static void conn_closed(uv_handle_t *h)
{
    struct conn *cn = h->data;
    hk_client *c = cn->c;
    hk__origin_unref(&c->origins, cn->o);
    hk_tls_conn_free(cn->tls);
    free(cn);
    c->live--;
    HK_METRIC_ADD(hk_metrics.client_connections, -1);
    hk__client_maybe_freed(c);
}

void hk__client_conn_close(struct conn *cn)
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
    hk__dl_unset(c, &cn->idle);
    /* Pending connect and write requests get their callbacks with
     * UV_ECANCELED before the close callback, which frees the connection. */
    uv_close((uv_handle_t *)&cn->tcp, conn_closed);
}

static bool dead_on_reuse(int err)
{
    return err == UV_EOF || err == UV_ECONNRESET || err == UV_EPIPE || err == UV_ECONNABORTED;
}

void hk__client_conn_fail(struct conn *cn, int err, const char *fmt, ...)
{
    struct creq *r = cn->req;
    hk__client_conn_close(cn);
    if (r == NULL || r->done)
        return;
    if (r->reused && !r->got_bytes && !r->retried && dead_on_reuse(err)) {
        hk_debug("http client: %s: pooled connection was closed by the server, retrying on a new one", r->o->name);
        r->retried = true;
        r->reused = false;
        hk__dl_unset(r->c, &r->phase_dl);
        hk__client_req_reset(r);
        req_resolve(r);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error_text, sizeof(r->error_text), fmt, ap);
    va_end(ap);
    r->error = err;
    hk_debug("http client: %s: %s", r->o->name, r->error_text);
    hk__client_req_finish(r);
}

/* ---- the pool ------------------------------------------------------------------------------ */

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

void hk__client_req_complete(struct creq *r)
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
        hk__dl_set(c, &cn->idle, DL_IDLE, c->o.idle_timeout_ms);
    } else {
        hk__client_conn_close(cn);
    }
    r->error = 0;
    hk__client_req_finish(r);
}

void hk__client_req_connect(struct creq *r)
{
    struct hk__origin *o = r->o;
    if (o->idle == NULL) {
        req_resolve(r);
        return;
    }
    struct conn *cn = o->idle;
    idle_unlink(cn);
    hk__dl_unset(r->c, &cn->idle);
    cn->state = CS_ACTIVE;
    cn->req = r;
    r->conn = cn;
    r->reused = true;
    r->tls_resumed = cn->tls_resumed;
    conn_send_request(cn);
}

/* ---- writing ------------------------------------------------------------------------------- */

/* The whole request is with the kernel: wait for the first byte. */
static void request_written(struct conn *cn, bool request_end)
{
    struct creq *r = cn->req;
    if (request_end && r != NULL && r->phase == PH_WRITE) {
        r->phase = PH_WAIT;
        if (!r->got_bytes)
            hk__client_phase_deadline(r);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct write_req *wr = hk_container_of(w, struct write_req, w);
    struct conn *cn = wr->conn;
    bool request_end = wr->request_end;
    free(wr->own);
    if (wr->body_ref != NULL)
        wr->body_ref(wr->body_owner, -1);
    free(wr);
    cn->writes_pending--;
    if (cn->state == CS_CLOSING)
        return;
    if (status != 0) {
        if (status == UV_ECONNRESET || status == UV_EPIPE)
            hk__client_conn_fail(cn, status, "connection reset by peer");
        else
            hk__client_conn_fail(cn, status, "write failed: %s", uv_strerror(status));
        return;
    }
    request_written(cn, request_end);
}

/*
 * Queues a (alen bytes) then b (blen bytes) on the connection, in one
 * system call when the kernel takes them at once (usually: no write
 * request, no callback, no poll change, no copy). a_own: a is malloc'd and
 * given to this write; otherwise the part of a the kernel did not take is
 * copied. b is never copied: a queued write takes a reference to it
 * (b_ref, NULL only when blen is 0), since the request may end before the
 * write does.
 */
static int conn_write(struct conn *cn, char *a, size_t alen, bool a_own, const char *b, size_t blen,
                      void (*b_ref)(void *, int), void *b_owner, bool request_end)
{
    size_t off = 0;
    if (cn->writes_pending == 0) {
        uv_buf_t t[2] = {uv_buf_init(a, (unsigned)alen), uv_buf_init((char *)b, (unsigned)blen)};
        int n = uv_try_write((uv_stream_t *)&cn->tcp, t, blen > 0 ? 2 : 1);
        if (n >= 0 && (size_t)n == alen + blen) {
            if (a_own)
                free(a);
            request_written(cn, request_end);
            return 0;
        }
        if (n > 0)
            off = (size_t)n;
    }
    struct write_req *wr = hk_calloc(1, sizeof(*wr));
    wr->conn = cn;
    wr->request_end = request_end;
    uv_buf_t q[2];
    unsigned nq = 0;
    if (off < alen) {
        if (a_own) {
            wr->own = a;
            q[nq++] = uv_buf_init(a + off, (unsigned)(alen - off));
        } else {
            wr->own = hk_malloc(alen - off);
            memcpy(wr->own, a + off, alen - off);
            q[nq++] = uv_buf_init(wr->own, (unsigned)(alen - off));
        }
        off = 0;
    } else {
        if (a_own)
            free(a);
        off -= alen;
    }
    if (off < blen) {
        wr->body_ref = b_ref;
        wr->body_owner = b_owner;
        b_ref(b_owner, +1);
        q[nq++] = uv_buf_init((char *)b + off, (unsigned)(blen - off));
    }
    int rc = uv_write(&wr->w, (uv_stream_t *)&cn->tcp, q, nq, on_write);
    if (rc != 0) {
        free(wr->own);
        if (wr->body_ref != NULL)
            wr->body_ref(wr->body_owner, -1);
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
    return conn_write(cn, buf, len, true, NULL, 0, NULL, NULL, request_end);
}

static void conn_send_request(struct conn *cn)
{
    struct creq *r = cn->req;
    hk__dl_unset(r->c, &r->phase_dl); /* the connect phase is over */
    r->phase = PH_WRITE;
    r->sent = true;
    hk__client_req_reset(r);
    int rc;
    if (cn->tls != NULL) {
        /* mbedTLS encrypts from each buffer into its own record buffer:
         * head and body go in as they are, one write each, no concatenation. */
        char err[ERROR_TEXT_LEN];
        if (hk_tls_write(cn->tls, r->head, r->head_len, err, sizeof(err)) != 0 ||
            (r->out_body_len > 0 && hk_tls_write(cn->tls, r->out_body, r->out_body_len, err, sizeof(err)) != 0)) {
            hk__client_conn_fail(cn, HK_ETLS, "%s", err);
            return;
        }
        rc = conn_flush_tls(cn, true);
    } else {
        rc =
            conn_write(cn, r->head, r->head_len, false, r->out_body, r->out_body_len, r->body_ref, r->body_owner, true);
    }
    if (rc != 0)
        hk__client_conn_fail(cn, rc, "%s",
                             rc == UV_EPIPE || rc == UV_ECONNRESET ? "connection reset by peer" : uv_strerror(rc));
}

/* ---- TLS ----------------------------------------------------------------------------------- */

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
        hk__client_conn_fail(cn, HK_ETLS, "%s", err);
        return;
    }
    if (wrc != 0) {
        hk__client_conn_fail(cn, wrc, "%s", wrc == UV_EPIPE ? "connection reset by peer" : uv_strerror(wrc));
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
            hk__client_conn_eof(cn, UV_EOF);
            return;
        }
        if (n < 0) {
            conn_flush_tls(cn, false);
            hk__client_conn_fail(cn, HK_ETLS, "%s", err);
            return;
        }
        hk__client_conn_input(cn, c->plain_buf, (size_t)n);
        if (cn->state == CS_CLOSING)
            return;
    }
    if (conn_flush_tls(cn, false) != 0)
        hk__client_conn_fail(cn, UV_EPIPE, "connection reset by peer");
}

/* ---- reading ------------------------------------------------------------------------------- */

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
        hk__client_conn_eof(cn, (int)nread);
        return;
    }
    if (cn->tls != NULL) {
        hk_tls_feed(cn->tls, buf->base, (size_t)nread);
        conn_tls_input(cn);
    } else {
        hk__client_conn_input(cn, buf->base, (size_t)nread);
    }
}

/* ---- connecting ---------------------------------------------------------------------------- */

static void on_connect(uv_connect_t *creq, int status)
{
    struct conn *cn = hk_container_of(creq, struct conn, connect);
    if (status == UV_ECANCELED || cn->state == CS_CLOSING)
        return;
    if (status != 0) {
        if (status == UV_ECONNREFUSED)
            hk__client_conn_fail(cn, status, "connection refused");
        else if (status == UV_ECONNRESET)
            hk__client_conn_fail(cn, status, "connection reset by peer");
        else
            hk__client_conn_fail(cn, status, "connect failed: %s", uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&cn->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
    if (rc != 0) {
        hk__client_conn_fail(cn, rc, "read failed: %s", uv_strerror(rc));
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
        hk__client_conn_fail(cn, HK_ETLS, "%s", err);
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
    cn->tcp.data = cn;
    cn->idle.kind = -1;
    cn->state = CS_CONNECTING;
    cn->next = c->conns;
    if (c->conns)
        c->conns->prev = cn;
    c->conns = cn;
    c->live++;
    HK_METRIC_ADD(hk_metrics.client_connections, 1);
    HK_METRIC_ADD(hk_metrics.client_connections_opened, 1);
    cn->req = r;
    r->conn = cn;
    r->reused = false;
    r->phase = PH_CONNECT;
    hk__client_phase_deadline(r);
    int rc = uv_tcp_connect(&cn->connect, &cn->tcp, sa, on_connect);
    if (rc != 0)
        hk__client_conn_fail(cn, rc, "%s", rc == UV_ECONNREFUSED ? "connection refused" : uv_strerror(rc));
}

/* ---- DNS and the SSRF guard ---------------------------------------------------------------- */

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct creq *r = arg;
    r->dns = NULL;
    if (status != 0) {
        hk__client_req_fail(r, status, "DNS lookup for %s failed: %s", r->o->host,
                            text[0] ? text : uv_strerror(status));
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
            hk__client_req_fail(r, HK_EFORBIDDEN, "refused by SSRF guard: no usable address for the host");
        else
            hk__client_req_fail(r, HK_EFORBIDDEN, "refused by SSRF guard: %s is %s", r->refused.addr, r->refused.rule);
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
        hk__client_req_fail(r, rc, "DNS lookup for %s failed: %s", r->o->host, hk_strerror(rc));
        return;
    }
    hk__client_phase_deadline(r);
}
