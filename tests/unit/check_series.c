#include "autoconf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "color.h"
#include "guard.h"
#include "histogram.h"
#include "json.h"
#include "series.h"

/* Cumulative counters after t seconds: blue 10 requests a second, 1 error
 * every second, all in the 2.5-5 ms bucket; green t requests in total. */
static void
reading(struct guard_sample now[COLOR_COUNT], uint64_t t)
{
	memset(now, 0, sizeof(struct guard_sample) * COLOR_COUNT);
	now[COLOR_BLUE].requests = 10 * t;
	now[COLOR_BLUE].errors = t;
	now[COLOR_BLUE].latency[2] = 10 * t;
	now[COLOR_GREEN].requests = t;
	now[COLOR_GREEN].latency[0] = t;
}

static struct json *
as_json(const struct series *s)
{
	struct jbuf b;
	struct json *j;

	jbuf_init(&b);
	series_json(s, &b);
	ck_assert(!b.oom);
	j = json_parse(b.s, b.len);
	ck_assert_msg(j != NULL, "not JSON: %.200s", b.s);
	jbuf_free(&b);
	return j;
}

static const struct json *
field(const struct json *j, const char *color, const char *name)
{
	const struct json *c = json_get(j, color), *a = c != NULL ? json_get(c, name) : NULL;

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(a->type, JSON_ARRAY);
	return a;
}

START_TEST(test_empty)
{
	static struct series s;
	struct guard_sample now[COLOR_COUNT];
	struct json *j;

	series_init(&s);
	j = as_json(&s);
	ck_assert_int_eq(json_get(j, "end_ms")->type, JSON_NULL);
	ck_assert_uint_eq(field(j, "blue", "requests")->n, 0);
	json_free(j);
	/* The first reading only primes: no interval yet. */
	reading(now, 5);
	series_add(&s, 1000, now);
	ck_assert_uint_eq(s.count, 0);
	j = as_json(&s);
	ck_assert_uint_eq(field(j, "green", "p99_us")->n, 0);
	ck_assert_double_eq(json_get_num(j, "capacity", 0), SERIES_LEN);
	json_free(j);
}
END_TEST

START_TEST(test_deltas)
{
	static struct series s;
	struct guard_sample now[COLOR_COUNT];
	struct json *j;
	const struct json *a;
	uint64_t t;

	series_init(&s);
	for (t = 0; t <= 3; t++) {
		reading(now, t);
		series_add(&s, 1000 * (int64_t)t, now);
	}
	ck_assert_uint_eq(s.count, 3);
	j = as_json(&s);
	ck_assert_double_eq(json_get_num(j, "end_ms", 0), 3000);
	a = field(j, "blue", "requests");
	ck_assert_uint_eq(a->n, 3);
	ck_assert_double_eq(a->items[0]->num, 10);
	ck_assert_double_eq(field(j, "blue", "errors")->items[2]->num, 1);
	/* p99 inside the 2.5-5 ms bucket, interpolated */
	a = field(j, "blue", "p99_us");
	ck_assert(a->items[1]->num > 2500 && a->items[1]->num <= 5000);
	ck_assert_double_eq(field(j, "green", "requests")->items[0]->num, 1);
	ck_assert(field(j, "green", "p99_us")->items[0]->num <= 1000);
	json_free(j);

	/* Counters that went backwards (cannot happen, but) count as zero. */
	reading(now, 1);
	series_add(&s, 4000, now);
	ck_assert_uint_eq(s.pts[COLOR_BLUE][3].requests, 0);
	ck_assert_uint_eq(s.pts[COLOR_BLUE][3].p99_us, 0);
}
END_TEST

/* Past SERIES_LEN samples the oldest go: the JSON holds the last 600, in order. */
START_TEST(test_ring_wraps)
{
	static struct series s;
	struct guard_sample now[COLOR_COUNT];
	struct json *j;
	const struct json *a;
	uint64_t t, total = 0;
	size_t i;

	series_init(&s);
	memset(now, 0, sizeof(now));
	series_add(&s, 0, now);
	for (t = 1; t <= SERIES_LEN + 50; t++) {
		total += t; /* t requests in second t */
		now[COLOR_GREEN].requests = total;
		series_add(&s, (int64_t)t * 1000, now);
	}
	ck_assert_uint_eq(s.count, SERIES_LEN);
	j = as_json(&s);
	a = field(j, "green", "requests");
	ck_assert_uint_eq(a->n, SERIES_LEN);
	for (i = 0; i < a->n; i++)
		ck_assert_double_eq(a->items[i]->num, (double)(51 + i));
	ck_assert_double_eq(json_get_num(j, "end_ms", 0), (SERIES_LEN + 50) * 1000.0);
	ck_assert_uint_eq(field(j, "blue", "requests")->n, SERIES_LEN);
	json_free(j);
}
END_TEST

static Suite *
series_suite(void)
{
	Suite *s = suite_create("series");
	TCase *tc = tcase_create("series");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_deltas);
	tcase_add_test(tc, test_ring_wraps);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(series_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
