#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "command.h"
#include "completion.h"
#include "ctl.h"
#include "deploy.h"
#include "json.h"
#include "progress.h"

/*
 * cutoverctl: the operator's client for cutoverd's control socket.
 *
 * It checks a command line locally (so that a typo never reaches the
 * daemon), sends it as one line, reads one line of JSON back and turns it
 * into text or, with --json, prints it as is. Exit status: 0 done, 1 refused
 * or failed, 2 usage error, 3 daemon unreachable.
 *
 * deploy is the one command the client carries out itself: it runs the
 * operator's command, then drives the daemon with status and switch and
 * follows the safety window (deploy.c). The daemon never runs CMD.
 *
 * This file holds --help, the formatters that turn answers into text, and
 * main(); the grammar is the command table shared with cutoverd
 * (command.c), the socket side is ctl.c.
 */

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#define DEFAULT_SOCKET RUNSTATEDIR "/cutover/control.sock"

#define TABLE_MAX_COLS 8

/* status --watch asks once a second. */
#define WATCH_INTERVAL_MS 1000

/* Set by SIGINT and SIGTERM while status --watch runs. */
static volatile sig_atomic_t watch_stop;

struct request;

/* How the client presents a command of the table (command.c). */
struct presenter {
	/* Prints an ok:true answer on stdout. */
	void (*format)(const struct request *, const struct json *);
	/* Prints an ok:false answer: the reason on stderr and, for some
	 * commands, the details that came with it; NULL: the reason only. */
	void (*refused)(const struct request *, const struct json *);
	/* Commands the client carries out itself (deploy) have run instead
	 * of a wire form; it returns the exit status. */
	int (*run)(const struct request *, const char *path);
};

/* One checked command line, ready to send. */
struct request {
	struct command_request rq;
	const struct presenter *pr;
	struct jbuf line;       /* the wire form, newline included */
};

struct table {
	size_t ncols, nrows;
	char **cells;           /* nrows * ncols, each malloc'd */
	size_t width[TABLE_MAX_COLS];
	bool oom;
};

static void usage(FILE *fp);
static int parse_request(struct request *req, int argc, char **argv);
static const char *num_text(const struct json *obj, const char *key,
    char *buf, size_t size);
static void table_init(struct table *t, size_t ncols);
static void table_add(struct table *t, const char *const *row);
static void table_print(const struct table *t, FILE *fp);
static void table_free(struct table *t);
static const char *verdict_text(const char *verdict);
static void print_smoke(const struct json *smoke, FILE *fp);
static void fmt_status(const struct request *req, const struct json *ans);
static void fmt_switch(const struct request *req, const struct json *ans);
static void fmt_health(const struct request *req, const struct json *ans);
static void fmt_history(const struct request *req, const struct json *ans);
static void fmt_ok(const struct request *req, const struct json *ans);
static void fmt_smoke(const struct request *req, const struct json *ans);
static void fmt_commit(const struct request *req, const struct json *ans);
static void refused_smoke(const struct request *req, const struct json *ans);
static void refused_reload(const struct request *req, const struct json *ans);
static int run_deploy(const struct request *req, const char *path);
static int ask(const struct request *req, const char *path, struct json **ansp);
static void on_watch_signal(int sig);
static int watch_status(const struct request *req, const char *path);

/* Indexed by enum command_id; a command with no format is not cutoverctl's
 * (help: cutoverctl --help lists the commands). */
static const struct presenter presenters[COMMAND_COUNT] = {
	[COMMAND_STATUS] = {fmt_status, NULL, NULL},
	[COMMAND_SWITCH] = {fmt_switch, NULL, NULL},
	[COMMAND_ROLLBACK] = {fmt_switch, NULL, NULL},
	[COMMAND_HEALTH] = {fmt_health, NULL, NULL},
	[COMMAND_HISTORY] = {fmt_history, NULL, NULL},
	[COMMAND_SMOKE] = {fmt_smoke, refused_smoke, NULL},
	[COMMAND_COMMIT] = {fmt_commit, NULL, NULL},
	[COMMAND_RELOAD] = {fmt_ok, refused_reload, NULL},
	[COMMAND_DEPLOY] = {NULL, NULL, run_deploy},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
usage(FILE *fp)
{
	size_t i, k;

	fprintf(fp,
	    "usage: cutoverctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "Drives cutoverd over its control socket.\n"
	    "\n"
	    "  -s, --socket SOCKET  control socket (default $CUTOVER_SOCKET, else\n"
	    "                       %s)\n"
	    "  --json               print the daemon's JSON answer as is\n"
	    "  -V, --version        print the version and exit\n"
	    "  -h, --help           print this help and exit\n"
	    "  --completion bash    print the bash completion script and exit\n"
	    "\n"
	    "Commands:\n", DEFAULT_SOCKET);
	for (i = 0; i < COMMAND_COUNT; i++) {
		const struct command *c = &command_table[i];
		const char *arg = c->arg == COMMAND_ARG_COLOR ? "blue|green" :
		    c->arg == COMMAND_ARG_COUNT ? "N" : NULL;
		char syn[128];

		if (!(c->sides & COMMAND_CLIENT))
			continue;
		/* The command, its argument and required flags; the optional
		 * flags each on a line of their own below. */
		if (arg == NULL)
			snprintf(syn, sizeof(syn), "%s", c->name);
		else
			snprintf(syn, sizeof(syn), c->arg_required ? "%s %s" :
			    "%s [%s]", c->name, arg);
		for (k = 0; k < command_nflags; k++)
			if (c->required & command_flags[k].bit)
				snprintf(syn + strlen(syn), sizeof(syn) -
				    strlen(syn), " %s %s", command_flags[k].name,
				    command_flags[k].metavar);
		fprintf(fp, "  %-24s %s\n", syn, c->help);
		for (k = 0; k < command_nflags; k++) {
			const struct command_flag *f = &command_flags[k];

			if (!(c->flags & f->bit))
				continue;
			snprintf(syn, sizeof(syn), "%s%s%s", f->name,
			    f->metavar != NULL ? " " : "",
			    f->metavar != NULL ? f->metavar : "");
			fprintf(fp, "      %-20s %s\n", syn, f->help);
		}
	}
	fprintf(fp,
	    "\n"
	    "Exit status: 0 done, 1 refused or failed (reason on stderr),\n"
	    "2 usage error, 3 daemon unreachable, 4 a fleet change not applied\n"
	    "by every live node within fleet.timeout (it stays in effect).\n");
}

/* Checks argv (the command and its words, global options already consumed)
 * against the command table and builds req->line, the wire form and its
 * newline. A command the client carries out itself gets no line; its
 * flags' values (--run CMD, which may hold blanks, and --timeout T) are in
 * req->rq. Returns CTL_EXIT_DONE, or CTL_EXIT_USAGE after printing why. */
static int
parse_request(struct request *req, int argc, char **argv)
{
	bool json = req->rq.json;
	char err[256];

	if (command_parse(&req->rq, argc, argv, COMMAND_CLIENT, err,
	    sizeof(err)) < 0)
		return ctl_usage_error("%s", err);
	req->rq.json |= json;
	req->pr = &presenters[req->rq.cmd->id];
	if (req->pr->run != NULL) {
		/* Carried out here, printing text as it goes. */
		if (req->rq.json)
			return ctl_usage_error("%s: --json is not supported: %s "
			    "prints its progress as text", req->rq.cmd->name,
			    req->rq.cmd->name);
		return CTL_EXIT_DONE;
	}
	if (command_format(&req->rq, &req->line) < 0) {
		fprintf(stderr, "cutoverctl: %s: not a daemon command\n",
		    req->rq.cmd->name);
		return CTL_EXIT_FAILED;
	}
	jbuf_raw(&req->line, "\n");
	if (req->line.oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return CTL_EXIT_FAILED;
	}
	return CTL_EXIT_DONE;
}

/* A numeric member as text: integers without a fraction, "?" when the
 * member is missing or not a number. */
static const char *
num_text(const struct json *obj, const char *key, char *buf, size_t size)
{
	const struct json *v = json_get(obj, key);

	if (v == NULL || v->type != JSON_NUMBER)
		snprintf(buf, size, "?");
	else if (v->num == (double)(long long)v->num && v->num < 9e15 &&
	    v->num > -9e15)
		snprintf(buf, size, "%lld", (long long)v->num);
	else
		snprintf(buf, size, "%g", v->num);
	return buf;
}

static void
table_init(struct table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Copies one row of ncols strings (NULL prints as "-"); a newline in a
 * cell becomes "\n", so that a row is always one line (ctl_parse_answer
 * has escaped every other control character). */
static void
table_add(struct table *t, const char *const *row)
{
	char **cells;
	size_t i;

	if (t->oom)
		return;
	cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
	if (cells == NULL) {
		t->oom = true;
		return;
	}
	t->cells = cells;
	cells += t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		const char *s = row[i] != NULL ? row[i] : "-";
		size_t len = strlen(s), nls = 0, k;
		char *o;

		for (k = 0; k < len; k++)
			nls += s[k] == '\n';
		if ((cells[i] = o = malloc(len + nls + 1)) == NULL) {
			t->oom = true;
			continue;
		}
		for (k = 0; k < len; k++) {
			if (s[k] == '\n') {
				*o++ = '\\';
				*o++ = 'n';
			} else {
				*o++ = s[k];
			}
		}
		*o = '\0';
		if (len + nls > t->width[i])
			t->width[i] = len + nls;
	}
	t->nrows++;
}

/* Columns separated by two spaces; the last is not padded, so lines carry
 * no trailing blanks, and empty trailing cells are dropped. */
static void
table_print(const struct table *t, FILE *fp)
{
	size_t r, c, last;

	if (t->oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return;
	}
	for (r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;

		for (last = t->ncols; last > 1 && row[last - 1][0] == '\0';)
			last--;
		for (c = 0; c < last; c++) {
			if (c + 1 < last)
				fprintf(fp, "%-*s  ", (int)t->width[c], row[c]);
			else
				fprintf(fp, "%s\n", row[c]);
		}
	}
}

static void
table_free(struct table *t)
{
	size_t i;

	if (t->cells != NULL)
		for (i = 0; i < t->nrows * t->ncols; i++)
			free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* What the safety window's end said about the release, in words. */
static const char *
verdict_text(const char *verdict)
{
	static const struct {
		const char *verdict, *text;
	} texts[] = {
		{"passed", "passed"},
		{"insufficient-traffic", "not judged: too little traffic"},
		{"rolled-back", "rolled back automatically"},
		{"rollback-failed", "FAILED, but the automatic rollback could not "
		    "be done"},
		{"committed", "committed by hand before the window ended"},
		{"unguarded", "not judged: auto_rollback is disabled"},
	};
	size_t i;

	for (i = 0; i < NELEM(texts); i++)
		if (strcmp(texts[i].verdict, verdict) == 0)
			return texts[i].text;
	return verdict;
}

static void fmt_dns(const struct json *dns);

static void
fmt_status(const struct request *req, const struct json *ans)
{
	static const char *const colors[] = {"blue", "green"};
	const struct json *pools = json_get(ans, "pools");
	const struct json *guard = json_get(ans, "guard");
	const struct json *fleet = json_get(ans, "fleet");
	const char *state = json_get_str(ans, "state", "?");
	const char *verdict = json_get_str(ans, "verdict", NULL);
	const char *vreason = json_get_str(ans, "verdict_reason", NULL);
	char n1[32], n2[32], n3[32];
	size_t i;

	(void)req;
	printf("active:     %s (generation %s)\n",
	    json_get_str(ans, "active", "?"),
	    num_text(ans, "generation", n1, sizeof(n1)));
	printf("previous:   %s\n", json_get_str(ans, "previous", "none"));
	if (strcmp(state, "observing") == 0 &&
	    json_get(ans, "window_left_s") != NULL)
		printf("state:      observing (%ss left in the safety window)\n",
		    num_text(ans, "window_left_s", n1, sizeof(n1)));
	else
		printf("state:      %s\n", state);
	if (json_get_bool(ans, "switching", false))
		printf("switching:  a switch is in progress (smoke tests or "
		    "pre_switch hook)\n");
	{
		const struct json *ramp = json_get(ans, "ramp");

		if (ramp != NULL && ramp->type == JSON_OBJECT) {
			const struct json *steps = json_get(ramp, "steps");

			printf("ramp:       %s at %s%% (step %s of %zu", json_get_str(ramp, "target", "?"),
			    num_text(ramp, "weight_pct", n1, sizeof(n1)), num_text(ramp, "step", n2, sizeof(n2)),
			    steps != NULL && steps->type == JSON_ARRAY ? steps->n : (size_t)0);
			if (json_get_bool(ramp, "holding", false))
				printf(", holding");
			else
				printf(", %ss left", num_text(ramp, "step_left_s", n3, sizeof(n3)));
			printf("; by %s", json_get_str(ramp, "by", "cookie"));
			if (json_get_str(ramp, "driver", NULL) != NULL)
				printf("; driven by %s%s", json_get_str(ramp, "driver", "?"),
				    json_get_bool(ramp, "driver_live", true) ? "" : ", NOT LIVE");
			printf(")\n");
			printf("analysis:   %s\n", json_get_str(ramp, "analysis", ""));
		}
	}
	if (guard != NULL && guard->type == JSON_OBJECT) {
		if (!json_get_bool(guard, "enabled", true))
			printf("guard:      off (auto_rollback is disabled)\n");
		else
			printf("guard:      %s requests seen, judges from %s\n",
			    num_text(guard, "requests", n1, sizeof(n1)),
			    num_text(guard, "min_requests", n2, sizeof(n2)));
	}
	if (!json_get_bool(ans, "state_saved", true))
		printf("state file: NOT SAVED, a restart would forget the last change "
		    "(%s); cutoverd keeps retrying\n",
		    json_get_str(ans, "state_error", "?"));
	if (verdict != NULL) {
		printf("verdict:    %s", verdict_text(verdict));
		if (vreason != NULL && *vreason != '\0')
			printf(" (%s)", vreason);
		printf("\n");
	}
	if (fleet != NULL && fleet->type == JSON_OBJECT) {
		const struct json *nodes = json_get(fleet, "nodes");

		printf("fleet:      node %s, etcd %s%s, %s\n", json_get_str(fleet, "node", "?"),
		    json_get_str(fleet, "etcd", "?"),
		    json_get_bool(fleet, "diverged", false) ? ", DIVERGED (a --local change)" : "",
		    json_get_bool(fleet, "converged", false) ? "converged" : "not converged");
		for (i = 0; nodes != NULL && nodes->type == JSON_ARRAY && i < nodes->n; i++) {
			const struct json *nd = nodes->items[i];

			printf("  %-16s %-6s generation %s, presence %ss old%s\n",
			    json_get_str(nd, "node", "?"), json_get_str(nd, "active", "?"),
			    num_text(nd, "generation", n1, sizeof(n1)), num_text(nd, "age_s", n2, sizeof(n2)),
			    json_get_bool(nd, "diverged", false) ? ", diverged" : "");
		}
	}
	for (i = 0; i < NELEM(colors); i++) {
		const struct json *p = json_get(pools, colors[i]);
		const struct json *conf = json_get(p, "confirmed");

		if (p == NULL)
			continue;
		printf("%-11s %s/%s healthy", i == 0 ? "blue:" : "green:",
		    num_text(p, "healthy", n1, sizeof(n1)),
		    num_text(p, "total", n2, sizeof(n2)));
		/* Servers not checked yet count as up but not as confirmed
		 * (rise passed); say so when that makes a difference. */
		if (conf != NULL && conf->type == JSON_NUMBER &&
		    conf->num != json_get_num(p, "healthy", conf->num))
			printf(" (%s confirmed)", num_text(p, "confirmed", n3,
			    sizeof(n3)));
		printf(", %s in flight\n", num_text(p, "inflight", n3,
		    sizeof(n3)));
	}
	fmt_dns(json_get(ans, "dns"));
}

/* Servers by name: "name:   green green1.internal:8080 -> 10.0.2.7, 10.0.2.8". */
static void
fmt_dns(const struct json *dns)
{
	size_t i, k;

	if (dns == NULL || dns->type != JSON_ARRAY)
		return;
	for (i = 0; i < dns->n; i++) {
		const struct json *n = dns->items[i];
		const struct json *addrs = json_get(n, "addresses");
		const char *problem = json_get_str(n, "problem", NULL);

		printf("name:       %s %s ->", json_get_str(n, "color", "?"), json_get_str(n, "name", "?"));
		for (k = 0; addrs != NULL && addrs->type == JSON_ARRAY && k < addrs->n; k++)
			printf("%s %s", k ? "," : "", addrs->items[k]->type == JSON_STRING ? addrs->items[k]->str : "?");
		if (addrs == NULL || addrs->type != JSON_ARRAY || addrs->n == 0)
			printf(" (no address)");
		if (problem != NULL)
			printf(" [%s]", problem);
		printf("\n");
	}
}

static void
fmt_switch(const struct request *req, const struct json *ans)
{
	const char *active = json_get_str(ans, "active", "?");
	const char *previous = json_get_str(ans, "previous", NULL);
	char gen[32];

	num_text(ans, "generation", gen, sizeof(gen));
	if (json_get_bool(ans, "dry_run", false)) {
		/* The daemon reports the color that is active now; the
		 * target is what was asked for. */
		printf("dry run: %s to %s would be allowed\n", req->rq.cmd->name,
		    req->rq.has_arg ? color_name(req->rq.color) :
		    previous != NULL ? previous :
		    "the previous color");
		return;
	}
	if (!json_get_bool(ans, "changed", true)) {
		printf("already on %s (generation %s): nothing to do\n",
		    active, gen);
		return;
	}
	if (json_get(ans, "ramp") != NULL || json_get(ans, "message") != NULL) {
		/* A ramp started, or one ended at 0 %. */
		printf("%s\n", json_get_str(ans, "message", "ramp started"));
		return;
	}
	printf("switched to %s (generation %s)", active, gen);
	if (json_get_bool(ans, "drained", false) && previous != NULL)
		printf("; %s drained", previous);
	if (json_get_bool(ans, "converged", false))
		printf("; every live node of the fleet applied it");
	printf("\n");
}

static void
fmt_health(const struct request *req, const struct json *ans)
{
	static const char *const head[] = {"COLOR", "ADDRESS", "STATE", "LAST",
	    "LATENCY"};
	const struct json *servers = json_get(ans, "servers");
	struct table t;
	size_t i;

	(void)req;
	if (servers == NULL || servers->type != JSON_ARRAY || servers->n == 0) {
		printf("no servers\n");
		return;
	}
	table_init(&t, NELEM(head));
	table_add(&t, head);
	for (i = 0; i < servers->n; i++) {
		const struct json *s = servers->items[i];
		const struct json *lat = json_get(s, "latency_ms");
		const char *row[NELEM(head)];
		char latbuf[32] = "-";

		if (lat != NULL && lat->type == JSON_NUMBER)
			snprintf(latbuf, sizeof(latbuf), "%.1f ms", lat->num);
		row[0] = json_get_str(s, "color", "?");
		row[1] = json_get_str(s, "address", "?");
		row[2] = json_get_str(s, "state", "?");
		/* Until the first check a server counts as up (a restart must
		 * not black-hole traffic); say so rather than show nothing. */
		row[3] = json_get_bool(s, "checked", true) ?
		    json_get_str(s, "last", "-") : "(not checked yet)";
		row[4] = latbuf;
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

static void
fmt_history(const struct request *req, const struct json *ans)
{
	const struct json *entries = json_get(ans, "entries");
	const struct json *skipped = json_get(ans, "skipped");
	struct table t;
	char n0[32];
	size_t i;

	(void)req;
	/* One unreadable line must not hide the others; but say it is there. */
	if (skipped != NULL && skipped->type == JSON_NUMBER && skipped->num > 0)
		fprintf(stderr, "cutoverctl: %s unreadable history line%s skipped "
		    "(see the history file next to the state file)\n",
		    num_text(ans, "skipped", n0, sizeof(n0)),
		    skipped->num == 1 ? "" : "s");
	if (entries == NULL || entries->type != JSON_ARRAY || entries->n == 0) {
		printf("no history\n");
		return;
	}
	table_init(&t, 7);
	for (i = 0; i < entries->n; i++) {
		const struct json *e = entries->items[i];
		const char *reason = json_get_str(e, "reason", NULL);
		const char *row[7];
		char fromto[96], gen[48], who[80], n1[32], n2[32];

		snprintf(fromto, sizeof(fromto), "%s -> %s",
		    json_get_str(e, "from", "-"), json_get_str(e, "to", "-"));
		snprintf(gen, sizeof(gen), "generation %s",
		    num_text(e, "generation", n1, sizeof(n1)));
		snprintf(who, sizeof(who), "uid %s pid %s",
		    num_text(e, "uid", n1, sizeof(n1)),
		    num_text(e, "pid", n2, sizeof(n2)));
		row[0] = json_get_str(e, "time", "?");
		row[1] = json_get_str(e, "event", "?");
		row[2] = fromto;
		row[3] = json_get_str(e, "trigger", "-");
		row[4] = gen;
		row[5] = who;
		row[6] = reason != NULL ? reason : "";
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

static void
fmt_ok(const struct request *req, const struct json *ans)
{
	const char *msg = json_get_str(ans, "message", NULL);

	(void)req;
	if (msg != NULL)
		printf("ok: %s\n", msg);
	else
		printf("ok\n");
}

/* The smoke report: one row per test and server. */
static void
print_smoke(const struct json *smoke, FILE *fp)
{
	static const char *const head[] = {"TEST", "METHOD", "PATH", "SERVER",
	    "RESULT"};
	struct table t;
	size_t i;

	if (smoke == NULL || smoke->type != JSON_ARRAY)
		return;
	if (smoke->n == 0) {
		fprintf(fp, "no smoke tests ran\n");
		return;
	}
	table_init(&t, NELEM(head));
	table_add(&t, head);
	for (i = 0; i < smoke->n; i++) {
		const struct json *e = smoke->items[i];
		const char *row[NELEM(head)];
		char test[32], status[32], result[600];

		num_text(e, "test", test, sizeof(test));
		num_text(e, "status", status, sizeof(status));
		if (json_get_bool(e, "ok", false))
			snprintf(result, sizeof(result), "ok (%s)", status);
		else
			snprintf(result, sizeof(result), "FAILED: %s",
			    json_get_str(e, "error", "failed"));
		row[0] = test;
		row[1] = json_get_str(e, "method", "?");
		row[2] = json_get_str(e, "path", "?");
		row[3] = json_get_str(e, "server", "?");
		row[4] = result;
		table_add(&t, row);
	}
	table_print(&t, fp);
	table_free(&t);
}

static void
fmt_smoke(const struct request *req, const struct json *ans)
{
	const struct json *smoke = json_get(ans, "smoke");

	print_smoke(smoke, stdout);
	if (smoke != NULL && smoke->type == JSON_ARRAY && smoke->n > 0)
		printf("smoke tests on %s passed\n",
		    color_name(req->rq.color));
}

/* The report goes to stdout as on success, the summary to stderr. */
static void
refused_smoke(const struct request *req, const struct json *ans)
{
	print_smoke(json_get(ans, "smoke"), stdout);
	fflush(stdout);
	fprintf(stderr, "cutoverctl: smoke tests on %s failed: %s\n",
	    color_name(req->rq.color),
	    json_get_str(ans, "error", "smoke test failed"));
}

static void
fmt_commit(const struct request *req, const struct json *ans)
{
	(void)req;
	if (json_get_bool(ans, "changed", true))
		printf("committed: %s\n", json_get_str(ans, "message",
		    "safety window ended"));
	else
		printf("nothing to commit: %s\n", json_get_str(ans, "message",
		    "no safety window is open"));
}

/* One configuration error per line, as cutoverd -t prints them. */
static void
refused_reload(const struct request *req, const struct json *ans)
{
	const struct json *errors = json_get(ans, "errors");
	size_t i;

	(void)req;
	if (errors == NULL || errors->type != JSON_ARRAY || errors->n == 0) {
		fprintf(stderr, "cutoverctl: %s\n", json_get_str(ans, "error",
		    "reload rejected"));
		return;
	}
	fprintf(stderr, "cutoverctl: reload rejected, running configuration "
	    "kept:\n");
	for (i = 0; i < errors->n; i++)
		if (errors->items[i]->type == JSON_STRING)
			fprintf(stderr, "  %s\n", errors->items[i]->str);
}

/* deploy's entry in the command table: the flow itself is deploy.c's, with
 * the smoke report and verdict words that the smoke and status commands
 * print. */
static int
run_deploy(const struct request *req, const char *path)
{
	static const struct deploy_printers pr = {print_smoke, verdict_text};

	return deploy_run_ramp(path, req->rq.run, req->rq.timeout_ms, &pr, req->rq.ramp_steps,
	    req->rq.ramp_nsteps, req->rq.step_ms);
}

/*
 * One exchange on its own connection: sends req->line and reads the
 * answer, printing it as is with --json. switch --wait (and rollback
 * --wait) follow the daemon's status on a second connection meanwhile and
 * show it on stderr, unless --json asks for the answer alone. Returns an
 * exit status; on CTL_EXIT_DONE *ansp is the caller's.
 */
static int
ask(const struct request *req, const char *path, struct json **ansp)
{
	struct progress pg;
	char *line = NULL;
	size_t len = 0;
	int fd = -1, rc;

	if (req->rq.flags & COMMAND_F_WAIT) {
		progress_init(&pg, req->rq.cmd->name, stderr);
		if ((rc = progress_call(req->rq.json ? NULL : &pg, path, &req->line, -1,
		    &line, &len)) != CTL_EXIT_DONE)
			goto out;
	} else if ((rc = ctl_connect(path, &fd)) != CTL_EXIT_DONE ||
	    (rc = ctl_send(fd, path, &req->line)) != CTL_EXIT_DONE ||
	    (rc = ctl_read_answer(fd, path, CTL_ANSWER_TIMEOUT_MS, &line, &len)) !=
	    CTL_EXIT_DONE)
		goto out;
	if (req->rq.json)
		printf("%s\n", line);
	rc = ctl_parse_answer(path, line, len, ansp);
out:
	if (fd != -1)
		close(fd);
	free(line);
	return rc;
}

static void
on_watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/*
 * status --watch: the status every WATCH_INTERVAL_MS until SIGINT or
 * SIGTERM, which end it with exit 0. On a terminal each answer replaces the
 * last (cursor home, erase the screen); elsewhere each is a block of its
 * own after a blank line, or with --json a line of its own. A daemon that
 * stops answering is reported and asked again (it may be restarting), but
 * one that cannot be reached at the start ends the watch.
 */
static int
watch_status(const struct request *req, const char *path)
{
	struct sigaction sa;
	bool tty = isatty(STDOUT_FILENO) == 1, first = true;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_watch_signal;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: the signal must cut the sleep short. */
	if (sigaction(SIGINT, &sa, NULL) == -1 || sigaction(SIGTERM, &sa, NULL) == -1) {
		fprintf(stderr, "cutoverctl: sigaction: %s\n", strerror(errno));
		return CTL_EXIT_FAILED;
	}
	while (!watch_stop) {
		struct timespec ts = {WATCH_INTERVAL_MS / 1000,
		    (long)(WATCH_INTERVAL_MS % 1000) * 1000000L};
		struct json *ans = NULL;

		if (tty && !req->rq.json)
			fputs("\033[H\033[2J", stdout);
		else if (!first && !req->rq.json)
			putchar('\n');
		rc = ask(req, path, &ans);
		if (rc != CTL_EXIT_DONE && first) {
			json_free(ans);
			return rc;
		}
		if (rc == CTL_EXIT_DONE && !json_get_bool(ans, "ok", false))
			fprintf(stderr, "cutoverctl: %s\n", json_get_str(ans, "error",
			    "request failed"));
		else if (rc == CTL_EXIT_DONE && !req->rq.json)
			req->pr->format(req, ans);
		json_free(ans);
		first = false;
		if (fflush(stdout) == EOF || ferror(stdout))
			return CTL_EXIT_FAILED;
		if (!watch_stop)
			nanosleep(&ts, NULL);
	}
	return CTL_EXIT_DONE;
}

/* "+": options end at the command, whose own flags are checked against the
 * command table. The completion script is generated from these too. */
#define SHORTOPTS "+:s:hV"
static const struct option longopts[] = {
	{"socket", required_argument, NULL, 's'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"completion", required_argument, NULL, 'C'},
	{NULL, 0, NULL, 0},
};

int
main(int argc, char **argv)
{
	struct request req;
	struct json *ans = NULL;
	const char *path = NULL;
	int ch, rc;

	memset(&req, 0, sizeof(req));
	jbuf_init(&req.line);
	opterr = 0;
	while ((ch = getopt_long(argc, argv, SHORTOPTS, longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			req.rq.json = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_DONE;
		case 'V':
			printf("cutoverctl %s\n", PACKAGE_VERSION);
			return CTL_EXIT_DONE;
		case 'C':
			if (strcmp(optarg, "bash") != 0)
				return ctl_usage_error("--completion: unknown shell '%s' "
				    "(bash)", optarg);
			completion_bash(stdout, "cutoverctl", longopts, SHORTOPTS);
			rc = CTL_EXIT_DONE;
			goto out;
		case ':':
			return ctl_usage_error("option '%s' needs an argument",
			    argv[optind - 1]);
		default:
			if (optopt != 0)
				return ctl_usage_error("unknown option '-%c'",
				    optopt);
			return ctl_usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return ctl_usage_error("no command given");
	if (path == NULL)
		path = getenv("CUTOVER_SOCKET");
	if (path == NULL || *path == '\0')
		path = DEFAULT_SOCKET;
	if ((rc = parse_request(&req, argc - optind, argv + optind)) != 0)
		goto out;
	if (req.pr->run != NULL) {
		rc = req.pr->run(&req, path);
		goto out;
	}
	if (req.rq.flags & COMMAND_F_WATCH) {
		rc = watch_status(&req, path);
		goto out;
	}
	if ((rc = ask(&req, path, &ans)) != CTL_EXIT_DONE)
		goto out;
	if (!json_get_bool(ans, "ok", false)) {
		if (req.pr->refused != NULL && !req.rq.json)
			req.pr->refused(&req, ans);
		else
			fprintf(stderr, "cutoverctl: %s\n",
			    json_get_str(ans, "error", "request failed"));
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	if (!req.rq.json)
		req.pr->format(&req, ans);
	rc = CTL_EXIT_DONE;
	/* switch --ramp --wait: the daemon answered once the ramp started;
	 * follow it to its end (exit 0 at 100 %, 1 when rolled back). */
	if (req.rq.cmd->id == COMMAND_SWITCH && (req.rq.flags & COMMAND_F_RAMP) &&
	    (req.rq.flags & COMMAND_F_WAIT) && !json_get_bool(ans, "dry_run", false) &&
	    json_get(ans, "ramp") != NULL)
		rc = deploy_follow_ramp(path, "switch", color_name(req.rq.color), 0, req.rq.json, true);
	/* A fleet change that a live node did not apply in time (a ramp's
	 * start; one rolled back since exits 1 all the same). */
	if (json_get(ans, "converged") != NULL && !json_get_bool(ans, "converged", true) &&
	    (rc == CTL_EXIT_DONE || rc == CTL_EXIT_LAGGING)) {
		const struct json *lag = json_get(ans, "lagging");

		fprintf(stderr, "cutoverctl: the change stays in effect but not every live node "
		    "applied it within fleet.timeout; lagging:");
		for (size_t k = 0; lag != NULL && lag->type == JSON_ARRAY && k < lag->n; k++)
			if (lag->items[k]->type == JSON_STRING)
				fprintf(stderr, " %s", lag->items[k]->str);
		fprintf(stderr, "\n");
		rc = CTL_EXIT_LAGGING;
	}
out:
	/* A full disk or a closed pipe on stdout must not pass for success. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "cutoverctl: stdout: %s\n", strerror(errno));
		if (rc == CTL_EXIT_DONE)
			rc = CTL_EXIT_FAILED;
	}
	json_free(ans);
	jbuf_free(&req.line);
	return rc;
}
