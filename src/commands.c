#include "autoconf.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "commands.h"
#include "control.h"
#include "engine.h"
#include "fleet.h"
#include "generation.h"
#include "health.h"
#include "history.h"
#include "json.h"
#include "pool.h"
#include "resolver.h"
#include "smoke.h"
#include "state.h"
#include "transition.h"
#include "worker.h"

/* A `smoke COLOR` command in progress. */
struct smoke_cmd {
	struct control_conn *conn;
	struct smoke_run *run;
};

static void smoke_cmd_done(bool ok, const char *report, const char *failure, void *arg);

static void cmd_status(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_switch(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_health(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_history(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_commit(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_help(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_smoke(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_reload(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);

const control_handler commands_handlers[COMMAND_COUNT] = {
	[COMMAND_STATUS] = cmd_status,
	[COMMAND_SWITCH] = cmd_switch,
	[COMMAND_ROLLBACK] = cmd_switch,
	[COMMAND_HEALTH] = cmd_health,
	[COMMAND_HISTORY] = cmd_history,
	[COMMAND_SMOKE] = cmd_smoke,
	[COMMAND_COMMIT] = cmd_commit,
	[COMMAND_RELOAD] = cmd_reload,
	[COMMAND_HELP] = cmd_help,
};

/*
 * The `status --json` answer, appended to out. Shared by the status command
 * and the status page's /status.json, so that both say the same. Built in
 * a copy of out, handed back at the end.
 */
void
commands_status_json(const struct commands *x, struct jbuf *out)
{
	const struct engine *e = x->engine;
	uint64_t left = engine_window_left(e);
	struct jbuf b = *out;
	int col;

	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(e->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, e->sw.has_previous ? color_name(e->sw.previous) : NULL);
	jbuf_printf(&b, ",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"window_left_s\":%" PRIu64,
	    e->ramp.on ? "ramping" : switcher_state_name(e->sw.state), e->sw.generation, (left + 999) / 1000);
	if (e->ramp.on) {
		const struct engine_ramp *r = &e->ramp;
		/* A fleet ramp whose driving node left: nothing moves it on. */
		bool orphan = r->node[0] != '\0' && x->fleet != NULL && !fleet_node_live(x->fleet, r->node);
		char note[640];

		jbuf_raw(&b, ",\"ramp\":{\"target\":");
		jbuf_str(&b, color_name(r->target));
		jbuf_printf(&b, ",\"weight_pct\":%u,\"steps\":[", r->steps[r->step]);
		for (unsigned i = 0; i < r->nsteps; i++)
			jbuf_printf(&b, "%s%u", i ? "," : "", r->steps[i]);
		jbuf_printf(&b, "],\"step_left_s\":%" PRIu64 ",\"step\":%u,\"holding\":%s,\"guarded\":%s,"
		                "\"by\":",
		    orphan ? 0 : (engine_ramp_step_left(e) + 999) / 1000, r->step + 1,
		    r->holding || orphan ? "true" : "false", r->unguarded ? "false" : "true");
		jbuf_str(&b, x->live->cfg->sw.ramp_by);
		if (r->node[0] != '\0') {
			jbuf_raw(&b, ",\"driver\":");
			jbuf_str(&b, r->node);
			jbuf_printf(&b, ",\"driver_live\":%s", orphan ? "false" : "true");
		}
		if (orphan)
			snprintf(note, sizeof(note), "holding: %s, the node that drives the ramp, is not live: the "
			    "ramp holds at %u%% until it is back; commit or rollback on any node ends it",
			    r->node, r->steps[r->step]);
		else
			snprintf(note, sizeof(note), "%s", r->note);
		jbuf_raw(&b, ",\"analysis\":");
		jbuf_str(&b, note);
		jbuf_raw(&b, "}");
	}
	jbuf_printf(&b, ",\"min_healthy\":%u,\"switching\":%s", x->live->cfg->sw.min_healthy,
	    e->busy ? "true" : "false");
	if (e->sw.state == SWITCHER_OBSERVING)
		jbuf_printf(&b, ",\"guard\":{\"enabled\":%s,\"requests\":%" PRIu64 ",\"min_requests\":%u}",
		    x->live->cfg->auto_rollback.enabled ? "true" : "false", engine_guard_requests(e),
		    x->live->cfg->auto_rollback.min_requests);
	jbuf_printf(&b, ",\"state_saved\":%s", e->unsaved ? "false" : "true");
	if (e->unsaved) {
		jbuf_raw(&b, ",\"state_error\":");
		jbuf_str(&b, e->state_error);
	}
	jbuf_raw(&b, ",\"verdict\":");
	jbuf_str(&b, window_verdict_name(e->verdict));
	jbuf_raw(&b, ",\"verdict_reason\":");
	jbuf_str(&b, e->verdict != WINDOW_NONE ? e->verdict_reason : NULL);
	jbuf_raw(&b, ",\"pools\":{");
	for (col = 0; col < COLOR_COUNT; col++) {
		const struct pool *p = x->live->pools[col];

		jbuf_printf(&b,
		    "%s\"%s\":{\"healthy\":%zu,\"confirmed\":%zu,\"total\":%zu,\"inflight\":%" PRIu64 "}",
		    col ? "," : "", color_name((enum color)col), pool_healthy(p), pool_confirmed(p),
		    p->nservers, worker_inflight(x->workers, x->nworkers, (enum color)col));
	}
	jbuf_raw(&b, "}");
	if (x->resolver != NULL && *x->resolver != NULL) {
		jbuf_raw(&b, ",\"dns\":");
		resolver_report(*x->resolver, &b);
	}
	if (x->fleet != NULL)
		fleet_status(x->fleet, &b);
	jbuf_raw(&b, "}");
	*out = b;
}

static void
cmd_status(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct jbuf b;

	(void)who;
	(void)rq;
	jbuf_init(&b);
	commands_status_json(arg, &b);
	control_reply_jbuf(c, &b);
}

/*
 * switch COLOR [--force] [--if-gen N] [--dry-run] [--wait], and rollback
 * [--force] [--if-gen N] (its target is the previous color). See
 * transition.c.
 */
static void
cmd_switch(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;
	struct transition_request tr;

	memset(&tr, 0, sizeof(tr));
	tr.rollback = rq->cmd->id == COMMAND_ROLLBACK;
	tr.target = rq->color;
	tr.force = (rq->flags & COMMAND_F_FORCE) != 0;
	tr.dry_run = (rq->flags & COMMAND_F_DRY_RUN) != 0;
	tr.wait = (rq->flags & COMMAND_F_WAIT) != 0;
	tr.has_if_gen = (rq->flags & COMMAND_F_IF_GEN) != 0;
	tr.if_gen = rq->if_gen;
	tr.local = (rq->flags & COMMAND_F_LOCAL) != 0;
	if (rq->flags & COMMAND_F_RAMP) {
		memcpy(tr.ramp_steps, rq->ramp_steps, sizeof(tr.ramp_steps));
		tr.ramp_nsteps = rq->ramp_nsteps;
		tr.ramp_step_ms = rq->step_ms != 0 ? rq->step_ms : x->live->cfg->sw.ramp_step_ms;
	}
	transition_begin(x->tx, c, who, &tr);
}

static void
cmd_smoke(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;
	struct smoke_cmd *sc;

	(void)who;
	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	sc->conn = c;
	sc->run = smoke_start(x->base, x->live->cfg, x->live->pools[rq->color], smoke_cmd_done, sc);
	if (sc->run == NULL) {
		free(sc);
		control_reply_error(c, "cannot start the smoke tests: out of memory");
	}
}

static void
smoke_cmd_done(bool ok, const char *report, const char *failure, void *arg)
{
	struct smoke_cmd *sc = arg;
	struct jbuf b;

	jbuf_init(&b);
	jbuf_printf(&b, "{\"ok\":%s", ok ? "true" : "false");
	if (!ok) {
		jbuf_raw(&b, ",\"error\":");
		jbuf_str(&b, failure != NULL ? failure : "smoke test failed");
	}
	jbuf_raw(&b, ",\"smoke\":");
	jbuf_raw(&b, report != NULL ? report : "[]");
	jbuf_raw(&b, "}");
	control_reply_jbuf(sc->conn, &b);
	free(sc);
}

static void
cmd_health(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;
	struct jbuf b;

	(void)who;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"servers\":");
	health_report(*x->health, rq->has_arg ? (int)rq->color : -1, &b);
	jbuf_raw(&b, "}");
	control_reply_jbuf(c, &b);
}

static void
cmd_history(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;
	/* history N: the last N entries; without N, all of them. */
	size_t max = rq->has_arg && rq->count <= SIZE_MAX ? (size_t)rq->count : 0;
	char **lines = NULL, err[512];
	size_t n = 0, skipped = 0, i;
	struct jbuf b;

	(void)who;
	if (history_read(x->history, max, &lines, &n, &skipped, err, sizeof(err)) < 0) {
		control_reply_error(c, err);
		return;
	}
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"entries\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			jbuf_raw(&b, ",");
		jbuf_raw(&b, lines[i]);
	}
	/* Lines history_read could not vouch for (see history.c). */
	jbuf_printf(&b, "],\"skipped\":%zu}", skipped);
	history_lines_free(lines, n);
	control_reply_jbuf(c, &b);
}

/* A fleet commit being written to etcd. */
struct commit_cmd {
	struct commands *x;
	struct control_conn *conn;
	char message[256];
};

static void
commit_written(void *arg, int rc, int64_t revision, const char *err)
{
	struct commit_cmd *cc = arg;
	char msg[768];
	char *prefix;

	if (rc != 0) {
		snprintf(msg, sizeof(msg), "commit refused: %s", err);
		control_reply_error(cc->conn, msg);
	} else {
		struct jbuf b;

		jbuf_init(&b);
		jbuf_raw(&b, "{\"ok\":true,\"changed\":true,\"message\":");
		jbuf_str(&b, cc->message);
		if (b.oom || (prefix = strdup(b.s)) == NULL)
			control_reply_error(cc->conn, "out of memory");
		else
			fleet_await(cc->x->fleet, cc->conn, revision, prefix);
		jbuf_free(&b);
	}
	free(cc);
}

/* commit in a fleet: written to etcd, applied by every node from its watch. */
static void
fleet_commit(struct commands *x, struct control_conn *c, const struct control_caller *who)
{
	struct engine_origin o = {fleet_node(x->fleet), "commit", "manual", NULL, (long)who->uid,
	    (long)who->pid};
	struct commit_cmd *cc;
	struct state next;

	if (!fleet_connected(x->fleet)) {
		control_reply_error(c, "commit refused: etcd is unreachable: the fleet cannot agree on a "
		                       "change now (--local changes this node alone)");
		return;
	}
	if (x->engine->ramp.on && x->engine->ramp.node[0] == '\0') {
		control_reply_error(c, "commit refused: the ramp on this node is its own (--local), not the "
		                       "fleet's: commit --local ends it here");
		return;
	}
	if (!engine_plan_commit(x->engine, &next)) {
		control_reply(c, "{\"ok\":true,\"changed\":false,\"message\":\"no safety window is open\"}");
		return;
	}
	if ((cc = calloc(1, sizeof(*cc))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	cc->x = x;
	cc->conn = c;
	if (x->engine->ramp.on) {
		/* The ramp goes to 100 % on every node now, stable. */
		snprintf(cc->message, sizeof(cc->message), "ramp committed at %u%% by uid %ld: %s takes every request",
		    x->engine->ramp.steps[x->engine->ramp.step], (long)who->uid, color_name(x->engine->ramp.target));
		o.reason = cc->message;
	} else {
		snprintf(cc->message, sizeof(cc->message), "safety window ended");
	}
	if (fleet_propose(x->fleet, &next, &o, commit_written, cc) < 0) {
		free(cc);
		control_reply_error(c, "commit refused: cannot write to etcd: out of memory");
	}
}

static void
cmd_commit(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;
	struct engine_caller ec = {(long)who->uid, (long)who->pid};
	char msg[640];

	if (x->fleet != NULL && !(rq->flags & COMMAND_F_LOCAL)) {
		fleet_commit(x, c, who);
		return;
	}
	if (x->fleet != NULL && (x->engine->sw.state == SWITCHER_OBSERVING || x->engine->ramp.on))
		fleet_diverge(x->fleet);
	switch (engine_commit(x->engine, &ec, msg, sizeof(msg))) {
	case SWITCH_NOOP:
		control_reply(c, "{\"ok\":true,\"changed\":false,\"message\":\"no safety window is open\"}");
		break;
	case SWITCH_REFUSED:
		control_reply_error(c, msg);
		break;
	case SWITCH_GO: {
		struct jbuf b;

		jbuf_init(&b);
		jbuf_raw(&b, "{\"ok\":true,\"changed\":true,\"message\":");
		jbuf_str(&b, msg);
		jbuf_raw(&b, "}");
		control_reply_jbuf(c, &b);
		break;
	}
	}
}

static void
cmd_help(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct jbuf b;
	char syn[128], line[256];
	size_t i;
	bool first = true;

	(void)who;
	(void)rq;
	(void)arg;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"commands\":[");
	for (i = 0; i < COMMAND_COUNT; i++) {
		const struct command *cmd = &command_table[i];

		if (!(cmd->sides & COMMAND_DAEMON))
			continue;
		command_synopsis(cmd, syn, sizeof(syn));
		snprintf(line, sizeof(line), "%s: %s", syn, cmd->help);
		if (!first)
			jbuf_raw(&b, ",");
		jbuf_str(&b, line);
		first = false;
	}
	jbuf_raw(&b, "]}");
	control_reply_jbuf(c, &b);
}

static void
cmd_reload(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct commands *x = arg;

	(void)rq;
	x->reload(x->arg, c, who);
}

/* Answers a `reload` caller with the outcome (every error when rejected). */
void
commands_reload_answer(struct control_conn *c, int rc, const struct config_errors *errs)
{
	struct jbuf b, m;
	size_t i;

	if (rc == 0) {
		control_reply(c, "{\"ok\":true,\"message\":\"configuration reloaded\"}");
		return;
	}
	jbuf_init(&b);
	jbuf_init(&m);
	jbuf_printf(&m, "reload rejected, running configuration kept:");
	for (i = 0; i < errs->n; i++)
		jbuf_printf(&m, "\n%s", errs->msgs[i]);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, m.oom ? "reload rejected" : m.s);
	jbuf_raw(&b, ",\"errors\":[");
	for (i = 0; i < errs->n; i++) {
		if (i > 0)
			jbuf_raw(&b, ",");
		jbuf_str(&b, errs->msgs[i]);
	}
	jbuf_raw(&b, "]}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"reload rejected\"}" : b.s);
	jbuf_free(&m);
	jbuf_free(&b);
}

