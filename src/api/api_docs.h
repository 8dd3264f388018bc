/*
 * api_docs.h: the API's description of itself: the OpenAPI 3.1 document
 * src/api/openapi.json, built into the binary (cmake/openapi.cmake) and
 * served without authentication at GET /openapi.json.
 */
#ifndef HK_API_DOCS_H
#define HK_API_DOCS_H

#include <stddef.h>

#include "router.h"

/**
 * The document's bytes, generated at build time from src/api/openapi.json
 * (UTF-8 JSON, not NUL-terminated). Static storage: never freed.
 */
extern const unsigned char hk_openapi_json[];

/** Bytes in hk_openapi_json. */
extern const size_t hk_openapi_json_len;

/** Adds GET /openapi.json (no authentication) to r. */
void hk_api_docs_routes(hk_router *r);

#endif
