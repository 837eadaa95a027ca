#include "autoconf.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <check.h>

#include "addr.h"
#include "dnsname.h"

struct parse_case {
	const char *in;
	const char *host; /* NULL: refused */
	unsigned port;
	const char *err;  /* a piece of the reason when refused */
};

static const struct parse_case parse_cases[] = {
	{"green1.internal:8080", "green1.internal", 8080, NULL},
	{"App-Green-1.Internal:80", "app-green-1.internal", 80, NULL},
	{"localhost:1", "localhost", 1, NULL},
	{"host.example.:443", "host.example", 443, NULL},
	{"a1:65535", "a1", 65535, NULL},
	{"xn--bcher-kva.example:80", "xn--bcher-kva.example", 80, NULL},
	{"green.test", NULL, 0, "missing \":port\""},
	{":80", NULL, 0, "missing host name"},
	{"green.test:", NULL, 0, "missing port"},
	{"green.test:0", NULL, 0, "1..65535"},
	{"green.test:65536", NULL, 0, "1..65535"},
	{"green.test:80x", NULL, 0, "1..65535"},
	{"green.test:-1", NULL, 0, "missing port"},
	{"gr_een.test:80", NULL, 0, "'_' is not allowed"},
	{"-green.test:80", NULL, 0, "starts with '-'"},
	{"green-.test:80", NULL, 0, "ending with '-'"},
	{"green.test-:80", NULL, 0, "ends with '-'"},
	{"green..test:80", NULL, 0, "empty label"},
	{".green:80", NULL, 0, "empty label"},
	{"1.2.3:80", NULL, 0, "not a numeric address nor a host name"},
	{"999:80", NULL, 0, "not a numeric address nor a host name"},
	{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test:80", NULL, 0,
	    "longer than 63"},
	{"gr een:80", NULL, 0, "' ' is not allowed"},
};

START_TEST(test_parse)
{
	const struct parse_case *c = &parse_cases[_i];
	char host[DNSNAME_HOST_MAX], err[128] = "";
	unsigned port = 0;
	int rc = dnsname_parse(c->in, host, &port, err, sizeof(err));

	if (c->host != NULL) {
		ck_assert_msg(rc == 0, "%s: refused: %s", c->in, err);
		ck_assert_str_eq(host, c->host);
		ck_assert_uint_eq(port, c->port);
	} else {
		ck_assert_msg(rc == -1, "%s: accepted", c->in);
		ck_assert_msg(strstr(err, c->err) != NULL, "%s: reason \"%s\", want \"%s\"", c->in, err, c->err);
	}
}
END_TEST

START_TEST(test_long_name)
{
	char in[300], host[DNSNAME_HOST_MAX], err[128];
	unsigned port;
	size_t i;

	/* 4 labels of 63 and the dots: 255 characters, over 253. */
	for (i = 0; i < 255; i++)
		in[i] = (i + 1) % 64 == 0 ? '.' : 'a';
	strcpy(in + 255, ":80");
	ck_assert_int_eq(dnsname_parse(in, host, &port, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "longer than 253"));
	/* 253 is fine. */
	strcpy(in + 253, ":80");
	in[252] = 'a';
	ck_assert_int_eq(dnsname_parse(in, host, &port, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(host), 253);
}
END_TEST

static struct addr
v4(const char *ip, unsigned port)
{
	struct in_addr a;
	struct addr out;

	ck_assert_int_eq(inet_pton(AF_INET, ip, &a), 1);
	dnsname_addr(&out, AF_INET, &a, port);
	return out;
}

static struct addr
v6(const char *ip, unsigned port)
{
	struct in6_addr a;
	struct addr out;

	ck_assert_int_eq(inet_pton(AF_INET6, ip, &a), 1);
	dnsname_addr(&out, AF_INET6, &a, port);
	return out;
}

START_TEST(test_addr_and_label)
{
	struct addr a = v4("10.0.2.7", 8080), b = v6("2001:db8::1", 443), p;
	char buf[DNSNAME_LABEL_MAX];

	ck_assert_str_eq(a.text, "10.0.2.7:8080");
	ck_assert_str_eq(b.text, "[2001:db8::1]:443");
	/* The same text and socket address as addr_parse gives. */
	ck_assert_int_eq(addr_parse("[2001:db8::1]:443", &p, NULL, 0), 0);
	ck_assert_uint_eq(p.len, b.len);
	ck_assert_int_eq(memcmp(&p.ss, &b.ss, p.len), 0);
	dnsname_label(buf, sizeof(buf), "green1.internal:8080", &a);
	ck_assert_str_eq(buf, "green1.internal:8080 (10.0.2.7)");
	dnsname_label(buf, sizeof(buf), "green1.internal:443", &b);
	ck_assert_str_eq(buf, "green1.internal:443 (2001:db8::1)");
	/* Truncated, never overflowed. */
	dnsname_label(buf, 8, "green1.internal:8080", &a);
	ck_assert_str_eq(buf, "green1.");
}
END_TEST

START_TEST(test_sort_and_diff)
{
	struct addr prev[3], next[4];
	bool removed[3], added[4];
	size_t np, nn;

	prev[0] = v4("10.0.0.2", 80);
	prev[1] = v4("10.0.0.1", 80);
	prev[2] = v4("10.0.0.2", 80); /* the same record twice */
	np = dnsname_sort(prev, 3);
	ck_assert_uint_eq(np, 2);
	ck_assert_str_eq(prev[0].text, "10.0.0.1:80");
	ck_assert_str_eq(prev[1].text, "10.0.0.2:80");

	next[0] = v6("::1", 80);
	next[1] = v4("10.0.0.3", 80);
	next[2] = v4("10.0.0.2", 80);
	next[3] = v4("9.255.255.255", 80);
	nn = dnsname_sort(next, 4);
	ck_assert_uint_eq(nn, 4);
	/* IPv4 first, by bytes (9.x before 10.x), then IPv6. */
	ck_assert_str_eq(next[0].text, "9.255.255.255:80");
	ck_assert_str_eq(next[1].text, "10.0.0.2:80");
	ck_assert_str_eq(next[2].text, "10.0.0.3:80");
	ck_assert_str_eq(next[3].text, "[::1]:80");

	ck_assert(dnsname_diff(prev, np, next, nn, removed, added));
	ck_assert(removed[0] && !removed[1]);           /* 10.0.0.1 left, 10.0.0.2 stays */
	ck_assert(added[0] && !added[1] && added[2] && added[3]);

	/* The same set: no difference. */
	ck_assert(!dnsname_diff(next, nn, next, nn, NULL, NULL));
	/* From nothing, to nothing. */
	ck_assert(dnsname_diff(NULL, 0, next, nn, NULL, added));
	ck_assert(added[0] && added[1] && added[2] && added[3]);
	ck_assert(dnsname_diff(prev, np, NULL, 0, removed, NULL));
	ck_assert(removed[0] && removed[1]);
	ck_assert(!dnsname_diff(NULL, 0, NULL, 0, NULL, NULL));
	ck_assert_uint_eq(dnsname_sort(NULL, 0), 0);
}
END_TEST

START_TEST(test_port_orders)
{
	struct addr a = v4("10.0.0.1", 80), b = v4("10.0.0.1", 81);

	ck_assert_int_lt(dnsname_addr_cmp(&a, &b), 0);
	ck_assert_int_gt(dnsname_addr_cmp(&b, &a), 0);
	ck_assert_int_eq(dnsname_addr_cmp(&a, &a), 0);
}
END_TEST

static Suite *
dnsname_suite(void)
{
	Suite *s = suite_create("dnsname");
	TCase *tc = tcase_create("dnsname");

	tcase_add_loop_test(tc, test_parse, 0, (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
	tcase_add_test(tc, test_long_name);
	tcase_add_test(tc, test_addr_and_label);
	tcase_add_test(tc, test_sort_and_diff);
	tcase_add_test(tc, test_port_orders);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(dnsname_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
