/*
 * webhook.h: the old JSON interface to the webhook table, kept while
 * callers move to store.h (which reads and writes typed hk_webhook records).
 * The table itself, its codec and its indexes are owned by webhook.c.
 *
 * The JSON record these functions take and give has these members (the
 * dialects map them to their own names):
 *   id (int), name, description, events [names], url, secret,
 *   prevSecret, prevSecretUntil (ms), state ("Active" | "Stopped" |
 *   "TooManyErrors"), type ("webhook"), headers {}, properties {},
 *   notify [addresses], locked (bool), extension (string or null),
 *   registered (ms), registeredBy (user id), updated (ms), updatedBy (user id)
 */
#ifndef HK_WEBHOOK_H
#define HK_WEBHOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "model.h"

/** A transaction of the state layer (kv.h), for the old interface below. */
typedef struct hk_txn hk_txn;

/** Reads webhook id; *out is a new reference the caller releases. HK_ENOTFOUND when absent. */
int hk_webhook_get(hk_txn *txn, uint32_t id, json_t **out) HK_MUST_CHECK;

/**
 * The JSON record of a stored webhook's bytes (any format version), for
 * code that reads the table directly; a new reference, NULL when malformed.
 */
json_t *hk_webhook_record_json(const void *data, size_t len);

/**
 * Stores rec (a complete record). With id 0 a new id is assigned and
 * written into rec. Maintains the subscription and extension indexes and
 * registers the event names. HK_EEXIST when the extension is taken by
 * another webhook.
 */
int hk_webhook_put(hk_txn *txn, json_t *rec) HK_MUST_CHECK;

/** Deletes webhook id with its indexes and statistics; HK_ENOTFOUND when absent. */
int hk_webhook_delete(hk_txn *txn, uint32_t id) HK_MUST_CHECK;

/** Sets or clears the operator lock. */
int hk_webhook_set_locked(hk_txn *txn, uint32_t id, bool locked) HK_MUST_CHECK;

/** Finds the webhook whose extension is exactly ext. */
int hk_webhook_by_extension(hk_txn *txn, const char *ext, uint32_t *id) HK_MUST_CHECK;

/**
 * Calls fn for each webhook in id order until fn returns non-zero (which is
 * returned). rec is borrowed for the call only.
 */
int hk_webhook_each(hk_txn *txn, int (*fn)(json_t *rec, void *arg), void *arg);

/** Registers an event name (no-op when known) and returns its id. */
int hk_event_type_register(hk_txn *txn, const char *name, uint32_t *id) HK_MUST_CHECK;

/** Looks an event type up by id; *name is malloc'd. */
int hk_event_type_name(hk_txn *txn, uint32_t id, char **name) HK_MUST_CHECK;

/** Looks an event type up by name. */
int hk_event_type_id(hk_txn *txn, const char *name, uint32_t *id) HK_MUST_CHECK;

/** Webhook state names. */
#define HK_STATE_ACTIVE "Active"
#define HK_STATE_STOPPED "Stopped"
#define HK_STATE_TOO_MANY_ERRORS "TooManyErrors"

/** Accessors with defaults for a record. */
const char *hk_wh_str(const json_t *rec, const char *key);
int64_t hk_wh_int(const json_t *rec, const char *key);
bool hk_wh_bool(const json_t *rec, const char *key);

/** Reads statistics (zeros when none or unreadable). */
void hk_webhook_stats_get(hk_txn *txn, uint32_t id, hk_webhook_stats *out);

/** Writes statistics. */
int hk_webhook_stats_put(hk_txn *txn, uint32_t id, const hk_webhook_stats *st) HK_MUST_CHECK;

#endif
