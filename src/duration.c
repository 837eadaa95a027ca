#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "duration.h"

struct unit {
	const char *suffix;
	uint64_t ms;
};

/* Longest suffix first, so "ms" is not taken for "m" followed by junk. */
static const struct unit units[] = {
	{"ms", 1},
	{"s", 1000},
	{"m", 60 * 1000},
	{"h", 60 * 60 * 1000},
};

int
duration_parse(const char *s, uint64_t *ms)
{
	uint64_t v = 0;
	const char *p = s;
	size_t i;

	if (s == NULL)
		return -1;
	/* Digits only: no sign, no space, no fraction, no hex. */
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].suffix) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return -1;
		*ms = v * units[i].ms;
		return 0;
	}
	return -1;
}

void
duration_format(uint64_t ms, char *buf, size_t len)
{
	size_t i;

	if (len == 0)
		return;
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	for (i = sizeof(units) / sizeof(units[0]); i-- > 0;) {
		if (ms % units[i].ms == 0) {
			snprintf(buf, len, "%llu%s",
			    (unsigned long long)(ms / units[i].ms), units[i].suffix);
			return;
		}
	}
}

uint64_t
duration_add(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

int64_t
duration_add_signed(int64_t t, uint64_t ms)
{
	/* INT64_MAX - t cannot overflow for t >= 0; for t < 0 the sum of a
	 * negative and a value <= INT64_MAX always fits. */
	if (t >= 0 && ms > (uint64_t)(INT64_MAX - t))
		return INT64_MAX;
	if (t < 0 && ms > (uint64_t)INT64_MAX)
		return duration_add_signed(t + INT64_MAX, ms - (uint64_t)INT64_MAX);
	return t + (int64_t)ms;
}
