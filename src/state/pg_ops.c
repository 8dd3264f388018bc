/*
 * pg_ops.c: the seam's ops as SQL statements for the PostgreSQL engine
 * (pg_ops.h), and their results back into the ops' out fields. Each op is
 * one statement, most of them a call of a function of
 * pg_schema/002_ops.sql, so that a whole group is one pipeline. Values go
 * as text parameters (numbers in decimal, lists as array literals), except
 * bytes a client chose, which go in binary: event Data and its keys (any
 * length, not NUL-terminated) and an Idempotency-Key.
 */
#include "pg_ops.h"

#include <ctype.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "utf8.h"

/* Log records of a deleted webhook removed in its delete's commit, as the embedded engine does. */
#define DELETE_LOG_MAX 20000

/* ---- parameters ------------------------------------------------------------------------ */

static void p_own(hk__pg_op_stmt *e, int i, char *s)
{
    e->owned[i] = s;
    e->values[i] = s;
}

static void p_u64(hk__pg_op_stmt *e, int i, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    p_own(e, i, hk_strdup(buf));
}

static void p_i64(hk__pg_op_stmt *e, int i, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    p_own(e, i, hk_strdup(buf));
}

static void p_bool(hk__pg_op_stmt *e, int i, bool v)
{
    e->values[i] = v ? "t" : "f";
}

/* A C string (NULL: SQL NULL), borrowed. */
static void p_str(hk__pg_op_stmt *e, int i, const char *s)
{
    e->values[i] = s;
}

/* Bytes in binary (text or bytea), borrowed. */
static void p_bin(hk__pg_op_stmt *e, int i, const char *data, size_t len)
{
    e->values[i] = data;
    e->lengths[i] = (int)len;
    e->formats[i] = 1;
}

static void p_uuid(hk__pg_op_stmt *e, int i, const uint8_t u[16])
{
    char s[HK_EVENT_UUID_LEN];
    hk_event_uuid_str(u, s);
    p_own(e, i, hk_strdup(s));
}

/* One element of an array literal: quoted, with " and \ escaped. */
static void array_elem(hk_buf *b, const char *s)
{
    hk_buf_putc(b, '"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            hk_buf_putc(b, '\\');
        hk_buf_putc(b, *s);
    }
    hk_buf_putc(b, '"');
}

/* A text[] literal of n strings, or of the names (values: the values) of n pairs. */
static void p_array(hk__pg_op_stmt *e, int i, char *const *v, const hk_pair *pairs, bool values, size_t n)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '{');
    for (size_t k = 0; k < n; k++) {
        if (k > 0)
            hk_buf_putc(&b, ',');
        array_elem(&b, v != NULL ? v[k] : values ? pairs[k].value : pairs[k].name);
    }
    hk_buf_putc(&b, '}');
    size_t len;
    p_own(e, i, hk_buf_steal(&b, &len));
}

/* A JSON string of s, quoted as event.c quotes a state event's members ("" and \ escaped, controls as \u00XX). */
static void p_json(hk__pg_op_stmt *e, int i, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            hk_buf_putc(&b, '\\');
            hk_buf_putc(&b, (char)*p);
        } else if (*p < 0x20) {
            hk_buf_printf(&b, "\\u00%c%c", hex[*p >> 4], hex[*p & 15]);
        } else {
            hk_buf_putc(&b, (char)*p);
        }
    }
    hk_buf_putc(&b, '"');
    size_t len;
    p_own(e, i, hk_buf_steal(&b, &len));
}

static void stmt(hk__pg_op_stmt *e, const char *sql, int nparams)
{
    e->stmt.sql = sql;
    e->stmt.nparams = nparams;
    e->stmt.values = e->values;
    e->stmt.lengths = e->lengths;
    e->stmt.formats = e->formats;
}

/* ---- encoding ---------------------------------------------------------------------------- */

static int encode_signal(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_signal *s = &op->u.signal;
    s->event_id = 0;
    s->duplicate = false;
    s->webhooks = NULL;
    s->nwebhooks = 0;
    if (s->name == NULL || (s->idem_key != NULL && strlen(s->idem_key) > HK_IDEMPOTENCY_KEY_MAX))
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_str(e, 1, s->name);
    p_i64(e, 2, s->primary_key);
    if (s->data != NULL)
        p_bin(e, 3, s->data, s->data_len);
    else
        p_str(e, 3, "{}");
    if (s->changes != NULL)
        p_bin(e, 4, s->changes, s->changes_len);
    else
        p_str(e, 4, "[]");
    p_u64(e, 5, s->user_id);
    p_uuid(e, 6, s->uuid);
    if (s->idem_key != NULL)
        p_bin(e, 7, s->idem_key, strlen(s->idem_key));
    else
        p_str(e, 7, NULL);
    p_u64(e, 8, s->idem_window_ms);
    stmt(e,
         "SELECT duplicate, event_id, webhooks FROM hookd_signal($1::bigint, $2::text, $3::bigint, $4::text, "
         "$5::text, $6::bigint, $7::uuid, $8::bytea, $9::bigint)",
         9);
    return 0;
}

static int encode_webhook_put(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_webhook_put *p = &op->u.webhook_put;
    const hk_webhook *w = p->webhook;
    p->id = 0;
    if (w == NULL)
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, w->id);
    p_bool(e, 2, p->by_client);
    p_u64(e, 3, p->unmodified_since_ms);
    p_str(e, 4, w->name ? w->name : "");
    p_str(e, 5, w->description ? w->description : "");
    p_str(e, 6, w->url ? w->url : "");
    p_str(e, 7, w->secret ? w->secret : "");
    p_str(e, 8, w->prev_secret ? w->prev_secret : "");
    p_u64(e, 9, w->prev_secret_until);
    p_u64(e, 10, (uint64_t)w->state);
    p_bool(e, 11, w->locked);
    p_str(e, 12, w->extension != NULL && *w->extension != '\0' ? w->extension : NULL);
    p_array(e, 13, w->events, NULL, false, w->nevents);
    p_array(e, 14, NULL, w->headers, false, w->nheaders);
    p_array(e, 15, NULL, w->headers, true, w->nheaders);
    p_array(e, 16, NULL, w->properties, false, w->nproperties);
    p_array(e, 17, NULL, w->properties, true, w->nproperties);
    p_array(e, 18, w->notify, NULL, false, w->nnotify);
    p_u64(e, 19, w->registered_ms);
    p_u64(e, 20, w->registered_by);
    p_u64(e, 21, w->updated_ms);
    p_u64(e, 22, w->updated_by);
    if (p->event.kind != NULL) {
        p_str(e, 23, p->event.kind);
        p_json(e, 24, p->event.kind);
        if (p->event.reason != NULL)
            p_json(e, 25, p->event.reason);
        p_uuid(e, 26, p->event.uuid);
    }
    stmt(e,
         "SELECT status, id FROM hookd_webhook_put($1::bigint, $2::bigint, $3::boolean, $4::bigint, $5::text, "
         "$6::text, $7::text, $8::text, $9::text, $10::bigint, $11::smallint, $12::boolean, $13::text, $14::text[], "
         "$15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::bigint, $21::bigint, $22::bigint, "
         "$23::bigint, $24::text, $25::text, $26::text, $27::uuid)",
         27);
    return 0;
}

static int encode_webhook_delete(hk_op *op, hk__pg_op_stmt *e)
{
    const hk_op_webhook_delete *p = &op->u.webhook_delete;
    p_u64(e, 0, p->id);
    p_bool(e, 1, p->by_client);
    p_u64(e, 2, p->unmodified_since_ms);
    p_u64(e, 3, DELETE_LOG_MAX);
    stmt(e, "SELECT hookd_webhook_delete($1::bigint, $2::boolean, $3::bigint, $4::integer)", 4);
    return 0;
}

static int encode_webhook_lock(hk_op *op, hk__pg_op_stmt *e)
{
    const hk_op_webhook_lock *p = &op->u.webhook_lock;
    p_u64(e, 0, p->id);
    p_bool(e, 1, p->locked);
    stmt(e, "UPDATE webhooks SET locked = $2::boolean WHERE id = $1::bigint RETURNING id", 2);
    return 0;
}

/* An attempt record's fields from parameter i on (16 of them), as ROW(...)::attempts in the SQL. */
static void p_rec(hk__pg_op_stmt *e, int i, const hk_attempt *a)
{
    p_u64(e, i, a->event_id);
    p_str(e, i + 1, a->event_name ? a->event_name : "");
    p_str(e, i + 2, a->event_uuid ? a->event_uuid : "");
    p_u64(e, i + 3, a->attempt);
    p_u64(e, i + 4, a->started_ms);
    p_u64(e, i + 5, a->duration_ms);
    p_bool(e, i + 6, a->success);
    p_i64(e, i + 7, a->status);
    p_str(e, i + 8, a->error ? a->error : "");
    p_str(e, i + 9, a->url ? a->url : "");
    p_bin(e, i + 10, a->request ? a->request : "", a->request ? a->request_len : 0);
    p_bin(e, i + 11, a->response ? a->response : "", a->response ? a->response_len : 0);
    p_u64(e, i + 12, a->user_id);
    p_bool(e, i + 13, a->exhausted);
    p_u64(e, i + 14, a->next_due_ms);
    p_bool(e, i + 15, a->sync);
}

/* The state event stored when an attempt disables its webhook, from parameter i on (4). */
static void p_state_event(hk__pg_op_stmt *e, int i, const hk_state_event *ev)
{
    if (ev->kind == NULL)
        return;
    p_str(e, i, ev->kind);
    p_json(e, i + 1, ev->kind);
    if (ev->reason != NULL)
        p_json(e, i + 2, ev->reason);
    p_uuid(e, i + 3, ev->uuid);
}

static int encode_outcome(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_outcome *o = &op->u.outcome;
    o->vanished = o->disabled = false;
    o->log_id = 0;
    if (o->rec == NULL || o->rec->webhook_id != o->delivery.webhook_id)
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, o->delivery.webhook_id);
    p_u64(e, 2, o->delivery.due_ms);
    p_u64(e, 3, o->delivery.event_id);
    p_bool(e, 4, o->is410);
    p_u64(e, 5, o->next_due_ms);
    p_u64(e, 6, o->disable_after);
    p_state_event(e, 7, &o->on_disable);
    p_rec(e, 11, o->rec);
    stmt(e,
         "SELECT vanished, disabled, log_id FROM hookd_outcome($1::bigint, $2::bigint, $3::bigint, $4::bigint, "
         "$5::boolean, $6::bigint, $7::bigint, $8::text, $9::text, $10::text, $11::uuid, ROW(0::bigint, $2::bigint, "
         "$12::bigint, $13::text, $14::text, $15::bigint, $16::bigint, $17::bigint, $18::boolean, $19::integer, "
         "$20::text, $21::text, $22::bytea, $23::bytea, $24::bigint, $25::boolean, $26::bigint, false, "
         "$27::boolean)::attempts)",
         27);
    return 0;
}

static int encode_attempt(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_attempt *a = &op->u.attempt;
    a->vanished = a->disabled = false;
    a->log_id = 0;
    if (a->rec == NULL)
        return HK_EINVAL;
    p_u64(e, 0, op->now_ms);
    p_bool(e, 1, a->is410);
    p_u64(e, 2, a->disable_after);
    p_state_event(e, 3, &a->on_disable);
    p_u64(e, 7, a->rec->webhook_id);
    p_rec(e, 8, a->rec);
    stmt(e,
         "SELECT vanished, disabled, log_id FROM hookd_attempt($1::bigint, $2::boolean, $3::bigint, $4::text, "
         "$5::text, $6::text, $7::uuid, ROW(0::bigint, $8::bigint, $9::bigint, $10::text, $11::text, $12::bigint, "
         "$13::bigint, $14::bigint, $15::boolean, $16::integer, $17::text, $18::text, $19::bytea, $20::bytea, "
         "$21::bigint, $22::boolean, $23::bigint, false, $24::boolean)::attempts)",
         24);
    return 0;
}

static int encode_resend(hk_op *op, hk__pg_op_stmt *e)
{
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, op->u.resend.webhook_id);
    p_u64(e, 2, op->u.resend.event_id);
    stmt(e, "SELECT hookd_resend($1::bigint, $2::bigint, $3::bigint)", 3);
    return 0;
}

static int encode_recover(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_recover *r = &op->u.recover;
    r->next_log_id = r->from_log_id;
    r->queued = 0;
    r->done = r->gone = false;
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, r->webhook_id);
    p_u64(e, 2, r->since_ms);
    p_u64(e, 3, r->until_ms);
    p_u64(e, 4, r->run_ms);
    p_u64(e, 5, r->from_log_id);
    p_u64(e, 6, r->max ? r->max : HK_RECOVER_STEP_MAX);
    stmt(e,
         "SELECT * FROM hookd_recover($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint, "
         "$7::integer)",
         7);
    return 0;
}

static int encode_queue_drop(hk_op *op, hk__pg_op_stmt *e)
{
    op->u.queue_drop.more = false;
    p_u64(e, 0, op->u.queue_drop.webhook_id);
    p_u64(e, 1, op->u.queue_drop.max ? op->u.queue_drop.max : 1);
    stmt(e, "SELECT hookd_queue_drop($1::bigint, $2::integer)", 2);
    return 0;
}

/* 32 bytes as a bytea parameter in binary, borrowed. */
static void p_hash(hk__pg_op_stmt *e, int i, const uint8_t hash[32])
{
    p_bin(e, i, (const char *)hash, 32);
}

static int encode_user_put(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_user_put *p = &op->u.user_put;
    const hk_user *u = &p->user;
    p->id = 0;
    p->skipped = false;
    size_t clen = strnlen(u->code, sizeof(u->code));
    if (clen == 0 || clen > HK_USER_CODE_MAX || strnlen(u->full_name, sizeof(u->full_name)) > HK_USER_NAME_MAX)
        return HK_EINVAL;
    /* Lower-cased as the embedded engine does it: ASCII letters only. */
    char *lc = hk_calloc(1, clen + 1);
    for (size_t i = 0; i < clen; i++)
        lc[i] = u->code[i] >= 'A' && u->code[i] <= 'Z' ? (char)(u->code[i] - 'A' + 'a') : u->code[i];
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, u->id);
    p_own(e, 2, hk_strndup(u->code, clen));
    p_own(e, 3, lc);
    p_own(e, 4, hk_strndup(u->full_name, strnlen(u->full_name, sizeof(u->full_name))));
    p_u64(e, 5, u->perms);
    p_u64(e, 6, u->top_node);
    p_bool(e, 7, p->only_first);
    if (p->key != NULL) {
        p_hash(e, 8, p->key->hash);
        p_u64(e, 9, p->key->created_ms);
        p_bool(e, 10, p->key->revoked);
        p_own(e, 11, hk_strndup(p->key->short_id, strnlen(p->key->short_id, sizeof(p->key->short_id))));
    } else {
        p_u64(e, 9, 0);
        p_bool(e, 10, false);
    }
    stmt(e,
         "SELECT status, id FROM hookd_user_put($1::bigint, $2::bigint, $3::text, $4::text, $5::text, $6::integer, "
         "$7::bigint, $8::boolean, $9::bytea, $10::bigint, $11::boolean, $12::text)",
         12);
    return 0;
}

static int encode_key_put(hk_op *op, hk__pg_op_stmt *e)
{
    const hk_key *k = &op->u.key_put.key;
    p_u64(e, 0, op->now_ms);
    p_hash(e, 1, k->hash);
    p_u64(e, 2, k->user_id);
    p_u64(e, 3, k->created_ms);
    p_bool(e, 4, k->revoked);
    p_own(e, 5, hk_strndup(k->short_id, strnlen(k->short_id, sizeof(k->short_id))));
    stmt(e, "SELECT hookd_key_put($1::bigint, $2::bytea, $3::bigint, $4::bigint, $5::boolean, $6::text)", 6);
    return 0;
}

static int encode_key_revoke(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_key_revoke *p = &op->u.key_revoke;
    p->err[0] = '\0';
    if (p->short_id[0] != '\0') {
        /* A short id is the hash's first four bytes in hex; anything else names no key. */
        char *prefix = hk_calloc(1, 5);
        for (int i = 0; i < 4; i++) {
            unsigned b;
            if (!isxdigit((unsigned char)p->short_id[2 * i]) || !isxdigit((unsigned char)p->short_id[2 * i + 1]) ||
                sscanf(p->short_id + 2 * i, "%2x", &b) != 1) {
                free(prefix);
                return HK_ENOTFOUND;
            }
            prefix[i] = (char)b;
        }
        if (strnlen(p->short_id, sizeof(p->short_id)) != 8) {
            free(prefix);
            return HK_ENOTFOUND;
        }
        e->owned[0] = prefix;
        p_bin(e, 0, prefix, 4);
    } else {
        p_hash(e, 1, p->hash);
    }
    stmt(e, "SELECT status, matches FROM hookd_key_revoke($1::bytea, $2::bytea)", 2);
    return 0;
}

/* A node's or an account's name, checked as accounts.c checks it. */
static int tree_name(const char *name, char *err, size_t errlen)
{
    size_t len = strnlen(name, HK_NODE_NAME_MAX + 1);
    if (len == 0 || len > HK_NODE_NAME_MAX) {
        snprintf(err, errlen, "name must be 1..%d bytes", HK_NODE_NAME_MAX);
        return HK_EINVAL;
    }
    if (!hk_utf8_valid(name, len)) {
        snprintf(err, errlen, "name is not valid UTF-8");
        return HK_EINVAL;
    }
    return 0;
}

static int encode_node_put(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_node_put *p = &op->u.node_put;
    p->err[0] = '\0';
    if (p->node.id == 0) {
        snprintf(p->err, sizeof(p->err), "node id must be a positive integer");
        return HK_EINVAL;
    }
    int rc = tree_name(p->node.name, p->err, sizeof(p->err));
    if (rc != 0)
        return rc;
    p_u64(e, 0, p->node.id);
    p_u64(e, 1, p->node.parent);
    p_str(e, 2, p->node.name);
    stmt(e, "SELECT status, err FROM hookd_node_put($1::bigint, $2::bigint, $3::text)", 3);
    return 0;
}

static int encode_account_put(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_account_put *p = &op->u.account_put;
    p->err[0] = '\0';
    if (p->account.id == 0) {
        snprintf(p->err, sizeof(p->err), "account id must be a positive integer");
        return HK_EINVAL;
    }
    int rc = tree_name(p->account.name, p->err, sizeof(p->err));
    if (rc != 0)
        return rc;
    p_u64(e, 0, p->account.id);
    p_u64(e, 1, p->account.node);
    p_str(e, 2, p->account.name);
    stmt(e, "SELECT status, err FROM hookd_account_put($1::bigint, $2::bigint, $3::text)", 3);
    return 0;
}

static int encode_prune(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_prune *p = &op->u.prune;
    p->more = false;
    p->removed = p->dropped_deliveries = 0;
    p_u64(e, 0, op->now_ms);
    p_u64(e, 1, p->attempts_before_ms);
    p_u64(e, 2, p->events_before_ms);
    p_u64(e, 3, p->idempotency_before_ms);
    p_u64(e, 4, p->max ? p->max : 1);
    stmt(e,
         "SELECT status, more, removed, dropped_deliveries FROM hookd_prune($1::bigint, $2::bigint, $3::bigint, "
         "$4::bigint, $5::bigint)",
         5);
    return 0;
}

/* A bigint[] literal of n numbers, picked from rows by which (0: ids, 1: links, 2: lines). */
static void p_tree_nums(hk__pg_op_stmt *e, int i, const hk__pg_tree_row *rows, size_t n, int which)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_putc(&b, '{');
    for (size_t k = 0; k < n; k++)
        hk_buf_printf(&b, "%s%llu", k ? "," : "",
                      (unsigned long long)(which == 0   ? rows[k].id
                                           : which == 1 ? rows[k].link
                                                        : rows[k].line));
    hk_buf_putc(&b, '}');
    size_t len;
    p_own(e, i, hk_buf_steal(&b, &len));
}

static int encode_tree_import(hk_op *op, hk__pg_op_stmt *e)
{
    hk_op_tree_import *p = &op->u.tree_import;
    hk__pg_tree_row *rows;
    size_t n;
    p->count = 0;
    p->err[0] = '\0';
    int rc =
        hk__pg_tree_csv(!p->accounts, p->text ? p->text : "", p->text ? p->len : 0, &rows, &n, p->err, sizeof(p->err));
    if (rc != 0)
        return rc;
    char **names = hk_calloc(n + 1, sizeof(*names));
    for (size_t k = 0; k < n; k++)
        names[k] = rows[k].name;
    p_bool(e, 0, !p->accounts);
    p_tree_nums(e, 1, rows, n, 0);
    p_tree_nums(e, 2, rows, n, 1);
    p_array(e, 3, names, NULL, false, n);
    p_tree_nums(e, 4, rows, n, 2);
    free(names);
    hk__pg_tree_rows_free(rows, n);
    stmt(e,
         "SELECT status, err, stored FROM hookd_tree_import($1::boolean, $2::bigint[], $3::bigint[], $4::text[], "
         "$5::bigint[])",
         5);
    return 0;
}

int hk__pg_op_encode(hk_op *op, hk__pg_op_stmt *e)
{
    memset(e, 0, sizeof(*e));
    switch (op->type) {
    case HK_OP_SIGNAL: return encode_signal(op, e);
    case HK_OP_WEBHOOK_PUT: return encode_webhook_put(op, e);
    case HK_OP_WEBHOOK_DELETE: return encode_webhook_delete(op, e);
    case HK_OP_WEBHOOK_LOCK: return encode_webhook_lock(op, e);
    case HK_OP_OUTCOME: return encode_outcome(op, e);
    case HK_OP_ATTEMPT: return encode_attempt(op, e);
    case HK_OP_RESEND: return encode_resend(op, e);
    case HK_OP_QUEUE_DROP: return encode_queue_drop(op, e);
    case HK_OP_RECOVER: return encode_recover(op, e);
    case HK_OP_USER_PUT: return encode_user_put(op, e);
    case HK_OP_KEY_PUT: return encode_key_put(op, e);
    case HK_OP_KEY_REVOKE: return encode_key_revoke(op, e);
    case HK_OP_NODE_PUT: return encode_node_put(op, e);
    case HK_OP_ACCOUNT_PUT: return encode_account_put(op, e);
    case HK_OP_PRUNE: return encode_prune(op, e);
    case HK_OP_TREE_IMPORT: return encode_tree_import(op, e);
    default: return UV_ENOSYS;
    }
}

void hk__pg_op_stmt_free(hk__pg_op_stmt *e)
{
    for (int i = 0; i < HK__PG_OP_PARAMS_MAX; i++) {
        free(e->owned[i]);
        e->owned[i] = NULL;
    }
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* A status the functions of 002_ops.sql return, as the seam's code. */
static int status_of(const char *s)
{
    static const struct {
        const char *name;
        int code;
    } map[] = {{"ok", 0},
               {"notfound", HK_ENOTFOUND},
               {"locked", HK_ELOCKED},
               {"conflict", HK_ECONFLICT},
               {"exists", HK_EEXIST},
               {"invalid", HK_EINVAL},
               {"busy", 0}};
    for (size_t i = 0; i < HK_ARRAY_SIZE(map); i++)
        if (strcmp(s, map[i].name) == 0)
            return map[i].code;
    hk_error("postgres: an op's function answered \"%.40s\"", s);
    return HK_ESTORE;
}

/* A decimal id of at most max; false when it is not one. */
static bool parse_id(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* A bigint[] of webhook ids ("{1,2,3}") into a malloc'd array. */
static bool parse_ids(const char *s, uint32_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    if (*s++ != '{')
        return false;
    size_t cap = 0;
    while (*s != '}' && *s != '\0') {
        char num[24];
        size_t len = strcspn(s, ",}");
        uint64_t v;
        if (len == 0 || len >= sizeof(num))
            return false;
        memcpy(num, s, len);
        num[len] = '\0';
        if (!parse_id(num, UINT32_MAX, &v))
            return false;
        if (*n == cap)
            *ids = hk_realloc(*ids, (cap = cap ? 2 * cap : 8) * sizeof(**ids));
        (*ids)[(*n)++] = (uint32_t)v;
        s += len + (s[len] == ',');
    }
    return *s == '}';
}

static int decode_signal(hk_op *op, const PGresult *r)
{
    hk_op_signal *s = &op->u.signal;
    uint64_t eid;
    if (PQntuples(r) != 1 || PQnfields(r) != 3 || !parse_id(PQgetvalue(r, 0, 1), INT64_MAX, &eid))
        return HK_ESTORE;
    s->duplicate = PQgetvalue(r, 0, 0)[0] == 't';
    s->event_id = eid;
    if (!parse_ids(PQgetvalue(r, 0, 2), &s->webhooks, &s->nwebhooks)) {
        free(s->webhooks);
        s->webhooks = NULL;
        s->nwebhooks = 0;
        return HK_ESTORE;
    }
    return 0;
}

static int decode_webhook_put(hk_op *op, const PGresult *r)
{
    uint64_t id;
    if (PQntuples(r) != 1 || PQnfields(r) != 2 || !parse_id(PQgetvalue(r, 0, 1), UINT32_MAX, &id))
        return HK_ESTORE;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == 0)
        op->u.webhook_put.id = (uint32_t)id;
    return rc;
}

/* (vanished, disabled, log_id) of an outcome or a synchronous attempt. */
static int decode_attempted(const PGresult *r, bool *vanished, bool *disabled, uint64_t *log_id)
{
    uint64_t id;
    if (PQntuples(r) != 1 || PQnfields(r) != 3 || !parse_id(PQgetvalue(r, 0, 2), INT64_MAX, &id))
        return HK_ESTORE;
    *vanished = PQgetvalue(r, 0, 0)[0] == 't';
    *disabled = PQgetvalue(r, 0, 1)[0] == 't';
    *log_id = id;
    return 0;
}

static int decode_user_put(hk_op *op, const PGresult *r)
{
    uint64_t id;
    if (PQntuples(r) != 1 || PQnfields(r) != 2 || !parse_id(PQgetvalue(r, 0, 1), UINT32_MAX, &id))
        return HK_ESTORE;
    if (strcmp(PQgetvalue(r, 0, 0), "skipped") == 0) {
        op->u.user_put.skipped = true;
        return 0;
    }
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == 0)
        op->u.user_put.id = (uint32_t)id;
    return rc;
}

static int decode_key_revoke(hk_op *op, const PGresult *r)
{
    if (PQntuples(r) != 1 || PQnfields(r) != 2)
        return HK_ESTORE;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == HK_ECONFLICT)
        snprintf(op->u.key_revoke.err, sizeof(op->u.key_revoke.err),
                 "key id %s matches %s keys; revoke by the key itself", op->u.key_revoke.short_id, PQgetvalue(r, 0, 1));
    return rc;
}

/* (status, err) of a node or account put. */
static int decode_tree(const PGresult *r, char *err, size_t errlen)
{
    if (PQntuples(r) != 1 || PQnfields(r) != 2)
        return HK_ESTORE;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == HK_EINVAL)
        snprintf(err, errlen, "%s", PQgetvalue(r, 0, 1));
    return rc;
}

static int decode_import(hk_op *op, const PGresult *r)
{
    hk_op_tree_import *p = &op->u.tree_import;
    uint64_t n;
    if (PQntuples(r) != 1 || PQnfields(r) != 3 || !parse_id(PQgetvalue(r, 0, 2), INT64_MAX, &n))
        return HK_ESTORE;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc == HK_EINVAL)
        snprintf(p->err, sizeof(p->err), "%s", PQgetvalue(r, 0, 1));
    p->count = rc == 0 ? (size_t)n : 0;
    return rc;
}

static int decode_prune(hk_op *op, const PGresult *r)
{
    hk_op_prune *p = &op->u.prune;
    uint64_t removed, dropped;
    if (PQntuples(r) != 1 || PQnfields(r) != 4 || !parse_id(PQgetvalue(r, 0, 2), INT64_MAX, &removed) ||
        !parse_id(PQgetvalue(r, 0, 3), INT64_MAX, &dropped))
        return HK_ESTORE;
    /* "busy": another node holds the retention lock and prunes; this step did nothing. */
    p->more = PQgetvalue(r, 0, 1)[0] == 't';
    p->removed = removed;
    p->dropped_deliveries = dropped;
    return 0;
}

static int decode_recover(hk_op *op, const PGresult *r)
{
    hk_op_recover *p = &op->u.recover;
    uint64_t next, queued;
    if (PQntuples(r) != 1 || PQnfields(r) != 5 || !parse_id(PQgetvalue(r, 0, 1), INT64_MAX, &next) ||
        !parse_id(PQgetvalue(r, 0, 2), INT64_MAX, &queued))
        return HK_ESTORE;
    if (strcmp(PQgetvalue(r, 0, 0), "timeout") == 0)
        return UV_ETIMEDOUT;
    int rc = status_of(PQgetvalue(r, 0, 0));
    if (rc != 0)
        return rc;
    p->next_log_id = next;
    p->queued = queued;
    p->done = PQgetvalue(r, 0, 3)[0] == 't';
    p->gone = PQgetvalue(r, 0, 4)[0] == 't';
    return 0;
}

static bool one_value(const PGresult *r)
{
    return PQntuples(r) == 1 && PQnfields(r) == 1;
}

int hk__pg_op_decode(hk_op *op, const struct pg_result *r)
{
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return HK_ESTORE;
    switch (op->type) {
    case HK_OP_SIGNAL: return decode_signal(op, r);
    case HK_OP_WEBHOOK_PUT: return decode_webhook_put(op, r);
    case HK_OP_WEBHOOK_DELETE:
        return PQntuples(r) == 1 && PQnfields(r) == 1 ? status_of(PQgetvalue(r, 0, 0)) : HK_ESTORE;
    case HK_OP_WEBHOOK_LOCK: return PQntuples(r) == 1 ? 0 : HK_ENOTFOUND;
    case HK_OP_OUTCOME:
        return decode_attempted(r, &op->u.outcome.vanished, &op->u.outcome.disabled, &op->u.outcome.log_id);
    case HK_OP_ATTEMPT:
        return decode_attempted(r, &op->u.attempt.vanished, &op->u.attempt.disabled, &op->u.attempt.log_id);
    case HK_OP_RESEND:
    case HK_OP_KEY_PUT: return one_value(r) ? status_of(PQgetvalue(r, 0, 0)) : HK_ESTORE;
    case HK_OP_QUEUE_DROP:
        if (!one_value(r))
            return HK_ESTORE;
        op->u.queue_drop.more = PQgetvalue(r, 0, 0)[0] == 't';
        return 0;
    case HK_OP_USER_PUT: return decode_user_put(op, r);
    case HK_OP_KEY_REVOKE: return decode_key_revoke(op, r);
    case HK_OP_NODE_PUT: return decode_tree(r, op->u.node_put.err, sizeof(op->u.node_put.err));
    case HK_OP_ACCOUNT_PUT: return decode_tree(r, op->u.account_put.err, sizeof(op->u.account_put.err));
    case HK_OP_PRUNE: return decode_prune(op, r);
    case HK_OP_RECOVER: return decode_recover(op, r);
    case HK_OP_TREE_IMPORT: return decode_import(op, r);
    default: return HK_ESTORE;
    }
}
