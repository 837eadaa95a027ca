#include "autoconf.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "color.h"
#include "guard.h"
#include "json.h"
#include "series.h"

static uint32_t delta32(uint64_t later, uint64_t earlier);
static void json_array(struct jbuf *b, const struct series *s, enum color c, size_t field);

void
series_init(struct series *s)
{
	memset(s, 0, sizeof(*s));
}

void
series_add(struct series *s, int64_t wall_ms, const struct guard_sample now[COLOR_COUNT])
{
	unsigned c;

	if (s->primed) {
		for (c = 0; c < COLOR_COUNT; c++) {
			struct series_point *p = &s->pts[c][s->head];
			double p99 = guard_p99_us(now[c].latency, s->prev[c].latency);

			p->requests = delta32(now[c].requests, s->prev[c].requests);
			p->errors = delta32(now[c].errors, s->prev[c].errors);
			p->p99_us = p99 >= (double)UINT32_MAX ? UINT32_MAX : (uint32_t)p99;
		}
		s->head = (s->head + 1) % SERIES_LEN;
		if (s->count < SERIES_LEN)
			s->count++;
		s->last_wall_ms = wall_ms;
	}
	memcpy(s->prev, now, sizeof(s->prev));
	s->primed = true;
}

void
series_json(const struct series *s, struct jbuf *b)
{
	unsigned c;

	jbuf_printf(b, "{\"interval_s\":1,\"capacity\":%d,\"end_ms\":", SERIES_LEN);
	if (s->count > 0)
		jbuf_printf(b, "%" PRId64, s->last_wall_ms);
	else
		jbuf_raw(b, "null");
	for (c = 0; c < COLOR_COUNT; c++) {
		jbuf_printf(b, ",\"%s\":{\"requests\":", color_name((enum color)c));
		json_array(b, s, (enum color)c, 0);
		jbuf_raw(b, ",\"errors\":");
		json_array(b, s, (enum color)c, 1);
		jbuf_raw(b, ",\"p99_us\":");
		json_array(b, s, (enum color)c, 2);
		jbuf_raw(b, "}");
	}
	jbuf_raw(b, "}");
}

/* One field of color c's samples, oldest first, as a JSON array. */
static void
json_array(struct jbuf *b, const struct series *s, enum color c, size_t field)
{
	size_t i, k = (s->head + SERIES_LEN - s->count) % SERIES_LEN;

	jbuf_raw(b, "[");
	for (i = 0; i < s->count; i++, k = (k + 1) % SERIES_LEN) {
		const struct series_point *p = &s->pts[c][k];
		uint32_t v = field == 0 ? p->requests : field == 1 ? p->errors : p->p99_us;

		jbuf_printf(b, i ? ",%" PRIu32 : "%" PRIu32, v);
	}
	jbuf_raw(b, "]");
}

static uint32_t
delta32(uint64_t later, uint64_t earlier)
{
	uint64_t d = later > earlier ? later - earlier : 0;

	return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}
