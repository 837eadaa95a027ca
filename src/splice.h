#ifndef CUTOVER_SRC_SPLICE_H
#define CUTOVER_SRC_SPLICE_H

/*
 * A pipe that moves bytes from one socket to another with splice(2): the
 * kernel hands the socket buffers' pages over instead of copying them to
 * user space and back (HAProxy's `option splice-auto`). The caller watches
 * the sockets; the pipe only counts what it holds.
 *
 * One thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/buffer.h>

struct splice_pipe;

/*
 * A non-blocking, close-on-exec pipe that holds up to size bytes where the
 * kernel allows it (fs.pipe-max-size, the user's pipe page budget), else its
 * default size. NULL with errno set (EMFILE, ENFILE, ENOMEM).
 */
struct splice_pipe *splice_pipe_new(size_t size) __attribute__((warn_unused_result));

/* Closes the pipe, discarding what it holds, and frees p (NULL: nothing). */
void splice_pipe_free(struct splice_pipe *p);

/* Bytes in the pipe. */
size_t splice_pipe_len(const struct splice_pipe *p);

/*
 * Whether splice_pipe_in() may move anything: the pipe has room. False too
 * after splice_pipe_in() failed with EAGAIN while the pipe held bytes: the
 * pipe may be out of slots (one per socket buffer fragment, whatever its
 * size) rather than the socket empty, so a readable socket must not be
 * watched until splice_pipe_out() moved bytes.
 */
bool splice_pipe_can_take(const struct splice_pipe *p);

/*
 * Moves up to max bytes from socket fd into the pipe. Returns how many, 0 at
 * the socket's end of file, -1 with errno (EAGAIN: nothing to move now).
 */
ssize_t splice_pipe_in(struct splice_pipe *p, int fd, size_t max) __attribute__((warn_unused_result));

/*
 * Moves what the pipe holds to socket fd, as much as it takes. Returns how
 * many bytes, -1 with errno (EAGAIN: the socket is full; EPIPE, ECONNRESET).
 */
ssize_t splice_pipe_out(struct splice_pipe *p, int fd) __attribute__((warn_unused_result));

/* Moves what the pipe holds to the end of buf. Returns how many bytes, or -1. */
int splice_pipe_to_evbuffer(struct splice_pipe *p, struct evbuffer *buf) __attribute__((warn_unused_result));

#endif /* CUTOVER_SRC_SPLICE_H */
