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
 */
#ifndef HK_PG_FIXTURE_H
#define HK_PG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
