/* resend.c: queueing an event for a webhook again, due at once. */
#include "engine_int.h"

struct resend {
    hk_write w;
    hk_engine *eng;
    uint32_t wid;
    uint64_t eid;
    uint64_t due;
    void (*done)(uint32_t wid, uint64_t eid, int status, void *arg);
    void *arg;
};

static int resend_apply(hk_txn *txn, hk_write *w)
{
    struct resend *r = hk_container_of(w, struct resend, w);
    uint8_t wk[4], ek[8], q[20], qv[12];
    hk_val v;
    hk_be32(wk, r->wid);
    hk_be64(ek, r->eid);
    if (hk_get(txn, HK_DB_WEBHOOKS, wk, 4, &v) != 0 || hk_get(txn, HK_DB_EVENTS, ek, 8, &v) != 0)
        return HK_ENOTFOUND;
    hk_be32(q, r->wid);
    hk_be64(q + 4, r->due);
    hk_be64(q + 12, r->eid);
    hk_be32(qv, 0);
    hk_be64(qv + 4, r->due);
    return hk_put(txn, HK_DB_QUEUE, q, sizeof(q), qv, sizeof(qv), 0);
}

static void resend_done(hk_write *w, int status)
{
    struct resend *r = hk_container_of(w, struct resend, w);
    hk_engine *e = r->eng;
    r->done(r->wid, r->eid, status, r->arg);
    if (status == 0)
        hk__schedule_load(e, 0);
    free(r);
    hk__submitted(e);
}

void hk_engine_resend(hk_engine *e, uint32_t webhook_id, uint64_t event_id,
                      void (*done)(uint32_t webhook_id, uint64_t event_id, int status, void *arg), void *arg)
{
    struct resend *r = hk_calloc(1, sizeof(*r));
    r->eng = e;
    r->wid = webhook_id;
    r->eid = event_id;
    r->due = hk_clock_wall(e->clock);
    r->done = done;
    r->arg = arg;
    hk__submit(e, &r->w, resend_apply, resend_done, HK_WRITE_ISOLATED);
}
