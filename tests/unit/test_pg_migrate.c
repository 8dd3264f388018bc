/*
 * test_pg_migrate.c: the schema migrations (state/pg_migrate.c) against a
 * real PostgreSQL (tests/unit/pg_fixture.h): an empty database gets the
 * whole schema, a second run changes nothing, a failing migration leaves
 * nothing of itself, a schema newer than the binary knows is refused
 * untouched, the check without apply refuses an older one, and two
 * migrations at once apply each version once.
 */
#include <libpq-fe.h>
#include <pthread.h>

#include "pg_fixture.h"
#include "pg_migrate.h"
#include "unit.h"

static PGconn *admin; /* to the fixture's database: creates the others */
static int ndb;

/* A connection string for a new empty database. */
static char *fresh_db(char *buf, size_t len)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE m%d", ++ndb);
    PGresult *r = PQexec(admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s: %s", sql, PQerrorMessage(admin));
        exit(1);
    }
    PQclear(r);
    snprintf(buf, len, "%s dbname=m%d", fx_pg_conninfo(), ndb);
    return buf;
}

/* The first value of one query's answer on database conninfo, as text ("" when no row; "ERROR: ..." on error). */
static char *query1(const char *conninfo, const char *sql, char *out, size_t len)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(out, len, "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    else
        snprintf(out, len, "ERROR: %s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    return out;
}

static const unsigned char sql_two[] = "CREATE TABLE two (v int); INSERT INTO two VALUES (2);";
static const size_t sql_two_len = sizeof(sql_two) - 1;
static const unsigned char sql_bad[] = "CREATE TABLE bad (v int); SELECT 1 / 0;";
static const size_t sql_bad_len = sizeof(sql_bad) - 1;

static void test_an_empty_database_gets_the_schema_once(void)
{
    char ci[512], v[256];
    char err[512] = "";
    hk_pg_schema_state st;
    fresh_db(ci, sizeof(ci));
    CHECK(hk_pg_nmigrations >= 1);
    CHECK_INT(hk_pg_migrate(ci, true, &st, err, sizeof(err)), 0);
    CHECK_INT(st.found, 0);
    CHECK_INT(st.known, (int)hk_pg_nmigrations);
    CHECK_INT(st.applied, (int)hk_pg_nmigrations);
    CHECK_STR(query1(ci, "SELECT string_agg(version::text || ' ' || name, ',' ORDER BY version) FROM hookd_schema", v,
                     sizeof(v)),
              "1 schema,2 ops,3 ops,4 recover");
    /* Every table of the engine is there, the attempt log with today's partition. */
    static const char *const tables[] = {"webhooks",         "webhook_subscriptions",
                                         "webhook_stats",    "event_types",
                                         "events",           "deliveries",
                                         "idempotency_keys", "attempts",
                                         "attempts_default", "users",
                                         "api_keys",         "nodes",
                                         "accounts",         "cluster_members",
                                         "failure_mails"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(tables); i++) {
        char sql[128];
        snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NOT NULL", tables[i]);
        CHECK_STR(query1(ci, sql, v, sizeof(v)), "t");
    }
    CHECK_STR(query1(ci,
                     "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = "
                     "'attempts'::regclass AND c.relname = 'attempts_' || to_char(now() AT TIME ZONE 'UTC', "
                     "'YYYYMMDD')",
                     v, sizeof(v)),
              "1");

    /* A second run finds it done and changes nothing. */
    CHECK_INT(hk_pg_migrate(ci, true, &st, err, sizeof(err)), 0);
    CHECK_INT(st.found, (int)hk_pg_nmigrations);
    CHECK_INT(st.applied, 0);
    CHECK_STR(query1(ci, "SELECT count(*) FROM hookd_schema", v, sizeof(v)), "4");
    /* So does the check alone. */
    CHECK_INT(hk_pg_migrate(ci, false, &st, err, sizeof(err)), 0);
    CHECK_INT(st.applied, 0);
}

static void test_ids_come_from_sequences_within_their_range(void)
{
    char ci[512], v[256], err[512];
    fresh_db(ci, sizeof(ci));
    CHECK_INT(hk_pg_migrate(ci, true, NULL, err, sizeof(err)), 0);
    CHECK_STR(query1(ci, "SELECT nextval('webhook_id_seq')", v, sizeof(v)), "1");
    CHECK_STR(query1(ci, "SELECT nextval('webhook_id_seq')", v, sizeof(v)), "2");
    CHECK_STR(query1(ci, "SELECT seqmax FROM pg_sequence WHERE seqrelid = 'webhook_id_seq'::regclass", v, sizeof(v)),
              "4294967295");
    CHECK_STR(query1(ci, "SELECT seqmax FROM pg_sequence WHERE seqrelid = 'user_id_seq'::regclass", v, sizeof(v)),
              "4294967295");
    /* A webhook id outside 32 bits is refused by the table itself. */
    CHECK(strncmp(query1(ci,
                         "INSERT INTO webhooks (id, name, url, registered_ms, updated_ms) VALUES (4294967296, 'x', "
                         "'http://x/', 0, 0) RETURNING id",
                         v, sizeof(v)),
                  "ERROR:", 6) == 0);
}

/* The built-in migrations followed by the given later ones (numbered after them); N is how many built-in. */
#define N ((int)hk_pg_nmigrations)
static hk_pg_migration *with_later(const hk_pg_migration *later, size_t nlater)
{
    static hk_pg_migration list[64];
    for (int i = 0; i < N; i++)
        list[i] = hk_pg_migrations[i];
    for (size_t i = 0; i < nlater; i++) {
        list[N + (int)i] = later[i];
        list[N + (int)i].version = N + 1 + (int)i;
    }
    return list;
}

static const hk_pg_migration two = {0, "two", sql_two, &sql_two_len}, bad = {0, "bad", sql_bad, &sql_bad_len};

static void test_a_failing_migration_leaves_nothing_of_itself(void)
{
    char ci[512], v[256], err[512] = "", want[64];
    hk_pg_schema_state st;
    fresh_db(ci, sizeof(ci));
    hk_pg_migration later[2] = {two, bad};
    int rc = hk_pg_migrate_list(ci, with_later(later, 2), (size_t)N + 2, true, &st, err, sizeof(err));
    CHECK_INT(rc, HK_ESTORE);
    snprintf(want, sizeof(want), "migration %d (bad)", N + 2);
    CHECK(strstr(err, want) != NULL && strstr(err, "division by zero") != NULL);
    CHECK_INT(st.applied, N + 1);
    snprintf(want, sizeof(want), "%d", N + 1);
    CHECK_STR(query1(ci, "SELECT max(version) FROM hookd_schema", v, sizeof(v)), want);
    CHECK_STR(query1(ci, "SELECT v FROM two", v, sizeof(v)), "2");
    CHECK_STR(query1(ci, "SELECT to_regclass('bad') IS NULL", v, sizeof(v)), "t");
}

static void test_a_newer_schema_is_refused_untouched(void)
{
    char ci[512], v[256], err[512] = "", want[64];
    hk_pg_schema_state st;
    fresh_db(ci, sizeof(ci));
    hk_pg_migration *list = with_later(&two, 1);
    CHECK_INT(hk_pg_migrate_list(ci, list, (size_t)N + 1, true, &st, err, sizeof(err)), 0);
    CHECK_INT(st.applied, N + 1);
    /* This binary knows fewer migrations than the database has. */
    CHECK_INT(hk_pg_migrate(ci, true, &st, err, sizeof(err)), HK_EFORMAT);
    CHECK_INT(st.found, N + 1);
    CHECK_INT(st.known, N);
    CHECK_INT(st.applied, 0);
    snprintf(want, sizeof(want), "version %d, newer than", N + 1);
    CHECK(strstr(err, want) != NULL);
    snprintf(want, sizeof(want), "knows (%d)", N);
    CHECK(strstr(err, want) != NULL);
    CHECK_INT(hk_pg_migrate(ci, false, &st, err, sizeof(err)), HK_EFORMAT);
    snprintf(want, sizeof(want), "%d", N + 1);
    CHECK_STR(query1(ci, "SELECT count(*) FROM hookd_schema", v, sizeof(v)), want);
}

static void test_the_check_alone_refuses_an_older_schema_and_changes_nothing(void)
{
    char ci[512], v[256], err[512] = "", want[96];
    hk_pg_schema_state st;
    fresh_db(ci, sizeof(ci));
    CHECK_INT(hk_pg_migrate(ci, false, &st, err, sizeof(err)), HK_ECONFLICT);
    CHECK_INT(st.found, 0);
    CHECK(strstr(err, "no hookd schema") != NULL && strstr(err, "hookd migrate") != NULL);
    CHECK_STR(query1(ci, "SELECT to_regclass('hookd_schema') IS NULL", v, sizeof(v)), "t");
    CHECK_INT(hk_pg_migrate(ci, true, &st, err, sizeof(err)), 0);
    CHECK_INT(hk_pg_migrate_list(ci, with_later(&two, 1), (size_t)N + 1, false, &st, err, sizeof(err)), HK_ECONFLICT);
    snprintf(want, sizeof(want), "version %d, older than this hookd's %d", N, N + 1);
    CHECK(strstr(err, want) != NULL);
    CHECK_STR(query1(ci, "SELECT to_regclass('two') IS NULL", v, sizeof(v)), "t");
}

static void test_an_unreachable_database_is_named_without_the_password(void)
{
    char err[512] = "";
    hk_pg_schema_state st;
    int rc =
        hk_pg_migrate("host=127.0.0.1 port=1 dbname=x password=sekrit connect_timeout=5", true, &st, err, sizeof(err));
    CHECK_INT(rc, HK_ESTORE);
    CHECK(strstr(err, "cannot connect to PostgreSQL") != NULL);
    CHECK(strstr(err, "sekrit") == NULL);
    CHECK(strchr(err, '\n') == NULL);
}

struct racer {
    const char *conninfo;
    int rc;
    hk_pg_schema_state st;
    char err[512];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    r->rc = hk_pg_migrate(r->conninfo, true, &r->st, r->err, sizeof(r->err));
    return NULL;
}

static void test_nodes_migrating_at_once_apply_each_migration_once(void)
{
    char ci[512], v[256];
    struct racer r[4];
    pthread_t t[4];
    fresh_db(ci, sizeof(ci));
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        r[i].conninfo = ci;
        CHECK_INT(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    int applied = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        if (r[i].rc != 0)
            fprintf(stderr, "racer %d: %s\n", i, r[i].err);
        CHECK_INT(r[i].rc, 0);
        applied += r[i].st.applied;
    }
    CHECK_INT(applied, (int)hk_pg_nmigrations);
    CHECK_STR(query1(ci, "SELECT string_agg(version::text, ',' ORDER BY version) FROM hookd_schema", v, sizeof(v)),
              "1,2,3,4");
}

int main(void)
{
    admin = PQconnectdb(fx_pg_conninfo());
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to the fixture's server: %s", PQerrorMessage(admin));
        return 1;
    }
    test_an_empty_database_gets_the_schema_once();
    test_ids_come_from_sequences_within_their_range();
    test_a_failing_migration_leaves_nothing_of_itself();
    test_a_newer_schema_is_refused_untouched();
    test_the_check_alone_refuses_an_older_schema_and_changes_nothing();
    test_an_unreachable_database_is_named_without_the_password();
    test_nodes_migrating_at_once_apply_each_migration_once();
    PQfinish(admin);
    return unit_done();
}
