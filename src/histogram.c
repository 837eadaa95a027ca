#include "autoconf.h"

#include <stdint.h>

#include "histogram.h"

const uint64_t histogram_bounds_us[HISTOGRAM_BUCKETS - 1] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

/*
 * The bounds are sorted, so the bucket index is the number of bounds below
 * us: a fixed 13 compares with no data-dependent branch, which the compiler
 * unrolls (and may vectorise). Faster in practice than a binary search whose
 * branches mispredict on mixed latencies.
 */
unsigned
histogram_bucket(uint64_t us)
{
	unsigned i, n = 0;

	for (i = 0; i < HISTOGRAM_BUCKETS - 1; i++)
		n += us > histogram_bounds_us[i];
	return n;
}
