#ifndef CUTOVER_SRC_FDLIMIT_H
#define CUTOVER_SRC_FDLIMIT_H

/*
 * Running out of file descriptors, handled the way mature servers do: the
 * soft RLIMIT_NOFILE is raised to the hard limit at start and client
 * connections are capped so that descriptors stay for the control socket,
 * metrics and health checks; a listener whose accept() fails (EMFILE,
 * ENFILE, ...) is disabled for a short back-off instead of being retried at
 * once, with one log line per interval; and a connect that fails for lack of
 * a local resource is told apart from a server's failure.
 */

#include <stdbool.h>

struct event_base;
struct evconnlistener;
struct fdlimit_backoff;

/* Descriptors kept back from client connections, besides one per upstream
 * server (its health check): control connections, metrics, logs, the state
 * file, hooks, the workers' wake-up pipes. */
#define FDLIMIT_RESERVE 128

/* How long a listener stays disabled after a failed accept(). */
#define FDLIMIT_BACKOFF_MS 100

/* How often a repeated accept() failure is logged (with a count). */
#define FDLIMIT_LOG_INTERVAL_MS 10000

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit (logging a failure) and
 * returns the soft limit now in force (0 when it cannot be read).
 * Main thread, at start.
 */
unsigned long fdlimit_raise(void);

/*
 * The number of client connections nofile descriptors can carry: two per
 * connection (client and upstream) after FDLIMIT_RESERVE and one per server.
 * At least 1.
 */
unsigned fdlimit_connections(unsigned long nofile, unsigned long nservers);

/*
 * The client connection cap for max_connections under the descriptor limit
 * nofile with nservers upstream servers: max_connections, or less after a
 * warning naming the limit needed.
 */
unsigned fdlimit_conn_cap(unsigned long nofile, unsigned max_connections, unsigned long nservers);

/*
 * True when err is a failure of ours, not of a peer: out of descriptors
 * (EMFILE, ENFILE) or of kernel memory (ENOBUFS, ENOMEM). A connect that
 * fails so says nothing about the upstream's health.
 */
bool fdlimit_local_error(int err);

/*
 * A back-off for lst (which must outlive it): fdlimit_backoff_start(),
 * called from lst's error callback, disables lst for FDLIMIT_BACKOFF_MS and
 * then calls resume(arg), or evconnlistener_enable(lst) when resume is NULL.
 * what names the listener in the log ("control socket"); it is copied.
 * Returns NULL when out of memory. The thread of base only.
 */
struct fdlimit_backoff *fdlimit_backoff_new(struct event_base *base, struct evconnlistener *lst,
    const char *what, void (*resume)(void *), void *arg);

/*
 * accept() on the listener failed with err: disable it for the back-off and
 * log, at most once per FDLIMIT_LOG_INTERVAL_MS, how many times it failed.
 */
void fdlimit_backoff_start(struct fdlimit_backoff *b, int err);

/* True while the listener is disabled by a back-off. */
bool fdlimit_backoff_active(const struct fdlimit_backoff *b);

/* Cancels the back-off timer and frees b (not the listener). NULL is fine. */
void fdlimit_backoff_free(struct fdlimit_backoff *b);

#endif
