/* test_log.c: log lines: levels, and remote text escaped so it cannot add lines or terminal controls. */
#include <jansson.h>
#include <stdio.h>
#include <unistd.h>

#include "common.h"
#include "log.h"
#include "unit.h"

static void check_escape(const char *in, size_t len, const char *want)
{
    char out[256];
    size_t n = hk_log_escape(out, sizeof(out), in, len);
    CHECK_STR(out, want);
    CHECK_INT(n, strlen(want));
}

static void test_escape(void)
{
    check_escape("plain text", 10, "plain text");
    check_escape("a\r\nb\tc", 6, "a\\r\\nb\\tc");
    check_escape("\x1b[31mred\x1b[0m", 12, "\\x1b[31mred\\x1b[0m");
    check_escape("nul\0x", 5, "nul\\x00x");
    check_escape("del\x7f", 4, "del\\x7f");
    check_escape("caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    check_escape("bad \xff\xc3", 6, "bad \\xff\\xc3");
    check_escape("csi \xc2\x9b"
                 "2J",
                 8, "csi \\u009b2J");                  /* a C1 control */
    check_escape("nbsp \xc2\xa0", 7, "nbsp \xc2\xa0"); /* U+00A0 is printable */
    /* A small buffer cuts between characters, never inside an escape. */
    char small[5];
    CHECK_INT(hk_log_escape(small, sizeof(small), "ab\ncd", 5), 4);
    CHECK_STR(small, "ab\\n");
    CHECK_INT(hk_log_escape(small, sizeof(small), "abc\n", 4), 3);
    CHECK_STR(small, "abc");
    CHECK_INT(hk_log_escape(small, sizeof(small), "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8), 4);
}

/* Runs fn with stderr going to a file and returns what it wrote (malloc'd). */
static char *capture_stderr(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long len = ftell(tmp);
    char *out = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    rewind(tmp);
    if (len > 0 && fread(out, 1, (size_t)len, tmp) != (size_t)len)
        out[0] = '\0';
    fclose(tmp);
    return out;
}

static void log_reason_phrase(void)
{
    /* What a receiver could put in its status line. */
    hk_warn("webhook 7 disabled (TooManyErrors): HTTP/1.1 500 %s",
            "Oops\r\n2026-01-01T00:00:00Z error forged\x1b]0;x\x07");
    hk_debug("not written at the default level");
    hk_info("second line");
}

static void test_lines(void)
{
    char *out = capture_stderr(log_reason_phrase);
    /* Exactly two lines: the forged one stayed inside the first. */
    size_t lines = 0;
    for (char *p = out; *p; p++)
        lines += *p == '\n';
    CHECK_INT(lines, 2);
    CHECK(strstr(out, " warn  webhook 7 disabled (TooManyErrors): HTTP/1.1 500 Oops\\r\\n2026-01-01T00:00:00Z error "
                      "forged\\x1b]0;x\\x07\n") != NULL);
    CHECK(strchr(out, '\x1b') == NULL);
    CHECK(strchr(out, '\r') == NULL);
    CHECK(strstr(out, " info  second line\n") != NULL);
    CHECK(strstr(out, "not written") == NULL);
    free(out);
}

static void log_long(void)
{
    char big[5000];
    memset(big, '\n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    hk_error("%s", big);
}

static void test_long_line(void)
{
    char *out = capture_stderr(log_long);
    size_t len = strlen(out);
    CHECK(len > 100 && len <= 2048);
    CHECK(out[len - 1] == '\n');
    CHECK(strchr(out, '\n') == out + len - 1);
    free(out);
}

static void log_fields(void)
{
    hk_log_field f[] = {HK_LOG_NUM("webhook_id", 7), HK_LOG_STR("event", "order.paid"),
                        HK_LOG_STR("error", "HTTP 500 \"Oops\"\r\nforged"), HK_LOG_STR("empty", NULL)};
    hk_log_set_request("req-1");
    hk_log_fields(HK_LOG_WARN, f, HK_ARRAY_SIZE(f), "delivery %s", "failed");
    hk_log_set_request(NULL);
    hk_info("no request \xff");
}

/* Text: fields as key=value after the message, quoted when needed; the request id while one is set. */
static void test_text_fields(void)
{
    char *out = capture_stderr(log_fields);
    CHECK(strstr(out,
                 " warn  delivery failed webhook_id=7 event=order.paid error=\"HTTP 500 \\\"Oops\\\"\\r\\nforged\" "
                 "empty=\"\" request_id=req-1\n") != NULL);
    CHECK(strstr(out, " info  no request \\xff\n") != NULL);
    CHECK(strstr(out, "no request \\xff request_id") == NULL);
    free(out);
}

/* JSON: one object per line with time, level, msg and the fields; text that is not UTF-8 becomes U+FFFD. */
static void test_json_lines(void)
{
    hk_log_set_format(HK_LOG_JSON);
    char *out = capture_stderr(log_fields);
    hk_log_set_format(HK_LOG_TEXT);
    char *nl = strchr(out, '\n');
    CHECK(nl != NULL && strchr(nl + 1, '\n') == out + strlen(out) - 1);
    *nl = '\0';
    json_error_t err;
    json_t *a = json_loads(out, 0, &err), *b = json_loads(nl + 1, 0, &err);
    CHECK(a != NULL && b != NULL);
    if (a != NULL && b != NULL) {
        CHECK_STR(json_string_value(json_object_get(a, "level")), "warn");
        CHECK_STR(json_string_value(json_object_get(a, "msg")), "delivery failed");
        CHECK(json_integer_value(json_object_get(a, "webhook_id")) == 7);
        CHECK_STR(json_string_value(json_object_get(a, "error")), "HTTP 500 \"Oops\"\r\nforged");
        CHECK_STR(json_string_value(json_object_get(a, "request_id")), "req-1");
        CHECK(strlen(json_string_value(json_object_get(a, "time"))) == 24);
        CHECK_STR(json_string_value(json_object_get(b, "msg")), "no request \xef\xbf\xbd");
        CHECK(json_object_get(b, "request_id") == NULL);
    }
    json_decref(a);
    json_decref(b);
    free(out);
    CHECK_INT(hk_log_parse_format("json"), HK_LOG_JSON);
    CHECK_INT(hk_log_parse_format("xml"), -1);
}

int main(void)
{
    CHECK_INT(hk_log_parse_level("warn"), HK_LOG_WARN);
    CHECK_INT(hk_log_parse_level("loud"), -1);
    test_escape();
    test_lines();
    test_long_line();
    test_text_fields();
    test_json_lines();
    return unit_done();
}
