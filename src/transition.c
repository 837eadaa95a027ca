#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "duration.h"
#include "engine.h"
#include "fleet.h"
#include "generation.h"
#include "hooks.h"
#include "json.h"
#include "log.h"
#include "smoke.h"
#include "state.h"
#include "transition.h"

struct transition {
	struct transition_ctx *x;
	struct control_conn *conn;
	struct engine_request rq;
	bool wait;
	bool local;     /* a fleet node's --local change */
	bool proposing; /* written to etcd, its outcome not known yet */
	enum color from;
	struct smoke_run *smoke;
	struct hook_run *hook;
	char *smoke_report; /* JSON array, NULL when no smoke tests ran */
	struct state next;  /* in a fleet: the state written to etcd */
	char message[512];  /* in a fleet: a ramp's start, as history and the answer say */
};

static void step_smoke(struct transition *t);
static void smoke_done(bool ok, const char *report, const char *failure, void *arg);
static void step_hook(struct transition *t);
static void pre_hook_done(int status, bool timed_out, const char *output, void *arg);
static void step_commit(struct transition *t);
static void refuse(struct transition *t, const char *reason);
static void reply_refused(struct transition *t, const char *msg);
static void reply_unchanged(struct transition *t);
static void finish(struct transition *t);
static void trim_utf8(char *s);
static void step_propose(struct transition *t);
static void on_written(void *arg, int rc, int64_t revision, const char *err);
static char *answer_prefix(const struct state *st, const char *smoke, const char *message);
static void ramp_steps_json(struct jbuf *b, const unsigned *steps, unsigned n);
static void fleet_ramp_rollback(struct transition_ctx *x, struct control_conn *c,
    const struct control_caller *who);
static void ramp_rollback(struct transition_ctx *x, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq);

void
transition_begin(struct transition_ctx *x, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq)
{
	struct transition *t;
	char msg[1024];

	if (x->engine->ramp.on && rq->ramp_nsteps == 0 &&
	    (rq->rollback || rq->target == x->engine->sw.active)) {
		ramp_rollback(x, c, who, rq);
		return;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	t->x = x;
	t->conn = c;
	t->rq.target = rq->target;
	t->rq.rollback = rq->rollback;
	t->rq.force = rq->force;
	t->rq.dry_run = rq->dry_run;
	t->rq.has_if_gen = rq->has_if_gen;
	t->rq.if_gen = rq->if_gen;
	t->rq.who.uid = (long)who->uid;
	t->rq.who.pid = (long)who->pid;
	t->local = rq->local;
	memcpy(t->rq.ramp_steps, rq->ramp_steps, sizeof(t->rq.ramp_steps));
	t->rq.ramp_nsteps = rq->ramp_nsteps;
	t->rq.ramp_step_ms = rq->ramp_step_ms;
	/* A ramp's end is followed by the client (status), not waited for here. */
	t->wait = rq->wait && rq->ramp_nsteps == 0;
	t->from = x->engine->sw.active;
	switch (engine_prepare(x->engine, &t->rq, msg, sizeof(msg))) {
	case SWITCH_REFUSED:
		reply_refused(t, msg);
		finish(t);
		return;
	case SWITCH_NOOP:
		reply_unchanged(t);
		finish(t);
		return;
	case SWITCH_GO:
		break;
	}
	x->op = t;
	if (x->fleet != NULL && !t->local && !t->rq.dry_run && !fleet_connected(x->fleet)) {
		refuse(t, "etcd is unreachable: the fleet cannot agree on a change now "
		          "(--local changes this node alone)");
		return;
	}
	if (x->fleet != NULL && !t->local && !t->rq.force &&
	    fleet_check_health(x->fleet, t->rq.target, x->live->cfg->sw.min_healthy, msg,
	        sizeof(msg)) < 0) {
		refuse(t, msg);
		return;
	}
	step_smoke(t);
}

void
transition_cancel(struct transition_ctx *x, const char *why)
{
	struct transition *t = x->op;

	/* Written to etcd already: its outcome decides, and answers. */
	if (t == NULL || t->proposing)
		return;
	if (t->smoke != NULL)
		smoke_cancel(t->smoke);
	t->smoke = NULL;
	if (t->hook != NULL)
		hook_cancel(t->hook);
	t->hook = NULL;
	refuse(t, why);
}

static void
step_smoke(struct transition *t)
{
	const struct generation *g = t->x->live;

	if (t->rq.force || g->cfg->nsmoke == 0) {
		step_hook(t);
		return;
	}
	t->smoke = smoke_start(t->x->base, g->cfg, g->pools[t->rq.target], smoke_done, t);
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
	struct transition_ctx *x = t->x;
	const struct config *cfg = x->live->cfg;
	struct hook_env env;
	char reason[512];

	if (t->rq.dry_run) {
		reply_unchanged(t);
		engine_release(x->engine);
		finish(t);
		return;
	}
	if (cfg->hooks.pre_switch == NULL) {
		step_commit(t);
		return;
	}
	memset(&env, 0, sizeof(env));
	env.event = "pre_switch";
	env.from = color_name(t->from);
	env.to = color_name(t->rq.target);
	env.generation = x->engine->sw.generation + 1;
	env.reason = t->rq.rollback ? "rollback" : t->rq.ramp_nsteps > 0 ? "ramp" : "manual";
	t->hook = hook_start(x->base, cfg->hooks.pre_switch, cfg->hooks.timeout_ms, &env,
	    pre_hook_done, t);
	if (t->hook == NULL) {
		snprintf(reason, sizeof(reason), "pre_switch hook %s could not start: %s",
		    cfg->hooks.pre_switch, strerror(errno));
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
	struct transition_ctx *x = t->x;
	const struct switcher *sw = &x->engine->sw;
	char msg[1024];
	struct jbuf b;

	if (x->fleet != NULL && !t->local) {
		step_propose(t);
		return;
	}
	switch (engine_switch(x->engine, &t->rq, msg, sizeof(msg))) {
	case SWITCH_REFUSED:
		reply_refused(t, msg);
		finish(t);
		return;
	case SWITCH_NOOP:
		reply_unchanged(t);
		finish(t);
		return;
	case SWITCH_GO:
		break;
	}
	if (x->fleet != NULL)
		fleet_diverge(x->fleet);
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(sw->active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, color_name(sw->previous));
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":true,\"dry_run\":false", sw->generation);
	if (t->rq.ramp_nsteps > 0) {
		jbuf_raw(&b, ",\"message\":");
		jbuf_str(&b, msg);
		jbuf_raw(&b, ",\"ramp\":{\"target\":");
		jbuf_str(&b, color_name(t->rq.target));
		jbuf_printf(&b, ",\"weight_pct\":%u,\"steps\":", t->rq.ramp_steps[0]);
		ramp_steps_json(&b, t->rq.ramp_steps, t->rq.ramp_nsteps);
		jbuf_raw(&b, "}");
	}
	if (t->smoke_report != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, t->smoke_report);
	}
	if (b.oom) {
		control_reply_error(t->conn, "out of memory");
	} else if (t->wait) {
		/* The waiter owns the string from here on. */
		if (x->add_waiter(x->arg, t->conn, t->from, b.s) == 0)
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

/*
 * In a fleet: the switch is written to etcd (one transaction comparing the
 * revision this node applied last); every node, this one included, applies
 * it from its watch, and the caller is answered once every live node has.
 */
static void
step_propose(struct transition *t)
{
	struct transition_ctx *x = t->x;
	struct engine_origin o;
	struct state next;
	char msg[1024];

	switch (engine_plan(x->engine, &t->rq, &next, msg, sizeof(msg))) {
	case SWITCH_REFUSED:
		reply_refused(t, msg);
		finish(t);
		return;
	case SWITCH_NOOP:
		reply_unchanged(t);
		finish(t);
		return;
	case SWITCH_GO:
		break;
	}
	memset(&o, 0, sizeof(o));
	o.node = fleet_node(x->fleet);
	o.event = t->rq.ramp_nsteps > 0 ? "ramp" : t->rq.rollback ? "rollback" : "switch";
	o.trigger = "manual";
	o.reason = t->rq.force ? "forced" : NULL;
	if (t->rq.ramp_nsteps > 0) {
		/* A fleet-wide ramp: its start is one write like a switch; this
		 * node drives its steps (engine.c ramp_advance). */
		char steps[96], span[32];
		size_t used = 0;

		steps[0] = '\0';
		for (unsigned i = 0; i < t->rq.ramp_nsteps && used < sizeof(steps); i++)
			used += (size_t)snprintf(steps + used, sizeof(steps) - used, "%s%u", i ? "," : "",
			    t->rq.ramp_steps[i]);
		duration_format(t->rq.ramp_step_ms, span, sizeof(span));
		snprintf(t->message, sizeof(t->message), "ramp started: %u%% (steps %s, each %s; driven by %s)%s",
		    t->rq.ramp_steps[0], steps, span, o.node, t->rq.force ? " (forced)" : "");
		trim_utf8(t->message);
		o.reason = t->message;
	}
	o.uid = t->rq.who.uid;
	o.pid = t->rq.who.pid;
	t->next = next;
	t->proposing = true;
	if (fleet_propose(x->fleet, &next, &o, on_written, t) < 0) {
		t->proposing = false;
		refuse(t, "cannot write to etcd: out of memory");
	}
}

static void
on_written(void *arg, int rc, int64_t revision, const char *err)
{
	struct transition *t = arg;
	struct transition_ctx *x = t->x;
	char *prefix;

	t->proposing = false;
	if (rc != 0) {
		refuse(t, err);
		return;
	}
	engine_release(x->engine);
	log_info("fleet: %s to %s written to etcd (revision %" PRId64 ", generation %" PRIu64 ")",
	    t->rq.ramp_nsteps > 0 ? "ramp" : t->rq.rollback ? "rollback" : "switch", color_name(t->rq.target),
	    revision, t->next.generation);
	if ((prefix = answer_prefix(&t->next, t->smoke_report, t->rq.ramp_nsteps > 0 ? t->message : NULL)) ==
	    NULL)
		control_reply_error(t->conn, "out of memory");
	else
		fleet_await(x->fleet, t->conn, revision, prefix);
	finish(t);
}

static char *
answer_prefix(const struct state *st, const char *smoke, const char *message)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(st->active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, st->has_previous ? color_name(st->previous) : NULL);
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":true,\"dry_run\":false", st->generation);
	if (message != NULL) {
		jbuf_raw(&b, ",\"message\":");
		jbuf_str(&b, message);
	}
	if (st->ramping) {
		jbuf_raw(&b, ",\"ramp\":{\"target\":");
		jbuf_str(&b, color_name(st->ramp_target));
		jbuf_printf(&b, ",\"weight_pct\":%u,\"steps\":", st->ramp_steps[st->ramp_step]);
		ramp_steps_json(&b, st->ramp_steps, st->ramp_nsteps);
		jbuf_raw(&b, ",\"driver\":");
		jbuf_str(&b, st->ramp_node);
		jbuf_raw(&b, "}");
	}
	if (smoke != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, smoke);
	}
	if (b.oom) {
		jbuf_free(&b);
		return NULL;
	}
	return b.s;
}

/* [1,10,50] */
static void
ramp_steps_json(struct jbuf *b, const unsigned *steps, unsigned n)
{
	jbuf_raw(b, "[");
	for (unsigned i = 0; i < n; i++)
		jbuf_printf(b, "%s%u", i ? "," : "", steps[i]);
	jbuf_raw(b, "]");
}

/* Refuses through the engine (which records it), answers, ends. */
static void
refuse(struct transition *t, const char *reason)
{
	char msg[1024];

	engine_refuse(t->x->engine, &t->rq, reason, msg, sizeof(msg));
	reply_refused(t, msg);
	finish(t);
}

static void
reply_refused(struct transition *t, const char *msg)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, msg);
	if (t->smoke_report != NULL) {
		jbuf_raw(&b, ",\"smoke\":");
		jbuf_raw(&b, t->smoke_report);
	}
	jbuf_raw(&b, "}");
	control_reply_jbuf(t->conn, &b);
}

/* A no-op (target already active) or a dry run: nothing changes. */
static void
reply_unchanged(struct transition *t)
{
	const struct switcher *sw = &t->x->engine->sw;
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(sw->active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, sw->has_previous ? color_name(sw->previous) : NULL);
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":false,\"dry_run\":%s,\"target\":\"%s\"",
	    sw->generation, t->rq.dry_run ? "true" : "false", color_name(t->rq.target));
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
	if (t->x->op == t)
		t->x->op = NULL;
	free(t->smoke_report);
	free(t);
}

/* A rollback, or a switch to the old color, during a ramp: back to 0 %. */
static void
ramp_rollback(struct transition_ctx *x, struct control_conn *c, const struct control_caller *who,
    const struct transition_request *rq)
{
	struct engine *e = x->engine;
	struct engine_caller ec = {(long)who->uid, (long)who->pid};
	char msg[1024];
	struct jbuf b;

	if (rq->has_if_gen && rq->if_gen != e->sw.generation) {
		snprintf(msg, sizeof(msg), "rollback refused: generation is %" PRIu64 ", not %" PRIu64,
		    e->sw.generation, rq->if_gen);
		control_reply_error(c, msg);
		return;
	}
	if (rq->dry_run) {
		jbuf_init(&b);
		jbuf_raw(&b, "{\"ok\":true,\"active\":");
		jbuf_str(&b, color_name(e->sw.active));
		jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":false,\"dry_run\":true}",
		    e->sw.generation);
		control_reply_jbuf(c, &b);
		return;
	}
	if (x->fleet != NULL && !rq->local) {
		fleet_ramp_rollback(x, c, who);
		return;
	}
	if (engine_ramp_rollback(e, &ec, msg, sizeof(msg)) == SWITCH_REFUSED) {
		control_reply_error(c, msg);
		return;
	}
	if (x->fleet != NULL)
		fleet_diverge(x->fleet);
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(e->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, e->sw.has_previous ? color_name(e->sw.previous) : NULL);
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":true,\"dry_run\":false,\"message\":",
	    e->sw.generation);
	jbuf_str(&b, msg);
	jbuf_raw(&b, "}");
	control_reply_jbuf(c, &b);
}

/* A fleet ramp's rollback being written to etcd. */
struct ramp_rb {
	struct transition_ctx *x;
	struct control_conn *conn;
	char message[256];
	struct state next;
};

static void
ramp_rb_written(void *arg, int rc, int64_t revision, const char *err)
{
	struct ramp_rb *rb = arg;
	char msg[768], *prefix;

	if (rc != 0) {
		snprintf(msg, sizeof(msg), "rollback refused: %s", err);
		trim_utf8(msg);
		control_reply_error(rb->conn, msg);
	} else if ((prefix = answer_prefix(&rb->next, NULL, rb->message)) == NULL) {
		control_reply_error(rb->conn, "out of memory");
	} else {
		log_info("fleet: ramp rollback written to etcd (revision %" PRId64 ")", revision);
		fleet_await(rb->x->fleet, rb->conn, revision, prefix);
	}
	free(rb);
}

/* In a fleet: the ramp ends at 0 % on every node, through etcd. */
static void
fleet_ramp_rollback(struct transition_ctx *x, struct control_conn *c, const struct control_caller *who)
{
	struct engine *e = x->engine;
	struct engine_origin o;
	struct ramp_rb *rb;

	if (!fleet_connected(x->fleet)) {
		control_reply_error(c, "rollback refused: etcd is unreachable: the fleet cannot agree on a "
		                       "change now (--local changes this node alone)");
		return;
	}
	if ((rb = calloc(1, sizeof(*rb))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	rb->x = x;
	rb->conn = c;
	(void)engine_plan_ramp_rollback(e, &rb->next);
	snprintf(rb->message, sizeof(rb->message), "ramp to %s rolled back at %u%% by uid %ld",
	    color_name(e->ramp.target), e->ramp.steps[e->ramp.step], (long)who->uid);
	memset(&o, 0, sizeof(o));
	o.node = fleet_node(x->fleet);
	o.event = "rollback";
	o.trigger = "manual";
	o.reason = rb->message;
	o.uid = (long)who->uid;
	o.pid = (long)who->pid;
	if (fleet_propose(x->fleet, &rb->next, &o, ramp_rb_written, rb) < 0) {
		free(rb);
		control_reply_error(c, "rollback refused: cannot write to etcd: out of memory");
	}
}

/* After snprintf cut s to fit its buffer: drop a character cut in half. */
static void
trim_utf8(char *s)
{
	s[utf8_trim(s, strlen(s))] = '\0';
}
