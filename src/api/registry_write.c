/*
 * registry_write.c: creating, replacing, patching and deleting webhooks.
 *
 * Everything is decided on the loop: the stored webhook is read, the
 * request's body (a whole view, a JSON Patch or a merge patch of the
 * SuperOffice view, or an EnergyCAP edit) is applied and mapped to a new
 * hk_webhook, the rules are checked, and one typed op is submitted. The
 * commit re-checks what may have changed meanwhile (the operator lock,
 * If-Unmodified-Since, the extension's uniqueness) and stores the struct;
 * the answer is sent from its done callback, after the commit.
 */
#include <stdio.h>
#include <string.h>

#include "api_sync.h"
#include "json_patch.h"
#include "random.h"
#include "registry.h"
#include "view.h"
#include "view_ecap.h"
#include "view_so.h"

#define IUS_MAX 64 /* bytes of an If-Unmodified-Since value */

struct reg_write {
    hk_commit c; /* the op; its inputs point into this struct */
    hk_ctx *ctx;
    enum hk_reg_op op;
    enum hk_reg_view view;
    uint32_t id;                        /* the target; the new id after a create */
    bool ecap;                          /* the request came in the EnergyCAP dialect */
    uint64_t ius_ms;                    /* If-Unmodified-Since, 0 when none */
    hk_webhook w;                       /* the webhook to store (the op's input) */
    char reason[HK_USER_CODE_MAX + 64]; /* Data.Reason of the state event */
    char *select, *base;                /* for the answer */
};

static void reg_write_free(struct reg_write *r)
{
    hk_webhook_free(&r->w);
    free(r->select);
    free(r->base);
    free(r);
}

static const hk_wh_names *names_of(const struct reg_write *r)
{
    return r->ecap ? &hk_view_ecap_names : &hk_view_so_names;
}

static void respond_not_found(struct reg_write *r)
{
    if (r->ecap)
        hk_respond_field_error(r->ctx, 404, "webhookId", "webhook %u does not exist", (unsigned)r->id);
    else
        hk_respond_error(r->ctx, 404, "webhook %u does not exist", (unsigned)r->id);
}

/* Answers a failed read or commit of this write. */
static void respond_status(struct reg_write *r, int status)
{
    hk_ctx *ctx = r->ctx;
    const char *ext = names_of(r)->extension;
    switch (status) {
    case HK_ENOTFOUND: respond_not_found(r); break;
    case HK_ELOCKED:
        hk_respond_error(ctx, 400, "webhook %u is locked by an operator and cannot be %s through the API",
                         (unsigned)r->id, r->op == HK_REG_DELETE ? "deleted" : "edited");
        break;
    case HK_ECONFLICT:
        hk_respond_error(ctx, 412, "webhook %u was updated after If-Unmodified-Since", (unsigned)r->id);
        break;
    case HK_EEXIST:
        hk_respond_field_error(ctx, 400, ext, "%s \"%.128s\" is already used by another webhook", ext,
                               r->w.extension ? r->w.extension : "");
        break;
    default: hk_respond_store_error(ctx, status);
    }
}

static void reg_done(hk_commit *c, int status)
{
    struct reg_write *r = hk_container_of(c, struct reg_write, c);
    hk_ctx *ctx = r->ctx;
    hk_api_note_commit(ctx->app, status);
    /* A state event queued deliveries; a webhook set Active again has parked ones. */
    if (status == 0 && r->c.op.type == HK_OP_WEBHOOK_PUT && r->c.op.u.webhook_put.event.kind != NULL &&
        ctx->app->engine != NULL)
        hk_engine_kick(ctx->app->engine);
    if (status == 0 && r->c.op.type == HK_OP_WEBHOOK_DELETE && ctx->app->engine != NULL)
        hk_engine_webhook_deleted(ctx->app->engine, r->c.op.u.webhook_delete.id);
    if (status != 0) {
        respond_status(r, status);
    } else if (r->view == HK_REG_VIEW_NONE) {
        hk_respond_empty(ctx, 204);
    } else {
        r->w.id = c->op.u.webhook_put.id;
        hk_respond_json(ctx, 200, hk_reg_render(ctx->app->db, &r->w, NULL, r->view, r->select, r->base, NULL));
    }
    reg_write_free(r);
}

static void submit(struct reg_write *r)
{
    hk_store_submit(r->ctx->app->db, &r->c);
}

/* ---- building the new webhook -------------------------------------------------------------- */

struct type_lookup {
    uint32_t id;
    char *name;
};

static int type_one(uint32_t id, const char *name, void *arg)
{
    struct type_lookup *t = arg;
    if (id != t->id)
        return 0;
    t->name = hk_strdup(name);
    return 1;
}

/* Replaces w's events with the one event type tid names (EnergyCAP). */
static int set_event_type(hk_store *s, hk_webhook *w, uint32_t tid, hk_wh_err *err)
{
    struct type_lookup t = {tid, NULL};
    int rc = hk_store_event_types_each(s, type_one, &t);
    if (rc < 0)
        return rc;
    if (t.name == NULL)
        return hk_wh_fail(err, 400, "webhookEventTypeId", "webhookEventTypeId %u is not a known event type",
                          (unsigned)tid);
    for (size_t i = 0; i < w->nevents; i++)
        free(w->events[i]);
    w->events = hk_realloc(w->events, sizeof(*w->events));
    w->events[0] = t.name;
    w->nevents = 1;
    return 0;
}

/*
 * Applies body (input) to r->w, which holds old (NULL for a create) or a
 * new webhook. Patches apply to old's SuperOffice view, on the loop: linear
 * in the patch (json_patch.c), and never inside a commit.
 */
static int apply_input(struct reg_write *r, enum hk_reg_input input, const json_t *body, const hk_webhook *old,
                       hk_wh_err *err)
{
    hk_store *s = r->ctx->app->db;
    char msg[256];
    unsigned opts = HK_PATCH_NOCASE | HK_PATCH_LAX_PATH;
    int rc;
    switch (input) {
    case HK_REG_IN_SO: return hk_view_so_parse(body, &r->w, err);
    case HK_REG_IN_SO_JSON_PATCH:
    case HK_REG_IN_SO_MERGE_PATCH: {
        json_t *view = hk_reg_render(s, old, NULL, HK_REG_VIEW_SO, NULL, NULL, NULL);
        if (input == HK_REG_IN_SO_MERGE_PATCH) {
            hk_json_merge_patch(&view, body, opts);
        } else if ((rc = hk_json_patch_apply(&view, body, opts, msg, sizeof(msg))) != 0) {
            json_decref(view);
            return hk_wh_fail(err, rc == HK_ECONFLICT ? 409 : 400, NULL, "JSON Patch: %s", msg);
        }
        rc = hk_view_so_parse(view, &r->w, err);
        json_decref(view);
        return rc;
    }
    case HK_REG_IN_ECAP: {
        uint32_t tid = 0;
        if ((rc = hk_view_ecap_parse(body, &r->w, &tid, err)) != 0)
            return rc;
        return set_event_type(s, &r->w, tid, err);
    }
    case HK_REG_IN_NONE: break;
    }
    return 0;
}

/* Checks the body's shape on its own, before anything is read. */
static int precheck(enum hk_reg_input input, const json_t *body, hk_wh_err *err)
{
    char msg[256];
    switch (input) {
    case HK_REG_IN_SO_JSON_PATCH:
        if (hk_json_patch_check(body, msg, sizeof(msg)) != 0)
            return hk_wh_fail(err, 400, NULL, "JSON Patch: %s", msg);
        break;
    case HK_REG_IN_SO_MERGE_PATCH:
        if (!json_is_object(body))
            return hk_wh_fail(err, 400, NULL, "a merge patch of a Webhook must be a JSON object");
        break;
    default: break;
    }
    return 0;
}

/* The rules, against the delivery's SSRF guard as configured. */
static int check(struct reg_write *r, const hk_webhook *old, hk_wh_err *err)
{
    hk_ssrf *guard = NULL;
    char why[256];
    const char *allow = r->ctx->app->cfg->allow_targets;
    int rc = hk_ssrf_create(&guard, allow ? allow : "", why, sizeof(why));
    if (rc != 0)
        return hk_wh_fail(err, 500, NULL, "[delivery] allow_targets: %s", why);
    rc = hk_webhook_check(&r->w, old, names_of(r), guard, err);
    hk_ssrf_free(guard);
    return rc;
}

/* Everything the server sets: stamps, the replaced secret, the state event of a client's state change. */
static void finish(struct reg_write *r, const hk_webhook *old, uint64_t now)
{
    hk_ctx *ctx = r->ctx;
    hk_op_webhook_put *put = &r->c.op.u.webhook_put;
    if (old == NULL) {
        r->w.id = 0;
        r->w.registered_ms = now;
        r->w.registered_by = ctx->user.id;
        r->w.locked = false;
    } else if (*old->secret != '\0' && strcmp(old->secret, r->w.secret) != 0) {
        /* A replaced secret keeps signing for the overlap so that receivers can roll over. */
        free(r->w.prev_secret);
        r->w.prev_secret = hk_strdup(old->secret);
        r->w.prev_secret_until = now + ctx->app->cfg->secret_overlap_ms;
    }
    r->w.updated_ms = now;
    r->w.updated_by = ctx->user.id;

    r->c.op.type = HK_OP_WEBHOOK_PUT;
    r->c.op.now_ms = now;
    put->webhook = &r->w;
    put->by_client = old != NULL;
    put->unmodified_since_ms = r->ius_ms;
    /* A client's change to Stopped or back to Active is announced to webhook{ID}.stopped/.started, in the
     * same commit as the change. */
    if (old != NULL && old->state != r->w.state && (r->w.state == HK_WH_ACTIVE || r->w.state == HK_WH_STOPPED)) {
        bool started = r->w.state == HK_WH_ACTIVE;
        snprintf(r->reason, sizeof(r->reason), "%s by user %s", started ? "started" : "stopped", ctx->user.code);
        put->event.kind = started ? "started" : "stopped";
        put->event.reason = r->reason;
        hk_random(put->event.uuid, sizeof(put->event.uuid));
        put->event.uuid[6] = (uint8_t)((put->event.uuid[6] & 0x0f) | 0x40); /* version 4 */
        put->event.uuid[8] = (uint8_t)((put->event.uuid[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    }
}

/* ---- test on save ------------------------------------------------------------------------- */

/* [registry] test_on_save: a SuperOffice save is committed only after a test call to the TargetUrl it would
 * have succeeds, as that vendor does. */
static void on_tested(const hk_sync_result *res, void *arg)
{
    struct reg_write *r = arg;
    if (res->success) {
        submit(r);
        return;
    }
    char *msg = hk_sync_message(res);
    hk_respond_field_error(r->ctx, 400, "TargetUrl", "the test call to TargetUrl failed, so nothing was saved: %s",
                           msg);
    free(msg);
    reg_write_free(r);
}

static void test_then_submit(struct reg_write *r)
{
    hk_target t = {0};
    hk_target_from_webhook(&t, &r->w);
    int rc = hk_sync_test(r->ctx->app, &t, r->ctx->user.id, on_tested, r);
    hk_target_free(&t);
    if (rc == 0)
        return;
    if (rc == HK_ESHUTDOWN)
        hk_respond_error(r->ctx, 503, "server is shutting down");
    else
        hk_respond_field_error(r->ctx, 400, "TargetUrl", "TargetUrl cannot be tested: %s", hk_strerror(rc));
    reg_write_free(r);
}

/* ---- the write ------------------------------------------------------------------------------ */

static uint64_t if_unmodified_since(const hk_ctx *ctx, bool *given)
{
    const hk_header *h = hk_http_header(ctx->req, "If-Unmodified-Since");
    uint64_t ms = 0;
    *given = false;
    if (h != NULL && h->value_len < IUS_MAX) {
        /* An unparseable date is ignored, as RFC 7232 asks. */
        char buf[IUS_MAX];
        memcpy(buf, h->value, h->value_len);
        buf[h->value_len] = '\0';
        *given = hk_parse_date(buf, &ms) == 0;
    }
    return ms;
}

static void write_delete(struct reg_write *r, uint64_t now)
{
    r->c.op.type = HK_OP_WEBHOOK_DELETE;
    r->c.op.now_ms = now;
    r->c.op.u.webhook_delete.id = r->id;
    r->c.op.u.webhook_delete.by_client = true;
    r->c.op.u.webhook_delete.unmodified_since_ms = r->ius_ms;
    submit(r);
}

void hk_reg_write(hk_ctx *ctx, enum hk_reg_op op, uint32_t id, enum hk_reg_input input, json_t *body,
                  enum hk_reg_view view)
{
    hk_store *s = ctx->app->db;
    hk_wh_err err = {0};
    hk_webhook old = {0};
    bool has_old = false, ius_given;
    int rc;
    struct reg_write *r = hk_calloc(1, sizeof(*r));
    r->ctx = ctx;
    r->op = op;
    r->id = id;
    r->view = view;
    r->ecap = ctx->dialect == HK_DIALECT_ECAP;
    r->c.done = reg_done;
    r->ius_ms = if_unmodified_since(ctx, &ius_given);
    uint64_t now = hk_now_ms();
    if ((rc = precheck(input, body, &err)) != 0)
        goto fail_err;

    if (op != HK_REG_CREATE) {
        /* Answer what can be known now at once; the commit checks the lock and the date again. */
        if ((rc = hk_store_webhook_get(s, id, &old)) != 0)
            goto fail_status;
        has_old = true;
        if (old.locked) {
            rc = HK_ELOCKED;
            goto fail_status;
        }
        /* HTTP dates have whole seconds: compare at that granularity. */
        if (ius_given && old.updated_ms / 1000 > r->ius_ms / 1000) {
            rc = HK_ECONFLICT;
            goto fail_status;
        }
        if (ius_given && r->ius_ms == 0)
            r->ius_ms = 1; /* the epoch itself: still a condition for the commit */
        if (op == HK_REG_DELETE) {
            hk_webhook_free(&old);
            json_decref(body);
            write_delete(r, now);
            return;
        }
        hk_webhook_copy(&r->w, &old);
    } else {
        hk_webhook_init(&r->w);
    }

    if ((rc = apply_input(r, input, body, has_old ? &old : NULL, &err)) != 0)
        goto fail_err_or_status;
    json_decref(body);
    body = NULL;
    if ((rc = check(r, has_old ? &old : NULL, &err)) != 0)
        goto fail_err;
    finish(r, has_old ? &old : NULL, now);
    hk_webhook_free(&old);
    r->select = hk_query_get(ctx, "$select");
    r->base = hk_reg_links_base(ctx);
    if (ctx->app->cfg->test_on_save && !r->ecap)
        test_then_submit(r);
    else
        submit(r);
    return;

fail_err_or_status:
    if (err.status == 0)
        goto fail_status;
fail_err:
    hk_reg_respond_err(ctx, &err);
    goto fail;
fail_status:
    respond_status(r, rc);
fail:
    json_decref(body);
    hk_webhook_free(&old);
    reg_write_free(r);
}

int hk_reg_so_unsaved(const json_t *in, hk_webhook *w, hk_wh_err *err)
{
    int rc = hk_view_so_parse(in, w, err);
    if (rc == 0)
        rc = hk_webhook_check(w, NULL, &hk_view_so_names, NULL, err);
    return rc;
}
