#include "autoconf.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "guard.h"
#include "histogram.h"

/*
 * Synthetic samples: req requests so far, err of them errors, slow of them
 * in the 500 ms..1 s bucket and the rest in the 1..2.5 ms bucket.
 */
#define FAST_BUCKET 1
#define SLOW_BUCKET 9

enum step_op { STEP_END = 0, STEP_PRE, STEP_START, STEP_ADD };

struct step {
	enum step_op op; /* STEP_PRE: guard_add before guard_start */
	uint64_t t;
	uint64_t req, err, slow;
	unsigned healthy;
	int expect; /* -1: no check; else the enum guard_trigger expected (NONE = OK) */
	const char *reason; /* exact reason when non-NULL */
};

struct scenario {
	const char *name;
	struct guard_config cfg;
	double baseline_us;
	struct step steps[8];
};

static struct guard_sample mk(uint64_t req, uint64_t err, uint64_t slow);
static void run_scenario(const struct scenario *);

#define CFG(rate, minreq, window, factor, minh) {rate, minreq, window, factor, minh, "green"}
#define OK GUARD_TRIGGER_NONE

static const struct scenario scenarios[] = {
	{"error burst above the limit", CFG(0.05, 50, 30000, 0, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 5000, 200, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 500, 60, 0, 2, GUARD_TRIGGER_ERRORS,
		    "error rate 12.0% (60 of 500 requests) over the last 10s reached the limit of 5.0%"},
	}},
	{"error rate below the limit", CFG(0.05, 50, 30000, 0, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 500, 24, 0, 2, OK, NULL},
	}},
	{"error rate exactly at the limit", CFG(0.05, 50, 30000, 0, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 1500, 100, 5, 0, 2, GUARD_TRIGGER_ERRORS,
		    "error rate 5.0% (5 of 100 requests) over the last 1.5s reached the limit of 5.0%"},
	}},
	{"fewer than min_requests: no verdict", CFG(0.05, 50, 30000, 3, 0), 1000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 49, 49, 49, 2, OK, NULL},
		{STEP_ADD, 10250, 50, 50, 50, 2, GUARD_TRIGGER_ERRORS, NULL},
	}},
	{"traffic before guard_start not counted", CFG(0.05, 50, 30000, 0, 0), 0, {
		{STEP_PRE, 0, 0, 0, 0, 2, -1, NULL},
		{STEP_PRE, 1000, 1000, 900, 0, 2, -1, NULL},
		{STEP_START, 2000, 1000, 900, 0, 2, OK, NULL},
		{STEP_ADD, 12000, 1100, 902, 0, 2, OK, NULL},
		{STEP_ADD, 13000, 1200, 910, 0, 2, GUARD_TRIGGER_ERRORS,
		    "error rate 5.0% (10 of 200 requests) over the last 11s reached the limit of 5.0%"},
	}},
	{"latency above factor x baseline", CFG(0.05, 50, 30000, 3, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 100, 0, 100, 2, GUARD_TRIGGER_LATENCY,
		    "p99 latency 995.0ms over the last 10s exceeds 3.0x the baseline 2.5ms"},
	}},
	{"latency below factor x baseline", CFG(0.05, 50, 30000, 3, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		/* p99 = 1000 + 1500 * 0.99 = 2485 us < 6000 */
		{STEP_ADD, 10000, 1000, 0, 0, 2, OK, NULL},
		/* 1.5 % slow: the p99 lands in the slow bucket */
		{STEP_ADD, 20000, 2000, 0, 30, 2, GUARD_TRIGGER_LATENCY, NULL},
	}},
	{"latency needs 100 requests, whatever min_requests", CFG(0.05, 20, 30000, 3, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 99, 0, 99, 2, OK, NULL},
		{STEP_ADD, 10250, 100, 0, 100, 2, GUARD_TRIGGER_LATENCY, NULL},
	}},
	{"latency needs a 1s span", CFG(0.05, 20, 30000, 3, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 250, 150, 0, 150, 2, OK, NULL},
		{STEP_ADD, 750, 300, 0, 300, 2, OK, NULL},
		{STEP_ADD, 1000, 400, 0, 400, 2, GUARD_TRIGGER_LATENCY, NULL},
	}},
	{"a baseline counts as its bucket's upper bound", CFG(0.05, 50, 30000, 3, 0), 400, {
		/* 3 x 400us would be 1.2ms, below every request in the 1..2.5ms
		 * bucket; the bound (1ms) makes it 3ms, above their p99 (2.485ms). */
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 1000, 0, 0, 2, OK, NULL},
	}},
	{"latency without baseline: off", CFG(0.05, 50, 30000, 3, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 100, 0, 100, 2, OK, NULL},
	}},
	{"latency factor 0: off", CFG(0.05, 50, 30000, 0, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 100, 0, 100, 2, OK, NULL},
	}},
	{"latency with too few requests", CFG(0.05, 50, 30000, 3, 0), 2000, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 49, 0, 49, 2, OK, NULL},
	}},
	{"health below min_healthy", CFG(0.05, 50, 30000, 0, 1), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 250, 0, 0, 0, 1, OK, NULL},
		{STEP_ADD, 500, 0, 0, 0, 0, GUARD_TRIGGER_HEALTH, "green has 0 servers up, needs 1"},
	}},
	{"health off with min_healthy 0", CFG(0.05, 50, 30000, 0, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 0, OK, NULL},
		{STEP_ADD, 250, 0, 0, 0, 0, OK, NULL},
	}},
	{"health needs no traffic", CFG(0.05, 50, 30000, 0, 2), 0, {
		{STEP_START, 0, 0, 0, 0, 1, GUARD_TRIGGER_HEALTH, "green has 1 servers up, needs 2"},
	}},
	{"precedence: health before errors before latency", CFG(0.05, 50, 30000, 3, 1), 2000, {
		{STEP_START, 0, 0, 0, 0, 1, OK, NULL},
		{STEP_ADD, 10000, 100, 100, 100, 0, GUARD_TRIGGER_HEALTH, NULL},
		{STEP_ADD, 10250, 100, 100, 100, 1, GUARD_TRIGGER_ERRORS, NULL},
	}},
	{"error rate 0: off", CFG(0, 50, 30000, 0, 0), 0, {
		{STEP_START, 0, 0, 0, 0, 2, OK, NULL},
		{STEP_ADD, 10000, 100, 100, 0, 2, OK, NULL},
	}},
};

static struct guard_sample
mk(uint64_t req, uint64_t err, uint64_t slow)
{
	struct guard_sample s;

	memset(&s, 0, sizeof(s));
	s.requests = req;
	s.errors = err;
	s.latency[FAST_BUCKET] = req - slow;
	s.latency[SLOW_BUCKET] = slow;
	return s;
}

static void
run_scenario(const struct scenario *sc)
{
	struct guard *g = malloc(sizeof(*g));
	const struct step *st;
	struct guard_sample s;
	enum guard_trigger trig;
	enum guard_verdict v;
	char reason[256];
	size_t i;

	ck_assert_ptr_nonnull(g);
	guard_init(g, &sc->cfg);
	for (i = 0; i < sizeof(sc->steps) / sizeof(sc->steps[0]) && sc->steps[i].op != STEP_END; i++) {
		st = &sc->steps[i];
		s = mk(st->req, st->err, st->slow);
		if (st->op == STEP_START)
			guard_start(g, st->t, &s, sc->baseline_us);
		else
			guard_add(g, st->t, &s);
		if (st->expect < 0)
			continue;
		memset(reason, 'x', sizeof(reason));
		v = guard_check(g, st->healthy, &trig, reason, sizeof(reason));
		ck_assert_msg((int)trig == st->expect, "%s, step %zu: trigger %s, want %s (%s)", sc->name, i,
		    guard_trigger_name(trig), guard_trigger_name((enum guard_trigger)st->expect), reason);
		ck_assert_msg(v == (st->expect == OK ? GUARD_OK : GUARD_ROLLBACK), "%s, step %zu: verdict %d",
		    sc->name, i, (int)v);
		if (st->expect == OK)
			ck_assert_msg(reason[0] == '\0', "%s, step %zu: reason \"%s\" without a verdict", sc->name,
			    i, reason);
		else
			ck_assert_msg(reason[0] != '\0' && strchr(reason, '\n') == NULL,
			    "%s, step %zu: reason must be one line", sc->name, i);
		if (st->reason != NULL)
			ck_assert_msg(strcmp(reason, st->reason) == 0, "%s, step %zu: reason\n  \"%s\", want\n  \"%s\"",
			    sc->name, i, reason, st->reason);
	}
	free(g);
}

START_TEST(test_scenarios)
{
	run_scenario(&scenarios[_i]);
}
END_TEST

START_TEST(test_not_started)
{
	struct guard_config cfg = CFG(0.05, 1, 30000, 3, 5);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(100, 100, 100);
	enum guard_trigger trig = GUARD_TRIGGER_ERRORS;
	char reason[64] = "junk";

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_add(g, 0, &s);
	s = mk(1000, 1000, 1000);
	guard_add(g, 1000, &s);
	ck_assert_int_eq(guard_check(g, 0, &trig, reason, sizeof(reason)), GUARD_OK);
	ck_assert_int_eq(trig, GUARD_TRIGGER_NONE);
	ck_assert_str_eq(reason, "");
	ck_assert_uint_eq(guard_requests_seen(g), 0);
	/* a NULL trigger and reason are allowed */
	ck_assert_int_eq(guard_check(g, 0, NULL, NULL, 0), GUARD_OK);
	free(g);
}
END_TEST

/* Errors in the first seconds leave the window; new ones enter it. */
START_TEST(test_window_slides)
{
	struct guard_config cfg = CFG(0.05, 50, 30000, 0, 0);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(0, 0, 0);
	enum guard_trigger trig;
	uint64_t t, req = 0, err = 0;

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_start(g, 0, &s, 0);
	/* 40 req/s (10 per 250 ms tick); half are errors during the first 5 s */
	for (t = 250; t <= 120000; t += 250) {
		req += 10;
		if (t <= 5000)
			err += 5;
		if (t > 100000)
			err += 1; /* 10 %: back above the limit */
		s = mk(req, err, 0);
		guard_add(g, t, &s);
		/*
		 * The window holds 1200 requests from t = 30 s on, so it takes 60
		 * errors: the burst's 100 errors leave 5 per tick after t = 30 s
		 * and fall below 60 at t = 32.25 s; the 1 per tick from t = 100 s
		 * reach 60 at t = 115 s. Below 50 requests (t < 1.25 s) no verdict.
		 */
		if (t < 1250)
			ck_assert_msg(guard_check(g, 2, &trig, NULL, 0) == GUARD_OK, "t=%llu: judged too early",
			    (unsigned long long)t);
		else if (t <= 32000)
			ck_assert_msg(guard_check(g, 2, &trig, NULL, 0) == GUARD_ROLLBACK, "t=%llu: no rollback",
			    (unsigned long long)t);
		else if (t < 115000)
			ck_assert_msg(guard_check(g, 2, &trig, NULL, 0) == GUARD_OK, "t=%llu: stale errors counted",
			    (unsigned long long)t);
		else
			ck_assert_msg(guard_check(g, 2, &trig, NULL, 0) == GUARD_ROLLBACK, "t=%llu: new errors missed",
			    (unsigned long long)t);
	}
	ck_assert_uint_eq(guard_requests_seen(g), 4800);
	free(g);
}
END_TEST

/*
 * A 5-minute window at 250 ms ticks needs 1200 points, more than the ring
 * holds: points are kept sparsely, the ring still covers the window, and the
 * verdicts stay right over an hour of ticks.
 */
START_TEST(test_ring_overflow_long_window)
{
	struct guard_config cfg = CFG(0.05, 50, 300000, 0, 0);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(0, 0, 0);
	uint64_t t, req = 0, err = 0, oldest, newest;
	char reason[256];
	size_t i;

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_start(g, 0, &s, 0);
	for (t = 250; t <= 3600000; t += 250) {
		req += 10;
		if (t <= 60000)
			err += 5; /* 50 % errors in the first minute: 1200 errors */
		s = mk(req, err, 0);
		guard_add(g, t, &s);
		if (t == 60000)
			ck_assert_int_eq(guard_check(g, 2, NULL, NULL, 0), GUARD_ROLLBACK);
		if (t == 300000) /* 1200 errors of 12000 requests since the start */
			ck_assert_int_eq(guard_check(g, 2, NULL, NULL, 0), GUARD_ROLLBACK);
		if (t >= 400000 && t % 5000 == 0)
			ck_assert_msg(guard_check(g, 2, NULL, reason, sizeof(reason)) == GUARD_OK, "t=%llu: %s",
			    (unsigned long long)t, reason);
	}
	ck_assert_uint_le(g->count, GUARD_MAX_SLOTS);
	ck_assert_uint_eq(g->count, GUARD_MAX_SLOTS); /* it did wrap */
	oldest = g->ring[g->head].t_ms;
	newest = g->ring[(g->head + g->count - 1) % GUARD_MAX_SLOTS].t_ms;
	ck_assert_uint_eq(newest, 3600000);
	ck_assert_msg(oldest <= newest - cfg.window_ms, "ring covers only %llu ms",
	    (unsigned long long)(newest - oldest));
	/* kept points are at least window/256 apart */
	for (i = 1; i + 1 < g->count; i++)
		ck_assert_uint_ge(g->ring[(g->head + i) % GUARD_MAX_SLOTS].t_ms -
		    g->ring[(g->head + i - 1) % GUARD_MAX_SLOTS].t_ms, cfg.window_ms / (GUARD_MAX_SLOTS / 2));

	/* errors now: judged over (nearly) the full window, not a sliver */
	for (t = 3600250; t <= 3900000; t += 250) {
		req += 10;
		err += 1;
		s = mk(req, err, 0);
		guard_add(g, t, &s);
	}
	ck_assert_int_eq(guard_check(g, 2, NULL, reason, sizeof(reason)), GUARD_ROLLBACK);
	ck_assert_msg(strstr(reason, "error rate 10.0% (") != NULL, "%s", reason);
	/* the window's base point is within one spacing of now - 300 s: 11960..12000 requests */
	{
		unsigned long long e, r;

		ck_assert_int_eq(sscanf(strchr(reason, '(') + 1, "%llu of %llu", &e, &r), 2);
		ck_assert_msg(r >= 11950 && r <= 12000, "window held %llu requests", r);
	}
	free(g);
}
END_TEST

/* A short window over many ticks wraps the ring with every point kept. */
START_TEST(test_ring_wrap_short_window)
{
	struct guard_config cfg = CFG(0.05, 50, 30000, 0, 0);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(0, 0, 0);
	uint64_t t, req = 0, err = 0;
	char reason[256];

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_start(g, 0, &s, 0);
	for (t = 250; t <= 600000; t += 250) {
		req += 10;
		if (t > 590000)
			err += 3;
		s = mk(req, err, 0);
		guard_add(g, t, &s);
	}
	ck_assert_uint_eq(g->count, GUARD_MAX_SLOTS);
	ck_assert_int_eq(guard_check(g, 2, NULL, reason, sizeof(reason)), GUARD_ROLLBACK);
	ck_assert_str_eq(reason, "error rate 10.0% (120 of 1200 requests) over the last 30s reached the limit of 5.0%");
	free(g);
}
END_TEST

START_TEST(test_requests_seen)
{
	struct guard_config cfg = CFG(0.05, 50, 30000, 0, 0);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(700, 0, 0);

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_add(g, 0, &s);
	s = mk(1000, 0, 0);
	guard_start(g, 100, &s, 0);
	ck_assert_uint_eq(guard_requests_seen(g), 0);
	s = mk(1500, 0, 0);
	guard_add(g, 200, &s);
	ck_assert_uint_eq(guard_requests_seen(g), 500);
	/* a second switch restarts the count */
	guard_start(g, 300, &s, 0);
	ck_assert_uint_eq(guard_requests_seen(g), 0);
	free(g);
}
END_TEST

struct p99_case {
	const char *name;
	uint64_t later[HISTOGRAM_BUCKETS];
	uint64_t earlier[HISTOGRAM_BUCKETS];
	double want;
};

static const struct p99_case p99_cases[] = {
	{"empty", {0}, {0}, 0},
	{"no change", {5, 5}, {5, 5}, 0},
	{"all in the first bucket", {100}, {0}, 990},
	{"difference only", {200}, {100}, 990},
	{"two buckets", {50, 0, 50}, {0}, 2500 + 2500 * 49.0 / 50},
	{"rank on a bucket's upper edge", {99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, {0}, 1000},
	{"+Inf bucket reports twice the last bound", {98, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2}, {0}, 20000000},
	{"mid bucket", {0, 0, 0, 900, 100}, {0}, 10000 + 15000 * 90.0 / 100},
	{"last finite bucket", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10}, {0}, 5000000 + 5000000 * 9.9 / 10},
	{"counter reset counts as nothing", {10, 200}, {100, 100}, 1000 + 1500 * 99.0 / 100},
};

START_TEST(test_p99)
{
	const struct p99_case *c = &p99_cases[_i];
	double got = guard_p99_us(c->later, c->earlier);

	ck_assert_msg(fabs(got - c->want) < 1e-6, "%s: p99 %.6f, want %.6f", c->name, got, c->want);
}
END_TEST

START_TEST(test_window_p99)
{
	struct guard_config cfg = CFG(0.05, 50, 10000, 0, 0);
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(0, 0, 0);

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	ck_assert(guard_window_p99(g, 0) == 0);
	guard_add(g, 0, &s);
	s = mk(100, 0, 100); /* slow, before the window */
	guard_add(g, 5000, &s);
	s = mk(200, 0, 100);
	guard_add(g, 15000, &s);
	s = mk(300, 0, 100);
	guard_add(g, 20000, &s);
	/* window [10000, 20000]: base is the point at 15000, 100 fast requests */
	ck_assert_double_eq_tol(guard_window_p99(g, 20000), 1000 + 1500 * 0.99, 1e-6);
	/* window [0, 20000]: 100 of 300 slow */
	ck_assert_double_eq_tol(guard_window_p99(g, 10000), 500000 + 500000 * (297.0 - 200) / 100, 1e-6);
	free(g);
}
END_TEST

START_TEST(test_trigger_names)
{
	ck_assert_str_eq(guard_trigger_name(GUARD_TRIGGER_HEALTH), "health");
	ck_assert_str_eq(guard_trigger_name(GUARD_TRIGGER_ERRORS), "error-rate");
	ck_assert_str_eq(guard_trigger_name(GUARD_TRIGGER_LATENCY), "latency");
	ck_assert_str_eq(guard_trigger_name(GUARD_TRIGGER_NONE), "none");
}
END_TEST

/* Without a name the health reason still reads. */
/* A ramp step: the target against the old color over the same span. */
START_TEST(test_compare)
{
	struct guard_config cfg = {.error_rate = 0.05, .min_requests = 20, .latency_factor = 3};
	struct guard_sample t0 = mk(1000, 10, 0), o0 = mk(5000, 50, 0), t1, o1;
	enum guard_trigger trig;
	char reason[512];

	/* Too little traffic on either side: hold, never pass. */
	t1 = mk(1019, 10, 0);
	o1 = mk(6000, 50, 0);
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_HOLD);
	ck_assert_str_eq(reason, "insufficient traffic: green 19 and blue 1000 requests this step, min_requests is 20");
	t1 = mk(1100, 10, 0);
	o1 = mk(5010, 50, 0);
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_HOLD);
	/* Within the limit of the old color's rate: pass, with the figures. */
	t1 = mk(1100, 16, 0); /* 6% */
	o1 = mk(6000, 100, 0); /* 5% */
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_PASS);
	ck_assert_int_eq(trig, GUARD_TRIGGER_NONE);
	ck_assert_ptr_nonnull(strstr(reason, "green error rate 6.0% (6 of 100 requests), p99 "));
	ck_assert_ptr_nonnull(strstr(reason, " against blue 5.0% (50 of 1000), p99 "));
	/* Errors the old color does not have: breach. */
	t1 = mk(1100, 21, 0); /* 11% */
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_BREACH);
	ck_assert_int_eq(trig, GUARD_TRIGGER_ERRORS);
	ck_assert_str_eq(reason, "green error rate 11.0% (11 of 100 requests) against blue 5.0% (50 of 1000): "
	                         "6.0 points above, the limit is 5.0");
	/* Slow where the old color is fast: latency breach. */
	t1 = mk(1100, 10, 50);
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_BREACH);
	ck_assert_int_eq(trig, GUARD_TRIGGER_LATENCY);
	ck_assert_ptr_nonnull(strstr(reason, "green p99 latency "));
	/* Both as slow: no breach. */
	o1 = mk(6000, 100, 500);
	ck_assert_int_eq(guard_compare(&cfg, "green", &t0, &t1, "blue", &o0, &o1, &trig, reason, sizeof(reason)),
	    GUARD_CMP_PASS);
}
END_TEST

START_TEST(test_unnamed_reason)
{
	struct guard_config cfg = {.error_rate = 0.05, .min_requests = 1, .window_ms = 1000, .min_healthy = 1};
	struct guard *g = calloc(1, sizeof(*g));
	struct guard_sample s = mk(0, 0, 0);
	char reason[16];

	ck_assert_ptr_nonnull(g);
	guard_init(g, &cfg);
	guard_start(g, 0, &s, 0);
	/* a short buffer truncates, never overflows */
	ck_assert_int_eq(guard_check(g, 0, NULL, reason, sizeof(reason)), GUARD_ROLLBACK);
	ck_assert_str_eq(reason, "the active colo");
	free(g);
}
END_TEST

static Suite *
guard_suite(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");

	tcase_add_loop_test(tc, test_scenarios, 0, sizeof(scenarios) / sizeof(scenarios[0]));
	tcase_add_test(tc, test_not_started);
	tcase_add_test(tc, test_window_slides);
	tcase_add_test(tc, test_ring_overflow_long_window);
	tcase_add_test(tc, test_ring_wrap_short_window);
	tcase_add_test(tc, test_requests_seen);
	tcase_add_loop_test(tc, test_p99, 0, sizeof(p99_cases) / sizeof(p99_cases[0]));
	tcase_add_test(tc, test_window_p99);
	tcase_add_test(tc, test_trigger_names);
	tcase_add_test(tc, test_unnamed_reason);
	tcase_add_test(tc, test_compare);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(guard_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
