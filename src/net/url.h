/*
 * url.h: THE parser of webhook target URLs. Whatever saves a URL and
 * whatever sends to it call hk_url_parse, so a URL that was saved can be
 * sent ("whatever saves, sends").
 *
 * Accepted: absolute http:// or https:// (scheme in any case), a host that
 * is a DNS name (letters, digits, '-', '_' and '.', labels of 1..63 bytes,
 * one trailing dot allowed), a dotted-quad IPv4 address or a bracketed
 * IPv6 address, an optional port 1..65535, then the path and query; a
 * fragment ('#...') is dropped. Refused (HK_EINVAL with a reason):
 * userinfo ("user:pw@"), '%' in the host (percent-encoding, zone ids),
 * a host that ends in a number but is not a dotted quad ("127.1",
 * "0x7f.1", "1.2.3.4.", which resolvers read as addresses), an empty host,
 * an empty, zero, non-decimal or out-of-range port, and control characters
 * or spaces anywhere in the URL.
 */
#ifndef HK_URL_H
#define HK_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/** Bytes of a host name at most (a DNS name's limit). */
#define HK_URL_MAX_HOST 253

/** What the host of a URL is. */
enum hk_url_host_kind {
    HK_URL_HOST_NAME, /**< a DNS name, resolved at connect time */
    HK_URL_HOST_IPV4, /**< a dotted-quad IPv4 literal */
    HK_URL_HOST_IPV6  /**< a bracketed IPv6 literal */
};

/** A parsed URL. Plain data: no allocation, nothing to free. */
typedef struct hk_url {
    bool tls;                        /**< https */
    enum hk_url_host_kind host_kind; /**< name or literal */
    char host[HK_URL_MAX_HOST + 1];  /**< lower-case, NUL-terminated, without brackets */
    uint16_t port;                   /**< the explicit port, else 80 or 443 */
    bool default_port;               /**< port is the scheme's default (the Host header omits it) */
    const char *target;              /**< path and query, pointing INTO the parsed string (valid as long as it);
                                          may be "" or start with '?' (send "/" before it) */
    size_t target_len;               /**< bytes of target, up to the fragment */
} hk_url;

/**
 * Parses s (NUL-terminated) into *u. 0, or HK_EINVAL with *why (when why
 * is not NULL) set to a static English reason fit for a 400 message, e.g.
 * "user names and passwords in URLs are not supported".
 */
int hk_url_parse(const char *s, hk_url *u, const char **why) HK_MUST_CHECK;

/**
 * Writes the authority as a Host header carries it: "host", "[v6]", with
 * ":port" when it is not the default. Returns the length (cut to len - 1
 * like snprintf).
 */
size_t hk_url_authority(const hk_url *u, char *buf, size_t len);

#endif
