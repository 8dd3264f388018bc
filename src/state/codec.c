/* codec.c: the byte writer and reader behind the record codecs. */
#include "codec.h"

#include <string.h>

static uint8_t *reserve(hk__wbuf *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t c = b->cap ? b->cap : 64;
        while (c < b->len + n)
            c *= 2;
        b->p = hk_realloc(b->p, c);
        b->cap = c;
    }
    uint8_t *p = b->p + b->len;
    b->len += n;
    return p;
}

void hk__w_u8(hk__wbuf *b, uint8_t v)
{
    *reserve(b, 1) = v;
}

void hk__w_u16(hk__wbuf *b, uint16_t v)
{
    uint8_t *p = reserve(b, 2);
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

void hk__w_u32(hk__wbuf *b, uint32_t v)
{
    uint8_t *p = reserve(b, 4);
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void hk__w_u64(hk__wbuf *b, uint64_t v)
{
    hk__w_u32(b, (uint32_t)(v >> 32));
    hk__w_u32(b, (uint32_t)v);
}

void hk__w_raw(hk__wbuf *b, const void *p, size_t n)
{
    if (n > 0)
        memcpy(reserve(b, n), p, n);
}

void hk__w_strn(hk__wbuf *b, const char *s, size_t n)
{
    if (s == NULL) {
        hk__w_u32(b, HK__NULL_STR);
        return;
    }
    hk__w_u32(b, (uint32_t)n);
    hk__w_raw(b, s, n);
}

void hk__w_str(hk__wbuf *b, const char *s)
{
    hk__w_strn(b, s, s ? strlen(s) : 0);
}

/* The next n bytes, or NULL (and bad) when fewer remain. */
static const uint8_t *take(hk__rbuf *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

uint8_t hk__r_u8(hk__rbuf *r)
{
    const uint8_t *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t hk__r_u16(hk__rbuf *r)
{
    const uint8_t *p = take(r, 2);
    return p ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t hk__r_u32(hk__rbuf *r)
{
    const uint8_t *p = take(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t hk__r_u64(hk__rbuf *r)
{
    uint64_t hi = hk__r_u32(r);
    return hi << 32 | hk__r_u32(r);
}

void hk__r_raw(hk__rbuf *r, void *out, size_t n)
{
    const uint8_t *p = take(r, n);
    if (p != NULL)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

void hk__r_strview(hk__rbuf *r, const char **s, size_t *n)
{
    uint32_t len = hk__r_u32(r);
    *s = NULL;
    *n = 0;
    if (r->bad || len == HK__NULL_STR)
        return;
    const uint8_t *p = take(r, len);
    if (p != NULL) {
        *s = (const char *)p;
        *n = len;
    }
}

char *hk__r_str(hk__rbuf *r, size_t *n)
{
    const char *s;
    size_t len;
    hk__r_strview(r, &s, &len);
    if (n != NULL)
        *n = len;
    return s ? hk_strndup(s, len) : NULL;
}

void hk__r_strbuf(hk__rbuf *r, char *dst, size_t cap)
{
    const char *s;
    size_t len;
    hk__r_strview(r, &s, &len);
    dst[0] = '\0';
    if (s == NULL || len >= cap) {
        r->bad = true;
        return;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}
