/*
 * api_sync.c: synchronous invocations: the machinery every synchronous
 * call shares (api_sync.h), the SuperOffice Test and Agents TestWebhook
 * calls, the EnergyCAP custom actions, and the admin endpoints that
 * maintain nodes and accounts (the custom account action's scope).
 *
 *   POST /api/v1/Webhook/Test                          Manage    200 WebhookResult
 *   POST /api/v1/Agents/Webhook/TestWebhook            Manage    200 WebhookResult
 *   PUT  /api/v202211/account/customAction             Accounts:Edit  200 WebhookLogDetailsResponse / 204
 *   PUT  /api/v3/admin/customapplicationaction/{id}    Manage    200 WebhookLogDetailsResponse
 *   PUT  /api/v3/admin/node/{nodeId}                   Manage    200 {nodeId, name, parentId}
 *   PUT  /api/v3/admin/account/{accountId}             Manage    200 {accountId, name, nodeId}
 */
#include "api_sync.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "accounts.h"
#include "api.h"
#include "engine.h"
#include "event.h"
#include "http_client.h"
#include "json_patch.h"
#include "log.h"
#include "registry.h"
#include "webhook.h"

#define ACTION_IDS_MAX 10000 /* account ids in one custom action */
#define OFFENDERS_SHOWN 20   /* offending ids named in a 400 */

/* ---- one synchronous call ------------------------------------------------ */

struct sync_op {
    hk_api_env *app;
    hk_sync_cb cb;
    void *arg;
    bool record;
    uint32_t webhook_id, user_id;
    char *url, *event_name, *body;
    size_t body_len;
    char uuid[HK_EVENT_UUID_LEN];
    uint64_t started_ms;
    hk_sync_result res;
    char *request, *response, *error;
};

static char *concat3(const char *a, size_t al, const char *b, size_t bl, const char *c, size_t cl, size_t *len)
{
    char *p = hk_malloc(al + bl + cl + 1);
    memcpy(p, a, al);
    memcpy(p + al, b, bl);
    memcpy(p + al + bl, c, cl);
    p[al + bl + cl] = '\0';
    *len = al + bl + cl;
    return p;
}

static void op_finish(struct sync_op *op)
{
    op->cb(&op->res, op->arg);
    free(op->url);
    free(op->event_name);
    free(op->body);
    free(op->request);
    free(op->response);
    free(op->error);
    free(op);
}

static void on_recorded(int status, bool disabled, void *arg)
{
    struct sync_op *op = arg;
    hk_api_note_commit(op->app, status);
    /* The exchange happened whatever the log's fate: report it either way. */
    if (status != 0)
        hk_error("webhook %u: synchronous attempt could not be recorded: %s", op->webhook_id, hk_strerror(status));
    op->res.disabled = disabled;
    op_finish(op);
}

static void on_response(const hk_client_result *r, void *arg)
{
    struct sync_op *op = arg;
    hk_sync_result *res = &op->res;
    res->success = r->error == 0 && r->status >= 200 && r->status < 300;
    res->status = r->error == 0 ? r->status : 0;
    if (r->error != 0)
        op->error = hk_strdup(r->error_text ? r->error_text : hk_strerror(r->error));
    else
        op->error = hk_strdup(res->success ? "" : r->status_line);
    const char *head = r->request_head ? r->request_head : "";
    op->request =
        concat3(head, strlen(head), *head ? op->body : "", *head ? op->body_len : 0, "", 0, &res->request_len);
    if (r->error == 0 && r->status != 0) {
        size_t hl;
        char *h = concat3(r->status_line, strlen(r->status_line), "\r\n", 2, r->headers, r->headers_len, &hl);
        op->response = concat3(h, hl, "\r\n", 2, r->body, r->body_len, &res->response_len);
        free(h);
    } else {
        op->response = concat3("", 0, "", 0, "", 0, &res->response_len);
    }
    res->error = op->error;
    res->url = op->url;
    res->request = op->request;
    res->response = op->response;
    res->event_uuid = op->uuid;
    res->duration_ms = r->duration_ms;

    if (op->record && op->app->engine != NULL) {
        hk_attempt_view a = {.webhook_id = op->webhook_id,
                             .event_id = 0, /* not a stored event: a synchronous call cannot be resent */
                             .attempt = 1,
                             .started_ms = op->started_ms,
                             .duration_ms = r->duration_ms,
                             .success = res->success,
                             .status = res->status,
                             .error = op->error,
                             .url = op->url,
                             .request = op->request,
                             .request_len = res->request_len,
                             .response = op->response,
                             .response_len = res->response_len,
                             .user_id = op->user_id,
                             .exhausted = true,
                             .next_due_ms = 0,
                             .event_name = op->event_name,
                             .event_uuid = op->uuid};
        hk_engine_record(op->app->engine, &a, r->error == 0 && r->status == 410, on_recorded, op);
        return;
    }
    op_finish(op);
}

int hk_sync_send(hk_api_env *app, const hk_target *t, const hk_sync_event *ev, hk_sync_cb cb, void *arg)
{
    if (app->engine == NULL || hk_engine_client(app->engine) == NULL)
        return HK_ESHUTDOWN;
    hk_event_view e;
    memset(&e, 0, sizeof(e));
    e.ts_ms = hk_now_ms();
    e.primary_key = ev->primary_key;
    e.user_id = ev->user_id;
    hk_random(e.uuid, sizeof(e.uuid));
    /* A version 4 UUID, like the ones stored events carry. */
    e.uuid[6] = (uint8_t)((e.uuid[6] & 0x0f) | 0x40);
    e.uuid[8] = (uint8_t)((e.uuid[8] & 0x3f) | 0x80);
    e.name = ev->name;
    e.name_len = strlen(ev->name);
    e.changes = ev->changes;
    e.changes_len = strlen(ev->changes);
    e.data = ev->data;
    e.data_len = strlen(ev->data);

    struct sync_op *op = hk_calloc(1, sizeof(*op));
    op->app = app;
    op->cb = cb;
    op->arg = arg;
    op->record = ev->record;
    op->webhook_id = t->webhook_id;
    op->user_id = ev->user_id;
    op->url = hk_strdup(t->url);
    op->event_name = hk_strdup(ev->name);
    hk_event_uuid_str(e.uuid, op->uuid);
    op->body = hk_event_body(&e, t->name, t->props, &op->body_len);
    op->started_ms = e.ts_ms;

    char headers[HK_DELIVERY_HEADERS_MAX];
    hk_delivery_headers(t, ev->name, op->uuid, 0, op->body, op->body_len, e.ts_ms, ev->extra_headers, headers,
                        sizeof(headers));
    hk_client_request req = {
        .method = "POST", .url = t->url, .headers = headers, .body = op->body, .body_len = op->body_len};
    int rc = hk_client_send(hk_engine_client(app->engine), &req, on_response, op);
    if (rc != 0) {
        free(op->url);
        free(op->event_name);
        free(op->body);
        free(op);
        return rc == HK_ESHUTDOWN ? HK_ESHUTDOWN : HK_EINVAL;
    }
    return 0;
}

int hk_sync_test(hk_api_env *app, const hk_target *t, uint32_t user_id, hk_sync_cb cb, void *arg)
{
    hk_sync_event ev = {.name = "test",
                        .primary_key = 0,
                        .data = "{}",
                        .changes = "[]",
                        .user_id = user_id,
                        .extra_headers = "X-Hook-Test: true\r\n",
                        .record = false};
    return hk_sync_send(app, t, &ev, cb, arg);
}

char *hk_sync_message(const hk_sync_result *res)
{
    if (res->status == 0)
        return hk_strdup(res->error);
    return hk_strndup(res->response, res->response_len);
}

/* Answers a failed hk_sync_send in the request's dialect. */
static void respond_send_error(hk_ctx *ctx, int rc, const char *url)
{
    if (rc == HK_ESHUTDOWN)
        hk_respond_error(ctx, 503, "server is shutting down");
    else
        hk_respond_error(ctx, 400, "the target URL \"%.200s\" is not an absolute http(s) URL", url);
}

/* ---- SuperOffice: Test and TestWebhook ----------------------------------- */

static void test_done(const hk_sync_result *res, void *arg)
{
    hk_ctx *ctx = arg;
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
    const char *wk = hk_json_object_key(body, "Webhook", true);
    json_t *in = body;
    if (wk != NULL && json_is_object(json_object_get(body, wk)))
        in = json_object_get(body, wk);
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
    hk_target t = {0};
    hk_reg_target(&t, &w);
    hk_webhook_free(&w);
    int rc = hk_sync_test(ctx->app, &t, ctx->user.id, test_done, ctx);
    if (rc != 0)
        respond_send_error(ctx, rc, t.url);
    hk_target_free(&t);
}

/* ---- EnergyCAP: custom actions -------------------------------------------- */

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
 * is not Active) and returns false when it cannot run. txn stays open.
 */
static bool action_target(hk_ctx *ctx, hk_txn *txn, uint32_t id, const char *field, hk_target *t)
{
    json_t *rec;
    int rc = hk_webhook_get(txn, id, &rec);
    if (rc == HK_ENOTFOUND) {
        hk_respond_error(ctx, 404, "webhook %u not found", id);
        return false;
    }
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return false;
    }
    const char *state = hk_wh_str(rec, "state");
    if (strcmp(state, HK_STATE_ACTIVE) != 0) {
        hk_respond_field_error(ctx, 400, field, "webhook %u is %s, not Active: its custom action cannot run", id,
                               state);
        json_decref(rec);
        return false;
    }
    hk_target_from_record(t, rec);
    json_decref(rec);
    return true;
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
        respond_send_error(ctx, rc, t->url);
}

/* Reads a positive int32 member; *present tells whether it was there (not null). */
static bool int_member(const json_t *obj, const char *name, uint32_t *out, bool *present)
{
    const char *k = hk_json_object_key(obj, name, true);
    json_t *v = k ? json_object_get(obj, k) : NULL;
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
    const char *ik = hk_json_object_key(body, "ids", true);
    json_t *ids = ik ? json_object_get(body, ik) : NULL;
    if (!json_is_array(ids)) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "ids",
                               ids == NULL || json_is_null(ids) ? "ids is required (an array of account ids)"
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

    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        free(list);
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    if (!action_target(ctx, txn, wid, "webhookId", &t)) {
        hk_txn_end(txn);
        free(list);
        return;
    }
    if (nlist == 0) {
        hk_txn_end(txn);
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
        if (hk_account_within(txn, list[i], ctx->user.top_node))
            continue;
        if (nbad < OFFENDERS_SHOWN && blen < sizeof(bad) - 16)
            blen += (size_t)snprintf(bad + blen, sizeof(bad) - blen, "%s%u", nbad ? ", " : "", list[i]);
        nbad++;
    }
    hk_txn_end(txn);
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

/* Parses a positive int32 path parameter; 0 when malformed. */
static uint32_t param_id(const hk_ctx *ctx, const char *name)
{
    const char *s = hk_route_param(&ctx->params, name);
    if (s == NULL || !isdigit((unsigned char)*s))
        return 0;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > INT32_MAX)
        return 0;
    return (uint32_t)v;
}

static void application_action(hk_ctx *ctx)
{
    uint32_t wid = param_id(ctx, "webhookId");
    if (wid == 0) {
        hk_respond_error(ctx, 404, "webhook %.40s not found", hk_route_param(&ctx->params, "webhookId"));
        return;
    }
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    bool ok = action_target(ctx, txn, wid, "webhookId", &t);
    hk_txn_end(txn);
    if (!ok)
        return;
    run_action(ctx, &t, "application.customAction", "{}", "[]");
    hk_target_free(&t);
}

/* ---- admin: nodes and accounts -------------------------------------------- */

struct tree_write {
    hk_write w;
    hk_ctx *ctx;
    bool is_node;
    hk_node node;
    hk_account account;
    char err[256];
};

static int tree_apply(hk_txn *txn, hk_write *w)
{
    struct tree_write *tw = hk_container_of(w, struct tree_write, w);
    tw->err[0] = '\0';
    if (tw->is_node)
        return hk_node_put(txn, &tw->node, tw->err, sizeof(tw->err));
    return hk_account_put(txn, &tw->account, tw->err, sizeof(tw->err));
}

static void tree_done(hk_write *w, int status)
{
    struct tree_write *tw = hk_container_of(w, struct tree_write, w);
    hk_ctx *ctx = tw->ctx;
    if (status == HK_EINVAL) {
        hk_respond_field_error(ctx, 400, tw->is_node ? "parentId" : "nodeId", "%s", tw->err);
    } else if (status != 0) {
        hk_respond_store_error(ctx, status);
    } else if (tw->is_node) {
        json_t *parent = tw->node.parent ? json_integer(tw->node.parent) : json_null();
        hk_respond_json(
            ctx, 200,
            json_pack("{s:I, s:s, s:o}", "nodeId", (json_int_t)tw->node.id, "name", tw->node.name, "parentId", parent));
    } else {
        hk_respond_json(ctx, 200,
                        json_pack("{s:I, s:s, s:I}", "accountId", (json_int_t)tw->account.id, "name", tw->account.name,
                                  "nodeId", (json_int_t)tw->account.node));
    }
    free(tw);
}

/* PUT node or account: validates the body on the loop, stores in the group commit. */
static void tree_put(hk_ctx *ctx, bool is_node)
{
    const char *pname = is_node ? "nodeId" : "accountId";
    uint32_t id = param_id(ctx, pname);
    if (id == 0) {
        hk_respond_error(ctx, 400, "%s must be a positive integer", pname);
        return;
    }
    char err[256];
    json_t *body = hk_body_json(ctx, err, sizeof(err), NULL);
    if (body == NULL || !json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "%s", body ? "the body must be an object" : err);
        return;
    }
    const char *nk = hk_json_object_key(body, "name", true);
    const char *name = nk ? json_string_value(json_object_get(body, nk)) : NULL;
    if (name == NULL || name[0] == '\0' || strlen(name) > HK_NODE_NAME_MAX) {
        json_decref(body);
        hk_respond_field_error(ctx, 400, "name", "name is required: a string of 1..%d bytes", HK_NODE_NAME_MAX);
        return;
    }
    struct tree_write *tw = hk_calloc(1, sizeof(*tw));
    tw->ctx = ctx;
    tw->is_node = is_node;
    uint32_t link = 0;
    bool present;
    const char *lname = is_node ? "parentId" : "nodeId";
    if (!int_member(body, lname, &link, &present) && (present || !is_node)) {
        json_decref(body);
        free(tw);
        hk_respond_field_error(
            ctx, 400, lname, is_node ? "parentId must be a node id or null (a root)" : "nodeId is required: a node id");
        return;
    }
    if (is_node) {
        tw->node.id = id;
        tw->node.parent = link;
        snprintf(tw->node.name, sizeof(tw->node.name), "%s", name);
    } else {
        tw->account.id = id;
        tw->account.node = link;
        snprintf(tw->account.name, sizeof(tw->account.name), "%s", name);
    }
    json_decref(body);
    tw->w.apply = tree_apply;
    tw->w.done = tree_done;
    tw->w.flags = HK_WRITE_ISOLATED;
    hk_kv_submit(ctx->app->store, &tw->w);
}

static void node_put(hk_ctx *ctx)
{
    tree_put(ctx, true);
}

static void account_put(hk_ctx *ctx)
{
    tree_put(ctx, false);
}

const hk_api_route hk_sync_routes[] = {
    {"POST", "/api/v1/Webhook/Test", webhook_test, HK_PERM_MANAGE},
    {"POST", "/api/v1/Agents/Webhook/TestWebhook", webhook_test, HK_PERM_MANAGE},
    {"PUT", "/api/v202211/account/customAction", account_action, HK_PERM_ACCOUNTS},
    {"PUT", "/api/v3/admin/customapplicationaction/{webhookId}", application_action, HK_PERM_MANAGE},
    {"PUT", "/api/v3/admin/node/{nodeId}", node_put, HK_PERM_MANAGE},
    {"PUT", "/api/v3/admin/account/{accountId}", account_put, HK_PERM_MANAGE},
};
const size_t hk_sync_routes_count = HK_ARRAY_SIZE(hk_sync_routes);
