/*
 * api_metrics.h: GET /metrics, hookd's Prometheus metrics (text exposition
 * format 0.0.4), and the inbound side of them: the http server's response
 * hook that counts every answer by dialect and status class.
 */
#ifndef HK_API_METRICS_H
#define HK_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "router.h"

/**
 * Entries of the pending queue the scrape walks at most to count due and
 * parked deliveries (hookd_deliveries_due and _parked are lower bounds past
 * it, and hookd_deliveries_counts_capped says so).
 */
#define HK_METRICS_QUEUE_WALK_MAX 100000

/**
 * Adds GET /metrics to r: permission Metrics:Read (or all), or no key when
 * [metrics] public is on (the dispatcher grants it then).
 */
void hk_api_metrics_routes(hk_router *r);

/**
 * The http server's response hook (hk_http_server_on_response; data
 * unused): counts the answer in hookd_http_requests_total by the dialect
 * of path (NULL: other) and status class, and its latency in
 * hookd_http_request_duration_seconds.
 */
void hk_api_metrics_observe(const char *path, size_t path_len, int status, uint64_t ms, void *data);

#endif
