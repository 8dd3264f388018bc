/* json_patch.c: RFC 6902 JSON Patch and RFC 7396 JSON Merge Patch, in time linear in the document and the patch. */
#include "json_patch.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A pointer longer than this many reference tokens is refused. */
#define POINTER_MAX_DEPTH 64

/* ---- case-insensitive member lookup in linear time -------------------------
 *
 * Finding a member case-insensitively means scanning the object. Doing that
 * once per member of a large patch is quadratic (a merge patch of 75,000
 * members took most of a minute), so a patch builds, once per object it
 * touches, an index: folded name -> the exact name with that folding (a
 * JSON string), or, once a second spelling appears, the set of them (a JSON
 * object whose keys are the names, in the object's order). Every later
 * lookup in that object is a hash probe, and the patch keeps the index
 * current as it adds and removes members.
 */

/* Folded names up to this many bytes are built on the stack. */
#define FOLD_STACK 256

/* ASCII lower-case copy of s into buf (FOLD_STACK bytes) or, when longer, a malloc'd buffer; free it with
 * fold_done. */
static char *fold(const char *s, char *buf)
{
    size_t n = strlen(s);
    char *f = n < FOLD_STACK ? buf : hk_malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        f[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    return f;
}

static void fold_done(char *f, char *buf)
{
    if (f != buf)
        free(f);
}

static void index_add(json_t *index, const char *name)
{
    char buf[FOLD_STACK], *f = fold(name, buf);
    json_t *e = json_object_get(index, f);
    if (e == NULL) {
        json_object_set_new(index, f, json_string(name));
    } else if (json_is_string(e)) {
        if (strcmp(json_string_value(e), name) != 0) {
            json_t *set = json_object();
            json_object_set_new(set, json_string_value(e), json_true());
            json_object_set_new(set, name, json_true());
            json_object_set_new(index, f, set);
        }
    } else {
        json_object_set_new(e, name, json_true());
    }
    fold_done(f, buf);
}

static void index_del(json_t *index, const char *name)
{
    char buf[FOLD_STACK], *f = fold(name, buf);
    json_t *e = json_object_get(index, f);
    if (json_is_string(e)) {
        if (strcmp(json_string_value(e), name) == 0)
            json_object_del(index, f);
    } else if (e != NULL) {
        json_object_del(e, name);
        if (json_object_size(e) == 0)
            json_object_del(index, f);
    }
    fold_done(f, buf);
}

static json_t *index_build(const json_t *obj)
{
    json_t *index = json_object();
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)obj, k, v)
        index_add(index, k);
    return index;
}

/* The member of obj matching key: exactly, else through index (case-insensitively); obj's own key or NULL. */
static const char *index_find(const json_t *obj, json_t *index, const char *key)
{
    void *it = json_object_iter_at((json_t *)obj, key);
    if (it != NULL)
        return json_object_iter_key(it);
    if (index == NULL)
        return NULL;
    char buf[FOLD_STACK], *f = fold(key, buf);
    json_t *e = json_object_get(index, f);
    fold_done(f, buf);
    const char *name = NULL;
    if (json_is_string(e)) {
        name = json_string_value(e);
    } else if (e != NULL) {
        void *first = json_object_iter(e);
        name = first ? json_object_iter_key(first) : NULL;
    }
    it = name ? json_object_iter_at((json_t *)obj, name) : NULL;
    return it ? json_object_iter_key(it) : NULL;
}

/*
 * The indexes of one patch application, by object: "%p" of the object ->
 * [object, index]. The entry holds a reference to the object so that its
 * address cannot be reused by another object while the patch runs.
 */
struct patch_run {
    unsigned opts;
    json_t *indexes; /* NULL when names compare exactly */
};

static json_t *run_index(struct patch_run *run, const json_t *obj)
{
    if (run == NULL || run->indexes == NULL)
        return NULL;
    char key[32];
    snprintf(key, sizeof(key), "%p", (const void *)obj);
    json_t *e = json_object_get(run->indexes, key);
    if (e == NULL) {
        e = json_pack("[O, o]", (json_t *)obj, index_build(obj));
        json_object_set_new(run->indexes, key, e);
    }
    return json_array_get(e, 1);
}

/* The member of obj matching key under run's options; obj's own key or NULL. */
static const char *run_find(struct patch_run *run, const json_t *obj, const char *key)
{
    return index_find(obj, run_index(run, obj), key);
}

/* Records that obj gained (added) or lost (!added) member name. */
static void run_note(struct patch_run *run, const json_t *obj, const char *name, bool added)
{
    if (run == NULL || run->indexes == NULL)
        return;
    char key[32];
    snprintf(key, sizeof(key), "%p", (const void *)obj);
    json_t *e = json_object_get(run->indexes, key);
    if (e == NULL)
        return; /* indexed lazily, from the object as it is then */
    if (added)
        index_add(json_array_get(e, 1), name);
    else
        index_del(json_array_get(e, 1), name);
}

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

/* Resolves the first n tokens of p in doc; borrowed or NULL. run NULL: one lookup, scanned. */
static json_t *resolve(struct patch_run *run, json_t *doc, const struct pointer *p, size_t n, unsigned opts)
{
    json_t *cur = doc;
    for (size_t i = 0; i < n && cur != NULL; i++) {
        if (json_is_object(cur)) {
            const char *k =
                run ? run_find(run, cur, p->tok[i]) : hk_json_object_key(cur, p->tok[i], opts & HK_PATCH_NOCASE);
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
    json_t *v = resolve(NULL, doc, &p, p.n, opts);
    pointer_free(&p);
    return v;
}

/* ---- operations --------------------------------------------------------- */

/* Adds value (reference taken) at p. */
static int op_add(struct patch_run *run, json_t **doc, const struct pointer *p, json_t *value, char *err, size_t errlen,
                  const char *path)
{
    if (p->n == 0) {
        json_decref(*doc);
        *doc = value;
        return 0;
    }
    json_t *parent = resolve(run, *doc, p, p->n - 1, run->opts);
    const char *last = p->tok[p->n - 1];
    if (json_is_object(parent)) {
        const char *k = run_find(run, parent, last);
        /* Keep the existing spelling of a member matched case-insensitively. */
        char *name = hk_strdup(k ? k : last);
        json_object_set_new(parent, name, value);
        if (k == NULL)
            run_note(run, parent, name, true);
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
static int op_remove(struct patch_run *run, json_t **doc, const struct pointer *p, json_t **removed, char *err,
                     size_t errlen, const char *path)
{
    json_t *parent = p->n ? resolve(run, *doc, p, p->n - 1, run->opts) : NULL;
    const char *last = p->n ? p->tok[p->n - 1] : NULL;
    if (json_is_object(parent)) {
        const char *k = run_find(run, parent, last);
        if (k != NULL) {
            char *name = hk_strdup(k);
            if (removed)
                *removed = json_incref(json_object_get(parent, name));
            run_note(run, parent, name, false);
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

static int apply_one(struct patch_run *run, json_t **doc, const json_t *op, char *err, size_t errlen)
{
    const char *name = str_member(op, "op");
    const char *path = str_member(op, "path");
    unsigned opts = run->opts;
    struct pointer p, from;
    if (pointer_parse(path, opts, &p) != 0) {
        snprintf(err, errlen, "malformed path \"%s\"", path);
        return HK_EINVAL;
    }
    int rc = 0;
    json_t *value = json_object_get(op, "value");
    if (strcasecmp(name, "add") == 0) {
        rc = op_add(run, doc, &p, json_deep_copy(value), err, errlen, path);
    } else if (strcasecmp(name, "remove") == 0) {
        if (p.n == 0) {
            snprintf(err, errlen, "the whole document cannot be removed");
            rc = HK_EINVAL;
        } else {
            rc = op_remove(run, doc, &p, NULL, err, errlen, path);
        }
    } else if (strcasecmp(name, "replace") == 0) {
        if (resolve(run, *doc, &p, p.n, opts) == NULL) {
            snprintf(err, errlen, "path %s does not exist", path);
            rc = HK_EINVAL;
        } else {
            rc = op_add(run, doc, &p, json_deep_copy(value), err, errlen, path);
            /* add on an array index inserts; replace must overwrite. */
            if (rc == 0 && p.n > 0) {
                json_t *parent = resolve(run, *doc, &p, p.n - 1, opts);
                if (json_is_array(parent)) {
                    long idx = array_index(p.tok[p.n - 1], json_array_size(parent), false);
                    json_array_remove(parent, (size_t)idx + 1);
                }
            }
        }
    } else if (strcasecmp(name, "test") == 0) {
        json_t *cur = resolve(run, *doc, &p, p.n, opts);
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
                json_t *src = resolve(run, *doc, &from, from.n, opts);
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
                    rc = op_remove(run, doc, &from, &v, err, errlen, fpath);
                }
            }
            if (rc == 0)
                rc = op_add(run, doc, &p, v, err, errlen, path);
            pointer_free(&from);
        }
    }
    pointer_free(&p);
    return rc;
}

int hk_json_patch_apply(json_t **doc, const json_t *patch, unsigned opts, char *err, size_t errlen)
{
    int rc = hk_json_patch_check(patch, err, errlen);
    struct patch_run run = {opts, (opts & HK_PATCH_NOCASE) ? json_object() : NULL};
    for (size_t i = 0; rc == 0 && i < json_array_size(patch); i++)
        rc = apply_one(&run, doc, json_array_get(patch, i), err, errlen);
    json_decref(run.indexes);
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
    /* One index per object merged: each member of the patch is then found in constant time. */
    json_t *index = (opts & HK_PATCH_NOCASE) && json_object_size(patch) > 0 ? index_build(*doc) : NULL;
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)patch, k, v) {
        const char *found = index_find(*doc, index, k);
        /* A new member takes the patch's name (stable while the patch is walked); an existing one keeps the
         * document's, copied, as it is freed with its member. */
        char *copy = found ? hk_strdup(found) : NULL;
        const char *name = found ? copy : k;
        if (json_is_null(v)) {
            if (found != NULL && index != NULL)
                index_del(index, name);
            json_object_del(*doc, name);
        } else {
            json_t *cur = json_incref(json_object_get(*doc, name));
            hk_json_merge_patch(&cur, v, opts);
            json_object_set_new(*doc, name, cur);
            if (found == NULL && index != NULL)
                index_add(index, name);
        }
        free(copy);
    }
    json_decref(index);
}
