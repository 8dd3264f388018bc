/*
 * cli_webhook.c: the CLI's commands on webhooks, their attempt logs and
 * backups (the table that names them, and parsing, are cli.c's):
 *
 *   hookd webhook list | show ID | log ID [--limit N] | resend LOG-ID
 *   hookd webhook recover ID --since T [--until T]
 *   hookd backup FILE
 *
 * They work on the data directory, beside a running server if there is
 * one: resend and recover submit the same ops as the API (HK_OP_RESEND,
 * HK_OP_RECOVER in bounded steps), whose queue entries the server's
 * periodic walk of the queue picks up within a second. Listings print one
 * record a line, fields separated by tabs, with control characters of
 * stored text shown as '?' so that a line stays a line.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_int.h"
#include "date.h"
#include "random.h"

#define LOG_LIMIT_DEFAULT 20
#define LOG_LIMIT_MAX 1000000
#define SECRET_SHOWN 4 /* characters of a secret (after whsec_) or header value shown at most */

/* Stored text on a line of its own: control characters as '?'. */
static void put_text(const char *s)
{
    for (; s != NULL && *s != '\0'; s++)
        putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* The webhook id argument of the command; false (said) when it is not one. */
static bool arg_webhook(struct ctx *x, uint32_t *id)
{
    return hk__cli_opt_id("the webhook id", x->cli->arg, false, id);
}

static int no_webhook(uint32_t id, int rc)
{
    fprintf(stderr, "hookd: %s\n", rc == HK_ENOTFOUND ? "no such webhook" : hk_strerror(rc));
    HK_UNUSED(id);
    return 1;
}

/* ---- list and show ------------------------------------------------------------- */

static int print_webhook(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    HK_UNUSED(st);
    HK_UNUSED(arg);
    printf("%u\t%s\t", w->id, hk_webhook_state_name(w->state));
    put_text(w->name);
    putchar('\t');
    put_text(w->url);
    putchar('\t');
    for (size_t i = 0; i < w->nevents; i++) {
        if (i > 0)
            putchar(',');
        put_text(w->events[i]);
    }
    putchar('\n');
    return 0;
}

int hk__cli_webhook_list(struct ctx *x)
{
    if (hk__cli_open_store(x) != 0)
        return 1;
    int rc = hk_store_webhooks_each(x->store, 1, print_webhook, NULL);
    if (rc < 0) {
        fprintf(stderr, "hookd: cannot list webhooks: %s\n", hk_strerror(rc));
        return 1;
    }
    return 0;
}

/* A secret or header value as its first characters and "...": enough to tell two apart, never enough to use. */
static json_t *masked(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return json_string("");
    size_t keep = strncmp(s, "whsec_", 6) == 0 ? 6 : 0, rest = strlen(s + keep);
    size_t shown = rest / 4 < SECRET_SHOWN ? rest / 4 : SECRET_SHOWN;
    char buf[6 + SECRET_SHOWN + 4];
    snprintf(buf, sizeof(buf), "%.*s...", (int)(keep + shown), s);
    return json_string(buf);
}

static json_t *date_or_null(uint64_t ms)
{
    char buf[40];
    if (ms == 0)
        return json_null();
    hk_fmt_date_iso(ms, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *strings(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *webhook_json(const hk_webhook *w, const hk_webhook_stats *st, uint64_t pending, uint64_t due)
{
    json_t *headers = json_object(), *props = json_object();
    for (size_t i = 0; i < w->nheaders; i++)
        json_object_set_new(headers, w->headers[i].name, masked(w->headers[i].value));
    for (size_t i = 0; i < w->nproperties; i++) {
        json_t *v = json_loads(w->properties[i].value, JSON_DECODE_ANY, NULL);
        json_object_set_new(props, w->properties[i].name, v ? v : json_string(w->properties[i].value));
    }
    json_t *j = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o}", "id", (json_int_t)w->id, "name", w->name,
        "description", w->description, "url", w->url, "state", hk_webhook_state_name(w->state), "locked", w->locked,
        "events", strings(w->events, w->nevents), "headers", headers, "properties", props, "notify",
        strings(w->notify, w->nnotify), "extension", w->extension ? json_string(w->extension) : json_null());
    json_object_set_new(j, "secret", masked(w->secret));
    if (w->prev_secret != NULL && w->prev_secret[0] != '\0') {
        json_object_set_new(j, "previousSecret", masked(w->prev_secret));
        json_object_set_new(j, "previousSecretUntil", date_or_null(w->prev_secret_until));
    }
    json_object_set_new(j, "registered", date_or_null(w->registered_ms));
    json_object_set_new(j, "registeredBy", json_integer(w->registered_by));
    json_object_set_new(j, "updated", date_or_null(w->updated_ms));
    json_object_set_new(j, "updatedBy", json_integer(w->updated_by));
    json_object_set_new(j, "statistics",
                        json_pack("{s:I, s:I, s:I, s:s, s:o}", "calls", (json_int_t)st->calls, "errors",
                                  (json_int_t)st->errors, "consecutiveFailures", (json_int_t)st->consecutive,
                                  "lastError", st->last_error, "lastErrorTime", date_or_null(st->last_error_ms)));
    json_object_set_new(j, "queue", json_pack("{s:I, s:I}", "pending", (json_int_t)pending, "due", (json_int_t)due));
    return j;
}

int hk__cli_webhook_show(struct ctx *x)
{
    uint32_t id;
    if (!arg_webhook(x, &id))
        return 2;
    if (hk__cli_open_store(x) != 0)
        return 1;
    hk_webhook w = {0};
    hk_webhook_stats st;
    uint64_t pending = 0, due = 0;
    int rc = hk_store_webhook_get(x->store, id, &w);
    if (rc == 0)
        rc = hk_store_webhook_stats(x->store, id, &st);
    if (rc == 0)
        rc = hk_store_pending(x->store, id, hk_now_ms(), &pending, &due);
    if (rc != 0) {
        hk_webhook_free(&w);
        return no_webhook(id, rc);
    }
    json_t *j = webhook_json(&w, &st, pending, due);
    hk_webhook_free(&w);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL) {
        fprintf(stderr, "hookd: cannot format webhook %u\n", id);
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

/* ---- the attempt log ------------------------------------------------------------ */

struct listing {
    uint64_t left; /* records still to print */
};

static int print_attempt(const hk_attempt *a, void *arg)
{
    struct listing *l = arg;
    char date[40];
    if (l->left == 0)
        return 1;
    l->left--;
    hk_fmt_date_iso(a->started_ms, date, sizeof(date));
    printf("%" PRIu64 "\t%s\t", a->id, date);
    put_text(a->event_name);
    putchar('\t');
    put_text(a->event_uuid);
    printf("\t%d\t", a->status);
    put_text(a->error);
    putchar('\n');
    return 0;
}

int hk__cli_webhook_log(struct ctx *x)
{
    uint32_t id, limit = LOG_LIMIT_DEFAULT;
    const char *lim = x->cli->opt[HK_CLI_LIMIT];
    if (!arg_webhook(x, &id) || (lim != NULL && !hk__cli_opt_id("--limit", lim, false, &limit)))
        return 2;
    if (limit > LOG_LIMIT_MAX) {
        fprintf(stderr, "hookd: --limit must be at most %d\n", LOG_LIMIT_MAX);
        return 2;
    }
    if (hk__cli_open_store(x) != 0)
        return 1;
    hk_webhook w = {0};
    int rc = hk_store_webhook_get(x->store, id, &w);
    hk_webhook_free(&w);
    if (rc != 0)
        return no_webhook(id, rc);
    struct listing l = {limit};
    rc = hk_store_attempts_each_brief(x->store, id, 0, true, print_attempt, &l);
    if (rc < 0) {
        fprintf(stderr, "hookd: cannot list the attempt log: %s\n", hk_strerror(rc));
        return 1;
    }
    return 0;
}

/* ---- resend and recover ------------------------------------------------------------ */

struct find {
    hk_store *store;
    uint64_t log_id;
    hk_attempt a; /* the record, once found */
    int err;      /* a read error other than "not this webhook's" */
};

/* Log ids are unique across webhooks; the record is under exactly one. */
static int find_record(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    HK_UNUSED(st);
    struct find *f = arg;
    int rc = hk_store_attempt_get(f->store, w->id, f->log_id, &f->a);
    if (rc == 0)
        return 1;
    if (rc != HK_ENOTFOUND) {
        f->err = rc;
        return 1;
    }
    return 0;
}

int hk__cli_webhook_resend(struct ctx *x)
{
    const char *s = x->cli->arg;
    char *end;
    errno = 0;
    unsigned long long lid = s[0] >= '0' && s[0] <= '9' ? strtoull(s, &end, 10) : 0;
    if (lid == 0 || *end != '\0' || errno != 0) {
        fprintf(stderr, "hookd: the log id must be a positive integer, got \"%s\"\n", s);
        return 2;
    }
    if (hk__cli_open_store(x) != 0)
        return 1;
    struct find f = {.store = x->store, .log_id = lid};
    int rc = hk_store_webhooks_each(x->store, 1, find_record, &f);
    if (rc >= 0 && f.err != 0)
        rc = f.err;
    if (rc < 0) {
        fprintf(stderr, "hookd: cannot read the attempt log: %s\n", hk_strerror(rc));
        return 1;
    }
    if (rc == 0) {
        fprintf(stderr, "hookd: no attempt record %llu (pruned, or never made)\n", lid);
        return 1;
    }
    int code = 0;
    if (f.a.sync || f.a.event_id == 0) {
        fprintf(stderr, "hookd: attempt record %llu is of a synchronous call, which cannot be resent\n", lid);
        code = 1;
    } else {
        hk_op op = {.type = HK_OP_RESEND};
        op.u.resend = (hk_op_resend){f.a.webhook_id, f.a.event_id};
        rc = hk__cli_apply(x, &op);
        if (rc != 0) {
            fprintf(stderr, "hookd: webhook resend failed: %s\n",
                    rc == HK_ENOTFOUND ? "the event or its webhook is no longer stored" : hk_strerror(rc));
            code = 1;
        } else {
            printf("event %s (%s) queued again for webhook %u\n", f.a.event_uuid, f.a.event_name, f.a.webhook_id);
        }
    }
    hk_attempt_free(&f.a);
    return code;
}

/* A date option into *ms; false (said) when it is not one. */
static bool opt_date(const char *flag, const char *s, uint64_t *ms)
{
    if (hk_parse_date(s, ms) == 0)
        return true;
    fprintf(stderr, "hookd: %s must be a date (ISO 8601, e.g. 2026-11-22T10:00:00Z, UTC), got \"%s\"\n", flag, s);
    return false;
}

int hk__cli_webhook_recover(struct ctx *x)
{
    const char *since_s = x->cli->opt[HK_CLI_SINCE], *until_s = x->cli->opt[HK_CLI_UNTIL];
    uint64_t now = hk_now_ms(), since, until = now;
    uint32_t id;
    if (!arg_webhook(x, &id) || !opt_date("--since", since_s, &since) ||
        (until_s != NULL && !opt_date("--until", until_s, &until)))
        return 2;
    if (until > now)
        until = now; /* nothing has been attempted later */
    uint64_t oldest = now > x->cfg->log_retention_ms ? now - x->cfg->log_retention_ms : 0;
    char date[40];
    if (since > until) {
        fprintf(stderr, "hookd: --since must not be after --until (or now)\n");
        return 2;
    }
    if (since < oldest) {
        hk_fmt_date_iso(oldest, date, sizeof(date));
        fprintf(stderr,
                "hookd: --since is before the oldest attempt records kept ([delivery] log_retention): %s or "
                "later\n",
                date);
        return 2;
    }
    if (hk__cli_open_store(x) != 0)
        return 1;
    hk_op op = {.type = HK_OP_RECOVER};
    hk_op_recover *r = &op.u.recover;
    r->webhook_id = id;
    r->since_ms = since;
    r->until_ms = until;
    r->run_ms = now;
    hk_random(&r->run, sizeof(r->run));
    r->max = HK_RECOVER_STEP_MAX;
    uint64_t total = 0;
    int rc;
    /* Each step its own commit, so a server beside this goes on between them. */
    while ((rc = hk__cli_apply(x, &op)) == 0) {
        total += r->queued;
        if (r->gone) {
            rc = HK_ENOTFOUND;
            break;
        }
        if (r->done)
            break;
        r->from_log_id = r->next_log_id;
    }
    if (rc != 0) {
        fprintf(stderr, "hookd: webhook recover failed%s: %s\n", total > 0 ? " after queueing some" : "",
                rc == HK_ENOTFOUND ? "no such webhook" : hk_strerror(rc));
        if (total > 0)
            printf("recovered %" PRIu64 "\n", total);
        return 1;
    }
    printf("recovered %" PRIu64 "\n", total);
    return 0;
}

/* ---- backup ---------------------------------------------------------------------- */

int hk__cli_backup(struct ctx *x)
{
    const char *path = x->cli->arg;
    struct stat st;
    if (lstat(path, &st) == 0) {
        fprintf(stderr, "hookd: %s exists; a backup is written only under a new name\n", path);
        return 1;
    }
    if (hk__cli_open_store(x) != 0)
        return 1;
    int rc = hk_store_backup(x->store, path);
    if (rc != 0) {
        fprintf(stderr, "hookd: backup failed, nothing was written under %s: %s\n", path, hk_strerror(rc));
        return 1;
    }
    char file[4096];
    snprintf(file, sizeof(file), "%s/data.mdb", path);
    long long bytes = stat(file, &st) == 0 ? (long long)st.st_size : -1;
    printf("backup of %s written to %s (%lld bytes); use it with --data %s\n", x->cfg->data_dir, path, bytes, path);
    return 0;
}
