#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <check.h>

#include "addr.h"

struct addr_case {
	const char *text;
	int rc;
	const char *canon;
	int family;
};

static const struct addr_case addr_cases[] = {
	{"127.0.0.1:8080", 0, "127.0.0.1:8080", AF_INET},
	{"0.0.0.0:1", 0, "0.0.0.0:1", AF_INET},
	{"*:80", 0, "0.0.0.0:80", AF_INET},
	{"10.1.2.3:65535", 0, "10.1.2.3:65535", AF_INET},
	{"[::1]:80", 0, "[::1]:80", AF_INET6},
	{"[::]:443", 0, "[::]:443", AF_INET6},
	{"[2001:DB8:0:0::1]:8080", 0, "[2001:db8::1]:8080", AF_INET6},
	{"", -1, NULL, 0},
	{"127.0.0.1", -1, NULL, 0},
	{"127.0.0.1:", -1, NULL, 0},
	{"127.0.0.1:0", -1, NULL, 0},
	{"127.0.0.1:65536", -1, NULL, 0},
	{"127.0.0.1:99999999999", -1, NULL, 0},
	{"127.0.0.1:+80", -1, NULL, 0},
	{"127.0.0.1:80x", -1, NULL, 0},
	{"127.0.0.1: 80", -1, NULL, 0},
	{":80", -1, NULL, 0},
	{"localhost:80", -1, NULL, 0},
	{"example.com:80", -1, NULL, 0},
	{"256.0.0.1:80", -1, NULL, 0},
	{"1.2.3:80", -1, NULL, 0},
	{"::1:80", -1, NULL, 0},
	{"[::1]80", -1, NULL, 0},
	{"[::1]", -1, NULL, 0},
	{"[::1:80", -1, NULL, 0},
	{"[]:80", -1, NULL, 0},
	{"[127.0.0.1]:80", -1, NULL, 0},
	{"[fe80::1%eth0]:80", -1, NULL, 0},
	{"*:0", -1, NULL, 0},
};

START_TEST(test_addr_parse)
{
	const struct addr_case *c = &addr_cases[_i];
	struct addr a;
	char err[128] = "";
	int rc;

	memset(&a, 0xa5, sizeof(a));
	rc = addr_parse(c->text, &a, err, sizeof(err));
	ck_assert_msg(rc == c->rc, "addr_parse(\"%s\") = %d, want %d", c->text,
	    rc, c->rc);
	if (c->rc == -1) {
		ck_assert_msg(err[0] != '\0', "\"%s\": no reason given", c->text);
		return;
	}
	ck_assert_str_eq(a.text, c->canon);
	ck_assert_int_eq(a.ss.ss_family, c->family);
	ck_assert_uint_eq(a.len, c->family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}
END_TEST

START_TEST(test_addr_fields)
{
	struct addr a;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&a.ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a.ss;
	char ip[64];

	ck_assert_int_eq(addr_parse("*:8080", &a, NULL, 0), 0);
	ck_assert_uint_eq(ntohs(sin->sin_port), 8080);
	ck_assert_uint_eq(sin->sin_addr.s_addr, htonl(INADDR_ANY));

	ck_assert_int_eq(addr_parse("192.0.2.7:81", &a, NULL, 0), 0);
	ck_assert_uint_eq(ntohs(sin->sin_port), 81);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), 0xc0000207u);
	addr_ip_string((const struct sockaddr *)&a.ss, ip, sizeof(ip));
	ck_assert_str_eq(ip, "192.0.2.7");

	ck_assert_int_eq(addr_parse("[2001:db8::5]:443", &a, NULL, 0), 0);
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 443);
	addr_ip_string((const struct sockaddr *)&a.ss, ip, sizeof(ip));
	ck_assert_str_eq(ip, "2001:db8::5");

	/* A failed parse leaves *out alone. */
	ck_assert_int_eq(addr_parse("nope", &a, NULL, 0), -1);
	ck_assert_str_eq(a.text, "[2001:db8::5]:443");
}
END_TEST

START_TEST(test_addr_ip_string_other)
{
	struct sockaddr_storage ss;
	char ip[16];

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	addr_ip_string((const struct sockaddr *)&ss, ip, sizeof(ip));
	ck_assert_str_eq(ip, "?");
}
END_TEST

struct cidr_case {
	const char *text;
	const char *why; /* NULL: parses */
	int family;
	unsigned prefix;
};

static const struct cidr_case cidr_cases[] = {
	{"10.0.0.0/8", NULL, AF_INET, 8},
	{"127.0.0.1", NULL, AF_INET, 32},
	{"127.0.0.1/32", NULL, AF_INET, 32},
	{"0.0.0.0/0", NULL, AF_INET, 0},
	{"::1", NULL, AF_INET6, 128},
	{"2001:db8::/32", NULL, AF_INET6, 32},
	{"::/0", NULL, AF_INET6, 0},
	{"", "missing address", 0, 0},
	{"/8", "missing address", 0, 0},
	{"me/32", "not a numeric IP address", 0, 0},
	{"10.0.0.0/", "missing prefix length after '/'", 0, 0},
	{"10.0.0.0/33", "prefix length must be 0 to 32", 0, 0},
	{"::1/129", "prefix length must be 0 to 128", 0, 0},
	{"10.0.0.0/8x", "prefix length must be 0 to 32", 0, 0},
	{"10.0.0.0/-8", "prefix length must be 0 to 32", 0, 0},
	{"10.0.0.0/99999999999", "prefix length must be 0 to 32", 0, 0},
	{"10.0.0.1/8", "address has bits set beyond /8", 0, 0},
	{"2001:db8::1/64", "address has bits set beyond /64", 0, 0},
};

START_TEST(test_cidr_parse)
{
	const struct cidr_case *c = &cidr_cases[_i];
	struct addr_cidr n;
	char why[128] = "";
	int rc;

	rc = addr_cidr_parse(c->text, &n, why, sizeof(why));
	if (c->why != NULL) {
		ck_assert_msg(rc == -1, "addr_cidr_parse(\"%s\") accepted", c->text);
		ck_assert_str_eq(why, c->why);
		return;
	}
	ck_assert_msg(rc == 0, "addr_cidr_parse(\"%s\"): %s", c->text, why);
	ck_assert_int_eq(n.net.ss_family, c->family);
	ck_assert_uint_eq(n.prefix, c->prefix);
}
END_TEST

/* A client address in sockaddr form (v4, v6 or v4-mapped v6). */
static const struct sockaddr *
client(const char *ip, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	return (const struct sockaddr *)ss;
}

START_TEST(test_cidr_match)
{
	static const struct {
		const char *net, *ip;
		bool in;
	} cases[] = {
		{"10.0.0.0/8", "10.255.1.2", true},
		{"10.0.0.0/8", "11.0.0.1", false},
		{"192.168.4.0/22", "192.168.7.255", true},
		{"192.168.4.0/22", "192.168.8.0", false},
		{"192.168.4.0/22", "192.168.3.255", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"127.0.0.1", "127.0.0.2", false},
		{"0.0.0.0/0", "203.0.113.9", true},
		{"0.0.0.0/0", "::1", false},
		/* a v4 client on a dual-stack socket */
		{"127.0.0.0/8", "::ffff:127.0.0.1", true},
		{"127.0.0.0/8", "::ffff:10.0.0.1", false},
		{"127.0.0.0/8", "::1", false},
		{"::1", "::1", true},
		{"::1", "127.0.0.1", false},
		{"2001:db8::/33", "2001:db8:7fff::1", true},
		{"2001:db8::/33", "2001:db8:8000::1", false},
		{"::/0", "2001:db8::1", true},
	};
	struct sockaddr_storage ss;
	struct addr_cidr n;
	char why[128];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(addr_cidr_parse(cases[i].net, &n, why, sizeof(why)), 0);
		ck_assert_msg(addr_cidr_match(&n, client(cases[i].ip, &ss)) == cases[i].in,
		    "%s in %s: want %d", cases[i].ip, cases[i].net, cases[i].in);
	}
	/* Not an IP client at all. */
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	ck_assert(!addr_cidr_match(&n, (const struct sockaddr *)&ss));
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *ta = tcase_create("addr");
	TCase *tc = tcase_create("cidr");

	tcase_add_loop_test(ta, test_addr_parse, 0,
	    (int)(sizeof(addr_cases) / sizeof(addr_cases[0])));
	tcase_add_test(ta, test_addr_fields);
	tcase_add_test(ta, test_addr_ip_string_other);
	suite_add_tcase(s, ta);
	tcase_add_loop_test(tc, test_cidr_parse, 0,
	    (int)(sizeof(cidr_cases) / sizeof(cidr_cases[0])));
	tcase_add_test(tc, test_cidr_match);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(addr_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
