#ifndef CUTOVER_SRC_CONTROL_H
#define CUTOVER_SRC_CONTROL_H

/*
 * The control socket: a Unix stream socket on the main thread's loop. One
 * command per line, one JSON line per answer, several commands per
 * connection. The caller's uid/pid come from SO_PEERCRED at accept; commands
 * that change something need uid 0 or membership of control.admin_group.
 * Lines are bounded, garbage gets an error answer, a slow or hostile client
 * never blocks the daemon: a connection's unread output is bounded (its next
 * commands wait), a connection with no command for 10 s is closed, and
 * admin callers always get a connection (reserved slots, else the oldest
 * idle non-admin connection is closed).
 */

#include <stdbool.h>
#include <sys/types.h>

struct command_request;
struct event_base;
struct config_control;
struct control;
struct control_conn;

struct control_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool admin;
};

/*
 * A command handler: rq is the command line, parsed and checked against the
 * command table (command.h), valid for the call only. It must answer
 * exactly once, now or later, with control_reply(). Until it does, the
 * connection reads no further command.
 */
typedef void (*control_handler)(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);

/*
 * Creates the socket at cfg->socket (a stale socket file is replaced; a live
 * one is an error), applies cfg->mode and cfg->group, and starts serving
 * the daemon's commands of the command table: each line is parsed into a
 * command_request, the caller's privilege checked against the row's, and
 * handlers[rq->cmd->id] called (handlers has COMMAND_COUNT entries; NULL
 * for a command the daemon does not serve). Returns NULL after logging
 * the cause.
 */
struct control *control_new(struct event_base *base, const struct config_control *cfg,
    const control_handler *handlers, void *arg);

/* Changes control.admin_group (reload). */
void control_set_admin_group(struct control *ctl, const char *group);

/* Closes the socket (and unlinks it) and every connection. */
void control_free(struct control *ctl);

/*
 * Sends one answer line (json must be one JSON object without newline) and
 * resumes reading commands. If the client went away meanwhile the answer is
 * dropped and the connection freed.
 */
void control_reply(struct control_conn *c, const char *json);

/* Sends the JSON object built in b (or an out-of-memory error if building
 * it failed) and frees b. */
struct jbuf;
void control_reply_jbuf(struct control_conn *c, struct jbuf *b);

/* Answers {"ok":false,"error":msg}. */
void control_reply_error(struct control_conn *c, const char *msg);

#endif
