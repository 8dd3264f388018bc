/*
 * pg_migrate.h: the PostgreSQL schema of cluster mode and its migrations.
 *
 * Each src/state/pg_schema/NNN_name.sql is migration NNN, built into the
 * binary (src/state/pg_schema.cmake). A database records the migrations
 * applied to it in the table hookd_schema (version, name, applied_at,
 * hookd_version). Each migration runs in its own transaction together with
 * its hookd_schema row, under a transaction-level advisory lock
 * (1752133483, 1): two nodes migrating at once apply each migration once,
 * the second waiting for the first and then finding it done. A migration
 * must therefore be transactional (no CREATE INDEX CONCURRENTLY).
 *
 * A node never runs against a schema newer than it knows: that database
 * was migrated by a newer hookd, whose data this one could misread.
 *
 * These calls block (libpq's synchronous API): they are for the command
 * line and for start-up before the loop runs, never for the loop.
 */
#ifndef HK_PG_MIGRATE_H
#define HK_PG_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/** One migration built into the binary. */
typedef struct hk_pg_migration {
    int version;              /**< NNN of its file: 1, 2, ... without gaps */
    const char *name;         /**< the file's name after NNN_, without .sql (static) */
    const unsigned char *sql; /**< its SQL text, not NUL-terminated (static) */
    const size_t *len;        /**< bytes in sql */
} hk_pg_migration;

/** The built-in migrations in version order (generated from src/state/pg_schema/). */
extern const hk_pg_migration hk_pg_migrations[];
/** Entries in hk_pg_migrations; also the schema version this binary knows. */
extern const size_t hk_pg_nmigrations;

/** What hk_pg_migrate found and did. */
typedef struct hk_pg_schema_state {
    int found;   /**< the version the database had (0: no hookd schema) */
    int known;   /**< the version this binary knows */
    int applied; /**< migrations this call applied */
} hk_pg_schema_state;

/**
 * Brings the schema of the database at conninfo (a libpq connection string
 * or URI) to the version this binary knows (apply), or only checks that it
 * is there (!apply). Blocks. 0 when the schema is at that version
 * afterwards. Otherwise a one-line reason is in err (never the conninfo,
 * which may hold a password) and:
 *  - HK_EFORMAT: the schema is newer than this binary knows (nothing was
 *    changed);
 *  - HK_ECONFLICT: without apply, the schema is older (or missing);
 *  - HK_ESTORE: the database cannot be reached, or a migration failed (its
 *    transaction is rolled back: migrations before it stay applied).
 * st (may be NULL) says what was found and done.
 */
int hk_pg_migrate(const char *conninfo, bool apply, hk_pg_schema_state *st, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * hk_pg_migrate with another list of migrations (n entries, versions 1..n
 * in order): for tests, which add a later or a failing migration.
 */
int hk_pg_migrate_list(const char *conninfo, const hk_pg_migration *list, size_t n, bool apply, hk_pg_schema_state *st,
                       char *err, size_t errlen) HK_MUST_CHECK;

#endif
