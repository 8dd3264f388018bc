/*
 * clock.h: the time a component runs on, injected so that tests can drive
 * it. A clock gives wall time (ms since the Unix epoch: due times, log
 * records, signatures) and monotonic time (ms: durations, back-off, timer
 * delays). The real clock reads the system clock and the loop's time; a
 * fake clock returns what a test set and moves only when told to.
 */
#ifndef HK_CLOCK_H
#define HK_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/** A clock. Initialise with hk_clock_real or hk_clock_fake; nothing to free. */
typedef struct hk_clock {
    uv_loop_t *loop;    /**< the real clock's loop (its cached time is the monotonic time); NULL when fake */
    bool fake;          /**< a fake clock: the two values below are the time */
    uint64_t fake_wall; /**< the fake wall time, ms since the epoch */
    uint64_t fake_mono; /**< the fake monotonic time, ms */
} hk_clock;

/** A clock reading the system's wall time and loop's cached time (uv_now). loop must outlive c. */
void hk_clock_real(hk_clock *c, uv_loop_t *loop);

/** A fake clock at wall time wall_ms (monotonic time starts at 1,000,000 ms). */
void hk_clock_fake(hk_clock *c, uint64_t wall_ms);

/** Moves a fake clock forward by ms (both times); ignored by a real clock. */
void hk_clock_advance(hk_clock *c, uint64_t ms);

/** Wall time in ms since the Unix epoch. */
uint64_t hk_clock_wall(const hk_clock *c);

/** Monotonic time in ms (a real clock: the loop's time, updated once per loop iteration). */
uint64_t hk_clock_mono(const hk_clock *c);

#endif
