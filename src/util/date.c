/*
 * date.c: the date formats the dialects write and read.
 */
#include "date.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void hk_fmt_date_so(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%07uZ", base, (unsigned)(ms % 1000) * 10000u);
}

void hk_fmt_date_iso(uint64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03uZ", base, (unsigned)(ms % 1000));
}

int hk_parse_date(const char *s, uint64_t *ms)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    unsigned frac_ms = 0;
    if (end == NULL || *end != '\0') {
        memset(&tm, 0, sizeof(tm));
        end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
        if (end == NULL) {
            /* A bare date means its midnight, UTC. */
            memset(&tm, 0, sizeof(tm));
            end = strptime(s, "%Y-%m-%d", &tm);
            if (end == NULL || *end != '\0')
                return -1;
        }
        if (*end == '.') {
            end++;
            unsigned scale = 100;
            while (*end >= '0' && *end <= '9') {
                frac_ms += (unsigned)(*end - '0') * scale;
                scale /= 10;
                end++;
            }
        }
        if (*end == 'Z')
            end++;
        if (*end != '\0')
            return -1;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    *ms = (uint64_t)t * 1000u + frac_ms;
    return 0;
}
