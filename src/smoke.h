#ifndef CUTOVER_SRC_SMOKE_H
#define CUTOVER_SRC_SMOKE_H

/*
 * Smoke tests: before a switch, every configured smoke test runs against
 * every healthy server of the target color, concurrently, on the main
 * thread's event loop. A test passes when the answer has expect_status and
 * (when set) contains expect_body, within its timeout.
 */

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct event_base;
struct pool;
struct smoke_run;

/*
 * Called once when every test on every server has finished. ok is true when
 * all passed (also when there was nothing to run: no smoke tests configured).
 * report is a JSON array, one object per test and server:
 *   [{"test":1,"method":"GET","path":"/","server":"127.0.0.1:9003",
 *     "ok":false,"status":500,"error":"status 500, expected 200"}, ...]
 * (error null when ok). failure is a one-line human summary of the first
 * failure ("smoke test 1 (GET /) on 127.0.0.1:9003: status 500, expected
 * 200"), NULL when ok. Both strings are owned by the smoke run and valid only
 * during the callback. The run frees itself after the callback returns.
 */
typedef void (*smoke_done_cb)(bool ok, const char *report, const char *failure, void *arg);

/*
 * Starts the smoke tests of cfg->smoke against the servers of pool that are
 * up (a pool with no server up fails with "no healthy server"). Request:
 * "METHOD path HTTP/1.1", Host: the server's address unless a configured
 * header sets Host, User-Agent: cutover-smoke, Connection: close, the
 * configured headers; response bodies are read up to 1 MiB (enough to look
 * for expect_body; longer bodies are cut, not an error) and framed by
 * Content-Length, chunked or close. Takes a reference on pool. Returns NULL
 * on ENOMEM (done is then never called).
 */
struct smoke_run *smoke_start(struct event_base *base, const struct config *cfg, struct pool *pool,
    smoke_done_cb done, void *arg);

/* Stops a run before it finished; done is not called. */
void smoke_cancel(struct smoke_run *run);

#endif
