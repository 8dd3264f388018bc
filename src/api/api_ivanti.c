/*
 * api_ivanti.c: the Ivanti dialect (/api/rest): Execute.
 *
 *   POST /api/rest/Webhooks/Execute?extension=NAME     Webhooks:Execute
 *
 * Runs the webhook whose extension is exactly NAME now: the request body
 * is delivered as Data.WebhookBody of a "webhook.execute" event (the JSON
 * object itself, or the XML text as a string), signed like every delivery,
 * counted in the webhook's statistics and written to its log. The answer is
 * 200 with the outcome, whatever the target said:
 *   {"WebhookId", "EventId", "Success", "StatusCode", "Error", "Response"}
 *
 * Checks, in this order, each answered 400 in the Ivanti shape:
 *   1. extension missing or empty: the vendor's "You must enter an endpoint
 *      extension" text;
 *   2. more than 100,000 characters (Unicode code points) in the body;
 *   3. no webhook has exactly that extension: "Invalid Webhook Extension
 *      Provided. "; but when one has it in another letter case (the
 *      extension is case-sensitive, so this is a mistyped extension):
 *      "This webhook extension doesn't exist.";
 *   4. the webhook is not Active;
 *   5. the body is not what its Content-Type declares: a JSON object for
 *      application/json (or +json), well-formed XML without a DOCTYPE
 *      (xml.h, on libexpat) for application/xml, text/xml (or +xml); any
 *      other or no Content-Type is refused.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_sync.h"
#include "delivery.h"
#include "store.h"
#include "utf8.h"
#include "xml.h"

#define EXECUTE_BODY_MAX_CHARS 100000 /* Ivanti's documented limit, in characters */

#define MSG_MISSING_EXTENSION                                                                                          \
    "Webhook validation failed for Execute operation. Errors: You must enter an endpoint extension to your base URL. "
#define MSG_INVALID_EXTENSION "Invalid Webhook Extension Provided. "
#define MSG_MISTYPED_EXTENSION "This webhook extension doesn't exist."
#define MSG_BODY_TOO_LONG "Request Body must be less than or equal to 100,000 characters"

/* White space as XML and JSON both define it. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---- Execute ------------------------------------------------------------------ */

enum media { MEDIA_NONE, MEDIA_JSON, MEDIA_XML, MEDIA_OTHER };

static enum media body_media(const hk_ctx *ctx, char *type, size_t typelen)
{
    const hk_header *h = hk_http_header(ctx->req, "Content-Type");
    if (h == NULL || h->value_len == 0) {
        snprintf(type, typelen, "none");
        return MEDIA_NONE;
    }
    size_t n = 0;
    while (n < h->value_len && h->value[n] != ';' && h->value[n] != ' ')
        n++;
    snprintf(type, typelen, "%.*s", (int)(n < 100 ? n : 100), h->value);
    if (hk_strncaseeq(h->value, n, "application/json") == 0 || hk_strncaseeq(h->value, n, "text/json") == 0 ||
        (n > 5 && hk_strncaseeq(h->value + n - 5, 5, "+json") == 0))
        return MEDIA_JSON;
    if (hk_strncaseeq(h->value, n, "application/xml") == 0 || hk_strncaseeq(h->value, n, "text/xml") == 0 ||
        (n > 4 && hk_strncaseeq(h->value + n - 4, 4, "+xml") == 0))
        return MEDIA_XML;
    return MEDIA_OTHER;
}

/* True when some webhook's extension equals ext in another letter case. */
static int other_case(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    HK_UNUSED(st);
    return w->extension != NULL && strcasecmp(w->extension, arg) == 0;
}

static bool extension_other_case(hk_store *db, const char *ext)
{
    return hk_store_webhooks_each(db, 0, other_case, (void *)ext) > 0;
}

/*
 * Builds Data from the body as its Content-Type says; answers 400 and
 * returns NULL when the body is not that.
 */
static char *execute_data(hk_ctx *ctx)
{
    char type[128], why[256];
    enum media m = body_media(ctx, type, sizeof(type));
    const char *body = ctx->req->body;
    size_t len = ctx->req->body_len;
    json_t *value = NULL;
    switch (m) {
    case MEDIA_JSON: {
        json_error_t jerr;
        value = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (value == NULL) {
            size_t i = 0;
            while (i < len && is_space(body[i]))
                i++;
            hk_respond_error(ctx, 400,
                             "Request Body does not match its Content-Type %s: it is not a JSON object%s (line %d, "
                             "column %d: %s)",
                             type, i < len && body[i] == '<' ? " (it looks like XML)" : "", jerr.line, jerr.column,
                             jerr.text);
            return NULL;
        }
        if (!json_is_object(value)) {
            json_decref(value);
            hk_respond_error(ctx, 400, "Request Body does not match its Content-Type %s: it is not a JSON object",
                             type);
            return NULL;
        }
        break;
    }
    case MEDIA_XML:
        if (hk_xml_check(body, len, why, sizeof(why)) != 0) {
            hk_respond_error(
                ctx, 400, "Request Body does not match its Content-Type %s: it is not well-formed XML (%s)", type, why);
            return NULL;
        }
        value = json_stringn(body, len);
        if (value == NULL) {
            hk_respond_error(ctx, 400, "Request Body is not valid UTF-8");
            return NULL;
        }
        break;
    default:
        hk_respond_error(ctx, 400,
                         "Request Body must be JSON or XML: Content-Type %s is not application/json or "
                         "application/xml",
                         type);
        return NULL;
    }
    json_t *data = json_object();
    json_object_set_new(data, "WebhookBody", value);
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    return text;
}

struct execute {
    hk_ctx *ctx;
    uint32_t webhook_id;
};

static void execute_done(const hk_sync_result *res, void *arg)
{
    struct execute *ex = arg;
    if (res->unavailable) {
        hk_sync_respond_unavailable(ex->ctx, res);
        free(ex);
        return;
    }
    json_t *resp = json_stringn(res->response, res->response_len);
    if (resp == NULL) {
        char *copy = hk_strndup(res->response, res->response_len);
        for (char *p = copy; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        resp = json_string(copy);
        free(copy);
    }
    json_t *out = json_object();
    json_object_set_new(out, "WebhookId", json_integer(ex->webhook_id));
    json_object_set_new(out, "EventId", json_string(res->event_uuid));
    json_object_set_new(out, "Success", json_boolean(res->success));
    json_object_set_new(out, "StatusCode", json_integer(res->status));
    json_object_set_new(out, "Error", json_string(res->error));
    json_object_set_new(out, "Response", resp ? resp : json_string(""));
    hk_respond_json(ex->ctx, 200, out);
    free(ex);
}

static void execute(hk_ctx *ctx)
{
    char *ext = hk_query_get(ctx, "extension");
    if (ext == NULL || ext[0] == '\0') {
        free(ext);
        hk_respond_error(ctx, 400, "%s", MSG_MISSING_EXTENSION);
        return;
    }
    if (hk_utf8_chars(ctx->req->body, ctx->req->body_len) > EXECUTE_BODY_MAX_CHARS) {
        free(ext);
        hk_respond_error(ctx, 400, "%s", MSG_BODY_TOO_LONG);
        return;
    }
    uint32_t id = 0;
    hk_webhook w;
    memset(&w, 0, sizeof(w)); /* filled by the store; safe to free either way */
    int rc = hk_store_webhook_by_extension(ctx->app->db, ext, &id);
    if (rc == 0)
        rc = hk_store_webhook_get(ctx->app->db, id, &w);
    if (rc == HK_ENOTFOUND) {
        bool mistyped = extension_other_case(ctx->app->db, ext);
        free(ext);
        hk_webhook_free(&w);
        hk_respond_error(ctx, 400, "%s", mistyped ? MSG_MISTYPED_EXTENSION : MSG_INVALID_EXTENSION);
        return;
    }
    free(ext);
    if (rc != 0) {
        hk_webhook_free(&w);
        hk_respond_store_error(ctx, rc);
        return;
    }
    if (w.state != HK_WH_ACTIVE) {
        hk_respond_error(ctx, 400, "Webhook validation failed for Execute operation. Errors: The webhook is %s. ",
                         hk_webhook_state_name(w.state));
        hk_webhook_free(&w);
        return;
    }
    char *data = execute_data(ctx);
    if (data == NULL) {
        hk_webhook_free(&w);
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_webhook(&t, &w);
    hk_webhook_free(&w);
    struct execute *ex = hk_calloc(1, sizeof(*ex));
    ex->ctx = ctx;
    ex->webhook_id = t.webhook_id;
    hk_sync_event ev = {.name = "webhook.execute",
                        .primary_key = t.webhook_id,
                        .data = data,
                        .changes = "[\"WebhookBody\"]",
                        .user_id = ctx->user.id,
                        .extra_headers = NULL,
                        .record = true};
    rc = hk_sync_send(ctx->app, &t, &ev, execute_done, ex);
    free(data);
    if (rc != 0) {
        free(ex);
        if (rc == HK_ESHUTDOWN)
            hk_respond_error(ctx, 503, "server is shutting down");
        else
            hk_respond_error(ctx, 400, "the webhook's target URL is not an absolute http(s) URL");
    }
    hk_target_free(&t);
}

const hk_api_route hk_ivanti_routes[] = {
    {"POST", "/api/rest/Webhooks/Execute", execute, HK_PERM_EXECUTE},
};
const size_t hk_ivanti_routes_count = HK_ARRAY_SIZE(hk_ivanti_routes);
