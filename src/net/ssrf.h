/*
 * ssrf.h: the guard that keeps deliveries away from internal addresses.
 * Loopback, private (RFC 1918), link-local, CGNAT (100.64/10), multicast,
 * reserved and unspecified ranges, IPv6 ULA, link-local, site-local
 * (fec0::/10), multicast, Teredo (2001::/32), local-use NAT64
 * (64:ff9b:1::/48), and the IPv4-mapped/-compatible/NAT64/6to4 forms of
 * all of those are refused unless an allowlist CIDR names the address.
 *
 * Two moments use it: the HTTP client judges every resolved address before
 * it connects (names are only known then), and whatever saves a webhook
 * can refuse at once a URL whose host is a literal address in a refused
 * range (hk_ssrf_check_host), naming the address and the rule.
 */
#ifndef HK_SSRF_H
#define HK_SSRF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common.h"

typedef struct hk_ssrf hk_ssrf;

/** Parses a comma-separated CIDR allowlist ("" allows nothing extra); HK_EINVAL naming the bad entry in err. */
int hk_ssrf_create(hk_ssrf **out, const char *allow, char *err, size_t errlen) HK_MUST_CHECK;

/** Frees a guard; safe on NULL. */
void hk_ssrf_free(hk_ssrf *g);

/** Why an address was refused, as hk_ssrf_check and hk_ssrf_check_host report it. */
typedef struct hk_ssrf_refusal {
    char addr[INET6_ADDRSTRLEN]; /**< the refused address as text ("127.0.0.1", "::ffff:127.0.0.1"); "" for a
                                      non-IP family */
    char rule[96];               /**< the rule that refused it: "loopback", "private (RFC 1918)", "Teredo
                                      (2001::/32)", "loopback (IPv4-mapped 127.0.0.1)", ... */
} hk_ssrf_refusal;

/**
 * Judges one address (AF_INET or AF_INET6; anything else is refused).
 * 0 when a connection may be made; HK_EFORBIDDEN when refused, with *why
 * filled when why is not NULL.
 */
int hk_ssrf_check(const hk_ssrf *g, const struct sockaddr *sa, hk_ssrf_refusal *why);

/**
 * Judges the host of a URL as hk_url_parse leaves it (no brackets): an
 * IPv4 or IPv6 literal is judged like hk_ssrf_check; a name returns 0
 * (names are judged when they are resolved, at connect time).
 */
int hk_ssrf_check_host(const hk_ssrf *g, const char *host, hk_ssrf_refusal *why);

/**
 * hk_ssrf_check as a predicate: true when a connection may be made; when
 * not, writes "ADDR is RULE" ("127.0.0.1 is loopback") into why.
 */
bool hk_ssrf_allowed(const hk_ssrf *g, const struct sockaddr *sa, char *why, size_t whylen);

#endif
