#ifndef CUTOVER_SRC_DEPLOY_H
#define CUTOVER_SRC_DEPLOY_H

/*
 * The deploy flow, `cutoverctl deploy --run CMD [--timeout T]`: the whole
 * blue/green release, carried out by the client over the control socket
 * (the daemon never runs CMD):
 *
 *   1. status: the active color; the other one is the target;
 *   2. sh -c CMD with CUTOVER_TARGET=target (and CUTOVER_SOCKET);
 *   3. status every 250 ms until pools.TARGET.confirmed >= min_healthy;
 *   4. switch TARGET --if-gen G (the daemon runs the smoke tests and the
 *      pre_switch hook; --if-gen: nobody else switched meanwhile);
 *   5. status every 500 ms until the safety window ends (exit 0 with the
 *      verdict) or the guard rolls back (exit 1).
 *
 * T bounds each wait (3 and 5) on its own; CMD runs as long as it takes.
 * Milestones go to stdout ("deploy: ..."), the reason for a failure to
 * stderr, and the progress of steps 4 and 5 (phase, window left, requests
 * seen by the guard, verdict) to stderr as progress.c shows it: one
 * updating line on a terminal, a line per change elsewhere.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct json;

/* T when --timeout is not given. */
#define DEPLOY_DEFAULT_TIMEOUT "10m"

/*
 * How deploy words what the daemon says, supplied by the program so that
 * deploy prints exactly what the status and smoke commands print.
 */
struct deploy_printers {
	/* Prints an answer's "smoke" member (any JSON value, NULL when
	 * absent) as the smoke report on fp. */
	void (*smoke)(const struct json *smoke, FILE *fp);
	/* The safety window's verdict ("passed", "rolled-back", ...) in
	 * words; returns a string that outlives the call. */
	const char *(*verdict)(const char *verdict);
};

/*
 * Runs the flow against the control socket at path: cmd is the shell
 * command line (may hold blanks), timeout_ms bounds each wait (0:
 * DEPLOY_DEFAULT_TIMEOUT). All arguments stay the caller's. Returns the
 * exit status: CTL_EXIT_DONE once the new color is live and its safety
 * window ended, CTL_EXIT_FAILED after printing why, or an exit status from
 * ctl_call when the daemon cannot be asked. Blocks for as long as the
 * flow takes; forks and waits for the command, so the caller must not
 * reap children behind its back.
 */
int deploy_run(const char *path, const char *cmd, uint64_t timeout_ms,
    const struct deploy_printers *pr) __attribute__((warn_unused_result));

/*
 * deploy --ramp STEPS [--step T]: the same flow with step 4 a ramp
 * ("switch TARGET --ramp STEPS [--step T] --if-gen G"), followed step by
 * step (each step and its analysis printed as it goes) before the safety
 * window of the 100 % switch is followed as above. nsteps 0: deploy_run.
 */
int deploy_run_ramp(const char *path, const char *cmd, uint64_t timeout_ms,
    const struct deploy_printers *pr, const unsigned *steps, unsigned nsteps, uint64_t step_ms)
    __attribute__((warn_unused_result));

/*
 * Follows a ramp to target that the daemon has started, asking for status
 * every PROGRESS_POLL_MS: prints "WHO: ramp: ..." on stdout each time the
 * weight or the analysis's holding changes. Returns CTL_EXIT_DONE once the
 * ramp reached 100 % (target active), CTL_EXIT_FAILED after printing why
 * when it was rolled back or timeout_ms (0: none) passed on one step, or
 * an exit status from ctl_call. quiet: no lines on stdout (--json).
 * lag: in a fleet, each step (a revision of KEY/state, status's
 * fleet.revision) and the final switch must reach every live node within
 * fleet.timeout (status's fleet.timeout_ms); the nodes that did not are
 * named on stderr and a ramp that completed returns CTL_EXIT_LAGGING.
 */
int deploy_follow_ramp(const char *path, const char *who, const char *target, uint64_t timeout_ms,
    bool quiet, bool lag) __attribute__((warn_unused_result));

#endif
