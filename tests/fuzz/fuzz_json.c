/*
 * The JSON parser (cutoverctl reads every answer of the daemon with it) and
 * the string escaper (every answer the daemon writes goes through it).
 * The input is a JSON text. Properties:
 *   - a parsed value, written out again (strings through jbuf_str, numbers
 *     as %.17g), parses to a value that writes out identically;
 *   - every member of a parsed object is found by json_get (no duplicates);
 *   - jbuf_strn of any bytes without NUL is a JSON string that parses, and
 *     gives back the same bytes when they were valid UTF-8.
 */

#include "autoconf.h"

#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"

static void
write_value(struct jbuf *b, const struct json *j)
{
	size_t i;

	switch (j->type) {
	case JSON_NULL:
		jbuf_raw(b, "null");
		break;
	case JSON_BOOL:
		jbuf_raw(b, j->b ? "true" : "false");
		break;
	case JSON_NUMBER:
		jbuf_printf(b, "%.17g", j->num);
		break;
	case JSON_STRING:
		FUZZ_CHECK(j->str != NULL, "string without text");
		jbuf_str(b, j->str);
		break;
	case JSON_ARRAY:
		jbuf_raw(b, "[");
		for (i = 0; i < j->n; i++) {
			if (i > 0)
				jbuf_raw(b, ",");
			write_value(b, j->items[i]);
		}
		jbuf_raw(b, "]");
		break;
	case JSON_OBJECT:
		jbuf_raw(b, "{");
		for (i = 0; i < j->n; i++) {
			FUZZ_CHECK(json_get(j, j->keys[i]) == j->items[i], "key %zu not found", i);
			if (i > 0)
				jbuf_raw(b, ",");
			jbuf_str(b, j->keys[i]);
			jbuf_raw(b, ":");
			write_value(b, j->items[i]);
		}
		jbuf_raw(b, "}");
		break;
	default:
		FUZZ_CHECK(false, "type %d", (int)j->type);
	}
}

/* RFC 3629 well-formed UTF-8. */
static bool
valid_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0, len, k;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2;
			cp = p[i] & 0x1f;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3;
			cp = p[i] & 0x0f;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4;
			cp = p[i] & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += len;
	}
	return true;
}

static void
check_roundtrip(const struct json *j)
{
	struct jbuf one, two;
	struct json *again;

	jbuf_init(&one);
	write_value(&one, j);
	FUZZ_CHECK(!one.oom, "out of memory");
	again = json_parse(one.s, one.len);
	FUZZ_CHECK(again != NULL, "written value does not parse: %.*s", (int)one.len, one.s);
	jbuf_init(&two);
	write_value(&two, again);
	FUZZ_CHECK(two.len == one.len && memcmp(two.s, one.s, one.len) == 0,
	    "round trip differs: %.*s | %.*s", (int)one.len, one.s, (int)two.len, two.s);
	json_free(again);
	jbuf_free(&one);
	jbuf_free(&two);
}

static void
check_escape(const uint8_t *data, size_t size)
{
	struct jbuf b;
	struct json *j;

	if (memchr(data, '\0', size) != NULL)
		return;
	jbuf_init(&b);
	jbuf_strn(&b, (const char *)data, size);
	FUZZ_CHECK(!b.oom, "out of memory");
	j = json_parse(b.s, b.len);
	FUZZ_CHECK(j != NULL && j->type == JSON_STRING, "escaped bytes do not parse: %.*s",
	    (int)b.len, b.s);
	if (valid_utf8(data, size))
		FUZZ_CHECK(strlen(j->str) == size && memcmp(j->str, data, size) == 0,
		    "escaped UTF-8 does not come back");
	json_free(j);
	jbuf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json *j;
	char *copy;

	/* An exact heap copy: ASan sees any read past len. */
	copy = malloc(size != 0 ? size : 1);
	FUZZ_CHECK(copy != NULL, "malloc");
	memcpy(copy, data, size);
	j = json_parse(copy, size);
	if (j != NULL) {
		check_roundtrip(j);
		json_free(j);
	}
	free(copy);
	check_escape(data, size);
	return 0;
}
