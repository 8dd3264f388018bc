/*
 * fuzz_date.c: date parsing (util/date.c hk_parse_date: RFC 7231 dates, ISO
 * 8601 date-times, bare dates), as If-Unmodified-Since, Retry-After and
 * filter values use it. A date that parses formats back to the same instant.
 */
#include "date.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    uint64_t ms = 0;
    if (hk_parse_date(s, &ms) == 0) {
        char iso[64], so[64];
        uint64_t back = 0;
        hk_fmt_date_iso(ms, iso, sizeof(iso));
        hk_fmt_date_so(ms, so, sizeof(so));
        /* Formats of the years hookd writes (0000..9999) read back exactly. */
        if (ms < 253402300800000ull) {
            FUZZ_CHECK(hk_parse_date(iso, &back) == 0 && back == ms);
            FUZZ_CHECK(hk_parse_date(so, &back) == 0 && back == ms);
        }
    }
    free(s);
    return 0;
}
