/*
 * fuzz_http.c: the inbound HTTP/1.1 server (net/http_server*.c with llhttp):
 * request heads, chunked and sized bodies, pipelining, Expect, trailers and
 * every limit, bytes in and responses out. No network: each input is
 * written into one end of a socketpair whose other end the server adopts,
 * on a private loop that runs until the connection is closed.
 *
 * The first input byte picks the configuration (defaults, or limits small
 * enough to be hit: 1 KiB heads and bodies, 8 header fields); the rest is
 * what the client sends before it half-closes. The handler reads every part
 * of each request and answers with a digest of it. What comes back must be
 * a sequence of HTTP/1.1 responses, and the server must end with no
 * connection open.
 */
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "fuzz.h"
#include "http_server.h"
#include "log.h"

struct client {
    uv_pipe_t pipe;
    uv_write_t write;
    uv_shutdown_t shutdown;
    char *out;
    size_t out_len, out_cap;
    bool closed;
};

static uv_loop_t loop;
static hk_config cfg[2];
static hk_http_server *server[2];
static char read_buf[65536];

static void handler(hk_http_request *req, void *data)
{
    (void)data;
    /* Touch every byte the server hands over: ASan checks each bound. */
    unsigned sum = 0;
    for (size_t i = 0; i < req->path_len; i++)
        sum += (unsigned char)req->path[i];
    FUZZ_CHECK(req->path[req->path_len] == '\0' && req->query[req->query_len] == '\0');
    FUZZ_CHECK(req->body[req->body_len] == '\0');
    for (size_t i = 0; i < req->query_len; i++)
        sum += (unsigned char)req->query[i];
    for (size_t h = 0; h < req->nheaders; h++) {
        for (size_t i = 0; i < req->headers[h].name_len; i++)
            sum += (unsigned char)req->headers[h].name[i];
        for (size_t i = 0; i < req->headers[h].value_len; i++)
            sum += (unsigned char)req->headers[h].value[i];
    }
    for (size_t i = 0; i < req->body_len; i++)
        sum += (unsigned char)req->body[i];
    (void)hk_http_header(req, "Content-Type");
    char body[96];
    int n = snprintf(body, sizeof(body), "{\"method\":\"%s\",\"headers\":%zu,\"body\":%zu,\"sum\":%u}",
                     req->method_name, req->nheaders, req->body_len, sum);
    hk_http_respond(req, req->body_len > 0 ? 201 : 200, "application/json", "X-Fuzz: 1\r\n", body, (size_t)n);
}

static char *error_body(const char *path, size_t path_len, int status, const char *message)
{
    (void)path;
    (void)path_len;
    size_t cap = strlen(message) + 64;
    char *b = malloc(cap);
    FUZZ_CHECK(b != NULL);
    snprintf(b, cap, "{\"status\":%d,\"error\":\"%s\"}", status, message);
    return b;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    hk_log_set_level(HK_LOG_ERROR + 1); /* quiet: one log line per bad request would drown the fuzzer's output */
    signal(SIGPIPE, SIG_IGN);           /* a write to a peer that closed is an error, not a signal */
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    char err[256];
    for (int i = 0; i < 2; i++) {
        hk_config_defaults(&cfg[i]);
        if (i == 1) {
            FUZZ_CHECK(hk_config_set(&cfg[i], "server", "max_header_bytes", "1KiB", err, sizeof(err)) == 0);
            FUZZ_CHECK(hk_config_set(&cfg[i], "server", "max_headers", "8", err, sizeof(err)) == 0);
            FUZZ_CHECK(hk_config_set(&cfg[i], "server", "max_body_bytes", "1KiB", err, sizeof(err)) == 0);
        }
        FUZZ_CHECK(hk_http_server_create(&server[i], &loop, &cfg[i], handler, NULL, error_body) == 0);
    }
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(read_buf, sizeof(read_buf));
}

static void on_closed(uv_handle_t *h)
{
    struct client *cl = h->data;
    cl->closed = true;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct client *cl = s->data;
    if (nread > 0) {
        if (cl->out_len + (size_t)nread > cl->out_cap) {
            cl->out_cap = (cl->out_len + (size_t)nread) * 2;
            cl->out = realloc(cl->out, cl->out_cap);
            FUZZ_CHECK(cl->out != NULL);
        }
        memcpy(cl->out + cl->out_len, buf->base, (size_t)nread);
        cl->out_len += (size_t)nread;
    } else if (nread < 0) {
        uv_close((uv_handle_t *)s, on_closed);
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct client *cl = w->data;
    /* The server may close before taking everything (an error answered): not a failure. */
    if (status == 0)
        uv_shutdown(&cl->shutdown, (uv_stream_t *)&cl->pipe, NULL);
}

/* Checks that out is a run of complete HTTP/1.1 responses (the last may be cut short by a close). */
static void check_responses(const char *out, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        FUZZ_CHECK(len - pos >= 12 && memcmp(out + pos, "HTTP/1.1 ", 9) == 0);
        int status = (out[pos + 9] - '0') * 100 + (out[pos + 10] - '0') * 10 + (out[pos + 11] - '0');
        FUZZ_CHECK(status >= 100 && status <= 599);
        const char *end = memmem(out + pos, len - pos, "\r\n\r\n", 4);
        FUZZ_CHECK(end != NULL);
        const char *cl = memmem(out + pos, (size_t)(end - (out + pos)), "\r\nContent-Length: ", 18);
        size_t body = cl != NULL ? strtoul(cl + 18, NULL, 10) : 0;
        pos = (size_t)(end + 4 - out);
        if (status == 100)
            continue;
        FUZZ_CHECK(cl != NULL);
        FUZZ_CHECK(body <= len - pos);
        pos += body;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    hk_http_server *srv = server[data[0] & 1];
    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    FUZZ_CHECK(hk_http_server_adopt(srv, sv[0], "fuzz") == 0);

    struct client cl;
    memset(&cl, 0, sizeof(cl));
    FUZZ_CHECK(uv_pipe_init(&loop, &cl.pipe, 0) == 0);
    cl.pipe.data = &cl;
    cl.write.data = &cl;
    FUZZ_CHECK(uv_pipe_open(&cl.pipe, sv[1]) == 0);
    uv_buf_t b = uv_buf_init((char *)data + 1, (unsigned)(size - 1));
    FUZZ_CHECK(uv_write(&cl.write, (uv_stream_t *)&cl.pipe, &b, 1, on_written) == 0);
    FUZZ_CHECK(uv_read_start((uv_stream_t *)&cl.pipe, on_alloc, on_read) == 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    FUZZ_CHECK(cl.closed);
    FUZZ_CHECK(hk_http_server_connections(srv) == 0);
    check_responses(cl.out, cl.out_len);
    free(cl.out);
    return 0;
}
