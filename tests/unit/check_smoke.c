#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "addr.h"
#include "config.h"
#include "json.h"
#include "pool.h"
#include "smoke.h"

/*
 * A tiny HTTP server on the test's own event_base answers by path; smoke
 * runs go against it (and against 127.0.0.1:1, where nothing listens).
 */

static struct event_base *base;
static struct evhttp *http;
static char live[64]; /* "127.0.0.1:PORT" */
static char seen_host[128], seen_smoke[128], seen_ua[128], seen_conn[128], seen_method[16];

struct result {
	int calls;
	bool ok;
	char *report;
	char *failure;
	struct json *json;
};

static struct result res;

static void
set_seen(char *dst, size_t len, const char *v)
{
	snprintf(dst, len, "%s", v != NULL ? v : "(none)");
}

static void
server_cb(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *b = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);

	(void)arg;
	ck_assert_ptr_nonnull(b);
	if (strcmp(uri, "/ok") == 0) {
		evbuffer_add_printf(b, "all ok here");
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/500") == 0) {
		evbuffer_add_printf(b, "boom");
		evhttp_send_reply(req, 500, "Internal Server Error", b);
	} else if (strcmp(uri, "/slow") == 0) {
		/* Never answered: evhttp_free() drops it at teardown. */
	} else if (strcmp(uri, "/chunked") == 0) {
		evhttp_send_reply_start(req, 200, "OK");
		evbuffer_add_printf(b, "first chunk nee");
		evhttp_send_reply_chunk(req, b);
		evbuffer_add_printf(b, "dle second chunk");
		evhttp_send_reply_chunk(req, b);
		evhttp_send_reply_end(req);
	} else if (strcmp(uri, "/echo") == 0) {
		set_seen(seen_host, sizeof(seen_host), evhttp_find_header(h, "Host"));
		set_seen(seen_smoke, sizeof(seen_smoke), evhttp_find_header(h, "X-Smoke"));
		set_seen(seen_ua, sizeof(seen_ua), evhttp_find_header(h, "User-Agent"));
		set_seen(seen_conn, sizeof(seen_conn), evhttp_find_header(h, "Connection"));
		set_seen(seen_method, sizeof(seen_method),
		    evhttp_request_get_command(req) == EVHTTP_REQ_POST ? "POST" : "other");
		evbuffer_add_printf(b, "host=%s", seen_host);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/binary") == 0) {
		evbuffer_add(b, "\xff\xfe\x01\"bad\\", 8);
		evhttp_send_reply(req, 200, "OK", b);
	} else if (strcmp(uri, "/big") == 0) {
		/* 2 MiB: longer than what smoke keeps; the needle is early. */
		char chunk[4096];
		int i;

		memset(chunk, 'a', sizeof(chunk));
		evbuffer_add_printf(b, "needle");
		for (i = 0; i < 512; i++)
			evbuffer_add(b, chunk, sizeof(chunk));
		evhttp_send_reply(req, 200, "OK", b);
	} else
		evhttp_send_reply(req, 404, "Not Found", NULL);
	evbuffer_free(b);
}

static void
setup(void)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sin;
	socklen_t slen = sizeof(sin);

	memset(&res, 0, sizeof(res));
	seen_host[0] = seen_smoke[0] = seen_ua[0] = seen_conn[0] = seen_method[0] = '\0';
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	http = evhttp_new(base);
	ck_assert_ptr_nonnull(http);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(http, server_cb, NULL);
	bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	ck_assert_ptr_nonnull(bs);
	ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &slen), 0);
	snprintf(live, sizeof(live), "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
}

static void
teardown(void)
{
	free(res.report);
	free(res.failure);
	json_free(res.json);
	evhttp_free(http);
	event_base_free(base);
}

/* A pool of the given addresses ("live" is replaced by the test server). */
static struct pool *
make_pool(const char *a, const char *b)
{
	struct config_pool cp;
	struct addr addrs[2];
	struct pool *p;

	memset(&cp, 0, sizeof(cp));
	ck_assert_int_eq(addr_parse(strcmp(a, "live") == 0 ? live : a, &addrs[0], NULL, 0), 0);
	cp.nservers = 1;
	if (b != NULL) {
		ck_assert_int_eq(addr_parse(strcmp(b, "live") == 0 ? live : b, &addrs[1], NULL, 0), 0);
		cp.nservers = 2;
	}
	cp.servers = addrs;
	p = pool_new(COLOR_GREEN, &cp, 1);
	ck_assert_ptr_nonnull(p);
	return p;
}

static struct config_smoke
smoke_test(const char *path, int status, const char *body, uint64_t timeout_ms)
{
	struct config_smoke cs;

	memset(&cs, 0, sizeof(cs));
	cs.method = "GET";
	cs.path = (char *)(uintptr_t)path;
	cs.expect_status = status;
	cs.expect_body = (char *)(uintptr_t)body;
	cs.timeout_ms = timeout_ms;
	return cs;
}

static void
done_cb(bool ok, const char *report, const char *failure, void *arg)
{
	(void)arg;
	res.calls++;
	res.ok = ok;
	ck_assert_ptr_nonnull(report);
	res.report = strdup(report);
	res.failure = failure != NULL ? strdup(failure) : NULL;
	/* The report must always be valid JSON. */
	res.json = json_parse(report, strlen(report));
	ck_assert_msg(res.json != NULL, "report is not JSON: %s", report);
	ck_assert_int_eq(res.json->type, JSON_ARRAY);
	event_base_loopbreak(base);
}

static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
	event_base_loopbreak(base);
}

/* Runs the loop until the callback fired or ms passed; true if it fired. */
static bool
run_loop(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	bool expired = false;
	struct event *wd = evtimer_new(base, watchdog_cb, &expired);

	ck_assert_ptr_nonnull(wd);
	evtimer_add(wd, &tv);
	event_base_dispatch(base);
	event_free(wd);
	return !expired;
}

static void
run_smoke(struct config_smoke *tests, size_t n, struct pool *p)
{
	struct config cfg;
	struct smoke_run *run;

	memset(&cfg, 0, sizeof(cfg));
	cfg.smoke = tests;
	cfg.nsmoke = n;
	run = smoke_start(base, &cfg, p, done_cb, NULL);
	ck_assert_ptr_nonnull(run);
	/* The callback never comes from inside smoke_start(). */
	ck_assert_int_eq(res.calls, 0);
	ck_assert_msg(run_loop(10000), "smoke run did not finish");
	ck_assert_int_eq(res.calls, 1);
}

static const struct json *
item(size_t i)
{
	ck_assert_uint_gt(res.json->n, i);
	return res.json->items[i];
}

START_TEST(test_all_pass)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[2] = {smoke_test("/ok", 200, "ok here", 2000),
	    smoke_test("/chunked", 200, NULL, 2000)};

	run_smoke(t, 2, p);
	ck_assert(res.ok);
	ck_assert_ptr_null(res.failure);
	ck_assert_uint_eq(res.json->n, 2);
	ck_assert_double_eq(json_get_num(item(0), "test", 0), 1);
	ck_assert_double_eq(json_get_num(item(1), "test", 0), 2);
	ck_assert_str_eq(json_get_str(item(0), "method", ""), "GET");
	ck_assert_str_eq(json_get_str(item(0), "path", ""), "/ok");
	ck_assert_str_eq(json_get_str(item(1), "path", ""), "/chunked");
	ck_assert_str_eq(json_get_str(item(0), "server", ""), live);
	ck_assert(json_get_bool(item(0), "ok", false));
	ck_assert(json_get_bool(item(1), "ok", false));
	ck_assert_double_eq(json_get_num(item(0), "status", 0), 200);
	ck_assert_int_eq(json_get(item(0), "error")->type, JSON_NULL);
	pool_unref(p);
}
END_TEST

START_TEST(test_wrong_status)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/500", 200, NULL, 2000)};
	char want[256];

	run_smoke(t, 1, p);
	ck_assert(!res.ok);
	snprintf(want, sizeof(want), "smoke test 1 (GET /500) on %s: status 500, expected 200", live);
	ck_assert_str_eq(res.failure, want);
	ck_assert(!json_get_bool(item(0), "ok", true));
	ck_assert_double_eq(json_get_num(item(0), "status", 0), 500);
	ck_assert_str_eq(json_get_str(item(0), "error", ""), "status 500, expected 200");
	pool_unref(p);
}
END_TEST

START_TEST(test_missing_body)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/ok", 200, "not there", 2000)};

	run_smoke(t, 1, p);
	ck_assert(!res.ok);
	ck_assert_ptr_nonnull(strstr(res.failure, "body does not contain \"not there\""));
	/* What came back is quoted. */
	ck_assert_ptr_nonnull(strstr(res.failure, "all ok here"));
	ck_assert_double_eq(json_get_num(item(0), "status", 0), 200);
	ck_assert_ptr_nonnull(strstr(json_get_str(item(0), "error", ""), "does not contain"));
	pool_unref(p);
}
END_TEST

START_TEST(test_body_across_chunks)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/chunked", 200, "needle", 2000)};

	run_smoke(t, 1, p);
	ck_assert_msg(res.ok, "failure: %s", res.failure);
	pool_unref(p);
}
END_TEST

START_TEST(test_big_body_is_cut)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[2] = {smoke_test("/big", 200, "needle", 5000),
	    smoke_test("/big", 200, "aaab", 5000)};

	run_smoke(t, 2, p);
	ck_assert(!res.ok);
	ck_assert(json_get_bool(item(0), "ok", false));
	ck_assert_ptr_nonnull(strstr(json_get_str(item(1), "error", ""), "(1048576 bytes"));
	pool_unref(p);
}
END_TEST

START_TEST(test_timeout)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/slow", 200, NULL, 200)};
	struct timespec a, b;
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &a);
	run_smoke(t, 1, p);
	clock_gettime(CLOCK_MONOTONIC, &b);
	secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	ck_assert(!res.ok);
	ck_assert_ptr_nonnull(strstr(res.failure, "timed out after 200ms"));
	ck_assert_int_eq(json_get(item(0), "status")->type, JSON_NULL);
	ck_assert_msg(secs >= 0.15 && secs < 2.0, "took %.3fs", secs);
	pool_unref(p);
}
END_TEST

START_TEST(test_connection_refused)
{
	struct pool *p = make_pool("live", "127.0.0.1:1");
	struct config_smoke t[1] = {smoke_test("/ok", 200, NULL, 2000)};

	run_smoke(t, 1, p);
	ck_assert(!res.ok);
	ck_assert_uint_eq(res.json->n, 2);
	ck_assert(json_get_bool(item(0), "ok", false));
	ck_assert(!json_get_bool(item(1), "ok", true));
	ck_assert_str_eq(json_get_str(item(1), "server", ""), "127.0.0.1:1");
	ck_assert_str_eq(json_get_str(item(1), "error", ""), "connect: Connection refused");
	ck_assert_str_eq(res.failure, "smoke test 1 (GET /ok) on 127.0.0.1:1: connect: Connection refused");
	pool_unref(p);
}
END_TEST

/* The summary names the first failure in (test, server) order, not in time. */
START_TEST(test_first_failure_in_order)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[2] = {smoke_test("/slow", 200, NULL, 300),
	    smoke_test("/500", 200, NULL, 2000)};
	char want[256];

	run_smoke(t, 2, p);
	ck_assert(!res.ok);
	snprintf(want, sizeof(want), "smoke test 1 (GET /slow) on %s: timed out after 300ms", live);
	ck_assert_str_eq(res.failure, want);
	ck_assert_str_eq(json_get_str(item(1), "error", ""), "status 500, expected 200");
	pool_unref(p);
}
END_TEST

START_TEST(test_no_healthy_server)
{
	struct pool *p = make_pool("live", "127.0.0.1:1");
	struct config_smoke t[1] = {smoke_test("/ok", 200, NULL, 2000)};

	atomic_store(&p->servers[0].up, false);
	atomic_store(&p->servers[1].up, false);
	run_smoke(t, 1, p);
	ck_assert(!res.ok);
	ck_assert_str_eq(res.failure, "no healthy server in green");
	ck_assert_uint_eq(res.json->n, 0);
	pool_unref(p);
}
END_TEST

/* Only servers that are up are tested. */
START_TEST(test_down_server_skipped)
{
	struct pool *p = make_pool("127.0.0.1:1", "live");
	struct config_smoke t[1] = {smoke_test("/ok", 200, NULL, 2000)};

	atomic_store(&p->servers[0].up, false);
	run_smoke(t, 1, p);
	ck_assert(res.ok);
	ck_assert_uint_eq(res.json->n, 1);
	ck_assert_str_eq(json_get_str(item(0), "server", ""), live);
	pool_unref(p);
}
END_TEST

START_TEST(test_no_tests_is_ok)
{
	struct pool *p = make_pool("live", NULL);

	run_smoke(NULL, 0, p);
	ck_assert(res.ok);
	ck_assert_ptr_null(res.failure);
	ck_assert_str_eq(res.report, "[]");
	pool_unref(p);
}
END_TEST

START_TEST(test_headers_and_host)
{
	struct pool *p = make_pool("live", NULL);
	struct config_header h[2] = {{"X-Smoke", "hello"}, {"Host", "example.test"}};
	struct config_smoke t[1] = {smoke_test("/echo", 200, "host=example.test", 2000)};

	t[0].method = "POST";
	t[0].headers = h;
	t[0].nheaders = 2;
	run_smoke(t, 1, p);
	ck_assert_msg(res.ok, "failure: %s", res.failure);
	ck_assert_str_eq(seen_host, "example.test");
	ck_assert_str_eq(seen_smoke, "hello");
	ck_assert_str_eq(seen_ua, "cutover-smoke");
	ck_assert_str_eq(seen_conn, "close");
	ck_assert_str_eq(seen_method, "POST");
	ck_assert_str_eq(json_get_str(item(0), "method", ""), "POST");
	pool_unref(p);
}
END_TEST

START_TEST(test_default_host)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/echo", 200, NULL, 2000)};

	run_smoke(t, 1, p);
	ck_assert(res.ok);
	ck_assert_str_eq(seen_host, live);
	ck_assert_str_eq(seen_smoke, "(none)");
	pool_unref(p);
}
END_TEST

/* Bytes from a server end up in the report as valid, escaped JSON. */
START_TEST(test_binary_body_in_report)
{
	struct pool *p = make_pool("live", NULL);
	struct config_smoke t[1] = {smoke_test("/binary", 200, "zzz", 2000)};
	const char *err;

	run_smoke(t, 1, p);
	ck_assert(!res.ok);
	err = json_get_str(item(0), "error", "");
	ck_assert_msg(strstr(err, "\"???\"bad\\\"") != NULL, "error: %s", err);
	ck_assert_ptr_null(strchr(res.failure, '\xff'));
	pool_unref(p);
}
END_TEST

START_TEST(test_cancel)
{
	struct pool *p = make_pool("live", "127.0.0.1:1");
	struct config_smoke t[2] = {smoke_test("/slow", 200, NULL, 300), smoke_test("/ok", 200, NULL, 300)};
	struct config cfg;
	struct smoke_run *run;

	memset(&cfg, 0, sizeof(cfg));
	cfg.smoke = t;
	cfg.nsmoke = 2;
	run = smoke_start(base, &cfg, p, done_cb, NULL);
	ck_assert_ptr_nonnull(run);
	/* Let the exchanges get going (the quick ones even finish). */
	ck_assert(!run_loop(100));
	smoke_cancel(run);
	/* Past every deadline: nothing may fire now. */
	ck_assert(!run_loop(500));
	ck_assert_int_eq(res.calls, 0);
	/* The run dropped its pool reference. */
	ck_assert_uint_eq(atomic_load(&p->refs), 1);
	pool_unref(p);
}
END_TEST

static Suite *
smoke_suite(void)
{
	Suite *s = suite_create("smoke");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_all_pass);
	tcase_add_test(tc, test_wrong_status);
	tcase_add_test(tc, test_missing_body);
	tcase_add_test(tc, test_body_across_chunks);
	tcase_add_test(tc, test_big_body_is_cut);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_connection_refused);
	tcase_add_test(tc, test_first_failure_in_order);
	tcase_add_test(tc, test_no_healthy_server);
	tcase_add_test(tc, test_down_server_skipped);
	tcase_add_test(tc, test_no_tests_is_ok);
	tcase_add_test(tc, test_headers_and_host);
	tcase_add_test(tc, test_default_host);
	tcase_add_test(tc, test_binary_body_in_report);
	tcase_add_test(tc, test_cancel);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(smoke_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
