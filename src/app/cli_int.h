/*
 * cli_int.h: what the CLI's files share (internal to src/app). cli.c holds
 * the one command table, parsing, help and the commands on users, keys,
 * locks, nodes and accounts; cli_webhook.c the commands on webhooks, their
 * attempt logs and backups, run through the helpers declared here.
 */
#ifndef HK_CLI_INT_H
#define HK_CLI_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "cli.h"
#include "config.h"
#include "store.h"

struct command;

/** A command being run. */
struct ctx {
    const hk_cli *cli;         /**< the parsed command line (borrowed) */
    const struct command *cmd; /**< its entry in cli.c's table */
    const hk_config *cfg;      /**< the configuration (borrowed) */
    hk_store *store;           /**< NULL until hk__cli_open_store; hk_cli_run closes it */
};

/**
 * Opens the store into x->store; a command that may not create the data
 * directory fails (said on stderr) when it is missing. Returns 0 or the
 * exit code 1.
 */
int hk__cli_open_store(struct ctx *x);

/** Applies one op in its own transaction, stamped with the current time; 0 or the op's error. */
int hk__cli_apply(struct ctx *x, hk_op *op);

/** Parses s as a u32 named what (zero_ok allows 0) into *out; false, said on stderr, when it is not one. */
bool hk__cli_opt_id(const char *what, const char *s, bool zero_ok, uint32_t *out);

/* cli_webhook.c: each returns the process exit code. */
int hk__cli_webhook_list(struct ctx *x);
int hk__cli_webhook_show(struct ctx *x);
int hk__cli_webhook_log(struct ctx *x);
int hk__cli_webhook_resend(struct ctx *x);
int hk__cli_webhook_recover(struct ctx *x);
int hk__cli_backup(struct ctx *x);

#endif
