/*
 * view_ecap.h: the EnergyCAP view of a webhook (/api/v3 WebhookResponse
 * and WebhookEditRequest, camelCase), a pure mapper between hk_webhook and
 * JSON: no storage, no request. The caller reads what the view shows
 * besides the webhook (statistics, the creator, the event type's id) and
 * passes it in, and resolves the event type an edit names.
 *
 * Mappings:
 *   notify [addresses]   mailingList ["a@x.org", "b@y.org"]
 *   state                active (true = Active, false = Stopped) and webhookStatus (the state)
 *   events [names]       eventType = the first event; an edit's webhookEventTypeId
 *                        replaces the list with that one event
 */
#ifndef HK_VIEW_ECAP_H
#define HK_VIEW_ECAP_H

#include <jansson.h>
#include <stdint.h>

#include "model.h"
#include "webhook_rules.h"

/** The EnergyCAP names of the fields, for messages. */
extern const hk_wh_names hk_view_ecap_names;

/**
 * The EnergyCAP WebhookResponse of w (a new reference). st: its statistics
 * (NULL: none yet); event_type_id: the id of w's first event (0 when
 * unknown); created_by: the user who registered it (NULL: shown as null).
 */
json_t *hk_view_ecap(const hk_webhook *w, const hk_webhook_stats *st, uint32_t event_type_id,
                     const hk_user *created_by);

/**
 * Sets the fields of a WebhookEditRequest (webhookName,
 * webhookDescription, url, secret, mailingList, active: all required) and
 * the optional extension (absent keeps it; null or "" clears it) from the
 * object in; the others stay. active false on a webhook the server
 * disabled keeps TooManyErrors. The event type is returned in
 * *event_type_id for the caller to resolve (w's events are left alone).
 * Checks types and shape only (hk_webhook_check checks the content).
 * Returns 0 or HK_EINVAL with err filled; w stays valid either way.
 */
int hk_view_ecap_parse(const json_t *in, hk_webhook *w, uint32_t *event_type_id, hk_wh_err *err) HK_MUST_CHECK;

#endif
