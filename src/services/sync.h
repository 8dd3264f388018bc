/*
 * sync.h: synchronous invocations (Ivanti Execute, the EnergyCAP custom
 * actions, the SuperOffice test call and test-on-save).
 *
 * A synchronous call builds one delivery now (the body and the signed
 * headers exactly like a queued delivery's, with a fresh random EventId),
 * sends it through the engine's sender (the same SSRF guard, TLS
 * verification and timeouts as every delivery) and reports the outcome
 * from a callback. It shares its origin's concurrency_per_origin slots
 * with queued deliveries: when the origin is saturated it waits for the
 * next free slot, ahead of queued deliveries, for up to the engine's
 * sync_wait_ms ([delivery] total_timeout), and reports `unavailable` when
 * none came. The loop never waits.
 */
#ifndef HK_SYNC_H
#define HK_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "delivery.h"
#include "engine.h"

/** The outcome of one synchronous call; valid only during the callback (copy what you keep). */
typedef struct hk_sync_result {
    bool success;           /**< a 2xx arrived */
    int status;             /**< HTTP status; 0 when no response came */
    bool unavailable;       /**< nothing was sent: the origin stayed saturated (or the server is stopping);
                                 error says which. Answer 503. */
    const char *error;      /**< "" on success; else the client's reason ("connection refused",
                                 "connect timeout after 5000 ms", "refused by SSRF guard: ...") or the
                                 status line of a non-2xx answer */
    const char *url;        /**< the target URL */
    const char *request;    /**< request line, headers and body as sent ("" when nothing was sent) */
    size_t request_len;     /**< bytes in request */
    const char *response;   /**< status line, headers, a blank line and the body received, the body cut at
                                 [delivery] max_response_bytes ("" when no response came) */
    size_t response_len;    /**< bytes in response */
    const char *event_uuid; /**< the EventId sent */
    uint64_t duration_ms;   /**< from the send to the outcome */
    bool disabled;          /**< recording this failure set the webhook to TooManyErrors */
    int record_status;      /**< the commit of the attempt's record: 0, or the store's error (logged); 0 when
                                 nothing was recorded */
} hk_sync_result;

/** Called once, on the loop, never from within the call that started it. */
typedef void (*hk_sync_cb)(const hk_sync_result *res, void *arg);

/** What to send. Every pointer is borrowed for the duration of hk_sync_call only. */
typedef struct hk_sync_event {
    const char *name;          /**< event name, e.g. "webhook.execute"; Entity is the part before the dot */
    int64_t primary_key;       /**< PrimaryKey */
    const char *data;          /**< Data: compact JSON object text */
    const char *changes;       /**< Changes: JSON array text of Data's keys */
    uint32_t user_id;          /**< ChangedByAssociateId and the log record's user */
    const char *extra_headers; /**< appended after the signed headers ("X-Hook-Test: true\r\n"), or NULL */
    bool record;               /**< count the attempt in the webhook's statistics and auto-disable rules and
                                    write it to its log; cb then runs after that commit */
} hk_sync_event;

/**
 * Sends ev to target t (t is borrowed for this call only; t->webhook_id
 * names the webhook for recording). Returns 0 and later calls cb exactly
 * once; or, without calling cb, HK_ESHUTDOWN when the engine is stopping
 * and HK_EINVAL when t's URL is refused at once (not an absolute http(s)
 * URL).
 */
int hk_sync_call(hk_engine *e, const hk_target *t, const hk_sync_event *ev, hk_sync_cb cb, void *arg) HK_MUST_CHECK;

/**
 * The SuperOffice test call: sends Event "test" (Entity "test", PrimaryKey
 * 0, Data {}, header X-Hook-Test: true) to t, signed with t's secret, and
 * records nothing. Returns as hk_sync_call. Success in the result is the
 * test's verdict (2xx only).
 */
int hk_sync_call_test(hk_engine *e, const hk_target *t, uint32_t user_id, hk_sync_cb cb, void *arg) HK_MUST_CHECK;

/**
 * The SuperOffice WebhookResult message of a result: the response's status
 * line, headers and body, or the error when no response came. malloc'd.
 */
char *hk_sync_message(const hk_sync_result *res);

#endif
