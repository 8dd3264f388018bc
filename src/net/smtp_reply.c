/*
 * smtp_reply.c: the SMTP client's reading of the relay's replies.
 *
 * A reply is one or more lines "DDD-text" ending in one "DDD text" (or a
 * bare "DDD"), each ending in LF (CRLF in practice); its code is the last
 * line's. All its lines are kept, at most HK_SMTP_MAX_REPLY bytes, for
 * the EHLO extension list and for error texts. Bytes are taken one at a
 * time so that a reply ends exactly where its last line does: what follows
 * belongs to the next reply (or, after STARTTLS, must not be there).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "smtp_int.h"

int hk__smtp_reply_feed(struct hk__smtp_reply *r, const char *data, size_t len, size_t *used, int *code)
{
    *code = -1;
    for (size_t i = 0; i < len; i++) {
        if (r->len == HK_SMTP_MAX_REPLY) {
            *used = i;
            return HK_ETOOBIG;
        }
        r->buf[r->len++] = data[i];
        if (data[i] != '\n')
            continue;
        const char *line = r->buf + r->line_start;
        size_t ll = r->len - r->line_start;
        if (ll < 4 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
            !isdigit((unsigned char)line[2]) || (line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
            *used = i + 1;
            return HK_EPROTO;
        }
        if (line[3] == '-') {
            r->line_start = r->len;
            continue;
        }
        *code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        *used = i + 1;
        return 0;
    }
    *used = len;
    return 0;
}

void hk__smtp_reply_reset(struct hk__smtp_reply *r)
{
    r->len = r->line_start = 0;
}

void hk__smtp_reply_text(const struct hk__smtp_reply *r, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < r->len && o + 1 < outlen; i++) {
        char ch = r->buf[i];
        if (ch == '\r')
            continue;
        if (ch == '\n') {
            if (i + 1 < r->len && o + 4 < outlen) {
                memcpy(out + o, " / ", 3);
                o += 3;
            }
            continue;
        }
        out[o++] = (unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f ? '?' : ch;
    }
    out[o] = '\0';
}

bool hk__smtp_reply_has(const struct hk__smtp_reply *r, const char *kw)
{
    size_t kl = strlen(kw);
    const char *p = r->buf, *end = r->buf + r->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le - p >= 4 + (long)kl && strncasecmp(p + 4, kw, kl) == 0 &&
            (p + 4 + kl == le || isspace((unsigned char)p[4 + kl])))
            return true;
        p = nl ? nl + 1 : end;
    }
    return false;
}
