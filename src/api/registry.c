/*
 * registry.c: validation of both dialects' input into the one webhook
 * record, the two views of a record, $select, the list filters, and the
 * reads and writes behind the registry endpoints.
 *
 * Writes follow the store's group commit: the body is parsed and checked
 * on the loop, then an hk_write whose apply re-reads the webhook inside the
 * batch's transaction (so a change the delivery engine committed meanwhile,
 * such as a state going to TooManyErrors, is neither lost nor overwritten
 * blindly) builds the new record and stores it. The client is answered from
 * the done callback, after the commit.
 */
#include "registry.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api_sync.h"
#include "attempt_log.h"
#include "delivery.h"
#include "engine.h"
#include "json_patch.h"
#include "log.h"

#define NOTIFY_MAX 50         /* addresses in notify */
#define EMAIL_MAX 254         /* bytes in one address */
#define HEADERS_MAX 32        /* custom headers per webhook */
#define HEADER_VALUE_MAX 1024 /* bytes in a custom header value */
#define FILTER_CONDS_MAX 8    /* conditions in an EnergyCAP filter */
#define FILTER_VALUES_MAX 32  /* values of one "one of" */
#define IUS_MAX 64            /* bytes of an If-Unmodified-Since value */

/* ---- small helpers -------------------------------------------------------- */

static int fail(hk_reg_err *err, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(hk_reg_err *err, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return HK_EINVAL;
}

void hk_reg_respond_err(hk_ctx *ctx, const hk_reg_err *err)
{
    if (err->field[0] != '\0')
        hk_respond_field_error(ctx, err->status, err->field, "%s", err->msg);
    else
        hk_respond_error(ctx, err->status, "%s", err->msg);
}

/* The member of in named name, case-insensitively (an exact match preferred); NULL for absent or null. */
static json_t *member(const json_t *in, const char *name)
{
    const char *k = hk_json_object_key(in, name, true);
    json_t *v = k ? json_object_get(in, k) : NULL;
    return json_is_null(v) ? NULL : v;
}

/* Characters (code points) in a valid UTF-8 string. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            n++;
    return n;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

bool hk_reg_parse_id(const char *s, uint32_t *id)
{
    if (s == NULL || *s == '\0' || strlen(s) > 10)
        return false;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v == 0 || v > INT32_MAX)
        return false;
    *id = (uint32_t)v;
    return true;
}

/* ---- validators ---------------------------------------------------------- */

/* An absolute http(s) URL with a host, in ASCII without spaces or controls. */
static bool url_ok(const char *u)
{
    size_t len = strlen(u);
    if (len == 0 || len > HK_WEBHOOK_URL_MAX)
        return false;
    for (const char *c = u; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
            return false;
    const char *p;
    if (strncasecmp(u, "http://", 7) == 0)
        p = u + 7;
    else if (strncasecmp(u, "https://", 8) == 0)
        p = u + 8;
    else
        return false;
    size_t alen = strcspn(p, "/?#");
    const char *at = memchr(p, '@', alen);
    if (at != NULL) {
        alen -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *end = p + alen, *host_end;
    if (*p == '[') {
        const char *close = memchr(p, ']', alen);
        if (close == NULL || close == p + 1)
            return false;
        for (const char *c = p + 1; c < close; c++)
            if (!(strchr("0123456789abcdefABCDEF:.", *c)))
                return false;
        host_end = close + 1;
    } else {
        host_end = p;
        while (host_end < end && *host_end != ':') {
            char c = *host_end;
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_' || c == '~' || c == '%'))
                return false;
            host_end++;
        }
        if (host_end == p)
            return false;
    }
    if (host_end == end)
        return true;
    if (*host_end != ':')
        return false;
    const char *port = host_end + 1;
    if (port == end)
        return false;
    unsigned long v = 0;
    for (const char *c = port; c < end; c++) {
        if (*c < '0' || *c > '9' || c - port >= 5)
            return false;
        v = v * 10 + (unsigned long)(*c - '0');
    }
    return v >= 1 && v <= 65535;
}

/* A plausible address: local@domain.tld in ASCII. */
static bool email_ok(const char *s)
{
    size_t len = strlen(s);
    const char *at = strrchr(s, '@');
    if (len < 5 || len > EMAIL_MAX || at == NULL || at == s || at - s > 64)
        return false;
    for (const char *c = s; c < at; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("<>()[]\\,;:\"@", *c))
            return false;
    const char *d = at + 1;
    bool dot = false;
    size_t label = 0;
    for (const char *c = d;; c++) {
        if (*c == '.' || *c == '\0') {
            if (label == 0 || c[-1] == '-')
                return false;
            if (*c == '\0')
                break;
            dot = true;
            label = 0;
            continue;
        }
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-'))
            return false;
        if (label == 0 && *c == '-')
            return false;
        label++;
    }
    return dot;
}

static bool event_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > HK_EVENT_NAME_MAX)
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

static bool header_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 128)
        return false;
    for (const char *c = s; *c; c++) {
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", *c))
            return false;
    }
    return true;
}

/* Headers the delivery sets itself: a webhook cannot override them. */
static bool header_reserved(const char *s)
{
    static const char *const reserved[] = {
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "user-agent",
        "x-superoffice-signature",
        "x-superoffice-event",
        "x-superoffice-eventid",
        "x-superoffice-retry",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(reserved); i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return true;
    return false;
}

/* ---- setting fields (shared by both dialects; prop is the dialect's name) -- */

static int set_text(json_t *rec, const char *key, json_t *v, const char *prop, size_t max_chars, hk_reg_err *err)
{
    if (v == NULL) {
        json_object_set_new(rec, key, json_string(""));
        return 0;
    }
    if (!json_is_string(v))
        return fail(err, 400, prop, "%s must be a string", prop);
    if (utf8_chars(json_string_value(v)) > max_chars)
        return fail(err, 400, prop, "%s must be at most %zu characters", prop, max_chars);
    json_object_set_new(rec, key, json_string(json_string_value(v)));
    return 0;
}

static int set_url(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    if (v == NULL)
        return fail(err, 400, prop, "%s is required", prop);
    if (!json_is_string(v))
        return fail(err, 400, prop, "%s must be a string", prop);
    if (!url_ok(json_string_value(v)))
        return fail(err, 400, prop, "%s must be an absolute http:// or https:// URL with a host (at most %d bytes)",
                    prop, HK_WEBHOOK_URL_MAX);
    json_object_set_new(rec, "url", json_string(json_string_value(v)));
    return 0;
}

static int set_secret(json_t *rec, json_t *v, const char *prop, bool required, hk_reg_err *err)
{
    if (v != NULL && !json_is_string(v))
        return fail(err, 400, prop, "%s must be a string", prop);
    const char *s = v ? json_string_value(v) : "";
    if (required && *s == '\0')
        return fail(err, 400, prop, "%s is required and cannot be empty", prop);
    if (strlen(s) > HK_WEBHOOK_SECRET_MAX)
        return fail(err, 400, prop, "%s must be at most %d bytes", prop, HK_WEBHOOK_SECRET_MAX);
    if (has_ctl(s))
        return fail(err, 400, prop, "%s must not contain control characters", prop);
    json_object_set_new(rec, "secret", json_string(s));
    return 0;
}

static int set_events(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    json_t *events = json_array();
    if (v != NULL && !json_is_array(v)) {
        json_decref(events);
        return fail(err, 400, prop, "%s must be an array of event names", prop);
    }
    size_t i;
    json_t *e;
    json_array_foreach (v, i, e) {
        const char *name = json_string_value(e);
        if (name == NULL || !event_name_ok(name)) {
            json_decref(events);
            return fail(err, 400, prop, "%s[%zu] must be an event name (1..%d characters, no spaces)", prop, i,
                        HK_EVENT_NAME_MAX);
        }
        bool dup = false;
        for (size_t j = 0; j < json_array_size(events) && !dup; j++)
            dup = strcmp(json_string_value(json_array_get(events, j)), name) == 0;
        if (!dup)
            json_array_append_new(events, json_string(name));
    }
    if (json_array_size(events) > HK_WEBHOOK_EVENTS_MAX) {
        json_decref(events);
        return fail(err, 400, prop, "%s may hold at most %d events", prop, HK_WEBHOOK_EVENTS_MAX);
    }
    json_object_set_new(rec, "events", events);
    return 0;
}

/* Adds address (len bytes) to list after checking it. */
static int add_address(json_t *list, const char *s, size_t len, const char *prop, hk_reg_err *err)
{
    char *a = hk_strndup(s, len);
    int rc = 0;
    if (!email_ok(a))
        rc = fail(err, 400, prop, "%s: \"%.100s\" is not a valid email address", prop, a);
    else if (json_array_size(list) >= NOTIFY_MAX)
        rc = fail(err, 400, prop, "%s may hold at most %d addresses", prop, NOTIFY_MAX);
    else
        json_array_append_new(list, json_string(a));
    free(a);
    return rc;
}

/* SuperOffice ErrorsEmail: addresses separated by , or ; (blanks around them ignored). */
static int set_notify_text(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    if (v != NULL && !json_is_string(v))
        return fail(err, 400, prop, "%s must be a string", prop);
    json_t *list = json_array();
    const char *s = v ? json_string_value(v) : "";
    while (*s) {
        size_t len = strcspn(s, ",;");
        const char *b = s, *e = s + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b && add_address(list, b, (size_t)(e - b), prop, err) != 0) {
            json_decref(list);
            return HK_EINVAL;
        }
        s += len;
        if (*s)
            s++;
    }
    json_object_set_new(rec, "notify", list);
    return 0;
}

/* EnergyCAP mailingList: a non-empty array of addresses. */
static int set_notify_list(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    if (!json_is_array(v))
        return fail(err, 400, prop, "%s must be an array of email addresses", prop);
    if (json_array_size(v) == 0)
        return fail(err, 400, prop, "%s cannot be empty", prop);
    json_t *list = json_array();
    size_t i;
    json_t *e;
    json_array_foreach (v, i, e) {
        if (!json_is_string(e)) {
            json_decref(list);
            return fail(err, 400, prop, "%s[%zu] must be a string", prop, i);
        }
        const char *s = json_string_value(e);
        if (add_address(list, s, strlen(s), prop, err) != 0) {
            json_decref(list);
            return HK_EINVAL;
        }
    }
    json_object_set_new(rec, "notify", list);
    return 0;
}

static int set_extension(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    if (v != NULL && !json_is_string(v))
        return fail(err, 400, prop, "%s must be a string or null", prop);
    const char *s = v ? json_string_value(v) : "";
    if (*s == '\0') {
        json_object_set_new(rec, "extension", json_null());
        return 0;
    }
    if (strlen(s) > HK_WEBHOOK_EXTENSION_MAX)
        return fail(err, 400, prop, "%s must be at most %d bytes", prop, HK_WEBHOOK_EXTENSION_MAX);
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return fail(err, 400, prop, "%s must not contain spaces or control characters", prop);
    json_object_set_new(rec, "extension", json_string(s));
    return 0;
}

static int set_headers(json_t *rec, json_t *v, const char *prop, hk_reg_err *err)
{
    if (v != NULL && !json_is_object(v))
        return fail(err, 400, prop, "%s must be an object of string values", prop);
    if (json_object_size(v) > HEADERS_MAX)
        return fail(err, 400, prop, "%s may hold at most %d headers", prop, HEADERS_MAX);
    const char *k;
    json_t *h;
    json_object_foreach (v, k, h) {
        if (!header_name_ok(k))
            return fail(err, 400, prop, "%s: \"%.100s\" is not a valid header name", prop, k);
        if (header_reserved(k))
            return fail(err, 400, prop, "%s: %s is set by the delivery and cannot be overridden", prop, k);
        const char *s = json_string_value(h);
        if (s == NULL)
            return fail(err, 400, prop, "%s.%s must be a string", prop, k);
        if (strlen(s) > HEADER_VALUE_MAX || has_ctl(s))
            return fail(err, 400, prop, "%s.%s must be at most %d bytes without control characters", prop, k,
                        HEADER_VALUE_MAX);
    }
    json_object_set_new(rec, "headers", v ? json_deep_copy(v) : json_object());
    return 0;
}

json_t *hk_reg_new_record(void)
{
    return json_pack("{s:i, s:s, s:s, s:[], s:s, s:s, s:s, s:s, s:{}, s:{}, s:[], s:b, s:n, s:i, s:i, s:i, s:i}", "id",
                     0, "name", "", "description", "", "events", "url", "", "secret", "", "state", HK_STATE_ACTIVE,
                     "type", "webhook", "headers", "properties", "notify", "locked", 0, "extension", "registered", 0,
                     "registeredBy", 0, "updated", 0, "updatedBy", 0);
}

int hk_reg_from_so(json_t *rec, const json_t *in, hk_reg_err *err)
{
    if (!json_is_object(in))
        return fail(err, 400, NULL, "the body must be a Webhook object");
    int rc;
    if ((rc = set_text(rec, "name", member(in, "Name"), "Name", HK_WEBHOOK_NAME_MAX, err)) != 0 ||
        (rc = set_events(rec, member(in, "Events"), "Events", err)) != 0 ||
        (rc = set_url(rec, member(in, "TargetUrl"), "TargetUrl", err)) != 0 ||
        (rc = set_secret(rec, member(in, "Secret"), "Secret", false, err)) != 0 ||
        (rc = set_headers(rec, member(in, "Headers"), "Headers", err)) != 0 ||
        (rc = set_notify_text(rec, member(in, "ErrorsEmail"), "ErrorsEmail", err)) != 0 ||
        (rc = set_extension(rec, member(in, "Extension"), "Extension", err)) != 0)
        return rc;

    json_t *type = member(in, "Type");
    if (type != NULL && !json_is_string(type))
        return fail(err, 400, "Type", "Type must be a string");
    if (type != NULL && strcasecmp(json_string_value(type), "webhook") != 0) {
        if (strcasecmp(json_string_value(type), "crmscript") == 0)
            return fail(err, 400, "Type",
                        "Type \"crmscript\" is not supported: CRM scripts cannot run here; use "
                        "\"webhook\"");
        return fail(err, 400, "Type", "Type \"%.64s\" is not supported; the only type is \"webhook\"",
                    json_string_value(type));
    }
    json_object_set_new(rec, "type", json_string("webhook"));

    json_t *props = member(in, "Properties");
    if (props != NULL && !json_is_object(props))
        return fail(err, 400, "Properties", "Properties must be an object");
    json_object_set_new(rec, "properties", props ? json_deep_copy(props) : json_object());

    /* State: the names, or SuperOffice's numbers 1 = Active, 2 = Stopped, 3 = TooManyErrors. */
    json_t *state = member(in, "State");
    const char *st = HK_STATE_ACTIVE;
    if (json_is_string(state)) {
        const char *s = json_string_value(state);
        if (strcasecmp(s, "Active") == 0 || strcmp(s, "1") == 0)
            st = HK_STATE_ACTIVE;
        else if (strcasecmp(s, "Stopped") == 0 || strcmp(s, "2") == 0)
            st = HK_STATE_STOPPED;
        else if (strcasecmp(s, "TooManyErrors") == 0 || strcmp(s, "3") == 0)
            st = HK_STATE_TOO_MANY_ERRORS;
        else
            return fail(err, 400, "State", "State must be Active or Stopped, not \"%.32s\"", s);
    } else if (json_is_integer(state)) {
        json_int_t n = json_integer_value(state);
        if (n < 1 || n > 3)
            return fail(err, 400, "State", "State must be Active (1) or Stopped (2)");
        st = n == 1 ? HK_STATE_ACTIVE : n == 2 ? HK_STATE_STOPPED : HK_STATE_TOO_MANY_ERRORS;
    } else if (state != NULL) {
        return fail(err, 400, "State", "State must be a string");
    }
    json_object_set_new(rec, "state", json_string(st));
    return 0;
}

int hk_reg_from_ecap(json_t *rec, const json_t *in, uint32_t *event_type_id, hk_reg_err *err)
{
    if (!json_is_object(in))
        return fail(err, 400, NULL, "the body must be a WebhookEditRequest object");
    static const char *const required[] = {
        "active", "mailingList", "secret", "url", "webhookDescription", "webhookEventTypeId", "webhookName"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(required); i++)
        if (member(in, required[i]) == NULL)
            return fail(err, 400, required[i], "%s is required", required[i]);
    int rc;
    json_t *active = member(in, "active");
    if (!json_is_boolean(active))
        return fail(err, 400, "active", "active must be true or false");
    json_t *et = member(in, "webhookEventTypeId");
    if (!json_is_integer(et) || json_integer_value(et) < 1 || json_integer_value(et) > INT32_MAX)
        return fail(err, 400, "webhookEventTypeId", "webhookEventTypeId must be a positive integer");
    if ((rc = set_text(rec, "name", member(in, "webhookName"), "webhookName", HK_WEBHOOK_NAME_MAX, err)) != 0 ||
        (rc = set_text(rec, "description", member(in, "webhookDescription"), "webhookDescription", HK_WEBHOOK_DESC_MAX,
                       err)) != 0 ||
        (rc = set_url(rec, member(in, "url"), "url", err)) != 0 ||
        (rc = set_secret(rec, member(in, "secret"), "secret", true, err)) != 0 ||
        (rc = set_notify_list(rec, member(in, "mailingList"), "mailingList", err)) != 0)
        return rc;
    /* extension is optional here: absent keeps it, null or "" clears it. */
    const char *ek = hk_json_object_key(in, "extension", true);
    if (ek != NULL && (rc = set_extension(rec, member(in, "extension"), "extension", err)) != 0)
        return rc;
    /* false on a webhook the server disabled keeps TooManyErrors: it is not active either way. */
    const char *cur = hk_wh_str(rec, "state");
    if (json_is_true(active))
        json_object_set_new(rec, "state", json_string(HK_STATE_ACTIVE));
    else if (strcmp(cur, HK_STATE_TOO_MANY_ERRORS) != 0)
        json_object_set_new(rec, "state", json_string(HK_STATE_STOPPED));
    *event_type_id = (uint32_t)json_integer_value(et);
    return 0;
}

/* ---- views ---------------------------------------------------------------- */

static const hk_user *user_lookup(hk_txn *txn, hk_reg_users *users, uint32_t id)
{
    if (id == 0)
        return NULL;
    for (size_t i = 0; i < users->n; i++)
        if (users->e[i].id == id)
            return users->e[i].found ? &users->e[i].u : NULL;
    size_t slot = users->n < HK_ARRAY_SIZE(users->e) ? users->n++ : id % HK_ARRAY_SIZE(users->e);
    users->e[slot].id = id;
    users->e[slot].found = hk_user_get(txn, id, &users->e[slot].u) == 0;
    return users->e[slot].found ? &users->e[slot].u : NULL;
}

static json_t *date_so(uint64_t ms)
{
    char buf[40];
    if (ms == 0)
        return json_null();
    hk_fmt_date_so(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *associate(hk_txn *txn, hk_reg_users *users, uint32_t id)
{
    const hk_user *u = user_lookup(txn, users, id);
    if (u == NULL)
        return json_null();
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:b}", "AssociateId", (json_int_t)u->id, "Name", u->code, "FullName",
                     u->full_name, "FormalName", u->full_name, "Type", "Associate", "Deleted", 0);
}

static json_t *notify_joined(const json_t *rec)
{
    size_t i, len = 0;
    json_t *a;
    json_t *list = json_object_get(rec, "notify");
    json_array_foreach (list, i, a)
        len += strlen(json_string_value(a) ? json_string_value(a) : "") + 1;
    char *buf = hk_calloc(1, len + 1);
    json_array_foreach (list, i, a) {
        if (i > 0)
            strcat(buf, ",");
        strcat(buf, json_string_value(a) ? json_string_value(a) : "");
    }
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

static json_t *copy_or(const json_t *rec, const char *key, json_t *dflt)
{
    json_t *v = json_object_get(rec, key);
    if (v == NULL) {
        return dflt;
    }
    json_decref(dflt);
    return json_deep_copy(v);
}

json_t *hk_reg_view_so(hk_txn *txn, const json_t *rec, hk_reg_users *users)
{
    hk_reg_users local = {0};
    if (users == NULL)
        users = &local;
    const char *ext = json_string_value(json_object_get(rec, "extension"));
    json_t *v = json_object();
    json_object_set_new(v, "WebhookId", json_integer(hk_wh_int(rec, "id")));
    json_object_set_new(v, "Name", json_string(hk_wh_str(rec, "name")));
    json_object_set_new(v, "Events", copy_or(rec, "events", json_array()));
    json_object_set_new(v, "TargetUrl", json_string(hk_wh_str(rec, "url")));
    json_object_set_new(v, "Secret", json_string(hk_wh_str(rec, "secret")));
    json_object_set_new(v, "State", json_string(hk_wh_str(rec, "state")));
    json_object_set_new(v, "Type", json_string("webhook"));
    json_object_set_new(v, "Headers", copy_or(rec, "headers", json_object()));
    json_object_set_new(v, "Properties", copy_or(rec, "properties", json_object()));
    json_object_set_new(v, "Registered", date_so((uint64_t)hk_wh_int(rec, "registered")));
    json_object_set_new(v, "RegisteredAssociate", associate(txn, users, (uint32_t)hk_wh_int(rec, "registeredBy")));
    json_object_set_new(v, "Updated", date_so((uint64_t)hk_wh_int(rec, "updated")));
    json_object_set_new(v, "UpdatedAssociate", associate(txn, users, (uint32_t)hk_wh_int(rec, "updatedBy")));
    json_object_set_new(v, "ErrorsEmail", notify_joined(rec));
    json_object_set_new(v, "Extension", ext && *ext ? json_string(ext) : json_null());
    return v;
}

json_t *hk_reg_view_ecap(hk_txn *txn, const json_t *rec, hk_reg_users *users)
{
    hk_reg_users local = {0};
    if (users == NULL)
        users = &local;
    uint32_t id = (uint32_t)hk_wh_int(rec, "id");
    const char *state = hk_wh_str(rec, "state");
    const char *ext = json_string_value(json_object_get(rec, "extension"));

    json_t *event_type = json_null();
    const char *first = json_string_value(json_array_get(json_object_get(rec, "events"), 0));
    if (first != NULL) {
        uint32_t tid = 0;
        if (hk_event_type_id(txn, first, &tid) != 0)
            tid = 0;
        event_type = json_pack("{s:i, s:s}", "webhookEventTypeId", (json_int_t)tid, "webhookEventTypeName", first);
    }
    json_t *created_by = json_null();
    const hk_user *u = user_lookup(txn, users, (uint32_t)hk_wh_int(rec, "registeredBy"));
    if (u != NULL)
        created_by =
            json_pack("{s:s, s:s, s:i}", "fullName", u->full_name, "userCode", u->code, "userId", (json_int_t)u->id);
    char created[40] = "";
    uint64_t reg = (uint64_t)hk_wh_int(rec, "registered");
    if (reg != 0)
        hk_fmt_date_iso(reg, created, sizeof(created));
    hk_webhook_stats st;
    hk_webhook_stats_get(txn, id, &st);

    json_t *v = json_object();
    json_object_set_new(v, "webhookId", json_integer(id));
    json_object_set_new(v, "webhookName", json_string(hk_wh_str(rec, "name")));
    json_object_set_new(v, "webhookDescription", json_string(hk_wh_str(rec, "description")));
    json_object_set_new(v, "url", json_string(hk_wh_str(rec, "url")));
    json_object_set_new(v, "secret", json_string(hk_wh_str(rec, "secret")));
    json_object_set_new(v, "active", json_boolean(strcmp(state, HK_STATE_ACTIVE) == 0));
    json_object_set_new(v, "webhookStatus", json_string(state));
    json_object_set_new(v, "mailingList", copy_or(rec, "notify", json_array()));
    json_object_set_new(v, "eventType", event_type);
    json_object_set_new(v, "locked", json_boolean(hk_wh_bool(rec, "locked")));
    json_object_set_new(v, "createdDate", reg ? json_string(created) : json_null());
    json_object_set_new(v, "createdBy", created_by);
    json_object_set_new(v, "successRate", json_real(hk_webhook_success_rate(&st)));
    json_object_set_new(v, "extension", ext && *ext ? json_string(ext) : json_null());
    return v;
}

void hk_reg_select(json_t *view, const char *select)
{
    if (select == NULL || *select == '\0' || !json_is_object(view))
        return;
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe (view, tmp, k, v) {
        if (strcmp(k, "_Links") == 0)
            continue;
        bool keep = false;
        size_t klen = strlen(k);
        for (const char *s = select; *s && !keep;) {
            size_t len = strcspn(s, ",");
            const char *b = s, *e = s + len;
            while (b < e && *b == ' ')
                b++;
            /* "Associate/FullName" selects the whole Associate. */
            const char *slash = memchr(b, '/', (size_t)(e - b));
            if (slash != NULL)
                e = slash;
            while (e > b && e[-1] == ' ')
                e--;
            keep = (size_t)(e - b) == klen && strncasecmp(b, k, klen) == 0;
            s += len;
            if (*s)
                s++;
        }
        if (!keep)
            json_object_set_new(view, k, json_null());
    }
}

/* The base of _Links: the configured public URL or http:// and the Host header. */
static char *links_base(const hk_ctx *ctx)
{
    const char *pub = ctx->app->cfg->public_url;
    char *base;
    if (pub != NULL && *pub != '\0') {
        base = hk_strdup(pub);
    } else {
        const hk_header *h = hk_http_header(ctx->req, "Host");
        size_t len = h ? h->value_len : 0;
        if (h == NULL || len == 0 || len > 255 || memchr(h->value, '"', len) || memchr(h->value, '/', len))
            base = hk_strdup("http://localhost");
        else {
            base = hk_malloc(len + 8);
            memcpy(base, "http://", 7);
            memcpy(base + 7, h->value, len);
            base[len + 7] = '\0';
        }
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    return base;
}

/* Renders rec in view for an answer; select is the $select value (may be NULL). */
static json_t *render(hk_txn *txn, const json_t *rec, enum hk_reg_view view, const char *select, const char *base,
                      hk_reg_users *users)
{
    if (view == HK_REG_VIEW_ECAP)
        return hk_reg_view_ecap(txn, rec, users);
    json_t *v = hk_reg_view_so(txn, rec, users);
    hk_reg_select(v, select);
    if (view == HK_REG_VIEW_SO_LINKS && base != NULL) {
        char self[2400], archive[2400];
        snprintf(self, sizeof(self), "%s/api/v1/Webhook/%u", base, (unsigned)hk_wh_int(rec, "id"));
        snprintf(archive, sizeof(archive), "%s/api/v1/Webhook", base);
        json_object_set_new(v, "_Links", json_pack("{s:s, s:s}", "Self", self, "Archive", archive));
    }
    return v;
}

/* ---- reads ----------------------------------------------------------------- */

static void not_found(hk_ctx *ctx, uint32_t id)
{
    if (ctx->dialect == HK_DIALECT_ECAP)
        hk_respond_field_error(ctx, 404, "webhookId", "webhook %u does not exist", (unsigned)id);
    else
        hk_respond_error(ctx, 404, "webhook %u does not exist", (unsigned)id);
}

void hk_reg_get(hk_ctx *ctx, uint32_t id, enum hk_reg_view view)
{
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    json_t *rec;
    rc = hk_webhook_get(txn, id, &rec);
    if (rc != 0) {
        hk_txn_end(txn);
        if (rc == HK_ENOTFOUND)
            not_found(ctx, id);
        else
            hk_respond_store_error(ctx, rc);
        return;
    }
    char *select = hk_query_get(ctx, "$select");
    char *base = links_base(ctx);
    json_t *out = render(txn, rec, view, select, base, NULL);
    hk_txn_end(txn);
    json_decref(rec);
    free(select);
    free(base);
    hk_respond_json(ctx, 200, out);
}

void hk_reg_default(hk_ctx *ctx)
{
    json_t *rec = hk_reg_new_record();
    json_t *v = hk_reg_view_so(NULL, rec, NULL);
    char *select = hk_query_get(ctx, "$select");
    hk_reg_select(v, select);
    free(select);
    json_decref(rec);
    hk_respond_json(ctx, 200, v);
}

void hk_reg_last_error(hk_ctx *ctx, uint32_t id)
{
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    json_t *rec;
    rc = hk_webhook_get(txn, id, &rec);
    if (rc != 0) {
        hk_txn_end(txn);
        if (rc == HK_ENOTFOUND)
            not_found(ctx, id);
        else
            hk_respond_store_error(ctx, rc);
        return;
    }
    json_decref(rec);
    hk_webhook_stats st;
    hk_webhook_stats_get(txn, id, &st);
    hk_txn_end(txn);
    hk_respond_json(ctx, 200, json_string(st.last_error));
}

/* ---- lists and filters ------------------------------------------------------ */

struct list_state {
    hk_txn *txn;
    json_t *out;
    enum hk_reg_view view;
    const char *select;
    hk_reg_users users;
    bool (*match)(struct list_state *ls, const json_t *rec);
    const void *filter;
};

static int list_one(json_t *rec, void *arg)
{
    struct list_state *ls = arg;
    if (ls->match == NULL || ls->match(ls, rec))
        json_array_append_new(ls->out, render(ls->txn, rec, ls->view, ls->select, NULL, &ls->users));
    return 0;
}

static void list_respond(hk_ctx *ctx, struct list_state *ls)
{
    int rc = hk_kv_read(ctx->app->store, &ls->txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    ls->out = json_array();
    rc = hk_webhook_each(ls->txn, list_one, ls);
    hk_txn_end(ls->txn);
    if (rc < 0) {
        json_decref(ls->out);
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_respond_json(ctx, 200, ls->out);
}

struct so_filter {
    const char *name, *event, *state;
};

static bool so_match(struct list_state *ls, const json_t *rec)
{
    const struct so_filter *f = ls->filter;
    if (f->name && *f->name && strcasestr(hk_wh_str(rec, "name"), f->name) == NULL)
        return false;
    if (f->state && strcmp(hk_wh_str(rec, "state"), f->state) != 0)
        return false;
    if (f->event && *f->event) {
        size_t i;
        json_t *e;
        bool found = false;
        json_array_foreach (json_object_get(rec, "events"), i, e)
            found = found || strcasecmp(json_string_value(e) ? json_string_value(e) : "", f->event) == 0;
        if (!found)
            return false;
    }
    return true;
}

void hk_reg_list_so(hk_ctx *ctx, const char *name, const char *event, const char *status)
{
    struct so_filter f = {name, event, NULL};
    if (status != NULL && *status != '\0' && strcasecmp(status, "Unknown") != 0 && strcmp(status, "0") != 0) {
        if (strcasecmp(status, "Active") == 0 || strcmp(status, "1") == 0)
            f.state = HK_STATE_ACTIVE;
        else if (strcasecmp(status, "Stopped") == 0 || strcmp(status, "2") == 0)
            f.state = HK_STATE_STOPPED;
        else if (strcasecmp(status, "TooManyErrors") == 0 || strcmp(status, "3") == 0)
            f.state = HK_STATE_TOO_MANY_ERRORS;
        else {
            hk_respond_field_error(ctx, 400, "statusFilter",
                                   "statusFilter must be Unknown, Active, Stopped or TooManyErrors, not \"%.32s\"",
                                   status);
            return;
        }
    }
    struct list_state ls = {0};
    ls.view = HK_REG_VIEW_SO;
    char *select = hk_query_get(ctx, "$select");
    ls.select = select;
    ls.match = so_match;
    ls.filter = &f;
    list_respond(ctx, &ls);
    free(select);
}

/* EnergyCAP filter: conditions on these fields. */
enum ffield { F_ID, F_NAME, F_DESC, F_URL, F_EVENT_ID, F_EVENT_NAME, F_STATUS, F_ACTIVE, F_LOCKED, F_EXTENSION };
enum fkind { K_TEXT, K_INT, K_BOOL };
enum fop { OP_EQ, OP_NE, OP_LIKE, OP_NOT_LIKE, OP_IN, OP_NOT_IN };

static const struct {
    const char *name;
    enum ffield f;
    enum fkind kind;
} filter_fields[] = {
    {"webhookId", F_ID, K_INT},
    {"webhookName", F_NAME, K_TEXT},
    {"webhookDescription", F_DESC, K_TEXT},
    {"url", F_URL, K_TEXT},
    {"webhookEventTypeId", F_EVENT_ID, K_INT},
    {"webhookEventTypeName", F_EVENT_NAME, K_TEXT},
    {"webhookStatus", F_STATUS, K_TEXT},
    {"active", F_ACTIVE, K_BOOL},
    {"locked", F_LOCKED, K_BOOL},
    {"extension", F_EXTENSION, K_TEXT},
};

/* Longer spellings first so that "not equals" is not read as "not" + junk. */
static const struct {
    const char *text;
    enum fop op;
} filter_ops[] = {
    {"not one of", OP_NOT_IN},
    {"not equals", OP_NE},
    {"not like", OP_NOT_LIKE},
    {"one of", OP_IN},
    {"equals", OP_EQ},
    {"like", OP_LIKE},
    {"eq", OP_EQ},
    {"ne", OP_NE},
    {"in", OP_IN},
};

struct cond {
    enum ffield f;
    enum fkind kind;
    enum fop op;
    size_t n;
    char *vals[FILTER_VALUES_MAX];
};

struct ecap_filter {
    size_t n;
    struct cond c[FILTER_CONDS_MAX];
};

static void ecap_filter_free(struct ecap_filter *f)
{
    for (size_t i = 0; i < f->n; i++)
        for (size_t j = 0; j < f->c[i].n; j++)
            free(f->c[i].vals[j]);
    f->n = 0;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Matches a keyword phrase (words separated by blanks in text) at p, case-insensitively, ending at a blank
 * or the end; returns the position after it or NULL. */
static const char *match_words(const char *p, const char *text)
{
    while (*text) {
        if (*text == ' ') {
            if (*p != ' ' && *p != '\t')
                return NULL;
            p = skip_ws(p);
            text++;
            continue;
        }
        if ((*p | 0x20) != (*text | 0x20))
            return NULL;
        p++;
        text++;
    }
    return (*p == '\0' || *p == ' ' || *p == '\t' || *p == '"' || *p == '\'') ? p : NULL;
}

/* Reads one value at *pp: quoted ("..." or '...', a doubled or backslashed quote is literal) or bare (up to
 * a blank, or also | and , in a list). Returns a malloc'd string or NULL when malformed. */
static char *read_value(const char **pp, bool in_list)
{
    const char *p = *pp;
    size_t cap = strlen(p) + 1, o = 0;
    char *out = hk_malloc(cap);
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        for (;;) {
            if (*p == '\0') {
                free(out);
                return NULL;
            }
            if (*p == '\\' && (p[1] == q || p[1] == '\\')) {
                out[o++] = p[1];
                p += 2;
            } else if (*p == q && p[1] == q) {
                out[o++] = q;
                p += 2;
            } else if (*p == q) {
                p++;
                break;
            } else {
                out[o++] = *p++;
            }
        }
    } else {
        while (*p && *p != ' ' && *p != '\t' && !(in_list && (*p == '|' || *p == ',')))
            out[o++] = *p++;
        if (o == 0) {
            free(out);
            return NULL;
        }
    }
    out[o] = '\0';
    *pp = p;
    return out;
}

/* Canonical form of a filter value for its field kind; false when it does not fit. */
static bool canonical(char **v, enum fkind kind)
{
    if (kind == K_TEXT)
        return true;
    if (kind == K_BOOL) {
        if (strcasecmp(*v, "true") == 0 || strcmp(*v, "1") == 0) {
            free(*v);
            *v = hk_strdup("true");
            return true;
        }
        if (strcasecmp(*v, "false") == 0 || strcmp(*v, "0") == 0) {
            free(*v);
            *v = hk_strdup("false");
            return true;
        }
        return false;
    }
    char *end;
    long long n = strtoll(*v, &end, 10);
    if (**v == '\0' || *end != '\0')
        return false;
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", n);
    free(*v);
    *v = hk_strdup(buf);
    return true;
}

static int ecap_filter_parse(const char *s, struct ecap_filter *f, char *err, size_t errlen)
{
    const char *p = skip_ws(s);
    f->n = 0;
    while (*p) {
        if (f->n == FILTER_CONDS_MAX) {
            snprintf(err, errlen, "filter may hold at most %d conditions", FILTER_CONDS_MAX);
            return HK_EINVAL;
        }
        struct cond *c = &f->c[f->n];
        c->n = 0;
        size_t flen = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.");
        size_t i;
        for (i = 0; i < HK_ARRAY_SIZE(filter_fields); i++)
            if (flen && hk_strncaseeq(p, flen, filter_fields[i].name) == 0)
                break;
        if (i == HK_ARRAY_SIZE(filter_fields)) {
            snprintf(err, errlen, "filter: unknown field \"%.*s\"", (int)(flen ? flen : strcspn(p, " ")), p);
            return HK_EINVAL;
        }
        c->f = filter_fields[i].f;
        c->kind = filter_fields[i].kind;
        f->n++;
        p = skip_ws(p + flen);
        const char *after = NULL;
        for (i = 0; i < HK_ARRAY_SIZE(filter_ops) && after == NULL; i++)
            if ((after = match_words(p, filter_ops[i].text)) != NULL)
                c->op = filter_ops[i].op;
        if (after == NULL) {
            snprintf(err, errlen,
                     "filter: expected an operator (equals, not equals, like, not like, one of, not one of) "
                     "after %s",
                     filter_fields[c->f].name);
            return HK_EINVAL;
        }
        p = skip_ws(after);
        bool list = c->op == OP_IN || c->op == OP_NOT_IN;
        for (;;) {
            char *v = read_value(&p, list);
            if (v == NULL) {
                snprintf(err, errlen, "filter: missing or unterminated value for %s", filter_fields[c->f].name);
                return HK_EINVAL;
            }
            c->vals[c->n++] = v;
            if (!canonical(&c->vals[c->n - 1], c->kind)) {
                snprintf(err, errlen, "filter: %s needs %s values", filter_fields[c->f].name,
                         c->kind == K_INT ? "integer" : "true/false");
                return HK_EINVAL;
            }
            if (!list)
                break;
            const char *q = skip_ws(p);
            if (*q != '|' && *q != ',')
                break;
            if (c->n == FILTER_VALUES_MAX) {
                snprintf(err, errlen, "filter: at most %d values in one of", FILTER_VALUES_MAX);
                return HK_EINVAL;
            }
            p = skip_ws(q + 1);
        }
        p = skip_ws(p);
        if (*p == '\0')
            break;
        const char *next = match_words(p, "and");
        if (next == NULL) {
            snprintf(err, errlen, "filter: expected \"and\" before \"%.40s\"", p);
            return HK_EINVAL;
        }
        p = skip_ws(next);
        if (*p == '\0') {
            snprintf(err, errlen, "filter: a condition must follow \"and\"");
            return HK_EINVAL;
        }
    }
    return 0;
}

/* SQL LIKE, case-insensitively: % any run, _ any one character. Iterative, so a pattern of many % costs
 * at most length(s) * length(pat) steps. */
static bool like(const char *s, const char *pat)
{
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*pat == '%') {
            star = pat++;
            resume = s;
        } else if (*pat != '\0' && (*pat == '_' || tolower((unsigned char)*s) == tolower((unsigned char)*pat))) {
            s++;
            pat++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pat == '%')
        pat++;
    return *pat == '\0';
}

static bool value_matches(const char *have, const struct cond *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const char *want = c->vals[i];
        bool m;
        if (c->op == OP_LIKE || c->op == OP_NOT_LIKE) {
            if (strchr(want, '%') == NULL && strchr(want, '_') == NULL)
                m = strcasestr(have, want) != NULL;
            else
                m = like(have, want);
        } else {
            m = strcasecmp(have, want) == 0;
        }
        if (m)
            return true;
    }
    return false;
}

static bool cond_matches(hk_txn *txn, const struct cond *c, const json_t *rec)
{
    char buf[32];
    bool any = false;
    const char *single = NULL;
    switch (c->f) {
    case F_ID:
        snprintf(buf, sizeof(buf), "%lld", (long long)hk_wh_int(rec, "id"));
        single = buf;
        break;
    case F_NAME: single = hk_wh_str(rec, "name"); break;
    case F_DESC: single = hk_wh_str(rec, "description"); break;
    case F_URL: single = hk_wh_str(rec, "url"); break;
    case F_STATUS: single = hk_wh_str(rec, "state"); break;
    case F_ACTIVE: single = strcmp(hk_wh_str(rec, "state"), HK_STATE_ACTIVE) == 0 ? "true" : "false"; break;
    case F_LOCKED: single = hk_wh_bool(rec, "locked") ? "true" : "false"; break;
    case F_EXTENSION: single = hk_wh_str(rec, "extension"); break;
    case F_EVENT_ID:
    case F_EVENT_NAME: {
        /* A webhook matches when any of its events does. */
        size_t i;
        json_t *e;
        json_array_foreach (json_object_get(rec, "events"), i, e) {
            const char *name = json_string_value(e);
            if (name == NULL)
                continue;
            if (c->f == F_EVENT_ID) {
                uint32_t tid;
                if (hk_event_type_id(txn, name, &tid) != 0)
                    continue;
                snprintf(buf, sizeof(buf), "%u", (unsigned)tid);
                name = buf;
            }
            if (value_matches(name, c)) {
                any = true;
                break;
            }
        }
        break;
    }
    }
    if (single != NULL)
        any = value_matches(single, c);
    bool negate = c->op == OP_NE || c->op == OP_NOT_LIKE || c->op == OP_NOT_IN;
    return negate ? !any : any;
}

static bool ecap_match(struct list_state *ls, const json_t *rec)
{
    const struct ecap_filter *f = ls->filter;
    for (size_t i = 0; i < f->n; i++)
        if (!cond_matches(ls->txn, &f->c[i], rec))
            return false;
    return true;
}

void hk_reg_list_ecap(hk_ctx *ctx, const char *filter)
{
    struct ecap_filter *f = hk_calloc(1, sizeof(*f));
    char err[256];
    if (filter != NULL && ecap_filter_parse(filter, f, err, sizeof(err)) != 0) {
        ecap_filter_free(f);
        free(f);
        hk_respond_field_error(ctx, 400, "filter", "%s", err);
        return;
    }
    struct list_state ls = {0};
    ls.view = HK_REG_VIEW_ECAP;
    ls.match = f->n ? ecap_match : NULL;
    ls.filter = f;
    list_respond(ctx, &ls);
    ecap_filter_free(f);
    free(f);
}

void hk_reg_event_types(hk_ctx *ctx)
{
    hk_txn *txn;
    int rc = hk_kv_read(ctx->app->store, &txn);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_cursor *c;
    if ((rc = hk_cursor_open(txn, HK_DB_EVENT_TYPES, &c)) != 0) {
        hk_txn_end(txn);
        hk_respond_store_error(ctx, rc);
        return;
    }
    json_t *out = json_array();
    hk_val k, v;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len != 4)
            continue;
        char *name = hk_strndup(v.data, v.len);
        json_array_append_new(out, json_pack("{s:i, s:s}", "webhookEventTypeId", (json_int_t)hk_rd32(k.data),
                                             "webhookEventTypeName", name));
        free(name);
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    hk_respond_json(ctx, 200, out);
}

/* ---- writes ----------------------------------------------------------------- */

/* Log records of a deleted webhook removed in its delete's commit. */
#define DELETE_LOG_MAX 20000

struct reg_write {
    hk_write w;
    hk_ctx *ctx;
    enum hk_reg_op op;
    enum hk_reg_input input;
    enum hk_reg_view view;
    bool ecap;           /* the request came in the EnergyCAP dialect */
    uint32_t id;         /* the target; the new id after a create */
    json_t *body;        /* the parsed body, never modified by apply */
    uint64_t now;        /* the time stamped as registered/updated */
    bool has_ius;        /* If-Unmodified-Since was given and parsed */
    uint64_t ius_ms;     /* its value */
    uint32_t user;       /* the authenticated user */
    uint64_t overlap_ms; /* how long a replaced secret still signs */
    char *select, *base; /* for the answer */
    /* Results of apply, overwritten on every run. */
    int rc;
    json_t *rec;
    hk_reg_err err;
    const char *state_event; /* "stopped" or "started" when a client changed the state */
};

static void reg_write_free(struct reg_write *r)
{
    json_decref(r->body);
    json_decref(r->rec);
    free(r->select);
    free(r->base);
    free(r);
}

/* The property a dialect calls a record member, for messages. */
static const char *prop_name(const struct reg_write *r, const char *so, const char *ecap)
{
    return r->ecap ? ecap : so;
}

/* Builds the new record from old (NULL for a create) and the input. */
static int build(hk_txn *txn, struct reg_write *r, const json_t *old, json_t *rec)
{
    char msg[256];
    int rc;
    json_t *view;
    unsigned opts = HK_PATCH_NOCASE | HK_PATCH_LAX_PATH;
    switch (r->input) {
    case HK_REG_IN_SO: return hk_reg_from_so(rec, r->body, &r->err);
    case HK_REG_IN_SO_JSON_PATCH:
    case HK_REG_IN_SO_MERGE_PATCH:
        view = hk_reg_view_so(txn, old, NULL);
        if (r->input == HK_REG_IN_SO_MERGE_PATCH) {
            hk_json_merge_patch(&view, r->body, opts);
        } else if ((rc = hk_json_patch_apply(&view, r->body, opts, msg, sizeof(msg))) != 0) {
            json_decref(view);
            return fail(&r->err, rc == HK_ECONFLICT ? 409 : 400, NULL, "JSON Patch: %s", msg);
        }
        rc = hk_reg_from_so(rec, view, &r->err);
        json_decref(view);
        return rc;
    case HK_REG_IN_ECAP: {
        uint32_t tid = 0;
        char *name;
        if ((rc = hk_reg_from_ecap(rec, r->body, &tid, &r->err)) != 0)
            return rc;
        rc = hk_event_type_name(txn, tid, &name);
        if (rc == HK_ENOTFOUND)
            return fail(&r->err, 400, "webhookEventTypeId", "webhookEventTypeId %u is not a known event type",
                        (unsigned)tid);
        if (rc != 0)
            return rc;
        json_object_set_new(rec, "events", json_pack("[s]", name));
        free(name);
        return 0;
    }
    case HK_REG_IN_NONE: break;
    }
    return 0;
}

static int do_apply(hk_txn *txn, struct reg_write *r)
{
    json_t *old = NULL;
    int rc;
    if (r->op != HK_REG_CREATE) {
        rc = hk_webhook_get(txn, r->id, &old);
        if (rc == HK_ENOTFOUND) {
            fail(&r->err, 404, r->ecap ? "webhookId" : NULL, "webhook %u does not exist", (unsigned)r->id);
            return HK_ENOTFOUND;
        }
        if (rc != 0)
            return rc;
        if (hk_wh_bool(old, "locked")) {
            fail(&r->err, 400, NULL, "webhook %u is locked by an operator and cannot be %s through the API",
                 (unsigned)r->id, r->op == HK_REG_DELETE ? "deleted" : "edited");
            json_decref(old);
            return HK_ELOCKED;
        }
        /* HTTP dates have whole seconds: compare at that granularity. */
        if (r->has_ius && (uint64_t)hk_wh_int(old, "updated") / 1000 > r->ius_ms / 1000) {
            fail(&r->err, 412, NULL, "webhook %u was updated after If-Unmodified-Since", (unsigned)r->id);
            json_decref(old);
            return HK_ECONFLICT;
        }
        if (r->op == HK_REG_DELETE) {
            /* EnergyCAP: deleting a webhook deletes its logs too. */
            bool more;
            /* A bounded number of its log records go in this commit, so that
             * a webhook with a huge log cannot stall the group commit; what
             * remains is unreachable (the webhook is gone) and expires with
             * the log retention. */
            if ((rc = hk_webhook_delete(txn, r->id)) == 0)
                rc = hk_log_delete_webhook(txn, r->id, DELETE_LOG_MAX, &more);
            r->rec = old;
            return rc;
        }
    }

    json_t *rec = old ? json_deep_copy(old) : hk_reg_new_record();
    if ((rc = build(txn, r, old, rec)) != 0)
        goto fail_rec;
    const char *state = hk_wh_str(rec, "state");
    const char *old_state = old ? hk_wh_str(old, "state") : "";
    if (strcmp(state, HK_STATE_TOO_MANY_ERRORS) == 0 && strcmp(old_state, HK_STATE_TOO_MANY_ERRORS) != 0) {
        rc = fail(&r->err, 400, prop_name(r, "State", "active"),
                  "%s cannot be set to TooManyErrors: only the server disables a webhook",
                  prop_name(r, "State", "active"));
        goto fail_rec;
    }
    if (old != NULL) {
        /* A replaced secret keeps signing for the overlap so that receivers can roll over. */
        const char *old_secret = hk_wh_str(old, "secret");
        if (*old_secret != '\0' && strcmp(old_secret, hk_wh_str(rec, "secret")) != 0) {
            json_object_set_new(rec, "prevSecret", json_string(old_secret));
            json_object_set_new(rec, "prevSecretUntil", json_integer((json_int_t)(r->now + r->overlap_ms)));
        }
    } else {
        json_object_set_new(rec, "id", json_integer(0));
        json_object_set_new(rec, "registered", json_integer((json_int_t)r->now));
        json_object_set_new(rec, "registeredBy", json_integer(r->user));
    }
    json_object_set_new(rec, "updated", json_integer((json_int_t)r->now));
    json_object_set_new(rec, "updatedBy", json_integer(r->user));
    rc = hk_webhook_put(txn, rec);
    if (rc == HK_EEXIST) {
        const char *p = prop_name(r, "Extension", "extension");
        fail(&r->err, 400, p, "%s \"%.128s\" is already used by another webhook", p, hk_wh_str(rec, "extension"));
        goto fail_rec;
    }
    if (rc != 0)
        goto fail_rec;
    if (strcmp(old_state, HK_STATE_TOO_MANY_ERRORS) == 0 && strcmp(state, HK_STATE_ACTIVE) == 0) {
        /* Re-activated by a client: start counting failures afresh. */
        hk_webhook_stats st;
        hk_webhook_stats_get(txn, r->id, &st);
        st.consecutive = 0;
        if ((rc = hk_webhook_stats_put(txn, r->id, &st)) != 0)
            goto fail_rec;
    }
    r->id = (uint32_t)hk_wh_int(rec, "id");
    r->rec = rec;
    /* A client's state change is announced to webhook{ID}.stopped/.started. */
    if (old != NULL && strcmp(old_state, state) != 0) {
        if (strcmp(state, HK_STATE_ACTIVE) == 0)
            r->state_event = "started";
        else if (strcmp(state, HK_STATE_STOPPED) == 0)
            r->state_event = "stopped";
    }
    json_decref(old);
    return 0;

fail_rec:
    json_decref(rec);
    json_decref(old);
    return rc;
}

static int reg_apply(hk_txn *txn, hk_write *w)
{
    struct reg_write *r = hk_container_of(w, struct reg_write, w);
    /* Apply may run again after the map grows: start from nothing each time. */
    json_decref(r->rec);
    r->rec = NULL;
    r->state_event = NULL;
    memset(&r->err, 0, sizeof(r->err));
    r->rc = do_apply(txn, r);
    return r->rc;
}

static void reg_done(hk_write *w, int status)
{
    struct reg_write *r = hk_container_of(w, struct reg_write, w);
    hk_ctx *ctx = r->ctx;
    hk_api_note_commit(ctx->app, status);
    if (status == 0 && r->state_event != NULL)
        hk_engine_state_event(ctx->app->engine, r->id, r->state_event, NULL);
    if (status != 0) {
        if (status == r->rc && r->err.status != 0)
            hk_reg_respond_err(ctx, &r->err);
        else
            hk_respond_store_error(ctx, status);
    } else if (r->view == HK_REG_VIEW_NONE || r->rec == NULL) {
        hk_respond_empty(ctx, 204);
    } else {
        hk_txn *txn;
        int rc = hk_kv_read(ctx->app->store, &txn);
        if (rc != 0) {
            hk_respond_store_error(ctx, rc);
        } else {
            json_t *out = render(txn, r->rec, r->view, r->select, r->base, NULL);
            hk_txn_end(txn);
            hk_respond_json(ctx, 200, out);
        }
    }
    reg_write_free(r);
}

/* Checks the body on the loop so that most bad requests never reach the write queue. */
static int precheck(enum hk_reg_input input, const json_t *body, hk_reg_err *err)
{
    char msg[256];
    uint32_t tid;
    json_t *scratch = hk_reg_new_record();
    int rc = 0;
    switch (input) {
    case HK_REG_IN_SO: rc = hk_reg_from_so(scratch, body, err); break;
    case HK_REG_IN_ECAP: rc = hk_reg_from_ecap(scratch, body, &tid, err); break;
    case HK_REG_IN_SO_JSON_PATCH:
        if (hk_json_patch_check(body, msg, sizeof(msg)) != 0)
            rc = fail(err, 400, NULL, "JSON Patch: %s", msg);
        break;
    case HK_REG_IN_SO_MERGE_PATCH:
        if (!json_is_object(body))
            rc = fail(err, 400, NULL, "a merge patch of a Webhook must be a JSON object");
        break;
    case HK_REG_IN_NONE: break;
    }
    json_decref(scratch);
    return rc;
}

/* [registry] test_on_save: a SuperOffice save is committed only after a
 * test call to the TargetUrl it would have succeeds, as that vendor does. */
static void on_tested(const hk_sync_result *res, void *arg)
{
    struct reg_write *r = arg;
    if (res->success) {
        hk_kv_submit(r->ctx->app->store, &r->w);
        return;
    }
    char *msg = hk_sync_message(res);
    hk_respond_field_error(r->ctx, 400, "TargetUrl", "the test call to TargetUrl failed, so nothing was saved: %s",
                           msg);
    free(msg);
    reg_write_free(r);
}

/* Works out the target the save would leave and starts the test call;
 * false when there is nothing to test (then the write goes ahead and
 * reports its own errors). */
static bool test_before_save(struct reg_write *r)
{
    hk_ctx *ctx = r->ctx;
    json_t *rec = hk_reg_new_record(), *old = NULL;
    hk_reg_err err = {0};
    bool ok = false;
    if (r->input == HK_REG_IN_SO) {
        ok = hk_reg_from_so(rec, r->body, &err) == 0;
    } else {
        hk_txn *txn;
        if (hk_kv_read(ctx->app->store, &txn) == 0) {
            if (hk_webhook_get(txn, r->id, &old) == 0) {
                json_t *view = hk_reg_view_so(txn, old, NULL);
                char msg[128];
                unsigned opts = HK_PATCH_NOCASE | HK_PATCH_LAX_PATH;
                if (r->input == HK_REG_IN_SO_MERGE_PATCH) {
                    hk_json_merge_patch(&view, r->body, opts);
                    ok = true;
                } else {
                    ok = hk_json_patch_apply(&view, r->body, opts, msg, sizeof(msg)) == 0;
                }
                ok = ok && hk_reg_from_so(rec, view, &err) == 0;
                json_decref(view);
                json_decref(old);
            }
            hk_txn_end(txn);
        }
    }
    if (!ok) {
        json_decref(rec);
        return false;
    }
    json_object_set_new(rec, "id", json_integer(r->id));
    hk_target t = {0};
    hk_target_from_record(&t, rec);
    json_decref(rec);
    int rc = hk_sync_test(ctx->app, &t, ctx->user.id, on_tested, r);
    hk_target_free(&t);
    if (rc == 0)
        return true;
    if (rc == HK_ESHUTDOWN)
        hk_respond_error(ctx, 503, "server is shutting down");
    else
        hk_respond_field_error(ctx, 400, "TargetUrl", "TargetUrl cannot be tested: %s", hk_strerror(rc));
    reg_write_free(r);
    return true;
}

void hk_reg_write(hk_ctx *ctx, enum hk_reg_op op, uint32_t id, enum hk_reg_input input, json_t *body,
                  enum hk_reg_view view)
{
    hk_reg_err err = {0};
    if (precheck(input, body, &err) != 0) {
        json_decref(body);
        hk_reg_respond_err(ctx, &err);
        return;
    }
    struct reg_write *r = hk_calloc(1, sizeof(*r));
    r->ctx = ctx;
    r->op = op;
    r->id = id;
    r->input = input;
    r->view = view;
    r->ecap = ctx->dialect == HK_DIALECT_ECAP;
    r->body = body;
    r->now = hk_now_ms();
    r->user = ctx->user.id;
    r->overlap_ms = ctx->app->cfg->secret_overlap_ms;
    r->select = hk_query_get(ctx, "$select");
    r->base = links_base(ctx);
    const hk_header *h = hk_http_header(ctx->req, "If-Unmodified-Since");
    if (h != NULL && h->value_len < IUS_MAX) {
        /* An unparseable date is ignored, as RFC 7232 asks. */
        char buf[IUS_MAX];
        memcpy(buf, h->value, h->value_len);
        buf[h->value_len] = '\0';
        r->has_ius = hk_parse_date(buf, &r->ius_ms) == 0;
    }
    r->w.apply = reg_apply;
    r->w.done = reg_done;
    r->w.flags = HK_WRITE_ISOLATED;
    if (ctx->app->cfg->test_on_save && !r->ecap && op != HK_REG_DELETE && test_before_save(r))
        return;
    hk_kv_submit(ctx->app->store, &r->w);
}
