#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "prelude.h"
#include "proxyproto.h"
#include "session.h"
#include "worker.h"

struct prelude {
	struct worker *w;
	struct prelude *next, *prev;
	int fd;
	struct event *ev;
	uint64_t deadline_ms;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char listen[64]; /* the listener's address, to find its TLS context at hand-over */
	size_t have;     /* header bytes consumed so far, in buf */
	unsigned char buf[PROXYPROTO_MAX];
};

static void prelude_readcb(evutil_socket_t fd, short what, void *arg);
static void prelude_free(struct prelude *p, bool counted);
static void prelude_close(struct prelude *p, const char *why);
static void prelude_handover(struct prelude *p, const struct proxyproto_info *info);
static int prelude_arm(struct prelude *p);

int
prelude_new(struct worker *w, int fd, const struct sockaddr *sa, socklen_t salen, unsigned index)
{
	struct prelude *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		goto fail;
	p->w = w;
	p->fd = fd;
	p->peerlen = salen < sizeof(p->peer) ? salen : sizeof(p->peer);
	memcpy(&p->peer, sa, p->peerlen);
	snprintf(p->listen, sizeof(p->listen), "%s", w->cfg->listens[index].addr.text);
	p->deadline_ms = clock_mono_ms() + w->cfg->timeouts.client_header_ms;
	if ((p->ev = event_new(w->base, fd, EV_READ, prelude_readcb, p)) == NULL)
		goto fail;
	if (prelude_arm(p) < 0)
		goto fail;
	p->next = w->preludes;
	if (p->next != NULL)
		p->next->prev = p;
	w->preludes = p;
	w->nconns++;
	return 0;
fail:
	log_warn("%s: cannot set up a connection: %s", __func__, strerror(errno));
	if (p != NULL && p->ev != NULL)
		event_free(p->ev);
	free(p);
	close(fd);
	return -1;
}

void
prelude_close_all(struct worker *w)
{
	while (w->preludes != NULL)
		prelude_free(w->preludes, true);
}

/* Waits for the next bytes until the deadline. */
static int
prelude_arm(struct prelude *p)
{
	uint64_t now = clock_mono_ms(), left = p->deadline_ms > now ? p->deadline_ms - now : 0;
	struct timeval tv = { (time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000 };

	return event_add(p->ev, &tv);
}

/*
 * Bytes are peeked, so that no byte past the header is taken from the
 * socket (they belong to the TLS handshake or the request); while the
 * header is incomplete, every byte peeked is part of it and is consumed,
 * so the socket does not stay readable for nothing.
 */
static void
prelude_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct prelude *p = arg;
	struct proxyproto_info info;
	ssize_t n, m;

	if (what & EV_TIMEOUT) {
		prelude_close(p, "no PROXY protocol header within timeouts.client_header");
		return;
	}
	n = recv(fd, p->buf + p->have, sizeof(p->buf) - p->have, MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		if (prelude_arm(p) < 0)
			prelude_close(p, "event_add failed");
		return;
	}
	if (n <= 0) {
		prelude_close(p, n == 0 ? "closed before a PROXY protocol header" : strerror(errno));
		return;
	}
	switch (proxyproto_parse(p->buf, p->have + (size_t)n, &info)) {
	case PROXYPROTO_INVALID:
		prelude_close(p, "invalid PROXY protocol header");
		return;
	case PROXYPROTO_NEED_MORE:
		break;
	case PROXYPROTO_DONE:
		n = (ssize_t)(info.len - p->have);
		m = recv(fd, p->buf + p->have, (size_t)n, 0);
		if (m != n) {
			prelude_close(p, m < 0 ? strerror(errno) : "short read of a peeked header");
			return;
		}
		prelude_handover(p, &info);
		return;
	}
	m = recv(fd, p->buf + p->have, (size_t)n, 0);
	if (m != n) {
		prelude_close(p, m < 0 ? strerror(errno) : "short read of peeked bytes");
		return;
	}
	p->have += (size_t)n;
	if (prelude_arm(p) < 0)
		prelude_close(p, "event_add failed");
}

static void
prelude_close(struct prelude *p, const char *why)
{
	char ip[64];

	addr_ip_string((const struct sockaddr *)&p->peer, ip, sizeof(ip));
	log_debug("%s: %s on %s: %s; closed", __func__, ip, p->listen, why);
	prelude_free(p, true);
}

/* Unlinks and frees p; counted: the connection ends (else it goes on as a session). */
static void
prelude_free(struct prelude *p, bool counted)
{
	struct worker *w = p->w;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		w->preludes = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	event_free(p->ev);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
	if (counted)
		worker_session_closed(w, NULL);
	else
		w->nconns--;
}

static void
prelude_handover(struct prelude *p, const struct proxyproto_info *info)
{
	struct worker *w = p->w;
	struct tls_server *tls = NULL;
	struct sockaddr_storage sa;
	socklen_t salen;
	size_t i;
	int fd = p->fd;

	/* The listener's TLS context as of now: a reload may have replaced it. */
	for (i = 0; i < w->cfg->nlistens; i++)
		if (strcmp(w->cfg->listens[i].addr.text, p->listen) == 0)
			break;
	if (i == w->cfg->nlistens) {
		prelude_close(p, "its listener was removed by a reload");
		return;
	}
	if (w->tls != NULL)
		tls = w->tls[i];
	if (info->has_addr) {
		memcpy(&sa, &info->src, sizeof(sa));
		salen = info->srclen;
	} else {
		memcpy(&sa, &p->peer, sizeof(sa));
		salen = p->peerlen;
	}
	p->fd = -1;
	prelude_free(p, false);
	if (session_new(w, fd, (const struct sockaddr *)&sa, salen, tls, w->cfg->listens[i].http2) < 0) {
		/* session_new closed fd and counted nothing: end the connection's count. */
		w->nconns++;
		worker_session_closed(w, NULL);
	}
}
