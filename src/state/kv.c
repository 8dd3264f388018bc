/*
 * kv.c: the LMDB environment, transactions and typed helpers (the group
 * commit and the log around it are in commit.c).
 *
 * Locking: the map can only be resized while no transaction of this process
 * is open. Every transaction therefore holds `resize` shared; a resize takes
 * it exclusively. The one writer is the threadpool job (or the CLI).
 *
 * Two rules keep that from hanging. A thread that holds the lock shared (a
 * query run from inside another query's callback) never asks for it
 * exclusively: it would wait for itself. And the loop thread never waits
 * for it: the group commit holds it shared for a whole fsync. When either
 * rule stops a map grown by another process from being adopted, the
 * transaction fails with UV_EAGAIN and, on the loop, a threadpool job
 * adopts the map as soon as the lock is free.
 *
 * Every write transaction records its id under HK_KV_WRITER_STAMP, so that
 * an open can tell whether another version committed last.
 */
#include "kv_int.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

static const struct {
    const char *name;
    unsigned flags;
} db_defs[HK_DB__COUNT] = {
    [HK_DB_META] = {"meta", 0},
    [HK_DB_USERS] = {"users", 0},
    [HK_DB_USER_CODES] = {"user_codes", 0},
    [HK_DB_KEYS] = {"keys", 0},
    [HK_DB_WEBHOOKS] = {"webhooks", 0},
    [HK_DB_EXTENSIONS] = {"extensions", 0},
    [HK_DB_EVENT_TYPES] = {"event_types", 0},
    [HK_DB_EVENT_NAMES] = {"event_names", 0},
    [HK_DB_SUBSCRIPTIONS] = {"subscriptions", MDB_DUPSORT},
    [HK_DB_EVENTS] = {"events", 0},
    [HK_DB_QUEUE] = {"queue", 0},
    [HK_DB_DELIVERIES] = {"deliveries", 0},
    [HK_DB_IDEMPOTENCY] = {"idempotency", 0},
    [HK_DB_IDEMPOTENCY_TIME] = {"idempotency_time", 0},
    [HK_DB_LOG] = {"log", 0},
    [HK_DB_LOG_TIME] = {"log_time", 0},
    [HK_DB_NODES] = {"nodes", 0},
    [HK_DB_ACCOUNTS] = {"accounts", 0},
    [HK_DB_STATS] = {"stats", 0},
    [HK_DB_QUEUE_EVENTS] = {"queue_events", 0},
};

struct hk_cursor {
    MDB_cursor *cur;
    hk_txn *txn;
};

/* The map grows by half its size, at least by this much. */
#define GROW_MIN (64u << 20)

/* How many times this thread holds a resize lock shared (one per open
 * transaction, of any environment): while it does, it must not wait for one
 * exclusively. */
static __thread unsigned held_shared;

void hk__kv_hold(hk_kv_env *s)
{
    uv_rwlock_rdlock(&s->resize);
    held_shared++;
}

void hk__kv_release(hk_kv_env *s)
{
    held_shared--;
    uv_rwlock_rdunlock(&s->resize);
}

/* The loop of a worker thread that is not the environment's own (hk_kv_thread_loop). */
static __thread uv_loop_t *thread_loop;

/* The calling thread's cached reader of the environment last read from. */
static __thread struct {
    uint64_t env_id;
    struct hk__rcache *rc;
} thread_reader;

/* Environment ids: a cache of a closed environment never matches a new one at the same address. */
static uint64_t next_env_id;

void hk_kv_thread_loop(uv_loop_t *loop)
{
    thread_loop = loop;
}

/* The loop of the calling thread when it runs one (where nothing may wait), else NULL. */
static uv_loop_t *on_loop(const hk_kv_env *s)
{
    uv_thread_t self = uv_thread_self();
    if (s->loop != NULL && uv_thread_equal(&self, &s->loop_thread))
        return s->loop;
    return thread_loop;
}

/* The calling thread's cached reader of s, made on first use. */
static struct hk__rcache *thread_cache(hk_kv_env *s)
{
    if (thread_reader.env_id == s->id)
        return thread_reader.rc;
    uv_thread_t self = uv_thread_self();
    uv_mutex_lock(&s->rcache_mu);
    struct hk__rcache *rc = s->rcaches;
    while (rc != NULL && !uv_thread_equal(&self, &rc->thread))
        rc = rc->next;
    if (rc == NULL) {
        rc = hk_calloc(1, sizeof(*rc));
        rc->thread = self;
        rc->next = s->rcaches;
        s->rcaches = rc;
    }
    uv_mutex_unlock(&s->rcache_mu);
    thread_reader.env_id = s->id;
    thread_reader.rc = rc;
    return rc;
}

int hk__kv_map_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return HK_ENOTFOUND;
    case MDB_KEYEXIST: return HK_EEXIST;
    case MDB_MAP_FULL: return HK_EFULL;
    case ENOSPC: return HK_EFULL;
    case EDQUOT: return HK_EFULL;
    case MDB_BAD_VALSIZE: return HK_EINVAL;
    default: return HK_ESTORE;
    }
}

int hk_kv_open(hk_kv_env **out, const char *dir, uint64_t map_size, uint32_t max_batch, uv_loop_t *loop)
{
    hk_kv_env *s = hk_calloc(1, sizeof(*s));
    int rc;
    s->loop = loop;
    s->loop_thread = uv_thread_self();
    s->id = __atomic_add_fetch(&next_env_id, 1, __ATOMIC_RELAXED);
    s->max_batch = max_batch ? max_batch : 1;
    s->batch_ops.b = &hk_buckets_batch;
    s->commit_us.b = &hk_buckets_commit_us;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        hk_error("store: cannot create %s: %s", dir, strerror(errno));
        free(s);
        return HK_ESTORE;
    }
    if ((rc = mdb_env_create(&s->env)) != 0)
        goto fail_free;
    mdb_env_set_maxdbs(s->env, 32);
    mdb_env_set_maxreaders(s->env, 256);
    mdb_env_set_mapsize(s->env, (size_t)map_size);
    /* MDB_NOTLS: read transactions are not bound to threads, and the cached
     * loop-thread reader may be reused freely. Commits are fully synced. */
    rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
    if (rc != 0)
        goto fail_env;
    uv_rwlock_init(&s->resize);
    uv_mutex_init(&s->ckpt_mu);
    uv_mutex_init(&s->rcache_mu);

    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto fail_lock;
    for (int i = 0; i < HK_DB__COUNT; i++) {
        rc = mdb_dbi_open(txn, db_defs[i].name, MDB_CREATE | db_defs[i].flags, &s->dbi[i]);
        if (rc != 0) {
            mdb_txn_abort(txn);
            goto fail_lock;
        }
    }
    /* Whether another version committed last: its writes may lack what
     * this one keeps beside them (indexes). A new environment has no commit. */
    MDB_val sk = {strlen(HK_KV_WRITER_STAMP), HK_KV_WRITER_STAMP}, sv;
    size_t last = mdb_txn_id(txn) - 1;
    int grc = mdb_get(txn, s->dbi[HK_DB_META], &sk, &sv);
    s->foreign = last != 0 && (grc != 0 || sv.mv_size != 8 || hk_rd64(sv.mv_data) != last);
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto fail_lock;
    *out = s;
    return 0;

fail_lock:
    uv_mutex_destroy(&s->rcache_mu);
    uv_mutex_destroy(&s->ckpt_mu);
    uv_rwlock_destroy(&s->resize);
fail_env:
    hk_error("store: cannot open %s: %s", dir, mdb_strerror(rc));
    mdb_env_close(s->env);
    free(s);
    return hk__kv_map_err(rc) == HK_EFULL ? HK_EFULL : HK_ESTORE;
fail_free:
    free(s);
    return HK_ESTORE;
}

void hk_kv_close(hk_kv_env *s)
{
    if (s == NULL)
        return;
    /* Read transactions are not bound to threads (MDB_NOTLS): every thread's is aborted here. */
    for (struct hk__rcache *rc = s->rcaches, *next; rc != NULL; rc = next) {
        next = rc->next;
        if (rc->rtxn.txn != NULL)
            mdb_txn_abort(rc->rtxn.txn);
        free(rc);
    }
    if (thread_reader.env_id == s->id)
        thread_reader.env_id = 0;
    hk__kv_checkpoints_free(s);
    mdb_env_close(s->env);
    uv_mutex_destroy(&s->rcache_mu);
    uv_mutex_destroy(&s->ckpt_mu);
    uv_rwlock_destroy(&s->resize);
    free(s);
}

bool hk_kv_foreign_commits(const hk_kv_env *s)
{
    return s->foreign;
}

/* Marks t as a transaction of this version (see hk_kv_foreign_commits). */
int hk__kv_stamp(hk_txn *t)
{
    uint8_t id[8];
    hk_be64(id, (uint64_t)mdb_txn_id(t->txn));
    return hk_put(t, HK_DB_META, HK_KV_WRITER_STAMP, strlen(HK_KV_WRITER_STAMP), id, 8, 0);
}

bool hk_kv_busy(const hk_kv_env *s)
{
    return s->working || s->queue_head != NULL || __atomic_load_n(&s->adopting, __ATOMIC_ACQUIRE) || s->ckpt_running;
}

/* Adopts a map grown by another process, or grows ours by half again (at
 * least 64 MiB) after MDB_MAP_FULL. Called with the resize lock held
 * exclusively. */
static void resize_locked(hk_kv_env *s, bool adopt)
{
    if (adopt) {
        int rc = mdb_env_set_mapsize(s->env, 0);
        if (rc != 0)
            hk_error("store: cannot adopt the map grown by another process: %s", mdb_strerror(rc));
        return;
    }
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t grow = info.me_mapsize / 2;
    if (grow < GROW_MIN)
        grow = GROW_MIN;
    size_t next = info.me_mapsize + grow;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc == 0)
        hk_info("store: map grown to %zu MiB", next >> 20);
    else
        hk_error("store: cannot grow map: %s", mdb_strerror(rc));
}

static void adopt_work(uv_work_t *req)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, adopt_work);
    uv_rwlock_wrlock(&s->resize);
    resize_locked(s, true);
    uv_rwlock_wrunlock(&s->resize);
}

static void adopt_done(uv_work_t *req, int status)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, adopt_work);
    HK_UNUSED(status);
    __atomic_store_n(&s->adopting, false, __ATOMIC_RELEASE);
}

/* On a loop: adopts the grown map on the threadpool, where waiting for the lock is allowed. One
 * adoption at a time, whichever worker's loop found the map grown first. */
static void adopt_later(hk_kv_env *s, uv_loop_t *loop)
{
    bool no = false;
    if (!__atomic_compare_exchange_n(&s->adopting, &no, true, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    int rc = uv_queue_work(loop, &s->adopt_work, adopt_work, adopt_done);
    if (rc != 0) {
        hk_error("store: cannot queue the map's adoption: %s", uv_strerror(rc));
        __atomic_store_n(&s->adopting, false, __ATOMIC_RELEASE);
    }
}

/*
 * Resizes the map (adopt: to the size another process gave it) unless that
 * would wait for this thread itself (it holds the lock shared) or block the
 * loop (the lock is taken): then UV_EAGAIN, and on the loop the adoption
 * is queued to the threadpool.
 */
int hk__kv_resize(hk_kv_env *s, bool adopt)
{
    uv_loop_t *loop = on_loop(s);
    if (held_shared > 0) {
        if (loop != NULL && adopt)
            adopt_later(s, loop);
        return UV_EAGAIN;
    }
    if (loop == NULL) {
        uv_rwlock_wrlock(&s->resize);
    } else if (uv_rwlock_trywrlock(&s->resize) != 0) {
        if (adopt)
            adopt_later(s, loop);
        return UV_EAGAIN;
    }
    resize_locked(s, adopt);
    uv_rwlock_wrunlock(&s->resize);
    return 0;
}

/* Begins a transaction holding the resize lock shared; handles a map that
 * another process (the CLI) has grown meanwhile. Returns an LMDB code, or
 * UV_EAGAIN when that map cannot be adopted now (see resize). */
int hk__kv_txn_begin(hk_kv_env *s, bool write, MDB_txn **txn)
{
    for (;;) {
        hk__kv_hold(s);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, txn);
        if (rc == 0)
            return 0;
        hk__kv_release(s);
        if (rc != MDB_MAP_RESIZED)
            return rc;
        if ((rc = hk__kv_resize(s, true)) != 0)
            return rc;
    }
}

int hk_kv_read(hk_kv_env *s, hk_txn **out)
{
    struct hk__rcache *rc = thread_cache(s);
    hk_txn *t;
    int err;
    if (!rc->busy && rc->rtxn.txn != NULL) {
        /* Renewing a reset reader avoids a reader-slot search per request. */
        hk__kv_hold(s);
        err = mdb_txn_renew(rc->rtxn.txn);
        if (err == 0) {
            rc->busy = true;
            *out = &rc->rtxn;
            return 0;
        }
        hk__kv_release(s);
        mdb_txn_abort(rc->rtxn.txn);
        rc->rtxn.txn = NULL;
    }
    MDB_txn *txn;
    if ((err = hk__kv_txn_begin(s, false, &txn)) != 0) {
        if (err == UV_EAGAIN)
            return err;
        hk_error("store: cannot begin read: %s", mdb_strerror(err));
        return hk__kv_map_err(err);
    }
    if (!rc->busy) {
        t = &rc->rtxn;
        rc->busy = true;
    } else {
        t = hk_malloc(sizeof(*t));
    }
    t->txn = txn;
    t->store = s;
    t->write = false;
    t->broken = 0;
    *out = t;
    return 0;
}

void hk_txn_end(hk_txn *t)
{
    if (t == NULL)
        return;
    hk_kv_env *s = t->store;
    struct hk__rcache *rc = thread_cache(s); /* a read ends on the thread that began it */
    if (t == &rc->rtxn) {
        mdb_txn_reset(t->txn);
        rc->busy = false;
    } else {
        mdb_txn_abort(t->txn);
        free(t);
    }
    hk__kv_release(s);
}

int hk_get(hk_txn *t, enum hk_db db, const void *key, size_t klen, hk_val *out)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t->txn, t->store->dbi[db], &k, &v);
    if (rc != 0)
        return hk__kv_map_err(rc);
    out->data = v.mv_data;
    out->len = v.mv_size;
    return 0;
}

/* Records an error of a write operation that LMDB treats as fatal to the
 * transaction; the ones that only answer the call leave it usable. */
static int write_err(hk_txn *t, int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
    case MDB_NOTFOUND:
    case MDB_KEYEXIST:
    case MDB_BAD_VALSIZE:
    case EINVAL:
    case EACCES: break;
    default:
        if (t->broken == 0)
            t->broken = rc;
        break;
    }
    return hk__kv_map_err(rc);
}

int hk_put(hk_txn *t, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen, unsigned flags)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    unsigned mf = 0;
    if (flags & HK_PUT_NOOVERWRITE)
        mf |= (db_defs[db].flags & MDB_DUPSORT) ? MDB_NODUPDATA : MDB_NOOVERWRITE;
    return write_err(t, mdb_put(t->txn, t->store->dbi[db], &k, &v, mf));
}

int hk_del(hk_txn *t, enum hk_db db, const void *key, size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return write_err(t, mdb_del(t->txn, t->store->dbi[db], &k, val ? &v : NULL));
}

uint64_t hk_seq_peek(hk_txn *t, const char *name)
{
    hk_val v;
    if (hk_get(t, HK_DB_META, name, strlen(name), &v) != 0 || v.len != 8)
        return 0;
    return hk_rd64(v.data);
}

int hk_seq_next(hk_txn *t, const char *name, uint64_t *out)
{
    uint8_t buf[8];
    uint64_t next = hk_seq_peek(t, name) + 1;
    hk_be64(buf, next);
    int rc = hk_put(t, HK_DB_META, name, strlen(name), buf, 8, 0);
    if (rc == 0)
        *out = next;
    return rc;
}

int hk_cursor_open(hk_txn *t, enum hk_db db, hk_cursor **out)
{
    hk_cursor *c = hk_malloc(sizeof(*c));
    c->txn = t;
    int rc = mdb_cursor_open(t->txn, t->store->dbi[db], &c->cur);
    if (rc != 0) {
        free(c);
        return hk__kv_map_err(rc);
    }
    *out = c;
    return 0;
}

int hk_cursor_get(hk_cursor *c, enum hk_cursor_op op, hk_val *key, hk_val *val)
{
    static const MDB_cursor_op ops[] = {
        [HK_FIRST] = MDB_FIRST, [HK_LAST] = MDB_LAST,      [HK_NEXT] = MDB_NEXT,
        [HK_PREV] = MDB_PREV,   [HK_SEEK] = MDB_SET_RANGE, [HK_SEEK_EXACT] = MDB_SET_KEY,
    };
    MDB_val k = {0, NULL}, v = {0, NULL};
    if ((op == HK_SEEK || op == HK_SEEK_EXACT) && key != NULL) {
        k.mv_data = (void *)key->data;
        k.mv_size = key->len;
    }
    int rc = mdb_cursor_get(c->cur, &k, &v, ops[op]);
    if (rc != 0)
        return hk__kv_map_err(rc);
    if (key != NULL) {
        key->data = k.mv_data;
        key->len = k.mv_size;
    }
    if (val != NULL) {
        val->data = v.mv_data;
        val->len = v.mv_size;
    }
    return 0;
}

int hk_cursor_del(hk_cursor *c)
{
    return write_err(c->txn, mdb_cursor_del(c->cur, 0));
}

void hk_cursor_close(hk_cursor *c)
{
    if (c == NULL)
        return;
    mdb_cursor_close(c->cur);
    free(c);
}

int hk_delete_run(hk_txn *txn, enum hk_db db, const hk_val *from,
                  bool (*take)(const hk_val *key, const hk_val *val, void *arg),
                  int (*before)(hk_txn *txn, const hk_val *key, const hk_val *val, void *arg), void *arg, size_t max,
                  bool *more)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, db, &c);
    if (rc != 0)
        return rc;
    size_t n = 0;
    if (from != NULL) {
        k = *from;
        rc = hk_cursor_get(c, HK_SEEK, &k, &v);
    } else {
        rc = hk_cursor_get(c, HK_FIRST, &k, &v);
    }
    /* After a delete the cursor already stands on the next pair, which
     * HK_NEXT then returns (LMDB keeps the position of a deleted item). */
    for (; rc == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (!take(&k, &v, arg))
            break;
        if (n == max) {
            *more = true;
            break;
        }
        if (before != NULL && (rc = before(txn, &k, &v, arg)) != 0)
            break;
        if ((rc = hk_cursor_del(c)) != 0)
            break;
        n++;
    }
    hk_cursor_close(c);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

size_t hk_count(hk_txn *t, enum hk_db db)
{
    MDB_stat st;
    if (mdb_stat(t->txn, t->store->dbi[db], &st) != 0)
        return 0;
    return st.ms_entries;
}

int hk_kv_reader_check(hk_kv_env *s, int *dead)
{
    int n = 0;
    int rc = mdb_reader_check(s->env, &n);
    if (rc != 0) {
        hk_error("store: reader check failed: %s", mdb_strerror(rc));
        return hk__kv_map_err(rc);
    }
    if (n > 0)
        hk_info("store: cleared %d reader slot%s left by ended processes", n, n == 1 ? "" : "s");
    if (dead != NULL)
        *dead = n;
    return 0;
}

void hk_kv_usage(hk_kv_env *s, uint64_t *map_size, uint64_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    /* Both read the meta pages inside the map: never while a commit grows it. */
    hk__kv_hold(s);
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    hk__kv_release(s);
    *map_size = info.me_mapsize;
    *used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

void hk_kv_counters(const hk_kv_env *s, uint64_t *commits, uint64_t *writes)
{
    *commits = __atomic_load_n(&s->commits, __ATOMIC_RELAXED);
    *writes = __atomic_load_n(&s->writes, __ATOMIC_RELAXED);
}

void hk_kv_commit_histograms(const hk_kv_env *s, hk_histogram *batch_ops, hk_histogram *commit_us)
{
    hk_histogram_copy(batch_ops, &s->batch_ops);
    hk_histogram_copy(commit_us, &s->commit_us);
}

void hk_kv_commit_status(const hk_kv_env *s, uint64_t *failed, int *last_status)
{
    /* Written on the store's loop; read from any worker's (relaxed, as the metrics). */
    *failed = __atomic_load_n(&s->failed_commits, __ATOMIC_RELAXED);
    *last_status = __atomic_load_n(&s->last_status, __ATOMIC_RELAXED);
}

int hk_kv_copy(hk_kv_env *s, int fd)
{
    int rc;
    for (int tries = 0;; tries++) {
        rc = mdb_env_copyfd2(s->env, fd, MDB_CP_COMPACT);
        /* Another process grew the map since it was opened here: adopt it and start over. */
        if (rc != MDB_MAP_RESIZED || tries == 3 || mdb_env_set_mapsize(s->env, 0) != 0)
            break;
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
            rc = errno;
            break;
        }
    }
    if (rc == 0)
        return 0;
    hk_error("store: cannot copy the store: %s", mdb_strerror(rc));
    return rc == ENOSPC || rc == EDQUOT ? HK_EFULL : HK_ESTORE;
}
