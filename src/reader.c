#include "autoconf.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "reader.h"

/*
 * At most this much is read per wake-up (what bufferevent_set_max_single_read
 * asked of libevent, which read 4 KiB at most anyway), in readv calls of at
 * most READ_CHUNK bytes until one comes back short: the socket is drained.
 */
#define READ_MAX   (256 * 1024)
#define READ_CHUNK (128 * 1024)
/*
 * Without FIONREAD the size of what waits is unknown: a reader asks for
 * READ_FIRST bytes at first (a request head, a small response) and doubles
 * its ask after each read that fills it, up to READ_CHUNK; a wake-up that
 * reads little brings it back down. READ_FIRST and libevent's chain header
 * fit the smallest chain libevent allocates (1 KiB), as its own small reads
 * did: a 2 KiB ask costs a 4 KiB chain, and a fixed 128 KiB ask a 128 KiB
 * one, per connection waiting mid-request (bench/conns.sh "slow": 3.4 KB
 * per connection with 960, 6.5 KB with 2048).
 */
#define READ_FIRST 960

struct reader {
	struct bufferevent *bev;
	struct evbuffer *in;
	struct evbuffer_cb_entry *watch; /* on in: resumes below the high mark */
	struct event *ev;
	struct timeval timeout;
	bool has_timeout;
	bool enabled; /* EV_READ as the bufferevent's owner sees it */
	size_t high;  /* read high watermark; 0: none */
	size_t chunk; /* the next readv's ask: READ_FIRST..READ_CHUNK */
};

static void reader_cb(evutil_socket_t fd, short what, void *arg);
static void input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void resync(struct reader *r);
static ssize_t read_into(struct reader *r, evutil_socket_t fd, size_t have, size_t limit);

struct reader *
reader_new(struct bufferevent *bev)
{
	struct reader *r;
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd < 0) {
		errno = EBADF;
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->bev = bev;
	r->in = bufferevent_get_input(bev);
	r->chunk = READ_FIRST;
	r->ev = event_new(bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST, reader_cb, r);
	if (r->ev == NULL)
		goto fail;
	if ((r->watch = evbuffer_add_cb(r->in, input_cb, r)) == NULL)
		goto fail;
	return r;
fail:
	if (r->ev != NULL)
		event_free(r->ev);
	free(r);
	errno = ENOMEM;
	return NULL;
}

void
reader_free(struct reader *r)
{
	if (r == NULL)
		return;
	/* Deleted while the socket is still open: no failing epoll_ctl. */
	event_free(r->ev);
	evbuffer_remove_cb_entry(r->in, r->watch);
	free(r);
}

void
reader_enable(struct reader *r, struct bufferevent *bev)
{
	if (r == NULL) {
		bufferevent_enable(bev, EV_READ);
		return;
	}
	r->enabled = true;
	if (r->high != 0 && evbuffer_get_length(r->in) >= r->high) {
		event_del(r->ev); /* suspended until the input drains */
		return;
	}
	/* Added again even when pending: like bufferevent_enable, this
	 * restarts the read timeout. */
	event_add(r->ev, r->has_timeout ? &r->timeout : NULL);
}

void
reader_disable(struct reader *r, struct bufferevent *bev)
{
	if (r == NULL) {
		bufferevent_disable(bev, EV_READ);
		return;
	}
	r->enabled = false;
	event_del(r->ev);
}

void
reader_set_timeouts(struct reader *r, struct bufferevent *bev, const struct timeval *rd,
    const struct timeval *wr)
{
	if (r == NULL) {
		bufferevent_set_timeouts(bev, rd, wr);
		return;
	}
	bufferevent_set_timeouts(bev, NULL, wr);
	r->has_timeout = rd != NULL && (rd->tv_sec != 0 || rd->tv_usec != 0);
	if (r->has_timeout)
		r->timeout = *rd;
	/* As libevent does for a pending read: the new timeout starts now. */
	if (event_pending(r->ev, EV_READ, NULL)) {
		if (r->has_timeout)
			event_add(r->ev, &r->timeout);
		else
			event_remove_timer(r->ev);
	}
}

void
reader_read_now(struct reader *r)
{
	if (r->enabled)
		reader_cb(bufferevent_getfd(r->bev), EV_READ, r);
}

void
reader_set_high(struct reader *r, struct bufferevent *bev, size_t high)
{
	if (r == NULL) {
		bufferevent_setwatermark(bev, EV_READ, 0, high);
		return;
	}
	r->high = high;
	resync(r);
}

/* Reading on: suspended at the high mark, resumed below it. */
static void
resync(struct reader *r)
{
	bool full = r->high != 0 && evbuffer_get_length(r->in) >= r->high;
	bool pending = event_pending(r->ev, EV_READ, NULL) != 0;

	if (!r->enabled)
		return;
	if (full && pending)
		event_del(r->ev);
	else if (!full && !pending)
		event_add(r->ev, r->has_timeout ? &r->timeout : NULL);
}

static void
input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	(void)buf;
	if (info->n_deleted > 0 || info->n_added > 0)
		resync(arg);
}

/*
 * What libevent's bufferevent_readcb does, without the FIONREAD: the
 * callbacks come last, since they may free the bufferevent and r.
 */
static void
reader_cb(evutil_socket_t fd, short what, void *arg)
{
	struct reader *r = arg;
	struct bufferevent *bev = r->bev;
	bufferevent_data_cb readcb;
	bufferevent_event_cb eventcb;
	void *cbarg;
	short ev = BEV_EVENT_READING;
	size_t have = evbuffer_get_length(r->in), limit = have + READ_MAX;
	ssize_t n;

	/* EV_TIMEOUT alone: with EV_READ, data came in time. */
	if (what == EV_TIMEOUT) {
		ev |= BEV_EVENT_TIMEOUT;
		goto fail;
	}
	if (r->high != 0 && limit > r->high)
		limit = r->high;
	if (have >= limit) {
		event_del(r->ev);
		return;
	}
	/* A bufferevent keeps the end of its input frozen except while it
	 * reads itself; thawed for this read. */
	evbuffer_unfreeze(r->in, 0);
	n = read_into(r, fd, have, limit);
	evbuffer_freeze(r->in, 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		ev |= BEV_EVENT_ERROR;
		goto fail;
	}
	if (n == 0) {
		ev |= BEV_EVENT_EOF;
		goto fail;
	}
	bufferevent_getcb(bev, &readcb, NULL, NULL, &cbarg);
	if (readcb != NULL)
		readcb(bev, cbarg);
	return;
fail:
	reader_disable(r, bev);
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb != NULL)
		eventcb(bev, ev, cbarg);
}

/*
 * Reads from fd into in until it holds limit bytes or a read comes back
 * short. Returns the bytes read; or 0 at EOF, -1 on an error (errno set)
 * when nothing was read (after some bytes, both wait for the next call:
 * the socket stays readable).
 */
static ssize_t
read_into(struct reader *rd, evutil_socket_t fd, size_t have, size_t limit)
{
	struct evbuffer *in = rd->in;
	size_t total = 0;

	while (have < limit) {
		struct evbuffer_iovec v[2];
		struct iovec iov[2];
		size_t want = limit - have, got;
		ssize_t r;
		int nv, i;

		if (want > rd->chunk)
			want = rd->chunk;
		nv = evbuffer_reserve_space(in, (ev_ssize_t)want, v, 2);
		if (nv <= 0) {
			if (total > 0)
				break;
			errno = ENOMEM;
			return -1;
		}
		/* The space reserved may be larger: no read past limit. */
		got = want;
		for (i = 0; i < nv; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len < got ? v[i].iov_len : got;
			got -= iov[i].iov_len;
		}
		do
			r = readv(fd, iov, nv);
		while (r < 0 && errno == EINTR);
		if (r <= 0) {
			evbuffer_commit_space(in, v, 0);
			if (total > 0)
				break;
			return r;
		}
		got = (size_t)r;
		for (i = 0; i < nv; i++) {
			size_t take = got < iov[i].iov_len ? got : iov[i].iov_len;

			v[i].iov_len = take;
			got -= take;
		}
		evbuffer_commit_space(in, v, nv);
		have += (size_t)r;
		total += (size_t)r;
		if ((size_t)r < want)
			break; /* the socket is drained */
		if (rd->chunk < READ_CHUNK)
			rd->chunk *= 2;
	}
	if (total < rd->chunk / 4 && rd->chunk > READ_FIRST)
		rd->chunk /= 2;
	return (ssize_t)total;
}
