#ifndef CUTOVER_SRC_ACCESSLOG_H
#define CUTOVER_SRC_ACCESSLOG_H

/*
 * The optional access log: one line per request, appended to a file by a
 * writer thread so a slow disk never stalls an event loop. Workers hand
 * finished lines over under a short mutex; the writer flushes at least every
 * 100 ms. When more than 8 MiB wait unwritten, new lines are dropped and
 * counted (a line about the drops is written once the writer catches up).
 * SIGUSR1 reopens the file (logrotate's copytruncate is not needed).
 */

#include <stddef.h>
#include <stdint.h>

struct accesslog;

/* Opens path (O_APPEND|O_CREAT, 0640) and starts the writer thread.
 * Returns NULL with errno set. */
struct accesslog *accesslog_open(const char *path);

/* Queues one line (without the trailing newline; it is added). Any thread. */
void accesslog_write(struct accesslog *al, const char *line, size_t len);

/* Asks the writer to reopen the file (after rotation). Any thread. */
void accesslog_reopen(struct accesslog *al);

/* Flushes what is queued, stops the writer and closes the file. */
void accesslog_close(struct accesslog *al);

/*
 * Copies srclen bytes of src (client input: the request line, a header) into
 * dst as text that is safe inside a quoted access log field: '"', '\\' and
 * every byte outside printable ASCII (0x20..0x7e) become "\\xHH" (upper
 * case hex), as nginx writes them. dst is always NUL-terminated when dstlen
 * > 0; when it is too small the output stops before the first byte (or
 * escape) that does not fit, never in the middle of an escape. Returns the
 * length written, without the NUL. Any thread; touches no shared state.
 */
size_t accesslog_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/* Lines dropped because the writer fell behind. */
uint64_t accesslog_dropped(const struct accesslog *al);

#endif
