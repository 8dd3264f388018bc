/*
 * fuzz_json_patch.c: JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7396)
 * from services/json_patch.c, with and without the SuperOffice leniencies.
 * Input: a JSON document, a NUL byte, a patch; both parsed with jansson.
 * A patch either applies or fails with a message; the document stays a
 * valid JSON value that serialises.
 */
#include <jansson.h>

#include "fuzz.h"
#include "json_patch.h"

static void check_doc(json_t *doc)
{
    FUZZ_CHECK(doc != NULL);
    char *text = json_dumps(doc, JSON_ENCODE_ANY | JSON_COMPACT);
    FUZZ_CHECK(text != NULL);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t dlen = nul ? (size_t)(nul - data) : size;
    const char *ptext = nul ? (const char *)nul + 1 : "";
    size_t plen = nul ? size - dlen - 1 : 0;
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, dlen, JSON_DECODE_ANY, &jerr);
    json_t *patch = json_loadb(ptext, plen, JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        doc = json_object();
    if (patch == NULL) {
        json_decref(doc);
        return 0;
    }
    char err[256];
    for (unsigned opts = 0; opts < 4; opts++) {
        json_t *copy = json_deep_copy(doc);
        err[0] = '\0';
        int checked = hk_json_patch_check(patch, err, sizeof(err));
        int rc = hk_json_patch_apply(&copy, patch, opts, err, sizeof(err));
        FUZZ_CHECK(rc == 0 || rc == HK_EINVAL || rc == HK_ECONFLICT);
        if (rc != 0)
            FUZZ_CHECK(err[0] != '\0');
        /* A patch whose shape is wrong never applies. */
        if (checked != 0)
            FUZZ_CHECK(rc != 0);
        check_doc(copy);
        json_decref(copy);

        copy = json_deep_copy(doc);
        hk_json_merge_patch(&copy, patch, opts);
        check_doc(copy);
        /* A merge patch without nulls is idempotent. */
        json_t *twice = json_deep_copy(copy);
        hk_json_merge_patch(&twice, patch, opts);
        if ((opts & HK_PATCH_NOCASE) == 0)
            FUZZ_CHECK(hk_json_equal(copy, twice));
        json_decref(twice);
        json_decref(copy);
    }
    if (json_is_string(patch))
        (void)hk_json_pointer_get(doc, json_string_value(patch), HK_PATCH_NOCASE | HK_PATCH_LAX_PATH);
    json_decref(patch);
    json_decref(doc);
    return 0;
}
