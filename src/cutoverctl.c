#include "autoconf.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "deploy.h"
#include "duration.h"
#include "json.h"

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
 * This file holds the command table, the argument parsing, the formatters
 * that turn answers into text, and main(); the socket side is ctl.c.
 */

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#define DEFAULT_SOCKET RUNSTATEDIR "/cutover/control.sock"

#define TABLE_MAX_COLS 8

enum arg_kind {
	ARG_NONE,       /* takes no positional argument */
	ARG_COLOR,      /* blue or green */
	ARG_COUNT,      /* a positive integer */
};

enum {
	F_FORCE = 1u << 0,
	F_IF_GEN = 1u << 1,
	F_DRY_RUN = 1u << 2,
	F_WAIT = 1u << 3,
	F_RUN = 1u << 4,
	F_TIMEOUT = 1u << 5,
};

enum flag_value {
	FV_NONE,        /* a switch, no value */
	FV_NUMBER,      /* a generation number, sent to the daemon */
	FV_COMMAND,     /* a shell command line (may hold blanks), kept local */
	FV_DURATION,    /* "30s", "10m": kept local */
};

struct flag {
	const char *name;
	unsigned bit;
	enum flag_value value;
	const char *metavar;    /* the value's name in --help, or NULL */
	const char *help;
};

struct request;

struct command {
	const char *name;
	int min_args, max_args;
	enum arg_kind arg;
	unsigned flags;         /* F_* the command accepts */
	unsigned required;      /* F_* the command cannot do without */
	/* Prints an ok:true answer on stdout. */
	void (*format)(const struct request *, const struct json *);
	/* Prints an ok:false answer: the reason on stderr and, for some
	 * commands, the details that came with it; NULL: the reason only. */
	void (*refused)(const struct request *, const struct json *);
	/* Commands the client carries out itself (deploy) have run instead
	 * of a wire form; it returns the exit status. */
	int (*run)(const struct request *, const char *path);
	const char *help;
};

/* One checked command line, ready to send. */
struct request {
	const struct command *cmd;
	const char *arg;        /* the positional argument, or NULL */
	unsigned flags;
	bool json;
	const char *run_cmd;    /* --run CMD */
	uint64_t timeout_ms;    /* --timeout T */
	struct jbuf line;       /* the wire form, newline included */
};

struct table {
	size_t ncols, nrows;
	char **cells;           /* nrows * ncols, each malloc'd */
	size_t width[TABLE_MAX_COLS];
	bool oom;
};

static void usage(FILE *fp);
static const struct command *find_command(const char *name);
static const struct flag *find_flag(const char *word, size_t len);
static bool word_ok(const char *w);
static bool number_ok(const char *s, bool positive);
static bool color_ok(const char *s);
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

static const struct flag flags[] = {
	{"--force", F_FORCE, FV_NONE, NULL,
	    "skip the health and smoke-test checks"},
	{"--if-gen", F_IF_GEN, FV_NUMBER, "N",
	    "refuse unless the switch generation is N"},
	{"--dry-run", F_DRY_RUN, FV_NONE, NULL,
	    "run every check, change nothing"},
	{"--wait", F_WAIT, FV_NONE, NULL,
	    "return once the old color has drained"},
	{"--run", F_RUN, FV_COMMAND, "CMD",
	    "install the release (sh -c CMD, CUTOVER_TARGET=idle color)"},
	{"--timeout", F_TIMEOUT, FV_DURATION, "T",
	    "give up waiting after T (each wait; default " DEPLOY_DEFAULT_TIMEOUT ")"},
};

/* The commands the client knows; all but deploy are sent to the daemon. */
static const struct command commands[] = {
	{"status", 0, 0, ARG_NONE, 0, 0, fmt_status, NULL, NULL,
	    "active and previous color, state, verdict, pools"},
	{"switch", 1, 1, ARG_COLOR, F_FORCE | F_IF_GEN | F_DRY_RUN | F_WAIT, 0,
	    fmt_switch, NULL, NULL, "send new requests to that color"},
	{"rollback", 0, 0, ARG_NONE, F_FORCE | F_IF_GEN, 0, fmt_switch, NULL,
	    NULL, "switch back to the previous color"},
	{"health", 0, 1, ARG_COLOR, 0, 0, fmt_health, NULL, NULL,
	    "each server's state, last check and latency"},
	{"history", 0, 1, ARG_COUNT, 0, 0, fmt_history, NULL, NULL,
	    "the switch audit log (the last N entries)"},
	{"smoke", 1, 1, ARG_COLOR, 0, 0, fmt_smoke, refused_smoke, NULL,
	    "run the smoke tests against that color now"},
	{"commit", 0, 0, ARG_NONE, 0, 0, fmt_commit, NULL, NULL,
	    "end the safety window now"},
	{"reload", 0, 0, ARG_NONE, 0, 0, fmt_ok, refused_reload, NULL,
	    "reload the configuration (like SIGHUP)"},
	{"deploy", 0, 0, ARG_NONE, F_RUN | F_TIMEOUT, F_RUN, NULL, NULL,
	    run_deploy, "install on the idle color, switch, follow the window"},
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
	    "\n"
	    "Commands:\n", DEFAULT_SOCKET);
	for (i = 0; i < NELEM(commands); i++) {
		const struct command *c = &commands[i];
		const char *arg = c->arg == ARG_COLOR ? "blue|green" :
		    c->arg == ARG_COUNT ? "N" : NULL;
		char syn[128];

		if (arg == NULL)
			snprintf(syn, sizeof(syn), "%s", c->name);
		else
			snprintf(syn, sizeof(syn), c->min_args > 0 ? "%s %s" :
			    "%s [%s]", c->name, arg);
		for (k = 0; k < NELEM(flags); k++)
			if (c->required & flags[k].bit)
				snprintf(syn + strlen(syn), sizeof(syn) -
				    strlen(syn), " %s %s", flags[k].name,
				    flags[k].metavar);
		fprintf(fp, "  %-24s %s\n", syn, c->help);
		for (k = 0; k < NELEM(flags); k++) {
			if (!(c->flags & flags[k].bit))
				continue;
			snprintf(syn, sizeof(syn), "%s%s%s", flags[k].name,
			    flags[k].metavar != NULL ? " " : "",
			    flags[k].metavar != NULL ? flags[k].metavar : "");
			fprintf(fp, "      %-20s %s\n", syn, flags[k].help);
		}
	}
	fprintf(fp,
	    "\n"
	    "Exit status: 0 done, 1 refused or failed (reason on stderr),\n"
	    "2 usage error, 3 daemon unreachable.\n");
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Looks a flag up by the first len bytes of word (len stops before an
 * "=value" part). */
static const struct flag *
find_flag(const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < NELEM(flags); i++)
		if (strlen(flags[i].name) == len &&
		    strncmp(flags[i].name, word, len) == 0)
			return &flags[i];
	return NULL;
}

/* The wire protocol separates words with single spaces and ends a command
 * with a newline, so a word must be non-empty and free of both; other
 * control characters are refused too, as nothing legitimate holds them. */
static bool
word_ok(const char *w)
{
	if (*w == '\0')
		return false;
	for (; *w != '\0'; w++)
		if ((unsigned char)*w <= 0x20 || *w == 0x7f)
			return false;
	return true;
}

/* Decimal digits only (no sign, no blanks, which strtoull would allow),
 * fitting in 63 bits so that every daemon-side integer type holds it. */
static bool
number_ok(const char *s, bool positive)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || v > (unsigned long long)INT64_MAX)
		return false;
	return !positive || v > 0;
}

static bool
color_ok(const char *s)
{
	return strcmp(s, "blue") == 0 || strcmp(s, "green") == 0;
}

/* Checks argv (the command and its words, global options already consumed)
 * and builds req->line: the command, its positional argument, then its
 * flags in the order given, each word separated by one space. A command the
 * client carries out itself gets no line; its flags' values (--run CMD, which
 * may hold blanks, and --timeout T) are kept in req. Returns CTL_EXIT_DONE, or
 * CTL_EXIT_USAGE after printing why. */
static int
parse_request(struct request *req, int argc, char **argv)
{
	const char **flagw = NULL;
	size_t nflagw = 0, i;
	int nargs = 0, a, rc = CTL_EXIT_USAGE;

	if (!word_ok(argv[0]))
		return ctl_usage_error("argument 1 is empty or holds whitespace or "
		    "a control character");
	if ((req->cmd = find_command(argv[0])) == NULL)
		return ctl_usage_error("unknown command '%s'", argv[0]);
	if ((flagw = calloc((size_t)argc * 2, sizeof(*flagw))) == NULL) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return CTL_EXIT_FAILED;
	}
	for (a = 1; a < argc; a++) {
		const char *w = argv[a], *eq, *value = NULL;
		const struct flag *f;

		eq = w[0] == '-' ? strchr(w, '=') : NULL;
		f = w[0] == '-' ? find_flag(w, eq != NULL ? (size_t)(eq - w) :
		    strlen(w)) : NULL;
		/* Only a command line to run may hold blanks: it is never
		 * sent over the wire. */
		if (!word_ok(eq != NULL && f != NULL && f->value == FV_COMMAND ?
		    "-" : w)) {
			ctl_usage_error("argument %d is empty or holds whitespace or "
			    "a control character", a + 1);
			goto out;
		}
		/* --json may follow the command too, as in "status --json";
		 * it concerns the client only and is never sent. */
		if (strcmp(w, "--json") == 0) {
			req->json = true;
			continue;
		}
		if (w[0] != '-') {
			if (++nargs > req->cmd->max_args) {
				ctl_usage_error("%s: too many arguments",
				    req->cmd->name);
				goto out;
			}
			if (req->cmd->arg == ARG_COLOR && !color_ok(w)) {
				ctl_usage_error("%s: '%s' is not a color (blue or "
				    "green)", req->cmd->name, w);
				goto out;
			}
			if (req->cmd->arg == ARG_COUNT && !number_ok(w, true)) {
				ctl_usage_error("%s: '%s' is not a positive number",
				    req->cmd->name, w);
				goto out;
			}
			req->arg = w;
			continue;
		}
		if (f == NULL || !(req->cmd->flags & f->bit)) {
			ctl_usage_error("%s: unknown option '%s'", req->cmd->name, w);
			goto out;
		}
		if (req->flags & f->bit) {
			ctl_usage_error("%s: %s given twice", req->cmd->name, f->name);
			goto out;
		}
		req->flags |= f->bit;
		if (f->value == FV_NONE) {
			if (eq != NULL) {
				ctl_usage_error("%s: %s takes no value",
				    req->cmd->name, f->name);
				goto out;
			}
			flagw[nflagw++] = f->name;
			continue;
		}
		if (eq != NULL)
			value = eq + 1;
		else if (a + 1 < argc)
			value = argv[++a];
		switch (f->value) {
		case FV_NUMBER:
			if (value == NULL || !number_ok(value, false)) {
				ctl_usage_error("%s: %s needs a generation number",
				    req->cmd->name, f->name);
				goto out;
			}
			flagw[nflagw++] = f->name;
			flagw[nflagw++] = value;
			break;
		case FV_COMMAND:
			if (value == NULL || value[strspn(value, " \t\n")] ==
			    '\0') {
				ctl_usage_error("%s: %s needs a command", req->cmd->name,
				    f->name);
				goto out;
			}
			req->run_cmd = value;
			break;
		case FV_DURATION:
			if (value == NULL || duration_parse(value,
			    &req->timeout_ms) < 0 || req->timeout_ms == 0) {
				ctl_usage_error("%s: %s needs a duration such as "
				    "\"90s\" or \"10m\"", req->cmd->name, f->name);
				goto out;
			}
			break;
		case FV_NONE:
			break;
		}
	}
	if (nargs < req->cmd->min_args) {
		ctl_usage_error("%s: missing argument (%s)", req->cmd->name,
		    req->cmd->arg == ARG_COLOR ? "blue or green" : "a number");
		goto out;
	}
	for (i = 0; i < NELEM(flags); i++)
		if ((req->cmd->required & flags[i].bit) &&
		    !(req->flags & flags[i].bit)) {
			ctl_usage_error("%s: %s %s is required", req->cmd->name,
			    flags[i].name, flags[i].metavar);
			goto out;
		}
	if (req->cmd->run != NULL) {
		/* Carried out here, printing text as it goes. */
		if (req->json) {
			ctl_usage_error("%s: --json is not supported: %s prints its "
			    "progress as text", req->cmd->name, req->cmd->name);
			goto out;
		}
		rc = CTL_EXIT_DONE;
		goto out;
	}
	jbuf_raw(&req->line, req->cmd->name);
	if (req->arg != NULL) {
		jbuf_raw(&req->line, " ");
		jbuf_raw(&req->line, req->arg);
	}
	for (i = 0; i < nflagw; i++) {
		jbuf_raw(&req->line, " ");
		jbuf_raw(&req->line, flagw[i]);
	}
	jbuf_raw(&req->line, "\n");
	if (req->line.oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	rc = CTL_EXIT_DONE;
out:
	free(flagw);
	return rc;
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

static void
fmt_status(const struct request *req, const struct json *ans)
{
	static const char *const colors[] = {"blue", "green"};
	const struct json *pools = json_get(ans, "pools");
	const struct json *guard = json_get(ans, "guard");
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
		printf("dry run: %s to %s would be allowed\n", req->cmd->name,
		    req->arg != NULL ? req->arg : previous != NULL ? previous :
		    "the previous color");
		return;
	}
	if (!json_get_bool(ans, "changed", true)) {
		printf("already on %s (generation %s): nothing to do\n",
		    active, gen);
		return;
	}
	printf("switched to %s (generation %s)", active, gen);
	if (json_get_bool(ans, "drained", false) && previous != NULL)
		printf("; %s drained", previous);
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
		printf("smoke tests on %s passed\n", req->arg);
}

/* The report goes to stdout as on success, the summary to stderr. */
static void
refused_smoke(const struct request *req, const struct json *ans)
{
	print_smoke(json_get(ans, "smoke"), stdout);
	fflush(stdout);
	fprintf(stderr, "cutoverctl: smoke tests on %s failed: %s\n", req->arg,
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

	return deploy_run(path, req->run_cmd, req->timeout_ms, &pr);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct request req;
	struct json *ans = NULL;
	const char *path = NULL;
	char *line = NULL;
	size_t len = 0;
	int ch, fd = -1, rc;

	memset(&req, 0, sizeof(req));
	jbuf_init(&req.line);
	opterr = 0;
	/* "+": options end at the command, whose own flags are checked
	 * against the command table below. */
	while ((ch = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			req.json = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_DONE;
		case 'V':
			printf("cutoverctl %s\n", PACKAGE_VERSION);
			return CTL_EXIT_DONE;
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
	if (req.cmd->run != NULL) {
		rc = req.cmd->run(&req, path);
		goto out;
	}
	if ((rc = ctl_connect(path, &fd)) != 0)
		goto out;
	if ((rc = ctl_send(fd, path, &req.line)) != 0)
		goto out;
	if ((rc = ctl_read_answer(fd, path, (req.flags & F_WAIT) ? -1 :
	    CTL_ANSWER_TIMEOUT_MS, &line, &len)) != 0)
		goto out;
	if (req.json)
		printf("%s\n", line);
	if ((rc = ctl_parse_answer(path, line, len, &ans)) != CTL_EXIT_DONE)
		goto out;
	if (!json_get_bool(ans, "ok", false)) {
		if (req.cmd->refused != NULL && !req.json)
			req.cmd->refused(&req, ans);
		else
			fprintf(stderr, "cutoverctl: %s\n",
			    json_get_str(ans, "error", "request failed"));
		rc = CTL_EXIT_FAILED;
		goto out;
	}
	if (!req.json)
		req.cmd->format(&req, ans);
	rc = CTL_EXIT_DONE;
out:
	/* A full disk or a closed pipe on stdout must not pass for success. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "cutoverctl: stdout: %s\n", strerror(errno));
		if (rc == CTL_EXIT_DONE)
			rc = CTL_EXIT_FAILED;
	}
	if (fd != -1)
		close(fd);
	json_free(ans);
	free(line);
	jbuf_free(&req.line);
	return rc;
}
