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
#include "json.h"

/*
 * One scratch directory per test case (made and removed in the parent by an
 * unchecked fixture, so it goes even when a test fails); each test makes its
 * own subdirectory with mkdtemp.
 */
static char base[] = "/tmp/check_history.XXXXXX";
/* history_read's count of lines it skipped (each test is its own process). */
static size_t skipped;

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
	    reason, 0, 42, gen, NULL};
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
	    "manual", "deploy 42", 0, 123, 8, NULL};
	struct history_entry r = {0, "rollback", NULL, NULL, "auto-rollback",
	    NULL, -1, -1, UINT64_MAX, NULL};
	char err[512] = "";
	char **lines = NULL;
	size_t n = 99;
	struct stat sb;

	umask(022); /* each test runs in its own process */
	ck_assert_msg(history_append(path, &e, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(history_append(path, &r, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_uint_eq(sb.st_mode & 0777, 0644);
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
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
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
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
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(strstr(lines[0], ",\"reason\":\"say \\\"hi\\\"\\\\ now"
	    "\\nnext\\ttab\\u0001\\u007f caf\xc3\xa9\",") != NULL,
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

	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 5);
	for (i = 0; i < n; i++) {
		snprintf(want, sizeof(want), "\"generation\":%zu}", i + 1);
		ck_assert_msg(strstr(lines[i], want) != NULL, "line %zu: %s", i,
		    lines[i]);
	}
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 2, &lines, &n, &skipped, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":4}"));
	ck_assert_ptr_nonnull(strstr(lines[1], "\"generation\":5}"));
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 1, &lines, &n, &skipped, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"generation\":5}"));
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 50, &lines, &n, &skipped, err, sizeof(err)), 0);
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

	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), 0);
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
	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	ck_assert_ptr_null(lines);
	free(path);
}
END_TEST

START_TEST(test_append_missing_dir)
{
	struct history_entry e = {0, "switch", "blue", "green", "manual", NULL,
	    0, 1, 1, NULL};
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

	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(skipped, 0); /* a torn last line is not a bad line (yet) */
	ck_assert_ptr_nonnull(strstr(lines[1], "\"generation\":2}"));
	history_lines_free(lines, n);

	append(path, 4000, "four", 4);
	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(skipped, 1); /* now ended by '\n': a bad line, counted */
	ck_assert_msg(strncmp(lines[2], "{\"time\":\"1970-01-01T00:00:04.000Z\"",
	    34) == 0, "%s", lines[2]);
	ck_assert_ptr_nonnull(strstr(lines[2], "\"generation\":4}"));
	history_lines_free(lines, n);

	/* max counts whole records only. */
	ck_assert_int_eq(history_read(path, 1, &lines, &n, &skipped, err, sizeof(err)), 0);
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
		snprintf(rec, sizeof(rec), "{\"i\":\"%010zu\",\"pad\":\"%0*d\"}\n", i,
		    64 - 28, 0);
		ck_assert_uint_eq(strlen(rec), 64);
		fputs(rec, f);
	}
	ck_assert_int_eq(fclose(f), 0);

	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 4 * 1024 * 1024 / 64);
	ck_assert_int_eq(strncmp(lines[0], "{\"i\":\"0000004464\",", 18), 0);
	ck_assert_int_eq(strncmp(lines[n - 1], "{\"i\":\"0000069999\",", 18), 0);
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
		snprintf(rec, sizeof(rec), "{\"i\":\"%010zu\",\"pad\":\"%0*d\"}\n", i,
		    100 - 28, 0);
		ck_assert_uint_eq(strlen(rec), 100);
		fputs(rec, f);
	}
	ck_assert_int_eq(fclose(f), 0);

	ck_assert_msg(history_read(path, 3, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(strncmp(lines[2], "{\"i\":\"0000049999\",", 18), 0);
	history_lines_free(lines, n);

	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 4 * 1024 * 1024 / 100); /* 41943 whole records */
	ck_assert_int_eq(strncmp(lines[0], "{\"i\":\"0000008057\",", 18), 0);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/* line is a JSON object in well-formed UTF-8 (json_parse is strict). */
static void
assert_json_record(const char *line)
{
	struct json *j = json_parse(line, strlen(line));

	ck_assert_msg(j != NULL && j->type == JSON_OBJECT, "not a JSON object: %s", line);
	json_free(j);
}

/* A vetoing hook's Latin-1 and stray bytes: written as U+FFFD, never raw. */
START_TEST(test_reason_invalid_utf8)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	size_t n = 0;

	append(path, 0, "caf\xe9 \xff\xfe ok \xc3\xa9 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf", 1);
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(skipped, 0);
	assert_json_record(lines[0]);
	ck_assert_msg(strstr(lines[0], "\"reason\":\"caf\\ufffd \\ufffd\\ufffd ok \xc3\xa9 "
	    "\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\"") != NULL,
	    "%s", lines[0]);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/* A long reason is cut at 1024 bytes, on a character boundary. */
START_TEST(test_reason_cut_on_character)
{
	char *path = test_path();
	char err[512] = "", reason[3001];
	char **lines = NULL;
	const char *r, *e;
	size_t n = 0, i;
	struct json *j;

	/* "a" then 1000 three-byte euro signs: byte 1024 is mid-character. */
	reason[0] = 'a';
	for (i = 0; i < 1000; i++)
		memcpy(reason + 1 + 3 * i, "\xe2\x82\xac", 3);
	reason[3001 - 1] = '\0';
	append(path, 0, reason, 1);
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 1);
	ck_assert_msg(strstr(lines[0], "\\ufffd") == NULL, "%s", lines[0]);
	j = json_parse(lines[0], strlen(lines[0]));
	ck_assert_ptr_nonnull(j);
	r = json_get_str(j, "reason", NULL);
	ck_assert_ptr_nonnull(r);
	/* 1 + 341 * 3 = 1024 bytes: the largest whole prefix. */
	ck_assert_uint_eq(strlen(r), 1 + 341 * 3);
	e = r + strlen(r) - 3;
	ck_assert_int_eq(memcmp(e, "\xe2\x82\xac", 3), 0);
	json_free(j);
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/*
 * One bad line (hand-corrupted, or written raw by an older version) never
 * fails the read: it is skipped and counted; a record whose only fault is
 * invalid UTF-8 (or a NUL) is repaired with U+FFFD and shown.
 */
START_TEST(test_bad_lines_skipped)
{
	/* sizeof - 1: the data holds a NUL byte of its own. */
	static const char data[] =
	    "{\"event\":\"switch\",\"reason\":\"vetoed: caf\xe9\",\"generation\":1}\n"
	    "{\"event\":\"switch\",\"generation\":2\n"
	    "{not json at all}\n"
	    "garbage\n"
	    "\n"
	    "{\"event\":\"nul\0byte\",\"generation\":3}\n"
	    "{\"event\":\"switch\",\"generation\":4}\n";
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	size_t n = 0;

	append(path, 0, "first", 0);
	write_file(path, "ab", data, sizeof(data) - 1);
	ck_assert_msg(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(skipped, 4);
	ck_assert_ptr_nonnull(strstr(lines[0], "\"reason\":\"first\""));
	ck_assert_ptr_nonnull(strstr(lines[1], "vetoed: caf\xef\xbf\xbd\""));
	ck_assert_ptr_nonnull(strstr(lines[2], "\"event\":\"nul\xef\xbf\xbd" "byte\""));
	ck_assert_ptr_nonnull(strstr(lines[3], "\"generation\":4}"));
	assert_json_record(lines[1]);
	history_lines_free(lines, n);

	/* max counts good records only. */
	ck_assert_int_eq(history_read(path, 2, &lines, &n, &skipped, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(strstr(lines[1], "\"generation\":4}"));
	history_lines_free(lines, n);
	free(path);
}
END_TEST

/* A link planted as the history file: neither appended to nor read. */
START_TEST(test_symlink_refused)
{
	char *path = test_path();
	char err[512] = "", target[400], buf[64];
	char **lines = NULL;
	struct history_entry e = {0, "switch", "blue", "green", "manual", NULL,
	    0, 1, 1, NULL};
	size_t n = 0;
	FILE *f;

	snprintf(target, sizeof(target), "%s.target", path);
	write_file(target, "wb", "precious\n", 9);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(history_append(path, &e, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "symbolic link") != NULL, "%s", err);
	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "symbolic link") != NULL, "%s", err);
	f = fopen(target, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(buf, 1, sizeof(buf), f), 9);
	ck_assert_int_eq(memcmp(buf, "precious\n", 9), 0);
	fclose(f);
	free(path);
}
END_TEST

/* A FIFO planted as the history file must not block the daemon's loop. */
START_TEST(test_fifo_refused)
{
	char *path = test_path();
	char err[512] = "";
	char **lines = NULL;
	struct history_entry e = {0, "switch", "blue", "green", "manual", NULL,
	    0, 1, 1, NULL};
	size_t n = 0;

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(history_append(path, &e, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
	ck_assert_int_eq(history_read(path, 0, &lines, &n, &skipped, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
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
	tcase_add_test(tc, test_reason_invalid_utf8);
	tcase_add_test(tc, test_reason_cut_on_character);
	tcase_add_test(tc, test_bad_lines_skipped);
	tcase_add_test(tc, test_symlink_refused);
	tcase_add_test(tc, test_fifo_refused);
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
