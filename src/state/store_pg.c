/*
 * store_pg.c: cluster mode behind store.h: the store opened on the
 * PostgreSQL engine (pg_store.h on the server's loop, pg_sync.h for the
 * CLI), its synchronous apply and bulk reads where they can be answered,
 * the asynchronous bulk reads of store.h for both engines, and what only
 * a cluster has: claims, the queue's notifications, the failure mail's
 * gate and a node's sign of life.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pg_cache.h"
#include "pg_claim.h"
#include "pg_cluster.h"
#include "pg_migrate.h"
#include "pg_query.h"
#include "store_int.h"
#include "tables.h"

#define CLI_PAGE 100 /* attempt records read per round trip by a CLI's walk of the log */

/* ---- opening and closing ------------------------------------------------------------------------- */

/* Why the open failed: into o->err when the caller takes it (the CLI), else logged; returns rc. */
static int open_failed(const hk_store_opts *o, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int open_failed(const hk_store_opts *o, int rc, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (o->err != NULL && o->errlen > 0)
        snprintf(o->err, o->errlen, "%s", buf);
    else
        hk_error("cluster: %s", buf);
    return rc;
}

/* The node's name: [cluster] node (hk_node_name_check), else host name and pid. */
static int node_name(hk_store *s, const hk_store_opts *o)
{
    const char *given = o->node_name;
    if (given != NULL && given[0] != '\0') {
        /* Checked with the configuration too; here for callers that fill hk_store_opts themselves. */
        char why[128];
        _Static_assert(HK_CLUSTER_NODE_NAME_MAX < sizeof(((hk_store *)0)->node_name),
                       "node_name holds the longest name");
        if (hk_node_name_check(given, why, sizeof(why)) != 0)
            return open_failed(o, HK_ECONFIG, "[cluster] node: %s", why);
        snprintf(s->node_name, sizeof(s->node_name), "%s", given);
        return 0;
    }
    char host[64];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "hookd");
    host[sizeof(host) - 1] = '\0';
    snprintf(s->node_name, sizeof(s->node_name), "%s/%ld", host, (long)getpid());
    return 0;
}

int hk__store_pg_open(hk_store *s, uv_loop_t *loop, const hk_store_opts *o)
{
    char err[256];
    hk_pg_schema_state st;
    if (o->err != NULL && o->errlen > 0)
        o->err[0] = '\0';
    int rc = node_name(s, o);
    if (rc != 0)
        return rc;
    /* Blocking, once: before the loop runs (a server) or in the CLI. */
    rc = hk_pg_migrate(o->postgres, loop != NULL && o->migrate, &st, err, sizeof(err));
    if (rc == HK_ECONFLICT) {
        /* Missing or older: the CLI never migrates; a node does with [cluster] migrate = auto. */
        const char *or_auto = loop != NULL ? " (or set [cluster] migrate = auto)" : "";
        if (st.found == 0)
            return open_failed(o, HK_ECONFLICT,
                               "the database has no hookd schema yet (this hookd's is version %d): run `hookd "
                               "migrate`%s",
                               st.known, or_auto);
        return open_failed(o, HK_ECONFLICT,
                           "the database's schema is version %d, older than this hookd's %d: run `hookd migrate`%s",
                           st.found, st.known, or_auto);
    }
    if (rc != 0)
        return open_failed(o, rc, "%s", err);
    if (st.applied > 0)
        hk_info("cluster: schema brought to version %d (%d migration%s applied)", st.known, st.applied,
                st.applied == 1 ? "" : "s");
    if (loop == NULL) {
        rc = hk_pg_sync_open(&s->pgsync, o->postgres, o->pg_timeout_ms, err, sizeof(err));
        if (rc != 0)
            return open_failed(o, rc, "%s", err);
        s->pg = hk_pg_sync_store(s->pgsync);
        return 0;
    }
    hk_pg_store_opts po = {.conninfo = o->postgres, .max_batch = o->max_batch};
    rc = hk_pg_store_open(&s->pg, loop, &po);
    if (rc != 0)
        return open_failed(o, rc, "the [cluster] postgres connection string does not parse");
    return 0;
}

void hk__store_pg_close(hk_store *s, void (*closed)(void *arg), void *arg)
{
    if (s->pgsync != NULL) {
        hk_pg_sync_close(s->pgsync);
        if (closed != NULL)
            closed(arg);
    } else {
        hk_pg_store_close_then(s->pg, closed, arg);
    }
    s->pg = NULL;
    s->pgsync = NULL;
}

bool hk_store_ready(hk_store *s)
{
    return s->pg == NULL || hk_pg_store_ready(s->pg);
}

bool hk_store_available(hk_store *s)
{
    return s->pg == NULL || (hk_pg_store_ready(s->pg) && hk_pg_pool_up(hk_pg_store_pool(s->pg)));
}

bool hk_store_is_cluster(const hk_store *s)
{
    return s->pg != NULL;
}

const char *hk_store_node_name(const hk_store *s)
{
    return s->pg != NULL ? s->node_name : "";
}

/* ---- applying on a loop ------------------------------------------------------------------------------ */

struct apply_wait {
    hk_commit c;
    bool done;
    int status;
};

static void apply_done(hk_commit *c, int status)
{
    struct apply_wait *w = hk_container_of(c, struct apply_wait, c);
    w->done = true;
    w->status = status;
}

int hk__store_pg_apply(hk_store *s, hk_op *op)
{
    if (s->pgsync != NULL)
        return hk_pg_sync_apply(s->pgsync, op);
    /* A server before its loop runs (start-up): the loop is run here until the op is done. */
    struct apply_wait w = {.c = {.op = *op, .done = apply_done}};
    hk_pg_store_submit(s->pg, &w.c);
    while (!w.done)
        uv_run(s->loop, UV_RUN_ONCE);
    *op = w.c.op;
    return w.status;
}

/* ---- the asynchronous bulk reads --------------------------------------------------------------------- */

static char *memdup(const char *p, size_t n)
{
    if (p == NULL)
        return NULL;
    char *d = hk_malloc(n + 1);
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static void attempt_copy(hk_attempt *d, const hk_attempt *a)
{
    *d = *a;
    d->event_name = memdup(a->event_name, a->event_name ? strlen(a->event_name) : 0);
    d->event_uuid = memdup(a->event_uuid, a->event_uuid ? strlen(a->event_uuid) : 0);
    d->error = memdup(a->error, a->error ? strlen(a->error) : 0);
    d->url = memdup(a->url, a->url ? strlen(a->url) : 0);
    d->request = memdup(a->request, a->request_len);
    d->response = memdup(a->response, a->response_len);
}

struct collect {
    hk_store_attempts_req *r;
    uint32_t max;
};

static int collect_one(const hk_attempt *a, void *arg)
{
    struct collect *c = arg;
    hk_store_attempts_req *r = c->r;
    r->items = hk_realloc(r->items, (r->nitems + 1) * sizeof(*r->items));
    attempt_copy(&r->items[r->nitems++], a);
    return r->nitems >= c->max ? 1 : 0;
}

struct pg_attempts {
    hk_pg_attempts_req q;
    hk_store_attempts_req *r;
};

static void pg_attempts_done(hk_pg_attempts_req *q, int status)
{
    struct pg_attempts *p = hk_container_of(q, struct pg_attempts, q);
    hk_store_attempts_req *r = p->r;
    r->items = q->items;
    r->nitems = q->nitems;
    q->items = NULL;
    q->nitems = 0;
    free(p);
    r->done(r, status);
}

void hk_store_attempts_read(hk_store *s, hk_store_attempts_req *r)
{
    r->items = NULL;
    r->nitems = 0;
    if (s->pg != NULL) {
        struct pg_attempts *p = hk_calloc(1, sizeof(*p));
        p->r = r;
        p->q.webhook_id = r->webhook_id;
        p->q.from_id = r->from_id;
        p->q.newest_first = r->newest_first;
        p->q.brief = r->brief;
        p->q.exact = r->exact;
        p->q.max = r->max;
        p->q.done = pg_attempts_done;
        hk_pg_attempts_list(s->pg, &p->q);
        return;
    }
    hk_txn *txn;
    int rc = hk_kv_read(s->kv, &txn);
    if (rc != 0) {
        r->done(r, rc);
        return;
    }
    if (r->exact) {
        hk_attempt a;
        rc = hk__log_read(txn, r->webhook_id, r->from_id, &a);
        if (rc == 0) {
            r->items = hk_malloc(sizeof(*r->items));
            r->items[0] = a;
            r->nitems = 1;
        }
    } else {
        struct collect c = {r, r->max ? r->max : 1};
        rc = hk__log_each(txn, r->webhook_id, r->from_id, r->newest_first, r->brief, collect_one, &c);
        if (rc == 1)
            rc = 0;
    }
    hk_txn_end(txn);
    r->done(r, rc);
}

void hk_store_attempts_req_free(hk_store_attempts_req *r)
{
    for (size_t i = 0; i < r->nitems; i++)
        hk_attempt_free(&r->items[i]);
    free(r->items);
    r->items = NULL;
    r->nitems = 0;
}

struct pg_event {
    hk_pg_event_req q;
    hk_store_event_req *r;
};

static void pg_event_done(hk_pg_event_req *q, int status)
{
    struct pg_event *p = hk_container_of(q, struct pg_event, q);
    hk_store_event_req *r = p->r;
    if (status == 0)
        r->event = q->event;
    else
        hk_event_free(&q->event);
    free(p);
    r->done(r, status);
}

void hk_store_event_read(hk_store *s, hk_store_event_req *r)
{
    memset(&r->event, 0, sizeof(r->event));
    if (s->pg != NULL) {
        struct pg_event *p = hk_calloc(1, sizeof(*p));
        p->r = r;
        p->q.id = r->id;
        p->q.done = pg_event_done;
        hk_pg_event_get(s->pg, &p->q);
        return;
    }
    r->done(r, hk_store_event_get(s, r->id, &r->event));
}

struct pg_queue {
    hk_pg_queue_req q;
    hk_store_queue_req *r;
};

static void pg_queue_done(hk_pg_queue_req *q, int status)
{
    struct pg_queue *p = hk_container_of(q, struct pg_queue, q);
    hk_store_queue_req *r = p->r;
    r->sum = q->sum;
    free(p);
    r->done(r, status);
}

void hk_store_queue_read(hk_store *s, hk_store_queue_req *r)
{
    memset(&r->sum, 0, sizeof(r->sum));
    if (s->pg != NULL) {
        struct pg_queue *p = hk_calloc(1, sizeof(*p));
        p->r = r;
        p->q.now_ms = r->now_ms;
        p->q.webhook_id = r->webhook_id;
        p->q.done = pg_queue_done;
        hk_pg_queue_summary(s->pg, &p->q);
        return;
    }
    int rc;
    if (r->webhook_id != 0)
        rc = hk_store_pending_max(s, r->webhook_id, r->now_ms, r->max, &r->sum);
    else
        rc = hk_store_queue_summary(s, r->now_ms, r->max, &r->sum);
    r->done(r, rc);
}

/* ---- the synchronous bulk reads in cluster mode (the CLI waits on its loop) ----------------------------- */

struct cli_wait {
    bool done;
    int status;
};

static bool cli_is_done(void *arg)
{
    return ((struct cli_wait *)arg)->done;
}

/* Runs the CLI's loop until w is done; UV_ENOTSUP on a server's store, UV_ETIMEDOUT when it never answered. */
static int cli_wait(hk_store *s, struct cli_wait *w)
{
    if (s->pgsync == NULL)
        return UV_ENOTSUP;
    if (!hk_pg_sync_run_until(s->pgsync, cli_is_done, w))
        return UV_ETIMEDOUT;
    return w->status;
}

struct cli_attempts {
    hk_store_attempts_req r;
    struct cli_wait w;
};

static void cli_attempts_done(hk_store_attempts_req *r, int status)
{
    struct cli_attempts *c = hk_container_of(r, struct cli_attempts, r);
    c->w.done = true;
    c->w.status = status;
}

static void cli_event_done(hk_store_event_req *r, int status)
{
    struct cli_wait *w = r->arg;
    w->done = true;
    w->status = status;
}

static void cli_queue_done(hk_store_queue_req *r, int status)
{
    struct cli_wait *w = r->arg;
    w->done = true;
    w->status = status;
}

/* A request that timed out is still in flight and is left allocated: its done runs when the engine closes. */
int hk__store_pg_event_get(hk_store *s, uint64_t id, hk_event *out)
{
    if (s->pgsync == NULL)
        return UV_ENOTSUP;
    hk_store_event_req *r = hk_calloc(1, sizeof(*r));
    struct cli_wait *w = hk_calloc(1, sizeof(*w));
    r->id = id;
    r->done = cli_event_done;
    r->arg = w;
    hk_store_event_read(s, r);
    int rc = cli_wait(s, w);
    if (rc == UV_ETIMEDOUT)
        return rc;
    *out = r->event;
    free(r);
    free(w);
    return rc;
}

static int cli_queue(hk_store *s, uint32_t webhook_id, uint64_t now_ms, hk_queue_summary *sum)
{
    if (s->pgsync == NULL)
        return UV_ENOTSUP;
    hk_store_queue_req *r = hk_calloc(1, sizeof(*r));
    struct cli_wait *w = hk_calloc(1, sizeof(*w));
    r->now_ms = now_ms;
    r->webhook_id = webhook_id;
    r->done = cli_queue_done;
    r->arg = w;
    hk_store_queue_read(s, r);
    int rc = cli_wait(s, w);
    if (rc == UV_ETIMEDOUT)
        return rc;
    *sum = r->sum;
    free(r);
    free(w);
    return rc;
}

int hk__store_pg_pending(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t *pending, uint64_t *due)
{
    hk_queue_summary sum;
    int rc = cli_queue(s, webhook_id, now_ms, &sum);
    if (rc == 0) {
        *pending = sum.pending;
        *due = sum.due;
    }
    return rc;
}

int hk__store_pg_queue_summary(hk_store *s, uint64_t now_ms, hk_queue_summary *out)
{
    return cli_queue(s, 0, now_ms, out);
}

/* One page of attempt records; *c is the caller's to free with its items (once done). */
static int cli_attempts(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first, bool brief, bool exact,
                        struct cli_attempts **out)
{
    if (s->pgsync == NULL)
        return UV_ENOTSUP;
    struct cli_attempts *c = hk_calloc(1, sizeof(*c));
    c->r.webhook_id = webhook_id;
    c->r.from_id = from_id;
    c->r.newest_first = newest_first;
    c->r.brief = brief;
    c->r.exact = exact;
    c->r.max = exact ? 1 : CLI_PAGE;
    c->r.done = cli_attempts_done;
    hk_store_attempts_read(s, &c->r);
    int rc = cli_wait(s, &c->w);
    if (rc == UV_ETIMEDOUT)
        return rc;
    *out = c;
    return rc;
}

static void cli_attempts_free(struct cli_attempts *c)
{
    hk_store_attempts_req_free(&c->r);
    free(c);
}

int hk__store_pg_attempts_each(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first, bool brief,
                               int (*fn)(const hk_attempt *a, void *arg), void *arg)
{
    for (;;) {
        struct cli_attempts *c = NULL;
        int rc = cli_attempts(s, webhook_id, from_id, newest_first, brief, false, &c);
        if (rc != 0) {
            if (c != NULL)
                cli_attempts_free(c);
            return rc;
        }
        int ret = 0;
        size_t n = c->r.nitems;
        for (size_t i = 0; i < n && ret == 0; i++)
            ret = fn(&c->r.items[i], arg);
        uint64_t last = n > 0 ? c->r.items[n - 1].id : 0;
        cli_attempts_free(c);
        if (ret != 0 || n < CLI_PAGE || (newest_first && last <= 1))
            return ret;
        from_id = newest_first ? last - 1 : last + 1;
    }
}

int hk__store_pg_attempt_get(hk_store *s, uint32_t webhook_id, uint64_t log_id, hk_attempt *out)
{
    struct cli_attempts *c = NULL;
    int rc = cli_attempts(s, webhook_id, log_id, true, false, true, &c);
    if (rc == 0) {
        *out = c->r.items[0];
        c->r.nitems = 0; /* moved to out */
    }
    if (c != NULL)
        cli_attempts_free(c);
    return rc;
}

/* ---- claims --------------------------------------------------------------------------------------------- */

struct pg_claim {
    hk_pg_claim q;
    hk_store_claim *c;
    uv_timer_t later; /* an embedded engine's refusal, on the loop */
};

static void pg_claim_done(hk_pg_claim *q, int status)
{
    struct pg_claim *p = hk_container_of(q, struct pg_claim, q);
    hk_store_claim *c = p->c;
    if (status == 0 && q->nitems > 0) {
        c->items = hk_calloc(q->nitems, sizeof(*c->items));
        for (size_t i = 0; i < q->nitems; i++) {
            c->items[i].delivery = q->items[i].delivery;
            c->items[i].event = q->items[i].event; /* moved */
        }
        c->nitems = q->nitems;
        free(q->items);
        q->items = NULL;
        q->nitems = 0;
    }
    hk_pg_claim_free(q);
    free(p);
    c->done(c, status);
}

static void claim_refused_closed(uv_handle_t *h)
{
    struct pg_claim *p = h->data;
    hk_store_claim *c = p->c;
    free(p);
    c->done(c, UV_ENOTSUP);
}

static void claim_refused(uv_timer_t *t)
{
    uv_close((uv_handle_t *)t, claim_refused_closed);
}

void hk_store_claim_due(hk_store *s, hk_store_claim *c)
{
    c->items = NULL;
    c->nitems = 0;
    struct pg_claim *p = hk_calloc(1, sizeof(*p));
    p->c = c;
    if (s->pg == NULL) {
        /* Never from inside the call, as promised. */
        uv_timer_init(s->loop, &p->later);
        p->later.data = p;
        uv_timer_start(&p->later, claim_refused, 0, 0);
        return;
    }
    p->q.node = s->node_name;
    p->q.now_ms = c->now_ms;
    p->q.lease_ms = c->lease_ms;
    p->q.max = c->max;
    p->q.skip = c->skip;
    p->q.nskip = c->nskip;
    p->q.done = pg_claim_done;
    hk_pg_claim_due(s->pg, &p->q);
}

void hk_store_claim_free(hk_store_claim *c)
{
    for (size_t i = 0; i < c->nitems; i++)
        hk_event_free(&c->items[i].event);
    free(c->items);
    c->items = NULL;
    c->nitems = 0;
}

struct pg_release {
    hk_pg_release q;
    hk_delivery *ds;
    void (*done)(int status, void *arg);
    void *arg;
};

static void pg_release_done(hk_pg_release *q, int status)
{
    struct pg_release *p = hk_container_of(q, struct pg_release, q);
    if (status != 0 && status != UV_ECANCELED)
        hk_warn("cluster: claims could not be given back (their leases end by themselves): %s", hk_strerror(status));
    if (p->done != NULL)
        p->done(status, p->arg);
    free(p->ds);
    free(p);
}

void hk_store_release(hk_store *s, const hk_delivery *ds, size_t n, void (*done)(int status, void *arg), void *arg)
{
    if (s->pg == NULL) {
        if (done != NULL)
            done(0, arg);
        return;
    }
    struct pg_release *p = hk_calloc(1, sizeof(*p));
    p->done = done;
    p->arg = arg;
    if (n > 0) {
        p->ds = hk_malloc(n * sizeof(*ds));
        memcpy(p->ds, ds, n * sizeof(*ds));
    }
    p->q.node = s->node_name;
    p->q.ds = p->ds;
    p->q.n = n;
    p->q.done = pg_release_done;
    hk_pg_claim_release(s->pg, &p->q);
}

/* ---- notifications, the mail gate, the sign of life ------------------------------------------------------ */

static void on_queue_notify(const char *channel, const char *payload, void *arg)
{
    HK_UNUSED(channel);
    HK_UNUSED(payload); /* NULL after a resubscription: some may have been missed, so it wakes too */
    hk_store *s = arg;
    if (s->queue_fn != NULL)
        s->queue_fn(s->queue_arg);
}

int hk_store_on_queue(hk_store *s, void (*fn)(void *arg), void *arg)
{
    if (s->pg == NULL)
        return UV_ENOTSUP;
    s->queue_fn = fn;
    s->queue_arg = arg;
    if (fn == NULL || s->listening)
        return 0;
    /* The pool listens as long as it lives (the store outlives every listener). */
    int rc = hk_pg_listen(hk_pg_store_pool(s->pg), "hookd_queue", on_queue_notify, s);
    s->listening = rc == 0;
    return rc;
}

struct gate {
    hk_pg_mail_gate g;
    void (*done)(bool send, void *arg);
    void *arg;
};

static void gate_done(hk_pg_mail_gate *g, int status)
{
    struct gate *p = hk_container_of(g, struct gate, g);
    if (status != 0 && status != UV_ECANCELED)
        hk_warn("cluster: the failure mail of webhook %u was not sent: the database did not say whether another node "
                "sent it (%s)",
                g->webhook_id, hk_strerror(status));
    p->done(status == 0 && g->send, p->arg);
    free(p);
}

void hk_store_mail_gate(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t min_interval_ms,
                        void (*done)(bool send, void *arg), void *arg)
{
    if (s->pg == NULL) {
        done(true, arg);
        return;
    }
    struct gate *p = hk_calloc(1, sizeof(*p));
    p->done = done;
    p->arg = arg;
    p->g.webhook_id = webhook_id;
    p->g.now_ms = now_ms;
    p->g.min_interval_ms = min_interval_ms;
    p->g.done = gate_done;
    hk_pg_mail_gate_ask(s->pg, &p->g);
}

static void member_done(hk_pg_member *m, int status)
{
    if (status != 0 && status != UV_ECANCELED)
        hk_debug("cluster: this node's sign of life was not recorded: %s", hk_strerror(status));
    free(m);
}

void hk_store_member_seen(hk_store *s, uint64_t started_ms, uint64_t now_ms)
{
    if (s->pg == NULL)
        return;
    hk_pg_member *m = hk_calloc(1, sizeof(*m));
    m->name = s->node_name;
    m->version = HK_VERSION;
    m->started_ms = started_ms;
    m->now_ms = now_ms;
    m->done = member_done;
    hk_pg_member_seen(s->pg, m);
}
