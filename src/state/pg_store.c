/*
 * pg_store.c: the PostgreSQL engine's group commit (pg_store.h).
 *
 * Ops submitted wait in a queue; on the loop's next turn the waiting ones
 * (max_batch at most) become one group: one transaction, each op one
 * statement of one pipeline (pg_ops.c), so the group costs one round trip
 * and one commit whatever its size. One group is in flight at a time, as
 * with the embedded engine's single writer: groups commit in the order
 * their ops were submitted (within a group, statements run in the order
 * of the webhook rows they lock: see lock_key), and two groups of one node
 * never wait on each other's row locks. After the ops' statements, up to
 * two more in the same transaction read back what the group changed
 * beyond the ops' results (event types, statistics: pg_cache.h's
 * hk__pg_echo). Once the group's COMMIT has succeeded the cache takes
 * those, then each op's result is read into its out fields, the cache
 * updated from it, and its done runs, in submission order.
 *
 * A statement the database refuses (an error, a deadlock with another
 * node) aborts the group's transaction. Its ops are then applied again,
 * each in a transaction of its own, so only the guilty one fails (a
 * deadlock is retried a few times before it fails).
 */
#include "pg_store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pg_cache.h"
#include "pg_ops.h"

#define DEF_MAX_BATCH 2048
#define ALONE_TRIES_MAX                                                                                                \
    3 /* attempts of an op on its own when the database keeps refusing it with a retryable error                       \
       */

/*
 * hk_commit's internal status field, while an op waits here: 0 for an op
 * that goes in a group, n > 0 for one applied on its own, the n-th time.
 */

struct group {
    hk_pg_store *s;
    hk_pg_batch b;
    hk_commit **ops;       /* in submission order */
    hk__pg_op_stmt *stmts; /* one per op */
    hk_pg_stmt *batch;     /* what the pool sends: the statements in lock order (see lock_order) */
    size_t *at;            /* op i's statement is batch[at[i]] */
    size_t n;
    hk__pg_echo echo;    /* the read-back after the ops, batch[n] on */
    uint64_t started_ns; /* sent (uv_hrtime), for the commit's latency */
};

struct hk_pg_store {
    uv_loop_t *loop;
    hk_pg_pool *pool;
    hk_pg_cache *cache; /* the registry in memory */
    uint32_t max_batch;
    hk_commit *head, *tail; /* waiting */
    size_t waiting;
    struct group *inflight; /* the group being committed, NULL when none */
    uv_timer_t kick;        /* starts the next group on the loop's next turn */
    hk_store_counters counters;
    bool closing;
    void (*closed)(void *arg); /* hk_pg_store_close_then's: runs once everything is closed */
    void *closed_arg;
};

static void start_group(hk_pg_store *s);

/* ---- the queue --------------------------------------------------------------------------- */

static void push_back(hk_pg_store *s, hk_commit *c)
{
    c->next = NULL;
    if (s->tail != NULL)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
    s->waiting++;
}

/* Puts ops (in order) back in front of the queue. */
static void push_front(hk_pg_store *s, hk_commit **ops, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        ops[i]->next = s->head;
        s->head = ops[i];
        if (s->tail == NULL)
            s->tail = ops[i];
        s->waiting++;
    }
}

static hk_commit *pop(hk_pg_store *s)
{
    hk_commit *c = s->head;
    s->head = c->next;
    if (s->head == NULL)
        s->tail = NULL;
    s->waiting--;
    c->next = NULL;
    return c;
}

static void on_kick(uv_timer_t *t)
{
    start_group(t->data);
}

static void kick_later(hk_pg_store *s)
{
    if (s->inflight == NULL && s->head != NULL && !s->closing)
        uv_timer_start(&s->kick, on_kick, 0, 0);
}

static void finish(hk_commit *c, int status)
{
    c->status = status;
    c->done(c, status);
}

/* ---- a group's end --------------------------------------------------------------------------- */

static void group_free(struct group *g)
{
    for (size_t i = 0; i < g->n; i++)
        hk__pg_op_stmt_free(&g->stmts[i]);
    free(g->stmts);
    free(g->batch);
    free(g->at);
    free(g->ops);
    hk__pg_echo_free(&g->echo);
    free(g);
}

/* A refusal worth trying again on its own: a deadlock with another node's transaction, a serialization failure. */
static bool retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "40P01") == 0 || strcmp(sqlstate, "40001") == 0;
}

static void on_group_done(hk_pg_batch *b, int status)
{
    struct group *g = hk_container_of(b, struct group, b);
    hk_pg_store *s = g->s;
    s->inflight = NULL;
    if (status == 0) {
        s->counters.commits++;
        s->counters.ops += g->n;
        s->counters.last_commit_status = 0;
        hk_histogram_observe(&s->counters.batch_ops, g->n);
        hk_histogram_observe(&s->counters.commit_us, (uv_hrtime() - g->started_ns) / 1000);
        hk__pg_cache_echoed(s->cache, &g->echo, b->results + g->n);
        for (size_t i = 0; i < g->n; i++) {
            hk_commit *c = g->ops[i];
            int rc = hk__pg_op_decode(&c->op, b->results[g->at[i]]);
            if (rc == HK_ESTORE)
                hk_error("postgres: the result of a committed op (type %d) is malformed", (int)c->op.type);
            if (rc == 0)
                hk__pg_cache_applied(s->cache, &c->op);
            finish(c, rc);
        }
    } else if (status == HK_ESTORE && g->n > 1) {
        /* Applied again one by one, so that only the op the database refuses fails. */
        hk_info("postgres: a group of %zu ops was refused (%s); applying them one by one", g->n, b->err);
        for (size_t i = 0; i < g->n; i++)
            g->ops[i]->status = 1;
        push_front(s, g->ops, g->n);
    } else if (status == HK_ESTORE && retryable(b->sqlstate) && g->ops[0]->status < ALONE_TRIES_MAX) {
        g->ops[0]->status++;
        push_front(s, g->ops, 1);
    } else {
        if (status == HK_ESTORE) {
            hk_error("postgres: an op (type %d) was refused: %s", (int)g->ops[0]->op.type, b->err);
        } else {
            hk_warn("postgres: a commit of %zu op%s failed: %s", g->n, g->n == 1 ? "" : "s", b->err);
            /* The database out of reach (not one op refused): readiness follows until a commit succeeds. */
            s->counters.failed_commits++;
            s->counters.last_commit_status = status;
        }
        for (size_t i = 0; i < g->n; i++)
            finish(g->ops[i], status);
    }
    group_free(g);
    kick_later(s);
}

/*
 * The webhook whose row an op locks (0: none). Two nodes' groups that lock
 * the same webhooks in different orders would deadlock, and a deadlock
 * costs a group applied again op by op: so a group's statements run in
 * webhook order, those that lock no webhook row first, in the order they
 * were submitted.
 * Ops of one group are concurrent requests (a dependent one is submitted
 * after the first's done, in a later group), so any order of them is one
 * the requests could have arrived in; ops of one webhook keep theirs.
 */
static uint32_t lock_key(const hk_op *op)
{
    switch (op->type) {
    case HK_OP_OUTCOME: return op->u.outcome.delivery.webhook_id;
    case HK_OP_ATTEMPT: return op->u.attempt.rec != NULL ? op->u.attempt.rec->webhook_id : 0;
    case HK_OP_WEBHOOK_PUT: return op->u.webhook_put.webhook != NULL ? op->u.webhook_put.webhook->id : 0;
    case HK_OP_WEBHOOK_DELETE: return op->u.webhook_delete.id;
    case HK_OP_WEBHOOK_LOCK: return op->u.webhook_lock.id;
    default: return 0;
    }
}

/* Orders the group's statements: those locking no webhook first as submitted, then by webhook, stably. */
static void lock_order(struct group *g)
{
    size_t *order = hk_calloc(g->n, sizeof(*order));
    for (size_t i = 0; i < g->n; i++)
        order[i] = i;
    /* Insertion sort: stable, and groups are mostly in order already (one op per webhook, or none). */
    for (size_t i = 1; i < g->n; i++) {
        size_t cur = order[i];
        uint32_t key = lock_key(&g->ops[cur]->op);
        size_t j = i;
        while (j > 0 && lock_key(&g->ops[order[j - 1]]->op) > key) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = cur;
    }
    for (size_t k = 0; k < g->n; k++) {
        g->batch[k] = g->stmts[order[k]].stmt;
        g->at[order[k]] = k;
    }
    free(order);
}

/* ---- a group's start ---------------------------------------------------------------------------- */

static void start_group(hk_pg_store *s)
{
    if (s->inflight != NULL || s->head == NULL || s->closing)
        return;
    /* An op being applied on its own goes alone; otherwise up to max_batch. */
    size_t max = s->head->status > 0 ? 1 : s->max_batch;
    struct group *g = hk_calloc(1, sizeof(*g));
    g->s = s;
    g->ops = hk_calloc(max, sizeof(*g->ops));
    g->stmts = hk_calloc(max, sizeof(*g->stmts));
    g->batch = hk_calloc(max + HK_ARRAY_SIZE(g->echo.stmts), sizeof(*g->batch));
    g->at = hk_calloc(max, sizeof(*g->at));
    /* Ops that cannot be written as a statement end now; the rest form the group. */
    hk_commit *refused = NULL, **rtail = &refused;
    while (s->head != NULL && g->n < max && (g->n == 0 || s->head->status == 0)) {
        hk_commit *c = pop(s);
        int rc = hk__pg_op_encode(&c->op, &g->stmts[g->n]);
        if (rc != 0) {
            hk__pg_op_stmt_free(&g->stmts[g->n]);
            c->status = rc;
            *rtail = c;
            rtail = &c->next;
            continue;
        }
        hk__pg_echo_add(s->cache, &g->echo, &c->op);
        g->ops[g->n++] = c;
    }
    if (g->n > 0) {
        lock_order(g);
        hk__pg_echo_build(&g->echo);
        for (size_t i = 0; i < g->echo.nstmts; i++)
            g->batch[g->n + i] = g->echo.stmts[i];
        g->b.stmts = g->batch;
        g->b.nstmts = g->n + g->echo.nstmts;
        g->b.transaction = true;
        g->b.done = on_group_done;
        s->inflight = g;
        g->started_ns = uv_hrtime();
        hk_pg_submit(s->pool, &g->b);
    } else {
        group_free(g);
    }
    /* Called from the loop (the kick timer or a group's end), never from within hk_pg_store_submit. */
    while (refused != NULL) {
        hk_commit *c = refused;
        refused = c->next;
        c->next = NULL;
        finish(c, c->status);
    }
    kick_later(s);
}

/* ---- the engine ----------------------------------------------------------------------------------- */

void hk_pg_store_submit(hk_pg_store *s, hk_commit *c)
{
    c->status = 0;
    push_back(s, c);
    kick_later(s);
}

int hk_pg_store_open(hk_pg_store **out, uv_loop_t *loop, const hk_pg_store_opts *o)
{
    *out = NULL;
    if (o == NULL || o->conninfo == NULL)
        return HK_EINVAL;
    hk_pg_store *s = hk_calloc(1, sizeof(*s));
    s->counters.batch_ops.b = &hk_buckets_batch;
    s->counters.commit_us.b = &hk_buckets_commit_us;
    hk_pg_pool_opts po = {.conninfo = o->conninfo,
                          .size = o->pool_size,
                          .queue_timeout_ms = o->queue_timeout_ms,
                          .resolver = o->resolver};
    int rc = hk_pg_pool_open(&s->pool, loop, &po);
    if (rc != 0) {
        free(s);
        return rc;
    }
    rc = hk__pg_cache_open(&s->cache, loop, s->pool);
    if (rc != 0) {
        hk_pg_pool_close(s->pool, free, s);
        return rc;
    }
    s->loop = loop;
    s->max_batch = o->max_batch != 0 ? o->max_batch : DEF_MAX_BATCH;
    uv_timer_init(loop, &s->kick);
    s->kick.data = s;
    *out = s;
    return 0;
}

static void on_kick_closed(uv_handle_t *h)
{
    hk_pg_store *s = h->data;
    void (*closed)(void *) = s->closed;
    void *arg = s->closed_arg;
    free(s);
    if (closed != NULL)
        closed(arg);
}

static void on_cache_closed(void *arg)
{
    hk_pg_store *s = arg;
    uv_close((uv_handle_t *)&s->kick, on_kick_closed);
}

static void on_pool_closed(void *arg)
{
    hk_pg_store *s = arg;
    hk__pg_cache_close(s->cache, on_cache_closed, s);
}

void hk_pg_store_close(hk_pg_store *s)
{
    hk_pg_store_close_then(s, NULL, NULL);
}

void hk_pg_store_close_then(hk_pg_store *s, void (*closed)(void *arg), void *arg)
{
    if (s == NULL || s->closing)
        return;
    s->closing = true;
    s->closed = closed;
    s->closed_arg = arg;
    uv_timer_stop(&s->kick);
    hk__pg_cache_stop(s->cache);
    hk_pg_pool_close(s->pool, on_pool_closed, s);
}

bool hk_pg_store_busy(const hk_pg_store *s)
{
    return s->head != NULL || s->inflight != NULL;
}

void hk_pg_store_get_counters(const hk_pg_store *s, hk_store_counters *out)
{
    *out = s->counters;
    out->used = hk__pg_cache_db_bytes(s->cache);
}

hk_pg_pool *hk_pg_store_pool(hk_pg_store *s)
{
    return s->pool;
}

bool hk_pg_store_ready(const hk_pg_store *s)
{
    return hk__pg_cache_ready(s->cache);
}

hk_pg_cache *hk__pg_store_cache(hk_pg_store *s)
{
    return s->cache;
}
