#ifndef CUTOVER_SRC_UPSTREAM_H
#define CUTOVER_SRC_UPSTREAM_H

/*
 * Connections to upstream servers: non-blocking connect and keep-alive reuse.
 *
 * Each worker keeps, per server, a LIFO list of idle connections
 * (server->idle[worker->id]); only that worker touches it, so no locks. An
 * idle connection holds a reference on its server's pool. While idle, any
 * byte or EOF from the server, or upstream_idle timeout, closes it.
 *
 * How many stay idle follows demand, as HAProxy's pool-purge-delay: every
 * connection a request gives back is kept (under upstream.keepalive when it
 * is a number, and under the worker's share of the connection limit), and
 * every upstream.purge_delay the worker closes half of the idle connections
 * that no request used during the whole last purge_delay, the longest idle
 * first. Reuse is LIFO, so the connections a burst needed stay at the head
 * and keep being used; those past the recent peak sink to the tail, idle,
 * and are purged there: the list shrinks gradually to what demand needs.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/bufferevent.h>

struct event_base;
struct server;
struct worker;

struct reader;

struct upstream_conn {
	struct bufferevent *bev;
	struct reader *rd; /* reads a plain bev's socket (see reader.h); NULL for TLS */
	struct server *server;
	struct worker *w;
	TAILQ_ENTRY(upstream_conn) link;
	unsigned requests; /* requests started on this connection */
	uint64_t idle_since_ms; /* clock_mono_ms() when it was last given back */
	bool connected;
};

TAILQ_HEAD(upstream_list, upstream_conn);

struct upstream_idle {
	struct upstream_list list;
	unsigned count;
};

void upstream_idle_init(struct upstream_idle *idle);

/*
 * Takes the most recently used idle connection to s, or NULL. The caller
 * owns it and must set its callbacks (bufferevent_setcb) before returning to
 * the loop.
 */
struct upstream_conn *upstream_take_idle(struct worker *w, struct server *s);

/*
 * Starts a non-blocking connect to s with the given callbacks; the event
 * callback sees BEV_EVENT_CONNECTED or an error. Returns NULL when the
 * connect failed at once (errno set). A failure of ours (out of descriptors
 * or memory: fdlimit_local_error(errno)) is logged here, rate-limited, and
 * must not count against the server's health.
 */
struct upstream_conn *upstream_connect(struct worker *w, struct server *s, bufferevent_data_cb readcb,
    bufferevent_data_cb writecb, bufferevent_event_cb eventcb, void *arg);

/*
 * Gives a connection whose last exchange ended cleanly back to the idle list
 * (or closes it when reuse is off, upstream.keepalive idle connections to its
 * server are already kept, the worker holds its share of the connection
 * limit idle, or the connection's color or pool is no longer in use).
 */
void upstream_release(struct upstream_conn *c);

/*
 * A new, unconnected bufferevent for talking to s: plain, or TLS when its
 * pool has upstream TLS (SNI and verification as configured). Connect it
 * with bufferevent_socket_connect(). Used by proxied requests, health checks
 * and smoke tests alike. Returns NULL on failure.
 */
struct bufferevent *upstream_bev_new(struct event_base *base, const struct server *s);

/* Closes and frees c. */
void upstream_close(struct upstream_conn *c);

/*
 * The purge tick (every upstream.purge_delay, from the worker's timer): for
 * each server of the current route, closes half (rounded up) of the idle
 * connections that have been idle for at least purge_delay, oldest first.
 * Worker thread.
 */
void upstream_purge(struct worker *w);

/* Closes every idle connection this worker holds to the servers of pool p. */
struct pool;
void upstream_close_idle_pool(struct worker *w, struct pool *p);

/*
 * A DNS answer replaced pool from by to over the same configuration: this
 * worker's idle connections to a server of from that to has too (same
 * label) move to it, in their order. Worker thread.
 */
void upstream_adopt_idle(struct worker *w, struct pool *from, struct pool *to);

#endif
