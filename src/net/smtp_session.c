/*
 * smtp_session.c: one SMTP session's conversation with the relay.
 *
 * A session walks KICK -> RESOLVING -> CONNECTING -> GREETING -> EHLO
 * [-> STARTTLS -> HANDSHAKE -> EHLO] -> MAIL -> RCPT ... -> DATA -> BODY ->
 * QUIT. Its timer first defers the start to the next loop iteration (so a
 * callback never runs inside hk_smtp_send), then bounds the whole
 * exchange. DNS runs on the loop (resolver.h); the addresses are tried in
 * turn. STARTTLS runs mbedTLS over memory buffers, the relay verified with
 * its host name. Each complete reply (smtp_reply.c) moves the session on.
 *
 * Memory: write buffers belong to their write request and are freed in
 * the write callback, also on UV_ECANCELED; read buffers are freed after
 * each read.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "smtp_int.h"

#define READ_BUF_SIZE 16384

/* For error texts: where the session was. */
static const char *const state_names[] = {"queued",  "start", "DNS",      "connect",       "greeting",
                                          "EHLO",    "HELO",  "STARTTLS", "TLS handshake", "MAIL FROM",
                                          "RCPT TO", "DATA",  "message",  "QUIT",          "close"};

/* One uv_write to the relay; owns data. */
struct wreq {
    uv_write_t w;
    struct session *s;
    char *data;
};

static void try_connect(struct session *s);

/* ---- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = hk_container_of(w, struct wreq, w);
    struct session *s = wr->s;
    free(wr->data);
    free(wr);
    if (status < 0 && status != UV_ECANCELED && s->state != ST_CLOSING)
        hk__smtp_fail(s, status, "write to the relay failed: %s", uv_strerror(status));
}

/* Takes data (malloc'd) and writes it to the socket. */
static int write_raw(struct session *s, char *data, size_t len)
{
    struct wreq *wr = hk_malloc(sizeof(*wr));
    wr->s = s;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&wr->w, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(data);
        free(wr);
    }
    return rc;
}

/* Sends what mbedTLS has produced. */
static int flush_tls(struct session *s)
{
    char *out;
    size_t len;
    hk_tls_take_output(s->tls, &out, &len);
    if (out == NULL)
        return 0;
    return write_raw(s, out, len);
}

/* Sends len bytes of protocol text, through TLS once it is up. */
static int send_bytes(struct session *s, const char *data, size_t len)
{
    /* A callback may have closed the client (and this session) meanwhile. */
    if (s->state == ST_CLOSING)
        return UV_ECANCELED;
    if (s->tls != NULL) {
        char err[ERROR_TEXT_LEN];
        if (hk_tls_write(s->tls, data, len, err, sizeof(err)) != 0) {
            hk__smtp_fail(s, HK_ETLS, "%s", err);
            return HK_ETLS;
        }
        int rc = flush_tls(s);
        if (rc != 0)
            hk__smtp_fail(s, rc, "write to the relay failed: %s", uv_strerror(rc));
        return rc;
    }
    char *copy = hk_malloc(len);
    memcpy(copy, data, len);
    int rc = write_raw(s, copy, len);
    if (rc != 0)
        hk__smtp_fail(s, rc, "write to the relay failed: %s", uv_strerror(rc));
    return rc;
}

static int send_cmd(struct session *s, enum state next, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int send_cmd(struct session *s, enum state next, const char *fmt, ...)
{
    if (s->state == ST_CLOSING)
        return UV_ECANCELED;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    s->state = next;
    return send_bytes(s, line, (size_t)n);
}

/* ---- the conversation -------------------------------------------------- */

static void send_mail_from(struct session *s)
{
    send_cmd(s, ST_MAIL, "MAIL FROM:<%s>", s->from);
}

static void send_ehlo(struct session *s)
{
    send_cmd(s, ST_EHLO, "EHLO %s", s->c->helo);
}

static void after_hello(struct session *s)
{
    if (s->c->starttls && s->tls == NULL) {
        if (s->state == ST_HELO || !s->tls_offered) {
            hk__smtp_fail(s, HK_ETLS, "relay %s:%u does not offer STARTTLS", s->c->host, s->c->port);
            return;
        }
        send_cmd(s, ST_STARTTLS, "STARTTLS");
        return;
    }
    send_mail_from(s);
}

static void handshake(struct session *s)
{
    char err[ERROR_TEXT_LEN];
    int rc = hk_tls_handshake(s->tls, err, sizeof(err));
    int wrc = flush_tls(s);
    if (rc != 0 && rc != HK_TLS_WANT_READ) {
        hk__smtp_fail(s, HK_ETLS, "%s", err);
        return;
    }
    if (wrc != 0) {
        hk__smtp_fail(s, wrc, "write to the relay failed: %s", uv_strerror(wrc));
        return;
    }
    if (rc == 0)
        send_ehlo(s); /* RFC 3207: everything learnt before TLS is forgotten */
}

static void start_tls(struct session *s)
{
    hk_smtp *c = s->c;
    char err[ERROR_TEXT_LEN];
    if (c->tls == NULL && hk_tls_ctx_create(&c->tls, c->ca_file) != 0) {
        hk__smtp_fail(s, HK_ETLS, "TLS: cannot seed the random generator");
        return;
    }
    if (hk_tls_conn_create(&s->tls, c->tls, c->host, c->ca_file, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        hk__smtp_fail(s, HK_ETLS, "%s", err);
        return;
    }
    s->state = ST_HANDSHAKE;
    handshake(s);
}

/* One complete reply (code and all its lines in s->reply). */
static void on_reply(struct session *s, int code)
{
    char text[300];
    switch (s->state) {
    case ST_GREETING:
        if (code != 220)
            goto refused;
        send_ehlo(s);
        return;
    case ST_EHLO:
        if (code == 250) {
            s->tls_offered = hk__smtp_reply_has(&s->reply, "STARTTLS");
            after_hello(s);
        } else if (code >= 500 && s->tls == NULL) {
            send_cmd(s, ST_HELO, "HELO %s", s->c->helo);
        } else {
            goto refused;
        }
        return;
    case ST_HELO:
        if (code != 250)
            goto refused;
        after_hello(s);
        return;
    case ST_STARTTLS:
        if (code != 220)
            goto refused;
        start_tls(s);
        return;
    case ST_MAIL:
        if (code != 250)
            goto refused;
        s->rcpt_next = 0;
        s->rcpt_ok = 0;
        send_cmd(s, ST_RCPT, "RCPT TO:<%s>", s->to[s->rcpt_next++]);
        return;
    case ST_RCPT:
        if (code == 250 || code == 251) {
            s->rcpt_ok++;
        } else {
            hk__smtp_reply_text(&s->reply, text, sizeof(text));
            snprintf(s->rcpt_err, sizeof(s->rcpt_err), "%s", text);
            hk_warn("smtp: relay refused recipient %s: %s", s->to[s->rcpt_next - 1], text);
        }
        if (s->rcpt_next < s->nto)
            send_cmd(s, ST_RCPT, "RCPT TO:<%s>", s->to[s->rcpt_next++]);
        else if (s->rcpt_ok == 0)
            hk__smtp_fail(s, HK_EINVAL, "relay refused every recipient: %s", s->rcpt_err);
        else
            send_cmd(s, ST_DATA, "DATA");
        return;
    case ST_DATA:
        if (code != 354)
            goto refused;
        s->state = ST_BODY;
        send_bytes(s, s->message, s->message_len);
        return;
    case ST_BODY:
        if (code != 250)
            goto refused;
        hk__smtp_report(s, 0, NULL);
        send_cmd(s, ST_QUIT, "QUIT");
        return;
    case ST_QUIT: hk__smtp_session_close(s); return;
    default: hk__smtp_fail(s, HK_EPROTO, "relay spoke out of turn (in %s)", state_names[s->state]); return;
    }
refused:
    hk__smtp_reply_text(&s->reply, text, sizeof(text));
    hk__smtp_fail(s, HK_EPROTO, "relay answered %s to %s", text, state_names[s->state]);
}

/* ---- reading ----------------------------------------------------------- */

/* Feeds received plaintext to the reply parser, one complete reply at a time. */
static void on_plain(struct session *s, const char *data, size_t len)
{
    size_t off = 0;
    while (off < len && s->state != ST_CLOSING) {
        size_t used;
        int code;
        int rc = hk__smtp_reply_feed(&s->reply, data + off, len - off, &used, &code);
        if (rc == HK_ETOOBIG) {
            hk__smtp_fail(s, HK_ETOOBIG, "relay reply longer than %d bytes (in %s)", HK_SMTP_MAX_REPLY,
                          state_names[s->state]);
            return;
        }
        if (rc != 0) {
            hk__smtp_fail(s, rc, "relay sent a malformed reply line (in %s)", state_names[s->state]);
            return;
        }
        off += used;
        if (code < 0)
            return; /* the reply goes on in the next read */
        enum state was = s->state;
        on_reply(s, code);
        hk__smtp_reply_reset(&s->reply);
        /* RFC 3207: plaintext that follows the 220 to STARTTLS is an injection. */
        if (was == ST_STARTTLS && s->state == ST_HANDSHAKE && off < len) {
            hk__smtp_fail(s, HK_EPROTO, "relay sent data after its STARTTLS answer");
            return;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    HK_UNUSED(h);
    HK_UNUSED(suggested);
    buf->base = hk_malloc(READ_BUF_SIZE);
    buf->len = READ_BUF_SIZE;
}

static void on_tls_input(struct session *s)
{
    if (s->state == ST_HANDSHAKE) {
        handshake(s);
        if (s->state == ST_HANDSHAKE || s->state == ST_CLOSING)
            return;
    }
    char plain[READ_BUF_SIZE];
    while (s->state != ST_CLOSING) {
        char err[ERROR_TEXT_LEN];
        int n = hk_tls_read(s->tls, plain, sizeof(plain), err, sizeof(err));
        if (n == 0)
            break;
        if (n == UV_EOF) {
            if (s->state == ST_QUIT)
                hk__smtp_session_close(s);
            else
                hk__smtp_fail(s, UV_EOF, "relay closed the connection (in %s)", state_names[s->state]);
            return;
        }
        if (n < 0) {
            hk__smtp_fail(s, HK_ETLS, "%s", err);
            return;
        }
        on_plain(s, plain, (size_t)n);
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct session *s = st->data;
    if (nread < 0) {
        if (s->state == ST_QUIT)
            hk__smtp_session_close(s);
        else if (nread == UV_EOF)
            hk__smtp_fail(s, UV_EOF, "relay closed the connection (in %s)", state_names[s->state]);
        else
            hk__smtp_fail(s, (int)nread, "read from the relay failed: %s", uv_strerror((int)nread));
    } else if (nread > 0 && s->state != ST_CLOSING) {
        if (s->tls != NULL) {
            hk_tls_feed(s->tls, buf->base, (size_t)nread);
            on_tls_input(s);
        } else {
            on_plain(s, buf->base, (size_t)nread);
        }
    }
    free(buf->base);
}

/* ---- connecting --------------------------------------------------------- */

static void on_retry_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    s->handles--;
    if (s->state == ST_CLOSING)
        hk__smtp_maybe_free(s);
    else
        try_connect(s);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct session *s = req->data;
    if (status == UV_ECANCELED || s->state == ST_CLOSING)
        return;
    if (status != 0) {
        if (s->addr_next < s->naddrs) {
            /* The next address gets the handle again once it is closed. */
            s->tcp_open = false;
            uv_close((uv_handle_t *)&s->tcp, on_retry_closed);
            return;
        }
        hk__smtp_fail(s, status, "cannot connect to relay %s:%u: %s", s->c->host, s->c->port,
                      status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
        return;
    }
    s->state = ST_GREETING;
    int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc != 0)
        hk__smtp_fail(s, rc, "read from the relay failed: %s", uv_strerror(rc));
}

static void try_connect(struct session *s)
{
    int rc = uv_tcp_init(s->c->loop, &s->tcp);
    if (rc != 0) {
        hk__smtp_fail(s, rc, "cannot create a socket: %s", uv_strerror(rc));
        return;
    }
    s->tcp.data = s;
    s->tcp_open = true;
    s->handles++;
    s->connect.data = s;
    s->state = ST_CONNECTING;
    rc = uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&s->addrs[s->addr_next++], on_connect);
    if (rc != 0)
        hk__smtp_fail(s, rc, "cannot connect to relay %s:%u: %s", s->c->host, s->c->port, uv_strerror(rc));
}

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct session *s = arg;
    s->dns = NULL;
    if (status != 0) {
        hk__smtp_fail(s, status, "cannot resolve relay %s: %s", s->c->host, text[0] ? text : uv_strerror(status));
        return;
    }
    s->naddrs = s->addr_next = 0;
    for (size_t i = 0; i < n && s->naddrs < MAX_ADDRS; i++) {
        s->addrs[s->naddrs] = addrs[i];
        if (addrs[i].ss_family == AF_INET)
            ((struct sockaddr_in *)&s->addrs[s->naddrs])->sin_port = htons(s->c->port);
        else
            ((struct sockaddr_in6 *)&s->addrs[s->naddrs])->sin6_port = htons(s->c->port);
        s->naddrs++;
    }
    try_connect(s);
}

static void on_timer(uv_timer_t *t)
{
    struct session *s = t->data;
    if (s->state == ST_KICK) {
        s->state = ST_RESOLVING;
        int rc = hk_resolve(s->c->resolver, s->c->host, &s->dns, on_resolved, s);
        if (rc != 0) {
            hk__smtp_fail(s, rc, "cannot resolve relay %s: %s", s->c->host, hk_strerror(rc));
            return;
        }
        uv_timer_start(&s->timer, on_timer, s->c->timeout_ms, 0);
        return;
    }
    if (s->state == ST_QUIT) {
        hk__smtp_session_close(s);
        return;
    }
    hk__smtp_fail(s, UV_ETIMEDOUT, "timeout after %llu ms (in %s)", (unsigned long long)s->c->timeout_ms,
                  state_names[s->state]);
}

void hk__smtp_session_begin(struct session *s)
{
    hk_smtp *c = s->c;
    s->reply.buf = hk_malloc(HK_SMTP_MAX_REPLY);
    uv_timer_init(c->loop, &s->timer);
    s->timer.data = s;
    s->handles++;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}
