/*
 * store_int.h: what store.c (the engine behind the seam) and store_port.c
 * (submissions from other threads) share. Internal to those two files.
 */
#ifndef HK_STORE_INT_H
#define HK_STORE_INT_H

#include <stdbool.h>
#include <uv.h>

#include "store.h"

struct hk__share;

/** Submits c to the group commit on the store's loop thread (hk_store_submit without the hand-over). */
void hk__store_submit_here(hk_store *s, hk_commit *c);

/** The loop done callbacks run on (NULL: a store for hk_store_apply only). */
uv_loop_t *hk__store_loop(hk_store *s);

/** The store's side of the hand-over (NULL: not shared), and setting it (hk_store_share, hk_store_unshare). */
struct hk__share *hk__store_share(hk_store *s);
void hk__store_set_share(hk_store *s, struct hk__share *sh);

/** Marks the calling thread as one running loop for the store's reads (NULL: unmarks it). */
void hk__store_thread_loop(hk_store *s, uv_loop_t *loop);

/** True while ops of ports wait to be taken into the group commit. */
bool hk__share_busy(struct hk__share *sh);

/**
 * When the calling thread has a port on s: hands c to the store's loop and
 * returns true (c->done will run on the port's loop). False otherwise.
 */
bool hk__port_forward(hk_store *s, hk_commit *c);

#endif
