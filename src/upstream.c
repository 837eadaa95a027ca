#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "clock.h"
#include "dnsname.h"
#include "fdlimit.h"
#include "log.h"
#include "pool.h"
#include "reader.h"
#include "tls.h"
#include "upstream.h"
#include "worker.h"

static void idle_readcb(struct bufferevent *bev, void *arg);
static void idle_eventcb(struct bufferevent *bev, short what, void *arg);
static void idle_unlink(struct upstream_conn *c);
static void idle_link(struct upstream_conn *c);
static void local_failure(const struct server *s);
static void purge_server(struct worker *w, struct server *s, uint64_t cutoff_ms);

void
upstream_idle_init(struct upstream_idle *idle)
{
	TAILQ_INIT(&idle->list);
	idle->count = 0;
}

struct upstream_conn *
upstream_take_idle(struct worker *w, struct server *s)
{
	struct upstream_idle *idle = &s->idle[w->id];
	struct upstream_conn *c;

	if ((c = TAILQ_FIRST(&idle->list)) == NULL)
		return NULL;
	idle_unlink(c);
	return c;
}

struct upstream_conn *
upstream_connect(struct worker *w, struct server *s, bufferevent_data_cb readcb,
    bufferevent_data_cb writecb, bufferevent_event_cb eventcb, void *arg)
{
	struct upstream_conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	if ((c->bev = upstream_bev_new(w->base, s)) == NULL)
		goto fail;
	c->server = s;
	c->w = w;
	bufferevent_setcb(c->bev, readcb, writecb, eventcb, arg);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&s->addr.ss, (int)s->addr.len) < 0) {
		int saved = errno;

		bufferevent_free(c->bev);
		free(c);
		errno = saved ? saved : ECONNREFUSED;
		if (fdlimit_local_error(errno))
			local_failure(s);
		return NULL;
	}
	/* A plain socket is read by a reader: no FIONREAD per read. */
	if (s->pool->tls == NULL && (c->rd = reader_new(c->bev)) == NULL) {
		bufferevent_free(c->bev);
		goto fail;
	}
	(void)setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	stat_inc(&w->stats.upstream_connects);
	return c;
fail:
	free(c);
	errno = ENOMEM;
	local_failure(s);
	return NULL;
}

/* Any worker thread: the rate limit is shared. errno is kept. */
static void
local_failure(const struct server *s)
{
	static struct log_rate rate;
	unsigned long n;

	if (log_rate_due(&rate, FDLIMIT_LOG_INTERVAL_MS, &n))
		log_warn("%s: connect %s: %s; a local failure, not counted against the server "
		         "(%lu in %us)",
		    __func__, server_label(s), strerror(errno), n, FDLIMIT_LOG_INTERVAL_MS / 1000);
}

struct bufferevent *
upstream_bev_new(struct event_base *base, const struct server *s)
{
	struct bufferevent *bev;
	SSL *ssl;

	if (s->pool->tls == NULL)
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->name != NULL) {
		/* "host:port": the host is the name to send and to check. */
		char host[DNSNAME_HOST_MAX];
		const char *colon = strrchr(s->name, ':');
		size_t n = colon != NULL ? (size_t)(colon - s->name) : strlen(s->name);

		if (n >= sizeof(host))
			return NULL;
		memcpy(host, s->name, n);
		host[n] = '\0';
		ssl = tls_client_ssl_host(s->pool->tls, &s->addr, host);
	} else {
		ssl = tls_client_ssl(s->pool->tls, &s->addr);
	}
	if (ssl == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return NULL; /* libevent freed ssl (BEV_OPT_CLOSE_ON_FREE) */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

void
upstream_release(struct upstream_conn *c)
{
	struct worker *w = c->w;
	struct upstream_idle *idle = &c->server->idle[w->id];
	struct route *r = route_current();

	/* A connection a request just used is one demand needed: kept, unless
	 * a fixed keepalive cap says otherwise (0 disables reuse), or this
	 * worker already holds idle as many connections as it may serve
	 * clients (the descriptor budget). The purge tick trims the surplus.
	 * Connections to a color that is no longer active (a switch happened
	 * while this request drained) or to a pool a reload replaced are not
	 * kept: idle connections to the old color are closed at a switch. */
	if (idle->count >= w->cfg->upstream.keepalive || w->upstream_idle >= worker_idle_cap(w) ||
	    w->stopping ||
	    atomic_load_explicit(&c->server->pool->retired, memory_order_relaxed) ||
	    (r != NULL && !route_serves(r, c->server->color))) {
		upstream_close(c);
		return;
	}
	idle_link(c);
}

/* Puts c at the head of its server's idle list, watched for data, EOF and the idle timeout. */
static void
idle_link(struct upstream_conn *c)
{
	struct worker *w = c->w;
	struct upstream_idle *idle = &c->server->idle[w->id];
	struct timeval tv;

	/* An idle connection keeps its pool alive (a reload may drop the pool). */
	pool_ref(c->server->pool);
	TAILQ_INSERT_HEAD(&idle->list, c, link);
	idle->count++;
	w->upstream_idle++;
	c->idle_since_ms = clock_mono_ms();
	bufferevent_setcb(c->bev, idle_readcb, NULL, idle_eventcb, c);
	tv.tv_sec = (time_t)(w->cfg->timeouts.upstream_idle_ms / 1000);
	tv.tv_usec = (suseconds_t)(w->cfg->timeouts.upstream_idle_ms % 1000) * 1000;
	reader_set_timeouts(c->rd, c->bev, &tv, NULL);
	reader_enable(c->rd, c->bev);
}

void
upstream_close(struct upstream_conn *c)
{
	if (c == NULL)
		return;
	reader_free(c->rd);
	bufferevent_free(c->bev);
	free(c);
}

void
upstream_close_idle_pool(struct worker *w, struct pool *p)
{
	size_t i;

	for (i = 0; i < p->nservers; i++) {
		struct upstream_idle *idle = &p->servers[i].idle[w->id];
		struct upstream_conn *c;

		while ((c = TAILQ_FIRST(&idle->list)) != NULL) {
			idle_unlink(c);
			upstream_close(c);
		}
	}
}

void
upstream_adopt_idle(struct worker *w, struct pool *from, struct pool *to)
{
	size_t i, j;

	if (from == to || to == NULL)
		return;
	for (i = 0; i < from->nservers; i++) {
		struct server *os = &from->servers[i], *ns = NULL;
		struct upstream_idle *idle = &os->idle[w->id];
		struct upstream_conn *c;

		if (TAILQ_EMPTY(&idle->list))
			continue;
		for (j = 0; j < to->nservers && ns == NULL; j++)
			if (strcmp(server_label(&to->servers[j]), server_label(os)) == 0)
				ns = &to->servers[j];
		if (ns == NULL)
			continue;
		/* Oldest first, each to the head: the order is kept. */
		while ((c = TAILQ_LAST(&idle->list, upstream_list)) != NULL) {
			uint64_t since = c->idle_since_ms;

			idle_unlink(c);
			c->server = ns;
			idle_link(c);
			c->idle_since_ms = since;
		}
	}
}

void
upstream_purge(struct worker *w)
{
	struct route *r = route_current();
	uint64_t now = clock_mono_ms(), delay = w->cfg->upstream.purge_delay_ms;
	size_t i;
	int col;

	if (r == NULL || w->upstream_idle == 0 || now < delay)
		return;
	for (col = 0; col < COLOR_COUNT; col++)
		for (i = 0; r->pools[col] != NULL && i < r->pools[col]->nservers; i++)
			purge_server(w, &r->pools[col]->servers[i], now - delay);
}

/*
 * The list is ordered by idle_since_ms, newest at the head: the connections
 * idle since cutoff_ms or longer are a run at the tail. Closing half of them
 * per tick (HAProxy closes half its excess per pool-purge-delay too) shrinks
 * a surplus of n in about log2(n) ticks, so a lull shorter than that costs a
 * burst that comes back only part of its connections.
 */
static void
purge_server(struct worker *w, struct server *s, uint64_t cutoff_ms)
{
	struct upstream_idle *idle = &s->idle[w->id];
	struct upstream_conn *c;
	unsigned n = 0;

	for (c = TAILQ_LAST(&idle->list, upstream_list); c != NULL && c->idle_since_ms <= cutoff_ms;
	    c = TAILQ_PREV(c, upstream_list, link))
		n++;
	for (n = (n + 1) / 2; n > 0; n--) {
		c = TAILQ_LAST(&idle->list, upstream_list);
		idle_unlink(c);
		upstream_close(c);
	}
}

/* Removes c from its idle list and drops the pool reference idling held. */
static void
idle_unlink(struct upstream_conn *c)
{
	struct upstream_idle *idle = &c->server->idle[c->w->id];

	TAILQ_REMOVE(&idle->list, c, link);
	idle->count--;
	c->w->upstream_idle--;
	reader_set_timeouts(c->rd, c->bev, NULL, NULL);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	/* The pool outlives this call: the taker holds its own reference. */
	pool_unref(c->server->pool);
}

/* An idle server must not speak: data or EOF means the connection is done. */
static void
idle_readcb(struct bufferevent *bev, void *arg)
{
	struct upstream_conn *c = arg;

	(void)bev;
	idle_unlink(c);
	upstream_close(c);
}

static void
idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct upstream_conn *c = arg;

	(void)bev;
	(void)what;
	idle_unlink(c);
	upstream_close(c);
}
