/*
 * router.h: maps a method and a path to a route. Patterns are literal
 * segments and {name} parameters; a route may match its literal segments
 * case-insensitively (the SuperOffice /api/v1 paths). Where several patterns
 * match, the one with literal segments earliest wins.
 */
#ifndef HK_ROUTER_H
#define HK_ROUTER_H

#include <stddef.h>

#include "common.h"

#define HK_ROUTE_MAX_PARAMS 4
#define HK_ROUTE_MAX_SEGMENTS 12

/** Matching options of a route. */
#define HK_ROUTE_NOCASE 1u /**< literal segments compare case-insensitively */

typedef struct hk_router hk_router;

/** Parameters captured by a match: percent-decoded, NUL-terminated copies owned by the struct. */
typedef struct hk_route_params {
    int n;                                  /**< number captured */
    const char *names[HK_ROUTE_MAX_PARAMS]; /**< names from the pattern (static) */
    char *values[HK_ROUTE_MAX_PARAMS];      /**< decoded values (freed by hk_route_params_free) */
} hk_route_params;

/** Creates an empty router. */
hk_router *hk_router_new(void);

/** Frees a router; safe on NULL. */
void hk_router_free(hk_router *r);

/**
 * Adds a route. method is "GET", "POST", ...; pattern like
 * "/api/v1/Webhook/{id}" (static storage). data is returned on a match.
 */
void hk_router_add(hk_router *r, const char *method, const char *pattern, unsigned flags, const void *data);

/**
 * Matches. Returns 0 and the route's data in *data (params filled) on a
 * match; 404 when no pattern matches the path; 405 when a pattern matches
 * but not for this method, with the allowed methods written to allow as
 * "GET, PUT". Segments that do not percent-decode give 404.
 */
int hk_router_match(const hk_router *r, const char *method, const char *path, size_t path_len, const void **data,
                    hk_route_params *params, char *allow, size_t allow_len);

/** Frees the decoded values of a match; safe on a zeroed struct. */
void hk_route_params_free(hk_route_params *p);

/** Returns the named parameter's value or NULL. */
const char *hk_route_param(const hk_route_params *p, const char *name);

/**
 * Percent-decodes src (len bytes) into a new NUL-terminated string; '+'
 * becomes a space when plus_is_space. NULL when an escape is malformed or
 * decodes to a NUL byte.
 */
char *hk_percent_decode(const char *src, size_t len, int plus_is_space);

#endif
