#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>

#include <check.h>

#include "histogram.h"

START_TEST(test_bucket)
{
	unsigned i;

	ck_assert_uint_eq(histogram_bucket(0), 0);
	for (i = 0; i < HISTOGRAM_BUCKETS - 1; i++) {
		ck_assert_uint_eq(histogram_bucket(histogram_bounds_us[i]), i);
		ck_assert_uint_eq(histogram_bucket(histogram_bounds_us[i] - 1),
		    i == 0 || histogram_bounds_us[i] - 1 > histogram_bounds_us[i - 1] ? i : i - 1);
		ck_assert_uint_eq(histogram_bucket(histogram_bounds_us[i] + 1), i + 1);
	}
	ck_assert_uint_eq(histogram_bounds_us[0], 1000);
	ck_assert_uint_eq(histogram_bounds_us[HISTOGRAM_BUCKETS - 2], 10000000);
	ck_assert_uint_eq(histogram_bucket(UINT64_MAX), HISTOGRAM_BUCKETS - 1);
}
END_TEST

START_TEST(test_bounds_sorted)
{
	unsigned i;

	for (i = 1; i < HISTOGRAM_BUCKETS - 1; i++)
		ck_assert_uint_gt(histogram_bounds_us[i], histogram_bounds_us[i - 1]);
}
END_TEST

static Suite *
histogram_suite(void)
{
	Suite *s = suite_create("histogram");
	TCase *tc = tcase_create("histogram");

	tcase_add_test(tc, test_bucket);
	tcase_add_test(tc, test_bounds_sorted);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(histogram_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
