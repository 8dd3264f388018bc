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

#include "utf8.h"

/* The longest line written, newline included; a longer message is cut. */
#define LINE_MAX_BYTES 2048

static enum hk_log_level min_level = HK_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

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

void hk_log(enum hk_log_level level, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[LINE_MAX_BYTES], line[LINE_MAX_BYTES];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s ", (long)(tv.tv_usec / 1000), level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    if (m > (int)sizeof(msg) - 1)
        m = (int)sizeof(msg) - 1;
    /* Room for the newline stays free. */
    n += (int)hk_log_escape(line + n, sizeof(line) - (size_t)n - 1, msg, (size_t)m);
    line[n++] = '\n';
    /* One write per line so lines from concurrent threads never interleave. */
    fwrite(line, 1, (size_t)n, stderr);
}
