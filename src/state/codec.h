/*
 * codec.h: the byte writer and reader every record codec of the state layer
 * uses (internal to src/state). Integers are big-endian; a string is a u32
 * length and its bytes, the length HK__NULL_STR standing for NULL. A reader
 * never reads past its buffer: a short or malformed record sets `bad`, and
 * every later read returns zeros, so a codec checks once at its end.
 */
#ifndef HK_CODEC_H
#define HK_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/** The length that encodes a NULL string. */
#define HK__NULL_STR UINT32_MAX

/** A growing output buffer; p is malloc'd and owned by whoever takes it. */
typedef struct hk__wbuf {
    uint8_t *p; /**< the bytes (NULL while empty) */
    size_t len; /**< bytes written */
    size_t cap; /**< bytes allocated */
} hk__wbuf;

void hk__w_u8(hk__wbuf *b, uint8_t v);
void hk__w_u16(hk__wbuf *b, uint16_t v);
void hk__w_u32(hk__wbuf *b, uint32_t v);
void hk__w_u64(hk__wbuf *b, uint64_t v);
/** Appends n raw bytes. */
void hk__w_raw(hk__wbuf *b, const void *p, size_t n);
/** Appends a string of n bytes (s NULL: the NULL string). */
void hk__w_strn(hk__wbuf *b, const char *s, size_t n);
/** Appends a NUL-terminated string (NULL: the NULL string). */
void hk__w_str(hk__wbuf *b, const char *s);

/** A reader over borrowed bytes. */
typedef struct hk__rbuf {
    const uint8_t *p; /**< the bytes (borrowed) */
    size_t len;       /**< bytes in p */
    size_t off;       /**< bytes consumed */
    bool bad;         /**< a read ran past the end or met a malformed value */
} hk__rbuf;

/** A reader over len bytes at p. */
static inline hk__rbuf hk__rbuf_of(const void *p, size_t len)
{
    hk__rbuf r = {(const uint8_t *)p, len, 0, false};
    return r;
}

uint8_t hk__r_u8(hk__rbuf *r);
uint16_t hk__r_u16(hk__rbuf *r);
uint32_t hk__r_u32(hk__rbuf *r);
uint64_t hk__r_u64(hk__rbuf *r);
/** Copies n raw bytes into out (zeros when short). */
void hk__r_raw(hk__rbuf *r, void *out, size_t n);
/**
 * Reads a string as a malloc'd, NUL-terminated copy (the caller frees it);
 * NULL for the NULL string or when bad. *n (may be NULL) receives its length.
 */
char *hk__r_str(hk__rbuf *r, size_t *n);
/** Reads a string into dst (cap bytes with the NUL); too long or NULL sets bad. */
void hk__r_strbuf(hk__rbuf *r, char *dst, size_t cap);
/** Points *s at a string's bytes inside the buffer (not NUL-terminated); *n its length. */
void hk__r_strview(hk__rbuf *r, const char **s, size_t *n);
/** True when every byte was read and nothing was malformed. */
static inline bool hk__r_done(const hk__rbuf *r)
{
    return !r->bad && r->off == r->len;
}

#endif
