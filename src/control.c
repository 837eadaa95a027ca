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

#include "config.h"
#include "control.h"
#include "json.h"
#include "log.h"

#define CONTROL_MAX_LINE 4096
#define CONTROL_MAX_ARGS 32
#define CONTROL_MAX_CONNS 64
#define CONTROL_IDLE_S 60

struct control_conn {
	struct control *ctl;
	TAILQ_ENTRY(control_conn) link;
	struct bufferevent *bev;
	struct control_caller who;
	bool pending; /* a handler has not answered yet */
	bool closing; /* close once the output is flushed */
};

struct control {
	struct event_base *base;
	struct evconnlistener *lst;
	char *path;
	const struct control_command *table;
	void *arg;
	bool has_admin_gid;
	gid_t admin_gid;
	TAILQ_HEAD(, control_conn) conns;
	unsigned nconns;
};

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg);
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
    const struct control_command *table, void *arg)
{
	struct control *ctl;
	int fd;

	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return NULL;
	ctl->base = base;
	ctl->table = table;
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
		log_err("control socket %s: cannot listen", cfg->socket);
		goto fail;
	}
	return ctl;
fail:
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
		log_warn("control: admin_group '%s' does not exist: only root may change things", group);
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
		log_err("control socket %s: path too long", cfg->socket);
		return -1;
	}
	memcpy(sun.sun_path, cfg->socket, strlen(cfg->socket) + 1);
	if (lstat(cfg->socket, &st) == 0) {
		int probe;

		if (!S_ISSOCK(st.st_mode)) {
			log_err("control socket %s: exists and is not a socket", cfg->socket);
			return -1;
		}
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
			close(probe);
			log_err("control socket %s: in use by another running cutoverd", cfg->socket);
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
			log_err("control socket %s: group '%s' does not exist", cfg->socket, cfg->group);
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
	log_err("control socket %s: %s", cfg->socket, strerror(errno));
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

	(void)l;
	(void)sa;
	(void)salen;
	if (ctl->nconns >= CONTROL_MAX_CONNS) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many control connections\"}\n";

		if (write(fd, busy, sizeof(busy) - 1) < 0) {
			/* The client is gone anyway. */
		}
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("control: SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->bev = bufferevent_socket_new(ctl->base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(c);
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->who.uid = cred.uid;
	c->who.gid = cred.gid;
	c->who.pid = cred.pid;
	c->who.admin = caller_is_admin(ctl, cred.uid, cred.gid);
	TAILQ_INSERT_TAIL(&ctl->conns, c, link);
	ctl->nconns++;
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_MAX_LINE * 2);
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
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

	while (!c->pending && !c->closing) {
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

/* Parses one command line and runs its handler. */
static void
dispatch(struct control_conn *c, char *line, size_t len)
{
	const struct control_command *cmd;
	char *argv[CONTROL_MAX_ARGS + 1], *p, *save = NULL;
	int argc = 0;
	size_t i;
	char msg[256];

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
		return;
	c->pending = true;
	bufferevent_disable(c->bev, EV_READ);
	for (cmd = c->ctl->table; cmd->name != NULL; cmd++)
		if (strcmp(cmd->name, argv[0]) == 0)
			break;
	if (cmd->name == NULL) {
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", argv[0]);
		control_reply_error(c, msg);
		return;
	}
	if (cmd->admin && !c->who.admin) {
		snprintf(msg, sizeof(msg), "permission denied: '%s' needs uid 0 or the admin group",
		    cmd->name);
		log_warn("control: uid %ld pid %ld: %s", (long)c->who.uid, (long)c->who.pid, msg);
		control_reply_error(c, msg);
		return;
	}
	cmd->handler(c, &c->who, argc, argv, c->ctl->arg);
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

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		conn_free(c);
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
	bufferevent_free(c->bev);
	free(c);
}
