/*
 * The request head validator: what a client's first bytes go through.
 * The input is what the client sent. As in session.c, at most
 * limits.header_size bytes (default) are searched for the end of the head,
 * which is then parsed with the default limits.header_count fields.
 * Properties checked beyond "no sanitizer report":
 *   - http_head_length finds the same end whether the bytes come at once or
 *     one by one (the *scanned resume logic);
 *   - every pointer of a parsed head points into the head;
 *   - the canonical request written upstream (http_write_request) is itself
 *     a valid request with the same method, target and framing.
 */

#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "http.h"

#define HEADER_SIZE 16384 /* limits.header_size default */
#define MAX_HEADERS 100   /* limits.header_count default */

static bool
inside(const char *p, size_t len, const char *buf, size_t buflen)
{
	return len == 0 || (p >= buf && len <= buflen && p - buf <= (ptrdiff_t)(buflen - len));
}

static void
check_head(const struct http_head *h, const char *buf, size_t len)
{
	size_t i;

	FUZZ_CHECK(inside(h->method, h->method_len, buf, len) && h->method_len > 0, "method");
	FUZZ_CHECK(inside(h->target, h->target_len, buf, len) && h->target_len > 0, "target");
	FUZZ_CHECK(h->version_minor == 0 || h->version_minor == 1, "minor %d", h->version_minor);
	FUZZ_CHECK(h->nheaders <= MAX_HEADERS, "%zu headers", h->nheaders);
	for (i = 0; i < h->nheaders; i++) {
		FUZZ_CHECK(inside(h->headers[i].name, h->headers[i].name_len, buf, len) &&
		    h->headers[i].name_len > 0, "header %zu name", i);
		FUZZ_CHECK(inside(h->headers[i].value, h->headers[i].value_len, buf, len),
		    "header %zu value", i);
	}
	FUZZ_CHECK(h->host == -1 || (h->host >= 0 && (size_t)h->host < h->nheaders &&
	    http_header_is(&h->headers[h->host], "host")), "host index %d", h->host);
	FUZZ_CHECK(h->upgrade_hdr == -1 || (h->upgrade_hdr >= 0 &&
	    (size_t)h->upgrade_hdr < h->nheaders &&
	    http_header_is(&h->headers[h->upgrade_hdr], "upgrade")), "upgrade index %d",
	    h->upgrade_hdr);
	FUZZ_CHECK(h->framing == HTTP_BODY_NONE || h->framing == HTTP_BODY_LENGTH ||
	    h->framing == HTTP_BODY_CHUNKED, "request framing %d", h->framing);
	FUZZ_CHECK((h->framing == HTTP_BODY_LENGTH) == h->content_length_present,
	    "framing %d, content_length_present %d", h->framing, h->content_length_present);
	FUZZ_CHECK(!h->upgrade || h->upgrade_hdr >= 0, "upgrade without an Upgrade field");
}

/* The head as written upstream must parse again to the same request. */
static void
check_rewrite(const struct http_head *req)
{
	struct http_header hdrs[MAX_HEADERS + 8];
	struct http_head again;
	struct evbuffer *out = evbuffer_new();
	const char *auth, *path;
	size_t alen, plen, len, scanned = 0;
	char *copy;
	enum http_parse_result r;

	FUZZ_CHECK(out != NULL, "evbuffer_new");
	FUZZ_CHECK(http_write_request(out, req, "192.0.2.1", "http") == 0, "write");
	len = evbuffer_get_length(out);
	copy = malloc(len);
	FUZZ_CHECK(copy != NULL, "malloc");
	evbuffer_copyout(out, copy, len);
	FUZZ_CHECK(http_head_length(copy, len, &scanned) == len, "rewritten head length [%.*s]",
	    (int)len, copy);
	r = http_parse_request(copy, len, hdrs, MAX_HEADERS + 8, &again);
	FUZZ_CHECK(r == HTTP_OK, "rewritten request refused (%d): [%.*s]", (int)r, (int)len, copy);
	FUZZ_CHECK(again.method_len == req->method_len &&
	    memcmp(again.method, req->method, req->method_len) == 0, "method changed");
	if (!http_absolute_target(req, &auth, &alen, &path, &plen))
		FUZZ_CHECK(again.target_len == req->target_len &&
		    memcmp(again.target, req->target, req->target_len) == 0, "target changed");
	FUZZ_CHECK(again.version_minor == 1, "upstream version");
	FUZZ_CHECK(again.framing == req->framing, "framing %d became %d", req->framing,
	    again.framing);
	FUZZ_CHECK(req->framing != HTTP_BODY_LENGTH ||
	    again.content_length == req->content_length, "content length changed");
	FUZZ_CHECK(again.upgrade == req->upgrade, "upgrade changed");
	free(copy);
	evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_header hdrs[MAX_HEADERS];
	struct http_head req;
	size_t n = size < HEADER_SIZE ? size : HEADER_SIZE;
	size_t scanned = 0, hl, hl2 = 0, i;
	const char *buf = (const char *)data;
	char *copy;

	enum http_parse_result line, r;

	hl = http_head_length(buf, n, &scanned);
	FUZZ_CHECK(hl <= n, "head length %zu of %zu", hl, n);
	/* The early request-line check (a line judged when its LF comes)
	 * agrees with the full parse: what it refuses, the parse refuses with
	 * the same status; what the parse accepts, it accepts. */
	line = http_check_request_line(buf, n);
	scanned = 0;
	for (i = 1; i <= n && hl2 == 0; i++)
		hl2 = http_head_length(buf, i, &scanned);
	FUZZ_CHECK(hl2 == hl, "bytewise head length %zu, at once %zu", hl2, hl);
	if (hl == 0)
		return 0;
	/* An exact heap copy: ASan sees any read past the head. */
	copy = malloc(hl);
	FUZZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, buf, hl);
	r = http_parse_request(copy, hl, hdrs, MAX_HEADERS, &req);
	FUZZ_CHECK(line == HTTP_OK || line == HTTP_INCOMPLETE || r == line,
	    "request-line check %d, full parse %d", (int)line, (int)r);
	FUZZ_CHECK(r != HTTP_OK || line == HTTP_OK, "full parse accepts a line the check answers %d",
	    (int)line);
	if (r == HTTP_OK) {
		check_head(&req, copy, hl);
		check_rewrite(&req);
	}
	free(copy);
	return 0;
}
