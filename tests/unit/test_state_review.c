/*
 * Unit tests of the state layer's answers to a review, on a real store:
 * a map grown by another process while a query is open (a nested query
 * must not hang, the loop must not wait for a commit's sync), and the
 * damaged or old records that must not stop a rule for good.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "auth.h"
#include "cli.h"
#include "codec.h"
#include "config.h"
#include "kv.h"
#include "state_fixture.h"
#include "tables.h"

/* ---- what the store logs ------------------------------------------------------------ */

static FILE *cap_file;
static int cap_saved = -1;

/* From here until capture_end, what is written to stderr goes to a file. */
static void capture_start(void)
{
    fflush(stderr);
    cap_file = tmpfile();
    cap_saved = dup(2);
    if (cap_file == NULL || cap_saved < 0 || dup2(fileno(cap_file), 2) < 0) {
        perror("capture");
        exit(1);
    }
}

/* Restores stderr and returns what was written meanwhile (malloc'd, NUL-terminated). */
static char *capture_end(void)
{
    fflush(stderr);
    dup2(cap_saved, 2);
    close(cap_saved);
    long n = ftell(cap_file);
    char *text = hk_malloc((size_t)(n > 0 ? n : 0) + 1);
    rewind(cap_file);
    size_t got = n > 0 ? fread(text, 1, (size_t)n, cap_file) : 0;
    text[got] = '\0';
    fclose(cap_file);
    fputs(text, stderr); /* still shown with the test's output */
    return text;
}

/* Lines of text containing needle. */
static int lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Stores raw bytes under key in db, as a damaged store or an older version would hold them. */
struct raw_put {
    enum hk_db db;
    const void *key, *val;
    size_t klen, vlen;
};

static int raw_put_fn(hk_txn *txn, void *arg)
{
    struct raw_put *r = arg;
    if (r->val == NULL)
        return hk_del(txn, r->db, r->key, r->klen, NULL, 0);
    return hk_put(txn, r->db, r->key, r->klen, r->val, r->vlen, 0);
}

static void raw_put(hk_store *s, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct raw_put r = {db, key, val, klen, vlen};
    CHECK_INT(hk_kv_write_sync(hk__store_kv(s), raw_put_fn, &r), 0);
}

static void raw_del(hk_store *s, enum hk_db db, const void *key, size_t klen)
{
    raw_put(s, db, key, klen, NULL, 0);
}

/* The last commit then looks like an older version's: it did not record itself. */
static void as_older_version(hk_store *s)
{
    raw_del(s, HK_DB_META, HK_KV_WRITER_STAMP, strlen(HK_KV_WRITER_STAMP));
}

static void qkey(uint8_t k[20], uint32_t wid, uint64_t due, uint64_t eid)
{
    hk_be32(k, wid);
    hk_be64(k + 4, due);
    hk_be64(k + 12, eid);
}

/* A queue entry as an older version wrote it: the 12-byte form, without an index entry. */
static void old_queue_put(hk_store *s, uint32_t wid, uint64_t due, uint64_t eid)
{
    uint8_t k[20], v[12];
    qkey(k, wid, due, eid);
    hk_be32(v, 0);
    hk_be64(v + 4, due);
    raw_put(s, HK_DB_QUEUE, k, 20, v, 12);
}

/* ---- the due queue and outcomes ------------------------------------------------------- */

#define MAXD 16

struct due_list {
    hk_delivery d[MAXD];
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
    HK_UNUSED(ev);
    if (l->n < MAXD)
        l->d[l->n++] = *d;
    return true;
}

static size_t due_at(hk_store *s, uint64_t now, struct due_list *l)
{
    memset(l, 0, sizeof(*l));
    hk_due_scan scan = {.now_ms = now, .webhook = want_all, .delivery = collect, .arg = l};
    CHECK_INT(hk_store_scan_due(s, &scan), 0);
    return l->n;
}

/* A failed attempt of d, retried at next_due. */
static int fail_once(hk_store *s, const hk_delivery *d, uint64_t now, uint64_t next_due)
{
    hk_attempt rec = {.webhook_id = d->webhook_id,
                      .event_id = d->event_id,
                      .event_name = "a.b",
                      .event_uuid = "u",
                      .attempt = d->attempts + 1,
                      .started_ms = now,
                      .status = 500,
                      .error = "500 x",
                      .url = "http://127.0.0.1:9/hook",
                      .request = "",
                      .response = "",
                      .next_due_ms = next_due};
    hk_op op = {.type = HK_OP_OUTCOME, .now_ms = now};
    op.u.outcome.delivery = *d;
    op.u.outcome.rec = &rec;
    op.u.outcome.next_due_ms = next_due;
    op.u.outcome.disable_after = 100;
    return hk_store_apply(s, &op);
}

/* ---- a map grown by another process ---------------------------------------------- */

/* More than the fixture's whole map (8 MiB), so the map must grow to hold it. */
#define PAD_BYTES (12u << 20)

static int put_pad(hk_txn *txn, void *arg)
{
    HK_UNUSED(arg);
    char *pad = hk_calloc(1, PAD_BYTES);
    int rc = hk_put(txn, HK_DB_META, "test:pad", 8, pad, PAD_BYTES, 0);
    free(pad);
    return rc;
}

/* Another process (as `hookd` CLI commands do) opens the store with a larger map and fills it. */
static void grow_elsewhere(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        hk_kv_env *kv;
        int rc = hk_kv_open(&kv, fx_dir, 64u << 20, 1, NULL);
        if (rc == 0) {
            rc = hk_kv_write_sync(kv, put_pad, NULL);
            hk_kv_close(kv);
        }
        _exit(rc == 0 ? 0 : 1);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

struct nested {
    hk_store *s;
    uint32_t other; /* the webhook the nested query reads */
    int calls;
    int nested_rc;
};

static int query_inside(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct nested *n = arg;
    HK_UNUSED(w);
    HK_UNUSED(st);
    if (n->calls++ == 0) {
        grow_elsewhere();
        hk_webhook other;
        n->nested_rc = hk_store_webhook_get(n->s, n->other, &other);
        if (n->nested_rc == 0)
            hk_webhook_free(&other);
    }
    return 0;
}

/* A query from inside a listing's callback, after the CLI grew the map: retried later, never a hang. */
static void test_nested_query_after_growth(bool with_loop)
{
    uv_loop_t loop;
    fx_mkdir();
    if (with_loop)
        uv_loop_init(&loop);
    hk_store *s = fx_open(with_loop ? &loop : NULL);
    hk_webhook a, b;
    fx_webhook(&a, "a", "a.b", NULL);
    fx_webhook(&b, "b", "a.b", NULL);
    fx_create(s, &a);
    uint32_t idb = fx_create(s, &b);

    struct nested n = {s, idb, 0, 1};
    CHECK_INT(hk_store_webhooks_each(s, 0, query_inside, &n), 0);
    CHECK_INT(n.calls, 2);
    CHECK_INT(n.nested_rc, UV_EAGAIN);
    if (with_loop)
        uv_run(&loop, UV_RUN_DEFAULT); /* the adoption queued on the threadpool */

    /* Once the listing is over the grown map is adopted and everything reads again. */
    hk_webhook got;
    CHECK_INT(hk_store_webhook_get(s, idb, &got), 0);
    CHECK_STR(got.name, "b");
    hk_webhook_free(&got);
    hk_store_counters ctr;
    hk_store_get_counters(s, &ctr);
    CHECK(ctr.map_size >= 64u << 20);
    CHECK(fx_signal(s, "a.b", 5000, NULL, 1, NULL) == 0);

    hk_store_close(s);
    if (with_loop)
        CHECK_INT(uv_loop_close(&loop), 0);
    hk_webhook_free(&a);
    hk_webhook_free(&b);
    fx_rmdir();
}

/* A thread holding a transaction while the loop needs the map adopted: the group commit during its fsync. */
struct holder {
    hk_store *s;
    uv_sem_t holding, release;
    int rc;
};

static void hold_read(void *arg)
{
    struct holder *h = arg;
    hk_txn *txn;
    h->rc = hk_kv_read(hk__store_kv(h->s), &txn);
    uv_sem_post(&h->holding);
    uv_sem_wait(&h->release);
    if (h->rc == 0)
        hk_txn_end(txn);
}

static void test_loop_never_waits_to_adopt(void)
{
    uv_loop_t loop;
    uv_thread_t t;
    fx_mkdir();
    uv_loop_init(&loop);
    hk_store *s = fx_open(&loop);
    hk_webhook a;
    fx_webhook(&a, "a", "a.b", NULL);
    uint32_t id = fx_create(s, &a);

    struct holder h = {.s = s};
    uv_sem_init(&h.holding, 0);
    uv_sem_init(&h.release, 0);
    CHECK_INT(uv_thread_create(&t, hold_read, &h), 0);
    uv_sem_wait(&h.holding);
    CHECK_INT(h.rc, 0);
    grow_elsewhere();

    /* The loop thread answers at once instead of waiting for the other thread. */
    hk_webhook got;
    CHECK_INT(hk_store_webhook_get(s, id, &got), UV_EAGAIN);
    CHECK(hk_store_busy(s)); /* the adoption waits on the threadpool */

    uv_sem_post(&h.release);
    uv_thread_join(&t);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!hk_store_busy(s));
    CHECK_INT(hk_store_webhook_get(s, id, &got), 0);
    CHECK_STR(got.name, "a");
    hk_webhook_free(&got);

    hk_store_close(s);
    CHECK_INT(uv_loop_close(&loop), 0);
    uv_sem_destroy(&h.holding);
    uv_sem_destroy(&h.release);
    hk_webhook_free(&a);
    fx_rmdir();
}

/* ---- a webhook put without its webhook ------------------------------------------------- */

static void test_webhook_put_needs_its_webhook(void)
{
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 1000};
    uint8_t *buf = NULL;
    size_t len = 0;
    CHECK_INT(hk_op_encode(&op, &buf, &len), HK_EINVAL);
    CHECK(buf == NULL);

    /* What a write-ahead log could hold: the put's fields with the NULL string for the webhook. */
    hk__wbuf b = {0};
    hk__w_u8(&b, 1);
    hk__w_u8(&b, HK_OP_WEBHOOK_PUT);
    hk__w_u64(&b, 1000);
    hk__w_str(&b, NULL); /* the webhook */
    hk__w_u8(&b, 0);     /* by_client */
    hk__w_u64(&b, 0);    /* unmodified_since_ms */
    hk__w_str(&b, NULL); /* the state event: kind, reason, uuid */
    hk__w_str(&b, NULL);
    hk__w_raw(&b, (const uint8_t[16]){0}, 16);
    hk_op back;
    CHECK_INT(hk_op_decode(&back, b.p, b.len), HK_EINVAL);
    free(b.p);

    /* Applied anyway, it is refused and changes nothing. */
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    CHECK_INT(hk_store_apply(s, &op), HK_EINVAL);
    hk_webhook w;
    CHECK_INT(hk_store_webhook_get(s, 1, &w), HK_ENOTFOUND);
    hk_store_close(s);
    fx_rmdir();
}

/* ---- statistics that cannot be read ---------------------------------------------------- */

static int count_listed(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    int *n = arg;
    HK_UNUSED(w);
    CHECK_INT(st->calls, 0);
    (*n)++;
    return 0;
}

static void test_bad_statistics_count_from_zero(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook a, b;
    fx_webhook(&a, "a", "a.b", NULL);
    fx_webhook(&b, "b", "x.y", NULL);
    uint32_t ida = fx_create(s, &a);
    fx_create(s, &b);
    uint8_t k[4];
    hk_be32(k, ida);
    raw_put(s, HK_DB_STATS, k, 4,
            "\x07"
            "bad",
            4);

    /* Listed (both of them), with zeros and one warning. */
    int n = 0;
    capture_start();
    CHECK_INT(hk_store_webhooks_each(s, 0, count_listed, &n), 0);
    char *log = capture_end();
    CHECK_INT(n, 2);
    CHECK_INT(lines_with(log, "statistics of webhook"), 1);
    free(log);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, ida, &st), 0);
    CHECK_INT(st.calls, 0);

    /* An outcome is recorded (not failed, so not resent forever) and counts afresh. */
    CHECK_INT(fx_signal(s, "a.b", 5000, NULL, 1, NULL), 0);
    struct due_list l;
    CHECK_INT(due_at(s, 5000, &l), 1);
    CHECK_INT(fail_once(s, &l.d[0], 5100, 9000), 0);
    CHECK_INT(hk_store_webhook_stats(s, ida, &st), 0);
    CHECK_INT(st.calls, 1);
    CHECK_INT(st.errors, 1);
    CHECK_INT(st.consecutive, 1);
    CHECK_INT(due_at(s, 9000, &l), 1);
    CHECK_INT(l.d[0].attempts, 1);

    hk_store_close(s);
    hk_webhook_free(&a);
    hk_webhook_free(&b);
    fx_rmdir();
}

/* ---- queue entries left behind by an older version --------------------------------- */

static hk_store *reopen(hk_store *s, char **log)
{
    hk_store_close(s);
    capture_start();
    s = fx_open(NULL);
    *log = capture_end();
    return s;
}

static void test_old_queue_entries_are_checked_at_open(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w, v;
    fx_webhook(&w, "w", "a.b", NULL);
    fx_webhook(&v, "v", "a.b", NULL);
    uint32_t idw = fx_create(s, &w), idv = fx_create(s, &v);
    uint64_t eid[4];
    for (int i = 0; i < 4; i++) {
        hk_op op;
        CHECK_INT(fx_signal(s, "a.b", 1000 * (uint64_t)(i + 1), NULL, 1, &op), 0);
        eid[i] = op.u.signal.event_id;
        hk_op_free_out(&op);
    }

    /* An older version meanwhile: it prunes events 1 and 2 and leaves their entries; it requeues
     * w's delivery of event 4 and queues v's of event 1 without indexing them; it delivers w's
     * entry of event 3 and leaves its index entry. */
    uint8_t k[20];
    for (int i = 0; i < 2; i++) {
        uint8_t ek[8];
        hk_be64(ek, eid[i]);
        raw_del(s, HK_DB_EVENTS, ek, 8);
    }
    old_queue_put(s, idw, 4500, eid[3]);
    old_queue_put(s, idv, 1500, eid[0]);
    qkey(k, idw, 3000, eid[2]);
    raw_del(s, HK_DB_QUEUE, k, 20);
    as_older_version(s);

    /* The scan only reads: the entries of the pruned events are skipped and counted, without a word. */
    struct due_list l;
    hk_due_scan scan = {.now_ms = 10000, .webhook = want_all, .delivery = collect, .arg = &l};
    memset(&l, 0, sizeof(l));
    capture_start();
    CHECK_INT(hk_store_scan_due(s, &scan), 0);
    char *log = capture_end();
    CHECK_INT(l.n, 4);
    CHECK_INT(scan.gone, 5);
    CHECK_INT(lines_with(log, "warn"), 0);
    free(log);

    /* The next open drops them, one warning per webhook naming the count, and indexes the rest. */
    s = reopen(s, &log);
    char want_w[64], want_v[64];
    snprintf(want_w, sizeof(want_w), "2 queued deliveries of webhook %u ", idw);
    snprintf(want_v, sizeof(want_v), "3 queued deliveries of webhook %u ", idv);
    CHECK_INT(lines_with(log, want_w), 1);
    CHECK_INT(lines_with(log, want_v), 1);
    CHECK_INT(lines_with(log, "warn"), 2);
    free(log);
    CHECK_INT(due_at(s, 10000, &l), 4);
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, idw, 10000, &pending, &due), 0);
    CHECK_INT(pending, 2); /* event 4, twice */
    CHECK_INT(hk_store_pending(s, idv, 10000, &pending, &due), 0);
    CHECK_INT(pending, 2); /* events 3 and 4 */

    /* Pruning events 3 and 4 now takes every entry with them, the unindexed one too. */
    hk_op p = {.type = HK_OP_PRUNE, .now_ms = 10000};
    p.u.prune.events_before_ms = 5000;
    p.u.prune.max = 100;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(p.u.prune.removed, 2);
    CHECK_INT(p.u.prune.dropped_deliveries, 4);
    CHECK_INT(hk_store_pending(s, idw, 10000, &pending, &due), 0);
    CHECK_INT(pending, 0);
    CHECK_INT(hk_store_pending(s, idv, 10000, &pending, &due), 0);
    CHECK_INT(pending, 0);

    /* Opening a store this version wrote last finds nothing to say. */
    s = reopen(s, &log);
    CHECK_INT(lines_with(log, "queue"), 0);
    free(log);
    hk_store_close(s);
    hk_webhook_free(&w);
    hk_webhook_free(&v);
    fx_rmdir();
}

/* ---- retention past a future-dated or unreadable event -------------------------------- */

static void test_retention_steps_past_odd_events(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook w;
    fx_webhook(&w, "w", "a.b", NULL);
    uint32_t idw = fx_create(s, &w);
    /* Arrival order: old, dated a year ahead (a clock set wrong), old, old (damaged below), old, recent. */
    const uint64_t at[] = {1000, 1000 + 365ull * 86400000, 2000, 3000, 4000, 9000};
    uint64_t eid[6];
    for (int i = 0; i < 6; i++) {
        hk_op op;
        CHECK_INT(fx_signal(s, "a.b", at[i], NULL, 1, &op), 0);
        eid[i] = op.u.signal.event_id;
        hk_op_free_out(&op);
    }
    uint8_t ek[8];
    hk_be64(ek, eid[3]);
    raw_put(s, HK_DB_EVENTS, ek, 8,
            "\x09"
            "bad",
            4);

    hk_op p = {.type = HK_OP_PRUNE, .now_ms = 10000};
    p.u.prune.events_before_ms = 5000;
    p.u.prune.max = 100;
    capture_start();
    CHECK_INT(hk_store_apply(s, &p), 0);
    char *log = capture_end();
    CHECK(!p.u.prune.more);
    CHECK_INT(p.u.prune.removed, 4);
    CHECK_INT(p.u.prune.dropped_deliveries, 4);
    CHECK_INT(lines_with(log, "1 unreadable event removed"), 1);
    free(log);

    hk_event ev;
    const bool kept[] = {false, true, false, false, false, true};
    for (int i = 0; i < 6; i++) {
        int rc = hk_store_event_get(s, eid[i], &ev);
        CHECK_INT(rc, kept[i] ? 0 : HK_ENOTFOUND);
        if (rc == 0)
            hk_event_free(&ev);
    }
    uint64_t pending, due;
    CHECK_INT(hk_store_pending(s, idw, 10000, &pending, &due), 0);
    CHECK_INT(pending, 2);

    /* Once its time has passed, the future-dated event goes too. */
    p.now_ms = at[1] + 10000;
    p.u.prune.events_before_ms = at[1] + 1;
    CHECK_INT(hk_store_apply(s, &p), 0);
    CHECK_INT(p.u.prune.removed, 2);
    CHECK_INT(hk_store_pending(s, idw, p.now_ms, &pending, &due), 0);
    CHECK_INT(pending, 0);

    hk_store_close(s);
    hk_webhook_free(&w);
    fx_rmdir();
}

/* ---- an empty user record ------------------------------------------------------------- */

static int count_users(const hk_user *u, void *arg)
{
    HK_UNUSED(u);
    (*(int *)arg)++;
    return 0;
}

static void test_empty_user_record_is_no_user(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    uint8_t k[4];
    hk_be32(k, 5);
    raw_put(s, HK_DB_USERS, k, 4, "", 0);
    raw_put(s, HK_DB_USER_CODES, "ghost", 5, k, 4);
    hk_user u;
    CHECK_INT(hk_store_user_get(s, 5, &u), HK_ESTORE);
    CHECK_INT(hk_store_user_by_code(s, "ghost", &u), HK_ESTORE);
    int n = 0;
    CHECK_INT(hk_store_users_each(s, count_users, &n), 0);
    CHECK_INT(n, 0);
    hk_store_close(s);
    fx_rmdir();
}

/* ---- a webhook record that names another id ---------------------------------------------- */

static void test_webhook_id_is_its_key(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook a;
    fx_webhook(&a, "a", "a.b", NULL);
    uint32_t ida = fx_create(s, &a);
    /* Webhook 7 in the old JSON form, naming id 3 (or none at all, for 8). */
    const char *rec7 = "{\"id\":3,\"name\":\"seven\",\"url\":\"http://127.0.0.1:9/\",\"state\":\"Active\","
                       "\"events\":[\"a.b\"]}";
    const char *rec8 = "{\"name\":\"eight\",\"url\":\"http://127.0.0.1:9/\",\"state\":\"Active\"}";
    uint8_t k7[4], k8[4], k3[4];
    hk_be32(k7, 7);
    hk_be32(k8, 8);
    hk_be32(k3, 3);
    raw_put(s, HK_DB_WEBHOOKS, k7, 4, rec7, strlen(rec7));
    raw_put(s, HK_DB_WEBHOOKS, k8, 4, rec8, strlen(rec8));
    raw_put(s, HK_DB_SUBSCRIPTIONS, "a.b", 3, k7, 4);

    hk_webhook got;
    CHECK_INT(hk_store_webhook_get(s, 7, &got), 0);
    CHECK_INT(got.id, 7);
    hk_webhook_free(&got);
    CHECK_INT(hk_store_webhook_get(s, 8, &got), 0);
    CHECK_INT(got.id, 8);
    hk_webhook_free(&got);

    /* The operator's lock is written under 7, and no webhook 3 (or 0) appears. */
    hk_op lock = {.type = HK_OP_WEBHOOK_LOCK, .now_ms = 2000, .u.webhook_lock = {7, true}};
    CHECK_INT(hk_store_apply(s, &lock), 0);
    lock.u.webhook_lock.id = 8;
    CHECK_INT(hk_store_apply(s, &lock), 0);
    CHECK_INT(hk_store_webhook_get(s, 3, &got), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_get(s, 0, &got), HK_ENOTFOUND);
    CHECK_INT(hk_store_webhook_get(s, 7, &got), 0);
    CHECK(got.locked && got.id == 7);
    hk_webhook_free(&got);

    /* So is the disable after a 410 (7 is locked: unlock it first). */
    lock.u.webhook_lock.id = 7;
    lock.u.webhook_lock.locked = false;
    CHECK_INT(hk_store_apply(s, &lock), 0);
    hk_attempt rec = {.webhook_id = 7, .attempt = 1, .started_ms = 3000, .status = 410, .error = "410", .sync = true};
    hk_op at = {.type = HK_OP_ATTEMPT, .now_ms = 3000, .u.attempt = {.rec = &rec, .is410 = true, .disable_after = 5}};
    CHECK_INT(hk_store_apply(s, &at), 0);
    CHECK(at.u.attempt.disabled);
    CHECK_INT(hk_store_webhook_get(s, 3, &got), HK_ENOTFOUND);
    enum hk_webhook_state state;
    bool locked;
    CHECK_INT(hk_store_webhook_state(s, 7, &state, &locked), 0);
    CHECK_INT(state, HK_WH_TOO_MANY_ERRORS);
    CHECK_INT(hk_store_webhook_state(s, ida, &state, &locked), 0);
    CHECK_INT(state, HK_WH_ACTIVE);

    hk_store_close(s);
    hk_webhook_free(&a);
    fx_rmdir();
}

/* ---- revoking by a short id two keys share --------------------------------------------- */

/* A key of user whose hash starts aa bb cc dd (its short id "aabbccdd"), then fifth. */
static void shared_hash(uint8_t hash[32], uint8_t fifth)
{
    memset(hash, 0x11, 32);
    memcpy(hash, "\xaa\xbb\xcc\xdd", 4);
    hash[4] = fifth;
}

static int put_key(hk_store *s, uint32_t user, uint8_t fifth)
{
    hk_op op = {.type = HK_OP_KEY_PUT, .now_ms = 1000};
    hk_key *k = &op.u.key_put.key;
    shared_hash(k->hash, fifth);
    hk_key_short_id(k->hash, k->short_id);
    k->user_id = user;
    return hk_store_apply(s, &op);
}

static bool revoked(hk_store *s, uint8_t fifth)
{
    uint8_t hash[32];
    hk_key k;
    hk_user u;
    shared_hash(hash, fifth);
    CHECK_INT(hk_store_key_get(s, hash, &k, &u), 0);
    return k.revoked;
}

/* Runs `hookd key revoke arg` on the store in fx_dir (which must be closed); its exit code. */
static int cli_revoke(const char *arg)
{
    hk_config cfg;
    hk_cli c;
    hk_config_defaults(&cfg);
    free(cfg.data_dir);
    cfg.data_dir = hk_strdup(fx_dir);
    char *argv[] = {(char *)"hookd", (char *)"key", (char *)"revoke", (char *)arg, NULL};
    int rc = hk_cli_parse(4, argv, &c);
    CHECK_INT(rc, HK_CLI_RUN);
    if (rc == HK_CLI_RUN)
        rc = hk_cli_run(&c, &cfg);
    hk_config_free(&cfg);
    return rc;
}

static void test_ambiguous_short_id_revokes_nothing(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_op up = {.type = HK_OP_USER_PUT, .now_ms = 1000};
    snprintf(up.u.user_put.user.code, sizeof(up.u.user_put.user.code), "admin");
    CHECK_INT(hk_store_apply(s, &up), 0);
    uint32_t uid = up.u.user_put.id;
    CHECK_INT(put_key(s, uid, 1), 0);

    /* One key with the short id: revoked by it. */
    hk_op rv = {.type = HK_OP_KEY_REVOKE, .now_ms = 2000};
    snprintf(rv.u.key_revoke.short_id, sizeof(rv.u.key_revoke.short_id), "aabbccdd");
    CHECK_INT(hk_store_apply(s, &rv), 0);
    CHECK(revoked(s, 1));

    /* Two: which one is meant cannot be told, and neither is revoked. */
    CHECK_INT(put_key(s, uid, 2), 0);
    CHECK_INT(put_key(s, uid, 3), 0);
    CHECK_INT(hk_store_apply(s, &rv), HK_ECONFLICT);
    CHECK(strstr(rv.u.key_revoke.err, "key id aabbccdd matches 3 keys") != NULL);
    CHECK(!revoked(s, 2) && !revoked(s, 3));

    /* The command line refuses it too, saying why. */
    hk_store_close(s);
    capture_start();
    CHECK_INT(cli_revoke("aabbccdd"), 1);
    char *log = capture_end();
    CHECK_INT(lines_with(log, "key id aabbccdd matches 3 keys"), 1);
    free(log);
    s = fx_open(NULL);
    CHECK(!revoked(s, 2) && !revoked(s, 3));

    /* By its hash, either goes. */
    hk_op by_hash = {.type = HK_OP_KEY_REVOKE, .now_ms = 2000};
    shared_hash(by_hash.u.key_revoke.hash, 3);
    CHECK_INT(hk_store_apply(s, &by_hash), 0);
    CHECK(!revoked(s, 2) && revoked(s, 3));

    hk_store_close(s);
    fx_rmdir();
}

/* ---- an outcome whose record names another webhook ------------------------------------ */

static void test_outcome_record_of_another_webhook(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    hk_webhook a, b;
    fx_webhook(&a, "a", "a.b", NULL);
    fx_webhook(&b, "b", "x.y", NULL);
    uint32_t ida = fx_create(s, &a), idb = fx_create(s, &b);
    CHECK_INT(fx_signal(s, "a.b", 5000, NULL, 1, NULL), 0);
    struct due_list l;
    CHECK_INT(due_at(s, 5000, &l), 1);

    hk_attempt rec = {.webhook_id = idb, .event_id = l.d[0].event_id, .attempt = 1, .status = 500, .error = "x"};
    hk_op op = {.type = HK_OP_OUTCOME, .now_ms = 5100};
    op.u.outcome.delivery = l.d[0];
    op.u.outcome.rec = &rec;
    op.u.outcome.next_due_ms = 9000;
    op.u.outcome.disable_after = 1;
    CHECK_INT(hk_store_apply(s, &op), HK_EINVAL);

    /* Nothing changed: the entry is still due, neither webhook counted or disabled an attempt. */
    CHECK_INT(due_at(s, 5000, &l), 1);
    hk_webhook_stats st;
    CHECK_INT(hk_store_webhook_stats(s, ida, &st), 0);
    CHECK_INT(st.calls, 0);
    CHECK_INT(hk_store_webhook_stats(s, idb, &st), 0);
    CHECK_INT(st.calls, 0);
    enum hk_webhook_state state;
    bool locked;
    CHECK_INT(hk_store_webhook_state(s, idb, &state, &locked), 0);
    CHECK_INT(state, HK_WH_ACTIVE);

    hk_store_close(s);
    hk_webhook_free(&a);
    hk_webhook_free(&b);
    fx_rmdir();
}

/* ---- a CSV import under a deep tree ------------------------------------------------------- */

#define DEEP 1000     /* a chain as deep as a tree may be */
#define LEAVES 50000u /* rows under its deepest node */

static char *append(char *buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static char *append(char *buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    if (*cap - *len < 64) {
        *cap = *cap ? 2 * *cap : 4096;
        buf = hk_realloc(buf, *cap);
    }
    va_start(ap, fmt);
    *len += (size_t)vsnprintf(buf + *len, *cap - *len, fmt, ap);
    va_end(ap);
    return buf;
}

static int import_nodes(hk_store *s, const char *text, size_t len, hk_op *op)
{
    memset(op, 0, sizeof(*op));
    op->type = HK_OP_TREE_IMPORT;
    op->now_ms = 1000;
    op->u.tree_import.text = text;
    op->u.tree_import.len = len;
    return hk_store_apply(s, op);
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

static void test_import_reads_each_ancestor_once(void)
{
    fx_mkdir();
    hk_store *s = fx_open(NULL);
    char *csv = NULL;
    size_t len = 0, cap = 0;
    csv = append(csv, &len, &cap, "id,parent,name\n");
    /* The chain is in the store already; its leaves come in the file, each DEEP levels down. */
    for (uint32_t i = 1; i <= DEEP; i++)
        csv = append(csv, &len, &cap, "%u,%u,n%u\n", i, i - 1, i);
    hk_op op;
    CHECK_INT(import_nodes(s, csv, len, &op), 0);
    /* As many rows under the root, then under the deepest node: the second must not take
     * DEEP times as long (5e7 reads inside one commit, which every other commit waits for). */
    double took[2];
    for (int deep = 0; deep < 2; deep++) {
        len = 0;
        for (uint32_t i = 0; i < LEAVES; i++)
            csv = append(csv, &len, &cap, "%u,%u,leaf\n", 100000 + (uint32_t)deep * LEAVES + i, deep ? DEEP : 1);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        CHECK_INT(import_nodes(s, csv, len, &op), 0);
        took[deep] = seconds_since(&t0);
        CHECK_INT(op.u.tree_import.count, LEAVES);
    }
    fprintf(stderr, "import of %u rows: %.2f s under the root, %.2f s %d levels down\n", LEAVES, took[0], took[1],
            DEEP);
    CHECK(took[1] < 4 * took[0] + 2.0);

    /* The limits hold as before: one level more is refused, and so is a cycle within the file. */
    len = 0;
    csv = append(csv, &len, &cap, "300000,%u,x\n300001,300000,too deep\n", DEEP);
    CHECK_INT(import_nodes(s, csv, len, &op), HK_EINVAL);
    CHECK(strstr(op.u.tree_import.err, "line 2: node 300001 would be deeper than 1000 levels") != NULL);
    len = 0;
    csv = append(csv, &len, &cap, "400000,400002,a\n400001,5,b\n400002,400000,c\n");
    CHECK_INT(import_nodes(s, csv, len, &op), HK_EINVAL);
    CHECK(strstr(op.u.tree_import.err, "line 1: node 400000 cannot be its own ancestor") != NULL);
    /* Depth counted through rows found good before: the fourth is one level too deep. */
    len = 0;
    csv = append(csv, &len, &cap, "500000,%u,a\n500001,500000,b\n500002,500001,c\n500003,500002,d\n", DEEP - 2);
    CHECK_INT(import_nodes(s, csv, len, &op), HK_EINVAL);
    CHECK(strstr(op.u.tree_import.err, "line 4: node 500003 would be deeper than 1000 levels") != NULL);
    len -= strlen("500003,500002,d\n");
    CHECK_INT(import_nodes(s, csv, len, &op), 0);
    CHECK_INT(op.u.tree_import.count, 3);
    free(csv);
    hk_store_close(s);
    fx_rmdir();
}

int main(void)
{
    /* A hang is a failure: the process dies with no closing line. */
    alarm(100);
    test_nested_query_after_growth(false);
    test_nested_query_after_growth(true);
    test_loop_never_waits_to_adopt();
    test_webhook_put_needs_its_webhook();
    test_bad_statistics_count_from_zero();
    test_old_queue_entries_are_checked_at_open();
    test_retention_steps_past_odd_events();
    test_empty_user_record_is_no_user();
    test_webhook_id_is_its_key();
    test_ambiguous_short_id_revokes_nothing();
    test_outcome_record_of_another_webhook();
    test_import_reads_each_ancestor_once();
    return unit_done();
}
