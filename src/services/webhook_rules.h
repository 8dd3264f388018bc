/*
 * webhook_rules.h: what a webhook must satisfy before it is stored,
 * whichever dialect it came in: the limits of every field, the target URL
 * (parsed as the delivery parses it, with literal addresses checked
 * against the SSRF guard), the secret, the custom headers (against the
 * delivery's header block), the Properties, the notify addresses and the
 * extension, and the one rule about state changes. The dialect views
 * (api/view_so.c, api/view_ecap.c) turn JSON into an hk_webhook and check
 * its shape; these rules check its content. Errors name the property in
 * the dialect of the request, through an hk_wh_names table.
 *
 * Pure functions of their arguments: they may run on any thread.
 */
#ifndef HK_WEBHOOK_RULES_H
#define HK_WEBHOOK_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "model.h"
#include "ssrf.h"

#define HK_WEBHOOK_HEADERS_MAX 32        /**< custom headers per webhook */
#define HK_WEBHOOK_HEADER_NAME_MAX 128   /**< bytes in a custom header's name */
#define HK_WEBHOOK_HEADER_VALUE_MAX 1024 /**< bytes in a custom header's value */
#define HK_WEBHOOK_PROPERTIES_MAX 32     /**< members of Properties */
#define HK_WEBHOOK_NOTIFY_MAX 50         /**< notify addresses per webhook */
#define HK_EMAIL_MAX 254                 /**< bytes in one address */

/**
 * Bytes the custom headers may take on the wire, as "Name: value\r\n"
 * lines: the delivery's header block (HK_DELIVERY_HEADERS_MAX) less room
 * for what the delivery itself writes (content type, event, id, retry and
 * signature headers, at most about 600 bytes).
 */
#define HK_WEBHOOK_HEADERS_BYTES_MAX (8192 - 1024)

/** An error to answer. */
typedef struct hk_wh_err {
    int status;     /**< HTTP status (400, 404, 409, 412...) */
    char field[64]; /**< the property at fault in the request's dialect, or "" */
    char msg[512];  /**< a human-readable message naming it */
} hk_wh_err;

/** Fills err (status, field: may be NULL, formatted message) and returns HK_EINVAL. */
int hk_wh_fail(hk_wh_err *err, int status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** What one dialect calls each field, for messages. Every member is a static string. */
typedef struct hk_wh_names {
    const char *name;        /**< Name / webhookName */
    const char *description; /**< (none) / webhookDescription */
    const char *url;         /**< TargetUrl / url */
    const char *secret;      /**< Secret / secret */
    const char *state;       /**< State / active */
    const char *events;      /**< Events / webhookEventTypeId */
    const char *headers;     /**< Headers */
    const char *properties;  /**< Properties */
    const char *notify;      /**< ErrorsEmail / mailingList */
    const char *extension;   /**< Extension / extension */
} hk_wh_names;

/**
 * Checks that w may be stored in place of old (NULL for a new webhook).
 * Every field of w is checked against its limits, except those equal to
 * old's: they were valid when stored, and a limit tightened since (or an
 * allowlist narrowed) does not block changing the others. Only the server
 * sets TooManyErrors. guard (may be NULL: not checked) is the delivery's
 * SSRF guard: a target whose host is a literal address it refuses is
 * refused here too. Returns 0, or HK_EINVAL with err filled (status 400,
 * the property named through names).
 */
int hk_webhook_check(const hk_webhook *w, const hk_webhook *old, const hk_wh_names *names, const hk_ssrf *guard,
                     hk_wh_err *err) HK_MUST_CHECK;

/**
 * Checks a target URL alone (as hk_webhook_check does for w->url), naming
 * it prop in messages.
 */
int hk_webhook_check_url(const char *url, const char *prop, const hk_ssrf *guard, hk_wh_err *err) HK_MUST_CHECK;

/** True when s is a plausible address: local@domain.tld in ASCII, at most HK_EMAIL_MAX bytes. */
bool hk_email_ok(const char *s);

/** True when a custom header may not be named s: the delivery sets it itself. */
bool hk_header_reserved(const char *s);

#endif
