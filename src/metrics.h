#ifndef CUTOVER_SRC_METRICS_H
#define CUTOVER_SRC_METRICS_H

#ifdef CUTOVER_PURE
#error "metrics.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * Prometheus metrics: an HTTP endpoint (GET /metrics on metrics.listen, main
 * thread) that renders a snapshot the daemon assembles from per-worker
 * counters at scrape time. Names are part of the public interface
 * (DESIGN.md): cutover_active_color{color}, cutover_requests_total{color,code},
 * cutover_inflight_requests{color}, cutover_server_up{color,server},
 * cutover_switches_total{trigger}, cutover_switch_refused_total,
 * cutover_request_duration_seconds{color} (histogram),
 * cutover_upstream_errors_total{color,kind},
 * cutover_ramp_weight_ratio{color}, cutover_h2_connections_total,
 * cutover_h2_streams_total, cutover_h2_goaway_total{reason}.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "color.h"
#include "h2.h"
#include "histogram.h"

struct evbuffer;
struct event_base;
struct jbuf;

enum upstream_error_kind {
	UPSTREAM_ERR_CONNECT = 0, /* connect refused/failed */
	UPSTREAM_ERR_TIMEOUT,     /* connect or response timeout */
	UPSTREAM_ERR_INVALID,     /* invalid response */
	UPSTREAM_ERR_RESET,       /* closed or reset mid-exchange */
	UPSTREAM_ERR_LOCAL,       /* no connect tried: out of descriptors or
	                             memory here (not the color's fault) */
	UPSTREAM_ERR_KINDS
};

enum switch_trigger { TRIGGER_MANUAL = 0, TRIGGER_ROLLBACK, TRIGGER_AUTO_ROLLBACK, TRIGGER_COUNT };
const char *metrics_trigger_name(enum switch_trigger t); /* "manual", "rollback", "auto-rollback" */

struct metrics_server {
	enum color color;
	const char *address; /* "127.0.0.1:9001" */
	bool up;
};

struct metrics_snapshot {
	enum color active;
	/* A ramp: ramp_target's share of new requests in basis points (0: none). */
	enum color ramp_target;
	unsigned ramp_weight_bp;
	/* requests by status class: [color][0] = no response, [1..5] = 1xx..5xx */
	uint64_t requests[COLOR_COUNT][6];
	uint64_t inflight[COLOR_COUNT];
	uint64_t latency[COLOR_COUNT][HISTOGRAM_BUCKETS]; /* per bucket, not cumulative */
	uint64_t latency_sum_us[COLOR_COUNT];
	uint64_t upstream_errors[COLOR_COUNT][UPSTREAM_ERR_KINDS];
	uint64_t switches[TRIGGER_COUNT];
	uint64_t switch_refused;
	uint64_t h2_connections;
	uint64_t h2_streams;
	uint64_t h2_goaway[H2_GOAWAY_REASONS]; /* by reason, h2_goaway_reason_name() */
	const struct metrics_server *servers;
	size_t nservers;
	/* In a fleet only: cutover_fleet_connected, _nodes, _converged,
	 * _apply_seconds (etcd commit to local apply, per bucket). */
	bool fleet;
	bool fleet_connected;
	unsigned fleet_nodes;
	bool fleet_converged;
	uint64_t fleet_apply[HISTOGRAM_BUCKETS];
	uint64_t fleet_apply_sum_us;
};

/*
 * Renders snap in the Prometheus text exposition format (version 0.0.4) to
 * out: # HELP and # TYPE lines, requests with code="1xx".."5xx" (and
 * code="none" for requests that got no response), histogram buckets
 * cumulative with le="0.001".."+Inf", _sum in seconds and _count.
 * Returns 0, -1 on allocation failure.
 */
int metrics_render(struct evbuffer *out, const struct metrics_snapshot *snap)
    __attribute__((warn_unused_result));

/* Fills a snapshot at scrape time (the daemon provides it). */
typedef void (*metrics_snapshot_cb)(struct metrics_snapshot *snap, void *arg);

struct metrics;

/*
 * Serves GET /metrics (and GET / with a short pointer to it, or the status
 * page: metrics_set_status; anything else 404) on listen, on base. Each scrape calls fill() then metrics_render().
 * Returns NULL after logging the cause (e.g. address in use).
 */
struct metrics *metrics_new(struct event_base *base, const struct addr *listen, metrics_snapshot_cb fill,
    void *arg);
void metrics_free(struct metrics *m);

/*
 * Turns on the status page (DESIGN.md "Status page"): GET / then serves the
 * embedded page (statuspage.h) with a Content-Security-Policy that allows
 * nothing but its own inline script and style, and GET /status.json the
 * JSON status() appends to b (closed object). Without it, / is a pointer to
 * /metrics and /status.json is 404. Read only either way: any method but GET
 * and HEAD gets 405.
 */
typedef void (*metrics_status_cb)(struct jbuf *b, void *arg);
void metrics_set_status(struct metrics *m, metrics_status_cb status, void *arg);

#endif
