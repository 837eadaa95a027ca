#include "autoconf.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "clock.h"
#include "fdlimit.h"
#include "h2.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "prelude.h"
#include "session.h"
#include "upstream.h"
#include "worker.h"

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
    void *arg);
static void accept_error_cb(struct evconnlistener *l, void *arg);
static void wake_cb(evutil_socket_t fd, short what, void *arg);
static void *worker_main(void *arg);
static void listeners_set(struct worker *w, bool on);
static void listener_resume(void *arg);
static unsigned conn_limit(const struct worker *w);
static void listeners_free(struct worker *w);
static struct worker_listener *listener_open(struct worker *w, unsigned index, const struct addr *a);
static void listener_close(struct worker_listener *wl);
static void listeners_rebuild(struct worker *w, const struct config *oc, const struct config *nc);
static void maybe_exit(struct worker *w);
static void post_peers(unsigned msg);
static void apply_reload(struct worker *w);
static void heartbeat_cb(evutil_socket_t fd, short what, void *arg);
static void purge_cb(evutil_socket_t fd, short what, void *arg);
static void purge_arm(struct worker *w);

/*
 * limits.max_connections holds for the whole daemon, not per worker: the
 * kernel spreads connections over the SO_REUSEPORT sockets by hash, so a
 * per-worker share would refuse connections while other workers idle. One
 * shared counter; crossing the limit pauses every worker's listeners (they
 * wait in the kernel backlog) and dropping below it resumes them.
 */
static _Atomic unsigned total_conns;
static _Atomic bool all_paused;
/* What the descriptor limit allows, below limits.max_connections. */
static _Atomic unsigned conn_cap = UINT_MAX;
static struct worker *peers;
static unsigned npeers;

/*
 * Binds addr with SO_REUSEADDR but not SO_REUSEPORT: that fails if anything
 * already listens there, which SO_REUSEPORT would hide (two daemons sharing
 * a port by accident). Returns 0, or an errno value.
 */
static int
probe_addr(const struct addr *a)
{
	int fd, one = 1, err = 0;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		err = errno;
	close(fd);
	return err;
}

int
worker_probe_listeners(const struct config *cfg)
{
	size_t i;
	int err;

	for (i = 0; i < cfg->nlistens; i++) {
		if ((err = probe_addr(&cfg->listens[i].addr)) != 0) {
			log_err("%s: listen %s: %s", __func__, cfg->listens[i].addr.text, strerror(err));
			return -1;
		}
	}
	return 0;
}

int
worker_probe_new_listeners(const struct config *old, const struct config *next,
    struct config_errors *errs)
{
	size_t i, j;
	int err, rc = 0;

	for (i = 0; i < next->nlistens; i++) {
		for (j = 0; j < old->nlistens; j++)
			if (strcmp(old->listens[j].addr.text, next->listens[i].addr.text) == 0)
				break;
		if (j < old->nlistens)
			continue;
		if ((err = probe_addr(&next->listens[i].addr)) != 0) {
			config_errors_add(errs, "%s:%d: listen %s: %s", next->path, next->listens[i].line,
			    next->listens[i].addr.text, strerror(err));
			rc = -1;
		}
	}
	return rc;
}

int
worker_init(struct worker *w, unsigned id, unsigned nworkers, const struct config *cfg)
{
	struct event_config *ec = NULL;
	size_t i;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->cfg = cfg;
	w->wake_fd = -1;
	TAILQ_INIT(&w->sessions);
	TAILQ_INIT(&w->flushq);
	atomic_init(&w->pending, 0);
	(void)nworkers;
	/* One slot more than a head may have: for the ramp's Set-Cookie. */
	if ((w->hdrs = calloc(cfg->limits.header_count + 1, sizeof(*w->hdrs))) == NULL)
		goto fail;
	w->nhdrs = cfg->limits.header_count;
	/* Nothing on this base is touched by another thread: no locks. */
	if ((ec = event_config_new()) == NULL)
		goto fail;
	event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
	/* Coalesce the add/delete churn of one loop turn into one epoll_ctl
	 * per fd (safe: no fd is ever dup()ed here). */
	event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	w->base = event_base_new_with_config(ec);
	event_config_free(ec);
	if (w->base == NULL)
		goto fail;
	if ((w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
		goto fail;
	if ((w->wake_ev = event_new(w->base, w->wake_fd, EV_READ | EV_PERSIST, wake_cb, w)) == NULL ||
	    event_add(w->wake_ev, NULL) < 0)
		goto fail;
	if ((w->heartbeat_ev = event_new(w->base, -1, EV_PERSIST, heartbeat_cb, w)) == NULL)
		goto fail;
	if ((w->flush_ev = event_new(w->base, -1, 0, session_flush_cb, w)) == NULL)
		goto fail;
	if ((w->purge_ev = event_new(w->base, -1, EV_PERSIST, purge_cb, w)) == NULL)
		goto fail;
	purge_arm(w);
	{
		struct timeval sec = {1, 0};

		atomic_store(&w->heartbeat_ms, clock_mono_ms());
		event_add(w->heartbeat_ev, &sec);
	}
	if ((w->listeners = calloc(cfg->nlistens, sizeof(*w->listeners))) == NULL)
		goto fail;
	for (i = 0; i < cfg->nlistens; i++) {
		if ((w->listeners[i] = listener_open(w, (unsigned)i, &cfg->listens[i].addr)) == NULL)
			goto fail;
		w->nlisteners++;
	}
	return 0;
fail:
	if (errno != 0)
		log_err("%s: worker %u: %s", __func__, id, strerror(errno));
	worker_free(w);
	return -1;
}

int
worker_start(struct worker *w)
{
	int rc = pthread_create(&w->thread, NULL, worker_main, w);

	if (rc != 0) {
		log_err("%s: pthread_create: %s", __func__, strerror(rc));
		return -1;
	}
	w->started = true;
	return 0;
}

void
worker_post(struct worker *w, unsigned msg)
{
	uint64_t one = 1;

	atomic_fetch_or(&w->pending, msg);
	if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("%s: wake worker %u: %s", __func__, w->id, strerror(errno));
}

void
worker_free(struct worker *w)
{
	if (w->started) {
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	listeners_free(w);
	if (w->heartbeat_ev != NULL)
		event_free(w->heartbeat_ev);
	w->heartbeat_ev = NULL;
	if (w->purge_ev != NULL)
		event_free(w->purge_ev);
	w->purge_ev = NULL;
	if (w->flush_ev != NULL)
		event_free(w->flush_ev);
	w->flush_ev = NULL;
	if (w->wake_ev != NULL)
		event_free(w->wake_ev);
	w->wake_ev = NULL;
	if (w->wake_fd >= 0)
		close(w->wake_fd);
	w->wake_fd = -1;
	if (w->base != NULL)
		event_base_free(w->base);
	w->base = NULL;
	free(w->hdrs);
	w->hdrs = NULL;
	session_cache_free(w);
}

uint64_t
worker_inflight(const struct worker *workers, unsigned n, enum color color)
{
	uint64_t started = 0, finished = 0;
	unsigned i;

	/* Finished first: every finish seen has its start visible too. */
	for (i = 0; i < n; i++)
		finished += atomic_load_explicit(&workers[i].stats.finished[color], memory_order_acquire);
	for (i = 0; i < n; i++)
		started += atomic_load_explicit(&workers[i].stats.started[color], memory_order_acquire);
	return started >= finished ? started - finished : 0;
}

void
worker_set_peers(struct worker *workers, unsigned n)
{
	peers = workers;
	npeers = n;
	atomic_store(&total_conns, 0);
	atomic_store(&all_paused, false);
}

void
worker_set_conn_cap(unsigned cap)
{
	atomic_store(&conn_cap, cap);
}

static unsigned
conn_limit(const struct worker *w)
{
	unsigned cap = atomic_load_explicit(&conn_cap, memory_order_relaxed);

	return w->cfg->limits.max_connections < cap ? w->cfg->limits.max_connections : cap;
}

unsigned
worker_idle_cap(const struct worker *w)
{
	unsigned n = conn_limit(w) / (npeers > 0 ? npeers : 1);

	return n > 0 ? n : 1;
}

void
worker_session_closed(struct worker *w, struct session *s)
{
	unsigned n = atomic_fetch_sub(&total_conns, 1) - 1;

	(void)s;
	w->nconns--;
	if (n < conn_limit(w) && atomic_load(&all_paused) &&
	    atomic_exchange(&all_paused, false))
		post_peers(WORKER_MSG_RESUME);
	maybe_exit(w);
}

static void
post_peers(unsigned msg)
{
	unsigned i;

	for (i = 0; i < npeers; i++)
		worker_post(&peers[i], msg);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct route *r;

	event_base_dispatch(w->base);
	/* Whatever is left (forced stop) goes now, so nothing leaks. */
	h2_shutdown_all(w, true);
	session_shutdown_all(w, true);
	prelude_close_all(w);
	if ((r = route_current()) != NULL) {
		upstream_close_idle_pool(w, r->pools[COLOR_BLUE]);
		upstream_close_idle_pool(w, r->pools[COLOR_GREEN]);
	}
	/* Let freed bufferevents finish their deferred teardown. */
	event_base_loop(w->base, EVLOOP_NONBLOCK);
	atomic_store(&w->done, true);
	return NULL;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct worker_listener *wl = arg;
	struct worker *w = wl->w;
	unsigned max = conn_limit(w), n;

	(void)l;
	if (w->stopping) {
		close(fd);
		return;
	}
	/*
	 * n can pass max by a few connections: those another worker accepted in
	 * the instant before the pause reached it. They are served rather than
	 * dropped; from then on new connections wait in the backlog. This
	 * worker stops at once: libevent would otherwise go on accepting the
	 * whole backlog in this callback.
	 */
	n = atomic_fetch_add(&total_conns, 1) + 1;
	if (n >= max) {
		static struct log_rate rate;
		unsigned long times;

		if (!atomic_exchange(&all_paused, true)) {
			/* Further connections wait in the kernel's backlog. */
			if (log_rate_due(&rate, 10000, &times))
				log_info("%s: %s (%u) reached: new connections wait (%lu time%s in 10s)",
				    __func__,
				    max < w->cfg->limits.max_connections
				        ? "the connection limit the descriptor limit allows"
				        : "max_connections",
				    max, times, times == 1 ? "" : "s");
			post_peers(WORKER_MSG_PAUSE);
		}
		listeners_set(w, false);
	}
	if ((w->cfg->listens[wl->index].proxy_protocol
	            ? prelude_new(w, fd, sa, (socklen_t)salen, wl->index)
	            : session_new(w, fd, sa, (socklen_t)salen, w->tls != NULL ? w->tls[wl->index] : NULL,
	                  w->cfg->listens[wl->index].http2)) < 0) {
		/* fd was closed; nothing was counted on the worker. */
		if (atomic_fetch_sub(&total_conns, 1) - 1 < max && atomic_exchange(&all_paused, false))
			post_peers(WORKER_MSG_RESUME);
	}
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker_listener *wl = arg;
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: keep serving the connections we have, and stop
	 * trying for a moment rather than spin on a level-triggered listener. */
	if (wl->backoff != NULL) {
		fdlimit_backoff_start(wl->backoff, err);
		return;
	}
	evconnlistener_disable(l);
	log_err("%s: worker %u: accept: %s; out of memory for a back-off, listener stays disabled",
	    __func__, wl->w->id, evutil_socket_error_to_string(err));
}

/* A back-off is over: accept again unless the listeners are paused. */
static void
listener_resume(void *arg)
{
	struct worker_listener *wl = arg;

	if (!wl->w->listeners_paused && !wl->w->stopping)
		evconnlistener_enable(wl->lst);
}

static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	uint64_t n;
	unsigned msg;

	(void)what;
	while (read(fd, &n, sizeof(n)) > 0)
		;
	msg = atomic_exchange(&w->pending, 0);
	/* Pause and resume may both be pending: the flag has the last word. */
	if ((msg & (WORKER_MSG_PAUSE | WORKER_MSG_RESUME)) && !w->stopping)
		listeners_set(w, !atomic_load(&all_paused));
	if (msg & WORKER_MSG_RELOAD)
		apply_reload(w);
	if (msg & (WORKER_MSG_SWITCHED | WORKER_MSG_CLOSE_TUNNELS)) {
		struct route *r = route_current();

		if (r != NULL && (msg & WORKER_MSG_SWITCHED))
			upstream_close_idle_pool(w, r->pools[r->active == COLOR_BLUE ? COLOR_GREEN : COLOR_BLUE]);
		if (r != NULL && (msg & WORKER_MSG_CLOSE_TUNNELS))
			session_close_tunnels(w, r->active == COLOR_BLUE ? COLOR_GREEN : COLOR_BLUE);
	}
	if (msg & (WORKER_MSG_STOP | WORKER_MSG_FORCE)) {
		w->stopping = true;
		listeners_free(w);
		/* A persistent timer would keep the loop from ending. */
		if (w->heartbeat_ev != NULL)
			event_del(w->heartbeat_ev);
		if (w->purge_ev != NULL)
			event_del(w->purge_ev);
		h2_shutdown_all(w, (msg & WORKER_MSG_FORCE) != 0);
		session_shutdown_all(w, (msg & WORKER_MSG_FORCE) != 0);
		/* Like sessions idle between requests: nothing of theirs is under way. */
		prelude_close_all(w);
		if (msg & WORKER_MSG_FORCE)
			event_base_loopexit(w->base, NULL);
		else
			maybe_exit(w);
	}
}

/*
 * Worker side of a reload: sessions read w->cfg as they go, so switching the
 * pointer here, between callbacks, is the whole hand-over. The old
 * configuration is freed by the main thread only after every worker has
 * acknowledged.
 */
static void
apply_reload(struct worker *w)
{
	struct config *nc = w->next_cfg;
	struct route *r = route_current();
	bool respin;
	int c;

	if (nc == NULL)
		return;
	respin = nc == w->cfg;
	if (nc->limits.header_count > w->nhdrs) {
		struct http_header *h = calloc(nc->limits.header_count + 1, sizeof(*h));

		if (h == NULL) {
			/* Keep parsing with the old, smaller limit rather than overflow. */
			log_err("%s: worker %u: reload: out of memory; header_count stays %zu", __func__, w->id, w->nhdrs);
		} else {
			free(w->hdrs);
			w->hdrs = h;
			w->nhdrs = nc->limits.header_count;
		}
	} else {
		w->nhdrs = nc->limits.header_count;
	}
	/* A DNS respin hands over the same configuration: listeners stay. */
	if (!w->stopping && !respin)
		listeners_rebuild(w, w->cfg, nc);
	w->cfg = nc;
	/* HTTP/2 clients get GOAWAY: their open streams finish, their next
	 * connection meets the new listeners and limits. */
	if (!w->stopping && !respin)
		h2_shutdown_all(w, false);
	if (!w->stopping && nc->upstream.purge_delay_ms != w->purge_ms)
		purge_arm(w);
	if (w->next_tls != NULL)
		w->tls = w->next_tls;
	for (c = 0; c < COLOR_COUNT; c++) {
		if (w->retire[c] == NULL)
			continue;
		/* A DNS respin (the route of the new pools is published before
		 * it is handed over): idle connections to addresses that stay
		 * are kept. A reload's may have other TLS settings: closed. */
		if (respin && !w->stopping && r != NULL)
			upstream_adopt_idle(w, w->retire[c], r->pools[c]);
		upstream_close_idle_pool(w, w->retire[c]);
	}
	atomic_store(&w->cfg_epoch, w->next_epoch);
}

static void
heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	atomic_store(&w->heartbeat_ms, clock_mono_ms());
}

/* (Re)starts the purge timer at the configured upstream.purge_delay. */
static void
purge_arm(struct worker *w)
{
	struct timeval tv;

	w->purge_ms = w->cfg->upstream.purge_delay_ms;
	tv.tv_sec = (time_t)(w->purge_ms / 1000);
	tv.tv_usec = (suseconds_t)(w->purge_ms % 1000) * 1000;
	event_add(w->purge_ev, &tv);
}

static void
purge_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	upstream_purge(arg);
}

static void
maybe_exit(struct worker *w)
{
	if (w->stopping && w->nconns == 0)
		event_base_loopexit(w->base, NULL);
}

static void
listeners_set(struct worker *w, bool on)
{
	size_t i;

	for (i = 0; i < w->nlisteners; i++) {
		if (on && !fdlimit_backoff_active(w->listeners[i]->backoff))
			evconnlistener_enable(w->listeners[i]->lst);
		else
			evconnlistener_disable(w->listeners[i]->lst);
	}
	w->listeners_paused = !on;
}

static void
listeners_free(struct worker *w)
{
	size_t i;

	for (i = 0; i < w->nlisteners; i++)
		listener_close(w->listeners[i]);
	free(w->listeners);
	w->listeners = NULL;
	w->nlisteners = 0;
}

/* One SO_REUSEPORT listening socket on this worker's loop, or NULL (logged). */
static struct worker_listener *
listener_open(struct worker *w, unsigned index, const struct addr *a)
{
	struct worker_listener *wl;

	if ((wl = calloc(1, sizeof(*wl))) == NULL)
		return NULL;
	wl->w = w;
	wl->index = index;
	wl->lst = evconnlistener_new_bind(w->base, accept_cb, wl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
	    1024, (const struct sockaddr *)&a->ss, (int)a->len);
	if (wl->lst == NULL) {
		log_err("%s: listen %s: %s", __func__, a->text, strerror(errno));
		free(wl);
		return NULL;
	}
	evconnlistener_set_error_cb(wl->lst, accept_error_cb);
	{
		char what[160];

		snprintf(what, sizeof(what), "worker %u: listen %s", w->id, a->text);
		wl->backoff = fdlimit_backoff_new(w->base, wl->lst, what, listener_resume, wl);
	}
	{
		/* Accepted sockets inherit TCP_NODELAY from the listener on
		 * Linux: one setsockopt here instead of one per connection. */
		int one = 1;

		(void)setsockopt(evconnlistener_get_fd(wl->lst), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (w->listeners_paused)
		evconnlistener_disable(wl->lst);
	return wl;
}

static void
listener_close(struct worker_listener *wl)
{
	if (wl == NULL)
		return;
	fdlimit_backoff_free(wl->backoff);
	evconnlistener_free(wl->lst);
	free(wl);
}

/*
 * Reload: keeps the sockets of addresses both configurations have (a client
 * in their backlog is not dropped), opens the new ones, closes the rest. A
 * new address that fails to bind here (the daemon probed it first) is
 * logged and skipped rather than failing the whole reload half-way.
 */
static void
listeners_rebuild(struct worker *w, const struct config *oc, const struct config *nc)
{
	struct worker_listener **nl;
	size_t i, j, n = 0;

	if ((nl = calloc(nc->nlistens + 1, sizeof(*nl))) == NULL) {
		log_err("%s: worker %u: reload: out of memory; listeners unchanged", __func__, w->id);
		return;
	}
	for (i = 0; i < nc->nlistens; i++) {
		for (j = 0; j < w->nlisteners; j++) {
			if (w->listeners[j] != NULL &&
			    strcmp(oc->listens[w->listeners[j]->index].addr.text, nc->listens[i].addr.text) == 0)
				break;
		}
		if (j < w->nlisteners) {
			nl[n] = w->listeners[j];
			w->listeners[j] = NULL;
		} else if ((nl[n] = listener_open(w, (unsigned)i, &nc->listens[i].addr)) == NULL) {
			continue;
		} else if (w->id == 0) {
			log_info("listening on %s", nc->listens[i].addr.text);
		}
		nl[n++]->index = (unsigned)i;
	}
	for (j = 0; j < w->nlisteners; j++) {
		if (w->listeners[j] != NULL && w->id == 0)
			log_info("no longer listening on %s", oc->listens[w->listeners[j]->index].addr.text);
		listener_close(w->listeners[j]);
	}
	free(w->listeners);
	w->listeners = nl;
	w->nlisteners = n;
}
