/*
 * wal.h: the write-ahead log of the embedded engine (internal to the state
 * layer). A sequence of records, each an encoded op (hk_op_encode) with a
 * log sequence number (LSN), appended a group at a time with one
 * fdatasync, in preallocated segment files DIR/00000001.log, ... that are
 * recycled once a checkpoint covers them.
 *
 * Segment file: a 64-byte header (magic "HKWALSG1", u32 version 1, u32
 * CRC-32C of the header with this field zero, u64 the segment's number,
 * which must match its file name, u64 the LSN of its first record), then
 * records back to back: u32 payload length, u32 CRC-32C of (LSN, length,
 * payload), u64 LSN, the payload. Integers are little-endian. The bytes
 * after the last record are zeros or stale records of the file's previous
 * life, whose LSNs are lower.
 *
 * A reader stops at the first record that is short, has a zero length, a
 * bad CRC or an LSN other than the next one; the log continues in the next
 * segment only when that one's header says it starts at exactly that LSN.
 *
 * Threads: the commit thread appends (hk__wal_add, hk__wal_flush,
 * hk__wal_undo); a checkpoint recycles and prepares segments at the same
 * time (hk__wal_recycle); the segment list is shared under a mutex.
 */
#ifndef HK_WAL_H
#define HK_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/**
 * Segment size unless the opener asks for another. A group larger than it
 * gets a segment of its own size; on a disk without room for a whole
 * segment, one just large enough for the group is made.
 */
#define HK__WAL_SEGMENT_SIZE (32u << 20)

typedef struct hk__wal hk__wal;

/** Called for each record to replay, in LSN order; rec is borrowed for the call. Non-zero stops the open. */
typedef int (*hk__wal_replay_fn)(uint64_t lsn, const uint8_t *rec, size_t len, void *arg);

/** What opening found, for the log line and tests. */
typedef struct hk__wal_info {
    uint64_t replayed;  /**< records given to replay */
    uint64_t first;     /**< LSN of the first record replayed (0: none) */
    uint64_t last;      /**< LSN of the last good record in the log (applied when the log holds none after it) */
    uint64_t cleared;   /**< bytes after the last good record that were zeroed */
    uint64_t segment;   /**< the segment the log ends in (0: none yet) */
    uint64_t offset;    /**< where in it the last good record ends */
    const char *reason; /**< why the scan stopped: "end", "zero length", "short record", "bad CRC", "LSN
                             discontinuity" (static text) */
} hk__wal_info;

/**
 * Opens the log in dir (created when missing; segments of seg_size bytes,
 * 0 for HK__WAL_SEGMENT_SIZE) for a store whose state holds every record
 * up to LSN applied. Scans from the segment holding applied + 1 and calls
 * replay for every good record after applied, in order; then, when crashed
 * (the last writer did not close the log), zeroes what follows the last
 * good record in its segment and invalidates the headers of later
 * segments, so that appends never run into a torn group's remains. New
 * records continue at the last good LSN + 1 (applied + 1 when the log holds
 * nothing after it). HK_ESTORE when the log misses records the state needs
 * (it starts after applied + 1) or cannot be read or repaired; a replay
 * error is returned as it is. *out is owned by the caller (hk__wal_close).
 */
int hk__wal_open(hk__wal **out, const char *dir, uint64_t seg_size, uint64_t applied, bool crashed,
                 hk__wal_replay_fn replay, void *arg, hk__wal_info *info) HK_MUST_CHECK;

/** Closes the log (nothing is written). Safe on NULL. */
void hk__wal_close(hk__wal *w);

/** Adds a record to the group being built (commit thread); rec is copied. Returns its LSN. */
uint64_t hk__wal_add(hk__wal *w, const uint8_t *rec, size_t len);

/**
 * Appends the group built since the last flush and, with sync, makes it
 * durable (one write, one fdatasync; moving to the next segment first when
 * it does not fit). Without sync (a lazy group) the group is written but
 * reaches the disk only with the next synced flush, hk__wal_sync, or a
 * move to the next segment; a crash before may lose it (a reader stops at
 * its torn record, and no record after it was synced). *last receives the
 * group's last LSN (unchanged when the group is empty). On failure nothing
 * of the group counts: its LSNs are given out again, and what may have
 * reached the file is zeroed (HK_EFULL for a full disk, HK_ESTORE
 * otherwise; when even zeroing fails the log refuses every later flush
 * with HK_ESTORE).
 */
int hk__wal_flush(hk__wal *w, uint64_t *last, bool sync) HK_MUST_CHECK;

/**
 * Makes lazy groups durable (commit thread): one fdatasync when there are
 * any, else nothing. When a sync fails while lazy groups wait for one
 * (here, or a synced flush's), the log is broken: every later flush and
 * sync fails with HK_ESTORE until a restart, since the kernel may have
 * dropped those groups' pages and a reader stopping at them would not
 * reach anything synced after them.
 */
int hk__wal_sync(hk__wal *w) HK_MUST_CHECK;

/** TEST ONLY: the next n syncs of records (flushes with sync, hk__wal_sync) fail with EIO. */
void hk__wal_test_fail_syncs(int n);

/** True while the active segment holds lazy groups not yet synced (commit thread, or the loop while no group runs). */
bool hk__wal_unsynced(const hk__wal *w);

/** How many fdatasyncs made groups durable so far (commit thread, or the loop while no group runs). */
uint64_t hk__wal_syncs(const hk__wal *w);

/**
 * Takes back the group of the last successful flush (its application
 * failed): zeroes it on disk, durably, and gives its LSNs out again. When
 * that fails the log refuses every later flush (HK_ESTORE).
 */
int hk__wal_undo(hk__wal *w) HK_MUST_CHECK;

/** Bytes flushed since open (any thread). */
uint64_t hk__wal_bytes(hk__wal *w);

/**
 * After a checkpoint made every record up to durable durable in the state
 * (any thread): segments holding only such records become spares (renamed
 * to future segment numbers, at most two kept, the rest deleted), and one
 * zero-filled spare is prepared when none is left.
 */
int hk__wal_recycle(hk__wal *w, uint64_t durable) HK_MUST_CHECK;

/**
 * Prepares spare segments (zero-filled, synced) up to the number recycling
 * keeps, before appends start: the first pass over a segment then writes
 * into blocks that are already there, so an fdatasync stays one device
 * write instead of also committing the file system's journal. A disk
 * without room for them is not an error (HK_EFULL is returned, and
 * segments are then made when needed).
 */
int hk__wal_prepare(hk__wal *w);

/** Segment files in the directory, used and spare (tests). */
size_t hk__wal_segments(hk__wal *w);

/** Removes the log directory dir and every file in it (the store stops using a log). */
int hk__wal_remove(const char *dir) HK_MUST_CHECK;

#endif
