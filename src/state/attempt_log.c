/* attempt_log.c: attempt records keyed by webhook, with a time index. */
#include "attempt_log.h"

#include <stdio.h>
#include <string.h>

static void log_key(uint8_t k[12], uint32_t wid, uint64_t id)
{
    hk_be32(k, wid);
    hk_be64(k + 4, id);
}

static void time_key(uint8_t k[20], uint64_t ms, uint32_t wid, uint64_t id)
{
    hk_be64(k, ms);
    hk_be32(k + 8, wid);
    hk_be64(k + 12, id);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/*
 * A peer's bytes as a JSON string. Valid UTF-8 (NUL included) is kept as
 * it is, so that text compares byte for byte with what went over the
 * wire; each byte that is not part of a valid sequence becomes U+FFFD, so
 * that a binary body cannot make the record unencodable.
 */
static json_t *text(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, n;
    while (i < len && (n = utf8_seq(u + i, len - i)) != 0)
        i += n;
    if (i == len)
        return json_stringn(s, len);
    char *copy = hk_malloc(len * 3 + 1);
    size_t o = 0;
    for (i = 0; i < len;) {
        n = utf8_seq(u + i, len - i);
        if (n == 0) {
            memcpy(copy + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(copy + o, s + i, n);
            o += n;
            i += n;
        }
    }
    json_t *j = json_stringn(copy, o);
    free(copy);
    return j;
}

int hk_log_append(hk_txn *txn, const hk_attempt *a, uint64_t *log_id)
{
    uint64_t id;
    int rc = hk_seq_next(txn, "seq:log", &id);
    if (rc != 0)
        return rc;
    char result[16];
    snprintf(result, sizeof(result), "%d", a->status);
    json_t *rec = json_object();
    json_object_set_new(rec, "id", json_integer((json_int_t)id));
    json_object_set_new(rec, "webhookId", json_integer(a->webhook_id));
    json_object_set_new(rec, "eventId", json_integer((json_int_t)a->event_id));
    json_object_set_new(rec, "event", json_string(a->event_name ? a->event_name : ""));
    json_object_set_new(rec, "eventUuid", json_string(a->event_uuid ? a->event_uuid : ""));
    json_object_set_new(rec, "attempt", json_integer(a->attempt));
    json_object_set_new(rec, "time", json_integer((json_int_t)a->started_ms));
    json_object_set_new(rec, "durationMs", json_integer((json_int_t)a->duration_ms));
    json_object_set_new(rec, "url", json_string(a->url ? a->url : ""));
    json_object_set_new(rec, "request", text(a->request ? a->request : "", a->request_len));
    json_object_set_new(rec, "response", text(a->response ? a->response : "", a->response_len));
    json_object_set_new(rec, "result", json_string(result));
    json_object_set_new(rec, "success", json_boolean(a->success));
    json_object_set_new(rec, "error", text(a->error ? a->error : "", a->error ? strlen(a->error) : 0));
    json_object_set_new(rec, "userId", json_integer(a->user_id));
    json_object_set_new(rec, "exhausted", json_boolean(a->exhausted));
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (s == NULL)
        return HK_EINVAL;
    uint8_t k[12], tk[20];
    log_key(k, a->webhook_id, id);
    rc = hk_put(txn, HK_DB_LOG, k, sizeof(k), s, strlen(s), 0);
    free(s);
    if (rc != 0)
        return rc;
    time_key(tk, a->started_ms, a->webhook_id, id);
    rc = hk_put(txn, HK_DB_LOG_TIME, tk, sizeof(tk), "", 0, 0);
    if (rc == 0 && log_id != NULL)
        *log_id = id;
    return rc;
}

int hk_log_get(hk_txn *txn, uint32_t webhook_id, uint64_t log_id, json_t **out)
{
    uint8_t k[12];
    hk_val v;
    log_key(k, webhook_id, log_id);
    int rc = hk_get(txn, HK_DB_LOG, k, sizeof(k), &v);
    if (rc != 0)
        return rc;
    json_error_t err;
    *out = json_loadb(v.data, v.len, 0, &err);
    return *out ? 0 : HK_ESTORE;
}

/* Time-index entries older than *arg. */
static bool older(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == 20 && hk_rd64(k->data) < *(const uint64_t *)arg;
}

/* A time-index entry takes its record (webhook id + log id) with it. */
static int drop_record(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    HK_UNUSED(arg);
    int rc = hk_del(txn, HK_DB_LOG, (const uint8_t *)k->data + 8, 12, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk_log_prune(hk_txn *txn, uint64_t before_ms, size_t max, bool *more)
{
    *more = false;
    return hk_delete_run(txn, HK_DB_LOG_TIME, NULL, older, drop_record, &before_ms, max, more);
}

/* Records of the webhook whose id prefix is *arg. */
static bool of_webhook(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == 12 && memcmp(k->data, arg, 4) == 0;
}

/* A record takes its time-index entry with it; that key needs the record's time. */
static int drop_time_entry(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(arg);
    json_error_t err;
    json_t *rec = json_loadb(v->data, v->len, 0, &err);
    if (rec == NULL)
        return 0;
    uint8_t tk[20];
    time_key(tk, (uint64_t)json_integer_value(json_object_get(rec, "time")), hk_rd32(k->data),
             hk_rd64((const uint8_t *)k->data + 4));
    json_decref(rec);
    int rc = hk_del(txn, HK_DB_LOG_TIME, tk, sizeof(tk), NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk_log_delete_webhook(hk_txn *txn, uint32_t webhook_id, size_t max, bool *more)
{
    uint8_t prefix[4];
    hk_be32(prefix, webhook_id);
    hk_val from = {prefix, 4};
    *more = false;
    return hk_delete_run(txn, HK_DB_LOG, &from, of_webhook, drop_time_entry, prefix, max, more);
}
