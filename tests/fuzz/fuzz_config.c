/*
 * fuzz_config.c: the INI configuration (util/config.c) from text: sections,
 * keys, every value parser (durations, sizes, booleans, lists, the retry
 * schedule, addresses) and the rules between keys. A config that loads must
 * satisfy what the rest of hookd relies on.
 */
#include "config.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    hk_config cfg;
    char err[1024];
    hk_config_defaults(&cfg);
    err[0] = '\0';
    int rc = hk_config_parse(&cfg, "fuzz.conf", (const char *)data, size, err, sizeof(err));
    if (rc == 0) {
        FUZZ_CHECK(cfg.nretry_delays >= 1 && cfg.nretry_delays <= HK_RETRY_MAX);
        FUZZ_CHECK(cfg.retry_delays[0] == 0);
        for (size_t i = 0; i < cfg.nretry_delays; i++)
            FUZZ_CHECK(cfg.retry_delays[i] <= HK_RETRY_DELAY_MAX_MS);
        FUZZ_CHECK(cfg.listen[0] != '\0' && cfg.data_dir[0] != '\0');
        FUZZ_CHECK(hk_log_parse_level(cfg.log_level) >= 0);
    } else {
        /* Every refusal says where: the name given for the text and a line. */
        FUZZ_CHECK(rc == HK_ECONFIG);
        FUZZ_CHECK(strncmp(err, "fuzz.conf:", 10) == 0);
    }
    hk_config_free(&cfg);
    return 0;
}
