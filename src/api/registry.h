/*
 * registry.h: the webhook registry as the API dialects see it. One record
 * (webhook.h) has two views, SuperOffice (PascalCase) and EnergyCAP
 * (camelCase); this module validates either dialect's input into the
 * record, renders both views, and runs the reads and group-committed
 * writes that the dialect modules (api_superoffice.c, api_energycap.c)
 * route to.
 *
 * Mappings between the record and the views:
 *   notify [addresses]   SuperOffice ErrorsEmail "a@x.org,b@y.org" (set: split on , or ;)
 *                        EnergyCAP mailingList ["a@x.org", "b@y.org"]
 *   state                EnergyCAP active (true = Active, false = Stopped) and webhookStatus (the state)
 *   events [names]       EnergyCAP eventType = the first event; a PUT's webhookEventTypeId
 *                        replaces the list with that one event
 */
#ifndef HK_REGISTRY_H
#define HK_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "auth.h"
#include "kv.h"
#include "webhook.h"

/** How a webhook is shown in an answer. */
enum hk_reg_view {
    HK_REG_VIEW_SO,       /**< SuperOffice Webhook */
    HK_REG_VIEW_SO_LINKS, /**< SuperOffice WebhookWithLinks (_Links Self and Archive) */
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

/** An error to answer: status, the property at fault (may be ""), and a message naming it. */
typedef struct hk_reg_err {
    int status;     /**< HTTP status */
    char field[64]; /**< property name in the dialect of the request, or "" */
    char msg[512];  /**< human-readable message */
} hk_reg_err;

/** Users looked up while rendering a list, so that each is read once. */
typedef struct hk_reg_users {
    size_t n; /**< entries in use */
    struct {
        uint32_t id; /**< user id */
        bool found;  /**< the user exists */
        hk_user u;   /**< the user when found */
    } e[16];         /**< the cache (the oldest entry is replaced when full) */
} hk_reg_users;

/** A new record with every default (Active, type webhook, empty lists). Caller releases it. */
json_t *hk_reg_new_record(void);

/**
 * Sets every field a SuperOffice client controls (Name, Events, TargetUrl,
 * Secret, State, Type, Headers, Properties, ErrorsEmail, Extension) from
 * the object in, absent or null ones to their defaults, leaving the others
 * (description, locked, dates) as they are. in is borrowed. Returns 0 or
 * HK_EINVAL with err filled (status 400, the property named).
 */
int hk_reg_from_so(json_t *rec, const json_t *in, hk_reg_err *err) HK_MUST_CHECK;

/**
 * Sets the fields of an EnergyCAP WebhookEditRequest (all required) and the
 * optional extension from in. The event type is returned in *event_type_id
 * for the caller to resolve (rec's events are left alone). Returns 0 or
 * HK_EINVAL with err filled.
 */
int hk_reg_from_ecap(json_t *rec, const json_t *in, uint32_t *event_type_id, hk_reg_err *err) HK_MUST_CHECK;

/**
 * The SuperOffice view of rec (a new reference). txn is used to read the
 * associates (users may be NULL: no cache).
 */
json_t *hk_reg_view_so(hk_txn *txn, const json_t *rec, hk_reg_users *users);

/** The EnergyCAP view of rec (a new reference), with createdBy, eventType and successRate read through txn. */
json_t *hk_reg_view_ecap(hk_txn *txn, const json_t *rec, hk_reg_users *users);

/** Nulls every top-level member of view not named in select ("A,b,c/d": case-insensitive; "c/d" keeps c). */
void hk_reg_select(json_t *view, const char *select);

/** Parses a webhook id path or query value; false when not a number in 1..2^31-1. */
bool hk_reg_parse_id(const char *s, uint32_t *id);

/** Answers 200 with webhook id in view (404 when absent), applying $select for SuperOffice views. */
void hk_reg_get(hk_ctx *ctx, uint32_t id, enum hk_reg_view view);

/**
 * Runs a write through the group commit and answers from its done callback:
 * validates body on the loop, then re-reads the webhook in the commit
 * (existence, lock, If-Unmodified-Since for update and delete), applies the
 * input, checks extension uniqueness and event types, and stores it. body
 * (reference taken; NULL for delete) must be the parsed request body.
 */
void hk_reg_write(hk_ctx *ctx, enum hk_reg_op op, uint32_t id, enum hk_reg_input input, json_t *body,
                  enum hk_reg_view view);

/** Answers 200 with the SuperOffice default webhook (unsaved), applying $select. */
void hk_reg_default(hk_ctx *ctx);

/** Answers 200 with a JSON string: webhook id's last delivery error ("" when none); 404 when absent. */
void hk_reg_last_error(hk_ctx *ctx, uint32_t id);

/**
 * Answers the SuperOffice list filtered by name, event and status (any may
 * be NULL or ""); 400 naming statusFilter when status is not one of
 * Unknown, Active, Stopped, TooManyErrors.
 */
void hk_reg_list_so(hk_ctx *ctx, const char *name, const char *event, const char *status);

/**
 * Answers the EnergyCAP list filtered by filter (NULL or "": all). Syntax:
 * conditions "FIELD OPERATOR VALUE" joined by " and "; operators equals,
 * not equals, like, not like, one of, not one of; values bare or quoted
 * with " or ', lists for one of separated by | or ,. 400 naming filter
 * when it does not parse.
 */
void hk_reg_list_ecap(hk_ctx *ctx, const char *filter);

/** Answers the event-type registry as [{webhookEventTypeId, webhookEventTypeName}] in id order. */
void hk_reg_event_types(hk_ctx *ctx);

/** Answers an error recorded in err in the request's dialect. */
void hk_reg_respond_err(hk_ctx *ctx, const hk_reg_err *err);

#endif
