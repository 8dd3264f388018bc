/*
 * app.h: the running server's parts and their wiring (one per process).
 */
#ifndef HK_APP_H
#define HK_APP_H

#include <stdbool.h>
#include <uv.h>

#include "api.h"
#include "clock.h"
#include "config.h"
#include "http_server.h"
#include "store.h"

typedef struct hk_app {
    hk_api_env env;         /**< loop, config, store, engine, router and readiness, as the API sees them */
    hk_http_server *http;   /**< the inbound server */
    hk_clock clock;         /**< the engine's clock: the system's */
    uv_signal_t sig_term;   /**< SIGTERM watcher */
    uv_signal_t sig_int;    /**< SIGINT watcher */
    uv_timer_t drain_timer; /**< bounds the drain */
    /* Shutdown (app.c). */
    hk_engine *stopping_engine; /**< the engine from the signal until it has stopped (env.engine is NULL then) */
    bool http_drained;          /**< every connection is closed */
    bool hurry;                 /**< shutdown_timeout or a second signal: what is still on the wire is cancelled */
    int exit_code;              /**< returned by hk_app_run */
} hk_app;

/**
 * Opens the store, creates the first admin on an empty one, listens and
 * runs the loop until SIGTERM/SIGINT has drained. Returns the exit code.
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
