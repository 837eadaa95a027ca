#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "watchdog.h"

/* The test's WATCHDOG_USEC (400 ms): pings every 200 ms, wedged after 5 s. */
START_TEST(test_watchdog_short_interval)
{
	struct watchdog wd;

	watchdog_init(&wd, 400000, 1000);
	ck_assert_uint_eq(wd.interval_ms, 200);
	ck_assert_uint_eq(wd.stuck_ms, WATCHDOG_STUCK_MIN_MS);
	ck_assert(wd.stuck_ms > 2 * WATCHDOG_HEARTBEAT_MS);
	ck_assert(!wd.withholding);
}
END_TEST

/* WatchdogSec=30s: pings every 15 s, wedged after 15 s silent. */
START_TEST(test_watchdog_long_interval)
{
	struct watchdog wd;

	watchdog_init(&wd, 30000000, 0);
	ck_assert_uint_eq(wd.interval_ms, 15000);
	ck_assert_uint_eq(wd.stuck_ms, 15000);
}
END_TEST

START_TEST(test_watchdog_tiny_interval)
{
	struct watchdog wd;

	watchdog_init(&wd, 1, 0);
	ck_assert_uint_eq(wd.interval_ms, 1);
	ck_assert_uint_eq(wd.stuck_ms, WATCHDOG_STUCK_MIN_MS);
}
END_TEST

/*
 * A worker that beats every second, with its heartbeat up to a few seconds
 * late on a busy machine, is never wedged; one silent past stuck_ms is.
 */
START_TEST(test_watchdog_silence)
{
	struct watchdog wd;
	uint64_t t;

	watchdog_init(&wd, 400000, 10000);
	for (t = 10000; t <= 20000; t += 200)
		watchdog_tick(&wd, t);
	ck_assert_uint_eq(watchdog_silent_ms(&wd, 20000, 19000), 1000);
	ck_assert(watchdog_silent_ms(&wd, 20000, 16500) <= wd.stuck_ms);
	ck_assert(watchdog_silent_ms(&wd, 20000, 14000) > wd.stuck_ms);
	/* a heartbeat newer than the tick's clock reading */
	ck_assert_uint_eq(watchdog_silent_ms(&wd, 20000, 20005), 0);
}
END_TEST

/*
 * The whole process stopped for 30 s (SIGSTOP, a starved machine): the first
 * tick after it finds every heartbeat 30 s old but does not call the workers
 * wedged; their grace starts again. A worker still silent stuck_ms later is.
 */
START_TEST(test_watchdog_process_stall)
{
	struct watchdog wd;

	watchdog_init(&wd, 400000, 0);
	watchdog_tick(&wd, 200);
	watchdog_tick(&wd, 400);
	watchdog_tick(&wd, 30400);
	ck_assert_uint_eq(wd.resumed_ms, 30400);
	ck_assert_uint_eq(watchdog_silent_ms(&wd, 30400, 300), 0);
	for (uint64_t t = 30600; t <= 30400 + wd.stuck_ms; t += 200)
		watchdog_tick(&wd, t);
	ck_assert_uint_eq(wd.resumed_ms, 30400);
	ck_assert(watchdog_silent_ms(&wd, 30400 + wd.stuck_ms + 1, 300) > wd.stuck_ms);
	/* a tick late by less than a heartbeat period is not a stall */
	watchdog_tick(&wd, wd.last_tick_ms + 200 + WATCHDOG_HEARTBEAT_MS);
	ck_assert_uint_eq(wd.resumed_ms, 30400);
}
END_TEST

static Suite *
watchdog_suite(void)
{
	Suite *s = suite_create("watchdog");
	TCase *tc = tcase_create("watchdog");

	tcase_add_test(tc, test_watchdog_short_interval);
	tcase_add_test(tc, test_watchdog_long_interval);
	tcase_add_test(tc, test_watchdog_tiny_interval);
	tcase_add_test(tc, test_watchdog_silence);
	tcase_add_test(tc, test_watchdog_process_stall);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(watchdog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
