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
#include "proxyproto.h"

/* A byte string with its length (headers hold NUL bytes). */
#define RAW(s) s, sizeof(s) - 1
#define V2SIG "\r\n\r\n\0\r\nQUIT\n"

struct pp_case {
	const char *name;
	const char *bytes;
	size_t len;
	enum proxyproto_result rc;
	size_t hlen;     /* for DONE */
	bool has_addr;   /* for DONE */
	const char *src; /* "ip" for DONE with an address */
	unsigned port;
};

static const struct pp_case pp_cases[] = {
	/* v1 */
	{"v1 tcp4", RAW("PROXY TCP4 192.0.2.7 10.0.0.1 56324 443\r\nGET /"), PROXYPROTO_DONE, 41, true,
	    "192.0.2.7", 56324},
	{"v1 tcp6", RAW("PROXY TCP6 2001:db8::7 ::1 1 80\r\n"), PROXYPROTO_DONE, 33, true, "2001:db8::7", 1},
	{"v1 port 0", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n"), PROXYPROTO_DONE, 36, true, "1.2.3.4", 0},
	{"v1 unknown", RAW("PROXY UNKNOWN\r\nGET"), PROXYPROTO_DONE, 15, false, NULL, 0},
	{"v1 unknown rest ignored", RAW("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), PROXYPROTO_DONE, 35, false, NULL, 0},
	{"v1 longest", RAW("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
	    PROXYPROTO_DONE, 104, true, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535},
	{"v1 prefix", RAW("PROX"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v1 no crlf yet", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 1 2"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v1 cr only yet", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v1 bad signature", RAW("PROXZ TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 lower case", RAW("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 no space", RAW("PROXYTCP4"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 udp", RAW("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 unknownx", RAW("PROXY UNKNOWNX\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 lf without cr", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 two spaces", RAW("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 trailing space", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 missing port", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 port too big", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 port leading zero", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 port sign", RAW("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 tcp4 with ipv6", RAW("PROXY TCP4 ::1 ::1 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 tcp6 with ipv4", RAW("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 bad dst", RAW("PROXY TCP4 1.2.3.4 5.6.7 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 name", RAW("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 too long",
	    RAW("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxxxxxx\r\n"),
	    PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 107 without lf",
	    RAW("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxxxx"),
	    PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v1 exactly 107",
	    RAW("PROXY UNKNOWN xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	        "xxxx\r\n"),
	    PROXYPROTO_DONE, 107, false, NULL, 0},
	{"http request", RAW("GET / HTTP/1.1\r\n\r\n"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"tls hello", RAW("\x16\x03\x01\x02\x00"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	/* v2 */
	{"v2 tcp4", RAW(V2SIG "\x21\x11\x00\x0c" "\xc0\x00\x02\x07" "\x0a\x00\x00\x01" "\xdc\x04" "\x01\xbb" "GET"),
	    PROXYPROTO_DONE, 28, true, "192.0.2.7", 56324},
	{"v2 tcp6",
	    RAW(V2SIG "\x21\x21\x00\x24" "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x07"
	        "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01" "\x00\x50" "\x01\xbb"),
	    PROXYPROTO_DONE, 52, true, "2001:db8::7", 80},
	{"v2 tcp4 tlvs skipped",
	    RAW(V2SIG "\x21\x11\x00\x1b" "\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02"
	        "\x04\x00\x00" "\x01\x00\x02h2" "\x05\x00\x04uuid" "GET"),
	    PROXYPROTO_DONE, 43, true, "1.2.3.4", 1},
	{"v2 local", RAW(V2SIG "\x20\x00\x00\x00" "GET"), PROXYPROTO_DONE, 16, false, NULL, 0},
	{"v2 local tcp4 ignored", RAW(V2SIG "\x20\x11\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2"),
	    PROXYPROTO_DONE, 28, false, NULL, 0},
	{"v2 sig prefix", RAW("\r\n\r\n\0\r"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v2 fixed part incomplete", RAW(V2SIG "\x21\x11"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v2 address incomplete", RAW(V2SIG "\x21\x11\x00\x0c\x01\x02"), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
	{"v2 bad signature", RAW("\r\n\r\n\0\r\nQUIT\r\x21\x11\x00\x0c"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 bad signature early", RAW("\r\n\r\nX"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 version 1", RAW(V2SIG "\x11\x11\x00\x0c"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 version 1 early", RAW(V2SIG "\x11"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 command 2", RAW(V2SIG "\x22\x11\x00\x0c"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 udp4", RAW(V2SIG "\x21\x12\x00\x0c" "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2"), PROXYPROTO_INVALID, 0,
	    false, NULL, 0},
	{"v2 udp6", RAW(V2SIG "\x21\x22\x00\x24"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 unix stream", RAW(V2SIG "\x21\x31\x00\xd8"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 unspec proxy", RAW(V2SIG "\x21\x00\x00\x00"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 tcp4 short", RAW(V2SIG "\x21\x11\x00\x0b" "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0"), PROXYPROTO_INVALID,
	    0, false, NULL, 0},
	{"v2 tcp6 short", RAW(V2SIG "\x21\x21\x00\x0c"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 too long", RAW(V2SIG "\x21\x11\x0f\xf1"), PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 longest allowed announced", RAW(V2SIG "\x21\x11\x0f\xf0" "\x01\x02"), PROXYPROTO_NEED_MORE, 0, false,
	    NULL, 0},
	{"v2 tlv overruns", RAW(V2SIG "\x21\x11\x00\x10" "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2" "\x04\x00\x02\x00"),
	    PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"v2 tlv truncated", RAW(V2SIG "\x21\x11\x00\x0e" "\x01\x02\x03\x04\x05\x06\x07\x08\0\1\0\2" "\x04\x00"),
	    PROXYPROTO_INVALID, 0, false, NULL, 0},
	{"empty", RAW(""), PROXYPROTO_NEED_MORE, 0, false, NULL, 0},
};

START_TEST(test_parse)
{
	const struct pp_case *c = &pp_cases[_i];
	struct proxyproto_info info;
	char ip[64];
	unsigned port;

	memset(&info, 0xAA, sizeof(info));
	ck_assert_msg(proxyproto_parse(c->bytes, c->len, &info) == c->rc, "%s: result", c->name);
	if (c->rc != PROXYPROTO_DONE)
		return;
	ck_assert_msg(info.len == c->hlen, "%s: length %zu, expected %zu", c->name, info.len, c->hlen);
	ck_assert_msg(info.has_addr == c->has_addr, "%s: has_addr", c->name);
	if (!c->has_addr)
		return;
	addr_ip_string((const struct sockaddr *)&info.src, ip, sizeof(ip));
	ck_assert_msg(strcmp(ip, c->src) == 0, "%s: source %s, expected %s", c->name, ip, c->src);
	port = ntohs(info.src.ss_family == AF_INET ? ((struct sockaddr_in *)&info.src)->sin_port
	                                           : ((struct sockaddr_in6 *)&info.src)->sin6_port);
	ck_assert_msg(port == c->port, "%s: port %u, expected %u", c->name, port, c->port);
	ck_assert_msg(info.srclen == (info.src.ss_family == AF_INET ? sizeof(struct sockaddr_in)
	                                                             : sizeof(struct sockaddr_in6)),
	    "%s: srclen", c->name);
}
END_TEST

/* Every proper prefix of a whole header asks for more, byte by byte. */
START_TEST(test_prefixes_need_more)
{
	const struct pp_case *c = &pp_cases[_i];
	struct proxyproto_info info;
	size_t n;

	if (c->rc != PROXYPROTO_DONE)
		return;
	for (n = 0; n < c->hlen; n++)
		ck_assert_msg(proxyproto_parse(c->bytes, n, &info) == PROXYPROTO_NEED_MORE,
		    "%s: prefix of %zu bytes", c->name, n);
}
END_TEST

/* A v2 header of exactly 4 KiB is accepted; its TLVs are skipped. */
START_TEST(test_v2_bound)
{
	unsigned char buf[PROXYPROTO_V2_MAX + 8];
	struct proxyproto_info info;
	size_t body = PROXYPROTO_V2_MAX - 16, tlv = body - 12 - 3;

	memset(buf, 0, sizeof(buf));
	memcpy(buf, V2SIG "\x21\x11", 14);
	buf[14] = (unsigned char)(body >> 8);
	buf[15] = (unsigned char)body;
	buf[16] = 198;
	buf[28] = 0x04; /* PP2_TYPE_NOOP */
	buf[29] = (unsigned char)(tlv >> 8);
	buf[30] = (unsigned char)tlv;
	ck_assert(proxyproto_parse(buf, sizeof(buf), &info) == PROXYPROTO_DONE);
	ck_assert_uint_eq(info.len, PROXYPROTO_V2_MAX);
	ck_assert(proxyproto_parse(buf, PROXYPROTO_V2_MAX - 1, &info) == PROXYPROTO_NEED_MORE);
	body++;
	buf[14] = (unsigned char)(body >> 8);
	buf[15] = (unsigned char)body;
	ck_assert(proxyproto_parse(buf, sizeof(buf), &info) == PROXYPROTO_INVALID);
	ck_assert(proxyproto_parse(buf, 16, &info) == PROXYPROTO_INVALID);
}
END_TEST

static Suite *
proxyproto_suite(void)
{
	Suite *s = suite_create("proxyproto");
	TCase *tc = tcase_create("parse");
	int n = (int)(sizeof(pp_cases) / sizeof(pp_cases[0]));

	tcase_add_loop_test(tc, test_parse, 0, n);
	tcase_add_loop_test(tc, test_prefixes_need_more, 0, n);
	tcase_add_test(tc, test_v2_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(proxyproto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
