/*
 * Unit tests of the store: typed helpers, cursors and sequences, the group
 * commit on a real libuv loop (few commits for many writes, callbacks only
 * after the commit, isolated failures), map growth from a tiny map, and
 * durability across close and reopen.
 */
#include <stdio.h>
#include <unistd.h>

#include "kv.h"
#include "unit.h"

static char tmpdir[] = "/tmp/hk-store-XXXXXX";
static char dir[300];

static void remove_env(void)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- synchronous helpers ------------------------------------------------- */

struct kv {
    enum hk_db db;
    const char *key;
    const char *val;
    unsigned flags;
};

static int put_fn(hk_txn *txn, void *arg)
{
    const struct kv *kv = arg;
    return hk_put(txn, kv->db, kv->key, strlen(kv->key), kv->val, strlen(kv->val), kv->flags);
}

static int put_sync(hk_kv_env *s, enum hk_db db, const char *key, const char *val, unsigned flags)
{
    struct kv kv = {db, key, val, flags};
    return hk_kv_write_sync(s, put_fn, &kv);
}

/* Reads key into buf as a string; returns the hk_get result. */
static int get_str(hk_kv_env *s, enum hk_db db, const char *key, char *buf, size_t len)
{
    hk_txn *txn;
    int rc = hk_kv_read(s, &txn);
    if (rc != 0)
        return rc;
    hk_val v;
    rc = hk_get(txn, db, key, strlen(key), &v);
    if (rc == 0)
        snprintf(buf, len, "%.*s", (int)v.len, (const char *)v.data);
    hk_txn_end(txn);
    return rc;
}

static int seq_fn(hk_txn *txn, void *arg)
{
    uint64_t *out = arg;
    int rc = hk_seq_next(txn, "seq:test", &out[0]);
    if (rc == 0)
        rc = hk_seq_next(txn, "seq:test", &out[1]);
    if (rc == 0)
        rc = hk_seq_next(txn, "seq:other", &out[2]);
    return rc;
}

static int ints_fn(hk_txn *txn, void *arg)
{
    HK_UNUSED(arg);
    /* Big-endian keys sort numerically: insert out of order. */
    static const uint32_t ids[] = {300, 2, 70000, 1, 256};
    for (size_t i = 0; i < HK_ARRAY_SIZE(ids); i++) {
        uint8_t k[4];
        char v[16];
        hk_be32(k, ids[i]);
        snprintf(v, sizeof(v), "w%u", ids[i]);
        int rc = hk_put(txn, HK_DB_WEBHOOKS, k, 4, v, strlen(v), 0);
        if (rc != 0)
            return rc;
    }
    /* Sorted duplicates: two webhooks under one event name. */
    uint8_t a[4], b[4];
    hk_be32(a, 7);
    hk_be32(b, 3);
    int rc = hk_put(txn, HK_DB_SUBSCRIPTIONS, "contact.created", 15, a, 4, 0);
    if (rc == 0)
        rc = hk_put(txn, HK_DB_SUBSCRIPTIONS, "contact.created", 15, b, 4, 0);
    if (rc == 0)
        rc = hk_put(txn, HK_DB_SUBSCRIPTIONS, "contact.created", 15, b, 4, HK_PUT_NOOVERWRITE) == HK_EEXIST ? 0 : -1;
    return rc;
}

static int del_fn(hk_txn *txn, void *arg)
{
    HK_UNUSED(arg);
    uint8_t k[4], b[4];
    hk_be32(k, 2);
    int rc = hk_del(txn, HK_DB_WEBHOOKS, k, 4, NULL, 0);
    if (rc != 0)
        return rc;
    if (hk_del(txn, HK_DB_WEBHOOKS, k, 4, NULL, 0) != HK_ENOTFOUND)
        return -1;
    /* Only the named duplicate goes. */
    hk_be32(b, 3);
    if ((rc = hk_del(txn, HK_DB_SUBSCRIPTIONS, "contact.created", 15, b, 4)) != 0)
        return rc;
    /* A cursor deletes what it points at. */
    hk_cursor *c;
    if ((rc = hk_cursor_open(txn, HK_DB_WEBHOOKS, &c)) != 0)
        return rc;
    hk_val key, val;
    rc = hk_cursor_get(c, HK_LAST, &key, &val);
    if (rc == 0)
        rc = hk_cursor_del(c);
    hk_cursor_close(c);
    return rc;
}

static void test_basics(void)
{
    hk_kv_env *s;
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 16, NULL), 0);
    char buf[64];
    CHECK_INT(put_sync(s, HK_DB_META, "greeting", "hello", 0), 0);
    CHECK_INT(get_str(s, HK_DB_META, "greeting", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "hello");
    CHECK_INT(put_sync(s, HK_DB_META, "greeting", "again", 0), 0);
    CHECK_INT(get_str(s, HK_DB_META, "greeting", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "again");
    CHECK_INT(put_sync(s, HK_DB_META, "greeting", "no", HK_PUT_NOOVERWRITE), HK_EEXIST);
    CHECK_INT(get_str(s, HK_DB_META, "greeting", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "again");
    CHECK_INT(get_str(s, HK_DB_META, "absent", buf, sizeof(buf)), HK_ENOTFOUND);
    /* The same key in another database is another record. */
    CHECK_INT(get_str(s, HK_DB_USERS, "greeting", buf, sizeof(buf)), HK_ENOTFOUND);
    /* An empty key is refused, not stored. */
    CHECK_INT(put_sync(s, HK_DB_META, "", "x", 0), HK_EINVAL);

    uint64_t seq[3] = {0, 0, 0};
    CHECK_INT(hk_kv_write_sync(s, seq_fn, seq), 0);
    CHECK_INT(seq[0], 1);
    CHECK_INT(seq[1], 2);
    CHECK_INT(seq[2], 1);
    CHECK_INT(hk_kv_write_sync(s, seq_fn, seq), 0);
    CHECK_INT(seq[0], 3);
    CHECK_INT(seq[1], 4);
    CHECK_INT(seq[2], 2);

    CHECK_INT(hk_kv_write_sync(s, ints_fn, NULL), 0);
    hk_txn *txn;
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_seq_peek(txn, "seq:test"), 4);
    CHECK_INT(hk_seq_peek(txn, "seq:never"), 0);
    CHECK_INT(hk_count(txn, HK_DB_WEBHOOKS), 5);
    CHECK_INT(hk_count(txn, HK_DB_SUBSCRIPTIONS), 2);
    /* A second reader while the first is open sees the same data. */
    hk_txn *txn2;
    CHECK_INT(hk_kv_read(s, &txn2), 0);
    CHECK_INT(hk_count(txn2, HK_DB_WEBHOOKS), 5);
    hk_txn_end(txn2);

    hk_cursor *c;
    hk_val k, v;
    CHECK_INT(hk_cursor_open(txn, HK_DB_WEBHOOKS, &c), 0);
    static const uint32_t order[] = {1, 2, 256, 300, 70000};
    int n = 0;
    for (int rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v), n++) {
        CHECK_INT(k.len, 4);
        if (n < 5)
            CHECK_INT(hk_rd32(k.data), order[n]);
    }
    CHECK_INT(n, 5);
    CHECK_INT(hk_cursor_get(c, HK_NEXT, &k, &v), HK_ENOTFOUND);
    CHECK_INT(hk_cursor_get(c, HK_LAST, &k, &v), 0);
    CHECK_INT(hk_rd32(k.data), 70000);
    CHECK_INT(hk_cursor_get(c, HK_PREV, &k, &v), 0);
    CHECK_INT(hk_rd32(k.data), 300);
    CHECK(v.len == 4 && memcmp(v.data, "w300", 4) == 0);
    /* Seek: the first key at or after; exact: only that key. */
    uint8_t probe[4];
    hk_be32(probe, 257);
    k.data = probe;
    k.len = 4;
    CHECK_INT(hk_cursor_get(c, HK_SEEK, &k, &v), 0);
    CHECK_INT(hk_rd32(k.data), 300);
    k.data = probe;
    k.len = 4;
    CHECK_INT(hk_cursor_get(c, HK_SEEK_EXACT, &k, &v), HK_ENOTFOUND);
    hk_be32(probe, 256);
    k.data = probe;
    k.len = 4;
    CHECK_INT(hk_cursor_get(c, HK_SEEK_EXACT, &k, &v), 0);
    CHECK(v.len == 4 && memcmp(v.data, "w256", 4) == 0);
    hk_be32(probe, 80000);
    k.data = probe;
    k.len = 4;
    CHECK_INT(hk_cursor_get(c, HK_SEEK, &k, &v), HK_ENOTFOUND);
    hk_cursor_close(c);
    hk_cursor_close(NULL);

    /* Duplicates come back sorted under their one key. */
    CHECK_INT(hk_cursor_open(txn, HK_DB_SUBSCRIPTIONS, &c), 0);
    k.data = "contact.created";
    k.len = 15;
    CHECK_INT(hk_cursor_get(c, HK_SEEK_EXACT, &k, &v), 0);
    CHECK_INT(hk_rd32(v.data), 3);
    CHECK_INT(hk_cursor_get(c, HK_NEXT, &k, &v), 0);
    CHECK(k.len == 15 && memcmp(k.data, "contact.created", 15) == 0);
    CHECK_INT(hk_rd32(v.data), 7);
    CHECK_INT(hk_cursor_get(c, HK_NEXT, &k, &v), HK_ENOTFOUND);
    hk_cursor_close(c);
    hk_txn_end(txn);

    CHECK_INT(hk_kv_write_sync(s, del_fn, NULL), 0);
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_WEBHOOKS), 3); /* 2 and 70000 gone */
    CHECK_INT(hk_count(txn, HK_DB_SUBSCRIPTIONS), 1);
    hk_txn_end(txn);

    uint64_t map, used;
    hk_kv_usage(s, &map, &used);
    CHECK_INT(map, 1 << 20);
    CHECK(used > 0 && used <= map);
    CHECK(!hk_kv_busy(s));
    hk_kv_close(s);
    hk_kv_close(NULL);

    /* Everything is still there after a reopen, and sequences continue. */
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 16, NULL), 0);
    CHECK_INT(get_str(s, HK_DB_META, "greeting", buf, sizeof(buf)), 0);
    CHECK_STR(buf, "again");
    CHECK_INT(hk_kv_write_sync(s, seq_fn, seq), 0);
    CHECK_INT(seq[0], 5);
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_WEBHOOKS), 3);
    hk_txn_end(txn);
    hk_kv_close(s);
    remove_env();
}

/* ---- group commit ---------------------------------------------------------- */

struct req {
    hk_write w;
    hk_kv_env *store;
    uint32_t id;
    size_t vlen;
    int fail_with; /* apply writes its key, then fails with this when non-zero */
    int own_error; /* apply reports a failed put as this code of its own instead of the store's */
    int applied;   /* times apply ran */
    int status;    /* from done */
    int done;      /* times done ran */
    bool visible;  /* its record was readable from the loop when done ran */
    uint64_t commits_at_done;
};

static int done_count;

static int req_apply(hk_txn *txn, hk_write *w)
{
    struct req *r = hk_container_of(w, struct req, w);
    uint8_t k[4];
    hk_be32(k, r->id);
    r->applied++;
    char *v = malloc(r->vlen);
    memset(v, 'a' + (int)(r->id % 26), r->vlen);
    int rc = hk_put(txn, HK_DB_EVENTS, k, 4, v, r->vlen, 0);
    free(v);
    if (rc != 0)
        return r->own_error ? r->own_error : rc;
    return r->fail_with;
}

static void req_done(hk_write *w, int status)
{
    struct req *r = hk_container_of(w, struct req, w);
    r->status = status;
    r->done++;
    done_count++;
    uint64_t writes;
    hk_kv_counters(r->store, &r->commits_at_done, &writes);
    /* Whatever done reports as committed can be read back at once. */
    hk_txn *txn;
    if (hk_kv_read(r->store, &txn) == 0) {
        uint8_t k[4];
        hk_val v;
        hk_be32(k, r->id);
        r->visible = hk_get(txn, HK_DB_EVENTS, k, 4, &v) == 0 && v.len == r->vlen;
        hk_txn_end(txn);
    }
}

static struct req *make_reqs(hk_kv_env *s, size_t n, uint32_t first_id, size_t vlen)
{
    struct req *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        r[i].w.apply = req_apply;
        r[i].w.done = req_done;
        r[i].store = s;
        r[i].id = first_id + (uint32_t)i;
        r[i].vlen = vlen;
    }
    return r;
}

static void test_group_commit(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hk_kv_env *s;
    CHECK_INT(hk_kv_open(&s, dir, 16 << 20, 2048, &loop), 0);

    enum { N = 2000 };
    struct req *r = make_reqs(s, N, 1, 100);
    done_count = 0;
    for (size_t i = 0; i < N; i++)
        hk_kv_submit(s, &r[i].w);
    CHECK(hk_kv_busy(s));
    /* Nothing is reported before the loop has run a commit. */
    CHECK_INT(done_count, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(!hk_kv_busy(s));
    CHECK_INT(done_count, N);
    uint64_t commits, writes;
    hk_kv_counters(s, &commits, &writes);
    CHECK_INT(writes, N);
    /* The first write goes alone (the disk was idle); the rest wait and go together. */
    CHECK(commits >= 1 && commits <= 4);
    fprintf(stderr, "group commit: %d writes in %llu commits\n", N, (unsigned long long)commits);
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        if (r[i].status != 0 || r[i].done != 1 || !r[i].visible || r[i].commits_at_done == 0)
            bad++;
    CHECK_INT(bad, 0);
    free(r);

    /* max_batch bounds a batch: with 2048 per commit, 5000 writes take at least 3. */
    r = make_reqs(s, 5000, 10000, 16);
    hk_kv_counters(s, &commits, &writes);
    uint64_t before = commits;
    for (size_t i = 0; i < 5000; i++)
        hk_kv_submit(s, &r[i].w);
    uv_run(&loop, UV_RUN_DEFAULT);
    hk_kv_counters(s, &commits, &writes);
    CHECK(commits - before >= 3 && commits - before <= 6);
    free(r);

    /* An isolated write that fails leaves no trace; its batch-mates commit. */
    struct req *lead = make_reqs(s, 1, 50000, 8);
    struct req *mates = make_reqs(s, 3, 50001, 8);
    mates[1].w.flags = HK_WRITE_ISOLATED;
    mates[1].fail_with = HK_EINVAL;
    hk_kv_submit(s, &lead->w); /* starts a commit; the next three wait for it and share one */
    for (int i = 0; i < 3; i++)
        hk_kv_submit(s, &mates[i].w);
    hk_kv_counters(s, &before, &writes);
    uv_run(&loop, UV_RUN_DEFAULT);
    hk_kv_counters(s, &commits, &writes);
    CHECK_INT(commits - before, 2);
    CHECK(mates[0].commits_at_done == mates[2].commits_at_done);
    CHECK(mates[1].commits_at_done == mates[2].commits_at_done);
    CHECK_INT(lead->status, 0);
    CHECK_INT(mates[0].status, 0);
    CHECK_INT(mates[1].status, HK_EINVAL);
    CHECK_INT(mates[2].status, 0);
    CHECK(mates[0].visible && mates[2].visible);
    CHECK(!mates[1].visible);
    char buf[16];
    uint8_t k[4];
    hk_be32(k, 50002);
    hk_txn *txn;
    hk_val v;
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_get(txn, HK_DB_EVENTS, k, 4, &v), HK_ENOTFOUND);
    hk_txn_end(txn);
    HK_UNUSED(buf);
    free(lead);
    free(mates);

    hk_kv_close(s);
    /* Every acknowledged write is there after a reopen. */
    CHECK_INT(hk_kv_open(&s, dir, 16 << 20, 2048, &loop), 0);
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_EVENTS), N + 5000 + 3);
    hk_txn_end(txn);
    hk_kv_close(s);
    CHECK_INT(uv_loop_close(&loop), 0);
    remove_env();
}

/* ---- map growth ----------------------------------------------------------- */

static int big_fn(hk_txn *txn, void *arg)
{
    HK_UNUSED(arg);
    /* 4 MiB in one transaction, into a 1 MiB map. */
    char *v = calloc(1, 64 * 1024);
    int rc = 0;
    for (uint32_t i = 0; i < 64 && rc == 0; i++) {
        uint8_t k[4];
        hk_be32(k, 900000 + i);
        rc = hk_put(txn, HK_DB_LOG, k, 4, v, 64 * 1024, 0);
    }
    free(v);
    return rc;
}

static void test_map_growth(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    hk_kv_env *s;
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 64, &loop), 0);
    uint64_t map, used;
    hk_kv_usage(s, &map, &used);
    CHECK_INT(map, 1 << 20);

    /* 8 MiB through the group commit, in batches of at most 64. */
    enum { N = 256 };
    struct req *r = make_reqs(s, N, 1, 32 * 1024);
    for (size_t i = 0; i < N; i++)
        hk_kv_submit(s, &r[i].w);
    uv_run(&loop, UV_RUN_DEFAULT);
    int bad = 0;
    for (size_t i = 0; i < N; i++)
        if (r[i].status != 0 || !r[i].visible)
            bad++;
    CHECK_INT(bad, 0);
    if (bad)
        fprintf(stderr, "first failed status: %d\n", r[0].status);
    hk_kv_usage(s, &map, &used);
    CHECK(map > 8u << 20);
    CHECK(used > 8u << 20);
    free(r);

    /* A write whose apply hides the store's error behind one of its own
     * still gets the map grown for it, and its batch-mates are unharmed;
     * the same for an isolated write. */
    hk_kv_close(s);
    remove_env();
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 64, &loop), 0);
    r = make_reqs(s, 4, 1, 16);
    r[1].vlen = 3u << 20;
    r[1].own_error = HK_EINVAL;
    r[2].vlen = 3u << 20;
    r[2].w.flags = HK_WRITE_ISOLATED;
    for (size_t i = 0; i < 4; i++)
        hk_kv_submit(s, &r[i].w);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < 4; i++) {
        CHECK_INT(r[i].status, 0);
        CHECK(r[i].visible);
    }
    free(r);

    /* And through a synchronous write that alone is bigger than a fresh map. */
    hk_kv_close(s);
    remove_env();
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 64, &loop), 0);
    CHECK_INT(hk_kv_write_sync(s, big_fn, NULL), 0);
    hk_txn *txn;
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_LOG), 64);
    hk_txn_end(txn);
    hk_kv_close(s);

    /* A reopen with a smaller configured map keeps the grown one. */
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 64, &loop), 0);
    hk_kv_usage(s, &map, &used);
    CHECK(map >= 4u << 20);
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_LOG), 64);
    hk_txn_end(txn);
    hk_kv_close(s);
    CHECK_INT(uv_loop_close(&loop), 0);
    remove_env();
}

/* ---- delete runs ------------------------------------------------------ */

static bool below(const hk_val *k, const hk_val *v, void *arg)
{
    (void)v;
    return k->len == 8 && hk_rd64(k->data) < *(uint64_t *)arg;
}

static int count_before(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    (void)txn;
    (void)k;
    (void)v;
    (*(int *)arg)++;
    return 0;
}

struct run_args {
    uint64_t limit;
    int calls;
    bool more;
    int rc;
};

static bool below_args(const hk_val *k, const hk_val *v, void *arg)
{
    return below(k, v, &((struct run_args *)arg)->limit);
}

static int before_args(hk_txn *txn, const hk_val *k, const hk_val *v, void *arg)
{
    return count_before(txn, k, v, &((struct run_args *)arg)->calls);
}

static int fill_run(hk_txn *txn, void *arg)
{
    (void)arg;
    for (uint64_t i = 1; i <= 10; i++) {
        uint8_t k[8];
        hk_be64(k, i);
        int rc = hk_put(txn, HK_DB_EVENTS, k, 8, "x", 1, 0);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int run_once(hk_txn *txn, void *arg)
{
    struct run_args *a = arg;
    uint8_t from[8];
    hk_be64(from, 2);
    hk_val f = {from, 8};
    return hk_delete_run(txn, HK_DB_EVENTS, &f, below_args, before_args, a, 3, &a->more);
}

static void test_delete_run(void)
{
    hk_kv_env *s;
    CHECK_INT(hk_kv_open(&s, dir, 1 << 20, 16, NULL), 0);
    CHECK_INT(hk_kv_write_sync(s, fill_run, NULL), 0);
    /* From key 2 while below 7, three at a time: 2,3,4 then 5,6 then nothing. */
    struct run_args a = {7, 0, false, 0};
    CHECK_INT(hk_kv_write_sync(s, run_once, &a), 0);
    CHECK(a.more);
    CHECK_INT(a.calls, 3);
    a.more = false;
    CHECK_INT(hk_kv_write_sync(s, run_once, &a), 0);
    CHECK(!a.more);
    CHECK_INT(a.calls, 5);
    CHECK_INT(hk_kv_write_sync(s, run_once, &a), 0);
    CHECK_INT(a.calls, 5);
    hk_txn *txn;
    CHECK_INT(hk_kv_read(s, &txn), 0);
    CHECK_INT(hk_count(txn, HK_DB_EVENTS), 5); /* 1 and 7..10 stay */
    uint8_t k[8];
    hk_val v;
    hk_be64(k, 1);
    CHECK_INT(hk_get(txn, HK_DB_EVENTS, k, 8, &v), 0);
    hk_be64(k, 6);
    CHECK_INT(hk_get(txn, HK_DB_EVENTS, k, 8, &v), HK_ENOTFOUND);
    hk_be64(k, 7);
    CHECK_INT(hk_get(txn, HK_DB_EVENTS, k, 8, &v), 0);
    hk_txn_end(txn);
    hk_kv_close(s);
    remove_env();
}

int main(void)
{
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(dir, sizeof(dir), "%s/env", tmpdir);
    test_basics();
    test_group_commit();
    test_map_growth();
    test_delete_run();
    rmdir(tmpdir);
    return unit_done();
}
