#include "autoconf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/*
 * The parser is strict on purpose: it reads answers from the daemon and, in
 * tests, checks what the daemon wrote, so anything RFC 8259 does not allow
 * (trailing commas, leading zeros, bare control characters, invalid UTF-8,
 * lone surrogates, duplicate keys) is an error rather than a guess.
 */

#define JSON_MAX_DEPTH 64

struct parser {
	const char *p, *end;
	int depth;
};

static bool jbuf_reserve(struct jbuf *b, size_t more);
static size_t utf8_seq_len(const unsigned char *p, size_t avail);
static void jbuf_putc(struct jbuf *b, char c);
static void skip_ws(struct parser *ps);
static struct json *json_new(enum json_type type);
static bool append_item(struct json *j, char *key, struct json *item);
static struct json *parse_value(struct parser *ps);
static struct json *parse_literal(struct parser *ps, const char *word,
    enum json_type type, bool b);
static struct json *parse_number(struct parser *ps);
static char *parse_string(struct parser *ps);
static struct json *parse_array(struct parser *ps);
static struct json *parse_object(struct parser *ps);
static int parse_hex4(struct parser *ps);
static size_t utf8_encode(char *out, unsigned long cp);

/* ---------------------------------------------------------------- builder */

void
jbuf_init(struct jbuf *b)
{
	b->s = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

void
jbuf_free(struct jbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

/* Makes room for more bytes plus the terminating NUL, which is kept after
 * every append so that b->s is always a C string once anything was added. */
static bool
jbuf_reserve(struct jbuf *b, size_t more)
{
	size_t need, cap;
	char *s;

	if (b->oom)
		return false;
	if (more > SIZE_MAX - b->len - 1)
		goto fail;
	need = b->len + more + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if ((s = realloc(b->s, cap)) == NULL)
		goto fail;
	b->s = s;
	b->cap = cap;
	return true;
fail:
	b->oom = true;
	return false;
}

static void
jbuf_putc(struct jbuf *b, char c)
{
	if (!jbuf_reserve(b, 1))
		return;
	b->s[b->len++] = c;
	b->s[b->len] = '\0';
}

void
jbuf_raw(struct jbuf *b, const char *s)
{
	size_t n = strlen(s);

	if (!jbuf_reserve(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
jbuf_printf(struct jbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	if (!jbuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
jbuf_str(struct jbuf *b, const char *s)
{
	if (s == NULL) {
		jbuf_raw(b, "null");
		return;
	}
	jbuf_strn(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlongs, no
 * surrogates, at most U+10FFFF), or 0 when it is not one. */
static size_t
utf8_seq_len(const unsigned char *p, size_t avail)
{
	size_t len, k;
	uint32_t cp;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (avail < len)
		return 0;
	for (k = 1; k < len; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Escapes the two characters JSON requires plus every control character
 * (and DEL, so that an answer printed raw cannot drive a terminal); valid
 * UTF-8 passes, any other byte >= 0x80 becomes \ufffd. */
void
jbuf_strn(struct jbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	jbuf_putc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':  jbuf_raw(b, "\\\""); break;
		case '\\': jbuf_raw(b, "\\\\"); break;
		case '\b': jbuf_raw(b, "\\b"); break;
		case '\f': jbuf_raw(b, "\\f"); break;
		case '\n': jbuf_raw(b, "\\n"); break;
		case '\r': jbuf_raw(b, "\\r"); break;
		case '\t': jbuf_raw(b, "\\t"); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char esc[7] = {'\\', 'u', '0', '0',
				    hex[c >> 4], hex[c & 0xf], '\0'};

				jbuf_raw(b, esc);
			} else if (c < 0x80) {
				jbuf_putc(b, (char)c);
			} else {
				/* Valid UTF-8 passes; anything else (a backend's or
				 * hook's stray bytes) becomes U+FFFD, so every answer
				 * stays valid JSON. */
				size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);

				if (len == 0) {
					jbuf_raw(b, "\\ufffd");
				} else {
					for (size_t k = 0; k < len; k++)
						jbuf_putc(b, s[i + k]);
					i += len - 1;
				}
			}
		}
	}
	jbuf_putc(b, '"');
}

void
jbuf_utf8(struct jbuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0, len;

	while (i < n) {
		if (u[i] != 0 && u[i] < 0x80) {
			i++;
			continue;
		}
		len = u[i] == 0 ? 0 : utf8_seq_len(u + i, n - i);
		if (len > 0) {
			i += len;
			continue;
		}
		if (jbuf_reserve(b, i - run + 3)) {
			memcpy(b->s + b->len, s + run, i - run);
			memcpy(b->s + b->len + (i - run), "\xef\xbf\xbd", 3);
			b->len += i - run + 3;
			b->s[b->len] = '\0';
		}
		run = ++i;
	}
	if (jbuf_reserve(b, n - run)) {
		memcpy(b->s + b->len, s + run, n - run);
		b->len += n - run;
		b->s[b->len] = '\0';
	}
}

size_t
utf8_trim(const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t j = len, need;

	while (j > 0 && len - j < 3 && (u[j - 1] & 0xc0) == 0x80)
		j--;
	if (j == 0 || u[j - 1] < 0xc0)
		return len;
	need = u[j - 1] >= 0xf0 ? 4 : u[j - 1] >= 0xe0 ? 3 : 2;
	return len - (j - 1) < need ? j - 1 : len;
}

/* ----------------------------------------------------------------- parser */

struct json *
json_parse(const char *text, size_t len)
{
	struct parser ps = {text, text + len, 0};
	struct json *j;

	if (text == NULL)
		return NULL;
	skip_ws(&ps);
	if ((j = parse_value(&ps)) == NULL)
		return NULL;
	skip_ws(&ps);
	if (ps.p != ps.end) {
		json_free(j);
		return NULL;
	}
	return j;
}

void
json_free(struct json *j)
{
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		json_free(j->items[i]);
		if (j->keys != NULL)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	free(j);
}

const struct json *
json_get(const struct json *j, const char *key)
{
	size_t i;

	if (j == NULL || j->type != JSON_OBJECT || key == NULL)
		return NULL;
	for (i = 0; i < j->n; i++)
		if (strcmp(j->keys[i], key) == 0)
			return j->items[i];
	return NULL;
}

const char *
json_get_str(const struct json *j, const char *key, const char *fallback)
{
	const struct json *v = json_get(j, key);

	return v != NULL && v->type == JSON_STRING ? v->str : fallback;
}

double
json_get_num(const struct json *j, const char *key, double fallback)
{
	const struct json *v = json_get(j, key);

	return v != NULL && v->type == JSON_NUMBER ? v->num : fallback;
}

bool
json_get_bool(const struct json *j, const char *key, bool fallback)
{
	const struct json *v = json_get(j, key);

	return v != NULL && v->type == JSON_BOOL ? v->b : fallback;
}

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' ||
	    *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static struct json *
json_new(enum json_type type)
{
	struct json *j = calloc(1, sizeof(*j));

	if (j != NULL)
		j->type = type;
	return j;
}

/* Appends item (and key, for objects) to j, taking ownership of both only
 * on success. The capacity is not stored: it starts at 4 and doubles, so
 * the arrays are full exactly when n is 0 or a power of two of at least 4. */
static bool
append_item(struct json *j, char *key, struct json *item)
{
	if (j->n == 0 || (j->n >= 4 && (j->n & (j->n - 1)) == 0)) {
		size_t ncap = j->n == 0 ? 4 : j->n * 2;
		struct json **items;

		if ((items = realloc(j->items, ncap * sizeof(*items))) == NULL)
			return false;
		j->items = items;
		if (j->type == JSON_OBJECT) {
			char **keys = realloc(j->keys, ncap * sizeof(*keys));

			if (keys == NULL)
				return false;
			j->keys = keys;
		}
	}
	j->items[j->n] = item;
	if (j->type == JSON_OBJECT)
		j->keys[j->n] = key;
	j->n++;
	return true;
}

static struct json *
parse_value(struct parser *ps)
{
	if (ps->p >= ps->end)
		return NULL;
	switch (*ps->p) {
	case '{':
		return parse_object(ps);
	case '[':
		return parse_array(ps);
	case '"': {
		struct json *j;
		char *s;

		if ((s = parse_string(ps)) == NULL)
			return NULL;
		if ((j = json_new(JSON_STRING)) == NULL) {
			free(s);
			return NULL;
		}
		j->str = s;
		return j;
	}
	case 't':
		return parse_literal(ps, "true", JSON_BOOL, true);
	case 'f':
		return parse_literal(ps, "false", JSON_BOOL, false);
	case 'n':
		return parse_literal(ps, "null", JSON_NULL, false);
	default:
		return parse_number(ps);
	}
}

static struct json *
parse_literal(struct parser *ps, const char *word, enum json_type type, bool b)
{
	size_t n = strlen(word);
	struct json *j;

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return NULL;
	if ((j = json_new(type)) == NULL)
		return NULL;
	j->b = b;
	ps->p += n;
	return j;
}

/* Checks the RFC 8259 number grammar first, because strtod alone would
 * accept hex, "inf", "nan", leading '+' and leading zeros; then converts a
 * NUL-terminated copy (the input need not be terminated). */
static struct json *
parse_number(struct parser *ps)
{
	const char *s = ps->p, *q = ps->p;
	struct json *j = NULL;
	char *copy = NULL, *endp;
	double v;
	size_t n;

	if (q < ps->end && *q == '-')
		q++;
	if (q < ps->end && *q == '0')
		q++;
	else if (q < ps->end && *q >= '1' && *q <= '9')
		while (q < ps->end && *q >= '0' && *q <= '9')
			q++;
	else
		return NULL;
	if (q < ps->end && *q == '.') {
		q++;
		if (q >= ps->end || *q < '0' || *q > '9')
			return NULL;
		while (q < ps->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < ps->end && (*q == 'e' || *q == 'E')) {
		q++;
		if (q < ps->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= ps->end || *q < '0' || *q > '9')
			return NULL;
		while (q < ps->end && *q >= '0' && *q <= '9')
			q++;
	}
	n = (size_t)(q - s);
	if ((copy = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(copy, s, n);
	copy[n] = '\0';
	errno = 0;
	v = strtod(copy, &endp);
	/* Underflow to zero is harmless; overflow to infinity is not a
	 * value the protocol could mean. */
	if (endp != copy + n || isinf(v))
		goto out;
	if ((j = json_new(JSON_NUMBER)) == NULL)
		goto out;
	j->num = v;
	ps->p = q;
out:
	free(copy);
	return j;
}

static int
parse_hex4(struct parser *ps)
{
	int v = 0, i;

	if (ps->end - ps->p < 4)
		return -1;
	for (i = 0; i < 4; i++) {
		char c = *ps->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if (c >= 'a' && c <= 'f')
			v |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			v |= c - 'A' + 10;
		else
			return -1;
	}
	return v;
}

static size_t
utf8_encode(char *out, unsigned long cp)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Returns the decoded string (malloc'd, NUL-terminated) and leaves ps after
 * the closing quote. The decoded form is never longer than the escaped one,
 * so one allocation of the raw length suffices. \u0000 is refused: the
 * result is a C string and could not carry it faithfully. */
static char *
parse_string(struct parser *ps)
{
	const char *q = ps->p + 1;
	char *out = NULL, *o;
	size_t n;

	/* Find the closing quote first to size the buffer. */
	while (q < ps->end && *q != '"') {
		if (*q == '\\' && ps->end - q < 2)
			return NULL;
		q += *q == '\\' ? 2 : 1;
	}
	if (q >= ps->end)
		return NULL;
	if ((out = malloc((size_t)(q - ps->p))) == NULL)
		return NULL;
	o = out;
	ps->p++;
	while (*ps->p != '"') {
		unsigned char c = (unsigned char)*ps->p;

		if (c < 0x20)
			goto fail;
		if (c >= 0x80) {
			if ((n = utf8_seq_len((const unsigned char *)ps->p,
			    (size_t)(ps->end - ps->p))) == 0)
				goto fail;
			memcpy(o, ps->p, n);
			o += n;
			ps->p += n;
			continue;
		}
		ps->p++;
		if (c != '\\') {
			*o++ = (char)c;
			continue;
		}
		switch (*ps->p++) {
		case '"':  *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/':  *o++ = '/'; break;
		case 'b':  *o++ = '\b'; break;
		case 'f':  *o++ = '\f'; break;
		case 'n':  *o++ = '\n'; break;
		case 'r':  *o++ = '\r'; break;
		case 't':  *o++ = '\t'; break;
		case 'u': {
			int hi, lo;
			unsigned long cp;

			if ((hi = parse_hex4(ps)) < 0 || hi == 0)
				goto fail;
			cp = (unsigned long)hi;
			if (hi >= 0xdc00 && hi <= 0xdfff)
				goto fail;      /* lone low surrogate */
			if (hi >= 0xd800 && hi <= 0xdbff) {
				if (ps->end - ps->p < 6 || ps->p[0] != '\\' ||
				    ps->p[1] != 'u')
					goto fail;
				ps->p += 2;
				if ((lo = parse_hex4(ps)) < 0 ||
				    lo < 0xdc00 || lo > 0xdfff)
					goto fail;
				cp = 0x10000 + (((unsigned long)hi - 0xd800) << 10) +
				    ((unsigned long)lo - 0xdc00);
			}
			/* Six escaped bytes (twelve for a pair) always
			 * cover the at most four they decode to. */
			o += utf8_encode(o, cp);
			break;
		}
		default:
			goto fail;
		}
	}
	*o = '\0';
	ps->p++;
	return out;
fail:
	free(out);
	return NULL;
}

static struct json *
parse_array(struct parser *ps)
{
	struct json *j, *item;

	if (++ps->depth > JSON_MAX_DEPTH)
		return NULL;
	if ((j = json_new(JSON_ARRAY)) == NULL)
		return NULL;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		ps->depth--;
		return j;
	}
	for (;;) {
		skip_ws(ps);
		if ((item = parse_value(ps)) == NULL)
			goto fail;
		if (!append_item(j, NULL, item)) {
			json_free(item);
			goto fail;
		}
		skip_ws(ps);
		if (ps->p >= ps->end)
			goto fail;
		if (*ps->p == ']')
			break;
		if (*ps->p != ',')
			goto fail;
		ps->p++;
	}
	ps->p++;
	ps->depth--;
	return j;
fail:
	json_free(j);
	return NULL;
}

static struct json *
parse_object(struct parser *ps)
{
	struct json *j, *item;
	char *key;

	if (++ps->depth > JSON_MAX_DEPTH)
		return NULL;
	if ((j = json_new(JSON_OBJECT)) == NULL)
		return NULL;
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}') {
		ps->p++;
		ps->depth--;
		return j;
	}
	for (;;) {
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"' ||
		    (key = parse_string(ps)) == NULL)
			goto fail;
		/* A repeated key would let two readers disagree on the
		 * value; refuse it rather than pick one. */
		if (json_get(j, key) != NULL) {
			free(key);
			goto fail;
		}
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':') {
			free(key);
			goto fail;
		}
		ps->p++;
		skip_ws(ps);
		if ((item = parse_value(ps)) == NULL) {
			free(key);
			goto fail;
		}
		if (!append_item(j, key, item)) {
			free(key);
			json_free(item);
			goto fail;
		}
		skip_ws(ps);
		if (ps->p >= ps->end)
			goto fail;
		if (*ps->p == '}')
			break;
		if (*ps->p != ',')
			goto fail;
		ps->p++;
	}
	ps->p++;
	ps->depth--;
	return j;
fail:
	json_free(j);
	return NULL;
}
