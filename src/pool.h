#ifndef CUTOVER_SRC_POOL_H
#define CUTOVER_SRC_POOL_H

/*
 * Color pools and the active route.
 *
 * A pool is one color's list of servers. The route names the pool that new
 * requests go to; it is published through one _Atomic(struct route *) so a
 * switch is a single release store and each request does a single acquire
 * load. Pools are reference-counted: a request keeps a reference
 * to its pool until it ends, so a reload or switch can replace them while
 * requests still use the old ones.
 */

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "config.h"

struct upstream_idle;
struct tls_client;

struct server {
	struct addr addr;
	/* A server a name resolved to: "host:port" and the label
	 * "host:port (address)"; both NULL for a numeric one. Owned by the pool. */
	char *name;
	char *label;
	/* Added by a DNS answer and not confirmed by `rise` checks yet (main
	 * thread only): it counts for its color's min_healthy only once
	 * confirmed, and never against it before. */
	bool fresh;
	struct pool *pool;    /* owner */
	enum color color;
	unsigned index;       /* position in its pool */
	_Atomic bool up;      /* routable: read by workers; set by health checks,
	                         cleared by them or by passive failures */
	_Atomic bool confirmed; /* passed `rise` consecutive checks since it last
	                           went down or since start: fit as a switch target */
	_Atomic unsigned passive_fails; /* consecutive connect failures/timeouts
	                                   seen on live traffic */
	/* Per-worker idle connection lists, indexed by worker id; each is touched
	 * only by its worker. Allocated by upstream_pools_init(). */
	struct upstream_idle *idle;
	unsigned nidle;
};

struct pool {
	_Atomic unsigned refs;
	_Atomic bool retired; /* replaced by a reload: connections to it are not kept idle */
	enum color color;
	struct server *servers;
	size_t nservers;
	struct tls_client *tls; /* upstream TLS, or NULL; the pool holds a reference */
};

/*
 * A route: where new requests go. With weight_bp > 0 a ramp is on: a
 * request whose bucket (bucket.h) is below weight_bp goes to ramp_target,
 * the others to active. A ramp step publishes a new route (one store),
 * never changes one a worker may be reading.
 */
struct route {
	struct pool *pools[COLOR_COUNT];
	enum color active;
	enum color ramp_target; /* valid when weight_bp > 0 */
	unsigned weight_bp;     /* 0: no ramp; else 1..9999 */
	struct route *next;     /* the generation's list of ramp routes */
};

/* Whether new requests may go to color c on route r (the active color, or
 * a ramp's target). */
static inline bool
route_serves(const struct route *r, enum color c)
{
	return r->active == c || (r->weight_bp > 0 && r->ramp_target == c);
}

/* Builds a pool from its configuration, with one reference and an idle
 * upstream connection list per worker. NULL on ENOMEM. */
struct pool *pool_new(enum color color, const struct config_pool *cp, unsigned nworkers);

/* A server a name resolved to (resolver.h): its address and "host:port". */
struct pool_named {
	struct addr addr;
	const char *name;
};

/* pool_new with, after the numeric servers of cp, the nnamed servers named. */
struct pool *pool_new_named(enum color color, const struct config_pool *cp,
    const struct pool_named *named, size_t nnamed, unsigned nworkers);

/* What logs, health, status and metrics call a server: its label or address. */
static inline const char *
server_label(const struct server *s)
{
	return s->label != NULL ? s->label : s->addr.text;
}

/* What a Host header names: "host:port" for a name, else the address. */
static inline const char *
server_host(const struct server *s)
{
	return s->name != NULL ? s->name : s->addr.text;
}

void pool_ref(struct pool *p);
void pool_unref(struct pool *p);

/*
 * Picks the next server that is up, round-robin from *cursor (a per-worker
 * counter, so workers never contend on it). skip is a server to avoid (the
 * one that just failed) or NULL. Returns NULL when no server is up.
 */
struct server *pool_pick(struct pool *p, unsigned *cursor, const struct server *skip);

/* Number of servers currently up. */
size_t pool_healthy(const struct pool *p);

/* Number of servers up and confirmed by `rise` consecutive checks. */
size_t pool_confirmed(const struct pool *p);

/* Number of servers a DNS answer added that `rise` checks have not confirmed yet. */
size_t pool_fresh(const struct pool *p);

/*
 * Passive health, called by workers: a connect failure or timeout on live
 * traffic (fall of them in a row take the server down until checks bring it
 * back), or a good exchange (resets the count). Returns true when this call
 * took the server down.
 */
bool server_passive_failure(struct server *s, unsigned fall);
void server_passive_success(struct server *s);

/*
 * The active route. Routes are immutable and are retired only once every
 * worker has passed a quiescent point (a reload's concern), so a reader needs
 * no reference on the route itself: route_current() is one acquire load.
 * route_publish() is one release store; only the main thread calls it.
 * route_acquire_pool() returns the active pool with a reference that the
 * caller drops with pool_unref() when its request ends.
 */
struct route *route_current(void);
void route_publish(struct route *r);
struct pool *route_acquire_pool(enum color *color);

#endif
