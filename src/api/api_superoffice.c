/*
 * api_superoffice.c: the SuperOffice dialect (/api/v1, PascalCase): the
 * Webhook REST resource and its Agents/Webhook RPC twins. The work is done
 * by the registry (registry.h); this file maps paths, query parameters and
 * bodies to it. Body members are bound in any letter case (hk_json_member_ci).
 * The Agents calls have no HTTP semantics: reading a webhook that does not
 * exist answers 200 null, as the vendor's server does, where REST says 404.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "registry.h"

/* Parses the body; answers 400 and returns NULL when it is missing or malformed (or, with allow_empty, returns
 * an empty object for an empty body). */
static json_t *body_or_fail(hk_ctx *ctx, bool allow_empty)
{
    char err[256];
    bool empty = false;
    json_t *j = hk_body_json(ctx, err, sizeof(err), &empty);
    if (j == NULL && empty && allow_empty)
        return json_object();
    if (j == NULL)
        hk_respond_error(ctx, 400, "%s", err);
    return j;
}

/* The {id} of the path; answers 404 and returns false when it is not a webhook id. */
static bool path_id(hk_ctx *ctx, uint32_t *id)
{
    const char *s = hk_route_param(&ctx->params, "id");
    if (hk_reg_parse_id(s, id))
        return true;
    hk_respond_error(ctx, 404, "no webhook %.40s", s ? s : "");
    return false;
}

static void webhook_list(hk_ctx *ctx)
{
    char *name = hk_query_get(ctx, "nameFilter");
    char *event = hk_query_get(ctx, "eventFilter");
    char *status = hk_query_get(ctx, "statusFilter");
    hk_reg_list_so(ctx, name, event, status);
    free(name);
    free(event);
    free(status);
}

static void webhook_create(hk_ctx *ctx)
{
    json_t *body = body_or_fail(ctx, false);
    if (body != NULL)
        hk_reg_write(ctx, HK_REG_CREATE, 0, HK_REG_IN_SO, body, HK_REG_VIEW_SO_LINKS);
}

static void webhook_default(hk_ctx *ctx)
{
    hk_reg_default(ctx);
}

static void webhook_get(hk_ctx *ctx)
{
    uint32_t id;
    if (path_id(ctx, &id))
        hk_reg_get(ctx, id, HK_REG_VIEW_SO_LINKS, false);
}

static void webhook_put(hk_ctx *ctx)
{
    uint32_t id;
    if (!path_id(ctx, &id))
        return;
    json_t *body = body_or_fail(ctx, false);
    if (body != NULL)
        hk_reg_write(ctx, HK_REG_UPDATE, id, HK_REG_IN_SO, body, HK_REG_VIEW_SO_LINKS);
}

/* True when the request's media type (parameters ignored) is type. */
static bool content_type_is(const hk_ctx *ctx, const char *type)
{
    const hk_header *h = hk_http_header(ctx->req, "Content-Type");
    if (h == NULL)
        return false;
    size_t len = 0;
    while (len < h->value_len && h->value[len] != ';' && h->value[len] != ' ')
        len++;
    return hk_strncaseeq(h->value, len, type) == 0;
}

/* PATCH: application/json-patch+json is RFC 6902, application/merge-patch+json RFC 7396; plain JSON is a JSON
 * Patch when it is an array and a merge patch when it is an object. */
static void webhook_patch(hk_ctx *ctx)
{
    uint32_t id;
    if (!path_id(ctx, &id))
        return;
    json_t *body = body_or_fail(ctx, false);
    if (body == NULL)
        return;
    enum hk_reg_input input;
    if (content_type_is(ctx, "application/json-patch+json"))
        input = HK_REG_IN_SO_JSON_PATCH;
    else if (content_type_is(ctx, "application/merge-patch+json"))
        input = HK_REG_IN_SO_MERGE_PATCH;
    else
        input = json_is_array(body) ? HK_REG_IN_SO_JSON_PATCH : HK_REG_IN_SO_MERGE_PATCH;
    hk_reg_write(ctx, HK_REG_UPDATE, id, input, body, HK_REG_VIEW_SO_LINKS);
}

static void webhook_delete(hk_ctx *ctx)
{
    uint32_t id;
    if (path_id(ctx, &id))
        hk_reg_write(ctx, HK_REG_DELETE, id, HK_REG_IN_NONE, NULL, HK_REG_VIEW_NONE);
}

static void webhook_last_error(hk_ctx *ctx)
{
    uint32_t id;
    if (path_id(ctx, &id))
        hk_reg_last_error(ctx, id, false);
}

/* ---- Agents/Webhook RPC ---------------------------------------------------- */

/* The webhook id of an agent call: query parameter name, else the body member of that name. Answers 400 and
 * returns false when it is missing or not an id. */
static bool rpc_id(hk_ctx *ctx, const char *name, uint32_t *id)
{
    char *q = hk_query_get(ctx, name);
    bool ok = false, given = q != NULL;
    if (q != NULL) {
        ok = hk_reg_parse_id(q, id);
    } else if (ctx->req->body_len > 0) {
        json_t *body = json_loadb(ctx->req->body, ctx->req->body_len, JSON_DECODE_ANY, NULL);
        json_t *v = json_is_object(body) ? hk_json_member_ci(body, name) : json_is_integer(body) ? body : NULL;
        given = v != NULL;
        if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= INT32_MAX) {
            *id = (uint32_t)json_integer_value(v);
            ok = true;
        } else if (json_is_string(v)) {
            ok = hk_reg_parse_id(json_string_value(v), id);
        }
        json_decref(body);
    }
    free(q);
    if (!ok)
        hk_respond_field_error(ctx, 400, name, given ? "%s must be a positive integer" : "%s is required", name);
    return ok;
}

static void rpc_save(hk_ctx *ctx)
{
    json_t *body = body_or_fail(ctx, false);
    if (body == NULL)
        return;
    /* Accept the Webhook itself or wrapped as {"Webhook": {...}}. */
    json_t *wrapped = hk_json_member_ci(body, "Webhook");
    if (json_is_object(wrapped) && json_object_size(body) == 1) {
        json_t *inner = json_incref(wrapped);
        json_decref(body);
        body = inner;
    }
    json_t *idv = hk_json_member_ci(body, "WebhookId");
    if (idv != NULL && !json_is_null(idv) &&
        (!json_is_integer(idv) || json_integer_value(idv) < 0 || json_integer_value(idv) > INT32_MAX)) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "WebhookId", "WebhookId must be a non-negative integer");
        return;
    }
    uint32_t id = (uint32_t)json_integer_value(idv);
    hk_reg_write(ctx, id == 0 ? HK_REG_CREATE : HK_REG_UPDATE, id, HK_REG_IN_SO, body, HK_REG_VIEW_SO);
}

static void rpc_get(hk_ctx *ctx)
{
    uint32_t id;
    if (rpc_id(ctx, "webhookId", &id))
        hk_reg_get(ctx, id, HK_REG_VIEW_SO, true);
}

static void rpc_delete(hk_ctx *ctx)
{
    uint32_t id;
    if (rpc_id(ctx, "WebhookId", &id))
        hk_reg_write(ctx, HK_REG_DELETE, id, HK_REG_IN_NONE, NULL, HK_REG_VIEW_NONE);
}

static void rpc_last_error(hk_ctx *ctx)
{
    uint32_t id;
    if (rpc_id(ctx, "webhookId", &id))
        hk_reg_last_error(ctx, id, true);
}

static void rpc_create_default(hk_ctx *ctx)
{
    hk_reg_default(ctx);
}

/* A string filter of GetAllWebhooks from the query or the body; NULL when absent. *bad names a wrong type. */
static char *rpc_filter(hk_ctx *ctx, const json_t *body, const char *name, const char **bad)
{
    char *q = hk_query_get(ctx, name);
    if (q != NULL)
        return q;
    json_t *v = hk_json_member_ci(body, name);
    if (v == NULL || json_is_null(v))
        return NULL;
    if (json_is_string(v))
        return hk_strdup(json_string_value(v));
    if (json_is_integer(v) && strcmp(name, "StatusFilter") == 0) {
        char buf[24];
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return hk_strdup(buf);
    }
    *bad = name;
    return NULL;
}

static void rpc_get_all(hk_ctx *ctx)
{
    json_t *body = body_or_fail(ctx, true);
    if (body == NULL)
        return;
    if (!json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "the body must be an object {NameFilter, EventFilter, StatusFilter}");
        return;
    }
    const char *bad = NULL;
    char *name = rpc_filter(ctx, body, "NameFilter", &bad);
    char *event = rpc_filter(ctx, body, "EventFilter", &bad);
    char *status = rpc_filter(ctx, body, "StatusFilter", &bad);
    json_decref(body);
    if (bad != NULL)
        hk_respond_field_error(ctx, 400, bad, "%s must be a string", bad);
    else
        hk_reg_list_so(ctx, name, event, status);
    free(name);
    free(event);
    free(status);
}

const hk_api_route hk_superoffice_routes[] = {
    {"GET", "/api/v1/Webhook", webhook_list, HK_PERM_VIEW},
    {"POST", "/api/v1/Webhook", webhook_create, HK_PERM_MANAGE},
    {"GET", "/api/v1/Webhook/default", webhook_default, HK_PERM_VIEW},
    {"GET", "/api/v1/Webhook/{id}", webhook_get, HK_PERM_VIEW},
    {"PUT", "/api/v1/Webhook/{id}", webhook_put, HK_PERM_MANAGE},
    {"PATCH", "/api/v1/Webhook/{id}", webhook_patch, HK_PERM_MANAGE},
    {"DELETE", "/api/v1/Webhook/{id}", webhook_delete, HK_PERM_MANAGE},
    {"GET", "/api/v1/Webhook/{id}/LastError", webhook_last_error, HK_PERM_VIEW},
    {"POST", "/api/v1/Agents/Webhook/SaveWebhook", rpc_save, HK_PERM_MANAGE},
    {"POST", "/api/v1/Agents/Webhook/GetWebhook", rpc_get, HK_PERM_VIEW},
    {"POST", "/api/v1/Agents/Webhook/DeleteWebhook", rpc_delete, HK_PERM_MANAGE},
    {"POST", "/api/v1/Agents/Webhook/GetAllWebhooks", rpc_get_all, HK_PERM_VIEW},
    {"POST", "/api/v1/Agents/Webhook/CreateDefaultWebhook", rpc_create_default, HK_PERM_VIEW},
    {"POST", "/api/v1/Agents/Webhook/GetLastError", rpc_last_error, HK_PERM_VIEW},
};
const size_t hk_superoffice_routes_count = HK_ARRAY_SIZE(hk_superoffice_routes);
