/* signature.c: HMAC-SHA256 signatures of deliveries (mbedTLS md API). */
#include "signature.h"

#include <mbedtls/base64.h>
#include <mbedtls/md.h>
#include <mbedtls/sha256.h>
#include <stdio.h>
#include <string.h>

int hk_base64(const void *data, size_t len, char *out, size_t outlen)
{
    size_t olen;
    if (mbedtls_base64_encode((unsigned char *)out, outlen, &olen, data, len) != 0)
        return HK_ETOOBIG;
    out[olen] = '\0';
    return (int)olen;
}

struct hk_signer {
    mbedtls_md_context_t so;  /* keyed with the secret's bytes */
    mbedtls_md_context_t std; /* keyed with the Standard Webhooks key */
    int has_std;
    uint8_t fingerprint[32]; /* SHA-256 of the secret */
};

static void keyed(mbedtls_md_context_t *ctx, const void *key, size_t klen)
{
    mbedtls_md_init(ctx);
    /* Only allocation can fail here, and for a fixed, tiny context. */
    if (mbedtls_md_setup(ctx, mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), 1) != 0)
        abort();
    mbedtls_md_hmac_starts(ctx, key, klen);
}

hk_signer *hk_signer_new(const char *secret)
{
    hk_signer *s = hk_calloc(1, sizeof(*s));
    size_t slen = strlen(secret);
    keyed(&s->so, secret, slen);
    mbedtls_sha256_ret((const unsigned char *)secret, slen, s->fingerprint, 0);
    if (strncmp(secret, "whsec_", 6) == 0) {
        unsigned char key[512];
        size_t klen;
        const char *b64 = secret + 6;
        if (mbedtls_base64_decode(key, sizeof(key), &klen, (const unsigned char *)b64, strlen(b64)) == 0) {
            keyed(&s->std, key, klen);
            s->has_std = 1;
        }
    } else if (slen <= 512) {
        keyed(&s->std, secret, slen);
        s->has_std = 1;
    }
    return s;
}

const uint8_t *hk_signer_key(const hk_signer *s)
{
    return s->fingerprint;
}

void hk_signer_free(hk_signer *s)
{
    if (s == NULL)
        return;
    mbedtls_md_free(&s->so);
    if (s->has_std)
        mbedtls_md_free(&s->std);
    free(s);
}

static void mac(mbedtls_md_context_t *ctx, const void *const *parts, const size_t *lens, int n, uint8_t out[32])
{
    mbedtls_md_hmac_reset(ctx);
    for (int i = 0; i < n; i++)
        mbedtls_md_hmac_update(ctx, parts[i], lens[i]);
    mbedtls_md_hmac_finish(ctx, out);
}

void hk_signer_superoffice(hk_signer *s, const char *body, size_t body_len, char out[HK_SIG_B64_LEN])
{
    uint8_t m[32];
    const void *parts[] = {body};
    size_t lens[] = {body_len};
    mac(&s->so, parts, lens, 1, m);
    hk_base64(m, sizeof(m), out, HK_SIG_B64_LEN);
}

int hk_signer_standard(hk_signer *s, const char *msg_id, uint64_t timestamp, const char *body, size_t body_len,
                       char *out, size_t outlen)
{
    if (!s->has_std || outlen < HK_SIG_B64_LEN + 3)
        return HK_EINVAL;
    char ts[24];
    int tslen = snprintf(ts, sizeof(ts), "%llu", (unsigned long long)timestamp);
    const void *parts[] = {msg_id, ".", ts, ".", body};
    size_t lens[] = {strlen(msg_id), 1, (size_t)tslen, 1, body_len};
    uint8_t m[32];
    mac(&s->std, parts, lens, 5, m);
    memcpy(out, "v1,", 3);
    hk_base64(m, sizeof(m), out + 3, outlen - 3);
    return 0;
}

void hk_sig_superoffice(const char *secret, const char *body, size_t body_len, char out[HK_SIG_B64_LEN])
{
    hk_signer *s = hk_signer_new(secret);
    hk_signer_superoffice(s, body, body_len, out);
    hk_signer_free(s);
}

int hk_sig_standard(const char *secret, const char *msg_id, uint64_t timestamp, const char *body, size_t body_len,
                    char *out, size_t outlen)
{
    hk_signer *s = hk_signer_new(secret);
    int rc = hk_signer_standard(s, msg_id, timestamp, body, body_len, out, outlen);
    hk_signer_free(s);
    return rc;
}
