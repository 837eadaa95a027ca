#include "autoconf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "h2.h"
#include "http.h"
#include "log.h"
#include "session.h"
#include "worker.h"

/*
 * Flow control and buffering. A stream's request body may have at most
 * STREAM_WINDOW bytes in flight (SETTINGS_INITIAL_WINDOW_SIZE) and the
 * connection CONN_WINDOW: a WINDOW_UPDATE gives credit back only once the
 * stream's session took the bytes (nghttp2_session_consume). A response
 * body is read from the stream's session into at most BODY_HIGH bytes
 * waiting for DATA frames; past that the session's own backpressure stops
 * its upstream. The connection's output holds at most OUT_HIGH bytes of
 * frames; more are made only once the client took them.
 */
#define STREAM_WINDOW (256 * 1024)
#define CONN_WINDOW   (1024 * 1024)
#define BODY_HIGH     (64 * 1024)
#define OUT_HIGH      (64 * 1024)
/* Sessions kept per connection for its next streams once their answer is
 * complete (a session with its pair costs a dozen allocations); a
 * connection without streams at a timer tick lets them go. */
#define IDLE_MAX      32
#define OUT_LOW       (16 * 1024)

/*
 * Flood limits, token buckets per connection: BURST frames at once, then
 * RATE per second. Stream resets (received, or sent because of the
 * client's invalid streams) beyond them are Rapid Reset (CVE-2023-44487);
 * SETTINGS and PING beyond them are floods. Browsers and gRPC clients stay
 * far below. nghttp2's own limits (reset rate, CONTINUATION count, queued
 * ACKs) stand behind these.
 */
#define RST_BURST      200
#define RST_RATE       50
#define CTRL_BURST     100
#define CTRL_RATE      10
#define MAX_CONTINUATIONS 8
/* Streams refused (REFUSED_STREAM) for going over the limit before the
 * client's SETTINGS acknowledgement, before the connection ends: a client
 * that ignores SETTINGS_MAX_CONCURRENT_STREAMS. */
#define REFUSED_MAX 100
#define TIMER_MS 1000
/* A stalled connection's GOAWAY has this long to go out before it closes. */
#define STALL_GOAWAY_MS 1000

struct h2_conn;

struct bucket {
	uint32_t tokens;
	uint64_t last_ms;
};

enum resp_state { RS_HEAD, RS_BODY, RS_DONE };

/* What a stream's session belongs to (its owner pointer, see session.h). */
enum owner_kind { OWNER_STREAM = 1, OWNER_IDLE };

/* A session between streams, with our end of its pair. */
struct h2_idle {
	enum owner_kind kind; /* OWNER_IDLE; first, as in h2_stream */
	struct h2_conn *c;
	struct h2_idle *next, *prev;
	struct bufferevent *bev;
	struct session *sess;
};

struct h2_stream {
	enum owner_kind kind; /* OWNER_STREAM */
	struct h2_conn *c;
	struct h2_stream *next, *prev;
	int32_t id;
	struct bufferevent *bev; /* our end of the pair; NULL until the head is complete */
	struct session *sess;    /* the stream's session, NULL once gone */
	/* Request head being collected from HEADERS/CONTINUATION. */
	struct evbuffer *head;
	struct evbuffer *cookie; /* cookie fields, joined with "; " */
	char *method, *path, *authority, *host;
	bool has_cl;
	size_t header_bytes;
	bool started;   /* the head went to the session */
	bool chunked;   /* the body goes up chunked (no content-length) */
	bool req_end;   /* END_STREAM seen */
	size_t unconsumed; /* body bytes written to the pair, not yet given back as window */
	/* Response. */
	enum resp_state rs;
	size_t resp_scanned;
	bool head_method;
	enum http_framing framing;
	uint64_t remaining;
	struct http_chunked chunked_dec;
	struct evbuffer *body; /* decoded body waiting for DATA frames */
	bool body_eof;
	bool deferred;
	bool answered; /* a final response was submitted */
	bool resp_keepalive; /* the session keeps its pair after this answer */
};

struct h2_conn {
	struct worker *w;
	struct h2_conn *next, *prev;
	struct bufferevent *bev;
	int fd; /* plain connections: ours to close */
	bool tls;
	bool tls_dirty;
	nghttp2_session *ng;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char client_ip[INET6_ADDRSTRLEN];
	struct h2_stream *streams;
	unsigned nstreams;
	struct h2_idle *idle; /* sessions for the next streams, most recent first */
	unsigned nidle;
	struct event *timer;
	uint64_t last_active_ms;   /* a stream was open, or one ended */
	uint64_t last_progress_ms; /* the client took some of our output */
	struct bucket rst, settings, ping;
	unsigned refused;   /* streams refused over the limit */
	bool goaway;        /* a GOAWAY was submitted or written */
	bool goaway_counted;
	int goaway_reason;  /* set before submitting one of ours; -1: from the error code */
	bool closing;       /* flush the output, then free */
	bool stalled;       /* closing for a stall: the write timeout ends it */
	unsigned busy;
	bool dead;
};

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void conn_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void conn_enter(struct h2_conn *c);
static void conn_leave(struct h2_conn *c);
static void conn_kill(struct h2_conn *c);
static void conn_free(struct h2_conn *c);
static void conn_send(struct h2_conn *c);
static void conn_goaway(struct h2_conn *c, enum h2_goaway_reason why, uint32_t code);
static void conn_fatal(struct h2_conn *c, int err);
static void stream_free(struct h2_stream *st);
static int stream_start(struct h2_stream *st);
static void stream_readcb(struct bufferevent *bev, void *arg);
static void stream_writecb(struct bufferevent *bev, void *arg);
static void stream_pump(struct h2_stream *st);
static void stream_detach(struct h2_stream *st);
static void idle_free(struct h2_idle *id, bool abort);
static bool bucket_take(struct bucket *b, uint32_t burst, uint32_t rate);
static void set_callbacks(nghttp2_session_callbacks *cbs);

int
h2_conn_new(struct worker *w, struct bufferevent *bev, int fd, const struct sockaddr *peer,
    socklen_t peerlen, bool tls)
{
	const struct config *cfg = w->cfg;
	nghttp2_session_callbacks *cbs = NULL;
	nghttp2_option *opt = NULL;
	struct h2_conn *c;
	nghttp2_settings_entry iv[4];
	uint64_t now = clock_mono_ms();

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->w = w;
	c->bev = bev;
	c->fd = fd;
	c->tls = tls;
	c->goaway_reason = -1;
	c->peerlen = peerlen < sizeof(c->peer) ? peerlen : sizeof(c->peer);
	memcpy(&c->peer, peer, c->peerlen);
	addr_ip_string(peer, c->client_ip, sizeof(c->client_ip));
	c->last_active_ms = c->last_progress_ms = now;
	c->rst.tokens = RST_BURST;
	c->settings.tokens = c->ping.tokens = CTRL_BURST;
	c->rst.last_ms = c->settings.last_ms = c->ping.last_ms = now;
	if ((c->timer = evtimer_new(w->base, conn_timer_cb, c)) == NULL)
		goto fail;
	if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
		goto fail;
	set_callbacks(cbs);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, MAX_CONTINUATIONS);
	nghttp2_option_set_stream_reset_rate_limit(opt, 2 * RST_BURST, 2 * RST_RATE);
	nghttp2_option_set_max_outbound_ack(opt, 1000);
	if (nghttp2_session_server_new2(&c->ng, cbs, c, opt) != 0)
		goto fail;
	nghttp2_session_callbacks_del(cbs);
	nghttp2_option_del(opt);
	cbs = NULL;
	opt = NULL;
	iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
	iv[0].value = cfg->limits.h2_max_streams;
	iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
	iv[1].value = STREAM_WINDOW;
	iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
	iv[2].value = (uint32_t)cfg->limits.header_size;
	iv[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
	iv[3].value = 0;
	if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 4) != 0 ||
	    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW) != 0)
		goto fail;
	evbuffer_add_cb(bufferevent_get_output(bev), conn_out_cb, c);
	bufferevent_setcb(bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	c->next = w->h2conns;
	if (c->next != NULL)
		c->next->prev = c;
	w->h2conns = c;
	stat_inc(&w->stats.h2_connections);
	{
		struct timeval tv = {TIMER_MS / 1000, (TIMER_MS % 1000) * 1000};

		event_add(c->timer, &tv);
	}
	/* The preface (h2c) or the first frames may be waiting already. */
	conn_enter(c);
	conn_readcb(bev, c);
	conn_leave(c);
	return 0;
fail:
	log_warn("%s: cannot set up an HTTP/2 connection from %s: %s", __func__,
	    c != NULL ? c->client_ip : "?", strerror(errno ? errno : ENOMEM));
	if (cbs != NULL)
		nghttp2_session_callbacks_del(cbs);
	if (opt != NULL)
		nghttp2_option_del(opt);
	if (c != NULL) {
		if (c->ng != NULL)
			nghttp2_session_del(c->ng);
		if (c->timer != NULL)
			event_free(c->timer);
		free(c);
	}
	bufferevent_free(bev);
	if (fd >= 0)
		close(fd);
	worker_session_closed(w, NULL);
	return -1;
}

void
h2_shutdown_all(struct worker *w, bool force)
{
	struct h2_conn *c, *next;

	for (c = w->h2conns; c != NULL; c = next) {
		next = c->next;
		if (c->dead)
			continue;
		conn_enter(c);
		if (force) {
			conn_kill(c);
		} else {
			conn_goaway(c, H2_GOAWAY_SHUTDOWN, NGHTTP2_NO_ERROR);
			conn_send(c);
		}
		conn_leave(c);
	}
}

void
h2_stream_session_gone(void *arg)
{
	struct h2_stream *st = arg;
	struct h2_conn *c = st->c;

	if (st->kind == OWNER_IDLE) {
		/* An idle session ended (its idle timeout): forget it. */
		idle_free((struct h2_idle *)arg, false);
		return;
	}
	conn_enter(c);
	st->sess = NULL;
	/* What the session wrote last is in our input already. */
	if (st->bev != NULL)
		stream_pump(st);
	if (st->rs == RS_BODY && st->framing == HTTP_BODY_UNTIL_CLOSE) {
		st->body_eof = true;
		st->rs = RS_DONE;
		if (st->deferred) {
			st->deferred = false;
			nghttp2_session_resume_data(c->ng, st->id);
		}
	} else if (st->rs != RS_DONE) {
		/* No (whole) answer: the stream ends in a reset. Refused when
		 * the worker is stopping: the client may retry elsewhere. */
		nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id,
		    c->w->stopping && !st->answered ? NGHTTP2_REFUSED_STREAM : NGHTTP2_INTERNAL_ERROR);
	}
	conn_send(c);
	conn_leave(c);
}

/* Connection lifetime: as session.c's session_enter/leave/kill. */
static void
conn_enter(struct h2_conn *c)
{
	c->busy++;
}

static void
conn_leave(struct h2_conn *c)
{
	if (--c->busy > 0)
		return;
	if (c->dead)
		conn_free(c);
}

static void
conn_kill(struct h2_conn *c)
{
	if (c->dead)
		return;
	c->dead = true;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	evtimer_del(c->timer);
}

static void
conn_free(struct h2_conn *c)
{
	struct worker *w = c->w;

	while (c->streams != NULL)
		stream_free(c->streams);
	while (c->idle != NULL)
		idle_free(c->idle, true);
	nghttp2_session_del(c->ng);
	event_free(c->timer);
	evbuffer_remove_cb(bufferevent_get_output(c->bev), conn_out_cb, c);
	if (c->tls && !c->tls_dirty)
		SSL_shutdown(bufferevent_openssl_get_ssl(c->bev));
	bufferevent_free(c->bev);
	if (c->fd >= 0)
		close(c->fd);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		w->h2conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	worker_session_closed(w, NULL);
}

/* Our GOAWAY, counted under why when it goes out. */
static void
conn_goaway(struct h2_conn *c, enum h2_goaway_reason why, uint32_t code)
{
	if (c->goaway)
		return;
	c->goaway = true;
	c->goaway_reason = (int)why;
	if (code == NGHTTP2_NO_ERROR)
		(void)nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE,
		    nghttp2_session_get_last_proc_stream_id(c->ng), NGHTTP2_NO_ERROR, NULL, 0);
	else
		(void)nghttp2_session_terminate_session(c->ng, code);
}

static void
count_goaway(struct h2_conn *c, uint32_t code)
{
	enum h2_goaway_reason why;

	if (c->goaway_counted)
		return;
	c->goaway_counted = true;
	if (c->goaway_reason >= 0)
		why = (enum h2_goaway_reason)c->goaway_reason;
	else if (code == NGHTTP2_INTERNAL_ERROR || code == NGHTTP2_ENHANCE_YOUR_CALM)
		why = H2_GOAWAY_RAPID_RESET; /* nghttp2's own reset rate limit */
	else
		why = H2_GOAWAY_PROTOCOL;
	stat_inc(&c->w->stats.h2_goaway[why]);
	if (why != H2_GOAWAY_SHUTDOWN && why != H2_GOAWAY_IDLE)
		log_info("HTTP/2 connection from %s: GOAWAY (%s)", c->client_ip, h2_goaway_reason_name(why));
}

/*
 * nghttp2 gave up on the connection (a flood it detected, or a broken
 * preface): write a GOAWAY frame ourselves, since the session will not,
 * and close after it.
 */
static void
conn_fatal(struct h2_conn *c, int err)
{
	unsigned char f[17];
	uint32_t code = NGHTTP2_PROTOCOL_ERROR;
	int32_t last = nghttp2_session_get_last_proc_stream_id(c->ng);

	if (c->goaway_reason < 0) {
		if (err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
			c->goaway_reason = H2_GOAWAY_CONTINUATION;
		else if (err == NGHTTP2_ERR_FLOODED)
			c->goaway_reason = c->ping.tokens <= c->settings.tokens ? H2_GOAWAY_PING : H2_GOAWAY_SETTINGS;
		else
			c->goaway_reason = H2_GOAWAY_PROTOCOL;
	}
	if (err == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS || err == NGHTTP2_ERR_FLOODED)
		code = NGHTTP2_ENHANCE_YOUR_CALM;
	if (err != NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
		/* length 8, type GOAWAY, no flags, stream 0 */
		memset(f, 0, sizeof(f));
		f[2] = 8;
		f[3] = NGHTTP2_GOAWAY;
		f[9] = (unsigned char)((last >> 24) & 0x7f);
		f[10] = (unsigned char)(last >> 16);
		f[11] = (unsigned char)(last >> 8);
		f[12] = (unsigned char)last;
		f[13] = (unsigned char)(code >> 24);
		f[14] = (unsigned char)(code >> 16);
		f[15] = (unsigned char)(code >> 8);
		f[16] = (unsigned char)code;
		evbuffer_add(bufferevent_get_output(c->bev), f, sizeof(f));
	}
	c->goaway = true;
	count_goaway(c, code);
	c->closing = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_kill(c);
	else
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

/* Makes frames while the client takes them; closes when both sides are done. */
static void
conn_send(struct h2_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->dead || c->closing)
		return;
	while (evbuffer_get_length(out) < OUT_HIGH) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->ng, &data);

		if (n < 0) {
			conn_fatal(c, (int)n);
			return;
		}
		if (n == 0)
			break;
		evbuffer_add(out, data, (size_t)n);
	}
	if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(out) == 0)
			conn_kill(c);
		else
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	}
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	conn_enter(c);
	while (!c->dead && !c->closing && evbuffer_get_length(in) > 0) {
		size_t len = evbuffer_get_contiguous_space(in);
		const uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)len);
		ssize_t n = nghttp2_session_mem_recv(c->ng, data, len);

		if (n < 0) {
			conn_fatal(c, (int)n);
			break;
		}
		evbuffer_drain(in, (size_t)n);
		/* Answer as we go: a flood of control frames must not pile
		 * up unanswered beyond nghttp2's outbound limit. */
		conn_send(c);
	}
	conn_send(c);
	conn_leave(c);
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct h2_conn *c = arg;

	conn_enter(c);
	if (c->closing) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			conn_kill(c);
	} else {
		conn_send(c);
	}
	conn_leave(c);
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct h2_conn *c = arg;

	(void)bev;
	conn_enter(c);
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		c->tls_dirty = true;
	conn_kill(c);
	conn_leave(c);
}

/* The client took bytes of our output: it is reading. */
static void
conn_out_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct h2_conn *c = arg;

	(void)buf;
	if (info->n_deleted > 0)
		c->last_progress_ms = clock_mono_ms();
}

/*
 * Once a second: a connection without streams for timeouts.client_idle
 * gets GOAWAY and closes; one whose client took none of the output it is
 * owed (frames queued, or answers waiting for window it never opens) for as
 * long is stalled (zero-window or slow-read attack) and is closed.
 */
static void
conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2_conn *c = arg;
	uint64_t now = clock_mono_ms(), idle = c->w->cfg->timeouts.client_idle_ms;
	struct timeval tv = {TIMER_MS / 1000, (TIMER_MS % 1000) * 1000};
	bool owed = evbuffer_get_length(bufferevent_get_output(c->bev)) > 0;
	struct h2_stream *st;

	(void)fd;
	(void)what;
	conn_enter(c);
	for (st = c->streams; st != NULL && !owed; st = st->next)
		owed = st->body != NULL && evbuffer_get_length(st->body) > 0;
	if (c->nstreams > 0)
		c->last_active_ms = now;
	else
		while (c->idle != NULL)
			idle_free(c->idle, true);
	if (!owed)
		c->last_progress_ms = now;
	if (c->stalled) {
		/* Its write timeout ends it. */
	} else if (owed && now - c->last_progress_ms >= idle) {
		struct timeval wt = {STALL_GOAWAY_MS / 1000, (STALL_GOAWAY_MS % 1000) * 1000};

		log_info("HTTP/2 connection from %s: the client took nothing for %llu ms: closing", c->client_ip,
		    (unsigned long long)idle);
		c->stalled = true;
		c->tls_dirty = true;
		conn_goaway(c, H2_GOAWAY_STALL, NGHTTP2_ENHANCE_YOUR_CALM);
		count_goaway(c, NGHTTP2_ENHANCE_YOUR_CALM);
		/* The GOAWAY goes out if there is room for it and the client
		 * takes it within STALL_GOAWAY_MS; the connection closes either
		 * way. */
		conn_send(c);
		if (!c->dead) {
			c->closing = true;
			bufferevent_disable(c->bev, EV_READ);
			bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
			bufferevent_set_timeouts(c->bev, NULL, &wt);
			bufferevent_enable(c->bev, EV_WRITE);
		}
	} else if (c->nstreams == 0 && now - c->last_active_ms >= idle && !c->goaway) {
		conn_goaway(c, H2_GOAWAY_IDLE, NGHTTP2_NO_ERROR);
		conn_send(c);
	} else if (c->goaway && c->nstreams == 0 && now - c->last_active_ms >= idle) {
		conn_kill(c); /* the client never closed after our GOAWAY */
	}
	if (!c->dead)
		event_add(c->timer, &tv);
	conn_leave(c);
}

static bool
bucket_take(struct bucket *b, uint32_t burst, uint32_t rate)
{
	uint64_t now = clock_mono_ms();
	uint64_t add = (now - b->last_ms) * rate / 1000;

	if (add > 0) {
		b->tokens = b->tokens + add > burst ? burst : (uint32_t)(b->tokens + add);
		b->last_ms = now;
	}
	if (b->tokens == 0)
		return false;
	b->tokens--;
	return true;
}

/* nghttp2 callbacks. */

static struct h2_stream *
stream_of(nghttp2_session *ng, int32_t id)
{
	return nghttp2_session_get_stream_user_data(ng, id);
}

static int
on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st;

	if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	if ((st = calloc(1, sizeof(*st))) == NULL || (st->head = evbuffer_new()) == NULL) {
		free(st);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	st->kind = OWNER_STREAM;
	st->c = c;
	st->id = frame->hd.stream_id;
	st->next = c->streams;
	if (st->next != NULL)
		st->next->prev = st;
	c->streams = st;
	c->nstreams++;
	c->last_active_ms = clock_mono_ms();
	nghttp2_session_set_stream_user_data(ng, st->id, st);
	return 0;
}

static char *
dup_value(const uint8_t *v, size_t len)
{
	char *s = malloc(len + 1);

	if (s != NULL) {
		memcpy(s, v, len);
		s[len] = '\0';
	}
	return s;
}

static int
on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
    const uint8_t *value, size_t valuelen, uint8_t flags, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st = stream_of(ng, frame->hd.stream_id);
	char **slot = NULL;

	(void)flags;
	if (st == NULL)
		return 0;
	/* RFC 9113 6.5.2: 32 bytes of overhead per field. */
	st->header_bytes += namelen + valuelen + 32;
	if (st->header_bytes > c->w->cfg->limits.header_size) {
		conn_goaway(c, H2_GOAWAY_HEADER_LIST, NGHTTP2_ENHANCE_YOUR_CALM);
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (st->started)
		return 0; /* trailers: dropped, as on HTTP/1.1 */
	if (namelen > 0 && name[0] == ':') {
		if (namelen == 7 && memcmp(name, ":method", 7) == 0)
			slot = &st->method;
		else if (namelen == 5 && memcmp(name, ":path", 5) == 0)
			slot = &st->path;
		else if (namelen == 10 && memcmp(name, ":authority", 10) == 0)
			slot = &st->authority;
		else
			return 0; /* :scheme (checked by nghttp2) */
	} else if (namelen == 4 && memcmp(name, "host", 4) == 0) {
		slot = &st->host;
	} else if (namelen == 2 && memcmp(name, "te", 2) == 0) {
		return 0; /* "trailers" only (nghttp2 checks); hop-by-hop */
	} else if (namelen == 6 && memcmp(name, "cookie", 6) == 0) {
		if (st->cookie == NULL && (st->cookie = evbuffer_new()) == NULL)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		if (evbuffer_get_length(st->cookie) > 0)
			evbuffer_add(st->cookie, "; ", 2);
		evbuffer_add(st->cookie, value, valuelen);
		return 0;
	} else {
		if (namelen == 14 && memcmp(name, "content-length", 14) == 0)
			st->has_cl = true;
		evbuffer_add(st->head, name, namelen);
		evbuffer_add(st->head, ": ", 2);
		evbuffer_add(st->head, value, valuelen);
		evbuffer_add(st->head, "\r\n", 2);
		return 0;
	}
	if (*slot != NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* twice */
	if ((*slot = dup_value(value, valuelen)) == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

/* The request body ended (END_STREAM after DATA or trailers). */
static void
stream_end_body(struct h2_stream *st)
{
	if (st->req_end)
		return;
	st->req_end = true;
	if (st->chunked && st->bev != NULL)
		evbuffer_add(bufferevent_get_output(st->bev), "0\r\n\r\n", 5);
}

static int
on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st;

	switch (frame->hd.type) {
	case NGHTTP2_SETTINGS:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !bucket_take(&c->settings, CTRL_BURST, CTRL_RATE)) {
			conn_goaway(c, H2_GOAWAY_SETTINGS, NGHTTP2_ENHANCE_YOUR_CALM);
			return 0;
		}
		break;
	case NGHTTP2_PING:
		if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !bucket_take(&c->ping, CTRL_BURST, CTRL_RATE)) {
			conn_goaway(c, H2_GOAWAY_PING, NGHTTP2_ENHANCE_YOUR_CALM);
			return 0;
		}
		break;
	case NGHTTP2_RST_STREAM:
		if (!bucket_take(&c->rst, RST_BURST, RST_RATE)) {
			conn_goaway(c, H2_GOAWAY_RAPID_RESET, NGHTTP2_ENHANCE_YOUR_CALM);
			return 0;
		}
		break;
	case NGHTTP2_HEADERS:
		if ((st = stream_of(ng, frame->hd.stream_id)) == NULL)
			break;
		if (!st->started) {
			if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
				st->req_end = true;
			if (stream_start(st) < 0) {
				nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
				return 0;
			}
		} else if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
			stream_end_body(st); /* after trailers */
		}
		break;
	case NGHTTP2_DATA:
		if ((st = stream_of(ng, frame->hd.stream_id)) == NULL)
			break;
		if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
			stream_end_body(st);
		break;
	default:
		break;
	}
	return 0;
}

static int
on_data_chunk_recv(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
    void *arg)
{
	struct h2_stream *st = stream_of(ng, id);
	struct evbuffer *out;

	(void)flags;
	(void)arg;
	if (st == NULL || st->bev == NULL || st->sess == NULL || st->req_end) {
		nghttp2_session_consume(ng, id, len);
		return 0;
	}
	out = bufferevent_get_output(st->bev);
	if (st->chunked && len > 0)
		evbuffer_add_printf(out, "%zx\r\n", len);
	evbuffer_add(out, data, len);
	if (st->chunked && len > 0)
		evbuffer_add(out, "\r\n", 2);
	st->unconsumed += len;
	/* The pair hands bytes over as they are written, unless the session
	 * holds enough: window comes back when it took them (writecb). */
	if (evbuffer_get_length(out) == 0) {
		nghttp2_session_consume(ng, id, st->unconsumed);
		st->unconsumed = 0;
	}
	return 0;
}

static int
on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *arg)
{
	struct h2_conn *c = arg;
	struct h2_stream *st = stream_of(ng, id);

	(void)code;
	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	stream_free(st);
	c->last_active_ms = clock_mono_ms();
	return 0;
}

static int
on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *arg)
{
	struct h2_conn *c = arg;

	(void)ng;
	if (frame->hd.type == NGHTTP2_GOAWAY) {
		c->goaway = true;
		count_goaway(c, frame->goaway.error_code);
	} else if (frame->hd.type == NGHTTP2_RST_STREAM &&
	    frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM && !c->w->stopping) {
		if (++c->refused > REFUSED_MAX)
			conn_goaway(c, H2_GOAWAY_STREAMS, NGHTTP2_ENHANCE_YOUR_CALM);
	} else if (frame->hd.type == NGHTTP2_RST_STREAM && !bucket_take(&c->rst, RST_BURST, RST_RATE)) {
		/* Resets the client provokes (invalid streams) count too. */
		conn_goaway(c, H2_GOAWAY_RAPID_RESET, NGHTTP2_ENHANCE_YOUR_CALM);
	}
	return 0;
}

static int
on_invalid_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, int err, void *arg)
{
	struct h2_conn *c = arg;

	(void)ng;
	/* Streams over SETTINGS_MAX_CONCURRENT_STREAMS once it was
	 * acknowledged: nghttp2 ends the connection; say why. */
	if (frame->hd.type == NGHTTP2_HEADERS && err == NGHTTP2_ERR_PROTO &&
	    c->nstreams >= c->w->cfg->limits.h2_max_streams)
		conn_goaway(c, H2_GOAWAY_STREAMS, NGHTTP2_ENHANCE_YOUR_CALM);
	return 0;
}

static ssize_t
body_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
    nghttp2_data_source *source, void *arg)
{
	struct h2_stream *st = source->ptr;
	size_t n = evbuffer_get_length(st->body);

	(void)ng;
	(void)id;
	(void)arg;
	if (n > length)
		n = length;
	if (n > 0)
		evbuffer_remove(st->body, buf, n);
	if (evbuffer_get_length(st->body) == 0 && st->body_eof) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		return (ssize_t)n;
	}
	if (n == 0) {
		st->deferred = true;
		return NGHTTP2_ERR_DEFERRED;
	}
	/* Room again: read on from the session. */
	if (st->bev != NULL && evbuffer_get_length(st->body) < BODY_HIGH / 2 &&
	    !(bufferevent_get_enabled(st->bev) & EV_READ)) {
		bufferevent_enable(st->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(st->bev)) > 0)
			bufferevent_trigger(st->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
	return (ssize_t)n;
}

static void
set_callbacks(nghttp2_session_callbacks *cbs)
{
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
	nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame_recv);
}

/* Streams. */

/*
 * The head is complete: write it to a new session as an HTTP/1.1 request.
 * Host is :authority (a host field that names another is refused);
 * cookies split over several fields become one (RFC 9113 8.2.3); without
 * content-length a body goes chunked.
 */
static int
stream_start(struct h2_stream *st)
{
	struct h2_conn *c = st->c;
	struct bufferevent *pair[2] = {NULL, NULL};
	struct evbuffer *out;
	const char *host = st->authority != NULL ? st->authority : st->host;

	st->started = true;
	if (st->method == NULL || host == NULL ||
	    (st->authority != NULL && st->host != NULL && strcasecmp(st->authority, st->host) != 0)) {
		nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
		return 0;
	}
	stat_inc(&c->w->stats.h2_streams);
	st->head_method = strcmp(st->method, "HEAD") == 0;
	/* A session the last streams left, or a new one. */
	while (c->idle != NULL && st->sess == NULL) {
		struct h2_idle *id = c->idle;

		if (session_stream_reusable(id->sess)) {
			st->bev = id->bev;
			st->sess = id->sess;
			id->bev = NULL;
			id->sess = NULL;
			session_stream_set_owner(st->sess, st);
		}
		idle_free(id, true);
	}
	if (st->sess == NULL) {
		if (bufferevent_pair_new(c->w->base, BEV_OPT_DEFER_CALLBACKS, pair) != 0)
			return -1;
		st->bev = pair[0];
		bufferevent_setwatermark(st->bev, EV_READ, 0, BODY_HIGH);
		bufferevent_setwatermark(st->bev, EV_WRITE, 0, 0);
	}
	/* A pair reports no events we act on: the session's end is told
	 * through h2_stream_session_gone(). */
	bufferevent_setcb(st->bev, stream_readcb, stream_writecb, NULL, st);
	bufferevent_enable(st->bev, EV_READ | EV_WRITE);
	out = bufferevent_get_output(st->bev);
	evbuffer_add(out, st->method, strlen(st->method));
	evbuffer_add(out, " ", 1);
	evbuffer_add(out, st->path != NULL ? st->path : host, strlen(st->path != NULL ? st->path : host));
	evbuffer_add(out, " HTTP/1.1\r\nhost: ", 17);
	evbuffer_add(out, host, strlen(host));
	evbuffer_add(out, "\r\n", 2);
	/* The session parses and checks this head strictly, as any other. */
	st->chunked = !st->req_end && !st->has_cl;
	if (st->chunked)
		evbuffer_add(out, "transfer-encoding: chunked\r\n", 28);
	evbuffer_add_buffer(out, st->head);
	if (st->cookie != NULL) {
		evbuffer_add(out, "cookie: ", 8);
		evbuffer_add_buffer(out, st->cookie);
		evbuffer_add(out, "\r\n", 2);
	}
	evbuffer_add(out, "\r\n", 2);
	evbuffer_free(st->head);
	st->head = NULL;
	if (st->sess == NULL &&
	    (st->sess = session_new_stream(c->w, pair[1], (const struct sockaddr *)&c->peer, c->peerlen,
	         c->tls, st)) == NULL) {
		bufferevent_free(pair[1]);
		return -1;
	}
	return 0;
}

/*
 * The stream's answer is complete and its session waits for another request
 * with nothing buffered either way: keep both for the connection's next
 * stream. Returns false when the session is not kept.
 */
static bool
stream_keep_session(struct h2_stream *st)
{
	struct h2_conn *c = st->c;
	struct h2_idle *id;

	if (!st->resp_keepalive || !st->req_end || c->goaway || c->w->stopping || c->nidle >= IDLE_MAX ||
	    st->sess == NULL || !session_stream_reusable(st->sess) ||
	    evbuffer_get_length(bufferevent_get_input(st->bev)) > 0 ||
	    evbuffer_get_length(bufferevent_get_output(st->bev)) > 0 || (id = calloc(1, sizeof(*id))) == NULL)
		return false;
	id->kind = OWNER_IDLE;
	id->c = c;
	id->bev = st->bev;
	id->sess = st->sess;
	st->bev = NULL;
	st->sess = NULL;
	session_stream_set_owner(id->sess, id);
	bufferevent_setcb(id->bev, NULL, NULL, NULL, NULL);
	if (st->unconsumed > 0) {
		nghttp2_session_consume(c->ng, st->id, st->unconsumed);
		st->unconsumed = 0;
	}
	id->next = c->idle;
	if (id->next != NULL)
		id->next->prev = id;
	c->idle = id;
	c->nidle++;
	return true;
}

/* Unlinks an idle session's entry; with abort ends the session too. */
static void
idle_free(struct h2_idle *id, bool abort)
{
	struct h2_conn *c = id->c;

	if (id->sess != NULL && abort)
		session_stream_abort(id->sess);
	if (id->bev != NULL)
		bufferevent_free(id->bev);
	if (id->prev != NULL)
		id->prev->next = id->next;
	else
		c->idle = id->next;
	if (id->next != NULL)
		id->next->prev = id->prev;
	c->nidle--;
	free(id);
}

static void
stream_detach(struct h2_stream *st)
{
	if (st->sess != NULL) {
		struct session *s = st->sess;

		st->sess = NULL;
		session_stream_abort(s);
	}
}

static void
stream_free(struct h2_stream *st)
{
	struct h2_conn *c = st->c;

	stream_detach(st);
	if (st->bev != NULL)
		bufferevent_free(st->bev);
	if (st->head != NULL)
		evbuffer_free(st->head);
	if (st->cookie != NULL)
		evbuffer_free(st->cookie);
	if (st->body != NULL)
		evbuffer_free(st->body);
	free(st->method);
	free(st->path);
	free(st->authority);
	free(st->host);
	if (st->prev != NULL)
		st->prev->next = st->next;
	else
		c->streams = st->next;
	if (st->next != NULL)
		st->next->prev = st->prev;
	c->nstreams--;
	free(st);
}

/*
 * The session's answer, as HTTP/1.1, becomes HEADERS (interim ones too) and
 * DATA: header names in lower case, hop-by-hop fields dropped (the
 * session's parser marks them), content-length kept where it is exact.
 */
static int
submit_head(struct h2_stream *st, const struct http_head *resp)
{
	struct h2_conn *c = st->c;
	nghttp2_nv *nv;
	size_t i, n = 0, total = 0;
	char status[4], cl[24], *names, *p;
	nghttp2_data_provider prd;
	int rv;

	for (i = 0; i < resp->nheaders; i++)
		total += resp->headers[i].name_len;
	if ((nv = calloc(resp->nheaders + 2, sizeof(*nv))) == NULL || (names = malloc(total + 1)) == NULL) {
		free(nv);
		return -1;
	}
	snprintf(status, sizeof(status), "%03d", resp->status);
	nv[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status, 7, 3, NGHTTP2_NV_FLAG_NONE};
	p = names;
	for (i = 0; i < resp->nheaders; i++) {
		const struct http_header *h = &resp->headers[i];
		uint32_t k;

		if (h->flags & HTTP_HDR_HOP)
			continue;
		for (k = 0; k < h->name_len; k++)
			p[k] = (char)(h->name[k] >= 'A' && h->name[k] <= 'Z' ? h->name[k] + 32 : h->name[k]);
		nv[n++] = (nghttp2_nv){(uint8_t *)p, (uint8_t *)(uintptr_t)h->value, h->name_len, h->value_len,
		    NGHTTP2_NV_FLAG_NONE};
		p += h->name_len;
	}
	if (resp->status >= 200 && (resp->framing == HTTP_BODY_LENGTH || resp->content_length_present) &&
	    resp->status != 204) {
		int m = snprintf(cl, sizeof(cl), "%llu", (unsigned long long)resp->content_length);

		nv[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)cl, 14, (size_t)m,
		    NGHTTP2_NV_FLAG_NONE};
	}
	if (resp->status < 200) {
		rv = nghttp2_submit_headers(c->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nv, n, NULL);
	} else if (resp->framing == HTTP_BODY_NONE ||
	    (resp->framing == HTTP_BODY_LENGTH && resp->content_length == 0)) {
		rv = nghttp2_submit_response(c->ng, st->id, nv, n, NULL);
	} else {
		if (st->body == NULL && (st->body = evbuffer_new()) == NULL) {
			free(nv);
			free(names);
			return -1;
		}
		prd.source.ptr = st;
		prd.read_callback = body_read;
		rv = nghttp2_submit_response(c->ng, st->id, nv, n, &prd);
	}
	free(nv);
	free(names);
	return rv == 0 ? 0 : -1;
}

/* Moves the session's answer into HEADERS and the body buffer. */
static void
stream_pump(struct h2_stream *st)
{
	struct h2_conn *c = st->c;
	struct worker *w = c->w;
	struct evbuffer *in = bufferevent_get_input(st->bev);
	struct http_head resp;
	size_t len, hl, before;
	const char *data;
	int r;

	while (st->rs == RS_HEAD) {
		len = evbuffer_get_length(in);
		if (len == 0)
			return;
		/* The session's head is at most limits.header_size and the
		 * fields it adds. */
		if (len > 2 * w->cfg->limits.header_size)
			len = 2 * w->cfg->limits.header_size;
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
		if ((hl = http_head_length(data, len, &st->resp_scanned)) == 0)
			return;
		st->resp_scanned = 0;
		if (http_parse_response(data, hl, w->hdrs, w->nhdrs, st->head_method ? "HEAD" : "GET",
		        st->head_method ? 4 : 3, &resp) != HTTP_OK ||
		    resp.status == 101 || submit_head(st, &resp) < 0) {
			/* The session writes only what it parsed: cannot happen. */
			log_warn("%s: stream %d from %s: unusable answer", __func__, st->id, c->client_ip);
			nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
			st->rs = RS_DONE;
			stream_detach(st);
			return;
		}
		evbuffer_drain(in, hl);
		if (resp.status < 200)
			continue;
		st->answered = true;
		st->resp_keepalive = resp.keep_alive && resp.framing != HTTP_BODY_UNTIL_CLOSE;
		st->framing = resp.framing;
		st->remaining = resp.content_length;
		if (resp.framing == HTTP_BODY_CHUNKED)
			http_chunked_init(&st->chunked_dec, false, w->cfg->limits.header_size);
		if (resp.framing == HTTP_BODY_NONE || (resp.framing == HTTP_BODY_LENGTH && resp.content_length == 0))
			st->rs = RS_DONE;
		else
			st->rs = RS_BODY;
	}
	if (st->rs == RS_BODY) {
		size_t room = evbuffer_get_length(st->body) < BODY_HIGH ? BODY_HIGH - evbuffer_get_length(st->body) : 0;

		before = evbuffer_get_length(st->body);
		switch (st->framing) {
		case HTTP_BODY_LENGTH:
			len = evbuffer_get_length(in);
			if (len > room)
				len = room;
			if (len > st->remaining)
				len = (size_t)st->remaining;
			evbuffer_remove_buffer(in, st->body, len);
			st->remaining -= len;
			if (st->remaining == 0)
				st->rs = RS_DONE;
			break;
		case HTTP_BODY_CHUNKED:
			r = http_chunked_step(&st->chunked_dec, in, st->body, room);
			if (r < 0) {
				nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
				st->rs = RS_DONE;
				stream_detach(st);
				return;
			}
			if (r == 1)
				st->rs = RS_DONE;
			break;
		default:
			len = evbuffer_get_length(in);
			if (len > room)
				len = room;
			evbuffer_remove_buffer(in, st->body, len);
			break;
		}
		if (st->rs == RS_DONE)
			st->body_eof = true;
		if (evbuffer_get_length(st->body) >= BODY_HIGH)
			bufferevent_disable(st->bev, EV_READ); /* the session's buffers fill up */
		if (st->deferred && (evbuffer_get_length(st->body) > before || st->body_eof)) {
			st->deferred = false;
			nghttp2_session_resume_data(c->ng, st->id);
		}
	}
	if (st->rs == RS_DONE && st->sess != NULL && !stream_keep_session(st)) {
		/* Answer complete: the session is done with this stream. */
		evbuffer_drain(in, evbuffer_get_length(in));
		stream_detach(st);
	}
}

static void
stream_readcb(struct bufferevent *bev, void *arg)
{
	struct h2_stream *st = arg;
	struct h2_conn *c = st->c;

	(void)bev;
	conn_enter(c);
	stream_pump(st);
	conn_send(c);
	conn_leave(c);
}

/* The session took the body bytes we wrote: give the client window. */
static void
stream_writecb(struct bufferevent *bev, void *arg)
{
	struct h2_stream *st = arg;
	struct h2_conn *c = st->c;

	(void)bev;
	if (st->unconsumed == 0)
		return;
	conn_enter(c);
	nghttp2_session_consume(c->ng, st->id, st->unconsumed);
	st->unconsumed = 0;
	conn_send(c);
	conn_leave(c);
}
