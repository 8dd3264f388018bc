/*
 * test_store_port.c: ops submitted from other threads' loops through ports
 * (store_port.c) join the store's group commit, each done runs on the
 * thread that submitted it, and what they stored is read from every thread.
 */
#include <uv.h>

#include "state_fixture.h"

#define THREADS 3
#define OPS 200

static hk_store *store;
static uv_async_t finished; /* a worker thread has ended: wakes the store's loop */
static int threads_done;    /* on the store's loop */

struct worker {
    uv_thread_t tid;
    int index;
    uv_loop_t loop;
    hk_store_port *port;
    /* Counted on the worker's thread, checked by main after joining. */
    int done, failed, foreign_thread, found;
    int busy_after, loop_close; /* the port still busy once its loop ran out; uv_loop_close's result */
    uint64_t first_event, last_event;
};

struct sub {
    hk_commit c;
    struct worker *w;
};

static void sub_done(hk_commit *c, int status)
{
    struct sub *s = hk_container_of(c, struct sub, c);
    struct worker *w = s->w;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &w->tid))
        w->foreign_thread++;
    if (status != 0) {
        w->failed++;
    } else {
        uint64_t id = c->op.u.signal.event_id;
        if (w->first_event == 0)
            w->first_event = id;
        w->last_event = id;
        /* The event is read back on this thread, in its own read transaction. */
        hk_event ev;
        if (hk_store_event_get(store, id, &ev) == 0) {
            w->found += ev.primary_key == w->index;
            hk_event_free(&ev);
        }
    }
    w->done++;
    hk_op_free_out(&c->op);
    free(s);
}

static void worker_main(void *arg)
{
    struct worker *w = arg;
    w->tid = uv_thread_self();
    uv_loop_init(&w->loop);
    int rc = hk_store_port_open(store, &w->loop, &w->port);
    if (rc != 0) {
        w->failed = OPS;
        goto out;
    }
    for (int i = 0; i < OPS; i++) {
        struct sub *s = hk_calloc(1, sizeof(*s));
        s->w = w;
        s->c.op.type = HK_OP_SIGNAL;
        s->c.op.now_ms = 1000 + (uint64_t)i;
        hk_op_signal *sg = &s->c.op.u.signal;
        sg->name = "thing.created";
        sg->primary_key = w->index;
        sg->data = "{}";
        sg->data_len = 2;
        sg->changes = "[]";
        sg->changes_len = 2;
        sg->user_id = 1;
        sg->uuid[0] = (uint8_t)i;
        sg->uuid[1] = (uint8_t)w->index;
        s->c.done = sub_done;
        hk_store_submit(store, &s->c);
        if (i % 50 == 0)
            uv_run(&w->loop, UV_RUN_NOWAIT); /* some dones arrive while others are being submitted */
    }
    /* The port's handle keeps the loop running until every done is back. */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    w->busy_after = hk_store_port_busy(w->port);
    hk_store_port_close(w->port);
    uv_run(&w->loop, UV_RUN_DEFAULT);
out:
    w->loop_close = uv_loop_close(&w->loop);
    uv_async_send(&finished);
}

static void on_finished(uv_async_t *a)
{
    HK_UNUSED(a);
    /* Counted once per wake-up at least; the joins below are what wait. */
}

int main(void)
{
    uv_loop_t *loop = uv_default_loop();
    fx_mkdir();
    store = fx_open(loop);

    /* A port needs a shared store. */
    hk_store_port *p;
    CHECK_INT(hk_store_port_open(store, loop, &p), HK_EINVAL);
    CHECK_INT(hk_store_share(store), 0);

    uv_async_init(loop, &finished, on_finished);
    struct worker w[THREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < THREADS; i++) {
        w[i].index = i + 1;
        CHECK_INT(uv_thread_create(&w[i].tid, worker_main, &w[i]), 0);
    }
    /* The store's loop commits for every worker until they have all ended. */
    while (threads_done < THREADS) {
        uv_run(loop, UV_RUN_ONCE);
        threads_done = 0;
        for (int i = 0; i < THREADS; i++)
            threads_done += __atomic_load_n(&w[i].done, __ATOMIC_RELAXED) == OPS;
    }
    for (int i = 0; i < THREADS; i++)
        uv_thread_join(&w[i].tid);
    while (hk_store_busy(store))
        uv_run(loop, UV_RUN_ONCE);

    uint64_t total = 0;
    for (int i = 0; i < THREADS; i++) {
        CHECK_INT(w[i].done, OPS);
        CHECK_INT(w[i].failed, 0);
        CHECK_INT(w[i].foreign_thread, 0); /* every done ran on its submitter's thread */
        CHECK_INT(w[i].found, OPS);        /* and read its event there */
        CHECK(w[i].last_event > w[i].first_event);
        CHECK_INT(w[i].busy_after, 0);
        CHECK_INT(w[i].loop_close, 0); /* the port's handle closed with it */
        total += OPS;
    }
    /* Every op went through the one group commit: the store counted them all. */
    hk_store_counters c;
    hk_store_get_counters(store, &c);
    CHECK_INT(c.ops, total);
    CHECK(c.commits < total); /* grouped, not one commit per op */

    /* The main thread reads what the workers stored. */
    hk_event ev;
    CHECK_INT(hk_store_event_get(store, w[0].first_event, &ev), 0);
    CHECK_INT(ev.primary_key, 1);
    hk_event_free(&ev);

    hk_store_unshare(store);
    uv_close((uv_handle_t *)&finished, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    hk_store_close(store);
    CHECK_INT(uv_loop_close(loop), 0);
    fx_rmdir();
    return unit_done();
}
