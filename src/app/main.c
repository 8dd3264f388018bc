/* main.c: command line entry; everything else lives in its module. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app.h"
#include "cli.h"
#include "config.h"
#include "log.h"

static void usage(FILE *f)
{
    fputs("usage: hookd COMMAND [options]\n"
          "\n"
          "  serve [--config FILE] [--listen HOST:PORT] [--data DIR]\n"
          "        run the server (defaults: conf/hookd.conf if present, 127.0.0.1:8080, ./data)\n"
          "  user add --code CODE --name NAME --perm PERM[,PERM] [--top-node N]\n"
          "  user set --code CODE [--name NAME] [--perm PERM[,PERM]] [--top-node N]\n"
          "  user list\n"
          "  key create --user CODE          prints the new key once\n"
          "  key revoke KEY|KEY-ID\n"
          "  key list\n"
          "  webhook lock ID | webhook unlock ID\n"
          "  node add --id N --name NAME [--parent P]\n"
          "  node import FILE.csv              rows id,parent,name (parent empty or 0: a root)\n"
          "  node list\n"
          "  account add --id N --node N --name NAME\n"
          "  account import FILE.csv           rows id,node,name\n"
          "  account list\n"
          "  version\n"
          "\n"
          "Every command takes --config FILE and --data DIR. Permissions: ApplicationSettings:View,\n"
          "ApplicationSettings:Manage, Accounts:Edit, Events:Signal, Webhooks:Execute, or all.\n"
          "An import runs in one transaction: on any error nothing is stored and the line is named.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("hookd %s\n", HK_VERSION);
        return 0;
    }

    /* Options shared by every command are pulled out here; the rest is the command's. */
    const char *config_path = NULL, *listen = NULL, *data = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0)
            slot = &config_path;
        else if (strcmp(a, "--listen") == 0 || strcmp(a, "-l") == 0)
            slot = &listen;
        else if (strcmp(a, "--data") == 0 || strcmp(a, "-d") == 0)
            slot = &data;
        if (slot != NULL) {
            if (i + 1 >= argc) {
                fprintf(stderr, "hookd: %s needs a value\n", a);
                free(rest);
                return 2;
            }
            *slot = argv[++i];
            continue;
        }
        rest[nrest++] = argv[i];
    }

    hk_config cfg;
    char err[512];
    hk_config_defaults(&cfg);
    if (config_path == NULL && access("conf/hookd.conf", R_OK) == 0)
        config_path = "conf/hookd.conf";
    int rc = hk_config_load(&cfg, config_path, err, sizeof(err));
    if (rc == 0 && listen != NULL)
        rc = hk_config_set(&cfg, "server", "listen", listen, err, sizeof(err));
    if (rc == 0 && data != NULL)
        rc = hk_config_set(&cfg, "store", "data_dir", data, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "hookd: configuration error: %s\n", err);
        hk_config_free(&cfg);
        free(rest);
        return 2;
    }
    hk_log_set_level((enum hk_log_level)hk_log_parse_level(cfg.log_level));

    int exit_code;
    if (strcmp(rest[0], "serve") == 0) {
        if (nrest > 1) {
            fprintf(stderr, "hookd: serve: unexpected argument %s\n", rest[1]);
            exit_code = 2;
        } else {
            if (config_path != NULL)
                hk_info("configuration from %s", config_path);
            exit_code = hk_app_run(&cfg);
        }
    } else {
        exit_code = hk_cli_run(&cfg, nrest, rest);
        if (exit_code == 2)
            usage(stderr);
    }
    hk_config_free(&cfg);
    free(rest);
    return exit_code;
}
