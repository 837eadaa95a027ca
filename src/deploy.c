#include "autoconf.h"

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "command.h"
#include "ctl.h"
#include "deploy.h"
#include "duration.h"
#include "json.h"
#include "progress.h"

/*
 * The deploy flow (see deploy.h), driving the daemon with one ctl_call per
 * status or switch.
 */

/* How often to ask for status while waiting for the idle color to become
 * healthy and while following the safety window. */
#define DEPLOY_HEALTH_POLL_MS 250
#define DEPLOY_WINDOW_POLL_MS PROGRESS_POLL_MS

struct deploy {
	const char *path;
	const struct deploy_printers *pr;
	const char *target, *from;
	uint64_t timeout_ms;
	char timeout_text[32];
	uint64_t generation;    /* the current one; ours after the switch */
	struct progress pg;     /* the switch and the window, on stderr */
	const unsigned *ramp_steps; /* deploy --ramp, when ramp_nsteps > 0 */
	unsigned ramp_nsteps;
	uint64_t ramp_step_ms;
};

static void say(struct deploy *dp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int deploy_fail(struct deploy *dp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sleep_ms(unsigned ms);
static bool color_ok(const char *s);
static int deploy_status(struct deploy *dp, struct json **stp);
static int deploy_run_command(struct deploy *dp, const char *cmd);
static int deploy_wait_healthy(struct deploy *dp);
static int deploy_switch(struct deploy *dp);
static int deploy_follow(struct deploy *dp);

int
deploy_run(const char *path, const char *cmd, uint64_t timeout_ms,
    const struct deploy_printers *pr)
{
	return deploy_run_ramp(path, cmd, timeout_ms, pr, NULL, 0, 0);
}

int
deploy_run_ramp(const char *path, const char *cmd, uint64_t timeout_ms,
    const struct deploy_printers *pr, const unsigned *steps, unsigned nsteps, uint64_t step_ms)
{
	struct deploy dp;
	struct json *st = NULL;
	const char *state;
	int rc;

	memset(&dp, 0, sizeof(dp));
	dp.ramp_steps = steps;
	dp.ramp_nsteps = nsteps;
	dp.ramp_step_ms = step_ms;
	dp.path = path;
	dp.pr = pr;
	dp.timeout_ms = timeout_ms;
	progress_init(&dp.pg, "deploy", stderr);
	if (timeout_ms == 0 &&
	    duration_parse(DEPLOY_DEFAULT_TIMEOUT, &dp.timeout_ms) < 0)
		return CTL_EXIT_FAILED;
	duration_format(dp.timeout_ms, dp.timeout_text, sizeof(dp.timeout_text));

	if ((rc = deploy_status(&dp, &st)) != CTL_EXIT_DONE)
		return rc;
	state = json_get_str(st, "state", "?");
	dp.from = strcmp(json_get_str(st, "active", ""), "blue") == 0 ? "blue" :
	    "green";
	dp.target = strcmp(dp.from, "blue") == 0 ? "green" : "blue";
	dp.generation = (uint64_t)json_get_num(st, "generation", 0);
	/* The idle color is the rollback target while a window is open:
	 * installing a release there now would take that away. */
	if (strcmp(state, "observing") == 0) {
		rc = deploy_fail(&dp, "the safety window of generation %" PRIu64
		    " is still open (%llds left) and %s is its rollback target; "
		    "wait for it to end or run 'cutoverctl commit'",
		    dp.generation, (long long)json_get_num(st, "window_left_s", 0),
		    dp.target);
		json_free(st);
		return rc;
	}
	if (json_get_bool(st, "switching", false)) {
		json_free(st);
		return deploy_fail(&dp, "another switch is in progress");
	}
	if (strcmp(state, "ramping") == 0) {
		json_free(st);
		return deploy_fail(&dp, "a ramp is in progress; commit it or roll it back first");
	}
	json_free(st);
	say(&dp, "%s is live (generation %" PRIu64 "); deploying to %s", dp.from,
	    dp.generation, dp.target);
	say(&dp, "running: %s", cmd);
	if ((rc = deploy_run_command(&dp, cmd)) != CTL_EXIT_DONE)
		return rc;
	if ((rc = deploy_wait_healthy(&dp)) != CTL_EXIT_DONE)
		return rc;
	if ((rc = deploy_switch(&dp)) != CTL_EXIT_DONE)
		return rc;
	return deploy_follow(&dp);
}

/* A milestone line on stdout, flushed at once: deploy runs for minutes,
 * often with stdout on a pipe to a CI log. An updating progress line on
 * the terminal is ended first, so that the two do not mix. */
static void
say(struct deploy *dp, const char *fmt, ...)
{
	va_list ap;

	progress_break(&dp->pg);
	fputs("deploy: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static int
deploy_fail(struct deploy *dp, const char *fmt, ...)
{
	va_list ap;

	progress_break(&dp->pg);
	fflush(stdout);
	fputs("cutoverctl: deploy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_EXIT_FAILED;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* status, which must succeed and name a color. */
static int
deploy_status(struct deploy *dp, struct json **stp)
{
	struct json *st = NULL;
	int rc;

	if ((rc = ctl_call(dp->path, "status", &st)) != CTL_EXIT_DONE)
		return rc;
	if (!json_get_bool(st, "ok", false)) {
		rc = deploy_fail(dp, "status: %s", json_get_str(st, "error",
		    "request failed"));
		json_free(st);
		return rc;
	}
	if (!color_ok(json_get_str(st, "active", "")) ||
	    json_get(st, "generation") == NULL) {
		json_free(st);
		return deploy_fail(dp, "status: malformed answer from %s", dp->path);
	}
	*stp = st;
	return CTL_EXIT_DONE;
}

/* Runs CMD with sh -c, CUTOVER_TARGET and CUTOVER_SOCKET set, its output
 * passed through. */
static int
deploy_run_command(struct deploy *dp, const char *cmd)
{
	pid_t pid, w;
	int status;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		return deploy_fail(dp, "cannot run the command: fork: %s",
		    strerror(errno));
	if (pid == 0) {
		if (setenv("CUTOVER_TARGET", dp->target, 1) == -1 ||
		    setenv("CUTOVER_SOCKET", dp->path, 1) == -1)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		fprintf(stderr, "cutoverctl: deploy: /bin/sh: %s\n",
		    strerror(errno));
		_exit(127);
	}
	while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	if (w == -1)
		return deploy_fail(dp, "waiting for the command: %s",
		    strerror(errno));
	if (WIFSIGNALED(status))
		return deploy_fail(dp, "CMD failed (killed by signal %d); nothing "
		    "was switched", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		return deploy_fail(dp, "CMD failed (exit %d); nothing was switched",
		    WEXITSTATUS(status));
	return CTL_EXIT_DONE;
}

/* Step 3: until the target has min_healthy confirmed servers. */
static int
deploy_wait_healthy(struct deploy *dp)
{
	int64_t deadline = duration_add_signed((int64_t)clock_mono_ms(), dp->timeout_ms);
	long long last = -1;
	int rc;

	for (;;) {
		struct json *st = NULL;
		const struct json *p;
		long long confirmed, total, need;

		if ((rc = deploy_status(dp, &st)) != CTL_EXIT_DONE)
			return rc;
		p = json_get(json_get(st, "pools"), dp->target);
		confirmed = (long long)json_get_num(p, "confirmed", 0);
		total = (long long)json_get_num(p, "total", 0);
		need = (long long)json_get_num(st, "min_healthy", 1);
		/* The daemon's own rule: min_healthy 0 still needs one. */
		if (need < 1)
			need = 1;
		json_free(st);
		if (confirmed != last)
			say(dp, "waiting for %s: %lld of %lld servers healthy, "
			    "need %lld", dp->target, confirmed, total, need);
		last = confirmed;
		if (confirmed >= need)
			return CTL_EXIT_DONE;
		if ((int64_t)clock_mono_ms() >= deadline)
			return deploy_fail(dp, "timed out waiting for %s to become "
			    "healthy: %lld of %lld servers healthy after %s, "
			    "need %lld; nothing was switched", dp->target,
			    confirmed, total, dp->timeout_text, need);
		sleep_ms(DEPLOY_HEALTH_POLL_MS);
	}
}

/* Step 4. The daemon's refusal names the check that failed. */
static int
deploy_switch(struct deploy *dp)
{
	struct json *ans = NULL;
	struct command_request rq;
	struct jbuf line;
	char *answer = NULL;
	size_t len = 0;
	int rc;

	/* "switch TARGET --if-gen G", worded by the command table. */
	memset(&rq, 0, sizeof(rq));
	rq.cmd = &command_table[COMMAND_SWITCH];
	rq.has_arg = true;
	rq.flags = COMMAND_F_IF_GEN;
	rq.if_gen = dp->generation;
	if (dp->ramp_nsteps > 0) {
		rq.flags |= COMMAND_F_RAMP | (dp->ramp_step_ms > 0 ? COMMAND_F_STEP : 0);
		memcpy(rq.ramp_steps, dp->ramp_steps, dp->ramp_nsteps * sizeof(*dp->ramp_steps));
		rq.ramp_nsteps = dp->ramp_nsteps;
		rq.step_ms = dp->ramp_step_ms;
	}
	jbuf_init(&line);
	if (color_parse(dp->target, &rq.color) < 0 ||
	    command_format(&rq, &line) < 0 || line.oom) {
		jbuf_free(&line);
		return deploy_fail(dp, "cannot word the switch to %s", dp->target);
	}
	say(dp, "switching to %s (the daemon runs the smoke tests and the "
	    "pre_switch hook)", dp->target);
	jbuf_raw(&line, "\n");
	if (line.oom) {
		jbuf_free(&line);
		return deploy_fail(dp, "out of memory");
	}
	/* The smoke tests may take a while: show the daemon's progress. */
	rc = progress_call(&dp->pg, dp->path, &line, CTL_ANSWER_TIMEOUT_MS, &answer,
	    &len);
	jbuf_free(&line);
	if (rc == CTL_EXIT_DONE)
		rc = ctl_parse_answer(dp->path, answer, len, &ans);
	free(answer);
	if (rc != CTL_EXIT_DONE)
		return rc;
	if (!json_get_bool(ans, "ok", false)) {
		const struct json *smoke = json_get(ans, "smoke");

		if (smoke != NULL && smoke->type == JSON_ARRAY && smoke->n > 0)
			dp->pr->smoke(smoke, stdout);
		rc = deploy_fail(dp, "%s; %s stays live", json_get_str(ans, "error",
		    "switch refused"), dp->from);
		json_free(ans);
		return rc;
	}
	if (dp->ramp_nsteps > 0) {
		if (json_get(ans, "ramp") == NULL) {
			json_free(ans);
			return deploy_fail(dp, "the ramp to %s did not start", dp->target);
		}
		say(dp, "%s", json_get_str(ans, "message", "ramp started"));
		json_free(ans);
		if ((rc = deploy_follow_ramp(dp->path, "deploy", dp->target, dp->timeout_ms, false, false)) != CTL_EXIT_DONE)
			return rc;
		if ((rc = deploy_status(dp, &ans)) != CTL_EXIT_DONE)
			return rc;
		dp->generation = (uint64_t)json_get_num(ans, "generation", 0);
		json_free(ans);
		say(dp, "following the safety window");
		return CTL_EXIT_DONE;
	}
	if (!json_get_bool(ans, "changed", true) ||
	    strcmp(json_get_str(ans, "active", ""), dp->target) != 0) {
		json_free(ans);
		return deploy_fail(dp, "the switch to %s changed nothing", dp->target);
	}
	dp->generation = (uint64_t)json_get_num(ans, "generation", 0);
	json_free(ans);
	say(dp, "switched to %s (generation %" PRIu64 "); following the safety "
	    "window", dp->target, dp->generation);
	return CTL_EXIT_DONE;
}

/* Step 5. */
static int
deploy_follow(struct deploy *dp)
{
	int64_t deadline = duration_add_signed((int64_t)clock_mono_ms(), dp->timeout_ms);
	int rc;

	for (;;) {
		struct json *st = NULL;
		const char *active, *state, *verdict, *vreason;
		uint64_t gen;
		long long left;

		if ((rc = deploy_status(dp, &st)) != CTL_EXIT_DONE)
			return rc;
		active = json_get_str(st, "active", "?");
		state = json_get_str(st, "state", "?");
		verdict = json_get_str(st, "verdict", "");
		vreason = json_get_str(st, "verdict_reason", "");
		gen = (uint64_t)json_get_num(st, "generation", 0);
		left = (long long)json_get_num(st, "window_left_s", 0);
		if (strcmp(active, dp->target) != 0) {
			if (strcmp(verdict, "rolled-back") == 0)
				rc = deploy_fail(dp, "rolled back: %s; traffic is "
				    "on %s again (generation %" PRIu64 ")",
				    vreason, active, gen);
			else
				rc = deploy_fail(dp, "%s is no longer live: %s is "
				    "(generation %" PRIu64 "); see cutoverctl "
				    "history", dp->target, active, gen);
			json_free(st);
			return rc;
		}
		if (gen != dp->generation) {
			rc = deploy_fail(dp, "the generation moved from %" PRIu64
			    " to %" PRIu64 " while following the safety window; "
			    "see cutoverctl history", dp->generation, gen);
			json_free(st);
			return rc;
		}
		if (strcmp(verdict, "rollback-failed") == 0) {
			rc = deploy_fail(dp, "the guard tripped but could not roll "
			    "back: %s; %s is still live", vreason, dp->target);
			json_free(st);
			return rc;
		}
		if (strcmp(state, "stable") == 0) {
			if (strcmp(verdict, "insufficient-traffic") == 0)
				say(dp, "%s is live; the safety window ended "
				    "WITHOUT A VERDICT: %s", dp->target, vreason);
			else if (*verdict != '\0')
				say(dp, "%s is live; safety window %s%s%s",
				    dp->target, dp->pr->verdict(verdict),
				    *vreason != '\0' ? ": " : "", vreason);
			else
				say(dp, "%s is live; no safety window", dp->target);
			json_free(st);
			return CTL_EXIT_DONE;
		}
		/* The updating line on a terminal; elsewhere a line when the
		 * phase, the guard's judging or the verdict changes. */
		progress_show(&dp->pg, st);
		json_free(st);
		if ((int64_t)clock_mono_ms() >= deadline)
			return deploy_fail(dp, "timed out after %s following the "
			    "safety window (%llds left); %s is live, the window "
			    "is still open", dp->timeout_text, left, dp->target);
		sleep_ms(DEPLOY_WINDOW_POLL_MS);
	}
}


/*
 * A fleet's convergence while a ramp is followed: *rev is the revision of
 * KEY/state being watched, *since when it was first seen unconverged
 * (-1: converged), *named the last revision whose laggards were printed.
 * Returns true when a live node did not apply rev within fleet.timeout
 * (named on stderr once per revision).
 */
static bool
fleet_lagging(const struct json *st, const char *who, long long *rev, int64_t *since, long long *named)
{
	const struct json *fl = json_get(st, "fleet"), *nodes;
	int64_t now = (int64_t)clock_mono_ms();
	long long r;
	bool any = false;

	if (fl == NULL || fl->type != JSON_OBJECT)
		return false;
	r = (long long)json_get_num(fl, "revision", 0);
	if (json_get_bool(fl, "converged", false)) {
		*rev = r;
		*since = -1;
		return false;
	}
	if (r != *rev || *since < 0) {
		*rev = r;
		*since = now;
		return false;
	}
	if (now - *since < (int64_t)json_get_num(fl, "timeout_ms", 2000) || *named == r)
		return false;
	*named = r;
	fprintf(stderr, "cutoverctl: %s: not every live node applied revision %lld of the fleet's state "
	    "within fleet.timeout; lagging:", who, r);
	nodes = json_get(fl, "nodes");
	for (size_t k = 0; nodes != NULL && nodes->type == JSON_ARRAY && k < nodes->n; k++) {
		const struct json *n = nodes->items[k];

		if (strcmp(json_get_str(n, "node", ""), json_get_str(fl, "node", "")) == 0)
			continue;
		if ((long long)json_get_num(n, "revision", 0) < r || json_get_bool(n, "diverged", false)) {
			fprintf(stderr, " %s", json_get_str(n, "node", "?"));
			any = true;
		}
	}
	if (!any)
		fprintf(stderr, " %s", json_get_str(fl, "node", "?"));
	fprintf(stderr, "\n");
	return true;
}

int
deploy_follow_ramp(const char *path, const char *who, const char *target, uint64_t timeout_ms, bool quiet,
    bool lag)
{
	int64_t deadline = timeout_ms > 0 ? duration_add_signed((int64_t)clock_mono_ms(), timeout_ms) : -1;
	long long last_pct = -1, lag_rev = -1, lag_named = -1;
	int64_t lag_since = -1;
	bool lagged = false;
	int last_holding = -1;
	char last_note[512] = "";
	struct progress pg;
	int rc;

	/* The live line (step, time left) on stderr; milestones on stdout. */
	progress_init(&pg, who, stderr);

	for (;;) {
		struct json *st = NULL;
		const struct json *ramp;
		const char *active;

		if ((rc = ctl_call(path, "status", &st)) != CTL_EXIT_DONE)
			return rc;
		if (!json_get_bool(st, "ok", false)) {
			fprintf(stderr, "cutoverctl: %s: status: %s\n", who,
			    json_get_str(st, "error", "request failed"));
			json_free(st);
			return CTL_EXIT_FAILED;
		}
		ramp = json_get(st, "ramp");
		active = json_get_str(st, "active", "?");
		if (lag && fleet_lagging(st, who, &lag_rev, &lag_since, &lag_named)) {
			progress_break(&pg);
			lagged = true;
		}
		if (ramp == NULL || ramp->type != JSON_OBJECT) {
			progress_break(&pg);
			if (strcmp(active, target) == 0) {
				if (!quiet)
					printf("%s: ramp completed: %s takes every request (generation %lld)\n", who,
					    target, (long long)json_get_num(st, "generation", 0));
				fflush(stdout);
				json_free(st);
				/* In a fleet: the last switch too must reach every live node. */
				while (lag && !lagged) {
					if ((rc = ctl_call(path, "status", &st)) != CTL_EXIT_DONE)
						return rc;
					if (json_get(st, "fleet") == NULL ||
					    json_get_bool(json_get(st, "fleet"), "converged", false)) {
						json_free(st);
						break;
					}
					lagged = fleet_lagging(st, who, &lag_rev, &lag_since, &lag_named);
					json_free(st);
					if (!lagged)
						sleep_ms(PROGRESS_POLL_MS / 5);
				}
				return lagged ? CTL_EXIT_LAGGING : CTL_EXIT_DONE;
			}
			fflush(stdout);
			fprintf(stderr, "cutoverctl: %s: ramp to %s rolled back: %s; %s takes every request\n",
			    who, target, json_get_str(st, "verdict_reason", "see cutoverctl history"), active);
			json_free(st);
			return CTL_EXIT_FAILED;
		}
		{
			long long pct = (long long)json_get_num(ramp, "weight_pct", 0);
			int holding = json_get_bool(ramp, "holding", false) ? 1 : 0;

			if (pct != last_pct || (holding && holding != last_holding))
				progress_break(&pg);
			if (pct != last_pct && !quiet)
				printf("%s: ramp: %s at %lld%% (step %lld of %zu)%s%s\n", who, target, pct,
				    (long long)json_get_num(ramp, "step", 0),
				    json_get(ramp, "steps") != NULL ? json_get(ramp, "steps")->n : (size_t)0,
				    last_pct >= 0 && last_note[0] != '\0' ? "; the step before: " : "",
				    last_pct >= 0 ? last_note : "");
			if (holding && holding != last_holding && !quiet)
				printf("%s: ramp: %s\n", who, json_get_str(ramp, "analysis", "holding"));
			if (pct != last_pct && deadline >= 0)
				deadline = duration_add_signed((int64_t)clock_mono_ms(), timeout_ms);
			last_pct = pct;
			last_holding = holding;
			snprintf(last_note, sizeof(last_note), "%s", json_get_str(ramp, "analysis", ""));
			fflush(stdout);
			if (!quiet)
				progress_show(&pg, st);
		}
		json_free(st);
		if (deadline >= 0 && (int64_t)clock_mono_ms() >= deadline) {
			progress_break(&pg);
			fprintf(stderr, "cutoverctl: %s: timed out following the ramp to %s; it goes on\n", who,
			    target);
			return CTL_EXIT_FAILED;
		}
		sleep_ms(PROGRESS_POLL_MS);
	}
}

static bool
color_ok(const char *s)
{
	return strcmp(s, "blue") == 0 || strcmp(s, "green") == 0;
}
