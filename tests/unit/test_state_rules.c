/*
 * Unit tests of the delivery-side ops on a real store: a signal's fan-out
 * and Idempotency-Key, outcomes with the statistics, retry and auto-disable
 * rules (locked exemption, 410, the state event in the same commit),
 * synchronous attempts, resends, the queue clean-up of a deleted webhook,
 * and the retention step (events with their queue entries, expired
 * Idempotency-Keys only).
 */
#include "state_fixture.h"

#define MAXD 64

struct due_list {
    hk_delivery d[MAXD];
    char name[MAXD][64];
    char data[MAXD][256];
    int64_t pk[MAXD];
    size_t n;
};

static uint32_t want_all(uint32_t wid, void *arg)
{
    HK_UNUSED(wid);
    HK_UNUSED(arg);
    return 1000;
}

static bool collect(const hk_delivery *d, const hk_event *ev, void *arg)
{
    struct due_list *l = arg;
    if (l->n < MAXD) {
        l->d[l->n] = *d;
        snprintf(l->name[l->n], sizeof(l->name[0]), "%s", ev->name);
        snprintf(l->data[l->n], sizeof(l->data[0]), "%.*s", (int)ev->data_len, ev->data);
        l->pk[l->n] = ev->primary_key;
        l->n++;
    }
    return true;
}

/* Every due delivery at now, in (webhook, due, event) order. */
static size_t due_at(hk_store *s, uint64_t now, struct due_list *l, uint64_t *next_due)
{
    memset(l, 0, sizeof(*l));
    hk_due_scan scan = {.now_ms = now, .webhook = want_all, .delivery = collect, .arg = l};
    CHECK_INT(hk_store_scan_due(s, &scan), 0);
    if (next_due != NULL)
        *next_due = scan.next_due_ms;
    return l->n;
}

static void test_signal_fanout_and_idempotency(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook a, b, c;
    fx_webhook(&a, "a", "a.b", NULL);
    fx_webhook(&b, "b", "a.b", NULL);
    b.state = HK_WH_STOPPED;
    fx_webhook(&c, "c", "x.y", NULL);
    uint32_t ida = fx_create(s, &a), idb = fx_create(s, &b);
    fx_create(s, &c);
    CHECK(ida != 0 && idb == ida + 1);

    hk_op op;
    CHECK_INT(fx_signal(s, "a.b", 5000, NULL, 3, &op), 0);
    CHECK_INT(op.u.signal.nwebhooks, 1);
    CHECK_INT(op.u.signal.webhooks[0], ida);
    CHECK(!op.u.signal.duplicate);
    uint64_t eid = op.u.signal.event_id;
    CHECK(eid != 0);
    hk_op_free_out(&op);

    hk_event ev;
    CHECK_INT(hk_store_event_get(s, eid, &ev), 0);
    CHECK_STR(ev.name, "a.b");
    CHECK_STR(ev.data, "{\"a\":1}");
    CHECK_STR(ev.changes, "[\"a\"]");
    CHECK_INT(ev.ts_ms, 5000);
    CHECK_INT(ev.user_id, 3);
    CHECK_INT(ev.primary_key, 42);
    hk_event_free(&ev);
    CHECK_INT(hk_store_event_get(s, eid + 100, &ev), HK_ENOTFOUND);

    struct due_list l;
    uint64_t next;
    CHECK_INT(due_at(s, 4999, &l, &next), 0);
    CHECK_INT(next, 5000);
    CHECK_INT(due_at(s, 5000, &l, &next), 1);
    CHECK_INT(next, UINT64_MAX);
    CHECK_INT(l.d[0].webhook_id, ida);
    CHECK_INT(l.d[0].event_id, eid);
    CHECK_INT(l.d[0].due_ms, 5000);
    CHECK_INT(l.d[0].attempts, 0);
    CHECK_INT(l.d[0].first_ms, 5000);
    CHECK_STR(l.name[0], "a.b");
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, ida, 4000, &pending, &due), 0);
    CHECK(pending == 1 && due == 0);
    CHECK_INT(hk_store_pending(s, idb, 9000, &pending, &due), 0);
    CHECK(pending == 0 && due == 0);

    /* The event type is registered by the signal. */
    uint32_t tid;
    CHECK_INT(hk_store_event_type_id(s, "a.b", &tid), 0);
    CHECK_INT(hk_store_event_type_id(s, "never.seen", &tid), HK_ENOTFOUND);

    /* Idempotency-Key: per user, within the window only. */
    CHECK_INT(fx_signal(s, "a.b", 6000, "order-1", 7, &op), 0);
    uint64_t first = op.u.signal.event_id;
    hk_op_free_out(&op);
    CHECK_INT(fx_signal(s, "a.b", 7000, "order-1", 7, &op), 0);
    CHECK(op.u.signal.duplicate);
    CHECK_INT(op.u.signal.event_id, first);
    CHECK_INT(op.u.signal.nwebhooks, 0);
    hk_op_free_out(&op);
    CHECK_INT(fx_signal(s, "a.b", 7000, "order-1", 8, &op), 0);
    CHECK(!op.u.signal.duplicate && op.u.signal.event_id > first);
    hk_op_free_out(&op);
    CHECK_INT(fx_signal(s, "a.b", 6000 + 60000, "order-1", 7, &op), 0);
    CHECK(!op.u.signal.duplicate);
    hk_op_free_out(&op);
    CHECK_INT(due_at(s, 100000, &l, NULL), 4);

    hk_webhook_free(&a);
    hk_webhook_free(&b);
    hk_webhook_free(&c);
    hk_store_close(s);
    fx_rmdir();
}

/* One failed or successful outcome of delivery d at now. */
static int outcome(hk_store *s, const hk_delivery *d, uint64_t now, bool success, bool is410, uint64_t next_due,
                   hk_op *out)
{
    hk_attempt rec = {.webhook_id = d->webhook_id,
                      .event_id = d->event_id,
                      .event_name = "o.e",
                      .event_uuid = "uuid",
                      .attempt = d->attempts + 1,
                      .started_ms = now,
                      .duration_ms = 5,
                      .success = success,
                      .status = success ? 200
                                : is410 ? 410
                                        : 500,
                      .error = success ? "" : "HTTP/1.1 500 Internal Server Error",
                      .url = "http://127.0.0.1:9/hook",
                      .request = "POST /hook HTTP/1.1\r\n\r\n{}",
                      .request_len = 25,
                      .response = "HTTP/1.1 500 x\r\n\r\n\xff",
                      .response_len = 19,
                      .user_id = 3,
                      .exhausted = !success && next_due == 0,
                      .next_due_ms = next_due};
    hk_op op = {.type = HK_OP_OUTCOME, .now_ms = now};
    hk_op_outcome *o = &op.u.outcome;
    o->delivery = *d;
    o->rec = &rec;
    o->is410 = is410;
    o->next_due_ms = next_due;
    o->disable_after = 3;
    o->on_disable.kind = "errors";
    o->on_disable.reason = rec.error;
    o->on_disable.uuid[0] = 0xee;
    int rc = hk_store_apply(s, &op);
    op.u.outcome.rec = NULL;
    if (out != NULL)
        *out = op;
    return rc;
}

struct log_seen {
    int n;
    hk_attempt last;
};

static int see_log(const hk_attempt *a, void *arg)
{
    struct log_seen *ls = arg;
    if (ls->n++ == 0) {
        hk_attempt_free(&ls->last);
        ls->last = *a;
        ls->last.event_name = hk_strdup(a->event_name);
        ls->last.event_uuid = hk_strdup(a->event_uuid);
        ls->last.error = hk_strdup(a->error);
        ls->last.url = hk_strdup(a->url);
        ls->last.request = hk_strndup(a->request, a->request_len);
        ls->last.response = hk_strndup(a->response, a->response_len);
    }
    return 0;
}

static void test_outcomes_and_auto_disable(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w, watcher, locked;
    fx_webhook(&w, "w", "o.e", NULL);
    uint32_t wid = fx_create(s, &w);
    char errors[32];
    snprintf(errors, sizeof(errors), "webhook%u.errors", wid);
    /* The failing webhook listens to its own state event too: it must not get it. */
    free(w.events[0]);
    w.events[0] = hk_strdup(errors);
    w.events = hk_realloc(w.events, 2 * sizeof(char *));
    w.events[1] = hk_strdup("o.e");
    w.nevents = 2;
    fx_create(s, &w);
    CHECK_INT(w.id, wid);
    fx_webhook(&watcher, "watcher", errors, NULL);
    uint32_t vid = fx_create(s, &watcher);
    fx_webhook(&locked, "locked", "o.e", NULL);
    locked.locked = true;
    uint32_t lid = fx_create(s, &locked);

    CHECK_INT(fx_signal(s, "o.e", 10000, NULL, 3, NULL), 0);
    struct due_list l;
    CHECK_INT(due_at(s, 10000, &l, NULL), 2);
    hk_delivery d = l.d[0], dl = l.d[1];
    CHECK_INT(d.webhook_id, wid);
    CHECK_INT(dl.webhook_id, lid);

    /* A failure with a retry: counted, requeued at its due time, logged. */
    hk_op op;
    CHECK_INT(outcome(s, &d, 10100, false, false, 11000, &op), 0);
    CHECK(!op.u.outcome.vanished && !op.u.outcome.disabled);
    CHECK_INT(op.u.outcome.log_id, 1);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, wid, &st), 0);
    CHECK(st.calls == 1 && st.errors == 1 && st.consecutive == 1 && st.last_error_ms == 10100);
    CHECK_STR(st.last_error, "HTTP/1.1 500 Internal Server Error");
    CHECK_INT(due_at(s, 10999, &l, NULL), 0 + 1); /* only the locked webhook's entry */
    CHECK_INT(due_at(s, 11000, &l, NULL), 2);
    CHECK_INT(l.d[0].webhook_id, wid);
    CHECK_INT(l.d[0].attempts, 1);
    CHECK_INT(l.d[0].first_ms, 10000);
    CHECK_INT(l.d[0].due_ms, 11000);
    /* The same outcome again: its queue entry is gone, nothing is recorded. */
    CHECK_INT(outcome(s, &d, 10200, false, false, 11000, &op), 0);
    CHECK(op.u.outcome.vanished);
    CHECK_INT(hk_store_webhook_stats(s, wid, &st), 0);
    CHECK_INT(st.calls, 1);

    struct log_seen ls = {0};
    CHECK_INT(hk_store_attempts_each(s, wid, 0, true, see_log, &ls), 0);
    CHECK_INT(ls.n, 1);
    CHECK_INT(ls.last.id, 1);
    CHECK_INT(ls.last.status, 500);
    CHECK_INT(ls.last.next_due_ms, 11000);
    CHECK(!ls.last.exhausted && !ls.last.disabled && !ls.last.sync);
    /* Bytes that are not UTF-8 are stored as U+FFFD. */
    CHECK_INT(ls.last.response_len, 21);
    CHECK(memcmp(ls.last.response + 18, "\xef\xbf\xbd", 3) == 0);

    /* Two more failures reach disable_after (3): TooManyErrors, with the state event in the same commit. */
    d = l.d[0];
    CHECK_INT(outcome(s, &d, 11100, false, false, 12000, &op), 0);
    CHECK(!op.u.outcome.disabled);
    due_at(s, 12000, &l, NULL);
    d = l.d[0];
    CHECK_INT(d.attempts, 2);
    CHECK_INT(outcome(s, &d, 12100, false, false, 13000, &op), 0);
    CHECK(op.u.outcome.disabled);
    hk_webhook got;
    CHECK_INT(hk_store_webhook_get(s, wid, &got), 0);
    CHECK_INT(got.state, HK_WH_TOO_MANY_ERRORS);
    CHECK_INT(got.nevents, 2);
    hk_webhook_free(&got);
    CHECK_INT(due_at(s, 12100, &l, NULL), 2);
    /* The watcher has the state event; the failing webhook does not. */
    size_t found = 0;
    for (size_t i = 0; i < l.n; i++) {
        CHECK(l.d[i].webhook_id != wid || strcmp(l.name[i], "webhook.errors") != 0);
        if (l.d[i].webhook_id == vid) {
            found++;
            CHECK_STR(l.name[i], "webhook.errors");
            CHECK_INT(l.pk[i], wid);
            char want[200];
            snprintf(want, sizeof(want),
                     "{\"WebhookId\":%u,\"State\":\"errors\",\"Reason\":\"HTTP/1.1 500 Internal Server Error\"}", wid);
            CHECK_STR(l.data[i], want);
        }
    }
    CHECK_INT(found, 1);
    ls.n = 0;
    CHECK_INT(hk_store_attempts_each(s, wid, 0, true, see_log, &ls), 0);
    CHECK_INT(ls.n, 3);
    CHECK(ls.last.disabled);
    /* Parked entries stay queued: the requeued one is still there. */
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, wid, 13000, &pending, &due), 0);
    CHECK_INT(pending, 1);

    /* A locked webhook is never disabled, not even by a 410. */
    CHECK_INT(outcome(s, &dl, 10100, false, true, 0, &op), 0);
    CHECK(!op.u.outcome.disabled);
    CHECK_INT(hk_store_webhook_get(s, lid, &got), 0);
    CHECK_INT(got.state, HK_WH_ACTIVE);
    hk_webhook_free(&got);
    CHECK_INT(hk_store_pending(s, lid, 99999, &pending, &due), 0);
    CHECK_INT(pending, 0); /* exhausted: nothing requeued */

    /* Re-activated by a client: the count starts afresh. A success resets it too. */
    CHECK_INT(hk_store_webhook_get(s, wid, &got), 0);
    got.state = HK_WH_ACTIVE;
    hk_op put = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 13000};
    put.u.webhook_put.webhook = &got;
    put.u.webhook_put.by_client = true;
    CHECK_INT(hk_store_apply(s, &put), 0);
    hk_webhook_free(&got);
    CHECK_INT(hk_store_webhook_stats(s, wid, &st), 0);
    CHECK(st.consecutive == 0 && st.calls == 3 && st.errors == 3);

    /* A 410 disables an unlocked webhook at once. */
    CHECK_INT(fx_signal(s, "o.e", 14000, NULL, 3, NULL), 0);
    due_at(s, 14000, &l, NULL);
    for (size_t i = 0; i < l.n; i++)
        if (l.d[i].webhook_id == wid && l.d[i].due_ms == 14000)
            d = l.d[i];
    CHECK_INT(d.due_ms, 14000);
    CHECK_INT(outcome(s, &d, 14100, false, true, 0, &op), 0);
    CHECK(op.u.outcome.disabled);

    hk_attempt_free(&ls.last);
    hk_webhook_free(&w);
    hk_webhook_free(&watcher);
    hk_webhook_free(&locked);
    hk_store_close(s);
    fx_rmdir();
}

static void test_sync_attempt_resend_and_queue_drop(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w;
    fx_webhook(&w, "w", "r.e", NULL);
    uint32_t wid = fx_create(s, &w);

    hk_attempt rec = {.webhook_id = wid,
                      .attempt = 1,
                      .started_ms = 500,
                      .status = 200,
                      .success = true,
                      .event_name = "test",
                      .url = "http://x/",
                      .sync = true,
                      .exhausted = true};
    hk_op op = {.type = HK_OP_ATTEMPT, .now_ms = 600};
    op.u.attempt.rec = &rec;
    op.u.attempt.disable_after = 1;
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(!op.u.attempt.vanished && !op.u.attempt.disabled);
    CHECK(op.u.attempt.log_id != 0);
    hk_attempt a;
    CHECK_INT(hk_store_attempt_get(s, wid, op.u.attempt.log_id, &a), 0);
    CHECK(a.sync && a.success && a.event_id == 0 && a.webhook_id == wid);
    CHECK_STR(a.url, "http://x/");
    CHECK_STR(a.error, "");
    hk_attempt_free(&a);
    CHECK_INT(hk_store_attempt_get(s, wid, 999, &a), HK_ENOTFOUND);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, wid, &st), 0);
    CHECK_INT(st.calls, 1);
    /* A failing synchronous call counts toward disable_after like a delivery. */
    rec.success = false;
    rec.status = 500;
    rec.error = "boom";
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(op.u.attempt.disabled);
    rec.webhook_id = wid + 50;
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(op.u.attempt.vanished);

    /* Resend: queued now, for a webhook and event that exist. */
    CHECK_INT(fx_signal(s, "r.e", 1000, NULL, 1, &op), 0); /* disabled: nothing queued */
    uint64_t eid = op.u.signal.event_id;
    CHECK_INT(op.u.signal.nwebhooks, 0);
    hk_op_free_out(&op);
    hk_op rs = {.type = HK_OP_RESEND, .now_ms = 2000, .u.resend = {wid, eid}};
    CHECK_INT(hk_store_apply(s, &rs), 0);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, wid, 2000, &pending, &due), 0);
    CHECK(pending == 1 && due == 1);
    rs.u.resend.event_id = eid + 9;
    CHECK_INT(hk_store_apply(s, &rs), HK_ENOTFOUND);
    rs.u.resend.event_id = eid;
    rs.u.resend.webhook_id = wid + 9;
    CHECK_INT(hk_store_apply(s, &rs), HK_ENOTFOUND);
    for (uint64_t t = 2001; t < 2010; t++) {
        rs.now_ms = t;
        rs.u.resend.webhook_id = wid;
        CHECK_INT(hk_store_apply(s, &rs), 0);
    }
    CHECK_INT(hk_store_pending(s, wid, 3000, &pending, &due), 0);
    CHECK_INT(pending, 10);

    /* Queue drop leaves a live webhook's entries alone, then clears a deleted one's in steps. */
    hk_op qd = {.type = HK_OP_QUEUE_DROP, .now_ms = 3000, .u.queue_drop = {.webhook_id = wid, .max = 4}};
    CHECK_INT(hk_store_apply(s, &qd), 0);
    CHECK(!qd.u.queue_drop.more);
    CHECK_INT(hk_store_pending(s, wid, 3000, &pending, &due), 0);
    CHECK_INT(pending, 10);
    hk_op del = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = 3000, .u.webhook_delete = {.id = wid}};
    CHECK_INT(hk_store_apply(s, &del), 0);
    CHECK_INT(hk_store_attempt_get(s, wid, 1, &a), HK_ENOTFOUND);
    CHECK_INT(hk_store_apply(s, &qd), 0);
    CHECK(qd.u.queue_drop.more);
    CHECK_INT(hk_store_pending(s, wid, 3000, &pending, &due), 0);
    CHECK_INT(pending, 6);
    CHECK_INT(hk_store_apply(s, &qd), 0);
    CHECK_INT(hk_store_apply(s, &qd), 0);
    CHECK(!qd.u.queue_drop.more);
    CHECK_INT(hk_store_pending(s, wid, 3000, &pending, &due), 0);
    CHECK_INT(pending, 0);

    hk_webhook_free(&w);
    hk_store_close(s);
    fx_rmdir();
}

/* Issue 11 items 4 and 16: an event takes its queue entries with it; an
 * expired Idempotency-Key's entry never takes a newer record of the same key. */
static void test_prune(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w, parked;
    fx_webhook(&w, "w", "p.e", NULL);
    fx_webhook(&parked, "parked", "p.e", NULL);
    uint32_t wid = fx_create(s, &w), pid = fx_create(s, &parked);
    for (uint64_t t = 1000; t < 1010; t++)
        CHECK_INT(fx_signal(s, "p.e", t, NULL, 1, NULL), 0);
    CHECK_INT(fx_signal(s, "p.e", 50000, NULL, 1, NULL), 0);
    hk_attempt rec = {.webhook_id = wid, .attempt = 1, .started_ms = 1000, .sync = true};
    hk_op at = {.type = HK_OP_ATTEMPT, .now_ms = 1000, .u.attempt = {.rec = &rec, .disable_after = 100}};
    for (int i = 0; i < 3; i++)
        CHECK_INT(hk_store_apply(s, &at), 0);

    /* A stopped (parked) webhook's entries are what outlived their events before. */
    parked.state = HK_WH_STOPPED;
    hk_op put = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 2000, .u.webhook_put = {.webhook = &parked}};
    CHECK_INT(hk_store_apply(s, &put), 0);

    hk_op p = {.type = HK_OP_PRUNE, .now_ms = 60000};
    p.u.prune.attempts_before_ms = 2000;
    p.u.prune.events_before_ms = 2000;
    p.u.prune.idempotency_before_ms = 0;
    p.u.prune.max = 10;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK(p.u.prune.more);
    /* 3 attempts, then events with their 2 entries each until the budget is spent (never split). */
    CHECK_INT(p.u.prune.removed, 6);
    CHECK_INT(p.u.prune.dropped_deliveries, 6);
    uint64_t total_removed = p.u.prune.removed, total_dropped = p.u.prune.dropped_deliveries;
    for (int i = 0; i < 10 && p.u.prune.more; i++) {
        CHECK_INT(hk_store_apply(s, &p), 0);
        total_removed += p.u.prune.removed;
        total_dropped += p.u.prune.dropped_deliveries;
    }
    CHECK(!p.u.prune.more);
    CHECK_INT(total_removed, 13);
    CHECK_INT(total_dropped, 20);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, pid, 99999, &pending, &due), 0);
    CHECK_INT(pending, 1); /* only the entry of the event at 50000 */
    CHECK_INT(hk_store_pending(s, wid, 99999, &pending, &due), 0);
    CHECK_INT(pending, 1);
    struct due_list l;
    CHECK_INT(due_at(s, 99999, &l, NULL), 2);
    CHECK_INT(l.d[0].due_ms, 50000);

    /* Item 16: a key reused after its expiry keeps its new record through the prune. */
    hk_op op;
    CHECK_INT(fx_signal(s, "p.e", 100000, "key", 9, &op), 0);
    hk_op_free_out(&op);
    CHECK_INT(fx_signal(s, "p.e", 100000 + 60000, "key", 9, &op), 0); /* expired: a new event, a new record */
    CHECK(!op.u.signal.duplicate);
    uint64_t second = op.u.signal.event_id;
    hk_op_free_out(&op);
    p.u.prune.attempts_before_ms = p.u.prune.events_before_ms = 0;
    p.u.prune.idempotency_before_ms = 100000 + 1;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(p.u.prune.removed, 0); /* the old time entry goes, the newer record stays */
    CHECK_INT(fx_signal(s, "p.e", 100000 + 60000 + 10, "key", 9, &op), 0);
    CHECK(op.u.signal.duplicate);
    CHECK_INT(op.u.signal.event_id, second);
    hk_op_free_out(&op);
    /* Once that record expires too, it goes. */
    p.u.prune.idempotency_before_ms = 100000 + 60000 + 1;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(p.u.prune.removed, 1);
    CHECK_INT(fx_signal(s, "p.e", 100000 + 60000 + 20, "key", 9, &op), 0);
    CHECK(!op.u.signal.duplicate);
    hk_op_free_out(&op);

    hk_webhook_free(&w);
    hk_webhook_free(&parked);
    hk_store_close(s);
    fx_rmdir();
}

int main(void)
{
    test_signal_fanout_and_idempotency();
    test_outcomes_and_auto_disable();
    test_sync_attempt_resend_and_queue_drop();
    test_prune();
    return unit_done();
}
