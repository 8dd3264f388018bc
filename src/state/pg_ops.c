/*
 * pg_ops.c: the seam's ops as SQL statements for the PostgreSQL engine
 * (pg_ops.h), and their results back into the ops' out fields. Each op is
 * one statement, most of them a call of a function of
 * pg_schema/002_ops.sql, so that a whole group is one pipeline. Values go
 * as text parameters (numbers in decimal, lists as array literals), except
 * bytes a client chose, which go in binary: event Data and its keys (any
 * length, not NUL-terminated) and an Idempotency-Key.
 */
#include "pg_ops.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "log.h"

/* Log records of a deleted webhook removed in its delete's commit, as the embedded engine does. */
#define DELETE_LOG_MAX 20000

/* ---- parameters ------------------------------------------------------------------------ */

static void p_own(hk__pg_op_stmt *e, int i, char *s)
{
    e->owned[i] = s;
    e->values[i] = s;
}

static void p_u64(hk__pg_op_stmt *e, int i, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    p_own(e, i, hk_strdup(buf));
}

static void p_i64(hk__pg_op_stmt *e, int i, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    p_own(e, i, hk_strdup(buf));
}

static void p_bool(hk__pg_op_stmt *e, int i, bool v)
{
    e->values[i] = v ? "t" : "f";
}

/* A C string (NULL: SQL NULL), borrowed. */
static void p_str(hk__pg_op_stmt *e, int i, const char *s)
{
    e->values[i] = s;
}

/* Bytes in binary (text or bytea), borrowed. */
static void p_bin(hk__pg_op_stmt *e, int i, const char *data, size_t len)
{
    e->values[i] = data;
    e->lengths[i] = (int)len;
    e->formats[i] = 1;
}

static void p_uuid(hk__pg_op_stmt *e, int i, const uint8_t u[16])
{
    char s[HK_EVENT_UUID_LEN];
    hk_event_uuid_str(u, s);
    p_own(e, i, hk_strdup(s));
}

/* One element of an array literal: quoted, with " and \ escaped. */
static void array_elem(hk_buf *b, const char *s)
{
    hk_buf_putc(b, '"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            hk_buf_putc(b, '\\');
        hk_buf_putc(b, *s);
    }
    hk_buf_putc(b, '"');
}

/* A text[] literal of n strings, or of the names (values: the values) of n pairs. */
static void p_array(hk__pg_op_stmt *e, int i, char *const *v, const hk_pair *pairs, bool values, size_t n)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '{');
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            hk_buf_putc(&b, ',');
        array_elem(&b, v != NULL ? v[k] : values ? pairs[k].value : pairs[k].name);
    }
    hk_buf_putc(&b, '}');
    size_t len;
    p_own(e, i, hk_buf_steal(&b, &len));
}

/* A JSON string of s, quoted as event.c quotes a state event's members ("" and \ escaped, controls as \u00XX). */
static void p_json(hk__pg_op_stmt *e, int i, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            hk_buf_putc(&b, '\\');
            hk_buf_putc(&b, (char)*p);
        } else if (*p < 0x20) {
            hk_buf_printf(&b, "\\u00%c%c", hex[*p >> 4], hex[*p & 15]);
        } else {
            hk_buf_putc(&b, (char)*p);
        }
    }
    hk_buf_putc(&b, '"');
    size_t len;
    p_own(e, i, hk_buf_steal(&b, &len));
}

static void stmt(hk__pg_op_stmt *e, const char *sql, int nparams)
{
    e->stmt.sql = sql;
    e->stmt.nparams = nparams;
    e->stmt.values = e->values;
    e->stmt.lengths = e->lengths;
    e->stmt.formats = e->formats;
}

/* ---- encoding ---------------------------------------------------------------------------- */

static int encode_signal(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_signal *s = &op->u.signal;
    s->event_id = 0;
    s->duplicate = false;
    s->webhooks = NULL;
    s->nwebhooks = 0;
    if (s->name == NULL || (s->idem_key != NULL && strlen(s->idem_key) > HK_IDEMPOTENCY_KEY_MAX))
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_str(e, 1, s->name);
    p_i64(e, 2, s->primary_key);
    if (s->data != NULL)
        p_bin(e, 3, s->data, s->data_len);
    else
        p_str(e, 3, "{}");
    if (s->changes != NULL)
        p_bin(e, 4, s->changes, s->changes_len);
    else
        p_str(e, 4, "[]");
    p_u64(e, 5, s->user_id);
    p_uuid(e, 6, s->uuid);
    if (s->idem_key != NULL)
        p_bin(e, 7, s->idem_key, strlen(s->idem_key));
    else
        p_str(e, 7, NULL);
    p_u64(e, 8, s->idem_window_ms);
    stmt(e,
         "SELECT duplicate, event_id, webhooks FROM hookd_signal($1::bigint, $2::text, $3::bigint, $4::text, "
         "$5::text, $6::bigint, $7::uuid, $8::bytea, $9::bigint)",
         9);
    return 0;
}

static int encode_webhook_put(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_webhook_put *p = &op->u.webhook_put;
    const hk_webhook *w = p->webhook;
    p->id = 0;
    if (w == NULL)
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, w->id);
    p_bool(e, 2, p->by_client);
    p_u64(e, 3, p->unmodified_since_ms);
    p_str(e, 4, w->name ? w->name : "");
    p_str(e, 5, w->description ? w->description : "");
    p_str(e, 6, w->url ? w->url : "");
    p_str(e, 7, w->secret ? w->secret : "");
    p_str(e, 8, w->prev_secret ? w->prev_secret : "");
    p_u64(e, 9, w->prev_secret_until);
    p_u64(e, 10, (uint64_t)w->state);
    p_bool(e, 11, w->locked);
    p_str(e, 12, w->extension != NULL && *w->extension != '\0' ? w->extension : NULL);
    p_array(e, 13, w->events, NULL, false, w->nevents);
    p_array(e, 14, NULL, w->headers, false, w->nheaders);
    p_array(e, 15, NULL, w->headers, true, w->nheaders);
    p_array(e, 16, NULL, w->properties, false, w->nproperties);
    p_array(e, 17, NULL, w->properties, true, w->nproperties);
    p_array(e, 18, w->notify, NULL, false, w->nnotify);
    p_u64(e, 19, w->registered_ms);
    p_u64(e, 20, w->registered_by);
    p_u64(e, 21, w->updated_ms);
    p_u64(e, 22, w->updated_by);
    if (p->event.kind != NULL) {
        p_str(e, 23, p->event.kind);
        p_json(e, 24, p->event.kind);
        if (p->event.reason != NULL)
            p_json(e, 25, p->event.reason);
        p_uuid(e, 26, p->event.uuid);
    }
    stmt(e,
         "SELECT status, id FROM hookd_webhook_put($1::bigint, $2::bigint, $3::boolean, $4::bigint, $5::text, "
         "$6::text, $7::text, $8::text, $9::text, $10::bigint, $11::smallint, $12::boolean, $13::text, $14::text[], "
         "$15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::bigint, $21::bigint, $22::bigint, "
         "$23::bigint, $24::text, $25::text, $26::text, $27::uuid)",
         27);
    return 0;
}

static int encode_webhook_delete(hk_op *op, hk__pg_op_stmt *e)
{
    const hk_op_webhook_delete *p = &op->u.webhook_delete;
    p_u64(e, 0, p->id);
    p_bool(e, 1, p->by_client);
    p_u64(e, 2, p->unmodified_since_ms);
    p_u64(e, 3, DELETE_LOG_MAX);
    stmt(e, "SELECT hookd_webhook_delete($1::bigint, $2::boolean, $3::bigint, $4::integer)", 4);
    return 0;
}

static int encode_webhook_lock(hk_op *op, hk__pg_op_stmt *e)
{
    const hk_op_webhook_lock *p = &op->u.webhook_lock;
    p_u64(e, 0, p->id);
    p_bool(e, 1, p->locked);
    stmt(e, "UPDATE webhooks SET locked = $2::boolean WHERE id = $1::bigint RETURNING id", 2);
    return 0;
}

int hk__pg_op_encode(hk_op *op, hk__pg_op_stmt *e)
{
    memset(e, 0, sizeof(*e));
    switch (op->type) {
    case HK_OP_SIGNAL: return encode_signal(op, e);
    case HK_OP_WEBHOOK_PUT: return encode_webhook_put(op, e);
    case HK_OP_WEBHOOK_DELETE: return encode_webhook_delete(op, e);
    case HK_OP_WEBHOOK_LOCK: return encode_webhook_lock(op, e);
    default: return UV_ENOSYS;
    }
}

void hk__pg_op_stmt_free(hk__pg_op_stmt *e)
{
    for (int i = 0; i < HK__PG_OP_PARAMS_MAX; i++) {
        free(e->owned[i]);
        e->owned[i] = NULL;
    }
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* A status the functions of 002_ops.sql return, as the seam's code. */
static int status_of(const char *s)
{
    static const struct {
        const char *name;
        int code;
    } map[] = {{"ok", 0},
               {"notfound", HK_ENOTFOUND},
               {"locked", HK_ELOCKED},
               {"conflict", HK_ECONFLICT},
               {"exists", HK_EEXIST}};
    for (size_t i = 0; i < HK_ARRAY_SIZE(map); i++)
        if (strcmp(s, map[i].name) == 0)
            return map[i].code;
    hk_error("postgres: an op's function answered \"%.40s\"", s);
    return HK_ESTORE;
}

/* A decimal id of at most max; false when it is not one. */
static bool parse_id(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* A bigint[] of webhook ids ("{1,2,3}") into a malloc'd array. */
static bool parse_ids(const char *s, uint32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (*s++ != '{')
        return false;
    size_t cap = 0;
    while (*s != '}' && *s != '\0') {
        char num[24];
        size_t len = strcspn(s, ",}");
        uint64_t v;
        if (len == 0 || len >= sizeof(num))
            return false;
        memcpy(num, s, len);
        num[len] = '\0';
        if (!parse_id(num, UINT32_MAX, &v))
            return false;
        if (*n == cap)
            *ids = hk_realloc(*ids, (cap = cap ? 2 * cap : 8) * sizeof(**ids));
        (*ids)[(*n)++] = (uint32_t)v;
        s += len + (s[len] == ',');
    }
    return *s == '}';
}

static int decode_signal(hk_op *op, const PGresult *r)
{
    hk_op_signal *s = &op->u.signal;
    uint64_t eid;
    if (PQntuples(r) != 1 || PQnfields(r) != 3 || !parse_id(PQgetvalue(r, 0, 1), INT64_MAX, &eid))
        return HK_ESTORE;
    s->duplicate = PQgetvalue(r, 0, 0)[0] == 't';
    s->event_id = eid;
    if (!parse_ids(PQgetvalue(r, 0, 2), &s->webhooks, &s->nwebhooks)) {
        free(s->webhooks);
        s->webhooks = NULL;
        s->nwebhooks = 0;
        return HK_ESTORE;
    }
    return 0;
}

static int decode_webhook_put(hk_op *op, const PGresult *r)
{
    uint64_t id;
    if (PQntuples(r) != 1 || PQnfields(r) != 2 || !parse_id(PQgetvalue(r, 0, 1), UINT32_MAX, &id))
        return HK_ESTORE;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == 0)
        op->u.webhook_put.id = (uint32_t)id;
    return rc;
}

int hk__pg_op_decode(hk_op *op, const struct pg_result *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return HK_ESTORE;
    switch (op->type) {
    case HK_OP_SIGNAL: return decode_signal(op, r);
    case HK_OP_WEBHOOK_PUT: return decode_webhook_put(op, r);
    case HK_OP_WEBHOOK_DELETE:
        return PQntuples(r) == 1 && PQnfields(r) == 1 ? status_of(PQgetvalue(r, 0, 0)) : HK_ESTORE;
    case HK_OP_WEBHOOK_LOCK: return PQntuples(r) == 1 ? 0 : HK_ENOTFOUND;
    default: return HK_ESTORE;
    }
}
