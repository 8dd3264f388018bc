/*
 * sha256.h: SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) with a
 * streaming API, for the delivery signatures and the API-key digests. The
 * block function uses the x86 SHA extensions when the CPU has them (checked
 * once, on first use) and portable C otherwise; both give the same digests.
 *
 * All objects here are plain values the caller owns (on the stack or
 * embedded in its own structs); nothing allocates. An object is used by one
 * thread at a time; different objects may be used on different threads.
 */
#ifndef HK_SHA256_H
#define HK_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Bytes in a SHA-256 digest. */
#define HK_SHA256_LEN 32

/** Bytes in a SHA-256 block (also the HMAC key block). */
#define HK_SHA256_BLOCK 64

/** A SHA-256 computation in progress. */
typedef struct hk_sha256_ctx {
    /** The chaining value H0..H7 after the blocks hashed so far. */
    uint32_t state[8];
    /** Bytes given to update() so far; total % 64 of them wait in buf. */
    uint64_t total;
    /** The tail of the input that does not yet fill a block. */
    uint8_t buf[HK_SHA256_BLOCK];
} hk_sha256_ctx;

/** Starts a digest. */
void hk_sha256_init(hk_sha256_ctx *c);

/** Hashes len bytes of data (data may be NULL when len is 0); data need not outlive the call. */
void hk_sha256_update(hk_sha256_ctx *c, const void *data, size_t len);

/** Writes the digest of everything given to update() into out; c must be initialised again before reuse. */
void hk_sha256_final(hk_sha256_ctx *c, uint8_t out[HK_SHA256_LEN]);

/** The digest of len bytes of data in one call. */
void hk_sha256(const void *data, size_t len, uint8_t out[HK_SHA256_LEN]);

/**
 * An HMAC-SHA256 key, prepared once: the chaining values after the inner
 * (key XOR ipad) and outer (key XOR opad) blocks, so that each MAC with the
 * key costs only the blocks of its message and one more for the outer hash.
 * Holds key-equivalent material: wipe it with hk_hmac_sha256_key_wipe.
 */
typedef struct hk_hmac_sha256_key {
    /** State after hashing the key block XOR 0x36. */
    uint32_t inner[8];
    /** State after hashing the key block XOR 0x5c. */
    uint32_t outer[8];
} hk_hmac_sha256_key;

/** Prepares key (klen bytes, any length; keys over 64 bytes are hashed first as RFC 2104 says). */
void hk_hmac_sha256_key_init(hk_hmac_sha256_key *k, const void *key, size_t klen);

/** Overwrites a prepared key with zeros in a way the compiler does not remove. */
void hk_hmac_sha256_key_wipe(hk_hmac_sha256_key *k);

/** An HMAC-SHA256 computation in progress. */
typedef struct hk_hmac_sha256_ctx {
    /** The inner hash, started from the key's inner state. */
    hk_sha256_ctx inner;
    /** The outer state copied from the key, so the key may change or go after start(). */
    uint32_t outer[8];
} hk_hmac_sha256_ctx;

/** Starts a MAC with the prepared key k (copied; k need not outlive the computation). */
void hk_hmac_sha256_start(hk_hmac_sha256_ctx *h, const hk_hmac_sha256_key *k);

/** MACs len more bytes of data (data may be NULL when len is 0). */
void hk_hmac_sha256_update(hk_hmac_sha256_ctx *h, const void *data, size_t len);

/** Writes the MAC into out and wipes h's state; start again before reuse. */
void hk_hmac_sha256_final(hk_hmac_sha256_ctx *h, uint8_t out[HK_SHA256_LEN]);

/** The MAC of len bytes of data with the prepared key k in one call. */
void hk_hmac_sha256(const hk_hmac_sha256_key *k, const void *data, size_t len, uint8_t out[HK_SHA256_LEN]);

/** Whether the CPU has the SHA extensions this module uses (SHA, SSE4.1, SSSE3); false off x86-64. */
bool hk__sha256_hw_available(void);

/** Tests only: true makes every computation use the portable block function, false restores the choice by CPU. */
void hk__sha256_force_portable(bool on);

#endif
