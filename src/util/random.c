/*
 * random.c: bytes from the kernel's CSPRNG.
 */
#include "random.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/random.h>
#include <sys/types.h>

#include "log.h"

void hk_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r <= 0) {
            hk_error("random: getrandom failed");
            abort();
        }
        p += r;
        n -= (size_t)r;
    }
}
