#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "command.h"
#include "json.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MAXW 16

/* Splits a copy of line on blanks into argv, as the daemon does. */
static int
split(char *line, char **argv)
{
	char *p, *save = NULL;
	int argc = 0;

	for (p = strtok_r(line, " \t", &save); p != NULL && argc < MAXW; p = strtok_r(NULL, " \t", &save))
		argv[argc++] = p;
	argv[argc] = NULL;
	return argc;
}

/* Parses line on side; returns 0 or -1, err holding the reason. */
static int
parse_line(const char *line, unsigned side, struct command_request *rq, char *buf, size_t bufsize,
    char *err, size_t errlen)
{
	char *argv[MAXW + 1];
	int argc;

	ck_assert_uint_lt(strlen(line), bufsize);
	strcpy(buf, line);
	argc = split(buf, argv);
	err[0] = '\0';
	return command_parse(rq, argc, argv, side, err, errlen);
}

/* Parses then formats line (a daemon command); the result must be want. */
static void
check_wire(const char *line, const char *want)
{
	struct command_request rq;
	char buf[256], err[256];
	struct jbuf b;

	ck_assert_msg(parse_line(line, COMMAND_DAEMON, &rq, buf, sizeof(buf), err, sizeof(err)) == 0,
	    "'%s' refused: %s", line, err);
	jbuf_init(&b);
	ck_assert_int_eq(command_format(&rq, &b), 0);
	ck_assert(!b.oom);
	ck_assert_str_eq(b.s, want);
	jbuf_free(&b);
}

/* Each daemon row with every flag it takes (and its argument) parses on
 * both sides, formats, and the formatted line parses to the same request. */
START_TEST(test_every_row_round_trips)
{
	size_t i, k;

	for (i = 0; i < COMMAND_COUNT; i++) {
		const struct command *cmd = &command_table[i];
		struct command_request rq, again;
		char line[256], buf[256], err[256];
		struct jbuf b;

		ck_assert_int_eq(cmd->id, (int)i);
		if (!(cmd->sides & COMMAND_DAEMON))
			continue;
		snprintf(line, sizeof(line), "%s", cmd->name);
		if (cmd->arg == COMMAND_ARG_COLOR)
			strcat(line, " green");
		else if (cmd->arg == COMMAND_ARG_COUNT)
			strcat(line, " 12");
		for (k = 0; k < command_nflags; k++) {
			if (!(cmd->flags & command_flags[k].bit) || command_flags[k].client_only)
				continue;
			strcat(line, " ");
			strcat(line, command_flags[k].name);
			if (command_flags[k].value == COMMAND_VALUE_NUMBER)
				strcat(line, " 42");
			if (command_flags[k].value == COMMAND_VALUE_STEPS)
				strcat(line, " 1,10,50");
			if (command_flags[k].value == COMMAND_VALUE_DURATION)
				strcat(line, " 30s");
		}
		ck_assert_msg(parse_line(line, COMMAND_DAEMON, &rq, buf, sizeof(buf), err, sizeof(err)) == 0,
		    "daemon refused '%s': %s", line, err);
		ck_assert_ptr_eq(rq.cmd, cmd);
		ck_assert_uint_eq(rq.flags, cmd->flags & ~(unsigned)COMMAND_F_WATCH);
		if (cmd->sides & COMMAND_CLIENT)
			ck_assert_msg(parse_line(line, COMMAND_CLIENT, &rq, buf, sizeof(buf), err,
			    sizeof(err)) == 0, "client refused '%s': %s", line, err);
		jbuf_init(&b);
		ck_assert_int_eq(command_format(&rq, &b), 0);
		ck_assert(!b.oom);
		ck_assert_str_eq(b.s, line);
		ck_assert_int_eq(parse_line(b.s, COMMAND_DAEMON, &again, buf, sizeof(buf), err, sizeof(err)), 0);
		ck_assert_ptr_eq(again.cmd, rq.cmd);
		ck_assert_int_eq(again.has_arg, rq.has_arg);
		ck_assert_int_eq(again.color, rq.color);
		ck_assert_uint_eq(again.count, rq.count);
		ck_assert_uint_eq(again.flags, rq.flags);
		ck_assert_uint_eq(again.if_gen, rq.if_gen);
		ck_assert_uint_eq(again.ramp_nsteps, rq.ramp_nsteps);
		for (k = 0; k < rq.ramp_nsteps; k++)
			ck_assert_uint_eq(again.ramp_steps[k], rq.ramp_steps[k]);
		ck_assert_uint_eq(again.step_ms, rq.step_ms);
		jbuf_free(&b);
	}
}
END_TEST

/* --ramp STEPS [--step T]: rising percentages 1..99; --step only with --ramp. */
START_TEST(test_ramp_flags)
{
	struct command_request rq;
	char buf[256], err[256];

	ck_assert_int_eq(parse_line("switch green --ramp 1,10,50 --step 2s", COMMAND_DAEMON, &rq, buf,
	    sizeof(buf), err, sizeof(err)), 0);
	ck_assert_uint_eq(rq.ramp_nsteps, 3);
	ck_assert_uint_eq(rq.ramp_steps[0], 1);
	ck_assert_uint_eq(rq.ramp_steps[1], 10);
	ck_assert_uint_eq(rq.ramp_steps[2], 50);
	ck_assert_uint_eq(rq.step_ms, 2000);
	ck_assert_int_eq(parse_line("switch green --ramp=5", COMMAND_CLIENT, &rq, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(rq.ramp_nsteps, 1);
	ck_assert_uint_eq(rq.step_ms, 0);
	ck_assert_int_eq(parse_line("switch green --ramp 10,5", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "switch: --ramp 10,5: steps must rise (10 then 5)");
	ck_assert_int_eq(parse_line("switch green --ramp 0,10", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "switch: --ramp 0,10: '0' is not a percentage from 1 to 99");
	ck_assert_int_eq(parse_line("switch green --ramp 1,100", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_int_eq(parse_line("switch green --ramp 1,,5", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_int_eq(parse_line("switch green --ramp 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17",
	    COMMAND_DAEMON, &rq, buf, sizeof(buf), err, sizeof(err)), -1);
	ck_assert_str_eq(err, "switch: --ramp 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17: at most 16 steps");
	ck_assert_int_eq(parse_line("switch green --step 5s", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "switch: --step needs --ramp");
	ck_assert_int_eq(parse_line("rollback --ramp 1", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_int_eq(parse_line("deploy --run x --ramp 1,50 --step 1m", COMMAND_CLIENT, &rq, buf,
	    sizeof(buf), err, sizeof(err)), 0);
	ck_assert_uint_eq(rq.ramp_nsteps, 2);
	ck_assert_uint_eq(rq.step_ms, 60000);
}
END_TEST

START_TEST(test_typed_request)
{
	struct command_request rq;
	char buf[256], err[256];

	ck_assert_int_eq(parse_line("switch --if-gen 3 green --force", COMMAND_DAEMON, &rq, buf,
	    sizeof(buf), err, sizeof(err)), 0);
	ck_assert_int_eq(rq.cmd->id, COMMAND_SWITCH);
	ck_assert(rq.has_arg);
	ck_assert_int_eq(rq.color, COLOR_GREEN);
	ck_assert_uint_eq(rq.flags, COMMAND_F_FORCE | COMMAND_F_IF_GEN);
	ck_assert_uint_eq(rq.if_gen, 3);
	ck_assert(!rq.json);
	ck_assert_int_eq(parse_line("history", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	ck_assert(!rq.has_arg);
	ck_assert_int_eq(parse_line("health blue", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	ck_assert(rq.has_arg);
	ck_assert_int_eq(rq.color, COLOR_BLUE);
	ck_assert_int_eq(parse_line("switch blue --if-gen=9223372036854775807", COMMAND_CLIENT, &rq,
	    buf, sizeof(buf), err, sizeof(err)), 0);
	ck_assert_uint_eq(rq.if_gen, 9223372036854775807ull);
	/* --json is the client's, after the command too, and never sent. */
	ck_assert_int_eq(parse_line("status --json", COMMAND_CLIENT, &rq, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	ck_assert(rq.json);
	check_wire("status", "status");
}
END_TEST

/* The exact text on the wire that acceptance suites and deploy send. */
START_TEST(test_wire_text)
{
	check_wire("switch green --force --if-gen 3", "switch green --force --if-gen 3");
	check_wire("switch --wait --dry-run blue", "switch blue --dry-run --wait");
	check_wire("rollback --if-gen 2", "rollback --if-gen 2");
	check_wire("history 5", "history 5");
	check_wire("health", "health");
	check_wire("smoke blue", "smoke blue");
}
END_TEST

/* The client's own command (deploy) and its local flags. */
START_TEST(test_deploy_is_client_only)
{
	struct command_request rq;
	char *argv[] = {"deploy", "--run", "make install && true", "--timeout", "90s", NULL};
	char err[256];
	struct jbuf b;

	ck_assert_int_eq(command_parse(&rq, 5, argv, COMMAND_CLIENT, err, sizeof(err)), 0);
	ck_assert_int_eq(rq.cmd->id, COMMAND_DEPLOY);
	ck_assert_str_eq(rq.run, "make install && true");
	ck_assert_uint_eq(rq.timeout_ms, 90000);
	jbuf_init(&b);
	ck_assert_int_eq(command_format(&rq, &b), -1);
	jbuf_free(&b);
	ck_assert_int_eq(command_parse(&rq, 5, argv, COMMAND_DAEMON, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown command 'deploy'");
	ck_assert_ptr_null(command_find("deploy", COMMAND_DAEMON));
	ck_assert_ptr_null(command_find("help", COMMAND_CLIENT));
	ck_assert_ptr_nonnull(command_find("help", COMMAND_DAEMON));
}
END_TEST

static const struct {
	const char *line;
	unsigned side;
	const char *err;
} refused[] = {
	{"frobnicate", COMMAND_DAEMON, "unknown command 'frobnicate'"},
	{"STATUS", COMMAND_CLIENT, "unknown command 'STATUS'"},
	{"status extra", COMMAND_DAEMON, "status: too many arguments"},
	{"status --force", COMMAND_DAEMON, "status: unknown option '--force'"},
	{"status --json", COMMAND_DAEMON, "status: unknown option '--json'"},
	{"switch", COMMAND_DAEMON, "switch: missing argument (blue or green)"},
	{"switch red", COMMAND_DAEMON, "switch: 'red' is not a color (blue or green)"},
	{"switch blue green", COMMAND_DAEMON, "switch: too many arguments"},
	{"switch green --bogus", COMMAND_DAEMON, "switch: unknown option '--bogus'"},
	{"switch green --force --force", COMMAND_DAEMON, "switch: --force given twice"},
	{"switch green --force=yes", COMMAND_CLIENT, "switch: --force takes no value"},
	{"switch green --if-gen", COMMAND_DAEMON, "switch: --if-gen needs a generation number"},
	{"switch green --if-gen seven", COMMAND_DAEMON, "switch: --if-gen needs a generation number"},
	{"switch green --if-gen -1", COMMAND_DAEMON, "switch: --if-gen needs a generation number"},
	{"switch green --if-gen +7", COMMAND_DAEMON, "switch: --if-gen needs a generation number"},
	{"switch green --if-gen 3x", COMMAND_DAEMON, "switch: --if-gen needs a generation number"},
	{"switch green --if-gen 9223372036854775808", COMMAND_DAEMON,
	    "switch: --if-gen needs a generation number"},
	{"switch green --if-gen 99999999999999999999999", COMMAND_CLIENT,
	    "switch: --if-gen needs a generation number"},
	{"switch green --if-gen=", COMMAND_CLIENT, "switch: --if-gen needs a generation number"},
	{"switch green --run x", COMMAND_CLIENT, "switch: unknown option '--run'"},
	/* The contract: rollback [--force] [--if-gen N], nothing else. */
	{"rollback blue", COMMAND_DAEMON, "rollback: too many arguments"},
	{"rollback --wait", COMMAND_DAEMON, "rollback: unknown option '--wait'"},
	{"rollback --dry-run", COMMAND_DAEMON, "rollback: unknown option '--dry-run'"},
	{"rollback --dry-run", COMMAND_CLIENT, "rollback: unknown option '--dry-run'"},
	{"health red", COMMAND_DAEMON, "health: 'red' is not a color (blue or green)"},
	{"health blue green", COMMAND_DAEMON, "health: too many arguments"},
	{"history 0", COMMAND_DAEMON, "history: '0' is not a positive number"},
	{"history -3", COMMAND_DAEMON, "history: unknown option '-3'"},
	{"history ten", COMMAND_DAEMON, "history: 'ten' is not a positive number"},
	{"history 1 2", COMMAND_DAEMON, "history: too many arguments"},
	{"smoke", COMMAND_DAEMON, "smoke: missing argument (blue or green)"},
	{"commit now", COMMAND_DAEMON, "commit: too many arguments"},
	{"reload --force", COMMAND_DAEMON, "reload: unknown option '--force'"},
	{"help me", COMMAND_DAEMON, "help: too many arguments"},
	{"deploy", COMMAND_CLIENT, "deploy: --run CMD is required"},
	{"deploy --run", COMMAND_CLIENT, "deploy: --run needs a command"},
	{"deploy --run x --timeout 0", COMMAND_CLIENT,
	    "deploy: --timeout needs a duration such as \"90s\" or \"10m\""},
	{"deploy --run x --timeout soon", COMMAND_CLIENT,
	    "deploy: --timeout needs a duration such as \"90s\" or \"10m\""},
};

/* status --watch is the client's: it parses there and is never sent; the
 * daemon refuses it, and its help does not list it. */
START_TEST(test_watch_is_client_only)
{
	struct command_request rq;
	char buf[256], err[256], syn[128];
	struct jbuf b;

	ck_assert_int_eq(parse_line("status --watch", COMMAND_CLIENT, &rq, buf, sizeof(buf), err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(rq.flags, COMMAND_F_WATCH);
	jbuf_init(&b);
	ck_assert_int_eq(command_format(&rq, &b), 0);
	ck_assert_str_eq(b.s, "status");
	jbuf_free(&b);
	ck_assert_int_eq(parse_line("status --watch", COMMAND_DAEMON, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "status: unknown option '--watch'");
	ck_assert_int_eq(parse_line("switch green --watch", COMMAND_CLIENT, &rq, buf, sizeof(buf), err,
	    sizeof(err)), -1);
	command_synopsis(&command_table[COMMAND_STATUS], syn, sizeof(syn));
	ck_assert_str_eq(syn, "status");
}
END_TEST

START_TEST(test_refused)
{
	struct command_request rq;
	char buf[256], err[256];

	ck_assert_msg(parse_line(refused[_i].line, refused[_i].side, &rq, buf, sizeof(buf), err,
	    sizeof(err)) == -1, "'%s' accepted", refused[_i].line);
	ck_assert_str_eq(err, refused[_i].err);
}
END_TEST

/* Words the client must never put on the wire. */
START_TEST(test_bad_words)
{
	struct command_request rq;
	char *a1[] = {"switch", "green status", NULL};
	char *a2[] = {"status", "", NULL};
	char *a3[] = {"status\tx", NULL};
	char *a4[] = {"deploy", "--run=make install", NULL};
	char err[256];

	ck_assert_int_eq(command_parse(&rq, 2, a1, COMMAND_CLIENT, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "argument 2 is empty or holds whitespace or a control character");
	ck_assert_int_eq(command_parse(&rq, 2, a2, COMMAND_CLIENT, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "argument 2 is empty or holds whitespace or a control character");
	ck_assert_int_eq(command_parse(&rq, 1, a3, COMMAND_CLIENT, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "argument 1 is empty or holds whitespace or a control character");
	ck_assert_int_eq(command_parse(&rq, 0, a3, COMMAND_CLIENT, err, sizeof(err)), -1);
	/* A command to run may hold blanks: it stays local. */
	ck_assert_int_eq(command_parse(&rq, 2, a4, COMMAND_CLIENT, err, sizeof(err)), 0);
	ck_assert_str_eq(rq.run, "make install");
}
END_TEST

START_TEST(test_synopsis)
{
	char syn[128];

	command_synopsis(&command_table[COMMAND_SWITCH], syn, sizeof(syn));
	ck_assert_str_eq(syn, "switch blue|green [--force] [--if-gen N] [--dry-run] [--wait] [--local] [--ramp STEPS] [--step T]");
	command_synopsis(&command_table[COMMAND_ROLLBACK], syn, sizeof(syn));
	ck_assert_str_eq(syn, "rollback [--force] [--if-gen N] [--local]");
	command_synopsis(&command_table[COMMAND_HEALTH], syn, sizeof(syn));
	ck_assert_str_eq(syn, "health [blue|green]");
	command_synopsis(&command_table[COMMAND_HISTORY], syn, sizeof(syn));
	ck_assert_str_eq(syn, "history [N]");
	command_synopsis(&command_table[COMMAND_SMOKE], syn, sizeof(syn));
	ck_assert_str_eq(syn, "smoke blue|green");
	command_synopsis(&command_table[COMMAND_DEPLOY], syn, sizeof(syn));
	ck_assert_str_eq(syn, "deploy --run CMD [--timeout T] [--ramp STEPS] [--step T]");
}
END_TEST

/* Reading commands are open to anyone; changing ones need the privilege. */
START_TEST(test_privilege)
{
	ck_assert(!command_table[COMMAND_STATUS].admin);
	ck_assert(!command_table[COMMAND_HEALTH].admin);
	ck_assert(!command_table[COMMAND_HISTORY].admin);
	ck_assert(!command_table[COMMAND_HELP].admin);
	ck_assert(command_table[COMMAND_SWITCH].admin);
	ck_assert(command_table[COMMAND_ROLLBACK].admin);
	ck_assert(command_table[COMMAND_SMOKE].admin);
	ck_assert(command_table[COMMAND_COMMIT].admin);
	ck_assert(command_table[COMMAND_RELOAD].admin);
}
END_TEST

static Suite *
command_suite(void)
{
	Suite *s = suite_create("command");
	TCase *tc = tcase_create("grammar");

	tcase_add_test(tc, test_every_row_round_trips);
	tcase_add_test(tc, test_typed_request);
	tcase_add_test(tc, test_ramp_flags);
	tcase_add_test(tc, test_wire_text);
	tcase_add_test(tc, test_deploy_is_client_only);
	tcase_add_test(tc, test_watch_is_client_only);
	tcase_add_loop_test(tc, test_refused, 0, (int)NELEM(refused));
	tcase_add_test(tc, test_bad_words);
	tcase_add_test(tc, test_synopsis);
	tcase_add_test(tc, test_privilege);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(command_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
