#ifndef CUTOVER_SRC_CLOCK_H
#define CUTOVER_SRC_CLOCK_H

/*
 * The clocks: monotonic time for durations, deadlines and windows (never
 * jumps with the wall clock), and wall time for what is shown to people or
 * written to disk (switch times in the state file and history). Pure: no
 * libraries beyond clock_gettime(2).
 */

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds, microseconds, nanoseconds. */
uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
uint64_t clock_mono_ns(void);

/* CLOCK_REALTIME in milliseconds since the epoch. */
int64_t clock_wall_ms(void);

#endif
