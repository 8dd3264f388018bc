/*
 * log.h: leveled, line-oriented logging to stderr.
 *
 * Every message is escaped before it is written (hk_log_escape): remote
 * text (a receiver's reason phrase, a relay's reply) can be logged as it
 * came without a second thought; it never adds a line or a terminal
 * control sequence.
 */
#ifndef HK_LOG_H
#define HK_LOG_H

#include <stddef.h>

enum hk_log_level { HK_LOG_DEBUG, HK_LOG_INFO, HK_LOG_WARN, HK_LOG_ERROR };

/** Sets the lowest level that is written. */
void hk_log_set_level(enum hk_log_level level);

/** Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int hk_log_parse_level(const char *s);

/**
 * Escapes len bytes of s into out (cap bytes, NUL-terminated, cap > 0) so
 * that the text is one printable line: \n, \r, \t and \xHH for ASCII
 * control characters and DEL, \xHH for bytes that are not valid UTF-8,
 * \u00HH for C1 controls; valid UTF-8 and printable ASCII are kept. A
 * result longer than cap - 1 is cut between characters. Returns the bytes
 * written (without the NUL).
 */
size_t hk_log_escape(char *out, size_t cap, const char *s, size_t len);

/** Writes one line "TIME LEVEL message" to stderr when level is enabled; the message is escaped (hk_log_escape). */
void hk_log(enum hk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define hk_debug(...) hk_log(HK_LOG_DEBUG, __VA_ARGS__)
#define hk_info(...) hk_log(HK_LOG_INFO, __VA_ARGS__)
#define hk_warn(...) hk_log(HK_LOG_WARN, __VA_ARGS__)
#define hk_error(...) hk_log(HK_LOG_ERROR, __VA_ARGS__)

#endif
