#include "autoconf.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "color.h"
#include "command.h"
#include "completion.h"

/*
 * The bash script is checked by running bash: it sources the script, sets
 * COMP_WORDS and COMP_CWORD as readline would, calls the completion
 * function and prints COMPREPLY. Expectations are computed from the
 * command table wherever they can be, so that a new command or flag is
 * covered without touching this file.
 */

#define MAXW 16

static const struct option opts[] = {
	{"socket", required_argument, NULL, 's'},
	{"json", no_argument, NULL, 'j'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{"completion", required_argument, NULL, 'C'},
	{NULL, 0, NULL, 0},
};

static char script[64];

static void
setup(void)
{
	FILE *fp;
	int fd;

	strcpy(script, "/tmp/check_completion.XXXXXX");
	fd = mkstemp(script);
	ck_assert_int_ge(fd, 0);
	fp = fdopen(fd, "w");
	ck_assert_ptr_nonnull(fp);
	completion_bash(fp, "cutoverctl", opts, "+:s:hV");
	ck_assert_int_eq(ferror(fp), 0);
	ck_assert_int_eq(fclose(fp), 0);
}

static void
teardown(void)
{
	unlink(script);
}

/* Completes the last of the words (a NULL-terminated list after
 * "cutoverctl"); out gets COMPREPLY joined by spaces. */
static void
complete_words(const char *const *words, char *out, size_t size)
{
	const char *argv[MAXW + 8];
	size_t n = 0, len = 0;
	int pfd[2], status;
	ssize_t r;
	pid_t pid;

	argv[n++] = "bash";
	argv[n++] = "-c";
	argv[n++] = "source \"$1\" || exit 9; shift; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
		    "_cutoverctl; echo \"${COMPREPLY[*]}\"";
	argv[n++] = "bash";
	argv[n++] = script;
	argv[n++] = "cutoverctl";
	for (; *words != NULL; words++) {
		ck_assert_uint_lt(n, MAXW + 7);
		argv[n++] = *words;
	}
	argv[n] = NULL;
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		execv("/bin/bash", (char *const *)(uintptr_t)argv);
		_exit(127);
	}
	close(pfd[1]);
	while ((r = read(pfd[0], out + len, size - 1 - len)) > 0)
		len += (size_t)r;
	close(pfd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "bash exited with status %d", status);
	out[len] = '\0';
	if (len > 0 && out[len - 1] == '\n')
		out[len - 1] = '\0';
}

/* complete("a", "b", NULL) must give want. */
static void
check_complete(const char *want, ...)
{
	const char *words[MAXW + 1];
	char got[1024], shown[256] = "";
	size_t n = 0;
	va_list ap;

	va_start(ap, want);
	while ((words[n] = va_arg(ap, const char *)) != NULL && n < MAXW)
		n++;
	va_end(ap);
	words[n] = NULL;
	for (size_t i = 0; i < n; i++)
		snprintf(shown + strlen(shown), sizeof(shown) - strlen(shown), " '%s'", words[i]);
	complete_words(words, got, sizeof(got));
	ck_assert_msg(strcmp(got, want) == 0, "cutoverctl%s completes to '%s', expected '%s'", shown, got, want);
}

/* Appends word to a space-separated list. */
static void
add(char *list, size_t size, const char *word)
{
	snprintf(list + strlen(list), size - strlen(list), "%s%s", *list != '\0' ? " " : "", word);
}

/* The command word: every command cutoverctl knows, in table order, and
 * nothing it does not (help is the daemon's). */
START_TEST(test_commands)
{
	char all[512] = "";
	size_t i, j;

	for (i = 0; i < COMMAND_COUNT; i++)
		if (command_table[i].sides & COMMAND_CLIENT)
			add(all, sizeof(all), command_table[i].name);
	check_complete(all, "", NULL);
	check_complete("switch", "sw", NULL);
	check_complete("", "help", NULL);
	/* Each command from its first two letters, with any other command
	 * sharing them. */
	for (i = 0; i < COMMAND_COUNT; i++) {
		char prefix[3] = "", want[512] = "";

		if (!(command_table[i].sides & COMMAND_CLIENT))
			continue;
		memcpy(prefix, command_table[i].name, 2);
		for (j = 0; j < COMMAND_COUNT; j++)
			if ((command_table[j].sides & COMMAND_CLIENT) &&
			    strncmp(command_table[j].name, prefix, 2) == 0)
				add(want, sizeof(want), command_table[j].name);
		check_complete(want, prefix, NULL);
	}
}
END_TEST

/* After each command: its own flags (table order), its argument. */
START_TEST(test_each_command)
{
	char colors[64] = "";
	size_t i, k;
	int c;

	for (c = 0; c < COLOR_COUNT; c++)
		add(colors, sizeof(colors), color_name((enum color)c));
	ck_assert_str_eq(colors, "blue green");
	for (i = 0; i < COMMAND_COUNT; i++) {
		const struct command *cmd = &command_table[i];
		char flags[256] = "";

		if (!(cmd->sides & COMMAND_CLIENT))
			continue;
		for (k = 0; k < command_nflags; k++)
			if (cmd->flags & command_flags[k].bit)
				add(flags, sizeof(flags), command_flags[k].name);
		check_complete(flags, cmd->name, "--", NULL);
		check_complete(flags, cmd->name, "-", NULL);
		if (cmd->arg == COMMAND_ARG_COLOR) {
			check_complete(colors, cmd->name, "", NULL);
			check_complete("green", cmd->name, "g", NULL);
			/* The color given, the flags are left. */
			check_complete(flags, cmd->name, "blue", "", NULL);
		} else if (cmd->arg == COMMAND_ARG_COUNT) {
			check_complete("", cmd->name, "", NULL);
		} else {
			check_complete(flags, cmd->name, "", NULL);
		}
	}
}
END_TEST

START_TEST(test_flags_once_and_values)
{
	check_complete("--force --if-gen --local", "rollback", "--", NULL);
	check_complete("--if-gen --local", "rollback", "--force", "--", NULL);
	check_complete("--force --local", "rollback", "--if-gen", "3", "", NULL);
	/* readline splits "--if-gen=3" at the '='. */
	check_complete("--force --local", "rollback", "--if-gen", "=", "3", "", NULL);
	check_complete("", "rollback", "--if-gen", "", NULL);
	check_complete("", "deploy", "--timeout", "", NULL);
	check_complete("blue green", "switch", "--force", "", NULL);
	check_complete("blue green", "switch", "--if-gen", "4", "", NULL);
	check_complete("--force --if-gen --wait --local --ramp --step", "switch", "--dry-run", "green", "--", NULL);
	/* status takes no argument; its one flag is the client's --watch. */
	check_complete("--watch", "status", "", NULL);
	check_complete("", "status", "--watch", "", NULL);
	check_complete("", "bogus", "", NULL);
}
END_TEST

/* Global options before the command, with their short forms only where
 * shortopts has them (--json has none), and their values. */
START_TEST(test_global_options)
{
	check_complete("-s --socket --json -h --help -V --version --completion", "-", NULL);
	check_complete("--socket --json --help --version --completion", "--", NULL);
	check_complete("bash", "--completion", "", NULL);
	check_complete("switch", "-s", "/run/x.sock", "sw", NULL);
	check_complete("switch", "--socket", "=", "/run/x.sock", "sw", NULL);
	check_complete("switch", "--json", "sw", NULL);
	check_complete(script, "-s", script, NULL);
}
END_TEST

static Suite *
completion_suite(void)
{
	Suite *s = suite_create("completion");
	TCase *tc = tcase_create("bash");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_commands);
	tcase_add_test(tc, test_each_command);
	tcase_add_test(tc, test_flags_once_and_values);
	tcase_add_test(tc, test_global_options);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(completion_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
