#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>
#include <jansson.h>

#include "etcd.h"

/* Two watch messages as etcd's gateway sends them, one per line. */
static const char stream[] =
    "{\"result\":{\"header\":{\"revision\":\"5\"},\"created\":true}}\n"
    "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"L2E=\","
    "\"mod_revision\":\"6\",\"value\":\"e30=\"}}]}}\n";

/* Fed in pieces of every size (chunk boundaries are not message boundaries,
 * etcd#11372): always exactly the two messages, in order, whole. */
START_TEST(test_split_any_chunking)
{
	size_t piece = (size_t)_i + 1, off = 0, got = 0;
	struct evbuffer *buf = evbuffer_new();
	char err[256];
	json_t *msg;
	int rc;

	while (off < sizeof(stream) - 1) {
		size_t n = sizeof(stream) - 1 - off < piece ? sizeof(stream) - 1 - off : piece;

		evbuffer_add(buf, stream + off, n);
		off += n;
		while ((rc = etcd_stream_next(buf, &msg, err, sizeof(err))) == 1) {
			json_t *r = json_object_get(msg, "result");

			ck_assert_ptr_nonnull(r);
			ck_assert_int_eq(etcd_int(json_object_get(json_object_get(r, "header"), "revision")),
			    (int64_t)(5 + got));
			got++;
			json_decref(msg);
		}
		ck_assert_msg(rc == 0, "piece %zu at %zu: %s", piece, off, err);
	}
	ck_assert_uint_eq(got, 2);
	ck_assert_uint_eq(evbuffer_get_length(buf), 0);
	evbuffer_free(buf);
}
END_TEST

START_TEST(test_split_garbage)
{
	struct evbuffer *buf = evbuffer_new();
	char err[256] = "";
	json_t *msg = NULL;

	evbuffer_add_printf(buf, "{\"a\":1}\n<html>oops");
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), 1);
	json_decref(msg);
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), -1);
	ck_assert_ptr_null(msg);
	ck_assert_ptr_nonnull(strstr(err, "not JSON"));
	evbuffer_drain(buf, evbuffer_get_length(buf));
	evbuffer_add_printf(buf, "{\"a\":tru}");
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), -1);
	evbuffer_free(buf);
}
END_TEST

/* Brackets and escaped quotes inside strings do not end a message. */
START_TEST(test_split_strings)
{
	struct evbuffer *buf = evbuffer_new();
	char err[256];
	json_t *msg;

	evbuffer_add_printf(buf, "{\"a\":\"}]\\\"{\"");
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), 0);
	evbuffer_add_printf(buf, ",\"b\":[1,{\"c\":2}]}{");
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), 1);
	ck_assert_str_eq(json_string_value(json_object_get(msg, "a")), "}]\"{");
	ck_assert_uint_eq(json_array_size(json_object_get(msg, "b")), 2);
	json_decref(msg);
	ck_assert_uint_eq(evbuffer_get_length(buf), 1);
	evbuffer_free(buf);
}
END_TEST

START_TEST(test_split_blank_only)
{
	struct evbuffer *buf = evbuffer_new();
	char err[256];
	json_t *msg;

	evbuffer_add_printf(buf, " \r\n\t");
	ck_assert_int_eq(etcd_stream_next(buf, &msg, err, sizeof(err)), 0);
	ck_assert_uint_eq(evbuffer_get_length(buf), 0);
	evbuffer_free(buf);
}
END_TEST

START_TEST(test_base64)
{
	static const char *const cases[] = {"", "a", "ab", "abc", "abcd", "/cutover/shop/state",
	    "{\"state\":\"cutover-state 1\\n\"}"};
	size_t i, len;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *b = etcd_b64(cases[i], strlen(cases[i]));
		char *back = etcd_unb64(b, &len);

		ck_assert_ptr_nonnull(back);
		ck_assert_uint_eq(len, strlen(cases[i]));
		ck_assert_str_eq(back, cases[i]);
		free(b);
		free(back);
	}
	{
		char *b = etcd_b64("/a", 2);

		ck_assert_str_eq(b, "L2E=");
		free(b);
	}
	ck_assert_ptr_null(etcd_unb64("abc", &len));  /* not a multiple of 4 */
	ck_assert_ptr_null(etcd_unb64("a!b?", &len)); /* not base64 */
}
END_TEST

START_TEST(test_int)
{
	json_t *s = json_string("9075213056883045640"), *n = json_integer(42);

	ck_assert(etcd_int(s) == INT64_C(9075213056883045640));
	ck_assert(etcd_int(n) == 42);
	ck_assert(etcd_int(NULL) == 0);
	json_decref(s);
	json_decref(n);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("etcd");
	TCase *tc = tcase_create("etcd");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_split_any_chunking, 0, (int)sizeof(stream));
	tcase_add_test(tc, test_split_garbage);
	tcase_add_test(tc, test_split_blank_only);
	tcase_add_test(tc, test_split_strings);
	tcase_add_test(tc, test_base64);
	tcase_add_test(tc, test_int);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
