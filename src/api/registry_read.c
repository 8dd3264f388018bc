/*
 * registry_read.c: the registry's reads: one webhook in a view, the
 * SuperOffice default and last error, the SuperOffice and EnergyCAP lists
 * (the latter through the one filter grammar, filter.h) and the event-type
 * registry. Everything is read through the store's typed
 * queries and shown through the pure views.
 */
#include "registry.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "filter.h"
#include "select.h"
#include "view_ecap.h"
#include "view_so.h"

bool hk_reg_parse_id(const char *s, uint32_t *id)
{
    if (s == NULL || *s == '\0' || strlen(s) > 10)
        return false;
    uint64_t v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (uint64_t)(*c - '0');
    }
    if (v == 0 || v > INT32_MAX)
        return false;
    *id = (uint32_t)v;
    return true;
}

void hk_reg_respond_err(hk_ctx *ctx, const hk_wh_err *err)
{
    if (err->field[0] != '\0')
        hk_respond_field_error(ctx, err->status, err->field, "%s", err->msg);
    else
        hk_respond_error(ctx, err->status, "%s", err->msg);
}

/* ---- rendering ---------------------------------------------------------------------- */

/* User id through the cache; NULL when id is 0 or the user does not exist (or cannot be read). */
static const hk_user *user_lookup(hk_store *s, hk_reg_users *users, uint32_t id)
{
    if (id == 0)
        return NULL;
    for (size_t i = 0; i < users->n; i++)
        if (users->e[i].id == id)
            return users->e[i].found ? &users->e[i].u : NULL;
    size_t slot = users->n < HK_ARRAY_SIZE(users->e) ? users->n++ : id % HK_ARRAY_SIZE(users->e);
    users->e[slot].id = id;
    /* A user that cannot be read is shown as null, as one that was removed: the webhook is still worth showing. */
    users->e[slot].found = hk_store_user_get(s, id, &users->e[slot].u) == 0;
    return users->e[slot].found ? &users->e[slot].u : NULL;
}

char *hk_reg_links_base(const hk_ctx *ctx)
{
    const char *pub = ctx->app->cfg->public_url;
    char *base;
    if (pub != NULL && *pub != '\0') {
        base = hk_strdup(pub);
    } else {
        const hk_header *h = hk_http_header(ctx->req, "Host");
        size_t len = h ? h->value_len : 0;
        if (h == NULL || len == 0 || len > 255 || memchr(h->value, '"', len) || memchr(h->value, '/', len)) {
            base = hk_strdup("http://localhost");
        } else {
            base = hk_malloc(len + 8);
            memcpy(base, "http://", 7);
            memcpy(base + 7, h->value, len);
            base[len + 7] = '\0';
        }
    }
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        base[--n] = '\0';
    return base;
}

json_t *hk_reg_render(hk_store *s, const hk_webhook *w, const hk_webhook_stats *st, enum hk_reg_view view,
                      const char *select, const char *base, hk_reg_users *users)
{
    hk_reg_users local = {0};
    if (users == NULL)
        users = &local;
    if (view == HK_REG_VIEW_ECAP) {
        hk_webhook_stats own;
        if (st == NULL && (s == NULL || hk_store_webhook_stats(s, w->id, &own) != 0))
            memset(&own, 0, sizeof(own)); /* not stored yet, or unreadable: shown as no deliveries */
        uint32_t tid = 0;
        if (w->nevents > 0 && (s == NULL || hk_store_event_type_id(s, w->events[0], &tid) != 0))
            tid = 0;
        return hk_view_ecap(w, st ? st : &own, tid, s ? user_lookup(s, users, w->registered_by) : NULL);
    }
    const hk_user *reg = s ? user_lookup(s, users, w->registered_by) : NULL;
    const hk_user *upd = s ? user_lookup(s, users, w->updated_by) : NULL;
    json_t *v = hk_view_so(w, reg, upd);
    hk_select_apply(v, select);
    if (view == HK_REG_VIEW_SO_LINKS && base != NULL) {
        char self[2400], archive[2400];
        snprintf(self, sizeof(self), "%s/api/v1/Webhook/%u", base, (unsigned)w->id);
        snprintf(archive, sizeof(archive), "%s/api/v1/Webhook", base);
        json_object_set_new(v, "_Links", json_pack("{s:s, s:s}", "Self", self, "Archive", archive));
    }
    return v;
}

/* ---- one webhook ---------------------------------------------------------------------- */

static void not_found(hk_ctx *ctx, uint32_t id, bool null_when_missing)
{
    if (null_when_missing)
        hk_respond_json(ctx, 200, json_null());
    else if (ctx->dialect == HK_DIALECT_ECAP)
        hk_respond_field_error(ctx, 404, "webhookId", "webhook %u does not exist", (unsigned)id);
    else
        hk_respond_error(ctx, 404, "webhook %u does not exist", (unsigned)id);
}

void hk_reg_get(hk_ctx *ctx, uint32_t id, enum hk_reg_view view, bool null_when_missing)
{
    hk_webhook w = {0};
    int rc = hk_store_webhook_get(ctx->app->db, id, &w);
    if (rc == HK_ENOTFOUND) {
        not_found(ctx, id, null_when_missing);
        return;
    }
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    char *select = hk_query_get(ctx, "$select");
    char *base = hk_reg_links_base(ctx);
    json_t *out = hk_reg_render(ctx->app->db, &w, NULL, view, select, base, NULL);
    hk_webhook_free(&w);
    free(select);
    free(base);
    hk_respond_json(ctx, 200, out);
}

void hk_reg_default(hk_ctx *ctx)
{
    hk_webhook w;
    hk_webhook_init(&w);
    char *select = hk_query_get(ctx, "$select");
    json_t *v = hk_reg_render(NULL, &w, NULL, HK_REG_VIEW_SO, select, NULL, NULL);
    free(select);
    hk_webhook_free(&w);
    hk_respond_json(ctx, 200, v);
}

void hk_reg_last_error(hk_ctx *ctx, uint32_t id, bool null_when_missing)
{
    hk_webhook w = {0};
    int rc = hk_store_webhook_get(ctx->app->db, id, &w);
    if (rc == HK_ENOTFOUND) {
        not_found(ctx, id, null_when_missing);
        return;
    }
    hk_webhook_free(&w);
    hk_webhook_stats st;
    if (rc == 0)
        rc = hk_store_webhook_stats(ctx->app->db, id, &st);
    if (rc != 0) {
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_respond_json(ctx, 200, json_string(st.last_error));
}

/* ---- the SuperOffice list ---------------------------------------------------------------- */

struct so_list {
    hk_store *store;
    json_t *out;
    const char *select;
    hk_reg_users users;
    const char *name, *event; /* filters; NULL or "" match everything */
    int state;                /* the state to match; -1 any */
};

static bool subscribes_nocase(const hk_webhook *w, const char *event)
{
    for (size_t i = 0; i < w->nevents; i++)
        if (strcasecmp(w->events[i], event) == 0)
            return true;
    return false;
}

static int so_list_one(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct so_list *l = arg;
    if (l->name && *l->name && strcasestr(w->name, l->name) == NULL)
        return 0;
    if (l->state >= 0 && (int)w->state != l->state)
        return 0;
    if (l->event && *l->event && !subscribes_nocase(w, l->event))
        return 0;
    json_array_append_new(l->out, hk_reg_render(l->store, w, st, HK_REG_VIEW_SO, l->select, NULL, &l->users));
    return 0;
}

void hk_reg_list_so(hk_ctx *ctx, const char *name, const char *event, const char *status)
{
    struct so_list l = {.store = ctx->app->db, .name = name, .event = event, .state = -1};
    if (status != NULL && *status != '\0' && strcasecmp(status, "Unknown") != 0 && strcmp(status, "0") != 0) {
        l.state = hk_webhook_state_parse(status);
        if (l.state < 0 && (strcmp(status, "1") == 0 || strcmp(status, "2") == 0 || strcmp(status, "3") == 0))
            l.state = status[0] - '1';
        if (l.state < 0) {
            hk_respond_field_error(ctx, 400, "statusFilter",
                                   "statusFilter must be Unknown, Active, Stopped or TooManyErrors, not \"%.32s\"",
                                   status);
            return;
        }
    }
    char *select = hk_query_get(ctx, "$select");
    l.select = select;
    l.out = json_array();
    int rc = hk_store_webhooks_each(l.store, 1, so_list_one, &l);
    free(select);
    if (rc < 0) {
        json_decref(l.out);
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_respond_json(ctx, 200, l.out);
}

/* ---- the EnergyCAP list --------------------------------------------------------------------- */

struct ecap_list {
    hk_store *store;
    const hk_filter *filter;
    hk_reg_users users;
    json_t *out;
};

static int event_type_id(void *arg, const char *name, uint32_t *id)
{
    return hk_store_event_type_id(arg, name, id);
}

static int ecap_list_one(const hk_webhook *w, const hk_webhook_stats *st, void *arg)
{
    struct ecap_list *l = arg;
    hk_filter_webhook fw = {w, event_type_id, l->store};
    if (hk_filter_match(l->filter, &fw))
        json_array_append_new(l->out, hk_reg_render(l->store, w, st, HK_REG_VIEW_ECAP, NULL, NULL, &l->users));
    return 0;
}

void hk_reg_list_ecap(hk_ctx *ctx, const char *filter)
{
    hk_filter *f = NULL;
    char err[HK_FILTER_ERR_MAX];
    if (filter != NULL && hk_filter_parse(filter, hk_filter_webhook_fields, &f, err) != 0) {
        hk_respond_field_error(ctx, 400, "filter", "%s", err);
        return;
    }
    struct ecap_list l = {.store = ctx->app->db, .filter = f, .out = json_array()};
    int rc = hk_store_webhooks_each(l.store, 1, ecap_list_one, &l);
    hk_filter_free(f);
    if (rc < 0) {
        json_decref(l.out);
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_respond_json(ctx, 200, l.out);
}

/* ---- event types -------------------------------------------------------------------------- */

static int event_type_one(uint32_t id, const char *name, void *arg)
{
    json_array_append_new(arg,
                          json_pack("{s:I, s:s}", "webhookEventTypeId", (json_int_t)id, "webhookEventTypeName", name));
    return 0;
}

void hk_reg_event_types(hk_ctx *ctx)
{
    json_t *out = json_array();
    int rc = hk_store_event_types_each(ctx->app->db, event_type_one, out);
    if (rc < 0) {
        json_decref(out);
        hk_respond_store_error(ctx, rc);
        return;
    }
    hk_respond_json(ctx, 200, out);
}
