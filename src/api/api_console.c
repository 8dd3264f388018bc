/*
 * api_console.c: the console's files and its sign-in check.
 *   GET /console, /console/           index.html (a path without the slash is redirected to it)
 *   GET /console/console.css and the scripts (console.js, webhooks.js, ...)
 *   GET /console/api/me               who the key belongs to and what it may do
 *
 * The files need no key: the page asks for one and keeps it in the
 * browser's sessionStorage. Every answer carries hk_console_headers: a
 * Content-Security-Policy that allows scripts, styles and requests from
 * this origin only (no inline script or style, no frames, no other
 * origin), nosniff, no referrer.
 */
#include "api_console.h"

#include <stdio.h>
#include <string.h>

#include "api.h"

const char hk_console_headers[] =
    "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: no-referrer\r\n"
    "Cross-Origin-Opener-Policy: same-origin\r\n"
    "Cross-Origin-Resource-Policy: same-origin\r\n"
    "Cache-Control: no-cache\r\n";

struct asset {
    const char *path;
    const char *type;
    const unsigned char *bytes;
    const size_t *len;
};

static const struct asset assets[] = {
    {"/console/console.css", "text/css; charset=utf-8", hk_console_console_css, &hk_console_console_css_len},
    {"/console/console.js", "text/javascript; charset=utf-8", hk_console_console_js, &hk_console_console_js_len},
    {"/console/webhooks.js", "text/javascript; charset=utf-8", hk_console_webhooks_js, &hk_console_webhooks_js_len},
    {"/console/deliveries.js", "text/javascript; charset=utf-8", hk_console_deliveries_js,
     &hk_console_deliveries_js_len},
    {"/console/activity.js", "text/javascript; charset=utf-8", hk_console_activity_js, &hk_console_activity_js_len},
};

static void respond_asset(hk_ctx *ctx, const struct asset *a)
{
    hk_respond_raw(ctx, 200, a->type, hk_console_headers, (const char *)a->bytes, *a->len);
}

static void index_page(hk_ctx *ctx)
{
    const hk_http_request *r = ctx->req;
    if (r->path_len == 0 || r->path[r->path_len - 1] != '/') {
        /* The page's files are named relative to /console/. */
        char extra[sizeof(hk_console_headers) + 64];
        snprintf(extra, sizeof(extra), "Location: /console/\r\n%s", hk_console_headers);
        hk_respond_raw(ctx, 301, "text/plain; charset=utf-8", extra, "see /console/\n", 14);
        return;
    }
    hk_respond_raw(ctx, 200, "text/html; charset=utf-8", hk_console_headers, (const char *)hk_console_index_html,
                   hk_console_index_html_len);
}

static void asset(hk_ctx *ctx)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(assets); i++) {
        if (strlen(assets[i].path) == ctx->req->path_len &&
            memcmp(assets[i].path, ctx->req->path, ctx->req->path_len) == 0) {
            respond_asset(ctx, &assets[i]);
            return;
        }
    }
    /* Only the table's paths are routed here. */
    hk_respond_error(ctx, 404, "no resource at %s", ctx->req->path);
}

/* Adds the name of permission bit to list when perms allow it (Manage counts as View, as the routes see it). */
static void add_perm(json_t *list, unsigned perms, unsigned bit)
{
    char name[64];
    if (!hk_perm_allows(perms, bit))
        return;
    hk_perm_format(bit, name, sizeof(name));
    json_array_append_new(list, json_string(name));
}

/* The route needs a key but no permission: any valid key may ask what it may do. */
static void me(hk_ctx *ctx)
{
    hk_user u;
    enum hk_auth_result auth = hk_auth_check(ctx->app->db, ctx->req, &u);
    if (auth == HK_AUTH_UNAVAILABLE) {
        hk_respond_json_headers(
            ctx, 503, "Retry-After: 5\r\n",
            json_pack("{s:s}", "error", "storage unavailable: the credentials could not be checked"));
        return;
    }
    if (auth != HK_AUTH_OK) {
        hk_respond_error(ctx, 401,
                         auth == HK_AUTH_MISSING ? "authentication required: send an API key"
                                                 : "invalid or revoked API key");
        return;
    }
    json_t *perms = json_array();
    static const unsigned bits[] = {HK_PERM_VIEW,   HK_PERM_MANAGE,  HK_PERM_ACCOUNTS,
                                    HK_PERM_SIGNAL, HK_PERM_EXECUTE, HK_PERM_METRICS};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bits); i++)
        add_perm(perms, u.perms, bits[i]);
    json_t *out =
        json_pack("{s:I, s:s, s:s, s:o, s:{s:b, s:b, s:b}}", "userId", (json_int_t)u.id, "userCode", u.code, "fullName",
                  u.full_name, "permissions", perms, "can", "view", hk_perm_allows(u.perms, HK_PERM_VIEW), "manage",
                  hk_perm_allows(u.perms, HK_PERM_MANAGE), "signal", hk_perm_allows(u.perms, HK_PERM_SIGNAL));
    hk_respond_json_headers(ctx, 200, hk_console_headers, out);
}

static const hk_api_route console_routes[] = {
    {"GET", "/console/", index_page, 0},         {"GET", "/console/console.css", asset, 0},
    {"GET", "/console/console.js", asset, 0},    {"GET", "/console/webhooks.js", asset, 0},
    {"GET", "/console/deliveries.js", asset, 0}, {"GET", "/console/activity.js", asset, 0},
    {"GET", "/console/api/me", me, 0},
};

void hk_api_console_routes(hk_router *r)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(console_routes); i++)
        hk_router_add(r, console_routes[i].method, console_routes[i].pattern, 0, &console_routes[i]);
}
