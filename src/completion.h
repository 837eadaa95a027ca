#ifndef CUTOVER_SRC_COMPLETION_H
#define CUTOVER_SRC_COMPLETION_H

/*
 * Shell completion for cutoverctl, generated from the command table
 * (command.c) and cutoverctl's own options, so that it cannot drift from
 * the grammar: the commands the client knows, each command's flags, the
 * colors, and the global options. "cutoverctl --completion bash" prints it;
 * make installs it as $(datadir)/bash-completion/completions/cutoverctl.
 */

#include <getopt.h>
#include <stdio.h>

/*
 * Writes the bash completion script for prog to fp. opts and shortopts are
 * the client's getopt_long tables (opts ends with a zero row; a long
 * option has a short form when its val is in shortopts): an option that takes a
 * value completes it as a file name (the socket), except "completion",
 * whose value is a shell name. Write errors show in ferror(fp).
 */
void completion_bash(FILE *fp, const char *prog, const struct option *opts, const char *shortopts);

#endif
