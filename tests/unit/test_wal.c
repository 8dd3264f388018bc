/*
 * test_wal.c: the write-ahead log (sync = log). The log alone: records
 * written and read back, groups taken back, segments crossed and recycled,
 * a gap refused. The store on it, driven through the state layer: a
 * process that acknowledges ops and then dies (between apply and
 * checkpoint, or inside a checkpoint) loses none of them and applies none
 * twice, with the ids it acknowledged; a truncated last record, a bad CRC,
 * an LSN out of order and a torn group's remains in the tail are never
 * applied; a log left behind is replayed by a later sync = lmdb start and
 * by a CLI process.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "state_fixture.h"
#include "store_int.h"
#include "wal.h"

#define SEG 4096 /* small segments, so that a store's groups cross several */

static char waldir[96];

static void rm_tree(void)
{
    char path[512];
    DIR *d = opendir(waldir);
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            snprintf(path, sizeof(path), "%s/%s", waldir, de->d_name);
            unlink(path);
        }
        closedir(d);
        rmdir(waldir);
    }
    fx_rmdir();
}

static void fresh_dir(void)
{
    fx_mkdir();
    snprintf(waldir, sizeof(waldir), "%s/wal", fx_dir);
}

/* ---- the log alone ------------------------------------------------------------------------ */

struct seen {
    uint64_t lsn[512];
    char text[512][16];
    size_t n;
};

static int collect(uint64_t lsn, const uint8_t *rec, size_t len, void *arg)
{
    struct seen *s = arg;
    if (s->n < 512) {
        s->lsn[s->n] = lsn;
        snprintf(s->text[s->n], sizeof(s->text[0]), "%.*s", (int)len, (const char *)rec);
        s->n++;
    }
    return 0;
}

static void add_text(hk__wal *w, const char *t)
{
    hk__wal_add(w, (const uint8_t *)t, strlen(t));
}

static void test_log_written_and_read_back(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, false, collect, NULL, NULL), 0);
    add_text(w, "one");
    add_text(w, "two");
    add_text(w, "three");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 3);
    add_text(w, "four");
    add_text(w, "five");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 5);
    CHECK_INT(hk__wal_flush(w, &last, true), 0); /* an empty group changes nothing */
    CHECK_INT(last, 5);
    hk__wal_close(w);

    struct seen s = {.n = 0};
    hk__wal_info info;
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, true, collect, &s, &info), 0);
    CHECK_INT(s.n, 5);
    CHECK_INT(info.replayed, 5);
    CHECK_INT(info.last, 5);
    CHECK_INT(info.cleared, 0);
    CHECK_STR(s.text[0], "one");
    CHECK_STR(s.text[4], "five");
    CHECK_INT(s.lsn[4], 5);
    hk__wal_close(w);

    /* Only what the state lacks is replayed. */
    memset(&s, 0, sizeof(s));
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 3, false, collect, &s, &info), 0);
    CHECK_INT(s.n, 2);
    CHECK_INT(s.lsn[0], 4);
    CHECK_STR(s.text[0], "four");
    /* Appends continue after the last record. */
    add_text(w, "six");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 6);
    hk__wal_close(w);
    rm_tree();
}

static void test_log_undo(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, false, collect, NULL, NULL), 0);
    add_text(w, "kept");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    add_text(w, "failed-1");
    add_text(w, "failed-2");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 3);
    CHECK_INT(hk__wal_undo(w), 0);
    CHECK_INT(hk__wal_undo(w), HK_EINVAL); /* only the last group, once */
    add_text(w, "after");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 2); /* the failed group's LSNs are given out again */
    hk__wal_close(w);
    struct seen s = {.n = 0};
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 2);
    CHECK_STR(s.text[0], "kept");
    CHECK_STR(s.text[1], "after");
    hk__wal_close(w);
    rm_tree();
}

static size_t files_in(const char *dir, const char *suffix)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        n += l > strlen(suffix) && strcmp(de->d_name + l - strlen(suffix), suffix) == 0;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_log_segments_and_recycling(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    char rec[1000];
    memset(rec, 'x', sizeof(rec));
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, false, collect, NULL, NULL), 0);
    for (int g = 0; g < 20; g++) {
        hk__wal_add(w, (const uint8_t *)rec, sizeof(rec));
        hk__wal_add(w, (const uint8_t *)rec, sizeof(rec));
        CHECK_INT(hk__wal_flush(w, &last, true), 0);
    }
    CHECK_INT(last, 40);
    /* A group larger than a segment gets one of its own size. */
    char big[9000];
    memset(big, 'y', sizeof(big));
    hk__wal_add(w, (const uint8_t *)big, sizeof(big));
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    size_t before = files_in(waldir, ".log");
    CHECK(before >= 20);
    hk__wal_close(w);

    /* Every record comes back across the segment boundaries. */
    struct seen s = {.n = 0};
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 41);
    CHECK_INT(s.lsn[40], 41);
    /* Once durable elsewhere, the old segments become at most two spares. */
    CHECK_INT(hk__wal_recycle(w, 41), 0);
    CHECK(files_in(waldir, ".log") <= 3);
    CHECK_INT(hk__wal_segments(w), files_in(waldir, ".log"));
    add_text(w, "next");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 42);
    hk__wal_close(w);
    memset(&s, 0, sizeof(s));
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 41, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 1);
    CHECK_STR(s.text[0], "next");
    /* Recycled segments are reused: many more groups leave few files. */
    for (int g = 0; g < 30; g++) {
        hk__wal_add(w, (const uint8_t *)rec, sizeof(rec));
        CHECK_INT(hk__wal_flush(w, &last, true), 0);
        CHECK_INT(hk__wal_recycle(w, last), 0);
    }
    CHECK(files_in(waldir, ".log") <= 4);
    hk__wal_close(w);
    rm_tree();
}

/* Appends text as a group (synced or lazy) and checks the log's fdatasyncs and whether it holds unsynced groups after.
 */
static void lazy_step(hk__wal *w, const char *text, bool sync, uint64_t want_syncs, bool want_unsynced)
{
    uint64_t last;
    add_text(w, text);
    CHECK_INT(hk__wal_flush(w, &last, sync), 0);
    CHECK_INT(hk__wal_syncs(w), want_syncs);
    CHECK(hk__wal_unsynced(w) == want_unsynced);
}

/* Lazy groups are written without a sync of their own; the next synced one, a sync or a move to the next segment covers
 * them. */
static void test_log_lazy_groups(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, false, collect, NULL, NULL), 0);
    lazy_step(w, "a", true, 1, false);
    lazy_step(w, "b", false, 1, true);
    lazy_step(w, "c", true, 2, false); /* covers b */
    lazy_step(w, "d", false, 2, true);
    CHECK_INT(hk__wal_sync(w), 0);
    CHECK_INT(hk__wal_syncs(w), 3);
    CHECK(!hk__wal_unsynced(w));
    CHECK_INT(hk__wal_sync(w), 0); /* nothing left to sync: no fdatasync */
    CHECK_INT(hk__wal_syncs(w), 3);
    /* Lazy groups until one no longer fits: the segment left behind is synced first. */
    char rec[1000];
    memset(rec, 'x', sizeof(rec));
    size_t files = files_in(waldir, ".log");
    int groups = 0;
    while (files_in(waldir, ".log") == files && groups < 10) {
        uint64_t before = hk__wal_syncs(w);
        hk__wal_add(w, (const uint8_t *)rec, sizeof(rec));
        CHECK_INT(hk__wal_flush(w, &last, false), 0);
        groups++;
        CHECK_INT(hk__wal_syncs(w), before + (files_in(waldir, ".log") == files ? 0 : 1));
        CHECK(hk__wal_unsynced(w));
    }
    CHECK(files_in(waldir, ".log") == files + 1);
    hk__wal_close(w);
    /* Nothing lost by a process that ends: every record comes back, in order. */
    struct seen s = {.n = 0};
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 4 + groups);
    CHECK_STR(s.text[1], "b");
    CHECK_STR(s.text[3], "d");
    CHECK_INT(s.lsn[s.n - 1], 4 + (uint64_t)groups);
    hk__wal_close(w);
    rm_tree();
}

/* A failed sync with lazy groups waiting breaks the log; without them, only the failed group is lost. */
static void test_log_failed_sync(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, false, collect, NULL, NULL), 0);
    /* Everything synced: a failed sync fails its group, and the log goes on. */
    add_text(w, "a");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    hk__wal_test_fail_syncs(1);
    add_text(w, "lost");
    CHECK(hk__wal_flush(w, &last, true) != 0);
    add_text(w, "b");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 2);
    /* A lazy group waits for a sync that fails: nothing is appended any more. */
    add_text(w, "c");
    CHECK_INT(hk__wal_flush(w, &last, false), 0);
    hk__wal_test_fail_syncs(1);
    CHECK(hk__wal_sync(w) != 0);
    add_text(w, "d");
    CHECK_INT(hk__wal_flush(w, &last, true), HK_ESTORE);
    CHECK_INT(hk__wal_sync(w), HK_ESTORE);
    hk__wal_close(w);
    /* The same when the failed sync is a synced group's own. */
    struct seen s = {.n = 0};
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 3);
    CHECK_STR(s.text[1], "b");
    CHECK_STR(s.text[2], "c");
    add_text(w, "e");
    CHECK_INT(hk__wal_flush(w, &last, false), 0);
    hk__wal_test_fail_syncs(1);
    add_text(w, "f");
    CHECK(hk__wal_flush(w, &last, true) != 0);
    add_text(w, "g");
    CHECK_INT(hk__wal_flush(w, &last, true), HK_ESTORE);
    hk__wal_close(w);
    memset(&s, 0, sizeof(s));
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 0, true, collect, &s, NULL), 0);
    CHECK_INT(s.n, 4); /* a, b, c, e: the failed groups were taken out again */
    CHECK_STR(s.text[3], "e");
    hk__wal_close(w);
    rm_tree();
}

static void test_log_missing_records_refused(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    /* A log that starts at record 10 cannot serve a state that holds records up to 5 only. */
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 9, false, collect, NULL, NULL), 0);
    add_text(w, "ten");
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 10);
    hk__wal_close(w);
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 5, false, collect, NULL, NULL), HK_ESTORE);
    struct seen s = {.n = 0};
    CHECK_INT(hk__wal_open(&w, waldir, SEG, 9, false, collect, &s, NULL), 0);
    CHECK_INT(s.n, 1);
    hk__wal_close(w);
    rm_tree();
}

/* ---- the store on the log ---------------------------------------------------------------- */

#define NSIGNALS 80

struct sub {
    hk_commit c;
    int status;
    bool done;
};

static int pending_done;

static void sub_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    s->status = status;
    s->done = true;
    pending_done--;
}

static hk_store *open_store(uv_loop_t *loop, bool exclusive, bool wal)
{
    hk_store_opts o = {.data_dir = fx_dir,
                       .map_size = 8u << 20,
                       .max_batch = 16,
                       .exclusive = exclusive,
                       .wal = wal,
                       .wal_segment = SEG};
    hk_store *s = NULL;
    int rc = hk_store_open(&s, loop, &o);
    if (rc != 0) {
        fprintf(stderr, "cannot open the store in %s: %s\n", fx_dir, hk_strerror(rc));
        return NULL;
    }
    return s;
}

static void signal_op(hk_op *op, int i)
{
    memset(op, 0, sizeof(*op));
    op->type = HK_OP_SIGNAL;
    op->now_ms = 1000 + (uint64_t)i;
    hk_op_signal *sg = &op->u.signal;
    sg->name = "w.e";
    sg->primary_key = i;
    sg->data = "{\"a\":1}";
    sg->data_len = strlen(sg->data);
    sg->changes = "[\"a\"]";
    sg->changes_len = strlen(sg->changes);
    sg->user_id = 1;
    memcpy(sg->uuid, &i, sizeof(i));
    sg->uuid[15] = 0xa5;
}

/* What the child acknowledged: the webhook's id and each signal's event id. */
struct acked {
    uint32_t webhook_id;
    uint32_t n;
    uint64_t event_id[NSIGNALS + 64];
    int index[NSIGNALS + 64];
};

/* Submits n commits on loop and runs it until their done callbacks ran. */
static void run_commits(hk_store *s, uv_loop_t *loop, struct sub *subs, size_t n)
{
    pending_done = (int)n;
    for (size_t i = 0; i < n; i++) {
        subs[i].c.done = sub_done;
        hk_store_submit(s, &subs[i].c);
    }
    /* Also until a background checkpoint started meanwhile is over: the store closes only when idle. */
    while (pending_done > 0 || hk_store_busy(s))
        uv_run(loop, UV_RUN_ONCE);
}

/* Creates the webhook and signals (from index first, count of them); records what was acknowledged. */
static int workload(hk_store *s, uv_loop_t *loop, struct acked *a, int first, int count)
{
    if (a->webhook_id == 0) {
        hk_webhook w;
        fx_webhook(&w, "logged", "w.e", NULL);
        struct sub put = {.c.op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 500}};
        put.c.op.u.webhook_put.webhook = &w;
        run_commits(s, loop, &put, 1);
        hk_webhook_free(&w);
        if (put.status != 0)
            return 1;
        a->webhook_id = put.c.op.u.webhook_put.id;
    }
    struct sub *subs = calloc((size_t)count, sizeof(*subs));
    for (int i = 0; i < count; i++)
        signal_op(&subs[i].c.op, first + i);
    run_commits(s, loop, subs, (size_t)count);
    for (int i = 0; i < count; i++) {
        if (subs[i].status != 0 || subs[i].c.op.u.signal.nwebhooks != 1)
            return 2;
        a->event_id[a->n] = subs[i].c.op.u.signal.event_id;
        a->index[a->n++] = first + i;
        hk_op_free_out(&subs[i].c.op);
    }
    free(subs);
    return 0;
}

enum child_end { END_CRASH, END_CRASH_AFTER_SYNC, END_CRASH_AFTER_SAVE };

/*
 * In a child process: opens the store with the log, acknowledges a webhook
 * and NSIGNALS signals, writes what it acknowledged to fd, and dies as end
 * says, never closing the store. Returns the child's exit status.
 */
static int crash_child(enum child_end end, struct acked *a)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        uv_loop_t loop;
        uv_loop_init(&loop);
        /* Only the opening checkpoint: everything acknowledged is in the log alone. */
        hk__ckpt_test_background(false);
        hk_store *s = open_store(&loop, true, true);
        struct acked mine = {0};
        if (s == NULL || workload(s, &loop, &mine, 0, NSIGNALS) != 0)
            _exit(1);
        if (write(p[1], &mine, sizeof(mine)) != (ssize_t)sizeof(mine))
            _exit(2);
        if (end == END_CRASH_AFTER_SYNC)
            hk__ckpt_test_crash_at(HK__CRASH_AFTER_SYNC);
        if (end == END_CRASH_AFTER_SAVE)
            hk__ckpt_test_crash_at(HK__CRASH_AFTER_SAVE);
        if (end != END_CRASH)
            if (hk__store_checkpoint(s) != 0) /* exits inside */
                _exit(3);
        _exit(0);
    }
    close(p[1]);
    memset(a, 0, sizeof(*a));
    ssize_t r = read(p[0], a, sizeof(*a));
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    if (r != (ssize_t)sizeof(*a))
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Every acknowledged op is in s exactly once, with the ids it was acknowledged with; extra more signals too. */
static void check_acked(hk_store *s, const struct acked *a, uint32_t extra)
{
    hk_webhook w;
    CHECK_INT(hk_store_webhook_get(s, a->webhook_id, &w), 0);
    CHECK_STR(w.name, "logged");
    hk_webhook_free(&w);
    CHECK_INT(hk_store_webhook_get(s, a->webhook_id + 1, &w), HK_ENOTFOUND);
    int same = 0;
    uint64_t max_id = 0;
    for (uint32_t i = 0; i < a->n; i++) {
        hk_event ev;
        if (hk_store_event_get(s, a->event_id[i], &ev) != 0)
            continue;
        int idx;
        memcpy(&idx, ev.uuid, sizeof(idx));
        same += idx == a->index[i] && ev.uuid[15] == 0xa5 && ev.primary_key == a->index[i];
        hk_event_free(&ev);
        if (a->event_id[i] > max_id)
            max_id = a->event_id[i];
    }
    CHECK_INT(same, a->n);
    /* Nothing applied twice, no garbage applied: one queued delivery per acknowledged signal and no other event. */
    uint64_t pending = 0, due = 0;
    CHECK_INT(hk_store_pending(s, a->webhook_id, 1u << 30, &pending, &due), 0);
    CHECK_INT(pending, a->n + extra);
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, max_id + 1 + extra, &ev), HK_ENOTFOUND);
}

/* Opens the store without a loop (replaying what there is), checks what a acknowledged, and closes it. */
static void reopen_and_check(const struct acked *a)
{
    hk_store *s = open_store(NULL, true, true);
    CHECK(s != NULL);
    if (s != NULL)
        check_acked(s, a, 0);
    hk_store_close(s);
}

static uint64_t ckpt_lsn(void)
{
    char path[160];
    hk__ckpt c;
    snprintf(path, sizeof(path), "%s/checkpoint", waldir);
    if (hk__ckpt_load(path, &c) != 0)
        return UINT64_MAX;
    return c.lsn;
}

static uint32_t ckpt_state(void)
{
    char path[160];
    hk__ckpt c;
    snprintf(path, sizeof(path), "%s/checkpoint", waldir);
    if (hk__ckpt_load(path, &c) != 0)
        return 0;
    return c.state;
}

/* Appends more signals with the store reopened, closes it in order and checks them after another open. */
static void check_continues(struct acked *a)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hk_store *s = open_store(&loop, true, true);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(workload(s, &loop, a, NSIGNALS, 20), 0);
    hk_store_close(s);
    uv_loop_close(&loop);
    reopen_and_check(a);
}

static void test_crash_between_apply_and_checkpoint(void)
{
    fresh_dir();
    struct acked a;
    CHECK_INT(crash_child(END_CRASH, &a), 0);
    CHECK_INT(a.n, NSIGNALS);
    /* The checkpoint is the one made at open: the log alone holds every op. */
    CHECK_INT(ckpt_lsn(), 0);
    reopen_and_check(&a);
    /* The replay was checkpointed and the store closed in order: the next open replays nothing. */
    CHECK_INT(ckpt_lsn(), NSIGNALS + 1);
    CHECK_INT(ckpt_state(), HK__CKPT_CLEAN);
    check_continues(&a);
    rm_tree();
}

static void test_crash_during_checkpoint(void)
{
    for (int end = END_CRASH_AFTER_SYNC; end <= END_CRASH_AFTER_SAVE; end++) {
        fresh_dir();
        struct acked a;
        CHECK_INT(crash_child((enum child_end)end, &a), HK__CRASH_STATUS);
        CHECK_INT(a.n, NSIGNALS);
        /* Synced but not saved: the saved checkpoint is still the first; saved: it covers everything. */
        CHECK_INT(ckpt_lsn(), end == END_CRASH_AFTER_SYNC ? 0 : NSIGNALS + 1);
        reopen_and_check(&a);
        check_continues(&a);
        rm_tree();
    }
}

/* ---- damaged tails -------------------------------------------------------------------------- */

struct tail {
    char path[160]; /* the segment the log ends in */
    uint64_t end;   /* offset after its last record */
    uint64_t lsn;   /* the last record's LSN */
    uint8_t rec[4096];
    size_t len; /* the last record, header included */
};

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

/* Finds the end of the log by reading the segments as the format says (wal.h), independently of wal.c. */
static bool find_tail(struct tail *t)
{
    memset(t, 0, sizeof(*t));
    for (uint64_t seq = 1; seq < 1000; seq++) {
        char path[160];
        uint8_t h[64];
        snprintf(path, sizeof(path), "%s/%08llu.log", waldir, (unsigned long long)seq);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        struct stat st;
        fstat(fd, &st);
        if (pread(fd, h, 64, 0) != 64 || memcmp(h, "HKWALSG1", 8) != 0 || rd64(h + 16) != seq ||
            (t->lsn != 0 && rd64(h + 24) != t->lsn + 1)) {
            close(fd);
            continue;
        }
        uint64_t off = 64;
        uint8_t rh[16];
        while (off + 16 <= (uint64_t)st.st_size && pread(fd, rh, 16, (off_t)off) == 16) {
            uint32_t len = rd32(rh);
            uint64_t lsn = rd64(rh + 8);
            if (len == 0 || len + 16 > sizeof(t->rec) || (t->lsn != 0 && lsn != t->lsn + 1))
                break;
            t->len = 16 + len;
            if (pread(fd, t->rec, t->len, (off_t)off) != (ssize_t)t->len)
                break;
            t->lsn = lsn;
            off += t->len;
            snprintf(t->path, sizeof(t->path), "%s", path);
            t->end = off;
        }
        close(fd);
    }
    return t->lsn != 0;
}

/* The last record again (a signal: applied, it would queue one more delivery) as record lsn. */
static void copy_record(const struct tail *t, uint8_t *out, uint64_t lsn, bool good_crc)
{
    memcpy(out, t->rec, t->len);
    wr64(out + 8, lsn);
    uint32_t crc = hk_crc32c(0, out + 8, 8);
    crc = hk_crc32c(crc, out, 4);
    crc = hk_crc32c(crc, out + 16, t->len - 16);
    wr32(out + 4, good_crc ? crc : crc ^ 1);
}

/* A record of the format in wal.h: length, CRC, LSN, payload (len bytes of fill). */
static size_t make_record(uint8_t *out, uint64_t lsn, uint32_t len, uint8_t fill, bool good_crc)
{
    wr32(out, len);
    wr64(out + 8, lsn);
    memset(out + 16, fill, len);
    uint32_t crc = hk_crc32c(0, out + 8, 8);
    crc = hk_crc32c(crc, out, 4);
    crc = hk_crc32c(crc, out + 16, len);
    wr32(out + 4, good_crc ? crc : ~crc);
    return 16 + len;
}

/*
 * A group that did not fit went to the next segment, whose header never
 * reached the disk, and was torn there: its first record is garbage, its
 * second intact. After the crash the next group goes to that segment, with
 * a first record of the same size; the old second record must not come
 * back after it.
 */
static void test_log_torn_group_in_next_segment(void)
{
    fresh_dir();
    hk__wal *w;
    uint64_t last = 0;
    uint8_t rec[1000];
    memset(rec, 'r', sizeof(rec));
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, false, collect, NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        hk__wal_add(w, rec, sizeof(rec));
        CHECK_INT(hk__wal_flush(w, &last, true), 0);
    }
    CHECK_INT(last, 3);
    hk__wal_close(w);
    char path[160];
    snprintf(path, sizeof(path), "%s/00000002.log", waldir);
    uint8_t seg[4096] = {0};
    size_t off = 64;
    off += make_record(seg + off, 4, 1000, 'A', false);
    make_record(seg + off, 5, 1000, 'B', true);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK_INT(write(fd, seg, sizeof(seg)), sizeof(seg));
    close(fd);

    struct seen s = {.n = 0};
    hk__wal_info info;
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, true, collect, &s, &info), 0);
    CHECK_INT(s.n, 3);
    CHECK(info.cleared >= sizeof(seg));
    memset(rec, 'C', sizeof(rec));
    hk__wal_add(w, rec, sizeof(rec)); /* does not fit in segment 1: goes to segment 2 */
    CHECK_INT(hk__wal_flush(w, &last, true), 0);
    CHECK_INT(last, 4);
    hk__wal_close(w);
    memset(&s, 0, sizeof(s));
    CHECK_INT(hk__wal_open(&w, waldir, 4096, 0, false, collect, &s, &info), 0);
    CHECK_INT(s.n, 4);
    CHECK_INT(info.last, 4);
    CHECK_INT(info.cleared, 0); /* a log closed in order is left as it is */
    CHECK_INT(s.text[3][0], 'C');
    hk__wal_close(w);
    rm_tree();
}

enum damage { TRUNCATED, BAD_CRC, LSN_GAP, TORN_GROUP };

static bool zero_after(const char *path, uint64_t off, uint64_t n)
{
    uint8_t buf[8192];
    int fd = open(path, O_RDONLY);
    ssize_t r = pread(fd, buf, n, (off_t)off);
    close(fd);
    for (ssize_t i = 0; i < r; i++)
        if (buf[i] != 0)
            return false;
    return r == (ssize_t)n;
}

static void test_damaged_tail(enum damage d)
{
    fresh_dir();
    struct acked a;
    CHECK_INT(crash_child(END_CRASH, &a), 0);
    struct tail t;
    bool found = find_tail(&t);
    CHECK(found);
    if (!found) {
        rm_tree();
        return;
    }
    CHECK_INT(t.lsn, NSIGNALS + 1);
    uint8_t rec[2][4096];
    int fd = open(t.path, O_RDWR);
    switch (d) {
    case TRUNCATED:
        /* An unacknowledged record cut short by the end of the file. */
        copy_record(&t, rec[0], t.lsn + 1, true);
        CHECK_INT(pwrite(fd, rec[0], t.len, (off_t)t.end), t.len);
        CHECK_INT(ftruncate(fd, (off_t)(t.end + t.len - 5)), 0);
        break;
    case BAD_CRC:
        copy_record(&t, rec[0], t.lsn + 1, false);
        CHECK_INT(pwrite(fd, rec[0], t.len, (off_t)t.end), t.len);
        break;
    case LSN_GAP:
        copy_record(&t, rec[0], t.lsn + 2, true);
        CHECK_INT(pwrite(fd, rec[0], t.len, (off_t)t.end), t.len);
        break;
    case TORN_GROUP:
        /* A group whose first record did not reach the disk but whose second did. */
        copy_record(&t, rec[0], t.lsn + 1, true);
        memset(rec[0] + 16, 0x5a, t.len - 16);
        copy_record(&t, rec[1], t.lsn + 2, true);
        CHECK_INT(pwrite(fd, rec[0], t.len, (off_t)t.end), t.len);
        CHECK_INT(pwrite(fd, rec[1], t.len, (off_t)(t.end + t.len)), t.len);
        break;
    }
    close(fd);
    reopen_and_check(&a);
    if (d != TRUNCATED) /* what followed the last good record is gone */
        CHECK(zero_after(t.path, t.end, 2 * t.len));
    check_continues(&a);
    rm_tree();
}

/* ---- other openers of a crashed log's store -------------------------------------------------------- */

static void test_lmdb_mode_replays_and_removes_the_log(void)
{
    fresh_dir();
    struct acked a;
    CHECK_INT(crash_child(END_CRASH, &a), 0);
    hk_store *s = open_store(NULL, true, false);
    CHECK(s != NULL);
    if (s != NULL)
        check_acked(s, &a, 0);
    hk_store_close(s);
    struct stat st;
    CHECK(stat(waldir, &st) != 0);
    /* And it works on without a log, and with one again. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    s = open_store(&loop, true, false);
    CHECK(s != NULL);
    if (s != NULL)
        CHECK_INT(workload(s, &loop, &a, NSIGNALS, 20), 0);
    hk_store_close(s);
    uv_loop_close(&loop);
    check_continues(&a);
    rm_tree();
}

static void test_cli_replays_when_no_server_runs(void)
{
    fresh_dir();
    struct acked a;
    CHECK_INT(crash_child(END_CRASH, &a), 0);
    hk_store *s = open_store(NULL, false, false);
    CHECK(s != NULL);
    if (s != NULL) {
        check_acked(s, &a, 0);
        /* A CLI write is saved in the checkpoint, so a later recovery does not go back past it. */
        hk_op op;
        signal_op(&op, NSIGNALS + 50);
        CHECK_INT(hk_store_apply(s, &op), 0);
        a.event_id[a.n] = op.u.signal.event_id;
        a.index[a.n++] = NSIGNALS + 50;
        hk_op_free_out(&op);
    }
    hk_store_close(s);
    CHECK_INT(ckpt_lsn(), NSIGNALS + 1);
    reopen_and_check(&a);
    rm_tree();
}

/* Commits marked lazy are done without a log sync; hk_store_sync_lazy makes them durable with one. */
static void test_store_lazy_commits(void)
{
    fresh_dir();
    uv_loop_t loop;
    uv_loop_init(&loop);
    hk__ckpt_test_background(false);
    hk_store *s = open_store(&loop, true, true);
    CHECK(s != NULL);
    if (s == NULL)
        return;
    struct acked a = {0};
    CHECK_INT(workload(s, &loop, &a, 0, 3), 0);
    uint64_t syncs = hk__wal_syncs(s->wal);
    struct sub subs[4];
    memset(subs, 0, sizeof(subs));
    for (int i = 0; i < 4; i++) {
        signal_op(&subs[i].c.op, 3 + i);
        subs[i].c.flags = HK_COMMIT_LAZY;
    }
    run_commits(s, &loop, subs, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_INT(subs[i].status, 0);
        a.event_id[a.n] = subs[i].c.op.u.signal.event_id;
        a.index[a.n++] = 3 + i;
        hk_op_free_out(&subs[i].c.op);
    }
    /* Applied and done, not yet synced. */
    CHECK_INT(hk__wal_syncs(s->wal), syncs);
    CHECK(hk__wal_unsynced(s->wal));
    hk_event ev;
    CHECK_INT(hk_store_event_get(s, a.event_id[a.n - 1], &ev), 0);
    hk_event_free(&ev);
    hk_store_sync_lazy(s);
    while (hk_store_busy(s))
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_INT(hk__wal_syncs(s->wal), syncs + 1);
    CHECK(!hk__wal_unsynced(s->wal));
    hk_store_sync_lazy(s); /* nothing waiting: nothing queued */
    CHECK(!hk_store_busy(s));
    /* A synced commit after lazy ones covers them: one sync for the group. */
    memset(subs, 0, sizeof(subs));
    signal_op(&subs[0].c.op, 7);
    subs[0].c.flags = HK_COMMIT_LAZY;
    run_commits(s, &loop, subs, 1);
    CHECK(hk__wal_unsynced(s->wal));
    signal_op(&subs[1].c.op, 8);
    run_commits(s, &loop, subs + 1, 1);
    CHECK_INT(hk__wal_syncs(s->wal), syncs + 2);
    CHECK(!hk__wal_unsynced(s->wal));
    for (int i = 0; i < 2; i++) {
        CHECK_INT(subs[i].status, 0);
        a.event_id[a.n] = subs[i].c.op.u.signal.event_id;
        a.index[a.n++] = 7 + i;
        hk_op_free_out(&subs[i].c.op);
    }
    hk_store_close(s);
    uv_loop_close(&loop);
    hk__ckpt_test_background(true);
    reopen_and_check(&a);
    rm_tree();
}

int main(void)
{
    test_log_written_and_read_back();
    test_log_undo();
    test_log_segments_and_recycling();
    test_log_lazy_groups();
    test_log_failed_sync();
    test_log_missing_records_refused();
    test_crash_between_apply_and_checkpoint();
    test_crash_during_checkpoint();
    test_damaged_tail(TRUNCATED);
    test_damaged_tail(BAD_CRC);
    test_damaged_tail(LSN_GAP);
    test_damaged_tail(TORN_GROUP);
    test_log_torn_group_in_next_segment();
    test_lmdb_mode_replays_and_removes_the_log();
    test_cli_replays_when_no_server_runs();
    test_store_lazy_commits();
    return unit_done();
}
