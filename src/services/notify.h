/*
 * notify.h: emails about failing webhooks. Called on the loop for every
 * attempt outcome; sends a plain-text mail through the [smtp] relay to the
 * webhook's notify addresses (ErrorsEmail / mailingList) when the attempt
 * disabled the webhook, and when a delivery is exhausted (at most one such
 * mail per webhook per [smtp] min_interval). Sending never blocks the loop.
 */
#ifndef HK_NOTIFY_H
#define HK_NOTIFY_H

#include <uv.h>

#include "config.h"
#include "model.h"
#include "store.h"

/** Looks at one finished attempt and mails when the rules say so. */
void hk_notify_attempt(uv_loop_t *loop, const hk_config *cfg, hk_store *store, const hk_attempt *a);

/** Stops sending and frees what notify holds (mails in flight are abandoned). */
void hk_notify_shutdown(void);

#endif
