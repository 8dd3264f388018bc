/*
 * attempt_log.c: attempt records keyed by webhook id (u32) + log id (u64)
 * in HK_DB_LOG, with a time index (time u64 + webhook id + log id) in
 * HK_DB_LOG_TIME for pruning, and the record codec.
 *
 * Record, version 1: u8 version, u64 started_ms (at offset 1, so that a
 * deletion finds the time-index key without decoding the rest), u64
 * event_id, u32 attempt, u64 duration_ms, u8 flags (1 success, 2
 * exhausted, 4 disabled, 8 sync), u32 status, u32 user_id, u64
 * next_due_ms, then strings event_name, event_uuid, error, url, request,
 * response.
 *
 * Version 2 (written today): version 1's layout with flag 16 (lean) added.
 * A lean record (a successful queued delivery) keeps, in place of the
 * request, the parts its request is rendered again from with its event:
 * strings user_agent, webhook_name, props, custom_headers, sig_so,
 * sig_standard (model.h); others keep the request as in version 1. The
 * fixed fields are where version 1 has them, so the peek and the time
 * index read both alike. Version 0 is a JSON object {"id", "webhookId", "eventId",
 * "event", "eventUuid", "attempt", "time" (ms), "durationMs", "url",
 * "request", "response", "result" (the HTTP status as a string, "0" when
 * no response came), "success", "error", "userId", "exhausted"}, read only.
 *
 * request holds the request line, headers and body as sent; response the
 * status line, headers and body as received. Each is cut at
 * HK_ATTEMPT_MAX_TEXT bytes, and the response body never holds more than
 * [delivery] max_response_bytes. Bytes that are not valid UTF-8 are stored
 * as U+FFFD; everything else is kept byte for byte.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tables.h"
#include "utf8.h"

#define F_SUCCESS 1u
#define F_EXHAUSTED 2u
#define F_DISABLED 4u
#define F_SYNC 8u
#define F_LEAN 16u

/* The version records are written in; version 1 is read alike (without lean records). */
#define V2 2

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

/*
 * A peer's bytes as stored text, appended to b. Valid UTF-8 (NUL included)
 * is kept as it is, so that text compares byte for byte with what went
 * over the wire; each byte that is not part of a valid sequence becomes
 * U+FFFD, so that every view of the record is valid JSON text. At most
 * HK_ATTEMPT_MAX_TEXT bytes of the input are kept.
 */
static void w_text(hk__wbuf *b, const char *s, size_t len)
{
    if (s == NULL)
        s = "", len = 0;
    if (len > HK_ATTEMPT_MAX_TEXT)
        len = HK_ATTEMPT_MAX_TEXT;
    if (hk_utf8_valid(s, len)) {
        hk__w_strn(b, s, len);
        return;
    }
    hk_buf clean = HK_BUF_INIT;
    hk_utf8_sanitize(&clean, s, len);
    hk__w_strn(b, clean.data, clean.len);
    hk_buf_free(&clean);
}

static void encode(hk__wbuf *b, const hk_attempt *a, bool disabled)
{
    unsigned flags = (a->success ? F_SUCCESS : 0) | (a->exhausted ? F_EXHAUSTED : 0) | (disabled ? F_DISABLED : 0) |
                     (a->sync ? F_SYNC : 0) | (a->lean ? F_LEAN : 0);
    hk__w_u8(b, V2);
    hk__w_u64(b, a->started_ms);
    hk__w_u64(b, a->event_id);
    hk__w_u32(b, a->attempt);
    hk__w_u64(b, a->duration_ms);
    hk__w_u8(b, (uint8_t)flags);
    hk__w_u32(b, (uint32_t)a->status);
    hk__w_u32(b, a->user_id);
    hk__w_u64(b, a->next_due_ms);
    w_text(b, a->event_name, a->event_name ? strlen(a->event_name) : 0);
    w_text(b, a->event_uuid, a->event_uuid ? strlen(a->event_uuid) : 0);
    w_text(b, a->error, a->error ? strlen(a->error) : 0);
    w_text(b, a->url, a->url ? strlen(a->url) : 0);
    if (a->lean) {
        const char *parts[] = {a->user_agent, a->webhook_name, a->props, a->custom_headers, a->sig_so, a->sig_standard};
        for (size_t i = 0; i < HK_ARRAY_SIZE(parts); i++)
            w_text(b, parts[i], parts[i] ? strlen(parts[i]) : 0);
    } else {
        w_text(b, a->request, a->request_len);
    }
    w_text(b, a->response, a->response_len);
}

static char *r_text(hk__rbuf *r, size_t *n)
{
    char *s = hk__r_str(r, n);
    return s ? s : hk_strdup("");
}

/* Versions 1 and 2. brief: request, response and the lean parts are skipped, left NULL and 0. */
static int decode_v1(const void *data, size_t len, hk_attempt *a, bool brief)
{
    hk__rbuf r = hk__rbuf_of(data, len);
    unsigned version = hk__r_u8(&r);
    a->started_ms = hk__r_u64(&r);
    a->event_id = hk__r_u64(&r);
    a->attempt = hk__r_u32(&r);
    a->duration_ms = hk__r_u64(&r);
    unsigned flags = hk__r_u8(&r);
    a->success = flags & F_SUCCESS;
    a->exhausted = flags & F_EXHAUSTED;
    a->disabled = flags & F_DISABLED;
    a->sync = flags & F_SYNC;
    a->lean = version >= V2 && (flags & F_LEAN);
    a->status = (int)hk__r_u32(&r);
    a->user_id = hk__r_u32(&r);
    a->next_due_ms = hk__r_u64(&r);
    a->event_name = r_text(&r, NULL);
    a->event_uuid = r_text(&r, NULL);
    a->error = r_text(&r, NULL);
    a->url = r_text(&r, NULL);
    if (brief) {
        const char *s;
        size_t n;
        for (int i = a->lean ? 6 : 1; i > 0; i--)
            hk__r_strview(&r, &s, &n);
        hk__r_strview(&r, &s, &n);
    } else {
        if (a->lean) {
            a->user_agent = r_text(&r, NULL);
            a->webhook_name = r_text(&r, NULL);
            a->props = r_text(&r, NULL);
            a->custom_headers = r_text(&r, NULL);
            a->sig_so = r_text(&r, NULL);
            a->sig_standard = r_text(&r, NULL);
        } else {
            a->request = r_text(&r, &a->request_len);
        }
        a->response = r_text(&r, &a->response_len);
    }
    if (!hk__r_done(&r)) {
        hk_attempt_free(a);
        return HK_ESTORE;
    }
    return 0;
}

static char *json_text(const json_t *rec, const char *key, size_t *len)
{
    const json_t *v = json_object_get(rec, key);
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (len != NULL)
        *len = n;
    return hk_strndup(s ? s : "", n);
}

static int decode_v0(const void *data, size_t len, hk_attempt *a)
{
    json_t *rec = json_loadb(data, len, 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return HK_ESTORE;
    }
    a->event_id = (uint64_t)json_integer_value(json_object_get(rec, "eventId"));
    a->event_name = json_text(rec, "event", NULL);
    a->event_uuid = json_text(rec, "eventUuid", NULL);
    a->attempt = (uint32_t)json_integer_value(json_object_get(rec, "attempt"));
    a->started_ms = (uint64_t)json_integer_value(json_object_get(rec, "time"));
    a->duration_ms = (uint64_t)json_integer_value(json_object_get(rec, "durationMs"));
    a->url = json_text(rec, "url", NULL);
    a->request = json_text(rec, "request", &a->request_len);
    a->response = json_text(rec, "response", &a->response_len);
    const char *result = json_string_value(json_object_get(rec, "result"));
    a->status = result ? atoi(result) : 0;
    a->success = json_is_true(json_object_get(rec, "success"));
    a->error = json_text(rec, "error", NULL);
    a->user_id = (uint32_t)json_integer_value(json_object_get(rec, "userId"));
    a->exhausted = json_is_true(json_object_get(rec, "exhausted"));
    /* Version 0 logged synchronous calls with event id 0 and nothing else to tell them by. */
    a->sync = a->event_id == 0;
    json_decref(rec);
    return 0;
}

static int attempt_decode(const void *data, size_t len, uint32_t wid, uint64_t lid, hk_attempt *out, bool brief)
{
    memset(out, 0, sizeof(*out));
    const uint8_t *p = data;
    int rc;
    if (len > 0 && (p[0] == HK__V1 || p[0] == V2))
        rc = decode_v1(data, len, out, brief);
    else if (len > 0 && p[0] == '{')
        rc = decode_v0(data, len, out);
    else
        rc = HK_ESTORE;
    if (rc == 0) {
        out->id = lid;
        out->webhook_id = wid;
    }
    return rc;
}

int hk__attempt_decode(const void *data, size_t len, uint32_t wid, uint64_t lid, hk_attempt *out)
{
    return attempt_decode(data, len, wid, lid, out, false);
}

int hk__attempt_peek(const void *data, size_t len, hk__attempt_brief *out)
{
    const uint8_t *p = data;
    memset(out, 0, sizeof(*out));
    /* Version 1 keeps these at fixed offsets, before the texts (see the layout above). */
    if (len >= 46 && (p[0] == HK__V1 || p[0] == V2)) {
        unsigned flags = p[29];
        out->started_ms = hk_rd64(p + 1);
        out->event_id = hk_rd64(p + 9);
        out->success = flags & F_SUCCESS;
        out->exhausted = flags & F_EXHAUSTED;
        out->sync = flags & F_SYNC;
        out->next_due_ms = hk_rd64(p + 38);
        return 0;
    }
    if (len > 0 && (p[0] == HK__V1 || p[0] == V2))
        return HK_ESTORE;
    hk_attempt a;
    int rc = attempt_decode(data, len, 0, 0, &a, true);
    if (rc != 0)
        return rc;
    out->started_ms = a.started_ms;
    out->event_id = a.event_id;
    out->success = a.success;
    out->exhausted = a.exhausted;
    out->sync = a.sync;
    out->next_due_ms = a.next_due_ms;
    hk_attempt_free(&a);
    return 0;
}

int hk__log_append(hk_txn *txn, const hk_attempt *a, bool disabled, uint64_t *log_id)
{
    uint64_t id;
    int rc = hk_seq_next(txn, "seq:log", &id);
    if (rc != 0)
        return rc;
    hk__wbuf b = {0};
    encode(&b, a, disabled);
    uint8_t k[12], tk[20];
    log_key(k, a->webhook_id, id);
    rc = hk_put(txn, HK_DB_LOG, k, sizeof(k), b.p, b.len, 0);
    free(b.p);
    if (rc != 0)
        return rc;
    time_key(tk, a->started_ms, a->webhook_id, id);
    rc = hk_put(txn, HK_DB_LOG_TIME, tk, sizeof(tk), "", 0, 0);
    if (rc == 0 && log_id != NULL)
        *log_id = id;
    return rc;
}

int hk__log_read(hk_txn *txn, uint32_t wid, uint64_t lid, hk_attempt *out)
{
    uint8_t k[12];
    hk_val v;
    log_key(k, wid, lid);
    memset(out, 0, sizeof(*out));
    int rc = hk_get(txn, HK_DB_LOG, k, sizeof(k), &v);
    if (rc != 0)
        return rc;
    return hk__attempt_decode(v.data, v.len, wid, lid, out);
}

int hk__log_each(hk_txn *txn, uint32_t wid, uint64_t from_id, bool newest_first, bool brief,
                 int (*fn)(const hk_attempt *a, void *arg), void *arg)
{
    hk_cursor *c;
    uint8_t start[12];
    log_key(start, wid, from_id != 0 ? from_id : (newest_first ? UINT64_MAX : 0));
    hk_val k = {start, sizeof(start)}, v;
    int rc = hk_cursor_open(txn, HK_DB_LOG, &c);
    if (rc != 0)
        return rc;
    enum hk_cursor_op step = newest_first ? HK_PREV : HK_NEXT;
    rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    if (newest_first) {
        /* Seeking lands on the first key >= start: step back unless it is start itself. */
        if (rc == HK_ENOTFOUND)
            rc = hk_cursor_get(c, HK_LAST, &k, &v);
        else if (rc == 0 && (k.len != sizeof(start) || memcmp(k.data, start, sizeof(start)) != 0))
            rc = hk_cursor_get(c, HK_PREV, &k, &v);
    }
    int ret = 0;
    for (; rc == 0 && ret == 0; rc = hk_cursor_get(c, step, &k, &v)) {
        if (k.len != 12 || hk_rd32(k.data) != wid)
            break;
        hk_attempt a;
        /* A record that cannot be read is left out of the listing, as before. */
        if (attempt_decode(v.data, v.len, wid, hk_rd64((const uint8_t *)k.data + 4), &a, brief) != 0)
            continue;
        ret = fn(&a, arg);
        hk_attempt_free(&a);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* ---- deleting ------------------------------------------------------------------ */

struct prune_run {
    uint64_t before;
    uint64_t removed;
};

/* Time-index entries older than the run's limit. */
static bool older(const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    return k->len == 20 && hk_rd64(k->data) < ((struct prune_run *)arg)->before;
}

/* A time-index entry takes its record (webhook id + log id) with it. */
static int drop_record(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    HK_UNUSED(v);
    int rc = hk_del(txn, HK_DB_LOG, (const uint8_t *)k->data + 8, 12, NULL, 0);
    if (rc == 0)
        ((struct prune_run *)arg)->removed++;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__log_prune(hk_txn *txn, uint64_t before_ms, uint64_t max, uint64_t *removed, bool *more)
{
    struct prune_run run = {before_ms, 0};
    int rc = hk_delete_run(txn, HK_DB_LOG_TIME, NULL, older, drop_record, &run, (size_t)max, more);
    *removed += run.removed;
    return rc;
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
    const uint8_t *p = v->data;
    uint64_t started;
    if (v->len >= 9 && (p[0] == HK__V1 || p[0] == V2)) {
        started = hk_rd64(p + 1);
    } else {
        hk_attempt a;
        if (hk__attempt_decode(v->data, v->len, 0, 0, &a) != 0)
            return 0; /* unreadable: its index entry goes with the log retention */
        started = a.started_ms;
        hk_attempt_free(&a);
    }
    uint8_t tk[20];
    time_key(tk, started, hk_rd32(k->data), hk_rd64((const uint8_t *)k->data + 4));
    int rc = hk_del(txn, HK_DB_LOG_TIME, tk, sizeof(tk), NULL, 0);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk__log_drop_webhook(hk_txn *txn, uint32_t webhook_id, size_t max, bool *more)
{
    uint8_t prefix[4];
    hk_be32(prefix, webhook_id);
    hk_val from = {prefix, 4};
    *more = false;
    return hk_delete_run(txn, HK_DB_LOG, &from, of_webhook, drop_time_entry, prefix, max, more);
}
