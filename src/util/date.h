/*
 * date.h: the date formats the dialects write and read, in UTC.
 */
#ifndef HK_DATE_H
#define HK_DATE_H

#include <stddef.h>
#include <stdint.h>

/** Formats ms as SuperOffice writes dates: 2024-01-31T12:34:56.7890000Z (seven fraction digits). */
void hk_fmt_date_so(uint64_t ms, char *buf, size_t len);

/** Formats ms as ISO 8601 with milliseconds: 2024-01-31T12:34:56.789Z. */
void hk_fmt_date_iso(uint64_t ms, char *buf, size_t len);

/**
 * Parses an RFC 7231 date, an ISO 8601 date-time (fraction and Z optional)
 * or a bare date (its midnight) into ms. Returns 0 or -1 when malformed.
 */
int hk_parse_date(const char *s, uint64_t *ms);

#endif
