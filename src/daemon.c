#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "control.h"
#include "daemon.h"
#include "health.h"
#include "history.h"
#include "json.h"
#include "log.h"
#include "pool.h"
#include "state.h"
#include "switcher.h"
#include "worker.h"

#define WAIT_POLL_MS 20

/* A `switch --wait` caller, answered once the old color has drained. */
struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct control_conn *conn;
	enum color old;
	uint64_t deadline_ms;
	char *answer_prefix; /* the switch answer without its closing brace */
};

struct daemon {
	struct config *cfg;
	struct worker *workers;
	unsigned nworkers;
	struct pool *pools[COLOR_COUNT];
	struct route routes[COLOR_COUNT]; /* routes[c]: c active */
	struct switcher sw;
	struct health *health;
	struct control *control;
	char *history;
	struct event_base *base;
	struct event *sig_term, *sig_int, *sig_hup;
	struct event *drain_timer, *reap_timer, *window_timer, *wait_timer, *tunnel_timer;
	TAILQ_HEAD(, waiter) waiters;
	uint64_t switches_manual, switches_rollback, switch_refused;
	bool stopping;
};

static int daemon_start(struct daemon *d);
static void daemon_free(struct daemon *d);
static int load_state(struct daemon *d);
static void on_stop_signal(evutil_socket_t sig, short what, void *arg);
static void on_hup(evutil_socket_t sig, short what, void *arg);
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg);
static void on_reap(evutil_socket_t fd, short what, void *arg);
static void on_window(evutil_socket_t fd, short what, void *arg);
static void on_wait_poll(evutil_socket_t fd, short what, void *arg);
static void on_tunnel_drain(evutil_socket_t fd, short what, void *arg);
static void post_all(struct daemon *d, unsigned msg);
static void arm_window_timer(struct daemon *d);
static void arm_ms(struct event *ev, uint64_t ms);
static uint64_t mono_ms(void);
static int64_t wall_ms(void);
static void record(struct daemon *d, const char *event, int from, int to, const char *trigger,
    const char *reason, const struct control_caller *who);

static void cmd_status(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);
static void cmd_switch(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);
static void cmd_health(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);
static void cmd_history(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);
static void cmd_commit(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);
static void cmd_help(struct control_conn *c, const struct control_caller *who, int argc,
    char **argv, void *arg);

static const struct control_command commands[] = {
    {"status", false, cmd_status, "status: active and previous color, state, pools"},
    {"health", false, cmd_health, "health [blue|green]: each server's state"},
    {"history", false, cmd_history, "history [N]: the switch audit log"},
    {"help", false, cmd_help, "help: list commands"},
    {"switch", true, cmd_switch,
        "switch blue|green [--force] [--if-gen N] [--dry-run] [--wait]"},
    {"rollback", true, cmd_switch, "rollback [--force] [--if-gen N] [--dry-run] [--wait]"},
    {"commit", true, cmd_commit, "commit: end the safety window now"},
    {NULL, false, NULL, NULL},
};

int
daemon_run(struct config *cfg)
{
	struct daemon d;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	TAILQ_INIT(&d.waiters);
	signal(SIGPIPE, SIG_IGN);
	if (daemon_start(&d) == 0) {
		event_base_dispatch(d.base);
		rc = 0;
		log_info("stopped");
	}
	daemon_free(&d);
	return rc;
}

static int
daemon_start(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	unsigned i;

	d->nworkers = config_workers(cfg);
	if ((d->history = history_path(cfg->state_file)) == NULL)
		goto oom;
	if (load_state(d) < 0)
		return -1;
	for (i = 0; i < COLOR_COUNT; i++) {
		d->pools[i] = pool_new((enum color)i, &cfg->pools[i], d->nworkers);
		if (d->pools[i] == NULL)
			goto oom;
	}
	for (i = 0; i < COLOR_COUNT; i++) {
		d->routes[i].pools[COLOR_BLUE] = d->pools[COLOR_BLUE];
		d->routes[i].pools[COLOR_GREEN] = d->pools[COLOR_GREEN];
		d->routes[i].active = (enum color)i;
	}
	route_publish(&d->routes[d->sw.active]);

	if (worker_probe_listeners(cfg) < 0)
		return -1;
	if ((d->base = event_base_new()) == NULL)
		goto oom;
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	d->reap_timer = event_new(d->base, -1, EV_PERSIST, on_reap, d);
	d->window_timer = evtimer_new(d->base, on_window, d);
	d->wait_timer = event_new(d->base, -1, EV_PERSIST, on_wait_poll, d);
	d->tunnel_timer = evtimer_new(d->base, on_tunnel_drain, d);
	if (d->sig_term == NULL || d->sig_int == NULL || d->sig_hup == NULL ||
	    d->drain_timer == NULL || d->reap_timer == NULL || d->window_timer == NULL ||
	    d->wait_timer == NULL || d->tunnel_timer == NULL || evsignal_add(d->sig_term, NULL) < 0 ||
	    evsignal_add(d->sig_int, NULL) < 0 || evsignal_add(d->sig_hup, NULL) < 0)
		goto oom;
	if ((d->control = control_new(d->base, &cfg->control, commands, d)) == NULL)
		return -1;
	if ((d->health = health_new(d->base, &cfg->health, d->pools)) == NULL)
		goto oom;
	if ((d->workers = calloc(d->nworkers, sizeof(*d->workers))) == NULL)
		goto oom;
	for (i = 0; i < d->nworkers; i++) {
		if (worker_init(&d->workers[i], i, d->nworkers, cfg) < 0)
			goto fail;
	}
	worker_set_peers(d->workers, d->nworkers);
	for (i = 0; i < d->nworkers; i++) {
		if (worker_start(&d->workers[i]) < 0)
			goto fail;
	}
	arm_window_timer(d);
	for (size_t l = 0; l < cfg->nlistens; l++)
		log_info("listening on %s", cfg->listens[l].addr.text);
	log_info("cutoverd %s ready: %u worker%s, active color %s, generation %" PRIu64
	         ", control socket %s",
	    PACKAGE_VERSION, d->nworkers, d->nworkers == 1 ? "" : "s", color_name(d->sw.active),
	    d->sw.generation, cfg->control.socket);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	return 0;
oom:
	log_err("startup failed: out of memory");
	return -1;
fail:
	/* Workers already running must stop before their memory goes. */
	for (unsigned j = 0; j < d->nworkers; j++)
		if (d->workers[j].started)
			worker_post(&d->workers[j], WORKER_MSG_FORCE);
	return -1;
}

/* The state file wins over `initial`; a corrupt one stops startup. */
static int
load_state(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	struct state st;
	char err[512];
	int rc;

	memset(&st, 0, sizeof(st));
	rc = state_load(cfg->state_file, &st, err, sizeof(err));
	if (rc < 0) {
		log_err("%s", err);
		return -1;
	}
	if (rc == 1) {
		switcher_init(&d->sw, cfg->initial, 0, cfg->sw.min_healthy, cfg->sw.safety_window_ms);
		log_info("no state file %s: starting on initial color %s", cfg->state_file,
		    color_name(cfg->initial));
		return 0;
	}
	switcher_init(&d->sw, st.active, st.generation, cfg->sw.min_healthy, cfg->sw.safety_window_ms);
	d->sw.has_previous = st.has_previous;
	d->sw.previous = st.previous;
	if (st.window_end_ms > wall_ms()) {
		/* The safety window survives a restart. */
		d->sw.state = SWITCHER_OBSERVING;
		d->sw.window_end_ms = mono_ms() + (uint64_t)(st.window_end_ms - wall_ms());
	}
	log_info("state file %s: active color %s, generation %" PRIu64, cfg->state_file,
	    color_name(st.active), st.generation);
	return 0;
}

static void
daemon_free(struct daemon *d)
{
	struct waiter *wt;
	unsigned i;

	if (d->workers != NULL) {
		for (i = 0; i < d->nworkers; i++)
			worker_free(&d->workers[i]);
		free(d->workers);
	}
	while ((wt = TAILQ_FIRST(&d->waiters)) != NULL) {
		TAILQ_REMOVE(&d->waiters, wt, link);
		free(wt->answer_prefix);
		free(wt);
	}
	control_free(d->control);
	health_free(d->health);
	if (d->sig_term != NULL)
		event_free(d->sig_term);
	if (d->sig_int != NULL)
		event_free(d->sig_int);
	if (d->sig_hup != NULL)
		event_free(d->sig_hup);
	if (d->drain_timer != NULL)
		event_free(d->drain_timer);
	if (d->reap_timer != NULL)
		event_free(d->reap_timer);
	if (d->window_timer != NULL)
		event_free(d->window_timer);
	if (d->wait_timer != NULL)
		event_free(d->wait_timer);
	if (d->tunnel_timer != NULL)
		event_free(d->tunnel_timer);
	if (d->base != NULL)
		event_base_free(d->base);
	route_publish(NULL);
	for (i = 0; i < COLOR_COUNT; i++)
		pool_unref(d->pools[i]);
	free(d->history);
	config_free(d->cfg);
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
arm_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(ev, &tv);
}

static void
post_all(struct daemon *d, unsigned msg)
{
	unsigned i;

	for (i = 0; i < d->nworkers; i++)
		worker_post(&d->workers[i], msg);
}

static void
record(struct daemon *d, const char *event, int from, int to, const char *trigger,
    const char *reason, const struct control_caller *who)
{
	struct history_entry e;
	char err[512];

	memset(&e, 0, sizeof(e));
	e.time_ms = wall_ms();
	e.event = event;
	e.from = from < 0 ? NULL : color_name((enum color)from);
	e.to = to < 0 ? NULL : color_name((enum color)to);
	e.trigger = trigger;
	e.reason = reason;
	e.uid = who != NULL ? (long)who->uid : -1;
	e.pid = who != NULL ? (long)who->pid : -1;
	e.generation = d->sw.generation;
	if (history_append(d->history, &e, err, sizeof(err)) < 0)
		log_err("history: %s", err);
}

/* Signals. */

/* SIGTERM/SIGINT: stop accepting, let requests in flight finish. */
static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval poll = {0, 50 * 1000};
	uint64_t ms = d->cfg->sw.drain_timeout_ms;

	(void)what;
	if (d->stopping) {
		log_info("signal %d again: stopping now", (int)sig);
		post_all(d, WORKER_MSG_FORCE);
		return;
	}
	d->stopping = true;
	log_info("signal %d: stopping, draining requests in flight for at most %" PRIu64 "ms",
	    (int)sig, ms);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	post_all(d, WORKER_MSG_STOP);
	arm_ms(d->drain_timer, ms);
	event_add(d->reap_timer, &poll);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	/* Hitless reload lands with issue #6. */
	log_warn("SIGHUP: configuration reload is not implemented yet; running configuration kept");
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	log_warn("drain timeout: closing the connections still open");
	post_all(d, WORKER_MSG_FORCE);
}

/* While stopping: leave the main loop once every worker's loop has ended. */
static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	unsigned i;

	(void)fd;
	(void)what;
	for (i = 0; i < d->nworkers; i++)
		if (!atomic_load(&d->workers[i].done))
			return;
	event_base_loopexit(d->base, NULL);
}

/* The safety window. */

static void
arm_window_timer(struct daemon *d)
{
	uint64_t left = switcher_window_left(&d->sw, mono_ms());

	evtimer_del(d->window_timer);
	if (d->sw.state == SWITCHER_OBSERVING)
		arm_ms(d->window_timer, left);
}

static void
on_window(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (switcher_tick(&d->sw, mono_ms())) {
		log_info("safety window ended: %s is stable (generation %" PRIu64 ")",
		    color_name(d->sw.active), d->sw.generation);
		record(d, "window_end", -1, (int)d->sw.active, "timer", NULL, NULL);
	} else {
		arm_window_timer(d);
	}
}

/* Draining. */

static void
on_wait_poll(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct waiter *wt, *next;
	uint64_t now = mono_ms();

	(void)fd;
	(void)what;
	for (wt = TAILQ_FIRST(&d->waiters); wt != NULL; wt = next) {
		bool drained = worker_inflight(d->workers, d->nworkers, wt->old) == 0;
		struct jbuf b;

		next = TAILQ_NEXT(wt, link);
		if (!drained && now < wt->deadline_ms)
			continue;
		jbuf_init(&b);
		jbuf_raw(&b, wt->answer_prefix);
		jbuf_printf(&b, ",\"drained\":%s}", drained ? "true" : "false");
		control_reply(wt->conn, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
		jbuf_free(&b);
		TAILQ_REMOVE(&d->waiters, wt, link);
		free(wt->answer_prefix);
		free(wt);
	}
	if (TAILQ_EMPTY(&d->waiters))
		event_del(d->wait_timer);
}

static void
on_tunnel_drain(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	post_all(d, WORKER_MSG_CLOSE_TUNNELS);
}

/* Control commands. */

static void
cmd_status(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	struct daemon *d = arg;
	uint64_t left = switcher_window_left(&d->sw, mono_ms());
	struct jbuf b;
	int col;

	(void)who;
	(void)argv;
	if (argc != 1) {
		control_reply_error(c, "usage: status");
		return;
	}
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(d->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, d->sw.has_previous ? color_name(d->sw.previous) : NULL);
	jbuf_printf(&b, ",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"window_left_s\":%" PRIu64,
	    switcher_state_name(d->sw.state), d->sw.generation, (left + 999) / 1000);
	jbuf_raw(&b, ",\"pools\":{");
	for (col = 0; col < COLOR_COUNT; col++) {
		const struct pool *p = d->pools[col];

		jbuf_printf(&b, "%s\"%s\":{\"healthy\":%zu,\"total\":%zu,\"inflight\":%" PRIu64 "}",
		    col ? "," : "", color_name((enum color)col), pool_healthy(p), p->nservers,
		    worker_inflight(d->workers, d->nworkers, (enum color)col));
	}
	jbuf_raw(&b, "}}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
	jbuf_free(&b);
}

/*
 * switch COLOR [--force] [--if-gen N] [--dry-run] [--wait], and rollback
 * (same flags, target = previous color). The state file is written before
 * the route pointer moves, and the answer goes out after both.
 */
static void
cmd_switch(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	struct daemon *d = arg;
	struct switch_request rq;
	struct switcher next;
	struct state st;
	bool rollback = strcmp(argv[0], "rollback") == 0, wait = false, have_target = false;
	enum switch_verdict v;
	enum color from = d->sw.active;
	char reason[512], err[512], msg[768];
	struct jbuf b;
	int i;

	memset(&rq, 0, sizeof(rq));
	rq.rollback = rollback;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0)
			rq.force = true;
		else if (strcmp(argv[i], "--dry-run") == 0)
			rq.dry_run = true;
		else if (strcmp(argv[i], "--wait") == 0)
			wait = true;
		else if (strcmp(argv[i], "--if-gen") == 0 && i + 1 < argc) {
			char *end;

			errno = 0;
			rq.if_gen = strtoull(argv[++i], &end, 10);
			if (errno != 0 || *end != '\0' || argv[i][0] == '-' || argv[i][0] == '\0') {
				control_reply_error(c, "--if-gen needs a generation number");
				return;
			}
			rq.has_if_gen = true;
		} else if (!rollback && !have_target && color_parse(argv[i], &rq.target) == 0)
			have_target = true;
		else {
			snprintf(msg, sizeof(msg), "usage: %s; unexpected '%.64s'",
			    rollback ? "rollback [--force] [--if-gen N] [--dry-run] [--wait]"
			             : "switch blue|green [--force] [--if-gen N] [--dry-run] [--wait]",
			    argv[i]);
			control_reply_error(c, msg);
			return;
		}
	}
	if (!rollback && !have_target) {
		control_reply_error(c, "usage: switch blue|green [--force] [--if-gen N] [--dry-run] [--wait]");
		return;
	}
	if (rollback && d->sw.has_previous)
		rq.target = d->sw.previous;
	rq.target_healthy = (unsigned)pool_confirmed(d->pools[rq.target]);
	rq.target_total = (unsigned)d->pools[rq.target]->nservers;
	reason[0] = '\0';
	v = switcher_decide(&d->sw, &rq, reason, sizeof(reason));
	if (v == SWITCH_REFUSED) {
		if (!rq.dry_run) {
			d->switch_refused++;
			record(d, "refused", (int)from, rollback && !d->sw.has_previous ? -1 : (int)rq.target,
			    "manual", reason, who);
		}
		log_warn("%s to %s refused (uid %ld pid %ld): %s", argv[0], color_name(rq.target),
		    (long)who->uid, (long)who->pid, reason);
		snprintf(msg, sizeof(msg), "%s to %s refused: %s", argv[0], color_name(rq.target), reason);
		control_reply_error(c, msg);
		return;
	}
	jbuf_init(&b);
	if (v == SWITCH_NOOP || rq.dry_run) {
		jbuf_raw(&b, "{\"ok\":true,\"active\":");
		jbuf_str(&b, color_name(d->sw.active));
		jbuf_raw(&b, ",\"previous\":");
		jbuf_str(&b, d->sw.has_previous ? color_name(d->sw.previous) : NULL);
		jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":false,\"dry_run\":%s,\"target\":\"%s\"}",
		    d->sw.generation, rq.dry_run ? "true" : "false", color_name(rq.target));
		control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
		jbuf_free(&b);
		return;
	}
	next = d->sw;
	switcher_commit(&next, rq.target, mono_ms());
	memset(&st, 0, sizeof(st));
	st.active = next.active;
	st.has_previous = true;
	st.previous = next.previous;
	st.generation = next.generation;
	st.switched_at_ms = wall_ms();
	st.window_end_ms = next.state == SWITCHER_OBSERVING
	    ? st.switched_at_ms + (int64_t)d->cfg->sw.safety_window_ms : 0;
	if (state_save(d->cfg->state_file, &st, err, sizeof(err)) < 0) {
		/* Never switch what a restart would forget. */
		log_err("%s to %s refused: %s", argv[0], color_name(rq.target), err);
		snprintf(msg, sizeof(msg), "%s to %s refused: cannot write state: %s", argv[0],
		    color_name(rq.target), err);
		d->switch_refused++;
		record(d, "refused", (int)from, (int)rq.target, "manual", msg, who);
		control_reply_error(c, msg);
		jbuf_free(&b);
		return;
	}
	d->sw = next;
	/* The switch itself: one release store. */
	route_publish(&d->routes[d->sw.active]);
	if (rollback)
		d->switches_rollback++;
	else
		d->switches_manual++;
	log_info("%s: %s -> %s, generation %" PRIu64 " (uid %ld pid %ld%s)", argv[0],
	    color_name(from), color_name(d->sw.active), d->sw.generation, (long)who->uid,
	    (long)who->pid, rq.force ? ", forced" : "");
	record(d, rollback ? "rollback" : "switch", (int)from, (int)d->sw.active, "manual",
	    rq.force ? "forced" : NULL, who);
	post_all(d, WORKER_MSG_SWITCHED);
	arm_ms(d->tunnel_timer, d->cfg->sw.drain_timeout_ms);
	arm_window_timer(d);

	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(d->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, color_name(d->sw.previous));
	jbuf_printf(&b, ",\"generation\":%" PRIu64 ",\"changed\":true,\"dry_run\":false", d->sw.generation);
	if (b.oom) {
		control_reply_error(c, "out of memory");
		jbuf_free(&b);
		return;
	}
	if (wait) {
		struct waiter *wt = calloc(1, sizeof(*wt));

		if (wt == NULL) {
			control_reply_error(c, "out of memory");
			jbuf_free(&b);
			return;
		}
		wt->conn = c;
		wt->old = from;
		wt->deadline_ms = mono_ms() + d->cfg->sw.drain_timeout_ms;
		wt->answer_prefix = b.s; /* ownership moves to the waiter */
		TAILQ_INSERT_TAIL(&d->waiters, wt, link);
		if (!event_pending(d->wait_timer, EV_TIMEOUT, NULL)) {
			struct timeval tv = {0, WAIT_POLL_MS * 1000};

			event_add(d->wait_timer, &tv);
		}
		return;
	}
	jbuf_raw(&b, "}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
	jbuf_free(&b);
}

static void
cmd_health(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	struct daemon *d = arg;
	enum color only;
	struct jbuf b;

	(void)who;
	if (argc > 2 || (argc == 2 && color_parse(argv[1], &only) < 0)) {
		control_reply_error(c, "usage: health [blue|green]");
		return;
	}
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"servers\":");
	health_report(d->health, argc == 2 ? (int)only : -1, &b);
	jbuf_raw(&b, "}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
	jbuf_free(&b);
}

static void
cmd_history(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	struct daemon *d = arg;
	unsigned long max = 0;
	char **lines = NULL, err[512];
	size_t n = 0, i;
	struct jbuf b;

	(void)who;
	if (argc > 2) {
		control_reply_error(c, "usage: history [N]");
		return;
	}
	if (argc == 2) {
		char *end;

		errno = 0;
		max = strtoul(argv[1], &end, 10);
		if (errno != 0 || *end != '\0' || argv[1][0] == '-') {
			control_reply_error(c, "usage: history [N]");
			return;
		}
	}
	if (history_read(d->history, max, &lines, &n, err, sizeof(err)) < 0) {
		control_reply_error(c, err);
		return;
	}
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"entries\":[");
	for (i = 0; i < n; i++) {
		if (i > 0)
			jbuf_raw(&b, ",");
		jbuf_raw(&b, lines[i]);
	}
	jbuf_raw(&b, "]}");
	history_lines_free(lines, n);
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
	jbuf_free(&b);
}

static void
cmd_commit(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	struct daemon *d = arg;
	struct state st;
	char err[512];

	(void)argv;
	if (argc != 1) {
		control_reply_error(c, "usage: commit");
		return;
	}
	if (!switcher_end_window(&d->sw)) {
		control_reply(c, "{\"ok\":true,\"changed\":false,\"message\":\"no safety window is open\"}");
		return;
	}
	memset(&st, 0, sizeof(st));
	st.active = d->sw.active;
	st.has_previous = d->sw.has_previous;
	st.previous = d->sw.previous;
	st.generation = d->sw.generation;
	st.switched_at_ms = wall_ms();
	if (state_save(d->cfg->state_file, &st, err, sizeof(err)) < 0)
		log_err("commit: %s", err);
	evtimer_del(d->window_timer);
	log_info("commit: safety window ended by uid %ld pid %ld; %s is stable", (long)who->uid,
	    (long)who->pid, color_name(d->sw.active));
	record(d, "commit", -1, (int)d->sw.active, "manual", NULL, who);
	control_reply(c, "{\"ok\":true,\"changed\":true,\"message\":\"safety window ended\"}");
}

static void
cmd_help(struct control_conn *c, const struct control_caller *who, int argc, char **argv,
    void *arg)
{
	const struct control_command *cmd;
	struct jbuf b;

	(void)who;
	(void)argc;
	(void)argv;
	(void)arg;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"commands\":[");
	for (cmd = commands; cmd->name != NULL; cmd++) {
		if (cmd != commands)
			jbuf_raw(&b, ",");
		jbuf_str(&b, cmd->help);
	}
	jbuf_raw(&b, "]}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"out of memory\"}" : b.s);
	jbuf_free(&b);
}
