/*
 * api.c: request dispatch (route, authenticate, authorise), the dialects'
 * error shapes and the JSON helpers every handler uses.
 *
 * Error shapes:
 *   SuperOffice (/api/v1)   {"Error": msg, "ErrorType": kind, "Message": msg}
 *   EnergyCAP (/api/v3...)  {"status": n, "title": reason, "message": msg[, "errors": {field: [msg]}]}
 *   Ivanti (/api/rest)      {"ErrorCode": "UnhandledSystemException-", "Message": "Unhandled system exception: msg"}
 *                           and for 401 the ISM_4001 body of the vendor
 *   elsewhere               {"error": msg}
 */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "api_console.h"
#include "api_docs.h"
#include "api_metrics.h"
#include "json_patch.h"
#include "log.h"

/* Seconds a client is told to wait when its credentials could not be read from the store. */
#define AUTH_RETRY_AFTER_S 5

#define IVANTI_401_BODY                                                                                                \
    "{\"code\":\"ISM_4001\",\"description\":\"Invalid Session key or Authentication token\",\"message\":\"\","         \
    "\"help\":\"\"}"

/* True when path starts with prefix (compared without regard to case) followed by the end or a '/'. */
static bool has_prefix(const char *path, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(path, prefix, n) == 0 && (len == n || path[n] == '/');
}

enum hk_dialect hk_api_dialect(const char *path, size_t len)
{
    if (has_prefix(path, len, "/api/v1"))
        return HK_DIALECT_SO;
    /* EnergyCAP: /api/v3 and the dated versions /api/v2022... */
    if (has_prefix(path, len, "/api/v3"))
        return HK_DIALECT_ECAP;
    if (len >= 12 && strncasecmp(path, "/api/v20", 8) == 0)
        return HK_DIALECT_ECAP;
    if (has_prefix(path, len, "/api/rest"))
        return HK_DIALECT_IVANTI;
    return HK_DIALECT_PLAIN;
}

static const char *so_error_type(int status)
{
    switch (status) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 413: return "RequestTooLarge";
    default: return status >= 500 ? "ServerError" : "RequestError";
    }
}

static json_t *error_json(enum hk_dialect d, int status, const char *field, const char *msg)
{
    switch (d) {
    case HK_DIALECT_SO:
        return json_pack("{s:s, s:s, s:s}", "Error", msg, "ErrorType", so_error_type(status), "Message", msg);
    case HK_DIALECT_ECAP: {
        json_t *j = json_pack("{s:i, s:s, s:s}", "status", status, "title", hk_http_reason(status), "message", msg);
        if (field != NULL)
            json_object_set_new(j, "errors", json_pack("{s:[s]}", field, msg));
        return j;
    }
    case HK_DIALECT_IVANTI: {
        char full[1200];
        snprintf(full, sizeof(full), "Unhandled system exception: %s", msg);
        return json_pack("{s:s, s:s}", "ErrorCode", "UnhandledSystemException-", "Message", full);
    }
    default: return json_pack("{s:s}", "error", msg);
    }
}

char *hk_api_error_body(const char *path, size_t path_len, int status, const char *message)
{
    enum hk_dialect d = path ? hk_api_dialect(path, path_len) : HK_DIALECT_PLAIN;
    if (d == HK_DIALECT_IVANTI && status == 401)
        return hk_strdup(IVANTI_401_BODY);
    json_t *j = error_json(d, status, NULL, message);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* ---- responding -------------------------------------------------------- */

static void ctx_free(hk_ctx *ctx)
{
    hk_route_params_free(&ctx->params);
    free(ctx);
}

void hk_respond_raw(hk_ctx *ctx, int status, const char *content_type, const char *extra_headers, const char *body,
                    size_t len)
{
    hk_http_respond(ctx->req, status, content_type, extra_headers, body, len);
    ctx_free(ctx);
}

void hk_respond_json_headers(hk_ctx *ctx, int status, const char *extra_headers, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (body != NULL && text == NULL) {
        /* Only invalid UTF-8 in a string can fail here; none is ever stored. */
        json_decref(body);
        hk_respond_error(ctx, 500, "response could not be encoded");
        return;
    }
    json_decref(body);
    hk_respond_raw(ctx, status, "application/json; charset=utf-8", extra_headers, text ? text : "null",
                   text ? strlen(text) : 4);
    free(text);
}

void hk_respond_json(hk_ctx *ctx, int status, json_t *body)
{
    hk_respond_json_headers(ctx, status, NULL, body);
}

void hk_respond_empty(hk_ctx *ctx, int status)
{
    hk_respond_raw(ctx, status, NULL, NULL, NULL, 0);
}

static void respond_error_v(hk_ctx *ctx, int status, const char *field, const char *extra, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));

static void respond_error_v(hk_ctx *ctx, int status, const char *field, const char *extra, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (ctx->dialect == HK_DIALECT_IVANTI && status == 401) {
        hk_respond_raw(ctx, 401, "application/json; charset=utf-8", NULL, IVANTI_401_BODY, strlen(IVANTI_401_BODY));
        return;
    }
    json_t *j = error_json(ctx->dialect, status, field, msg);
    if (status == 401)
        extra = ctx->dialect == HK_DIALECT_ECAP ? "WWW-Authenticate: ECI-ApiKey\r\n"
                                                : "WWW-Authenticate: Bearer, Basic realm=\"hookd\"\r\n";
    hk_respond_json_headers(ctx, status, extra, j);
}

void hk_respond_error(hk_ctx *ctx, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(ctx, status, NULL, NULL, fmt, ap);
    va_end(ap);
}

void hk_respond_field_error(hk_ctx *ctx, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(ctx, status, field, NULL, fmt, ap);
    va_end(ap);
}

static void respond_error_headers(hk_ctx *ctx, int status, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void respond_error_headers(hk_ctx *ctx, int status, const char *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(ctx, status, NULL, extra, fmt, ap);
    va_end(ap);
}

bool hk_api_store_failure(int status)
{
    return status == HK_EFULL || status == HK_ESTORE || status == UV_ENOSPC || status == UV_EIO ||
           status == UV_ECONNREFUSED || status == UV_ECONNRESET;
}

void hk_api_note_commit(hk_api_env *env, int status)
{
    if (env == NULL)
        return;
    if (status == 0) {
        if (env->store_failing)
            hk_info("store: writes succeed again; ready");
        env->store_failing = false;
    } else if (hk_api_store_failure(status)) {
        if (!env->store_failing)
            hk_warn("store: a write failed (%s); not ready until one succeeds", hk_strerror(status));
        env->store_failing = true;
    }
}

void hk_respond_store_error(hk_ctx *ctx, int err)
{
    if (err == HK_EFULL || err == UV_ENOSPC) {
        char extra[40];
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", HK_API_RETRY_AFTER_FULL_S);
        respond_error_headers(ctx, 503, extra, "storage is full; nothing was changed");
    } else if (err == HK_ESHUTDOWN) {
        hk_respond_error(ctx, 503, "server is shutting down");
    } else if (err == UV_ECONNREFUSED || err == UV_ECONNRESET) {
        /* Cluster mode, the database out of reach: refused (nothing stored), or lost with the commit in flight
         * (perhaps stored: a retry with the same Idempotency-Key is safe). */
        char extra[40];
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", HK_API_RETRY_AFTER_DB_S);
        respond_error_headers(ctx, 503, extra,
                              err == UV_ECONNREFUSED ? "the cluster's database is unreachable; nothing was changed"
                                                     : "the connection to the cluster's database was lost; whether "
                                                       "the change was stored is unknown: retry it");
    } else {
        hk_respond_error(ctx, 503, "storage unavailable: %s", hk_strerror(err));
    }
}

/* ---- request helpers ---------------------------------------------------- */

char *hk_query_get(const hk_ctx *ctx, const char *name)
{
    const char *q = ctx->req->query;
    size_t nlen = strlen(name);
    while (*q != '\0') {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', len);
        size_t klen = eq ? (size_t)(eq - q) : len;
        char *key = hk_percent_decode(q, klen, 1);
        bool match = key != NULL && strlen(key) == nlen && strcasecmp(key, name) == 0;
        free(key);
        if (match) {
            if (eq == NULL)
                return hk_strdup("");
            return hk_percent_decode(eq + 1, len - klen - 1, 1);
        }
        if (amp == NULL)
            break;
        q = amp + 1;
    }
    return NULL;
}

int hk_param_id(const hk_ctx *ctx, const char *name, uint64_t max, uint64_t *out)
{
    const char *s = hk_route_param(&ctx->params, name);
    if (s == NULL || *s < '0' || *s > '9')
        return HK_EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno != 0 || v == 0 || v > max)
        return HK_EINVAL;
    *out = v;
    return 0;
}

int hk_query_long(const hk_ctx *ctx, const char *name, long def, long min, long max, long *out)
{
    char *v = hk_query_get(ctx, name);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    bool ok = *v != '\0' && *end == '\0' && errno == 0 && n >= min && n <= max;
    free(v);
    if (!ok)
        return HK_EINVAL;
    *out = n;
    return 0;
}

json_t *hk_json_member_ci(const json_t *obj, const char *name)
{
    const char *key = hk_json_object_key(obj, name, true);
    return key ? json_object_get(obj, key) : NULL;
}

json_t *hk_body_json(const hk_ctx *ctx, char *err, size_t errlen, bool *empty)
{
    const hk_http_request *r = ctx->req;
    size_t i = 0;
    while (i < r->body_len && (r->body[i] == ' ' || r->body[i] == '\t' || r->body[i] == '\r' || r->body[i] == '\n'))
        i++;
    if (empty != NULL)
        *empty = i == r->body_len;
    if (i == r->body_len) {
        snprintf(err, errlen, "request body is empty; a JSON document is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        snprintf(err, errlen, "malformed JSON at line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
    return j;
}

/* ---- health ------------------------------------------------------------ */

static void healthz(hk_ctx *ctx)
{
    hk_respond_json(ctx, 200, json_pack("{s:s}", "status", "ok"));
}

static void readyz(hk_ctx *ctx)
{
    /* Not ready while the store's last group commit failed for want of
     * space or an I/O error: whoever submitted it (an API write, a
     * delivery's outcome, a prune step), until a commit succeeds again. */
    hk_store_counters c;
    hk_store_get_counters(ctx->app->db, &c);
    bool ready = ctx->app->ready && !ctx->app->draining && !hk_api_store_failure(c.last_commit_status) &&
                 hk_store_available(ctx->app->db);
    hk_respond_json(ctx, ready ? 200 : 503, json_pack("{s:s}", "status", ready ? "ready" : "not ready"));
}

static const hk_api_route core_routes[] = {
    {"GET", "/healthz", healthz, 0},
    {"HEAD", "/healthz", healthz, 0},
    {"GET", "/readyz", readyz, 0},
    {"HEAD", "/readyz", readyz, 0},
};

static void register_routes(hk_router *r, const hk_api_route *routes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Every dialect's server matches its paths without regard to case. */
        const char *p = routes[i].pattern;
        unsigned flags = hk_api_dialect(p, strlen(p)) != HK_DIALECT_PLAIN ? HK_ROUTE_NOCASE : 0;
        hk_router_add(r, routes[i].method, routes[i].pattern, flags, &routes[i]);
    }
}

void hk_api_core_routes(hk_router *r)
{
    register_routes(r, core_routes, HK_ARRAY_SIZE(core_routes));
}

/* Each module's table; a module adds itself here. */
extern const hk_api_route hk_superoffice_routes[], hk_energycap_routes[], hk_ivanti_routes[], hk_signal_routes[],
    hk_log_routes[], hk_webhook_test_routes[], hk_custom_action_routes[], hk_nodes_routes[], hk_recover_routes[];
extern const size_t hk_superoffice_routes_count, hk_energycap_routes_count, hk_ivanti_routes_count,
    hk_signal_routes_count, hk_log_routes_count, hk_webhook_test_routes_count, hk_custom_action_routes_count,
    hk_nodes_routes_count, hk_recover_routes_count;

hk_router *hk_api_router(void)
{
    hk_router *r = hk_router_new();
    hk_api_core_routes(r);
    register_routes(r, hk_superoffice_routes, hk_superoffice_routes_count);
    register_routes(r, hk_energycap_routes, hk_energycap_routes_count);
    register_routes(r, hk_ivanti_routes, hk_ivanti_routes_count);
    register_routes(r, hk_signal_routes, hk_signal_routes_count);
    register_routes(r, hk_log_routes, hk_log_routes_count);
    register_routes(r, hk_webhook_test_routes, hk_webhook_test_routes_count);
    register_routes(r, hk_custom_action_routes, hk_custom_action_routes_count);
    register_routes(r, hk_nodes_routes, hk_nodes_routes_count);
    register_routes(r, hk_recover_routes, hk_recover_routes_count);
    hk_api_docs_routes(r);
    hk_api_metrics_routes(r);
    hk_api_console_routes(r);
    hk_api_activity_routes(r);
    return r;
}

/* ---- dispatch ---------------------------------------------------------- */

/*
 * What routing and authentication found for a request. The head hook works
 * it out as soon as the head is complete and hands it to the dispatcher in
 * req->slot; without the hook the dispatcher works it out itself.
 */
struct head {
    int match;                 /* the router's answer: 0, 404 or 405 */
    char allow[128];           /* with 405: the methods the path takes */
    const hk_api_route *route; /* with 0: the route */
    hk_route_params params;    /* with 0: its parameters (moved to the ctx by the dispatcher) */
    enum hk_auth_result auth;  /* when the route needs a permission */
    bool authed;               /* user is filled in */
    bool allowed;              /* the route needs no permission, or the user has it */
    hk_user user;              /* the authenticated user */
};

static void classify(hk_api_env *app, const hk_http_request *req, struct head *h)
{
    const void *rd = NULL;
    h->match = hk_router_match(app->router, req->method_name, req->path, req->path_len, &rd, &h->params, h->allow,
                               sizeof(h->allow));
    if (h->match != 0)
        return;
    h->route = rd;
    /* [metrics] public grants Metrics:Read to requests without a key. */
    unsigned open = app->cfg != NULL && app->cfg->metrics_public ? HK_PERM_METRICS : 0;
    h->allowed = (h->route->perm & ~open) == 0;
    if (h->allowed)
        return;
    h->auth = hk_auth_check(app->db, req, &h->user);
    h->authed = h->auth == HK_AUTH_OK;
    h->allowed = h->authed && hk_perm_allows(h->user.perms, h->route->perm);
}

/* Answers a request its head already refuses (404, 405, 401, 403); false when the handler may run. */
static bool refuse(hk_ctx *ctx, const struct head *h)
{
    if (h->match == 404) {
        hk_respond_error(ctx, 404, "no resource at %s", ctx->req->path);
        return true;
    }
    if (h->match != 0) {
        char extra[160];
        snprintf(extra, sizeof(extra), "Allow: %s\r\n", h->allow);
        hk_respond_json_headers(ctx, 405, extra, error_json(ctx->dialect, 405, NULL, "method not allowed"));
        return true;
    }
    if (h->allowed)
        return false;
    if (h->auth == HK_AUTH_UNAVAILABLE) {
        /* The key could not be looked up: not the client's fault, and
         * nothing is known of its key. Never 401 or 403 for it. */
        char extra[40];
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", AUTH_RETRY_AFTER_S);
        respond_error_headers(ctx, 503, extra,
                              "storage unavailable: the credentials could not be checked; nothing was changed");
        return true;
    }
    if (!h->authed) {
        hk_respond_error(ctx, 401,
                         h->auth == HK_AUTH_MISSING ? "authentication required: send an API key"
                                                    : "invalid or revoked API key");
        return true;
    }
    char need[128];
    hk_perm_format(h->route->perm, need, sizeof(need));
    hk_respond_error(ctx, 403, "permission %s is required", need);
    return true;
}

static hk_ctx *ctx_new(hk_http_request *req, hk_api_env *app)
{
    hk_ctx *ctx = hk_calloc(1, sizeof(*ctx));
    ctx->req = req;
    ctx->app = app;
    ctx->dialect = hk_api_dialect(req->path, req->path_len);
    return ctx;
}

void hk_api_slot_free(void *slot)
{
    struct head *h = slot;
    if (h == NULL)
        return;
    hk_route_params_free(&h->params);
    free(h);
}

void hk_api_on_head(hk_http_request *req, void *data)
{
    hk_api_env *app = data;
    struct head *h = hk_calloc(1, sizeof(*h));
    classify(app, req, h);
    /* A request that cannot pass is answered now, before its body is read,
     * when it has one: so a client without a valid key cannot make the
     * server buffer bodies. The server then closes the connection, as the
     * unread body cannot be skipped; a request without a body keeps its
     * connection, answered by the dispatcher as before. */
    if (req->body_expected && h->match == 0 && !h->allowed) {
        hk_ctx *ctx = ctx_new(req, app);
        refuse(ctx, h);
        hk_api_slot_free(h);
        return;
    }
    req->slot = h;
}

void hk_api_dispatch(hk_http_request *req, void *data)
{
    hk_api_env *app = data;
    struct head local = {0}, *h = req->slot;
    if (h == NULL) {
        h = &local;
        classify(app, req, h);
    }
    hk_ctx *ctx = ctx_new(req, app);
    /* The ctx owns the parameters from here; the slot keeps an empty set. */
    ctx->params = h->params;
    memset(&h->params, 0, sizeof(h->params));
    ctx->user = h->user;
    ctx->authed = h->authed;
    if (refuse(ctx, h))
        return;
    h->route->fn(ctx);
}
