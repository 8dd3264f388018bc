/*
 * metrics.c: histograms over fixed buckets, the Prometheus text exposition
 * writer, and the process's set of metrics (see metrics.h).
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "common.h"

/* ---- buckets ---------------------------------------------------------------------- */

static const uint64_t request_ms[] = {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
const hk_buckets hk_buckets_request_ms = {request_ms, HK_ARRAY_SIZE(request_ms), 1000};

static const uint64_t commit_us[] = {100,   250,    500,    1000,   2500,    5000,    10000,   25000,
                                     50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
const hk_buckets hk_buckets_commit_us = {commit_us, HK_ARRAY_SIZE(commit_us), 1000000};

static const uint64_t batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
const hk_buckets hk_buckets_batch = {batch, HK_ARRAY_SIZE(batch), 1};

static const uint64_t delivery_ms[] = {10,      25,      50,       100,      250,     500,    1000,
                                       2500,    5000,    10000,    30000,    60000,   300000, 1800000,
                                       3600000, 7200000, 18000000, 36000000, 86400000};
const hk_buckets hk_buckets_delivery_ms = {delivery_ms, HK_ARRAY_SIZE(delivery_ms), 1000};

void hk_histogram_observe(hk_histogram *h, uint64_t v)
{
    uint32_t i = 0;
    /* A dozen or two bounds: a linear scan beats anything cleverer. */
    while (i < h->b->n && v > h->b->le[i])
        i++;
    HK_METRIC_ADD(h->counts[i], 1);
    HK_METRIC_ADD(h->count, 1);
    HK_METRIC_ADD(h->sum, v);
}

/* ---- the exposition format --------------------------------------------------------- */

/* Appends s escaped as the format wants it: in HELP text backslash and line
 * feed, in label values also the double quote. */
static void put_escaped(hk_buf *out, const char *s, bool quote)
{
    const char *run = s;
    for (; *s != '\0'; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '\n')
            esc = "\\n";
        else if (*s == '"' && quote)
            esc = "\\\"";
        if (esc == NULL)
            continue;
        hk_buf_append(out, run, (size_t)(s - run));
        hk_buf_puts(out, esc);
        run = s + 1;
    }
    hk_buf_append(out, run, (size_t)(s - run));
}

void hk_metrics_write_head(hk_buf *out, const char *name, const char *type, const char *help)
{
    hk_buf_printf(out, "# HELP %s ", name);
    put_escaped(out, help, false);
    hk_buf_printf(out, "\n# TYPE %s %s\n", name, type);
}

/* name{a="x",b="y"[,le="..."]} followed by a space. */
static void put_series(hk_buf *out, const char *name, const char *suffix, const hk_label *labels, size_t n,
                       const char *le)
{
    hk_buf_puts(out, name);
    hk_buf_puts(out, suffix);
    if (n > 0 || le != NULL) {
        hk_buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            hk_buf_printf(out, "%s%s=\"", i ? "," : "", labels[i].name);
            put_escaped(out, labels[i].value, true);
            hk_buf_putc(out, '"');
        }
        if (le != NULL)
            hk_buf_printf(out, "%sle=\"%s\"", n ? "," : "", le);
        hk_buf_putc(out, '}');
    }
    hk_buf_putc(out, ' ');
}

/* v / scale in exact decimal: no digits lost to a double, no trailing zeros. */
static void fmt_scaled(char *buf, size_t len, uint64_t v, uint32_t scale)
{
    if (scale <= 1) {
        snprintf(buf, len, "%" PRIu64, v);
        return;
    }
    int digits = 0;
    for (uint32_t s = scale; s > 1; s /= 10)
        digits++;
    uint64_t whole = v / scale, frac = v % scale;
    if (frac == 0) {
        snprintf(buf, len, "%" PRIu64, whole);
        return;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    snprintf(buf, len, "%" PRIu64 ".%0*" PRIu64, whole, digits, frac);
}

void hk_metrics_write_u64(hk_buf *out, const char *name, const hk_label *labels, size_t n, uint64_t v)
{
    put_series(out, name, "", labels, n, NULL);
    hk_buf_printf(out, "%" PRIu64 "\n", v);
}

void hk_metrics_write_i64(hk_buf *out, const char *name, const hk_label *labels, size_t n, int64_t v)
{
    put_series(out, name, "", labels, n, NULL);
    hk_buf_printf(out, "%" PRId64 "\n", v);
}

void hk_metrics_write_scaled(hk_buf *out, const char *name, const hk_label *labels, size_t n, uint64_t v,
                             uint32_t scale)
{
    char num[48];
    fmt_scaled(num, sizeof(num), v, scale);
    put_series(out, name, "", labels, n, NULL);
    hk_buf_printf(out, "%s\n", num);
}

void hk_metrics_write_histogram(hk_buf *out, const char *name, const hk_label *labels, size_t n, const hk_histogram *h)
{
    const hk_buckets *b = h->b;
    uint64_t cumulative = 0;
    char le[48];
    for (uint32_t i = 0; i < b->n; i++) {
        cumulative += h->counts[i];
        fmt_scaled(le, sizeof(le), b->le[i], b->scale);
        put_series(out, name, "_bucket", labels, n, le);
        hk_buf_printf(out, "%" PRIu64 "\n", cumulative);
    }
    /* +Inf is every observation, by definition equal to _count. */
    put_series(out, name, "_bucket", labels, n, "+Inf");
    hk_buf_printf(out, "%" PRIu64 "\n", h->count);
    char sum[48];
    fmt_scaled(sum, sizeof(sum), h->sum, b->scale);
    put_series(out, name, "_sum", labels, n, NULL);
    hk_buf_printf(out, "%s\n", sum);
    put_series(out, name, "_count", labels, n, NULL);
    hk_buf_printf(out, "%" PRIu64 "\n", h->count);
}

/* ---- hookd's metrics -------------------------------------------------------------- */

struct hk_metrics_set hk_metrics_sets[HK_METRICS_SETS] = {
    [0] = {.http_duration = {HK_HISTOGRAM(&hk_buckets_request_ms), HK_HISTOGRAM(&hk_buckets_request_ms),
                             HK_HISTOGRAM(&hk_buckets_request_ms), HK_HISTOGRAM(&hk_buckets_request_ms)},
           .signal_to_2xx = HK_HISTOGRAM(&hk_buckets_delivery_ms)},
};

__thread struct hk_metrics_set *hk__metrics_tls;

/* The buckets of a set's histograms. */
static void set_buckets(struct hk_metrics_set *m)
{
    for (int d = 0; d < HK_M_DIALECTS; d++)
        m->http_duration[d].b = &hk_buckets_request_ms;
    m->signal_to_2xx.b = &hk_buckets_delivery_ms;
}

void hk_metrics_bind(unsigned i)
{
    struct hk_metrics_set *m = &hk_metrics_sets[i < HK_METRICS_SETS ? i : 0];
    set_buckets(m);
    hk__metrics_tls = m;
}

/* Another thread's counter, read whole. */
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void hk_histogram_copy(hk_histogram *to, const hk_histogram *h)
{
    to->b = h->b;
    for (size_t i = 0; i < HK_ARRAY_SIZE(to->counts); i++)
        to->counts[i] = LOAD(h->counts[i]);
    to->count = LOAD(h->count);
    to->sum = LOAD(h->sum);
}

static void hist_add(hk_histogram *to, const hk_histogram *h)
{
    for (size_t i = 0; i < HK_ARRAY_SIZE(to->counts); i++)
        to->counts[i] += LOAD(h->counts[i]);
    to->count += LOAD(h->count);
    to->sum += LOAD(h->sum);
}

void hk_metrics_sum(struct hk_metrics_set *out, unsigned n)
{
    memset(out, 0, sizeof(*out));
    set_buckets(out);
    if (n > HK_METRICS_SETS)
        n = HK_METRICS_SETS;
    for (unsigned i = 0; i < n; i++) {
        const struct hk_metrics_set *m = &hk_metrics_sets[i];
        for (int d = 0; d < HK_M_DIALECTS; d++) {
            for (int c = 0; c < HK_M_STATUS_CLASSES; c++)
                out->http_requests[d][c] += LOAD(m->http_requests[d][c]);
            hist_add(&out->http_duration[d], &m->http_duration[d]);
        }
        out->signals_accepted += LOAD(m->signals_accepted);
        out->signals_duplicate += LOAD(m->signals_duplicate);
        out->deliveries_queued += LOAD(m->deliveries_queued);
        for (int o = 0; o < HK_M_OUTCOMES; o++)
            out->deliveries[o] += LOAD(m->deliveries[o]);
        hist_add(&out->signal_to_2xx, &m->signal_to_2xx);
        out->auto_disables += LOAD(m->auto_disables);
        out->mails_sent += LOAD(m->mails_sent);
        out->mails_failed += LOAD(m->mails_failed);
        out->client_connections_opened += LOAD(m->client_connections_opened);
        out->client_connections += LOAD(m->client_connections);
        out->http_connections += LOAD(m->http_connections);
    }
}

void hk_metrics_http(enum hk_m_dialect d, int status, uint64_t ms)
{
    int cls = status / 100 - 1;
    if (cls < 0)
        cls = 0;
    if (cls >= HK_M_STATUS_CLASSES)
        cls = HK_M_STATUS_CLASSES - 1;
    HK_METRIC_ADD(hk_metrics.http_requests[d][cls], 1);
    hk_histogram_observe(&hk_metrics.http_duration[d], ms);
}

void hk_metrics_attempt(int error, int status, uint64_t since_event_ms)
{
    enum hk_m_outcome o = hk_metrics_outcome_of(error, status);
    HK_METRIC_ADD(hk_metrics.deliveries[o], 1);
    if (o == HK_M_OUT_2XX)
        hk_histogram_observe(&hk_metrics.signal_to_2xx, since_event_ms);
}

static const char *const outcome_names[HK_M_OUTCOMES] = {
    [HK_M_OUT_2XX] = "2xx",         [HK_M_OUT_3XX] = "3xx",         [HK_M_OUT_4XX] = "4xx",     [HK_M_OUT_5XX] = "5xx",
    [HK_M_OUT_TIMEOUT] = "timeout", [HK_M_OUT_REFUSED] = "refused", [HK_M_OUT_RESET] = "reset", [HK_M_OUT_TLS] = "tls",
    [HK_M_OUT_SSRF] = "ssrf",       [HK_M_OUT_DNS] = "dns",         [HK_M_OUT_ERROR] = "error",
};

const char *hk_metrics_outcome_name(enum hk_m_outcome o)
{
    return o < HK_M_OUTCOMES ? outcome_names[o] : "error";
}

enum hk_m_outcome hk_metrics_outcome_of(int error, int status)
{
    switch (error) {
    case 0:
        if (status >= 200 && status < 300)
            return HK_M_OUT_2XX;
        if (status >= 300 && status < 400)
            return HK_M_OUT_3XX;
        if (status >= 400 && status < 500)
            return HK_M_OUT_4XX;
        return status >= 500 ? HK_M_OUT_5XX : HK_M_OUT_ERROR;
    case UV_ETIMEDOUT: return HK_M_OUT_TIMEOUT;
    case UV_ECONNREFUSED: return HK_M_OUT_REFUSED;
    case UV_ECONNRESET:
    case UV_ECONNABORTED:
    case UV_EPIPE:
    case UV_EOF: return HK_M_OUT_RESET;
    case HK_ETLS: return HK_M_OUT_TLS;
    case HK_EFORBIDDEN: return HK_M_OUT_SSRF;
    case UV_EAI_NONAME:
    case UV_EAI_AGAIN: return HK_M_OUT_DNS;
    default: return HK_M_OUT_ERROR;
    }
}
