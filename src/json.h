#ifndef CUTOVER_SRC_JSON_H
#define CUTOVER_SRC_JSON_H

/*
 * Minimal JSON for the control protocol: a string builder for answers and a
 * small parser (for cutoverctl and tests). UTF-8 passes through; control
 * characters are escaped.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Growable string; on allocation failure it sets oom and stops growing. */
struct jbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

void jbuf_init(struct jbuf *b);
void jbuf_free(struct jbuf *b);
void jbuf_raw(struct jbuf *b, const char *s);           /* appends s as is */
void jbuf_printf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jbuf_str(struct jbuf *b, const char *s);           /* appends a quoted, escaped string; NULL -> null */
void jbuf_strn(struct jbuf *b, const char *s, size_t n);
/* Appends s[0..n) as is (not quoted), except that every byte that does not
 * start a well-formed UTF-8 sequence, and NUL, becomes U+FFFD: the result
 * is valid UTF-8 whatever s holds. */
void jbuf_utf8(struct jbuf *b, const char *s, size_t n);

/*
 * The length of s[0..len) without a UTF-8 character cut off at its end (a
 * lead byte followed by fewer continuation bytes than it announces), for
 * text that was truncated to fit a buffer: cut there, it stays valid.
 */
size_t utf8_trim(const char *s, size_t len);

/* The small reader below; a file that uses jansson (whose names clash)
 * defines CUTOVER_JSON_WRITER_ONLY before including this header. */
#ifndef CUTOVER_JSON_WRITER_ONLY
enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
	enum json_type type;
	bool b;
	double num;
	char *str;            /* JSON_STRING (decoded) */
	struct json **items;  /* JSON_ARRAY elements or JSON_OBJECT values */
	char **keys;          /* JSON_OBJECT keys */
	size_t n;
};

/* Parses text (whole input must be one value, whitespace around allowed).
 * Returns NULL on a syntax error (or ENOMEM). Depth limited to 64. */
struct json *json_parse(const char *text, size_t len);
void json_free(struct json *j);

/* Object member by key, or NULL (also when j is not an object). */
const struct json *json_get(const struct json *j, const char *key);
/* Conveniences: value of a member or fallback when absent/wrong type. */
const char *json_get_str(const struct json *j, const char *key, const char *fallback);
double json_get_num(const struct json *j, const char *key, double fallback);
bool json_get_bool(const struct json *j, const char *key, bool fallback);
#endif

#endif
