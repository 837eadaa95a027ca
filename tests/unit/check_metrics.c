#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "addr.h"
#include "config.h"
#include "json.h"
#include "metrics.h"
#include "statuspage.h"

struct exchange {
	struct event_base *base;
	struct evbuffer *in;
	bool done, timed_out;
};

static char *render(const struct metrics_snapshot *);
static void crafted(struct metrics_snapshot *, struct metrics_server *);
static int free_port(void);
static int listening_socket(int *);
static void client_read(struct bufferevent *, void *);
static void client_event(struct bufferevent *, short, void *);
static void client_timeout(evutil_socket_t, short, void *);
static char *http_exchange(struct event_base *, int, const char *);
static void fill_cb(struct metrics_snapshot *, void *);

/* The snapshot of test_render_exact, with a label value that needs escaping. */
static void
crafted(struct metrics_snapshot *snap, struct metrics_server *servers)
{
	memset(snap, 0, sizeof(*snap));
	snap->active = COLOR_GREEN;
	snap->requests[COLOR_BLUE][0] = 1;
	snap->requests[COLOR_BLUE][1] = 2;
	snap->requests[COLOR_BLUE][2] = 3;
	snap->requests[COLOR_BLUE][3] = 4;
	snap->requests[COLOR_BLUE][4] = 5;
	snap->requests[COLOR_BLUE][5] = 6;
	snap->requests[COLOR_GREEN][2] = 7;
	snap->inflight[COLOR_BLUE] = 3;
	snap->latency[COLOR_BLUE][0] = 2;
	snap->latency[COLOR_BLUE][5] = 1;
	snap->latency[COLOR_BLUE][13] = 1;
	snap->latency_sum_us[COLOR_BLUE] = 21234567;
	snap->latency[COLOR_GREEN][1] = 7;
	snap->latency_sum_us[COLOR_GREEN] = 14000;
	snap->upstream_errors[COLOR_BLUE][UPSTREAM_ERR_CONNECT] = 1;
	snap->upstream_errors[COLOR_BLUE][UPSTREAM_ERR_TIMEOUT] = 2;
	snap->upstream_errors[COLOR_BLUE][UPSTREAM_ERR_INVALID] = 3;
	snap->upstream_errors[COLOR_BLUE][UPSTREAM_ERR_RESET] = 4;
	snap->switches[TRIGGER_MANUAL] = 5;
	snap->switches[TRIGGER_AUTO_ROLLBACK] = 2;
	snap->switch_refused = 3;
	snap->h2_connections = 8;
	snap->h2_streams = 9;
	snap->h2_goaway[H2_GOAWAY_RAPID_RESET] = 1;
	snap->h2_goaway[H2_GOAWAY_SHUTDOWN] = 2;
	servers[0] = (struct metrics_server){COLOR_BLUE, "127.0.0.1:9001", true};
	servers[1] = (struct metrics_server){COLOR_GREEN, "we\"ird\\addr\nx", false};
	snap->servers = servers;
	snap->nservers = 2;
}

static const char expected_text[] =
    "# HELP cutover_active_color 1 for the color that takes the traffic, 0 for the other.\n"
    "# TYPE cutover_active_color gauge\n"
    "cutover_active_color{color=\"blue\"} 0\n"
    "cutover_active_color{color=\"green\"} 1\n"
    "# HELP cutover_ramp_weight_ratio Share of new requests each color takes (0 to 1); between 0 and 1 only during a ramp.\n"
    "# TYPE cutover_ramp_weight_ratio gauge\n"
    "cutover_ramp_weight_ratio{color=\"blue\"} 0.0000\n"
    "cutover_ramp_weight_ratio{color=\"green\"} 1.0000\n"
    "# HELP cutover_requests_total Finished requests by color and status class (code=\"none\": no response was sent).\n"
    "# TYPE cutover_requests_total counter\n"
    "cutover_requests_total{color=\"blue\",code=\"1xx\"} 2\n"
    "cutover_requests_total{color=\"blue\",code=\"2xx\"} 3\n"
    "cutover_requests_total{color=\"blue\",code=\"3xx\"} 4\n"
    "cutover_requests_total{color=\"blue\",code=\"4xx\"} 5\n"
    "cutover_requests_total{color=\"blue\",code=\"5xx\"} 6\n"
    "cutover_requests_total{color=\"blue\",code=\"none\"} 1\n"
    "cutover_requests_total{color=\"green\",code=\"1xx\"} 0\n"
    "cutover_requests_total{color=\"green\",code=\"2xx\"} 7\n"
    "cutover_requests_total{color=\"green\",code=\"3xx\"} 0\n"
    "cutover_requests_total{color=\"green\",code=\"4xx\"} 0\n"
    "cutover_requests_total{color=\"green\",code=\"5xx\"} 0\n"
    "cutover_requests_total{color=\"green\",code=\"none\"} 0\n"
    "# HELP cutover_inflight_requests Requests in flight by color.\n"
    "# TYPE cutover_inflight_requests gauge\n"
    "cutover_inflight_requests{color=\"blue\"} 3\n"
    "cutover_inflight_requests{color=\"green\"} 0\n"
    "# HELP cutover_server_up 1 when the health checks find the server up, 0 when down.\n"
    "# TYPE cutover_server_up gauge\n"
    "cutover_server_up{color=\"blue\",server=\"127.0.0.1:9001\"} 1\n"
    "cutover_server_up{color=\"green\",server=\"we\\\"ird\\\\addr\\nx\"} 0\n"
    "# HELP cutover_switches_total Switches by trigger (manual switch, manual rollback, automatic rollback).\n"
    "# TYPE cutover_switches_total counter\n"
    "cutover_switches_total{trigger=\"manual\"} 5\n"
    "cutover_switches_total{trigger=\"rollback\"} 0\n"
    "cutover_switches_total{trigger=\"auto-rollback\"} 2\n"
    "# HELP cutover_switch_refused_total Switches refused (unhealthy target, failed smoke test, vetoed, generation mismatch).\n"
    "# TYPE cutover_switch_refused_total counter\n"
    "cutover_switch_refused_total 3\n"
    "# HELP cutover_request_duration_seconds Time to answer a request, by color.\n"
    "# TYPE cutover_request_duration_seconds histogram\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.001\"} 2\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.0025\"} 2\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.005\"} 2\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.01\"} 2\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.025\"} 2\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.05\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.1\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.25\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"0.5\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"1\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"2.5\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"5\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"10\"} 3\n"
    "cutover_request_duration_seconds_bucket{color=\"blue\",le=\"+Inf\"} 4\n"
    "cutover_request_duration_seconds_sum{color=\"blue\"} 21.234567\n"
    "cutover_request_duration_seconds_count{color=\"blue\"} 4\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.001\"} 0\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.0025\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.005\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.01\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.025\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.05\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.1\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.25\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"0.5\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"1\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"2.5\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"5\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"10\"} 7\n"
    "cutover_request_duration_seconds_bucket{color=\"green\",le=\"+Inf\"} 7\n"
    "cutover_request_duration_seconds_sum{color=\"green\"} 0.014\n"
    "cutover_request_duration_seconds_count{color=\"green\"} 7\n"
    "# HELP cutover_upstream_errors_total Failed exchanges with upstream servers by color and kind.\n"
    "# TYPE cutover_upstream_errors_total counter\n"
    "cutover_upstream_errors_total{color=\"blue\",kind=\"connect\"} 1\n"
    "cutover_upstream_errors_total{color=\"blue\",kind=\"timeout\"} 2\n"
    "cutover_upstream_errors_total{color=\"blue\",kind=\"invalid\"} 3\n"
    "cutover_upstream_errors_total{color=\"blue\",kind=\"reset\"} 4\n"
    "cutover_upstream_errors_total{color=\"blue\",kind=\"local\"} 0\n"
    "cutover_upstream_errors_total{color=\"green\",kind=\"connect\"} 0\n"
    "cutover_upstream_errors_total{color=\"green\",kind=\"timeout\"} 0\n"
    "cutover_upstream_errors_total{color=\"green\",kind=\"invalid\"} 0\n"
    "cutover_upstream_errors_total{color=\"green\",kind=\"reset\"} 0\n"
    "cutover_upstream_errors_total{color=\"green\",kind=\"local\"} 0\n"
    "# HELP cutover_h2_connections_total HTTP/2 client connections accepted.\n"
    "# TYPE cutover_h2_connections_total counter\n"
    "cutover_h2_connections_total 8\n"
    "# HELP cutover_h2_streams_total HTTP/2 streams (requests) of clients.\n"
    "# TYPE cutover_h2_streams_total counter\n"
    "cutover_h2_streams_total 9\n"
    "# HELP cutover_h2_goaway_total GOAWAYs sent to HTTP/2 clients, by reason.\n"
    "# TYPE cutover_h2_goaway_total counter\n"
    "cutover_h2_goaway_total{reason=\"rapid_reset\"} 1\n"
    "cutover_h2_goaway_total{reason=\"continuation_flood\"} 0\n"
    "cutover_h2_goaway_total{reason=\"settings_flood\"} 0\n"
    "cutover_h2_goaway_total{reason=\"ping_flood\"} 0\n"
    "cutover_h2_goaway_total{reason=\"header_list\"} 0\n"
    "cutover_h2_goaway_total{reason=\"stream_limit\"} 0\n"
    "cutover_h2_goaway_total{reason=\"stall\"} 0\n"
    "cutover_h2_goaway_total{reason=\"protocol_error\"} 0\n"
    "cutover_h2_goaway_total{reason=\"shutdown\"} 2\n"
    "cutover_h2_goaway_total{reason=\"idle\"} 0\n";

/* Renders snap into a NUL-terminated string the caller frees. */
static char *
render(const struct metrics_snapshot *snap)
{
	struct evbuffer *b = evbuffer_new();
	size_t n;
	char *text;

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(metrics_render(b, snap), 0);
	n = evbuffer_get_length(b);
	text = malloc(n + 1);
	ck_assert_ptr_nonnull(text);
	evbuffer_remove(b, text, n);
	text[n] = '\0';
	evbuffer_free(b);
	return text;
}

START_TEST(test_render_exact)
{
	struct metrics_snapshot snap;
	struct metrics_server servers[2];
	char *text;
	size_t i;

	crafted(&snap, servers);
	text = render(&snap);
	if (strcmp(text, expected_text) != 0) {
		for (i = 0; text[i] == expected_text[i]; i++)
			;
		ck_abort_msg("render differs at byte %zu:\n--- got\n%.120s\n--- want\n%.120s", i,
		    text + (i > 40 ? i - 40 : 0), expected_text + (i > 40 ? i - 40 : 0));
	}
	free(text);
}
END_TEST

/*
 * Every line is a comment (# HELP / # TYPE) or `name{labels} value`; every
 * sample belongs to a family declared by a # TYPE line before it; each
 * histogram's buckets are cumulative with _count equal to +Inf.
 */
START_TEST(test_render_structure)
{
	static const char *const families[] = {"cutover_active_color", "cutover_ramp_weight_ratio", "cutover_requests_total",
	    "cutover_inflight_requests", "cutover_server_up", "cutover_switches_total",
	    "cutover_switch_refused_total", "cutover_request_duration_seconds", "cutover_upstream_errors_total",
	    "cutover_h2_connections_total", "cutover_h2_streams_total", "cutover_h2_goaway_total"};
	const size_t nfam = sizeof(families) / sizeof(families[0]);
	struct metrics_snapshot snap;
	struct metrics_server servers[2];
	regex_t sample, comment;
	regmatch_t m[2];
	char *text, *line, *save = NULL, name[128], typed[16][128], type[16] = "", fam[160];
	uint64_t prev = 0, inf = 0, v;
	size_t ntyped = 0, i, nbuckets = 0, nhist = 0;
	unsigned c, b;

	crafted(&snap, servers);
	/* fill the histograms to make cumulation visible */
	for (c = 0; c < COLOR_COUNT; c++)
		for (b = 0; b < HISTOGRAM_BUCKETS; b++)
			snap.latency[c][b] = 10 * c + b + 1;
	ck_assert_int_eq(regcomp(&sample,
	    "^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
	    "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})? (-?[0-9]+(\\.[0-9]+)?|\\+Inf)$",
	    REG_EXTENDED), 0);
	ck_assert_int_eq(regcomp(&comment, "^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) [^\n]+$", REG_EXTENDED), 0);
	text = render(&snap);
	ck_assert(text[strlen(text) - 1] == '\n');
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#') {
			ck_assert_msg(regexec(&comment, line, 0, NULL, 0) == 0, "bad comment: %s", line);
			if (strncmp(line, "# TYPE ", 7) == 0) {
				ck_assert_uint_lt(ntyped, 16);
				ck_assert_int_eq(sscanf(line + 7, "%127s %15s", typed[ntyped], type), 2);
				ntyped++;
			}
			continue;
		}
		ck_assert_msg(regexec(&sample, line, 2, m, 0) == 0, "bad sample line: %s", line);
		snprintf(name, sizeof(name), "%.*s", (int)(m[1].rm_eo - m[1].rm_so), line);
		/* a sample belongs to the family of the last # TYPE line */
		ck_assert_msg(ntyped > 0, "sample %s before any # TYPE", name);
		snprintf(fam, sizeof(fam), "%s", typed[ntyped - 1]);
		if (strcmp(type, "histogram") == 0 && strncmp(name, fam, strlen(fam)) == 0) {
			const char *suffix = name + strlen(fam);

			ck_assert_msg(strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 ||
			    strcmp(suffix, "_count") == 0, "sample %s in histogram %s", name, fam);
		} else {
			ck_assert_msg(strcmp(name, fam) == 0, "sample %s under # TYPE %s", name, fam);
		}
		v = strtoull(strrchr(line, ' ') + 1, NULL, 10);
		if (strcmp(name, "cutover_request_duration_seconds_bucket") == 0) {
			if (strstr(line, "le=\"0.001\"") != NULL)
				prev = 0;
			ck_assert_msg(v >= prev, "bucket not cumulative: %s", line);
			prev = v;
			nbuckets++;
			if (strstr(line, "le=\"+Inf\"") != NULL)
				inf = v;
		} else if (strcmp(name, "cutover_request_duration_seconds_count") == 0) {
			ck_assert_msg(v == inf, "_count %llu != +Inf bucket %llu", (unsigned long long)v,
			    (unsigned long long)inf);
			nhist++;
		}
	}
	ck_assert_uint_eq(nbuckets, COLOR_COUNT * HISTOGRAM_BUCKETS);
	ck_assert_uint_eq(nhist, COLOR_COUNT);
	/* green's +Inf is the sum of its buckets: 14 * 11 + (0 + ... + 13) */
	ck_assert_uint_eq(inf, 14 * 11 + 91);
	ck_assert_uint_eq(ntyped, nfam);
	for (i = 0; i < nfam; i++)
		ck_assert_str_eq(typed[i], families[i]);
	free(text);
	regfree(&sample);
	regfree(&comment);
}
END_TEST

/* A zero snapshot still names every color, code, trigger, kind and reason. */
START_TEST(test_render_empty)
{
	struct metrics_snapshot snap;
	char *text, line[128];
	unsigned i;

	memset(&snap, 0, sizeof(snap));
	text = render(&snap);
	ck_assert_ptr_nonnull(strstr(text, "cutover_active_color{color=\"blue\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_requests_total{color=\"green\",code=\"none\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_switches_total{trigger=\"rollback\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_upstream_errors_total{color=\"green\",kind=\"reset\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_request_duration_seconds_sum{color=\"green\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_h2_connections_total 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_h2_streams_total 0\n"));
	for (i = 0; i < H2_GOAWAY_REASONS; i++) {
		snprintf(line, sizeof(line), "cutover_h2_goaway_total{reason=\"%s\"} 0\n",
		    h2_goaway_reason_name((enum h2_goaway_reason)i));
		ck_assert_msg(strstr(text, line) != NULL, "no %s", line);
	}
	ck_assert_ptr_nonnull(strstr(text, "# TYPE cutover_server_up gauge\n# HELP"));
	free(text);
}
END_TEST

/* The fleet's metrics: only with a fleet, with the contract's names. */
START_TEST(test_render_fleet)
{
	struct metrics_snapshot snap;
	char *text;

	memset(&snap, 0, sizeof(snap));
	text = render(&snap);
	ck_assert_ptr_null(strstr(text, "cutover_fleet_"));
	free(text);
	snap.fleet = true;
	snap.fleet_connected = true;
	snap.fleet_nodes = 3;
	snap.fleet_converged = false;
	snap.fleet_apply[0] = 2;
	snap.fleet_apply[HISTOGRAM_BUCKETS - 1] = 1;
	snap.fleet_apply_sum_us = 2500;
	text = render(&snap);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE cutover_fleet_connected gauge\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_connected 1\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_nodes 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_converged 0\n"));
	ck_assert_ptr_nonnull(strstr(text, "# TYPE cutover_fleet_apply_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_apply_seconds_bucket{le=\"+Inf\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_apply_seconds_sum 0.0025\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_fleet_apply_seconds_count 3\n"));
	free(text);
}
END_TEST

/* During a ramp each color's share of new requests, from the basis points. */
START_TEST(test_render_ramp)
{
	struct metrics_snapshot snap;
	char *text;

	memset(&snap, 0, sizeof(snap));
	snap.active = COLOR_BLUE;
	snap.ramp_target = COLOR_GREEN;
	snap.ramp_weight_bp = 1000;
	text = render(&snap);
	ck_assert_ptr_nonnull(strstr(text, "cutover_ramp_weight_ratio{color=\"blue\"} 0.9000\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_ramp_weight_ratio{color=\"green\"} 0.1000\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_active_color{color=\"blue\"} 1\n"));
	free(text);
	snap.ramp_weight_bp = 0;
	text = render(&snap);
	ck_assert_ptr_nonnull(strstr(text, "cutover_ramp_weight_ratio{color=\"blue\"} 1.0000\n"));
	ck_assert_ptr_nonnull(strstr(text, "cutover_ramp_weight_ratio{color=\"green\"} 0.0000\n"));
	free(text);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(metrics_trigger_name(TRIGGER_MANUAL), "manual");
	ck_assert_str_eq(metrics_trigger_name(TRIGGER_ROLLBACK), "rollback");
	ck_assert_str_eq(metrics_trigger_name(TRIGGER_AUTO_ROLLBACK), "auto-rollback");
}
END_TEST

/* A port that was free a moment ago on 127.0.0.1. */
static int
free_port(void)
{
	int fd, port = listening_socket(&fd);

	close(fd);
	return port;
}

/* A socket listening on 127.0.0.1 on a kernel-chosen port; returns the port. */
static int
listening_socket(int *fdp)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*fdp = fd;
	return ntohs(sin.sin_port);
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct exchange *x = arg;

	evbuffer_add_buffer(x->in, bufferevent_get_input(bev));
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct exchange *x = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		evbuffer_add_buffer(x->in, bufferevent_get_input(bev));
		x->done = true;
		event_base_loopbreak(x->base);
	}
}

static void
client_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;

	(void)fd;
	(void)what;
	x->timed_out = true;
	event_base_loopbreak(x->base);
}

/*
 * Sends request to 127.0.0.1:port from a bufferevent on base (the server's
 * own base) and returns everything read until the server closes.
 */
static char *
http_exchange(struct event_base *base, int port, const char *request)
{
	struct exchange x = {base, evbuffer_new(), false, false};
	struct sockaddr_in sin;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	struct event *tmo = evtimer_new(base, client_timeout, &x);
	struct timeval tv = {5, 0};
	size_t n;
	char *out;

	ck_assert_ptr_nonnull(x.in);
	ck_assert_ptr_nonnull(bev);
	ck_assert_ptr_nonnull(tmo);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	bufferevent_setcb(bev, client_read, NULL, client_event, &x);
	ck_assert_int_eq(bufferevent_enable(bev, EV_READ), 0);
	ck_assert_int_eq(bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)), 0);
	bufferevent_write(bev, request, strlen(request));
	evtimer_add(tmo, &tv);
	while (!x.done && !x.timed_out)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_msg(!x.timed_out, "no answer within 5 s to %s", request);
	event_free(tmo);
	bufferevent_free(bev);
	n = evbuffer_get_length(x.in);
	out = malloc(n + 1);
	ck_assert_ptr_nonnull(out);
	evbuffer_remove(x.in, out, n);
	out[n] = '\0';
	evbuffer_free(x.in);
	return out;
}

static void
fill_cb(struct metrics_snapshot *snap, void *arg)
{
	int *calls = arg;

	(*calls)++;
	snap->active = COLOR_GREEN;
	snap->requests[COLOR_GREEN][2] = 4242;
	snap->switch_refused = 17;
}

START_TEST(test_endpoint)
{
	struct event_base *base = event_base_new();
	struct metrics *m;
	struct addr a;
	char spec[32], *r, *body;
	int port = free_port(), calls = 0;

	ck_assert_ptr_nonnull(base);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	ck_assert_int_eq(addr_parse(spec, &a, NULL, 0), 0);
	m = metrics_new(base, &a, fill_cb, &calls);
	ck_assert_ptr_nonnull(m);

	r = http_exchange(base, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "GET /metrics: %.80s", r);
	ck_assert_ptr_nonnull(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
	body = strstr(r, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert(strncmp(body + 4, "# HELP cutover_active_color ", 28) == 0);
	ck_assert_ptr_nonnull(strstr(body, "\ncutover_active_color{color=\"green\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncutover_requests_total{color=\"green\",code=\"2xx\"} 4242\n"));
	ck_assert_ptr_nonnull(strstr(body, "\ncutover_switch_refused_total 17\n"));
	ck_assert_int_eq(calls, 1);
	free(r);

	/* a query string does not change the path */
	r = http_exchange(base, port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.0 200 ", 13) == 0 || strncmp(r, "HTTP/1.1 200 ", 13) == 0, "%.80s", r);
	ck_assert_int_eq(calls, 2);
	free(r);

	r = http_exchange(base, port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "GET /: %.80s", r);
	ck_assert_ptr_nonnull(strstr(r, "href=\"/metrics\""));
	free(r);

	r = http_exchange(base, port, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "GET /nope: %.80s", r);
	free(r);

	r = http_exchange(base, port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "POST /metrics: %.80s", r);
	ck_assert_ptr_nonnull(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
	free(r);

	r = http_exchange(base, port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "HEAD /metrics: %.80s", r);
	body = strstr(r, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_msg(body[4] == '\0', "HEAD answered with a body: %.40s", body + 4);
	ck_assert_ptr_null(strstr(r, "Content-Length: 0\r\n"));
	free(r);
	ck_assert_int_eq(calls, 3); /* /metrics twice and HEAD; not /, 404 or 405 */

	metrics_free(m);
	event_base_free(base);
}
END_TEST

static void
status_cb(struct jbuf *b, void *arg)
{
	int *calls = arg;

	(*calls)++;
	jbuf_raw(b, "{\"ok\":true,\"active\":\"green\"}");
}

/* With the status page on: / is the page with its CSP, /status.json the JSON. */
START_TEST(test_status_page)
{
	struct event_base *base = event_base_new();
	struct metrics *m;
	struct addr a;
	char spec[32], *r, *body;
	int port = free_port(), calls = 0, scrapes = 0;

	ck_assert_ptr_nonnull(base);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	ck_assert_int_eq(addr_parse(spec, &a, NULL, 0), 0);
	m = metrics_new(base, &a, fill_cb, &scrapes);
	ck_assert_ptr_nonnull(m);

	/* Not yet on: no /status.json. */
	r = http_exchange(base, port, "GET /status.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 404 ", 13) == 0, "GET /status.json: %.80s", r);
	free(r);

	metrics_set_status(m, status_cb, &calls);
	r = http_exchange(base, port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "GET /: %.80s", r);
	ck_assert_ptr_nonnull(strstr(r, "\r\nContent-Type: text/html; charset=utf-8\r\n"));
	ck_assert_ptr_nonnull(strstr(r, "\r\nContent-Security-Policy: default-src 'none'; script-src 'sha256-"));
	ck_assert_ptr_nonnull(strstr(r, "\r\nX-Content-Type-Options: nosniff\r\n"));
	ck_assert_ptr_null(strstr(r, "unsafe-inline"));
	body = strstr(r, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_uint_eq(strlen(body + 4), statuspage_html_len);
	ck_assert(memcmp(body + 4, statuspage_html, statuspage_html_len) == 0);
	ck_assert_ptr_nonnull(strstr(body, "/status.json"));
	free(r);

	r = http_exchange(base, port, "GET /status.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "GET /status.json: %.80s", r);
	ck_assert_ptr_nonnull(strstr(r, "\r\nContent-Type: application/json\r\n"));
	ck_assert_ptr_nonnull(strstr(r, "\r\nCache-Control: no-store\r\n"));
	body = strstr(r, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	ck_assert_str_eq(body + 4, "{\"ok\":true,\"active\":\"green\"}");
	free(r);
	ck_assert_int_eq(calls, 1);

	r = http_exchange(base, port, "POST /status.json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "POST /status.json: %.80s", r);
	free(r);
	r = http_exchange(base, port, "DELETE / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 405 ", 13) == 0, "DELETE /: %.80s", r);
	free(r);
	ck_assert_int_eq(calls, 1);

	/* /metrics is unchanged. */
	r = http_exchange(base, port, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
	ck_assert_msg(strncmp(r, "HTTP/1.1 200 ", 13) == 0, "GET /metrics: %.80s", r);
	free(r);
	ck_assert_int_eq(scrapes, 1);

	metrics_free(m);
	event_base_free(base);
}
END_TEST

/* Headers past the limit get an error and the connection closed, not a scrape. */
START_TEST(test_endpoint_header_limit)
{
	struct event_base *base = event_base_new();
	struct metrics *m;
	struct addr a;
	char spec[32], *req, *r;
	int port = free_port(), calls = 0;
	size_t n = 20000;

	ck_assert_ptr_nonnull(base);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	ck_assert_int_eq(addr_parse(spec, &a, NULL, 0), 0);
	m = metrics_new(base, &a, fill_cb, &calls);
	ck_assert_ptr_nonnull(m);
	req = malloc(n + 64);
	ck_assert_ptr_nonnull(req);
	strcpy(req, "GET /metrics HTTP/1.1\r\nX-Big: ");
	memset(req + strlen(req), 'a', n);
	strcpy(req + strlen("GET /metrics HTTP/1.1\r\nX-Big: ") + n, "\r\n\r\n");
	r = http_exchange(base, port, req);
	ck_assert_msg(strstr(r, " 200 ") == NULL, "oversized headers answered: %.80s", r);
	ck_assert_int_eq(calls, 0);
	free(r);
	free(req);
	metrics_free(m);
	event_base_free(base);
}
END_TEST

START_TEST(test_bind_failure)
{
	struct event_base *base = event_base_new();
	struct addr a;
	char spec[32];
	int fd, port = listening_socket(&fd), calls = 0;

	ck_assert_ptr_nonnull(base);
	snprintf(spec, sizeof(spec), "127.0.0.1:%d", port);
	ck_assert_int_eq(addr_parse(spec, &a, NULL, 0), 0);
	ck_assert_ptr_null(metrics_new(base, &a, fill_cb, &calls));
	close(fd);
	event_base_free(base);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");
	TCase *te = tcase_create("endpoint");

	tcase_add_test(tc, test_render_exact);
	tcase_add_test(tc, test_render_structure);
	tcase_add_test(tc, test_render_empty);
	tcase_add_test(tc, test_render_fleet);
	tcase_add_test(tc, test_render_ramp);
	tcase_add_test(tc, test_names);
	suite_add_tcase(s, tc);
	tcase_set_timeout(te, 30);
	tcase_add_test(te, test_endpoint);
	tcase_add_test(te, test_status_page);
	tcase_add_test(te, test_endpoint_header_limit);
	tcase_add_test(te, test_bind_failure);
	suite_add_tcase(s, te);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
