/*
 * The response head validator: what an upstream's first bytes go through.
 * Input: one flags byte, then what the upstream sent.
 *   bit 0: the request was HEAD (else GET)
 *   bit 1: the client speaks HTTP/1.1 (else 1.0)
 *   bit 2: the client wants keep-alive
 * As in session.c, the head is searched within limits.header_size bytes and
 * parsed with limits.header_count fields (the defaults); a valid head is
 * then written for the client with the framing session.c would choose.
 * Properties: pointers stay inside the head; the head written for the
 * client parses again as a response to the same method, with the same
 * status and the framing/length that was chosen.
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
check_head(const struct http_head *h, const char *buf, size_t len, bool head_method)
{
	size_t i;

	FUZZ_CHECK(h->status >= 100 && h->status <= 599, "status %d", h->status);
	FUZZ_CHECK(inside(h->reason, h->reason_len, buf, len), "reason");
	FUZZ_CHECK(h->version_minor == 0 || h->version_minor == 1, "minor %d", h->version_minor);
	FUZZ_CHECK(h->nheaders <= MAX_HEADERS, "%zu headers", h->nheaders);
	for (i = 0; i < h->nheaders; i++) {
		FUZZ_CHECK(inside(h->headers[i].name, h->headers[i].name_len, buf, len) &&
		    h->headers[i].name_len > 0, "header %zu name", i);
		FUZZ_CHECK(inside(h->headers[i].value, h->headers[i].value_len, buf, len),
		    "header %zu value", i);
	}
	FUZZ_CHECK(h->upgrade_hdr == -1 || (h->upgrade_hdr >= 0 &&
	    (size_t)h->upgrade_hdr < h->nheaders &&
	    http_header_is(&h->headers[h->upgrade_hdr], "upgrade")), "upgrade index %d",
	    h->upgrade_hdr);
	if (head_method || h->status < 200 || h->status == 204 || h->status == 304)
		FUZZ_CHECK(h->framing == HTTP_BODY_NONE, "status %d framing %d", h->status,
		    h->framing);
	FUZZ_CHECK(h->upgrade == (h->status == 101), "upgrade %d status %d", h->upgrade,
	    h->status);
}

/* What session.c writes for the client, parsed back. */
static void
check_rewrite(const struct http_head *resp, bool head_method, int client_minor, bool keep)
{
	struct http_header hdrs[MAX_HEADERS + 8];
	struct http_head again;
	struct evbuffer *out = evbuffer_new();
	enum http_framing f = resp->framing;
	uint64_t cl = resp->content_length;
	size_t len, scanned = 0;
	char *copy;
	enum http_parse_result r;

	FUZZ_CHECK(out != NULL, "evbuffer_new");
	if (resp->status < 200) {
		f = HTTP_BODY_NONE;
		keep = true;
	} else {
		if (f == HTTP_BODY_CHUNKED && client_minor == 0)
			f = HTTP_BODY_UNTIL_CLOSE;
		if (f == HTTP_BODY_UNTIL_CLOSE)
			keep = false;
		if (f == HTTP_BODY_NONE && resp->content_length_present)
			f = HTTP_BODY_LENGTH;
		else if (f == HTTP_BODY_UNTIL_CLOSE)
			f = HTTP_BODY_NONE;
	}
	FUZZ_CHECK(http_write_response(out, resp, f, cl, keep, client_minor) == 0, "write");
	len = evbuffer_get_length(out);
	copy = malloc(len);
	FUZZ_CHECK(copy != NULL, "malloc");
	evbuffer_copyout(out, copy, len);
	FUZZ_CHECK(http_head_length(copy, len, &scanned) == len, "rewritten head length [%.*s]",
	    (int)len, copy);
	r = http_parse_response(copy, len, hdrs, MAX_HEADERS + 8, head_method ? "HEAD" : "GET",
	    head_method ? 4 : 3, &again);
	FUZZ_CHECK(r == HTTP_OK, "rewritten response refused (%d): [%.*s]", (int)r, (int)len, copy);
	FUZZ_CHECK(again.status == resp->status, "status %d became %d", resp->status,
	    again.status);
	if (resp->status >= 200 && resp->status != 204) {
		if (f == HTTP_BODY_LENGTH)
			FUZZ_CHECK(again.content_length_present && again.content_length == cl,
			    "content length lost");
		if (f == HTTP_BODY_CHUNKED && !head_method && resp->status != 304)
			FUZZ_CHECK(again.framing == HTTP_BODY_CHUNKED, "chunked lost");
		if (resp->status != 101)
			FUZZ_CHECK(again.keep_alive == keep, "keep-alive %d became %d", keep,
			    again.keep_alive);
	}
	free(copy);
	evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_header hdrs[MAX_HEADERS];
	struct http_head resp;
	const char *buf;
	size_t n, scanned = 0, hl, hl2 = 0, i;
	bool head_method, keep;
	int client_minor;
	char *copy;

	if (size < 1)
		return 0;
	head_method = data[0] & 1;
	client_minor = (data[0] & 2) ? 1 : 0;
	keep = data[0] & 4;
	buf = (const char *)data + 1;
	size--;
	n = size < HEADER_SIZE ? size : HEADER_SIZE;
	hl = http_head_length(buf, n, &scanned);
	FUZZ_CHECK(hl <= n, "head length %zu of %zu", hl, n);
	scanned = 0;
	for (i = 1; i <= n && hl2 == 0; i++)
		hl2 = http_head_length(buf, i, &scanned);
	FUZZ_CHECK(hl2 == hl, "bytewise head length %zu, at once %zu", hl2, hl);
	if (hl == 0)
		return 0;
	copy = malloc(hl);
	FUZZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, buf, hl);
	if (http_parse_response(copy, hl, hdrs, MAX_HEADERS, head_method ? "HEAD" : "GET",
	        head_method ? 4 : 3, &resp) == HTTP_OK) {
		check_head(&resp, copy, hl, head_method);
		check_rewrite(&resp, head_method, client_minor, keep);
	}
	free(copy);
	return 0;
}
