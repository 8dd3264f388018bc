/* json_patch.c: RFC 6902 JSON Patch and RFC 7396 JSON Merge Patch. */
#include "json_patch.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A pointer longer than this many reference tokens is refused. */
#define POINTER_MAX_DEPTH 64

const char *hk_json_object_key(const json_t *obj, const char *key, bool nocase)
{
    if (!json_is_object(obj))
        return NULL;
    const char *k;
    json_t *v;
    /* json_object_iter_key on the exact member gives a stable key pointer. */
    void *it = json_object_iter_at((json_t *)obj, key);
    if (it != NULL)
        return json_object_iter_key(it);
    if (!nocase)
        return NULL;
    json_object_foreach ((json_t *)obj, k, v) {
        if (strcasecmp(k, key) == 0)
            return k;
    }
    return NULL;
}

bool hk_json_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b))
            return json_integer_value(a) == json_integer_value(b);
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b))
        return false;
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!hk_json_equal(json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b))
            return false;
        const char *k;
        json_t *v;
        json_object_foreach ((json_t *)a, k, v) {
            json_t *w = json_object_get(b, k);
            if (w == NULL || !hk_json_equal(v, w))
                return false;
        }
        return true;
    }
    return json_equal((json_t *)a, (json_t *)b);
}

/* ---- pointers ----------------------------------------------------------- */

/* A parsed pointer: unescaped reference tokens, owned. */
struct pointer {
    size_t n;
    char *tok[POINTER_MAX_DEPTH];
};

static void pointer_free(struct pointer *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->tok[i]);
    p->n = 0;
}

static int pointer_parse(const char *s, unsigned opts, struct pointer *p)
{
    p->n = 0;
    if (*s == '\0')
        return 0;
    if (*s != '/') {
        if (!(opts & HK_PATCH_LAX_PATH))
            return HK_EINVAL;
    } else {
        s++;
    }
    for (;;) {
        if (p->n == POINTER_MAX_DEPTH) {
            pointer_free(p);
            return HK_EINVAL;
        }
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char *t = hk_malloc(len + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '~') {
                if (i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
                    t[o++] = s[i + 1] == '0' ? '~' : '/';
                    i++;
                    continue;
                }
                free(t);
                pointer_free(p);
                return HK_EINVAL;
            }
            t[o++] = s[i];
        }
        t[o] = '\0';
        p->tok[p->n++] = t;
        if (end == NULL)
            return 0;
        s = end + 1;
    }
}

/* Parses an array index token; "-" gives size. -1 when malformed. */
static long array_index(const char *tok, size_t size, bool allow_end)
{
    if (allow_end && strcmp(tok, "-") == 0)
        return (long)size;
    if (*tok == '\0' || (tok[0] == '0' && tok[1] != '\0') || strlen(tok) > 9)
        return -1;
    long v = 0;
    for (const char *c = tok; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

/* Resolves the first n tokens of p in doc; borrowed or NULL. */
static json_t *resolve(json_t *doc, const struct pointer *p, size_t n, unsigned opts)
{
    json_t *cur = doc;
    for (size_t i = 0; i < n && cur != NULL; i++) {
        if (json_is_object(cur)) {
            const char *k = hk_json_object_key(cur, p->tok[i], opts & HK_PATCH_NOCASE);
            cur = k ? json_object_get(cur, k) : NULL;
        } else if (json_is_array(cur)) {
            long idx = array_index(p->tok[i], json_array_size(cur), false);
            cur = idx >= 0 ? json_array_get(cur, (size_t)idx) : NULL;
        } else {
            cur = NULL;
        }
    }
    return cur;
}

json_t *hk_json_pointer_get(json_t *doc, const char *ptr, unsigned opts)
{
    struct pointer p;
    if (pointer_parse(ptr, opts, &p) != 0)
        return NULL;
    json_t *v = resolve(doc, &p, p.n, opts);
    pointer_free(&p);
    return v;
}

/* ---- operations --------------------------------------------------------- */

/* Adds value (reference taken) at p. */
static int op_add(json_t **doc, const struct pointer *p, json_t *value, unsigned opts, char *err, size_t errlen,
                  const char *path)
{
    if (p->n == 0) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    json_t *parent = resolve(*doc, p, p->n - 1, opts);
    const char *last = p->tok[p->n - 1];
    if (json_is_object(parent)) {
        const char *k = hk_json_object_key(parent, last, opts & HK_PATCH_NOCASE);
        /* Keep the existing spelling of a member matched case-insensitively. */
        char *name = hk_strdup(k ? k : last);
        json_object_set_new(parent, name, value);
        free(name);
        return 0;
    }
    if (json_is_array(parent)) {
        long idx = array_index(last, json_array_size(parent), true);
        if (idx < 0 || (size_t)idx > json_array_size(parent)) {
            json_decref(value);
            snprintf(err, errlen, "path %s: array index out of range", path);
            return HK_EINVAL;
        }
        json_array_insert_new(parent, (size_t)idx, value);
        return 0;
    }
    json_decref(value);
    snprintf(err, errlen, "path %s does not exist", path);
    return HK_EINVAL;
}

/* Removes the value at p; *removed (when given) receives a reference to it. */
static int op_remove(json_t **doc, const struct pointer *p, unsigned opts, json_t **removed, char *err, size_t errlen,
                     const char *path)
{
    json_t *parent = p->n ? resolve(*doc, p, p->n - 1, opts) : NULL;
    const char *last = p->n ? p->tok[p->n - 1] : NULL;
    if (json_is_object(parent)) {
        const char *k = hk_json_object_key(parent, last, opts & HK_PATCH_NOCASE);
        if (k != NULL) {
            char *name = hk_strdup(k);
            if (removed)
                *removed = json_incref(json_object_get(parent, name));
            json_object_del(parent, name);
            free(name);
            return 0;
        }
    } else if (json_is_array(parent)) {
        long idx = array_index(last, json_array_size(parent), false);
        if (idx >= 0 && (size_t)idx < json_array_size(parent)) {
            if (removed)
                *removed = json_incref(json_array_get(parent, (size_t)idx));
            json_array_remove(parent, (size_t)idx);
            return 0;
        }
    }
    snprintf(err, errlen, "path %s does not exist", path);
    return HK_EINVAL;
}

static const char *str_member(const json_t *op, const char *name)
{
    return json_string_value(json_object_get(op, name));
}

static int check_one(const json_t *op, size_t i, char *err, size_t errlen)
{
    if (!json_is_object(op)) {
        snprintf(err, errlen, "operation %zu is not an object", i);
        return HK_EINVAL;
    }
    const char *name = str_member(op, "op");
    const char *path = str_member(op, "path");
    if (name == NULL) {
        snprintf(err, errlen, "operation %zu has no \"op\" string", i);
        return HK_EINVAL;
    }
    if (path == NULL) {
        snprintf(err, errlen, "operation %zu has no \"path\" string", i);
        return HK_EINVAL;
    }
    if (strcasecmp(name, "add") == 0 || strcasecmp(name, "replace") == 0 || strcasecmp(name, "test") == 0) {
        if (json_object_get(op, "value") == NULL) {
            snprintf(err, errlen, "operation %zu (%s) has no \"value\"", i, name);
            return HK_EINVAL;
        }
    } else if (strcasecmp(name, "move") == 0 || strcasecmp(name, "copy") == 0) {
        if (str_member(op, "from") == NULL) {
            snprintf(err, errlen, "operation %zu (%s) has no \"from\" string", i, name);
            return HK_EINVAL;
        }
    } else if (strcasecmp(name, "remove") != 0) {
        snprintf(err, errlen, "operation %zu: unknown op \"%s\"", i, name);
        return HK_EINVAL;
    }
    return 0;
}

int hk_json_patch_check(const json_t *patch, char *err, size_t errlen)
{
    if (!json_is_array(patch)) {
        snprintf(err, errlen, "a JSON Patch document must be an array of operations");
        return HK_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(patch); i++) {
        int rc = check_one(json_array_get(patch, i), i, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int apply_one(json_t **doc, const json_t *op, unsigned opts, char *err, size_t errlen)
{
    const char *name = str_member(op, "op");
    const char *path = str_member(op, "path");
    struct pointer p, from;
    if (pointer_parse(path, opts, &p) != 0) {
        snprintf(err, errlen, "malformed path \"%s\"", path);
        return HK_EINVAL;
    }
    int rc = 0;
    json_t *value = json_object_get(op, "value");
    if (strcasecmp(name, "add") == 0) {
        rc = op_add(doc, &p, json_deep_copy(value), opts, err, errlen, path);
    } else if (strcasecmp(name, "remove") == 0) {
        if (p.n == 0) {
            snprintf(err, errlen, "the whole document cannot be removed");
            rc = HK_EINVAL;
        } else {
            rc = op_remove(doc, &p, opts, NULL, err, errlen, path);
        }
    } else if (strcasecmp(name, "replace") == 0) {
        if (resolve(*doc, &p, p.n, opts) == NULL) {
            snprintf(err, errlen, "path %s does not exist", path);
            rc = HK_EINVAL;
        } else {
            rc = op_add(doc, &p, json_deep_copy(value), opts, err, errlen, path);
            /* add on an array index inserts; replace must overwrite. */
            if (rc == 0 && p.n > 0) {
                json_t *parent = resolve(*doc, &p, p.n - 1, opts);
                if (json_is_array(parent)) {
                    long idx = array_index(p.tok[p.n - 1], json_array_size(parent), false);
                    json_array_remove(parent, (size_t)idx + 1);
                }
            }
        }
    } else if (strcasecmp(name, "test") == 0) {
        json_t *cur = resolve(*doc, &p, p.n, opts);
        if (cur == NULL || !hk_json_equal(cur, value)) {
            snprintf(err, errlen, "test failed: %s %s", path, cur ? "has another value" : "does not exist");
            rc = HK_ECONFLICT;
        }
    } else { /* move, copy */
        const char *fpath = str_member(op, "from");
        if (pointer_parse(fpath, opts, &from) != 0) {
            snprintf(err, errlen, "malformed from \"%s\"", fpath);
            rc = HK_EINVAL;
        } else {
            json_t *v = NULL;
            if (strcasecmp(name, "copy") == 0) {
                json_t *src = resolve(*doc, &from, from.n, opts);
                if (src == NULL) {
                    snprintf(err, errlen, "from %s does not exist", fpath);
                    rc = HK_EINVAL;
                } else {
                    v = json_deep_copy(src);
                }
            } else {
                bool prefix = from.n < p.n;
                for (size_t i = 0; prefix && i < from.n; i++)
                    prefix = strcmp(from.tok[i], p.tok[i]) == 0;
                if (prefix) {
                    snprintf(err, errlen, "cannot move %s into its own child %s", fpath, path);
                    rc = HK_EINVAL;
                } else if (from.n == 0) {
                    snprintf(err, errlen, "the whole document cannot be moved");
                    rc = HK_EINVAL;
                } else {
                    rc = op_remove(doc, &from, opts, &v, err, errlen, fpath);
                }
            }
            if (rc == 0)
                rc = op_add(doc, &p, v, opts, err, errlen, path);
            pointer_free(&from);
        }
    }
    pointer_free(&p);
    return rc;
}

int hk_json_patch_apply(json_t **doc, const json_t *patch, unsigned opts, char *err, size_t errlen)
{
    int rc = hk_json_patch_check(patch, err, errlen);
    for (size_t i = 0; rc == 0 && i < json_array_size(patch); i++)
        rc = apply_one(doc, json_array_get(patch, i), opts, err, errlen);
    return rc;
}

/* ---- merge patch --------------------------------------------------------- */

void hk_json_merge_patch(json_t **doc, const json_t *patch, unsigned opts)
{
    if (!json_is_object(patch)) {
        json_decref(*doc);
        *doc = json_deep_copy(patch);
        return;
    }
    if (!json_is_object(*doc)) {
        json_decref(*doc);
        *doc = json_object();
    }
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)patch, k, v) {
        const char *found = hk_json_object_key(*doc, k, opts & HK_PATCH_NOCASE);
        char *name = hk_strdup(found ? found : k);
        if (json_is_null(v)) {
            json_object_del(*doc, name);
        } else {
            json_t *cur = json_incref(json_object_get(*doc, name));
            hk_json_merge_patch(&cur, v, opts);
            json_object_set_new(*doc, name, cur);
        }
        free(name);
    }
}
