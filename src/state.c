#include "autoconf.h"

/*
 * The state file. Its format is line based, versioned and strict, so that a
 * restart either gets exactly what was written or refuses to start:
 *
 *	cutover-state 1
 *	active green
 *	previous blue
 *	generation 7
 *	switched_at 1795680000123
 *	window_end 1795680300123
 *	ramp_target green
 *	ramp_steps 1,10,50
 *	ramp_step 1
 *	ramp_step_ms 30000
 *	ramp_node door-1
 *
 * The first line is the magic and version. Then one "key value" per line,
 * separated by exactly one space, each line ended by '\n' (the last one too),
 * in any order. active and generation are required; previous, switched_at
 * and window_end are optional (absent means "none" / 0). The four ramp_
 * keys describe a ramp in progress: all four or none; ramp_steps are
 * percentages, rising, each 1..99, at most RAMP_MAX_STEPS; ramp_step is an
 * index into them. ramp_node, optional and only with a ramp, names the fleet
 * node that drives its steps (1 to 64 letters, digits, '-', '_' or '.');
 * absent means a ramp of this node alone. Numbers are unsigned
 * decimal without sign or leading zeros; times are Unix milliseconds.
 * Unknown or duplicate keys, blank lines, bytes after a value, NUL bytes, an
 * empty file or one larger than STATE_MAX_SIZE are corrupt. state_save writes
 * the keys in the order above and omits the optional ones when unset.
 *
 * Only the main thread reads or writes the state file; two processes writing
 * the same path at once are not supported (cutoverd is the only writer).
 *
 * Links: the state file is read with O_NOFOLLOW, and the temporary file is
 * created relative to the directory's descriptor with O_CREAT | O_EXCL |
 * O_NOFOLLOW after removing a stale one, so a symbolic link planted as
 * STATE_FILE or STATE_FILE.tmp is refused or replaced, its target never
 * written. state_check_dir refuses a directory others could plant links
 * in to begin with.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "state.h"

#define STATE_MAGIC "cutover-state"
#define STATE_VERSION 1
#define STATE_MAX_SIZE 4096

enum state_key {
	SK_ACTIVE,
	SK_PREVIOUS,
	SK_GENERATION,
	SK_SWITCHED_AT,
	SK_WINDOW_END,
	SK_RAMP_TARGET,
	SK_RAMP_STEPS,
	SK_RAMP_STEP,
	SK_RAMP_STEP_MS,
	SK_RAMP_NODE,
	SK_COUNT
};

static const char *const state_keys[SK_COUNT] = {
	"active", "previous", "generation", "switched_at", "window_end",
	"ramp_target", "ramp_steps", "ramp_step", "ramp_step_ms", "ramp_node"
};

#define NODE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."

/* A fleet node's name as fleet.node allows it. */
static bool
node_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && n < STATE_NODE_MAX && strspn(s, NODE_CHARS) == n;
}

static int parse_steps(const char *v, unsigned *steps, unsigned *n);

static int parse_u64(const char *s, uint64_t *out);
static void printable(const char *s, char *out, size_t outlen);
static int parse_line(char *line, bool seen[SK_COUNT], struct state *st,
    char *why, size_t whylen);
static int parse_state(char *buf, size_t len, struct state *st, char *why,
    size_t whylen);
static int write_all(int fd, const char *buf, size_t len);
static char *parent_dir(const char *path);

int
state_format(const struct state *st, char *buf, size_t size)
{
	int len;

	if ((unsigned)st->active >= COLOR_COUNT ||
	    (st->has_previous && (unsigned)st->previous >= COLOR_COUNT) ||
	    st->switched_at_ms < 0 || st->window_end_ms < 0 || size < 512 ||
	    (st->ramping && ((unsigned)st->ramp_target >= COLOR_COUNT || st->ramp_nsteps == 0 ||
	        st->ramp_nsteps > RAMP_MAX_STEPS || st->ramp_step >= st->ramp_nsteps ||
	        (memchr(st->ramp_node, '\0', sizeof(st->ramp_node)) == NULL ||
	            (st->ramp_node[0] != '\0' && !node_name_ok(st->ramp_node))))))
		return -1;
	len = snprintf(buf, size, "%s %d\nactive %s\n", STATE_MAGIC,
	    STATE_VERSION, color_name(st->active));
	if (st->has_previous)
		len += snprintf(buf + len, size - (size_t)len,
		    "previous %s\n", color_name(st->previous));
	len += snprintf(buf + len, size - (size_t)len,
	    "generation %" PRIu64 "\n", st->generation);
	if (st->switched_at_ms != 0)
		len += snprintf(buf + len, size - (size_t)len,
		    "switched_at %" PRId64 "\n", st->switched_at_ms);
	if (st->window_end_ms != 0)
		len += snprintf(buf + len, size - (size_t)len,
		    "window_end %" PRId64 "\n", st->window_end_ms);
	if (st->ramping) {
		len += snprintf(buf + len, size - (size_t)len, "ramp_target %s\nramp_steps ",
		    color_name(st->ramp_target));
		for (unsigned i = 0; i < st->ramp_nsteps; i++)
			len += snprintf(buf + len, size - (size_t)len, "%s%u", i ? "," : "",
			    st->ramp_steps[i]);
		len += snprintf(buf + len, size - (size_t)len,
		    "\nramp_step %u\nramp_step_ms %" PRIu64 "\n", st->ramp_step, st->ramp_step_ms);
		if (st->ramp_node[0] != '\0')
			len += snprintf(buf + len, size - (size_t)len, "ramp_node %s\n", st->ramp_node);
	}
	return len < (int)size ? len : -1;
}

int
state_parse(const char *text, size_t len, struct state *st, char *why, size_t whylen)
{
	char buf[STATE_MAX_SIZE + 1];
	struct state tmp;

	if (len > STATE_MAX_SIZE) {
		snprintf(why, whylen, "larger than %d bytes", STATE_MAX_SIZE);
		return -1;
	}
	memcpy(buf, text, len);
	if (parse_state(buf, len, &tmp, why, whylen) == -1)
		return -1;
	*st = tmp;
	return 0;
}

/*
 * Reads path. Returns 0 when loaded, 1 when it does not exist, -1 otherwise
 * with "PATH: reason" in err. *st is written only on success.
 */
int
state_load(const char *path, struct state *st, char *err, size_t errlen)
{
	char buf[STATE_MAX_SIZE + 1];
	char why[256];
	struct state tmp;
	struct stat sb;
	size_t len = 0;
	ssize_t r;
	int fd = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 1;
		if (errno == ELOOP)
			snprintf(err, errlen, "%s: is a symbolic link; refusing to "
			    "follow it", path);
		else
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	/* Read one byte more than allowed to tell "full" from "too large". */
	while (len < sizeof(buf)) {
		r = read(fd, buf + len, sizeof(buf) - len);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	fd = -1;

	if (len > STATE_MAX_SIZE) {
		snprintf(err, errlen, "%s: corrupt state file: larger than %d bytes",
		    path, STATE_MAX_SIZE);
		goto fail;
	}
	if (parse_state(buf, len, &tmp, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: corrupt state file: %s", path, why);
		goto fail;
	}
	*st = tmp;
	return 0;

fail:
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * Writes st to path.tmp, fsyncs it, renames it over path and fsyncs the
 * directory. The directory is opened before anything is written, so the only
 * failure left after the rename is the directory fsync itself; in that case
 * path already holds the new contents but may not survive a power loss, and
 * -1 is returned so the caller does not acknowledge the switch. Any earlier
 * failure unlinks path.tmp and leaves path as it was.
 */
int
state_save(const char *path, const struct state *st, char *err, size_t errlen)
{
	char buf[512];
	char *tmp = NULL, *dir = NULL;
	const char *base;
	size_t blen;
	int len, fd = -1, dirfd = -1;
	bool created = false;

	if ((len = state_format(st, buf, sizeof(buf))) < 0) {
		snprintf(err, errlen, "%s: refusing to write an invalid state", path);
		goto fail;
	}

	if ((dir = parent_dir(path)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	base = strrchr(path, '/') != NULL ? strrchr(path, '/') + 1 : path;
	blen = strlen(base);
	if (blen == 0) {
		snprintf(err, errlen, "%s: not a file name", path);
		goto fail;
	}
	if ((tmp = malloc(blen + sizeof(".tmp"))) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	memcpy(tmp, base, blen);
	memcpy(tmp + blen, ".tmp", sizeof(".tmp"));

	/* Everything below is relative to the directory opened here. */
	if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: open directory: %s", path, strerror(errno));
		goto fail;
	}
	/* A stale temporary (or something planted there) goes first: the
	 * unlink removes a link, never its target. */
	if (unlinkat(dirfd, tmp, 0) == -1 && errno != ENOENT) {
		snprintf(err, errlen, "%s: remove stale %s: %s", path, tmp,
		    strerror(errno));
		goto fail;
	}
	fd = openat(dirfd, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOCTTY |
	    O_NOFOLLOW, 0644);
	if (fd == -1) {
		snprintf(err, errlen, "%s: create %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	created = true;
	if (write_all(fd, buf, (size_t)len) == -1) {
		snprintf(err, errlen, "%s: write %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) == -1) {
		snprintf(err, errlen, "%s: fsync %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	/* close(2) can report a deferred write error (NFS); never retry it. */
	if (close(fd) == -1) {
		fd = -1;
		snprintf(err, errlen, "%s: close %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, base) == -1) {
		snprintf(err, errlen, "%s: rename %s: %s", path, tmp, strerror(errno));
		goto fail;
	}
	created = false;
	/*
	 * Some file systems cannot fsync a directory and say EINVAL; the rename
	 * is then as durable as they can make it.
	 */
	if (fsync(dirfd) == -1 && errno != EINVAL) {
		snprintf(err, errlen, "%s: fsync directory: %s", path, strerror(errno));
		goto fail;
	}
	close(dirfd);
	free(tmp);
	free(dir);
	return 0;

fail:
	if (fd != -1)
		close(fd);
	if (created)
		unlinkat(dirfd, tmp, 0);
	if (dirfd != -1)
		close(dirfd);
	free(tmp);
	free(dir);
	return -1;
}

int
state_check_dir(const char *path, char *err, size_t errlen)
{
	struct stat sb;
	char *dir;
	int rc = -1;

	if ((dir = parent_dir(path)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* The directory itself may be a link an administrator made. */
	if (stat(dir, &sb) == -1) {
		snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
		goto out;
	}
	if (!S_ISDIR(sb.st_mode)) {
		snprintf(err, errlen, "state directory %s: not a directory", dir);
		goto out;
	}
	if (sb.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(err, errlen, "state directory %s is %s-writable (mode %04o): "
		    "others could plant links there; make it private (chmod go-w %s)",
		    dir, (sb.st_mode & S_IWOTH) ? "world" : "group",
		    (unsigned)(sb.st_mode & 07777), dir);
		goto out;
	}
	if (sb.st_uid != 0 && sb.st_uid != geteuid()) {
		snprintf(err, errlen, "state directory %s belongs to uid %ld, neither "
		    "root nor cutoverd's uid %ld", dir, (long)sb.st_uid, (long)geteuid());
		goto out;
	}
	rc = 0;
out:
	free(dir);
	return rc;
}

/* Parses an unsigned decimal without sign, spaces or leading zeros. */
static int
parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned d;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/*
 * Copies s into out for an error message: bytes outside printable ASCII
 * become '?' and long values are cut with "...", so a corrupt file cannot
 * put escape sequences or megabytes into the log.
 */
static void
printable(const char *s, char *out, size_t outlen)
{
	size_t i, max = outlen - 1;

	for (i = 0; s[i] != '\0' && i < max; i++)
		out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	out[i] = '\0';
	if (s[i] != '\0' && max >= 3)
		memcpy(out + max - 3, "...", 4);
}

/*
 * Parses one "key value" line (without its '\n') into st. Returns 0, or -1
 * with the reason (without line number) in why.
 */
static int
parse_line(char *line, bool seen[SK_COUNT], struct state *st, char *why,
    size_t whylen)
{
	char shown[48];
	const char *value;
	char *sp;
	uint64_t u;
	enum color c;
	int k;

	if (*line == '\0') {
		snprintf(why, whylen, "empty line");
		goto fail;
	}
	if ((sp = strchr(line, ' ')) == NULL) {
		printable(line, shown, sizeof(shown));
		snprintf(why, whylen, "expected 'key value', got '%s'", shown);
		goto fail;
	}
	*sp = '\0';
	value = sp + 1;
	for (k = 0; k < SK_COUNT; k++)
		if (strcmp(line, state_keys[k]) == 0)
			break;
	if (k == SK_COUNT) {
		printable(line, shown, sizeof(shown));
		snprintf(why, whylen, "unknown key '%s'", shown);
		goto fail;
	}
	if (seen[k]) {
		snprintf(why, whylen, "duplicate key '%s'", state_keys[k]);
		goto fail;
	}
	seen[k] = true;

	switch ((enum state_key)k) {
	case SK_ACTIVE:
	case SK_PREVIOUS:
	case SK_RAMP_TARGET:
		if (color_parse(value, &c) == -1) {
			printable(value, shown, sizeof(shown));
			snprintf(why, whylen, "unknown color '%s'", shown);
			goto fail;
		}
		if (k == SK_ACTIVE) {
			st->active = c;
		} else if (k == SK_RAMP_TARGET) {
			st->ramp_target = c;
		} else {
			st->has_previous = true;
			st->previous = c;
		}
		break;
	case SK_GENERATION:
	case SK_SWITCHED_AT:
	case SK_WINDOW_END:
		if (parse_u64(value, &u) == -1 ||
		    (k != SK_GENERATION && u > INT64_MAX)) {
			printable(value, shown, sizeof(shown));
			snprintf(why, whylen, "bad %s '%s'", state_keys[k], shown);
			goto fail;
		}
		if (k == SK_GENERATION)
			st->generation = u;
		else if (k == SK_SWITCHED_AT)
			st->switched_at_ms = (int64_t)u;
		else
			st->window_end_ms = (int64_t)u;
		break;
	case SK_RAMP_STEPS:
		if (parse_steps(value, st->ramp_steps, &st->ramp_nsteps) == -1) {
			printable(value, shown, sizeof(shown));
			snprintf(why, whylen, "bad ramp_steps '%s' (rising percentages 1..99, at most %d)",
			    shown, RAMP_MAX_STEPS);
			goto fail;
		}
		break;
	case SK_RAMP_STEP:
	case SK_RAMP_STEP_MS:
		if (parse_u64(value, &u) == -1 || (k == SK_RAMP_STEP && u >= RAMP_MAX_STEPS) ||
		    (k == SK_RAMP_STEP_MS && u == 0)) {
			printable(value, shown, sizeof(shown));
			snprintf(why, whylen, "bad %s '%s'", state_keys[k], shown);
			goto fail;
		}
		if (k == SK_RAMP_STEP)
			st->ramp_step = (unsigned)u;
		else
			st->ramp_step_ms = u;
		break;
	case SK_RAMP_NODE:
		if (!node_name_ok(value)) {
			printable(value, shown, sizeof(shown));
			snprintf(why, whylen, "bad ramp_node '%s' (1 to %d letters, digits, '-', '_' or '.')",
			    shown, STATE_NODE_MAX - 1);
			goto fail;
		}
		snprintf(st->ramp_node, sizeof(st->ramp_node), "%s", value);
		break;
	case SK_COUNT:
		break;
	}
	return 0;

fail:
	return -1;
}

/*
 * Parses the whole file (buf, len; buf has room for one more byte). Returns
 * 0 with *st filled, or -1 with the reason in why.
 */
static int
parse_state(char *buf, size_t len, struct state *st, char *why, size_t whylen)
{
	bool seen[SK_COUNT] = {false};
	char reason[200];
	char shown[48];
	char *line, *nl, *end = buf + len;
	unsigned lineno = 0;
	size_t magic_len = strlen(STATE_MAGIC " ");

	memset(st, 0, sizeof(*st));
	if (len == 0) {
		snprintf(why, whylen, "empty file");
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		snprintf(why, whylen, "contains a NUL byte");
		goto fail;
	}
	buf[len] = '\0';
	for (line = buf; line < end; line = nl + 1) {
		lineno++;
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL) {
			/* A writer always ends with '\n': this is a torn file. */
			snprintf(why, whylen, "line %u: no newline at end of file "
			    "(truncated?)", lineno);
			goto fail;
		}
		*nl = '\0';
		if (lineno == 1) {
			if (strncmp(line, STATE_MAGIC " ", magic_len) != 0) {
				snprintf(why, whylen, "line 1: not a cutover state "
				    "file (expected '%s %d')", STATE_MAGIC,
				    STATE_VERSION);
				goto fail;
			}
			if (strcmp(line + magic_len, "1") != 0) {
				printable(line + magic_len, shown, sizeof(shown));
				snprintf(why, whylen, "line 1: unsupported version "
				    "'%s' (this cutoverd reads version %d)", shown,
				    STATE_VERSION);
				goto fail;
			}
			continue;
		}
		if (parse_line(line, seen, st, reason, sizeof(reason)) == -1) {
			snprintf(why, whylen, "line %u: %s", lineno, reason);
			goto fail;
		}
	}
	if (!seen[SK_ACTIVE]) {
		snprintf(why, whylen, "no 'active' line");
		goto fail;
	}
	if (!seen[SK_GENERATION]) {
		snprintf(why, whylen, "no 'generation' line");
		goto fail;
	}
	st->ramping = seen[SK_RAMP_TARGET];
	if (seen[SK_RAMP_STEPS] != st->ramping || seen[SK_RAMP_STEP] != st->ramping ||
	    seen[SK_RAMP_STEP_MS] != st->ramping) {
		snprintf(why, whylen, "a ramp needs all of ramp_target, ramp_steps, ramp_step, ramp_step_ms");
		goto fail;
	}
	if (seen[SK_RAMP_NODE] && !st->ramping) {
		snprintf(why, whylen, "ramp_node without a ramp");
		goto fail;
	}
	if (st->ramping && st->ramp_step >= st->ramp_nsteps) {
		snprintf(why, whylen, "ramp_step %u is past the %u steps", st->ramp_step, st->ramp_nsteps);
		goto fail;
	}
	if (st->ramping && st->ramp_target == st->active) {
		snprintf(why, whylen, "ramp_target is the active color");
		goto fail;
	}
	return 0;

fail:
	return -1;
}

/* "1,10,50": rising percentages, each 1..99, 1..RAMP_MAX_STEPS of them. */
static int
parse_steps(const char *v, unsigned *steps, unsigned *n)
{
	char num[8];
	const char *comma;
	size_t len;
	uint64_t u;

	*n = 0;
	for (;;) {
		comma = strchr(v, ',');
		len = comma != NULL ? (size_t)(comma - v) : strlen(v);
		if (len == 0 || len >= sizeof(num) || *n == RAMP_MAX_STEPS)
			return -1;
		memcpy(num, v, len);
		num[len] = '\0';
		if (parse_u64(num, &u) == -1 || u < 1 || u > 99 || (*n > 0 && u <= steps[*n - 1]))
			return -1;
		steps[(*n)++] = (unsigned)u;
		if (comma == NULL)
			return 0;
		v = comma + 1;
	}
}

/* Writes all of buf, across short writes and EINTR. 0, or -1 with errno. */
static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, buf, len);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		if (w == 0) {
			errno = EIO;
			goto fail;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;

fail:
	return -1;
}

/* The directory holding path, malloc'd ("." for a bare name), or NULL/errno. */
static char *
parent_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	size_t n;
	char *dir;

	if (slash == NULL)
		return strdup(".");
	n = slash == path ? 1 : (size_t)(slash - path);
	if ((dir = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return dir;
}
