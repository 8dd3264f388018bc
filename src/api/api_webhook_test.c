/*
 * api_webhook_test.c: the SuperOffice test calls. The body is a webhook
 * (REST) or {"Webhook": webhook} (Agents); it is validated like a save and
 * sent Event "test" at once (api_sync.h); nothing is stored.
 *
 *   POST /api/v1/Webhook/Test                Manage  200 WebhookResult
 *   POST /api/v1/Agents/Webhook/TestWebhook  Manage  200 WebhookResult
 */
#include <string.h>

#include "api.h"
#include "api_sync.h"
#include "delivery.h"
#include "registry.h"

static void test_done(const hk_sync_result *res, void *arg)
{
    hk_ctx *ctx = arg;
    if (res->unavailable) {
        hk_sync_respond_unavailable(ctx, res);
        return;
    }
    char *msg = hk_sync_message(res);
    json_t *out = json_object();
    json_object_set_new(out, "Success", json_boolean(res->success));
    /* A peer's bytes may not be UTF-8; keep what JSON can carry. */
    json_t *m = json_string(msg);
    if (m == NULL) {
        for (char *p = msg; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        m = json_string(msg);
    }
    json_object_set_new(out, "Message", m ? m : json_string(""));
    free(msg);
    hk_respond_json(ctx, 200, out);
}

static void webhook_test(hk_ctx *ctx)
{
    char err[256];
    bool empty = false;
    json_t *body = hk_body_json(ctx, err, sizeof(err), &empty);
    if (body == NULL) {
        hk_respond_error(ctx, 400, "%s", err);
        return;
    }
    /* REST sends the Webhook itself, Agents wraps it as {"Webhook": {...}}: take either. */
    json_t *wrapped = hk_json_member_ci(body, "Webhook");
    json_t *in = json_is_object(wrapped) ? wrapped : body;
    hk_webhook w;
    hk_webhook_init(&w);
    hk_wh_err rerr = {0};
    if (hk_reg_so_unsaved(in, &w, &rerr) != 0) {
        hk_webhook_free(&w);
        json_decref(body);
        hk_reg_respond_err(ctx, &rerr);
        return;
    }
    json_t *idv = hk_json_member_ci(in, "WebhookId");
    if (json_is_integer(idv) && json_integer_value(idv) > 0 && json_integer_value(idv) <= INT32_MAX)
        w.id = (uint32_t)json_integer_value(idv);
    json_decref(body);
    if (w.url == NULL || w.url[0] == '\0') {
        hk_webhook_free(&w);
        hk_respond_field_error(ctx, 400, "TargetUrl", "TargetUrl is required to test a webhook");
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_webhook(&t, &w);
    hk_webhook_free(&w);
    int rc = hk_sync_test(ctx->app, &t, ctx->user.id, test_done, ctx);
    if (rc != 0)
        hk_sync_respond_send_error(ctx, rc, t.url);
    hk_target_free(&t);
}

const hk_api_route hk_webhook_test_routes[] = {
    {"POST", "/api/v1/Webhook/Test", webhook_test, HK_PERM_MANAGE},
    {"POST", "/api/v1/Agents/Webhook/TestWebhook", webhook_test, HK_PERM_MANAGE},
};
const size_t hk_webhook_test_routes_count = HK_ARRAY_SIZE(hk_webhook_test_routes);
