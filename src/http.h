#ifndef CUTOVER_SRC_HTTP_H
#define CUTOVER_SRC_HTTP_H

/*
 * HTTP/1.x message heads and body framing, strict per RFC 9110/9112.
 *
 * Debian's libhttp-parser 2.9.4 is built lenient (HTTP_PARSER_STRICT=0): it
 * accepts "Transfer-Encoding : chunked", HTTP/0.9 request lines, any letters
 * in place of "HTTP/", and junk after chunk data. So a head is checked here
 * against the RFC 9112 grammar first, then run through http-parser, and used
 * only when both agree. Chunked bodies are decoded by our own strict decoder
 * (http_chunked_*) and re-encoded in canonical form; nothing a client sent is
 * forwarded byte for byte.
 *
 * Everything here is pure: no I/O, no globals, callable from any thread.
 * Pointers in a parsed head point into the caller's buffer.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/*
 * Connection options naming other fields, across all Connection fields of a
 * message: more is a 400 (real clients send one or two; each costs a pass
 * over the fields).
 */
#define HTTP_MAX_CONNECTION_OPTIONS 32

/* Flags on a header field. */
#define HTTP_HDR_HOP 0x01 /* hop-by-hop: never forwarded */

struct http_header {
	const char *name;
	const char *value; /* leading/trailing OWS removed */
	uint32_t name_len;
	uint32_t value_len;
	uint32_t flags;
};

enum http_framing {
	HTTP_BODY_NONE = 0,     /* no body */
	HTTP_BODY_LENGTH,       /* content_length bytes */
	HTTP_BODY_CHUNKED,      /* chunked transfer coding */
	HTTP_BODY_UNTIL_CLOSE,  /* response only: read until the upstream closes */
};

struct http_head {
	/* Request line (requests only). */
	const char *method;
	const char *target;
	uint32_t method_len;
	uint32_t target_len;
	/* Status line (responses only). */
	int status;
	const char *reason;
	uint32_t reason_len;

	int version_minor; /* HTTP/1.<minor>: 0 or 1 */
	struct http_header *headers; /* caller-provided array */
	size_t nheaders;

	enum http_framing framing;
	uint64_t content_length;  /* when framing == HTTP_BODY_LENGTH, or the
	                             value a HEAD/304 answer carried */
	bool content_length_present; /* a valid Content-Length field was seen */
	bool keep_alive;          /* the sender wants the connection kept open
	                             (1.1 without "close", 1.0 with "keep-alive") */
	bool upgrade;             /* request: Upgrade field and "upgrade" token in
	                             Connection; response: status 101 */
	bool expect_continue;     /* request: Expect: 100-continue */
	int host;                 /* index of the Host field, -1 if none */
	int upgrade_hdr;          /* index of the Upgrade field, -1 if none */
};

/* Result of parsing a head: 0 = valid; otherwise the status to answer. */
enum http_parse_result {
	HTTP_OK = 0,
	HTTP_INCOMPLETE = 1,          /* http_head_length only */
	HTTP_BAD_REQUEST = 400,       /* malformed, ambiguous framing */
	HTTP_TOO_LARGE = 431,         /* too many header fields */
	HTTP_NOT_IMPLEMENTED = 501,   /* unknown transfer coding, CONNECT, method http-parser does not know */
	HTTP_VERSION_UNSUPPORTED = 505,
};

/*
 * Finds the end of a head in buf[0..len). Returns the head's length in bytes
 * including the terminating empty line, or 0 when no end was found yet. A
 * line ending of bare LF also ends a line here (so the head is found and can
 * then be rejected by the parser instead of waiting for a timeout).
 * *scanned carries the search position between calls on a growing buffer
 * (start with 0).
 */
size_t http_head_length(const char *buf, size_t len, size_t *scanned);

/*
 * Checks the request-line of a head that is not complete yet (buf/len: what
 * has arrived). HTTP_INCOMPLETE while the line has no LF yet; HTTP_OK when it
 * is a valid request-line; otherwise the status to answer now (HTTP/0.9
 * "GET /" CRLF is invalid the moment its line ends: 400), as
 * http_parse_request would answer for the same line.
 */
enum http_parse_result http_check_request_line(const char *buf, size_t len)
    __attribute__((warn_unused_result));

/*
 * Parses and validates a complete request head (buf/len as found by
 * http_head_length). headers/max_headers is the caller's array; more fields
 * than max_headers is HTTP_TOO_LARGE. Rules enforced, each answering 400
 * unless noted:
 *   - request-line: method = token; one SP; request-target (origin-form,
 *     absolute-form "http://" or "https://", asterisk-form only with OPTIONS;
 *     authority-form/CONNECT -> 501); one SP; "HTTP/1.0" or "HTTP/1.1"
 *     exactly (HTTP/2+ -> 505, other digits -> 505, anything else -> 400);
 *     no HTTP/0.9.
 *   - lines end in CRLF; bare CR or bare LF anywhere -> 400.
 *   - field-name = token, no whitespace before ':'; field-value only
 *     VCHAR/obs-text/SP/HTAB; obs-fold -> 400; NUL -> 400.
 *   - Content-Length: 1*DIGIT (a comma list of identical values is one
 *     value); differing values, non-digits, overflow -> 400.
 *   - Transfer-Encoding: with Content-Length -> 400; a request with a
 *     Transfer-Encoding on HTTP/1.0 -> 400; the codings (across all fields)
 *     must end in "chunked" exactly once, else 400; "chunked" alone is
 *     supported, other codings before it -> 501.
 *   - HTTP/1.1 needs exactly one Host; more than one Host -> 400 always;
 *     Host value must be a valid uri-host[:port].
 *   - Connection tokens, Upgrade, Expect recorded in the flags above; hop-by-
 *     hop fields (Connection, Keep-Alive, Proxy-Connection, TE, Trailer,
 *     Transfer-Encoding, Content-Length, Upgrade, and any field named in
 *     Connection) get HTTP_HDR_HOP. Framing headers are marked hop because
 *     the proxy writes its own. More than HTTP_MAX_CONNECTION_OPTIONS
 *     options naming fields -> 400.
 *   - finally http-parser must accept the same bytes and agree on method,
 *     version and framing; a method it does not know -> 501.
 */
enum http_parse_result http_parse_request(const char *buf, size_t len, struct http_header *headers,
    size_t max_headers, struct http_head *out) __attribute__((warn_unused_result));

/*
 * Same for a response head from an upstream. request_method/len is the method
 * of the request it answers (for HEAD framing). Any invalid response is
 * HTTP_BAD_REQUEST (the caller answers 502 and never reuses the connection).
 * Framing: 1xx/204/304 and answers to HEAD have none; otherwise
 * Transfer-Encoding "chunked" (only that coding is accepted) or
 * Content-Length, else until close. 101 sets upgrade.
 */
enum http_parse_result http_parse_response(const char *buf, size_t len, struct http_header *headers,
    size_t max_headers, const char *request_method, size_t request_method_len,
    struct http_head *out) __attribute__((warn_unused_result));

/* Case-insensitive compare of a header name with a NUL-terminated name. */
bool http_header_is(const struct http_header *h, const char *name);

/*
 * For an absolute-form request target ("http://" or "https://", scheme
 * case-insensitive) sets the authority and the rest of the target (path and
 * query, possibly empty or starting with "?": origin-form prefixes "/") and
 * returns true; returns false for any other form. Pointers are into the
 * target.
 */
bool http_absolute_target(const struct http_head *req, const char **authority,
    size_t *authority_len, const char **path, size_t *path_len);

/*
 * Writes the request head to send upstream, in canonical form:
 * "METHOD SP target SP HTTP/1.1\r\n", each non-hop header "Name: value\r\n"
 * (absolute-form targets become origin-form and Host becomes their
 * authority), then X-Forwarded-For (the incoming value with ", client_ip"
 * appended, or client_ip alone), X-Forwarded-Proto: proto (replacing any
 * incoming), the framing the proxy chose ("Content-Length: N" or
 * "Transfer-Encoding: chunked"), "Connection: upgrade" + the Upgrade field
 * when req->upgrade, and the final CRLF. Returns 0, -1 on allocation failure.
 */
int http_write_request(struct evbuffer *out, const struct http_head *req, const char *client_ip,
    const char *proto) __attribute__((warn_unused_result));

/*
 * Writes the response head to send to the client: "HTTP/1.1 status reason",
 * each non-hop header, then framing as chosen by the caller: framing ==
 * HTTP_BODY_LENGTH writes Content-Length (also for HEAD answers that carried
 * one), HTTP_BODY_CHUNKED writes "Transfer-Encoding: chunked" (neither is
 * ever written on 1xx or 204, which must not carry them); keep_alive false
 * writes "Connection: close"; keep_alive true for an HTTP/1.0 client writes
 * "Connection: keep-alive" (no Connection field on 1xx); upgrade (101) writes
 * "Connection: upgrade" and the Upgrade field. A received reason phrase is
 * kept, an empty one becomes http_reason(status). Returns 0, -1 on
 * allocation failure.
 */
int http_write_response(struct evbuffer *out, const struct http_head *resp, enum http_framing framing,
    uint64_t content_length, bool keep_alive, int client_minor) __attribute__((warn_unused_result));

/* Strict chunked decoder, re-encoding in canonical form. */
struct http_chunked {
	int state;
	uint64_t remaining;  /* bytes left in the current chunk */
	size_t line_len;     /* length of the chunk-size/trailer line being read */
	size_t max_line;     /* longest chunk-size line or trailer field accepted */
	size_t trailer_bytes;
	bool reencode;       /* write chunked framing to out (else: data only) */
};

/*
 * max_line 0 means 4096. A longer chunk-size line or trailer line, or a
 * trailer section over 64 * max_line in all, is a framing error.
 */
void http_chunked_init(struct http_chunked *c, bool reencode, size_t max_line);

/*
 * Consumes as much of in as it can, moving chunk data to out (without copying
 * where possible) and, when reencode, writing canonical framing: "<hex>\r\n"
 * before each chunk's data, "\r\n" after it, "0\r\n\r\n" at the end.
 * Chunk extensions are validated and dropped; trailer fields are validated
 * and dropped. chunk-size = 1*HEXDIG (at most 15 digits); chunk data must be
 * followed by exactly CRLF. At most max_out bytes are appended to out in one
 * call (backpressure); framing is never split, so with reencode a max_out
 * below 17 (longest chunk header) may make no progress: call again with more
 * room. Returns 1 when the last chunk and trailer section are
 * complete (bytes after it stay in in), 0 when more input is needed, -1 on a
 * framing error.
 */
int http_chunked_step(struct http_chunked *c, struct evbuffer *in, struct evbuffer *out, size_t max_out)
    __attribute__((warn_unused_result));

/* Short canonical reason phrase for a status code ("Bad Gateway"). */
const char *http_reason(int status);

#endif
