/*
 * fuzz_smtp.c: the SMTP client's reading of relay replies (net/smtp_reply.c, smtp_session.c):
 * reply lines and multi-line replies, codes, the EHLO extension list and
 * every state of a mail's conversation. A fake relay on a loopback socket
 * of the same loop answers each connection with the input's bytes (all of
 * them at once, then end of stream) and discards what the client sends.
 *
 * The mail must end exactly once, with 0 or a negative code and a reason,
 * and the client must hold no mail afterwards.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <uv.h>

#include "fuzz.h"
#include "log.h"
#include "smtp.h"

static uv_loop_t loop;
static uv_tcp_t listener;
static hk_smtp *client;
static const uint8_t *reply;
static size_t reply_len;
static int relays_open;
static char discard[65536];

struct relay {
    uv_tcp_t tcp;
    uv_write_t write;
    uv_shutdown_t shutdown;
};

struct result {
    int calls;
    int status;
};

static void on_relay_closed(uv_handle_t *h)
{
    free(h->data);
    relays_open--;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(discard, sizeof(discard));
}

static void on_relay_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    if (nread < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_relay_closed);
}

static void on_written(uv_write_t *w, int status)
{
    struct relay *r = w->data;
    if (status == 0)
        uv_shutdown(&r->shutdown, (uv_stream_t *)&r->tcp, NULL);
}

static void on_connection(uv_stream_t *l, int status)
{
    FUZZ_CHECK(status == 0);
    struct relay *r = calloc(1, sizeof(*r));
    FUZZ_CHECK(r != NULL);
    uv_tcp_init(&loop, &r->tcp);
    r->tcp.data = r;
    r->write.data = r;
    relays_open++;
    FUZZ_CHECK(uv_accept(l, (uv_stream_t *)&r->tcp) == 0);
    uv_buf_t b = uv_buf_init((char *)reply, (unsigned)reply_len);
    FUZZ_CHECK(uv_write(&r->write, (uv_stream_t *)&r->tcp, &b, 1, on_written) == 0);
    FUZZ_CHECK(uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_relay_read) == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    hk_log_set_level((enum hk_log_level)(HK_LOG_ERROR + 1));
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    uv_tcp_init(&loop, &listener);
    FUZZ_CHECK(uv_tcp_bind(&listener, (const struct sockaddr *)&sa, 0) == 0);
    FUZZ_CHECK(uv_listen((uv_stream_t *)&listener, 128, on_connection) == 0);
    int len = sizeof(sa);
    FUZZ_CHECK(uv_tcp_getsockname(&listener, (struct sockaddr *)&sa, &len) == 0);
    hk_smtp_opts o = {.host = "127.0.0.1", .port = ntohs(sa.sin_port), .helo = "fuzz.example", .timeout_ms = 10000};
    FUZZ_CHECK(hk_smtp_create(&client, &loop, &o) == 0);
    return 0;
}

static void on_sent(int status, const char *error, void *arg)
{
    struct result *r = arg;
    r->calls++;
    r->status = status;
    FUZZ_CHECK(status <= 0);
    if (status != 0)
        FUZZ_CHECK(error != NULL && error[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const to[] = {"ops@example.com", "dev@example.org"};
    hk_smtp_mail mail = {.from = "hookd@example.com",
                         .to = to,
                         .nto = 2,
                         .subject = "webhook 7 \"Orders\" disabled",
                         .body = "Webhook: 7\nResult: 500\n.\n..leading dot\n"};
    struct result res = {0, 1};
    reply = data;
    reply_len = size;
    FUZZ_CHECK(hk_smtp_send(client, &mail, on_sent, &res) == 0);
    while (res.calls == 0 || relays_open > 0)
        uv_run(&loop, UV_RUN_ONCE);
    FUZZ_CHECK(res.calls == 1);
    FUZZ_CHECK(hk_smtp_pending(client) == 0);
    return 0;
}
