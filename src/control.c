#include "autoconf.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "command.h"
#include "config.h"
#include "control.h"
#include "fdlimit.h"
#include "json.h"
#include "log.h"

#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_ARGS 32
#define CONTROL_MAX_CONNS 64
/* Slots only admin callers may take: a reading user cannot lock root out. */
#define CONTROL_ADMIN_RESERVE 8
/* A connection with no command for this long is closed (cutoverctl opens
 * one per command); also how long its output may stay unread. */
#define CONTROL_IDLE_S 10
#define CONTROL_IDLE_TEXT "10s"
/* Past this much unread output a connection's next commands wait: a client
 * that pipelines without reading cannot grow the daemon. */
#define CONTROL_MAX_OUTPUT (64 * 1024)
/* A refusal (permission, no slot) is logged at most once per interval. */
#define CONTROL_LOG_INTERVAL_MS 10000

struct control_conn {
	struct control *ctl;
	TAILQ_ENTRY(control_conn) link;
	struct bufferevent *bev;
	struct control_caller who;
	struct event *idle;   /* no command for CONTROL_IDLE_S: close */
	bool pending;         /* a handler has not answered yet */
	bool closing;         /* close once the output is flushed */
	bool out_full;        /* reading stopped until the output drains */
};

struct control {
	struct event_base *base;
	struct evconnlistener *lst;
	char *path;
	const control_handler *handlers; /* COMMAND_COUNT, by enum command_id */
	void *arg;
	bool has_admin_gid;
	gid_t admin_gid;
	struct fdlimit_backoff *backoff; /* after a failed accept() */
	TAILQ_HEAD(, control_conn) conns; /* oldest first */
	unsigned nconns, nadmins;
	struct log_rate refused_rate, busy_rate;
};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg);
static void accept_error_cb(struct evconnlistener *l, void *arg);
static bool make_room(struct control *ctl, bool admin);
static void conn_idle_cb(evutil_socket_t fd, short what, void *arg);
static void conn_resume(struct control_conn *c);
static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_free(struct control_conn *c);
static void conn_close_after(struct control_conn *c, const char *error);
static void dispatch(struct control_conn *c, char *line, size_t len);
static bool caller_is_admin(const struct control *ctl, uid_t uid, gid_t gid);
static int make_socket(const struct config_control *cfg);

struct control *
control_new(struct event_base *base, const struct config_control *cfg,
    const control_handler *handlers, void *arg)
{
	struct control *ctl;
	int fd;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return NULL;
	ctl->base = base;
	ctl->handlers = handlers;
	ctl->arg = arg;
	TAILQ_INIT(&ctl->conns);
	control_set_admin_group(ctl, cfg->admin_group);
	if ((ctl->path = strdup(cfg->socket)) == NULL)
		goto fail;
	if ((fd = make_socket(cfg)) < 0)
		goto fail;
	ctl->lst = evconnlistener_new(base, accept_cb, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64, fd);
	if (ctl->lst == NULL) {
		close(fd);
		log_err("%s: control socket %s: cannot listen", __func__, cfg->socket);
		goto fail;
	}
	if ((ctl->backoff = fdlimit_backoff_new(base, ctl->lst, "control socket", NULL, NULL)) == NULL) {
		log_err("%s: out of memory", __func__);
		goto fail;
	}
	evconnlistener_set_error_cb(ctl->lst, accept_error_cb);
	return ctl;
fail:
	if (ctl->lst != NULL) {
		evconnlistener_free(ctl->lst);
		unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl);
	return NULL;
}

void
control_set_admin_group(struct control *ctl, const char *group)
{
	struct group *gr;

	ctl->has_admin_gid = false;
	if (group == NULL)
		return;
	if ((gr = getgrnam(group)) == NULL) {
		log_warn("%s: control: admin_group '%s' does not exist: only root may change things", __func__, group);
		return;
	}
	ctl->has_admin_gid = true;
	ctl->admin_gid = gr->gr_gid;
}

void
control_free(struct control *ctl)
{
	struct control_conn *c;

	if (ctl == NULL)
		return;
	while ((c = TAILQ_FIRST(&ctl->conns)) != NULL)
		conn_free(c);
	fdlimit_backoff_free(ctl->backoff);
	if (ctl->lst != NULL) {
		evconnlistener_free(ctl->lst);
		unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl);
}

void
control_reply(struct control_conn *c, const char *json)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->closing) {
		/* The client left while its answer was being prepared. */
		conn_free(c);
		return;
	}
	c->pending = false;
	evbuffer_add(out, json, strlen(json));
	evbuffer_add(out, "\n", 1);
	{
		struct timeval idle = {CONTROL_IDLE_S, 0};

		evtimer_add(c->idle, &idle);
	}
	conn_resume(c);
}

/*
 * Reads the next command, unless the client has not read enough of its
 * answers yet: then reading waits until the output drains (conn_writecb).
 */
static void
conn_resume(struct control_conn *c)
{
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > CONTROL_MAX_OUTPUT) {
		c->out_full = true;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	c->out_full = false;
	bufferevent_enable(c->bev, EV_READ);
	/* More commands may already be buffered: run them from the loop. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void
control_reply_jbuf(struct control_conn *c, struct jbuf *b)
{
	control_reply(c, b->oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b->s);
	jbuf_free(b);
}

void
control_reply_error(struct control_conn *c, const char *msg)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, msg);
	jbuf_raw(&b, "}");
	control_reply_jbuf(c, &b);
}

/*
 * Creates, binds and listens on the Unix socket. A leftover socket file from
 * a dead daemon is removed; one that still accepts connections belongs to a
 * running daemon and is an error.
 */
static int
make_socket(const struct config_control *cfg)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd = -1;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(cfg->socket) >= sizeof(sun.sun_path)) {
		log_err("%s: control socket %s: path too long", __func__, cfg->socket);
		return -1;
	}
	memcpy(sun.sun_path, cfg->socket, strlen(cfg->socket) + 1);
	if (lstat(cfg->socket, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_err("%s: control socket %s: exists and is not a socket", __func__, cfg->socket);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			log_err("%s: control socket %s: in use by another running cutoverd", __func__, cfg->socket);
			return -1;
		}
		if (probe >= 0)
			close(probe);
		unlink(cfg->socket);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		goto fail;
	if (cfg->group != NULL) {
		struct group *gr = getgrnam(cfg->group);

		if (gr == NULL) {
			errno = ENOENT;
			log_err("%s: control socket %s: group '%s' does not exist", __func__, cfg->socket, cfg->group);
			unlink(cfg->socket);
			close(fd);
			return -1;
		}
		if (chown(cfg->socket, (uid_t)-1, gr->gr_gid) < 0)
			goto fail_unlink;
	}
	if (chmod(cfg->socket, (mode_t)cfg->mode) < 0)
		goto fail_unlink;
	if (listen(fd, 64) < 0)
		goto fail_unlink;
	return fd;
fail_unlink:
	unlink(cfg->socket);
fail:
	log_err("%s: control socket %s: %s", __func__, cfg->socket, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct control_conn *c;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct timeval idle = {CONTROL_IDLE_S, 0};
	unsigned long n;
	bool admin;

	(void)l;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("%s: SO_PEERCRED: %s", __func__, strerror(errno));
		close(fd);
		return;
	}
	admin = caller_is_admin(ctl, cred.uid, cred.gid);
	if (!make_room(ctl, admin)) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many control connections\"}\n";

		if (write(fd, busy, sizeof(busy) - 1) < 0) {
			/* The client is gone anyway. */
		}
		close(fd);
		if (log_rate_due(&ctl->busy_rate, CONTROL_LOG_INTERVAL_MS, &n))
			log_warn("%s: uid %ld pid %ld: no free control connection slot (%u open, %u "
			         "kept for admins); %lu refused in %us",
			    __func__, (long)cred.uid, (long)cred.pid, ctl->nconns, CONTROL_ADMIN_RESERVE, n,
			    CONTROL_LOG_INTERVAL_MS / 1000);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->idle = evtimer_new(ctl->base, conn_idle_cb, c)) == NULL ||
	    (c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		if (c != NULL && c->idle != NULL)
			event_free(c->idle);
		free(c);
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->who.uid = cred.uid;
	c->who.gid = cred.gid;
	c->who.pid = cred.pid;
	c->who.admin = admin;
	TAILQ_INSERT_TAIL(&ctl->conns, c, link);
	ctl->nconns++;
	ctl->nadmins += admin;
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_MAX_LINE * 2);
	/* conn_writecb runs once the output is down to half the bound. */
	bufferevent_setwatermark(c->bev, EV_WRITE, CONTROL_MAX_OUTPUT / 2, 0);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	/* Unread output for CONTROL_IDLE_S ends the connection; a client that
	 * sends no command does so through the idle timer (blank lines or a
	 * command dribbled byte by byte do not keep a slot). */
	bufferevent_set_timeouts(c->bev, NULL, &idle);
	evtimer_add(c->idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/*
 * Whether a caller may have a connection: non-admin callers get at most
 * CONTROL_MAX_CONNS - CONTROL_ADMIN_RESERVE slots; an admin caller gets one
 * whenever there are fewer than CONTROL_MAX_CONNS, and otherwise takes the
 * slot of the oldest non-admin connection that is not waiting on a command.
 */
static bool
make_room(struct control *ctl, bool admin)
{
	struct control_conn *c;

	if (!admin)
		return ctl->nconns - ctl->nadmins < CONTROL_MAX_CONNS - CONTROL_ADMIN_RESERVE &&
		    ctl->nconns < CONTROL_MAX_CONNS;
	if (ctl->nconns < CONTROL_MAX_CONNS)
		return true;
	TAILQ_FOREACH(c, &ctl->conns, link) {
		if (!c->who.admin && !c->pending) {
			log_info("%s: control connections full: closing the oldest of uid %ld pid %ld "
			         "for an admin caller",
			    __func__, (long)c->who.uid, (long)c->who.pid);
			conn_free(c);
			return true;
		}
	}
	return false;
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct control *ctl = arg;

	(void)l;
	fdlimit_backoff_start(ctl->backoff, EVUTIL_SOCKET_ERROR());
}

/* No command for CONTROL_IDLE_S: say so (when the output is empty) and close. */
static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->pending || c->closing)
		return;
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) > 0) {
		conn_free(c);
		return;
	}
	conn_close_after(c, "idle for " CONTROL_IDLE_TEXT ": closed");
}

/*
 * uid 0, the daemon's own uid, or a member of control.admin_group (primary
 * or supplementary group of the caller's user) may change things.
 */
static bool
caller_is_admin(const struct control *ctl, uid_t uid, gid_t gid)
{
	struct passwd *pw;
	gid_t groups[256];
	int n = 256, i;

	if (uid == 0 || uid == getuid())
		return true;
	if (!ctl->has_admin_gid)
		return false;
	if (gid == ctl->admin_gid)
		return true;
	if ((pw = getpwuid(uid)) == NULL)
		return false;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return false;
	for (i = 0; i < n; i++)
		if (groups[i] == ctl->admin_gid)
			return true;
	return false;
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct control_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (!c->pending && !c->closing && !c->out_full) {
		line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > CONTROL_MAX_LINE)
				conn_close_after(c, "line too long");
			return;
		}
		if (n > CONTROL_MAX_LINE) {
			free(line);
			conn_close_after(c, "line too long");
			return;
		}
		dispatch(c, line, n);
		free(line);
	}
}

/*
 * Splits one command line into words, finds its row in the command table,
 * checks the caller's privilege, parses the words into a request and runs
 * its handler. The privilege is checked before the words, so a caller
 * without it learns nothing more than "permission denied".
 */
static void
dispatch(struct control_conn *c, char *line, size_t len)
{
	const struct command *cmd;
	struct command_request rq;
	control_handler handler;
	char *argv[CONTROL_MAX_ARGS + 1], *p, *save = NULL;
	int argc = 0;
	size_t i;
	char msg[512], err[192], syn[128];

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	/* Commands are printable ASCII: anything else (NUL, control bytes,
	 * non-ASCII) is refused without being echoed, so answers stay valid
	 * UTF-8 JSON whatever a client sends. */
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch >= 0x7f) {
			c->pending = true;
			bufferevent_disable(c->bev, EV_READ);
			control_reply_error(c, "invalid characters in command line (printable ASCII only)");
			return;
		}
	}
	for (p = strtok_r(line, " \t", &save); p != NULL; p = strtok_r(NULL, " \t", &save)) {
		if (argc == CONTROL_MAX_ARGS) {
			c->pending = true;
			control_reply_error(c, "too many arguments");
			return;
		}
		argv[argc++] = p;
	}
	argv[argc] = NULL;
	if (argc == 0)
		return; /* a blank line is not a command: the idle timer runs on */
	c->pending = true;
	evtimer_del(c->idle);
	bufferevent_disable(c->bev, EV_READ);
	cmd = command_find(argv[0], COMMAND_DAEMON);
	if (cmd == NULL || (handler = c->ctl->handlers[cmd->id]) == NULL) {
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", argv[0]);
		control_reply_error(c, msg);
		return;
	}
	if (cmd->admin && !c->who.admin) {
		unsigned long n;

		snprintf(msg, sizeof(msg), "permission denied: '%s' needs uid 0 or the admin group",
		    cmd->name);
		if (log_rate_due(&c->ctl->refused_rate, CONTROL_LOG_INTERVAL_MS, &n))
			log_warn("%s: uid %ld pid %ld: %s (%lu refused in %us)", __func__, (long)c->who.uid,
			    (long)c->who.pid, msg, n, CONTROL_LOG_INTERVAL_MS / 1000);
		control_reply_error(c, msg);
		return;
	}
	if (command_parse(&rq, argc, argv, COMMAND_DAEMON, err, sizeof(err)) < 0) {
		command_synopsis(cmd, syn, sizeof(syn));
		snprintf(msg, sizeof(msg), "%s; usage: %s", err, syn);
		control_reply_error(c, msg);
		return;
	}
	handler(c, &c->who, &rq, c->ctl->arg);
}

/* Answers error, then closes once it is written. */
static void
conn_close_after(struct control_conn *c, const char *error)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, error);
	jbuf_raw(&b, "}\n");
	if (!b.oom)
		evbuffer_add(bufferevent_get_output(c->bev), b.s, b.len);
	jbuf_free(&b);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct control_conn *c = arg;

	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_free(c);
		return;
	}
	if (c->out_full && !c->pending)
		conn_resume(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct control_conn *c = arg;

	(void)bev;
	(void)what;
	if (c->pending) {
		/* The handler still owes an answer (switch --wait): keep the
		 * connection object until it replies, then it is dropped. */
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		c->closing = true;
		return;
	}
	conn_free(c);
}

static void
conn_free(struct control_conn *c)
{
	TAILQ_REMOVE(&c->ctl->conns, c, link);
	c->ctl->nconns--;
	c->ctl->nadmins -= c->who.admin;
	event_free(c->idle);
	bufferevent_free(c->bev);
	free(c);
}
