#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "fdlimit.h"
#include "log.h"

struct fdlimit_backoff {
	struct evconnlistener *lst;
	struct event *timer;
	char *what;
	void (*resume)(void *);
	void *arg;
	bool active;
	struct log_rate rate;
};

static void backoff_timercb(evutil_socket_t fd, short what, void *arg);

unsigned long
fdlimit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("%s: getrlimit(RLIMIT_NOFILE): %s", __func__, strerror(errno));
		return 0;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
			log_warn("%s: raising RLIMIT_NOFILE from %llu to %llu: %s", __func__,
			    (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
			rl.rlim_cur = was;
		}
	}
	return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)~0ul / 2 ? ~0ul / 2
	                                                                      : (unsigned long)rl.rlim_cur;
}

unsigned
fdlimit_connections(unsigned long nofile, unsigned long nservers)
{
	unsigned long keep = FDLIMIT_RESERVE + nservers, n;

	if (nofile <= keep + 2)
		return 1;
	n = (nofile - keep) / 2;
	return n > 0xffffffffu ? 0xffffffffu : (unsigned)n;
}

unsigned
fdlimit_conn_cap(unsigned long nofile, unsigned max_connections, unsigned long nservers)
{
	unsigned cap;

	if (nofile == 0)
		return max_connections;
	cap = fdlimit_connections(nofile, nservers);
	if (cap >= max_connections)
		return max_connections;
	log_warn("%s: limits.max_connections = %u needs %llu file descriptors (two per connection and "
	         "%lu more), but RLIMIT_NOFILE is %lu: at most %u client connections at a time; raise "
	         "LimitNOFILE= (ulimit -n)",
	    __func__, max_connections, 2ull * max_connections + FDLIMIT_RESERVE + nservers,
	    FDLIMIT_RESERVE + nservers, nofile, cap);
	return cap;
}

bool
fdlimit_local_error(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

struct fdlimit_backoff *
fdlimit_backoff_new(struct event_base *base, struct evconnlistener *lst, const char *what,
    void (*resume)(void *), void *arg)
{
	struct fdlimit_backoff *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if ((b->what = strdup(what)) == NULL || (b->timer = evtimer_new(base, backoff_timercb, b)) == NULL)
		goto fail;
	b->lst = lst;
	b->resume = resume;
	b->arg = arg;
	return b;
fail:
	free(b->what);
	free(b);
	return NULL;
}

void
fdlimit_backoff_start(struct fdlimit_backoff *b, int err)
{
	struct timeval tv = {0, FDLIMIT_BACKOFF_MS * 1000};
	unsigned long n;

	if (!b->active) {
		evconnlistener_disable(b->lst);
		b->active = true;
		evtimer_add(b->timer, &tv);
	}
	if (log_rate_due(&b->rate, FDLIMIT_LOG_INTERVAL_MS, &n))
		log_warn("%s: %s: accept: %s (%lu time%s in %us); pausing it %ums at a time", __func__,
		    b->what, evutil_socket_error_to_string(err), n, n == 1 ? "" : "s",
		    FDLIMIT_LOG_INTERVAL_MS / 1000, FDLIMIT_BACKOFF_MS);
}

bool
fdlimit_backoff_active(const struct fdlimit_backoff *b)
{
	return b != NULL && b->active;
}

void
fdlimit_backoff_free(struct fdlimit_backoff *b)
{
	if (b == NULL)
		return;
	event_free(b->timer);
	free(b->what);
	free(b);
}

static void
backoff_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct fdlimit_backoff *b = arg;

	(void)fd;
	(void)what;
	b->active = false;
	if (b->resume != NULL)
		b->resume(b->arg);
	else
		evconnlistener_enable(b->lst);
}
