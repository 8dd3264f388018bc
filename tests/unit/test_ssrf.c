/* test_ssrf.c: the SSRF guard's ranges, embedded-IPv4 forms and allowlist. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ssrf.h"
#include "unit.h"

struct ssrf_case {
    const char *allow; /* allowlist ("" none) */
    const char *addr;
    bool allowed;
    const char *why; /* expected reason when refused (substring) */
};

static const struct ssrf_case cases[] = {
    /* IPv4: every refused range, at both ends where it matters. */
    {"", "0.0.0.0", false, "0.0.0.0 is in 0.0.0.0/8"},
    {"", "0.255.255.255", false, "this network"},
    {"", "10.0.0.1", false, "10.0.0.1 is private (RFC 1918)"},
    {"", "10.255.255.255", false, "private"},
    {"", "100.64.0.1", false, "100.64.0.1 is carrier-grade NAT"},
    {"", "100.127.255.254", false, "carrier-grade NAT"},
    {"", "100.63.255.255", true, NULL},
    {"", "100.128.0.0", true, NULL},
    {"", "127.0.0.1", false, "127.0.0.1 is loopback"},
    {"", "127.255.255.254", false, "loopback"},
    {"", "169.254.169.254", false, "169.254.169.254 is link-local"},
    {"", "172.16.0.1", false, "private"},
    {"", "172.31.255.255", false, "private"},
    {"", "172.15.255.255", true, NULL},
    {"", "172.32.0.0", true, NULL},
    {"", "192.0.0.8", false, "192.0.0.0/24"},
    {"", "192.0.2.10", false, "documentation"},
    {"", "192.168.1.1", false, "private"},
    {"", "198.18.0.1", false, "benchmarking"},
    {"", "198.19.255.255", false, "benchmarking"},
    {"", "198.20.0.0", true, NULL},
    {"", "198.51.100.7", false, "documentation"},
    {"", "203.0.113.9", false, "documentation"},
    {"", "224.0.0.1", false, "multicast"},
    {"", "239.255.255.255", false, "multicast"},
    {"", "240.0.0.1", false, "reserved"},
    {"", "255.255.255.254", false, "reserved"},
    {"", "255.255.255.255", false, "255.255.255.255 is broadcast"},
    {"", "8.8.8.8", true, NULL},
    {"", "93.184.216.34", true, NULL},
    {"", "192.0.3.1", true, NULL},
    /* IPv6 ranges. */
    {"", "::", false, ":: is unspecified"},
    {"", "::1", false, "::1 is loopback"},
    {"", "fc00::1", false, "unique local"},
    {"", "fd12:3456::1", false, "unique local"},
    {"", "fe80::1", false, "link-local"},
    {"", "febf::1", false, "link-local"},
    {"", "fec0::1", false, "fec0::1 is site-local (fec0::/10)"},
    {"", "feff:ffff::1", false, "site-local"},
    {"", "ff00::", false, "multicast"},
    {"", "ff02::1", false, "multicast"},
    {"", "2001:db8::1", false, "documentation"},
    /* Teredo (2001::/32): refused whole, whatever IPv4 address it hides. */
    {"", "2001:0:4136:e378:8000:63bf:3fff:fdd2", false, "is Teredo (2001::/32)"},
    {"", "2001::1", false, "Teredo"},
    {"", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff", false, "Teredo"},
    {"", "2001:1::1", true, NULL},
    /* Local-use NAT64 (64:ff9b:1::/48): the operator picks what it reaches. */
    {"", "64:ff9b:1::a00:1", false, "64:ff9b:1::a00:1 is local-use NAT64 (64:ff9b:1::/48)"},
    {"", "64:ff9b:1:ffff::808:808", false, "local-use NAT64"},
    {"", "64:ff9b:2::808:808", true, NULL},
    {"", "2001:4860:4860::8888", true, NULL},
    {"", "2606:4700::1111", true, NULL},
    /* IPv6 forms judged by their embedded IPv4 address. */
    {"", "::ffff:127.0.0.1", false, "::ffff:127.0.0.1 is loopback (IPv4-mapped 127.0.0.1)"},
    {"", "::ffff:10.1.2.3", false, "private"},
    {"", "::ffff:8.8.8.8", true, NULL},
    {"", "::127.0.0.1", false, "loopback (IPv4-compatible 127.0.0.1)"},
    {"", "::169.254.1.1", false, "link-local"},
    {"", "::ffff:0:192.168.0.1", false, "(IPv4-translated 192.168.0.1)"},
    {"", "64:ff9b::7f00:1", false, "loopback (NAT64 127.0.0.1)"},
    {"", "64:ff9b::a9fe:a9fe", false, "link-local"},
    {"", "64:ff9b::808:808", true, NULL},
    {"", "2002:7f00:1::", false, "loopback (6to4 127.0.0.1)"},
    {"", "2002:c0a8:101::1", false, "(6to4 192.168.1.1)"},
    {"", "2002:808:808::1", true, NULL},
    /* Allowlist. */
    {"127.0.0.1/32,::1/128", "127.0.0.1", true, NULL},
    {"127.0.0.1/32,::1/128", "127.0.0.2", false, "loopback"},
    {"127.0.0.1/32,::1/128", "::1", true, NULL},
    {"127.0.0.1/32,::1/128", "::ffff:127.0.0.1", true, NULL},
    {"127.0.0.1", "127.0.0.1", true, NULL},
    {"127.0.0.1", "127.0.0.2", false, "loopback"},
    {" 10.0.0.0/8 , 192.168.0.0/16 ", "10.20.30.40", true, NULL},
    {" 10.0.0.0/8 , 192.168.0.0/16 ", "192.168.200.1", true, NULL},
    {" 10.0.0.0/8 , 192.168.0.0/16 ", "172.16.0.1", false, "private"},
    {"172.16.0.0/12", "172.31.1.1", true, NULL},
    {"172.16.0.0/12", "172.32.0.1", true, NULL},
    {"172.16.0.0/12", "172.15.0.1", true, NULL},
    {"10.1.2.0/23", "10.1.3.255", true, NULL},
    {"10.1.2.0/23", "10.1.4.0", false, "private"},
    {"fd00::/8", "fd00::5", true, NULL},
    {"fd00::/8", "fc00::5", false, "unique local"},
    {"[fe80::1]", "fe80::1", true, NULL},
    {"fe80::1", "fe80::2", false, "link-local"},
    {"0.0.0.0/0", "169.254.169.254", true, NULL},
    {"::/0", "ff02::1", true, NULL},
    {"::/0", "127.0.0.1", true, NULL}, /* IPv4 addresses live in ::ffff:0:0/96 */
    {"100.64.0.0/10", "64:ff9b::6440:1", true, NULL},
    {"2001::/32", "2001:0:4136:e378:8000:63bf:3fff:fdd2", true, NULL},
    {"fec0::/10", "fec0::1", true, NULL},
};

static void sockaddr_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
    } else if (inet_pton(AF_INET6, text, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
    } else {
        fprintf(stderr, "bad test address %s\n", text);
        abort();
    }
}

static void test_table(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct ssrf_case *t = &cases[i];
        hk_ssrf *g = NULL;
        char err[128] = "";
        int rc = hk_ssrf_create(&g, t->allow, err, sizeof(err));
        CHECK_INT(rc, 0);
        if (rc != 0)
            continue;
        struct sockaddr_storage ss;
        sockaddr_of(t->addr, &ss);
        char why[160] = "";
        bool ok = hk_ssrf_allowed(g, (struct sockaddr *)&ss, why, sizeof(why));
        if (ok != t->allowed)
            fprintf(stderr, "case %zu: allow=\"%s\" addr=%s: got %s (%s)\n", i, t->allow, t->addr,
                    ok ? "allowed" : "refused", why);
        CHECK(ok == t->allowed);
        if (!ok && t->why != NULL && strstr(why, t->why) == NULL) {
            fprintf(stderr, "case %zu: reason \"%s\" lacks \"%s\"\n", i, why, t->why);
            CHECK(strstr(why, t->why) != NULL);
        }
        hk_ssrf_free(g);
    }
}

static void test_parse_errors(void)
{
    static const struct {
        const char *allow;
        const char *named;
    } bad[] = {
        {"127.0.0.1/33", "127.0.0.1/33"},     {"::1/129", "::1/129"},           {"127.0.0.1/32,localhost", "localhost"},
        {"10.0.0.0/8, 10.0.0/8", "10.0.0/8"}, {"1.2.3.4/", "1.2.3.4/"},         {"1.2.3.4/x", "1.2.3.4/x"},
        {"1.2.3.4/-1", "1.2.3.4/-1"},         {"fe80::1%eth0", "fe80::1%eth0"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hk_ssrf *g = (hk_ssrf *)1;
        char err[160] = "";
        int rc = hk_ssrf_create(&g, bad[i].allow, err, sizeof(err));
        CHECK_INT(rc, HK_EINVAL);
        CHECK(g == NULL);
        if (strstr(err, bad[i].named) == NULL)
            fprintf(stderr, "error \"%s\" does not name \"%s\"\n", err, bad[i].named);
        CHECK(strstr(err, bad[i].named) != NULL);
    }
    /* Empty lists and empty entries are fine. */
    hk_ssrf *g = NULL;
    CHECK_INT(hk_ssrf_create(&g, "", NULL, 0), 0);
    hk_ssrf_free(g);
    CHECK_INT(hk_ssrf_create(&g, NULL, NULL, 0), 0);
    hk_ssrf_free(g);
    CHECK_INT(hk_ssrf_create(&g, " , ,127.0.0.1,", NULL, 0), 0);
    hk_ssrf_free(g);
    hk_ssrf_free(NULL);
}

static void test_null_guard(void)
{
    /* A NULL guard allows nothing extra (used before a config is loaded). */
    struct sockaddr_storage ss;
    char why[128];
    sockaddr_of("127.0.0.1", &ss);
    CHECK(!hk_ssrf_allowed(NULL, (struct sockaddr *)&ss, why, sizeof(why)));
    sockaddr_of("1.1.1.1", &ss);
    CHECK(hk_ssrf_allowed(NULL, (struct sockaddr *)&ss, why, sizeof(why)));
}

/* The refusal names the address and the rule apart, for a log line "refused address A by rule R". */
static void test_refusal_fields(void)
{
    hk_ssrf *g = NULL;
    CHECK_INT(hk_ssrf_create(&g, "", NULL, 0), 0);
    struct sockaddr_storage ss;
    hk_ssrf_refusal r;
    sockaddr_of("10.1.2.3", &ss);
    CHECK_INT(hk_ssrf_check(g, (struct sockaddr *)&ss, &r), HK_EFORBIDDEN);
    CHECK_STR(r.addr, "10.1.2.3");
    CHECK_STR(r.rule, "private (RFC 1918)");
    sockaddr_of("::ffff:127.0.0.1", &ss);
    CHECK_INT(hk_ssrf_check(g, (struct sockaddr *)&ss, &r), HK_EFORBIDDEN);
    CHECK_STR(r.addr, "::ffff:127.0.0.1");
    CHECK_STR(r.rule, "loopback (IPv4-mapped 127.0.0.1)");
    sockaddr_of("8.8.8.8", &ss);
    CHECK_INT(hk_ssrf_check(g, (struct sockaddr *)&ss, &r), 0);
    CHECK_INT(hk_ssrf_check(g, (struct sockaddr *)&ss, NULL), 0);
    sockaddr_of("127.0.0.1", &ss);
    CHECK_INT(hk_ssrf_check(g, (struct sockaddr *)&ss, NULL), HK_EFORBIDDEN);
    struct sockaddr unix_sa = {.sa_family = AF_UNIX};
    CHECK_INT(hk_ssrf_check(g, &unix_sa, &r), HK_EFORBIDDEN);
    CHECK_STR(r.addr, "");
    CHECK(strstr(r.rule, "not IP") != NULL);
    hk_ssrf_free(g);
}

/* A URL's host judged at save: literals by their range, names left for connect time. */
static void test_check_host(void)
{
    hk_ssrf *g = NULL;
    CHECK_INT(hk_ssrf_create(&g, "127.0.0.1/32", NULL, 0), 0);
    hk_ssrf_refusal r;
    CHECK_INT(hk_ssrf_check_host(g, "169.254.169.254", &r), HK_EFORBIDDEN);
    CHECK_STR(r.addr, "169.254.169.254");
    CHECK_STR(r.rule, "link-local");
    CHECK_INT(hk_ssrf_check_host(g, "fec0::1", &r), HK_EFORBIDDEN);
    CHECK_STR(r.rule, "site-local (fec0::/10)");
    CHECK_INT(hk_ssrf_check_host(g, "::1", &r), HK_EFORBIDDEN);
    CHECK_STR(r.rule, "loopback");
    CHECK_INT(hk_ssrf_check_host(g, "127.0.0.1", &r), 0); /* the allowlist admits it */
    CHECK_INT(hk_ssrf_check_host(g, "127.0.0.2", &r), HK_EFORBIDDEN);
    CHECK_INT(hk_ssrf_check_host(g, "93.184.216.34", &r), 0);
    CHECK_INT(hk_ssrf_check_host(g, "2606:4700::1111", &r), 0);
    CHECK_INT(hk_ssrf_check_host(g, "localhost", &r), 0); /* a name: judged when resolved */
    CHECK_INT(hk_ssrf_check_host(g, "example.com", &r), 0);
    hk_ssrf_free(g);
}

int main(void)
{
    test_table();
    test_refusal_fields();
    test_check_host();
    test_parse_errors();
    test_null_guard();
    return unit_done();
}
