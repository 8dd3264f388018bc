/* delivery.c: a webhook's target, the delivery body and the signed headers (see delivery.h). */
#include "delivery.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "date.h"
#include "http_client.h"
#include "json_text.h"
#include "signature.h"
#include "utf8.h"

static bool reserved_header(const char *name)
{
    static const char *const names[] = {"content-type",      "content-length", "host",   "connection",
                                        "transfer-encoding", "user-agent",     "te",     "upgrade",
                                        "keep-alive",        "trailer",        "expect", "proxy-connection"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(names); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return strncasecmp(name, "x-superoffice-", 14) == 0 || strncasecmp(name, "webhook-", 8) == 0;
}

static bool header_token_ok(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
            return false;
    return true;
}

static bool header_value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return false;
    return true;
}

static const char *const body_keys[] = {"EventId",     "Timestamp", "Changes",           "Event",
                                        "PrimaryKey",  "Entity",    "ContextIdentifier", "ChangedByAssociateId",
                                        "WebhookName", "Data"};

void hk_target_free(hk_target *t)
{
    free(t->url);
    free(t->name);
    free(t->secret);
    free(t->prev_secret);
    free(t->headers);
    free(t->props);
    hk_signer_free(t->signer);
    hk_signer_free(t->prev_signer);
    memset(t, 0, sizeof(*t));
}

static bool body_key(const char *k)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(body_keys); i++)
        if (strcmp(k, body_keys[i]) == 0)
            return true;
    return false;
}

/* "Name: value\r\n" for a custom header that may be sent (reserved names and unsafe values are left out). */
static void header_line(hk_buf *b, const char *name, const char *value)
{
    if (value == NULL || reserved_header(name) || !header_token_ok(name) || !header_value_ok(value))
        return;
    hk_buf_printf(b, "%s: %s\r\n", name, value);
}

/* `"key":value` for a Property (value: JSON text), unless its key is one of the standard body's. */
static void prop_member(hk_buf *b, const char *key, const char *value)
{
    if (value == NULL || body_key(key))
        return;
    if (b->len > 0)
        hk_buf_putc(b, ',');
    hk_json_text_quote(b, key, strlen(key));
    hk_buf_putc(b, ':');
    hk_buf_puts(b, value);
}

static char *take(hk_buf *b)
{
    size_t len;
    if (b->data == NULL)
        return hk_strdup("");
    return hk_buf_steal(b, &len);
}

static void target_signers(hk_target *t)
{
    t->signer = t->secret[0] ? hk_signer_new(t->secret) : NULL;
    t->prev_signer = t->prev_secret[0] ? hk_signer_new(t->prev_secret) : NULL;
}

void hk_target_from_webhook(hk_target *t, const hk_webhook *w)
{
    t->webhook_id = w->id;
    t->url = hk_strdup(w->url ? w->url : "");
    t->name = hk_strdup(w->name ? w->name : "");
    t->secret = hk_strdup(w->secret ? w->secret : "");
    t->prev_secret = hk_strdup(w->prev_secret ? w->prev_secret : "");
    t->prev_until = w->prev_secret_until;
    target_signers(t);
    hk_buf h = HK_BUF_INIT, p = HK_BUF_INIT;
    for (size_t i = 0; i < w->nheaders; i++)
        header_line(&h, w->headers[i].name, w->headers[i].value);
    for (size_t i = 0; i < w->nproperties; i++)
        prop_member(&p, w->properties[i].name, w->properties[i].value);
    t->headers = take(&h);
    t->props = take(&p);
}

/* ---- the body ---------------------------------------------------------------------- */

void hk_body_head(hk_buf *b, const hk_event *ev)
{
    char uuid[HK_EVENT_UUID_LEN], ts[48];
    hk_buf_reset(b);
    hk_event_uuid_str(ev->uuid, uuid);
    hk_fmt_date_so(ev->ts_ms, ts, sizeof(ts));
    size_t nlen = strlen(ev->name);
    hk_buf_reserve(b, 256 + ev->changes_len + nlen * 2);
    hk_buf_printf(b, "{\"EventId\":\"%s\",\"Timestamp\":\"%s\",\"Changes\":", uuid, ts);
    hk_buf_append(b, ev->changes, ev->changes_len);
    hk_buf_puts(b, ",\"Event\":");
    hk_json_text_quote(b, ev->name, nlen);
    hk_buf_printf(b, ",\"PrimaryKey\":%lld,\"Entity\":", (long long)ev->primary_key);
    const char *dot = memchr(ev->name, '.', nlen);
    hk_json_text_quote(b, ev->name, dot ? (size_t)(dot - ev->name) : nlen);
    hk_buf_printf(b, ",\"ContextIdentifier\":\"Default\",\"ChangedByAssociateId\":%u,\"WebhookName\":", ev->user_id);
}

/* The WebhookName onwards: name, Data, Properties, the closing brace. */
static void body_tail(hk_buf *b, const hk_event *ev, const char *name, const char *props)
{
    size_t nlen = strlen(name), plen = strlen(props);
    hk_buf_reserve(b, b->len + nlen * 6 + 12 + ev->data_len + plen + 4);
    hk_json_text_quote(b, name, nlen);
    hk_buf_puts(b, ",\"Data\":");
    hk_buf_append(b, ev->data, ev->data_len);
    if (plen > 0) {
        hk_buf_putc(b, ',');
        hk_buf_append(b, props, plen);
    }
    hk_buf_putc(b, '}');
}

void hk_delivery_body_parts(hk_buf *out, const hk_event *ev, const char *name, const char *props)
{
    hk_buf head = HK_BUF_INIT;
    hk_body_head(&head, ev);
    hk_buf_append(out, head.data, head.len);
    hk_buf_free(&head);
    body_tail(out, ev, name, props);
}

char *hk_delivery_body(const hk_buf *head, const hk_event *ev, const hk_target *t, size_t *len)
{
    hk_buf own = HK_BUF_INIT, b = HK_BUF_INIT;
    if (head == NULL) {
        hk_body_head(&own, ev);
        head = &own;
    }
    hk_buf_reserve(&b, head->len + strlen(t->name) * 6 + 12 + ev->data_len + strlen(t->props) + 4);
    hk_buf_append(&b, head->data, head->len);
    body_tail(&b, ev, t->name, t->props);
    hk_buf_free(&own);
    return hk_buf_steal(&b, len);
}

hk_body *hk_body_new(const hk_buf *head, const hk_event *ev, const hk_target *t)
{
    /* Rendered straight into the body's own allocation, after its fields. */
    hk_buf own = HK_BUF_INIT, b = HK_BUF_INIT;
    if (head == NULL) {
        hk_body_head(&own, ev);
        head = &own;
    }
    size_t at = offsetof(hk_body, data);
    hk_buf_reserve(&b, at + head->len + strlen(t->name) * 6 + 12 + ev->data_len + strlen(t->props) + 4);
    memset(b.data, 0, at);
    b.len = at;
    hk_buf_append(&b, head->data, head->len);
    body_tail(&b, ev, t->name, t->props);
    hk_buf_free(&own);
    size_t total;
    hk_body *body = (hk_body *)(void *)hk_buf_steal(&b, &total);
    body->refs = 1;
    body->name = hk_strdup(t->name);
    body->props = hk_strdup(t->props);
    body->nsigs = 0;
    body->len = total - at;
    return body;
}

bool hk_body_fits(const hk_body *b, const hk_target *t)
{
    return strcmp(b->name, t->name) == 0 && strcmp(b->props, t->props) == 0;
}

void hk_body_ref(void *arg, int delta)
{
    hk_body *b = arg;
    if (delta > 0) {
        b->refs++;
        return;
    }
    if (--b->refs > 0)
        return;
    free(b->name);
    free(b->props);
    free(b);
}

/* ---- the headers ---------------------------------------------------------------------- */

/* X-SuperOffice-Signature of b under signer s: from b's cache, or computed and kept there. */
static const char *so_signature(hk_body *b, hk_signer *s)
{
    const uint8_t *key = hk_signer_key(s);
    for (unsigned i = 0; i < b->nsigs; i++)
        if (memcmp(b->sigs[i].key, key, 32) == 0)
            return b->sigs[i].so;
    /* A full cache replaces its oldest entry. */
    unsigned i;
    if (b->nsigs < HK_BODY_SIGS) {
        i = b->nsigs++;
    } else {
        memmove(&b->sigs[0], &b->sigs[1], sizeof(b->sigs[0]) * (HK_BODY_SIGS - 1));
        i = HK_BODY_SIGS - 1;
    }
    memcpy(b->sigs[i].key, key, 32);
    hk_signer_superoffice(s, b->data, b->len, b->sigs[i].so);
    return b->sigs[i].so;
}

/* webhook-id: "msg_<EventId without dashes>_<webhook id>" (out: at least 80 bytes). */
static void msg_id_of(const char *event_uuid, uint32_t webhook_id, char *out, size_t outlen)
{
    size_t o = 0;
    memcpy(out, "msg_", 4);
    o = 4;
    for (size_t i = 0; event_uuid[i] && o + 1 < 44; i++)
        if (event_uuid[i] != '-')
            out[o++] = event_uuid[i];
    out[o++] = '_';
    char t[12];
    size_t k = sizeof(t);
    uint32_t v = webhook_id;
    do
        t[--k] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (o + sizeof(t) - k < outlen) {
        memcpy(out + o, t + k, sizeof(t) - k);
        o += sizeof(t) - k;
    }
    out[o] = '\0';
}

/* The signatures of body (body_len bytes) for t; so given (from a cache) or NULL (computed here). */
static void sign(const hk_target *t, const char *body, size_t body_len, const char *so, const char *event_uuid,
                 uint64_t now_ms, hk_delivery_sigs *out)
{
    out->so[0] = out->standard[0] = '\0';
    if (t->secret[0] == '\0')
        return;
    if (so != NULL)
        snprintf(out->so, sizeof(out->so), "%s", so);
    else
        hk_signer_superoffice(t->signer, body, body_len, out->so);
    char msg_id[80], sig[HK_SIG_B64_LEN + 3] = "", prev[HK_SIG_B64_LEN + 3] = "";
    msg_id_of(event_uuid, t->webhook_id, msg_id, sizeof(msg_id));
    uint64_t ts = now_ms / 1000;
    if (hk_signer_standard(t->signer, msg_id, ts, body, body_len, sig, sizeof(sig)) != 0)
        sig[0] = '\0';
    /* During the overlap after a rotation, the old secret signs too. */
    if (t->prev_signer != NULL && t->prev_until > now_ms &&
        hk_signer_standard(t->prev_signer, msg_id, ts, body, body_len, prev, sizeof(prev)) != 0)
        prev[0] = '\0';
    snprintf(out->standard, sizeof(out->standard), "%s%s%s", sig, prev[0] && sig[0] ? " " : "", prev);
}

void hk_delivery_sign(const hk_target *t, hk_body *b, const char *event_uuid, uint64_t now_ms, hk_delivery_sigs *out)
{
    const char *so = t->secret[0] != '\0' ? so_signature(b, t->signer) : NULL;
    sign(t, b->data, b->len, so, event_uuid, now_ms, out);
}

/* A string literal appended without measuring it. */
#define PUT_LIT(b, lit) hk_buf_append((b), (lit), sizeof(lit) - 1)

static void put_u64(hk_buf *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof(t);
    do
        t[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    hk_buf_append(b, t + i, sizeof(t) - i);
}

/* Formatted by appending, not by printf: this runs for every attempt. */
void hk_delivery_headers_parts(hk_buf *out, const char *event_name, const char *event_uuid, uint32_t webhook_id,
                               uint32_t retry, uint64_t now_ms, const hk_delivery_sigs *sigs, const char *custom,
                               const char *extra)
{
    PUT_LIT(out, "Content-Type: application/json; charset=utf-8\r\nX-SuperOffice-Event: ");
    hk_buf_puts(out, event_name);
    PUT_LIT(out, "\r\nX-SuperOffice-EventId: ");
    hk_buf_puts(out, event_uuid);
    PUT_LIT(out, "\r\nX-SuperOffice-Retry: ");
    put_u64(out, retry);
    PUT_LIT(out, "\r\n");
    if (sigs->so[0] != '\0') {
        char msg_id[80];
        msg_id_of(event_uuid, webhook_id, msg_id, sizeof(msg_id));
        PUT_LIT(out, "X-SuperOffice-Signature: ");
        hk_buf_puts(out, sigs->so);
        PUT_LIT(out, "\r\nwebhook-id: ");
        hk_buf_puts(out, msg_id);
        PUT_LIT(out, "\r\nwebhook-timestamp: ");
        put_u64(out, now_ms / 1000);
        PUT_LIT(out, "\r\nwebhook-signature: ");
        hk_buf_puts(out, sigs->standard);
        PUT_LIT(out, "\r\n");
    }
    hk_buf_puts(out, custom);
    if (extra != NULL)
        hk_buf_puts(out, extra);
}

void hk_delivery_headers(const hk_target *t, const char *event_name, const char *event_uuid, uint32_t retry,
                         const char *body, size_t body_len, uint64_t now_ms, const char *extra, char *out,
                         size_t outlen)
{
    hk_delivery_sigs sigs;
    sign(t, body, body_len, NULL, event_uuid, now_ms, &sigs);
    hk_buf b = HK_BUF_INIT;
    hk_delivery_headers_parts(&b, event_name, event_uuid, t->webhook_id, retry, now_ms, &sigs, t->headers, NULL);
    /* What does not fit is left out, as before: custom and extra lines whole, the fixed part cut. */
    size_t el = extra ? strlen(extra) : 0;
    if (b.len + el >= outlen) {
        size_t fixed = b.len - strlen(t->headers);
        b.len = fixed < outlen ? fixed : outlen - 1;
        el = 0;
    }
    memcpy(out, b.data, b.len);
    if (el > 0)
        memcpy(out + b.len, extra, el);
    out[b.len + el] = '\0';
    hk_buf_free(&b);
}

/* ---- a stored attempt's request ---------------------------------------------------------- */

int hk_attempt_request(hk_store *s, const hk_attempt *a, char **out, size_t *len)
{
    if (!a->lean) {
        *out = hk_strndup(a->request ? a->request : "", a->request ? a->request_len : 0);
        *len = a->request ? a->request_len : 0;
        return 0;
    }
    hk_event ev;
    int rc = hk_store_event_get(s, a->event_id, &ev);
    if (rc != 0)
        return rc;
    hk_buf body = HK_BUF_INIT, headers = HK_BUF_INIT, req = HK_BUF_INIT;
    hk_delivery_body_parts(&body, &ev, a->webhook_name ? a->webhook_name : "", a->props ? a->props : "");
    hk_delivery_sigs sigs;
    snprintf(sigs.so, sizeof(sigs.so), "%s", a->sig_so ? a->sig_so : "");
    snprintf(sigs.standard, sizeof(sigs.standard), "%s", a->sig_standard ? a->sig_standard : "");
    hk_delivery_headers_parts(&headers, a->event_name ? a->event_name : "", a->event_uuid ? a->event_uuid : "",
                              a->webhook_id, a->attempt > 0 ? a->attempt - 1 : 0, a->started_ms, &sigs,
                              a->custom_headers ? a->custom_headers : "", NULL);
    rc = hk_client_head(&req, "POST", a->url ? a->url : "", a->user_agent ? a->user_agent : "", body.len,
                        hk_buf_cstr(&headers));
    if (rc == 0) {
        hk_buf_append(&req, body.data, body.len);
        /* As the store keeps a text: cut, and invalid UTF-8 as U+FFFD. */
        size_t n = req.len < HK_ATTEMPT_MAX_TEXT ? req.len : HK_ATTEMPT_MAX_TEXT;
        if (hk_utf8_valid(req.data, n)) {
            *out = hk_strndup(req.data, n);
            *len = n;
        } else {
            hk_buf clean = HK_BUF_INIT;
            hk_utf8_sanitize(&clean, req.data, n);
            *out = hk_strndup(hk_buf_cstr(&clean), clean.len);
            *len = clean.len;
            hk_buf_free(&clean);
        }
    }
    hk_buf_free(&body);
    hk_buf_free(&headers);
    hk_buf_free(&req);
    hk_event_free(&ev);
    return rc;
}
