#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

static void journal_detect(void);
static bool log_to_journal(void);

static _Atomic int log_level = LOG_LVL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/*
 * The syslog priorities journald reads from a "<N>" line prefix (SD_ERR,
 * SD_WARNING, SD_INFO, SD_DEBUG of sd-daemon.h; the numbers are fixed by
 * syslog(3), so no libsystemd is needed for them).
 */
static const char *const level_prio[] = {"<3>", "<4>", "<6>", "<7>"};

static pthread_once_t journal_once = PTHREAD_ONCE_INIT;
static bool journal_stream;

/*
 * systemd sets JOURNAL_STREAM to "DEVICE:INODE" of the stream it connects
 * to stdout/stderr; it only counts when stderr is still that stream (a
 * child that redirected stderr inherits the variable but not the journal).
 */
static void
journal_detect(void)
{
	const char *v = getenv("JOURNAL_STREAM");
	uintmax_t dev, ino;
	struct stat st;
	char tail;

	if (v == NULL || sscanf(v, "%" SCNuMAX ":%" SCNuMAX "%c", &dev, &ino, &tail) != 2)
		return;
	if (fstat(STDERR_FILENO, &st) != 0)
		return;
	journal_stream = (uintmax_t)st.st_dev == dev && (uintmax_t)st.st_ino == ino;
}

static bool
log_to_journal(void)
{
	(void)pthread_once(&journal_once, journal_detect);
	return journal_stream;
}

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;
	int saved = errno;

	if ((int)level > atomic_load_explicit(&log_level, memory_order_relaxed))
		return;
	if (log_to_journal()) {
		/* journald stamps the line itself and files it by priority. */
		n = snprintf(line, sizeof(line), "%s[%s] ", level_prio[level], level_names[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		    tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
	}
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: atomic with respect to other threads. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}

bool
log_rate_due(struct log_rate *r, unsigned interval_ms, unsigned long *n)
{
	unsigned long long now, next;

	atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
	now = clock_mono_ms();
	next = atomic_load_explicit(&r->next_ms, memory_order_relaxed);
	if (now < next)
		return false;
	/* Of several threads that see the interval over, one logs. */
	if (!atomic_compare_exchange_strong(&r->next_ms, &next, now + interval_ms))
		return false;
	*n = atomic_exchange(&r->count, 0);
	return true;
}
