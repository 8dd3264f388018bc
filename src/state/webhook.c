/*
 * webhook.c: the webhook table (HK_DB_WEBHOOKS) with its one codec, its
 * indexes (subscriptions by event name, extensions), the statistics table
 * (HK_DB_STATS), the event-type registry and the registry ops (put,
 * delete, lock). Nothing else reads or writes these tables: the state
 * layer's other modules go through tables.h, everything above it through
 * store.h.
 *
 * Record, version 1 (the fixed part first, so that fan-out reads a
 * webhook's state and lock at known offsets without decoding it):
 *   u8 version, u8 state, u8 flags (bit 0: locked), u32 id,
 *   u64 registered_ms, u32 registered_by, u64 updated_ms, u32 updated_by,
 *   u64 prev_secret_until, then strings name, description, url, secret,
 *   prev_secret, extension (NULL when none), then counted lists: events,
 *   headers (name, value), properties (name, JSON text), notify.
 * Version 0 is a JSON object (its first byte is '{'): id, name,
 * description, events [names], url, secret, prevSecret, prevSecretUntil
 * (ms), state ("Active" | "Stopped" | "TooManyErrors"), headers {},
 * properties {}, notify [addresses], locked, extension (string or null),
 * registered (ms), registeredBy, updated (ms), updatedBy. It is only read
 * (below, and rewritten in version 1 when a store is opened).
 *
 * Statistics, version 1: u8 version, u64 calls, u64 errors, u32
 * consecutive, u64 last_error_ms, then the last error's text to the end.
 * Version 0 is the same without the version byte (its first byte is 0).
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "tables.h"

#define WH_FIXED 39    /* bytes before the first string of a version 1 record */
#define STATS_FIXED 28 /* bytes of the version 0 statistics before the text */

/* Log records of a deleted webhook removed in its delete's commit: a huge
 * log cannot stall the group commit; what remains is unreachable and
 * expires with the log retention. */
#define DELETE_LOG_MAX 20000

static void key32(uint8_t k[4], uint32_t id)
{
    hk_be32(k, id);
}

/* ---- version 0: the JSON record -------------------------------------------- */

static const char *rec_str(const json_t *rec, const char *key)
{
    const char *s = json_string_value(json_object_get(rec, key));
    return s ? s : "";
}

static int64_t rec_int(const json_t *rec, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(rec, key));
}

static char **strings_from_json(const json_t *arr, size_t *n)
{
    size_t i, k = 0;
    json_t *v;
    *n = 0;
    if (json_array_size(arr) == 0)
        return NULL;
    char **out = hk_calloc(json_array_size(arr), sizeof(*out));
    json_array_foreach (arr, i, v)
        if (json_is_string(v))
            out[k++] = hk_strdup(json_string_value(v));
    *n = k;
    return out;
}

/* An object's members as pairs; values are strings (headers) or compact JSON text (properties). */
static hk_pair *pairs_from_json(const json_t *obj, bool as_json, size_t *n)
{
    const char *key;
    json_t *v;
    size_t k = 0;
    *n = 0;
    if (json_object_size(obj) == 0)
        return NULL;
    hk_pair *out = hk_calloc(json_object_size(obj), sizeof(*out));
    json_object_foreach ((json_t *)obj, key, v) {
        char *value = as_json ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
                              : (json_is_string(v) ? hk_strdup(json_string_value(v)) : NULL);
        if (value == NULL)
            continue;
        out[k].name = hk_strdup(key);
        out[k].value = value;
        k++;
    }
    *n = k;
    return out;
}

static int from_json(const json_t *rec, hk_webhook *w)
{
    memset(w, 0, sizeof(*w));
    if (!json_is_object(rec))
        return HK_ESTORE;
    w->id = (uint32_t)rec_int(rec, "id");
    w->name = hk_strdup(rec_str(rec, "name"));
    w->description = hk_strdup(rec_str(rec, "description"));
    w->url = hk_strdup(rec_str(rec, "url"));
    w->secret = hk_strdup(rec_str(rec, "secret"));
    w->prev_secret = hk_strdup(rec_str(rec, "prevSecret"));
    w->prev_secret_until = (uint64_t)rec_int(rec, "prevSecretUntil");
    int st = hk_webhook_state_parse(rec_str(rec, "state"));
    /* Only Active delivers: anything else stored is treated as stopped. */
    w->state = st < 0 ? HK_WH_STOPPED : (enum hk_webhook_state)st;
    w->events = strings_from_json(json_object_get(rec, "events"), &w->nevents);
    w->headers = pairs_from_json(json_object_get(rec, "headers"), false, &w->nheaders);
    w->properties = pairs_from_json(json_object_get(rec, "properties"), true, &w->nproperties);
    w->notify = strings_from_json(json_object_get(rec, "notify"), &w->nnotify);
    w->locked = json_is_true(json_object_get(rec, "locked"));
    const char *ext = rec_str(rec, "extension");
    w->extension = *ext ? hk_strdup(ext) : NULL;
    w->registered_ms = (uint64_t)rec_int(rec, "registered");
    w->registered_by = (uint32_t)rec_int(rec, "registeredBy");
    w->updated_ms = (uint64_t)rec_int(rec, "updated");
    w->updated_by = (uint32_t)rec_int(rec, "updatedBy");
    return 0;
}

/* ---- the record codec ------------------------------------------------------- */

static void w_strings(hk__wbuf *b, char *const *v, size_t n)
{
    hk__w_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        hk__w_str(b, v[i] ? v[i] : "");
}

static void w_pairs(hk__wbuf *b, const hk_pair *p, size_t n)
{
    hk__w_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        hk__w_str(b, p[i].name ? p[i].name : "");
        hk__w_str(b, p[i].value ? p[i].value : "");
    }
}

void hk__webhook_encode(const hk_webhook *w, hk__wbuf *b)
{
    hk__w_u8(b, HK__V1);
    hk__w_u8(b, (uint8_t)w->state);
    hk__w_u8(b, w->locked ? 1 : 0);
    hk__w_u32(b, w->id);
    hk__w_u64(b, w->registered_ms);
    hk__w_u32(b, w->registered_by);
    hk__w_u64(b, w->updated_ms);
    hk__w_u32(b, w->updated_by);
    hk__w_u64(b, w->prev_secret_until);
    hk__w_str(b, w->name ? w->name : "");
    hk__w_str(b, w->description ? w->description : "");
    hk__w_str(b, w->url ? w->url : "");
    hk__w_str(b, w->secret ? w->secret : "");
    hk__w_str(b, w->prev_secret ? w->prev_secret : "");
    hk__w_str(b, w->extension && *w->extension ? w->extension : NULL);
    w_strings(b, w->events, w->nevents);
    w_pairs(b, w->headers, w->nheaders);
    w_pairs(b, w->properties, w->nproperties);
    w_strings(b, w->notify, w->nnotify);
}

/* A list count that the remaining bytes can hold (each item takes at least min bytes). */
static size_t r_count(hk__rbuf *r, size_t min)
{
    uint32_t n = hk__r_u32(r);
    if (r->bad || n > (r->len - r->off) / min) {
        r->bad = true;
        return 0;
    }
    return n;
}

static char *r_text(hk__rbuf *r)
{
    char *s = hk__r_str(r, NULL);
    return s ? s : hk_strdup("");
}

static char **r_strings(hk__rbuf *r, size_t *n)
{
    *n = r_count(r, 4);
    if (*n == 0)
        return NULL;
    char **v = hk_calloc(*n, sizeof(*v));
    for (size_t i = 0; i < *n; i++)
        v[i] = r_text(r);
    return v;
}

static hk_pair *r_pairs(hk__rbuf *r, size_t *n)
{
    *n = r_count(r, 8);
    if (*n == 0)
        return NULL;
    hk_pair *p = hk_calloc(*n, sizeof(*p));
    for (size_t i = 0; i < *n; i++) {
        p[i].name = r_text(r);
        p[i].value = r_text(r);
    }
    return p;
}

static int decode_v1(const void *data, size_t len, hk_webhook *w)
{
    hk__rbuf r = hk__rbuf_of(data, len);
    hk__r_u8(&r);
    uint8_t state = hk__r_u8(&r);
    uint8_t flags = hk__r_u8(&r);
    w->state = state <= HK_WH_TOO_MANY_ERRORS ? (enum hk_webhook_state)state : HK_WH_STOPPED;
    w->locked = flags & 1;
    w->id = hk__r_u32(&r);
    w->registered_ms = hk__r_u64(&r);
    w->registered_by = hk__r_u32(&r);
    w->updated_ms = hk__r_u64(&r);
    w->updated_by = hk__r_u32(&r);
    w->prev_secret_until = hk__r_u64(&r);
    w->name = r_text(&r);
    w->description = r_text(&r);
    w->url = r_text(&r);
    w->secret = r_text(&r);
    w->prev_secret = r_text(&r);
    w->extension = hk__r_str(&r, NULL);
    w->events = r_strings(&r, &w->nevents);
    w->headers = r_pairs(&r, &w->nheaders);
    w->properties = r_pairs(&r, &w->nproperties);
    w->notify = r_strings(&r, &w->nnotify);
    if (!hk__r_done(&r)) {
        hk_webhook_free(w);
        return HK_ESTORE;
    }
    if (w->extension != NULL && *w->extension == '\0') {
        free(w->extension);
        w->extension = NULL;
    }
    return 0;
}

int hk__webhook_decode(const void *data, size_t len, hk_webhook *w)
{
    memset(w, 0, sizeof(*w));
    if (len == 0)
        return HK_ESTORE;
    const uint8_t *p = data;
    if (p[0] == HK__V1)
        return decode_v1(data, len, w);
    if (p[0] != '{')
        return HK_ESTORE;
    json_t *rec = json_loadb(data, len, 0, NULL);
    if (rec == NULL)
        return HK_ESTORE;
    int rc = from_json(rec, w);
    json_decref(rec);
    return rc;
}

int hk__webhook_read(hk_txn *txn, uint32_t id, hk_webhook *out)
{
    uint8_t k[4];
    hk_val v;
    key32(k, id);
    memset(out, 0, sizeof(*out));
    int rc = hk_get(txn, HK_DB_WEBHOOKS, k, 4, &v);
    if (rc != 0)
        return rc;
    if ((rc = hk__webhook_decode(v.data, v.len, out)) != 0)
        return rc;
    /* The key is the id: a record saying otherwise (a JSON one without it,
     * a damaged one) must not make a rewrite land under another key. */
    out->id = id;
    return 0;
}

int hk__webhook_peek(hk_txn *txn, uint32_t id, enum hk_webhook_state *state, bool *locked)
{
    uint8_t k[4];
    hk_val v;
    key32(k, id);
    int rc = hk_get(txn, HK_DB_WEBHOOKS, k, 4, &v);
    if (rc != 0)
        return rc;
    const uint8_t *p = v.data;
    if (v.len >= WH_FIXED && p[0] == HK__V1) {
        *state = p[1] <= HK_WH_TOO_MANY_ERRORS ? (enum hk_webhook_state)p[1] : HK_WH_STOPPED;
        *locked = p[2] & 1;
        return 0;
    }
    /* A record in the old format: decoded in full until it is next written. */
    hk_webhook w;
    if ((rc = hk__webhook_decode(v.data, v.len, &w)) != 0)
        return rc;
    *state = w.state;
    *locked = w.locked;
    hk_webhook_free(&w);
    return 0;
}

int hk__webhook_count_states(hk_txn *txn, uint64_t counts[3])
{
    hk_cursor *c;
    hk_val k, v;
    counts[0] = counts[1] = counts[2] = 0;
    int rc = hk_cursor_open(txn, HK_DB_WEBHOOKS, &c);
    if (rc != 0)
        return rc;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        enum hk_webhook_state state;
        bool locked;
        /* A record that cannot be read is left out, as every listing leaves it out. */
        if (k.len == 4 && hk__webhook_peek(txn, hk_rd32(k.data), &state, &locked) == 0)
            counts[state]++;
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

static int put_record(hk_txn *txn, const hk_webhook *w)
{
    uint8_t k[4];
    hk__wbuf b = {0};
    key32(k, w->id);
    hk__webhook_encode(w, &b);
    int rc = hk_put(txn, HK_DB_WEBHOOKS, k, 4, b.p, b.len, 0);
    free(b.p);
    return rc;
}

/* ---- indexes and event types ------------------------------------------------ */

int hk__event_type_id(hk_txn *txn, const char *name, uint32_t *id)
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

int hk__event_type_register(hk_txn *txn, const char *name, uint32_t *id)
{
    int rc = hk__event_type_id(txn, name, id);
    if (rc != HK_ENOTFOUND)
        return rc;
    uint64_t next;
    if ((rc = hk_seq_next(txn, "seq:event_type", &next)) != 0)
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

int hk__event_types_each(hk_txn *txn, int (*fn)(uint32_t id, const char *name, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_EVENT_TYPES, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 4)
            continue;
        char *name = hk_strndup(v.data, v.len);
        ret = fn(hk_rd32(k.data), name, arg);
        free(name);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__webhook_by_extension(hk_txn *txn, const char *ext, uint32_t *id)
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

/* Removes the index entries of a stored webhook. */
static int unindex(hk_txn *txn, const hk_webhook *old)
{
    uint8_t k[4];
    key32(k, old->id);
    for (size_t i = 0; i < old->nevents; i++) {
        const char *name = old->events[i];
        int rc = hk_del(txn, HK_DB_SUBSCRIPTIONS, name, strlen(name), k, 4);
        if (rc != 0 && rc != HK_ENOTFOUND)
            return rc;
    }
    if (old->extension != NULL && *old->extension != '\0') {
        /* Only its own entry: another webhook may hold the name now. */
        uint32_t holder;
        int rc = hk__webhook_by_extension(txn, old->extension, &holder);
        if (rc == 0 && holder == old->id)
            rc = hk_del(txn, HK_DB_EXTENSIONS, old->extension, strlen(old->extension), NULL, 0);
        if (rc != 0 && rc != HK_ENOTFOUND)
            return rc;
    }
    return 0;
}

int hk__webhook_write(hk_txn *txn, hk_webhook *w, const hk_webhook *old)
{
    int rc;
    if (w->id == 0) {
        uint64_t next;
        if ((rc = hk_seq_next(txn, "seq:webhook", &next)) != 0)
            return rc;
        w->id = (uint32_t)next;
    }
    if (old != NULL && (rc = unindex(txn, old)) != 0)
        return rc;
    uint8_t k[4];
    key32(k, w->id);
    if (w->extension != NULL && *w->extension != '\0') {
        rc = hk_put(txn, HK_DB_EXTENSIONS, w->extension, strlen(w->extension), k, 4, HK_PUT_NOOVERWRITE);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < w->nevents; i++) {
        const char *name = w->events[i];
        uint32_t tid;
        if ((rc = hk__event_type_register(txn, name, &tid)) != 0)
            return rc;
        rc = hk_put(txn, HK_DB_SUBSCRIPTIONS, name, strlen(name), k, 4, HK_PUT_NOOVERWRITE);
        if (rc != 0 && rc != HK_EEXIST)
            return rc;
    }
    return put_record(txn, w);
}

int hk__webhook_upgrade_all(hk_txn *txn, size_t *upgraded)
{
    hk_cursor *c;
    hk_val k, v;
    uint32_t *ids = NULL;
    size_t n = 0;
    *upgraded = 0;
    /* First the ids of the old records, then each is rewritten: no write under the walk. */
    int rc = hk_cursor_open(txn, HK_DB_WEBHOOKS, &c);
    if (rc != 0)
        return rc;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 4 || v.len == 0 || ((const uint8_t *)v.data)[0] != '{')
            continue;
        if ((n & (n + 1)) == 0 || n == 0)
            ids = hk_realloc(ids, (2 * n + 2) * sizeof(*ids));
        ids[n++] = hk_rd32(k.data);
    }
    hk_cursor_close(c);
    if (rc == HK_ENOTFOUND)
        rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        hk_webhook w;
        /* Unreadable records stay as they are (and get no deliveries). */
        if (hk__webhook_read(txn, ids[i], &w) != 0)
            continue;
        w.id = ids[i];
        rc = put_record(txn, &w);
        hk_webhook_free(&w);
        if (rc == 0)
            (*upgraded)++;
    }
    free(ids);
    return rc;
}

int hk__webhook_remove(hk_txn *txn, const hk_webhook *old)
{
    int rc = unindex(txn, old);
    if (rc != 0)
        return rc;
    uint8_t k[4];
    key32(k, old->id);
    if ((rc = hk_del(txn, HK_DB_WEBHOOKS, k, 4, NULL, 0)) != 0)
        return rc;
    rc = hk_del(txn, HK_DB_STATS, k, 4, NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* ---- statistics ------------------------------------------------------------- */

int hk__stats_read(hk_txn *txn, uint32_t id, hk_webhook_stats *out)
{
    uint8_t k[4];
    hk_val v;
    memset(out, 0, sizeof(*out));
    key32(k, id);
    int rc = hk_get(txn, HK_DB_STATS, k, 4, &v);
    if (rc == HK_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    const uint8_t *p = v.data;
    size_t len = v.len;
    if (len > 0 && p[0] == HK__V1) {
        p++;
        len--;
    } else if (len > 0 && p[0] != 0) {
        len = 0; /* neither version: malformed */
    }
    if (len < STATS_FIXED) {
        /* Counters only: losing them must not stop the webhook's outcomes
         * (its deliveries would be resent forever) nor its listing. The
         * next outcome writes them afresh. */
        hk_warn("store: statistics of webhook %u cannot be read; counting from zero", id);
        return 0;
    }
    out->calls = hk_rd64(p);
    out->errors = hk_rd64(p + 8);
    out->consecutive = hk_rd32(p + 16);
    out->last_error_ms = hk_rd64(p + 20);
    size_t n = len - STATS_FIXED;
    if (n >= sizeof(out->last_error))
        n = sizeof(out->last_error) - 1;
    memcpy(out->last_error, p + STATS_FIXED, n);
    out->last_error[n] = '\0';
    return 0;
}

int hk__stats_write(hk_txn *txn, uint32_t id, const hk_webhook_stats *st)
{
    uint8_t k[4], buf[1 + STATS_FIXED + sizeof(st->last_error)];
    key32(k, id);
    buf[0] = HK__V1;
    hk_be64(buf + 1, st->calls);
    hk_be64(buf + 9, st->errors);
    hk_be32(buf + 17, st->consecutive);
    hk_be64(buf + 21, st->last_error_ms);
    size_t n = strnlen(st->last_error, sizeof(st->last_error));
    memcpy(buf + 1 + STATS_FIXED, st->last_error, n);
    return hk_put(txn, HK_DB_STATS, k, 4, buf, 1 + STATS_FIXED + n, 0);
}

/* ---- registry ops ------------------------------------------------------------ */

/* HTTP dates have whole seconds: If-Unmodified-Since compares at that granularity. */
static bool modified_since(const hk_webhook *old, uint64_t since_ms)
{
    return since_ms != 0 && old->updated_ms / 1000 > since_ms / 1000;
}

int hk__apply_webhook_put(hk_txn *txn, hk_op *op)
{
    hk_op_webhook_put *p = &op->u.webhook_put;
    hk_webhook w, old;
    bool have_old = false;
    int rc = 0;
    p->id = 0;
    if (p->webhook == NULL)
        return HK_EINVAL;
    memset(&old, 0, sizeof(old));
    hk_webhook_copy(&w, p->webhook);
    if (w.id != 0) {
        if ((rc = hk__webhook_read(txn, w.id, &old)) != 0)
            goto done;
        have_old = true;
        if (p->by_client && old.locked) {
            rc = HK_ELOCKED;
            goto done;
        }
        if (modified_since(&old, p->unmodified_since_ms)) {
            rc = HK_ECONFLICT;
            goto done;
        }
        /* Only an operator changes the lock. */
        if (p->by_client)
            w.locked = old.locked;
    }
    if ((rc = hk__webhook_write(txn, &w, have_old ? &old : NULL)) != 0)
        goto done;
    if (have_old && old.state == HK_WH_TOO_MANY_ERRORS && w.state == HK_WH_ACTIVE) {
        /* Re-activated by a client: failures are counted afresh. */
        hk_webhook_stats st;
        if ((rc = hk__stats_read(txn, w.id, &st)) != 0)
            goto done;
        st.consecutive = 0;
        if ((rc = hk__stats_write(txn, w.id, &st)) != 0)
            goto done;
    }
    if ((rc = hk__state_event_store(txn, op->now_ms, w.id, &p->event)) != 0)
        goto done;
    p->id = w.id;
done:
    hk_webhook_free(&w);
    hk_webhook_free(&old);
    return rc;
}

int hk__apply_webhook_delete(hk_txn *txn, hk_op *op)
{
    const hk_op_webhook_delete *p = &op->u.webhook_delete;
    hk_webhook old;
    bool more;
    int rc = hk__webhook_read(txn, p->id, &old);
    if (rc != 0)
        return rc;
    if (p->by_client && old.locked)
        rc = HK_ELOCKED;
    else if (modified_since(&old, p->unmodified_since_ms))
        rc = HK_ECONFLICT;
    else if ((rc = hk__webhook_remove(txn, &old)) == 0)
        rc = hk__log_drop_webhook(txn, p->id, DELETE_LOG_MAX, &more);
    hk_webhook_free(&old);
    return rc;
}

int hk__apply_webhook_lock(hk_txn *txn, hk_op *op)
{
    const hk_op_webhook_lock *p = &op->u.webhook_lock;
    hk_webhook w;
    int rc = hk__webhook_read(txn, p->id, &w);
    if (rc != 0)
        return rc;
    w.locked = p->locked;
    rc = put_record(txn, &w);
    hk_webhook_free(&w);
    return rc;
}
