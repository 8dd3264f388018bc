/*
 * tls.c: mbedTLS 2.28 client connections over memory buffers.
 *
 * mbedTLS reads ciphertext from t->in (filled by hk_tls_feed from the
 * socket's reads) and writes ciphertext into t->out (drained by the caller
 * with uv_write), so the libuv stream stays the only transport and nothing
 * ever blocks. CA bundles, client certificates and the mbedTLS
 * configurations built from them are loaded once per path and kept in the
 * context for its lifetime; loading failures are not cached, so a file that
 * appears later is picked up.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "buf.h"

struct ca_entry {
    struct ca_entry *next;
    char *path;
    mbedtls_x509_crt chain;
};

struct cert_entry {
    struct cert_entry *next;
    char *cert_path, *key_path;
    mbedtls_x509_crt crt;
    mbedtls_pk_context pk;
};

/* One mbedTLS configuration: a CA bundle plus an optional client certificate. */
struct profile {
    struct profile *next;
    struct ca_entry *ca;
    struct cert_entry *cert; /* NULL: no client certificate */
    mbedtls_ssl_config conf;
};

struct hk_tls_ctx {
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;
    char *default_ca;
    struct ca_entry *cas;
    struct cert_entry *certs;
    struct profile *profiles;
};

struct hk_tls_conn {
    mbedtls_ssl_context ssl;
    hk_buf in; /* ciphertext received; mbedTLS has consumed the first in_off bytes */
    size_t in_off;
    hk_buf out; /* ciphertext to send */
    char host[256];
    bool is_ip;
    bool cert_checked; /* the verify callback saw the peer's certificate */
    bool done;         /* handshake complete */
};

struct hk_tls_session {
    mbedtls_ssl_session s;
};

/* ---- context --------------------------------------------------------------- */

int hk_tls_ctx_create(hk_tls_ctx **out, const char *default_ca_file)
{
    static const unsigned char pers[] = "hookd outbound tls";
    hk_tls_ctx *ctx = hk_calloc(1, sizeof(*ctx));
    mbedtls_entropy_init(&ctx->entropy);
    mbedtls_ctr_drbg_init(&ctx->drbg);
    ctx->default_ca = hk_strdup(default_ca_file ? default_ca_file : HK_TLS_DEFAULT_CA_FILE);
    if (mbedtls_ctr_drbg_seed(&ctx->drbg, mbedtls_entropy_func, &ctx->entropy, pers, sizeof(pers) - 1) != 0) {
        hk_tls_ctx_free(ctx);
        *out = NULL;
        return HK_ETLS;
    }
    *out = ctx;
    return 0;
}

void hk_tls_ctx_free(hk_tls_ctx *ctx)
{
    if (ctx == NULL)
        return;
    for (struct profile *p = ctx->profiles, *next; p != NULL; p = next) {
        next = p->next;
        mbedtls_ssl_config_free(&p->conf);
        free(p);
    }
    for (struct ca_entry *c = ctx->cas, *next; c != NULL; c = next) {
        next = c->next;
        mbedtls_x509_crt_free(&c->chain);
        free(c->path);
        free(c);
    }
    for (struct cert_entry *c = ctx->certs, *next; c != NULL; c = next) {
        next = c->next;
        mbedtls_x509_crt_free(&c->crt);
        mbedtls_pk_free(&c->pk);
        free(c->cert_path);
        free(c->key_path);
        free(c);
    }
    mbedtls_ctr_drbg_free(&ctx->drbg);
    mbedtls_entropy_free(&ctx->entropy);
    free(ctx->default_ca);
    free(ctx);
}

static void strerr(int rc, char *buf, size_t len)
{
    mbedtls_strerror(rc, buf, len);
}

static struct ca_entry *load_ca(hk_tls_ctx *ctx, const char *path, char *err, size_t errlen)
{
    for (struct ca_entry *c = ctx->cas; c != NULL; c = c->next)
        if (strcmp(c->path, path) == 0)
            return c;
    /* mbedTLS reports a missing file as a generic read failure: say which. */
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "TLS: cannot load CA file %s: %s", path, strerror(errno));
        return NULL;
    }
    fclose(f);
    struct ca_entry *c = hk_calloc(1, sizeof(*c));
    mbedtls_x509_crt_init(&c->chain);
    /* A positive result counts certificates that could not be parsed; a
     * system bundle may hold a few, and the rest are still usable. */
    int rc = mbedtls_x509_crt_parse_file(&c->chain, path);
    if (rc < 0 || c->chain.version == 0) {
        char msg[128];
        if (rc < 0)
            strerr(rc, msg, sizeof(msg));
        else
            snprintf(msg, sizeof(msg), "no usable certificate");
        snprintf(err, errlen, "TLS: cannot load CA file %s: %s", path, msg);
        mbedtls_x509_crt_free(&c->chain);
        free(c);
        return NULL;
    }
    c->path = hk_strdup(path);
    c->next = ctx->cas;
    ctx->cas = c;
    return c;
}

int hk_tls_ctx_load_ca(hk_tls_ctx *ctx, const char *path, char *err, size_t errlen)
{
    return load_ca(ctx, path ? path : ctx->default_ca, err, errlen) ? 0 : HK_ETLS;
}

static struct cert_entry *load_cert(hk_tls_ctx *ctx, const char *cert, const char *key, char *err, size_t errlen)
{
    for (struct cert_entry *c = ctx->certs; c != NULL; c = c->next)
        if (strcmp(c->cert_path, cert) == 0 && strcmp(c->key_path, key) == 0)
            return c;
    struct cert_entry *c = hk_calloc(1, sizeof(*c));
    mbedtls_x509_crt_init(&c->crt);
    mbedtls_pk_init(&c->pk);
    char msg[128];
    int rc = mbedtls_x509_crt_parse_file(&c->crt, cert);
    if (rc != 0) {
        strerr(rc < 0 ? rc : MBEDTLS_ERR_X509_INVALID_FORMAT, msg, sizeof(msg));
        snprintf(err, errlen, "TLS: cannot load client certificate %s: %s", cert, msg);
        goto fail;
    }
    rc = mbedtls_pk_parse_keyfile(&c->pk, key, NULL);
    if (rc != 0) {
        strerr(rc, msg, sizeof(msg));
        snprintf(err, errlen, "TLS: cannot load client key %s: %s", key, msg);
        goto fail;
    }
    if (mbedtls_pk_check_pair(&c->crt.pk, &c->pk) != 0) {
        snprintf(err, errlen, "TLS: client key %s does not match certificate %s", key, cert);
        goto fail;
    }
    c->cert_path = hk_strdup(cert);
    c->key_path = hk_strdup(key);
    c->next = ctx->certs;
    ctx->certs = c;
    return c;
fail:
    mbedtls_x509_crt_free(&c->crt);
    mbedtls_pk_free(&c->pk);
    free(c);
    return NULL;
}

static struct profile *get_profile(hk_tls_ctx *ctx, const char *ca_file, const char *cert, const char *key, char *err,
                                   size_t errlen)
{
    struct ca_entry *ca = load_ca(ctx, ca_file ? ca_file : ctx->default_ca, err, errlen);
    if (ca == NULL)
        return NULL;
    struct cert_entry *ce = NULL;
    if (cert != NULL || key != NULL) {
        if (cert == NULL || key == NULL) {
            snprintf(err, errlen, "TLS: a client certificate needs both a certificate and a key file");
            return NULL;
        }
        if ((ce = load_cert(ctx, cert, key, err, errlen)) == NULL)
            return NULL;
    }
    for (struct profile *p = ctx->profiles; p != NULL; p = p->next)
        if (p->ca == ca && p->cert == ce)
            return p;
    struct profile *p = hk_calloc(1, sizeof(*p));
    mbedtls_ssl_config_init(&p->conf);
    int rc = mbedtls_ssl_config_defaults(&p->conf, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                         MBEDTLS_SSL_PRESET_DEFAULT);
    if (rc != 0 || (ce != NULL && (rc = mbedtls_ssl_conf_own_cert(&p->conf, &ce->crt, &ce->pk)) != 0)) {
        char msg[128];
        strerr(rc, msg, sizeof(msg));
        snprintf(err, errlen, "TLS: configuration failed: %s", msg);
        mbedtls_ssl_config_free(&p->conf);
        free(p);
        return NULL;
    }
    mbedtls_ssl_conf_authmode(&p->conf, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&p->conf, &ca->chain, NULL);
    mbedtls_ssl_conf_rng(&p->conf, mbedtls_ctr_drbg_random, &ctx->drbg);
    mbedtls_ssl_conf_min_version(&p->conf, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
    p->ca = ca;
    p->cert = ce;
    p->next = ctx->profiles;
    ctx->profiles = p;
    return p;
}

/* ---- memory BIO -------------------------------------------------------------- */

static int bio_send(void *arg, const unsigned char *data, size_t len)
{
    hk_tls_conn *t = arg;
    if (len > INT32_MAX)
        len = INT32_MAX;
    /* What mbedTLS writes is bounded by what we give it to encrypt. */
    hk_buf_append(&t->out, data, len);
    return (int)len;
}

static int bio_recv(void *arg, unsigned char *data, size_t len)
{
    hk_tls_conn *t = arg;
    size_t avail = t->in.len - t->in_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    if (len > INT32_MAX)
        len = INT32_MAX;
    memcpy(data, t->in.data + t->in_off, len);
    t->in_off += len;
    if (t->in_off == t->in.len) {
        hk_buf_reset(&t->in);
        t->in_off = 0;
    }
    return (int)len;
}

void hk_tls_feed(hk_tls_conn *t, const char *data, size_t len)
{
    /* Bounded by construction: the caller feeds one read at a time and lets
     * mbedTLS consume it before the next, so at most one read and a partial
     * record wait here. */
    hk_buf_consume(&t->in, t->in_off);
    t->in_off = 0;
    hk_buf_append(&t->in, data, len);
}

void hk_tls_take_output(hk_tls_conn *t, char **buf, size_t *len)
{
    if (t->out.len == 0) {
        *buf = NULL;
        *len = 0;
        return;
    }
    /* Hand over the buffer itself; the next output starts a new one. */
    *buf = hk_buf_steal(&t->out, len);
}

/* ---- verification -------------------------------------------------------------- */

bool hk_tls_cert_has_ip(const mbedtls_x509_crt *crt, const char *ip)
{
    unsigned char want[16];
    size_t want_len;
    if (inet_pton(AF_INET, ip, want) == 1)
        want_len = 4;
    else if (inet_pton(AF_INET6, ip, want) == 1)
        want_len = 16;
    else
        return false;
    /* mbedTLS 2.28 keeps only dNSName and otherName entries of the
     * subjectAltName, so walk the raw extensions for iPAddress [7]. */
    unsigned char *p = crt->v3_ext.p;
    if (p == NULL || crt->v3_ext.len == 0)
        return false;
    const unsigned char *end = p + crt->v3_ext.len;
    size_t len;
    if (*p == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3)) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_ASN1_CONSTRUCTED | 3) != 0)
            return false;
        end = p + len;
    }
    if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
        return false;
    end = p + len;
    while (p < end) {
        if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
            return false;
        const unsigned char *ext_end = p + len;
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OID) != 0)
            return false;
        bool san =
            len == MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME) && memcmp(p, MBEDTLS_OID_SUBJECT_ALT_NAME, len) == 0;
        p += len;
        if (!san) {
            p = (unsigned char *)ext_end;
            continue;
        }
        if (p < ext_end && *p == MBEDTLS_ASN1_BOOLEAN) {
            if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_BOOLEAN) != 0)
                return false;
            p += len;
        }
        if (mbedtls_asn1_get_tag(&p, ext_end, &len, MBEDTLS_ASN1_OCTET_STRING) != 0)
            return false;
        const unsigned char *names_end = p + len;
        if (mbedtls_asn1_get_tag(&p, names_end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0)
            return false;
        names_end = p + len;
        while (p < names_end) {
            unsigned char tag = *p++;
            if (mbedtls_asn1_get_len(&p, names_end, &len) != 0)
                return false;
            if (tag == (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_IP_ADDRESS) && len == want_len &&
                memcmp(p, want, len) == 0)
                return true;
            p += len;
        }
        return false; /* only one subjectAltName extension is allowed */
    }
    return false;
}

static int verify_cb(void *arg, mbedtls_x509_crt *crt, int depth, uint32_t *flags)
{
    hk_tls_conn *t = arg;
    if (depth != 0)
        return 0;
    t->cert_checked = true;
    /* For IP-literal targets no hostname was given to mbedTLS (it would
     * compare it with DNS names only, and it must not be sent as SNI); the
     * address is checked against the iPAddress entries here instead. */
    if (t->is_ip && !hk_tls_cert_has_ip(crt, t->host))
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
    return 0;
}

static const char *alert_name(unsigned char a)
{
    switch (a) {
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 40: return "handshake_failure (the server may require a client certificate)";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 112: return "unrecognized_name";
    case 116: return "certificate_required";
    default: return "(unknown alert)";
    }
}

/* Builds "TLS: ..." from an mbedTLS error, with the verification details when there are any. */
static void describe(hk_tls_conn *t, int rc, const char *what, char *err, size_t errlen)
{
    char msg[512];
    if (rc == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED) {
        uint32_t flags = mbedtls_ssl_get_verify_result(&t->ssl);
        char info[512];
        int n = mbedtls_x509_crt_verify_info(info, sizeof(info), "", flags);
        if (n <= 0)
            snprintf(info, sizeof(info), "unknown reason (flags 0x%x)", (unsigned)flags);
        /* One line per reason: join them with "; ". */
        size_t o = 0;
        for (const char *s = info; *s != '\0' && o + 3 < sizeof(msg); s++) {
            if (*s == '\n') {
                if (s[1] != '\0') {
                    msg[o++] = ';';
                    msg[o++] = ' ';
                }
            } else {
                msg[o++] = *s;
            }
        }
        msg[o] = '\0';
        if (flags & MBEDTLS_X509_BADCERT_CN_MISMATCH)
            snprintf(err, errlen, "TLS: certificate verify failed: %s (the certificate is not valid for %s)", msg,
                     t->host);
        else
            snprintf(err, errlen, "TLS: certificate verify failed: %s", msg);
        return;
    }
    if (rc == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE && t->ssl.in_msg != NULL) {
        /* mbedTLS 2.28 leaves the alert in the record buffer; its
         * description says more than "fatal alert received". */
        snprintf(err, errlen, "TLS: %s failed: the server sent the fatal alert %s", what, alert_name(t->ssl.in_msg[1]));
        return;
    }
    strerr(rc, msg, sizeof(msg));
    snprintf(err, errlen, "TLS: %s failed: %s", what, msg);
}

/* ---- connections ---------------------------------------------------------------- */

int hk_tls_conn_create(hk_tls_conn **out, hk_tls_ctx *ctx, const char *host, const char *ca_file,
                       const char *client_cert, const char *client_key, const hk_tls_session *resume, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (strlen(host) >= sizeof(((hk_tls_conn *)NULL)->host)) {
        snprintf(err, errlen, "TLS: host name too long");
        return HK_ETLS;
    }
    struct profile *p = get_profile(ctx, ca_file, client_cert, client_key, err, errlen);
    if (p == NULL)
        return HK_ETLS;
    hk_tls_conn *t = hk_calloc(1, sizeof(*t));
    mbedtls_ssl_init(&t->ssl);
    snprintf(t->host, sizeof(t->host), "%s", host);
    unsigned char tmp[16];
    t->is_ip = inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
    int rc = mbedtls_ssl_setup(&t->ssl, &p->conf);
    /* A DNS name is sent as SNI and checked by mbedTLS; IP literals are checked in verify_cb. */
    if (rc == 0 && !t->is_ip)
        rc = mbedtls_ssl_set_hostname(&t->ssl, host);
    if (rc != 0) {
        describe(t, rc, "setup", err, errlen);
        hk_tls_conn_free(t);
        return HK_ETLS;
    }
    mbedtls_ssl_set_verify(&t->ssl, verify_cb, t);
    mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
    /* A session that cannot be set only costs a full handshake. */
    if (resume != NULL)
        (void)mbedtls_ssl_set_session(&t->ssl, &resume->s);
    *out = t;
    return 0;
}

void hk_tls_conn_free(hk_tls_conn *t)
{
    if (t == NULL)
        return;
    mbedtls_ssl_free(&t->ssl);
    hk_buf_free(&t->in);
    hk_buf_free(&t->out);
    free(t);
}

int hk_tls_handshake(hk_tls_conn *t, char *err, size_t errlen)
{
    if (t->done)
        return 0;
    int rc = mbedtls_ssl_handshake(&t->ssl);
    if (rc == 0) {
        t->done = true;
        return 0;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return HK_TLS_WANT_READ;
    describe(t, rc, "handshake", err, errlen);
    return HK_ETLS;
}

bool hk_tls_resumed(const hk_tls_conn *t)
{
    /* With VERIFY_REQUIRED every full handshake verifies the peer's
     * certificate; only an abbreviated (resumed) one skips it. */
    return t->done && !t->cert_checked;
}

int hk_tls_write(hk_tls_conn *t, const char *data, size_t len, char *err, size_t errlen)
{
    while (len > 0) {
        int rc = mbedtls_ssl_write(&t->ssl, (const unsigned char *)data, len);
        /* The memory BIO takes everything, so WANT_* here would mean a
         * renegotiation (disabled): treat it, like any error, as fatal. */
        if (rc <= 0) {
            describe(t, rc, "write", err, errlen);
            return HK_ETLS;
        }
        data += rc;
        len -= (size_t)rc;
    }
    return 0;
}

int hk_tls_read(hk_tls_conn *t, char *buf, size_t cap, char *err, size_t errlen)
{
    int rc = mbedtls_ssl_read(&t->ssl, (unsigned char *)buf, cap);
    if (rc > 0)
        return rc;
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE)
        return 0;
    if (rc == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY || rc == 0)
        return UV_EOF;
    describe(t, rc, "read", err, errlen);
    return HK_ETLS;
}

hk_tls_session *hk_tls_session_save(hk_tls_conn *t)
{
    hk_tls_session *s = hk_calloc(1, sizeof(*s));
    mbedtls_ssl_session_init(&s->s);
    if (mbedtls_ssl_get_session(&t->ssl, &s->s) != 0) {
        hk_tls_session_free(s);
        return NULL;
    }
    return s;
}

void hk_tls_session_free(hk_tls_session *s)
{
    if (s == NULL)
        return;
    mbedtls_ssl_session_free(&s->s);
    free(s);
}
