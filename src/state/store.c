/*
 * store.c: the LMDB engine behind store.h: opening (with the data
 * directory's lock, recovery from the write-ahead log, the reader check
 * and the check of a store another version wrote), the group commit of
 * typed ops
 * (on kv.c's, so old-style writes and ops share one writer and one fsync
 * per group), the op dispatcher and the typed queries.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "log.h"
#include "pg_cache.h"
#include "store_int.h"
#include "tables.h"

#define DEFAULT_MAP_SIZE (1ull << 30)

/* In cluster mode a call goes to the PostgreSQL engine instead (store_pg.c; pg_cache.h for the registry). */
#define PG_OR(s, call)                                                                                                 \
    do {                                                                                                               \
        if ((s)->pg != NULL)                                                                                           \
            return call;                                                                                               \
    } while (0)

/* ---- opening ---------------------------------------------------------------- */

int hk_store_lock_dir(const char *dir, int *fd)
{
    char path[4096];
    *fd = -1;
    if (snprintf(path, sizeof(path), "%s/lock", dir) >= (int)sizeof(path))
        return HK_EINVAL;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0) {
        hk_error("store: cannot open %s: %s", path, strerror(errno));
        return HK_ESTORE;
    }
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        if (e == EWOULDBLOCK) {
            hk_error("store: %s is in use by another hookd serve (%s is locked); stop that one first", dir, path);
            return HK_ELOCKED;
        }
        hk_error("store: cannot lock %s: %s", path, strerror(e));
        return HK_ESTORE;
    }
    *fd = f;
    return 0;
}

void hk_store_unlock_dir(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the descriptor releases the flock */
}

/* The store's format version in the meta table (u32); absent: written before versions were recorded (0). */
#define FORMAT_KEY "store:format"

static int format_read(hk_kv_env *kv, uint32_t *format)
{
    hk_txn *txn;
    hk_val v;
    int rc = hk_kv_read(kv, &txn);
    if (rc != 0)
        return rc;
    rc = hk_get(txn, HK_DB_META, FORMAT_KEY, strlen(FORMAT_KEY), &v);
    *format = 0;
    if (rc == 0 && v.len == 4)
        *format = hk_rd32(v.data);
    else if (rc == 0)
        rc = HK_ESTORE;
    hk_txn_end(txn);
    return rc == HK_ENOTFOUND ? 0 : rc;
}

/* Webhooks in the current format (a handful of records, read by every signal's fan-out); the format recorded. */
static int upgrade(hk_txn *txn, void *arg)
{
    const uint32_t *found = arg;
    size_t n = 0;
    int rc = hk__webhook_upgrade_all(txn, &n);
    if (rc == 0 && n > 0)
        hk_info("store: %zu webhook record%s rewritten in the current format", n, n == 1 ? "" : "s");
    if (rc == 0 && *found < HK_STORE_FORMAT) {
        uint8_t v[4];
        hk_be32(v, HK_STORE_FORMAT);
        rc = hk_put(txn, HK_DB_META, FORMAT_KEY, strlen(FORMAT_KEY), v, 4, 0);
    }
    return rc;
}

/*
 * One-off work on a store written by another version: the queue's index
 * by event brought up to date, queue entries that lost their event dropped
 * (one warning per webhook), webhooks rewritten in the current format.
 */
static int upgrade_all(hk_kv_env *kv, const char *dir)
{
    uint32_t found;
    int rc = format_read(kv, &found);
    if (rc != 0)
        return rc;
    if (found > HK_STORE_FORMAT) {
        hk_error("store: %s holds store format %u, newer than the %u this hookd reads; run the hookd that wrote it "
                 "(or a newer one), or restore a backup",
                 dir, found, HK_STORE_FORMAT);
        return HK_EFORMAT;
    }
    hk__orphans gone;
    rc = hk__queue_check(kv, hk_kv_foreign_commits(kv), &gone);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < gone.n; i++)
        hk_warn("store: %llu queued deliver%s of webhook %u had lost %s event (pruned by an older version) and %s "
                "dropped",
                (unsigned long long)gone.v[i].count, gone.v[i].count == 1 ? "y" : "ies", gone.v[i].webhook_id,
                gone.v[i].count == 1 ? "its" : "their", gone.v[i].count == 1 ? "was" : "were");
    hk__orphans_free(&gone);
    rc = hk_kv_write_sync(kv, upgrade, &found);
    if (rc == 0 && found < HK_STORE_FORMAT)
        hk_debug("store: format %u recorded (was %u)", HK_STORE_FORMAT, found);
    return rc;
}

static int apply_op(hk_txn *txn, hk_op *op);

/* ---- the write-ahead log at open ------------------------------------------------------ */

/* Log records are replayed in transactions of up to this many records or bytes. */
#define REPLAY_RECORDS 256
#define REPLAY_BYTES (4u << 20)

struct replay {
    hk_kv_env *kv;
    uint8_t **recs; /* copies of the records of the chunk being gathered */
    size_t *lens;
    size_t n, bytes;
    uint64_t first_lsn, last_lsn;
    int rc;
};

static int replay_op(hk_txn *txn, void *arg)
{
    return apply_op(txn, arg);
}

/* Applies the gathered records as their group commits did: each op on its own, a failing one changing nothing. */
static int replay_chunk(hk_txn *txn, void *arg)
{
    struct replay *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        hk_op op;
        if (hk_op_decode(&op, r->recs[i], r->lens[i]) != 0) {
            hk_error("store: log record %llu cannot be read by this version", (unsigned long long)(r->first_lsn + i));
            return HK_ESTORE;
        }
        /* An op that fails now failed when it was first applied too: the
         * same op on the same state. A full map fails the transaction and
         * the whole chunk is applied again after the map grew. */
        (void)hk_kv_nested(txn, replay_op, &op);
        hk_op_decode_free(&op);
    }
    return 0;
}

static int replay_flush(struct replay *r)
{
    int rc = 0;
    if (r->n > 0)
        rc = hk_kv_write_replay(r->kv, replay_chunk, r, r->last_lsn);
    for (size_t i = 0; i < r->n; i++)
        free(r->recs[i]);
    r->n = 0;
    r->bytes = 0;
    return rc;
}

static int replay_record(uint64_t lsn, const uint8_t *rec, size_t len, void *arg)
{
    struct replay *r = arg;
    if (r->n == 0) {
        r->recs = hk_realloc(r->recs, REPLAY_RECORDS * sizeof(*r->recs));
        r->lens = hk_realloc(r->lens, REPLAY_RECORDS * sizeof(*r->lens));
        r->first_lsn = lsn;
    }
    r->recs[r->n] = hk_malloc(len ? len : 1);
    memcpy(r->recs[r->n], rec, len);
    r->lens[r->n++] = len;
    r->bytes += len;
    r->last_lsn = lsn;
    if (r->n == REPLAY_RECORDS || r->bytes >= REPLAY_BYTES)
        return replay_flush(r);
    return 0;
}

/* Takes the directory lock without a message when it is free (a CLI process that may recover). */
static int try_lock_quiet(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/lock", dir);
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (f < 0)
        return -1;
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        close(f);
        return -1;
    }
    return f;
}

/*
 * Replays the log after the state's last applied record and leaves the
 * store checkpointed; with keep, the log stays open for the group commit
 * (*wal), otherwise it is closed.
 */
static int recover(hk_store *s, const hk_store_opts *o, const char *waldir, const char *ckpt, bool crashed, bool keep)
{
    if (mkdir(waldir, 0700) == 0) {
        /* The log's directory entry must outlive a power loss as much as what goes in it. */
        int dfd = open(o->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int e = dfd < 0 || fsync(dfd) != 0 ? errno : 0;
        if (dfd >= 0)
            close(dfd);
        if (e != 0) {
            hk_error("store: cannot sync %s: %s", o->data_dir, strerror(e));
            return HK_ESTORE;
        }
    } else if (errno != EEXIST) {
        hk_error("store: cannot create %s: %s", waldir, strerror(errno));
        return HK_ESTORE;
    }
    int rc = hk_kv_checkpoints(s->kv, ckpt, true);
    if (rc != 0) {
        hk_error("store: cannot checkpoint %s: %s", o->data_dir, hk_strerror(rc));
        return rc;
    }
    uint64_t applied = hk_kv_applied_lsn(s->kv);
    struct replay r = {.kv = s->kv};
    hk__wal_info info;
    hk__wal *wal = NULL;
    rc = hk__wal_open(&wal, waldir, o->wal_segment, applied, crashed, replay_record, &r, &info);
    if (rc == 0)
        rc = replay_flush(&r);
    else
        (void)replay_flush(&r);
    free(r.recs);
    free(r.lens);
    if (rc != 0) {
        hk_error("store: cannot recover from the log in %s: %s", waldir, hk_strerror(rc));
        hk__wal_close(wal);
        return rc;
    }
    if (info.replayed > 0 || info.cleared > 0 || crashed)
        hk_info("store: log replayed: %llu record%s (%llu..%llu) after record %llu; it ends at record %llu, "
                "segment %llu offset %llu (stopped at: %s)%s",
                (unsigned long long)info.replayed, info.replayed == 1 ? "" : "s", (unsigned long long)info.first,
                (unsigned long long)(info.replayed ? info.first + info.replayed - 1 : 0), (unsigned long long)applied,
                (unsigned long long)info.last, (unsigned long long)info.segment, (unsigned long long)info.offset,
                info.reason, info.cleared > 0 ? "; what followed it was cleared" : "");
    if (info.replayed > 0 && (rc = hk_kv_checkpoint(s->kv, false)) != 0) {
        hk__wal_close(wal);
        return rc;
    }
    if (keep) {
        (void)hk__wal_prepare(wal);
        s->wal = wal;
        hk_kv_attach_log(s->kv, wal);
        return 0;
    }
    rc = hk_kv_checkpoint(s->kv, true);
    hk_kv_checkpoints_stop(s->kv);
    hk__wal_close(wal);
    return rc;
}

/*
 * The log's part of opening: a serving process (o->exclusive) recovers
 * from a log left in DATA/wal, and keeps writing it under sync = log or
 * removes it under sync = lmdb; a CLI process recovers when a server
 * crashed and none holds the directory now, and then (or beside a running
 * server) saves a checkpoint after each of its own commits. Runs before
 * the environment is opened (it opens it), since after a crash LMDB's
 * checkpoint may have to be put back first.
 */
static int open_with_log(hk_store *s, const hk_store_opts *o, uint64_t map_size)
{
    char waldir[4096], ckpt[4096];
    struct stat st;
    if (snprintf(ckpt, sizeof(ckpt), "%s/wal/checkpoint", o->data_dir) >= (int)sizeof(ckpt))
        return HK_EINVAL;
    snprintf(waldir, sizeof(waldir), "%s/wal", o->data_dir);
    hk__ckpt c;
    int rc = hk__ckpt_load(ckpt, &c);
    if (rc != 0 && rc != HK_ENOTFOUND)
        return rc;
    bool have_ckpt = rc == 0, crashed = have_ckpt && c.state == HK__CKPT_OPEN;
    bool have_log = stat(waldir, &st) == 0;
    int cli_lock = -1;
    if (!o->exclusive && crashed)
        cli_lock = try_lock_quiet(o->data_dir);
    bool owner = o->exclusive || cli_lock >= 0;
    if (owner && crashed) {
        bool restored;
        if ((rc = hk__ckpt_restore(o->data_dir, &c, &restored)) != 0)
            goto out;
    }
    rc = hk_kv_open(&s->kv, o->data_dir, map_size, o->max_batch, s->loop);
    if (rc != 0)
        goto out;
    if (o->exclusive && o->wal) {
        rc = recover(s, o, waldir, ckpt, crashed, true);
    } else if (owner && have_log) {
        rc = recover(s, o, waldir, ckpt, crashed, false);
        if (rc == 0 && o->exclusive) {
            rc = hk__wal_remove(waldir);
            if (rc == 0)
                hk_info("store: sync = lmdb: the log in %s was replayed and removed", waldir);
        } else if (rc == 0) {
            rc = hk_kv_checkpoints(s->kv, ckpt, false);
        }
    } else if (have_ckpt) {
        rc = hk_kv_checkpoints(s->kv, ckpt, false);
    }
    if (rc != 0) {
        hk_kv_close(s->kv);
        s->kv = NULL;
    }
out:
    if (cli_lock >= 0)
        close(cli_lock);
    return rc;
}

int hk_store_open(hk_store **out, uv_loop_t *loop, const hk_store_opts *o)
{
    hk_store *s = hk_calloc(1, sizeof(*s));
    int rc;
    s->lock_fd = -1;
    s->loop = loop;
    if (o->postgres != NULL && o->postgres[0] != '\0') {
        if ((rc = hk__store_pg_open(s, loop, o)) != 0) {
            free(s);
            return rc;
        }
        *out = s;
        return 0;
    }
    if (o->exclusive) {
        if (mkdir(o->data_dir, 0700) != 0 && errno != EEXIST) {
            hk_error("store: cannot create %s: %s", o->data_dir, strerror(errno));
            free(s);
            return HK_ESTORE;
        }
        if ((rc = hk_store_lock_dir(o->data_dir, &s->lock_fd)) != 0) {
            free(s);
            return rc;
        }
    }
    rc = open_with_log(s, o, o->map_size ? o->map_size : DEFAULT_MAP_SIZE);
    if (rc != 0)
        goto fail_lock;
    /* Reader slots of killed processes (a CLI killed mid-read) hold back
     * page reuse until cleared. */
    if ((rc = hk_kv_reader_check(s->kv, NULL)) != 0)
        goto fail_kv;
    if ((rc = upgrade_all(s->kv, o->data_dir)) != 0) {
        if (rc != HK_EFORMAT)
            hk_error("store: cannot upgrade the records of an older version: %s", hk_strerror(rc));
        goto fail_kv;
    }
    *out = s;
    return 0;

fail_kv:
    hk_kv_close(s->kv);
    hk__wal_close(s->wal);
fail_lock:
    hk_store_unlock_dir(s->lock_fd);
    free(s);
    return rc;
}

void hk_store_close(hk_store *s)
{
    hk_store_close_then(s, NULL, NULL);
}

void hk_store_close_then(hk_store *s, void (*closed)(void *arg), void *arg)
{
    if (s == NULL) {
        if (closed != NULL)
            closed(arg);
        return;
    }
    if (s->pg != NULL) {
        hk__store_pg_close(s, closed, arg);
        free(s);
        return;
    }
    /* An orderly close leaves LMDB durable as it is: the next open has nothing to restore. */
    if (s->wal != NULL && hk_kv_checkpoint(s->kv, true) != 0)
        hk_warn("store: the last checkpoint failed; the next start replays the log");
    hk_kv_close(s->kv);
    hk__wal_close(s->wal);
    hk_store_unlock_dir(s->lock_fd);
    free(s);
    if (closed != NULL)
        closed(arg);
}

int hk__store_checkpoint(hk_store *s)
{
    return hk_kv_checkpoint(s->kv, false);
}

hk_kv_env *hk__store_kv(hk_store *s)
{
    return s->kv;
}

bool hk_store_busy(const hk_store *s)
{
    if (s->pg != NULL)
        return hk_pg_store_busy(s->pg) || (s->share != NULL && hk__share_busy(s->share));
    return hk_kv_busy(s->kv) || (s->share != NULL && hk__share_busy(s->share));
}

uv_loop_t *hk__store_loop(hk_store *s)
{
    return s->loop;
}

struct hk__share *hk__store_share(hk_store *s)
{
    return s->share;
}

void hk__store_set_share(hk_store *s, struct hk__share *sh)
{
    s->share = sh;
}

void hk__store_thread_loop(hk_store *s, uv_loop_t *loop)
{
    HK_UNUSED(s);
    hk_kv_thread_loop(loop);
}

void hk_store_get_counters(hk_store *s, hk_store_counters *out)
{
    if (s->pg != NULL) {
        hk_pg_store_get_counters(s->pg, out);
        return;
    }
    hk_kv_counters(s->kv, &out->commits, &out->ops);
    hk_kv_usage(s->kv, &out->map_size, &out->used);
    hk_kv_commit_status(s->kv, &out->failed_commits, &out->last_commit_status);
    hk_kv_commit_histograms(s->kv, &out->batch_ops, &out->commit_us);
}

/* ---- applying ops ------------------------------------------------------------ */

static int apply_op(hk_txn *txn, hk_op *op)
{
    switch (op->type) {
    case HK_OP_SIGNAL: return hk__apply_signal(txn, op);
    case HK_OP_OUTCOME: return hk__apply_outcome(txn, op);
    case HK_OP_ATTEMPT: return hk__apply_attempt(txn, op);
    case HK_OP_RESEND: return hk__apply_resend(txn, op);
    case HK_OP_WEBHOOK_PUT: return hk__apply_webhook_put(txn, op);
    case HK_OP_WEBHOOK_DELETE: return hk__apply_webhook_delete(txn, op);
    case HK_OP_WEBHOOK_LOCK: return hk__apply_webhook_lock(txn, op);
    case HK_OP_QUEUE_DROP: return hk__apply_queue_drop(txn, op);
    case HK_OP_USER_PUT: return hk__apply_user_put(txn, op);
    case HK_OP_KEY_PUT: return hk__apply_key_put(txn, op);
    case HK_OP_KEY_REVOKE: return hk__apply_key_revoke(txn, op);
    case HK_OP_NODE_PUT: return hk__apply_node_put(txn, op);
    case HK_OP_ACCOUNT_PUT: return hk__apply_account_put(txn, op);
    case HK_OP_PRUNE: return hk__apply_prune(txn, op);
    case HK_OP_TREE_IMPORT: return hk__apply_tree_import(txn, op);
    case HK_OP_RECOVER: return hk__apply_recover(txn, op);
    }
    return HK_EINVAL;
}

/* A submitted op on kv.c's group commit. */
struct op_write {
    hk_write w;
    hk_commit *c;
};

static int op_write_apply(hk_txn *txn, hk_write *w)
{
    struct op_write *ow = hk_container_of(w, struct op_write, w);
    return apply_op(txn, &ow->c->op);
}

static int op_write_encode(hk_write *w, uint8_t **out, size_t *len)
{
    struct op_write *ow = hk_container_of(w, struct op_write, w);
    return hk_op_encode(&ow->c->op, out, len);
}

static void op_write_done(hk_write *w, int status)
{
    struct op_write *ow = hk_container_of(w, struct op_write, w);
    hk_commit *c = ow->c;
    free(ow);
    c->status = status;
    c->done(c, status);
}

/* Each prune step also clears reader slots of ended processes. */
static void before_apply(hk_store *s, const hk_op *op)
{
    if (op->type == HK_OP_PRUNE && hk_kv_reader_check(s->kv, NULL) != 0)
        hk_warn("store: stale readers could not be checked");
}

void hk_store_submit(hk_store *s, hk_commit *c)
{
    if (s->share != NULL && hk__port_forward(s, c))
        return;
    hk__store_submit_here(s, c);
}

void hk__store_submit_here(hk_store *s, hk_commit *c)
{
    if (s->pg != NULL) {
        hk_pg_store_submit(s->pg, c);
        return;
    }
    struct op_write *ow = hk_calloc(1, sizeof(*ow));
    ow->c = c;
    ow->w.apply = op_write_apply;
    ow->w.done = op_write_done;
    ow->w.encode = op_write_encode;
    /* A failing op undoes only its own writes and leaves the group's. */
    ow->w.flags = HK_WRITE_ISOLATED | ((c->flags & HK_COMMIT_LAZY) ? HK_WRITE_LAZY : 0);
    c->status = 0;
    c->next = NULL;
    before_apply(s, &c->op);
    hk_kv_submit(s->kv, &ow->w);
}

void hk_store_sync_lazy(hk_store *s)
{
    if (s->pg == NULL && s->kv != NULL)
        hk_kv_sync_lazy(s->kv);
}

static int apply_sync(hk_txn *txn, void *arg)
{
    return apply_op(txn, arg);
}

int hk_store_apply(hk_store *s, hk_op *op)
{
    PG_OR(s, hk__store_pg_apply(s, op));
    before_apply(s, op);
    return hk_kv_write_sync(s->kv, apply_sync, op);
}

void hk_op_free_out(hk_op *op)
{
    if (op->type == HK_OP_SIGNAL) {
        free(op->u.signal.webhooks);
        op->u.signal.webhooks = NULL;
        op->u.signal.nwebhooks = 0;
    }
}

/* ---- queries ------------------------------------------------------------------- */

/* Runs a query in a short read transaction. */
#define WITH_READ(s, expr)                                                                                             \
    do {                                                                                                               \
        hk_txn *txn_;                                                                                                  \
        int rc_ = hk_kv_read((s)->kv, &txn_);                                                                          \
        if (rc_ != 0)                                                                                                  \
            return rc_;                                                                                                \
        hk_txn *txn = txn_;                                                                                            \
        rc_ = (expr);                                                                                                  \
        hk_txn_end(txn_);                                                                                              \
        return rc_;                                                                                                    \
    } while (0)

int hk_store_webhook_get(hk_store *s, uint32_t id, hk_webhook *out)
{
    PG_OR(s, hk_pg_webhook_get(s->pg, id, out));
    WITH_READ(s, hk__webhook_read(txn, id, out));
}

int hk_store_webhook_state(hk_store *s, uint32_t id, enum hk_webhook_state *state, bool *locked)
{
    PG_OR(s, hk_pg_webhook_state(s->pg, id, state, locked));
    WITH_READ(s, hk__webhook_peek(txn, id, state, locked));
}

int hk_store_webhook_stats(hk_store *s, uint32_t id, hk_webhook_stats *out)
{
    PG_OR(s, hk_pg_webhook_stats(s->pg, id, out));
    WITH_READ(s, hk__stats_read(txn, id, out));
}

int hk_store_webhook_by_extension(hk_store *s, const char *ext, uint32_t *id)
{
    PG_OR(s, hk_pg_webhook_by_extension(s->pg, ext, id));
    WITH_READ(s, hk__webhook_by_extension(txn, ext, id));
}

static int extensions_each(hk_txn *txn, int (*fn)(const char *ext, uint32_t id, void *arg), void *arg)
{
    hk_cursor *c;
    hk_val k, v;
    int rc = hk_cursor_open(txn, HK_DB_EXTENSIONS, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_FIRST, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        if (v.len != 4)
            continue;
        char *ext = hk_strndup(k.data, k.len);
        ret = fn(ext, hk_rd32(v.data), arg);
        free(ext);
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk_store_extensions_each(hk_store *s, int (*fn)(const char *ext, uint32_t id, void *arg), void *arg)
{
    PG_OR(s, hk_pg_extensions_each(s->pg, fn, arg));
    WITH_READ(s, extensions_each(txn, fn, arg));
}

static int webhooks_each(hk_txn *txn, uint32_t from_id,
                         int (*fn)(const hk_webhook *w, const hk_webhook_stats *st, void *arg), void *arg)
{
    hk_cursor *c;
    uint8_t from[4];
    hk_be32(from, from_id);
    hk_val k = {from, 4}, v;
    int rc = hk_cursor_open(txn, HK_DB_WEBHOOKS, &c);
    if (rc != 0)
        return rc;
    int ret = 0;
    for (rc = hk_cursor_get(c, HK_SEEK, &k, &v); rc == 0 && ret == 0; rc = hk_cursor_get(c, HK_NEXT, &k, &v)) {
        hk_webhook w;
        hk_webhook_stats st;
        if (k.len != 4)
            continue;
        if (hk__webhook_decode(v.data, v.len, &w) != 0) {
            hk_warn("store: webhook %u cannot be read; leaving it out", hk_rd32(k.data));
            continue;
        }
        w.id = hk_rd32(k.data);
        if ((rc = hk__stats_read(txn, w.id, &st)) == 0)
            ret = fn(&w, &st, arg);
        hk_webhook_free(&w);
        if (rc != 0)
            break;
    }
    hk_cursor_close(c);
    if (ret != 0)
        return ret;
    return rc == HK_ENOTFOUND ? 0 : rc;
}

int hk_store_webhooks_each(hk_store *s, uint32_t from_id,
                           int (*fn)(const hk_webhook *w, const hk_webhook_stats *st, void *arg), void *arg)
{
    PG_OR(s, hk_pg_webhooks_each(s->pg, from_id, fn, arg));
    WITH_READ(s, webhooks_each(txn, from_id, fn, arg));
}

int hk_store_event_types_each(hk_store *s, int (*fn)(uint32_t id, const char *name, void *arg), void *arg)
{
    PG_OR(s, hk_pg_event_types_each(s->pg, fn, arg));
    WITH_READ(s, hk__event_types_each(txn, fn, arg));
}

int hk_store_event_type_id(hk_store *s, const char *name, uint32_t *id)
{
    PG_OR(s, hk_pg_event_type_id(s->pg, name, id));
    WITH_READ(s, hk__event_type_id(txn, name, id));
}

int hk_store_user_get(hk_store *s, uint32_t id, hk_user *out)
{
    PG_OR(s, hk_pg_user_get(s->pg, id, out));
    WITH_READ(s, hk__user_read(txn, id, out));
}

int hk_store_user_by_code(hk_store *s, const char *code, hk_user *out)
{
    PG_OR(s, hk_pg_user_by_code(s->pg, code, out));
    WITH_READ(s, hk__user_by_code(txn, code, out));
}

static int key_get(hk_txn *txn, const uint8_t hash[32], hk_key *key, hk_user *user)
{
    int rc = hk__key_read(txn, hash, key);
    return rc != 0 ? rc : hk__user_read(txn, key->user_id, user);
}

int hk_store_key_get(hk_store *s, const uint8_t hash[32], hk_key *key, hk_user *user)
{
    PG_OR(s, hk_pg_key_get(s->pg, hash, key, user));
    WITH_READ(s, key_get(txn, hash, key, user));
}

int hk_store_users_each(hk_store *s, int (*fn)(const hk_user *u, void *arg), void *arg)
{
    PG_OR(s, hk_pg_users_each(s->pg, fn, arg));
    WITH_READ(s, hk__users_each(txn, fn, arg));
}

int hk_store_keys_each(hk_store *s, uint32_t user_id, int (*fn)(const hk_key *k, void *arg), void *arg)
{
    PG_OR(s, hk_pg_keys_each(s->pg, user_id, fn, arg));
    WITH_READ(s, hk__keys_each(txn, user_id, fn, arg));
}

static int user_count(hk_txn *txn, size_t *n)
{
    *n = hk_count(txn, HK_DB_USERS);
    return 0;
}

int hk_store_user_count(hk_store *s, size_t *n)
{
    PG_OR(s, hk_pg_user_count(s->pg, n));
    WITH_READ(s, user_count(txn, n));
}

int hk_store_node_get(hk_store *s, uint32_t id, hk_node *out)
{
    PG_OR(s, hk_pg_node_get(s->pg, id, out));
    WITH_READ(s, hk__node_read(txn, id, out));
}

int hk_store_account_get(hk_store *s, uint32_t id, hk_account *out)
{
    PG_OR(s, hk_pg_account_get(s->pg, id, out));
    WITH_READ(s, hk__account_read(txn, id, out));
}

int hk_store_nodes_each(hk_store *s, int (*fn)(const hk_node *n, void *arg), void *arg)
{
    PG_OR(s, hk_pg_nodes_each(s->pg, fn, arg));
    WITH_READ(s, hk__nodes_each(txn, fn, arg));
}

int hk_store_accounts_each(hk_store *s, int (*fn)(const hk_account *a, void *arg), void *arg)
{
    PG_OR(s, hk_pg_accounts_each(s->pg, fn, arg));
    WITH_READ(s, hk__accounts_each(txn, fn, arg));
}

int hk_store_node_within(hk_store *s, uint32_t node, uint32_t top, bool *within)
{
    PG_OR(s, hk_pg_node_within(s->pg, node, top, within));
    WITH_READ(s, hk__node_within(txn, node, top, within));
}

int hk_store_event_get(hk_store *s, uint64_t id, hk_event *out)
{
    PG_OR(s, hk__store_pg_event_get(s, id, out));
    WITH_READ(s, hk__event_read(txn, id, out));
}

int hk_store_scan_due(hk_store *s, hk_due_scan *scan)
{
    PG_OR(s, UV_ENOTSUP);
    WITH_READ(s, hk__queue_scan_due(txn, scan));
}

int hk_store_pending(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t *pending, uint64_t *due)
{
    PG_OR(s, hk__store_pg_pending(s, webhook_id, now_ms, pending, due));
    hk_queue_summary sum;
    int rc = hk_store_pending_max(s, webhook_id, now_ms, 0, &sum);
    *pending = sum.pending;
    *due = sum.due;
    return rc;
}

int hk_store_pending_max(hk_store *s, uint32_t webhook_id, uint64_t now_ms, uint64_t max, hk_queue_summary *out)
{
    if (s->pg != NULL) {
        memset(out, 0, sizeof(*out));
        return hk__store_pg_pending(s, webhook_id, now_ms, &out->pending, &out->due);
    }
    WITH_READ(s, hk__queue_pending(txn, webhook_id, now_ms, max, out));
}

int hk_store_queue_summary(hk_store *s, uint64_t now_ms, uint64_t max, hk_queue_summary *out)
{
    PG_OR(s, hk__store_pg_queue_summary(s, now_ms, out));
    WITH_READ(s, hk__queue_summary(txn, now_ms, max, out));
}

int hk_store_webhook_states(hk_store *s, uint64_t counts[3])
{
    PG_OR(s, hk_pg_webhook_states(s->pg, counts));
    WITH_READ(s, hk__webhook_count_states(txn, counts));
}

int hk_store_attempts_each(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first,
                           int (*fn)(const hk_attempt *a, void *arg), void *arg)
{
    PG_OR(s, hk__store_pg_attempts_each(s, webhook_id, from_id, newest_first, false, fn, arg));
    WITH_READ(s, hk__log_each(txn, webhook_id, from_id, newest_first, false, fn, arg));
}

int hk_store_attempts_each_brief(hk_store *s, uint32_t webhook_id, uint64_t from_id, bool newest_first,
                                 int (*fn)(const hk_attempt *a, void *arg), void *arg)
{
    PG_OR(s, hk__store_pg_attempts_each(s, webhook_id, from_id, newest_first, true, fn, arg));
    WITH_READ(s, hk__log_each(txn, webhook_id, from_id, newest_first, true, fn, arg));
}

int hk_store_attempt_get(hk_store *s, uint32_t webhook_id, uint64_t log_id, hk_attempt *out)
{
    PG_OR(s, hk__store_pg_attempt_get(s, webhook_id, log_id, out));
    WITH_READ(s, hk__log_read(txn, webhook_id, log_id, out));
}
