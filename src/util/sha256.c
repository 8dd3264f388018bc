/*
 * sha256.c: SHA-256 as FIPS 180-4 section 6.2 defines it, and HMAC over it
 * as RFC 2104 does. Two block functions compute the same compression: a
 * portable one written straight from the standard, and one on the x86 SHA
 * extensions (sha256rnds2 does two rounds, sha256msg1/msg2 extend the
 * message schedule four words at a time), chosen once by CPUID.
 */
#include "sha256.h"

#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

/* The round constants: the first 32 bits of the fractional parts of the
 * cube roots of the first 64 primes (FIPS 180-4 section 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

/* The initial hash value: the first 32 bits of the fractional parts of the
 * square roots of the first 8 primes (section 5.3.3). */
static const uint32_t H0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au, 0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

/* ---- portable block function ----------------------------------------------------- */

static inline uint32_t rotr(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Section 6.2.2, steps 1 to 4, for each of n blocks at p. */
static void blocks_portable(uint32_t st[8], const uint8_t *p, size_t n)
{
    uint32_t w[64];
    for (; n > 0; n--, p += HK_SHA256_BLOCK) {
        for (int t = 0; t < 16; t++)
            w[t] = load_be32(p + 4 * t);
        for (int t = 16; t < 64; t++) {
            uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = s1 + w[t - 7] + s0 + w[t - 16];
        }
        uint32_t a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 64; t++) {
            uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
            uint32_t ch = (e & f) ^ (~e & g);
            uint32_t t1 = h + S1 + ch + K[t] + w[t];
            uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
            uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
            uint32_t t2 = S0 + maj;
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        st[0] += a;
        st[1] += b;
        st[2] += c;
        st[3] += d;
        st[4] += e;
        st[5] += f;
        st[6] += g;
        st[7] += h;
    }
}

/* ---- SHA extensions block function ------------------------------------------------ */

#if defined(__x86_64__)
#define HW_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* Four rounds starting at round i with the message words w (W[i] in the low
 * lane): each sha256rnds2 does two rounds with the low two lanes of its
 * third operand, takes (C,D,G,H) and (A,B,E,F) and returns the new
 * (A,B,E,F); the old (A,B,E,F) is the new (C,D,G,H), so the two registers
 * swap roles every call. */
#define ROUNDS4(i, w)                                                                                                  \
    do {                                                                                                               \
        __m128i wk_ = _mm_add_epi32((w), _mm_loadu_si128((const __m128i *)&K[(i)]));                                   \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                                                                 \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk_, 0x0e));                                        \
    } while (0)

/* W[t..t+3] = sigma1(W[t-2]) + W[t-7] + sigma0(W[t-15]) + W[t-16] from the
 * previous sixteen words in w0 (oldest) to w3: msg1 adds sigma0 of the next
 * word to each of w0, the W[t-7] terms are w2's upper three lanes and w3's
 * lowest, and msg2 adds sigma1 (including of the two words it produces
 * first). The result replaces w0. */
#define SCHEDULE(w0, w1, w2, w3)                                                                                       \
    (w0) = _mm_sha256msg2_epu32(_mm_add_epi32(_mm_sha256msg1_epu32((w0), (w1)), _mm_alignr_epi8((w3), (w2), 4)), (w3))

HW_TARGET static void blocks_hw(uint32_t st[8], const uint8_t *p, size_t n)
{
    /* Each dword of the input is big-endian. */
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    /* The instructions keep the state as (A,B,E,F) and (C,D,G,H), A and C
     * in the top lane; st holds A..H from the bottom lane up. */
    __m128i dcba = _mm_loadu_si128((const __m128i *)&st[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&st[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xb1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1b);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xf0);
    for (; n > 0; n--, p += HK_SHA256_BLOCK) {
        __m128i abef0 = abef, cdgh0 = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 48)), bswap);
        ROUNDS4(0, m0);
        ROUNDS4(4, m1);
        ROUNDS4(8, m2);
        ROUNDS4(12, m3);
        for (int i = 16; i < 64; i += 16) {
            SCHEDULE(m0, m1, m2, m3);
            ROUNDS4(i, m0);
            SCHEDULE(m1, m2, m3, m0);
            ROUNDS4(i + 4, m1);
            SCHEDULE(m2, m3, m0, m1);
            ROUNDS4(i + 8, m2);
            SCHEDULE(m3, m0, m1, m2);
            ROUNDS4(i + 12, m3);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1b);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xb1);
    _mm_storeu_si128((__m128i *)&st[0], _mm_blend_epi16(feba, dchg, 0xf0));
    _mm_storeu_si128((__m128i *)&st[4], _mm_alignr_epi8(dchg, feba, 8));
}

#undef ROUNDS4
#undef SCHEDULE

/* CPUID leaf 1 ECX: SSSE3 is bit 9, SSE4.1 bit 19; leaf 7 subleaf 0 EBX:
 * SHA is bit 29. */
static bool cpu_has_sha(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return false;
    if (!(c & (1u << 9)) || !(c & (1u << 19)))
        return false;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return false;
    return (b & (1u << 29)) != 0;
}
#endif

/* -1 until the first use asks the CPU; then 1 for the SHA extensions, 0
 * for portable C. Racing first uses store the same answer. */
static int use_hw = -1;
static bool force_portable;

static bool detect(void)
{
    int h = __atomic_load_n(&use_hw, __ATOMIC_RELAXED);
    if (h < 0) {
#if defined(__x86_64__)
        h = cpu_has_sha() ? 1 : 0;
#else
        h = 0;
#endif
        __atomic_store_n(&use_hw, h, __ATOMIC_RELAXED);
    }
    return h == 1;
}

bool hk__sha256_hw_available(void)
{
    return detect();
}

void hk__sha256_force_portable(bool on)
{
    __atomic_store_n(&force_portable, on, __ATOMIC_RELAXED);
}

static void blocks(uint32_t st[8], const uint8_t *p, size_t n)
{
#if defined(__x86_64__)
    if (detect() && !__atomic_load_n(&force_portable, __ATOMIC_RELAXED)) {
        blocks_hw(st, p, n);
        return;
    }
#endif
    blocks_portable(st, p, n);
}

/* ---- streaming SHA-256 ------------------------------------------------------------ */

void hk_sha256_init(hk_sha256_ctx *c)
{
    memcpy(c->state, H0, sizeof(H0));
    c->total = 0;
}

void hk_sha256_update(hk_sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t have = (size_t)(c->total % HK_SHA256_BLOCK);
    if (len == 0)
        return;
    c->total += len;
    if (have > 0) {
        size_t take = HK_SHA256_BLOCK - have;
        if (take > len) {
            memcpy(c->buf + have, p, len);
            return;
        }
        memcpy(c->buf + have, p, take);
        blocks(c->state, c->buf, 1);
        p += take;
        len -= take;
    }
    /* Whole blocks straight from the caller's bytes, without a copy. */
    if (len >= HK_SHA256_BLOCK) {
        size_t n = len / HK_SHA256_BLOCK;
        blocks(c->state, p, n);
        p += n * HK_SHA256_BLOCK;
        len -= n * HK_SHA256_BLOCK;
    }
    if (len > 0)
        memcpy(c->buf, p, len);
}

/* Section 5.1.1: a 1 bit, zeros up to 56 bytes into a block, then the
 * message length in bits as a 64-bit big-endian integer. */
void hk_sha256_final(hk_sha256_ctx *c, uint8_t out[HK_SHA256_LEN])
{
    size_t have = (size_t)(c->total % HK_SHA256_BLOCK);
    uint64_t bits = c->total * 8;
    c->buf[have++] = 0x80;
    if (have > HK_SHA256_BLOCK - 8) {
        memset(c->buf + have, 0, HK_SHA256_BLOCK - have);
        blocks(c->state, c->buf, 1);
        have = 0;
    }
    memset(c->buf + have, 0, HK_SHA256_BLOCK - 8 - have);
    store_be32(c->buf + 56, (uint32_t)(bits >> 32));
    store_be32(c->buf + 60, (uint32_t)bits);
    blocks(c->state, c->buf, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out + 4 * i, c->state[i]);
}

void hk_sha256(const void *data, size_t len, uint8_t out[HK_SHA256_LEN])
{
    hk_sha256_ctx c;
    hk_sha256_init(&c);
    hk_sha256_update(&c, data, len);
    hk_sha256_final(&c, out);
}

/* ---- HMAC ------------------------------------------------------------------------- */

/* A store the compiler must keep although nothing reads the memory again. */
static void wipe(void *p, size_t n)
{
    memset(p, 0, n);
    __asm__ __volatile__("" : : "r"(p) : "memory");
}

void hk_hmac_sha256_key_init(hk_hmac_sha256_key *k, const void *key, size_t klen)
{
    uint8_t block[HK_SHA256_BLOCK] = {0};
    if (klen > HK_SHA256_BLOCK)
        hk_sha256(key, klen, block);
    else if (klen > 0)
        memcpy(block, key, klen);
    for (int i = 0; i < HK_SHA256_BLOCK; i++)
        block[i] ^= 0x36;
    memcpy(k->inner, H0, sizeof(H0));
    blocks(k->inner, block, 1);
    /* 0x36 ^ 0x5c turns the inner pad into the outer one. */
    for (int i = 0; i < HK_SHA256_BLOCK; i++)
        block[i] ^= 0x36 ^ 0x5c;
    memcpy(k->outer, H0, sizeof(H0));
    blocks(k->outer, block, 1);
    wipe(block, sizeof(block));
}

void hk_hmac_sha256_key_wipe(hk_hmac_sha256_key *k)
{
    wipe(k, sizeof(*k));
}

void hk_hmac_sha256_start(hk_hmac_sha256_ctx *h, const hk_hmac_sha256_key *k)
{
    memcpy(h->inner.state, k->inner, sizeof(k->inner));
    h->inner.total = HK_SHA256_BLOCK;
    memcpy(h->outer, k->outer, sizeof(k->outer));
}

void hk_hmac_sha256_update(hk_hmac_sha256_ctx *h, const void *data, size_t len)
{
    hk_sha256_update(&h->inner, data, len);
}

void hk_hmac_sha256_final(hk_hmac_sha256_ctx *h, uint8_t out[HK_SHA256_LEN])
{
    uint8_t ihash[HK_SHA256_LEN];
    hk_sha256_final(&h->inner, ihash);
    hk_sha256_ctx o;
    memcpy(o.state, h->outer, sizeof(h->outer));
    o.total = HK_SHA256_BLOCK;
    hk_sha256_update(&o, ihash, sizeof(ihash));
    hk_sha256_final(&o, out);
    wipe(h, sizeof(*h));
    wipe(&o, sizeof(o));
}

void hk_hmac_sha256(const hk_hmac_sha256_key *k, const void *data, size_t len, uint8_t out[HK_SHA256_LEN])
{
    hk_hmac_sha256_ctx h;
    hk_hmac_sha256_start(&h, k);
    hk_hmac_sha256_update(&h, data, len);
    hk_hmac_sha256_final(&h, out);
}
