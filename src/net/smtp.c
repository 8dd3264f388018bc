/*
 * smtp.c: the SMTP client (see smtp.h).
 *
 * A session walks QUEUED -> KICK -> RESOLVING -> CONNECTING -> GREETING ->
 * EHLO [-> STARTTLS -> HANDSHAKE -> EHLO] -> MAIL -> RCPT ... -> DATA ->
 * BODY -> QUIT. Its timer first defers the start to the next loop
 * iteration (so a callback never runs inside hk_smtp_send), then bounds the
 * whole exchange. The caller's callback runs once: when the relay accepts
 * the message (the QUIT that follows is a courtesy), or on the first
 * failure.
 *
 * Memory: a session is freed once its TCP handle and timer are closed (a
 * DNS lookup in flight is cancelled: its callback never runs). Write
 * buffers belong to their write request and are freed in the write
 * callback, also on UV_ECANCELED. The client is freed when its last
 * session and its resolver are, after hk_smtp_close.
 */
#include "smtp.h"

#include <ctype.h>
#include <mbedtls/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "random.h"
#include "resolver.h"
#include "tls.h"

#define READ_BUF_SIZE 16384
#define ERROR_TEXT_LEN 600
#define MAX_ADDRS 8         /* resolved addresses tried in turn */
#define MAX_LINE_OCTETS 990 /* body lines are broken before RFC 5321's 998 */
#define SUBJECT_WORD_IN 45  /* input bytes per RFC 2047 encoded word (60 base64 characters) */

enum state {
    ST_QUEUED,
    ST_KICK,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_GREETING,
    ST_EHLO,
    ST_HELO,
    ST_STARTTLS,
    ST_HANDSHAKE,
    ST_MAIL,
    ST_RCPT,
    ST_DATA,
    ST_BODY,
    ST_QUIT,
    ST_CLOSING
};

static const char *const state_names[] = {"queued",  "start", "DNS",      "connect",       "greeting",
                                          "EHLO",    "HELO",  "STARTTLS", "TLS handshake", "MAIL FROM",
                                          "RCPT TO", "DATA",  "message",  "QUIT",          "close"};

struct session {
    hk_smtp *c;
    struct session *prev, *next; /* the client's active list or queue */
    enum state state;
    char *from;
    char **to;
    size_t nto;
    size_t rcpt_next;   /* next recipient to send RCPT TO for */
    size_t rcpt_ok;     /* recipients the relay accepted */
    char rcpt_err[300]; /* the last refusal */
    char *message;      /* DATA payload, dot-stuffed, ending in CRLF.CRLF */
    size_t message_len;
    hk_smtp_cb cb;
    void *arg;
    bool reported;    /* cb has run */
    bool tls_offered; /* the last EHLO listed STARTTLS */
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t connect;
    hk_resolve_req *dns; /* the relay's lookup in flight, NULL when none */
    bool tcp_open;
    int handles; /* open handles (timer, tcp) */
    struct sockaddr_storage addrs[MAX_ADDRS];
    size_t naddrs, addr_next;
    hk_tls_conn *tls;
    char *reply; /* the reply being received (all its lines), HK_SMTP_MAX_REPLY bytes */
    size_t reply_len;
    size_t line_start; /* where the current line begins in reply */
};

struct hk_smtp {
    uv_loop_t *loop;
    char *host;
    uint16_t port;
    bool starttls;
    char *ca_file;
    char *helo;
    uint64_t timeout_ms;
    hk_tls_ctx *tls;
    hk_resolver *resolver;
    struct session *active;
    struct session *queue_head, *queue_tail;
    size_t nactive, nqueued, nsessions; /* nsessions: allocated, closing ones included, plus one for the resolver */
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

struct wreq {
    uv_write_t w;
    struct session *s;
    char *data;
};

static void session_close(struct session *s);
static void start_next(hk_smtp *c);
static void try_connect(struct session *s);

/* ---- addresses and the message ----------------------------------------- */

bool hk_smtp_address_ok(const char *addr)
{
    size_t n = addr ? strlen(addr) : 0;
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(addr, '@');
    if (at == NULL || at == addr || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (const char *p = addr; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7f || strchr("<>\"(),;:\\[]", ch) != NULL)
            return false;
    }
    return true;
}

/* A header value must stay on one line: control characters become blanks. */
static bool subject_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void add_subject(hk_buf *b, const char *subject)
{
    hk_buf_puts(b, "Subject: ");
    size_t n = strlen(subject);
    char *clean = hk_malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        clean[i] = (unsigned char)subject[i] < 0x20 && subject[i] != '\0' ? ' ' : subject[i];
    if (subject_ascii(clean)) {
        hk_buf_append(b, clean, n);
    } else {
        /* RFC 2047 encoded words, each holding whole UTF-8 characters. */
        size_t i = 0;
        bool first = true;
        while (i < n) {
            size_t end = i + SUBJECT_WORD_IN < n ? i + SUBJECT_WORD_IN : n;
            while (end > i + 1 && end < n && ((unsigned char)clean[end] & 0xC0) == 0x80)
                end--;
            unsigned char enc[SUBJECT_WORD_IN * 2];
            size_t olen = 0;
            if (mbedtls_base64_encode(enc, sizeof(enc), &olen, (const unsigned char *)clean + i, end - i) != 0)
                break;
            if (!first)
                hk_buf_puts(b, "\r\n ");
            hk_buf_puts(b, "=?utf-8?B?");
            hk_buf_append(b, (const char *)enc, olen);
            hk_buf_puts(b, "?=");
            first = false;
            i = end;
        }
    }
    hk_buf_puts(b, "\r\n");
    free(clean);
}

/* The body as SMTP wants it: CRLF line endings, lines of at most
 * MAX_LINE_OCTETS (longer ones are broken between characters), a leading
 * dot doubled, and the terminating CRLF.CRLF. */
static void add_body(hk_buf *b, const char *body)
{
    size_t col = 0;
    for (const char *p = body; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            if (*p == '\r' && p[1] == '\n')
                p++;
            hk_buf_append(b, "\r\n", 2);
            col = 0;
            continue;
        }
        if (col >= MAX_LINE_OCTETS && ((unsigned char)*p & 0xC0) != 0x80) {
            hk_buf_append(b, "\r\n", 2);
            col = 0;
        }
        if (col == 0 && *p == '.')
            hk_buf_append(b, ".", 1);
        hk_buf_append(b, p, 1);
        col++;
    }
    if (col > 0)
        hk_buf_append(b, "\r\n", 2);
    hk_buf_append(b, ".\r\n", 3);
}

static char *build_message(const hk_smtp_mail *m, char **to, size_t nto, size_t *len)
{
    hk_buf b = HK_BUF_INIT;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    uint8_t rnd[12];
    hk_random(rnd, sizeof(rnd));
    const char *domain = strchr(m->from, '@') + 1;

    hk_buf_printf(&b, "From: <%s>\r\n", m->from);
    hk_buf_puts(&b, "To: ");
    for (size_t i = 0; i < nto; i++)
        hk_buf_printf(&b, "%s<%s>", i ? ",\r\n " : "", to[i]);
    hk_buf_puts(&b, "\r\n");
    add_subject(&b, m->subject ? m->subject : "");
    hk_buf_printf(&b, "Date: %s\r\n", date);
    hk_buf_puts(&b, "Message-ID: <");
    for (size_t i = 0; i < sizeof(rnd); i++)
        hk_buf_printf(&b, "%02x", rnd[i]);
    hk_buf_printf(&b, ".%llu@%s>\r\n", (unsigned long long)now, domain);
    hk_buf_puts(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n");
    add_body(&b, m->body ? m->body : "");
    return hk_buf_steal(&b, len);
}

/* ---- session life ----------------------------------------------------- */

/* Drops one of the references nsessions counts; the last one after hk_smtp_close frees the client. */
static void client_unref(hk_smtp *c)
{
    if (--c->nsessions > 0 || !c->closing)
        return;
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    hk_tls_ctx_free(c->tls);
    free(c->host);
    free(c->ca_file);
    free(c->helo);
    free(c);
    if (closed != NULL)
        closed(arg);
}

static void session_free(struct session *s)
{
    hk_smtp *c = s->c;
    free(s->from);
    for (size_t i = 0; i < s->nto; i++)
        free(s->to[i]);
    free(s->to);
    free(s->message);
    free(s->reply);
    hk_tls_conn_free(s->tls);
    free(s);
    client_unref(c);
}

static void maybe_free(struct session *s)
{
    if (s->state == ST_CLOSING && s->handles == 0)
        session_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    s->handles--;
    maybe_free(s);
}

static void report(struct session *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(struct session *s, int status, const char *fmt, ...)
{
    if (s->reported)
        return;
    s->reported = true;
    char text[ERROR_TEXT_LEN] = "";
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
    }
    s->cb(status, text, s->arg);
}

static void list_remove(hk_smtp *c, struct session *s)
{
    if (s->state == ST_QUEUED) {
        if (s->prev)
            s->prev->next = s->next;
        else
            c->queue_head = s->next;
        if (s->next)
            s->next->prev = s->prev;
        else
            c->queue_tail = s->prev;
        c->nqueued--;
    } else {
        if (s->prev)
            s->prev->next = s->next;
        else
            c->active = s->next;
        if (s->next)
            s->next->prev = s->prev;
        c->nactive--;
    }
    s->prev = s->next = NULL;
}

/* Ends a session (reporting nothing: call report first) and lets the next queued mail start. */
static void session_close(struct session *s)
{
    if (s->state == ST_CLOSING)
        return;
    hk_smtp *c = s->c;
    bool was_queued = s->state == ST_QUEUED;
    list_remove(c, s);
    s->state = ST_CLOSING;
    if (s->dns != NULL) {
        hk_resolve_cancel(s->dns);
        s->dns = NULL;
    }
    if (!was_queued) {
        uv_close((uv_handle_t *)&s->timer, on_handle_closed);
        if (s->tcp_open) {
            s->tcp_open = false;
            uv_close((uv_handle_t *)&s->tcp, on_handle_closed);
        }
    }
    if (!c->closing)
        start_next(c);
    maybe_free(s);
}

static void fail(struct session *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct session *s, int status, const char *fmt, ...)
{
    if (s->state == ST_CLOSING)
        return;
    char text[ERROR_TEXT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    report(s, status, "%s", text);
    session_close(s);
}

/* ---- writing ------------------------------------------------------------ */

static void on_write(uv_write_t *w, int status)
{
    struct wreq *wr = hk_container_of(w, struct wreq, w);
    struct session *s = wr->s;
    free(wr->data);
    free(wr);
    if (status < 0 && status != UV_ECANCELED && s->state != ST_CLOSING)
        fail(s, status, "write to the relay failed: %s", uv_strerror(status));
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
            fail(s, HK_ETLS, "%s", err);
            return HK_ETLS;
        }
        int rc = flush_tls(s);
        if (rc != 0)
            fail(s, rc, "write to the relay failed: %s", uv_strerror(rc));
        return rc;
    }
    char *copy = hk_malloc(len);
    memcpy(copy, data, len);
    int rc = write_raw(s, copy, len);
    if (rc != 0)
        fail(s, rc, "write to the relay failed: %s", uv_strerror(rc));
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

/* ---- replies ------------------------------------------------------------ */

/* The reply text on one line (continuation lines joined with " / "), for errors. */
static void reply_text(const struct session *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < s->reply_len && o + 1 < outlen; i++) {
        char ch = s->reply[i];
        if (ch == '\r')
            continue;
        if (ch == '\n') {
            if (i + 1 < s->reply_len && o + 4 < outlen) {
                memcpy(out + o, " / ", 3);
                o += 3;
            }
            continue;
        }
        out[o++] = (unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f ? '?' : ch;
    }
    out[o] = '\0';
}

/* True when a line of the EHLO reply names the extension kw. */
static bool ehlo_has(const struct session *s, const char *kw)
{
    size_t kl = strlen(kw);
    const char *p = s->reply, *end = s->reply + s->reply_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le - p >= 4 + (long)kl && strncasecmp(p + 4, kw, kl) == 0 &&
            (p + 4 + kl == le || isspace((unsigned char)p[4 + kl])))
            return true;
        p = nl ? nl + 1 : end;
    }
    return false;
}

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
            fail(s, HK_ETLS, "relay %s:%u does not offer STARTTLS", s->c->host, s->c->port);
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
        fail(s, HK_ETLS, "%s", err);
        return;
    }
    if (wrc != 0) {
        fail(s, wrc, "write to the relay failed: %s", uv_strerror(wrc));
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
        fail(s, HK_ETLS, "TLS: cannot seed the random generator");
        return;
    }
    if (hk_tls_conn_create(&s->tls, c->tls, c->host, c->ca_file, NULL, NULL, NULL, err, sizeof(err)) != 0) {
        fail(s, HK_ETLS, "%s", err);
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
            s->tls_offered = ehlo_has(s, "STARTTLS");
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
            reply_text(s, text, sizeof(text));
            snprintf(s->rcpt_err, sizeof(s->rcpt_err), "%s", text);
            hk_warn("smtp: relay refused recipient %s: %s", s->to[s->rcpt_next - 1], text);
        }
        if (s->rcpt_next < s->nto)
            send_cmd(s, ST_RCPT, "RCPT TO:<%s>", s->to[s->rcpt_next++]);
        else if (s->rcpt_ok == 0)
            fail(s, HK_EINVAL, "relay refused every recipient: %s", s->rcpt_err);
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
        report(s, 0, NULL);
        send_cmd(s, ST_QUIT, "QUIT");
        return;
    case ST_QUIT: session_close(s); return;
    default: fail(s, HK_EPROTO, "relay spoke out of turn (in %s)", state_names[s->state]); return;
    }
refused:
    reply_text(s, text, sizeof(text));
    fail(s, HK_EPROTO, "relay answered %s to %s", text, state_names[s->state]);
}

/* Feeds received plaintext to the reply parser. */
static void on_plain(struct session *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len && s->state != ST_CLOSING; i++) {
        if (s->reply_len == HK_SMTP_MAX_REPLY) {
            fail(s, HK_ETOOBIG, "relay reply longer than %d bytes (in %s)", HK_SMTP_MAX_REPLY, state_names[s->state]);
            return;
        }
        s->reply[s->reply_len++] = data[i];
        if (data[i] != '\n')
            continue;
        const char *line = s->reply + s->line_start;
        size_t ll = s->reply_len - s->line_start;
        if (ll < 4 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
            !isdigit((unsigned char)line[2]) || (line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
            fail(s, HK_EPROTO, "relay sent a malformed reply line (in %s)", state_names[s->state]);
            return;
        }
        if (line[3] == '-') {
            s->line_start = s->reply_len;
            continue;
        }
        int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        enum state was = s->state;
        on_reply(s, code);
        s->reply_len = s->line_start = 0;
        /* RFC 3207: plaintext that follows the 220 to STARTTLS is an injection. */
        if (was == ST_STARTTLS && s->state == ST_HANDSHAKE && i + 1 < len) {
            fail(s, HK_EPROTO, "relay sent data after its STARTTLS answer");
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
                session_close(s);
            else
                fail(s, UV_EOF, "relay closed the connection (in %s)", state_names[s->state]);
            return;
        }
        if (n < 0) {
            fail(s, HK_ETLS, "%s", err);
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
            session_close(s);
        else if (nread == UV_EOF)
            fail(s, UV_EOF, "relay closed the connection (in %s)", state_names[s->state]);
        else
            fail(s, (int)nread, "read from the relay failed: %s", uv_strerror((int)nread));
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
        maybe_free(s);
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
        fail(s, status, "cannot connect to relay %s:%u: %s", s->c->host, s->c->port,
             status == UV_ECONNREFUSED ? "connection refused" : uv_strerror(status));
        return;
    }
    s->state = ST_GREETING;
    int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc != 0)
        fail(s, rc, "read from the relay failed: %s", uv_strerror(rc));
}

static void try_connect(struct session *s)
{
    int rc = uv_tcp_init(s->c->loop, &s->tcp);
    if (rc != 0) {
        fail(s, rc, "cannot create a socket: %s", uv_strerror(rc));
        return;
    }
    s->tcp.data = s;
    s->tcp_open = true;
    s->handles++;
    s->connect.data = s;
    s->state = ST_CONNECTING;
    rc = uv_tcp_connect(&s->connect, &s->tcp, (const struct sockaddr *)&s->addrs[s->addr_next++], on_connect);
    if (rc != 0)
        fail(s, rc, "cannot connect to relay %s:%u: %s", s->c->host, s->c->port, uv_strerror(rc));
}

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct session *s = arg;
    s->dns = NULL;
    if (status != 0) {
        fail(s, status, "cannot resolve relay %s: %s", s->c->host, text[0] ? text : uv_strerror(status));
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
            fail(s, rc, "cannot resolve relay %s: %s", s->c->host, hk_strerror(rc));
            return;
        }
        uv_timer_start(&s->timer, on_timer, s->c->timeout_ms, 0);
        return;
    }
    if (s->state == ST_QUIT) {
        session_close(s);
        return;
    }
    fail(s, UV_ETIMEDOUT, "timeout after %llu ms (in %s)", (unsigned long long)s->c->timeout_ms, state_names[s->state]);
}

/* Moves s from the queue to the active list and arms its kick. */
static void session_start(struct session *s)
{
    hk_smtp *c = s->c;
    list_remove(c, s);
    s->state = ST_KICK;
    s->next = c->active;
    if (c->active)
        c->active->prev = s;
    c->active = s;
    c->nactive++;
    s->reply = hk_malloc(HK_SMTP_MAX_REPLY);
    uv_timer_init(c->loop, &s->timer);
    s->timer.data = s;
    s->handles++;
    uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void start_next(hk_smtp *c)
{
    while (c->queue_head != NULL && c->nactive < HK_SMTP_MAX_SESSIONS)
        session_start(c->queue_head);
}

/* ---- the client ---------------------------------------------------------- */

int hk_smtp_create(hk_smtp **out, uv_loop_t *loop, const hk_smtp_opts *opts)
{
    if (opts->host == NULL || opts->host[0] == '\0')
        return HK_EINVAL;
    hk_smtp *c = hk_calloc(1, sizeof(*c));
    c->loop = loop;
    c->host = hk_strdup(opts->host);
    c->port = opts->port ? opts->port : 25;
    c->starttls = opts->starttls;
    c->ca_file = opts->ca_file && opts->ca_file[0] ? hk_strdup(opts->ca_file) : NULL;
    c->helo = hk_strdup(opts->helo && opts->helo[0] ? opts->helo : "localhost");
    /* The name goes on the EHLO line: keep it to a plain token. */
    for (char *p = c->helo; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_')
            *p = '-';
    c->timeout_ms = opts->timeout_ms ? opts->timeout_ms : HK_SMTP_DEFAULT_TIMEOUT_MS;
    int rc = hk_resolver_create(&c->resolver, loop, NULL);
    if (rc != 0) {
        free(c->host);
        free(c->ca_file);
        free(c->helo);
        free(c);
        return rc;
    }
    c->nsessions = 1; /* the resolver's reference, dropped when it is closed */
    *out = c;
    return 0;
}

/* Names a recipient that is skipped, without letting its bytes into the log line. */
static void warn_skipped(const char *addr)
{
    char shown[101];
    size_t n = 0;
    for (const char *p = addr ? addr : ""; *p && n + 1 < sizeof(shown); p++)
        shown[n++] = (unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f ? '?' : *p;
    shown[n] = '\0';
    hk_warn("smtp: skipping recipient \"%s\": not a plain address", shown);
}

int hk_smtp_send(hk_smtp *c, const hk_smtp_mail *mail, hk_smtp_cb cb, void *arg)
{
    if (c->closing)
        return HK_ESHUTDOWN;
    if (!hk_smtp_address_ok(mail->from) || mail->nto == 0)
        return HK_EINVAL;
    if (c->nqueued >= HK_SMTP_MAX_QUEUED)
        return UV_ENOBUFS;
    struct session *s = hk_calloc(1, sizeof(*s));
    s->to = hk_calloc(mail->nto, sizeof(*s->to));
    for (size_t i = 0; i < mail->nto && s->nto < HK_SMTP_MAX_RCPT; i++) {
        if (hk_smtp_address_ok(mail->to[i]))
            s->to[s->nto++] = hk_strdup(mail->to[i]);
        else
            warn_skipped(mail->to[i]);
    }
    if (s->nto == 0) {
        free(s->to);
        free(s);
        return HK_EINVAL;
    }
    s->c = c;
    s->from = hk_strdup(mail->from);
    s->message = build_message(mail, s->to, s->nto, &s->message_len);
    s->cb = cb;
    s->arg = arg;
    s->state = ST_QUEUED;
    s->prev = c->queue_tail;
    if (c->queue_tail)
        c->queue_tail->next = s;
    else
        c->queue_head = s;
    c->queue_tail = s;
    c->nqueued++;
    c->nsessions++;
    start_next(c);
    return 0;
}

static void on_resolver_closed(void *arg)
{
    client_unref(arg);
}

void hk_smtp_close(hk_smtp *c, void (*closed)(void *arg), void *arg)
{
    if (c == NULL || c->closing)
        return;
    c->closing = true;
    c->closed = closed;
    c->closed_arg = arg;
    /* The resolver's reference keeps the client alive through the loop;
     * the client goes with the last of the sessions and the resolver. */
    while (c->queue_head != NULL || c->active != NULL) {
        struct session *s = c->queue_head ? c->queue_head : c->active;
        report(s, UV_ECANCELED, "mail abandoned: shutting down");
        session_close(s);
    }
    hk_resolver_close(c->resolver, on_resolver_closed, c);
}

size_t hk_smtp_pending(const hk_smtp *c)
{
    return c ? c->nactive + c->nqueued : 0;
}
