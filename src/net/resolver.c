/*
 * resolver.c: c-ares driven by the libuv loop.
 *
 * c-ares tells through its socket-state callback which sockets it wants
 * watched for reading or writing; each gets a uv_poll_t, whose events go
 * back to ares_process_fd. After every call into c-ares the one timer is
 * set to ares_timeout(), and when it fires ares_process_fd(BAD, BAD) lets
 * c-ares retry or give up the queries that waited too long.
 *
 * Answers are parked on the ready list and delivered by the kick timer at
 * the next loop iteration, never from within a call into c-ares: c-ares
 * answers from within ares_getaddrinfo (IP literals, names in /etc/hosts),
 * so a callback would otherwise run inside hk_resolve, and a callback that
 * closes the resolver would destroy the channel under ares_process_fd.
 *
 * Memory: a request lives until c-ares has called back for it (also when
 * cancelled: a query cannot be withdrawn); poll handles are freed in their
 * close callbacks; the resolver goes once its timers and polls are closed.
 */
#include "resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define DEFAULT_TRY_TIMEOUT_MS 2000
#define DEFAULT_TRIES 2

struct poll {
    uv_poll_t h;
    hk_resolver *r;
    ares_socket_t fd;
    struct poll *next;
};

struct hk_resolve_req {
    hk_resolver *r;
    hk_resolve_cb cb; /* NULL once cancelled */
    void *arg;
    struct hk_resolve_req *next; /* the ready list */
    int status;
    char text[128];
    struct sockaddr_storage addrs[HK_RESOLVE_MAX_ADDRS];
    size_t naddrs;
};

struct hk_resolver {
    uv_loop_t *loop;
    ares_channel channel;
    bool channel_ok;
    uv_timer_t timer; /* c-ares' timeouts */
    uv_timer_t kick;  /* delivers answers that came from within hk_resolve */
    struct poll *polls;
    struct hk_resolve_req *ready, *ready_tail;
    size_t pending;
    int open_handles;
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void schedule(hk_resolver *r);

/* ---- answers ---------------------------------------------------------------- */

static int map_status(int status)
{
    switch (status) {
    case ARES_SUCCESS: return 0;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_ENONAME:
    case ARES_EBADNAME: return UV_EAI_NONAME;
    case ARES_ETIMEOUT: return UV_ETIMEDOUT;
    case ARES_ENOMEM: return UV_ENOMEM;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED: return UV_ECANCELED;
    default: return UV_EAI_AGAIN;
    }
}

/* Runs the callback of an answered request and frees it. */
static void deliver(struct hk_resolve_req *q)
{
    hk_resolver *r = q->r;
    r->pending--;
    if (q->cb != NULL)
        q->cb(q->status, q->addrs, q->naddrs, q->status ? q->text : "", q->arg);
    free(q);
}

static void on_kick(uv_timer_t *t)
{
    hk_resolver *r = t->data;
    while (r->ready != NULL) {
        struct hk_resolve_req *q = r->ready;
        r->ready = q->next;
        if (r->ready == NULL)
            r->ready_tail = NULL;
        deliver(q);
    }
}

/* Queues an answered request for the kick timer. */
static void park(struct hk_resolve_req *q)
{
    hk_resolver *r = q->r;
    if (r->ready_tail)
        r->ready_tail->next = q;
    else
        r->ready = q;
    r->ready_tail = q;
    if (!r->closing)
        uv_timer_start(&r->kick, on_kick, 0, 0);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct hk_resolve_req *q = arg;
    q->status = map_status(status);
    if (status == ARES_SUCCESS && res != NULL) {
        for (struct ares_addrinfo_node *n = res->nodes; n != NULL && q->naddrs < HK_RESOLVE_MAX_ADDRS; n = n->ai_next) {
            if ((n->ai_family != AF_INET && n->ai_family != AF_INET6) || n->ai_addr == NULL ||
                (size_t)n->ai_addrlen > sizeof(q->addrs[0]))
                continue;
            memset(&q->addrs[q->naddrs], 0, sizeof(q->addrs[0]));
            memcpy(&q->addrs[q->naddrs], n->ai_addr, (size_t)n->ai_addrlen);
            q->naddrs++;
        }
        if (q->naddrs == 0) {
            q->status = UV_EAI_NONAME;
            snprintf(q->text, sizeof(q->text), "no IPv4 or IPv6 address for the name");
        }
    } else if (status != ARES_SUCCESS) {
        snprintf(q->text, sizeof(q->text), "%s", ares_strerror(status));
    }
    ares_freeaddrinfo(res);
    park(q);
}

/* ---- sockets and timers ------------------------------------------------------ */

static void resolver_maybe_freed(hk_resolver *r)
{
    if (!r->closing || r->open_handles > 0)
        return;
    void (*closed)(void *) = r->closed;
    void *arg = r->closed_arg;
    free(r);
    if (closed != NULL)
        closed(arg);
}

static void on_handle_closed(uv_handle_t *h)
{
    hk_resolver *r = h->data;
    r->open_handles--;
    resolver_maybe_freed(r);
}

static void on_poll_closed(uv_handle_t *h)
{
    struct poll *p = hk_container_of((uv_poll_t *)h, struct poll, h);
    hk_resolver *r = p->r;
    free(p);
    r->open_handles--;
    resolver_maybe_freed(r);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poll *p = hk_container_of(h, struct poll, h);
    hk_resolver *r = p->r;
    if (!r->channel_ok)
        return;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    /* On a poll error let c-ares try both ways: its read or write fails
     * and it handles the socket's end itself. */
    if (status < 0 || (events & UV_READABLE))
        rfd = p->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = p->fd;
    ares_process_fd(r->channel, rfd, wfd);
    schedule(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    hk_resolver *r = data;
    struct poll **pp = &r->polls;
    while (*pp != NULL && (*pp)->fd != fd)
        pp = &(*pp)->next;
    struct poll *p = *pp;
    if (!readable && !writable) {
        /* c-ares is about to close fd: stop watching it first. */
        if (p != NULL) {
            *pp = p->next;
            uv_poll_stop(&p->h);
            uv_close((uv_handle_t *)&p->h, on_poll_closed);
        }
        return;
    }
    if (p == NULL) {
        p = hk_calloc(1, sizeof(*p));
        p->r = r;
        p->fd = fd;
        if (uv_poll_init_socket(r->loop, &p->h, fd) != 0) {
            /* The query on this socket ends on c-ares' timeout. */
            hk_warn("resolver: cannot watch a DNS socket");
            free(p);
            return;
        }
        p->h.data = r;
        r->open_handles++;
        p->next = r->polls;
        r->polls = p;
    }
    uv_poll_start(&p->h, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

static void on_timeout(uv_timer_t *t)
{
    hk_resolver *r = t->data;
    if (!r->channel_ok)
        return;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    schedule(r);
}

/* Sets the timer to c-ares' next deadline (none when nothing waits). */
static void schedule(hk_resolver *r)
{
    if (!r->channel_ok || r->closing)
        return;
    struct timeval tv;
    if (ares_timeout(r->channel, NULL, &tv) == NULL) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    /* Rounding down would fire just before the deadline and spin once. */
    if (tv.tv_usec % 1000 != 0)
        ms++;
    uv_timer_start(&r->timer, on_timeout, ms, 0);
}

/* ---- API ----------------------------------------------------------------------- */

int hk_resolver_create(hk_resolver **out, uv_loop_t *loop, const hk_resolver_opts *opts)
{
    static const hk_resolver_opts none = {0};
    if (opts == NULL)
        opts = &none;
    *out = NULL;
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        hk_error("resolver: cannot initialise c-ares: %s", ares_strerror(rc));
        return UV_ENOMEM;
    }
    hk_resolver *r = hk_calloc(1, sizeof(*r));
    r->loop = loop;
    struct ares_options o;
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = r;
    o.timeout = (int)(opts->try_timeout_ms ? opts->try_timeout_ms : DEFAULT_TRY_TIMEOUT_MS);
    o.tries = (int)(opts->tries ? opts->tries : DEFAULT_TRIES);
    o.lookups = (char *)"fb"; /* /etc/hosts, then DNS */
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
    rc = ares_init_options(&r->channel, &o, mask);
    if (rc != ARES_SUCCESS) {
        hk_error("resolver: cannot create a c-ares channel: %s", ares_strerror(rc));
        free(r);
        ares_library_cleanup();
        return rc == ARES_ENOMEM ? UV_ENOMEM : HK_ECONFIG;
    }
    r->channel_ok = true;
    if (opts->servers != NULL && *opts->servers != '\0') {
        rc = ares_set_servers_ports_csv(r->channel, opts->servers);
        if (rc != ARES_SUCCESS) {
            hk_error("resolver: DNS servers \"%s\": %s", opts->servers, ares_strerror(rc));
            ares_destroy(r->channel);
            free(r);
            ares_library_cleanup();
            return HK_EINVAL;
        }
    }
    uv_timer_init(loop, &r->timer);
    uv_timer_init(loop, &r->kick);
    r->timer.data = r;
    r->kick.data = r;
    r->open_handles = 2;
    *out = r;
    return 0;
}

int hk_resolve(hk_resolver *r, const char *host, hk_resolve_req **req, hk_resolve_cb cb, void *arg)
{
    if (req != NULL)
        *req = NULL;
    if (r->closing)
        return HK_ESHUTDOWN;
    if (host == NULL || *host == '\0')
        return HK_EINVAL;
    struct hk_resolve_req *q = hk_calloc(1, sizeof(*q));
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    r->pending++;
    /* An IP literal is its own answer: c-ares 1.18 would ask DNS about
     * "127.0.0.1" before it gives up and reads it as an address. */
    struct sockaddr_in *in4 = (struct sockaddr_in *)&q->addrs[0];
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&q->addrs[0];
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        q->naddrs = 1;
        park(q);
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        q->naddrs = 1;
        park(q);
    } else {
        struct ares_addrinfo_hints hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        ares_getaddrinfo(r->channel, host, NULL, &hints, on_addrinfo, q);
        /* q may be parked on the ready list now, but is not freed before the kick. */
    }
    if (req != NULL)
        *req = q;
    schedule(r);
    return 0;
}

void hk_resolve_cancel(hk_resolve_req *req)
{
    if (req != NULL)
        req->cb = NULL;
}

size_t hk_resolver_pending(const hk_resolver *r)
{
    return r->pending;
}

void hk_resolver_close(hk_resolver *r, void (*closed)(void *arg), void *arg)
{
    if (r == NULL || r->closing)
        return;
    r->closing = true;
    r->closed = closed;
    r->closed_arg = arg;
    /* Every query still running ends with ARES_EDESTRUCTION (parked behind
     * the answers already there) from within ares_destroy, which also
     * closes its sockets, and so their polls through on_sock_state. Then
     * the parked callbacks run, outside c-ares. */
    ares_destroy(r->channel);
    r->channel_ok = false;
    on_kick(&r->kick);
    ares_library_cleanup();
    while (r->polls != NULL) {
        struct poll *p = r->polls;
        r->polls = p->next;
        uv_poll_stop(&p->h);
        uv_close((uv_handle_t *)&p->h, on_poll_closed);
    }
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->kick, on_handle_closed);
}
