/*
 * auth.h: users, API keys, permissions and the credential forms of the
 * API. Keys are 32 random bytes shown once; only their SHA-256 is stored,
 * and stored hashes are compared in constant time. auth.c owns the user and
 * key tables and their codecs; writes go through store.h (HK_OP_USER_PUT,
 * HK_OP_KEY_PUT, HK_OP_KEY_REVOKE). The functions taking an hk_txn are the
 * old interface, kept while callers move to store.h.
 */
#ifndef HK_AUTH_H
#define HK_AUTH_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "http_server.h"
#include "model.h"
#include "random.h"
#include "store.h"

/** A transaction of the state layer (kv.h), for the old interface below. */
typedef struct hk_txn hk_txn;

#define HK_KEY_TEXT_LEN 47 /* "hk_" + 43 base64url characters + NUL */

/** Parses "ApplicationSettings:View,Events:Signal" (or "all") into bits; -1 naming the bad one in bad. */
int hk_perm_parse(const char *list, unsigned *out, char *bad, size_t badlen);

/** Writes the permission names of bits, comma-separated, into buf. */
void hk_perm_format(unsigned perms, char *buf, size_t len);

/**
 * True when perms satisfy need (Manage counts as View; a user holding every
 * permission that existed before Metrics:Read, HK_PERM_ALL_V1, holds all).
 */
bool hk_perm_allows(unsigned perms, unsigned need);

/** SHA-256 of a key's text (len bytes): what is stored and looked up. */
void hk_key_hash(const char *text, size_t len, uint8_t out[32]);

/** The short id operators see for a key: the first four bytes of its hash in hex. */
void hk_key_short_id(const uint8_t hash[32], char out[9]);

/**
 * Makes a new key for an HK_OP_KEY_PUT: with `given` non-NULL that text is
 * the key (the HOOKD_ADMIN_KEY case); otherwise a random one is written to
 * text (HK_KEY_TEXT_LEN bytes). k gets the hash, short id, user_id and
 * created_ms; it is not revoked.
 */
void hk_key_make(hk_key *k, uint32_t user_id, const char *given, uint64_t now_ms, char text[HK_KEY_TEXT_LEN]);

/** Decodes a stored key record of any version (hash is its key in the table). HK_ESTORE when malformed. */
int hk_key_decode(const void *data, size_t len, const uint8_t hash[32], hk_key *out) HK_MUST_CHECK;

/** Result of authenticating a request. */
enum hk_auth_result {
    HK_AUTH_OK,      /**< user filled in */
    HK_AUTH_MISSING, /**< no credentials */
    HK_AUTH_INVALID  /**< credentials present but wrong, revoked or malformed */
};

/** Finds the credentials of req (any of the four forms) and checks them against the store. */
enum hk_auth_result hk_auth_check(hk_store *s, const hk_http_request *req, hk_user *out);

/* ---- the old interface ------------------------------------------------------ */

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

/**
 * Revokes the key given as its text or its short id; HK_ENOTFOUND when none
 * matches, HK_ECONFLICT (logged) when several keys have that short id.
 */
int hk_key_revoke(hk_txn *txn, const char *key_or_id) HK_MUST_CHECK;

/** Finds the credentials of req (any of the four forms) and checks them. */
enum hk_auth_result hk_authenticate(hk_txn *txn, const hk_http_request *req, hk_user *out);

#endif
