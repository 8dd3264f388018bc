/*
 * pg_fixture.h: what the PostgreSQL unit tests (test_pg_*.c) share. ctest
 * runs each of them through tests/e2e/pg_fixture.py, which starts a real
 * PostgreSQL in a temporary directory and sets
 *   HOOKD_TEST_PG      its libpq connection string (an empty database),
 *   HOOKD_TEST_PG_CTL  a command line taking stop, start or restart.
 * Run by hand:
 *   python3 tests/e2e/pg_fixture.py run -- build/ci/tests/test_pg_conn
 * Without them a test fails at once, naming what is missing: a PostgreSQL
 * test that passes without a server would test nothing.
 *
 * Also the frame of a test's main: fx_pg_begin() migrates the database and
 * opens the test's own session to look at it, fx_pg_end() runs the loop
 * until the closed stores' handles are gone and checks that it closes; and
 * fx_pg_run_until() (with fx_pg_flag_set) runs the loop until a callback
 * has been called, and fx_pg_q1() reads one value.
 */
#ifndef HK_PG_FIXTURE_H
#define HK_PG_FIXTURE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pg_migrate.h"
#include "unit.h"

/** How long fx_pg_run_until() waits at most (ms): a wait that takes longer fails the test. */
#define FX_PG_BOUND_MS 60000

/** The fixture server's connection string; exits 1 when the test was not started by the fixture. */
static inline const char *fx_pg_conninfo(void)
{
    const char *ci = getenv("HOOKD_TEST_PG");
    if (ci == NULL || *ci == '\0') {
        fprintf(stderr, "HOOKD_TEST_PG is not set: run this test through tests/e2e/pg_fixture.py run -- %s\n",
                "BINARY (ctest does)");
        exit(1);
    }
    return ci;
}

/** Stops, starts or restarts the fixture's server (blocking until done); 0 when pg_ctl succeeded. */
static inline int fx_pg_ctl(const char *action)
{
    const char *ctl = getenv("HOOKD_TEST_PG_CTL");
    char cmd[1024];
    if (ctl == NULL || *ctl == '\0') {
        fprintf(stderr, "HOOKD_TEST_PG_CTL is not set: run this test through tests/e2e/pg_fixture.py\n");
        exit(1);
    }
    snprintf(cmd, sizeof(cmd), "%s %s", ctl, action);
    fflush(stdout);
    return system(cmd) == 0 ? 0 : -1;
}

static inline void fx_pg_on_tick(uv_timer_t *t)
{
    (void)t;
}

/** Runs loop until cond(arg) holds, or for FX_PG_BOUND_MS at most (a timer ticks meanwhile, so that the
 *  loop never blocks for good); returns cond(arg). */
static inline bool fx_pg_run_until(uv_loop_t *loop, bool (*cond)(void *arg), void *arg)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, fx_pg_on_tick, 10, 10);
    uint64_t end = uv_now(loop) + FX_PG_BOUND_MS;
    while (!cond(arg) && uv_now(loop) < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return cond(arg);
}

/** A condition for fx_pg_run_until(): the bool arg points at is set (a done flag of a callback). */
static inline bool fx_pg_flag_set(void *arg)
{
    return *(const bool *)arg;
}

/** The first value of a query on db: "" when it has no row, "OK" for a command, "ERROR: ..." on an error.
 *  The text lives in a static buffer, valid until the next call. */
static inline const char *fx_pg_q1(PGconn *db, const char *sql)
{
    static char out[1024];
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        snprintf(out, sizeof(out), "%s", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    else if (PQresultStatus(r) == PGRES_COMMAND_OK)
        snprintf(out, sizeof(out), "OK");
    else
        snprintf(out, sizeof(out), "ERROR: %s", PQresultErrorMessage(r));
    PQclear(r);
    return out;
}

/** The start of a test's main: migrates the fixture's database to the current schema and, when db is not
 *  NULL, opens a session of the test's own on it into *db (the test closes it with fx_pg_end()). Returns
 *  the connection string; exits 1, saying why, when either fails. */
static inline const char *fx_pg_begin(PGconn **db)
{
    char err[512];
    const char *ci = fx_pg_conninfo();
    if (hk_pg_migrate(ci, true, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "migrate: %s\n", err);
        exit(1);
    }
    if (db == NULL)
        return ci;
    *db = PQconnectdb(ci);
    if (PQstatus(*db) != CONNECTION_OK) {
        fprintf(stderr, "%s", PQerrorMessage(*db));
        exit(1);
    }
    return ci;
}

static inline void fx_pg_on_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "handle left open: type %d\n", (int)h->type);
}

/** The end of a test's main, once its stores are closed: runs loop until nothing is left on it and checks
 *  that it then closes (naming each handle left open when not); closes db (NULL: none). */
static inline void fx_pg_end(uv_loop_t *loop, PGconn *db)
{
    uv_run(loop, UV_RUN_DEFAULT);
    bool closed = uv_loop_close(loop) == 0;
    if (!closed)
        uv_walk(loop, fx_pg_on_walk, NULL);
    CHECK(closed);
    if (db != NULL)
        PQfinish(db);
}

#endif
