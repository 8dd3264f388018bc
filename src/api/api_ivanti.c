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
 *      application/json (or +json), well-formed XML for application/xml,
 *      text/xml (or +xml); any other or no Content-Type is refused.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_sync.h"
#include "delivery.h"
#include "utf8.h"
#include "webhook.h"

#define EXECUTE_BODY_MAX_CHARS 100000 /* Ivanti's documented limit, in characters */
#define XML_DEPTH_MAX 256             /* element nesting accepted in an XML body */

#define MSG_MISSING_EXTENSION                                                                                          \
    "Webhook validation failed for Execute operation. Errors: You must enter an endpoint extension to your base URL. "
#define MSG_INVALID_EXTENSION "Invalid Webhook Extension Provided. "
#define MSG_MISTYPED_EXTENSION "This webhook extension doesn't exist."
#define MSG_BODY_TOO_LONG "Request Body must be less than or equal to 100,000 characters"

/* ---- XML well-formedness ------------------------------------------------------ */

struct xml {
    const char *p, *end, *start;
    char *err;
    size_t errlen;
};

static bool xml_fail(struct xml *x, const char *what)
{
    size_t line = 1;
    for (const char *q = x->start; q < x->p && q < x->end; q++)
        line += *q == '\n';
    snprintf(x->err, x->errlen, "%s at line %zu", what, line);
    return false;
}

static bool xml_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool xml_name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

static bool xml_name_char(unsigned char c)
{
    return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool xml_starts(const struct xml *x, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

/* Skips past the next occurrence of s; false when there is none. */
static bool xml_skip_past(struct xml *x, const char *s)
{
    size_t n = strlen(s);
    const char *q = memmem(x->p, (size_t)(x->end - x->p), s, n);
    if (q == NULL)
        return false;
    x->p = q + n;
    return true;
}

static bool xml_name(struct xml *x, const char **name, size_t *len)
{
    if (x->p >= x->end || !xml_name_start((unsigned char)*x->p))
        return xml_fail(x, "a name was expected");
    *name = x->p;
    while (x->p < x->end && xml_name_char((unsigned char)*x->p))
        x->p++;
    *len = (size_t)(x->p - *name);
    return true;
}

/* An entity or character reference after '&': only the five predefined entities exist without a DTD. */
static bool xml_reference(struct xml *x)
{
    x->p++;
    const char *semi = memchr(x->p, ';', (size_t)(x->end - x->p));
    if (semi == NULL || semi - x->p > 12)
        return xml_fail(x, "'&' that does not start a reference");
    size_t n = (size_t)(semi - x->p);
    bool ok = false;
    if (n >= 2 && x->p[0] == '#') {
        const char *d = x->p + 1;
        bool hex = *d == 'x';
        if (hex)
            d++;
        ok = d < semi;
        for (; d < semi && ok; d++)
            ok = hex ? strchr("0123456789abcdefABCDEF", *d) != NULL : (*d >= '0' && *d <= '9');
    } else {
        static const char *const names[] = {"lt", "gt", "amp", "apos", "quot"};
        for (size_t i = 0; i < HK_ARRAY_SIZE(names) && !ok; i++)
            ok = strlen(names[i]) == n && memcmp(x->p, names[i], n) == 0;
    }
    if (!ok)
        return xml_fail(x, "unknown entity or malformed character reference");
    x->p = semi + 1;
    return true;
}

/* Comments, processing instructions and CDATA; false with err set when malformed. *done when one was read. */
static bool xml_misc(struct xml *x, bool cdata_ok, bool *done)
{
    *done = true;
    if (xml_starts(x, "<!--")) {
        x->p += 4;
        return xml_skip_past(x, "-->") || xml_fail(x, "unterminated comment");
    }
    if (xml_starts(x, "<?")) {
        x->p += 2;
        return xml_skip_past(x, "?>") || xml_fail(x, "unterminated processing instruction");
    }
    if (cdata_ok && xml_starts(x, "<![CDATA[")) {
        x->p += 9;
        return xml_skip_past(x, "]]>") || xml_fail(x, "unterminated CDATA section");
    }
    if (xml_starts(x, "<!DOCTYPE") || xml_starts(x, "<!"))
        return xml_fail(x, "document type declarations are not accepted");
    *done = false;
    return true;
}

/* A start tag after '<': name, attributes, then '>' or '/>'. */
static bool xml_start_tag(struct xml *x, const char **name, size_t *len, bool *empty)
{
    x->p++;
    if (!xml_name(x, name, len))
        return false;
    for (;;) {
        bool sp = false;
        while (x->p < x->end && xml_space(*x->p)) {
            x->p++;
            sp = true;
        }
        if (x->p >= x->end)
            return xml_fail(x, "unterminated start tag");
        if (*x->p == '>') {
            x->p++;
            *empty = false;
            return true;
        }
        if (xml_starts(x, "/>")) {
            x->p += 2;
            *empty = true;
            return true;
        }
        if (!sp)
            return xml_fail(x, "white space was expected between attributes");
        const char *an;
        size_t al;
        if (!xml_name(x, &an, &al))
            return false;
        while (x->p < x->end && xml_space(*x->p))
            x->p++;
        if (x->p >= x->end || *x->p != '=')
            return xml_fail(x, "'=' was expected after an attribute name");
        x->p++;
        while (x->p < x->end && xml_space(*x->p))
            x->p++;
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
            return xml_fail(x, "a quoted attribute value was expected");
        char q = *x->p++;
        while (x->p < x->end && *x->p != q) {
            if (*x->p == '<')
                return xml_fail(x, "'<' inside an attribute value");
            if (*x->p == '&') {
                if (!xml_reference(x))
                    return false;
            } else {
                x->p++;
            }
        }
        if (x->p >= x->end)
            return xml_fail(x, "unterminated attribute value");
        x->p++;
    }
}

/*
 * Checks that text is one well-formed XML document (no DTD): a prolog of
 * declarations, comments and processing instructions, one root element
 * with balanced, properly nested tags, quoted attributes and valid
 * references, then only comments, processing instructions and white space.
 */
static bool xml_well_formed(const char *text, size_t len, char *err, size_t errlen)
{
    struct xml x = {text, text + len, text, err, errlen};
    struct {
        const char *name;
        size_t len;
    } stack[XML_DEPTH_MAX];
    int depth = 0;
    bool root_done = false;
    if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        x.p += 3;
    while (x.p < x.end) {
        if (depth == 0) {
            while (x.p < x.end && xml_space(*x.p))
                x.p++;
            if (x.p >= x.end)
                break;
        }
        if (*x.p == '<') {
            bool done;
            if (!xml_misc(&x, depth > 0, &done))
                return false;
            if (done)
                continue;
            if (xml_starts(&x, "</")) {
                if (depth == 0)
                    return xml_fail(&x, "an end tag without a start tag");
                x.p += 2;
                const char *nm;
                size_t nl;
                if (!xml_name(&x, &nm, &nl))
                    return false;
                while (x.p < x.end && xml_space(*x.p))
                    x.p++;
                if (x.p >= x.end || *x.p != '>')
                    return xml_fail(&x, "unterminated end tag");
                depth--;
                if (nl != stack[depth].len || memcmp(nm, stack[depth].name, nl) != 0)
                    return xml_fail(&x, "an end tag that does not match its start tag");
                x.p++;
                root_done = depth == 0;
                continue;
            }
            if (root_done && depth == 0)
                return xml_fail(&x, "a second root element");
            const char *nm;
            size_t nl;
            bool empty;
            if (!xml_start_tag(&x, &nm, &nl, &empty))
                return false;
            if (empty) {
                root_done = root_done || depth == 0;
                continue;
            }
            if (depth == XML_DEPTH_MAX)
                return xml_fail(&x, "elements nested too deeply");
            stack[depth].name = nm;
            stack[depth].len = nl;
            depth++;
            continue;
        }
        if (depth == 0)
            return xml_fail(&x, root_done ? "text after the root element" : "text before the root element");
        if (*x.p == '&') {
            if (!xml_reference(&x))
                return false;
        } else {
            x.p++;
        }
    }
    if (depth > 0)
        return xml_fail(&x, "the document ends inside an element");
    if (!root_done) {
        snprintf(err, errlen, "no root element");
        return false;
    }
    return true;
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
static bool extension_other_case(hk_txn *txn, const char *ext)
{
    hk_cursor *c;
    hk_val k, v;
    size_t len = strlen(ext);
    bool found = false;
    if (hk_cursor_open(txn, HK_DB_EXTENSIONS, &c) != 0)
        return false;
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && !found; rc = hk_cursor_get(c, HK_NEXT, &k, &v))
        found = k.len == len && strncasecmp(k.data, ext, len) == 0;
    hk_cursor_close(c);
    return found;
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
            while (i < len && xml_space(body[i]))
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
        if (!xml_well_formed(body, len, why, sizeof(why))) {
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
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        free(ext);
        hk_respond_store_error(ctx, rc);
        return;
    }
    uint32_t id = 0;
    json_t *rec = NULL;
    rc = hk_webhook_by_extension(txn, ext, &id);
    if (rc == 0)
        rc = hk_webhook_get(txn, id, &rec);
    if (rc == HK_ENOTFOUND) {
        bool mistyped = extension_other_case(txn, ext);
        hk_txn_end(txn);
        free(ext);
        hk_respond_error(ctx, 400, "%s", mistyped ? MSG_MISTYPED_EXTENSION : MSG_INVALID_EXTENSION);
        return;
    }
    hk_txn_end(txn);
    free(ext);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    const char *state = hk_wh_str(rec, "state");
    if (strcmp(state, HK_STATE_ACTIVE) != 0) {
        hk_respond_error(ctx, 400, "Webhook validation failed for Execute operation. Errors: The webhook is %s. ",
                         state);
        json_decref(rec);
        return;
    }
    char *data = execute_data(ctx);
    if (data == NULL) {
        json_decref(rec);
        return;
    }
    hk_target t;
    memset(&t, 0, sizeof(t));
    hk_target_from_record(&t, rec);
    json_decref(rec);
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
