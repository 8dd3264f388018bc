/*
 * pg_sync.h: the PostgreSQL engine for a process without an event loop of
 * its own: the CLI (`hookd user|key|webhook lock|node|account` against the
 * cluster's database), as hk_store_apply serves it for the embedded
 * engine. The engine runs on a private loop that these calls run until
 * their answer has come, so they block: never call them from a server's
 * loop.
 *
 * Errors: 0 or a negative HK_E* / UV_E* code; UV_ETIMEDOUT when the
 * database did not answer within the timeout.
 */
#ifndef HK_PG_SYNC_H
#define HK_PG_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_store.h"

typedef struct hk_pg_sync hk_pg_sync;

/**
 * Opens the engine on conninfo and waits until its registry is read (the
 * queries of pg_cache.h on hk_pg_sync_store then answer). timeout_ms
 * bounds the wait (0: 10000). On failure err says why (never the
 * connection string) and nothing is left open. *out is the caller's until
 * hk_pg_sync_close.
 */
int hk_pg_sync_open(hk_pg_sync **out, const char *conninfo, uint64_t timeout_ms, char *err,
                    size_t errlen) HK_MUST_CHECK;

/** Applies op in a transaction of its own and waits for it: op's status, its out fields written. */
int hk_pg_sync_apply(hk_pg_sync *s, hk_op *op) HK_MUST_CHECK;

/**
 * Runs the private loop until cond(arg) holds or the timeout has passed:
 * whether it holds. For a request made on the engine (pg_query.h) whose
 * done sets what cond reads; a request still in flight after a timeout
 * ends when the engine closes (UV_ECANCELED), so its memory must outlive
 * hk_pg_sync_close or be freed by its done.
 */
bool hk_pg_sync_run_until(hk_pg_sync *s, bool (*cond)(void *arg), void *arg);

/** The engine, for the registry queries (pg_cache.h); borrowed. */
hk_pg_store *hk_pg_sync_store(hk_pg_sync *s);

/** Closes the engine and its loop. Safe on NULL. */
void hk_pg_sync_close(hk_pg_sync *s);

#endif
