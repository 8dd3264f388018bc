/*
 * utf8.h: THE UTF-8 helper set: validate, count characters, replace
 * invalid bytes with U+FFFD, cut at a character boundary.
 *
 * "Valid" is RFC 3629: no overlong forms, no surrogates (U+D800..U+DFFF),
 * nothing past U+10FFFF. NUL is a valid character. Every function takes a
 * length, so text need not be NUL-terminated. Where invalid input is
 * counted or cut, each byte that is not part of a valid sequence counts as
 * one character, which is what it becomes once sanitized (one U+FFFD).
 */
#ifndef HK_UTF8_H
#define HK_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/** The UTF-8 encoding of U+FFFD REPLACEMENT CHARACTER. */
#define HK_UTF8_REPLACEMENT "\xEF\xBF\xBD"

/** Length (1..4) of the valid sequence that starts s (at most n bytes, n > 0); 0 when s starts no valid one. */
size_t hk_utf8_seq(const char *s, size_t n);

/** True when all len bytes of s are valid UTF-8. */
bool hk_utf8_valid(const char *s, size_t len);

/** Bytes at the start of s that are valid UTF-8 (len when all are). */
size_t hk_utf8_valid_prefix(const char *s, size_t len);

/** Characters (code points) in s; each invalid byte counts as one. */
size_t hk_utf8_chars(const char *s, size_t len);

/**
 * Appends s to out with each byte that is not part of a valid sequence
 * replaced by U+FFFD; valid text (NUL included) is copied byte for byte.
 * The growth is bounded by 3 * len (a replacement is 3 bytes); aborts when
 * out of memory like hk_buf_append.
 */
void hk_utf8_sanitize(hk_buf *out, const char *s, size_t len);

/**
 * The longest prefix of s of at most max bytes that does not end inside a
 * valid multi-byte sequence, so cutting there never splits a character.
 * Returns its length (len when len <= max).
 */
size_t hk_utf8_cut(const char *s, size_t len, size_t max);

/** The length of the prefix of s that holds at most max characters (as hk_utf8_chars counts them). */
size_t hk_utf8_cut_chars(const char *s, size_t len, size_t max);

#endif
