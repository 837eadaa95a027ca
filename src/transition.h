#ifndef CUTOVER_SRC_TRANSITION_H
#define CUTOVER_SRC_TRANSITION_H

/*
 * A transition is one switch from request to acknowledgement: the checks
 * (generation, health, smoke tests), the pre_switch hook's veto, then the
 * commit: state file written and synced, route pointer stored, history
 * appended, workers told to drop idle connections to the old color, the
 * safety window and its guard started, post_switch/rollback hooks run.
 * Smoke tests and the pre_switch hook are asynchronous, so at most one
 * transition is in progress at a time; the guard's automatic rollback does
 * not wait for anything and interrupts one in progress. Main thread only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "color.h"
#include "guard.h"

struct control_caller;
struct control_conn;
struct daemon;

struct transition_request {
	enum color target; /* ignored for rollback */
	bool rollback;
	bool force;   /* skip the health and smoke checks */
	bool dry_run; /* run the checks, change nothing (hooks are not run) */
	bool wait;    /* answer once the old color has drained */
	bool has_if_gen;
	uint64_t if_gen;
};

/* Starts a transition for a control client; it is answered exactly once. */
void transition_begin(struct daemon *d, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq);

/* Aborts the transition in progress (if any), answering its client with why. */
void transition_cancel(struct daemon *d, const char *why);

/*
 * The guard's rollback: back to the previous color now, if it is healthy;
 * otherwise stay, log loudly and run the rollback hook with the reason.
 */
void transition_auto_rollback(struct daemon *d, enum guard_trigger trigger, const char *reason);

/*
 * Durability. Every change the state file records (switch, rollback,
 * commit, automatic rollback) is saved before it takes effect; a change
 * asked for by a caller is refused when it cannot be saved.
 *
 * transition_save_state writes the state sw describes (switched_at_ms: the
 * wall clock of its last switch). On success it also ends a pending retry
 * (see below). Returns 0, or -1 with "PATH: reason" in err; it logs
 * nothing, the caller decides what the failure means.
 *
 * transition_state_unsaved is for a change made with no caller to refuse:
 * the guard's rollback, which happens anyway since safety comes first. It
 * logs an error, marks the state unsaved (status says so) and keeps trying
 * to save d->sw, backing off from 1 s to 30 s, until a save succeeds.
 */
int transition_save_state(struct daemon *d, const struct switcher *sw, int64_t switched_at_ms,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void transition_state_unsaved(struct daemon *d, const char *err);

#endif
