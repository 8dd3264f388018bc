/*
 * hist.h: a log-linear latency histogram for the benchmark tools.
 *
 * Values (nanoseconds) below 2 * HIST_SUB are counted exactly; above, every
 * power-of-two range is split into HIST_SUB equal buckets, so a reported
 * percentile is within 1/HIST_SUB (1.6%) of the true value. The whole
 * 64-bit range fits in a fixed array: recording never allocates.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS ((64 - HIST_SUB_BITS + 1) * HIST_SUB)

/** A histogram; zero-initialised (or hist_reset) before use. */
typedef struct hist {
    uint64_t count;                /**< values recorded */
    uint64_t min;                  /**< smallest value, exact (meaningless while count is 0) */
    uint64_t max;                  /**< largest value, exact */
    long double sum;               /**< for the mean */
    uint64_t bucket[HIST_BUCKETS]; /**< counts per bucket */
} hist;

/** Empties h. */
void hist_reset(hist *h);

/** Records one value. */
void hist_add(hist *h, uint64_t v);

/** Adds every value of src to dst. */
void hist_merge(hist *dst, const hist *src);

/**
 * The value at quantile q (0 < q <= 1): the upper bound of the bucket that
 * holds the ceil(q * count)-th smallest value, never above the exact max.
 * 0 when h is empty.
 */
uint64_t hist_quantile(const hist *h, double q);

/**
 * Writes h as a JSON object of milliseconds: {"count", "min", "mean", "p50",
 * "p90", "p99", "p999", "max"} to f (no newline).
 */
void hist_print_json_ms(const hist *h, FILE *f);

/** Same as hist_print_json_ms, into buf; returns what snprintf returns. */
int hist_format_json_ms(const hist *h, char *buf, size_t len);

#endif
