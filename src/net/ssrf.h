/*
 * ssrf.h: the guard that keeps deliveries away from internal addresses.
 * Loopback, private (RFC 1918), link-local, CGNAT (100.64/10), multicast,
 * reserved and unspecified ranges, IPv6 ULA, link-local, multicast, and the
 * IPv4-mapped/-compatible/NAT64/6to4 forms of all of those are refused
 * unless an allowlist CIDR names the address.
 */
#ifndef HK_SSRF_H
#define HK_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common.h"

typedef struct hk_ssrf hk_ssrf;

/** Parses a comma-separated CIDR allowlist ("" allows nothing extra); HK_EINVAL naming the bad entry in err. */
int hk_ssrf_create(hk_ssrf **out, const char *allow, char *err, size_t errlen) HK_MUST_CHECK;

/** Frees a guard; safe on NULL. */
void hk_ssrf_free(hk_ssrf *g);

/**
 * Checks one address. Returns true when a connection may be made; when not,
 * writes the reason ("127.0.0.1 is loopback") into why.
 */
bool hk_ssrf_allowed(const hk_ssrf *g, const struct sockaddr *sa, char *why, size_t whylen);

#endif
