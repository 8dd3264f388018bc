/*
 * test_smtp.c: the SMTP client against a scripted relay on the same loop:
 * the dialogue, dot-stuffing and CRLF line endings, HELO fallback, refused
 * recipients, STARTTLS required but not offered, timeouts, refused
 * connections, abandoning mails on close, and address checks.
 */
#include <arpa/inet.h>
#include <string.h>
#include <uv.h>

#include "smtp.h"
#include "unit.h"

enum relay_mode { RELAY_NORMAL, RELAY_HELO_ONLY, RELAY_SILENT };

struct relay {
    uv_tcp_t listener;
    uv_tcp_t conn;
    bool have_conn;
    int port;
    enum relay_mode mode;
    char rx[262144]; /* everything received */
    size_t rxlen;
    size_t done_upto; /* bytes of rx already answered */
    bool in_data;
    char data[131072]; /* the DATA payload, terminator included */
    size_t datalen;
};

static uv_loop_t *loop;

static void relay_written(uv_write_t *w, int status)
{
    (void)status;
    free(w);
}

static void relay_send(struct relay *r, const char *text)
{
    uv_write_t *w = malloc(sizeof(*w) + strlen(text));
    char *copy = (char *)(w + 1);
    memcpy(copy, text, strlen(text));
    uv_buf_t b = uv_buf_init(copy, (unsigned)strlen(text));
    if (uv_write(w, (uv_stream_t *)&r->conn, &b, 1, relay_written) != 0)
        free(w);
}

static void relay_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    struct relay *r = h->data;
    (void)s;
    /* One byte stays free so that rx is always a string. */
    *b = uv_buf_init(r->rx + r->rxlen, (unsigned)(sizeof(r->rx) - 1 - r->rxlen));
}

static void on_conn_closed(uv_handle_t *h)
{
    struct relay *r = h->data;
    r->have_conn = false;
}

static void relay_line(struct relay *r, const char *line, size_t len)
{
    if (len >= 4 && strncmp(line, "EHLO", 4) == 0)
        relay_send(r, r->mode == RELAY_HELO_ONLY ? "502 5.5.1 no EHLO here\r\n"
                                                 : "250-fake greets you\r\n250 8BITMIME\r\n");
    else if (len >= 4 && strncmp(line, "HELO", 4) == 0)
        relay_send(r, "250 fake\r\n");
    else if (len >= 4 && strncmp(line, "MAIL", 4) == 0)
        relay_send(r, "250 2.1.0 ok\r\n");
    else if (len >= 4 && strncmp(line, "RCPT", 4) == 0)
        relay_send(r, memmem(line, len, "bad@", 4) ? "550 5.1.1 no such user\r\n" : "250 2.1.5 ok\r\n");
    else if (len >= 4 && strncmp(line, "DATA", 4) == 0) {
        relay_send(r, "354 go ahead\r\n");
        r->in_data = true;
    } else if (len >= 4 && strncmp(line, "QUIT", 4) == 0) {
        relay_send(r, "221 bye\r\n");
        uv_close((uv_handle_t *)&r->conn, on_conn_closed);
    } else
        relay_send(r, "500 what\r\n");
}

static void relay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct relay *r = s->data;
    (void)b;
    if (n < 0) {
        if (!uv_is_closing((uv_handle_t *)&r->conn))
            uv_close((uv_handle_t *)&r->conn, on_conn_closed);
        return;
    }
    r->rxlen += (size_t)n;
    while (r->done_upto < r->rxlen && r->have_conn && !uv_is_closing((uv_handle_t *)&r->conn)) {
        char *start = r->rx + r->done_upto;
        size_t avail = r->rxlen - r->done_upto;
        if (r->in_data) {
            char *end = memmem(start, avail, "\r\n.\r\n", 5);
            if (end == NULL)
                return;
            size_t dl = (size_t)(end - start) + 5;
            if (dl >= sizeof(r->data))
                dl = sizeof(r->data) - 1;
            memcpy(r->data, start, dl);
            r->datalen = dl;
            r->data[dl] = '\0';
            r->done_upto += dl;
            r->in_data = false;
            relay_send(r, "250 2.0.0 queued\r\n");
            continue;
        }
        char *nl = memchr(start, '\n', avail);
        if (nl == NULL)
            return;
        r->done_upto += (size_t)(nl - start) + 1;
        relay_line(r, start, (size_t)(nl - start));
    }
}

static void relay_accept(uv_stream_t *l, int status)
{
    struct relay *r = l->data;
    if (status != 0 || r->have_conn)
        return;
    uv_tcp_init(loop, &r->conn);
    r->conn.data = r;
    if (uv_accept(l, (uv_stream_t *)&r->conn) != 0)
        return;
    r->have_conn = true;
    uv_read_start((uv_stream_t *)&r->conn, relay_alloc, relay_read);
    if (r->mode != RELAY_SILENT)
        relay_send(r, "220 fake ESMTP\r\n");
}

static struct relay *relay_start(enum relay_mode mode)
{
    struct relay *r = calloc(1, sizeof(*r));
    r->mode = mode;
    uv_tcp_init(loop, &r->listener);
    r->listener.data = r;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_bind(&r->listener, (const struct sockaddr *)&a, 0);
    uv_listen((uv_stream_t *)&r->listener, 8, relay_accept);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&r->listener, (struct sockaddr *)&ss, &len);
    r->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return r;
}

static void free_relay(uv_handle_t *h)
{
    free(h->data);
}

static void relay_stop(struct relay *r)
{
    if (r->have_conn && !uv_is_closing((uv_handle_t *)&r->conn))
        uv_close((uv_handle_t *)&r->conn, on_conn_closed);
    while (r->have_conn)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&r->listener, free_relay);
    uv_run(loop, UV_RUN_NOWAIT);
}

struct outcome {
    bool called;
    int status;
    char error[600];
    int calls;
};

static void on_sent(int status, const char *error, void *arg)
{
    struct outcome *o = arg;
    o->called = true;
    o->calls++;
    o->status = status;
    snprintf(o->error, sizeof(o->error), "%s", error);
}

static bool closed_flag;
static void on_closed(void *arg)
{
    (void)arg;
    closed_flag = true;
}

static hk_smtp *client(int port, bool starttls, uint64_t timeout_ms)
{
    hk_smtp_opts o = {.host = "127.0.0.1", .port = (uint16_t)port, .starttls = starttls, .timeout_ms = timeout_ms};
    hk_smtp *c = NULL;
    CHECK(hk_smtp_create(&c, loop, &o) == 0);
    return c;
}

static void finish(hk_smtp *c)
{
    closed_flag = false;
    hk_smtp_close(c, on_closed, NULL);
    while (!closed_flag)
        uv_run(loop, UV_RUN_ONCE);
}

static void wait_outcome(struct outcome *o)
{
    while (!o->called)
        uv_run(loop, UV_RUN_ONCE);
}

static void test_dialogue_and_body(void)
{
    struct relay *r = relay_start(RELAY_NORMAL);
    hk_smtp *c = client(r->port, false, 5000);
    const char *to[] = {"ops@example.com", "bad@example.com", "not an address\r\nRCPT TO:<x@y>"};
    char body[3000];
    /* Mixed line endings, leading dots, and a line longer than SMTP allows. */
    int n = snprintf(body, sizeof(body), "first\n.dot\r\n..two\rlast");
    memset(body + n, 'x', 1500);
    body[n + 1500] = '\0';
    hk_smtp_mail m = {
        .from = "hookd@test.example", .to = to, .nto = 3, .subject = "Größe \"ok\"\r\nBcc: x", .body = body};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    CHECK(!o.called); /* never from within the call */
    CHECK_INT(hk_smtp_pending(c), 1);
    wait_outcome(&o);
    CHECK_INT(o.status, 0);
    CHECK(strstr(r->rx, "EHLO ") == r->rx);
    CHECK(strstr(r->rx, "MAIL FROM:<hookd@test.example>\r\n") != NULL);
    CHECK(strstr(r->rx, "RCPT TO:<ops@example.com>\r\n") != NULL);
    CHECK(strstr(r->rx, "RCPT TO:<bad@example.com>\r\n") != NULL);
    CHECK(strstr(r->rx, "RCPT TO:<x@y>") == NULL);
    CHECK(strstr(r->data, "\r\nfirst\r\n..dot\r\n...two\r\nlast") != NULL);
    CHECK(strstr(r->data, "\r\n.\r\n") == r->data + r->datalen - 5);
    /* Every line ends in CRLF and none is longer than 998 octets. */
    size_t col = 0;
    bool bare_lf = false, long_line = false;
    for (size_t i = 0; i < r->datalen; i++) {
        if (r->data[i] == '\n') {
            bare_lf |= i == 0 || r->data[i - 1] != '\r';
            col = 0;
        } else if (++col > 998) {
            long_line = true;
        }
    }
    CHECK(!bare_lf);
    CHECK(!long_line);
    CHECK(strstr(r->data, "Subject: =?utf-8?B?") != NULL);
    CHECK(strstr(r->data, "\r\nBcc:") == NULL);
    CHECK(strstr(r->data, "To: <ops@example.com>,\r\n <bad@example.com>\r\n") != NULL);
    CHECK(strstr(r->data, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
    CHECK(strstr(r->data, "Message-ID: <") != NULL && strstr(r->data, "@test.example>\r\n") != NULL);
    CHECK(strstr(r->data, "\r\nDate: ") != NULL);
    while (r->have_conn)
        uv_run(loop, UV_RUN_ONCE); /* QUIT closes it */
    CHECK(strstr(r->rx, "QUIT\r\n") != NULL);
    CHECK_INT(o.calls, 1);
    finish(c);
    relay_stop(r);
}

static void test_helo_fallback(void)
{
    struct relay *r = relay_start(RELAY_HELO_ONLY);
    hk_smtp *c = client(r->port, false, 5000);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    wait_outcome(&o);
    CHECK_INT(o.status, 0);
    CHECK(strstr(r->rx, "HELO ") != NULL);
    finish(c);
    relay_stop(r);
}

/* A relay named by a host name: resolved on the loop (here from /etc/hosts), never on the threadpool. */
static void test_relay_by_name(void)
{
    struct relay *r = relay_start(RELAY_NORMAL);
    hk_smtp_opts opts = {.host = "localhost", .port = (uint16_t)r->port, .timeout_ms = 5000};
    hk_smtp *c = NULL;
    CHECK(hk_smtp_create(&c, loop, &opts) == 0);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "by name"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    CHECK(!o.called);
    wait_outcome(&o);
    CHECK_INT(o.status, 0);
    CHECK(strstr(r->data, "by name") != NULL);
    finish(c);
    relay_stop(r);
}

static void test_every_recipient_refused(void)
{
    struct relay *r = relay_start(RELAY_NORMAL);
    hk_smtp *c = client(r->port, false, 5000);
    const char *to[] = {"bad@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    wait_outcome(&o);
    CHECK(o.status != 0);
    CHECK(strstr(o.error, "refused every recipient") != NULL && strstr(o.error, "550") != NULL);
    CHECK(strstr(r->rx, "DATA") == NULL);
    finish(c);
    relay_stop(r);
}

static void test_starttls_not_offered(void)
{
    struct relay *r = relay_start(RELAY_NORMAL);
    hk_smtp *c = client(r->port, true, 5000);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    wait_outcome(&o);
    CHECK(o.status != 0);
    CHECK(strstr(o.error, "does not offer STARTTLS") != NULL);
    CHECK(strstr(r->rx, "MAIL") == NULL);
    finish(c);
    relay_stop(r);
}

static void test_timeout_and_refused(void)
{
    struct relay *r = relay_start(RELAY_SILENT);
    hk_smtp *c = client(r->port, false, 200);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o) == 0);
    wait_outcome(&o);
    CHECK_INT(o.status, UV_ETIMEDOUT);
    CHECK_STR(o.error, "timeout after 200 ms (in greeting)");
    finish(c);
    int port = r->port;
    relay_stop(r);
    uv_run(loop, UV_RUN_NOWAIT);

    c = client(port, false, 5000);
    struct outcome o2 = {0};
    CHECK(hk_smtp_send(c, &m, on_sent, &o2) == 0);
    wait_outcome(&o2);
    CHECK_INT(o2.status, UV_ECONNREFUSED);
    CHECK(strstr(o2.error, "connection refused") != NULL);
    finish(c);
}

static void test_close_abandons_mails(void)
{
    struct relay *r = relay_start(RELAY_SILENT);
    hk_smtp *c = client(r->port, false, 5000);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o[HK_SMTP_MAX_SESSIONS + 2];
    memset(o, 0, sizeof(o));
    for (size_t i = 0; i < HK_ARRAY_SIZE(o); i++)
        CHECK(hk_smtp_send(c, &m, on_sent, &o[i]) == 0);
    CHECK_INT(hk_smtp_pending(c), HK_ARRAY_SIZE(o));
    while (!r->have_conn)
        uv_run(loop, UV_RUN_ONCE);
    closed_flag = false;
    hk_smtp_close(c, on_closed, NULL);
    for (size_t i = 0; i < HK_ARRAY_SIZE(o); i++) {
        CHECK(o[i].called);
        CHECK_INT(o[i].status, UV_ECANCELED);
    }
    while (!closed_flag)
        uv_run(loop, UV_RUN_ONCE);
    relay_stop(r);
}

static hk_smtp *closing_client;

static void on_sent_then_close(int status, const char *error, void *arg)
{
    on_sent(status, error, arg);
    closed_flag = false;
    hk_smtp_close(closing_client, on_closed, NULL);
}

/* The caller may close the client from within its callback, with the QUIT still to come. */
static void test_close_from_callback(void)
{
    struct relay *r = relay_start(RELAY_NORMAL);
    closing_client = client(r->port, false, 5000);
    const char *to[] = {"a@example.com"};
    hk_smtp_mail m = {.from = "f@example.com", .to = to, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK(hk_smtp_send(closing_client, &m, on_sent_then_close, &o) == 0);
    wait_outcome(&o);
    CHECK_INT(o.status, 0);
    while (!closed_flag)
        uv_run(loop, UV_RUN_ONCE);
    CHECK_INT(o.calls, 1);
    relay_stop(r);
}

static void test_addresses(void)
{
    CHECK(hk_smtp_address_ok("ops@example.com"));
    CHECK(hk_smtp_address_ok("a.b+tag@sub.example.org"));
    CHECK(!hk_smtp_address_ok("no-at-sign"));
    CHECK(!hk_smtp_address_ok("@example.com"));
    CHECK(!hk_smtp_address_ok("a@"));
    CHECK(!hk_smtp_address_ok("a@b@c"));
    CHECK(!hk_smtp_address_ok("a b@example.com"));
    CHECK(!hk_smtp_address_ok("a@example.com>\r\nRCPT TO:<b@example.com"));
    CHECK(!hk_smtp_address_ok("<a@example.com>"));
    CHECK(!hk_smtp_address_ok(""));
    CHECK(!hk_smtp_address_ok(NULL));
    hk_smtp *c = client(25, false, 0);
    const char *bad[] = {"not an address"};
    hk_smtp_mail m = {.from = "f@example.com", .to = bad, .nto = 1, .subject = "s", .body = "b"};
    struct outcome o = {0};
    CHECK_INT(hk_smtp_send(c, &m, on_sent, &o), HK_EINVAL);
    const char *good[] = {"a@example.com"};
    hk_smtp_mail m2 = {.from = "not a sender", .to = good, .nto = 1, .subject = "s", .body = "b"};
    CHECK_INT(hk_smtp_send(c, &m2, on_sent, &o), HK_EINVAL);
    CHECK(!o.called);
    finish(c);
    hk_smtp_opts none = {.host = ""};
    CHECK_INT(hk_smtp_create(&c, loop, &none), HK_EINVAL);
}

int main(void)
{
    loop = uv_default_loop();
    test_addresses();
    test_dialogue_and_body();
    test_helo_fallback();
    test_relay_by_name();
    test_every_recipient_refused();
    test_starttls_not_offered();
    test_timeout_and_refused();
    test_close_abandons_mails();
    test_close_from_callback();
    uv_run(loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(loop), 0);
    return unit_done();
}
