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
    const char *reason, const struct engine_caller *who, char *err, size_t errlen);
static int save(struct engine *e, const struct switcher *sw, int64_t switched_at_ms, char *err,
    size_t errlen);
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
    struct state *st);
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
	}
	e->fx->publish(e->arg, e->sw.active);
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
	e->fx->publish(e->arg, e->sw.active);
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
	if (commit_change(e, rq->target, rq->rollback ? ENGINE_ROLLBACK : ENGINE_MANUAL,
	        rq->force ? "forced" : NULL, &rq->who, err, sizeof(err)) < 0) {
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
	if (!switcher_end_window(&next)) {
		snprintf(msg, msglen, "no safety window is open");
		return SWITCH_NOOP;
	}
	/* Durable first: a restart must not reopen a window the operator
	 * closed, nor let the guard roll back a release they committed. */
	if (save(e, &next, e->switched_at_ms, err, sizeof(err)) < 0) {
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
	(void)commit_change(e, to, ENGINE_AUTO_ROLLBACK, reason, NULL, err, sizeof(err));
	set_verdict(e, WINDOW_ROLLED_BACK, reason);
	hook(e, ENGINE_HOOK_ROLLBACK, (int)from, (int)to, reason);
}

void
engine_tick(struct engine *e)
{
	uint64_t now = e->fx->mono_ms(e->arg);
	struct guard_sample smp;
	struct engine_servers n;
	enum guard_trigger trig;
	char reason[512];
	int c;

	for (c = 0; c < COLOR_COUNT; c++) {
		e->fx->sample(e->arg, (enum color)c, &smp);
		guard_add(&e->guards[c], now, &smp);
	}
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
	if (save(e, &e->sw, e->switched_at_ms, err, sizeof(err)) == 0)
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
	return save(e, &e->sw, e->switched_at_ms, err, errlen);
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
    const struct engine_caller *who, char *err, size_t errlen)
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
	if (trigger == ENGINE_AUTO_ROLLBACK) {
		/* Back on the known-good color: nothing left to observe. */
		next.state = SWITCHER_STABLE;
		next.window_end_ms = 0;
	}
	switched_at = e->fx->wall_ms(e->arg);
	if (save(e, &next, switched_at, err, errlen) < 0) {
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
	e->fx->publish(e->arg, e->sw.active);
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
save(struct engine *e, const struct switcher *sw, int64_t switched_at_ms, char *err, size_t errlen)
{
	struct state st;

	state_of(e, sw, switched_at_ms, &st);
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
state_of(const struct engine *e, const struct switcher *sw, int64_t switched_at_ms, struct state *st)
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
}

void
engine_state(const struct engine *e, struct state *st)
{
	state_of(e, &e->sw, e->switched_at_ms, st);
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
	switcher_commit(&sw, rq->target, e->fx->mono_ms(e->arg));
	state_of(e, &sw, e->fx->wall_ms(e->arg), next);
	return SWITCH_GO;
}

bool
engine_plan_commit(const struct engine *e, struct state *next)
{
	struct switcher sw = e->sw;

	if (!switcher_end_window(&sw))
		return false;
	state_of(e, &sw, e->switched_at_ms, next);
	return true;
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
	char err[512];

	if (!force && st->generation == e->sw.generation && st->active == e->sw.active &&
	    st->has_previous == e->sw.has_previous &&
	    (!st->has_previous || st->previous == e->sw.previous)) {
		/* The same switch: only a commit (the window ended) is news. */
		if (e->sw.state != SWITCHER_OBSERVING || st->window_end_ms > wall)
			return false;
		next = e->sw;
		(void)switcher_end_window(&next);
		if (save(e, &next, e->switched_at_ms, err, sizeof(err)) < 0)
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
		return true;
	}
	switcher_init(&next, st->active, st->generation, e->cfg.min_healthy, e->cfg.safety_window_ms);
	next.has_previous = st->has_previous;
	next.previous = st->previous;
	if (st->window_end_ms > wall) {
		next.state = SWITCHER_OBSERVING;
		next.window_end_ms = duration_add(now, (uint64_t)st->window_end_ms - (uint64_t)wall);
	}
	if (save(e, &next, st->switched_at_ms, err, sizeof(err)) < 0)
		state_unsaved(e, err);
	baseline = guard_window_p99(&e->guards[from], now);
	e->sw = next;
	e->switched_at_ms = st->switched_at_ms;
	e->fx->publish(e->arg, e->sw.active);
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
	}
	arm_window(e);
	if (from != e->sw.active)
		hook(e, rollback ? ENGINE_HOOK_ROLLBACK : ENGINE_HOOK_POST_SWITCH, (int)from,
		    (int)e->sw.active, o->reason != NULL ? o->reason : o->event);
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
