/* auth.c: users and keys in the store, and request authentication. */
#include "auth.h"

#include <ctype.h>
#include <jansson.h>
#include <mbedtls/base64.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "random.h"

static const struct {
    const char *name;
    unsigned bit;
} perm_names[] = {
    {"ApplicationSettings:View", HK_PERM_VIEW}, {"ApplicationSettings:Manage", HK_PERM_MANAGE},
    {"Accounts:Edit", HK_PERM_ACCOUNTS},        {"Events:Signal", HK_PERM_SIGNAL},
    {"Webhooks:Execute", HK_PERM_EXECUTE},
};

/* Key records: user id (u32), created ms (u64), revoked (u8), short id (8 chars). */
#define KEYREC_LEN 21

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
            return -1;
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
    if (perms & HK_PERM_MANAGE)
        perms |= HK_PERM_VIEW;
    return (perms & need) == need;
}

/* Every authenticated request reads its user: recently decoded records are
 * kept per thread and reused while their stored bytes are unchanged, so
 * that the common case costs a comparison instead of a JSON parse. */
#define USER_CACHE_SLOTS 8
#define USER_CACHE_RECORD_MAX 512

struct user_cache_slot {
    size_t len;
    char raw[USER_CACHE_RECORD_MAX];
    hk_user user;
};

static __thread struct user_cache_slot user_cache[USER_CACHE_SLOTS];
static __thread unsigned user_cache_next;

static int user_decode_json(const hk_val *v, hk_user *u);

static int user_decode(const hk_val *v, hk_user *u)
{
    if (v->len > USER_CACHE_RECORD_MAX)
        return user_decode_json(v, u);
    for (unsigned i = 0; i < USER_CACHE_SLOTS; i++) {
        struct user_cache_slot *c = &user_cache[i];
        if (c->len == v->len && memcmp(c->raw, v->data, v->len) == 0) {
            *u = c->user;
            return 0;
        }
    }
    int rc = user_decode_json(v, u);
    if (rc == 0) {
        struct user_cache_slot *c = &user_cache[user_cache_next++ % USER_CACHE_SLOTS];
        c->len = v->len;
        memcpy(c->raw, v->data, v->len);
        c->user = *u;
    }
    return rc;
}

static int user_decode_json(const hk_val *v, hk_user *u)
{
    json_error_t jerr;
    json_t *j = json_loadb(v->data, v->len, 0, &jerr);
    if (j == NULL)
        return HK_ESTORE;
    memset(u, 0, sizeof(*u));
    u->id = (uint32_t)json_integer_value(json_object_get(j, "id"));
    snprintf(u->code, sizeof(u->code), "%s", json_string_value(json_object_get(j, "code")) ?: "");
    snprintf(u->full_name, sizeof(u->full_name), "%s", json_string_value(json_object_get(j, "fullName")) ?: "");
    u->perms = (unsigned)json_integer_value(json_object_get(j, "perms"));
    u->top_node = (uint32_t)json_integer_value(json_object_get(j, "topNode"));
    json_decref(j);
    return 0;
}

int hk_user_get(hk_txn *txn, uint32_t id, hk_user *out)
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

int hk_user_by_code(hk_txn *txn, const char *code, hk_user *out)
{
    char lc[HK_USER_CODE_MAX + 1];
    if (strlen(code) > HK_USER_CODE_MAX)
        return HK_ENOTFOUND;
    lower(lc, code, sizeof(lc));
    hk_val v;
    int rc = hk_get(txn, HK_DB_USER_CODES, lc, strlen(lc), &v);
    if (rc != 0)
        return rc;
    if (v.len != 4)
        return HK_ESTORE;
    return hk_user_get(txn, hk_rd32(v.data), out);
}

size_t hk_user_count(hk_txn *txn)
{
    return hk_count(txn, HK_DB_USERS);
}

static int user_put(hk_txn *txn, const hk_user *u)
{
    json_t *j = json_pack("{s:I, s:s, s:s, s:I, s:I}", "id", (json_int_t)u->id, "code", u->code, "fullName",
                          u->full_name, "perms", (json_int_t)u->perms, "topNode", (json_int_t)u->top_node);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    uint8_t k[4];
    hk_be32(k, u->id);
    int rc = hk_put(txn, HK_DB_USERS, k, 4, text, strlen(text), 0);
    free(text);
    return rc;
}

int hk_user_create(hk_txn *txn, hk_user *u)
{
    char lc[HK_USER_CODE_MAX + 1];
    lower(lc, u->code, sizeof(lc));
    hk_val v;
    if (hk_get(txn, HK_DB_USER_CODES, lc, strlen(lc), &v) == 0)
        return HK_EEXIST;
    uint64_t id;
    int rc = hk_seq_next(txn, "seq:user", &id);
    if (rc != 0)
        return rc;
    u->id = (uint32_t)id;
    uint8_t k[4];
    hk_be32(k, u->id);
    rc = user_put(txn, u);
    if (rc == 0)
        rc = hk_put(txn, HK_DB_USER_CODES, lc, strlen(lc), k, 4, 0);
    return rc;
}

int hk_user_update(hk_txn *txn, const hk_user *u)
{
    hk_user old;
    int rc = hk_user_get(txn, u->id, &old);
    if (rc != 0)
        return rc;
    if (strcmp(old.code, u->code) != 0)
        return HK_EINVAL; /* the code is the login name: it stays */
    return user_put(txn, u);
}

static void sha256(const char *s, size_t len, uint8_t out[32])
{
    mbedtls_sha256_ret((const unsigned char *)s, len, out, 0);
}

static void short_id(const uint8_t hash[32], char out[9])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 4; i++) {
        out[2 * i] = hex[hash[i] >> 4];
        out[2 * i + 1] = hex[hash[i] & 15];
    }
    out[8] = '\0';
}

int hk_key_create(hk_txn *txn, uint32_t user_id, const char *given, char *key_out, char *id_out)
{
    char key[HK_KEY_TEXT_LEN + 64];
    if (given != NULL) {
        snprintf(key, sizeof(key), "%s", given);
    } else {
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
        snprintf(key, sizeof(key), "hk_%.*s", (int)olen, b64);
    }
    uint8_t hash[32];
    sha256(key, strlen(key), hash);
    uint8_t rec[KEYREC_LEN];
    char sid[9];
    short_id(hash, sid);
    hk_be32(rec, user_id);
    hk_be64(rec + 4, hk_now_ms());
    rec[12] = 0;
    memcpy(rec + 13, sid, 8);
    int rc = hk_put(txn, HK_DB_KEYS, hash, 32, rec, sizeof(rec), HK_PUT_NOOVERWRITE);
    if (rc != 0)
        return rc;
    if (key_out != NULL) {
        /* A given key is the caller's own; only generated ones are returned. */
        size_t n = strnlen(key, HK_KEY_TEXT_LEN - 1);
        memcpy(key_out, key, n);
        key_out[n] = '\0';
    }
    if (id_out != NULL)
        memcpy(id_out, sid, 9);
    return 0;
}

static int revoke_rec(hk_txn *txn, const void *hash, const hk_val *v)
{
    uint8_t rec[KEYREC_LEN];
    if (v->len != KEYREC_LEN)
        return HK_ESTORE;
    memcpy(rec, v->data, KEYREC_LEN);
    rec[12] = 1;
    return hk_put(txn, HK_DB_KEYS, hash, 32, rec, KEYREC_LEN, 0);
}

int hk_key_revoke(hk_txn *txn, const char *key_or_id)
{
    uint8_t hash[32];
    hk_val v;
    sha256(key_or_id, strlen(key_or_id), hash);
    if (hk_get(txn, HK_DB_KEYS, hash, 32, &v) == 0)
        return revoke_rec(txn, hash, &v);
    if (strlen(key_or_id) != 8)
        return HK_ENOTFOUND;
    /* By short id: its first four bytes are the hash's, so seek there. */
    uint8_t prefix[4];
    for (int i = 0; i < 4; i++) {
        unsigned b;
        if (sscanf(key_or_id + 2 * i, "%2x", &b) != 1)
            return HK_ENOTFOUND;
        prefix[i] = (uint8_t)b;
    }
    hk_cursor *c;
    int rc = hk_cursor_open(txn, HK_DB_KEYS, &c);
    if (rc != 0)
        return rc;
    hk_val k = {prefix, 4};
    rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    if (rc == 0 && k.len == 32 && memcmp(k.data, prefix, 4) == 0) {
        memcpy(hash, k.data, 32);
        uint8_t rec[KEYREC_LEN];
        memcpy(rec, v.data, v.len < KEYREC_LEN ? v.len : KEYREC_LEN);
        hk_val copy = {rec, v.len};
        hk_cursor_close(c);
        return revoke_rec(txn, hash, &copy);
    }
    hk_cursor_close(c);
    return HK_ENOTFOUND;
}

/* Looks key up and checks it; user_code, when given, must be its owner's. */
static enum hk_auth_result check_key(hk_txn *txn, const char *key, size_t len, const char *user_code, size_t code_len,
                                     hk_user *out)
{
    if (len == 0 || len > 256)
        return HK_AUTH_INVALID;
    uint8_t hash[32];
    hk_val v;
    sha256(key, len, hash);
    if (hk_get(txn, HK_DB_KEYS, hash, 32, &v) != 0 || v.len != KEYREC_LEN)
        return HK_AUTH_INVALID;
    /* Keys are found by their SHA-256 digest, so the time a lookup takes
     * depends on the digest only and tells nothing about the key. */
    const uint8_t *rec = v.data;
    if (rec[12] != 0)
        return HK_AUTH_INVALID;
    if (hk_user_get(txn, hk_rd32(rec), out) != 0)
        return HK_AUTH_INVALID;
    if (user_code != NULL && hk_strncaseeq(user_code, code_len, out->code) != 0)
        return HK_AUTH_INVALID;
    return HK_AUTH_OK;
}

enum hk_auth_result hk_authenticate(hk_txn *txn, const hk_http_request *req, hk_user *out)
{
    const hk_header *h = hk_http_header(req, "ECI-ApiKey");
    if (h != NULL)
        return check_key(txn, h->value, h->value_len, NULL, 0, out);
    h = hk_http_header(req, "Authorization");
    if (h == NULL)
        return HK_AUTH_MISSING;
    const char *v = h->value;
    size_t n = h->value_len;
    if (n > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
        v += 7, n -= 7;
        while (n > 0 && *v == ' ')
            v++, n--;
        return check_key(txn, v, n, NULL, 0, out);
    }
    if (n > 13 && strncasecmp(v, "rest_api_key=", 13) == 0)
        return check_key(txn, v + 13, n - 13, NULL, 0, out);
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
        return check_key(txn, colon + 1, dlen - code_len - 1, (char *)dec, code_len, out);
    }
    return HK_AUTH_INVALID;
}
