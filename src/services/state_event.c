/*
 * state_event.c: TRANSITIONAL. hk_engine_state_event stores a state event
 * in a commit of its own, for callers that have not moved to carrying it
 * in their own op (hk_op_webhook_put.event). It is the one place in the
 * services that writes through the store's LMDB wrapper (kv.h) and an
 * internal of the state layer (tables.h: the same routine the ops use); it
 * goes, with this file, once no caller is left.
 */
#include <string.h>

#include "engine_int.h"
#include "kv.h"
#include "log.h"
#include "tables.h"

struct state_event {
    hk_write w;
    hk_engine *eng;
    uint32_t id;
    uint64_t now_ms;
    char kind[16];
    char *reason;
    hk_state_event ev;
};

static int state_event_apply(hk_txn *txn, hk_write *w)
{
    struct state_event *s = hk_container_of(w, struct state_event, w);
    return hk__state_event_store(txn, s->now_ms, s->id, &s->ev);
}

static void state_event_done(hk_write *w, int status)
{
    struct state_event *s = hk_container_of(w, struct state_event, w);
    hk_engine *e = s->eng;
    if (status != 0)
        hk_error("state event webhook%u.%s could not be stored: %s", s->id, s->kind, hk_strerror(status));
    else
        hk__schedule_load(e, 0);
    free(s->reason);
    free(s);
    hk__submitted(e);
}

void hk_engine_state_event(hk_engine *e, uint32_t id, const char *kind, const char *detail)
{
    if (e == NULL || e->stopping)
        return;
    struct state_event *s = hk_calloc(1, sizeof(*s));
    s->eng = e;
    s->id = id;
    s->now_ms = hk_clock_wall(e->clock);
    snprintf(s->kind, sizeof(s->kind), "%s", kind);
    s->reason = detail != NULL ? hk_strdup(detail) : NULL;
    hk_engine_state_event_init(e, &s->ev, s->kind, s->reason);
    s->w.apply = state_event_apply;
    s->w.done = state_event_done;
    s->w.flags = HK_WRITE_ISOLATED;
    /* No request waits for it, so the engine itself must outlive its
     * commit: a stop waits for it like for an outcome. */
    e->committing++;
    hk_kv_submit(hk_store_kv(e->store), &s->w);
}
