/*
 * pg_registry.c: store.h's registry queries answered from the PostgreSQL
 * engine's registry in memory (pg_cache.h, pg_cache_int.h): lookups by id
 * or hash by bisection, the rest by walking a table.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pg_cache_int.h"

/* ---- the queries -------------------------------------------------------------------------------------------- */

static hk_pg_cache *ready_cache(hk_pg_store *s)
{
    hk_pg_cache *c = hk__pg_store_cache(s);
    return c != NULL && c->ready ? c : NULL;
}

#define CACHE_OR_EAGAIN(c, s)                                                                                          \
    hk_pg_cache *c = ready_cache(s);                                                                                   \
    if (c == NULL)                                                                                                     \
    return UV_EAGAIN

int hk_pg_webhook_get(hk_pg_store *s, uint32_t id, hk_webhook *out)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_webhook *w = hk__pg_vec_get(&c->t[HK__PGT_WEBHOOKS], &id);
    if (w == NULL)
        return HK_ENOTFOUND;
    hk_webhook_copy(out, w);
    return 0;
}

int hk_pg_webhook_state(hk_pg_store *s, uint32_t id, enum hk_webhook_state *state, bool *locked)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_webhook *w = hk__pg_vec_get(&c->t[HK__PGT_WEBHOOKS], &id);
    if (w == NULL)
        return HK_ENOTFOUND;
    *state = w->state;
    *locked = w->locked;
    return 0;
}

int hk_pg_webhook_by_extension(hk_pg_store *s, const char *ext, uint32_t *id)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_WEBHOOKS].n; i++) {
        const hk_webhook *w = (const hk_webhook *)c->t[HK__PGT_WEBHOOKS].v + i;
        if (w->extension != NULL && strcmp(w->extension, ext) == 0) {
            *id = w->id;
            return 0;
        }
    }
    return HK_ENOTFOUND;
}

struct ext_ref {
    const char *ext;
    uint32_t id;
};

static int ext_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ext_ref *)a)->ext, ((const struct ext_ref *)b)->ext);
}

int hk_pg_extensions_each(hk_pg_store *s, int (*fn)(const char *ext, uint32_t id, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    /* Copies: a callback's query cannot change the cache, but the names must stay valid across the walk. */
    struct ext_ref *refs = hk_calloc(c->t[HK__PGT_WEBHOOKS].n + 1, sizeof(*refs));
    size_t n = 0;
    for (size_t i = 0; i < c->t[HK__PGT_WEBHOOKS].n; i++) {
        const hk_webhook *w = (const hk_webhook *)c->t[HK__PGT_WEBHOOKS].v + i;
        if (w->extension != NULL)
            refs[n++] = (struct ext_ref){hk_strdup(w->extension), w->id};
    }
    qsort(refs, n, sizeof(*refs), ext_cmp);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = fn(refs[i].ext, refs[i].id, arg);
        free((char *)refs[i].ext);
    }
    free(refs);
    return rc;
}

int hk_pg_webhook_stats(hk_pg_store *s, uint32_t id, hk_webhook_stats *out)
{
    CACHE_OR_EAGAIN(c, s);
    const struct hk__pg_stats *st = hk__pg_vec_get(&c->t[HK__PGT_STATS], &id);
    if (st != NULL)
        *out = st->st;
    else
        memset(out, 0, sizeof(*out));
    return 0;
}

int hk_pg_webhooks_each(hk_pg_store *s, uint32_t from_id,
                        int (*fn)(const hk_webhook *w, const hk_webhook_stats *st, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    hk_webhook_stats zero;
    memset(&zero, 0, sizeof(zero));
    for (size_t i = hk__pg_vec_lower(&c->t[HK__PGT_WEBHOOKS], &from_id); i < c->t[HK__PGT_WEBHOOKS].n; i++) {
        const hk_webhook *w = (const hk_webhook *)c->t[HK__PGT_WEBHOOKS].v + i;
        const struct hk__pg_stats *st = hk__pg_vec_get(&c->t[HK__PGT_STATS], &w->id);
        int rc = fn(w, st != NULL ? &st->st : &zero, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_webhook_states(hk_pg_store *s, uint64_t counts[3])
{
    CACHE_OR_EAGAIN(c, s);
    counts[0] = counts[1] = counts[2] = 0;
    for (size_t i = 0; i < c->t[HK__PGT_WEBHOOKS].n; i++) {
        unsigned st = (unsigned)((const hk_webhook *)c->t[HK__PGT_WEBHOOKS].v)[i].state;
        if (st < 3)
            counts[st]++;
    }
    return 0;
}

int hk_pg_event_types_each(hk_pg_store *s, int (*fn)(uint32_t id, const char *name, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_TYPES].n; i++) {
        const struct hk__pg_type *t = (const struct hk__pg_type *)c->t[HK__PGT_TYPES].v + i;
        int rc = fn(t->id, t->name, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_event_type_id(hk_pg_store *s, const char *name, uint32_t *id)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_TYPES].n; i++) {
        const struct hk__pg_type *t = (const struct hk__pg_type *)c->t[HK__PGT_TYPES].v + i;
        if (strcmp(t->name, name) == 0) {
            *id = t->id;
            return 0;
        }
    }
    return HK_ENOTFOUND;
}

int hk_pg_user_get(hk_pg_store *s, uint32_t id, hk_user *out)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_user *u = hk__pg_vec_get(&c->t[HK__PGT_USERS], &id);
    if (u == NULL)
        return HK_ENOTFOUND;
    *out = *u;
    return 0;
}

int hk_pg_user_by_code(hk_pg_store *s, const char *code, hk_user *out)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_USERS].n; i++) {
        const hk_user *u = (const hk_user *)c->t[HK__PGT_USERS].v + i;
        if (strcasecmp(u->code, code) == 0) {
            *out = *u;
            return 0;
        }
    }
    return HK_ENOTFOUND;
}

int hk_pg_key_get(hk_pg_store *s, const uint8_t hash[32], hk_key *key, hk_user *user)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_key *k = hk__pg_vec_get(&c->t[HK__PGT_KEYS], hash);
    if (k == NULL)
        return HK_ENOTFOUND;
    const hk_user *u = hk__pg_vec_get(&c->t[HK__PGT_USERS], &k->user_id);
    if (u == NULL)
        return HK_ENOTFOUND;
    *key = *k;
    *user = *u;
    return 0;
}

int hk_pg_users_each(hk_pg_store *s, int (*fn)(const hk_user *u, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_USERS].n; i++) {
        int rc = fn((const hk_user *)c->t[HK__PGT_USERS].v + i, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_keys_each(hk_pg_store *s, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_KEYS].n; i++) {
        const hk_key *k = (const hk_key *)c->t[HK__PGT_KEYS].v + i;
        if (user_id != 0 && k->user_id != user_id)
            continue;
        int rc = fn(k, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_user_count(hk_pg_store *s, size_t *n)
{
    CACHE_OR_EAGAIN(c, s);
    *n = c->t[HK__PGT_USERS].n;
    return 0;
}

int hk_pg_node_get(hk_pg_store *s, uint32_t id, hk_node *out)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_node *n = hk__pg_vec_get(&c->t[HK__PGT_NODES], &id);
    if (n == NULL)
        return HK_ENOTFOUND;
    *out = *n;
    return 0;
}

int hk_pg_account_get(hk_pg_store *s, uint32_t id, hk_account *out)
{
    CACHE_OR_EAGAIN(c, s);
    const hk_account *a = hk__pg_vec_get(&c->t[HK__PGT_ACCOUNTS], &id);
    if (a == NULL)
        return HK_ENOTFOUND;
    *out = *a;
    return 0;
}

int hk_pg_nodes_each(hk_pg_store *s, int (*fn)(const hk_node *n, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_NODES].n; i++) {
        int rc = fn((const hk_node *)c->t[HK__PGT_NODES].v + i, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_accounts_each(hk_pg_store *s, int (*fn)(const hk_account *a, void *arg), void *arg)
{
    CACHE_OR_EAGAIN(c, s);
    for (size_t i = 0; i < c->t[HK__PGT_ACCOUNTS].n; i++) {
        int rc = fn((const hk_account *)c->t[HK__PGT_ACCOUNTS].v + i, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int hk_pg_node_within(hk_pg_store *s, uint32_t node, uint32_t top, bool *within)
{
    CACHE_OR_EAGAIN(c, s);
    *within = top == 0;
    uint32_t cur = node;
    /* The depth bound also ends a cycle, as the embedded engine's walk does. */
    for (int depth = 0; top != 0 && cur != 0 && depth <= HK_NODE_DEPTH_MAX; depth++) {
        if (cur == top) {
            *within = true;
            return 0;
        }
        const hk_node *n = hk__pg_vec_get(&c->t[HK__PGT_NODES], &cur);
        if (n == NULL)
            return 0;
        cur = n->parent;
    }
    return 0;
}
