/*
 * api_signal.c: event ingest. POST /api/v1/Agents/Webhook/SignalEvent
 * {EventName, PrimaryKey, Data} and POST /api/v1/Webhook/{eventName}/{primaryKey}
 * (body = Data) answer 204 only after the event and its deliveries are
 * committed, with the event's EventId in a Hookd-Event-Id header (the first
 * event's when an Idempotency-Key repeats).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "buf.h"
#include "engine.h"
#include "json_text.h"

static void signal_answered(hk_signal *s, int status)
{
    hk_ctx *ctx = s->arg;
    hk_api_note_commit(ctx->app, status);
    if (status != 0) {
        hk_respond_store_error(ctx, status);
    } else if (s->event_uuid[0] != '\0') {
        /* The EventId every delivery of this event carries, so the caller can find them. */
        char h[64 + HK_EVENT_UUID_LEN];
        snprintf(h, sizeof(h), "Hookd-Event-Id: %s\r\n", s->event_uuid);
        hk_respond_raw(ctx, 204, NULL, h, NULL, 0);
    } else {
        hk_respond_empty(ctx, 204);
    }
    hk_signal_free(s);
}

/* Event names are free text (the vendor's own sample has spaces and
 * commas) but travel in a header, so control characters are refused. */
static const char *check_event_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0)
        return "EventName must not be empty";
    if (n > HK_EVENT_NAME_MAX)
        return "EventName is longer than 128 bytes";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
            return "EventName must not contain control characters";
    return NULL;
}

/* Fills the signal from the parts every ingest form shares; answers 400 itself when they are bad. */
static bool fill(hk_ctx *ctx, hk_signal *s, const char *name, int64_t pk, json_t *data)
{
    const char *bad = check_event_name(name);
    if (bad != NULL) {
        hk_respond_field_error(ctx, 400, "EventName", "%s", bad);
        return false;
    }
    if (!json_is_object(data)) {
        hk_respond_field_error(ctx, 400, "Data", "Data must be a JSON object");
        return false;
    }
    const hk_header *ik = hk_http_header(ctx->req, "Idempotency-Key");
    if (ik != NULL) {
        if (ik->value_len == 0 || ik->value_len > HK_IDEMPOTENCY_KEY_MAX) {
            hk_respond_error(ctx, 400, "Idempotency-Key must be 1..%d bytes", HK_IDEMPOTENCY_KEY_MAX);
            return false;
        }
        s->idem_key = hk_strndup(ik->value, ik->value_len);
    }
    s->name = hk_strdup(name);
    s->primary_key = pk;
    s->data = json_dumps(data, JSON_COMPACT);
    s->data_len = strlen(s->data);
    /* Changes: Data's keys as a JSON array, written directly. */
    hk_buf ch = HK_BUF_INIT;
    const char *k;
    json_t *v;
    hk_buf_putc(&ch, '[');
    json_object_foreach (data, k, v) {
        if (ch.len > 1)
            hk_buf_putc(&ch, ',');
        hk_json_text_quote(&ch, k, strlen(k));
    }
    hk_buf_putc(&ch, ']');
    s->changes = hk_buf_steal(&ch, &s->changes_len);
    s->user_id = ctx->user.id;
    s->done = signal_answered;
    s->arg = ctx;
    return true;
}

static void submit(hk_ctx *ctx, hk_signal *s)
{
    if (ctx->app->engine == NULL || ctx->app->draining) {
        hk_signal_free(s);
        hk_respond_error(ctx, 503, "server is not accepting events right now");
        return;
    }
    hk_engine_signal(ctx->app->engine, s);
}

static void signal_event(hk_ctx *ctx)
{
    char err[256];
    bool empty;
    json_t *body = hk_body_json(ctx, err, sizeof(err), &empty);
    if (body == NULL) {
        hk_respond_error(ctx, 400, "%s", err);
        return;
    }
    if (!json_is_object(body)) {
        json_decref(body);
        hk_respond_error(ctx, 400, "request body must be a JSON object {EventName, PrimaryKey, Data}");
        return;
    }
    json_t *name = hk_json_member_ci(body, "EventName");
    json_t *pk = hk_json_member_ci(body, "PrimaryKey");
    json_t *data = hk_json_member_ci(body, "Data");
    hk_signal *s = NULL;
    if (!json_is_string(name)) {
        hk_respond_field_error(ctx, 400, "EventName", "EventName is required and must be a string");
    } else if (!json_is_integer(pk)) {
        hk_respond_field_error(ctx, 400, "PrimaryKey", "PrimaryKey is required and must be an integer");
    } else {
        json_t *empty_obj = NULL;
        if (data == NULL || json_is_null(data))
            data = empty_obj = json_object();
        s = hk_calloc(1, sizeof(*s));
        if (!fill(ctx, s, json_string_value(name), (int64_t)json_integer_value(pk), data)) {
            hk_signal_free(s);
            s = NULL;
        }
        json_decref(empty_obj);
    }
    json_decref(body);
    if (s != NULL)
        submit(ctx, s);
}

static void signal_rest(hk_ctx *ctx)
{
    const char *name = hk_route_param(&ctx->params, "eventName");
    const char *pks = hk_route_param(&ctx->params, "primaryKey");
    char *end;
    errno = 0;
    long long pk = strtoll(pks, &end, 10);
    if (*pks == '\0' || *end != '\0' || errno != 0) {
        hk_respond_field_error(ctx, 400, "PrimaryKey", "primary key \"%s\" is not an integer", pks);
        return;
    }
    char err[256];
    bool empty;
    json_t *data = hk_body_json(ctx, err, sizeof(err), &empty);
    if (data == NULL && !empty) {
        hk_respond_error(ctx, 400, "%s", err);
        return;
    }
    if (data == NULL)
        data = json_object();
    hk_signal *s = hk_calloc(1, sizeof(*s));
    bool ok = fill(ctx, s, name, pk, data);
    json_decref(data);
    if (!ok) {
        hk_signal_free(s);
        return;
    }
    submit(ctx, s);
}

const hk_api_route hk_signal_routes[] = {
    {"POST", "/api/v1/Agents/Webhook/SignalEvent", signal_event, HK_PERM_SIGNAL},
    {"POST", "/api/v1/Webhook/{eventName}/{primaryKey}", signal_rest, HK_PERM_SIGNAL},
};
const size_t hk_signal_routes_count = HK_ARRAY_SIZE(hk_signal_routes);
