#ifndef CUTOVER_SRC_SERIES_H
#define CUTOVER_SRC_SERIES_H

/*
 * The status page's charts: a fixed ring of one-second samples per color
 * (requests finished, errors, p99) over the last ten minutes. The daemon adds
 * one sample a second on its main loop from the workers' cumulative counters
 * (the same guard_sample the safety guard reads); nothing here touches the
 * request path. Pure: no I/O, no allocation.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "guard.h"

struct jbuf;

#define SERIES_LEN 600 /* samples per color: ten minutes at one a second */

struct series_point {
	uint32_t requests; /* finished in the interval */
	uint32_t errors;   /* of them, errors as the guard counts them */
	uint32_t p99_us;   /* p99 of the interval, 0 without requests */
};

struct series {
	struct series_point pts[COLOR_COUNT][SERIES_LEN];
	size_t head;  /* slot of the next sample */
	size_t count; /* samples held, at most SERIES_LEN */
	int64_t last_wall_ms; /* when the newest sample was taken */
	struct guard_sample prev[COLOR_COUNT];
	bool primed; /* prev holds a reading */
};

void series_init(struct series *s);

/*
 * Adds the interval since the previous call: now holds each color's
 * cumulative counters at wall_ms. The first call only takes the reading.
 * Counters that went backwards count as zero.
 */
void series_add(struct series *s, int64_t wall_ms, const struct guard_sample now[COLOR_COUNT]);

/*
 * Appends the ring as a JSON object, oldest sample first:
 * {"interval_s":1,"capacity":600,"end_ms":T,"blue":{"requests":[..],
 * "errors":[..],"p99_us":[..]},"green":{..}} (end_ms: wall time of the
 * newest sample, null before the first).
 */
void series_json(const struct series *s, struct jbuf *b);

#endif
