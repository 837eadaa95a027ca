#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <event2/buffer.h>

#include "http.h"

#define MAXH 16
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
/* A literal with its exact length (it may hold NUL). */
#define RAW(s) s, sizeof(s) - 1

enum { ANY = -1 };

struct req_case {
	const char *name;
	const char *raw;
	size_t raw_len;
	enum http_parse_result want;
	enum http_framing framing;
	uint64_t content_length;
	int keep_alive; /* ANY: not checked */
	int minor;
	const char *host; /* expected Host value; NULL: no Host field */
	int upgrade;
	int expect;
};

struct resp_case {
	const char *name;
	const char *raw;
	size_t raw_len;
	const char *method; /* of the request answered */
	enum http_parse_result want;
	enum http_framing framing;
	uint64_t content_length;
	int keep_alive;
	int status;
	int upgrade;
	int cl_present;
};

struct chunk_case {
	const char *name;
	const char *raw;
	size_t raw_len;
	int want;              /* final result of the last step: 1, 0, -1 */
	const char *data;      /* data-only output (want == 1) */
	const char *reencoded; /* reencoded output (want == 1) */
	const char *left;      /* what stays in in after the end (want == 1) */
	size_t max_line;
};

static char *dup_exact(const char *raw, size_t len);
static enum http_parse_result parse_req(const char *raw, size_t len, struct http_header *hdrs,
    size_t max, struct http_head *h, char **copy);
static enum http_parse_result parse_resp(const char *raw, size_t len, const char *method,
    struct http_header *hdrs, size_t max, struct http_head *h, char **copy);
static void check_buf(struct evbuffer *b, const char *want, const char *what);
static int run_chunked_whole(const struct chunk_case *tc, bool reencode, struct evbuffer *out,
    struct evbuffer *in);
static int run_chunked_bytewise(const struct chunk_case *tc, bool reencode, struct evbuffer *out,
    struct evbuffer *in);
static int run_chunked_budget(const struct chunk_case *tc, bool reencode, size_t max_out,
    struct evbuffer *out, struct evbuffer *in);
static void check_chunk_result(const struct chunk_case *tc, bool reencode, int rc,
    struct evbuffer *out, struct evbuffer *in, const char *how);
static void write_req_case(const char *raw, size_t len, const char *ip, const char *proto,
    const char *want);
static Suite *http_suite(void);

#define MANY_FIELDS "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\n" \
	"I: 1\r\nJ: 1\r\nK: 1\r\nL: 1\r\nM: 1\r\nN: 1\r\nO: 1\r\nP: 1\r\n"

static const struct req_case req_cases[] = {
	/* Good requests. */
	{ "get", RAW("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "example.com", 0, 0 },
	{ "post cl", RAW("POST /submit?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"), HTTP_OK, HTTP_BODY_LENGTH, 5, 1, 1, "a", 0, 0 },
	{ "post cl 0", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"), HTTP_OK, HTTP_BODY_LENGTH, 0, 1, 1, "a", 0, 0 },
	{ "chunked", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_OK, HTTP_BODY_CHUNKED, 0, 1, 1, "a", 0, 0 },
	{ "chunked uppercase", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  CHUNKED \r\n\r\n"), HTTP_OK, HTTP_BODY_CHUNKED, 0, 1, 1, "a", 0, 0 },
	{ "1.0 default close", RAW("GET / HTTP/1.0\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 0, 0, NULL, 0, 0 },
	{ "1.0 keep-alive", RAW("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 0, "a", 0, 0 },
	{ "1.0 keep-alive, close", RAW("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 0, 0, NULL, 0, 0 },
	{ "1.1 close", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 0, 1, "a", 0, 0 },
	{ "absolute-form", RAW("GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "other", 0, 0 },
	{ "absolute-form https no path", RAW("GET HTTPS://[::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "x", 0, 0 },
	{ "options *", RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "leading empty lines", RAW("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "expect 100-continue", RAW("PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 9\r\n\r\n"), HTTP_OK, HTTP_BODY_LENGTH, 9, 1, 1, "a", 0, 1 },
	{ "expect on 1.0 ignored", RAW("PUT /f HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"), HTTP_OK, HTTP_BODY_LENGTH, 9, 0, 0, NULL, 0, 0 },
	{ "upgrade", RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 1, 0 },
	{ "upgrade to h2c never honoured", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "upgrade to H2C/1 in a list never honoured", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket, H2C/1\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "upgrade to h2cx is another protocol", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2cx\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 1, 0 },
	{ "upgrade without connection", RAW("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "upgrade on 1.0 ignored", RAW("GET /ws HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 0, 0, NULL, 0, 0 },
	{ "obs-text value, empty value, tab", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\nX-B:\r\nX-C:\ta\tb\t\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "host ipv6 port", RAW("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "[::1]:8080", 0, 0 },
	{ "host empty", RAW("GET / HTTP/1.1\r\nHost:\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "", 0, 0 },
	{ "host pct", RAW("GET / HTTP/1.1\r\nHost: a%2Db.example:80\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a%2Db.example:80", 0, 0 },
	{ "asterisk with M-SEARCH", RAW("M-SEARCH * HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n"), HTTP_BAD_REQUEST, HTTP_BODY_NONE, 0, ANY, 1, NULL, 0, 0 },
	{ "m-search origin", RAW("M-SEARCH / HTTP/1.1\r\nHost: a\r\nX!#$%&'*+-.^_`|~: v\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },
	{ "15 fields", RAW("GET / HTTP/1.1\r\nHost: a\r\n" "A: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\nF: 1\r\nG: 1\r\nH: 1\r\nI: 1\r\nJ: 1\r\nK: 1\r\nL: 1\r\nM: 1\r\nN: 1\r\n\r\n"), HTTP_OK, HTTP_BODY_NONE, 0, 1, 1, "a", 0, 0 },

	/* What Debian's lenient http-parser would let through. */
	{ "space before colon", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "tab before colon", RAW("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	/* A longer name that begins with Transfer-Encoding, with an upgrade or
	 * without (the fuzzer found the upgrade case accepted, its rewrite not). */
	{ "Transfer-Encoding prefix", RAW("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encodingx: chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "Transfer-Encoding prefix, 1.0 upgrade", RAW("GET / HTTP/1.0\r\nTransfer-Encodingon:Upgrade\r\nConnection: Upgrade\r\nUpgrade: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 0, NULL, 0, 0 },
	{ "http/0.9", RAW("GET /\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "letters for HTTP", RAW("GET / HXYZ/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "lowercase version", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "HTTP/1.2", RAW("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), HTTP_VERSION_UNSUPPORTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "HTTP/2.0", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), HTTP_VERSION_UNSUPPORTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "HTTP/0.9 line", RAW("GET / HTTP/0.9\r\n\r\n"), HTTP_VERSION_UNSUPPORTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "HTTP/1.10", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "HTTP/11", RAW("GET / HTTP/11\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "space after version", RAW("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "two spaces", RAW("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "tab separator", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "leading space", RAW(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },

	/* Framing. */
	{ "cl + te", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te + cl", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "differing cl", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "differing cl list", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "identical cl (http-parser refuses)", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl +5", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl -1", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl 1 2", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl hex", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "cl overflow", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te gzip", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te gzip, chunked", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te gzip + chunked fields", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te chunked, chunked", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te chunked twice", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te chunked, gzip", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te chunked param", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te chunkedx", RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedx\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "te on 1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 0, NULL, 0, 0 },

	/* Field syntax. */
	{ "obs-fold", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "fold after request line", RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "NUL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "CTL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "DEL in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7f\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bare CR in value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bare LF field", RAW("GET / HTTP/1.1\r\nX-A: b\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bare LF head", RAW("GET / HTTP/1.1\nHost: a\n\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bare LF end", RAW("GET / HTTP/1.1\r\nHost: a\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bare CR request line", RAW("GET / HTTP/1.1\rHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "empty name", RAW("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "no colon", RAW("GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bad char in name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bad connection token", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close, @x\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "two upgrade fields", RAW("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "too many fields", RAW("GET / HTTP/1.1\r\nHost: a\r\n" MANY_FIELDS "\r\n"), HTTP_TOO_LARGE, 0, 0, ANY, 1, NULL, 0, 0 },

	/* Host. */
	{ "missing host 1.1", RAW("GET / HTTP/1.1\r\nX-A: b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "two hosts", RAW("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "two hosts 1.0", RAW("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 0, NULL, 0, 0 },
	{ "host with space", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "host userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "host open bracket", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "host big port", RAW("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "host bad port", RAW("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "host bad pct", RAW("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },

	/* Methods and targets. */
	{ "connect", RAW("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "unknown method", RAW("FOO / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "lowercase method", RAW("get / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "method prefix", RAW("GE / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_NOT_IMPLEMENTED, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "bad method char", RAW("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "target CTL", RAW("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "target obs-text", RAW("GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "target fragment", RAW("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "target relative", RAW("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "target authority-form", RAW("GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "asterisk with GET", RAW("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "absolute empty authority", RAW("GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "absolute userinfo", RAW("GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
	{ "absolute ftp", RAW("GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_BAD_REQUEST, 0, 0, ANY, 1, NULL, 0, 0 },
};

static const struct resp_case resp_cases[] = {
	{ "200 cl", RAW("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 3, 1, 200, 0, 1 },
	{ "200 chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_CHUNKED, 0, 1, 200, 0, 0 },
	{ "200 until close", RAW("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_UNTIL_CLOSE, 0, 0, 200, 0, 0 },
	{ "200 no reason", RAW("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 0, 1, 200, 0, 1 },
	{ "200 empty reason", RAW("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 0, 1, 200, 0, 1 },
	{ "close", RAW("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 1, 0, 200, 0, 1 },
	{ "1.0 default", RAW("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 1, 0, 200, 0, 1 },
	{ "1.0 keep-alive", RAW("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 1, 1, 200, 0, 1 },
	{ "204", RAW("HTTP/1.1 204 No Content\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_NONE, 0, 1, 204, 0, 0 },
	{ "204 cl 0", RAW("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_NONE, 0, 1, 204, 0, 1 },
	{ "304 cl", RAW("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_NONE, 5, 1, 304, 0, 1 },
	{ "head cl", RAW("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), "HEAD", HTTP_OK, HTTP_BODY_NONE, 10, 1, 200, 0, 1 },
	{ "head chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "HEAD", HTTP_OK, HTTP_BODY_NONE, 0, 1, 200, 0, 0 },
	{ "head nothing", RAW("HTTP/1.1 200 OK\r\n\r\n"), "HEAD", HTTP_OK, HTTP_BODY_NONE, 0, 1, 200, 0, 0 },
	{ "100", RAW("HTTP/1.1 100 Continue\r\n\r\n"), "PUT", HTTP_OK, HTTP_BODY_NONE, 0, 1, 100, 0, 0 },
	{ "101", RAW("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_NONE, 0, 1, 101, 1, 0 },
	{ "599", RAW("HTTP/1.1 599 Whatever\r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_OK, HTTP_BODY_LENGTH, 0, 1, 599, 0, 1 },

	{ "status 99", RAW("HTTP/1.1 099 X\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "status 600", RAW("HTTP/1.1 600 X\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "status 2 digits", RAW("HTTP/1.1 20 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "status 4 digits", RAW("HTTP/1.1 2000 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "HTTP/2.0", RAW("HTTP/2.0 200 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "HTTP/1.2", RAW("HTTP/1.2 200 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "lowercase version", RAW("http/1.1 200 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "letters for HTTP", RAW("HXYZ/1.1 200 OK\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "reason CTL", RAW("HTTP/1.1 200 O\x01K\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "te gzip", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "te gzip, chunked", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "te + cl", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "te on 1.0", RAW("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "differing cl", RAW("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "cl +3", RAW("HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "204 cl 5", RAW("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "204 te", RAW("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "space before colon", RAW("HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "obs-fold", RAW("HTTP/1.1 200 OK\r\nX-A: b\r\n\tc\r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "bare LF", RAW("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "NUL", RAW("HTTP/1.1 200 OK\r\nX-A: \0\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 0 },
	{ "too many fields", RAW("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n" MANY_FIELDS "\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
	{ "leading CRLF", RAW("\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "GET", HTTP_BAD_REQUEST, 0, 0, ANY, 0, 0, 1 },
};

static const struct chunk_case chunk_cases[] = {
	{ "one chunk", RAW("5\r\nhello\r\n0\r\n\r\n"), 1, "hello", "5\r\nhello\r\n0\r\n\r\n", "", 0 },
	{ "two chunks, upper hex", RAW("A\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n"), 1, "0123456789abc", "a\r\n0123456789\r\n3\r\nabc\r\n0\r\n\r\n", "", 0 },
	{ "leading zeros, 15 digits", RAW("000000000000005\r\nhello\r\n000\r\n\r\n"), 1, "hello", "5\r\nhello\r\n0\r\n\r\n", "", 0 },
	{ "empty body", RAW("0\r\n\r\n"), 1, "", "0\r\n\r\n", "", 0 },
	{ "extensions", RAW("5;foo=bar\r\nhello\r\n3 ; a ; b = \"x\\\"y;z\" ;c=d\r\nabc\r\n0;last\r\n\r\n"), 1, "helloabc", "5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n", "", 0 },
	{ "trailers", RAW("2\r\nhi\r\n0\r\nX-Sum: abc\r\nEmpty:\r\nY:\tv w \r\n\r\n"), 1, "hi", "2\r\nhi\r\n0\r\n\r\n", "", 0 },
	{ "pipelined rest stays", RAW("1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 1, "x", "1\r\nx\r\n0\r\n\r\n", "GET / HTTP/1.1\r\n", 0 },
	{ "binary data", RAW("4\r\n\0\r\n\n\r\n0\r\n\r\n"), 1, NULL, NULL, "", 0 },

	{ "junk after data", RAW("5\r\nhelloXX\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "LF only after data", RAW("5\r\nhello\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "bad hex", RAW("g\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "empty size", RAW("\r\nhello\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "empty size, empty line", RAW("\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "extension without size", RAW(";a\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "space before size", RAW(" 5\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "negative size", RAW("-5\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "0x prefix", RAW("0x5\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "16 digits", RAW("0000000000000005\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "bare LF size", RAW("5\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "bare CR size", RAW("5\rhello\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailing space", RAW("5 \r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "ext no name", RAW("5;=x\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "ext no value", RAW("5;a=\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "ext open quote", RAW("5;a=\"x\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "ext bad char", RAW("5;a@b\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailer fold", RAW("0\r\nX: a\r\n b\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailer space before colon", RAW("0\r\nX : a\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailer no colon", RAW("0\r\nX\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailer NUL", RAW("0\r\nX: \0\r\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "trailer bare LF", RAW("0\r\nX: a\n\r\n"), -1, NULL, NULL, NULL, 0 },
	{ "final bare LF", RAW("0\r\n\n"), -1, NULL, NULL, NULL, 0 },
	{ "size line too long", RAW("5;aaaaaaaaaaaaa\r\nhello\r\n0\r\n\r\n"), -1, NULL, NULL, NULL, 8 },
	{ "trailer line too long", RAW("0\r\nX: aaaaaaaaaa\r\n\r\n"), -1, NULL, NULL, NULL, 8 },
	{ "line at max_line", RAW("5;aaaaaa\r\nhello\r\n0\r\nX: aaaa\r\n\r\n"), 1, "hello", "5\r\nhello\r\n0\r\n\r\n", "", 8 },

	{ "missing final CRLF", RAW("5\r\nhello\r\n0\r\n"), 0, NULL, NULL, NULL, 0 },
	{ "missing final LF", RAW("5\r\nhello\r\n0\r\n\r"), 0, NULL, NULL, NULL, 0 },
	{ "in trailer", RAW("0\r\nX: y\r\nZ"), 0, NULL, NULL, NULL, 0 },
	{ "short data", RAW("5\r\nhel"), 0, NULL, NULL, NULL, 0 },
};

/* A heap copy of exactly len bytes, so ASan sees any read past the head. */
static char *
dup_exact(const char *raw, size_t len)
{
	char *p = malloc(len != 0 ? len : 1);

	ck_assert_ptr_nonnull(p);
	memcpy(p, raw, len);
	return p;
}

static enum http_parse_result
parse_req(const char *raw, size_t len, struct http_header *hdrs, size_t max, struct http_head *h,
    char **copy)
{
	size_t scanned = 0, hl;

	hl = http_head_length(raw, len, &scanned);
	ck_assert_msg(hl == len, "head length %zu, want %zu", hl, len);
	*copy = dup_exact(raw, hl);
	return http_parse_request(*copy, hl, hdrs, max, h);
}

static enum http_parse_result
parse_resp(const char *raw, size_t len, const char *method, struct http_header *hdrs, size_t max,
    struct http_head *h, char **copy)
{
	size_t scanned = 0, hl;

	hl = http_head_length(raw, len, &scanned);
	ck_assert_msg(hl == len, "head length %zu, want %zu", hl, len);
	*copy = dup_exact(raw, hl);
	return http_parse_response(*copy, hl, hdrs, max, method, strlen(method), h);
}

static void
check_buf(struct evbuffer *b, const char *want, const char *what)
{
	size_t len = evbuffer_get_length(b), wlen = strlen(want);
	const char *got = (const char *)evbuffer_pullup(b, -1);

	ck_assert_msg(len == wlen && (len == 0 || memcmp(got, want, len) == 0),
	    "%s: got [%.*s] (%zu bytes), want [%s] (%zu bytes)", what, (int)len,
	    got != NULL ? got : "", len, want, wlen);
}

/* Index of the first field named name (case-insensitive), -1 if none. */
static int
find_header(const struct http_head *head, const char *name)
{
	size_t i;

	for (i = 0; i < head->nheaders; i++)
		if (http_header_is(&head->headers[i], name))
			return (int)i;
	return -1;
}

START_TEST(test_request_table)
{
	const struct req_case *tc = &req_cases[_i];
	struct http_header hdrs[MAXH];
	struct http_head h;
	enum http_parse_result rc;
	char *copy;

	rc = parse_req(tc->raw, tc->raw_len, hdrs, MAXH, &h, &copy);
	ck_assert_msg(rc == tc->want, "%s: result %d, want %d", tc->name, rc, tc->want);
	if (rc == HTTP_OK) {
		ck_assert_msg(h.framing == tc->framing, "%s: framing %d", tc->name, h.framing);
		ck_assert_msg(h.content_length_present == (tc->framing == HTTP_BODY_LENGTH),
		    "%s: cl present", tc->name);
		if (tc->framing == HTTP_BODY_LENGTH)
			ck_assert_msg(h.content_length == tc->content_length, "%s: cl %llu",
			    tc->name, (unsigned long long)h.content_length);
		if (tc->keep_alive != ANY)
			ck_assert_msg(h.keep_alive == (tc->keep_alive == 1), "%s: keep_alive",
			    tc->name);
		ck_assert_msg(h.version_minor == tc->minor, "%s: minor", tc->name);
		ck_assert_msg(h.upgrade == (tc->upgrade == 1), "%s: upgrade", tc->name);
		ck_assert_msg(h.expect_continue == (tc->expect == 1), "%s: expect", tc->name);
		if (tc->host == NULL) {
			ck_assert_msg(h.host == -1, "%s: host %d", tc->name, h.host);
		} else {
			ck_assert_msg(h.host >= 0, "%s: no host", tc->name);
			ck_assert_msg(hdrs[h.host].value_len == strlen(tc->host) &&
			    memcmp(hdrs[h.host].value, tc->host, strlen(tc->host)) == 0,
			    "%s: host [%.*s]", tc->name, (int)hdrs[h.host].value_len,
			    hdrs[h.host].value);
		}
	}
	free(copy);
}
END_TEST

START_TEST(test_response_table)
{
	const struct resp_case tc = resp_cases[_i];
	struct http_header hdrs[MAXH];
	struct http_head h;
	enum http_parse_result rc;
	char *copy;

	rc = parse_resp(tc.raw, tc.raw_len, tc.method, hdrs, MAXH, &h, &copy);
	ck_assert_msg(rc == tc.want, "%s: result %d, want %d", tc.name, rc, tc.want);
	if (rc == HTTP_OK) {
		ck_assert_msg(h.status == tc.status, "%s: status %d", tc.name, h.status);
		ck_assert_msg(h.framing == tc.framing, "%s: framing %d", tc.name, h.framing);
		ck_assert_msg(h.content_length == tc.content_length, "%s: cl %llu", tc.name,
		    (unsigned long long)h.content_length);
		ck_assert_msg(h.keep_alive == (tc.keep_alive == 1), "%s: keep_alive", tc.name);
		ck_assert_msg(h.upgrade == (tc.upgrade == 1), "%s: upgrade", tc.name);
		ck_assert_msg(h.content_length_present == (tc.cl_present == 1), "%s: cl present",
		    tc.name);
	}
	free(copy);
}
END_TEST

START_TEST(test_request_fields)
{
	static const char raw[] = "GET /p HTTP/1.1\r\nhost: a\r\nConnection: keep-alive, X-Foo, HOST\r\n"
	    "X-FOO: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nAccept:  a b \t\r\n"
	    "Proxy-Connection: x\r\nTrailer: X\r\nUpgrade: h2c\r\nX-Bar: 2\r\n\r\n";
	static const bool hop[] = { false, true, true, true, true, false, true, true, true, false };
	struct http_header hdrs[MAXH];
	struct http_head h;
	char *copy;
	size_t i;

	ck_assert_int_eq(parse_req(raw, sizeof(raw) - 1, hdrs, MAXH, &h, &copy), HTTP_OK);
	ck_assert_uint_eq(h.nheaders, NELEM(hop));
	ck_assert_ptr_eq(h.headers, hdrs);
	for (i = 0; i < NELEM(hop); i++)
		ck_assert_msg(((hdrs[i].flags & HTTP_HDR_HOP) != 0) == hop[i], "field %zu [%.*s]",
		    i, (int)hdrs[i].name_len, hdrs[i].name);
	ck_assert_int_eq(h.method_len, 3);
	ck_assert(memcmp(h.method, "GET", 3) == 0);
	ck_assert_int_eq(h.target_len, 2);
	ck_assert(memcmp(h.target, "/p", 2) == 0);
	/* Values are OWS-trimmed, names as received. */
	ck_assert_int_eq(hdrs[5].value_len, 3);
	ck_assert(memcmp(hdrs[5].value, "a b", 3) == 0);
	ck_assert(http_header_is(&hdrs[2], "x-foo"));
	ck_assert(http_header_is(&hdrs[2], "X-Foo"));
	ck_assert(!http_header_is(&hdrs[2], "X-Fo"));
	ck_assert(!http_header_is(&hdrs[2], "X-Fooo"));
	ck_assert_int_eq(find_header(&h, "x-bar"), 9);
	ck_assert_int_eq(find_header(&h, "HOST"), 0);
	ck_assert_int_eq(find_header(&h, "Content-Length"), -1);
	ck_assert_int_eq(h.upgrade_hdr, 8);
	ck_assert(!h.upgrade);
	free(copy);
}
END_TEST

START_TEST(test_max_headers_exact)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\n\r\n";
	struct http_header hdrs[2];
	struct http_head h;
	char *copy;

	ck_assert_int_eq(parse_req(raw, sizeof(raw) - 1, hdrs, 2, &h, &copy), HTTP_OK);
	free(copy);
	ck_assert_int_eq(parse_req(raw, sizeof(raw) - 1, hdrs, 1, &h, &copy), HTTP_TOO_LARGE);
	free(copy);
}
END_TEST

/* More Connection options than HTTP_MAX_CONNECTION_OPTIONS: 400. */
START_TEST(test_connection_options_bounded)
{
	struct http_header hdrs[MAXH];
	struct http_head h;
	char raw[4096], *copy;
	size_t n, i;

	for (i = HTTP_MAX_CONNECTION_OPTIONS; i <= HTTP_MAX_CONNECTION_OPTIONS + 1; i++) {
		size_t k;

		n = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: a\r\nConnection: close");
		for (k = 0; k < i; k++)
			n += (size_t)snprintf(raw + n, sizeof(raw) - n, ", x-%zu", k);
		n += (size_t)snprintf(raw + n, sizeof(raw) - n, "\r\nX-0: a\r\nX-Other: b\r\n\r\n");
		ck_assert_int_eq(parse_req(raw, n, hdrs, MAXH, &h, &copy),
		    i > HTTP_MAX_CONNECTION_OPTIONS ? HTTP_BAD_REQUEST : HTTP_OK);
		if (i == HTTP_MAX_CONNECTION_OPTIONS) {
			ck_assert(hdrs[2].flags & HTTP_HDR_HOP);     /* X-0 is named */
			ck_assert(!(hdrs[3].flags & HTTP_HDR_HOP));  /* X-Other is not */
		}
		free(copy);
	}
}
END_TEST

/* A request-line is judged as soon as its line ends (HTTP/0.9 among others). */
START_TEST(test_check_request_line)
{
	static const struct {
		const char *in;
		enum http_parse_result want;
	} cases[] = {
		{"", HTTP_INCOMPLETE},
		{"GET / HTTP/1.1", HTTP_INCOMPLETE},
		{"\r\n", HTTP_INCOMPLETE},
		{"\r\n\r\nGET /", HTTP_INCOMPLETE},
		{"GET / HTTP/1.1\r\n", HTTP_OK},
		{"GET / HTTP/1.1\r\nHost: a", HTTP_OK},
		{"\r\nGET /x HTTP/1.0\r\n", HTTP_OK},
		{"GET /\r\n", HTTP_BAD_REQUEST},
		{"GET /\n", HTTP_BAD_REQUEST},
		{"GET / HTTP/1.1\n", HTTP_BAD_REQUEST},
		{"GET / HTTP/1.1 x\r\n", HTTP_BAD_REQUEST},
		{"GET / HTTP/2.0\r\n", HTTP_VERSION_UNSUPPORTED},
		{"GET  / HTTP/1.1\r\n", HTTP_BAD_REQUEST},
	};
	size_t i;

	for (i = 0; i < NELEM(cases); i++)
		ck_assert_msg(http_check_request_line(cases[i].in, strlen(cases[i].in)) == cases[i].want,
		    "case %zu: %s", i, cases[i].in);
}
END_TEST

START_TEST(test_head_length)
{
	static const char two[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: b\r\n\r\nxyz";
	static const char *const ends[] = {
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\n\r\n", "\r\n\r\nGET / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
	};
	struct http_header hdrs[MAXH];
	struct http_head h;
	size_t scanned, len, i, n, first;

	/* Pipelined: the first head, then the second from where it ended. */
	scanned = 0;
	first = http_head_length(two, sizeof(two) - 1, &scanned);
	ck_assert_uint_eq(first, 28);
	ck_assert_int_eq(http_parse_request(two, first, hdrs, MAXH, &h), HTTP_OK);
	ck_assert(h.target_len == 2 && h.target[1] == 'a');
	scanned = 0;
	len = http_head_length(two + first, sizeof(two) - 1 - first, &scanned);
	ck_assert_uint_eq(len, 28);
	ck_assert_int_eq(http_parse_request(two + first, len, hdrs, MAXH, &h), HTTP_OK);
	ck_assert(h.target_len == 2 && h.target[1] == 'b');

	/* Growing buffer, one byte at a time: found exactly at its end. */
	for (i = 0; i < NELEM(ends); i++) {
		len = strlen(ends[i]);
		scanned = 0;
		for (n = 0; n < len; n++)
			ck_assert_msg(http_head_length(ends[i], n, &scanned) == 0, "%zu at %zu", i, n);
		ck_assert_msg(http_head_length(ends[i], len, &scanned) == len, "%zu", i);
	}
	scanned = 0;
	ck_assert_uint_eq(http_head_length("", 0, &scanned), 0);
	ck_assert_uint_eq(http_head_length("\r\n\r\n", 4, &scanned), 0);
	/* Handed an empty line alone anyway, the parser refuses it. */
	ck_assert_int_eq(http_parse_request("\r\n", 2, hdrs, MAXH, &h), HTTP_BAD_REQUEST);
	ck_assert_int_eq(http_parse_request("\r\n\r\n", 4, hdrs, MAXH, &h), HTTP_BAD_REQUEST);
}
END_TEST

static int
run_chunked_whole(const struct chunk_case *tc, bool reencode, struct evbuffer *out,
    struct evbuffer *in)
{
	struct http_chunked c;
	int rc;

	http_chunked_init(&c, reencode, tc->max_line);
	ck_assert_int_eq(evbuffer_add(in, tc->raw, tc->raw_len), 0);
	rc = http_chunked_step(&c, in, out, SIZE_MAX);
	/* A finished or failed decoder stays so. */
	if (rc != 0)
		ck_assert_int_eq(http_chunked_step(&c, in, out, SIZE_MAX), rc);
	return rc;
}

static int
run_chunked_bytewise(const struct chunk_case *tc, bool reencode, struct evbuffer *out,
    struct evbuffer *in)
{
	struct http_chunked c;
	size_t i;
	int rc = 0;

	http_chunked_init(&c, reencode, tc->max_line);
	for (i = 0; i < tc->raw_len; i++) {
		/* Separate adds make separate chains, so every split is seen. */
		ck_assert_int_eq(evbuffer_add(in, tc->raw + i, 1), 0);
		rc = http_chunked_step(&c, in, out, SIZE_MAX);
		if (rc != 0)
			break;
	}
	if (rc == 1) {
		ck_assert_int_eq(evbuffer_add(in, tc->raw + i + 1, tc->raw_len - i - 1), 0);
		ck_assert_int_eq(http_chunked_step(&c, in, out, SIZE_MAX), 1);
	}
	return rc;
}

static int
run_chunked_budget(const struct chunk_case *tc, bool reencode, size_t max_out,
    struct evbuffer *out, struct evbuffer *in)
{
	struct http_chunked c;
	size_t before, calls = 0;
	int rc;

	http_chunked_init(&c, reencode, tc->max_line);
	ck_assert_int_eq(evbuffer_add(in, tc->raw, tc->raw_len), 0);
	for (;;) {
		before = evbuffer_get_length(out);
		rc = http_chunked_step(&c, in, out, max_out);
		ck_assert_msg(evbuffer_get_length(out) - before <= max_out, "%s: %zu > max_out %zu",
		    tc->name, evbuffer_get_length(out) - before, max_out);
		if (rc != 0 || evbuffer_get_length(out) == before)
			return rc;
		ck_assert_msg(++calls < 10000, "%s: no end", tc->name);
	}
}

static void
check_chunk_result(const struct chunk_case *tc, bool reencode, int rc, struct evbuffer *out,
    struct evbuffer *in, const char *how)
{
	char what[128];

	snprintf(what, sizeof(what), "%s (%s, %s)", tc->name, how, reencode ? "reencode" : "data");
	ck_assert_msg(rc == tc->want, "%s: result %d, want %d", what, rc, tc->want);
	if (rc == 1 && tc->data != NULL)
		check_buf(out, reencode ? tc->reencoded : tc->data, what);
	if (rc == 1)
		check_buf(in, tc->left, what);
}

START_TEST(test_chunked_table)
{
	const struct chunk_case *tc = &chunk_cases[_i];
	struct evbuffer *in, *out;
	int pass, rc = 0;
	bool reencode;

	for (pass = 0; pass < 8; pass++) {
		reencode = pass & 1;
		in = evbuffer_new();
		out = evbuffer_new();
		ck_assert(in != NULL && out != NULL);
		switch (pass >> 1) {
		case 0:
			rc = run_chunked_whole(tc, reencode, out, in);
			check_chunk_result(tc, reencode, rc, out, in, "whole");
			break;
		case 1:
			rc = run_chunked_bytewise(tc, reencode, out, in);
			check_chunk_result(tc, reencode, rc, out, in, "bytewise");
			break;
		case 2:
			rc = run_chunked_budget(tc, reencode, 20, out, in);
			check_chunk_result(tc, reencode, rc, out, in, "max_out 20");
			break;
		default:
			rc = run_chunked_budget(tc, reencode, 5, out, in);
			check_chunk_result(tc, reencode, rc, out, in, "max_out 5");
			break;
		}
		evbuffer_free(in);
		evbuffer_free(out);
	}
}
END_TEST

START_TEST(test_chunked_backpressure)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct http_chunked c;
	static char data[100000];
	char hdr[32];
	size_t total = 0, got;
	int rc, n;

	ck_assert(in != NULL && out != NULL);
	memset(data, 'x', sizeof(data));
	n = snprintf(hdr, sizeof(hdr), "%zx\r\n", sizeof(data));
	ck_assert_int_eq(evbuffer_add(in, hdr, (size_t)n), 0);
	ck_assert_int_eq(evbuffer_add(in, data, sizeof(data)), 0);
	ck_assert_int_eq(evbuffer_add(in, "\r\n0\r\n\r\n", 7), 0);

	/* No room: nothing moves. */
	http_chunked_init(&c, true, 0);
	ck_assert_int_eq(http_chunked_step(&c, in, out, 0), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);
	/* Room for less than the chunk header: it waits for room. */
	ck_assert_int_eq(http_chunked_step(&c, in, out, 3), 0);
	ck_assert_uint_eq(evbuffer_get_length(out), 0);

	do {
		rc = http_chunked_step(&c, in, out, 4096);
		got = evbuffer_get_length(out);
		ck_assert_uint_le(got, 4096);
		total += got;
		ck_assert_int_eq(evbuffer_drain(out, got), 0);
	} while (rc == 0);
	ck_assert_int_eq(rc, 1);
	ck_assert_uint_eq(total, (size_t)n + sizeof(data) + 7);
	ck_assert_uint_eq(evbuffer_get_length(in), 0);
	evbuffer_free(in);
	evbuffer_free(out);
}
END_TEST

static void
write_req_case(const char *raw, size_t len, const char *ip, const char *proto, const char *want)
{
	struct http_header hdrs[MAXH];
	struct http_head h;
	struct evbuffer *out = evbuffer_new();
	char *copy;

	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(parse_req(raw, len, hdrs, MAXH, &h, &copy), HTTP_OK);
	ck_assert_int_eq(http_write_request(out, &h, ip, proto), 0);
	check_buf(out, want, raw);
	evbuffer_free(out);
	free(copy);
}

START_TEST(test_write_request)
{
	write_req_case(RAW("GET /p?q HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n"
	    "Connection: keep-alive, X-Foo\r\nX-Foo: 1\r\nKeep-Alive: 300\r\n"
	    "Proxy-Connection: x\r\nTE: trailers\r\nX-Forwarded-For: 1.1.1.1\r\n"
	    "X-Forwarded-Proto: https\r\nAccept:  a b  \r\nx-forwarded-for:\r\n"
	    "X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n"),
	    "10.0.0.1", "http",
	    "GET /p?q HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\nAccept: a b\r\n"
	    "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	/* Absolute-form: origin-form target, Host becomes the authority. */
	write_req_case(RAW("GET http://Example.com:8080?x=1 HTTP/1.1\r\nhost: other\r\nA: b\r\n\r\n"),
	    "::1", "https",
	    "GET /?x=1 HTTP/1.1\r\nhost: Example.com:8080\r\nA: b\r\n"
	    "X-Forwarded-For: ::1\r\nX-Forwarded-Proto: https\r\n\r\n");
	write_req_case(RAW("GET https://h/a/b HTTP/1.1\r\nHost: h\r\n\r\n"), "1.2.3.4", "http",
	    "GET /a/b HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.2.3.4\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	/* HTTP/1.0 without Host is sent on as 1.1 with an empty Host. */
	write_req_case(RAW("GET / HTTP/1.0\r\nA: b\r\n\r\n"), "1.2.3.4", "http",
	    "GET / HTTP/1.1\r\nHost: \r\nA: b\r\nX-Forwarded-For: 1.2.3.4\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	write_req_case(RAW("GET http://h:1/x HTTP/1.0\r\n\r\n"), "1.2.3.4", "http",
	    "GET /x HTTP/1.1\r\nHost: h:1\r\nX-Forwarded-For: 1.2.3.4\r\n"
	    "X-Forwarded-Proto: http\r\n\r\n");
	/* Our framing replaces the client's. */
	write_req_case(RAW("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	    "Trailer: X-Sum\r\nB: c\r\n\r\n"),
	    "1.2.3.4", "http",
	    "POST /u HTTP/1.1\r\nHost: a\r\nB: c\r\nX-Forwarded-For: 1.2.3.4\r\n"
	    "X-Forwarded-Proto: http\r\nTransfer-Encoding: chunked\r\n\r\n");
	write_req_case(RAW("POST /u HTTP/1.0\r\nContent-Length: 12\r\n\r\n"), NULL, NULL,
	    "POST /u HTTP/1.1\r\nHost: \r\nContent-Length: 12\r\n\r\n");
	/* Upgrade goes through, written canonically at the end. */
	write_req_case(RAW("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	    "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n"),
	    "1.2.3.4", "http",
	    "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nX-Forwarded-For: 1.2.3.4\r\n"
	    "X-Forwarded-Proto: http\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
	/* Not upgrading: the Upgrade field is dropped. */
	write_req_case(RAW("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"), NULL,
	    "http", "GET /ws HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n\r\n");
	/* An XFF named in Connection is the client's to drop. */
	write_req_case(RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-forwarded-for\r\n"
	    "X-Forwarded-For: 6.6.6.6\r\n\r\n"),
	    "1.2.3.4", NULL, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
	write_req_case(RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), NULL, NULL,
	    "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
}
END_TEST

START_TEST(test_write_response)
{
	static const struct {
		const char *raw;
		const char *method;
		enum http_framing framing;
		uint64_t cl;
		bool keep_alive;
		int client_minor;
		const char *want;
	} cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Type: t\r\nContent-Length: 3\r\nConnection: keep-alive\r\n"
		  "Keep-Alive: timeout=5\r\n\r\n", "GET", HTTP_BODY_LENGTH, 3, true, 1,
		  "HTTP/1.1 200 OK\r\nContent-Type: t\r\nContent-Length: 3\r\n\r\n" },
		{ "HTTP/1.1 200 OK\r\nContent-Type: t\r\nContent-Length: 3\r\n\r\n", "GET",
		  HTTP_BODY_LENGTH, 3, false, 1,
		  "HTTP/1.1 200 OK\r\nContent-Type: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\n" },
		{ "HTTP/1.0 200 Fine\r\nContent-Length: 3\r\n\r\n", "GET", HTTP_BODY_LENGTH, 3, true, 0,
		  "HTTP/1.1 200 Fine\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X\r\nA:  b \r\n\r\n", "GET",
		  HTTP_BODY_CHUNKED, 0, true, 1,
		  "HTTP/1.1 200 OK\r\nA: b\r\nTransfer-Encoding: chunked\r\n\r\n" },
		{ "HTTP/1.1 200 OK\r\nA: b\r\n\r\n", "GET", HTTP_BODY_CHUNKED, 0, true, 1,
		  "HTTP/1.1 200 OK\r\nA: b\r\nTransfer-Encoding: chunked\r\n\r\n" },
		{ "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", "GET", HTTP_BODY_LENGTH, 0, true, 1,
		  "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", "HEAD", HTTP_BODY_LENGTH, 10, true, 1,
		  "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n" },
		{ "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", "GET", HTTP_BODY_NONE, 0, true, 1,
		  "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" },
		{ "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
		  "Sec-WebSocket-Accept: x\r\n\r\n", "GET", HTTP_BODY_NONE, 0, true, 1,
		  "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: x\r\n"
		  "Connection: upgrade\r\nUpgrade: websocket\r\n\r\n" },
		{ "HTTP/1.1 100 Continue\r\n\r\n", "PUT", HTTP_BODY_NONE, 0, false, 1,
		  "HTTP/1.1 100 Continue\r\n\r\n" },
		{ "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", "GET", HTTP_BODY_LENGTH, 0,
		  true, 1, "HTTP/1.1 204 No Content\r\n\r\n" },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET", HTTP_BODY_LENGTH, 7,
		  true, 1, "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n" },
		{ "HTTP/1.1 200 OK\r\nConnection: X-Private\r\nX-Private: s\r\n\r\n", "GET",
		  HTTP_BODY_NONE, 0, false, 1, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" },
	};
	struct http_header hdrs[MAXH];
	struct http_head h;
	struct evbuffer *out;
	char *copy;
	size_t i;

	for (i = 0; i < NELEM(cases); i++) {
		out = evbuffer_new();
		ck_assert_ptr_nonnull(out);
		ck_assert_msg(parse_resp(cases[i].raw, strlen(cases[i].raw), cases[i].method, hdrs,
		    MAXH, &h, &copy) == HTTP_OK, "case %zu", i);
		ck_assert_int_eq(http_write_response(out, &h, cases[i].framing, cases[i].cl,
		    cases[i].keep_alive, cases[i].client_minor), 0);
		check_buf(out, cases[i].want, cases[i].raw);
		evbuffer_free(out);
		free(copy);
	}
}
END_TEST

START_TEST(test_reason)
{
	ck_assert_str_eq(http_reason(200), "OK");
	ck_assert_str_eq(http_reason(400), "Bad Request");
	ck_assert_str_eq(http_reason(408), "Request Timeout");
	ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(http_reason(502), "Bad Gateway");
	ck_assert_str_eq(http_reason(503), "Service Unavailable");
	ck_assert_str_eq(http_reason(504), "Gateway Timeout");
	ck_assert_str_eq(http_reason(299), "Unknown");
	ck_assert_str_eq(http_reason(-1), "Unknown");
}
END_TEST

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, test_request_table, 0, (int)NELEM(req_cases));
	tcase_add_loop_test(tc, test_response_table, 0, (int)NELEM(resp_cases));
	tcase_add_test(tc, test_request_fields);
	tcase_add_test(tc, test_max_headers_exact);
	tcase_add_test(tc, test_connection_options_bounded);
	tcase_add_test(tc, test_check_request_line);
	tcase_add_test(tc, test_head_length);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunked");
	tcase_add_loop_test(tc, test_chunked_table, 0, (int)NELEM(chunk_cases));
	tcase_add_test(tc, test_chunked_backpressure);
	suite_add_tcase(s, tc);

	tc = tcase_create("write");
	tcase_add_test(tc, test_write_request);
	tcase_add_test(tc, test_write_response);
	tcase_add_test(tc, test_reason);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
