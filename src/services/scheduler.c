/*
 * scheduler.c: the window of due deliveries (see engine_int.h): which jobs
 * it admits, loading them from the pending queue, the origins and their
 * connection slots, fair dispatch and sending.
 */
#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "metrics.h"
#include "url.h"

#define STORE_BACKOFF_MS 1000 /* a failed read of the queue is tried again after this */
#define REFUSAL_LOG_MS 60000  /* an SSRF refusal is logged at most this often per webhook */
#define JOB_BUCKETS_MIN 1024

static void origin_ring_update(hk_engine *e, struct hk__origin *o);

/* ---- job index ------------------------------------------------------------------ */

/* Open addressing with linear probing: the walk of the queue asks for
 * every due entry whether it is held, and the key is in the slot, so a
 * question costs one cache line, not a job's. Deletion shifts the
 * following entries back (no tombstones). The table is kept at most half
 * full: it doubles beyond that. */

static size_t job_hash(uint32_t wid, uint64_t eid, size_t mask)
{
    uint64_t h = (eid * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)wid * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h >> 17) & mask;
}

struct hk__job *hk__job_find(hk_engine *e, uint32_t wid, uint64_t eid)
{
    size_t mask = e->job_buckets - 1;
    for (size_t i = job_hash(wid, eid, mask);; i = (i + 1) & mask) {
        const struct hk__jslot *s = &e->jobs[i];
        if (s->job == NULL)
            return NULL;
        if (s->event_id == eid && s->webhook_id == wid)
            return s->job;
    }
}

static void slot_put(struct hk__jslot *t, size_t mask, struct hk__job *j)
{
    size_t i = job_hash(j->d.webhook_id, j->d.event_id, mask);
    while (t[i].job != NULL)
        i = (i + 1) & mask;
    t[i].event_id = j->d.event_id;
    t[i].webhook_id = j->d.webhook_id;
    t[i].job = j;
}

static void job_index(hk_engine *e, struct hk__job *j)
{
    if ((e->njobs + 1) * 2 > e->job_buckets) {
        size_t n = e->job_buckets * 2;
        struct hk__jslot *t = hk_calloc(n, sizeof(*t));
        for (size_t i = 0; i < e->job_buckets; i++)
            if (e->jobs[i].job != NULL)
                slot_put(t, n - 1, e->jobs[i].job);
        free(e->jobs);
        e->jobs = t;
        e->job_buckets = n;
    }
    slot_put(e->jobs, e->job_buckets - 1, j);
    e->njobs++;
}

static void job_unindex(hk_engine *e, struct hk__job *j)
{
    size_t mask = e->job_buckets - 1;
    size_t i = job_hash(j->d.webhook_id, j->d.event_id, mask);
    while (e->jobs[i].job != j) {
        if (e->jobs[i].job == NULL)
            return;
        i = (i + 1) & mask;
    }
    /* Entries after the hole that probed past it move back into it. */
    for (size_t k = (i + 1) & mask; e->jobs[k].job != NULL; k = (k + 1) & mask) {
        size_t home = job_hash(e->jobs[k].webhook_id, e->jobs[k].event_id, mask);
        /* k's entry may fill the hole at i when its home is not in (i, k] (cyclically). */
        if (((k - home) & mask) >= ((k - i) & mask)) {
            e->jobs[i] = e->jobs[k];
            i = k;
        }
    }
    memset(&e->jobs[i], 0, sizeof(e->jobs[i]));
    e->njobs--;
}

void hk__job_clear_attempt(struct hk__job *j)
{
    free(j->url_copy); /* custom with it */
    free(j->user_agent);
    free(j->request);
    free(j->response);
    j->url_copy = j->custom = j->user_agent = j->request = j->response = NULL;
    j->request_len = j->response_len = 0;
}

void hk__job_drop(hk_engine *e, struct hk__job *j)
{
    job_unindex(e, j);
    j->ws->held--;
    HK_METRIC_ADD(e->mem, -1);
    hk__job_clear_attempt(j);
    free(j->event_name);
    hk_body_ref(j->body, -1);
    free(j);
}

/* ---- origins -------------------------------------------------------------------- */

/* scheme://host:port as the URL parser reads it: http://H and http://h:80
 * share one. A URL that does not parse (its request fails at once) is its
 * own origin. */
static char *origin_key(const char *url)
{
    hk_url u;
    if (hk_url_parse(url, &u, NULL) != 0)
        return hk_strdup(url);
    char buf[HK_URL_MAX_HOST + 32];
    snprintf(buf, sizeof(buf), "%s://%s%s%s:%u", u.tls ? "https" : "http", u.host_kind == HK_URL_HOST_IPV6 ? "[" : "",
             u.host, u.host_kind == HK_URL_HOST_IPV6 ? "]" : "", u.port);
    return hk_strdup(buf);
}

static size_t origin_hash(const char *key)
{
    size_t h = 5381;
    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h & (HK__ORIGIN_BUCKETS - 1);
}

struct hk__origin *hk__sched_origin_get(hk_engine *e, const char *url)
{
    char *key = origin_key(url);
    size_t h = origin_hash(key);
    for (struct hk__origin *o = e->origins[h]; o != NULL; o = o->hnext) {
        if (strcmp(o->key, key) == 0) {
            free(key);
            o->refs++;
            return o;
        }
    }
    struct hk__origin *o = hk_calloc(1, sizeof(*o));
    o->key = key;
    o->refs = 1;
    o->hnext = e->origins[h];
    e->origins[h] = o;
    return o;
}

void hk__sched_origin_put(hk_engine *e, struct hk__origin *o)
{
    if (o == NULL || --o->refs > 0)
        return;
    /* Nothing refers to it: no webhook, no request on the wire, no waiter. */
    struct hk__origin **p = &e->origins[origin_hash(o->key)];
    while (*p != NULL && *p != o)
        p = &(*p)->hnext;
    if (*p == o)
        *p = o->hnext;
    free(o->key);
    free(o);
}

static void origin_ring_add(hk_engine *e, struct hk__origin *o)
{
    if (o->in_ring)
        return;
    o->in_ring = true;
    if (e->ring == NULL) {
        o->ring_next = o->ring_prev = o;
        e->ring = o;
    } else {
        o->ring_next = e->ring;
        o->ring_prev = e->ring->ring_prev;
        e->ring->ring_prev->ring_next = o;
        e->ring->ring_prev = o;
    }
}

static void origin_ring_remove(hk_engine *e, struct hk__origin *o)
{
    if (!o->in_ring)
        return;
    o->in_ring = false;
    if (o->ring_next == o) {
        e->ring = NULL;
    } else {
        o->ring_prev->ring_next = o->ring_next;
        o->ring_next->ring_prev = o->ring_prev;
        if (e->ring == o)
            e->ring = o->ring_next;
    }
}

/* An origin is dispatchable while it has ready jobs and a free slot. */
static void origin_ring_update(hk_engine *e, struct hk__origin *o)
{
    if (o->ready > 0 && o->active < e->o.concurrency_per_origin)
        origin_ring_add(e, o);
    else
        origin_ring_remove(e, o);
}

/* ---- webhook states ----------------------------------------------------------- */

/* A webhook that has work again takes the next turn of its origin (it is
 * put at the cursor): whoever waited longest goes first, and a webhook with
 * a backlog cannot take two turns in a row while another has work. */
static void ws_ring_add(struct hk__origin *o, struct hk__wstate *ws)
{
    if (ws->in_ring)
        return;
    ws->in_ring = true;
    if (o->ws_ring == NULL) {
        ws->ring_next = ws->ring_prev = ws;
    } else {
        ws->ring_next = o->ws_ring;
        ws->ring_prev = o->ws_ring->ring_prev;
        o->ws_ring->ring_prev->ring_next = ws;
        o->ws_ring->ring_prev = ws;
    }
    o->ws_ring = ws;
}

static void ws_ring_remove(struct hk__origin *o, struct hk__wstate *ws)
{
    if (!ws->in_ring)
        return;
    ws->in_ring = false;
    if (ws->ring_next == ws) {
        o->ws_ring = NULL;
    } else {
        ws->ring_prev->ring_next = ws->ring_next;
        ws->ring_next->ring_prev = ws->ring_prev;
        if (o->ws_ring == ws)
            o->ws_ring = ws->ring_next;
    }
}

static void ws_push(hk_engine *e, struct hk__wstate *ws, struct hk__job *j)
{
    j->state = HK__JOB_READY;
    j->next = NULL;
    if (ws->ready_tail)
        ws->ready_tail->next = j;
    else
        ws->ready_head = j;
    ws->ready_tail = j;
    ws->nready++;
    ws->origin->ready++;
    ws_ring_add(ws->origin, ws);
    origin_ring_update(e, ws->origin);
}

static struct hk__job *ws_pop(hk_engine *e, struct hk__wstate *ws)
{
    struct hk__job *j = ws->ready_head;
    if (j == NULL)
        return NULL;
    ws->ready_head = j->next;
    if (ws->ready_head == NULL)
        ws->ready_tail = NULL;
    ws->nready--;
    ws->origin->ready--;
    if (ws->nready == 0)
        ws_ring_remove(ws->origin, ws);
    origin_ring_update(e, ws->origin);
    return j;
}

/* Points ws at origin o (whose reference the caller took; NULL: none), moving its ready jobs' count. */
static void ws_set_origin(hk_engine *e, struct hk__wstate *ws, struct hk__origin *o)
{
    struct hk__origin *old = ws->origin;
    if (old == o) {
        hk__sched_origin_put(e, o);
        return;
    }
    if (old != NULL) {
        ws_ring_remove(old, ws);
        old->ready -= ws->nready;
        origin_ring_update(e, old);
    }
    ws->origin = o;
    if (o != NULL) {
        o->ready += ws->nready;
        if (ws->nready > 0)
            ws_ring_add(o, ws);
        origin_ring_update(e, o);
    }
    hk__sched_origin_put(e, old);
}

struct hk__wstate *hk__ws_lookup(hk_engine *e, uint32_t id)
{
    for (struct hk__wstate *ws = e->ws_table[id % HK__WS_BUCKETS]; ws != NULL; ws = ws->hnext)
        if (ws->id == id)
            return ws;
    return NULL;
}

/* True when what a request to w is made of differs from a: the target is rebuilt then. */
static bool target_changed(const hk_webhook *a, const hk_webhook *b)
{
    if (strcmp(a->url, b->url) != 0 || strcmp(a->name, b->name) != 0 || strcmp(a->secret, b->secret) != 0 ||
        strcmp(a->prev_secret, b->prev_secret) != 0 || a->prev_secret_until != b->prev_secret_until ||
        a->nheaders != b->nheaders || a->nproperties != b->nproperties)
        return true;
    for (size_t i = 0; i < a->nheaders; i++)
        if (strcmp(a->headers[i].name, b->headers[i].name) != 0 ||
            strcmp(a->headers[i].value, b->headers[i].value) != 0)
            return true;
    for (size_t i = 0; i < a->nproperties; i++)
        if (strcmp(a->properties[i].name, b->properties[i].name) != 0 ||
            strcmp(a->properties[i].value, b->properties[i].value) != 0)
            return true;
    return false;
}

void hk__new_pass(hk_engine *e, bool force)
{
    uint64_t mono = hk_clock_mono(e->clock);
    if (force || mono != e->pass_mono || e->pass == 0) {
        e->pass++;
        e->pass_mono = mono;
    }
}

struct hk__wstate *hk__ws_get(hk_engine *e, uint32_t id)
{
    struct hk__wstate *ws = hk__ws_lookup(e, id);
    if (ws == NULL) {
        ws = hk_calloc(1, sizeof(*ws));
        ws->id = id;
        hk_webhook_init(&ws->w);
        ws->hnext = e->ws_table[id % HK__WS_BUCKETS];
        e->ws_table[id % HK__WS_BUCKETS] = ws;
        ws_set_origin(e, ws, hk__sched_origin_get(e, ""));
    } else if (ws->pass == e->pass && (ws->known || ws->gone)) {
        return ws; /* read once per pass: a pass is one moment */
    }
    ws->pass = e->pass;
    hk_webhook w;
    memset(&w, 0, sizeof(w)); /* filled by the store; safe to free either way */
    int rc = hk_store_webhook_get(e->store, id, &w);
    if (rc != 0) {
        hk_webhook_free(&w);
        ws->active = false;
        ws->gone = rc == HK_ENOTFOUND;
        if (rc != HK_ENOTFOUND)
            hk_warn("engine: cannot read webhook %u: %s", id, hk_strerror(rc));
        return ws;
    }
    ws->gone = false;
    ws->active = w.state == HK_WH_ACTIVE;
    ws->locked = w.locked;
    bool rebuild = !ws->known || target_changed(&ws->w, &w);
    hk_webhook_free(&ws->w);
    ws->w = w; /* the record moves into ws */
    ws->known = true;
    if (rebuild) {
        hk_target_free(&ws->t);
        hk_target_from_webhook(&ws->t, &ws->w);
        ws_set_origin(e, ws, hk__sched_origin_get(e, ws->t.url));
    }
    return ws;
}

void hk__ws_forget(hk_engine *e, struct hk__wstate *ws)
{
    if (!ws->gone || ws->held > 0)
        return;
    struct hk__wstate **p = &e->ws_table[ws->id % HK__WS_BUCKETS];
    while (*p != NULL && *p != ws)
        p = &(*p)->hnext;
    if (*p == ws)
        *p = ws->hnext;
    hk_webhook_free(&ws->w);
    hk_target_free(&ws->t);
    ws_set_origin(e, ws, NULL);
    free(ws);
}

/* ---- admission --------------------------------------------------------------------- */

uint32_t hk__admit(hk_engine *e, const struct hk__wstate *ws)
{
    if (!ws->active || ws->gone || e->stopping)
        return 0;
    uint32_t max = e->o.max_inflight, limit = e->o.concurrency_per_origin;
    uint32_t hard = max > UINT32_MAX / 2 ? UINT32_MAX : max * 2;
    uint32_t n = 0;
    if (e->mem < max && ws->held < e->share) {
        n = e->share - ws->held;
        if (n > max - e->mem)
            n = max - e->mem;
    }
    /* Work that can go on the wire at once is admitted past a full window:
     * a full window of jobs waiting for saturated origins must not keep a
     * healthy origin idle. A webhook with nothing ready gets one job even
     * when its origin's slots are spoken for, so that the webhooks of one
     * origin keep taking turns. */
    const struct hk__origin *o = ws->origin;
    if (o->active < limit && e->mem < hard) {
        uint32_t free_slots = limit - o->active;
        uint32_t d = free_slots > o->ready ? free_slots - o->ready : 0;
        if (d == 0 && ws->nready == 0)
            d = 1;
        if (d > hard - e->mem)
            d = hard - e->mem;
        if (d > n)
            n = d;
    }
    return n;
}

struct hk__job *hk__job_new(hk_engine *e, struct hk__wstate *ws, const hk_delivery *d, const hk_event *ev,
                            hk_body *body)
{
    struct hk__job *j = hk_calloc(1, sizeof(*j));
    j->eng = e;
    j->ws = ws;
    j->d = *d;
    j->user_id = ev->user_id;
    j->ts_ms = ev->ts_ms;
    hk_event_uuid_str(ev->uuid, j->uuid);
    j->event_name = hk_strdup(ev->name);
    if (body != NULL)
        hk_body_ref(body, +1);
    else
        body = hk_body_new(NULL, ev, &ws->t);
    j->body = body;
    job_index(e, j);
    ws->held++;
    HK_METRIC_ADD(e->mem, 1);
    ws_push(e, ws, j);
    return j;
}

void hk__job_requeue(hk_engine *e, struct hk__job *j)
{
    hk__job_clear_attempt(j);
    ws_push(e, j->ws, j);
}

/* ---- loading due work ------------------------------------------------------------ */

/* Bodies made during one walk, by event: the walk goes webhook by webhook,
 * so the webhooks of one fan-out meet the same events one after the other,
 * and those that render the same bytes share one body (and its signatures). */
#define LOAD_BODIES 512 /* slots, a power of two */
#define LOAD_PROBES 8   /* slots looked at per event before the oldest is replaced */

struct load_body {
    uint64_t event_id;
    hk_body *body; /* a reference the walk holds; NULL: free slot */
};

/* One walk of the queue. */
struct load {
    hk_engine *e;
    struct hk__wstate *ws; /* the webhook being walked */
    uint32_t want, taken;  /* jobs it is admitted, jobs loaded */
    bool limited;          /* due entries were left in the store for lack of room */
    struct load_body bodies[LOAD_BODIES];
};

/* The body of ev for ws's target: one this walk made already, or a new one kept for the rest of it. */
static hk_body *load_body(struct load *l, const hk_event *ev, const hk_target *t)
{
    size_t h = (size_t)((ev->id * 0x9E3779B97F4A7C15ull) >> 40) & (LOAD_BODIES - 1);
    struct load_body *slot = NULL;
    for (size_t i = 0; i < LOAD_PROBES; i++) {
        struct load_body *b = &l->bodies[(h + i) & (LOAD_BODIES - 1)];
        if (b->body == NULL) {
            slot = b;
            break;
        }
        if (b->event_id == ev->id && hk_body_fits(b->body, t))
            return b->body;
    }
    if (slot == NULL) {
        slot = &l->bodies[h];
        hk_body_ref(slot->body, -1);
    }
    slot->event_id = ev->id;
    slot->body = hk_body_new(NULL, ev, t);
    return slot->body;
}

static uint32_t load_webhook(uint32_t wid, void *arg)
{
    struct load *l = arg;
    if (!hk__owns(l->e, wid))
        return 0; /* another worker's */
    struct hk__wstate *ws = l->ws = hk__ws_get(l->e, wid);
    if (ws->gone)
        hk__queue_drop(l->e, ws);
    if (!ws->active)
        return 0; /* parked or deleted: its entries stay where they are */
    l->want = hk__admit(l->e, ws);
    l->taken = 0;
    /* One entry more than admitted: when it exists, work was left behind. */
    return l->want + 1;
}

static bool load_held(const hk_delivery *d, void *arg)
{
    struct load *l = arg;
    return hk__job_find(l->e, d->webhook_id, d->event_id) != NULL;
}

static bool load_delivery(const hk_delivery *d, const hk_event *ev, void *arg)
{
    struct load *l = arg;
    if (l->taken >= l->want) {
        l->limited = true;
        return true;
    }
    hk__job_new(l->e, l->ws, d, ev, load_body(l, ev, &l->ws->t));
    l->taken++;
    return true;
}

void hk__load(hk_engine *e)
{
    if (e->stopping)
        return;
    if (hk_store_is_cluster(e->store)) {
        if (hk_clock_mono(e->clock) < e->backoff_until)
            hk__schedule_load(e, 0); /* lands on backoff_until */
        else
            hk__claim_load(e);
        return;
    }
    uint64_t mono = hk_clock_mono(e->clock);
    if (mono < e->backoff_until) {
        hk__schedule_load(e, 0); /* lands on backoff_until */
        return;
    }
    uint64_t now = hk_clock_wall(e->clock);
    struct load l = {.e = e}; /* 8 KiB of body slots: on the stack, so that engines on other threads have their own */
    hk_due_scan scan = {
        .now_ms = now, .webhook = load_webhook, .held = load_held, .delivery = load_delivery, .arg = &l};
    hk__new_pass(e, false);
    int rc = hk_store_scan_due(e->store, &scan);
    for (size_t i = 0; i < LOAD_BODIES; i++)
        if (l.bodies[i].body != NULL)
            hk_body_ref(l.bodies[i].body, -1);
    if (rc != 0) {
        hk_warn("engine: cannot read the queue: %s", hk_strerror(rc));
        hk__schedule_load(e, STORE_BACKOFF_MS);
        return;
    }
    /* Completions only need to look at the store again when this walk left
     * due work behind. */
    e->more_due = l.limited;
    uint64_t next_due = scan.next_due_ms;
    if (e->o.tick_ms != 0 && next_due > now + e->o.tick_ms)
        next_due = now + e->o.tick_ms;
    if (next_due != UINT64_MAX)
        hk__schedule_load(e, next_due > now ? next_due - now : 0);
    hk__dispatch(e);
}

static void on_load_timer(uv_timer_t *t)
{
    hk_engine *e = t->data;
    e->load_at = 0;
    hk__load(e);
}

void hk__schedule_load(hk_engine *e, uint64_t delay_ms)
{
    if (e->stopping)
        return;
    uint64_t now = hk_clock_mono(e->clock), at = now + delay_ms;
    if (at < e->backoff_until) {
        at = e->backoff_until;
        delay_ms = at - now;
    }
    /* An earlier arming stands, unless its moment has passed without it
     * firing (a fake clock moved). */
    if (e->load_at != 0 && e->load_at <= at && e->load_at >= now)
        return;
    e->load_at = at;
    uv_timer_start(&e->load_timer, on_load_timer, delay_ms, 0);
}

/* ---- slots of synchronous calls ------------------------------------------------------ */

static void arm_wait_timer(hk_engine *e);

/* A slot of o was given back: waiting synchronous calls take it first. */
static void slot_freed(hk_engine *e, struct hk__origin *o)
{
    while (o->waiters != NULL && o->active < e->o.concurrency_per_origin) {
        struct hk__slot_wait *w = o->waiters;
        o->waiters = w->next;
        if (o->waiters != NULL)
            o->waiters->prev = NULL;
        else
            o->waiters_tail = NULL;
        HK_METRIC_ADD(e->waiting, -1);
        o->active++;
        e->sync_active++;
        w->granted(w, 0);
    }
    origin_ring_update(e, o);
}

int hk__slot_take(hk_engine *e, struct hk__slot_wait *w)
{
    struct hk__origin *o = w->origin;
    if (o->active < e->o.concurrency_per_origin && o->waiters == NULL) {
        o->active++;
        e->sync_active++;
        origin_ring_update(e, o);
        return 0;
    }
    w->next = NULL;
    w->prev = o->waiters_tail;
    if (o->waiters_tail != NULL)
        o->waiters_tail->next = w;
    else
        o->waiters = w;
    o->waiters_tail = w;
    HK_METRIC_ADD(e->waiting, 1);
    arm_wait_timer(e);
    return 1;
}

void hk__slot_release(hk_engine *e, struct hk__origin *o)
{
    o->active--;
    e->sync_active--;
    slot_freed(e, o);
    hk__dispatch(e);
    /* A stop lets synchronous calls on the wire finish like deliveries. */
    hk__maybe_finish_stop(e);
}

void hk__slot_expire(hk_engine *e)
{
    uint64_t now = hk_clock_mono(e->clock);
    for (size_t i = 0; i < HK__ORIGIN_BUCKETS && e->waiting > 0; i++) {
        for (struct hk__origin *o = e->origins[i]; o != NULL; o = o->hnext) {
            /* Oldest first, so the expired ones are at the head. */
            while (o->waiters != NULL && (e->stopping || o->waiters->deadline_mono <= now)) {
                struct hk__slot_wait *w = o->waiters;
                o->waiters = w->next;
                if (o->waiters != NULL)
                    o->waiters->prev = NULL;
                else
                    o->waiters_tail = NULL;
                HK_METRIC_ADD(e->waiting, -1);
                w->granted(w, e->stopping ? HK_ESHUTDOWN : UV_ETIMEDOUT);
            }
        }
    }
    arm_wait_timer(e);
}

static void on_wait_timer(uv_timer_t *t)
{
    hk_engine *e = t->data;
    e->wait_at = 0;
    hk__slot_expire(e);
}

static void arm_wait_timer(hk_engine *e)
{
    if (e->waiting == 0 || e->closing) {
        uv_timer_stop(&e->wait_timer);
        e->wait_at = 0;
        return;
    }
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < HK__ORIGIN_BUCKETS; i++)
        for (struct hk__origin *o = e->origins[i]; o != NULL; o = o->hnext)
            if (o->waiters != NULL && o->waiters->deadline_mono < first)
                first = o->waiters->deadline_mono;
    if (first == UINT64_MAX || (e->wait_at != 0 && e->wait_at <= first))
        return;
    uint64_t now = hk_clock_mono(e->clock);
    e->wait_at = first;
    uv_timer_start(&e->wait_timer, on_wait_timer, first > now ? first - now : 0, 0);
}

/* ---- sending -------------------------------------------------------------------- */

/* The SSRF guard refused the target of ws (r->refused_addr set): says so
 * in the log, so that the first local test a user makes does not fail in
 * silence, but at most once a minute per webhook, as a backlog to such a
 * target fails every one of its deliveries. */
static void log_refusal(hk_engine *e, struct hk__wstate *ws, const char *url, const hk_client_result *r)
{
    uint64_t now = hk_clock_mono(e->clock);
    if (ws->refusal_logged_mono != 0 && now - ws->refusal_logged_mono < REFUSAL_LOG_MS)
        return;
    /* A clock at 0 would read as "never": the first line of a fake clock still counts. */
    ws->refusal_logged_mono = now != 0 ? now : 1;
    hk_url u;
    const char *host = hk_url_parse(url, &u, NULL) == 0 ? u.host : url;
    hk_warn("webhook %u: delivery to %s refused by the SSRF guard: address %s, rule %s (allow it with [delivery] "
            "allow_targets); logged once a minute at most",
            ws->id, host, r->refused_addr, r->refused_rule);
}

static void on_response(const hk_client_result *r, void *arg)
{
    struct hk__job *j = arg;
    hk_engine *e = j->eng;
    struct hk__origin *o = j->origin;
    j->origin = NULL;
    o->active--;
    HK_METRIC_ADD(e->in_flight, -1);
    slot_freed(e, o);
    if (r->error == UV_ECANCELED) {
        /* Not an attempt that counts: the delivery stays queued. */
        hk__job_drop(e, j);
        hk__sched_origin_put(e, o);
        hk__maybe_finish_stop(e);
        return;
    }
    hk__sched_origin_put(e, o);
    if (r->error == HK_EFORBIDDEN && r->refused_addr != NULL && r->refused_addr[0] != '\0')
        log_refusal(e, j->ws, j->url_copy, r);
    hk__outcome(e, j, r);
    hk__dispatch(e);
}

static void send_job(hk_engine *e, struct hk__job *j)
{
    struct hk__wstate *ws = j->ws;
    struct hk__origin *o = ws->origin;
    uint64_t now = hk_clock_wall(e->clock);
    /* The attempt's record names the URL it went to and keeps the custom
     * headers it was sent with: the webhook may change while the request
     * is on the wire. */
    hk__job_clear_attempt(j);
    size_t url_len = strlen(ws->t.url), custom_len = strlen(ws->t.headers);
    j->url_copy = hk_malloc(url_len + custom_len + 2); /* one block: the custom lines follow the URL */
    memcpy(j->url_copy, ws->t.url, url_len + 1);
    j->custom = j->url_copy + url_len + 1;
    memcpy(j->custom, ws->t.headers, custom_len + 1);
    hk_delivery_sign(&ws->t, j->body, j->uuid, now, &j->sigs);
    /* The engine's buffer: the client copies the headers into the request's head. */
    hk_buf *headers = &e->send_headers;
    hk_buf_reset(headers);
    hk_buf_reserve(headers, 512 + custom_len);
    hk_delivery_headers_parts(headers, j->event_name, j->uuid, ws->id, j->d.attempts, now, &j->sigs, j->custom, NULL);
    hk_client_request req = {.method = "POST",
                             .url = j->url_copy,
                             .headers = hk_buf_cstr(headers),
                             .body = j->body->data,
                             .body_len = j->body->len,
                             .body_ref = hk_body_ref,
                             .body_owner = j->body};
    j->state = HK__JOB_SENDING;
    j->started_ms = now;
    j->started_mono = hk_clock_mono(e->clock);
    j->origin = o;
    o->refs++;
    o->active++;
    HK_METRIC_ADD(e->in_flight, 1);
    origin_ring_update(e, o);
    int rc = hk_sender_send(&e->sender, &req, on_response, j);
    if (rc != 0) {
        /* A request the sender refuses outright: a failed attempt like any other. */
        hk_client_result r;
        memset(&r, 0, sizeof(r));
        r.error = rc;
        r.error_text = rc == HK_EINVAL    ? "the request cannot be made: target URL is not an absolute http(s) URL "
                                            "without user info, or a header value is invalid"
                       : rc == HK_ETOOBIG ? "the request cannot be made: body too large"
                                          : hk_strerror(rc);
        r.status_line = r.headers = r.body = r.request_head = "";
        on_response(&r, j);
    }
}

/* Origins with ready jobs and a free slot take turns, and so do the
 * webhooks of each origin. Re-entrant calls (from a completion inside
 * send_job) only ask the running pass for another round. */
void hk__dispatch(hk_engine *e)
{
    if (e->stopping)
        return;
    if (e->dispatching) {
        e->redispatch = true;
        return;
    }
    e->dispatching = true;
    do {
        e->redispatch = false;
        while (e->ring != NULL && !e->stopping) {
            struct hk__origin *o = e->ring;
            e->ring = o->ring_next;
            struct hk__wstate *ws = o->ws_ring;
            o->ws_ring = ws->ring_next;
            struct hk__job *j = ws_pop(e, ws);
            if (!ws->active || ws->gone) {
                /* Parked or deleted: its jobs leave the window (they stay queued; claims are given back). */
                while (j != NULL) {
                    if (hk_store_is_cluster(e->store))
                        hk__give_back(e, &j->d);
                    hk__job_drop(e, j);
                    j = ws_pop(e, ws);
                }
                continue;
            }
            send_job(e, j);
        }
    } while (e->redispatch && !e->stopping);
    e->dispatching = false;
    hk__give_back_flush(e);
}

/* ---- life cycle ------------------------------------------------------------------ */

void hk__sched_init(hk_engine *e)
{
    /* A webhook's share of the window must cover its requests on the wire
     * plus the outcomes waiting for their commit (a commit's worth of a fast
     * receiver's answers), or a single busy webhook would be starved into
     * the slow path of loading from the store; a quarter of the window still
     * leaves most of it to the others. */
    uint32_t max = e->o.max_inflight, share = max / 4;
    if (share < e->o.concurrency_per_origin * 8)
        share = e->o.concurrency_per_origin * 8;
    if (share < 64)
        share = 64;
    if (share > max)
        share = max;
    e->share = share;
    e->job_buckets = JOB_BUCKETS_MIN;
    while (e->job_buckets < (size_t)max * 4)
        e->job_buckets *= 2;
    e->njobs = 0;
    e->jobs = hk_calloc(e->job_buckets, sizeof(*e->jobs));
}

void hk__sched_free(hk_engine *e)
{
    for (size_t i = 0; i < HK__WS_BUCKETS; i++) {
        struct hk__wstate *ws = e->ws_table[i];
        while (ws != NULL) {
            struct hk__wstate *n = ws->hnext;
            struct hk__job *j;
            while ((j = ws_pop(e, ws)) != NULL)
                hk__job_drop(e, j);
            hk_webhook_free(&ws->w);
            hk_target_free(&ws->t);
            ws_set_origin(e, ws, NULL);
            free(ws);
            ws = n;
        }
    }
    /* Whatever is left (nothing, once every request and waiter is done). */
    for (size_t i = 0; i < HK__ORIGIN_BUCKETS; i++) {
        struct hk__origin *o = e->origins[i];
        while (o != NULL) {
            struct hk__origin *n = o->hnext;
            free(o->key);
            free(o);
            o = n;
        }
        e->origins[i] = NULL;
    }
    free(e->jobs);
    free(e->back);
    hk_buf_free(&e->send_headers);
}
