/*
 * The chunked decoder, fed in pieces the input chooses.
 * Input layout:
 *   byte 0: flags
 *     bit 0     re-encode (proxy to a 1.1 peer) or decode only
 *     bits 1-2  max_line: 0 (the default, 4096), 8, 32, 16384
 *     bits 3-5  max_out per call: 17, 18, 31, 64, 200, 1000, 4096, unbounded
 *     bit 6     pieces are separate heap chains (evbuffer_add_reference of
 *               exact copies, so a read past a piece is an ASan report)
 *   byte 1: k, the number of split bytes (at most what remains)
 *   then the body, then k split bytes: piece i is split[i] + 1 bytes long;
 *   what is left after the last split is the last piece.
 * Properties: the pieces and the per-call budget change nothing: result,
 * output and what is left in the input equal those of one call on the
 * whole body; a call never appends more than max_out bytes; a call that
 * makes no progress has consumed all its input; a re-encoded body decodes
 * to the same data as decoding the original.
 */

#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include <event2/buffer.h>

#include "fuzz.h"
#include "http.h"

struct result {
	int rc;
	struct evbuffer *out;
	struct evbuffer *left;
};

static void
free_piece(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	free(arg);
}

static void
add_piece(struct evbuffer *in, const uint8_t *p, size_t len, bool reference)
{
	char *copy;

	if (!reference || len == 0) {
		FUZZ_CHECK(evbuffer_add(in, p, len) == 0, "evbuffer_add");
		return;
	}
	copy = malloc(len);
	FUZZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, p, len);
	FUZZ_CHECK(evbuffer_add_reference(in, copy, len, free_piece, copy) == 0,
	    "evbuffer_add_reference");
}

/* Steps until the decoder is done, fails, or wants more input. */
static int
drive(struct http_chunked *c, struct evbuffer *in, struct evbuffer *out, size_t max_out)
{
	size_t in0, out0;
	int rc;

	for (;;) {
		in0 = evbuffer_get_length(in);
		out0 = evbuffer_get_length(out);
		rc = http_chunked_step(c, in, out, max_out);
		FUZZ_CHECK(evbuffer_get_length(out) - out0 <= max_out, "appended %zu > max_out %zu",
		    evbuffer_get_length(out) - out0, max_out);
		FUZZ_CHECK(evbuffer_get_length(in) <= in0, "input grew");
		if (rc != 0)
			return rc;
		if (evbuffer_get_length(in) == in0 && evbuffer_get_length(out) == out0) {
			FUZZ_CHECK(in0 == 0, "no progress with %zu bytes in, max_out %zu", in0,
			    max_out);
			return 0;
		}
	}
}

/*
 * Decodes body fed in the given pieces (npieces 0: all at once, one call,
 * unbounded output).
 */
static void
run(const uint8_t *body, size_t len, const uint8_t *split, size_t nsplit, bool reencode,
    size_t max_line, size_t max_out, bool reference, struct result *res)
{
	struct http_chunked c;
	struct evbuffer *in = evbuffer_new();
	size_t off = 0, piece, i;
	int rc = 0;

	res->out = evbuffer_new();
	res->left = in;
	FUZZ_CHECK(in != NULL && res->out != NULL, "evbuffer_new");
	http_chunked_init(&c, reencode, max_line);
	if (nsplit == 0) {
		add_piece(in, body, len, reference);
		rc = http_chunked_step(&c, in, res->out, SIZE_MAX);
		FUZZ_CHECK(rc != 0 || evbuffer_get_length(in) == 0,
		    "one unbounded call left %zu bytes and wants more", evbuffer_get_length(in));
		res->rc = rc;
		return;
	}
	for (i = 0; i <= nsplit && rc == 0; i++) {
		piece = i < nsplit ? (size_t)split[i] + 1 : len - off;
		if (piece > len - off)
			piece = len - off;
		add_piece(in, body + off, piece, reference);
		off += piece;
		rc = drive(&c, in, res->out, max_out);
	}
	/* After the end (or an error), the rest of the body stays as is. */
	add_piece(in, body + off, len - off, reference);
	res->rc = rc;
}

static bool
same(struct evbuffer *a, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(a);

	return n == evbuffer_get_length(b) &&
	    (n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

static void
result_free(struct result *r)
{
	evbuffer_free(r->out);
	evbuffer_free(r->left);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t max_lines[] = {0, 8, 32, 16384};
	static const size_t max_outs[] = {17, 18, 31, 64, 200, 1000, 4096, SIZE_MAX};
	struct result whole, pieces, plain, again;
	const uint8_t *body, *split;
	size_t k, len, max_line, max_out;
	bool reencode, reference;

	if (size < 2)
		return 0;
	reencode = data[0] & 1;
	max_line = max_lines[(data[0] >> 1) & 3];
	max_out = max_outs[(data[0] >> 3) & 7];
	reference = data[0] & 0x40;
	k = data[1];
	if (k > size - 2)
		k = size - 2;
	body = data + 2;
	len = size - 2 - k;
	split = body + len;

	run(body, len, NULL, 0, reencode, max_line, SIZE_MAX, reference, &whole);
	run(body, len, split, k, reencode, max_line, max_out, reference, &pieces);
	FUZZ_CHECK(whole.rc == pieces.rc, "at once %d, in pieces %d", whole.rc, pieces.rc);
	FUZZ_CHECK(same(whole.out, pieces.out), "output differs (%zu and %zu bytes)",
	    evbuffer_get_length(whole.out), evbuffer_get_length(pieces.out));
	if (whole.rc == 1)
		FUZZ_CHECK(same(whole.left, pieces.left), "rest differs");
	if (whole.rc == 1 && reencode) {
		/* The canonical form carries the same data and is complete. */
		run(body, len, NULL, 0, false, max_line, SIZE_MAX, false, &plain);
		FUZZ_CHECK(plain.rc == 1, "decode only: %d", plain.rc);
		len = evbuffer_get_length(whole.out);
		run(evbuffer_pullup(whole.out, -1), len, NULL, 0, false, 0, SIZE_MAX, false, &again);
		FUZZ_CHECK(again.rc == 1, "re-encoded body does not decode: %d", again.rc);
		FUZZ_CHECK(evbuffer_get_length(again.left) == 0, "re-encoded body has a rest");
		FUZZ_CHECK(same(plain.out, again.out), "re-encoded body carries other data");
		result_free(&plain);
		result_free(&again);
	}
	result_free(&whole);
	result_free(&pieces);
	return 0;
}
