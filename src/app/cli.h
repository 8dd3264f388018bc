/*
 * cli.h: the command line. hk_cli_parse reads argv (global options, the
 * command and its options) and answers --help without touching anything;
 * hk_cli_run runs an operator command (users, keys, webhooks and their
 * attempt logs, nodes, accounts, backups) against the store named by the
 * configuration. `serve` is parsed
 * here and run by the app.
 */
#ifndef HK_CLI_H
#define HK_CLI_H

#include <stdbool.h>

#include "config.h"

/** Options a command may take (indexes into hk_cli.opt). */
enum hk_cli_opt {
    HK_CLI_CODE,     /**< --code CODE */
    HK_CLI_NAME,     /**< --name NAME */
    HK_CLI_PERM,     /**< --perm PERM[,PERM] */
    HK_CLI_TOP_NODE, /**< --top-node N */
    HK_CLI_USER,     /**< --user CODE */
    HK_CLI_ID,       /**< --id N */
    HK_CLI_PARENT,   /**< --parent P */
    HK_CLI_NODE,     /**< --node N */
    HK_CLI_SINCE,    /**< --since T */
    HK_CLI_UNTIL,    /**< --until T */
    HK_CLI_LIMIT,    /**< --limit N */
    HK_CLI__NOPTS
};

/** A parsed command line. Every string points into the argv it came from. */
typedef struct hk_cli {
    int command;                    /**< index of the command in cli.c's table */
    const char *config_path;        /**< --config FILE, or NULL */
    const char *listen;             /**< --listen HOST:PORT, or NULL */
    const char *data_dir;           /**< --data DIR, or NULL */
    const char *opt[HK_CLI__NOPTS]; /**< the command's options, NULL when not given */
    const char *arg;                /**< the command's one argument (ID, LOG-ID, KEY, FILE), or NULL */
} hk_cli;

/** hk_cli_parse's result: run the command. */
#define HK_CLI_RUN 0
/** hk_cli_parse's result: help or the version was printed to stdout; exit 0. */
#define HK_CLI_DONE 1
/** hk_cli_parse's result: a usage error, named in one line on stderr; exit 2. */
#define HK_CLI_USAGE 2

/**
 * Parses `hookd ARGS...` (argv[0] is the program). Global options (--config,
 * --listen, --data) may stand anywhere. --help (or -h, or `help` as the
 * first word) prints the help of what precedes or follows it and returns
 * HK_CLI_DONE without reading the configuration. A missing, unknown or
 * repeated option, a missing or extra argument is named in one line.
 */
int hk_cli_parse(int argc, char **argv, hk_cli *out) HK_MUST_CHECK;

/** True when the parsed command is `serve`. */
bool hk_cli_is_serve(const hk_cli *c);

/**
 * Runs a parsed operator command (not serve) against the store named by
 * cfg. Commands that only read, or that change what must already exist,
 * never create the data directory. Returns the process exit code: 0, 1 when
 * the command failed, 2 for a bad value (named in one line).
 */
int hk_cli_run(const hk_cli *c, const hk_config *cfg);

#endif
