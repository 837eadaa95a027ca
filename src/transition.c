#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "control.h"
#include "daemon.h"
#include "duration.h"
#include "hooks.h"
#include "json.h"
#include "log.h"
#include "smoke.h"
#include "state.h"
#include "transition.h"
#include "worker.h"

struct transition {
	struct daemon *d;
	struct control_conn *conn;
	struct control_caller who;
	struct transition_request rq;
	enum color target;
	enum color from;
	struct smoke_run *smoke;
	struct hook_run *hook;
	char *smoke_report; /* JSON array, NULL when no smoke tests ran */
};

static void step_smoke(struct transition *t);
static void smoke_done(bool ok, const char *report, const char *failure, void *arg);
static void step_hook(struct transition *t);
static void pre_hook_done(int status, bool timed_out, const char *output, void *arg);
static void step_commit(struct transition *t);
static void refuse(struct transition *t, const char *reason);
static void reply_unchanged(struct transition *t);
static void finish(struct transition *t);
static int commit_switch(struct daemon *d, enum color target, enum switch_trigger trigger,
    const char *reason, const struct control_caller *who, char *err, size_t errlen);
static enum switch_verdict decide(struct transition *t, char *reason, size_t len);
static const char *verb(const struct transition *t);
static void trim_utf8(char *s);
static void on_state_retry(evutil_socket_t fd, short what, void *arg);

void
transition_begin(struct daemon *d, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq)
{
	struct transition *t;
	char reason[512];

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	t->d = d;
	t->conn = c;
	t->who = *who;
	t->rq = *rq;
	t->from = d->sw.active;
	t->target = rq->rollback ? d->sw.previous : rq->target;
	if (d->op != NULL) {
		refuse(t, "another switch is in progress");
		return;
	}
	switch (decide(t, reason, sizeof(reason))) {
	case SWITCH_REFUSED:
		refuse(t, reason);
		return;
	case SWITCH_NOOP:
		reply_unchanged(t);
		finish(t);
		return;
	case SWITCH_GO:
		break;
	}
	d->op = t;
	step_smoke(t);
}

void
transition_cancel(struct daemon *d, const char *why)
{
	struct transition *t = d->op;

	if (t == NULL)
		return;
	if (t->smoke != NULL)
		smoke_cancel(t->smoke);
	t->smoke = NULL;
	if (t->hook != NULL)
		hook_cancel(t->hook);
	t->hook = NULL;
	refuse(t, why);
}

void
transition_auto_rollback(struct daemon *d, enum guard_trigger trigger, const char *reason)
{
	enum color from = d->sw.active, to = d->sw.previous;
	unsigned need = d->cfg->sw.min_healthy > 0 ? d->cfg->sw.min_healthy : 1;
	char why[768], err[512];

	(void)trigger;
	d->guard_tripped = true;
	transition_cancel(d, "interrupted by an automatic rollback");
	if (!d->sw.has_previous || pool_confirmed(d->pools[to]) < need) {
		snprintf(why, sizeof(why), "%s; not rolled back: previous color %s has %zu healthy servers, needs %u",
		    reason, d->sw.has_previous ? color_name(to) : "(none)",
		    d->sw.has_previous ? pool_confirmed(d->pools[to]) : (size_t)0, need);
		log_err("%s: auto-rollback: %s: staying on %s", __func__, why, color_name(from));
		daemon_record(d, "rollback-failed", (int)from, d->sw.has_previous ? (int)to : -1,
		    "auto-rollback", why, NULL);
		d->verdict = "rollback-failed";
		snprintf(d->verdict_reason, sizeof(d->verdict_reason), "%.500s", why);
		daemon_notify_hook(d, "rollback", d->cfg->hooks.rollback, (int)from, (int)to, why);
		return;
	}
	if (commit_switch(d, to, TRIGGER_AUTO_ROLLBACK, reason, NULL, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "%s; not rolled back: %s", reason, err);
		log_err("%s: auto-rollback: %s", __func__, why);
		daemon_record(d, "rollback-failed", (int)from, (int)to, "auto-rollback", why, NULL);
		d->verdict = "rollback-failed";
		snprintf(d->verdict_reason, sizeof(d->verdict_reason), "%.500s", why);
		daemon_notify_hook(d, "rollback", d->cfg->hooks.rollback, (int)from, (int)to, why);
		return;
	}
	d->verdict = "rolled-back";
	snprintf(d->verdict_reason, sizeof(d->verdict_reason), "%s", reason);
	daemon_notify_hook(d, "rollback", d->cfg->hooks.rollback, (int)from, (int)to, reason);
}

/* Checks against the switcher, with the target's health as it is now. */
static enum switch_verdict
decide(struct transition *t, char *reason, size_t len)
{
	struct daemon *d = t->d;
	struct switch_request sr;
	enum switch_verdict v;

	memset(&sr, 0, sizeof(sr));
	sr.rollback = t->rq.rollback;
	sr.target = t->target;
	sr.force = t->rq.force;
	sr.dry_run = t->rq.dry_run;
	sr.has_if_gen = t->rq.has_if_gen;
	sr.if_gen = t->rq.if_gen;
	sr.target_healthy = (unsigned)pool_confirmed(d->pools[t->target]);
	sr.target_total = (unsigned)d->pools[t->target]->nservers;
	reason[0] = '\0';
	v = switcher_decide(&d->sw, &sr, reason, len);
	t->target = sr.target;
	return v;
}

static void
step_smoke(struct transition *t)
{
	struct daemon *d = t->d;

	if (t->rq.force || d->cfg->nsmoke == 0) {
		step_hook(t);
		return;
	}
	t->smoke = smoke_start(d->base, d->cfg, d->pools[t->target], smoke_done, t);
	if (t->smoke == NULL)
		refuse(t, "cannot start the smoke tests: out of memory");
}

static void
smoke_done(bool ok, const char *report, const char *failure, void *arg)
{
	struct transition *t = arg;
	char reason[768];

	t->smoke = NULL;
	free(t->smoke_report);
	t->smoke_report = report != NULL ? strdup(report) : NULL;
	if (!ok) {
		snprintf(reason, sizeof(reason), "smoke test failed: %s", failure != NULL ? failure : "?");
		trim_utf8(reason);
		refuse(t, reason);
		return;
	}
	step_hook(t);
}

static void
step_hook(struct transition *t)
{
	struct daemon *d = t->d;
	struct hook_env env;
	char reason[512];

	if (t->rq.dry_run) {
		reply_unchanged(t);
		finish(t);
		return;
	}
	if (d->cfg->hooks.pre_switch == NULL) {
		step_commit(t);
		return;
	}
	memset(&env, 0, sizeof(env));
	env.event = "pre_switch";
	env.from = color_name(t->from);
	env.to = color_name(t->target);
	env.generation = d->sw.generation + 1;
	env.reason = t->rq.rollback ? "rollback" : "manual";
	t->hook = hook_start(d->base, d->cfg->hooks.pre_switch, d->cfg->hooks.timeout_ms, &env,
	    pre_hook_done, t);
	if (t->hook == NULL) {
		snprintf(reason, sizeof(reason), "pre_switch hook %s could not start: %s",
		    d->cfg->hooks.pre_switch, strerror(errno));
		refuse(t, reason);
	}
}

static void
pre_hook_done(int status, bool timed_out, const char *output, void *arg)
{
	struct transition *t = arg;
	char reason[768];

	t->hook = NULL;
	if (status != 0) {
		if (timed_out)
			snprintf(reason, sizeof(reason), "vetoed by the pre_switch hook: timed out%s%s",
			    output && *output ? ": " : "", output ? output : "");
		else if (status < 0)
			snprintf(reason, sizeof(reason), "vetoed by the pre_switch hook: killed%s%s",
			    output && *output ? ": " : "", output ? output : "");
		else
			snprintf(reason, sizeof(reason), "vetoed by the pre_switch hook (exit %d)%s%s",
			    status, output && *output ? ": " : "", output ? output : "");
		/* A long output was cut to fit: not in the middle of a character. */
		trim_utf8(reason);
		refuse(t, reason);
		return;
	}
	step_commit(t);
}

static void
step_commit(struct transition *t)
{
	struct daemon *d = t->d;
	enum switch_trigger trig = t->rq.rollback ? TRIGGER_ROLLBACK : TRIGGER_MANUAL;
	char reason[768], err[512];
	struct jbuf b;

	/* Health may have changed while smoke tests and the hook ran. */
	switch (decide(t, reason, sizeof(reason))) {
	case SWITCH_REFUSED:
		refuse(t, reason);
		return;
	case SWITCH_NOOP:
		reply_unchanged(t);
		finish(t);
		return;
	case SWITCH_GO:
		break;
	}
	if (commit_switch(d, t->target, trig, t->rq.force ? "forced" : NULL, &t->who, err, sizeof(err)) < 0) {
		snprintf(reason, sizeof(reason), "cannot write state: %s", err);
		refuse(t, reason);
		return;
	}
	daemon_notify_hook(d, t->rq.rollback ? "rollback" : "post_switch",
	    t->rq.rollback ? d->cfg->hooks.rollback : d->cfg->hooks.post_switch, (int)t->from,
	    (int)t->target, t->rq.rollback ? "manual rollback" : (t->rq.force ? "forced" : "manual"));

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(d->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, color_name(d->sw.previous));
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":true,\"dry_run\":false", d->sw.generation);
	if (t->smoke_report != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, t->smoke_report);
	}
	if (b.oom) {
		control_reply_error(t->conn, "out of memory");
	} else if (t->rq.wait) {
		/* The waiter owns the string from here on. */
		if (daemon_add_waiter(d, t->conn, t->from, b.s) == 0)
			b.s = NULL;
		else
			control_reply_error(t->conn, "out of memory");
	} else {
		jbuf_raw(&b, "}");
		control_reply(t->conn, b.s);
	}
	jbuf_free(&b);
	finish(t);
}

/* Answers a refusal, records it, and ends the transition. */
static void
refuse(struct transition *t, const char *reason)
{
	struct daemon *d = t->d;
	char msg[1024];
	struct jbuf b;

	snprintf(msg, sizeof(msg), "%s to %s refused: %s", verb(t),
	    t->rq.rollback && !d->sw.has_previous ? "previous color" : color_name(t->target), reason);
	trim_utf8(msg);
	log_warn("%s: %s (uid %ld pid %ld)", __func__, msg, (long)t->who.uid, (long)t->who.pid);
	if (!t->rq.dry_run) {
		d->switch_refused++;
		daemon_record(d, "refused", (int)t->from,
		    t->rq.rollback && !d->sw.has_previous ? -1 : (int)t->target, "manual", reason, &t->who);
	}
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, msg);
	if (t->smoke_report != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, t->smoke_report);
	}
	jbuf_raw(&b, "}");
	control_reply_jbuf(t->conn, &b);
	finish(t);
}

/* A no-op (target already active) or a dry run: nothing changes. */
static void
reply_unchanged(struct transition *t)
{
	struct daemon *d = t->d;
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(d->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, d->sw.has_previous ? color_name(d->sw.previous) : NULL);
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":false,\"dry_run\":%s,\"target\":\"%s\"",
	    d->sw.generation, t->rq.dry_run ? "true" : "false", color_name(t->target));
	if (t->smoke_report != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, t->smoke_report);
	}
	jbuf_raw(&b, "}");
	control_reply_jbuf(t->conn, &b);
}

static void
finish(struct transition *t)
{
	if (t->d->op == t)
		t->d->op = NULL;
	free(t->smoke_report);
	free(t);
}

static const char *
verb(const struct transition *t)
{
	return t->rq.rollback ? "rollback" : "switch";
}

/* After snprintf cut s to fit its buffer: drop a character cut in half. */
static void
trim_utf8(char *s)
{
	s[utf8_trim(s, strlen(s))] = '\0';
}

/*
 * The switch itself, shared by manual switches and the guard's rollback:
 * state file first (a restart must never forget an acknowledged switch),
 * then the one release store of the route pointer.
 */
static int
commit_switch(struct daemon *d, enum color target, enum switch_trigger trigger, const char *reason,
    const struct control_caller *who, char *err, size_t errlen)
{
	enum color from = d->sw.active;
	uint64_t now = clock_mono_ms();
	struct switcher next = d->sw;
	struct guard_sample sample;
	double baseline;
	int64_t switched_at;
	bool unsaved = false;
	char why[768];

	switcher_commit(&next, target, now);
	if (trigger == TRIGGER_AUTO_ROLLBACK) {
		/* Back on the known-good color: nothing left to observe. */
		next.state = SWITCHER_STABLE;
		next.window_end_ms = 0;
	}
	switched_at = clock_wall_ms();
	if (transition_save_state(d, &next, switched_at, err, errlen) < 0) {
		if (trigger != TRIGGER_AUTO_ROLLBACK) {
			log_err("%s: switch to %s not done: %s", __func__, color_name(target), err);
			return -1;
		}
		/* Back to the known-good color all the same: serving a release
		 * the guard condemned is worse than a state file that lags. */
		unsaved = true;
		snprintf(why, sizeof(why), "%s; state file not saved: %s", reason ? reason : "", err);
		trim_utf8(why);
		reason = why;
	}
	baseline = guard_window_p99(&d->guards[from], now);
	d->sw = next;
	d->switched_at_ms = switched_at;
	/* The switch: one atomic store. */
	route_publish(&d->routes[d->sw.active]);
	d->switches[trigger]++;
	log_info("%s: %s -> %s, generation %" PRIu64 "%s%s%s", metrics_trigger_name(trigger),
	    color_name(from), color_name(target), d->sw.generation, reason ? " (" : "",
	    reason ? reason : "", reason ? ")" : "");
	if (who != NULL)
		log_info("switch requested by uid %ld pid %ld", (long)who->uid, (long)who->pid);
	daemon_record(d, trigger == TRIGGER_MANUAL ? "switch" : "rollback", (int)from, (int)target,
	    trigger == TRIGGER_AUTO_ROLLBACK ? "auto-rollback" : "manual", reason, who);
	daemon_post(d, WORKER_MSG_SWITCHED);
	evtimer_del(d->tunnel_timer);
	{
		struct timeval tv = {(time_t)(d->cfg->sw.drain_timeout_ms / 1000),
		    (suseconds_t)((d->cfg->sw.drain_timeout_ms % 1000) * 1000)};

		evtimer_add(d->tunnel_timer, &tv);
	}
	if (d->sw.state == SWITCHER_OBSERVING) {
		daemon_sample(d, target, &sample);
		guard_start(&d->guards[target], now, &sample, baseline);
		d->guard_tripped = false;
		d->verdict = NULL;
		d->verdict_reason[0] = '\0';
	}
	daemon_arm_window(d);
	if (unsaved)
		transition_state_unsaved(d, err);
	return 0;
}

int
transition_save_state(struct daemon *d, const struct switcher *sw, int64_t switched_at_ms,
    char *err, size_t errlen)
{
	uint64_t now = clock_mono_ms();
	struct state st;

	memset(&st, 0, sizeof(st));
	st.active = sw->active;
	st.has_previous = sw->has_previous;
	st.previous = sw->previous;
	st.generation = sw->generation;
	st.switched_at_ms = switched_at_ms;
	/* The window's end as wall clock, so that it survives a restart. */
	st.window_end_ms = sw->state == SWITCHER_OBSERVING
	    ? duration_add_signed(clock_wall_ms(), switcher_window_left(sw, now)) : 0;
	if (state_save(d->cfg->state_file, &st, err, errlen) < 0)
		return -1;
	if (d->state_unsaved) {
		d->state_unsaved = false;
		d->state_error[0] = '\0';
		d->state_retry_ms = 0;
		if (d->state_timer != NULL)
			evtimer_del(d->state_timer);
		log_info("%s: state file %s saved again (generation %" PRIu64 ")", __func__,
		    d->cfg->state_file, sw->generation);
	}
	return 0;
}

void
transition_state_unsaved(struct daemon *d, const char *err)
{
	if (d->state_timer == NULL &&
	    (d->state_timer = evtimer_new(d->base, on_state_retry, d)) == NULL) {
		log_err("%s: STATE FILE NOT SAVED and no memory to retry: %s; a restart would "
		        "forget generation %" PRIu64, __func__, err, d->sw.generation);
		return;
	}
	snprintf(d->state_error, sizeof(d->state_error), "%s", err);
	trim_utf8(d->state_error);
	if (!d->state_unsaved) {
		d->state_unsaved = true;
		d->state_retry_ms = 1000;
		log_err("%s: STATE FILE NOT SAVED: %s; %s is active (generation %" PRIu64 ") but a "
		        "restart would forget it until a save succeeds; retrying",
		    __func__, err, color_name(d->sw.active), d->sw.generation);
	}
	evtimer_del(d->state_timer);
	{
		struct timeval tv = {(time_t)(d->state_retry_ms / 1000),
		    (suseconds_t)((d->state_retry_ms % 1000) * 1000)};

		evtimer_add(d->state_timer, &tv);
	}
}

/* Tries again to save the state in memory; backs off up to 30 s. */
static void
on_state_retry(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char err[512];

	(void)fd;
	(void)what;
	if (!d->state_unsaved)
		return;
	if (transition_save_state(d, &d->sw, d->switched_at_ms, err, sizeof(err)) == 0)
		return;
	if (d->state_retry_ms < 30000)
		d->state_retry_ms = d->state_retry_ms * 2 > 30000 ? 30000 : d->state_retry_ms * 2;
	log_err("%s: state file still not saved: %s; retrying in %" PRIu64 "ms", __func__, err,
	    d->state_retry_ms);
	transition_state_unsaved(d, err);
}
