/*
 * common.h: small definitions every hookd module shares: the error-code
 * range, container_of, attribute macros and checked allocation.
 */
#ifndef HK_COMMON_H
#define HK_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define HK_VERSION "0.1.0"

#define hk_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define HK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define HK_MUST_CHECK __attribute__((warn_unused_result))
#define HK_UNUSED(x) ((void)(x))

/*
 * hookd's own error codes. Functions return 0 on success and a negative code
 * on failure: libuv's UV_E* codes where one fits, otherwise one of these,
 * kept in a range libuv does not use.
 */
enum {
    HK_ERR_BASE = -30000,
    HK_ENOTFOUND = HK_ERR_BASE - 1,   /**< the record does not exist */
    HK_EEXIST = HK_ERR_BASE - 2,      /**< a record with that key exists */
    HK_EINVAL = HK_ERR_BASE - 3,      /**< the input is malformed */
    HK_ESTORE = HK_ERR_BASE - 4,      /**< the store failed (I/O, corruption) */
    HK_EFULL = HK_ERR_BASE - 5,       /**< the disk or the store is full */
    HK_ECONFIG = HK_ERR_BASE - 6,     /**< a configuration value is bad */
    HK_ELOCKED = HK_ERR_BASE - 7,     /**< the record is locked by an operator */
    HK_ECONFLICT = HK_ERR_BASE - 8,   /**< a precondition failed */
    HK_ESHUTDOWN = HK_ERR_BASE - 9,   /**< the server is shutting down */
    HK_ETLS = HK_ERR_BASE - 10,       /**< a TLS handshake or record failed */
    HK_EPROTO = HK_ERR_BASE - 11,     /**< the peer broke the HTTP protocol */
    HK_ETOOBIG = HK_ERR_BASE - 12,    /**< a peer-controlled size exceeded its limit */
    HK_EFORBIDDEN = HK_ERR_BASE - 13, /**< refused by policy (e.g. SSRF guard) */
    HK_EFORMAT = HK_ERR_BASE - 14     /**< stored data is in a format newer than this build reads */
};

/** Returns a static, human-readable description of a hookd or libuv error code. */
const char *hk_strerror(int err);

/** malloc/calloc/realloc/strdup that abort on failure: only for small internal allocations. */
void *hk_malloc(size_t n);
void *hk_calloc(size_t n, size_t size);
void *hk_realloc(void *p, size_t n);
char *hk_strdup(const char *s);
char *hk_strndup(const char *s, size_t n);

/** Wall-clock time in milliseconds since the Unix epoch. */
uint64_t hk_now_ms(void);

/** ASCII case-insensitive comparison of two length-delimited strings; 0 when equal. */
int hk_strncaseeq(const char *a, size_t alen, const char *b);

#endif
