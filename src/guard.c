#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "histogram.h"

/*
 * The ring keeps (time, cumulative sample) points, oldest at head. Points are
 * kept sparsely so that GUARD_MAX_SLOTS cover about two windows whatever the
 * tick: a point is kept only once it is at least `spacing` ms after the
 * previous kept point; until then each new sample overwrites the newest slot,
 * so the newest slot always holds "now". guard_start puts the start sample in
 * the ring first, so a window that reaches back before the start is cut at
 * the start and traffic from before the switch is never counted.
 */

#define GUARD_P99 0.99

static uint64_t guard_spacing_ms(const struct guard *);
static size_t guard_slot(const struct guard *, size_t);
static void guard_push(struct guard *, uint64_t, const struct guard_sample *);
static size_t guard_window_base(const struct guard *, uint64_t);
static uint64_t sub_sat(uint64_t, uint64_t);
static void fmt_span(char *, size_t, uint64_t);
static void fmt_ms(char *, size_t, double);
static double baseline_floor(double us);
static uint64_t latency_min_span(const struct guard *g);

void
guard_init(struct guard *g, const struct guard_config *cfg)
{
	memset(g, 0, sizeof(*g));
	g->cfg = *cfg;
}

/*
 * The histogram cannot tell latencies apart within a bucket, so a baseline
 * counts as its bucket's upper bound: otherwise a 0.4 ms baseline times 3
 * would trip on any request that lands in the next bucket.
 */
static double
baseline_floor(double us)
{
	unsigned b = histogram_bucket((uint64_t)us);

	if (b < HISTOGRAM_BUCKETS - 1 && us < (double)histogram_bounds_us[b])
		return (double)histogram_bounds_us[b];
	return us;
}

/* The shortest span a latency verdict may rest on: 1 s, or the window. */
static uint64_t
latency_min_span(const struct guard *g)
{
	return g->cfg.window_ms < GUARD_LATENCY_MIN_SPAN_MS ? g->cfg.window_ms : GUARD_LATENCY_MIN_SPAN_MS;
}

void
guard_start(struct guard *g, uint64_t now_ms, const struct guard_sample *start, double baseline_p99_us)
{
	g->head = 0;
	g->count = 0;
	g->start = *start;
	g->baseline_p99_us = baseline_p99_us > 0 ? baseline_floor(baseline_p99_us) : 0;
	g->seen_requests = 0;
	g->started = true;
	guard_push(g, now_ms, start);
}

void
guard_add(struct guard *g, uint64_t now_ms, const struct guard_sample *s)
{
	size_t newest, prev;

	if (g->count > 0 && now_ms < g->ring[guard_slot(g, g->count - 1)].t_ms)
		return; /* the clock must not run backwards; ignore such a point */
	if (g->started)
		g->seen_requests = sub_sat(s->requests, g->start.requests);
	if (g->count >= 2) {
		newest = guard_slot(g, g->count - 1);
		prev = guard_slot(g, g->count - 2);
		/*
		 * The newest slot becomes a kept point only if it is far enough
		 * from the one before; otherwise the new sample replaces it.
		 */
		if (g->ring[newest].t_ms - g->ring[prev].t_ms < guard_spacing_ms(g)) {
			g->ring[newest].t_ms = now_ms;
			g->ring[newest].s = *s;
			return;
		}
	}
	guard_push(g, now_ms, s);
}

enum guard_verdict
guard_check(const struct guard *g, unsigned healthy, enum guard_trigger *trigger, char *reason,
    size_t reasonlen)
{
	const struct guard_sample *now, *base;
	const char *name = g->cfg.name != NULL ? g->cfg.name : "the active color";
	uint64_t reqs, errs, now_ms;
	char span[32], p99s[32], bases[32];
	size_t b;
	double rate, p99;

	if (trigger != NULL)
		*trigger = GUARD_TRIGGER_NONE;
	if (reason != NULL && reasonlen > 0)
		reason[0] = '\0';
	if (!g->started || g->count == 0)
		return GUARD_OK;

	if (g->cfg.min_healthy > 0 && healthy < g->cfg.min_healthy) {
		if (trigger != NULL)
			*trigger = GUARD_TRIGGER_HEALTH;
		if (reason != NULL)
			snprintf(reason, reasonlen, "%s has %u servers up, needs %u", name, healthy,
			    g->cfg.min_healthy);
		return GUARD_ROLLBACK;
	}

	now = &g->ring[guard_slot(g, g->count - 1)].s;
	now_ms = g->ring[guard_slot(g, g->count - 1)].t_ms;
	b = guard_window_base(g, now_ms);
	base = &g->ring[b].s;
	reqs = sub_sat(now->requests, base->requests);
	errs = sub_sat(now->errors, base->errors);
	if (reqs == 0 || reqs < g->cfg.min_requests)
		return GUARD_OK; /* too little traffic to judge */
	fmt_span(span, sizeof(span), now_ms - g->ring[b].t_ms);

	rate = (double)errs / (double)reqs;
	if (g->cfg.error_rate > 0 && rate >= g->cfg.error_rate) {
		if (trigger != NULL)
			*trigger = GUARD_TRIGGER_ERRORS;
		if (reason != NULL)
			snprintf(reason, reasonlen,
			    "error rate %.1f%% (%" PRIu64 " of %" PRIu64
			    " requests) over the last %s reached the limit of %.1f%%",
			    rate * 100, errs, reqs, span, g->cfg.error_rate * 100);
		return GUARD_ROLLBACK;
	}

	/*
	 * A p99 needs enough samples over enough time to mean anything: right
	 * after a switch, a few dozen requests over a few ms would let one
	 * scheduling hiccup roll back a good release.
	 */
	if (g->cfg.latency_factor > 0 && g->baseline_p99_us > 0 && reqs >= GUARD_LATENCY_MIN_REQUESTS &&
	    now_ms - g->ring[b].t_ms >= latency_min_span(g)) {
		p99 = guard_p99_us(now->latency, base->latency);
		if (p99 > g->cfg.latency_factor * g->baseline_p99_us) {
			if (trigger != NULL)
				*trigger = GUARD_TRIGGER_LATENCY;
			fmt_ms(p99s, sizeof(p99s), p99);
			fmt_ms(bases, sizeof(bases), g->baseline_p99_us);
			if (reason != NULL)
				snprintf(reason, reasonlen,
				    "p99 latency %s over the last %s exceeds %.1fx the baseline %s", p99s,
				    span, g->cfg.latency_factor, bases);
			return GUARD_ROLLBACK;
		}
	}
	return GUARD_OK;
}

uint64_t
guard_requests_seen(const struct guard *g)
{
	return g->started ? g->seen_requests : 0;
}

/*
 * Prometheus' histogram_quantile estimate: the rank 0.99 * total falls in the
 * first bucket whose cumulative count reaches it, and the answer is
 * interpolated linearly between that bucket's lower and upper bound (0 for
 * the first bucket's lower bound). A rank in the +Inf bucket has no upper
 * bound: the answer is then twice the last finite bound (20 s), a value that
 * means "beyond the histogram" and still trips any sane latency factor.
 */
double
guard_p99_us(const uint64_t later[HISTOGRAM_BUCKETS], const uint64_t earlier[HISTOGRAM_BUCKETS])
{
	uint64_t d[HISTOGRAM_BUCKETS];
	uint64_t total = 0, cum = 0;
	double rank, lower, upper;
	unsigned i;

	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		d[i] = sub_sat(later[i], earlier[i]);
		total += d[i];
	}
	if (total == 0)
		return 0;
	rank = GUARD_P99 * (double)total;
	for (i = 0; i < HISTOGRAM_BUCKETS - 1; i++) {
		if ((double)(cum + d[i]) >= rank) {
			lower = i == 0 ? 0 : (double)histogram_bounds_us[i - 1];
			upper = (double)histogram_bounds_us[i];
			/* d[i] > 0: cum < rank <= cum + d[i] */
			return lower + (upper - lower) * (rank - (double)cum) / (double)d[i];
		}
		cum += d[i];
	}
	return 2.0 * (double)histogram_bounds_us[HISTOGRAM_BUCKETS - 2];
}

/*
 * The p99 over [now_ms - window_ms, newest point]: the baseline for the next
 * switch is taken from the outgoing color's guard, fed but never started (or
 * started at the previous switch, which then also bounds the window).
 */
double
guard_window_p99(const struct guard *g, uint64_t now_ms)
{
	size_t b;

	if (g->count == 0)
		return 0;
	b = guard_window_base(g, now_ms);
	return guard_p99_us(g->ring[guard_slot(g, g->count - 1)].s.latency, g->ring[b].s.latency);
}

const char *
guard_trigger_name(enum guard_trigger t)
{
	switch (t) {
	case GUARD_TRIGGER_HEALTH:
		return "health";
	case GUARD_TRIGGER_ERRORS:
		return "error-rate";
	case GUARD_TRIGGER_LATENCY:
		return "latency";
	case GUARD_TRIGGER_NONE:
		break;
	}
	return "none";
}

/* Minimum distance between kept points: GUARD_MAX_SLOTS/2 of them span a window. */
static uint64_t
guard_spacing_ms(const struct guard *g)
{
	return g->cfg.window_ms / (GUARD_MAX_SLOTS / 2);
}

/* Ring index of the i-th point, 0 = oldest. */
static size_t
guard_slot(const struct guard *g, size_t i)
{
	return (g->head + i) % GUARD_MAX_SLOTS;
}

static void
guard_push(struct guard *g, uint64_t t_ms, const struct guard_sample *s)
{
	size_t slot;

	if (g->count < GUARD_MAX_SLOTS) {
		slot = guard_slot(g, g->count);
		g->count++;
	} else {
		slot = g->head;
		g->head = (g->head + 1) % GUARD_MAX_SLOTS;
	}
	g->ring[slot].t_ms = t_ms;
	g->ring[slot].s = *s;
}

/*
 * Ring index of the oldest point at or after now_ms - window_ms (the newest
 * point if none is). g->count > 0.
 */
static size_t
guard_window_base(const struct guard *g, uint64_t now_ms)
{
	uint64_t from = now_ms > g->cfg.window_ms ? now_ms - g->cfg.window_ms : 0;
	size_t i;

	for (i = 0; i + 1 < g->count; i++)
		if (g->ring[guard_slot(g, i)].t_ms >= from)
			break;
	return guard_slot(g, i);
}

/* Counters only grow; a smaller later value (a reset) counts as no change. */
static uint64_t
sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* "30s", "12.5s" */
static void
fmt_span(char *buf, size_t len, uint64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "s", ms / 1000);
	else
		snprintf(buf, len, "%.1fs", (double)ms / 1000);
}

/* microseconds as "412.3ms" */
static void
fmt_ms(char *buf, size_t len, double us)
{
	snprintf(buf, len, "%.1fms", us / 1000);
}

const char *
window_verdict_name(enum window_verdict v)
{
	switch (v) {
	case WINDOW_PASSED:
		return "passed";
	case WINDOW_UNGUARDED:
		return "unguarded";
	case WINDOW_INSUFFICIENT_TRAFFIC:
		return "insufficient-traffic";
	case WINDOW_ROLLED_BACK:
		return "rolled-back";
	case WINDOW_ROLLBACK_FAILED:
		return "rollback-failed";
	case WINDOW_COMMITTED:
		return "committed";
	case WINDOW_NONE:
		break;
	}
	return NULL;
}

enum window_verdict
guard_judge_window(const struct guard *g, bool enabled, char *reason, size_t reasonlen)
{
	uint64_t seen = guard_requests_seen(g);

	if (!enabled) {
		snprintf(reason, reasonlen, "auto_rollback is disabled");
		return WINDOW_UNGUARDED;
	}
	if (seen < g->cfg.min_requests) {
		snprintf(reason, reasonlen,
		    "the guard saw too little traffic: %" PRIu64 " requests, fewer than min_requests %u",
		    seen, g->cfg.min_requests);
		return WINDOW_INSUFFICIENT_TRAFFIC;
	}
	snprintf(reason, reasonlen, "%" PRIu64 " requests within the limits", seen);
	return WINDOW_PASSED;
}

enum guard_compare_verdict
guard_compare(const struct guard_config *cfg, const char *target_name, const struct guard_sample *t0,
    const struct guard_sample *t1, const char *old_name, const struct guard_sample *o0,
    const struct guard_sample *o1, enum guard_trigger *trigger, char *reason, size_t reasonlen)
{
	uint64_t tr = sub_sat(t1->requests, t0->requests), te = sub_sat(t1->errors, t0->errors);
	uint64_t orq = sub_sat(o1->requests, o0->requests), oe = sub_sat(o1->errors, o0->errors);
	double trate, orate, tp99, op99;
	char tps[32], ops[32];

	*trigger = GUARD_TRIGGER_NONE;
	if (tr < cfg->min_requests || orq < cfg->min_requests || tr == 0 || orq == 0) {
		snprintf(reason, reasonlen,
		    "insufficient traffic: %s %" PRIu64 " and %s %" PRIu64
		    " requests this step, min_requests is %u",
		    target_name, tr, old_name, orq, cfg->min_requests);
		return GUARD_CMP_HOLD;
	}
	/* Bounded: errors counted before their request finished can make te > tr. */
	trate = te >= tr ? 1.0 : (double)te / (double)tr;
	orate = oe >= orq ? 1.0 : (double)oe / (double)orq;
	if (cfg->error_rate > 0 && trate - orate >= cfg->error_rate) {
		*trigger = GUARD_TRIGGER_ERRORS;
		snprintf(reason, reasonlen,
		    "%s error rate %.1f%% (%" PRIu64 " of %" PRIu64 " requests) against %s %.1f%% (%" PRIu64
		    " of %" PRIu64 "): %.1f points above, the limit is %.1f",
		    target_name, trate * 100, te, tr, old_name, orate * 100, oe, orq, (trate - orate) * 100,
		    cfg->error_rate * 100);
		return GUARD_CMP_BREACH;
	}
	tp99 = guard_p99_us(t1->latency, t0->latency);
	op99 = guard_p99_us(o1->latency, o0->latency);
	fmt_ms(tps, sizeof(tps), tp99);
	fmt_ms(ops, sizeof(ops), op99);
	if (cfg->latency_factor > 0 && op99 > 0 && tp99 > cfg->latency_factor * baseline_floor(op99)) {
		*trigger = GUARD_TRIGGER_LATENCY;
		snprintf(reason, reasonlen, "%s p99 latency %s against %s %s: more than %.1fx", target_name,
		    tps, old_name, ops, cfg->latency_factor);
		return GUARD_CMP_BREACH;
	}
	snprintf(reason, reasonlen,
	    "%s error rate %.1f%% (%" PRIu64 " of %" PRIu64 " requests), p99 %s against %s %.1f%% (%" PRIu64
	    " of %" PRIu64 "), p99 %s",
	    target_name, trate * 100, te, tr, tps, old_name, orate * 100, oe, orq, ops);
	return GUARD_CMP_PASS;
}
