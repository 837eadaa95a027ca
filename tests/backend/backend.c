/*
 * cutover-testbackend: the upstream server used by the integration tests and
 * the demo. A small libevent evhttp server that answers with its name and
 * color, and can be told (on the command line or at run time through
 * /_ctl/...) to delay, to fail with a status, or to fail its health path.
 *
 * Usage: cutover-testbackend --listen 127.0.0.1:PORT --name NAME
 *            --color blue|green [--delay MS] [--fail STATUS] [--health-fail]
 *
 * Paths:
 *   /healthz            200 "ok", or 503 when health failing is on
 *   /echo               JSON dump of the request as received (method, uri,
 *                       version, remote port, every header, body)
 *   /bytes?n=N[&cl=1]   N bytes of the test pattern, chunked (or with a
 *                       Content-Length when cl=1), produced incrementally
 *   /status?code=N      answers status N
 *   /delay?ms=N         waits N ms, then answers
 *   /upload             consumes the body, answers "length N crc32 X"
 *   /_ctl/fail?status=N every other path answers N from now on (0: stop)
 *   /_ctl/health?fail=1|0
 *   /_ctl/delay?ms=N    every other path waits N ms first (0: stop)
 *   /_ctl/stats         "accepted N": connections accepted so far, this
 *                       request's own included
 *   anything else       200 "NAME COLOR\n"
 * Every answer carries X-Backend: NAME and X-Color: COLOR.
 *
 * The test pattern is a block of PATTERN_PERIOD bytes, byte j of which is
 * ((j * 131) ^ (j >> 8)) & 0xff, repeated; harness.py generates the same.
 * Prints "ready" on stdout once listening; SIGTERM or SIGINT exits 0.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#define PATTERN_PERIOD 65521u
#define STREAM_CHUNK (256u * 1024u)

/* A request whose answer waits for a timer. */
struct delayed {
	LIST_ENTRY(delayed) link;
	struct evhttp_request *req;
	struct event *timer;
	int status; /* 0: dispatch normally when the timer fires */
};

/* A /bytes answer being streamed, one chunk per write completion. */
struct stream {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	uint64_t sent;
	uint64_t total;
};

static const char *opt_name = "backend";
static const char *opt_color = "blue";
static int fail_status;     /* 0: answer normally */
static bool health_fail;
static unsigned long delay_ms;
static uint64_t accepted; /* connections accepted */
static struct event_base *base;
static unsigned char pattern[PATTERN_PERIOD + STREAM_CHUNK];
static uint32_t crc_table[256];
static LIST_HEAD(, delayed) delayed_list = LIST_HEAD_INITIALIZER(delayed_list);

static void usage(void) __attribute__((noreturn));
static void dispatch(struct evhttp_request *req);
static void handle(struct evhttp_request *req, void *arg);

static void
usage(void)
{
	fprintf(stderr, "usage: cutover-testbackend --listen ADDR:PORT --name NAME "
	                "--color blue|green [--delay MS] [--fail STATUS] [--health-fail]\n");
	exit(2);
}

static void
crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

/* CRC-32 as zlib.crc32 computes it; crc is the running value (start at 0). */
static uint32_t
crc_update(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void
pattern_init(void)
{
	for (size_t i = 0; i < sizeof(pattern); i++) {
		size_t j = i % PATTERN_PERIOD;
		pattern[i] = (unsigned char)(((j * 131u) ^ (j >> 8)) & 0xffu);
	}
}

/* Reads an unsigned decimal query parameter; returns def when absent or bad. */
static uint64_t
query_u64(struct evhttp_request *req, const char *key, uint64_t def)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq params;
	const char *v;
	uint64_t out = def;

	if (q == NULL)
		return def;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(q, &params) == 0 && (v = evhttp_find_header(&params, key)) != NULL) {
		char *end;
		errno = 0;
		unsigned long long x = strtoull(v, &end, 10);
		if (errno == 0 && end != v && *end == '\0')
			out = x;
	}
	evhttp_clear_headers(&params);
	return out;
}

static const char *
path_of(struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *p = uri ? evhttp_uri_get_path(uri) : NULL;
	return (p && *p) ? p : "/";
}

static void
add_identity(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "X-Backend", opt_name);
	evhttp_add_header(h, "X-Color", opt_color);
}

static void
reply_text(struct evhttp_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
reply_text(struct evhttp_request *req, int status, const char *fmt, ...)
{
	struct evbuffer *b = evbuffer_new();
	va_list ap;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	va_start(ap, fmt);
	evbuffer_add_vprintf(b, fmt, ap);
	va_end(ap);
	add_identity(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
	evhttp_send_reply(req, status, NULL, b);
	evbuffer_free(b);
}

static const char *
method_name(enum evhttp_cmd_type t)
{
	switch (t) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	}
	return "UNKNOWN";
}

/* Appends s[0..n) as a JSON string; bytes >= 0x80 become \u00XX (latin-1). */
static void
json_string(struct evbuffer *b, const unsigned char *s, size_t n)
{
	evbuffer_add(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c == '"' || c == '\\')
			evbuffer_add_printf(b, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			evbuffer_add_printf(b, "\\u%04x", c);
		else
			evbuffer_add(b, &c, 1);
	}
	evbuffer_add(b, "\"", 1);
}

static void
json_cstring(struct evbuffer *b, const char *s)
{
	json_string(b, (const unsigned char *)s, strlen(s));
}

static void
handle_echo(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	char *peer = NULL;
	ev_uint16_t port = 0;
	size_t blen = evbuffer_get_length(in);
	bool first = true;

	if (b == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &peer, &port);
	evbuffer_add_printf(b, "{\"method\":");
	json_cstring(b, method_name(evhttp_request_get_command(req)));
	evbuffer_add_printf(b, ",\"uri\":");
	json_cstring(b, evhttp_request_get_uri(req));
	evbuffer_add_printf(b, ",\"version\":\"%d.%d\",\"remote_port\":%u,\"headers\":[",
	    req->major, req->minor, (unsigned)port);
	TAILQ_FOREACH(kv, hdrs, next) {
		evbuffer_add_printf(b, "%s[", first ? "" : ",");
		json_cstring(b, kv->key);
		evbuffer_add(b, ",", 1);
		json_cstring(b, kv->value);
		evbuffer_add(b, "]", 1);
		first = false;
	}
	evbuffer_add_printf(b, "],\"body_length\":%zu,\"body\":", blen);
	json_string(b, evbuffer_pullup(in, -1), blen);
	evbuffer_add_printf(b, ",\"backend\":");
	json_cstring(b, opt_name);
	evbuffer_add_printf(b, ",\"color\":");
	json_cstring(b, opt_color);
	evbuffer_add_printf(b, "}\n");
	add_identity(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evhttp_send_reply(req, 200, NULL, b);
	evbuffer_free(b);
}

static void
handle_upload(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer_iovec v[16];
	uint32_t crc = 0;
	size_t total = evbuffer_get_length(in);

	/* Walk the chains without linearising a possibly huge body. */
	while (evbuffer_get_length(in) > 0) {
		int n = evbuffer_peek(in, -1, NULL, v, 16);
		size_t done = 0;
		if (n > 16)
			n = 16;
		for (int i = 0; i < n; i++) {
			crc = crc_update(crc, v[i].iov_base, v[i].iov_len);
			done += v[i].iov_len;
		}
		evbuffer_drain(in, done);
	}
	reply_text(req, 200, "length %zu crc32 %08" PRIx32 "\n", total, crc);
}

static void stream_next(struct evhttp_connection *evcon, void *arg);

static void
stream_closed(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;
	(void)evcon;
	/* The connection (and the request with it) is going away mid-stream. */
	free(s);
}

static void
stream_next(struct evhttp_connection *evcon, void *arg)
{
	struct stream *s = arg;
	struct evbuffer *b;
	size_t off, n;

	(void)evcon;
	if (s->sent >= s->total) {
		evhttp_connection_set_closecb(s->evcon, NULL, NULL);
		evhttp_send_reply_end(s->req);
		free(s);
		return;
	}
	b = evbuffer_new();
	if (b == NULL)
		return;
	off = (size_t)(s->sent % PATTERN_PERIOD);
	n = STREAM_CHUNK;
	if (s->total - s->sent < n)
		n = (size_t)(s->total - s->sent);
	evbuffer_add_reference(b, pattern + off, n, NULL, NULL);
	s->sent += n;
	evhttp_send_reply_chunk_with_cb(s->req, b, stream_next, s);
	evbuffer_free(b);
}

static void
handle_bytes(struct evhttp_request *req)
{
	struct stream *s = calloc(1, sizeof(*s));
	char len[32];

	if (s == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	s->req = req;
	s->evcon = evhttp_request_get_connection(req);
	s->total = query_u64(req, "n", 0);
	add_identity(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/octet-stream");
	if (query_u64(req, "cl", 0)) {
		snprintf(len, sizeof(len), "%" PRIu64, s->total);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Length", len);
	}
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD || s->total == 0) {
		free(s);
		evhttp_send_reply(req, 200, NULL, NULL);
		return;
	}
	evhttp_connection_set_closecb(s->evcon, stream_closed, s);
	evhttp_send_reply_start(req, 200, NULL);
	stream_next(s->evcon, s);
}

static void
delayed_fire(evutil_socket_t fd, short what, void *arg)
{
	struct delayed *d = arg;
	struct evhttp_request *req = d->req;
	(void)fd;
	(void)what;
	LIST_REMOVE(d, link);
	event_free(d->timer);
	free(d);
	dispatch(req);
}

static int
delay_then_dispatch(struct evhttp_request *req, unsigned long ms)
{
	struct delayed *d = calloc(1, sizeof(*d));
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	if (d == NULL)
		return -1;
	d->req = req;
	d->timer = evtimer_new(base, delayed_fire, d);
	if (d->timer == NULL) {
		free(d);
		return -1;
	}
	LIST_INSERT_HEAD(&delayed_list, d, link);
	evtimer_add(d->timer, &tv);
	return 0;
}

/* Answers a request once any delay has passed. */
static void
dispatch(struct evhttp_request *req)
{
	const char *path = path_of(req);

	if (strcmp(path, "/healthz") == 0) {
		if (health_fail)
			reply_text(req, 503, "unhealthy\n");
		else
			reply_text(req, 200, "ok");
		return;
	}
	if (fail_status) {
		reply_text(req, fail_status, "%s %s fail\n", opt_name, opt_color);
		return;
	}
	if (strcmp(path, "/echo") == 0)
		handle_echo(req);
	else if (strcmp(path, "/bytes") == 0)
		handle_bytes(req);
	else if (strcmp(path, "/upload") == 0)
		handle_upload(req);
	else if (strcmp(path, "/status") == 0) {
		int code = (int)query_u64(req, "code", 200);
		if (code < 200 || code > 599)
			code = 500;
		reply_text(req, code, "%s %s status %d\n", opt_name, opt_color, code);
	} else
		reply_text(req, 200, "%s %s\n", opt_name, opt_color);
}

static void
handle(struct evhttp_request *req, void *arg)
{
	const char *path = path_of(req);
	(void)arg;

	if (strcmp(path, "/_ctl/fail") == 0) {
		fail_status = (int)query_u64(req, "status", 0);
		reply_text(req, 200, "fail %d\n", fail_status);
		return;
	}
	if (strcmp(path, "/_ctl/health") == 0) {
		health_fail = query_u64(req, "fail", 0) != 0;
		reply_text(req, 200, "health-fail %d\n", health_fail);
		return;
	}
	if (strcmp(path, "/_ctl/stats") == 0) {
		reply_text(req, 200, "accepted %" PRIu64 "\n", accepted);
		return;
	}
	if (strcmp(path, "/_ctl/delay") == 0) {
		delay_ms = (unsigned long)query_u64(req, "ms", 0);
		reply_text(req, 200, "delay %lu\n", delay_ms);
		return;
	}
	unsigned long ms = delay_ms;
	if (strcmp(path, "/delay") == 0)
		ms += (unsigned long)query_u64(req, "ms", 0);
	if (ms > 0) {
		if (delay_then_dispatch(req, ms) < 0)
			evhttp_send_error(req, 500, NULL);
		return;
	}
	dispatch(req);
}

/* evhttp asks for a bufferevent per accepted connection: count them there. */
static struct bufferevent *
new_conn_bev(struct event_base *b, void *arg)
{
	(void)arg;
	accepted++;
	return bufferevent_socket_new(b, -1, BEV_OPT_CLOSE_ON_FREE);
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"name", required_argument, NULL, 'n'},
		{"color", required_argument, NULL, 'c'},
		{"delay", required_argument, NULL, 'd'},
		{"fail", required_argument, NULL, 'f'},
		{"health-fail", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	const char *listen_arg = NULL;
	char host[256];
	const char *colon;
	char *end;
	long port;
	int ch, rc = 1;
	struct evhttp *http = NULL;
	struct event *sigterm = NULL, *sigint = NULL;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen_arg = optarg; break;
		case 'n': opt_name = optarg; break;
		case 'c': opt_color = optarg; break;
		case 'd': delay_ms = strtoul(optarg, NULL, 10); break;
		case 'f': fail_status = atoi(optarg); break;
		case 'H': health_fail = true; break;
		default: usage();
		}
	}
	if (listen_arg == NULL || optind != argc)
		usage();
	if (strcmp(opt_color, "blue") != 0 && strcmp(opt_color, "green") != 0)
		usage();
	colon = strrchr(listen_arg, ':');
	if (colon == NULL || (size_t)(colon - listen_arg) >= sizeof(host))
		usage();
	memcpy(host, listen_arg, (size_t)(colon - listen_arg));
	host[colon - listen_arg] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		usage();

	signal(SIGPIPE, SIG_IGN);
	crc_init();
	pattern_init();
	base = event_base_new();
	if (base == NULL)
		goto fail;
	http = evhttp_new(base);
	if (http == NULL)
		goto fail;
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_timeout(http, 120);
	evhttp_set_gencb(http, handle, NULL);
	evhttp_set_bevcb(http, new_conn_bev, NULL);
	if (evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port) == NULL) {
		fprintf(stderr, "cutover-testbackend: cannot listen on %s\n", listen_arg);
		goto fail;
	}
	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	if (sigterm == NULL || sigint == NULL || event_add(sigterm, NULL) < 0 || event_add(sigint, NULL) < 0)
		goto fail;
	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(base);
	rc = 0;
fail:
	while (!LIST_EMPTY(&delayed_list)) {
		struct delayed *d = LIST_FIRST(&delayed_list);
		LIST_REMOVE(d, link);
		event_free(d->timer);
		free(d);
	}
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (http)
		evhttp_free(http);
	if (base)
		event_base_free(base);
	return rc;
}
