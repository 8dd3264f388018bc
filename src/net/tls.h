/*
 * tls.h: client-side TLS for the outbound client, mbedTLS 2.28 over memory
 * buffers.
 *
 * The transport is not mbedTLS's business: ciphertext read from the socket is
 * handed in with hk_tls_feed, and ciphertext mbedTLS wants to send is taken
 * out with hk_tls_take_output and written by the caller. Peers are verified
 * (MBEDTLS_SSL_VERIFY_REQUIRED) against a CA bundle loaded once per path; DNS
 * names are checked by mbedTLS, IP-literal targets against the certificate's
 * iPAddress subjectAltName entries, which mbedTLS 2.28 does not check itself.
 */
#ifndef HK_TLS_H
#define HK_TLS_H

#include <mbedtls/x509_crt.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/** The system CA bundle used when no CA file is configured. */
#define HK_TLS_DEFAULT_CA_FILE "/etc/ssl/certs/ca-certificates.crt"

/**
 * Shared state of all connections of one client: the seeded DRBG, the CA
 * bundles and client certificates already loaded, and one mbedTLS
 * configuration per (CA file, client certificate, key) combination.
 */
typedef struct hk_tls_ctx hk_tls_ctx;

/** One TLS connection's state. */
typedef struct hk_tls_conn hk_tls_conn;

/** A saved session for resumption on a later connection to the same origin. */
typedef struct hk_tls_session hk_tls_session;

/** hk_tls_handshake / hk_tls_read: more ciphertext from the peer is needed. */
#define HK_TLS_WANT_READ 1

/**
 * Creates a context whose DRBG is seeded once from mbedTLS's entropy source.
 * default_ca_file (copied; NULL: HK_TLS_DEFAULT_CA_FILE) is loaded on first use.
 */
int hk_tls_ctx_create(hk_tls_ctx **out, const char *default_ca_file) HK_MUST_CHECK;

/**
 * Loads the CA bundle at path (NULL: the context's default) now rather than
 * on first use, so that its parsing cost is paid at startup. HK_ETLS with
 * the reason in err when it cannot be loaded.
 */
int hk_tls_ctx_load_ca(hk_tls_ctx *ctx, const char *path, char *err, size_t errlen) HK_MUST_CHECK;

/** Frees a context; every connection made from it must be freed first. Safe on NULL. */
void hk_tls_ctx_free(hk_tls_ctx *ctx);

/**
 * Starts a client connection to host (a DNS name, or an IP literal without
 * brackets). ca_file (NULL: the context's default), client_cert and
 * client_key (both NULL, or both PEM files for mutual TLS) are loaded once
 * per path and kept by ctx. resume (may be NULL) offers a saved session.
 * On failure returns HK_ETLS with a readable reason in err.
 */
int hk_tls_conn_create(hk_tls_conn **out, hk_tls_ctx *ctx, const char *host, const char *ca_file,
                       const char *client_cert, const char *client_key, const hk_tls_session *resume, char *err,
                       size_t errlen) HK_MUST_CHECK;

/** Frees a connection; safe on NULL. */
void hk_tls_conn_free(hk_tls_conn *t);

/** Hands ciphertext received from the peer to the connection (copied). */
void hk_tls_feed(hk_tls_conn *t, const char *data, size_t len);

/**
 * Takes the ciphertext waiting to be sent: *buf (malloc'd, the caller frees
 * it, typically in its write callback) and *len; *buf is NULL when nothing waits.
 */
void hk_tls_take_output(hk_tls_conn *t, char **buf, size_t *len);

/**
 * Advances the handshake: 0 when complete, HK_TLS_WANT_READ when the peer
 * must send more, HK_ETLS on failure (reason in err, e.g. "TLS: certificate
 * verify failed: The certificate is not correctly signed by the trusted CA").
 * Output may be waiting afterwards in every case.
 */
int hk_tls_handshake(hk_tls_conn *t, char *err, size_t errlen) HK_MUST_CHECK;

/** True when the completed handshake resumed a saved session. */
bool hk_tls_resumed(const hk_tls_conn *t);

/** Encrypts len plaintext bytes into the output; 0 or HK_ETLS (reason in err). */
int hk_tls_write(hk_tls_conn *t, const char *data, size_t len, char *err, size_t errlen) HK_MUST_CHECK;

/**
 * Decrypts into buf: the number of plaintext bytes (> 0); 0 when more
 * ciphertext is needed; UV_EOF when the peer sent close_notify; HK_ETLS on
 * failure (reason in err).
 */
int hk_tls_read(hk_tls_conn *t, char *buf, size_t cap, char *err, size_t errlen) HK_MUST_CHECK;

/** Saves the connection's session for resumption (NULL when there is none); free with hk_tls_session_free. */
hk_tls_session *hk_tls_session_save(hk_tls_conn *t);

/** Frees a saved session; safe on NULL. */
void hk_tls_session_free(hk_tls_session *s);

/**
 * True when crt carries an iPAddress subjectAltName equal to ip (an IPv4 or
 * IPv6 literal, no brackets).
 */
bool hk_tls_cert_has_ip(const mbedtls_x509_crt *crt, const char *ip);

#endif
