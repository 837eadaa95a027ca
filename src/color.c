#include "autoconf.h"

#include <string.h>

#include "color.h"

static const char *const color_names[COLOR_COUNT] = {"blue", "green"};

const char *
color_name(enum color c)
{
	return (unsigned)c < COLOR_COUNT ? color_names[c] : "?";
}

int
color_parse(const char *s, enum color *out)
{
	int i;

	for (i = 0; i < COLOR_COUNT; i++) {
		if (strcmp(s, color_names[i]) == 0) {
			*out = (enum color)i;
			return 0;
		}
	}
	return -1;
}
