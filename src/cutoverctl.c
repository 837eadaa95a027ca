#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "duration.h"
#include "json.h"

/*
 * cutoverctl: the operator's client for cutoverd's control socket.
 *
 * It checks a command line locally (so that a typo never reaches the
 * daemon), sends it as one line, reads one line of JSON back and turns it
 * into text or, with --json, prints it as is. Exit status: 0 done, 1 refused
 * or failed, 2 usage error, 3 daemon unreachable.
 *
 * deploy is the one command the client carries out itself: it runs the
 * operator's command, then drives the daemon with status and switch and
 * follows the safety window (run_deploy). The daemon never runs CMD.
 */

#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif
#define DEFAULT_SOCKET RUNSTATEDIR "/cutover/control.sock"

#define EXIT_DONE 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3

/* How long to wait for an answer; `switch --wait` waits for as long as the
 * drain takes, which the daemon bounds with switch.drain_timeout. */
#define ANSWER_TIMEOUT_MS 60000
/* A history answer can be long, but a confused or hostile peer must not
 * make the client allocate without bound. */
#define ANSWER_MAX ((size_t)16 << 20)

#define TABLE_MAX_COLS 8

/* deploy: how often to ask for status while waiting for the idle color to
 * become healthy and while following the safety window, and how long to
 * wait by default. */
#define DEPLOY_HEALTH_POLL_MS 250
#define DEPLOY_WINDOW_POLL_MS 500
#define DEPLOY_DEFAULT_TIMEOUT "10m"

enum arg_kind {
	ARG_NONE,       /* takes no positional argument */
	ARG_COLOR,      /* blue or green */
	ARG_COUNT,      /* a positive integer */
};

enum {
	F_FORCE = 1u << 0,
	F_IF_GEN = 1u << 1,
	F_DRY_RUN = 1u << 2,
	F_WAIT = 1u << 3,
	F_RUN = 1u << 4,
	F_TIMEOUT = 1u << 5,
};

enum flag_value {
	FV_NONE,        /* a switch, no value */
	FV_NUMBER,      /* a generation number, sent to the daemon */
	FV_COMMAND,     /* a shell command line (may hold blanks), kept local */
	FV_DURATION,    /* "30s", "10m": kept local */
};

struct flag {
	const char *name;
	unsigned bit;
	enum flag_value value;
	const char *metavar;    /* the value's name in --help, or NULL */
	const char *help;
};

struct request;

struct command {
	const char *name;
	int min_args, max_args;
	enum arg_kind arg;
	unsigned flags;         /* F_* the command accepts */
	unsigned required;      /* F_* the command cannot do without */
	/* Prints an ok:true answer on stdout. */
	void (*format)(const struct request *, const struct json *);
	/* Prints an ok:false answer: the reason on stderr and, for some
	 * commands, the details that came with it; NULL: the reason only. */
	void (*refused)(const struct request *, const struct json *);
	/* Commands the client carries out itself (deploy) have run instead
	 * of a wire form; it returns the exit status. */
	int (*run)(const struct request *, const char *path);
	const char *help;
};

/* One checked command line, ready to send. */
struct request {
	const struct command *cmd;
	const char *arg;        /* the positional argument, or NULL */
	unsigned flags;
	bool json;
	const char *run_cmd;    /* --run CMD */
	uint64_t timeout_ms;    /* --timeout T */
	struct jbuf line;       /* the wire form, newline included */
};

struct table {
	size_t ncols, nrows;
	char **cells;           /* nrows * ncols, each malloc'd */
	size_t width[TABLE_MAX_COLS];
	bool oom;
};

static void usage(FILE *fp);
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const struct command *find_command(const char *name);
static const struct flag *find_flag(const char *word, size_t len);
static bool word_ok(const char *w);
static bool number_ok(const char *s, bool positive);
static bool color_ok(const char *s);
static int parse_request(struct request *req, int argc, char **argv);
static int connect_socket(const char *path, int *fdp);
static int send_line(int fd, const char *path, const struct jbuf *line);
static int read_answer(int fd, const char *path, int timeout_ms,
    char **linep, size_t *lenp);
static int parse_answer(const char *path, const char *line, size_t len,
    struct json **ansp);
static int call(const char *path, const char *cmdline, struct json **ansp);
static int64_t now_ms(void);
static void defang(struct json *j);
static const char *num_text(const struct json *obj, const char *key,
    char *buf, size_t size);
static void table_init(struct table *t, size_t ncols);
static void table_add(struct table *t, const char *const *row);
static void table_print(const struct table *t, FILE *fp);
static void table_free(struct table *t);
static void fmt_status(const struct request *req, const struct json *ans);
static void fmt_switch(const struct request *req, const struct json *ans);
static void fmt_health(const struct request *req, const struct json *ans);
static void fmt_history(const struct request *req, const struct json *ans);
static void fmt_ok(const struct request *req, const struct json *ans);
static void fmt_smoke(const struct request *req, const struct json *ans);
static void fmt_commit(const struct request *req, const struct json *ans);
static void refused_smoke(const struct request *req, const struct json *ans);
static void refused_reload(const struct request *req, const struct json *ans);
static int run_deploy(const struct request *req, const char *path);

static const struct flag flags[] = {
	{"--force", F_FORCE, FV_NONE, NULL,
	    "skip the health and smoke-test checks"},
	{"--if-gen", F_IF_GEN, FV_NUMBER, "N",
	    "refuse unless the switch generation is N"},
	{"--dry-run", F_DRY_RUN, FV_NONE, NULL,
	    "run every check, change nothing"},
	{"--wait", F_WAIT, FV_NONE, NULL,
	    "return once the old color has drained"},
	{"--run", F_RUN, FV_COMMAND, "CMD",
	    "install the release (sh -c CMD, CUTOVER_TARGET=idle color)"},
	{"--timeout", F_TIMEOUT, FV_DURATION, "T",
	    "give up waiting after T (each wait; default " DEPLOY_DEFAULT_TIMEOUT ")"},
};

/* The commands the client knows; all but deploy are sent to the daemon. */
static const struct command commands[] = {
	{"status", 0, 0, ARG_NONE, 0, 0, fmt_status, NULL, NULL,
	    "active and previous color, state, verdict, pools"},
	{"switch", 1, 1, ARG_COLOR, F_FORCE | F_IF_GEN | F_DRY_RUN | F_WAIT, 0,
	    fmt_switch, NULL, NULL, "send new requests to that color"},
	{"rollback", 0, 0, ARG_NONE, F_FORCE | F_IF_GEN, 0, fmt_switch, NULL,
	    NULL, "switch back to the previous color"},
	{"health", 0, 1, ARG_COLOR, 0, 0, fmt_health, NULL, NULL,
	    "each server's state, last check and latency"},
	{"history", 0, 1, ARG_COUNT, 0, 0, fmt_history, NULL, NULL,
	    "the switch audit log (the last N entries)"},
	{"smoke", 1, 1, ARG_COLOR, 0, 0, fmt_smoke, refused_smoke, NULL,
	    "run the smoke tests against that color now"},
	{"commit", 0, 0, ARG_NONE, 0, 0, fmt_commit, NULL, NULL,
	    "end the safety window now"},
	{"reload", 0, 0, ARG_NONE, 0, 0, fmt_ok, refused_reload, NULL,
	    "reload the configuration (like SIGHUP)"},
	{"deploy", 0, 0, ARG_NONE, F_RUN | F_TIMEOUT, F_RUN, NULL, NULL,
	    run_deploy, "install on the idle color, switch, follow the window"},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
usage(FILE *fp)
{
	size_t i, k;

	fprintf(fp,
	    "usage: cutoverctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "Drives cutoverd over its control socket.\n"
	    "\n"
	    "  -s, --socket SOCKET  control socket (default $CUTOVER_SOCKET, else\n"
	    "                       %s)\n"
	    "  --json               print the daemon's JSON answer as is\n"
	    "  -V, --version        print the version and exit\n"
	    "  -h, --help           print this help and exit\n"
	    "\n"
	    "Commands:\n", DEFAULT_SOCKET);
	for (i = 0; i < NELEM(commands); i++) {
		const struct command *c = &commands[i];
		const char *arg = c->arg == ARG_COLOR ? "blue|green" :
		    c->arg == ARG_COUNT ? "N" : NULL;
		char syn[128];

		if (arg == NULL)
			snprintf(syn, sizeof(syn), "%s", c->name);
		else
			snprintf(syn, sizeof(syn), c->min_args > 0 ? "%s %s" :
			    "%s [%s]", c->name, arg);
		for (k = 0; k < NELEM(flags); k++)
			if (c->required & flags[k].bit)
				snprintf(syn + strlen(syn), sizeof(syn) -
				    strlen(syn), " %s %s", flags[k].name,
				    flags[k].metavar);
		fprintf(fp, "  %-24s %s\n", syn, c->help);
		for (k = 0; k < NELEM(flags); k++) {
			if (!(c->flags & flags[k].bit))
				continue;
			snprintf(syn, sizeof(syn), "%s%s%s", flags[k].name,
			    flags[k].metavar != NULL ? " " : "",
			    flags[k].metavar != NULL ? flags[k].metavar : "");
			fprintf(fp, "      %-20s %s\n", syn, flags[k].help);
		}
	}
	fprintf(fp,
	    "\n"
	    "Exit status: 0 done, 1 refused or failed (reason on stderr),\n"
	    "2 usage error, 3 daemon unreachable.\n");
}

static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cutoverctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: cutoverctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
	    "Try 'cutoverctl --help' for the commands.\n", stderr);
	return EXIT_USAGE;
}

static const struct command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NELEM(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

/* Looks a flag up by the first len bytes of word (len stops before an
 * "=value" part). */
static const struct flag *
find_flag(const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < NELEM(flags); i++)
		if (strlen(flags[i].name) == len &&
		    strncmp(flags[i].name, word, len) == 0)
			return &flags[i];
	return NULL;
}

/* The wire protocol separates words with single spaces and ends a command
 * with a newline, so a word must be non-empty and free of both; other
 * control characters are refused too, as nothing legitimate holds them. */
static bool
word_ok(const char *w)
{
	if (*w == '\0')
		return false;
	for (; *w != '\0'; w++)
		if ((unsigned char)*w <= 0x20 || *w == 0x7f)
			return false;
	return true;
}

/* Decimal digits only (no sign, no blanks, which strtoull would allow),
 * fitting in 63 bits so that every daemon-side integer type holds it. */
static bool
number_ok(const char *s, bool positive)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0' || errno == ERANGE || v > (unsigned long long)INT64_MAX)
		return false;
	return !positive || v > 0;
}

static bool
color_ok(const char *s)
{
	return strcmp(s, "blue") == 0 || strcmp(s, "green") == 0;
}

/* Checks argv (the command and its words, global options already consumed)
 * and builds req->line: the command, its positional argument, then its
 * flags in the order given, each word separated by one space. A command the
 * client carries out itself gets no line; its flags' values (--run CMD, which
 * may hold blanks, and --timeout T) are kept in req. Returns EXIT_DONE, or
 * EXIT_USAGE after printing why. */
static int
parse_request(struct request *req, int argc, char **argv)
{
	const char **flagw = NULL;
	size_t nflagw = 0, i;
	int nargs = 0, a, rc = EXIT_USAGE;

	if (!word_ok(argv[0]))
		return usage_error("argument 1 is empty or holds whitespace or "
		    "a control character");
	if ((req->cmd = find_command(argv[0])) == NULL)
		return usage_error("unknown command '%s'", argv[0]);
	if ((flagw = calloc((size_t)argc * 2, sizeof(*flagw))) == NULL) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return EXIT_FAILED;
	}
	for (a = 1; a < argc; a++) {
		const char *w = argv[a], *eq, *value = NULL;
		const struct flag *f;

		eq = w[0] == '-' ? strchr(w, '=') : NULL;
		f = w[0] == '-' ? find_flag(w, eq != NULL ? (size_t)(eq - w) :
		    strlen(w)) : NULL;
		/* Only a command line to run may hold blanks: it is never
		 * sent over the wire. */
		if (!word_ok(eq != NULL && f != NULL && f->value == FV_COMMAND ?
		    "-" : w)) {
			usage_error("argument %d is empty or holds whitespace or "
			    "a control character", a + 1);
			goto out;
		}
		/* --json may follow the command too, as in "status --json";
		 * it concerns the client only and is never sent. */
		if (strcmp(w, "--json") == 0) {
			req->json = true;
			continue;
		}
		if (w[0] != '-') {
			if (++nargs > req->cmd->max_args) {
				usage_error("%s: too many arguments",
				    req->cmd->name);
				goto out;
			}
			if (req->cmd->arg == ARG_COLOR && !color_ok(w)) {
				usage_error("%s: '%s' is not a color (blue or "
				    "green)", req->cmd->name, w);
				goto out;
			}
			if (req->cmd->arg == ARG_COUNT && !number_ok(w, true)) {
				usage_error("%s: '%s' is not a positive number",
				    req->cmd->name, w);
				goto out;
			}
			req->arg = w;
			continue;
		}
		if (f == NULL || !(req->cmd->flags & f->bit)) {
			usage_error("%s: unknown option '%s'", req->cmd->name, w);
			goto out;
		}
		if (req->flags & f->bit) {
			usage_error("%s: %s given twice", req->cmd->name, f->name);
			goto out;
		}
		req->flags |= f->bit;
		if (f->value == FV_NONE) {
			if (eq != NULL) {
				usage_error("%s: %s takes no value",
				    req->cmd->name, f->name);
				goto out;
			}
			flagw[nflagw++] = f->name;
			continue;
		}
		if (eq != NULL)
			value = eq + 1;
		else if (a + 1 < argc)
			value = argv[++a];
		switch (f->value) {
		case FV_NUMBER:
			if (value == NULL || !number_ok(value, false)) {
				usage_error("%s: %s needs a generation number",
				    req->cmd->name, f->name);
				goto out;
			}
			flagw[nflagw++] = f->name;
			flagw[nflagw++] = value;
			break;
		case FV_COMMAND:
			if (value == NULL || value[strspn(value, " \t\n")] ==
			    '\0') {
				usage_error("%s: %s needs a command", req->cmd->name,
				    f->name);
				goto out;
			}
			req->run_cmd = value;
			break;
		case FV_DURATION:
			if (value == NULL || duration_parse(value,
			    &req->timeout_ms) < 0 || req->timeout_ms == 0) {
				usage_error("%s: %s needs a duration such as "
				    "\"90s\" or \"10m\"", req->cmd->name, f->name);
				goto out;
			}
			break;
		case FV_NONE:
			break;
		}
	}
	if (nargs < req->cmd->min_args) {
		usage_error("%s: missing argument (%s)", req->cmd->name,
		    req->cmd->arg == ARG_COLOR ? "blue or green" : "a number");
		goto out;
	}
	for (i = 0; i < NELEM(flags); i++)
		if ((req->cmd->required & flags[i].bit) &&
		    !(req->flags & flags[i].bit)) {
			usage_error("%s: %s %s is required", req->cmd->name,
			    flags[i].name, flags[i].metavar);
			goto out;
		}
	if (req->cmd->run != NULL) {
		/* Carried out here, printing text as it goes. */
		if (req->json) {
			usage_error("%s: --json is not supported: %s prints its "
			    "progress as text", req->cmd->name, req->cmd->name);
			goto out;
		}
		rc = EXIT_DONE;
		goto out;
	}
	jbuf_raw(&req->line, req->cmd->name);
	if (req->arg != NULL) {
		jbuf_raw(&req->line, " ");
		jbuf_raw(&req->line, req->arg);
	}
	for (i = 0; i < nflagw; i++) {
		jbuf_raw(&req->line, " ");
		jbuf_raw(&req->line, flagw[i]);
	}
	jbuf_raw(&req->line, "\n");
	if (req->line.oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		rc = EXIT_FAILED;
		goto out;
	}
	rc = EXIT_DONE;
out:
	free(flagw);
	return rc;
}

/* Returns EXIT_DONE with *fdp connected, or an exit status after printing
 * why: a path that cannot be a socket address is a usage error, anything
 * that stops the connect means the daemon is unreachable. */
static int
connect_socket(const char *path, int *fdp)
{
	struct sockaddr_un sun;
	int fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return usage_error("socket path too long: %s", path);
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fprintf(stderr, "cutoverctl: socket: %s\n", strerror(errno));
		return EXIT_FAILED;
	}
	while (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		fprintf(stderr, "cutoverctl: cannot connect to %s: %s\n", path,
		    strerror(saved));
		return EXIT_UNREACHABLE;
	}
	*fdp = fd;
	return EXIT_DONE;
}

/* MSG_NOSIGNAL: a daemon that went away must give exit 3, not SIGPIPE. */
static int
send_line(int fd, const char *path, const struct jbuf *line)
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
			return EXIT_UNREACHABLE;
		}
		off += (size_t)n;
	}
	return EXIT_DONE;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads up to the first newline; *linep (malloc'd, NUL-terminated, newline
 * removed) is the caller's on success. Bytes after the newline are ignored:
 * the client sends one command per connection. timeout_ms < 0 waits
 * forever. A dropped or silent connection is "unreachable" (3). */
static int
read_answer(int fd, const char *path, int timeout_ms, char **linep,
    size_t *lenp)
{
	int64_t deadline = timeout_ms < 0 ? 0 : now_ms() + timeout_ms;
	size_t len = 0, cap = 0, scanned = 0;
	char *buf = NULL, *nl = NULL, *p;
	struct pollfd pfd;
	ssize_t n;
	int rc = EXIT_UNREACHABLE, wait;

	for (;;) {
		if (len == cap) {
			if (cap >= ANSWER_MAX) {
				fprintf(stderr, "cutoverctl: answer from %s "
				    "longer than %zu bytes\n", path, ANSWER_MAX);
				rc = EXIT_FAILED;
				goto fail;
			}
			cap = cap ? cap * 2 : 4096;
			if ((p = realloc(buf, cap + 1)) == NULL) {
				fprintf(stderr, "cutoverctl: out of memory\n");
				rc = EXIT_FAILED;
				goto fail;
			}
			buf = p;
		}
		wait = -1;
		if (timeout_ms >= 0) {
			int64_t left = deadline - now_ms();

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
	return EXIT_DONE;
fail:
	free(buf);
	return rc;
}

/* Parses an answer line: a JSON object with a boolean "ok" (either value),
 * its strings defanged. *ansp is the caller's on EXIT_DONE. */
static int
parse_answer(const char *path, const char *line, size_t len, struct json **ansp)
{
	struct json *ans;
	const struct json *okv;

	if ((ans = json_parse(line, len)) == NULL ||
	    (okv = json_get(ans, "ok")) == NULL || okv->type != JSON_BOOL) {
		fprintf(stderr, "cutoverctl: malformed answer from %s\n", path);
		json_free(ans);
		return EXIT_FAILED;
	}
	defang(ans);
	*ansp = ans;
	return EXIT_DONE;
}

/* One command on its own connection, for the commands the client carries
 * out itself: cmdline without its newline; *ansp as from parse_answer. */
static int
call(const char *path, const char *cmdline, struct json **ansp)
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
		rc = EXIT_FAILED;
	} else if ((rc = connect_socket(path, &fd)) == EXIT_DONE &&
	    (rc = send_line(fd, path, &b)) == EXIT_DONE &&
	    (rc = read_answer(fd, path, ANSWER_TIMEOUT_MS, &line, &len)) ==
	    EXIT_DONE)
		rc = parse_answer(path, line, len, ansp);
	if (fd != -1)
		close(fd);
	free(line);
	jbuf_free(&b);
	return rc;
}

/* The answer's strings end up on a terminal: control characters other than
 * newline (which multi-line errors use) become '?', so that a daemon bug or
 * a server's odd status line cannot send escape sequences. */
static void
defang(struct json *j)
{
	size_t i;
	char *s;

	if (j->type == JSON_STRING)
		for (s = j->str; *s != '\0'; s++)
			if (((unsigned char)*s < 0x20 && *s != '\n') ||
			    *s == 0x7f)
				*s = '?';
	for (i = 0; i < j->n; i++) {
		defang(j->items[i]);
		if (j->keys != NULL)
			for (s = j->keys[i]; *s != '\0'; s++)
				if ((unsigned char)*s < 0x20 || *s == 0x7f)
					*s = '?';
	}
}

/* A numeric member as text: integers without a fraction, "?" when the
 * member is missing or not a number. */
static const char *
num_text(const struct json *obj, const char *key, char *buf, size_t size)
{
	const struct json *v = json_get(obj, key);

	if (v == NULL || v->type != JSON_NUMBER)
		snprintf(buf, size, "?");
	else if (v->num == (double)(long long)v->num && v->num < 9e15 &&
	    v->num > -9e15)
		snprintf(buf, size, "%lld", (long long)v->num);
	else
		snprintf(buf, size, "%g", v->num);
	return buf;
}

static void
table_init(struct table *t, size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
}

/* Copies one row of ncols strings (NULL prints as "-"). */
static void
table_add(struct table *t, const char *const *row)
{
	char **cells;
	size_t i;

	if (t->oom)
		return;
	cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
	if (cells == NULL) {
		t->oom = true;
		return;
	}
	t->cells = cells;
	cells += t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		const char *s = row[i] != NULL ? row[i] : "-";

		if ((cells[i] = strdup(s)) == NULL)
			t->oom = true;
		else if (strlen(s) > t->width[i])
			t->width[i] = strlen(s);
	}
	t->nrows++;
}

/* Columns separated by two spaces; the last is not padded, so lines carry
 * no trailing blanks, and empty trailing cells are dropped. */
static void
table_print(const struct table *t, FILE *fp)
{
	size_t r, c, last;

	if (t->oom) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return;
	}
	for (r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;

		for (last = t->ncols; last > 1 && row[last - 1][0] == '\0';)
			last--;
		for (c = 0; c < last; c++) {
			if (c + 1 < last)
				fprintf(fp, "%-*s  ", (int)t->width[c], row[c]);
			else
				fprintf(fp, "%s\n", row[c]);
		}
	}
}

static void
table_free(struct table *t)
{
	size_t i;

	if (t->cells != NULL)
		for (i = 0; i < t->nrows * t->ncols; i++)
			free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = 0;
}

/* What the safety window's end said about the release, in words. */
static const char *
verdict_text(const char *verdict)
{
	static const struct {
		const char *verdict, *text;
	} texts[] = {
		{"passed", "passed"},
		{"insufficient-traffic", "not judged: too little traffic"},
		{"rolled-back", "rolled back automatically"},
		{"rollback-failed", "FAILED, but the automatic rollback could not "
		    "be done"},
		{"committed", "committed by hand before the window ended"},
		{"unguarded", "not judged: auto_rollback is disabled"},
	};
	size_t i;

	for (i = 0; i < NELEM(texts); i++)
		if (strcmp(texts[i].verdict, verdict) == 0)
			return texts[i].text;
	return verdict;
}

static void
fmt_status(const struct request *req, const struct json *ans)
{
	static const char *const colors[] = {"blue", "green"};
	const struct json *pools = json_get(ans, "pools");
	const struct json *guard = json_get(ans, "guard");
	const char *state = json_get_str(ans, "state", "?");
	const char *verdict = json_get_str(ans, "verdict", NULL);
	const char *vreason = json_get_str(ans, "verdict_reason", NULL);
	char n1[32], n2[32], n3[32];
	size_t i;

	(void)req;
	printf("active:     %s (generation %s)\n",
	    json_get_str(ans, "active", "?"),
	    num_text(ans, "generation", n1, sizeof(n1)));
	printf("previous:   %s\n", json_get_str(ans, "previous", "none"));
	if (strcmp(state, "observing") == 0 &&
	    json_get(ans, "window_left_s") != NULL)
		printf("state:      observing (%ss left in the safety window)\n",
		    num_text(ans, "window_left_s", n1, sizeof(n1)));
	else
		printf("state:      %s\n", state);
	if (json_get_bool(ans, "switching", false))
		printf("switching:  a switch is in progress (smoke tests or "
		    "pre_switch hook)\n");
	if (guard != NULL && guard->type == JSON_OBJECT) {
		if (!json_get_bool(guard, "enabled", true))
			printf("guard:      off (auto_rollback is disabled)\n");
		else
			printf("guard:      %s requests seen, judges from %s\n",
			    num_text(guard, "requests", n1, sizeof(n1)),
			    num_text(guard, "min_requests", n2, sizeof(n2)));
	}
	if (verdict != NULL) {
		printf("verdict:    %s", verdict_text(verdict));
		if (vreason != NULL && *vreason != '\0')
			printf(" (%s)", vreason);
		printf("\n");
	}
	for (i = 0; i < NELEM(colors); i++) {
		const struct json *p = json_get(pools, colors[i]);
		const struct json *conf = json_get(p, "confirmed");

		if (p == NULL)
			continue;
		printf("%-11s %s/%s healthy", i == 0 ? "blue:" : "green:",
		    num_text(p, "healthy", n1, sizeof(n1)),
		    num_text(p, "total", n2, sizeof(n2)));
		/* Servers not checked yet count as up but not as confirmed
		 * (rise passed); say so when that makes a difference. */
		if (conf != NULL && conf->type == JSON_NUMBER &&
		    conf->num != json_get_num(p, "healthy", conf->num))
			printf(" (%s confirmed)", num_text(p, "confirmed", n3,
			    sizeof(n3)));
		printf(", %s in flight\n", num_text(p, "inflight", n3,
		    sizeof(n3)));
	}
}

static void
fmt_switch(const struct request *req, const struct json *ans)
{
	const char *active = json_get_str(ans, "active", "?");
	const char *previous = json_get_str(ans, "previous", NULL);
	char gen[32];

	num_text(ans, "generation", gen, sizeof(gen));
	if (json_get_bool(ans, "dry_run", false)) {
		/* The daemon reports the color that is active now; the
		 * target is what was asked for. */
		printf("dry run: %s to %s would be allowed\n", req->cmd->name,
		    req->arg != NULL ? req->arg : previous != NULL ? previous :
		    "the previous color");
		return;
	}
	if (!json_get_bool(ans, "changed", true)) {
		printf("already on %s (generation %s): nothing to do\n",
		    active, gen);
		return;
	}
	printf("switched to %s (generation %s)", active, gen);
	if (json_get_bool(ans, "drained", false) && previous != NULL)
		printf("; %s drained", previous);
	printf("\n");
}

static void
fmt_health(const struct request *req, const struct json *ans)
{
	static const char *const head[] = {"COLOR", "ADDRESS", "STATE", "LAST",
	    "LATENCY"};
	const struct json *servers = json_get(ans, "servers");
	struct table t;
	size_t i;

	(void)req;
	if (servers == NULL || servers->type != JSON_ARRAY || servers->n == 0) {
		printf("no servers\n");
		return;
	}
	table_init(&t, NELEM(head));
	table_add(&t, head);
	for (i = 0; i < servers->n; i++) {
		const struct json *s = servers->items[i];
		const struct json *lat = json_get(s, "latency_ms");
		const char *row[NELEM(head)];
		char latbuf[32] = "-";

		if (lat != NULL && lat->type == JSON_NUMBER)
			snprintf(latbuf, sizeof(latbuf), "%.1f ms", lat->num);
		row[0] = json_get_str(s, "color", "?");
		row[1] = json_get_str(s, "address", "?");
		row[2] = json_get_str(s, "state", "?");
		/* Until the first check a server counts as up (a restart must
		 * not black-hole traffic); say so rather than show nothing. */
		row[3] = json_get_bool(s, "checked", true) ?
		    json_get_str(s, "last", "-") : "(not checked yet)";
		row[4] = latbuf;
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

static void
fmt_history(const struct request *req, const struct json *ans)
{
	const struct json *entries = json_get(ans, "entries");
	struct table t;
	size_t i;

	(void)req;
	if (entries == NULL || entries->type != JSON_ARRAY || entries->n == 0) {
		printf("no history\n");
		return;
	}
	table_init(&t, 7);
	for (i = 0; i < entries->n; i++) {
		const struct json *e = entries->items[i];
		const char *reason = json_get_str(e, "reason", NULL);
		const char *row[7];
		char fromto[96], gen[48], who[80], n1[32], n2[32];

		snprintf(fromto, sizeof(fromto), "%s -> %s",
		    json_get_str(e, "from", "-"), json_get_str(e, "to", "-"));
		snprintf(gen, sizeof(gen), "generation %s",
		    num_text(e, "generation", n1, sizeof(n1)));
		snprintf(who, sizeof(who), "uid %s pid %s",
		    num_text(e, "uid", n1, sizeof(n1)),
		    num_text(e, "pid", n2, sizeof(n2)));
		row[0] = json_get_str(e, "time", "?");
		row[1] = json_get_str(e, "event", "?");
		row[2] = fromto;
		row[3] = json_get_str(e, "trigger", "-");
		row[4] = gen;
		row[5] = who;
		row[6] = reason != NULL ? reason : "";
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_free(&t);
}

static void
fmt_ok(const struct request *req, const struct json *ans)
{
	const char *msg = json_get_str(ans, "message", NULL);

	(void)req;
	if (msg != NULL)
		printf("ok: %s\n", msg);
	else
		printf("ok\n");
}

/* The smoke report: one row per test and server. */
static void
print_smoke(const struct json *smoke, FILE *fp)
{
	static const char *const head[] = {"TEST", "METHOD", "PATH", "SERVER",
	    "RESULT"};
	struct table t;
	size_t i;

	if (smoke == NULL || smoke->type != JSON_ARRAY)
		return;
	if (smoke->n == 0) {
		fprintf(fp, "no smoke tests ran\n");
		return;
	}
	table_init(&t, NELEM(head));
	table_add(&t, head);
	for (i = 0; i < smoke->n; i++) {
		const struct json *e = smoke->items[i];
		const char *row[NELEM(head)];
		char test[32], status[32], result[600];

		num_text(e, "test", test, sizeof(test));
		num_text(e, "status", status, sizeof(status));
		if (json_get_bool(e, "ok", false))
			snprintf(result, sizeof(result), "ok (%s)", status);
		else
			snprintf(result, sizeof(result), "FAILED: %s",
			    json_get_str(e, "error", "failed"));
		row[0] = test;
		row[1] = json_get_str(e, "method", "?");
		row[2] = json_get_str(e, "path", "?");
		row[3] = json_get_str(e, "server", "?");
		row[4] = result;
		table_add(&t, row);
	}
	table_print(&t, fp);
	table_free(&t);
}

static void
fmt_smoke(const struct request *req, const struct json *ans)
{
	const struct json *smoke = json_get(ans, "smoke");

	print_smoke(smoke, stdout);
	if (smoke != NULL && smoke->type == JSON_ARRAY && smoke->n > 0)
		printf("smoke tests on %s passed\n", req->arg);
}

/* The report goes to stdout as on success, the summary to stderr. */
static void
refused_smoke(const struct request *req, const struct json *ans)
{
	print_smoke(json_get(ans, "smoke"), stdout);
	fflush(stdout);
	fprintf(stderr, "cutoverctl: smoke tests on %s failed: %s\n", req->arg,
	    json_get_str(ans, "error", "smoke test failed"));
}

static void
fmt_commit(const struct request *req, const struct json *ans)
{
	(void)req;
	if (json_get_bool(ans, "changed", true))
		printf("committed: %s\n", json_get_str(ans, "message",
		    "safety window ended"));
	else
		printf("nothing to commit: %s\n", json_get_str(ans, "message",
		    "no safety window is open"));
}

/* One configuration error per line, as cutoverd -t prints them. */
static void
refused_reload(const struct request *req, const struct json *ans)
{
	const struct json *errors = json_get(ans, "errors");
	size_t i;

	(void)req;
	if (errors == NULL || errors->type != JSON_ARRAY || errors->n == 0) {
		fprintf(stderr, "cutoverctl: %s\n", json_get_str(ans, "error",
		    "reload rejected"));
		return;
	}
	fprintf(stderr, "cutoverctl: reload rejected, running configuration "
	    "kept:\n");
	for (i = 0; i < errors->n; i++)
		if (errors->items[i]->type == JSON_STRING)
			fprintf(stderr, "  %s\n", errors->items[i]->str);
}

/*
 * deploy --run CMD [--timeout T]: the whole blue/green flow, carried out by
 * the client over the control socket (the daemon never runs CMD):
 *
 *   1. status: the active color; the other one is the target;
 *   2. sh -c CMD with CUTOVER_TARGET=target (and CUTOVER_SOCKET);
 *   3. status every 250 ms until pools.TARGET.confirmed >= min_healthy;
 *   4. switch TARGET --if-gen G (the daemon runs the smoke tests and the
 *      pre_switch hook; --if-gen: nobody else switched meanwhile);
 *   5. status every 500 ms until the safety window ends (exit 0 with the
 *      verdict) or the guard rolls back (exit 1).
 *
 * T bounds each wait (3 and 5) on its own; CMD runs as long as it takes.
 * Progress goes to stdout, the reason for a failure to stderr.
 */

struct deploy {
	const char *path;
	const char *target, *from;
	uint64_t timeout_ms;
	char timeout_text[32];
	uint64_t generation;    /* the current one; ours after the switch */
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int deploy_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* A progress line, flushed at once: deploy runs for minutes, often with
 * stdout on a pipe to a CI log. */
static void
say(const char *fmt, ...)
{
	va_list ap;

	fputs("deploy: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static int
deploy_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("cutoverctl: deploy: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILED;
}

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* status, which must succeed and name a color. */
static int
deploy_status(const struct deploy *dp, struct json **stp)
{
	struct json *st = NULL;
	int rc;

	if ((rc = call(dp->path, "status", &st)) != EXIT_DONE)
		return rc;
	if (!json_get_bool(st, "ok", false)) {
		rc = deploy_fail("status: %s", json_get_str(st, "error",
		    "request failed"));
		json_free(st);
		return rc;
	}
	if (!color_ok(json_get_str(st, "active", "")) ||
	    json_get(st, "generation") == NULL) {
		json_free(st);
		return deploy_fail("status: malformed answer from %s", dp->path);
	}
	*stp = st;
	return EXIT_DONE;
}

/* Runs CMD with sh -c, CUTOVER_TARGET and CUTOVER_SOCKET set, its output
 * passed through. */
static int
deploy_run_command(const struct deploy *dp, const char *cmd)
{
	pid_t pid, w;
	int status;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1)
		return deploy_fail("cannot run the command: fork: %s",
		    strerror(errno));
	if (pid == 0) {
		if (setenv("CUTOVER_TARGET", dp->target, 1) == -1 ||
		    setenv("CUTOVER_SOCKET", dp->path, 1) == -1)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		fprintf(stderr, "cutoverctl: deploy: /bin/sh: %s\n",
		    strerror(errno));
		_exit(127);
	}
	while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	if (w == -1)
		return deploy_fail("waiting for the command: %s",
		    strerror(errno));
	if (WIFSIGNALED(status))
		return deploy_fail("CMD failed (killed by signal %d); nothing "
		    "was switched", WTERMSIG(status));
	if (WEXITSTATUS(status) != 0)
		return deploy_fail("CMD failed (exit %d); nothing was switched",
		    WEXITSTATUS(status));
	return EXIT_DONE;
}

/* Step 3: until the target has min_healthy confirmed servers. */
static int
deploy_wait_healthy(struct deploy *dp)
{
	int64_t deadline = now_ms() + (int64_t)dp->timeout_ms;
	long long last = -1;
	int rc;

	for (;;) {
		struct json *st = NULL;
		const struct json *p;
		long long confirmed, total, need;

		if ((rc = deploy_status(dp, &st)) != EXIT_DONE)
			return rc;
		p = json_get(json_get(st, "pools"), dp->target);
		confirmed = (long long)json_get_num(p, "confirmed", 0);
		total = (long long)json_get_num(p, "total", 0);
		need = (long long)json_get_num(st, "min_healthy", 1);
		/* The daemon's own rule: min_healthy 0 still needs one. */
		if (need < 1)
			need = 1;
		json_free(st);
		if (confirmed != last)
			say("waiting for %s: %lld of %lld servers healthy, "
			    "need %lld", dp->target, confirmed, total, need);
		last = confirmed;
		if (confirmed >= need)
			return EXIT_DONE;
		if (now_ms() >= deadline)
			return deploy_fail("timed out waiting for %s to become "
			    "healthy: %lld of %lld servers healthy after %s, "
			    "need %lld; nothing was switched", dp->target,
			    confirmed, total, dp->timeout_text, need);
		sleep_ms(DEPLOY_HEALTH_POLL_MS);
	}
}

/* Step 4. The daemon's refusal names the check that failed. */
static int
deploy_switch(struct deploy *dp)
{
	struct json *ans = NULL;
	char line[96];
	int rc;

	snprintf(line, sizeof(line), "switch %s --if-gen %" PRIu64, dp->target,
	    dp->generation);
	say("switching to %s (the daemon runs the smoke tests and the "
	    "pre_switch hook)", dp->target);
	if ((rc = call(dp->path, line, &ans)) != EXIT_DONE)
		return rc;
	if (!json_get_bool(ans, "ok", false)) {
		const struct json *smoke = json_get(ans, "smoke");

		if (smoke != NULL && smoke->type == JSON_ARRAY && smoke->n > 0)
			print_smoke(smoke, stdout);
		rc = deploy_fail("%s; %s stays live", json_get_str(ans, "error",
		    "switch refused"), dp->from);
		json_free(ans);
		return rc;
	}
	if (!json_get_bool(ans, "changed", true) ||
	    strcmp(json_get_str(ans, "active", ""), dp->target) != 0) {
		json_free(ans);
		return deploy_fail("the switch to %s changed nothing", dp->target);
	}
	dp->generation = (uint64_t)json_get_num(ans, "generation", 0);
	json_free(ans);
	say("switched to %s (generation %" PRIu64 "); following the safety "
	    "window", dp->target, dp->generation);
	return EXIT_DONE;
}

/* Step 5. */
static int
deploy_follow(struct deploy *dp)
{
	int64_t deadline = now_ms() + (int64_t)dp->timeout_ms;
	long long last_left = -1, last_seen = -1;
	int rc;

	for (;;) {
		struct json *st = NULL;
		const struct json *guard;
		const char *active, *state, *verdict, *vreason;
		uint64_t gen;
		long long left;

		if ((rc = deploy_status(dp, &st)) != EXIT_DONE)
			return rc;
		active = json_get_str(st, "active", "?");
		state = json_get_str(st, "state", "?");
		verdict = json_get_str(st, "verdict", "");
		vreason = json_get_str(st, "verdict_reason", "");
		gen = (uint64_t)json_get_num(st, "generation", 0);
		left = (long long)json_get_num(st, "window_left_s", 0);
		guard = json_get(st, "guard");
		if (strcmp(active, dp->target) != 0) {
			if (strcmp(verdict, "rolled-back") == 0)
				rc = deploy_fail("rolled back: %s; traffic is "
				    "on %s again (generation %" PRIu64 ")",
				    vreason, active, gen);
			else
				rc = deploy_fail("%s is no longer live: %s is "
				    "(generation %" PRIu64 "); see cutoverctl "
				    "history", dp->target, active, gen);
			json_free(st);
			return rc;
		}
		if (gen != dp->generation) {
			rc = deploy_fail("the generation moved from %" PRIu64
			    " to %" PRIu64 " while following the safety window; "
			    "see cutoverctl history", dp->generation, gen);
			json_free(st);
			return rc;
		}
		if (strcmp(verdict, "rollback-failed") == 0) {
			rc = deploy_fail("the guard tripped but could not roll "
			    "back: %s; %s is still live", vreason, dp->target);
			json_free(st);
			return rc;
		}
		if (strcmp(state, "stable") == 0) {
			if (strcmp(verdict, "insufficient-traffic") == 0)
				say("%s is live; the safety window ended "
				    "WITHOUT A VERDICT: %s", dp->target, vreason);
			else if (*verdict != '\0')
				say("%s is live; safety window %s%s%s",
				    dp->target, verdict_text(verdict),
				    *vreason != '\0' ? ": " : "", vreason);
			else
				say("%s is live; no safety window", dp->target);
			json_free(st);
			return EXIT_DONE;
		}
		/* A line a second at most, and one when the guard's count
		 * first reaches min_requests. */
		if (left != last_left) {
			long long seen = (long long)json_get_num(guard,
			    "requests", 0);
			long long need = (long long)json_get_num(guard,
			    "min_requests", 0);

			if (guard == NULL || !json_get_bool(guard, "enabled",
			    true))
				say("observing %s: %llds left (auto_rollback "
				    "off)", dp->target, left);
			else
				say("observing %s: %llds left, guard saw %lld "
				    "requests (judges from %lld)%s", dp->target,
				    left, seen, need, last_seen >= 0 &&
				    last_seen < need && seen >= need ?
				    ", now judging" : "");
			last_left = left;
			last_seen = seen;
		}
		json_free(st);
		if (now_ms() >= deadline)
			return deploy_fail("timed out after %s following the "
			    "safety window (%llds left); %s is live, the window "
			    "is still open", dp->timeout_text, left, dp->target);
		sleep_ms(DEPLOY_WINDOW_POLL_MS);
	}
}

static int
run_deploy(const struct request *req, const char *path)
{
	struct deploy dp;
	struct json *st = NULL;
	const char *state;
	int rc;

	memset(&dp, 0, sizeof(dp));
	dp.path = path;
	dp.timeout_ms = req->timeout_ms;
	if (!(req->flags & F_TIMEOUT) &&
	    duration_parse(DEPLOY_DEFAULT_TIMEOUT, &dp.timeout_ms) < 0)
		return EXIT_FAILED;
	duration_format(dp.timeout_ms, dp.timeout_text, sizeof(dp.timeout_text));

	if ((rc = deploy_status(&dp, &st)) != EXIT_DONE)
		return rc;
	state = json_get_str(st, "state", "?");
	dp.from = strcmp(json_get_str(st, "active", ""), "blue") == 0 ? "blue" :
	    "green";
	dp.target = strcmp(dp.from, "blue") == 0 ? "green" : "blue";
	dp.generation = (uint64_t)json_get_num(st, "generation", 0);
	/* The idle color is the rollback target while a window is open:
	 * installing a release there now would take that away. */
	if (strcmp(state, "observing") == 0) {
		rc = deploy_fail("the safety window of generation %" PRIu64
		    " is still open (%llds left) and %s is its rollback target; "
		    "wait for it to end or run 'cutoverctl commit'",
		    dp.generation, (long long)json_get_num(st, "window_left_s", 0),
		    dp.target);
		json_free(st);
		return rc;
	}
	if (json_get_bool(st, "switching", false)) {
		json_free(st);
		return deploy_fail("another switch is in progress");
	}
	json_free(st);
	say("%s is live (generation %" PRIu64 "); deploying to %s", dp.from,
	    dp.generation, dp.target);
	say("running: %s", req->run_cmd);
	if ((rc = deploy_run_command(&dp, req->run_cmd)) != EXIT_DONE)
		return rc;
	if ((rc = deploy_wait_healthy(&dp)) != EXIT_DONE)
		return rc;
	if ((rc = deploy_switch(&dp)) != EXIT_DONE)
		return rc;
	return deploy_follow(&dp);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct request req;
	struct json *ans = NULL;
	const char *path = NULL;
	char *line = NULL;
	size_t len = 0;
	int ch, fd = -1, rc;

	memset(&req, 0, sizeof(req));
	jbuf_init(&req.line);
	opterr = 0;
	/* "+": options end at the command, whose own flags are checked
	 * against the command table below. */
	while ((ch = getopt_long(argc, argv, "+:s:hV", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			path = optarg;
			break;
		case 'j':
			req.json = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_DONE;
		case 'V':
			printf("cutoverctl %s\n", PACKAGE_VERSION);
			return EXIT_DONE;
		case ':':
			return usage_error("option '%s' needs an argument",
			    argv[optind - 1]);
		default:
			if (optopt != 0)
				return usage_error("unknown option '-%c'",
				    optopt);
			return usage_error("unknown option '%s'",
			    argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("no command given");
	if (path == NULL)
		path = getenv("CUTOVER_SOCKET");
	if (path == NULL || *path == '\0')
		path = DEFAULT_SOCKET;
	if ((rc = parse_request(&req, argc - optind, argv + optind)) != 0)
		goto out;
	if (req.cmd->run != NULL) {
		rc = req.cmd->run(&req, path);
		goto out;
	}
	if ((rc = connect_socket(path, &fd)) != 0)
		goto out;
	if ((rc = send_line(fd, path, &req.line)) != 0)
		goto out;
	if ((rc = read_answer(fd, path, (req.flags & F_WAIT) ? -1 :
	    ANSWER_TIMEOUT_MS, &line, &len)) != 0)
		goto out;
	if (req.json)
		printf("%s\n", line);
	if ((rc = parse_answer(path, line, len, &ans)) != EXIT_DONE)
		goto out;
	if (!json_get_bool(ans, "ok", false)) {
		if (req.cmd->refused != NULL && !req.json)
			req.cmd->refused(&req, ans);
		else
			fprintf(stderr, "cutoverctl: %s\n",
			    json_get_str(ans, "error", "request failed"));
		rc = EXIT_FAILED;
		goto out;
	}
	if (!req.json)
		req.cmd->format(&req, ans);
	rc = EXIT_DONE;
out:
	/* A full disk or a closed pipe on stdout must not pass for success. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "cutoverctl: stdout: %s\n", strerror(errno));
		if (rc == EXIT_DONE)
			rc = EXIT_FAILED;
	}
	if (fd != -1)
		close(fd);
	json_free(ans);
	free(line);
	jbuf_free(&req.line);
	return rc;
}
