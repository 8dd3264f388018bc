/*
 * pg_connect.c: connecting a pool connection (pg_conn_int.h). An attempt
 * looks the connection string's host names up on the loop (libpq's own
 * lookup would block it) and hands libpq the addresses as hostaddr, then
 * drives PQconnectStartParams / PQconnectPoll from the socket's readiness,
 * within connect_timeout. A failed attempt is retried after a pause that
 * doubles up to retry_max.
 *
 * Sockets: the loop watches a dup of libpq's socket, never libpq's own
 * descriptor. libpq closes and replaces its socket by itself (trying the
 * next address of a host, retrying without TLS), and an fd closed under an
 * active uv_poll, or reused by the next socket, would leave epoll and libuv
 * out of step. The dup keeps the socket open until its poll handle is
 * closed; after every libpq call that may switch sockets the socket's
 * identity (device and inode) is compared with the watched one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "pg_conn_int.h"

static void on_timer(uv_timer_t *t);
static void resolve_next(struct pg_conn *c);

/* A server or libpq message as one line (newlines and tabs become spaces, the trailing ones go). */
void hk__pg_one_line(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src != NULL && *src != '\0' && n + 1 < cap; src++)
        dst[n++] = *src == '\n' || *src == '\r' || *src == '\t' ? ' ' : *src;
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

static void on_poll_closed(uv_handle_t *h)
{
    struct pg_poll *pp = (struct pg_poll *)h;
    hk_pg_pool *p = pp->pool;
    close(pp->fd);
    free(pp);
    hk__pg_pending_done(p);
}

/* Stops watching the connection's socket (the dup is closed with the handle). */
void hk__pg_unwatch(struct pg_conn *c)
{
    if (c->poll == NULL)
        return;
    c->pool->pending++;
    uv_close((uv_handle_t *)&c->poll->h, on_poll_closed);
    c->poll = NULL;
    c->events = 0;
}

/*
 * Watches libpq's current socket for events, switching to a new dup when
 * libpq has replaced its socket. UV_E* when the socket cannot be watched.
 */
int hk__pg_watch(struct pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        return UV_EBADF;
    if (c->poll == NULL || st.st_dev != c->dev || st.st_ino != c->ino) {
        hk__pg_unwatch(c);
        struct pg_poll *pp = hk_calloc(1, sizeof(*pp));
        pp->pool = c->pool;
        pp->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (pp->fd < 0) {
            int err = -errno;
            free(pp);
            return err;
        }
        int rc = uv_poll_init(c->pool->loop, &pp->h, pp->fd);
        if (rc != 0) {
            close(pp->fd);
            free(pp);
            return rc;
        }
        pp->h.data = c;
        c->poll = pp;
        c->dev = st.st_dev;
        c->ino = st.st_ino;
    }
    if (events != c->events) {
        int rc = uv_poll_start(&c->poll->h, events, hk__pg_on_poll);
        if (rc != 0)
            return rc;
        c->events = events;
    }
    return 0;
}

/* Notices: the server's warnings (and the FATAL of a terminated session) are logged. */
static void on_notice(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    (void)arg;
    if (sev != NULL && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        hk_warn("postgres: %s: %s", sev, msg ? msg : "");
    else
        hk_debug("postgres: %s: %s", sev ? sev : "notice", msg ? msg : "");
}

/* Schedules the next attempt after the back-off pause. */
void hk__pg_retry_later(struct pg_conn *c)
{
    c->state = C_DOWN;
    uv_timer_start(&c->timer, on_timer, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > c->pool->o.retry_max_ms ? c->pool->o.retry_max_ms : c->backoff_ms * 2;
}

/* An attempt that failed: logged (at debug after the first of a run), then the back-off. */
static void attempt_failed(struct pg_conn *c, const char *why)
{
    hk_pg_pool *p = c->pool;
    char msg[512];
    hk__pg_one_line(msg, sizeof(msg), why);
    p->counters.connect_failures++;
    if (c->req != NULL) {
        hk_resolve_cancel(c->req);
        c->req = NULL;
    }
    hk__pg_unwatch(c);
    PQfinish(c->pg);
    c->pg = NULL;
    if (c->backoff_ms <= p->o.retry_min_ms)
        hk_warn("postgres: cannot connect%s: %s; retrying", c->listener ? " (notifications)" : "", msg);
    else
        hk_debug("postgres: cannot connect%s: %s; retrying in %llums", c->listener ? " (notifications)" : "", msg,
                 (unsigned long long)c->backoff_ms);
    hk__pg_retry_later(c);
}

static void connected(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    uv_timer_stop(&c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0 || (!c->listener && PQenterPipelineMode(c->pg) != 1)) {
        attempt_failed(c, PQerrorMessage(c->pg));
        return;
    }
    PQsetNoticeReceiver(c->pg, on_notice, NULL);
    p->counters.connects++;
    c->backoff_ms = p->o.retry_min_ms;
    c->state = C_READY;
    c->want_write = false;
    if (hk__pg_watch(c, UV_READABLE) != 0) {
        attempt_failed(c, "cannot watch the socket");
        return;
    }
    hk__pg_conn_ready(c);
}

/* Drives PQconnectPoll once and waits for what it asks for. */
void hk__pg_connect_step(struct pg_conn *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    int rc = 0;
    switch (st) {
    case PGRES_POLLING_OK: connected(c); return;
    case PGRES_POLLING_READING: rc = hk__pg_watch(c, UV_READABLE); break;
    case PGRES_POLLING_WRITING: rc = hk__pg_watch(c, UV_WRITABLE); break;
    default: attempt_failed(c, PQerrorMessage(c->pg)); return;
    }
    if (rc != 0)
        attempt_failed(c, uv_strerror(rc));
}

/* Starts libpq's connect, with the looked-up addresses when there are any. */
static void connect_begin(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    /* Keepalives notice a server that vanished without closing; the
     * connection string's own settings come after them and win. The
     * looked-up host lists come after it and replace its names. */
    const char *keys[8] = {"keepalives_idle", "keepalives_interval", "keepalives_count", "dbname",
                           "fallback_application_name"};
    const char *vals[8] = {"30", "10", "3", p->conninfo, "hookd"};
    int n = 5;
    if (p->resolve) {
        keys[n] = "host";
        vals[n++] = hk_buf_cstr(&c->hosts);
        keys[n] = "hostaddr";
        vals[n++] = hk_buf_cstr(&c->addrs);
        if (c->ports.len > 0) {
            keys[n] = "port";
            vals[n++] = hk_buf_cstr(&c->ports);
        }
    }
    keys[n] = NULL;
    vals[n] = NULL;
    c->state = C_CONNECTING;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg == NULL) {
        attempt_failed(c, "out of memory");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        attempt_failed(c, PQerrorMessage(c->pg));
        return;
    }
    /* libpq: before the first PQconnectPoll, behave as if it asked for writing. */
    int rc = hk__pg_watch(c, UV_WRITABLE);
    if (rc != 0)
        attempt_failed(c, uv_strerror(rc));
}

/* Appends to list a comma (when not first) and s. */
static void list_add(hk_buf *list, bool first, const char *s)
{
    if (!first)
        hk_buf_putc(list, ',');
    hk_buf_puts(list, s);
}

/* The i-th entry of a comma-separated list into out ("" when missing). */
static void list_entry(const char *list, size_t i, char *out, size_t cap)
{
    const char *s = list != NULL ? list : "";
    for (; i > 0 && s != NULL; i--) {
        s = strchr(s, ',');
        s = s != NULL ? s + 1 : NULL;
    }
    size_t n = s != NULL ? strcspn(s, ",") : 0;
    snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), s != NULL ? s : "");
}

/* Adds host entry i with the given addresses (NULL: none to look up) to the attempt's lists. */
static void add_host(struct pg_conn *c, size_t i, const char *const *addrs, size_t naddrs)
{
    hk_pg_pool *p = c->pool;
    char port[64];
    bool per_host_ports = p->port_spec != NULL && strchr(p->port_spec, ',') != NULL;
    list_entry(p->port_spec, i, port, sizeof(port));
    for (size_t k = 0; k < naddrs; k++) {
        bool first = c->hosts.len == 0 && c->addrs.len == 0 && i == 0 && k == 0;
        list_add(&c->hosts, first, p->host_list[i]);
        list_add(&c->addrs, first, addrs[k]);
        if (per_host_ports)
            list_add(&c->ports, first, port);
    }
}

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct pg_conn *c = arg;
    c->req = NULL;
    if (status != 0) {
        char why[384];
        snprintf(why, sizeof(why), "cannot look up %s: %s", c->pool->host_list[c->rhost], text);
        attempt_failed(c, why);
        return;
    }
    char strs[HK_RESOLVE_MAX_ADDRS][INET6_ADDRSTRLEN];
    const char *ptrs[HK_RESOLVE_MAX_ADDRS];
    size_t k = 0;
    for (size_t i = 0; i < n && k < HK_RESOLVE_MAX_ADDRS; i++) {
        const void *a = addrs[i].ss_family == AF_INET
                            ? (const void *)&((const struct sockaddr_in *)&addrs[i])->sin_addr
                            : (const void *)&((const struct sockaddr_in6 *)&addrs[i])->sin6_addr;
        if (inet_ntop(addrs[i].ss_family, a, strs[k], sizeof(strs[k])) != NULL) {
            ptrs[k] = strs[k];
            k++;
        }
    }
    if (k == 0) {
        attempt_failed(c, "a host name has no usable address");
        return;
    }
    add_host(c, c->rhost, ptrs, k);
    c->rhost++;
    resolve_next(c);
}

/* Looks the host entries up in turn (sockets and IP literals need none), then connects. */
static void resolve_next(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    for (; c->rhost < p->nhosts; c->rhost++) {
        const char *h = p->host_list[c->rhost];
        struct in6_addr a6;
        struct in_addr a4;
        if (h[0] == '\0' || h[0] == '/' || h[0] == '@') {
            const char *none = "";
            add_host(c, c->rhost, &none, 1);
        } else if (inet_pton(AF_INET, h, &a4) == 1 || inet_pton(AF_INET6, h, &a6) == 1) {
            add_host(c, c->rhost, &h, 1);
        } else {
            c->state = C_RESOLVING;
            int rc = hk_resolve(p->resolver, h, &c->req, on_resolved, c);
            if (rc != 0)
                attempt_failed(c, hk_strerror(rc));
            return;
        }
    }
    connect_begin(c);
}

static void on_timer(uv_timer_t *t)
{
    struct pg_conn *c = t->data;
    if (c->state == C_DOWN) {
        hk__pg_conn_start(c);
        return;
    }
    /* RESOLVING or CONNECTING past connect_timeout. */
    char why[96];
    snprintf(why, sizeof(why), "no connection within %llums", (unsigned long long)c->pool->o.connect_timeout_ms);
    attempt_failed(c, why);
}

void hk__pg_conn_start(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    if (p->closing)
        return;
    hk_buf_reset(&c->hosts);
    hk_buf_reset(&c->addrs);
    hk_buf_reset(&c->ports);
    c->rhost = 0;
    uv_timer_start(&c->timer, on_timer, p->o.connect_timeout_ms, 0);
    if (p->resolve)
        resolve_next(c);
    else
        connect_begin(c);
}

void hk__pg_conn_init(hk_pg_pool *p, struct pg_conn *c, bool listener)
{
    memset(c, 0, sizeof(*c));
    c->pool = p;
    c->listener = listener;
    c->state = C_DOWN;
    c->backoff_ms = p->o.retry_min_ms;
    uv_timer_init(p->loop, &c->timer);
    c->timer.data = c;
}

/* Splits the connection string's host list (or PGHOST's) and decides whether names need looking up. */
int hk__pg_parse_hosts(hk_pg_pool *p)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(p->conninfo, &errmsg);
    if (opts == NULL) {
        char msg[256];
        hk__pg_one_line(msg, sizeof(msg), errmsg ? errmsg : "out of memory");
        hk_error("postgres: the connection string does not parse: %s", msg);
        PQfreemem(errmsg);
        return HK_EINVAL;
    }
    const char *host = NULL, *hostaddr = NULL, *port = NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "hostaddr") == 0)
            hostaddr = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    if (host == NULL || *host == '\0')
        host = getenv("PGHOST");
    if (hostaddr == NULL || *hostaddr == '\0')
        hostaddr = getenv("PGHOSTADDR");
    if (port == NULL || *port == '\0')
        port = getenv("PGPORT");
    p->resolve = false;
    if (host != NULL && *host != '\0' && (hostaddr == NULL || *hostaddr == '\0')) {
        for (const char *s = host;;) {
            size_t n = strcspn(s, ",");
            p->host_list = hk_realloc(p->host_list, (p->nhosts + 1) * sizeof(*p->host_list));
            p->host_list[p->nhosts++] = hk_strndup(s, n);
            if (s[n] == '\0')
                break;
            s += n + 1;
        }
        for (size_t i = 0; i < p->nhosts; i++) {
            const char *h = p->host_list[i];
            struct in6_addr a6;
            struct in_addr a4;
            if (h[0] != '\0' && h[0] != '/' && h[0] != '@' && inet_pton(AF_INET, h, &a4) != 1 &&
                inet_pton(AF_INET6, h, &a6) != 1)
                p->resolve = true;
        }
        if (port != NULL && *port != '\0')
            p->port_spec = hk_strdup(port);
    }
    PQconninfoFree(opts);
    return 0;
}
