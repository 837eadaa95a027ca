#include "autoconf.h"

/*
 * The switch audit log, STATE_FILE.history: one JSON object per line, only
 * ever appended to. Only cutoverd's main thread writes it.
 *
 * Torn writes: a crash (or a full disk) can leave a last line without its
 * '\n'. history_read never returns such a line, and history_append first
 * ends it with a '\n' so the new record stays on a line of its own. A line
 * that is not "{...}" (such a repaired torn record) is skipped by
 * history_read, so readers only ever see whole records.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "history.h"

/* history_read looks at no more than this much of the end of the file. */
#define HISTORY_READ_MAX (4 * 1024 * 1024)

struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n);
static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_json_str(struct sbuf *b, const char *s);
static int format_time(int64_t ms, char *out, size_t outlen);
static bool is_record(const char *line, size_t len);

char *
history_path(const char *state_file)
{
	size_t n = strlen(state_file);
	char *p;

	if ((p = malloc(n + sizeof(".history"))) == NULL)
		return NULL;
	memcpy(p, state_file, n);
	memcpy(p + n, ".history", sizeof(".history"));
	return p;
}

/*
 * Appends e as one line with a single write(2) on an O_APPEND descriptor,
 * then fsyncs. If the write comes back short, the partial record is cut off
 * again so that the file stays line aligned.
 */
int
history_append(const char *path, const struct history_entry *e, char *err,
    size_t errlen)
{
	struct sbuf b = {NULL, 0, 0, false};
	struct stat sb;
	char when[40];
	char last;
	ssize_t w;
	int fd = -1;

	if (format_time(e->time_ms, when, sizeof(when)) == -1) {
		snprintf(err, errlen, "%s: time %" PRId64 " out of range", path,
		    e->time_ms);
		goto fail;
	}
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
	if (fd == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &sb) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	}
	/* A torn last line from a crash: end it so ours stays whole. */
	if (sb.st_size > 0) {
		int rfd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (rfd == -1 || pread(rfd, &last, 1, sb.st_size - 1) != 1)
			last = '\n'; /* cannot tell; do not add an empty line */
		if (rfd != -1)
			close(rfd);
		if (last != '\n')
			sb_add(&b, "\n", 1);
	}

	sb_printf(&b, "{\"time\":\"%s\",\"event\":", when);
	sb_json_str(&b, e->event);
	sb_add(&b, ",\"from\":", 8);
	sb_json_str(&b, e->from);
	sb_add(&b, ",\"to\":", 6);
	sb_json_str(&b, e->to);
	sb_add(&b, ",\"trigger\":", 11);
	sb_json_str(&b, e->trigger);
	sb_add(&b, ",\"reason\":", 10);
	sb_json_str(&b, e->reason);
	sb_printf(&b, ",\"uid\":%ld,\"pid\":%ld,\"generation\":%" PRIu64 "}\n",
	    e->uid, e->pid, e->generation);
	if (b.oom) {
		snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto fail;
	}

	do
		w = write(fd, b.s, b.len);
	while (w == -1 && errno == EINTR);
	if (w == -1) {
		snprintf(err, errlen, "%s: write: %s", path, strerror(errno));
		goto fail;
	}
	if ((size_t)w != b.len) {
		snprintf(err, errlen, "%s: short write (%zd of %zu bytes); disk full?",
		    path, w, b.len);
		if (ftruncate(fd, sb.st_size) == -1) {
			/* history_read skips what is left; nothing more to do. */
		}
		goto fail;
	}
	if (fsync(fd) == -1) {
		snprintf(err, errlen, "%s: fsync: %s", path, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		snprintf(err, errlen, "%s: close: %s", path, strerror(errno));
		goto fail;
	}
	free(b.s);
	return 0;

fail:
	if (fd != -1)
		close(fd);
	free(b.s);
	return -1;
}

/*
 * Reads at most the last HISTORY_READ_MAX bytes of the file (older records
 * beyond that are not returned), drops a partial first line of that window,
 * a last line without '\n' (torn write) and any line that is not a whole
 * "{...}" record, and returns the last max of the rest, oldest first. With
 * no lines *lines is NULL.
 */
int
history_read(const char *path, size_t max, char ***lines, size_t *n, char *err,
    size_t errlen)
{
	struct stat sb;
	char **out = NULL;
	char *buf = NULL, *p, *end, *nl;
	size_t len = 0, want, total = 0, skip, i = 0;
	off_t start;
	ssize_t r;
	int fd = -1;

	*lines = NULL;
	*n = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
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
	/*
	 * Start one byte before the window so that a line beginning exactly
	 * at the window's start is recognised as whole.
	 */
	start = sb.st_size > HISTORY_READ_MAX ? sb.st_size - HISTORY_READ_MAX - 1 : 0;
	want = (size_t)(sb.st_size - start);
	if ((buf = malloc(want + 1)) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	while (len < want) {
		r = pread(fd, buf + len, want - len, start + (off_t)len);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break; /* truncated meanwhile: use what there is */
		len += (size_t)r;
	}
	close(fd);
	fd = -1;

	p = buf;
	end = buf + len;
	if (start > 0) {
		/* Everything up to the first '\n' is the tail of an older line. */
		if ((nl = memchr(p, '\n', len)) == NULL)
			goto done;
		p = nl + 1;
	}

	/* Two passes over the buffer: count whole records, then copy the last max. */
	for (char *q = p; (nl = memchr(q, '\n', (size_t)(end - q))) != NULL; q = nl + 1)
		if (is_record(q, (size_t)(nl - q)))
			total++;
	if (total == 0)
		goto done;
	skip = (max != 0 && total > max) ? total - max : 0;
	if ((out = calloc(total - skip, sizeof(*out))) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	for (char *q = p; (nl = memchr(q, '\n', (size_t)(end - q))) != NULL; q = nl + 1) {
		size_t ll = (size_t)(nl - q);

		if (!is_record(q, ll))
			continue;
		if (skip > 0) {
			skip--;
			continue;
		}
		if ((out[i] = malloc(ll + 1)) == NULL) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		memcpy(out[i], q, ll);
		out[i][ll] = '\0';
		i++;
	}

done:
	free(buf);
	*lines = out;
	*n = i;
	return 0;

fail:
	if (fd != -1)
		close(fd);
	history_lines_free(out, i);
	free(buf);
	return -1;
}

void
history_lines_free(char **lines, size_t n)
{
	size_t i;

	if (lines == NULL)
		return;
	for (i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

/* Appends n bytes; on allocation failure sets oom and appends nothing more. */
static void
sb_add(struct sbuf *b, const char *s, size_t n)
{
	size_t cap;
	char *ns;

	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((ns = realloc(b->s, cap)) == NULL) {
			b->oom = true;
			return;
		}
		b->s = ns;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
sb_printf(struct sbuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	/* Only used for short, fixed-shape fields. */
	if (len < 0 || (size_t)len >= sizeof(tmp)) {
		b->oom = true;
		return;
	}
	sb_add(b, tmp, (size_t)len);
}

/*
 * Appends s as a JSON string (null when NULL): '"' and '\\' escaped with a
 * backslash, control characters and DEL as \u00XX. Other bytes, UTF-8
 * included, pass through unchanged.
 */
static void
sb_json_str(struct sbuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u, *run;
	char esc[6];

	if (s == NULL) {
		sb_add(b, "null", 4);
		return;
	}
	sb_add(b, "\"", 1);
	for (run = u = (const unsigned char *)s; *u != '\0'; u++) {
		if (*u != '"' && *u != '\\' && *u >= 0x20 && *u != 0x7f)
			continue;
		sb_add(b, (const char *)run, (size_t)(u - run));
		if (*u == '"' || *u == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*u;
			sb_add(b, esc, 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[*u >> 4];
			esc[5] = hex[*u & 0xf];
			sb_add(b, esc, 6);
		}
		run = u + 1;
	}
	sb_add(b, (const char *)run, (size_t)(u - run));
	sb_add(b, "\"", 1);
}

/* Unix ms -> "2026-11-26T06:30:00.123Z" (UTC). Returns 0, or -1 if out of range. */
static int
format_time(int64_t ms, char *out, size_t outlen)
{
	struct tm tm;
	int64_t secs = ms / 1000, frac = ms % 1000;
	time_t t;

	/* Floor division, so times before 1970 still get 0..999 ms. */
	if (frac < 0) {
		frac += 1000;
		secs--;
	}
	t = (time_t)secs;
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 ||
	    tm.tm_year + 1900 < 0)
		goto fail;
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, (int)frac);
	return 0;

fail:
	return -1;
}

/* A whole record as history_append writes it: "{" ... "}". */
static bool
is_record(const char *line, size_t len)
{
	return len >= 2 && line[0] == '{' && line[len - 1] == '}';
}
