/*
 * store_port.c: submitting ops from other threads. A server with several
 * workers (event loops, one thread each) has one store, opened on the
 * first worker's loop, whose group commit runs there; every other worker
 * opens a port. An op submitted on a port's thread is handed to the
 * store's loop through a queue (a mutex and a uv_async_t: the only lock
 * an op takes on its way), submitted there to the group commit like any
 * other, and its done is handed back the same way to the port's loop,
 * where it runs. So one group commit (one log append and sync) holds the
 * ops of every worker, and each done runs on the thread that submitted.
 * The hand-over is engine-agnostic: it sits above hk_store_submit.
 */
#include <stdlib.h>

#include "log.h"
#include "store_int.h"

/* The store's side: ops from the ports, waiting for the store's loop. */
struct hk__share {
    hk_store *store;
    uv_mutex_t mu;
    hk_commit *head, *tail; /* guarded by mu */
    uv_async_t async;       /* on the store's loop */
    bool open;              /* guarded by mu: ports may submit */
};

struct hk_store_port {
    hk_store *store;
    uv_loop_t *loop;
    uv_mutex_t mu;
    hk_commit *head, *tail; /* done ops back from the store's loop, guarded by mu */
    uv_async_t async;       /* on the port's loop */
    uint64_t outstanding;   /* ops submitted here whose done has not run (the port's thread only) */
};

/* The port of the calling thread, if it has one. */
static __thread hk_store_port *thread_port;

static void push(hk_commit **head, hk_commit **tail, hk_commit *c)
{
    c->next = NULL;
    if (*tail != NULL)
        (*tail)->next = c;
    else
        *head = c;
    *tail = c;
}

/* Hands c back to its port's loop, where its done runs with status. */
static void hand_back(hk_store_port *p, hk_commit *c, int status)
{
    c->status = status;
    uv_mutex_lock(&p->mu);
    push(&p->head, &p->tail, c);
    uv_mutex_unlock(&p->mu);
    uv_async_send(&p->async);
}

/* On the store's loop: a forwarded op is done; its done goes back to its port. */
static void forwarded_done(hk_commit *c, int status)
{
    c->done = c->port_done;
    hand_back(c->port, c, status);
}

/* On the store's loop: takes the ports' ops into the group commit. */
static void share_wake(uv_async_t *a)
{
    struct hk__share *sh = a->data;
    uv_mutex_lock(&sh->mu);
    hk_commit *c = sh->head;
    sh->head = sh->tail = NULL;
    uv_mutex_unlock(&sh->mu);
    while (c != NULL) {
        hk_commit *next = c->next;
        c->port_done = c->done;
        c->done = forwarded_done;
        hk__store_submit_here(sh->store, c);
        c = next;
    }
}

/* On the port's loop: runs the done callbacks handed back. */
static void port_wake(uv_async_t *a)
{
    hk_store_port *p = a->data;
    uv_mutex_lock(&p->mu);
    hk_commit *c = p->head;
    p->head = p->tail = NULL;
    uv_mutex_unlock(&p->mu);
    while (c != NULL) {
        hk_commit *next = c->next;
        c->port = NULL;
        c->next = NULL;
        if (--p->outstanding == 0)
            uv_unref((uv_handle_t *)&p->async);
        c->done(c, c->status);
        c = next;
    }
}

int hk_store_share(hk_store *s)
{
    struct hk__share *sh = hk_calloc(1, sizeof(*sh));
    uv_loop_t *loop = hk__store_loop(s);
    if (loop == NULL) {
        free(sh);
        return HK_EINVAL;
    }
    sh->store = s;
    int rc = uv_async_init(loop, &sh->async, share_wake);
    if (rc != 0) {
        free(sh);
        return rc;
    }
    uv_mutex_init(&sh->mu);
    sh->async.data = sh;
    sh->open = true;
    /* It keeps the loop alive only while work is queued (see hk_store_busy). */
    uv_unref((uv_handle_t *)&sh->async);
    hk__store_set_share(s, sh);
    return 0;
}

static void share_closed(uv_handle_t *h)
{
    struct hk__share *sh = h->data;
    uv_mutex_destroy(&sh->mu);
    free(sh);
}

void hk_store_unshare(hk_store *s)
{
    struct hk__share *sh = hk__store_share(s);
    if (sh == NULL)
        return;
    uv_mutex_lock(&sh->mu);
    sh->open = false;
    bool queued = sh->head != NULL;
    uv_mutex_unlock(&sh->mu);
    if (queued) /* a port closed with ops in flight: a defect of its owner */
        hk_error("store: a worker's ops were left unsubmitted at shutdown");
    hk__store_set_share(s, NULL);
    uv_close((uv_handle_t *)&sh->async, share_closed);
}

bool hk__share_busy(struct hk__share *sh)
{
    uv_mutex_lock(&sh->mu);
    bool busy = sh->head != NULL;
    uv_mutex_unlock(&sh->mu);
    return busy;
}

int hk_store_port_open(hk_store *s, uv_loop_t *loop, hk_store_port **out)
{
    if (hk__store_share(s) == NULL || thread_port != NULL)
        return HK_EINVAL;
    hk_store_port *p = hk_calloc(1, sizeof(*p));
    p->store = s;
    p->loop = loop;
    int rc = uv_async_init(loop, &p->async, port_wake);
    if (rc != 0) {
        free(p);
        return rc;
    }
    uv_mutex_init(&p->mu);
    p->async.data = p;
    uv_unref((uv_handle_t *)&p->async);
    hk__store_thread_loop(s, loop);
    thread_port = p;
    *out = p;
    return 0;
}

bool hk_store_port_busy(const hk_store_port *p)
{
    return p != NULL && p->outstanding > 0;
}

static void port_closed(uv_handle_t *h)
{
    hk_store_port *p = h->data;
    uv_mutex_destroy(&p->mu);
    free(p);
}

void hk_store_port_close(hk_store_port *p)
{
    if (p == NULL)
        return;
    if (p->outstanding > 0)
        hk_error("store: a worker's port closed with %llu ops in flight", (unsigned long long)p->outstanding);
    if (thread_port == p)
        thread_port = NULL;
    hk__store_thread_loop(p->store, NULL);
    uv_close((uv_handle_t *)&p->async, port_closed);
}

bool hk__port_forward(hk_store *s, hk_commit *c)
{
    hk_store_port *p = thread_port;
    if (p == NULL || p->store != s)
        return false;
    struct hk__share *sh = hk__store_share(s);
    c->port = p;
    c->status = 0;
    p->outstanding++;
    /* The async handle keeps the port's loop running until the done is back. */
    if (p->outstanding == 1)
        uv_ref((uv_handle_t *)&p->async);
    uv_mutex_lock(&sh->mu);
    bool open = sh->open;
    if (open)
        push(&sh->head, &sh->tail, c);
    uv_mutex_unlock(&sh->mu);
    if (open) {
        uv_async_send(&sh->async);
        return true;
    }
    /* Only after hk_store_unshare, which waits for every port to close: answered as a stopping store. */
    hand_back(p, c, HK_ESHUTDOWN);
    return true;
}
