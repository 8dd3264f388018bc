/* cli.c: operator commands that act on the store directly (LMDB allows a
 * second process beside a running server): users, keys, webhook locks, and
 * the node tree and accounts that scope custom account actions. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "accounts.h"
#include "auth.h"
#include "log.h"
#include "kv.h"
#include "webhook.h"

#define CLI_IMPORT_MAX (256u << 20) /* bytes of a CSV file imported at most */

struct user_add {
    hk_user user;
    char key[HK_KEY_TEXT_LEN];
};

static int user_add_txn(hk_txn *txn, void *arg)
{
    struct user_add *ua = arg;
    return hk_user_create(txn, &ua->user);
}

struct user_set {
    const char *code, *name, *perm, *top;
    hk_user user;
};

/* Changes only what was given; the rest of the user stays as it is. */
static int user_set_txn(hk_txn *txn, void *arg)
{
    struct user_set *us = arg;
    int rc = hk_user_by_code(txn, us->code, &us->user);
    if (rc != 0)
        return rc;
    if (us->name != NULL)
        snprintf(us->user.full_name, sizeof(us->user.full_name), "%s", us->name);
    char bad[128];
    if (us->perm != NULL && hk_perm_parse(us->perm, &us->user.perms, bad, sizeof(bad)) != 0)
        return HK_EINVAL;
    if (us->top != NULL)
        us->user.top_node = (uint32_t)strtoul(us->top, NULL, 10);
    return hk_user_update(txn, &us->user);
}

struct key_create {
    const char *code;
    char key[HK_KEY_TEXT_LEN];
    char id[9];
    hk_user user;
};

static int key_create_txn(hk_txn *txn, void *arg)
{
    struct key_create *kc = arg;
    int rc = hk_user_by_code(txn, kc->code, &kc->user);
    if (rc != 0)
        return rc;
    return hk_key_create(txn, kc->user.id, NULL, kc->key, kc->id);
}

static int key_revoke_txn(hk_txn *txn, void *arg)
{
    return hk_key_revoke(txn, arg);
}

struct lock_req {
    uint32_t id;
    bool locked;
};

static int lock_txn(hk_txn *txn, void *arg)
{
    struct lock_req *l = arg;
    return hk_webhook_set_locked(txn, l->id, l->locked);
}

/* The options of a command; each NULL when not given. */
struct opts {
    const char *code, *name, *perm, *top, *user, *id, *parent, *node;
};

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct {
        const char *flag;
        size_t offset;
    } flags[] = {
        {"--code", offsetof(struct opts, code)},     {"--name", offsetof(struct opts, name)},
        {"--perm", offsetof(struct opts, perm)},     {"--top-node", offsetof(struct opts, top)},
        {"--user", offsetof(struct opts, user)},     {"--id", offsetof(struct opts, id)},
        {"--parent", offsetof(struct opts, parent)}, {"--node", offsetof(struct opts, node)},
    };
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL;
        for (size_t f = 0; f < HK_ARRAY_SIZE(flags) && slot == NULL; f++)
            if (strcmp(argv[i], flags[f].flag) == 0)
                slot = (const char **)((char *)o + flags[f].offset);
        if (slot == NULL || i + 1 >= argc) {
            fprintf(stderr, "hookd: unexpected argument %s\n", argv[i]);
            return -1;
        }
        *slot = argv[++i];
    }
    return 0;
}

/* Parses a positive u32 option; prints why and returns false when it is not one (zero_ok allows 0). */
static bool opt_id(const char *what, const char *s, bool zero_ok, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (s == NULL || *s < '0' || *s > '9' || *end != '\0' || errno != 0 || v > UINT32_MAX || (v == 0 && !zero_ok)) {
        fprintf(stderr, "hookd: %s must be a positive integer\n", what);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* ---- nodes and accounts ------------------------------------------------------ */

struct tree_add {
    bool is_node;
    hk_node node;
    hk_account account;
    char err[256];
};

static int tree_add_txn(hk_txn *txn, void *arg)
{
    struct tree_add *ta = arg;
    if (ta->is_node)
        return hk_node_put(txn, &ta->node, ta->err, sizeof(ta->err));
    return hk_account_put(txn, &ta->account, ta->err, sizeof(ta->err));
}

static int tree_add(hk_kv_env *store, bool is_node, const struct opts *o)
{
    struct tree_add ta;
    memset(&ta, 0, sizeof(ta));
    ta.is_node = is_node;
    const char *noun = is_node ? "node" : "account";
    if (o->id == NULL || o->name == NULL || (!is_node && o->node == NULL)) {
        fprintf(stderr, "hookd: %s add needs --id N --name NAME%s\n", noun, is_node ? " [--parent P]" : " --node N");
        return 2;
    }
    if (strlen(o->name) == 0 || strlen(o->name) > HK_NODE_NAME_MAX) {
        fprintf(stderr, "hookd: --name must be 1..%d bytes\n", HK_NODE_NAME_MAX);
        return 2;
    }
    if (is_node) {
        if (!opt_id("--id", o->id, false, &ta.node.id) ||
            (o->parent != NULL && !opt_id("--parent", o->parent, true, &ta.node.parent)))
            return 2;
        snprintf(ta.node.name, sizeof(ta.node.name), "%s", o->name);
    } else {
        if (!opt_id("--id", o->id, false, &ta.account.id) || !opt_id("--node", o->node, false, &ta.account.node))
            return 2;
        snprintf(ta.account.name, sizeof(ta.account.name), "%s", o->name);
    }
    int rc = hk_kv_write_sync(store, tree_add_txn, &ta);
    if (rc != 0) {
        fprintf(stderr, "hookd: %s add failed: %s\n", noun, rc == HK_EINVAL ? ta.err : hk_strerror(rc));
        return 1;
    }
    printf("%s %s stored\n", noun, o->id);
    return 0;
}

struct import {
    enum hk_import_kind kind;
    const char *text;
    size_t len, count;
    char err[512];
};

static int import_txn(hk_txn *txn, void *arg)
{
    struct import *im = arg;
    return hk_accounts_import(txn, im->kind, im->text, im->len, &im->count, im->err, sizeof(im->err));
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

static int tree_import(hk_kv_env *store, bool is_node, const char *path)
{
    struct import im;
    memset(&im, 0, sizeof(im));
    im.kind = is_node ? HK_IMPORT_NODES : HK_IMPORT_ACCOUNTS;
    char *text = read_file(path, CLI_IMPORT_MAX, &im.len);
    if (text == NULL)
        return 1;
    im.text = text;
    int rc = hk_kv_write_sync(store, import_txn, &im);
    free(text);
    if (rc != 0) {
        fprintf(stderr, "hookd: import of %s failed, nothing was imported: %s%s\n", path,
                rc == HK_EINVAL ? "" : hk_strerror(rc), rc == HK_EINVAL ? im.err : "");
        return 1;
    }
    printf("imported %zu %s from %s\n", im.count, is_node ? "nodes" : "accounts", path);
    return 0;
}

static int tree_list(hk_kv_env *store, bool is_node)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k, v;
    if (hk_kv_read(store, &txn) != 0)
        return 1;
    if (hk_cursor_open(txn, is_node ? HK_DB_NODES : HK_DB_ACCOUNTS, &c) != 0) {
        hk_txn_end(txn);
        return 1;
    }
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 4)
            continue;
        uint32_t id = hk_rd32(k.data);
        if (is_node) {
            hk_node n;
            if (hk_node_get(txn, id, &n) == 0)
                printf("%u\tparent=%u\t%s\n", n.id, n.parent, n.name);
        } else {
            hk_account a;
            if (hk_account_get(txn, id, &a) == 0)
                printf("%u\tnode=%u\t%s\n", a.id, a.node, a.name);
        }
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    return 0;
}

static int list_users(hk_kv_env *store)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k, v;
    if (hk_kv_read(store, &txn) != 0)
        return 1;
    if (hk_cursor_open(txn, HK_DB_USERS, &c) != 0) {
        hk_txn_end(txn);
        return 1;
    }
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        hk_user u;
        char perms[256];
        if (hk_user_get(txn, hk_rd32(k.data), &u) != 0)
            continue;
        hk_perm_format(u.perms, perms, sizeof(perms));
        printf("%u\t%s\t%s\t%s\ttop-node=%u\n", u.id, u.code, u.full_name, perms, u.top_node);
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    return 0;
}

static int list_keys(hk_kv_env *store)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k, v;
    if (hk_kv_read(store, &txn) != 0)
        return 1;
    if (hk_cursor_open(txn, HK_DB_KEYS, &c) != 0) {
        hk_txn_end(txn);
        return 1;
    }
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        hk_key key;
        if (k.len != 32 || hk_key_decode(v.data, v.len, k.data, &key) != 0)
            continue;
        hk_user u;
        if (hk_user_get(txn, key.user_id, &u) != 0)
            snprintf(u.code, sizeof(u.code), "?");
        printf("%s\t%s\t%s\n", key.short_id, u.code, key.revoked ? "revoked" : "active");
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    return 0;
}

int hk_cli_run(hk_config *cfg, int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *noun = argv[0], *verb = argv[1];
    struct opts o;
    memset(&o, 0, sizeof(o));
    bool is_tree = strcmp(noun, "node") == 0 || strcmp(noun, "account") == 0;
    bool is_user_add = strcmp(noun, "user") == 0 && strcmp(verb, "add") == 0;
    bool is_key_create = strcmp(noun, "key") == 0 && strcmp(verb, "create") == 0;
    bool takes_arg = (strcmp(noun, "key") == 0 && strcmp(verb, "revoke") == 0) || strcmp(noun, "webhook") == 0 ||
                     (is_tree && strcmp(verb, "import") == 0);
    if (takes_arg) {
        if (argc != 3)
            return 2;
    } else if (parse_opts(argc, argv, &o) != 0) {
        return 2;
    }

    hk_kv_env *store;
    if (hk_kv_open(&store, cfg->data_dir, cfg->map_size, cfg->max_batch, NULL) != 0)
        return 1;
    int rc, exit_code = 0;

    const char *code = o.code, *name = o.name, *perm = o.perm, *top = o.top, *user = o.user;
    if (is_user_add) {
        struct user_add ua;
        memset(&ua, 0, sizeof(ua));
        char bad[128];
        if (code == NULL || perm == NULL) {
            fprintf(stderr, "hookd: user add needs --code and --perm\n");
            exit_code = 2;
        } else if (strlen(code) == 0 || strlen(code) > HK_USER_CODE_MAX || strchr(code, ':') != NULL) {
            fprintf(stderr, "hookd: --code must be 1..%d characters without ':'\n", HK_USER_CODE_MAX);
            exit_code = 2;
        } else if (hk_perm_parse(perm, &ua.user.perms, bad, sizeof(bad)) != 0) {
            fprintf(stderr, "hookd: unknown permission \"%s\"\n", bad);
            exit_code = 2;
        } else if (top != NULL && !opt_id("--top-node", top, true, &ua.user.top_node)) {
            exit_code = 2;
        } else {
            snprintf(ua.user.code, sizeof(ua.user.code), "%s", code);
            snprintf(ua.user.full_name, sizeof(ua.user.full_name), "%s", name ? name : code);
            rc = hk_kv_write_sync(store, user_add_txn, &ua);
            if (rc == HK_EEXIST) {
                fprintf(stderr, "hookd: a user with code %s exists\n", code);
                exit_code = 1;
            } else if (rc != 0) {
                fprintf(stderr, "hookd: user add failed: %s\n", hk_strerror(rc));
                exit_code = 1;
            } else {
                printf("%u\n", ua.user.id);
            }
        }
    } else if (strcmp(noun, "user") == 0 && strcmp(verb, "set") == 0) {
        struct user_set us = {code, name, perm, top, {0}};
        uint32_t node;
        char bad[128];
        unsigned perms;
        if (code == NULL || (name == NULL && perm == NULL && top == NULL)) {
            fprintf(stderr, "hookd: user set needs --code and one of --name, --perm, --top-node\n");
            exit_code = 2;
        } else if (perm != NULL && hk_perm_parse(perm, &perms, bad, sizeof(bad)) != 0) {
            fprintf(stderr, "hookd: unknown permission \"%s\"\n", bad);
            exit_code = 2;
        } else if (top != NULL && !opt_id("--top-node", top, true, &node)) {
            exit_code = 2;
        } else if ((rc = hk_kv_write_sync(store, user_set_txn, &us)) != 0) {
            fprintf(stderr, "hookd: user set failed: %s\n", rc == HK_ENOTFOUND ? "no such user" : hk_strerror(rc));
            exit_code = 1;
        } else {
            printf("%u\n", us.user.id);
        }
    } else if (strcmp(noun, "user") == 0 && strcmp(verb, "list") == 0) {
        exit_code = list_users(store);
    } else if (is_key_create) {
        struct key_create kc;
        memset(&kc, 0, sizeof(kc));
        kc.code = user;
        if (user == NULL) {
            fprintf(stderr, "hookd: key create needs --user CODE\n");
            exit_code = 2;
        } else if ((rc = hk_kv_write_sync(store, key_create_txn, &kc)) != 0) {
            fprintf(stderr, "hookd: key create failed: %s\n", rc == HK_ENOTFOUND ? "no such user" : hk_strerror(rc));
            exit_code = 1;
        } else {
            fprintf(stderr, "key id %s for user %s (the key is shown only now)\n", kc.id, kc.user.code);
            printf("%s\n", kc.key);
        }
    } else if (strcmp(noun, "key") == 0 && strcmp(verb, "revoke") == 0) {
        rc = hk_kv_write_sync(store, key_revoke_txn, argv[2]);
        if (rc != 0) {
            fprintf(stderr, "hookd: key revoke failed: %s\n", rc == HK_ENOTFOUND ? "no such key" : hk_strerror(rc));
            exit_code = 1;
        } else {
            printf("revoked\n");
        }
    } else if (strcmp(noun, "key") == 0 && strcmp(verb, "list") == 0) {
        exit_code = list_keys(store);
    } else if (strcmp(noun, "webhook") == 0 && (strcmp(verb, "lock") == 0 || strcmp(verb, "unlock") == 0)) {
        char *end;
        unsigned long id = strtoul(argv[2], &end, 10);
        struct lock_req l = {(uint32_t)id, strcmp(verb, "lock") == 0};
        if (*end != '\0' || id == 0 || id > UINT32_MAX) {
            fprintf(stderr, "hookd: webhook id must be a positive integer\n");
            exit_code = 2;
        } else if ((rc = hk_kv_write_sync(store, lock_txn, &l)) != 0) {
            fprintf(stderr, "hookd: webhook %s failed: %s\n", verb,
                    rc == HK_ENOTFOUND ? "no such webhook" : hk_strerror(rc));
            exit_code = 1;
        } else {
            printf("webhook %lu %s\n", id, l.locked ? "locked" : "unlocked");
        }
    } else if (is_tree && strcmp(verb, "add") == 0) {
        exit_code = tree_add(store, strcmp(noun, "node") == 0, &o);
    } else if (is_tree && strcmp(verb, "import") == 0) {
        exit_code = tree_import(store, strcmp(noun, "node") == 0, argv[2]);
    } else if (is_tree && strcmp(verb, "list") == 0) {
        exit_code = tree_list(store, strcmp(noun, "node") == 0);
    } else {
        exit_code = 2;
    }
    hk_kv_close(store);
    return exit_code;
}
