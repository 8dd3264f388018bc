/*
 * pg_cache.c: the PostgreSQL engine's registry in memory (pg_cache.h).
 *
 * Each table is a sorted array (webhooks, users, nodes, accounts and event
 * types by id, keys by hash) searched by bisection. Reads go through one
 * query at a time on the pool: a whole load (every table, one REPEATABLE
 * READ snapshot) or the keys the notifications named since the last read
 * (one statement per table, its keys as an array); a key the answer lacks
 * is gone. A read that fails is followed by a whole load after a pause.
 */
#include "pg_cache_int.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "log.h"

#define CHANNEL "hookd_registry"
#define RETRY_MS 500
#define DIRTY_MAX 1000     /* keys of one table waiting to be read again; more: the whole registry is read */
#define POLL_MS 1000       /* statistics changed are read this often */
#define STATS_ALL_POLLS 60 /* and every row after this many polls */
#define SIZE_POLLS 10      /* the database's size is read after this many polls */
#define SIZE_SQL "SELECT pg_database_size(current_database())"
#define READS_SIZE (-2) /* table_of of the statement reading the database's size */
#define STATS_OVERLAP                                                                                                  \
    1000 /* change stamps read again: a transaction stamps before it commits, so a later poll                          \
            may find a row with a lower stamp than one read already */

/* ---- sorted arrays -------------------------------------------------------------------------- */

static int vec_cmp(const hk__pg_vec *a, const void *elem, const void *key)
{
    if (a->keylen == sizeof(uint32_t)) {
        uint32_t x, y;
        memcpy(&x, (const char *)elem + a->keyoff, 4);
        memcpy(&y, key, 4);
        return x < y ? -1 : x > y;
    }
    return memcmp((const char *)elem + a->keyoff, key, a->keylen);
}

/* The first index whose key is >= key. */
size_t hk__pg_vec_lower(const hk__pg_vec *a, const void *key)
{
    size_t lo = 0, hi = a->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (vec_cmp(a, a->v + mid * a->size, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void *hk__pg_vec_get(const hk__pg_vec *a, const void *key)
{
    size_t i = hk__pg_vec_lower(a, key);
    return i < a->n && vec_cmp(a, a->v + i * a->size, key) == 0 ? a->v + i * a->size : NULL;
}

static void vec_free_at(hk__pg_vec *a, void *e)
{
    if (a->free_elem != NULL)
        a->free_elem(e);
    memset(e, 0, a->size);
}

/* The element with key, emptied (zeroed) or inserted zeroed: the caller fills it, key included. */
static void *vec_put(hk__pg_vec *a, const void *key)
{
    size_t i = hk__pg_vec_lower(a, key);
    char *e = a->v + i * a->size;
    if (i < a->n && vec_cmp(a, e, key) == 0) {
        vec_free_at(a, e);
        return e;
    }
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->v = hk_realloc(a->v, a->cap * a->size);
        e = a->v + i * a->size;
    }
    memmove(e + a->size, e, (a->n - i) * a->size);
    memset(e, 0, a->size);
    a->n++;
    return e;
}

static void vec_del(hk__pg_vec *a, const void *key)
{
    char *e = hk__pg_vec_get(a, key);
    if (e == NULL)
        return;
    vec_free_at(a, e);
    size_t i = (size_t)(e - a->v) / a->size;
    memmove(e, e + a->size, (a->n - i - 1) * a->size);
    a->n--;
}

static void vec_clear(hk__pg_vec *a)
{
    for (size_t i = 0; i < a->n; i++)
        vec_free_at(a, a->v + i * a->size);
    a->n = 0;
}

/* ---- the cache ----------------------------------------------------------------------------------- */

static void free_webhook(void *e)
{
    hk_webhook_free(e);
}

static void free_type(void *e)
{
    free(((struct hk__pg_type *)e)->name);
}

struct hk__pg_cache_read {
    hk_pg_cache *c;
    hk_pg_batch b;
    hk_pg_stmt stmts[HK__PGT_COUNT + 2];
    char *params[HK__PGT_COUNT];
    const char *values[HK__PGT_COUNT][1];
    bool full;
    bool stats_all;                          /* the statistics read is of every row */
    int table_of[HK__PGT_COUNT + 2];         /* the table each statement reads (-1: none, READS_SIZE) */
    struct hk__pg_dirty keys[HK__PGT_COUNT]; /* what a partial read asked for */
};

static size_t keylen(enum hk__pg_table t)
{
    return t == HK__PGT_KEYS ? 32 : 4;
}

static void dirty_add(struct hk__pg_dirty *d, size_t len, const void *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (memcmp(d->keys + i * len, key, len) == 0)
            return;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 16;
        d->keys = hk_realloc(d->keys, d->cap * len);
    }
    memcpy(d->keys + d->n++ * len, key, len);
}

static void start_read(hk_pg_cache *c);

/* ---- reading rows ------------------------------------------------------------------------------------- */

static uint64_t u64(const PGresult *r, int row, int col)
{
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

/* A text[] in PostgreSQL's text output ({a,"b c","d\"e"}) as a malloc'd array of n strings. */
static char **parse_array(const char *s, size_t *n)
{
    char **out = NULL;
    size_t cap = 0;
    *n = 0;
    if (*s++ != '{')
        return NULL;
    hk_buf b = HK_BUF_INIT;
    while (*s != '\0' && *s != '}') {
        hk_buf_reset(&b);
        if (*s == '"') {
            for (s++; *s != '\0' && *s != '"'; s++) {
                if (*s == '\\' && s[1] != '\0')
                    s++;
                hk_buf_putc(&b, *s);
            }
            if (*s == '"')
                s++;
        } else {
            for (; *s != '\0' && *s != ',' && *s != '}'; s++)
                hk_buf_putc(&b, *s);
        }
        if (*n == cap)
            out = hk_realloc(out, (cap = cap ? 2 * cap : 8) * sizeof(*out));
        out[(*n)++] = hk_strdup(hk_buf_cstr(&b));
        if (*s == ',')
            s++;
    }
    hk_buf_free(&b);
    return out;
}

static hk_pair *parse_pairs(const char *names, const char *values, size_t *n)
{
    size_t nn, nv;
    char **a = parse_array(names, &nn), **v = parse_array(values, &nv);
    hk_pair *out = NULL;
    *n = nn < nv ? nn : nv;
    if (*n > 0)
        out = hk_calloc(*n, sizeof(*out));
    for (size_t i = 0; i < nn || i < nv; i++) {
        if (i < *n) {
            out[i].name = a[i];
            out[i].value = v[i];
        } else {
            free(i < nn ? a[i] : NULL);
            free(i < nv ? v[i] : NULL);
        }
    }
    free(a);
    free(v);
    return out;
}

static void read_webhook(hk_pg_cache *c, const PGresult *r, int i)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    hk_webhook *w = vec_put(&c->t[HK__PGT_WEBHOOKS], &id);
    w->id = id;
    w->name = hk_strdup(PQgetvalue(r, i, 1));
    w->description = hk_strdup(PQgetvalue(r, i, 2));
    w->url = hk_strdup(PQgetvalue(r, i, 3));
    w->secret = hk_strdup(PQgetvalue(r, i, 4));
    w->prev_secret = hk_strdup(PQgetvalue(r, i, 5));
    w->prev_secret_until = u64(r, i, 6);
    w->state = (enum hk_webhook_state)u64(r, i, 7);
    w->locked = PQgetvalue(r, i, 8)[0] == 't';
    w->extension = PQgetisnull(r, i, 9) ? NULL : hk_strdup(PQgetvalue(r, i, 9));
    w->events = parse_array(PQgetvalue(r, i, 10), &w->nevents);
    w->headers = parse_pairs(PQgetvalue(r, i, 11), PQgetvalue(r, i, 12), &w->nheaders);
    w->properties = parse_pairs(PQgetvalue(r, i, 13), PQgetvalue(r, i, 14), &w->nproperties);
    w->notify = parse_array(PQgetvalue(r, i, 15), &w->nnotify);
    w->registered_ms = u64(r, i, 16);
    w->registered_by = (uint32_t)u64(r, i, 17);
    w->updated_ms = u64(r, i, 18);
    w->updated_by = (uint32_t)u64(r, i, 19);
}

static void copy_text(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static void read_user(hk_pg_cache *c, const PGresult *r, int i)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    hk_user *u = vec_put(&c->t[HK__PGT_USERS], &id);
    u->id = id;
    copy_text(u->code, sizeof(u->code), PQgetvalue(r, i, 1));
    copy_text(u->full_name, sizeof(u->full_name), PQgetvalue(r, i, 2));
    u->perms = (unsigned)u64(r, i, 3);
    u->top_node = (uint32_t)u64(r, i, 4);
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) ||
            sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return s[2 * n] == '\0';
}

static void read_key(hk_pg_cache *c, const PGresult *r, int i)
{
    uint8_t hash[32];
    if (!unhex(PQgetvalue(r, i, 0), hash, 32))
        return;
    hk_key *k = vec_put(&c->t[HK__PGT_KEYS], hash);
    memcpy(k->hash, hash, 32);
    k->user_id = (uint32_t)u64(r, i, 1);
    k->created_ms = u64(r, i, 2);
    k->revoked = PQgetvalue(r, i, 3)[0] == 't';
    copy_text(k->short_id, sizeof(k->short_id), PQgetvalue(r, i, 4));
}

static void read_node(hk_pg_cache *c, const PGresult *r, int i)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    hk_node *n = vec_put(&c->t[HK__PGT_NODES], &id);
    n->id = id;
    n->parent = (uint32_t)u64(r, i, 1);
    copy_text(n->name, sizeof(n->name), PQgetvalue(r, i, 2));
}

static void read_account(hk_pg_cache *c, const PGresult *r, int i)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    hk_account *a = vec_put(&c->t[HK__PGT_ACCOUNTS], &id);
    a->id = id;
    a->node = (uint32_t)u64(r, i, 1);
    copy_text(a->name, sizeof(a->name), PQgetvalue(r, i, 2));
}

static void read_type(hk_pg_cache *c, const PGresult *r, int i)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    struct hk__pg_type *t = vec_put(&c->t[HK__PGT_TYPES], &id);
    t->id = id;
    t->name = hk_strdup(PQgetvalue(r, i, 1));
}

#define WEBHOOK_COLS                                                                                                   \
    "SELECT id, name, description, url, secret, prev_secret, prev_secret_until_ms, state, locked, extension, events, " \
    "header_names, header_values, property_names, property_values, notify, registered_ms, registered_by, updated_ms, " \
    "updated_by FROM webhooks"
#define USER_COLS "SELECT id, code, full_name, perms, top_node FROM users"
#define KEY_COLS "SELECT encode(hash, 'hex'), user_id, created_ms, revoked, short_id FROM api_keys"
#define NODE_COLS "SELECT id, parent, name FROM nodes"
#define ACCOUNT_COLS "SELECT id, node, name FROM accounts"
#define TYPE_COLS "SELECT id, name FROM event_types"
#define STATS_COLS                                                                                                     \
    "SELECT webhook_id, calls, errors, consecutive, last_error_ms, last_error, changed FROM webhook_stats"
#define BY_ID " WHERE id = ANY($1::bigint[])"

/*
 * A statistics row, unless the cache holds a newer one of its webhook (an
 * own commit's, read back while this read was in flight). polled: a poll's
 * row, whose stamp the next poll starts from (an own commit's is not: rows
 * other nodes changed before it may not have been read yet).
 */
static void stats_row(hk_pg_cache *c, const PGresult *r, int i, bool polled)
{
    uint32_t id = (uint32_t)u64(r, i, 0);
    uint64_t changed = u64(r, i, 6);
    if (polled && changed > c->stats_seen)
        c->stats_seen = changed;
    const struct hk__pg_stats *old = hk__pg_vec_get(&c->t[HK__PGT_STATS], &id);
    if (old != NULL && old->changed > changed)
        return;
    struct hk__pg_stats *st = vec_put(&c->t[HK__PGT_STATS], &id);
    st->id = id;
    st->changed = changed;
    st->st.calls = u64(r, i, 1);
    st->st.errors = u64(r, i, 2);
    st->st.consecutive = (uint32_t)u64(r, i, 3);
    st->st.last_error_ms = u64(r, i, 4);
    copy_text(st->st.last_error, sizeof(st->st.last_error), PQgetvalue(r, i, 5));
}

static void read_stats(hk_pg_cache *c, const PGresult *r, int i)
{
    stats_row(c, r, i, true);
}

static const struct {
    const char *full;    /* the whole table */
    const char *partial; /* the rows of some keys: $1 is an array literal of them (hashes in hex) */
    int ncols;
    void (*read)(hk_pg_cache *c, const PGresult *r, int i);
} tables[HK__PGT_COUNT] = {
    [HK__PGT_WEBHOOKS] = {WEBHOOK_COLS, WEBHOOK_COLS BY_ID, 20, read_webhook},
    [HK__PGT_USERS] = {USER_COLS, USER_COLS BY_ID, 5, read_user},
    [HK__PGT_KEYS] = {KEY_COLS, KEY_COLS " WHERE hash = ANY(ARRAY(SELECT decode(h, 'hex') FROM unnest($1::text[]) h))",
                      5, read_key},
    [HK__PGT_NODES] = {NODE_COLS, NODE_COLS BY_ID, 3, read_node},
    [HK__PGT_ACCOUNTS] = {ACCOUNT_COLS, ACCOUNT_COLS BY_ID, 3, read_account},
    [HK__PGT_TYPES] = {TYPE_COLS, TYPE_COLS BY_ID, 2, read_type},
    [HK__PGT_STATS] = {STATS_COLS, STATS_COLS " WHERE changed > $1::bigint", 7, read_stats},
};

/* ---- one read at a time ------------------------------------------------------------------------------- */

static void query_free(struct hk__pg_cache_read *q)
{
    for (int t = 0; t < HK__PGT_COUNT; t++) {
        free(q->params[t]);
        free(q->keys[t].keys);
    }
    free(q);
}

static void on_retry(uv_timer_t *t)
{
    start_read(t->data);
}

static void on_read_done(hk_pg_batch *b, int status)
{
    struct hk__pg_cache_read *q = hk_container_of(b, struct hk__pg_cache_read, b);
    hk_pg_cache *c = q->c;
    c->inflight = NULL;
    if (status != 0) {
        if (status != UV_ECANCELED)
            hk_warn("postgres: reading the registry failed (%s); reading it whole again", b->err);
        c->want_full = true;
        query_free(q);
        if (!c->closing)
            uv_timer_start(&c->retry, on_retry, RETRY_MS, 0);
        return;
    }
    for (size_t s = 0; s < b->nstmts; s++) {
        int t = q->table_of[s];
        const PGresult *r = b->results[s];
        if (t == READS_SIZE && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && PQnfields(r) == 1)
            c->db_bytes = u64(r, 0, 0);
        if (t < 0)
            continue;
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != tables[t].ncols)
            continue;
        if (q->full || (t == HK__PGT_STATS && q->stats_all))
            vec_clear(&c->t[t]);
        else
            for (size_t k = 0; k < q->keys[t].n; k++)
                vec_del(&c->t[t], q->keys[t].keys + k * keylen(t));
        for (int i = 0; i < PQntuples(r); i++)
            tables[t].read(c, r, i);
        /* A webhook gone takes its statistics with it. */
        for (size_t k = 0; t == HK__PGT_WEBHOOKS && !q->full && k < q->keys[t].n; k++)
            if (hk__pg_vec_get(&c->t[t], q->keys[t].keys + k * 4) == NULL)
                vec_del(&c->t[HK__PGT_STATS], q->keys[t].keys + k * 4);
    }
    if (q->full) {
        c->loads++;
        c->ready = true;
    }
    query_free(q);
    start_read(c);
}

/* A partial read's keys as a text array literal. */
static char *keys_param(enum hk__pg_table t, const struct hk__pg_dirty *d)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i > 0)
            hk_buf_putc(&b, ',');
        if (t == HK__PGT_KEYS) {
            for (size_t k = 0; k < 32; k++)
                hk_buf_printf(&b, "%02x", d->keys[i * 32 + k]);
        } else {
            uint32_t id;
            memcpy(&id, d->keys + i * 4, 4);
            hk_buf_printf(&b, "%" PRIu32, id);
        }
    }
    hk_buf_putc(&b, '}');
    size_t len;
    return hk_buf_steal(&b, &len);
}

static void start_read(hk_pg_cache *c)
{
    if (c->inflight != NULL || c->closing)
        return;
    bool any = false;
    for (int t = 0; t < HK__PGT_COUNT; t++)
        any = any || c->dirty[t].n > 0;
    if (!c->want_full && !any && !c->want_stats && !c->want_stats_all && !c->want_size)
        return;
    struct hk__pg_cache_read *q = hk_calloc(1, sizeof(*q));
    q->c = c;
    q->full = c->want_full;
    size_t n = 0;
    if (q->full) {
        c->want_full = false;
        q->stmts[n].sql = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ";
        q->table_of[n++] = -1;
    }
    for (int t = 0; t < HK__PGT_COUNT; t++) {
        if (q->full) {
            free(c->dirty[t].keys);
            memset(&c->dirty[t], 0, sizeof(c->dirty[t]));
        } else if (t == HK__PGT_STATS) {
            if (!c->want_stats && !c->want_stats_all)
                continue;
            /* Rows changed since the last read (with an overlap), or every row. */
            q->stats_all = c->want_stats_all;
            uint64_t since = q->stats_all || c->stats_seen < STATS_OVERLAP ? 0 : c->stats_seen - STATS_OVERLAP;
            q->params[t] = hk_calloc(1, 24);
            snprintf(q->params[t], 24, "%" PRIu64, since);
            q->values[t][0] = q->params[t];
            q->stmts[n].nparams = 1;
            q->stmts[n].values = q->values[t];
        } else if (c->dirty[t].n > 0) {
            q->keys[t] = c->dirty[t];
            memset(&c->dirty[t], 0, sizeof(c->dirty[t]));
            q->params[t] = keys_param((enum hk__pg_table)t, &q->keys[t]);
            q->values[t][0] = q->params[t];
            q->stmts[n].nparams = 1;
            q->stmts[n].values = q->values[t];
        } else {
            continue;
        }
        q->stmts[n].sql = q->full ? tables[t].full : tables[t].partial;
        q->table_of[n++] = t;
    }
    c->want_stats = c->want_stats_all = false;
    if (q->full || c->want_size) {
        q->stmts[n].sql = SIZE_SQL;
        q->table_of[n++] = READS_SIZE;
        c->want_size = false;
    }
    q->b.stmts = q->stmts;
    q->b.nstmts = n;
    q->b.transaction = true;
    q->b.done = on_read_done;
    c->inflight = q;
    hk_pg_submit(c->pool, &q->b);
}

/* ---- notifications ---------------------------------------------------------------------------------------- */

static void mark(hk_pg_cache *c, enum hk__pg_table t, const void *key)
{
    /* A storm of changes (a large tree import, a bulk edit in psql): one whole read instead of a long list. */
    if (c->want_full)
        return;
    if (c->dirty[t].n >= DIRTY_MAX) {
        c->want_full = true;
        return;
    }
    dirty_add(&c->dirty[t], keylen(t), key);
}

static void on_notify(const char *channel, const char *payload, void *arg)
{
    hk_pg_cache *c = arg;
    (void)channel;
    if (payload == NULL) {
        /* (Re)subscribed: what was missed meanwhile is unknown. */
        c->want_full = true;
        start_read(c);
        return;
    }
    static const struct {
        const char *name;
        enum hk__pg_table t;
    } names[] = {{"webhooks", HK__PGT_WEBHOOKS}, {"webhook_subscriptions", HK__PGT_WEBHOOKS},
                 {"users", HK__PGT_USERS},       {"api_keys", HK__PGT_KEYS},
                 {"nodes", HK__PGT_NODES},       {"accounts", HK__PGT_ACCOUNTS},
                 {"event_types", HK__PGT_TYPES}};
    const char *sp = strchr(payload, ' ');
    if (sp == NULL)
        return;
    for (size_t i = 0; i < HK_ARRAY_SIZE(names); i++) {
        if (strlen(names[i].name) != (size_t)(sp - payload) || strncmp(payload, names[i].name, sp - payload) != 0)
            continue;
        const char *key = sp + 1;
        if (names[i].t == HK__PGT_KEYS) {
            uint8_t hash[32];
            if (strncmp(key, "\\x", 2) == 0 && unhex(key + 2, hash, 32))
                mark(c, HK__PGT_KEYS, hash);
        } else {
            char *end;
            unsigned long long v = strtoull(key, &end, 10);
            uint32_t id = (uint32_t)v;
            if (*end == '\0' && v > 0 && v <= UINT32_MAX)
                mark(c, names[i].t, &id);
        }
        start_read(c);
        return;
    }
}

static void on_poll(uv_timer_t *t)
{
    hk_pg_cache *c = t->data;
    c->want_stats = true;
    if (++c->polls >= STATS_ALL_POLLS) {
        c->polls = 0;
        c->want_stats_all = true;
    }
    if (++c->size_polls >= SIZE_POLLS) {
        c->size_polls = 0;
        c->want_size = true;
    }
    start_read(c);
}

/* ---- the engine's side ------------------------------------------------------------------------------------- */

int hk__pg_cache_open(hk_pg_cache **out, uv_loop_t *loop, hk_pg_pool *pool)
{
    hk_pg_cache *c = hk_calloc(1, sizeof(*c));
    static const size_t sizes[HK__PGT_COUNT] = {sizeof(hk_webhook),
                                                sizeof(hk_user),
                                                sizeof(hk_key),
                                                sizeof(hk_node),
                                                sizeof(hk_account),
                                                sizeof(struct hk__pg_type),
                                                sizeof(struct hk__pg_stats)};
    static const size_t offs[HK__PGT_COUNT] = {offsetof(hk_webhook, id),         offsetof(hk_user, id),
                                               offsetof(hk_key, hash),           offsetof(hk_node, id),
                                               offsetof(hk_account, id),         offsetof(struct hk__pg_type, id),
                                               offsetof(struct hk__pg_stats, id)};
    for (int t = 0; t < HK__PGT_COUNT; t++) {
        c->t[t].size = sizes[t];
        c->t[t].keyoff = offs[t];
        c->t[t].keylen = keylen((enum hk__pg_table)t);
    }
    c->t[HK__PGT_WEBHOOKS].free_elem = free_webhook;
    c->t[HK__PGT_TYPES].free_elem = free_type;
    c->loop = loop;
    c->pool = pool;
    uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    uv_timer_init(loop, &c->poll);
    c->poll.data = c;
    uv_timer_start(&c->poll, on_poll, POLL_MS, POLL_MS);
    int rc = hk_pg_listen(pool, CHANNEL, on_notify, c);
    if (rc != 0) {
        hk__pg_cache_close(c, NULL, NULL);
        return rc;
    }
    *out = c;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    hk_pg_cache *c = h->data;
    if (--c->open_handles > 0)
        return;
    for (int t = 0; t < HK__PGT_COUNT; t++) {
        vec_clear(&c->t[t]);
        free(c->t[t].v);
        free(c->dirty[t].keys);
    }
    void (*closed)(void *) = c->closed;
    void *arg = c->closed_arg;
    free(c);
    if (closed != NULL)
        closed(arg);
}

void hk__pg_cache_stop(hk_pg_cache *c)
{
    c->closing = true;
    uv_timer_stop(&c->retry);
    uv_timer_stop(&c->poll);
}

void hk__pg_cache_close(hk_pg_cache *c, void (*closed)(void *arg), void *arg)
{
    c->closing = true;
    c->closed = closed;
    c->closed_arg = arg;
    c->open_handles = 2;
    uv_close((uv_handle_t *)&c->retry, on_timer_closed);
    uv_close((uv_handle_t *)&c->poll, on_timer_closed);
}

bool hk__pg_cache_ready(const hk_pg_cache *c)
{
    return c->ready;
}

uint64_t hk__pg_cache_loads(const hk_pg_cache *c)
{
    return c->loads;
}

uint64_t hk__pg_cache_db_bytes(const hk_pg_cache *c)
{
    return c->db_bytes;
}

/* A key changed by an own commit while a read is in flight: that read may have seen it before, so read it again. */
static void reread(hk_pg_cache *c, enum hk__pg_table t, const void *key)
{
    if (c->inflight != NULL)
        mark(c, t, key);
}

void hk__pg_cache_applied(hk_pg_cache *c, const hk_op *op)
{
    switch (op->type) {
    case HK_OP_WEBHOOK_PUT: {
        const hk_op_webhook_put *p = &op->u.webhook_put;
        uint32_t id = p->id;
        hk_webhook *old = hk__pg_vec_get(&c->t[HK__PGT_WEBHOOKS], &id);
        bool locked = p->by_client && old != NULL ? old->locked : p->webhook->locked;
        hk_webhook *w = vec_put(&c->t[HK__PGT_WEBHOOKS], &id);
        hk_webhook_copy(w, p->webhook);
        w->id = id;
        w->locked = locked;
        if (w->extension != NULL && *w->extension == '\0') {
            free(w->extension);
            w->extension = NULL;
        }
        reread(c, HK__PGT_WEBHOOKS, &id);
        break;
    }
    case HK_OP_WEBHOOK_DELETE:
        vec_del(&c->t[HK__PGT_WEBHOOKS], &op->u.webhook_delete.id);
        vec_del(&c->t[HK__PGT_STATS], &op->u.webhook_delete.id);
        reread(c, HK__PGT_WEBHOOKS, &op->u.webhook_delete.id);
        break;
    case HK_OP_WEBHOOK_LOCK: {
        hk_webhook *w = hk__pg_vec_get(&c->t[HK__PGT_WEBHOOKS], &op->u.webhook_lock.id);
        if (w != NULL)
            w->locked = op->u.webhook_lock.locked;
        reread(c, HK__PGT_WEBHOOKS, &op->u.webhook_lock.id);
        break;
    }
    case HK_OP_OUTCOME:
    case HK_OP_ATTEMPT: {
        bool disabled = op->type == HK_OP_OUTCOME ? op->u.outcome.disabled : op->u.attempt.disabled;
        uint32_t id = op->type == HK_OP_OUTCOME ? op->u.outcome.delivery.webhook_id : op->u.attempt.rec->webhook_id;
        hk_webhook *w = hk__pg_vec_get(&c->t[HK__PGT_WEBHOOKS], &id);
        if (disabled && w != NULL)
            w->state = HK_WH_TOO_MANY_ERRORS;
        break;
    }
    case HK_OP_USER_PUT: {
        const hk_op_user_put *p = &op->u.user_put;
        if (p->skipped)
            break;
        uint32_t id = p->id;
        hk_user *u = vec_put(&c->t[HK__PGT_USERS], &id);
        *u = p->user;
        u->id = id;
        reread(c, HK__PGT_USERS, &id);
        if (p->key != NULL) {
            hk_key *k = vec_put(&c->t[HK__PGT_KEYS], p->key->hash);
            *k = *p->key;
            k->user_id = id;
            reread(c, HK__PGT_KEYS, k->hash);
        }
        break;
    }
    case HK_OP_KEY_PUT: {
        hk_key *k = vec_put(&c->t[HK__PGT_KEYS], op->u.key_put.key.hash);
        *k = op->u.key_put.key;
        reread(c, HK__PGT_KEYS, k->hash);
        break;
    }
    case HK_OP_NODE_PUT: {
        hk_node *n = vec_put(&c->t[HK__PGT_NODES], &op->u.node_put.node.id);
        *n = op->u.node_put.node;
        reread(c, HK__PGT_NODES, &n->id);
        break;
    }
    case HK_OP_ACCOUNT_PUT: {
        hk_account *a = vec_put(&c->t[HK__PGT_ACCOUNTS], &op->u.account_put.account.id);
        *a = op->u.account_put.account;
        reread(c, HK__PGT_ACCOUNTS, &a->id);
        break;
    }
    case HK_OP_KEY_REVOKE:
    case HK_OP_TREE_IMPORT:
        /* Which rows changed is the database's answer: read them whole (the notifications name them too). */
        c->want_full = op->type == HK_OP_TREE_IMPORT || c->want_full;
        if (op->type == HK_OP_KEY_REVOKE && op->u.key_revoke.short_id[0] == '\0') {
            hk_key *k = hk__pg_vec_get(&c->t[HK__PGT_KEYS], op->u.key_revoke.hash);
            if (k != NULL)
                k->revoked = true;
        } else if (op->type == HK_OP_KEY_REVOKE) {
            for (size_t i = 0; i < c->t[HK__PGT_KEYS].n; i++) {
                hk_key *k = (hk_key *)c->t[HK__PGT_KEYS].v + i;
                if (strcmp(k->short_id, op->u.key_revoke.short_id) == 0)
                    k->revoked = true;
            }
        }
        start_read(c);
        break;
    default: break;
    }
}

/* ---- an own group's read-back --------------------------------------------------------------------------- */

static bool type_known(const hk_pg_cache *c, const char *name)
{
    const struct hk__pg_type *t = (const struct hk__pg_type *)c->t[HK__PGT_TYPES].v;
    for (size_t i = 0; i < c->t[HK__PGT_TYPES].n; i++)
        if (strcmp(t[i].name, name) == 0)
            return true;
    return false;
}

static void echo_name(const hk_pg_cache *c, hk__pg_echo *e, const char *name)
{
    if (name == NULL || type_known(c, name))
        return;
    for (size_t i = 0; i < e->nnames; i++)
        if (strcmp(e->names[i], name) == 0)
            return;
    if (e->nnames == e->capnames)
        e->names = hk_realloc(e->names, (e->capnames = e->capnames ? 2 * e->capnames : 8) * sizeof(*e->names));
    e->names[e->nnames++] = name;
}

/* Repeated ids are dropped by hk__pg_echo_build. */
static void echo_id(hk__pg_echo *e, uint32_t id)
{
    if (id == 0)
        return;
    if (e->nids == e->capids)
        e->ids = hk_realloc(e->ids, (e->capids = e->capids ? 2 * e->capids : 16) * sizeof(*e->ids));
    e->ids[e->nids++] = id;
}

void hk__pg_echo_add(hk_pg_cache *c, hk__pg_echo *e, const hk_op *op)
{
    switch (op->type) {
    case HK_OP_WEBHOOK_PUT: {
        /* Its subscriptions' names become event types; re-activating it resets its consecutive failures. */
        const hk_webhook *w = op->u.webhook_put.webhook;
        for (size_t i = 0; w != NULL && i < w->nevents; i++)
            echo_name(c, e, w->events[i]);
        echo_id(e, w != NULL ? w->id : 0);
        break;
    }
    case HK_OP_SIGNAL: echo_name(c, e, op->u.signal.name); break;
    case HK_OP_OUTCOME: echo_id(e, op->u.outcome.delivery.webhook_id); break;
    case HK_OP_ATTEMPT: echo_id(e, op->u.attempt.rec != NULL ? op->u.attempt.rec->webhook_id : 0); break;
    default: break;
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void echo_stmt(hk__pg_echo *e, const char *sql, hk_buf *param, bool types)
{
    size_t len, i = e->nstmts++;
    e->params[i] = hk_buf_steal(param, &len);
    e->values[i][0] = e->params[i];
    e->reads_types[i] = types;
    e->stmts[i] = (hk_pg_stmt){.sql = sql, .nparams = 1, .values = e->values[i]};
}

void hk__pg_echo_build(hk__pg_echo *e)
{
    e->nstmts = 0;
    if (e->nnames > 0) {
        hk_buf b = HK_BUF_INIT;
        hk_buf_putc(&b, '{');
        for (size_t i = 0; i < e->nnames; i++) {
            hk_buf_puts(&b, i > 0 ? ",\"" : "\"");
            for (const char *p = e->names[i]; *p != '\0'; p++) {
                if (*p == '"' || *p == '\\')
                    hk_buf_putc(&b, '\\');
                hk_buf_putc(&b, *p);
            }
            hk_buf_putc(&b, '"');
        }
        hk_buf_putc(&b, '}');
        echo_stmt(e, TYPE_COLS " WHERE name = ANY($1::text[])", &b, true);
    }
    if (e->nids > 0) {
        qsort(e->ids, e->nids, sizeof(*e->ids), cmp_u32);
        hk_buf b = HK_BUF_INIT;
        hk_buf_putc(&b, '{');
        for (size_t i = 0; i < e->nids; i++)
            if (i == 0 || e->ids[i] != e->ids[i - 1])
                hk_buf_printf(&b, "%s%" PRIu32, i > 0 ? "," : "", e->ids[i]);
        hk_buf_putc(&b, '}');
        echo_stmt(e, STATS_COLS " WHERE webhook_id = ANY($1::bigint[])", &b, false);
    }
}

void hk__pg_cache_echoed(hk_pg_cache *c, const hk__pg_echo *e, struct pg_result *const *results)
{
    for (size_t s = 0; s < e->nstmts; s++) {
        const PGresult *r = results[s];
        enum hk__pg_table t = e->reads_types[s] ? HK__PGT_TYPES : HK__PGT_STATS;
        if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != tables[t].ncols)
            continue;
        for (int i = 0; i < PQntuples(r); i++) {
            if (t == HK__PGT_STATS) {
                stats_row(c, r, i, false);
                continue;
            }
            uint32_t id = (uint32_t)u64(r, i, 0);
            read_type(c, r, i);
            reread(c, t, &id);
        }
        /* A read of every row in flight may have been older than this: the next poll puts it right. */
        if (t == HK__PGT_STATS && c->inflight != NULL)
            c->want_stats = true;
    }
}

void hk__pg_echo_free(hk__pg_echo *e)
{
    free(e->names);
    free(e->ids);
    for (size_t i = 0; i < e->nstmts; i++)
        free(e->params[i]);
    memset(e, 0, sizeof(*e));
}
