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

#include "color.h"

/* The most steps a ramp may have (cutoverctl switch --ramp 1,10,50). */
#define RAMP_MAX_STEPS 16

/* The longest fleet node name (fleet.node), plus its NUL. */
#define STATE_NODE_MAX 65

struct state {
	enum color active;
	bool has_previous;
	enum color previous;   /* valid when has_previous */
	uint64_t generation;   /* grows by one per switch; 0 before the first */
	int64_t switched_at_ms; /* wall clock (Unix ms) of the last switch, 0 if none */
	int64_t window_end_ms;  /* wall clock end of the safety window, 0 if none/ended */
	/* A progressive shift (ramp) in progress, when ramping. */
	bool ramping;
	enum color ramp_target;
	unsigned ramp_steps[RAMP_MAX_STEPS]; /* percent, rising, each 1..99 */
	unsigned ramp_nsteps;
	unsigned ramp_step;      /* index of the step it is on */
	uint64_t ramp_step_ms;   /* how long each step holds */
	/* In a fleet: the node that drives the ramp's steps (fleet.node: 1 to
	 * 64 letters, digits, '-', '_', '.'); "" for a ramp of this node
	 * alone (no fleet, or --local). */
	char ramp_node[STATE_NODE_MAX];
};

/*
 * Reads path. Returns 0 when loaded, 1 when the file does not exist (*st
 * untouched), -1 when it cannot be read, is a symbolic link (not followed)
 * or is not a valid state file, with "PATH: reason" in err.
 */
int state_load(const char *path, struct state *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Writes st to path atomically and durably: path.tmp in the same directory
 * (a stale one removed, then created with O_EXCL | O_NOFOLLOW, so a planted
 * link is never followed), write, fsync, rename over path, fsync the
 * directory. Returns 0, or -1 with "PATH: reason" in err (path is then
 * unchanged, except after a failed directory fsync: see state.c).
 */
int state_save(const char *path, const struct state *st, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * The one codec of a state, shared by the state file and the fleet's
 * KEY/state in etcd (fleet.c), so that a field added here reaches both.
 * state_format writes st as the file holds it into buf (NUL-terminated);
 * returns its length, or -1 for an invalid state or a buffer too small
 * (size must be at least 512). state_parse reads that text (len bytes, no
 * NUL needed): 0 with *st, or -1 with the reason in why (*st untouched).
 */
int state_format(const struct state *st, char *buf, size_t size)
    __attribute__((warn_unused_result));
int state_parse(const char *text, size_t len, struct state *st, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/*
 * Checks the directory that holds path, where the state file, its
 * temporary and the history live: it must exist, be a directory, be
 * writable by its owner only (not group or others: they could plant links
 * or files) and belong to root or to the calling user. Returns 0, or -1
 * with a message naming the directory in err.
 */
int state_check_dir(const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
