/* clock.c: the real and the fake clock (see clock.h). */
#include "clock.h"

#include <string.h>

#include "common.h"

void hk_clock_real(hk_clock *c, uv_loop_t *loop)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
}

void hk_clock_fake(hk_clock *c, uint64_t wall_ms)
{
    memset(c, 0, sizeof(*c));
    c->fake = true;
    c->fake_wall = wall_ms;
    c->fake_mono = 1000000;
}

void hk_clock_advance(hk_clock *c, uint64_t ms)
{
    if (!c->fake)
        return;
    c->fake_wall += ms;
    c->fake_mono += ms;
}

uint64_t hk_clock_wall(const hk_clock *c)
{
    return c->fake ? c->fake_wall : hk_now_ms();
}

uint64_t hk_clock_mono(const hk_clock *c)
{
    return c->fake ? c->fake_mono : uv_now(c->loop);
}
