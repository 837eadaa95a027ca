#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <check.h>

#include "addr.h"
#include "http.h"
#include "xff.h"

struct xff_case {
	const char *name;
	const char *fields[3]; /* X-Forwarded-For values in order, NULL-ended */
	bool hop_first;        /* the first field is named in Connection */
	const char *client;    /* NULL: the peer stands */
};

/* Trusted: 10.0.0.0/8 and fd00::/8. */
static const struct xff_case xff_cases[] = {
	{"one untrusted hop", {"203.0.113.9", NULL}, false, "203.0.113.9"},
	{"trusted hops skipped", {"203.0.113.9, 10.1.1.1", "10.2.2.2", NULL}, false, "203.0.113.9"},
	{"rightmost untrusted wins", {"1.1.1.1, 2.2.2.2, 10.0.0.1", NULL}, false, "2.2.2.2"},
	{"all trusted: leftmost", {"10.3.3.3, 10.4.4.4", NULL}, false, "10.3.3.3"},
	{"bad hop ends the walk", {"198.51.100.1, junk, 10.4.4.4", NULL}, false, "10.4.4.4"},
	{"bad rightmost hop", {"198.51.100.1, junk", NULL}, false, NULL},
	{"ipv6", {"2001:db8::1 , fd00::5", NULL}, false, "2001:db8::1"},
	{"spaces and tabs", {" 192.0.2.1\t,\t10.0.0.2 ", NULL}, false, "192.0.2.1"},
	{"empty element ends the walk", {"192.0.2.1,,10.0.0.2", NULL}, false, "10.0.0.2"},
	{"with port refused", {"192.0.2.1:80", NULL}, false, NULL},
	{"no field", {NULL}, false, NULL},
	{"hop-by-hop field ignored", {"192.0.2.77", "10.0.0.9", NULL}, true, "10.0.0.9"},
};

START_TEST(test_xff_client)
{
	const struct xff_case *c = &xff_cases[_i];
	struct addr_cidr nets[2];
	struct http_header h[4];
	struct http_head req;
	struct sockaddr_storage out;
	char why[64], ip[64];
	size_t n = 0;
	bool got;

	ck_assert_int_eq(addr_cidr_parse("10.0.0.0/8", &nets[0], why, sizeof(why)), 0);
	ck_assert_int_eq(addr_cidr_parse("fd00::/8", &nets[1], why, sizeof(why)), 0);
	memset(&req, 0, sizeof(req));
	memset(h, 0, sizeof(h));
	h[n].name = "Accept";
	h[n].name_len = 6;
	h[n].value = "*/*";
	h[n++].value_len = 3;
	for (size_t i = 0; c->fields[i] != NULL; i++, n++) {
		h[n].name = i % 2 ? "x-forwarded-for" : "X-Forwarded-For";
		h[n].name_len = 15;
		h[n].value = c->fields[i];
		h[n].value_len = (uint32_t)strlen(c->fields[i]);
		if (i == 0 && c->hop_first)
			h[n].flags |= HTTP_HDR_HOP;
	}
	req.headers = h;
	req.nheaders = n;
	got = xff_client(&req, nets, 2, &out);
	ck_assert_msg(got == (c->client != NULL), "%s: found %d", c->name, got);
	if (!got)
		return;
	addr_ip_string((const struct sockaddr *)&out, ip, sizeof(ip));
	ck_assert_msg(strcmp(ip, c->client) == 0, "%s: client %s, expected %s", c->name, ip, c->client);
}
END_TEST

static Suite *
xff_suite(void)
{
	Suite *s = suite_create("xff");
	TCase *tc = tcase_create("client");

	tcase_add_loop_test(tc, test_xff_client, 0, (int)(sizeof(xff_cases) / sizeof(xff_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(xff_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
