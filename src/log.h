#ifndef CUTOVER_SRC_LOG_H
#define CUTOVER_SRC_LOG_H

/*
 * Leveled logging to stderr (journald picks it up under systemd).
 * Thread-safe: each line is formatted into one buffer and written with a
 * single write(2), so lines from different threads never interleave.
 */

enum log_level { LOG_LVL_ERR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

void log_msg(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                   \
	do {                                                             \
		if (log_get_level() >= LOG_LVL_DEBUG)                    \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);             \
	} while (0)

#endif
