/*
 * event.c: the events table (HK_DB_EVENTS) and its codec. The delivery
 * body built from an event is services/delivery.c's.
 *
 * Record, version 1: u8 version, u64 ts_ms, u64 primary_key, u32 user_id,
 * 16 bytes EventId, u16 name length, u32 changes length, u32 data length,
 * then the three texts (the name, the Changes array and the Data object as
 * JSON text, so that building a body is concatenation, never a re-parse).
 * Version 0 is the same without the version byte (its first byte, the
 * time's highest, is 0).
 */
#include <string.h>

#include "tables.h"

#define HDR_V0 46

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

int hk__event_time(const void *data, size_t len, uint64_t *ts_ms)
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
    const uint8_t *p = data;
    memset(out, 0, sizeof(*out));
    if (len > 0 && p[0] == HK__V1) {
        p++;
        len--;
    } else if (len > 0 && p[0] != 0) {
        return HK_ESTORE;
    }
    if (len < HDR_V0)
        return HK_ESTORE;
    size_t name_len = (size_t)p[36] << 8 | p[37];
    size_t changes_len = hk_rd32(p + 38), data_len = hk_rd32(p + 42);
    if ((uint64_t)HDR_V0 + name_len + changes_len + data_len != len)
        return HK_ESTORE;
    const char *name = (const char *)p + HDR_V0, *changes = name + name_len;
    out->id = id;
    out->ts_ms = hk_rd64(p);
    out->primary_key = (int64_t)hk_rd64(p + 8);
    out->user_id = hk_rd32(p + 16);
    memcpy(out->uuid, p + 20, 16);
    out->name = hk_strndup(name, name_len);
    out->changes = hk_strndup(changes, changes_len);
    out->changes_len = changes_len;
    out->data = hk_strndup(changes + changes_len, data_len);
    out->data_len = data_len;
    return 0;
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
