#ifndef CUTOVER_SRC_STATE_H
#define CUTOVER_SRC_STATE_H

/*
 * The state file: which color is live and the switch generation, so a
 * restart never forgets or guesses. Written atomically (temporary file in the
 * same directory, fsync, rename, fsync of the directory) before a switch is
 * acknowledged. A corrupt file is an error, never a silent default.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct state {
	enum color active;
	bool has_previous;
	enum color previous;   /* valid when has_previous */
	uint64_t generation;   /* grows by one per switch; 0 before the first */
	int64_t switched_at_ms; /* wall clock (Unix ms) of the last switch, 0 if none */
	int64_t window_end_ms;  /* wall clock end of the safety window, 0 if none/ended */
};

/*
 * Reads path. Returns 0 when loaded, 1 when the file does not exist (*st
 * untouched), -1 when it cannot be read or is not a valid state file, with
 * "PATH: reason" in err.
 */
int state_load(const char *path, struct state *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Writes st to path atomically and durably: path.tmp in the same directory,
 * write, fsync, rename over path, fsync the directory. Returns 0, or -1 with
 * "PATH: reason" in err (path is then unchanged).
 */
int state_save(const char *path, const struct state *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
