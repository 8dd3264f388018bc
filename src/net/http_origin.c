/* http_origin.c: the outbound client's origins and their lifetimes (see http_origin.h). */
#include "http_origin.h"

#include <stdio.h>
#include <string.h>

#include "common.h"
#include "http_client.h"

static void origin_free(hk__origins *t, struct hk__origin *o)
{
    struct hk__origin **p = &t->buckets[o->hash & (HK__ORIGIN_BUCKETS - 1)];
    while (*p != NULL && *p != o)
        p = &(*p)->hnext;
    if (*p == o)
        *p = o->hnext;
    if (o->prev)
        o->prev->next = o->next;
    else
        t->all = o->next;
    if (o->next)
        o->next->prev = o->prev;
    t->count--;
    hk_tls_session_free(o->session);
    free(o->name);
    free(o->host);
    free(o->ca_file);
    free(o->cert);
    free(o->key_file);
    free(o);
}

static void unused_unlink(hk__origins *t, struct hk__origin *o)
{
    if (o->uprev)
        o->uprev->unext = o->unext;
    else
        t->unused_head = o->unext;
    if (o->unext)
        o->unext->uprev = o->uprev;
    else
        t->unused_tail = o->uprev;
    o->uprev = o->unext = NULL;
    o->unused = false;
    t->nunused--;
}

static void on_timer(uv_timer_t *timer);

/* Frees the unused origins whose time is up (and the oldest past the limit), then sets the timer for the next. */
static void sweep(hk__origins *t)
{
    uint64_t now = uv_now(t->loop);
    while (t->unused_head != NULL &&
           (now - t->unused_head->unused_since >= t->linger_ms || t->nunused > HK_CLIENT_MAX_UNUSED_ORIGINS)) {
        struct hk__origin *o = t->unused_head;
        unused_unlink(t, o);
        origin_free(t, o);
    }
    if (t->unused_head == NULL)
        uv_timer_stop(&t->timer);
    else
        uv_timer_start(&t->timer, on_timer, t->unused_head->unused_since + t->linger_ms - now, 0);
}

static void on_timer(uv_timer_t *timer)
{
    sweep(timer->data);
}

void hk__origins_init(hk__origins *t, uv_loop_t *loop, uint64_t linger_ms)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->linger_ms = linger_ms;
    uv_timer_init(loop, &t->timer);
    t->timer.data = t;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? hk_strdup(s) : NULL;
}

/* FNV-1a over a string and its NUL, so that ("ab", "") and ("a", "b") differ. */
static uint32_t fnv(uint32_t h, const char *s)
{
    do
        h = (h ^ (uint8_t)*s) * 16777619u;
    while (*s++ != '\0');
    return h;
}

static bool same_file(const char *have, const char *want)
{
    return strcmp(have != NULL ? have : "", want) == 0;
}

struct hk__origin *hk__origin_get(hk__origins *t, const hk_url *u, const char *ca, const char *cert, const char *key)
{
    if (!u->tls)
        ca = cert = key = "";
    uint32_t h = (2166136261u ^ (u->tls ? 1u : 0u) ^ ((uint32_t)u->port << 8)) * 16777619u;
    h = fnv(fnv(fnv(fnv(h, u->host), ca), cert), key);
    for (struct hk__origin *o = t->buckets[h & (HK__ORIGIN_BUCKETS - 1)]; o != NULL; o = o->hnext) {
        if (o->hash == h && o->tls == u->tls && o->port == u->port && strcmp(o->host, u->host) == 0 &&
            same_file(o->ca_file, ca) && same_file(o->cert, cert) && same_file(o->key_file, key)) {
            if (o->unused)
                unused_unlink(t, o);
            o->refs++;
            return o;
        }
    }
    struct hk__origin *o = hk_calloc(1, sizeof(*o));
    o->hash = h;
    o->hnext = t->buckets[h & (HK__ORIGIN_BUCKETS - 1)];
    t->buckets[h & (HK__ORIGIN_BUCKETS - 1)] = o;
    size_t nlen = strlen(u->host) + 24;
    o->name = hk_malloc(nlen);
    bool v6 = u->host_kind == HK_URL_HOST_IPV6;
    snprintf(o->name, nlen, "%s://%s%s%s:%d", u->tls ? "https" : "http", v6 ? "[" : "", u->host, v6 ? "]" : "",
             u->port);
    o->tls = u->tls;
    o->host = hk_strdup(u->host);
    o->port = u->port;
    o->ca_file = dup_or_null(ca);
    o->cert = dup_or_null(cert);
    o->key_file = dup_or_null(key);
    o->refs = 1;
    o->next = t->all;
    if (t->all)
        t->all->prev = o;
    t->all = o;
    t->count++;
    return o;
}

void hk__origin_ref(struct hk__origin *o)
{
    o->refs++;
}

void hk__origin_unref(hk__origins *t, struct hk__origin *o)
{
    if (--o->refs > 0 || t->closing)
        return; /* a closing table frees every origin at the end */
    o->unused = true;
    o->unused_since = uv_now(t->loop);
    o->uprev = t->unused_tail;
    o->unext = NULL;
    if (t->unused_tail)
        t->unused_tail->unext = o;
    else
        t->unused_head = o;
    t->unused_tail = o;
    t->nunused++;
    if (t->nunused > HK_CLIENT_MAX_UNUSED_ORIGINS || !uv_is_active((uv_handle_t *)&t->timer))
        sweep(t);
}

static void on_timer_closed(uv_handle_t *h)
{
    hk__origins *t = h->data;
    if (t->closed != NULL)
        t->closed(t->closed_arg);
}

void hk__origins_close(hk__origins *t, void (*closed)(void *arg), void *arg)
{
    t->closing = true;
    t->closed = closed;
    t->closed_arg = arg;
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

void hk__origins_free(hk__origins *t)
{
    while (t->all != NULL)
        origin_free(t, t->all);
}
