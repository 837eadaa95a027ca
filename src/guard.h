#ifndef CUTOVER_SRC_GUARD_H
#define CUTOVER_SRC_GUARD_H

/*
 * The auto-rollback guard: watches the active color during the safety window
 * and says when to roll back. Pure logic with an injected clock: the daemon
 * feeds it cumulative counters every tick (~250 ms) and asks for a verdict.
 *
 * Triggers (each configurable; 0/false disables):
 *   - health: the active color has fewer than min_healthy servers up;
 *   - error rate: (5xx answers + upstream failures) / requests over the last
 *     `window` ms reaches error_rate, judged only once min_requests requests
 *     were seen in that window;
 *   - latency: p99 over the window exceeds latency_factor times the
 *     baseline p99 (the previous color's p99 measured over the window just
 *     before the switch), judged only once min_requests were seen.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "histogram.h"

#define GUARD_MAX_SLOTS 512
/* The latency trigger judges only on at least this many requests over at
 * least this long (or the whole window when it is shorter), and counts a
 * baseline as the upper bound of its histogram bucket. */
#define GUARD_LATENCY_MIN_REQUESTS 100
#define GUARD_LATENCY_MIN_SPAN_MS 1000

/* Cumulative counters of one color at one instant. */
struct guard_sample {
	uint64_t requests; /* finished requests */
	uint64_t errors;   /* 5xx answers (including the proxy's own 502/503/504) */
	uint64_t latency[HISTOGRAM_BUCKETS]; /* per bucket, cumulative over time */
};

struct guard_config {
	double error_rate;     /* 0 < x <= 1 */
	unsigned min_requests;
	uint64_t window_ms;
	double latency_factor; /* 0: latency trigger off */
	unsigned min_healthy;  /* 0: health trigger off */
	const char *name;      /* color named in reasons ("green"); NULL: "the active color"; not copied */
};

enum guard_verdict { GUARD_OK, GUARD_ROLLBACK };

enum guard_trigger { GUARD_TRIGGER_NONE, GUARD_TRIGGER_HEALTH, GUARD_TRIGGER_ERRORS, GUARD_TRIGGER_LATENCY };

struct guard {
	struct guard_config cfg;
	/* ring of (time, sample) points covering at least window_ms */
	struct {
		uint64_t t_ms;
		struct guard_sample s;
	} ring[GUARD_MAX_SLOTS];
	size_t head, count;
	double baseline_p99_us; /* 0 when unknown: latency trigger then off */
	uint64_t seen_requests; /* requests seen since guard_start */
	struct guard_sample start;
	bool started;
};

void guard_init(struct guard *g, const struct guard_config *cfg);

/*
 * Starts watching after a switch at now_ms; start is the active color's
 * counters at that moment; baseline_p99_us the previous color's p99 before
 * the switch (0 if unknown or too little traffic).
 */
void guard_start(struct guard *g, uint64_t now_ms, const struct guard_sample *start, double baseline_p99_us);

/* Adds the active color's cumulative counters at now_ms (monotonic, non-decreasing). */
void guard_add(struct guard *g, uint64_t now_ms, const struct guard_sample *s);

/*
 * Judges the window ending now. healthy is the active color's number of
 * servers up. On GUARD_ROLLBACK, *trigger says which and reason gets one line
 * ("error rate 12.0% over the last 30s (60 of 500 requests) reached 5.0%").
 */
enum guard_verdict guard_check(const struct guard *g, unsigned healthy, enum guard_trigger *trigger,
    char *reason, size_t reasonlen);

/* Requests seen since guard_start (to tell "too little traffic" at the end). */
uint64_t guard_requests_seen(const struct guard *g);

/*
 * p99 in microseconds estimated from the difference of two cumulative
 * histograms (later - earlier), by linear interpolation inside the bucket;
 * 0 when there are no requests in between.
 */
double guard_p99_us(const uint64_t later[HISTOGRAM_BUCKETS], const uint64_t earlier[HISTOGRAM_BUCKETS]);

/* Pure helper for the baseline: the window's p99 from a ring of samples. */
double guard_window_p99(const struct guard *g, uint64_t now_ms);

const char *guard_trigger_name(enum guard_trigger t); /* "health", "error-rate", "latency" */

/*
 * A safety window's outcome (status "verdict"): none yet, passed, unguarded
 * (auto_rollback off), insufficient-traffic (fewer than min_requests seen:
 * a release is not called good on too little traffic), rolled-back,
 * rollback-failed (the guard condemned the release but could not roll
 * back), committed (the operator ended the window).
 */
enum window_verdict {
	WINDOW_NONE,
	WINDOW_PASSED,
	WINDOW_UNGUARDED,
	WINDOW_INSUFFICIENT_TRAFFIC,
	WINDOW_ROLLED_BACK,
	WINDOW_ROLLBACK_FAILED,
	WINDOW_COMMITTED,
};

/* "passed", "unguarded", ...; NULL for WINDOW_NONE. */
const char *window_verdict_name(enum window_verdict v);

/*
 * Judges a window that ended without the guard acting: unguarded when
 * enabled is false, insufficient-traffic under cfg.min_requests requests,
 * passed otherwise; reason gets one line.
 */
enum window_verdict guard_judge_window(const struct guard *g, bool enabled, char *reason,
    size_t reasonlen);

/*
 * A ramp step's analysis: the target and the old color side by side over
 * the same span (each given by its cumulative counters at the step's start
 * and now). HOLD when either color saw fewer than cfg->min_requests
 * requests in the span (too little traffic to call the target good or
 * bad); BREACH when the target's error rate (5xx and cut-short answers)
 * exceeds the old color's by cfg->error_rate or more, or, with
 * cfg->latency_factor, when its p99 exceeds latency_factor times the old
 * color's; PASS otherwise. reason gets one line with the figures, e.g.
 * "green error rate 100.0% (60 of 60 requests) against blue 0.0% (0 of
 * 540): 100.0 points above, the limit is 5.0".
 */
enum guard_compare_verdict { GUARD_CMP_PASS, GUARD_CMP_HOLD, GUARD_CMP_BREACH };

enum guard_compare_verdict guard_compare(const struct guard_config *cfg, const char *target_name,
    const struct guard_sample *t0, const struct guard_sample *t1, const char *old_name,
    const struct guard_sample *o0, const struct guard_sample *o1, enum guard_trigger *trigger,
    char *reason, size_t reasonlen);

#endif
