#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>

#include "hooks.h"

/* Hook scripts are written to a fresh temporary directory per test. */

static struct event_base *base;
static char dir[64];

struct result {
	int calls;
	int status;
	bool timed_out;
	char *output;
};

static struct result res;

static const struct hook_env test_env = {"pre_switch", "blue", "green", 7, "manual switch"};

static void
setup(void)
{
	memset(&res, 0, sizeof(res));
	snprintf(dir, sizeof(dir), "/tmp/check_hooks.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
}

static void
teardown(void)
{
	char cmd[128];

	free(res.output);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0) {
		/* A stale temp dir is harmless. */
	}
}

/* Writes dir/name with a #!/bin/sh line and body, mode mode; returns the path. */
static const char *
script(const char *name, const char *body, mode_t mode)
{
	static char path[256];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fprintf(fp, "#!/bin/sh\n%s\n", body);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static void
done_cb(int status, bool timed_out, const char *output, void *arg)
{
	(void)arg;
	res.calls++;
	res.status = status;
	res.timed_out = timed_out;
	ck_assert_ptr_nonnull(output);
	res.output = strdup(output);
	event_base_loopbreak(base);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
	event_base_loopbreak(base);
}

/* Runs the loop until the callback fired or ms passed; true if it fired. */
static bool
run_loop(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	bool expired = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &expired);

	ck_assert_ptr_nonnull(wd);
	evtimer_add(wd, &tv);
	event_base_dispatch(base);
	event_free(wd);
	return !expired;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs path to completion (at most 10 s); returns the seconds it took. */
static double
run_hook(const char *path, uint64_t timeout_ms)
{
	struct hook_run *run;
	double t0 = now();

	run = hook_start(base, path, timeout_ms, &test_env, done_cb, NULL);
	ck_assert_msg(run != NULL, "hook_start: %s", strerror(errno));
	ck_assert_int_eq(res.calls, 0);
	ck_assert_msg(run_loop(10000), "hook did not finish");
	ck_assert_int_eq(res.calls, 1);
	return now() - t0;
}

static pid_t
read_pid(const char *name)
{
	char path[256];
	FILE *fp;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fp = fopen(path, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fscanf(fp, "%d", &pid), 1);
	fclose(fp);
	return (pid_t)pid;
}

START_TEST(test_environment)
{
	/* A stale CUTOVER_EVENT is replaced, others are inherited. */
	ck_assert_int_eq(setenv("CUTOVER_EVENT", "stale", 1), 0);
	ck_assert_int_eq(setenv("HOOK_TEST_KEEP", "kept", 1), 0);
	run_hook(script("env.sh",
	             "echo \"$CUTOVER_EVENT|$CUTOVER_FROM|$CUTOVER_TO|$CUTOVER_GENERATION|"
	             "$CUTOVER_REASON|$HOOK_TEST_KEEP\"\n"
	             "env | grep -c '^CUTOVER_EVENT='",
	             0755),
	    5000);
	ck_assert_int_eq(res.status, 0);
	ck_assert(!res.timed_out);
	ck_assert_str_eq(res.output, "pre_switch|blue|green|7|manual switch|kept\n1");
}
END_TEST

START_TEST(test_exit_code)
{
	run_hook(script("exit.sh", "echo vetoed: not ready; exit 3", 0755), 5000);
	ck_assert_int_eq(res.status, 3);
	ck_assert(!res.timed_out);
	ck_assert_str_eq(res.output, "vetoed: not ready");
}
END_TEST

START_TEST(test_output_captured_and_trimmed)
{
	run_hook(script("out.sh", "echo out; echo err >&2; printf '  \\n\\t\\n\\n'", 0755), 5000);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(res.output, "out\nerr");
}
END_TEST

/* stdin is /dev/null: a hook that reads it sees EOF at once. */
START_TEST(test_stdin_is_dev_null)
{
	run_hook(script("stdin.sh", "cat; echo read-done", 0755), 5000);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(res.output, "read-done");
}
END_TEST

/* Output past 64 KiB is discarded, and the hook is never blocked on a full pipe. */
START_TEST(test_output_capped)
{
	size_t i, n;

	run_hook(script("big.sh", "head -c 300000 /dev/zero | tr '\\0' a; exit 4", 0755), 5000);
	ck_assert_int_eq(res.status, 4);
	n = strlen(res.output);
	ck_assert_uint_eq(n, 64 * 1024);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(res.output[i], 'a');
}
END_TEST

/* Latin-1, stray bytes and NUL come out as U+FFFD; valid UTF-8, newlines
 * and escape characters pass (the audit history and cutoverctl escape them). */
START_TEST(test_output_made_utf8)
{
	run_hook(script("latin1.sh", "printf 'caf\\351 \\303\\251 \\377\\376 x\\000y\\na\\033[2Jb'; exit 1",
	    0755), 5000);
	ck_assert_int_eq(res.status, 1);
	ck_assert_str_eq(res.output,
	    "caf\xef\xbf\xbd \xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd x\xef\xbf\xbdy\na\033[2Jb");
}
END_TEST

/* The 64 KiB cap falls inside a character: the half character is dropped. */
START_TEST(test_output_cap_on_character)
{
	size_t i, n;

	run_hook(script("cut.sh", "head -c 65535 /dev/zero | tr '\\0' a; "
	    "i=0; while [ $i -lt 100 ]; do printf '\\342\\202\\254'; i=$((i+1)); done; exit 2",
	    0755), 5000);
	ck_assert_int_eq(res.status, 2);
	n = strlen(res.output);
	ck_assert_uint_eq(n, 65535);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(res.output[i], 'a');
}
END_TEST

START_TEST(test_timeout_kills)
{
	double secs = run_hook(script("sleep.sh", "sleep 30", 0755), 300);

	ck_assert_int_eq(res.status, -1);
	ck_assert(res.timed_out);
	/* SIGTERM reaches the whole process group: no wait for SIGKILL. */
	ck_assert_msg(secs >= 0.25 && secs < 1.0, "took %.3fs", secs);
}
END_TEST

START_TEST(test_timeout_escalates_to_sigkill)
{
	double secs = run_hook(script("stubborn.sh", "trap '' TERM; echo waiting; sleep 30", 0755), 200);

	ck_assert_int_eq(res.status, -1);
	ck_assert(res.timed_out);
	ck_assert_str_eq(res.output, "waiting");
	ck_assert_msg(secs >= 2.1 && secs < 4.0, "took %.3fs", secs);
}
END_TEST

START_TEST(test_killed_by_signal)
{
	run_hook(script("selfkill.sh", "kill -9 $$", 0755), 5000);
	ck_assert_int_eq(res.status, -1);
	ck_assert(!res.timed_out);
}
END_TEST

START_TEST(test_not_executable)
{
	struct hook_run *run;

	run = hook_start(base, script("noexec.sh", "exit 0", 0644), 5000, &test_env, done_cb, NULL);
	ck_assert_ptr_null(run);
	ck_assert_int_eq(errno, EACCES);
	run = hook_start(base, "/nonexistent/hook", 5000, &test_env, done_cb, NULL);
	ck_assert_ptr_null(run);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert(!run_loop(100));
	ck_assert_int_eq(res.calls, 0);
}
END_TEST

/* A child that keeps stdout open must not hold the callback for long. */
START_TEST(test_background_child_holding_pipe)
{
	double secs = run_hook(script("bg.sh", "sleep 30 & echo $! > \"$(dirname \"$0\")/bg.pid\"; echo started",
	                               0755),
	    5000);
	pid_t bg = read_pid("bg.pid");

	kill(bg, SIGKILL);
	ck_assert_int_eq(res.status, 0);
	ck_assert(!res.timed_out);
	ck_assert_str_eq(res.output, "started");
	ck_assert_msg(secs >= 0.9 && secs < 2.0, "took %.3fs", secs);
}
END_TEST

/* Each output line is logged as "hook EVENT: line". */
START_TEST(test_lines_logged)
{
	char path[256], buf[8192];
	int fd, saved;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/log", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	run_hook(script("lines.sh", "echo first line; printf 'second\\r\\nno newline'", 0755), 5000);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, "[info] hook pre_switch: first line\n") != NULL, "log: %s", buf);
	ck_assert_msg(strstr(buf, "[info] hook pre_switch: second\n") != NULL, "log: %s", buf);
	ck_assert_msg(strstr(buf, "[info] hook pre_switch: no newline\n") != NULL, "log: %s", buf);
}
END_TEST

START_TEST(test_cancel)
{
	struct hook_run *run;
	char pidfile[256];
	struct stat st;
	pid_t pid;
	int i;

	run = hook_start(base, script("cancel.sh", "echo $$ > \"$(dirname \"$0\")/sh.pid\"; sleep 30", 0755),
	    5000, &test_env, done_cb, NULL);
	ck_assert_ptr_nonnull(run);
	/* Poll until the script has written its pid. */
	snprintf(pidfile, sizeof(pidfile), "%s/sh.pid", dir);
	for (i = 0; i < 200; i++) {
		if (stat(pidfile, &st) == 0 && st.st_size > 0)
			break;
		ck_assert(!run_loop(25));
	}
	pid = read_pid("sh.pid");
	hook_cancel(run);
	/* Killed and reaped: the pid is gone. */
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);
	ck_assert(!run_loop(300));
	ck_assert_int_eq(res.calls, 0);
}
END_TEST

static Suite *
hooks_suite(void)
{
	Suite *s = suite_create("hooks");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_environment);
	tcase_add_test(tc, test_exit_code);
	tcase_add_test(tc, test_output_captured_and_trimmed);
	tcase_add_test(tc, test_stdin_is_dev_null);
	tcase_add_test(tc, test_output_capped);
	tcase_add_test(tc, test_output_made_utf8);
	tcase_add_test(tc, test_output_cap_on_character);
	tcase_add_test(tc, test_timeout_kills);
	tcase_add_test(tc, test_timeout_escalates_to_sigkill);
	tcase_add_test(tc, test_killed_by_signal);
	tcase_add_test(tc, test_not_executable);
	tcase_add_test(tc, test_background_child_holding_pipe);
	tcase_add_test(tc, test_lines_logged);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(hooks_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
