/*
 * signature.h: delivery signatures. X-SuperOffice-Signature is
 * base64(HMAC-SHA256(secret, body)); the Standard Webhooks signature is
 * "v1," + base64(HMAC-SHA256(key, id "." timestamp "." body)) where key is
 * the base64-decoded part after "whsec_" for such secrets and the secret's
 * bytes otherwise.
 */
#ifndef HK_SIGNATURE_H
#define HK_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

/** Base64 of a SHA-256 HMAC: 44 characters plus NUL. */
#define HK_SIG_B64_LEN 45

/** Writes base64(HMAC-SHA256(secret, body)) into out (HK_SIG_B64_LEN bytes). */
void hk_sig_superoffice(const char *secret, const char *body, size_t body_len, char out[HK_SIG_B64_LEN]);

/**
 * Writes "v1,SIG" for the Standard Webhooks scheme into out (at least
 * HK_SIG_B64_LEN + 3 bytes). Returns HK_EINVAL when a whsec_ secret does
 * not base64-decode.
 */
int hk_sig_standard(const char *secret, const char *msg_id, uint64_t timestamp, const char *body, size_t body_len,
                    char *out, size_t outlen) HK_MUST_CHECK;

/**
 * A secret's HMAC keys, prepared once: the hash states after the inner and
 * outer pad blocks (hk_hmac_sha256_key), which are half of an HMAC's
 * blocks for a small body, and a webhook signs every delivery with the
 * same secret. Used on one thread at a time.
 */
typedef struct hk_signer hk_signer;

/** Prepares secret (not empty); a whsec_ secret that does not base64-decode gets no Standard key. */
hk_signer *hk_signer_new(const char *secret);

/** The secret's fingerprint (SHA-256 of it), to tell signers of the same secret apart from others. */
const uint8_t *hk_signer_key(const hk_signer *s);

/** Frees a signer; safe on NULL. */
void hk_signer_free(hk_signer *s);

/** As hk_sig_superoffice, with the prepared key. */
void hk_signer_superoffice(hk_signer *s, const char *body, size_t body_len, char out[HK_SIG_B64_LEN]);

/** As hk_sig_standard, with the prepared key. */
int hk_signer_standard(hk_signer *s, const char *msg_id, uint64_t timestamp, const char *body, size_t body_len,
                       char *out, size_t outlen) HK_MUST_CHECK;

/** Base64-encodes len bytes into out (NUL-terminated); returns the length written, or HK_ETOOBIG when out is too small.
 */
int hk_base64(const void *data, size_t len, char *out, size_t outlen);

#endif
