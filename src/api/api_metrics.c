/*
 * api_metrics.c: GET /metrics, every hookd_* family in the Prometheus text
 * exposition format 0.0.4 (the README's Metrics section lists them), and
 * the http server's response hook that counts inbound answers.
 *
 * Where the values come from: counters and histograms that the modules
 * keep as they work (hk_metrics, util/metrics.h); the engine's window
 * (hk_engine_get_stats); the store's group commit (hk_store_get_counters);
 * gauges computed at the scrape from the store without walking the queue
 * (hk_store_queue_summary: the entry count, the oldest entry of the index
 * by event, and a capped walk of the due and parked entries only); the
 * webhook table's states; /proc/self for the process. Per-webhook series
 * go to the [metrics] webhook_series webhooks with the lowest ids.
 */
#include "api_metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api.h"
#include "metrics.h"

static const char *const dialect_names[HK_M_DIALECTS] = {
    [HK_M_SUPEROFFICE] = "superoffice",
    [HK_M_ENERGYCAP] = "energycap",
    [HK_M_IVANTI] = "ivanti",
    [HK_M_OTHER] = "other",
};
static const char *const class_names[HK_M_STATUS_CLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
static const enum hk_webhook_state states[] = {HK_WH_ACTIVE, HK_WH_STOPPED, HK_WH_TOO_MANY_ERRORS};

void hk_api_metrics_observe(const char *path, size_t path_len, int status, uint64_t ms, void *data)
{
    HK_UNUSED(data);
    enum hk_m_dialect d;
    switch (path != NULL ? hk_api_dialect(path, path_len) : HK_DIALECT_PLAIN) {
    case HK_DIALECT_SO: d = HK_M_SUPEROFFICE; break;
    case HK_DIALECT_ECAP: d = HK_M_ENERGYCAP; break;
    case HK_DIALECT_IVANTI: d = HK_M_IVANTI; break;
    default: d = HK_M_OTHER; break;
    }
    hk_metrics_http(d, status, ms);
}

/* ---- families ----------------------------------------------------------------------- */

/* A family of one sample without labels. */
static void one(hk_buf *b, const char *name, const char *type, const char *help, uint64_t v)
{
    hk_metrics_write_head(b, name, type, help);
    hk_metrics_write_u64(b, name, NULL, 0, v);
}

static void write_http(hk_buf *b, const struct hk_metrics_set *m)
{
    const char *n = "hookd_http_requests_total";
    hk_metrics_write_head(b, n, "counter", "Inbound HTTP requests answered, by API dialect and status class.");
    for (int d = 0; d < HK_M_DIALECTS; d++) {
        for (int c = 0; c < HK_M_STATUS_CLASSES; c++) {
            hk_label l[] = {{"dialect", dialect_names[d]}, {"status_class", class_names[c]}};
            hk_metrics_write_u64(b, n, l, 2, m->http_requests[d][c]);
        }
    }
    n = "hookd_http_request_duration_seconds";
    hk_metrics_write_head(b, n, "histogram", "Time from a complete inbound request to its answer, by API dialect.");
    for (int d = 0; d < HK_M_DIALECTS; d++) {
        hk_label l[] = {{"dialect", dialect_names[d]}};
        hk_metrics_write_histogram(b, n, l, 1, &m->http_duration[d]);
    }
    n = "hookd_http_connections";
    hk_metrics_write_head(b, n, "gauge", "Inbound HTTP connections open.");
    hk_metrics_write_i64(b, n, NULL, 0, m->http_connections);
    n = "hookd_http_client_connections";
    hk_metrics_write_head(b, n, "gauge", "Outbound HTTP connections open (deliveries and synchronous calls).");
    hk_metrics_write_i64(b, n, NULL, 0, m->client_connections);
    one(b, "hookd_http_client_connections_opened_total", "counter", "Outbound HTTP connections opened.",
        m->client_connections_opened);
}

static void write_deliveries(hk_buf *b, const hk_ctx *ctx, const struct hk_metrics_set *m, const hk_queue_summary *q,
                             uint64_t now)
{
    one(b, "hookd_signals_accepted_total", "counter",
        "Signals accepted and committed (repeats of an "
        "Idempotency-Key not counted).",
        m->signals_accepted);
    one(b, "hookd_signals_duplicate_total", "counter",
        "Signals answered as a repeat of an Idempotency-Key; nothing stored.", m->signals_duplicate);
    one(b, "hookd_deliveries_queued_total", "counter",
        "Deliveries queued by accepted signals (one per Active "
        "subscribed webhook).",
        m->deliveries_queued);
    const char *n = "hookd_delivery_attempts_total";
    hk_metrics_write_head(b, n, "counter", "Attempts of queued deliveries, by outcome.");
    for (int o = 0; o < HK_M_OUTCOMES; o++) {
        hk_label l[] = {{"outcome", hk_metrics_outcome_name((enum hk_m_outcome)o)}};
        hk_metrics_write_u64(b, n, l, 1, m->deliveries[o]);
    }
    n = "hookd_delivery_signal_to_2xx_seconds";
    hk_metrics_write_head(b, n, "histogram",
                          "Time from an event's acceptance to a 2xx from a receiver, retries included.");
    hk_metrics_write_histogram(b, n, NULL, 0, &m->signal_to_2xx);
    one(b, "hookd_deliveries_pending", "gauge",
        "Deliveries in the pending queue (due, scheduled for a retry, "
        "or parked).",
        q->pending);
    one(b, "hookd_deliveries_due", "gauge", "Pending deliveries of Active webhooks that are due now.", q->due);
    one(b, "hookd_deliveries_parked", "gauge",
        "Pending deliveries of webhooks that are not Active (Stopped, TooManyErrors, deleted).", q->parked);
    one(b, "hookd_deliveries_counts_capped", "gauge",
        "1 when the due and parked counts stopped at the walk's "
        "limit and are lower bounds.",
        q->capped);
    n = "hookd_deliveries_oldest_pending_age_seconds";
    hk_metrics_write_head(b, n, "gauge",
                          "Age of the oldest event with a pending delivery (parked ones count); 0 when none.");
    hk_metrics_write_scaled(b, n, NULL, 0, q->oldest_ms != 0 && now > q->oldest_ms ? now - q->oldest_ms : 0, 1000);
    hk_engine_stats st;
    memset(&st, 0, sizeof(st));
    if (ctx->app->engine != NULL)
        hk_engine_get_stats(ctx->app->engine, &st);
    one(b, "hookd_deliveries_in_memory", "gauge", "Deliveries held in the engine's window.", st.in_memory);
    one(b, "hookd_deliveries_in_flight", "gauge", "Deliveries on the wire.", st.in_flight);
}

static void write_webhooks(hk_buf *b, const struct hk_metrics_set *m, const uint64_t by_state[3])
{
    const char *n = "hookd_webhooks";
    hk_metrics_write_head(b, n, "gauge", "Webhooks, by state.");
    for (size_t i = 0; i < HK_ARRAY_SIZE(states); i++) {
        hk_label l[] = {{"state", hk_webhook_state_name(states[i])}};
        hk_metrics_write_u64(b, n, l, 1, by_state[states[i]]);
    }
    one(b, "hookd_webhook_auto_disables_total", "counter",
        "Webhooks set to TooManyErrors by the failure rules (disable_after, 410 Gone).", m->auto_disables);
}

static void write_store(hk_buf *b, hk_store *db)
{
    hk_store_counters c;
    hk_store_get_counters(db, &c);
    one(b, "hookd_store_commits_total", "counter", "Group commits.", c.commits);
    one(b, "hookd_store_ops_total", "counter", "Operations committed.", c.ops);
    one(b, "hookd_store_failed_commits_total", "counter", "Group commits that failed (full disk or store, I/O error).",
        c.failed_commits);
    hk_metrics_write_head(b, "hookd_store_commit_batch_ops", "histogram", "Operations per group commit.");
    hk_metrics_write_histogram(b, "hookd_store_commit_batch_ops", NULL, 0, &c.batch_ops);
    hk_metrics_write_head(b, "hookd_store_commit_duration_seconds", "histogram",
                          "Time a group commit takes, from its start to durable (apply, commit, sync).");
    hk_metrics_write_histogram(b, "hookd_store_commit_duration_seconds", NULL, 0, &c.commit_us);
    one(b, "hookd_store_map_size_bytes", "gauge", "Bytes of the store's memory map.", c.map_size);
    one(b, "hookd_store_used_bytes", "gauge", "Bytes of the store in use.", c.used);
}

/* Resident memory from /proc/self/statm (pages); 0 when it cannot be read. */
static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? (uint64_t)resident * (uint64_t)page : 0;
}

/* Open descriptors: the entries of /proc/self/fd, less the one reading it. */
static uint64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return 0;
    uint64_t n = 0;
    char self[32];
    snprintf(self, sizeof(self), "%d", dirfd(d));
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        if (e->d_name[0] != '.' && strcmp(e->d_name, self) != 0)
            n++;
    closedir(d);
    return n;
}

static void write_process(hk_buf *b, const struct hk_metrics_set *m)
{
    one(b, "hookd_mails_sent_total", "counter", "Failure mails the relay accepted.", m->mails_sent);
    one(b, "hookd_mails_failed_total", "counter", "Failure mails that failed or found the mail queue full.",
        m->mails_failed);
    one(b, "hookd_process_resident_memory_bytes", "gauge", "Resident memory of the process.", rss_bytes());
    one(b, "hookd_process_open_fds", "gauge", "Open file descriptors of the process.", open_fds());
    struct rlimit rl;
    uint64_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? rl.rlim_cur : 0;
    one(b, "hookd_process_max_fds", "gauge", "The process's limit of open file descriptors (0: none).", max);
    hk_metrics_write_head(b, "hookd_build_info", "gauge", "Always 1; the version in a label.");
    hk_label l[] = {{"version", HK_VERSION}};
    hk_metrics_write_u64(b, "hookd_build_info", l, 1, 1);
}

/* Each worker's share: inbound answers and attempts of queued deliveries. */
static void write_workers(hk_buf *b, uint32_t workers)
{
    one(b, "hookd_workers", "gauge", "Workers: event loops serving requests and deliveries ([server] workers).",
        workers);
    static const char *const names[] = {"hookd_worker_http_requests_total", "hookd_worker_delivery_attempts_total"};
    static const char *const help[] = {"Inbound HTTP requests answered, by worker.",
                                       "Attempts of queued deliveries, by worker (the owner of their webhook)."};
    for (size_t f = 0; f < HK_ARRAY_SIZE(names); f++) {
        hk_metrics_write_head(b, names[f], "counter", help[f]);
        for (uint32_t i = 0; i < workers && i < HK_METRICS_SETS; i++) {
            const struct hk_metrics_set *m = &hk_metrics_sets[i];
            uint64_t v = 0;
            if (f == 0) {
                for (int d = 0; d < HK_M_DIALECTS; d++)
                    for (int c = 0; c < HK_M_STATUS_CLASSES; c++)
                        v += __atomic_load_n(&m->http_requests[d][c], __ATOMIC_RELAXED);
            } else {
                for (int o = 0; o < HK_M_OUTCOMES; o++)
                    v += __atomic_load_n(&m->deliveries[o], __ATOMIC_RELAXED);
            }
            char id[16];
            snprintf(id, sizeof(id), "%u", i);
            hk_label l[] = {{"worker", id}};
            hk_metrics_write_u64(b, names[f], l, 1, v);
        }
    }
}

/* ---- per-webhook series ------------------------------------------------------------ */

/* What one webhook's series show. */
struct wh_row {
    uint32_t id;
    enum hk_webhook_state state;
    uint64_t calls, errors;
    uint32_t consecutive;
};

struct wh_rows {
    struct wh_row *v;
    size_t n, max;
};

static int collect_row(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct wh_rows *r = arg;
    if (r->n == r->max)
        return 1; /* enough: stop the walk */
    r->v[r->n++] = (struct wh_row){w->id, w->state, st->calls, st->errors, st->consecutive};
    return 0;
}

static void write_webhook_series(hk_buf *b, const struct wh_rows *r)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"hookd_webhook_attempts_total", "counter", "Attempts to the webhook since it was created (stored)."},
        {"hookd_webhook_failed_attempts_total", "counter", "Failed attempts to the webhook since it was created."},
        {"hookd_webhook_consecutive_failures", "gauge", "Failed attempts since the webhook's last success."},
    };
    for (size_t f = 0; f < HK_ARRAY_SIZE(fam); f++) {
        hk_metrics_write_head(b, fam[f].name, fam[f].type, fam[f].help);
        for (size_t i = 0; i < r->n; i++) {
            char id[16];
            snprintf(id, sizeof(id), "%u", r->v[i].id);
            hk_label l[] = {{"webhook", id}};
            uint64_t v = f == 0 ? r->v[i].calls : f == 1 ? r->v[i].errors : r->v[i].consecutive;
            hk_metrics_write_u64(b, fam[f].name, l, 1, v);
        }
    }
    hk_metrics_write_head(b, "hookd_webhook_state", "gauge", "1 for the webhook's state, 0 for the others.");
    for (size_t i = 0; i < r->n; i++) {
        char id[16];
        snprintf(id, sizeof(id), "%u", r->v[i].id);
        for (size_t s = 0; s < HK_ARRAY_SIZE(states); s++) {
            hk_label l[] = {{"webhook", id}, {"state", hk_webhook_state_name(states[s])}};
            hk_metrics_write_u64(b, "hookd_webhook_state", l, 2, r->v[i].state == states[s]);
        }
    }
}

/* ---- the route -------------------------------------------------------------------- */

/* The queue's summary is read first (from the cluster's database, later); the rest is in memory. */
struct metrics_req {
    hk_ctx *ctx;
    hk_store_queue_req q;
};

static void metrics_answer(hk_store_queue_req *qr, int rc)
{
    struct metrics_req *mr = hk_container_of(qr, struct metrics_req, q);
    hk_ctx *ctx = mr->ctx;
    hk_store *db = ctx->app->db;
    uint64_t now = qr->now_ms;
    hk_queue_summary q = qr->sum;
    free(mr);
    uint64_t by_state[3];
    struct wh_rows rows = {NULL, 0, ctx->app->cfg->metrics_webhook_series};
    if (rc == 0)
        rc = hk_store_webhook_states(db, by_state);
    if (rc == 0 && rows.max > 0) {
        rows.v = hk_calloc(rows.max, sizeof(*rows.v));
        rc = hk_store_webhooks_each(db, 0, collect_row, &rows);
        if (rc == 1)
            rc = 0;
    }
    if (rc != 0) {
        free(rows.v);
        hk_respond_store_error(ctx, rc);
        return;
    }
    /* Every worker's counters, summed; and each worker's share of the work. */
    struct hk_metrics_set m;
    uint32_t workers = ctx->app->workers ? ctx->app->workers : 1;
    hk_metrics_sum(&m, workers);
    hk_buf b = HK_BUF_INIT;
    write_http(&b, &m);
    write_deliveries(&b, ctx, &m, &q, now);
    write_webhooks(&b, &m, by_state);
    write_store(&b, db);
    write_process(&b, &m);
    write_workers(&b, workers);
    if (rows.max > 0)
        write_webhook_series(&b, &rows);
    free(rows.v);
    hk_respond_raw(ctx, 200, HK_METRICS_CONTENT_TYPE, "Cache-Control: no-cache\r\n", b.data, b.len);
    hk_buf_free(&b);
}

static void metrics_get(hk_ctx *ctx)
{
    struct metrics_req *m = hk_calloc(1, sizeof(*m));
    m->ctx = ctx;
    m->q.now_ms = hk_now_ms();
    m->q.max = HK_METRICS_QUEUE_WALK_MAX;
    m->q.done = metrics_answer;
    hk_store_queue_read(ctx->app->db, &m->q);
}

static const hk_api_route metrics_routes[] = {
    {"GET", "/metrics", metrics_get, HK_PERM_METRICS},
};

void hk_api_metrics_routes(hk_router *r)
{
    /* Outside the dialects: matched with case, like /healthz. */
    for (size_t i = 0; i < HK_ARRAY_SIZE(metrics_routes); i++)
        hk_router_add(r, metrics_routes[i].method, metrics_routes[i].pattern, 0, &metrics_routes[i]);
}
