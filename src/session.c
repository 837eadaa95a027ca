#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__)
#define SESSION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SESSION_ASAN 1
#endif
#endif
#ifdef SESSION_ASAN
#include <sanitizer/asan_interface.h>
#define SLOT_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define SLOT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLOT_POISON(p, n)   ((void)(p), (void)(n))
#define SLOT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "accesslog.h"
#include "addr.h"
#include "bucket.h"
#include "clock.h"
#include "fdlimit.h"
#include "h2.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "reader.h"
#include "session.h"
#include "splice.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"
#include "xff.h"

/*
 * Backpressure: a side's output buffer may hold at most BUF_HIGH bytes; past
 * that we stop reading the other side until the output drains to BUF_LOW.
 * Input buffers are capped the same way through read watermarks, so a
 * session never holds more than a few hundred KiB whatever the body size.
 */
#define BUF_HIGH (256 * 1024)
#define BUF_LOW (64 * 1024)
/* An HTTP/2 stream's session buffers less: a connection carries up to
 * limits.h2_max_streams of them, and h2.c buffers each stream's answer too. */
#define STREAM_HIGH (64 * 1024)
#define STREAM_LOW  (16 * 1024)
#define HIGH(s)     ((s)->stream ? STREAM_HIGH : BUF_HIGH)
#define LOW(s)      ((s)->stream ? STREAM_LOW : BUF_LOW)
/* Never pump into less room than this: a chunk's framing is never split, so
 * a tiny allowance could make no progress and stall the exchange. */
#define MIN_ROOM 4096

enum session_state {
	S_WAIT_HEAD,  /* waiting for a request head */
	S_CONNECTING, /* request parsed, upstream connect in progress */
	S_EXCHANGE,   /* request going up, response coming down */
	S_TUNNEL,     /* after 101: bytes both ways */
	S_CLOSING,    /* flushing the client's output, then close */
};

enum resp_state { R_WAIT_HEAD, R_BODY };

enum timer_kind { T_NONE, T_HANDSHAKE, T_HEADER, T_IDLE, T_PARK, T_RESPONSE };

/*
 * A plain keep-alive connection idle for PARK_DELAY_MS gives back its
 * bufferevent, buffers and head buffer and waits with one event (the timer,
 * re-assigned to the socket) until its next byte or its idle timeout: idle
 * connections cost the session alone, as in nginx. Connections that come
 * back sooner keep everything, so busy keep-alive traffic never pays for it.
 */
#define PARK_DELAY_MS 50

/*
 * Interim (1xx) answers relayed per exchange: at most this many, and at most
 * limits.header_size bytes of heads in all (a final head has the same
 * bound). Past either, the exchange ends with 502. Like HAProxy and nginx,
 * which relay a handful at most.
 */
#define MAX_INTERIM 8

/*
 * What only an active connection needs: the exchange in progress and its
 * buffers. A parked connection gives it back (see PARK_DELAY_MS).
 */
struct exchange {
	struct upstream_conn *up;
	struct pool *pool; /* reference held for the current request */
	struct server *server;
	enum color color;
	/* The current request's client: the peer, or behind trusted proxies
	 * the last untrusted hop of X-Forwarded-For (preview, access log). */
	char req_client_ip[INET6_ADDRSTRLEN];
	struct sockaddr_storage req_client;

	/* Current request. */
	struct evbuffer *req_head; /* re-serialised head, kept until a response
	                              byte arrives so a stale reused connection can
	                              be retried */
	size_t head_scanned;
	size_t line_scanned; /* bytes searched for the request-line's LF */
	bool line_ok;        /* the request-line of the head in progress is valid */
	bool head_method;
	int client_minor;
	bool client_keepalive;
	bool want_upgrade;
	bool got_bytes; /* some bytes of the next request arrived */
	enum http_framing req_framing;
	uint64_t req_remaining;
	struct http_chunked req_chunked;
	bool req_done;
	bool req_body_sent; /* a body byte went upstream: no retry */
	bool req_blocked;   /* client reading paused: upstream output full */
	unsigned attempts;
	bool reused;
	bool no_reuse; /* retrying after a stale idle connection: connect fresh */
	bool timed_out;

	/* Current response. */
	enum resp_state resp_state;
	size_t resp_scanned;
	bool resp_started; /* the response head went to the client */
	bool resp_blocked; /* upstream reading paused: client output full */
	bool out_blocked;  /* next request waits: client output above BUF_HIGH */
	unsigned interim;       /* 1xx answers relayed in this exchange */
	size_t interim_bytes;   /* and their head bytes */
	enum http_framing resp_in;
	enum http_framing resp_out;
	uint64_t resp_remaining;
	struct http_chunked resp_chunked;
	bool up_keepalive;
	bool close_after;
	int status;
	bool up_closing; /* tunnel: close upstream once its output drained */
	uint64_t t_start_us; /* when the request head was accepted */
	uint64_t resp_bytes; /* response body bytes queued to the client */
	char *req_line;      /* "METHOD target HTTP/1.x" for the access log, or NULL */
	/* The Set-Cookie value the response carries (a ramp gave this
	 * cookie-less request a new id), or "". */
	char set_cookie[160];
	struct spliced *sp; /* the body goes through a pipe (see start_splicing) */
};

/*
 * A Content-Length body relayed with splice(2): upstream socket -> pipe ->
 * client socket, with our own events on both sockets (the bufferevents'
 * buffers are empty and their readers off meanwhile).
 */
struct spliced {
	struct splice_pipe *pipe;
	struct event *rev, *wev; /* upstream readable, client writable */
	bool rev_on, wev_on;
};

/* A client's TCP address: what the accept (or the PROXY header) gives. */
union peer_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
};

struct session {
	struct worker *w;
	TAILQ_ENTRY(session) link;
	TAILQ_ENTRY(session) flink; /* in w->flushq while flush_queued */
	bool flush_queued;
	struct bufferevent *cbev; /* NULL while parked */
	struct reader *crd;       /* reads cbev's plain socket; NULL for TLS and while parked */
	evutil_socket_t fd;       /* plain connections: ours to close; TLS: -1 */
	bool parked;
	enum session_state state;
	struct event *timer;
	enum timer_kind timer_kind;
	unsigned busy; /* callback nesting depth */
	bool dead;     /* free when busy drops to 0 */
	char client_ip[INET6_ADDRSTRLEN];           /* the peer (the PROXY header's client where there is one) */
	union peer_addr peer;
	bool tls;       /* the client speaks TLS to us */
	bool tls_dirty; /* TLS connection failed: no close_notify */
	bool secure;    /* the client's connection is TLS (X-Forwarded-Proto, Secure cookies) */
	bool h2c;       /* plain listener with http2: an HTTP/2 preface hands the connection over */
	bool served;    /* a request was read on this connection */
	bool spec;      /* in the read right after accept: reading is not in epoll yet */
	bool handed_over; /* the connection went to h2.c: free nothing of it, count nothing */
	/* An HTTP/2 stream's session: cbev is our end of a bufferevent pair
	 * whose other end is the stream's (h2.c), fd is -1; NULL otherwise. */
	void *h2s;
	bool stream; /* an HTTP/2 stream's session (h2s may be cleared first) */
	struct exchange *x; /* NULL while parked */
};

/*
 * Sessions, each with its timer event behind it, come from per-worker chunks
 * of SESSION_CHUNK slots and go back to a free list. Long-lived idle
 * connections so sit densely together instead of between the short-lived
 * buffers of busy ones, and a worker's memory follows its connections (as
 * nginx's connection array does). Freed slots are poisoned for ASan.
 */
#define SESSION_CHUNK 64
#define ALIGN16(n)    (((n) + 15) & ~(size_t)15)

struct session_chunk {
	struct session_chunk *next;
};

struct session_cache {
	struct session_chunk *chunks;
	void *free;  /* free slots, linked through their first word */
	size_t slot; /* bytes per slot: the session, then its event */
};

static struct session *session_alloc(struct worker *w);
static void session_release(struct session *s);

static void client_readcb(struct bufferevent *bev, void *arg);
static void client_writecb(struct bufferevent *bev, void *arg);
static void client_eventcb(struct bufferevent *bev, short what, void *arg);
static void up_readcb(struct bufferevent *bev, void *arg);
static void up_writecb(struct bufferevent *bev, void *arg);
static void up_eventcb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void session_enter(struct session *s);
static void session_leave(struct session *s);
static void session_kill(struct session *s);
static void flush_out(struct bufferevent *bev, bool plain, bool libevent_writes);
static void write_now(struct bufferevent *bev);
static void session_free(struct session *s);
static void close_after_flush(struct session *s);
static void read_head(struct session *s);
static void start_upstream(struct session *s, const struct server *skip);
static void upstream_ready(struct session *s);
static void connect_failed(struct session *s, bool timeout);
static void pump_request(struct session *s);
static void read_response_head(struct session *s);
static void pump_response(struct session *s);
static bool start_splicing(struct session *s);
static void stop_splicing(struct session *s, bool keep_bytes);
static void pump_spliced(struct session *s, bool readable, bool writable);
static void spliced_cb(evutil_socket_t fd, short what, void *arg);
static void response_done(struct session *s);
static void start_tunnel(struct session *s);
static void pump_tunnel(struct session *s, bool from_client);
static void respond_error(struct session *s, int status, const char *why);
static void drop_upstream(struct session *s, bool reusable);
static void response_head_failed(struct session *s, bool timeout);
static void arm_timer(struct session *s, enum timer_kind kind);
static void set_req_client(struct session *s);
static void arm_timer_ms(struct session *s, enum timer_kind kind, uint64_t ms);
static int client_bev_setup(struct session *s);
static void park(struct session *s);
static void parked_cb(evutil_socket_t fd, short what, void *arg);
static void set_timeouts(struct bufferevent *bev, struct reader *r, uint64_t read_ms, uint64_t write_ms);
static void count_response(struct session *s, int status);
static void release_pool(struct session *s);
static bool preview_color(struct session *s, struct http_head *req, enum color *color);
static enum color ramp_color(struct session *s, const struct http_head *req, const struct route *rt);
static void forwarded_for(struct session *s, struct http_head *req);
static void set_req_line(struct session *s, const struct http_head *req);
static void log_access(struct session *s, uint64_t us);
static void hand_over(struct session *s);

int
session_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen,
    struct tls_server *tls, bool http2)
{
	struct session *s;

	if ((s = session_alloc(w)) == NULL)
		goto fail;
	s->w = w;
	event_assign(s->timer, w->base, -1, 0, timer_cb, s);
	s->fd = -1;
	if ((s->x = calloc(1, sizeof(*s->x))) == NULL)
		goto fail;
	memcpy(&s->peer, sa, salen < sizeof(s->peer) ? salen : sizeof(s->peer));
	/* TCP_NODELAY comes from the listening socket (see listener_open). */
	addr_ip_string(sa, s->client_ip, sizeof(s->client_ip));
	set_req_client(s);
	memcpy(s->x->req_client_ip, s->client_ip, sizeof(s->x->req_client_ip));
	if (tls != NULL) {
		SSL *ssl = tls_server_ssl(tls);

		if (ssl == NULL)
			goto fail;
		/* The bufferevent owns ssl (and fd) from here on. */
		s->cbev = bufferevent_openssl_socket_new(w->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
		if (s->cbev == NULL)
			goto fail; /* libevent freed ssl (BEV_OPT_CLOSE_ON_FREE) */
		bufferevent_openssl_set_allow_dirty_shutdown(s->cbev, 1);
		s->tls = true;
		s->secure = true;
	} else {
		s->h2c = http2;
		/* The session closes a plain socket itself (it outlives its
		 * bufferevent while parked). */
		s->fd = fd;
	}
	fd = -1;
	if (client_bev_setup(s) < 0)
		goto fail;
	s->state = S_WAIT_HEAD;
	TAILQ_INSERT_TAIL(&w->sessions, s, link);
	w->nconns++;
	stat_inc(&w->stats.connections);
	arm_timer(s, s->tls ? T_HANDSHAKE : T_HEADER);
	/* The request usually came with the connection: read it now rather
	 * than after an epoll_ctl and an epoll_wait (see read_head). */
	if (s->crd != NULL) {
		session_enter(s);
		s->spec = true;
		reader_read_now(s->crd);
		s->spec = false;
		session_leave(s);
	}
	return 0;
fail:
	log_warn("%s: cannot set up a session: %s", __func__, strerror(errno));
	if (s != NULL) {
		if (s->x != NULL && s->x->req_head != NULL)
			evbuffer_free(s->x->req_head);
		reader_free(s->crd);
		if (s->cbev != NULL)
			bufferevent_free(s->cbev);
		if (s->fd >= 0)
			close(s->fd);
		free(s->x);
		session_release(s);
	}
	if (fd >= 0)
		close(fd);
	return -1;
}

struct session *
session_new_stream(struct worker *w, struct bufferevent *bev, const struct sockaddr *peer,
    socklen_t peerlen, bool secure, void *owner)
{
	struct session *s;

	if ((s = session_alloc(w)) == NULL)
		return NULL;
	s->w = w;
	event_assign(s->timer, w->base, -1, 0, timer_cb, s);
	s->fd = -1;
	if ((s->x = calloc(1, sizeof(*s->x))) == NULL) {
		session_release(s);
		return NULL;
	}
	memcpy(&s->peer, peer, peerlen < sizeof(s->peer) ? peerlen : sizeof(s->peer));
	addr_ip_string(peer, s->client_ip, sizeof(s->client_ip));
	set_req_client(s);
	memcpy(s->x->req_client_ip, s->client_ip, sizeof(s->x->req_client_ip));
	s->cbev = bev;
	s->secure = secure;
	s->h2s = owner;
	s->stream = true;
	if (client_bev_setup(s) < 0) {
		if (s->x->req_head != NULL)
			evbuffer_free(s->x->req_head);
		free(s->x);
		session_release(s);
		return NULL;
	}
	s->state = S_WAIT_HEAD;
	TAILQ_INSERT_TAIL(&w->sessions, s, link);
	arm_timer(s, T_HEADER);
	return s;
}

bool
session_stream_reusable(const struct session *s)
{
	return !s->dead && s->state == S_WAIT_HEAD && s->x != NULL && !s->x->got_bytes && !s->x->close_after &&
	    s->x->up == NULL && evbuffer_get_length(bufferevent_get_input(s->cbev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0;
}

void
session_stream_set_owner(struct session *s, void *owner)
{
	s->h2s = owner;
}

void
session_stream_abort(struct session *s)
{
	s->h2s = NULL;
	session_enter(s);
	session_kill(s);
	session_leave(s);
}

/*
 * The connection speaks HTTP/2 (ALPN "h2", or the h2c preface): h2.c takes
 * its bufferevent, socket and count; this session ends without touching
 * them.
 */
static void
hand_over(struct session *s)
{
	struct bufferevent *bev = s->cbev;
	int fd = s->fd;

	reader_free(s->crd);
	s->crd = NULL;
	bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
	bufferevent_set_timeouts(bev, NULL, NULL);
	s->cbev = NULL;
	s->fd = -1;
	s->tls = false; /* h2.c closes it */
	s->handed_over = true;
	session_kill(s);
	(void)h2_conn_new(s->w, bev, fd, &s->peer.sa, sizeof(s->peer), s->secure);
}

/*
 * The client's bufferevent (a plain one over s->fd unless it exists already,
 * as a TLS one does) and its head buffer, reading.
 */
static int
client_bev_setup(struct session *s)
{
	struct worker *w = s->w;
	size_t rhigh;

	if (s->x == NULL && (s->x = calloc(1, sizeof(*s->x))) == NULL)
		return -1;
	if (s->cbev == NULL && (s->cbev = bufferevent_socket_new(w->base, s->fd, 0)) == NULL)
		return -1;
	/* A plain socket is read by a reader: no FIONREAD per read. */
	if (s->fd >= 0 && s->crd == NULL && (s->crd = reader_new(s->cbev)) == NULL)
		return -1;
	if (s->x->req_head == NULL && (s->x->req_head = evbuffer_new()) == NULL)
		return -1;
	rhigh = w->cfg->limits.header_size + 1 > HIGH(s) ? w->cfg->limits.header_size + 1 : HIGH(s);
	reader_set_high(s->crd, s->cbev, rhigh);
	bufferevent_setwatermark(s->cbev, EV_WRITE, LOW(s), 0);
	/* Whole bodies in one read/write where the kernel allows it (libevent
	 * defaults to 16 KiB per call). */
	bufferevent_set_max_single_read(s->cbev, BUF_HIGH);
	bufferevent_set_max_single_write(s->cbev, BUF_HIGH);
	bufferevent_setcb(s->cbev, client_readcb, client_writecb, client_eventcb, s);
	/* Writing is enabled by default; enabling it on an empty output would
	 * only cost a spurious wake-up. TLS needs both for its handshake. */
	if (s->fd < 0)
		bufferevent_enable(s->cbev, EV_READ | EV_WRITE);
	else {
		reader_enable(s->crd, s->cbev);
		bufferevent_disable(s->cbev, EV_WRITE); /* direct writes: see flush_out() */
	}
	return 0;
}

/* Idle since PARK_DELAY_MS, nothing buffered either way: see PARK_DELAY_MS. */
static bool
parkable(const struct session *s)
{
	return s->fd >= 0 && !s->dead && s->cbev != NULL && s->x != NULL && s->state == S_WAIT_HEAD &&
	    !s->x->got_bytes && !s->x->out_blocked && !s->flush_queued && s->x->up == NULL &&
	    evbuffer_get_length(bufferevent_get_input(s->cbev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0 &&
	    evbuffer_get_length(s->x->req_head) == 0;
}

static void
park(struct session *s)
{
	uint64_t ms = s->w->cfg->timeouts.client_idle_ms - PARK_DELAY_MS;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	/* Disabled first: its events leave the socket now even if libevent
	 * frees the bufferevent itself later. */
	reader_free(s->crd);
	s->crd = NULL;
	bufferevent_disable(s->cbev, EV_READ | EV_WRITE);
	bufferevent_free(s->cbev);
	s->cbev = NULL;
	evbuffer_free(s->x->req_head);
	free(s->x->req_line);
	free(s->x);
	s->x = NULL;
	evtimer_del(s->timer);
	event_assign(s->timer, s->w->base, s->fd, EV_READ, parked_cb, s);
	s->timer_kind = T_IDLE;
	s->parked = true;
	event_add(s->timer, &tv);
}

/* A parked connection's next byte (or its EOF), or its idle timeout. */
static void
parked_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	session_enter(s);
	s->parked = false;
	event_assign(s->timer, s->w->base, -1, 0, timer_cb, s);
	if (what & EV_TIMEOUT) {
		session_kill(s);
	} else if (client_bev_setup(s) < 0) {
		log_warn("%s: cannot resume a connection from %s: %s", __func__, s->client_ip,
		    strerror(errno));
		session_kill(s);
	} else {
		/* The bufferevent reads what is waiting on its first turn. */
		set_timeouts(s->cbev, s->crd, 0, s->w->cfg->timeouts.client_idle_ms);
		arm_timer(s, T_IDLE);
	}
	session_leave(s);
}

/* The request's client starts as the peer (trusted proxies may change it). */
static void
set_req_client(struct session *s)
{
	memset(&s->x->req_client, 0, sizeof(s->x->req_client));
	memcpy(&s->x->req_client, &s->peer, sizeof(s->peer));
}

void
session_shutdown_all(struct worker *w, bool force)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->dead)
			continue;
		session_enter(s);
		if (force || s->x == NULL /* parked */ ||
		    (s->state == S_WAIT_HEAD && !s->x->got_bytes && !s->x->out_blocked))
			session_kill(s);
		else if (s->x->out_blocked)
			close_after_flush(s); /* its answers still go out */
		else
			s->x->close_after = true;
		session_leave(s);
	}
}

/*
 * Lifetime: callbacks bracket their work with session_enter/leave; code deep
 * inside calls session_kill(), which only marks the session, so nothing
 * touches freed memory on the way back up.
 */
static void
session_enter(struct session *s)
{
	s->busy++;
}

static void
session_leave(struct session *s)
{
	if (--s->busy > 0)
		return;
	if (s->dead) {
		session_free(s);
		return;
	}
	/*
	 * What this callback queued goes out at the end of the loop turn, in
	 * one writev per side, after every other ready callback ran: writes to
	 * many connections are batched, which matters most when a peer shares
	 * the CPU (each write may wake it).
	 */
	if (!s->flush_queued && s->cbev != NULL &&
	    (evbuffer_get_length(bufferevent_get_output(s->cbev)) > 0 ||
	        (s->x->up != NULL && evbuffer_get_length(bufferevent_get_output(s->x->up->bev)) > 0))) {
		struct worker *w = s->w;

		s->flush_queued = true;
		TAILQ_INSERT_TAIL(&w->flushq, s, flink);
		if (!event_pending(w->flush_ev, EV_TIMEOUT, NULL))
			event_active(w->flush_ev, EV_TIMEOUT, 1);
	}
}

void
session_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct session *s;

	(void)fd;
	(void)what;
	while ((s = TAILQ_FIRST(&w->flushq)) != NULL) {
		TAILQ_REMOVE(&w->flushq, s, flink);
		s->flush_queued = false;
		if (s->dead)
			continue;
		flush_out(s->cbev, s->fd >= 0, s->x->resp_blocked || s->x->out_blocked || s->state == S_CLOSING);
		if (s->x->up != NULL)
			flush_out(s->x->up->bev, s->x->up->server->pool->tls == NULL,
			    s->x->req_blocked || s->x->up_closing);
	}
}

/*
 * Writes bev's output now instead of on the next loop turn. libevent would
 * arm EPOLLOUT, wait for it, write, and disarm it again: two epoll_ctl calls
 * and a wake-up per response in each direction. Only when the kernel does
 * not take everything (or for TLS, or while a writecb is awaited: a blocked
 * pump, a closing flush) is writing left to libevent, which calls the
 * writecb once drained; the writecbs then return to this direct mode.
 */
static void
flush_out(struct bufferevent *bev, bool plain, bool libevent_writes)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	if (evbuffer_get_length(out) == 0)
		return;
	if (!plain || libevent_writes || (bufferevent_get_enabled(bev) & EV_WRITE)) {
		/* libevent's TLS writer makes one record (one SSL_write) per
		 * buffer chain: head and a small body become one record when
		 * they sit in one chain. */
		if (!plain && evbuffer_get_length(out) <= 16384)
			(void)evbuffer_pullup(out, -1);
		if (!(bufferevent_get_enabled(bev) & EV_WRITE))
			bufferevent_enable(bev, EV_WRITE);
		return;
	}
	write_now(bev);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
}

/* Writes as much of a plain socket bufferevent's output as the kernel takes. */
static void
write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	/* A bufferevent keeps the start of its output frozen except while it
	 * writes itself. An error is left for libevent's own write to report. */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write_atmost(out, bufferevent_getfd(bev), -1);
	evbuffer_freeze(out, 1);
}

static void
session_kill(struct session *s)
{
	if (s->dead)
		return;
	s->dead = true;
	if (s->cbev != NULL) {
		reader_disable(s->crd, s->cbev);
		bufferevent_disable(s->cbev, EV_WRITE);
	}
	if (s->x != NULL && s->x->up != NULL) {
		reader_disable(s->x->up->rd, s->x->up->bev);
		bufferevent_disable(s->x->up->bev, EV_WRITE);
	}
	evtimer_del(s->timer);
}

static void
session_free(struct session *s)
{
	struct worker *w = s->w;
	bool handed;

	if (s->x != NULL) {
		drop_upstream(s, false);
		release_pool(s);
	}
	/* A clean TLS close keeps the session resumable (OpenSSL drops
	 * sessions of connections freed without close_notify). */
	if (s->tls && !s->tls_dirty)
		SSL_shutdown(bufferevent_openssl_get_ssl(s->cbev));
	event_del(s->timer);
	if (s->x != NULL && s->x->req_head != NULL)
		evbuffer_free(s->x->req_head);
	/* Both events leave the socket before it closes. */
	reader_free(s->crd);
	if (s->cbev != NULL)
		bufferevent_free(s->cbev);
	if (s->fd >= 0)
		close(s->fd);
	if (s->x != NULL)
		free(s->x->req_line);
	free(s->x);
	if (s->flush_queued)
		TAILQ_REMOVE(&w->flushq, s, flink);
	TAILQ_REMOVE(&w->sessions, s, link);
	if (s->stream) {
		void *st = s->h2s;

		session_release(s);
		if (st != NULL)
			h2_stream_session_gone(st);
		return;
	}
	/* A stream's session is no connection; a handed-over one is counted
	 * by its new owner. */
	handed = s->handed_over;
	session_release(s);
	if (!handed)
		worker_session_closed(w, NULL);
}

static struct session *
session_alloc(struct worker *w)
{
	struct session_cache *c = w->scache;
	struct session *s;
	void *slot;

	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		c->slot = ALIGN16(ALIGN16(sizeof(struct session)) + event_get_struct_event_size());
		w->scache = c;
	}
	if (c->free == NULL) {
		struct session_chunk *k;
		char *base;
		size_t i;

		if ((k = malloc(ALIGN16(sizeof(*k)) + SESSION_CHUNK * c->slot)) == NULL)
			return NULL;
		k->next = c->chunks;
		c->chunks = k;
		base = (char *)k + ALIGN16(sizeof(*k));
		for (i = SESSION_CHUNK; i-- > 0;) {
			slot = base + i * c->slot;
			*(void **)slot = c->free;
			c->free = slot;
			SLOT_POISON(slot, c->slot);
		}
	}
	slot = c->free;
	SLOT_UNPOISON(slot, c->slot);
	c->free = *(void **)slot;
	memset(slot, 0, c->slot);
	s = slot;
	s->timer = (struct event *)((char *)slot + ALIGN16(sizeof(struct session)));
	return s;
}

static void
session_release(struct session *s)
{
	struct session_cache *c = s->w->scache;

	*(void **)(void *)s = c->free;
	c->free = s;
	SLOT_POISON(s, c->slot);
}

void
session_cache_free(struct worker *w)
{
	struct session_cache *c = w->scache;
	struct session_chunk *k, *next;

	if (c == NULL)
		return;
	for (k = c->chunks; k != NULL; k = next) {
		next = k->next;
		SLOT_UNPOISON(k, ALIGN16(sizeof(*k)) + SESSION_CHUNK * c->slot);
		free(k);
	}
	free(c);
	w->scache = NULL;
}

/* Stops reading the client and closes once everything queued was written. */
static void
close_after_flush(struct session *s)
{
	s->state = S_CLOSING;
	evtimer_del(s->timer);
	drop_upstream(s, false);
	reader_disable(s->crd, s->cbev);
	/* The last answer usually fits the socket buffer: write it now and
	 * close without another loop turn. */
	if (s->fd >= 0 && !(bufferevent_get_enabled(s->cbev) & EV_WRITE))
		write_now(s->cbev);
	if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0) {
		session_kill(s);
		return;
	}
	/* writecb fires at an empty buffer now; a stalled client is cut off. */
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	set_timeouts(s->cbev, s->crd, 0, s->w->cfg->timeouts.client_idle_ms);
	bufferevent_enable(s->cbev, EV_WRITE);
}

static void
set_timeouts(struct bufferevent *bev, struct reader *r, uint64_t read_ms, uint64_t write_ms)
{
	struct timeval rd, wr;

	rd.tv_sec = (time_t)(read_ms / 1000);
	rd.tv_usec = (suseconds_t)((read_ms % 1000) * 1000);
	wr.tv_sec = (time_t)(write_ms / 1000);
	wr.tv_usec = (suseconds_t)((write_ms % 1000) * 1000);
	reader_set_timeouts(r, bev, read_ms ? &rd : NULL, write_ms ? &wr : NULL);
}

static void
arm_timer(struct session *s, enum timer_kind kind)
{
	uint64_t ms = kind == T_IDLE        ? s->w->cfg->timeouts.client_idle_ms
	            : kind == T_HANDSHAKE ? s->w->cfg->timeouts.handshake_ms
	            : kind == T_RESPONSE  ? s->w->cfg->timeouts.response_ms
	                                  : s->w->cfg->timeouts.client_header_ms;

	/* Plain idle connections park first (see PARK_DELAY_MS). */
	if (kind == T_IDLE && s->fd >= 0 && ms > PARK_DELAY_MS) {
		kind = T_PARK;
		ms = PARK_DELAY_MS;
	}
	arm_timer_ms(s, kind, ms);
}

static void
arm_timer_ms(struct session *s, enum timer_kind kind, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	s->timer_kind = kind;
	evtimer_add(s->timer, &tv);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)what;
	session_enter(s);
	if (s->timer_kind == T_HANDSHAKE) {
		log_debug("TLS handshake with %s timed out", s->client_ip);
		s->tls_dirty = true;
		session_kill(s);
	} else if (s->timer_kind == T_PARK) {
		if (parkable(s))
			park(s);
		else if (s->state == S_WAIT_HEAD) /* the rest of its idle time */
			arm_timer_ms(s, T_IDLE, s->w->cfg->timeouts.client_idle_ms - PARK_DELAY_MS);
	} else if (s->timer_kind == T_RESPONSE) {
		/* Interim answers kept coming, but no final one in time. */
		if (s->state == S_EXCHANGE && s->x->resp_state == R_WAIT_HEAD && s->x->up != NULL)
			response_head_failed(s, true);
	} else if (s->state == S_WAIT_HEAD) {
		/* An idle connection, or one that never sent a byte, just closes;
		 * a request that started but did not finish gets 408. */
		if (s->x->got_bytes || evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0)
			respond_error(s, 408, "request header timeout");
		else
			session_kill(s);
	}
	session_leave(s);
}

/* Client side. */

static void
client_readcb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	session_enter(s);
	switch (s->state) {
	case S_WAIT_HEAD:
		read_head(s);
		break;
	case S_EXCHANGE:
		if (!s->x->req_done)
			pump_request(s);
		break;
	case S_TUNNEL:
		pump_tunnel(s, true);
		break;
	case S_CLOSING:
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	case S_CONNECTING:
		break;
	}
	session_leave(s);
}

static void
client_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	session_enter(s);
	if (s->state == S_CLOSING) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_kill(s);
	} else if (s->x->out_blocked) {
		/* The client took its backlog down to BUF_LOW: the next
		 * pipelined request may start (from the loop, see
		 * response_done). */
		s->x->out_blocked = false;
		arm_timer(s, T_IDLE);
		reader_enable(s->crd, bev);
		if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
			bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	} else if (s->x->resp_blocked && s->x->up != NULL) {
		s->x->resp_blocked = false;
		reader_enable(s->x->up->rd, s->x->up->bev);
		if (s->state == S_TUNNEL)
			pump_tunnel(s, false);
		else
			pump_response(s);
	}
	if (!s->dead && s->state != S_CLOSING && s->fd >= 0 &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to direct writes */
	session_leave(s);
}

static void
client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	session_enter(s);
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		s->tls_dirty = true;
	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done: HTTP/2 when ALPN chose it, else the
		 * request head has its own clock. */
		if (tls_alpn_is_h2(bufferevent_openssl_get_ssl(bev)))
			hand_over(s);
		else if (s->timer_kind == T_HANDSHAKE)
			arm_timer(s, T_HEADER);
	} else if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_EXCHANGE && !s->x->req_done && !s->x->resp_started)
			respond_error(s, 408, "request body timeout");
		else
			session_kill(s);
	} else if ((what & BEV_EVENT_EOF) && (s->state == S_EXCHANGE || s->state == S_CONNECTING) &&
	    s->x->req_done) {
		/* A half-closed client still gets its answer. */
		s->x->close_after = true;
		reader_disable(s->crd, s->cbev);
	} else if ((what & BEV_EVENT_EOF) && s->state == S_TUNNEL && s->x->up != NULL) {
		pump_tunnel(s, true);
		s->x->up_closing = true;
		reader_disable(s->crd, s->cbev);
		bufferevent_setwatermark(s->x->up->bev, EV_WRITE, 0, 0);
		if (evbuffer_get_length(bufferevent_get_output(s->x->up->bev)) == 0)
			session_kill(s);
	} else {
		session_kill(s);
	}
	session_leave(s);
}

/*
 * Waits for a whole request head (at most limits.header_size bytes), checks
 * it, re-serialises it for the upstream and starts the exchange.
 */
static void
read_head(struct session *s)
{
	struct worker *w = s->w;
	const struct config *cfg = w->cfg;
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	size_t len = evbuffer_get_length(in), n, hl;
	struct http_head req;
	enum http_parse_result r;
	const char *data;
	enum color pcolor = COLOR_BLUE;
	struct route *rt;
	bool preview;

	if (len == 0)
		return;
	/*
	 * No new exchange while the client has not taken the previous answers:
	 * a client that pipelines and never reads would otherwise have every
	 * bodyless or error answer queued without bound. Reading stops; the
	 * writecb resumes at BUF_LOW, and the write timeout (client_idle,
	 * counted from the last byte the client took) ends a client that
	 * never drains.
	 */
	if (evbuffer_get_length(bufferevent_get_output(s->cbev)) >= HIGH(s)) {
		s->x->out_blocked = true;
		reader_disable(s->crd, s->cbev);
		/* Not idle: a slow reader is judged by its progress alone. */
		evtimer_del(s->timer);
		s->timer_kind = T_NONE;
		return;
	}
	if (s->h2c && !s->served) {
		/* A plain listener with http2: a client that starts with the
		 * HTTP/2 preface speaks h2c (prior knowledge). */
		size_t m = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;

		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)m);
		if (memcmp(data, H2_PREFACE, m) == 0) {
			if (m == H2_PREFACE_LEN)
				hand_over(s);
			else if (!s->x->got_bytes) {
				s->x->got_bytes = true;
				arm_timer(s, T_HEADER);
			}
			return;
		}
	}
	if (!s->x->got_bytes) {
		s->x->got_bytes = true;
		set_req_client(s);
		memcpy(s->x->req_client_ip, s->client_ip, sizeof(s->x->req_client_ip));
		if (s->timer_kind == T_IDLE || s->timer_kind == T_PARK || s->timer_kind == T_HANDSHAKE)
			arm_timer(s, T_HEADER);
	}
	n = len < cfg->limits.header_size ? len : cfg->limits.header_size;
	data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	hl = http_head_length(data, n, &s->x->head_scanned);
	if (hl == 0 && !s->x->line_ok && memchr(data + s->x->line_scanned, '\n', n - s->x->line_scanned) != NULL) {
		/* A bad request-line (HTTP/0.9 among others) is answered as
		 * soon as it ends, not after the header timeout. */
		r = http_check_request_line(data, n);
		if (r == HTTP_OK) {
			s->x->line_ok = true;
		} else if (r != HTTP_INCOMPLETE) {
			respond_error(s, (int)r, "malformed request");
			return;
		}
	}
	s->x->line_scanned = n;
	if (hl == 0) {
		if (n >= cfg->limits.header_size)
			respond_error(s, 431, "request header too large");
		return;
	}
	r = http_parse_request(data, hl, w->hdrs, w->nhdrs, &req);
	if (r != HTTP_OK) {
		respond_error(s, (int)r, "malformed request");
		return;
	}
	evtimer_del(s->timer);
	s->timer_kind = T_NONE;
	s->served = true;
	if (w->accesslog != NULL)
		set_req_line(s, &req);
	s->x->resp_bytes = 0;
	s->x->head_method = req.method_len == 4 && memcmp(req.method, "HEAD", 4) == 0;
	s->x->client_minor = req.version_minor;
	s->x->client_keepalive = req.keep_alive;
	s->x->want_upgrade = req.upgrade;
	s->x->req_framing = req.framing;
	s->x->req_remaining = req.framing == HTTP_BODY_LENGTH ? req.content_length : 0;
	if (req.framing == HTTP_BODY_CHUNKED)
		http_chunked_init(&s->x->req_chunked, true, cfg->limits.header_size);
	s->x->req_done = req.framing == HTTP_BODY_NONE ||
	    (req.framing == HTTP_BODY_LENGTH && req.content_length == 0);
	forwarded_for(s, &req);
	preview = cfg->preview.header != NULL && preview_color(s, &req, &pcolor);
	/* One acquire load; during a ramp one hash more (while req's fields
	 * still point into the input buffer). */
	s->x->set_cookie[0] = '\0';
	rt = route_current();
	if (rt != NULL)
		pcolor = preview ? pcolor : rt->weight_bp > 0 ? ramp_color(s, &req, rt) : rt->active;
	evbuffer_drain(s->x->req_head, evbuffer_get_length(s->x->req_head));
	if (http_write_request(s->x->req_head, &req, s->client_ip, s->secure ? "https" : "http") < 0) {
		respond_error(s, 500, "out of memory");
		return;
	}
	evbuffer_drain(in, hl);
	s->x->head_scanned = 0;
	s->x->line_scanned = 0;
	s->x->line_ok = false;
	s->x->got_bytes = false;
	s->x->attempts = 0;
	s->x->reused = false;
	s->x->no_reuse = false;
	s->x->req_body_sent = false;
	s->x->resp_started = false;
	s->x->close_after = !req.keep_alive || w->stopping;
	/*
	 * Once the request is whole, the client is not read until its answer
	 * is done (response_done, respond_error) when it was read right after
	 * accept: its read event, enabled this loop turn, then never reaches
	 * epoll, and closing after the answer costs no epoll_ctl. Likewise
	 * when the connection closes after this answer: the event leaves epoll
	 * while the socket is open, not in a deferred EPOLL_CTL_DEL that fails
	 * once it is closed. A client that resets meanwhile is noticed when
	 * the answer is written. Kept-alive connections stay read (see below).
	 */
	if ((s->spec || s->x->close_after) && s->x->req_done)
		reader_disable(s->crd, s->cbev);
	/* Reading stays on (toggling it costs epoll_ctl calls on every request):
	 * body bytes wait in the input buffer, capped by its watermark, until
	 * the upstream is ready. */
	s->state = S_CONNECTING;
	s->x->pool = NULL;
	if (rt != NULL) {
		s->x->color = pcolor;
		s->x->pool = rt->pools[s->x->color];
		if (s->x->pool != NULL)
			pool_ref(s->x->pool);
	}
	if (s->x->pool == NULL) {
		respond_error(s, 503, "no route");
		return;
	}
	s->x->t_start_us = clock_mono_us();
	atomic_store_explicit(&w->stats.started[s->x->color],
	    atomic_load_explicit(&w->stats.started[s->x->color], memory_order_relaxed) + 1,
	    memory_order_release);
	start_upstream(s, NULL);
}

/* Picks a server (not skip) and connects to it, reusing an idle connection. */
static void
start_upstream(struct session *s, const struct server *skip)
{
	struct worker *w = s->w;
	struct upstream_conn *c = NULL;
	struct server *srv;

	srv = pool_pick(s->x->pool, &w->rr_cursor[s->x->color], skip);
	if (srv == NULL || (skip != NULL && srv == skip)) {
		if (skip == NULL)
			respond_error(s, 503, "no healthy server");
		else
			respond_error(s, s->x->timed_out ? 504 : 502, "upstream connect failed");
		return;
	}
	s->x->server = srv;
	s->x->attempts++;
	s->state = S_CONNECTING;
	if (!s->x->no_reuse && (c = upstream_take_idle(w, srv)) != NULL) {
		s->x->up = c;
		s->x->reused = true;
		stat_inc(&w->stats.upstream_reused);
		bufferevent_setcb(c->bev, up_readcb, up_writecb, up_eventcb, s);
		upstream_ready(s);
		return;
	}
	s->x->reused = false;
	c = upstream_connect(w, srv, up_readcb, up_writecb, up_eventcb, s);
	if (c == NULL) {
		log_debug("%s: connect %s: %s", __func__, server_label(srv), strerror(errno));
		if (fdlimit_local_error(errno)) {
			/* Ours, not the server's: no passive failure, no
			 * retry, and the guard does not count it (see
			 * daemon_sample). */
			stat_inc(&w->stats.upstream_errors[s->x->color][UPSTREAM_ERR_LOCAL]);
			respond_error(s, 503, "out of local resources");
			return;
		}
		connect_failed(s, false);
		return;
	}
	s->x->up = c;
	set_timeouts(c->bev, c->rd, 0, w->cfg->timeouts.connect_ms);
	bufferevent_enable(c->bev, EV_WRITE);
}

/*
 * A connect failed before any byte was sent: try the next server of the same
 * color, once per server; then answer 502 (or 504 when it timed out).
 */
static void
connect_failed(struct session *s, bool timeout)
{
	const struct server *failed = s->x->server;

	stat_inc(&s->w->stats.upstream_errors[s->x->color][timeout ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_CONNECT]);
	log_warn("%s: upstream %s: %s", __func__, server_label(failed),
	    timeout ? "connect timed out" : "connect failed");
	if (server_passive_failure(s->x->server, s->w->cfg->health.fall))
		log_warn("%s: %s server %s is down: %u connect failures in a row on live traffic", __func__,
		    color_name(s->x->color), server_label(failed), s->w->cfg->health.fall);
	drop_upstream(s, false);
	s->x->timed_out = timeout;
	if (s->x->attempts >= s->x->pool->nservers) {
		respond_error(s, timeout ? 504 : 502, "upstream connect failed");
		return;
	}
	start_upstream(s, failed);
}

/*
 * The upstream timed out or closed before its (final) response head: 504 or
 * 502; a timeout counts as a passive health failure.
 */
static void
response_head_failed(struct session *s, bool timeout)
{
	stat_inc(&s->w->stats.upstream_errors[s->x->color][timeout ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_RESET]);
	log_warn("%s: upstream %s: %s before the response", __func__, server_label(s->x->server),
	    timeout ? "timed out" : "closed");
	if (timeout && server_passive_failure(s->x->server, s->w->cfg->health.fall))
		log_warn("%s: %s server %s is down: %u timeouts in a row on live traffic", __func__,
		    color_name(s->x->color), server_label(s->x->server), s->w->cfg->health.fall);
	drop_upstream(s, false);
	respond_error(s, timeout ? 504 : 502, timeout ? "upstream timed out" : "upstream closed");
}

/* The upstream connection is usable: send the head and start the body. */
static void
upstream_ready(struct session *s)
{
	struct worker *w = s->w;
	struct bufferevent *ub = s->x->up->bev;
	size_t rhigh;

	s->state = S_EXCHANGE;
	s->x->resp_state = R_WAIT_HEAD;
	s->x->resp_scanned = 0;
	s->x->resp_blocked = false;
	s->x->req_blocked = false;
	s->x->interim = 0;
	s->x->interim_bytes = 0;
	s->x->up->connected = true;
	s->x->up->requests++;
	rhigh = w->cfg->limits.header_size + 1 > HIGH(s) ? w->cfg->limits.header_size + 1 : HIGH(s);
	reader_set_high(s->x->up->rd, ub, rhigh);
	bufferevent_setwatermark(ub, EV_WRITE, LOW(s), 0);
	bufferevent_set_max_single_read(ub, BUF_HIGH);
	bufferevent_set_max_single_write(ub, BUF_HIGH);
	/* The response timeout runs once the request is sent; while its body
	 * goes up, the upstream is judged by its progress in taking it. */
	set_timeouts(ub, s->x->up->rd, s->x->req_done ? w->cfg->timeouts.response_ms : 0, w->cfg->timeouts.response_ms);
	/* Copied, not moved: kept for a retry until the response starts. */
	evbuffer_add(bufferevent_get_output(ub), evbuffer_pullup(s->x->req_head, -1),
	    evbuffer_get_length(s->x->req_head));
	reader_enable(s->x->up->rd, ub);
	if (!s->x->req_done) {
		set_timeouts(s->cbev, s->crd, w->cfg->timeouts.client_idle_ms, w->cfg->timeouts.client_idle_ms);
		reader_enable(s->crd, s->cbev);
		pump_request(s);
	} else {
		set_timeouts(s->cbev, s->crd, 0, w->cfg->timeouts.client_idle_ms);
	}
}

/* Moves request body bytes from the client to the upstream. */
static void
pump_request(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	struct evbuffer *out = bufferevent_get_output(s->x->up->bev);
	size_t olen = evbuffer_get_length(out), room, n;
	int r;

	if (s->x->req_done)
		return;
	if (olen + MIN_ROOM > HIGH(s)) {
		s->x->req_blocked = true;
		reader_disable(s->crd, s->cbev);
		return;
	}
	room = HIGH(s) - olen;
	if (s->x->req_framing == HTTP_BODY_LENGTH) {
		n = evbuffer_get_length(in);
		if (n > room)
			n = room;
		if (n > s->x->req_remaining)
			n = (size_t)s->x->req_remaining;
		if (n > 0) {
			evbuffer_remove_buffer(in, out, n);
			s->x->req_remaining -= n;
			s->x->req_body_sent = true;
		}
		if (s->x->req_remaining == 0)
			s->x->req_done = true;
	} else {
		r = http_chunked_step(&s->x->req_chunked, in, out, room);
		if (evbuffer_get_length(out) > olen)
			s->x->req_body_sent = true;
		if (r < 0) {
			/* The upstream got part of a request it must never finish. */
			drop_upstream(s, false);
			if (!s->x->resp_started)
				respond_error(s, 400, "malformed chunked body");
			else
				session_kill(s);
			return;
		}
		if (r == 1)
			s->x->req_done = true;
	}
	if (s->x->req_done) {
		set_timeouts(s->cbev, s->crd, 0, s->w->cfg->timeouts.client_idle_ms);
		set_timeouts(s->x->up->bev, s->x->up->rd, s->w->cfg->timeouts.response_ms, s->w->cfg->timeouts.response_ms);
	} else if (evbuffer_get_length(out) + MIN_ROOM > HIGH(s)) {
		s->x->req_blocked = true;
		reader_disable(s->crd, s->cbev);
	}
}

/* Upstream side. */

static void
up_readcb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	session_enter(s);
	if (s->state == S_EXCHANGE) {
		if (s->x->resp_state == R_WAIT_HEAD)
			read_response_head(s);
		else
			pump_response(s);
	} else if (s->state == S_TUNNEL) {
		pump_tunnel(s, false);
	}
	session_leave(s);
}

static void
up_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	session_enter(s);
	if (s->state == S_TUNNEL) {
		if (s->x->up_closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			session_kill(s);
		else if (s->x->req_blocked) {
			s->x->req_blocked = false;
			reader_enable(s->crd, s->cbev);
			pump_tunnel(s, true);
		}
	} else if (s->state == S_EXCHANGE && s->x->req_blocked) {
		s->x->req_blocked = false;
		reader_enable(s->crd, s->cbev);
		pump_request(s);
	}
	if (!s->dead && s->x->up != NULL && s->x->up->bev == bev && !s->x->up_closing &&
	    s->x->up->server->pool->tls == NULL && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE); /* back to direct writes */
	session_leave(s);
}

static void
up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	session_enter(s);
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == S_CONNECTING)
			upstream_ready(s);
		goto out;
	}
	switch (s->state) {
	case S_CONNECTING:
		connect_failed(s, (what & BEV_EVENT_TIMEOUT) != 0);
		break;
	case S_EXCHANGE:
		if (s->x->resp_state == R_WAIT_HEAD) {
			if (s->x->reused && !s->x->req_body_sent && !(what & BEV_EVENT_TIMEOUT) &&
			    evbuffer_get_length(bufferevent_get_input(s->x->up->bev)) == 0) {
				/* A kept-alive connection the server had already
				 * closed: nothing was processed, try a fresh one. */
				drop_upstream(s, false);
				s->x->no_reuse = true;
				s->x->attempts--;
				start_upstream(s, NULL);
				break;
			}
			response_head_failed(s, (what & BEV_EVENT_TIMEOUT) != 0);
		} else if (s->x->resp_in == HTTP_BODY_UNTIL_CLOSE && (what & BEV_EVENT_EOF)) {
			struct evbuffer *in = bufferevent_get_input(s->x->up->bev);

			evbuffer_add_buffer(bufferevent_get_output(s->cbev), in);
			s->x->up_keepalive = false;
			response_done(s);
		} else {
			/* Truncated response: the client can only learn it from
			 * the connection closing. */
			stat_inc(&s->w->stats.upstream_errors[s->x->color]
			    [(what & BEV_EVENT_TIMEOUT) ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_RESET]);
			stat_inc(&s->w->stats.cut_short[s->x->color]);
			log_warn("%s: upstream %s: response cut short", __func__, server_label(s->x->server));
			drop_upstream(s, false);
			close_after_flush(s);
		}
		break;
	case S_TUNNEL:
		pump_tunnel(s, false);
		drop_upstream(s, false);
		close_after_flush(s);
		break;
	default:
		drop_upstream(s, false);
		break;
	}
out:
	session_leave(s);
}

static void
read_response_head(struct session *s)
{
	struct worker *w = s->w;
	const struct config *cfg = w->cfg;
	struct evbuffer *in = bufferevent_get_input(s->x->up->bev);
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	struct http_head resp;
	const char *data, *why = "invalid response";
	size_t len, n, hl;
	bool keep;

	for (;;) {
		len = evbuffer_get_length(in);
		if (len == 0)
			return;
		n = len < cfg->limits.header_size ? len : cfg->limits.header_size;
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		hl = http_head_length(data, n, &s->x->resp_scanned);
		if (hl == 0) {
			if (n >= cfg->limits.header_size)
				goto invalid;
			return;
		}
		if (http_parse_response(data, hl, w->hdrs, w->nhdrs,
		        s->x->head_method ? "HEAD" : "GET", s->x->head_method ? 4 : 3, &resp) != HTTP_OK)
			goto invalid;
		s->x->resp_scanned = 0;
		if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
			/*
			 * Interim answers go to 1.1 clients as they come, a
			 * bounded number of them: each read of the upstream
			 * restarts its read timeout, so the response timeout
			 * runs on the session's timer from the first one.
			 */
			s->x->interim_bytes += hl;
			if (++s->x->interim > MAX_INTERIM || s->x->interim_bytes > cfg->limits.header_size) {
				why = "too many interim (1xx) answers";
				goto invalid;
			}
			if (s->x->interim == 1)
				arm_timer(s, T_RESPONSE);
			if (s->x->client_minor >= 1 &&
			    http_write_response(out, &resp, HTTP_BODY_NONE, 0, true, s->x->client_minor) < 0)
				goto invalid;
			evbuffer_drain(in, hl);
			continue;
		}
		break;
	}
	if (s->timer_kind == T_RESPONSE) {
		evtimer_del(s->timer);
		s->timer_kind = T_NONE;
	}
	if (resp.status == 101 && !s->x->want_upgrade)
		goto invalid;
	s->x->status = resp.status;
	s->x->resp_started = true;
	server_passive_success(s->x->server);
	evbuffer_drain(s->x->req_head, evbuffer_get_length(s->x->req_head));
	s->x->resp_in = resp.framing;
	s->x->up_keepalive = resp.keep_alive && resp.framing != HTTP_BODY_UNTIL_CLOSE;
	switch (resp.framing) {
	case HTTP_BODY_CHUNKED:
		/* A 1.0 client cannot take chunks: decode and close after. */
		s->x->resp_out = s->x->client_minor >= 1 ? HTTP_BODY_CHUNKED : HTTP_BODY_UNTIL_CLOSE;
		http_chunked_init(&s->x->resp_chunked, s->x->resp_out == HTTP_BODY_CHUNKED, cfg->limits.header_size);
		break;
	case HTTP_BODY_LENGTH:
		s->x->resp_out = HTTP_BODY_LENGTH;
		s->x->resp_remaining = resp.content_length;
		break;
	default:
		s->x->resp_out = resp.framing;
		break;
	}
	if (s->x->resp_out == HTTP_BODY_UNTIL_CLOSE)
		s->x->close_after = true;
	keep = s->x->client_keepalive && !s->x->close_after && !w->stopping;
	if (!keep)
		s->x->close_after = true;
	if (resp.status == 101) {
		if (http_write_response(out, &resp, HTTP_BODY_NONE, 0, true, s->x->client_minor) < 0)
			goto invalid;
	} else {
		enum http_framing f = s->x->resp_out;
		uint64_t cl = resp.content_length;

		/* HEAD and 304 answers carry the length the body would have. */
		if (f == HTTP_BODY_NONE && resp.content_length_present)
			f = HTTP_BODY_LENGTH;
		else if (f == HTTP_BODY_UNTIL_CLOSE)
			f = HTTP_BODY_NONE;
		if (s->x->set_cookie[0] != '\0') {
			/* The head array has one slot past w->nhdrs for this. */
			struct http_header *h = &resp.headers[resp.nheaders++];

			h->name = "Set-Cookie";
			h->name_len = 10;
			h->value = s->x->set_cookie;
			h->value_len = (uint32_t)strlen(s->x->set_cookie);
			h->flags = 0;
		}
		if (http_write_response(out, &resp, f, cl, keep, s->x->client_minor) < 0)
			goto invalid;
	}
	evbuffer_drain(in, hl);
	count_response(s, resp.status);
	if (resp.status == 101) {
		start_tunnel(s);
		return;
	}
	if (s->x->resp_out == HTTP_BODY_NONE || (s->x->resp_out == HTTP_BODY_LENGTH && s->x->resp_remaining == 0)) {
		response_done(s);
		return;
	}
	s->x->resp_state = R_BODY;
	pump_response(s);
	return;
invalid:
	stat_inc(&w->stats.upstream_errors[s->x->color][UPSTREAM_ERR_INVALID]);
	if (s->x->resp_started)
		stat_inc(&w->stats.cut_short[s->x->color]);
	log_warn("%s: upstream %s: %s", __func__, server_label(s->x->server), why);
	drop_upstream(s, false);
	if (s->x->resp_started)
		close_after_flush(s);
	else
		respond_error(s, 502, "invalid upstream response");
}

/* Moves response body bytes from the upstream to the client. */
static void
pump_response(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->x->up->bev);
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	size_t olen = evbuffer_get_length(out), room, n;
	bool done = false;
	int r;

	if (s->x->sp != NULL)
		return;
	if (olen + MIN_ROOM > HIGH(s)) {
		s->x->resp_blocked = true;
		reader_disable(s->x->up->rd, s->x->up->bev);
		return;
	}
	room = HIGH(s) - olen;
	switch (s->x->resp_in) {
	case HTTP_BODY_LENGTH:
		n = evbuffer_get_length(in);
		if (n > room)
			n = room;
		if (n > s->x->resp_remaining)
			n = (size_t)s->x->resp_remaining;
		evbuffer_remove_buffer(in, out, n);
		s->x->resp_remaining -= n;
		done = s->x->resp_remaining == 0;
		if (!done && start_splicing(s)) {
			s->x->resp_bytes += n;
			return;
		}
		break;
	case HTTP_BODY_CHUNKED:
		r = http_chunked_step(&s->x->resp_chunked, in, out, room);
		if (r < 0) {
			stat_inc(&s->w->stats.upstream_errors[s->x->color][UPSTREAM_ERR_INVALID]);
			stat_inc(&s->w->stats.cut_short[s->x->color]);
			log_warn("%s: upstream %s: malformed chunked body", __func__, server_label(s->x->server));
			drop_upstream(s, false);
			close_after_flush(s);
			return;
		}
		done = r == 1;
		break;
	default:
		n = evbuffer_get_length(in);
		if (n > room)
			n = room;
		evbuffer_remove_buffer(in, out, n);
		break;
	}
	s->x->resp_bytes += evbuffer_get_length(out) - olen;
	if (done) {
		response_done(s);
		return;
	}
	if (evbuffer_get_length(out) + MIN_ROOM > HIGH(s)) {
		s->x->resp_blocked = true;
		reader_disable(s->x->up->rd, s->x->up->bev);
	}
}

/*
 * Switches the body still to come to splice(2) when at least
 * upstream.splice bytes of it remain and both sides are plain sockets: only
 * once everything buffered went out (the pipe's bytes must follow them).
 * True when splicing took over (the body may even be done: response_done()
 * ran); false leaves the body to the buffered path, as when no pipe or
 * descriptor is left.
 */
static bool
start_splicing(struct session *s)
{
	struct exchange *x = s->x;
	struct bufferevent *ub = x->up->bev;
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	size_t min = s->w->cfg->upstream.splice;
	struct spliced *sp;

	if (min == 0 || x->sp != NULL || s->fd < 0 || s->stream || x->up->rd == NULL ||
	    x->resp_remaining < min || evbuffer_get_length(bufferevent_get_input(ub)) > 0)
		return false;
	if (evbuffer_get_length(out) > 0 && !(bufferevent_get_enabled(s->cbev) & EV_WRITE))
		write_now(s->cbev);
	if (evbuffer_get_length(out) > 0)
		return false;
	if ((sp = calloc(1, sizeof(*sp))) == NULL)
		return false;
	x->sp = sp;
	sp->pipe = splice_pipe_new(BUF_HIGH);
	sp->rev = event_new(s->w->base, bufferevent_getfd(ub), EV_READ | EV_PERSIST, spliced_cb, s);
	sp->wev = event_new(s->w->base, s->fd, EV_WRITE | EV_PERSIST, spliced_cb, s);
	if (sp->pipe == NULL || sp->rev == NULL || sp->wev == NULL) {
		stop_splicing(s, false);
		return false;
	}
	reader_disable(x->up->rd, ub);
	bufferevent_disable(s->cbev, EV_WRITE);
	x->resp_blocked = false;
	pump_spliced(s, true, true);
	return true;
}

/* Ends splicing; with keep_bytes, what the pipe holds goes to the client's output. */
static void
stop_splicing(struct session *s, bool keep_bytes)
{
	struct spliced *sp = s->x->sp;
	int n;

	if (sp == NULL)
		return;
	s->x->sp = NULL;
	if (keep_bytes && sp->pipe != NULL && s->cbev != NULL &&
	    (n = splice_pipe_to_evbuffer(sp->pipe, bufferevent_get_output(s->cbev))) > 0)
		s->x->resp_bytes += (uint64_t)n;
	if (sp->rev != NULL)
		event_free(sp->rev);
	if (sp->wev != NULL)
		event_free(sp->wev);
	splice_pipe_free(sp->pipe);
	free(sp);
}

static void
arm_spliced(struct event *ev, bool *on, bool want, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	if (want && !*on)
		event_add(ev, &tv);
	else if (!want && *on)
		event_del(ev);
	*on = want;
}

/* The upstream cut a spliced body short: what the pipe holds still goes out, then close. */
static void
spliced_cut_short(struct session *s, bool timeout)
{
	stat_inc(&s->w->stats.upstream_errors[s->x->color][timeout ? UPSTREAM_ERR_TIMEOUT : UPSTREAM_ERR_RESET]);
	stat_inc(&s->w->stats.cut_short[s->x->color]);
	log_warn("%s: upstream %s: response cut short", __func__, server_label(s->x->server));
	stop_splicing(s, true);
	drop_upstream(s, false);
	close_after_flush(s);
}

/*
 * Moves body bytes upstream -> pipe -> client while either side can
 * (readable, writable: worth trying), then watches the sides that can go
 * on: the upstream while the pipe can take more of the body, with the
 * response timeout; the client while the pipe holds bytes, with the client
 * idle timeout (as the bufferevents' read and write timeouts would).
 */
static void
pump_spliced(struct session *s, bool readable, bool writable)
{
	struct exchange *x = s->x;
	struct splice_pipe *p = x->sp->pipe;
	bool more;
	ssize_t n;

	for (;;) {
		if (readable && x->resp_remaining > 0 && splice_pipe_can_take(p)) {
			size_t want = x->resp_remaining < SIZE_MAX ? (size_t)x->resp_remaining : SIZE_MAX;

			n = splice_pipe_in(p, bufferevent_getfd(x->up->bev), want);
			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				spliced_cut_short(s, false);
				return;
			}
			if (n > 0)
				x->resp_remaining -= (uint64_t)n;
			/* Less than the pipe and the body had room for: the socket
			 * is likely drained (epoll says when it is not). */
			if (n < 0 || (x->resp_remaining > 0 && splice_pipe_can_take(p)))
				readable = false;
		}
		if (writable && splice_pipe_len(p) > 0) {
			bool could_take = splice_pipe_can_take(p);

			n = splice_pipe_out(p, s->fd);
			if (n < 0 && errno != EAGAIN) {
				session_kill(s);
				return;
			}
			if (n < 0) {
				writable = false;
			} else {
				x->resp_bytes += (uint64_t)n;
				if (!could_take)
					readable = true; /* room again, and the socket may hold more */
			}
		}
		if (x->resp_remaining == 0 && splice_pipe_len(p) == 0) {
			stop_splicing(s, false);
			response_done(s);
			return;
		}
		more = (readable && x->resp_remaining > 0 && splice_pipe_can_take(p)) ||
		    (writable && splice_pipe_len(p) > 0);
		if (!more)
			break;
	}
	arm_spliced(x->sp->rev, &x->sp->rev_on, x->resp_remaining > 0 && splice_pipe_can_take(p),
	    s->w->cfg->timeouts.response_ms);
	arm_spliced(x->sp->wev, &x->sp->wev_on, splice_pipe_len(p) > 0, s->w->cfg->timeouts.client_idle_ms);
}

/* The upstream's (fd is its socket) or the client's event of a spliced body. */
static void
spliced_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	bool client = fd == s->fd;

	session_enter(s);
	if (!s->dead && s->x->sp != NULL) {
		if ((what & EV_TIMEOUT) && client)
			session_kill(s);
		else if (what & EV_TIMEOUT)
			spliced_cut_short(s, true);
		else if (client)
			pump_spliced(s, !s->x->sp->rev_on, true);
		else
			pump_spliced(s, true, !s->x->sp->wev_on);
	}
	session_leave(s);
}

/* The response is complete: recycle the upstream, then next request or close. */
static void
response_done(struct session *s)
{
	bool reusable = s->x->up_keepalive && s->x->req_done && s->x->up != NULL &&
	    evbuffer_get_length(bufferevent_get_input(s->x->up->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->x->up->bev)) == 0;

	drop_upstream(s, reusable);
	release_pool(s);
	/* The upstream answered before the client finished its body: the rest of
	 * that body is still on the wire, so this connection cannot go on. */
	if (!s->x->req_done)
		s->x->close_after = true;
	if (s->x->close_after || s->w->stopping) {
		close_after_flush(s);
		return;
	}
	s->state = S_WAIT_HEAD;
	s->x->resp_started = false;
	set_timeouts(s->cbev, s->crd, 0, s->w->cfg->timeouts.client_idle_ms);
	arm_timer(s, T_IDLE);
	reader_enable(s->crd, s->cbev);
	/* A pipelined request may already be waiting: handle it from the loop,
	 * not from here, so a long pipeline never deepens the stack. */
	if (evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0)
		bufferevent_trigger(s->cbev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* After 101: the connection becomes a byte tunnel until either side closes. */
static void
start_tunnel(struct session *s)
{
	s->state = S_TUNNEL;
	s->x->req_done = true;
	set_timeouts(s->cbev, s->crd, 0, 0);
	set_timeouts(s->x->up->bev, s->x->up->rd, 0, 0);
	bufferevent_setwatermark(s->x->up->bev, EV_WRITE, LOW(s), 0);
	reader_enable(s->crd, s->cbev);
	pump_tunnel(s, false);
	pump_tunnel(s, true);
}

static void
pump_tunnel(struct session *s, bool from_client)
{
	struct bufferevent *src = from_client ? s->cbev : s->x->up->bev;
	struct reader *srd = from_client ? s->crd : s->x->up->rd;
	struct bufferevent *dst = from_client ? s->x->up->bev : s->cbev;
	struct evbuffer *out = bufferevent_get_output(dst);

	evbuffer_add_buffer(out, bufferevent_get_input(src));
	if (evbuffer_get_length(out) >= HIGH(s)) {
		reader_disable(srd, src);
		if (from_client)
			s->x->req_blocked = true;
		else
			s->x->resp_blocked = true;
	}
}

/*
 * Answers the client with a short text error. The connection stays open only
 * when nothing of the request is left unread and the client wants it.
 */
static void
respond_error(struct session *s, int status, const char *why)
{
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	const char *reason = http_reason(status);
	bool keep = status >= 500 && s->x->req_done && s->x->client_keepalive && !s->x->close_after &&
	    !s->w->stopping && s->state != S_WAIT_HEAD;
	char body[128];
	int blen;

	if (s->x->resp_started) {
		close_after_flush(s);
		return;
	}
	drop_upstream(s, false);
	blen = snprintf(body, sizeof(body), "%d %s: %s\n", status, reason, why);
	evbuffer_add_printf(out,
	    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s",
	    status, reason, blen, keep ? "" : "Connection: close\r\n", body);
	s->x->status = status;
	count_response(s, status);
	if (!keep) {
		close_after_flush(s);
		return;
	}
	release_pool(s);
	s->state = S_WAIT_HEAD;
	set_timeouts(s->cbev, s->crd, 0, s->w->cfg->timeouts.client_idle_ms);
	arm_timer(s, T_IDLE);
	reader_enable(s->crd, s->cbev);
	if (evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0)
		bufferevent_trigger(s->cbev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* Gives the upstream connection back to the idle list, or closes it. */
static void
drop_upstream(struct session *s, bool reusable)
{
	struct upstream_conn *c = s->x->up;

	if (c == NULL)
		return;
	stop_splicing(s, false);
	s->x->up = NULL;
	if (reusable && !s->w->stopping) {
		upstream_release(c);
	} else {
		upstream_close(c);
	}
}

/*
 * trusted_proxies: from a trusted peer, the incoming X-Forwarded-For is kept
 * (http_write_request appends the peer) and its last untrusted hop is the
 * request's client; from anyone else it is dropped, so the upstream sees
 * only the peer.
 */
static void
forwarded_for(struct session *s, struct http_head *req)
{
	const struct config *cfg = s->w->cfg;
	size_t i;

	if (xff_trusted(cfg->trusted_proxies, cfg->ntrusted_proxies, (const struct sockaddr *)&s->peer)) {
		if (xff_client(req, cfg->trusted_proxies, cfg->ntrusted_proxies, &s->x->req_client))
			addr_ip_string((const struct sockaddr *)&s->x->req_client, s->x->req_client_ip,
			    sizeof(s->x->req_client_ip));
		return;
	}
	for (i = 0; i < req->nheaders; i++)
		if (http_header_is(&req->headers[i], "x-forwarded-for"))
			req->headers[i].flags |= HTTP_HDR_HOP;
}

/*
 * Preview routing: the preview header is never forwarded; from an address in
 * preview.from, its value (blue or green) picks the color for this request.
 */
static bool
preview_color(struct session *s, struct http_head *req, enum color *color)
{
	const struct config_preview *pv = &s->w->cfg->preview;
	const struct http_header *found = NULL;
	char value[8];
	size_t i;

	for (i = 0; i < req->nheaders; i++) {
		struct http_header *h = &req->headers[i];

		if (!http_header_is(h, pv->header))
			continue;
		h->flags |= HTTP_HDR_HOP;
		if (found == NULL)
			found = h;
	}
	if (found == NULL || found->value_len >= sizeof(value))
		return false;
	for (i = 0; i < pv->nfrom; i++)
		if (addr_cidr_match(&pv->from[i], (const struct sockaddr *)&s->x->req_client))
			break;
	if (i == pv->nfrom)
		return false;
	memcpy(value, found->value, found->value_len);
	value[found->value_len] = '\0';
	return color_parse(value, color) == 0;
}

/*
 * A ramp is on (rt->weight_bp > 0): the client's bucket picks the color.
 * The key is the ramp cookie's value, or with switch.ramp_by = "address"
 * the client's address (the one trusted_proxies and the PROXY header
 * define). A request without a valid cookie gets a new random id, is
 * routed by it, and its response sets it.
 */
static enum color
ramp_color(struct session *s, const struct http_head *req, const struct route *rt)
{
	const struct config_switch *sw = &s->w->cfg->sw;
	const char *key = NULL;
	unsigned char raw[16];
	char id[BUCKET_ID_LEN + 1];
	size_t i, klen = 0;

	if (sw->ramp_by[0] == 'a') {
		key = s->x->req_client_ip;
		klen = strlen(key);
	} else {
		for (i = 0; i < req->nheaders && key == NULL; i++) {
			const struct http_header *h = &req->headers[i];

			if (http_header_is(h, "cookie"))
				(void)bucket_cookie_find(h->value, h->value_len, sw->ramp_cookie, &key, &klen);
		}
		if (key == NULL) {
			if (RAND_bytes(raw, sizeof(raw)) != 1) {
				/* No id: this request alone stays on the old color. */
				log_warn("%s: RAND_bytes failed: no ramp cookie for %s", __func__,
				    s->x->req_client_ip);
				return rt->active;
			}
			bucket_id_hex(raw, id);
			snprintf(s->x->set_cookie, sizeof(s->x->set_cookie), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s",
			    sw->ramp_cookie, id, s->secure ? "; Secure" : "");
			key = id;
			klen = BUCKET_ID_LEN;
		}
	}
	return bucket_on_target(key, klen, rt->weight_bp) ? rt->ramp_target : rt->active;
}

static void
set_req_line(struct session *s, const struct http_head *req)
{
	char buf[4 * 400 + 64], target[4 * 400 + 1];
	int n;

	/* The target may hold '"' and '\' (VCHAR): escaped, so the quoted
	 * access log field stays one field. A method is a token: no need. */
	accesslog_escape(target, sizeof(target), req->target, req->target_len > 400 ? 400 : req->target_len);
	n = snprintf(buf, sizeof(buf), "%.*s %s HTTP/%s", (int)(req->method_len > 32 ? 32 : req->method_len),
	    req->method, target, s->h2s != NULL ? "2.0" : req->version_minor ? "1.1" : "1.0");
	free(s->x->req_line);
	s->x->req_line = n > 0 ? strdup(buf) : NULL;
}

/*
 * One access log line: time, client, request line, status, color, server,
 * duration in ms, response body bytes. The request line was escaped by
 * set_req_line() (accesslog_escape: '"', '\', non-printable as \xHH).
 */
static void
log_access(struct session *s, uint64_t us)
{
	char line[2048], when[32];
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s.%03ldZ %s \"%s\" %d %s %s %.3f %llu", when,
	    ts.tv_nsec / 1000000, s->x->req_client_ip, s->x->req_line != NULL ? s->x->req_line : "-",
	    s->x->resp_started || s->x->status >= 400 ? s->x->status : 0, color_name(s->x->color),
	    s->x->server != NULL ? s->x->server->addr.text : "-", (double)us / 1000.0,
	    (unsigned long long)s->x->resp_bytes);
	if (n > 0)
		accesslog_write(s->w->accesslog, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* The request is over: let go of its color (and count it out of flight). */
static void
release_pool(struct session *s)
{
	struct worker *w = s->w;

	uint64_t us;

	if (s->x->pool == NULL)
		return;
	us = clock_mono_us() - s->x->t_start_us;
	if (w->accesslog != NULL)
		log_access(s, us);
	stat_inc(&w->stats.latency[s->x->color][histogram_bucket(us)]);
	stat_add(&w->stats.latency_sum_us[s->x->color], us);
	atomic_store_explicit(&w->stats.finished[s->x->color],
	    atomic_load_explicit(&w->stats.finished[s->x->color], memory_order_relaxed) + 1,
	    memory_order_release);
	pool_unref(s->x->pool);
	s->x->pool = NULL;
}

void
session_close_tunnels(struct worker *w, enum color color)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&w->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->dead || s->state != S_TUNNEL || s->x == NULL || s->x->color != color)
			continue;
		session_enter(s);
		log_info("closing a %s tunnel from %s: drain timeout after a switch",
		    color_name(color), s->client_ip);
		session_kill(s);
		session_leave(s);
	}
}

static void
count_response(struct session *s, int status)
{
	int cls = status / 100;

	if (cls < 1 || cls > 5)
		cls = 0;
	stat_inc(&s->w->stats.requests[s->x->color][cls]);
}
