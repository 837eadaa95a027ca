#ifndef CUTOVER_SRC_PRELUDE_H
#define CUTOVER_SRC_PRELUDE_H

/*
 * The prelude of a connection on a listener with proxy_protocol = true: the
 * PROXY protocol header is read from the raw socket, before any TLS
 * handshake or HTTP byte, within timeouts.client_header; then the socket,
 * with exactly the header consumed, becomes a session whose client address
 * is the one the header names (or the TCP peer's for v1 UNKNOWN and v2
 * LOCAL). A connection without a valid header is closed without an answer:
 * the peer is a balancer, not a client. Every function here runs on the
 * worker's thread.
 */

#include <stdbool.h>
#include <sys/socket.h>

struct worker;

/*
 * Starts reading the header of the accepted socket fd (owned from here on,
 * also on failure) from peer sa, accepted on the listener for listen[index]
 * of the worker's configuration. The connection counts as one of the
 * worker's from here on. Returns 0, or -1 when it could not be set up (fd
 * closed, nothing counted on the worker).
 */
int prelude_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    unsigned index) __attribute__((warn_unused_result));

/* Closes every connection still waiting for its header (shutdown). */
void prelude_close_all(struct worker *w);

#endif
