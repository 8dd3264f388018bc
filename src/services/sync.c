/*
 * sync.c: synchronous invocations (see sync.h): one delivery built and
 * sent now, through a slot of its origin shared with queued deliveries,
 * its outcome recorded like a queued attempt's when asked.
 */
#include "sync.h"

#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "log.h"
#include "url.h"

struct sync_op {
    hk_engine *e;
    hk_sync_cb cb;
    void *arg;
    bool record;
    uint32_t webhook_id, user_id;
    char *url, *event_name, *body, *headers;
    size_t body_len;
    char uuid[HK_EVENT_UUID_LEN];
    uint64_t started_ms, started_mono;
    struct hk__slot_wait wait; /* wait.origin: the origin, referenced until the op ends */
    hk_sync_result res;
    char *request, *response, *error;
    /* The attempt's record (HK_OP_ATTEMPT); a's strings are the op's own. */
    hk_commit c;
    hk_attempt a;
};

static void op_finish(struct sync_op *op)
{
    hk_engine *e = op->e;
    op->cb(&op->res, op->arg);
    hk__sched_origin_put(e, op->wait.origin);
    free(op->url);
    free(op->event_name);
    free(op->body);
    free(op->headers);
    free(op->request);
    free(op->response);
    free(op->error);
    free(op);
}

/* ---- recording ---------------------------------------------------------------------- */

static void record_done(hk_commit *c, int status)
{
    struct sync_op *op = hk_container_of(c, struct sync_op, c);
    hk_engine *e = op->e;
    const hk_op_attempt *o = &c->op.u.attempt;
    /* The exchange happened whatever the log's fate: report it either way. */
    if (status != 0)
        hk_error("webhook %u: synchronous attempt could not be recorded: %s", op->webhook_id, hk_strerror(status));
    if (status == 0 && !o->vanished) {
        op->a.disabled = o->disabled;
        op->a.id = o->log_id;
        hk__finished(e, &op->a);
        if (o->disabled)
            hk__disabled(e, op->webhook_id, op->a.error);
    }
    op->res.disabled = status == 0 && o->disabled;
    op->res.record_status = status;
    op_finish(op);
    hk__submitted(e);
}

/* ---- the exchange ------------------------------------------------------------------ */

static void on_response(const hk_client_result *r, void *arg)
{
    struct sync_op *op = arg;
    hk_engine *e = op->e;
    hk_sync_result *res = &op->res;
    hk__slot_release(e, op->wait.origin);
    res->success = r->error == 0 && r->status >= 200 && r->status < 300;
    res->status = r->error == 0 ? r->status : 0;
    if (r->error != 0)
        op->error = hk_strdup(r->error_text ? r->error_text : hk_strerror(r->error));
    else
        op->error = hk_strdup(res->success ? "" : r->status_line);
    hk_outcome_texts(r, op->body, op->body_len, false, 0, &op->request, &res->request_len, &op->response,
                     &res->response_len);
    res->error = op->error;
    res->url = op->url;
    res->request = op->request;
    res->response = op->response;
    res->event_uuid = op->uuid;
    res->duration_ms = r->duration_ms;
    if (!op->record) {
        op_finish(op);
        return;
    }
    /* Recorded like a queued delivery's attempt; not a stored event, so it cannot be resent. */
    op->a =
        (hk_attempt){.webhook_id = op->webhook_id,
                     .event_id = 0,
                     .attempt = 1,
                     .started_ms = op->started_ms,
                     .duration_ms = r->duration_ms,
                     .success = res->success,
                     .status = res->status,
                     .error = op->error,
                     .url = op->url,
                     .request = op->request,
                     .request_len = res->request_len < HK_ATTEMPT_MAX_TEXT ? res->request_len : HK_ATTEMPT_MAX_TEXT,
                     .response = op->response,
                     .response_len = res->response_len < HK_ATTEMPT_MAX_TEXT ? res->response_len : HK_ATTEMPT_MAX_TEXT,
                     .user_id = op->user_id,
                     .exhausted = true,
                     .next_due_ms = 0,
                     .event_name = op->event_name,
                     .event_uuid = op->uuid,
                     .sync = true};
    op->c.op.type = HK_OP_ATTEMPT;
    op->c.op.now_ms = hk_clock_wall(e->clock);
    hk_op_attempt *o = &op->c.op.u.attempt;
    o->rec = &op->a;
    o->is410 = r->error == 0 && r->status == 410;
    o->disable_after = e->policy.disable_after;
    hk_engine_state_event_init(e, &o->on_disable, "errors", op->error);
    op->c.done = record_done;
    hk__submit(e, &op->c);
}

/* Puts the request on the wire (its origin slot is taken). */
static int start_send(struct sync_op *op)
{
    hk_engine *e = op->e;
    op->started_ms = hk_clock_wall(e->clock);
    op->started_mono = hk_clock_mono(e->clock);
    hk_client_request req = {
        .method = "POST", .url = op->url, .headers = op->headers, .body = op->body, .body_len = op->body_len};
    return hk_sender_send(&e->sender, &req, on_response, op);
}

/* Nothing was sent: answers with error and unavailable as given. */
static void finish_unsent(struct sync_op *op, const char *error, bool unavailable)
{
    op->error = hk_strdup(error);
    op->request = hk_strdup("");
    op->response = hk_strdup("");
    op->res = (hk_sync_result){.unavailable = unavailable,
                               .error = op->error,
                               .url = op->url,
                               .request = op->request,
                               .response = op->response,
                               .event_uuid = op->uuid};
    op_finish(op);
}

/* The slot a waiting call asked for: granted (status 0), or not in time. */
static void on_slot(struct hk__slot_wait *w, int status)
{
    struct sync_op *op = hk_container_of(w, struct sync_op, wait);
    hk_engine *e = op->e;
    char msg[800];
    if (status == 0) {
        int rc = start_send(op);
        if (rc == 0)
            return;
        hk__slot_release(e, op->wait.origin);
        snprintf(msg, sizeof(msg), "the request cannot be made: %s",
                 rc == HK_EINVAL ? "the target URL is not an absolute http(s) URL" : hk_strerror(rc));
        finish_unsent(op, msg, rc == HK_ESHUTDOWN);
        return;
    }
    if (status == HK_ESHUTDOWN)
        snprintf(msg, sizeof(msg), "server is shutting down");
    else
        snprintf(msg, sizeof(msg),
                 "%.500s is busy: %u requests to it in flight (concurrency_per_origin) for longer than %llu ms; "
                 "nothing was sent",
                 w->origin->key, w->origin->active, (unsigned long long)e->o.sync_wait_ms);
    finish_unsent(op, msg, true);
}

int hk_sync_call(hk_engine *e, const hk_target *t, const hk_sync_event *ev, hk_sync_cb cb, void *arg)
{
    if (e == NULL || e->stopping)
        return HK_ESHUTDOWN;
    /* Refused at once, as the client would refuse it, rather than after waiting for a slot. */
    hk_url u;
    if (hk_url_parse(t->url, &u, NULL) != 0)
        return HK_EINVAL;
    /* The event's strings are only read here (hk_event's are not const: it owns them elsewhere). */
    hk_event evt = {.ts_ms = hk_clock_wall(e->clock),
                    .primary_key = ev->primary_key,
                    .user_id = ev->user_id,
                    .name = (char *)ev->name,
                    .changes = (char *)ev->changes,
                    .changes_len = strlen(ev->changes),
                    .data = (char *)ev->data,
                    .data_len = strlen(ev->data)};
    hk__uuid(e, evt.uuid); /* a version 4 UUID, like the ones stored events carry */

    struct sync_op *op = hk_calloc(1, sizeof(*op));
    op->e = e;
    op->cb = cb;
    op->arg = arg;
    op->record = ev->record;
    op->webhook_id = t->webhook_id;
    op->user_id = ev->user_id;
    op->url = hk_strdup(t->url);
    op->event_name = hk_strdup(ev->name);
    hk_event_uuid_str(evt.uuid, op->uuid);
    op->body = hk_delivery_body(NULL, &evt, t, &op->body_len);
    char headers[HK_DELIVERY_HEADERS_MAX];
    hk_delivery_headers(t, ev->name, op->uuid, 0, op->body, op->body_len, evt.ts_ms, ev->extra_headers, headers,
                        sizeof(headers));
    op->headers = hk_strdup(headers);
    op->wait.origin = hk__sched_origin_get(e, t->url);
    op->wait.granted = on_slot;
    op->wait.deadline_mono = hk_clock_mono(e->clock) + e->o.sync_wait_ms;
    if (hk__slot_take(e, &op->wait) != 0)
        return 0; /* on_slot carries on */
    int rc = start_send(op);
    if (rc != 0) {
        hk__slot_release(e, op->wait.origin);
        hk__sched_origin_put(e, op->wait.origin);
        free(op->url);
        free(op->event_name);
        free(op->body);
        free(op->headers);
        free(op);
        return rc == HK_ESHUTDOWN ? HK_ESHUTDOWN : HK_EINVAL;
    }
    return 0;
}

int hk_sync_call_test(hk_engine *e, const hk_target *t, uint32_t user_id, hk_sync_cb cb, void *arg)
{
    hk_sync_event ev = {.name = "test",
                        .primary_key = 0,
                        .data = "{}",
                        .changes = "[]",
                        .user_id = user_id,
                        .extra_headers = "X-Hook-Test: true\r\n",
                        .record = false};
    return hk_sync_call(e, t, &ev, cb, arg);
}

char *hk_sync_message(const hk_sync_result *res)
{
    if (res->status == 0)
        return hk_strdup(res->error);
    return hk_strndup(res->response, res->response_len);
}
