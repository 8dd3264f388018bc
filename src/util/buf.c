/* buf.c: the growable byte buffer (see buf.h for the two ways to grow it). */
#include "buf.h"

#include <stdio.h>
#include <string.h>
#include <uv.h>

/* The first allocation: small enough for a header line, big enough that a
 * few appends do not each reallocate. */
#define BUF_MIN_CAP 64

/*
 * The capacity to allocate for need bytes (terminating NUL included):
 * doubling from the current one, so appends cost amortised O(1), but
 * never more than max (which is at least need).
 */
static size_t grown_cap(size_t cap, size_t need, size_t max)
{
    size_t c = cap ? cap : BUF_MIN_CAP;
    while (c < need) {
        if (c > SIZE_MAX / 2) {
            c = need;
            break;
        }
        c *= 2;
    }
    return c > max ? max : c;
}

void hk_buf_free(hk_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void hk_buf_reset(hk_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void hk_buf_shrink(hk_buf *b, size_t keep)
{
    if (b->cap > keep)
        hk_buf_free(b);
    else
        hk_buf_reset(b);
}

int hk_buf_try_reserve(hk_buf *b, size_t extra, size_t limit)
{
    if (extra > limit || b->len > limit - extra)
        return HK_ETOOBIG;
    size_t need = b->len + extra + 1; /* cannot overflow: len + extra <= limit < SIZE_MAX, or limit is SIZE_MAX */
    if (need == 0)
        return UV_ENOMEM;
    if (need <= b->cap)
        return 0;
    size_t max = limit == HK_BUF_NO_LIMIT ? SIZE_MAX : limit + 1;
    size_t cap = grown_cap(b->cap, need, max);
    char *p = realloc(b->data, cap);
    if (p == NULL)
        return UV_ENOMEM;
    if (b->data == NULL)
        p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return 0;
}

int hk_buf_try_append(hk_buf *b, const void *p, size_t n, size_t limit)
{
    int rc = hk_buf_try_reserve(b, n, limit);
    if (rc != 0)
        return rc;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

void hk_buf_reserve(hk_buf *b, size_t extra)
{
    if (hk_buf_try_reserve(b, extra, HK_BUF_NO_LIMIT) != 0) {
        fputs("hookd: out of memory\n", stderr);
        abort();
    }
}

void hk_buf_append(hk_buf *b, const void *p, size_t n)
{
    hk_buf_reserve(b, n);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void hk_buf_puts(hk_buf *b, const char *s)
{
    hk_buf_append(b, s, strlen(s));
}

void hk_buf_putc(hk_buf *b, char c)
{
    hk_buf_append(b, &c, 1);
}

void hk_buf_vprintf(hk_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    /* Most text fits in what is already there: format once when it does. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    if (n < 0) {
        va_end(again);
        if (b->data != NULL)
            b->data[b->len] = '\0';
        return;
    }
    if ((size_t)n >= room) {
        hk_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, again);
    }
    va_end(again);
    b->len += (size_t)n;
}

void hk_buf_printf(hk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hk_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void hk_buf_consume(hk_buf *b, size_t n)
{
    if (n >= b->len) {
        hk_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *hk_buf_steal(hk_buf *b, size_t *len)
{
    if (b->data == NULL)
        hk_buf_reserve(b, 0);
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

const char *hk_buf_cstr(const hk_buf *b)
{
    return b->data != NULL ? b->data : "";
}
