/* test_json_text.c: JSON string quoting agrees with jansson's. */
#include <jansson.h>

#include "json_text.h"
#include "unit.h"

/* Quotes s with hk_json_text_quote and checks jansson reads back the same bytes. */
static void round_trip(const char *s, size_t len)
{
    hk_buf b = HK_BUF_INIT;
    hk_buf_puts(&b, "[");
    hk_json_text_quote(&b, s, len);
    hk_buf_puts(&b, "]");
    json_error_t err;
    json_t *j = json_loadb(b.data, b.len, JSON_ALLOW_NUL, &err);
    CHECK(j != NULL);
    if (j == NULL)
        fprintf(stderr, "not JSON: %s (%s)\n", b.data, err.text);
    json_t *v = json_array_get(j, 0);
    CHECK(v != NULL && json_string_length(v) == len && memcmp(json_string_value(v), s, len) == 0);
    json_decref(j);
    hk_buf_free(&b);
}

int main(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_json_text_quote(&b, "a\"b\\c\n\x01", 7);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    hk_buf_reset(&b);
    hk_buf_puts(&b, "x=");
    hk_json_text_quote(&b, "", 0);
    CHECK_STR(b.data, "x=\"\"");
    hk_buf_free(&b);
    round_trip("plain", 5);
    round_trip("caf\xc3\xa9 \xf0\x9f\x98\x80", 10);
    round_trip("ctl \x1b[31m \x7f \t\r\n", 15);
    round_trip("nul\0inside", 10);
    char all[0x80];
    for (int i = 0; i < 0x80; i++)
        all[i] = (char)i;
    round_trip(all, sizeof(all));
    return unit_done();
}
