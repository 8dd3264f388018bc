/*
 * Unit tests of HK_OP_RECOVER on a real store: which deliveries a recovery
 * queues again (failed and ended in the window, no later success, not
 * queued any more, each event once), the run of bounded steps (a step
 * walks at most max records; a success committed between two steps still
 * counts), a webhook deleted during a recovery, refusals, the notes of an
 * abandoned recovery, and the op's serialised form (a decoded run applied
 * to a second store gives the same result).
 */
#include "state_fixture.h"
#include "tables.h"

#define T0 1700000000000ull /* a realistic wall clock */
#define SINCE (T0 + 100000)
#define UNTIL (T0 + 200000)

/* One attempt of the queued delivery of (wid, eid) due at *due, started at t; a retry (at t + 1000) follows a
 * failure unless final. *due becomes the retry's due time. Returns the op's status. */
static int attempt(hk_store *s, uint32_t wid, uint64_t eid, uint64_t *due, uint32_t n, uint64_t t, bool success,
                   bool final, int status)
{
    uint64_t next = success || final ? 0 : t + 1000;
    hk_attempt rec = {.webhook_id = wid,
                      .event_id = eid,
                      .event_name = "a",
                      .event_uuid = "00000000-0000-4000-8000-000000000000",
                      .attempt = n,
                      .started_ms = t,
                      .success = success,
                      .status = status,
                      .error = success ? "" : "HTTP/1.1 500 x",
                      .url = "http://127.0.0.1:9/hook",
                      .exhausted = !success && final,
                      .next_due_ms = next};
    hk_op op = {.type = HK_OP_OUTCOME, .now_ms = t};
    hk_op_outcome *o = &op.u.outcome;
    o->delivery = (hk_delivery){.webhook_id = wid, .event_id = eid, .due_ms = *due, .attempts = n - 1, .first_ms = 0};
    o->rec = &rec;
    o->is410 = status == 410;
    o->next_due_ms = next;
    o->disable_after = 1000;
    int rc = hk_store_apply(s, &op);
    CHECK(!o->vanished);
    *due = next;
    return rc;
}

/* Queues (wid, eid) again at t (a resend); the new entry's due time into *due. */
static void resend(hk_store *s, uint32_t wid, uint64_t eid, uint64_t t, uint64_t *due)
{
    hk_op op = {.type = HK_OP_RESEND, .now_ms = t};
    op.u.resend = (hk_op_resend){wid, eid};
    CHECK_INT(hk_store_apply(s, &op), 0);
    *due = t;
}

static uint64_t signal_at(hk_store *s, uint64_t t)
{
    hk_op op;
    CHECK_INT(fx_signal(s, "a", t, NULL, 1, &op), 0);
    uint64_t eid = op.u.signal.event_id;
    hk_op_free_out(&op);
    return eid;
}

/* An event signalled at t whose delivery to wid fails once at t (a 500 or another status, final or to be
 * retried at t + 1000); *due becomes that delivery's next due time. Returns the event's id. */
static uint64_t failed_once(hk_store *s, uint32_t wid, uint64_t t, bool final, int status, uint64_t *due)
{
    uint64_t eid = signal_at(s, t);
    *due = t;
    CHECK_INT(attempt(s, wid, eid, due, 1, t, false, final, status), 0);
    return eid;
}

/* The events of the scenario below. */
struct scenario {
    uint32_t wid, other;
    uint64_t exhausted, retried_ok, resent_ok, before, pending_resend, gone410, pending_retry, after, twice, sync;
};

/*
 * Webhook wid's history; the window is [SINCE, UNTIL]. To be recovered:
 * exhausted (two failures in the window), gone410 (a 410) and twice
 * (exhausted in the window, resent, exhausted again in the window: once).
 */
static void build(hk_store *s, struct scenario *sc)
{
    hk_webhook w, o;
    fx_webhook(&w, "w", "a", NULL);
    fx_webhook(&o, "other", "a", NULL);
    sc->wid = fx_create(s, &w);
    sc->other = fx_create(s, &o);
    hk_webhook_free(&w);
    hk_webhook_free(&o);
    uint64_t d, od;

    sc->before = signal_at(s, T0);
    d = od = T0;
    CHECK_INT(attempt(s, sc->wid, sc->before, &d, 1, T0 + 10, false, true, 500), 0);
    CHECK_INT(attempt(s, sc->other, sc->before, &od, 1, T0 + 10, false, true, 500), 0);

    sc->exhausted = failed_once(s, sc->wid, SINCE + 1000, false, 500, &d);
    CHECK_INT(attempt(s, sc->wid, sc->exhausted, &d, 2, SINCE + 2000, false, true, 500), 0);

    sc->retried_ok = failed_once(s, sc->wid, SINCE + 3000, false, 500, &d);
    CHECK_INT(attempt(s, sc->wid, sc->retried_ok, &d, 2, SINCE + 4000, true, false, 200), 0);

    sc->resent_ok = failed_once(s, sc->wid, SINCE + 5000, true, 500, &d);

    sc->pending_resend = failed_once(s, sc->wid, SINCE + 6000, true, 500, &d);
    resend(s, sc->wid, sc->pending_resend, SINCE + 7000, &d);

    sc->gone410 = failed_once(s, sc->wid, SINCE + 8000, true, 410, &d);
    /* The 410 disabled the webhook; an operator sets it Active again. */
    hk_webhook cur;
    CHECK_INT(hk_store_webhook_get(s, sc->wid, &cur), 0);
    CHECK_INT(cur.state, HK_WH_TOO_MANY_ERRORS);
    cur.state = HK_WH_ACTIVE;
    hk_op put = {.type = HK_OP_WEBHOOK_PUT, .now_ms = SINCE + 8500};
    put.u.webhook_put.webhook = &cur;
    CHECK_INT(hk_store_apply(s, &put), 0);
    hk_webhook_free(&cur);

    sc->pending_retry = failed_once(s, sc->wid, SINCE + 9000, false, 500, &d);

    sc->twice = failed_once(s, sc->wid, SINCE + 10000, true, 500, &d);
    resend(s, sc->wid, sc->twice, SINCE + 11000, &d);
    CHECK_INT(attempt(s, sc->wid, sc->twice, &d, 1, SINCE + 11000, false, true, 503), 0);

    /* A synchronous call that failed in the window: nothing to queue. */
    hk_attempt sync = {.webhook_id = sc->wid,
                       .event_name = "webhook.execute",
                       .started_ms = SINCE + 12000,
                       .status = 500,
                       .error = "x",
                       .exhausted = true,
                       .sync = true};
    hk_op op = {.type = HK_OP_ATTEMPT, .now_ms = SINCE + 12000};
    op.u.attempt.rec = &sync;
    op.u.attempt.disable_after = 1000;
    CHECK_INT(hk_store_apply(s, &op), 0);

    sc->after = failed_once(s, sc->wid, UNTIL + 1000, true, 500, &d);

    /* resent_ok is resent after the window and succeeds then. */
    resend(s, sc->wid, sc->resent_ok, UNTIL + 2000, &d);
    CHECK_INT(attempt(s, sc->wid, sc->resent_ok, &d, 1, UNTIL + 2000, true, false, 200), 0);
}

/* A store in a fresh directory holding the scenario; close it with close_scenario(). */
static hk_store *open_scenario(struct scenario *sc)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    build(s, sc);
    return s;
}

/* Closes a store of open_scenario() and removes the directory fx_dir names (the last one made). */
static void close_scenario(hk_store *s)
{
    hk_store_close(s);
    fx_rmdir();
}

static uint32_t want_all(uint32_t wid, void *arg)
{
    HK_UNUSED(wid);
    HK_UNUSED(arg);
    return 1000;
}

struct due_list {
    hk_delivery d[32];
    size_t n;
};

static bool collect(const hk_delivery *d, const hk_event *ev, void *arg)
{
    HK_UNUSED(ev);
    struct due_list *l = arg;
    if (l->n < HK_ARRAY_SIZE(l->d))
        l->d[l->n++] = *d;
    return true;
}

/* The entries of wid due in [from, to] (each with no attempt made yet): their count, and up to max of them. */
static size_t queued_between(hk_store *s, uint32_t wid, uint64_t from, uint64_t to, hk_delivery *out, size_t max)
{
    struct due_list l = {0};
    hk_due_scan scan = {.now_ms = to, .webhook = want_all, .delivery = collect, .arg = &l};
    CHECK_INT(hk_store_scan_due(s, &scan), 0);
    size_t n = 0;
    for (size_t i = 0; i < l.n; i++)
        if (l.d[i].webhook_id == wid && l.d[i].due_ms >= from) {
            CHECK_INT(l.d[i].attempts, 0);
            if (n < max)
                out[n] = l.d[i];
            n++;
        }
    return n;
}

/* Records of wid with log ids in [from, to). */
struct span {
    uint64_t from, to, n;
};

static int count_span(const hk_attempt *a, void *arg)
{
    struct span *sp = arg;
    if (a->id >= sp->from && a->id < sp->to)
        sp->n++;
    return 0;
}

/* Notes of any recovery left in the store. */
static size_t notes_left(hk_store *s)
{
    hk_kv_env *kv = hk__store_kv(s);
    hk_txn *txn;
    hk_cursor *c;
    hk_val k = {"recover:", 8}, v;
    size_t n = 0;
    CHECK_INT(hk_kv_read(kv, &txn), 0);
    CHECK_INT(hk_cursor_open(txn, HK_DB_META, &c), 0);
    for (int rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (k.len < 8 || memcmp(k.data, "recover:", 8) != 0)
            break;
        n++;
    }
    hk_cursor_close(c);
    hk_txn_end(txn);
    return n;
}

/*
 * Runs a recovery of wid at now in steps of max; before step number
 * `between_at` (0: never), between(s, arg) runs. Returns the status of the
 * last step; the total queued and the steps into *queued and *steps.
 */
static int recover(hk_store *s, uint32_t wid, uint64_t now, uint32_t max, uint64_t *queued, int *steps,
                   void (*between)(hk_store *s, void *arg), int between_at, void *arg)
{
    hk_op op = {.type = HK_OP_RECOVER, .now_ms = now};
    hk_op_recover *r = &op.u.recover;
    *r = (hk_op_recover){.webhook_id = wid, .since_ms = SINCE, .until_ms = UNTIL, .run_ms = now, .run = 7, .max = max};
    *queued = 0;
    *steps = 0;
    for (;;) {
        if (between != NULL && *steps + 1 == between_at)
            between(s, arg);
        uint64_t from = r->from_log_id;
        int rc = hk_store_apply(s, &op);
        (*steps)++;
        if (rc != 0)
            return rc;
        *queued += r->queued;
        /* A step walks at most max of the webhook's records (all of them in the window here but the first). */
        struct span sp = {from, r->next_log_id, 0};
        CHECK_INT(hk_store_attempts_each_brief(s, wid, 0, false, count_span, &sp), 0);
        CHECK(sp.n <= (uint64_t)max + 1);
        if (r->done)
            return 0;
        CHECK(*steps < 1000);
        if (*steps >= 1000)
            return HK_EINVAL;
        r->from_log_id = r->next_log_id;
        op.now_ms++;
    }
}

static int has(const hk_delivery *v, size_t n, uint64_t eid)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].event_id == eid)
            return 1;
    return 0;
}

static void test_what_is_recovered(void)
{
    struct scenario sc;
    hk_store *s = open_scenario(&sc);
    uint64_t now = UNTIL + 60000, queued;
    hk_delivery q[16];
    int steps;

    CHECK_INT(recover(s, sc.wid, now, 2, &queued, &steps, NULL, 0, NULL), 0);
    CHECK_INT(queued, 3);
    CHECK(steps > 5); /* bounded steps, each its own commit */
    /* Queued by the last step(s), due at their time. */
    size_t n = queued_between(s, sc.wid, now, now + (uint64_t)steps, q, 16);
    CHECK_INT(n, 3);
    CHECK(has(q, n, sc.exhausted) && has(q, n, sc.gone410) && has(q, n, sc.twice));
    CHECK(!has(q, n, sc.before) && !has(q, n, sc.after) && !has(q, n, sc.retried_ok));
    CHECK(!has(q, n, sc.resent_ok) && !has(q, n, sc.pending_resend) && !has(q, n, sc.pending_retry));
    CHECK_INT(notes_left(s), 0);
    /* The other webhook's deliveries are its own. */
    CHECK_INT(queued_between(s, sc.other, now, now + (uint64_t)steps, q + 8, 8), 0);

    /* Again: what was queued is pending, so nothing is queued twice. */
    uint64_t later = now + 5000;
    CHECK_INT(recover(s, sc.wid, later, 1000, &queued, &steps, NULL, 0, NULL), 0);
    CHECK_INT(queued, 0);
    CHECK_INT(steps, 1);

    /* Once they are delivered, a recovery of the same window finds their successes. */
    for (size_t i = 0; i < n && i < 16; i++) {
        uint64_t d = q[i].due_ms;
        CHECK_INT(attempt(s, sc.wid, q[i].event_id, &d, 1, later + 10, true, false, 200), 0);
    }
    CHECK_INT(recover(s, sc.wid, later + 5000, 1000, &queued, &steps, NULL, 0, NULL), 0);
    CHECK_INT(queued, 0);
    /* But a recovery also reaches the one whose retry is still waiting, once it is exhausted. */
    uint64_t d = SINCE + 10000;
    CHECK_INT(attempt(s, sc.wid, sc.pending_retry, &d, 2, SINCE + 10000, false, true, 500), 0);
    CHECK_INT(recover(s, sc.wid, later + 6000, 1000, &queued, &steps, NULL, 0, NULL), 0);
    CHECK_INT(queued, 1);
    CHECK_INT(queued_between(s, sc.wid, later + 6000, later + 6000, q, 16), 1);
    CHECK_INT(q[0].event_id, sc.pending_retry);
    close_scenario(s);
}

/* The later success of a step in between: exhausted is resent and delivered. */
static void deliver_exhausted(hk_store *s, void *arg)
{
    struct scenario *sc = arg;
    uint64_t d;
    resend(s, sc->wid, sc->exhausted, UNTIL + 30000, &d);
    CHECK_INT(attempt(s, sc->wid, sc->exhausted, &d, 1, UNTIL + 30000, true, false, 200), 0);
}

static void test_success_between_steps(void)
{
    struct scenario sc;
    hk_store *s = open_scenario(&sc);
    uint64_t now = UNTIL + 60000, queued;
    int steps;
    /* The success lands after the walk has passed exhausted's records. */
    CHECK_INT(recover(s, sc.wid, now, 2, &queued, &steps, deliver_exhausted, 4, &sc), 0);
    CHECK_INT(queued, 2);
    hk_delivery q[16];
    size_t n = queued_between(s, sc.wid, now, now + (uint64_t)steps, q, 16);
    CHECK_INT(n, 2);
    CHECK(has(q, n, sc.gone410) && has(q, n, sc.twice) && !has(q, n, sc.exhausted));
    close_scenario(s);
}

static void delete_webhook(hk_store *s, void *arg)
{
    struct scenario *sc = arg;
    hk_op op = {.type = HK_OP_WEBHOOK_DELETE, .now_ms = UNTIL + 50000};
    op.u.webhook_delete.id = sc->wid;
    CHECK_INT(hk_store_apply(s, &op), 0);
}

static void test_refusals_and_deleted_webhook(void)
{
    struct scenario sc;
    hk_store *s = open_scenario(&sc);
    uint64_t now = UNTIL + 60000, queued;
    int steps;

    /* A webhook that does not exist, a window the wrong way round, a recovery begun too long ago. */
    CHECK_INT(recover(s, 999, now, 10, &queued, &steps, NULL, 0, NULL), HK_ENOTFOUND);
    hk_op op = {.type = HK_OP_RECOVER, .now_ms = now};
    op.u.recover = (hk_op_recover){.webhook_id = sc.wid, .since_ms = UNTIL, .until_ms = SINCE, .run_ms = now};
    CHECK_INT(hk_store_apply(s, &op), HK_EINVAL);
    op.u.recover = (hk_op_recover){.webhook_id = sc.wid, .since_ms = SINCE, .until_ms = UNTIL, .run_ms = now};
    op.now_ms = now + HK_RECOVER_RUN_MAX_MS + 1;
    CHECK_INT(hk_store_apply(s, &op), UV_ETIMEDOUT);

    /* Deleted after a few steps: the notes go, nothing is queued, the run ends. */
    op.now_ms = now;
    op.u.recover.max = 3;
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(!op.u.recover.done && notes_left(s) > 0);
    delete_webhook(s, &sc);
    op.u.recover.from_log_id = op.u.recover.next_log_id;
    op.u.recover.max = 1;
    int n = 0;
    do {
        CHECK_INT(hk_store_apply(s, &op), 0);
        CHECK(op.u.recover.gone);
        CHECK_INT(op.u.recover.queued, 0);
        op.u.recover.from_log_id = op.u.recover.next_log_id;
    } while (!op.u.recover.done && ++n < 100);
    CHECK(op.u.recover.done);
    CHECK_INT(notes_left(s), 0);
    close_scenario(s);
}

static void test_abandoned_notes(void)
{
    struct scenario sc;
    hk_store *s = open_scenario(&sc);
    uint64_t now = UNTIL + 60000, queued;
    int steps;
    /* A recovery that stopped half-way leaves notes... */
    hk_op op = {.type = HK_OP_RECOVER, .now_ms = now};
    op.u.recover =
        (hk_op_recover){.webhook_id = sc.wid, .since_ms = SINCE, .until_ms = UNTIL, .run_ms = now, .run = 1, .max = 6};
    CHECK_INT(hk_store_apply(s, &op), 0);
    CHECK(!op.u.recover.done);
    size_t left = notes_left(s);
    CHECK(left > 0);
    /* ...which a recovery a day later removes, queueing nothing of them. */
    uint64_t later = now + HK_RECOVER_RUN_MAX_MS + 1;
    CHECK_INT(recover(s, sc.other, later, 1000, &queued, &steps, NULL, 0, NULL), 0);
    CHECK_INT(queued, 0); /* the other webhook's only failure is before the window */
    CHECK_INT(notes_left(s), 0);
    hk_delivery q[4];
    CHECK_INT(queued_between(s, sc.wid, later, later, q, 4), 0);
    close_scenario(s);
}

/* The op's serialised form, and a decoded run applied to a second store giving the same result. */
static void test_opcodec(void)
{
    hk_op op = {.type = HK_OP_RECOVER, .now_ms = 77};
    op.u.recover = (hk_op_recover){.webhook_id = 5,
                                   .since_ms = SINCE,
                                   .until_ms = UNTIL,
                                   .run_ms = 76,
                                   .run = 0xdeadbeef,
                                   .from_log_id = 1ull << 40,
                                   .max = 12,
                                   .next_log_id = 9,
                                   .queued = 3,
                                   .done = true};
    uint8_t *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    hk_op back;
    CHECK_INT(hk_op_encode(&op, &a, &alen), 0);
    CHECK_INT(hk_op_decode(&back, a, alen), 0);
    CHECK_INT(back.type, HK_OP_RECOVER);
    CHECK_INT(back.now_ms, 77);
    const hk_op_recover *r = &back.u.recover;
    CHECK(r->webhook_id == 5 && r->since_ms == SINCE && r->until_ms == UNTIL && r->run_ms == 76);
    CHECK(r->run == 0xdeadbeef && r->from_log_id == 1ull << 40 && r->max == 12);
    /* Out fields are not part of it. */
    CHECK(r->next_log_id == 0 && r->queued == 0 && !r->done);
    CHECK_INT(hk_op_encode(&back, &b, &blen), 0);
    CHECK(alen == blen && memcmp(a, b, alen) == 0);
    for (size_t n = 0; n < alen; n++) {
        hk_op bad;
        CHECK_INT(hk_op_decode(&bad, a, n), HK_EINVAL);
    }
    hk_op_decode_free(&back);
    free(a);
    free(b);

    /* Two stores with the same history; one runs the ops, the other their decoded copies. */
    hk_store *st[2];
    char dirs[2][64];
    struct scenario sc[2];
    for (int i = 0; i < 2; i++) {
        st[i] = open_scenario(&sc[i]);
        snprintf(dirs[i], sizeof(dirs[i]), "%s", fx_dir);
    }
    uint64_t now = UNTIL + 60000, total[2] = {0, 0};
    hk_op orig = {.type = HK_OP_RECOVER, .now_ms = now};
    orig.u.recover = (hk_op_recover){
        .webhook_id = sc[0].wid, .since_ms = SINCE, .until_ms = UNTIL, .run_ms = now, .run = 3, .max = 4};
    for (int guard = 0; guard < 100; guard++) {
        uint8_t *enc = NULL;
        size_t len = 0;
        CHECK_INT(hk_op_encode(&orig, &enc, &len), 0);
        hk_op copy;
        CHECK_INT(hk_op_decode(&copy, enc, len), 0);
        free(enc);
        CHECK_INT(hk_store_apply(st[0], &orig), 0);
        CHECK_INT(hk_store_apply(st[1], &copy), 0);
        CHECK(orig.u.recover.next_log_id == copy.u.recover.next_log_id);
        CHECK(orig.u.recover.queued == copy.u.recover.queued && orig.u.recover.done == copy.u.recover.done);
        total[0] += orig.u.recover.queued;
        total[1] += copy.u.recover.queued;
        bool done = orig.u.recover.done;
        hk_op_decode_free(&copy);
        if (done)
            break;
        orig.u.recover.from_log_id = orig.u.recover.next_log_id;
        orig.now_ms++;
    }
    CHECK(orig.u.recover.done);
    CHECK_INT(total[0], 3);
    CHECK_INT(total[1], 3);
    for (int i = 0; i < 2; i++) {
        snprintf(fx_dir, sizeof(fx_dir), "%s", dirs[i]);
        close_scenario(st[i]);
    }
}

int main(void)
{
    test_what_is_recovered();
    test_success_between_steps();
    test_refusals_and_deleted_webhook();
    test_abandoned_notes();
    test_opcodec();
    return unit_done();
}
