#include "autoconf.h"

/*
 * The access log writer.
 *
 * Producers (worker threads) append finished lines to one pending buffer
 * under a mutex and never touch the file. A single writer thread takes the
 * whole pending buffer at once (swapping it with its own spare buffer), drops
 * the mutex and writes the batch with write(2), so the mutex is held only for
 * a memcpy on the producer side and a pointer swap on the writer side.
 *
 * When the writer sleeps: with nothing queued it waits on the condition
 * variable without a timeout (no idle wake-ups). The producer that makes the
 * buffer non-empty records the time and signals; the writer then waits until
 * that line is FLUSH_INTERVAL_NS old (pthread_cond_timedwait on
 * CLOCK_MONOTONIC) so that lines are batched, unless the buffer reaches
 * FLUSH_BYTES or a reopen or stop is requested first. Every line is thus
 * handed to write(2) at most about 100 ms after it was queued, unless the
 * previous write(2) is itself slower than that.
 *
 * Back-pressure: "unwritten" bytes are the pending buffer plus the batch the
 * writer is writing now. A line that would take them past PENDING_CAP is
 * dropped and counted; the writer appends one "N access log lines dropped"
 * line after the next batch it writes, that is once it has caught up with
 * the lines accepted before the drops.
 *
 * Reopen: lines queued before accesslog_reopen() go to the old file, lines
 * queued after it to the newly opened one (the pending buffer offset at the
 * time of the first unprocessed request marks the boundary). If the new open
 * fails the old descriptor is kept, so lines land in the rotated file rather
 * than nowhere.
 *
 * Ownership: everything below the mutex in struct accesslog is shared and
 * touched only with the mutex held; fd and the writer's batch buffer belong
 * to the writer thread alone while it runs, and to accesslog_close() after
 * it has joined the writer; dropped is atomic so accesslog_dropped() can read
 * it through a const pointer without locking.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "clock.h"
#include "log.h"

#define PENDING_CAP ((size_t)8 * 1024 * 1024)
#define FLUSH_BYTES ((size_t)64 * 1024)
#define FLUSH_INTERVAL_NS INT64_C(100000000)
#define MIN_ALLOC ((size_t)64 * 1024)
/* A batch buffer larger than this is freed after use, so that one burst
 * does not pin 8 MiB for the life of the process. */
#define KEEP_ALLOC ((size_t)1024 * 1024)
#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY)
#define OPEN_MODE 0640

struct accesslog {
	char *path;
	pthread_t thread;
	int fd;			/* writer thread only (see above) */
	bool failing;		/* writer thread only: in a streak of errors */

	pthread_mutex_t mu;
	pthread_cond_t cond;	/* wakes the writer */
	char *buf;		/* pending lines */
	size_t len;
	size_t cap;
	size_t writing;		/* bytes of the batch being written */
	int64_t first_ns;	/* when buf last became non-empty */
	uint64_t unreported;	/* drops not yet written to the file */
	bool reopen;
	size_t reopen_at;	/* lines before this offset go to the old fd */
	bool stop;

	_Atomic uint64_t dropped;
};

static void deadline_ts(int64_t ns, struct timespec *ts);
static bool reserve(struct accesslog *al, size_t need);
static void *writer_main(void *arg);
static void write_batch(struct accesslog *al, const char *buf, size_t len);
static void do_reopen(struct accesslog *al);
static int write_all(int fd, const char *buf, size_t len, size_t *done);
static size_t count_lines(const char *buf, size_t len);

static void
deadline_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = (time_t)(ns / 1000000000);
	ts->tv_nsec = (long)(ns % 1000000000);
}

/*
 * Opens path and starts the writer thread. Returns NULL with errno set when
 * the file cannot be opened or memory or the thread cannot be had. The
 * caller owns the result and must pass it to accesslog_close().
 */
struct accesslog *
accesslog_open(const char *path)
{
	struct accesslog *al = NULL;
	pthread_condattr_t ca;
	sigset_t all, old;
	bool mu_ok = false, cond_ok = false;
	int err;

	if (path == NULL || *path == '\0') {
		errno = EINVAL;
		return NULL;
	}
	if ((al = calloc(1, sizeof(*al))) == NULL)
		return NULL;
	al->fd = -1;
	atomic_init(&al->dropped, 0);
	if ((al->path = strdup(path)) == NULL) {
		err = errno;
		goto fail;
	}
	if ((al->fd = open(path, OPEN_FLAGS, OPEN_MODE)) == -1) {
		err = errno;
		goto fail;
	}
	if ((err = pthread_mutex_init(&al->mu, NULL)) != 0)
		goto fail;
	mu_ok = true;
	/* A monotonic clock, so that setting the date cannot stall flushing. */
	if ((err = pthread_condattr_init(&ca)) != 0)
		goto fail;
	if ((err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC)) == 0)
		err = pthread_cond_init(&al->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err != 0)
		goto fail;
	cond_ok = true;

	/*
	 * The writer blocks every signal: process signals go to the threads
	 * that handle them, and a write to a pipe whose reader went away
	 * fails with EPIPE instead of killing the daemon.
	 */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&al->thread, NULL, writer_main, al);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
		goto fail;
	return al;

fail:
	if (cond_ok)
		pthread_cond_destroy(&al->cond);
	if (mu_ok)
		pthread_mutex_destroy(&al->mu);
	if (al->fd != -1)
		close(al->fd);
	free(al->path);
	free(al);
	errno = err;
	return NULL;
}

/*
 * Grows the pending buffer to hold need bytes. Called with the mutex held;
 * false when memory is short (the caller drops the line).
 */
static bool
reserve(struct accesslog *al, size_t need)
{
	size_t ncap;
	char *nbuf;

	if (need <= al->cap)
		return true;
	ncap = al->cap < MIN_ALLOC ? MIN_ALLOC : al->cap;
	while (ncap < need)
		ncap *= 2;
	if (ncap > PENDING_CAP)
		ncap = PENDING_CAP;
	if ((nbuf = realloc(al->buf, ncap)) == NULL)
		return false;
	al->buf = nbuf;
	al->cap = ncap;
	return true;
}

/*
 * Queues line[0..len) plus a newline. Any thread, any time between
 * accesslog_open() and accesslog_close(); never blocks on I/O. Not
 * async-signal-safe.
 */
void
accesslog_write(struct accesslog *al, const char *line, size_t len)
{
	bool wake = false;

	pthread_mutex_lock(&al->mu);
	if (len >= PENDING_CAP || al->len + al->writing + len + 1 > PENDING_CAP ||
	    !reserve(al, al->len + len + 1)) {
		al->unreported++;
		atomic_fetch_add_explicit(&al->dropped, 1, memory_order_relaxed);
		pthread_mutex_unlock(&al->mu);
		return;
	}
	if (al->len == 0) {
		al->first_ns = (int64_t)clock_mono_ns();
		wake = true;
	} else if (al->len < FLUSH_BYTES && al->len + len + 1 >= FLUSH_BYTES) {
		wake = true;
	}
	if (len > 0)
		memcpy(al->buf + al->len, line, len);
	al->buf[al->len + len] = '\n';
	al->len += len + 1;
	if (wake)
		pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
}

/*
 * Asks the writer to reopen the path: lines queued so far still go to the
 * old file. Any thread (from libevent's signal callback, not from a raw
 * signal handler).
 */
void
accesslog_reopen(struct accesslog *al)
{
	pthread_mutex_lock(&al->mu);
	if (!al->reopen) {
		al->reopen = true;
		al->reopen_at = al->len;
	}
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
}

/*
 * Writes everything queued (even when that takes longer than 100 ms), stops
 * the writer and frees al. No other thread may use al once this is called.
 */
void
accesslog_close(struct accesslog *al)
{
	if (al == NULL)
		return;
	pthread_mutex_lock(&al->mu);
	al->stop = true;
	pthread_cond_signal(&al->cond);
	pthread_mutex_unlock(&al->mu);
	pthread_join(al->thread, NULL);

	if (al->fd != -1 && close(al->fd) == -1)
		log_warn("%s: close %s: %s", __func__, al->path, strerror(errno));
	pthread_cond_destroy(&al->cond);
	pthread_mutex_destroy(&al->mu);
	free(al->buf);
	free(al->path);
	free(al);
}

uint64_t
accesslog_dropped(const struct accesslog *al)
{
	return atomic_load_explicit(&al->dropped, memory_order_relaxed);
}

static void *
writer_main(void *arg)
{
	struct accesslog *al = arg;
	struct timespec ts;
	char *wbuf = NULL, *tmp;
	size_t wlen, wcap = 0, split, tcap;
	uint64_t drops;
	bool reopen;

	pthread_mutex_lock(&al->mu);
	for (;;) {
		while (al->len == 0 && al->unreported == 0 && !al->reopen &&
		    !al->stop)
			pthread_cond_wait(&al->cond, &al->mu);
		/* Let the batch grow until its first line is 100 ms old. */
		while (al->len > 0 && al->len < FLUSH_BYTES && !al->reopen &&
		    !al->stop) {
			deadline_ts(al->first_ns + FLUSH_INTERVAL_NS, &ts);
			if (pthread_cond_timedwait(&al->cond, &al->mu, &ts) ==
			    ETIMEDOUT)
				break;
		}
		if (al->stop && al->len == 0 && al->unreported == 0 &&
		    !al->reopen)
			break;

		tmp = al->buf;
		al->buf = wbuf;
		wbuf = tmp;
		wlen = al->len;
		tcap = al->cap;
		al->cap = wcap;
		wcap = tcap;
		al->len = 0;
		al->writing = wlen;
		drops = al->unreported;
		al->unreported = 0;
		reopen = al->reopen;
		split = reopen ? al->reopen_at : wlen;
		al->reopen = false;
		pthread_mutex_unlock(&al->mu);

		write_batch(al, wbuf, split);
		if (reopen)
			do_reopen(al);
		write_batch(al, wbuf + split, wlen - split);
		if (drops > 0) {
			char line[64];
			int n;

			n = snprintf(line, sizeof(line),
			    "%" PRIu64 " access log lines dropped\n", drops);
			write_batch(al, line, (size_t)n);
			log_warn("%s: %s: %" PRIu64 " lines dropped, the writer "
			    "fell behind", __func__, al->path, drops);
		}
		if (wcap > KEEP_ALLOC) {
			free(wbuf);
			wbuf = NULL;
			wcap = 0;
		}

		pthread_mutex_lock(&al->mu);
		al->writing = 0;
	}
	pthread_mutex_unlock(&al->mu);
	free(wbuf);
	return NULL;
}

/*
 * Writes one batch to the current fd. On error the rest of the batch is
 * lost: the error is logged once per streak of failures (a full disk would
 * otherwise flood the error log), and recovery is logged too.
 */
static void
write_batch(struct accesslog *al, const char *buf, size_t len)
{
	size_t done;

	if (len == 0)
		return;
	if (write_all(al->fd, buf, len, &done) == -1) {
		if (!al->failing)
			log_warn("%s: write %s: %s (%zu lines lost; further "
			    "errors not logged until writing works again)",
			    __func__, al->path, strerror(errno),
			    count_lines(buf + done, len - done));
		al->failing = true;
		return;
	}
	if (al->failing)
		log_info("%s: writing %s works again", __func__, al->path);
	al->failing = false;
}

static void
do_reopen(struct accesslog *al)
{
	int fd;

	if ((fd = open(al->path, OPEN_FLAGS, OPEN_MODE)) == -1) {
		log_warn("%s: reopen %s: %s (still writing to the old file)",
		    __func__, al->path, strerror(errno));
		return;
	}
	if (close(al->fd) == -1)
		log_warn("%s: close old %s: %s", __func__, al->path,
		    strerror(errno));
	al->fd = fd;
}

/*
 * Writes all of buf, riding out EINTR and short writes. Returns 0, or -1
 * with errno set; *done is how many bytes were written either way.
 */
static int
write_all(int fd, const char *buf, size_t len, size_t *done)
{
	ssize_t n;

	*done = 0;
	while (len > 0) {
		n = write(fd, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			/* Not expected for a file; do not spin on it. */
			errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		*done += (size_t)n;
	}
	return 0;
}

/* Lines in a failed batch, counting a partial last line. */
static size_t
count_lines(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n = 0;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n++;
		if (nl == NULL)
			break;
		p = nl + 1;
	}
	return n;
}

size_t
accesslog_escape(char *dst, size_t dstlen, const char *src, size_t srclen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, n = 0;

	if (dstlen == 0)
		return 0;
	for (i = 0; i < srclen; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (n + 1 >= dstlen)
				break;
			dst[n++] = (char)c;
			continue;
		}
		if (n + 4 >= dstlen)
			break;
		dst[n++] = '\\';
		dst[n++] = 'x';
		dst[n++] = hex[c >> 4];
		dst[n++] = hex[c & 0x0f];
	}
	dst[n] = '\0';
	return n;
}
