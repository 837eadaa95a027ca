#ifndef CUTOVER_SRC_WATCHDOG_H
#define CUTOVER_SRC_WATCHDOG_H

#include <stdbool.h>
#include <stdint.h>

/*
 * The judgement behind systemd's watchdog (WatchdogSec=, WATCHDOG_USEC).
 * The main thread pings every WATCHDOG_USEC / 2 (what sd_watchdog_enabled(3)
 * asks for), but only while every worker's loop turns: each worker stamps a
 * heartbeat every WATCHDOG_HEARTBEAT_MS. A worker is judged wedged only when
 * its heartbeat is older than stuck_ms, well above the heartbeat period and
 * scheduling noise on a busy machine, so a brief stall never withholds a
 * ping; a wedged worker withholds them and systemd restarts the daemon within
 * stuck_ms + WATCHDOG_USEC. Pure arithmetic on monotonic milliseconds; main
 * thread only.
 */

#define WATCHDOG_HEARTBEAT_MS 1000u /* worker.c's heartbeat period */
#define WATCHDOG_STUCK_MIN_MS 5000u /* never judge a loop wedged sooner */

struct watchdog {
	uint64_t interval_ms;  /* ping period: WATCHDOG_USEC / 2, at least 1 */
	uint64_t stuck_ms;     /* max(WATCHDOG_USEC / 2, WATCHDOG_STUCK_MIN_MS) */
	uint64_t last_tick_ms; /* when watchdog_tick() last ran */
	uint64_t resumed_ms;   /* when the main thread last came back from a stall */
	bool withholding;      /* the last tick withheld its ping */
};

/* Sets wd up for systemd's WATCHDOG_USEC = usec at monotonic time now_ms. */
void watchdog_init(struct watchdog *wd, uint64_t usec, uint64_t now_ms);

/*
 * Notes a tick at now_ms. A tick much later than its period means the main
 * thread itself did not run (the machine or the whole process was stopped or
 * starved): the workers' heartbeats are then as stale as the main thread's
 * view, so their grace starts again from now_ms.
 */
void watchdog_tick(struct watchdog *wd, uint64_t now_ms);

/*
 * How long a worker whose last heartbeat was at heartbeat_ms counts as silent
 * at now_ms (0 when the heartbeat is newer); it is wedged when this is above
 * wd->stuck_ms.
 */
uint64_t watchdog_silent_ms(const struct watchdog *wd, uint64_t now_ms, uint64_t heartbeat_ms);

#endif
