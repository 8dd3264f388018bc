/*
 * api_energycap.c: the EnergyCAP dialect (/api/v3, camelCase): the webhook
 * resource and the event-type list. The work is done by the registry
 * (registry.h).
 */
#include "api.h"
#include "registry.h"

/* The {webhookId} of the path; answers 404 and returns false when it is not a webhook id. */
static bool path_id(hk_ctx *ctx, uint32_t *id)
{
    const char *s = hk_route_param(&ctx->params, "webhookId");
    if (hk_reg_parse_id(s, id))
        return true;
    hk_respond_field_error(ctx, 404, "webhookId", "no webhook %.40s", s ? s : "");
    return false;
}

static json_t *body_or_fail(hk_ctx *ctx)
{
    char err[256];
    json_t *j = hk_body_json(ctx, err, sizeof(err), NULL);
    if (j == NULL)
        hk_respond_error(ctx, 400, "%s", err);
    return j;
}

static void webhook_list(hk_ctx *ctx)
{
    char *filter = hk_query_get(ctx, "filter");
    hk_reg_list_ecap(ctx, filter);
    free(filter);
}

static void webhook_create(hk_ctx *ctx)
{
    json_t *body = body_or_fail(ctx);
    if (body != NULL)
        hk_reg_write(ctx, HK_REG_CREATE, 0, HK_REG_IN_ECAP, body, HK_REG_VIEW_ECAP);
}

static void webhook_get(hk_ctx *ctx)
{
    uint32_t id;
    if (path_id(ctx, &id))
        hk_reg_get(ctx, id, HK_REG_VIEW_ECAP, false);
}

static void webhook_put(hk_ctx *ctx)
{
    uint32_t id;
    if (!path_id(ctx, &id))
        return;
    json_t *body = body_or_fail(ctx);
    if (body != NULL)
        hk_reg_write(ctx, HK_REG_UPDATE, id, HK_REG_IN_ECAP, body, HK_REG_VIEW_ECAP);
}

static void webhook_delete(hk_ctx *ctx)
{
    uint32_t id;
    if (path_id(ctx, &id))
        hk_reg_write(ctx, HK_REG_DELETE, id, HK_REG_IN_NONE, NULL, HK_REG_VIEW_NONE);
}

static void event_types(hk_ctx *ctx)
{
    hk_reg_event_types(ctx);
}

const hk_api_route hk_energycap_routes[] = {
    {"GET", "/api/v3/webhook", webhook_list, HK_PERM_VIEW},
    {"POST", "/api/v3/webhook", webhook_create, HK_PERM_MANAGE},
    {"GET", "/api/v3/webhook/eventType", event_types, HK_PERM_VIEW},
    {"GET", "/api/v3/webhook/{webhookId}", webhook_get, HK_PERM_VIEW},
    {"PUT", "/api/v3/webhook/{webhookId}", webhook_put, HK_PERM_MANAGE},
    {"DELETE", "/api/v3/webhook/{webhookId}", webhook_delete, HK_PERM_MANAGE},
};
const size_t hk_energycap_routes_count = HK_ARRAY_SIZE(hk_energycap_routes);
