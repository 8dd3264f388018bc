/*
 * buf.h: hk_buf, THE growable byte buffer of hookd.
 *
 * Use it for every byte string that grows: request and response heads and
 * bodies, rendered JSON, mail text, TLS ciphertext waiting to be written.
 * Two ways to grow it, chosen by who decides the size:
 *
 *   - sizes a PEER controls (bytes read from a socket, a client's body, a
 *     receiver's headers): hk_buf_try_reserve / hk_buf_try_append with a
 *     limit. Past the limit they return HK_ETOOBIG, and UV_ENOMEM when
 *     memory runs out; the buffer is left as it was, so the caller answers
 *     that peer with an error and the process goes on;
 *   - sizes hookd decides itself (small, bounded by construction):
 *     hk_buf_append, hk_buf_puts, hk_buf_printf, which abort on OOM like
 *     hk_malloc.
 *
 * Ownership: an hk_buf owns data. A zeroed hk_buf (HK_BUF_INIT, or
 * memset/calloc) is a valid empty buffer; hk_buf_free is safe on it and
 * leaves it empty and reusable. data is NULL until the first growth and
 * then always NUL-terminated (cap > len), so b->data can be used as a C
 * string once something was appended; hk_buf_cstr gives "" for an empty
 * one. Pointers into data are invalidated by any call that grows it.
 *
 * Example:
 *
 *     hk_buf b = HK_BUF_INIT;
 *     if (hk_buf_try_append(&b, at, len, max_body) != 0)   // a peer's bytes
 *         return reject(413);
 *     hk_buf_printf(&b, "%d items", n);                    // our own text
 *     char *s = hk_buf_steal(&b, &len);                     // caller frees s
 */
#ifndef HK_BUF_H
#define HK_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common.h"

/** A growable byte buffer; all fields may be read, only the functions below change them. */
typedef struct hk_buf {
    char *data; /**< the bytes, owned by the buffer; NULL until the first growth, then NUL-terminated */
    size_t len; /**< bytes in use (the terminating NUL not counted) */
    size_t cap; /**< bytes allocated (at least len + 1 once data is not NULL) */
} hk_buf;

/** An empty buffer, for initialisation: `hk_buf b = HK_BUF_INIT;`. */
#define HK_BUF_INIT                                                                                                    \
    {                                                                                                                  \
        NULL, 0, 0                                                                                                     \
    }

/** No limit for hk_buf_try_reserve / hk_buf_try_append (only allocation failure can stop them). */
#define HK_BUF_NO_LIMIT ((size_t)-1)

/** Frees the bytes; b is empty and reusable afterwards. Safe on a zeroed or freed buffer. */
void hk_buf_free(hk_buf *b);

/** Forgets the contents (len = 0, data stays allocated and NUL-terminated) for reuse. */
void hk_buf_reset(hk_buf *b);

/** Resets b and gives its memory back when more than keep bytes are allocated (keeps idle objects small). */
void hk_buf_shrink(hk_buf *b, size_t keep);

/**
 * Makes room for extra more bytes (plus the terminating NUL) for growth a
 * peer controls: 0, or HK_ETOOBIG when len + extra would exceed limit,
 * or UV_ENOMEM when the allocation fails. On error b is unchanged. The
 * allocation never exceeds limit + 1 bytes.
 */
int hk_buf_try_reserve(hk_buf *b, size_t extra, size_t limit) HK_MUST_CHECK;

/** hk_buf_try_reserve, then appends n bytes of p: 0, HK_ETOOBIG or UV_ENOMEM (b unchanged on error). */
int hk_buf_try_append(hk_buf *b, const void *p, size_t n, size_t limit) HK_MUST_CHECK;

/** Makes room for extra more bytes; aborts when out of memory (internal, bounded sizes only). */
void hk_buf_reserve(hk_buf *b, size_t extra);

/** Appends n bytes of p (p may be NULL when n is 0); aborts when out of memory. */
void hk_buf_append(hk_buf *b, const void *p, size_t n);

/** Appends the C string s. */
void hk_buf_puts(hk_buf *b, const char *s);

/** Appends one byte. */
void hk_buf_putc(hk_buf *b, char c);

/** Appends printf-formatted text (any length); aborts when out of memory. */
void hk_buf_printf(hk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** hk_buf_printf with a va_list. */
void hk_buf_vprintf(hk_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/** Removes the first n bytes (all when n >= len), moving the rest to the front. */
void hk_buf_consume(hk_buf *b, size_t n);

/**
 * Takes the bytes out of b: returns them (malloc'd, NUL-terminated, never
 * NULL; the caller frees them with free()) and their length in *len (len
 * may be NULL). b is empty afterwards.
 */
char *hk_buf_steal(hk_buf *b, size_t *len) HK_MUST_CHECK;

/** The contents as a C string: data, or "" when nothing was ever appended. Valid until b changes. */
const char *hk_buf_cstr(const hk_buf *b);

#endif
