/*
 * api.h: what every API handler shares: the request context, the three
 * dialects' error shapes, JSON in and out, and query parameters.
 */
#ifndef HK_API_H
#define HK_API_H

#include <jansson.h>
#include <stdbool.h>

#include <uv.h>

#include "config.h"
#include "engine.h"
#include "kv.h"
#include "auth.h"
#include "http_server.h"
#include "date.h"
#include "router.h"

/** The API dialect a path belongs to; it decides the error shape. */
enum hk_dialect {
    HK_DIALECT_PLAIN, /**< /healthz, /readyz and unknown paths */
    HK_DIALECT_SO,    /**< SuperOffice: /api/v1 */
    HK_DIALECT_ECAP,  /**< EnergyCAP: /api/v3, /api/v202211 */
    HK_DIALECT_IVANTI /**< Ivanti: /api/rest */
};

/**
 * One request being handled. Allocated by the dispatcher; freed by the
 * hk_respond_* call that answers it, which every handler makes exactly
 * once (possibly later, from a callback).
 */
/**
 * What the handlers run against. The app layer owns every part and fills
 * this in; the handlers only borrow them.
 */
typedef struct hk_api_env {
    uv_loop_t *loop;      /**< the event loop */
    const hk_config *cfg; /**< configuration */
    hk_kv_env *store;      /**< the store */
    hk_engine *engine;    /**< the delivery engine; NULL once stopped */
    hk_router *router;    /**< API routes */
    bool ready;           /**< /readyz answers 200 */
    bool draining;        /**< SIGTERM received */
} hk_api_env;

typedef struct hk_ctx {
    hk_http_request *req;    /**< the request (valid until answered) */
    hk_api_env *app;         /**< the server's parts */
    enum hk_dialect dialect; /**< decides error shapes */
    hk_user user;            /**< the authenticated user (routes with a permission) */
    bool authed;             /**< user is filled in */
    hk_route_params params;  /**< {name} values of the route */
} hk_ctx;

typedef void (*hk_api_fn)(hk_ctx *ctx);

/** A route of an API module. */
typedef struct hk_api_route {
    const char *method;  /**< "GET", "POST", ... */
    const char *pattern; /**< "/api/v1/Webhook/{id}" */
    hk_api_fn fn;        /**< the handler */
    unsigned perm;       /**< HK_PERM_* needed; 0 = no authentication */
} hk_api_route;

/** Builds the router with every module's routes. */
hk_router *hk_api_router(void);

/** The http server's handler: routes, authenticates, calls the handler. */
void hk_api_dispatch(hk_http_request *req, void *app);

/** The http server's error-body formatter (see hk_http_error_body). */
char *hk_api_error_body(const char *path, size_t path_len, int status, const char *message);

/** Which dialect a path belongs to. */
enum hk_dialect hk_api_dialect(const char *path, size_t len);

/** Answers with body serialised compactly; takes the reference to body (may be NULL: JSON null). */
void hk_respond_json(hk_ctx *ctx, int status, json_t *body);

/** Answers with extra headers ("Name: v\r\n" lines) and a JSON body (reference taken). */
void hk_respond_json_headers(hk_ctx *ctx, int status, const char *extra_headers, json_t *body);

/** Answers with raw bytes (copied). */
void hk_respond_raw(hk_ctx *ctx, int status, const char *content_type, const char *extra_headers, const char *body,
                    size_t len);

/** Answers 204 with no body. */
void hk_respond_empty(hk_ctx *ctx, int status);

/** Answers an error in the dialect's shape with a formatted message. */
void hk_respond_error(hk_ctx *ctx, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/** Like hk_respond_error, naming the offending field (EnergyCAP lists it under "errors"). */
void hk_respond_field_error(hk_ctx *ctx, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** Answers 503 (or 500) for a store error code, in the dialect's shape. */
void hk_respond_store_error(hk_ctx *ctx, int err);

/**
 * Returns the decoded value of query parameter name (compared
 * case-insensitively), malloc'd; NULL when absent. *bad is set when the
 * query is malformed.
 */
char *hk_query_get(const hk_ctx *ctx, const char *name);

/**
 * Parses the body as JSON. NULL when the body is empty or malformed, with
 * a message in err (and *empty set for an empty body).
 */
json_t *hk_body_json(const hk_ctx *ctx, char *err, size_t errlen, bool *empty);




/** Route tables of the modules, registered by hk_api_router. */
void hk_api_core_routes(hk_router *r);

#endif
