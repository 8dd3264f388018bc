/* api_superoffice.c: the SuperOffice dialect (/api/v1, PascalCase). */
#include "api.h"
#include "webhook.h"

static int list_one(json_t *rec, void *arg)
{
    json_array_append_new(arg, json_pack("{s:O}", "WebhookId", json_object_get(rec, "id")));
    return 0;
}

static void webhook_list(hk_ctx *ctx)
{
    hk_txn *txn;
    int rc = hk_store_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    json_t *arr = json_array();
    hk_webhook_each(txn, list_one, arr);
    hk_txn_end(txn);
    hk_respond_json(ctx, 200, arr);
}

const hk_api_route hk_superoffice_routes[] = {
    {"GET", "/api/v1/Webhook", webhook_list, HK_PERM_VIEW},
};
const size_t hk_superoffice_routes_count = HK_ARRAY_SIZE(hk_superoffice_routes);
