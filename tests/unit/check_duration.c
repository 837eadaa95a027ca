#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "duration.h"

struct dur_case {
	const char *text;
	int rc;
	uint64_t ms;
};

static const struct dur_case dur_cases[] = {
	{"0s", 0, 0},
	{"0ms", 0, 0},
	{"250ms", 0, 250},
	{"2s", 0, 2000},
	{"5m", 0, 300000},
	{"1h", 0, 3600000},
	{"007s", 0, 7000},
	{"18446744073709551615ms", 0, UINT64_MAX},
	{"18446744073709551616ms", -1, 0}, /* UINT64_MAX + 1 */
	{"18446744073709552s", -1, 0},     /* overflows when scaled */
	{"18446744073709551s", 0, 18446744073709551000u},
	{"", -1, 0},
	{"s", -1, 0},
	{"2", -1, 0},
	{"2x", -1, 0},
	{"2 s", -1, 0},
	{" 2s", -1, 0},
	{"2s ", -1, 0},
	{"-2s", -1, 0},
	{"+2s", -1, 0},
	{"1.5s", -1, 0},
	{"2S", -1, 0},
	{"2sec", -1, 0},
	{"2mss", -1, 0},
	{"2d", -1, 0},
	{"0x10s", -1, 0},
	{"2s2", -1, 0},
};

START_TEST(test_duration_parse)
{
	const struct dur_case *c = &dur_cases[_i];
	uint64_t ms = 12345;
	int rc = duration_parse(c->text, &ms);

	ck_assert_msg(rc == c->rc, "duration_parse(\"%s\") = %d, want %d",
	    c->text, rc, c->rc);
	if (c->rc == 0)
		ck_assert_msg(ms == c->ms, "duration_parse(\"%s\") gave %llu ms",
		    c->text, (unsigned long long)ms);
	else
		ck_assert_msg(ms == 12345, "\"%s\": *ms changed on failure", c->text);
}
END_TEST

START_TEST(test_duration_null)
{
	uint64_t ms = 1;

	ck_assert_int_eq(duration_parse(NULL, &ms), -1);
}
END_TEST

/* Saturating clock arithmetic: never wraps, never overflows (UBSan would
 * abort on the signed case). */
START_TEST(test_duration_add)
{
	ck_assert_uint_eq(duration_add(1, 2), 3);
	ck_assert_uint_eq(duration_add(UINT64_MAX - 5, 5), UINT64_MAX);
	ck_assert_uint_eq(duration_add(UINT64_MAX - 5, 6), UINT64_MAX);
	ck_assert_uint_eq(duration_add(7, UINT64_MAX), UINT64_MAX);
	ck_assert_uint_eq(duration_add(UINT64_MAX, UINT64_MAX), UINT64_MAX);
	ck_assert_int_eq(duration_add_signed(1700000000000, 300000), 1700000300000);
	ck_assert_int_eq(duration_add_signed(-5, 3), -2);
	ck_assert_int_eq(duration_add_signed(0, (uint64_t)INT64_MAX), INT64_MAX);
	ck_assert_int_eq(duration_add_signed(1, (uint64_t)INT64_MAX), INT64_MAX);
	/* 2562047788015h, the window that overflowed a switch. */
	ck_assert_int_eq(duration_add_signed(1700000000000,
	    UINT64_C(2562047788015) * 3600000), INT64_MAX);
	ck_assert_int_eq(duration_add_signed(1700000000000, UINT64_MAX), INT64_MAX);
	ck_assert_int_eq(duration_add_signed(INT64_MAX, 1), INT64_MAX);
	ck_assert_int_eq(duration_add_signed(INT64_MIN, UINT64_MAX), INT64_MAX);
	ck_assert_int_eq(duration_add_signed(INT64_MIN, (uint64_t)INT64_MAX), -1);
	ck_assert_int_eq(duration_add_signed(-1, UINT64_C(1) << 63), INT64_MAX);
}
END_TEST

START_TEST(test_duration_format)
{
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {
		{0, "0s"}, {1, "1ms"}, {1500, "1500ms"}, {2000, "2s"},
		{90000, "90s"}, {300000, "5m"}, {3600000, "1h"}, {5400000, "90m"},
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t back;

		duration_format(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].text);
		/* What is printed must parse back to the same value. */
		ck_assert_int_eq(duration_parse(buf, &back), 0);
		ck_assert_uint_eq(back, cases[i].ms);
	}
}
END_TEST

static Suite *
duration_suite(void)
{
	Suite *s = suite_create("duration");
	TCase *tc = tcase_create("duration");

	tcase_add_loop_test(tc, test_duration_parse, 0,
	    (int)(sizeof(dur_cases) / sizeof(dur_cases[0])));
	tcase_add_test(tc, test_duration_null);
	tcase_add_test(tc, test_duration_format);
	tcase_add_test(tc, test_duration_add);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(duration_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
