/*
 * test_resolver.c: c-ares on the loop, against DNS servers the test runs
 * itself on 127.0.0.1 (nothing leaves the machine): one that answers
 * (A records, NXDOMAIN), one that never answers. Checks answers, errors,
 * timeouts, that a hanging server delays nothing else (other lookups,
 * /etc/hosts names, the threadpool), cancellation and closing.
 */
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>
#include <uv.h>

#include "resolver.h"
#include "unit.h"

static uv_loop_t loop;

/* ---- a DNS server on the loop ------------------------------------------------------ */

struct dns_server {
    uv_udp_t udp;
    int port;
    bool answer; /* false: read and drop every query */
    int queries;
};

static void dns_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char mem[1500];
    (void)h, (void)suggested;
    *buf = uv_buf_init(mem, sizeof(mem));
}

static void dns_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

/* The name in a query, dotted, into out; returns the offset after the question (0 when malformed). */
static size_t question(const unsigned char *q, size_t len, char *out, size_t outlen, unsigned *qtype)
{
    size_t i = 12, o = 0;
    while (i < len && q[i] != 0) {
        size_t l = q[i++];
        if (i + l > len || o + l + 2 > outlen)
            return 0;
        if (o > 0)
            out[o++] = '.';
        memcpy(out + o, q + i, l);
        o += l;
        i += l;
    }
    out[o] = '\0';
    if (i + 5 > len)
        return 0;
    *qtype = (unsigned)q[i + 1] << 8 | q[i + 2];
    return i + 5;
}

/* Answers "ok-*.hookd.test" with 127.0.0.9 (A only), anything else NXDOMAIN. */
static void dns_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf, const struct sockaddr *from, unsigned flags)
{
    (void)flags;
    struct dns_server *s = h->data;
    if (n <= 12 || from == NULL)
        return;
    s->queries++;
    if (!s->answer)
        return;
    const unsigned char *q = (const unsigned char *)buf->base;
    char name[256];
    unsigned qtype = 0;
    size_t qend = question(q, (size_t)n, name, sizeof(name), &qtype);
    if (qend == 0)
        return;
    bool ok = strncmp(name, "ok-", 3) == 0 && strstr(name, ".hookd.test") != NULL;
    bool a = ok && qtype == 1;
    struct {
        uv_udp_send_t req;
        unsigned char pkt[600];
    } *out = malloc(sizeof(*out));
    unsigned char *p = out->pkt;
    memcpy(p, q, qend);
    p[2] = 0x81;                /* response, recursion desired */
    p[3] = ok ? 0x80 : 0x83;    /* recursion available; NOERROR or NXDOMAIN */
    p[6] = 0, p[7] = a ? 1 : 0; /* answers */
    p[8] = p[9] = p[10] = p[11] = 0;
    size_t len = qend;
    if (a) {
        static const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 9};
        memcpy(p + len, rr, sizeof(rr));
        len += sizeof(rr);
    }
    uv_buf_t b = uv_buf_init((char *)out->pkt, (unsigned)len);
    if (uv_udp_send(&out->req, h, &b, 1, from, dns_sent) != 0)
        free(out);
}

static void on_udp_closed(uv_handle_t *h)
{
    ((struct dns_server *)h->data)->port = 0;
}

/* Closes the server and waits for it: its memory is the caller's stack. */
static void dns_stop(struct dns_server *s)
{
    uv_close((uv_handle_t *)&s->udp, on_udp_closed);
    while (s->port != 0)
        uv_run(&loop, UV_RUN_ONCE);
}

static void dns_start(struct dns_server *s, bool answer)
{
    memset(s, 0, sizeof(*s));
    s->answer = answer;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_udp_init(&loop, &s->udp);
    s->udp.data = s;
    CHECK_INT(uv_udp_bind(&s->udp, (struct sockaddr *)&a, 0), 0);
    int len = sizeof(a);
    uv_udp_getsockname(&s->udp, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    CHECK_INT(uv_udp_recv_start(&s->udp, dns_alloc, dns_recv), 0);
}

/* ---- lookups ---------------------------------------------------------------------- */

struct lookup {
    bool done;
    int status;
    size_t n;
    char first[64];
    char text[128];
    uint64_t ms;
    uint64_t start;
};

static void on_resolved(int status, const struct sockaddr_storage *addrs, size_t n, const char *text, void *arg)
{
    struct lookup *l = arg;
    l->done = true;
    l->status = status;
    l->n = n;
    l->ms = (uv_hrtime() - l->start) / 1000000u;
    snprintf(l->text, sizeof(l->text), "%s", text);
    l->first[0] = '\0';
    if (n > 0) {
        if (addrs[0].ss_family == AF_INET)
            uv_ip4_name((const struct sockaddr_in *)&addrs[0], l->first, sizeof(l->first));
        else
            uv_ip6_name((const struct sockaddr_in6 *)&addrs[0], l->first, sizeof(l->first));
    }
}

static void start(hk_resolver *r, const char *host, struct lookup *l, hk_resolve_req **req)
{
    memset(l, 0, sizeof(*l));
    l->start = uv_hrtime();
    CHECK_INT(hk_resolve(r, host, req, on_resolved, l), 0);
    CHECK(!l->done); /* never from within hk_resolve */
}

/* A callback that runs in a loop iteration's timer phase leaves UV_RUN_ONCE
 * blocked in the poll that follows; this ticker keeps that poll short. */
static uv_timer_t ticker;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void wait_for(struct lookup *l)
{
    while (!l->done)
        uv_run(&loop, UV_RUN_ONCE);
}

static hk_resolver *make(int port, uint64_t try_ms)
{
    char servers[64];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", port);
    hk_resolver_opts o = {.servers = servers, .try_timeout_ms = try_ms, .tries = 1};
    hk_resolver *r = NULL;
    CHECK_INT(hk_resolver_create(&r, &loop, &o), 0);
    if (r == NULL)
        exit(1);
    return r;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void close_resolver(hk_resolver *r)
{
    bool closed = false;
    hk_resolver_close(r, on_closed, &closed);
    CHECK(!closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
}

static void test_answers(void)
{
    struct dns_server dns;
    dns_start(&dns, true);
    hk_resolver *r = make(dns.port, 1000);
    struct lookup l;

    start(r, "ok-1.hookd.test", &l, NULL);
    wait_for(&l);
    CHECK_INT(l.status, 0);
    CHECK_INT(l.n, 1);
    CHECK_STR(l.first, "127.0.0.9");
    CHECK(dns.queries >= 1);

    start(r, "missing.hookd.test", &l, NULL);
    wait_for(&l);
    CHECK_INT(l.status, UV_EAI_NONAME);
    CHECK(l.text[0] != '\0');

    /* Literals and /etc/hosts names never reach a server. */
    int before = dns.queries;
    start(r, "127.0.0.1", &l, NULL);
    wait_for(&l);
    CHECK_INT(l.status, 0);
    CHECK_STR(l.first, "127.0.0.1");
    start(r, "::1", &l, NULL);
    wait_for(&l);
    CHECK_INT(l.status, 0);
    CHECK_STR(l.first, "::1");
    start(r, "localhost", &l, NULL);
    wait_for(&l);
    CHECK_INT(l.status, 0);
    CHECK(strcmp(l.first, "127.0.0.1") == 0 || strcmp(l.first, "::1") == 0);
    CHECK_INT(dns.queries, before);

    CHECK_INT(hk_resolve(r, "", NULL, on_resolved, &l), HK_EINVAL);
    CHECK_INT(hk_resolver_pending(r), 0);
    close_resolver(r);
    dns_stop(&dns);
}

static void on_work(uv_work_t *w)
{
    (void)w;
}

static void after_work(uv_work_t *w, int status)
{
    (void)status;
    *(uint64_t *)w->data = uv_hrtime();
}

static void test_hanging_server(void)
{
    struct dns_server dead;
    dns_start(&dead, false);
    hk_resolver *r = make(dead.port, 300);
    /* More hanging lookups than the threadpool has threads. */
    enum { HANGING = 12 };
    struct lookup hang[HANGING];
    for (int i = 0; i < HANGING; i++) {
        char name[64];
        snprintf(name, sizeof(name), "hang-%d.hookd.test", i);
        start(r, name, &hang[i], NULL);
    }
    /* Meanwhile names from /etc/hosts, literals and the threadpool go on at once. */
    struct lookup local, literal;
    start(r, "localhost", &local, NULL);
    start(r, "127.0.0.1", &literal, NULL);
    uint64_t t0 = uv_hrtime(), work_done = 0;
    uv_work_t w;
    w.data = &work_done;
    CHECK_INT(uv_queue_work(&loop, &w, on_work, after_work), 0);
    wait_for(&local);
    wait_for(&literal);
    while (work_done == 0)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK_INT(local.status, 0);
    CHECK_INT(literal.status, 0);
    CHECK((work_done - t0) / 1000000u < 200);
    for (int i = 0; i < HANGING; i++)
        CHECK(!hang[i].done);
    /* c-ares gives up on its own: one try of 300 ms. */
    for (int i = 0; i < HANGING; i++) {
        wait_for(&hang[i]);
        CHECK_INT(hang[i].status, UV_ETIMEDOUT);
        CHECK(hang[i].ms >= 250 && hang[i].ms < 3000);
    }
    CHECK(dead.queries >= HANGING);
    CHECK_INT(hk_resolver_pending(r), 0);
    close_resolver(r);
    dns_stop(&dead);
}

static void test_cancel_and_close(void)
{
    struct dns_server dead;
    dns_start(&dead, false);
    hk_resolver *r = make(dead.port, 300);
    struct lookup a, b, lit;
    hk_resolve_req *qa = NULL;
    start(r, "cancel-me.hookd.test", &a, &qa);
    CHECK(qa != NULL);
    hk_resolve_cancel(qa);
    start(r, "still-running.hookd.test", &b, NULL);
    start(r, "127.0.0.1", &lit, NULL); /* answered, not yet delivered */
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK_INT(hk_resolver_pending(r), 2); /* the cancelled one, whose query still runs, and b */
    bool closed = false;
    hk_resolver_close(r, on_closed, &closed);
    CHECK(b.done);
    CHECK_INT(b.status, UV_ECANCELED);
    CHECK(lit.done);
    CHECK_INT(lit.status, 0);
    CHECK(!a.done); /* cancelled: never called */
    struct lookup late;
    CHECK_INT(hk_resolve(r, "x.hookd.test", NULL, on_resolved, &late), HK_ESHUTDOWN);
    CHECK(!closed);
    while (!closed)
        uv_run(&loop, UV_RUN_ONCE);
    CHECK(!a.done);
    dns_stop(&dead);

    hk_resolver *bad = NULL;
    hk_resolver_opts o = {.servers = "not an address"};
    CHECK_INT(hk_resolver_create(&bad, &loop, &o), HK_EINVAL);
    CHECK(bad == NULL);
    hk_resolver_close(NULL, NULL, NULL);
}

int main(void)
{
    alarm(60);
    uv_loop_init(&loop);
    uv_timer_init(&loop, &ticker);
    uv_timer_start(&ticker, on_tick, 5, 5);
    test_answers();
    test_hanging_server();
    test_cancel_and_close();
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_INT(uv_loop_close(&loop), 0);
    return unit_done();
}
