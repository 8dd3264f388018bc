/*
 * cli.c: the command line and the operator commands that act on the store
 * directly (LMDB allows a second process beside a running server): users,
 * keys, webhook locks, and the node tree and accounts that scope custom
 * account actions; and `migrate`, which brings the cluster's PostgreSQL
 * schema up to date. The commands on webhooks' records, their attempt logs
 * and backups live in cli_webhook.c.
 *
 * One table describes every command: its options, which are required, its
 * argument, its help, and whether it may create the data directory. Parsing
 * and --help never touch the configuration or the store; a usage error is
 * one line on stderr and exit code 2.
 */
#include "cli.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "cli_int.h"
#include "log.h"
#include "pg_migrate.h"
#include "store.h"

#define CLI_IMPORT_MAX (256u << 20) /* bytes of a CSV file imported at most */

/* ---- the commands ------------------------------------------------------------ */

/* An option's flag and the placeholder of its value in help texts. */
static const struct {
    const char *flag, *value;
} opt_names[HK_CLI__NOPTS] = {
    [HK_CLI_CODE] = {"--code", "CODE"},        [HK_CLI_NAME] = {"--name", "NAME"},
    [HK_CLI_PERM] = {"--perm", "PERM[,PERM]"}, [HK_CLI_TOP_NODE] = {"--top-node", "N"},
    [HK_CLI_USER] = {"--user", "CODE"},        [HK_CLI_ID] = {"--id", "N"},
    [HK_CLI_PARENT] = {"--parent", "P"},       [HK_CLI_NODE] = {"--node", "N"},
    [HK_CLI_SINCE] = {"--since", "T"},         [HK_CLI_UNTIL] = {"--until", "T"},
    [HK_CLI_LIMIT] = {"--limit", "N"},
};

#define BIT(o) (1u << (o))

typedef int (*cmd_fn)(struct ctx *x);

struct command {
    const char *noun, *verb; /* verb NULL: a command of one word (serve) */
    unsigned opts;           /* options it takes */
    unsigned required;       /* options it needs */
    const char *arg;         /* its one argument's placeholder; NULL: none */
    bool creates;            /* may create the data directory; false: it must exist */
    const char *synopsis;    /* the options as shown in help, after "hookd NOUN VERB" */
    const char *help;        /* what it does, in lines of "  " */
    cmd_fn run;
};

static int cmd_user_add(struct ctx *x);
static int cmd_user_set(struct ctx *x);
static int cmd_user_list(struct ctx *x);
static int cmd_key_create(struct ctx *x);
static int cmd_key_revoke(struct ctx *x);
static int cmd_key_list(struct ctx *x);
static int cmd_webhook_lock(struct ctx *x);
static int cmd_tree_add(struct ctx *x);
static int cmd_tree_import(struct ctx *x);
static int cmd_tree_list(struct ctx *x);
static int cmd_migrate(struct ctx *x);

#define SERVE 0 /* index of serve in the table */

static const struct command commands[] = {
    {"serve", NULL, 0, 0, NULL, true, "[--config FILE] [--listen HOST:PORT] [--data DIR]",
     "Runs the server (defaults: conf/hookd.conf if present, 127.0.0.1:8080, ./data).\n"
     "On the first start it creates the admin user and prints its key once.\n",
     NULL},
    {"user", "add", BIT(HK_CLI_CODE) | BIT(HK_CLI_NAME) | BIT(HK_CLI_PERM) | BIT(HK_CLI_TOP_NODE),
     BIT(HK_CLI_CODE) | BIT(HK_CLI_PERM), NULL, true, "--code CODE --perm PERM[,PERM] [--name NAME] [--top-node N]",
     "Creates a user (NAME defaults to CODE); prints its id.\n", cmd_user_add},
    {"user", "set", BIT(HK_CLI_CODE) | BIT(HK_CLI_NAME) | BIT(HK_CLI_PERM) | BIT(HK_CLI_TOP_NODE), BIT(HK_CLI_CODE),
     NULL, false, "--code CODE [--name NAME] [--perm PERM[,PERM]] [--top-node N]",
     "Changes what is given of a user (at least one of --name, --perm, --top-node).\n", cmd_user_set},
    {"user", "list", 0, 0, NULL, false, "", "Lists the users: id, code, name, permissions, top node.\n", cmd_user_list},
    {"key", "create", BIT(HK_CLI_USER), BIT(HK_CLI_USER), NULL, false, "--user CODE",
     "Creates an API key for a user and prints it once; only its hash is stored.\n", cmd_key_create},
    {"key", "revoke", 0, 0, "KEY|KEY-ID", false, "KEY|KEY-ID", "Revokes a key, given whole or by its id.\n",
     cmd_key_revoke},
    {"key", "list", 0, 0, NULL, false, "", "Lists the keys: id, user, active or revoked.\n", cmd_key_list},
    {"webhook", "lock", 0, 0, "ID", false, "ID",
     "Locks a webhook: PUT, PATCH and DELETE are refused and it is never disabled.\n", cmd_webhook_lock},
    {"webhook", "unlock", 0, 0, "ID", false, "ID", "Unlocks a webhook.\n", cmd_webhook_lock},
    {"webhook", "list", 0, 0, NULL, false, "", "Lists the webhooks: id, state, name, URL, events.\n",
     hk__cli_webhook_list},
    {"webhook", "show", 0, 0, "ID", false, "ID",
     "Prints a webhook as JSON, with its statistics and queue; secrets and custom header\n"
     "values show only their first characters.\n",
     hk__cli_webhook_show},
    {"webhook", "log", BIT(HK_CLI_LIMIT), 0, "ID", false, "ID [--limit N]",
     "Lists a webhook's attempt records, newest first (20 unless --limit says): log id,\n"
     "time, event name, event id, HTTP status (0: no response), error.\n",
     hk__cli_webhook_log},
    {"webhook", "resend", 0, 0, "LOG-ID", false, "LOG-ID",
     "Queues the event of an attempt record again for its webhook, with the same\n"
     "webhook-id (as POST .../log/{id}/resend). A running server sends it within a second.\n",
     hk__cli_webhook_resend},
    {"webhook", "recover", BIT(HK_CLI_SINCE) | BIT(HK_CLI_UNTIL), BIT(HK_CLI_SINCE), "ID", false,
     "ID --since T [--until T]",
     "Queues again, once each, the events whose delivery to the webhook ended failed\n"
     "between --since and --until (default: now) and has not succeeded since (as POST\n"
     ".../recover); prints how many. Dates: ISO 8601 (2026-11-22T10:00:00Z, or a bare\n"
     "date), UTC. A running server sends them within a second.\n",
     hk__cli_webhook_recover},
    {"backup", NULL, 0, 0, "FILE", false, "FILE",
     "Writes a hot, compacted copy of the store to the new directory FILE, usable as a\n"
     "data directory (--data FILE). Safe beside a running server; a crash never leaves\n"
     "part of a backup under FILE.\n",
     hk__cli_backup},
    {"node", "add", BIT(HK_CLI_ID) | BIT(HK_CLI_NAME) | BIT(HK_CLI_PARENT), BIT(HK_CLI_ID) | BIT(HK_CLI_NAME), NULL,
     true, "--id N --name NAME [--parent P]", "Adds or replaces a node of the tree (no --parent: a root).\n",
     cmd_tree_add},
    {"node", "import", 0, 0, "FILE.csv", true, "FILE.csv",
     "Imports rows id,parent,name (parent empty or 0: a root) in one transaction:\n"
     "on any error nothing is stored and the line is named.\n",
     cmd_tree_import},
    {"node", "list", 0, 0, NULL, false, "", "Lists the nodes: id, parent, name.\n", cmd_tree_list},
    {"account", "add", BIT(HK_CLI_ID) | BIT(HK_CLI_NODE) | BIT(HK_CLI_NAME),
     BIT(HK_CLI_ID) | BIT(HK_CLI_NODE) | BIT(HK_CLI_NAME), NULL, true, "--id N --node N --name NAME",
     "Adds or replaces an account under a node.\n", cmd_tree_add},
    {"account", "import", 0, 0, "FILE.csv", true, "FILE.csv",
     "Imports rows id,node,name in one transaction: on any error nothing is stored\n"
     "and the line is named.\n",
     cmd_tree_import},
    {"account", "list", 0, 0, NULL, false, "", "Lists the accounts: id, node, name.\n", cmd_tree_list},
    {"migrate", NULL, 0, 0, NULL, false, "[--config FILE]",
     "Creates or upgrades the schema of the cluster's PostgreSQL database ([cluster] postgres),\n"
     "one migration per transaction; safe while other nodes migrate too. A schema newer\n"
     "than this hookd knows is refused (exit 2).\n",
     cmd_migrate},
};

static void print_synopsis(FILE *f, const struct command *c)
{
    fprintf(f, "  hookd %s%s%s%s%s\n", c->noun, c->verb ? " " : "", c->verb ? c->verb : "", c->synopsis[0] ? " " : "",
            c->synopsis);
}

/* A command's help text, each line indented under its synopsis. */
static void print_help(FILE *f, const struct command *c)
{
    for (const char *p = c->help; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "    %.*s\n", (int)n, p);
        p += n + (nl != NULL);
    }
}

static void usage_all(FILE *f)
{
    fputs("usage: hookd COMMAND [options]\n\n", f);
    for (size_t i = 0; i < HK_ARRAY_SIZE(commands); i++)
        print_synopsis(f, &commands[i]);
    fputs("  hookd version\n"
          "\n"
          "Every command takes --config FILE and --data DIR; `hookd COMMAND --help` tells more.\n"
          "Permissions: ApplicationSettings:View, ApplicationSettings:Manage, Accounts:Edit,\n"
          "Events:Signal, Webhooks:Execute, Metrics:Read, or all.\n"
          "Exit codes: 0 done, 1 failed, 2 bad command line or configuration.\n",
          f);
}

/* Help for every command of a noun, or for one command. */
static void usage_noun(FILE *f, const char *noun)
{
    fputs("usage:\n", f);
    for (size_t i = 0; i < HK_ARRAY_SIZE(commands); i++) {
        if (strcmp(commands[i].noun, noun) != 0)
            continue;
        print_synopsis(f, &commands[i]);
        print_help(f, &commands[i]);
    }
    fputs("\nEvery command takes --config FILE and --data DIR.\n", f);
    if (strcmp(noun, "user") == 0)
        fputs("Permissions: ApplicationSettings:View, ApplicationSettings:Manage (implies View),\n"
              "Accounts:Edit, Events:Signal, Webhooks:Execute, Metrics:Read (GET /metrics), or all.\n",
              f);
}

static bool is_noun(const char *w)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].noun, w) == 0)
            return true;
    return false;
}

/* The verbs of a noun, "add, set, list", into buf. */
static const char *verbs_of(const char *noun, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < HK_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].noun, noun) == 0 && commands[i].verb != NULL && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", commands[i].verb);
    return buf;
}

static int find_command(const char *noun, const char *verb)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(commands); i++)
        if (strcmp(commands[i].noun, noun) == 0 &&
            (commands[i].verb == NULL || (verb != NULL && strcmp(commands[i].verb, verb) == 0)))
            return (int)i;
    return -1;
}

/* ---- parsing ----------------------------------------------------------------- */

static bool is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Prints help for the words given (a noun, a noun and a verb, or none). */
static int help_for(int nwords, char **words)
{
    if (nwords == 0) {
        usage_all(stdout);
        return HK_CLI_DONE;
    }
    if (!is_noun(words[0])) {
        fprintf(stderr, "hookd: unknown command \"%s\"; see hookd --help\n", words[0]);
        return HK_CLI_USAGE;
    }
    int i = nwords >= 2 ? find_command(words[0], words[1]) : -1;
    if (i < 0) {
        if (nwords >= 2 && find_command(words[0], NULL) < 0) {
            fprintf(stderr, "hookd: unknown command \"%s %s\"; see hookd %s --help\n", words[0], words[1], words[0]);
            return HK_CLI_USAGE;
        }
        usage_noun(stdout, words[0]);
        return HK_CLI_DONE;
    }
    fputs("usage:\n", stdout);
    print_synopsis(stdout, &commands[i]);
    print_help(stdout, &commands[i]);
    fputs("\nIt also takes --config FILE and --data DIR.\n", stdout);
    return HK_CLI_DONE;
}

/* "hookd user add" for messages. */
static const char *cmd_name(const struct command *c, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s", c->noun, c->verb ? " " : "", c->verb ? c->verb : "");
    return buf;
}

int hk_cli_parse(int argc, char **argv, hk_cli *out)
{
    memset(out, 0, sizeof(*out));
    out->command = -1;
    if (argc < 2) {
        usage_all(stderr);
        return HK_CLI_USAGE;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("hookd %s\n", HK_VERSION);
        return HK_CLI_DONE;
    }

    /* First pass: global options out, --help noted; what is left are the
     * command's words and options, in order. */
    char **rest = hk_calloc((size_t)argc, sizeof(char *));
    int nrest = 0, rc = HK_CLI_RUN;
    bool help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0)
            slot = &out->config_path;
        else if (strcmp(a, "--listen") == 0 || strcmp(a, "-l") == 0)
            slot = &out->listen;
        else if (strcmp(a, "--data") == 0 || strcmp(a, "-d") == 0)
            slot = &out->data_dir;
        if (slot != NULL) {
            if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
                fprintf(stderr, "hookd: %s needs a value\n", a);
                rc = HK_CLI_USAGE;
                goto done;
            }
            *slot = argv[++i];
        } else if (is_help(a) || (nrest == 0 && strcmp(a, "help") == 0)) {
            help = true;
        } else {
            rest[nrest++] = argv[i];
        }
    }

    if (help) {
        /* Help names only words, never options: "user add --code x --help". */
        int nwords = 0;
        while (nwords < nrest && nwords < 2 && rest[nwords][0] != '-')
            nwords++;
        rc = help_for(nwords, rest);
        goto done;
    }
    if (nrest == 0) {
        fprintf(stderr, "hookd: no command given; see hookd --help\n");
        rc = HK_CLI_USAGE;
        goto done;
    }
    if (!is_noun(rest[0])) {
        fprintf(stderr, "hookd: unknown command \"%s\"; see hookd --help\n", rest[0]);
        rc = HK_CLI_USAGE;
        goto done;
    }
    int ci = find_command(rest[0], nrest > 1 ? rest[1] : NULL);
    if (ci < 0) {
        char verbs[128];
        if (nrest < 2 || rest[1][0] == '-')
            fprintf(stderr, "hookd: %s needs one of: %s; see hookd %s --help\n", rest[0],
                    verbs_of(rest[0], verbs, sizeof(verbs)), rest[0]);
        else
            fprintf(stderr, "hookd: unknown command \"%s %s\"; %s takes one of: %s\n", rest[0], rest[1], rest[0],
                    verbs_of(rest[0], verbs, sizeof(verbs)));
        rc = HK_CLI_USAGE;
        goto done;
    }
    const struct command *c = &commands[ci];
    char name[64];
    cmd_name(c, name, sizeof(name));
    out->command = ci;

    bool only_args = false;
    for (int i = c->verb ? 2 : 1; i < nrest && rc == HK_CLI_RUN; i++) {
        const char *a = rest[i];
        if (!only_args && strcmp(a, "--") == 0) {
            only_args = true; /* what follows is an argument even if it starts with -- */
            continue;
        }
        /* Options start with "--"; a key id may start with one "-". */
        if (only_args || strncmp(a, "--", 2) != 0) {
            if (c->arg == NULL || out->arg != NULL) {
                fprintf(stderr, "hookd: %s: unexpected argument \"%s\"\n", name, a);
                rc = HK_CLI_USAGE;
            }
            out->arg = a;
            continue;
        }
        int o = -1;
        for (int k = 0; k < HK_CLI__NOPTS && o < 0; k++)
            if ((c->opts & BIT(k)) && strcmp(a, opt_names[k].flag) == 0)
                o = k;
        if (o < 0) {
            fprintf(stderr, "hookd: %s: unknown option %s; see hookd %s --help\n", name, a, name);
            rc = HK_CLI_USAGE;
        } else if (i + 1 >= nrest || strncmp(rest[i + 1], "--", 2) == 0) {
            fprintf(stderr, "hookd: %s: %s needs a value (%s)\n", name, a, opt_names[o].value);
            rc = HK_CLI_USAGE;
        } else if (out->opt[o] != NULL) {
            fprintf(stderr, "hookd: %s: %s given twice\n", name, a);
            rc = HK_CLI_USAGE;
        } else {
            out->opt[o] = rest[++i];
        }
    }
    if (rc != HK_CLI_RUN)
        goto done;

    /* What is missing, all of it in one line. */
    char missing[256] = "";
    size_t n = 0;
    for (int k = 0; k < HK_CLI__NOPTS; k++)
        if ((c->required & BIT(k)) && out->opt[k] == NULL && n < sizeof(missing))
            n += (size_t)snprintf(missing + n, sizeof(missing) - n, "%s%s %s", n ? ", " : "", opt_names[k].flag,
                                  opt_names[k].value);
    if (c->arg != NULL && out->arg == NULL && n < sizeof(missing))
        n += (size_t)snprintf(missing + n, sizeof(missing) - n, "%s%s", n ? ", " : "", c->arg);
    if (n > 0) {
        fprintf(stderr, "hookd: %s needs %s; see hookd %s --help\n", name, missing, name);
        rc = HK_CLI_USAGE;
    } else if (c->run == cmd_user_set && out->opt[HK_CLI_NAME] == NULL && out->opt[HK_CLI_PERM] == NULL &&
               out->opt[HK_CLI_TOP_NODE] == NULL) {
        fprintf(stderr, "hookd: user set needs one of --name, --perm, --top-node\n");
        rc = HK_CLI_USAGE;
    }
done:
    free(rest);
    return rc;
}

bool hk_cli_is_serve(const hk_cli *c)
{
    return c->command == SERVE;
}

/* ---- running: the store, opened when the command's values are good ------------- */

/* Opens the store; a command that may not create it fails when the data directory is missing. */
static int open_store(struct ctx *x)
{
    struct stat st;
    if (x->cfg->cluster_postgres[0] != '\0') {
        /* Cluster mode: the cluster's database, whose schema `hookd migrate` (or a node) brought up to date. */
        char err[512] = "";
        hk_store_opts o = {
            .postgres = x->cfg->cluster_postgres, .max_batch = x->cfg->max_batch, .err = err, .errlen = sizeof(err)};
        int rc = hk_store_open(&x->store, NULL, &o);
        if (rc != 0) {
            /* One line: why (a schema to migrate, a database that does not answer, ...). */
            fprintf(stderr, "hookd: cannot open the cluster's database: %s\n", err[0] ? err : hk_strerror(rc));
            x->store = NULL;
            return 1;
        }
        return 0;
    }
    if (!x->cmd->creates && stat(x->cfg->data_dir, &st) != 0) {
        fprintf(stderr, "hookd: no data directory at %s: %s (nothing stored yet, or another --data?)\n",
                x->cfg->data_dir, strerror(errno));
        return 1;
    }
    hk_store_opts o = {.data_dir = x->cfg->data_dir, .map_size = x->cfg->map_size, .max_batch = x->cfg->max_batch};
    int rc = hk_store_open(&x->store, NULL, &o);
    if (rc != 0) {
        fprintf(stderr, "hookd: cannot open the store in %s: %s\n", x->cfg->data_dir, hk_strerror(rc));
        x->store = NULL;
        return 1;
    }
    return 0;
}

/* Applies one op in its own transaction, stamped with the current time. */
static int apply(struct ctx *x, hk_op *op)
{
    op->now_ms = hk_now_ms();
    return hk_store_apply(x->store, op);
}

/* Parses a u32 option; prints why and returns false when it is not one (zero_ok allows 0). */
static bool opt_id(const char *what, const char *s, bool zero_ok, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (s == NULL || *s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX || (v == 0 && !zero_ok)) {
        fprintf(stderr, "hookd: %s must be a %s integer, got \"%s\"\n", what, zero_ok ? "non-negative" : "positive",
                s ? s : "");
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* A failed query of a listing: said, and the exit code. */
static int list_failed(const char *what, int rc)
{
    fprintf(stderr, "hookd: cannot list %s: %s\n", what, hk_strerror(rc));
    return 1;
}

/* ---- users and keys ------------------------------------------------------------- */

static int cmd_user_add(struct ctx *x)
{
    const char *code = x->cli->opt[HK_CLI_CODE], *name = x->cli->opt[HK_CLI_NAME];
    const char *perm = x->cli->opt[HK_CLI_PERM], *top = x->cli->opt[HK_CLI_TOP_NODE];
    hk_op op = {.type = HK_OP_USER_PUT};
    hk_user *u = &op.u.user_put.user;
    char bad[128];
    if (strlen(code) == 0 || strlen(code) > HK_USER_CODE_MAX || strchr(code, ':') != NULL) {
        fprintf(stderr, "hookd: --code must be 1..%d characters without ':'\n", HK_USER_CODE_MAX);
        return 2;
    }
    if (name != NULL && strlen(name) > HK_USER_NAME_MAX) {
        fprintf(stderr, "hookd: --name must be at most %d bytes\n", HK_USER_NAME_MAX);
        return 2;
    }
    if (hk_perm_parse(perm, &u->perms, bad, sizeof(bad)) != 0) {
        fprintf(stderr, "hookd: unknown permission \"%s\"\n", bad);
        return 2;
    }
    if (top != NULL && !opt_id("--top-node", top, true, &u->top_node))
        return 2;
    snprintf(u->code, sizeof(u->code), "%s", code);
    snprintf(u->full_name, sizeof(u->full_name), "%s", name ? name : code);
    if (open_store(x) != 0)
        return 1;
    int rc = apply(x, &op);
    if (rc == HK_EEXIST) {
        fprintf(stderr, "hookd: a user with code %s exists\n", code);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "hookd: user add failed: %s\n", hk_strerror(rc));
        return 1;
    }
    printf("%u\n", op.u.user_put.id);
    return 0;
}

/* Changes only what was given; the rest of the user stays as it is. */
static int cmd_user_set(struct ctx *x)
{
    const char *code = x->cli->opt[HK_CLI_CODE], *name = x->cli->opt[HK_CLI_NAME];
    const char *perm = x->cli->opt[HK_CLI_PERM], *top = x->cli->opt[HK_CLI_TOP_NODE];
    uint32_t node = 0;
    unsigned perms = 0;
    char bad[128];
    if (name != NULL && strlen(name) > HK_USER_NAME_MAX) {
        fprintf(stderr, "hookd: --name must be at most %d bytes\n", HK_USER_NAME_MAX);
        return 2;
    }
    if (perm != NULL && hk_perm_parse(perm, &perms, bad, sizeof(bad)) != 0) {
        fprintf(stderr, "hookd: unknown permission \"%s\"\n", bad);
        return 2;
    }
    if (top != NULL && !opt_id("--top-node", top, true, &node))
        return 2;
    if (open_store(x) != 0)
        return 1;
    hk_op op = {.type = HK_OP_USER_PUT};
    hk_user *u = &op.u.user_put.user;
    int rc = hk_store_user_by_code(x->store, code, u);
    if (rc == 0) {
        if (name != NULL)
            snprintf(u->full_name, sizeof(u->full_name), "%s", name);
        if (perm != NULL)
            u->perms = perms;
        if (top != NULL)
            u->top_node = node;
        rc = apply(x, &op);
    }
    if (rc != 0) {
        fprintf(stderr, "hookd: user set failed: %s\n", rc == HK_ENOTFOUND ? "no such user" : hk_strerror(rc));
        return 1;
    }
    printf("%u\n", op.u.user_put.id);
    return 0;
}

static int print_user(const hk_user *u, void *arg)
{
    (void)arg;
    char perms[256];
    hk_perm_format(u->perms, perms, sizeof(perms));
    printf("%u\t%s\t%s\t%s\ttop-node=%u\n", u->id, u->code, u->full_name, perms, u->top_node);
    return 0;
}

static int cmd_user_list(struct ctx *x)
{
    if (open_store(x) != 0)
        return 1;
    int rc = hk_store_users_each(x->store, print_user, NULL);
    return rc == 0 ? 0 : list_failed("users", rc);
}

static int cmd_key_create(struct ctx *x)
{
    const char *code = x->cli->opt[HK_CLI_USER];
    if (open_store(x) != 0)
        return 1;
    hk_user u;
    hk_op op = {.type = HK_OP_KEY_PUT};
    char text[HK_KEY_TEXT_LEN];
    int rc = hk_store_user_by_code(x->store, code, &u);
    if (rc == 0) {
        hk_key_make(&op.u.key_put.key, u.id, NULL, hk_now_ms(), text);
        rc = apply(x, &op);
    }
    if (rc != 0) {
        fprintf(stderr, "hookd: key create failed: %s\n", rc == HK_ENOTFOUND ? "no such user" : hk_strerror(rc));
        return 1;
    }
    fprintf(stderr, "key id %s for user %s (the key is shown only now)\n", op.u.key_put.key.short_id, u.code);
    printf("%s\n", text);
    return 0;
}

/* Revokes the key whose text is arg or, failing that, whose short id is arg. */
static int cmd_key_revoke(struct ctx *x)
{
    const char *arg = x->cli->arg;
    if (open_store(x) != 0)
        return 1;
    hk_op op = {.type = HK_OP_KEY_REVOKE};
    hk_key_hash(arg, strlen(arg), op.u.key_revoke.hash);
    int rc = apply(x, &op);
    if (rc == HK_ENOTFOUND && strlen(arg) == sizeof(op.u.key_revoke.short_id) - 1) {
        memset(&op, 0, sizeof(op));
        op.type = HK_OP_KEY_REVOKE;
        snprintf(op.u.key_revoke.short_id, sizeof(op.u.key_revoke.short_id), "%s", arg);
        rc = apply(x, &op);
    }
    if (rc != 0) {
        /* A short id that several keys share: the op says which and why. */
        fprintf(stderr, "hookd: key revoke failed: %s\n",
                rc == HK_ENOTFOUND                                     ? "no such key"
                : rc == HK_ECONFLICT && op.u.key_revoke.err[0] != '\0' ? op.u.key_revoke.err
                                                                       : hk_strerror(rc));
        return 1;
    }
    printf("revoked\n");
    return 0;
}

static int print_key(const hk_key *k, void *arg)
{
    hk_store *s = arg;
    hk_user u;
    if (hk_store_user_get(s, k->user_id, &u) != 0)
        snprintf(u.code, sizeof(u.code), "?");
    printf("%s\t%s\t%s\n", k->short_id, u.code, k->revoked ? "revoked" : "active");
    return 0;
}

static int cmd_key_list(struct ctx *x)
{
    if (open_store(x) != 0)
        return 1;
    int rc = hk_store_keys_each(x->store, 0, print_key, x->store);
    return rc == 0 ? 0 : list_failed("keys", rc);
}

/* ---- webhooks --------------------------------------------------------------------- */

static int cmd_webhook_lock(struct ctx *x)
{
    const char *verb = x->cmd->verb;
    hk_op op = {.type = HK_OP_WEBHOOK_LOCK};
    op.u.webhook_lock.locked = strcmp(verb, "lock") == 0;
    if (!opt_id("the webhook id", x->cli->arg, false, &op.u.webhook_lock.id))
        return 2;
    if (open_store(x) != 0)
        return 1;
    int rc = apply(x, &op);
    if (rc != 0) {
        fprintf(stderr, "hookd: webhook %s failed: %s\n", verb,
                rc == HK_ENOTFOUND ? "no such webhook" : hk_strerror(rc));
        return 1;
    }
    printf("webhook %u %s\n", op.u.webhook_lock.id, op.u.webhook_lock.locked ? "locked" : "unlocked");
    return 0;
}

/* ---- nodes and accounts ------------------------------------------------------------ */

static int cmd_tree_add(struct ctx *x)
{
    const char *const *o = x->cli->opt;
    bool is_node = strcmp(x->cmd->noun, "node") == 0;
    const char *noun = x->cmd->noun, *name = o[HK_CLI_NAME];
    hk_op op = {.type = is_node ? HK_OP_NODE_PUT : HK_OP_ACCOUNT_PUT};
    if (strlen(name) == 0 || strlen(name) > HK_NODE_NAME_MAX) {
        fprintf(stderr, "hookd: --name must be 1..%d bytes\n", HK_NODE_NAME_MAX);
        return 2;
    }
    if (is_node) {
        hk_node *n = &op.u.node_put.node;
        if (!opt_id("--id", o[HK_CLI_ID], false, &n->id) ||
            (o[HK_CLI_PARENT] != NULL && !opt_id("--parent", o[HK_CLI_PARENT], true, &n->parent)))
            return 2;
        snprintf(n->name, sizeof(n->name), "%s", name);
    } else {
        hk_account *a = &op.u.account_put.account;
        if (!opt_id("--id", o[HK_CLI_ID], false, &a->id) || !opt_id("--node", o[HK_CLI_NODE], false, &a->node))
            return 2;
        snprintf(a->name, sizeof(a->name), "%s", name);
    }
    if (open_store(x) != 0)
        return 1;
    int rc = apply(x, &op);
    if (rc != 0) {
        const char *why = is_node ? op.u.node_put.err : op.u.account_put.err;
        fprintf(stderr, "hookd: %s add failed: %s\n", noun, rc == HK_EINVAL && why[0] ? why : hk_strerror(rc));
        return 1;
    }
    printf("%s %s stored\n", noun, o[HK_CLI_ID]);
    return 0;
}

/* Reads a whole file; NULL (message printed) when it cannot or it is larger than max. */
static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "hookd: cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *buf = hk_malloc(cap);
    for (;;) {
        if (n == cap) {
            if (cap >= max) {
                fprintf(stderr, "hookd: %s is larger than %zu bytes\n", path, max);
                free(buf);
                fclose(f);
                return NULL;
            }
            cap *= 2;
            buf = hk_realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "hookd: cannot read %s\n", path);
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int cmd_tree_import(struct ctx *x)
{
    bool is_node = strcmp(x->cmd->noun, "node") == 0;
    const char *path = x->cli->arg;
    hk_op op = {.type = HK_OP_TREE_IMPORT};
    hk_op_tree_import *im = &op.u.tree_import;
    im->accounts = !is_node;
    /* Read before opening: a file that is not there creates nothing. */
    char *text = read_file(path, CLI_IMPORT_MAX, &im->len);
    if (text == NULL)
        return 1;
    im->text = text;
    if (open_store(x) != 0) {
        free(text);
        return 1;
    }
    int rc = apply(x, &op);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "hookd: import of %s failed, nothing was imported: %s\n", path,
                rc == HK_EINVAL && im->err[0] ? im->err : hk_strerror(rc));
        return 1;
    }
    printf("imported %zu %s from %s\n", im->count, is_node ? "nodes" : "accounts", path);
    return 0;
}

static int print_node(const hk_node *n, void *arg)
{
    (void)arg;
    printf("%u\tparent=%u\t%s\n", n->id, n->parent, n->name);
    return 0;
}

static int print_account(const hk_account *a, void *arg)
{
    (void)arg;
    printf("%u\tnode=%u\t%s\n", a->id, a->node, a->name);
    return 0;
}

static int cmd_tree_list(struct ctx *x)
{
    bool is_node = strcmp(x->cmd->noun, "node") == 0;
    if (open_store(x) != 0)
        return 1;
    int rc = is_node ? hk_store_nodes_each(x->store, print_node, NULL)
                     : hk_store_accounts_each(x->store, print_account, NULL);
    return rc == 0 ? 0 : list_failed(is_node ? "nodes" : "accounts", rc);
}

/* ---- the cluster's schema ------------------------------------------------------- */

static int cmd_migrate(struct ctx *x)
{
    hk_pg_schema_state st;
    char err[1024];
    if (x->cfg->cluster_postgres[0] == '\0') {
        fprintf(stderr,
                "hookd: migrate needs [cluster] postgres (or HOOKD_CLUSTER_POSTGRES): the database to migrate\n");
        return 2;
    }
    int rc = hk_pg_migrate(x->cfg->cluster_postgres, true, &st, err, sizeof(err));
    if (rc == HK_EFORMAT || rc == HK_ECONFLICT) { /* a newer schema (an older one is migrated) */
        fprintf(stderr, "hookd: migrate: %s\n", err);
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "hookd: migrate failed: %s\n", err);
        return 1;
    }
    /* Another node migrating at the same time may have applied some of them. */
    if (st.applied == 0)
        printf("schema is at version %d: nothing to do\n", st.known);
    else
        printf("schema is at version %d: %d migration%s applied\n", st.known, st.applied, st.applied == 1 ? "" : "s");
    return 0;
}

int hk_cli_run(const hk_cli *c, const hk_config *cfg)
{
    if (c->command <= SERVE || (size_t)c->command >= HK_ARRAY_SIZE(commands))
        return 2;
    struct ctx x = {c, &commands[c->command], cfg, NULL};
    /* A command writes its own output and one-line errors; the engines' debug
     * lines (a connection's life) are a server's diagnosis, not a command's. */
    if (hk_log_enabled(HK_LOG_DEBUG))
        hk_log_set_level(HK_LOG_INFO);
    int exit_code = x.cmd->run(&x);
    hk_store_close(x.store);
    return exit_code;
}

/* ---- for the commands of cli_webhook.c ------------------------------------------ */

int hk__cli_open_store(struct ctx *x)
{
    return open_store(x);
}

int hk__cli_apply(struct ctx *x, hk_op *op)
{
    return apply(x, op);
}

bool hk__cli_opt_id(const char *what, const char *s, bool zero_ok, uint32_t *out)
{
    return opt_id(what, s, zero_ok, out);
}
