#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "json.h"

/* Inputs as written on the wire; ok says whether the strict parser must
 * accept them. Lengths come from strlen, so embedded NULs get own tests. */
struct parse_case {
	const char *text;
	bool ok;
};

static const struct parse_case parse_cases[] = {
	{"null", true},
	{"true", true},
	{"false", true},
	{"0", true},
	{"-0", true},
	{"12", true},
	{"-12.5e+3", true},
	{"1E-2", true},
	{"0.5", true},
	{"\"\"", true},
	{"\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", true},
	{"\"\\u00e9\\uD83D\\uDE00\"", true},
	{"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", true},
	{"[]", true},
	{"{}", true},
	{" \t\r\n[ 1 , [ ] , { } ] \n", true},
	{"{\"a\":1,\"b\":[true,null],\"c\":{\"d\":\"e\"}}", true},
	{"1e400", false},         /* overflows to infinity */
	{"", false},
	{" ", false},
	{"nul", false},
	{"nulls", false},
	{"True", false},
	{"01", false},
	{"-", false},
	{"+1", false},
	{".5", false},
	{"1.", false},
	{"1e", false},
	{"1e+", false},
	{"0x10", false},
	{"Infinity", false},
	{"NaN", false},
	{"1 2", false},
	{"[1,]", false},
	{"[,1]", false},
	{"[1 2]", false},
	{"[", false},
	{"]", false},
	{"{\"a\"}", false},
	{"{\"a\":}", false},
	{"{\"a\":1,}", false},
	{"{a:1}", false},
	{"{'a':1}", false},
	{"{\"a\":1 \"b\":2}", false},
	{"{\"a\":1,\"a\":2}", false}, /* duplicate key */
	{"{1:2}", false},
	{"\"abc", false},
	{"\"abc\\\"", false},
	{"\"\\", false},
	{"\"a\tb\"", false},      /* raw control character */
	{"\"a\nb\"", false},
	{"\"\\x41\"", false},
	{"\"\\u12\"", false},
	{"\"\\u12G4\"", false},
	{"\"\\u0000\"", false},   /* cannot live in a C string */
	{"\"\\uD83D\"", false},   /* lone high surrogate */
	{"\"\\uD83Dx\"", false},
	{"\"\\uD83D\\u0041\"", false},
	{"\"\\uDE00\"", false},   /* lone low surrogate */
	{"\"\xc3\"", false},      /* truncated UTF-8 */
	{"\"\xc0\xaf\"", false},  /* overlong */
	{"\"\xe0\x80\xaf\"", false},
	{"\"\xed\xa0\x80\"", false}, /* encoded surrogate */
	{"\"\xf4\x90\x80\x80\"", false}, /* above U+10FFFF */
	{"\"\xff\"", false},
	{"\"\x80\"", false},
};

START_TEST(test_parse_table)
{
	const struct parse_case *c = &parse_cases[_i];
	struct json *j = json_parse(c->text, strlen(c->text));

	ck_assert_msg((j != NULL) == c->ok, "json_parse(\"%s\") %s",
	    c->text, c->ok ? "failed" : "accepted it");
	json_free(j);
}
END_TEST

START_TEST(test_parse_values)
{
	const char *text = "{\"ok\":true,\"active\":\"blue\",\"previous\":null,"
	    "\"generation\":7,\"lat\":-1.25e1,\"pools\":{\"blue\":"
	    "{\"healthy\":2}},\"list\":[1,\"x\",false]}";
	struct json *j = json_parse(text, strlen(text));
	const struct json *v;

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(j->type, JSON_OBJECT);
	ck_assert_uint_eq(j->n, 7);
	ck_assert(json_get_bool(j, "ok", false));
	ck_assert_str_eq(json_get_str(j, "active", "?"), "blue");
	/* Wrong type or absent: the fallback. */
	ck_assert_str_eq(json_get_str(j, "previous", "none"), "none");
	ck_assert_str_eq(json_get_str(j, "missing", "none"), "none");
	ck_assert(json_get_num(j, "active", -3) == -3);
	ck_assert(json_get_bool(j, "generation", true));
	ck_assert(json_get_num(j, "generation", 0) == 7);
	ck_assert(json_get_num(j, "lat", 0) == -12.5);
	v = json_get(j, "previous");
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(v->type, JSON_NULL);
	v = json_get(json_get(j, "pools"), "blue");
	ck_assert(json_get_num(v, "healthy", 0) == 2);
	v = json_get(j, "list");
	ck_assert_int_eq(v->type, JSON_ARRAY);
	ck_assert_uint_eq(v->n, 3);
	ck_assert(v->items[0]->num == 1);
	ck_assert_str_eq(v->items[1]->str, "x");
	ck_assert(!v->items[2]->b);
	/* json_get on a non-object and on NULL. */
	ck_assert_ptr_null(json_get(v, "x"));
	ck_assert_ptr_null(json_get(NULL, "x"));
	ck_assert_str_eq(json_get_str(NULL, "x", "fb"), "fb");
	json_free(j);
}
END_TEST

START_TEST(test_parse_len_bounds)
{
	/* The parser reads exactly len bytes: no NUL needed, none allowed. */
	const char text[] = "[1,2]garbage";
	struct json *j = json_parse(text, 5);

	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->n, 2);
	json_free(j);
	j = json_parse("12", 1);
	ck_assert(j != NULL && j->num == 1);
	json_free(j);
	ck_assert_ptr_null(json_parse("\"a\0b\"", 5));
	ck_assert_ptr_null(json_parse("1\0", 2));
	ck_assert_ptr_null(json_parse(NULL, 0));
}
END_TEST

static char *
nested(int depth, char open, char close)
{
	char *s = malloc((size_t)depth * 2 + 1);
	int i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < depth; i++) {
		s[i] = open;
		s[depth * 2 - 1 - i] = close;
	}
	s[depth * 2] = '\0';
	return s;
}

START_TEST(test_depth_limit)
{
	char *s;
	struct json *j;

	s = nested(64, '[', ']');
	j = json_parse(s, strlen(s));
	ck_assert_ptr_nonnull(j);
	json_free(j);
	free(s);

	s = nested(65, '[', ']');
	ck_assert_ptr_null(json_parse(s, strlen(s)));
	free(s);

	/* Far beyond the limit: refused, not a stack overflow. */
	s = nested(100000, '[', ']');
	ck_assert_ptr_null(json_parse(s, strlen(s)));
	free(s);

	/* Objects count too: 64 levels of {"a":...} around a 1. */
	{
		struct jbuf b;
		int i;

		jbuf_init(&b);
		for (i = 0; i < 65; i++)
			jbuf_raw(&b, "{\"a\":");
		jbuf_raw(&b, "1");
		for (i = 0; i < 65; i++)
			jbuf_raw(&b, "}");
		ck_assert(!b.oom);
		ck_assert_ptr_null(json_parse(b.s, b.len));
		ck_assert_ptr_nonnull(j = json_parse(b.s + 5, b.len - 6));
		json_free(j);
		jbuf_free(&b);
	}
}
END_TEST

START_TEST(test_large_array)
{
	struct jbuf b;
	struct json *j;
	int i;

	jbuf_init(&b);
	jbuf_raw(&b, "[");
	for (i = 0; i < 1000; i++)
		jbuf_printf(&b, "%s%d", i ? "," : "", i);
	jbuf_raw(&b, "]");
	j = json_parse(b.s, b.len);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(j->n, 1000);
	for (i = 0; i < 1000; i++)
		ck_assert(j->items[i]->num == i);
	json_free(j);
	jbuf_free(&b);
}
END_TEST

START_TEST(test_unicode_escapes)
{
	static const struct {
		const char *json, *decoded;
	} cases[] = {
		{"\"\\u0041\"", "A"},
		{"\"\\u00e9\"", "\xc3\xa9"},
		{"\"\\u00E9\"", "\xc3\xa9"},
		{"\"\\u20ac\"", "\xe2\x82\xac"},
		{"\"\\uffff\"", "\xef\xbf\xbf"},
		{"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80"},
		{"\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf"},
		{"\"\\uD800\\uDC00\"", "\xf0\x90\x80\x80"},
		{"\"x\\u0001y\"", "x\x01y"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json *j = json_parse(cases[i].json,
		    strlen(cases[i].json));

		ck_assert_msg(j != NULL, "%s refused", cases[i].json);
		ck_assert_int_eq(j->type, JSON_STRING);
		ck_assert_str_eq(j->str, cases[i].decoded);
		json_free(j);
	}
}
END_TEST

START_TEST(test_builder)
{
	struct jbuf b;

	jbuf_init(&b);
	jbuf_raw(&b, "{\"ok\":");
	jbuf_raw(&b, "true,\"error\":");
	jbuf_str(&b, NULL);
	jbuf_printf(&b, ",\"n\":%d,\"s\":", 42);
	jbuf_strn(&b, "a\"b\0c", 5);
	jbuf_raw(&b, "}");
	ck_assert(!b.oom);
	ck_assert_str_eq(b.s,
	    "{\"ok\":true,\"error\":null,\"n\":42,\"s\":\"a\\\"b\\u0000c\"}");
	ck_assert_uint_eq(b.len, strlen(b.s));
	jbuf_free(&b);
	ck_assert_ptr_null(b.s);
	ck_assert_uint_eq(b.len, 0);
	/* Reusable after jbuf_free. */
	jbuf_str(&b, "");
	ck_assert_str_eq(b.s, "\"\"");
	jbuf_free(&b);
}
END_TEST

/* Every byte string (valid UTF-8, no NUL) must come back unchanged after
 * jbuf_str and json_parse, and the escaped form must hold no raw control
 * character, so that one answer always stays on one line. */
START_TEST(test_round_trip)
{
	static const char *const strings[] = {
		"",
		"plain",
		"quote \" backslash \\ slash /",
		"\b\f\n\r\t",
		"\x01\x02\x1f\x7f",
		"line one\nline two\r\n",
		"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		"{\"nested\":\"json\"}",
		"\\u0041 is not an escape here",
	};
	char all[128];
	size_t i;
	int c;

	for (c = 1; c < 128; c++)
		all[c - 1] = (char)c;
	all[127] = '\0';
	for (i = 0; i <= sizeof(strings) / sizeof(strings[0]); i++) {
		const char *s = i < sizeof(strings) / sizeof(strings[0]) ?
		    strings[i] : all;
		struct jbuf b;
		struct json *j;
		size_t k;

		jbuf_init(&b);
		jbuf_str(&b, s);
		ck_assert(!b.oom);
		for (k = 0; k < b.len; k++)
			ck_assert_msg((unsigned char)b.s[k] >= 0x20 &&
			    b.s[k] != 0x7f, "raw control byte in %s", b.s);
		j = json_parse(b.s, b.len);
		ck_assert_msg(j != NULL, "could not parse back %s", b.s);
		ck_assert_int_eq(j->type, JSON_STRING);
		ck_assert_str_eq(j->str, s);
		json_free(j);
		jbuf_free(&b);
	}
}
END_TEST

START_TEST(test_builder_invalid_utf8)
{
	static const struct {
		const char *in;
		const char *out;
	} cases[] = {
	    {"caf\xc3\xa9", "\"caf\xc3\xa9\""},          /* valid 2-byte */
	    {"\xe2\x82\xac", "\"\xe2\x82\xac\""},       /* valid 3-byte */
	    {"\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\""}, /* valid 4-byte */
	    {"\xc3(", "\"\\ufffd(\""},                /* truncated */
	    {"\xc0\xaf", "\"\\ufffd\\ufffd\""},        /* overlong */
	    {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
	    {"\xff", "\"\\ufffd\""},
	    {"ok\xf4\x90\x80\x80", "\"ok\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jbuf b;
		struct json *j;

		jbuf_init(&b);
		jbuf_str(&b, cases[i].in);
		ck_assert_msg(!b.oom, "case %zu: oom", i);
		ck_assert_msg(strcmp(b.s, cases[i].out) == 0, "case %zu: got %s", i, b.s);
		/* And the result always parses. */
		j = json_parse(b.s, b.len);
		ck_assert_msg(j != NULL, "case %zu: output does not parse", i);
		json_free(j);
		jbuf_free(&b);
	}
}
END_TEST

/* jbuf_utf8: the same rules as jbuf_str's, raw: U+FFFD as its three bytes. */
START_TEST(test_jbuf_utf8)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"plain \n\033 ascii", 14, "plain \n\033 ascii"},
	    {"caf\xc3\xa9", 5, "caf\xc3\xa9"},
	    {"caf\xe9!", 5, "caf\xef\xbf\xbd!"},
	    {"\xc3(", 2, "\xef\xbf\xbd("},
	    {"a\0b", 3, "a\xef\xbf\xbd" "b"},
	    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xe2\x82", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
	    {"", 0, ""},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jbuf b;

		jbuf_init(&b);
		jbuf_raw(&b, "");
		jbuf_utf8(&b, cases[i].in, cases[i].len);
		ck_assert_msg(!b.oom, "case %zu: oom", i);
		ck_assert_msg(strcmp(b.s, cases[i].out) == 0, "case %zu: got %s", i, b.s);
		jbuf_free(&b);
	}
}
END_TEST

/* utf8_trim drops a character cut in half at the end, nothing else. */
START_TEST(test_utf8_trim)
{
	static const struct {
		const char *s;
		size_t want;
	} cases[] = {
	    {"", 0},
	    {"abc", 3},
	    {"ab\xc3", 2},
	    {"ab\xc3\xa9", 4},
	    {"a\xe2\x82", 1},
	    {"a\xe2", 1},
	    {"a\xe2\x82\xac", 4},
	    {"a\xf0\x9f\x98", 1},
	    {"a\xf0\x9f\x98\x80", 5},
	    {"a\x80", 2},          /* a stray continuation byte: not a cut */
	    {"\x80\x80\x80\x80", 4},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(utf8_trim(cases[i].s, strlen(cases[i].s)) == cases[i].want,
		    "case %zu: %zu, want %zu", i, utf8_trim(cases[i].s, strlen(cases[i].s)),
		    cases[i].want);
}
END_TEST

START_TEST(test_numbers)
{
	static const struct {
		const char *text;
		double v;
	} cases[] = {
		{"0", 0}, {"-0", 0}, {"1.5", 1.5}, {"-2e3", -2000},
		{"1E+2", 100}, {"25e-1", 2.5}, {"1e-400", 0},
		{"18446744073709551615", 18446744073709551615.0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct json *j = json_parse(cases[i].text,
		    strlen(cases[i].text));

		ck_assert_msg(j != NULL, "%s refused", cases[i].text);
		ck_assert_int_eq(j->type, JSON_NUMBER);
		ck_assert_msg(j->num == cases[i].v, "%s gave %g",
		    cases[i].text, j->num);
		json_free(j);
	}
}
END_TEST

static Suite *
json_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tp = tcase_create("parse");
	TCase *tb = tcase_create("build");

	tcase_add_loop_test(tp, test_parse_table, 0,
	    (int)(sizeof(parse_cases) / sizeof(parse_cases[0])));
	tcase_add_test(tp, test_parse_values);
	tcase_add_test(tp, test_parse_len_bounds);
	tcase_add_test(tp, test_depth_limit);
	tcase_add_test(tp, test_large_array);
	tcase_add_test(tp, test_unicode_escapes);
	tcase_add_test(tp, test_numbers);
	suite_add_tcase(s, tp);
	tcase_add_test(tb, test_builder);
	tcase_add_test(tb, test_round_trip);
	tcase_add_test(tb, test_builder_invalid_utf8);
	tcase_add_test(tb, test_jbuf_utf8);
	tcase_add_test(tb, test_utf8_trim);
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(json_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
