#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <check.h>

#include "clock.h"

/* The helpers agree with each other and with clock_gettime(2). */
START_TEST(test_units)
{
	struct timespec ts;
	uint64_t ms, us, ns, ms2;
	int64_t wall;

	ms = clock_mono_ms();
	us = clock_mono_us();
	ns = clock_mono_ns();
	ms2 = clock_mono_ms();
	ck_assert_uint_le(ms, us / 1000);
	ck_assert_uint_le(us, ns / 1000);
	ck_assert_uint_le(ns / 1000000, ms2);
	ck_assert_int_eq(clock_gettime(CLOCK_REALTIME, &ts), 0);
	wall = clock_wall_ms();
	ck_assert_int_ge(wall, (int64_t)ts.tv_sec * 1000);
	/* Generous: the machine may be loaded, but not for a minute. */
	ck_assert_int_lt(wall, (int64_t)ts.tv_sec * 1000 + 60000);
}
END_TEST

START_TEST(test_monotonic)
{
	uint64_t prev = clock_mono_us(), now;
	struct timespec nap = {0, 2000000};
	int i;

	for (i = 0; i < 1000; i++) {
		now = clock_mono_us();
		ck_assert_uint_ge(now, prev);
		prev = now;
	}
	nanosleep(&nap, NULL);
	ck_assert_uint_ge(clock_mono_us() - prev, 2000);
}
END_TEST

static Suite *
clock_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("clock");

	tcase_add_test(tc, test_units);
	tcase_add_test(tc, test_monotonic);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(clock_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
