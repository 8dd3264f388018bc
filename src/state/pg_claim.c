/*
 * pg_claim.c: claiming due deliveries with leases (pg_claim.h). One
 * statement, committed on its own: the due, unleased (or expired) entries
 * of Active webhooks (but those the caller skips) are picked in due order
 * with FOR UPDATE SKIP LOCKED (rows another node is claiming right now are
 * stepped over, not waited for), stamped with this node and the lease's
 * end, and returned with their events.
 */
#include "pg_claim.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "pg_query.h"

static const char claim_sql[] =
    "WITH c AS ("
    " SELECT d.webhook_id, d.due_ms, d.event_id FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id"
    " WHERE d.due_ms <= $1::bigint AND w.state = 0 AND (d.lease_until IS NULL OR d.lease_until <= $1::bigint)"
    " AND ($5::bigint[] IS NULL OR NOT d.webhook_id = ANY ($5::bigint[]))"
    " ORDER BY d.due_ms, d.webhook_id, d.event_id LIMIT $3::integer FOR UPDATE OF d SKIP LOCKED),"
    " u AS (UPDATE deliveries d SET leased_by = $2::text, lease_until = $1::bigint + $4::bigint FROM c"
    " WHERE (d.webhook_id, d.due_ms, d.event_id) = (c.webhook_id, c.due_ms, c.event_id)"
    " RETURNING d.webhook_id, d.due_ms, d.event_id, d.attempts, d.first_ms)"
    " SELECT u.webhook_id, u.due_ms, u.event_id, u.attempts, u.first_ms, e.ts_ms, e.primary_key, e.user_id,"
    " e.uuid, e.name, e.changes, e.data FROM u JOIN events e ON e.id = u.event_id"
    " ORDER BY u.due_ms, u.webhook_id, u.event_id";

static uint64_t u64(const PGresult *r, int row, int col)
{
    return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

static bool read_item(const PGresult *r, int i, hk_pg_claimed *it)
{
    hk_delivery *d = &it->delivery;
    hk_event *e = &it->event;
    d->webhook_id = (uint32_t)u64(r, i, 0);
    d->due_ms = u64(r, i, 1);
    d->event_id = u64(r, i, 2);
    d->attempts = (uint32_t)u64(r, i, 3);
    d->first_ms = u64(r, i, 4);
    e->id = d->event_id;
    e->ts_ms = u64(r, i, 5);
    e->primary_key = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    e->user_id = (uint32_t)u64(r, i, 7);
    if (!hk__pg_uuid_parse(PQgetvalue(r, i, 8), e->uuid))
        return false;
    e->name = hk_strdup(PQgetvalue(r, i, 9));
    e->changes_len = (size_t)PQgetlength(r, i, 10);
    e->changes = hk_strndup(PQgetvalue(r, i, 10), e->changes_len);
    e->data_len = (size_t)PQgetlength(r, i, 11);
    e->data = hk_strndup(PQgetvalue(r, i, 11), e->data_len);
    return true;
}

static void on_claimed(hk_pg_batch *b, int status)
{
    hk_pg_claim *c = hk_container_of(b, hk_pg_claim, b);
    free(c->skip_list);
    c->skip_list = NULL;
    const PGresult *r = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 12))
        status = HK_ESTORE;
    if (status == 0 && PQntuples(r) > 0) {
        c->items = hk_calloc((size_t)PQntuples(r), sizeof(*c->items));
        for (int i = 0; i < PQntuples(r); i++) {
            if (!read_item(r, i, &c->items[c->nitems])) {
                hk_warn("postgres: claimed delivery of event %s has a malformed EventId; its lease will end",
                        PQgetvalue(r, i, 2));
                hk_event_free(&c->items[c->nitems].event);
                continue;
            }
            c->nitems++;
        }
    } else if (status != 0 && status != UV_ECANCELED) {
        hk_warn("postgres: claiming due deliveries failed: %s", b->err);
    }
    c->done(c, status);
}

void hk_pg_claim_due(hk_pg_store *s, hk_pg_claim *c)
{
    c->items = NULL;
    c->nitems = 0;
    snprintf(c->params[0], sizeof(c->params[0]), "%" PRIu64, c->now_ms);
    snprintf(c->params[1], sizeof(c->params[1]), "%" PRIu32, c->max ? c->max : 1);
    snprintf(c->params[2], sizeof(c->params[2]), "%" PRIu64, c->lease_ms);
    c->values[0] = c->params[0];
    c->values[1] = c->node;
    c->values[2] = c->params[1];
    c->values[3] = c->params[2];
    c->skip_list = NULL;
    if (c->nskip > 0) {
        hk_buf l = HK_BUF_INIT;
        hk_buf_putc(&l, '{');
        for (size_t i = 0; i < c->nskip; i++)
            hk_buf_printf(&l, "%s%" PRIu32, i ? "," : "", c->skip[i]);
        hk_buf_putc(&l, '}');
        size_t len;
        c->skip_list = hk_buf_steal(&l, &len);
    }
    c->values[4] = c->skip_list;
    memset(&c->stmt, 0, sizeof(c->stmt));
    c->stmt.sql = claim_sql;
    c->stmt.nparams = 5;
    c->stmt.values = c->values;
    memset(&c->b, 0, sizeof(c->b));
    c->b.stmts = &c->stmt;
    c->b.nstmts = 1;
    c->b.transaction = false;
    c->b.done = on_claimed;
    hk_pg_submit(hk_pg_store_pool(s), &c->b);
}

void hk_pg_claim_free(hk_pg_claim *c)
{
    for (size_t i = 0; i < c->nitems; i++)
        hk_event_free(&c->items[i].event);
    free(c->items);
    c->items = NULL;
    c->nitems = 0;
}

/* ---- giving claims back ------------------------------------------------------------------------- */

static const char release_sql[] =
    "UPDATE deliveries d SET leased_by = NULL, lease_until = NULL WHERE d.leased_by = $1::text AND"
    " ($2::bigint[] IS NULL OR (d.webhook_id, d.due_ms, d.event_id) IN"
    " (SELECT * FROM unnest($2::bigint[], $3::bigint[], $4::bigint[])))";

static void on_released(hk_pg_batch *b, int status)
{
    hk_pg_release *r = hk_container_of(b, hk_pg_release, b);
    const PGresult *res = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK))
        status = HK_ESTORE;
    if (status == 0)
        r->released = strtoull(PQcmdTuples((PGresult *)res), NULL, 10);
    else if (status != UV_ECANCELED)
        hk_warn("postgres: giving claims back failed: %s", b->err);
    for (int i = 0; i < 3; i++) {
        free(r->owned[i]);
        r->owned[i] = NULL;
    }
    r->done(r, status);
}

/* A bigint[] literal of one key field of each delivery (0: webhook, 1: due, 2: event). */
static char *key_array(const hk_delivery *ds, size_t n, int which)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        hk_buf_printf(&b, "%s%" PRIu64, i ? "," : "",
                      which == 0   ? (uint64_t)ds[i].webhook_id
                      : which == 1 ? ds[i].due_ms
                                   : ds[i].event_id);
    hk_buf_putc(&b, '}');
    size_t len;
    return hk_buf_steal(&b, &len);
}

void hk_pg_claim_release(hk_pg_store *s, hk_pg_release *r)
{
    r->released = 0;
    memset(r->values, 0, sizeof(r->values));
    r->values[0] = r->node;
    for (int i = 0; i < 3; i++) {
        r->owned[i] = r->n > 0 ? key_array(r->ds, r->n, i) : NULL;
        r->values[1 + i] = r->owned[i];
    }
    memset(&r->stmt, 0, sizeof(r->stmt));
    r->stmt.sql = release_sql;
    r->stmt.nparams = 4;
    r->stmt.values = r->values;
    memset(&r->b, 0, sizeof(r->b));
    r->b.stmts = &r->stmt;
    r->b.nstmts = 1;
    r->b.done = on_released;
    hk_pg_submit(hk_pg_store_pool(s), &r->b);
}
