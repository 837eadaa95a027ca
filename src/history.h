#ifndef CUTOVER_SRC_HISTORY_H
#define CUTOVER_SRC_HISTORY_H

/*
 * The switch audit log: one JSON object per line, appended next to the state
 * file (STATE_FILE.history), surviving restarts. Every switch, rollback and
 * refusal is recorded with who asked (uid, pid) and why.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct history_entry {
	int64_t time_ms;     /* wall clock, Unix ms */
	const char *event;   /* "switch", "rollback", "refused", "commit", ... */
	const char *from;    /* color name or NULL */
	const char *to;      /* color name or NULL */
	const char *trigger; /* "manual", "auto-rollback", ... */
	const char *reason;  /* free text or NULL */
	long uid;            /* -1 when not a caller's action */
	long pid;            /* -1 when not a caller's action */
	uint64_t generation; /* generation after the event */
	const char *node;    /* in a fleet: the node that made the change; else NULL */
};

/* The history path for a state file: state_file + ".history" (malloc'd). */
char *history_path(const char *state_file);

/*
 * Appends e as one JSON line, valid UTF-8 whatever e holds (see history.c):
 * {"time":"2026-11-26T06:30:00.123Z","event":"switch","from":"blue","to":"green",
 *  "trigger":"manual","reason":"...","uid":0,"pid":123,"generation":8}
 * plus "node":"door-1" in a fleet (when e->node is set)
 * (from/to/reason null when NULL). O_APPEND, one write(2), then fsync. A
 * symbolic link at path is refused, never followed. Returns 0, or -1 with
 * "PATH: reason" in err.
 */
int history_append(const char *path, const struct history_entry *e, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Reads the last max records (all if max == 0) of the history file. On
 * success returns 0 and *lines (malloc'd array of malloc'd strings without
 * newline, oldest first, each a JSON object in valid UTF-8) and *n; a
 * missing file is 0 lines. Lines that are not such a record are left out
 * and counted in *skipped: one bad line never fails the read. Free with
 * history_lines_free. Returns -1 with err on failure (a symbolic link at
 * path is one).
 */
int history_read(const char *path, size_t max, char ***lines, size_t *n, size_t *skipped,
    char *err, size_t errlen) __attribute__((warn_unused_result));
void history_lines_free(char **lines, size_t n);

#endif
