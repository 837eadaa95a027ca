#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "splice.h"

struct splice_pipe {
	int rfd, wfd;
	size_t len; /* bytes in the pipe */
	size_t cap; /* its capacity */
	bool full;  /* see splice_pipe_can_take() */
};

struct splice_pipe *
splice_pipe_new(size_t size)
{
	struct splice_pipe *p;
	int fd[2], n;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	if (pipe2(fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		free(p);
		return NULL;
	}
	p->rfd = fd[0];
	p->wfd = fd[1];
	/* Refused past fs.pipe-max-size or the user's pipe pages: the
	 * default size still works, with more calls per byte. */
	if ((n = fcntl(p->wfd, F_SETPIPE_SZ, (int)size)) <= 0)
		n = fcntl(p->wfd, F_GETPIPE_SZ);
	p->cap = n > 0 ? (size_t)n : 65536;
	return p;
}

void
splice_pipe_free(struct splice_pipe *p)
{
	if (p == NULL)
		return;
	close(p->rfd);
	close(p->wfd);
	free(p);
}

size_t
splice_pipe_len(const struct splice_pipe *p)
{
	return p->len;
}

bool
splice_pipe_can_take(const struct splice_pipe *p)
{
	return p->len < p->cap && !p->full;
}

ssize_t
splice_pipe_in(struct splice_pipe *p, int fd, size_t max)
{
	ssize_t n;

	if (max > p->cap - p->len)
		max = p->cap - p->len;
	do
		n = splice(fd, NULL, p->wfd, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n == -1 && errno == EINTR);
	if (n > 0)
		p->len += (size_t)n;
	else if (n == -1 && errno == EAGAIN)
		p->full = p->len > 0;
	return n;
}

ssize_t
splice_pipe_out(struct splice_pipe *p, int fd)
{
	ssize_t n;

	if (p->len == 0)
		return 0;
	do
		n = splice(p->rfd, NULL, fd, NULL, p->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	while (n == -1 && errno == EINTR);
	if (n > 0) {
		p->len -= (size_t)n;
		p->full = false;
	} else if (n == 0) {
		/* The pipe holds bytes: 0 cannot mean an empty pipe. */
		errno = EIO;
		n = -1;
	}
	return n;
}

int
splice_pipe_to_evbuffer(struct splice_pipe *p, struct evbuffer *buf)
{
	int n, total = 0;

	while (p->len > 0) {
		n = evbuffer_read(buf, p->rfd, (int)p->len);
		if (n <= 0)
			return -1;
		p->len -= (size_t)n;
		total += n;
	}
	p->full = false;
	return total;
}
