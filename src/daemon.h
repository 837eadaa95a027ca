#ifndef CUTOVER_SRC_DAEMON_H
#define CUTOVER_SRC_DAEMON_H

#ifdef CUTOVER_PURE
#error "daemon.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * The running daemon: workers, pools and the routes, health checks, the
 * switch engine (engine.h) and the effects it is given (state file, route
 * publication, audit history, hooks, timers), metrics, the control socket
 * and signals. Everything here runs on the main thread.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"
#include "engine.h"
#include "metrics.h"
#include "pool.h"
#include "watchdog.h"

struct accesslog;
struct control;
struct control_caller;
struct control_conn;
struct event;
struct event_base;
struct health;
struct hook_slot;
struct metrics;
struct tls_server;
struct transition;
struct waiter;
struct worker;

TAILQ_HEAD(waiter_list, waiter);
TAILQ_HEAD(hook_list, hook_slot);

struct daemon {
	struct config *cfg;
	struct worker *workers;
	unsigned nworkers;
	struct pool *pools[COLOR_COUNT];
	struct route *routes; /* routes[c]: c active; replaced by a reload */
	struct tls_server **tls; /* per listen[] entry, NULL for plain HTTP */
	struct engine engine; /* the switch state; changed only through engine_* */
	struct health *health;
	struct control *control;
	struct metrics *metrics;
	struct metrics_server *metric_servers;
	struct accesslog *accesslog;
	char *history;
	struct event_base *base;
	struct event *sig_term, *sig_int, *sig_hup, *sig_usr1;
	struct event *drain_timer, *reap_timer, *window_timer, *wait_timer, *tunnel_timer,
	    *guard_timer;
	struct waiter_list waiters;
	struct hook_list hooks;  /* hooks still running */
	struct transition *op;   /* the switch being prepared (at most one) */
	/* What a reload replaced, freed once every worker has let go of it. */
	struct {
		bool pending;
		unsigned epoch;
		struct config *cfg;
		struct pool *pools[COLOR_COUNT];
		struct route *routes;
		struct tls_server **tls;
	} retired;
	unsigned epoch;
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
	bool stopping;
};

/*
 * Runs the daemon with cfg (ownership passes to the daemon) until SIGTERM or
 * SIGINT. Returns the process exit status: 0 after a clean stop, 1 when
 * startup failed (the cause was logged in one line).
 */
int daemon_run(struct config *cfg);

/*
 * Reloads the configuration file: a new configuration is built and validated
 * whole, then swapped in (pools, servers, health, smoke, hooks, limits,
 * timeouts); the active color, generation and safety window carry over and
 * requests in flight finish undisturbed. On rejection returns -1 and every
 * error is in errs (the running configuration stays).
 */
int daemon_reload(struct daemon *d, struct config_errors *errs);

/* Registers a `switch --wait` caller to answer once color has drained. */
int daemon_add_waiter(struct daemon *d, struct control_conn *c, enum color old, char *answer_prefix);

#endif
