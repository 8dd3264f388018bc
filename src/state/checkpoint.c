/*
 * checkpoint.c: the checkpoint file (format in checkpoint.h), the copy of
 * LMDB's meta page it holds, and putting that copy back after a crash.
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "le.h"
#include "log.h"

#define SLOT 512
#define MAGIC "HKCKPT01"
#define VERSION 1

/* LMDB 0.9.x meta page, 64-bit: MDB_page header (pgno u64, pad u16, flags
 * u16, lower/upper u16 each), then MDB_meta (magic u32, version u32,
 * address, mapsize, two MDB_db of 48 bytes, last page, txnid). Native
 * byte order, like the file. */
#define PG_FLAGS 10
#define P_META 0x08
#define M_MAGIC 16
#define M_VERSION 20
#define M_PSIZE 40 /* the free DB's md_pad holds the page size */
#define M_TXNID 144
#define LMDB_MAGIC 0xBEEFC0DEu
#define LMDB_DATA_VERSION 1

_Static_assert(sizeof(size_t) == 8, "the meta page offsets are those of a 64-bit LMDB");

static enum hk__crash_point crash_at;
static bool no_background;

void hk__ckpt_test_background(bool on)
{
    no_background = !on;
}

bool hk__ckpt_background(void)
{
    return !no_background;
}

void hk__ckpt_test_crash_at(enum hk__crash_point p)
{
    crash_at = p;
}

void hk__ckpt_crash_point(enum hk__crash_point p)
{
    if (crash_at != HK__CRASH_NONE && crash_at == p)
        _exit(HK__CRASH_STATUS);
}

/* ---- the file ------------------------------------------------------------------------- */

static void slot_build(uint8_t s[SLOT], const hk__ckpt *c, uint64_t seq)
{
    memset(s, 0, SLOT);
    memcpy(s, MAGIC, 8);
    hk_le_put32(s + 12, VERSION);
    hk_le_put64(s + 16, seq);
    hk_le_put64(s + 24, c->txnid);
    hk_le_put64(s + 32, c->lsn);
    hk_le_put32(s + 40, c->state);
    hk_le_put32(s + 44, c->psize);
    hk_le_put32(s + 48, HK__CKPT_META);
    memcpy(s + 64, c->meta, HK__CKPT_META);
    hk_le_put32(s + 8, hk_crc32c(0, s, SLOT));
}

/* The slot's save counter (0: not a good slot) and its checkpoint. */
static uint64_t slot_parse(const uint8_t s[SLOT], hk__ckpt *c)
{
    uint8_t z[SLOT];
    memcpy(z, s, SLOT);
    hk_le_put32(z + 8, 0);
    if (memcmp(s, MAGIC, 8) != 0 || hk_le_get32(s + 12) != VERSION || hk_le_get32(s + 8) != hk_crc32c(0, z, SLOT) ||
        hk_le_get32(s + 48) != HK__CKPT_META)
        return 0;
    c->txnid = hk_le_get64(s + 24);
    c->lsn = hk_le_get64(s + 32);
    c->state = hk_le_get32(s + 40);
    c->psize = hk_le_get32(s + 44);
    memcpy(c->meta, s + 64, HK__CKPT_META);
    return hk_le_get64(s + 16);
}

/* The newest good slot of fd: its index (-1: none), counter and checkpoint. */
static int best_slot(int fd, uint64_t *seq, hk__ckpt *c)
{
    uint8_t s[SLOT];
    int best = -1;
    *seq = 0;
    for (int i = 0; i < 2; i++) {
        hk__ckpt t;
        if (pread(fd, s, SLOT, (off_t)i * SLOT) != SLOT)
            continue;
        uint64_t q = slot_parse(s, &t);
        if (q != 0 && q > *seq) {
            *seq = q;
            *c = t;
            best = i;
        }
    }
    return best;
}

int hk__ckpt_load(const char *path, hk__ckpt *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return HK_ENOTFOUND;
        hk_error("store: cannot read %s: %s", path, strerror(errno));
        return HK_ESTORE;
    }
    uint64_t seq;
    int best = best_slot(fd, &seq, out);
    close(fd);
    return best < 0 ? HK_ENOTFOUND : 0;
}

static int sync_parent(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    return e;
}

int hk__ckpt_save(const char *path, const hk__ckpt *c, bool keep_state)
{
    struct stat st;
    bool fresh = stat(path, &st) != 0;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT && keep_state)
        return 0; /* the log was removed meanwhile (a server started with sync = lmdb): nothing to keep up */
    if (fd < 0) {
        hk_error("store: cannot open %s: %s", path, strerror(errno));
        return errno == ENOSPC || errno == EDQUOT ? HK_EFULL : HK_ESTORE;
    }
    int e = 0;
    if (flock(fd, LOCK_EX) != 0)
        e = errno;
    uint64_t seq = 0;
    hk__ckpt cur, rec = *c;
    int best = e == 0 ? best_slot(fd, &seq, &cur) : -1;
    if (best >= 0) {
        if (cur.txnid > c->txnid) {
            /* A newer snapshot was saved meanwhile (by a CLI command's commit): it stays. */
            rec = cur;
            rec.state = c->state;
        }
        if (keep_state)
            rec.state = cur.state;
    }
    uint8_t s[SLOT];
    slot_build(s, &rec, seq + 1);
    if (e == 0) {
        /* Written in place of the older slot, so that a torn write leaves the newer one. */
        ssize_t w = pwrite(fd, s, SLOT, (off_t)(best == 0 ? SLOT : 0));
        if (w != SLOT)
            e = w < 0 ? errno : EIO;
    }
    if (e == 0 && fdatasync(fd) != 0)
        e = errno;
    close(fd); /* releases the flock */
    if (e == 0 && fresh)
        e = sync_parent(path);
    if (e != 0) {
        hk_error("store: cannot save the checkpoint in %s: %s", path, strerror(e));
        return e == ENOSPC || e == EDQUOT ? HK_EFULL : HK_ESTORE;
    }
    return 0;
}

/* ---- LMDB's meta pages ------------------------------------------------------------------ */

static bool meta_valid(const uint8_t *p)
{
    uint16_t flags;
    uint32_t magic, version;
    memcpy(&flags, p + PG_FLAGS, 2);
    memcpy(&magic, p + M_MAGIC, 4);
    memcpy(&version, p + M_VERSION, 4);
    return (flags & P_META) != 0 && magic == LMDB_MAGIC && version == LMDB_DATA_VERSION;
}

static uint64_t meta_txnid(const uint8_t *p)
{
    uint64_t t;
    memcpy(&t, p + M_TXNID, 8);
    return t;
}

int hk__ckpt_meta(int data_fd, uint32_t psize, uint64_t txnid, hk__ckpt *c)
{
    uint8_t p[HK__CKPT_META];
    for (int i = 0; i < 2; i++) {
        if (pread(data_fd, p, sizeof(p), (off_t)i * psize) != (ssize_t)sizeof(p))
            return HK_ESTORE;
        if (meta_valid(p) && meta_txnid(p) == txnid) {
            memcpy(c->meta, p, sizeof(p));
            c->psize = psize;
            return 0;
        }
    }
    return HK_ENOTFOUND;
}

/* True when another process holds LMDB's lock file (it has the environment open). */
static bool env_in_use(const char *data_dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/lock.mdb", data_dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return false; /* no lock file: nobody has it open */
    /* LMDB holds a shared fcntl lock on byte 0 of its lock file in every
     * process that has the environment open. An open-file-description lock
     * tests it without touching this process's own fcntl locks. */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
    bool busy = fcntl(fd, F_OFD_SETLK, &fl) != 0;
    close(fd);
    return busy;
}

int hk__ckpt_restore(const char *data_dir, const hk__ckpt *c, bool *restored)
{
    char path[4096];
    uint8_t m[2][HK__CKPT_META] = {{0}};
    *restored = false;
    snprintf(path, sizeof(path), "%s/data.mdb", data_dir);
    if (!meta_valid(c->meta) || meta_txnid(c->meta) != c->txnid || c->psize < HK__CKPT_META) {
        hk_error("store: the checkpoint in %s/wal is not an LMDB snapshot", data_dir);
        return HK_ESTORE;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        hk_error("store: cannot open %s to restore its checkpoint: %s", path, strerror(errno));
        return HK_ESTORE;
    }
    int rc = 0;
    uint64_t latest = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (pread(fd, m[i], HK__CKPT_META, (off_t)i * c->psize) != HK__CKPT_META || !meta_valid(m[i]))
            continue;
        if (meta_txnid(m[i]) > latest)
            latest = meta_txnid(m[i]);
    }
    uint32_t psize;
    memcpy(&psize, m[0] + M_PSIZE, 4);
    if (latest == 0 || psize != c->psize) {
        hk_error("store: %s does not match its checkpoint (page size %u, expected %u)", path, psize, c->psize);
        rc = HK_ESTORE;
    } else if (latest < c->txnid) {
        hk_error("store: %s (transaction %" PRIu64 ") is older than its checkpoint (transaction %" PRIu64
                 "); was it replaced? Remove %s/wal to use it as it is",
                 path, latest, c->txnid, data_dir);
        rc = HK_ESTORE;
    } else if (latest > c->txnid && env_in_use(data_dir)) {
        hk_warn("store: another process has %s open, so its latest commits are still in memory; keeping them", path);
    } else if (latest > c->txnid) {
        uint8_t p[HK__CKPT_META];
        int e = 0;
        for (int i = 0; i < 2 && e == 0; i++) {
            uint64_t pgno = (uint64_t)i;
            memcpy(p, c->meta, sizeof(p));
            memcpy(p, &pgno, 8);
            if (pwrite(fd, p, sizeof(p), (off_t)i * c->psize) != (ssize_t)sizeof(p))
                e = errno ? errno : EIO;
        }
        if (e == 0 && fdatasync(fd) != 0)
            e = errno;
        if (e != 0) {
            hk_error("store: cannot restore the checkpoint of %s: %s", path, strerror(e));
            rc = HK_ESTORE;
        } else {
            hk_warn("store: %s returned to its checkpoint (transaction %" PRIu64 ", log record %" PRIu64
                    "): the %" PRIu64 " commit%s after it are rebuilt from the log",
                    path, c->txnid, c->lsn, latest - c->txnid, latest - c->txnid == 1 ? "" : "s");
            *restored = true;
        }
    }
    close(fd);
    return rc;
}
