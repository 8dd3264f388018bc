/*
 * smtp_message.c: the SMTP client's address check and the message it sends.
 *
 * A plain address (what may go between < and > in MAIL FROM and RCPT TO,
 * and in the From and To headers), and the message after DATA: headers,
 * the subject as RFC 2047 encoded words when it is not plain ASCII, and the
 * body with CRLF line endings, lines broken before RFC 5321's limit, dots
 * doubled, ending in CRLF.CRLF.
 */
#include <mbedtls/base64.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "random.h"
#include "smtp_int.h"

#define MAX_LINE_OCTETS 990 /* body lines are broken before RFC 5321's 998 */
#define SUBJECT_WORD_IN 45  /* input bytes per RFC 2047 encoded word (60 base64 characters) */

bool hk_smtp_address_ok(const char *addr)
{
    size_t n = addr ? strlen(addr) : 0;
    if (n < 3 || n > 254)
        return false;
    const char *at = strchr(addr, '@');
    if (at == NULL || at == addr || at[1] == '\0' || strchr(at + 1, '@') != NULL)
        return false;
    for (const char *p = addr; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch >= 0x7f || strchr("<>\"(),;:\\[]", ch) != NULL)
            return false;
    }
    return true;
}

/* A header value must stay on one line: control characters become blanks. */
static bool subject_ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static void add_subject(hk_buf *b, const char *subject)
{
    hk_buf_puts(b, "Subject: ");
    size_t n = strlen(subject);
    char *clean = hk_malloc(n + 1);
    for (size_t i = 0; i <= n; i++)
        clean[i] = (unsigned char)subject[i] < 0x20 && subject[i] != '\0' ? ' ' : subject[i];
    if (subject_ascii(clean)) {
        hk_buf_append(b, clean, n);
    } else {
        /* RFC 2047 encoded words, each holding whole UTF-8 characters. */
        size_t i = 0;
        bool first = true;
        while (i < n) {
            size_t end = i + SUBJECT_WORD_IN < n ? i + SUBJECT_WORD_IN : n;
            while (end > i + 1 && end < n && ((unsigned char)clean[end] & 0xC0) == 0x80)
                end--;
            unsigned char enc[SUBJECT_WORD_IN * 2];
            size_t olen = 0;
            if (mbedtls_base64_encode(enc, sizeof(enc), &olen, (const unsigned char *)clean + i, end - i) != 0)
                break;
            if (!first)
                hk_buf_puts(b, "\r\n ");
            hk_buf_puts(b, "=?utf-8?B?");
            hk_buf_append(b, (const char *)enc, olen);
            hk_buf_puts(b, "?=");
            first = false;
            i = end;
        }
    }
    hk_buf_puts(b, "\r\n");
    free(clean);
}

/* The body as SMTP wants it: CRLF line endings, lines of at most
 * MAX_LINE_OCTETS (longer ones are broken between characters), a leading
 * dot doubled, and the terminating CRLF.CRLF. */
static void add_body(hk_buf *b, const char *body)
{
    size_t col = 0;
    for (const char *p = body; *p; p++) {
        if (*p == '\r' || *p == '\n') {
            if (*p == '\r' && p[1] == '\n')
                p++;
            hk_buf_append(b, "\r\n", 2);
            col = 0;
            continue;
        }
        if (col >= MAX_LINE_OCTETS && ((unsigned char)*p & 0xC0) != 0x80) {
            hk_buf_append(b, "\r\n", 2);
            col = 0;
        }
        if (col == 0 && *p == '.')
            hk_buf_append(b, ".", 1);
        hk_buf_append(b, p, 1);
        col++;
    }
    if (col > 0)
        hk_buf_append(b, "\r\n", 2);
    hk_buf_append(b, ".\r\n", 3);
}

char *hk__smtp_message(const hk_smtp_mail *m, char **to, size_t nto, size_t *len)
{
    hk_buf b = HK_BUF_INIT;
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    uint8_t rnd[12];
    hk_random(rnd, sizeof(rnd));
    const char *domain = strchr(m->from, '@') + 1;

    hk_buf_printf(&b, "From: <%s>\r\n", m->from);
    hk_buf_puts(&b, "To: ");
    for (size_t i = 0; i < nto; i++)
        hk_buf_printf(&b, "%s<%s>", i ? ",\r\n " : "", to[i]);
    hk_buf_puts(&b, "\r\n");
    add_subject(&b, m->subject ? m->subject : "");
    hk_buf_printf(&b, "Date: %s\r\n", date);
    hk_buf_puts(&b, "Message-ID: <");
    for (size_t i = 0; i < sizeof(rnd); i++)
        hk_buf_printf(&b, "%02x", rnd[i]);
    hk_buf_printf(&b, ".%llu@%s>\r\n", (unsigned long long)now, domain);
    hk_buf_puts(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n");
    add_body(&b, m->body ? m->body : "");
    return hk_buf_steal(&b, len);
}
