/*
 * engine_group.c: the engines of a server's workers (one event loop and
 * one engine per thread, engine.h's hk_engine_group). Worker i owns the
 * webhooks whose id mod n is i: only its engine loads their queue entries,
 * holds them in its window and sends them. A signal accepted on any worker
 * hands the deliveries it queued for other workers' webhooks to their
 * engines with a copy of the event (an inbox per engine: a mutex and a
 * uv_async_t), which put them straight into their windows as the
 * accepting engine does with its own; a change that needs an owner to
 * look at its queue again (a resend, a recovery, a webhook set Active, a
 * webhook disabled by another worker's synchronous call) wakes it the same
 * way. Nothing here is on a delivery's path but that hand-over.
 */
#include <string.h>

#include "engine_int.h"
#include "log.h"

/* Deliveries of one event for the webhooks of one engine. */
struct hk__handoff {
    hk_event ev;   /* a copy (owned) */
    uint32_t *ids; /* the webhooks (owned) */
    size_t n;
    struct hk__handoff *next;
};

/* One worker's engine as the others see it. */
struct slot {
    uv_mutex_t mu;
    hk_engine *engine;               /* guarded by mu: NULL unless running */
    struct hk__handoff *head, *tail; /* guarded by mu */
    bool kick;                       /* guarded by mu: walk the queue again, every webhook read anew */
};

struct hk_engine_group {
    uint32_t n;
    struct slot slots[];
};

int hk_engine_group_new(hk_engine_group **out, uint32_t n)
{
    if (n == 0)
        return HK_EINVAL;
    hk_engine_group *g = hk_calloc(1, sizeof(*g) + n * sizeof(g->slots[0]));
    g->n = n;
    for (uint32_t i = 0; i < n; i++)
        uv_mutex_init(&g->slots[i].mu);
    *out = g;
    return 0;
}

static void handoff_free(struct hk__handoff *h)
{
    while (h != NULL) {
        struct hk__handoff *next = h->next;
        hk_event_free(&h->ev);
        free(h->ids);
        free(h);
        h = next;
    }
}

void hk_engine_group_free(hk_engine_group *g)
{
    if (g == NULL)
        return;
    for (uint32_t i = 0; i < g->n; i++) {
        handoff_free(g->slots[i].head);
        uv_mutex_destroy(&g->slots[i].mu);
    }
    free(g);
}

bool hk__owns(const hk_engine *e, uint32_t webhook_id)
{
    return e->group == NULL || webhook_id % e->group->n == e->worker;
}

/* On the engine's loop: what other workers handed over. */
static void inbox_wake(uv_async_t *a)
{
    hk_engine *e = a->data;
    struct slot *sl = &e->group->slots[e->worker];
    uv_mutex_lock(&sl->mu);
    struct hk__handoff *h = sl->head;
    bool kick = sl->kick;
    sl->head = sl->tail = NULL;
    sl->kick = false;
    uv_mutex_unlock(&sl->mu);
    for (struct hk__handoff *x = h; x != NULL && !e->stopping; x = x->next)
        hk__fan_out(e, &x->ev, x->ids, x->n);
    handoff_free(h);
    if (kick)
        hk__kick_here(e);
}

int hk__group_join(hk_engine *e)
{
    if (e->group == NULL)
        return 0;
    int rc = uv_async_init(e->loop, &e->inbox, inbox_wake);
    if (rc != 0)
        return rc;
    e->inbox.data = e;
    e->open_handles++;
    struct slot *sl = &e->group->slots[e->worker];
    uv_mutex_lock(&sl->mu);
    sl->engine = e;
    uv_mutex_unlock(&sl->mu);
    return 0;
}

void hk__group_leave(hk_engine *e)
{
    if (e->group == NULL)
        return;
    struct slot *sl = &e->group->slots[e->worker];
    uv_mutex_lock(&sl->mu);
    sl->engine = NULL;
    struct hk__handoff *h = sl->head;
    sl->head = sl->tail = NULL;
    uv_mutex_unlock(&sl->mu);
    /* Their queue entries are stored: a later start loads them. */
    handoff_free(h);
}

/* Queues h (may be NULL: only a kick) for worker i and wakes its engine; dropped when it is not running. */
static void post(hk_engine_group *g, uint32_t i, struct hk__handoff *h, bool kick)
{
    struct slot *sl = &g->slots[i];
    uv_mutex_lock(&sl->mu);
    hk_engine *to = sl->engine;
    if (to != NULL) {
        if (h != NULL) {
            if (sl->tail != NULL)
                sl->tail->next = h;
            else
                sl->head = h;
            sl->tail = h;
            h = NULL;
        }
        sl->kick |= kick;
        /* Under the lock: the engine leaves (and closes the handle) only after taking it. */
        uv_async_send(&to->inbox);
    }
    uv_mutex_unlock(&sl->mu);
    handoff_free(h);
}

void hk__hand_over(hk_engine *e, const hk_event *ev, const uint32_t *ids, size_t n)
{
    hk_engine_group *g = e->group;
    for (uint32_t w = 0; w < g->n; w++) {
        if (w == e->worker)
            continue;
        struct hk__handoff *h = NULL;
        for (size_t i = 0; i < n; i++) {
            if (ids[i] % g->n != w)
                continue;
            if (h == NULL) {
                /* +1: a text may be empty (and its pointer NULL), and the copy is never NULL. */
                h = hk_calloc(1, sizeof(*h));
                h->ids = hk_malloc(n * sizeof(*h->ids));
                h->ev = *ev;
                h->ev.name = hk_strdup(ev->name);
                h->ev.changes = hk_malloc(ev->changes_len + 1);
                memcpy(h->ev.changes, ev->changes ? ev->changes : "", ev->changes_len);
                h->ev.changes[ev->changes_len] = '\0';
                h->ev.data = hk_malloc(ev->data_len + 1);
                memcpy(h->ev.data, ev->data ? ev->data : "", ev->data_len);
                h->ev.data[ev->data_len] = '\0';
            }
            h->ids[h->n++] = ids[i];
        }
        if (h != NULL)
            post(g, w, h, false);
    }
}

void hk__wake_owner(hk_engine *e, uint32_t webhook_id)
{
    if (hk__owns(e, webhook_id))
        hk__schedule_load(e, 0);
    else
        post(e->group, webhook_id % e->group->n, NULL, true);
}

void hk__kick_others(hk_engine *e)
{
    if (e->group == NULL)
        return;
    for (uint32_t w = 0; w < e->group->n; w++)
        if (w != e->worker)
            post(e->group, w, NULL, true);
}

/* Another thread's counter, read whole. */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void hk_engine_group_stats(hk_engine_group *g, hk_engine_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (uint32_t i = 0; i < g->n; i++) {
        struct slot *sl = &g->slots[i];
        uv_mutex_lock(&sl->mu);
        const hk_engine *e = sl->engine;
        if (e != NULL) {
            out->attempts += LOAD(e->stats.attempts);
            out->successes += LOAD(e->stats.successes);
            out->in_memory += LOAD(e->mem);
            out->in_flight += LOAD(e->in_flight);
            out->waiting += LOAD(e->waiting);
        }
        uv_mutex_unlock(&sl->mu);
    }
}
