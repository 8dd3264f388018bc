/*
 * checkpoint.h: the last LMDB snapshot known to be durable under the
 * write-ahead log (internal to the state layer), kept in DATA/wal/checkpoint.
 *
 * Why: with the log, LMDB commits with MDB_NOSYNC, and its data pages and
 * meta pages reach the disk in whatever order the kernel writes them back.
 * After a power loss the newest meta page on disk may point at pages that
 * never got there. A checkpoint syncs the environment and then records a
 * copy of the meta page of the snapshot it made durable, with the LSN of
 * the last log record applied in it. After a crash, putting that copy back
 * as both meta pages (hk__ckpt_restore) returns LMDB to that snapshot,
 * whose pages the writer kept from being reused (it holds a read
 * transaction on it until the next checkpoint); replaying the log from its
 * LSN then rebuilds every acknowledged write after it.
 *
 * File: two 512-byte slots written in turn (the one with the higher save
 * counter and a good CRC-32C counts), each: magic "HKCKPT01", u32 CRC, u32
 * version 1, u64 save counter, u64 LMDB txnid, u64 LSN, u32 state, u32
 * page size, u32 bytes of meta page kept, 12 reserved bytes, then the meta
 * page's first HK__CKPT_META bytes. Integers little-endian. Savers hold an
 * flock on the file, and a snapshot never replaces a newer one (a CLI
 * command's synced commit may be saved beside a serving process's).
 *
 * The byte offsets inside LMDB's meta page are those of LMDB 0.9.x on
 * 64-bit hosts; hk__ckpt_meta finds the snapshot's id at them or fails, so
 * a different layout stops log mode at its first checkpoint instead of
 * restoring garbage.
 */
#ifndef HK_CHECKPOINT_H
#define HK_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"

/** Bytes of the meta page kept: its page header and MDB_meta (152 bytes) with room to spare. */
#define HK__CKPT_META 256

/** The checkpoint file's state. */
enum hk__ckpt_state {
    HK__CKPT_OPEN = 1, /**< a writer may have made commits after the snapshot that are not durable */
    HK__CKPT_CLEAN = 2 /**< the writer closed in order: LMDB as it is on disk is durable */
};

/** One checkpoint. */
typedef struct hk__ckpt {
    uint64_t txnid;              /**< the LMDB transaction whose snapshot is durable */
    uint64_t lsn;                /**< the last log record applied in that snapshot (0: none) */
    uint32_t state;              /**< enum hk__ckpt_state */
    uint32_t psize;              /**< LMDB's page size */
    uint8_t meta[HK__CKPT_META]; /**< the first bytes of that snapshot's meta page */
} hk__ckpt;

/** Reads the current checkpoint of the file at path. HK_ENOTFOUND when there is none. */
int hk__ckpt_load(const char *path, hk__ckpt *out) HK_MUST_CHECK;

/**
 * Saves c durably (one slot write and an fdatasync, plus a sync of the
 * directory when the file is new). When the file holds a newer snapshot
 * (a higher txnid), that one stays and only the state is taken from c;
 * with keep_state the stored state stays too (c->state is used only for a
 * new file), and a directory that is gone (the log was removed) is not an
 * error.
 */
int hk__ckpt_save(const char *path, const hk__ckpt *c, bool keep_state) HK_MUST_CHECK;

/**
 * Copies the meta page of snapshot txnid from LMDB's data file (descriptor
 * data_fd, page size psize) into c->meta. No commit may run meanwhile
 * (hold the write lock). HK_ENOTFOUND when neither meta page is that
 * snapshot's.
 */
int hk__ckpt_meta(int data_fd, uint32_t psize, uint64_t txnid, hk__ckpt *c) HK_MUST_CHECK;

/**
 * Puts snapshot c back into data_dir/data.mdb, before the environment is
 * opened, when its newest meta page is a later one: *restored says whether
 * it did. Skipped with a warning (nothing restored) while another process
 * has the environment open, since then the newest commits are still in the
 * page cache. HK_ESTORE when data.mdb cannot be read or is older than c.
 */
int hk__ckpt_restore(const char *data_dir, const hk__ckpt *c, bool *restored) HK_MUST_CHECK;

typedef struct hk_store hk_store;

/** TEST ONLY: a checkpoint of s now, on the calling thread (no op may be in flight). */
int hk__store_checkpoint(hk_store *s) HK_MUST_CHECK;

/** Points where a test can make the process exit as if it had crashed. */
enum hk__crash_point {
    HK__CRASH_NONE = 0,
    HK__CRASH_AFTER_SYNC, /**< a checkpoint synced LMDB but has not saved the checkpoint */
    HK__CRASH_AFTER_SAVE  /**< a checkpoint was saved but no segment recycled */
};

/** The exit status of a crash made at a crash point. */
#define HK__CRASH_STATUS 77

/** TEST ONLY: the next time p is reached, the process exits at once (_exit) with HK__CRASH_STATUS. */
void hk__ckpt_test_crash_at(enum hk__crash_point p);

/** TEST ONLY: background checkpoints off (a test wants the log to hold everything since the first one). */
void hk__ckpt_test_background(bool on);

/** False when a test turned background checkpoints off. */
bool hk__ckpt_background(void);

/** Exits there when a test asked for it (see hk__ckpt_test_crash_at); nothing otherwise. */
void hk__ckpt_crash_point(enum hk__crash_point p);

#endif
