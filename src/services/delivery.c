/* delivery.c: rendering a webhook's target and signing an attempt. */
#include "delivery.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "signature.h"
#include "webhook.h"

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

static size_t text_append(char **buf, size_t len, size_t *cap, const char *s, size_t n)
{
    if (len + n + 1 > *cap) {
        *cap = (len + n + 1) * 2;
        *buf = hk_realloc(*buf, *cap);
    }
    memcpy(*buf + len, s, n);
    (*buf)[len + n] = '\0';
    return len + n;
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

void hk_target_from_record(hk_target *t, const json_t *rec)
{
    t->webhook_id = (uint32_t)hk_wh_int(rec, "id");
    t->url = hk_strdup(hk_wh_str(rec, "url"));
    t->name = hk_strdup(hk_wh_str(rec, "name"));
    t->secret = hk_strdup(hk_wh_str(rec, "secret"));
    t->prev_secret = hk_strdup(hk_wh_str(rec, "prevSecret"));
    t->prev_until = (uint64_t)hk_wh_int(rec, "prevSecretUntil");
    t->signer = t->secret[0] ? hk_signer_new(t->secret) : NULL;
    t->prev_signer = t->prev_secret[0] ? hk_signer_new(t->prev_secret) : NULL;

    char *h = NULL;
    size_t hl = 0, hc = 0;
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get(rec, "headers"), k, v) {
        const char *val = json_string_value(v);
        if (val == NULL || reserved_header(k) || !header_token_ok(k) || !header_value_ok(val))
            continue;
        hl = text_append(&h, hl, &hc, k, strlen(k));
        hl = text_append(&h, hl, &hc, ": ", 2);
        hl = text_append(&h, hl, &hc, val, strlen(val));
        hl = text_append(&h, hl, &hc, "\r\n", 2);
    }
    t->headers = h ? h : hk_strdup("");

    char *p = NULL;
    size_t pl = 0, pc = 0;
    json_object_foreach (json_object_get(rec, "properties"), k, v) {
        bool clash = false;
        for (size_t i = 0; i < HK_ARRAY_SIZE(body_keys); i++)
            clash |= strcmp(k, body_keys[i]) == 0;
        char *val = clash ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (val == NULL)
            continue;
        if (pl > 0)
            pl = text_append(&p, pl, &pc, ",", 1);
        pl = hk_json_quote(&p, pl, &pc, k, strlen(k));
        pl = text_append(&p, pl, &pc, ":", 1);
        pl = text_append(&p, pl, &pc, val, strlen(val));
        free(val);
    }
    t->props = p ? p : hk_strdup("");
}

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
