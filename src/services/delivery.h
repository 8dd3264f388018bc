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
#include "store.h"

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

/** Signatures of one body kept with it, per secret (a fan-out's subscribers rarely have more distinct ones). */
#define HK_BODY_SIGS 4

/**
 * A delivery body shared by every job whose webhook renders the same
 * bytes for one event (same WebhookName and Properties), reference
 * counted: each job holds one, and so does a request the client is still
 * writing (hk_body_ref). Keeps the X-SuperOffice-Signature of the body per
 * secret, so that it is computed once per (body, secret).
 */
typedef struct hk_body {
    uint32_t refs; /**< holders; freed at 0 */
    char *name;    /**< the WebhookName it was rendered with (owned) */
    char *props;   /**< the Properties members it was rendered with (owned) */
    uint8_t nsigs; /**< entries used in sigs */
    struct {
        uint8_t key[32];  /**< the secret's fingerprint (hk_signer_key) */
        char so[45];      /**< base64 HMAC-SHA256 of data under that secret */
    } sigs[HK_BODY_SIGS]; /**< the signatures computed so far, oldest replaced first */
    size_t len;           /**< bytes in data */
    char data[];          /**< the body, NUL-terminated */
} hk_body;

/** A new body (one reference) of ev for target t, from ev's head (hk_body_head; NULL: rendered here). */
hk_body *hk_body_new(const hk_buf *head, const hk_event *ev, const hk_target *t);

/** True when target t renders body b for b's event (same WebhookName and Properties). */
bool hk_body_fits(const hk_body *b, const hk_target *t);

/** Takes (delta +1) or drops (-1) a reference; the last drop frees b. The shape of hk_client_request.body_ref. */
void hk_body_ref(void *b, int delta);

/**
 * The body of an event for a webhook called name with Properties members
 * props (as hk_target keeps them), appended to out: what hk_delivery_body
 * renders, from the parts an attempt record keeps.
 */
void hk_delivery_body_parts(hk_buf *out, const hk_event *ev, const char *name, const char *props);

/** The signature header values of one attempt ("" each when unsigned). */
typedef struct hk_delivery_sigs {
    char so[45]; /**< X-SuperOffice-Signature; "" = the target has no secret: no signature headers */
    char
        standard[100]; /**< webhook-signature: "v1,..." and, during a rotation's overlap, " v1,..." of the old secret */
} hk_delivery_sigs;

/**
 * Signs body b for target t at now_ms: the X-SuperOffice signature from
 * b's cache (computed and kept there on a miss), the Standard Webhooks one
 * for this webhook and second.
 */
void hk_delivery_sign(const hk_target *t, hk_body *b, const char *event_uuid, uint64_t now_ms, hk_delivery_sigs *out);

/**
 * The header block of hk_delivery_headers from its parts, appended to out:
 * custom is the webhook's header lines at the time, extra as there.
 * Sending and showing a stored attempt both render it here, so the two
 * cannot differ.
 */
void hk_delivery_headers_parts(hk_buf *out, const char *event_name, const char *event_uuid, uint32_t webhook_id,
                               uint32_t retry, uint64_t now_ms, const hk_delivery_sigs *sigs, const char *custom,
                               const char *extra);

/**
 * The request of attempt record a as it was sent, into *out (malloc'd,
 * NUL-terminated, *len bytes; the caller frees it): a copy of a->request
 * when the record keeps it; for a lean record, rendered again from its
 * event (read from s) and the parts it keeps, through the functions that
 * rendered it for sending, then cut at HK_ATTEMPT_MAX_TEXT bytes and made
 * valid UTF-8 as stored texts are. HK_ENOTFOUND when the event is no
 * longer stored, or a store error.
 */
int hk_attempt_request(hk_store *s, const hk_attempt *a, char **out, size_t *len) HK_MUST_CHECK;

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
