#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/keyvalq_struct.h>

#include "addr.h"
#include "config.h"
#include "fdlimit.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "statuspage.h"

/* A scraper gets this long to send its request and read the answer. */
#define METRICS_HTTP_TIMEOUT_S 10
#define METRICS_MAX_HEADERS 8192
#define METRICS_MAX_BODY 1024
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics {
	struct evhttp *http;
	struct fdlimit_backoff *backoff;
	metrics_snapshot_cb fill;
	void *arg;
	metrics_status_cb status; /* the status page, when set */
	void *status_arg;
};

static int fmt_seconds(char *, size_t, uint64_t);
static int label_escape(struct evbuffer *, const char *);
static int render_header(struct evbuffer *, const char *, const char *, const char *);
static int render_fleet(struct evbuffer *out, const struct metrics_snapshot *snap);
static int render_histogram(struct evbuffer *, const struct metrics_snapshot *, enum color);
static void metrics_request(struct evhttp_request *, void *);
static void metrics_reply(struct evhttp_request *, int, const char *, const char *, struct evbuffer *);
static void status_page(struct metrics *, struct evhttp_request *, const char *, struct evbuffer *);
static int metrics_listen_socket(const struct addr *);
static void metrics_accept_error(struct evconnlistener *, void *);

/*
 * evhttp hands its own struct evhttp to the listener's error callback, not
 * ours: the daemon has one metrics listener, on the main thread, found here.
 */
static struct metrics *metrics_current;

static const char *const upstream_error_names[UPSTREAM_ERR_KINDS] = {
	"connect", "timeout", "invalid", "reset", "local",
};
static const char *const trigger_names[TRIGGER_COUNT] = {"manual", "rollback", "auto-rollback"};
/* requests[color][i]: index 0 is "no response", 1..5 the status classes */
static const char *const code_names[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
static const unsigned code_order[6] = {1, 2, 3, 4, 5, 0};

const char *
metrics_trigger_name(enum switch_trigger t)
{
	return (unsigned)t < TRIGGER_COUNT ? trigger_names[t] : "?";
}

int
metrics_render(struct evbuffer *out, const struct metrics_snapshot *snap)
{
	int c, bad = 0;
	unsigned i, k;
	size_t s;

	bad |= render_header(out, "cutover_active_color", "gauge",
	    "1 for the color that takes the traffic, 0 for the other.");
	for (c = 0; c < COLOR_COUNT; c++)
		bad |= evbuffer_add_printf(out, "cutover_active_color{color=\"%s\"} %d\n", color_name(c),
		    c == (int)snap->active) < 0;

	bad |= render_header(out, "cutover_ramp_weight_ratio", "gauge",
	    "Share of new requests each color takes (0 to 1); between 0 and 1 only during a ramp.");
	for (c = 0; c < COLOR_COUNT; c++) {
		unsigned bp = c == (int)snap->active ? 10000 : 0;

		if (snap->ramp_weight_bp > 0)
			bp = c == (int)snap->ramp_target ? snap->ramp_weight_bp : 10000 - snap->ramp_weight_bp;
		bad |= evbuffer_add_printf(out, "cutover_ramp_weight_ratio{color=\"%s\"} %u.%04u\n",
		    color_name(c), bp / 10000, bp % 10000) < 0;
	}

	bad |= render_header(out, "cutover_requests_total", "counter",
	    "Finished requests by color and status class (code=\"none\": no response was sent).");
	for (c = 0; c < COLOR_COUNT; c++)
		for (i = 0; i < 6; i++) {
			k = code_order[i];
			bad |= evbuffer_add_printf(out,
			    "cutover_requests_total{color=\"%s\",code=\"%s\"} %" PRIu64 "\n", color_name(c),
			    code_names[k], snap->requests[c][k]) < 0;
		}

	bad |= render_header(out, "cutover_inflight_requests", "gauge", "Requests in flight by color.");
	for (c = 0; c < COLOR_COUNT; c++)
		bad |= evbuffer_add_printf(out, "cutover_inflight_requests{color=\"%s\"} %" PRIu64 "\n",
		    color_name(c), snap->inflight[c]) < 0;

	bad |= render_header(out, "cutover_server_up", "gauge",
	    "1 when the health checks find the server up, 0 when down.");
	for (s = 0; s < snap->nservers; s++) {
		const struct metrics_server *sv = &snap->servers[s];

		bad |= evbuffer_add_printf(out, "cutover_server_up{color=\"%s\",server=\"",
		    color_name(sv->color)) < 0;
		bad |= label_escape(out, sv->address != NULL ? sv->address : "");
		bad |= evbuffer_add_printf(out, "\"} %d\n", sv->up ? 1 : 0) < 0;
	}

	bad |= render_header(out, "cutover_switches_total", "counter",
	    "Switches by trigger (manual switch, manual rollback, automatic rollback).");
	for (i = 0; i < TRIGGER_COUNT; i++)
		bad |= evbuffer_add_printf(out, "cutover_switches_total{trigger=\"%s\"} %" PRIu64 "\n",
		    trigger_names[i], snap->switches[i]) < 0;

	bad |= render_header(out, "cutover_switch_refused_total", "counter",
	    "Switches refused (unhealthy target, failed smoke test, vetoed, generation mismatch).");
	bad |= evbuffer_add_printf(out, "cutover_switch_refused_total %" PRIu64 "\n",
	    snap->switch_refused) < 0;

	bad |= render_header(out, "cutover_request_duration_seconds", "histogram",
	    "Time to answer a request, by color.");
	for (c = 0; c < COLOR_COUNT; c++)
		bad |= render_histogram(out, snap, c);

	bad |= render_header(out, "cutover_upstream_errors_total", "counter",
	    "Failed exchanges with upstream servers by color and kind.");
	for (c = 0; c < COLOR_COUNT; c++)
		for (i = 0; i < UPSTREAM_ERR_KINDS; i++)
			bad |= evbuffer_add_printf(out,
			    "cutover_upstream_errors_total{color=\"%s\",kind=\"%s\"} %" PRIu64 "\n",
			    color_name(c), upstream_error_names[i], snap->upstream_errors[c][i]) < 0;

	bad |= render_header(out, "cutover_h2_connections_total", "counter",
	    "HTTP/2 client connections accepted.");
	bad |= evbuffer_add_printf(out, "cutover_h2_connections_total %" PRIu64 "\n",
	    snap->h2_connections) < 0;
	bad |= render_header(out, "cutover_h2_streams_total", "counter",
	    "HTTP/2 streams (requests) of clients.");
	bad |= evbuffer_add_printf(out, "cutover_h2_streams_total %" PRIu64 "\n", snap->h2_streams) < 0;
	bad |= render_header(out, "cutover_h2_goaway_total", "counter",
	    "GOAWAYs sent to HTTP/2 clients, by reason.");
	for (i = 0; i < H2_GOAWAY_REASONS; i++)
		bad |= evbuffer_add_printf(out, "cutover_h2_goaway_total{reason=\"%s\"} %" PRIu64 "\n",
		    h2_goaway_reason_name((enum h2_goaway_reason)i), snap->h2_goaway[i]) < 0;

	if (snap->fleet)
		bad |= render_fleet(out, snap);
	return bad ? -1 : 0;
}

/* Only with a fleet group (DESIGN.md "A fleet of cutoverd on etcd"). */
static int
render_fleet(struct evbuffer *out, const struct metrics_snapshot *snap)
{
	uint64_t cum = 0;
	char le[32], sum[32];
	unsigned i;
	int bad = 0;

	bad |= render_header(out, "cutover_fleet_connected", "gauge",
	    "1 while etcd answers this node, 0 while it is unreachable.");
	bad |= evbuffer_add_printf(out, "cutover_fleet_connected %d\n", snap->fleet_connected ? 1 : 0) < 0;
	bad |= render_header(out, "cutover_fleet_nodes", "gauge",
	    "Live nodes of the fleet (presence in etcd under a lease).");
	bad |= evbuffer_add_printf(out, "cutover_fleet_nodes %u\n", snap->fleet_nodes) < 0;
	bad |= render_header(out, "cutover_fleet_converged", "gauge",
	    "1 when every live node applied the fleet state this node applied.");
	bad |= evbuffer_add_printf(out, "cutover_fleet_converged %d\n", snap->fleet_converged ? 1 : 0) < 0;
	bad |= render_header(out, "cutover_fleet_apply_seconds", "histogram",
	    "Time from a change's etcd commit to its application on this node.");
	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cum += snap->fleet_apply[i];
		if (i < HISTOGRAM_BUCKETS - 1)
			bad |= fmt_seconds(le, sizeof(le), histogram_bounds_us[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		bad |= evbuffer_add_printf(out, "cutover_fleet_apply_seconds_bucket{le=\"%s\"} %" PRIu64 "\n",
		    le, cum) < 0;
	}
	bad |= fmt_seconds(sum, sizeof(sum), snap->fleet_apply_sum_us);
	bad |= evbuffer_add_printf(out, "cutover_fleet_apply_seconds_sum %s\n", sum) < 0;
	bad |= evbuffer_add_printf(out, "cutover_fleet_apply_seconds_count %" PRIu64 "\n", cum) < 0;
	return bad;
}

struct metrics *
metrics_new(struct event_base *base, const struct addr *listen, metrics_snapshot_cb fill, void *arg)
{
	struct metrics *m;
	struct evhttp_bound_socket *bound;
	struct evconnlistener *lst;
	char what[128];
	int fd = -1;

	if ((m = calloc(1, sizeof(*m))) == NULL) {
		log_err("%s: out of memory", __func__);
		return NULL;
	}
	m->fill = fill;
	m->arg = arg;
	if ((fd = metrics_listen_socket(listen)) == -1) {
		log_err("%s: metrics listen %s: %s", __func__, listen->text, strerror(errno));
		goto fail;
	}
	if ((m->http = evhttp_new(base)) == NULL) {
		log_err("%s: evhttp_new failed", __func__);
		goto fail;
	}
	/* A scraper that stalls or floods must not hold the daemon's main thread. */
	evhttp_set_timeout(m->http, METRICS_HTTP_TIMEOUT_S);
	evhttp_set_max_headers_size(m->http, METRICS_MAX_HEADERS);
	evhttp_set_max_body_size(m->http, METRICS_MAX_BODY);
	/* Let every method reach metrics_request, which answers 405 (not evhttp's 501). */
	evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	    EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
	    EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(m->http, metrics_request, m);
	/* evhttp owns fd from here on (closed by evhttp_free). */
	if ((bound = evhttp_accept_socket_with_handle(m->http, fd)) == NULL) {
		log_err("%s: metrics listen %s: cannot accept", __func__, listen->text);
		goto fail;
	}
	fd = -1;
	/* evhttp sets no error callback: libevent would retry a failing
	 * accept() (EMFILE) at once, forever. Back off instead. */
	lst = evhttp_bound_socket_get_listener(bound);
	snprintf(what, sizeof(what), "metrics listen %s", listen->text);
	if ((m->backoff = fdlimit_backoff_new(base, lst, what, NULL, NULL)) == NULL) {
		log_err("%s: out of memory", __func__);
		goto fail;
	}
	evconnlistener_set_error_cb(lst, metrics_accept_error);
	metrics_current = m;
	log_info("metrics on http://%s/metrics", listen->text);
	return m;
fail:
	if (fd != -1)
		close(fd);
	if (m->http != NULL)
		evhttp_free(m->http);
	free(m);
	return NULL;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	if (metrics_current == m)
		metrics_current = NULL;
	fdlimit_backoff_free(m->backoff);
	evhttp_free(m->http);
	free(m);
}

void
metrics_set_status(struct metrics *m, metrics_status_cb status, void *arg)
{
	m->status = status;
	m->status_arg = arg;
}

static void
metrics_accept_error(struct evconnlistener *lst, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	if (metrics_current != NULL && metrics_current->http == arg) {
		fdlimit_backoff_start(metrics_current->backoff, err);
		return;
	}
	evconnlistener_disable(lst);
	log_err("%s: accept: %s; metrics listener disabled", __func__, evutil_socket_error_to_string(err));
}

/* Non-blocking, close-on-exec listening socket on a; -1 with errno set. */
static int
metrics_listen_socket(const struct addr *a)
{
	int fd, on = 1, saved;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1)
		goto fail;
	if (a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1)
		goto fail;
	if (listen(fd, 64) == -1)
		goto fail;
	return fd;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static void
metrics_request(struct evhttp_request *req, void *arg)
{
	struct metrics *m = arg;
	struct metrics_snapshot snap;
	struct evbuffer *body = NULL;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);

	if (path == NULL || path[0] == '\0')
		path = "/";
	if ((body = evbuffer_new()) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	if (strcmp(path, "/metrics") != 0 && strcmp(path, "/") != 0 &&
	    (m->status == NULL || strcmp(path, "/status.json") != 0)) {
		evbuffer_add_printf(body, "not found; metrics are at /metrics\n");
		metrics_reply(req, HTTP_NOTFOUND, "Not Found", "text/plain; charset=utf-8", body);
	} else if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		evbuffer_add_printf(body, "method not allowed\n");
		metrics_reply(req, 405, "Method Not Allowed", "text/plain; charset=utf-8", body);
	} else if (m->status != NULL && strcmp(path, "/metrics") != 0) {
		status_page(m, req, path, body);
	} else if (strcmp(path, "/") == 0) {
		evbuffer_add_printf(body, "<html><head><title>cutover</title></head><body>"
		    "<h1>cutover</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n");
		metrics_reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", body);
	} else {
		memset(&snap, 0, sizeof(snap));
		if (m->fill != NULL)
			m->fill(&snap, m->arg);
		if (metrics_render(body, &snap) == -1) {
			log_warn("%s: out of memory rendering metrics", __func__);
			evhttp_send_error(req, HTTP_INTERNAL, NULL);
		} else {
			metrics_reply(req, HTTP_OK, "OK", METRICS_CONTENT_TYPE, body);
		}
	}
	evbuffer_free(body);
}

/* GET / (the page) or /status.json with the status page on. */
static void
status_page(struct metrics *m, struct evhttp_request *req, const char *path, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	const char *csp;
	struct jbuf b;

	if (strcmp(path, "/") == 0) {
		if ((csp = statuspage_csp()) == NULL ||
		    evbuffer_add_reference(body, statuspage_html, statuspage_html_len, NULL, NULL) == -1) {
			evhttp_send_error(req, HTTP_INTERNAL, NULL);
			return;
		}
		evhttp_add_header(h, "Content-Security-Policy", csp);
		evhttp_add_header(h, "X-Frame-Options", "DENY");
		evhttp_add_header(h, "Referrer-Policy", "no-referrer");
		metrics_reply(req, HTTP_OK, "OK", "text/html; charset=utf-8", body);
		return;
	}
	jbuf_init(&b);
	m->status(&b, m->status_arg);
	if (b.oom || evbuffer_add(body, b.s, b.len) == -1) {
		log_warn("%s: out of memory rendering /status.json", __func__);
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
	} else {
		metrics_reply(req, HTTP_OK, "OK", "application/json", body);
	}
	jbuf_free(&b);
}

/* HEAD gets the GET headers and no body (evhttp itself would send the body). */
static void
metrics_reply(struct evhttp_request *req, int code, const char *reason, const char *ctype,
    struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	char len[32];

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
		snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
		evhttp_add_header(h, "Content-Length", len);
		evhttp_send_reply(req, code, reason, NULL);
	} else {
		evhttp_send_reply(req, code, reason, body);
	}
}

static int
render_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
	return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type) < 0;
}

static int
render_histogram(struct evbuffer *out, const struct metrics_snapshot *snap, enum color c)
{
	const char *cn = color_name(c);
	uint64_t cum = 0;
	char le[32], sum[32];
	unsigned i;
	int bad = 0;

	for (i = 0; i < HISTOGRAM_BUCKETS; i++) {
		cum += snap->latency[c][i];
		if (i < HISTOGRAM_BUCKETS - 1)
			bad |= fmt_seconds(le, sizeof(le), histogram_bounds_us[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		bad |= evbuffer_add_printf(out,
		    "cutover_request_duration_seconds_bucket{color=\"%s\",le=\"%s\"} %" PRIu64 "\n", cn, le,
		    cum) < 0;
	}
	bad |= fmt_seconds(sum, sizeof(sum), snap->latency_sum_us[c]);
	bad |= evbuffer_add_printf(out, "cutover_request_duration_seconds_sum{color=\"%s\"} %s\n", cn,
	    sum) < 0;
	bad |= evbuffer_add_printf(out, "cutover_request_duration_seconds_count{color=\"%s\"} %" PRIu64 "\n",
	    cn, cum) < 0;
	return bad;
}

/*
 * Microseconds as exact decimal seconds, trailing zeros trimmed: 2500 ->
 * "0.0025", 10000000 -> "10", 1234567 -> "1.234567". No floating point, so
 * le labels are stable and _sum loses nothing. Returns 0, or 1 if truncated.
 */
static int
fmt_seconds(char *buf, size_t len, uint64_t us)
{
	char frac[8];
	int n, i;

	snprintf(frac, sizeof(frac), "%06" PRIu64, us % 1000000);
	for (i = 5; i >= 0 && frac[i] == '0'; i--)
		frac[i] = '\0';
	if (frac[0] == '\0')
		n = snprintf(buf, len, "%" PRIu64, us / 1000000);
	else
		n = snprintf(buf, len, "%" PRIu64 ".%s", us / 1000000, frac);
	return n < 0 || (size_t)n >= len;
}

/*
 * Appends s escaped as a label value: backslash, double quote and line feed
 * as the text format requires. Returns 0, or 1 on allocation failure.
 */
static int
label_escape(struct evbuffer *out, const char *s)
{
	size_t n;
	int bad = 0;

	while (*s != '\0') {
		n = strcspn(s, "\\\"\n");
		if (n > 0)
			bad |= evbuffer_add(out, s, n) == -1;
		s += n;
		switch (*s) {
		case '\\':
			bad |= evbuffer_add(out, "\\\\", 2) == -1;
			break;
		case '"':
			bad |= evbuffer_add(out, "\\\"", 2) == -1;
			break;
		case '\n':
			bad |= evbuffer_add(out, "\\n", 2) == -1;
			break;
		default:
			continue; /* end of string */
		}
		s++;
	}
	return bad;
}
