#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>

#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "accesslog.h"
#include "clock.h"
#include "commands.h"
#include "control.h"
#include "daemon.h"
#include "duration.h"
#include "engine.h"
#include "fdlimit.h"
#include "fleet.h"
#include "generation.h"
#include "health.h"
#include "history.h"
#include "hooks.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "resolver.h"
#include "state.h"
#include "statuspage.h"
#include "transition.h"
#include "watchdog.h"
#include "worker.h"

#define WAIT_POLL_MS 20
#define GUARD_TICK_MS 100

/* A `switch --wait` caller, answered once the old color has drained. */
struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct control_conn *conn;
	enum color old;
	uint64_t deadline_ms;
	char *answer_prefix; /* the switch answer without its closing brace */
};

TAILQ_HEAD(waiter_list, waiter);

struct daemon {
	struct generation live;    /* configuration, pools, routes, TLS in use */
	struct generation retired; /* what a reload replaced, until the workers let go */
	unsigned epoch;            /* of the last reload */
	struct worker *workers;
	unsigned nworkers;
	struct engine engine; /* the switch state; changed only through engine_* */
	struct transition_ctx tx; /* a caller's switch in progress */
	struct commands cmds;     /* the control commands' view of the above */
	struct health *health;
	struct control *control;
	struct metrics *metrics;
	struct metrics_server *metric_servers;
	struct statuspage *statuspage; /* with metrics: the page's samples and history */
	struct accesslog *accesslog;
	char *history;
	struct event_base *base;
	struct event *sig_term, *sig_int, *sig_hup, *sig_usr1;
	struct event *drain_timer, *reap_timer, *window_timer, *wait_timer, *tunnel_timer,
	    *guard_timer;
	struct waiter_list waiters;
	struct hook_set hooks;  /* notification hooks still running */
	struct event *retire_timer;
	/* A reload asked for while the previous one is still being applied
	 * runs as soon as that one is done; its callers are answered then. */
	bool reload_queued;
	struct control_conn **reload_conns;
	size_t nreload_conns;
	struct event *watchdog_timer; /* systemd WatchdogSec=, when enabled */
	uint64_t watchdog_usec;
	struct event *state_timer; /* engine_retry_save while the state is unsaved */
	struct watchdog watchdog;
	struct fleet *fleet; /* NULL without a fleet group */
	struct resolver *resolver; /* NULL while no server is written by name */
	bool dns_dirty; /* an answer changed while a reload or respin was being handed over */
	bool stopping;
};

static int daemon_start(struct daemon *d);
static int daemon_reload(struct daemon *d, struct config_errors *errs);
static bool reload_pending(const struct daemon *d);
static int add_waiter(void *arg, struct control_conn *c, enum color old, char *answer_prefix);
static void daemon_free(struct daemon *d);
static int load_state(const struct config *cfg, struct state *st, int *rc);
static void engine_config_of(const struct config *cfg, struct engine_config *ec);
static void on_stop_signal(evutil_socket_t sig, short what, void *arg);
static void on_hup(evutil_socket_t sig, short what, void *arg);
static void on_drain_timeout(evutil_socket_t fd, short what, void *arg);
static void on_reap(evutil_socket_t fd, short what, void *arg);
static void on_window(evutil_socket_t fd, short what, void *arg);
static void on_state_retry(evutil_socket_t fd, short what, void *arg);
static void on_wait_poll(evutil_socket_t fd, short what, void *arg);
static void on_tunnel_drain(evutil_socket_t fd, short what, void *arg);
static void arm_ms(struct event *ev, uint64_t ms);
static void on_usr1(evutil_socket_t sig, short what, void *arg);
static void on_retire(evutil_socket_t fd, short what, void *arg);
static void on_watchdog(evutil_socket_t fd, short what, void *arg);
static void run_queued_reload(struct daemon *d);
static int build_metric_servers(struct daemon *d);
static void on_guard_tick(evutil_socket_t fd, short what, void *arg);
static void on_server_down(void *arg);
static void daemon_post(struct daemon *d, unsigned msg);
static int fleet_start(struct daemon *d, int *load_rc, struct state *st);
static void guard_tick(struct daemon *d);
static int start_resolver(struct daemon *d);
static void on_dns_change(void *arg);
static void dns_respin(struct daemon *d);

/* The engine's effects (engine.h): the real state file, route, history, hooks and timers. */
static uint64_t fx_mono_ms(void *arg);
static int64_t fx_wall_ms(void *arg);
static int fx_save_state(void *arg, const struct state *st, char *err, size_t errlen);
static void fx_publish(void *arg, enum color active);
static void fx_publish_ramp(void *arg, enum color active, enum color target, unsigned weight_bp);
static void fx_record(void *arg, const struct history_entry *e);
static void fx_notify(void *arg, enum color from, enum color to);
static void fx_run_hook(void *arg, enum engine_hook hook, int from, int to, uint64_t generation,
    const char *reason);
static void fx_arm_window(void *arg, bool armed, uint64_t ms);
static void fx_arm_retry(void *arg, uint64_t ms);
static void fx_sample(void *arg, enum color c, struct guard_sample *s);
static void fx_servers(void *arg, enum color c, struct engine_servers *n);
static void fx_interrupt(void *arg, const char *why);
static int fx_propose_ramp(void *arg, const struct state *next, const char *event, const char *reason);

static const struct engine_effects effects = {
	.mono_ms = fx_mono_ms,
	.wall_ms = fx_wall_ms,
	.save_state = fx_save_state,
	.publish = fx_publish,
	.publish_ramp = fx_publish_ramp,
	.record = fx_record,
	.notify = fx_notify,
	.run_hook = fx_run_hook,
	.arm_window = fx_arm_window,
	.arm_retry = fx_arm_retry,
	.sample = fx_sample,
	.servers = fx_servers,
	.interrupt = fx_interrupt,
	.propose_ramp = fx_propose_ramp,
};
static void fill_metrics(struct metrics_snapshot *snap, void *arg);
static void status_json(struct jbuf *b, void *arg);
static void reload_command(void *arg, struct control_conn *c, const struct control_caller *who);

int
daemon_run(struct config *cfg)
{
	struct daemon d;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.live.cfg = cfg;
	TAILQ_INIT(&d.waiters);
	hook_set_init(&d.hooks);
	signal(SIGPIPE, SIG_IGN);
	if (daemon_start(&d) == 0) {
		event_base_dispatch(d.base);
		rc = 0;
		/* One last try if unsaved; otherwise say what the next start will see. */
		char err[512];

		if (engine_save_now(&d.engine, err, sizeof(err)) < 0)
			log_err("%s: stopping with the state file not saved (%s): the next start "
			        "will not know generation %" PRIu64 " (%s active)", __func__,
			    err, d.engine.sw.generation, color_name(d.engine.sw.active));
		log_info("stopped");
	}
	daemon_free(&d);
	return rc;
}

static int
daemon_start(struct daemon *d)
{
	struct config *cfg = d->live.cfg;
	struct config_errors errs = {0};
	struct engine_config ec;
	struct state st;
	int load_rc;
	unsigned i;

	d->nworkers = config_workers(cfg);
	worker_set_conn_cap(fdlimit_conn_cap(fdlimit_raise(), cfg->limits.max_connections,
	    cfg->pools[COLOR_BLUE].nservers + cfg->pools[COLOR_GREEN].nservers));
	if ((d->history = history_path(cfg->state_file)) == NULL)
		goto oom;
	engine_config_of(cfg, &ec);
	engine_init(&d->engine, &effects, d, &ec, cfg->initial);
	if (load_state(cfg, &st, &load_rc) < 0)
		return -1;
	if ((d->base = event_base_new()) == NULL)
		goto oom;
	/* Names are resolved before the first generation is built. */
	if (config_nnames(cfg) > 0 && start_resolver(d) < 0)
		return -1;
	/* The first generation: built as a reload builds its own. */
	if (generation_build_named(&d->live, cfg, NULL, d->resolver, d->nworkers, &errs) < 0) {
		for (size_t k = 0; k < errs.n; k++)
			log_err("%s", errs.msgs[k]);
		config_errors_free(&errs);
		return -1;
	}
	if (generation_check(cfg, NULL, &errs) < 0)
		return -1;
	/* Before any signal or timer is on the loop: fleet_boot runs it. */
	if (cfg->fleet.enabled && fleet_start(d, &load_rc, &st) < 0)
		return -1;
	d->sig_term = evsignal_new(d->base, SIGTERM, on_stop_signal, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_stop_signal, d);
	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	d->drain_timer = evtimer_new(d->base, on_drain_timeout, d);
	d->reap_timer = event_new(d->base, -1, EV_PERSIST, on_reap, d);
	d->window_timer = evtimer_new(d->base, on_window, d);
	d->wait_timer = event_new(d->base, -1, EV_PERSIST, on_wait_poll, d);
	d->tunnel_timer = evtimer_new(d->base, on_tunnel_drain, d);
	d->sig_usr1 = evsignal_new(d->base, SIGUSR1, on_usr1, d);
	d->guard_timer = event_new(d->base, -1, EV_PERSIST, on_guard_tick, d);
	d->retire_timer = event_new(d->base, -1, EV_PERSIST, on_retire, d);
	d->state_timer = evtimer_new(d->base, on_state_retry, d);
	if (d->sig_term == NULL || d->sig_int == NULL || d->sig_hup == NULL || d->sig_usr1 == NULL ||
	    d->drain_timer == NULL || d->reap_timer == NULL || d->window_timer == NULL ||
	    d->wait_timer == NULL || d->tunnel_timer == NULL || d->guard_timer == NULL ||
	    d->retire_timer == NULL || d->state_timer == NULL ||
	    evsignal_add(d->sig_term, NULL) < 0 || evsignal_add(d->sig_int, NULL) < 0 ||
	    evsignal_add(d->sig_hup, NULL) < 0 || evsignal_add(d->sig_usr1, NULL) < 0)
		goto oom;
	d->tx.fleet = d->fleet;
	d->cmds.fleet = d->fleet;
	d->tx.base = d->base;
	d->tx.live = &d->live;
	d->tx.engine = &d->engine;
	d->tx.add_waiter = add_waiter;
	d->tx.arg = d;
	{
		struct timeval tick = {0, GUARD_TICK_MS * 1000};

		event_add(d->guard_timer, &tick);
	}
	/* The route and the window, from the state file (or `initial`). */
	if (engine_restore(&d->engine, load_rc, &st, cfg->initial) < 0)
		return -1;
	if (d->fleet != NULL)
		fleet_run(d->fleet);
	if (cfg->metrics.enabled) {
		if (build_metric_servers(d) < 0)
			goto oom;
		if ((d->metrics = metrics_new(d->base, &cfg->metrics.listen, fill_metrics, d)) == NULL)
			return -1;
	}
	if ((d->control = control_new(d->base, &cfg->control, commands_handlers, &d->cmds)) == NULL)
		return -1;
	if ((d->health = health_new(d->base, &cfg->health, d->live.pools)) == NULL)
		goto oom;
	health_set_down_cb(d->health, on_server_down, d);
	if (d->resolver != NULL)
		resolver_set_change_cb(d->resolver, on_dns_change, d);
	if ((d->workers = calloc(d->nworkers, sizeof(*d->workers))) == NULL)
		goto oom;
	d->cmds.base = d->base;
	d->cmds.live = &d->live;
	d->cmds.engine = &d->engine;
	d->cmds.tx = &d->tx;
	d->cmds.health = &d->health;
	d->cmds.workers = d->workers;
	d->cmds.nworkers = d->nworkers;
	d->cmds.history = d->history;
	d->cmds.resolver = &d->resolver;
	d->cmds.reload = reload_command;
	d->cmds.arg = d;
	if (d->metrics != NULL) {
		if ((d->statuspage = statuspage_new(d->base, &d->cmds, fx_sample, d)) == NULL)
			return -1;
		metrics_set_status(d->metrics, status_json, d);
		log_info("status page on http://%s/", cfg->metrics.listen.text);
	}
	if (cfg->access_log != NULL && (d->accesslog = accesslog_open(cfg->access_log)) == NULL) {
		log_err("%s: access_log %s: %s", __func__, cfg->access_log, strerror(errno));
		return -1;
	}
	for (i = 0; i < d->nworkers; i++) {
		if (worker_init(&d->workers[i], i, d->nworkers, cfg) < 0)
			goto fail;
		d->workers[i].accesslog = d->accesslog;
		d->workers[i].tls = d->live.tls;
	}
	worker_set_peers(d->workers, d->nworkers);
	for (i = 0; i < d->nworkers; i++) {
		if (worker_start(&d->workers[i]) < 0)
			goto fail;
	}
	for (size_t l = 0; l < cfg->nlistens; l++)
		log_info("listening on %s", cfg->listens[l].addr.text);
	log_info("cutoverd %s ready: %u worker%s, active color %s, generation %" PRIu64
	         ", control socket %s",
	    PACKAGE_VERSION, d->nworkers, d->nworkers == 1 ? "" : "s", color_name(d->engine.sw.active),
	    d->engine.sw.generation, cfg->control.socket);
#ifdef HAVE_SYSTEMD
	if (sd_watchdog_enabled(0, &d->watchdog_usec) > 0 && d->watchdog_usec > 0) {
		struct timeval tv = {(time_t)(d->watchdog_usec / 2 / 1000000),
		    (suseconds_t)(d->watchdog_usec / 2 % 1000000)};

		if ((d->watchdog_timer = event_new(d->base, -1, EV_PERSIST, on_watchdog, d)) == NULL)
			goto oom;
		watchdog_init(&d->watchdog, d->watchdog_usec, clock_mono_ms());
		event_add(d->watchdog_timer, &tv);
	}
	sd_notify(0, "READY=1");
#endif
	return 0;
oom:
	log_err("%s: startup failed: out of memory", __func__);
	return -1;
fail:
	/* Workers already running must stop before their memory goes. */
	for (unsigned j = 0; j < d->nworkers; j++)
		if (d->workers[j].started)
			worker_post(&d->workers[j], WORKER_MSG_FORCE);
	return -1;
}

/*
 * In a fleet, etcd's KEY/state wins over the state file, which keeps only
 * the last applied copy (saved here at once); the file is used when etcd
 * cannot be reached at start, and with neither the daemon refuses to start,
 * as with a corrupt state file: no color is ever guessed.
 */
static int
fleet_start(struct daemon *d, int *load_rc, struct state *st)
{
	const struct config *cfg = d->live.cfg;
	struct state est;
	char err[512];
	int rc;

	if ((d->fleet = fleet_new(d->base, &cfg->fleet, &d->engine, err, sizeof(err))) == NULL) {
		log_err("%s: fleet: %s", __func__, err);
		return -1;
	}
	rc = fleet_boot(d->fleet, *load_rc, st, &est);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		*st = est;
		*load_rc = 0;
		if (state_save(cfg->state_file, st, err, sizeof(err)) < 0)
			log_err("%s: fleet: cannot keep etcd's state in the state file: %s", __func__, err);
		return 0;
	}
	if (*load_rc == 1) {
		log_err("%s: fleet: etcd is unreachable and there is no state file %s: refusing to start "
		        "(no color is ever guessed)", __func__, cfg->state_file);
		return -1;
	}
	log_warn("%s: fleet: etcd is unreachable at start: serving the state file's last applied copy "
	         "(%s, generation %" PRIu64 ") until etcd answers", __func__, color_name(st->active),
	    st->generation);
	return 0;
}

/*
 * Reads the state file for engine_restore (which lets it win over
 * `initial`); a corrupt one stops startup, and so does a state directory
 * others could plant links in.
 */
static int
load_state(const struct config *cfg, struct state *st, int *rc)
{
	char err[512];

	if (state_check_dir(cfg->state_file, err, sizeof(err)) < 0) {
		log_err("%s: %s", __func__, err);
		return -1;
	}
	memset(st, 0, sizeof(*st));
	*rc = state_load(cfg->state_file, st, err, sizeof(err));
	if (*rc < 0) {
		log_err("%s: %s", __func__, err);
		return -1;
	}
	if (*rc == 1)
		log_info("no state file %s: starting on initial color %s", cfg->state_file,
		    color_name(cfg->initial));
	else
		log_info("state file %s: active color %s, generation %" PRIu64, cfg->state_file,
		    color_name(st->active), st->generation);
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
	if (d->accesslog != NULL)
		accesslog_close(d->accesslog);
	d->accesslog = NULL;
	/* The fleet first: a change it is writing answers its caller. */
	fleet_free(d->fleet);
	d->fleet = NULL;
	transition_cancel(&d->tx, "cutoverd is stopping");
	hook_set_cancel_all(&d->hooks);
	while ((wt = TAILQ_FIRST(&d->waiters)) != NULL) {
		TAILQ_REMOVE(&d->waiters, wt, link);
		free(wt->answer_prefix);
		free(wt);
	}
	control_free(d->control);
	health_free(d->health);
	metrics_free(d->metrics);
	statuspage_free(d->statuspage);
	free(d->metric_servers);
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
	if (d->sig_usr1 != NULL)
		event_free(d->sig_usr1);
	if (d->guard_timer != NULL)
		event_free(d->guard_timer);
	if (d->retire_timer != NULL)
		event_free(d->retire_timer);
	if (d->watchdog_timer != NULL)
		event_free(d->watchdog_timer);
	if (d->state_timer != NULL)
		event_free(d->state_timer);
	/* Workers are gone: nothing uses the old generation any more. */
	generation_free(&d->retired);
	resolver_free(d->resolver);
	if (d->base != NULL)
		event_base_free(d->base);
	route_publish(NULL);
	generation_free(&d->live);
	free(d->history);
	free(d->reload_conns);
}

static void
arm_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(ev, &tv);
}

static void
daemon_post(struct daemon *d, unsigned msg)
{
	unsigned i;

	for (i = 0; i < d->nworkers; i++)
		worker_post(&d->workers[i], msg);
}

static uint64_t
fx_mono_ms(void *arg)
{
	(void)arg;
	return clock_mono_ms();
}

static int64_t
fx_wall_ms(void *arg)
{
	(void)arg;
	return clock_wall_ms();
}

static int
fx_save_state(void *arg, const struct state *st, char *err, size_t errlen)
{
	struct daemon *d = arg;

	return state_save(d->live.cfg->state_file, st, err, errlen);
}

/* The switch: one atomic store of the route pointer. */
static void
fx_publish(void *arg, enum color active)
{
	struct daemon *d = arg;

	route_publish(&d->live.routes[active]);
}

/*
 * A ramp step: one atomic store of a route that carries the weight. Out of
 * memory (a few dozen bytes), the route stays as it was and the error is
 * logged: a step that does not happen is safe.
 */
static void
fx_publish_ramp(void *arg, enum color active, enum color target, unsigned weight_bp)
{
	struct daemon *d = arg;
	struct route *r = generation_ramp_route(&d->live, active, target, weight_bp);

	if (r == NULL) {
		log_err("%s: out of memory: the route stays as it was", __func__);
		return;
	}
	route_publish(r);
}

static void
ramp_written(void *arg, int rc, int64_t revision, const char *err)
{
	struct daemon *d = arg;

	if (rc != 0)
		log_warn("fleet: the ramp's next step was not written: %s; tried again at the next tick", err);
	else
		log_info("fleet: the ramp's next step written to etcd (revision %" PRId64 ")", revision);
	engine_ramp_written(&d->engine, rc == 0);
}

/* A fleet ramp's next step (or its end at 100 %), driven by this node. */
static int
fx_propose_ramp(void *arg, const struct state *next, const char *event, const char *reason)
{
	struct daemon *d = arg;
	struct engine_origin o;

	if (d->fleet == NULL || !fleet_connected(d->fleet))
		return -1;
	memset(&o, 0, sizeof(o));
	o.node = fleet_node(d->fleet);
	o.event = event;
	o.trigger = "timer";
	o.reason = reason;
	o.uid = -1;
	o.pid = -1;
	return fleet_propose(d->fleet, next, &o, ramp_written, d);
}

static void
fx_record(void *arg, const struct history_entry *e)
{
	struct daemon *d = arg;
	char err[512];

	if (history_append(d->history, e, err, sizeof(err)) < 0)
		log_err("%s: history: %s", __func__, err);
}

/* Workers drop idle connections to the old color; tunnels to it get drain_timeout. */
static void
fx_notify(void *arg, enum color from, enum color to)
{
	struct daemon *d = arg;

	(void)from;
	(void)to;
	daemon_post(d, WORKER_MSG_SWITCHED);
	evtimer_del(d->tunnel_timer);
	arm_ms(d->tunnel_timer, d->live.cfg->sw.drain_timeout_ms);
}

static void
fx_arm_window(void *arg, bool armed, uint64_t ms)
{
	struct daemon *d = arg;

	evtimer_del(d->window_timer);
	if (armed)
		arm_ms(d->window_timer, ms);
}

static void
fx_arm_retry(void *arg, uint64_t ms)
{
	struct daemon *d = arg;

	evtimer_del(d->state_timer);
	if (ms > 0)
		arm_ms(d->state_timer, ms);
}

static void
fx_servers(void *arg, enum color c, struct engine_servers *n)
{
	struct daemon *d = arg;

	const struct pool *p = d->live.pools[c];
	size_t fresh = pool_fresh(p), min = d->live.cfg->sw.min_healthy;

	/*
	 * For the guard, a DNS answer is never the color's failure by itself:
	 * an address it added counts neither way until `rise` checks confirm
	 * it, and a color it left with fewer servers than min_healthy is
	 * judged on those it has (they must all be up). A fresh server is
	 * never up, so the count of up ones is over settled servers only.
	 */
	n->up = (unsigned)pool_healthy(p);
	if (d->live.cfg->pools[c].nnames > 0 && p->nservers - fresh < min)
		n->up += (unsigned)(min - (p->nservers - fresh));
	n->confirmed = (unsigned)pool_confirmed(p);
	n->total = (unsigned)p->nservers;
}

static void
fx_interrupt(void *arg, const char *why)
{
	struct daemon *d = arg;

	transition_cancel(&d->tx, why);
}

/* Signals. */

/* SIGTERM/SIGINT: stop accepting, let requests in flight finish. */
static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct timeval poll = {0, 50 * 1000};
	uint64_t ms = d->live.cfg->sw.drain_timeout_ms;

	(void)what;
	if (d->stopping) {
		log_info("signal %d again: stopping now", (int)sig);
		daemon_post(d, WORKER_MSG_FORCE);
		return;
	}
	d->stopping = true;
	if (d->fleet != NULL)
		fleet_leave(d->fleet);
	log_info("signal %d: stopping, draining requests in flight for at most %" PRIu64 "ms",
	    (int)sig, ms);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	daemon_post(d, WORKER_MSG_STOP);
	arm_ms(d->drain_timer, ms);
	event_add(d->reap_timer, &poll);
}

static void
on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	struct config_errors errs = {0};

	(void)sig;
	(void)what;
	log_info("SIGHUP: reloading %s", d->live.cfg->path);
	if (reload_pending(d)) {
		/* The previous reload is still being handed to the workers. */
		d->reload_queued = true;
		return;
	}
	if (daemon_reload(d, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("reload rejected: %s", errs.msgs[i]);
		log_err("reload rejected: the running configuration stays");
	}
	config_errors_free(&errs);
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	log_warn("%s: drain timeout: closing the connections still open", __func__);
	daemon_post(d, WORKER_MSG_FORCE);
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
	if (d->fleet != NULL && fleet_leaving(d->fleet))
		return;
	event_base_loopexit(d->base, NULL);
}

/* The safety window. */

static void
on_window(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	(void)engine_window_end(&d->engine);
}

static void
on_state_retry(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	engine_retry_save(&d->engine);
}

/* Every tick: the engine feeds both colors' guards and judges the active one. */
static void
on_guard_tick(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	guard_tick(d);
}

/* The engine's tick; in a fleet, a rollback the guard made here goes to etcd. */
static void
guard_tick(struct daemon *d)
{
	uint64_t before = d->engine.switches[ENGINE_AUTO_ROLLBACK];

	engine_tick(&d->engine);
	if (d->fleet == NULL)
		return;
	if (d->engine.switches[ENGINE_AUTO_ROLLBACK] != before)
		fleet_local_rollback(d->fleet, d->engine.verdict_reason);
	fleet_tick(d->fleet);
}

/* A health check took a server down: judge the window now, not at the tick. */
static void
on_server_down(void *arg)
{
	struct daemon *d = arg;

	guard_tick(d);
}

static void
fx_sample(void *arg, enum color c, struct guard_sample *s)
{
	const struct daemon *d = arg;
	unsigned i, b;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < d->nworkers; i++) {
		const struct worker_stats *st = &d->workers[i].stats;
		uint64_t e, local;

		s->requests += atomic_load_explicit(&st->finished[c], memory_order_relaxed);
		/* A 503 for want of local descriptors says nothing of the
		 * color: not an error of its. The two counters are not read at
		 * one instant, hence the clamp. */
		e = atomic_load_explicit(&st->requests[c][5], memory_order_relaxed) +
		    atomic_load_explicit(&st->cut_short[c], memory_order_relaxed);
		local = atomic_load_explicit(&st->upstream_errors[c][UPSTREAM_ERR_LOCAL], memory_order_relaxed);
		s->errors += e > local ? e - local : 0;
		for (b = 0; b < HISTOGRAM_BUCKETS; b++)
			s->latency[b] += atomic_load_explicit(&st->latency[c][b], memory_order_relaxed);
	}
}

static void
fill_metrics(struct metrics_snapshot *snap, void *arg)
{
	struct daemon *d = arg;
	size_t n = 0;
	unsigned i, k, col;

	memset(snap, 0, sizeof(*snap));
	snap->active = d->engine.sw.active;
	snap->ramp_weight_bp = engine_ramp_weight_bp(&d->engine);
	snap->ramp_target = d->engine.ramp.target;
	for (col = 0; col < COLOR_COUNT; col++) {
		for (i = 0; i < d->nworkers; i++) {
			const struct worker_stats *st = &d->workers[i].stats;

			for (k = 0; k < 6; k++)
				snap->requests[col][k] += atomic_load_explicit(&st->requests[col][k], memory_order_relaxed);
			for (k = 0; k < HISTOGRAM_BUCKETS; k++)
				snap->latency[col][k] += atomic_load_explicit(&st->latency[col][k], memory_order_relaxed);
			snap->latency_sum_us[col] += atomic_load_explicit(&st->latency_sum_us[col], memory_order_relaxed);
			for (k = 0; k < UPSTREAM_ERR_KINDS; k++)
				snap->upstream_errors[col][k] +=
				    atomic_load_explicit(&st->upstream_errors[col][k], memory_order_relaxed);
		}
		snap->inflight[col] = worker_inflight(d->workers, d->nworkers, (enum color)col);
		for (k = 0; k < d->live.pools[col]->nservers; k++, n++)
			d->metric_servers[n].up = atomic_load(&d->live.pools[col]->servers[k].up);
	}
	for (i = 0; i < d->nworkers; i++) {
		const struct worker_stats *st = &d->workers[i].stats;

		snap->h2_connections += atomic_load_explicit(&st->h2_connections, memory_order_relaxed);
		snap->h2_streams += atomic_load_explicit(&st->h2_streams, memory_order_relaxed);
		for (k = 0; k < H2_GOAWAY_REASONS; k++)
			snap->h2_goaway[k] += atomic_load_explicit(&st->h2_goaway[k], memory_order_relaxed);
	}
	_Static_assert((int)ENGINE_TRIGGERS == (int)TRIGGER_COUNT, "one counter per trigger");
	for (k = 0; k < TRIGGER_COUNT; k++)
		snap->switches[k] = d->engine.switches[k];
	snap->switch_refused = d->engine.refused;
	snap->servers = d->metric_servers;
	snap->nservers = n;
	if (d->fleet != NULL) {
		struct fleet_metrics fm;

		fleet_get_metrics(d->fleet, &fm);
		snap->fleet = true;
		snap->fleet_connected = fm.connected;
		snap->fleet_nodes = fm.nodes;
		snap->fleet_converged = fm.converged;
		memcpy(snap->fleet_apply, fm.apply, sizeof(snap->fleet_apply));
		snap->fleet_apply_sum_us = fm.apply_sum_us;
	}
}

/* GET /status.json on metrics.listen. */
static void
status_json(struct jbuf *b, void *arg)
{
	struct daemon *d = arg;

	statuspage_json(d->statuspage, b);
}

/* Runs a notification hook if configured; its result is only logged. */
static void
fx_run_hook(void *arg, enum engine_hook hook, int from, int to, uint64_t generation,
    const char *reason)
{
	struct daemon *d = arg;
	const char *event, *path;
	struct hook_env env;

	switch (hook) {
	case ENGINE_HOOK_POST_SWITCH:
		event = "post_switch";
		path = d->live.cfg->hooks.post_switch;
		break;
	case ENGINE_HOOK_ROLLBACK:
		event = "rollback";
		path = d->live.cfg->hooks.rollback;
		break;
	case ENGINE_HOOK_WINDOW_END:
	default:
		event = "window_end";
		path = d->live.cfg->hooks.window_end;
		break;
	}
	if (path == NULL)
		return;
	memset(&env, 0, sizeof(env));
	env.event = event;
	env.from = from < 0 ? "" : color_name((enum color)from);
	env.to = to < 0 ? "" : color_name((enum color)to);
	env.generation = generation;
	env.reason = reason != NULL ? reason : "";
	if (hook_set_start(&d->hooks, d->base, path, d->live.cfg->hooks.timeout_ms, &env) < 0)
		log_err("%s: hook %s: cannot run %s: %s", __func__, event, path, strerror(errno));
}

static void
on_usr1(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;

	(void)sig;
	(void)what;
	if (d->accesslog != NULL) {
		accesslog_reopen(d->accesslog);
		log_info("SIGUSR1: access log reopened");
	}
}

/* Draining. */

static void
on_wait_poll(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct waiter *wt, *next;
	uint64_t now = clock_mono_ms();

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
	daemon_post(d, WORKER_MSG_CLOSE_TUNNELS);
}

/* Registers a `switch --wait` caller to answer once color has drained. */
static int
add_waiter(void *arg, struct control_conn *c, enum color old, char *answer_prefix)
{
	struct daemon *d = arg;
	struct waiter *wt = calloc(1, sizeof(*wt));

	if (wt == NULL)
		return -1;
	wt->conn = c;
	wt->old = old;
	wt->deadline_ms = duration_add(clock_mono_ms(), d->live.cfg->sw.drain_timeout_ms);
	wt->answer_prefix = answer_prefix;
	TAILQ_INSERT_TAIL(&d->waiters, wt, link);
	if (!event_pending(d->wait_timer, EV_TIMEOUT, NULL)) {
		struct timeval tv = {0, WAIT_POLL_MS * 1000};

		event_add(d->wait_timer, &tv);
	}
	return 0;
}

/* What the engine needs of a configuration. */
static void
engine_config_of(const struct config *cfg, struct engine_config *ec)
{
	memset(ec, 0, sizeof(*ec));
	ec->min_healthy = cfg->sw.min_healthy;
	ec->safety_window_ms = cfg->sw.safety_window_ms;
	ec->auto_rollback = cfg->auto_rollback.enabled;
	ec->guard.error_rate = cfg->auto_rollback.error_rate;
	ec->guard.min_requests = cfg->auto_rollback.min_requests;
	ec->guard.window_ms = cfg->auto_rollback.window_ms;
	ec->guard.latency_factor = cfg->auto_rollback.latency_factor;
	ec->guard.min_healthy = cfg->sw.min_healthy;
}

static int
build_metric_servers(struct daemon *d)
{
	size_t n = 0, k;
	int i;

	free(d->metric_servers);
	d->metric_servers = calloc(d->live.pools[0]->nservers + d->live.pools[1]->nservers + 1,
	    sizeof(*d->metric_servers));
	if (d->metric_servers == NULL)
		return -1;
	for (i = 0; i < COLOR_COUNT; i++)
		for (k = 0; k < d->live.pools[i]->nservers; k++, n++) {
			d->metric_servers[n].color = (enum color)i;
			d->metric_servers[n].address = server_label(&d->live.pools[i]->servers[k]);
		}
	return 0;
}

/* A reload is still being handed to the workers. */
static bool
reload_pending(const struct daemon *d)
{
	return d->retired.routes != NULL;
}

/*
 * Reloads the configuration file: a new generation is built and validated
 * whole, then swapped in (pools, servers, health, smoke, hooks, limits,
 * timeouts); the active color, generation and safety window carry over and
 * requests in flight finish undisturbed. On rejection returns -1 and every
 * error is in errs (the running configuration stays).
 */
static int
daemon_reload(struct daemon *d, struct config_errors *errs)
{
	struct config *next = NULL;
	struct generation gen;
	struct health *health = NULL;
	struct engine_config ec;

	memset(&gen, 0, sizeof(gen));
	if (reload_pending(d)) {
		config_errors_add(errs, "%s: a reload is still being applied; try again", d->live.cfg->path);
		return -1;
	}
	if (config_load(d->live.cfg->path, &next, errs) < 0)
		return -1;
	if (generation_check(next, d->live.cfg, errs) < 0) {
		config_free(next);
		return -1;
	}
#ifdef HAVE_SYSTEMD
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)clock_mono_ms() * 1000ull);
#endif
	/* The reload's names: those it keeps keep their answers, new ones
	 * are looked up now and join when they answer. */
	if (config_nnames(next) > 0 && d->resolver == NULL) {
		if ((d->resolver = resolver_new(d->base, next)) == NULL) {
			config_errors_add(errs, "%s: reload: cannot start the resolver", next->path);
			goto fail;
		}
		resolver_set_change_cb(d->resolver, on_dns_change, d);
	} else if (d->resolver != NULL && resolver_set_names(d->resolver, next) < 0) {
		config_errors_add(errs, "%s: reload: out of memory", next->path);
		goto fail;
	}
	if (generation_build_named(&gen, next, &d->live, d->resolver, d->nworkers, errs) < 0)
		goto fail;
	if ((health = health_new(d->base, &next->health, gen.pools)) == NULL) {
		config_errors_add(errs, "%s: reload: out of memory", next->path);
		goto fail;
	}

	/* From here on nothing can fail: swap. */
	health_free(d->health);
	d->health = health;
	health_set_down_cb(d->health, on_server_down, d);
	generation_hand_over(&d->live, &gen, &d->retired, ++d->epoch, d->workers, d->nworkers);
	engine_config_of(next, &ec);
	engine_reconfigure(&d->engine, &ec);
	{
		struct timeval tv = {0, 20 * 1000};

		event_add(d->retire_timer, &tv);
	}
	worker_set_conn_cap(fdlimit_conn_cap(fdlimit_raise(), next->limits.max_connections,
	    next->pools[COLOR_BLUE].nservers + next->pools[COLOR_GREEN].nservers));
	log_set_level((enum log_level)next->log_level);
	control_set_admin_group(d->control, next->control.admin_group);
	if (d->metrics != NULL && build_metric_servers(d) < 0)
		log_err("%s: reload: out of memory for the metrics server list", __func__);
	log_info("reload: configuration %s applied (blue %zu servers, green %zu servers)", next->path,
	    d->live.pools[COLOR_BLUE]->nservers, d->live.pools[COLOR_GREEN]->nservers);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	return 0;
fail:
	/* gen holds next (and whatever was built on it). */
	generation_free(&gen);
	if (d->resolver != NULL && resolver_set_names(d->resolver, d->live.cfg) < 0)
		log_err("%s: reload: out of memory restoring the names to resolve", __func__);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	return -1;
}

/* Frees what the last reload replaced once every worker acknowledged it. */
static void
on_retire(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	if (!generation_retire(&d->retired, &d->live, d->workers, d->nworkers))
		return;
	event_del(d->retire_timer);
	if (d->reload_queued)
		run_queued_reload(d);
	if (d->dns_dirty && !reload_pending(d))
		dns_respin(d);
}

/*
 * Resolves the names of the configuration before the first generation is
 * built (the loop runs nothing else yet): a name without an address stops
 * the start unless dns.allow_unresolved, and every such name is logged.
 */
static int
start_resolver(struct daemon *d)
{
	const struct config *cfg = d->live.cfg;
	struct config_errors errs = {0};
	size_t k;

	if ((d->resolver = resolver_new(d->base, cfg)) == NULL)
		return -1;
	resolver_wait(d->resolver, RESOLVER_WAIT_MS(cfg));
	if (resolver_unresolved(d->resolver, &errs) > 0) {
		for (k = 0; k < errs.n; k++) {
			if (cfg->dns.allow_unresolved)
				log_warn("%s; starting without its addresses (dns.allow_unresolved)", errs.msgs[k]);
			else
				log_err("%s", errs.msgs[k]);
		}
		config_errors_free(&errs);
		if (!cfg->dns.allow_unresolved) {
			log_err("%s: a server name does not resolve (dns.allow_unresolved = true starts anyway)",
			    __func__);
			return -1;
		}
	}
	return 0;
}

/* A name's addresses changed: the colors' servers follow, now or after the hand-over under way. */
static void
on_dns_change(void *arg)
{
	struct daemon *d = arg;

	if (d->stopping)
		return;
	if (reload_pending(d)) {
		d->dns_dirty = true;
		return;
	}
	dns_respin(d);
}

/*
 * New pools over the same configuration, handed to the workers as a reload
 * hands its own: requests in flight finish on the pools they hold, idle
 * connections to the old pools are closed, addresses that stay keep their
 * health, new ones start down (health.rise checks bring them in). The route
 * of the active color is published again; nothing else changes (no switch
 * under way is interrupted).
 */
static void
dns_respin(struct daemon *d)
{
	struct generation gen;
	struct health *health;

	d->dns_dirty = false;
	if (generation_respin(&gen, &d->live, d->resolver, d->nworkers) < 0) {
		log_err("%s: out of memory: the servers stay as they were", __func__);
		return;
	}
	if ((health = health_new(d->base, &d->live.cfg->health, gen.pools)) == NULL) {
		generation_free(&gen);
		log_err("%s: out of memory: the servers stay as they were", __func__);
		return;
	}
	health_carry(health, d->health);
	health_free(d->health);
	d->health = health;
	health_set_down_cb(d->health, on_server_down, d);
	/* The new route first: a worker taking the hand-over moves its idle
	 * connections to the addresses that stay into the pools it finds there. */
	{
		struct route *r = NULL;

		/* During a ramp, the ramp's route of the new pools (its weight kept). */
		if (d->engine.ramp.on)
			r = generation_ramp_route(&gen, d->engine.sw.active, d->engine.ramp.target,
			    engine_ramp_weight_bp(&d->engine));
		route_publish(r != NULL ? r : &gen.routes[d->engine.sw.active]);
	}
	generation_hand_over(&d->live, &gen, &d->retired, ++d->epoch, d->workers, d->nworkers);
	engine_publish(&d->engine);
	{
		struct timeval tv = {0, 20 * 1000};

		event_add(d->retire_timer, &tv);
	}
	if (d->metrics != NULL && build_metric_servers(d) < 0)
		log_err("%s: out of memory for the metrics server list", __func__);
	log_info("dns: servers now blue %zu, green %zu", d->live.pools[COLOR_BLUE]->nservers,
	    d->live.pools[COLOR_GREEN]->nservers);
}

/* The `reload` command: applied now, or queued behind the one being applied. */
static void
reload_command(void *arg, struct control_conn *c, const struct control_caller *who)
{
	struct daemon *d = arg;
	struct config_errors errs = {0};
	int rc;

	log_info("reload requested by uid %ld pid %ld", (long)who->uid, (long)who->pid);
	if (reload_pending(d)) {
		struct control_conn **v = realloc(d->reload_conns, (d->nreload_conns + 1) * sizeof(*v));

		if (v == NULL) {
			control_reply_error(c, "out of memory");
			return;
		}
		d->reload_conns = v;
		d->reload_conns[d->nreload_conns++] = c;
		d->reload_queued = true;
		return;
	}
	rc = daemon_reload(d, &errs);
	commands_reload_answer(c, rc, &errs);
	config_errors_free(&errs);
}

/* Runs the reload that was asked for while another was being applied. */
static void
run_queued_reload(struct daemon *d)
{
	struct config_errors errs = {0};
	size_t i, n = d->nreload_conns;
	struct control_conn **conns = d->reload_conns;
	int rc;

	d->reload_queued = false;
	d->reload_conns = NULL;
	d->nreload_conns = 0;
	rc = daemon_reload(d, &errs);
	if (rc < 0) {
		for (i = 0; i < errs.n; i++)
			log_err("reload rejected: %s", errs.msgs[i]);
	}
	for (i = 0; i < n; i++)
		commands_reload_answer(conns[i], rc, &errs);
	free(conns);
	config_errors_free(&errs);
}

/*
 * systemd's watchdog: pinged at half its interval, but only while every
 * worker's loop is turning (heartbeats), so a wedged worker gets the daemon
 * restarted instead of hidden behind a healthy main thread. What counts as
 * wedged is watchdog.h's: far above a busy machine's scheduling noise. The
 * first withheld ping and the recovery are logged once each.
 */
static void
on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct watchdog *wd = &d->watchdog;
	uint64_t now = clock_mono_ms();
	unsigned i;

	(void)fd;
	(void)what;
	watchdog_tick(wd, now);
	/* Stopping workers no longer beat; the drain is bounded anyway. */
	for (i = 0; i < d->nworkers && !d->stopping; i++) {
		uint64_t silent = watchdog_silent_ms(wd, now, atomic_load(&d->workers[i].heartbeat_ms));

		if (silent > wd->stuck_ms) {
			if (!wd->withholding)
				log_err("%s: worker %u has not turned its loop for %llums: "
				        "withholding WATCHDOG=1 so that systemd restarts the daemon",
				    __func__, i, (unsigned long long)silent);
			wd->withholding = true;
			return;
		}
	}
	if (wd->withholding)
		log_warn("%s: every worker turns its loop again: WATCHDOG=1 resumed", __func__);
	wd->withholding = false;
#ifdef HAVE_SYSTEMD
	sd_notify(0, "WATCHDOG=1");
#endif
}
