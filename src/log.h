#ifndef CUTOVER_SRC_LOG_H
#define CUTOVER_SRC_LOG_H

/*
 * Leveled logging to stderr (journald picks it up under systemd). When
 * stderr is the journal (JOURNAL_STREAM names its device and inode), each
 * line starts with its syslog priority ("<3>" for errors, "<4>" warnings,
 * "<6>" info, "<7>" debug) instead of a timestamp, so that
 * "journalctl -p warning" filters; otherwise lines start with a UTC
 * timestamp.
 * Thread-safe: each line is formatted into one buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */

#include <stdbool.h>

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
/*
 * A rate limit for a line that a fault can repeat many times a second (a
 * listener out of descriptors, a refused control command): the first
 * occurrence is logged, then at most one line per interval, which carries
 * the number of occurrences since the last one logged. Zero-initialised
 * (static storage) it is ready; any thread may call log_rate_due().
 */
struct log_rate {
	_Atomic unsigned long long next_ms;
	_Atomic unsigned long count;
};

/*
 * Counts one occurrence. Returns true when the caller should log now, with
 * *n set to the occurrences since the last logged line (this one included).
 */
bool log_rate_due(struct log_rate *r, unsigned interval_ms, unsigned long *n)
    __attribute__((warn_unused_result));

#define log_debug(...)                                                   \
	do {                                                             \
		if (log_get_level() >= LOG_LVL_DEBUG)                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);             \
	} while (0)

#endif
