/*
 * api_custom_action.c: the EnergyCAP custom actions: a webhook's target is
 * called at once (api_sync.h) and the exchange is recorded in its log.
 *
 *   PUT /api/v202211/account/customAction           Accounts:Edit  200 WebhookLogDetailsResponse / 204
 *   PUT /api/v3/admin/customapplicationaction/{id}  Manage         200 WebhookLogDetailsResponse
 *
 * An account action names account ids ({"webhookId", "ids"}); every id must
 * be within the caller's topmost node, or nothing is sent.
 */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "api_sync.h"
#include "store.h"

#define ACTION_IDS_MAX 10000 /* account ids in one custom action */
#define OFFENDERS_SHOWN 20   /* offending ids named in a 400 */

static json_t *user_child(const hk_user *u)
{
    return json_pack("{s:s, s:s, s:I}", "fullName", u->full_name, "userCode", u->code, "userId", (json_int_t)u->id);
}

/* JSON text of a peer's bytes; non-UTF-8 bytes become '?'. */
static json_t *peer_text(const char *s, size_t len)
{
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    char *copy = hk_malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

static void action_done(const hk_sync_result *res, void *arg)
{
    hk_ctx *ctx = arg;
    if (res->unavailable) {
        hk_sync_respond_unavailable(ctx, res);
        return;
    }
    char result[16];
    snprintf(result, sizeof(result), "%d", res->status);
    json_t *out = json_object();
    json_object_set_new(out, "request", peer_text(res->request, res->request_len));
    json_object_set_new(out, "response", peer_text(res->response, res->response_len));
    json_object_set_new(out, "result", json_string(result));
    json_object_set_new(out, "url", json_string(res->url));
    json_object_set_new(out, "user", user_child(&ctx->user));
    hk_respond_json(ctx, 200, out);
}

/*
 * Loads webhook id into a target; answers (404, or 400 for a webhook that
 * is not Active) and returns false when it cannot run.
 */
static bool action_target(hk_ctx *ctx, uint32_t id, const char *field, hk_target *t)
{
    hk_webhook w;
    memset(&w, 0, sizeof(w)); /* filled by the store; safe to free either way */
    int rc = hk_store_webhook_get(ctx->app->db, id, &w);
    bool ok = false;
    if (rc == HK_ENOTFOUND)
        hk_respond_error(ctx, 404, "webhook %u not found", id);
    else if (rc != 0)
        hk_respond_store_error(ctx, rc);
    else if (w.state != HK_WH_ACTIVE)
        hk_respond_field_error(ctx, 400, field, "webhook %u is %s, not Active: its custom action cannot run", id,
                               hk_webhook_state_name(w.state));
    else
        ok = true;
    if (ok)
        hk_target_from_webhook(t, &w);
    hk_webhook_free(&w);
    return ok;
}

static void run_action(hk_ctx *ctx, hk_target *t, const char *event, const char *data, const char *changes)
{
    hk_sync_event ev = {.name = event,
                        .primary_key = 0,
                        .data = data,
                        .changes = changes,
                        .user_id = ctx->user.id,
                        .extra_headers = NULL,
                        .record = true};
    int rc = hk_sync_send(ctx->app, t, &ev, action_done, ctx);
    if (rc != 0)
        hk_sync_respond_send_error(ctx, rc, t->url);
}

/* Reads a positive int32 member; *present tells whether it was there (not null). */
static bool int_member(const json_t *obj, const char *name, uint32_t *out, bool *present)
{
    json_t *v = hk_json_member_ci(obj, name);
    *present = v != NULL && !json_is_null(v);
    if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT32_MAX)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Keeps each id once, in the order first given; returns the new count. O(n log n). */
static size_t dedupe(uint32_t *list, size_t n)
{
    if (n < 2)
        return n;
    uint32_t *sorted = hk_malloc(n * sizeof(*sorted));
    memcpy(sorted, list, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), u32_cmp);
    size_t u = 1;
    for (size_t i = 1; i < n; i++)
        if (sorted[i] != sorted[u - 1])
            sorted[u++] = sorted[i];
    bool *emitted = hk_calloc(u, sizeof(*emitted));
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t *at = bsearch(&list[i], sorted, u, sizeof(*sorted), u32_cmp);
        size_t k = (size_t)(at - sorted);
        if (!emitted[k]) {
            emitted[k] = true;
            list[out++] = list[i];
        }
    }
    free(emitted);
    free(sorted);
    return out;
}

static void account_action(hk_ctx *ctx)
{
    char err[256];
    json_t *body = hk_body_json(ctx, err, sizeof(err), NULL);
    if (body == NULL) {
        hk_respond_error(ctx, 400, "%s", err);
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "the body must be an object {ids, webhookId}");
        return;
    }
    uint32_t wid;
    bool present;
    if (!int_member(body, "webhookId", &wid, &present)) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "webhookId",
                               present ? "webhookId must be a positive integer" : "webhookId is required");
        return;
    }
    json_t *ids = hk_json_member_ci(body, "ids");
    if (!json_is_array(ids)) {
        /* ids belongs to body: decide the message before letting go of it. */
        bool missing = ids == NULL || json_is_null(ids);
        json_decref(body);
        hk_respond_field_error(ctx, 400, "ids",
                               missing ? "ids is required (an array of account ids)"
                                       : "ids must be an array of account ids");
        return;
    }
    size_t n = json_array_size(ids);
    if (n > ACTION_IDS_MAX) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "ids", "ids may hold at most %d account ids", ACTION_IDS_MAX);
        return;
    }
    uint32_t *list = hk_calloc(n ? n : 1, sizeof(*list));
    size_t nlist = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(ids, i);
        if (!json_is_integer(v) || json_integer_value(v) <= 0 || json_integer_value(v) > INT32_MAX) {
            free(list);
            json_decref(body);
            hk_respond_field_error(ctx, 400, "ids", "ids[%zu] is not an account id (a positive integer)", i);
            return;
        }
        list[nlist++] = (uint32_t)json_integer_value(v);
    }
    json_decref(body);
    nlist = dedupe(list, nlist);

    hk_target t;
    memset(&t, 0, sizeof(t));
    if (!action_target(ctx, wid, "webhookId", &t)) {
        free(list);
        return;
    }
    if (nlist == 0) {
        free(list);
        hk_target_free(&t);
        hk_respond_empty(ctx, 204);
        return;
    }
    /* Unknown accounts and accounts outside the caller's subtree get the same
     * answer, so that the answer does not tell which accounts exist. */
    char bad[512];
    size_t nbad = 0, blen = 0;
    bad[0] = '\0';
    for (size_t i = 0; i < nlist; i++) {
        bool within;
        int rc = hk_auth_account_within(ctx->app->db, list[i], ctx->user.top_node, &within);
        if (rc != 0) {
            free(list);
            hk_target_free(&t);
            hk_respond_store_error(ctx, rc);
            return;
        }
        if (within)
            continue;
        if (nbad < OFFENDERS_SHOWN && blen < sizeof(bad) - 16)
            blen += (size_t)snprintf(bad + blen, sizeof(bad) - blen, "%s%u", nbad ? ", " : "", list[i]);
        nbad++;
    }
    if (nbad > 0) {
        free(list);
        hk_target_free(&t);
        char more[48] = "";
        if (nbad > OFFENDERS_SHOWN)
            snprintf(more, sizeof(more), " and %zu more", nbad - OFFENDERS_SHOWN);
        if (ctx->user.top_node == 0)
            hk_respond_field_error(ctx, 400, "ids",
                                   "user %s has no topmost node, so no account is within it: %s%s; nothing was sent",
                                   ctx->user.code, bad, more);
        else
            hk_respond_field_error(ctx, 400, "ids",
                                   "accounts not found within your topmost node (%u): %s%s; nothing was sent",
                                   ctx->user.top_node, bad, more);
        return;
    }
    json_t *data = json_object();
    json_t *arr = json_array();
    for (size_t i = 0; i < nlist; i++)
        json_array_append_new(arr, json_integer(list[i]));
    json_object_set_new(data, "ids", arr);
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    free(list);
    run_action(ctx, &t, "account.customAction", text, "[\"ids\"]");
    free(text);
    hk_target_free(&t);
}

static void application_action(hk_ctx *ctx)
{
    uint64_t wid;
    if (hk_param_id(ctx, "webhookId", INT32_MAX, &wid) != 0) {
        hk_respond_error(ctx, 404, "webhook %.40s not found", hk_route_param(&ctx->params, "webhookId"));
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    if (!action_target(ctx, (uint32_t)wid, "webhookId", &t))
        return;
    run_action(ctx, &t, "application.customAction", "{}", "[]");
    hk_target_free(&t);
}

const hk_api_route hk_custom_action_routes[] = {
    {"PUT", "/api/v202211/account/customAction", account_action, HK_PERM_ACCOUNTS},
    {"PUT", "/api/v3/admin/customapplicationaction/{webhookId}", application_action, HK_PERM_MANAGE},
};
const size_t hk_custom_action_routes_count = HK_ARRAY_SIZE(hk_custom_action_routes);
