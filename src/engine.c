#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"
#include "engine.h"
#include "history.h"
#include "json.h"
#include "log.h"
#include "state.h"

static void set_limits(struct engine *e, const struct engine_config *cfg);
static enum switch_verdict decide(const struct engine *e, struct engine_request *rq, char *reason,
    size_t len);
static int commit_change(struct engine *e, enum color target, enum engine_trigger trigger,
    const char *reason, const struct engine_caller *who, bool stable, char *err, size_t errlen);
static int save(struct engine *e, const struct switcher *sw, int64_t switched_at_ms,
    const struct engine_ramp *ramp, char *err, size_t errlen);
static void publish(struct engine *e);
static enum switch_verdict ramp_begin(struct engine *e, struct engine_request *rq, char *msg,
    size_t msglen);
static void ramp_tick(struct engine *e, uint64_t now, const struct guard_sample cur[COLOR_COUNT]);
static void ramp_advance(struct engine *e, uint64_t now, const struct guard_sample cur[COLOR_COUNT],
    const char *why);
static int ramp_end(struct engine *e, enum engine_trigger trigger, const char *reason,
    const struct engine_caller *who, char *err, size_t errlen);
static void ramp_steps_text(const struct engine_ramp *r, char *buf, size_t len);
static void ramp_of_request(const struct engine_request *rq, struct engine_ramp *r);
static void ramp_from_state(const struct engine *e, const struct state *st, struct engine_ramp *r);
static bool ramp_apply(struct engine *e, const struct state *st, const struct engine_origin *o);
static bool ramp_fleet(const struct engine *e);
static void state_unsaved(struct engine *e, const char *err);
static void record(struct engine *e, const char *event, int from, int to, const char *trigger,
    const char *reason, const struct engine_caller *who);
static void hook(struct engine *e, enum engine_hook h, int from, int to, const char *reason);
static void arm_window(struct engine *e);
static void set_verdict(struct engine *e, enum window_verdict v, const char *reason);
static void refusal(struct engine *e, const struct engine_request *rq, const char *reason, char *msg,
    size_t msglen);
static void trim_utf8(char *s);
static void state_of(const struct engine *e, const struct switcher *sw, int64_t switched_at_ms,
    const struct engine_ramp *ramp, struct state *st);
static void record_as(struct engine *e, const char *event, int from, int to, const char *trigger,
    const char *reason, long uid, long pid, const char *node);

void
engine_init(struct engine *e, const struct engine_effects *fx, void *arg,
    const struct engine_config *cfg, enum color initial)
{
	int c;

	memset(e, 0, sizeof(*e));
	e->fx = fx;
	e->arg = arg;
	for (c = 0; c < COLOR_COUNT; c++)
		guard_init(&e->guards[c], &(struct guard_config){0});
	switcher_init(&e->sw, initial, 0, cfg->min_healthy, cfg->safety_window_ms);
	set_limits(e, cfg);
}

int
engine_restore(struct engine *e, int load_rc, const struct state *st, enum color initial)
{
	if (load_rc < 0 || (load_rc == 0 && st == NULL))
		return -1;
	if (load_rc == 1) {
		switcher_init(&e->sw, initial, 0, e->cfg.min_healthy, e->cfg.safety_window_ms);
		e->switched_at_ms = 0;
	} else {
		int64_t wall = e->fx->wall_ms(e->arg);

		switcher_init(&e->sw, st->active, st->generation, e->cfg.min_healthy,
		    e->cfg.safety_window_ms);
		e->sw.has_previous = st->has_previous;
		e->sw.previous = st->previous;
		e->switched_at_ms = st->switched_at_ms;
		if (st->window_end_ms > wall) {
			/* The safety window survives a restart. */
			e->sw.state = SWITCHER_OBSERVING;
			e->sw.window_end_ms = duration_add(e->fx->mono_ms(e->arg),
			    (uint64_t)st->window_end_ms - (uint64_t)wall);
		}
		if (st->ramping && st->ramp_target != st->active && st->ramp_nsteps <= RAMP_MAX_STEPS &&
		    st->ramp_step < st->ramp_nsteps) {
			/* A ramp resumes at the step it was on, never higher, for
			 * a whole step: the analysis starts again from here. The
			 * counters start at zero with the process, as r->start
			 * does (the workers do not run yet: nothing to sample). */
			struct engine_ramp *r = &e->ramp;

			ramp_from_state(e, st, r);
			memset(r->start, 0, sizeof(r->start));
			snprintf(r->note, sizeof(r->note), "resumed after a restart at step %u of %u", r->step + 1,
			    r->nsteps);
			log_info("%s: ramp to %s resumed at %u%% (step %u of %u)", __func__,
			    color_name(r->target), r->steps[r->step], r->step + 1, r->nsteps);
		}
	}
	publish(e);
	arm_window(e);
	return 0;
}

void
engine_reconfigure(struct engine *e, const struct engine_config *cfg)
{
	if (e->busy && e->fx->interrupt != NULL)
		e->fx->interrupt(e->arg, "interrupted by a configuration reload");
	e->busy = false;
	set_limits(e, cfg);
	publish(e);
}

/* The guards' rings of samples carry over; only the limits change. */
static void
set_limits(struct engine *e, const struct engine_config *cfg)
{
	struct guard_config gc = cfg->guard;
	int c;

	e->cfg = *cfg;
	e->sw.min_healthy = cfg->min_healthy;
	e->sw.safety_window_ms = cfg->safety_window_ms;
	for (c = 0; c < COLOR_COUNT; c++) {
		gc.name = color_name((enum color)c);
		e->guards[c].cfg = gc;
	}
	e->cfg.guard.name = NULL;
}

enum switch_verdict
engine_prepare(struct engine *e, struct engine_request *rq, char *msg, size_t msglen)
{
	enum switch_verdict v;
	char reason[512];

	msg[0] = '\0';
	if (rq->rollback)
		rq->target = e->sw.previous;
	/* Refused here, rq never held the engine: the one that does keeps it. */
	if (e->busy) {
		refusal(e, rq, "another switch is in progress", msg, msglen);
		return SWITCH_REFUSED;
	}
	if (rq->ramp_nsteps > 0 && e->ramp.on) {
		snprintf(reason, sizeof(reason), "a ramp to %s is in progress (commit or roll it back first)",
		    color_name(e->ramp.target));
		refusal(e, rq, reason, msg, msglen);
		return SWITCH_REFUSED;
	}
	if (rq->ramp_nsteps > 0 && e->sw.state == SWITCHER_OBSERVING) {
		refusal(e, rq, "a safety window is open (commit it or let it end first)", msg, msglen);
		return SWITCH_REFUSED;
	}
	v = decide(e, rq, reason, sizeof(reason));
	if (v == SWITCH_REFUSED)
		refusal(e, rq, reason, msg, msglen);
	else if (v == SWITCH_GO)
		e->busy = true;
	return v;
}

enum switch_verdict
engine_switch(struct engine *e, struct engine_request *rq, char *msg, size_t msglen)
{
	enum color from = e->sw.active;
	enum switch_verdict v;
	char reason[768], err[512];

	msg[0] = '\0';
	/* Health may have changed while smoke tests and the hook ran. */
	v = decide(e, rq, reason, sizeof(reason));
	if (v != SWITCH_GO) {
		e->busy = false;
		if (v == SWITCH_REFUSED)
			engine_refuse(e, rq, reason, msg, msglen);
		return v;
	}
	if (rq->ramp_nsteps > 0)
		return ramp_begin(e, rq, msg, msglen);
	if (commit_change(e, rq->target, rq->rollback ? ENGINE_ROLLBACK : ENGINE_MANUAL,
	        rq->force ? "forced" : NULL, &rq->who, false, err, sizeof(err)) < 0) {
		snprintf(reason, sizeof(reason), "cannot write state: %s", err);
		engine_refuse(e, rq, reason, msg, msglen);
		return SWITCH_REFUSED;
	}
	e->busy = false;
	hook(e, rq->rollback ? ENGINE_HOOK_ROLLBACK : ENGINE_HOOK_POST_SWITCH, (int)from, (int)rq->target,
	    rq->rollback ? "manual rollback" : (rq->force ? "forced" : "manual"));
	return SWITCH_GO;
}

void
engine_refuse(struct engine *e, const struct engine_request *rq, const char *reason, char *msg,
    size_t msglen)
{
	e->busy = false;
	refusal(e, rq, reason, msg, msglen);
}

/* Logs, counts and records a refusal (a dry run's is only logged). */
static void
refusal(struct engine *e, const struct engine_request *rq, const char *reason, char *msg,
    size_t msglen)
{
	bool nowhere = rq->rollback && !e->sw.has_previous;

	snprintf(msg, msglen, "%s to %s refused: %s", rq->rollback ? "rollback" : "switch",
	    nowhere ? "previous color" : color_name(rq->target), reason);
	trim_utf8(msg);
	log_warn("%s: %s (uid %ld pid %ld)", __func__, msg, rq->who.uid, rq->who.pid);
	if (rq->dry_run)
		return;
	e->refused++;
	record(e, "refused", (int)e->sw.active, nowhere ? -1 : (int)rq->target, "manual", reason,
	    &rq->who);
}

void
engine_release(struct engine *e)
{
	e->busy = false;
}

/* Checks rq against the switcher, with the target's health as it is now. */
static enum switch_verdict
decide(const struct engine *e, struct engine_request *rq, char *reason, size_t len)
{
	struct engine_servers n;
	struct switch_request sr;
	enum switch_verdict v;

	memset(&n, 0, sizeof(n));
	e->fx->servers(e->arg, rq->target, &n);
	memset(&sr, 0, sizeof(sr));
	sr.rollback = rq->rollback;
	sr.target = rq->target;
	sr.force = rq->force;
	sr.dry_run = rq->dry_run;
	sr.has_if_gen = rq->has_if_gen;
	sr.if_gen = rq->if_gen;
	sr.target_healthy = n.confirmed;
	sr.target_total = n.total;
	reason[0] = '\0';
	v = switcher_decide(&e->sw, &sr, reason, len);
	rq->target = sr.target;
	return v;
}

enum switch_verdict
engine_commit(struct engine *e, const struct engine_caller *who, char *msg, size_t msglen)
{
	struct switcher next = e->sw;
	char err[512];

	msg[0] = '\0';
	if (e->ramp.on) {
		enum color from = e->sw.active, to = e->ramp.target;
		char why[256];

		snprintf(why, sizeof(why), "ramp committed at %u%% by uid %ld", e->ramp.steps[e->ramp.step],
		    who->uid);
		if (e->busy && e->fx->interrupt != NULL)
			e->fx->interrupt(e->arg, "interrupted by a commit of the ramp");
		e->busy = false;
		if (commit_change(e, to, ENGINE_MANUAL, why, who, true, err, sizeof(err)) < 0) {
			snprintf(msg, msglen, "commit refused: cannot write state: %s", err);
			trim_utf8(msg);
			record(e, "refused", -1, (int)to, "manual", msg, who);
			return SWITCH_REFUSED;
		}
		set_verdict(e, WINDOW_COMMITTED, why);
		record(e, "commit", -1, (int)e->sw.active, "manual", why, who);
		hook(e, ENGINE_HOOK_POST_SWITCH, (int)from, (int)to, "ramp committed");
		hook(e, ENGINE_HOOK_WINDOW_END, (int)from, (int)to, "commit");
		snprintf(msg, msglen, "ramp committed: %s takes every request", color_name(to));
		return SWITCH_GO;
	}
	if (!switcher_end_window(&next)) {
		snprintf(msg, msglen, "no safety window is open");
		return SWITCH_NOOP;
	}
	/* Durable first: a restart must not reopen a window the operator
	 * closed, nor let the guard roll back a release they committed. */
	if (save(e, &next, e->switched_at_ms, NULL, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "commit refused: cannot write state: %s", err);
		trim_utf8(msg);
		log_err("%s: %s (uid %ld pid %ld); the safety window stays open", __func__, msg, who->uid, who->pid);
		record(e, "refused", -1, (int)e->sw.active, "manual", msg, who);
		return SWITCH_REFUSED;
	}
	e->sw = next;
	arm_window(e);
	snprintf(msg, msglen, "committed by uid %ld", who->uid);
	set_verdict(e, WINDOW_COMMITTED, msg);
	log_info("commit: safety window ended by uid %ld pid %ld; %s is stable", who->uid, who->pid,
	    color_name(e->sw.active));
	record(e, "commit", -1, (int)e->sw.active, "manual", NULL, who);
	hook(e, ENGINE_HOOK_WINDOW_END, e->sw.has_previous ? (int)e->sw.previous : -1, (int)e->sw.active,
	    "commit");
	snprintf(msg, msglen, "safety window ended");
	return SWITCH_GO;
}

void
engine_auto_rollback(struct engine *e, enum guard_trigger trigger, const char *reason)
{
	enum color from = e->sw.active, to = e->sw.previous;
	unsigned need = e->cfg.min_healthy > 0 ? e->cfg.min_healthy : 1;
	struct engine_servers n;
	char why[768], err[512];

	(void)trigger;
	e->guard_tripped = true;
	if (e->busy && e->fx->interrupt != NULL)
		e->fx->interrupt(e->arg, "interrupted by an automatic rollback");
	e->busy = false;
	memset(&n, 0, sizeof(n));
	if (e->sw.has_previous)
		e->fx->servers(e->arg, to, &n);
	if (!e->sw.has_previous || n.confirmed < need) {
		snprintf(why, sizeof(why), "%s; not rolled back: previous color %s has %u healthy servers, needs %u",
		    reason, e->sw.has_previous ? color_name(to) : "(none)", n.confirmed, need);
		trim_utf8(why);
		log_err("%s: auto-rollback: %s: staying on %s", __func__, why, color_name(from));
		record(e, "rollback-failed", (int)from, e->sw.has_previous ? (int)to : -1, "auto-rollback",
		    why, NULL);
		set_verdict(e, WINDOW_ROLLBACK_FAILED, why);
		hook(e, ENGINE_HOOK_ROLLBACK, (int)from, (int)to, why);
		return;
	}
	/* Cannot fail: an automatic rollback goes ahead even unsaved. */
	(void)commit_change(e, to, ENGINE_AUTO_ROLLBACK, reason, NULL, true, err, sizeof(err));
	set_verdict(e, WINDOW_ROLLED_BACK, reason);
	hook(e, ENGINE_HOOK_ROLLBACK, (int)from, (int)to, reason);
}

void
engine_tick(struct engine *e)
{
	uint64_t now = e->fx->mono_ms(e->arg);
	struct guard_sample smp[COLOR_COUNT];
	struct engine_servers n;
	enum guard_trigger trig;
	char reason[512];
	int c;

	for (c = 0; c < COLOR_COUNT; c++) {
		e->fx->sample(e->arg, (enum color)c, &smp[c]);
		guard_add(&e->guards[c], now, &smp[c]);
	}
	if (e->ramp.on)
		ramp_tick(e, now, smp);
	if (e->sw.state != SWITCHER_OBSERVING || !e->cfg.auto_rollback || e->guard_tripped)
		return;
	memset(&n, 0, sizeof(n));
	e->fx->servers(e->arg, e->sw.active, &n);
	if (guard_check(&e->guards[e->sw.active], n.up, &trig, reason, sizeof(reason)) == GUARD_ROLLBACK) {
		log_err("%s: auto-rollback (%s): %s", __func__, guard_trigger_name(trig), reason);
		engine_auto_rollback(e, trig, reason);
	}
}

bool
engine_window_end(struct engine *e)
{
	char reason[256];

	if (!switcher_tick(&e->sw, e->fx->mono_ms(e->arg))) {
		arm_window(e);
		return false;
	}
	if (e->guard_tripped && e->verdict != WINDOW_NONE) {
		/* The guard already judged this release (a rollback it could not
		 * do): the window's end does not absolve it. */
		snprintf(reason, sizeof(reason), "%.250s", e->verdict_reason);
	} else {
		set_verdict(e, guard_judge_window(&e->guards[e->sw.active], e->cfg.auto_rollback, reason,
		    sizeof(reason)), reason);
	}
	log_info("safety window ended: %s is stable (generation %" PRIu64 "); verdict %s: %s",
	    color_name(e->sw.active), e->sw.generation, window_verdict_name(e->verdict), reason);
	record(e, "window_end", -1, (int)e->sw.active, "timer", reason, NULL);
	hook(e, ENGINE_HOOK_WINDOW_END, e->sw.has_previous ? (int)e->sw.previous : -1, (int)e->sw.active,
	    reason);
	return true;
}

void
engine_retry_save(struct engine *e)
{
	char err[512];

	if (!e->unsaved)
		return;
	if (save(e, &e->sw, e->switched_at_ms, &e->ramp, err, sizeof(err)) == 0)
		return;
	if (e->retry_ms < ENGINE_STATE_RETRY_MAX_MS)
		e->retry_ms = e->retry_ms * 2 > ENGINE_STATE_RETRY_MAX_MS ? ENGINE_STATE_RETRY_MAX_MS
		                                                          : e->retry_ms * 2;
	log_err("%s: state file still not saved: %s; retrying in %" PRIu64 "ms", __func__, err,
	    e->retry_ms);
	state_unsaved(e, err);
}

int
engine_save_now(struct engine *e, char *err, size_t errlen)
{
	if (!e->unsaved)
		return 0;
	return save(e, &e->sw, e->switched_at_ms, &e->ramp, err, errlen);
}

uint64_t
engine_window_left(const struct engine *e)
{
	return switcher_window_left(&e->sw, e->fx->mono_ms(e->arg));
}

uint64_t
engine_guard_requests(const struct engine *e)
{
	return guard_requests_seen(&e->guards[e->sw.active]);
}

const char *
engine_trigger_name(enum engine_trigger t)
{
	static const char *const names[ENGINE_TRIGGERS] = {"manual", "rollback", "auto-rollback"};

	return (unsigned)t < ENGINE_TRIGGERS ? names[t] : "?";
}

/*
 * The change itself, shared by callers' switches and the guard's rollback:
 * state file first (a restart must never forget an acknowledged switch),
 * then the one publication of the route, then the history, then the
 * workers. An automatic rollback goes ahead when the save fails: serving a
 * release the guard condemned is worse than a state file that lags.
 */
static int
commit_change(struct engine *e, enum color target, enum engine_trigger trigger, const char *reason,
    const struct engine_caller *who, bool stable, char *err, size_t errlen)
{
	enum color from = e->sw.active;
	uint64_t now = e->fx->mono_ms(e->arg);
	struct switcher next = e->sw;
	struct guard_sample sample;
	double baseline;
	int64_t switched_at;
	bool unsaved = false;
	char why[768];

	switcher_commit(&next, target, now);
	if (stable) {
		/* Back on the known-good color (or a committed ramp): nothing
		 * left to observe. */
		next.state = SWITCHER_STABLE;
		next.window_end_ms = 0;
	}
	switched_at = e->fx->wall_ms(e->arg);
	/* A switch ends a ramp: the state saved has none. */
	if (save(e, &next, switched_at, NULL, err, errlen) < 0) {
		if (trigger != ENGINE_AUTO_ROLLBACK) {
			log_err("%s: switch to %s not done: %s", __func__, color_name(target), err);
			return -1;
		}
		unsaved = true;
		snprintf(why, sizeof(why), "%s; state file not saved: %s", reason ? reason : "", err);
		trim_utf8(why);
		reason = why;
	}
	baseline = guard_window_p99(&e->guards[from], now);
	e->sw = next;
	e->switched_at_ms = switched_at;
	e->ramp.on = false;
	publish(e);
	e->switches[trigger]++;
	log_info("%s: %s -> %s, generation %" PRIu64 "%s%s%s", engine_trigger_name(trigger),
	    color_name(from), color_name(target), e->sw.generation, reason ? " (" : "",
	    reason ? reason : "", reason ? ")" : "");
	if (who != NULL)
		log_info("switch requested by uid %ld pid %ld", who->uid, who->pid);
	record(e, trigger == ENGINE_MANUAL ? "switch" : "rollback", (int)from, (int)target,
	    trigger == ENGINE_AUTO_ROLLBACK ? "auto-rollback" : "manual", reason, who);
	e->fx->notify(e->arg, from, target);
	if (e->sw.state == SWITCHER_OBSERVING) {
		e->fx->sample(e->arg, target, &sample);
		guard_start(&e->guards[target], now, &sample, baseline);
		e->guard_tripped = false;
		set_verdict(e, WINDOW_NONE, "");
	}
	arm_window(e);
	if (unsaved)
		state_unsaved(e, err);
	return 0;
}

/* Saves the state sw describes; a success ends a pending retry. */
static int
save(struct engine *e, const struct switcher *sw, int64_t switched_at_ms, const struct engine_ramp *ramp,
    char *err, size_t errlen)
{
	struct state st;

	state_of(e, sw, switched_at_ms, ramp, &st);
	if (e->fx->save_state(e->arg, &st, err, errlen) < 0)
		return -1;
	if (e->unsaved) {
		e->unsaved = false;
		e->state_error[0] = '\0';
		e->retry_ms = 0;
		e->fx->arm_retry(e->arg, 0);
		log_info("%s: state file saved again (generation %" PRIu64 ")", __func__, sw->generation);
	}
	return 0;
}

/* The state sw describes. */
static void
state_of(const struct engine *e, const struct switcher *sw, int64_t switched_at_ms,
    const struct engine_ramp *ramp, struct state *st)
{
	memset(st, 0, sizeof(*st));
	st->active = sw->active;
	st->has_previous = sw->has_previous;
	st->previous = sw->previous;
	st->generation = sw->generation;
	st->switched_at_ms = switched_at_ms;
	/* The window's end as wall clock, so that it survives a restart. */
	st->window_end_ms = sw->state == SWITCHER_OBSERVING
	    ? duration_add_signed(e->fx->wall_ms(e->arg), switcher_window_left(sw, e->fx->mono_ms(e->arg)))
	    : 0;
	if (ramp != NULL && ramp->on) {
		st->ramping = true;
		st->ramp_target = ramp->target;
		memcpy(st->ramp_steps, ramp->steps, sizeof(st->ramp_steps));
		st->ramp_nsteps = ramp->nsteps;
		st->ramp_step = ramp->step;
		st->ramp_step_ms = ramp->step_ms;
		snprintf(st->ramp_node, sizeof(st->ramp_node), "%s", ramp->node);
	}
}

void
engine_state(const struct engine *e, struct state *st)
{
	state_of(e, &e->sw, e->switched_at_ms, &e->ramp, st);
}

enum switch_verdict
engine_plan(struct engine *e, struct engine_request *rq, struct state *next, char *msg,
    size_t msglen)
{
	struct switcher sw = e->sw;
	enum switch_verdict v;
	char reason[768];

	msg[0] = '\0';
	v = decide(e, rq, reason, sizeof(reason));
	if (v != SWITCH_GO) {
		e->busy = false;
		if (v == SWITCH_REFUSED)
			engine_refuse(e, rq, reason, msg, msglen);
		return v;
	}
	if (rq->ramp_nsteps > 0) {
		/* The ramp at its first step, driven by this node; the active
		 * color and the generation stay. */
		struct engine_ramp r;

		ramp_of_request(rq, &r);
		snprintf(r.node, sizeof(r.node), "%s", e->node != NULL ? e->node : "");
		state_of(e, &e->sw, e->switched_at_ms, &r, next);
		return SWITCH_GO;
	}
	switcher_commit(&sw, rq->target, e->fx->mono_ms(e->arg));
	state_of(e, &sw, e->fx->wall_ms(e->arg), NULL, next);
	return SWITCH_GO;
}

bool
engine_plan_commit(const struct engine *e, struct state *next)
{
	struct switcher sw = e->sw;

	if (e->ramp.on) {
		/* 100 % now, stable: the ramp's commit (see engine_commit). */
		switcher_commit(&sw, e->ramp.target, e->fx->mono_ms(e->arg));
		sw.state = SWITCHER_STABLE;
		sw.window_end_ms = 0;
		state_of(e, &sw, e->fx->wall_ms(e->arg), NULL, next);
		return true;
	}
	if (!switcher_end_window(&sw))
		return false;
	state_of(e, &sw, e->switched_at_ms, NULL, next);
	return true;
}

bool
engine_plan_ramp_rollback(const struct engine *e, struct state *next)
{
	state_of(e, &e->sw, e->switched_at_ms, NULL, next);
	return e->ramp.on;
}

bool
engine_apply(struct engine *e, const struct state *st, const struct engine_origin *o, bool force)
{
	enum color from = e->sw.active;
	uint64_t now = e->fx->mono_ms(e->arg);
	int64_t wall = e->fx->wall_ms(e->arg);
	struct switcher next = e->sw;
	struct guard_sample sample;
	enum engine_trigger trigger;
	double baseline;
	bool rollback = strcmp(o->event, "rollback") == 0;
	bool auto_rb = o->trigger != NULL && strcmp(o->trigger, "auto-rollback") == 0;
	bool commit = strcmp(o->event, "commit") == 0;
	struct engine_ramp ramp;
	char err[512];

	if (!force && st->generation == e->sw.generation && st->active == e->sw.active &&
	    st->has_previous == e->sw.has_previous &&
	    (!st->has_previous || st->previous == e->sw.previous)) {
		/* The same switch: a commit (the window ended) and a ramp's
		 * start, step or end are news; both at once after a resync
		 * that skipped a revision. */
		bool changed = false;

		if (e->sw.state == SWITCHER_OBSERVING && st->window_end_ms <= wall) {
			next = e->sw;
			(void)switcher_end_window(&next);
			if (save(e, &next, e->switched_at_ms, &e->ramp, err, sizeof(err)) < 0)
				state_unsaved(e, err);
			e->sw = next;
			arm_window(e);
			set_verdict(e, WINDOW_COMMITTED, "committed");
			log_info("fleet: safety window ended by %s; %s is stable", o->node != NULL ? o->node : "?",
			    color_name(e->sw.active));
			record_as(e, "commit", -1, (int)e->sw.active, o->trigger, o->reason, o->uid, o->pid,
			    o->node);
			hook(e, ENGINE_HOOK_WINDOW_END, e->sw.has_previous ? (int)e->sw.previous : -1,
			    (int)e->sw.active, "commit");
			changed = true;
		}
		if ((st->ramping || e->ramp.on) && ramp_apply(e, st, o))
			changed = true;
		return changed;
	}
	switcher_init(&next, st->active, st->generation, e->cfg.min_healthy, e->cfg.safety_window_ms);
	next.has_previous = st->has_previous;
	next.previous = st->previous;
	if (st->window_end_ms > wall) {
		next.state = SWITCHER_OBSERVING;
		next.window_end_ms = duration_add(now, (uint64_t)st->window_end_ms - (uint64_t)wall);
	}
	/* A fleet change ends a ramp this node ran alone (--local); etcd's
	 * ramp, if any, is taken whole (a diverged node coming back). */
	memset(&ramp, 0, sizeof(ramp));
	if (st->ramping)
		ramp_from_state(e, st, &ramp);
	if (save(e, &next, st->switched_at_ms, &ramp, err, sizeof(err)) < 0)
		state_unsaved(e, err);
	baseline = guard_window_p99(&e->guards[from], now);
	e->sw = next;
	e->switched_at_ms = st->switched_at_ms;
	if (ramp.on) {
		int c;

		for (c = 0; c < COLOR_COUNT; c++)
			e->fx->sample(e->arg, (enum color)c, &ramp.start[c]);
		snprintf(ramp.note, sizeof(ramp.note), "step %u of %u (from %s)", ramp.step + 1, ramp.nsteps,
		    o->node != NULL ? o->node : "etcd");
	}
	e->ramp = ramp;
	publish(e);
	trigger = auto_rb ? ENGINE_AUTO_ROLLBACK : rollback ? ENGINE_ROLLBACK : ENGINE_MANUAL;
	if (from != e->sw.active)
		e->switches[trigger]++;
	log_info("fleet: applied generation %" PRIu64 " from %s: %s -> %s (%s, %s)%s%s",
	    e->sw.generation, o->node != NULL ? o->node : "?", color_name(from),
	    color_name(e->sw.active), o->event, o->trigger != NULL ? o->trigger : "?",
	    o->reason != NULL ? ": " : "", o->reason != NULL ? o->reason : "");
	record_as(e, o->event, (int)from, (int)e->sw.active, o->trigger, o->reason, o->uid, o->pid,
	    o->node);
	if (from != e->sw.active)
		e->fx->notify(e->arg, from, e->sw.active);
	if (e->sw.state == SWITCHER_OBSERVING) {
		e->fx->sample(e->arg, e->sw.active, &sample);
		guard_start(&e->guards[e->sw.active], now, &sample, baseline);
		e->guard_tripped = false;
		set_verdict(e, WINDOW_NONE, "");
	} else if (auto_rb) {
		set_verdict(e, WINDOW_ROLLED_BACK, o->reason != NULL ? o->reason : "auto-rollback");
	} else if (commit) {
		/* A ramp committed at 100 %: stable, no window. */
		set_verdict(e, WINDOW_COMMITTED, o->reason != NULL ? o->reason : "committed");
	}
	arm_window(e);
	if (from != e->sw.active)
		hook(e, rollback ? ENGINE_HOOK_ROLLBACK : ENGINE_HOOK_POST_SWITCH, (int)from,
		    (int)e->sw.active, o->reason != NULL ? o->reason : o->event);
	if (commit && from != e->sw.active && e->sw.state != SWITCHER_OBSERVING)
		hook(e, ENGINE_HOOK_WINDOW_END, (int)from, (int)e->sw.active, "commit");
	return true;
}

/* The ramp st describes, at its step, for a whole step from now. */
static void
ramp_from_state(const struct engine *e, const struct state *st, struct engine_ramp *r)
{
	memset(r, 0, sizeof(*r));
	r->on = true;
	r->target = st->ramp_target;
	memcpy(r->steps, st->ramp_steps, sizeof(r->steps));
	r->nsteps = st->ramp_nsteps;
	r->step = st->ramp_step;
	r->step_ms = st->ramp_step_ms;
	r->step_end_ms = duration_add(e->fx->mono_ms(e->arg), r->step_ms);
	r->unguarded = !e->cfg.auto_rollback;
	snprintf(r->node, sizeof(r->node), "%s", st->ramp_node);
}

/*
 * engine_apply's part for a ramp, the switch itself unchanged: its start
 * or a step (the route with etcd's weight, one store), or its end at 0 %.
 * False when st says nothing new about the ramp.
 */
static bool
ramp_apply(struct engine *e, const struct state *st, const struct engine_origin *o)
{
	const char *by = o->node != NULL ? o->node : "?";
	struct engine_ramp next;
	enum color from, to;
	char err[512];
	bool started, followed;
	int c;

	if (!st->ramping) {
		/* The ramp ended at 0 %: a rollback (an operator's or a guard's)
		 * on some node. */
		bool auto_rb = o->trigger != NULL && strcmp(o->trigger, "auto-rollback") == 0;
		enum engine_trigger trig = auto_rb ? ENGINE_AUTO_ROLLBACK : ENGINE_ROLLBACK;

		from = e->ramp.target;
		to = e->sw.active;
		if (save(e, &e->sw, e->switched_at_ms, NULL, err, sizeof(err)) < 0)
			state_unsaved(e, err);
		e->ramp.on = false;
		publish(e);
		e->switches[trig]++;
		log_info("fleet: ramp to %s ended at 0%% by %s: %s is active%s%s", color_name(from), by,
		    color_name(to), o->reason != NULL ? ": " : "", o->reason != NULL ? o->reason : "");
		record_as(e, "rollback", (int)from, (int)to, o->trigger, o->reason, o->uid, o->pid, o->node);
		if (auto_rb)
			set_verdict(e, WINDOW_ROLLED_BACK, o->reason != NULL ? o->reason : "auto-rollback");
		hook(e, ENGINE_HOOK_ROLLBACK, (int)from, (int)to, o->reason != NULL ? o->reason : "rollback");
		return true;
	}
	if (st->ramp_target == st->active || st->ramp_nsteps == 0 || st->ramp_nsteps > RAMP_MAX_STEPS ||
	    st->ramp_step >= st->ramp_nsteps)
		return false;
	started = !e->ramp.on || e->ramp.target != st->ramp_target || e->ramp.nsteps != st->ramp_nsteps ||
	    memcmp(e->ramp.steps, st->ramp_steps, sizeof(e->ramp.steps)) != 0 ||
	    e->ramp.step_ms != st->ramp_step_ms || strcmp(e->ramp.node, st->ramp_node) != 0;
	if (!started && e->ramp.step == st->ramp_step)
		return false;
	ramp_from_state(e, st, &next);
	if (save(e, &e->sw, e->switched_at_ms, &next, err, sizeof(err)) < 0)
		state_unsaved(e, err);
	for (c = 0; c < COLOR_COUNT; c++)
		e->fx->sample(e->arg, (enum color)c, &next.start[c]);
	followed = next.node[0] != '\0' && (e->node == NULL || strcmp(next.node, e->node) != 0);
	snprintf(next.note, sizeof(next.note), "step %u of %u started%s%s%s", next.step + 1, next.nsteps,
	    next.unguarded ? "; unguarded: auto_rollback is disabled, steps advance on time alone" : "",
	    followed ? "; driven by " : "", followed ? next.node : "");
	e->ramp = next;
	publish(e);
	log_info("fleet: ramp to %s %s by %s: %u%% (step %u of %u)", color_name(next.target),
	    started ? "started" : "stepped", by, next.steps[next.step], next.step + 1, next.nsteps);
	record_as(e, "ramp", (int)e->sw.active, (int)next.target, o->trigger, o->reason, o->uid, o->pid,
	    o->node);
	return true;
}

/*
 * A change made with no caller to refuse (the guard's rollback): the state
 * is marked unsaved (status says so) and saved again and again, backing off
 * from 1 s to 30 s, until a save succeeds.
 */
static void
state_unsaved(struct engine *e, const char *err)
{
	snprintf(e->state_error, sizeof(e->state_error), "%s", err);
	trim_utf8(e->state_error);
	if (!e->unsaved) {
		e->unsaved = true;
		e->retry_ms = ENGINE_STATE_RETRY_MIN_MS;
		log_err("%s: STATE FILE NOT SAVED: %s; %s is active (generation %" PRIu64 ") but a "
		        "restart would forget it until a save succeeds; retrying",
		    __func__, err, color_name(e->sw.active), e->sw.generation);
	}
	e->fx->arm_retry(e->arg, e->retry_ms);
}

static void
record(struct engine *e, const char *event, int from, int to, const char *trigger, const char *reason,
    const struct engine_caller *who)
{
	record_as(e, event, from, to, trigger, reason, who != NULL ? who->uid : -1,
	    who != NULL ? who->pid : -1, e->node);
}

static void
record_as(struct engine *e, const char *event, int from, int to, const char *trigger,
    const char *reason, long uid, long pid, const char *node)
{
	struct history_entry h;

	memset(&h, 0, sizeof(h));
	h.time_ms = e->fx->wall_ms(e->arg);
	h.event = event;
	h.from = from < 0 ? NULL : color_name((enum color)from);
	h.to = to < 0 ? NULL : color_name((enum color)to);
	h.trigger = trigger;
	h.reason = reason;
	h.uid = uid;
	h.pid = pid;
	h.generation = e->sw.generation;
	h.node = node;
	e->fx->record(e->arg, &h);
}

static void
hook(struct engine *e, enum engine_hook h, int from, int to, const char *reason)
{
	e->fx->run_hook(e->arg, h, from, to, e->sw.generation, reason);
}

/* The window timer follows the switcher: armed while observing. */
static void
arm_window(struct engine *e)
{
	e->fx->arm_window(e->arg, e->sw.state == SWITCHER_OBSERVING, engine_window_left(e));
}

/* The one place the verdict is set. */
static void
set_verdict(struct engine *e, enum window_verdict v, const char *reason)
{
	e->verdict = v;
	snprintf(e->verdict_reason, sizeof(e->verdict_reason), "%.500s", reason);
	trim_utf8(e->verdict_reason);
}

/* After snprintf cut s to fit its buffer: drop a character cut in half. */
static void
trim_utf8(char *s)
{
	s[utf8_trim(s, strlen(s))] = '\0';
}

/* ---- progressive shift (ramp) ------------------------------------------ */

/* The one publication of the route: the active color's, or a ramp's. */
static void
publish(struct engine *e)
{
	if (e->ramp.on)
		e->fx->publish_ramp(e->arg, e->sw.active, e->ramp.target, e->ramp.steps[e->ramp.step] * 100);
	else
		e->fx->publish(e->arg, e->sw.active);
}

void
engine_publish(struct engine *e)
{
	publish(e);
}

unsigned
engine_ramp_weight_bp(const struct engine *e)
{
	return e->ramp.on ? e->ramp.steps[e->ramp.step] * 100 : 0;
}

uint64_t
engine_ramp_step_left(const struct engine *e)
{
	uint64_t now = e->fx->mono_ms(e->arg);

	if (!e->ramp.on || now >= e->ramp.step_end_ms)
		return 0;
	return e->ramp.step_end_ms - now;
}

/* "1,10,50" */
/* A ramp at its first step as rq asks for it; the rest zero. */
static void
ramp_of_request(const struct engine_request *rq, struct engine_ramp *r)
{
	memset(r, 0, sizeof(*r));
	r->on = true;
	r->target = rq->target;
	memcpy(r->steps, rq->ramp_steps, sizeof(r->steps));
	r->nsteps = rq->ramp_nsteps;
	r->step_ms = rq->ramp_step_ms;
}

static void
ramp_steps_text(const struct engine_ramp *r, char *buf, size_t len)
{
	size_t used = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < r->nsteps && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%u", i ? "," : "", r->steps[i]);
}

/* engine_switch's second half for a ramp: the engine is held for rq. */
static enum switch_verdict
ramp_begin(struct engine *e, struct engine_request *rq, char *msg, size_t msglen)
{
	struct engine_ramp next;
	char err[512], reason[768], steps[96], span[32];
	int c;

	ramp_of_request(rq, &next);
	next.step_end_ms = duration_add(e->fx->mono_ms(e->arg), next.step_ms);
	next.unguarded = !e->cfg.auto_rollback;
	/* Durable first: a restart resumes the ramp, never forgets it. */
	if (save(e, &e->sw, e->switched_at_ms, &next, err, sizeof(err)) < 0) {
		snprintf(reason, sizeof(reason), "cannot write state: %s", err);
		trim_utf8(reason);
		engine_refuse(e, rq, reason, msg, msglen);
		return SWITCH_REFUSED;
	}
	for (c = 0; c < COLOR_COUNT; c++)
		e->fx->sample(e->arg, (enum color)c, &next.start[c]);
	ramp_steps_text(&next, steps, sizeof(steps));
	duration_format(next.step_ms, span, sizeof(span));
	snprintf(next.note, sizeof(next.note), "step 1 of %u started%s", next.nsteps,
	    next.unguarded ? "; unguarded: auto_rollback is disabled, steps advance on time alone" : "");
	e->ramp = next;
	e->busy = false;
	publish(e);
	snprintf(reason, sizeof(reason), "ramp started: %u%% (steps %s, each %s)", next.steps[0], steps, span);
	log_info("ramp: %s -> %s: %u%% of new requests (steps %s%%, each %s; uid %ld pid %ld)",
	    color_name(e->sw.active), color_name(next.target), next.steps[0], steps, span, rq->who.uid,
	    rq->who.pid);
	record(e, "ramp", (int)e->sw.active, (int)next.target, "manual", reason, &rq->who);
	snprintf(msg, msglen, "%s", reason);
	return SWITCH_GO;
}

/* Judges the ramp's step at the tick (cur: both colors' counters now). */
static void
ramp_tick(struct engine *e, uint64_t now, const struct guard_sample cur[COLOR_COUNT])
{
	struct engine_ramp *r = &e->ramp;
	enum color tc = r->target, oc = e->sw.active;
	enum guard_compare_verdict v;
	enum guard_trigger trig;
	struct engine_servers n;
	char figures[400], why[640];

	r->unguarded = !e->cfg.auto_rollback;
	if (r->unguarded) {
		if (now < r->step_end_ms) {
			snprintf(r->note, sizeof(r->note),
			    "unguarded: auto_rollback is disabled, steps advance on time alone");
			return;
		}
		ramp_advance(e, now, cur, "unguarded: auto_rollback is disabled");
		return;
	}
	memset(&n, 0, sizeof(n));
	e->fx->servers(e->arg, tc, &n);
	if (e->cfg.guard.min_healthy > 0 && n.up < e->cfg.guard.min_healthy) {
		snprintf(why, sizeof(why), "ramp at %u%%: %s has %u servers up, needs %u", r->steps[r->step],
		    color_name(tc), n.up, e->cfg.guard.min_healthy);
		ramp_end(e, ENGINE_AUTO_ROLLBACK, why, NULL, NULL, 0);
		return;
	}
	v = guard_compare(&e->cfg.guard, color_name(tc), &r->start[tc], &cur[tc], color_name(oc),
	    &r->start[oc], &cur[oc], &trig, figures, sizeof(figures));
	if (v == GUARD_CMP_BREACH) {
		snprintf(why, sizeof(why), "ramp at %u%% (%s): %s", r->steps[r->step], guard_trigger_name(trig),
		    figures);
		trim_utf8(why);
		log_err("%s: auto-rollback: %s", __func__, why);
		ramp_end(e, ENGINE_AUTO_ROLLBACK, why, NULL, NULL, 0);
		return;
	}
	if (now < r->step_end_ms) {
		snprintf(r->note, sizeof(r->note), "step %u of %u: %s", r->step + 1, r->nsteps, figures);
		trim_utf8(r->note);
		return;
	}
	if (v == GUARD_CMP_HOLD) {
		/* Too little traffic is never a pass: the step holds. */
		if (!r->holding)
			log_warn("%s: ramp to %s holds at %u%%: %s", __func__, color_name(tc), r->steps[r->step],
			    figures);
		r->holding = true;
		snprintf(r->note, sizeof(r->note), "holding: %s", figures);
		trim_utf8(r->note);
		return;
	}
	ramp_advance(e, now, cur, figures);
}

/*
 * The step passed (why says how): the next step, or 100 % after the last.
 * In a fleet only the driving node moves the ramp on, by writing the next
 * step to etcd (every node, this one too, applies it from its watch); the
 * others wait for it: without the driver the ramp holds where it is.
 */
static void
ramp_advance(struct engine *e, uint64_t now, const struct guard_sample cur[COLOR_COUNT], const char *why)
{
	struct engine_ramp next = e->ramp;
	enum color from = e->sw.active, to = e->ramp.target;
	char err[512], reason[1024], steps[96];

	ramp_steps_text(&e->ramp, steps, sizeof(steps));
	if (!engine_ramp_drives(e)) {
		e->ramp.waiting = true;
		snprintf(e->ramp.note, sizeof(e->ramp.note),
		    "step %u of %u passed here (%s); waiting for %s, which drives the ramp, to write the next",
		    e->ramp.step + 1, e->ramp.nsteps, why, e->ramp.node);
		trim_utf8(e->ramp.note);
		return;
	}
	if (ramp_fleet(e)) {
		struct switcher sw = e->sw;
		struct state st;
		const char *event;

		if (e->ramp.proposing)
			return;
		if (next.step + 1 == next.nsteps) {
			snprintf(reason, sizeof(reason), "ramp completed (steps %s): last step %u%% passed: %s",
			    steps, next.steps[next.step], why);
			switcher_commit(&sw, to, now);
			state_of(e, &sw, e->fx->wall_ms(e->arg), NULL, &st);
			event = "switch";
		} else {
			next.step++;
			snprintf(reason, sizeof(reason), "ramp step %u of %u: %u%% (step %u%% passed: %s)",
			    next.step + 1, next.nsteps, next.steps[next.step], next.steps[next.step - 1], why);
			state_of(e, &e->sw, e->switched_at_ms, &next, &st);
			event = "ramp";
		}
		trim_utf8(reason);
		e->ramp.proposing = true;
		if (e->fx->propose_ramp(e->arg, &st, event, reason) < 0) {
			e->ramp.proposing = false;
			if (!e->ramp.holding)
				log_warn("%s: ramp holds at %u%%: its next step cannot be written to etcd now",
				    __func__, e->ramp.steps[e->ramp.step]);
			e->ramp.holding = true;
			snprintf(e->ramp.note, sizeof(e->ramp.note),
			    "holding: the next step cannot be written to etcd now (tried again each tick)");
			return;
		}
		snprintf(e->ramp.note, sizeof(e->ramp.note), "step %u of %u passed (%s): writing the next to etcd",
		    e->ramp.step + 1, e->ramp.nsteps, why);
		trim_utf8(e->ramp.note);
		return;
	}
	if (next.step + 1 == next.nsteps) {
		snprintf(reason, sizeof(reason), "ramp completed (steps %s): last step %u%% passed: %s", steps,
		    next.steps[next.step], why);
		trim_utf8(reason);
		/* An ordinary switch, with its safety window. */
		if (commit_change(e, to, ENGINE_MANUAL, reason, NULL, false, err, sizeof(err)) < 0) {
			snprintf(e->ramp.note, sizeof(e->ramp.note), "holding: cannot write state: %.400s", err);
			trim_utf8(e->ramp.note);
			e->ramp.holding = true;
			return;
		}
		hook(e, ENGINE_HOOK_POST_SWITCH, (int)from, (int)to, "ramp completed");
		return;
	}
	next.step++;
	next.step_end_ms = duration_add(now, next.step_ms);
	next.holding = false;
	memcpy(next.start, cur, sizeof(next.start));
	if (save(e, &e->sw, e->switched_at_ms, &next, err, sizeof(err)) < 0) {
		/* The weight does not rise past what a restart would resume. */
		if (!e->ramp.holding)
			log_err("%s: ramp holds at %u%%: cannot write state: %s", __func__,
			    e->ramp.steps[e->ramp.step], err);
		snprintf(e->ramp.note, sizeof(e->ramp.note), "holding: cannot write state: %.400s", err);
		trim_utf8(e->ramp.note);
		e->ramp.holding = true;
		return;
	}
	snprintf(next.note, sizeof(next.note), "step %u of %u started", next.step + 1, next.nsteps);
	e->ramp = next;
	publish(e);
	snprintf(reason, sizeof(reason), "ramp step %u of %u: %u%% (step %u%% passed: %s)", next.step + 1,
	    next.nsteps, next.steps[next.step], next.steps[next.step - 1], why);
	trim_utf8(reason);
	log_info("ramp: %s", reason);
	record(e, "ramp", (int)from, (int)to, "timer", reason, NULL);
}

/*
 * Ends the ramp at 0 %: the old color takes every new request again (one
 * store); requests and tunnels on the target finish there. A caller's end
 * is refused when the state cannot be saved (-1, err); the guard's goes
 * ahead unsaved.
 */
static int
ramp_end(struct engine *e, enum engine_trigger trigger, const char *reason, const struct engine_caller *who,
    char *err, size_t errlen)
{
	enum color from = e->ramp.target, to = e->sw.active;
	char serr[512], why[1024];
	bool unsaved = false;

	if (save(e, &e->sw, e->switched_at_ms, NULL, serr, sizeof(serr)) < 0) {
		if (trigger != ENGINE_AUTO_ROLLBACK) {
			if (err != NULL)
				snprintf(err, errlen, "%s", serr);
			return -1;
		}
		unsaved = true;
		snprintf(why, sizeof(why), "%s; state file not saved: %s", reason, serr);
		trim_utf8(why);
		reason = why;
	}
	if (e->busy && e->fx->interrupt != NULL && trigger == ENGINE_AUTO_ROLLBACK)
		e->fx->interrupt(e->arg, "interrupted by an automatic rollback");
	if (trigger == ENGINE_AUTO_ROLLBACK)
		e->busy = false;
	e->ramp.on = false;
	publish(e);
	e->switches[trigger]++;
	log_info("%s: ramp to %s ended at 0%%: %s is active (%s)", engine_trigger_name(trigger),
	    color_name(from), color_name(to), reason);
	record(e, "rollback", (int)from, (int)to, trigger == ENGINE_AUTO_ROLLBACK ? "auto-rollback" : "manual",
	    reason, who);
	if (trigger == ENGINE_AUTO_ROLLBACK)
		set_verdict(e, WINDOW_ROLLED_BACK, reason);
	hook(e, ENGINE_HOOK_ROLLBACK, (int)from, (int)to, reason);
	if (unsaved)
		state_unsaved(e, serr);
	return 0;
}

/* A fleet's ramp: its steps go through etcd. */
static bool
ramp_fleet(const struct engine *e)
{
	return e->ramp.node[0] != '\0' && e->node != NULL && e->fx->propose_ramp != NULL;
}

bool
engine_ramp_drives(const struct engine *e)
{
	return e->ramp.on && (e->ramp.node[0] == '\0' || e->node == NULL || strcmp(e->ramp.node, e->node) == 0);
}

void
engine_ramp_written(struct engine *e, bool ok)
{
	/* Written: the step comes back through the watch (engine_apply),
	 * which replaces e->ramp; failed: the next tick tries again. */
	if (!ok)
		e->ramp.proposing = false;
}

enum switch_verdict
engine_ramp_rollback(struct engine *e, const struct engine_caller *who, char *msg, size_t msglen)
{
	char why[256], err[512];
	unsigned pct;

	msg[0] = '\0';
	if (!e->ramp.on) {
		snprintf(msg, msglen, "no ramp is in progress");
		return SWITCH_NOOP;
	}
	pct = e->ramp.steps[e->ramp.step];
	snprintf(why, sizeof(why), "ramp to %s rolled back at %u%% by uid %ld", color_name(e->ramp.target),
	    pct, who->uid);
	if (ramp_end(e, ENGINE_ROLLBACK, why, who, err, sizeof(err)) < 0) {
		snprintf(msg, msglen, "rollback refused: cannot write state: %s", err);
		trim_utf8(msg);
		log_err("%s: %s (uid %ld pid %ld); the ramp goes on", __func__, msg, who->uid, who->pid);
		record(e, "refused", (int)e->ramp.target, (int)e->sw.active, "manual", msg, who);
		return SWITCH_REFUSED;
	}
	snprintf(msg, msglen, "%s", why);
	return SWITCH_GO;
}
