/*
 * smtp.c: the SMTP client (see smtp.h): its API, the queue, and the start
 * and end of a session.
 *
 * A mail is queued by hk_smtp_send; at most HK_SMTP_MAX_SESSIONS sessions
 * talk to the relay at once (smtp_session.c holds the conversation), and
 * each that ends lets the next queued mail start. The caller's callback
 * runs once: when the relay accepts the message (the QUIT that follows is
 * a courtesy), or on the first failure.
 *
 * Memory: a session is freed once its TCP handle and timer are closed (a
 * DNS lookup in flight is cancelled: its callback never runs). The client
 * is freed when its last session and its resolver are, after hk_smtp_close.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "smtp_int.h"

static void start_next(hk_smtp *c);

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
    free(s->reply.buf);
    hk_tls_conn_free(s->tls);
    free(s);
    client_unref(c);
}

void hk__smtp_maybe_free(struct session *s)
{
    if (s->state == ST_CLOSING && s->handles == 0)
        session_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct session *s = h->data;
    s->handles--;
    hk__smtp_maybe_free(s);
}

void hk__smtp_report(struct session *s, int status, const char *fmt, ...)
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

void hk__smtp_session_close(struct session *s)
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
    hk__smtp_maybe_free(s);
}

void hk__smtp_fail(struct session *s, int status, const char *fmt, ...)
{
    if (s->state == ST_CLOSING)
        return;
    char text[ERROR_TEXT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    hk__smtp_report(s, status, "%s", text);
    hk__smtp_session_close(s);
}

/* ---- the queue ---------------------------------------------------------- */

/* Moves s from the queue to the active list and starts its conversation. */
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
    hk__smtp_session_begin(s);
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
    s->message = hk__smtp_message(mail, s->to, s->nto, &s->message_len);
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
        hk__smtp_report(s, UV_ECANCELED, "mail abandoned: shutting down");
        hk__smtp_session_close(s);
    }
    hk_resolver_close(c->resolver, on_resolver_closed, c);
}

size_t hk_smtp_pending(const hk_smtp *c)
{
    return c ? c->nactive + c->nqueued : 0;
}
