/*
 * api_recover.c: recovery after an outage (hookd's addition).
 *   POST /api/v3/webhook/{webhookId}/recover  {since, until}  (EnergyCAP)
 *   POST /api/v3/webhook/recover              {since, until}  every webhook
 *   POST /api/v1/Webhook/{id}/Recover         {Since, Until}  (SuperOffice)
 *
 * Queues again, once each, every event whose delivery to the webhook ended
 * failed in the window and has not succeeded since (HK_OP_RECOVER in
 * store.h says exactly which), and answers 202 with how many, once every
 * step of the recovery is committed. since is required; until defaults to
 * now (a later one is taken as now); both are dates the dialects read
 * (ISO 8601, the dialect's own format, an HTTP date). The window must
 * start within what the attempt log keeps ([delivery] log_retention).
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "date.h"
#include "engine.h"
#include "registry.h"

struct recover {
    hk_ctx *ctx;
    uint64_t since, until;
};

static void fmt_date(const hk_ctx *ctx, uint64_t ms, char *buf, size_t len)
{
    if (ctx->dialect == HK_DIALECT_SO)
        hk_fmt_date_so(ms, buf, len);
    else
        hk_fmt_date_iso(ms, buf, len);
}

static void recovered(int status, uint64_t n, void *arg)
{
    struct recover *r = arg;
    hk_ctx *ctx = r->ctx;
    hk_api_note_commit(ctx->app, status);
    if (status == HK_ENOTFOUND) {
        hk_respond_error(ctx, 404, "the webhook was deleted during its recovery");
    } else if (status == UV_ENOSYS) {
        /* Cluster mode: the PostgreSQL engine does not apply the recovery op yet. */
        hk_respond_error(ctx, 501, "recovery is not available in cluster mode yet: resend the events one by one");
    } else if (status != 0) {
        hk_respond_store_error(ctx, status);
    } else {
        bool so = ctx->dialect == HK_DIALECT_SO;
        char since[48], until[48];
        fmt_date(ctx, r->since, since, sizeof(since));
        fmt_date(ctx, r->until, until, sizeof(until));
        hk_respond_json(ctx, 202,
                        json_pack("{s:I, s:s, s:s}", so ? "Recovered" : "recovered", (json_int_t)n,
                                  so ? "Since" : "since", since, so ? "Until" : "until", until));
    }
    free(r);
}

/* Reads the date member name of body (NULL or absent: *present false); answers 400 and returns false when bad. */
static bool body_date(hk_ctx *ctx, json_t *body, const char *name, uint64_t *ms, bool *present)
{
    json_t *v = ctx->dialect == HK_DIALECT_SO ? hk_json_member_ci(body, name) : json_object_get(body, name);
    *present = v != NULL && !json_is_null(v);
    if (!*present)
        return true;
    if (!json_is_string(v) || hk_parse_date(json_string_value(v), ms) != 0) {
        hk_respond_field_error(ctx, 400, name, "%s must be a date (ISO 8601, e.g. 2026-11-22T10:00:00Z)", name);
        return false;
    }
    return true;
}

/* The window of the body into r; answers 400 and returns false when it is not a good one. */
static bool window(hk_ctx *ctx, struct recover *r)
{
    bool so = ctx->dialect == HK_DIALECT_SO, has_since, has_until;
    const char *since_name = so ? "Since" : "since", *until_name = so ? "Until" : "until";
    char err[256];
    bool empty = false;
    json_t *body = hk_body_json(ctx, err, sizeof(err), &empty);
    if (body == NULL && !empty) {
        hk_respond_error(ctx, 400, "%s", err);
        return false;
    }
    if (body != NULL && !json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "request body must be a JSON object {%s, %s}", since_name, until_name);
        return false;
    }
    bool ok = body_date(ctx, body, since_name, &r->since, &has_since) &&
              body_date(ctx, body, until_name, &r->until, &has_until);
    json_decref(body);
    if (!ok)
        return false;
    uint64_t now = hk_now_ms(), retention = ctx->app->cfg->log_retention_ms;
    uint64_t oldest = now > retention ? now - retention : 0;
    char date[48];
    if (!has_since) {
        hk_respond_field_error(ctx, 400, since_name, "%s is required: the start of the window to recover", since_name);
        return false;
    }
    if (!has_until || r->until > now)
        r->until = now; /* nothing has been attempted later */
    if (r->since > r->until) {
        hk_respond_field_error(ctx, 400, since_name, "%s must not be after %s", since_name, until_name);
        return false;
    }
    if (r->since < oldest) {
        fmt_date(ctx, oldest, date, sizeof(date));
        hk_respond_field_error(ctx, 400, since_name,
                               "%s is before the oldest attempt records kept ([delivery] log_retention): it must be "
                               "%s or later",
                               since_name, date);
        return false;
    }
    return true;
}

/* Recovers webhook id (0: every webhook) over the body's window. */
static void recover(hk_ctx *ctx, uint32_t id)
{
    struct recover *r = hk_calloc(1, sizeof(*r));
    r->ctx = ctx;
    if (!window(ctx, r)) {
        free(r);
        return;
    }
    if (ctx->app->engine == NULL || ctx->app->draining) {
        free(r);
        hk_respond_error(ctx, 503, "server is shutting down");
        return;
    }
    hk_engine_recover(ctx->app->engine, id, r->since, r->until, recovered, r);
}

/* The webhook the path names; answers 404 (or a store error) and returns false when there is none. */
static bool path_webhook(hk_ctx *ctx, const char *param, uint32_t *id)
{
    const char *s = hk_route_param(&ctx->params, param);
    hk_webhook w = {0};
    int rc = hk_reg_parse_id(s, id) ? hk_store_webhook_get(ctx->app->db, *id, &w) : HK_ENOTFOUND;
    hk_webhook_free(&w);
    if (rc == HK_ENOTFOUND)
        hk_respond_field_error(ctx, 404, param, "no webhook %.40s", s ? s : "");
    else if (rc != 0)
        hk_respond_store_error(ctx, rc);
    return rc == 0;
}

static void recover_ecap(hk_ctx *ctx)
{
    uint32_t id;
    if (path_webhook(ctx, "webhookId", &id))
        recover(ctx, id);
}

static void recover_so(hk_ctx *ctx)
{
    uint32_t id;
    if (path_webhook(ctx, "id", &id))
        recover(ctx, id);
}

static void recover_all(hk_ctx *ctx)
{
    recover(ctx, 0);
}

const hk_api_route hk_recover_routes[] = {
    {"POST", "/api/v3/webhook/{webhookId}/recover", recover_ecap, HK_PERM_MANAGE},
    {"POST", "/api/v3/webhook/recover", recover_all, HK_PERM_MANAGE},
    {"POST", "/api/v1/Webhook/{id}/Recover", recover_so, HK_PERM_MANAGE},
};
const size_t hk_recover_routes_count = HK_ARRAY_SIZE(hk_recover_routes);
