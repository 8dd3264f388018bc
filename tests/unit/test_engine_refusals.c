/*
 * Unit tests of what the delivery engine logs when the SSRF guard refuses
 * a delivery's target: one warn-level line naming the webhook, the URL's
 * host, the refused address and the rule, at most once a minute per
 * webhook on the engine's clock (a fake clock here).
 */
#include <unistd.h>

#include "engine_fixture.h"
#include "log.h"

/* stderr goes to a file while a test runs; what the engine logged is read back from it. */
static FILE *capture_file;
static int saved_stderr = -1;

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    if (capture_file == NULL)
        abort();
    saved_stderr = dup(2);
    dup2(fileno(capture_file), 2);
}

/* The text logged since capture_start (malloc'd); stderr is restored. */
static char *capture_take(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    long n = ftell(capture_file);
    char *out = hk_calloc(1, (size_t)(n > 0 ? n : 0) + 1);
    rewind(capture_file);
    if (n > 0 && fread(out, 1, (size_t)n, capture_file) != (size_t)n)
        out[0] = '\0';
    fclose(capture_file);
    /* Failed checks went into the file too: show them. */
    for (const char *p = strstr(out, __FILE__); p != NULL; p = strstr(p + 1, __FILE__)) {
        const char *end = strchr(p, '\n');
        fprintf(stderr, "%.*s\n", end ? (int)(end - p) : (int)strlen(p), p);
    }
    return out;
}

/* Lines of text containing every one of the NULL-terminated parts. */
static int count_lines(const char *text, ...)
{
    int n = 0;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char *copy = hk_strndup(line, len);
        va_list ap;
        va_start(ap, text);
        bool all = true;
        for (const char *p = va_arg(ap, const char *); p != NULL; p = va_arg(ap, const char *))
            all = all && strstr(copy, p) != NULL;
        va_end(ap);
        n += all;
        free(copy);
        line = end ? end + 1 : line + len;
    }
    return n;
}

/* Fails request i as the client does when the SSRF guard refuses the address the host resolved to. */
static void refuse(fx *f, size_t i, const char *addr, const char *rule)
{
    char text[160];
    snprintf(text, sizeof(text), "refused by SSRF guard: %s is %s", addr, rule);
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.error = HK_EFORBIDDEN;
    r.error_text = text;
    r.refused_addr = addr;
    r.refused_rule = rule;
    r.status_line = r.headers = r.body = r.request_head = "";
    fx_complete(f, i, &r);
}

/* Refuses the open request to host; HK_ENOTFOUND when there is none. */
static int refuse_next(fx *f, const char *host, const char *addr, const char *rule)
{
    long i = fx_find(f, host);
    if (i < 0)
        return HK_ENOTFOUND;
    refuse(f, (size_t)i, addr, rule);
    fx_settle(f);
    return 0;
}

static void test_a_refusal_is_logged_once_a_minute_per_webhook(void)
{
    hk_engine_opts o;
    fx_default_opts(&o);
    o.retry_schedule = "0s,10s,100s";
    o.disable_after = 100;
    fx *f = fx_open(&o);
    uint32_t a = fx_webhook(f, "http://intranet.test:8080/hook", false, "contact.created", NULL);
    uint32_t b = fx_webhook(f, "http://other.test/in", false, "order.placed", NULL);
    char ida[32], idb[32];
    snprintf(ida, sizeof(ida), "webhook %u:", a);
    snprintf(idb, sizeof(idb), "webhook %u:", b);

    capture_start();
    CHECK_INT(fx_signal(f, "contact.created", 1), 0);
    CHECK_INT(refuse_next(f, "intranet.test", "10.1.2.3", "private (RFC 1918)"), 0);
    /* Another webhook's refusal has its own line at once. */
    CHECK_INT(fx_signal(f, "order.placed", 2), 0);
    CHECK_INT(refuse_next(f, "other.test", "127.0.0.1", "loopback"), 0);
    /* The retries ten seconds later, within the minute: refused again, no new line. */
    fx_advance(f, 10000);
    CHECK_INT(refuse_next(f, "intranet.test", "10.1.2.3", "private (RFC 1918)"), 0);
    CHECK_INT(refuse_next(f, "other.test", "127.0.0.1", "loopback"), 0);
    char *log1 = capture_take();
    CHECK_INT(
        count_lines(log1, "warn", ida, "intranet.test", "10.1.2.3", "private (RFC 1918)", "by the SSRF guard", NULL),
        1);
    CHECK_INT(count_lines(log1, "warn", idb, "other.test", "127.0.0.1", "loopback", "by the SSRF guard", NULL), 1);
    CHECK_INT(count_lines(log1, "by the SSRF guard", NULL), 2);

    /* A minute and more after the first line: the next refusals are logged again. */
    capture_start();
    fx_advance(f, 100000);
    CHECK_INT(refuse_next(f, "intranet.test", "10.1.2.3", "private (RFC 1918)"), 0);
    CHECK_INT(refuse_next(f, "other.test", "127.0.0.1", "loopback"), 0);
    char *log2 = capture_take();
    CHECK_INT(count_lines(log2, "warn", ida, "intranet.test", "10.1.2.3", NULL), 1);
    CHECK_INT(count_lines(log2, "warn", idb, "other.test", "127.0.0.1", NULL), 1);
    CHECK_INT(count_lines(log2, "by the SSRF guard", NULL), 2);
    CHECK_INT(fx_open_requests(f), 0);

    /* Other failures are not SSRF refusals: no such line. */
    capture_start();
    CHECK_INT(fx_signal(f, "order.placed", 3), 0);
    long i = fx_find(f, "other.test");
    CHECK(i >= 0);
    if (i >= 0)
        fx_fail(f, (size_t)i);
    fx_settle(f);
    char *log3 = capture_take();
    CHECK_INT(count_lines(log3, "by the SSRF guard", NULL), 0);
    free(log1);
    free(log2);
    free(log3);
    fx_close(f);
}

int main(void)
{
    hk_log_set_level(HK_LOG_WARN);
    test_a_refusal_is_logged_once_a_minute_per_webhook();
    return unit_done();
}
