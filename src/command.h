#ifndef CUTOVER_SRC_COMMAND_H
#define CUTOVER_SRC_COMMAND_H

/*
 * The control commands: one table, read by cutoverd (to parse a received
 * line and pick its handler and privilege) and by cutoverctl (to check a
 * command line, build the line it sends, and print --help), so that the
 * two programs accept the same grammar.
 *
 * Each row is a command: its name, its positional argument (a color or a
 * count), the flags it accepts and requires, whether it changes something
 * (admin) and which side knows it (the daemon, the client, both). A
 * command line is parsed once into a struct command_request; handlers and
 * formatters take that typed form, never the words. Pure: no I/O, no
 * allocation, any thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "state.h" /* RAMP_MAX_STEPS */

struct jbuf;

enum command_id {
	COMMAND_STATUS,
	COMMAND_SWITCH,
	COMMAND_ROLLBACK,
	COMMAND_HEALTH,
	COMMAND_HISTORY,
	COMMAND_SMOKE,
	COMMAND_COMMIT,
	COMMAND_RELOAD,
	COMMAND_DEPLOY,
	COMMAND_HELP,
	COMMAND_COUNT
};

/* A command's positional argument. */
enum command_arg {
	COMMAND_ARG_NONE,
	COMMAND_ARG_COLOR, /* blue or green */
	COMMAND_ARG_COUNT, /* a positive integer */
};

/* The flags; a command's row says which it accepts. */
enum {
	COMMAND_F_FORCE = 1u << 0,
	COMMAND_F_IF_GEN = 1u << 1,
	COMMAND_F_DRY_RUN = 1u << 2,
	COMMAND_F_WAIT = 1u << 3,
	COMMAND_F_RUN = 1u << 4,
	COMMAND_F_TIMEOUT = 1u << 5,
	COMMAND_F_WATCH = 1u << 6,
	COMMAND_F_LOCAL = 1u << 7,
	COMMAND_F_RAMP = 1u << 8,
	COMMAND_F_STEP = 1u << 9,
};

/* Which program knows a command (a bit set). */
enum {
	COMMAND_DAEMON = 1u << 0, /* sent to and carried out by cutoverd */
	COMMAND_CLIENT = 1u << 1, /* accepted by cutoverctl */
};

enum command_value {
	COMMAND_VALUE_NONE,     /* a switch, no value */
	COMMAND_VALUE_NUMBER,   /* a generation number */
	COMMAND_VALUE_COMMAND,  /* a shell command line (may hold blanks) */
	COMMAND_VALUE_DURATION, /* "30s", "10m" */
	COMMAND_VALUE_STEPS,    /* "1,10,50": rising percentages, each 1..99 */
};

struct command_flag {
	const char *name; /* "--force" */
	unsigned bit;     /* COMMAND_F_* */
	enum command_value value;
	const char *metavar; /* the value's name in help, or NULL */
	const char *help;
	/* Concerns cutoverctl only (status --watch): never sent, and the
	 * daemon refuses it as an unknown option. */
	bool client_only;
};

struct command {
	enum command_id id;
	const char *name;
	enum command_arg arg;
	bool arg_required; /* else optional (when arg is not NONE) */
	unsigned flags;    /* COMMAND_F_* accepted */
	unsigned required; /* COMMAND_F_* that must be given */
	bool admin;        /* changes something: uid 0 or the admin group */
	unsigned sides;    /* COMMAND_DAEMON | COMMAND_CLIENT */
	const char *help;
};

/* One parsed command line. Strings point into the parsed argv. */
struct command_request {
	const struct command *cmd;
	bool has_arg;
	enum color color;   /* COMMAND_ARG_COLOR, when has_arg */
	uint64_t count;     /* COMMAND_ARG_COUNT, when has_arg */
	unsigned flags;     /* COMMAND_F_* given */
	uint64_t if_gen;    /* --if-gen N */
	const char *run;    /* --run CMD */
	uint64_t timeout_ms; /* --timeout T */
	unsigned ramp_steps[RAMP_MAX_STEPS]; /* --ramp 1,10,50 */
	unsigned ramp_nsteps;
	uint64_t step_ms;    /* --step T (0: switch.ramp_step) */
	bool json;          /* --json after the command (client side only) */
};

/* The table, COMMAND_COUNT rows indexed by enum command_id, and the flags. */
extern const struct command command_table[COMMAND_COUNT];
extern const struct command_flag command_flags[];
extern const size_t command_nflags;

/* The row named name that side (COMMAND_DAEMON or COMMAND_CLIENT) knows,
 * or NULL. */
const struct command *command_find(const char *name, unsigned side);

/*
 * Parses argv[0..argc) (the command name, then its words) as side
 * (COMMAND_DAEMON or COMMAND_CLIENT) accepts it: the positional argument
 * anywhere among the flags, each flag at most once, a flag's value as the
 * next word or after '=' ("--if-gen=3"), numbers as plain decimal digits
 * below 2^63. On the client side "--json" may also follow the command.
 * Returns 0 with *rq filled (pointing into argv), or -1 with a one-line
 * reason in err ("switch: unknown option '--bogus'"); *rq is then
 * undefined.
 */
int command_parse(struct command_request *rq, int argc, char **argv, unsigned side, char *err,
    size_t errlen) __attribute__((warn_unused_result));

/*
 * Parses a ramp's steps ("1,10,50": 1 to RAMP_MAX_STEPS percentages, each
 * 1..99, rising). Returns 0, or -1 with the reason in err.
 */
int command_parse_steps(const char *v, unsigned *steps, unsigned *n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Appends to line the wire form of rq, which must be a daemon command: its
 * name, its argument, then its flags in table order (client-only flags
 * left out), separated by single
 * spaces, without a newline ("switch green --force --if-gen 3"). Returns 0,
 * or -1 for a command the daemon does not know. Out of memory shows in
 * line->oom.
 */
int command_format(const struct command_request *rq, struct jbuf *line)
    __attribute__((warn_unused_result));

/* Writes cmd's synopsis as the daemon knows it ("rollback [--force]
 * [--if-gen N]", client-only flags left out) into buf. */
void command_synopsis(const struct command *cmd, char *buf, size_t size);

#endif
