#ifndef CUTOVER_SRC_COLOR_H
#define CUTOVER_SRC_COLOR_H

/*
 * The two colors of a blue/green deployment: the vocabulary every module
 * shares (configuration, switcher, metrics, state file, workers). Pure: no
 * I/O, no libraries.
 */

enum color { COLOR_BLUE = 0, COLOR_GREEN = 1 };
#define COLOR_COUNT 2

/* "blue" / "green"; "?" for a value out of range. */
const char *color_name(enum color c);
/* Parses "blue" or "green". Returns 0 or -1. */
int color_parse(const char *s, enum color *out) __attribute__((warn_unused_result));

#endif
