/*
 * api_console.h: the console, a web page served by hookd at /console/ for
 * seeing webhooks, their deliveries and failures and fixing them from a
 * browser. Its files (src/api/console/) are built into the binary
 * (src/api/console/console.cmake) and served with a strict
 * Content-Security-Policy; the page talks to the dialects' endpoints with
 * the key it was given, plus two of its own: GET /console/api/me (who the
 * key belongs to, what it may do) and GET /console/api/activity (attempts
 * per minute, the backlog, each webhook's health).
 */
#ifndef HK_API_CONSOLE_H
#define HK_API_CONSOLE_H

#include <stddef.h>

#include "router.h"

/* The console's files, generated at build time from src/api/console/ by
 * src/embed.cmake (not NUL-terminated; static storage, never freed). */
extern const unsigned char hk_console_index_html[];    /**< index.html */
extern const size_t hk_console_index_html_len;         /**< bytes in hk_console_index_html */
extern const unsigned char hk_console_console_css[];   /**< console.css */
extern const size_t hk_console_console_css_len;        /**< bytes in hk_console_console_css */
extern const unsigned char hk_console_console_js[];    /**< console.js: the API client, sign-in, routing, helpers */
extern const size_t hk_console_console_js_len;         /**< bytes in hk_console_console_js */
extern const unsigned char hk_console_webhooks_js[];   /**< webhooks.js: the list, the editor, Test */
extern const size_t hk_console_webhooks_js_len;        /**< bytes in hk_console_webhooks_js */
extern const unsigned char hk_console_deliveries_js[]; /**< deliveries.js: the attempt log, detail, resend, recover */
extern const size_t hk_console_deliveries_js_len;      /**< bytes in hk_console_deliveries_js */
extern const unsigned char hk_console_activity_js[];   /**< activity.js: the chart and the signal form */
extern const size_t hk_console_activity_js_len;        /**< bytes in hk_console_activity_js */

/** The headers every answer under /console/ carries ("Name: value\r\n" lines): CSP, nosniff, no framing. */
extern const char hk_console_headers[];

/** Adds the console's files and GET /console/api/me to r (paths matched with case, like /openapi.json). */
void hk_api_console_routes(hk_router *r);

/** Adds GET /console/api/activity to r (api_activity.c). */
void hk_api_activity_routes(hk_router *r);

#endif
