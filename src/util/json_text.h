/*
 * json_text.h: JSON text written by hand, for the hot paths that build a
 * delivery body or a list of members without a jansson tree.
 *
 * The quoting is the same as jansson's compact output for valid UTF-8: '"'
 * and '\' escaped with a backslash, bytes below 0x20 as \u00XX, everything
 * else (UTF-8 included) copied. It does not check UTF-8: pass text that is
 * valid (see utf8.h) or the result is not valid JSON.
 */
#ifndef HK_JSON_TEXT_H
#define HK_JSON_TEXT_H

#include <stddef.h>

#include "buf.h"

/** Appends the len bytes of s to out as a JSON string literal, quotes included. Aborts when out of memory. */
void hk_json_text_quote(hk_buf *out, const char *s, size_t len);

#endif
