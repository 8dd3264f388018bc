/*
 * api_docs.c: GET /openapi.json, the OpenAPI 3.1 document of every route
 * (src/api/openapi.json, embedded at build time). It needs no key, so that
 * tools and people can read the API before they have one.
 */
#include "api_docs.h"

#include "api.h"

static void openapi_json(hk_ctx *ctx)
{
    hk_respond_raw(ctx, 200, "application/json", "Cache-Control: no-cache\r\n", (const char *)hk_openapi_json,
                   hk_openapi_json_len);
}

static const hk_api_route docs_routes[] = {
    {"GET", "/openapi.json", openapi_json, 0},
};

void hk_api_docs_routes(hk_router *r)
{
    /* Outside the dialects: matched with case, like /healthz. */
    for (size_t i = 0; i < HK_ARRAY_SIZE(docs_routes); i++)
        hk_router_add(r, docs_routes[i].method, docs_routes[i].pattern, 0, &docs_routes[i]);
}
