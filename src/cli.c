/* cli.c: operator commands that act on the store directly (LMDB allows a
 * second process beside a running server). */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "store.h"
#include "webhook.h"

struct user_add {
    hk_user user;
    char key[HK_KEY_TEXT_LEN];
};

static int user_add_txn(hk_txn *txn, void *arg)
{
    struct user_add *ua = arg;
    return hk_user_create(txn, &ua->user);
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

static int parse_opts(int argc, char **argv, const char **code, const char **name, const char **perm, const char **top,
                      const char **user)
{
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL;
        if (strcmp(argv[i], "--code") == 0)
            slot = code;
        else if (strcmp(argv[i], "--name") == 0)
            slot = name;
        else if (strcmp(argv[i], "--perm") == 0)
            slot = perm;
        else if (strcmp(argv[i], "--top-node") == 0)
            slot = top;
        else if (strcmp(argv[i], "--user") == 0)
            slot = user;
        if (slot == NULL || i + 1 >= argc) {
            fprintf(stderr, "hookd: unexpected argument %s\n", argv[i]);
            return -1;
        }
        *slot = argv[++i];
    }
    return 0;
}

static int list_users(hk_store *store)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k, v;
    if (hk_store_read(store, &txn) != 0)
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

static int list_keys(hk_store *store)
{
    hk_txn *txn;
    hk_cursor *c;
    hk_val k, v;
    if (hk_store_read(store, &txn) != 0)
        return 1;
    if (hk_cursor_open(txn, HK_DB_KEYS, &c) != 0) {
        hk_txn_end(txn);
        return 1;
    }
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        const uint8_t *rec = v.data;
        if (v.len < 21)
            continue;
        hk_user u;
        if (hk_user_get(txn, hk_rd32(rec), &u) != 0)
            snprintf(u.code, sizeof(u.code), "?");
        printf("%.8s\t%s\t%s\n", (const char *)rec + 13, u.code, rec[12] ? "revoked" : "active");
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
    const char *code = NULL, *name = NULL, *perm = NULL, *top = NULL, *user = NULL;
    bool is_user_add = strcmp(noun, "user") == 0 && strcmp(verb, "add") == 0;
    bool is_key_create = strcmp(noun, "key") == 0 && strcmp(verb, "create") == 0;
    bool takes_arg = (strcmp(noun, "key") == 0 && strcmp(verb, "revoke") == 0) || strcmp(noun, "webhook") == 0;
    if (takes_arg) {
        if (argc != 3)
            return 2;
    } else if (parse_opts(argc, argv, &code, &name, &perm, &top, &user) != 0) {
        return 2;
    }

    hk_store *store;
    if (hk_store_open(&store, cfg->data_dir, cfg->map_size, cfg->max_batch, NULL) != 0)
        return 1;
    int rc, exit_code = 0;

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
        } else {
            snprintf(ua.user.code, sizeof(ua.user.code), "%s", code);
            snprintf(ua.user.full_name, sizeof(ua.user.full_name), "%s", name ? name : code);
            ua.user.top_node = top ? (uint32_t)strtoul(top, NULL, 10) : 0;
            rc = hk_store_write_sync(store, user_add_txn, &ua);
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
    } else if (strcmp(noun, "user") == 0 && strcmp(verb, "list") == 0) {
        exit_code = list_users(store);
    } else if (is_key_create) {
        struct key_create kc;
        memset(&kc, 0, sizeof(kc));
        kc.code = user;
        if (user == NULL) {
            fprintf(stderr, "hookd: key create needs --user CODE\n");
            exit_code = 2;
        } else if ((rc = hk_store_write_sync(store, key_create_txn, &kc)) != 0) {
            fprintf(stderr, "hookd: key create failed: %s\n", rc == HK_ENOTFOUND ? "no such user" : hk_strerror(rc));
            exit_code = 1;
        } else {
            fprintf(stderr, "key id %s for user %s (the key is shown only now)\n", kc.id, kc.user.code);
            printf("%s\n", kc.key);
        }
    } else if (strcmp(noun, "key") == 0 && strcmp(verb, "revoke") == 0) {
        rc = hk_store_write_sync(store, key_revoke_txn, argv[2]);
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
        } else if ((rc = hk_store_write_sync(store, lock_txn, &l)) != 0) {
            fprintf(stderr, "hookd: webhook %s failed: %s\n", verb,
                    rc == HK_ENOTFOUND ? "no such webhook" : hk_strerror(rc));
            exit_code = 1;
        } else {
            printf("webhook %lu %s\n", id, l.locked ? "locked" : "unlocked");
        }
    } else {
        exit_code = 2;
    }
    hk_store_close(store);
    return exit_code;
}
