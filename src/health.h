#ifndef CUTOVER_SRC_HEALTH_H
#define CUTOVER_SRC_HEALTH_H

/*
 * Active health checks of both pools, on the main thread's event loop: every
 * health.interval each server gets "GET health.path" on a fresh connection;
 * an answer with health.expect_status within health.timeout is a pass.
 * health.rise passes in a row bring a server up (and confirm it as a switch
 * target); health.fall failures in a row take it down. Workers see the
 * result through the server's atomic flags only.
 */

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct event_base;
struct jbuf;
struct pool;
struct health;

/*
 * Starts checking every server of pools[] (references are taken). The first
 * round starts at once. Returns NULL on ENOMEM.
 */
struct health *health_new(struct event_base *base, const struct config_health *cfg,
    struct pool *pools[COLOR_COUNT]);

/*
 * Called (main thread) right after a check took a server down, so the
 * safety-window guard can act at once instead of at its next tick.
 */
typedef void (*health_down_cb)(void *arg);
void health_set_down_cb(struct health *h, health_down_cb cb, void *arg);

/*
 * Carries the check counts and last results of the servers h and prev both
 * check (same color and label) over to h: a new server set (a DNS answer)
 * does not start their `rise` over.
 */
void health_carry(struct health *h, const struct health *prev);

/* Stops all checks and frees h (drops the pool references). */
void health_free(struct health *h);

/*
 * Appends a JSON array of every server's state (optionally only one color,
 * only < 0 for all) to out:
 * [{"color":"blue","address":"127.0.0.1:9001","state":"up","checked":true,
 *   "last":"200 OK","latency_ms":1.3,"passes":5,"failures":0}, ...]
 */
void health_report(const struct health *h, int only, struct jbuf *out);

#endif
