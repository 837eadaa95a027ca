#ifndef CUTOVER_SRC_HISTOGRAM_H
#define CUTOVER_SRC_HISTOGRAM_H

/*
 * The request latency histogram: fixed buckets shared by the workers (which
 * count into them on the hot path), the metrics exporter (which renders them
 * as cutover_request_duration_seconds) and the guard (which judges p99 from
 * them). Pure: no I/O, no libraries.
 */

#include <stdint.h>

/* Upper bounds in microseconds, +Inf last (so one bound fewer than buckets). */
#define HISTOGRAM_BUCKETS 14
extern const uint64_t histogram_bounds_us[HISTOGRAM_BUCKETS - 1];

/* Index of the bucket for a duration (hot path: a few compares). */
unsigned histogram_bucket(uint64_t us);

#endif
