/*
 * test_sha256.c: SHA-256 and HMAC-SHA256 against the FIPS 180 examples and
 * RFC 4231, and against mbedTLS for random messages of every length up to
 * 300 bytes and some of several KiB, fed in random pieces, on the SHA
 * extensions and on the portable block function.
 */
#include "sha256.h"

#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdint.h>

#include "unit.h"

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void check_sha(const void *data, size_t len, const char *want)
{
    uint8_t d[HK_SHA256_LEN];
    char h[2 * HK_SHA256_LEN + 1];
    hk_sha256(data, len, d);
    hex(d, sizeof(d), h);
    CHECK_STR(h, want);
}

static void check_hmac(const void *key, size_t klen, const void *data, size_t len, const char *want)
{
    hk_hmac_sha256_key k;
    uint8_t m[HK_SHA256_LEN];
    char h[2 * HK_SHA256_LEN + 1];
    hk_hmac_sha256_key_init(&k, key, klen);
    hk_hmac_sha256(&k, data, len, m);
    hex(m, sizeof(m), h);
    /* RFC 4231 test case 5 publishes only the first 128 bits. */
    CHECK(strncmp(h, want, strlen(want)) == 0);
    if (strncmp(h, want, strlen(want)) != 0)
        fprintf(stderr, "  got %s\n  want %s\n", h, want);
}

/* FIPS 180-2 appendix B (one block, two blocks, a million 'a's), the empty message, and RFC 4231 section 4. */
static void test_vectors(void)
{
    check_sha("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_sha("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_sha(two, strlen(two), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    static uint8_t million[1000000];
    memset(million, 'a', sizeof(million));
    check_sha(million, sizeof(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    uint8_t key[131], data[160];
    memset(key, 0x0b, 20);
    check_hmac(key, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    check_hmac("Jefe", 4, "what do ya want for nothing?", 28,
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    check_hmac(key, 20, data, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    check_hmac(key, 25, data, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    memset(key, 0x0c, 20);
    check_hmac(key, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b");
    memset(key, 0xaa, 131);
    const char *t6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    check_hmac(key, 131, t6, strlen(t6), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    const char *t7 =
        "This is a test using a larger than block-size key and a larger than block-size data. The key needs "
        "to be hashed before being used by the HMAC algorithm.";
    check_hmac(key, 131, t7, strlen(t7), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* xorshift64*: reproducible messages and cuts, so a failure names its seed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng() >> 56);
}

/* The size of the next piece of a message with left bytes to go: often tiny, sometimes a block or more. */
static size_t piece(size_t left)
{
    static const size_t max[] = {1, 3, 17, 64, 70, 200, 5000};
    size_t n = (size_t)(rng() % (max[rng() % 7] + 1));
    return n > left ? left : n;
}

/* Feeds msg to update in random pieces (empty ones included). */
static void feed(void (*update)(void *ctx, const uint8_t *p, size_t n), void *ctx, const uint8_t *msg, size_t len)
{
    size_t off = 0;
    do {
        size_t n = piece(len - off);
        update(ctx, msg + off, n);
        off += n;
    } while (off < len);
}

static void sha_update(void *ctx, const uint8_t *p, size_t n)
{
    hk_sha256_update(ctx, p, n);
}

static void hmac_update(void *ctx, const uint8_t *p, size_t n)
{
    hk_hmac_sha256_update(ctx, p, n);
}

/* One message of len bytes at msg (msg sits at a random offset, so loads are unaligned): the
 * digest and the MAC fed in random pieces must equal mbedTLS's. Returns whether both did. */
static int compare_one(const uint8_t *msg, size_t len, const uint8_t *key, size_t klen)
{
    uint8_t want[HK_SHA256_LEN], got[HK_SHA256_LEN], wmac[HK_SHA256_LEN], gmac[HK_SHA256_LEN];
    mbedtls_sha256_ret(msg, len, want, 0);
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), key, klen, msg, len, wmac);

    hk_sha256_ctx c;
    hk_sha256_init(&c);
    feed(sha_update, &c, msg, len);
    hk_sha256_final(&c, got);

    hk_hmac_sha256_key k;
    hk_hmac_sha256_key_init(&k, key, klen);
    hk_hmac_sha256_ctx h;
    hk_hmac_sha256_start(&h, &k);
    feed(hmac_update, &h, msg, len);
    hk_hmac_sha256_final(&h, gmac);
    return memcmp(want, got, sizeof(got)) == 0 && memcmp(wmac, gmac, sizeof(gmac)) == 0;
}

/* compare_one on len random bytes at a random offset, with a random key of up to 199 bytes. */
static int compare_random_one(size_t len)
{
    static uint8_t buf[16384 + 16];
    uint8_t key[200];
    size_t klen = (size_t)(rng() % sizeof(key));
    uint8_t *msg = buf + rng() % 16;
    fill(msg, len);
    fill(key, klen);
    return compare_one(msg, len, key, klen);
}

static void compare_random(const char *mode)
{
    int ok = 0, n = 0;
    uint64_t seed = rng_state;
    for (size_t len = 0; len <= 300; len++)
        for (int rep = 0; rep < 6; rep++, n++)
            ok += compare_random_one(len);
    for (int rep = 0; rep < 40; rep++, n++)
        ok += compare_random_one(1024 + (size_t)(rng() % (16384 - 1024)));
    CHECK_INT(ok, n);
    if (ok != n)
        fprintf(stderr, "  %s: %d of %d messages differ from mbedTLS (seed %llx)\n", mode, n - ok, n,
                (unsigned long long)seed);
}

/* A key prepared on one block function MACs the same on the other, and a prepared key serves many messages. */
static void test_key_reuse(void)
{
    hk_hmac_sha256_key k;
    uint8_t a[HK_SHA256_LEN], b[HK_SHA256_LEN], want[HK_SHA256_LEN];
    hk__sha256_force_portable(true);
    hk_hmac_sha256_key_init(&k, "secret", 6);
    hk__sha256_force_portable(false);
    hk_hmac_sha256(&k, "one", 3, a);
    hk_hmac_sha256(&k, "two", 3, b);
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)"secret", 6, (const uint8_t *)"one",
                    3, want);
    CHECK(memcmp(a, want, sizeof(a)) == 0);
    mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), (const uint8_t *)"secret", 6, (const uint8_t *)"two",
                    3, want);
    CHECK(memcmp(b, want, sizeof(b)) == 0);
    hk_hmac_sha256_key_wipe(&k);
    static const hk_hmac_sha256_key zero;
    CHECK(memcmp(&k, &zero, sizeof(k)) == 0);
}

/* The choice by CPUID agrees with what the kernel reports for this CPU. */
static void test_detection(void)
{
#if defined(__x86_64__) && defined(__linux__)
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f == NULL)
        return;
    char line[4096];
    int sha = -1;
    while (sha < 0 && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "flags", 5) == 0)
            sha = strstr(line, " sha_ni") != NULL && strstr(line, " sse4_1") != NULL && strstr(line, " ssse3") != NULL;
    fclose(f);
    if (sha >= 0)
        CHECK_INT(hk__sha256_hw_available(), sha);
#endif
}

int main(void)
{
    test_detection();
    printf("SHA extensions %s\n", hk__sha256_hw_available() ? "used" : "not available: portable code twice");
    for (int portable = 0; portable <= 1; portable++) {
        hk__sha256_force_portable(portable);
        test_vectors();
        compare_random(portable ? "portable" : "by CPU");
    }
    hk__sha256_force_portable(false);
    test_key_reuse();
    return unit_done();
}
