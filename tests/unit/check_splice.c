#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>

#include "splice.h"

/* A socket pair each side: bytes written to src[0] go through the pipe from src[1] to dst[0], read at dst[1]. */
static int src[2], dst[2];

static void
setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, src), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, dst), 0);
}

static void
teardown(void)
{
	close(src[0]);
	close(src[1]);
	close(dst[0]);
	close(dst[1]);
}

START_TEST(test_splice_moves_bytes_in_order)
{
	struct splice_pipe *p = splice_pipe_new(65536);
	char in[10000], out[10000];
	size_t i, got = 0;
	ssize_t n;

	ck_assert_ptr_nonnull(p);
	for (i = 0; i < sizeof(in); i++)
		in[i] = (char)(i * 7 + 3);
	ck_assert_int_eq(write(src[0], in, sizeof(in)), (ssize_t)sizeof(in));
	n = splice_pipe_in(p, src[1], 4000);
	ck_assert_int_eq(n, 4000);
	ck_assert_uint_eq(splice_pipe_len(p), 4000);
	n = splice_pipe_in(p, src[1], 100000);
	ck_assert_int_eq(n, 6000);
	ck_assert(splice_pipe_can_take(p));
	/* Nothing more in the socket: EAGAIN. */
	ck_assert_int_eq(splice_pipe_in(p, src[1], 100000), -1);
	ck_assert_int_eq(errno, EAGAIN);
	n = splice_pipe_out(p, dst[0]);
	ck_assert_int_eq(n, 10000);
	ck_assert_uint_eq(splice_pipe_len(p), 0);
	ck_assert(splice_pipe_can_take(p));
	while (got < sizeof(out) && (n = read(dst[1], out + got, sizeof(out) - got)) > 0)
		got += (size_t)n;
	ck_assert_uint_eq(got, sizeof(out));
	ck_assert_mem_eq(in, out, sizeof(in));
	splice_pipe_free(p);
}
END_TEST

START_TEST(test_splice_eof_and_leftovers)
{
	struct splice_pipe *p = splice_pipe_new(65536);
	struct evbuffer *buf = evbuffer_new();

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(write(src[0], "hello", 5), 5);
	shutdown(src[0], SHUT_WR);
	ck_assert_int_eq(splice_pipe_in(p, src[1], 100), 5);
	ck_assert_int_eq(splice_pipe_in(p, src[1], 100), 0); /* end of file */
	ck_assert_int_eq(splice_pipe_to_evbuffer(p, buf), 5);
	ck_assert_uint_eq(splice_pipe_len(p), 0);
	ck_assert_uint_eq(evbuffer_get_length(buf), 5);
	ck_assert_mem_eq(evbuffer_pullup(buf, -1), "hello", 5);
	ck_assert_int_eq(splice_pipe_to_evbuffer(p, buf), 0);
	evbuffer_free(buf);
	splice_pipe_free(p);
}
END_TEST

START_TEST(test_splice_full_pipe_and_full_socket)
{
	struct splice_pipe *p = splice_pipe_new(4096);
	static char chunk[65536];
	ssize_t n;
	size_t total = 0;

	ck_assert_ptr_nonnull(p);
	/* The client side takes nothing more once its buffers are full. */
	while (write(dst[0], chunk, sizeof(chunk)) > 0)
		;
	ck_assert_int_eq(write(src[0], chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	while ((n = splice_pipe_in(p, src[1], sizeof(chunk))) > 0)
		total += (size_t)n;
	ck_assert_uint_gt(total, 0);
	ck_assert_uint_eq(splice_pipe_len(p), total);
	ck_assert(!splice_pipe_can_take(p));
	ck_assert_int_eq(splice_pipe_out(p, dst[0]), -1);
	ck_assert_int_eq(errno, EAGAIN);
	ck_assert_uint_eq(splice_pipe_len(p), total);
	/* The reader drains: the pipe's bytes go, and it takes more. */
	while (read(dst[1], chunk, sizeof(chunk)) > 0)
		;
	n = splice_pipe_out(p, dst[0]);
	ck_assert_int_eq(n, (ssize_t)total);
	ck_assert(splice_pipe_can_take(p));
	splice_pipe_free(p);
}
END_TEST

START_TEST(test_splice_out_to_closed_peer)
{
	struct splice_pipe *p = splice_pipe_new(65536);

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(write(src[0], "abc", 3), 3);
	ck_assert_int_eq(splice_pipe_in(p, src[1], 100), 3);
	close(dst[1]);
	dst[1] = -1;
	ck_assert_int_eq(splice_pipe_out(p, dst[0]), -1);
	ck_assert_int_eq(errno, EPIPE);
	splice_pipe_free(p);
	splice_pipe_free(NULL);
}
END_TEST

static Suite *
splice_suite(void)
{
	Suite *s = suite_create("splice");
	TCase *tc = tcase_create("splice");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_splice_moves_bytes_in_order);
	tcase_add_test(tc, test_splice_eof_and_leftovers);
	tcase_add_test(tc, test_splice_full_pipe_and_full_socket);
	tcase_add_test(tc, test_splice_out_to_closed_peer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(splice_suite());
	int failed;

	/* EPIPE, not a signal, when the peer is gone (as the daemon runs). */
	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
