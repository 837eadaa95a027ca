/*
 * The control socket's command-line handling (src/control.c: line framing,
 * length and character checks, splitting into arguments, command lookup,
 * pipelining, answers deferred by a handler), driven through a real Unix
 * socket exactly as cutoverctl or a hostile local user would.
 * The input is what a client sends before it half-closes the connection.
 * The command table has the daemon's command names; each handler answers
 * with its arguments, and "switch"/"rollback" with a "--wait" argument
 * answer later from the loop (like switch --wait), so the pending-answer
 * paths run too. Property: every answer line the client receives is one
 * JSON object with a boolean "ok" (cutoverctl could read it), the
 * exchange ends (no hang), and the daemon's side of the connection is freed
 * (no descriptor left behind).
 */

#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "command.h"
#include "config.h"
#include "control.h"
#include "fuzz.h"
#include "json.h"
#include "log.h"

static struct event_base *base;
static struct control *ctl;
static char dir[] = "/tmp/cutover-fuzz-control.XXXXXX";
static char sock_path[sizeof(dir) + 16];
static int first_fd = -1;       /* the lowest free descriptor between exchanges */
static bool open_before[16];    /* first_fd + i was open then (libFuzzer's own) */

struct client {
	struct evbuffer *got;
	bool done;
};

/*
 * Answers with the request's wire form, after checking that the typed
 * request the control server parsed formats to a line that parses back to
 * the same request (the command table's round trip).
 */
static void
reply_request(struct control_conn *c, const struct command_request *rq)
{
	struct command_request again;
	struct jbuf line, b;
	char *words[32], *p, *copy, *save = NULL, err[256];
	int n = 0;

	jbuf_init(&line);
	FUZZ_CHECK(command_format(rq, &line) == 0 && !line.oom && line.s != NULL, "command_format of %s",
	    rq->cmd->name);
	copy = strdup(line.s);
	FUZZ_CHECK(copy != NULL, "strdup");
	for (p = strtok_r(copy, " ", &save); p != NULL && n < 31; p = strtok_r(NULL, " ", &save))
		words[n++] = p;
	words[n] = NULL;
	FUZZ_CHECK(command_parse(&again, n, words, COMMAND_DAEMON, err, sizeof(err)) == 0,
	    "the formatted request does not parse again: %s", err);
	FUZZ_CHECK(again.cmd == rq->cmd && again.flags == rq->flags && again.has_arg == rq->has_arg &&
	        (!rq->has_arg || (again.color == rq->color && again.count == rq->count)) &&
	        (!(rq->flags & COMMAND_F_IF_GEN) || again.if_gen == rq->if_gen),
	    "round trip changed the request %s", rq->cmd->name);
	free(copy);
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"line\":");
	jbuf_str(&b, line.s);
	jbuf_raw(&b, "}");
	jbuf_free(&line);
	control_reply_jbuf(c, &b);
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	control_reply(arg, "{\"ok\":true,\"waited\":true}");
}

static void
cmd_any(struct control_conn *c, const struct control_caller *who, const struct command_request *rq,
    void *arg)
{
	static const struct timeval now = {0, 0};

	(void)who;
	(void)arg;
	FUZZ_CHECK(rq != NULL && rq->cmd != NULL && (rq->cmd->sides & COMMAND_DAEMON), "no daemon command");
	if ((rq->flags & COMMAND_F_WAIT) &&
	    (rq->cmd->id == COMMAND_SWITCH || rq->cmd->id == COMMAND_ROLLBACK)) {
		FUZZ_CHECK(event_base_once(base, -1, EV_TIMEOUT, later_cb, c, &now) == 0, "event_base_once");
		return;
	}
	reply_request(c, rq);
}

/* Every daemon command answers through cmd_any. */
static control_handler commands[COMMAND_COUNT];

static void
cleanup(void)
{
	control_free(ctl);
	event_base_free(base);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct config_control cfg = {0};

	(void)argc;
	(void)argv;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LVL_ERR);
	FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(sock_path, sizeof(sock_path), "%s/control.sock", dir);
	cfg.socket = sock_path;
	cfg.mode = 0600;
	base = event_base_new();
	FUZZ_CHECK(base != NULL, "event_base_new");
	for (int i = 0; i < COMMAND_COUNT; i++)
		commands[i] = cmd_any;
	ctl = control_new(base, &cfg, commands, NULL);
	FUZZ_CHECK(ctl != NULL, "control_new");
	atexit(cleanup);
	return 0;
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	evbuffer_add_buffer(cl->got, bufferevent_get_input(bev));
}

static void
client_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	/* Everything is sent: half-close, as a client that is done. */
	shutdown(bufferevent_getfd(bev), SHUT_WR);
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct client *cl = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		cl->done = true;
}

static void
hang_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	FUZZ_CHECK(false, "the exchange did not end within 20 s");
}

/* Whether one of first_fd .. first_fd + 15 is open that was not before. */
static bool
exchange_fds_open(void)
{
	int i;

	for (i = 0; i < 16; i++)
		if (!open_before[i] && fcntl(first_fd + i, F_GETFD) != -1)
			return true;
	return false;
}

/* Every complete line must be a JSON object with a boolean "ok". */
static void
check_answers(struct evbuffer *got)
{
	const struct json *ok;
	struct json *j;
	size_t n;
	char *line;

	while ((line = evbuffer_readln(got, &n, EVBUFFER_EOL_LF)) != NULL) {
		j = json_parse(line, n);
		FUZZ_CHECK(j != NULL && j->type == JSON_OBJECT, "answer is not a JSON object: %s",
		    line);
		ok = json_get(j, "ok");
		FUZZ_CHECK(ok != NULL && ok->type == JSON_BOOL, "answer without ok: %s", line);
		json_free(j);
		free(line);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct timeval limit = {20, 0};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct client cl = {evbuffer_new(), false};
	struct bufferevent *bev;
	struct event *hang;
	int fd, i;

	FUZZ_CHECK(cl.got != NULL, "evbuffer_new");
	memcpy(sun.sun_path, sock_path, strlen(sock_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	if (first_fd == -1) {
		first_fd = fd;
		for (i = 1; i < 16; i++)
			open_before[i] = fcntl(fd + i, F_GETFD) != -1;
	}
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0, "connect: %s",
	    strerror(errno));
	bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	FUZZ_CHECK(bev != NULL, "bufferevent_socket_new");
	bufferevent_setcb(bev, client_read, client_write, client_event, &cl);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (size > 0)
		bufferevent_write(bev, data, size);
	else
		shutdown(fd, SHUT_WR);
	hang = evtimer_new(base, hang_cb, NULL);
	FUZZ_CHECK(hang != NULL, "evtimer_new");
	evtimer_add(hang, &limit);
	while (!cl.done)
		FUZZ_CHECK(event_base_loop(base, EVLOOP_ONCE) == 0, "event_base_loop");
	event_free(hang);
	bufferevent_free(bev);
	/* bufferevent_free() may close the descriptor from the loop (its
	 * finalizer runs after pending callbacks): let both sides finish, then
	 * no descriptor from this exchange may be left, or the daemon's side
	 * of the connection was not freed. */
	for (i = 0; i < 100 && exchange_fds_open(); i++)
		FUZZ_CHECK(event_base_loop(base, EVLOOP_NONBLOCK) == 0, "event_base_loop");
	FUZZ_CHECK(!exchange_fds_open(), "a descriptor of the exchange is still open");
	check_answers(cl.got);
	evbuffer_free(cl.got);
	return 0;
}
