/*
 * log.h: leveled, line-oriented logging to stderr, as text or JSON lines.
 *
 * A line has a time, a level, a message and optional fields (key = string
 * or integer). In text format fields follow the message as key=value
 * (values with spaces, quotes or '=' in double quotes); in JSON format each
 * line is one object {"time", "level", "msg", fields...}. While a request
 * is being handled, its id (hk_log_set_request) is a field of every line.
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

/** How lines are written. */
enum hk_log_format { HK_LOG_TEXT, HK_LOG_JSON };

/** Sets the line format (text by default). */
void hk_log_set_format(enum hk_log_format format);

/** Parses "text" or "json"; returns -1 for anything else. */
int hk_log_parse_format(const char *s);

/**
 * Sets the id of the request the calling thread is handling (NULL: none),
 * a field of every line that thread writes until it is cleared. The text
 * is borrowed: it must stay valid until the next call. Returns the id it
 * replaces, so that a caller can put it back.
 */
const char *hk_log_set_request(const char *id);

/** One field of a line: a string (str non-NULL) or an integer. */
typedef struct hk_log_field {
    const char *key; /**< the field's name: letters, digits and '_' */
    const char *str; /**< its text (escaped when written), or NULL for num */
    long long num;   /**< its value when str is NULL */
} hk_log_field;

/** A string field. */
#define HK_LOG_STR(k, v) ((hk_log_field){.key = (k), .str = (v) != NULL ? (v) : ""})
/** An integer field. */
#define HK_LOG_NUM(k, v) ((hk_log_field){.key = (k), .str = NULL, .num = (long long)(v)})

/** Writes one line "TIME LEVEL message" to stderr when level is enabled; the message is escaped (hk_log_escape). */
void hk_log(enum hk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** As hk_log, with n fields after the message. */
void hk_log_fields(enum hk_log_level level, const hk_log_field *fields, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** True when a line at level would be written. */
int hk_log_enabled(enum hk_log_level level);

#define hk_debug(...) hk_log(HK_LOG_DEBUG, __VA_ARGS__)
#define hk_info(...) hk_log(HK_LOG_INFO, __VA_ARGS__)
#define hk_warn(...) hk_log(HK_LOG_WARN, __VA_ARGS__)
#define hk_error(...) hk_log(HK_LOG_ERROR, __VA_ARGS__)

#endif
