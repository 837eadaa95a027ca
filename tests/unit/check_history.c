#include "autoconf.h"

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "history.h"

/*
 * One scratch directory per test case (made and removed in the parent by an
 * unchecked fixture, so it goes even when a test fails); each test makes its
 * own subdirectory with mkdtemp.
 */
static char base[] = "/tmp/check_history.XXXXXX";

static void base_setup(void);
static void base_teardown(void);
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static char *test_path(void);
static void write_file(const char *path, const char *mode, const char *data, size_t len);
static void append(const char *path, int64_t time_ms, const char *reason, uint64_t gen);

static void
base_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
base_teardown(void)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	memcpy(base + strlen(base) - 6, "XXXXXX", 6);
}

/* A fresh directory and in it the path of a history file (not created). */
static char *
test_path(void)
{
	char dir[256];
	char *p;

	snprintf(dir, sizeof(dir), "%s/t.XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	p = malloc(strlen(dir) + sizeof("/state.history"));
	ck_assert_ptr_nonnull(p);
	strcpy(p, dir);
	strcat(p, "/state.history");
	return p;
}

static void
write_file(const char *path, const char *mode, const char *data, size_t len)
{
	FILE *f = fopen(path, mode);

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void
append(const char *path, int64_t time_ms, const char *reason, uint64_t gen)
{
	struct history_entry e = {time_ms, "switch", "blue", "green", "manual",
	    reason, 0, 42, gen};
	char err[512] = "";

	ck_assert_msg(history_append(path, &e, err, sizeof(err)) == 0, "%s", err);
}

START_TEST(test_path_name)
{
	char *p = history_path("/var/lib/cutover/state");

	ck_assert_str_eq(p, "/var/lib/cutover/state.history");
	free(p);
}
END_TEST

START_TEST(test_append_format)
{
	char *path = test_path();
	struct history_entry e = {1795680000123, "switch", "blue", "green",
	    "manual", "deploy 42", 0, 123, 8};
	struct history_entry r = {0, "rollback", NULL, NULL, "auto-rollback",
	    NULL, -1, -1, UINT64_MAX};
	char err[512] = "";
	char **lines = NULL;
	size_t n = 99;
	struct stat sb;

	umask(022); /* each test runs in its own process */
	ck_assert_msg(history_append(path, &e, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(history_append(path, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0644);
	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(lines[0],
	    "{\"time\":\"2026-11-26T08:00:00.123Z\",\"event\":\"switch\","
	    "\"from\":\"blue\",\"to\":\"green\",\"trigger\":\"manual\","
	    "\"reason\":\"deploy 42\",\"uid\":0,\"pid\":123,\"generation\":8}");
	ck_assert_str_eq(lines[1],
	    "{\"time\":\"1970-01-01T00:00:00.000Z\",\"event\":\"rollback\","
	    "\"from\":null,\"to\":null,\"trigger\":\"auto-rollback\","
	    "\"reason\":null,\"uid\":-1,\"pid\":-1,"
	    "\"generation\":18446744073709551615}");
	history_lines_free(lines, n);
	free(path);
}
END_TEST

START_TEST(test_append_before_epoch)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	size_t n = 0;

	append(path, -1, NULL, 1);
	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(strstr(lines[0], "\"time\":\"1969-12-31T23:59:59.999Z\""),
	    "%s", lines[0]);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

START_TEST(test_escaping)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	size_t n = 0;

	append(path, 0, "say \"hi\"\\ now\nnext\ttab\001\177 caf\xc3\xa9", 1);
	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(strstr(lines[0], ",\"reason\":\"say \\\"hi\\\"\\\\ now"
	    "\\u000anext\\u0009tab\\u0001\\u007f caf\xc3\xa9\",") != NULL,
	    "%s", lines[0]);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

START_TEST(test_read_order_and_max)
{
	char *path = test_path();
	char err[512] = "", want[64];
	char **lines = NULL;
	size_t n = 0, i;

	for (i = 1; i <= 5; i++)
		append(path, (int64_t)i * 1000, "r", i);

	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 5);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "\"generation\":%zu}", i + 1);
		ck_assert_msg(strstr(lines[i], want) != NULL, "line %zu: %s", i,
		    lines[i]);
	}
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 2, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":4}"));
	ck_assert_ptr_nonnull(strstr(lines[1], "\"generation\":5}"));
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 1, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":5}"));
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 50, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":1}"));
	history_lines_free(lines, n);
	free(path);
}
END_TEST

START_TEST(test_read_missing)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = (char **)&err;
	size_t n = 99;

	ck_assert_int_eq(history_read(path, 0, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(lines);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

START_TEST(test_read_directory)
{
	char *path = test_path();
	char err[512] = "", want[512];
	char **lines = NULL;
	size_t n = 0;

	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(history_read(path, 0, &lines, &n, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(lines);
	free(path);
}
END_TEST

START_TEST(test_append_missing_dir)
{
	struct history_entry e = {0, "switch", "blue", "green", "manual", NULL,
	    0, 1, 1};
	char err[512] = "", path[300], want[600];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/nope/state.history", base);
	ck_assert_int_eq(history_append(path, &e, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(stat(path, &sb), -1);
}
END_TEST

/*
 * A crash mid-write leaves a last line without '\n': readers skip it, and
 * the next append ends it first so the new record is whole and readable.
 */
START_TEST(test_torn_last_line)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	size_t n = 0;

	append(path, 1000, "one", 1);
	append(path, 2000, "two", 2);
	write_file(path, "ab", "{\"time\":\"1970-01-01T00:00:03", 28);

	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(lines[1], "\"generation\":2}"));
	history_lines_free(lines, n);

	append(path, 4000, "four", 4);
	ck_assert_int_eq(history_read(path, 0, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_msg(strncmp(lines[2], "{\"time\":\"1970-01-01T00:00:04.000Z\"",
	    34) == 0, "%s", lines[2]);
	ck_assert_ptr_nonnull(strstr(lines[2], "\"generation\":4}"));
	history_lines_free(lines, n);

	/* max counts whole records only. */
	ck_assert_int_eq(history_read(path, 1, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":4}"));
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/*
 * Only the last 4 MiB are read. Records of 64 bytes divide 4 MiB, so the
 * window starts exactly at a record: all 65536 in it are whole.
 */
START_TEST(test_read_cap_aligned)
{
	char *path = test_path();
	char err[512] = "", rec[65];
	char **lines = NULL;
	size_t n = 0, i, total = 70000;
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	for (i = 0; i < total; i++) {
		snprintf(rec, sizeof(rec), "{\"i\":%010zu,\"pad\":\"%0*d\"}\n", i,
		    64 - 26, 0);
		ck_assert_uint_eq(strlen(rec), 64);
		fputs(rec, f);
	}
	ck_assert_int_eq(fclose(f), 0);

	ck_assert_msg(history_read(path, 0, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 4 * 1024 * 1024 / 64);
	ck_assert_int_eq(strncmp(lines[0], "{\"i\":0000004464,", 16), 0);
	ck_assert_int_eq(strncmp(lines[n - 1], "{\"i\":0000069999,", 16), 0);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/* 100-byte records: the window starts inside one, which is dropped. */
START_TEST(test_read_cap_unaligned)
{
	char *path = test_path();
	char err[512] = "", rec[101];
	char **lines = NULL;
	size_t n = 0, i, total = 50000;
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	for (i = 0; i < total; i++) {
		snprintf(rec, sizeof(rec), "{\"i\":%010zu,\"pad\":\"%0*d\"}\n", i,
		    100 - 26, 0);
		ck_assert_uint_eq(strlen(rec), 100);
		fputs(rec, f);
	}
	ck_assert_int_eq(fclose(f), 0);

	ck_assert_msg(history_read(path, 3, &lines, &n, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(strncmp(lines[2], "{\"i\":0000049999,", 16), 0);
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 0, &lines, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 4 * 1024 * 1024 / 100); /* 41943 whole records */
	ck_assert_int_eq(strncmp(lines[0], "{\"i\":0000008057,", 16), 0);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

static Suite *
history_suite(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("history");

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_path_name);
	tcase_add_test(tc, test_append_format);
	tcase_add_test(tc, test_append_before_epoch);
	tcase_add_test(tc, test_escaping);
	tcase_add_test(tc, test_read_order_and_max);
	tcase_add_test(tc, test_read_missing);
	tcase_add_test(tc, test_read_directory);
	tcase_add_test(tc, test_append_missing_dir);
	tcase_add_test(tc, test_torn_last_line);
	tcase_add_test(tc, test_read_cap_aligned);
	tcase_add_test(tc, test_read_cap_unaligned);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(history_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
