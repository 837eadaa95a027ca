#ifndef CUTOVER_SRC_TRANSITION_H
#define CUTOVER_SRC_TRANSITION_H

/*
 * A transition is a caller's switch (or rollback) from request to answer:
 * the engine's checks (engine_prepare: one at a time, generation, health),
 * then the asynchronous steps the engine does not do itself (smoke tests,
 * the pre_switch hook's veto), then the engine's commit (engine_switch:
 * state saved, route published, history, workers, hooks), then the answer,
 * at once or, with --wait, once the old color has drained. The engine's
 * automatic rollback and a reload interrupt one in progress through
 * transition_cancel. Main thread only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "color.h"
#include "state.h" /* RAMP_MAX_STEPS */

struct control_caller;
struct control_conn;
struct engine;
struct fleet;
struct event_base;
struct generation;
struct transition;

/*
 * What a transition needs of the daemon, owned by it. live is read at each
 * step (a reload replaces its content and interrupts the transition).
 * add_waiter registers a `--wait` caller to answer once the old color has
 * drained, taking answer_prefix (the answer without its closing brace);
 * 0, or -1 when out of memory (the caller then still owns it).
 */
struct transition_ctx {
	struct event_base *base;
	const struct generation *live;
	struct engine *engine;
	int (*add_waiter)(void *arg, struct control_conn *c, enum color old, char *answer_prefix);
	void *arg;
	struct transition *op; /* the switch being prepared (at most one) */
	struct fleet *fleet;   /* NULL without a fleet group */
};

struct transition_request {
	enum color target; /* ignored for rollback */
	bool rollback;
	bool force;   /* skip the health and smoke checks */
	bool dry_run; /* run the checks, change nothing (hooks are not run) */
	bool wait;    /* answer once the old color has drained */
	bool has_if_gen;
	uint64_t if_gen;
	bool local;   /* in a fleet: this node alone, not through etcd */
	/* --ramp: start a ramp (answered once it started, even with wait);
	 * none when ramp_nsteps is 0. */
	unsigned ramp_steps[RAMP_MAX_STEPS];
	unsigned ramp_nsteps;
	uint64_t ramp_step_ms;
};

/*
 * Starts a transition for a control client; it is answered exactly once.
 * During a ramp, a rollback or a switch to the old color ends the ramp at
 * 0 % (engine_ramp_rollback) and a switch to its target is an ordinary
 * switch that ends it at 100 %.
 */
void transition_begin(struct transition_ctx *x, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq);

/* Aborts the transition in progress (if any), answering its client with why. */
void transition_cancel(struct transition_ctx *x, const char *why);

#endif
