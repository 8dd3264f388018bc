/*
 * app.c: startup, the workers, the first admin, signals and the orderly
 * drain.
 *
 * Workers ([server] workers = N): N event loops, one thread each. Worker 0
 * runs on the main thread's loop, which also runs the store's group commit
 * (the store is opened there; the other workers submit through ports,
 * store.h) and watches the signals. Each worker has its own inbound server
 * on its own SO_REUSEPORT listeners (the kernel spreads connections
 * between them), its own delivery engine (owning the webhooks whose id mod
 * N is its index; engine.h's group) and outbound client, and its own
 * metrics set. With one worker, nothing of this is set up: no thread, no
 * port, no group.
 */
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
#include "metrics.h"
#include "notify.h"
#include "sender.h"
#include "store.h"

/* The worker running on the calling thread. */
static __thread hk_worker *this_worker;

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
 * Shutdown. A signal starts it, in this order, on every worker: stop
 * accepting and mark not ready; stop the engine (nothing new goes on the
 * wire or into the store from it; requests on the wire get
 * shutdown_timeout less a second to finish, the rest are cancelled and
 * stay queued); answer every request in flight; let the commits that are
 * running finish and run their callbacks. Worker 0 (the main thread, where
 * the store commits) finishes last, once every other worker has finished
 * and its thread has ended; then the store and every handle close, and the
 * process exits 0.
 *
 * shutdown_timeout, or a second signal, hurries it: requests on the wire
 * are cancelled now (their synchronous callers get their answer), and once
 * a worker's engine has stopped, requests it is still reading from slow
 * clients or writing to clients that do not read are abandoned. Even then
 * the store closes only once no commit is queued or running and the loop
 * will run no other callback.
 */

static void on_closed(uv_handle_t *h)
{
    h->data = NULL; /* closed: see handles_closing */
}

/* Closes the signal watchers, the drain timer and the others' finish notice (once). */
static void close_own_handles(hk_app *app)
{
    uv_handle_t *own[] = {(uv_handle_t *)&app->drain_timer, (uv_handle_t *)&app->sig_term,
                          (uv_handle_t *)&app->sig_int};
    uv_timer_stop(&app->drain_timer);
    for (size_t i = 0; i < HK_ARRAY_SIZE(own); i++)
        if (own[i]->data != NULL && !uv_is_closing(own[i]))
            uv_close(own[i], on_closed);
    uv_mutex_lock(&app->mu);
    if (app->others_done_open) {
        app->others_done_open = false;
        uv_close((uv_handle_t *)&app->others_done, on_closed);
    }
    uv_mutex_unlock(&app->mu);
}

/* True while one of the app's own handles is not closed yet. */
static bool handles_closing(const hk_app *app)
{
    return app->drain_timer.data != NULL || app->sig_term.data != NULL || app->sig_int.data != NULL ||
           app->others_done.data != NULL;
}

/* On the main thread: the end, once worker 0 and every other worker have finished their drains. */
static void app_maybe_finish(hk_app *app)
{
    hk_worker *w0 = &app->workers[0];
    uv_mutex_lock(&app->mu);
    bool others = app->finished_others == app->nworkers - 1;
    uv_mutex_unlock(&app->mu);
    if (!w0->finished || !others)
        return;
    close_own_handles(app);
    /* The cluster's connections keep the loop running until the store is closed, after it. */
    if (hk_store_is_cluster(app->store))
        uv_stop(w0->env.loop);
    if (!w0->http_drained) {
        /* They would keep the loop running; hk_app_run lets the commits
         * that are still running finish before it closes the store. */
        uv_stop(w0->env.loop);
    }
}

/* A worker's work is over once its engine has stopped and every request is
 * answered, or, when hurried, once its engine has stopped. */
static void worker_maybe_finish(hk_worker *w)
{
    hk_app *app = w->app;
    uv_mutex_lock(&app->mu);
    bool hurried = w->index == 0 ? app->hurry : w->ask_hurry;
    uv_mutex_unlock(&app->mu);
    if (w->finished || w->stopping_engine != NULL || (!w->http_drained && !hurried))
        return;
    w->finished = true;
    if (!w->http_drained)
        hk_warn("%u connections abandoned at shutdown (a request still being read or written)",
                hk_http_server_connections(w->http));
    if (w->index == 0) {
        app_maybe_finish(app);
        return;
    }
    /* Its loop runs out once its own handles are closed (its port's only while an op is in flight). */
    uv_mutex_lock(&app->mu);
    if (w->wake_open) {
        w->wake_open = false;
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    uv_mutex_unlock(&app->mu);
    if (!w->http_drained)
        uv_stop(w->env.loop);
}

static void on_engine_stopped(void *arg)
{
    hk_worker *w = arg;
    w->stopping_engine = NULL;
    hk_notify_shutdown();
    worker_maybe_finish(w);
}

static void on_drained(hk_http_server *srv)
{
    HK_UNUSED(srv);
    hk_worker *w = this_worker;
    if (w->app->nworkers > 1)
        hk_info("worker %u drained: every in-flight request answered", w->index);
    else
        hk_info("drained: every in-flight request answered");
    w->http_drained = true;
    worker_maybe_finish(w);
}

/* On the worker's thread: stop accepting, stop the engine, answer what is in flight. */
static void worker_drain(hk_worker *w)
{
    if (w->env.draining)
        return;
    w->env.draining = true;
    w->env.ready = false;
    /* The API sees no engine from now on: nothing new is sent or submitted
     * for it (its endpoints answer 503); what it has started goes on. Set
     * before the server's shutdown, which may report drained at once. */
    w->stopping_engine = w->env.engine;
    w->env.engine = NULL;
    hk_http_server_shutdown(w->http, on_drained);
    if (w->stopping_engine != NULL)
        hk_engine_stop(w->stopping_engine, on_engine_stopped, w);
    else
        worker_maybe_finish(w);
}

/* On the worker's thread: what is on the wire is cancelled now. */
static void worker_hurry(hk_worker *w)
{
    if (w->stopping_engine != NULL)
        hk_engine_stop(w->stopping_engine, on_engine_stopped, w); /* a second call ends the grace */
    worker_maybe_finish(w);
}

/* On a worker other than 0: the main thread asks it to drain or hurry. */
static void on_wake(uv_async_t *a)
{
    hk_worker *w = a->data;
    uv_mutex_lock(&w->app->mu);
    bool drain = w->ask_drain, hurry = w->ask_hurry;
    uv_mutex_unlock(&w->app->mu);
    if (drain)
        worker_drain(w);
    if (hurry)
        worker_hurry(w);
}

/* On the main thread: asks every other worker to drain (and hurry). */
static void ask_others(hk_app *app, bool hurry)
{
    uv_mutex_lock(&app->mu);
    for (uint32_t i = 1; i < app->nworkers; i++) {
        hk_worker *w = &app->workers[i];
        w->ask_drain = true;
        w->ask_hurry |= hurry;
        if (w->wake_open)
            uv_async_send(&w->wake);
    }
    uv_mutex_unlock(&app->mu);
}

/* shutdown_timeout or a second signal: what is on the wire is cancelled now. */
static void hurry(hk_app *app)
{
    app->hurry = true;
    ask_others(app, true);
    worker_hurry(&app->workers[0]);
}

static void on_drain_timeout(uv_timer_t *t)
{
    hk_app *app = t->data;
    hk_warn("drain took longer than %llums; stopping", (unsigned long long)app->cfg->shutdown_timeout_ms);
    hurry(app);
}

static void begin_drain(hk_app *app)
{
    app->draining = true;
    uv_timer_start(&app->drain_timer, on_drain_timeout, app->cfg->shutdown_timeout_ms, 0);
    uv_unref((uv_handle_t *)&app->drain_timer);
    ask_others(app, false);
    worker_drain(&app->workers[0]);
}

static void on_signal(uv_signal_t *s, int signum)
{
    hk_app *app = s->data;
    if (app->draining) {
        hk_warn("second signal: stopping now");
        hurry(app);
        return;
    }
    hk_info("received %s: draining", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    begin_drain(app);
}

/* On the main thread: another worker's thread is about to end. */
static void on_others_done(uv_async_t *a)
{
    app_maybe_finish(a->data);
}

/* ---- starting a worker -------------------------------------------------------------- */

/* Worker 0 listens on [server] listen, each address with SO_REUSEPORT when
 * there are other workers, and notes what it bound (port 0 resolved); the
 * others listen on those. */
static int listen_all(hk_worker *w)
{
    hk_app *app = w->app;
    bool reuse = app->nworkers > 1;
    if (w->index > 0) {
        int rc = 0;
        for (uint32_t i = 0; i < app->nbound && rc == 0; i++)
            rc = hk_http_server_listen_ex(w->http, app->bound[i], true, NULL, 0);
        return rc;
    }
    char *list = hk_strdup(app->cfg->listen);
    char *save = NULL;
    int rc = 0, n = 0;
    for (char *tok = strtok_r(list, ", ", &save); tok != NULL && rc == 0; tok = strtok_r(NULL, ", ", &save)) {
        if (app->nbound == HK_LISTEN_MAX) {
            hk_error("server.listen names more than %d addresses", HK_LISTEN_MAX);
            rc = HK_ECONFIG;
            break;
        }
        rc = hk_http_server_listen_ex(w->http, tok, reuse, app->bound[app->nbound], sizeof(app->bound[0]));
        app->nbound += rc == 0;
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
    hk_worker *w = arg;
    hk_activity_attempt(w->env.activity, a);
    hk_notify_attempt(w->env.loop, w->app->cfg, w->env.db, a);
}

/* The worker's engine on its own outbound client, the system clock and the configuration. */
static int start_engine(hk_worker *w)
{
    const hk_config *cfg = w->app->cfg;
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
    int rc = hk_client_create(&client, w->env.loop, &copts);
    if (rc != 0) {
        hk_error("cannot create the delivery client: %s", hk_strerror(rc));
        return rc;
    }
    hk_clock_real(&w->clock, w->env.loop);
    hk_engine_deps deps = {.loop = w->env.loop,
                           .store = w->env.db,
                           .clock = &w->clock,
                           .finished = on_attempt_finished,
                           .finished_arg = w,
                           .group = w->app->group,
                           .worker = w->index};
    hk_sender_client(&deps.sender, client);
    hk_engine_opts opts;
    hk_engine_opts_from_config(&opts, cfg);
    if (w->index > 0)
        opts.prune_interval_ms = 0; /* pruning and dropping expired data: worker 0 alone */
    rc = hk_engine_start(&w->env.engine, &deps, &opts);
    if (rc != 0) {
        /* The client was never used: closing it frees it once its handles are closed. */
        hk_client_close(client, NULL, NULL);
        uv_run(w->env.loop, UV_RUN_DEFAULT);
    }
    return rc;
}

static void on_store_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Closes the store; a cluster store's connections close on the loop, which
 * runs until they have, and no longer: connections abandoned at shutdown
 * stay open until the process exits, as with the embedded engine. */
static void close_store(uv_loop_t *loop, hk_store *store)
{
    bool closed = false;
    hk_store_close_then(store, on_store_closed, &closed);
    while (!closed)
        uv_run(loop, UV_RUN_ONCE);
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
static int wait_ready(uv_loop_t *loop, hk_store *store)
{
    if (hk_store_ready(store))
        return 0;
    hk_info("cluster: connecting to the database and reading the registry");
    uv_timer_t tick;
    unsigned waited = 0;
    uv_timer_init(loop, &tick);
    tick.data = &waited;
    uv_timer_start(&tick, on_wait_tick, 1000, 1000);
    while (!hk_store_ready(store))
        uv_run(loop, UV_RUN_ONCE);
    /* What a previous run under this node's name claimed (it was killed) is anybody's again at once. */
    int released = 1;
    hk_store_release(store, NULL, 0, on_released, &released);
    while (released > 0)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return 0;
}

/* On the worker's thread: its engine, its inbound server, its listeners. On
 * failure what was started is closed again (its loop run until it is). */
static int worker_start(hk_worker *w)
{
    hk_app *app = w->app;
    w->env.cfg = app->cfg;
    w->env.db = app->store;
    w->env.router = app->router;
    w->env.activity = app->activity;
    w->env.worker = w->index;
    w->env.workers = app->nworkers;
    int rc = start_engine(w);
    if (rc != 0)
        return rc;
    rc = hk_http_server_create(&w->http, w->env.loop, app->cfg, hk_api_dispatch, &w->env, hk_api_error_body);
    if (rc == 0) { /* credentials are checked before a body is read; every answer is counted */
        hk_http_server_on_head(w->http, hk_api_on_head, hk_api_slot_free);
        hk_http_server_on_response(w->http, hk_api_metrics_observe);
    }
    if (rc != 0 || (rc = listen_all(w)) != 0) {
        /* Let libuv close what was opened before giving up. */
        hk_engine_stop(w->env.engine, NULL, NULL);
        w->env.engine = NULL;
        if (w->http != NULL) {
            hk_http_server_shutdown(w->http, NULL);
            uv_run(w->env.loop, UV_RUN_DEFAULT);
            hk_http_server_free(w->http);
            w->http = NULL;
        } else {
            uv_run(w->env.loop, UV_RUN_DEFAULT);
        }
        return rc ? rc : HK_EINVAL;
    }
    return 0;
}

/* Frees the worker's server once its loop has stopped (abandoned connections keep it). */
static void worker_free_http(hk_worker *w)
{
    if (w->http != NULL && hk_http_server_connections(w->http) == 0)
        hk_http_server_free(w->http);
    w->http = NULL;
}

/* The thread of a worker other than 0. */
static void worker_main(void *arg)
{
    hk_worker *w = arg;
    hk_app *app = w->app;
    this_worker = w;
    hk_metrics_bind(w->index);
    uv_loop_t *loop = w->env.loop = &w->own_loop;
    int rc = uv_loop_init(loop);
    if (rc != 0) {
        w->start_rc = rc;
        uv_sem_post(&app->start_sem);
        goto done;
    }
    loop->data = w;
    if ((rc = hk_store_port_open(app->store, loop, &w->port)) == 0 &&
        (rc = uv_async_init(loop, &w->wake, on_wake)) == 0) {
        w->wake.data = w;
        uv_mutex_lock(&app->mu);
        w->wake_open = true;
        uv_mutex_unlock(&app->mu);
        rc = worker_start(w);
    }
    w->start_rc = rc;
    if (rc == 0)
        w->env.ready = true;
    uv_sem_post(&app->start_sem);
    if (rc == 0) {
        uv_run(loop, UV_RUN_DEFAULT);
    } else {
        uv_mutex_lock(&app->mu);
        if (w->wake_open) {
            w->wake_open = false;
            uv_close((uv_handle_t *)&w->wake, NULL);
        }
        uv_mutex_unlock(&app->mu);
    }
    /* Stopped with connections abandoned, or drained: the ops it submitted
     * come back before its port closes (the store's loop commits them). */
    while (hk_store_port_busy(w->port))
        uv_run(loop, UV_RUN_ONCE);
    bool abandoned = w->http != NULL && hk_http_server_connections(w->http) > 0;
    worker_free_http(w);
    hk_store_port_close(w->port);
    uv_run(loop, abandoned ? UV_RUN_NOWAIT : UV_RUN_DEFAULT);
    int close_rc = uv_loop_close(loop);
    if (close_rc != 0)
        hk_debug("worker %u: loop closed with handles open: %s", w->index, uv_strerror(close_rc));
done:
    uv_mutex_lock(&app->mu);
    app->finished_others++;
    if (app->others_done_open)
        uv_async_send(&app->others_done);
    uv_mutex_unlock(&app->mu);
}

/* ---- the process ------------------------------------------------------------------- */

/* What is left once the loop has ended (or a start failed): threads joined, handles and store closed. */
static void app_close(hk_app *app, uint32_t started)
{
    uv_loop_t *loop = app->workers[0].env.loop;
    for (uint32_t i = 1; i < started; i++)
        uv_thread_join(&app->workers[i].thread);
    hk_store_unshare(app->store);
    /* Stopped with connections abandoned (app_maybe_finish): commits still
     * queued or running finish, and their callbacks run, before the store
     * closes. A callback of those may submit another op (a request whose
     * body has just arrived): the store closes only once an iteration ended
     * with nothing queued or running, and the loop runs no more after. */
    while (hk_store_busy(app->store) || handles_closing(app))
        uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_NOWAIT); /* the store's share handle closes */
    worker_free_http(&app->workers[0]);
    hk_engine_group_free(app->group);
    hk_router_free(app->router);
    hk_activity_free(app->activity);
    close_store(loop, app->store);
    int close_rc = uv_loop_close(loop);
    if (close_rc != 0)
        hk_debug("loop closed with handles open: %s", uv_strerror(close_rc));
    uv_sem_destroy(&app->start_sem);
    uv_mutex_destroy(&app->mu);
    free(app->workers);
}

int hk_app_run(hk_config *cfg)
{
    hk_app app;
    memset(&app, 0, sizeof(app));
    app.cfg = cfg;
    app.nworkers = cfg->workers > 0 ? cfg->workers : 1;
    /* A cluster node's engine (its connection pool, claims and registry
     * cache) lives on one loop: more cores mean more nodes, not workers. */
    if (cfg->cluster_postgres != NULL && cfg->cluster_postgres[0] != '\0' && app.nworkers > 1) {
        if (strcmp(cfg->workers_text, "auto") != 0) {
            hk_error("[server] workers = %u: a cluster node runs one loop; run one node per core instead",
                     app.nworkers);
            return 1;
        }
        app.nworkers = 1;
    }
    uv_loop_t *loop = uv_default_loop();
    signal(SIGPIPE, SIG_IGN);

    /* A serving process holds the data directory's lock: a second one on it exits here. */
    hk_store_opts so = {.data_dir = cfg->data_dir,
                        .map_size = cfg->map_size,
                        .max_batch = cfg->max_batch,
                        .exclusive = true,
                        .wal = strcmp(cfg->store_sync, "log") == 0,
                        .postgres = cfg->cluster_postgres,
                        .migrate = strcmp(cfg->cluster_migrate, "auto") == 0,
                        .node_name = cfg->cluster_node};
    if (hk_store_open(&app.store, loop, &so) != 0)
        return 1;
    if (wait_ready(loop, app.store) != 0 || hk_app_bootstrap(app.store) != 0 ||
        (app.nworkers > 1 && (hk_store_share(app.store) != 0 || hk_engine_group_new(&app.group, app.nworkers) != 0))) {
        hk_store_unshare(app.store);
        uv_run(loop, UV_RUN_NOWAIT);
        close_store(loop, app.store);
        return 1;
    }
    app.router = hk_api_router();
    app.activity = hk_activity_new(); /* one set for every worker (it has its own lock) */
    app.workers = hk_calloc(app.nworkers, sizeof(*app.workers));
    uv_sem_init(&app.start_sem, 0);
    uv_mutex_init(&app.mu);
    for (uint32_t i = 0; i < app.nworkers; i++) {
        app.workers[i].app = &app;
        app.workers[i].index = i;
    }
    hk_worker *w0 = &app.workers[0];
    w0->env.loop = loop;
    loop->data = w0;
    this_worker = w0;
    hk_metrics_bind(0);
    if (worker_start(w0) != 0) {
        app_close(&app, 1);
        return 1;
    }
    uv_async_init(loop, &app.others_done, on_others_done);
    app.others_done.data = &app;
    app.others_done_open = true;
    uv_signal_init(loop, &app.sig_term);
    uv_signal_init(loop, &app.sig_int);
    app.sig_term.data = app.sig_int.data = &app;
    uv_signal_start(&app.sig_term, on_signal, SIGTERM);
    uv_signal_start(&app.sig_int, on_signal, SIGINT);
    uv_timer_init(loop, &app.drain_timer);
    app.drain_timer.data = &app;

    /* The other workers, each started on its own thread; then ready, or every started one drained again. */
    uint32_t started = 1;
    bool failed = false;
    for (uint32_t i = 1; i < app.nworkers; i++) {
        if (uv_thread_create(&app.workers[i].thread, worker_main, &app.workers[i]) != 0) {
            hk_error("cannot start worker %u", i);
            failed = true;
            break;
        }
        started++;
        uv_sem_wait(&app.start_sem);
        if (app.workers[i].start_rc != 0) {
            hk_error("worker %u did not start: %s", i, hk_strerror(app.workers[i].start_rc));
            failed = true;
            break;
        }
    }
    /* Workers never started count as finished. */
    uv_mutex_lock(&app.mu);
    app.finished_others += app.nworkers - started;
    uv_mutex_unlock(&app.mu);
    if (failed) {
        app.exit_code = 1;
        begin_drain(&app);
    } else {
        w0->env.ready = true;
        if (hk_store_is_cluster(app.store))
            hk_info("hookd %s ready (cluster node %s)", HK_VERSION, hk_store_node_name(app.store));
        else if (app.nworkers > 1)
            hk_info("hookd %s ready with %u workers (data in %s)", HK_VERSION, app.nworkers, cfg->data_dir);
        else
            hk_info("hookd %s ready (data in %s)", HK_VERSION, cfg->data_dir);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    app_close(&app, started);
    hk_info("stopped");
    return app.exit_code;
}
