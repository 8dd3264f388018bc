/*
 * pg_cache_int.h: the PostgreSQL engine's registry in memory, as its two
 * files share it: pg_cache.c keeps it current, pg_registry.c answers the
 * queries from it. Internal to the state layer's PostgreSQL engine.
 */
#ifndef HK_PG_CACHE_INT_H
#define HK_PG_CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "pg_cache.h"

/** The tables kept. */
enum hk__pg_table {
    HK__PGT_WEBHOOKS,
    HK__PGT_USERS,
    HK__PGT_KEYS,
    HK__PGT_NODES,
    HK__PGT_ACCOUNTS,
    HK__PGT_TYPES,
    HK__PGT_STATS,
    HK__PGT_COUNT
};

/** A sorted array of fixed-size records searched by their key (a uint32 id or a 32-byte hash). */
typedef struct hk__pg_vec {
    char *v;                    /**< the records (owned), n of them in key order */
    size_t n;                   /**< records */
    size_t cap;                 /**< records v has room for */
    size_t size;                /**< bytes per record */
    size_t keyoff;              /**< where a record's key starts */
    size_t keylen;              /**< its bytes: 4 (a uint32 id, compared as a number) or 32 (a hash) */
    void (*free_elem)(void *e); /**< frees what a record owns (NULL: nothing) */
} hk__pg_vec;

/** The first index whose key is >= key. */
size_t hk__pg_vec_lower(const hk__pg_vec *a, const void *key);

/** The record with key, NULL when absent (borrowed: valid until the table changes). */
void *hk__pg_vec_get(const hk__pg_vec *a, const void *key);

/** An event type. */
struct hk__pg_type {
    uint32_t id; /**< its id */
    char *name;  /**< its name (owned) */
};

/** A webhook's statistics. */
struct hk__pg_stats {
    uint32_t id;         /**< the webhook */
    hk_webhook_stats st; /**< as last read */
    uint64_t changed;    /**< the row's change stamp as read (a row read with a lower one is older) */
};

/** Keys named by notifications and not read yet: uint32 ids, or 32-byte hashes for keys. */
struct hk__pg_dirty {
    uint8_t *keys; /**< n keys (owned) */
    size_t n;      /**< keys */
    size_t cap;    /**< keys there is room for */
};

/** A read of the database in flight (pg_cache.c). */
struct hk__pg_cache_read;

/** The cache (pg_cache.h). */
struct hk_pg_cache {
    uv_loop_t *loop;                          /**< the engine's loop */
    hk_pg_pool *pool;                         /**< the engine's pool (borrowed) */
    hk__pg_vec t[HK__PGT_COUNT];              /**< the tables */
    struct hk__pg_dirty dirty[HK__PGT_COUNT]; /**< keys to read again, per table */
    bool want_full;                           /**< a whole load is due */
    bool ready;                               /**< the first whole load has finished */
    uint64_t loads;                           /**< whole loads finished */
    struct hk__pg_cache_read *inflight;       /**< the read in flight, NULL when none */
    uv_timer_t retry;                         /**< the pause after a failed read */
    uv_timer_t poll;                          /**< reads the statistics changed, once a second */
    bool want_stats;                          /**< a read of the statistics changed is due */
    bool want_stats_all;                      /**< a read of every statistics row is due */
    unsigned polls;                           /**< polls since the last read of every row */
    uint64_t stats_seen;                      /**< the highest change stamp read by the polls */
    uint64_t db_bytes;                        /**< the database's size as last read (0: not read yet) */
    unsigned size_polls;                      /**< polls since the database's size was last read */
    bool want_size;                           /**< a read of the database's size is due */
    int open_handles;                         /**< timers not closed yet, while closing */
    bool closing;                             /**< hk__pg_cache_close was called */
    void (*closed)(void *arg);                /**< runs once closed (NULL: nothing) */
    void *closed_arg;                         /**< its argument */
};

#endif
