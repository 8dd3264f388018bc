/*
 * fuzz_filter.c: the EnergyCAP filter grammar (api/filter.c), the one
 * parser behind `filter=` on webhook lists and on attempt logs. Input: the
 * filter text. It parses against both field tables; a filter that parses is
 * evaluated against sample records; a refusal is a 400 message that starts
 * with "filter:", fits its buffer and is valid UTF-8.
 */
#include "filter.h"
#include "fuzz.h"
#include "utf8.h"

static char *events_a[] = {"contact.created", "sale.changed"};
static char *events_b[] = {""};

static hk_webhook hooks[] = {
    {.id = 1,
     .name = "Orders",
     .description = "",
     .url = "https://example.com/h",
     .secret = "",
     .prev_secret = "",
     .state = HK_WH_ACTIVE,
     .events = events_a,
     .nevents = 2,
     .extension = NULL,
     .registered_ms = 1700000000000ull},
    {.id = 4294967295u,
     .name = "%_\"'\\",
     .description = "d\xc3\xa9j\xc3\xa0",
     .url = "http://[::1]:8080/",
     .secret = "",
     .prev_secret = "",
     .state = HK_WH_TOO_MANY_ERRORS,
     .events = events_b,
     .nevents = 1,
     .locked = true,
     .extension = "ext"},
    {.id = 7,
     .name = "",
     .description = "",
     .url = "",
     .secret = "",
     .prev_secret = "",
     .state = HK_WH_STOPPED,
     .events = NULL,
     .nevents = 0},
};

static hk_attempt attempts[] = {
    {.id = 1, .status = 200, .started_ms = 1700000000000ull},
    {.id = 2, .status = 0, .started_ms = 0},
    {.id = 3, .status = 599, .started_ms = 253402300799999ull},
};

static int type_id(void *arg, const char *name, uint32_t *id)
{
    (void)arg;
    if (strcmp(name, "contact.created") == 0) {
        *id = 1;
        return 0;
    }
    return -1;
}

static void check_error(const char *err)
{
    size_t n = strnlen(err, HK_FILTER_ERR_MAX);
    FUZZ_CHECK(n < HK_FILTER_ERR_MAX);
    FUZZ_CHECK(strncmp(err, "filter:", 7) == 0);
    FUZZ_CHECK(hk_utf8_valid(err, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_str(data, size);
    char err[HK_FILTER_ERR_MAX];
    hk_filter *f = NULL;

    int rc = hk_filter_parse(text, hk_filter_webhook_fields, &f, err);
    if (rc == 0) {
        FUZZ_CHECK(hk_filter_conditions(f) <= HK_FILTER_CONDS_MAX);
        for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++) {
            hk_filter_webhook rec = {&hooks[i], i == 0 ? type_id : NULL, NULL};
            (void)hk_filter_match(f, &rec);
        }
        hk_filter_free(f);
    } else {
        FUZZ_CHECK(rc == HK_EINVAL && f == NULL);
        check_error(err);
    }

    f = NULL;
    rc = hk_filter_parse(text, hk_filter_attempt_fields, &f, err);
    if (rc == 0) {
        for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++)
            (void)hk_filter_match(f, &attempts[i]);
        hk_filter_free(f);
    } else {
        FUZZ_CHECK(rc == HK_EINVAL && f == NULL);
        check_error(err);
    }
    free(text);
    return 0;
}
