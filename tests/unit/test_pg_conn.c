/*
 * test_pg_conn.c: the asynchronous PostgreSQL pool (state/pg_conn.c)
 * against a real server (tests/unit/pg_fixture.h): queries with parameters
 * and their results on the loop, a pipeline of many statements in one
 * transaction that commits or leaves nothing, statements without a
 * transaction that stand alone, more batches than connections, names looked
 * up on the loop, LISTEN/NOTIFY, and the server going away: restarted (the
 * pool reconnects and listens again) and stopped (batches fail after the
 * queue timeout instead of waiting for ever, and all is well once it is
 * back). No timing is asserted: the loop runs until the expected thing
 * happens, within a generous bound.
 */
#include <libpq-fe.h>

#include "log.h"
#include "pg_conn.h"
#include "pg_fixture.h"
#include "unit.h"

#define BOUND_MS 60000 /* a wait that takes longer than this fails the test */

static uv_loop_t *loop;
static hk_pg_pool *pool;

/* Runs the loop until *flag is set (or the bound passed); returns *flag. */
static bool run_until(const bool *flag)
{
    return fx_pg_run_until(loop, fx_pg_flag_set, (void *)flag);
}

/* A batch whose outcome the test reads after the loop ran. */
struct call {
    hk_pg_batch b;
    hk_pg_stmt *stmts;
    bool done;
    int status;
    size_t failed;
    char err[256];
    char first[256]; /* the first value of each statement's result, when any: of the last one */
    int ntuples[8];  /* rows of the first statements */
    bool ran[8];     /* the first statements returned a result */
};

static void on_done(hk_pg_batch *b, int status)
{
    struct call *c = hk_container_of(b, struct call, b);
    c->done = true;
    c->status = status;
    c->failed = b->failed;
    snprintf(c->err, sizeof(c->err), "%s", b->err);
    for (size_t i = 0; i < b->nstmts; i++) {
        PGresult *r = b->results[i];
        if (i < 8) {
            c->ran[i] = r != NULL;
            c->ntuples[i] = r != NULL ? PQntuples(r) : -1;
        }
        if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            snprintf(c->first, sizeof(c->first), "%s", PQgetvalue(r, 0, 0));
    }
}

static void call_init(struct call *c, hk_pg_stmt *stmts, size_t n, bool txn)
{
    memset(c, 0, sizeof(*c));
    c->stmts = stmts;
    c->b.stmts = stmts;
    c->b.nstmts = n;
    c->b.transaction = txn;
    c->b.done = on_done;
}

/* Runs one statement (text parameters) and returns the call's status; its first value into c. */
static int run1(struct call *c, const char *sql, int nparams, const char *const *values)
{
    static hk_pg_stmt st;
    st = (hk_pg_stmt){.sql = sql, .nparams = nparams, .values = values};
    call_init(c, &st, 1, false);
    hk_pg_submit(pool, &c->b);
    CHECK(!c->done); /* never from within the submit */
    if (!run_until(&c->done))
        return UV_ETIMEDOUT;
    return c->status;
}

static const char *count_of(const char *table)
{
    static struct call c;
    static char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
    int rc = run1(&c, sql, 0, NULL);
    return rc == 0 ? c.first : "(failed)";
}

static void open_pool(const char *conninfo, unsigned size, uint64_t queue_timeout_ms)
{
    hk_pg_pool_opts o = {.conninfo = conninfo,
                         .size = size,
                         .retry_min_ms = 50,
                         .retry_max_ms = 400,
                         .queue_timeout_ms = queue_timeout_ms};
    int rc = hk_pg_pool_open(&pool, loop, &o);
    if (rc != 0) {
        fprintf(stderr, "hk_pg_pool_open: %s\n", hk_strerror(rc));
        exit(1);
    }
}

static bool closed_flag;
static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void close_pool(void)
{
    closed_flag = false;
    hk_pg_pool_close(pool, on_closed, &closed_flag);
    CHECK(run_until(&closed_flag));
    pool = NULL;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_a_query_with_parameters(void)
{
    struct call c;
    const char *v[] = {"40", "2"};
    CHECK_INT(run1(&c, "SELECT $1::int + $2::int", 2, v), 0);
    CHECK_STR(c.first, "42");
    /* A NULL parameter is SQL NULL. */
    const char *nv[] = {NULL};
    CHECK_INT(run1(&c, "SELECT coalesce($1::text, 'was null')", 1, nv), 0);
    CHECK_STR(c.first, "was null");
    /* An SQL error is HK_ESTORE with the server's message and SQLSTATE. */
    CHECK_INT(run1(&c, "SELECT 1 / 0", 0, NULL), HK_ESTORE);
    CHECK(strstr(c.err, "division by zero") != NULL);
    CHECK_STR(c.b.sqlstate, "22012");
    CHECK_INT(c.failed, 0);
}

#define MANY 1000

static void test_a_pipeline_of_many_statements_in_one_transaction(void)
{
    struct call c;
    static hk_pg_stmt st[MANY + 2];
    static char vals[MANY][16];
    static const char *params[MANY][1];
    CHECK_INT(run1(&c, "CREATE TABLE t (v int PRIMARY KEY)", 0, NULL), 0);
    for (int i = 0; i < MANY; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", i + 1);
        params[i][0] = vals[i];
        st[i] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES ($1::int) RETURNING v", .nparams = 1, .values = params[i]};
    }
    st[MANY] = (hk_pg_stmt){.sql = "SELECT sum(v) FROM t"};
    call_init(&c, st, MANY + 1, true);
    hk_pg_submit(pool, &c.b);
    CHECK(run_until(&c.done));
    CHECK_INT(c.status, 0);
    /* Each statement's result is there, the last one sees the ones before it. */
    CHECK(c.ran[0] && c.ntuples[0] == 1);
    CHECK_STR(c.first, "500500");
    CHECK_STR(count_of("t"), "1000");

    /* The same with a failure in the middle: nothing of it stays, and the statements after it did not run. */
    static hk_pg_stmt st2[3];
    const char *v1001[] = {"1001"}, *v1002[] = {"1002"};
    st2[0] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES ($1::int)", .nparams = 1, .values = v1001};
    st2[1] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES (1)"}; /* a duplicate key */
    st2[2] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES ($1::int)", .nparams = 1, .values = v1002};
    call_init(&c, st2, 3, true);
    hk_pg_submit(pool, &c.b);
    CHECK(run_until(&c.done));
    CHECK_INT(c.status, HK_ESTORE);
    CHECK_INT(c.failed, 1);
    CHECK(strstr(c.err, "duplicate key") != NULL);
    CHECK(c.ran[0] && c.ran[1] && !c.ran[2]); /* the failed one has its error result */
    CHECK_STR(count_of("t"), "1000");
    /* Every connection is clean afterwards: not left in the aborted transaction (which would refuse
     * queries) nor in an open one (whose snapshot would not see a commit made elsewhere). */
    static struct call d[4];
    static hk_pg_stmt q = {.sql = "SELECT count(*) FROM t WHERE v > 1000"};
    for (int i = 0; i < 4; i++) {
        call_init(&d[i], &q, 1, false);
        hk_pg_submit(pool, &d[i].b);
    }
    for (int i = 0; i < 4; i++) {
        CHECK(run_until(&d[i].done));
        CHECK_INT(d[i].status, 0);
        CHECK_STR(d[i].first, "0");
    }
}

static void test_statements_without_a_transaction_stand_alone(void)
{
    struct call c;
    static hk_pg_stmt st[3];
    st[0] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES (2001)"};
    st[1] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES (2001)"};
    st[2] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES (2002)"};
    call_init(&c, st, 3, false);
    hk_pg_submit(pool, &c.b);
    CHECK(run_until(&c.done));
    CHECK_INT(c.status, HK_ESTORE);
    CHECK_INT(c.failed, 1);
    CHECK(c.ran[0] && c.ran[1] && c.ran[2]);
    CHECK_STR(count_of("t"), "1002");
}

#define CONCURRENT 300

static void test_more_batches_than_connections(void)
{
    static struct call calls[CONCURRENT];
    static hk_pg_stmt st[CONCURRENT];
    static char vals[CONCURRENT][16];
    static const char *params[CONCURRENT][1];
    for (int i = 0; i < CONCURRENT; i++) {
        snprintf(vals[i], sizeof(vals[i]), "%d", 3000 + i);
        params[i][0] = vals[i];
        st[i] = (hk_pg_stmt){.sql = "INSERT INTO t VALUES ($1::int)", .nparams = 1, .values = params[i]};
        call_init(&calls[i], &st[i], 1, true);
        hk_pg_submit(pool, &calls[i].b);
    }
    hk_pg_pool_counters k;
    hk_pg_pool_get_counters(pool, &k);
    CHECK_INT(k.queued, CONCURRENT);
    bool all = false;
    for (int i = 0; i < CONCURRENT; i++) {
        run_until(&calls[i].done);
        if (calls[i].status != 0)
            fprintf(stderr, "batch %d: %s\n", i, calls[i].err);
    }
    all = true;
    for (int i = 0; i < CONCURRENT; i++)
        all = all && calls[i].done && calls[i].status == 0;
    CHECK(all);
    CHECK_STR(count_of("t"), "1302");
}

/* ---- notifications ---------------------------------------------------------------------- */

struct heard {
    int subscribed; /* payload NULL calls */
    int n;
    char last[128];
    bool flag;
};

static void on_notify(const char *channel, const char *payload, void *arg)
{
    struct heard *h = arg;
    CHECK_STR(channel, "hookd_test");
    if (payload == NULL)
        h->subscribed++;
    else {
        h->n++;
        snprintf(h->last, sizeof(h->last), "%s", payload);
    }
    h->flag = true;
}

static struct heard heard;

static void notify(const char *payload)
{
    struct call c;
    const char *v[] = {payload};
    CHECK_INT(run1(&c, "SELECT pg_notify('hookd_test', $1)", 1, v), 0);
}

static void test_notifications_reach_the_callback(void)
{
    CHECK_INT(hk_pg_listen(pool, "bad channel", on_notify, &heard), HK_EINVAL);
    CHECK_INT(hk_pg_listen(pool, "hookd_test", on_notify, &heard), 0);
    heard.flag = false;
    CHECK(run_until(&heard.flag));
    CHECK_INT(heard.subscribed, 1);
    CHECK_INT(heard.n, 0);
    heard.flag = false;
    notify("webhooks 7");
    CHECK(run_until(&heard.flag));
    CHECK_INT(heard.n, 1);
    CHECK_STR(heard.last, "webhooks 7");
    /* A notification from a transaction arrives at its commit, not before; a rolled-back one never. */
    static hk_pg_stmt st[2] = {{.sql = "SELECT pg_notify('hookd_test', 'rolled back')"}, {.sql = "SELECT 1 / 0"}};
    struct call c;
    call_init(&c, st, 2, true);
    hk_pg_submit(pool, &c.b);
    CHECK(run_until(&c.done));
    CHECK_INT(c.status, HK_ESTORE);
    heard.flag = false;
    notify("after");
    CHECK(run_until(&heard.flag));
    CHECK_INT(heard.n, 2);
    CHECK_STR(heard.last, "after");
}

/* ---- the server going away ---------------------------------------------------------------- */

static void test_a_restarted_server_is_reconnected_and_listened_to_again(void)
{
    hk_pg_pool_counters before, after;
    hk_pg_pool_get_counters(pool, &before);
    CHECK(hk_pg_pool_up(pool));
    CHECK_INT(fx_pg_ctl("restart"), 0);
    /* The pool notices, reconnects every connection and subscribes again. */
    heard.flag = false;
    heard.subscribed = 0;
    CHECK(run_until(&heard.flag));
    CHECK_INT(heard.subscribed, 1);
    bool reconnected = false;
    uint64_t end = uv_now(loop) + BOUND_MS;
    while (!reconnected && uv_now(loop) < end) {
        hk_pg_pool_get_counters(pool, &after);
        reconnected = after.disconnects >= before.disconnects + 3 && after.up == 2;
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    CHECK(reconnected);
    CHECK(after.connects >= before.connects + 3);
    /* What was committed is there, queries work, notifications flow. */
    CHECK_STR(count_of("t"), "1302");
    heard.flag = false;
    notify("after restart");
    CHECK(run_until(&heard.flag));
    CHECK_STR(heard.last, "after restart");
}

static void test_a_stopped_server_fails_batches_then_comes_back(void)
{
    struct call c;
    CHECK_INT(fx_pg_ctl("stop"), 0);
    /* Submitted at once, before the loop has read the news: the pool looks at a connection before it
     * sends on it, so the batch is not lost on a closed session (UV_ECONNRESET, outcome unknown) but
     * waits at most queue_timeout for a connection, and fails having sent nothing. */
    CHECK_INT(run1(&c, "SELECT 1", 0, NULL), UV_ECONNREFUSED);
    CHECK(strstr(c.err, "no connection") != NULL);
    CHECK(!hk_pg_pool_up(pool));
    hk_pg_pool_counters k;
    hk_pg_pool_get_counters(pool, &k);
    uint64_t failures = k.connect_failures;
    CHECK(failures > 0);
    /* It keeps trying, with pauses. */
    bool more = false;
    uint64_t end = uv_now(loop) + BOUND_MS;
    while (!more && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(10000);
        hk_pg_pool_get_counters(pool, &k);
        more = k.connect_failures > failures;
    }
    CHECK(more);
    CHECK_INT(fx_pg_ctl("start"), 0);
    /* A batch submitted while it comes back waits for the connection and succeeds. */
    CHECK_INT(run1(&c, "SELECT count(*) FROM t", 0, NULL), 0);
    CHECK_STR(c.first, "1302");
    CHECK(hk_pg_pool_up(pool));
}

static void test_a_host_name_is_looked_up_on_the_loop(void)
{
    /* The fixture's connection string with "localhost" (from /etc/hosts) for 127.0.0.1. */
    char ci[512];
    const char *fx = fx_pg_conninfo(), *at = strstr(fx, "host=127.0.0.1");
    CHECK(at != NULL);
    if (at == NULL)
        return;
    snprintf(ci, sizeof(ci), "%.*shost=localhost%s", (int)(at - fx), fx, at + strlen("host=127.0.0.1"));
    hk_pg_pool *keep = pool;
    open_pool(ci, 1, 30000);
    struct call c;
    CHECK_INT(run1(&c, "SELECT inet_server_addr()::text", 0, NULL), 0);
    CHECK_STR(c.first, "127.0.0.1/32");
    close_pool();
    /* A name that does not exist fails the attempts, and batches after the queue timeout. */
    open_pool("host=no-such-host.invalid dbname=x connect_timeout=2", 1, 300);
    CHECK_INT(run1(&c, "SELECT 1", 0, NULL), UV_ECONNREFUSED);
    close_pool();
    pool = keep;
}

static void test_a_malformed_connection_string_is_refused(void)
{
    hk_pg_pool *p = NULL;
    hk_pg_pool_opts o = {.conninfo = "host=x sekrit"};
    CHECK_INT(hk_pg_pool_open(&p, loop, &o), HK_EINVAL);
    CHECK(p == NULL);
}

static bool close_cb_ran;
static void on_done_close(hk_pg_batch *b, int status)
{
    on_done(b, status);
    hk_pg_pool_close(pool, NULL, NULL);
    close_cb_ran = true;
}

static void test_closing_ends_every_batch(void)
{
    /* Queued and in-flight batches end with UV_ECANCELED; closing from a callback is safe. */
    open_pool(fx_pg_conninfo(), 1, 30000);
    static struct call c[3];
    static hk_pg_stmt st = {.sql = "SELECT pg_sleep(0.2)"};
    for (int i = 0; i < 3; i++) {
        call_init(&c[i], &st, 1, false);
        if (i == 0)
            c[i].b.done = on_done_close;
        hk_pg_submit(pool, &c[i].b);
    }
    CHECK(run_until(&close_cb_ran));
    CHECK_INT(c[0].status, 0);
    CHECK(c[1].done && c[2].done);
    CHECK_INT(c[1].status, UV_ECANCELED);
    CHECK_INT(c[2].status, UV_ECANCELED);
    uv_run(loop, UV_RUN_DEFAULT); /* every handle of the pool closes; the loop ends */
    pool = NULL;
}

int main(void)
{
    loop = uv_default_loop();
    if (getenv("HK_TEST_DEBUG"))
        hk_log_set_level(HK_LOG_DEBUG);
    /* The queue timeout bounds the wait for a server that comes back: long
     * enough for a reconnect on a busy machine, short enough to wait out once. */
    open_pool(fx_pg_conninfo(), 2, 6000);
    test_a_query_with_parameters();
    test_a_pipeline_of_many_statements_in_one_transaction();
    test_statements_without_a_transaction_stand_alone();
    test_more_batches_than_connections();
    test_notifications_reach_the_callback();
    test_a_restarted_server_is_reconnected_and_listened_to_again();
    test_a_stopped_server_fails_batches_then_comes_back();
    test_a_host_name_is_looked_up_on_the_loop();
    test_a_malformed_connection_string_is_refused();
    close_pool();
    test_closing_ends_every_batch();
    CHECK_INT(uv_loop_close(loop), 0);
    return unit_done();
}
