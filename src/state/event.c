/*
 * event.c: the events table (HK_DB_EVENTS) with its codec, and delivery bodies.
 *
 * Record, version 1: u8 version, u64 ts_ms, u64 primary_key, u32 user_id,
 * 16 bytes EventId, u16 name length, u32 changes length, u32 data length,
 * then the three texts. Version 0 is the same without the version byte
 * (its first byte, the time's highest, is 0).
 */
#include "event.h"

#include <stdio.h>
#include <string.h>

#include "date.h"
#include "tables.h"

#define HDR_V0 46

hk_event_view hk_event_view_of(const hk_event *e)
{
    hk_event_view v = {.id = e->id,
                       .ts_ms = e->ts_ms,
                       .primary_key = e->primary_key,
                       .user_id = e->user_id,
                       .name = e->name ? e->name : "",
                       .name_len = e->name ? strlen(e->name) : 0,
                       .changes = e->changes ? e->changes : "[]",
                       .changes_len = e->changes ? e->changes_len : 2,
                       .data = e->data ? e->data : "{}",
                       .data_len = e->data ? e->data_len : 2};
    memcpy(v.uuid, e->uuid, 16);
    return v;
}

void hk__event_encode(hk__wbuf *b, uint64_t ts_ms, int64_t primary_key, uint32_t user_id, const uint8_t uuid[16],
                      const char *name, size_t name_len, const char *changes, size_t changes_len, const char *data,
                      size_t data_len)
{
    if (name_len > UINT16_MAX)
        name_len = UINT16_MAX; /* names are checked far below this before they come here */
    hk__w_u8(b, HK__V1);
    hk__w_u64(b, ts_ms);
    hk__w_u64(b, (uint64_t)primary_key);
    hk__w_u32(b, user_id);
    hk__w_raw(b, uuid, 16);
    hk__w_u16(b, (uint16_t)name_len);
    hk__w_u32(b, (uint32_t)changes_len);
    hk__w_u32(b, (uint32_t)data_len);
    hk__w_raw(b, name, name_len);
    hk__w_raw(b, changes, changes_len);
    hk__w_raw(b, data, data_len);
}

size_t hk_event_encode(const hk_event_view *e, uint8_t **out)
{
    hk__wbuf b = {0};
    hk__event_encode(&b, e->ts_ms, e->primary_key, e->user_id, e->uuid, e->name, e->name_len, e->changes,
                     e->changes_len, e->data, e->data_len);
    *out = b.p;
    return b.len;
}

int hk_event_decode(const void *data, size_t len, uint64_t id, hk_event_view *out)
{
    const uint8_t *p = data;
    if (len > 0 && p[0] == HK__V1) {
        p++;
        len--;
    } else if (len > 0 && p[0] != 0) {
        return HK_ESTORE;
    }
    if (len < HDR_V0)
        return HK_ESTORE;
    out->id = id;
    out->ts_ms = hk_rd64(p);
    out->primary_key = (int64_t)hk_rd64(p + 8);
    out->user_id = hk_rd32(p + 16);
    memcpy(out->uuid, p + 20, 16);
    out->name_len = (size_t)p[36] << 8 | p[37];
    out->changes_len = hk_rd32(p + 38);
    out->data_len = hk_rd32(p + 42);
    if ((uint64_t)HDR_V0 + out->name_len + out->changes_len + out->data_len != len)
        return HK_ESTORE;
    out->name = (const char *)p + HDR_V0;
    out->changes = out->name + out->name_len;
    out->data = out->changes + out->changes_len;
    return 0;
}

int hk_event_time(const void *data, size_t len, uint64_t *ts_ms)
{
    const uint8_t *p = data;
    if (len >= HDR_V0 + 1 && p[0] == HK__V1)
        *ts_ms = hk_rd64(p + 1);
    else if (len >= HDR_V0 && p[0] == 0)
        *ts_ms = hk_rd64(p);
    else
        return HK_ESTORE;
    return 0;
}

int hk__event_decode(const void *data, size_t len, uint64_t id, hk_event *out)
{
    hk_event_view v;
    memset(out, 0, sizeof(*out));
    int rc = hk_event_decode(data, len, id, &v);
    if (rc != 0)
        return rc;
    out->id = v.id;
    out->ts_ms = v.ts_ms;
    out->primary_key = v.primary_key;
    out->user_id = v.user_id;
    memcpy(out->uuid, v.uuid, 16);
    out->name = hk_strndup(v.name, v.name_len);
    out->changes = hk_strndup(v.changes, v.changes_len);
    out->changes_len = v.changes_len;
    out->data = hk_strndup(v.data, v.data_len);
    out->data_len = v.data_len;
    return 0;
}

int hk_event_get(hk_txn *txn, uint64_t id, hk_event_view *out)
{
    uint8_t k[8];
    hk_val v;
    hk_be64(k, id);
    int rc = hk_get(txn, HK_DB_EVENTS, k, 8, &v);
    if (rc != 0)
        return rc;
    return hk_event_decode(v.data, v.len, id, out);
}

int hk__event_read(hk_txn *txn, uint64_t id, hk_event *out)
{
    uint8_t k[8];
    hk_val v;
    hk_be64(k, id);
    memset(out, 0, sizeof(*out));
    int rc = hk_get(txn, HK_DB_EVENTS, k, 8, &v);
    if (rc != 0)
        return rc;
    return hk__event_decode(v.data, v.len, id, out);
}

static void reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    *buf = hk_realloc(*buf, c);
    *cap = c;
}

static size_t append(char **buf, size_t len, size_t *cap, const char *s, size_t n)
{
    reserve(buf, cap, len + n + 1);
    memcpy(*buf + len, s, n);
    (*buf)[len + n] = '\0';
    return len + n;
}

size_t hk_json_quote(char **buf, size_t len, size_t *cap, const char *s, size_t slen)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case: every byte becomes \u00XX. */
    reserve(buf, cap, len + slen * 6 + 3);
    char *o = *buf + len;
    *o++ = '"';
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    *o = '\0';
    return (size_t)(o - *buf);
}

char *hk_event_body(const hk_event_view *e, const char *webhook_name, const char *props_members, size_t *len_out)
{
    char *b = NULL;
    size_t len = 0, cap = 0;
    char uuid[HK_EVENT_UUID_LEN], ts[48], num[128];
    hk_event_uuid_str(e->uuid, uuid);
    hk_fmt_date_so(e->ts_ms, ts, sizeof(ts));
    reserve(&b, &cap, 256 + e->data_len + e->changes_len + e->name_len * 2);
    len = append(&b, len, &cap, "{\"EventId\":\"", 12);
    len = append(&b, len, &cap, uuid, strlen(uuid));
    len = append(&b, len, &cap, "\",\"Timestamp\":\"", 15);
    len = append(&b, len, &cap, ts, strlen(ts));
    len = append(&b, len, &cap, "\",\"Changes\":", 12);
    len = append(&b, len, &cap, e->changes, e->changes_len);
    len = append(&b, len, &cap, ",\"Event\":", 9);
    len = hk_json_quote(&b, len, &cap, e->name, e->name_len);
    int n = snprintf(num, sizeof(num), ",\"PrimaryKey\":%lld,\"Entity\":", (long long)e->primary_key);
    len = append(&b, len, &cap, num, (size_t)n);
    const char *dot = memchr(e->name, '.', e->name_len);
    len = hk_json_quote(&b, len, &cap, e->name, dot ? (size_t)(dot - e->name) : e->name_len);
    n = snprintf(num, sizeof(num),
                 ",\"ContextIdentifier\":\"Default\",\"ChangedByAssociateId\":%u,\"WebhookName\":", e->user_id);
    len = append(&b, len, &cap, num, (size_t)n);
    len = hk_json_quote(&b, len, &cap, webhook_name, strlen(webhook_name));
    len = append(&b, len, &cap, ",\"Data\":", 8);
    len = append(&b, len, &cap, e->data, e->data_len);
    if (props_members != NULL && *props_members != '\0') {
        len = append(&b, len, &cap, ",", 1);
        len = append(&b, len, &cap, props_members, strlen(props_members));
    }
    len = append(&b, len, &cap, "}", 1);
    *len_out = len;
    return b;
}
