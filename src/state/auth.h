/*
 * auth.h: users, API keys, permissions and the credential forms of the
 * API. Keys are 32 random bytes shown once; only their SHA-256 is stored,
 * and stored hashes are compared in constant time.
 */
#ifndef HK_AUTH_H
#define HK_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "http_server.h"
#include "random.h"
#include "kv.h"

/** Permission bits. Manage implies View. */
enum {
    HK_PERM_VIEW = 1u << 0,     /**< ApplicationSettings:View */
    HK_PERM_MANAGE = 1u << 1,   /**< ApplicationSettings:Manage */
    HK_PERM_ACCOUNTS = 1u << 2, /**< Accounts:Edit */
    HK_PERM_SIGNAL = 1u << 3,   /**< Events:Signal */
    HK_PERM_EXECUTE = 1u << 4,  /**< Webhooks:Execute */
    HK_PERM_ALL = 0x1f
};

#define HK_USER_CODE_MAX 64
#define HK_USER_NAME_MAX 128
#define HK_KEY_TEXT_LEN 47 /* "hk_" + 43 base64url characters + NUL */

/** A user as the API sees it. */
typedef struct hk_user {
    uint32_t id;                          /**< stable id, never reused */
    char code[HK_USER_CODE_MAX + 1];      /**< login code, unique case-insensitively */
    char full_name[HK_USER_NAME_MAX + 1]; /**< display name */
    unsigned perms;                       /**< HK_PERM_* bits */
    uint32_t top_node;                    /**< topmost node for account actions; 0 = none */
} hk_user;

/** Parses "ApplicationSettings:View,Events:Signal" (or "all") into bits; -1 naming the bad one in bad. */
int hk_perm_parse(const char *list, unsigned *out, char *bad, size_t badlen);

/** Writes the permission names of bits, comma-separated, into buf. */
void hk_perm_format(unsigned perms, char *buf, size_t len);

/** Reads a user by id; HK_ENOTFOUND when absent. */
int hk_user_get(hk_txn *txn, uint32_t id, hk_user *out) HK_MUST_CHECK;

/** Reads a user by code (case-insensitive). */
int hk_user_by_code(hk_txn *txn, const char *code, hk_user *out) HK_MUST_CHECK;

/** Creates a user (id assigned into u->id); HK_EEXIST when the code is taken. */
int hk_user_create(hk_txn *txn, hk_user *u) HK_MUST_CHECK;

/** Rewrites user u->id with u's name, permissions and topmost node (the code cannot change). */
int hk_user_update(hk_txn *txn, const hk_user *u) HK_MUST_CHECK;

/** Number of users. */
size_t hk_user_count(hk_txn *txn);

/**
 * Creates an API key for user_id. With `given` non-NULL that text is the
 * key (the HOOKD_ADMIN_KEY case); otherwise a random one is written to
 * key_out (HK_KEY_TEXT_LEN bytes). id_out receives the key's short id
 * (9 bytes) used to list and revoke it.
 */
int hk_key_create(hk_txn *txn, uint32_t user_id, const char *given, char *key_out, char *id_out) HK_MUST_CHECK;

/** Revokes the key given as its text or its short id; HK_ENOTFOUND when none matches. */
int hk_key_revoke(hk_txn *txn, const char *key_or_id) HK_MUST_CHECK;

/** Result of authenticating a request. */
enum hk_auth_result {
    HK_AUTH_OK,      /**< user filled in */
    HK_AUTH_MISSING, /**< no credentials */
    HK_AUTH_INVALID  /**< credentials present but wrong, revoked or malformed */
};

/** Finds the credentials of req (any of the four forms) and checks them. */
enum hk_auth_result hk_authenticate(hk_txn *txn, const hk_http_request *req, hk_user *out);

/** True when perms satisfy need (Manage counts as View). */
bool hk_perm_allows(unsigned perms, unsigned need);


#endif
