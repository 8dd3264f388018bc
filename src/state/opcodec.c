/*
 * opcodec.c: hk_op_encode and hk_op_decode, the serialised form of an op's
 * inputs (what a write-ahead log stores and replays; out fields are not
 * part of it).
 *
 * Format, version 1: u8 version, u8 type, u64 now_ms, then the inputs of
 * that type in their declaration order, with the codec.h conventions
 * (big-endian integers, strings as a u32 length and bytes, NULL as
 * HK__NULL_STR). A webhook is its record (webhook.c's codec) as a string;
 * an attempt record is its fields in declaration order.
 */
#include <string.h>

#include "tables.h"

#define OP_V1 1

static void w_bool(hk__wbuf *b, bool v)
{
    hk__w_u8(b, v ? 1 : 0);
}

static void w_state_event(hk__wbuf *b, const hk_state_event *ev)
{
    hk__w_str(b, ev->kind);
    hk__w_str(b, ev->reason);
    hk__w_raw(b, ev->uuid, 16);
}

static void w_attempt(hk__wbuf *b, const hk_attempt *a)
{
    if (a == NULL) {
        hk__w_u8(b, 0);
        return;
    }
    /* 1: the record as before the lean parts; 2: followed by them. */
    hk__w_u8(b, a->lean ? 2 : 1);
    hk__w_u64(b, a->id);
    hk__w_u32(b, a->webhook_id);
    hk__w_u64(b, a->event_id);
    hk__w_str(b, a->event_name);
    hk__w_str(b, a->event_uuid);
    hk__w_u32(b, a->attempt);
    hk__w_u64(b, a->started_ms);
    hk__w_u64(b, a->duration_ms);
    w_bool(b, a->success);
    hk__w_u32(b, (uint32_t)a->status);
    hk__w_str(b, a->error);
    hk__w_str(b, a->url);
    hk__w_strn(b, a->request, a->request ? a->request_len : 0);
    hk__w_strn(b, a->response, a->response ? a->response_len : 0);
    hk__w_u32(b, a->user_id);
    w_bool(b, a->exhausted);
    hk__w_u64(b, a->next_due_ms);
    w_bool(b, a->disabled);
    w_bool(b, a->sync);
    if (a->lean) {
        hk__w_str(b, a->user_agent);
        hk__w_str(b, a->webhook_name);
        hk__w_str(b, a->props);
        hk__w_str(b, a->custom_headers);
        hk__w_str(b, a->sig_so);
        hk__w_str(b, a->sig_standard);
    }
}

static void w_key_fields(hk__wbuf *b, const hk_key *k)
{
    hk__w_raw(b, k->hash, 32);
    hk__w_u32(b, k->user_id);
    hk__w_u64(b, k->created_ms);
    w_bool(b, k->revoked);
    hk__w_strn(b, k->short_id, strnlen(k->short_id, sizeof(k->short_id)));
}

static void w_key(hk__wbuf *b, const hk_key *k)
{
    w_bool(b, k != NULL);
    if (k != NULL)
        w_key_fields(b, k);
}

static void w_delivery(hk__wbuf *b, const hk_delivery *d)
{
    hk__w_u32(b, d->webhook_id);
    hk__w_u64(b, d->event_id);
    hk__w_u64(b, d->due_ms);
    hk__w_u32(b, d->attempts);
    hk__w_u64(b, d->first_ms);
}

int hk_op_encode(const hk_op *op, uint8_t **out, size_t *len)
{
    hk__wbuf b = {0};
    hk__w_u8(&b, OP_V1);
    hk__w_u8(&b, (uint8_t)op->type);
    hk__w_u64(&b, op->now_ms);
    switch (op->type) {
    case HK_OP_SIGNAL: {
        const hk_op_signal *s = &op->u.signal;
        hk__w_str(&b, s->name);
        hk__w_u64(&b, (uint64_t)s->primary_key);
        hk__w_strn(&b, s->data, s->data ? s->data_len : 0);
        hk__w_strn(&b, s->changes, s->changes ? s->changes_len : 0);
        hk__w_u32(&b, s->user_id);
        hk__w_raw(&b, s->uuid, 16);
        hk__w_str(&b, s->idem_key);
        hk__w_u64(&b, s->idem_window_ms);
        break;
    }
    case HK_OP_OUTCOME: {
        const hk_op_outcome *o = &op->u.outcome;
        w_delivery(&b, &o->delivery);
        w_attempt(&b, o->rec);
        w_bool(&b, o->is410);
        hk__w_u64(&b, o->next_due_ms);
        hk__w_u32(&b, o->disable_after);
        w_state_event(&b, &o->on_disable);
        break;
    }
    case HK_OP_ATTEMPT: {
        const hk_op_attempt *a = &op->u.attempt;
        w_attempt(&b, a->rec);
        w_bool(&b, a->is410);
        hk__w_u32(&b, a->disable_after);
        w_state_event(&b, &a->on_disable);
        break;
    }
    case HK_OP_RESEND:
        hk__w_u32(&b, op->u.resend.webhook_id);
        hk__w_u64(&b, op->u.resend.event_id);
        break;
    case HK_OP_WEBHOOK_PUT: {
        const hk_op_webhook_put *p = &op->u.webhook_put;
        if (p->webhook == NULL) {
            /* Not an op: it could not be applied, nor replayed. */
            free(b.p);
            return HK_EINVAL;
        }
        hk__wbuf rec = {0};
        hk__webhook_encode(p->webhook, &rec);
        hk__w_strn(&b, (const char *)rec.p, rec.len);
        free(rec.p);
        w_bool(&b, p->by_client);
        hk__w_u64(&b, p->unmodified_since_ms);
        w_state_event(&b, &p->event);
        break;
    }
    case HK_OP_WEBHOOK_DELETE:
        hk__w_u32(&b, op->u.webhook_delete.id);
        w_bool(&b, op->u.webhook_delete.by_client);
        hk__w_u64(&b, op->u.webhook_delete.unmodified_since_ms);
        break;
    case HK_OP_WEBHOOK_LOCK:
        hk__w_u32(&b, op->u.webhook_lock.id);
        w_bool(&b, op->u.webhook_lock.locked);
        break;
    case HK_OP_QUEUE_DROP:
        hk__w_u32(&b, op->u.queue_drop.webhook_id);
        hk__w_u32(&b, op->u.queue_drop.max);
        break;
    case HK_OP_USER_PUT: {
        const hk_user *u = &op->u.user_put.user;
        hk__w_u32(&b, u->id);
        hk__w_str(&b, u->code);
        hk__w_str(&b, u->full_name);
        hk__w_u32(&b, u->perms);
        hk__w_u32(&b, u->top_node);
        w_bool(&b, op->u.user_put.only_first);
        w_key(&b, op->u.user_put.key);
        break;
    }
    case HK_OP_KEY_PUT: w_key_fields(&b, &op->u.key_put.key); break;
    case HK_OP_KEY_REVOKE:
        hk__w_strn(&b, op->u.key_revoke.short_id, strnlen(op->u.key_revoke.short_id, 8));
        hk__w_raw(&b, op->u.key_revoke.hash, 32);
        break;
    case HK_OP_NODE_PUT:
        hk__w_u32(&b, op->u.node_put.node.id);
        hk__w_u32(&b, op->u.node_put.node.parent);
        hk__w_str(&b, op->u.node_put.node.name);
        break;
    case HK_OP_ACCOUNT_PUT:
        hk__w_u32(&b, op->u.account_put.account.id);
        hk__w_u32(&b, op->u.account_put.account.node);
        hk__w_str(&b, op->u.account_put.account.name);
        break;
    case HK_OP_PRUNE:
        hk__w_u64(&b, op->u.prune.attempts_before_ms);
        hk__w_u64(&b, op->u.prune.events_before_ms);
        hk__w_u64(&b, op->u.prune.idempotency_before_ms);
        hk__w_u32(&b, op->u.prune.max);
        break;
    case HK_OP_TREE_IMPORT:
        w_bool(&b, op->u.tree_import.accounts);
        hk__w_strn(&b, op->u.tree_import.text, op->u.tree_import.text ? op->u.tree_import.len : 0);
        break;
    case HK_OP_RECOVER: {
        const hk_op_recover *r = &op->u.recover;
        hk__w_u32(&b, r->webhook_id);
        hk__w_u64(&b, r->since_ms);
        hk__w_u64(&b, r->until_ms);
        hk__w_u64(&b, r->run_ms);
        hk__w_u32(&b, r->run);
        hk__w_u64(&b, r->from_log_id);
        hk__w_u32(&b, r->max);
        break;
    }
    default: free(b.p); return HK_EINVAL;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* ---- decoding ------------------------------------------------------------------ */

static bool r_bool(hk__rbuf *r)
{
    uint8_t v = hk__r_u8(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

static void r_state_event(hk__rbuf *r, hk_state_event *ev)
{
    ev->kind = hk__r_str(r, NULL);
    ev->reason = hk__r_str(r, NULL);
    hk__r_raw(r, ev->uuid, 16);
}

static hk_attempt *r_attempt(hk__rbuf *r)
{
    uint8_t present = hk__r_u8(r);
    if (present != 1 && present != 2) {
        if (present != 0)
            r->bad = true;
        return NULL;
    }
    hk_attempt *a = hk_calloc(1, sizeof(*a));
    a->id = hk__r_u64(r);
    a->webhook_id = hk__r_u32(r);
    a->event_id = hk__r_u64(r);
    a->event_name = hk__r_str(r, NULL);
    a->event_uuid = hk__r_str(r, NULL);
    a->attempt = hk__r_u32(r);
    a->started_ms = hk__r_u64(r);
    a->duration_ms = hk__r_u64(r);
    a->success = r_bool(r);
    a->status = (int)hk__r_u32(r);
    a->error = hk__r_str(r, NULL);
    a->url = hk__r_str(r, NULL);
    a->request = hk__r_str(r, &a->request_len);
    a->response = hk__r_str(r, &a->response_len);
    a->user_id = hk__r_u32(r);
    a->exhausted = r_bool(r);
    a->next_due_ms = hk__r_u64(r);
    a->disabled = r_bool(r);
    a->sync = r_bool(r);
    if (present == 2) {
        a->lean = true;
        a->user_agent = hk__r_str(r, NULL);
        a->webhook_name = hk__r_str(r, NULL);
        a->props = hk__r_str(r, NULL);
        a->custom_headers = hk__r_str(r, NULL);
        a->sig_so = hk__r_str(r, NULL);
        a->sig_standard = hk__r_str(r, NULL);
    }
    return a;
}

static void r_key_fields(hk__rbuf *r, hk_key *k)
{
    hk__r_raw(r, k->hash, 32);
    k->user_id = hk__r_u32(r);
    k->created_ms = hk__r_u64(r);
    k->revoked = r_bool(r);
    hk__r_strbuf(r, k->short_id, sizeof(k->short_id));
}

static void r_delivery(hk__rbuf *r, hk_delivery *d)
{
    d->webhook_id = hk__r_u32(r);
    d->event_id = hk__r_u64(r);
    d->due_ms = hk__r_u64(r);
    d->attempts = hk__r_u32(r);
    d->first_ms = hk__r_u64(r);
}

int hk_op_decode(hk_op *op, const uint8_t *buf, size_t len)
{
    hk__rbuf r = hk__rbuf_of(buf, len);
    memset(op, 0, sizeof(*op));
    if (hk__r_u8(&r) != OP_V1)
        return HK_EINVAL;
    op->type = (enum hk_op_type)hk__r_u8(&r);
    op->now_ms = hk__r_u64(&r);
    switch (op->type) {
    case HK_OP_SIGNAL: {
        hk_op_signal *s = &op->u.signal;
        s->name = hk__r_str(&r, NULL);
        s->primary_key = (int64_t)hk__r_u64(&r);
        s->data = hk__r_str(&r, &s->data_len);
        s->changes = hk__r_str(&r, &s->changes_len);
        s->user_id = hk__r_u32(&r);
        hk__r_raw(&r, s->uuid, 16);
        s->idem_key = hk__r_str(&r, NULL);
        s->idem_window_ms = hk__r_u64(&r);
        if (s->name == NULL)
            r.bad = true;
        break;
    }
    case HK_OP_OUTCOME: {
        hk_op_outcome *o = &op->u.outcome;
        r_delivery(&r, &o->delivery);
        o->rec = r_attempt(&r);
        o->is410 = r_bool(&r);
        o->next_due_ms = hk__r_u64(&r);
        o->disable_after = hk__r_u32(&r);
        r_state_event(&r, &o->on_disable);
        break;
    }
    case HK_OP_ATTEMPT: {
        hk_op_attempt *a = &op->u.attempt;
        a->rec = r_attempt(&r);
        a->is410 = r_bool(&r);
        a->disable_after = hk__r_u32(&r);
        r_state_event(&r, &a->on_disable);
        break;
    }
    case HK_OP_RESEND:
        op->u.resend.webhook_id = hk__r_u32(&r);
        op->u.resend.event_id = hk__r_u64(&r);
        break;
    case HK_OP_WEBHOOK_PUT: {
        hk_op_webhook_put *p = &op->u.webhook_put;
        const char *rec;
        size_t n;
        hk__r_strview(&r, &rec, &n);
        if (rec != NULL) {
            hk_webhook *w = hk_calloc(1, sizeof(*w));
            if (hk__webhook_decode(rec, n, w) != 0)
                r.bad = true;
            p->webhook = w;
        } else {
            r.bad = true; /* a put without its webhook */
        }
        p->by_client = r_bool(&r);
        p->unmodified_since_ms = hk__r_u64(&r);
        r_state_event(&r, &p->event);
        break;
    }
    case HK_OP_WEBHOOK_DELETE:
        op->u.webhook_delete.id = hk__r_u32(&r);
        op->u.webhook_delete.by_client = r_bool(&r);
        op->u.webhook_delete.unmodified_since_ms = hk__r_u64(&r);
        break;
    case HK_OP_WEBHOOK_LOCK:
        op->u.webhook_lock.id = hk__r_u32(&r);
        op->u.webhook_lock.locked = r_bool(&r);
        break;
    case HK_OP_QUEUE_DROP:
        op->u.queue_drop.webhook_id = hk__r_u32(&r);
        op->u.queue_drop.max = hk__r_u32(&r);
        break;
    case HK_OP_USER_PUT: {
        hk_user *u = &op->u.user_put.user;
        u->id = hk__r_u32(&r);
        hk__r_strbuf(&r, u->code, sizeof(u->code));
        hk__r_strbuf(&r, u->full_name, sizeof(u->full_name));
        u->perms = hk__r_u32(&r);
        u->top_node = hk__r_u32(&r);
        op->u.user_put.only_first = r_bool(&r);
        if (r_bool(&r)) {
            hk_key *k = hk_calloc(1, sizeof(*k));
            r_key_fields(&r, k);
            op->u.user_put.key = k;
        }
        break;
    }
    case HK_OP_KEY_PUT: r_key_fields(&r, &op->u.key_put.key); break;
    case HK_OP_KEY_REVOKE:
        hk__r_strbuf(&r, op->u.key_revoke.short_id, sizeof(op->u.key_revoke.short_id));
        hk__r_raw(&r, op->u.key_revoke.hash, 32);
        break;
    case HK_OP_NODE_PUT:
        op->u.node_put.node.id = hk__r_u32(&r);
        op->u.node_put.node.parent = hk__r_u32(&r);
        hk__r_strbuf(&r, op->u.node_put.node.name, sizeof(op->u.node_put.node.name));
        break;
    case HK_OP_ACCOUNT_PUT:
        op->u.account_put.account.id = hk__r_u32(&r);
        op->u.account_put.account.node = hk__r_u32(&r);
        hk__r_strbuf(&r, op->u.account_put.account.name, sizeof(op->u.account_put.account.name));
        break;
    case HK_OP_PRUNE:
        op->u.prune.attempts_before_ms = hk__r_u64(&r);
        op->u.prune.events_before_ms = hk__r_u64(&r);
        op->u.prune.idempotency_before_ms = hk__r_u64(&r);
        op->u.prune.max = hk__r_u32(&r);
        break;
    case HK_OP_TREE_IMPORT:
        op->u.tree_import.accounts = r_bool(&r);
        op->u.tree_import.text = hk__r_str(&r, &op->u.tree_import.len);
        break;
    case HK_OP_RECOVER: {
        hk_op_recover *rc = &op->u.recover;
        rc->webhook_id = hk__r_u32(&r);
        rc->since_ms = hk__r_u64(&r);
        rc->until_ms = hk__r_u64(&r);
        rc->run_ms = hk__r_u64(&r);
        rc->run = hk__r_u32(&r);
        rc->from_log_id = hk__r_u64(&r);
        rc->max = hk__r_u32(&r);
        break;
    }
    default: return HK_EINVAL;
    }
    if (!hk__r_done(&r)) {
        hk_op_decode_free(op);
        return HK_EINVAL;
    }
    return 0;
}

static void free_state_event(hk_state_event *ev)
{
    free((char *)ev->kind);
    free((char *)ev->reason);
}

static void free_attempt(const hk_attempt *a)
{
    hk_attempt *m = (hk_attempt *)a;
    if (m != NULL) {
        hk_attempt_free(m);
        free(m);
    }
}

void hk_op_decode_free(hk_op *op)
{
    switch (op->type) {
    case HK_OP_SIGNAL:
        free((char *)op->u.signal.name);
        free((char *)op->u.signal.data);
        free((char *)op->u.signal.changes);
        free((char *)op->u.signal.idem_key);
        hk_op_free_out(op);
        break;
    case HK_OP_OUTCOME:
        free_attempt(op->u.outcome.rec);
        free_state_event(&op->u.outcome.on_disable);
        break;
    case HK_OP_ATTEMPT:
        free_attempt(op->u.attempt.rec);
        free_state_event(&op->u.attempt.on_disable);
        break;
    case HK_OP_WEBHOOK_PUT:
        if (op->u.webhook_put.webhook != NULL) {
            hk_webhook *w = (hk_webhook *)op->u.webhook_put.webhook;
            hk_webhook_free(w);
            free(w);
        }
        free_state_event(&op->u.webhook_put.event);
        break;
    case HK_OP_TREE_IMPORT: free((char *)op->u.tree_import.text); break;
    case HK_OP_USER_PUT: free((hk_key *)op->u.user_put.key); break;
    default: break;
    }
    memset(op, 0, sizeof(*op));
}
