#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "http.h"
#include "json.h"
#include "log.h"
#include "pool.h"
#include "smoke.h"
#include "tls.h"
#include "upstream.h"

#define SMOKE_MAX_HEAD 16384
#define SMOKE_MAX_HEADERS 100
#define SMOKE_MAX_BODY (1024 * 1024)
#define SMOKE_SNIPPET 80 /* body bytes quoted in a "not found" error */

/*
 * A test as the run needs it while exchanges are in flight: copied out of
 * the configuration so that a reload freeing the config cannot pull strings
 * out from under a running smoke run.
 */
struct smoke_test {
	char *method;
	char *path;
	char *expect_body; /* NULL: any body */
	size_t expect_len;
	int expect_status;
	uint64_t timeout_ms;
};

enum exch_state { EX_CONNECTING, EX_HEAD, EX_BODY, EX_DONE };

/* One (test, server) pair: an independent exchange with its own deadline. */
struct smoke_exch {
	struct smoke_run *run;
	const struct smoke_test *test;
	size_t test_no; /* 1-based, as reported */
	struct server *srv;
	struct bufferevent *bev; /* non-NULL while the exchange runs */
	struct event *timer;     /* the deadline */
	enum exch_state state;
	size_t scanned;          /* http_head_length() search position */
	enum http_framing framing;
	uint64_t remaining;      /* HTTP_BODY_LENGTH: bytes still due */
	struct http_chunked chunked;
	struct evbuffer *body;   /* at most SMOKE_MAX_BODY bytes */
	int status;              /* 0 until a final response head arrived */
	bool ok;
	char *error;             /* NULL when ok; valid UTF-8 */
};

struct smoke_run {
	struct event_base *base;
	struct pool *pool; /* referenced */
	smoke_done_cb done;
	void *arg;
	struct smoke_test *tests;
	size_t ntests;
	struct smoke_exch *ex; /* test-major: ex[t * nservers + s] */
	size_t nex;
	size_t pending;
	bool no_server;          /* tests configured but no server up */
	struct event *finish_ev; /* runs the callback from the loop, never from smoke_start() */
	struct http_header hdrs[SMOKE_MAX_HEADERS];
};

static int run_copy_tests(struct smoke_run *run, const struct config *cfg);
static int exch_start(struct smoke_exch *ex, const struct config_smoke *cs);
static void exch_connect(struct smoke_exch *ex);
static int exch_write_request(struct smoke_exch *ex, const struct config_smoke *cs);
static void exch_timer_cb(evutil_socket_t fd, short what, void *arg);
static void exch_readcb(struct bufferevent *bev, void *arg);
static void exch_eventcb(struct bufferevent *bev, short what, void *arg);
static int exch_read_head(struct smoke_exch *ex);
static void exch_read_body(struct smoke_exch *ex, bool eof);
static void exch_judge(struct smoke_exch *ex);
static void exch_finish(struct smoke_exch *ex, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void exch_release(struct smoke_exch *ex);
static void schedule_finish(struct smoke_run *run);
static void run_finish_cb(evutil_socket_t fd, short what, void *arg);
static void run_free(struct smoke_run *run);
static void report_str(struct jbuf *b, const char *s);
static size_t utf8_seq_len(const unsigned char *s, size_t n);
static void sanitize_utf8(char *s, size_t n);
static bool has_header(const struct config_smoke *cs, const char *name);

struct smoke_run *
smoke_start(struct event_base *base, const struct config *cfg, struct pool *pool,
    smoke_done_cb done, void *arg)
{
	struct smoke_run *run;
	size_t t, i, k, nup = 0;

	if ((run = calloc(1, sizeof(*run))) == NULL)
		return NULL;
	run->base = base;
	run->done = done;
	run->arg = arg;
	run->pool = pool;
	pool_ref(pool);
	if ((run->finish_ev = evtimer_new(base, run_finish_cb, run)) == NULL)
		goto fail;
	if (run_copy_tests(run, cfg) < 0)
		goto fail;
	/* The servers up now are the ones tested: one that comes up later was
	 * not part of what the operator switched to. */
	for (i = 0; i < pool->nservers; i++)
		if (atomic_load(&pool->servers[i].up))
			nup++;
	if (run->ntests > 0 && nup == 0)
		run->no_server = true;
	run->nex = run->ntests * nup;
	if (run->nex > 0 && (run->ex = calloc(run->nex, sizeof(*run->ex))) == NULL)
		goto fail;
	k = 0;
	for (t = 0; t < run->ntests; t++) {
		for (i = 0; i < pool->nservers; i++) {
			struct smoke_exch *ex;

			if (!atomic_load(&pool->servers[i].up))
				continue;
			/* Up flags may change under us (workers, health): never
			 * write past the array sized from the first count. */
			if (k == run->nex)
				break;
			ex = &run->ex[k++];
			ex->run = run;
			ex->test = &run->tests[t];
			ex->test_no = t + 1;
			ex->srv = &pool->servers[i];
		}
	}
	run->nex = k;
	run->pending = run->nex;
	for (k = 0; k < run->nex; k++) {
		struct smoke_exch *ex = &run->ex[k];

		if (exch_start(ex, &cfg->smoke[ex->test_no - 1]) < 0)
			goto fail;
	}
	if (run->pending == 0)
		schedule_finish(run);
	return run;
fail:
	run_free(run);
	return NULL;
}

void
smoke_cancel(struct smoke_run *run)
{
	run_free(run);
}

static int
run_copy_tests(struct smoke_run *run, const struct config *cfg)
{
	size_t t;

	if (cfg->nsmoke == 0)
		return 0;
	if ((run->tests = calloc(cfg->nsmoke, sizeof(*run->tests))) == NULL)
		goto fail;
	run->ntests = cfg->nsmoke;
	for (t = 0; t < cfg->nsmoke; t++) {
		const struct config_smoke *cs = &cfg->smoke[t];
		struct smoke_test *st = &run->tests[t];

		st->method = strdup(cs->method != NULL ? cs->method : "GET");
		st->path = strdup(cs->path != NULL ? cs->path : "/");
		if (st->method == NULL || st->path == NULL)
			goto fail;
		if (cs->expect_body != NULL) {
			if ((st->expect_body = strdup(cs->expect_body)) == NULL)
				goto fail;
			st->expect_len = strlen(st->expect_body);
		}
		st->expect_status = cs->expect_status;
		st->timeout_ms = cs->timeout_ms;
	}
	return 0;
fail:
	return -1; /* run_free() releases what was copied */
}

/*
 * Arms the deadline and starts the connection. Returns -1 only on ENOMEM;
 * any other failure finishes the exchange (as failed) and returns 0.
 */
static int
exch_start(struct smoke_exch *ex, const struct config_smoke *cs)
{
	uint64_t ms = ex->test->timeout_ms;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	if ((ex->timer = evtimer_new(ex->run->base, exch_timer_cb, ex)) == NULL)
		goto fail;
	if ((ex->body = evbuffer_new()) == NULL)
		goto fail;
	exch_connect(ex);
	if (ex->state == EX_DONE)
		return 0;
	if (exch_write_request(ex, cs) < 0)
		goto fail;
	evtimer_add(ex->timer, &tv);
	return 0;
fail:
	return -1;
}

/*
 * The transport step: plain TCP, or TLS when the pool has upstream TLS
 * (upstream_bev_new() sets SNI and verification as configured). A
 * connection that cannot be set up or fails at once finishes the exchange.
 */
static void
exch_connect(struct smoke_exch *ex)
{
	struct server *s = ex->srv;

	ex->state = EX_CONNECTING;
	if ((ex->bev = upstream_bev_new(ex->run->base, s)) == NULL) {
		exch_finish(ex, false, "cannot create a connection");
		return;
	}
	bufferevent_setcb(ex->bev, exch_readcb, NULL, exch_eventcb, ex);
	if (bufferevent_socket_connect(ex->bev, (struct sockaddr *)&s->addr.ss, (int)s->addr.len) < 0) {
		exch_finish(ex, false, "connect: %s", strerror(errno));
		return;
	}
	bufferevent_enable(ex->bev, EV_READ | EV_WRITE);
}

static bool
has_header(const struct config_smoke *cs, const char *name)
{
	size_t i;

	for (i = 0; i < cs->nheaders; i++)
		if (strcasecmp(cs->headers[i].name, name) == 0)
			return true;
	return false;
}

/* Queues the request; the bufferevent sends it once connected. */
static int
exch_write_request(struct smoke_exch *ex, const struct config_smoke *cs)
{
	struct evbuffer *out = bufferevent_get_output(ex->bev);
	size_t i;

	if (evbuffer_add_printf(out, "%s %s HTTP/1.1\r\n", ex->test->method, ex->test->path) < 0)
		goto fail;
	if (!has_header(cs, "Host") && evbuffer_add_printf(out, "Host: %s\r\n", server_host(ex->srv)) < 0)
		goto fail;
	if (!has_header(cs, "User-Agent") && evbuffer_add_printf(out, "User-Agent: cutover-smoke\r\n") < 0)
		goto fail;
	for (i = 0; i < cs->nheaders; i++) {
		/* We close after one answer whatever the test says. */
		if (strcasecmp(cs->headers[i].name, "Connection") == 0)
			continue;
		if (evbuffer_add_printf(out, "%s: %s\r\n", cs->headers[i].name, cs->headers[i].value) < 0)
			goto fail;
	}
	if (evbuffer_add_printf(out, "Connection: close\r\n\r\n") < 0)
		goto fail;
	return 0;
fail:
	return -1;
}

static void
exch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smoke_exch *ex = arg;

	(void)fd;
	(void)what;
	if (ex->state == EX_CONNECTING)
		exch_finish(ex, false, "connect timed out after %llums",
		    (unsigned long long)ex->test->timeout_ms);
	else
		exch_finish(ex, false, "timed out after %llums", (unsigned long long)ex->test->timeout_ms);
}

static void
exch_readcb(struct bufferevent *bev, void *arg)
{
	struct smoke_exch *ex = arg;

	(void)bev;
	if (ex->state == EX_CONNECTING)
		ex->state = EX_HEAD;
	if (ex->state == EX_HEAD && exch_read_head(ex) < 0)
		return;
	if (ex->state == EX_BODY)
		exch_read_body(ex, false);
}

static void
exch_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smoke_exch *ex = arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (what & BEV_EVENT_CONNECTED) {
		ex->state = EX_HEAD;
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		unsigned long tls_err = bufferevent_get_openssl_error(bev);
		const char *msg = err ? evutil_socket_error_to_string(err) : "connection error";
		char why[160];

		if (tls_err != 0 && tls_client_verify_failure(bufferevent_openssl_get_ssl(bev),
		    why, sizeof(why)) != NULL) {
			exch_finish(ex, false, "TLS: %s", why);
			return;
		}
		if (tls_err != 0) {
			const char *reason = ERR_reason_error_string(tls_err);

			exch_finish(ex, false, "TLS: %s", reason != NULL ? reason : "handshake failed");
			return;
		}

		if (ex->state == EX_CONNECTING)
			exch_finish(ex, false, "connect: %s", msg);
		else
			exch_finish(ex, false, "%s", msg);
		return;
	}
	/* EOF: whatever is still buffered is the end of the answer. */
	if (ex->state == EX_HEAD) {
		if (exch_read_head(ex) < 0)
			return;
		if (ex->state == EX_HEAD) {
			exch_finish(ex, false, "connection closed before a response");
			return;
		}
	}
	if (ex->state == EX_BODY)
		exch_read_body(ex, true);
	else if (ex->state == EX_CONNECTING)
		exch_finish(ex, false, "connection closed before a response");
}

/*
 * Parses the response head once it is complete and moves to EX_BODY.
 * Interim 1xx answers (other than 101) are skipped. Returns -1 when the
 * exchange finished here.
 */
static int
exch_read_head(struct smoke_exch *ex)
{
	struct evbuffer *in = bufferevent_get_input(ex->bev);
	const struct smoke_test *t = ex->test;
	struct http_head resp;
	const char *data;
	size_t len, n, hl;

	for (;;) {
		len = evbuffer_get_length(in);
		n = len < SMOKE_MAX_HEAD ? len : SMOKE_MAX_HEAD;
		if (n == 0)
			return 0;
		data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		hl = http_head_length(data, n, &ex->scanned);
		if (hl == 0) {
			if (n >= SMOKE_MAX_HEAD) {
				exch_finish(ex, false, "response head too large");
				return -1;
			}
			return 0;
		}
		if (http_parse_response(data, hl, ex->run->hdrs, SMOKE_MAX_HEADERS, t->method,
		        strlen(t->method), &resp) != HTTP_OK) {
			exch_finish(ex, false, "invalid response head");
			return -1;
		}
		evbuffer_drain(in, hl);
		ex->scanned = 0;
		if (resp.status >= 200 || resp.status == 101)
			break;
	}
	ex->status = resp.status;
	ex->framing = resp.upgrade ? HTTP_BODY_NONE : resp.framing;
	ex->remaining = resp.content_length;
	if (ex->framing == HTTP_BODY_CHUNKED)
		http_chunked_init(&ex->chunked, false, 0);
	ex->state = EX_BODY;
	return 0;
}

/* Collects body bytes (up to SMOKE_MAX_BODY) until the framing says done. */
static void
exch_read_body(struct smoke_exch *ex, bool eof)
{
	struct evbuffer *in = bufferevent_get_input(ex->bev);
	size_t have = evbuffer_get_length(ex->body);
	size_t room = SMOKE_MAX_BODY - have, n;
	int r;

	switch (ex->framing) {
	case HTTP_BODY_NONE:
		break;
	case HTTP_BODY_LENGTH:
		n = evbuffer_get_length(in);
		if (n > ex->remaining)
			n = (size_t)ex->remaining;
		if (n > room)
			n = room;
		if (n > 0 && evbuffer_remove_buffer(in, ex->body, n) != (int)n) {
			exch_finish(ex, false, "out of memory");
			return;
		}
		ex->remaining -= n;
		if (ex->remaining > 0 && n < room) {
			if (eof)
				exch_finish(ex, false, "connection closed after %zu of %llu body bytes",
				    have + n, (unsigned long long)(have + n + ex->remaining));
			return;
		}
		break;
	case HTTP_BODY_CHUNKED:
		r = room > 0 ? http_chunked_step(&ex->chunked, in, ex->body, room) : 1;
		if (r < 0) {
			exch_finish(ex, false, "invalid chunked body");
			return;
		}
		if (r == 0 && evbuffer_get_length(ex->body) < SMOKE_MAX_BODY) {
			if (eof)
				exch_finish(ex, false, "connection closed in the middle of a chunked body");
			return;
		}
		break;
	case HTTP_BODY_UNTIL_CLOSE:
		n = evbuffer_get_length(in);
		if (n > room)
			n = room;
		if (n > 0 && evbuffer_remove_buffer(in, ex->body, n) != (int)n) {
			exch_finish(ex, false, "out of memory");
			return;
		}
		if (!eof && n < room)
			return;
		break;
	}
	exch_judge(ex);
}

/* The whole answer (or its first SMOKE_MAX_BODY bytes) is in: pass or fail. */
static void
exch_judge(struct smoke_exch *ex)
{
	const struct smoke_test *t = ex->test;
	size_t blen = evbuffer_get_length(ex->body), n;
	const unsigned char *body;
	char snippet[SMOKE_SNIPPET + 1];

	if (ex->status != t->expect_status) {
		exch_finish(ex, false, "status %d, expected %d", ex->status, t->expect_status);
		return;
	}
	if (t->expect_body == NULL) {
		exch_finish(ex, true, NULL);
		return;
	}
	body = evbuffer_pullup(ex->body, -1);
	if (body == NULL && blen > 0) {
		exch_finish(ex, false, "out of memory");
		return;
	}
	if (blen >= t->expect_len && (t->expect_len == 0 || memmem(body, blen, t->expect_body, t->expect_len) != NULL)) {
		exch_finish(ex, true, NULL);
		return;
	}
	/* Say what came back, made printable and valid UTF-8 for the log and
	 * the JSON report. */
	n = blen < SMOKE_SNIPPET ? blen : SMOKE_SNIPPET;
	if (n > 0)
		memcpy(snippet, body, n);
	snippet[n] = '\0';
	sanitize_utf8(snippet, n);
	exch_finish(ex, false, "body does not contain \"%s\" (%zu bytes%s%s%s%s)", t->expect_body, blen,
	    n > 0 ? ": \"" : "", snippet, n > 0 ? "\"" : "", n < blen ? "..." : "");
}

/*
 * Records the result, releases the connection and the deadline, and once the
 * last exchange finished schedules the run's callback on the loop.
 */
static void
exch_finish(struct smoke_exch *ex, bool ok, const char *fmt, ...)
{
	struct smoke_run *run = ex->run;
	va_list ap;

	if (ex->state == EX_DONE)
		return;
	ex->state = EX_DONE;
	ex->ok = ok;
	if (!ok) {
		char msg[512];

		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		sanitize_utf8(msg, strlen(msg));
		/* NULL here means ENOMEM: the report then says "failed". */
		ex->error = strdup(msg);
		log_debug("%s: smoke test %zu (%s %s) on %s: %s", __func__, ex->test_no, ex->test->method,
		    ex->test->path, server_label(ex->srv), msg);
	}
	exch_release(ex);
	if (--run->pending == 0)
		schedule_finish(run);
}

static void
exch_release(struct smoke_exch *ex)
{
	if (ex->bev != NULL) {
		bufferevent_free(ex->bev);
		ex->bev = NULL;
	}
	if (ex->timer != NULL) {
		event_free(ex->timer);
		ex->timer = NULL;
	}
	if (ex->body != NULL) {
		evbuffer_free(ex->body);
		ex->body = NULL;
	}
}

static void
report_str(struct jbuf *b, const char *s)
{
	char *copy;
	size_t n;

	if (s == NULL) {
		jbuf_raw(b, "null");
		return;
	}
	n = strlen(s);
	if ((copy = malloc(n + 1)) == NULL) {
		b->oom = true;
		return;
	}
	memcpy(copy, s, n + 1);
	sanitize_utf8(copy, n);
	jbuf_strn(b, copy, n);
	free(copy);
}

/* The callback always comes from the loop, even when every exchange failed
 * inside smoke_start(): the caller has the run pointer before it fires. */
static void
schedule_finish(struct smoke_run *run)
{
	struct timeval tv = {0, 0};

	evtimer_add(run->finish_ev, &tv);
}

/* Builds the report and the failure summary, calls back, frees the run. */
static void
run_finish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smoke_run *run = arg;
	struct jbuf report, failure;
	bool ok = true;
	size_t k;

	(void)fd;
	(void)what;
	jbuf_init(&report);
	jbuf_init(&failure);
	jbuf_raw(&report, "[");
	for (k = 0; k < run->nex; k++) {
		const struct smoke_exch *ex = &run->ex[k];
		const char *err = ex->ok ? NULL : ex->error != NULL ? ex->error : "failed";

		if (k > 0)
			jbuf_raw(&report, ",");
		jbuf_printf(&report, "{\"test\":%zu,\"method\":", ex->test_no);
		report_str(&report, ex->test->method);
		jbuf_raw(&report, ",\"path\":");
		report_str(&report, ex->test->path);
		jbuf_raw(&report, ",\"server\":");
		report_str(&report, server_label(ex->srv));
		jbuf_printf(&report, ",\"ok\":%s,\"status\":", ex->ok ? "true" : "false");
		if (ex->status > 0)
			jbuf_printf(&report, "%d", ex->status);
		else
			jbuf_raw(&report, "null");
		jbuf_raw(&report, ",\"error\":");
		report_str(&report, err);
		jbuf_raw(&report, "}");
		if (!ex->ok && ok) {
			ok = false;
			jbuf_printf(&failure, "smoke test %zu (%s %s) on %s: %s", ex->test_no,
			    ex->test->method, ex->test->path, server_label(ex->srv), err);
		}
	}
	jbuf_raw(&report, "]");
	if (run->no_server) {
		ok = false;
		jbuf_free(&failure);
		jbuf_init(&failure);
		jbuf_printf(&failure, "no healthy server in %s", color_name(run->pool->color));
	}
	if (!ok)
		sanitize_utf8(failure.s, failure.len);
	if (report.oom || failure.oom)
		run->done(false, "[]", "smoke tests: out of memory", run->arg);
	else
		run->done(ok, report.s, ok ? NULL : failure.s, run->arg);
	jbuf_free(&report);
	jbuf_free(&failure);
	run_free(run);
}

static void
run_free(struct smoke_run *run)
{
	size_t k;

	if (run == NULL)
		return;
	for (k = 0; k < run->nex; k++) {
		exch_release(&run->ex[k]);
		free(run->ex[k].error);
	}
	free(run->ex);
	for (k = 0; k < run->ntests; k++) {
		free(run->tests[k].method);
		free(run->tests[k].path);
		free(run->tests[k].expect_body);
	}
	free(run->tests);
	if (run->finish_ev != NULL)
		event_free(run->finish_ev);
	pool_unref(run->pool);
	free(run);
}

/* Length of the valid UTF-8 sequence at s (n bytes available), 0 if invalid. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	unsigned c = s[0];
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

/*
 * Rewrites s[0..n) in place so it is printable valid UTF-8 on one line: each
 * byte of an invalid sequence and each control character becomes '?'.
 */
static void
sanitize_utf8(char *s, size_t n)
{
	unsigned char *p = (unsigned char *)s;
	size_t i = 0, l;

	while (i < n) {
		if (p[i] < 0x20 || p[i] == 0x7f) {
			p[i++] = '?';
			continue;
		}
		l = utf8_seq_len(p + i, n - i);
		if (l == 0) {
			p[i++] = '?';
			continue;
		}
		i += l;
	}
}
