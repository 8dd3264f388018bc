/*
 * http_server.c: the inbound HTTP/1.1 server (llhttp on libuv streams,
 * with the limits of hk_config): listeners and connections.
 *
 * Each connection walks IDLE -> HEAD -> BODY -> HANDLING -> WRITING -> IDLE
 * (http_server_int.h says which file holds which part). Here: listening,
 * accepting (past max_connections a new connection is closed at once) and
 * adopting sockets, reading, the per-connection timer that enforces the
 * header, body, keep-alive and write timeouts, lingering close, and the
 * drain at shutdown. After an error the server answers itself and the
 * connection LINGERs: its sending side is shut down and input is discarded
 * until the peer closes or LINGER_MS passes. Reads use one loop-wide
 * buffer; bytes that follow a complete request (pipelining) are kept until
 * its response is written.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_server_int.h"
#include "log.h"
#include "metrics.h"
#include "random.h"

/* After an error answer the server stops sending but keeps reading (and
 * discarding) for this long before it closes: closing with unread input
 * makes the kernel send a reset, which can destroy the answer before the
 * client has read it (the "lingering close" of RFC 9112 section 9.6). */
#define LINGER_MS 2000
/* The connection-limit warning is logged at most once per this interval. */
#define LIMIT_LOG_INTERVAL_MS 10000
#define LISTEN_BACKLOG 511

static void conn_begin(struct conn *c);

/* ---- reading ---------------------------------------------------------- */

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
            hk__server_conn_close(c);
        return;
    }
    if (nread > 0) {
        if (c->state == ST_HANDLING || c->state == ST_WRITING)
            hk__server_hold(c, buf->base, (size_t)nread);
        else
            hk__server_feed(c, buf->base, (size_t)nread);
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
    hk__server_conn_close(c);
}

void hk__server_start_reading(struct conn *c)
{
    if (!c->reading && c->state != ST_CLOSING) {
        c->reading = true;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* Keeps bytes that arrive while a request is being answered (pipelining,
 * or the next request of a fast client). Reading goes on, which saves two
 * epoll_ctl calls per request, until PIPELINE_HOLD_MAX bytes wait; then the
 * connection stops reading until they have been parsed. */
void hk__server_hold(struct conn *c, const char *data, size_t len)
{
    /* Bounded by construction: reading stops at PIPELINE_HOLD_MAX, so this
     * holds at most that plus one read. */
    hk_buf_append(&c->pending, data, len);
    if (c->pending.len >= PIPELINE_HOLD_MAX && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* ---- states, timeouts and closing ------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status)
{
    /* Nothing to do: the connection closes on the peer's EOF or the linger
     * timer; on UV_ECANCELED it is already closing. */
    HK_UNUSED(req);
    HK_UNUSED(status);
}

void hk__server_start_linger(struct conn *c)
{
    c->state = ST_LINGER;
    hk_buf_free(&c->pending);
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        hk__server_conn_close(c);
        return;
    }
    hk__server_arm(c, LINGER_MS);
    hk__server_start_reading(c);
}

void hk__server_start_idle(struct conn *c)
{
    c->state = ST_IDLE;
    hk__server_arm(c, c->srv->cfg->keepalive_timeout_ms);
    hk__server_start_reading(c);
}

void hk__server_on_timeout(uv_timer_t *t)
{
    struct conn *c = hk_container_of(t, struct conn, timer);
    if (c->deadline == UINT64_MAX)
        return; /* handling: no timeout; the next hk__server_arm starts the timer */
    uint64_t now = uv_now(c->srv->loop);
    if (c->deadline > now) {
        /* Started before the deadline moved on (hk__server_arm): the rest, at most one span. */
        uint64_t rest = c->deadline - now, span = hk__server_timer_span(c);
        uint64_t run = rest < span ? rest : span;
        c->timer_due = now + run;
        uv_timer_start(&c->timer, hk__server_on_timeout, run, 0);
        return;
    }
    switch (c->state) {
    case ST_HEAD:
    case ST_BODY:
        hk__server_respond_error(
            c, 408, c->state == ST_HEAD ? "request head not received in time" : "request body not received in time");
        break;
    case ST_HANDLING: break;
    default: hk__server_conn_close(c); break;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    hk_http_server *srv = c->srv;
    hk__server_release_slot(c);
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

void hk__server_conn_close(struct conn *c)
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
    HK_METRIC_ADD(hk_metrics.http_connections, -1);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}
/* ---- accepting -------------------------------------------------------- */

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
    conn_begin(c);
}

/* Links a connected conn into the server and starts reading its first request. */
static void conn_begin(struct conn *c)
{
    hk_http_server *srv = c->srv;
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nconns++;
    HK_METRIC_ADD(hk_metrics.http_connections, 1);
    /* A new connection must send its request head within the header timeout. */
    c->state = ST_IDLE;
    c->reading = false;
    c->fresh = true;
    hk__server_arm(c, srv->cfg->header_timeout_ms);
    hk__server_start_reading(c);
}

int hk_http_server_adopt(hk_http_server *srv, uv_os_sock_t sock, const char *remote)
{
    struct conn *c = hk_calloc(1, sizeof(*c));
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    int rc = uv_tcp_open(&c->tcp, sock);
    if (rc != 0) {
        c->state = ST_CLOSING;
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
        return rc;
    }
    snprintf(c->req.remote, sizeof(c->req.remote), "%s", remote);
    conn_begin(c);
    return 0;
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
    hk_random(&srv->id_prefix, sizeof(srv->id_prefix));
    hk__server_parser_init(&srv->settings);
    *out = srv;
    return 0;
}

void hk_http_server_on_head(hk_http_server *srv, hk_http_head_hook hook, void (*slot_free)(void *slot))
{
    srv->on_head = hook;
    srv->slot_free = slot_free;
}

void hk_http_server_on_response(hk_http_server *srv, hk_http_response_hook hook)
{
    srv->on_response = hook;
}

int hk_http_server_listen(hk_http_server *srv, const char *addr)
{
    return hk_http_server_listen_ex(srv, addr, false, NULL, 0);
}

/*
 * Binds l to ss on a socket of its own with SO_REUSEPORT: libuv (1.44)
 * has no flag for it, and it must be set before bind. The descriptor is
 * the handle's once uv_tcp_open succeeds.
 */
static int bind_reuseport(uv_tcp_t *l, const struct sockaddr_storage *ss, bool v6only)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int on = 1, rc = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
        (v6only && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0))
        rc = uv_translate_sys_error(errno);
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (rc == 0 && bind(fd, (const struct sockaddr *)ss, len) != 0)
        rc = uv_translate_sys_error(errno);
    if (rc == 0)
        rc = uv_tcp_open(l, (uv_os_sock_t)fd);
    if (rc != 0)
        close(fd);
    return rc;
}

int hk_http_server_listen_ex(hk_http_server *srv, const char *addr, bool reuseport, char *bound, size_t boundlen)
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
    rc = reuseport ? bind_reuseport(l, &ss, flags == UV_TCP_IPV6ONLY) : uv_tcp_bind(l, (struct sockaddr *)&ss, flags);
    if (rc != 0 || (rc = uv_listen((uv_stream_t *)l, LISTEN_BACKLOG, on_connection)) != 0) {
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
    if (bound != NULL) {
        int p = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
        snprintf(bound, boundlen, "%.*s:%d", (int)(colon - addr), addr, p);
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
            hk__server_conn_close(c);
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

uint32_t hk_http_server_connections(const hk_http_server *srv)
{
    return srv->nconns;
}
