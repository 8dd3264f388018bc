/*
 * random.h: cryptographically secure random bytes.
 */
#ifndef HK_RANDOM_H
#define HK_RANDOM_H

#include <stddef.h>

/** Fills buf with n random bytes from getrandom(2); aborts if the kernel cannot supply them. */
void hk_random(void *buf, size_t n);

#endif
