/* resend.c: queueing an event for a webhook again, due at once (HK_OP_RESEND). */
#include "engine_int.h"

struct resend {
    hk_commit c;
    hk_engine *eng;
    void (*done)(uint32_t wid, uint64_t eid, int status, void *arg);
    void *arg;
};

static void resend_done(hk_commit *c, int status)
{
    struct resend *r = hk_container_of(c, struct resend, c);
    hk_engine *e = r->eng;
    r->done(c->op.u.resend.webhook_id, c->op.u.resend.event_id, status, r->arg);
    if (status == 0)
        hk__wake_owner(e, c->op.u.resend.webhook_id);
    free(r);
    hk__submitted(e);
}

void hk_engine_resend(hk_engine *e, uint32_t webhook_id, uint64_t event_id,
                      void (*done)(uint32_t webhook_id, uint64_t event_id, int status, void *arg), void *arg)
{
    struct resend *r = hk_calloc(1, sizeof(*r));
    r->eng = e;
    r->done = done;
    r->arg = arg;
    r->c.op.type = HK_OP_RESEND;
    r->c.op.now_ms = hk_clock_wall(e->clock);
    r->c.op.u.resend.webhook_id = webhook_id;
    r->c.op.u.resend.event_id = event_id;
    r->c.done = resend_done;
    hk__submit(e, &r->c);
}
