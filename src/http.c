#include "autoconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "http.h"

/*
 * Character classes, one byte per octet, so every grammar check on the hot
 * path is a table load. Generated; the bits are:
 */
#define C_TCHAR 0x01   /* tchar (RFC 9110 5.6.2) */
#define C_VCHAR 0x02   /* field-vchar: VCHAR / obs-text */
#define C_WS 0x04      /* SP / HTAB */
#define C_HEX 0x08     /* HEXDIG */
#define C_DIGIT 0x10   /* DIGIT */
#define C_REGNAME 0x20 /* reg-name: unreserved / sub-delims / "%" */
#define C_TARGET 0x40  /* request-target octet: VCHAR except "#" */

static const uint8_t ctab[256] = {
	/* 00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0,
	/* 10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 20 */ 4, 99, 66, 3, 99, 99, 99, 99, 98, 98, 99, 99, 98, 99, 99, 66,
	/* 30 */ 123, 123, 123, 123, 123, 123, 123, 123, 123, 123, 66, 98, 66, 98, 66, 66,
	/* 40 */ 66, 107, 107, 107, 107, 107, 107, 99, 99, 99, 99, 99, 99, 99, 99, 99,
	/* 50 */ 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 66, 66, 66, 67, 99,
	/* 60 */ 67, 107, 107, 107, 107, 107, 107, 99, 99, 99, 99, 99, 99, 99, 99, 99,
	/* 70 */ 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 99, 66, 67, 66, 99, 0,
	/* 80 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* 90 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* a0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* b0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* c0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* d0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* e0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
	/* f0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

#define IS(c, cls) ((ctab[(unsigned char)(c)] & (cls)) != 0)

/* A chunk-size line or trailer field longer than this when max_line is 0. */
#define CK_DEFAULT_MAX_LINE 4096
/* The trailer section may total this many max_line. */
#define CK_TRAILER_LINES 64
/* Longest chunk-size accepted, in hex digits (2^60 - 1). */
#define CK_MAX_DIGITS 15
/* Largest single evbuffer_remove_buffer(), which returns an int. */
#define CK_MOVE_MAX ((size_t)1 << 30)

/* Chunked decoder states (struct http_chunked.state). */
enum {
	CK_SIZE_START = 0, /* at the start of a chunk-size line */
	CK_SIZE,           /* in the hex digits */
	CK_EXT_WS,         /* BWS before ";" */
	CK_EXT_NAME_WS,    /* after ";", BWS before ext-name */
	CK_EXT_NAME,       /* in ext-name */
	CK_EXT_NAME_END,   /* BWS after ext-name: "=" or ";" follows */
	CK_EXT_VAL_WS,     /* after "=", BWS before ext-val */
	CK_EXT_VAL_TOKEN,  /* in a token ext-val */
	CK_EXT_QS,         /* in a quoted-string ext-val */
	CK_EXT_QP,         /* after a backslash in a quoted-string */
	CK_EXT_QS_END,     /* after the closing quote */
	CK_SIZE_LF,        /* CR seen at the end of the chunk-size line */
	CK_DATA,           /* chunk data, c->remaining bytes to go */
	CK_DATA_CR,        /* CRLF after the data */
	CK_DATA_LF,
	CK_TR_START,       /* at the start of a trailer line (or the final CRLF) */
	CK_TR_NAME,
	CK_TR_VALUE,
	CK_TR_LF,
	CK_END_LF,         /* CR of the final empty line seen */
	CK_DONE,
	CK_ERROR,
};

/* What ck_byte() did with one octet. */
enum ck_ret {
	CK_R_NEXT,  /* consumed; keep scanning */
	CK_R_BREAK, /* consumed; the state now needs the outer loop (data, done) */
	CK_R_WAIT,  /* not consumed: out has no room for the framing it produces */
	CK_R_ERR,   /* framing error */
};

/* What the header field scan learned, for the framing decisions. */
struct fieldscan {
	uint64_t content_length;
	bool has_cl;
	bool has_te;
	bool te_last_chunked;
	bool conn_close;
	bool conn_keep_alive;
	bool conn_upgrade;
	unsigned conn_other; /* options in Connection naming other fields */
	bool expect_continue;
	unsigned te_chunked; /* "chunked" codings seen */
	unsigned te_other;   /* other codings seen */
	unsigned nhost;
	unsigned nupgrade;
};

/* What http-parser saw, captured when it finished the head. */
struct hp_result {
	bool done;
	bool skip_body;
	unsigned flags;
	unsigned method;
	unsigned status;
	unsigned short major;
	unsigned short minor;
	uint64_t content_length;
};

/* Output cursor: measures when p is NULL, writes otherwise. */
struct wbuf {
	char *p;
	size_t n;
};

static inline unsigned char lower(unsigned char c);
static bool ci_eq(const char *a, const char *lit, size_t len);
static bool ci_eq2(const char *a, const char *b, size_t len);
static bool list_next(const char *v, size_t len, size_t *pos, const char **el, size_t *elen);
static bool valid_host(const char *v, size_t len, bool need_host);
static int parse_content_length(const char *v, size_t len, struct fieldscan *fs);
static int scan_te(const char *v, size_t len, struct fieldscan *fs);
static int scan_connection(const char *v, size_t len, struct fieldscan *fs);
static void mark_connection_named(struct http_head *out);
static enum http_parse_result parse_version(const char *p, size_t avail, int *minor);
static enum http_parse_result parse_request_line(const char *buf, size_t len, size_t *posp,
    struct http_head *out);
static enum http_parse_result parse_fields(const char *buf, size_t len, size_t pos,
    struct http_header *headers, size_t max_headers, bool is_request, struct http_head *out,
    struct fieldscan *fs);
static int hp_on_headers_complete(http_parser *p);
static enum http_parse_result hp_run(const char *buf, size_t len, enum http_parser_type type,
    bool skip_body, struct hp_result *r);
static bool hp_agrees_framing(const struct hp_result *r, const struct fieldscan *fs);
static void w_put(struct wbuf *w, const void *s, size_t len);
static void w_u64(struct wbuf *w, uint64_t v);
static void w_header(struct wbuf *w, const struct http_header *h);
static void w_framing(struct wbuf *w, enum http_framing framing, uint64_t content_length);
static bool is_xff(const struct http_header *h);
static bool is_xfp(const struct http_header *h);
static void emit_request(struct wbuf *w, const struct http_head *req, const char *client_ip,
    const char *proto);
static void emit_response(struct wbuf *w, const struct http_head *resp, enum http_framing framing,
    uint64_t content_length, bool keep_alive, int client_minor);
static int ck_emit(struct http_chunked *c, struct evbuffer *out, size_t *budget, const char *s,
    size_t len);
static const unsigned char *ck_segment(struct evbuffer *in, size_t *len);
static enum ck_ret ck_size_line_byte(struct http_chunked *c, unsigned char ch);
static enum ck_ret ck_byte(struct http_chunked *c, unsigned char ch, struct evbuffer *out,
    size_t *budget);

#define W_LIT(w, s) w_put((w), (s), sizeof(s) - 1)
#define CI_IS(p, len, lit) ((len) == sizeof(lit) - 1 && ci_eq((p), (lit), sizeof(lit) - 1))

static const http_parser_settings hp_settings = {
	.on_headers_complete = hp_on_headers_complete,
};

static inline unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* a[0..len) equals the lowercase literal lit, ignoring ASCII case in a. */
static bool
ci_eq(const char *a, const char *lit, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != (unsigned char)lit[i])
			return false;
	return true;
}

/* a[0..len) equals b[0..len), ignoring ASCII case in both. */
static bool
ci_eq2(const char *a, const char *b, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return false;
	return true;
}

/*
 * Next element of a comma-separated list (RFC 9110 5.6.1), OWS trimmed;
 * empty elements are skipped as the RFC requires. Returns false at the end.
 */
static bool
list_next(const char *v, size_t len, size_t *pos, const char **el, size_t *elen)
{
	size_t i = *pos, start, end;

	while (i < len && (v[i] == ',' || IS(v[i], C_WS)))
		i++;
	if (i == len) {
		*pos = i;
		return false;
	}
	start = i;
	while (i < len && v[i] != ',')
		i++;
	end = i;
	while (end > start && IS(v[end - 1], C_WS))
		end--;
	*el = v + start;
	*elen = end - start;
	*pos = i;
	return true;
}

/*
 * uri-host [ ":" port ] (RFC 9110 7.2). need_host: the host may not be
 * empty (an http(s) URI's authority); a Host field may be empty.
 */
static bool
valid_host(const char *v, size_t len, bool need_host)
{
	size_t i = 0, digits;
	unsigned long port = 0;

	if (len > 0 && v[0] == '[') {
		/* IP-literal: IPv6address (IPvFuture is not accepted). */
		for (i = 1; i < len && v[i] != ']'; i++)
			if (!IS(v[i], C_HEX) && v[i] != ':' && v[i] != '.')
				return false;
		if (i == len || i == 1)
			return false;
		i++;
	} else {
		while (i < len && IS(v[i], C_REGNAME)) {
			if (v[i] == '%' && (i + 2 >= len || !IS(v[i + 1], C_HEX) ||
			    !IS(v[i + 2], C_HEX)))
				return false;
			i++;
		}
		if (i == 0 && need_host)
			return false;
	}
	if (i == len)
		return true;
	if (v[i] != ':')
		return false;
	for (i++, digits = 0; i < len; i++, digits++) {
		if (!IS(v[i], C_DIGIT) || digits == 5)
			return false;
		port = port * 10 + (unsigned long)(v[i] - '0');
	}
	return port <= 65535;
}

/*
 * Content-Length = 1*DIGIT; a list of identical values counts as one value
 * (RFC 9110 8.6), also across fields. Returns 0, -1 when invalid.
 * http-parser 2.9.4 rejects any repeated Content-Length field and any list,
 * so in the end those heads get 400 too (as nginx does).
 */
static int
parse_content_length(const char *v, size_t len, struct fieldscan *fs)
{
	size_t i = 0;
	uint64_t x;
	unsigned d;

	for (;;) {
		while (i < len && IS(v[i], C_WS))
			i++;
		if (i == len || !IS(v[i], C_DIGIT))
			return -1;
		for (x = 0; i < len && IS(v[i], C_DIGIT); i++) {
			d = (unsigned)(v[i] - '0');
			if (x > (UINT64_MAX - d) / 10)
				return -1;
			x = x * 10 + d;
		}
		if (fs->has_cl && x != fs->content_length)
			return -1;
		fs->content_length = x;
		fs->has_cl = true;
		while (i < len && IS(v[i], C_WS))
			i++;
		if (i == len)
			return 0;
		if (v[i] != ',')
			return -1;
		i++;
	}
}

/*
 * Counts the transfer-codings of one Transfer-Encoding field. "chunked"
 * takes no parameters; other codings are only checked to start with a
 * token since they are refused anyway. Returns 0, -1 when malformed.
 */
static int
scan_te(const char *v, size_t len, struct fieldscan *fs)
{
	const char *el;
	size_t elen, pos = 0, t;

	fs->has_te = true;
	while (list_next(v, len, &pos, &el, &elen)) {
		for (t = 0; t < elen && IS(el[t], C_TCHAR); t++)
			continue;
		if (t == 0)
			return -1;
		if (CI_IS(el, t, "chunked")) {
			if (t != elen)
				return -1;
			fs->te_chunked++;
			fs->te_last_chunked = true;
			continue;
		}
		while (t < elen && IS(el[t], C_WS))
			t++;
		if (t != elen && el[t] != ';')
			return -1;
		fs->te_other++;
		fs->te_last_chunked = false;
	}
	return 0;
}

/* Records the Connection options of one field. Returns 0, -1 when malformed. */
static int
scan_connection(const char *v, size_t len, struct fieldscan *fs)
{
	const char *el;
	size_t elen, pos = 0, t;

	while (list_next(v, len, &pos, &el, &elen)) {
		for (t = 0; t < elen; t++)
			if (!IS(el[t], C_TCHAR))
				return -1;
		if (CI_IS(el, elen, "close"))
			fs->conn_close = true;
		else if (CI_IS(el, elen, "keep-alive"))
			fs->conn_keep_alive = true;
		else if (CI_IS(el, elen, "upgrade"))
			fs->conn_upgrade = true;
		else if (++fs->conn_other > HTTP_MAX_CONNECTION_OPTIONS)
			return -1;
	}
	return 0;
}

/*
 * Marks hop-by-hop every field named by a Connection option (RFC 9110
 * 7.6.1). Runs last, once every cheaper check passed; scan_connection()
 * bounds the options to HTTP_MAX_CONNECTION_OPTIONS, so the work is linear
 * in the number of fields. Host is never marked: the upstream needs it, and dropping it on a
 * client's word would turn a valid request into an invalid one.
 */
static void
mark_connection_named(struct http_head *out)
{
	const struct http_header *c;
	struct http_header *h;
	const char *el;
	size_t i, j, elen, pos;

	for (i = 0; i < out->nheaders; i++) {
		c = &out->headers[i];
		if (!CI_IS(c->name, c->name_len, "connection"))
			continue;
		pos = 0;
		while (list_next(c->value, c->value_len, &pos, &el, &elen)) {
			if (CI_IS(el, elen, "close") || CI_IS(el, elen, "host"))
				continue;
			for (j = 0; j < out->nheaders; j++) {
				h = &out->headers[j];
				if (h->name_len == elen && ci_eq2(h->name, el, elen))
					h->flags |= HTTP_HDR_HOP;
			}
		}
	}
}

/*
 * HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. Only 1.0 and 1.1
 * are spoken; any other digits -> 505 (also 1.2..1.9: we cannot promise
 * what a later minor would mean), anything else -> 400.
 */
static enum http_parse_result
parse_version(const char *p, size_t avail, int *minor)
{
	if (avail < 8 || memcmp(p, "HTTP/", 5) != 0 || !IS(p[5], C_DIGIT) || p[6] != '.' ||
	    !IS(p[7], C_DIGIT))
		return HTTP_BAD_REQUEST;
	if (p[5] != '1' || p[7] > '1')
		return HTTP_VERSION_UNSUPPORTED;
	*minor = p[7] - '0';
	return HTTP_OK;
}

/*
 * Scans the field lines from pos to the final CRLF, which must end the head
 * exactly at len. Stores each field in headers[], classifies the ones that
 * matter for framing and hop-by-hop handling into fs and out.
 */
static enum http_parse_result
parse_fields(const char *buf, size_t len, size_t pos, struct http_header *headers,
    size_t max_headers, bool is_request, struct http_head *out, struct fieldscan *fs)
{
	struct http_header *h;
	size_t name, name_len, val, vend, n = 0;

	for (;;) {
		if (pos >= len)
			return HTTP_BAD_REQUEST;
		if (buf[pos] == '\r') {
			if (pos + 2 == len && buf[pos + 1] == '\n')
				break;
			return HTTP_BAD_REQUEST;
		}
		/* An empty name catches obs-fold (SP/HTAB first) and a
		 * leading ':'; a non-tchar before ':' catches "Name :". */
		name = pos;
		while (pos < len && IS(buf[pos], C_TCHAR))
			pos++;
		if (pos == name || pos >= len || buf[pos] != ':')
			return HTTP_BAD_REQUEST;
		name_len = pos - name;
		pos++;
		while (pos < len && IS(buf[pos], C_WS))
			pos++;
		val = pos;
		while (pos < len && IS(buf[pos], C_VCHAR | C_WS))
			pos++;
		if (pos + 1 >= len || buf[pos] != '\r' || buf[pos + 1] != '\n')
			return HTTP_BAD_REQUEST;
		vend = pos;
		while (vend > val && IS(buf[vend - 1], C_WS))
			vend--;
		pos += 2;

		if (n == max_headers)
			return HTTP_TOO_LARGE;
		h = &headers[n];
		h->name = buf + name;
		h->name_len = (uint32_t)name_len;
		h->value = buf + val;
		h->value_len = (uint32_t)(vend - val);
		h->flags = 0;

		switch (name_len) {
		case 2:
			if (CI_IS(h->name, name_len, "te"))
				h->flags |= HTTP_HDR_HOP;
			break;
		case 4:
			if (is_request && CI_IS(h->name, name_len, "host")) {
				if (++fs->nhost > 1 || !valid_host(h->value, h->value_len, false))
					return HTTP_BAD_REQUEST;
				out->host = (int)n;
			}
			break;
		case 6:
			if (is_request && CI_IS(h->name, name_len, "expect") &&
			    CI_IS(h->value, h->value_len, "100-continue"))
				fs->expect_continue = true;
			break;
		case 7:
			if (CI_IS(h->name, name_len, "trailer")) {
				h->flags |= HTTP_HDR_HOP;
			} else if (CI_IS(h->name, name_len, "upgrade")) {
				h->flags |= HTTP_HDR_HOP;
				if (++fs->nupgrade > 1)
					return HTTP_BAD_REQUEST;
				out->upgrade_hdr = (int)n;
			}
			break;
		case 10:
			if (CI_IS(h->name, name_len, "connection")) {
				h->flags |= HTTP_HDR_HOP;
				if (scan_connection(h->value, h->value_len, fs) != 0)
					return HTTP_BAD_REQUEST;
			} else if (CI_IS(h->name, name_len, "keep-alive")) {
				h->flags |= HTTP_HDR_HOP;
			}
			break;
		case 14:
			if (CI_IS(h->name, name_len, "content-length")) {
				h->flags |= HTTP_HDR_HOP;
				if (parse_content_length(h->value, h->value_len, fs) != 0)
					return HTTP_BAD_REQUEST;
			}
			break;
		case 16:
			if (CI_IS(h->name, name_len, "proxy-connection"))
				h->flags |= HTTP_HDR_HOP;
			break;
		case 17:
			if (CI_IS(h->name, name_len, "transfer-encoding")) {
				h->flags |= HTTP_HDR_HOP;
				if (scan_te(h->value, h->value_len, fs) != 0)
					return HTTP_BAD_REQUEST;
			}
			break;
		default:
			/* A name that only begins with Transfer-Encoding: some
			 * parsers (http-parser among them) take it for framing,
			 * so it is refused whatever else the head says (an
			 * upgrade must not make it pass). */
			if (name_len > 17 && ci_eq(h->name, "transfer-encoding", 17))
				return HTTP_BAD_REQUEST;
			break;
		}
		n++;
	}
	out->nheaders = n;
	return HTTP_OK;
}

static int
hp_on_headers_complete(http_parser *p)
{
	struct hp_result *r = p->data;

	r->done = true;
	r->flags = p->flags;
	r->method = p->method;
	r->status = p->status_code;
	r->major = p->http_major;
	r->minor = p->http_minor;
	r->content_length = p->content_length;
	/* 1 tells http-parser that no body follows (answer to HEAD). */
	return r->skip_body ? 1 : 0;
}

/*
 * Runs http-parser over the whole head. It must consume all of it without
 * error and reach the end of the head; an unknown method -> 501.
 */
static enum http_parse_result
hp_run(const char *buf, size_t len, enum http_parser_type type, bool skip_body,
    struct hp_result *r)
{
	http_parser p;
	size_t n;

	memset(r, 0, sizeof(*r));
	r->skip_body = skip_body;
	http_parser_init(&p, type);
	p.data = r;
	n = http_parser_execute(&p, &hp_settings, buf, len);
	if (HTTP_PARSER_ERRNO(&p) == HPE_INVALID_METHOD)
		return HTTP_NOT_IMPLEMENTED;
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || n != len || !r->done)
		return HTTP_BAD_REQUEST;
	return HTTP_OK;
}

/* Both parsers saw the same body framing headers. */
static bool
hp_agrees_framing(const struct hp_result *r, const struct fieldscan *fs)
{
	if (((r->flags & F_CHUNKED) != 0) != (fs->has_te && fs->te_last_chunked))
		return false;
	if (((r->flags & F_CONTENTLENGTH) != 0) != fs->has_cl)
		return false;
	return !fs->has_cl || r->content_length == fs->content_length;
}

size_t
http_head_length(const char *buf, size_t len, size_t *scanned)
{
	const char *lf;
	size_t start = 0, i, j;

	/* Empty lines before a request-line are ignored (RFC 9112 2.2), so
	 * they must not be taken for the end of an empty head. */
	while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n')
		start += 2;
	i = *scanned > start ? *scanned : start;
	while (i < len) {
		lf = memchr(buf + i, '\n', len - i);
		if (lf == NULL) {
			*scanned = len;
			return 0;
		}
		j = (size_t)(lf - buf);
		if (j + 1 >= len) {
			*scanned = j;
			return 0;
		}
		if (buf[j + 1] == '\n')
			return j + 2;
		if (buf[j + 1] == '\r') {
			if (j + 2 >= len) {
				*scanned = j;
				return 0;
			}
			if (buf[j + 2] == '\n')
				return j + 3;
		}
		i = j + 1;
	}
	*scanned = i;
	return 0;
}

/*
 * method SP request-target SP HTTP-version CRLF, after any empty lines (RFC
 * 9112 2.2; http_head_length() skips them too). Sets the request-line fields
 * of out and *pos past the CRLF.
 */
static enum http_parse_result
parse_request_line(const char *buf, size_t len, size_t *posp, struct http_head *out)
{
	enum http_parse_result rc;
	size_t pos = 0, start;

	while (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n')
		pos += 2;
	start = pos;
	while (pos < len && IS(buf[pos], C_TCHAR))
		pos++;
	if (pos == start || pos >= len || buf[pos] != ' ')
		return HTTP_BAD_REQUEST;
	out->method = buf + start;
	out->method_len = (uint32_t)(pos - start);
	pos++;
	start = pos;
	while (pos < len && IS(buf[pos], C_TARGET))
		pos++;
	if (pos == start || pos >= len || buf[pos] != ' ')
		return HTTP_BAD_REQUEST;
	out->target = buf + start;
	out->target_len = (uint32_t)(pos - start);
	pos++;
	if ((rc = parse_version(buf + pos, len - pos, &out->version_minor)) != HTTP_OK)
		return rc;
	pos += 8;
	if (pos + 2 > len || buf[pos] != '\r' || buf[pos + 1] != '\n')
		return HTTP_BAD_REQUEST;
	*posp = pos + 2;
	return HTTP_OK;
}

enum http_parse_result
http_check_request_line(const char *buf, size_t len)
{
	struct http_head line;
	size_t pos = 0;
	const char *lf;

	while (pos + 1 < len && buf[pos] == '\r' && buf[pos + 1] == '\n')
		pos += 2;
	if ((lf = memchr(buf + pos, '\n', len - pos)) == NULL)
		return HTTP_INCOMPLETE;
	return parse_request_line(buf, (size_t)(lf - buf) + 1, &pos, &line);
}

/* Whether an Upgrade field's protocol list names h2c (any case, any version). */
static bool
upgrade_names_h2c(const struct http_header *h)
{
	size_t i = 0, n = h->value_len;

	while (i < n) {
		size_t start, end;

		while (i < n && (h->value[i] == ' ' || h->value[i] == '\t' || h->value[i] == ','))
			i++;
		start = i;
		while (i < n && h->value[i] != ',')
			i++;
		end = i;
		while (end > start && (h->value[end - 1] == ' ' || h->value[end - 1] == '\t'))
			end--;
		if (end - start >= 3 && (h->value[start] | 0x20) == 'h' && h->value[start + 1] == '2' &&
		    (h->value[start + 2] | 0x20) == 'c' && (end - start == 3 || h->value[start + 3] == '/'))
			return true;
	}
	return false;
}

enum http_parse_result
http_parse_request(const char *buf, size_t len, struct http_header *headers, size_t max_headers,
    struct http_head *out)
{
	struct fieldscan fs;
	struct hp_result hp;
	enum http_parse_result rc;
	const char *name;
	size_t pos = 0;

	memset(out, 0, sizeof(*out));
	memset(&fs, 0, sizeof(fs));
	out->headers = headers;
	out->host = -1;
	out->upgrade_hdr = -1;

	if ((rc = parse_request_line(buf, len, &pos, out)) != HTTP_OK)
		return rc;

	if (out->method_len == 7 && memcmp(out->method, "CONNECT", 7) == 0)
		return HTTP_NOT_IMPLEMENTED;
	if (out->target[0] == '/') {
		/* origin-form */
	} else if (out->target_len == 1 && out->target[0] == '*') {
		if (out->method_len != 7 || memcmp(out->method, "OPTIONS", 7) != 0)
			return HTTP_BAD_REQUEST;
	} else {
		const char *auth, *path;
		size_t alen, plen;

		if (!http_absolute_target(out, &auth, &alen, &path, &plen) ||
		    memchr(auth, '@', alen) != NULL || !valid_host(auth, alen, true))
			return HTTP_BAD_REQUEST;
	}

	if ((rc = parse_fields(buf, len, pos, headers, max_headers, true, out, &fs)) != HTTP_OK)
		return rc;

	if (fs.has_te) {
		if (out->version_minor == 0 || fs.has_cl || fs.te_chunked != 1 ||
		    !fs.te_last_chunked)
			return HTTP_BAD_REQUEST;
		if (fs.te_other != 0)
			return HTTP_NOT_IMPLEMENTED;
		out->framing = HTTP_BODY_CHUNKED;
	} else if (fs.has_cl) {
		out->framing = HTTP_BODY_LENGTH;
		out->content_length = fs.content_length;
	}
	out->content_length_present = fs.has_cl;
	if (out->version_minor == 1 && fs.nhost != 1)
		return HTTP_BAD_REQUEST;
	if (out->version_minor == 1)
		out->keep_alive = !fs.conn_close;
	else
		out->keep_alive = fs.conn_keep_alive && !fs.conn_close;
	/* Upgrade and Expect are HTTP/1.1 mechanisms; a 1.0 request's are
	 * ignored (RFC 9110 7.8, 10.1.1). */
	out->upgrade = out->version_minor == 1 && fs.conn_upgrade && fs.nupgrade == 1;
	/* Upgrade to h2c is never honoured, nor passed on (the header is
	 * hop-by-hop, and HTTP2-Settings is named in Connection): the request
	 * is served as HTTP/1.1. HTTP/2 takes prior knowledge or ALPN. */
	if (out->upgrade && upgrade_names_h2c(&out->headers[out->upgrade_hdr]))
		out->upgrade = false;
	out->expect_continue = out->version_minor == 1 && fs.expect_continue;

	if ((rc = hp_run(buf, len, HTTP_REQUEST, false, &hp)) != HTTP_OK)
		return rc;
	name = http_method_str((enum http_method)hp.method);
	if (strlen(name) != out->method_len || memcmp(name, out->method, out->method_len) != 0 ||
	    hp.major != 1 || hp.minor != out->version_minor || !hp_agrees_framing(&hp, &fs))
		return HTTP_BAD_REQUEST;
	if (fs.conn_other)
		mark_connection_named(out);
	return HTTP_OK;
}

enum http_parse_result
http_parse_response(const char *buf, size_t len, struct http_header *headers, size_t max_headers,
    const char *request_method, size_t request_method_len, struct http_head *out)
{
	struct fieldscan fs;
	struct hp_result hp;
	size_t pos = 0, start;
	bool head, no_body;
	int status;

	memset(out, 0, sizeof(*out));
	memset(&fs, 0, sizeof(fs));
	out->headers = headers;
	out->host = -1;
	out->upgrade_hdr = -1;

	/* HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF; the SP before an
	 * empty reason is commonly omitted and accepted. */
	if (parse_version(buf, len, &out->version_minor) != HTTP_OK)
		return HTTP_BAD_REQUEST;
	pos = 8;
	if (pos + 4 > len || buf[pos] != ' ' || !IS(buf[pos + 1], C_DIGIT) ||
	    !IS(buf[pos + 2], C_DIGIT) || !IS(buf[pos + 3], C_DIGIT))
		return HTTP_BAD_REQUEST;
	status = (buf[pos + 1] - '0') * 100 + (buf[pos + 2] - '0') * 10 + (buf[pos + 3] - '0');
	if (status < 100 || status > 599)
		return HTTP_BAD_REQUEST;
	out->status = status;
	pos += 4;
	if (pos < len && buf[pos] == ' ') {
		pos++;
		start = pos;
		while (pos < len && IS(buf[pos], C_VCHAR | C_WS))
			pos++;
		out->reason = buf + start;
		out->reason_len = (uint32_t)(pos - start);
	} else {
		out->reason = buf + pos;
	}
	if (pos + 2 > len || buf[pos] != '\r' || buf[pos + 1] != '\n')
		return HTTP_BAD_REQUEST;
	pos += 2;

	/* Every invalid response is the same to the caller: 502. */
	if (parse_fields(buf, len, pos, headers, max_headers, false, out, &fs) != HTTP_OK)
		return HTTP_BAD_REQUEST;

	head = request_method != NULL && request_method_len == 4 &&
	    memcmp(request_method, "HEAD", 4) == 0;
	if (fs.has_te) {
		/* RFC 9112 6.1: Transfer-Encoding on 1.0 means faulty framing. */
		if (out->version_minor == 0 || fs.has_cl || fs.te_chunked != 1 || fs.te_other != 0)
			return HTTP_BAD_REQUEST;
	}
	no_body = status < 200 || status == 204;
	if (no_body && (fs.has_te || (fs.has_cl && fs.content_length != 0)))
		return HTTP_BAD_REQUEST;
	out->content_length = fs.content_length;
	out->content_length_present = fs.has_cl;
	if (no_body || status == 304 || head)
		out->framing = HTTP_BODY_NONE;
	else if (fs.has_te)
		out->framing = HTTP_BODY_CHUNKED;
	else if (fs.has_cl)
		out->framing = HTTP_BODY_LENGTH;
	else
		out->framing = HTTP_BODY_UNTIL_CLOSE;

	if (out->version_minor == 1)
		out->keep_alive = !fs.conn_close;
	else
		out->keep_alive = fs.conn_keep_alive && !fs.conn_close;
	if (out->framing == HTTP_BODY_UNTIL_CLOSE)
		out->keep_alive = false;
	out->upgrade = status == 101;

	if (hp_run(buf, len, HTTP_RESPONSE, head, &hp) != HTTP_OK)
		return HTTP_BAD_REQUEST;
	if (hp.major != 1 || hp.minor != out->version_minor || hp.status != (unsigned)status ||
	    !hp_agrees_framing(&hp, &fs))
		return HTTP_BAD_REQUEST;
	if (fs.conn_other)
		mark_connection_named(out);
	return HTTP_OK;
}

bool
http_header_is(const struct http_header *h, const char *name)
{
	size_t len = strlen(name);

	return h->name_len == len && ci_eq2(h->name, name, len);
}

bool
http_absolute_target(const struct http_head *req, const char **authority, size_t *authority_len,
    const char **path, size_t *path_len)
{
	const char *t = req->target;
	size_t len = req->target_len, skip, a;

	if (len == 0 || t[0] == '/')
		return false;
	if (len >= 7 && ci_eq(t, "http://", 7))
		skip = 7;
	else if (len >= 8 && ci_eq(t, "https://", 8))
		skip = 8;
	else
		return false;
	for (a = skip; a < len && t[a] != '/' && t[a] != '?'; a++)
		continue;
	*authority = t + skip;
	*authority_len = a - skip;
	*path = t + a;
	*path_len = len - a;
	return true;
}

static void
w_put(struct wbuf *w, const void *s, size_t len)
{
	if (w->p != NULL)
		memcpy(w->p + w->n, s, len);
	w->n += len;
}

static void
w_u64(struct wbuf *w, uint64_t v)
{
	char tmp[20];
	size_t i = sizeof(tmp);

	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	w_put(w, tmp + i, sizeof(tmp) - i);
}

static void
w_header(struct wbuf *w, const struct http_header *h)
{
	w_put(w, h->name, h->name_len);
	W_LIT(w, ": ");
	w_put(w, h->value, h->value_len);
	W_LIT(w, "\r\n");
}

static void
w_framing(struct wbuf *w, enum http_framing framing, uint64_t content_length)
{
	if (framing == HTTP_BODY_LENGTH) {
		W_LIT(w, "Content-Length: ");
		w_u64(w, content_length);
		W_LIT(w, "\r\n");
	} else if (framing == HTTP_BODY_CHUNKED) {
		W_LIT(w, "Transfer-Encoding: chunked\r\n");
	}
}

static bool
is_xff(const struct http_header *h)
{
	return CI_IS(h->name, h->name_len, "x-forwarded-for");
}

static bool
is_xfp(const struct http_header *h)
{
	return CI_IS(h->name, h->name_len, "x-forwarded-proto");
}

/* Writes (or measures, see struct wbuf) the upstream request head. */
static void
emit_request(struct wbuf *w, const struct http_head *req, const char *client_ip, const char *proto)
{
	const struct http_header *h;
	const char *auth = NULL, *path = NULL;
	size_t i, alen = 0, plen = 0;
	bool absolute, any = false;

	absolute = http_absolute_target(req, &auth, &alen, &path, &plen);
	w_put(w, req->method, req->method_len);
	W_LIT(w, " ");
	if (absolute) {
		if (plen == 0 || path[0] != '/')
			W_LIT(w, "/");
		w_put(w, path, plen);
	} else {
		w_put(w, req->target, req->target_len);
	}
	W_LIT(w, " HTTP/1.1\r\n");
	/* Upstream speaks 1.1, which needs a Host; with no authority known
	 * the RFC's answer is an empty one (RFC 9112 3.2). */
	if (req->host < 0) {
		W_LIT(w, "Host: ");
		if (absolute)
			w_put(w, auth, alen);
		W_LIT(w, "\r\n");
	}
	for (i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if (h->flags & HTTP_HDR_HOP)
			continue;
		if ((int)i == req->host && absolute) {
			w_put(w, h->name, h->name_len);
			W_LIT(w, ": ");
			w_put(w, auth, alen);
			W_LIT(w, "\r\n");
			continue;
		}
		if ((h->name_len == 15 && is_xff(h)) || (h->name_len == 17 && is_xfp(h)))
			continue;
		w_header(w, h);
	}
	for (i = 0; i < req->nheaders; i++) {
		h = &req->headers[i];
		if ((h->flags & HTTP_HDR_HOP) || h->value_len == 0 || !is_xff(h))
			continue;
		if (any)
			W_LIT(w, ", ");
		else
			W_LIT(w, "X-Forwarded-For: ");
		w_put(w, h->value, h->value_len);
		any = true;
	}
	if (client_ip != NULL) {
		if (any)
			W_LIT(w, ", ");
		else
			W_LIT(w, "X-Forwarded-For: ");
		w_put(w, client_ip, strlen(client_ip));
		any = true;
	}
	if (any)
		W_LIT(w, "\r\n");
	if (proto != NULL) {
		W_LIT(w, "X-Forwarded-Proto: ");
		w_put(w, proto, strlen(proto));
		W_LIT(w, "\r\n");
	}
	w_framing(w, req->framing, req->content_length);
	if (req->upgrade && req->upgrade_hdr >= 0) {
		W_LIT(w, "Connection: upgrade\r\n");
		w_header(w, &req->headers[req->upgrade_hdr]);
	}
	W_LIT(w, "\r\n");
}

/* Writes (or measures) the client response head. */
static void
emit_response(struct wbuf *w, const struct http_head *resp, enum http_framing framing,
    uint64_t content_length, bool keep_alive, int client_minor)
{
	const struct http_header *h;
	const char *reason;
	size_t i;

	W_LIT(w, "HTTP/1.1 ");
	w_u64(w, resp->status < 0 ? 0 : (uint64_t)resp->status);
	W_LIT(w, " ");
	if (resp->reason_len > 0) {
		w_put(w, resp->reason, resp->reason_len);
	} else {
		reason = http_reason(resp->status);
		w_put(w, reason, strlen(reason));
	}
	W_LIT(w, "\r\n");
	for (i = 0; i < resp->nheaders; i++) {
		h = &resp->headers[i];
		if (!(h->flags & HTTP_HDR_HOP))
			w_header(w, h);
	}
	/* RFC 9110 8.6, 6.1: never on 1xx and 204, whatever the caller says. */
	if (resp->status >= 200 && resp->status != 204)
		w_framing(w, framing, content_length);
	if (resp->status == 101 && resp->upgrade) {
		W_LIT(w, "Connection: upgrade\r\n");
		if (resp->upgrade_hdr >= 0)
			w_header(w, &resp->headers[resp->upgrade_hdr]);
	} else if (resp->status >= 200) {
		/* Interim answers say nothing about the connection. */
		if (!keep_alive)
			W_LIT(w, "Connection: close\r\n");
		else if (client_minor == 0)
			W_LIT(w, "Connection: keep-alive\r\n");
	}
	W_LIT(w, "\r\n");
}

int
http_write_request(struct evbuffer *out, const struct http_head *req, const char *client_ip,
    const char *proto)
{
	struct wbuf w = { NULL, 0 };
	struct evbuffer_iovec v;
	size_t need;

	emit_request(&w, req, client_ip, proto);
	need = w.n;
	if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) != 1 || v.iov_len < need)
		return -1;
	w.p = v.iov_base;
	w.n = 0;
	emit_request(&w, req, client_ip, proto);
	v.iov_len = need;
	return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

int
http_write_response(struct evbuffer *out, const struct http_head *resp, enum http_framing framing,
    uint64_t content_length, bool keep_alive, int client_minor)
{
	struct wbuf w = { NULL, 0 };
	struct evbuffer_iovec v;
	size_t need;

	emit_response(&w, resp, framing, content_length, keep_alive, client_minor);
	need = w.n;
	if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) != 1 || v.iov_len < need)
		return -1;
	w.p = v.iov_base;
	w.n = 0;
	emit_response(&w, resp, framing, content_length, keep_alive, client_minor);
	v.iov_len = need;
	return evbuffer_commit_space(out, &v, 1) == 0 ? 0 : -1;
}

void
http_chunked_init(struct http_chunked *c, bool reencode, size_t max_line)
{
	memset(c, 0, sizeof(*c));
	c->state = CK_SIZE_START;
	c->max_line = max_line != 0 ? max_line : CK_DEFAULT_MAX_LINE;
	if (c->max_line > SIZE_MAX / CK_TRAILER_LINES)
		c->max_line = SIZE_MAX / CK_TRAILER_LINES;
	c->reencode = reencode;
}

/*
 * Appends framing when re-encoding. Returns 0, 1 when out has no room for
 * it within the budget (the caller retries later), -1 on allocation failure.
 */
static int
ck_emit(struct http_chunked *c, struct evbuffer *out, size_t *budget, const char *s, size_t len)
{
	if (!c->reencode)
		return 0;
	if (*budget < len)
		return 1;
	if (evbuffer_add(out, s, len) != 0)
		return -1;
	*budget -= len;
	return 0;
}

/*
 * The first contiguous bytes of in, without copying unless only empty
 * chains come first; NULL when in is empty.
 */
static const unsigned char *
ck_segment(struct evbuffer *in, size_t *len)
{
	struct evbuffer_iovec v[4];
	size_t total = evbuffer_get_length(in);
	int i, n;

	if (total == 0)
		return NULL;
	n = evbuffer_peek(in, -1, NULL, v, 4);
	for (i = 0; i < n && i < 4; i++) {
		if (v[i].iov_len > 0) {
			*len = v[i].iov_len;
			return v[i].iov_base;
		}
	}
	*len = total < 64 ? total : 64;
	return evbuffer_pullup(in, (ev_ssize_t)*len);
}

/*
 * One octet of a chunk-size line (RFC 9112 7.1.1):
 *   chunk-size [ chunk-ext ] CRLF
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 */
static enum ck_ret
ck_size_line_byte(struct http_chunked *c, unsigned char ch)
{
	if (ch != '\r' && ++c->line_len > c->max_line)
		return CK_R_ERR;
	switch (c->state) {
	case CK_SIZE_START:
	case CK_SIZE:
		if (IS(ch, C_HEX)) {
			/* line_len counts the digits: nothing else came yet. */
			if (c->line_len > CK_MAX_DIGITS)
				return CK_R_ERR;
			c->remaining = (c->remaining << 4) |
			    (uint64_t)(ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10);
			c->state = CK_SIZE;
			return CK_R_NEXT;
		}
		if (c->state == CK_SIZE_START)
			return CK_R_ERR;
		break;
	case CK_EXT_WS:
		if (IS(ch, C_WS))
			return CK_R_NEXT;
		if (ch != ';')
			return CK_R_ERR;
		c->state = CK_EXT_NAME_WS;
		return CK_R_NEXT;
	case CK_EXT_NAME_WS:
		if (IS(ch, C_WS))
			return CK_R_NEXT;
		if (!IS(ch, C_TCHAR))
			return CK_R_ERR;
		c->state = CK_EXT_NAME;
		return CK_R_NEXT;
	case CK_EXT_NAME:
		if (IS(ch, C_TCHAR))
			return CK_R_NEXT;
		if (ch == '=') {
			c->state = CK_EXT_VAL_WS;
			return CK_R_NEXT;
		}
		if (IS(ch, C_WS)) {
			c->state = CK_EXT_NAME_END;
			return CK_R_NEXT;
		}
		break;
	case CK_EXT_NAME_END:
		if (IS(ch, C_WS))
			return CK_R_NEXT;
		if (ch == '=') {
			c->state = CK_EXT_VAL_WS;
			return CK_R_NEXT;
		}
		if (ch == ';') {
			c->state = CK_EXT_NAME_WS;
			return CK_R_NEXT;
		}
		return CK_R_ERR;
	case CK_EXT_VAL_WS:
		if (IS(ch, C_WS))
			return CK_R_NEXT;
		if (ch == '"')
			c->state = CK_EXT_QS;
		else if (IS(ch, C_TCHAR))
			c->state = CK_EXT_VAL_TOKEN;
		else
			return CK_R_ERR;
		return CK_R_NEXT;
	case CK_EXT_VAL_TOKEN:
		if (IS(ch, C_TCHAR))
			return CK_R_NEXT;
		break;
	case CK_EXT_QS:
		/* qdtext = HTAB / SP / VCHAR except '"' and '\' / obs-text */
		if (ch == '"')
			c->state = CK_EXT_QS_END;
		else if (ch == '\\')
			c->state = CK_EXT_QP;
		else if (!IS(ch, C_VCHAR | C_WS))
			return CK_R_ERR;
		return CK_R_NEXT;
	case CK_EXT_QP:
		if (!IS(ch, C_VCHAR | C_WS))
			return CK_R_ERR;
		c->state = CK_EXT_QS;
		return CK_R_NEXT;
	case CK_EXT_QS_END:
		break;
	default:
		return CK_R_ERR;
	}
	/* After the size, an ext-name, or an ext-val: what may follow. */
	if (ch == '\r') {
		c->state = CK_SIZE_LF;
		return CK_R_NEXT;
	}
	if (ch == ';') {
		c->state = CK_EXT_NAME_WS;
		return CK_R_NEXT;
	}
	if (IS(ch, C_WS)) {
		c->state = CK_EXT_WS;
		return CK_R_NEXT;
	}
	return CK_R_ERR;
}

/* One octet of chunked framing (anything but chunk data). */
static enum ck_ret
ck_byte(struct http_chunked *c, unsigned char ch, struct evbuffer *out, size_t *budget)
{
	char hdr[CK_MAX_DIGITS + 2];
	static const char hexdig[] = "0123456789abcdef";
	uint64_t v;
	size_t i, n;
	int rc;

	switch (c->state) {
	case CK_SIZE_LF:
		if (ch != '\n')
			return CK_R_ERR;
		if (c->remaining == 0) {
			c->state = CK_TR_START;
			c->line_len = 0;
			c->trailer_bytes = 0;
			return CK_R_NEXT;
		}
		for (n = 0, v = c->remaining; v != 0; v >>= 4)
			n++;
		for (i = n, v = c->remaining; i > 0; v >>= 4)
			hdr[--i] = hexdig[v & 0xf];
		hdr[n] = '\r';
		hdr[n + 1] = '\n';
		if ((rc = ck_emit(c, out, budget, hdr, n + 2)) != 0)
			return rc > 0 ? CK_R_WAIT : CK_R_ERR;
		c->state = CK_DATA;
		return CK_R_BREAK;
	case CK_DATA_CR:
		if (ch != '\r')
			return CK_R_ERR;
		c->state = CK_DATA_LF;
		return CK_R_NEXT;
	case CK_DATA_LF:
		if (ch != '\n')
			return CK_R_ERR;
		if ((rc = ck_emit(c, out, budget, "\r\n", 2)) != 0)
			return rc > 0 ? CK_R_WAIT : CK_R_ERR;
		c->state = CK_SIZE_START;
		c->line_len = 0;
		c->remaining = 0;
		return CK_R_NEXT;
	case CK_TR_START:
		if (ch == '\r') {
			c->state = CK_END_LF;
			return CK_R_NEXT;
		}
		if (!IS(ch, C_TCHAR))
			return CK_R_ERR;
		c->state = CK_TR_NAME;
		break;
	case CK_TR_NAME:
		if (ch == ':')
			c->state = CK_TR_VALUE;
		else if (!IS(ch, C_TCHAR))
			return CK_R_ERR;
		break;
	case CK_TR_VALUE:
		if (ch == '\r') {
			c->state = CK_TR_LF;
			return CK_R_NEXT;
		}
		if (!IS(ch, C_VCHAR | C_WS))
			return CK_R_ERR;
		break;
	case CK_TR_LF:
		if (ch != '\n')
			return CK_R_ERR;
		c->state = CK_TR_START;
		c->line_len = 0;
		return CK_R_NEXT;
	case CK_END_LF:
		if (ch != '\n')
			return CK_R_ERR;
		if ((rc = ck_emit(c, out, budget, "0\r\n\r\n", 5)) != 0)
			return rc > 0 ? CK_R_WAIT : CK_R_ERR;
		c->state = CK_DONE;
		return CK_R_BREAK;
	default:
		return ck_size_line_byte(c, ch);
	}
	/* A trailer field octet. */
	if (++c->line_len > c->max_line || ++c->trailer_bytes > CK_TRAILER_LINES * c->max_line)
		return CK_R_ERR;
	return CK_R_NEXT;
}

int
http_chunked_step(struct http_chunked *c, struct evbuffer *in, struct evbuffer *out, size_t max_out)
{
	const unsigned char *p;
	enum ck_ret r;
	size_t budget = max_out, n, i, seg;
	int moved;

	for (;;) {
		if (c->state == CK_DONE)
			return 1;
		if (c->state == CK_ERROR)
			return -1;
		if (c->state == CK_DATA) {
			n = evbuffer_get_length(in);
			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (n > budget)
				n = budget;
			if (n > CK_MOVE_MAX)
				n = CK_MOVE_MAX;
			if (n == 0)
				return 0;
			/* Moves whole chains where it can: no copy. */
			moved = evbuffer_remove_buffer(in, out, n);
			if (moved <= 0) {
				c->state = CK_ERROR;
				return -1;
			}
			c->remaining -= (uint64_t)moved;
			budget -= (size_t)moved;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		if ((p = ck_segment(in, &seg)) == NULL)
			return 0;
		r = CK_R_NEXT;
		for (i = 0; i < seg; i++) {
			r = ck_byte(c, p[i], out, &budget);
			if (r != CK_R_NEXT)
				break;
		}
		if (r == CK_R_ERR) {
			c->state = CK_ERROR;
			return -1;
		}
		if (r == CK_R_BREAK)
			i++;
		if (i > 0 && evbuffer_drain(in, i) != 0) {
			c->state = CK_ERROR;
			return -1;
		}
		if (r == CK_R_WAIT)
			return 0;
	}
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 102: return "Processing";
	case 103: return "Early Hints";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 205: return "Reset Content";
	case 206: return "Partial Content";
	case 207: return "Multi-Status";
	case 208: return "Already Reported";
	case 226: return "IM Used";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 305: return "Use Proxy";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 402: return "Payment Required";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 406: return "Not Acceptable";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 410: return "Gone";
	case 411: return "Length Required";
	case 412: return "Precondition Failed";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 422: return "Unprocessable Content";
	case 423: return "Locked";
	case 424: return "Failed Dependency";
	case 425: return "Too Early";
	case 426: return "Upgrade Required";
	case 428: return "Precondition Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 451: return "Unavailable For Legal Reasons";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 506: return "Variant Also Negotiates";
	case 507: return "Insufficient Storage";
	case 508: return "Loop Detected";
	case 510: return "Not Extended";
	case 511: return "Network Authentication Required";
	default: return "Unknown";
	}
}
