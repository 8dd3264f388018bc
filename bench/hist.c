/* hist.c: the log-linear histogram of hist.h. */
#include "hist.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned e = msb - HIST_SUB_BITS; /* >= 1 */
    return (e + 1) * HIST_SUB + (unsigned)((v >> e) - HIST_SUB);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_upper(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i;
    unsigned e = i / HIST_SUB - 1;
    uint64_t m = i % HIST_SUB + HIST_SUB;
    return ((m + 1) << e) - 1;
}

void hist_reset(hist *h)
{
    memset(h, 0, sizeof(*h));
}

void hist_add(hist *h, uint64_t v)
{
    if (h->count == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->count++;
    h->sum += (long double)v;
    h->bucket[bucket_of(v)]++;
}

void hist_merge(hist *dst, const hist *src)
{
    if (src->count == 0)
        return;
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    dst->sum += src->sum;
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
}

uint64_t hist_quantile(const hist *h, double q)
{
    if (h->count == 0)
        return 0;
    double want = q * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = bucket_upper(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

int hist_format_json_ms(const hist *h, char *buf, size_t len)
{
    double mean = h->count ? (double)(h->sum / (long double)h->count) : 0.0;
    return snprintf(buf, len,
                    "{\"count\":%llu,\"min\":%.4f,\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
                    "\"p999\":%.4f,\"max\":%.4f}",
                    (unsigned long long)h->count, h->count ? (double)h->min / 1e6 : 0.0, mean / 1e6,
                    (double)hist_quantile(h, 0.50) / 1e6, (double)hist_quantile(h, 0.90) / 1e6,
                    (double)hist_quantile(h, 0.99) / 1e6, (double)hist_quantile(h, 0.999) / 1e6, (double)h->max / 1e6);
}

void hist_print_json_ms(const hist *h, FILE *f)
{
    char buf[512];
    hist_format_json_ms(h, buf, sizeof(buf));
    fputs(buf, f);
}
