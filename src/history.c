#include "autoconf.h"

/*
 * The switch audit log, STATE_FILE.history: one JSON object per line, only
 * ever appended to. Only cutoverd's main thread writes it.
 *
 * Torn writes: a crash (or a full disk) can leave a last line without its
 * '\n'. history_read never returns such a line, and history_append first
 * ends it with a '\n' so the new record stays on a line of its own. A line
 * that is not "{...}" (such a repaired torn record) is skipped and
 * counted by history_read, so readers only ever see whole records.
 *
 * Validity: whatever a reason holds (a hook's Latin-1, a cut character,
 * control characters), the line written is valid UTF-8 JSON on one line:
 * reasons are cut on a character boundary at HISTORY_REASON_MAX bytes and
 * invalid bytes become U+FFFD. When reading, invalid UTF-8 in a line (as
 * older versions wrote a hook's raw bytes) is replaced by U+FFFD too; a
 * line that is then not a JSON object (a hand edit, a repaired torn
 * record) is skipped and counted, never an error for the reader.
 *
 * Links: the file is opened, for appending and for reading, with
 * O_NOFOLLOW (and O_NONBLOCK, so that a FIFO planted in its place cannot
 * stall the main thread): a symbolic link planted as STATE_FILE.history
 * is refused, its target never touched.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "history.h"
#include "json.h"

/* history_read looks at no more than this much of the end of the file. */
#define HISTORY_READ_MAX (4 * 1024 * 1024)

/* A reason longer than this is cut (on a character boundary). */
#define HISTORY_REASON_MAX 1024

static void open_error(const char *path, char *err, size_t errlen);
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
	struct jbuf b;
	struct stat sb;
	char when[40];
	char last;
	ssize_t w;
	int fd = -1;

	jbuf_init(&b);
	if (format_time(e->time_ms, when, sizeof(when)) == -1) {
		snprintf(err, errlen, "%s: time %" PRId64 " out of range", path,
		    e->time_ms);
		goto fail;
	}
	fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY |
	    O_NOFOLLOW | O_NONBLOCK, 0644);
	if (fd == -1) {
		open_error(path, err, errlen);
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
		if (pread(fd, &last, 1, sb.st_size - 1) != 1)
			last = '\n'; /* cannot tell; do not add an empty line */
		if (last != '\n')
			jbuf_raw(&b, "\n");
	}

	jbuf_printf(&b, "{\"time\":\"%s\",\"event\":", when);
	jbuf_str(&b, e->event);
	jbuf_raw(&b, ",\"from\":");
	jbuf_str(&b, e->from);
	jbuf_raw(&b, ",\"to\":");
	jbuf_str(&b, e->to);
	jbuf_raw(&b, ",\"trigger\":");
	jbuf_str(&b, e->trigger);
	jbuf_raw(&b, ",\"reason\":");
	if (e->reason == NULL)
		jbuf_raw(&b, "null");
	else
		jbuf_strn(&b, e->reason, utf8_trim(e->reason,
		    strnlen(e->reason, HISTORY_REASON_MAX)));
	jbuf_printf(&b, ",\"uid\":%ld,\"pid\":%ld,\"generation\":%" PRIu64,
	    e->uid, e->pid, e->generation);
	if (e->node != NULL) {
		jbuf_raw(&b, ",\"node\":");
		jbuf_str(&b, e->node);
	}
	jbuf_raw(&b, "}\n");
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
	jbuf_free(&b);
	return 0;

fail:
	if (fd != -1)
		close(fd);
	jbuf_free(&b);
	return -1;
}

/*
 * Reads at most the last HISTORY_READ_MAX bytes of the file (older records
 * beyond that are not returned), drops a partial first line of that window
 * and a last line without '\n' (torn write), skips and counts every other
 * line that is not a JSON object, and returns the last max of the rest,
 * oldest first. Invalid UTF-8 in a line is replaced by U+FFFD first, so an
 * older version's record with a hook's Latin-1 still shows. With no lines
 * *lines is NULL.
 */
int
history_read(const char *path, size_t max, char ***lines, size_t *n,
    size_t *skipped, char *err, size_t errlen)
{
	struct stat sb;
	char **out = NULL, **grown;
	char *buf = NULL, *p, *end, *nl;
	size_t len = 0, want, cap = 0, i = 0, k;
	off_t start;
	ssize_t r;
	int fd = -1;

	*lines = NULL;
	*n = 0;
	*skipped = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		open_error(path, err, errlen);
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

	for (char *q = p; (nl = memchr(q, '\n', (size_t)(end - q))) != NULL; q = nl + 1) {
		size_t ll = (size_t)(nl - q);
		struct json *j;
		struct jbuf line;

		if (!is_record(q, ll)) {
			(*skipped)++;
			continue;
		}
		jbuf_init(&line);
		jbuf_utf8(&line, q, ll);
		if (line.oom) {
			jbuf_free(&line);
			snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
			goto fail;
		}
		j = json_parse(line.s, line.len);
		if (j == NULL || j->type != JSON_OBJECT) {
			/* NULL is also ENOMEM, rare enough to count as bad. */
			json_free(j);
			jbuf_free(&line);
			(*skipped)++;
			continue;
		}
		json_free(j);
		if (i == cap) {
			k = cap ? cap * 2 : 64;
			if ((grown = realloc(out, k * sizeof(*out))) == NULL) {
				jbuf_free(&line);
				snprintf(err, errlen, "%s: %s", path, strerror(ENOMEM));
				goto fail;
			}
			out = grown;
			cap = k;
		}
		out[i++] = line.s; /* the jbuf's string is the caller's now */
	}

	if (max != 0 && i > max) {
		/* Keep the last max. */
		for (k = 0; k < i - max; k++)
			free(out[k]);
		memmove(out, out + (i - max), max * sizeof(*out));
		i = max;
	}

done:
	free(buf);
	if (i == 0) {
		free(out);
		out = NULL;
	}
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

/* An open(2) failure; ELOOP is O_NOFOLLOW refusing a symbolic link. */
static void
open_error(const char *path, char *err, size_t errlen)
{
	if (errno == ELOOP)
		snprintf(err, errlen, "%s: is a symbolic link; refusing to follow it",
		    path);
	else
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
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
