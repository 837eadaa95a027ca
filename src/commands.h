#ifndef CUTOVER_SRC_COMMANDS_H
#define CUTOVER_SRC_COMMANDS_H

#ifdef CUTOVER_PURE
#error "commands.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * The daemon's side of the command table (command.c): one handler per
 * command, each parsing nothing (control.c gave it a typed request) and
 * answering from the noun it asks about: the engine (status, commit), a
 * transition (switch, rollback), health, history, smoke. Reload is the
 * daemon's own, reached through reload. Main thread only.
 */

#include "command.h"
#include "control.h"

struct config_errors;
struct engine;
struct event_base;
struct generation;
struct health;
struct jbuf;
struct resolver;
struct transition_ctx;
struct worker;

/* What the handlers need, owned by the daemon; the handlers' arg. */
struct commands {
	struct event_base *base;
	const struct generation *live; /* replaced in place by a reload */
	struct engine *engine;
	struct transition_ctx *tx;
	struct health *const *health; /* replaced by a reload */
	const struct worker *workers;
	unsigned nworkers;
	const char *history; /* the audit history file */
	struct fleet *fleet; /* NULL without a fleet group */
	struct resolver *const *resolver; /* NULL inside when no server is written by name */
	/* `reload`: answers c now, or later with commands_reload_answer. */
	void (*reload)(void *arg, struct control_conn *c, const struct control_caller *who);
	void *arg;
};

/* By command id; give control_new a struct commands as arg. */
extern const control_handler commands_handlers[COMMAND_COUNT];

/* Appends the `status --json` answer (one JSON object) to out. */
void commands_status_json(const struct commands *x, struct jbuf *out);

/* Answers a `reload` caller with the outcome (every error when rejected). */
void commands_reload_answer(struct control_conn *c, int rc, const struct config_errors *errs);

#endif
