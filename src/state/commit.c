/*
 * commit.c: writing to the environment: the group commit on the
 * threadpool, synchronous writes, and under a write-ahead log (sync = log)
 * the log around them and the checkpoints that make LMDB durable in the
 * background.
 *
 * With a log, a group is: its ops encoded and appended to the log with one
 * fdatasync (wal.c), then applied in one LMDB transaction that also
 * records the group's last LSN under HK_KV_LSN_KEY, committed with
 * MDB_NOSYNC; done callbacks run after both. A group whose application
 * fails is taken back out of the log, so a replay never applies an op that
 * was answered with an error.
 *
 * A checkpoint (checkpoint.h) takes the write lock for a moment to open a
 * read transaction on the newest snapshot and copy that snapshot's meta
 * page, then syncs the environment (mdb_env_sync), saves the checkpoint,
 * and moves the pin to that snapshot; then log segments wholly before its
 * LSN are recycled. Checkpoints run on the threadpool beside the group
 * commit, every CKPT_MS or CKPT_BYTES of log, and synchronously after a
 * write that has no log record.
 */
#include "kv_int.h"

#include <fcntl.h>
#include <string.h>
#include <sys/statvfs.h>

#include "checkpoint.h"
#include "log.h"
#include "metrics.h"

/*
 * A background checkpoint at least this often while groups are committed,
 * and after this much log. Between checkpoints the pin keeps LMDB from
 * reusing pages, so every commit writes fresh ones and a checkpoint's sync
 * writes all of them back at once, while the log's fdatasyncs wait behind
 * it on the device: measured at 1,000 events/s, a 1 s interval made each
 * checkpoint's sync take 25-40 ms (and so the log's p99), 100 ms about 4 ms.
 */
#define CKPT_MS 100
#define CKPT_BYTES (16u << 20)

/*
 * And between checkpoints, at most this often after a group, LMDB's dirty
 * pages are handed to the device early (sync_file_range, not waited for),
 * so that a checkpoint's sync finds little left to write and no log sync
 * waits behind a burst of them. Measured at 1,000 events/s: delivery p99
 * from 9-12 ms to 2.3-4 ms, p50 unchanged; after every group instead, p50
 * rose by a third (each log sync then carried the group's pages); every
 * 20 ms, p99 4.4-6.
 */
#define WRITEBACK_MS 5

/* What a write's outcome means for its whole batch: 0 (nothing, or only
 * the write itself failed), FATE_GROW (the map is full: grow it and run the
 * batch again) or an error that fails the batch. A full map or disk, or a
 * broken store, is not the request's fault, so it is judged by the state of
 * the transaction, not by what the apply chose to return. */
static int batch_fate(const hk_txn *t)
{
    if (t->broken == MDB_MAP_FULL)
        return FATE_GROW;
    return t->broken != 0 ? hk__kv_map_err(t->broken) : 0;
}

static int put_lsn(hk_txn *t, uint64_t lsn)
{
    uint8_t v[8];
    hk_be64(v, lsn);
    return hk_put(t, HK_DB_META, HK_KV_LSN_KEY, strlen(HK_KV_LSN_KEY), v, 8, 0);
}

static uint64_t get_lsn(MDB_txn *txn, MDB_dbi meta)
{
    MDB_val k = {strlen(HK_KV_LSN_KEY), HK_KV_LSN_KEY}, v;
    if (mdb_get(txn, meta, &k, &v) != 0 || v.mv_size != 8)
        return 0;
    return hk_rd64(v.mv_data);
}

uint64_t hk_kv_applied_lsn(hk_kv_env *s)
{
    hk_txn *t;
    if (hk_kv_read(s, &t) != 0)
        return 0;
    uint64_t lsn = get_lsn(t->txn, s->dbi[HK_DB_META]);
    hk_txn_end(t);
    return lsn;
}

int hk_kv_nested(hk_txn *t, int (*fn)(hk_txn *txn, void *arg), void *arg)
{
    MDB_txn *child;
    int rc = mdb_txn_begin(t->store->env, t->txn, 0, &child);
    if (rc != 0) {
        if (t->broken == 0)
            t->broken = rc;
        return hk__kv_map_err(rc);
    }
    hk_txn ct = {child, t->store, true, 0};
    rc = fn(&ct, arg);
    if (rc == 0 && ct.broken == 0 && (rc = mdb_txn_commit(child)) != 0) {
        ct.broken = rc;
        rc = hk__kv_map_err(rc);
    } else if (rc != 0 || ct.broken != 0) {
        mdb_txn_abort(child);
    }
    /* A full map or a broken store is the enclosing transaction's too. */
    if (ct.broken != 0 && t->broken == 0)
        t->broken = ct.broken;
    return rc != 0 ? rc : hk__kv_map_err(ct.broken);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

/*
 * Makes the newest snapshot durable and records it (see the file comment).
 * Called with no transaction of this thread open.
 */
static int checkpoint(hk_kv_env *s, uint32_t state, uint64_t *durable)
{
    hk__ckpt c;
    MDB_txn *w = NULL, *pin = NULL;
    MDB_stat st;
    int fd;
    memset(&c, 0, sizeof(c));
    uv_mutex_lock(&s->ckpt_mu);
    /* The write lock keeps every committer (in any process) out while the
     * snapshot is pinned and its meta page copied, so neither moves on. */
    int rc = hk__kv_txn_begin(s, true, &w);
    if (rc != 0) {
        rc = rc == UV_EAGAIN ? rc : hk__kv_map_err(rc);
        goto out;
    }
    rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &pin);
    if (rc == 0)
        rc = mdb_env_stat(s->env, &st);
    if (rc == 0)
        rc = mdb_env_get_fd(s->env, &fd);
    if (rc == 0) {
        c.txnid = mdb_txn_id(pin);
        c.lsn = get_lsn(pin, s->dbi[HK_DB_META]);
        rc = hk__ckpt_meta(fd, st.ms_psize, c.txnid, &c);
        if (rc == HK_ENOTFOUND)
            hk_error("store: LMDB's meta page is not laid out as this version expects; set [store] sync = lmdb");
    } else {
        rc = hk__kv_map_err(rc);
    }
    mdb_txn_abort(w);
    hk__kv_release(s);
    if (rc != 0)
        goto out;
    if ((rc = mdb_env_sync(s->env, 1)) != 0) {
        hk_error("store: cannot sync the environment: %s", mdb_strerror(rc));
        rc = hk__kv_map_err(rc);
        goto out;
    }
    hk__ckpt_crash_point(HK__CRASH_AFTER_SYNC);
    c.state = state;
    if ((rc = hk__ckpt_save(s->ckpt_path, &c, !s->ckpt_owner)) != 0)
        goto out;
    hk__ckpt_crash_point(HK__CRASH_AFTER_SAVE);
    if (s->ckpt_owner) {
        /* Commits with MDB_NOSYNC reach the disk in no particular order, so
         * after a power loss only the snapshot just saved is sure to be
         * whole, and only if no later commit reused its pages. LMDB reuses
         * a page only once no reader needs it: this read transaction on the
         * saved snapshot, held until the next checkpoint replaces it, keeps
         * every page of that snapshot (and of later ones) where it is. It
         * holds no pointer into the map, so a resize under it is harmless. */
        if (s->pin != NULL)
            mdb_txn_abort(s->pin);
        s->pin = pin;
        pin = NULL;
    }
    *durable = c.lsn;
out:
    if (pin != NULL)
        mdb_txn_abort(pin);
    uv_mutex_unlock(&s->ckpt_mu);
    return rc;
}

/* A checkpoint, then the log segments it covers recycled. */
static int checkpoint_and_recycle(hk_kv_env *s, uint32_t state)
{
    uint64_t durable = 0;
    int rc = checkpoint(s, state, &durable);
    if (rc == 0 && s->wal != NULL && s->ckpt_owner && hk__wal_recycle(s->wal, durable) != 0)
        hk_warn("store: log segments were not recycled; they will be at the next checkpoint");
    return rc;
}

int hk_kv_checkpoints(hk_kv_env *s, const char *path, bool owner)
{
    s->ckpt_path = hk_strdup(path);
    s->ckpt_owner = owner;
    if (!owner)
        return 0;
    int rc = mdb_env_set_flags(s->env, MDB_NOSYNC, 1);
    if (rc == 0)
        rc = checkpoint_and_recycle(s, HK__CKPT_OPEN);
    if (rc != 0)
        hk__kv_checkpoints_free(s);
    return rc;
}

int hk_kv_checkpoint(hk_kv_env *s, bool clean)
{
    if (s->ckpt_path == NULL)
        return 0;
    return checkpoint_and_recycle(s, clean ? HK__CKPT_CLEAN : HK__CKPT_OPEN);
}

void hk_kv_attach_log(hk_kv_env *s, hk__wal *wal)
{
    s->wal = wal;
    s->ckpt_bytes = hk__wal_bytes(wal);
    s->ckpt_at = s->loop != NULL ? uv_now(s->loop) : 0;
}

void hk__kv_checkpoints_free(hk_kv_env *s)
{
    if (s->pin != NULL)
        mdb_txn_abort(s->pin);
    s->pin = NULL;
    if (s->ckpt_owner)
        (void)mdb_env_set_flags(s->env, MDB_NOSYNC, 0);
    s->ckpt_owner = false;
    s->wal = NULL;
    free(s->ckpt_path);
    s->ckpt_path = NULL;
}

void hk_kv_checkpoints_stop(hk_kv_env *s)
{
    hk__kv_checkpoints_free(s);
}

static void ckpt_work(uv_work_t *req)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, ckpt_work);
    if (checkpoint_and_recycle(s, HK__CKPT_OPEN) != 0)
        hk_warn("store: checkpoint failed; the log keeps every record since the last one");
}

static void ckpt_done(uv_work_t *req, int status)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, ckpt_work);
    HK_UNUSED(status);
    s->ckpt_running = false;
}

/* After a group: a background checkpoint when the log has grown or time has passed since the last one. */
static void maybe_checkpoint(hk_kv_env *s)
{
    if (s->wal == NULL || s->ckpt_running || !hk__ckpt_background())
        return;
    uint64_t bytes = hk__wal_bytes(s->wal), now = uv_now(s->loop);
    if (bytes == s->ckpt_bytes || (bytes - s->ckpt_bytes < CKPT_BYTES && now - s->ckpt_at < CKPT_MS))
        return;
    s->ckpt_bytes = bytes;
    s->ckpt_at = now;
    if (uv_queue_work(s->loop, &s->ckpt_work, ckpt_work, ckpt_done) == 0)
        s->ckpt_running = true;
}

/* Below this much free space, a write LMDB reports as an I/O error is taken for a full disk. */
#define NO_ROOM (1u << 20)

/*
 * A failed commit's error as the caller should see it: LMDB reports a
 * short write (which is how a nearly full disk often ends one) as EIO,
 * indistinguishable from a broken disk, so the free space decides.
 */
static int commit_error(hk_kv_env *s, int rc)
{
    struct statvfs v;
    int fd;
    if (rc == HK_ESTORE && mdb_env_get_fd(s->env, &fd) == 0 && fstatvfs(fd, &v) == 0 &&
        (uint64_t)v.f_bavail * v.f_frsize < NO_ROOM)
        return HK_EFULL;
    return rc;
}

/* ---- synchronous writes ----------------------------------------------------------------- */

/* fn in one write transaction, committed; with lsn, also recorded as the last log record applied. */
static int write_txn(hk_kv_env *s, int (*fn)(hk_txn *txn, void *arg), void *arg, uint64_t lsn)
{
    for (int attempt = 0;; attempt++) {
        MDB_txn *txn;
        int rc = hk__kv_txn_begin(s, true, &txn);
        if (rc != 0)
            return rc == UV_EAGAIN ? rc : hk__kv_map_err(rc);
        hk_txn t = {txn, s, true, 0};
        if ((rc = hk__kv_stamp(&t)) == 0 && lsn != 0)
            rc = put_lsn(&t, lsn);
        if (rc == 0)
            rc = fn(&t, arg);
        bool grow = t.broken == MDB_MAP_FULL;
        if (rc == 0 && t.broken == 0) {
            int mrc = mdb_txn_commit(txn);
            grow = mrc == MDB_MAP_FULL;
            rc = hk__kv_map_err(mrc);
        } else {
            mdb_txn_abort(txn);
            if (rc == 0)
                rc = hk__kv_map_err(t.broken);
        }
        hk__kv_release(s);
        if (!grow || attempt >= GROW_ATTEMPTS)
            return commit_error(s, rc);
        /* Not when this thread has a read open (it would wait for itself): the map stays full. */
        if (hk__kv_resize(s, false) != 0)
            return rc;
    }
}

int hk_kv_write_sync(hk_kv_env *s, int (*fn)(hk_txn *txn, void *arg), void *arg)
{
    int rc = write_txn(s, fn, arg, 0);
    /* Under checkpoints the commit is durable only once one covers it (the
     * owner commits with MDB_NOSYNC), and a process beside the owner saves
     * its commit so that a restore after a crash does not go back past it. */
    if (rc == 0 && s->ckpt_path != NULL)
        rc = hk_kv_checkpoint(s, false);
    return rc;
}

int hk_kv_write_replay(hk_kv_env *s, int (*fn)(hk_txn *txn, void *arg), void *arg, uint64_t lsn)
{
    return write_txn(s, fn, arg, lsn);
}

/* ---- group commit ---------------------------------------------------- */

/*
 * Appends the batch's records to the log and syncs it, unless every record
 * is lazy (HK_WRITE_LAZY). A write whose record cannot be made fails
 * unapplied. *lsn receives the last LSN; *logged and *unlogged whether the
 * batch has writes with and without a record.
 */
static int log_batch(hk_kv_env *s, uint64_t *lsn, bool *logged, bool *unlogged)
{
    bool lazy = true;
    for (hk_write *w = s->batch; w != NULL; w = w->next) {
        uint8_t *rec;
        size_t len;
        if (w->encode == NULL) {
            *unlogged = true;
            continue;
        }
        int rc = w->encode(w, &rec, &len);
        if (rc != 0) {
            w->status = rc;
            w->flags |= HK__WRITE_SKIP;
            continue;
        }
        hk__wal_add(s->wal, rec, len);
        free(rec);
        *logged = true;
        lazy = lazy && (w->flags & HK_WRITE_LAZY) != 0;
    }
    return *logged ? hk__wal_flush(s->wal, lsn, !lazy) : 0;
}

/* Applies the batch in one transaction (lsn: recorded too when non-zero); the outcome in batch_status. */
static void apply_batch(hk_kv_env *s, uint64_t lsn)
{
    for (int attempt = 0;; attempt++) {
        MDB_txn *txn;
        int rc = hk__kv_txn_begin(s, true, &txn);
        if (rc != 0) {
            s->batch_status = rc == UV_EAGAIN ? rc : hk__kv_map_err(rc);
            return;
        }
        hk_txn t = {txn, s, true, 0};
        int fate = 0;
        if (hk__kv_stamp(&t) != 0 || (lsn != 0 && put_lsn(&t, lsn) != 0))
            fate = batch_fate(&t) != 0 ? batch_fate(&t) : HK_ESTORE;
        for (hk_write *w = s->batch; w != NULL && fate == 0; w = w->next) {
            if (w->flags & HK__WRITE_SKIP)
                continue;
            if (w->flags & HK_WRITE_ISOLATED) {
                MDB_txn *child;
                rc = mdb_txn_begin(s->env, txn, 0, &child);
                if (rc != 0) {
                    fate = rc == MDB_MAP_FULL ? FATE_GROW : hk__kv_map_err(rc);
                    break;
                }
                hk_txn ct = {child, s, true, 0};
                w->status = w->apply(&ct, w);
                fate = batch_fate(&ct);
                if (w->status == 0 && fate == 0) {
                    rc = mdb_txn_commit(child);
                    if (rc != 0)
                        fate = rc == MDB_MAP_FULL ? FATE_GROW : hk__kv_map_err(rc);
                } else {
                    mdb_txn_abort(child);
                }
            } else {
                w->status = w->apply(&t, w);
                fate = batch_fate(&t);
            }
        }
        if (fate == 0) {
            rc = mdb_txn_commit(txn);
            hk__kv_release(s);
            s->batch_status = hk__kv_map_err(rc);
            if (rc != MDB_MAP_FULL)
                return;
            fate = FATE_GROW;
        } else {
            mdb_txn_abort(txn);
            hk__kv_release(s);
        }
        if (fate != FATE_GROW || attempt >= GROW_ATTEMPTS) {
            s->batch_status = fate == FATE_GROW ? HK_EFULL : fate;
            return;
        }
        /* The threadpool holds no other transaction and may wait: this resizes. */
        if (hk__kv_resize(s, false) != 0) {
            s->batch_status = HK_EFULL;
            return;
        }
    }
}

/* After a logged group: starts the writeback of LMDB's dirty pages when WRITEBACK_MS have passed. */
static void early_writeback(hk_kv_env *s)
{
#ifdef SYNC_FILE_RANGE_WRITE
    uint64_t now = uv_hrtime();
    int fd;
    if (now - s->writeback_ns < WRITEBACK_MS * 1000000ull || mdb_env_get_fd(s->env, &fd) != 0)
        return;
    s->writeback_ns = now;
    /* Only a hint: the checkpoint's sync is what makes the pages durable. */
    (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
    HK_UNUSED(s);
#endif
}

/* Runs on a threadpool thread: logs the whole batch, then applies it in one transaction. */
static void batch_work(uv_work_t *req)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, work);
    uint64_t lsn = 0;
    bool logged = false, unlogged = false;
    if (s->batch == NULL) {
        /* hk_kv_sync_lazy: no writes, only the log's lazy groups made durable. */
        s->batch_status = hk__wal_sync(s->wal);
        return;
    }
    if (s->wal != NULL && (s->batch_status = log_batch(s, &lsn, &logged, &unlogged)) != 0)
        return;
    apply_batch(s, logged ? lsn : 0);
    if (logged && s->batch_status == 0)
        early_writeback(s);
    s->batch_status = commit_error(s, s->batch_status);
    if (logged && s->batch_status != 0 && hk__wal_undo(s->wal) != 0)
        hk_error("store: a failed group could not be taken back out of the log");
    if (unlogged && s->batch_status == 0) {
        /* Writes the log cannot replay are made durable the way LMDB does
         * without a log, by a checkpoint, before their done callbacks. */
        int rc = checkpoint_and_recycle(s, HK__CKPT_OPEN);
        for (hk_write *w = s->batch; w != NULL && rc != 0; w = w->next)
            if (w->encode == NULL && w->status == 0)
                w->status = rc;
    }
}

static void start_batch(hk_kv_env *s);

static void batch_done(uv_work_t *req, int status)
{
    hk_kv_env *s = hk_container_of(req, hk_kv_env, work);
    hk_write *w = s->batch;
    int bs = status != 0 ? HK_ESTORE : s->batch_status;
    if (w == NULL) {
        /* A log sync alone (hk_kv_sync_lazy): a failure has broken the log (wal.c), so every later group fails. */
        if (bs != 0)
            hk_error("store: lazy log records could not be synced: %s", hk_strerror(bs));
    } else if (bs != 0) {
        hk_error("store: group commit failed: %s", hk_strerror(bs));
        HK_METRIC_ADD(s->failed_commits, 1);
    } else {
        HK_METRIC_ADD(s->commits, 1);
        hk_histogram_observe(&s->batch_ops, s->batch_n);
        hk_histogram_observe(&s->commit_us, (uv_hrtime() - s->batch_started_ns) / 1000);
    }
    /* What /readyz reports: the last group's outcome (a log sync alone is no commit; a failed one
     * breaks the log, so the next group fails and says so). */
    if (w != NULL)
        __atomic_store_n(&s->last_status, bs, __ATOMIC_RELAXED);
    s->batch = NULL;
    s->working = false;
    uint64_t now = uv_now(s->loop);
    if (now - s->reader_check_at >= READER_CHECK_MS) {
        s->reader_check_at = now;
        if (hk_kv_reader_check(s, NULL) != 0)
            hk_warn("store: stale readers could not be checked");
    }
    maybe_checkpoint(s);
    /* Start the next batch before running callbacks, so the disk is never
     * idle while the loop answers the previous group. */
    start_batch(s);
    while (w != NULL) {
        hk_write *next = w->next;
        int st = bs != 0 ? bs : w->status;
        if (bs == 0)
            HK_METRIC_ADD(s->writes, 1);
        w->done(w, st);
        w = next;
    }
}

static void queue_batch(hk_kv_env *s)
{
    s->batch_status = 0;
    s->working = true;
    s->batch_started_ns = uv_hrtime();
    int rc = uv_queue_work(s->loop, &s->work, batch_work, batch_done);
    if (rc != 0) {
        hk_error("store: cannot queue commit: %s", uv_strerror(rc));
        abort();
    }
}

void hk_kv_sync_lazy(hk_kv_env *s)
{
    uv_thread_t self = uv_thread_self();
    if (s->loop == NULL || !uv_thread_equal(&self, &s->loop_thread))
        return; /* another worker's loop: the store's own loop does it */
    /* A group already running or queued syncs the log itself, or is lazy and comes back here. */
    if (s->wal == NULL || s->working || s->queue_head != NULL || !hk__wal_unsynced(s->wal))
        return;
    s->batch = NULL;
    s->batch_n = 0;
    queue_batch(s);
}

static void start_batch(hk_kv_env *s)
{
    if (s->working || s->queue_head == NULL)
        return;
    hk_write *head = s->queue_head, *w = head;
    uint32_t n = 1;
    while (w->next != NULL && n < s->max_batch) {
        w = w->next;
        n++;
    }
    s->queue_head = w->next;
    if (s->queue_head == NULL)
        s->queue_tail = NULL;
    w->next = NULL;
    s->batch = head;
    s->batch_n = n;
    queue_batch(s);
}

void hk_kv_submit(hk_kv_env *s, hk_write *w)
{
    w->next = NULL;
    w->status = 0;
    w->flags &= ~HK__WRITE_SKIP;
    if (s->queue_tail != NULL)
        s->queue_tail->next = w;
    else
        s->queue_head = w;
    s->queue_tail = w;
    start_batch(s);
}
