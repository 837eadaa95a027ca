#ifndef CUTOVER_SRC_DAEMON_H
#define CUTOVER_SRC_DAEMON_H

/*
 * The running daemon: workers, pools and the active route, health checks,
 * the switch state machine with its state file and audit history, the
 * control socket and signals. Everything here runs on the main thread.
 */

#include "config.h"

/*
 * Runs the daemon with cfg (ownership passes to the daemon) until SIGTERM or
 * SIGINT. Returns the process exit status: 0 after a clean stop, 1 when
 * startup failed (the cause was logged in one line).
 */
int daemon_run(struct config *cfg);

#endif
