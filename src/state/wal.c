/*
 * wal.c: the segmented write-ahead log (format and threads in wal.h):
 * finding its end and replaying it at open, appending groups, taking a
 * failed group back, recycling and preparing segments.
 */
#include "wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "crc32c.h"
#include "le.h"
#include "log.h"

#define HDR 64     /* segment header */
#define REC_HDR 16 /* length, CRC, LSN */
#define MAGIC "HKWALSG1"
#define VERSION 1
#define MAX_SPARES 2
#define ZERO_CHUNK (1u << 20)
#define SPARE_TMP "spare.tmp"
/* A segment made when a full-size one does not fit on the disk is this multiple. */
#define SMALL_ROUND (64u << 10)

struct seg {
    uint64_t seq;
    uint64_t first; /* LSN of its first record; 0: a spare (no header of its own) */
};

struct hk__wal {
    char *dir;
    int dir_fd;
    uint64_t seg_size;
    /* The segment files, sorted by number; shared with checkpoints. */
    uv_mutex_t mu;
    struct seg *segs;
    size_t nsegs, cap;
    uint64_t active; /* the segment being appended to (0: none yet); written under mu */
    /* The commit thread's. */
    int fd;            /* the active segment */
    uint64_t off;      /* where the next group goes */
    uint64_t size;     /* the active segment's size */
    uint64_t next_lsn; /* LSN of the next record */
    uint8_t *buf;      /* the group being built */
    size_t len, bufcap;
    uint64_t group_first; /* LSN of the group's first record */
    bool can_undo;        /* the last flush can be taken back */
    uint64_t undo_off, undo_len, undo_first;
    bool broken;    /* a failed group could not be erased: no more appends */
    bool unsynced;  /* the active segment holds groups appended without fdatasync (lazy) */
    uint64_t syncs; /* fdatasyncs that made groups durable */
    uint64_t bytes;
};

static int io_err(int e)
{
    return e == ENOSPC || e == EDQUOT ? HK_EFULL : HK_ESTORE;
}

static void seg_path(const hk__wal *w, uint64_t seq, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%08" PRIu64 ".log", w->dir, seq);
}

static int write_all(int fd, const void *data, size_t len, uint64_t off)
{
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t r = pwrite(fd, p, len, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? errno : EIO;
        p += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int zero_range(int fd, uint64_t off, uint64_t len)
{
    static const uint8_t zeros[ZERO_CHUNK];
    while (len > 0) {
        size_t n = len < ZERO_CHUNK ? (size_t)len : ZERO_CHUNK;
        int e = write_all(fd, zeros, n, off);
        if (e != 0)
            return e;
        off += n;
        len -= n;
    }
    return 0;
}

static void header_build(uint8_t h[HDR], uint64_t seq, uint64_t first)
{
    memset(h, 0, HDR);
    memcpy(h, MAGIC, 8);
    hk_le_put32(h + 8, VERSION);
    hk_le_put64(h + 16, seq);
    hk_le_put64(h + 24, first);
    hk_le_put32(h + 12, hk_crc32c(0, h, HDR));
}

/* The LSN a segment's header says it starts at, or 0 when it is not the header of segment seq. */
static uint64_t header_first(const uint8_t h[HDR], uint64_t seq)
{
    uint8_t c[HDR];
    memcpy(c, h, HDR);
    hk_le_put32(c + 12, 0);
    if (memcmp(h, MAGIC, 8) != 0 || hk_le_get32(h + 8) != VERSION || hk_le_get32(h + 12) != hk_crc32c(0, c, HDR) ||
        hk_le_get64(h + 16) != seq)
        return 0;
    return hk_le_get64(h + 24);
}

static uint32_t record_crc(const uint8_t *hdr, const uint8_t *payload, size_t len)
{
    uint32_t c = hk_crc32c(0, hdr + 8, 8); /* the LSN */
    c = hk_crc32c(c, hdr, 4);              /* the length */
    return hk_crc32c(c, payload, len);
}

/* ---- the segment list (under mu once the log is open) ----------------------------------- */

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void segs_add(hk__wal *w, uint64_t seq, uint64_t first)
{
    if (w->nsegs == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->segs = hk_realloc(w->segs, w->cap * sizeof(*w->segs));
    }
    w->segs[w->nsegs++] = (struct seg){seq, first};
    qsort(w->segs, w->nsegs, sizeof(*w->segs), seg_cmp);
}

static struct seg *segs_find(hk__wal *w, uint64_t seq)
{
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].seq == seq)
            return &w->segs[i];
    return NULL;
}

/* The highest segment number in use (entries marked UINT64_MAX are being dropped). */
static uint64_t segs_max(const hk__wal *w)
{
    uint64_t m = 0;
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].seq != UINT64_MAX && w->segs[i].seq > m)
            m = w->segs[i].seq;
    return m;
}

/* Reads the directory: segment files by number, each with the first LSN its header gives. */
static int segs_load(hk__wal *w)
{
    DIR *d = opendir(w->dir);
    if (d == NULL) {
        hk_error("log: cannot read %s: %s", w->dir, strerror(errno));
        return HK_ESTORE;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        size_t digits = strspn(n, "0123456789");
        if (strcmp(n, SPARE_TMP) == 0) {
            unlinkat(w->dir_fd, n, 0); /* a spare whose preparation was cut short */
            continue;
        }
        if (digits == 0 || digits > 19 || strcmp(n + digits, ".log") != 0)
            continue;
        uint64_t seq = strtoull(n, NULL, 10);
        uint8_t h[HDR];
        uint64_t first = 0;
        int fd = openat(w->dir_fd, n, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && pread(fd, h, HDR, 0) == HDR)
            first = header_first(h, seq);
        if (fd >= 0)
            close(fd);
        segs_add(w, seq, first);
    }
    closedir(d);
    return 0;
}

/* Makes segment seq a spare: its header no longer names it. */
static int invalidate(hk__wal *w, struct seg *sg)
{
    char path[4096];
    seg_path(w, sg->seq, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return HK_ESTORE;
    int e = zero_range(fd, 0, HDR);
    if (e == 0 && fdatasync(fd) != 0)
        e = errno;
    close(fd);
    if (e != 0)
        return HK_ESTORE;
    sg->first = 0;
    return 0;
}

/* ---- opening: the scan ---------------------------------------------------------------- */

struct scan {
    hk__wal *w;
    uint64_t applied;
    hk__wal_replay_fn replay;
    void *arg;
    hk__wal_info *info;
    uint64_t expected; /* LSN of the next record */
};

/*
 * Reads the records of segment i from its header on. *end receives the
 * offset after the last good record and the reason the scan stopped;
 * *size the file's size. A replay error is returned.
 */
static int scan_segment(struct scan *sc, size_t i, int fd, uint64_t *end, uint64_t *size, bool *nonzero_tail)
{
    struct stat st;
    *end = HDR;
    *nonzero_tail = false;
    if (fstat(fd, &st) != 0)
        return HK_ESTORE;
    *size = (uint64_t)st.st_size;
    if (*size < HDR) {
        sc->info->reason = "short record";
        *end = *size;
        return 0;
    }
    uint8_t *m = mmap(NULL, (size_t)*size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        hk_error("log: cannot map segment %" PRIu64 ": %s", sc->w->segs[i].seq, strerror(errno));
        return HK_ESTORE;
    }
    uint64_t off = HDR;
    int rc = 0;
    sc->info->reason = "end";
    while (off + REC_HDR <= *size) {
        const uint8_t *h = m + off;
        uint32_t len = hk_le_get32(h);
        uint64_t lsn = hk_le_get64(h + 8);
        if (len == 0) {
            sc->info->reason = "zero length";
            break;
        }
        if (len > *size - off - REC_HDR) {
            sc->info->reason = "short record";
            break;
        }
        if (hk_le_get32(h + 4) != record_crc(h, h + REC_HDR, len)) {
            sc->info->reason = "bad CRC";
            break;
        }
        if (lsn != sc->expected) {
            sc->info->reason = "LSN discontinuity";
            break;
        }
        if (lsn > sc->applied) {
            if ((rc = sc->replay(lsn, h + REC_HDR, len, sc->arg)) != 0)
                break;
            if (sc->info->replayed++ == 0)
                sc->info->first = lsn;
        }
        sc->expected++;
        off += REC_HDR + len;
    }
    *end = off;
    static const uint8_t zeros[4096];
    for (uint64_t p = off; p < *size && !*nonzero_tail; p += sizeof(zeros)) {
        uint64_t n = *size - p < sizeof(zeros) ? *size - p : sizeof(zeros);
        *nonzero_tail = memcmp(m + p, zeros, (size_t)n) != 0;
    }
    munmap(m, (size_t)*size);
    return rc;
}

/* Zeroes segment seq, when it exists and holds anything; *cleared receives the bytes zeroed. */
static int clear_segment(hk__wal *w, uint64_t seq, uint64_t *cleared)
{
    char path[4096];
    struct stat st;
    *cleared = 0;
    seg_path(w, seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : HK_ESTORE;
    int e = fstat(fd, &st) != 0 ? errno : 0;
    uint64_t size = e == 0 ? (uint64_t)st.st_size : 0;
    uint8_t *m = size > 0 ? mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0) : NULL;
    bool dirty = false;
    if (m == MAP_FAILED) {
        e = errno;
    } else if (m != NULL) {
        static const uint8_t zeros[4096];
        for (uint64_t p = 0; p < size && !dirty; p += sizeof(zeros))
            dirty = memcmp(m + p, zeros, (size_t)(size - p < sizeof(zeros) ? size - p : sizeof(zeros))) != 0;
        munmap(m, (size_t)size);
    }
    if (e == 0 && dirty) {
        e = zero_range(fd, 0, size);
        if (e == 0 && fdatasync(fd) != 0)
            e = errno;
        *cleared = size;
    }
    close(fd);
    if (e != 0) {
        hk_error("log: cannot clear segment %" PRIu64 " in %s: %s", seq, w->dir, strerror(e));
        return HK_ESTORE;
    }
    struct seg *sg = segs_find(w, seq);
    if (sg != NULL)
        sg->first = 0;
    return 0;
}

/* A log with nothing to replay that continues at next: older segments become spares. */
static int start_fresh(hk__wal *w, uint64_t next)
{
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].first != 0 && invalidate(w, &w->segs[i]) != 0)
            return HK_ESTORE;
    w->next_lsn = next;
    return 0;
}

static int scan(hk__wal *w, struct scan *sc, bool crashed)
{
    size_t start = SIZE_MAX;
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].first != 0 && w->segs[i].first <= sc->applied + 1)
            start = i;
    if (start == SIZE_MAX) {
        for (size_t i = 0; i < w->nsegs; i++)
            if (w->segs[i].first != 0) {
                hk_error("log: %s starts at record %" PRIu64 " but the store needs every record after %" PRIu64
                         "; the records in between are missing",
                         w->dir, w->segs[i].first, sc->applied);
                return HK_ESTORE;
            }
        sc->info->last = sc->applied;
        sc->info->reason = "end";
        return start_fresh(w, sc->applied + 1);
    }
    sc->expected = w->segs[start].first;
    size_t cur = start;
    uint64_t end = HDR, size = 0;
    bool dirty = false;
    int fd = -1;
    for (;;) {
        char path[4096];
        seg_path(w, w->segs[cur].seq, path, sizeof(path));
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0) {
            hk_error("log: cannot open %s: %s", path, strerror(errno));
            return HK_ESTORE;
        }
        int rc = scan_segment(sc, cur, fd, &end, &size, &dirty);
        if (rc != 0) {
            close(fd);
            return rc;
        }
        /* The writer moves to the next segment only when a group does not
         * fit, so a next segment that starts at the expected LSN continues
         * the log whatever this one's tail holds. */
        if (cur + 1 < w->nsegs && w->segs[cur + 1].seq == w->segs[cur].seq + 1 &&
            w->segs[cur + 1].first == sc->expected) {
            close(fd);
            cur++;
            continue;
        }
        break;
    }
    sc->info->last = sc->expected - 1;
    for (size_t j = cur + 1; j < w->nsegs; j++)
        if (w->segs[j].first != 0 && invalidate(w, &w->segs[j]) != 0) {
            close(fd);
            return HK_ESTORE;
        }
    if (sc->info->last < sc->applied) {
        /* The store holds records the log does not: nothing to replay, and
         * appending after the log's end would leave a gap. */
        close(fd);
        hk_warn("log: %s ends at record %" PRIu64 " but the store holds records up to %" PRIu64 "; starting a new log",
                w->dir, sc->info->last, sc->applied);
        sc->info->last = sc->applied;
        return start_fresh(w, sc->applied + 1);
    }
    if (crashed && dirty) {
        /* A torn group may have left records further on that a shorter
         * group written here later would make readable again. */
        int e = zero_range(fd, end, size - end);
        if (e == 0 && fdatasync(fd) != 0)
            e = errno;
        if (e != 0) {
            hk_error("log: cannot clear the torn tail of segment %" PRIu64 ": %s", w->segs[cur].seq, strerror(e));
            close(fd);
            return HK_ESTORE;
        }
        sc->info->cleared = size - end;
    }
    /* The same in the next segment, where a group that did not fit here
     * went, with a header that may not have reached the disk. */
    uint64_t cleared = 0;
    if (crashed && clear_segment(w, w->segs[cur].seq + 1, &cleared) != 0) {
        close(fd);
        return HK_ESTORE;
    }
    sc->info->cleared += cleared;
    w->fd = fd;
    w->active = w->segs[cur].seq;
    sc->info->segment = w->active;
    sc->info->offset = end;
    w->off = end;
    w->size = size;
    w->next_lsn = sc->expected;
    return 0;
}

int hk__wal_open(hk__wal **out, const char *dir, uint64_t seg_size, uint64_t applied, bool crashed,
                 hk__wal_replay_fn replay, void *arg, hk__wal_info *info)
{
    hk__wal_info dummy;
    if (info == NULL)
        info = &dummy;
    memset(info, 0, sizeof(*info));
    hk__wal *w = hk_calloc(1, sizeof(*w));
    w->dir = hk_strdup(dir);
    w->seg_size = seg_size ? seg_size : HK__WAL_SEGMENT_SIZE;
    w->fd = -1;
    w->dir_fd = -1;
    uv_mutex_init(&w->mu);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        hk_error("log: cannot create %s: %s", dir, strerror(errno));
        hk__wal_close(w);
        return HK_ESTORE;
    }
    w->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dir_fd < 0) {
        hk_error("log: cannot open %s: %s", dir, strerror(errno));
        hk__wal_close(w);
        return HK_ESTORE;
    }
    int rc = segs_load(w);
    struct scan sc = {w, applied, replay, arg, info, 0};
    if (rc == 0)
        rc = scan(w, &sc, crashed);
    if (rc != 0) {
        hk__wal_close(w);
        return rc;
    }
    w->group_first = w->next_lsn;
    *out = w;
    return 0;
}

void hk__wal_close(hk__wal *w)
{
    if (w == NULL)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->dir_fd >= 0)
        close(w->dir_fd);
    uv_mutex_destroy(&w->mu);
    free(w->segs);
    free(w->buf);
    free(w->dir);
    free(w);
}

/* ---- appending (the commit thread) ---------------------------------------------------- */

uint64_t hk__wal_add(hk__wal *w, const uint8_t *rec, size_t len)
{
    if (w->len + REC_HDR + len > w->bufcap) {
        w->bufcap = (w->len + REC_HDR + len) * 2;
        w->buf = hk_realloc(w->buf, w->bufcap);
    }
    if (w->len == 0)
        w->group_first = w->next_lsn;
    uint8_t *h = w->buf + w->len;
    uint64_t lsn = w->next_lsn++;
    hk_le_put32(h, (uint32_t)len);
    hk_le_put64(h + 8, lsn);
    memcpy(h + REC_HDR, rec, len);
    hk_le_put32(h + 4, record_crc(h, h + REC_HDR, len));
    w->len += REC_HDR + len;
    return lsn;
}

/*
 * Creates segment seq with size bytes allocated, or when the disk has no
 * room for that, with just enough for need bytes of records (under mu).
 */
static int create_segment(hk__wal *w, uint64_t seq, uint64_t size, uint64_t need, int *fd)
{
    char path[4096];
    seg_path(w, seq, path, sizeof(path));
    *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return errno;
    int e = posix_fallocate(*fd, 0, (off_t)size);
    uint64_t small = (HDR + need + SMALL_ROUND - 1) / SMALL_ROUND * SMALL_ROUND;
    if ((e == ENOSPC || e == EDQUOT) && small < size)
        e = posix_fallocate(*fd, 0, (off_t)small);
    if (e != 0) {
        close(*fd);
        unlink(path);
        return e;
    }
    segs_add(w, seq, 0);
    return 0;
}

/*
 * Moves appends to the next segment, at least need bytes after its
 * header: a spare renamed to its number, or a new file. The directory is
 * synced so that the name survives with the records about to go in.
 */
static int next_segment(hk__wal *w, uint64_t need)
{
    uint64_t size = w->seg_size;
    if (HDR + need > size)
        size = HDR + need;
    /* A reader goes on into the next segment only after the last record of
     * this one: lazy groups left unsynced here must reach the disk before
     * anything synced there does. */
    int se = hk__wal_sync(w);
    if (se != 0)
        return se;
    uv_mutex_lock(&w->mu);
    uint64_t seq = w->active != 0 ? w->active + 1 : segs_max(w) + 1;
    int e = 0, fd = -1;
    struct seg *sg = segs_find(w, seq);
    if (sg == NULL) {
        for (size_t i = 0; i < w->nsegs && sg == NULL; i++)
            if (w->segs[i].first == 0 && w->segs[i].seq != w->active)
                sg = &w->segs[i];
        if (sg != NULL) {
            char from[4096], to[4096];
            seg_path(w, sg->seq, from, sizeof(from));
            seg_path(w, seq, to, sizeof(to));
            if (rename(from, to) != 0) {
                e = errno;
            } else {
                sg->seq = seq;
                qsort(w->segs, w->nsegs, sizeof(*w->segs), seg_cmp);
                sg = segs_find(w, seq);
            }
        }
    }
    if (e == 0 && sg != NULL) {
        char path[4096];
        seg_path(w, seq, path, sizeof(path));
        fd = open(path, O_RDWR | O_CLOEXEC);
        e = fd < 0 ? errno : 0;
    } else if (e == 0) {
        e = create_segment(w, seq, size, need, &fd);
    }
    uv_mutex_unlock(&w->mu);
    struct stat st;
    if (e == 0 && fstat(fd, &st) != 0)
        e = errno;
    size = e == 0 ? (uint64_t)st.st_size : 0;
    if (e == 0 && size < HDR + need) {
        size = HDR + need;
        e = posix_fallocate(fd, 0, (off_t)size);
    }
    uint8_t h[HDR];
    header_build(h, seq, w->group_first);
    if (e == 0)
        e = write_all(fd, h, HDR, 0);
    if (e == 0 && fsync(w->dir_fd) != 0)
        e = errno;
    if (e != 0) {
        hk_error("log: cannot start segment %" PRIu64 " in %s: %s", seq, w->dir, strerror(e));
        if (fd >= 0)
            close(fd);
        return io_err(e);
    }
    uv_mutex_lock(&w->mu);
    segs_find(w, seq)->first = w->group_first;
    w->active = seq;
    uv_mutex_unlock(&w->mu);
    if (w->fd >= 0)
        close(w->fd);
    w->fd = fd;
    w->off = HDR;
    w->size = size;
    return 0;
}

/* Zeroes what a failed or taken-back group may have left at [off, off + len), durably. */
static int erase(hk__wal *w, uint64_t off, uint64_t len)
{
    int e = zero_range(w->fd, off, len);
    if (e == 0 && fdatasync(w->fd) != 0)
        e = errno;
    if (e != 0) {
        hk_error("log: cannot erase a failed group in %s: %s; the log takes no more writes until a restart", w->dir,
                 strerror(e));
        w->broken = true;
        return HK_ESTORE;
    }
    return 0;
}

/*
 * A failed fdatasync while lazy groups waited for one: the kernel may have
 * given up on their pages and marked them written, so a later sync that
 * succeeds would not bring them back, and a reader stopping at them would
 * never reach the synced groups after them. So the log takes nothing more
 * until a restart, as when an erase fails.
 */
static void lazy_sync_failed(hk__wal *w)
{
    hk_error("log: a sync failed while %s held unsynced groups; the log takes no more writes until a restart", w->dir);
    w->broken = true;
}

/* TEST ONLY: how many of the next record syncs fail with EIO (hk__wal_test_fail_syncs). */
static int fail_syncs;

void hk__wal_test_fail_syncs(int n)
{
    fail_syncs = n;
}

/* fdatasync of the records appended to fd. */
static int sync_records(int fd)
{
    if (fail_syncs > 0) {
        fail_syncs--;
        errno = EIO;
        return -1;
    }
    return fdatasync(fd);
}

int hk__wal_sync(hk__wal *w)
{
    if (w->broken)
        return HK_ESTORE;
    if (!w->unsynced || w->fd < 0)
        return 0;
    if (sync_records(w->fd) != 0) {
        int e = errno;
        hk_error("log: cannot sync segment %" PRIu64 " in %s: %s", w->active, w->dir, strerror(e));
        lazy_sync_failed(w);
        return io_err(e);
    }
    w->unsynced = false;
    w->syncs++;
    return 0;
}

bool hk__wal_unsynced(const hk__wal *w)
{
    return w->unsynced;
}

uint64_t hk__wal_syncs(const hk__wal *w)
{
    return w->syncs;
}

int hk__wal_flush(hk__wal *w, uint64_t *last, bool sync)
{
    if (w->broken) {
        w->len = 0;
        w->next_lsn = w->group_first;
        return HK_ESTORE;
    }
    if (w->len == 0)
        return 0;
    int rc = 0;
    if (w->fd < 0 || w->off + w->len > w->size)
        rc = next_segment(w, w->len);
    if (rc == 0) {
        int e = write_all(w->fd, w->buf, w->len, w->off);
        bool sync_failed = false;
        if (e == 0 && sync && sync_records(w->fd) != 0) {
            e = errno;
            sync_failed = true;
        }
        if (e != 0) {
            hk_error("log: cannot append to segment %" PRIu64 " in %s: %s", w->active, w->dir, strerror(e));
            rc = io_err(e);
            (void)erase(w, w->off, w->len);
            if (sync_failed && w->unsynced)
                lazy_sync_failed(w);
        }
    }
    if (rc != 0) {
        w->len = 0;
        w->next_lsn = w->group_first;
        w->can_undo = false;
        return rc;
    }
    /* A synced flush also makes every lazy group before it durable (one file). */
    w->unsynced = !sync;
    w->syncs += sync;
    w->can_undo = true;
    w->undo_off = w->off;
    w->undo_len = w->len;
    w->undo_first = w->group_first;
    w->off += w->len;
    __atomic_add_fetch(&w->bytes, w->len, __ATOMIC_RELAXED);
    w->len = 0;
    *last = w->next_lsn - 1;
    w->group_first = w->next_lsn;
    return 0;
}

int hk__wal_undo(hk__wal *w)
{
    if (!w->can_undo)
        return HK_EINVAL;
    w->can_undo = false;
    w->off = w->undo_off;
    w->next_lsn = w->group_first = w->undo_first;
    return erase(w, w->undo_off, w->undo_len);
}

uint64_t hk__wal_bytes(hk__wal *w)
{
    return __atomic_load_n(&w->bytes, __ATOMIC_RELAXED);
}

/* ---- recycling ------------------------------------------------------------------------------ */

static size_t spares(const hk__wal *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nsegs; i++)
        n += w->segs[i].first == 0 && w->segs[i].seq != w->active;
    return n;
}

/* Writes a zero-filled spare outside the lock, then names it after the last segment. */
static int prepare_spare(hk__wal *w)
{
    int fd = openat(w->dir_fd, SPARE_TMP, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return io_err(errno);
    /* Written, not only allocated: appends into written blocks need no
     * metadata change, so each group's fdatasync stays one device write. */
    int e = posix_fallocate(fd, 0, (off_t)w->seg_size);
    if (e == 0)
        e = zero_range(fd, 0, w->seg_size);
    if (e == 0 && fdatasync(fd) != 0)
        e = errno;
    close(fd);
    if (e == 0) {
        uv_mutex_lock(&w->mu);
        uint64_t seq = segs_max(w) + 1;
        char to[4096];
        seg_path(w, seq, to, sizeof(to));
        if (renameat(w->dir_fd, SPARE_TMP, AT_FDCWD, to) == 0)
            segs_add(w, seq, 0);
        else
            e = errno;
        uv_mutex_unlock(&w->mu);
    }
    if (e != 0) {
        /* Not an error: the next segment is then made when it is needed. */
        unlinkat(w->dir_fd, SPARE_TMP, 0);
        hk_debug("log: no spare segment prepared in %s: %s", w->dir, strerror(e));
        return io_err(e);
    }
    return 0;
}

int hk__wal_recycle(hk__wal *w, uint64_t durable)
{
    int rc = 0, e = 0;
    uv_mutex_lock(&w->mu);
    size_t nspare = spares(w);
    for (size_t i = 0; i + 1 < w->nsegs; i++) {
        struct seg *sg = &w->segs[i], *next = &w->segs[i + 1];
        /* Only a segment whose successor starts at or before durable + 1 holds nothing a replay needs. */
        if (sg->first == 0 || sg->seq >= w->active || next->seq != sg->seq + 1 || next->first == 0 ||
            next->first > durable + 1)
            continue;
        char from[4096], to[4096];
        seg_path(w, sg->seq, from, sizeof(from));
        if (nspare < MAX_SPARES) {
            uint64_t seq = segs_max(w) + 1;
            seg_path(w, seq, to, sizeof(to));
            if (rename(from, to) != 0) {
                e = errno;
                rc = HK_ESTORE;
                break;
            }
            /* The stale header names the old number: a reader takes it for a spare. */
            sg->seq = seq;
            sg->first = 0;
            nspare++;
        } else {
            if (unlink(from) != 0) {
                e = errno;
                rc = HK_ESTORE;
                break;
            }
            sg->seq = UINT64_MAX; /* dropped below */
        }
    }
    size_t n = 0;
    for (size_t i = 0; i < w->nsegs; i++)
        if (w->segs[i].seq != UINT64_MAX)
            w->segs[n++] = w->segs[i];
    w->nsegs = n;
    if (n > 1)
        qsort(w->segs, w->nsegs, sizeof(*w->segs), seg_cmp);
    bool need = spares(w) == 0;
    uv_mutex_unlock(&w->mu);
    if (rc != 0)
        hk_warn("log: cannot recycle segments in %s: %s", w->dir, strerror(e));
    if (need && rc == 0)
        (void)prepare_spare(w); /* when it fails, the next segment is made when it is needed */
    return rc;
}

int hk__wal_prepare(hk__wal *w)
{
    uv_mutex_lock(&w->mu);
    size_t n = spares(w);
    uv_mutex_unlock(&w->mu);
    for (; n < MAX_SPARES; n++) {
        int e = prepare_spare(w);
        if (e != 0)
            return e;
    }
    return 0;
}

size_t hk__wal_segments(hk__wal *w)
{
    uv_mutex_lock(&w->mu);
    size_t n = w->nsegs;
    uv_mutex_unlock(&w->mu);
    return n;
}

int hk__wal_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return errno == ENOENT ? 0 : HK_ESTORE;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) != 0)
            rc = HK_ESTORE;
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0)
        rc = HK_ESTORE;
    if (rc != 0)
        hk_error("log: cannot remove %s: %s", dir, strerror(errno));
    return rc;
}
