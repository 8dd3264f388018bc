/* notify.c: failure emails (see notify.h). */
#include "notify.h"

void hk_notify_attempt(hk_app *app, const hk_attempt *a)
{
    HK_UNUSED(app);
    HK_UNUSED(a);
}

void hk_notify_shutdown(hk_app *app)
{
    HK_UNUSED(app);
}
