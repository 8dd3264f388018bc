/*
 * test_http_server.c: the inbound server's head hook, driven over real
 * loopback sockets: a request refused from its head gets its answer
 * without its body being read (or a 100 Continue being sent), a request
 * let through reaches the handler with the hook's slot, and every slot is
 * freed, also when the client goes away mid-body.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "http_server.h"
#include "unit.h"

static uv_loop_t loop;
static int port;
static int handled;        /* handler calls */
static int slots_freed;    /* slot_free calls */
static bool saw_slot;      /* the handler saw the hook's slot */
static size_t body_seen;   /* body bytes the handler got */
static int hook_calls;     /* head hook calls */
static bool hook_had_body; /* the hook saw body bytes (it must not) */

static char *error_body(const char *path, size_t path_len, int status, const char *message)
{
    (void)path, (void)path_len, (void)status;
    size_t n = strlen(message) + 16;
    char *b = malloc(n);
    snprintf(b, n, "{\"error\":\"%s\"}", message);
    return b;
}

static void slot_free(void *slot)
{
    slots_freed++;
    free(slot);
}

/* Refuses requests without "Authorization: yes"; hangs a slot on the others. */
static void on_head(hk_http_request *req, void *data)
{
    (void)data;
    hook_calls++;
    hook_had_body = hook_had_body || req->body_len != 0;
    const hk_header *h = hk_http_header(req, "Authorization");
    if (h == NULL || h->value_len != 3 || memcmp(h->value, "yes", 3) != 0) {
        hk_http_respond(req, 401, "application/json", NULL, "{\"error\":\"no key\"}", 18);
        return;
    }
    req->slot = strdup("user-1");
}

static void handler(hk_http_request *req, void *data)
{
    (void)data;
    handled++;
    saw_slot = req->slot != NULL && strcmp(req->slot, "user-1") == 0;
    body_seen = req->body_len;
    hk_http_respond(req, 200, "text/plain", NULL, "ok", 2);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(s, (struct sockaddr *)&a, sizeof(a));
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static int dial(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("connect");
        exit(1);
    }
    return s;
}

static void send_all(int s, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(s, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* Runs the loop and reads until `want` appears in what came back (or EOF, or ms pass). */
static size_t drive(int s, char *buf, size_t cap, const char *want, uint64_t ms, bool *eof)
{
    size_t got = 0;
    uint64_t deadline = uv_hrtime() + ms * 1000000u;
    *eof = false;
    buf[0] = '\0';
    while (uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        ssize_t n = recv(s, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            buf[got] = '\0';
        } else if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            *eof = true;
            break;
        }
        if (want != NULL && strstr(buf, want) != NULL)
            break;
        if (n <= 0)
            uv_sleep(1);
    }
    return got;
}

static void spin(uint64_t ms)
{
    uint64_t deadline = uv_hrtime() + ms * 1000000u;
    while (uv_hrtime() < deadline) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
}

static void test_refused_before_the_body(void)
{
    char buf[4096];
    bool eof;
    int before_handled = handled, before_hooks = hook_calls;
    int s = dial();
    /* A large body is announced, none of it is sent. */
    const char *head = "POST /api/v1/Webhook HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n";
    send_all(s, head, strlen(head));
    drive(s, buf, sizeof(buf), "no key\"}", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 401 ", 13) == 0);
    CHECK(strstr(buf, "\r\nConnection: close\r\n") != NULL);
    CHECK(strstr(buf, "{\"error\":\"no key\"}") != NULL);
    CHECK_INT(hook_calls, before_hooks + 1);
    CHECK(!hook_had_body);
    /* What the client still sends is drained, not answered; then the connection ends. */
    char junk[8192];
    memset(junk, 'x', sizeof(junk));
    send_all(s, junk, sizeof(junk));
    shutdown(s, SHUT_WR);
    drive(s, buf, sizeof(buf), NULL, 3000, &eof);
    CHECK(eof);
    CHECK_INT(handled, before_handled);
    close(s);
}

static void test_no_continue_when_refused(void)
{
    char buf[4096];
    bool eof;
    int s = dial();
    const char *head = "POST /x HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n";
    send_all(s, head, strlen(head));
    drive(s, buf, sizeof(buf), "no key\"}", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 401 ", 13) == 0); /* the first thing sent, no 100 before it */
    CHECK(strstr(buf, "100 Continue") == NULL);
    close(s);
    /* With credentials, the 100 Continue comes, then the answer. */
    s = dial();
    head = "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: yes\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";
    send_all(s, head, strlen(head));
    drive(s, buf, sizeof(buf), "100 Continue\r\n\r\n", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 100 Continue\r\n", 23) == 0);
    send_all(s, "hello", 5);
    drive(s, buf, sizeof(buf), "\r\n\r\nok", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    close(s);
}

static void test_let_through(void)
{
    char buf[4096];
    bool eof;
    int before = handled, freed = slots_freed;
    int s = dial();
    const char *req = "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: yes\r\nContent-Length: 11\r\n\r\nhello there";
    send_all(s, req, strlen(req));
    drive(s, buf, sizeof(buf), "\r\n\r\nok", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK_INT(handled, before + 1);
    CHECK(saw_slot);
    CHECK_INT(body_seen, 11);
    CHECK_INT(slots_freed, freed + 1);
    /* The connection stays usable: keep-alive as before. */
    req = "GET /y HTTP/1.1\r\nHost: t\r\nAuthorization: yes\r\n\r\n";
    send_all(s, req, strlen(req));
    drive(s, buf, sizeof(buf), "\r\n\r\nok", 2000, &eof);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK(!eof);
    CHECK_INT(handled, before + 2);
    CHECK_INT(slots_freed, freed + 2);
    close(s);
}

static void test_slot_freed_when_abandoned(void)
{
    char buf[256];
    bool eof;
    int before = handled, freed = slots_freed;
    int s = dial();
    const char *head = "POST /x HTTP/1.1\r\nHost: t\r\nAuthorization: yes\r\nContent-Length: 100\r\n\r\nonly part";
    send_all(s, head, strlen(head));
    drive(s, buf, sizeof(buf), NULL, 200, &eof);
    close(s);  /* gone mid-body */
    spin(300); /* the server sees the close */
    CHECK_INT(handled, before);
    CHECK_INT(slots_freed, freed + 1);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(60);
    uv_loop_init(&loop);
    hk_config cfg;
    hk_config_defaults(&cfg);
    cfg.max_body_bytes = 2 * 1024 * 1024;
    hk_http_server *srv = NULL;
    CHECK_INT(hk_http_server_create(&srv, &loop, &cfg, handler, NULL, error_body), 0);
    hk_http_server_on_head(srv, on_head, slot_free);
    port = free_port();
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    CHECK_INT(hk_http_server_listen(srv, addr), 0);
    test_refused_before_the_body();
    test_no_continue_when_refused();
    test_let_through();
    test_slot_freed_when_abandoned();
    bool drained = false;
    hk_http_server_shutdown(srv, NULL);
    for (int i = 0; i < 200 && !drained; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        drained = hk_http_server_connections(srv) == 0;
        uv_sleep(5);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    hk_http_server_free(srv);
    hk_config_free(&cfg);
    CHECK_INT(uv_loop_close(&loop), 0);
    return unit_done();
}
