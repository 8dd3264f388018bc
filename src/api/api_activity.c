/*
 * api_activity.c: GET /console/api/activity[?webhookId=N], the console's
 * view of what is happening (needs ApplicationSettings:View):
 *
 *   minutes   the last hour's attempts of queued deliveries per minute by
 *             outcome (delivered, retrying, failed), oldest first, of every
 *             webhook or of webhook N, counted in memory by this node since
 *             it started (activity.h)
 *   backlog   the pending queue now: of every webhook its size, how much of
 *             it is due and parked (as the metrics count them), of webhook N
 *             its size and how much is due
 *   webhooks  each webhook's health (state, locked, success rate, attempts,
 *             consecutive failures, pending, last error), in id order: every
 *             webhook up to ROWS_MAX, or webhook N
 *
 * The counters live in the app's hk_activity (hk_api_env.activity); every
 * figure comes from the store's typed queries (the queue's asynchronously,
 * as the cluster's database answers them).
 */
#include <stdio.h>
#include <string.h>

#include "activity.h"
#include "api.h"
#include "api_console.h"
#include "registry.h"

/* Webhooks listed at most; more sets "truncated" (each costs a walk of its pending entries). */
#define ROWS_MAX 1000
/* Entries the backlog's due and parked counts walk at most, as the metrics do. */
#define BACKLOG_WALK_MAX 100000
/* Queue entries the webhooks' pending counts walk at most in all (on the
 * loop), and at least per webhook once that is spent; a count that stops
 * there is a lower bound ("pendingCapped"). */
#define ROWS_WALK_MAX 100000
#define ROW_WALK_MIN 100

static const char *const outcome_names[HK_ACTIVITY_OUTCOMES] = {"delivered", "retrying", "failed"};

struct row {
    uint32_t id;
    enum hk_webhook_state state;
    bool locked;
    hk_webhook_stats st;
};

struct rows {
    uint32_t only; /* 0: every webhook */
    struct row *v;
    size_t n, cap;
    bool truncated;
};

static int collect(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct rows *r = arg;
    if (r->only != 0 && w->id != r->only)
        return 1; /* the walk started at it: it is not there */
    if (r->n == ROWS_MAX) {
        r->truncated = true;
        return 1;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->v = hk_realloc(r->v, r->cap * sizeof(r->v[0]));
    }
    r->v[r->n++] = (struct row){.id = w->id, .state = w->state, .locked = w->locked, .st = *st};
    return r->only != 0;
}

static json_t *date_or_null(uint64_t ms)
{
    char d[40];
    if (ms == 0)
        return json_null();
    hk_fmt_date_iso(ms, d, sizeof(d));
    return json_string(d);
}

/* One webhook's health, with its pending entries as counted now. */
static json_t *row_json(const struct row *w, const hk_queue_summary *q)
{
    /* A stored error text is valid UTF-8 (the store's codec makes it so); json_pack fails only without memory. */
    return json_pack("{s:I, s:s, s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:b, s:s, s:o}", "webhookId", (json_int_t)w->id,
                     "state", hk_webhook_state_name(w->state), "locked", w->locked, "successRate",
                     hk_webhook_success_rate(&w->st), "attempts", (json_int_t)w->st.calls, "failedAttempts",
                     (json_int_t)w->st.errors, "consecutiveFailures", (json_int_t)w->st.consecutive, "pending",
                     (json_int_t)q->pending, "due", (json_int_t)q->due, "pendingCapped", q->capped, "lastError",
                     w->st.last_error, "lastErrorDate", date_or_null(w->st.last_error_ms));
}

static json_t *minutes_json(const hk_activity *a, uint32_t only, uint64_t now)
{
    hk_activity_minute m[HK_ACTIVITY_MINUTES];
    hk_activity_series(a, only, now, m);
    json_t *list = json_array();
    for (size_t i = 0; i < HK_ACTIVITY_MINUTES; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "start", date_or_null(m[i].start_ms));
        for (size_t k = 0; k < HK_ACTIVITY_OUTCOMES; k++)
            json_object_set_new(o, outcome_names[k], json_integer(m[i].count[k]));
        json_array_append_new(list, o);
    }
    return list;
}

/*
 * The answer is built from one queue read per webhook listed, then one for
 * the backlog, in turn (asynchronous reads: the cluster's database answers
 * later, the embedded engine at once, which act_run's loop goes on from).
 */
struct act {
    hk_ctx *ctx;
    struct rows rows;
    char *wid;
    uint64_t now;
    json_t *list, *backlog;
    size_t i; /* the read in flight: row i, or the backlog when i == rows.n; past it: done */
    hk_store_queue_req q;
    uint64_t walk_left; /* of ROWS_WALK_MAX */
    bool in_call, step_done;
    int rc;
};

static void act_finish(struct act *x)
{
    hk_ctx *ctx = x->ctx;
    if (x->rc != 0) {
        hk_respond_store_error(ctx, x->rc);
    } else {
        hk_activity *a = ctx->app->activity;
        hk_activity *none = a == NULL ? hk_activity_new() : NULL;
        json_t *out =
            json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:I}", "now", date_or_null(x->now), "webhookId",
                      x->rows.only ? json_integer(x->rows.only) : json_null(), "minutes",
                      minutes_json(a ? a : none, x->rows.only, x->now), "backlog", x->backlog, "webhooks", x->list,
                      "truncated", x->rows.truncated, "untracked", (json_int_t)hk_activity_untracked(a ? a : none));
        hk_activity_free(none);
        x->backlog = x->list = NULL;
        hk_respond_json_headers(ctx, 200, hk_console_headers, out);
    }
    json_decref(x->backlog);
    json_decref(x->list);
    free(x->rows.v);
    free(x->wid);
    free(x);
}

static void act_run(struct act *x);

static void act_read(hk_store_queue_req *q, int rc)
{
    struct act *x = hk_container_of(q, struct act, q);
    const hk_queue_summary *s = &q->sum;
    x->rc = rc;
    if (rc == 0 && x->i < x->rows.n) {
        json_t *row = row_json(&x->rows.v[x->i], s);
        x->walk_left -= s->pending < x->walk_left ? s->pending : x->walk_left;
        if (row != NULL)
            json_array_append_new(x->list, row);
        else
            x->rc = HK_EINVAL;
    } else if (rc == 0 && x->rows.only != 0) {
        x->backlog = json_pack("{s:I, s:I, s:b}", "pending", (json_int_t)s->pending, "due", (json_int_t)s->due,
                               "capped", s->capped);
    } else if (rc == 0) {
        x->backlog = json_pack("{s:I, s:I, s:I, s:b, s:o}", "pending", (json_int_t)s->pending, "due",
                               (json_int_t)s->due, "parked", (json_int_t)s->parked, "capped", s->capped,
                               "oldestPending", date_or_null(s->oldest_ms));
    }
    x->i++;
    x->step_done = true;
    if (!x->in_call)
        act_run(x);
}

static void act_run(struct act *x)
{
    for (;;) {
        if (x->rc != 0 || x->i > x->rows.n) {
            act_finish(x);
            return;
        }
        bool row = x->i < x->rows.n;
        x->q = (hk_store_queue_req){.now_ms = x->now,
                                    .webhook_id = row ? x->rows.v[x->i].id : x->rows.only,
                                    .max = !row                          ? BACKLOG_WALK_MAX
                                           : x->walk_left > ROW_WALK_MIN ? x->walk_left
                                                                         : ROW_WALK_MIN,
                                    .done = act_read};
        x->step_done = false;
        x->in_call = true;
        hk_store_queue_read(x->ctx->app->db, &x->q);
        x->in_call = false;
        if (!x->step_done)
            return; /* act_read goes on */
    }
}

static void activity(hk_ctx *ctx)
{
    hk_store *db = ctx->app->db;
    struct act *x = hk_calloc(1, sizeof(*x));
    x->ctx = ctx;
    x->walk_left = ROWS_WALK_MAX;
    x->wid = hk_query_get(ctx, "webhookId");
    if (x->wid != NULL && !hk_reg_parse_id(x->wid, &x->rows.only)) {
        hk_respond_field_error(ctx, 400, "webhookId", "webhookId must be a webhook id (1..2147483647)");
        goto fail;
    }
    int rc = hk_store_webhooks_each(db, x->rows.only, collect, &x->rows);
    if (rc < 0) {
        hk_respond_store_error(ctx, rc);
        goto fail;
    }
    if (x->rows.only != 0 && x->rows.n == 0) {
        hk_respond_field_error(ctx, 404, "webhookId", "no webhook %s", x->wid);
        goto fail;
    }
    x->now = hk_now_ms();
    x->list = json_array();
    act_run(x);
    return;
fail:
    free(x->rows.v);
    free(x->wid);
    free(x);
}

static const hk_api_route activity_routes[] = {
    {"GET", "/console/api/activity", activity, HK_PERM_VIEW},
};

void hk_api_activity_routes(hk_router *r)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(activity_routes); i++)
        hk_router_add(r, activity_routes[i].method, activity_routes[i].pattern, 0, &activity_routes[i]);
}
