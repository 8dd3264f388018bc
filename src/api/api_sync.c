/* api_sync.c: synchronous calls from the API handlers (see api_sync.h). */
#include "api_sync.h"

/* The handler's callback, behind one that tells readiness how the record's commit went. */
struct call {
    hk_api_env *app;
    hk_sync_cb cb;
    void *arg;
};

static void on_result(const hk_sync_result *res, void *arg)
{
    struct call *c = arg;
    hk_api_note_commit(c->app, res->record_status);
    c->cb(res, c->arg);
    free(c);
}

int hk_sync_send(hk_api_env *app, const hk_target *t, const hk_sync_event *ev, hk_sync_cb cb, void *arg)
{
    if (app->engine == NULL)
        return HK_ESHUTDOWN;
    struct call *c = hk_calloc(1, sizeof(*c));
    *c = (struct call){app, cb, arg};
    int rc = hk_sync_call(app->engine, t, ev, on_result, c);
    if (rc != 0)
        free(c);
    return rc;
}

int hk_sync_test(hk_api_env *app, const hk_target *t, uint32_t user_id, hk_sync_cb cb, void *arg)
{
    if (app->engine == NULL)
        return HK_ESHUTDOWN;
    return hk_sync_call_test(app->engine, t, user_id, cb, arg);
}

void hk_sync_respond_send_error(hk_ctx *ctx, int rc, const char *url)
{
    if (rc == HK_ESHUTDOWN)
        hk_respond_error(ctx, 503, "server is shutting down");
    else
        hk_respond_error(ctx, 400, "the target URL \"%.200s\" is not an absolute http(s) URL", url);
}

void hk_sync_respond_unavailable(hk_ctx *ctx, const hk_sync_result *res)
{
    hk_respond_error(ctx, 503, "%s", res->error);
}
