/*
 * pg_cluster.c: the failure mail's gate and the nodes' signs of life
 * (pg_cluster.h), one statement each. The gate is an upsert of the
 * webhook's row in failure_mails that only moves sent_ms when the last
 * mail is older than the interval: the row's lock makes a second node
 * asking at once wait for the first and then find the new time.
 */
#include "pg_cluster.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char gate_sql[] = "INSERT INTO failure_mails AS f (webhook_id, sent_ms) VALUES ($1::bigint, $2::bigint)"
                               " ON CONFLICT (webhook_id) DO UPDATE SET sent_ms = EXCLUDED.sent_ms"
                               " WHERE f.sent_ms + $3::bigint <= EXCLUDED.sent_ms RETURNING f.webhook_id";

static const char member_sql[] =
    "INSERT INTO cluster_members (name, started_ms, seen_ms, version) VALUES ($1::text, $2::bigint, $3::bigint, "
    "$4::text) ON CONFLICT (name) DO UPDATE SET started_ms = EXCLUDED.started_ms, seen_ms = EXCLUDED.seen_ms,"
    " version = EXCLUDED.version";

static void one(hk_pg_store *s, hk_pg_batch *b, hk_pg_stmt *st, const char *sql, const char *const *values, int n,
                hk_pg_batch_cb done)
{
    memset(st, 0, sizeof(*st));
    st->sql = sql;
    st->nparams = n;
    st->values = values;
    memset(b, 0, sizeof(*b));
    b->stmts = st;
    b->nstmts = 1;
    b->done = done;
    hk_pg_submit(hk_pg_store_pool(s), b);
}

static void on_gate(hk_pg_batch *b, int status)
{
    hk_pg_mail_gate *g = hk_container_of(b, hk_pg_mail_gate, b);
    const PGresult *r = b->results != NULL ? b->results[0] : NULL;
    if (status == 0 && (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK))
        status = HK_ESTORE;
    g->send = status == 0 && PQntuples(r) == 1;
    if (status != 0 && status != UV_ECANCELED)
        hk_warn("postgres: the failure mail gate of webhook %" PRIu32 " failed: %s", g->webhook_id, b->err);
    g->done(g, status);
}

void hk_pg_mail_gate_ask(hk_pg_store *s, hk_pg_mail_gate *g)
{
    g->send = false;
    snprintf(g->params[0], sizeof(g->params[0]), "%" PRIu32, g->webhook_id);
    snprintf(g->params[1], sizeof(g->params[1]), "%" PRIu64, g->now_ms);
    snprintf(g->params[2], sizeof(g->params[2]), "%" PRIu64, g->min_interval_ms);
    for (int i = 0; i < 3; i++)
        g->values[i] = g->params[i];
    one(s, &g->b, &g->stmt, gate_sql, g->values, 3, on_gate);
}

static void on_member(hk_pg_batch *b, int status)
{
    hk_pg_member *m = hk_container_of(b, hk_pg_member, b);
    if (status != 0 && status != UV_ECANCELED)
        hk_warn("postgres: recording this node in cluster_members failed: %s", b->err);
    m->done(m, status);
}

void hk_pg_member_seen(hk_pg_store *s, hk_pg_member *m)
{
    snprintf(m->params[0], sizeof(m->params[0]), "%" PRIu64, m->started_ms);
    snprintf(m->params[1], sizeof(m->params[1]), "%" PRIu64, m->now_ms);
    m->values[0] = m->name;
    m->values[1] = m->params[0];
    m->values[2] = m->params[1];
    m->values[3] = m->version != NULL ? m->version : "";
    one(s, &m->b, &m->stmt, member_sql, m->values, 4, on_member);
}
