#ifndef CUTOVER_SRC_ENGINE_H
#define CUTOVER_SRC_ENGINE_H

/*
 * The switch engine: the one owner of the switch state (the switcher, the
 * guards of both colors, the safety window and its verdict, which color's
 * route is published, whether the state file is up to date) and the one way
 * to change it. Each change has one entry point: engine_switch (a switch or
 * a rollback asked for by a caller, or the start of a ramp), engine_commit,
 * engine_auto_rollback, engine_window_end, engine_ramp_rollback,
 * engine_restore at start and engine_reconfigure on a reload; the guard's
 * tick (engine_tick, which also moves a ramp from step to step or ends it)
 * and the save retry are the others.
 *
 * Every change is committed in one order: the state file is saved, then the
 * route is published, then the history entry is appended (once, with its
 * trigger), then the workers and waiters are told, then the hooks run. A
 * save that fails refuses a change asked for by a caller (nothing is
 * published) and does not stop an automatic rollback: safety comes first,
 * the state is marked unsaved and saving is retried with a back-off.
 *
 * The engine does no I/O of its own: no clock, no file, no socket, no event
 * loop. Everything it does to the world goes through struct engine_effects,
 * which the daemon fills with the real thing and the unit tests with fakes.
 * Main thread only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "guard.h"
#include "state.h"
#include "switcher.h"

struct history_entry;

/* Why a switch happened, as counted by cutover_switches_total{trigger}. */
enum engine_trigger { ENGINE_MANUAL = 0, ENGINE_ROLLBACK, ENGINE_AUTO_ROLLBACK, ENGINE_TRIGGERS };

/* Who asked (a control client's credentials). */
struct engine_caller {
	long uid;
	long pid;
};

/* A color's servers as the health checks see them now. */
struct engine_servers {
	unsigned up;        /* up at all (the guard's health trigger) */
	unsigned confirmed; /* passed `rise` checks (the switch's health check) */
	unsigned total;
};

/* Notification hooks the engine runs (their outcome is only logged). */
enum engine_hook { ENGINE_HOOK_POST_SWITCH, ENGINE_HOOK_ROLLBACK, ENGINE_HOOK_WINDOW_END };

/*
 * The side effects, each given arg. All are required except interrupt.
 *   mono_ms, wall_ms: the clocks (monotonic; Unix wall clock).
 *   save_state: writes st durably; 0, or -1 with "PATH: reason" in err.
 *   publish: makes color's route the one requests take (one atomic store).
 *   publish_ramp: the same for a ramp's route: new requests to active,
 *     those whose bucket is below weight_bp (1..9999) to target. Needed
 *     only by an engine that ramps.
 *   record: appends e to the audit history (its errors are the callee's).
 *   notify: after a switch to `to`: workers drop idle connections to
 *     `from`, tunnels to it are drained, `--wait` callers are answered once
 *     it has drained.
 *   run_hook: runs a notification hook with this environment.
 *   arm_window: disarms the window timer, then when armed arms it to call
 *     engine_window_end in ms.
 *   arm_retry: arms the timer that calls engine_retry_save in ms; 0 disarms.
 *   sample: color's cumulative request counters for its guard.
 *   servers: color's servers now.
 *   interrupt: aborts the switch being prepared (see engine_prepare); it
 *     must end with engine_refuse or engine_release.
 *   propose_ramp: in a fleet, writes a ramp's next step (or its end at
 *     100 %: the switch to the target), next, to etcd instead of making it
 *     here (event "ramp" or "switch", trigger "timer", reason); every node
 *     applies it from its watch (engine_apply). Returns 0 when the write
 *     started (engine_ramp_written is called with its outcome), -1 when it
 *     cannot (the step holds and is tried again at the next tick). Needed
 *     only by a fleet engine (node set): without it a ramp steps here.
 */
struct engine_effects {
	uint64_t (*mono_ms)(void *arg);
	int64_t (*wall_ms)(void *arg);
	int (*save_state)(void *arg, const struct state *st, char *err, size_t errlen);
	void (*publish)(void *arg, enum color active);
	void (*publish_ramp)(void *arg, enum color active, enum color target, unsigned weight_bp);
	void (*record)(void *arg, const struct history_entry *e);
	void (*notify)(void *arg, enum color from, enum color to);
	void (*run_hook)(void *arg, enum engine_hook hook, int from, int to, uint64_t generation,
	    const char *reason);
	void (*arm_window)(void *arg, bool armed, uint64_t ms);
	void (*arm_retry)(void *arg, uint64_t ms);
	void (*sample)(void *arg, enum color c, struct guard_sample *s);
	void (*servers)(void *arg, enum color c, struct engine_servers *n);
	void (*interrupt)(void *arg, const char *why);
	int (*propose_ramp)(void *arg, const struct state *next, const char *event, const char *reason);
};

struct engine_config {
	unsigned min_healthy;
	uint64_t safety_window_ms;
	bool auto_rollback;        /* the guard may roll back */
	struct guard_config guard; /* its name is set per color */
};

/* A switch or rollback asked for by a caller. */
struct engine_request {
	enum color target; /* a rollback's is filled in by engine_prepare */
	bool rollback;
	bool force;   /* skip the health check */
	bool dry_run; /* check, change nothing */
	bool has_if_gen;
	uint64_t if_gen;
	struct engine_caller who;
	/* A ramp (switch --ramp): the steps in percent, rising, each 1..99;
	 * none when ramp_nsteps is 0. */
	unsigned ramp_steps[RAMP_MAX_STEPS];
	unsigned ramp_nsteps;
	uint64_t ramp_step_ms;
};

/*
 * A progressive shift in progress: sw.active keeps the old color, target
 * takes steps[step] percent of new requests (by bucket, see bucket.h).
 * Each step holds step_ms; the guard compares the two colors over it
 * (guard_compare) from their counters at the step's start.
 */
struct engine_ramp {
	bool on;
	enum color target;
	unsigned steps[RAMP_MAX_STEPS];
	unsigned nsteps;
	unsigned step;         /* index of the current step */
	uint64_t step_ms;
	uint64_t step_end_ms;  /* monotonic */
	bool holding;          /* the step's time is up but the analysis cannot judge yet */
	bool unguarded;        /* auto_rollback is off: steps advance on time alone */
	/* In a fleet: the node that drives the steps ("" for a ramp of this
	 * node alone). Another node's ramp is followed here: its steps come
	 * from etcd; this node's guard still judges each step (a breach rolls
	 * back, through etcd) but never moves it on. */
	char node[STATE_NODE_MAX];
	bool proposing;        /* the next step is being written to etcd */
	bool waiting;          /* the step passed here; the driving node writes the next */
	char note[512];        /* the analysis's latest word, for status */
	struct guard_sample start[COLOR_COUNT];
};

#define ENGINE_STATE_RETRY_MIN_MS 1000
#define ENGINE_STATE_RETRY_MAX_MS 30000

/* Read its fields freely; change them only through the functions below. */
struct engine {
	const struct engine_effects *fx;
	void *arg;
	struct engine_config cfg;
	struct switcher sw;
	int64_t switched_at_ms; /* wall clock of the last switch, 0 if none */
	struct guard guards[COLOR_COUNT];
	bool busy;              /* a switch is being prepared (at most one) */
	bool guard_tripped;     /* the guard acted (or tried to) in this window */
	enum window_verdict verdict; /* the last safety window's outcome */
	char verdict_reason[512];
	/* The state file lags sw (an automatic change could not be saved). */
	bool unsaved;
	char state_error[512];
	uint64_t retry_ms;
	uint64_t switches[ENGINE_TRIGGERS];
	uint64_t refused;
	const char *node; /* in a fleet: this node's name, recorded in history; else NULL */
	struct engine_ramp ramp;
};

/*
 * A change made elsewhere (another node of a fleet, or this one through
 * etcd), as KEY/state describes it: what happened, who made it and why.
 */
struct engine_origin {
	const char *node;
	const char *event;   /* "switch", "rollback", "commit", "ramp" */
	const char *trigger; /* "manual", "auto-rollback", "timer" */
	const char *reason;  /* or NULL */
	long uid, pid;       /* -1 when not a caller's */
};

/* Starts on `initial` at generation 0 until engine_restore; publishes nothing. */
void engine_init(struct engine *e, const struct engine_effects *fx, void *arg,
    const struct engine_config *cfg, enum color initial);

/*
 * Restore at start. load_rc is state_load's: 0 and st (the state file wins
 * over initial; a safety window that has not ended resumes), 1 (no state
 * file: initial, generation 0) or -1 (a file that cannot be read or is
 * corrupt: returns -1 and publishes nothing; no color is ever guessed).
 * Otherwise publishes the active color, arms the window and returns 0.
 */
int engine_restore(struct engine *e, int load_rc, const struct state *st, enum color initial)
    __attribute__((warn_unused_result));

/*
 * Reconfigure on a reload: interrupts a switch being prepared, takes the
 * new limits (the guards keep their samples; the active color, generation
 * and window carry over) and publishes the active color again (the daemon's
 * routes were replaced).
 */
void engine_reconfigure(struct engine *e, const struct engine_config *cfg);

/*
 * First step of a caller's switch (rq->rollback: to the previous color).
 * Checks in order: one change at a time, --if-gen, a previous color to roll
 * back to, no-op, health (unless forced). SWITCH_GO reserves the engine for
 * this request until engine_switch, engine_refuse or engine_release;
 * SWITCH_REFUSED was recorded and logged, msg says why ("switch to green
 * refused: ..."); SWITCH_NOOP changes nothing.
 */
enum switch_verdict engine_prepare(struct engine *e, struct engine_request *rq, char *msg,
    size_t msglen) __attribute__((warn_unused_result));

/*
 * Commits the switch prepared for rq (checked again: health may have moved)
 * and releases the engine. With rq->ramp_nsteps, starts a ramp instead:
 * the state file records it, then the route with the first step's weight
 * is published (one store), then history gets a "ramp" entry; sw.active
 * stays. Each later step is engine_tick's (see below). SWITCH_GO: done (saved, published, recorded,
 * notified, hooks started); SWITCH_REFUSED: nothing changed, recorded, msg
 * says why (a failed save is one); SWITCH_NOOP: nothing changed.
 */
enum switch_verdict engine_switch(struct engine *e, struct engine_request *rq, char *msg,
    size_t msglen) __attribute__((warn_unused_result));

/* Refuses the switch prepared for rq (smoke test, hook veto, interruption):
 * logged, recorded and counted unless a dry run; msg gets the message. */
void engine_refuse(struct engine *e, const struct engine_request *rq, const char *reason, char *msg,
    size_t msglen);

/* Releases the engine after a dry run or a no-op: nothing is recorded. */
void engine_release(struct engine *e);

/*
 * The operator's commit: ends the safety window now; during a ramp, switches
 * to the ramp's target at once (100 %) and ends it stable, without a window. SWITCH_NOOP when no
 * window is open; SWITCH_REFUSED when the state cannot be saved (the window
 * stays open; recorded, msg says why); SWITCH_GO when done.
 */
enum switch_verdict engine_commit(struct engine *e, const struct engine_caller *who, char *msg,
    size_t msglen) __attribute__((warn_unused_result));

/*
 * The guard's rollback: back to the previous color now if it has enough
 * confirmed servers (interrupting a switch being prepared), even when the
 * state cannot be saved; otherwise stay. The verdict and the rollback hook
 * say which.
 */
void engine_auto_rollback(struct engine *e, enum guard_trigger trigger, const char *reason);

/*
 * The guard's tick: feeds both guards and judges the active color. During
 * a ramp it also judges the step: a breach (guard_compare, or the target
 * below min_healthy servers up) ends the ramp at 0 % at once (route
 * published, history "rollback" with trigger auto-rollback and the
 * figures, rollback hook), even when the state cannot be saved; at the
 * step's end a pass (or auto_rollback off) moves to the next step, and
 * after the last one to 100 %: an ordinary switch to the target with its
 * safety window; too little traffic holds the step (status says so).
 */
void engine_tick(struct engine *e);

/*
 * Ends a ramp at 0 % now for a caller (rollback, or a switch to the old
 * color): SWITCH_GO when done (saved, published, recorded, rollback hook),
 * SWITCH_REFUSED when the state cannot be saved (the ramp goes on; msg
 * says why), SWITCH_NOOP when no ramp is on.
 */
enum switch_verdict engine_ramp_rollback(struct engine *e, const struct engine_caller *who, char *msg,
    size_t msglen) __attribute__((warn_unused_result));

/* The weight of the ramp's target in basis points; 0 when no ramp is on. */
/* Publishes the route of the present state again (the pools were replaced). */
void engine_publish(struct engine *e);

unsigned engine_ramp_weight_bp(const struct engine *e);

/* Milliseconds left in the ramp's current step (0 when holding or none). */
uint64_t engine_ramp_step_left(const struct engine *e);

/* The window timer fired: ends the window (verdict judged by the guard) or
 * re-arms the timer if it fired early. Returns true when it ended. */
bool engine_window_end(struct engine *e);

/* The retry timer fired: saves the state again, backing off on failure. */
void engine_retry_save(struct engine *e);

/* A last save at stop when the state is unsaved: 0 or -1 with err. */
int engine_save_now(struct engine *e, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The fleet's side of a caller's change (fleet.c): the change is written to
 * etcd instead of committed here, and every node applies it from its watch.
 * engine_plan checks the switch prepared for rq again (like engine_switch)
 * and, on SWITCH_GO, fills *next with the state it would commit; the engine
 * stays reserved until engine_release or engine_refuse. engine_plan_commit
 * fills *next with the state after a commit, false when no window is open.
 * engine_state fills *st with the state now.
 */
enum switch_verdict engine_plan(struct engine *e, struct engine_request *rq, struct state *next,
    char *msg, size_t msglen) __attribute__((warn_unused_result));
bool engine_plan_commit(const struct engine *e, struct state *next);
void engine_state(const struct engine *e, struct state *st);

/*
 * A ramp in a fleet. engine_plan on a ramp's request fills *next with the
 * ramp at its first step, driven by this node (e->node). During a ramp,
 * engine_plan_commit fills *next with the switch to the ramp's target at
 * 100 %, stable (no window), and engine_plan_ramp_rollback with the ramp
 * ended at 0 % (false when no ramp is on). engine_ramp_written is
 * propose_ramp's outcome: a failed write lets the next tick try again.
 * engine_ramp_drives: this node moves the ramp's steps (its own ramp, or
 * one of this node alone).
 */
bool engine_plan_ramp_rollback(const struct engine *e, struct state *next);
void engine_ramp_written(struct engine *e, bool ok);
bool engine_ramp_drives(const struct engine *e);

/*
 * Applies a state read from the fleet (etcd's KEY/state), the one path by
 * which every node, the writer included, follows a fleet change. A state
 * equal to this node's (same generation, active and previous) changes
 * nothing unless force (a diverged node taking etcd's state back), except
 * that an ended window ends here too (a commit: recorded, window_end hook)
 * and that a ramp's start, step or end at 0 % is taken (saved, the route
 * with its weight published in one store, recorded with o; an end runs the
 * rollback hook). Otherwise the state is taken whole, its ramp too: saved
 * (a failed save is retried, as after an automatic rollback: etcd holds
 * the truth), published, recorded with o, workers told, hooks run. Returns true when something changed.
 */
bool engine_apply(struct engine *e, const struct state *st, const struct engine_origin *o,
    bool force);

/* Milliseconds left in the safety window. */
uint64_t engine_window_left(const struct engine *e);

/* Requests the active color's guard saw in this window. */
uint64_t engine_guard_requests(const struct engine *e);

const char *engine_trigger_name(enum engine_trigger t); /* "manual", "rollback", "auto-rollback" */

#endif
