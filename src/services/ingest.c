/*
 * ingest.c: signals. A signal is stored with its fan-out (one queue entry
 * per Active webhook subscribed to its name) and its Idempotency-Key in one
 * commit; once that commit is done, its deliveries go straight into the
 * window (what does not fit waits in the queue for the loader). State
 * events (`webhook{ID}.<kind>`) are signals of the engine's own.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "webhook.h"

#define QKEY_LEN 20 /* webhook id (4) + due ms (8) + event id (8) */
#define QVAL_LEN 12 /* attempts made (4) + first attempt ms (8) */

void hk_signal_free(hk_signal *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->data);
    free(s->changes);
    free(s->idem_key);
    free(s->route);
    free(s->webhooks);
    free(s);
}

static int signal_apply(hk_txn *txn, hk_write *w)
{
    hk_signal *s = hk_container_of(w, hk_signal, w);
    uint64_t now = s->event.ts_ms;
    int rc;
    s->nwebhooks = 0;
    s->duplicate = false;

    uint8_t ikey[4 + HK_IDEMPOTENCY_KEY_MAX];
    size_t iklen = 0;
    if (s->idem_key != NULL) {
        iklen = strlen(s->idem_key);
        hk_be32(ikey, s->user_id);
        memcpy(ikey + 4, s->idem_key, iklen);
        iklen += 4;
        hk_val v;
        if (hk_get(txn, HK_DB_IDEMPOTENCY, ikey, iklen, &v) == 0 && v.len == 16 &&
            hk_rd64(v.data) + s->idem_window_ms > now) {
            s->duplicate = true;
            s->event.id = hk_rd64((const uint8_t *)v.data + 8);
            return 0;
        }
    }

    uint64_t eid;
    if ((rc = hk_seq_next(txn, "seq:event", &eid)) != 0)
        return rc;
    s->event.id = eid;
    uint8_t *rec;
    size_t rlen = hk_event_encode(&s->event, &rec);
    uint8_t ek[8];
    hk_be64(ek, eid);
    rc = hk_put(txn, HK_DB_EVENTS, ek, 8, rec, rlen, 0);
    free(rec);
    if (rc != 0)
        return rc;
    const char *route = s->route ? s->route : s->name;
    uint32_t tid;
    if ((rc = hk_event_type_register(txn, route, &tid)) != 0)
        return rc;

    hk_cursor *c;
    if ((rc = hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c)) != 0)
        return rc;
    size_t nlen = strlen(route);
    hk_val k = {route, nlen}, v;
    uint8_t qv[QVAL_LEN];
    hk_be32(qv, 0);
    hk_be64(qv + 4, now);
    for (rc = hk_cursor_get(c, HK_SEEK_EXACT, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != nlen || memcmp(k.data, route, nlen) != 0 || v.len != 4)
            break;
        uint32_t wid = hk_rd32(v.data);
        if (wid == s->exclude)
            continue;
        hk_val wv;
        if (hk_get(txn, HK_DB_WEBHOOKS, v.data, 4, &wv) != 0)
            continue;
        json_error_t jerr;
        json_t *wrec = json_loadb(wv.data, wv.len, 0, &jerr);
        bool active = wrec != NULL && strcmp(hk_wh_str(wrec, "state"), HK_STATE_ACTIVE) == 0;
        json_decref(wrec);
        if (!active)
            continue;
        uint8_t q[QKEY_LEN];
        hk_be32(q, wid);
        hk_be64(q + 4, now);
        hk_be64(q + 12, eid);
        int prc = hk_put(txn, HK_DB_QUEUE, q, QKEY_LEN, qv, QVAL_LEN, 0);
        if (prc != 0) {
            hk_cursor_close(c);
            return prc;
        }
        if (s->nwebhooks == s->webhooks_cap) {
            s->webhooks_cap = s->webhooks_cap ? s->webhooks_cap * 2 : 8;
            s->webhooks = hk_realloc(s->webhooks, s->webhooks_cap * sizeof(*s->webhooks));
        }
        s->webhooks[s->nwebhooks++] = wid;
    }
    hk_cursor_close(c);
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    if (s->idem_key != NULL) {
        uint8_t iv[16];
        hk_be64(iv, now);
        hk_be64(iv + 8, eid);
        if ((rc = hk_put(txn, HK_DB_IDEMPOTENCY, ikey, iklen, iv, 16, 0)) != 0)
            return rc;
        uint8_t tkey[8 + sizeof(ikey)];
        hk_be64(tkey, now);
        memcpy(tkey + 8, ikey, iklen);
        if ((rc = hk_put(txn, HK_DB_IDEMPOTENCY_TIME, tkey, 8 + iklen, "", 0, 0)) != 0)
            return rc;
    }
    return 0;
}

/* Hands the new deliveries to the window directly; what does not fit stays
 * queued for the loader. */
static void fan_out(hk_engine *e, hk_signal *s)
{
    hk_txn *txn;
    bool left = false;
    if (hk_kv_read(e->store, &txn) != 0) {
        left = true;
        goto out_load;
    }
    e->pass++; /* the webhooks' records are read afresh */
    for (size_t i = 0; i < s->nwebhooks; i++) {
        struct hk__wstate *ws = hk__ws_get(e, txn, s->webhooks[i]);
        if (hk__job_find(e, ws->id, s->event.id) != NULL)
            continue;
        if (hk__admit(e, ws) == 0) {
            left = true;
            continue;
        }
        hk__job_new(e, ws, &s->event, s->event.ts_ms, 0, s->event.ts_ms);
    }
    hk_txn_end(txn);
out_load:
    if (left) {
        e->more_due = true;
        hk__schedule_load(e, 0);
    }
    hk__dispatch(e);
}

static void signal_done(hk_write *w, int status)
{
    hk_signal *s = hk_container_of(w, hk_signal, w);
    hk_engine *e = s->engine;
    if (status == 0 && !s->duplicate && s->nwebhooks > 0 && !e->stopping)
        fan_out(e, s);
    s->done(s, status);
}

void hk_engine_signal(hk_engine *e, hk_signal *s)
{
    s->engine = e;
    s->idem_window_ms = e->o.idempotency_window_ms;
    s->event.ts_ms = hk_clock_wall(e->clock);
    s->event.name = s->name;
    s->event.name_len = strlen(s->name);
    s->event.data = s->data;
    s->event.data_len = s->data_len;
    s->event.changes = s->changes;
    s->event.changes_len = s->changes_len;
    s->event.user_id = s->user_id;
    s->event.primary_key = s->primary_key;
    /* EventIds come from a generator seeded once from the kernel: unique
     * and unpredictable enough, without a system call per event. */
    uint64_t a = hk__rand(e), b = hk__rand(e);
    memcpy(s->event.uuid, &a, 8);
    memcpy(s->event.uuid + 8, &b, 8);
    s->event.uuid[6] = (uint8_t)((s->event.uuid[6] & 0x0f) | 0x40); /* version 4 */
    s->event.uuid[8] = (uint8_t)((s->event.uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    s->w.apply = signal_apply;
    s->w.done = signal_done;
    s->w.flags = HK_WRITE_ISOLATED;
    hk_kv_submit(e->store, &s->w);
}

/* ---- state events ------------------------------------------------------------------ */

static void state_event_done(hk_signal *s, int status)
{
    hk_engine *e = s->engine;
    if (status != 0)
        hk_error("state event %s could not be stored: %s", s->route, hk_strerror(status));
    hk_signal_free(s);
    hk__submitted(e);
}

void hk_engine_state_event(hk_engine *e, uint32_t id, const char *kind, const char *detail)
{
    if (e == NULL || e->stopping)
        return;
    hk_signal *s = hk_calloc(1, sizeof(*s));
    char route[64], name[32];
    snprintf(route, sizeof(route), "webhook%u.%s", id, kind);
    snprintf(name, sizeof(name), "webhook.%s", kind);
    json_t *data = json_pack("{s:I, s:s}", "WebhookId", (json_int_t)id, "State", kind);
    if (detail != NULL)
        json_object_set_new(data, "Reason", json_string(detail));
    s->name = hk_strdup(name);
    s->route = hk_strdup(route);
    s->exclude = id;
    s->primary_key = id;
    s->data = json_dumps(data, JSON_COMPACT);
    s->data_len = strlen(s->data);
    s->changes = hk_strdup(detail != NULL ? "[\"WebhookId\",\"State\",\"Reason\"]" : "[\"WebhookId\",\"State\"]");
    s->changes_len = strlen(s->changes);
    json_decref(data);
    s->done = state_event_done;
    /* No request waits for it, so the engine itself must outlive its
     * commit: a stop waits for it like for an outcome. */
    e->committing++;
    hk_engine_signal(e, s);
}
