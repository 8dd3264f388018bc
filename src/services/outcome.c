/*
 * outcome.c: what follows an attempt. The rules (outcome.h) are pure
 * functions; below them, the commit of a queued delivery's outcome: the
 * queue entry removed or moved to its retry time, the webhook's statistics
 * with the auto-disable rule, and the attempt record, in one write.
 */
#include "outcome.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "engine_int.h"
#include "log.h"
#include "metrics.h"

#define STORE_BACKOFF_MS 1000 /* after a failed outcome commit, doubling up to 32 s */
#define IMMEDIATE_MS 20       /* a retry due this soon stays in the window */

/* ---- the rules ------------------------------------------------------------------ */

int hk_retry_schedule_parse(const char *text, uint64_t **delays, size_t *n)
{
    char *copy = hk_strdup(text), *save = NULL;
    uint64_t *d = NULL;
    size_t cnt = 0;
    int rc = 0;
    for (char *t = strtok_r(copy, ", ", &save); t != NULL; t = strtok_r(NULL, ", ", &save)) {
        uint64_t ms;
        if (hk_parse_duration_ms(t, &ms) != 0) {
            rc = HK_EINVAL;
            goto out_free;
        }
        d = hk_realloc(d, (cnt + 1) * sizeof(*d));
        d[cnt++] = ms;
    }
    if (cnt == 0) {
        rc = HK_EINVAL;
        goto out_free;
    }
    free(copy);
    *delays = d;
    *n = cnt;
    return 0;
out_free:
    free(copy);
    free(d);
    return rc;
}

int hk_retry_policy_set(hk_retry_policy *p, const uint64_t *delays, size_t n, uint32_t jitter_pct,
                        uint64_t retry_after_max_ms, uint32_t disable_after)
{
    memset(p, 0, sizeof(*p));
    if (delays == NULL || n == 0)
        return HK_EINVAL;
    p->delays = hk_malloc(n * sizeof(*p->delays));
    memcpy(p->delays, delays, n * sizeof(*p->delays));
    p->n = n;
    p->jitter_pct = jitter_pct > 100 ? 100 : jitter_pct;
    p->retry_after_max_ms = retry_after_max_ms;
    p->disable_after = disable_after;
    return 0;
}

int hk_retry_policy_init(hk_retry_policy *p, const char *schedule, uint32_t jitter_pct, uint64_t retry_after_max_ms,
                         uint32_t disable_after)
{
    uint64_t *d;
    size_t n;
    memset(p, 0, sizeof(*p));
    int rc = hk_retry_schedule_parse(schedule, &d, &n);
    if (rc != 0)
        return rc;
    rc = hk_retry_policy_set(p, d, n, jitter_pct, retry_after_max_ms, disable_after);
    free(d);
    return rc;
}

void hk_retry_policy_free(hk_retry_policy *p)
{
    free(p->delays);
    memset(p, 0, sizeof(*p));
}

/* The jitter moves a delay by (r - 1) * pct percent, r in [0, 2] in steps of
 * a millionth: symmetric, and exactly at either bound for the extreme r. */
#define JITTER_STEPS 2000000u

/* 2^64 as a double: the first value a uint64_t cannot hold (converting it, or
 * anything larger, is undefined behaviour). */
#define TWO_POW_64 18446744073709551616.0

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t hk_retry_delay(const hk_retry_policy *p, uint32_t made, uint64_t rnd)
{
    if (made >= p->n)
        return 0;
    uint64_t base = p->delays[made];
    if (base == 0 || p->jitter_pct == 0)
        return base;
    double r = ((double)(rnd % (JITTER_STEPS + 1)) / (JITTER_STEPS / 2) - 1.0) * (double)p->jitter_pct / 100.0;
    double d = (double)base * (1.0 + r);
    if (d <= 0)
        return 0;
    return d >= TWO_POW_64 ? UINT64_MAX : (uint64_t)d;
}

void hk_retry_delay_bounds(const hk_retry_policy *p, uint32_t made, uint64_t *lo, uint64_t *hi)
{
    *lo = hk_retry_delay(p, made, 0);
    *hi = hk_retry_delay(p, made, JITTER_STEPS);
}

uint64_t hk_retry_span(const hk_retry_policy *p)
{
    uint64_t span = 0;
    for (size_t i = 0; i < p->n; i++) {
        /* delays[i] / 100 times at most 100 cannot wrap; the sums can. */
        uint64_t step = add_sat(p->delays[i], p->delays[i] / 100 * p->jitter_pct);
        span = add_sat(span, step > p->retry_after_max_ms ? step : p->retry_after_max_ms);
    }
    return span;
}

int hk_retry_after_parse(const char *value, uint64_t now_ms, uint64_t *delay_ms)
{
    char *end;
    while (*value == ' ' || *value == '\t')
        value++;
    if (value[0] >= '0' && value[0] <= '9') {
        unsigned long long s = strtoull(value, &end, 10);
        if (*end != '\0')
            return HK_EINVAL;
        /* A huge number of seconds is capped by the caller; keep it from wrapping. */
        *delay_ms = s > UINT64_MAX / 1000u ? UINT64_MAX : s * 1000u;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *p = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (p == NULL || *p != '\0')
        return HK_EINVAL;
    time_t t = timegm(&tm);
    if (t < 0)
        return HK_EINVAL;
    uint64_t at = (uint64_t)t * 1000u;
    *delay_ms = at > now_ms ? at - now_ms : 0;
    return 0;
}

void hk_outcome_decide(const hk_retry_policy *p, uint32_t made, const hk_client_result *r, uint64_t now_ms,
                       uint64_t rnd, hk_outcome *out)
{
    memset(out, 0, sizeof(*out));
    out->status = r->error == 0 ? r->status : 0;
    out->success = r->error == 0 && r->status >= 200 && r->status < 300;
    out->is410 = r->error == 0 && r->status == 410;
    if (r->error != 0)
        snprintf(out->error, sizeof(out->error), "%s", r->error_text ? r->error_text : hk_strerror(r->error));
    else if (!out->success)
        snprintf(out->error, sizeof(out->error), "%s", r->status_line ? r->status_line : "");
    if (out->success)
        return;
    if (out->is410 || made >= p->n) {
        out->exhausted = true;
        return;
    }
    uint64_t delay = hk_retry_delay(p, made, rnd);
    char buf[64];
    uint64_t ra;
    if (r->error == 0 && (r->status == 429 || r->status == 503) &&
        hk_client_header(r, "Retry-After", buf, sizeof(buf)) == 0 && hk_retry_after_parse(buf, now_ms, &ra) == 0) {
        if (ra > p->retry_after_max_ms)
            ra = p->retry_after_max_ms;
        if (ra > delay)
            delay = ra;
    }
    out->next_due_ms = add_sat(now_ms, delay);
}

/* a (alen bytes) then b (blen bytes) in a new string, cut at max (0: not cut). */
static char *concat(const char *a, size_t alen, const char *b, size_t blen, size_t max, size_t *len)
{
    if (max != 0 && alen > max)
        alen = max;
    if (max != 0 && alen + blen > max)
        blen = max - alen;
    char *s = hk_malloc(alen + blen + 1);
    memcpy(s, a, alen);
    memcpy(s + alen, b, blen);
    s[alen + blen] = '\0';
    *len = alen + blen;
    return s;
}

void hk_outcome_texts(const hk_client_result *r, const char *body, size_t body_len, bool body_when_unsent, size_t max,
                      char **request, size_t *request_len, char **response, size_t *response_len)
{
    const char *head = r->request_head ? r->request_head : "";
    bool sent = head[0] != '\0';
    *request = concat(head, strlen(head), body, sent || body_when_unsent ? body_len : 0, max, request_len);
    hk_outcome_response(r, max, response, response_len);
}

void hk_outcome_response(const hk_client_result *r, size_t max, char **response, size_t *response_len)
{
    if (r->error == 0 && r->status != 0) {
        /* status line CRLF headers CRLF body */
        /* status line CRLF headers CRLF body, in one buffer cut at max */
        size_t sl = strlen(r->status_line), hl = r->headers_len, n = sl + 2 + hl + 2 + r->body_len, o = 0;
        if (max != 0 && n > max)
            n = max;
        char *t = hk_malloc(n + 1);
        const char *parts[] = {r->status_line, "\r\n", r->headers, "\r\n", r->body};
        size_t lens[] = {sl, 2, hl, 2, r->body_len};
        for (size_t i = 0; i < HK_ARRAY_SIZE(parts) && o < n; i++) {
            size_t k = lens[i] < n - o ? lens[i] : n - o;
            if (k > 0)
                memcpy(t + o, parts[i], k);
            o += k;
        }
        t[n] = '\0';
        *response = t;
        *response_len = n;
    } else {
        *response = concat("", 0, "", 0, max, response_len);
    }
}

/* ---- the outcome's commit --------------------------------------------------------- */

/* Fills the job's attempt record from its current attempt (strings borrowed from the job). */
static void job_record(struct hk__job *j)
{
    j->rec = (hk_attempt){.webhook_id = j->d.webhook_id,
                          .event_id = j->d.event_id,
                          .event_name = j->event_name,
                          .event_uuid = j->uuid,
                          .attempt = j->d.attempts + 1,
                          .started_ms = j->started_ms,
                          .duration_ms = j->rec.duration_ms,
                          .success = j->out.success,
                          .status = j->out.status,
                          .error = j->out.error,
                          .url = j->url_copy,
                          .request = j->request,
                          .request_len = j->request_len,
                          .response = j->response,
                          .response_len = j->response_len,
                          .user_id = j->user_id,
                          .exhausted = j->out.exhausted,
                          .next_due_ms = j->out.next_due_ms};
    if (j->request == NULL) {
        /* A lean record: what this request had of its own; the event has the rest. */
        j->rec.lean = true;
        j->rec.user_agent = j->user_agent;
        j->rec.webhook_name = j->body->name;
        j->rec.props = j->body->props;
        j->rec.custom_headers = j->custom;
        j->rec.sig_so = j->sigs.so;
        j->rec.sig_standard = j->sigs.standard;
    }
}

void hk__disabled(hk_engine *e, uint32_t webhook_id, const char *error)
{
    hk_warn("webhook %u disabled (TooManyErrors): %s", webhook_id, error);
    HK_METRIC_ADD(hk_metrics.auto_disables, 1);
    struct hk__wstate *ws = hk__ws_lookup(e, webhook_id);
    if (ws != NULL)
        ws->active = false;
    /* The state event went into the same commit; its deliveries are in the queue. The
     * webhook's owner (another worker, after a synchronous call here) reads it anew. */
    hk__wake_owner(e, webhook_id);
}

/* One line per stored attempt, as [log] deliveries asks: failures at warn, successes at info. */
static void log_attempt(const hk_engine *e, const struct hk__job *j)
{
    bool ok = j->out.success;
    if (e->o.log_deliveries == HK_LOG_DELIVERIES_OFF || (ok && e->o.log_deliveries != HK_LOG_DELIVERIES_ALL))
        return;
    enum hk_log_level level = ok ? HK_LOG_INFO : HK_LOG_WARN;
    if (!hk_log_enabled(level))
        return;
    hk_log_field f[] = {HK_LOG_NUM("webhook_id", j->d.webhook_id),  HK_LOG_STR("event_id", j->uuid),
                        HK_LOG_STR("event", j->event_name),         HK_LOG_NUM("attempt", j->d.attempts + 1),
                        HK_LOG_NUM("status", j->out.status),        HK_LOG_NUM("ms", j->rec.duration_ms),
                        HK_LOG_STR("error", ok ? "" : j->out.error)};
    hk_log_fields(level, f, HK_ARRAY_SIZE(f), "delivery %s",
                  ok                 ? "succeeded"
                  : j->out.exhausted ? "failed, no retry left"
                                     : "failed");
}

static void outcome_done(hk_commit *c, int status)
{
    struct hk__job *j = hk_container_of(c, struct hk__job, c);
    hk_engine *e = j->eng;
    struct hk__wstate *ws = j->ws;
    const hk_op_outcome *o = &c->op.u.outcome;
    uint64_t now = hk_clock_wall(e->clock);
    if (status == 0) {
        e->store_failures = 0;
        e->backoff_until = 0;
    }
    if (status == 0 && o->vanished) {
        /* Its webhook was deleted (or its queue dropped): read it again now, so
         * that its other jobs leave the window instead of going on the wire. */
        ws->pass = 0;
        hk__ws_get(e, ws->id);
    }
    if (status == 0 && !o->vanished) {
        j->rec.disabled = o->disabled;
        j->rec.id = o->log_id;
        log_attempt(e, j);
        hk__finished(e, &j->rec);
        if (o->disabled)
            hk__disabled(e, j->d.webhook_id, j->out.error);
        if (j->out.exhausted)
            hk_warn("webhook %u: delivery of event %s exhausted after %u attempts: %s", j->d.webhook_id, j->uuid,
                    j->d.attempts + 1, j->out.error);
    }
    if (status != 0) {
        /* The outcome is not on disk, so the queue entry is as it was: it is
         * loaded and attempted again after a pause. The store keeps failing
         * (a full disk, say): back off further each time, or the receiver
         * would get the same delivery every second. */
        hk_warn("webhook %u: the outcome of event %s could not be stored: %s", j->d.webhook_id, j->uuid,
                hk_strerror(status));
        /* Cluster mode: the claim is given back, so that any node (this one after its pause) attempts it again. */
        if (hk_store_is_cluster(e->store))
            hk__give_back(e, &j->d);
        hk__job_drop(e, j);
        if (e->store_failures < 6)
            e->store_failures++;
        e->more_due = true;
        e->backoff_until = hk_clock_mono(e->clock) + (STORE_BACKOFF_MS << (e->store_failures - 1));
        hk__schedule_load(e, 0);
    } else if (!o->vanished && !j->out.success && !j->out.exhausted && !e->stopping && ws->active &&
               j->out.next_due_ms <= now + IMMEDIATE_MS && !hk_store_is_cluster(e->store)) {
        /* An immediate retry keeps its place in the window (and its body); not
         * in cluster mode, where the retry is queued unclaimed, for whichever
         * node claims it first. */
        j->d.due_ms = j->out.next_due_ms;
        j->d.attempts++;
        hk__job_requeue(e, j);
    } else {
        bool retry = !o->vanished && !j->out.success && !j->out.exhausted;
        uint64_t due = j->out.next_due_ms;
        hk__job_drop(e, j);
        if (e->more_due)
            hk__schedule_load(e, 0);
        else if (retry)
            hk__schedule_load(e, due > now ? due - now : 0);
    }
    hk__dispatch(e);
    hk__submitted(e);
}

void hk__outcome(hk_engine *e, struct hk__job *j, const hk_client_result *r)
{
    uint64_t now = hk_clock_wall(e->clock);
    hk_outcome_decide(&e->policy, j->d.attempts + 1, r, now, hk__rand(e), &j->out);
    /* url_copy is the URL the request went to (send_job); the texts are new.
     * A success keeps no copy of its request: the record keeps what it had
     * of its own (job_record) and the event the rest. A failure keeps the
     * request as sent, whatever made it fail. */
    free(j->request);
    free(j->response);
    free(j->user_agent);
    j->request = NULL;
    j->request_len = 0;
    j->user_agent = NULL;
    /* The cluster's attempt rows keep the request as sent (their schema has no lean parts). */
    bool lean = !hk_store_is_cluster(e->store) && j->out.success && r->request_head != NULL &&
                r->request_head[0] != '\0' && r->user_agent != NULL;
    if (lean) {
        j->user_agent = hk_strdup(r->user_agent);
        hk_outcome_response(r, HK_ATTEMPT_MAX_TEXT, &j->response, &j->response_len);
    } else {
        hk_outcome_texts(r, j->body->data, j->body->len, true, HK_ATTEMPT_MAX_TEXT, &j->request, &j->request_len,
                         &j->response, &j->response_len);
    }
    j->rec.duration_ms = hk_clock_mono(e->clock) - j->started_mono;
    job_record(j);
    hk_metrics_attempt(r->error, r->status, now > j->ts_ms ? now - j->ts_ms : 0);
    HK_METRIC_ADD(e->stats.attempts, 1);
    HK_METRIC_ADD(e->stats.successes, j->out.success);
    j->state = HK__JOB_COMMITTING;
    memset(&j->c, 0, sizeof(j->c));
    j->c.op.type = HK_OP_OUTCOME;
    j->c.op.now_ms = now;
    hk_op_outcome *o = &j->c.op.u.outcome;
    o->delivery = j->d;
    o->rec = &j->rec;
    o->is410 = j->out.is410;
    o->next_due_ms = j->out.success || j->out.exhausted ? 0 : j->out.next_due_ms;
    o->disable_after = e->policy.disable_after;
    hk_engine_state_event_init(e, &o->on_disable, "errors", j->out.error);
    j->c.done = outcome_done;
    /* A success lost in a crash only means the delivery is made again (at
     * least once): it need not wait for a sync of its own. A failure's
     * retry time and error count, and a disable, must hold. */
    j->c.flags = j->out.success ? HK_COMMIT_LAZY : 0;
    hk__submit(e, &j->c);
}
