#include "autoconf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_scan.h"

/*
 * The token rules follow libconfig 1.5's scanner.l closely enough to find
 * every integer token: names are [A-Za-z*][-A-Za-z0-9_*]*, strings are
 * double-quoted with backslash escapes, a number starts with a digit, or a
 * sign or '.' followed by one. Anything else is a single punctuation byte.
 */

static bool is_digit(char c);
static bool is_hex(char c);
static bool is_name_start(char c);
static bool is_name(char c);
static bool int_fits(const char *p, size_t n);

size_t
config_scan_ints(const char *text, size_t len, config_scan_fn *fn, void *arg)
{
	size_t i = 0, found = 0;
	int line = 1;

	while (i < len) {
		char c = text[i];

		if (c == '\n') {
			line++;
			i++;
		} else if (c == '#' || (c == '/' && i + 1 < len && text[i + 1] == '/')) {
			while (i < len && text[i] != '\n')
				i++;
		} else if (c == '/' && i + 1 < len && text[i + 1] == '*') {
			for (i += 2; i < len && !(text[i] == '*' && i + 1 < len &&
			    text[i + 1] == '/'); i++)
				if (text[i] == '\n')
					line++;
			i = i < len ? i + 2 : len;
		} else if (c == '"') {
			for (i++; i < len && text[i] != '"'; i++) {
				if (text[i] == '\\' && i + 1 < len)
					i++;
				if (text[i] == '\n')
					line++;
			}
			i++;
		} else if (is_name_start(c)) {
			while (i < len && is_name(text[i]))
				i++;
		} else if (is_digit(c) || ((c == '-' || c == '+' || c == '.') &&
		    i + 1 < len && (is_digit(text[i + 1]) || text[i + 1] == '.'))) {
			size_t start = i, end;
			bool hex = false, real = false;

			if (c == '-' || c == '+')
				i++;
			if (i + 1 < len && text[i] == '0' &&
			    (text[i + 1] == 'x' || text[i + 1] == 'X')) {
				hex = true;
				for (i += 2; i < len && is_hex(text[i]); i++)
					;
			} else {
				for (; i < len && (is_digit(text[i]) || text[i] == '.' ||
				    text[i] == 'e' || text[i] == 'E' ||
				    ((text[i] == '-' || text[i] == '+') &&
				    (text[i - 1] == 'e' || text[i - 1] == 'E'))); i++)
					if (!is_digit(text[i]))
						real = true;
			}
			end = i;
			if (i < len && text[i] == 'L')
				continue; /* 64-bit literal: libconfig keeps it whole */
			if (real || (hex && end - start <= 2))
				continue;
			if (!int_fits(text + start, end - start)) {
				found++;
				fn(arg, line, text + start, end - start);
			}
		} else {
			i++;
		}
	}
	return found;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_name_start(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '*';
}

static bool
is_name(char c)
{
	return is_name_start(c) || is_digit(c) || c == '-' || c == '_';
}

/* p is [+-]?digits or [+-]?0xHEX; true when it lies in INT32 range. */
static bool
int_fits(const char *p, size_t n)
{
	uint64_t v = 0, limit;
	bool neg = false;
	unsigned base = 10;
	size_t i = 0;

	if (p[0] == '-' || p[0] == '+') {
		neg = p[0] == '-';
		i++;
	}
	if (n - i > 2 && p[i] == '0' && (p[i + 1] == 'x' || p[i + 1] == 'X')) {
		base = 16;
		i += 2;
	}
	limit = neg ? UINT64_C(2147483648) : UINT64_C(2147483647);
	for (; i < n; i++) {
		unsigned d = is_digit(p[i]) ? (unsigned)(p[i] - '0') :
		    (unsigned)((p[i] | 0x20) - 'a' + 10);

		v = v * base + d;
		if (v > limit)
			return false;
	}
	return true;
}
