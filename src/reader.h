#ifndef CUTOVER_SRC_READER_H
#define CUTOVER_SRC_READER_H

/*
 * Reading a plain socket bufferevent's input ourselves.
 *
 * libevent 2.1's socket bufferevent asks the kernel how much is readable
 * (ioctl FIONREAD) before every read and reads at most 4 KiB per call. A
 * reader owns a persistent EV_READ event on the bufferevent's socket instead
 * and reads with readv straight into the bufferevent's input, as much as the
 * socket holds up to the read high watermark; the bufferevent keeps EV_READ
 * disabled for good and still does all the writing. Then it calls the
 * bufferevent's callbacks exactly as libevent's own reader does: the read
 * callback after new data; the event callback with BEV_EVENT_READING and
 * BEV_EVENT_EOF, BEV_EVENT_ERROR or BEV_EVENT_TIMEOUT, reading disabled
 * first. The callbacks are whatever bufferevent_setcb() set last.
 *
 * Everything that would enable or disable EV_READ, set the read timeout or
 * the read watermark of such a bufferevent goes through the functions below,
 * which take a NULL reader to mean "libevent reads" (TLS bufferevents) and
 * then call the bufferevent functions. Like libevent: enabling restarts the
 * read timeout; reading stops (timeout paused) while the input holds the
 * high watermark, and resumes once it is drained below.
 *
 * One thread: the event base's.
 */

#include <stddef.h>
#include <sys/time.h>

#include <event2/bufferevent.h>

struct reader;

/*
 * A reader for bev, a socket bufferevent whose descriptor is set (accepted,
 * or after bufferevent_socket_connect). Reading is off until
 * reader_enable(). Free it with reader_free() before bev and its socket go.
 * NULL when out of memory.
 */
struct reader *reader_new(struct bufferevent *bev) __attribute__((warn_unused_result));

/* Stops watching the socket and frees r (NULL: nothing). */
void reader_free(struct reader *r);

/* bufferevent_enable(bev, EV_READ), or the same through r. */
void reader_enable(struct reader *r, struct bufferevent *bev);

/* bufferevent_disable(bev, EV_READ), or the same through r. */
void reader_disable(struct reader *r, struct bufferevent *bev);

/* bufferevent_set_timeouts(bev, rd, wr): the read one kept by r when there is one. */
void reader_set_timeouts(struct reader *r, struct bufferevent *bev, const struct timeval *rd,
    const struct timeval *wr);

/*
 * Reads the socket now, as the read event would if it fired, when reading is
 * on: the callbacks run, and may free the bufferevent and r. For a socket
 * just accepted, whose request usually came with it: an event enabled and
 * disabled again in the same loop turn never reaches epoll (libevent's
 * changelist cancels the two), so a connection served without waiting on
 * its client costs no epoll_ctl, and its close no failing EPOLL_CTL_DEL.
 */
void reader_read_now(struct reader *r);

/* bufferevent_setwatermark(bev, EV_READ, 0, high), or the same through r. */
void reader_set_high(struct reader *r, struct bufferevent *bev, size_t high);

#endif /* CUTOVER_SRC_READER_H */
