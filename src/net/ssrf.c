/*
 * ssrf.c: the address guard of outbound requests.
 *
 * Every address is judged in its 16-byte form: IPv4 addresses become
 * IPv4-mapped IPv6 addresses, so one table of refused prefixes covers both
 * families. IPv6 forms that carry an IPv4 address (mapped, compatible,
 * SIIT-translated, NAT64 and 6to4) are judged by that embedded address as
 * well, because a translator on the path would deliver to it.
 */
#include "ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

#define MAX_ENTRY_LEN 64

/* One allowlist CIDR in 16-byte form (IPv4 entries are mapped, prefix + 96). */
struct cidr {
    uint8_t addr[16];
    unsigned prefix;
};

struct hk_ssrf {
    struct cidr *allow;
    size_t nallow;
};

/* A refused IPv4 range; the first that matches names the reason. */
struct range4 {
    uint32_t net;
    unsigned prefix;
    const char *what;
};

static const struct range4 refused4[] = {
    {0x00000000u, 8, "in 0.0.0.0/8 (this network)"},
    {0x0A000000u, 8, "private (RFC 1918)"},
    {0x64400000u, 10, "carrier-grade NAT (100.64.0.0/10)"},
    {0x7F000000u, 8, "loopback"},
    {0xA9FE0000u, 16, "link-local"},
    {0xAC100000u, 12, "private (RFC 1918)"},
    {0xC0000000u, 24, "IETF protocol assignments (192.0.0.0/24)"},
    {0xC0000200u, 24, "documentation (192.0.2.0/24)"},
    {0xC0A80000u, 16, "private (RFC 1918)"},
    {0xC6120000u, 15, "benchmarking (198.18.0.0/15)"},
    {0xC6336400u, 24, "documentation (198.51.100.0/24)"},
    {0xCB007100u, 24, "documentation (203.0.113.0/24)"},
    {0xE0000000u, 4, "multicast"},
    {0xFFFFFFFFu, 32, "broadcast"},
    {0xF0000000u, 4, "reserved (240.0.0.0/4)"},
};

/* A refused IPv6 prefix that is not judged through an embedded IPv4 address. */
struct range6 {
    uint8_t net[16];
    unsigned prefix;
    const char *what;
};

static const struct range6 refused6[] = {
    {{0}, 128, "unspecified"},
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128, "loopback"},
    {{0xfc}, 7, "unique local (fc00::/7)"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local (fec0::/10)"},
    {{0xff}, 8, "multicast"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation (2001:db8::/32)"},
    /* Teredo tunnels to the IPv4 address it carries (obfuscated): refused whole. */
    {{0x20, 0x01, 0x00, 0x00}, 32, "Teredo (2001::/32)"},
    /* Local-use NAT64 (RFC 8215) translates to addresses of the operator's choice. */
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01}, 48, "local-use NAT64 (64:ff9b:1::/48)"},
};

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static const char *judge4(uint32_t a)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(refused4); i++) {
        uint32_t mask = refused4[i].prefix == 0 ? 0 : 0xFFFFFFFFu << (32 - refused4[i].prefix);
        if ((a & mask) == refused4[i].net)
            return refused4[i].what;
    }
    return NULL;
}

/*
 * Finds the IPv4 address an IPv6 address carries, if any: ::ffff:a.b.c.d
 * (mapped), ::a.b.c.d (compatible, deprecated), ::ffff:0:a.b.c.d (SIIT),
 * 64:ff9b::a.b.c.d (NAT64) and 2002:AABB:CCDD::/48 (6to4). Returns the form's name.
 */
static const char *embedded4(const uint8_t *a, uint32_t *v4)
{
    static const uint8_t zero[12] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t *p = NULL;
    const char *form = NULL;
    if (memcmp(a, mapped, 12) == 0)
        p = a + 12, form = "IPv4-mapped";
    else if (memcmp(a, siit, 12) == 0)
        p = a + 12, form = "IPv4-translated";
    else if (memcmp(a, nat64, 12) == 0)
        p = a + 12, form = "NAT64";
    else if (memcmp(a, zero, 12) == 0)
        p = a + 12, form = "IPv4-compatible"; /* :: and ::1 are caught before this is asked */
    else if (a[0] == 0x20 && a[1] == 0x02)
        p = a + 2, form = "6to4";
    if (p == NULL)
        return NULL;
    *v4 = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return form;
}

static void to16(const struct sockaddr *sa, uint8_t *out)
{
    if (sa->sa_family == AF_INET) {
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(out, mapped, 12);
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static bool allowlisted(const hk_ssrf *g, const uint8_t *a)
{
    for (size_t i = 0; g != NULL && i < g->nallow; i++)
        if (prefix_match(a, g->allow[i].addr, g->allow[i].prefix))
            return true;
    return false;
}

static int refuse(hk_ssrf_refusal *why, const char *addr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(hk_ssrf_refusal *why, const char *addr, const char *fmt, ...)
{
    if (why != NULL) {
        snprintf(why->addr, sizeof(why->addr), "%s", addr);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->rule, sizeof(why->rule), fmt, ap);
        va_end(ap);
    }
    return HK_EFORBIDDEN;
}

int hk_ssrf_check(const hk_ssrf *g, const struct sockaddr *sa, hk_ssrf_refusal *why)
{
    char text[INET6_ADDRSTRLEN];
    uint8_t a[16];
    if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
        return refuse(why, "", "address family %d is not IP", sa->sa_family);
    to16(sa, a);
    if (allowlisted(g, a))
        return 0;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, text, sizeof(text));
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, text, sizeof(text));

    if (sa->sa_family == AF_INET6) {
        for (size_t i = 0; i < HK_ARRAY_SIZE(refused6); i++)
            if (prefix_match(a, refused6[i].net, refused6[i].prefix))
                return refuse(why, text, "%s", refused6[i].what);
    }
    uint32_t v4;
    const char *form = embedded4(a, &v4);
    if (form == NULL)
        return 0; /* a global IPv6 address */
    /* An allowlisted IPv4 address stays allowed in its IPv6 spellings. */
    uint8_t m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    m[12] = (uint8_t)(v4 >> 24), m[13] = (uint8_t)(v4 >> 16), m[14] = (uint8_t)(v4 >> 8), m[15] = (uint8_t)v4;
    if (allowlisted(g, m))
        return 0;
    const char *what = judge4(v4);
    if (what == NULL)
        return 0;
    if (sa->sa_family == AF_INET)
        return refuse(why, text, "%s", what);
    char inner[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, m + 12, inner, sizeof(inner));
    return refuse(why, text, "%s (%s %s)", what, form, inner);
}

int hk_ssrf_check_host(const hk_ssrf *g, const char *host, hk_ssrf_refusal *why)
{
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET, host, &v4.sin_addr) == 1)
        return hk_ssrf_check(g, (const struct sockaddr *)&v4, why);
    if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1)
        return hk_ssrf_check(g, (const struct sockaddr *)&v6, why);
    return 0;
}

bool hk_ssrf_allowed(const hk_ssrf *g, const struct sockaddr *sa, char *why, size_t whylen)
{
    hk_ssrf_refusal r;
    if (hk_ssrf_check(g, sa, &r) == 0)
        return true;
    if (r.addr[0] != '\0')
        snprintf(why, whylen, "%s is %s", r.addr, r.rule);
    else
        snprintf(why, whylen, "%s", r.rule);
    return false;
}

/* Parses "a.b.c.d[/n]" or "v6[/n]" (optionally bracketed) into c. */
static int parse_cidr(const char *s, size_t len, struct cidr *c)
{
    char buf[MAX_ENTRY_LEN];
    if (len == 0 || len >= sizeof(buf))
        return HK_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    long prefix = -1;
    char *slash = strchr(buf, '/');
    if (slash != NULL) {
        char *end;
        *slash = '\0';
        if (slash[1] < '0' || slash[1] > '9')
            return HK_EINVAL;
        prefix = strtol(slash + 1, &end, 10);
        if (*end != '\0')
            return HK_EINVAL;
    }
    char *host = buf;
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        host[hl - 1] = '\0';
        host++;
    }
    struct in_addr v4;
    struct in6_addr v6;
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, host, &v4) == 1) {
        if (prefix > 32)
            return HK_EINVAL;
        c->addr[10] = c->addr[11] = 0xff;
        memcpy(c->addr + 12, &v4, 4);
        c->prefix = (unsigned)(prefix < 0 ? 128 : prefix + 96);
    } else if (inet_pton(AF_INET6, host, &v6) == 1) {
        if (prefix > 128)
            return HK_EINVAL;
        memcpy(c->addr, &v6, 16);
        c->prefix = (unsigned)(prefix < 0 ? 128 : prefix);
    } else {
        return HK_EINVAL;
    }
    return 0;
}

int hk_ssrf_create(hk_ssrf **out, const char *allow, char *err, size_t errlen)
{
    hk_ssrf *g = hk_calloc(1, sizeof(*g));
    const char *p = allow ? allow : "";
    size_t cap = 0;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        const char *s = p, *e = end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (s < e) {
            struct cidr c;
            if (parse_cidr(s, (size_t)(e - s), &c) != 0) {
                if (err != NULL && errlen > 0)
                    snprintf(err, errlen, "bad allowlist entry \"%.*s\": expected an IP address or CIDR",
                             (int)(e - s > MAX_ENTRY_LEN ? MAX_ENTRY_LEN : e - s), s);
                hk_ssrf_free(g);
                *out = NULL;
                return HK_EINVAL;
            }
            if (g->nallow == cap) {
                cap = cap ? cap * 2 : 4;
                g->allow = hk_realloc(g->allow, cap * sizeof(*g->allow));
            }
            g->allow[g->nallow++] = c;
        }
        p = *end == ',' ? end + 1 : end;
    }
    *out = g;
    return 0;
}

void hk_ssrf_free(hk_ssrf *g)
{
    if (g == NULL)
        return;
    free(g->allow);
    free(g);
}
