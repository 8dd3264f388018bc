/*
 * auth.h: users, API keys, permissions and the credential forms of the
 * API. Keys are 32 random bytes shown once; only their SHA-256 is stored,
 * and stored hashes are compared in constant time. auth.c owns the user and
 * key tables and their codecs; writes go through store.h (HK_OP_USER_PUT,
 * HK_OP_KEY_PUT, HK_OP_KEY_REVOKE), reads through its queries. What is
 * declared here needs no transaction: the permission names, the key
 * format, and a request's credentials checked against a store.
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

#define HK_KEY_TEXT_LEN 47 /* "hk_" + 43 base64url characters + NUL */

/** Parses "ApplicationSettings:View,Events:Signal" (or "all") into bits; HK_EINVAL naming the bad one in bad. */
int hk_perm_parse(const char *list, unsigned *out, char *bad, size_t badlen) HK_MUST_CHECK;

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

/** Result of authenticating a request. */
enum hk_auth_result {
    HK_AUTH_OK,         /**< user filled in */
    HK_AUTH_MISSING,    /**< no credentials */
    HK_AUTH_INVALID,    /**< credentials present but wrong, revoked or malformed */
    HK_AUTH_UNAVAILABLE /**< the store could not be read (an error, or UV_EAGAIN): nothing is known of the
                             credentials; try again later */
};

/** Finds the credentials of req (any of the four forms) and checks them against the store. */
enum hk_auth_result hk_auth_check(hk_store *s, const hk_http_request *req, hk_user *out);

/**
 * Whether a user whose topmost node is top may act on account id: *within
 * is true when the account exists and its node is top or below it. A user
 * without a topmost node (top 0) reaches no account. Errors of the store
 * (UV_EAGAIN...) are returned, with *within false.
 */
int hk_auth_account_within(hk_store *s, uint32_t id, uint32_t top, bool *within) HK_MUST_CHECK;

#endif
