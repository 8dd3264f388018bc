/* url.c: the webhook URL parser (see url.h for what is accepted). */
#include "url.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_LABEL 63

static int fail(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return HK_EINVAL;
}

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
           ch == '_';
}

/*
 * True when the last label of the host (a trailing dot ignored) looks like
 * a number: all decimal digits, or 0x followed by hex digits. Resolvers
 * (inet_aton) read such hosts as IPv4 addresses in shorthand ("127.1",
 * "0x7f.0.0.1", "2130706433"), so they are either a dotted quad or refused.
 */
static bool ends_in_number(const char *h, size_t len)
{
    if (len > 0 && h[len - 1] == '.')
        len--;
    size_t start = len;
    while (start > 0 && h[start - 1] != '.')
        start--;
    const char *l = h + start;
    size_t n = len - start;
    if (n == 0)
        return false;
    if (n >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (strchr("0123456789abcdefABCDEF", l[i]) == NULL)
                return false;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (l[i] < '0' || l[i] > '9')
            return false;
    return true;
}

static int parse_name(const char *a, size_t len, hk_url *u, const char **why)
{
    if (len == 0)
        return fail(why, "the URL has no host");
    if (len > HK_URL_MAX_HOST)
        return fail(why, "the host name is longer than 253 bytes");
    if (memchr(a, '%', len) != NULL)
        return fail(why, "percent-encoded characters are not allowed in the host");
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = a[i];
        if (!name_char(ch))
            return fail(why, "the host holds a character that is not allowed in a host name");
        if (ch == '.') {
            /* One trailing dot (the root) is allowed; empty labels are not. */
            if (label == 0)
                return fail(why, "the host has an empty label");
            label = 0;
        } else if (++label > MAX_LABEL) {
            return fail(why, "a label of the host is longer than 63 bytes");
        }
        u->host[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    u->host[len] = '\0';
    if (ends_in_number(u->host, len)) {
        struct in_addr tmp;
        if (inet_pton(AF_INET, u->host, &tmp) != 1)
            return fail(why, "the host is neither a name nor an IPv4 address in dotted-quad form");
        u->host_kind = HK_URL_HOST_IPV4;
    } else {
        u->host_kind = HK_URL_HOST_NAME;
    }
    return 0;
}

static int parse_ipv6(const char *a, size_t len, hk_url *u, const char **why)
{
    /* a is "[...]" */
    size_t n = len - 2;
    if (n == 0 || n > 45)
        return fail(why, "the host is not a valid IPv6 address");
    if (memchr(a + 1, '%', n) != NULL)
        return fail(why, "percent-encoded characters and zone ids are not allowed in the host");
    memcpy(u->host, a + 1, n);
    u->host[n] = '\0';
    struct in6_addr tmp;
    if (inet_pton(AF_INET6, u->host, &tmp) != 1)
        return fail(why, "the host is not a valid IPv6 address");
    for (size_t i = 0; i < n; i++)
        if (u->host[i] >= 'A' && u->host[i] <= 'Z')
            u->host[i] = (char)(u->host[i] + 32);
    u->host_kind = HK_URL_HOST_IPV6;
    return 0;
}

int hk_url_parse(const char *s, hk_url *u, const char **why)
{
    memset(u, 0, sizeof(*u));
    if (s == NULL)
        return fail(why, "the URL is missing");
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(why, "the URL holds a space or a control character");
    if (strncasecmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strncasecmp(s, "https://", 8) == 0) {
        s += 8;
        u->tls = true;
    } else {
        return fail(why, "the URL is not an absolute http:// or https:// URL");
    }
    size_t alen = strcspn(s, "/?#");
    const char *a = s, *aend = s + alen;
    if (memchr(a, '@', alen) != NULL)
        return fail(why, "user names and passwords in URLs are not supported");
    /* Split host and port: the port follows the last ':' outside brackets. */
    const char *port = NULL;
    size_t hlen = alen;
    int rc;
    if (alen > 0 && a[0] == '[') {
        const char *rb = memchr(a, ']', alen);
        if (rb == NULL)
            return fail(why, "the IPv6 address in the host has no closing bracket");
        hlen = (size_t)(rb - a) + 1;
        if (hlen < alen) {
            if (a[hlen] != ':')
                return fail(why, "the host is not a valid IPv6 address");
            port = a + hlen + 1;
        }
        rc = parse_ipv6(a, hlen, u, why);
    } else {
        const char *colon = memchr(a, ':', alen);
        if (colon != NULL) {
            hlen = (size_t)(colon - a);
            port = colon + 1;
        }
        rc = parse_name(a, hlen, u, why);
    }
    if (rc != 0)
        return rc;
    u->port = u->tls ? 443 : 80;
    if (port != NULL) {
        if (port == aend)
            return fail(why, "the URL has an empty port");
        if (aend - port > 5)
            return fail(why, "the port is not a number from 1 to 65535");
        unsigned v = 0;
        for (const char *p = port; p < aend; p++) {
            if (*p < '0' || *p > '9')
                return fail(why, "the port is not a number from 1 to 65535");
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v < 1 || v > 65535)
            return fail(why, "the port is not a number from 1 to 65535");
        u->port = (uint16_t)v;
    }
    u->default_port = u->port == (u->tls ? 443 : 80);
    u->target = aend;
    u->target_len = strcspn(aend, "#");
    return 0;
}

size_t hk_url_authority(const hk_url *u, char *buf, size_t len)
{
    /* Appended, not printed: every request's Host header is made here. */
    char t[HK_URL_MAX_HOST + 16];
    bool v6 = u->host_kind == HK_URL_HOST_IPV6;
    size_t n = 0, hlen = strnlen(u->host, HK_URL_MAX_HOST);
    if (v6)
        t[n++] = '[';
    memcpy(t + n, u->host, hlen);
    n += hlen;
    if (v6)
        t[n++] = ']';
    if (!u->default_port) {
        char d[8];
        size_t i = sizeof(d);
        unsigned v = u->port;
        do
            d[--i] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        t[n++] = ':';
        memcpy(t + n, d + i, sizeof(d) - i);
        n += sizeof(d) - i;
    }
    if (len == 0)
        return 0;
    size_t k = n < len ? n : len - 1;
    memcpy(buf, t, k);
    buf[k] = '\0';
    return k;
}
