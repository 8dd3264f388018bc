/* Unit tests of the webhook rules: every field's limits, the target URL and its
 * SSRF check, secrets, headers against the delivery's header block, Properties,
 * and what an edit may change. */
#include <stdarg.h>

#include "unit.h"
#include "webhook_rules.h"

static const hk_wh_names names = {"Name",   "Description", "TargetUrl",  "Secret",      "State",
                                  "Events", "Headers",     "Properties", "ErrorsEmail", "Extension"};

static hk_ssrf *strict, *loopback_ok;

static void set(char **dst, const char *s)
{
    free(*dst);
    *dst = s ? hk_strdup(s) : NULL;
}

/* A valid webhook to start each case from. */
static void base(hk_webhook *w)
{
    hk_webhook_init(w);
    set(&w->name, "Orders");
    set(&w->url, "https://receiver.example.com/hooks/1");
    set(&w->secret, "s3cret");
}

static void add_pair(hk_pair **v, size_t *n, const char *name, const char *value)
{
    *v = hk_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[*n].name = hk_strdup(name);
    (*v)[*n].value = hk_strdup(value);
    (*n)++;
}

static void add_str(char ***v, size_t *n, const char *s)
{
    *v = hk_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = hk_strdup(s);
}

/* Checks w (and frees it); returns 0 or the status, with the field at fault and
 * the message. */
static int check(hk_webhook *w, const hk_webhook *old, const hk_ssrf *guard, char *field, char *msg)
{
    hk_wh_err err = {0};
    int rc = hk_webhook_check(w, old, &names, guard, &err);
    if (field != NULL)
        snprintf(field, 64, "%s", err.field);
    if (msg != NULL)
        snprintf(msg, 512, "%s", err.msg);
    if (rc != 0 && err.msg[0] == '\0')
        fprintf(stderr, "an error without a message\n");
    hk_webhook_free(w);
    return rc == 0 ? 0 : err.status;
}

static int url_case(const char *url, const hk_ssrf *guard, char *msg)
{
    hk_webhook w;
    base(&w);
    set(&w.url, url);
    char f[64];
    int st = check(&w, NULL, guard, f, msg);
    if (st != 0 && strcmp(f, "TargetUrl") != 0)
        fprintf(stderr, "%s: the error names %s\n", url, f);
    return st;
}

static void test_base_and_text(void)
{
    hk_webhook w;
    char f[64];
    base(&w);
    CHECK_INT(check(&w, NULL, strict, f, NULL), 0);

    /* Names count characters, not bytes. */
    base(&w);
    char name[200] = "";
    for (int i = 0; i < 64; i++)
        strcat(name, "\xc3\xa9");
    set(&w.name, name);
    CHECK_INT(check(&w, NULL, strict, f, NULL), 0);
    base(&w);
    strcat(name, "x");
    set(&w.name, name);
    CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
    CHECK_STR(f, "Name");

    base(&w);
    char *desc = hk_calloc(1, HK_WEBHOOK_DESC_MAX + 2);
    memset(desc, 'd', HK_WEBHOOK_DESC_MAX + 1);
    set(&w.description, desc);
    CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
    CHECK_STR(f, "Description");
    free(desc);
}

static void test_urls(void)
{
    char msg[512];
    static const char *const good[] = {
        "https://a.example/x", "http://[2606:4700::1111]:8080/x?y#z", "HTTP://A.EXAMPLE:65535",
        "http://a_b.example/", "http://93.184.216.34/hook",
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(good); i++) {
        int st = url_case(good[i], strict, msg);
        if (st != 0)
            fprintf(stderr, "%s: %s\n", good[i], msg);
        CHECK_INT(st, 0);
    }
    static const char *const bad[] = {
        "",
        "example.com",
        "ftp://a.example",
        "http://",
        "http://:80",
        "http://a b",
        "http://a.example:0/",
        "http://a.example:65536/",
        "http://a.example:/",
        "http://[]/",
        "https://a\xc3\xa9.example/",
        "/relative",
        "http://[zz::1]/",
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad); i++)
        CHECK_INT(url_case(bad[i], strict, msg), 400);

    /* What the delivery could never send: credentials, percent-encoding in the
     * host. */
    CHECK_INT(url_case("http://user@host.example:1/", strict, msg), 400);
    CHECK(strstr(msg, "user") != NULL);
    CHECK_INT(url_case("http://u:p@host.example/", strict, msg), 400);
    CHECK_INT(url_case("http://127.0.0.1%2e/", strict, msg), 400);
    CHECK(strstr(msg, "percent") != NULL);

    /* A literal address the SSRF guard refuses is refused at save, naming the URL
     * and the rule. */
    CHECK_INT(url_case("http://127.0.0.1:8080/hook", strict, msg), 400);
    CHECK(strstr(msg, "http://127.0.0.1:8080/hook") != NULL && strstr(msg, "loopback") != NULL);
    CHECK(strstr(msg, "allow_targets") != NULL);
    CHECK_INT(url_case("http://127.1/", strict, msg), 400);
    CHECK_INT(url_case("http://0x7f.0.0.1/", strict, msg), 400);
    CHECK_INT(url_case("http://2130706433/", strict, msg), 400);
    CHECK_INT(url_case("http://10.1.2.3/", strict, msg), 400);
    CHECK(strstr(msg, "10.1.2.3") != NULL);
    CHECK_INT(url_case("http://169.254.169.254/latest/meta-data", strict, msg), 400);
    CHECK_INT(url_case("https://[::1]/", strict, msg), 400);
    CHECK_INT(url_case("https://[::ffff:127.0.0.1]/", strict, msg), 400);
    CHECK_INT(url_case("http://[fd00::1]/", strict, msg), 400);
    /* ... unless the allowlist admits it; names are checked when a delivery
     * connects. */
    CHECK_INT(url_case("http://127.0.0.1:8080/hook", loopback_ok, msg), 0);
    CHECK_INT(url_case("http://10.1.2.3/", loopback_ok, msg), 400);
    CHECK_INT(url_case("http://localhost:8080/hook", strict, msg), 0);
    CHECK_INT(url_case("http://127.0.0.1/", NULL, msg), 0);

    char *longurl = hk_calloc(1, HK_WEBHOOK_URL_MAX + 16);
    strcpy(longurl, "https://a.example/");
    memset(longurl + strlen(longurl), 'x', HK_WEBHOOK_URL_MAX - strlen(longurl));
    CHECK_INT(url_case(longurl, strict, msg), 0);
    strcat(longurl, "x");
    CHECK_INT(url_case(longurl, strict, msg), 400);
    free(longurl);
}

static int secret_case(const char *secret, char *f)
{
    hk_webhook w;
    base(&w);
    set(&w.secret, secret);
    return check(&w, NULL, strict, f, NULL);
}

static void test_secrets(void)
{
    char f[64];
    CHECK_INT(secret_case("", f), 0);
    CHECK_INT(secret_case("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", f), 0);
    CHECK_INT(secret_case("whsec_YQ==", f), 0);
    static const char *const bad[] = {
        "whsec_abc!", "whsec_", "whsec_abc", "whsec_ab-_cd==", "whsec_YQ=a", "whsec_Y===", "whsec_YQ== "};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad); i++) {
        CHECK_INT(secret_case(bad[i], f), 400);
        CHECK_STR(f, "Secret");
    }
    char big[HK_WEBHOOK_SECRET_MAX + 2];
    memset(big, 's', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_INT(secret_case(big, f), 400);
    big[HK_WEBHOOK_SECRET_MAX] = '\0';
    CHECK_INT(secret_case(big, f), 0);
    CHECK_INT(secret_case("a\nb", f), 400);
}

static int headers_case(int n, size_t value_len, const char *name, const char *value)
{
    hk_webhook w;
    base(&w);
    char *v = hk_calloc(1, value_len + 1);
    memset(v, 'v', value_len);
    for (int i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof(k), "X-H%02d", i);
        add_pair(&w.headers, &w.nheaders, k, v);
    }
    free(v);
    if (name != NULL)
        add_pair(&w.headers, &w.nheaders, name, value);
    char f[64];
    int st = check(&w, NULL, strict, f, NULL);
    if (st != 0 && strcmp(f, "Headers") != 0)
        fprintf(stderr, "headers: the error names %s\n", f);
    return st;
}

static void test_headers(void)
{
    CHECK_INT(headers_case(0, 0, "X-Tenant", "acme"), 0);
    static const char *const reserved[] = {"Content-Type",
                                           "content-length",
                                           "Content-Language",
                                           "Host",
                                           "X-SuperOffice-Signature",
                                           "x-superoffice-anything",
                                           "webhook-signature",
                                           "Webhook-Id",
                                           "User-Agent",
                                           "Transfer-Encoding",
                                           "Connection",
                                           "Proxy-Connection"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(reserved); i++)
        CHECK_INT(headers_case(0, 0, reserved[i], "x"), 400);
    CHECK_INT(headers_case(0, 0, "Bad Name", "x"), 400);
    CHECK_INT(headers_case(0, 0, "", "x"), 400);
    CHECK_INT(headers_case(0, 0, "X-Ok", "a\r\nb"), 400);
    CHECK_INT(headers_case(0, HK_WEBHOOK_HEADER_VALUE_MAX + 1, NULL, NULL), 0); /* n = 0: nothing added */
    CHECK_INT(headers_case(1, HK_WEBHOOK_HEADER_VALUE_MAX + 1, NULL, NULL), 400);
    CHECK_INT(headers_case(HK_WEBHOOK_HEADERS_MAX, 10, NULL, NULL), 0);
    CHECK_INT(headers_case(HK_WEBHOOK_HEADERS_MAX + 1, 10, NULL, NULL), 400);
    /* The total must fit the delivery's header block: 32 values of 1 KiB used to
     * be saved and then dropped. */
    CHECK_INT(headers_case(6, 1000, NULL, NULL), 0);
    CHECK_INT(headers_case(8, 1000, NULL, NULL), 400);
    CHECK_INT(headers_case(HK_WEBHOOK_HEADERS_MAX, HK_WEBHOOK_HEADER_VALUE_MAX, NULL, NULL), 400);
    hk_webhook w;
    base(&w);
    char *v = hk_calloc(1, 1001);
    memset(v, 'v', 1000);
    for (int i = 0; i < 8; i++) {
        char k[16];
        snprintf(k, sizeof(k), "X-%d", i);
        add_pair(&w.headers, &w.nheaders, k, v);
    }
    free(v);
    char msg[512];
    CHECK_INT(check(&w, NULL, strict, NULL, msg), 400);
    CHECK(strstr(msg, "Headers") != NULL && strstr(msg, "7168") != NULL);
}

static void test_properties_notify_extension_events(void)
{
    hk_webhook w;
    char f[64], msg[512];
    base(&w);
    for (int i = 0; i < HK_WEBHOOK_PROPERTIES_MAX; i++) {
        char k[16];
        snprintf(k, sizeof(k), "p%d", i);
        add_pair(&w.properties, &w.nproperties, k, "1");
    }
    hk_webhook old;
    hk_webhook_copy(&old, &w);
    CHECK_INT(check(&w, NULL, strict, f, NULL), 0);
    hk_webhook_copy(&w, &old);
    add_pair(&w.properties, &w.nproperties, "one-too-many", "{\"a\":1}");
    CHECK_INT(check(&w, NULL, strict, f, msg), 400);
    CHECK_STR(f, "Properties");
    CHECK(strstr(msg, "one-too-many") != NULL && strstr(msg, "32") != NULL);
    hk_webhook_free(&old);

    base(&w);
    add_str(&w.notify, &w.nnotify, "ops@example.com");
    add_str(&w.notify, &w.nnotify, "a@b.co");
    CHECK_INT(check(&w, NULL, strict, f, NULL), 0);
    static const char *const bad_addr[] = {"a@b", "a@-b.com", "nobody", "x@", "@b.com", "a b@c.de", "a@b_c.de"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_addr); i++) {
        base(&w);
        add_str(&w.notify, &w.nnotify, bad_addr[i]);
        CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
        CHECK_STR(f, "ErrorsEmail");
    }
    base(&w);
    for (int i = 0; i <= HK_WEBHOOK_NOTIFY_MAX; i++)
        add_str(&w.notify, &w.nnotify, "ops@example.com");
    CHECK_INT(check(&w, NULL, strict, f, NULL), 400);

    static const char *const bad_ext[] = {"", "has space", "tab\there"};
    for (size_t i = 0; i < HK_ARRAY_SIZE(bad_ext); i++) {
        base(&w);
        set(&w.extension, bad_ext[i]);
        CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
        CHECK_STR(f, "Extension");
    }
    base(&w);
    set(&w.extension, "MyHook");
    CHECK_INT(check(&w, NULL, strict, f, NULL), 0);

    base(&w);
    add_str(&w.events, &w.nevents, "contact.created");
    add_str(&w.events, &w.nevents, "has space");
    CHECK_INT(check(&w, NULL, strict, f, msg), 400);
    CHECK_STR(f, "Events");
    CHECK(strstr(msg, "Events[1]") != NULL);
    base(&w);
    for (int i = 0; i <= HK_WEBHOOK_EVENTS_MAX; i++) {
        char e[16];
        snprintf(e, sizeof(e), "e.%d", i);
        add_str(&w.events, &w.nevents, e);
    }
    CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
}

static void test_changes(void)
{
    hk_webhook w, old;
    char f[64];
    /* Only the server sets TooManyErrors. */
    base(&w);
    w.state = HK_WH_TOO_MANY_ERRORS;
    CHECK_INT(check(&w, NULL, strict, f, NULL), 400);
    CHECK_STR(f, "State");
    base(&old);
    base(&w);
    w.state = HK_WH_TOO_MANY_ERRORS;
    CHECK_INT(check(&w, &old, strict, f, NULL), 400);
    old.state = HK_WH_TOO_MANY_ERRORS;
    base(&w);
    w.state = HK_WH_TOO_MANY_ERRORS;
    CHECK_INT(check(&w, &old, strict, f, NULL), 0);
    hk_webhook_free(&old);

    /* Fields an edit leaves alone are not checked again: a target saved while the
     * allowlist admitted it, or Properties saved before their limit, do not block
     * renaming the webhook. */
    base(&old);
    set(&old.url, "http://127.0.0.1:9/hook");
    for (int i = 0; i < HK_WEBHOOK_PROPERTIES_MAX + 8; i++) {
        char k[16];
        snprintf(k, sizeof(k), "p%d", i);
        add_pair(&old.properties, &old.nproperties, k, "1");
    }
    hk_webhook_copy(&w, &old);
    set(&w.name, "renamed");
    CHECK_INT(check(&w, &old, strict, f, NULL), 0);
    hk_webhook_copy(&w, &old);
    set(&w.url, "http://127.0.0.1:10/hook");
    CHECK_INT(check(&w, &old, strict, f, NULL), 400);
    CHECK_STR(f, "TargetUrl");
    hk_webhook_copy(&w, &old);
    set(&w.properties[0].value, "2");
    CHECK_INT(check(&w, &old, strict, f, NULL), 400);
    CHECK_STR(f, "Properties");
    hk_webhook_free(&old);
}

int main(void)
{
    char err[128];
    if (hk_ssrf_create(&strict, "", err, sizeof(err)) != 0 ||
        hk_ssrf_create(&loopback_ok, "127.0.0.1/32,::1/128", err, sizeof(err)) != 0) {
        fprintf(stderr, "guard: %s\n", err);
        return 1;
    }
    test_base_and_text();
    test_urls();
    test_secrets();
    test_headers();
    test_properties_notify_extension_events();
    test_changes();
    CHECK(hk_email_ok("ops@example.com"));
    CHECK(hk_header_reserved("CONTENT-ENCODING") && !hk_header_reserved("X-Tenant"));
    hk_ssrf_free(strict);
    hk_ssrf_free(loopback_ok);
    return unit_done();
}
