/*
 * sender.h: how the engine and synchronous calls put a request on the
 * wire, behind two function pointers, so that tests can answer requests
 * themselves. The real sender is the outbound HTTP client (http_client.h);
 * a test's sender records requests and completes them when it likes.
 *
 * The contract is hk_client_send's and hk_client_close's: send returns 0
 * and runs cb exactly once later (never from within send), or returns an
 * error without running cb; close fails every request in flight with
 * UV_ECANCELED (their callbacks may run from within close), refuses
 * further sends with HK_ESHUTDOWN and runs closed (may be NULL) later,
 * from the loop.
 */
#ifndef HK_SENDER_H
#define HK_SENDER_H

#include "common.h"
#include "http_client.h"

/** A sender: the functions and their context. The owner of ctx decides its lifetime (see hk_sender_client). */
typedef struct hk_sender {
    /**
     * Starts a request: req and everything it points to are copied or used
     * only during the call, except a body given with body_ref, which the
     * sender holds references to instead (hk_client_request).
     */
    int (*send)(void *ctx, const hk_client_request *req, hk_client_cb cb, void *arg);
    /** Cancels what is in flight and shuts the sender down (see above). */
    void (*close)(void *ctx, void (*closed)(void *arg), void *arg);
    void *ctx; /**< the sender's own state, passed to both */
} hk_sender;

/**
 * A sender over client c: send is hk_client_send, close is
 * hk_client_close (which frees c once its handles are closed).
 */
void hk_sender_client(hk_sender *s, hk_client *c);

/** Sends through s (see hk_sender.send). */
static inline int hk_sender_send(const hk_sender *s, const hk_client_request *req, hk_client_cb cb, void *arg)
{
    return s->send(s->ctx, req, cb, arg);
}

#endif
