#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "accesslog.h"
#include "clock.h"

/*
 * Each test works in its own mkdtemp directory under one scratch base that
 * an unchecked fixture makes and removes in the parent process.
 */
static char base[] = "/tmp/check_accesslog.XXXXXX";

#define NTHREADS 4
#define PER_THREAD 5000
#define POLL_NS 2000000L
#define POLL_LIMIT_MS 5000
#define DOTS "...................................................."

/* What a FIFO reader thread has read so far. */
struct reader {
	int fd;
	pthread_mutex_t mu;
	char *data;
	size_t len;
	size_t cap;
	bool eof;
};

struct producer {
	struct accesslog *al;
	int id;
};

static void base_setup(void);
static void base_teardown(void);
static int rm_entry(const char *path, const struct stat *sb, int flag,
    struct FTW *ftw);
static char *test_dir(void);
static char *join(const char *dir, const char *name);
static char *slurp(const char *path, size_t *lenp);
static int seq_line(char *buf, size_t size, const char *prefix, int i,
    const char *suffix);
static void put(struct accesslog *al, const char *prefix, int i,
    const char *suffix);
static void nap(void);
static int producer_line(char *buf, size_t size, int id, int seq);
static void *producer_main(void *arg);
static void *reader_main(void *arg);
static bool reader_has(struct reader *r, const char *needle);
static void expect_seq(const char *data, size_t len, const char *prefix,
    const char *suffix, int from, int to);

static void
base_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
base_teardown(void)
{
	nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	memcpy(base + strlen(base) - 6, "XXXXXX", 6);
}

static char *
join(const char *dir, const char *name)
{
	char *p;

	ck_assert_int_ne(asprintf(&p, "%s/%s", dir, name), -1);
	return p;
}

static char *
test_dir(void)
{
	char *d = join(base, "t.XXXXXX");

	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

/* The whole file, NUL-terminated (NULL if it cannot be read). */
static char *
slurp(const char *path, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536;
			ck_assert_ptr_nonnull(buf = realloc(buf, cap + 1));
		}
		n = read(fd, buf + len, cap - len);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (lenp != NULL)
		*lenp = len;
	return buf;
}

/* Test lines are PREFIX, a zero-padded sequence number, SUFFIX. */
static int
seq_line(char *buf, size_t size, const char *prefix, int i, const char *suffix)
{
	return snprintf(buf, size, "%s%07d%s", prefix, i, suffix);
}

static void
put(struct accesslog *al, const char *prefix, int i, const char *suffix)
{
	char line[256];
	int n = seq_line(line, sizeof(line), prefix, i, suffix);

	ck_assert(n > 0 && (size_t)n < sizeof(line));
	accesslog_write(al, line, (size_t)n);
}

/* One polling step (used only where there is no event to wait for). */
static void
nap(void)
{
	struct timespec ts = {0, POLL_NS};

	nanosleep(&ts, NULL);
}

/* Checks that data is exactly the lines from .. to - 1, in order. */
static void
expect_seq(const char *data, size_t len, const char *prefix, const char *suffix,
    int from, int to)
{
	char want[256];
	size_t off = 0;
	int i, n;

	for (i = from; i < to; i++) {
		n = seq_line(want, sizeof(want), prefix, i, suffix);
		ck_assert_int_lt(n, (int)sizeof(want) - 1);
		want[n++] = '\n';
		ck_assert_msg(off + (size_t)n <= len &&
		    memcmp(data + off, want, (size_t)n) == 0,
		    "line %d: expected \"%.*s\" at offset %zu", i, n - 1, want,
		    off);
		off += (size_t)n;
	}
	ck_assert_msg(off == len, "%zu unexpected bytes after the last line",
	    len - off);
}

START_TEST(test_order_and_mode)
{
	char *dir = test_dir(), *path = join(dir, "access.log"), *data;
	struct accesslog *al;
	struct stat sb;
	size_t len;
	int i;

	umask(022);
	ck_assert_ptr_nonnull(al = accesslog_open(path));
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 07777, 0640);
	for (i = 0; i < 1000; i++)
		put(al, "line ", i, "");
	accesslog_close(al);

	ck_assert_ptr_nonnull(data = slurp(path, &len));
	expect_seq(data, len, "line ", "", 0, 1000);
	free(data);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_appends_and_empty_line)
{
	char *dir = test_dir(), *path = join(dir, "access.log"), *data;
	struct accesslog *al;
	FILE *f;

	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("before\n", f);
	fclose(f);
	ck_assert_ptr_nonnull(al = accesslog_open(path));
	accesslog_write(al, "", 0);
	/* Only len bytes are taken: no NUL needed, trailing bytes ignored. */
	accesslog_write(al, "abcXYZ", 3);
	accesslog_close(al);

	ck_assert_ptr_nonnull(data = slurp(path, NULL));
	ck_assert_str_eq(data, "before\n\nabc\n");
	free(data);
	free(path);
	free(dir);
}
END_TEST

START_TEST(test_open_fails)
{
	char *dir = test_dir(), *path = join(dir, "missing/access.log");

	errno = 0;
	ck_assert_ptr_null(accesslog_open(path));
	ck_assert_int_eq(errno, ENOENT);
	errno = 0;
	ck_assert_ptr_null(accesslog_open(""));
	ck_assert_int_eq(errno, EINVAL);
	free(path);
	free(dir);
}
END_TEST

/* Without close, a queued line reaches the file on its own, promptly. */
START_TEST(test_flushes_without_close)
{
	char *dir = test_dir(), *path = join(dir, "access.log"), *data = NULL;
	struct accesslog *al;
	int64_t start;

	ck_assert_ptr_nonnull(al = accesslog_open(path));
	start = (int64_t)clock_mono_ms();
	accesslog_write(al, "one", 3);
	for (;;) {
		ck_assert_ptr_nonnull(data = slurp(path, NULL));
		if (strcmp(data, "one\n") == 0)
			break;
		ck_assert_str_eq(data, "");
		free(data);
		ck_assert_msg((int64_t)clock_mono_ms() - start < POLL_LIMIT_MS,
		    "line not written after %d ms", POLL_LIMIT_MS);
		nap();
	}
	free(data);
	accesslog_close(al);
	free(path);
	free(dir);
}
END_TEST

/* More than the 100 ms / 64 KiB batching holds back, closed at once. */
START_TEST(test_close_flushes)
{
	char *dir = test_dir(), *path = join(dir, "access.log"), *data;
	struct accesslog *al;
	size_t len;

	ck_assert_ptr_nonnull(al = accesslog_open(path));
	put(al, "first ", 0, "");
	accesslog_close(al);
	ck_assert_ptr_nonnull(data = slurp(path, &len));
	expect_seq(data, len, "first ", "", 0, 1);
	free(data);

	ck_assert_int_eq(unlink(path), 0);
	ck_assert_ptr_nonnull(al = accesslog_open(path));
	for (int i = 0; i < 40000; i++)
		put(al, "line ", i, DOTS);
	accesslog_close(al);
	ck_assert_ptr_nonnull(data = slurp(path, &len));
	expect_seq(data, len, "line ", DOTS, 0, 40000);
	free(data);
	free(path);
	free(dir);
}
END_TEST

/* Lines vary in length so that a torn line would not parse. */
static int
producer_line(char *buf, size_t size, int id, int seq)
{
	return snprintf(buf, size, "t%d %06d %.*s end", id, seq, (seq * 7) % 97,
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void *
producer_main(void *arg)
{
	struct producer *p = arg;
	char line[256];
	int i, n;

	for (i = 0; i < PER_THREAD; i++) {
		n = producer_line(line, sizeof(line), p->id, i);
		accesslog_write(p->al, line, (size_t)n);
	}
	return NULL;
}

START_TEST(test_concurrent_writers)
{
	char *dir = test_dir(), *path = join(dir, "access.log"), *data, *p, *nl;
	char want[256];
	pthread_t th[NTHREADS];
	struct producer pr[NTHREADS];
	int next[NTHREADS] = {0};
	struct accesslog *al;
	size_t len;
	int i, id, n;

	ck_assert_ptr_nonnull(al = accesslog_open(path));
	for (i = 0; i < NTHREADS; i++) {
		pr[i].al = al;
		pr[i].id = i;
		ck_assert_int_eq(pthread_create(&th[i], NULL, producer_main,
		    &pr[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert_uint_eq(accesslog_dropped(al), 0);
	accesslog_close(al);

	ck_assert_ptr_nonnull(data = slurp(path, &len));
	for (p = data; p < data + len; p = nl + 1) {
		ck_assert_ptr_nonnull(nl = memchr(p, '\n', (size_t)(data + len - p)));
		ck_assert_msg(p[0] == 't' && p[1] >= '0' &&
		    p[1] < '0' + NTHREADS, "bad line start: %.*s",
		    (int)(nl - p), p);
		id = p[1] - '0';
		/* Each thread's lines come out whole and in its own order. */
		n = producer_line(want, sizeof(want), id, next[id]);
		ck_assert_msg(nl - p == n && memcmp(p, want, (size_t)n) == 0,
		    "got \"%.*s\", expected \"%s\"", (int)(nl - p), p, want);
		next[id]++;
	}
	for (i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(next[i], PER_THREAD);
	free(data);
	free(path);
	free(dir);
}
END_TEST

/* logrotate: rename the file, then reopen. */
START_TEST(test_reopen_after_rename)
{
	char *dir = test_dir(), *path = join(dir, "access.log");
	char *rotated = join(dir, "access.log.1"), *data;
	struct accesslog *al;
	struct stat sb;
	size_t len;
	int i;

	ck_assert_ptr_nonnull(al = accesslog_open(path));
	for (i = 0; i < 500; i++)
		put(al, "old ", i, "");
	ck_assert_int_eq(rename(path, rotated), 0);
	accesslog_reopen(al);
	for (i = 0; i < 500; i++)
		put(al, "new ", i, "");
	/* The new file appears without waiting for close. */
	for (int64_t start = (int64_t)clock_mono_ms(); stat(path, &sb) != 0; nap())
		ck_assert_msg((int64_t)clock_mono_ms() - start < POLL_LIMIT_MS,
		    "%s not recreated", path);
	accesslog_close(al);

	ck_assert_ptr_nonnull(data = slurp(rotated, &len));
	expect_seq(data, len, "old ", "", 0, 500);
	free(data);
	ck_assert_ptr_nonnull(data = slurp(path, &len));
	expect_seq(data, len, "new ", "", 0, 500);
	free(data);
	free(rotated);
	free(path);
	free(dir);
}
END_TEST

/* A reopen that fails keeps the old file rather than losing lines. */
START_TEST(test_reopen_fails_keeps_old)
{
	char *dir = test_dir(), *path = join(dir, "access.log");
	char *rotated = join(dir, "access.log.1"), *data;
	struct accesslog *al;
	size_t len;

	ck_assert_ptr_nonnull(al = accesslog_open(path));
	put(al, "line ", 0, "");
	ck_assert_int_eq(rename(path, rotated), 0);
	ck_assert_int_eq(mkdir(path, 0700), 0);	/* open(O_WRONLY) fails */
	accesslog_reopen(al);
	put(al, "line ", 1, "");
	accesslog_close(al);

	ck_assert_ptr_nonnull(data = slurp(rotated, &len));
	expect_seq(data, len, "line ", "", 0, 2);
	free(data);
	free(rotated);
	free(path);
	free(dir);
}
END_TEST

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	char buf[65536];
	ssize_t n;

	for (;;) {
		n = read(r->fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		pthread_mutex_lock(&r->mu);
		if (n <= 0) {
			r->eof = true;
			pthread_mutex_unlock(&r->mu);
			return NULL;
		}
		if (r->cap - r->len < (size_t)n + 1) {
			r->cap = (r->cap + (size_t)n + 1) * 2;
			if ((r->data = realloc(r->data, r->cap)) == NULL)
				abort();
		}
		memcpy(r->data + r->len, buf, (size_t)n);
		r->len += (size_t)n;
		r->data[r->len] = '\0';
		pthread_mutex_unlock(&r->mu);
	}
}

static bool
reader_has(struct reader *r, const char *needle)
{
	bool found;

	pthread_mutex_lock(&r->mu);
	found = r->data != NULL && strstr(r->data, needle) != NULL;
	pthread_mutex_unlock(&r->mu);
	return found;
}

/*
 * A writer that cannot keep up: the log is a FIFO nobody reads yet, so the
 * writer blocks in write(2) once the pipe is full, and everything beyond
 * 8 MiB of unwritten lines is dropped. Once the reader starts, the writer
 * catches up, reports the drops once, and takes new lines again.
 */
START_TEST(test_drops_when_writer_blocked)
{
	char *dir = test_dir(), *path = join(dir, "access.log");
	struct reader r = {.fd = -1};
	struct accesslog *al;
	pthread_t th;
	uint64_t dropped;
	char expect[256];
	const int total = 100000;	/* about 11 MiB */
	int kept, after = 5, n, pipe_size;
	char *p;

	ck_assert_int_eq(mkfifo(path, 0600), 0);
	/* A reader must exist for the writer's open(O_WRONLY) to return. */
	ck_assert_int_ne(r.fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC), -1);
	ck_assert_int_eq(fcntl(r.fd, F_SETFL, 0), 0);
	/* A small pipe, so that the bound on accepted bytes below is tight. */
	ck_assert_int_gt(pipe_size = fcntl(r.fd, F_SETPIPE_SZ, 4096), 0);
	ck_assert_int_eq(pthread_mutex_init(&r.mu, NULL), 0);
	ck_assert_ptr_nonnull(al = accesslog_open(path));

	for (int i = 0; i < total; i++)
		put(al, "blocked ", i, " " DOTS DOTS);
	dropped = accesslog_dropped(al);
	ck_assert_uint_gt(dropped, 0);
	ck_assert_uint_lt(dropped, (uint64_t)total);
	kept = total - (int)dropped;
	/*
	 * Accepted: what fitted into the pipe by completed writes, plus 8 MiB
	 * unwritten (queued, or in the batch stuck in write(2)) to within one
	 * line.
	 */
	n = seq_line(expect, sizeof(expect), "blocked ", 0, " " DOTS DOTS) + 1;
	ck_assert_int_gt((int64_t)kept * n, 8 * 1024 * 1024 - n);
	ck_assert_int_le((int64_t)kept * n, 8 * 1024 * 1024 + pipe_size);

	ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &r), 0);
	snprintf(expect, sizeof(expect), "\n%d access log lines dropped\n",
	    (int)dropped);
	for (int64_t start = (int64_t)clock_mono_ms(); !reader_has(&r, expect); nap())
		ck_assert_msg((int64_t)clock_mono_ms() - start < POLL_LIMIT_MS,
		    "no drop report after %d ms", POLL_LIMIT_MS);
	for (int i = 0; i < after; i++)
		put(al, "after ", i, "");
	ck_assert_uint_eq(accesslog_dropped(al), dropped);
	accesslog_close(al);	/* EOF for the reader */
	ck_assert_int_eq(pthread_join(th, NULL), 0);

	/* The accepted prefix, the report, then the later lines. */
	ck_assert(r.eof);
	ck_assert_ptr_nonnull(p = strstr(r.data, expect));
	expect_seq(r.data, (size_t)(p - r.data) + 1, "blocked ", " " DOTS DOTS, 0,
	    kept);
	p += strlen(expect);
	expect_seq(p, strlen(p), "after ", "", 0, after);

	close(r.fd);
	pthread_mutex_destroy(&r.mu);
	free(r.data);
	free(path);
	free(dir);
}
END_TEST

/* ---- escaping ------------------------------------------------------------ */

struct escape_case {
	const char *in;
	size_t inlen; /* 0: strlen(in) */
	const char *want;
};

static const struct escape_case escape_cases[] = {
	{"GET /a/b?c=d HTTP/1.1", 0, "GET /a/b?c=d HTTP/1.1"},
	{"GET /\"x\" HTTP/1.1", 0, "GET /\\x22x\\x22 HTTP/1.1"},
	{"/a\\b", 0, "/a\\x5Cb"},
	{"/caf\xc3\xa9", 0, "/caf\\xC3\\xA9"},
	{"\x7f\x80\xff", 0, "\\x7F\\x80\\xFF"},
	{"a\r\nb\tc\x1b[0m", 0, "a\\x0D\\x0Ab\\x09c\\x1B[0m"},
	{"a\0b", 3, "a\\x00b"},
	{" ~!", 0, " ~!"},
	{"", 0, ""},
};

START_TEST(test_escape)
{
	const struct escape_case *c = &escape_cases[_i];
	size_t len = c->inlen != 0 ? c->inlen : strlen(c->in);
	char out[256];
	size_t n;

	memset(out, 'Z', sizeof(out));
	n = accesslog_escape(out, sizeof(out), c->in, len);
	ck_assert_str_eq(out, c->want);
	ck_assert_uint_eq(n, strlen(c->want));
}
END_TEST

/* A short buffer ends the output before an escape it cannot hold whole,
 * and is always terminated. */
START_TEST(test_escape_truncates_whole)
{
	char out[8];

	memset(out, 'Z', sizeof(out));
	ck_assert_uint_eq(accesslog_escape(out, sizeof(out), "abcdefghij", 10), 7);
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_uint_eq(accesslog_escape(out, sizeof(out), "abcd\"ef", 7), 4);
	ck_assert_str_eq(out, "abcd");
	ck_assert_uint_eq(accesslog_escape(out, sizeof(out), "abc\"ef", 6), 7);
	ck_assert_str_eq(out, "abc\\x22");
	ck_assert_uint_eq(accesslog_escape(out, 1, "abc", 3), 0);
	ck_assert_str_eq(out, "");
	out[0] = 'Z';
	ck_assert_uint_eq(accesslog_escape(out, 0, "abc", 3), 0);
	ck_assert_int_eq(out[0], 'Z');
}
END_TEST

static Suite *
accesslog_suite(void)
{
	Suite *s = suite_create("accesslog");
	TCase *tc = tcase_create("accesslog");
	TCase *te;

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_order_and_mode);
	tcase_add_test(tc, test_appends_and_empty_line);
	tcase_add_test(tc, test_open_fails);
	tcase_add_test(tc, test_flushes_without_close);
	tcase_add_test(tc, test_close_flushes);
	tcase_add_test(tc, test_concurrent_writers);
	tcase_add_test(tc, test_reopen_after_rename);
	tcase_add_test(tc, test_reopen_fails_keeps_old);
	tcase_add_test(tc, test_drops_when_writer_blocked);
	suite_add_tcase(s, tc);
	te = tcase_create("escape");
	tcase_add_loop_test(te, test_escape, 0,
	    (int)(sizeof(escape_cases) / sizeof(escape_cases[0])));
	tcase_add_test(te, test_escape_truncates_whole);
	suite_add_tcase(s, te);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(accesslog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
