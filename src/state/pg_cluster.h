/*
 * pg_cluster.h: decisions the nodes of a cluster take together that are
 * not ops of the storage seam (pg_cluster.c): whether this node sends a
 * webhook's failure mail (at most one per webhook per interval for the
 * whole cluster), and the node's sign of life in cluster_members (the
 * name it writes into the leases it takes).
 *
 * Errors: 0 or a negative HK_E* / UV_E* code (pg_conn.h's batch statuses).
 */
#ifndef HK_PG_CLUSTER_H
#define HK_PG_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "pg_conn.h"
#include "pg_store.h"

typedef struct hk_pg_mail_gate hk_pg_mail_gate;

/**
 * Asks whether this node sends a failure mail about a webhook now: yes
 * when no node has sent one within min_interval_ms, and then the sending
 * is recorded in the same statement, so of two nodes asking at once one
 * is told yes. Embed it in the caller's struct.
 */
struct hk_pg_mail_gate {
    /* in */
    uint32_t webhook_id;                          /**< the webhook */
    uint64_t now_ms;                              /**< the time of the mail */
    uint64_t min_interval_ms;                     /**< [smtp] min_interval */
    void (*done)(hk_pg_mail_gate *g, int status); /**< on the loop: 0 with send set, or the failure (send false) */
    /* out */
    bool send; /**< this node sends it */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[3];
    char params[3][24];
};

/** Asks as g says through s's pool; g->done runs on the loop later, never from within this call. */
void hk_pg_mail_gate_ask(hk_pg_store *s, hk_pg_mail_gate *g);

typedef struct hk_pg_member hk_pg_member;

/** A node's sign of life, recorded in cluster_members (created on the first). Embed it in the caller's struct. */
struct hk_pg_member {
    const char *name;                          /**< the node's name (what its leases carry); borrowed */
    const char *version;                       /**< hookd's version; borrowed */
    uint64_t started_ms;                       /**< when the node started */
    uint64_t now_ms;                           /**< now: its seen_ms */
    void (*done)(hk_pg_member *m, int status); /**< on the loop: 0 or the failure */
    /* Internal. */
    hk_pg_batch b;
    hk_pg_stmt stmt;
    const char *values[4];
    char params[2][24];
};

/** Records m through s's pool; m->done runs on the loop later. */
void hk_pg_member_seen(hk_pg_store *s, hk_pg_member *m);

#endif
