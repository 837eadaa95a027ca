#ifndef CUTOVER_SRC_FLEET_H
#define CUTOVER_SRC_FLEET_H

/*
 * A fleet of cutoverd on etcd (DESIGN.md "A fleet of cutoverd on etcd").
 * The service's state lives in etcd at KEY/state (the state file's text,
 * state.c's one codec, with who made the change and why); every change is
 * one transaction comparing KEY/state's mod_revision, and every node, the
 * writer included, applies changes from its watch of KEY/ through
 * engine_apply. Each node keeps KEY/nodes/NODE under a lease (renewed at a
 * third of its TTL): applied revision, generation, color, healthy servers
 * per color, guard verdict, version. A change answers once every live
 * node's presence shows it, or after fleet.timeout with the laggards.
 *
 * etcd unreachable: the node serves its last applied state, refuses
 * changes unless --local (then diverged until it applies etcd's state
 * again); its guard's rollback is written once etcd is back unless etcd
 * moved on meanwhile. On the main loop, never blocking it (fleet_boot
 * excepted: it runs before the daemon serves). Main thread only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "histogram.h"

struct config_fleet;
struct control_conn;
struct engine;
struct engine_origin;
struct event_base;
struct jbuf;
struct state;
struct fleet;

struct fleet *fleet_new(struct event_base *base, const struct config_fleet *cfg,
    struct engine *engine, char *err, size_t errlen);
void fleet_free(struct fleet *f);

/* This node's name. */
const char *fleet_node(const struct fleet *f);

/*
 * At start, before the daemon serves: reads KEY/state (creating it from
 * local, the state file's copy (local_rc as state_load's) or the initial
 * color, when absent). Runs the loop until etcd answered or every endpoint
 * failed. 0: *out holds etcd's state; 1: etcd unreachable (log says so).
 */
int fleet_boot(struct fleet *f, int local_rc, const struct state *local, struct state *out);

/* After engine_restore: the watch, the lease and the presence. */
void fleet_run(struct fleet *f);

/* Stopping: the presence is removed now (its lease revoked, best effort),
 * so that the fleet does not wait for this node until the lease expires. */
void fleet_leave(struct fleet *f);
/* The revocation is still in flight (bounded by fleet.timeout). */
bool fleet_leaving(const struct fleet *f);

bool fleet_connected(const struct fleet *f);

/* name is a live node of the fleet: this one while etcd answers, or one
 * whose presence is in KEY/nodes/ (its lease not expired). */
bool fleet_node_live(const struct fleet *f, const char *name);

/* Every guard tick: the presence is written again when this node's healthy
 * counts or guard verdict changed, so that the fleet's checks see them. */
void fleet_tick(struct fleet *f);

/* A --local change was made here: diverged until etcd's state is applied. */
void fleet_diverge(struct fleet *f);

/*
 * Every live node other than this one sees at least min_healthy confirmed
 * servers in target: 0, or -1 with the reason (naming the node) in why.
 */
int fleet_check_health(const struct fleet *f, enum color target, unsigned min_healthy, char *why,
    size_t whylen);

/*
 * Writes next (made by o) to etcd in one transaction comparing the revision
 * this node applied last. written is called once: rc 0 with the revision
 * written, 1 when another change won (err says so), -1 when etcd failed
 * (err names etcd).
 */
typedef void fleet_written_cb(void *arg, int rc, int64_t revision, const char *err);
int fleet_propose(struct fleet *f, const struct state *next, const struct engine_origin *o,
    fleet_written_cb *written, void *arg);

/*
 * Answers c once every live node applied revision (or after fleet.timeout):
 * prefix (taken; the answer without its closing brace) then
 * ,"converged":true} or ,"converged":false,"lagging":["door-3"]}.
 */
void fleet_await(struct fleet *f, struct control_conn *c, int64_t revision, char *prefix);

/* The guard rolled back here: write it to etcd now or once it is back. */
void fleet_local_rollback(struct fleet *f, const char *reason);

/* Appends ,"fleet":{...} for status --json. */
void fleet_status(const struct fleet *f, struct jbuf *b);

struct fleet_metrics {
	bool connected;
	unsigned nodes;
	bool converged;
	uint64_t apply[HISTOGRAM_BUCKETS]; /* etcd commit to local apply, per bucket */
	uint64_t apply_sum_us;
};
void fleet_get_metrics(const struct fleet *f, struct fleet_metrics *m);

#endif
