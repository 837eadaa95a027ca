#ifndef CUTOVER_SRC_H2_H
#define CUTOVER_SRC_H2_H

/*
 * HTTP/2 on the front door (nghttp2). One nghttp2 session per client
 * connection on the worker's loop; every stream is one request, handed to an
 * ordinary session (session.c) over an in-process bufferevent pair as a
 * canonical HTTP/1.1 request, so a stream takes the same path as an HTTP/1.1
 * request after its head: one route load, preview, ramp bucket, pool
 * reference, idle upstream connection, retries, error answers, guard
 * counting, access log. Its answer comes back as HTTP/1.1 over the pair and
 * goes out as HEADERS and DATA. Every function here runs on the worker thread.
 */

#include <stdbool.h>
#include <stddef.h>

#include <event2/bufferevent.h>

struct session;
struct worker;

/* Why a connection got GOAWAY (label "reason" of cutover_h2_goaway_total). */
enum h2_goaway_reason {
	H2_GOAWAY_RAPID_RESET,  /* streams reset faster than allowed (CVE-2023-44487) */
	H2_GOAWAY_CONTINUATION, /* too many CONTINUATION frames (CVE-2024-28182) */
	H2_GOAWAY_SETTINGS,     /* SETTINGS flood */
	H2_GOAWAY_PING,         /* PING flood */
	H2_GOAWAY_HEADER_LIST,  /* header list over limits.header_size (HPACK bomb) */
	H2_GOAWAY_STREAMS,      /* streams over limits.h2_max_streams, again and again */
	H2_GOAWAY_STALL,        /* the client took no data within timeouts.client_idle */
	H2_GOAWAY_PROTOCOL,     /* any other protocol or flow-control error of the client's */
	H2_GOAWAY_SHUTDOWN,     /* stop, reload or restart of the worker */
	H2_GOAWAY_IDLE,         /* no stream within timeouts.client_idle */
	H2_GOAWAY_REASONS
};

static inline const char *
h2_goaway_reason_name(enum h2_goaway_reason r)
{
	static const char *const names[H2_GOAWAY_REASONS] = {
		"rapid_reset", "continuation_flood", "settings_flood", "ping_flood",
		"header_list", "stream_limit", "stall", "protocol_error", "shutdown", "idle",
	};

	return (unsigned)r < H2_GOAWAY_REASONS ? names[r] : "unknown";
}

/* The HTTP/2 connection preface a prior-knowledge (h2c) client starts with. */
#define H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24

/*
 * Takes over a client connection that speaks HTTP/2: bev (TLS after an "h2"
 * ALPN, or plain with fd >= 0 for h2c), whatever is already in its input
 * (the preface), the client's address as the session saw it (peer,
 * client_ip) and whether it is TLS. The new connection owns bev and fd from
 * here on, also on failure. Returns 0, or -1 when it could not be set up
 * (everything closed).
 */
int h2_conn_new(struct worker *w, struct bufferevent *bev, int fd, const struct sockaddr *peer,
    socklen_t peerlen, bool tls);

/*
 * Graceful shutdown of the worker's HTTP/2 connections: GOAWAY now, open
 * streams finish (bounded by switch.drain_timeout as every session is), then
 * close. With force, close every one now.
 */
void h2_shutdown_all(struct worker *w, bool force);

/* A stream's session ended (session.c calls it from session_free). */
void h2_stream_session_gone(void *stream);

#endif
