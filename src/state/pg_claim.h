/*
 * pg_claim.h: due deliveries shared by the nodes of a cluster (pg_claim.c).
 * A node claims a batch of due deliveries of Active webhooks with a lease:
 * each claimed row records the node (deliveries.leased_by) and the end of
 * the lease (lease_until), in one statement with FOR UPDATE SKIP LOCKED,
 * so two nodes claiming at once get disjoint batches and never wait for
 * each other. A claimed delivery is the node's until its lease ends; its
 * outcome (HK_OP_OUTCOME) removes it, and queues the retry unleased. A
 * node that dies holds its claims only until their leases end: then any
 * node claims them again (at least once: a receiver may see a delivery
 * twice, never miss one).
 *
 * Errors: 0 or a negative HK_E* / UV_E* code (pg_conn.h's batch statuses).
 */
#ifndef HK_PG_CLAIM_H
#define HK_PG_CLAIM_H

#include <stddef.h>
#include <stdint.h>

#include "pg_conn.h"
#include "pg_store.h"

/** One claimed delivery with its event. */
typedef struct hk_pg_claimed {
    hk_delivery delivery; /**< the queue entry as stored (its key is what its outcome names) */
    hk_event event;       /**< its event (owned; freed by hk_pg_claim_free) */
} hk_pg_claimed;

typedef struct hk_pg_claim hk_pg_claim;

/**
 * A claim. Embed it in the caller's struct (recover that with
 * hk_container_of); it stays valid and unchanged until done runs.
 */
struct hk_pg_claim {
    /* in */
    const char *node;  /**< this node's name (cluster_members.name), written into leased_by; borrowed */
    uint64_t now_ms;   /**< what counts as due, and when an earlier lease has ended */
    uint64_t lease_ms; /**< the lease: the claimed deliveries are this node's until now_ms + lease_ms */
    uint32_t max;      /**< deliveries claimed at most (0: 1) */
    const uint32_t
        *skip;    /**< webhooks whose deliveries are not claimed (borrowed until done runs); NULL with nskip 0 */
    size_t nskip; /**< entries in skip */
    /** Runs on the loop: status 0 with items (perhaps none), or the failure (nothing claimed, or, with
        UV_ECONNRESET, perhaps claimed: those leases then simply end). */
    void (*done)(hk_pg_claim *c, int status);
    /* out, valid in done and until hk_pg_claim_free */
    hk_pg_claimed *items; /**< in due order (malloc'd) */
    size_t nitems;        /**< entries in items */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[5];
    char params[3][24];
    char *skip_list; /* the bigint[] literal of skip, or NULL */
};

typedef struct hk_pg_release hk_pg_release;

/**
 * Claims given back before their leases end (deliveries a node claimed
 * but will not attempt, or all of a node's claims when it stops), so that
 * any node may claim them at once. Embed it like hk_pg_claim.
 */
struct hk_pg_release {
    /* in */
    const char *node;      /**< the node whose claims end (only its own are touched); borrowed */
    const hk_delivery *ds; /**< the deliveries (their keys), borrowed; NULL with n 0: every claim of node */
    size_t n;              /**< entries in ds */
    void (*done)(hk_pg_release *r, int status); /**< on the loop: 0, or the failure (the leases then simply end) */
    /* out */
    uint64_t released; /**< claims given back */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[4];
    char *owned[3];
};

/** Gives claims back as r says through s's pool; r->done runs on the loop later. */
void hk_pg_claim_release(hk_pg_store *s, hk_pg_release *r);

/** Claims as c says through s's pool; c->done runs on the loop later, never from within this call. */
void hk_pg_claim_due(hk_pg_store *s, hk_pg_claim *c);

/** Frees what a claim's done received (items and their events); safe to call twice. */
void hk_pg_claim_free(hk_pg_claim *c);

#endif
