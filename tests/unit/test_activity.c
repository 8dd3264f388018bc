/*
 * test_activity.c: the console's per-minute attempt counters: what an
 * attempt counts as, the hour's window and its ring, one webhook against
 * the total, and room for webhooks when the table is full.
 */
#include "activity.h"
#include "unit.h"

#define MIN 60000ull
/* A fixed wall clock: 2026-11-22T10:00:00Z, a minute's start. */
#define T0 1795341600000ull

static uint32_t sum(const hk_activity_minute m[HK_ACTIVITY_MINUTES], enum hk_activity_outcome o)
{
    uint32_t n = 0;
    for (size_t i = 0; i < HK_ACTIVITY_MINUTES; i++)
        n += m[i].count[o];
    return n;
}

static void test_classify(void)
{
    enum hk_activity_outcome o = HK_ACTIVITY_OUTCOMES;
    hk_attempt a = {.success = true};
    CHECK(hk_activity_classify(&a, &o) && o == HK_ACTIVITY_DELIVERED);
    a = (hk_attempt){.status = 500};
    CHECK(hk_activity_classify(&a, &o) && o == HK_ACTIVITY_RETRYING);
    a = (hk_attempt){.status = 500, .exhausted = true};
    CHECK(hk_activity_classify(&a, &o) && o == HK_ACTIVITY_FAILED);
    a = (hk_attempt){.status = 0, .disabled = true};
    CHECK(hk_activity_classify(&a, &o) && o == HK_ACTIVITY_FAILED);
    /* Execute, Test and custom actions are not deliveries. */
    a = (hk_attempt){.success = true, .sync = true};
    CHECK(!hk_activity_classify(&a, &o));
}

static void test_minutes_and_window(void)
{
    hk_activity *a = hk_activity_new();
    hk_activity_minute m[HK_ACTIVITY_MINUTES];
    /* Two attempts in the current minute, one five minutes back, one just
     * outside the hour, which the series must not show. */
    hk_activity_count(a, 7, T0 + 59 * MIN + 1000, HK_ACTIVITY_DELIVERED);
    hk_activity_count(a, 7, T0 + 59 * MIN + 59999, HK_ACTIVITY_RETRYING);
    hk_activity_count(a, 7, T0 + 54 * MIN, HK_ACTIVITY_FAILED);
    hk_activity_count(a, 7, T0 - 1, HK_ACTIVITY_DELIVERED);
    hk_activity_series(a, 0, T0 + 59 * MIN + 30000, m);
    CHECK_INT(m[0].start_ms, T0);
    CHECK_INT(m[59].start_ms, T0 + 59 * MIN);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 1);
    CHECK_INT(m[59].count[HK_ACTIVITY_RETRYING], 1);
    CHECK_INT(m[54].count[HK_ACTIVITY_FAILED], 1);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), 1);
    CHECK_INT(sum(m, HK_ACTIVITY_FAILED), 1);

    /* An hour later the ring's slots are reused: the old counts are gone,
     * not added to the new minute's. */
    hk_activity_count(a, 7, T0 + 119 * MIN, HK_ACTIVITY_DELIVERED);
    hk_activity_series(a, 7, T0 + 119 * MIN, m);
    CHECK_INT(m[59].start_ms, T0 + 119 * MIN);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 1);
    CHECK_INT(m[59].count[HK_ACTIVITY_RETRYING], 0);
    CHECK_INT(sum(m, HK_ACTIVITY_FAILED), 0);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), 1);
    hk_activity_free(a);
}

static void test_one_webhook_and_all(void)
{
    hk_activity *a = hk_activity_new();
    hk_activity_minute m[HK_ACTIVITY_MINUTES];
    hk_activity_count(a, 3, T0, HK_ACTIVITY_DELIVERED);
    hk_activity_count(a, 9, T0, HK_ACTIVITY_DELIVERED);
    hk_activity_count(a, 9, T0, HK_ACTIVITY_FAILED);
    hk_activity_series(a, 0, T0, m);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 2);
    CHECK_INT(m[59].count[HK_ACTIVITY_FAILED], 1);
    hk_activity_series(a, 9, T0, m);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 1);
    CHECK_INT(m[59].count[HK_ACTIVITY_FAILED], 1);
    hk_activity_series(a, 3, T0, m);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 1);
    CHECK_INT(m[59].count[HK_ACTIVITY_FAILED], 0);
    /* A webhook without attempts: an hour of zeros, with its minutes named. */
    hk_activity_series(a, 4, T0, m);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), 0);
    CHECK_INT(m[59].start_ms, T0);

    /* A committed record counts in the minute it finished; a synchronous one not at all. */
    hk_attempt rec = {.webhook_id = 3, .started_ms = T0 + 59000, .duration_ms = 2000, .success = true};
    hk_activity_attempt(a, &rec);
    rec.sync = true;
    hk_activity_attempt(a, &rec);
    hk_activity_series(a, 3, T0 + MIN, m);
    CHECK_INT(m[59].count[HK_ACTIVITY_DELIVERED], 1);
    CHECK_INT(m[58].count[HK_ACTIVITY_DELIVERED], 1);
    hk_activity_free(a);
}

static void test_room_for_webhooks(void)
{
    hk_activity *a = hk_activity_new();
    hk_activity_minute m[HK_ACTIVITY_MINUTES];
    /* Fill the table, in an order that is not the ids'. */
    for (uint32_t i = 0; i < HK_ACTIVITY_WEBHOOKS_MAX; i++)
        hk_activity_count(a, (i * 7919u) % 100003u + 1, T0, HK_ACTIVITY_DELIVERED);
    CHECK_INT(hk_activity_untracked(a), 0);
    /* Every webhook was active this hour: a newcomer counts in the total only. */
    hk_activity_count(a, 200000, T0 + MIN, HK_ACTIVITY_FAILED);
    CHECK_INT(hk_activity_untracked(a), 1);
    hk_activity_series(a, 200000, T0 + MIN, m);
    CHECK_INT(sum(m, HK_ACTIVITY_FAILED), 0);
    hk_activity_series(a, 0, T0 + MIN, m);
    CHECK_INT(sum(m, HK_ACTIVITY_FAILED), 1);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), HK_ACTIVITY_WEBHOOKS_MAX);
    /* Known webhooks still count. */
    hk_activity_count(a, 1, T0 + 2 * MIN, HK_ACTIVITY_DELIVERED);
    hk_activity_series(a, 1, T0 + 2 * MIN, m);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), 2);
    /* An hour after the others' last attempt the newcomer gets room, and only webhook 1 kept its own. */
    hk_activity_count(a, 200000, T0 + 61 * MIN, HK_ACTIVITY_FAILED);
    CHECK_INT(hk_activity_untracked(a), 1);
    hk_activity_series(a, 200000, T0 + 61 * MIN, m);
    CHECK_INT(sum(m, HK_ACTIVITY_FAILED), 1);
    hk_activity_series(a, 1, T0 + 61 * MIN, m);
    CHECK_INT(sum(m, HK_ACTIVITY_DELIVERED), 1);
    hk_activity_free(a);
    hk_activity_free(NULL);
}

int main(void)
{
    test_classify();
    test_minutes_and_window();
    test_one_webhook_and_all();
    test_room_for_webhooks();
    return unit_done();
}
