/*
 * test_http_client.c: hk_client against real local servers.
 *
 * Starts `python3 tests/e2e/receiver.py --suite` (plain HTTP on 127.0.0.1
 * and ::1, HTTPS with a test CA, HTTPS with a certificate for another name,
 * HTTPS that requires a client certificate) and drives the client on a real
 * libuv loop: bodies, keep-alive, chunked and close-delimited responses,
 * truncation, redirects not followed, TLS verification and resumption,
 * mutual TLS, the three timeouts, refused connections, the SSRF guard and
 * cancellation on close.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "http_client.h"
#include "log.h"
#include "tls.h"
#include "unit.h"

#define ALLOW "127.0.0.1/32,::1/128"

static uv_loop_t loop;

static struct {
    int http, http6, https, https6, wrong, mtls;
    char ca[PATH_MAX], wrong_ca[PATH_MAX], client_cert[PATH_MAX], client_key[PATH_MAX], server_cert[PATH_MAX];
} rx;
static pid_t rx_pid = -1;
static int rx_stdin = -1;

/* ---- the receiver process ------------------------------------------------------------ */

static void source_dir(char *out, size_t len)
{
    const char *env = getenv("HOOKD_SOURCE_DIR");
    if (env != NULL && *env != '\0') {
        snprintf(out, len, "%s", env);
        return;
    }
    /* This file is tests/unit/test_http_client.c under the source directory. */
    snprintf(out, len, "%s", __FILE__);
    for (int i = 0; i < 3; i++) {
        char *slash = strrchr(out, '/');
        if (slash == NULL) {
            snprintf(out, len, ".");
            return;
        }
        *slash = '\0';
    }
}

static bool field(const char *line, const char *name, char *out, size_t len)
{
    char key[32];
    snprintf(key, sizeof(key), " %s=", name);
    const char *p = strstr(line, key);
    if (p == NULL)
        return false;
    p += strlen(key);
    size_t n = strcspn(p, " \n");
    if (n >= len)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static int start_receiver(void)
{
    char dir[PATH_MAX], script[PATH_MAX + 32];
    source_dir(dir, sizeof(dir));
    snprintf(script, sizeof(script), "%s/tests/e2e/receiver.py", dir);
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0)
        return -1;
    rx_pid = fork();
    if (rx_pid < 0)
        return -1;
    if (rx_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        setenv("PYTHONDONTWRITEBYTECODE", "1", 1);
        execlp("python3", "python3", script, "--suite", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    /* The receiver exits when this end closes, even if the test dies. */
    rx_stdin = in[1];
    FILE *f = fdopen(out[0], "r");
    char line[8192];
    if (f == NULL || fgets(line, sizeof(line), f) == NULL || strncmp(line, "READY", 5) != 0) {
        fprintf(stderr, "receiver did not start (%s)\n", script);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    char num[16];
    const char *names[] = {"http", "http6", "https", "https6", "wrong", "mtls"};
    int *ports[] = {&rx.http, &rx.http6, &rx.https, &rx.https6, &rx.wrong, &rx.mtls};
    for (int i = 0; i < 6; i++) {
        if (!field(line, names[i], num, sizeof(num)))
            return -1;
        *ports[i] = atoi(num);
    }
    if (!field(line, "ca", rx.ca, sizeof(rx.ca)) || !field(line, "wrong_ca", rx.wrong_ca, sizeof(rx.wrong_ca)) ||
        !field(line, "client_cert", rx.client_cert, sizeof(rx.client_cert)) ||
        !field(line, "client_key", rx.client_key, sizeof(rx.client_key)) ||
        !field(line, "server_cert", rx.server_cert, sizeof(rx.server_cert)))
        return -1;
    return 0;
}

static void stop_receiver(void)
{
    if (rx_pid <= 0)
        return;
    /* Closing its stdin asks it to stop and clean up its certificates; a
     * signal follows only if it does not. */
    close(rx_stdin);
    int st;
    for (int i = 0; i < 100; i++) {
        if (waitpid(rx_pid, &st, WNOHANG) == rx_pid)
            return;
        uv_sleep(50);
    }
    kill(rx_pid, SIGTERM);
    waitpid(rx_pid, &st, 0);
}

/* ---- driving the client ---------------------------------------------------------------- */

struct outcome {
    bool done;
    int error;
    char error_text[700];
    int status;
    char status_line[300];
    char *headers;
    char *body;
    size_t body_len;
    bool truncated, reused, resumed;
    char *request_head;
    uint64_t duration_ms;
    char location[128];
    char refused_addr[64], refused_rule[128];
};

static void outcome_free(struct outcome *o)
{
    free(o->headers);
    free(o->body);
    free(o->request_head);
    memset(o, 0, sizeof(*o));
}

static void on_result(const hk_client_result *res, void *arg)
{
    struct outcome *o = arg;
    o->done = true;
    o->error = res->error;
    snprintf(o->error_text, sizeof(o->error_text), "%s", res->error_text);
    o->status = res->status;
    snprintf(o->status_line, sizeof(o->status_line), "%s", res->status_line);
    o->headers = hk_strndup(res->headers, res->headers_len);
    o->body = hk_strndup(res->body, res->body_len);
    o->body_len = res->body_len;
    o->truncated = res->body_truncated;
    o->reused = res->reused;
    o->resumed = res->tls_resumed;
    o->request_head = hk_strdup(res->request_head);
    o->duration_ms = res->duration_ms;
    snprintf(o->refused_addr, sizeof(o->refused_addr), "%s", res->refused_addr);
    snprintf(o->refused_rule, sizeof(o->refused_rule), "%s", res->refused_rule);
    if (hk_client_header(res, "location", o->location, sizeof(o->location)) != 0)
        o->location[0] = '\0';
}

static void wait_done(struct outcome *o)
{
    while (!o->done)
        uv_run(&loop, UV_RUN_ONCE);
}

/* Sends one request and runs the loop until its callback. */
static void fetch(hk_client *c, const hk_client_request *req, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    int rc = hk_client_send(c, req, on_result, o);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        o->done = true;
        o->error = rc;
        return;
    }
    CHECK(!o->done); /* never from within hk_client_send */
    wait_done(o);
}

static void post(hk_client *c, const char *url, const char *body, struct outcome *o)
{
    hk_client_request req = {.url = url, .body = body, .body_len = body ? strlen(body) : 0};
    fetch(c, &req, o);
}

static hk_client_opts base_opts(void)
{
    hk_client_opts o = {
        .connect_timeout_ms = 5000,
        .first_byte_timeout_ms = 5000,
        .total_timeout_ms = 10000,
        .max_response_bytes = 65536,
        .ca_file = rx.ca,
        .allow_targets = ALLOW,
        .max_idle_per_origin = 4,
        .idle_timeout_ms = 10000,
        .user_agent = "hookd-test/1",
    };
    return o;
}

static hk_client *make_client(const hk_client_opts *o)
{
    hk_client *c = NULL;
    int rc = hk_client_create(&c, &loop, o);
    CHECK_INT(rc, 0);
    if (rc != 0) {
        fprintf(stderr, "cannot create a client\n");
        exit(1);
    }
    return c;
}

static void on_tick(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void close_client(hk_client *c)
{
    bool closed = false;
    hk_client_close(c, on_closed, &closed);
    CHECK(!closed); /* always from the loop */
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

static char *url(char *buf, size_t len, const char *scheme, const char *host, int port, const char *path)
{
    snprintf(buf, len, "%s://%s:%d%s", scheme, host, port, path);
    return buf;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_plain(void)
{
    hk_client_opts opts = base_opts();
    hk_client *c = make_client(&opts);
    char u[256], want[128];
    struct outcome o;

    /* POST with a body, extra headers, the echo coming back. */
    hk_client_request req = {.url = url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo?x=1"),
                             .headers = "Content-Type: text/plain\r\nX-Hook: yes\r\n",
                             .body = "hello hookd",
                             .body_len = 11};
    fetch(c, &req, &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 200);
    CHECK_STR(o.status_line, "HTTP/1.1 200 OK");
    CHECK_STR(o.body, "hello hookd");
    CHECK(!o.truncated);
    CHECK(!o.reused);
    CHECK(strstr(o.request_head, "POST /echo?x=1 HTTP/1.1\r\n") == o.request_head);
    snprintf(want, sizeof(want), "\r\nHost: 127.0.0.1:%d\r\n", rx.http);
    CHECK(strstr(o.request_head, want) != NULL);
    CHECK(strstr(o.request_head, "\r\nContent-Length: 11\r\n") != NULL);
    CHECK(strstr(o.request_head, "\r\nUser-Agent: hookd-test/1\r\n") != NULL);
    CHECK(strstr(o.request_head, "\r\nConnection: keep-alive\r\n") != NULL);
    CHECK(strstr(o.request_head, "\r\nX-Hook: yes\r\n\r\n") != NULL);
    CHECK(strstr(o.headers, "Content-Type: text/plain\r\n") != NULL);
    CHECK(strstr(o.headers, "Content-Length: 11\r\n") != NULL);
    outcome_free(&o);

    /* Keep-alive: the next request rides the same connection. */
    char id1[32] = "", id2[32] = "";
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/inspect"), "", &o);
    CHECK_INT(o.status, 200);
    CHECK(o.reused);
    const char *p = strstr(o.body, "\"conn_id\": ");
    if (p)
        snprintf(id1, sizeof(id1), "%.*s", (int)strcspn(p + 11, ",}"), p + 11);
    outcome_free(&o);
    hk_client_request get = {.method = "GET", .url = u};
    fetch(c, &get, &o);
    CHECK(o.reused);
    CHECK(strstr(o.request_head, "GET /inspect HTTP/1.1\r\n") == o.request_head);
    CHECK(strstr(o.body, "\"method\": \"GET\"") != NULL);
    p = strstr(o.body, "\"conn_id\": ");
    if (p)
        snprintf(id2, sizeof(id2), "%.*s", (int)strcspn(p + 11, ",}"), p + 11);
    CHECK(id1[0] != '\0');
    CHECK_STR(id1, id2);
    outcome_free(&o);

    /* Chunked response. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/chunked"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "chunk-one,chunk-two,chunk-three");
    CHECK(strstr(o.headers, "Transfer-Encoding: chunked\r\n") != NULL);
    CHECK(o.reused);
    outcome_free(&o);

    /* 3xx is reported as is, never followed. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/status/302"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 302);
    CHECK_STR(o.status_line, "HTTP/1.1 302 Found");
    CHECK_STR(o.location, "/echo");
    CHECK_STR(o.body, "status 302");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/status/410"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 410);
    outcome_free(&o);

    /* Connection: close from the server: the next request needs a new connection. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/close"), "x", &o);
    CHECK_INT(o.status, 200);
    CHECK_STR(o.body, "closing");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/close-delimited"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK(!o.reused);
    CHECK_STR(o.body, "until the end");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "again", &o);
    CHECK(!o.reused);
    CHECK_STR(o.body, "again");
    outcome_free(&o);

    /* A pooled connection the server dropped is retried once on a fresh one. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/drop-next"), "x", &o);
    CHECK_INT(o.status, 200);
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "after drop", &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 200);
    CHECK(!o.reused);
    CHECK_STR(o.body, "after drop");
    outcome_free(&o);

    /* localhost resolves through uv_getaddrinfo. */
    post(c, url(u, sizeof(u), "http", "localhost", rx.http, "/echo"), "by name", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "by name");
    outcome_free(&o);

    if (rx.http6 > 0) {
        post(c, url(u, sizeof(u), "http", "[::1]", rx.http6, "/echo"), "over v6", &o);
        CHECK_INT(o.error, 0);
        CHECK_STR(o.body, "over v6");
        snprintf(want, sizeof(want), "\r\nHost: [::1]:%d\r\n", rx.http6);
        CHECK(strstr(o.request_head, want) != NULL);
        outcome_free(&o);
    }

    /* Several at once, on one loop. */
    struct outcome many[6];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < 6; i++) {
        hk_client_request r = {
            .url = url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/delay/100"), .body = "m", .body_len = 1};
        CHECK_INT(hk_client_send(c, &r, on_result, &many[i]), 0);
    }
    CHECK_INT(hk_client_active(c), 6);
    for (int i = 0; i < 6; i++) {
        wait_done(&many[i]);
        CHECK_INT(many[i].status, 200);
        CHECK_STR(many[i].body, "late");
        outcome_free(&many[i]);
    }
    CHECK_INT(hk_client_active(c), 0);
    close_client(c);
}

/* A body the caller keeps: the client counts its holders instead of copying it. */
struct kept_body {
    int refs, max_refs;
    char *data;
};

static void kept_ref(void *owner, int delta)
{
    struct kept_body *k = owner;
    k->refs += delta;
    if (k->refs > k->max_refs)
        k->max_refs = k->refs;
}

/* Bodies sent from where they are, over http and https: a small one echoed
 * byte for byte, and one larger than a socket takes at once (so that a
 * write is queued and holds the body past the call), counted at the other
 * end; every reference taken is given back. */
static void test_kept_body(void)
{
    hk_client_opts opts = base_opts();
    hk_client *c = make_client(&opts);
    char u[256];
    struct outcome o;
    const char *schemes[] = {"http", "https"};
    int ports[] = {rx.http, rx.https};
    size_t big = 16u << 20;
    struct kept_body k = {.data = hk_malloc(big)};
    for (size_t i = 0; i < big; i++)
        k.data[i] = (char)('a' + i % 26);
    for (int s = 0; s < 2; s++) {
        hk_client_request req = {.url = url(u, sizeof(u), schemes[s], "127.0.0.1", ports[s], "/echo"),
                                 .body = k.data + 3,
                                 .body_len = 1000,
                                 .body_ref = kept_ref,
                                 .body_owner = &k};
        fetch(c, &req, &o);
        CHECK_INT(o.status, 200);
        CHECK(o.body_len == 1000 && memcmp(o.body, k.data + 3, 1000) == 0);
        CHECK(strstr(o.request_head, "\r\nContent-Length: 1000\r\n") != NULL);
        outcome_free(&o);
        req.url = url(u, sizeof(u), schemes[s], "127.0.0.1", ports[s], "/inspect");
        req.body = k.data;
        req.body_len = big;
        fetch(c, &req, &o);
        CHECK_INT(o.status, 200);
        char want[64];
        snprintf(want, sizeof(want), "\"body_len\": %zu", big);
        CHECK(o.body != NULL && strstr(o.body, want) != NULL);
        outcome_free(&o);
    }
    close_client(c);
    CHECK_INT(k.refs, 0);
    CHECK(k.max_refs >= 2); /* the request and a write queued with the body */
    free(k.data);
}

static void test_protocol(void)
{
    hk_client_opts opts = base_opts();
    opts.max_idle_per_origin = 1;
    opts.idle_timeout_ms = 200;
    hk_client *c = make_client(&opts);
    char u[256];
    struct outcome o;

    /* HEAD: headers with a length, no body follows, the connection stays usable. */
    hk_client_request head = {.method = "HEAD", .url = url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/big/500")};
    fetch(c, &head, &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 200);
    CHECK_INT(o.body_len, 0);
    CHECK(strstr(o.headers, "Content-Length: 500\r\n") != NULL);
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "after head", &o);
    CHECK(o.reused);
    CHECK_STR(o.body, "after head");
    outcome_free(&o);

    /* An idle connection is closed after idle_timeout. */
    uv_sleep(10);
    uv_update_time(&loop);
    {
        static uv_timer_t t; /* closed asynchronously: must outlive the scope */
        bool ticked = false;
        uv_timer_init(&loop, &t);
        t.data = &ticked;
        uv_timer_start(&t, on_tick, 400, 0);
        while (!ticked)
            uv_run(&loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
    }
    post(c, u, "later", &o);
    CHECK(!o.reused);
    CHECK_STR(o.body, "later");
    outcome_free(&o);

    /* max_idle_per_origin: of two connections only one is kept. */
    struct outcome a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    hk_client_request slow = {.url = url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/delay/100")};
    CHECK_INT(hk_client_send(c, &slow, on_result, &a), 0);
    CHECK_INT(hk_client_send(c, &slow, on_result, &b), 0);
    wait_done(&a);
    wait_done(&b);
    CHECK(a.reused != b.reused); /* one took the pooled connection, one opened a new one */
    outcome_free(&a);
    outcome_free(&b);
    CHECK_INT(hk_client_send(c, &slow, on_result, &a), 0);
    CHECK_INT(hk_client_send(c, &slow, on_result, &b), 0);
    wait_done(&a);
    wait_done(&b);
    CHECK(a.reused != b.reused);
    outcome_free(&a);
    outcome_free(&b);

    /* Interim 1xx responses are skipped. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/continue"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 201);
    CHECK_STR(o.status_line, "HTTP/1.1 201 Created");
    CHECK_STR(o.body, "after");
    CHECK(strstr(o.headers, "Continue") == NULL);
    outcome_free(&o);

    /* A response that is not HTTP. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/garbage"), "x", &o);
    CHECK_INT(o.error, HK_EPROTO);
    CHECK(strncmp(o.error_text, "invalid response: ", 18) == 0);
    outcome_free(&o);

    /* A header block over the limit. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/header-bytes/70000"), "x", &o);
    CHECK_INT(o.error, HK_ETOOBIG);
    CHECK_STR(o.error_text, "response header block too large");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/header-bytes/30000"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "big head");
    outcome_free(&o);
    close_client(c);
}

static void test_truncation(void)
{
    hk_client_opts opts = base_opts();
    opts.max_response_bytes = 1000;
    hk_client *c = make_client(&opts);
    char u[256];
    struct outcome o;
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/big/100000"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_INT(o.status, 200);
    CHECK_INT(o.body_len, 1000);
    CHECK(o.truncated);
    CHECK(o.body[0] == 'x' && o.body[999] == 'x');
    outcome_free(&o);
    /* The rest was read and dropped, so the connection is still in step. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/big-chunked/5000"), "x", &o);
    CHECK(o.reused);
    CHECK_INT(o.body_len, 1000);
    CHECK(o.truncated);
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "small", &o);
    CHECK(o.reused);
    CHECK(!o.truncated);
    CHECK_STR(o.body, "small");
    outcome_free(&o);
    close_client(c);
}

static void test_ip_san(void)
{
    mbedtls_x509_crt server, wrong;
    mbedtls_x509_crt_init(&server);
    mbedtls_x509_crt_init(&wrong);
    CHECK_INT(mbedtls_x509_crt_parse_file(&server, rx.server_cert), 0);
    CHECK_INT(mbedtls_x509_crt_parse_file(&wrong, rx.wrong_ca), 0);
    CHECK(hk_tls_cert_has_ip(&server, "127.0.0.1"));
    CHECK(hk_tls_cert_has_ip(&server, "::1"));
    CHECK(hk_tls_cert_has_ip(&server, "0:0:0:0:0:0:0:1"));
    CHECK(!hk_tls_cert_has_ip(&server, "127.0.0.2"));
    CHECK(!hk_tls_cert_has_ip(&server, "::2"));
    CHECK(!hk_tls_cert_has_ip(&server, "::ffff:127.0.0.1")); /* 16 bytes never equal a 4-byte entry */
    CHECK(!hk_tls_cert_has_ip(&server, "localhost"));
    CHECK(!hk_tls_cert_has_ip(&wrong, "127.0.0.1"));
    mbedtls_x509_crt_free(&server);
    mbedtls_x509_crt_free(&wrong);
}

static void test_tls(void)
{
    hk_client_opts opts = base_opts();
    opts.max_idle_per_origin = 0; /* every request on a new connection: resumption is visible */
    hk_client *c = make_client(&opts);
    char u[256];
    struct outcome o;

    post(c, url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"), "secret", &o);
    CHECK_INT(o.error, 0);
    if (o.error)
        fprintf(stderr, "https: %s\n", o.error_text);
    CHECK_INT(o.status, 200);
    CHECK_STR(o.body, "secret");
    CHECK(!o.resumed);
    outcome_free(&o);
    post(c, u, "resumed", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "resumed");
    CHECK(!o.reused);
    CHECK(o.resumed);
    outcome_free(&o);

    /* A DNS name is checked against the certificate's DNS names. */
    post(c, url(u, sizeof(u), "https", "localhost", rx.https, "/chunked"), "x", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "chunk-one,chunk-two,chunk-three");
    outcome_free(&o);

    /* Not signed by the CA the request trusts. */
    hk_client_request req = {.url = url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"), .ca_file = rx.wrong_ca};
    fetch(c, &req, &o);
    CHECK_INT(o.error, HK_ETLS);
    CHECK_INT(o.status, 0);
    CHECK(strstr(o.error_text,
                 "TLS: certificate verify failed: The certificate is not correctly signed by the trusted CA") ==
          o.error_text);
    outcome_free(&o);

    /* Trusted, but for another name: IP literal (IP SAN check) and DNS name. */
    req.url = url(u, sizeof(u), "https", "127.0.0.1", rx.wrong, "/echo");
    fetch(c, &req, &o);
    CHECK_INT(o.error, HK_ETLS);
    CHECK(strstr(o.error_text, "TLS: certificate verify failed: ") == o.error_text);
    CHECK(strstr(o.error_text, "Common Name (CN) does not match") != NULL);
    CHECK(strstr(o.error_text, "not valid for 127.0.0.1") != NULL);
    CHECK(strstr(o.error_text, "not correctly signed") == NULL);
    outcome_free(&o);
    req.url = url(u, sizeof(u), "https", "localhost", rx.wrong, "/echo");
    fetch(c, &req, &o);
    CHECK_INT(o.error, HK_ETLS);
    CHECK(strstr(o.error_text, "not valid for localhost") != NULL);
    outcome_free(&o);

    /* Mutual TLS: refused without a client certificate, accepted with one. */
    post(c, url(u, sizeof(u), "https", "127.0.0.1", rx.mtls, "/echo"), "x", &o);
    CHECK(o.error != 0);
    CHECK(strncmp(o.error_text, "TLS: ", 5) == 0);
    outcome_free(&o);
    hk_client_request mreq = {
        .url = u, .body = "mutual", .body_len = 6, .client_cert = rx.client_cert, .client_key = rx.client_key};
    fetch(c, &mreq, &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "mutual");
    outcome_free(&o);

    /* A missing CA file is a readable error, not a crash. */
    hk_client_request nreq = {.url = url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"),
                              .ca_file = "/nonexistent/ca.pem"};
    fetch(c, &nreq, &o);
    CHECK_INT(o.error, HK_ETLS);
    CHECK(strstr(o.error_text, "TLS: cannot load CA file /nonexistent/ca.pem") == o.error_text);
    outcome_free(&o);

    if (rx.https6 > 0) {
        /* The test certificate names ::1 as an iPAddress too. */
        post(c, url(u, sizeof(u), "https", "[::1]", rx.https6, "/echo"), "over v6", &o);
        CHECK_INT(o.error, 0);
        CHECK_STR(o.body, "over v6");
        outcome_free(&o);
        /* Plain HTTP where TLS was expected. */
        post(c, url(u, sizeof(u), "https", "[::1]", rx.http6, "/echo"), "x", &o);
        CHECK_INT(o.error, HK_ETLS);
        outcome_free(&o);
    }
    close_client(c);

    /* The system bundle (no ca_file) does not know the test CA. */
    opts = base_opts();
    opts.ca_file = NULL;
    uint64_t t0 = uv_hrtime();
    c = make_client(&opts);
    CHECK((uv_hrtime() - t0) / 1000000u < 2000);
    post(c, url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"), "x", &o);
    CHECK_INT(o.error, HK_ETLS);
    CHECK(strstr(o.error_text, "not correctly signed by the trusted CA") != NULL ||
          strstr(o.error_text, "cannot load CA file " HK_TLS_DEFAULT_CA_FILE) != NULL);
    outcome_free(&o);
    close_client(c);

    /* Pooled TLS connections are reused too. */
    opts = base_opts();
    c = make_client(&opts);
    post(c, url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"), "one", &o);
    CHECK_INT(o.error, 0);
    outcome_free(&o);
    post(c, u, "two", &o);
    CHECK(o.reused);
    CHECK_STR(o.body, "two");
    outcome_free(&o);
    close_client(c);
}

static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static void test_failures(void)
{
    char u[256];
    struct outcome o;
    hk_client_opts opts = base_opts();
    opts.connect_timeout_ms = 300;
    opts.first_byte_timeout_ms = 300;
    hk_client *c = make_client(&opts);

    post(c, url(u, sizeof(u), "http", "127.0.0.1", closed_port(), "/"), "x", &o);
    CHECK_INT(o.error, UV_ECONNREFUSED);
    CHECK_STR(o.error_text, "connection refused");
    CHECK_STR(o.request_head, "");
    outcome_free(&o);

    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/delay/1500"), "x", &o);
    CHECK_INT(o.error, UV_ETIMEDOUT);
    CHECK_STR(o.error_text, "no response within 300 ms");
    CHECK(o.duration_ms >= 290 && o.duration_ms < 1400);
    CHECK(strstr(o.request_head, "POST /delay/1500 HTTP/1.1\r\n") == o.request_head);
    outcome_free(&o);

    /* A listener that never accepts: TCP connects (backlog), the TLS handshake stalls. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK_INT(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_INT(listen(s, 8), 0);
    getsockname(s, (struct sockaddr *)&a, &len);
    post(c, url(u, sizeof(u), "https", "127.0.0.1", ntohs(a.sin_port), "/"), "x", &o);
    CHECK_INT(o.error, UV_ETIMEDOUT);
    CHECK_STR(o.error_text, "connect timeout after 300 ms");
    outcome_free(&o);
    close(s);

    /* Malformed requests are refused at once. */
    static const char *bad[] = {"ftp://127.0.0.1/",
                                "http://",
                                "http:///x",
                                "http://user:pw@127.0.0.1/",
                                "http://127.0.0.1:0/",
                                "http://127.0.0.1:65536/",
                                "http://127.0.0.1:8x/",
                                "http://a b/",
                                "http://127.0.0.1/a b",
                                "http://[::1/",
                                "http://[zz]/",
                                "http://127.0.0.1%2e/",
                                "http://127.1/",
                                "http://0x7f000001/",
                                "http://127.0.0.1:/",
                                "127.0.0.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        hk_client_request r = {.url = bad[i]};
        int rc = hk_client_send(c, &r, on_result, &o);
        if (rc != HK_EINVAL)
            fprintf(stderr, "url %s accepted\n", bad[i]);
        CHECK_INT(rc, HK_EINVAL);
    }
    hk_client_request r = {.url = "http://127.0.0.1/", .headers = "X-A: 1\r\n\r\nGET / HTTP/1.1\r\n"};
    CHECK_INT(hk_client_send(c, &r, on_result, &o), HK_EINVAL);
    r.headers = "X-A: 1\nX-B: 2";
    CHECK_INT(hk_client_send(c, &r, on_result, &o), HK_EINVAL);
    r.headers = NULL;
    r.method = "PO ST";
    CHECK_INT(hk_client_send(c, &r, on_result, &o), HK_EINVAL);
    CHECK_INT(hk_client_active(c), 0);
    close_client(c);

    /* The total limit. */
    opts = base_opts();
    opts.total_timeout_ms = 400;
    c = make_client(&opts);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/delay/1500"), "x", &o);
    CHECK_INT(o.error, UV_ETIMEDOUT);
    CHECK_STR(o.error_text, "request took longer than 400 ms");
    outcome_free(&o);
    close_client(c);
}

/* A server on the test's own loop that answers every connection with a reset. */
static void on_rst_closed(uv_handle_t *h)
{
    free(h);
}

static void on_rst_connection(uv_stream_t *server, int status)
{
    if (status != 0)
        return;
    uv_tcp_t *t = hk_malloc(sizeof(*t));
    uv_tcp_init(&loop, t);
    if (uv_accept(server, (uv_stream_t *)t) == 0) {
        /* Linger 0: close sends RST instead of FIN. */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)t, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    uv_close((uv_handle_t *)t, on_rst_closed);
}

static void test_reset(void)
{
    static uv_tcp_t server; /* outlives this function until its close callback */
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &server);
    CHECK_INT(uv_tcp_bind(&server, (struct sockaddr *)&a, 0), 0);
    CHECK_INT(uv_listen((uv_stream_t *)&server, 16, on_rst_connection), 0);
    int len = sizeof(a);
    uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len);
    hk_client_opts opts = base_opts();
    hk_client *c = make_client(&opts);
    char u[256];
    struct outcome o;
    post(c, url(u, sizeof(u), "http", "127.0.0.1", ntohs(a.sin_port), "/"), "x", &o);
    CHECK(o.error == UV_ECONNRESET || o.error == UV_EPIPE);
    CHECK_STR(o.error_text, "connection reset by peer");
    outcome_free(&o);
    close_client(c);
    uv_close((uv_handle_t *)&server, NULL);
}

static void test_ssrf(void)
{
    char u[256];
    struct outcome o;
    hk_client_opts opts = base_opts();
    opts.allow_targets = "";
    hk_client *c = make_client(&opts);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "x", &o);
    CHECK_INT(o.error, HK_EFORBIDDEN);
    CHECK_STR(o.error_text, "refused by SSRF guard: 127.0.0.1 is loopback");
    CHECK_STR(o.request_head, "");
    /* The address and the rule apart, for "webhook N: refused address A by rule R". */
    CHECK_STR(o.refused_addr, "127.0.0.1");
    CHECK_STR(o.refused_rule, "loopback");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "[::1]", rx.http6 ? rx.http6 : rx.http, "/echo"), "x", &o);
    CHECK_INT(o.error, HK_EFORBIDDEN);
    CHECK_STR(o.error_text, "refused by SSRF guard: ::1 is loopback");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "https", "[::ffff:127.0.0.1]", rx.https, "/echo"), "x", &o);
    CHECK_INT(o.error, HK_EFORBIDDEN);
    CHECK(strstr(o.error_text, "loopback (IPv4-mapped 127.0.0.1)") != NULL);
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "localhost", rx.http, "/echo"), "x", &o);
    CHECK_INT(o.error, HK_EFORBIDDEN);
    CHECK(strstr(o.error_text, "refused by SSRF guard: ") == o.error_text);
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "169.254.169.254", 80, "/latest/meta-data/"), "x", &o);
    CHECK_STR(o.error_text, "refused by SSRF guard: 169.254.169.254 is link-local");
    CHECK_STR(o.refused_addr, "169.254.169.254");
    CHECK_STR(o.refused_rule, "link-local");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "[fec0::1]", 80, "/"), "x", &o);
    CHECK_STR(o.error_text, "refused by SSRF guard: fec0::1 is site-local (fec0::/10)");
    CHECK_STR(o.refused_rule, "site-local (fec0::/10)");
    outcome_free(&o);
    post(c, url(u, sizeof(u), "http", "localhost", rx.http, "/echo"), "x", &o);
    CHECK_STR(o.refused_addr, "127.0.0.1");
    CHECK_STR(o.refused_rule, "loopback");
    outcome_free(&o);
    close_client(c);

    opts.allow_targets = "127.0.0.1/32";
    c = make_client(&opts);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "allowed", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "allowed");
    CHECK_STR(o.refused_addr, "");
    CHECK_STR(o.refused_rule, "");
    outcome_free(&o);
    /* Other failures leave the refusal fields empty. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", closed_port(), "/"), "x", &o);
    CHECK_INT(o.error, UV_ECONNREFUSED);
    CHECK_STR(o.refused_addr, "");
    CHECK_STR(o.refused_rule, "");
    outcome_free(&o);
    close_client(c);

    /* Of the addresses of a name, the first one allowed is used. */
    opts.allow_targets = "127.0.0.1";
    c = make_client(&opts);
    post(c, url(u, sizeof(u), "http", "localhost", rx.http, "/echo"), "first allowed", &o);
    CHECK_INT(o.error, 0);
    CHECK_STR(o.body, "first allowed");
    outcome_free(&o);
    close_client(c);

    hk_client *bad = NULL;
    opts.allow_targets = "127.0.0.1/32,nonsense";
    CHECK_INT(hk_client_create(&bad, &loop, &opts), HK_EINVAL);
    CHECK(bad == NULL);
}

/* A DNS server on 127.0.0.1 that reads nothing and answers nothing. */
static int silent_dns(int *port)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK_INT(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    getsockname(s, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return s;
}

static void on_work(uv_work_t *w)
{
    HK_UNUSED(w);
}

static void after_work(uv_work_t *w, int status)
{
    HK_UNUSED(status);
    *(uint64_t *)w->data = uv_hrtime();
}

/*
 * A resolver that never answers: lookups fail on the DNS timeout with
 * their own error, and meanwhile every other origin (IP literals, names in
 * /etc/hosts) is served at once and the threadpool stays free.
 */
static void test_dns(void)
{
    int port;
    int sock = silent_dns(&port);
    char servers[64], u[256];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
    hk_client_opts opts = base_opts();
    opts.dns_servers = servers;
    opts.dns_timeout_ms = 600;
    hk_client *c = make_client(&opts);
    enum { HANGING = 10 }; /* more than the threadpool's threads */
    struct outcome hang[HANGING];
    memset(hang, 0, sizeof(hang));
    for (int i = 0; i < HANGING; i++) {
        snprintf(u, sizeof(u), "http://hang-%d.hookd.test:%d/echo", i, rx.http);
        hk_client_request r = {.url = u, .body = "x", .body_len = 1};
        CHECK_INT(hk_client_send(c, &r, on_result, &hang[i]), 0);
    }
    uint64_t t0 = uv_hrtime(), work_done = 0;
    uv_work_t w;
    w.data = &work_done;
    CHECK_INT(uv_queue_work(&loop, &w, on_work, after_work), 0);
    struct outcome lit, byname;
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "literal", &lit);
    post(c, url(u, sizeof(u), "http", "localhost", rx.http, "/echo"), "hosts file", &byname);
    CHECK_INT(lit.error, 0);
    CHECK_STR(lit.body, "literal");
    CHECK_INT(byname.error, 0);
    CHECK_STR(byname.body, "hosts file");
    CHECK((uv_hrtime() - t0) / 1000000u < 500);
    while (work_done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK((work_done - t0) / 1000000u < 500);
    outcome_free(&lit);
    outcome_free(&byname);
    for (int i = 0; i < HANGING; i++)
        CHECK(!hang[i].done);
    for (int i = 0; i < HANGING; i++) {
        wait_done(&hang[i]);
        char want[128];
        snprintf(want, sizeof(want), "DNS lookup for hang-%d.hookd.test timed out after 600 ms", i);
        CHECK_INT(hang[i].error, UV_ETIMEDOUT);
        CHECK_STR(hang[i].error_text, want);
        CHECK(hang[i].duration_ms >= 590 && hang[i].duration_ms < 3000);
        CHECK_STR(hang[i].request_head, "");
        outcome_free(&hang[i]);
    }
    close_client(c);
    close(sock);

    hk_client *bad = NULL;
    opts.dns_servers = "no such server";
    CHECK_INT(hk_client_create(&bad, &loop, &opts), HK_EINVAL);
    CHECK(bad == NULL);
}

static void run_for(uint64_t ms)
{
    static uv_timer_t t; /* closed asynchronously: must outlive the scope */
    bool ticked = false;
    uv_timer_init(&loop, &t);
    t.data = &ticked;
    uv_timer_start(&t, on_tick, ms, 0);
    while (!ticked)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
}

/* Origins nobody uses any more are forgotten: memory follows the live ones, not every target ever sent to. */
static void test_origins_freed(void)
{
    char u[256];
    struct outcome o;
    hk_client_opts opts = base_opts();
    opts.allow_targets = "127.0.0.0/8";
    opts.idle_timeout_ms = 300;
    hk_client *c = make_client(&opts);
    CHECK_INT(hk_client_origins(c), 0);
    /* One origin with a pooled connection, twenty whose connections are refused. */
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "pooled", &o);
    CHECK_INT(o.status, 200);
    outcome_free(&o);
    int port = closed_port();
    for (int i = 0; i < 20; i++) {
        char host[32];
        snprintf(host, sizeof(host), "127.0.%d.%d", 1 + i / 200, 2 + i % 200);
        post(c, url(u, sizeof(u), "http", host, port, "/"), "x", &o);
        CHECK_INT(o.error, UV_ECONNREFUSED);
        outcome_free(&o);
    }
    CHECK_INT(hk_client_origins(c), 21);
    /* A TLS origin used again within idle_timeout resumes its session. */
    hk_client_opts topts = base_opts();
    topts.max_idle_per_origin = 0;
    topts.idle_timeout_ms = 300;
    hk_client *tc = make_client(&topts);
    post(tc, url(u, sizeof(u), "https", "127.0.0.1", rx.https, "/echo"), "one", &o);
    CHECK_INT(o.error, 0);
    outcome_free(&o);
    run_for(100);
    post(tc, u, "two", &o);
    CHECK(o.resumed);
    outcome_free(&o);
    CHECK_INT(hk_client_origins(tc), 1);
    /* After the idle time (the pooled connection's, then the origin's) nothing is left. */
    run_for(900);
    CHECK_INT(hk_client_origins(c), 0);
    CHECK_INT(hk_client_origins(tc), 0);
    /* And the origin comes back when it is needed again, without its old session. */
    post(tc, u, "three", &o);
    CHECK_INT(o.error, 0);
    CHECK(!o.resumed);
    outcome_free(&o);
    close_client(tc);
    post(c, url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/echo"), "again", &o);
    CHECK_STR(o.body, "again");
    CHECK(!o.reused);
    outcome_free(&o);
    CHECK_INT(hk_client_origins(c), 1);

    /* However many targets, at most HK_CLIENT_MAX_UNUSED_ORIGINS unused ones are kept. */
    enum { MANY = HK_CLIENT_MAX_UNUSED_ORIGINS + 100 };
    static struct outcome many[MANY];
    memset(many, 0, sizeof(many));
    for (int i = 0; i < MANY; i++) {
        char host[32];
        snprintf(host, sizeof(host), "127.1.%d.%d", i / 200, 1 + i % 200);
        hk_client_request r = {.url = url(u, sizeof(u), "http", host, port, "/"), .body = "x", .body_len = 1};
        CHECK_INT(hk_client_send(c, &r, on_result, &many[i]), 0);
    }
    CHECK_INT(hk_client_origins(c), 1 + MANY); /* all in use at once */
    for (int i = 0; i < MANY; i++) {
        wait_done(&many[i]);
        outcome_free(&many[i]);
    }
    uv_run(&loop, UV_RUN_NOWAIT); /* the last requests' handles close */
    CHECK(hk_client_origins(c) <= 1 + HK_CLIENT_MAX_UNUSED_ORIGINS);
    close_client(c);
}

static void test_cancel(void)
{
    char u[256];
    hk_client_opts opts = base_opts();
    hk_client *c = make_client(&opts);
    struct outcome slow, dns, fresh;
    memset(&slow, 0, sizeof(slow));
    memset(&dns, 0, sizeof(dns));
    memset(&fresh, 0, sizeof(fresh));
    hk_client_request r = {
        .url = url(u, sizeof(u), "http", "127.0.0.1", rx.http, "/delay/3000"), .body = "x", .body_len = 1};
    CHECK_INT(hk_client_send(c, &r, on_result, &slow), 0);
    /* Let it reach the server, then close with it in flight. */
    static uv_timer_t t; /* closed asynchronously: must outlive the scope */
    bool ticked = false;
    uv_timer_init(&loop, &t);
    t.data = &ticked;
    uv_timer_start(&t, on_tick, 300, 0);
    while (!ticked)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    CHECK(!slow.done);
    /* And one that has not even started. */
    hk_client_request r2 = {.url = url(u, sizeof(u), "https", "localhost", rx.https, "/echo")};
    CHECK_INT(hk_client_send(c, &r2, on_result, &dns), 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* the lookup starts */
    CHECK_INT(hk_client_active(c), 2);
    uint64_t t0 = uv_hrtime();
    bool closed = false;
    hk_client_close(c, on_closed, &closed);
    CHECK(slow.done);
    CHECK(dns.done);
    CHECK_INT(slow.error, UV_ECANCELED);
    CHECK_INT(dns.error, UV_ECANCELED);
    CHECK(strstr(slow.error_text, "cancel") != NULL);
    CHECK_INT(hk_client_send(c, &r, on_result, &fresh), HK_ESHUTDOWN);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK((uv_hrtime() - t0) / 1000000u < 1000);
    outcome_free(&slow);
    outcome_free(&dns);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (getenv("HOOKD_TEST_DEBUG") != NULL)
        hk_log_set_level(HK_LOG_DEBUG);
    alarm(100); /* a hung loop fails the test instead of stalling the suite */
    uv_loop_init(&loop);
    if (start_receiver() != 0) {
        fprintf(stderr, "cannot start tests/e2e/receiver.py --suite\n");
        stop_receiver();
        return 1;
    }
    test_plain();
    test_kept_body();
    test_protocol();
    test_truncation();
    test_ip_san();
    test_tls();
    test_failures();
    test_reset();
    test_ssrf();
    test_dns();
    test_origins_freed();
    test_cancel();
    /* Everything the clients opened is closed. */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    stop_receiver();
    return unit_done();
}
