/* utf8.c: validating, counting, sanitizing and cutting UTF-8 text (RFC 3629). */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t hk_utf8_seq(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0; /* a continuation byte, an overlong lead (C0, C1) or past U+10FFFF (F5..FF) */
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((u[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (u[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

size_t hk_utf8_valid_prefix(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs are the common case: no decoding needed. */
        if ((unsigned char)s[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = hk_utf8_seq(s + i, len - i);
        if (n == 0)
            break;
        i += n;
    }
    return i;
}

bool hk_utf8_valid(const char *s, size_t len)
{
    return hk_utf8_valid_prefix(s, len) == len;
}

size_t hk_utf8_chars(const char *s, size_t len)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; chars++) {
        size_t n = hk_utf8_seq(s + i, len - i);
        i += n ? n : 1;
    }
    return chars;
}

void hk_utf8_sanitize(hk_buf *out, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t ok = hk_utf8_valid_prefix(s + i, len - i);
        hk_buf_append(out, s + i, ok);
        i += ok;
        if (i < len) {
            hk_buf_append(out, HK_UTF8_REPLACEMENT, 3);
            i++;
        }
    }
    if (out->data == NULL)
        hk_buf_reserve(out, 0); /* an empty result is still a "" string */
}

size_t hk_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    /* Step back over at most three continuation bytes to the start of the
     * character that max falls in; keep it out unless it is complete. */
    size_t start = max;
    while (start > 0 && max - start < 3 && ((unsigned char)s[start] & 0xC0) == 0x80)
        start--;
    size_t n = hk_utf8_seq(s + start, len - start);
    if (n > 1 && start + n > max)
        return start;
    return max;
}

size_t hk_utf8_cut_chars(const char *s, size_t len, size_t max)
{
    size_t i = 0;
    for (size_t chars = 0; i < len && chars < max; chars++) {
        size_t n = hk_utf8_seq(s + i, len - i);
        i += n ? n : 1;
    }
    return i;
}
