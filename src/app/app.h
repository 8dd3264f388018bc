/*
 * app.h: the running server's parts and their wiring (one per process):
 * the store, and one worker per [server] workers, each an event loop on a
 * thread of its own (worker 0 on the main thread, which also holds the
 * store's group commit, the signals and the drain) with its own listeners,
 * inbound server and delivery engine.
 */
#ifndef HK_APP_H
#define HK_APP_H

#include <stdbool.h>
#include <uv.h>

#include "activity.h"
#include "api.h"
#include "clock.h"
#include "config.h"
#include "engine.h"
#include "http_server.h"
#include "store.h"

typedef struct hk_app hk_app;

/** One worker: an event loop and what runs on it. Everything here is touched only on its thread but the marked fields.
 */
typedef struct hk_worker {
    hk_app *app;          /**< the process's parts */
    uint32_t index;       /**< 0 .. workers-1; 0 runs on the main thread's (default) loop */
    uv_loop_t own_loop;   /**< the loop of a worker other than 0 */
    uv_thread_t thread;   /**< its thread (workers other than 0) */
    hk_api_env env;       /**< loop, config, store, engine, router and readiness, as the API sees them */
    hk_http_server *http; /**< its inbound server, on its own SO_REUSEPORT listeners */
    hk_clock clock;       /**< its engine's clock: the system's */
    hk_store_port *port;  /**< its way into the store's group commit (workers other than 0) */
    uv_async_t wake;      /**< workers other than 0: the main thread asks it to drain or hurry */
    bool wake_open;       /**< wake is initialised and not closed */
    /* Shutdown (app.c). */
    hk_engine *stopping_engine; /**< the engine from the drain until it has stopped (env.engine is NULL then) */
    bool http_drained;          /**< every connection is closed */
    bool finished;              /**< its drain is over */
    /* Set by the main thread under app->mu, read by the worker when woken. */
    bool ask_drain, ask_hurry;
    int start_rc; /**< its start's result, read by the main thread after start_sem */
} hk_worker;

struct hk_app {
    const hk_config *cfg;           /**< configuration */
    hk_store *store;                /**< the one store, opened on worker 0's loop */
    hk_router *router;              /**< the API routes (read-only once built: shared) */
    hk_activity *activity;          /**< attempts per minute for the console, shared by the workers */
    hk_engine_group *group;         /**< the workers' engines (NULL with one worker) */
    uint32_t nworkers;              /**< [server] workers */
    hk_worker *workers;             /**< nworkers of them */
    char bound[HK_LISTEN_MAX][300]; /**< the addresses worker 0 bound, for the others to listen on too */
    uint32_t nbound;                /**< entries in bound */
    uv_sem_t start_sem;             /**< posted by each worker other than 0 once started (or failed) */
    uv_mutex_t mu;                  /**< guards the workers' ask_* flags and finished_others */
    uv_async_t others_done;         /**< on worker 0's loop: another worker finished its drain */
    bool others_done_open;          /**< others_done is initialised and not closed */
    uint32_t finished_others;       /**< workers other than 0 whose drain is over (under mu) */
    uv_signal_t sig_term;           /**< SIGTERM watcher */
    uv_signal_t sig_int;            /**< SIGINT watcher */
    uv_timer_t drain_timer;         /**< bounds the drain */
    bool draining;                  /**< a signal (or a failed start) began the drain */
    bool hurry;                     /**< shutdown_timeout or a second signal: what is still on the wire is cancelled */
    int exit_code;                  /**< returned by hk_app_run */
};

/**
 * Opens the store, creates the first admin on an empty one, starts the
 * workers, listens and runs until SIGTERM/SIGINT has drained every worker.
 * Returns the exit code.
 */
int hk_app_run(hk_config *cfg);

/**
 * Creates the admin user with every permission and its key, in one commit
 * (HK_OP_USER_PUT with only_first), when the store has no user. The key is
 * HOOKD_ADMIN_KEY when set, else random and printed once to stderr. Runs
 * on the calling thread (start-up, before the loop).
 */
int hk_app_bootstrap(hk_store *store) HK_MUST_CHECK;

#endif
