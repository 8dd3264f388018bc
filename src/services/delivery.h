/*
 * delivery.h: what a delivery looks like on the wire, shared by queued
 * deliveries and synchronous calls: a webhook's target (the parts of the
 * webhook a request is made of, prepared once), the body and the signed
 * header block.
 *
 * The body is {"EventId","Timestamp","Changes","Event","PrimaryKey",
 * "Entity","ContextIdentifier","ChangedByAssociateId","WebhookName","Data"}
 * followed by the webhook's Properties. Everything before WebhookName
 * depends on the event only: a fan-out renders it once per event
 * (hk_body_head) and each webhook's body from it.
 */
#ifndef HK_DELIVERY_H
#define HK_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "common.h"
#include "model.h"

/** A webhook's delivery-relevant parts; every string is owned (hk_target_free). */
typedef struct hk_target {
    uint32_t webhook_id;           /**< the webhook */
    char *url;                     /**< TargetUrl */
    char *name;                    /**< Name, for the body's WebhookName */
    char *secret;                  /**< "" when none: no signature headers */
    char *prev_secret;             /**< the replaced secret, "" when none */
    uint64_t prev_until;           /**< prev_secret signs until this time (ms) */
    char *headers;                 /**< custom "Name: value\r\n" lines, reserved names and unsafe values left out */
    char *props;                   /**< Properties as `"key":value,...` members (keys of the standard body left out) */
    struct hk_signer *signer;      /**< secret's prepared keys (NULL without a secret) */
    struct hk_signer *prev_signer; /**< prev_secret's (NULL when none) */
} hk_target;

/** Fills t (zeroed or freed) from webhook w; w is only read. */
void hk_target_from_webhook(hk_target *t, const hk_webhook *w);

/** Frees t's strings; safe on a zeroed struct, which it leaves zeroed. */
void hk_target_free(hk_target *t);

/** Writes the event's part of every body (everything before "WebhookName") into head, replacing its contents. */
void hk_body_head(hk_buf *head, const hk_event *ev);

/**
 * The body of ev for target t, from ev's head (hk_body_head; NULL: rendered
 * here). Returns a malloc'd, NUL-terminated buffer and its length in *len.
 */
char *hk_delivery_body(const hk_buf *head, const hk_event *ev, const hk_target *t, size_t *len);

/** Size of a buffer that always holds the header block. */
#define HK_DELIVERY_HEADERS_MAX 8192

/**
 * Writes the request headers of one attempt into out: Content-Type,
 * X-SuperOffice-Event/-EventId/-Retry, and when the target has a secret
 * X-SuperOffice-Signature and the Standard Webhooks trio (webhook-id
 * "msg_<EventId hex>_<webhook id>", stable across retries), then the
 * custom headers. extra (may be NULL) is appended last ("X-Hook-Test:
 * true\r\n" for test calls).
 */
void hk_delivery_headers(const hk_target *t, const char *event_name, const char *event_uuid, uint32_t retry,
                         const char *body, size_t body_len, uint64_t now_ms, const char *extra, char *out,
                         size_t outlen);

#endif
