/*
 * resolver.h: name resolution on the loop, with c-ares.
 *
 * Lookups never use the libuv threadpool (which the group commit needs):
 * c-ares sends its queries from non-blocking sockets that the loop watches
 * (uv_poll) and keeps its own timeouts (one uv_timer), so any number of
 * lookups run at once and a resolver that never answers delays only the
 * lookups that wait for it, never another origin, a commit or the loop.
 * /etc/hosts is read first, then DNS (the servers of /etc/resolv.conf, or
 * the ones the options name).
 *
 * Every lookup ends in its callback exactly once unless it is cancelled,
 * and never from within the call that started it.
 */
#ifndef HK_RESOLVER_H
#define HK_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common.h"

/** Addresses one lookup passes to its callback at most. */
#define HK_RESOLVE_MAX_ADDRS 16

typedef struct hk_resolver hk_resolver;
typedef struct hk_resolve_req hk_resolve_req;

/** Settings of a resolver; copied by hk_resolver_create. 0 or NULL takes the default in brackets. */
typedef struct hk_resolver_opts {
    const char *servers;     /**< "IP[:PORT],[IPv6]:PORT,..." to ask instead of /etc/resolv.conf's [the system's] */
    uint64_t try_timeout_ms; /**< one query to one server [2000] */
    uint32_t tries;          /**< queries per server before giving up [2] */
} hk_resolver_opts;

/**
 * The end of a lookup, on the loop thread. status 0 with n >= 1 addresses
 * (port 0; IPv4 and IPv6 in the order to try them), or a negative code:
 * UV_EAI_NONAME (no such name, or no address for it), UV_ETIMEDOUT (no
 * server answered), UV_EAI_AGAIN (a server failure), UV_ENOMEM,
 * UV_ECANCELED (the resolver is closing). addrs is valid during the call
 * only; text is a readable reason when status != 0 ("" otherwise).
 */
typedef void (*hk_resolve_cb)(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg);

/** Creates a resolver on loop. HK_EINVAL (logged) for servers that do not parse; UV_ENOMEM. */
int hk_resolver_create(hk_resolver **out, uv_loop_t *loop, const hk_resolver_opts *opts) HK_MUST_CHECK;

/**
 * Starts looking host up (a name or an IP literal, without brackets); cb
 * runs later, never from within this call. *req (may be NULL) receives a
 * handle for hk_resolve_cancel, valid until cb runs or the cancel. 0, or
 * HK_ESHUTDOWN once the resolver is closing, HK_EINVAL for an empty host.
 */
int hk_resolve(hk_resolver *r, const char *host, hk_resolve_req **req, hk_resolve_cb cb, void *arg) HK_MUST_CHECK;

/**
 * Abandons a lookup: its callback will not run. The query itself ends on
 * c-ares' own timeouts (a lookup cannot be taken back from a server);
 * until then it costs a few hundred bytes.
 */
void hk_resolve_cancel(hk_resolve_req *req);

/**
 * Fails every lookup with UV_ECANCELED (callbacks run from within this
 * call), closes the sockets and frees the resolver once its handles are
 * closed; closed(arg) then runs from the loop (closed may be NULL). Safe on
 * NULL (closed is then not called).
 */
void hk_resolver_close(hk_resolver *r, void (*closed)(void *arg), void *arg);

/** Lookups started and not yet ended (cancelled ones whose query still runs included). */
size_t hk_resolver_pending(const hk_resolver *r);

#endif
