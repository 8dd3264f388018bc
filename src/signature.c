/* signature.c: HMAC-SHA256 signatures of deliveries (mbedTLS md API). */
#include "signature.h"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <stdio.h>
#include <string.h>

int hk_base64(const void *data, size_t len, char *out, size_t outlen)
{
    size_t olen;
    if (mbedtls_base64_encode((unsigned char *)out, outlen, &olen, data, len) != 0)
        return -1;
    out[olen] = '\0';
    return (int)olen;
}

static void hmac(const void *key, size_t klen, const void *const *parts, const size_t *lens, int n, uint8_t mac[32])
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_context_t ctx;
    mbedtls_md_init(&ctx);
    /* Only allocation can fail here, and for a fixed, tiny context. */
    if (mbedtls_md_setup(&ctx, info, 1) != 0)
        abort();
    mbedtls_md_hmac_starts(&ctx, key, klen);
    for (int i = 0; i < n; i++)
        mbedtls_md_hmac_update(&ctx, parts[i], lens[i]);
    mbedtls_md_hmac_finish(&ctx, mac);
    mbedtls_md_free(&ctx);
}

void hk_sig_superoffice(const char *secret, const char *body, size_t body_len, char out[HK_SIG_B64_LEN])
{
    uint8_t mac[32];
    const void *parts[] = {body};
    size_t lens[] = {body_len};
    hmac(secret, strlen(secret), parts, lens, 1, mac);
    hk_base64(mac, sizeof(mac), out, HK_SIG_B64_LEN);
}

int hk_sig_standard(const char *secret, const char *msg_id, uint64_t timestamp, const char *body, size_t body_len,
                    char *out, size_t outlen)
{
    unsigned char key[512];
    size_t klen;
    if (strncmp(secret, "whsec_", 6) == 0) {
        const char *b64 = secret + 6;
        if (mbedtls_base64_decode(key, sizeof(key), &klen, (const unsigned char *)b64, strlen(b64)) != 0)
            return HK_EINVAL;
    } else {
        klen = strlen(secret);
        if (klen > sizeof(key))
            return HK_EINVAL;
        memcpy(key, secret, klen);
    }
    char ts[24];
    int tslen = snprintf(ts, sizeof(ts), "%llu", (unsigned long long)timestamp);
    const void *parts[] = {msg_id, ".", ts, ".", body};
    size_t lens[] = {strlen(msg_id), 1, (size_t)tslen, 1, body_len};
    uint8_t mac[32];
    hmac(key, klen, parts, lens, 5, mac);
    if (outlen < HK_SIG_B64_LEN + 3)
        return HK_EINVAL;
    memcpy(out, "v1,", 3);
    hk_base64(mac, sizeof(mac), out + 3, outlen - 3);
    return 0;
}
