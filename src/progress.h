#ifndef CUTOVER_SRC_PROGRESS_H
#define CUTOVER_SRC_PROGRESS_H

/*
 * Progress you can watch: what cutoverctl shows while it waits for the
 * daemon (switch --wait, deploy, later ramps), taken from status answers.
 *
 * On a terminal it is one line, redrawn in place ("\r", erase to the end
 * of the line) at each answer: phase, time left, requests seen by the
 * guard, verdict. Elsewhere (a pipe, a CI log) it is a plain line each
 * time the phase, the active color, the drain, the guard's judging or the
 * verdict changes, never one per poll. Either way it goes to the stream
 * given (stderr), so that stdout keeps the command's own output.
 * Single-threaded, as cutoverctl is.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct jbuf;
struct json;

/* How often to ask for status while waiting on another connection. */
#define PROGRESS_POLL_MS 500

struct progress {
	const char *who;   /* the line's prefix: "switch", "deploy" */
	FILE *fp;
	bool tty;          /* fp is a terminal: one updating line */
	bool open;         /* an updating line is on screen, unterminated */
	char key[256];     /* what the last plain line said changed */
};

/* Sets pg up to write to fp, prefixing its lines with who (which must
 * outlive pg). Nothing is printed yet. */
void progress_init(struct progress *pg, const char *who, FILE *fp);

/* Shows the status answer st (an ok:true status object). */
void progress_show(struct progress *pg, const struct json *st);

/* Ends an updating line (keeping it on screen) before other output; a
 * no-op when none is open. */
void progress_break(struct progress *pg);

/*
 * Sends line (a command and its newline) on a connection of its own to
 * the control socket at path and reads the one-line answer, asking for
 * status on a second connection every PROGRESS_POLL_MS meanwhile and
 * showing it on pg (NULL: just wait). timeout_ms bounds the wait for the
 * answer (< 0: none). Returns as ctl_read_answer does, *linep the
 * caller's to free; errors are reported on stderr. The progress line is
 * ended before it returns.
 */
int progress_call(struct progress *pg, const char *path, const struct jbuf *line,
    int timeout_ms, char **linep, size_t *lenp) __attribute__((warn_unused_result));

#endif
