/* signature.c: HMAC-SHA256 signatures of deliveries (util/sha256.h; mbedTLS for base64 only). */
#include "signature.h"

#include <mbedtls/base64.h>
#include <stdio.h>
#include <string.h>

#include "sha256.h"

int hk_base64(const void *data, size_t len, char *out, size_t outlen)
{
    size_t olen;
    if (mbedtls_base64_encode((unsigned char *)out, outlen, &olen, data, len) != 0)
        return HK_ETOOBIG;
    out[olen] = '\0';
    return (int)olen;
}

struct hk_signer {
    hk_hmac_sha256_key so;  /* keyed with the secret's bytes */
    hk_hmac_sha256_key std; /* keyed with the Standard Webhooks key */
    int has_std;
    uint8_t fingerprint[HK_SHA256_LEN]; /* SHA-256 of the secret */
};

hk_signer *hk_signer_new(const char *secret)
{
    hk_signer *s = hk_calloc(1, sizeof(*s));
    size_t slen = strlen(secret);
    hk_hmac_sha256_key_init(&s->so, secret, slen);
    hk_sha256(secret, slen, s->fingerprint);
    if (strncmp(secret, "whsec_", 6) == 0) {
        unsigned char key[512];
        size_t klen;
        const char *b64 = secret + 6;
        if (mbedtls_base64_decode(key, sizeof(key), &klen, (const unsigned char *)b64, strlen(b64)) == 0) {
            hk_hmac_sha256_key_init(&s->std, key, klen);
            s->has_std = 1;
        }
    } else if (slen <= 512) {
        hk_hmac_sha256_key_init(&s->std, secret, slen);
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
    hk_hmac_sha256_key_wipe(&s->so);
    hk_hmac_sha256_key_wipe(&s->std);
    free(s);
}

static void mac(const hk_hmac_sha256_key *key, const void *const *parts, const size_t *lens, int n,
                uint8_t out[HK_SHA256_LEN])
{
    hk_hmac_sha256_ctx h;
    hk_hmac_sha256_start(&h, key);
    for (int i = 0; i < n; i++)
        hk_hmac_sha256_update(&h, parts[i], lens[i]);
    hk_hmac_sha256_final(&h, out);
}

void hk_signer_superoffice(hk_signer *s, const char *body, size_t body_len, char out[HK_SIG_B64_LEN])
{
    uint8_t m[HK_SHA256_LEN];
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
    uint8_t m[HK_SHA256_LEN];
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
