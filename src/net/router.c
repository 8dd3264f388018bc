/* router.c: a small table router; the table is built once at startup. */
#include "router.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct segment {
    const char *text; /* literal text or parameter name (points into the pattern copy) */
    size_t len;
    int is_param;
};

struct route {
    char method[12];
    char *pattern_copy;
    struct segment segs[HK_ROUTE_MAX_SEGMENTS];
    int nsegs;
    unsigned flags;
    const void *data;
};

struct hk_router {
    struct route *routes;
    size_t n, cap;
};

hk_router *hk_router_new(void)
{
    return hk_calloc(1, sizeof(hk_router));
}

void hk_router_free(hk_router *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->routes[i].pattern_copy);
    free(r->routes);
    free(r);
}

void hk_router_add(hk_router *r, const char *method, const char *pattern, unsigned flags, const void *data)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 32;
        r->routes = hk_realloc(r->routes, r->cap * sizeof(*r->routes));
    }
    struct route *rt = &r->routes[r->n++];
    memset(rt, 0, sizeof(*rt));
    snprintf(rt->method, sizeof(rt->method), "%s", method);
    rt->flags = flags;
    rt->data = data;
    rt->pattern_copy = hk_strdup(pattern);
    char *p = rt->pattern_copy;
    while (*p == '/')
        p++;
    while (*p != '\0') {
        if (rt->nsegs == HK_ROUTE_MAX_SEGMENTS)
            abort(); /* a pattern this long is a programming error */
        char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        struct segment *s = &rt->segs[rt->nsegs++];
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            s->is_param = 1;
            s->text = p + 1;
            p[len - 1] = '\0';
            s->len = len - 2;
        } else {
            s->text = p;
            s->len = len;
        }
        if (end == NULL)
            break;
        *end = '\0';
        p = end + 1;
    }
}

char *hk_percent_decode(const char *src, size_t len, int plus_is_space)
{
    char *out = hk_malloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (i + 2 >= len) {
                free(out);
                return NULL;
            }
            int v = 0;
            for (int k = 1; k <= 2; k++) {
                char h = src[i + (size_t)k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= h - '0';
                else if (h >= 'a' && h <= 'f')
                    v |= h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                    v |= h - 'A' + 10;
                else {
                    free(out);
                    return NULL;
                }
            }
            if (v == 0) {
                free(out);
                return NULL;
            }
            out[o++] = (char)v;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return out;
}

struct path_seg {
    const char *p;
    size_t len;
};

static int split(const char *path, size_t len, struct path_seg *segs, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < len && path[i] == '/')
        i++;
    while (i < len) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (n == max)
            return -1;
        segs[n].p = path + start;
        segs[n].len = i - start;
        n++;
        if (i < len)
            i++; /* skip the slash; a trailing slash adds no empty segment */
    }
    return n;
}

/* Returns a specificity score when rt matches the segments, -1 otherwise:
 * a literal in an earlier position outweighs any later ones. */
static long match_route(const struct route *rt, const struct path_seg *segs, int n)
{
    if (rt->nsegs != n)
        return -1;
    long score = 0;
    for (int i = 0; i < n; i++) {
        const struct segment *s = &rt->segs[i];
        if (s->is_param) {
            if (segs[i].len == 0)
                return -1;
            continue;
        }
        if (s->len != segs[i].len)
            return -1;
        int eq = (rt->flags & HK_ROUTE_NOCASE) ? strncasecmp(s->text, segs[i].p, s->len)
                                               : strncmp(s->text, segs[i].p, s->len);
        if (eq != 0)
            return -1;
        score |= 1L << (HK_ROUTE_MAX_SEGMENTS - i);
    }
    return score;
}

int hk_router_match(const hk_router *r, const char *method, const char *path, size_t path_len, const void **data,
                    hk_route_params *params, char *allow, size_t allow_len)
{
    struct path_seg segs[HK_ROUTE_MAX_SEGMENTS];
    memset(params, 0, sizeof(*params));
    int n = split(path, path_len, segs, HK_ROUTE_MAX_SEGMENTS);
    if (n < 0)
        return 404;
    const struct route *best = NULL;
    long best_score = -1, best_any = -1;
    for (size_t i = 0; i < r->n; i++) {
        long sc = match_route(&r->routes[i], segs, n);
        if (sc < 0)
            continue;
        if (sc > best_any)
            best_any = sc;
        if (strcmp(r->routes[i].method, method) == 0 && sc > best_score) {
            best = &r->routes[i];
            best_score = sc;
        }
    }
    if (best == NULL) {
        if (best_any < 0)
            return 404;
        /* The path exists: list the methods of the most specific pattern(s). */
        size_t o = 0;
        allow[0] = '\0';
        for (size_t i = 0; i < r->n; i++) {
            if (match_route(&r->routes[i], segs, n) != best_any)
                continue;
            if (strstr(allow, r->routes[i].method) != NULL)
                continue;
            int w = snprintf(allow + o, allow_len - o, "%s%s", o ? ", " : "", r->routes[i].method);
            if (w < 0 || (size_t)w >= allow_len - o)
                break;
            o += (size_t)w;
        }
        return 405;
    }
    for (int i = 0; i < n; i++) {
        if (!best->segs[i].is_param)
            continue;
        char *v = hk_percent_decode(segs[i].p, segs[i].len, 0);
        if (v == NULL || params->n == HK_ROUTE_MAX_PARAMS) {
            free(v);
            hk_route_params_free(params);
            return 404;
        }
        params->names[params->n] = best->segs[i].text;
        params->values[params->n++] = v;
    }
    *data = best->data;
    return 0;
}

void hk_route_params_free(hk_route_params *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->values[i]);
    p->n = 0;
}

const char *hk_route_param(const hk_route_params *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->names[i], name) == 0)
            return p->values[i];
    return NULL;
}
