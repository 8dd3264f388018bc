/*
 * view.h: what the SuperOffice and EnergyCAP views (view_so.c,
 * view_ecap.c) share: setting one field of an hk_webhook from a JSON
 * value, with a 400 naming the property when the value has the wrong type,
 * and the JSON forms of the fields both dialects show alike. Pure: no
 * storage, no request.
 */
#ifndef HK_VIEW_H
#define HK_VIEW_H

#include <jansson.h>

#include "model.h"
#include "webhook_rules.h"

/**
 * Sets *dst (owned, freed first) to v's text: "" when v is NULL. HK_EINVAL
 * with err filled (naming prop) when v is not a string.
 */
int hk_view_set_text(char **dst, const json_t *v, const char *prop, hk_wh_err *err) HK_MUST_CHECK;

/**
 * Sets w->extension from v: NULL, JSON null and "" clear it. HK_EINVAL
 * naming prop when v is not a string or null.
 */
int hk_view_set_extension(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err) HK_MUST_CHECK;

/**
 * Replaces w->events with the names in array v (duplicates dropped, the
 * first kept, in linear time); NULL gives none. HK_EINVAL naming prop when
 * v is not an array of strings.
 */
int hk_view_set_events(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err) HK_MUST_CHECK;

/** Replaces w->notify with n addresses (copied); addresses are checked by hk_webhook_check. */
void hk_view_set_notify(hk_webhook *w, char **addrs, size_t n);

/**
 * Replaces w->headers from object v of string values (NULL: none).
 * HK_EINVAL naming prop when v is not an object or a value not a string.
 */
int hk_view_set_headers(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err) HK_MUST_CHECK;

/**
 * Replaces w->properties from object v (NULL: none), each value kept as
 * compact JSON text. HK_EINVAL naming prop when v is not an object.
 */
int hk_view_set_properties(hk_webhook *w, const json_t *v, const char *prop, hk_wh_err *err) HK_MUST_CHECK;

/** w's events as a JSON array of strings (a new reference). */
json_t *hk_view_events(const hk_webhook *w);

/** w's notify addresses as a JSON array of strings (a new reference). */
json_t *hk_view_notify(const hk_webhook *w);

/** w's headers as an object of strings (a new reference). */
json_t *hk_view_headers(const hk_webhook *w);

/** w's Properties as an object (a new reference); a value whose text does not parse is shown as null. */
json_t *hk_view_properties(const hk_webhook *w);

#endif
