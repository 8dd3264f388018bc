/*
 * pg_query.h: the PostgreSQL engine's reads that are not kept in memory
 * (pg_query.c): the attempt log and events. store.h answers these
 * synchronously from the embedded engine's memory map; a remote database
 * cannot, so here each is a request whose done runs on the loop with the
 * records (one round trip, never blocking the loop). The store's dispatch
 * (and the API above it) must wait for done: see src/state/README.md.
 *
 * Errors: 0 or a negative HK_E* / UV_E* code (pg_conn.h's batch statuses).
 */
#ifndef HK_PG_QUERY_H
#define HK_PG_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pg_conn.h"
#include "pg_store.h"

typedef struct hk_pg_attempts_req hk_pg_attempts_req;

/** Attempt records of one webhook, as hk_store_attempts_each visits them, max at most. Embed it in the caller's struct.
 */
struct hk_pg_attempts_req {
    /* in */
    uint32_t webhook_id; /**< the webhook */
    uint64_t from_id;    /**< start at this log id, included (0: at the newest or the oldest) */
    bool newest_first;   /**< newest (highest id) first */
    bool brief;          /**< leave request and response out (NULL, length 0), as hk_store_attempts_each_brief */
    bool exact;          /**< only the record from_id (hk_store_attempt_get: none found is HK_ENOTFOUND) */
    uint32_t max;        /**< records at most (0: 1) */
    /** On the loop: 0 with items (perhaps none), HK_ENOTFOUND (exact, none), or the failure. */
    void (*done)(hk_pg_attempts_req *r, int status);
    /* out, valid in done and until hk_pg_attempts_req_free */
    hk_attempt *items; /**< the records in the order asked (malloc'd) */
    size_t nitems;     /**< entries in items */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[4];
    char params[4][24];
};

/** Reads as r says through s's pool; r->done runs on the loop later, never from within this call. */
void hk_pg_attempts_list(hk_pg_store *s, hk_pg_attempts_req *r);

/** Frees what r's done received; safe to call twice. */
void hk_pg_attempts_req_free(hk_pg_attempts_req *r);

typedef struct hk_pg_event_req hk_pg_event_req;

/** One event by id, as hk_store_event_get. Embed it in the caller's struct. */
struct hk_pg_event_req {
    uint64_t id;                                  /**< in: the event */
    void (*done)(hk_pg_event_req *r, int status); /**< on the loop: 0, HK_ENOTFOUND (pruned), or the failure */
    hk_event event;                               /**< out: the event (owned; hk_event_free) */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[1];
    char param[24];
};

/** Reads as r says through s's pool; r->done runs on the loop later. */
void hk_pg_event_get(hk_pg_store *s, hk_pg_event_req *r);

typedef struct hk_pg_queue_req hk_pg_queue_req;

/**
 * The pending queue at a glance (hk_store_queue_summary: exact, never
 * capped, one aggregate statement), or, with webhook_id, one webhook's
 * entries (hk_store_pending: pending and due). Embed it in the caller's struct.
 */
struct hk_pg_queue_req {
    /* in */
    uint64_t now_ms;                              /**< what counts as due */
    uint32_t webhook_id;                          /**< 0: the whole queue; else only this webhook's entries */
    void (*done)(hk_pg_queue_req *r, int status); /**< on the loop: 0 with sum, or the failure */
    /* out */
    hk_queue_summary sum; /**< pending, due (Active webhooks, or the one asked), parked, oldest_ms; capped false */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[2];
    char params[2][24];
};

/** Reads as r says through s's pool; r->done runs on the loop later. */
void hk_pg_queue_summary(hk_pg_store *s, hk_pg_queue_req *r);

/** An EventId's text (8-4-4-4-12 hex, as PostgreSQL writes a uuid) into 16 bytes; false when it is not one. */
bool hk__pg_uuid_parse(const char *s, uint8_t out[16]);

#endif
