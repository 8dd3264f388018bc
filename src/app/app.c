/* app.c: startup, the first admin, signals and the orderly drain. */
#include "app.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "activity.h"
#include "api.h"
#include "api_metrics.h"
#include "auth.h"
#include "engine.h"
#include "http_client.h"
#include "log.h"
#include "notify.h"
#include "sender.h"
#include "store.h"

int hk_app_bootstrap(hk_store *store)
{
    const char *given = getenv("HOOKD_ADMIN_KEY");
    if (given != NULL && given[0] == '\0')
        given = NULL;
    /* One op: the user and its key in one commit, and only into a store without users. */
    hk_op op = {.type = HK_OP_USER_PUT, .now_ms = hk_now_ms()};
    hk_op_user_put *p = &op.u.user_put;
    snprintf(p->user.code, sizeof(p->user.code), "admin");
    snprintf(p->user.full_name, sizeof(p->user.full_name), "Administrator");
    p->user.perms = HK_PERM_ALL;
    p->only_first = true;
    hk_key key;
    char text[HK_KEY_TEXT_LEN];
    hk_key_make(&key, 0, given, op.now_ms, text);
    p->key = &key;
    int rc = hk_store_apply(store, &op);
    if (rc != 0) {
        hk_error("cannot create the admin user: %s", hk_strerror(rc));
        return rc;
    }
    if (p->skipped)
        return 0;
    if (given != NULL)
        hk_info("created user admin with every permission; its key is HOOKD_ADMIN_KEY");
    else
        fprintf(stderr,
                "\n  First start: created user 'admin' with every permission.\n"
                "  Its API key (shown only this once):\n\n    %s\n\n",
                text);
    return 0;
}

/*
 * Shutdown. A signal starts it, in this order: stop accepting and mark not
 * ready; stop the engine (nothing new goes on the wire or into the store
 * from it; requests on the wire get shutdown_timeout less a second to
 * finish, the rest are cancelled and stay queued); answer every request in
 * flight; let the commits that are running finish and run their callbacks;
 * close the store and every handle; exit 0.
 *
 * shutdown_timeout, or a second signal, hurries it: requests on the wire
 * are cancelled now (their synchronous callers get their answer), and once
 * the engine has stopped, requests the server is still reading from slow
 * clients or writing to clients that do not read are abandoned. Even then
 * the store closes only once no commit is queued or running and the loop
 * will run no other callback.
 */

static void on_closed(uv_handle_t *h)
{
    h->data = NULL; /* closed: see handles_closing */
}

/* Closes the signal watchers and the drain timer (once). */
static void close_own_handles(hk_app *app)
{
    uv_handle_t *own[] = {(uv_handle_t *)&app->drain_timer, (uv_handle_t *)&app->sig_term,
                          (uv_handle_t *)&app->sig_int};
    uv_timer_stop(&app->drain_timer);
    for (size_t i = 0; i < HK_ARRAY_SIZE(own); i++)
        if (own[i]->data != NULL && !uv_is_closing(own[i]))
            uv_close(own[i], on_closed);
}

/* True while one of the app's own handles is not closed yet. */
static bool handles_closing(const hk_app *app)
{
    return app->drain_timer.data != NULL || app->sig_term.data != NULL || app->sig_int.data != NULL;
}

/* Ends the loop's work once the engine has stopped and every request is
 * answered, or, when hurried, once the engine has stopped. */
static void maybe_finish(hk_app *app)
{
    if (app->stopping_engine != NULL || (!app->http_drained && !app->hurry))
        return;
    close_own_handles(app);
    /* The cluster's connections keep the loop running until the store is closed, after it. */
    if (hk_store_is_cluster(app->env.db))
        uv_stop(app->env.loop);
    if (!app->http_drained) {
        hk_warn("%u connections abandoned at shutdown (a request still being read or written)",
                hk_http_server_connections(app->http));
        /* They would keep the loop running; hk_app_run lets the commits
         * that are still running finish before it closes the store. */
        uv_stop(app->env.loop);
    }
}

static void on_engine_stopped(void *arg)
{
    hk_app *app = arg;
    app->stopping_engine = NULL;
    hk_notify_shutdown();
    maybe_finish(app);
}

static void on_drained(hk_http_server *srv)
{
    HK_UNUSED(srv);
    hk_app *app = uv_default_loop()->data;
    hk_info("drained: every in-flight request answered");
    app->http_drained = true;
    maybe_finish(app);
}

/* shutdown_timeout or a second signal: what is on the wire is cancelled now. */
static void hurry(hk_app *app)
{
    app->hurry = true;
    if (app->stopping_engine != NULL)
        hk_engine_stop(app->stopping_engine, on_engine_stopped, app); /* a second call ends the grace */
    maybe_finish(app);
}

static void on_drain_timeout(uv_timer_t *t)
{
    hk_app *app = t->data;
    hk_warn("drain took longer than %llums; stopping", (unsigned long long)app->env.cfg->shutdown_timeout_ms);
    hurry(app);
}

static void on_signal(uv_signal_t *s, int signum)
{
    hk_app *app = s->data;
    if (app->env.draining) {
        hk_warn("second signal: stopping now");
        hurry(app);
        return;
    }
    hk_info("received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    app->env.draining = true;
    app->env.ready = false;
    uv_timer_start(&app->drain_timer, on_drain_timeout, app->env.cfg->shutdown_timeout_ms, 0);
    uv_unref((uv_handle_t *)&app->drain_timer);
    /* The API sees no engine from now on: nothing new is sent or submitted
     * for it (its endpoints answer 503); what it has started goes on. Set
     * before the server's shutdown, which may report drained at once. */
    app->stopping_engine = app->env.engine;
    app->env.engine = NULL;
    hk_http_server_shutdown(app->http, on_drained);
    if (app->stopping_engine != NULL)
        hk_engine_stop(app->stopping_engine, on_engine_stopped, app);
    else
        maybe_finish(app);
}

static int listen_all(hk_app *app)
{
    char *list = hk_strdup(app->env.cfg->listen);
    char *save = NULL;
    int rc = 0, n = 0;
    for (char *tok = strtok_r(list, ", ", &save); tok != NULL && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
        rc = hk_http_server_listen(app->http, tok);
        n++;
    }
    free(list);
    if (rc == 0 && n == 0) {
        hk_error("server.listen names no address");
        rc = HK_ECONFIG;
    }
    return rc;
}

/* Mails about failing webhooks and the console's counters, for every committed attempt. */
static void on_attempt_finished(const hk_attempt *a, void *arg)
{
    hk_app *app = arg;
    hk_activity_attempt(app->env.activity, a);
    hk_notify_attempt(app->env.loop, app->env.cfg, app->env.db, a);
}

/* The engine on the outbound client, the system clock and the configuration. */
static int start_engine(hk_app *app)
{
    const hk_config *cfg = app->env.cfg;
    hk_client_opts copts = {.connect_timeout_ms = cfg->connect_timeout_ms,
                            .first_byte_timeout_ms = cfg->first_byte_timeout_ms,
                            .total_timeout_ms = cfg->total_timeout_ms,
                            .max_response_bytes = cfg->max_response_bytes,
                            .ca_file = cfg->ca_file,
                            .allow_targets = cfg->allow_targets,
                            .max_idle_per_origin = cfg->concurrency_per_origin,
                            .idle_timeout_ms = 30000,
                            .user_agent = "hookd/" HK_VERSION};
    hk_client *client;
    int rc = hk_client_create(&client, app->env.loop, &copts);
    if (rc != 0) {
        hk_error("cannot create the delivery client: %s", hk_strerror(rc));
        return rc;
    }
    hk_clock_real(&app->clock, app->env.loop);
    hk_engine_deps deps = {.loop = app->env.loop,
                           .store = app->env.db,
                           .clock = &app->clock,
                           .finished = on_attempt_finished,
                           .finished_arg = app};
    hk_sender_client(&deps.sender, client);
    hk_engine_opts opts;
    hk_engine_opts_from_config(&opts, cfg);
    rc = hk_engine_start(&app->env.engine, &deps, &opts);
    if (rc != 0) {
        /* The client was never used: closing it frees it once its handles are closed. */
        hk_client_close(client, NULL, NULL);
        uv_run(app->env.loop, UV_RUN_DEFAULT);
    }
    return rc;
}

/* Closes the store; a cluster store's connections close on the loop, which runs until they have. */
static void close_store(hk_app *app, hk_store *store)
{
    bool cluster = hk_store_is_cluster(store);
    hk_store_close(store);
    if (cluster)
        uv_run(app->env.loop, UV_RUN_DEFAULT);
}

static void on_wait_tick(uv_timer_t *t)
{
    unsigned *waited = t->data;
    if (++*waited % 10 == 0)
        hk_warn("cluster: still waiting for the database (%u s): the registry is not read yet", *waited);
}

static void on_released(int status, void *arg)
{
    *(int *)arg = status < 0 ? status : 0;
}

/* Cluster mode: runs the loop until the registry has been read from the database (the embedded engine is ready). */
static int wait_ready(hk_app *app, hk_store *store)
{
    if (hk_store_ready(store))
        return 0;
    hk_info("cluster: connecting to the database and reading the registry");
    uv_timer_t tick;
    unsigned waited = 0;
    uv_timer_init(app->env.loop, &tick);
    tick.data = &waited;
    uv_timer_start(&tick, on_wait_tick, 1000, 1000);
    while (!hk_store_ready(store))
        uv_run(app->env.loop, UV_RUN_ONCE);
    /* What a previous run under this node's name claimed (it was killed) is anybody's again at once. */
    int released = 1;
    hk_store_release(store, NULL, 0, on_released, &released);
    while (released > 0)
        uv_run(app->env.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(app->env.loop, UV_RUN_NOWAIT);
    return 0;
}

int hk_app_run(hk_config *cfg)
{
    hk_app app;
    memset(&app, 0, sizeof(app));
    app.env.cfg = cfg;
    app.env.loop = uv_default_loop();
    app.env.loop->data = &app;
    signal(SIGPIPE, SIG_IGN);

    /* A serving process holds the data directory's lock: a second one on it exits here. */
    hk_store *store;
    hk_store_opts so = {.data_dir = cfg->data_dir,
                        .map_size = cfg->map_size,
                        .max_batch = cfg->max_batch,
                        .exclusive = true,
                        .wal = strcmp(cfg->store_sync, "log") == 0,
                        .postgres = cfg->cluster_postgres,
                        .migrate = strcmp(cfg->cluster_migrate, "auto") == 0,
                        .node_name = cfg->cluster_node};
    int rc = hk_store_open(&store, app.env.loop, &so);
    if (rc != 0)
        return 1;
    app.env.db = store;
    if (wait_ready(&app, store) != 0 || hk_app_bootstrap(store) != 0) {
        close_store(&app, store);
        return 1;
    }
    app.env.router = hk_api_router();
    app.env.activity = hk_activity_new();
    if (start_engine(&app) != 0) {
        hk_activity_free(app.env.activity);
        hk_router_free(app.env.router);
        close_store(&app, store);
        return 1;
    }
    rc = hk_http_server_create(&app.http, app.env.loop, cfg, hk_api_dispatch, &app.env, hk_api_error_body);
    if (rc == 0) { /* credentials are checked before a body is read; every answer is counted */
        hk_http_server_on_head(app.http, hk_api_on_head, hk_api_slot_free);
        hk_http_server_on_response(app.http, hk_api_metrics_observe);
    }
    if (rc != 0 || listen_all(&app) != 0) {
        /* Let libuv close what was opened before giving up. */
        hk_engine_stop(app.env.engine, NULL, NULL);
        hk_http_server_shutdown(app.http, NULL);
        uv_run(app.env.loop, UV_RUN_DEFAULT);
        hk_http_server_free(app.http);
        hk_router_free(app.env.router);
        hk_activity_free(app.env.activity);
        close_store(&app, store);
        return 1;
    }
    uv_signal_init(app.env.loop, &app.sig_term);
    uv_signal_init(app.env.loop, &app.sig_int);
    app.sig_term.data = app.sig_int.data = &app;
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_timer_init(app.env.loop, &app.drain_timer);
    app.drain_timer.data = &app;

    app.env.ready = true;
    if (hk_store_is_cluster(store))
        hk_info("hookd %s ready (cluster node %s)", HK_VERSION, hk_store_node_name(store));
    else
        hk_info("hookd %s ready (data in %s)", HK_VERSION, cfg->data_dir);
    uv_run(app.env.loop, UV_RUN_DEFAULT);

    /* Stopped with connections abandoned (maybe_finish): commits still
     * queued or running finish, and their callbacks run, before the store
     * closes. A callback of those may submit another op (a request whose
     * body has just arrived): the store closes only once an iteration ended
     * with nothing queued or running, and the loop runs no more after. */
    while (hk_store_busy(app.env.db) || handles_closing(&app))
        uv_run(app.env.loop, UV_RUN_ONCE);
    if (hk_http_server_connections(app.http) == 0)
        hk_http_server_free(app.http);
    hk_router_free(app.env.router);
    hk_activity_free(app.env.activity);
    close_store(&app, store);
    int close_rc = uv_loop_close(app.env.loop);
    if (close_rc != 0)
        hk_debug("loop closed with handles open: %s", uv_strerror(close_rc));
    hk_info("stopped");
    return app.exit_code;
}
