#include "autoconf.h"

#include <string.h>

#include <check.h>

#include "switcher.h"

static struct switch_request
req(enum color target, unsigned healthy, unsigned total)
{
	struct switch_request rq;

	memset(&rq, 0, sizeof(rq));
	rq.target = target;
	rq.target_healthy = healthy;
	rq.target_total = total;
	return rq;
}

START_TEST(test_switch_and_window)
{
	struct switcher sw;
	struct switch_request rq = req(COLOR_GREEN, 2, 2);
	char why[256];

	switcher_init(&sw, COLOR_BLUE, 0, 1, 300000);
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_GO);
	switcher_commit(&sw, COLOR_GREEN, 1000);
	ck_assert_int_eq(sw.active, COLOR_GREEN);
	ck_assert(sw.has_previous);
	ck_assert_int_eq(sw.previous, COLOR_BLUE);
	ck_assert_uint_eq(sw.generation, 1);
	ck_assert_int_eq(sw.state, SWITCHER_OBSERVING);
	ck_assert_uint_eq(switcher_window_left(&sw, 1000), 300000);
	ck_assert_uint_eq(switcher_window_left(&sw, 101000), 200000);
	ck_assert(!switcher_tick(&sw, 300999));
	ck_assert(switcher_tick(&sw, 301000));
	ck_assert_int_eq(sw.state, SWITCHER_STABLE);
	ck_assert_uint_eq(switcher_window_left(&sw, 301000), 0);
	ck_assert(!switcher_tick(&sw, 999999));
}
END_TEST

START_TEST(test_refuses_unhealthy_target)
{
	struct switcher sw;
	struct switch_request rq = req(COLOR_GREEN, 0, 2);
	char why[256] = "";

	switcher_init(&sw, COLOR_BLUE, 4, 1, 0);
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_REFUSED);
	ck_assert_str_eq(why, "green has 0 of 2 servers healthy, needs 1 (use --force to override)");
	rq.force = true;
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_GO);
	/* min_healthy 2 with one healthy server. */
	switcher_init(&sw, COLOR_BLUE, 4, 2, 0);
	rq = req(COLOR_GREEN, 1, 2);
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_REFUSED);
}
END_TEST

START_TEST(test_noop_and_if_gen)
{
	struct switcher sw;
	struct switch_request a = req(COLOR_GREEN, 2, 2), b;
	char why[256] = "";

	switcher_init(&sw, COLOR_BLUE, 7, 1, 0);
	a.has_if_gen = true;
	a.if_gen = 7;
	b = a;
	/* Two callers with the same generation: exactly one wins. */
	ck_assert_int_eq(switcher_decide(&sw, &a, why, sizeof(why)), SWITCH_GO);
	switcher_commit(&sw, a.target, 0);
	ck_assert_int_eq(switcher_decide(&sw, &b, why, sizeof(why)), SWITCH_REFUSED);
	ck_assert_str_eq(why, "generation is 8, not 7");
	/* Switching to the active color is a successful no-op. */
	b = req(COLOR_GREEN, 0, 2);
	ck_assert_int_eq(switcher_decide(&sw, &b, why, sizeof(why)), SWITCH_NOOP);
	ck_assert_uint_eq(sw.generation, 8);
	/* No safety window configured: straight to stable. */
	ck_assert_int_eq(sw.state, SWITCHER_STABLE);
}
END_TEST

START_TEST(test_rollback)
{
	struct switcher sw;
	struct switch_request rq = req(COLOR_BLUE, 1, 1);
	char why[256] = "";

	switcher_init(&sw, COLOR_BLUE, 0, 1, 1000);
	rq.rollback = true;
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_REFUSED);
	ck_assert_str_eq(why, "nothing to roll back to: no switch has happened yet");
	switcher_commit(&sw, COLOR_GREEN, 0);
	rq = req(COLOR_GREEN, 1, 1); /* the daemon fills counts for the previous color */
	rq.rollback = true;
	ck_assert_int_eq(switcher_decide(&sw, &rq, why, sizeof(why)), SWITCH_GO);
	ck_assert_int_eq(rq.target, COLOR_BLUE);
	switcher_commit(&sw, rq.target, 10);
	ck_assert_int_eq(sw.active, COLOR_BLUE);
	ck_assert_int_eq(sw.previous, COLOR_GREEN);
	ck_assert_uint_eq(sw.generation, 2);
	ck_assert(switcher_end_window(&sw));
	ck_assert(!switcher_end_window(&sw));
}
END_TEST

static Suite *
switcher_suite(void)
{
	Suite *s = suite_create("switcher");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_switch_and_window);
	tcase_add_test(tc, test_refuses_unhealthy_target);
	tcase_add_test(tc, test_noop_and_if_gen);
	tcase_add_test(tc, test_rollback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(switcher_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
