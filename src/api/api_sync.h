/*
 * api_sync.h: synchronous calls as the API handlers make them: the
 * service (services/sync.h) reached through the server's engine, and the
 * answers every dialect gives when a call cannot be made. Used by the
 * SuperOffice test calls (api_webhook_test.c), the EnergyCAP custom
 * actions (api_custom_action.c), the Ivanti Execute call (api_ivanti.c) and
 * test-on-save (registry.c).
 */
#ifndef HK_API_SYNC_H
#define HK_API_SYNC_H

#include "api.h"
#include "common.h"
#include "delivery.h"
#include "sync.h"

/**
 * hk_sync_call on the server's engine. HK_ESHUTDOWN when the engine is
 * stopped or stopping; otherwise as hk_sync_call.
 */
int hk_sync_send(hk_api_env *app, const hk_target *t, const hk_sync_event *ev, hk_sync_cb cb, void *arg) HK_MUST_CHECK;

/** hk_sync_call_test on the server's engine; returns as hk_sync_send. */
int hk_sync_test(hk_api_env *app, const hk_target *t, uint32_t user_id, hk_sync_cb cb, void *arg) HK_MUST_CHECK;

/**
 * Answers a failed hk_sync_send in the request's dialect: 503 when the
 * server is shutting down, 400 naming url when the URL was refused.
 */
void hk_sync_respond_send_error(hk_ctx *ctx, int rc, const char *url);

/** Answers a result that is unavailable (nothing was sent): 503 with its reason. */
void hk_sync_respond_unavailable(hk_ctx *ctx, const hk_sync_result *res);

#endif
