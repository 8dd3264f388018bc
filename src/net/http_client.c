/*
 * http_client.c: the outbound HTTP/1.1 client's API and a request's life.
 *
 * A request walks KICK -> (pooled connection | DNS -> SSRF check -> connect
 * -> TLS handshake) -> WRITE -> WAIT -> READ -> done (http_client_int.h
 * says which file holds which part). Here: hk_client_create, _send and
 * _close, the checks of a request and the making of its bytes, the
 * client's deadlines and the request's two: the total one runs from
 * hk_client_send to the end; the phase one first defers the start to the
 * client's timer (so the callback never runs inside hk_client_send), then
 * bounds the DNS lookup (c-ares on the loop, resolver.h), the connect phase
 * (TCP and TLS) and the wait for the first response byte. A request ends
 * once, through hk__client_req_finish, which runs the caller's callback.
 *
 * Memory: a finished request goes back to the client's pool once its
 * callback returned (a bounded number are kept, the rest freed). The
 * client itself goes once everything it created is gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "http_client_int.h"
#include "log.h"
#include "url.h"

/* A uv_buf_t carries the body: its length must fit in an unsigned. */
#define HK_CLIENT_MAX_REQUEST_BODY (256u * 1024 * 1024)

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_FIRST_BYTE_TIMEOUT_MS 30000
#define DEFAULT_TOTAL_TIMEOUT_MS 60000
#define DEFAULT_MAX_RESPONSE_BYTES 65536
#define DEFAULT_IDLE_TIMEOUT_MS 30000

/* Finished requests kept for reuse, and the response bytes each keeps allocated. */
#define POOL_MAX 1024
#define POOL_KEEP_BYTES 4096

/* ---- deadlines ---------------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

/* The deadline that expires first: the earliest head, the earlier set of a tie. */
static struct dl *dl_first(hk_client *c)
{
    struct dl *first = NULL;
    for (int k = 0; k < DL_KINDS; k++) {
        struct dl *d = c->dl[k].head;
        if (d != NULL && (first == NULL || d->at < first->at || (d->at == first->at && d->seq < first->seq)))
            first = d;
    }
    return first;
}

/* Arms the timer for the first deadline unless it fires no later already (then it re-arms itself). */
static void dl_arm(hk_client *c)
{
    if (c->in_timer || c->closing)
        return; /* the timer's callback arms it when done; a closing client closes it */
    if (c->ndl == 0) {
        if (c->timer_armed)
            uv_timer_stop(&c->timer); /* nothing to wait for must not keep the loop running */
        c->timer_armed = false;
        return;
    }
    struct dl *d = dl_first(c);
    if (c->timer_armed && c->timer_at <= d->at)
        return;
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, on_timer, d->at > now ? d->at - now : 0, 0);
    c->timer_armed = true;
    c->timer_at = d->at;
}

void hk__dl_unset(hk_client *c, struct dl *d)
{
    if (d->kind < 0)
        return;
    struct dl_list *l = &c->dl[d->kind];
    if (d->prev)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = d->next = NULL;
    d->kind = -1;
    c->ndl--;
    if (c->ndl == 0)
        dl_arm(c);
}

void hk__dl_set(hk_client *c, struct dl *d, int kind, uint64_t timeout_ms)
{
    hk__dl_unset(c, d);
    /* Every deadline of a kind has the same timeout and the loop's time
     * never goes back: the new one is the last of its list. */
    struct dl_list *l = &c->dl[kind];
    d->at = uv_now(c->loop) + timeout_ms;
    d->seq = c->dl_seq++;
    d->kind = kind;
    d->next = NULL;
    d->prev = l->tail;
    if (l->tail)
        l->tail->next = d;
    else
        l->head = d;
    l->tail = d;
    c->ndl++;
    dl_arm(c);
}

static void dl_expired(struct dl *d, int kind);

/* Runs every deadline whose time has come, in the order libuv would run one timer each. */
static void on_timer(uv_timer_t *t)
{
    hk_client *c = hk_container_of(t, hk_client, timer);
    c->timer_armed = false;
    c->in_timer = true;
    uint64_t now = uv_now(c->loop);
    struct dl *d;
    while ((d = dl_first(c)) != NULL && d->at <= now) {
        int kind = d->kind;
        hk__dl_unset(c, d);
        dl_expired(d, kind);
    }
    c->in_timer = false;
    dl_arm(c);
}

/* ---- request life ------------------------------------------------------------------ */

static uint64_t ms_since(uint64_t start_ns)
{
    return (uv_hrtime() - start_ns) / 1000000u;
}

/* A finished request, its callback run: its references go, it is kept in the pool (or freed). */
static void req_release(struct creq *r)
{
    hk_client *c = r->c;
    hk__origin_unref(&c->origins, r->o);
    r->body_ref(r->body_owner, -1);
    c->live--;
    if (c->closing || c->npool >= POOL_MAX) {
        hk_buf_free(&r->headbuf);
        hk_buf_free(&r->rhead);
        hk_buf_free(&r->body);
        free(r);
    } else {
        hk_buf_shrink(&r->headbuf, POOL_KEEP_BYTES);
        hk_buf_shrink(&r->rhead, POOL_KEEP_BYTES);
        hk_buf_shrink(&r->body, POOL_KEEP_BYTES);
        r->next = c->pool;
        c->pool = r;
        c->npool++;
    }
    hk__client_maybe_freed(c);
}

/* A request from the pool (cleared as struct creq says), or a new one. */
static struct creq *req_take(hk_client *c)
{
    struct creq *r = c->pool;
    if (r == NULL)
        r = hk_calloc(1, sizeof(*r));
    else {
        c->pool = r->next;
        c->npool--;
        hk_buf rhead = r->rhead, body = r->body, headbuf = r->headbuf;
        memset(r, 0, offsetof(struct creq, status_line));
        r->rhead = rhead;
        r->body = body;
        r->headbuf = headbuf;
        r->status_line[0] = r->reason[0] = r->error_text[0] = '\0';
        memset(&r->refused, 0, sizeof(r->refused));
    }
    r->total.kind = r->phase_dl.kind = -1;
    return r;
}

void hk__client_req_finish(struct creq *r)
{
    if (r->done)
        return;
    r->done = true;
    hk_client *c = r->c;
    if (r->conn != NULL)
        hk__client_conn_close(r->conn); /* a request that ends while attached failed: its connection is unusable */
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
    hk__dl_unset(c, &r->total);
    hk__dl_unset(c, &r->phase_dl);

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
    res.user_agent = c->user_agent;
    res.duration_ms = ms_since(r->start_ns);
    res.reused = r->reused;
    res.tls_resumed = r->tls_resumed;
    bool refused = r->error == HK_EFORBIDDEN && r->refused.rule[0] != '\0';
    res.refused_addr = refused ? r->refused.addr : "";
    res.refused_rule = refused ? r->refused.rule : "";
    r->cb(&res, r->arg);
    req_release(r);
}

void hk__client_req_fail(struct creq *r, int err, const char *fmt, ...)
{
    if (r->done)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error_text, sizeof(r->error_text), fmt, ap);
    va_end(ap);
    r->error = err;
    hk_debug("http client: %s: %s", r->o->name, r->error_text);
    hk__client_req_finish(r);
}

void hk__client_phase_deadline(struct creq *r)
{
    hk_client *c = r->c;
    switch (r->phase) {
    case PH_KICK: hk__dl_set(c, &r->phase_dl, DL_KICK, 0); break;
    case PH_DNS: hk__dl_set(c, &r->phase_dl, DL_DNS, c->o.dns_timeout_ms); break;
    case PH_CONNECT: hk__dl_set(c, &r->phase_dl, DL_CONNECT, c->o.connect_timeout_ms); break;
    case PH_WAIT: hk__dl_set(c, &r->phase_dl, DL_WAIT, c->o.first_byte_timeout_ms); break;
    default: hk__dl_unset(c, &r->phase_dl); break;
    }
}

/* The request's phase deadline passed (see enum phase): the deferred start, then the DNS, connect and first-byte
 * limits. */
static void on_phase_timeout(struct creq *r)
{
    hk_client *c = r->c;
    switch (r->phase) {
    case PH_KICK: hk__client_req_connect(r); break;
    case PH_DNS:
        hk_resolve_cancel(r->dns);
        r->dns = NULL;
        hk__client_req_fail(r, UV_ETIMEDOUT, "DNS lookup for %s timed out after %llu ms", r->o->host,
                            (unsigned long long)c->o.dns_timeout_ms);
        break;
    case PH_CONNECT:
        hk__client_req_fail(r, UV_ETIMEDOUT, "connect timeout after %llu ms",
                            (unsigned long long)c->o.connect_timeout_ms);
        break;
    case PH_WAIT:
        hk__client_req_fail(r, UV_ETIMEDOUT, "no response within %llu ms",
                            (unsigned long long)c->o.first_byte_timeout_ms);
        break;
    default: break;
    }
}

static void dl_expired(struct dl *d, int kind)
{
    switch (kind) {
    case DL_TOTAL: {
        struct creq *r = hk_container_of(d, struct creq, total);
        hk__client_req_fail(r, UV_ETIMEDOUT, "request took longer than %llu ms",
                            (unsigned long long)r->c->o.total_timeout_ms);
        break;
    }
    case DL_IDLE: hk__client_conn_close(hk_container_of(d, struct conn, idle)); break;
    default: on_phase_timeout(hk_container_of(d, struct creq, phase_dl)); break;
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
        if (*h == ' ' || *h == '\t')
            return false;
        const char *line = h;
        bool colon = false;
        for (; *h != '\0' && *h != '\r' && *h != '\n'; h++)
            colon |= *h == ':';
        if (h == line || !colon)
            return false;
        if (*h == '\0')
            break;
        if (h[0] != '\r' || h[1] != '\n')
            return false;
        h += 2;
    }
    return true;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? hk_strdup(s) : NULL;
}

/* A body the caller did not keep: the client's own copy, freed with its last reference. */
struct body_copy {
    unsigned refs;
    char data[];
};

static void body_copy_ref(void *owner, int delta)
{
    struct body_copy *b = owner;
    if (delta > 0)
        b->refs++;
    else if (--b->refs == 0)
        free(b);
}

/* ---- API ------------------------------------------------------------------------------ */

#define PUT_LIT(b, lit) hk_buf_append((b), (lit), sizeof(lit) - 1)

/* Formatted by appending, not by printf: this runs for every request. */
static void head_of(hk_buf *out, const char *method, const hk_url *u, const char *user_agent, size_t body_len,
                    const char *extra)
{
    char authority[HK_URL_MAX_HOST + 16];
    hk_url_authority(u, authority, sizeof(authority));
    size_t extra_len = strlen(extra);
    bool extra_crlf = extra_len > 0 && (extra_len < 2 || strcmp(extra + extra_len - 2, "\r\n") != 0);
    hk_buf_reserve(out, strlen(method) + u->target_len + strlen(authority) + strlen(user_agent) + extra_len + 160);
    hk_buf_puts(out, method);
    hk_buf_putc(out, ' ');
    if (u->target_len == 0 || u->target[0] == '?')
        hk_buf_putc(out, '/');
    hk_buf_append(out, u->target, u->target_len);
    PUT_LIT(out, " HTTP/1.1\r\nHost: ");
    hk_buf_puts(out, authority);
    PUT_LIT(out, "\r\nUser-Agent: ");
    hk_buf_puts(out, user_agent);
    PUT_LIT(out, "\r\nContent-Length: ");
    char t[24];
    size_t i = sizeof(t);
    size_t v = body_len;
    do
        t[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    hk_buf_append(out, t + i, sizeof(t) - i);
    PUT_LIT(out, "\r\nConnection: keep-alive\r\n");
    hk_buf_append(out, extra, extra_len);
    if (extra_crlf)
        PUT_LIT(out, "\r\n");
    PUT_LIT(out, "\r\n");
}

int hk_client_head(hk_buf *out, const char *method, const char *url, const char *user_agent, size_t body_len,
                   const char *extra)
{
    hk_url u;
    if (hk_url_parse(url, &u, NULL) != 0)
        return HK_EINVAL;
    head_of(out, method, &u, user_agent, body_len, extra);
    return 0;
}

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
    hk__client_parser_init(&c->settings);
    uv_timer_init(loop, &c->sentinel);
    c->sentinel.data = c;
    uv_timer_init(loop, &c->timer);
    hk__origins_init(&c->origins, loop, c->o.idle_timeout_ms);
    c->live = 4; /* the sentinel, the timer, the origin timer and the resolver */
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
    struct creq *r = req_take(c);
    r->c = c;
    r->cb = cb;
    r->arg = arg;
    r->o = hk__origin_get(&c->origins, &u, req->ca_file ? req->ca_file : "", req->client_cert ? req->client_cert : "",
                          req->client_key ? req->client_key : "");
    r->head_only = strcmp(method, "HEAD") == 0;
    r->start_ns = uv_hrtime();

    /* The head: request line, the client's headers, then the caller's. The
     * body is written from where it is (see conn_send_request). */
    head_of(&r->headbuf, method, &u, c->user_agent, req->body_len, extra);
    r->head = r->headbuf.data;
    r->head_len = r->headbuf.len;
    if (req->body_ref != NULL) {
        r->out_body = req->body;
        r->body_ref = req->body_ref;
        r->body_owner = req->body_owner;
        r->body_ref(r->body_owner, +1);
    } else {
        struct body_copy *b = hk_malloc(sizeof(*b) + req->body_len + 1);
        b->refs = 1;
        if (req->body_len > 0)
            memcpy(b->data, req->body, req->body_len);
        r->out_body = b->data;
        r->body_ref = body_copy_ref;
        r->body_owner = b;
    }
    r->out_body_len = req->body_len;

    r->next = c->active;
    if (c->active)
        c->active->prev = r;
    c->active = r;
    c->nactive++;
    c->live++;
    hk__client_req_reset(r);
    r->phase = PH_KICK;
    hk__dl_set(c, &r->total, DL_TOTAL, c->o.total_timeout_ms);
    hk__client_phase_deadline(r);
    return 0;
}

size_t hk_client_active(const hk_client *c)
{
    return c->nactive;
}

size_t hk_client_origins(const hk_client *c)
{
    return c->origins.count;
}

void hk__client_maybe_freed(hk_client *c)
{
    if (!c->closing || c->live > 0)
        return;
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    while (c->pool != NULL) {
        struct creq *r = c->pool;
        c->pool = r->next;
        hk_buf_free(&r->headbuf);
        hk_buf_free(&r->rhead);
        hk_buf_free(&r->body);
        free(r);
    }
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
    hk__client_maybe_freed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
    hk_client *c = hk_container_of(h, hk_client, timer);
    c->live--;
    hk__client_maybe_freed(c);
}

static void on_origins_closed(void *arg)
{
    hk_client *c = arg;
    c->live--;
    hk__client_maybe_freed(c);
}

static void on_resolver_closed(void *arg)
{
    hk_client *c = arg;
    c->live--;
    hk__client_maybe_freed(c);
}

void hk_client_close(hk_client *c, void (*closed)(void *arg), void *arg)
{
    if (c->closing)
        return;
    c->closing = true;
    c->closed = closed;
    c->closed_arg = arg;
    while (c->active != NULL)
        hk__client_req_fail(c->active, UV_ECANCELED, "canceled: the client is closing");
    while (c->conns != NULL)
        hk__client_conn_close(c->conns);
    hk_resolver_close(c->resolver, on_resolver_closed, c);
    hk__origins_close(&c->origins, on_origins_closed, c);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    uv_close((uv_handle_t *)&c->sentinel, on_sentinel_closed);
}
