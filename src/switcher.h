#ifndef CUTOVER_SRC_SWITCHER_H
#define CUTOVER_SRC_SWITCHER_H

/*
 * The switch state machine: which color is active, the previous one, the
 * generation, and the safety window. Pure logic: no I/O, no clock of its own
 * (callers pass now_ms from a monotonic clock), so unit tests drive it
 * without sleeping. The daemon owns one on its main thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"

enum switcher_state { SWITCHER_STABLE, SWITCHER_OBSERVING };

struct switcher {
	enum color active;
	bool has_previous;
	enum color previous;
	uint64_t generation;
	enum switcher_state state;
	uint64_t window_end_ms; /* monotonic, when observing */
	uint64_t safety_window_ms;
	unsigned min_healthy;
};

struct switch_request {
	enum color target;
	bool rollback;   /* target is the previous color */
	bool force;      /* skip the health (and smoke) checks */
	bool dry_run;
	bool has_if_gen;
	uint64_t if_gen;
	unsigned target_healthy; /* servers of target that passed `rise` checks */
	unsigned target_total;
};

enum switch_verdict {
	SWITCH_GO,      /* checks passed: commit it */
	SWITCH_NOOP,    /* target is already active: success, nothing changes */
	SWITCH_REFUSED, /* reason says why */
};

void switcher_init(struct switcher *sw, enum color active, uint64_t generation, unsigned min_healthy,
    uint64_t safety_window_ms);

/*
 * Decides on rq against the current state. For a rollback, rq->target is
 * filled in from the previous color (refused when there is none). Order of
 * checks: --if-gen (so of two callers with the same N exactly one wins),
 * rollback without a previous color, no-op, then health unless forced.
 * Writes a human reason on refusal.
 */
enum switch_verdict switcher_decide(const struct switcher *sw, struct switch_request *rq, char *reason,
    size_t reasonlen);

/* Commits a switch to target at now_ms: generation+1, window starts. */
void switcher_commit(struct switcher *sw, enum color target, uint64_t now_ms);

/* Advances time: returns true when the safety window ended at this call. */
bool switcher_tick(struct switcher *sw, uint64_t now_ms);

/* Ends the safety window now (operator's `commit`). Returns false if stable. */
bool switcher_end_window(struct switcher *sw);

/* Milliseconds left in the safety window (0 when stable). */
uint64_t switcher_window_left(const struct switcher *sw, uint64_t now_ms);

const char *switcher_state_name(enum switcher_state st);

#endif
