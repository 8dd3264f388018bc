/*
 * loadgen.c: the benchmark's load generator.
 *
 * Opens N kept-alive connections to one http://IPv4:port/path and POSTs
 * SignalEvent bodies {"EventName", "PrimaryKey", "Data"} on them, one
 * request in flight per connection (hookd answers a connection's requests
 * one at a time), either as fast as the server answers or at a fixed total
 * rate. Data carries the send time ("bench_t_ns", uv_hrtime: CLOCK_MONOTONIC
 * nanoseconds, comparable across processes on the host) and a sequence
 * number ("seq", also the PrimaryKey), which the receiver reads back out of
 * each delivery.
 *
 * At the end it prints one JSON object to stdout: counts, the send window
 * (start_ns/end_ns), request latency percentiles and its own CPU time. Any
 * answer other than 2xx stops the run at once (unless --keep-going) and is
 * reported with its status and body, so a missing endpoint (404) fails
 * loudly instead of producing a rate. Exit status: 0 all answered 2xx, 3 some
 * did not, 1 could not connect or lost requests, 2 bad usage.
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
#include <sys/resource.h>
#include <uv.h>

#include "hist.h"

#define MAX_CONNS 4096
#define MAX_PAD 65536
#define RESP_BODY_KEEP 400
#define RECONNECT_DELAY_MS 50
#define TICK_MS 1

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct gconn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_timer_t retry;
    llhttp_t parser;
    bool connected;
    bool in_request; /* a request is out and its answer not yet in */
    bool writing;    /* the request's write has not completed (its buffer is in use) */
    bool closing;
    bool close_after;
    bool listed; /* on the idle stack (may be stale: checked when popped) */
    uint64_t sent_ns;
    char *buf; /* the request being sent */
    size_t buf_cap;
    char resp_body[RESP_BODY_KEEP + 1];
    size_t resp_len;
};

static struct {
    uv_loop_t *loop;
    struct sockaddr_in addr;
    char host_port[64];
    const char *path;
    const char *key;
    const char *event;
    int nconns;
    double rate;           /* requests/s in total; 0: as fast as answered */
    double duration_s;     /* stop sending after this long; 0: no limit */
    uint64_t max_requests; /* stop sending after this many; 0: no limit */
    uint64_t seq_start;
    size_t pad;
    double drain_timeout_s;
    bool keep_going;
    bool quiet;

    struct gconn *conns;
    struct gconn **idle; /* connections ready for a request */
    int nidle;
    size_t inflight;
    llhttp_settings_t settings;
    char read_buf[65536];
    char *pad_text;
    uv_timer_t tick, stop_timer, drain_timer;
    uv_signal_t sig_int, sig_term;

    bool stopping; /* no new requests */
    bool finished;
    bool ever_connected;
    uint64_t start_ns, end_ns, last_send_ns;
    uint64_t sent, ok, failed, lost, conn_errors, late_ticks, behind_max;
    uint64_t status_count[600];
    int first_error_status;
    char first_error[RESP_BODY_KEEP + 128];
    hist lat;
} g;

static void kick(void);
static void start_conn(struct gconn *c);
static void maybe_finish(void);
static void on_drain_timer(uv_timer_t *t);
static void on_tick(uv_timer_t *t);
static void on_stop_timer(uv_timer_t *t);
static void on_retry(uv_timer_t *t);

static uint64_t cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static bool is_idle(const struct gconn *c)
{
    return c->connected && !c->closing && !c->in_request && !c->writing;
}

/* Puts c on the idle stack when it can take a request; kick() pops from it. */
static void mark_idle(struct gconn *c)
{
    if (!c->listed && is_idle(c)) {
        c->listed = true;
        g.idle[g.nidle++] = c;
    }
}

static void request_done(struct gconn *c)
{
    c->in_request = false;
    g.inflight--;
}

static void json_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fputc('?', f);
        else
            fputc(ch, f);
    }
}

static void report(void)
{
    uint64_t end = g.end_ns ? g.end_ns : uv_hrtime();
    double elapsed = g.start_ns ? (double)(end - g.start_ns) / 1e9 : 0.0;
    printf("{\"sent\":%llu,\"ok\":%llu,\"failed\":%llu,\"lost\":%llu,\"conn_errors\":%llu,\"connections\":%d,"
           "\"target_rate\":%.1f,\"start_ns\":%llu,\"end_ns\":%llu,\"last_send_ns\":%llu,\"elapsed_s\":%.6f,"
           "\"rate\":%.1f,\"late_ticks\":%llu,\"behind_max\":%llu,\"cpu_ms\":%llu,\"status\":{",
           (unsigned long long)g.sent, (unsigned long long)g.ok, (unsigned long long)g.failed,
           (unsigned long long)g.lost, (unsigned long long)g.conn_errors, g.nconns, g.rate,
           (unsigned long long)g.start_ns, (unsigned long long)end, (unsigned long long)g.last_send_ns, elapsed,
           elapsed > 0 ? (double)g.ok / elapsed : 0.0, (unsigned long long)g.late_ticks,
           (unsigned long long)g.behind_max, (unsigned long long)cpu_ms());
    bool first = true;
    for (int s = 0; s < 600; s++) {
        if (g.status_count[s] == 0)
            continue;
        printf("%s\"%d\":%llu", first ? "" : ",", s, (unsigned long long)g.status_count[s]);
        first = false;
    }
    printf("},\"first_error\":\"");
    json_escape(stdout, g.first_error);
    printf("\",\"latency_ms\":");
    hist_print_json_ms(&g.lat, stdout);
    printf("}\n");
    fflush(stdout);
}

static void finish(void)
{
    if (g.finished)
        return;
    g.finished = true;
    if (g.end_ns == 0)
        g.end_ns = uv_hrtime();
    report();
    uv_stop(g.loop);
}

static void stop_sending(void)
{
    if (g.stopping)
        return;
    g.stopping = true;
    uv_timer_stop(&g.tick);
    uv_timer_stop(&g.stop_timer);
    uv_timer_start(&g.drain_timer, on_drain_timer, (uint64_t)(g.drain_timeout_s * 1000), 0);
    maybe_finish();
}

static void maybe_finish(void)
{
    if (!g.stopping || g.finished)
        return;
    if (g.inflight == 0) {
        g.end_ns = uv_hrtime();
        finish();
    }
}

/* ---- connections ------------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *h)
{
    struct gconn *c = container_of((uv_tcp_t *)h, struct gconn, tcp);
    c->closing = false;
    if (g.finished || g.stopping)
        return;
    uv_timer_start(&c->retry, on_retry, RECONNECT_DELAY_MS, 0);
}

static void on_retry(uv_timer_t *t)
{
    start_conn(t->data);
}

static void conn_drop(struct gconn *c)
{
    if (c->closing)
        return;
    if (c->in_request) {
        /* The request may or may not have been acted on: it counts as lost. */
        request_done(c);
        g.lost++;
    }
    c->connected = false;
    c->closing = true;
    c->writing = false;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    maybe_finish();
}

static void on_write(uv_write_t *req, int status)
{
    struct gconn *c = container_of(req, struct gconn, wreq);
    c->writing = false;
    if (status != 0) {
        if (status != UV_ECANCELED)
            g.conn_errors++;
        conn_drop(c);
        return;
    }
    mark_idle(c);
    kick();
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(g.read_buf, sizeof(g.read_buf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct gconn *c = container_of((uv_tcp_t *)s, struct gconn, tcp);
    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->in_request)
            g.conn_errors++;
        conn_drop(c);
        return;
    }
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (err != HPE_OK && !(err == HPE_PAUSED && c->close_after)) {
        g.conn_errors++;
        if (!g.quiet)
            fprintf(stderr, "loadgen: bad response: %s\n", llhttp_get_error_reason(&c->parser));
        conn_drop(c);
        return;
    }
    if (c->close_after) {
        conn_drop(c);
    } else {
        mark_idle(c);
        kick();
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct gconn *c = container_of(req, struct gconn, creq);
    if (status != 0) {
        g.conn_errors++;
        if (!g.ever_connected) {
            if (g.finished)
                return;
            fprintf(stderr, "loadgen: cannot connect to %s: %s\n", g.host_port, uv_strerror(status));
            g.stopping = true;
            finish();
            return;
        }
        conn_drop(c);
        return;
    }
    g.ever_connected = true;
    c->connected = true;
    mark_idle(c);
    llhttp_init(&c->parser, HTTP_RESPONSE, &g.settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
    if (g.start_ns == 0) {
        /* The clock starts with the first connection. */
        g.start_ns = uv_hrtime();
        if (g.rate > 0)
            uv_timer_start(&g.tick, on_tick, TICK_MS, TICK_MS);
        if (g.duration_s > 0)
            uv_timer_start(&g.stop_timer, on_stop_timer, (uint64_t)(g.duration_s * 1000), 0);
    }
    kick();
}

static void start_conn(struct gconn *c)
{
    if (g.finished || g.stopping)
        return;
    c->close_after = false;
    uv_tcp_init(g.loop, &c->tcp);
    uv_tcp_nodelay(&c->tcp, 1);
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&g.addr, on_connect);
    if (rc != 0) {
        fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(rc));
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
}

/* ---- requests ---------------------------------------------------------------- */

static void send_one(struct gconn *c)
{
    uint64_t seq = g.seq_start + g.sent;
    uint64_t now = uv_hrtime();
    char body_head[160];
    int bh = snprintf(body_head, sizeof(body_head),
                      "{\"EventName\":\"%s\",\"PrimaryKey\":%llu,\"Data\":{\"bench_t_ns\":%llu,\"seq\":%llu", g.event,
                      (unsigned long long)(seq % INT32_MAX), (unsigned long long)now, (unsigned long long)seq);
    size_t body_len = (size_t)bh + (g.pad ? 9 + g.pad : 0) + 2;
    size_t need = 512 + strlen(g.path) + strlen(g.key ? g.key : "") + body_len;
    if (need > c->buf_cap) {
        free(c->buf);
        c->buf = malloc(need);
        c->buf_cap = need;
        if (c->buf == NULL) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    int n = snprintf(c->buf, c->buf_cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\n%s%s%sContent-Type: application/json\r\nContent-Length: "
                     "%zu\r\n\r\n%s",
                     g.path, g.host_port, g.key ? "Authorization: Bearer " : "", g.key ? g.key : "",
                     g.key ? "\r\n" : "", body_len, body_head);
    size_t len = (size_t)n;
    if (g.pad) {
        memcpy(c->buf + len, ",\"pad\":\"", 8);
        len += 8;
        memcpy(c->buf + len, g.pad_text, g.pad);
        len += g.pad;
        c->buf[len++] = '"';
    }
    c->buf[len++] = '}';
    c->buf[len++] = '}';
    c->in_request = true;
    g.inflight++;
    c->writing = true;
    c->sent_ns = now;
    c->resp_len = 0;
    g.sent++;
    g.last_send_ns = now;
    /* A direct write first: it usually takes the whole request, and costs no
     * write request, callback or epoll_ctl. */
    uv_buf_t b = uv_buf_init(c->buf, (unsigned)len);
    int rc = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rc == (int)len) {
        c->writing = false;
        return;
    }
    if (rc < 0 && rc != UV_EAGAIN) {
        c->writing = false;
        g.conn_errors++;
        conn_drop(c);
        return;
    }
    if (rc > 0)
        b = uv_buf_init(c->buf + rc, (unsigned)(len - (size_t)rc));
    rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        c->writing = false;
        g.conn_errors++;
        conn_drop(c);
    }
}

static bool may_send(uint64_t now)
{
    if (g.stopping)
        return false;
    if (g.max_requests && g.sent >= g.max_requests)
        return false;
    if (g.rate > 0) {
        uint64_t due = (uint64_t)(g.rate * (double)(now - g.start_ns) / 1e9) + 1;
        return g.sent < due;
    }
    return true;
}

static void kick(void)
{
    if (g.stopping || g.start_ns == 0)
        return;
    uint64_t now = uv_hrtime();
    while (g.nidle > 0 && may_send(now)) {
        struct gconn *c = g.idle[--g.nidle];
        c->listed = false;
        if (is_idle(c))
            send_one(c);
    }
    if (g.rate > 0 && may_send(now)) {
        /* Due but every connection is busy: the server is behind the rate. */
        uint64_t due = (uint64_t)(g.rate * (double)(now - g.start_ns) / 1e9) + 1;
        if (g.max_requests && due > g.max_requests)
            due = g.max_requests;
        g.late_ticks++;
        if (due - g.sent > g.behind_max)
            g.behind_max = due - g.sent;
    }
    if (g.max_requests && g.sent >= g.max_requests)
        stop_sending();
}

/* ---- response parsing -------------------------------------------------------- */

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct gconn *c = p->data;
    size_t room = RESP_BODY_KEEP - c->resp_len;
    if (len > room)
        len = room;
    memcpy(c->resp_body + c->resp_len, at, len);
    c->resp_len += len;
    c->resp_body[c->resp_len] = '\0';
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    struct gconn *c = p->data;
    uint64_t now = uv_hrtime();
    int status = p->status_code;
    if (!c->in_request)
        return HPE_USER; /* an answer nobody asked for */
    request_done(c);
    hist_add(&g.lat, now - c->sent_ns);
    g.status_count[status >= 0 && status < 600 ? status : 0]++;
    if (status >= 200 && status < 300) {
        g.ok++;
    } else {
        g.failed++;
        if (g.first_error_status == 0) {
            g.first_error_status = status;
            snprintf(g.first_error, sizeof(g.first_error), "%d %s", status, c->resp_body);
            fprintf(stderr, "loadgen: POST http://%s%s answered %s\n", g.host_port, g.path, g.first_error);
        }
        if (!g.keep_going)
            stop_sending();
    }
    if (!llhttp_should_keep_alive(p)) {
        c->close_after = true;
        return HPE_PAUSED;
    }
    if (g.stopping)
        maybe_finish();
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    struct gconn *c = p->data;
    c->resp_len = 0;
    c->resp_body[0] = '\0';
    return 0;
}

/* ---- timers and signals ------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    (void)t;
    kick();
}

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    stop_sending();
}

static void on_drain_timer(uv_timer_t *t)
{
    (void)t;
    if (g.stopping && !g.finished) {
        fprintf(stderr, "loadgen: %zu requests still unanswered after the drain timeout\n", g.inflight);
        g.lost += g.inflight;
        g.end_ns = uv_hrtime();
        finish();
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    stop_sending();
}

/* ---- options ----------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --url http://IPv4:PORT/PATH [options]\n"
               "  -c, --connections N  kept-alive connections, one request in flight each (8)\n"
               "  -r, --rate R         requests/s in total; 0 sends as fast as answered (0)\n"
               "  -d, --duration S     stop sending after S seconds (10 unless --requests)\n"
               "  -n, --requests N     stop sending after N requests\n"
               "  -k, --key KEY        sent as Authorization: Bearer KEY\n"
               "  -e, --event NAME     EventName (bench.event)\n"
               "      --pad N          add N bytes of padding to Data (0)\n"
               "      --seq-start N    first sequence number (0)\n"
               "      --drain-timeout S  wait this long for answers after the last send (30)\n"
               "      --keep-going     do not stop at the first non-2xx answer\n"
               "      --quiet          no progress messages on stderr\n"
               "Prints one JSON object with the results to stdout.\n");
}

static double parse_double(const char *opt, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
        fprintf(stderr, "loadgen: %s must be a number in %g..%g\n", opt, min, max);
        exit(2);
    }
    return v;
}

static int parse_url(const char *url)
{
    static char host[64], path[1024];
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        fprintf(stderr, "loadgen: --url must start with http://\n");
        return -1;
    }
    p += 7;
    const char *slash = strchr(p, '/');
    size_t hp_len = slash ? (size_t)(slash - p) : strlen(p);
    if (hp_len == 0 || hp_len >= sizeof(host)) {
        fprintf(stderr, "loadgen: bad host in --url\n");
        return -1;
    }
    memcpy(host, p, hp_len);
    host[hp_len] = '\0';
    snprintf(g.host_port, sizeof(g.host_port), "%s", host);
    snprintf(path, sizeof(path), "%s", slash ? slash : "/");
    g.path = path;
    char *colon = strrchr(host, ':');
    int port = 80;
    if (colon != NULL) {
        *colon = '\0';
        port = (int)parse_double("--url port", colon + 1, 1, 65535);
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (uv_ip4_addr(host, port, &g.addr) != 0) {
        fprintf(stderr, "loadgen: --url host must be an IPv4 address\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    g.nconns = 8;
    g.event = "bench.event";
    g.drain_timeout_s = 30;
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"connections", required_argument, NULL, 'c'},
                                         {"rate", required_argument, NULL, 'r'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"requests", required_argument, NULL, 'n'},
                                         {"key", required_argument, NULL, 'k'},
                                         {"event", required_argument, NULL, 'e'},
                                         {"pad", required_argument, NULL, 'P'},
                                         {"seq-start", required_argument, NULL, 'S'},
                                         {"drain-timeout", required_argument, NULL, 'D'},
                                         {"keep-going", no_argument, NULL, 'K'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    bool duration_given = false;
    while ((o = getopt_long(argc, argv, "u:c:r:d:n:k:e:", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'c': g.nconns = (int)parse_double("--connections", optarg, 1, MAX_CONNS); break;
        case 'r': g.rate = parse_double("--rate", optarg, 0, 1e8); break;
        case 'd':
            g.duration_s = parse_double("--duration", optarg, 0, 86400);
            duration_given = true;
            break;
        case 'n': g.max_requests = (uint64_t)parse_double("--requests", optarg, 0, 1e12); break;
        case 'k': g.key = optarg; break;
        case 'e': g.event = optarg; break;
        case 'P': g.pad = (size_t)parse_double("--pad", optarg, 0, MAX_PAD); break;
        case 'S': g.seq_start = (uint64_t)parse_double("--seq-start", optarg, 0, 1e15); break;
        case 'D': g.drain_timeout_s = parse_double("--drain-timeout", optarg, 0, 3600); break;
        case 'K': g.keep_going = true; break;
        case 'q': g.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (url == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (parse_url(url) != 0)
        return 2;
    if (!duration_given && g.max_requests == 0)
        g.duration_s = 10;
    if (strpbrk(g.event, "\"\\") != NULL) {
        fprintf(stderr, "loadgen: --event must not contain quotes or backslashes\n");
        return 2;
    }
    if (g.pad) {
        g.pad_text = malloc(g.pad);
        if (g.pad_text == NULL)
            return 1;
        memset(g.pad_text, 'x', g.pad);
    }
    signal(SIGPIPE, SIG_IGN);

    g.loop = uv_default_loop();
    llhttp_settings_init(&g.settings);
    g.settings.on_message_begin = on_message_begin;
    g.settings.on_body = on_body;
    g.settings.on_message_complete = on_message_complete;
    g.conns = calloc((size_t)g.nconns, sizeof(*g.conns));
    g.idle = calloc((size_t)g.nconns, sizeof(*g.idle));
    if (g.conns == NULL || g.idle == NULL)
        return 1;

    uv_timer_init(g.loop, &g.tick);
    uv_timer_init(g.loop, &g.stop_timer);
    uv_timer_init(g.loop, &g.drain_timer);
    uv_signal_init(g.loop, &g.sig_int);
    uv_signal_init(g.loop, &g.sig_term);
    uv_signal_start(&g.sig_int, on_signal, SIGINT);
    uv_signal_start(&g.sig_term, on_signal, SIGTERM);
    for (int i = 0; i < g.nconns; i++) {
        uv_timer_init(g.loop, &g.conns[i].retry);
        g.conns[i].retry.data = &g.conns[i];
        start_conn(&g.conns[i]);
    }
    uv_run(g.loop, UV_RUN_DEFAULT);
    if (!g.finished)
        finish();
    if (!g.ever_connected)
        return 1;
    if (g.failed > 0)
        return 3;
    if (g.lost > 0)
        return 1;
    return 0;
}
