/* sender.c: the real sender, over the outbound HTTP client (see sender.h). */
#include "sender.h"

static int client_send(void *ctx, const hk_client_request *req, hk_client_cb cb, void *arg)
{
    return hk_client_send(ctx, req, cb, arg);
}

static void client_close(void *ctx, void (*closed)(void *arg), void *arg)
{
    hk_client_close(ctx, closed, arg);
}

void hk_sender_client(hk_sender *s, hk_client *c)
{
    s->send = client_send;
    s->close = client_close;
    s->ctx = c;
}
