/*
 * notify.c: failure emails (see notify.h).
 *
 * The state lives in this file rather than in hk_app: one server runs per
 * process, and nothing else needs it. It is the SMTP client (created on the
 * first mail) and, per webhook, when the last mail about it was sent, which
 * limits exhausted-delivery mails to one per [smtp] min_interval. That map
 * is swept of expired entries when it grows, so it stays as small as the
 * set of webhooks that failed recently. It is per thread: each worker
 * (event loop) has its own client and map. Queued deliveries of a webhook
 * are attempted by its owning worker only, so their mails keep the limit;
 * a synchronous call's failure on another worker is limited by that
 * worker's map. In cluster mode the database has the last word
 * (hk_store_mail_gate): one mail per interval for all nodes.
 */
#include "notify.h"

#include <stdio.h>
#include <string.h>

#include "date.h"
#include "log.h"
#include "metrics.h"
#include "smtp.h"

#define RATE_BUCKETS 256
#define RATE_SWEEP_AT 4096 /* entries before expired ones are swept */

struct rate {
    uint32_t id;
    uint64_t last_ms;
    struct rate *next;
};

struct mail_ctx {
    uint32_t webhook_id;
    char event_uuid[40];
    bool disabled;
};

static __thread struct {
    hk_smtp *smtp;
    struct rate *rates[RATE_BUCKETS];
    size_t nrates;
    bool shut;
    bool warned_from;
} N;

static struct rate *rate_find(uint32_t id)
{
    for (struct rate *r = N.rates[id % RATE_BUCKETS]; r != NULL; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

static void rate_sweep(uint64_t now, uint64_t interval)
{
    for (size_t i = 0; i < RATE_BUCKETS; i++) {
        struct rate **p = &N.rates[i];
        while (*p != NULL) {
            struct rate *r = *p;
            if (now - r->last_ms >= interval) {
                *p = r->next;
                free(r);
                N.nrates--;
            } else {
                p = &r->next;
            }
        }
    }
}

static void rate_note(uint32_t id, uint64_t now, uint64_t interval)
{
    struct rate *r = rate_find(id);
    if (r == NULL) {
        if (N.nrates >= RATE_SWEEP_AT)
            rate_sweep(now, interval);
        r = hk_calloc(1, sizeof(*r));
        r->id = id;
        r->next = N.rates[id % RATE_BUCKETS];
        N.rates[id % RATE_BUCKETS] = r;
        N.nrates++;
    }
    r->last_ms = now;
}

static void on_sent(int status, const char *error, void *arg)
{
    struct mail_ctx *m = arg;
    HK_METRIC_ADD(hk_metrics.mails_sent, status == 0);
    HK_METRIC_ADD(hk_metrics.mails_failed, status != 0 && status != UV_ECANCELED);
    if (status == 0)
        hk_info("notify: mailed about webhook %u (%s, event %s)", m->webhook_id,
                m->disabled ? "disabled" : "delivery exhausted", m->event_uuid);
    else if (status == UV_ECANCELED)
        hk_debug("notify: mail about webhook %u abandoned at shutdown", m->webhook_id);
    else
        hk_warn("notify: mail about webhook %u (event %s) failed: %s", m->webhook_id, m->event_uuid, error);
    free(m);
}

static int ensure_client(uv_loop_t *loop, const hk_config *cfg)
{
    if (N.smtp != NULL)
        return 0;
    char helo[256];
    size_t hl = sizeof(helo);
    if (uv_os_gethostname(helo, &hl) != 0)
        snprintf(helo, sizeof(helo), "localhost");
    hk_smtp_opts o = {.host = cfg->smtp_host,
                      .port = (uint16_t)cfg->smtp_port,
                      .starttls = cfg->smtp_starttls,
                      .ca_file = cfg->ca_file,
                      .helo = helo,
                      .timeout_ms = HK_SMTP_DEFAULT_TIMEOUT_MS};
    return hk_smtp_create(&N.smtp, loop, &o);
}

static void fmt_interval(uint64_t ms, char *buf, size_t len)
{
    if (ms % 3600000 == 0)
        snprintf(buf, len, "%llu h", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%llu min", (unsigned long long)(ms / 60000));
    else
        snprintf(buf, len, "%llu s", (unsigned long long)((ms + 999) / 1000));
}

/* The mail's text; *subject and the result are malloc'd. */
static char *compose(const hk_config *cfg, const hk_attempt *a, const hk_webhook *w, const hk_webhook_stats *st,
                     char **subject)
{
    uint32_t id = a->webhook_id;
    const char *name = w->name;
    const char *url = a->url && a->url[0] ? a->url : w->url;
    char when[40], result[16], subj[300];
    hk_fmt_date_iso(a->started_ms, when, sizeof(when));
    snprintf(result, sizeof(result), "%d", a->status);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    if (f == NULL)
        return NULL;
    if (a->disabled) {
        snprintf(subj, sizeof(subj), "hookd: webhook %u \"%.120s\" disabled (TooManyErrors)", id, name);
        if (a->status == 410)
            fprintf(f, "Webhook %u \"%s\" has been disabled: its receiver answered 410 Gone.\n", id, name);
        else
            fprintf(f, "Webhook %u \"%s\" has been disabled (state TooManyErrors) after %u failed attempts in a row.\n",
                    id, name, st->consecutive);
        fprintf(f, "No more events are delivered to it until it is set Active again.\n");
    } else {
        char iv[32];
        fmt_interval(cfg->smtp_min_interval_ms, iv, sizeof(iv));
        snprintf(subj, sizeof(subj), "hookd: webhook %u \"%.120s\": delivery of event %s failed", id, name,
                 a->event_uuid ? a->event_uuid : "");
        fprintf(f,
                "A delivery to webhook %u \"%s\" failed on every attempt and will not be retried.\n"
                "(At most one such mail is sent per webhook every %s.)\n",
                id, name, iv);
    }
    fprintf(f, "\nWebhook:     %u \"%s\"\n", id, name);
    fprintf(f, "URL:         %s\n", url);
    fprintf(f, "Event:       %s\n", a->event_name ? a->event_name : "");
    fprintf(f, "Event id:    %s\n", a->event_uuid ? a->event_uuid : "");
    fprintf(f, "Attempt:     %u\n", a->attempt);
    fprintf(f, "Time:        %s\n", when);
    fprintf(f, "Result:      %s%s\n", result, a->status == 0 ? " (no response)" : "");
    fprintf(f, "Error:       %s\n", a->error ? a->error : "");
    fprintf(f, "Failures in a row: %u\n", st->consecutive);
    fprintf(f,
            "\nEvery attempt, with the request sent and the response received, is listed at\n"
            "GET /api/v3/webhook/%u/log\n",
            id);
    fclose(f);
    *subject = hk_strdup(subj);
    return body;
}

static void mail(uv_loop_t *loop, const hk_config *cfg, hk_store *store, const hk_attempt *a, uint64_t now);

/* An exhausted delivery's mail waiting for the cluster's answer: the attempt's fields the mail shows, copied. */
struct gate_wait {
    uv_loop_t *loop;
    const hk_config *cfg;
    hk_store *store;
    hk_attempt a;
    uint64_t now;
};

static void gate_answered(bool send, void *arg)
{
    struct gate_wait *g = arg;
    if (send && !N.shut)
        mail(g->loop, g->cfg, g->store, &g->a, g->now);
    else if (!send)
        hk_debug("notify: webhook %u: exhausted delivery of event %s not mailed (another node mailed within the "
                 "interval)",
                 g->a.webhook_id, g->a.event_uuid);
    free(g->a.event_name);
    free(g->a.event_uuid);
    free(g->a.error);
    free(g->a.url);
    free(g);
}

void hk_notify_attempt(uv_loop_t *loop, const hk_config *cfg, hk_store *store, const hk_attempt *a)
{
    if (N.shut || a->success || (!a->disabled && !a->exhausted))
        return;
    if (cfg->smtp_host == NULL || cfg->smtp_host[0] == '\0')
        return;
    uint64_t now = hk_now_ms();
    if (!a->disabled) {
        struct rate *r = rate_find(a->webhook_id);
        if (r != NULL && now - r->last_ms < cfg->smtp_min_interval_ms) {
            hk_debug("notify: webhook %u: exhausted delivery of event %s not mailed (one mail per interval)",
                     a->webhook_id, a->event_uuid);
            return;
        }
    }
    if (!a->disabled && hk_store_is_cluster(store)) {
        /* One mail per interval for the whole cluster: the database decides which node sends it. */
        struct gate_wait *g = hk_calloc(1, sizeof(*g));
        g->loop = loop;
        g->cfg = cfg;
        g->store = store;
        g->now = now;
        g->a = *a;
        g->a.event_name = a->event_name ? hk_strdup(a->event_name) : NULL;
        g->a.event_uuid = a->event_uuid ? hk_strdup(a->event_uuid) : NULL;
        g->a.error = a->error ? hk_strdup(a->error) : NULL;
        g->a.url = a->url ? hk_strdup(a->url) : NULL;
        g->a.request = g->a.response = NULL;
        g->a.request_len = g->a.response_len = 0;
        hk_store_mail_gate(store, a->webhook_id, now, cfg->smtp_min_interval_ms, gate_answered, g);
        return;
    }
    mail(loop, cfg, store, a, now);
}

/* Composes and sends the mail about a's webhook to its notify addresses. */
static void mail(uv_loop_t *loop, const hk_config *cfg, hk_store *store, const hk_attempt *a, uint64_t now)
{
    hk_webhook w;
    hk_webhook_stats st;
    memset(&w, 0, sizeof(w)); /* filled by the store; safe to free either way */
    int rc = hk_store_webhook_get(store, a->webhook_id, &w);
    if (rc == 0)
        rc = hk_store_webhook_stats(store, a->webhook_id, &st);
    if (rc != 0) {
        /* Deleted meanwhile: nobody left to tell. */
        if (rc != HK_ENOTFOUND)
            hk_warn("notify: cannot read webhook %u: %s", a->webhook_id, hk_strerror(rc));
        hk_webhook_free(&w);
        return;
    }
    const char **to = w.nnotify ? hk_calloc(w.nnotify, sizeof(*to)) : NULL;
    size_t nto = 0;
    for (size_t i = 0; i < w.nnotify; i++)
        if (w.notify[i] != NULL && w.notify[i][0] != '\0')
            to[nto++] = w.notify[i];
    if (nto == 0) {
        free(to);
        hk_webhook_free(&w);
        return;
    }
    if (!hk_smtp_address_ok(cfg->smtp_from)) {
        if (!N.warned_from)
            hk_warn("notify: [smtp] from \"%s\" is not a plain address; no mail is sent", cfg->smtp_from);
        N.warned_from = true;
        free(to);
        hk_webhook_free(&w);
        return;
    }
    char *subject = NULL;
    char *body = compose(cfg, a, &w, &st, &subject);
    if (body != NULL && (rc = ensure_client(loop, cfg)) == 0) {
        struct mail_ctx *m = hk_calloc(1, sizeof(*m));
        m->webhook_id = a->webhook_id;
        m->disabled = a->disabled;
        snprintf(m->event_uuid, sizeof(m->event_uuid), "%s", a->event_uuid ? a->event_uuid : "");
        hk_smtp_mail mail = {.from = cfg->smtp_from, .to = to, .nto = nto, .subject = subject, .body = body};
        rc = hk_smtp_send(N.smtp, &mail, on_sent, m);
        if (rc != 0) {
            HK_METRIC_ADD(hk_metrics.mails_failed, 1);
            free(m);
            hk_warn("notify: mail about webhook %u not sent: %s", a->webhook_id,
                    rc == UV_ENOBUFS ? "too many mails waiting" : hk_strerror(rc));
        } else {
            rate_note(a->webhook_id, now, cfg->smtp_min_interval_ms);
        }
    } else if (body != NULL) {
        hk_warn("notify: cannot create the mail client: %s", hk_strerror(rc));
    }
    free(body);
    free(subject);
    free(to);
    hk_webhook_free(&w);
}

void hk_notify_shutdown(void)
{
    N.shut = true;
    hk_smtp_close(N.smtp, NULL, NULL);
    N.smtp = NULL;
    rate_sweep(0, 0);
}
