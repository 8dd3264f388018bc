/*
 * pg_migrate.c: applying the built-in schema migrations (pg_migrate.h) with
 * libpq's blocking API: one transaction per migration, under the migration
 * lock, recorded in hookd_schema in that same transaction.
 */
#include "pg_migrate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* The advisory lock of migrations (two-key form; 1752133483 is 'hook'). */
#define LOCK_SQL "SELECT pg_advisory_xact_lock(1752133483, 1)"

#define SCHEMA_TABLE_SQL                                                                                               \
    "CREATE TABLE IF NOT EXISTS hookd_schema (version integer PRIMARY KEY, name text NOT NULL, "                       \
    "applied_at timestamptz NOT NULL DEFAULT now(), hookd_version text NOT NULL DEFAULT '')"

/* A server message as one line: newlines become spaces, the trailing one goes. */
static void one_line(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (; src != NULL && *src != '\0' && n + 1 < cap; src++)
        dst[n++] = *src == '\n' || *src == '\r' || *src == '\t' ? ' ' : *src;
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

/* Notices (a table that exists, skipped) go to the debug log, not to stderr. */
static void on_notice(void *arg, const PGresult *res)
{
    (void)arg;
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    hk_debug("postgres: %s", msg ? msg : "(notice)");
}

/*
 * Runs sql (possibly several statements) and checks that it succeeded;
 * the result into *out when wanted (the caller PQclears it). HK_ESTORE
 * with "what: message" in err otherwise.
 */
static int run(PGconn *c, const char *sql, const char *what, PGresult **out, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        one_line(msg, sizeof(msg), r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c));
        snprintf(err, errlen, "%s: %s", what, msg[0] ? msg : "no result (connection lost?)");
        PQclear(r);
        return HK_ESTORE;
    }
    if (out != NULL)
        *out = r;
    else
        PQclear(r);
    return 0;
}

/* The highest version in hookd_schema, 0 when the table is missing or empty. */
static int read_version(PGconn *c, int *version, char *err, size_t errlen)
{
    PGresult *r;
    *version = 0;
    /* Two statements: a query naming a missing table fails when it is parsed. */
    int rc = run(c, "SELECT to_regclass('hookd_schema') IS NOT NULL", "looking for hookd_schema", &r, err, errlen);
    if (rc != 0)
        return rc;
    bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists)
        return 0;
    if ((rc = run(c, "SELECT coalesce(max(version), 0) FROM hookd_schema", "reading the schema version", &r, err,
                  errlen)) != 0)
        return rc;
    *version = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return 0;
}

static PGconn *connect_blocking(const char *conninfo, char *err, size_t errlen)
{
    /* expand_dbname: conninfo may be a connection string or a URI. */
    const char *const keys[] = {"dbname", "fallback_application_name", NULL};
    const char *const vals[] = {conninfo, "hookd", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (c == NULL) {
        snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        one_line(msg, sizeof(msg), PQerrorMessage(c));
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", msg);
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeReceiver(c, on_notice, NULL);
    return c;
}

/* Applies migration m (the transaction is open and locked) and records it. */
static int apply_one(PGconn *c, const hk_pg_migration *m, char *err, size_t errlen)
{
    char what[160], version[16];
    snprintf(what, sizeof(what), "migration %d (%s)", m->version, m->name);
    char *sql = hk_strndup((const char *)m->sql, *m->len);
    int rc = run(c, sql, what, NULL, err, errlen);
    free(sql);
    if (rc != 0)
        return rc;
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = {version, m->name, HK_VERSION};
    PGresult *r = PQexecParams(c, "INSERT INTO hookd_schema (version, name, hookd_version) VALUES ($1, $2, $3)", 3,
                               NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char msg[512];
        one_line(msg, sizeof(msg), PQresultErrorMessage(r));
        snprintf(err, errlen, "recording %s: %s", what, msg);
        rc = HK_ESTORE;
    }
    PQclear(r);
    return rc;
}

int hk_pg_migrate_list(const char *conninfo, const hk_pg_migration *list, size_t n, bool apply, hk_pg_schema_state *st,
                       char *err, size_t errlen)
{
    hk_pg_schema_state local;
    int rc = 0;
    if (st == NULL)
        st = &local;
    memset(st, 0, sizeof(*st));
    st->known = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (list[i].version != (int)i + 1) {
            snprintf(err, errlen, "built-in migration %zu has version %d", i + 1, list[i].version);
            return HK_EINVAL;
        }
    }
    PGconn *c = connect_blocking(conninfo, err, errlen);
    if (c == NULL)
        return HK_ESTORE;

    /* One migration per transaction; the version is read again under the
     * lock each time, so a node that waited for another's migration finds
     * it applied and goes on from there. */
    for (bool first = true;; first = false) {
        int found = 0;
        bool open = false;
        if ((rc = run(c, "BEGIN", "BEGIN", NULL, err, errlen)) != 0)
            break;
        open = true;
        if ((rc = run(c, LOCK_SQL, "taking the migration lock", NULL, err, errlen)) != 0)
            goto end_txn;
        if (apply && (rc = run(c, SCHEMA_TABLE_SQL, "creating hookd_schema", NULL, err, errlen)) != 0)
            goto end_txn;
        if ((rc = read_version(c, &found, err, errlen)) != 0)
            goto end_txn;
        if (first)
            st->found = found;
        if (found > st->known) {
            snprintf(err, errlen,
                     "the database's schema is version %d, newer than this hookd (%s) knows (%d): a newer hookd "
                     "migrated it; run that version or a later one",
                     found, HK_VERSION, st->known);
            rc = HK_EFORMAT;
        } else if (found < st->known && !apply) {
            if (found == 0)
                snprintf(err, errlen,
                         "the database has no hookd schema (this hookd's is version %d): run `hookd migrate`, or "
                         "set [cluster] migrate = auto",
                         st->known);
            else
                snprintf(err, errlen,
                         "the database's schema is version %d, older than this hookd's %d: run `hookd migrate`, or "
                         "set [cluster] migrate = auto",
                         found, st->known);
            rc = HK_ECONFLICT;
        } else if (found < st->known) {
            const hk_pg_migration *m = &list[found];
            if ((rc = apply_one(c, m, err, errlen)) == 0 &&
                (rc = run(c, "COMMIT", "committing the migration", NULL, err, errlen)) == 0) {
                open = false;
                st->applied++;
                hk_info("postgres: schema migration %d (%s) applied", m->version, m->name);
                continue;
            }
        }
    end_txn:
        if (open) {
            /* Nothing was changed when rc != 0; a clean read-only pass commits. */
            char ignored[64];
            if (run(c, rc == 0 ? "COMMIT" : "ROLLBACK", "ending the transaction", NULL, ignored, sizeof(ignored)) !=
                    0 &&
                rc == 0) {
                snprintf(err, errlen, "ending the transaction: %s", ignored);
                rc = HK_ESTORE;
            }
        }
        break;
    }
    PQfinish(c);
    return rc;
}

int hk_pg_migrate(const char *conninfo, bool apply, hk_pg_schema_state *st, char *err, size_t errlen)
{
    return hk_pg_migrate_list(conninfo, hk_pg_migrations, hk_pg_nmigrations, apply, st, err, errlen);
}
