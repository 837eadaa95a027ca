#ifndef CUTOVER_SRC_DAEMON_H
#define CUTOVER_SRC_DAEMON_H

#ifdef CUTOVER_PURE
#error "daemon.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * The running daemon, which only wires: lifecycle, signals, the watchdog and
 * the hand-over to workers; the configuration and what it builds in a
 * generation (generation.h, the same path at start and reload); the switch
 * engine (engine.h) and the effects it is given (state file, route
 * publication, audit history, hooks, timers); the control commands
 * (commands.h) and a caller's switch (transition.h) through narrow
 * contexts. Its struct is its own. Everything here runs on the main thread.
 */

#include "config.h"

/*
 * Runs the daemon with cfg (ownership passes to the daemon) until SIGTERM or
 * SIGINT. Returns the process exit status: 0 after a clean stop, 1 when
 * startup failed (the cause was logged in one line).
 */
int daemon_run(struct config *cfg);

#endif
