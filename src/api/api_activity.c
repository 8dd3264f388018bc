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
 * figure comes from the store's typed queries.
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

/* One webhook's health; its pending entries are counted now. */
static int row_json(hk_store *db, const struct row *w, uint64_t now, json_t **out)
{
    uint64_t pending, due;
    int rc = hk_store_pending(db, w->id, now, &pending, &due);
    if (rc != 0)
        return rc;
    *out =
        json_pack("{s:I, s:s, s:b, s:f, s:I, s:I, s:I, s:I, s:I, s:s, s:o}", "webhookId", (json_int_t)w->id, "state",
                  hk_webhook_state_name(w->state), "locked", w->locked, "successRate", hk_webhook_success_rate(&w->st),
                  "attempts", (json_int_t)w->st.calls, "failedAttempts", (json_int_t)w->st.errors,
                  "consecutiveFailures", (json_int_t)w->st.consecutive, "pending", (json_int_t)pending, "due",
                  (json_int_t)due, "lastError", w->st.last_error, "lastErrorDate", date_or_null(w->st.last_error_ms));
    /* A stored error text is valid UTF-8 (the store's codec makes it so); json_pack fails only without memory. */
    return *out != NULL ? 0 : HK_EINVAL;
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

static int backlog_json(hk_store *db, uint32_t only, uint64_t now, json_t **out)
{
    if (only != 0) {
        uint64_t pending, due;
        int rc = hk_store_pending(db, only, now, &pending, &due);
        if (rc == 0)
            *out = json_pack("{s:I, s:I}", "pending", (json_int_t)pending, "due", (json_int_t)due);
        return rc;
    }
    hk_queue_summary q;
    int rc = hk_store_queue_summary(db, now, BACKLOG_WALK_MAX, &q);
    if (rc == 0)
        *out =
            json_pack("{s:I, s:I, s:I, s:b, s:o}", "pending", (json_int_t)q.pending, "due", (json_int_t)q.due, "parked",
                      (json_int_t)q.parked, "capped", q.capped, "oldestPending", date_or_null(q.oldest_ms));
    return rc;
}

static void activity(hk_ctx *ctx)
{
    hk_store *db = ctx->app->db;
    struct rows rows = {0};
    json_t *out = NULL, *list = NULL, *backlog = NULL;
    char *wid = hk_query_get(ctx, "webhookId");
    if (wid != NULL && !hk_reg_parse_id(wid, &rows.only)) {
        hk_respond_field_error(ctx, 400, "webhookId", "webhookId must be a webhook id (1..2147483647)");
        goto done;
    }
    int rc = hk_store_webhooks_each(db, rows.only, collect, &rows);
    if (rc < 0) {
        hk_respond_store_error(ctx, rc);
        goto done;
    }
    rc = 0; /* collect() ends the walk with 1 */
    if (rows.only != 0 && rows.n == 0) {
        hk_respond_field_error(ctx, 404, "webhookId", "no webhook %s", wid);
        goto done;
    }
    uint64_t now = hk_now_ms();
    list = json_array();
    for (size_t i = 0; i < rows.n && rc == 0; i++) {
        json_t *row = NULL;
        rc = row_json(db, &rows.v[i], now, &row);
        if (rc == 0)
            json_array_append_new(list, row);
    }
    if (rc == 0)
        rc = backlog_json(db, rows.only, now, &backlog);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        goto done;
    }
    hk_activity *a = ctx->app->activity;
    hk_activity *none = a == NULL ? hk_activity_new() : NULL;
    out = json_pack("{s:o, s:o, s:o, s:o, s:o, s:b, s:I}", "now", date_or_null(now), "webhookId",
                    rows.only ? json_integer(rows.only) : json_null(), "minutes",
                    minutes_json(a ? a : none, rows.only, now), "backlog", backlog, "webhooks", list, "truncated",
                    rows.truncated, "untracked", (json_int_t)hk_activity_untracked(a ? a : none));
    hk_activity_free(none);
    backlog = list = NULL;
    hk_respond_json_headers(ctx, 200, hk_console_headers, out);
done:
    json_decref(backlog);
    json_decref(list);
    free(rows.v);
    free(wid);
}

static const hk_api_route activity_routes[] = {
    {"GET", "/console/api/activity", activity, HK_PERM_VIEW},
};

void hk_api_activity_routes(hk_router *r)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(activity_routes); i++)
        hk_router_add(r, activity_routes[i].method, activity_routes[i].pattern, 0, &activity_routes[i]);
}
