#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "addr.h"
#include "config.h"
#include "pool.h"

static struct pool *
make_pool(size_t n)
{
	struct config_pool cp;
	struct pool *p;
	size_t i;

	memset(&cp, 0, sizeof(cp));
	cp.nservers = n;
	cp.servers = calloc(n ? n : 1, sizeof(*cp.servers));
	ck_assert_ptr_nonnull(cp.servers);
	for (i = 0; i < n; i++) {
		char text[32];

		snprintf(text, sizeof(text), "127.0.0.1:%zu", 9000 + i);
		ck_assert_int_eq(addr_parse(text, &cp.servers[i], NULL, 0), 0);
	}
	p = pool_new(COLOR_GREEN, &cp, 2);
	free(cp.servers);
	ck_assert_ptr_nonnull(p);
	return p;
}

START_TEST(test_round_robin)
{
	struct pool *p = make_pool(3);
	unsigned cursor = 0, seen[3] = {0};
	int i;

	for (i = 0; i < 300; i++) {
		struct server *s = pool_pick(p, &cursor, NULL);

		ck_assert_ptr_nonnull(s);
		ck_assert_int_eq(s->color, COLOR_GREEN);
		ck_assert_ptr_eq(s->pool, p);
		seen[s->index]++;
	}
	ck_assert_uint_eq(seen[0], 100);
	ck_assert_uint_eq(seen[1], 100);
	ck_assert_uint_eq(seen[2], 100);
	pool_unref(p);
}
END_TEST

START_TEST(test_skips_down_servers)
{
	struct pool *p = make_pool(3);
	unsigned cursor = 0;
	int i;

	atomic_store(&p->servers[1].up, false);
	ck_assert_uint_eq(pool_healthy(p), 2);
	for (i = 0; i < 50; i++) {
		struct server *s = pool_pick(p, &cursor, NULL);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_ne(s->index, 1);
	}
	atomic_store(&p->servers[0].up, false);
	atomic_store(&p->servers[2].up, false);
	ck_assert_uint_eq(pool_healthy(p), 0);
	ck_assert_ptr_null(pool_pick(p, &cursor, NULL));
	pool_unref(p);
}
END_TEST

START_TEST(test_skip_failed_server)
{
	struct pool *p = make_pool(2);
	unsigned cursor = 0;
	int i;

	for (i = 0; i < 10; i++) {
		struct server *s = pool_pick(p, &cursor, &p->servers[0]);

		ck_assert_ptr_eq(s, &p->servers[1]);
	}
	pool_unref(p);
}
END_TEST

START_TEST(test_empty_pool)
{
	struct pool *p = make_pool(0);
	unsigned cursor = 0;

	ck_assert_ptr_null(pool_pick(p, &cursor, NULL));
	ck_assert_uint_eq(pool_healthy(p), 0);
	pool_unref(p);
}
END_TEST

/* Servers a name resolved to follow the numeric ones, labelled "host:port (address)". */
START_TEST(test_named_servers)
{
	struct config_pool cp;
	struct pool_named named[2];
	struct pool *p;

	memset(&cp, 0, sizeof(cp));
	cp.nservers = 1;
	cp.servers = calloc(1, sizeof(*cp.servers));
	ck_assert_ptr_nonnull(cp.servers);
	ck_assert_int_eq(addr_parse("10.0.0.1:80", &cp.servers[0], NULL, 0), 0);
	ck_assert_int_eq(addr_parse("10.0.2.7:8080", &named[0].addr, NULL, 0), 0);
	ck_assert_int_eq(addr_parse("[2001:db8::7]:8080", &named[1].addr, NULL, 0), 0);
	named[0].name = named[1].name = "green1.internal:8080";
	p = pool_new_named(COLOR_GREEN, &cp, named, 2, 2);
	free(cp.servers);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->nservers, 3);
	ck_assert_str_eq(server_label(&p->servers[0]), "10.0.0.1:80");
	ck_assert_str_eq(server_host(&p->servers[0]), "10.0.0.1:80");
	ck_assert_str_eq(server_label(&p->servers[1]), "green1.internal:8080 (10.0.2.7)");
	ck_assert_str_eq(server_host(&p->servers[1]), "green1.internal:8080");
	ck_assert_str_eq(server_label(&p->servers[2]), "green1.internal:8080 (2001:db8::7)");
	ck_assert_str_eq(p->servers[2].addr.text, "[2001:db8::7]:8080");
	ck_assert_uint_eq(p->servers[2].index, 2);
	/* Up until checked, like any server at start; fresh only when a DNS
	 * answer adds one to a running color (generation.c). */
	ck_assert_uint_eq(pool_healthy(p), 3);
	ck_assert_uint_eq(pool_fresh(p), 0);
	p->servers[2].fresh = true;
	ck_assert_uint_eq(pool_fresh(p), 1);
	pool_unref(p);
}
END_TEST

START_TEST(test_route_publish)
{
	struct pool *blue = make_pool(1), *green = make_pool(2);
	struct route r1 = {.pools = {blue, green}, .active = COLOR_BLUE};
	struct route r2 = {.pools = {blue, green}, .active = COLOR_GREEN};
	enum color c;
	struct pool *p;

	route_publish(&r1);
	ck_assert_ptr_eq(route_current(), &r1);
	p = route_acquire_pool(&c);
	ck_assert_ptr_eq(p, blue);
	ck_assert_int_eq(c, COLOR_BLUE);
	ck_assert_uint_eq(atomic_load(&blue->refs), 2);
	route_publish(&r2);
	/* The request that started on blue still holds blue. */
	pool_unref(p);
	p = route_acquire_pool(&c);
	ck_assert_ptr_eq(p, green);
	ck_assert_int_eq(c, COLOR_GREEN);
	pool_unref(p);
	route_publish(NULL);
	ck_assert_ptr_null(route_acquire_pool(&c));
	pool_unref(blue);
	pool_unref(green);
}
END_TEST

static Suite *
pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_round_robin);
	tcase_add_test(tc, test_skips_down_servers);
	tcase_add_test(tc, test_skip_failed_server);
	tcase_add_test(tc, test_empty_pool);
	tcase_add_test(tc, test_route_publish);
	tcase_add_test(tc, test_named_servers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
