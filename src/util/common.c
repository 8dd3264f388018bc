/* common.c: error strings and checked allocation. */
#include "common.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

const char *hk_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case HK_ENOTFOUND: return "not found";
    case HK_EEXIST: return "already exists";
    case HK_EINVAL: return "invalid input";
    case HK_ESTORE: return "store failure";
    case HK_EFULL: return "storage full";
    case HK_ECONFIG: return "bad configuration";
    case HK_ELOCKED: return "locked";
    case HK_ECONFLICT: return "precondition failed";
    case HK_ESHUTDOWN: return "shutting down";
    case HK_ETLS: return "TLS failure";
    case HK_EPROTO: return "HTTP protocol error";
    case HK_ETOOBIG: return "too large";
    case HK_EFORBIDDEN: return "forbidden by policy";
    case HK_EFORMAT: return "stored in a newer format";
    default: break;
    }
    if (err < 0 && err > HK_ERR_BASE)
        return uv_strerror(err);
    return "unknown error";
}

static void oom(void)
{
    fputs("hookd: out of memory\n", stderr);
    abort();
}

void *hk_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        oom();
    return p;
}

void *hk_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        oom();
    return p;
}

void *hk_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        oom();
    return q;
}

char *hk_strdup(const char *s)
{
    return hk_strndup(s, strlen(s));
}

char *hk_strndup(const char *s, size_t n)
{
    char *p = hk_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

uint64_t hk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int hk_strncaseeq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0 ? 0 : 1;
}
