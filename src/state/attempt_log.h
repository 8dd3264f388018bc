/*
 * attempt_log.h: the old interface to the per-webhook attempt log
 * (HK_DB_LOG) and its time index (HK_DB_LOG_TIME), kept while callers move
 * to store.h (HK_OP_OUTCOME / HK_OP_ATTEMPT write records, the queries read
 * typed hk_attempt records). attempt_log.c owns the table and its codec.
 *
 * The JSON form of a record (hk_log_get, hk_log_record_json): {"id",
 * "webhookId", "eventId", "event", "eventUuid", "attempt", "time" (ms),
 * "durationMs", "url", "request", "response", "result" (HTTP status as a
 * string, "0" when no response came), "success", "error", "userId",
 * "exhausted"}. request holds the request line, headers and body as sent;
 * response the status line, headers and body as received. Each is cut at
 * HK_LOG_MAX_TEXT bytes, and the response body never holds more than
 * [delivery] max_response_bytes. Bytes that are not valid UTF-8 are stored
 * as U+FFFD; everything else is kept byte for byte.
 */
#ifndef HK_ATTEMPT_LOG_H
#define HK_ATTEMPT_LOG_H

#include <jansson.h>

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/** A transaction of the state layer (kv.h), for the old interface below. */
typedef struct hk_txn hk_txn;

/**
 * One attempt's outcome as the old engine passes it around: the strings are
 * borrowed from the caller (model.h's hk_attempt owns its strings).
 */
typedef struct hk_attempt_view {
    uint32_t webhook_id;    /**< the webhook */
    uint64_t event_id;      /**< the event (0: a synchronous call) */
    uint32_t attempt;       /**< 1 for the first attempt */
    uint64_t started_ms;    /**< wall clock at start */
    uint64_t duration_ms;   /**< until the outcome */
    bool success;           /**< 2xx */
    int status;             /**< HTTP status, 0 when none */
    const char *error;      /**< reason when not a 2xx ("" otherwise) */
    const char *url;        /**< target */
    const char *request;    /**< request head and body as sent */
    size_t request_len;     /**< bytes in request */
    const char *response;   /**< status line, headers and (truncated) body received */
    size_t response_len;    /**< bytes in response */
    uint32_t user_id;       /**< the user behind the event */
    bool exhausted;         /**< no retry follows */
    uint64_t next_due_ms;   /**< when the retry is due (0 when none) */
    bool disabled;          /**< this outcome set the webhook to TooManyErrors */
    const char *event_name; /**< the event's name */
    const char *event_uuid; /**< EventId */
} hk_attempt_view;

/** Bytes of request text and of response text kept per attempt. */
#define HK_LOG_MAX_TEXT HK_ATTEMPT_MAX_TEXT

/** Appends the record of attempt a; its id is written to *log_id when not NULL. */
int hk_log_append(hk_txn *txn, const hk_attempt_view *a, uint64_t *log_id) HK_MUST_CHECK;

/** Reads one record as JSON; *out is a new reference. HK_ENOTFOUND when absent. */
int hk_log_get(hk_txn *txn, uint32_t webhook_id, uint64_t log_id, json_t **out) HK_MUST_CHECK;

/**
 * The JSON form of a stored record's bytes (any format version; key is its
 * HK_DB_LOG key), for code that reads the table directly; a new reference,
 * NULL when malformed.
 */
json_t *hk_log_record_json(const void *key, size_t klen, const void *data, size_t len);

/**
 * Deletes up to max records older than before_ms (and their index
 * entries); *more is set when older ones remain.
 */
int hk_log_prune(hk_txn *txn, uint64_t before_ms, size_t max, bool *more) HK_MUST_CHECK;

/** Deletes every record of a webhook (up to max; *more when some remain). */
int hk_log_delete_webhook(hk_txn *txn, uint32_t webhook_id, size_t max, bool *more) HK_MUST_CHECK;

#endif
