/*
 * auth.c: the user and key tables with their codecs, the user and key ops,
 * permissions, request authentication and the reach of a user's topmost
 * node.
 *
 * User record (HK_DB_USERS, id u32 -> record), version 1: u8 version, u32
 * id, u32 perms, u32 top_node, strings code and full_name. Version 0 is the
 * JSON object {"id","code","fullName","perms","topNode"}. HK_DB_USER_CODES
 * maps the lower-cased code to the id.
 *
 * Key record (HK_DB_KEYS, SHA-256 -> record), version 1: u8 version, u32
 * user id, u64 created ms, u8 revoked, 8 characters of short id (22
 * bytes). Version 0 is the same without the version byte (21 bytes).
 */
#include "auth.h"

#include <ctype.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "random.h"
#include "sha256.h"
#include "tables.h"

#define KEYREC_V0 21
#define KEYREC_V1 22

static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"ApplicationSettings:View", HK_PERM_VIEW}, {"ApplicationSettings:Manage", HK_PERM_MANAGE},
    {"Accounts:Edit", HK_PERM_ACCOUNTS},        {"Events:Signal", HK_PERM_SIGNAL},
    {"Webhooks:Execute", HK_PERM_EXECUTE},      {"Metrics:Read", HK_PERM_METRICS},
};

int hk_perm_parse(const char *list, unsigned *out, char *bad, size_t badlen)
{
    unsigned perms = 0;
    const char *p = list;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p))
            p++, len--;
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        bool found = false;
        if (len == 0 && end == NULL && p != list)
            break; /* a trailing comma */
        if (hk_strncaseeq(p, len, "all") == 0) {
            perms |= HK_PERM_ALL;
            found = true;
        }
        for (size_t i = 0; !found && i < HK_ARRAY_SIZE(perm_names); i++) {
            if (hk_strncaseeq(p, len, perm_names[i].name) == 0) {
                perms |= perm_names[i].bit;
                found = true;
            }
        }
        if (!found) {
            snprintf(bad, badlen, "%.*s", (int)len, p);
            return HK_EINVAL;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    *out = perms;
    return 0;
}

void hk_perm_format(unsigned perms, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < HK_ARRAY_SIZE(perm_names); i++) {
        if (!(perms & perm_names[i].bit))
            continue;
        int w = snprintf(buf + o, len - o, "%s%s", o ? "," : "", perm_names[i].name);
        if (w < 0 || (size_t)w >= len - o) {
            buf[o] = '\0'; /* only whole names */
            return;
        }
        o += (size_t)w;
    }
}

bool hk_perm_allows(unsigned perms, unsigned need)
{
    /* A user given `all` before Metrics:Read existed was stored with every
     * permission of the time: it still holds all of them. */
    if ((perms & HK_PERM_ALL_V1) == HK_PERM_ALL_V1)
        perms |= HK_PERM_ALL;
    if (perms & HK_PERM_MANAGE)
        perms |= HK_PERM_VIEW;
    return (perms & need) == need;
}

static int key_write(hk_txn *txn, const hk_key *k, unsigned flags);

/* ---- users ---------------------------------------------------------------- */

/* Every authenticated request reads its user: recently decoded records are
 * kept per thread and reused while their stored bytes are unchanged, so
 * that the common case costs a comparison instead of a decode. */
#define USER_CACHE_SLOTS 8
#define USER_CACHE_RECORD_MAX 512

struct user_cache_slot {
    bool used; /* holds a decoded record (an unused slot matches nothing, not even 0 bytes) */
    size_t len;
    char raw[USER_CACHE_RECORD_MAX];
    hk_user user;
};

static __thread struct user_cache_slot user_cache[USER_CACHE_SLOTS];
static __thread unsigned user_cache_next;

static int user_decode_v0(const void *data, size_t len, hk_user *u)
{
    json_t *j = json_loadb(data, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return HK_ESTORE;
    }
    u->id = (uint32_t)json_integer_value(json_object_get(j, "id"));
    snprintf(u->code, sizeof(u->code), "%s", json_string_value(json_object_get(j, "code")) ?: "");
    snprintf(u->full_name, sizeof(u->full_name), "%s", json_string_value(json_object_get(j, "fullName")) ?: "");
    u->perms = (unsigned)json_integer_value(json_object_get(j, "perms"));
    u->top_node = (uint32_t)json_integer_value(json_object_get(j, "topNode"));
    json_decref(j);
    return 0;
}

static int user_decode_any(const void *data, size_t len, hk_user *u)
{
    memset(u, 0, sizeof(*u));
    const uint8_t *p = data;
    if (len > 0 && p[0] == '{')
        return user_decode_v0(data, len, u);
    if (len == 0 || p[0] != HK__V1)
        return HK_ESTORE;
    hk__rbuf r = hk__rbuf_of(data, len);
    hk__r_u8(&r);
    u->id = hk__r_u32(&r);
    u->perms = hk__r_u32(&r);
    u->top_node = hk__r_u32(&r);
    hk__r_strbuf(&r, u->code, sizeof(u->code));
    hk__r_strbuf(&r, u->full_name, sizeof(u->full_name));
    return hk__r_done(&r) ? 0 : HK_ESTORE;
}

static int user_decode(const hk_val *v, hk_user *u)
{
    if (v->len == 0 || v->len > USER_CACHE_RECORD_MAX)
        return user_decode_any(v->data, v->len, u);
    for (unsigned i = 0; i < USER_CACHE_SLOTS; i++) {
        struct user_cache_slot *c = &user_cache[i];
        if (c->used && c->len == v->len && memcmp(c->raw, v->data, v->len) == 0) {
            *u = c->user;
            return 0;
        }
    }
    int rc = user_decode_any(v->data, v->len, u);
    if (rc == 0) {
        struct user_cache_slot *c = &user_cache[user_cache_next++ % USER_CACHE_SLOTS];
        c->used = true;
        c->len = v->len;
        memcpy(c->raw, v->data, v->len);
        c->user = *u;
    }
    return rc;
}

static int user_write(hk_txn *txn, const hk_user *u)
{
    hk__wbuf b = {0};
    hk__w_u8(&b, HK__V1);
    hk__w_u32(&b, u->id);
    hk__w_u32(&b, u->perms);
    hk__w_u32(&b, u->top_node);
    hk__w_str(&b, u->code);
    hk__w_str(&b, u->full_name);
    uint8_t k[4];
    hk_be32(k, u->id);
    int rc = hk_put(txn, HK_DB_USERS, k, 4, b.p, b.len, 0);
    free(b.p);
    return rc;
}

int hk__user_read(hk_txn *txn, uint32_t id, hk_user *out)
{
    uint8_t k[4];
    hk_val v;
    hk_be32(k, id);
    int rc = hk_get(txn, HK_DB_USERS, k, 4, &v);
    if (rc != 0)
        return rc;
    return user_decode(&v, out);
}

static void lower(char *dst, const char *src, size_t cap)
{
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* The id holding lower-cased code lc; HK_ENOTFOUND when none. */
static int code_owner(hk_txn *txn, const char *lc, uint32_t *id)
{
    hk_val v;
    int rc = hk_get(txn, HK_DB_USER_CODES, lc, strlen(lc), &v);
    if (rc != 0)
        return rc;
    if (v.len != 4)
        return HK_ESTORE;
    *id = hk_rd32(v.data);
    return 0;
}

int hk__user_by_code(hk_txn *txn, const char *code, hk_user *out)
{
    char lc[HK_USER_CODE_MAX + 1];
    uint32_t id;
    if (strlen(code) > HK_USER_CODE_MAX)
        return HK_ENOTFOUND;
    lower(lc, code, sizeof(lc));
    int rc = code_owner(txn, lc, &id);
    return rc != 0 ? rc : hk__user_read(txn, id, out);
}

int hk__users_each(hk_txn *txn, int (*fn)(const hk_user *u, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_USERS, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        hk_user u;
        if (user_decode(&v, &u) == 0)
            ret = fn(&u, arg);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__apply_user_put(hk_txn *txn, hk_op *op)
{
    hk_op_user_put *p = &op->u.user_put;
    hk_user u = p->user;
    char lc[HK_USER_CODE_MAX + 1], old_lc[HK_USER_CODE_MAX + 1];
    uint8_t k[4];
    uint32_t holder;
    int rc;
    p->id = 0;
    p->skipped = false;
    if (p->only_first && u.id == 0 && hk_count(txn, HK_DB_USERS) > 0) {
        p->skipped = true;
        return 0;
    }
    size_t clen = strnlen(u.code, sizeof(u.code));
    if (clen == 0 || clen > HK_USER_CODE_MAX || strnlen(u.full_name, sizeof(u.full_name)) > HK_USER_NAME_MAX)
        return HK_EINVAL;
    lower(lc, u.code, sizeof(lc));
    if (u.id == 0) {
        uint64_t id;
        rc = code_owner(txn, lc, &holder);
        if (rc == 0)
            return HK_EEXIST;
        if (rc != HK_ENOTFOUND)
            return rc;
        if ((rc = hk_seq_next(txn, "seq:user", &id)) != 0)
            return rc;
        u.id = (uint32_t)id;
    } else {
        hk_user old;
        if ((rc = hk__user_read(txn, u.id, &old)) != 0)
            return rc;
        lower(old_lc, old.code, sizeof(old_lc));
        if (strcmp(old_lc, lc) != 0) {
            rc = code_owner(txn, lc, &holder);
            if (rc == 0)
                return HK_EEXIST;
            if (rc != HK_ENOTFOUND)
                return rc;
            rc = hk_del(txn, HK_DB_USER_CODES, old_lc, strlen(old_lc), NULL, 0);
            if (rc != 0 && rc != HK_ENOTFOUND)
                return rc;
        }
    }
    hk_be32(k, u.id);
    if ((rc = user_write(txn, &u)) != 0)
        return rc;
    if ((rc = hk_put(txn, HK_DB_USER_CODES, lc, strlen(lc), k, 4, 0)) != 0)
        return rc;
    if (p->key != NULL) {
        hk_key key = *p->key;
        key.user_id = u.id;
        if (key.created_ms == 0)
            key.created_ms = op->now_ms;
        if ((rc = key_write(txn, &key, HK_PUT_NOOVERWRITE)) != 0)
            return rc;
    }
    p->id = u.id;
    return 0;
}

/* ---- keys -------------------------------------------------------------------- */

void hk_key_hash(const char *text, size_t len, uint8_t out[32])
{
    hk_sha256(text, len, out);
}

void hk_key_short_id(const uint8_t hash[32], char out[9])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 4; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[8] = '\0';
}

void hk_key_make(hk_key *k, uint32_t user_id, const char *given, uint64_t now_ms, char text[HK_KEY_TEXT_LEN])
{
    char gen[HK_KEY_TEXT_LEN];
    const char *key = given;
    if (key == NULL) {
        uint8_t raw[32];
        unsigned char b64[64];
        size_t olen;
        hk_random(raw, sizeof(raw));
        mbedtls_base64_encode(b64, sizeof(b64), &olen, raw, sizeof(raw));
        /* base64url without padding: safe in headers, URLs and shells. */
        for (size_t i = 0; i < olen; i++)
            b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
        while (olen > 0 && b64[olen - 1] == '=')
            olen--;
        snprintf(gen, sizeof(gen), "hk_%.*s", (int)olen, b64);
        key = gen;
        if (text != NULL)
            memcpy(text, gen, sizeof(gen));
    }
    memset(k, 0, sizeof(*k));
    hk_key_hash(key, strlen(key), k->hash);
    hk_key_short_id(k->hash, k->short_id);
    k->user_id = user_id;
    k->created_ms = now_ms;
}

/* A stored key record of any version (hash is its key in the table). HK_ESTORE when malformed. */
static int key_decode(const void *data, size_t len, const uint8_t hash[32], hk_key *out)
{
    const uint8_t *p = data;
    memset(out, 0, sizeof(*out));
    if (len == KEYREC_V1 && p[0] == HK__V1)
        p++;
    else if (len != KEYREC_V0)
        return HK_ESTORE;
    memcpy(out->hash, hash, 32);
    out->user_id = hk_rd32(p);
    out->created_ms = hk_rd64(p + 4);
    out->revoked = p[12] != 0;
    memcpy(out->short_id, p + 13, 8);
    out->short_id[8] = '\0';
    return 0;
}

static int key_write(hk_txn *txn, const hk_key *k, unsigned flags)
{
    uint8_t rec[KEYREC_V1];
    char sid[9];
    if (k->short_id[0] == '\0')
        hk_key_short_id(k->hash, sid);
    else
        snprintf(sid, sizeof(sid), "%s", k->short_id);
    rec[0] = HK__V1;
    hk_be32(rec + 1, k->user_id);
    hk_be64(rec + 5, k->created_ms);
    rec[13] = k->revoked ? 1 : 0;
    memset(rec + 14, 0, 8);
    memcpy(rec + 14, sid, strnlen(sid, 8));
    return hk_put(txn, HK_DB_KEYS, k->hash, 32, rec, sizeof(rec), flags);
}

int hk__key_read(hk_txn *txn, const uint8_t hash[32], hk_key *out)
{
    hk_val v;
    int rc = hk_get(txn, HK_DB_KEYS, hash, 32, &v);
    if (rc != 0)
        return rc;
    return key_decode(v.data, v.len, hash, out);
}

int hk__keys_each(hk_txn *txn, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_KEYS, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        hk_key key;
        if (k.len != 32 || key_decode(v.data, v.len, k.data, &key) != 0)
            continue;
        if (user_id == 0 || key.user_id == user_id)
            ret = fn(&key, arg);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__apply_key_put(hk_txn *txn, hk_op *op)
{
    hk_key k = op->u.key_put.key;
    hk_user u;
    int rc = hk__user_read(txn, k.user_id, &u);
    if (rc != 0)
        return rc;
    if (k.created_ms == 0)
        k.created_ms = op->now_ms;
    return key_write(txn, &k, HK_PUT_NOOVERWRITE);
}

/*
 * The hash of the key whose short id is sid: its first four bytes are the
 * hash's, so seek there. Two keys may share them (one in 2^32 per pair):
 * then which one is meant cannot be told, and nothing is revoked.
 */
static int find_short_id(hk_txn *txn, const char *sid, uint8_t hash[32], char *err, size_t errlen)
{
    uint8_t prefix[4];
    if (strlen(sid) != 8)
        return HK_ENOTFOUND;
    for (int i = 0; i < 4; i++) {
        unsigned b;
        if (!isxdigit((unsigned char)sid[2 * i]) || !isxdigit((unsigned char)sid[2 * i + 1]) ||
            sscanf(sid + 2 * i, "%2x", &b) != 1)
            return HK_ENOTFOUND;
        prefix[i] = (uint8_t)b;
    }
    hk_cursor *c;
    hk_val k = {prefix, 4}, v;
    size_t n = 0;
    int rc = hk_cursor_open(txn, HK_DB_KEYS, &c);
    if (rc != 0)
        return rc;
    for (rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 32 || memcmp(k.data, prefix, 4) != 0)
            break;
        if (n++ == 0)
            memcpy(hash, k.data, 32);
    }
    hk_cursor_close(c);
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    if (n == 0)
        return HK_ENOTFOUND;
    if (n > 1) {
        snprintf(err, errlen, "key id %s matches %zu keys; revoke by the key itself", sid, n);
        return HK_ECONFLICT;
    }
    return 0;
}

int hk__apply_key_revoke(hk_txn *txn, hk_op *op)
{
    hk_op_key_revoke *p = &op->u.key_revoke;
    uint8_t hash[32];
    hk_key k;
    int rc = 0;
    p->err[0] = '\0';
    if (p->short_id[0] != '\0')
        rc = find_short_id(txn, p->short_id, hash, p->err, sizeof(p->err));
    else
        memcpy(hash, p->hash, 32);
    if (rc == 0)
        rc = hk__key_read(txn, hash, &k);
    if (rc != 0)
        return rc;
    k.revoked = true;
    return key_write(txn, &k, 0);
}

/* ---- authentication -------------------------------------------------------------- */

/* Looks key up and checks it; user_code, when given, must be its owner's. */
static enum hk_auth_result check_key(hk_store *s, const char *key, size_t len, const char *user_code, size_t code_len,
                                     hk_user *out)
{
    if (len == 0 || len > 256)
        return HK_AUTH_INVALID;
    uint8_t hash[32];
    hk_key k;
    hk_key_hash(key, len, hash);
    /* Keys are found by their SHA-256 digest, so the time a lookup takes
     * depends on the digest only and tells nothing about the key. */
    int rc = hk_store_key_get(s, hash, &k, out);
    /* A key or user that is not there is a wrong key; a store that cannot
     * be read says nothing about the key. */
    if (rc != 0)
        return rc == HK_ENOTFOUND ? HK_AUTH_INVALID : HK_AUTH_UNAVAILABLE;
    if (k.revoked)
        return HK_AUTH_INVALID;
    if (user_code != NULL && hk_strncaseeq(user_code, code_len, out->code) != 0)
        return HK_AUTH_INVALID;
    return HK_AUTH_OK;
}

enum hk_auth_result hk_auth_check(hk_store *s, const hk_http_request *req, hk_user *out)
{
    const hk_header *h = hk_http_header(req, "ECI-ApiKey");
    if (h != NULL)
        return check_key(s, h->value, h->value_len, NULL, 0, out);
    h = hk_http_header(req, "Authorization");
    if (h == NULL)
        return HK_AUTH_MISSING;
    const char *v = h->value;
    size_t n = h->value_len;
    if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7, n -= 7;
        while (n > 0 && *v == ' ')
            v++, n--;
        return check_key(s, v, n, NULL, 0, out);
    }
    if (n > 13 && strncasecmp(v, "rest_api_key=", 13) == 0)
        return check_key(s, v + 13, n - 13, NULL, 0, out);
    if (n > 6 && strncasecmp(v, "Basic ", 6) == 0) {
        v += 6, n -= 6;
        while (n > 0 && *v == ' ')
            v++, n--;
        unsigned char dec[512];
        size_t dlen;
        if (n > 600 || mbedtls_base64_decode(dec, sizeof(dec) - 1, &dlen, (const unsigned char *)v, n) != 0)
            return HK_AUTH_INVALID;
        dec[dlen] = '\0';
        char *colon = memchr(dec, ':', dlen);
        if (colon == NULL)
            return HK_AUTH_INVALID;
        size_t code_len = (size_t)(colon - (char *)dec);
        return check_key(s, colon + 1, dlen - code_len - 1, (char *)dec, code_len, out);
    }
    return HK_AUTH_INVALID;
}

/* ---- a user's reach --------------------------------------------------------------- */

int hk_auth_account_within(hk_store *s, uint32_t id, uint32_t top, bool *within)
{
    *within = false;
    if (top == 0)
        return 0;
    hk_account a;
    int rc = hk_store_account_get(s, id, &a);
    if (rc == HK_ENOTFOUND)
        return 0;
    return rc != 0 ? rc : hk_store_node_within(s, a.node, top, within);
}
