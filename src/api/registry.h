/*
 * registry.h: the webhook registry behind the SuperOffice and EnergyCAP
 * endpoints (api_superoffice.c, api_energycap.c): reads through the
 * store's typed queries, lists and their filters (registry_read.c), and
 * writes (registry_write.c).
 *
 * A write is decided on the loop: the body is parsed into the request's
 * view (view_so.h, view_ecap.h), a PUT, JSON Patch or merge patch is
 * applied to the view of the stored webhook, the result is mapped to an
 * hk_webhook and checked (webhook_rules.h), and one typed op
 * (HK_OP_WEBHOOK_PUT or HK_OP_WEBHOOK_DELETE) is submitted; the client is
 * answered from its done callback, once the change is durable. The commit
 * only stores the struct (it re-checks the lock and If-Unmodified-Since
 * against the stored webhook), so no view is rendered and no JSON is
 * parsed inside a write transaction.
 */
#ifndef HK_REGISTRY_H
#define HK_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "delivery.h"
#include "model.h"
#include "store.h"
#include "webhook_rules.h"

/** How a webhook is shown in an answer. */
enum hk_reg_view {
    HK_REG_VIEW_SO,       /**< SuperOffice Webhook (Agents calls) */
    HK_REG_VIEW_SO_LINKS, /**< SuperOffice WebhookWithLinks (_Links Self and Archive; REST) */
    HK_REG_VIEW_ECAP,     /**< EnergyCAP WebhookResponse */
    HK_REG_VIEW_NONE      /**< no body: 204 */
};

/** What a write does with its body. */
enum hk_reg_input {
    HK_REG_IN_NONE,           /**< no body (delete) */
    HK_REG_IN_SO,             /**< a SuperOffice Webhook replacing every field it can set */
    HK_REG_IN_SO_JSON_PATCH,  /**< RFC 6902 operations on the SuperOffice view */
    HK_REG_IN_SO_MERGE_PATCH, /**< an RFC 7396 merge patch of the SuperOffice view */
    HK_REG_IN_ECAP            /**< an EnergyCAP WebhookEditRequest (every field required) */
};

/** The kind of write. */
enum hk_reg_op {
    HK_REG_CREATE, /**< a new webhook (id assigned) */
    HK_REG_UPDATE, /**< change webhook id */
    HK_REG_DELETE  /**< delete webhook id */
};

/** Users looked up while rendering, so that each is read once per answer. */
typedef struct hk_reg_users {
    size_t n; /**< entries in use */
    struct {
        uint32_t id; /**< user id */
        bool found;  /**< the user exists */
        hk_user u;   /**< the user when found */
    } e[16];         /**< the cache (an entry is replaced when full) */
} hk_reg_users;

/** Parses a webhook id path or query value; false when not a number in 1..2^31-1. */
bool hk_reg_parse_id(const char *s, uint32_t *id);

/** Answers an error recorded in err in the request's dialect (naming err->field when set). */
void hk_reg_respond_err(hk_ctx *ctx, const hk_wh_err *err);

/* ---- reads (registry_read.c) --------------------------------------------------------- */

/**
 * w in view (not HK_REG_VIEW_NONE) as an answer: a new reference. Reads
 * what the view shows besides w through the store (associates, statistics
 * when st is NULL, the first event's type id); users may be NULL (no
 * cache). select is the $select value (SuperOffice views; may be NULL);
 * base the start of _Links (HK_REG_VIEW_SO_LINKS; from hk_reg_links_base).
 */
json_t *hk_reg_render(hk_store *s, const hk_webhook *w, const hk_webhook_stats *st, enum hk_reg_view view,
                      const char *select, const char *base, hk_reg_users *users);

/** The base of _Links: the configured public URL, else http:// and the Host header. malloc'd. */
char *hk_reg_links_base(const hk_ctx *ctx);

/**
 * Answers 200 with webhook id in view, applying $select for SuperOffice
 * views. A missing webhook is 404, or 200 null with null_when_missing (the
 * Agents calls, which have no HTTP semantics).
 */
void hk_reg_get(hk_ctx *ctx, uint32_t id, enum hk_reg_view view, bool null_when_missing);

/** Answers 200 with the SuperOffice default webhook (unsaved), applying $select. */
void hk_reg_default(hk_ctx *ctx);

/**
 * Answers 200 with a JSON string: webhook id's last delivery error ("" when
 * none). A missing webhook as for hk_reg_get.
 */
void hk_reg_last_error(hk_ctx *ctx, uint32_t id, bool null_when_missing);

/**
 * Answers the SuperOffice list filtered by name, event and status (any may
 * be NULL or ""); 400 naming statusFilter when status is not one of
 * Unknown, Active, Stopped, TooManyErrors (or 0..3).
 */
void hk_reg_list_so(hk_ctx *ctx, const char *name, const char *event, const char *status);

/** Answers the event-type registry as [{webhookEventTypeId, webhookEventTypeName}] in id order. */
void hk_reg_event_types(hk_ctx *ctx);

/**
 * Answers the EnergyCAP list filtered by filter (NULL or "": all), in the
 * grammar of filter.h over hk_filter_webhook_fields; 400 naming filter
 * when it does not parse.
 */
void hk_reg_list_ecap(hk_ctx *ctx, const char *filter);

/* ---- writes (registry_write.c) --------------------------------------------------------- */

/**
 * Runs a write and answers it from the done callback of its commit (see
 * the top of this file). body (reference taken; NULL for a delete) is the
 * parsed request body. Update and delete honour If-Unmodified-Since (412)
 * and refuse a locked webhook (400); a client's change of State to Stopped
 * or back to Active stores the state event webhook{ID}.stopped/.started in
 * the same commit.
 */
void hk_reg_write(hk_ctx *ctx, enum hk_reg_op op, uint32_t id, enum hk_reg_input input, json_t *body,
                  enum hk_reg_view view);

/**
 * Reads a SuperOffice Webhook body (as PUT takes it) into w (initialised
 * by the caller) and checks it as a new webhook is checked, except against
 * the SSRF guard (the call itself meets it), for calls that use a webhook
 * without storing it (the test call). Returns 0 or HK_EINVAL with err
 * filled.
 */
int hk_reg_so_unsaved(const json_t *in, hk_webhook *w, hk_wh_err *err) HK_MUST_CHECK;

#endif
