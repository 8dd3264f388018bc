/*
 * metrics.h: counters, gauges and fixed-bucket histograms, the Prometheus
 * text exposition format (0.0.4) they are written in, and hookd's own set
 * of them (hk_metrics).
 *
 * Cheap on the hot path: every value is a plain integer touched only on its
 * worker's loop thread (no locks, no atomics; one set per worker, summed by
 * the scrape), an observation allocates nothing, and
 * labels are fixed enums indexing arrays, never strings built per event. A
 * counter is a uint64_t that only grows; a gauge is an integer that moves
 * both ways, or a value the scrape computes from what the engine and store
 * already know. Text is made only when a scrape asks for it.
 *
 * The exposition writer (hk_metrics_write_*) appends to an hk_buf: a family
 * is its HELP and TYPE lines followed by its samples. Label values are
 * escaped (backslash, double quote, line feed) as the format requires.
 */
#ifndef HK_METRICS_H
#define HK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/** Buckets a histogram has at most (besides +Inf). */
#define HK_HIST_MAX_BUCKETS 24

/**
 * A fixed set of histogram buckets. Observations are integers in the
 * observed unit (milliseconds, microseconds, ops); the exposition divides
 * bounds and sums by scale to write the exposed unit (seconds, ops).
 */
typedef struct hk_buckets {
    const uint64_t *le; /**< upper bounds in the observed unit, ascending (static storage) */
    uint32_t n;         /**< entries in le, at most HK_HIST_MAX_BUCKETS */
    uint32_t scale;     /**< observed units per exposed unit: 1, 1000 (ms to s) or 1000000 (us to s) */
} hk_buckets;

/** Request and delivery latency in milliseconds, exposed in seconds: 1 ms .. 10 s. */
extern const hk_buckets hk_buckets_request_ms;
/** Group commit latency in microseconds, exposed in seconds: 100 us .. 10 s. */
extern const hk_buckets hk_buckets_commit_us;
/** Ops per group commit: 1 .. 65536, powers of two. */
extern const hk_buckets hk_buckets_batch;
/** Signal to a 2xx in milliseconds, exposed in seconds: 10 ms .. 1 day (retries included). */
extern const hk_buckets hk_buckets_delivery_ms;

/**
 * A histogram over fixed buckets. Initialise statically with
 * HK_HISTOGRAM(&buckets) (or zero it and set b); it owns nothing.
 */
typedef struct hk_histogram {
    const hk_buckets *b; /**< its buckets (static storage, never NULL once set) */
    uint64_t
        counts[HK_HIST_MAX_BUCKETS + 1]; /**< observations per bucket, not cumulative; [b->n]: above the last bound */
    uint64_t count;                      /**< observations */
    uint64_t sum;                        /**< their sum in the observed unit */
} hk_histogram;

/** A static initialiser of a histogram over buckets (a const hk_buckets *). */
#define HK_HISTOGRAM(buckets)                                                                                          \
    {                                                                                                                  \
        .b = (buckets)                                                                                                 \
    }

/**
 * Adds n to a counter or gauge that one thread writes while others may read
 * it with relaxed atomic loads: a relaxed load and store, no read-modify-
 * write (nothing else writes it), so as cheap as `+=` and never a data race.
 */
#define HK_METRIC_ADD(field, n)                                                                                        \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)

/** Counts v (in the observed unit) into the first bucket whose bound is >= v (its one writer: HK_METRIC_ADD). */
void hk_histogram_observe(hk_histogram *h, uint64_t v);

/** A copy of h that another thread may be observing into (relaxed loads, field by field). */
void hk_histogram_copy(hk_histogram *to, const hk_histogram *h);

/* ---- the exposition format --------------------------------------------------------- */

/** One label of a sample; both strings are borrowed for the call. */
typedef struct hk_label {
    const char *name;  /**< a label name ([a-zA-Z_][a-zA-Z0-9_]*; not checked) */
    const char *value; /**< any UTF-8 text; escaped when written */
} hk_label;

/** The Content-Type of the text exposition format. */
#define HK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/**
 * Writes a family's "# HELP name help" and "# TYPE name type" lines (type:
 * "counter", "gauge", "histogram"); backslashes and line feeds in help are
 * escaped.
 */
void hk_metrics_write_head(hk_buf *out, const char *name, const char *type, const char *help);

/** Writes one sample "name{labels} v" (no braces without labels); labels may be NULL when n is 0. */
void hk_metrics_write_u64(hk_buf *out, const char *name, const hk_label *labels, size_t n, uint64_t v);

/** Like hk_metrics_write_u64 for a signed value. */
void hk_metrics_write_i64(hk_buf *out, const char *name, const hk_label *labels, size_t n, int64_t v);

/**
 * Like hk_metrics_write_u64 for v / scale (scale a power of ten from 1 to
 * 10^9), written exactly in decimal ("1.5" for 1500 / 1000): for seconds
 * kept in milliseconds.
 */
void hk_metrics_write_scaled(hk_buf *out, const char *name, const hk_label *labels, size_t n, uint64_t v,
                             uint32_t scale);

/**
 * Writes a histogram's samples: name_bucket with the labels and le for each
 * bound and "+Inf", cumulative, then name_sum (in the exposed unit) and
 * name_count.
 */
void hk_metrics_write_histogram(hk_buf *out, const char *name, const hk_label *labels, size_t n, const hk_histogram *h);

/* ---- hookd's metrics -------------------------------------------------------------- */

/** Which API dialect an inbound request's path belongs to, as a label. */
enum hk_m_dialect {
    HK_M_SUPEROFFICE, /**< /api/v1 */
    HK_M_ENERGYCAP,   /**< /api/v3, /api/v2022... */
    HK_M_IVANTI,      /**< /api/rest */
    HK_M_OTHER,       /**< everything else (/healthz, /metrics, unknown paths) */
    HK_M_DIALECTS
};

/** Status classes of an HTTP answer: 1xx .. 5xx (index status / 100 - 1). */
#define HK_M_STATUS_CLASSES 5

/** What came of one attempt of a delivery, as a label. */
enum hk_m_outcome {
    HK_M_OUT_2XX,     /**< a 2xx: delivered */
    HK_M_OUT_3XX,     /**< a 3xx (never followed) */
    HK_M_OUT_4XX,     /**< a 4xx */
    HK_M_OUT_5XX,     /**< a 5xx (or a status past 599) */
    HK_M_OUT_TIMEOUT, /**< DNS, connect, first-byte or total timeout */
    HK_M_OUT_REFUSED, /**< the connection was refused */
    HK_M_OUT_RESET,   /**< the connection was reset or closed before a response */
    HK_M_OUT_TLS,     /**< TLS failed (handshake, certificate) */
    HK_M_OUT_SSRF,    /**< the SSRF guard refused the target's address */
    HK_M_OUT_DNS,     /**< the target's name did not resolve */
    HK_M_OUT_ERROR,   /**< anything else (a malformed response, a request that could not be made) */
    HK_M_OUTCOMES
};

/** The label value of an outcome ("2xx", "timeout", ...). */
const char *hk_metrics_outcome_name(enum hk_m_outcome o);

/**
 * The outcome of an attempt from its client result's error (0 when a
 * response came) and HTTP status.
 */
enum hk_m_outcome hk_metrics_outcome_of(int error, int status);

/**
 * hookd's counters, gauges and histograms: one set per worker thread
 * (hk_metrics is the calling thread's), written by the modules where things
 * happen on that thread and summed by the scrape (src/api/api_metrics.c,
 * hk_metrics_sum). Each field says
 * who writes it. Gauges that the scrape computes (queue, webhooks, store,
 * process) are not kept here.
 */
struct hk_metrics_set {
    /** Inbound answers by dialect and status class (http server's response hook, api_metrics.c). */
    uint64_t http_requests[HK_M_DIALECTS][HK_M_STATUS_CLASSES];
    /** Their latency in ms, from the complete request to its answer, by dialect (same writer). */
    hk_histogram http_duration[HK_M_DIALECTS];
    uint64_t signals_accepted;  /**< signals committed, not duplicates (ingest.c) */
    uint64_t signals_duplicate; /**< signals answered as a repeated Idempotency-Key (ingest.c) */
    uint64_t deliveries_queued; /**< deliveries queued by accepted signals' fan-out (ingest.c) */
    /** Attempts of queued deliveries by outcome, counted when the attempt ends (outcome.c). */
    uint64_t deliveries[HK_M_OUTCOMES];
    /** From the event's accepted time to a delivery's 2xx, in ms (outcome.c). */
    hk_histogram signal_to_2xx;
    uint64_t auto_disables;             /**< webhooks set to TooManyErrors by the failure rules (outcome.c) */
    uint64_t mails_sent;                /**< failure mails the relay accepted (notify.c) */
    uint64_t mails_failed;              /**< failure mails that failed or could not be queued (notify.c) */
    uint64_t client_connections_opened; /**< outbound HTTP connections opened (http_client_conn.c) */
    int64_t client_connections;         /**< outbound HTTP connections open now (http_client_conn.c) */
    int64_t http_connections;           /**< inbound HTTP connections open now (http_server.c) */
};

/** Sets of hookd_metrics kept at most: one per worker (event loop thread). */
#define HK_METRICS_SETS 64

/**
 * The metrics of each worker: hk_metrics_sets[i] is written only by the
 * thread bound to it (hk_metrics_bind), [0] also by any thread never bound
 * (the main thread, tests, the CLI). Counters are plain integers, written
 * without locks by their one thread; a scrape on another worker reads them
 * with relaxed atomic loads (hk_metrics_sum), so what it sees of another
 * worker may be a moment old but is never torn.
 */
extern struct hk_metrics_set hk_metrics_sets[HK_METRICS_SETS];

/** The calling thread's set (internal: use hk_metrics). */
extern __thread struct hk_metrics_set *hk__metrics_tls;

/** The calling thread's set: its worker's, or hk_metrics_sets[0]. */
static inline struct hk_metrics_set *hk_metrics_here(void)
{
    return hk__metrics_tls != NULL ? hk__metrics_tls : &hk_metrics_sets[0];
}

/** The calling thread's metrics, written where things happen (see the fields of hk_metrics_set). */
#define hk_metrics (*hk_metrics_here())

/**
 * Binds the calling thread to set i (< HK_METRICS_SETS): a worker's loop
 * thread, before it counts anything. Sets the set's histogram buckets.
 */
void hk_metrics_bind(unsigned i);

/** Sums sets 0..n-1 into *out (n at most HK_METRICS_SETS): what the scrape exposes. */
void hk_metrics_sum(struct hk_metrics_set *out, unsigned n);

/** Counts an inbound answer: its dialect, status and latency in ms. */
void hk_metrics_http(enum hk_m_dialect d, int status, uint64_t ms);

/**
 * Counts a queued delivery's attempt by its outcome (from its client
 * result's error and status) and, for a 2xx, observes since_event_ms (from
 * the event's accepted time to the 2xx) in signal_to_2xx.
 */
void hk_metrics_attempt(int error, int status, uint64_t since_event_ms);

#endif
