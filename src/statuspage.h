#ifndef CUTOVER_SRC_STATUSPAGE_H
#define CUTOVER_SRC_STATUSPAGE_H

#ifdef CUTOVER_PURE
#error "statuspage.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * The live status page on metrics.listen (DESIGN.md "Status page"): GET /
 * is one self-contained HTML file (src/statuspage.html, embedded into the
 * binary at build time), which polls GET /status.json every second. This
 * module owns what the JSON needs beyond the `status --json` answer: the
 * ring of per-second samples per color (series.h), taken by a timer on the
 * main loop from the workers' cumulative counters, never on the request
 * path; and a cache of the last 20 history entries, re-read only when the
 * history file changes. Main thread only.
 */

#include <stddef.h>

#include "color.h"
#include "guard.h"

struct commands;
struct event_base;
struct jbuf;

/* The page (generated from src/statuspage.html) and its length. */
extern const char statuspage_html[];
extern const size_t statuspage_html_len;

#define STATUSPAGE_HISTORY 20 /* history entries in /status.json */

/* Reads each color's cumulative counters (the daemon's fx_sample). */
typedef void (*statuspage_sample_cb)(void *arg, enum color c, struct guard_sample *s);

struct statuspage;

/*
 * Starts sampling once a second on base. cmds answers the status part and
 * names the history file; it must outlive the page. Returns NULL after
 * logging (out of memory).
 */
struct statuspage *statuspage_new(struct event_base *base, const struct commands *cmds,
    statuspage_sample_cb sample, void *arg);
void statuspage_free(struct statuspage *sp);

/*
 * Takes one sample now (the timer's work; for tests). wall_ms is the time
 * it is recorded under.
 */
void statuspage_sample(struct statuspage *sp, int64_t wall_ms);

/*
 * Appends /status.json to b: the `status --json` answer plus "servers"
 * (as `health`), "history" (the last 20 entries, oldest first, and
 * "history_error" when the file cannot be read) and "series" (series.h).
 */
void statuspage_json(struct statuspage *sp, struct jbuf *b);

/*
 * The Content-Security-Policy for the page: nothing but its own inline
 * script and style (by SHA-256 hash) and fetches from its own origin.
 * Computed once; NULL if the page has no script or style element or on
 * allocation failure.
 */
const char *statuspage_csp(void);

#endif
