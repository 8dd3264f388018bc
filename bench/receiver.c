/*
 * receiver.c: the benchmark's webhook receiver.
 *
 * Listens on one or more ports (one per simulated subscriber), over plain
 * HTTP or TLS (mbedTLS over memory buffers), answers every POST with 200 or
 * 204 on a kept-alive connection, and counts it. Each delivery body carries
 * the generator's send time ("bench_t_ns", CLOCK_MONOTONIC nanoseconds, the
 * clock uv_hrtime reads in every process on the host) and sequence number
 * inside Data; the receiver records signal->receipt latency in a log-linear
 * histogram and counts duplicates per port. On a sample of deliveries it
 * recomputes both signatures (X-SuperOffice-Signature and the Standard
 * Webhooks webhook-signature) with mbedTLS's HMAC and counts mismatches.
 *
 * GET /stats answers the counters as JSON; SIGINT or SIGTERM prints them to
 * stdout and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <llhttp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <uv.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>
#include <mbedtls/md.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include "hist.h"

#define MAX_PORTS 1024
#define READ_SIZE 65536
#define MAX_BODY (4u << 20)        /* larger request bodies close the connection */
#define MAX_SEQ_TRACKED (1u << 26) /* sequence numbers above this are not checked for duplicates */
#define HDR_NAME_MAX 64
#define HDR_VALUE_MAX 1024
#define STAMP_KEY "\"bench_t_ns\":"
#define SEQ_KEY "\"seq\":"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum hdr_slot { H_NONE, H_WH_ID, H_WH_TS, H_WH_SIG, H_SO_SIG, H_COUNT };

struct listener {
    uv_tcp_t tcp;
    int index;
    int port;
    uint8_t *seen; /* one bit per sequence number delivered on this port */
    size_t seen_bytes;
};

struct conn {
    uv_tcp_t tcp;
    struct listener *l;
    llhttp_t parser;
    bool closing;
    bool close_after;
    int nwrites; /* queued writes not yet completed */

    /* The request being parsed. */
    char url[256];
    size_t url_len;
    char hname[HDR_NAME_MAX];
    size_t hname_len;
    enum hdr_slot slot;
    char hval[H_COUNT][HDR_VALUE_MAX];
    size_t hval_len[H_COUNT];
    char *body;
    size_t body_len, body_cap;
    bool too_big;

    /* Responses produced while handling one read, written together. */
    char *out;
    size_t out_len, out_cap;

    /* TLS: ciphertext received but not yet consumed by mbedTLS. */
    bool tls;
    bool handshake_done;
    mbedtls_ssl_context ssl;
    char *tin;
    size_t tin_off, tin_len, tin_cap;
    char *tout; /* ciphertext to send */
    size_t tout_len, tout_cap;
};

struct write_req {
    uv_write_t req;
    struct conn *c;
    char data[];
};

static struct {
    uv_loop_t *loop;
    struct listener listeners[MAX_PORTS];
    int nlisteners;
    int status;
    const char *secret;
    unsigned char key_std[256]; /* the Standard Webhooks key */
    size_t key_std_len;
    unsigned verify_every;
    llhttp_settings_t settings;
    char read_buf[READ_SIZE];
    mbedtls_md_context_t md;

    bool tls;
    mbedtls_ssl_config conf;
    mbedtls_x509_crt cert;
    mbedtls_pk_context pkey;
    mbedtls_entropy_context entropy;
    mbedtls_ctr_drbg_context drbg;

    /* Counters. */
    uint64_t requests;   /* every request answered, /stats included */
    uint64_t deliveries; /* POSTs */
    uint64_t unique;     /* POSTs whose (port, seq) had not been seen */
    uint64_t dups;
    uint64_t no_stamp;
    uint64_t verified;
    uint64_t bad_signatures;
    uint64_t unsigned_deliveries;
    uint64_t connections;
    uint64_t tls_errors;
    uint64_t first_ns, last_ns;
    hist lat;
    char first_bad[512];
} rx;

static void conn_close(struct conn *c);

/* ---- signatures ------------------------------------------------------------ */

static int hmac_b64(const unsigned char *key, size_t key_len, const char *const parts[], const size_t lens[],
                    size_t nparts, char *out, size_t out_len)
{
    unsigned char mac[32];
    if (mbedtls_md_hmac_starts(&rx.md, key, key_len) != 0)
        return -1;
    for (size_t i = 0; i < nparts; i++)
        if (mbedtls_md_hmac_update(&rx.md, (const unsigned char *)parts[i], lens[i]) != 0)
            return -1;
    if (mbedtls_md_hmac_finish(&rx.md, mac) != 0)
        return -1;
    size_t olen = 0;
    if (mbedtls_base64_encode((unsigned char *)out, out_len, &olen, mac, sizeof(mac)) != 0)
        return -1;
    return (int)olen;
}

static void note_bad(struct conn *c, const char *what)
{
    rx.bad_signatures++;
    if (rx.first_bad[0] == '\0')
        snprintf(rx.first_bad, sizeof(rx.first_bad), "%s on port %d (webhook-id %.*s)", what, c->l->port,
                 (int)c->hval_len[H_WH_ID], c->hval[H_WH_ID]);
}

/* Checks both signatures of the delivery in c against the configured secret. */
static void verify(struct conn *c)
{
    if (c->hval_len[H_SO_SIG] == 0 && c->hval_len[H_WH_SIG] == 0) {
        rx.unsigned_deliveries++;
        return;
    }
    char expect[64];
    const char *parts[5];
    size_t lens[5];

    parts[0] = c->body;
    lens[0] = c->body_len;
    int n = hmac_b64((const unsigned char *)rx.secret, strlen(rx.secret), parts, lens, 1, expect, sizeof(expect));
    if (n < 0 || (size_t)n != c->hval_len[H_SO_SIG] || memcmp(expect, c->hval[H_SO_SIG], (size_t)n) != 0) {
        note_bad(c, "X-SuperOffice-Signature mismatch");
        return;
    }

    parts[0] = c->hval[H_WH_ID];
    lens[0] = c->hval_len[H_WH_ID];
    parts[1] = ".";
    lens[1] = 1;
    parts[2] = c->hval[H_WH_TS];
    lens[2] = c->hval_len[H_WH_TS];
    parts[3] = ".";
    lens[3] = 1;
    parts[4] = c->body;
    lens[4] = c->body_len;
    n = hmac_b64(rx.key_std, rx.key_std_len, parts, lens, 5, expect, sizeof(expect));
    if (n < 0) {
        note_bad(c, "HMAC failed");
        return;
    }
    /* The header holds space-separated "v1,<sig>" entries (two while a secret rotates). */
    const char *p = c->hval[H_WH_SIG], *end = p + c->hval_len[H_WH_SIG];
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *tok_end = sp ? sp : end;
        size_t tl = (size_t)(tok_end - p);
        if (tl == (size_t)n + 3 && memcmp(p, "v1,", 3) == 0 && memcmp(p + 3, expect, (size_t)n) == 0) {
            rx.verified++;
            return;
        }
        p = tok_end + 1;
    }
    note_bad(c, "webhook-signature mismatch");
}

/* ---- counting ---------------------------------------------------------------- */

static bool find_u64(const char *body, size_t len, const char *key, uint64_t *out)
{
    const char *p = memmem(body, len, key, strlen(key));
    if (p == NULL)
        return false;
    p += strlen(key);
    const char *end = body + len;
    uint64_t v = 0;
    bool any = false;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        any = true;
    }
    *out = v;
    return any;
}

static bool mark_seen(struct listener *l, uint64_t seq)
{
    if (seq >= MAX_SEQ_TRACKED)
        return true;
    size_t byte = (size_t)(seq >> 3);
    if (byte >= l->seen_bytes) {
        size_t n = l->seen_bytes ? l->seen_bytes : 4096;
        while (n <= byte)
            n *= 2;
        uint8_t *p = realloc(l->seen, n);
        if (p == NULL)
            return true;
        memset(p + l->seen_bytes, 0, n - l->seen_bytes);
        l->seen = p;
        l->seen_bytes = n;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (l->seen[byte] & bit)
        return false;
    l->seen[byte] |= bit;
    return true;
}

static void count_delivery(struct conn *c)
{
    uint64_t now = uv_hrtime();
    rx.deliveries++;
    if (rx.first_ns == 0)
        rx.first_ns = now;
    rx.last_ns = now;
    uint64_t t, seq;
    if (find_u64(c->body, c->body_len, STAMP_KEY, &t)) {
        if (t <= now)
            hist_add(&rx.lat, now - t);
    } else {
        rx.no_stamp++;
    }
    if (find_u64(c->body, c->body_len, SEQ_KEY, &seq)) {
        if (mark_seen(c->l, seq))
            rx.unique++;
        else
            rx.dups++;
    } else {
        rx.unique++;
    }
    if (rx.secret != NULL && rx.verify_every > 0 && (rx.deliveries - 1) % rx.verify_every == 0)
        verify(c);
}

static uint64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static int format_stats(char *buf, size_t len)
{
    char lat[512];
    hist_format_json_ms(&rx.lat, lat, sizeof(lat));
    char bad[600];
    size_t j = 0;
    for (const char *p = rx.first_bad; *p && j + 2 < sizeof(bad); p++) {
        if (*p == '"' || *p == '\\')
            bad[j++] = '\\';
        bad[j++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
    }
    bad[j] = '\0';
    return snprintf(buf, len,
                    "{\"deliveries\":%llu,\"unique\":%llu,\"duplicates\":%llu,\"no_stamp\":%llu,"
                    "\"verified\":%llu,\"bad_signatures\":%llu,\"unsigned\":%llu,\"connections\":%llu,"
                    "\"tls_errors\":%llu,\"first_ns\":%llu,\"last_ns\":%llu,\"now_ns\":%llu,\"cpu_ms\":%llu,"
                    "\"first_bad\":\"%s\",\"latency_ms\":%s}",
                    (unsigned long long)rx.deliveries, (unsigned long long)rx.unique, (unsigned long long)rx.dups,
                    (unsigned long long)rx.no_stamp, (unsigned long long)rx.verified,
                    (unsigned long long)rx.bad_signatures, (unsigned long long)rx.unsigned_deliveries,
                    (unsigned long long)rx.connections, (unsigned long long)rx.tls_errors,
                    (unsigned long long)rx.first_ns, (unsigned long long)rx.last_ns, (unsigned long long)uv_hrtime(),
                    (unsigned long long)cpu_ms(), bad, lat);
}

/* ---- output ------------------------------------------------------------------ */

static void out_append(char **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t nc = *cap ? *cap : 4096;
        while (nc < *len + n)
            nc *= 2;
        char *p = realloc(*buf, nc);
        if (p == NULL) {
            fprintf(stderr, "receiver: out of memory\n");
            exit(1);
        }
        *buf = p;
        *cap = nc;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void after_write(uv_write_t *req, int status)
{
    struct write_req *w = container_of(req, struct write_req, req);
    struct conn *c = w->c;
    free(w);
    c->nwrites--;
    if (status != 0 || (c->close_after && c->nwrites == 0))
        conn_close(c);
}

static void raw_write(struct conn *c, const char *data, size_t len)
{
    if (len == 0 || c->closing)
        return;
    /* A direct write first; only what the socket does not take is queued. */
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)len) {
        if (c->close_after && c->nwrites == 0)
            conn_close(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (n > 0) {
        data += n;
        len -= (size_t)n;
    }
    struct write_req *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    memcpy(w->data, data, len);
    w->c = c;
    b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, after_write) != 0) {
        free(w);
        conn_close(c);
        return;
    }
    c->nwrites++;
}

/* Sends the responses gathered while handling the last read. */
static void flush(struct conn *c)
{
    if (c->tls) {
        /* Handshake records mbedTLS produced, then the encrypted responses. */
        size_t off = 0;
        while (off < c->out_len) {
            int n = mbedtls_ssl_write(&c->ssl, (const unsigned char *)c->out + off, c->out_len - off);
            if (n < 0) {
                rx.tls_errors++;
                c->out_len = 0;
                conn_close(c);
                return;
            }
            off += (size_t)n;
        }
        c->out_len = 0;
        raw_write(c, c->tout, c->tout_len);
        c->tout_len = 0;
        return;
    }
    if (c->out_len == 0)
        return;
    raw_write(c, c->out, c->out_len);
    c->out_len = 0;
}

/* ---- llhttp callbacks -------------------------------------------------------- */

static int on_message_begin(llhttp_t *p)
{
    struct conn *c = p->data;
    c->url_len = 0;
    c->hname_len = 0;
    c->slot = H_NONE;
    memset(c->hval_len, 0, sizeof(c->hval_len));
    c->body_len = 0;
    c->too_big = false;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    size_t room = sizeof(c->url) - 1 - c->url_len;
    if (len > room)
        len = room;
    memcpy(c->url + c->url_len, at, len);
    c->url_len += len;
    c->url[c->url_len] = '\0';
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    size_t room = sizeof(c->hname) - c->hname_len;
    if (len > room)
        len = room;
    memcpy(c->hname + c->hname_len, at, len);
    c->hname_len += len;
    return 0;
}

static bool name_is(const struct conn *c, const char *name)
{
    return c->hname_len == strlen(name) && strncasecmp(c->hname, name, c->hname_len) == 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    if (name_is(c, "webhook-id"))
        c->slot = H_WH_ID;
    else if (name_is(c, "webhook-timestamp"))
        c->slot = H_WH_TS;
    else if (name_is(c, "webhook-signature"))
        c->slot = H_WH_SIG;
    else if (name_is(c, "x-superoffice-signature"))
        c->slot = H_SO_SIG;
    else
        c->slot = H_NONE;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->slot == H_NONE)
        return 0;
    size_t room = HDR_VALUE_MAX - c->hval_len[c->slot];
    if (len > room)
        len = room;
    memcpy(c->hval[c->slot] + c->hval_len[c->slot], at, len);
    c->hval_len[c->slot] += len;
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    c->hname_len = 0;
    c->slot = H_NONE;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    if (c->body_len + len > MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    out_append(&c->body, &c->body_len, &c->body_cap, at, len);
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct conn *c = p->data;
    char head[256];
    int hl;
    bool keep = llhttp_should_keep_alive(p) && !c->too_big;
    rx.requests++;
    if (p->method == HTTP_GET && strncmp(c->url, "/stats", 6) == 0) {
        char body[2048];
        int bl = format_stats(body, sizeof(body));
        hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n", bl,
                      keep ? "" : "Connection: close\r\n");
        out_append(&c->out, &c->out_len, &c->out_cap, head, (size_t)hl);
        out_append(&c->out, &c->out_len, &c->out_cap, body, (size_t)bl);
    } else {
        if (p->method == HTTP_POST && !c->too_big)
            count_delivery(c);
        int status = c->too_big ? 413 : rx.status;
        const char *reason = status == 204 ? "No Content" : status == 200 ? "OK" : "Content Too Large";
        hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n%s%s\r\n", status, reason,
                      status == 204 ? "" : "Content-Length: 0\r\n", keep ? "" : "Connection: close\r\n");
        out_append(&c->out, &c->out_len, &c->out_cap, head, (size_t)hl);
    }
    if (!keep) {
        c->close_after = true;
        return HPE_PAUSED; /* ignore anything after a request that ends the connection */
    }
    return 0;
}

/* ---- connections ------------------------------------------------------------- */

static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    out_append(&c->tout, &c->tout_len, &c->tout_cap, buf, len);
    return (int)len;
}

static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
    struct conn *c = ctx;
    size_t avail = c->tin_len - c->tin_off;
    if (avail == 0)
        return MBEDTLS_ERR_SSL_WANT_READ;
    if (len > avail)
        len = avail;
    memcpy(buf, c->tin + c->tin_off, len);
    c->tin_off += len;
    return (int)len;
}

static void on_closed(uv_handle_t *h)
{
    struct conn *c = container_of((uv_tcp_t *)h, struct conn, tcp);
    if (c->tls)
        mbedtls_ssl_free(&c->ssl);
    free(c->body);
    free(c->out);
    free(c->tin);
    free(c->tout);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(rx.read_buf, sizeof(rx.read_buf));
}

/* Feeds plaintext to the parser; returns false when the connection must close. */
static bool parse(struct conn *c, const char *data, size_t len)
{
    if (c->close_after)
        return true;
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err == HPE_OK || (err == HPE_PAUSED && c->close_after))
        return true;
    return false;
}

static bool tls_input(struct conn *c, const char *data, size_t len)
{
    if (c->tin_off > 0 && c->tin_off == c->tin_len)
        c->tin_off = c->tin_len = 0;
    out_append(&c->tin, &c->tin_len, &c->tin_cap, data, len);
    if (!c->handshake_done) {
        int rc = mbedtls_ssl_handshake(&c->ssl);
        if (rc == 0) {
            c->handshake_done = true;
        } else if (rc != MBEDTLS_ERR_SSL_WANT_READ && rc != MBEDTLS_ERR_SSL_WANT_WRITE) {
            rx.tls_errors++;
            return false;
        }
    }
    if (c->handshake_done) {
        static unsigned char plain[READ_SIZE];
        for (;;) {
            int n = mbedtls_ssl_read(&c->ssl, plain, sizeof(plain));
            if (n > 0) {
                if (!parse(c, (const char *)plain, (size_t)n))
                    return false;
                continue;
            }
            if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE)
                break;
            if (n != 0 && n != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY)
                rx.tls_errors++;
            return false;
        }
    }
    /* Compact what mbedTLS has consumed. */
    if (c->tin_off > 0) {
        memmove(c->tin, c->tin + c->tin_off, c->tin_len - c->tin_off);
        c->tin_len -= c->tin_off;
        c->tin_off = 0;
    }
    return true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = container_of((uv_tcp_t *)s, struct conn, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    bool ok = c->tls ? tls_input(c, buf->base, (size_t)nread) : parse(c, buf->base, (size_t)nread);
    flush(c);
    if (!ok)
        conn_close(c);
    else if (c->close_after)
        uv_read_stop(s);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    struct listener *l = container_of((uv_tcp_t *)server, struct listener, tcp);
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->l = l;
    uv_tcp_init(rx.loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    rx.connections++;
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &rx.settings);
    c->parser.data = c;
    if (rx.tls) {
        c->tls = true;
        mbedtls_ssl_init(&c->ssl);
        if (mbedtls_ssl_setup(&c->ssl, &rx.conf) != 0) {
            rx.tls_errors++;
            conn_close(c);
            return;
        }
        mbedtls_ssl_set_bio(&c->ssl, c, bio_send, bio_recv, NULL);
    }
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* ---- setup ------------------------------------------------------------------- */

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    char buf[2048];
    format_stats(buf, sizeof(buf));
    printf("%s\n", buf);
    fflush(stdout);
    uv_stop(s->loop);
}

static int tls_setup(const char *cert, const char *key)
{
    char err[200];
    int rc;
    mbedtls_ssl_config_init(&rx.conf);
    mbedtls_x509_crt_init(&rx.cert);
    mbedtls_pk_init(&rx.pkey);
    mbedtls_entropy_init(&rx.entropy);
    mbedtls_ctr_drbg_init(&rx.drbg);
    if ((rc = mbedtls_ctr_drbg_seed(&rx.drbg, mbedtls_entropy_func, &rx.entropy, (const unsigned char *)"rx", 2)) != 0)
        goto fail;
    if ((rc = mbedtls_x509_crt_parse_file(&rx.cert, cert)) != 0)
        goto fail;
    if ((rc = mbedtls_pk_parse_keyfile(&rx.pkey, key, NULL)) != 0)
        goto fail;
    if ((rc = mbedtls_ssl_config_defaults(&rx.conf, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_STREAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT)) != 0)
        goto fail;
    mbedtls_ssl_conf_rng(&rx.conf, mbedtls_ctr_drbg_random, &rx.drbg);
    if ((rc = mbedtls_ssl_conf_own_cert(&rx.conf, &rx.cert, &rx.pkey)) != 0)
        goto fail;
    rx.tls = true;
    return 0;
fail:
    mbedtls_strerror(rc, err, sizeof(err));
    fprintf(stderr, "receiver: TLS setup: %s\n", err);
    return -1;
}

static int key_setup(const char *secret)
{
    const mbedtls_md_info_t *info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
    mbedtls_md_init(&rx.md);
    if (mbedtls_md_setup(&rx.md, info, 1) != 0)
        return -1;
    rx.secret = secret;
    if (strncmp(secret, "whsec_", 6) == 0) {
        size_t olen = 0;
        if (mbedtls_base64_decode(rx.key_std, sizeof(rx.key_std), &olen, (const unsigned char *)secret + 6,
                                  strlen(secret + 6)) != 0) {
            fprintf(stderr, "receiver: the part of --secret after whsec_ is not base64\n");
            return -1;
        }
        rx.key_std_len = olen;
    } else {
        size_t n = strlen(secret);
        if (n > sizeof(rx.key_std)) {
            fprintf(stderr, "receiver: --secret is longer than %zu bytes\n", sizeof(rx.key_std));
            return -1;
        }
        memcpy(rx.key_std, secret, n);
        rx.key_std_len = n;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: receiver [options]\n"
               "  --host ADDR          address to listen on (127.0.0.1)\n"
               "  --port N             first port; 0 picks free ports (0)\n"
               "  --nports N           ports to listen on, one per subscriber (1)\n"
               "  --ports-file FILE    write the ports listened on there, one per line\n"
               "  --status N           200 or 204 (204)\n"
               "  --secret S           webhook secret; enables signature checks\n"
               "  --verify-every N     check the signatures of one delivery in N (64)\n"
               "  --tls-cert FILE      serve HTTPS with this certificate (PEM) ...\n"
               "  --tls-key FILE       ... and key\n"
               "GET /stats answers the counters as JSON; SIGINT/SIGTERM prints them and exits.\n");
}

static long parse_num(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "receiver: %s must be a number in %ld..%ld\n", opt, min, max);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *ports_file = NULL, *cert = NULL, *key = NULL, *secret = NULL;
    long port = 0, nports = 1;
    rx.status = 204;
    rx.verify_every = 64;
    static const struct option opts[] = {{"host", required_argument, NULL, 'h'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"nports", required_argument, NULL, 'n'},
                                         {"ports-file", required_argument, NULL, 'f'},
                                         {"status", required_argument, NULL, 's'},
                                         {"secret", required_argument, NULL, 'S'},
                                         {"verify-every", required_argument, NULL, 'v'},
                                         {"tls-cert", required_argument, NULL, 'c'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"help", no_argument, NULL, 'H'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = parse_num("--port", optarg, 0, 65535); break;
        case 'n': nports = parse_num("--nports", optarg, 1, MAX_PORTS); break;
        case 'f': ports_file = optarg; break;
        case 's': rx.status = (int)parse_num("--status", optarg, 200, 204); break;
        case 'S': secret = optarg; break;
        case 'v': rx.verify_every = (unsigned)parse_num("--verify-every", optarg, 0, INT_MAX); break;
        case 'c': cert = optarg; break;
        case 'k': key = optarg; break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (rx.status != 200 && rx.status != 204) {
        fprintf(stderr, "receiver: --status must be 200 or 204\n");
        return 2;
    }
    if ((cert == NULL) != (key == NULL)) {
        fprintf(stderr, "receiver: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (port != 0 && port + nports - 1 > 65535) {
        fprintf(stderr, "receiver: ports past 65535\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (cert != NULL && tls_setup(cert, key) != 0)
        return 1;
    if (secret != NULL && key_setup(secret) != 0)
        return 1;

    rx.loop = uv_default_loop();
    llhttp_settings_init(&rx.settings);
    rx.settings.on_message_begin = on_message_begin;
    rx.settings.on_url = on_url;
    rx.settings.on_header_field = on_header_field;
    rx.settings.on_header_field_complete = on_header_field_complete;
    rx.settings.on_header_value = on_header_value;
    rx.settings.on_header_value_complete = on_header_value_complete;
    rx.settings.on_body = on_body;
    rx.settings.on_message_complete = on_message_complete;

    FILE *pf = NULL;
    if (ports_file != NULL && (pf = fopen(ports_file, "w")) == NULL) {
        fprintf(stderr, "receiver: %s: %s\n", ports_file, strerror(errno));
        return 1;
    }
    for (long i = 0; i < nports; i++) {
        struct listener *l = &rx.listeners[i];
        struct sockaddr_in addr;
        int rc = uv_ip4_addr(host, port ? (int)(port + i) : 0, &addr);
        if (rc == 0)
            rc = uv_tcp_init(rx.loop, &l->tcp);
        if (rc == 0)
            rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&l->tcp, 4096, on_connection);
        if (rc != 0) {
            fprintf(stderr, "receiver: listen on %s:%ld: %s\n", host, port ? port + i : 0, uv_strerror(rc));
            return 1;
        }
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len);
        l->index = (int)i;
        l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        rx.nlisteners++;
        if (pf != NULL)
            fprintf(pf, "%d\n", l->port);
    }
    if (pf != NULL && fclose(pf) != 0) {
        fprintf(stderr, "receiver: %s: %s\n", ports_file, strerror(errno));
        return 1;
    }
    fprintf(stderr, "receiver: listening on %s:%d (%d port%s, %s)\n", host, rx.listeners[0].port, rx.nlisteners,
            rx.nlisteners == 1 ? "" : "s", rx.tls ? "https" : "http");

    uv_signal_t sig_int, sig_term;
    uv_signal_init(rx.loop, &sig_int);
    uv_signal_init(rx.loop, &sig_term);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_run(rx.loop, UV_RUN_DEFAULT);
    /* Stopped by a signal: the process ends here, the kernel closes the sockets. */
    return 0;
}
