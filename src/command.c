#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "deploy.h"
#include "duration.h"
#include "json.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define BOTH (COMMAND_DAEMON | COMMAND_CLIENT)

const struct command_flag command_flags[] = {
	{"--force", COMMAND_F_FORCE, COMMAND_VALUE_NONE, NULL, "skip the health and smoke-test checks",
	    false},
	{"--if-gen", COMMAND_F_IF_GEN, COMMAND_VALUE_NUMBER, "N",
	    "refuse unless the switch generation is N", false},
	{"--dry-run", COMMAND_F_DRY_RUN, COMMAND_VALUE_NONE, NULL, "run every check, change nothing",
	    false},
	{"--wait", COMMAND_F_WAIT, COMMAND_VALUE_NONE, NULL,
	    "return once the old color has drained (with --ramp: once the ramp ended)", false},
	{"--run", COMMAND_F_RUN, COMMAND_VALUE_COMMAND, "CMD",
	    "install the release (sh -c CMD, CUTOVER_TARGET=idle color)", false},
	{"--timeout", COMMAND_F_TIMEOUT, COMMAND_VALUE_DURATION, "T",
	    "give up waiting after T (each wait; default " DEPLOY_DEFAULT_TIMEOUT ")", false},
	{"--local", COMMAND_F_LOCAL, COMMAND_VALUE_NONE, NULL,
	    "in a fleet: change this node alone (when etcd is unreachable)", false},
	{"--watch", COMMAND_F_WATCH, COMMAND_VALUE_NONE, NULL, "redraw every second until Ctrl-C",
	    true},
	{"--ramp", COMMAND_F_RAMP, COMMAND_VALUE_STEPS, "STEPS",
	    "shift progressively: percentages such as 1,10,50, then 100", false},
	{"--step", COMMAND_F_STEP, COMMAND_VALUE_DURATION, "T",
	    "hold each ramp step for T (default switch.ramp_step)", false},
};
const size_t command_nflags = NELEM(command_flags);

/*
 * The commands, in the order help lists them. deploy is carried out by
 * cutoverctl itself (deploy.c), help is the daemon's own list.
 */
const struct command command_table[COMMAND_COUNT] = {
	[COMMAND_STATUS] = {COMMAND_STATUS, "status", COMMAND_ARG_NONE, false, COMMAND_F_WATCH, 0,
	    false, BOTH,
	    "active and previous color, state, verdict, pools"},
	[COMMAND_SWITCH] = {COMMAND_SWITCH, "switch", COMMAND_ARG_COLOR, true,
	    COMMAND_F_FORCE | COMMAND_F_IF_GEN | COMMAND_F_DRY_RUN | COMMAND_F_WAIT | COMMAND_F_LOCAL |
	        COMMAND_F_RAMP | COMMAND_F_STEP,
	    0, true, BOTH, "send new requests to that color (--ramp: a growing share)"},
	[COMMAND_ROLLBACK] = {COMMAND_ROLLBACK, "rollback", COMMAND_ARG_NONE, false,
	    COMMAND_F_FORCE | COMMAND_F_IF_GEN | COMMAND_F_LOCAL, 0, true, BOTH,
	    "switch back to the previous color"},
	[COMMAND_HEALTH] = {COMMAND_HEALTH, "health", COMMAND_ARG_COLOR, false, 0, 0, false, BOTH,
	    "each server's state, last check and latency"},
	[COMMAND_HISTORY] = {COMMAND_HISTORY, "history", COMMAND_ARG_COUNT, false, 0, 0, false, BOTH,
	    "the switch audit log (the last N entries)"},
	[COMMAND_SMOKE] = {COMMAND_SMOKE, "smoke", COMMAND_ARG_COLOR, true, 0, 0, true, BOTH,
	    "run the smoke tests against that color now"},
	[COMMAND_COMMIT] = {COMMAND_COMMIT, "commit", COMMAND_ARG_NONE, false, COMMAND_F_LOCAL, 0,
	    true, BOTH,
	    "end the safety window now"},
	[COMMAND_RELOAD] = {COMMAND_RELOAD, "reload", COMMAND_ARG_NONE, false, 0, 0, true, BOTH,
	    "reload the configuration (like SIGHUP)"},
	[COMMAND_DEPLOY] = {COMMAND_DEPLOY, "deploy", COMMAND_ARG_NONE, false,
	    COMMAND_F_RUN | COMMAND_F_TIMEOUT | COMMAND_F_RAMP | COMMAND_F_STEP, COMMAND_F_RUN, true,
	    COMMAND_CLIENT,
	    "install on the idle color, switch, follow the window"},
	[COMMAND_HELP] = {COMMAND_HELP, "help", COMMAND_ARG_NONE, false, 0, 0, false, COMMAND_DAEMON,
	    "list commands"},
};

static const struct command_flag *find_flag(const char *word, size_t len);
static bool word_ok(const char *w);
static bool number_ok(const char *s, bool positive, uint64_t *out);
static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

const struct command *
command_find(const char *name, unsigned side)
{
	size_t i;

	for (i = 0; i < COMMAND_COUNT; i++)
		if ((command_table[i].sides & side) && strcmp(command_table[i].name, name) == 0)
			return &command_table[i];
	return NULL;
}

/*
 * The client checks its words before they reach the wire, where a word is
 * non-empty and free of blanks and control characters; the daemon splits
 * its line on blanks and refuses control characters before this parser
 * sees it, so the same checks hold on both sides. The messages are the
 * ones cutoverctl printed before the table existed.
 */
int
command_parse(struct command_request *rq, int argc, char **argv, unsigned side, char *err,
    size_t errlen)
{
	const struct command *cmd;
	int a;

	memset(rq, 0, sizeof(*rq));
	if (argc < 1 || !word_ok(argv[0]))
		return fail(err, errlen,
		    "argument 1 is empty or holds whitespace or a control character");
	if ((cmd = command_find(argv[0], side)) == NULL)
		return fail(err, errlen, "unknown command '%.64s'", argv[0]);
	rq->cmd = cmd;
	for (a = 1; a < argc; a++) {
		const char *w = argv[a], *eq, *value = NULL;
		const struct command_flag *f;

		eq = w[0] == '-' ? strchr(w, '=') : NULL;
		f = w[0] == '-' ? find_flag(w, eq != NULL ? (size_t)(eq - w) : strlen(w)) : NULL;
		/* Only a command line to run may hold blanks: it is never
		 * sent over the wire. */
		if (!word_ok(eq != NULL && f != NULL && f->value == COMMAND_VALUE_COMMAND ? "-" : w))
			return fail(err, errlen,
			    "argument %d is empty or holds whitespace or a control character", a + 1);
		/* --json concerns the client only and is never sent. */
		if ((side & COMMAND_CLIENT) && strcmp(w, "--json") == 0) {
			rq->json = true;
			continue;
		}
		if (w[0] != '-') {
			if (cmd->arg == COMMAND_ARG_NONE || rq->has_arg)
				return fail(err, errlen, "%s: too many arguments", cmd->name);
			if (cmd->arg == COMMAND_ARG_COLOR && color_parse(w, &rq->color) < 0)
				return fail(err, errlen, "%s: '%.64s' is not a color (blue or green)",
				    cmd->name, w);
			if (cmd->arg == COMMAND_ARG_COUNT && !number_ok(w, true, &rq->count))
				return fail(err, errlen, "%s: '%.64s' is not a positive number", cmd->name,
				    w);
			rq->has_arg = true;
			continue;
		}
		if (f == NULL || !(cmd->flags & f->bit) ||
		    (f->client_only && !(side & COMMAND_CLIENT)))
			return fail(err, errlen, "%s: unknown option '%.64s'", cmd->name, w);
		if (rq->flags & f->bit)
			return fail(err, errlen, "%s: %s given twice", cmd->name, f->name);
		rq->flags |= f->bit;
		if (f->value == COMMAND_VALUE_NONE) {
			if (eq != NULL)
				return fail(err, errlen, "%s: %s takes no value", cmd->name, f->name);
			continue;
		}
		if (eq != NULL)
			value = eq + 1;
		else if (a + 1 < argc)
			value = argv[++a];
		switch (f->value) {
		case COMMAND_VALUE_NUMBER:
			if (value == NULL || !number_ok(value, false, &rq->if_gen))
				return fail(err, errlen, "%s: %s needs a generation number", cmd->name,
				    f->name);
			break;
		case COMMAND_VALUE_COMMAND:
			if (value == NULL || value[strspn(value, " \t\n")] == '\0')
				return fail(err, errlen, "%s: %s needs a command", cmd->name, f->name);
			rq->run = value;
			break;
		case COMMAND_VALUE_DURATION: {
			uint64_t *ms = f->bit == COMMAND_F_STEP ? &rq->step_ms : &rq->timeout_ms;

			if (value == NULL || duration_parse(value, ms) < 0 || *ms == 0)
				return fail(err, errlen,
				    "%s: %s needs a duration such as \"90s\" or \"10m\"", cmd->name,
				    f->name);
			break;
		}
		case COMMAND_VALUE_STEPS: {
			char why[128];

			if (value == NULL)
				return fail(err, errlen, "%s: %s needs steps such as 1,10,50", cmd->name,
				    f->name);
			if (command_parse_steps(value, rq->ramp_steps, &rq->ramp_nsteps, why, sizeof(why)) < 0)
				return fail(err, errlen, "%s: %s %.64s: %s", cmd->name, f->name, value, why);
			break;
		}
		case COMMAND_VALUE_NONE:
			break;
		}
	}
	if ((rq->flags & COMMAND_F_STEP) && !(rq->flags & COMMAND_F_RAMP))
		return fail(err, errlen, "%s: --step needs --ramp", cmd->name);
	if (cmd->arg_required && !rq->has_arg)
		return fail(err, errlen, "%s: missing argument (%s)", cmd->name,
		    cmd->arg == COMMAND_ARG_COLOR ? "blue or green" : "a number");
	for (a = 0; a < (int)command_nflags; a++)
		if ((cmd->required & command_flags[a].bit) && !(rq->flags & command_flags[a].bit))
			return fail(err, errlen, "%s: %s %s is required", cmd->name,
			    command_flags[a].name, command_flags[a].metavar);
	return 0;
}

int
command_format(const struct command_request *rq, struct jbuf *line)
{
	size_t i;

	if (!(rq->cmd->sides & COMMAND_DAEMON))
		return -1;
	jbuf_raw(line, rq->cmd->name);
	if (rq->has_arg && rq->cmd->arg == COMMAND_ARG_COLOR)
		jbuf_printf(line, " %s", color_name(rq->color));
	else if (rq->has_arg && rq->cmd->arg == COMMAND_ARG_COUNT)
		jbuf_printf(line, " %" PRIu64, rq->count);
	for (i = 0; i < command_nflags; i++) {
		const struct command_flag *f = &command_flags[i];

		if (!(rq->flags & f->bit) || f->client_only)
			continue;
		jbuf_printf(line, " %s", f->name);
		if (f->value == COMMAND_VALUE_NUMBER)
			jbuf_printf(line, " %" PRIu64, rq->if_gen);
		if (f->value == COMMAND_VALUE_DURATION) {
			char d[32];

			duration_format(f->bit == COMMAND_F_STEP ? rq->step_ms : rq->timeout_ms, d, sizeof(d));
			jbuf_printf(line, " %s", d);
		}
		if (f->value == COMMAND_VALUE_STEPS)
			for (unsigned k = 0; k < rq->ramp_nsteps; k++)
				jbuf_printf(line, "%s%u", k ? "," : " ", rq->ramp_steps[k]);
	}
	return 0;
}

int
command_parse_steps(const char *v, unsigned *steps, unsigned *n, char *err, size_t errlen)
{
	const char *p = v;
	uint64_t u;

	*n = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		char num[8];

		if (*n == RAMP_MAX_STEPS)
			return fail(err, errlen, "at most %d steps", RAMP_MAX_STEPS);
		if (len == 0 || len >= sizeof(num))
			return fail(err, errlen, "steps are percentages separated by commas, such as 1,10,50");
		memcpy(num, p, len);
		num[len] = '\0';
		if (!number_ok(num, true, &u) || u > 99)
			return fail(err, errlen, "'%s' is not a percentage from 1 to 99", num);
		if (*n > 0 && u <= steps[*n - 1])
			return fail(err, errlen, "steps must rise (%u then %u)", steps[*n - 1], (unsigned)u);
		steps[(*n)++] = (unsigned)u;
		if (comma == NULL)
			return 0;
		p = comma + 1;
	}
}

void
command_synopsis(const struct command *cmd, char *buf, size_t size)
{
	const char *arg = cmd->arg == COMMAND_ARG_COLOR ? "blue|green" :
	    cmd->arg == COMMAND_ARG_COUNT                ? "N" :
	                                                   NULL;
	size_t i, len;

	if (arg == NULL)
		snprintf(buf, size, "%s", cmd->name);
	else
		snprintf(buf, size, cmd->arg_required ? "%s %s" : "%s [%s]", cmd->name, arg);
	for (i = 0; i < command_nflags; i++) {
		const struct command_flag *f = &command_flags[i];
		bool req = (cmd->required & f->bit) != 0;

		if (!(cmd->flags & f->bit) || f->client_only)
			continue;
		len = strlen(buf);
		snprintf(buf + len, size - len, " %s%s%s%s%s", req ? "" : "[", f->name,
		    f->metavar != NULL ? " " : "", f->metavar != NULL ? f->metavar : "", req ? "" : "]");
	}
}

/* Looks a flag up by the first len bytes of word (len stops before an
 * "=value" part). */
static const struct command_flag *
find_flag(const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < command_nflags; i++)
		if (strlen(command_flags[i].name) == len && strncmp(command_flags[i].name, word, len) == 0)
			return &command_flags[i];
	return NULL;
}

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
 * fitting in 63 bits so that every integer type on either side holds it. */
static bool
number_ok(const char *s, bool positive, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || v > (unsigned long long)INT64_MAX)
		return false;
	if (positive && v == 0)
		return false;
	*out = (uint64_t)v;
	return true;
}

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}
