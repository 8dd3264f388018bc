/* webhook.c: webhook records and their indexes in the store. */
#include "webhook.h"

#include <string.h>

static void key32(uint8_t k[4], uint32_t id)
{
    hk_be32(k, id);
}

const char *hk_wh_str(const json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s ? s : "";
}

int64_t hk_wh_int(const json_t *rec, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(rec, key));
}

bool hk_wh_bool(const json_t *rec, const char *key)
{
    return json_is_true(json_object_get(rec, key));
}

int hk_webhook_get(hk_txn *txn, uint32_t id, json_t **out)
{
    uint8_t k[4];
    hk_val v;
    key32(k, id);
    int rc = hk_get(txn, HK_DB_WEBHOOKS, k, 4, &v);
    if (rc != 0)
        return rc;
    json_error_t err;
    *out = json_loadb(v.data, v.len, 0, &err);
    return *out ? 0 : HK_ESTORE;
}

int hk_event_type_id(hk_txn *txn, const char *name, uint32_t *id)
{
    hk_val v;
    int rc = hk_get(txn, HK_DB_EVENT_NAMES, name, strlen(name), &v);
    if (rc != 0)
        return rc;
    if (v.len != 4)
        return HK_ESTORE;
    *id = hk_rd32(v.data);
    return 0;
}

int hk_event_type_register(hk_txn *txn, const char *name, uint32_t *id)
{
    if (hk_event_type_id(txn, name, id) == 0)
        return 0;
    uint64_t next;
    int rc = hk_seq_next(txn, "seq:event_type", &next);
    if (rc != 0)
        return rc;
    uint8_t k[4];
    key32(k, (uint32_t)next);
    if ((rc = hk_put(txn, HK_DB_EVENT_TYPES, k, 4, name, strlen(name), 0)) != 0)
        return rc;
    if ((rc = hk_put(txn, HK_DB_EVENT_NAMES, name, strlen(name), k, 4, 0)) != 0)
        return rc;
    *id = (uint32_t)next;
    return 0;
}

int hk_event_type_name(hk_txn *txn, uint32_t id, char **name)
{
    uint8_t k[4];
    hk_val v;
    key32(k, id);
    int rc = hk_get(txn, HK_DB_EVENT_TYPES, k, 4, &v);
    if (rc != 0)
        return rc;
    *name = hk_strndup(v.data, v.len);
    return 0;
}

/* Removes the index entries of an old record. */
static int unindex(hk_txn *txn, const json_t *old, uint32_t id)
{
    uint8_t k[4];
    key32(k, id);
    size_t i;
    json_t *ev;
    json_array_foreach (json_object_get(old, "events"), i, ev) {
        const char *name = json_string_value(ev);
        if (name == NULL)
            continue;
        int rc = hk_del(txn, HK_DB_SUBSCRIPTIONS, name, strlen(name), k, 4);
        if (rc != 0 && rc != HK_ENOTFOUND)
            return rc;
    }
    const char *ext = json_string_value(json_object_get(old, "extension"));
    if (ext != NULL && *ext != '\0') {
        int rc = hk_del(txn, HK_DB_EXTENSIONS, ext, strlen(ext), NULL, 0);
        if (rc != 0 && rc != HK_ENOTFOUND)
            return rc;
    }
    return 0;
}

int hk_webhook_put(hk_txn *txn, json_t *rec)
{
    uint32_t id = (uint32_t)hk_wh_int(rec, "id");
    uint8_t k[4];
    int rc;
    if (id == 0) {
        uint64_t next;
        if ((rc = hk_seq_next(txn, "seq:webhook", &next)) != 0)
            return rc;
        id = (uint32_t)next;
        json_object_set_new(rec, "id", json_integer(id));
    } else {
        json_t *old;
        rc = hk_webhook_get(txn, id, &old);
        if (rc == 0) {
            rc = unindex(txn, old, id);
            json_decref(old);
            if (rc != 0)
                return rc;
        } else if (rc != HK_ENOTFOUND) {
            return rc;
        }
    }
    key32(k, id);
    const char *ext = json_string_value(json_object_get(rec, "extension"));
    if (ext != NULL && *ext != '\0') {
        rc = hk_put(txn, HK_DB_EXTENSIONS, ext, strlen(ext), k, 4, HK_PUT_NOOVERWRITE);
        if (rc != 0)
            return rc;
    }
    size_t i;
    json_t *ev;
    json_array_foreach (json_object_get(rec, "events"), i, ev) {
        const char *name = json_string_value(ev);
        uint32_t tid;
        if (name == NULL)
            continue;
        if ((rc = hk_event_type_register(txn, name, &tid)) != 0)
            return rc;
        rc = hk_put(txn, HK_DB_SUBSCRIPTIONS, name, strlen(name), k, 4, HK_PUT_NOOVERWRITE);
        if (rc != 0 && rc != HK_EEXIST)
            return rc;
    }
    char *text = json_dumps(rec, JSON_COMPACT);
    if (text == NULL)
        return HK_EINVAL;
    rc = hk_put(txn, HK_DB_WEBHOOKS, k, 4, text, strlen(text), 0);
    free(text);
    return rc;
}

int hk_webhook_delete(hk_txn *txn, uint32_t id)
{
    json_t *old;
    int rc = hk_webhook_get(txn, id, &old);
    if (rc != 0)
        return rc;
    rc = unindex(txn, old, id);
    json_decref(old);
    if (rc != 0)
        return rc;
    uint8_t k[4];
    key32(k, id);
    if ((rc = hk_del(txn, HK_DB_WEBHOOKS, k, 4, NULL, 0)) != 0)
        return rc;
    rc = hk_del(txn, HK_DB_STATS, k, 4, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk_webhook_set_locked(hk_txn *txn, uint32_t id, bool locked)
{
    json_t *rec;
    int rc = hk_webhook_get(txn, id, &rec);
    if (rc != 0)
        return rc;
    json_object_set_new(rec, "locked", json_boolean(locked));
    rc = hk_webhook_put(txn, rec);
    json_decref(rec);
    return rc;
}

int hk_webhook_by_extension(hk_txn *txn, const char *ext, uint32_t *id)
{
    hk_val v;
    int rc = hk_get(txn, HK_DB_EXTENSIONS, ext, strlen(ext), &v);
    if (rc != 0)
        return rc;
    if (v.len != 4)
        return HK_ESTORE;
    *id = hk_rd32(v.data);
    return 0;
}

int hk_webhook_each(hk_txn *txn, int (*fn)(json_t *rec, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_WEBHOOKS, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        json_error_t err;
        json_t *rec = json_loadb(v.data, v.len, 0, &err);
        if (rec == NULL)
            continue;
        ret = fn(rec, arg);
        json_decref(rec);
    }
    hk_cursor_close(c);
    return ret;
}

/* Stats record: calls u64, errors u64, consecutive u32, last_error_ms u64, text. */
void hk_webhook_stats_get(hk_txn *txn, uint32_t id, hk_webhook_stats *out)
{
    uint8_t k[4];
    hk_val v;
    memset(out, 0, sizeof(*out));
    key32(k, id);
    if (hk_get(txn, HK_DB_STATS, k, 4, &v) != 0 || v.len < 28)
        return;
    const uint8_t *p = v.data;
    out->calls = hk_rd64(p);
    out->errors = hk_rd64(p + 8);
    out->consecutive = hk_rd32(p + 16);
    out->last_error_ms = hk_rd64(p + 20);
    size_t n = v.len - 28;
    if (n >= sizeof(out->last_error))
        n = sizeof(out->last_error) - 1;
    memcpy(out->last_error, p + 28, n);
    out->last_error[n] = '\0';
}

int hk_webhook_stats_put(hk_txn *txn, uint32_t id, const hk_webhook_stats *st)
{
    uint8_t k[4], buf[28 + sizeof(st->last_error)];
    key32(k, id);
    hk_be64(buf, st->calls);
    hk_be64(buf + 8, st->errors);
    hk_be32(buf + 16, st->consecutive);
    hk_be64(buf + 20, st->last_error_ms);
    size_t n = strnlen(st->last_error, sizeof(st->last_error));
    memcpy(buf + 28, st->last_error, n);
    return hk_put(txn, HK_DB_STATS, k, 4, buf, 28 + n, 0);
}

double hk_webhook_success_rate(const hk_webhook_stats *st)
{
    if (st->calls == 0)
        return 0.0; /* no deliveries yet: no successes to count */
    return 100.0 * (double)(st->calls - st->errors) / (double)st->calls;
}
