#ifndef CUTOVER_SRC_SESSION_H
#define CUTOVER_SRC_SESSION_H

/*
 * A session is one client connection and the exchanges proxied over it: read
 * a request head, check it, pick the active color's server, send the
 * re-serialised request upstream, stream the bodies both ways with
 * backpressure, relay the response, then wait for the next request
 * (keep-alive, pipelining) or close. Every function here runs on the
 * session's worker thread.
 */

#include <stdbool.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "color.h"

struct tls_server;
struct worker;

/*
 * Starts a session on an accepted client socket fd (the session owns fd from
 * here on, also on failure); tls is the listener's TLS context or NULL for
 * plain HTTP. Returns 0, or -1 when it could not be set up.
 */
int session_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    struct tls_server *tls, bool http2);

/*
 * An HTTP/2 stream's session (h2.c): bev is its end of a bufferevent pair
 * (the session frees it), peer the connection's client, secure whether the
 * connection is TLS, owner the stream, told through h2_stream_session_gone()
 * when the session ends. The session reads one HTTP/1.1 request from bev and
 * answers it like any other. NULL when out of memory (bev not freed then).
 */
struct bufferevent;
struct session *session_new_stream(struct worker *w, struct bufferevent *bev,
    const struct sockaddr *peer, socklen_t peerlen, bool secure, void *owner);

/*
 * Whether a stream's session answered completely and waits for its next
 * request with nothing buffered: it may serve another stream.
 */
bool session_stream_reusable(const struct session *s);

/* The stream's session now belongs to owner (told when it ends). */
void session_stream_set_owner(struct session *s, void *owner);

/* Ends a stream's session now, without telling its owner. */
void session_stream_abort(struct session *s);

/*
 * Shutdown of the worker's sessions: sessions idle between requests close
 * now; busy ones close when their current exchange ends. With force, every
 * session is closed now.
 */
void session_shutdown_all(struct worker *w, bool force);

/*
 * The worker's end-of-turn event: writes the output of every session that
 * queued some during this loop turn. Worker thread.
 */
void session_flush_cb(evutil_socket_t fd, short what, void *arg);

/* Closes every upgraded tunnel of this worker on color. */
void session_close_tunnels(struct worker *w, enum color color);

/* Frees the worker's session slots; every session must be freed already. */
void session_cache_free(struct worker *w);

#endif
