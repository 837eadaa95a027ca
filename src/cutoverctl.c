#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <getopt.h>
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

#include "json.h"

/*
 * cutoverctl: the operator's client for cutoverd's control socket.
 *
 * It checks a command line locally (so that a typo never reaches the
 * daemon), sends it as one line, reads one line of JSON back and turns it
 * into text or, with --json, prints it as is. Exit status: 0 done, 1 refused
 * or failed, 2 usage error, 3 daemon unreachable.
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
};

struct flag {
	const char *name;
	unsigned bit;
	bool takes_number;
	const char *help;
};

struct request;

struct command {
	const char *name;
	int min_args, max_args;
	enum arg_kind arg;
	unsigned flags;         /* F_* the command accepts */
	void (*format)(const struct request *, const struct json *);
	const char *help;
};

/* One checked command line, ready to send. */
struct request {
	const struct command *cmd;
	const char *arg;        /* the positional argument, or NULL */
	unsigned flags;
	bool json;
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

static const struct flag flags[] = {
	{"--force", F_FORCE, false,
	    "skip the health and smoke-test checks"},
	{"--if-gen", F_IF_GEN, true,
	    "refuse unless the switch generation is N"},
	{"--dry-run", F_DRY_RUN, false,
	    "run every check, change nothing"},
	{"--wait", F_WAIT, false,
	    "return once the old color has drained"},
};

/* The commands the client knows. smoke, commit and reload are passed through
 * for the daemon to answer; one that does not know them yet says so (exit 1). */
static const struct command commands[] = {
	{"status", 0, 0, ARG_NONE, 0, fmt_status,
	    "active and previous color, state, pools"},
	{"switch", 1, 1, ARG_COLOR, F_FORCE | F_IF_GEN | F_DRY_RUN | F_WAIT,
	    fmt_switch, "send new requests to that color"},
	{"rollback", 0, 0, ARG_NONE, F_FORCE | F_IF_GEN, fmt_switch,
	    "switch back to the previous color"},
	{"health", 0, 1, ARG_COLOR, 0, fmt_health,
	    "each server's state, last check and latency"},
	{"history", 0, 1, ARG_COUNT, 0, fmt_history,
	    "the switch audit log (the last N entries)"},
	{"smoke", 1, 1, ARG_COLOR, 0, fmt_ok,
	    "run the smoke tests against that color now"},
	{"commit", 0, 0, ARG_NONE, 0, fmt_ok,
	    "end the safety window now"},
	{"reload", 0, 0, ARG_NONE, 0, fmt_ok,
	    "reload the configuration (like SIGHUP)"},
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
		fprintf(fp, "  %-24s %s\n", syn, c->help);
		for (k = 0; k < NELEM(flags); k++) {
			if (!(c->flags & flags[k].bit))
				continue;
			snprintf(syn, sizeof(syn), "%s%s", flags[k].name,
			    flags[k].takes_number ? " N" : "");
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
 * flags in the order given, each word separated by one space. Returns
 * EXIT_DONE, or EXIT_USAGE after printing why. */
static int
parse_request(struct request *req, int argc, char **argv)
{
	const char **flagw = NULL;
	size_t nflagw = 0, i;
	int nargs = 0, a, rc = EXIT_USAGE;

	for (a = 0; a < argc; a++)
		if (!word_ok(argv[a]))
			return usage_error("argument %d is empty or holds "
			    "whitespace or a control character", a + 1);
	if ((req->cmd = find_command(argv[0])) == NULL)
		return usage_error("unknown command '%s'", argv[0]);
	if ((flagw = calloc((size_t)argc * 2, sizeof(*flagw))) == NULL) {
		fprintf(stderr, "cutoverctl: out of memory\n");
		return EXIT_FAILED;
	}
	for (a = 1; a < argc; a++) {
		const char *w = argv[a], *eq, *value = NULL;
		const struct flag *f;

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
		eq = strchr(w, '=');
		f = find_flag(w, eq != NULL ? (size_t)(eq - w) : strlen(w));
		if (f == NULL || !(req->cmd->flags & f->bit)) {
			usage_error("%s: unknown option '%s'", req->cmd->name, w);
			goto out;
		}
		if (req->flags & f->bit) {
			usage_error("%s: %s given twice", req->cmd->name, f->name);
			goto out;
		}
		req->flags |= f->bit;
		if (!f->takes_number) {
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
		if (value == NULL || !number_ok(value, false)) {
			usage_error("%s: %s needs a generation number",
			    req->cmd->name, f->name);
			goto out;
		}
		flagw[nflagw++] = f->name;
		flagw[nflagw++] = value;
	}
	if (nargs < req->cmd->min_args) {
		usage_error("%s: missing argument (%s)", req->cmd->name,
		    req->cmd->arg == ARG_COLOR ? "blue or green" : "a number");
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

static void
fmt_status(const struct request *req, const struct json *ans)
{
	static const char *const colors[] = {"blue", "green"};
	const struct json *pools = json_get(ans, "pools");
	const char *state = json_get_str(ans, "state", "?");
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
	for (i = 0; i < NELEM(colors); i++) {
		const struct json *p = json_get(pools, colors[i]);

		if (p == NULL)
			continue;
		printf("%-11s %s/%s healthy, %s in flight\n",
		    i == 0 ? "blue:" : "green:",
		    num_text(p, "healthy", n1, sizeof(n1)),
		    num_text(p, "total", n2, sizeof(n2)),
		    num_text(p, "inflight", n3, sizeof(n3)));
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
	const char *path = NULL, *err;
	const struct json *okv;
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
	if ((rc = connect_socket(path, &fd)) != 0)
		goto out;
	if ((rc = send_line(fd, path, &req.line)) != 0)
		goto out;
	if ((rc = read_answer(fd, path, (req.flags & F_WAIT) ? -1 :
	    ANSWER_TIMEOUT_MS, &line, &len)) != 0)
		goto out;
	if (req.json)
		printf("%s\n", line);
	rc = EXIT_FAILED;
	if ((ans = json_parse(line, len)) == NULL ||
	    (okv = json_get(ans, "ok")) == NULL || okv->type != JSON_BOOL) {
		fprintf(stderr, "cutoverctl: malformed answer from %s\n", path);
		goto out;
	}
	defang(ans);
	if (!okv->b) {
		err = json_get_str(ans, "error", "request failed");
		fprintf(stderr, "cutoverctl: %s\n", err);
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
