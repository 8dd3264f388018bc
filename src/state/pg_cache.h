/*
 * pg_cache.h: the PostgreSQL engine's registry in memory (pg_cache.c), so
 * that the registry queries of store.h stay synchronous and never wait on
 * the database: webhooks (with their subscriptions, patterns included,
 * extensions, state and lock), users and key hashes, nodes, accounts and
 * event types.
 *
 * How it stays current:
 *  - loaded whole (one snapshot, REPEATABLE READ) once the engine's LISTEN
 *    on hookd_registry is in place, and again after every resubscription
 *    (a lost listen connection may have missed notifications);
 *  - per key on each notification of hookd_registry ("<table> <key>", sent
 *    by the schema's triggers at commit, whoever wrote): the keys named
 *    are read again, one query at a time, so an answer is never older than
 *    the notification that asked for it;
 *  - at once from this node's own commits (before the op's done runs), so
 *    a change is used by the node that made it without a round trip: from
 *    the op and its result, and from what the group's transaction read
 *    back after its ops (hk__pg_echo: event types the database registered,
 *    statistics the failure rules changed).
 *
 * Until the first load has finished every query answers UV_EAGAIN
 * (hk_pg_store_ready says when it has). Webhook statistics change on
 * every attempt and are not announced: the rows changed are read once a
 * second (all of them once a minute), so another node's are at most about
 * a second old (this node's own are read back with its commits); the
 * decisions made from them (auto-disable) are the database's.
 *
 * The queries mirror store.h's (same arguments, results and errors) on an
 * hk_pg_store; records returned are the caller's copies, records passed to
 * a callback are borrowed for the call. A callback may make other queries.
 */
#ifndef HK_PG_CACHE_H
#define HK_PG_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "pg_conn.h"
#include "store.h"

typedef struct hk_pg_store hk_pg_store;
typedef struct hk_pg_cache hk_pg_cache;

/* ---- the engine's side (pg_store.c) -------------------------------------------------------- */

/**
 * Creates the cache of pool's database and starts listening (the first
 * load follows). *out is owned by the engine until hk__pg_cache_close.
 */
int hk__pg_cache_open(hk_pg_cache **out, uv_loop_t *loop, hk_pg_pool *pool) HK_MUST_CHECK;

/** Starts no read any more (the engine is closing its pool: reads in flight end with UV_ECANCELED). */
void hk__pg_cache_stop(hk_pg_cache *c);

/** Closes the cache once its pool is closed (no query in flight); closed(arg) runs on the loop after it is freed. */
void hk__pg_cache_close(hk_pg_cache *c, void (*closed)(void *arg), void *arg);

/** Updates the cache from an op this node has just committed (status 0, out fields read). */
void hk__pg_cache_applied(hk_pg_cache *c, const hk_op *op);

/**
 * What an own group changes beyond its ops' results, read back in the
 * group's own transaction (after its ops' statements) so that the cache
 * holds it when the ops' done run: the event types the group's webhook puts
 * and signals name that the cache lacks, and the statistics of the webhooks
 * its outcomes, attempts and webhook puts touch (the failure rules are the
 * database's). Zero it before the first hk__pg_echo_add.
 */
typedef struct hk__pg_echo {
    const char **names;       /**< event type names to read (borrowed from the ops, valid until their done) */
    size_t nnames;            /**< names */
    size_t capnames;          /**< names there is room for */
    uint32_t *ids;            /**< webhooks whose statistics to read (owned) */
    size_t nids;              /**< ids */
    size_t capids;            /**< ids there is room for */
    hk_pg_stmt stmts[2];      /**< the statements hk__pg_echo_build made (nstmts of them) */
    size_t nstmts;            /**< statements */
    bool reads_types[2];      /**< stmts[i] reads event types (else statistics) */
    char *params[2];          /**< stmts[i]'s one parameter, an array literal (owned) */
    const char *values[2][1]; /**< stmts[i]'s parameter values */
} hk__pg_echo;

/** Notes what op (about to be sent in a group) changes that the group should read back. */
void hk__pg_echo_add(hk_pg_cache *c, hk__pg_echo *e, const hk_op *op);

/** Makes e's statements (e->stmts, e->nstmts of them, 0 to 2): sent after the group's ops, in its transaction. */
void hk__pg_echo_build(hk__pg_echo *e);

/** Updates the cache from the results of e's statements (results[i] is stmts[i]'s), the group committed. */
void hk__pg_cache_echoed(hk_pg_cache *c, const hk__pg_echo *e, struct pg_result *const *results);

/** Frees what e owns; safe on a zeroed one. */
void hk__pg_echo_free(hk__pg_echo *e);

/** The database's size in bytes as last read (0 before the first read): read with each whole load and every 10 s. */
uint64_t hk__pg_cache_db_bytes(const hk_pg_cache *c);

/** True once the first whole load has finished. */
bool hk__pg_cache_ready(const hk_pg_cache *c);

/** Whole loads finished since open (a test's view of resubscriptions). */
uint64_t hk__pg_cache_loads(const hk_pg_cache *c);

/** The engine's cache (borrowed). */
hk_pg_cache *hk__pg_store_cache(hk_pg_store *s);

/* ---- the queries (store.h's, on the cluster's registry) ----------------------------------------- */

/** As hk_store_webhook_get. */
int hk_pg_webhook_get(hk_pg_store *s, uint32_t id, hk_webhook *out) HK_MUST_CHECK;
/** As hk_store_webhook_state. */
int hk_pg_webhook_state(hk_pg_store *s, uint32_t id, enum hk_webhook_state *state, bool *locked) HK_MUST_CHECK;
/** As hk_store_webhook_by_extension. */
int hk_pg_webhook_by_extension(hk_pg_store *s, const char *ext, uint32_t *id) HK_MUST_CHECK;
/** As hk_store_extensions_each (byte order). */
int hk_pg_extensions_each(hk_pg_store *s, int (*fn)(const char *ext, uint32_t id, void *arg), void *arg);
/** As hk_store_webhook_stats (zeros for a webhook without any). */
int hk_pg_webhook_stats(hk_pg_store *s, uint32_t id, hk_webhook_stats *out) HK_MUST_CHECK;
/** As hk_store_webhooks_each. */
int hk_pg_webhooks_each(hk_pg_store *s, uint32_t from_id,
                        int (*fn)(const hk_webhook *w, const hk_webhook_stats *st, void *arg), void *arg);
/** As hk_store_webhook_states. */
int hk_pg_webhook_states(hk_pg_store *s, uint64_t counts[3]) HK_MUST_CHECK;
/** As hk_store_event_types_each (id order). */
int hk_pg_event_types_each(hk_pg_store *s, int (*fn)(uint32_t id, const char *name, void *arg), void *arg);
/** As hk_store_event_type_id. */
int hk_pg_event_type_id(hk_pg_store *s, const char *name, uint32_t *id) HK_MUST_CHECK;
/** As hk_store_user_get. */
int hk_pg_user_get(hk_pg_store *s, uint32_t id, hk_user *out) HK_MUST_CHECK;
/** As hk_store_user_by_code (ASCII case-insensitive). */
int hk_pg_user_by_code(hk_pg_store *s, const char *code, hk_user *out) HK_MUST_CHECK;
/** As hk_store_key_get. */
int hk_pg_key_get(hk_pg_store *s, const uint8_t hash[32], hk_key *key, hk_user *user) HK_MUST_CHECK;
/** As hk_store_users_each (id order). */
int hk_pg_users_each(hk_pg_store *s, int (*fn)(const hk_user *u, void *arg), void *arg);
/** As hk_store_keys_each (hash order). */
int hk_pg_keys_each(hk_pg_store *s, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg);
/** As hk_store_user_count. */
int hk_pg_user_count(hk_pg_store *s, size_t *n) HK_MUST_CHECK;
/** As hk_store_node_get. */
int hk_pg_node_get(hk_pg_store *s, uint32_t id, hk_node *out) HK_MUST_CHECK;
/** As hk_store_account_get. */
int hk_pg_account_get(hk_pg_store *s, uint32_t id, hk_account *out) HK_MUST_CHECK;
/** As hk_store_nodes_each (id order). */
int hk_pg_nodes_each(hk_pg_store *s, int (*fn)(const hk_node *n, void *arg), void *arg);
/** As hk_store_accounts_each (id order). */
int hk_pg_accounts_each(hk_pg_store *s, int (*fn)(const hk_account *a, void *arg), void *arg);
/** As hk_store_node_within. */
int hk_pg_node_within(hk_pg_store *s, uint32_t node, uint32_t top, bool *within) HK_MUST_CHECK;

#endif
