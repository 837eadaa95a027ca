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

#include "clock.h"
#include "fdlimit.h"
#include "health.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "pool.h"
#include "tls.h"
#include "upstream.h"

#define HEALTH_MAX_HEAD 16384
#define HEALTH_MAX_HEADERS 100
#define HEALTH_LOCAL_LOG_MS 10000

struct check {
	struct health *h;
	struct server *srv;
	struct event *timer;
	struct bufferevent *bev; /* non-NULL while a check runs */
	uint64_t started_us;
	size_t scanned;
	unsigned passes;   /* consecutive */
	unsigned failures; /* consecutive */
	bool checked;
	bool was_up;
	char last[192];
	double latency_ms;
};

struct health {
	struct event_base *base;
	char *path;
	uint64_t interval_ms, timeout_ms;
	unsigned rise, fall;
	int expect_status;
	struct pool *pools[COLOR_COUNT];
	struct check *checks;
	size_t nchecks;
	struct http_header hdrs[HEALTH_MAX_HEADERS];
	health_down_cb on_down;
	void *on_down_arg;
};

static void check_timer_cb(evutil_socket_t fd, short what, void *arg);
static void check_readcb(struct bufferevent *bev, void *arg);
static void check_eventcb(struct bufferevent *bev, short what, void *arg);
static void check_start(struct check *c);
static void check_done(struct check *c, bool pass, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_not_run(struct check *c, const char *why);
static void schedule(struct check *c, uint64_t ms);

struct health *
health_new(struct event_base *base, const struct config_health *cfg, struct pool *pools[COLOR_COUNT])
{
	struct health *h;
	size_t i, k = 0;
	int col;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return NULL;
	h->base = base;
	h->interval_ms = cfg->interval_ms;
	h->timeout_ms = cfg->timeout_ms;
	h->rise = cfg->rise;
	h->fall = cfg->fall;
	h->expect_status = cfg->expect_status;
	if ((h->path = strdup(cfg->path)) == NULL)
		goto fail;
	for (col = 0; col < COLOR_COUNT; col++) {
		h->pools[col] = pools[col];
		pool_ref(pools[col]);
		h->nchecks += pools[col]->nservers;
	}
	if (h->nchecks > 0 && (h->checks = calloc(h->nchecks, sizeof(*h->checks))) == NULL)
		goto fail;
	for (col = 0; col < COLOR_COUNT; col++) {
		for (i = 0; i < pools[col]->nservers; i++, k++) {
			struct check *c = &h->checks[k];

			c->h = h;
			c->srv = &pools[col]->servers[i];
			c->was_up = atomic_load(&c->srv->up);
			snprintf(c->last, sizeof(c->last), "not checked yet");
			if ((c->timer = evtimer_new(base, check_timer_cb, c)) == NULL)
				goto fail;
			schedule(c, 0);
		}
	}
	return h;
fail:
	health_free(h);
	return NULL;
}

void
health_carry(struct health *h, const struct health *prev)
{
	size_t i, j;

	for (i = 0; i < h->nchecks; i++) {
		struct check *c = &h->checks[i];

		for (j = 0; j < prev->nchecks; j++) {
			const struct check *o = &prev->checks[j];

			if (o->srv->color != c->srv->color ||
			    strcmp(server_label(o->srv), server_label(c->srv)) != 0)
				continue;
			c->passes = o->passes;
			c->failures = o->failures;
			c->checked = o->checked;
			c->latency_ms = o->latency_ms;
			memcpy(c->last, o->last, sizeof(c->last));
			break;
		}
	}
}

void
health_set_down_cb(struct health *h, health_down_cb cb, void *arg)
{
	h->on_down = cb;
	h->on_down_arg = arg;
}

void
health_free(struct health *h)
{
	size_t i;
	int col;

	if (h == NULL)
		return;
	for (i = 0; i < h->nchecks; i++) {
		if (h->checks[i].timer != NULL)
			event_free(h->checks[i].timer);
		if (h->checks[i].bev != NULL)
			bufferevent_free(h->checks[i].bev);
	}
	free(h->checks);
	for (col = 0; col < COLOR_COUNT; col++)
		pool_unref(h->pools[col]);
	free(h->path);
	free(h);
}

void
health_report(const struct health *h, int only, struct jbuf *out)
{
	size_t i;
	bool first = true;

	jbuf_raw(out, "[");
	for (i = 0; i < h->nchecks; i++) {
		const struct check *c = &h->checks[i];

		if (only >= 0 && (int)c->srv->color != only)
			continue;
		if (!first)
			jbuf_raw(out, ",");
		first = false;
		jbuf_raw(out, "{\"color\":");
		jbuf_str(out, color_name(c->srv->color));
		jbuf_raw(out, ",\"address\":");
		jbuf_str(out, server_label(c->srv));
		if (c->srv->name != NULL) {
			jbuf_raw(out, ",\"name\":");
			jbuf_str(out, c->srv->name);
		}
		jbuf_printf(out, ",\"state\":\"%s\",\"checked\":%s,\"confirmed\":%s,\"last\":",
		    atomic_load(&c->srv->up) ? "up" : "down", c->checked ? "true" : "false",
		    atomic_load(&c->srv->confirmed) ? "true" : "false");
		jbuf_str(out, c->last);
		jbuf_printf(out, ",\"latency_ms\":%.3f,\"passes\":%u,\"failures\":%u}", c->latency_ms,
		    c->passes, c->failures);
	}
	jbuf_raw(out, "]");
}

static void
schedule(struct check *c, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(c->timer, &tv);
}

/* The timer either starts a check or, while one runs, is its deadline. */
static void
check_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct check *c = arg;

	(void)fd;
	(void)what;
	if (c->bev != NULL)
		check_done(c, false, "timed out after %llums", (unsigned long long)c->h->timeout_ms);
	else
		check_start(c);
}

static void
check_start(struct check *c)
{
	struct health *h = c->h;
	struct evbuffer *out;

	c->scanned = 0;
	c->started_us = clock_mono_us();
	c->bev = upstream_bev_new(h->base, c->srv);
	if (c->bev == NULL) {
		check_not_run(c, "out of memory");
		return;
	}
	bufferevent_setcb(c->bev, check_readcb, NULL, check_eventcb, c);
	out = bufferevent_get_output(c->bev);
	evbuffer_add_printf(out,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cutover-health\r\nConnection: close\r\n\r\n",
	    h->path, server_host(c->srv));
	schedule(c, h->timeout_ms);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&c->srv->addr.ss,
	        (int)c->srv->addr.len) < 0) {
		int err = errno;

		if (fdlimit_local_error(err))
			check_not_run(c, strerror(err));
		else
			check_done(c, false, "connect: %s", strerror(err));
		return;
	}
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void
check_readcb(struct bufferevent *bev, void *arg)
{
	struct check *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in), n, hl;
	struct http_head resp;
	const char *data;

	n = len < HEALTH_MAX_HEAD ? len : HEALTH_MAX_HEAD;
	data = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
	hl = http_head_length(data, n, &c->scanned);
	if (hl == 0) {
		if (n >= HEALTH_MAX_HEAD)
			check_done(c, false, "response head too large");
		return;
	}
	if (http_parse_response(data, hl, c->h->hdrs, HEALTH_MAX_HEADERS, "GET", 3, &resp) != HTTP_OK) {
		check_done(c, false, "invalid response");
		return;
	}
	if (resp.status == c->h->expect_status)
		check_done(c, true, "%d %s", resp.status, http_reason(resp.status));
	else
		check_done(c, false, "status %d, expected %d", resp.status, c->h->expect_status);
}

static void
check_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct check *c = arg;
	int err = EVUTIL_SOCKET_ERROR();

	char why[160];
	const char *tls_why = NULL;

	if (what & BEV_EVENT_CONNECTED)
		return;
	/* A certificate for the wrong name (or from the wrong CA) says so in
	 * the server's health, not just "connection error". */
	if ((what & BEV_EVENT_ERROR) && c->srv->pool->tls != NULL)
		tls_why = tls_client_verify_failure(bufferevent_openssl_get_ssl(bev), why, sizeof(why));
	if (tls_why != NULL)
		check_done(c, false, "%s", tls_why);
	else if (what & BEV_EVENT_ERROR)
		check_done(c, false, "%s", err ? evutil_socket_error_to_string(err) : "connection error");
	else
		check_done(c, false, "connection closed before a response");
}

/*
 * The check could not run for lack of a resource of ours (descriptors,
 * memory): that says nothing about the server, so neither its counts nor its
 * state change; the next check runs at the usual interval.
 */
static void
check_not_run(struct check *c, const char *why)
{
	static struct log_rate rate;
	unsigned long n;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
	snprintf(c->last, sizeof(c->last), "not checked: %s", why);
	if (log_rate_due(&rate, HEALTH_LOCAL_LOG_MS, &n))
		log_warn("%s: %s server %s: %s; not counted against the server (%lu check%s skipped in %us)",
		    __func__, color_name(c->srv->color), server_label(c->srv), c->last, n, n == 1 ? "" : "s",
		    HEALTH_LOCAL_LOG_MS / 1000);
	schedule(c, c->h->interval_ms);
}

/* Records a result, moves the server up or down, schedules the next check. */
static void
check_done(struct check *c, bool pass, const char *fmt, ...)
{
	struct health *h = c->h;
	struct server *s = c->srv;
	uint64_t elapsed_ms = (clock_mono_us() - c->started_us) / 1000;
	bool up = atomic_load(&s->up);
	va_list ap;

	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
	va_start(ap, fmt);
	vsnprintf(c->last, sizeof(c->last), fmt, ap);
	va_end(ap);
	c->latency_ms = (double)(clock_mono_us() - c->started_us) / 1000.0;
	c->checked = true;
	/* Taken down by live traffic since we last looked: start over. */
	if (!up && c->was_up)
		c->passes = 0;
	if (pass) {
		c->passes++;
		c->failures = 0;
		if (c->passes >= h->rise) {
			atomic_store(&s->confirmed, true);
			s->fresh = false;
			if (!up) {
				atomic_store(&s->passive_fails, 0);
				atomic_store(&s->up, true);
				up = true;
				log_info("health: %s server %s is up (%u checks passed)",
				    color_name(s->color), server_label(s), c->passes);
			}
		}
	} else {
		c->failures++;
		c->passes = 0;
		atomic_store(&s->confirmed, false);
		if (c->failures >= h->fall && up) {
			atomic_store(&s->up, false);
			up = false;
			log_warn("%s: health: %s server %s is down: %s", __func__, color_name(s->color), server_label(s),
			    c->last);
			c->was_up = up;
			schedule(c, elapsed_ms >= h->interval_ms ? 0 : h->interval_ms - elapsed_ms);
			if (h->on_down != NULL)
				h->on_down(h->on_down_arg);
			return;
		}
	}
	c->was_up = up;
	schedule(c, elapsed_ms >= h->interval_ms ? 0 : h->interval_ms - elapsed_ms);
}
