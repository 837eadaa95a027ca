#ifndef CUTOVER_SRC_HOOKS_H
#define CUTOVER_SRC_HOOKS_H

/*
 * Hooks: operator commands run on switch events, asynchronously so they never
 * stall request handling. Each runs with CUTOVER_EVENT, CUTOVER_FROM,
 * CUTOVER_TO, CUTOVER_GENERATION and CUTOVER_REASON in its environment (plus
 * the daemon's environment), stdin from /dev/null, stdout and stderr captured
 * (up to 64 KiB; the rest is discarded) and logged line by line, and killed
 * (SIGTERM, then SIGKILL 2 s later) when it runs past the timeout.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

struct event_base;
struct hook_run;

struct hook_env {
	const char *event; /* "pre_switch", "post_switch", "rollback", "window_end" */
	const char *from;  /* color name or "" */
	const char *to;
	uint64_t generation;
	const char *reason; /* "" when none */
};

/*
 * Called once when the hook ended: status is its exit code (0..255), or -1
 * when it could not start, was killed by a signal or timed out (timed_out
 * tells which). output is what it printed (NUL-terminated, trailing
 * whitespace trimmed, valid UTF-8: bytes that are not, and NUL, became
 * U+FFFD), valid during the call only. The run frees itself after
 * the callback returns.
 */
typedef void (*hook_done_cb)(int status, bool timed_out, const char *output, void *arg);

/*
 * Starts path (executed directly, no shell) with env. Child exit is watched
 * through a pidfd on base (no SIGCHLD handler needed). Returns NULL when it
 * could not be started (errno set; done is not called).
 */
struct hook_run *hook_start(struct event_base *base, const char *path, uint64_t timeout_ms,
    const struct hook_env *env, hook_done_cb done, void *arg);

/* Kills the hook (SIGKILL), reaps it and frees the run; done is not called. */
void hook_cancel(struct hook_run *run);

/*
 * Notification hooks (post_switch, rollback, window_end) still running:
 * their outcome is only logged (by hook_start's run), and those still
 * running at stop are cancelled. Main thread only.
 */
struct hook_slot;
struct hook_set {
	TAILQ_HEAD(, hook_slot) running;
};

void hook_set_init(struct hook_set *set);

/* Starts path with env in set: 0, or -1 with errno set (nothing runs). */
int hook_set_start(struct hook_set *set, struct event_base *base, const char *path,
    uint64_t timeout_ms, const struct hook_env *env) __attribute__((warn_unused_result));

/* Cancels every hook still running (see hook_cancel). */
void hook_set_cancel_all(struct hook_set *set);

#endif
