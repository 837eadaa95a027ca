#ifndef CUTOVER_SRC_WORKER_H
#define CUTOVER_SRC_WORKER_H

/*
 * A worker: one thread, its own event_base (created without locks: nothing
 * on it is touched by another thread) and its own SO_REUSEPORT listening
 * sockets. The main thread talks to a worker only through worker_post(),
 * which sets bits in an atomic mask and wakes the worker's eventfd.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config.h"
#include "h2.h"
#include "metrics.h"

struct event;
struct event_base;
struct evconnlistener;
struct fdlimit_backoff;
struct session;
struct tls_server;

/* One listening socket of a worker; index is the listen[] entry. */
struct worker_listener {
	struct worker *w;
	struct evconnlistener *lst;
	struct fdlimit_backoff *backoff; /* after a failed accept() */
	unsigned index;
};
struct http_header;

#define STATUS_CLASSES 6 /* index 0: no response sent; 1..5: 1xx..5xx */

/*
 * Per-worker counters: written only by their worker (relaxed stores of
 * plain increments), summed by readers on other threads.
 */
struct worker_stats {
	_Atomic uint64_t connections;
	_Atomic uint64_t upstream_connects;
	_Atomic uint64_t upstream_reused;
	_Atomic uint64_t requests[COLOR_COUNT][STATUS_CLASSES];
	_Atomic uint64_t upstream_errors[COLOR_COUNT][UPSTREAM_ERR_KINDS];
	/* Responses that failed after their head was sent (cut short). */
	_Atomic uint64_t cut_short[COLOR_COUNT];
	/* Request duration histogram (per bucket) and sum. */
	_Atomic uint64_t latency[COLOR_COUNT][HISTOGRAM_BUCKETS];
	_Atomic uint64_t latency_sum_us[COLOR_COUNT];
	/* Requests that took a color (started) and let it go (finished):
	 * in flight = started - finished, read finished first. */
	_Atomic uint64_t started[COLOR_COUNT];
	_Atomic uint64_t finished[COLOR_COUNT];
	/* HTTP/2 client connections accepted, their streams (requests), and
	 * the GOAWAYs sent, by reason. */
	_Atomic uint64_t h2_connections;
	_Atomic uint64_t h2_streams;
	_Atomic uint64_t h2_goaway[H2_GOAWAY_REASONS];
};

/*
 * Increments a counter that only the calling worker writes: a relaxed load
 * and store (plain moves), no locked instruction on the request path.
 */
static inline void
stat_inc(_Atomic uint64_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
	    memory_order_relaxed);
}

static inline void
stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	    memory_order_relaxed);
}


TAILQ_HEAD(session_list, session);

/* Messages from the main thread (bits of worker.pending). */
#define WORKER_MSG_STOP 0x1  /* stop accepting; exit when no session is busy */
#define WORKER_MSG_FORCE 0x2 /* close everything now and exit */
#define WORKER_MSG_SWITCHED 0x4 /* the route changed: close idle upstream
                                   connections to the inactive color */
#define WORKER_MSG_CLOSE_TUNNELS 0x8 /* close tunnels on the inactive color */
#define WORKER_MSG_RELOAD 0x40 /* take next_cfg; close idle connections to retired pools */
#define WORKER_MSG_PAUSE 0x10  /* limits.max_connections reached: stop accepting */
#define WORKER_MSG_RESUME 0x20 /* below the limit again: accept */

struct worker {
	unsigned id;
	pthread_t thread;
	bool started;
	_Atomic bool done; /* set when the worker's loop has ended */
	struct event_base *base;
	const struct config *cfg;
	struct worker_listener **listeners; /* one per listen[] entry, in order */
	size_t nlisteners;
	/* TLS contexts per listen[] entry (NULL for plain HTTP), owned by the
	 * daemon; replaced by a reload through next_tls. */
	struct tls_server **tls;
	struct tls_server **next_tls;
	bool listeners_paused;
	unsigned nconns;     /* client connections open on this worker */
	bool stopping;
	struct session_list sessions;
	struct prelude *preludes; /* connections still reading a PROXY header */
	struct h2_conn *h2conns;  /* HTTP/2 connections (h2.c) */
	/* Sessions with output to write at the end of this loop turn: writes
	 * are batched after every ready callback ran (see session.c). */
	struct session_list flushq;
	struct session_cache *scache; /* session slots (session.c) */
	struct event *flush_ev;
	unsigned rr_cursor[COLOR_COUNT];
	int wake_fd;
	struct event *wake_ev;
	_Atomic unsigned pending;
	/* Scratch for parsing heads: a head is parsed and re-serialised within
	 * one callback, so one array per worker serves every session. */
	struct http_header *hdrs;
	size_t nhdrs;
	struct accesslog *accesslog; /* NULL when off; set before worker_start() */
	/* Reload hand-over: the main thread sets next_cfg, retire[] and
	 * next_epoch, then posts WORKER_MSG_RELOAD; the worker switches to the
	 * new configuration on its own thread and acknowledges by storing the
	 * epoch in cfg_epoch. */
	struct config *next_cfg;
	struct pool *retire[COLOR_COUNT];
	unsigned next_epoch;
	_Atomic unsigned cfg_epoch;
	/* Monotonic ms of the loop's last heartbeat (every second): the main
	 * thread pings systemd's watchdog only while every loop turns. */
	_Atomic uint64_t heartbeat_ms;
	struct event *heartbeat_ev;
	/* Idle upstream connections this worker holds, over every server, and
	 * the timer that purges those demand no longer needs (upstream.c). */
	unsigned upstream_idle;
	struct event *purge_ev;
	uint64_t purge_ms; /* the period purge_ev runs at */
	struct worker_stats stats;
};

/*
 * Sets up worker id: event base, listeners (bound with SO_REUSEPORT on every
 * configured address), wake-up channel. Main thread, before worker_start().
 * Returns 0, or -1 after logging the cause.
 */
int worker_init(struct worker *w, unsigned id, unsigned nworkers, const struct config *cfg)
    __attribute__((warn_unused_result));

/*
 * Tells the workers about each other (for the daemon-wide connection limit).
 * Main thread, after every worker_init() and before any worker_start().
 */
void worker_set_peers(struct worker *workers, unsigned n);

/*
 * Caps client connections below limits.max_connections when the descriptor
 * limit cannot carry that many (see fdlimit_connections()). Any thread.
 */
void worker_set_conn_cap(unsigned cap);

/*
 * The most idle upstream connections this worker keeps over all servers: its
 * share of the daemon-wide client connection limit (limits.max_connections,
 * or less when the descriptor limit cannot carry it; see fdlimit.h), at
 * least 1. Idle connections past it would take descriptors that clients
 * need. Worker thread.
 */
unsigned worker_idle_cap(const struct worker *w);

/* Starts the worker's thread. Returns 0 or -1. */
int worker_start(struct worker *w) __attribute__((warn_unused_result));

/* Posts WORKER_MSG_* bits to the worker; any thread. */
void worker_post(struct worker *w, unsigned msg);

/* Joins the thread (if started) and frees everything the worker owns. */
void worker_free(struct worker *w);

/*
 * Checks that every configured listen address can be bound, i.e. that no
 * other process listens there (SO_REUSEPORT would otherwise silently share
 * the port with it). Returns 0, or -1 after logging the address and cause.
 */
int worker_probe_listeners(const struct config *cfg) __attribute__((warn_unused_result));

/*
 * The same check for a reload: only the addresses next has and old has not
 * (the daemon already listens on the others). Problems are appended to errs
 * as "FILE:LINE: listen ADDR: reason". Returns 0 or -1.
 */
int worker_probe_new_listeners(const struct config *old, const struct config *next,
    struct config_errors *errs) __attribute__((warn_unused_result));

/* Requests in flight on color, summed over workers; any thread. */
uint64_t worker_inflight(const struct worker *workers, unsigned n, enum color color);

/* Called by a session when its client connection closes. Worker thread. */
void worker_session_closed(struct worker *w, struct session *s);

#endif
