/*
 * api_log.c: the attempt log in the EnergyCAP dialect.
 *   GET  /api/v3/webhook/{webhookId}/log?pageSize=&pageNumber=&filter=
 *   GET  /api/v3/webhook/{webhookId}/log/{webhookLogId}/detail
 *   POST /api/v3/webhook/{webhookId}/log/{webhookLogId}/resend  (hookd's addition)
 *
 * Pages are newest first. Filters: `result` and `logDate` with the
 * operators equals, not equals, one of, greater than, less than,
 * greater than or equal, less than or equal, between ... and ...; several
 * conditions joined with `and`. A date stands for the span its precision
 * names: `2026-11-22` the whole day, `2026-11-22T10:00:00Z` that second,
 * `2026-11-22T10:00:00.250Z` that millisecond; so `logDate equals
 * 2026-11-22` is every attempt of that day, and `between` includes both
 * ends' whole spans.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "attempt_log.h"
#include "engine.h"
#include "webhook.h"

#define PAGE_SIZE_DEFAULT 100
#define PAGE_SIZE_MAX 1000
#define FILTER_MAX_TERMS 8

enum op { OP_EQ, OP_NE, OP_ONEOF, OP_GT, OP_LT, OP_GE, OP_LE, OP_BETWEEN };

struct term {
    bool is_date; /* logDate, else result */
    enum op op;
    char values[16][48];
    int nvalues;
    uint64_t lo[2], hi[2]; /* the span each date value names */
};

struct filter {
    struct term t[FILTER_MAX_TERMS];
    int n;
};

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static bool word(const char **p, const char *w)
{
    const char *s = skip_ws(*p);
    size_t n = strlen(w);
    if (strncasecmp(s, w, n) == 0 && (s[n] == '\0' || isspace((unsigned char)s[n]) || s[n] == '\'' || s[n] == '"')) {
        *p = s + n;
        return true;
    }
    return false;
}

/* A value: 'quoted', "quoted" or a bare token. */
static bool value(const char **p, char *out, size_t outlen)
{
    const char *s = skip_ws(*p);
    size_t n = 0;
    if (*s == '\'' || *s == '"') {
        char q = *s++;
        while (*s && *s != q) {
            if (n + 1 < outlen)
                out[n++] = *s;
            s++;
        }
        if (*s != q)
            return false;
        s++;
    } else {
        while (*s && !isspace((unsigned char)*s) && *s != ',') {
            if (n + 1 < outlen)
                out[n++] = *s;
            s++;
        }
    }
    out[n] = '\0';
    *p = s;
    return n > 0;
}

static int parse_filter(const char *text, struct filter *f, char *err, size_t errlen)
{
    const char *p = text;
    f->n = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == '\0')
            break;
        if (f->n == FILTER_MAX_TERMS) {
            snprintf(err, errlen, "filter has more than %d conditions", FILTER_MAX_TERMS);
            return -1;
        }
        struct term *t = &f->t[f->n++];
        memset(t, 0, sizeof(*t));
        if (word(&p, "result"))
            t->is_date = false;
        else if (word(&p, "logDate"))
            t->is_date = true;
        else {
            snprintf(err, errlen, "filter: unknown field at \"%.40s\" (use result or logDate)", skip_ws(p));
            return -1;
        }
        if (word(&p, "not")) {
            if (!word(&p, "equals"))
                goto bad_op;
            t->op = OP_NE;
        } else if (word(&p, "equals")) {
            t->op = OP_EQ;
        } else if (word(&p, "one")) {
            if (!word(&p, "of"))
                goto bad_op;
            t->op = OP_ONEOF;
        } else if (word(&p, "greater")) {
            if (!word(&p, "than"))
                goto bad_op;
            t->op = OP_GT;
            if (word(&p, "or")) {
                if (!word(&p, "equal"))
                    goto bad_op;
                t->op = OP_GE;
            }
        } else if (word(&p, "less")) {
            if (!word(&p, "than"))
                goto bad_op;
            t->op = OP_LT;
            if (word(&p, "or")) {
                if (!word(&p, "equal"))
                    goto bad_op;
                t->op = OP_LE;
            }
        } else if (word(&p, "between")) {
            t->op = OP_BETWEEN;
        } else {
            goto bad_op;
        }
        do {
            if (t->nvalues == 16 || !value(&p, t->values[t->nvalues], sizeof(t->values[0]))) {
                snprintf(err, errlen, "filter: expected a value at \"%.40s\"", skip_ws(p));
                return -1;
            }
            t->nvalues++;
            p = skip_ws(p);
            if (t->op == OP_ONEOF && *p == ',') {
                p++;
                continue;
            }
            if (t->op == OP_BETWEEN && t->nvalues == 1) {
                if (!word(&p, "and")) {
                    snprintf(err, errlen, "filter: between needs \"and\"");
                    return -1;
                }
                continue;
            }
            break;
        } while (1);
        if (t->is_date) {
            if (t->op == OP_ONEOF) {
                snprintf(err, errlen, "filter: logDate does not take \"one of\"");
                return -1;
            }
            for (int i = 0; i < t->nvalues && i < 2; i++) {
                if (hk_parse_date(t->values[i], &t->lo[i]) != 0) {
                    snprintf(err, errlen, "filter: \"%s\" is not a date (use 2026-11-22T10:00:00Z)", t->values[i]);
                    return -1;
                }
                const char *v = t->values[i];
                if (strlen(v) == 10)
                    t->hi[i] = t->lo[i] + 86400000 - 1;
                else if (strchr(v, '.') == NULL && strchr(v, 'T') != NULL)
                    t->hi[i] = t->lo[i] + 999;
                else
                    t->hi[i] = t->lo[i];
            }
        }
        if (!word(&p, "and") && *skip_ws(p) != '\0') {
            snprintf(err, errlen, "filter: expected \"and\" at \"%.40s\"", skip_ws(p));
            return -1;
        }
    }
    return 0;
bad_op:
    snprintf(err, errlen, "filter: unknown operator at \"%.40s\"", skip_ws(p));
    return -1;
}

static bool term_matches(const struct term *t, json_t *rec)
{
    if (t->is_date) {
        uint64_t ms = (uint64_t)json_integer_value(json_object_get(rec, "time"));
        switch (t->op) {
        case OP_EQ: return ms >= t->lo[0] && ms <= t->hi[0];
        case OP_NE: return ms < t->lo[0] || ms > t->hi[0];
        case OP_GT: return ms > t->hi[0];
        case OP_LT: return ms < t->lo[0];
        case OP_GE: return ms >= t->lo[0];
        case OP_LE: return ms <= t->hi[0];
        case OP_BETWEEN: return ms >= t->lo[0] && ms <= t->hi[1];
        case OP_ONEOF: return false;
        }
        return false;
    }
    const char *res = json_string_value(json_object_get(rec, "result"));
    long v = res ? strtol(res, NULL, 10) : 0;
    switch (t->op) {
    case OP_EQ: return res && strcmp(res, t->values[0]) == 0;
    case OP_NE: return res && strcmp(res, t->values[0]) != 0;
    case OP_ONEOF:
        for (int i = 0; i < t->nvalues; i++)
            if (res && strcmp(res, t->values[i]) == 0)
                return true;
        return false;
    case OP_GT: return v > strtol(t->values[0], NULL, 10);
    case OP_LT: return v < strtol(t->values[0], NULL, 10);
    case OP_GE: return v >= strtol(t->values[0], NULL, 10);
    case OP_LE: return v <= strtol(t->values[0], NULL, 10);
    case OP_BETWEEN: return v >= strtol(t->values[0], NULL, 10) && v <= strtol(t->values[1], NULL, 10);
    }
    return false;
}

static bool matches(const struct filter *f, json_t *rec)
{
    for (int i = 0; i < f->n; i++)
        if (!term_matches(&f->t[i], rec))
            return false;
    return true;
}

static json_t *user_child(hk_txn *txn, uint32_t uid)
{
    hk_user u;
    if (uid == 0 || hk_user_get(txn, uid, &u) != 0)
        return json_null();
    return json_pack("{s:s, s:s, s:I}", "fullName", u.full_name, "userCode", u.code, "userId", (json_int_t)u.id);
}

static json_t *log_item(hk_txn *txn, json_t *rec)
{
    char date[40];
    hk_fmt_date_iso((uint64_t)json_integer_value(json_object_get(rec, "time")), date, sizeof(date));
    return json_pack("{s:O, s:O, s:O, s:O, s:O, s:s, s:O, s:O, s:O, s:O, s:O, s:o}", "webhookLogId",
                     json_object_get(rec, "id"), "webhookId", json_object_get(rec, "webhookId"), "eventId",
                     json_object_get(rec, "eventUuid"), "eventName", json_object_get(rec, "event"), "attempt",
                     json_object_get(rec, "attempt"), "logDate", date, "result", json_object_get(rec, "result"), "url",
                     json_object_get(rec, "url"), "durationMs", json_object_get(rec, "durationMs"), "error",
                     json_object_get(rec, "error"), "exhausted", json_object_get(rec, "exhausted"), "user",
                     user_child(txn, (uint32_t)json_integer_value(json_object_get(rec, "userId"))));
}

/* Parses a positive id up to max from a route parameter; 0 when malformed or out of range. */
static uint64_t param_id(const hk_ctx *ctx, const char *name, uint64_t max)
{
    const char *s = hk_route_param(&ctx->params, name);
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (s == NULL || *s == '\0' || *end != '\0' || errno != 0 || !isdigit((unsigned char)*s) || v > max)
        return 0;
    return v;
}

static long query_long(hk_ctx *ctx, const char *name, long def, bool *bad)
{
    char *v = hk_query_get(ctx, name);
    if (v == NULL)
        return def;
    char *end;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || n < 1)
        *bad = true;
    free(v);
    return n;
}

static void log_list(hk_ctx *ctx)
{
    uint32_t wid = (uint32_t)param_id(ctx, "webhookId", UINT32_MAX);
    bool bad = false;
    long size = query_long(ctx, "pageSize", PAGE_SIZE_DEFAULT, &bad);
    long number = query_long(ctx, "pageNumber", 1, &bad);
    if (bad || size > PAGE_SIZE_MAX) {
        hk_respond_error(ctx, 400, "pageSize must be 1..%d and pageNumber at least 1", PAGE_SIZE_MAX);
        return;
    }
    struct filter f;
    char *ftext = hk_query_get(ctx, "filter");
    char err[200];
    if (ftext != NULL && parse_filter(ftext, &f, err, sizeof(err)) != 0) {
        free(ftext);
        hk_respond_field_error(ctx, 400, "filter", "%s", err);
        return;
    }
    if (ftext == NULL)
        f.n = 0;
    free(ftext);
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    json_t *wh;
    if (wid == 0 || hk_webhook_get(txn, wid, &wh) != 0) {
        hk_txn_end(txn);
        hk_respond_error(ctx, 404, "webhook %s not found", hk_route_param(&ctx->params, "webhookId"));
        return;
    }
    json_decref(wh);
    /* Newest first: walk the webhook's records backwards from the key
     * just past its last possible one. */
    uint8_t start[12];
    hk_be32(start, wid);
    hk_be64(start + 4, UINT64_MAX);
    hk_cursor *c;
    json_t *items = json_array();
    /* A page number past every record is an empty page, not an overflow. */
    size_t total = 0, skip = (uint64_t)(number - 1) >= SIZE_MAX / 2 / (size_t)size
                                 ? SIZE_MAX / 2
                                 : (size_t)(number - 1) * (size_t)size;
    if ((rc = hk_cursor_open(txn, HK_DB_LOG, &c)) == 0) {
        hk_val k = {start, sizeof(start)}, v;
        int r = hk_cursor_get(c, HK_SEEK, &k, &v);
        r = r == 0 ? hk_cursor_get(c, HK_PREV, &k, &v) : hk_cursor_get(c, HK_LAST, &k, &v);
        for (; r == 0; r = hk_cursor_get(c, HK_PREV, &k, &v)) {
            if (k.len != 12 || hk_rd32(k.data) != wid)
                break;
            bool in_page = total >= skip && total < skip + (size_t)size;
            if (f.n == 0 && !in_page) {
                total++;
                continue;
            }
            json_t *rec = hk_log_record_json(k.data, k.len, v.data, v.len);
            if (rec == NULL)
                continue;
            if (matches(&f, rec)) {
                if (total >= skip && total < skip + (size_t)size)
                    json_array_append_new(items, log_item(txn, rec));
                total++;
            }
            json_decref(rec);
        }
        hk_cursor_close(c);
    }
    hk_txn_end(txn);
    char headers[256];
    size_t pages = total == 0 ? 0 : (total + (size_t)size - 1) / (size_t)size;
    snprintf(headers, sizeof(headers),
             "PageNumber: %ld\r\nPageSize: %ld\r\nTotalNumberOfRecords: %zu\r\nTotalPages: %zu\r\n", number, size,
             total, pages);
    hk_respond_json_headers(ctx, 200, headers, items);
}

static int load_record(hk_ctx *ctx, hk_txn *txn, uint32_t *wid, uint64_t *lid, json_t **rec)
{
    *wid = (uint32_t)param_id(ctx, "webhookId", UINT32_MAX);
    *lid = param_id(ctx, "webhookLogId", UINT64_MAX);
    json_t *wh;
    if (*wid == 0 || hk_webhook_get(txn, *wid, &wh) != 0) {
        hk_respond_error(ctx, 404, "webhook %s not found", hk_route_param(&ctx->params, "webhookId"));
        return -1;
    }
    json_decref(wh);
    if (*lid == 0 || hk_log_get(txn, *wid, *lid, rec) != 0) {
        hk_respond_error(ctx, 404, "log record %s of webhook %u not found",
                         hk_route_param(&ctx->params, "webhookLogId"), *wid);
        return -1;
    }
    return 0;
}

static void log_detail(hk_ctx *ctx)
{
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    uint32_t wid;
    uint64_t lid;
    json_t *rec;
    if (load_record(ctx, txn, &wid, &lid, &rec) != 0) {
        hk_txn_end(txn);
        return;
    }
    json_t *out = json_pack("{s:O, s:O, s:O, s:O, s:o}", "request", json_object_get(rec, "request"), "response",
                            json_object_get(rec, "response"), "result", json_object_get(rec, "result"), "url",
                            json_object_get(rec, "url"), "user",
                            user_child(txn, (uint32_t)json_integer_value(json_object_get(rec, "userId"))));
    json_decref(rec);
    hk_txn_end(txn);
    hk_respond_json(ctx, 200, out);
}

struct resend_req {
    hk_ctx *ctx;
    uint64_t log_id;
    char event_uuid[48];
};

static void resend_done(uint32_t wid, uint64_t eid, int status, void *arg)
{
    struct resend_req *r = arg;
    hk_ctx *ctx = r->ctx;
    HK_UNUSED(eid);
    hk_api_note_commit(ctx->app, status);
    if (status == HK_ENOTFOUND)
        hk_respond_error(ctx, 404, "the event of that record is no longer stored");
    else if (status != 0)
        hk_respond_store_error(ctx, status);
    else
        hk_respond_json(ctx, 202,
                        json_pack("{s:I, s:I, s:s}", "webhookId", (json_int_t)wid, "webhookLogId",
                                  (json_int_t)r->log_id, "eventId", r->event_uuid));
    free(r);
}

static void log_resend(hk_ctx *ctx)
{
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    uint32_t wid;
    uint64_t lid;
    json_t *rec;
    if (load_record(ctx, txn, &wid, &lid, &rec) != 0) {
        hk_txn_end(txn);
        return;
    }
    uint64_t eid = (uint64_t)json_integer_value(json_object_get(rec, "eventId"));
    if (eid == 0) {
        /* Synchronous calls (Execute, custom actions) store no event to queue. */
        json_decref(rec);
        hk_txn_end(txn);
        hk_respond_error(ctx, 400, "log record %llu is of a synchronous call, which cannot be resent",
                         (unsigned long long)lid);
        return;
    }
    struct resend_req *r = hk_calloc(1, sizeof(*r));
    r->ctx = ctx;
    r->log_id = lid;
    const char *uuid = json_string_value(json_object_get(rec, "eventUuid"));
    snprintf(r->event_uuid, sizeof(r->event_uuid), "%s", uuid ? uuid : "");
    json_decref(rec);
    hk_txn_end(txn);
    if (ctx->app->engine == NULL) {
        free(r);
        hk_respond_error(ctx, 503, "server is shutting down");
        return;
    }
    hk_engine_resend(ctx->app->engine, wid, eid, resend_done, r);
}

const hk_api_route hk_log_routes[] = {
    {"GET", "/api/v3/webhook/{webhookId}/log", log_list, HK_PERM_VIEW},
    {"GET", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/detail", log_detail, HK_PERM_VIEW},
    {"POST", "/api/v3/webhook/{webhookId}/log/{webhookLogId}/resend", log_resend, HK_PERM_MANAGE},
};
const size_t hk_log_routes_count = HK_ARRAY_SIZE(hk_log_routes);
