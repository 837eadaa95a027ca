#ifndef CUTOVER_SRC_CONFIG_SCAN_H
#define CUTOVER_SRC_CONFIG_SCAN_H

/*
 * A look at the configuration text as written, for what libconfig 1.5
 * hides: it reads an integer literal without the L suffix as 32 bits and
 * silently wraps a larger one ("4294967297" becomes 1), so the parsed
 * setting cannot tell a wrapped value from a real one.
 */

#include <stddef.h>

/* Called for each literal found: its 1-based line and its text (not
 * NUL-terminated). */
typedef void config_scan_fn(void *arg, int line, const char *lit, size_t len);

/*
 * Scans len bytes of libconfig text for integer literals (decimal or hex,
 * optionally signed) without the L suffix whose value lies outside
 * -2147483648..2147483647, skipping comments (#, //, slash-star), strings,
 * names, floats and 64-bit (L) literals. Calls fn for each. Returns how many
 * were found. Pure: no allocation, any thread.
 */
size_t config_scan_ints(const char *text, size_t len, config_scan_fn *fn, void *arg);

#endif
