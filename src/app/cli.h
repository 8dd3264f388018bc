/* cli.h: the operator commands besides serve (users, keys, webhooks, nodes, accounts). */
#ifndef HK_CLI_H
#define HK_CLI_H

#include "config.h"

/**
 * Runs `hookd NOUN VERB ...` (argv starts at the noun) against the store
 * named by cfg. Returns the process exit code; 2 for a usage error.
 */
int hk_cli_run(hk_config *cfg, int argc, char **argv);

#endif
