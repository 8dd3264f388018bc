/*
 * json_patch.h: RFC 6902 JSON Patch and RFC 7396 JSON Merge Patch on
 * jansson documents, with the SuperOffice leniencies as options: object
 * member names may match case-insensitively (an exact match is preferred)
 * and a path's leading "/" may be left out.
 *
 * These functions touch only the documents they are given, so they may run
 * on any thread.
 */
#ifndef HK_JSON_PATCH_H
#define HK_JSON_PATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/** Options of the patch functions. */
#define HK_PATCH_NOCASE 1u   /**< object member names compare ASCII case-insensitively */
#define HK_PATCH_LAX_PATH 2u /**< "Name" means "/Name" (a path without its leading slash) */

/**
 * Checks the shape of a JSON Patch document (an array of operations with
 * op, path and, as the op needs them, value or from) without applying it.
 * Returns 0 or HK_EINVAL with a message in err.
 */
int hk_json_patch_check(const json_t *patch, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * Applies the JSON Patch `patch` to *doc (add, remove, replace, move, copy,
 * test). *doc is a reference the function may replace (a patch of the
 * root); the caller keeps owning whatever *doc holds afterwards. patch is
 * borrowed. Returns 0; HK_EINVAL when the patch is malformed or a path does
 * not resolve; HK_ECONFLICT when a test operation fails. On failure *doc is
 * a valid document holding the operations applied before the failing one,
 * so a caller wanting atomicity patches a copy. err receives a message.
 */
int hk_json_patch_apply(json_t **doc, const json_t *patch, unsigned opts, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * Applies the JSON Merge Patch `patch` to *doc (replacing *doc when patch
 * is not an object). patch is borrowed; *doc as for hk_json_patch_apply.
 * Only HK_PATCH_NOCASE is meaningful in opts.
 */
void hk_json_merge_patch(json_t **doc, const json_t *patch, unsigned opts);

/**
 * Resolves a JSON Pointer (RFC 6901) in doc. Returns a borrowed reference
 * into doc, or NULL when the pointer does not resolve or is malformed.
 */
json_t *hk_json_pointer_get(json_t *doc, const char *ptr, unsigned opts);

/** Finds member key of obj (case-insensitively when nocase, preferring an exact match); borrowed or NULL. */
const char *hk_json_object_key(const json_t *obj, const char *key, bool nocase);

/** JSON equality as RFC 6902 "test" defines it: numbers compare by value (1 equals 1.0). */
bool hk_json_equal(const json_t *a, const json_t *b);

#endif
