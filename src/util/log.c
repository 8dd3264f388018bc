/*
 * log.c: one line per event worth knowing, with time and level.
 *
 * A message often carries text from outside (a receiver's reason phrase,
 * a relay's reply, a peer's address): each line is made safe to print, so
 * that no remote party can start a new line, move the cursor or colour a
 * terminal. Control characters become \n, \r, \t or \xHH; bytes that are
 * not valid UTF-8 become \xHH; C1 controls (U+0080..U+009F) become \u00HH.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "buf.h"
#include "json_text.h"
#include "utf8.h"

/* The longest text line written, newline included; a longer message is cut. */
#define LINE_MAX_BYTES 2048
/* The most of a message or field value a JSON line holds. */
#define FIELD_MAX_BYTES 1024

static enum hk_log_level min_level = HK_LOG_INFO;
static enum hk_log_format line_format = HK_LOG_TEXT;
static _Thread_local const char *request_id; /* the loop thread's current request */
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void hk_log_set_format(enum hk_log_format format)
{
    line_format = format;
}

int hk_log_parse_format(const char *s)
{
    if (strcmp(s, "text") == 0)
        return HK_LOG_TEXT;
    if (strcmp(s, "json") == 0)
        return HK_LOG_JSON;
    return -1;
}

const char *hk_log_set_request(const char *id)
{
    const char *was = request_id;
    request_id = id;
    return was;
}

int hk_log_enabled(enum hk_log_level level)
{
    return level >= min_level;
}

void hk_log_set_level(enum hk_log_level level)
{
    min_level = level;
}

int hk_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

size_t hk_log_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t elen = 0, used = 1;
        if (c >= 0x20 && c < 0x7f) {
            esc[elen++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[elen++] = '\\';
            esc[elen++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x80) {
            memcpy(esc, "\\x", 2);
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            elen = 4;
        } else {
            size_t n = hk_utf8_seq(s + i, len - i);
            if (n == 2 && c == 0xc2 && (unsigned char)s[i + 1] < 0xa0) {
                /* A C1 control: some terminals act on it. */
                unsigned char cp = (unsigned char)s[i + 1];
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[cp >> 4];
                esc[5] = hex[cp & 15];
                elen = 6;
                used = 2;
            } else if (n > 0) {
                memcpy(esc, s + i, n);
                elen = n;
                used = n;
            } else {
                memcpy(esc, "\\x", 2);
                esc[2] = hex[c >> 4];
                esc[3] = hex[c & 15];
                elen = 4;
            }
        }
        if (o + elen >= cap)
            break; /* cut between characters, never inside an escape */
        memcpy(out + o, esc, elen);
        o += elen;
        i += used;
    }
    out[o] = '\0';
    return o;
}

/* A text field's value: bare when it is one plain word, else in double quotes with '"' as \\". */
static void text_value(hk_buf *b, const char *v)
{
    char esc[LINE_MAX_BYTES / 2];
    size_t n = hk_log_escape(esc, sizeof(esc), v, strlen(v));
    if (n > 0 && strpbrk(esc, " \"=") == NULL) {
        hk_buf_append(b, esc, n);
        return;
    }
    hk_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        if (esc[i] == '"')
            hk_buf_putc(b, '\\');
        hk_buf_putc(b, esc[i]);
    }
    hk_buf_putc(b, '"');
}

/* A JSON string of text that may not be valid UTF-8 (each bad byte becomes U+FFFD). */
static void json_value(hk_buf *b, const char *v, size_t len)
{
    len = hk_utf8_cut(v, len, FIELD_MAX_BYTES);
    if (hk_utf8_valid(v, len)) {
        hk_json_text_quote(b, v, len);
        return;
    }
    hk_buf clean = HK_BUF_INIT;
    hk_utf8_sanitize(&clean, v, len);
    hk_json_text_quote(b, clean.data, clean.len);
    hk_buf_free(&clean);
}

static void write_line(enum hk_log_level level, const hk_log_field *fields, size_t nfields, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void write_line(enum hk_log_level level, const hk_log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    char msg[LINE_MAX_BYTES], ts[40];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t t = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + t, sizeof(ts) - t, ".%03ldZ", (long)(tv.tv_usec / 1000));
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (m < 0)
        m = 0;
    if (m > (int)sizeof(msg) - 1)
        m = (int)sizeof(msg) - 1;
    hk_log_field rid = HK_LOG_STR("request_id", request_id);
    hk_buf b = HK_BUF_INIT;
    if (line_format == HK_LOG_JSON) {
        hk_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        json_value(&b, msg, (size_t)m);
        for (size_t i = 0; i <= nfields; i++) {
            const hk_log_field *f = i < nfields ? &fields[i] : request_id != NULL ? &rid : NULL;
            if (f == NULL)
                break;
            hk_buf_printf(&b, ",\"%s\":", f->key);
            if (f->str != NULL)
                json_value(&b, f->str, strlen(f->str));
            else
                hk_buf_printf(&b, "%lld", f->num);
        }
        hk_buf_putc(&b, '}');
    } else {
        char esc[LINE_MAX_BYTES];
        hk_buf_printf(&b, "%s %-5s ", ts, level_names[level]);
        size_t n = hk_log_escape(esc, sizeof(esc) - b.len - 1, msg, (size_t)m);
        hk_buf_append(&b, esc, n);
        for (size_t i = 0; i <= nfields; i++) {
            const hk_log_field *f = i < nfields ? &fields[i] : request_id != NULL ? &rid : NULL;
            if (f == NULL)
                break;
            hk_buf_printf(&b, " %s=", f->key);
            if (f->str != NULL)
                text_value(&b, f->str);
            else
                hk_buf_printf(&b, "%lld", f->num);
        }
        /* Fields included, a line stays within LINE_MAX_BYTES (cut between characters). */
        if (b.len > LINE_MAX_BYTES - 1)
            b.len = hk_utf8_cut(b.data, b.len, LINE_MAX_BYTES - 1);
    }
    hk_buf_putc(&b, '\n');
    /* One write per line so lines from concurrent threads never interleave. */
    fwrite(b.data, 1, b.len, stderr);
    hk_buf_free(&b);
}

void hk_log(enum hk_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void hk_log_fields(enum hk_log_level level, const hk_log_field *fields, size_t n, const char *fmt, ...)
{
    if (level < min_level)
        return;
    va_list ap;
    va_start(ap, fmt);
    write_line(level, fields, n, fmt, ap);
    va_end(ap);
}
