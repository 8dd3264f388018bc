/*
 * test_metrics.c: the Prometheus text exposition writer (escaping,
 * cumulative buckets, +Inf, exact decimals), histogram buckets, the
 * outcome labels, and the store's queue summary behind the queue gauges.
 */
#include <uv.h>

#include "metrics.h"
#include "state_fixture.h"
#include "unit.h"

static void test_escaping(void)
{
    hk_buf b = HK_BUF_INIT;
    hk_label l[] = {{"path", "a\\b\"c\nd"}, {"plain", "x"}};
    hk_metrics_write_u64(&b, "m_total", l, 2, 7);
    CHECK_STR(hk_buf_cstr(&b), "m_total{path=\"a\\\\b\\\"c\\nd\",plain=\"x\"} 7\n");
    hk_buf_reset(&b);
    /* HELP escapes backslash and line feed, not the double quote. */
    hk_metrics_write_head(&b, "m", "gauge", "says \"hi\"\\\nthen");
    CHECK_STR(hk_buf_cstr(&b), "# HELP m says \"hi\"\\\\\\nthen\n# TYPE m gauge\n");
    hk_buf_reset(&b);
    hk_metrics_write_u64(&b, "m", NULL, 0, 0);
    hk_metrics_write_i64(&b, "g", NULL, 0, -3);
    hk_label empty[] = {{"e", ""}};
    hk_metrics_write_u64(&b, "m", empty, 1, UINT64_MAX);
    CHECK_STR(hk_buf_cstr(&b), "m 0\ng -3\nm{e=\"\"} 18446744073709551615\n");
    hk_buf_free(&b);
}

static void test_scaled(void)
{
    static const struct {
        uint64_t v;
        uint32_t scale;
        const char *text;
    } cases[] = {
        {0, 1000, "0"},
        {1, 1000, "0.001"},
        {1500, 1000, "1.5"},
        {2000, 1000, "2"},
        {1234567, 1000, "1234.567"},
        {250, 1000000, "0.00025"},
        {10000000, 1000000, "10"},
        {42, 1, "42"},
    };
    for (size_t i = 0; i < HK_ARRAY_SIZE(cases); i++) {
        hk_buf b = HK_BUF_INIT;
        hk_metrics_write_scaled(&b, "s", NULL, 0, cases[i].v, cases[i].scale);
        char want[64];
        snprintf(want, sizeof(want), "s %s\n", cases[i].text);
        CHECK_STR(hk_buf_cstr(&b), want);
        hk_buf_free(&b);
    }
}

static void test_histogram(void)
{
    static const uint64_t le[] = {5, 10, 100};
    static const hk_buckets ms = {le, 3, 1000};
    hk_histogram h = HK_HISTOGRAM(&ms);
    /* On a bound counts in that bucket; past the last only in +Inf. */
    const uint64_t obs[] = {0, 5, 6, 10, 11, 100, 101, 5000};
    for (size_t i = 0; i < HK_ARRAY_SIZE(obs); i++)
        hk_histogram_observe(&h, obs[i]);
    CHECK_INT(h.counts[0], 2);
    CHECK_INT(h.counts[1], 2);
    CHECK_INT(h.counts[2], 2);
    CHECK_INT(h.counts[3], 2);
    CHECK_INT(h.count, 8);
    CHECK_INT(h.sum, 5233);
    hk_buf b = HK_BUF_INIT;
    hk_label l[] = {{"dialect", "so\"x"}};
    hk_metrics_write_histogram(&b, "lat_seconds", l, 1, &h);
    CHECK_STR(hk_buf_cstr(&b), "lat_seconds_bucket{dialect=\"so\\\"x\",le=\"0.005\"} 2\n"
                               "lat_seconds_bucket{dialect=\"so\\\"x\",le=\"0.01\"} 4\n"
                               "lat_seconds_bucket{dialect=\"so\\\"x\",le=\"0.1\"} 6\n"
                               "lat_seconds_bucket{dialect=\"so\\\"x\",le=\"+Inf\"} 8\n"
                               "lat_seconds_sum{dialect=\"so\\\"x\"} 5.233\n"
                               "lat_seconds_count{dialect=\"so\\\"x\"} 8\n");
    /* Without labels, le is the only one; an empty histogram is all zeros. */
    hk_buf_reset(&b);
    hk_histogram empty = HK_HISTOGRAM(&hk_buckets_batch);
    hk_metrics_write_histogram(&b, "ops", NULL, 0, &empty);
    const char *text = hk_buf_cstr(&b);
    CHECK(strncmp(text, "ops_bucket{le=\"1\"} 0\nops_bucket{le=\"2\"} 0\n", 40) == 0);
    CHECK(strstr(text, "ops_bucket{le=\"65536\"} 0\nops_bucket{le=\"+Inf\"} 0\nops_sum 0\nops_count 0\n") != NULL);
    hk_buf_free(&b);
    /* Every shared bucket set is ascending and fits. */
    const hk_buckets *sets[] = {&hk_buckets_request_ms, &hk_buckets_commit_us, &hk_buckets_batch,
                                &hk_buckets_delivery_ms};
    for (size_t i = 0; i < HK_ARRAY_SIZE(sets); i++) {
        CHECK(sets[i]->n > 0 && sets[i]->n <= HK_HIST_MAX_BUCKETS);
        for (uint32_t j = 1; j < sets[i]->n; j++)
            CHECK(sets[i]->le[j] > sets[i]->le[j - 1]);
    }
}

static void test_outcomes(void)
{
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(0, 204)), "2xx");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(0, 302)), "3xx");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(0, 410)), "4xx");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(0, 503)), "5xx");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(UV_ETIMEDOUT, 0)), "timeout");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(UV_ECONNREFUSED, 0)), "refused");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(UV_ECONNRESET, 0)), "reset");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(HK_ETLS, 0)), "tls");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(HK_EFORBIDDEN, 0)), "ssrf");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(UV_EAI_NONAME, 0)), "dns");
    CHECK_STR(hk_metrics_outcome_name(hk_metrics_outcome_of(HK_EPROTO, 0)), "error");
    /* The process's set counts answers by class and attempts by outcome. */
    uint64_t before = hk_metrics.http_requests[HK_M_IVANTI][3], seen = hk_metrics.http_duration[HK_M_IVANTI].count;
    hk_metrics_http(HK_M_IVANTI, 401, 3);
    CHECK_INT(hk_metrics.http_requests[HK_M_IVANTI][3], before + 1);
    CHECK_INT(hk_metrics.http_duration[HK_M_IVANTI].count, seen + 1);
    uint64_t ok = hk_metrics.deliveries[HK_M_OUT_2XX], lat = hk_metrics.signal_to_2xx.count;
    hk_metrics_attempt(0, 500, 10);
    CHECK_INT(hk_metrics.signal_to_2xx.count, lat); /* only a 2xx is a delivery's latency */
    hk_metrics_attempt(0, 200, 10);
    CHECK_INT(hk_metrics.deliveries[HK_M_OUT_2XX], ok + 1);
    CHECK_INT(hk_metrics.signal_to_2xx.count, lat + 1);
}

/* Replaces webhook w (stored) with state st. */
static void set_state(hk_store *s, hk_webhook *w, enum hk_webhook_state st)
{
    w->state = st;
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 1000};
    op.u.webhook_put.webhook = w;
    CHECK_INT(hk_store_apply(s, &op), 0);
}

static void test_queue_summary(void)
{
    fx_mkdir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    hk_store *s = fx_open(&loop);
    hk_queue_summary q;
    uint64_t by_state[3];
    CHECK_INT(hk_store_queue_summary(s, 5000, 100, &q), 0);
    CHECK(q.pending == 0 && q.due == 0 && q.parked == 0 && !q.capped && q.oldest_ms == 0);
    CHECK_INT(hk_store_webhook_states(s, by_state), 0);
    CHECK(by_state[0] == 0 && by_state[1] == 0 && by_state[2] == 0);

    hk_webhook a, b, c;
    fx_webhook(&a, "a", "e", NULL);
    fx_webhook(&b, "b", "e", NULL);
    fx_webhook(&c, "c", "e", NULL);
    fx_create(s, &a);
    fx_create(s, &b);
    fx_create(s, &c);
    /* Two events, each queued for all three, due when they were signalled. */
    CHECK_INT(fx_signal(s, "e", 1000, NULL, 1, NULL), 0);
    CHECK_INT(fx_signal(s, "e", 2000, NULL, 1, NULL), 0);
    set_state(s, &c, HK_WH_STOPPED);
    CHECK_INT(hk_store_webhook_states(s, by_state), 0);
    CHECK(by_state[HK_WH_ACTIVE] == 2 && by_state[HK_WH_STOPPED] == 1 && by_state[HK_WH_TOO_MANY_ERRORS] == 0);

    /* At 1500 the Active webhooks have one due entry each and one not due yet; the stopped one's are parked. */
    CHECK_INT(hk_store_queue_summary(s, 1500, 100, &q), 0);
    CHECK_INT(q.pending, 6);
    CHECK_INT(q.due, 2);
    CHECK_INT(q.parked, 2);
    CHECK(!q.capped);
    CHECK_INT(q.oldest_ms, 1000);
    CHECK_INT(hk_store_queue_summary(s, 2000, 100, &q), 0);
    CHECK(q.pending == 6 && q.due == 4 && q.parked == 2 && !q.capped);
    /* The walk stops at max: the counts are lower bounds then, and say so; pending stays exact. */
    CHECK_INT(hk_store_queue_summary(s, 2000, 3, &q), 0);
    CHECK(q.capped && q.due + q.parked == 3 && q.pending == 6);
    CHECK_INT(hk_store_queue_summary(s, 2000, 6, &q), 0);
    CHECK(!q.capped && q.due + q.parked == 6);
    /* One webhook's count, walked whole or stopped at max (the console's rows): lower bounds that say so. */
    CHECK_INT(hk_store_pending_max(s, a.id, 1500, 0, &q), 0);
    CHECK(q.pending == 2 && q.due == 1 && !q.capped);
    CHECK_INT(hk_store_pending_max(s, a.id, 1500, 2, &q), 0);
    CHECK(q.pending == 2 && q.due == 1 && !q.capped);
    CHECK_INT(hk_store_pending_max(s, a.id, 1500, 1, &q), 0);
    CHECK(q.pending == 1 && q.due == 1 && q.capped);
    set_state(s, &b, HK_WH_TOO_MANY_ERRORS);
    CHECK_INT(hk_store_queue_summary(s, 1500, 100, &q), 0);
    CHECK(q.pending == 6 && q.due == 1 && q.parked == 4);
    CHECK_INT(hk_store_webhook_states(s, by_state), 0);
    CHECK(by_state[HK_WH_ACTIVE] == 1 && by_state[HK_WH_STOPPED] == 1 && by_state[HK_WH_TOO_MANY_ERRORS] == 1);

    hk_webhook_free(&a);
    hk_webhook_free(&b);
    hk_webhook_free(&c);
    hk_store_close(s);
    uv_loop_close(&loop);
    fx_rmdir();
}

int main(void)
{
    test_escaping();
    test_scaled();
    test_histogram();
    test_outcomes();
    test_queue_summary();
    return unit_done();
}
