/*
 * pg_ops.h: a seam op (store.h) as one SQL statement and back (pg_ops.c),
 * for the PostgreSQL engine's group commit (pg_store.c). Internal to the
 * state layer's PostgreSQL engine.
 */
#ifndef HK_PG_OPS_H
#define HK_PG_OPS_H

#include "pg_conn.h"
#include "store.h"

/** Parameters of one op's statement at most. */
#define HK__PG_OP_PARAMS_MAX 28

/** An op as one statement: the SQL, its parameters and the memory they use. */
typedef struct hk__pg_op_stmt {
    hk_pg_stmt stmt;                          /**< what the batch sends; points into this struct and the op */
    const char *values[HK__PG_OP_PARAMS_MAX]; /**< parameter values: owned[i], or borrowed from the op */
    int lengths[HK__PG_OP_PARAMS_MAX];        /**< bytes of the binary ones */
    int formats[HK__PG_OP_PARAMS_MAX];        /**< 1 for binary */
    char *owned[HK__PG_OP_PARAMS_MAX];        /**< values made for the statement, freed by hk__pg_op_stmt_free */
} hk__pg_op_stmt;

/**
 * Writes op as one statement into *e (zeroed first) and resets op's out
 * fields. The statement borrows from op: op stays valid and unchanged until
 * the statement has run. 0; HK_EINVAL for an op that could never apply (a
 * webhook put without its webhook, an Idempotency-Key too long); UV_ENOSYS
 * for an op type the engine does not apply yet. Free *e with
 * hk__pg_op_stmt_free in every case.
 */
int hk__pg_op_encode(hk_op *op, hk__pg_op_stmt *e) HK_MUST_CHECK;

/** Frees what the statement owns; safe on a zeroed one. */
void hk__pg_op_stmt_free(hk__pg_op_stmt *e);

/**
 * Reads the result of op's statement (committed) into op's out fields and
 * returns op's status: 0, or the refusal the rules decided (HK_ENOTFOUND,
 * HK_ELOCKED, HK_EEXIST, HK_ECONFLICT), or HK_ESTORE for a result that
 * does not have the expected shape.
 */
int hk__pg_op_decode(hk_op *op, const struct pg_result *r) HK_MUST_CHECK;

/** One row of a tree import's CSV, checked. */
typedef struct hk__pg_tree_row {
    uint32_t id;   /**< the node's or account's id */
    uint32_t link; /**< its parent (0: a root) or its node */
    size_t line;   /**< where it began in the text */
    char *name;    /**< its name (owned) */
} hk__pg_tree_row;

/**
 * Reads a tree import's CSV (pg_import.c) into *rows (malloc'd, n in
 * *nrows; free with hk__pg_tree_rows_free) as the embedded engine reads
 * it. HK_EINVAL with "line N: reason" in err for a malformed text, a bad
 * field or a repeated id (nothing in *rows then).
 */
int hk__pg_tree_csv(bool nodes, const char *text, size_t len, hk__pg_tree_row **rows, size_t *nrows, char *err,
                    size_t errlen) HK_MUST_CHECK;

/** Frees rows from hk__pg_tree_csv; safe on NULL. */
void hk__pg_tree_rows_free(hk__pg_tree_row *rows, size_t n);

#endif
