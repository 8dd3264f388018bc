/*
 * pg_query.c: attempt records and events read from PostgreSQL on request
 * (pg_query.h). Each request is one statement on the pool; bytes a peer
 * sent (an attempt's request and response) travel as hex and are decoded
 * here, so that NUL bytes survive.
 */
#include "pg_query.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

#define ATTEMPT_COLS                                                                                                   \
    "SELECT id, webhook_id, event_id, event_name, event_uuid, attempt, started_ms, duration_ms, success, status, "     \
    "error, url, CASE WHEN $4::boolean THEN '' ELSE encode(request, 'hex') END, CASE WHEN $4::boolean THEN '' ELSE "   \
    "encode(response, 'hex') END, user_id, exhausted, next_due_ms, disabled, sync FROM attempts WHERE webhook_id = "   \
    "$1::bigint"

static const char newest_sql[] =
    ATTEMPT_COLS " AND ($2::bigint = 0 OR id <= $2::bigint) ORDER BY id DESC LIMIT $3::integer";
static const char oldest_sql[] = ATTEMPT_COLS " AND id >= $2::bigint ORDER BY id LIMIT $3::integer";
static const char exact_sql[] = ATTEMPT_COLS " AND id = $2::bigint LIMIT $3::integer";

static uint64_t u64(const PGresult *r, int row, int col)
{
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static bool flag(const PGresult *r, int row, int col)
{
    return PQgetvalue(r, row, col)[0] == 't';
}

bool hk__pg_uuid_parse(const char *s, uint8_t out[16])
{
    size_t n = 0;
    for (; *s != '\0' && n < 32; s++) {
        if (*s == '-')
            continue;
        unsigned v;
        if (sscanf(s, "%1x", &v) != 1)
            return false;
        out[n / 2] = (uint8_t)(n % 2 == 0 ? v << 4 : out[n / 2] | v);
        n++;
    }
    return n == 32 && *s == '\0';
}

/* Hex text into malloc'd bytes (NUL-terminated, for the text they usually are); NULL for "". */
static char *unhex(const char *s, size_t *len)
{
    size_t n = strlen(s) / 2;
    *len = 0;
    if (n == 0)
        return NULL;
    char *out = hk_calloc(1, n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            break;
        out[(*len)++] = (char)v;
    }
    return out;
}

static void read_attempt(const PGresult *r, int i, hk_attempt *a)
{
    memset(a, 0, sizeof(*a));
    a->id = u64(r, i, 0);
    a->webhook_id = (uint32_t)u64(r, i, 1);
    a->event_id = u64(r, i, 2);
    a->event_name = hk_strdup(PQgetvalue(r, i, 3));
    a->event_uuid = hk_strdup(PQgetvalue(r, i, 4));
    a->attempt = (uint32_t)u64(r, i, 5);
    a->started_ms = u64(r, i, 6);
    a->duration_ms = u64(r, i, 7);
    a->success = flag(r, i, 8);
    a->status = (int)strtol(PQgetvalue(r, i, 9), NULL, 10);
    a->error = hk_strdup(PQgetvalue(r, i, 10));
    a->url = hk_strdup(PQgetvalue(r, i, 11));
    a->request = unhex(PQgetvalue(r, i, 12), &a->request_len);
    a->response = unhex(PQgetvalue(r, i, 13), &a->response_len);
    a->user_id = (uint32_t)u64(r, i, 14);
    a->exhausted = flag(r, i, 15);
    a->next_due_ms = u64(r, i, 16);
    a->disabled = flag(r, i, 17);
    a->sync = flag(r, i, 18);
}

static void on_attempts(hk_pg_batch *b, int status)
{
    hk_pg_attempts_req *q = hk_container_of(b, hk_pg_attempts_req, b);
    const PGresult *r = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 19))
        status = HK_ESTORE;
    if (status == 0 && PQntuples(r) > 0) {
        q->items = hk_calloc((size_t)PQntuples(r), sizeof(*q->items));
        for (int i = 0; i < PQntuples(r); i++)
            read_attempt(r, i, &q->items[q->nitems++]);
    }
    if (status == 0 && q->exact && q->nitems == 0)
        status = HK_ENOTFOUND;
    if (status != 0 && status != HK_ENOTFOUND && status != UV_ECANCELED)
        hk_warn("postgres: reading attempt records failed: %s", b->err);
    q->done(q, status);
}

void hk_pg_attempts_list(hk_pg_store *s, hk_pg_attempts_req *r)
{
    r->items = NULL;
    r->nitems = 0;
    snprintf(r->params[0], sizeof(r->params[0]), "%" PRIu32, r->webhook_id);
    snprintf(r->params[1], sizeof(r->params[1]), "%" PRIu64, r->from_id);
    snprintf(r->params[2], sizeof(r->params[2]), "%" PRIu32, r->max ? r->max : 1);
    snprintf(r->params[3], sizeof(r->params[3]), "%s", r->brief ? "t" : "f");
    for (int i = 0; i < 4; i++)
        r->values[i] = r->params[i];
    memset(&r->stmt, 0, sizeof(r->stmt));
    r->stmt.sql = r->exact ? exact_sql : r->newest_first ? newest_sql : oldest_sql;
    r->stmt.nparams = 4;
    r->stmt.values = r->values;
    memset(&r->b, 0, sizeof(r->b));
    r->b.stmts = &r->stmt;
    r->b.nstmts = 1;
    r->b.done = on_attempts;
    hk_pg_submit(hk_pg_store_pool(s), &r->b);
}

void hk_pg_attempts_req_free(hk_pg_attempts_req *r)
{
    for (size_t i = 0; i < r->nitems; i++)
        hk_attempt_free(&r->items[i]);
    free(r->items);
    r->items = NULL;
    r->nitems = 0;
}

/* ---- events ------------------------------------------------------------------------------------ */

static void on_event(hk_pg_batch *b, int status)
{
    hk_pg_event_req *q = hk_container_of(b, hk_pg_event_req, b);
    const PGresult *r = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 7))
        status = HK_ESTORE;
    if (status == 0 && PQntuples(r) == 0)
        status = HK_ENOTFOUND;
    if (status == 0) {
        hk_event *e = &q->event;
        e->id = q->id;
        e->ts_ms = u64(r, 0, 0);
        e->primary_key = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        e->user_id = (uint32_t)u64(r, 0, 2);
        if (!hk__pg_uuid_parse(PQgetvalue(r, 0, 3), e->uuid))
            status = HK_ESTORE;
        e->name = hk_strdup(PQgetvalue(r, 0, 4));
        e->changes_len = (size_t)PQgetlength(r, 0, 5);
        e->changes = hk_strndup(PQgetvalue(r, 0, 5), e->changes_len);
        e->data_len = (size_t)PQgetlength(r, 0, 6);
        e->data = hk_strndup(PQgetvalue(r, 0, 6), e->data_len);
    }
    if (status != 0 && status != HK_ENOTFOUND && status != UV_ECANCELED)
        hk_warn("postgres: reading event %" PRIu64 " failed: %s", q->id, b->err);
    q->done(q, status);
}

void hk_pg_event_get(hk_pg_store *s, hk_pg_event_req *r)
{
    memset(&r->event, 0, sizeof(r->event));
    snprintf(r->param, sizeof(r->param), "%" PRIu64, r->id);
    r->values[0] = r->param;
    memset(&r->stmt, 0, sizeof(r->stmt));
    r->stmt.sql = "SELECT ts_ms, primary_key, user_id, uuid, name, changes, data FROM events WHERE id = $1::bigint";
    r->stmt.nparams = 1;
    r->stmt.values = r->values;
    memset(&r->b, 0, sizeof(r->b));
    r->b.stmts = &r->stmt;
    r->b.nstmts = 1;
    r->b.done = on_event;
    hk_pg_submit(hk_pg_store_pool(s), &r->b);
}

/* ---- the queue ------------------------------------------------------------------------------------ */

/* Parked: entries of webhooks not Active, or deleted and being dropped. Oldest: the oldest event with an entry. */
static const char queue_sql[] =
    "SELECT count(*), count(*) FILTER (WHERE d.due_ms <= $1::bigint AND w.state = 0),"
    " count(*) FILTER (WHERE w.state IS NULL OR w.state <> 0),"
    " coalesce((SELECT min(e.ts_ms) FROM events e WHERE e.id = (SELECT min(q.event_id) FROM deliveries q"
    " WHERE $2::bigint = 0 OR q.webhook_id = $2::bigint)), 0)"
    " FROM deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id WHERE $2::bigint = 0 OR d.webhook_id = $2::bigint";

static void on_queue(hk_pg_batch *b, int status)
{
    hk_pg_queue_req *q = hk_container_of(b, hk_pg_queue_req, b);
    const PGresult *r = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQnfields(r) != 4))
        status = HK_ESTORE;
    if (status == 0) {
        q->sum.pending = u64(r, 0, 0);
        q->sum.due = u64(r, 0, 1);
        q->sum.parked = u64(r, 0, 2);
        q->sum.oldest_ms = u64(r, 0, 3);
    } else if (status != UV_ECANCELED) {
        hk_warn("postgres: reading the queue's summary failed: %s", b->err);
    }
    q->done(q, status);
}

void hk_pg_queue_summary(hk_pg_store *s, hk_pg_queue_req *r)
{
    memset(&r->sum, 0, sizeof(r->sum));
    snprintf(r->params[0], sizeof(r->params[0]), "%" PRIu64, r->now_ms);
    snprintf(r->params[1], sizeof(r->params[1]), "%" PRIu32, r->webhook_id);
    r->values[0] = r->params[0];
    r->values[1] = r->params[1];
    memset(&r->stmt, 0, sizeof(r->stmt));
    r->stmt.sql = queue_sql;
    r->stmt.nparams = 2;
    r->stmt.values = r->values;
    memset(&r->b, 0, sizeof(r->b));
    r->b.stmts = &r->stmt;
    r->b.nstmts = 1;
    r->b.done = on_queue;
    hk_pg_submit(hk_pg_store_pool(s), &r->b);
}
