#include "autoconf.h"

#include "watchdog.h"

void
watchdog_init(struct watchdog *wd, uint64_t usec, uint64_t now_ms)
{
	wd->interval_ms = usec / 2 / 1000u;
	if (wd->interval_ms == 0)
		wd->interval_ms = 1;
	wd->stuck_ms = wd->interval_ms > WATCHDOG_STUCK_MIN_MS ? wd->interval_ms : WATCHDOG_STUCK_MIN_MS;
	wd->last_tick_ms = now_ms;
	wd->resumed_ms = now_ms;
	wd->withholding = false;
}

void
watchdog_tick(struct watchdog *wd, uint64_t now_ms)
{
	/* Late by more than a heartbeat period: the main thread was not
	 * running, and neither, most likely, were the workers. */
	if (now_ms > wd->last_tick_ms && now_ms - wd->last_tick_ms > wd->interval_ms + WATCHDOG_HEARTBEAT_MS)
		wd->resumed_ms = now_ms;
	wd->last_tick_ms = now_ms;
}

uint64_t
watchdog_silent_ms(const struct watchdog *wd, uint64_t now_ms, uint64_t heartbeat_ms)
{
	uint64_t since = heartbeat_ms > wd->resumed_ms ? heartbeat_ms : wd->resumed_ms;

	return now_ms > since ? now_ms - since : 0;
}
