#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "ctl.h"
#include "json.h"

/* A history answer can be long, but a confused or hostile peer must not
 * make the client allocate without bound. */
#define ANSWER_MAX ((size_t)16 << 20)

static void defang(struct json *j);
static void escape_text(char **sp, bool keep_newline);

int
ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cutoverctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: cutoverctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "Try 'cutoverctl --help' for the commands.\n", stderr);
	return CTL_EXIT_USAGE;
}

int
ctl_connect(const char *path, int *fdp)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return ctl_usage_error("socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "cutoverctl: socket: %s\n", strerror(errno));
		return CTL_EXIT_FAILED;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		fprintf(stderr, "cutoverctl: cannot connect to %s: %s\n", path,
		    strerror(saved));
		return CTL_EXIT_UNREACHABLE;
	}
	*fdp = fd;
	return CTL_EXIT_DONE;
}

/* MSG_NOSIGNAL: a daemon that went away must give exit 3, not SIGPIPE. */
int
ctl_send(int fd, const char *path, const struct jbuf *line)
{
	size_t off = 0;
	ssize_t n;

	while (off < line->len) {
		n = send(fd, line->s + off, line->len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			fprintf(stderr, "cutoverctl: %s: connection lost: %s\n",
			    path, strerror(errno));
			return CTL_EXIT_UNREACHABLE;
		}
		off += (size_t)n;
	}
	return CTL_EXIT_DONE;
}

int
ctl_read_answer(int fd, const char *path, int timeout_ms, char **linep,
    size_t *lenp)
{
	int64_t deadline = timeout_ms < 0 ? 0 : (int64_t)clock_mono_ms() + timeout_ms;
	size_t len = 0, cap = 0, scanned = 0;
	char *buf = NULL, *nl = NULL, *p;
	struct pollfd pfd;
	ssize_t n;
	int rc = CTL_EXIT_UNREACHABLE, wait;

	for (;;) {
		if (len == cap) {
			if (cap >= ANSWER_MAX) {
				fprintf(stderr, "cutoverctl: answer from %s "
				    "longer than %zu bytes\n", path, ANSWER_MAX);
				rc = CTL_EXIT_FAILED;
				goto fail;
			}
			cap = cap ? cap * 2 : 4096;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				fprintf(stderr, "cutoverctl: out of memory\n");
				rc = CTL_EXIT_FAILED;
				goto fail;
			}
			buf = p;
		}
		wait = -1;
		if (timeout_ms >= 0) {
			int64_t left = deadline - (int64_t)clock_mono_ms();

			if (left <= 0) {
				fprintf(stderr, "cutoverctl: %s: no answer "
				    "within %ds\n", path, timeout_ms / 1000);
				goto fail;
			}
			wait = left > INT_MAX ? INT_MAX : (int)left;
		}
		pfd.fd = fd;
		pfd.events = POLLIN;
		if ((n = poll(&pfd, 1, wait)) == -1 && errno != EINTR) {
			fprintf(stderr, "cutoverctl: poll: %s\n", strerror(errno));
			goto fail;
		}
		if (n <= 0)
			continue;
		n = read(fd, buf + len, cap - len);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == -1) {
			fprintf(stderr, "cutoverctl: %s: connection lost: %s\n",
			    path, strerror(errno));
			goto fail;
		}
		if (n == 0) {
			fprintf(stderr, "cutoverctl: %s: connection closed "
			    "without an answer\n", path);
			goto fail;
		}
		len += (size_t)n;
		if ((nl = memchr(buf + scanned, '\n', len - scanned)) != NULL)
			break;
		scanned = len;
	}
	*nl = '\0';
	*linep = buf;
	*lenp = (size_t)(nl - buf);
	return CTL_EXIT_DONE;
fail:
	free(buf);
	return rc;
}

int
ctl_parse_answer(const char *path, const char *line, size_t len,
    struct json **ansp)
{
	struct json *ans;
	const struct json *okv;

	if ((ans = json_parse(line, len)) == NULL ||
	    (okv = json_get(ans, "ok")) == NULL || okv->type != JSON_BOOL) {
		fprintf(stderr, "cutoverctl: malformed answer from %s\n", path);
		json_free(ans);
		return CTL_EXIT_FAILED;
	}
	defang(ans);
	*ansp = ans;
	return CTL_EXIT_DONE;
}

int
ctl_call(const char *path, const char *cmdline, struct json **ansp)
{
	struct jbuf b;
	char *line = NULL;
	size_t len = 0;
	int fd = -1, rc;

	jbuf_init(&b);
	jbuf_raw(&b, cmdline);
	jbuf_raw(&b, "\n");
	if (b.oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		rc = CTL_EXIT_FAILED;
	} else if ((rc = ctl_connect(path, &fd)) == CTL_EXIT_DONE &&
	    (rc = ctl_send(fd, path, &b)) == CTL_EXIT_DONE &&
	    (rc = ctl_read_answer(fd, path, CTL_ANSWER_TIMEOUT_MS, &line,
	    &len)) == CTL_EXIT_DONE)
		rc = ctl_parse_answer(path, line, len, ansp);
	if (fd != -1)
		close(fd);
	free(line);
	jbuf_free(&b);
	return rc;
}

/* The answer's strings end up on a terminal: a backslash becomes "\\" and
 * every control character other than newline (which multi-line errors use;
 * table cells escape it themselves) and DEL becomes "\xHH", so that a hook's
 * output, a daemon bug or a server's odd status line can neither send
 * escape sequences nor pass one character off as another. Keys are escaped
 * the same way, newline included. */
static void
defang(struct json *j)
{
	size_t i;

	if (j->type == JSON_STRING)
		escape_text(&j->str, true);
	for (i = 0; i < j->n; i++) {
		defang(j->items[i]);
		if (j->keys != NULL)
			escape_text(&j->keys[i], false);
	}
}

/* Rewrites *sp escaped as defang says; without memory, each byte that
 * needs escaping becomes '?' instead. */
static void
escape_text(char **sp, bool keep_newline)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *u;
	size_t extra = 0;
	char *out, *o;

	for (u = (unsigned char *)*sp; *u != '\0'; u++)
		if (*u == '\\')
			extra += 1;
		else if ((*u < 0x20 && !(keep_newline && *u == '\n')) || *u == 0x7f)
			extra += 3;
	if (extra == 0)
		return;
	if ((out = malloc((size_t)((char *)u - *sp) + extra + 1)) == NULL) {
		for (u = (unsigned char *)*sp; *u != '\0'; u++)
			if (*u == '\\' || (*u < 0x20 && !(keep_newline && *u == '\n')) ||
			    *u == 0x7f)
				*u = '?';
		return;
	}
	for (o = out, u = (unsigned char *)*sp; *u != '\0'; u++) {
		if (*u == '\\') {
			*o++ = '\\';
			*o++ = '\\';
		} else if ((*u < 0x20 && !(keep_newline && *u == '\n')) || *u == 0x7f) {
			*o++ = '\\';
			*o++ = 'x';
			*o++ = hex[*u >> 4];
			*o++ = hex[*u & 0xf];
		} else {
			*o++ = (char)*u;
		}
	}
	*o = '\0';
	free(*sp);
	*sp = out;
}
