/*
 * state_fixture.h: what the state unit tests share: a store in a fresh
 * temporary directory, ops applied synchronously, a few record builders.
 */
#ifndef HK_STATE_FIXTURE_H
#define HK_STATE_FIXTURE_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "unit.h"

static char fx_dir[64];

/* A fresh directory for a store. */
static inline void fx_mkdir(void)
{
    snprintf(fx_dir, sizeof(fx_dir), "/tmp/hk-state-XXXXXX");
    if (mkdtemp(fx_dir) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
}

static inline void fx_rmdir(void)
{
    static const char *const files[] = {"data.mdb", "lock.mdb", "lock"};
    char path[128];
    for (size_t i = 0; i < HK_ARRAY_SIZE(files); i++) {
        snprintf(path, sizeof(path), "%s/%s", fx_dir, files[i]);
        unlink(path);
    }
    rmdir(fx_dir);
}

static inline hk_store *fx_open(uv_loop_t *loop)
{
    hk_store_opts o = {.data_dir = fx_dir, .map_size = 8u << 20, .max_batch = 64};
    hk_store *s = NULL;
    int rc = hk_store_open(&s, loop, &o);
    if (rc != 0) {
        fprintf(stderr, "cannot open the store in %s: %s\n", fx_dir, hk_strerror(rc));
        exit(1);
    }
    return s;
}

/* A webhook named name subscribed to the given events (NULL-terminated), Active, with a URL. */
static inline void fx_webhook(hk_webhook *w, const char *name, ...)
{
    va_list ap;
    hk_webhook_init(w);
    free(w->name);
    w->name = hk_strdup(name);
    free(w->url);
    w->url = hk_strdup("http://127.0.0.1:9/hook");
    va_start(ap, name);
    for (const char *e = va_arg(ap, const char *); e != NULL; e = va_arg(ap, const char *)) {
        w->events = hk_realloc(w->events, (w->nevents + 1) * sizeof(*w->events));
        w->events[w->nevents++] = hk_strdup(e);
    }
    va_end(ap);
}

/* Creates a webhook (by an operator) and returns its id. */
static inline uint32_t fx_create(hk_store *s, hk_webhook *w)
{
    hk_op op = {.type = HK_OP_WEBHOOK_PUT, .now_ms = 1000};
    op.u.webhook_put.webhook = w;
    int rc = hk_store_apply(s, &op);
    CHECK_INT(rc, 0);
    w->id = op.u.webhook_put.id;
    return op.u.webhook_put.id;
}

/* Signals name at now; returns the op's status; the op (with its out fields) into *out when given. */
static inline int fx_signal(hk_store *s, const char *name, uint64_t now, const char *idem_key, uint32_t user,
                            hk_op *out)
{
    hk_op op = {.type = HK_OP_SIGNAL, .now_ms = now};
    hk_op_signal *sg = &op.u.signal;
    sg->name = name;
    sg->primary_key = 42;
    sg->data = "{\"a\":1}";
    sg->data_len = strlen(sg->data);
    sg->changes = "[\"a\"]";
    sg->changes_len = strlen(sg->changes);
    sg->user_id = user;
    sg->uuid[0] = (uint8_t)now;
    sg->idem_key = idem_key;
    sg->idem_window_ms = 60000;
    int rc = hk_store_apply(s, &op);
    if (out != NULL)
        *out = op;
    else
        hk_op_free_out(&op);
    return rc;
}

#endif
