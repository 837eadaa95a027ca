#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <check.h>

#include "engine.h"
#include "history.h"
#include "state.h"

/*
 * The engine's invariants, with fake effects: every effect appends one line
 * to a journal ("save green 1", "publish green", "record switch manual", ...)
 * so that a test asserts on what happened and in which order.
 */

#define JOURNAL_MAX 64

static struct fake {
	uint64_t mono;
	int64_t wall;
	bool save_fails;
	struct state saved;
	unsigned saves;
	enum color published;
	unsigned publishes;
	struct engine_servers servers[COLOR_COUNT];
	struct guard_sample sample[COLOR_COUNT];
	bool window_armed;
	uint64_t window_ms;
	uint64_t retry_ms;
	unsigned interrupts;
	struct engine *engine; /* for interrupt: a transition refuses through it */
	struct engine_request *pending;
	bool propose_fails;
	struct state proposed;
	unsigned proposals;
	char journal[JOURNAL_MAX][160];
	size_t n;
} fk;

static void
note(const char *fmt, ...)
{
	va_list ap;

	ck_assert_uint_lt(fk.n, JOURNAL_MAX);
	va_start(ap, fmt);
	vsnprintf(fk.journal[fk.n++], sizeof(fk.journal[0]), fmt, ap);
	va_end(ap);
}

/* Index of the first journal line that starts with prefix, or -1. */
static int
find(const char *prefix)
{
	size_t i;

	for (i = 0; i < fk.n; i++)
		if (strncmp(fk.journal[i], prefix, strlen(prefix)) == 0)
			return (int)i;
	return -1;
}

static unsigned
count(const char *prefix)
{
	unsigned k = 0;
	size_t i;

	for (i = 0; i < fk.n; i++)
		if (strncmp(fk.journal[i], prefix, strlen(prefix)) == 0)
			k++;
	return k;
}

static uint64_t
fx_mono(void *arg)
{
	(void)arg;
	return fk.mono;
}

static int64_t
fx_wall(void *arg)
{
	(void)arg;
	return fk.wall;
}

static int
fx_save(void *arg, const struct state *st, char *err, size_t errlen)
{
	(void)arg;
	note("save %s %llu", color_name(st->active), (unsigned long long)st->generation);
	if (fk.save_fails) {
		snprintf(err, errlen, "/state/cutover.state: No space left on device");
		return -1;
	}
	fk.saved = *st;
	fk.saves++;
	return 0;
}

static void
fx_publish(void *arg, enum color c)
{
	(void)arg;
	note("publish %s", color_name(c));
	fk.published = c;
	fk.publishes++;
}

static void
fx_publish_ramp(void *arg, enum color active, enum color target, unsigned weight_bp)
{
	(void)arg;
	note("publish_ramp %s %s %u", color_name(active), color_name(target), weight_bp);
	fk.publishes++;
}

static void
fx_record(void *arg, const struct history_entry *e)
{
	(void)arg;
	note("record %s %s %s->%s gen=%llu uid=%ld reason=%s%s%s", e->event, e->trigger,
	    e->from ? e->from : "-", e->to ? e->to : "-", (unsigned long long)e->generation, e->uid,
	    e->reason ? e->reason : "-", e->node ? " node=" : "", e->node ? e->node : "");
}

static void
fx_notify(void *arg, enum color from, enum color to)
{
	(void)arg;
	note("notify %s->%s", color_name(from), color_name(to));
}

static void
fx_hook(void *arg, enum engine_hook h, int from, int to, uint64_t gen, const char *reason)
{
	static const char *const names[] = {"post_switch", "rollback", "window_end"};

	(void)arg;
	note("hook %s %d->%d gen=%llu reason=%s", names[h], from, to, (unsigned long long)gen,
	    reason ? reason : "-");
}

static void
fx_arm_window(void *arg, bool armed, uint64_t ms)
{
	(void)arg;
	fk.window_armed = armed;
	fk.window_ms = ms;
}

static void
fx_arm_retry(void *arg, uint64_t ms)
{
	(void)arg;
	note("retry %llu", (unsigned long long)ms);
	fk.retry_ms = ms;
}

static void
fx_sample(void *arg, enum color c, struct guard_sample *s)
{
	(void)arg;
	*s = fk.sample[c];
}

static void
fx_servers(void *arg, enum color c, struct engine_servers *n)
{
	(void)arg;
	*n = fk.servers[c];
}

/* What a transition in progress does when interrupted: refuse through the engine. */
static void
fx_interrupt(void *arg, const char *why)
{
	char msg[512];

	(void)arg;
	fk.interrupts++;
	note("interrupt %s", why);
	if (fk.pending != NULL)
		engine_refuse(fk.engine, fk.pending, why, msg, sizeof(msg));
	fk.pending = NULL;
}

/* A fleet's write of a ramp's next step to etcd. */
static int
fx_propose_ramp(void *arg, const struct state *next, const char *event, const char *reason)
{
	(void)arg;
	note("propose %s step=%u gen=%llu reason=%s", event, next->ramping ? next->ramp_step : 99,
	    (unsigned long long)next->generation, reason);
	if (fk.propose_fails)
		return -1;
	fk.proposed = *next;
	fk.proposals++;
	return 0;
}

static const struct engine_effects effects = {
	.mono_ms = fx_mono,
	.wall_ms = fx_wall,
	.save_state = fx_save,
	.publish = fx_publish,
	.publish_ramp = fx_publish_ramp,
	.record = fx_record,
	.notify = fx_notify,
	.run_hook = fx_hook,
	.arm_window = fx_arm_window,
	.arm_retry = fx_arm_retry,
	.sample = fx_sample,
	.servers = fx_servers,
	.interrupt = fx_interrupt,
};

static struct engine eng;

static const struct engine_config config = {
	.min_healthy = 1,
	.safety_window_ms = 60000,
	.auto_rollback = true,
	.guard = {.error_rate = 0.5, .min_requests = 10, .window_ms = 10000, .min_healthy = 1},
};

/* A fresh engine on blue, generation 0, both colors with two servers up. */
static void
setup(void)
{
	int c;

	memset(&fk, 0, sizeof(fk));
	fk.mono = 1000000;
	fk.wall = 1700000000000;
	for (c = 0; c < COLOR_COUNT; c++)
		fk.servers[c] = (struct engine_servers){2, 2, 2};
	engine_init(&eng, &effects, NULL, &config, COLOR_BLUE);
	fk.engine = &eng;
	ck_assert_int_eq(engine_restore(&eng, 1, NULL, COLOR_BLUE), 0);
	fk.n = 0;
	fk.publishes = 0;
}

static struct engine_request
request(enum color target)
{
	struct engine_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.target = target;
	rq.who.uid = 1000;
	rq.who.pid = 42;
	return rq;
}

/* A caller's switch all the way, as a transition does it. */
static enum switch_verdict
do_switch(struct engine_request *rq, char *msg, size_t len)
{
	enum switch_verdict v = engine_prepare(&eng, rq, msg, len);

	if (v != SWITCH_GO)
		return v;
	if (rq->dry_run) {
		engine_release(&eng);
		return v;
	}
	return engine_switch(&eng, rq, msg, len);
}

START_TEST(test_commit_order)
{
	struct engine_request rq = request(COLOR_GREEN);
	char msg[512];
	int save, publish, rec, notify, hook;

	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	save = find("save green 1");
	publish = find("publish green");
	rec = find("record switch manual blue->green gen=1 uid=1000");
	notify = find("notify blue->green");
	hook = find("hook post_switch 0->1 gen=1 reason=manual");
	ck_assert_int_ge(save, 0);
	/* Saved before published; recorded, told and hooked after. */
	ck_assert_int_gt(publish, save);
	ck_assert_int_gt(rec, publish);
	ck_assert_int_gt(notify, rec);
	ck_assert_int_gt(hook, notify);
	ck_assert_uint_eq(fk.publishes, 1);
	ck_assert_uint_eq(count("record "), 1);
	ck_assert_uint_eq(count("hook "), 1);
	/* What was saved is what is served, with the window's end as wall clock. */
	ck_assert_int_eq(fk.saved.active, COLOR_GREEN);
	ck_assert(fk.saved.has_previous);
	ck_assert_int_eq(fk.saved.previous, COLOR_BLUE);
	ck_assert_uint_eq(fk.saved.generation, 1);
	ck_assert_int_eq(fk.saved.switched_at_ms, fk.wall);
	ck_assert_int_eq(fk.saved.window_end_ms, fk.wall + 60000);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	ck_assert(fk.window_armed);
	ck_assert_uint_eq(fk.window_ms, 60000);
	ck_assert(!eng.busy);
	ck_assert_uint_eq(eng.switches[ENGINE_MANUAL], 1);

	/* A caller's rollback: its own trigger, its own hook. */
	fk.n = 0;
	rq = request(COLOR_GREEN);
	rq.rollback = true;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(rq.target, COLOR_BLUE);
	ck_assert_int_gt(find("publish blue"), find("save blue 2"));
	ck_assert_uint_eq(count("record rollback manual green->blue gen=2"), 1);
	ck_assert_int_gt(find("hook rollback 1->0 gen=2 reason=manual rollback"), find("publish blue"));
	ck_assert_uint_eq(eng.switches[ENGINE_ROLLBACK], 1);
}
END_TEST

/*
 * The fleet's side: engine_plan computes the state a switch would commit
 * and changes nothing; engine_apply takes a state from etcd through the
 * same order as a local change, recording the node that made it.
 */
START_TEST(test_fleet_plan_and_apply)
{
	struct engine_request rq = request(COLOR_GREEN);
	struct engine_origin o = {"door-2", "switch", "manual", NULL, 1000, 42};
	struct state next, st;
	char msg[512];

	eng.node = "door-1";
	ck_assert_int_eq(engine_prepare(&eng, &rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(engine_plan(&eng, &rq, &next, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(eng.busy);
	ck_assert_uint_eq(fk.n, 0); /* nothing saved, published or recorded */
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_int_eq(next.active, COLOR_GREEN);
	ck_assert_uint_eq(next.generation, 1);
	ck_assert(next.has_previous && next.previous == COLOR_BLUE);
	ck_assert_int_eq(next.window_end_ms, fk.wall + 60000);
	engine_release(&eng);

	/* Applied from the watch: saved, published, recorded with the node. */
	ck_assert(engine_apply(&eng, &next, &o, false));
	ck_assert_int_gt(find("publish green"), find("save green 1"));
	ck_assert_int_gt(find("record switch manual blue->green gen=1 uid=1000 reason=- node=door-2"),
	    find("publish green"));
	ck_assert_int_gt(find("hook post_switch 0->1 gen=1"), find("notify blue->green"));
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	ck_assert_uint_eq(eng.switches[ENGINE_MANUAL], 1);

	/* The same state again (the writer's own watch, a re-read): nothing. */
	fk.n = 0;
	ck_assert(!engine_apply(&eng, &next, &o, false));
	ck_assert_uint_eq(fk.n, 0);
	/* Unless forced (a diverged node taking etcd's state back). */
	ck_assert(engine_apply(&eng, &next, &o, true));
	ck_assert_uint_eq(count("publish green"), 1);

	/* A commit elsewhere: the same switch with its window ended. */
	fk.n = 0;
	ck_assert(engine_plan_commit(&eng, &st));
	ck_assert_int_eq(st.window_end_ms, 0);
	o.event = "commit";
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE);
	ck_assert_int_eq(eng.verdict, WINDOW_COMMITTED);
	ck_assert_uint_eq(count("record commit manual -->green gen=1 uid=1000 reason=- node=door-2"), 1);
	ck_assert_uint_eq(count("publish "), 0);
	ck_assert(!engine_plan_commit(&eng, &st));

	/* Another node's automatic rollback: counted and judged as such. */
	fk.n = 0;
	engine_state(&eng, &st);
	st.active = COLOR_BLUE;
	st.previous = COLOR_GREEN;
	st.generation = 2;
	st.window_end_ms = 0;
	o.event = "rollback";
	o.trigger = "auto-rollback";
	o.reason = "error rate 0.9 > 0.5";
	o.uid = o.pid = -1;
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert_uint_eq(count("record rollback auto-rollback green->blue gen=2 uid=-1 reason=error rate 0.9 > 0.5 node=door-2"), 1);
	ck_assert_uint_eq(eng.switches[ENGINE_AUTO_ROLLBACK], 1);
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLED_BACK);
	ck_assert_int_ge(find("hook rollback 1->0 gen=2"), 0);

	/* A local change records this node. */
	fk.n = 0;
	rq = request(COLOR_GREEN);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_uint_eq(count("record switch manual blue->green gen=3 uid=1000 reason=- node=door-1"), 1);
}
END_TEST

START_TEST(test_failed_save_refuses)
{
	struct engine_request rq = request(COLOR_GREEN);
	char msg[512];

	fk.save_fails = true;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "switch to green refused: cannot write state: "
	                      "/state/cutover.state: No space left on device");
	ck_assert_int_eq(find("publish"), -1);
	ck_assert_int_eq(find("notify"), -1);
	ck_assert_int_eq(find("hook"), -1);
	ck_assert_uint_eq(count("record "), 1);
	ck_assert_int_ge(find("record refused manual blue->green gen=0 uid=1000 reason=cannot write state"), 0);
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_uint_eq(eng.sw.generation, 0);
	ck_assert(!eng.unsaved); /* nothing changed: nothing to be unsaved */
	ck_assert(!eng.busy);
	ck_assert_uint_eq(eng.refused, 1);
	ck_assert_uint_eq(eng.switches[ENGINE_MANUAL], 0);

	/* The operator's commit refuses too, and the window stays open. */
	fk.save_fails = false;
	rq = request(COLOR_GREEN);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	fk.save_fails = true;
	fk.n = 0;
	ck_assert_int_eq(engine_commit(&eng, &rq.who, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_ptr_nonnull(strstr(msg, "commit refused: cannot write state"));
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	ck_assert(fk.window_armed);
	ck_assert_int_eq(eng.verdict, WINDOW_NONE);
	ck_assert_int_eq(find("hook"), -1);
	ck_assert_uint_eq(count("record refused manual -->green"), 1);
}
END_TEST

START_TEST(test_auto_rollback_when_unsaved)
{
	struct engine_request rq = request(COLOR_GREEN);
	char msg[512];

	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	engine_tick(&eng);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	/* Green loses its servers and the disk fills: safety comes first. */
	fk.servers[COLOR_GREEN] = (struct engine_servers){0, 0, 2};
	fk.save_fails = true;
	fk.mono += 250;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_int_eq(fk.published, COLOR_BLUE);
	ck_assert_int_lt(find("save blue 2"), find("publish blue"));
	ck_assert_uint_eq(count("record rollback auto-rollback green->blue gen=2"), 1);
	ck_assert_uint_eq(count("record "), 1);
	ck_assert_int_gt(find("hook rollback 1->0"), find("publish blue"));
	ck_assert(eng.unsaved);
	ck_assert_ptr_nonnull(strstr(eng.state_error, "No space left on device"));
	ck_assert_uint_eq(fk.retry_ms, ENGINE_STATE_RETRY_MIN_MS);
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLED_BACK);
	ck_assert_str_eq(window_verdict_name(eng.verdict), "rolled-back");
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE);
	ck_assert(!fk.window_armed);
	ck_assert_uint_eq(eng.switches[ENGINE_AUTO_ROLLBACK], 1);

	/* While unsaved, an operator's change is still refused, never published. */
	fk.n = 0;
	rq = request(COLOR_GREEN);
	fk.servers[COLOR_GREEN] = (struct engine_servers){2, 2, 2};
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_int_eq(find("publish"), -1);

	/* Retried with a back-off until a save succeeds. */
	engine_retry_save(&eng);
	ck_assert(eng.unsaved);
	ck_assert_uint_eq(fk.retry_ms, 2 * ENGINE_STATE_RETRY_MIN_MS);
	fk.save_fails = false;
	engine_retry_save(&eng);
	ck_assert(!eng.unsaved);
	ck_assert_uint_eq(fk.retry_ms, 0);
	ck_assert_int_eq(fk.saved.active, COLOR_BLUE);
	ck_assert_uint_eq(fk.saved.generation, 2);
	ck_assert_int_eq(fk.saved.window_end_ms, 0);
}
END_TEST

START_TEST(test_auto_rollback_needs_previous)
{
	struct engine_request rq = request(COLOR_GREEN);
	char msg[512];

	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	engine_tick(&eng);
	fk.servers[COLOR_GREEN] = (struct engine_servers){0, 0, 2};
	fk.servers[COLOR_BLUE] = (struct engine_servers){0, 0, 2};
	fk.mono += 250;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(find("save"), -1);
	ck_assert_int_eq(find("publish"), -1);
	ck_assert_uint_eq(count("record rollback-failed auto-rollback green->blue"), 1);
	ck_assert_uint_eq(count("hook rollback"), 1);
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLBACK_FAILED);
	/* The guard acts once per window, and the window's end does not absolve it. */
	fk.mono += 250;
	engine_tick(&eng);
	ck_assert_uint_eq(count("record "), 1);
	fk.mono += 60000;
	ck_assert(engine_window_end(&eng));
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLBACK_FAILED);
	ck_assert_uint_eq(count("record window_end timer -->green"), 1);
}
END_TEST

START_TEST(test_if_gen_and_one_at_a_time)
{
	struct engine_request a = request(COLOR_GREEN), b = request(COLOR_GREEN);
	char msg[512];

	ck_assert_int_eq(engine_prepare(&eng, &a, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(eng.busy);
	ck_assert_int_eq(engine_prepare(&eng, &b, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "switch to green refused: another switch is in progress");
	ck_assert(eng.busy); /* the first one still holds it */
	ck_assert_int_eq(engine_switch(&eng, &a, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(!eng.busy);

	/* --if-gen: of two callers with the same N, exactly one wins. */
	a = request(COLOR_BLUE);
	a.has_if_gen = true;
	a.if_gen = 1;
	b = a;
	ck_assert_int_eq(do_switch(&a, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(do_switch(&b, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "switch to blue refused: generation is 2, not 1");
	ck_assert_uint_eq(eng.sw.generation, 2);
	ck_assert_uint_eq(eng.refused, 2);

	/* Interrupted by an automatic rollback: refused, then rolled back. */
	a = request(COLOR_GREEN);
	ck_assert_int_eq(engine_prepare(&eng, &a, msg, sizeof(msg)), SWITCH_GO);
	fk.pending = &a;
	fk.n = 0;
	eng.sw.state = SWITCHER_OBSERVING; /* as if blue were the release under watch */
	engine_auto_rollback(&eng, GUARD_TRIGGER_HEALTH, "blue has 0 servers up, needs 1");
	ck_assert_uint_eq(fk.interrupts, 1);
	ck_assert(!eng.busy);
	ck_assert_int_lt(find("record refused manual blue->green"), find("record rollback auto-rollback"));
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
}
END_TEST

START_TEST(test_dry_run_and_noop)
{
	struct engine_request rq = request(COLOR_GREEN);
	char msg[512];

	rq.dry_run = true;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(!eng.busy);
	ck_assert_uint_eq(fk.n, 0); /* nothing saved, published, recorded */
	rq = request(COLOR_BLUE);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_NOOP);
	ck_assert_uint_eq(fk.n, 0);
	/* An unhealthy target is refused (and recorded), unless forced. */
	fk.servers[COLOR_GREEN] = (struct engine_servers){1, 0, 2};
	rq = request(COLOR_GREEN);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_ptr_nonnull(strstr(msg, "green has 0 of 2 servers healthy, needs 1"));
	ck_assert_uint_eq(count("record refused"), 1);
	rq.force = true;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_ge(find("hook post_switch 0->1 gen=1 reason=forced"), 0);
	/* A rollback with nowhere to go names no color. */
	setup();
	rq = request(COLOR_GREEN);
	rq.rollback = true;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "rollback to previous color refused: nothing to roll back to: no switch has happened yet");
	ck_assert_uint_eq(count("record refused manual blue->- "), 1);
}
END_TEST

START_TEST(test_restore)
{
	struct state st;

	/* A state file that cannot be read: no color is picked, nothing published. */
	engine_init(&eng, &effects, NULL, &config, COLOR_GREEN);
	fk.n = 0;
	fk.publishes = 0;
	ck_assert_int_eq(engine_restore(&eng, -1, NULL, COLOR_GREEN), -1);
	ck_assert_uint_eq(fk.publishes, 0);
	ck_assert_int_eq(engine_restore(&eng, 0, NULL, COLOR_GREEN), -1);
	ck_assert_uint_eq(fk.publishes, 0);

	/* No state file: the configured initial color, generation 0. */
	ck_assert_int_eq(engine_restore(&eng, 1, NULL, COLOR_GREEN), 0);
	ck_assert_int_eq(fk.published, COLOR_GREEN);
	ck_assert_uint_eq(eng.sw.generation, 0);
	ck_assert(!eng.sw.has_previous);

	/* The state file wins over `initial`, and its window resumes. */
	memset(&st, 0, sizeof(st));
	st.active = COLOR_BLUE;
	st.has_previous = true;
	st.previous = COLOR_GREEN;
	st.generation = 7;
	st.switched_at_ms = fk.wall - 20000;
	st.window_end_ms = fk.wall + 40000;
	ck_assert_int_eq(engine_restore(&eng, 0, &st, COLOR_GREEN), 0);
	ck_assert_int_eq(fk.published, COLOR_BLUE);
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_int_eq(eng.sw.previous, COLOR_GREEN);
	ck_assert_uint_eq(eng.sw.generation, 7);
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	ck_assert(fk.window_armed);
	ck_assert_uint_eq(fk.window_ms, 40000);
	ck_assert_uint_eq(engine_window_left(&eng), 40000);
	ck_assert_int_eq(find("save"), -1); /* restoring writes nothing */

	/* A window that ended while stopped stays ended. */
	st.window_end_ms = fk.wall - 1;
	ck_assert_int_eq(engine_restore(&eng, 0, &st, COLOR_GREEN), 0);
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE);
	ck_assert(!fk.window_armed);
}
END_TEST

START_TEST(test_window_verdict)
{
	struct engine_request rq = request(COLOR_GREEN);
	struct engine_config off = config;
	char msg[512];

	/* Too little traffic: no verdict of good. */
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(eng.verdict, WINDOW_NONE);
	ck_assert_ptr_null(window_verdict_name(eng.verdict));
	fk.mono += 30000;
	ck_assert(!engine_window_end(&eng)); /* early: re-armed, not ended */
	ck_assert(fk.window_armed);
	ck_assert_uint_eq(fk.window_ms, 30000);
	fk.mono += 30000;
	fk.n = 0;
	ck_assert(engine_window_end(&eng));
	ck_assert_int_eq(eng.verdict, WINDOW_INSUFFICIENT_TRAFFIC);
	ck_assert_str_eq(window_verdict_name(eng.verdict), "insufficient-traffic");
	ck_assert_uint_eq(count("record window_end timer -->green"), 1);
	ck_assert_int_gt(find("hook window_end 0->1"), find("record window_end"));

	/* Enough good traffic: passed. */
	rq = request(COLOR_BLUE);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	fk.sample[COLOR_BLUE].requests = 50;
	fk.mono += 1000;
	engine_tick(&eng);
	fk.mono += 60000;
	ck_assert(engine_window_end(&eng));
	ck_assert_int_eq(eng.verdict, WINDOW_PASSED);
	ck_assert_str_eq(eng.verdict_reason, "50 requests within the limits");

	/* auto_rollback off (a reload): unguarded, and the guard never acts. */
	off.auto_rollback = false;
	engine_reconfigure(&eng, &off);
	ck_assert_int_eq(fk.published, COLOR_BLUE);
	rq = request(COLOR_GREEN);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	fk.servers[COLOR_GREEN] = (struct engine_servers){0, 0, 2};
	fk.mono += 1000;
	engine_tick(&eng);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	fk.mono += 60000;
	ck_assert(engine_window_end(&eng));
	ck_assert_int_eq(eng.verdict, WINDOW_UNGUARDED);

	/* The operator's commit ends a window with its own verdict. */
	fk.servers[COLOR_BLUE] = (struct engine_servers){2, 2, 2};
	rq = request(COLOR_BLUE);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	fk.n = 0;
	ck_assert_int_eq(engine_commit(&eng, &rq.who, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(eng.verdict, WINDOW_COMMITTED);
	ck_assert_str_eq(eng.verdict_reason, "committed by uid 1000");
	ck_assert_int_lt(find("save blue"), find("record commit manual -->blue"));
	ck_assert_int_eq(fk.saved.window_end_ms, 0);
	ck_assert(!fk.window_armed);
	ck_assert_int_ge(find("hook window_end 1->0 gen=4 reason=commit"), 0);
	ck_assert_int_eq(engine_commit(&eng, &rq.who, msg, sizeof(msg)), SWITCH_NOOP);
}
END_TEST

/* ---- ramps ---------------------------------------------------------------- */

/* A caller's ramp to green with these steps, each step_ms. */
static enum switch_verdict
do_ramp(const unsigned *steps, unsigned n, uint64_t step_ms, char *msg, size_t len)
{
	struct engine_request rq = request(COLOR_GREEN);

	memcpy(rq.ramp_steps, steps, n * sizeof(*steps));
	rq.ramp_nsteps = n;
	rq.ramp_step_ms = step_ms;
	return do_switch(&rq, msg, len);
}

/* Traffic on both colors: requests (and errors) added to the counters. */
static void
traffic(enum color c, uint64_t requests, uint64_t errors)
{
	fk.sample[c].requests += requests;
	fk.sample[c].errors += errors;
}

START_TEST(test_ramp_steps_on_passes)
{
	static const unsigned steps[] = {1, 10, 50};
	char msg[512];
	int save, publish, rec;

	ck_assert_int_eq(do_ramp(steps, 3, 1000, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_str_eq(msg, "ramp started: 1% (steps 1,10,50, each 1s)");
	save = find("save blue 0");
	publish = find("publish_ramp blue green 100");
	rec = find("record ramp manual blue->green gen=0 uid=1000");
	/* Saved (with the ramp) before published, recorded after. */
	ck_assert_int_ge(save, 0);
	ck_assert_int_gt(publish, save);
	ck_assert_int_gt(rec, publish);
	ck_assert(fk.saved.ramping);
	ck_assert_int_eq(fk.saved.ramp_target, COLOR_GREEN);
	ck_assert_uint_eq(fk.saved.ramp_nsteps, 3);
	ck_assert_uint_eq(fk.saved.ramp_step, 0);
	ck_assert_uint_eq(fk.saved.ramp_step_ms, 1000);
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_uint_eq(eng.sw.generation, 0);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 100);
	ck_assert_uint_eq(engine_ramp_step_left(&eng), 1000);
	ck_assert(!eng.busy);
	ck_assert_int_eq(find("hook"), -1);

	/* Before the step's end nothing moves, whatever the traffic. */
	traffic(COLOR_BLUE, 500, 0);
	traffic(COLOR_GREEN, 20, 0);
	fk.mono += 500;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert_uint_eq(fk.n, 0);
	ck_assert_ptr_nonnull(strstr(eng.ramp.note, "step 1 of 3: green error rate 0.0% (0 of 20 requests)"));

	/* At its end a pass moves to the next step: saved, then published. */
	fk.mono += 500;
	engine_tick(&eng);
	ck_assert_int_gt(find("publish_ramp blue green 1000"), find("save blue 0"));
	ck_assert_uint_eq(fk.saved.ramp_step, 1);
	ck_assert_int_ge(find("record ramp timer blue->green gen=0 uid=-1 reason=ramp step 2 of 3: 10% (step 1% "
	                      "passed: green error rate 0.0%"), 0);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 1000);

	/* The counters start again at each step: the step before does not count. */
	fk.mono += 1000;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert(eng.ramp.holding);
	ck_assert_int_eq(find("publish"), -1);
	traffic(COLOR_BLUE, 100, 0);
	traffic(COLOR_GREEN, 10, 0);
	engine_tick(&eng);
	ck_assert(!eng.ramp.holding || engine_ramp_weight_bp(&eng) == 5000);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 5000);

	/* After the last step: an ordinary switch, with its window. */
	traffic(COLOR_BLUE, 100, 0);
	traffic(COLOR_GREEN, 100, 0);
	fk.mono += 1000;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert_int_gt(find("publish green"), find("save green 1"));
	ck_assert_int_ge(find("record switch manual blue->green gen=1 uid=-1 reason=ramp completed (steps "
	                      "1,10,50): last step 50% passed"), 0);
	ck_assert_int_gt(find("hook post_switch 0->1 gen=1 reason=ramp completed"), find("publish green"));
	ck_assert(!eng.ramp.on);
	ck_assert(!fk.saved.ramping);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 0);
}
END_TEST

START_TEST(test_ramp_holds_on_little_traffic)
{
	static const unsigned steps[] = {1, 50};
	char msg[512];

	ck_assert_int_eq(do_ramp(steps, 2, 1000, msg, sizeof(msg)), SWITCH_GO);
	traffic(COLOR_BLUE, 1000, 0);
	traffic(COLOR_GREEN, 9, 0); /* min_requests is 10 */
	fk.mono += 5000;
	fk.n = 0;
	engine_tick(&eng);
	engine_tick(&eng);
	ck_assert(eng.ramp.holding);
	ck_assert_str_eq(eng.ramp.note, "holding: insufficient traffic: green 9 and blue 1000 requests this step, "
	                                "min_requests is 10");
	ck_assert_int_eq(find("publish"), -1);
	ck_assert_int_eq(find("save"), -1);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 100);
	ck_assert_uint_eq(engine_ramp_step_left(&eng), 0);
	/* Enough traffic at last: it moves on. */
	traffic(COLOR_GREEN, 1, 0);
	engine_tick(&eng);
	ck_assert(!eng.ramp.holding);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 5000);
}
END_TEST

/*
 * A fleet's ramp: planned as one state (driven by this node), installed
 * from the watch with one store, moved on only by its driver through
 * etcd (a failed write is tried again), followed elsewhere without
 * advancing, ended at 0 % or committed at 100 % from etcd.
 */
START_TEST(test_fleet_ramp)
{
	static struct engine_effects fleet_effects; /* effects and the fleet's write of ramp steps */
	struct engine_request rq = request(COLOR_GREEN);
	struct engine_origin o = {"door-1", "ramp", "manual", "ramp started", 1000, 42};
	struct engine_config cfg = config;
	struct state next, st;
	char msg[512];

	cfg.auto_rollback = false; /* steps on time alone */
	engine_reconfigure(&eng, &cfg);
	fleet_effects = effects;
	fleet_effects.propose_ramp = fx_propose_ramp;
	eng.fx = &fleet_effects;
	eng.node = "door-1";
	rq.ramp_steps[0] = 10;
	rq.ramp_steps[1] = 50;
	rq.ramp_nsteps = 2;
	rq.ramp_step_ms = 5000;
	fk.n = 0;
	ck_assert_int_eq(engine_prepare(&eng, &rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(engine_plan(&eng, &rq, &next, msg, sizeof(msg)), SWITCH_GO);
	engine_release(&eng);
	ck_assert_uint_eq(fk.n, 0);
	ck_assert(!eng.ramp.on);
	ck_assert(next.ramping && next.ramp_target == COLOR_GREEN && next.ramp_step == 0);
	ck_assert_int_eq(next.active, COLOR_BLUE);
	ck_assert_uint_eq(next.generation, 0);
	ck_assert_str_eq(next.ramp_node, "door-1");

	/* From the watch: saved with the ramp, one store, recorded. */
	ck_assert(engine_apply(&eng, &next, &o, false));
	ck_assert(eng.ramp.on && engine_ramp_drives(&eng));
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 1000);
	ck_assert_uint_eq(count("publish_ramp blue green 1000"), 1);
	ck_assert_int_gt(find("publish_ramp"), find("save blue 0"));
	ck_assert(fk.saved.ramping && strcmp(fk.saved.ramp_node, "door-1") == 0);
	ck_assert_uint_eq(count("record ramp manual blue->green gen=0 uid=1000 reason=ramp started node=door-1"), 1);
	ck_assert(!engine_apply(&eng, &next, &o, false)); /* nothing new */

	/* The step's time is up: the driver writes the next step, once. */
	fk.n = 0;
	fk.mono += 5000;
	fk.propose_fails = true;
	engine_tick(&eng);
	ck_assert_uint_eq(count("propose ramp step=1 gen=0"), 1);
	ck_assert(eng.ramp.holding);
	fk.propose_fails = false;
	engine_tick(&eng);
	engine_tick(&eng);
	ck_assert_uint_eq(count("propose ramp step=1 gen=0"), 2); /* written once, not again */
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 1000);  /* not before etcd has it */
	ck_assert_uint_eq(count("publish"), 0);
	engine_ramp_written(&eng, false);
	engine_tick(&eng);
	ck_assert_uint_eq(count("propose ramp step=1 gen=0"), 3); /* a failed write: again */
	st = fk.proposed;
	ck_assert_str_eq(st.ramp_node, "door-1");
	o.trigger = "timer";
	o.reason = "ramp step 2 of 2";
	o.uid = o.pid = -1;
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert_uint_eq(count("publish_ramp blue green 5000"), 1);
	ck_assert_uint_eq(eng.ramp.step, 1);
	ck_assert(!eng.ramp.proposing);
	/* After the last step: the switch to the target is written. */
	fk.mono += 5000;
	engine_tick(&eng);
	ck_assert_uint_eq(count("propose switch step=99 gen=1"), 1);
	ck_assert(fk.proposed.active == COLOR_GREEN && fk.proposed.window_end_ms > 0 && !fk.proposed.ramping);
	ck_assert(eng.ramp.on);

	/* Another node's ramp is followed: its steps never move here. */
	fk.n = 0;
	snprintf(st.ramp_node, sizeof(st.ramp_node), "door-2");
	st.ramp_step = 0;
	o.node = "door-2";
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert(!engine_ramp_drives(&eng));
	ck_assert_uint_eq(count("publish_ramp blue green 1000"), 1);
	fk.mono += 60000;
	engine_tick(&eng);
	ck_assert_uint_eq(count("propose"), 0);
	ck_assert(eng.ramp.waiting && eng.ramp.on);
	ck_assert_ptr_nonnull(strstr(eng.ramp.note, "waiting for door-2"));
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 1000);
	/* A restart takes the ramp, its driver too. */
	ck_assert_int_eq(engine_restore(&eng, 0, &st, COLOR_BLUE), 0);
	ck_assert_str_eq(eng.ramp.node, "door-2");
	ck_assert_uint_eq(eng.ramp.step, 0);

	/* Its end at 0 % from etcd (a guard on some node). */
	fk.n = 0;
	ck_assert(engine_plan_ramp_rollback(&eng, &next));
	ck_assert(!next.ramping);
	o.event = "rollback";
	o.trigger = "auto-rollback";
	o.reason = "ramp at 10%: error rate";
	ck_assert(engine_apply(&eng, &next, &o, false));
	ck_assert(!eng.ramp.on);
	ck_assert_uint_eq(count("publish blue"), 1);
	ck_assert_uint_eq(count("record rollback auto-rollback green->blue gen=0 uid=-1 reason=ramp at 10%: error rate node=door-2"), 1);
	ck_assert_int_ge(find("hook rollback 1->0"), 0);
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLED_BACK);
	ck_assert(!engine_apply(&eng, &next, &o, false));

	/* Committed from etcd at 100 %: the target, stable, no window. */
	o.event = "ramp";
	o.trigger = "manual";
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert(engine_plan_commit(&eng, &next));
	ck_assert(next.active == COLOR_GREEN && next.generation == 1 && next.window_end_ms == 0 && !next.ramping);
	fk.n = 0;
	o.event = "commit";
	o.reason = "ramp committed";
	ck_assert(engine_apply(&eng, &next, &o, false));
	ck_assert(!eng.ramp.on);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE);
	ck_assert_int_eq(eng.verdict, WINDOW_COMMITTED);
	ck_assert_uint_eq(count("publish green"), 1);
	ck_assert_uint_eq(count("record commit manual blue->green gen=1"), 1);
	ck_assert_int_gt(find("hook window_end 0->1"), find("hook post_switch 0->1"));

	/* After a resync that skipped a revision: a window's end and a new
	 * ramp in one state, both taken. */
	o.event = "switch";
	st = next;
	st.active = COLOR_BLUE;
	st.previous = COLOR_GREEN;
	st.generation = 2;
	st.window_end_ms = fk.wall + 60000;
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	fk.n = 0;
	st.window_end_ms = 0;
	st.ramping = true;
	st.ramp_target = COLOR_GREEN;
	st.ramp_steps[0] = 20;
	st.ramp_nsteps = 1;
	st.ramp_step = 0;
	st.ramp_step_ms = 1000;
	snprintf(st.ramp_node, sizeof(st.ramp_node), "door-3");
	o.event = "ramp";
	o.node = "door-3";
	ck_assert(engine_apply(&eng, &st, &o, false));
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE);
	ck_assert(eng.ramp.on && eng.ramp.target == COLOR_GREEN);
	ck_assert_uint_eq(count("publish_ramp blue green 2000"), 1);
	ck_assert_int_gt(find("record ramp manual blue->green gen=2"), find("record commit"));
	ck_assert(fk.saved.ramping && fk.saved.window_end_ms == 0);
}
END_TEST

START_TEST(test_ramp_unguarded_advances_on_time)
{
	static const unsigned steps[] = {10};
	struct engine_config cfg = config;
	char msg[512];

	cfg.auto_rollback = false;
	engine_reconfigure(&eng, &cfg);
	ck_assert_int_eq(do_ramp(steps, 1, 1000, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(eng.ramp.unguarded);
	traffic(COLOR_GREEN, 5, 5); /* would be a breach if guarded */
	fk.mono += 999;
	engine_tick(&eng);
	ck_assert(eng.ramp.on);
	ck_assert_ptr_nonnull(strstr(eng.ramp.note, "steps advance on time alone"));
	fk.mono += 1;
	engine_tick(&eng);
	ck_assert(!eng.ramp.on);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
}
END_TEST

START_TEST(test_ramp_breach_rolls_back)
{
	static const unsigned steps[] = {10, 50};
	char msg[512];
	int save, publish, rec, hook;

	ck_assert_int_eq(do_ramp(steps, 2, 60000, msg, sizeof(msg)), SWITCH_GO);
	traffic(COLOR_BLUE, 90, 0);
	traffic(COLOR_GREEN, 10, 10);
	fk.mono += 250;
	fk.n = 0;
	/* Judged at once, not at the step's end. */
	engine_tick(&eng);
	save = find("save blue 0");
	publish = find("publish blue");
	rec = find("record rollback auto-rollback green->blue gen=0 uid=-1 reason=ramp at 10% (error-rate): green "
	           "error rate 100.0% (10 of 10 requests) against blue 0.0% (0 of 90)");
	hook = find("hook rollback 1->0 gen=0 reason=ramp at 10%");
	ck_assert_int_ge(save, 0);
	ck_assert_int_gt(publish, save);
	ck_assert_int_gt(rec, publish);
	ck_assert_int_gt(hook, rec);
	ck_assert(!fk.saved.ramping);
	ck_assert(!eng.ramp.on);
	ck_assert_int_eq(eng.sw.active, COLOR_BLUE);
	ck_assert_uint_eq(eng.sw.generation, 0);
	ck_assert_int_eq(eng.verdict, WINDOW_ROLLED_BACK);
	ck_assert_str_eq(eng.verdict_reason, "ramp at 10% (error-rate): green error rate 100.0% (10 of 10 requests) "
	                                     "against blue 0.0% (0 of 90): 100.0 points above, the limit is 50.0");
	ck_assert_uint_eq(eng.switches[ENGINE_AUTO_ROLLBACK], 1);
	ck_assert_uint_eq(engine_ramp_weight_bp(&eng), 0);

	/* The old color failing as much is not the release's fault. */
	ck_assert_int_eq(do_ramp(steps, 2, 60000, msg, sizeof(msg)), SWITCH_GO);
	traffic(COLOR_BLUE, 90, 45);
	traffic(COLOR_GREEN, 10, 5);
	fk.mono += 250;
	engine_tick(&eng);
	ck_assert(eng.ramp.on);
}
END_TEST

START_TEST(test_ramp_breach_unsaved_goes_ahead)
{
	static const unsigned steps[] = {10};
	char msg[512];

	ck_assert_int_eq(do_ramp(steps, 1, 60000, msg, sizeof(msg)), SWITCH_GO);
	fk.servers[COLOR_GREEN].up = 0; /* health: below min_healthy */
	fk.save_fails = true;
	fk.n = 0;
	engine_tick(&eng);
	ck_assert_int_ge(find("publish blue"), 0);
	ck_assert_int_ge(find("record rollback auto-rollback green->blue gen=0 uid=-1 reason=ramp at 10%: green has 0 "
	                      "servers up, needs 1; state file not saved"), 0);
	ck_assert(!eng.ramp.on);
	ck_assert(eng.unsaved);
	ck_assert_uint_eq(fk.retry_ms, ENGINE_STATE_RETRY_MIN_MS);
	/* The retry saves the state without the ramp. */
	fk.save_fails = false;
	engine_retry_save(&eng);
	ck_assert(!eng.unsaved);
	ck_assert(!fk.saved.ramping);
}
END_TEST

START_TEST(test_ramp_commit_and_rollback)
{
	static const unsigned steps[] = {10, 50};
	struct engine_caller who = {1000, 42};
	char msg[512];

	ck_assert_int_eq(do_ramp(steps, 2, 60000, msg, sizeof(msg)), SWITCH_GO);
	fk.n = 0;
	ck_assert_int_eq(engine_commit(&eng, &who, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_str_eq(msg, "ramp committed: green takes every request");
	ck_assert_int_gt(find("publish green"), find("save green 1"));
	ck_assert_int_ge(find("record commit manual -->green gen=1 uid=1000 reason=ramp committed at 10% by uid 1000"), 0);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(eng.sw.state, SWITCHER_STABLE); /* no window */
	ck_assert_int_eq(fk.saved.window_end_ms, 0);
	ck_assert(!fk.saved.ramping);
	ck_assert_int_eq(eng.verdict, WINDOW_COMMITTED);
	ck_assert(!eng.ramp.on);

	/* Back to blue by a ramp; a rollback ends it at 0 %. */
	{
		struct engine_request rq = request(COLOR_BLUE);

		rq.ramp_steps[0] = 25;
		rq.ramp_nsteps = 1;
		rq.ramp_step_ms = 60000;
		ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	}
	ck_assert_int_ge(find("publish_ramp green blue 2500"), 0);
	/* Not while the state cannot be saved: the ramp goes on. */
	fk.save_fails = true;
	ck_assert_int_eq(engine_ramp_rollback(&eng, &who, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_ptr_nonnull(strstr(msg, "rollback refused: cannot write state"));
	ck_assert(eng.ramp.on);
	fk.save_fails = false;
	fk.n = 0;
	ck_assert_int_eq(engine_ramp_rollback(&eng, &who, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_gt(find("publish green"), find("save green 1"));
	ck_assert_int_ge(find("record rollback manual blue->green gen=1 uid=1000 reason=ramp to blue rolled back at "
	                      "25% by uid 1000"), 0);
	ck_assert_int_ge(find("hook rollback 0->1"), 0);
	ck_assert(!eng.ramp.on);
	ck_assert_int_eq(eng.sw.active, COLOR_GREEN);
	ck_assert_int_eq(engine_ramp_rollback(&eng, &who, msg, sizeof(msg)), SWITCH_NOOP);
}
END_TEST

START_TEST(test_ramp_refusals)
{
	static const unsigned steps[] = {10};
	struct engine_request rq;
	char msg[512];

	ck_assert_int_eq(do_ramp(steps, 1, 60000, msg, sizeof(msg)), SWITCH_GO);
	ck_assert_int_eq(do_ramp(steps, 1, 60000, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "switch to green refused: a ramp to green is in progress (commit or roll it back first)");
	/* A plain switch to the target ends the ramp at 100 %, with a window. */
	rq = request(COLOR_GREEN);
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_GO);
	ck_assert(!eng.ramp.on);
	ck_assert(!fk.saved.ramping);
	ck_assert_int_eq(eng.sw.state, SWITCHER_OBSERVING);
	rq = request(COLOR_BLUE);
	rq.ramp_steps[0] = 10;
	rq.ramp_nsteps = 1;
	rq.ramp_step_ms = 1000;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_str_eq(msg, "switch to blue refused: a safety window is open (commit it or let it end first)");
	/* A failed save refuses the ramp: nothing published. */
	ck_assert_int_eq(engine_commit(&eng, &rq.who, msg, sizeof(msg)), SWITCH_GO);
	fk.save_fails = true;
	fk.n = 0;
	ck_assert_int_eq(do_switch(&rq, msg, sizeof(msg)), SWITCH_REFUSED);
	ck_assert_int_eq(find("publish"), -1);
	ck_assert(!eng.ramp.on);
	ck_assert(!eng.busy);
}
END_TEST

START_TEST(test_ramp_restore)
{
	struct state st;

	memset(&st, 0, sizeof(st));
	st.active = COLOR_BLUE;
	st.generation = 4;
	st.ramping = true;
	st.ramp_target = COLOR_GREEN;
	st.ramp_steps[0] = 1;
	st.ramp_steps[1] = 10;
	st.ramp_steps[2] = 50;
	st.ramp_nsteps = 3;
	st.ramp_step = 1;
	st.ramp_step_ms = 30000;
	engine_init(&eng, &effects, NULL, &config, COLOR_BLUE);
	fk.n = 0;
	ck_assert_int_eq(engine_restore(&eng, 0, &st, COLOR_BLUE), 0);
	/* Resumed at the step it was on, for a whole step. */
	ck_assert_int_ge(find("publish_ramp blue green 1000"), 0);
	ck_assert_int_eq(find("publish blue"), -1);
	ck_assert(eng.ramp.on);
	ck_assert_uint_eq(eng.ramp.step, 1);
	ck_assert_uint_eq(engine_ramp_step_left(&eng), 30000);
	/* A reload publishes the ramp's route again. */
	fk.n = 0;
	engine_reconfigure(&eng, &config);
	ck_assert_int_ge(find("publish_ramp blue green 1000"), 0);
}
END_TEST

static Suite *
engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_commit_order);
	tcase_add_test(tc, test_failed_save_refuses);
	tcase_add_test(tc, test_auto_rollback_when_unsaved);
	tcase_add_test(tc, test_auto_rollback_needs_previous);
	tcase_add_test(tc, test_if_gen_and_one_at_a_time);
	tcase_add_test(tc, test_dry_run_and_noop);
	tcase_add_test(tc, test_restore);
	tcase_add_test(tc, test_window_verdict);
	tcase_add_test(tc, test_fleet_plan_and_apply);
	tcase_add_test(tc, test_ramp_steps_on_passes);
	tcase_add_test(tc, test_ramp_holds_on_little_traffic);
	tcase_add_test(tc, test_ramp_unguarded_advances_on_time);
	tcase_add_test(tc, test_ramp_breach_rolls_back);
	tcase_add_test(tc, test_ramp_breach_unsaved_goes_ahead);
	tcase_add_test(tc, test_ramp_commit_and_rollback);
	tcase_add_test(tc, test_ramp_refusals);
	tcase_add_test(tc, test_ramp_restore);
	tcase_add_test(tc, test_fleet_ramp);
	suite_add_tcase(s, tc);
	return s;
}


int
main(void)
{
	SRunner *sr = srunner_create(engine_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
