/*
 * main.c: the entry point. Parses the command line, loads and checks the
 * whole configuration (exit 2 on any error, before anything is created),
 * then serves or runs an operator command.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "log.h"

int main(int argc, char **argv)
{
    hk_cli cli;
    int rc = hk_cli_parse(argc, argv, &cli);
    if (rc == HK_CLI_DONE)
        return 0;
    if (rc != HK_CLI_RUN)
        return 2;

    hk_config cfg;
    char err[1024];
    const char *config_path = cli.config_path;
    hk_config_defaults(&cfg);
    if (config_path == NULL && access("conf/hookd.conf", R_OK) == 0)
        config_path = "conf/hookd.conf";
    rc = hk_config_load(&cfg, config_path, err, sizeof(err));
    if (rc == 0 && cli.listen != NULL && (rc = hk_config_set(&cfg, "server", "listen", cli.listen, err, sizeof(err))))
        fprintf(stderr, "hookd: --listen: %s\n", err);
    else if (rc == 0 && cli.data_dir != NULL &&
             (rc = hk_config_set(&cfg, "store", "data_dir", cli.data_dir, err, sizeof(err))))
        fprintf(stderr, "hookd: --data: %s\n", err);
    else if (rc != 0)
        fprintf(stderr, "hookd: configuration error: %s\n", err);
    if (rc != 0) {
        hk_config_free(&cfg);
        return 2;
    }
    hk_log_set_level((enum hk_log_level)hk_log_parse_level(cfg.log_level));
    hk_log_set_format((enum hk_log_format)hk_log_parse_format(cfg.log_format));

    int exit_code;
    if (hk_cli_is_serve(&cli)) {
        if (config_path != NULL)
            hk_info("configuration from %s", config_path);
        exit_code = hk_app_run(&cfg);
    } else {
        exit_code = hk_cli_run(&cli, &cfg);
    }
    hk_config_free(&cfg);
    return exit_code;
}
