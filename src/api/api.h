/*
 * api.h: what every API handler shares: the request context, the routes
 * and the dispatcher (with the head hook that checks credentials before a
 * body is read), the three dialects' error shapes, JSON in and out, query
 * and route parameters, and readiness from commit results. Paths match
 * without regard to case in every dialect.
 */
#ifndef HK_API_H
#define HK_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "activity.h"
#include "auth.h"
#include "config.h"
#include "date.h"
#include "engine.h"
#include "http_server.h"
#include "router.h"
#include "store.h"

/** The API dialect a path belongs to; it decides the error shape. */
enum hk_dialect {
    HK_DIALECT_PLAIN, /**< /healthz, /readyz and unknown paths */
    HK_DIALECT_SO,    /**< SuperOffice: /api/v1 */
    HK_DIALECT_ECAP,  /**< EnergyCAP: /api/v3, /api/v202211 */
    HK_DIALECT_IVANTI /**< Ivanti: /api/rest */
};

/**
 * What the handlers run against. The app layer owns every part and fills
 * this in; the handlers only borrow them.
 */
typedef struct hk_api_env {
    uv_loop_t *loop;       /**< the event loop */
    const hk_config *cfg;  /**< configuration */
    hk_store *db;          /**< the store's typed seam (store.h): ops and queries */
    hk_engine *engine;     /**< the delivery engine; NULL once stopped */
    hk_router *router;     /**< API routes */
    hk_activity *activity; /**< attempts per minute for the console (GET /console/api/activity); NULL: none kept */
    bool ready;            /**< set by the app once started: /readyz may answer 200 */
    bool draining;         /**< SIGTERM received: /readyz answers 503 */
    uint32_t worker;       /**< the worker (event loop) these handlers run on: 0 .. workers-1 */
    uint32_t workers;      /**< [server] workers: the metrics sum as many sets (0 counts as 1) */
    /**
     * The last API write that reached the store failed for want of space
     * or because of an I/O error (hk_api_note_commit), for its log line.
     * /readyz follows the store's own last commit status instead
     * (hk_store_counters.last_commit_status), whoever made the commit.
     */
    bool store_failing;
} hk_api_env;

/**
 * One request being handled. Allocated by the dispatcher; freed by the
 * hk_respond_* call that answers it, which every handler makes exactly
 * once (possibly later, from a callback).
 */
typedef struct hk_ctx {
    hk_http_request *req;    /**< the request (valid until answered) */
    hk_api_env *app;         /**< the server's parts */
    enum hk_dialect dialect; /**< decides error shapes */
    hk_user user;            /**< the authenticated user (routes with a permission) */
    bool authed;             /**< user is filled in */
    hk_route_params params;  /**< {name} values of the route */
} hk_ctx;

/** A route's handler: answers ctx exactly once (an hk_respond_* call), now or from a callback. */
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

/**
 * The http server's handler (data: the hk_api_env): routes, authenticates,
 * authorises and calls the route's handler, or answers 404, 405, 401 or
 * 403. It uses what hk_api_on_head found when that hook is installed.
 */
void hk_api_dispatch(hk_http_request *req, void *app);

/**
 * The http server's head hook (hk_http_server_on_head, with hk_api_slot_free
 * and the same data as hk_api_dispatch): routes the request and, when its
 * route needs a permission, checks its credentials as soon as the head is
 * complete. A request with a body but without valid credentials or the
 * permission is answered 401 or 403 there, before any of its body is read
 * (and its connection closed); everything else goes on to hk_api_dispatch
 * with what was found in req->slot.
 */
void hk_api_on_head(hk_http_request *req, void *app);

/** Frees what hk_api_on_head left in req->slot; safe on NULL. */
void hk_api_slot_free(void *slot);

/** The http server's error-body formatter (see hk_http_error_body). */
char *hk_api_error_body(const char *path, size_t path_len, int status, const char *message);

/** Which dialect a path belongs to (its prefix compared without regard to case, as every dialect's paths are). */
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

/** Seconds a client is told to wait (Retry-After) when storage is full. */
#define HK_API_RETRY_AFTER_FULL_S 30

/** Seconds a client is told to wait (Retry-After) when the cluster's database is out of reach. */
#define HK_API_RETRY_AFTER_DB_S 5

/**
 * Answers 503 for a store error code, in the dialect's shape: for a full
 * disk or store (HK_EFULL, UV_ENOSPC) a body saying storage is full and
 * nothing was changed, with Retry-After; for HK_ESHUTDOWN that the server
 * is shutting down; for the cluster's database out of reach
 * (UV_ECONNREFUSED, UV_ECONNRESET) that, with Retry-After; otherwise
 * "storage unavailable" and the code's text.
 */
void hk_respond_store_error(hk_ctx *ctx, int err);

/**
 * Tells readiness about the result of a commit (the status a store done
 * callback got). Every submitter calls it with every commit result: a
 * failure of the store itself (full, I/O) makes /readyz answer 503, and
 * the next successful commit (status 0) makes it answer 200 again. Other
 * errors (an op refused: not found, locked, exists...) say nothing about
 * the store and change nothing. env may be NULL (the CLI).
 */
void hk_api_note_commit(hk_api_env *env, int status);

/** True when status is a failure of the store itself (full disk or store, I/O), not a refused op. */
bool hk_api_store_failure(int status);

/**
 * Returns the decoded value of query parameter name (compared
 * case-insensitively), malloc'd (the caller frees it); NULL when absent or
 * when its value does not percent-decode.
 */
char *hk_query_get(const hk_ctx *ctx, const char *name);

/**
 * Reads route parameter name as a decimal id 1..max into *out. HK_EINVAL
 * when it is missing, empty, not all digits, 0 or above max.
 */
int hk_param_id(const hk_ctx *ctx, const char *name, uint64_t max, uint64_t *out) HK_MUST_CHECK;

/**
 * Reads query parameter name as a decimal integer min..max into *out, or
 * def when absent. HK_EINVAL when present and malformed or out of range.
 */
int hk_query_long(const hk_ctx *ctx, const char *name, long def, long min, long max, long *out) HK_MUST_CHECK;

/**
 * Member name of JSON object obj, compared without regard to ASCII case
 * (SuperOffice binds request members so): an exact match first, else the
 * first member, in document order, whose name differs only in case. NULL
 * when obj is not an object or has no such member. Borrowed reference.
 * The value behind hk_json_object_key (json_patch.h), the one lookup. It
 * costs one hash lookup, plus a scan of the members when there is no exact
 * match: call it for a fixed set of names, not once per member of a body.
 */
json_t *hk_json_member_ci(const json_t *obj, const char *name);

/**
 * Parses the body as JSON. NULL when the body is empty or malformed, with
 * a message in err (and *empty set for an empty body).
 */
json_t *hk_body_json(const hk_ctx *ctx, char *err, size_t errlen, bool *empty);

/** Route tables of the modules, registered by hk_api_router. */
void hk_api_core_routes(hk_router *r);

#endif
