/*
 * engine.c: the engine's life cycle: its options, start, the timers that
 * wake it (load, tick, prune, drain grace, waiting synchronous calls), the
 * orderly stop, its random generator and counters. What it does lives in
 * the modules listed in engine_int.h.
 */
#include "engine.h"

#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "random.h"

#define TICK_MS 1000 /* periodic walk of the queue: notices re-activated webhooks */
#define FIRST_PRUNE_MAX_MS 5000
#define MEMBER_TICKS 10 /* cluster mode: the node's sign of life every this many ticks */
#define DEF_LEASE_MS 300000

void hk_engine_opts_from_config(hk_engine_opts *o, const hk_config *cfg)
{
    memset(o, 0, sizeof(*o));
    o->max_inflight = cfg->max_inflight;
    o->concurrency_per_origin = cfg->concurrency_per_origin;
    o->retry_delays = cfg->retry_delays;
    o->nretry_delays = cfg->nretry_delays;
    o->retry_jitter_pct = cfg->retry_jitter_pct;
    o->retry_after_max_ms = cfg->retry_after_max_ms;
    o->disable_after = cfg->disable_after;
    o->idempotency_window_ms = cfg->idempotency_window_ms;
    o->log_retention_ms = cfg->log_retention_ms;
    o->prune_interval_ms = cfg->prune_interval_ms;
    o->log_deliveries = cfg->log_deliveries != NULL ? hk_log_deliveries_parse(cfg->log_deliveries) : 0;
    o->tick_ms = TICK_MS;
    o->sync_wait_ms = cfg->total_timeout_ms;
    /* Claimed deliveries wait in the window for their origin's slots, then
     * take up to total_timeout each on the wire: the lease covers a few of
     * those besides a minute, so that a live node's claims do not end. */
    o->lease_ms = cfg->cluster_lease_ms ? cfg->cluster_lease_ms : cfg->total_timeout_ms * 4 + 60000;
    /* Requests on the wire may finish (and their outcomes commit) for most
     * of the drain time; what is left then is cancelled and stays queued. */
    o->shutdown_grace_ms = cfg->shutdown_timeout_ms > 1000 ? cfg->shutdown_timeout_ms - 1000 : 0;
}

/* ---- random values -------------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna): fast, good statistical quality. */
static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t hk__rand(hk_engine *e)
{
    uint64_t *s = e->rng;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* splitmix64, to spread a test's small seed over the generator's state. */
static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- the engine's own writes ------------------------------------------------------ */

void hk__submit(hk_engine *e, hk_commit *c)
{
    e->committing++;
    hk_store_submit(e->store, c);
}

void hk__submitted(hk_engine *e)
{
    e->committing--;
    hk__maybe_finish_stop(e);
}

void hk__uuid(hk_engine *e, uint8_t uuid[16])
{
    /* From a generator seeded once from the kernel: unique and unpredictable
     * enough, without a system call per event. */
    uint64_t a = hk__rand(e), b = hk__rand(e);
    memcpy(uuid, &a, 8);
    memcpy(uuid + 8, &b, 8);
    uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40); /* version 4 */
    uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
}

void hk__finished(hk_engine *e, const hk_attempt *a)
{
    if (e->finished != NULL)
        e->finished(a, e->finished_arg);
    if (!a->success)
        hk_debug("webhook %u: attempt %u of event %s failed: %s", a->webhook_id, a->attempt, a->event_uuid, a->error);
}

/* ---- timers ---------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    hk_engine *e = t->data;
    if (hk_store_is_cluster(e->store)) {
        if (e->ticks++ % MEMBER_TICKS == 0)
            hk_store_member_seen(e->store, e->started_ms, hk_clock_wall(e->clock));
        hk__give_back_flush(e);
    }
    hk__schedule_load(e, 0);
    /* Successes committed lazily while no synced write came are made durable now. */
    hk_store_sync_lazy(e->store);
}

/* Cluster mode: a commit somewhere queued deliveries. */
static void on_queued(void *arg)
{
    hk__schedule_load(arg, 0);
}

static void on_prune_timer(uv_timer_t *t)
{
    hk__prune_start(t->data);
}

/* ---- life cycle ------------------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h);

int hk_engine_start(hk_engine **out, const hk_engine_deps *deps, const hk_engine_opts *opts)
{
    hk_engine *e = hk_calloc(1, sizeof(*e));
    e->loop = deps->loop;
    e->store = deps->store;
    e->clock = deps->clock;
    e->sender = deps->sender;
    e->finished = deps->finished;
    e->finished_arg = deps->finished_arg;
    e->group = deps->group;
    e->worker = deps->worker;
    e->o = *opts;
    /* The schedule is copied into the policy below; neither form is kept. */
    e->o.retry_delays = NULL;
    e->o.nretry_delays = 0;
    e->o.retry_schedule = NULL;
    if (e->o.max_inflight == 0)
        e->o.max_inflight = 1;
    if (e->o.concurrency_per_origin == 0)
        e->o.concurrency_per_origin = 1;
    if (e->o.lease_ms == 0)
        e->o.lease_ms = DEF_LEASE_MS;
    e->started_ms = hk_clock_wall(e->clock);
    int rc = opts->retry_delays != NULL
                 ? hk_retry_policy_set(&e->policy, opts->retry_delays, opts->nretry_delays, opts->retry_jitter_pct,
                                       opts->retry_after_max_ms, opts->disable_after)
                 : hk_retry_policy_init(&e->policy, opts->retry_schedule ? opts->retry_schedule : "",
                                        opts->retry_jitter_pct, opts->retry_after_max_ms, opts->disable_after);
    if (rc != 0) {
        if (opts->retry_delays != NULL)
            hk_error("delivery.retry_schedule: no attempts");
        else
            hk_error("delivery.retry_schedule: expected comma-separated durations, got \"%s\"",
                     opts->retry_schedule ? opts->retry_schedule : "");
        free(e);
        return HK_ECONFIG;
    }
    if (opts->seed != 0) {
        uint64_t x = opts->seed;
        for (size_t i = 0; i < 4; i++)
            e->rng[i] = splitmix(&x);
    } else {
        hk_random(e->rng, sizeof(e->rng));
    }
    hk__sched_init(e);
    uv_timer_t *timers[] = {&e->load_timer, &e->tick, &e->prune_timer, &e->grace_timer, &e->wait_timer};
    for (size_t i = 0; i < HK_ARRAY_SIZE(timers); i++) {
        uv_timer_init(e->loop, timers[i]);
        timers[i]->data = e;
    }
    e->open_handles = (int)HK_ARRAY_SIZE(timers);
    if ((rc = hk__group_join(e)) != 0) {
        hk_error("engine: cannot join the workers' group: %s", hk_strerror(rc));
        for (size_t i = 0; i < HK_ARRAY_SIZE(timers); i++)
            uv_close((uv_handle_t *)timers[i], on_timer_closed);
        return rc; /* freed by the last close, with no stopped callback */
    }
    if (e->o.tick_ms != 0)
        uv_timer_start(&e->tick, on_tick, e->o.tick_ms, e->o.tick_ms);
    if (e->o.prune_interval_ms != 0)
        uv_timer_start(&e->prune_timer, on_prune_timer,
                       e->o.prune_interval_ms < FIRST_PRUNE_MAX_MS ? e->o.prune_interval_ms : FIRST_PRUNE_MAX_MS,
                       e->o.prune_interval_ms);
    if (hk_store_is_cluster(e->store)) {
        hk_store_member_seen(e->store, e->started_ms, e->started_ms);
        if ((rc = hk_store_on_queue(e->store, on_queued, e)) != 0)
            hk_warn("engine: no notifications of queued deliveries (%s): the queue is claimed from every tick",
                    hk_strerror(rc));
    }
    hk__schedule_load(e, 0);
    *out = e;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    hk_engine *e = h->data;
    if (--e->open_handles > 0)
        return;
    void (*cb)(void *) = e->stopped;
    void *arg = e->stopped_arg;
    hk__sched_free(e);
    hk_retry_policy_free(&e->policy);
    free(e);
    if (cb != NULL)
        cb(arg);
}

static void on_sender_closed(void *arg)
{
    hk_engine *e = arg;
    e->sender_closed = true;
    hk__maybe_finish_stop(e);
}

static void close_sender(hk_engine *e)
{
    if (e->sender_closing)
        return;
    e->sender_closing = true;
    uv_timer_stop(&e->grace_timer);
    e->sender.close(e->sender.ctx, on_sender_closed, e);
}

static void on_released(int status, void *arg)
{
    HK_UNUSED(status); /* logged by the store; the leases end by themselves */
    hk__submitted(arg);
}

void hk__maybe_finish_stop(hk_engine *e)
{
    if (!e->stopping || e->closing)
        return;
    if (e->in_flight == 0 && e->sync_active == 0 && !e->sender_closing)
        close_sender(e);
    if (!e->sender_closed || e->committing > 0 || e->in_flight > 0 || e->sync_active > 0)
        return;
    if (hk_store_is_cluster(e->store) && !e->released) {
        /* What this node claimed and did not attempt is anybody's at once, not when the leases end. */
        e->released = true;
        e->committing++;
        hk_store_release(e->store, NULL, 0, on_released, e);
        return;
    }
    e->closing = true;
    uv_close((uv_handle_t *)&e->load_timer, on_timer_closed);
    uv_close((uv_handle_t *)&e->tick, on_timer_closed);
    uv_close((uv_handle_t *)&e->prune_timer, on_timer_closed);
    uv_close((uv_handle_t *)&e->grace_timer, on_timer_closed);
    uv_close((uv_handle_t *)&e->wait_timer, on_timer_closed);
    if (e->group != NULL)
        uv_close((uv_handle_t *)&e->inbox, on_timer_closed);
}

static void on_grace_timeout(uv_timer_t *t)
{
    hk_engine *e = t->data;
    hk_warn("engine: shutdown grace over: %u deliveries still on the wire cancelled (they stay queued), %u "
            "synchronous calls cancelled",
            e->in_flight, e->sync_active);
    close_sender(e);
}

void hk_engine_stop(hk_engine *e, void (*stopped)(void *arg), void *arg)
{
    if (e->stopping) {
        /* Called again: the grace ends now. */
        if (!e->closing)
            close_sender(e);
        return;
    }
    e->stopping = true;
    if (hk_store_is_cluster(e->store) && hk_store_on_queue(e->store, NULL, NULL) != 0)
        hk_debug("engine: the queue's notifications could not be turned off");
    hk__group_leave(e); /* nothing more is handed over */
    e->stopped = stopped;
    e->stopped_arg = arg;
    uv_timer_stop(&e->load_timer);
    uv_timer_stop(&e->tick);
    uv_timer_stop(&e->prune_timer);
    /* Synchronous calls still waiting for a slot get their answer now. */
    hk__slot_expire(e);
    if (e->in_flight == 0 && e->sync_active == 0) {
        close_sender(e);
        return;
    }
    uv_timer_start(&e->grace_timer, on_grace_timeout, e->o.shutdown_grace_ms, 0);
}

bool hk_engine_stopping(const hk_engine *e)
{
    return e->stopping;
}

void hk_engine_kick(hk_engine *e)
{
    if (e->stopping)
        return;
    hk__kick_others(e);
    hk__kick_here(e);
}

void hk__kick_here(hk_engine *e)
{
    if (e->stopping)
        return;
    hk__slot_expire(e);
    /* The load timer may be armed for a moment that has passed on this
     * clock (a test moved it): walk now. */
    uv_timer_stop(&e->load_timer);
    e->load_at = 0;
    hk__new_pass(e, true); /* whatever changed is seen */
    hk__load(e);
}

void hk_engine_get_stats(const hk_engine *e, hk_engine_stats *out)
{
    if (e->group != NULL) {
        hk_engine_group_stats(e->group, out);
        return;
    }
    *out = e->stats;
    out->in_memory = e->mem;
    out->in_flight = e->in_flight;
    out->waiting = e->waiting;
}
