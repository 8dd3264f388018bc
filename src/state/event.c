/* event.c: event records and delivery bodies. */
#include "event.h"

#include <stdio.h>
#include <string.h>

#include "date.h"

#define HDR_LEN 46

size_t hk_event_encode(const hk_event *e, uint8_t **out)
{
    size_t len = HDR_LEN + e->name_len + e->changes_len + e->data_len;
    uint8_t *p = hk_malloc(len);
    hk_be64(p, e->ts_ms);
    hk_be64(p + 8, (uint64_t)e->primary_key);
    hk_be32(p + 16, e->user_id);
    memcpy(p + 20, e->uuid, 16);
    p[36] = (uint8_t)(e->name_len >> 8);
    p[37] = (uint8_t)e->name_len;
    hk_be32(p + 38, (uint32_t)e->changes_len);
    hk_be32(p + 42, (uint32_t)e->data_len);
    memcpy(p + HDR_LEN, e->name, e->name_len);
    memcpy(p + HDR_LEN + e->name_len, e->changes, e->changes_len);
    memcpy(p + HDR_LEN + e->name_len + e->changes_len, e->data, e->data_len);
    *out = p;
    return len;
}

int hk_event_decode(const void *data, size_t len, uint64_t id, hk_event *out)
{
    const uint8_t *p = data;
    if (len < HDR_LEN)
        return HK_ESTORE;
    out->id = id;
    out->ts_ms = hk_rd64(p);
    out->primary_key = (int64_t)hk_rd64(p + 8);
    out->user_id = hk_rd32(p + 16);
    memcpy(out->uuid, p + 20, 16);
    out->name_len = (size_t)p[36] << 8 | p[37];
    out->changes_len = hk_rd32(p + 38);
    out->data_len = hk_rd32(p + 42);
    if (HDR_LEN + out->name_len + out->changes_len + out->data_len != len)
        return HK_ESTORE;
    out->name = (const char *)p + HDR_LEN;
    out->changes = out->name + out->name_len;
    out->data = out->changes + out->changes_len;
    return 0;
}

int hk_event_get(hk_txn *txn, uint64_t id, hk_event *out)
{
    uint8_t k[8];
    hk_val v;
    hk_be64(k, id);
    int rc = hk_get(txn, HK_DB_EVENTS, k, 8, &v);
    if (rc != 0)
        return rc;
    return hk_event_decode(v.data, v.len, id, out);
}

void hk_event_uuid_str(const uint8_t u[16], char out[HK_EVENT_UUID_LEN])
{
    snprintf(out, HK_EVENT_UUID_LEN, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
             u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
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

char *hk_event_body(const hk_event *e, const char *webhook_name, const char *props_members, size_t *len_out)
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
