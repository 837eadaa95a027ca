#ifndef CUTOVER_SRC_DURATION_H
#define CUTOVER_SRC_DURATION_H

#include <stddef.h>
#include <stdint.h>

/*
 * Durations in configuration are strings with a unit: "250ms", "2s", "5m",
 * "1h". Parses s into milliseconds. Returns 0 on success, -1 when s is not a
 * non-negative integer followed by exactly one of ms, s, m, h (no spaces, no
 * sign, no fraction) or the value overflows. *ms is untouched on failure.
 */
int duration_parse(const char *s, uint64_t *ms) __attribute__((warn_unused_result));

/* Formats ms as the largest exact unit ("1500ms", "2s", "5m") into buf. */
void duration_format(uint64_t ms, char *buf, size_t len);

/*
 * Clock arithmetic that saturates instead of wrapping: a time plus a
 * duration never comes out earlier than the time (nor, for signed clocks,
 * overflows, which would be undefined). duration_add: a + b, or UINT64_MAX.
 * duration_add_signed: t + ms, or INT64_MAX; t may be negative (before the
 * epoch), never less than INT64_MIN + 1 in practice.
 */
uint64_t duration_add(uint64_t a, uint64_t b);
int64_t duration_add_signed(int64_t t, uint64_t ms);

#endif
