/*
 * engine.c: ingest fan-out, the due window, fair dispatch and outcomes.
 *
 * Memory: a job is one delivery held in the window (ready, on the wire, or
 * having its outcome committed). Jobs are indexed by (webhook, event) so
 * the loader never loads one twice; each webhook holds at most `share`
 * jobs, so a dead endpoint with a million pending deliveries occupies a
 * fixed slice of the window and never delays the others.
 */
#include "engine.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "attempt_log.h"
#include "auth.h"
#include "delivery.h"
#include "log.h"
#include "notify.h"
#include "signature.h"
#include "webhook.h"

#define QKEY_LEN 20           /* webhook id (4) + due ms (8) + event id (8) */
#define QVAL_LEN 12           /* attempts made (4) + first attempt ms (8) */
#define TICK_MS 1000          /* periodic rescan: notices re-activated webhooks */
#define STORE_BACKOFF_MS 1000 /* after a failed outcome commit */
#define IMMEDIATE_MS 20       /* a retry due this soon stays in memory */
#define CLEANUP_CHUNK 5000    /* queue entries of a deleted webhook removed per transaction */
#define JOB_BUCKETS_MIN 1024
#define WS_BUCKETS 1024
#define ORIGIN_BUCKETS 256
#define PRUNE_CHUNK 500 /* records deleted per transaction: keeps each commit short */

struct origin {
    char *key; /* scheme://host:port, lower case */
    uint32_t active;
    struct origin *hnext;
};

struct wstate {
    uint32_t id;
    char *raw; /* the record's bytes when last parsed */
    size_t raw_len;
    bool active, locked, gone, cleaning;
    hk_target t; /* url, name, secrets, custom headers, Properties */
    struct origin *origin;
    struct job *ready_head, *ready_tail;
    uint32_t mem; /* jobs held */
    bool in_ring;
    struct wstate *ring_next, *ring_prev;
    struct wstate *hnext;
};

enum job_state { JOB_READY, JOB_SENDING, JOB_COMMITTING };

struct job {
    hk_write w;
    hk_engine *eng;
    struct wstate *ws;
    struct origin *origin; /* the origin counted while sending */
    enum job_state state;
    uint32_t webhook_id;
    uint64_t event_id;
    uint64_t due;      /* due time in its queue key */
    uint32_t attempts; /* made before the current one */
    uint64_t first_ms;
    uint32_t user_id;
    char uuid[HK_EVENT_UUID_LEN];
    char *event_name;
    char *body;
    size_t body_len;
    /* Outcome of the current attempt, read by the commit on the worker. */
    uint64_t started_ms, started_loop, duration_ms;
    bool success, exhausted, is410, disabled, vanished;
    int status;
    char error[320];
    uint64_t next_due;
    uint32_t disable_after;
    char *url_copy;
    char *request;
    size_t request_len;
    char *response;
    size_t response_len;
    struct job *next;  /* ready list */
    struct job *hnext; /* index chain */
};

struct hk_engine {
    uv_loop_t *loop;
    hk_kv_env *store;
    const hk_config *cfg;
    hk_client *client;
    uv_timer_t load_timer;
    uv_timer_t tick;
    uv_timer_t prune_timer;
    uv_timer_t grace_timer;
    bool client_closing;
    bool pruning;
    uint64_t load_at; /* when load_timer fires; 0 = not armed */
    uint64_t *sched;
    size_t nsched;
    uint32_t share; /* jobs one webhook may hold */
    struct job **jobs;
    size_t job_buckets;
    uint32_t mem;
    uint32_t in_flight;
    uint32_t committing;
    struct wstate *ws_table[WS_BUCKETS];
    struct wstate *ring; /* round-robin cursor */
    size_t ring_len;
    bool more_due;           /* the last walk of the queue left due entries in the store */
    unsigned store_failures; /* outcome commits failed in a row (backoff) */
    uint64_t backoff_until;  /* no walk of the queue before this loop time */
    bool dispatching, redispatch;
    bool closing;
    struct origin *origins[ORIGIN_BUCKETS];
    bool stopping;
    bool client_closed;
    int open_handles;
    void (*stopped)(void *arg);
    void *stopped_arg;
    hk_engine_stats stats;
    uint64_t rng[4];
};

static void schedule_load(hk_engine *e, uint64_t delay_ms);

/* Submits a write of the engine's own; the engine stops only after every
 * such write has come back (committing). */
static void engine_submit(hk_engine *e, hk_write *w, int (*apply)(hk_txn *, hk_write *), void (*done)(hk_write *, int),
                          unsigned flags)
{
    w->apply = apply;
    w->done = done;
    w->flags = flags;
    e->committing++;
    hk_kv_submit(e->store, w);
}
static void dispatch(hk_engine *e);
static void maybe_finish_stop(hk_engine *e);

/* ---- small helpers ---------------------------------------------------- */

int hk_retry_schedule_parse(const char *text, uint64_t **delays, size_t *n)
{
    char *copy = hk_strdup(text), *save = NULL;
    uint64_t *d = NULL;
    size_t cnt = 0;
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        uint64_t ms;
        if (hk_parse_duration_ms(t, &ms) != 0) {
            free(copy);
            free(d);
            return HK_EINVAL;
        }
        d = hk_realloc(d, (cnt + 1) * sizeof(*d));
        d[cnt++] = ms;
    }
    free(copy);
    if (cnt == 0) {
        free(d);
        return HK_EINVAL;
    }
    *delays = d;
    *n = cnt;
    return 0;
}

static void qkey(uint8_t k[QKEY_LEN], uint32_t wid, uint64_t due, uint64_t eid)
{
    hk_be32(k, wid);
    hk_be64(k + 4, due);
    hk_be64(k + 12, eid);
}

/* xoshiro256** (Blackman and Vigna): fast, good statistical quality. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t next_rand(hk_engine *e)
{
    uint64_t *s = e->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Delay before the attempt after `attempts` failed ones, with jitter. */
static uint64_t retry_delay(hk_engine *e, uint32_t attempts)
{
    uint64_t base = e->sched[attempts];
    uint32_t pct = e->cfg->retry_jitter_pct;
    if (base == 0 || pct == 0)
        return base;
    double r = ((double)(next_rand(e) % 2000001) / 1000000.0 - 1.0) * (double)pct / 100.0;
    double d = (double)base * (1.0 + r);
    return d < 0 ? 0 : (uint64_t)d;
}

/* ---- job index ---------------------------------------------------------- */

static size_t job_hash(const hk_engine *e, uint32_t wid, uint64_t eid)
{
    uint64_t h = (eid * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)wid * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h >> 17) & (e->job_buckets - 1);
}

static struct job *job_find(hk_engine *e, uint32_t wid, uint64_t eid)
{
    for (struct job *j = e->jobs[job_hash(e, wid, eid)]; j != NULL; j = j->hnext)
        if (j->webhook_id == wid && j->event_id == eid)
            return j;
    return NULL;
}

static void job_index(hk_engine *e, struct job *j)
{
    size_t h = job_hash(e, j->webhook_id, j->event_id);
    j->hnext = e->jobs[h];
    e->jobs[h] = j;
}

static void job_unindex(hk_engine *e, struct job *j)
{
    struct job **p = &e->jobs[job_hash(e, j->webhook_id, j->event_id)];
    while (*p != NULL && *p != j)
        p = &(*p)->hnext;
    if (*p == j)
        *p = j->hnext;
}

static void job_clear_outcome(struct job *j)
{
    free(j->url_copy);
    free(j->request);
    free(j->response);
    j->url_copy = j->request = j->response = NULL;
    j->request_len = j->response_len = 0;
}

/* Forgets a job: its queue entry stays in the store and is loaded again. */
static void job_drop(hk_engine *e, struct job *j)
{
    job_unindex(e, j);
    j->ws->mem--;
    e->mem--;
    job_clear_outcome(j);
    free(j->event_name);
    free(j->body);
    free(j);
}

/* ---- origins and webhook states ---------------------------------------- */

static char *origin_of(const char *url)
{
    const char *p = strstr(url, "://");
    if (p == NULL)
        return hk_strdup(url);
    size_t slen = (size_t)(p - url);
    const char *host = p + 3;
    size_t hlen = strcspn(host, "/?#");
    /* Drop userinfo; add the default port so http://h and http://h:80 share a pool. */
    const char *at = memchr(host, '@', hlen);
    if (at != NULL) {
        hlen -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    char buf[600];
    bool has_port = hlen > 0 && (host[hlen - 1] != ']') && memchr(host, ':', hlen) != NULL &&
                    !(host[0] == '[' && memchr(host, ']', hlen) == host + hlen - 1);
    int n = snprintf(buf, sizeof(buf), "%.*s://%.*s%s", (int)slen, url, (int)(hlen > 500 ? 500 : hlen), host,
                     has_port ? "" : (slen == 5 ? ":443" : ":80"));
    for (int i = 0; i < n; i++)
        buf[i] = (char)tolower((unsigned char)buf[i]);
    return hk_strdup(buf);
}

static struct origin *origin_get(hk_engine *e, const char *url)
{
    char *key = origin_of(url);
    size_t h = 5381;
    for (const char *p = key; *p; p++)
        h = h * 33 + (unsigned char)*p;
    h &= ORIGIN_BUCKETS - 1;
    for (struct origin *o = e->origins[h]; o != NULL; o = o->hnext) {
        if (strcmp(o->key, key) == 0) {
            free(key);
            return o;
        }
    }
    struct origin *o = hk_calloc(1, sizeof(*o));
    o->key = key;
    o->hnext = e->origins[h];
    e->origins[h] = o;
    return o;
}

/* Takes the parts of a webhook record the dispatcher needs. */
static void ws_parse(hk_engine *e, struct wstate *ws, json_t *rec)
{
    hk_target_free(&ws->t);
    hk_target_from_record(&ws->t, rec);
    ws->active = strcmp(hk_wh_str(rec, "state"), HK_STATE_ACTIVE) == 0;
    ws->locked = hk_wh_bool(rec, "locked");
    ws->origin = origin_get(e, ws->t.url);
}

static struct wstate *ws_lookup(hk_engine *e, uint32_t id)
{
    for (struct wstate *ws = e->ws_table[id & (WS_BUCKETS - 1)]; ws != NULL; ws = ws->hnext)
        if (ws->id == id)
            return ws;
    return NULL;
}

/* Finds (or creates) the state of webhook id and refreshes it from the record when that changed. */
static struct wstate *ws_get(hk_engine *e, hk_txn *txn, uint32_t id)
{
    struct wstate *ws = ws_lookup(e, id);
    if (ws == NULL) {
        ws = hk_calloc(1, sizeof(*ws));
        ws->id = id;
        ws->hnext = e->ws_table[id & (WS_BUCKETS - 1)];
        e->ws_table[id & (WS_BUCKETS - 1)] = ws;
    }
    uint8_t k[4];
    hk_val v;
    hk_be32(k, id);
    if (hk_get(txn, HK_DB_WEBHOOKS, k, 4, &v) != 0) {
        ws->gone = true;
        ws->active = false;
        return ws;
    }
    ws->gone = false;
    if (ws->raw != NULL && ws->raw_len == v.len && memcmp(ws->raw, v.data, v.len) == 0)
        return ws;
    json_t *rec = hk_webhook_record_json(v.data, v.len);
    if (rec == NULL) {
        ws->active = false;
        return ws;
    }
    free(ws->raw);
    ws->raw = hk_malloc(v.len);
    memcpy(ws->raw, v.data, v.len);
    ws->raw_len = v.len;
    ws_parse(e, ws, rec);
    json_decref(rec);
    return ws;
}

static void ring_add(hk_engine *e, struct wstate *ws)
{
    if (ws->in_ring)
        return;
    ws->in_ring = true;
    e->ring_len++;
    if (e->ring == NULL) {
        ws->ring_next = ws->ring_prev = ws;
        e->ring = ws;
    } else {
        ws->ring_next = e->ring;
        ws->ring_prev = e->ring->ring_prev;
        e->ring->ring_prev->ring_next = ws;
        e->ring->ring_prev = ws;
    }
}

static void ring_remove(hk_engine *e, struct wstate *ws)
{
    if (!ws->in_ring)
        return;
    ws->in_ring = false;
    e->ring_len--;
    if (ws->ring_next == ws) {
        e->ring = NULL;
    } else {
        ws->ring_prev->ring_next = ws->ring_next;
        ws->ring_next->ring_prev = ws->ring_prev;
        if (e->ring == ws)
            e->ring = ws->ring_next;
    }
}

static void ws_push(hk_engine *e, struct wstate *ws, struct job *j)
{
    j->state = JOB_READY;
    j->next = NULL;
    if (ws->ready_tail)
        ws->ready_tail->next = j;
    else
        ws->ready_head = j;
    ws->ready_tail = j;
    ring_add(e, ws);
}

static struct job *ws_pop(struct wstate *ws)
{
    struct job *j = ws->ready_head;
    if (j != NULL) {
        ws->ready_head = j->next;
        if (ws->ready_head == NULL)
            ws->ready_tail = NULL;
    }
    return j;
}

/* Creates a job in the window for (ws, event); the caller checked capacity. */
static struct job *job_new(hk_engine *e, struct wstate *ws, const hk_event_view *ev, uint64_t due, uint32_t attempts,
                           uint64_t first_ms)
{
    struct job *j = hk_calloc(1, sizeof(*j));
    j->eng = e;
    j->ws = ws;
    j->webhook_id = ws->id;
    j->event_id = ev->id;
    j->due = due;
    j->attempts = attempts;
    j->first_ms = first_ms;
    j->user_id = ev->user_id;
    hk_event_uuid_str(ev->uuid, j->uuid);
    j->event_name = hk_strndup(ev->name, ev->name_len);
    j->body = hk_event_body(ev, ws->t.name, ws->t.props, &j->body_len);
    job_index(e, j);
    ws->mem++;
    e->mem++;
    ws_push(e, ws, j);
    return j;
}

/* ---- ingest -------------------------------------------------------------- */

void hk_signal_free(hk_signal *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->data);
    free(s->changes);
    free(s->idem_key);
    free(s->route);
    free(s->webhooks);
    free(s);
}

static int signal_apply(hk_txn *txn, hk_write *w)
{
    hk_signal *s = hk_container_of(w, hk_signal, w);
    const hk_config *cfg = s->engine->cfg;
    uint64_t now = hk_now_ms();
    int rc;
    s->nwebhooks = 0;
    s->duplicate = false;

    uint8_t ikey[4 + HK_IDEMPOTENCY_KEY_MAX];
    size_t iklen = 0;
    if (s->idem_key != NULL) {
        iklen = strlen(s->idem_key);
        hk_be32(ikey, s->user_id);
        memcpy(ikey + 4, s->idem_key, iklen);
        iklen += 4;
        hk_val v;
        if (hk_get(txn, HK_DB_IDEMPOTENCY, ikey, iklen, &v) == 0 && v.len == 16 &&
            hk_rd64(v.data) + cfg->idempotency_window_ms > now) {
            s->duplicate = true;
            s->event.id = hk_rd64((const uint8_t *)v.data + 8);
            return 0;
        }
    }

    uint64_t eid;
    if ((rc = hk_seq_next(txn, "seq:event", &eid)) != 0)
        return rc;
    s->event.id = eid;
    s->event.ts_ms = now;
    uint8_t *rec;
    size_t rlen = hk_event_encode(&s->event, &rec);
    uint8_t ek[8];
    hk_be64(ek, eid);
    rc = hk_put(txn, HK_DB_EVENTS, ek, 8, rec, rlen, 0);
    free(rec);
    if (rc != 0)
        return rc;
    const char *route = s->route ? s->route : s->name;
    uint32_t tid;
    if ((rc = hk_event_type_register(txn, route, &tid)) != 0)
        return rc;

    hk_cursor *c;
    if ((rc = hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c)) != 0)
        return rc;
    size_t nlen = strlen(route);
    hk_val k = {route, nlen}, v;
    uint8_t qv[QVAL_LEN];
    hk_be32(qv, 0);
    hk_be64(qv + 4, now);
    for (rc = hk_cursor_get(c, HK_SEEK_EXACT, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != nlen || memcmp(k.data, route, nlen) != 0 || v.len != 4)
            break;
        uint32_t wid = hk_rd32(v.data);
        if (wid == s->exclude)
            continue;
        hk_val wv;
        if (hk_get(txn, HK_DB_WEBHOOKS, v.data, 4, &wv) != 0)
            continue;
        json_t *wrec = hk_webhook_record_json(wv.data, wv.len);
        bool active = wrec != NULL && strcmp(hk_wh_str(wrec, "state"), HK_STATE_ACTIVE) == 0;
        json_decref(wrec);
        if (!active)
            continue;
        uint8_t q[QKEY_LEN];
        qkey(q, wid, now, eid);
        int prc = hk_put(txn, HK_DB_QUEUE, q, QKEY_LEN, qv, QVAL_LEN, 0);
        if (prc != 0) {
            hk_cursor_close(c);
            return prc;
        }
        if (s->nwebhooks == s->webhooks_cap) {
            s->webhooks_cap = s->webhooks_cap ? s->webhooks_cap * 2 : 8;
            s->webhooks = hk_realloc(s->webhooks, s->webhooks_cap * sizeof(*s->webhooks));
        }
        s->webhooks[s->nwebhooks++] = wid;
    }
    hk_cursor_close(c);
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    if (s->idem_key != NULL) {
        uint8_t iv[16];
        hk_be64(iv, now);
        hk_be64(iv + 8, eid);
        if ((rc = hk_put(txn, HK_DB_IDEMPOTENCY, ikey, iklen, iv, 16, 0)) != 0)
            return rc;
        uint8_t tkey[8 + sizeof(ikey)];
        hk_be64(tkey, now);
        memcpy(tkey + 8, ikey, iklen);
        if ((rc = hk_put(txn, HK_DB_IDEMPOTENCY_TIME, tkey, 8 + iklen, "", 0, 0)) != 0)
            return rc;
    }
    return 0;
}

static void signal_done(hk_write *w, int status)
{
    hk_signal *s = hk_container_of(w, hk_signal, w);
    hk_engine *e = s->engine;
    if (status == 0 && !s->duplicate && s->nwebhooks > 0 && !e->stopping) {
        /* Fast path: hand the new deliveries to the window directly. What
         * does not fit stays queued for the loader. */
        hk_txn *txn;
        bool left = false;
        if (hk_kv_read(e->store, &txn) == 0) {
            for (size_t i = 0; i < s->nwebhooks; i++) {
                struct wstate *ws = ws_get(e, txn, s->webhooks[i]);
                if (!ws->active || ws->mem >= e->share || e->mem >= e->cfg->max_inflight) {
                    left = true;
                    continue;
                }
                if (job_find(e, ws->id, s->event.id) != NULL)
                    continue;
                job_new(e, ws, &s->event, s->event.ts_ms, 0, s->event.ts_ms);
            }
            hk_txn_end(txn);
        } else {
            left = true;
        }
        if (left) {
            e->more_due = true;
            schedule_load(e, 0);
        }
        dispatch(e);
    }
    s->done(s, status);
}

void hk_engine_signal(hk_engine *e, hk_signal *s)
{
    s->engine = e;
    s->event.name = s->name;
    s->event.name_len = strlen(s->name);
    s->event.data = s->data;
    s->event.data_len = s->data_len;
    s->event.changes = s->changes;
    s->event.changes_len = s->changes_len;
    s->event.user_id = s->user_id;
    /* EventIds come from a generator seeded once from the kernel: unique
     * and unpredictable enough, without a system call per event. */
    uint64_t a = next_rand(e), b = next_rand(e);
    memcpy(s->event.uuid, &a, 8);
    memcpy(s->event.uuid + 8, &b, 8);
    s->event.uuid[6] = (uint8_t)((s->event.uuid[6] & 0x0f) | 0x40); /* version 4 */
    s->event.uuid[8] = (uint8_t)((s->event.uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    s->w.apply = signal_apply;
    s->w.done = signal_done;
    s->w.flags = HK_WRITE_ISOLATED;
    hk_kv_submit(e->store, &s->w);
}

/* ---- loading due work ------------------------------------------------- */

struct cleanup {
    hk_write w;
    hk_engine *eng;
    uint32_t wid;
    bool more;
};

/* Queue entries of the webhook whose id prefix is *arg. */
static bool queued_for(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == QKEY_LEN && memcmp(k->data, arg, 4) == 0;
}

static int cleanup_apply(hk_txn *txn, hk_write *w)
{
    struct cleanup *cl = hk_container_of(w, struct cleanup, w);
    uint8_t prefix[4];
    hk_be32(prefix, cl->wid);
    cl->more = false;
    /* The webhook may have been re-created meanwhile: ids are never reused,
     * so entries under its id are orphans either way, but check anyway. */
    hk_val wv;
    if (hk_get(txn, HK_DB_WEBHOOKS, prefix, 4, &wv) == 0)
        return 0;
    hk_val from = {prefix, 4};
    return hk_delete_run(txn, HK_DB_QUEUE, &from, queued_for, NULL, prefix, CLEANUP_CHUNK, &cl->more);
}

static void cleanup_done(hk_write *w, int status)
{
    struct cleanup *cl = hk_container_of(w, struct cleanup, w);
    hk_engine *e = cl->eng;
    struct wstate *ws = ws_lookup(e, cl->wid);
    e->committing--;
    if (ws != NULL)
        ws->cleaning = false;
    if (status == 0 && cl->more)
        schedule_load(e, 0);
    free(cl);
    maybe_finish_stop(e);
}

static void cleanup_start(hk_engine *e, struct wstate *ws)
{
    if (ws->cleaning || e->stopping)
        return;
    ws->cleaning = true;
    struct cleanup *cl = hk_calloc(1, sizeof(*cl));
    cl->eng = e;
    cl->wid = ws->id;
    engine_submit(e, &cl->w, cleanup_apply, cleanup_done, 0);
}

/* Walks the queue webhook by webhook, loading due entries that are not in
 * the window yet, up to each webhook's share and the window's size. */
static void load(hk_engine *e)
{
    if (e->stopping)
        return;
    if (uv_now(e->loop) < e->backoff_until) {
        schedule_load(e, 0); /* lands on backoff_until */
        return;
    }
    uint64_t now = hk_now_ms();
    uint64_t next_due = now + TICK_MS;
    hk_txn *txn;
    hk_cursor *c;
    if (hk_kv_read(e->store, &txn) != 0) {
        schedule_load(e, STORE_BACKOFF_MS);
        return;
    }
    if (hk_cursor_open(txn, HK_DB_QUEUE, &c) != 0) {
        hk_txn_end(txn);
        schedule_load(e, STORE_BACKOFF_MS);
        return;
    }
    hk_val k, v;
    bool limited = false; /* due entries were left in the store for lack of room */
    int rc = hk_cursor_get(c, HK_FIRST, &k, &v);
    while (rc == 0 && e->mem < e->cfg->max_inflight) {
        if (k.len != QKEY_LEN) {
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
            continue;
        }
        uint32_t wid = hk_rd32(k.data);
        struct wstate *ws = ws_get(e, txn, wid);
        if (ws->gone)
            cleanup_start(e, ws);
        /* Parked (not Active) or deleted: skip the whole webhook. */
        bool skip = !ws->active;
        while (!skip && rc == 0 && k.len == QKEY_LEN && hk_rd32(k.data) == wid) {
            uint64_t due = hk_rd64((const uint8_t *)k.data + 4);
            if (due > now) {
                if (due < next_due)
                    next_due = due;
                break;
            }
            if (ws->mem >= e->share || e->mem >= e->cfg->max_inflight) {
                limited = true;
                break;
            }
            uint64_t eid = hk_rd64((const uint8_t *)k.data + 12);
            /* Entries the store's ops queue (state events) carry a format version byte first. */
            const uint8_t *qv = v.data;
            size_t qlen = v.len;
            if (qlen == QVAL_LEN + 1 && qv[0] == 1) {
                qv++;
                qlen--;
            }
            if (job_find(e, wid, eid) == NULL && qlen == QVAL_LEN) {
                hk_event_view ev;
                if (hk_event_get(txn, eid, &ev) == 0)
                    job_new(e, ws, &ev, due, hk_rd32(qv), hk_rd64(qv + 4));
                else
                    hk_warn("engine: event %llu of a queued delivery is gone; skipping it", (unsigned long long)eid);
            }
            rc = hk_cursor_get(c, HK_NEXT, &k, &v);
        }
        /* Jump to the next webhook's entries. */
        if (wid == UINT32_MAX)
            break;
        uint8_t nextp[4];
        hk_be32(nextp, wid + 1);
        hk_val seek = {nextp, 4};
        k = seek;
        rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    }
    if (rc == 0 && e->mem >= e->cfg->max_inflight)
        limited = true;
    hk_cursor_close(c);
    hk_txn_end(txn);
    /* Completions only need to look at the store again when this walk left
     * due work behind; a walk costs up to a share of skipped entries. */
    e->more_due = limited;
    schedule_load(e, next_due > now ? next_due - now : 0);
    dispatch(e);
}

static void on_load_timer(uv_timer_t *t)
{
    hk_engine *e = t->data;
    e->load_at = 0;
    load(e);
}

static void schedule_load(hk_engine *e, uint64_t delay_ms)
{
    if (e->stopping)
        return;
    uint64_t now = uv_now(e->loop), at = now + delay_ms;
    if (at < e->backoff_until) {
        at = e->backoff_until;
        delay_ms = at - now;
    }
    if (e->load_at != 0 && e->load_at <= at)
        return;
    e->load_at = at;
    uv_timer_start(&e->load_timer, on_load_timer, delay_ms, 0);
}

static void on_tick(uv_timer_t *t)
{
    schedule_load(t->data, 0);
}

void hk_engine_kick(hk_engine *e)
{
    schedule_load(e, 0);
}

/* ---- sending and outcomes ------------------------------------------- */

static void outcome_submit(hk_engine *e, struct job *j);

/* Parses Retry-After (seconds or an HTTP date) into a delay in ms. */
static bool retry_after(const hk_client_result *r, uint64_t *ms)
{
    char buf[64];
    if (hk_client_header(r, "Retry-After", buf, sizeof(buf)) != 0)
        return false;
    char *end;
    unsigned long long s = strtoull(buf, &end, 10);
    if (end != buf && *end == '\0') {
        *ms = s * 1000u;
        return true;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (p == NULL || *p != '\0')
        return false;
    time_t t = timegm(&tm);
    uint64_t at = (uint64_t)t * 1000u, now = hk_now_ms();
    *ms = at > now ? at - now : 0;
    return true;
}

static char *concat(const char *a, size_t alen, const char *b, size_t blen, size_t *len)
{
    if (alen > HK_LOG_MAX_TEXT)
        alen = HK_LOG_MAX_TEXT;
    if (alen + blen > HK_LOG_MAX_TEXT)
        blen = HK_LOG_MAX_TEXT - alen;
    char *s = hk_malloc(alen + blen + 1);
    memcpy(s, a, alen);
    memcpy(s + alen, b, blen);
    s[alen + blen] = '\0';
    *len = alen + blen;
    return s;
}

static void on_response(const hk_client_result *r, void *arg)
{
    struct job *j = arg;
    hk_engine *e = j->eng;
    j->origin->active--;
    e->in_flight--;
    if (r->error == UV_ECANCELED) {
        /* Not an attempt that counts: the delivery stays queued. */
        job_drop(e, j);
        maybe_finish_stop(e);
        return;
    }
    job_clear_outcome(j);
    j->duration_ms = uv_now(e->loop) - j->started_loop;
    j->status = r->status;
    j->success = r->error == 0 && r->status >= 200 && r->status < 300;
    j->is410 = r->error == 0 && r->status == 410;
    j->error[0] = '\0';
    if (r->error != 0)
        snprintf(j->error, sizeof(j->error), "%s", r->error_text ? r->error_text : hk_strerror(r->error));
    else if (!j->success)
        snprintf(j->error, sizeof(j->error), "%s", r->status_line);
    uint32_t made = j->attempts + 1;
    j->exhausted = false;
    j->next_due = 0;
    if (!j->success) {
        if (j->is410 || made >= e->nsched) {
            j->exhausted = true;
        } else {
            uint64_t delay = retry_delay(e, made);
            uint64_t ra;
            if (r->error == 0 && (r->status == 429 || r->status == 503) && retry_after(r, &ra)) {
                if (ra > e->cfg->retry_after_max_ms)
                    ra = e->cfg->retry_after_max_ms;
                if (ra > delay)
                    delay = ra;
            }
            j->next_due = hk_now_ms() + delay;
        }
    }
    j->url_copy = hk_strdup(j->ws->t.url);
    j->request = concat(r->request_head, strlen(r->request_head), j->body, j->body_len, &j->request_len);
    char *head = NULL;
    size_t hl = 0;
    if (r->status != 0) {
        size_t sl = strlen(r->status_line);
        head = concat(r->status_line, sl, "\r\n", 2, &hl);
        char *h2 = concat(head, hl, r->headers, r->headers_len, &hl);
        free(head);
        head = concat(h2, hl, "\r\n", 2, &hl);
        free(h2);
    }
    j->response = concat(head ? head : "", hl, r->body, r->body_len, &j->response_len);
    free(head);
    j->disable_after = e->cfg->disable_after;
    e->stats.attempts++;
    if (j->success)
        e->stats.successes++;
    outcome_submit(e, j);
    dispatch(e);
}

static void send_job(hk_engine *e, struct job *j)
{
    struct wstate *ws = j->ws;
    char headers[HK_DELIVERY_HEADERS_MAX];
    uint64_t now = hk_now_ms();
    hk_delivery_headers(&ws->t, j->event_name, j->uuid, j->attempts, j->body, j->body_len, now, NULL, headers,
                        sizeof(headers));
    hk_client_request req = {
        .method = "POST", .url = ws->t.url, .headers = headers, .body = j->body, .body_len = j->body_len};
    j->state = JOB_SENDING;
    j->started_ms = now;
    j->started_loop = uv_now(e->loop);
    j->origin = ws->origin;
    j->origin->active++;
    e->in_flight++;
    int rc = hk_client_send(e->client, &req, on_response, j);
    if (rc != 0) {
        /* A request the client refuses outright: a failed attempt like any other. */
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

/* Round-robin over webhooks with ready jobs; an origin at its limit is
 * skipped. Re-entrant calls (from a completion inside send_job) only ask
 * the running pass for another round. */
static void dispatch(hk_engine *e)
{
    if (e->stopping)
        return;
    if (e->dispatching) {
        e->redispatch = true;
        return;
    }
    e->dispatching = true;
    uint32_t limit = e->cfg->concurrency_per_origin;
    do {
        e->redispatch = false;
        bool progress = true;
        while (progress && e->ring != NULL && !e->stopping) {
            progress = false;
            size_t n = e->ring_len;
            for (size_t i = 0; i < n && e->ring != NULL && !e->stopping; i++) {
                struct wstate *ws = e->ring;
                e->ring = ws->ring_next;
                if (ws->ready_head == NULL) {
                    ring_remove(e, ws);
                } else if (!ws->active || ws->gone) {
                    /* Parked or deleted: its jobs leave the window (still queued). */
                    struct job *j;
                    while ((j = ws_pop(ws)) != NULL)
                        job_drop(e, j);
                    ring_remove(e, ws);
                } else if (ws->origin->active < limit) {
                    struct job *j = ws_pop(ws);
                    if (ws->ready_head == NULL)
                        ring_remove(e, ws);
                    send_job(e, j);
                    progress = true;
                }
            }
        }
    } while (e->redispatch && !e->stopping);
    e->dispatching = false;
}

/* Updates the statistics of webhook wid for one attempt and disables it
 * when the rules say so (410, or disable_after failures in a row, unless
 * locked). Shared by queued deliveries and synchronous calls. */
static int count_attempt(hk_txn *txn, uint32_t wid, bool success, bool is410, const char *error, uint32_t disable_after,
                         bool *disabled)
{
    hk_webhook_stats st;
    int rc = 0;
    *disabled = false;
    hk_webhook_stats_get(txn, wid, &st);
    st.calls++;
    if (success) {
        st.consecutive = 0;
    } else {
        st.errors++;
        st.consecutive++;
        st.last_error_ms = hk_now_ms();
        snprintf(st.last_error, sizeof(st.last_error), "%s", error);
        json_t *rec;
        if ((is410 || st.consecutive >= disable_after) && hk_webhook_get(txn, wid, &rec) == 0) {
            if (!hk_wh_bool(rec, "locked") && strcmp(hk_wh_str(rec, "state"), HK_STATE_ACTIVE) == 0) {
                json_object_set_new(rec, "state", json_string(HK_STATE_TOO_MANY_ERRORS));
                rc = hk_webhook_put(txn, rec);
                *disabled = rc == 0;
            }
            json_decref(rec);
            if (rc != 0)
                return rc;
        }
    }
    return hk_webhook_stats_put(txn, wid, &st);
}

static int outcome_apply(hk_txn *txn, hk_write *w)
{
    struct job *j = hk_container_of(w, struct job, w);
    uint8_t old[QKEY_LEN], wk[4];
    hk_val v;
    int rc;
    j->vanished = false;
    j->disabled = false;
    qkey(old, j->webhook_id, j->due, j->event_id);
    if (hk_get(txn, HK_DB_QUEUE, old, QKEY_LEN, &v) != 0) {
        j->vanished = true; /* the webhook was deleted meanwhile */
        return 0;
    }
    if ((rc = hk_del(txn, HK_DB_QUEUE, old, QKEY_LEN, NULL, 0)) != 0)
        return rc;
    hk_be32(wk, j->webhook_id);
    if (hk_get(txn, HK_DB_WEBHOOKS, wk, 4, &v) != 0) {
        j->vanished = true;
        return 0;
    }
    if ((rc = count_attempt(txn, j->webhook_id, j->success, j->is410, j->error, j->disable_after, &j->disabled)) != 0)
        return rc;
    if (!j->success) {
        if (!j->exhausted) {
            uint8_t nk[QKEY_LEN], nv[QVAL_LEN];
            qkey(nk, j->webhook_id, j->next_due, j->event_id);
            hk_be32(nv, j->attempts + 1);
            hk_be64(nv + 4, j->first_ms);
            if ((rc = hk_put(txn, HK_DB_QUEUE, nk, QKEY_LEN, nv, QVAL_LEN, 0)) != 0)
                return rc;
        }
    }
    hk_attempt_view a = {.webhook_id = j->webhook_id,
                         .event_id = j->event_id,
                         .attempt = j->attempts + 1,
                         .started_ms = j->started_ms,
                         .duration_ms = j->duration_ms,
                         .success = j->success,
                         .status = j->status,
                         .error = j->error,
                         .url = j->url_copy,
                         .request = j->request,
                         .request_len = j->request_len,
                         .response = j->response,
                         .response_len = j->response_len,
                         .user_id = j->user_id,
                         .exhausted = j->exhausted,
                         .next_due_ms = j->exhausted || j->success ? 0 : j->next_due,
                         .disabled = j->disabled,
                         .event_name = j->event_name,
                         .event_uuid = j->uuid};
    return hk_attempt_recorded(txn, &a);
}

static void outcome_done(hk_write *w, int status)
{
    struct job *j = hk_container_of(w, struct job, w);
    hk_engine *e = j->eng;
    struct wstate *ws = j->ws;
    e->committing--;
    if (status == 0) {
        e->store_failures = 0;
        e->backoff_until = 0;
    }
    if (status == 0 && !j->vanished) {
        hk_attempt_view a = {.webhook_id = j->webhook_id,
                             .event_id = j->event_id,
                             .attempt = j->attempts + 1,
                             .started_ms = j->started_ms,
                             .duration_ms = j->duration_ms,
                             .success = j->success,
                             .status = j->status,
                             .error = j->error,
                             .url = j->url_copy,
                             .user_id = j->user_id,
                             .exhausted = j->exhausted,
                             .next_due_ms = j->next_due,
                             .disabled = j->disabled,
                             .event_name = j->event_name,
                             .event_uuid = j->uuid};
        hk_attempt_finished(e, &a);
        if (j->disabled) {
            hk_warn("webhook %u disabled (TooManyErrors): %s", j->webhook_id, j->error);
            ws->active = false;
            hk_engine_state_event(e, j->webhook_id, "errors", j->error);
        }
        if (j->exhausted && !j->success)
            hk_warn("webhook %u: delivery of event %s exhausted after %u attempts: %s", j->webhook_id, j->uuid,
                    j->attempts + 1, j->error);
    }
    if (status != 0) {
        /* The outcome is not on disk, so the queue entry is as it was: it is
         * loaded and attempted again after a pause. */
        job_drop(e, j);
        /* The store keeps failing (a full disk, say): back off further each
         * time, or the receiver would get the same delivery every second. */
        if (e->store_failures < 6)
            e->store_failures++;
        e->more_due = true;
        e->backoff_until = uv_now(e->loop) + (STORE_BACKOFF_MS << (e->store_failures - 1));
        schedule_load(e, 0);
    } else if (!j->vanished && !j->success && !j->exhausted && !e->stopping && ws->active &&
               j->next_due <= hk_now_ms() + IMMEDIATE_MS) {
        j->attempts++;
        j->due = j->next_due;
        job_clear_outcome(j);
        ws_push(e, ws, j);
    } else {
        bool retry = !j->vanished && !j->success && !j->exhausted;
        uint64_t due = j->next_due, now = hk_now_ms();
        job_drop(e, j);
        if (e->more_due)
            schedule_load(e, 0);
        else if (retry)
            schedule_load(e, due > now ? due - now : 0);
    }
    dispatch(e);
    maybe_finish_stop(e);
}

static void outcome_submit(hk_engine *e, struct job *j)
{
    j->state = JOB_COMMITTING;
    engine_submit(e, &j->w, outcome_apply, outcome_done, HK_WRITE_ISOLATED);
}

/* ---- state events -------------------------------------------------------- */

static void state_event_done(hk_signal *s, int status)
{
    hk_engine *e = s->engine;
    if (status != 0)
        hk_error("state event %s could not be stored: %s", s->route, hk_strerror(status));
    hk_signal_free(s);
    e->committing--;
    maybe_finish_stop(e);
}

void hk_engine_state_event(hk_engine *e, uint32_t id, const char *kind, const char *detail)
{
    if (e == NULL || e->stopping)
        return;
    hk_signal *s = hk_calloc(1, sizeof(*s));
    char route[64], name[32];
    snprintf(route, sizeof(route), "webhook%u.%s", id, kind);
    snprintf(name, sizeof(name), "webhook.%s", kind);
    json_t *data = json_pack("{s:I, s:s}", "WebhookId", (json_int_t)id, "State", kind);
    if (detail != NULL)
        json_object_set_new(data, "Reason", json_string(detail));
    s->name = hk_strdup(name);
    s->route = hk_strdup(route);
    s->exclude = id;
    s->primary_key = id;
    s->event.primary_key = id;
    s->data = json_dumps(data, JSON_COMPACT);
    s->data_len = strlen(s->data);
    s->changes = hk_strdup(detail != NULL ? "[\"WebhookId\",\"State\",\"Reason\"]" : "[\"WebhookId\",\"State\"]");
    s->changes_len = strlen(s->changes);
    json_decref(data);
    s->done = state_event_done;
    /* No request waits for it, so the engine itself must outlive its
     * commit: a stop waits for it like for an outcome. */
    e->committing++;
    hk_engine_signal(e, s);
}

/* ---- synchronous attempts ---------------------------------------------- */

struct sync_rec {
    hk_write w;
    hk_engine *eng;
    hk_attempt_view a;
    bool is410, disabled, vanished;
    uint32_t disable_after;
    char *copies[6];
    void (*done)(int status, bool disabled, void *arg);
    void *arg;
};

static int sync_apply(hk_txn *txn, hk_write *w)
{
    struct sync_rec *r = hk_container_of(w, struct sync_rec, w);
    uint8_t wk[4];
    hk_val v;
    hk_be32(wk, r->a.webhook_id);
    r->vanished = hk_get(txn, HK_DB_WEBHOOKS, wk, 4, &v) != 0;
    if (r->vanished)
        return 0;
    int rc = count_attempt(txn, r->a.webhook_id, r->a.success, r->is410, r->a.error, r->disable_after, &r->disabled);
    r->a.disabled = r->disabled;
    return rc ? rc : hk_attempt_recorded(txn, &r->a);
}

static void sync_done(hk_write *w, int status)
{
    struct sync_rec *r = hk_container_of(w, struct sync_rec, w);
    hk_engine *e = r->eng;
    e->committing--;
    if (status == 0 && !r->vanished) {
        hk_attempt_finished(e, &r->a);
        if (r->disabled) {
            hk_warn("webhook %u disabled (TooManyErrors): %s", r->a.webhook_id, r->a.error);
            struct wstate *ws = ws_lookup(e, r->a.webhook_id);
            if (ws != NULL)
                ws->active = false;
            hk_engine_state_event(e, r->a.webhook_id, "errors", r->a.error);
        }
    }
    if (r->done != NULL)
        r->done(status, r->disabled, r->arg);
    for (size_t i = 0; i < HK_ARRAY_SIZE(r->copies); i++)
        free(r->copies[i]);
    free(r);
    maybe_finish_stop(e);
}

void hk_engine_record(hk_engine *e, const hk_attempt_view *a, bool is410,
                      void (*done)(int status, bool disabled, void *arg), void *arg)
{
    struct sync_rec *r = hk_calloc(1, sizeof(*r));
    r->eng = e;
    r->a = *a;
    r->is410 = is410;
    r->disable_after = e->cfg->disable_after;
    /* The attempt's strings belong to the caller: keep copies for the commit. */
    const char **fields[] = {&r->a.error, &r->a.url, &r->a.event_name, &r->a.event_uuid};
    for (size_t i = 0; i < HK_ARRAY_SIZE(fields); i++) {
        r->copies[i] = hk_strdup(*fields[i] ? *fields[i] : "");
        *fields[i] = r->copies[i];
    }
    size_t n;
    r->copies[4] = concat(a->request ? a->request : "", a->request_len, "", 0, &n);
    r->a.request = r->copies[4];
    r->a.request_len = n;
    r->copies[5] = concat(a->response ? a->response : "", a->response_len, "", 0, &n);
    r->a.response = r->copies[5];
    r->a.response_len = n;
    r->done = done;
    r->arg = arg;
    engine_submit(e, &r->w, sync_apply, sync_done, HK_WRITE_ISOLATED);
}

/* ---- resend ------------------------------------------------------------ */

struct resend {
    hk_write w;
    hk_engine *eng;
    uint32_t wid;
    uint64_t eid;
    uint64_t due;
    void (*done)(uint32_t wid, uint64_t eid, int status, void *arg);
    void *arg;
};

static int resend_apply(hk_txn *txn, hk_write *w)
{
    struct resend *r = hk_container_of(w, struct resend, w);
    uint8_t wk[4], ek[8], q[QKEY_LEN], qv[QVAL_LEN];
    hk_val v;
    hk_be32(wk, r->wid);
    hk_be64(ek, r->eid);
    if (hk_get(txn, HK_DB_WEBHOOKS, wk, 4, &v) != 0 || hk_get(txn, HK_DB_EVENTS, ek, 8, &v) != 0)
        return HK_ENOTFOUND;
    r->due = hk_now_ms();
    qkey(q, r->wid, r->due, r->eid);
    hk_be32(qv, 0);
    hk_be64(qv + 4, r->due);
    return hk_put(txn, HK_DB_QUEUE, q, QKEY_LEN, qv, QVAL_LEN, 0);
}

static void resend_done(hk_write *w, int status)
{
    struct resend *r = hk_container_of(w, struct resend, w);
    hk_engine *e = r->eng;
    e->committing--;
    r->done(r->wid, r->eid, status, r->arg);
    if (status == 0)
        schedule_load(e, 0);
    free(r);
    maybe_finish_stop(e);
}

void hk_engine_resend(hk_engine *e, uint32_t webhook_id, uint64_t event_id,
                      void (*done)(uint32_t webhook_id, uint64_t event_id, int status, void *arg), void *arg)
{
    struct resend *r = hk_calloc(1, sizeof(*r));
    r->eng = e;
    r->wid = webhook_id;
    r->eid = event_id;
    r->done = done;
    r->arg = arg;
    engine_submit(e, &r->w, resend_apply, resend_done, HK_WRITE_ISOLATED);
}

/* ---- pruning ------------------------------------------------------------ */

/* Deleting in small transactions keeps every group commit short, so
 * ingest never waits behind a large clean-up. */
struct prune {
    hk_write w;
    hk_engine *eng;
    uint64_t log_before, event_before, idem_before;
    bool more;
};

/* Pairs keyed by a leading big-endian time older than *before. */
static bool older_key(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len >= 8 && hk_rd64(k->data) < *(const uint64_t *)arg;
}

/* An idempotency time-index entry takes its key (the rest of the index key) with it. */
static int drop_idempotency_key(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    HK_UNUSED(arg);
    int rc = hk_del(txn, HK_DB_IDEMPOTENCY, (const uint8_t *)k->data + 8, k->len - 8, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* Events (numbered in arrival order, oldest first) whose stored time is older. */
static bool older_event(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(k);
    uint64_t ts;
    return hk_event_time(v->data, v->len, &ts) == 0 && ts < *(const uint64_t *)arg;
}

static int prune_apply(hk_txn *txn, hk_write *w)
{
    struct prune *p = hk_container_of(w, struct prune, w);
    bool more = false;
    p->more = false;
    int rc = hk_log_prune(txn, p->log_before, PRUNE_CHUNK, &more);
    p->more |= more;
    if (rc == 0)
        rc = hk_delete_run(txn, HK_DB_EVENTS, NULL, older_event, NULL, &p->event_before, PRUNE_CHUNK, &p->more);
    if (rc == 0)
        rc = hk_delete_run(txn, HK_DB_IDEMPOTENCY_TIME, NULL, older_key, drop_idempotency_key, &p->idem_before,
                           PRUNE_CHUNK, &p->more);
    return rc;
}

static void prune_start(hk_engine *e);

static void prune_done(hk_write *w, int status)
{
    struct prune *p = hk_container_of(w, struct prune, w);
    hk_engine *e = p->eng;
    bool more = status == 0 && p->more;
    e->committing--;
    e->pruning = false;
    free(p);
    if (more && !e->stopping)
        prune_start(e);
    maybe_finish_stop(e);
}

static void prune_start(hk_engine *e)
{
    if (e->pruning || e->stopping)
        return;
    uint64_t now = hk_now_ms();
    struct prune *p = hk_calloc(1, sizeof(*p));
    p->eng = e;
    p->log_before = now > e->cfg->log_retention_ms ? now - e->cfg->log_retention_ms : 0;
    /* An event outlives its log records and every retry of its deliveries:
     * a delivery queued at the retention's edge may still wait out the
     * whole schedule, each step stretched by jitter or Retry-After. */
    uint64_t span = 0;
    for (size_t i = 0; i < e->nsched; i++) {
        uint64_t step = e->sched[i] + e->sched[i] / 100 * e->cfg->retry_jitter_pct;
        span += step > e->cfg->retry_after_max_ms ? step : e->cfg->retry_after_max_ms;
    }
    p->event_before = p->log_before > span ? p->log_before - span : 0;
    p->idem_before = now > e->cfg->idempotency_window_ms ? now - e->cfg->idempotency_window_ms : 0;
    e->pruning = true;
    engine_submit(e, &p->w, prune_apply, prune_done, 0);
}

static void on_prune_timer(uv_timer_t *t)
{
    prune_start(t->data);
}

/* ---- life cycle --------------------------------------------------------- */

int hk_engine_start(hk_engine **out, uv_loop_t *loop, const hk_config *cfg, hk_kv_env *store)
{
    hk_engine *e = hk_calloc(1, sizeof(*e));
    e->loop = loop;
    e->store = store;
    e->cfg = cfg;
    hk_random(e->rng, sizeof(e->rng));
    if (hk_retry_schedule_parse(cfg->retry_schedule, &e->sched, &e->nsched) != 0) {
        hk_error("delivery.retry_schedule: expected comma-separated durations, got \"%s\"", cfg->retry_schedule);
        free(e);
        return HK_ECONFIG;
    }
    hk_client_opts opts = {.connect_timeout_ms = cfg->connect_timeout_ms,
                           .first_byte_timeout_ms = cfg->first_byte_timeout_ms,
                           .total_timeout_ms = cfg->total_timeout_ms,
                           .max_response_bytes = cfg->max_response_bytes,
                           .ca_file = cfg->ca_file,
                           .allow_targets = cfg->allow_targets,
                           .max_idle_per_origin = cfg->concurrency_per_origin,
                           .idle_timeout_ms = 30000,
                           .user_agent = "hookd/" HK_VERSION};
    int rc = hk_client_create(&e->client, loop, &opts);
    if (rc != 0) {
        hk_error("cannot create the delivery client: %s", hk_strerror(rc));
        free(e->sched);
        free(e);
        return rc;
    }
    /* A webhook's share of the window must cover its requests on the wire
     * plus the outcomes waiting for their commit (a commit's worth of a fast
     * receiver's answers), or a single busy webhook would be starved into
     * the slow path of loading from the store; a quarter of the window still
     * leaves most of it to the others when one endpoint is dead. */
    uint32_t share = cfg->max_inflight / 4;
    if (share < cfg->concurrency_per_origin * 8)
        share = cfg->concurrency_per_origin * 8;
    if (share < 64)
        share = 64;
    if (share > cfg->max_inflight)
        share = cfg->max_inflight;
    e->share = share;
    e->job_buckets = JOB_BUCKETS_MIN;
    while (e->job_buckets < (size_t)cfg->max_inflight * 2)
        e->job_buckets *= 2;
    e->jobs = hk_calloc(e->job_buckets, sizeof(*e->jobs));
    uv_timer_init(loop, &e->load_timer);
    uv_timer_init(loop, &e->tick);
    uv_timer_init(loop, &e->prune_timer);
    uv_timer_init(loop, &e->grace_timer);
    e->load_timer.data = e->tick.data = e->prune_timer.data = e->grace_timer.data = e;
    e->open_handles = 4;
    uv_timer_start(&e->tick, on_tick, TICK_MS, TICK_MS);
    uv_timer_start(&e->prune_timer, on_prune_timer,
                   cfg->prune_interval_ms < 5000 ? cfg->prune_interval_ms : 5000,
                   cfg->prune_interval_ms);
    schedule_load(e, 0);
    *out = e;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    hk_engine *e = h->data;
    if (--e->open_handles > 0)
        return;
    void (*cb)(void *) = e->stopped;
    void *arg = e->stopped_arg;
    for (size_t i = 0; i < WS_BUCKETS; i++) {
        struct wstate *ws = e->ws_table[i];
        while (ws != NULL) {
            struct wstate *n = ws->hnext;
            struct job *j;
            while ((j = ws_pop(ws)) != NULL)
                job_drop(e, j);
            free(ws->raw);
            hk_target_free(&ws->t);
            free(ws);
            ws = n;
        }
    }
    for (size_t i = 0; i < ORIGIN_BUCKETS; i++) {
        struct origin *o = e->origins[i];
        while (o != NULL) {
            struct origin *n = o->hnext;
            free(o->key);
            free(o);
            o = n;
        }
    }
    free(e->jobs);
    free(e->sched);
    free(e);
    if (cb != NULL)
        cb(arg);
}

static void close_client(hk_engine *e);

static void maybe_finish_stop(hk_engine *e)
{
    if (!e->stopping || e->closing)
        return;
    if (e->in_flight == 0 && !e->client_closing)
        close_client(e);
    if (!e->client_closed || e->committing > 0 || e->in_flight > 0)
        return;
    e->closing = true;
    uv_close((uv_handle_t *)&e->load_timer, on_timer_closed);
    uv_close((uv_handle_t *)&e->tick, on_timer_closed);
    uv_close((uv_handle_t *)&e->prune_timer, on_timer_closed);
    uv_close((uv_handle_t *)&e->grace_timer, on_timer_closed);
}

static void on_client_closed(void *arg)
{
    hk_engine *e = arg;
    e->client_closed = true;
    maybe_finish_stop(e);
}

static void close_client(hk_engine *e)
{
    if (e->client_closing)
        return;
    e->client_closing = true;
    uv_timer_stop(&e->grace_timer);
    hk_client_close(e->client, on_client_closed, e);
}

static void on_grace_timeout(uv_timer_t *t)
{
    hk_engine *e = t->data;
    hk_warn("engine: %u deliveries still on the wire at shutdown; they stay queued", e->in_flight);
    close_client(e);
}

void hk_engine_stop(hk_engine *e, void (*stopped)(void *arg), void *arg)
{
    if (e->stopping)
        return;
    e->stopping = true;
    e->stopped = stopped;
    e->stopped_arg = arg;
    uv_timer_stop(&e->load_timer);
    uv_timer_stop(&e->tick);
    uv_timer_stop(&e->prune_timer);
    /* Requests on the wire may finish (and their outcomes commit) for most
     * of the drain time; what is left then is cancelled and stays queued. */
    if (e->in_flight == 0) {
        close_client(e);
        return;
    }
    uint64_t grace = e->cfg->shutdown_timeout_ms > 1000 ? e->cfg->shutdown_timeout_ms - 1000 : 0;
    uv_timer_start(&e->grace_timer, on_grace_timeout, grace, 0);
}

hk_client *hk_engine_client(hk_engine *e)
{
    return e->client_closed ? NULL : e->client;
}

void hk_engine_get_stats(const hk_engine *e, hk_engine_stats *out)
{
    *out = e->stats;
    out->in_memory = e->mem;
    out->in_flight = e->in_flight;
}

/* The attempt log and notifications hook in here (see engine.h). */
int hk_attempt_recorded(hk_txn *txn, const hk_attempt_view *a)
{
    return hk_log_append(txn, a, NULL);
}

void hk_attempt_finished(hk_engine *e, const hk_attempt_view *a)
{
    hk_notify_attempt(e->loop, e->cfg, e->store, a);
    if (!a->success)
        hk_debug("webhook %u: attempt %u of event %s failed: %s", a->webhook_id, a->attempt, a->event_uuid, a->error);
}
