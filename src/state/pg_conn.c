/*
 * pg_conn.c: the libpq connection pool on the libuv loop (pg_conn.h): the
 * queue of batches, pipelines and their results, notifications, a lost
 * connection, opening and closing. Connecting is pg_connect.c's.
 *
 * A connection goes DOWN -> (RESOLVING) -> CONNECTING -> READY <-> BUSY,
 * and back to DOWN when an attempt fails or the server goes away.
 *
 * Batches: BEGIN, the statements, COMMIT and one sync point are sent in
 * pipeline mode at once (without a transaction, a sync point after each
 * statement, so each stands alone). Results are read as they come: each
 * statement's result is followed by a NULL from PQgetResult, a sync point
 * by PGRES_PIPELINE_SYNC. After a failed transaction the session is left in
 * an aborted transaction, so a ROLLBACK follows before the connection takes
 * the next batch.
 */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pg_conn_int.h"

#define DEF_SIZE 4
#define DEF_CONNECT_TIMEOUT_MS 10000
#define DEF_RETRY_MIN_MS 100
#define DEF_RETRY_MAX_MS 5000
#define DEF_QUEUE_TIMEOUT_MS 5000
#define QUEUE_CHECK_MS 100 /* how often waiting batches are checked against queue_timeout */
#define STRAY_NULLS_MAX 2  /* NULLs from PQgetResult with nothing expected before the stream counts as broken */

static void conn_lost(struct pg_conn *c, const char *why, bool was_up);
static void pump(hk_pg_pool *p);

/* ---- small helpers ------------------------------------------------------------------ */

static uint64_t def(uint64_t v, uint64_t d)
{
    return v != 0 ? v : d;
}

/* One of the pool's handles (or its resolver) is closed; the last one frees the pool. */
void hk__pg_pending_done(hk_pg_pool *p)
{
    if (--p->pending == 0 && p->closing) {
        void (*closed)(void *) = p->closed;
        void *arg = p->closed_arg;
        for (size_t i = 0; i < p->nhosts; i++)
            free(p->host_list[i]);
        free(p->host_list);
        free(p->port_spec);
        free(p->conninfo);
        free(p);
        if (closed != NULL)
            closed(arg);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    hk__pg_pending_done(h->data);
}

/* ---- batches ending ------------------------------------------------------------------ */

/* Ends b with status: done runs (and may free b), then the results it left are freed. */
static void batch_end(hk_pg_pool *p, hk_pg_batch *b, int status)
{
    p->counters.batches++;
    if (b->results == NULL)
        b->results = hk_calloc(b->nstmts, sizeof(*b->results));
    if (status != 0 && status != HK_ESTORE && b->err[0] == '\0')
        snprintf(b->err, sizeof(b->err), "%s", hk_strerror(status));
    struct pg_result **results = b->results;
    size_t n = b->nstmts;
    b->done(b, status);
    for (size_t i = 0; i < n; i++)
        PQclear(results[i]);
    free(results);
}

static void batch_reset(hk_pg_batch *b)
{
    b->results = NULL;
    b->failed = 0;
    b->err[0] = '\0';
    b->sqlstate[0] = '\0';
    b->next = NULL;
}

/* Fails every queued batch that waited queue_timeout while no connection was up (all with force). */
static void fail_queued(hk_pg_pool *p, bool force, int status)
{
    uint64_t now = uv_now(p->loop);
    while (p->qhead != NULL && (force || (p->up == 0 && p->qhead->queued_ms + p->o.queue_timeout_ms <= now))) {
        hk_pg_batch *b = p->qhead;
        p->qhead = b->next;
        if (p->qhead == NULL)
            p->qtail = NULL;
        p->queued--;
        if (status == UV_ECONNREFUSED)
            snprintf(b->err, sizeof(b->err), "no connection to PostgreSQL for %llums",
                     (unsigned long long)p->o.queue_timeout_ms);
        batch_end(p, b, status);
    }
}

/* Sends what waits (never from within hk_pg_submit), and fails what waited too long for a connection. */
static void on_qtimer(uv_timer_t *t)
{
    hk_pg_pool *p = t->data;
    pump(p);
    if (!p->closing)
        fail_queued(p, false, UV_ECONNREFUSED);
    if (!p->closing && p->qhead == NULL)
        uv_timer_stop(&p->qtimer);
}

/* ---- a connection lost --------------------------------------------------------------------- */

/* An established connection that broke: its batch fails, and it connects again. */
static void conn_lost(struct pg_conn *c, const char *why, bool was_up)
{
    hk_pg_pool *p = c->pool;
    char msg[384];
    hk__pg_one_line(msg, sizeof(msg), why);
    hk_pg_batch *b = c->batch;
    c->batch = NULL;
    free(c->items);
    c->items = NULL;
    c->nitems = c->cur = 0;
    c->listening = false;
    hk__pg_unwatch(c);
    PQfinish(c->pg);
    c->pg = NULL;
    p->counters.disconnects++;
    if (was_up && !c->listener && --p->up == 0 && !p->was_down) {
        hk_warn("postgres: connection lost (%s); reconnecting", msg);
        p->was_down = true;
    } else {
        hk_debug("postgres: connection lost%s (%s); reconnecting", c->listener ? " (notifications)" : "", msg);
    }
    c->backoff_ms = p->o.retry_min_ms;
    hk__pg_retry_later(c);
    if (b != NULL) {
        snprintf(b->err, sizeof(b->err), "connection lost: %.200s", msg);
        batch_end(p, b, UV_ECONNRESET);
    }
    if (p->up == 0 && p->qhead != NULL && !p->closing)
        uv_timer_start(&p->qtimer, on_qtimer, QUEUE_CHECK_MS, QUEUE_CHECK_MS);
}

/* ---- pipelines ------------------------------------------------------------------------ */

static bool send_query(struct pg_conn *c, const hk_pg_stmt *s)
{
    return PQsendQueryParams(c->pg, s->sql, s->nparams, NULL, s->values, s->lengths, s->formats,
                             s->binary_result ? 1 : 0) == 1;
}

static const hk_pg_stmt stmt_begin = {.sql = "BEGIN"};
static const hk_pg_stmt stmt_commit = {.sql = "COMMIT"};
static const hk_pg_stmt stmt_rollback = {.sql = "ROLLBACK"};

/* After each libpq write: flush what it holds, and watch for writability while some remains. */
static int flush(struct pg_conn *c)
{
    int rc = PQflush(c->pg);
    if (rc < 0)
        return UV_EPIPE;
    c->want_write = rc == 1;
    return hk__pg_watch(c, UV_READABLE | (c->want_write ? UV_WRITABLE : 0));
}

/* Sends b (or, without b, a ROLLBACK) as one pipeline. */
static void send_pipeline(struct pg_conn *c, hk_pg_batch *b)
{
    size_t n = b == NULL ? 2 : b->transaction ? b->nstmts + 3 : 2 * b->nstmts;
    bool ok = true;
    c->items = hk_calloc(n, sizeof(*c->items));
    c->nitems = 0;
    c->cur = 0;
    c->got = c->after_sync = c->failed = false;
    c->nulls = 0;
    c->batch = b;
    c->state = C_BUSY;
    if (b == NULL) {
        ok = send_query(c, &stmt_rollback);
        c->items[c->nitems++] = (struct item){ITEM_INTERNAL, 0};
    } else {
        b->results = hk_calloc(b->nstmts, sizeof(*b->results));
        if (b->transaction) {
            ok = send_query(c, &stmt_begin);
            c->items[c->nitems++] = (struct item){ITEM_INTERNAL, 0};
        }
        for (size_t i = 0; i < b->nstmts && ok; i++) {
            ok = send_query(c, &b->stmts[i]);
            c->items[c->nitems++] = (struct item){ITEM_STMT, i};
            if (!b->transaction && ok) {
                ok = PQpipelineSync(c->pg) == 1;
                c->items[c->nitems++] = (struct item){ITEM_SYNC, 0};
            }
        }
        if (b->transaction && ok) {
            ok = send_query(c, &stmt_commit);
            c->items[c->nitems++] = (struct item){ITEM_INTERNAL, 0};
        }
    }
    if (ok && (b == NULL || b->transaction)) {
        ok = PQpipelineSync(c->pg) == 1;
        c->items[c->nitems++] = (struct item){ITEM_SYNC, 0};
    }
    if (!ok || flush(c) != 0)
        conn_lost(c, PQerrorMessage(c->pg), true);
}

/* Keeps a statement's result, and the first failure of the pipeline. */
static void record(struct pg_conn *c, const struct item *it, PGresult *r)
{
    hk_pg_batch *b = c->batch;
    ExecStatusType st = PQresultStatus(r);
    bool failure = st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
    if (failure && b != NULL && !c->failed) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        c->failed = true;
        b->failed = it->kind == ITEM_STMT ? it->index : b->nstmts;
        hk__pg_one_line(b->err, sizeof(b->err), PQresultErrorMessage(r));
        snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", state ? state : "");
    } else if (failure && b == NULL) {
        char msg[256];
        hk__pg_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
        hk_warn("postgres: ROLLBACK after a failed batch: %s", msg);
    }
    if (it->kind == ITEM_STMT && b != NULL && st != PGRES_PIPELINE_ABORTED)
        b->results[it->index] = r;
    else
        PQclear(r);
}

/* The pipeline's last sync point was read: the batch ends, the session is cleaned, the next batch goes. */
static void pipeline_done(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    hk_pg_batch *b = c->batch;
    bool failed = c->failed;
    free(c->items);
    c->items = NULL;
    c->nitems = c->cur = 0;
    c->batch = NULL;
    PGTransactionStatusType ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_INERROR || ts == PQTRANS_INTRANS)
        send_pipeline(c, NULL); /* ROLLBACK first; the connection stays busy */
    else
        c->state = C_READY;
    if (b != NULL)
        batch_end(p, b, failed ? HK_ESTORE : 0);
    if (!p->closing)
        pump(p);
}

/* Reads every result that is in; false when the connection broke (c may then be DOWN). */
static bool read_results(struct pg_conn *c)
{
    while (c->state == C_BUSY && c->pg != NULL && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            if (c->got) {
                c->got = false;
                c->cur++;
                c->nulls = 0;
            } else if (c->after_sync) {
                c->after_sync = false;
            } else if (++c->nulls > STRAY_NULLS_MAX) {
                conn_lost(c, PQstatus(c->pg) == CONNECTION_BAD ? PQerrorMessage(c->pg) : "results out of step", true);
                return false;
            }
            continue;
        }
        c->nulls = 0;
        c->after_sync = false;
        ExecStatusType st = PQresultStatus(r);
        const struct item *it = c->cur < c->nitems ? &c->items[c->cur] : NULL;
        if (it == NULL || (st == PGRES_PIPELINE_SYNC) != (it->kind == ITEM_SYNC) || c->got) {
            PQclear(r);
            conn_lost(c, "results out of step", true);
            return false;
        }
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            c->cur++;
            c->after_sync = true;
            if (c->cur == c->nitems) {
                pipeline_done(c);
                if (c->pool->closing)
                    return false;
            }
            continue;
        }
        c->got = true;
        record(c, it, r);
    }
    return true;
}

/* ---- notifications ---------------------------------------------------------------------- */

/* Sends LISTEN for every listener not yet subscribed on this connection (one query at a time). */
static void send_listens(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    if (c->state != C_READY || c->listening)
        return;
    hk_buf q = HK_BUF_INIT;
    for (struct listener *l = p->listeners; l != NULL; l = l->next) {
        if (l->subscribed)
            continue;
        hk_buf_printf(&q, "LISTEN \"%s\";", l->channel);
        l->sent = true;
    }
    if (q.len > 0) {
        c->listening = true;
        if (PQsendQuery(c->pg, hk_buf_cstr(&q)) != 1 || flush(c) != 0)
            conn_lost(c, PQerrorMessage(c->pg), false);
    }
    hk_buf_free(&q);
}

/* Reads the LISTEN query's results and hands notifications out; false when the connection broke. */
static bool read_notifications(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    while (c->listening && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r != NULL) {
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                char msg[256];
                hk__pg_one_line(msg, sizeof(msg), PQresultErrorMessage(r));
                hk_warn("postgres: LISTEN failed: %s", msg);
            }
            PQclear(r);
            continue;
        }
        /* The LISTEN query is done: those it named are subscribed, and told so. */
        c->listening = false;
        for (struct listener *l = p->listeners; l != NULL; l = l->next) {
            if (!l->sent)
                continue;
            l->sent = false;
            l->subscribed = true;
            l->fn(l->channel, NULL, l->arg);
            if (p->closing || c->pg == NULL)
                return false;
        }
        send_listens(c);
    }
    PGnotify *n;
    while (c->pg != NULL && (n = PQnotifies(c->pg)) != NULL) {
        for (struct listener *l = p->listeners; l != NULL; l = l->next) {
            if (!l->subscribed || strcmp(l->channel, n->relname) != 0)
                continue;
            p->counters.notifications++;
            l->fn(l->channel, n->extra != NULL ? n->extra : "", l->arg);
            if (p->closing)
                break;
        }
        PQfreemem(n);
        if (p->closing)
            return false;
    }
    return c->pg != NULL;
}

void hk__pg_conn_ready(struct pg_conn *c)
{
    hk_pg_pool *p = c->pool;
    if (c->listener) {
        hk_debug("postgres: notification connection up");
        for (struct listener *l = p->listeners; l != NULL; l = l->next)
            l->subscribed = l->sent = false;
        send_listens(c);
        return;
    }
    p->up++;
    if (p->was_down) {
        hk_info("postgres: connected again");
        p->was_down = false;
    }
    pump(p);
}

/* ---- the socket ------------------------------------------------------------------------------ */

void hk__pg_on_poll(uv_poll_t *h, int status, int events)
{
    struct pg_conn *c = h->data;
    hk_pg_pool *p = c->pool;
    if (p->closing || c->pg == NULL)
        return;
    /* An error on the socket (POLLERR) stops the handle: libuv reports it as UV_EBADF. */
    if (status < 0)
        c->events = 0;
    if (c->state == C_CONNECTING) {
        hk__pg_connect_step(c); /* PQconnectPoll reads the socket's error, or asks to wait again */
        return;
    }
    bool was_up = !c->listener;
    /* Input first: a server blocked on writing to us would never read what we flush. */
    if ((status < 0 || (events & UV_READABLE)) && PQconsumeInput(c->pg) != 1) {
        conn_lost(c, PQerrorMessage(c->pg), was_up);
        return;
    }
    if (status < 0) {
        /* A connected socket with an error (reset, broken pipe) carries nothing more. */
        conn_lost(c, PQstatus(c->pg) == CONNECTION_BAD ? PQerrorMessage(c->pg) : uv_strerror(status), was_up);
        return;
    }
    if (c->want_write && flush(c) != 0) {
        conn_lost(c, PQerrorMessage(c->pg), was_up);
        return;
    }
    bool ok = c->listener ? read_notifications(c) : read_results(c);
    if (!ok || p->closing || c->pg == NULL)
        return;
    if (PQstatus(c->pg) == CONNECTION_BAD)
        conn_lost(c, PQerrorMessage(c->pg), was_up);
    /* Reading may have queued output (a ROLLBACK, the next batch): those paths flush it. */
}

/* ---- the pool ------------------------------------------------------------------------------ */

/* False when an idle connection turns out to be closed by the server. */
static bool probe(struct pg_conn *c)
{
    for (int i = 0; i < 3; i++)
        if (PQconsumeInput(c->pg) != 1 || PQstatus(c->pg) == CONNECTION_BAD)
            return false;
    return true;
}

static void pump(hk_pg_pool *p)
{
    for (size_t i = 0; i < p->nconns && p->qhead != NULL && !p->closing; i++) {
        struct pg_conn *c = &p->conns[i];
        if (c->state != C_READY)
            continue;
        /* A session the server has closed (a restart) may not have been read yet: read what is in
         * (libpq reads once per call: the server's goodbye, then the end of the stream), so that the
         * batch is not sent into it and lost with an unknown outcome. */
        if (!probe(c)) {
            conn_lost(c, PQerrorMessage(c->pg), true);
            continue;
        }
        hk_pg_batch *b = p->qhead;
        p->qhead = b->next;
        if (p->qhead == NULL)
            p->qtail = NULL;
        p->queued--;
        b->next = NULL;
        send_pipeline(c, b);
    }
    if (p->qhead == NULL)
        uv_timer_stop(&p->qtimer);
}

void hk_pg_submit(hk_pg_pool *p, hk_pg_batch *b)
{
    batch_reset(b);
    b->queued_ms = uv_now(p->loop);
    if (p->closing) {
        /* Submitted from a callback during the close: ended when the queue timer's close completes. */
        b->next = p->cancelled;
        p->cancelled = b;
        return;
    }
    if (p->qtail != NULL)
        p->qtail->next = b;
    else
        p->qhead = b;
    p->qtail = b;
    p->queued++;
    /* Sent on the loop's next turn (a timer of 0 runs then), so done never runs from here. */
    uv_timer_start(&p->qtimer, on_qtimer, 0, QUEUE_CHECK_MS);
}

int hk_pg_pool_open(hk_pg_pool **out, uv_loop_t *loop, const hk_pg_pool_opts *o)
{
    *out = NULL;
    if (o == NULL || o->conninfo == NULL || o->size > HK_PG_POOL_MAX)
        return HK_EINVAL;
    hk_pg_pool *p = hk_calloc(1, sizeof(*p));
    p->loop = loop;
    p->conninfo = hk_strdup(o->conninfo);
    p->o = *o;
    p->o.conninfo = p->conninfo;
    p->o.size = o->size != 0 ? o->size : DEF_SIZE;
    p->o.connect_timeout_ms = def(o->connect_timeout_ms, DEF_CONNECT_TIMEOUT_MS);
    p->o.retry_min_ms = def(o->retry_min_ms, DEF_RETRY_MIN_MS);
    p->o.retry_max_ms = def(o->retry_max_ms, DEF_RETRY_MAX_MS);
    if (p->o.retry_max_ms < p->o.retry_min_ms)
        p->o.retry_max_ms = p->o.retry_min_ms;
    p->o.queue_timeout_ms = def(o->queue_timeout_ms, DEF_QUEUE_TIMEOUT_MS);
    int rc = hk__pg_parse_hosts(p);
    if (rc == 0 && p->resolve && o->resolver == NULL) {
        if ((rc = hk_resolver_create(&p->resolver, loop, NULL)) == 0)
            p->own_resolver = true;
    } else {
        p->resolver = o->resolver;
    }
    if (rc != 0) {
        for (size_t i = 0; i < p->nhosts; i++)
            free(p->host_list[i]);
        free(p->host_list);
        free(p->port_spec);
        free(p->conninfo);
        free(p);
        return rc;
    }
    uv_timer_init(loop, &p->qtimer);
    p->qtimer.data = p;
    p->nconns = p->o.size;
    for (size_t i = 0; i < p->nconns; i++) {
        hk__pg_conn_init(p, &p->conns[i], false);
        hk__pg_conn_start(&p->conns[i]);
    }
    *out = p;
    return 0;
}

static void close_conn(hk_pg_pool *p, struct pg_conn *c)
{
    hk_pg_batch *b = c->batch;
    c->batch = NULL;
    free(c->items);
    c->items = NULL;
    if (c->req != NULL) {
        hk_resolve_cancel(c->req);
        c->req = NULL;
    }
    hk__pg_unwatch(c);
    PQfinish(c->pg);
    c->pg = NULL;
    hk_buf_free(&c->hosts);
    hk_buf_free(&c->addrs);
    hk_buf_free(&c->ports);
    p->pending++;
    c->timer.data = p;
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (b != NULL) {
        snprintf(b->err, sizeof(b->err), "the pool was closed with the batch in flight");
        batch_end(p, b, UV_ECANCELED);
    }
}

static void on_resolver_closed(void *arg)
{
    hk__pg_pending_done(arg);
}

static void on_qtimer_closed(uv_handle_t *h)
{
    hk_pg_pool *p = h->data;
    while (p->cancelled != NULL) {
        hk_pg_batch *b = p->cancelled;
        p->cancelled = b->next;
        snprintf(b->err, sizeof(b->err), "the pool was closed");
        batch_end(p, b, UV_ECANCELED);
    }
    hk__pg_pending_done(p);
}

void hk_pg_pool_close(hk_pg_pool *p, void (*closed)(void *arg), void *arg)
{
    if (p == NULL || p->closing)
        return;
    p->closing = true;
    p->closed = closed;
    p->closed_arg = arg;
    for (size_t i = 0; i < p->nconns; i++)
        close_conn(p, &p->conns[i]);
    if (p->have_lconn)
        close_conn(p, &p->lconn);
    fail_queued(p, true, UV_ECANCELED);
    while (p->listeners != NULL) {
        struct listener *l = p->listeners;
        p->listeners = l->next;
        free(l);
    }
    p->pending++;
    uv_close((uv_handle_t *)&p->qtimer, on_qtimer_closed);
    if (p->own_resolver) {
        p->pending++;
        hk_resolver_close(p->resolver, on_resolver_closed, p);
    }
}

bool hk_pg_pool_up(const hk_pg_pool *p)
{
    return p->up > 0;
}

void hk_pg_pool_get_counters(const hk_pg_pool *p, hk_pg_pool_counters *out)
{
    *out = p->counters;
    out->up = p->up;
    out->queued = p->queued;
}

int hk_pg_listen(hk_pg_pool *p, const char *channel, hk_pg_notify_cb fn, void *arg)
{
    size_t n = strlen(channel);
    if (p->closing)
        return HK_ESHUTDOWN;
    if (n == 0 || n > CHANNEL_MAX || strspn(channel, "abcdefghijklmnopqrstuvwxyz0123456789_") != n || fn == NULL)
        return HK_EINVAL;
    struct listener *l = hk_calloc(1, sizeof(*l));
    memcpy(l->channel, channel, n + 1);
    l->fn = fn;
    l->arg = arg;
    /* At the end, so that listeners are told in the order they came. */
    struct listener **tail = &p->listeners;
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = l;
    if (!p->have_lconn) {
        p->have_lconn = true;
        hk__pg_conn_init(p, &p->lconn, true);
        hk__pg_conn_start(&p->lconn);
    } else {
        send_listens(&p->lconn);
    }
    return 0;
}
