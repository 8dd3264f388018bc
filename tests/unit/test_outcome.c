/* Unit tests of the outcome rules (outcome.h): retry schedule, jitter bounds, Retry-After, 410, texts. */
#include <string.h>

#include "outcome.h"
#include "unit.h"

#define NOW 1800000000000ull /* 2027-01-15T08:00:00Z */

static hk_client_result answer(int status, const char *status_line, const char *headers)
{
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.status = status;
    r.status_line = status_line;
    r.headers = headers;
    r.headers_len = strlen(headers);
    r.body = "";
    r.request_head = "POST / HTTP/1.1\r\n\r\n";
    return r;
}

static hk_client_result failure(int error, const char *text)
{
    hk_client_result r;
    memset(&r, 0, sizeof(r));
    r.error = error;
    r.error_text = text;
    r.status_line = r.headers = r.body = r.request_head = "";
    return r;
}

static void test_schedule_parse(void)
{
    uint64_t *d;
    size_t n;
    CHECK_INT(hk_retry_schedule_parse("0s,5s,5m,30m,2h,5h,10h,10h", &d, &n), 0);
    CHECK_INT(n, 8);
    CHECK_INT(d[0], 0);
    CHECK_INT(d[1], 5000);
    CHECK_INT(d[2], 300000);
    CHECK_INT(d[7], 36000000);
    free(d);
    CHECK_INT(hk_retry_schedule_parse(" 1s  2s,3s ", &d, &n), 0);
    CHECK_INT(n, 3);
    CHECK_INT(d[2], 3000);
    free(d);
    CHECK_INT(hk_retry_schedule_parse("", &d, &n), HK_EINVAL);
    CHECK_INT(hk_retry_schedule_parse(" , ", &d, &n), HK_EINVAL);
    CHECK_INT(hk_retry_schedule_parse("5s,soon", &d, &n), HK_EINVAL);
    hk_retry_policy p;
    CHECK_INT(hk_retry_policy_init(&p, "1s,x", 0, 0, 10), HK_EINVAL);
    hk_retry_policy_free(&p);
}

static void test_jitter_bounds(void)
{
    hk_retry_policy p;
    CHECK_INT(hk_retry_policy_init(&p, "0s,10s,100s", 20, 3600000, 10), 0);
    uint64_t lo, hi;
    hk_retry_delay_bounds(&p, 1, &lo, &hi);
    CHECK_INT(lo, 8000);
    CHECK_INT(hi, 12000);
    hk_retry_delay_bounds(&p, 2, &lo, &hi);
    CHECK_INT(lo, 80000);
    CHECK_INT(hi, 120000);
    /* Every random value lands within the bounds, and both ends and the middle are reached. */
    uint64_t x = 0x12345678u, min = UINT64_MAX, max = 0, outside = 0;
    for (int i = 0; i < 100000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t d = hk_retry_delay(&p, 1, x);
        outside += d < 8000 || d > 12000;
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    CHECK_INT(outside, 0);
    CHECK(min < 8100 && max > 11900);
    CHECK_INT(hk_retry_delay(&p, 1, 1000000), 10000); /* the middle: no change */
    /* The same value gives the same delay. */
    CHECK_INT(hk_retry_delay(&p, 2, 4242), hk_retry_delay(&p, 2, 4242));
    /* Without jitter, the schedule as written; a zero delay stays zero. */
    p.jitter_pct = 0;
    CHECK_INT(hk_retry_delay(&p, 1, 77), 10000);
    p.jitter_pct = 50;
    CHECK_INT(hk_retry_delay(&p, 0, 77), 0);
    hk_retry_policy_free(&p);
    hk_retry_policy_free(&p); /* safe twice */
}

static void test_retry_after_parse(void)
{
    uint64_t ms;
    CHECK_INT(hk_retry_after_parse("120", NOW, &ms), 0);
    CHECK_INT(ms, 120000);
    CHECK_INT(hk_retry_after_parse(" 3", NOW, &ms), 0);
    CHECK_INT(ms, 3000);
    CHECK_INT(hk_retry_after_parse("99999999999999999999", NOW, &ms), 0);
    CHECK(ms == UINT64_MAX);
    /* An HTTP date: the wait from now; in the past it is no wait at all. */
    CHECK_INT(hk_retry_after_parse("Fri, 15 Jan 2027 08:00:30 GMT", NOW, &ms), 0);
    CHECK_INT(ms, 30000);
    CHECK_INT(hk_retry_after_parse("Fri, 15 Jan 2027 07:00:00 GMT", NOW, &ms), 0);
    CHECK_INT(ms, 0);
    CHECK_INT(hk_retry_after_parse("1.5", NOW, &ms), HK_EINVAL);
    CHECK_INT(hk_retry_after_parse("soon", NOW, &ms), HK_EINVAL);
    CHECK_INT(hk_retry_after_parse("-5", NOW, &ms), HK_EINVAL);
    CHECK_INT(hk_retry_after_parse("", NOW, &ms), HK_EINVAL);
}

static void test_decide(void)
{
    hk_retry_policy p;
    CHECK_INT(hk_retry_policy_init(&p, "0s,5s,5m", 0, 60000, 10), 0);
    hk_outcome o;

    hk_client_result ok = answer(204, "HTTP/1.1 204 No Content", "");
    hk_outcome_decide(&p, 1, &ok, NOW, 0, &o);
    CHECK(o.success && !o.exhausted && !o.is410);
    CHECK_INT(o.next_due_ms, 0);
    CHECK_STR(o.error, "");

    /* A failure is retried on the schedule; after the last entry it is exhausted. */
    hk_client_result err = answer(500, "HTTP/1.1 500 Internal Server Error", "");
    hk_outcome_decide(&p, 1, &err, NOW, 0, &o);
    CHECK(!o.success && !o.exhausted);
    CHECK_INT(o.status, 500);
    CHECK_INT(o.next_due_ms, NOW + 5000);
    CHECK_STR(o.error, "HTTP/1.1 500 Internal Server Error");
    hk_outcome_decide(&p, 2, &err, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 300000);
    hk_outcome_decide(&p, 3, &err, NOW, 0, &o);
    CHECK(o.exhausted);
    CHECK_INT(o.next_due_ms, 0);

    /* 3xx fails like any other status. */
    hk_client_result moved = answer(301, "HTTP/1.1 301 Moved", "Location: http://elsewhere/\r\n");
    hk_outcome_decide(&p, 1, &moved, NOW, 0, &o);
    CHECK(!o.success && !o.exhausted);

    /* 410 is final at once, and says so. */
    hk_client_result gone = answer(410, "HTTP/1.1 410 Gone", "");
    hk_outcome_decide(&p, 1, &gone, NOW, 0, &o);
    CHECK(o.is410 && o.exhausted && !o.success);
    CHECK_INT(o.next_due_ms, 0);

    /* No response: the client's reason; status 0. */
    hk_client_result refused = failure(UV_ECONNREFUSED, "connection refused");
    hk_outcome_decide(&p, 1, &refused, NOW, 0, &o);
    CHECK(!o.success && !o.is410);
    CHECK_INT(o.status, 0);
    CHECK_STR(o.error, "connection refused");
    CHECK_INT(o.next_due_ms, NOW + 5000);

    /* 429 and 503 wait at least Retry-After, capped at retry_after_max; never less than the schedule. */
    hk_client_result limited = answer(429, "HTTP/1.1 429 Too Many Requests", "Retry-After: 30\r\n");
    hk_outcome_decide(&p, 1, &limited, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 30000);
    hk_client_result capped = answer(503, "HTTP/1.1 503 Busy", "retry-after: 7200\r\n");
    hk_outcome_decide(&p, 1, &capped, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 60000);
    hk_client_result soon = answer(503, "HTTP/1.1 503 Busy", "Retry-After: 1\r\n");
    hk_outcome_decide(&p, 2, &soon, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 300000);
    hk_client_result dated = answer(503, "HTTP/1.1 503 Busy", "Retry-After: Fri, 15 Jan 2027 08:00:45 GMT\r\n");
    hk_outcome_decide(&p, 1, &dated, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 45000);
    /* Other statuses ignore Retry-After; so does an unparsable one. */
    hk_client_result other = answer(500, "HTTP/1.1 500 Oops", "Retry-After: 30\r\n");
    hk_outcome_decide(&p, 1, &other, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 5000);
    hk_client_result junk = answer(429, "HTTP/1.1 429 Slow down", "Retry-After: later\r\n");
    hk_outcome_decide(&p, 1, &junk, NOW, 0, &o);
    CHECK_INT(o.next_due_ms, NOW + 5000);
    /* Retry-After does not add attempts. */
    hk_outcome_decide(&p, 3, &limited, NOW, 0, &o);
    CHECK(o.exhausted);
    hk_retry_policy_free(&p);
}

/* Delays too large for the arithmetic saturate at UINT64_MAX: no wrap, no float-to-integer overflow. */
static void test_huge_delays(void)
{
    const uint64_t big[] = {0, UINT64_MAX, UINT64_MAX / 2 + 1, 3};
    hk_retry_policy p;
    CHECK_INT(hk_retry_policy_set(&p, big, 4, 100, 60000, 10), 0);
    CHECK_INT(p.n, 4);
    /* The jitter's top end doubles the delay: past 2^64, so UINT64_MAX. */
    CHECK(hk_retry_delay(&p, 1, 2000000) == UINT64_MAX);
    CHECK(hk_retry_delay(&p, 1, 1000000) == UINT64_MAX); /* the middle: 2^64 - 1 as a double is 2^64 */
    CHECK(hk_retry_delay(&p, 2, 2000000) == UINT64_MAX);
    CHECK_INT(hk_retry_delay(&p, 1, 0), 0); /* the bottom end: -100% */
    CHECK_INT(hk_retry_delay(&p, 3, 2000000), 6);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 1000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t lo, hi, d = hk_retry_delay(&p, 2, x);
        hk_retry_delay_bounds(&p, 2, &lo, &hi);
        CHECK(d >= lo && d <= hi);
    }
    CHECK(hk_retry_span(&p) == UINT64_MAX);
    /* A retry due past the end of time is due at its end, not wrapped into the past. */
    hk_outcome o;
    hk_client_result err = answer(500, "HTTP/1.1 500 Internal Server Error", "");
    hk_outcome_decide(&p, 1, &err, NOW, 1000000, &o);
    CHECK(!o.exhausted && o.next_due_ms == UINT64_MAX);
    hk_outcome_decide(&p, 2, &err, NOW, 2000000, &o);
    CHECK(!o.exhausted && o.next_due_ms == UINT64_MAX);
    hk_retry_policy_free(&p);

    /* A schedule given as text parses to the same policy as its delays. */
    const uint64_t three[] = {0, 5000, 300000};
    hk_retry_policy q;
    CHECK_INT(hk_retry_policy_set(&q, three, 3, 0, 60000, 10), 0);
    CHECK_INT(hk_retry_policy_init(&p, "0s,5s,5m", 0, 60000, 10), 0);
    CHECK(p.n == q.n && memcmp(p.delays, q.delays, sizeof(three)) == 0);
    hk_retry_policy_free(&p);
    hk_retry_policy_free(&q);
    CHECK_INT(hk_retry_policy_set(&q, three, 0, 0, 0, 10), HK_EINVAL);
    CHECK_INT(hk_retry_policy_set(&q, NULL, 3, 0, 0, 10), HK_EINVAL);
    hk_retry_policy_free(&q);
}

static void test_texts(void)
{
    hk_client_result r = answer(200, "HTTP/1.1 200 OK", "A: b\r\n");
    r.body = "done";
    r.body_len = 4;
    char *req, *resp;
    size_t rl, pl;
    hk_outcome_texts(&r, "{}", 2, true, 0, &req, &rl, &resp, &pl);
    CHECK_STR(req, "POST / HTTP/1.1\r\n\r\n{}");
    CHECK_INT(rl, strlen(req));
    CHECK_STR(resp, "HTTP/1.1 200 OK\r\nA: b\r\n\r\ndone");
    CHECK_INT(pl, strlen(resp));
    free(req);
    free(resp);
    /* Cut at max. */
    hk_outcome_texts(&r, "{}", 2, true, 10, &req, &rl, &resp, &pl);
    CHECK_INT(rl, 10);
    CHECK_INT(pl, 10);
    CHECK(memcmp(resp, "HTTP/1.1 2", 10) == 0);
    free(req);
    free(resp);
    /* Nothing sent: the body alone, or nothing, as asked; no response. */
    hk_client_result none = failure(UV_ECONNREFUSED, "connection refused");
    hk_outcome_texts(&none, "{}", 2, true, 0, &req, &rl, &resp, &pl);
    CHECK_STR(req, "{}");
    CHECK_STR(resp, "");
    CHECK_INT(pl, 0);
    free(req);
    free(resp);
    hk_outcome_texts(&none, "{}", 2, false, 0, &req, &rl, &resp, &pl);
    CHECK_STR(req, "");
    free(req);
    free(resp);
}

int main(void)
{
    test_schedule_parse();
    test_jitter_bounds();
    test_retry_after_parse();
    test_decide();
    test_huge_delays();
    test_texts();
    return unit_done();
}
