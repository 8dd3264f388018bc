/*
 * accounts.h: the node tree and the accounts hanging from it, and the one
 * question the API asks of them: is an account inside a user's topmost
 * node's subtree?
 *
 * Records are keyed by big-endian u32 id (the codec is in accounts.c):
 *   HK_DB_NODES     node id    -> parent P (0: a root) and name
 *   HK_DB_ACCOUNTS  account id -> node N and name
 * Writes go through store.h (HK_OP_NODE_PUT, HK_OP_ACCOUNT_PUT,
 * HK_OP_TREE_IMPORT); the functions here taking an hk_txn are the old
 * interface, kept while callers move. Id 0 is never a node or an account (a user's top_node 0 means "none").
 * Every write keeps the tree a tree: a parent must exist, and a node can
 * never become its own ancestor.
 */
#ifndef HK_ACCOUNTS_H
#define HK_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

/** A transaction of the state layer (kv.h), for the old interface below. */
typedef struct hk_txn hk_txn;

/** Reads node id into *out; HK_ENOTFOUND when absent, HK_ESTORE when the record is malformed. */
int hk_node_get(hk_txn *txn, uint32_t id, hk_node *out) HK_MUST_CHECK;

/** Reads account id into *out; HK_ENOTFOUND when absent, HK_ESTORE when the record is malformed. */
int hk_account_get(hk_txn *txn, uint32_t id, hk_account *out) HK_MUST_CHECK;

/**
 * Creates or replaces node n (write transactions only). HK_EINVAL with a
 * message in err (may be NULL) when the id is 0, the name is empty or too
 * long, the parent does not exist, or the new parent would make n its own
 * ancestor (or the chain deeper than HK_NODE_DEPTH_MAX).
 */
int hk_node_put(hk_txn *txn, const hk_node *n, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * Creates or replaces account a. HK_EINVAL with a message in err (may be
 * NULL) when the id is 0, the name is empty or too long, or the node does
 * not exist.
 */
int hk_account_put(hk_txn *txn, const hk_account *a, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * True when node is top or a descendant of it. Walks parents from node
 * upwards; a missing node, a cycle (which a store written only through
 * this module cannot hold) or a chain longer than HK_NODE_DEPTH_MAX gives
 * false. top 0 (no topmost node) contains nothing.
 */
bool hk_node_within(hk_txn *txn, uint32_t node, uint32_t top);

/** True when account id exists and its node is within top (see hk_node_within). */
bool hk_account_within(hk_txn *txn, uint32_t id, uint32_t top);

/** What hk_accounts_import reads. */
enum hk_import_kind {
    HK_IMPORT_NODES,   /**< lines "id,parent,name" (parent empty or 0: a root) */
    HK_IMPORT_ACCOUNTS /**< lines "id,node,name" */
};

/**
 * Imports CSV text (RFC 4180: fields may be double-quoted, "" inside
 * quotes is a quote; CRLF or LF line ends; blank lines skipped; a first
 * line whose first field is "id" is a header) into txn. Rows are stored
 * first and checked after, so a parent or node may appear later in the same
 * file. On any error returns HK_EINVAL with "line N: reason" in err; the
 * caller aborts the transaction, so nothing is kept. *count receives the
 * number of rows stored.
 */
int hk_accounts_import(hk_txn *txn, enum hk_import_kind kind, const char *text, size_t len, size_t *count, char *err,
                       size_t errlen) HK_MUST_CHECK;

#endif
