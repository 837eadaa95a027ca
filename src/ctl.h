#ifndef CUTOVER_SRC_CTL_H
#define CUTOVER_SRC_CTL_H

/*
 * The control client: cutoverctl's side of cutoverd's control socket. One
 * command per connection: connect, send one line, read one line of JSON
 * back, parse it.
 *
 * Every function here reports its own failures on stderr ("cutoverctl:
 * ...") and returns a process exit status, CTL_EXIT_DONE on success, so
 * that callers can pass it on unchanged. Single-threaded: cutoverctl has
 * no other thread.
 */

#include <stddef.h>

struct jbuf;
struct json;

/* cutoverctl's exit status, as its --help and man page document it. */
enum {
	CTL_EXIT_DONE = 0,
	CTL_EXIT_FAILED = 1,            /* refused or failed */
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNREACHABLE = 3,       /* the daemon is unreachable */
	CTL_EXIT_LAGGING = 4,           /* a fleet change: a live node did not apply it in time */
};

/* How long to wait for an answer; `switch --wait` waits for as long as the
 * drain takes, which the daemon bounds with switch.drain_timeout. */
#define CTL_ANSWER_TIMEOUT_MS 60000

/*
 * Prints "cutoverctl: " and the message on stderr, then the usage line and
 * a pointer to --help. Returns CTL_EXIT_USAGE.
 */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Connects to the control socket at path. Returns CTL_EXIT_DONE with *fdp
 * a connected, close-on-exec socket that the caller must close; otherwise
 * *fdp is untouched: CTL_EXIT_USAGE for a path too long to be a socket
 * address, CTL_EXIT_UNREACHABLE when the connect fails, CTL_EXIT_FAILED
 * when no socket can be made.
 */
int ctl_connect(const char *path, int *fdp) __attribute__((warn_unused_result));

/*
 * Sends all of line (the command and its newline) on fd; path names the
 * socket in messages. A peer that went away gives CTL_EXIT_UNREACHABLE,
 * not SIGPIPE. line stays the caller's.
 */
int ctl_send(int fd, const char *path, const struct jbuf *line)
    __attribute__((warn_unused_result));

/*
 * Reads from fd up to the first newline, for at most timeout_ms (< 0: no
 * limit). On CTL_EXIT_DONE *linep is the line, malloc'd, NUL-terminated,
 * newline removed, and the caller's to free; *lenp its length. Bytes after
 * the newline are ignored. A dropped or silent connection is
 * CTL_EXIT_UNREACHABLE; an answer longer than 16 MiB or no memory,
 * CTL_EXIT_FAILED. *linep and *lenp are untouched on failure.
 */
int ctl_read_answer(int fd, const char *path, int timeout_ms, char **linep,
    size_t *lenp) __attribute__((warn_unused_result));

/*
 * Parses an answer line of len bytes: it must be a JSON object with a
 * boolean "ok" (either value), or it is CTL_EXIT_FAILED. As its strings
 * and keys end up on a terminal, a backslash in them becomes "\\" and each
 * control character and DEL "\xHH" (newline is kept in strings). On
 * CTL_EXIT_DONE *ansp is the caller's, to free with json_free. line stays
 * the caller's.
 */
int ctl_parse_answer(const char *path, const char *line, size_t len,
    struct json **ansp) __attribute__((warn_unused_result));

/*
 * One command on its own connection: cmdline without its newline, sent
 * with ctl_send, answered within CTL_ANSWER_TIMEOUT_MS. *ansp as from
 * ctl_parse_answer. The connection is closed before it returns.
 */
int ctl_call(const char *path, const char *cmdline, struct json **ansp)
    __attribute__((warn_unused_result));

#endif
