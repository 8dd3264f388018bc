/* test_url.c: the one URL parser for save and send: what it accepts, what it refuses and why. */
#include "unit.h"
#include "url.h"

struct good {
    const char *url;
    bool tls;
    enum hk_url_host_kind kind;
    const char *host;
    unsigned port;
    const char *target;
    const char *authority;
};

static const struct good goods[] = {
    {"http://example.com", false, HK_URL_HOST_NAME, "example.com", 80, "", "example.com"},
    {"https://Example.COM/Hook?a=1", true, HK_URL_HOST_NAME, "example.com", 443, "/Hook?a=1", "example.com"},
    {"HTTPS://example.com:8443/x", true, HK_URL_HOST_NAME, "example.com", 8443, "/x", "example.com:8443"},
    {"http://example.com:80/", false, HK_URL_HOST_NAME, "example.com", 80, "/", "example.com"},
    {"http://example.com:443/", false, HK_URL_HOST_NAME, "example.com", 443, "/", "example.com:443"},
    {"http://a-b_c.example./p", false, HK_URL_HOST_NAME, "a-b_c.example.", 80, "/p", "a-b_c.example."},
    {"http://example.com?q=1", false, HK_URL_HOST_NAME, "example.com", 80, "?q=1", "example.com"},
    {"http://example.com/p#frag", false, HK_URL_HOST_NAME, "example.com", 80, "/p", "example.com"},
    {"http://example.com#frag", false, HK_URL_HOST_NAME, "example.com", 80, "", "example.com"},
    {"http://127.0.0.1:8080/hook", false, HK_URL_HOST_IPV4, "127.0.0.1", 8080, "/hook", "127.0.0.1:8080"},
    {"http://93.184.216.34", false, HK_URL_HOST_IPV4, "93.184.216.34", 80, "", "93.184.216.34"},
    {"http://[::1]:9000/", false, HK_URL_HOST_IPV6, "::1", 9000, "/", "[::1]:9000"},
    {"https://[2001:DB8::1]/", true, HK_URL_HOST_IPV6, "2001:db8::1", 443, "/", "[2001:db8::1]"},
    {"http://[::ffff:127.0.0.1]/", false, HK_URL_HOST_IPV6, "::ffff:127.0.0.1", 80, "/", "[::ffff:127.0.0.1]"},
    {"http://1.example/x", false, HK_URL_HOST_NAME, "1.example", 80, "/x", "1.example"},
    {"http://x.0xzz/", false, HK_URL_HOST_NAME, "x.0xzz", 80, "/", "x.0xzz"},
    {"http://h:65535/", false, HK_URL_HOST_NAME, "h", 65535, "/", "h:65535"},
    {"http://h/caf\xc3\xa9?x=%20", false, HK_URL_HOST_NAME, "h", 80, "/caf\xc3\xa9?x=%20", "h"},
};

struct bad {
    const char *url;
    const char *why; /* a word of the reason */
};

static const struct bad bads[] = {
    {"ftp://example.com/", "http"},
    {"example.com", "http"},
    {"http:/example.com", "http"},
    {"//example.com", "http"},
    {"", "http"},
    {"http://", "no host"},
    {"http:///x", "no host"},
    {"http://:80/", "no host"},
    {"http://user:pw@example.com/", "passwords"},
    {"http://user@example.com/", "passwords"},
    {"http://u:p@127.0.0.1/", "passwords"},
    {"http://127.0.0.1%2e/", "percent"},
    {"http://ex%61mple.com/", "percent"},
    {"http://[fe80::1%25eth0]/", "zone"},
    {"http://127.1/", "dotted-quad"},
    {"http://0x7f.0.0.1/", "dotted-quad"},
    {"http://0x7f000001/", "dotted-quad"},
    {"http://2130706433/", "dotted-quad"},
    {"http://127.0.0.1./", "dotted-quad"},
    {"http://1.2.3.4.5/", "dotted-quad"},
    {"http://127.000.000.001/", "dotted-quad"},
    {"http://a..b/", "empty label"},
    {"http://.a/", "empty label"},
    {"http://a b/", "space"},
    {"http://example.com/a b", "space"},
    {"http://example.com/a\tb", "control"},
    {"http://example.com/\r\nX-Injected: 1", "control"},
    {"http://example.com/\x7f", "control"},
    {"http://example.com/#a b", "space"},
    {"http://exa$mple.com/", "not allowed"},
    {"http://ex\\ample.com/", "not allowed"},
    {"http://[::1/", "bracket"},
    {"http://[zz]/", "IPv6"},
    {"http://[]/", "IPv6"},
    {"http://[::1]x/", "IPv6"},
    {"http://127.0.0.1:0/", "port"},
    {"http://127.0.0.1:65536/", "port"},
    {"http://127.0.0.1:8x/", "port"},
    {"http://127.0.0.1:/", "empty port"},
    {"http://127.0.0.1:000080/", "port"},
    {"http://127.0.0.1:-1/", "port"},
    {"http://127.0.0.1:1:2/", "port"},
    {"http://a.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/", "63"},
};

static void test_good(void)
{
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        const struct good *g = &goods[i];
        hk_url u;
        const char *why = NULL;
        int rc = hk_url_parse(g->url, &u, &why);
        if (rc != 0)
            fprintf(stderr, "%s refused: %s\n", g->url, why ? why : "?");
        CHECK_INT(rc, 0);
        if (rc != 0)
            continue;
        CHECK(u.tls == g->tls);
        CHECK_INT(u.host_kind, g->kind);
        CHECK_STR(u.host, g->host);
        CHECK_INT(u.port, g->port);
        char target[256];
        snprintf(target, sizeof(target), "%.*s", (int)u.target_len, u.target);
        CHECK_STR(target, g->target);
        char auth[300];
        hk_url_authority(&u, auth, sizeof(auth));
        CHECK_STR(auth, g->authority);
    }
}

static void test_bad(void)
{
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        hk_url u;
        const char *why = NULL;
        int rc = hk_url_parse(bads[i].url, &u, &why);
        if (rc != HK_EINVAL)
            fprintf(stderr, "%s accepted\n", bads[i].url);
        CHECK_INT(rc, HK_EINVAL);
        CHECK(why != NULL);
        if (why != NULL && strstr(why, bads[i].why) == NULL) {
            fprintf(stderr, "%s: reason \"%s\" lacks \"%s\"\n", bads[i].url, why, bads[i].why);
            CHECK(strstr(why, bads[i].why) != NULL);
        }
    }
    hk_url u;
    CHECK_INT(hk_url_parse(NULL, &u, NULL), HK_EINVAL);
    CHECK_INT(hk_url_parse("http://a b/", &u, NULL), HK_EINVAL); /* why may be NULL */
}

static void test_limits(void)
{
    /* 253 bytes of host are fine, 254 are not. */
    char url[400], host[300];
    size_t n = 0;
    while (n < 253) {
        size_t label = 253 - n >= 64 ? 62 : 253 - n;
        memset(host + n, 'a', label);
        n += label;
        if (n < 253)
            host[n++] = '.';
    }
    host[n] = '\0';
    CHECK_INT(strlen(host), 253);
    hk_url u;
    snprintf(url, sizeof(url), "http://%s/", host);
    CHECK_INT(hk_url_parse(url, &u, NULL), 0);
    CHECK_STR(u.host, host);
    snprintf(url, sizeof(url), "http://%sb/", host);
    const char *why = NULL;
    CHECK_INT(hk_url_parse(url, &u, &why), HK_EINVAL);
    CHECK(why != NULL && strstr(why, "253") != NULL);
    /* The target points into the parsed string, up to the fragment. */
    const char *s = "http://h/a?b#c";
    CHECK_INT(hk_url_parse(s, &u, NULL), 0);
    CHECK(u.target == s + 8);
    CHECK_INT(u.target_len, 4);
    /* A small buffer cuts the authority like snprintf. */
    char small[5];
    CHECK_INT(hk_url_parse("http://example.com:81/", &u, NULL), 0);
    CHECK_INT(hk_url_authority(&u, small, sizeof(small)), 4);
    CHECK_STR(small, "exam");
}

int main(void)
{
    test_good();
    test_bad();
    test_limits();
    return unit_done();
}
