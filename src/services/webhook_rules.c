/* webhook_rules.c: the limits and rules every stored webhook satisfies (see webhook_rules.h). */
#include "webhook_rules.h"

#include <mbedtls/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "url.h"
#include "utf8.h"

int hk_wh_fail(hk_wh_err *err, int status, const char *field, const char *fmt, ...)
{
    va_list ap;
    err->status = status;
    snprintf(err->field, sizeof(err->field), "%s", field ? field : "");
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return HK_EINVAL;
}

static bool has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* ---- the target URL ----------------------------------------------------------
 *
 * Parsed by hk_url_parse, as the delivery parses it: what is saved here can
 * be sent.
 */

int hk_webhook_check_url(const char *url, const char *prop, const hk_ssrf *guard, hk_wh_err *err)
{
    if (*url == '\0')
        return hk_wh_fail(err, 400, prop, "%s is required", prop);
    hk_url u;
    const char *why = "";
    if (strlen(url) > HK_WEBHOOK_URL_MAX)
        return hk_wh_fail(err, 400, prop, "%s must be an absolute http:// or https:// URL of at most %d bytes", prop,
                          HK_WEBHOOK_URL_MAX);
    if (hk_url_parse(url, &u, &why) != 0)
        return hk_wh_fail(err, 400, prop, "%s must be an absolute http:// or https:// URL with a host: %s", prop, why);
    /* A literal address is judged now; a name only when a delivery resolves it. */
    hk_ssrf_refusal no;
    if (guard != NULL && hk_ssrf_check_host(guard, u.host, &no) != 0)
        return hk_wh_fail(err, 400, prop,
                          "%s %.200s cannot be delivered to: %s is %s, which the SSRF guard refuses (a range "
                          "[delivery] allow_targets can admit)",
                          prop, url, no.addr, no.rule);
    return 0;
}

/* ---- the other fields ------------------------------------------------------------ */

bool hk_email_ok(const char *s)
{
    size_t len = strlen(s);
    const char *at = strrchr(s, '@');
    if (len < 5 || len > HK_EMAIL_MAX || at == NULL || at == s || at - s > 64)
        return false;
    for (const char *c = s; c < at; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("<>()[]\\,;:\"@", *c))
            return false;
    bool dot = false;
    size_t label = 0;
    for (const char *c = at + 1;; c++) {
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

/* An event name, "*" (every event) or "prefix.*" (every event whose name starts with "prefix."). */
static bool event_name_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > HK_EVENT_NAME_MAX)
        return false;
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return false;
    const char *star = strchr(s, '*');
    if (star == NULL || len == 1)
        return true;
    return star == s + len - 1 && len > 2 && s[len - 2] == '.';
}

static bool header_name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > HK_WEBHOOK_HEADER_NAME_MAX)
        return false;
    for (const char *c = s; *c; c++) {
        bool alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (!alnum && !strchr("!#$%&'*+-.^_`|~", *c))
            return false;
    }
    return true;
}

bool hk_header_reserved(const char *s)
{
    /* Everything the delivery writes or leaves out itself (delivery.c), so that no saved header is
     * dropped at send. */
    static const char *const reserved[] = {
        "host",    "connection", "keep-alive", "upgrade",           "te",
        "trailer", "expect",     "user-agent", "transfer-encoding", "proxy-connection",
    };
    static const char *const prefixes[] = {"content-", "x-superoffice-", "webhook-"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(reserved); i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return true;
    for (size_t i = 0; i < HK_ARRAY_SIZE(prefixes); i++)
        if (strncasecmp(s, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* A whsec_ secret is a Standard Webhooks key: standard base64 (RFC 4648 section 4, padded) of at least one
 * byte. Anything else would leave every delivery without a webhook-signature. */
static bool whsec_ok(const char *s)
{
    const char *b = s + 6;
    size_t len = strlen(b), pad = 0;
    if (len == 0 || len % 4 != 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (c == '=') {
            pad++;
            continue;
        }
        if (pad > 0 ||
            !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/'))
            return false;
    }
    unsigned char key[HK_WEBHOOK_SECRET_MAX];
    size_t klen = 0;
    return pad <= 2 && mbedtls_base64_decode(key, sizeof(key), &klen, (const unsigned char *)b, len) == 0 && klen > 0;
}

static int check_secret(const char *s, const char *prop, hk_wh_err *err)
{
    if (strlen(s) > HK_WEBHOOK_SECRET_MAX)
        return hk_wh_fail(err, 400, prop, "%s must be at most %d bytes", prop, HK_WEBHOOK_SECRET_MAX);
    if (has_ctl(s))
        return hk_wh_fail(err, 400, prop, "%s must not contain control characters", prop);
    if (strncmp(s, "whsec_", 6) == 0 && !whsec_ok(s))
        return hk_wh_fail(err, 400, prop,
                          "%s: a whsec_ secret must continue with a key in standard base64 (A-Z a-z 0-9 + /, "
                          "padded with =)",
                          prop);
    return 0;
}

static int check_headers(const hk_webhook *w, const char *prop, hk_wh_err *err)
{
    if (w->nheaders > HK_WEBHOOK_HEADERS_MAX)
        return hk_wh_fail(err, 400, prop, "%s may hold at most %d headers", prop, HK_WEBHOOK_HEADERS_MAX);
    size_t total = 0;
    for (size_t i = 0; i < w->nheaders; i++) {
        const char *k = w->headers[i].name, *v = w->headers[i].value;
        if (!header_name_ok(k))
            return hk_wh_fail(err, 400, prop, "%s: \"%.100s\" is not a valid header name", prop, k);
        if (hk_header_reserved(k))
            return hk_wh_fail(err, 400, prop, "%s: %s is set by the delivery and cannot be overridden", prop, k);
        if (strlen(v) > HK_WEBHOOK_HEADER_VALUE_MAX || has_ctl(v))
            return hk_wh_fail(err, 400, prop, "%s.%s must be at most %d bytes without control characters", prop, k,
                              HK_WEBHOOK_HEADER_VALUE_MAX);
        total += strlen(k) + 2 + strlen(v) + 2;
    }
    if (total > HK_WEBHOOK_HEADERS_BYTES_MAX)
        return hk_wh_fail(err, 400, prop,
                          "%s take %zu bytes as sent (\"Name: value\" lines), more than the %d a delivery's "
                          "header block has room for",
                          prop, total, HK_WEBHOOK_HEADERS_BYTES_MAX);
    return 0;
}

static int check_extension(const char *s, const char *prop, hk_wh_err *err)
{
    if (s == NULL)
        return 0;
    if (*s == '\0')
        return hk_wh_fail(err, 400, prop, "%s cannot be empty (none is null)", prop);
    if (strlen(s) > HK_WEBHOOK_EXTENSION_MAX)
        return hk_wh_fail(err, 400, prop, "%s must be at most %d bytes", prop, HK_WEBHOOK_EXTENSION_MAX);
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return hk_wh_fail(err, 400, prop, "%s must not contain spaces or control characters", prop);
    return 0;
}

/* ---- the whole webhook ------------------------------------------------------------- */

static bool strv_eq(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i], b[i]) != 0)
            return false;
    return true;
}

static bool pairs_eq(const hk_pair *a, size_t na, const hk_pair *b, size_t nb)
{
    if (na != nb)
        return false;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return false;
    return true;
}

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int hk_webhook_check(const hk_webhook *w, const hk_webhook *old, const hk_wh_names *n, const hk_ssrf *guard,
                     hk_wh_err *err)
{
    int rc;
#define CHANGED(field) (old == NULL || !str_eq(w->field, old->field))
    if (CHANGED(name) && hk_utf8_chars(w->name, strlen(w->name)) > HK_WEBHOOK_NAME_MAX)
        return hk_wh_fail(err, 400, n->name, "%s must be at most %d characters", n->name, HK_WEBHOOK_NAME_MAX);
    if (CHANGED(description) && hk_utf8_chars(w->description, strlen(w->description)) > HK_WEBHOOK_DESC_MAX)
        return hk_wh_fail(err, 400, n->description, "%s must be at most %d characters", n->description,
                          HK_WEBHOOK_DESC_MAX);
    if (old == NULL || !strv_eq(w->events, w->nevents, old->events, old->nevents)) {
        for (size_t i = 0; i < w->nevents; i++)
            if (!event_name_ok(w->events[i]))
                return hk_wh_fail(err, 400, n->events,
                                  "%s[%zu] must be an event name (1..%d characters, no spaces), \"*\" or \"prefix.*\"",
                                  n->events, i, HK_EVENT_NAME_MAX);
        if (w->nevents > HK_WEBHOOK_EVENTS_MAX)
            return hk_wh_fail(err, 400, n->events, "%s may hold at most %d events", n->events, HK_WEBHOOK_EVENTS_MAX);
    }
    if (CHANGED(url) && (rc = hk_webhook_check_url(w->url, n->url, guard, err)) != 0)
        return rc;
    if (CHANGED(secret) && (rc = check_secret(w->secret, n->secret, err)) != 0)
        return rc;
    if ((old == NULL || !pairs_eq(w->headers, w->nheaders, old->headers, old->nheaders)) &&
        (rc = check_headers(w, n->headers, err)) != 0)
        return rc;
    if (old == NULL || !strv_eq(w->notify, w->nnotify, old->notify, old->nnotify)) {
        for (size_t i = 0; i < w->nnotify; i++)
            if (!hk_email_ok(w->notify[i]))
                return hk_wh_fail(err, 400, n->notify, "%s: \"%.100s\" is not a valid email address", n->notify,
                                  w->notify[i]);
        if (w->nnotify > HK_WEBHOOK_NOTIFY_MAX)
            return hk_wh_fail(err, 400, n->notify, "%s may hold at most %d addresses", n->notify,
                              HK_WEBHOOK_NOTIFY_MAX);
    }
    if (CHANGED(extension) && (rc = check_extension(w->extension, n->extension, err)) != 0)
        return rc;
#undef CHANGED
    if ((old == NULL || !pairs_eq(w->properties, w->nproperties, old->properties, old->nproperties)) &&
        w->nproperties > HK_WEBHOOK_PROPERTIES_MAX)
        return hk_wh_fail(err, 400, n->properties, "%s may hold at most %d members; \"%.100s\" is past the limit",
                          n->properties, HK_WEBHOOK_PROPERTIES_MAX, w->properties[HK_WEBHOOK_PROPERTIES_MAX].name);
    if ((unsigned)w->state > HK_WH_TOO_MANY_ERRORS)
        return hk_wh_fail(err, 400, n->state, "%s is not a webhook state", n->state);
    if (w->state == HK_WH_TOO_MANY_ERRORS && (old == NULL || old->state != HK_WH_TOO_MANY_ERRORS))
        return hk_wh_fail(err, 400, n->state, "%s cannot be set to TooManyErrors: only the server disables a webhook",
                          n->state);
    return 0;
}
