/*
 * event.h: the events table (HK_DB_EVENTS) as the old interface sees it,
 * and the delivery body built from an event. A record is binary: a version
 * byte, fixed fields, then the name, the Changes array and the Data object
 * as JSON text, so that building a body is concatenation, never a re-parse.
 * The typed record is model.h's hk_event; hk_event_view borrows its strings.
 */
#ifndef HK_EVENT_H
#define HK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

/** A transaction of the state layer (kv.h), for the old interface below. */
typedef struct hk_txn hk_txn;

/** An event whose strings point into the buffer it was decoded from (or the caller's). */
typedef struct hk_event_view {
    uint64_t id;         /**< store id, increasing */
    uint64_t ts_ms;      /**< when it was accepted */
    int64_t primary_key; /**< PrimaryKey */
    uint32_t user_id;    /**< the signalling user (ChangedByAssociateId) */
    uint8_t uuid[16];    /**< EventId */
    const char *name;    /**< event name, e.g. "contact.created" */
    size_t name_len;     /**< bytes in name */
    const char *changes; /**< JSON array of Data's keys */
    size_t changes_len;  /**< bytes in changes */
    const char *data;    /**< Data as compact JSON object text */
    size_t data_len;     /**< bytes in data */
} hk_event_view;

/** A view of e's fields (borrowing e's strings). */
hk_event_view hk_event_view_of(const hk_event *e);

/** Encodes e in the current format into a new buffer (*out, malloc'd); returns its length. */
size_t hk_event_encode(const hk_event_view *e, uint8_t **out);

/** Decodes a stored record of any version; the strings of out point into data. HK_ESTORE when malformed. */
int hk_event_decode(const void *data, size_t len, uint64_t id, hk_event_view *out) HK_MUST_CHECK;

/** The time of a stored record of any version. HK_ESTORE when malformed. */
int hk_event_time(const void *data, size_t len, uint64_t *ts_ms) HK_MUST_CHECK;

/** Reads event id from the store; out's strings live until txn ends. */
int hk_event_get(hk_txn *txn, uint64_t id, hk_event_view *out) HK_MUST_CHECK;

/**
 * Builds the delivery body: {"EventId","Timestamp","Changes","Event",
 * "PrimaryKey","Entity","ContextIdentifier","ChangedByAssociateId",
 * "WebhookName","Data"} followed by the members of props_members, a
 * pre-rendered list of `"key":value` pairs without braces ("" for none).
 * Returns a malloc'd buffer and its length in *len.
 */
char *hk_event_body(const hk_event_view *e, const char *webhook_name, const char *props_members, size_t *len);

/** Appends s as a JSON string literal (quotes included) to buf; returns the new length. */
size_t hk_json_quote(char **buf, size_t len, size_t *cap, const char *s, size_t slen);

#endif
