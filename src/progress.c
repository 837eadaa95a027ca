#include "autoconf.h"

#include <sys/ioctl.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "json.h"
#include "progress.h"

static size_t describe(const struct json *st, char *text, size_t size, char *key,
    size_t keysize);
static size_t screen_width(FILE *fp);
static int wait_readable(int fd, int ms);

void
progress_init(struct progress *pg, const char *who, FILE *fp)
{
	memset(pg, 0, sizeof(*pg));
	pg->who = who;
	pg->fp = fp;
	pg->tty = isatty(fileno(fp)) == 1;
}

void
progress_show(struct progress *pg, const struct json *st)
{
	char text[512], key[sizeof(pg->key)];
	size_t len, width;

	len = describe(st, text, sizeof(text), key, sizeof(key));
	if (!pg->tty) {
		if (strcmp(key, pg->key) == 0)
			return;
		snprintf(pg->key, sizeof(pg->key), "%s", key);
		fprintf(pg->fp, "%s: %s\n", pg->who, text);
		fflush(pg->fp);
		return;
	}
	/* A line that wraps could not be redrawn with "\r": cut it to the
	 * terminal's width. */
	width = screen_width(pg->fp);
	if (strlen(pg->who) + 2 + len >= width) {
		size_t keep = width > strlen(pg->who) + 3 ? width - strlen(pg->who) - 3 : 0;

		if (keep < len)
			text[keep] = '\0';
	}
	fprintf(pg->fp, "\r\033[K%s: %s", pg->who, text);
	fflush(pg->fp);
	pg->open = true;
}

void
progress_break(struct progress *pg)
{
	if (pg == NULL || !pg->open)
		return;
	fputc('\n', pg->fp);
	fflush(pg->fp);
	pg->open = false;
}

int
progress_call(struct progress *pg, const char *path, const struct jbuf *line,
    int timeout_ms, char **linep, size_t *lenp)
{
	int64_t start = (int64_t)clock_mono_ms();
	int fd = -1, rc, r, left = -1;

	if ((rc = ctl_connect(path, &fd)) != CTL_EXIT_DONE)
		return rc;
	if ((rc = ctl_send(fd, path, line)) != CTL_EXIT_DONE)
		goto out;
	/* Until the answer starts to arrive; then read it whole. */
	for (;;) {
		int64_t spent = (int64_t)clock_mono_ms() - start;

		if (timeout_ms >= 0) {
			if (spent >= timeout_ms) {
				fprintf(stderr, "cutoverctl: %s: no answer within %ds\n", path,
				    timeout_ms / 1000);
				rc = CTL_EXIT_UNREACHABLE;
				goto out;
			}
			left = timeout_ms - (int)spent;
		}
		r = wait_readable(fd, left >= 0 && left < PROGRESS_POLL_MS ? left :
		    PROGRESS_POLL_MS);
		if (r < 0) {
			fprintf(stderr, "cutoverctl: poll: %s\n", strerror(errno));
			rc = CTL_EXIT_FAILED;
			goto out;
		}
		if (r > 0)
			break;
		if (pg != NULL) {
			struct json *st = NULL;

			/* A failed status is reported by ctl_call; the command
			 * itself still decides the outcome. */
			if (ctl_call(path, "status", &st) == CTL_EXIT_DONE &&
			    json_get_bool(st, "ok", false))
				progress_show(pg, st);
			json_free(st);
		}
	}
	rc = ctl_read_answer(fd, path, timeout_ms < 0 ? -1 : left < 0 ? 0 : left + 1000,
	    linep, lenp);
out:
	progress_break(pg);
	close(fd);
	return rc;
}

/*
 * The progress text of a status answer into text, and into key what must
 * change for a plain line to be printed again. Returns strlen(text).
 */
static size_t
describe(const struct json *st, char *text, size_t size, char *key, size_t keysize)
{
	const char *active = json_get_str(st, "active", "?");
	const char *previous = json_get_str(st, "previous", NULL);
	const char *state = json_get_str(st, "state", "?");
	const char *verdict = json_get_str(st, "verdict", NULL);
	const struct json *guard = json_get(st, "guard");
	const struct json *ramp = json_get(st, "ramp");
	bool switching = json_get_bool(st, "switching", false);
	long long inflight = 0, seen = 0, need = 0;
	bool judging = false;
	size_t len = 0;
	char phase[96];

#define ADD(...)                                                                          \
	do {                                                                                \
		if (len < size)                                                             \
			len += (size_t)snprintf(text + len, size - len, __VA_ARGS__);       \
	} while (0)
	if (switching)
		snprintf(phase, sizeof(phase), "switching (smoke tests, pre_switch hook)");
	else if (ramp != NULL && ramp->type == JSON_OBJECT)
		snprintf(phase, sizeof(phase), "ramping to %s: %lld%%",
		    json_get_str(ramp, "target", "?"),
		    (long long)json_get_num(ramp, "weight_pct", 0));
	else if (strcmp(state, "observing") == 0)
		snprintf(phase, sizeof(phase), "observing %s", active);
	else
		snprintf(phase, sizeof(phase), "%s on %s", state, active);
	ADD("%s", phase);
	if (ramp != NULL && ramp->type == JSON_OBJECT && json_get(ramp, "step_left_s") != NULL)
		ADD(", %llds to the next step", (long long)json_get_num(ramp, "step_left_s", 0));
	else if (!switching && strcmp(state, "observing") == 0)
		ADD(", %llds left", (long long)json_get_num(st, "window_left_s", 0));
	if (guard != NULL && guard->type == JSON_OBJECT) {
		if (!json_get_bool(guard, "enabled", true)) {
			ADD(", auto_rollback off");
		} else {
			seen = (long long)json_get_num(guard, "requests", 0);
			need = (long long)json_get_num(guard, "min_requests", 0);
			judging = seen >= need;
			ADD(", guard saw %lld of %lld requests%s", seen, need,
			    judging ? " (judging)" : "");
		}
	}
	/* The old color still serving requests: what switch --wait waits for. */
	if (previous != NULL && strcmp(previous, active) != 0)
		inflight = (long long)json_get_num(json_get(json_get(st, "pools"), previous),
		    "inflight", 0);
	if (inflight > 0)
		ADD(", %s draining (%lld in flight)", previous, inflight);
	if (verdict != NULL)
		ADD(", verdict: %s", verdict);
#undef ADD
	snprintf(key, keysize, "%s|%d|%d|%s", phase, inflight > 0, judging,
	    verdict != NULL ? verdict : "");
	return len < size ? len : size - 1;
}

/* The terminal's width in columns, 80 when it cannot be told. */
static size_t
screen_width(FILE *fp)
{
	struct winsize ws;

	if (ioctl(fileno(fp), TIOCGWINSZ, &ws) == -1 || ws.ws_col == 0)
		return 80;
	return ws.ws_col;
}

/* 1 when fd has something to read (or was closed), 0 after ms, -1 on error. */
static int
wait_readable(int fd, int ms)
{
	struct pollfd pfd = {fd, POLLIN, 0};
	int n;

	while ((n = poll(&pfd, 1, ms)) == -1 && errno == EINTR)
		;
	return n < 0 ? -1 : n > 0;
}
