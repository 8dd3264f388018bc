/*
 * api_log.c: the attempt log in the EnergyCAP dialect.
 *   GET  /api/v3/webhook/{webhookId}/log?pageSize=&pageNumber=&filter=
 *   GET  /api/v3/webhook/{webhookId}/log/{webhookLogId}/detail
 *   POST /api/v3/webhook/{webhookId}/log/{webhookLogId}/resend  (hookd's addition)
 *
 * Pages are newest first. filter= is the EnergyCAP filter grammar
 * (filter.h) over the fields result (the HTTP status, 0 when no response
 * came) and logDate (when the attempt started; a date stands for the span
 * its precision names, so `logDate equals 2026-11-22` is every attempt of
 * that day).
 *
 * Everything here reads typed records through store.h; a record that
 * keeps no request (a successful delivery's) shows it rendered again from
 * its event (hk_attempt_request). A resend goes to the engine, which
 * queues the event again.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "delivery.h"
#include "engine.h"
#include "filter.h"
#include "store.h"

#define PAGE_SIZE_DEFAULT 100
#define PAGE_SIZE_MAX 1000
#define USER_CACHE 8 /* users remembered while rendering one page */

/* Users looked up while rendering a page, so that each is read once. */
struct users {
    hk_store *store;
    size_t n;
    hk_user u[USER_CACHE];
    bool found[USER_CACHE];
    int err; /* the first read error (not "no such user"): the answer is a store error */
};

/* The "user" child of a record: {fullName, userCode, userId}, or null when unknown. */
static json_t *user_child(struct users *c, uint32_t uid)
{
    if (uid == 0)
        return json_null();
    size_t i;
    for (i = 0; i < c->n; i++)
        if (c->u[i].id == uid)
            break;
    if (i == c->n) {
        /* A full cache forgets its oldest entry. */
        if (c->n == USER_CACHE) {
            memmove(&c->u[0], &c->u[1], sizeof(c->u[0]) * (USER_CACHE - 1));
            memmove(&c->found[0], &c->found[1], sizeof(c->found[0]) * (USER_CACHE - 1));
            c->n--;
        }
        i = c->n++;
        int rc = hk_store_user_get(c->store, uid, &c->u[i]);
        if (rc != 0 && rc != HK_ENOTFOUND && c->err == 0)
            c->err = rc;
        c->found[i] = rc == 0;
        c->u[i].id = uid;
    }
    if (!c->found[i])
        return json_null();
    const hk_user *u = &c->u[i];
    return json_pack("{s:s, s:s, s:I}", "fullName", u->full_name, "userCode", u->code, "userId", (json_int_t)u->id);
}

/* "200", or "0" when no response came: the result as the dialect writes it. */
static json_t *result_text(const hk_attempt *a)
{
    char buf[16];
    snprintf(buf, sizeof(buf), "%d", a->status);
    return json_string(buf);
}

/* A WebhookLogResponse. The stored texts are valid UTF-8 (the store's codec makes them so). */
static json_t *log_item(struct users *users, const hk_attempt *a)
{
    char date[40];
    hk_fmt_date_iso(a->started_ms, date, sizeof(date));
    return json_pack("{s:I, s:I, s:s, s:s, s:I, s:s, s:o, s:s, s:I, s:s, s:b, s:o}", "webhookLogId", (json_int_t)a->id,
                     "webhookId", (json_int_t)a->webhook_id, "eventId", a->event_uuid ? a->event_uuid : "", "eventName",
                     a->event_name ? a->event_name : "", "attempt", (json_int_t)a->attempt, "logDate", date, "result",
                     result_text(a), "url", a->url ? a->url : "", "durationMs", (json_int_t)a->duration_ms, "error",
                     a->error ? a->error : "", "exhausted", a->exhausted, "user", user_child(users, a->user_id));
}

/* The {webhookId} of the path, when it names a stored webhook; otherwise answers (404 or a store error). */
static int load_webhook(hk_ctx *ctx, uint32_t *wid)
{
    uint64_t id;
    hk_webhook w = {0};
    int rc = hk_param_id(ctx, "webhookId", UINT32_MAX, &id);
    if (rc == 0)
        rc = hk_store_webhook_get(ctx->app->db, (uint32_t)id, &w);
    hk_webhook_free(&w);
    if (rc == HK_EINVAL || rc == HK_ENOTFOUND)
        hk_respond_error(ctx, 404, "webhook %s not found", hk_route_param(&ctx->params, "webhookId"));
    else if (rc != 0)
        hk_respond_store_error(ctx, rc);
    else
        *wid = (uint32_t)id;
    return rc;
}

/* ---- the list ------------------------------------------------------------------ */

#define WALK_PAGE 1000 /* brief records read per request of the walk */

/*
 * A walk of the webhook's log, newest first, a page of records per read:
 * every record is matched (the answer counts them all), the page asked
 * for is kept. A read the embedded engine answers at once continues in the
 * loop of walk_run; one the cluster's database answers later continues
 * from its done.
 */
struct walk {
    hk_ctx *ctx;
    hk_filter *filter;
    long size, number;
    size_t skip;  /* records before the page */
    size_t total; /* matching records seen */
    json_t *items;
    struct users users;
    hk_store_attempts_req r;
    bool in_call, step_done, more;
    int status;
};

static void walk_finish(struct walk *w)
{
    hk_ctx *ctx = w->ctx;
    int rc = w->status != 0 ? w->status : w->users.err;
    if (rc < 0) {
        json_decref(w->items);
        hk_respond_store_error(ctx, rc);
    } else {
        char headers[256];
        size_t size = (size_t)w->size, pages = w->total == 0 ? 0 : (w->total + size - 1) / size;
        snprintf(headers, sizeof(headers),
                 "PageNumber: %ld\r\nPageSize: %ld\r\nTotalNumberOfRecords: %zu\r\nTotalPages: %zu\r\n", w->number,
                 w->size, w->total, pages);
        hk_respond_json_headers(ctx, 200, headers, w->items);
    }
    hk_filter_free(w->filter);
    free(w);
}

static void walk_run(struct walk *w);

static void walk_done(hk_store_attempts_req *r, int status)
{
    struct walk *w = hk_container_of(r, struct walk, r);
    size_t size = (size_t)w->size;
    for (size_t i = 0; i < r->nitems && status == 0; i++) {
        const hk_attempt *a = &r->items[i];
        if (!hk_filter_match(w->filter, a))
            continue;
        if (w->total >= w->skip && w->total - w->skip < size)
            json_array_append_new(w->items, log_item(&w->users, a));
        w->total++;
    }
    w->status = status;
    w->more = status == 0 && r->nitems == WALK_PAGE && r->items[r->nitems - 1].id > 1;
    if (w->more)
        r->from_id = r->items[r->nitems - 1].id - 1;
    hk_store_attempts_req_free(r);
    w->step_done = true;
    if (!w->in_call) {
        if (!w->more) {
            walk_finish(w);
            return;
        }
        walk_run(w);
    }
}

static void walk_run(struct walk *w)
{
    for (;;) {
        w->step_done = false;
        w->in_call = true;
        hk_store_attempts_read(w->ctx->app->db, &w->r);
        w->in_call = false;
        if (!w->step_done)
            return; /* walk_done goes on */
        if (!w->more) {
            walk_finish(w);
            return;
        }
    }
}

static void log_list(hk_ctx *ctx)
{
    long size, number;
    if (hk_query_long(ctx, "pageSize", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX, &size) != 0 ||
        hk_query_long(ctx, "pageNumber", 1, 1, LONG_MAX, &number) != 0) {
        hk_respond_error(ctx, 400, "pageSize must be 1..%d and pageNumber at least 1", PAGE_SIZE_MAX);
        return;
    }
    hk_filter *f = NULL;
    char err[HK_FILTER_ERR_MAX];
    char *ftext = hk_query_get(ctx, "filter");
    int rc = ftext ? hk_filter_parse(ftext, hk_filter_attempt_fields, &f, err) : 0;
    free(ftext);
    if (rc != 0) {
        hk_respond_field_error(ctx, 400, "filter", "%s", err);
        return;
    }
    uint32_t wid;
    if (load_webhook(ctx, &wid) != 0) {
        hk_filter_free(f);
        return;
    }
    struct walk *w = hk_calloc(1, sizeof(*w));
    w->ctx = ctx;
    w->filter = f;
    w->size = size;
    w->number = number;
    /* A page number past every record is an empty page, not an overflow. */
    w->skip =
        (uint64_t)(number - 1) >= SIZE_MAX / 2 / (size_t)size ? SIZE_MAX / 2 : (size_t)(number - 1) * (size_t)size;
    w->items = json_array();
    w->users.store = ctx->app->db;
    w->r.webhook_id = wid;
    w->r.newest_first = true;
    w->r.brief = true;
    w->r.max = WALK_PAGE;
    w->r.done = walk_done;
    walk_run(w);
}

/* ---- one record ---------------------------------------------------------------- */

/* What to do with the record the path names, once read. */
struct record {
    hk_ctx *ctx;
    hk_store_attempts_req r;
    void (*then)(hk_ctx *ctx, hk_attempt *a); /* a is the handler's to free */
};

static void record_read(hk_store_attempts_req *r, int rc)
{
    struct record *x = hk_container_of(r, struct record, r);
    hk_ctx *ctx = x->ctx;
    if (rc == HK_ENOTFOUND)
        hk_respond_error(ctx, 404, "log record %s of webhook %u not found",
                         hk_route_param(&ctx->params, "webhookLogId"), r->webhook_id);
    else if (rc != 0)
        hk_respond_store_error(ctx, rc);
    if (rc == 0) {
        hk_attempt a = r->items[0];
        r->nitems = 0; /* moved to a */
        x->then(ctx, &a);
    }
    hk_store_attempts_req_free(r);
    free(x);
}

/* Reads the record the path names and passes it to then; otherwise answers. */
static void load_record(hk_ctx *ctx, void (*then)(hk_ctx *ctx, hk_attempt *a))
{
    uint32_t wid;
    if (load_webhook(ctx, &wid) != 0)
        return;
    uint64_t lid;
    if (hk_param_id(ctx, "webhookLogId", UINT64_MAX, &lid) != 0) {
        hk_respond_error(ctx, 404, "log record %s of webhook %u not found",
                         hk_route_param(&ctx->params, "webhookLogId"), wid);
        return;
    }
    struct record *x = hk_calloc(1, sizeof(*x));
    x->ctx = ctx;
    x->then = then;
    x->r.webhook_id = wid;
    x->r.from_id = lid;
    x->r.exact = true;
    x->r.done = record_read;
    hk_store_attempts_read(ctx->app->db, &x->r);
}

static void detail_answer(hk_ctx *ctx, hk_attempt *a)
{
    /* A lean record's request is rendered again from its event (the
     * embedded engine only: the cluster's records keep their request). */
    char *request;
    size_t request_len;
    int rc = hk_attempt_request(ctx->app->db, a, &request, &request_len);
    if (rc == HK_ENOTFOUND) {
        request = hk_strdup(""); /* the event is gone (retention keeps it longer than its records) */
        request_len = 0;
    } else if (rc != 0) {
        hk_attempt_free(a);
        hk_respond_store_error(ctx, rc);
        return;
    }
    struct users users = {.store = ctx->app->db};
    json_t *out = json_pack("{s:s%, s:s%, s:o, s:s, s:o}", "request", request, request_len, "response",
                            a->response ? a->response : "", a->response_len, "result", result_text(a), "url",
                            a->url ? a->url : "", "user", user_child(&users, a->user_id));
    free(request);
    hk_attempt_free(a);
    if (users.err != 0) {
        json_decref(out);
        hk_respond_store_error(ctx, users.err);
        return;
    }
    hk_respond_json(ctx, 200, out);
}

static void log_detail(hk_ctx *ctx)
{
    load_record(ctx, detail_answer);
}

/* ---- resend --------------------------------------------------------------------- */

struct resend {
    hk_ctx *ctx;
    uint64_t log_id;
    char event_uuid[HK_EVENT_UUID_LEN];
};

static void resend_done(uint32_t wid, uint64_t eid, int status, void *arg)
{
    struct resend *r = arg;
    hk_ctx *ctx = r->ctx;
    HK_UNUSED(eid);
    hk_api_note_commit(ctx->app, status);
    if (status == HK_ENOTFOUND)
        hk_respond_error(ctx, 404, "the event of that record is no longer stored");
    else if (status != 0)
        hk_respond_store_error(ctx, status);
    else
        hk_respond_json(ctx, 202,
                        json_pack("{s:I, s:I, s:s}", "webhookId", (json_int_t)wid, "webhookLogId",
                                  (json_int_t)r->log_id, "eventId", r->event_uuid));
    free(r);
}

static void resend_record(hk_ctx *ctx, hk_attempt *ap)
{
    hk_attempt a = *ap;
    if (a.sync || a.event_id == 0) {
        /* Synchronous calls (Execute, custom actions) store no event to queue. */
        hk_respond_error(ctx, 400, "log record %llu is of a synchronous call, which cannot be resent",
                         (unsigned long long)a.id);
        hk_attempt_free(&a);
        return;
    }
    if (ctx->app->engine == NULL) {
        hk_attempt_free(&a);
        hk_respond_error(ctx, 503, "server is shutting down");
        return;
    }
    struct resend *r = hk_calloc(1, sizeof(*r));
    r->ctx = ctx;
    r->log_id = a.id;
    snprintf(r->event_uuid, sizeof(r->event_uuid), "%s", a.event_uuid ? a.event_uuid : "");
    uint32_t wid = a.webhook_id;
    uint64_t eid = a.event_id;
    hk_attempt_free(&a);
    hk_engine_resend(ctx->app->engine, wid, eid, resend_done, r);
}

static void log_resend(hk_ctx *ctx)
{
    load_record(ctx, resend_record);
}

const hk_api_route hk_log_routes[] = {
    {"GET", "/api/v3/webhook/{webhookId}/log", log_list, HK_PERM_VIEW},
    {"GET", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/detail", log_detail, HK_PERM_VIEW},
    {"POST", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/resend", log_resend, HK_PERM_MANAGE},
};
const size_t hk_log_routes_count = HK_ARRAY_SIZE(hk_log_routes);
