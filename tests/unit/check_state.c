#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "state.h"

/*
 * One scratch directory per test case (made and removed in the parent by an
 * unchecked fixture, so it goes even when a test fails); each test makes its
 * own subdirectory with mkdtemp.
 */
static char base[] = "/tmp/check_state.XXXXXX";

static void base_setup(void);
static void base_teardown(void);
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
static char *test_dir(void);
static char *join(const char *dir, const char *name);
static void write_file(const char *path, const char *data, size_t len);
static char *read_file(const char *path);

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
	chmod(path, 0700);
	return remove(path);
}

static void
base_teardown(void)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	memcpy(base + strlen(base) - 6, "XXXXXX", 6);
}

static char *
test_dir(void)
{
	char *d = join(base, "t.XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

static char *
join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	ck_assert_ptr_nonnull(p);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

static void
write_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static char *
read_file(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "rb");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

START_TEST(test_round_trip_full)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state in = {.active = COLOR_GREEN, .has_previous = true, .previous = COLOR_BLUE, .generation = 7, .switched_at_ms = 1795680000123, .window_end_ms = 1795680300123};
	struct state out;
	char err[256] = "";

	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(read_file(path),
	    "cutover-state 1\n"
	    "active green\n"
	    "previous blue\n"
	    "generation 7\n"
	    "switched_at 1795680000123\n"
	    "window_end 1795680300123\n");
	memset(&out, 0xa5, sizeof(out));
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(out.active, COLOR_GREEN);
	ck_assert(out.has_previous);
	ck_assert_int_eq(out.previous, COLOR_BLUE);
	ck_assert_uint_eq(out.generation, 7);
	ck_assert_int_eq(out.switched_at_ms, 1795680000123);
	ck_assert_int_eq(out.window_end_ms, 1795680300123);
	free(path);
	free(dir);
}
END_TEST

/* A ramp in progress: its four keys, written and read back as they were. */
START_TEST(test_round_trip_ramp)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state in, out;
	char err[256] = "", buf[512];
	FILE *f;
	size_t n;

	memset(&in, 0, sizeof(in));
	in.active = COLOR_BLUE;
	in.generation = 3;
	in.ramping = true;
	in.ramp_target = COLOR_GREEN;
	in.ramp_steps[0] = 1;
	in.ramp_steps[1] = 10;
	in.ramp_steps[2] = 50;
	in.ramp_nsteps = 3;
	in.ramp_step = 1;
	in.ramp_step_ms = 30000;
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), 0);
	ck_assert((f = fopen(path, "r")) != NULL);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	ck_assert_str_eq(buf, "cutover-state 1\nactive blue\ngeneration 3\nramp_target green\nramp_steps 1,10,50\n"
	                      "ramp_step 1\nramp_step_ms 30000\n");
	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), 0);
	ck_assert(out.ramping);
	ck_assert_int_eq(out.ramp_target, COLOR_GREEN);
	ck_assert_uint_eq(out.ramp_nsteps, 3);
	ck_assert_uint_eq(out.ramp_steps[0], 1);
	ck_assert_uint_eq(out.ramp_steps[1], 10);
	ck_assert_uint_eq(out.ramp_steps[2], 50);
	ck_assert_uint_eq(out.ramp_step, 1);
	ck_assert_uint_eq(out.ramp_step_ms, 30000);
	/* Without a ramp none of its keys is written, and none is read. */
	in.ramping = false;
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), 0);
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), 0);
	ck_assert(!out.ramping);
	/* An invalid ramp is not written. */
	in.ramping = true;
	in.ramp_step = 3;
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_round_trip_minimal)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state in = {.active = COLOR_BLUE, .has_previous = false, .previous = COLOR_GREEN, .generation = 0, .switched_at_ms = 0, .window_end_ms = 0};
	struct state out;
	char err[256] = "";

	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(read_file(path),
	    "cutover-state 1\nactive blue\ngeneration 0\n");
	memset(&out, 0xa5, sizeof(out));
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(out.active, COLOR_BLUE);
	ck_assert(!out.has_previous);
	ck_assert_uint_eq(out.generation, 0);
	ck_assert_int_eq(out.switched_at_ms, 0);
	ck_assert_int_eq(out.window_end_ms, 0);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_round_trip_limits)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state in = {.active = COLOR_BLUE, .has_previous = true, .previous = COLOR_GREEN, .generation = UINT64_MAX, .switched_at_ms = INT64_MAX, .window_end_ms = INT64_MAX};
	struct state out;
	char err[256] = "";

	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(strstr(read_file(path), "generation 18446744073709551615\n"),
	    "file: %s", read_file(path));
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.generation, UINT64_MAX);
	ck_assert_int_eq(out.switched_at_ms, INT64_MAX);
	ck_assert_int_eq(out.window_end_ms, INT64_MAX);
	free(path);
	free(dir);
}
END_TEST

/* Lines may come in any order; the optional ones may be absent. */
START_TEST(test_load_any_order)
{
	static const char text[] = "cutover-state 1\ngeneration 3\n"
	    "window_end 5\nprevious green\nactive blue\n";
	char *dir = test_dir(), *path = join(dir, "state");
	struct state out;
	char err[256] = "";

	write_file(path, text, sizeof(text) - 1);
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(out.active, COLOR_BLUE);
	ck_assert(out.has_previous);
	ck_assert_int_eq(out.previous, COLOR_GREEN);
	ck_assert_uint_eq(out.generation, 3);
	ck_assert_int_eq(out.switched_at_ms, 0);
	ck_assert_int_eq(out.window_end_ms, 5);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_load_missing)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state out;
	char err[256] = "";

	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), 1);
	ck_assert_uint_eq(out.generation, 0xa5a5a5a5a5a5a5a5u);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_load_directory)
{
	char *dir = test_dir();
	struct state out;
	char err[256] = "", want[512];

	memset(&out, 0xa5, sizeof(out));
	ck_assert_int_eq(state_load(dir, &out, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", dir, strerror(EISDIR));
	ck_assert_str_eq(err, want);
	ck_assert_uint_eq(out.generation, 0xa5a5a5a5a5a5a5a5u);
	free(dir);
}
END_TEST

/* Root reads anything, so this is only registered for other users. */
START_TEST(test_load_unreadable)
{
	static const char text[] = "cutover-state 1\nactive blue\ngeneration 1\n";
	char *dir = test_dir(), *path = join(dir, "state");
	struct state out;
	char err[256] = "", want[512];

	write_file(path, text, sizeof(text) - 1);
	ck_assert_int_eq(chmod(path, 0), 0);
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: %s", path, strerror(EACCES));
	ck_assert_str_eq(err, want);
	free(path);
	free(dir);
}
END_TEST

struct corrupt_case {
	const char *text;
	size_t len;        /* 0: strlen(text) */
	const char *why;   /* expected after "PATH: corrupt state file: " */
};

#define HDR "cutover-state 1\n"
static const struct corrupt_case corrupt_cases[] = {
	{"", 0, "empty file"},
	{"\n", 0, "line 1: not a cutover state file (expected 'cutover-state 1')"},
	{"active blue\ngeneration 1\n", 0,
	    "line 1: not a cutover state file (expected 'cutover-state 1')"},
	{"cutover-state\nactive blue\ngeneration 1\n", 0,
	    "line 1: not a cutover state file (expected 'cutover-state 1')"},
	{"cutover-state 2\nactive blue\ngeneration 1\n", 0,
	    "line 1: unsupported version '2' (this cutoverd reads version 1)"},
	{"cutover-state 1 \nactive blue\ngeneration 1\n", 0,
	    "line 1: unsupported version '1 ' (this cutoverd reads version 1)"},
	{"cutover-state 1", 0, "line 1: no newline at end of file (truncated?)"},
	{HDR, 0, "no 'active' line"},
	{HDR "generation 1\n", 0, "no 'active' line"},
	{HDR "active blue\n", 0, "no 'generation' line"},
	{HDR "active purple\ngeneration 7\n", 0, "line 2: unknown color 'purple'"},
	{HDR "active Blue\ngeneration 7\n", 0, "line 2: unknown color 'Blue'"},
	{HDR "active \ngeneration 7\n", 0, "line 2: unknown color ''"},
	{HDR "active green \ngeneration 7\n", 0, "line 2: unknown color 'green '"},
	{HDR "active green x\ngeneration 7\n", 0, "line 2: unknown color 'green x'"},
	{HDR "active green\r\ngeneration 7\n", 0, "line 2: unknown color 'green?'"},
	{HDR "active\ngeneration 7\n", 0, "line 2: expected 'key value', got 'active'"},
	{HDR "active  green\ngeneration 7\n", 0, "line 2: unknown color ' green'"},
	{HDR " active green\ngeneration 7\n", 0, "line 2: unknown key ''"},
	{HDR "active blue\nprevious purple\ngeneration 7\n", 0,
	    "line 3: unknown color 'purple'"},
	{HDR "active blue\ngeneration 7x\n", 0, "line 3: bad generation '7x'"},
	{HDR "active blue\ngeneration -1\n", 0, "line 3: bad generation '-1'"},
	{HDR "active blue\ngeneration +1\n", 0, "line 3: bad generation '+1'"},
	{HDR "active blue\ngeneration 007\n", 0, "line 3: bad generation '007'"},
	{HDR "active blue\ngeneration 0x10\n", 0, "line 3: bad generation '0x10'"},
	{HDR "active blue\ngeneration \n", 0, "line 3: bad generation ''"},
	{HDR "active blue\ngeneration 18446744073709551616\n", 0,
	    "line 3: bad generation '18446744073709551616'"},
	{HDR "active blue\ngeneration 1\nswitched_at 9223372036854775808\n", 0,
	    "line 4: bad switched_at '9223372036854775808'"},
	{HDR "active blue\ngeneration 1\nwindow_end -5\n", 0,
	    "line 4: bad window_end '-5'"},
	{HDR "active blue\ngeneration 1\nwindow_end 1.5\n", 0,
	    "line 4: bad window_end '1.5'"},
	{HDR "active blue\ncolor green\ngeneration 1\n", 0,
	    "line 3: unknown key 'color'"},
	{HDR "active blue\ngeneration 1\nactive green\n", 0,
	    "line 4: duplicate key 'active'"},
	{HDR "active blue\ngeneration 1\ngeneration 1\n", 0,
	    "line 4: duplicate key 'generation'"},
	{HDR "active blue\nprevious green\nprevious green\ngeneration 1\n", 0,
	    "line 4: duplicate key 'previous'"},
	{HDR "active blue\n\ngeneration 1\n", 0, "line 3: empty line"},
	{HDR "active blue\ngeneration 1\n\n", 0, "line 4: empty line"},
	{HDR "active blue\ngeneration 1", 0,
	    "line 3: no newline at end of file (truncated?)"},
	{HDR "active blue\ngeneration 1\ngarbage", 0,
	    "line 4: no newline at end of file (truncated?)"},
	{HDR "active blue\ngeneration 1\ngarbage\n", 0,
	    "line 4: expected 'key value', got 'garbage'"},
	{HDR "active blue\ngeneration 1\n\0", sizeof(HDR) + 25, "contains a NUL byte"},
	{HDR "active \033[31mred\ngeneration 1\n", 0,
	    "line 2: unknown color '?[31mred'"},
	{HDR "active blue\ngeneration 1\nramp_target green\n", 0,
	    "a ramp needs all of ramp_target, ramp_steps, ramp_step, ramp_step_ms"},
	{HDR "active blue\ngeneration 1\nramp_target green\nramp_steps 1,10\nramp_step 2\nramp_step_ms 5\n", 0,
	    "ramp_step 2 is past the 2 steps"},
	{HDR "active blue\ngeneration 1\nramp_target blue\nramp_steps 1,10\nramp_step 0\nramp_step_ms 5\n", 0,
	    "ramp_target is the active color"},
	{HDR "active blue\ngeneration 1\nramp_steps 10,5\n", 0,
	    "line 4: bad ramp_steps '10,5' (rising percentages 1..99, at most 16)"},
	{HDR "active blue\ngeneration 1\nramp_steps 0\n", 0,
	    "line 4: bad ramp_steps '0' (rising percentages 1..99, at most 16)"},
	{HDR "active blue\ngeneration 1\nramp_steps 1,100\n", 0,
	    "line 4: bad ramp_steps '1,100' (rising percentages 1..99, at most 16)"},
	{HDR "active blue\ngeneration 1\nramp_steps 1,,2\n", 0,
	    "line 4: bad ramp_steps '1,,2' (rising percentages 1..99, at most 16)"},
	{HDR "active blue\ngeneration 1\nramp_step_ms 0\n", 0, "line 4: bad ramp_step_ms '0'"},
	{HDR "active blue\ngeneration 1\nramp_node door-1\n", 0, "ramp_node without a ramp"},
	{HDR "active blue\ngeneration 1\nramp_target green\nramp_steps 1,10\nramp_step 0\nramp_step_ms 5\n"
	     "ramp_node \n", 0, "line 8: bad ramp_node '' (1 to 64 letters, digits, '-', '_' or '.')"},
	{HDR "active blue\ngeneration 1\nramp_node door/1\n", 0,
	    "line 4: bad ramp_node 'door/1' (1 to 64 letters, digits, '-', '_' or '.')"},
	{HDR "active blue\ngeneration 1\nramp_node "
	     "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\n", 0,
	    "line 4: bad ramp_node 'nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...' (1 to 64 letters, digits, '-', "
	    "'_' or '.')"},
	{HDR "active blue\ngeneration 1\nramp_target green\nramp_steps 1,10\nramp_step 0\nramp_step_ms 5\n"
	     "ramp_node a\nramp_node b\n", 0, "line 9: duplicate key 'ramp_node'"},
	{HDR "active blue\ngeneration 1\nramp_step 16\n", 0, "line 4: bad ramp_step '16'"},
	{HDR "active blue\ngeneration 1\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx x\n",
	    0, "line 4: unknown key 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"},
};
#undef HDR

START_TEST(test_load_corrupt)
{
	const struct corrupt_case *c = &corrupt_cases[_i];
	char *dir = test_dir(), *path = join(dir, "state");
	size_t len = c->len ? c->len : strlen(c->text);
	struct state out;
	char err[512] = "", want[512];

	write_file(path, c->text, len);
	memset(&out, 0xa5, sizeof(out));
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == -1,
	    "case %d loaded", _i);
	snprintf(want, sizeof(want), "%s: corrupt state file: %s", path, c->why);
	ck_assert_msg(strcmp(err, want) == 0, "case %d:\n got '%s'\nwant '%s'",
	    _i, err, want);
	ck_assert_msg(out.generation == 0xa5a5a5a5a5a5a5a5u,
	    "case %d: *st changed on failure", _i);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_load_too_large)
{
	static const char text[] = "cutover-state 1\nactive blue\ngeneration 1\n";
	char *dir = test_dir(), *path = join(dir, "state");
	char big[4097], err[512] = "", want[512];
	struct state out;

	/* Exactly 4096 bytes is the limit: parsed (and rejected for content). */
	memset(big, 'x', sizeof(big));
	memcpy(big, text, sizeof(text) - 1);
	big[4095] = '\n';
	write_file(path, big, 4096);
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, ": corrupt state file: line 4: ") != NULL, "%s", err);

	write_file(path, big, sizeof(big));
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), -1);
	snprintf(want, sizeof(want),
	    "%s: corrupt state file: larger than 4096 bytes", path);
	ck_assert_str_eq(err, want);
	free(path);
	free(dir);
}
END_TEST

/* After a save there is no PATH.tmp; a stale one from a crash is replaced. */
START_TEST(test_save_no_tmp_left)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *tmp = join(dir, "state.tmp");
	struct state in = {.active = COLOR_GREEN, .has_previous = true, .previous = COLOR_BLUE, .generation = 1, .switched_at_ms = 10, .window_end_ms = 20};
	struct state out;
	struct stat sb;
	char err[256] = "";
	mode_t um = umask(022);

	write_file(tmp, "leftover", 8);
	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(tmp, &sb), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_uint_eq(sb.st_mode & 0777, 0644);

	/* Overwriting an existing file. */
	in.generation = 2;
	in.active = COLOR_BLUE;
	in.previous = COLOR_GREEN;
	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(stat(tmp, &sb), -1);
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.generation, 2);
	ck_assert_int_eq(out.active, COLOR_BLUE);
	umask(um);
	free(tmp);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_save_missing_dir)
{
	char *dir = test_dir(), *sub = join(dir, "nope"), *path = join(sub, "state");
	struct state in = {.active = COLOR_BLUE, .has_previous = false, .previous = COLOR_BLUE, .generation = 1, .switched_at_ms = 0, .window_end_ms = 0};
	struct stat sb;
	char err[512] = "", want[512];

	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: ", path);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "%s", err);
	ck_assert_msg(strstr(err, strerror(ENOENT)) != NULL, "%s", err);
	ck_assert_int_eq(stat(sub, &sb), -1);
	ck_assert_int_eq(stat(path, &sb), -1);
	free(path);
	free(sub);
	free(dir);
}
END_TEST

/* PATH.tmp cannot be created: PATH keeps its old contents. */
START_TEST(test_save_fail_keeps_old)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *tmp = join(dir, "state.tmp");
	struct state in = {.active = COLOR_BLUE, .has_previous = false, .previous = COLOR_BLUE, .generation = 1, .switched_at_ms = 0, .window_end_ms = 0};
	struct state out;
	struct stat sb;
	char err[512] = "";

	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(mkdir(tmp, 0700), 0);
	in.generation = 2;
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, strerror(EISDIR)) != NULL, "%s", err);
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.generation, 1);
	ck_assert_int_eq(stat(tmp, &sb), 0);
	ck_assert(S_ISDIR(sb.st_mode));
	free(tmp);
	free(path);
	free(dir);
}
END_TEST

/* The rename fails (PATH is a directory): PATH.tmp is removed again. */
START_TEST(test_save_rename_fails)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *tmp = join(dir, "state.tmp"), *inner = join(path, "x");
	struct state in = {.active = COLOR_BLUE, .has_previous = false, .previous = COLOR_BLUE, .generation = 1, .switched_at_ms = 0, .window_end_ms = 0};
	struct stat sb;
	char err[512] = "";

	ck_assert_int_eq(mkdir(path, 0700), 0);
	write_file(inner, "x", 1);
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "rename") != NULL, "%s", err);
	ck_assert_int_eq(stat(tmp, &sb), -1);
	ck_assert_int_eq(stat(inner, &sb), 0);
	free(inner);
	free(tmp);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_save_invalid)
{
	char *dir = test_dir(), *path = join(dir, "state");
	struct state in = {.active = (enum color)7, .has_previous = false, .previous = COLOR_BLUE, .generation = 1, .switched_at_ms = 0, .window_end_ms = 0};
	struct stat sb;
	char err[512] = "";

	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	ck_assert_int_eq(stat(path, &sb), -1);
	in.active = COLOR_BLUE;
	in.switched_at_ms = -1;
	ck_assert_int_eq(state_save(path, &in, err, sizeof(err)), -1);
	ck_assert_int_eq(stat(path, &sb), -1);
	free(path);
	free(dir);
}
END_TEST

/* A path without a directory part works in the current directory. */
START_TEST(test_save_relative)
{
	char *dir = test_dir();
	struct state in = {.active = COLOR_GREEN, .has_previous = false, .previous = COLOR_BLUE, .generation = 4, .switched_at_ms = 0, .window_end_ms = 0};
	struct state out;
	char err[256] = "";

	ck_assert_int_eq(chdir(dir), 0); /* each test runs in its own process */
	ck_assert_msg(state_save("state", &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(state_load("state", &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.generation, 4);
	ck_assert_int_eq(access("state.tmp", F_OK), -1);
	free(dir);
}
END_TEST

/*
 * A symbolic link planted as PATH.tmp: the save replaces the link, never
 * writes its target; one planted as PATH is replaced by the rename too,
 * but refused by state_load.
 */
START_TEST(test_save_tmp_symlink_not_followed)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *tmp = join(dir, "state.tmp"), *target = join(dir, "precious");
	struct state in = {.active = COLOR_GREEN, .has_previous = true, .previous = COLOR_BLUE, .generation = 3, .switched_at_ms = 10, .window_end_ms = 0};
	struct state out;
	struct stat sb;
	char err[512] = "", *text;

	write_file(target, "precious\n", 9);
	ck_assert_int_eq(symlink(target, tmp), 0);
	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	text = read_file(target);
	ck_assert_str_eq(text, "precious\n");
	ck_assert_int_eq(lstat(tmp, &sb), -1);
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_msg(state_load(path, &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.generation, 3);

	/* A dangling link: its target must not be created. */
	ck_assert_int_eq(unlink(target), 0);
	ck_assert_int_eq(symlink(target, tmp), 0);
	ck_assert_msg(state_save(path, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(lstat(target, &sb), -1);
	free(target);
	free(tmp);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_load_symlink_refused)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *target = join(dir, "elsewhere");
	struct state in = {.active = COLOR_GREEN, .has_previous = false, .previous = COLOR_BLUE, .generation = 9, .switched_at_ms = 0, .window_end_ms = 0};
	struct state out;
	char err[512] = "";

	ck_assert_msg(state_save(target, &in, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(symlink(target, path), 0);
	ck_assert_int_eq(state_load(path, &out, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "symbolic link") != NULL, "%s", err);
	free(target);
	free(path);
	free(dir);
}
END_TEST

/* The state directory: private passes; group-, world-writable, missing,
 * not a directory, or someone else's, refused with its name. */
START_TEST(test_check_dir)
{
	char *dir = test_dir(), *path = join(dir, "state");
	char *file = join(dir, "file"), *inside = join(file, "state");
	char *gone = join(dir, "nope"), *gone_state = join(gone, "state");
	char err[512] = "";

	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_msg(state_check_dir(path, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(chmod(dir, 0755), 0);
	ck_assert_msg(state_check_dir(path, err, sizeof(err)) == 0, "%s", err);

	ck_assert_int_eq(chmod(dir, 0770), 0);
	ck_assert_int_eq(state_check_dir(path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, dir) != NULL && strstr(err, "group-writable") != NULL, "%s",
	    err);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	ck_assert_int_eq(state_check_dir(path, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, dir) != NULL && strstr(err, "world-writable") != NULL, "%s",
	    err);
	ck_assert_int_eq(chmod(dir, 0700), 0);

	ck_assert_int_eq(state_check_dir(gone_state, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, gone) != NULL && strstr(err, strerror(ENOENT)) != NULL, "%s",
	    err);
	write_file(file, "x", 1);
	ck_assert_int_eq(state_check_dir(inside, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not a directory") != NULL, "%s", err);

	/* Owned by someone else (only root can hand a directory over). */
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(dir, 4242, 4242), 0);
		ck_assert_int_eq(state_check_dir(path, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, "uid 4242") != NULL, "%s", err);
		ck_assert_int_eq(chown(dir, 0, 0), 0);
	}
	free(gone_state);
	free(gone);
	free(inside);
	free(file);
	free(path);
	free(dir);
}
END_TEST

/* The one codec shared by the file and the fleet's KEY/state. */
START_TEST(test_codec_round_trip)
{
	struct state st = {.active = COLOR_GREEN, .has_previous = true, .previous = COLOR_BLUE,
	    .generation = 7, .switched_at_ms = 1795680000123, .window_end_ms = 1795680300123}, back;
	char text[512], why[256];
	int len = state_format(&st, text, sizeof(text));

	ck_assert_int_gt(len, 0);
	ck_assert_str_eq(text, "cutover-state 1\nactive green\nprevious blue\ngeneration 7\n"
	                       "switched_at 1795680000123\nwindow_end 1795680300123\n");
	memset(&back, 0, sizeof(back));
	ck_assert_int_eq(state_parse(text, (size_t)len, &back, why, sizeof(why)), 0);
	ck_assert_int_eq(back.active, COLOR_GREEN);
	ck_assert(back.has_previous && back.previous == COLOR_BLUE);
	ck_assert_uint_eq(back.generation, 7);
	ck_assert_int_eq(back.switched_at_ms, 1795680000123);
	ck_assert_int_eq(back.window_end_ms, 1795680300123);
	ck_assert_int_eq(state_parse("cutover-state 1\nactive red\ngeneration 1\n", 40, &back, why,
	    sizeof(why)), -1);
	ck_assert_ptr_nonnull(strstr(why, "line 2"));
	/* A ramp travels in the same text (the fleet's KEY/state too). */
	st.ramping = true;
	st.ramp_target = COLOR_BLUE;
	st.ramp_steps[0] = 1;
	st.ramp_steps[1] = 10;
	st.ramp_nsteps = 2;
	st.ramp_step = 1;
	st.ramp_step_ms = 30000;
	len = state_format(&st, text, sizeof(text));
	ck_assert_int_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(text, "ramp_target blue\nramp_steps 1,10\nramp_step 1\n"));
	memset(&back, 0, sizeof(back));
	ck_assert_int_eq(state_parse(text, (size_t)len, &back, why, sizeof(why)), 0);
	ck_assert(back.ramping && back.ramp_target == COLOR_BLUE && back.ramp_nsteps == 2);
	ck_assert_uint_eq(back.ramp_steps[1], 10);
	ck_assert_uint_eq(back.ramp_step, 1);
	ck_assert_uint_eq(back.ramp_step_ms, 30000);
	ck_assert_str_eq(back.ramp_node, "");
	ck_assert_ptr_null(strstr(text, "ramp_node"));
	/* A fleet's ramp names the node that drives it (optional: a state
	 * written before it existed reads as a ramp of this node alone). */
	snprintf(st.ramp_node, sizeof(st.ramp_node), "door-1");
	len = state_format(&st, text, sizeof(text));
	ck_assert_int_gt(len, 0);
	ck_assert_ptr_nonnull(strstr(text, "ramp_step_ms 30000\nramp_node door-1\n"));
	memset(&back, 0, sizeof(back));
	ck_assert_int_eq(state_parse(text, (size_t)len, &back, why, sizeof(why)), 0);
	ck_assert_str_eq(back.ramp_node, "door-1");
	/* Every field at its longest still fits the smallest buffer allowed. */
	memset(st.ramp_node, 'n', STATE_NODE_MAX - 1);
	st.ramp_node[STATE_NODE_MAX - 1] = '\0';
	st.generation = UINT64_MAX;
	st.switched_at_ms = INT64_MAX;
	st.window_end_ms = INT64_MAX;
	st.ramp_step_ms = UINT64_MAX;
	st.ramp_nsteps = RAMP_MAX_STEPS;
	for (unsigned i = 0; i < RAMP_MAX_STEPS; i++)
		st.ramp_steps[i] = 84 + i;
	st.ramp_step = RAMP_MAX_STEPS - 1;
	len = state_format(&st, text, sizeof(text));
	ck_assert_int_gt(len, 0);
	memset(&back, 0, sizeof(back));
	ck_assert_int_eq(state_parse(text, (size_t)len, &back, why, sizeof(why)), 0);
	ck_assert_str_eq(back.ramp_node, st.ramp_node);
	ck_assert_uint_eq(back.ramp_step_ms, UINT64_MAX);
	/* A node name fleet.node would refuse is not written. */
	snprintf(st.ramp_node, sizeof(st.ramp_node), "door 1");
	ck_assert_int_eq(state_format(&st, text, sizeof(text)), -1);
	snprintf(st.ramp_node, sizeof(st.ramp_node), "door-1");
	st.ramp_step = RAMP_MAX_STEPS; /* past the last step */
	ck_assert_int_eq(state_format(&st, text, sizeof(text)), -1);
	st.ramping = false;
	st.active = (enum color)9;
	ck_assert_int_eq(state_format(&st, text, sizeof(text)), -1);
}
END_TEST

static Suite *
state_suite(void)
{
	Suite *s = suite_create("state");
	TCase *tc = tcase_create("state");

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_test(tc, test_round_trip_full);
	tcase_add_test(tc, test_codec_round_trip);
	tcase_add_test(tc, test_round_trip_minimal);
	tcase_add_test(tc, test_round_trip_ramp);
	tcase_add_test(tc, test_round_trip_limits);
	tcase_add_test(tc, test_load_any_order);
	tcase_add_test(tc, test_load_missing);
	tcase_add_test(tc, test_load_directory);
	if (geteuid() != 0)
		tcase_add_test(tc, test_load_unreadable);
	tcase_add_loop_test(tc, test_load_corrupt, 0,
	    (int)(sizeof(corrupt_cases) / sizeof(corrupt_cases[0])));
	tcase_add_test(tc, test_load_too_large);
	tcase_add_test(tc, test_save_no_tmp_left);
	tcase_add_test(tc, test_save_missing_dir);
	tcase_add_test(tc, test_save_fail_keeps_old);
	tcase_add_test(tc, test_save_rename_fails);
	tcase_add_test(tc, test_save_invalid);
	tcase_add_test(tc, test_save_relative);
	tcase_add_test(tc, test_save_tmp_symlink_not_followed);
	tcase_add_test(tc, test_load_symlink_refused);
	tcase_add_test(tc, test_check_dir);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(state_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
