/*
 * view_so.h: the SuperOffice view of a webhook (/api/v1, PascalCase
 * members, bound in any letter case), a pure mapper between hk_webhook and
 * JSON: no storage, no request. The caller reads what the view shows
 * besides the webhook (the associates) and passes it in.
 *
 * Mappings:
 *   notify [addresses]   ErrorsEmail "a@x.org,b@y.org" (set: split on , or ;)
 *   state                State "Active" | "Stopped" | "TooManyErrors" (set also as 1, 2, 3)
 *   Type                 always "webhook" (set: any other type is refused)
 */
#ifndef HK_VIEW_SO_H
#define HK_VIEW_SO_H

#include <jansson.h>

#include "model.h"
#include "webhook_rules.h"

/** The SuperOffice names of the fields, for messages. */
extern const hk_wh_names hk_view_so_names;

/**
 * The SuperOffice Webhook of w (a new reference). registered_by and
 * updated_by are the associates (NULL: shown as null).
 */
json_t *hk_view_so(const hk_webhook *w, const hk_user *registered_by, const hk_user *updated_by);

/**
 * Sets every field a SuperOffice client controls (Name, Events, TargetUrl,
 * Secret, State, Headers, Properties, ErrorsEmail, Extension) from the
 * object in, absent or null members to their defaults, and leaves the
 * others (id, description, lock, dates) as they are. Member names match
 * in any letter case; unknown members are ignored. Checks types and shape
 * only: the content is checked by hk_webhook_check. in is borrowed.
 * Returns 0 or HK_EINVAL with err filled (400, the property named); w
 * stays valid either way (partly set on failure).
 */
int hk_view_so_parse(const json_t *in, hk_webhook *w, hk_wh_err *err) HK_MUST_CHECK;

#endif
