#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"
#include "switcher.h"

void
switcher_init(struct switcher *sw, enum color active, uint64_t generation, unsigned min_healthy,
    uint64_t safety_window_ms)
{
	memset(sw, 0, sizeof(*sw));
	sw->active = active;
	sw->generation = generation;
	sw->state = SWITCHER_STABLE;
	sw->min_healthy = min_healthy;
	sw->safety_window_ms = safety_window_ms;
}

enum switch_verdict
switcher_decide(const struct switcher *sw, struct switch_request *rq, char *reason, size_t reasonlen)
{
	if (rq->has_if_gen && rq->if_gen != sw->generation) {
		snprintf(reason, reasonlen, "generation is %" PRIu64 ", not %" PRIu64, sw->generation,
		    rq->if_gen);
		return SWITCH_REFUSED;
	}
	if (rq->rollback) {
		if (!sw->has_previous) {
			snprintf(reason, reasonlen, "nothing to roll back to: no switch has happened yet");
			return SWITCH_REFUSED;
		}
		rq->target = sw->previous;
	}
	if (rq->target == sw->active)
		return SWITCH_NOOP;
	if (!rq->force && rq->target_healthy < sw->min_healthy) {
		snprintf(reason, reasonlen,
		    "%s has %u of %u servers healthy, needs %u (use --force to override)",
		    color_name(rq->target), rq->target_healthy, rq->target_total, sw->min_healthy);
		return SWITCH_REFUSED;
	}
	return SWITCH_GO;
}

void
switcher_commit(struct switcher *sw, enum color target, uint64_t now_ms)
{
	sw->previous = sw->active;
	sw->has_previous = true;
	sw->active = target;
	sw->generation++;
	if (sw->safety_window_ms > 0) {
		sw->state = SWITCHER_OBSERVING;
		sw->window_end_ms = duration_add(now_ms, sw->safety_window_ms);
	} else {
		sw->state = SWITCHER_STABLE;
		sw->window_end_ms = 0;
	}
}

bool
switcher_tick(struct switcher *sw, uint64_t now_ms)
{
	if (sw->state != SWITCHER_OBSERVING || now_ms < sw->window_end_ms)
		return false;
	sw->state = SWITCHER_STABLE;
	sw->window_end_ms = 0;
	return true;
}

bool
switcher_end_window(struct switcher *sw)
{
	if (sw->state != SWITCHER_OBSERVING)
		return false;
	sw->state = SWITCHER_STABLE;
	sw->window_end_ms = 0;
	return true;
}

uint64_t
switcher_window_left(const struct switcher *sw, uint64_t now_ms)
{
	if (sw->state != SWITCHER_OBSERVING || now_ms >= sw->window_end_ms)
		return 0;
	return sw->window_end_ms - now_ms;
}

const char *
switcher_state_name(enum switcher_state st)
{
	return st == SWITCHER_OBSERVING ? "observing" : "stable";
}
