#include "autoconf.h"

#include <stdlib.h>

#include <check.h>

#include "color.h"

START_TEST(test_names)
{
	ck_assert_str_eq(color_name(COLOR_BLUE), "blue");
	ck_assert_str_eq(color_name(COLOR_GREEN), "green");
	ck_assert_str_eq(color_name((enum color)COLOR_COUNT), "?");
	ck_assert_str_eq(color_name((enum color)-1), "?");
}
END_TEST

START_TEST(test_parse)
{
	enum color c = COLOR_BLUE;
	int i;

	for (i = 0; i < COLOR_COUNT; i++) {
		ck_assert_int_eq(color_parse(color_name((enum color)i), &c), 0);
		ck_assert_int_eq(c, i);
	}
	/* Exact names only; a refusal leaves *out alone. */
	c = COLOR_GREEN;
	ck_assert_int_eq(color_parse("Blue", &c), -1);
	ck_assert_int_eq(color_parse("blue ", &c), -1);
	ck_assert_int_eq(color_parse("", &c), -1);
	ck_assert_int_eq(color_parse("?", &c), -1);
	ck_assert_int_eq(c, COLOR_GREEN);
}
END_TEST

static Suite *
color_suite(void)
{
	Suite *s = suite_create("color");
	TCase *tc = tcase_create("color");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_parse);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(color_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
