/* Unit tests of the command line parser: global options anywhere, each command's options, usage errors. */
#include <stdio.h>

#include "cli.h"
#include "unit.h"

/* Parses a NULL-terminated list of words after "hookd". */
static int parse(hk_cli *c, const char *const *words)
{
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"hookd";
    for (; *words != NULL && argc < 31; words++)
        argv[argc++] = (char *)*words;
    argv[argc] = NULL;
    return hk_cli_parse(argc, argv, c);
}

#define PARSE(c, ...) parse(c, (const char *const[]){__VA_ARGS__, NULL})

static void test_commands_and_options(void)
{
    hk_cli c;
    CHECK_INT(PARSE(&c, "serve"), HK_CLI_RUN);
    CHECK(hk_cli_is_serve(&c));
    CHECK_INT(PARSE(&c, "--config", "a.conf", "serve", "--listen", "127.0.0.1:0", "-d", "dd"), HK_CLI_RUN);
    CHECK(hk_cli_is_serve(&c));
    CHECK_STR(c.config_path, "a.conf");
    CHECK_STR(c.listen, "127.0.0.1:0");
    CHECK_STR(c.data_dir, "dd");

    CHECK_INT(PARSE(&c, "user", "add", "--code", "ops", "--data", "d", "--perm", "all"), HK_CLI_RUN);
    CHECK(!hk_cli_is_serve(&c));
    CHECK_STR(c.opt[HK_CLI_CODE], "ops");
    CHECK_STR(c.opt[HK_CLI_PERM], "all");
    CHECK(c.opt[HK_CLI_NAME] == NULL && c.opt[HK_CLI_TOP_NODE] == NULL && c.arg == NULL);
    CHECK_STR(c.data_dir, "d");

    CHECK_INT(PARSE(&c, "key", "revoke", "-abcdefg"), HK_CLI_RUN);
    CHECK_STR(c.arg, "-abcdefg");
    CHECK_INT(PARSE(&c, "key", "revoke", "--", "--weird"), HK_CLI_RUN);
    CHECK_STR(c.arg, "--weird");
    CHECK_INT(PARSE(&c, "account", "add", "--id", "1", "--node", "2", "--name", "Boiler"), HK_CLI_RUN);
    CHECK_STR(c.opt[HK_CLI_NODE], "2");
    CHECK_INT(PARSE(&c, "webhook", "unlock", "7"), HK_CLI_RUN);
    CHECK_STR(c.arg, "7");
}

static void test_usage_errors(void)
{
    hk_cli c;
    CHECK_INT(hk_cli_parse(1, (char *[]){(char *)"hookd", NULL}, &c), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "--data", "d"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "--data"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "frob"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "frob"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "add", "--code", "x"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "add", "--code"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "add", "--code", "a", "--code", "b", "--perm", "all"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "add", "--code", "a", "--perm", "all", "--id", "3"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "set", "--code", "a"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "user", "list", "x"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "key", "revoke"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "key", "revoke", "a", "b"), HK_CLI_USAGE);
    CHECK_INT(PARSE(&c, "serve", "x"), HK_CLI_USAGE);
}

static void test_help_and_version(void)
{
    hk_cli c;
    /* Help goes to stdout; keep it out of the test's output. */
    fflush(stdout);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc[8];
    rc[0] = PARSE(&c, "--help");
    rc[1] = PARSE(&c, "help");
    rc[2] = PARSE(&c, "user", "--help");
    rc[3] = PARSE(&c, "user", "add", "-h");
    rc[4] = PARSE(&c, "help", "node", "import");
    rc[5] = PARSE(&c, "serve", "--help");
    rc[6] = PARSE(&c, "version");
    rc[7] = PARSE(&c, "--data", "d", "key", "list", "--user", "x", "--help");
    fclose(stdout);
    stdout = saved;
    for (int i = 0; i < 8; i++)
        CHECK_INT(rc[i], HK_CLI_DONE);
    CHECK_INT(PARSE(&c, "frob", "--help"), HK_CLI_USAGE);
}

int main(void)
{
    test_commands_and_options();
    test_usage_errors();
    test_help_and_version();
    return unit_done();
}
