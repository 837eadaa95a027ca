#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
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
#include "command.h"
#include "control.h"
#include "daemon.h"
#include "duration.h"
#include "engine.h"
#include "fdlimit.h"
#include "health.h"
#include "history.h"
#include "hooks.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "smoke.h"
#include "state.h"
#include "tls.h"
#include "transition.h"
#include "worker.h"

#define WAIT_POLL_MS 20
#define GUARD_TICK_MS 100

/* A notification hook still running. */
struct hook_slot {
	TAILQ_ENTRY(hook_slot) link;
	struct daemon *d;
	struct hook_run *run;
	char event[32];
};

/* A `smoke COLOR` command in progress. */
struct smoke_cmd {
	struct control_conn *conn;
	struct smoke_run *run;
};

/* A `switch --wait` caller, answered once the old color has drained. */
struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct control_conn *conn;
	enum color old;
	uint64_t deadline_ms;
	char *answer_prefix; /* the switch answer without its closing brace */
};

static int daemon_start(struct daemon *d);
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
static void reload_answer(struct control_conn *c, int rc, const struct config_errors *errs);
static void run_queued_reload(struct daemon *d);
static int build_metric_servers(struct daemon *d);
static struct tls_server **build_tls_servers(const struct config *cfg, struct config_errors *errs);
static void free_tls_servers(struct tls_server **tls, size_t n);
static int attach_pool_tls(struct pool *pools[COLOR_COUNT], const struct config *cfg,
    struct config_errors *errs);
static void on_guard_tick(evutil_socket_t fd, short what, void *arg);
static void on_server_down(void *arg);
static void hook_done(int status, bool timed_out, const char *output, void *arg);
static void daemon_post(struct daemon *d, unsigned msg);

/* The engine's effects (engine.h): the real state file, route, history, hooks and timers. */
static uint64_t fx_mono_ms(void *arg);
static int64_t fx_wall_ms(void *arg);
static int fx_save_state(void *arg, const struct state *st, char *err, size_t errlen);
static void fx_publish(void *arg, enum color active);
static void fx_record(void *arg, const struct history_entry *e);
static void fx_notify(void *arg, enum color from, enum color to);
static void fx_run_hook(void *arg, enum engine_hook hook, int from, int to, uint64_t generation,
    const char *reason);
static void fx_arm_window(void *arg, bool armed, uint64_t ms);
static void fx_arm_retry(void *arg, uint64_t ms);
static void fx_sample(void *arg, enum color c, struct guard_sample *s);
static void fx_servers(void *arg, enum color c, struct engine_servers *n);
static void fx_interrupt(void *arg, const char *why);

static const struct engine_effects effects = {
	.mono_ms = fx_mono_ms,
	.wall_ms = fx_wall_ms,
	.save_state = fx_save_state,
	.publish = fx_publish,
	.record = fx_record,
	.notify = fx_notify,
	.run_hook = fx_run_hook,
	.arm_window = fx_arm_window,
	.arm_retry = fx_arm_retry,
	.sample = fx_sample,
	.servers = fx_servers,
	.interrupt = fx_interrupt,
};
static void fill_metrics(struct metrics_snapshot *snap, void *arg);
static void smoke_cmd_done(bool ok, const char *report, const char *failure, void *arg);

static void cmd_status(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_switch(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_health(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_history(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_commit(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_help(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_smoke(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);
static void cmd_reload(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg);

/* The daemon's side of the command table (command.c), by command id. */
static const control_handler handlers[COMMAND_COUNT] = {
	[COMMAND_STATUS] = cmd_status,
	[COMMAND_SWITCH] = cmd_switch,
	[COMMAND_ROLLBACK] = cmd_switch,
	[COMMAND_HEALTH] = cmd_health,
	[COMMAND_HISTORY] = cmd_history,
	[COMMAND_SMOKE] = cmd_smoke,
	[COMMAND_COMMIT] = cmd_commit,
	[COMMAND_RELOAD] = cmd_reload,
	[COMMAND_HELP] = cmd_help,
};

int
daemon_run(struct config *cfg)
{
	struct daemon d;
	int rc = 1;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	TAILQ_INIT(&d.waiters);
	TAILQ_INIT(&d.hooks);
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
	const struct config *cfg = d->cfg;
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
	for (i = 0; i < COLOR_COUNT; i++) {
		d->pools[i] = pool_new((enum color)i, &cfg->pools[i], d->nworkers);
		if (d->pools[i] == NULL)
			goto oom;
	}
	{
		struct config_errors errs = {0};

		if ((d->tls = build_tls_servers(cfg, &errs)) == NULL ||
		    attach_pool_tls(d->pools, cfg, &errs) < 0) {
			for (size_t k = 0; k < errs.n; k++)
				log_err("%s", errs.msgs[k]);
			config_errors_free(&errs);
			return -1;
		}
	}
	if ((d->routes = calloc(COLOR_COUNT, sizeof(*d->routes))) == NULL)
		goto oom;
	for (i = 0; i < COLOR_COUNT; i++) {
		d->routes[i].pools[COLOR_BLUE] = d->pools[COLOR_BLUE];
		d->routes[i].pools[COLOR_GREEN] = d->pools[COLOR_GREEN];
		d->routes[i].active = (enum color)i;
	}

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
	{
		struct timeval tick = {0, GUARD_TICK_MS * 1000};

		event_add(d->guard_timer, &tick);
	}
	/* The route and the window, from the state file (or `initial`). */
	if (engine_restore(&d->engine, load_rc, &st, cfg->initial) < 0)
		return -1;
	if (cfg->metrics.enabled) {
		if (build_metric_servers(d) < 0)
			goto oom;
		if ((d->metrics = metrics_new(d->base, &cfg->metrics.listen, fill_metrics, d)) == NULL)
			return -1;
	}
	if ((d->control = control_new(d->base, &cfg->control, handlers, d)) == NULL)
		return -1;
	if ((d->health = health_new(d->base, &cfg->health, d->pools)) == NULL)
		goto oom;
	health_set_down_cb(d->health, on_server_down, d);
	if ((d->workers = calloc(d->nworkers, sizeof(*d->workers))) == NULL)
		goto oom;
	if (cfg->access_log != NULL && (d->accesslog = accesslog_open(cfg->access_log)) == NULL) {
		log_err("%s: access_log %s: %s", __func__, cfg->access_log, strerror(errno));
		return -1;
	}
	for (i = 0; i < d->nworkers; i++) {
		if (worker_init(&d->workers[i], i, d->nworkers, cfg) < 0)
			goto fail;
		d->workers[i].accesslog = d->accesslog;
		d->workers[i].tls = d->tls;
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
	transition_cancel(d, "cutoverd is stopping");
	{
		struct hook_slot *hs;

		while ((hs = TAILQ_FIRST(&d->hooks)) != NULL) {
			TAILQ_REMOVE(&d->hooks, hs, link);
			hook_cancel(hs->run);
			free(hs);
		}
	}
	while ((wt = TAILQ_FIRST(&d->waiters)) != NULL) {
		TAILQ_REMOVE(&d->waiters, wt, link);
		free(wt->answer_prefix);
		free(wt);
	}
	control_free(d->control);
	health_free(d->health);
	metrics_free(d->metrics);
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
	if (d->retired.pending) {
		/* Workers are gone: nothing uses the old generation any more. */
		for (i = 0; i < COLOR_COUNT; i++)
			pool_unref(d->retired.pools[i]);
		free(d->retired.routes);
		free_tls_servers(d->retired.tls, d->retired.cfg->nlistens);
		config_free(d->retired.cfg);
	}
	if (d->base != NULL)
		event_base_free(d->base);
	route_publish(NULL);
	free(d->routes);
	if (d->tls != NULL)
		free_tls_servers(d->tls, d->cfg->nlistens);
	for (i = 0; i < COLOR_COUNT; i++)
		pool_unref(d->pools[i]);
	free(d->history);
	free(d->reload_conns);
	config_free(d->cfg);
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

	return state_save(d->cfg->state_file, st, err, errlen);
}

/* The switch: one atomic store of the route pointer. */
static void
fx_publish(void *arg, enum color active)
{
	struct daemon *d = arg;

	route_publish(&d->routes[active]);
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
	arm_ms(d->tunnel_timer, d->cfg->sw.drain_timeout_ms);
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

	n->up = (unsigned)pool_healthy(d->pools[c]);
	n->confirmed = (unsigned)pool_confirmed(d->pools[c]);
	n->total = (unsigned)d->pools[c]->nservers;
}

static void
fx_interrupt(void *arg, const char *why)
{
	transition_cancel(arg, why);
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
		daemon_post(d, WORKER_MSG_FORCE);
		return;
	}
	d->stopping = true;
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
	log_info("SIGHUP: reloading %s", d->cfg->path);
	if (d->retired.pending) {
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
	engine_tick(&d->engine);
}

/* A health check took a server down: judge the window now, not at the tick. */
static void
on_server_down(void *arg)
{
	struct daemon *d = arg;

	engine_tick(&d->engine);
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
		for (k = 0; k < d->pools[col]->nservers; k++, n++)
			d->metric_servers[n].up = atomic_load(&d->pools[col]->servers[k].up);
	}
	_Static_assert((int)ENGINE_TRIGGERS == (int)TRIGGER_COUNT, "one counter per trigger");
	for (k = 0; k < TRIGGER_COUNT; k++)
		snap->switches[k] = d->engine.switches[k];
	snap->switch_refused = d->engine.refused;
	snap->servers = d->metric_servers;
	snap->nservers = n;
}

/* Runs a notification hook if configured; its result is only logged. */
static void
fx_run_hook(void *arg, enum engine_hook hook, int from, int to, uint64_t generation,
    const char *reason)
{
	struct daemon *d = arg;
	const char *event, *path;
	struct hook_slot *hs;
	struct hook_env env;

	switch (hook) {
	case ENGINE_HOOK_POST_SWITCH:
		event = "post_switch";
		path = d->cfg->hooks.post_switch;
		break;
	case ENGINE_HOOK_ROLLBACK:
		event = "rollback";
		path = d->cfg->hooks.rollback;
		break;
	case ENGINE_HOOK_WINDOW_END:
	default:
		event = "window_end";
		path = d->cfg->hooks.window_end;
		break;
	}
	if (path == NULL)
		return;
	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		log_err("%s: hook %s: out of memory", __func__, event);
		return;
	}
	memset(&env, 0, sizeof(env));
	env.event = event;
	env.from = from < 0 ? "" : color_name((enum color)from);
	env.to = to < 0 ? "" : color_name((enum color)to);
	env.generation = generation;
	env.reason = reason != NULL ? reason : "";
	hs->d = d;
	snprintf(hs->event, sizeof(hs->event), "%s", event);
	hs->run = hook_start(d->base, path, d->cfg->hooks.timeout_ms, &env, hook_done, hs);
	if (hs->run == NULL) {
		log_err("%s: hook %s: cannot run %s: %s", __func__, event, path, strerror(errno));
		free(hs);
		return;
	}
	TAILQ_INSERT_TAIL(&d->hooks, hs, link);
}

static void
hook_done(int status, bool timed_out, const char *output, void *arg)
{
	struct hook_slot *hs = arg;

	/* hooks.c logged the outcome, with the path, the status or signal. */
	(void)status;
	(void)timed_out;
	(void)output;
	TAILQ_REMOVE(&hs->d->hooks, hs, link);
	free(hs);
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

/* Control commands. */

static void
cmd_status(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	const struct engine *e = &d->engine;
	uint64_t left = engine_window_left(e);
	struct jbuf b;
	int col;

	(void)who;
	(void)rq;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"active\":");
	jbuf_str(&b, color_name(e->sw.active));
	jbuf_raw(&b, ",\"previous\":");
	jbuf_str(&b, e->sw.has_previous ? color_name(e->sw.previous) : NULL);
	jbuf_printf(&b, ",\"state\":\"%s\",\"generation\":%" PRIu64 ",\"window_left_s\":%" PRIu64,
	    switcher_state_name(e->sw.state), e->sw.generation, (left + 999) / 1000);
	jbuf_printf(&b, ",\"min_healthy\":%u,\"switching\":%s", d->cfg->sw.min_healthy,
	    e->busy ? "true" : "false");
	if (e->sw.state == SWITCHER_OBSERVING)
		jbuf_printf(&b, ",\"guard\":{\"enabled\":%s,\"requests\":%" PRIu64 ",\"min_requests\":%u}",
		    d->cfg->auto_rollback.enabled ? "true" : "false", engine_guard_requests(e),
		    d->cfg->auto_rollback.min_requests);
	jbuf_printf(&b, ",\"state_saved\":%s", e->unsaved ? "false" : "true");
	if (e->unsaved) {
		jbuf_raw(&b, ",\"state_error\":");
		jbuf_str(&b, e->state_error);
	}
	jbuf_raw(&b, ",\"verdict\":");
	jbuf_str(&b, window_verdict_name(e->verdict));
	jbuf_raw(&b, ",\"verdict_reason\":");
	jbuf_str(&b, e->verdict != WINDOW_NONE ? e->verdict_reason : NULL);
	jbuf_raw(&b, ",\"pools\":{");
	for (col = 0; col < COLOR_COUNT; col++) {
		const struct pool *p = d->pools[col];

		jbuf_printf(&b,
		    "%s\"%s\":{\"healthy\":%zu,\"confirmed\":%zu,\"total\":%zu,\"inflight\":%" PRIu64 "}",
		    col ? "," : "", color_name((enum color)col), pool_healthy(p), pool_confirmed(p),
		    p->nservers, worker_inflight(d->workers, d->nworkers, (enum color)col));
	}
	jbuf_raw(&b, "}}");
	control_reply_jbuf(c, &b);
}

/*
 * switch COLOR [--force] [--if-gen N] [--dry-run] [--wait], and rollback
 * [--force] [--if-gen N] (its target is the previous color). See
 * transition.c.
 */
static void
cmd_switch(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	struct transition_request tr;

	memset(&tr, 0, sizeof(tr));
	tr.rollback = rq->cmd->id == COMMAND_ROLLBACK;
	tr.target = rq->color;
	tr.force = (rq->flags & COMMAND_F_FORCE) != 0;
	tr.dry_run = (rq->flags & COMMAND_F_DRY_RUN) != 0;
	tr.wait = (rq->flags & COMMAND_F_WAIT) != 0;
	tr.has_if_gen = (rq->flags & COMMAND_F_IF_GEN) != 0;
	tr.if_gen = rq->if_gen;
	transition_begin(d, c, who, &tr);
}

int
daemon_add_waiter(struct daemon *d, struct control_conn *c, enum color old, char *answer_prefix)
{
	struct waiter *wt = calloc(1, sizeof(*wt));

	if (wt == NULL)
		return -1;
	wt->conn = c;
	wt->old = old;
	wt->deadline_ms = duration_add(clock_mono_ms(), d->cfg->sw.drain_timeout_ms);
	wt->answer_prefix = answer_prefix;
	TAILQ_INSERT_TAIL(&d->waiters, wt, link);
	if (!event_pending(d->wait_timer, EV_TIMEOUT, NULL)) {
		struct timeval tv = {0, WAIT_POLL_MS * 1000};

		event_add(d->wait_timer, &tv);
	}
	return 0;
}

static void
cmd_smoke(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	struct smoke_cmd *sc;

	(void)who;
	if ((sc = calloc(1, sizeof(*sc))) == NULL) {
		control_reply_error(c, "out of memory");
		return;
	}
	sc->conn = c;
	sc->run = smoke_start(d->base, d->cfg, d->pools[rq->color], smoke_cmd_done, sc);
	if (sc->run == NULL) {
		free(sc);
		control_reply_error(c, "cannot start the smoke tests: out of memory");
	}
}

static void
smoke_cmd_done(bool ok, const char *report, const char *failure, void *arg)
{
	struct smoke_cmd *sc = arg;
	struct jbuf b;

	jbuf_init(&b);
	jbuf_printf(&b, "{\"ok\":%s", ok ? "true" : "false");
	if (!ok) {
		jbuf_raw(&b, ",\"error\":");
		jbuf_str(&b, failure != NULL ? failure : "smoke test failed");
	}
	jbuf_raw(&b, ",\"smoke\":");
	jbuf_raw(&b, report != NULL ? report : "[]");
	jbuf_raw(&b, "}");
	control_reply_jbuf(sc->conn, &b);
	free(sc);
}

static void
cmd_health(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	struct jbuf b;

	(void)who;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"servers\":");
	health_report(d->health, rq->has_arg ? (int)rq->color : -1, &b);
	jbuf_raw(&b, "}");
	control_reply_jbuf(c, &b);
}

static void
cmd_history(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	/* history N: the last N entries; without N, all of them. */
	size_t max = rq->has_arg && rq->count <= SIZE_MAX ? (size_t)rq->count : 0;
	char **lines = NULL, err[512];
	size_t n = 0, skipped = 0, i;
	struct jbuf b;

	(void)who;
	if (history_read(d->history, max, &lines, &n, &skipped, err, sizeof(err)) < 0) {
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
	/* Lines history_read could not vouch for (see history.c). */
	jbuf_printf(&b, "],\"skipped\":%zu}", skipped);
	history_lines_free(lines, n);
	control_reply_jbuf(c, &b);
}

static void
cmd_commit(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	struct engine_caller ec = {(long)who->uid, (long)who->pid};
	char msg[640];

	(void)rq;
	switch (engine_commit(&d->engine, &ec, msg, sizeof(msg))) {
	case SWITCH_NOOP:
		control_reply(c, "{\"ok\":true,\"changed\":false,\"message\":\"no safety window is open\"}");
		break;
	case SWITCH_REFUSED:
		control_reply_error(c, msg);
		break;
	case SWITCH_GO:
		control_reply(c, "{\"ok\":true,\"changed\":true,\"message\":\"safety window ended\"}");
		break;
	}
}

static void
cmd_help(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct jbuf b;
	char syn[128], line[256];
	size_t i;
	bool first = true;

	(void)who;
	(void)rq;
	(void)arg;
	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":true,\"commands\":[");
	for (i = 0; i < COMMAND_COUNT; i++) {
		const struct command *cmd = &command_table[i];

		if (!(cmd->sides & COMMAND_DAEMON))
			continue;
		command_synopsis(cmd, syn, sizeof(syn));
		snprintf(line, sizeof(line), "%s: %s", syn, cmd->help);
		if (!first)
			jbuf_raw(&b, ",");
		jbuf_str(&b, line);
		first = false;
	}
	jbuf_raw(&b, "]}");
	control_reply_jbuf(c, &b);
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
	d->metric_servers = calloc(d->pools[0]->nservers + d->pools[1]->nservers + 1,
	    sizeof(*d->metric_servers));
	if (d->metric_servers == NULL)
		return -1;
	for (i = 0; i < COLOR_COUNT; i++)
		for (k = 0; k < d->pools[i]->nservers; k++, n++) {
			d->metric_servers[n].color = (enum color)i;
			d->metric_servers[n].address = d->pools[i]->servers[k].addr.text;
		}
	return 0;
}

int
daemon_reload(struct daemon *d, struct config_errors *errs)
{
	struct config *next = NULL;
	struct pool *pools[COLOR_COUNT] = {NULL, NULL};
	struct route *routes = NULL;
	struct health *health = NULL;
	struct tls_server **tls = NULL;
	struct engine_config ec;
	unsigned i;
	int c;

	if (d->retired.pending) {
		config_errors_add(errs, "%s: a reload is still being applied; try again", d->cfg->path);
		return -1;
	}
	if (config_load(d->cfg->path, &next, errs) < 0)
		return -1;
	if (config_reload_check(d->cfg, next, errs) < 0)
		goto fail;
	for (size_t k = 0; k < next->nlistens; k++)
		if (next->listens[k].ncerts > 0)
			(void)tls_check_listen(next, &next->listens[k], errs);
	if (worker_probe_new_listeners(d->cfg, next, errs) < 0)
		goto fail;
	if (errs->n > 0)
		goto fail;
#ifdef HAVE_SYSTEMD
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)clock_mono_ms() * 1000ull);
#endif
	for (c = 0; c < COLOR_COUNT; c++) {
		if ((pools[c] = pool_new((enum color)c, &next->pools[c], d->nworkers)) == NULL)
			goto oom;
		/* A server that stays keeps its health: a reload must not send
		 * traffic to one known down, nor demote one known good. */
		for (size_t k = 0; k < pools[c]->nservers; k++) {
			struct server *ns = &pools[c]->servers[k];

			for (size_t j = 0; j < d->pools[c]->nservers; j++) {
				struct server *os = &d->pools[c]->servers[j];

				if (strcmp(os->addr.text, ns->addr.text) == 0) {
					atomic_store(&ns->up, atomic_load(&os->up));
					atomic_store(&ns->confirmed, atomic_load(&os->confirmed));
					break;
				}
			}
		}
	}
	/* Certificates are read again: a bad one leaves the old ones serving. */
	if ((tls = build_tls_servers(next, errs)) == NULL || attach_pool_tls(pools, next, errs) < 0)
		goto fail;
	if ((routes = calloc(COLOR_COUNT, sizeof(*routes))) == NULL)
		goto oom;
	for (c = 0; c < COLOR_COUNT; c++) {
		routes[c].pools[COLOR_BLUE] = pools[COLOR_BLUE];
		routes[c].pools[COLOR_GREEN] = pools[COLOR_GREEN];
		routes[c].active = (enum color)c;
	}
	if ((health = health_new(d->base, &next->health, pools)) == NULL)
		goto oom;

	/* From here on nothing can fail: swap. */
	health_free(d->health);
	d->health = health;
	health_set_down_cb(d->health, on_server_down, d);
	d->retired.pending = true;
	d->retired.epoch = ++d->epoch;
	d->retired.cfg = d->cfg;
	d->retired.routes = d->routes;
	d->retired.tls = d->tls;
	d->tls = tls;
	for (c = 0; c < COLOR_COUNT; c++) {
		d->retired.pools[c] = d->pools[c];
		atomic_store(&d->pools[c]->retired, true);
		d->pools[c] = pools[c];
	}
	d->routes = routes;
	d->cfg = next;
	engine_config_of(next, &ec);
	engine_reconfigure(&d->engine, &ec);
	for (i = 0; i < d->nworkers; i++) {
		struct worker *w = &d->workers[i];

		w->next_cfg = next;
		w->retire[COLOR_BLUE] = d->retired.pools[COLOR_BLUE];
		w->retire[COLOR_GREEN] = d->retired.pools[COLOR_GREEN];
		w->next_epoch = d->epoch;
		w->next_tls = tls;
		worker_post(w, WORKER_MSG_RELOAD);
	}
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
	    d->pools[COLOR_BLUE]->nservers, d->pools[COLOR_GREEN]->nservers);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "READY=1");
#endif
	return 0;
oom:
	config_errors_add(errs, "%s: reload: out of memory", next->path);
fail:
	health_free(health);
	free(routes);
	if (tls != NULL)
		free_tls_servers(tls, next->nlistens);
	for (c = 0; c < COLOR_COUNT; c++)
		pool_unref(pools[c]);
	config_free(next);
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
	unsigned i;
	int c;

	(void)fd;
	(void)what;
	for (i = 0; i < d->nworkers; i++)
		if (atomic_load(&d->workers[i].cfg_epoch) != d->retired.epoch)
			return;
	event_del(d->retire_timer);
	for (c = 0; c < COLOR_COUNT; c++) {
		/* Requests still in flight hold their own references. */
		pool_unref(d->retired.pools[c]);
		d->retired.pools[c] = NULL;
	}
	free(d->retired.routes);
	free_tls_servers(d->retired.tls, d->retired.cfg->nlistens);
	d->retired.tls = NULL;
	config_free(d->retired.cfg);
	d->retired.routes = NULL;
	d->retired.cfg = NULL;
	d->retired.pending = false;
	if (d->reload_queued)
		run_queued_reload(d);
}

static void
cmd_reload(struct control_conn *c, const struct control_caller *who,
    const struct command_request *rq, void *arg)
{
	struct daemon *d = arg;
	struct config_errors errs = {0};
	int rc;

	(void)rq;
	log_info("reload requested by uid %ld pid %ld", (long)who->uid, (long)who->pid);
	if (d->retired.pending) {
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
	reload_answer(c, rc, &errs);
	config_errors_free(&errs);
}

/* Answers a `reload` caller with the outcome (every error when rejected). */
static void
reload_answer(struct control_conn *c, int rc, const struct config_errors *errs)
{
	struct jbuf b, m;
	size_t i;

	if (rc == 0) {
		control_reply(c, "{\"ok\":true,\"message\":\"configuration reloaded\"}");
		return;
	}
	jbuf_init(&b);
	jbuf_init(&m);
	jbuf_printf(&m, "reload rejected, running configuration kept:");
	for (i = 0; i < errs->n; i++)
		jbuf_printf(&m, "\n%s", errs->msgs[i]);
	jbuf_raw(&b, "{\"ok\":false,\"error\":");
	jbuf_str(&b, m.oom ? "reload rejected" : m.s);
	jbuf_raw(&b, ",\"errors\":[");
	for (i = 0; i < errs->n; i++) {
		if (i > 0)
			jbuf_raw(&b, ",");
		jbuf_str(&b, errs->msgs[i]);
	}
	jbuf_raw(&b, "]}");
	control_reply(c, b.oom ? "{\"ok\":false,\"error\":\"reload rejected\"}" : b.s);
	jbuf_free(&m);
	jbuf_free(&b);
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
		reload_answer(conns[i], rc, &errs);
	free(conns);
	config_errors_free(&errs);
}

/* One TLS server context per listen[] entry that has certificates. */
static struct tls_server **
build_tls_servers(const struct config *cfg, struct config_errors *errs)
{
	struct tls_server **tls;
	char err[512];
	size_t i;

	if ((tls = calloc(cfg->nlistens + 1, sizeof(*tls))) == NULL) {
		config_errors_add(errs, "%s: out of memory", cfg->path);
		return NULL;
	}
	for (i = 0; i < cfg->nlistens; i++) {
		if (cfg->listens[i].ncerts == 0)
			continue;
		if ((tls[i] = tls_server_new(&cfg->listens[i], err, sizeof(err))) == NULL) {
			config_errors_add(errs, "%s:%d: listen %s: %s", cfg->path, cfg->listens[i].line,
			    cfg->listens[i].addr.text, err);
			free_tls_servers(tls, cfg->nlistens);
			return NULL;
		}
	}
	return tls;
}

static void
free_tls_servers(struct tls_server **tls, size_t n)
{
	size_t i;

	if (tls == NULL)
		return;
	for (i = 0; i < n; i++)
		if (tls[i] != NULL)
			tls_server_unref(tls[i]);
	free(tls);
}

static int
attach_pool_tls(struct pool *pools[COLOR_COUNT], const struct config *cfg, struct config_errors *errs)
{
	char err[512];
	int c;

	for (c = 0; c < COLOR_COUNT; c++) {
		if (!cfg->pools[c].tls.enabled)
			continue;
		if ((pools[c]->tls = tls_client_new(&cfg->pools[c].tls, err, sizeof(err))) == NULL) {
			config_errors_add(errs, "%s: pools.%s.tls: %s", cfg->path, color_name((enum color)c), err);
			return -1;
		}
	}
	return 0;
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
