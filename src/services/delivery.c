/* delivery.c: a webhook's target, the delivery body and the signed headers (see delivery.h). */
#include "delivery.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "date.h"
#include "json_text.h"
#include "signature.h"

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

char *hk_delivery_body(const hk_buf *head, const hk_event *ev, const hk_target *t, size_t *len)
{
    hk_buf own = HK_BUF_INIT, b = HK_BUF_INIT;
    if (head == NULL) {
        hk_body_head(&own, ev);
        head = &own;
    }
    size_t nlen = strlen(t->name), plen = strlen(t->props);
    hk_buf_reserve(&b, head->len + nlen * 6 + 12 + ev->data_len + plen + 4);
    hk_buf_append(&b, head->data, head->len);
    hk_json_text_quote(&b, t->name, nlen);
    hk_buf_puts(&b, ",\"Data\":");
    hk_buf_append(&b, ev->data, ev->data_len);
    if (plen > 0) {
        hk_buf_putc(&b, ',');
        hk_buf_append(&b, t->props, plen);
    }
    hk_buf_putc(&b, '}');
    hk_buf_free(&own);
    return hk_buf_steal(&b, len);
}

/* ---- the headers ---------------------------------------------------------------------- */

void hk_delivery_headers(const hk_target *t, const char *event_name, const char *event_uuid, uint32_t retry,
                         const char *body, size_t body_len, uint64_t now_ms, const char *extra, char *out,
                         size_t outlen)
{
    int n = snprintf(out, outlen,
                     "Content-Type: application/json; charset=utf-8\r\n"
                     "X-SuperOffice-Event: %s\r\n"
                     "X-SuperOffice-EventId: %s\r\n"
                     "X-SuperOffice-Retry: %u\r\n",
                     event_name, event_uuid, retry);
    if (n < 0 || (size_t)n >= outlen) {
        out[0] = '\0';
        return;
    }
    size_t len = (size_t)n;
    if (t->secret[0] != '\0') {
        char so[HK_SIG_B64_LEN], sig[128], prev[128] = "", msg_id[80], compact[40];
        size_t o = 0;
        for (size_t i = 0; event_uuid[i] && o + 1 < sizeof(compact); i++)
            if (event_uuid[i] != '-')
                compact[o++] = event_uuid[i];
        compact[o] = '\0';
        snprintf(msg_id, sizeof(msg_id), "msg_%s_%u", compact, t->webhook_id);
        hk_signer_superoffice(t->signer, body, body_len, so);
        uint64_t ts = now_ms / 1000;
        if (hk_signer_standard(t->signer, msg_id, ts, body, body_len, sig, sizeof(sig)) != 0)
            sig[0] = '\0';
        /* During the overlap after a rotation, the old secret signs too. */
        if (t->prev_signer != NULL && t->prev_until > now_ms &&
            hk_signer_standard(t->prev_signer, msg_id, ts, body, body_len, prev, sizeof(prev)) != 0)
            prev[0] = '\0';
        n = snprintf(out + len, outlen - len,
                     "X-SuperOffice-Signature: %s\r\nwebhook-id: %s\r\nwebhook-timestamp: %llu\r\n"
                     "webhook-signature: %s%s%s\r\n",
                     so, msg_id, (unsigned long long)ts, sig, prev[0] && sig[0] ? " " : "", prev);
        if (n > 0 && (size_t)n < outlen - len)
            len += (size_t)n;
    }
    size_t hl = strlen(t->headers), el = extra ? strlen(extra) : 0;
    if (len + hl + el < outlen) {
        memcpy(out + len, t->headers, hl);
        len += hl;
        if (el)
            memcpy(out + len, extra, el);
        len += el;
    }
    out[len] = '\0';
}
