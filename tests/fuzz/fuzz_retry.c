/*
 * fuzz_retry.c: Retry-After values and retry schedules
 * (services/outcome.c). Input: a Retry-After value, a newline, a retry
 * schedule, then (optionally) a NUL and bytes used as the jitter's random
 * numbers.
 *
 * A Retry-After either parses (delay-seconds exactly) or is refused. A
 * schedule the configuration accepts (hk_retry_delays_parse, checked at
 * load) is one the engine runs, with the same delays; each jittered delay
 * stays within its bounds and within the span that retention relies on.
 * The engine's delay arithmetic is only fed such schedules (hookd never
 * gives it others); other text goes to its parser alone.
 */
#include "config.h"
#include "fuzz.h"
#include "outcome.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t text_len = nul ? (size_t)(nul - data) : size;
    uint64_t rnd[4] = {0x9e3779b97f4a7c15ull, 1, UINT64_MAX, 0};
    if (nul != NULL)
        memcpy(rnd, nul + 1, size - text_len - 1 < sizeof(rnd) ? size - text_len - 1 : sizeof(rnd));
    char *value, *schedule;
    fuzz_split(data, text_len, '\n', &value, &schedule);

    const uint64_t now = 1700000000000ull;
    uint64_t delay = 12345;
    int rc = hk_retry_after_parse(value, now, &delay);
    FUZZ_CHECK(rc == 0 || rc == HK_EINVAL);
    const char *v = value + strspn(value, " \t");
    if (rc == 0 && v[0] >= '0' && v[0] <= '9' && strlen(v) <= 15)
        FUZZ_CHECK(delay == strtoull(v, NULL, 10) * 1000u);

    uint64_t *cfg_delays = NULL;
    size_t ncfg = 0;
    char why[256];
    bool config_ok = hk_retry_delays_parse(schedule, &cfg_delays, &ncfg, why, sizeof(why)) == 0;
    hk_retry_policy p;
    memset(&p, 0, sizeof(p));
    uint32_t jitter = (uint32_t)(rnd[3] % 101);
    if (config_ok) {
        /* The engine only ever gets schedules the configuration accepted. */
        FUZZ_CHECK(hk_retry_policy_init(&p, schedule, jitter, 3600000, 10) == 0);
        FUZZ_CHECK(p.n == ncfg);
        for (size_t i = 0; i < ncfg; i++)
            FUZZ_CHECK(p.delays[i] == cfg_delays[i]);
        uint64_t span = hk_retry_span(&p);
        for (uint32_t made = 1; made < p.n && made < 64; made++) {
            uint64_t lo, hi;
            hk_retry_delay_bounds(&p, made, &lo, &hi);
            FUZZ_CHECK(lo <= hi && hi <= span);
            for (int k = 0; k < 3; k++) {
                uint64_t d = hk_retry_delay(&p, made, rnd[k]);
                FUZZ_CHECK(d >= lo && d <= hi);
            }
        }
    } else {
        /* Whatever else the engine's own parser is handed, it survives it. */
        uint64_t *d = NULL;
        size_t n = 0;
        if (hk_retry_schedule_parse(schedule, &d, &n) == 0)
            FUZZ_CHECK(n > 0);
        free(d);
    }
    hk_retry_policy_free(&p);
    free(cfg_delays);
    free(value);
    free(schedule);
    return 0;
}
