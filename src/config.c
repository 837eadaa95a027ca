#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <http_parser.h>
#include <libconfig.h>

#include "addr.h"
#include "config.h"
#include "config_scan.h"
#include "duration.h"
#include "log.h"

/* The build defines these from configure's directories; unit tests may not. */
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR "/run"
#endif

#define KEYPATH_MAX 256

/* Parsing context of one config_load() call: no globals, so loads may run
 * on any thread. */
struct ctx {
	struct config_errors *errs;
	const char *path;    /* the file given to config_load */
	char *dir;           /* its directory, for relative certificate paths */
	bool oom;
	const config_t *lc;  /* config_reload_check: the new file, for lines */
	/* Lines holding an integer libconfig wrapped (already reported). */
	struct scan_flag { const char *file; int line; long long wrapped; } *flags;
	size_t nflags;
};

/*
 * How a key's value is read and stored. Scalar kinds read one libconfig
 * setting into one field; KT_GROUP descends into a sub-table; KT_CUSTOM
 * hands the setting to the key's own parser (lists of groups, pools).
 */
enum ktype {
	KT_GROUP,
	KT_UINT,     /* unsigned */
	KT_INT,      /* int */
	KT_SIZE,     /* size_t */
	KT_REAL,     /* double, written as integer or float */
	KT_BOOL,     /* bool */
	KT_STRING,   /* char *, owned */
	KT_DURATION, /* uint64_t milliseconds from "250ms", "2s", ... */
	KT_COLOR,    /* enum color from "blue" / "green" */
	KT_LOGLEVEL, /* int (enum log_level) from "error" ... "debug" */
	KT_MODE,     /* unsigned from a string of octal digits */
	KT_ADDR,     /* struct addr from "ip:port" */
	KT_CUSTOM,
};

struct key;

/* Further validation once the type is right. May rewrite the field (path
 * resolution). Reports its own errors. */
typedef void key_check_fn(struct ctx *ctx, const config_setting_t *s,
    const char *path, void *field);
/* KT_CUSTOM: s is the setting or NULL when absent; parent is the enclosing
 * group or NULL when that group is absent too. */
typedef void key_parse_fn(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base);
typedef void key_free_fn(void *base);
typedef bool key_eq_fn(const void *a, const void *b);

struct key {
	const char *name;
	enum ktype type;
	size_t off;       /* of the field in the struct the table describes */
	const char *def;  /* default, written as in the file; NULL: unset/0 */
	double min, max;  /* inclusive range of numbers (durations: ms), if max > min */
	key_check_fn *check;
	bool reload;      /* a reload may change it */
	bool required;    /* must be present when its group is */
	const struct key *sub; /* KT_GROUP */
	bool has_present; /* KT_GROUP: a bool at .present says the group was written */
	size_t present;
	key_parse_fn *parse; /* KT_CUSTOM */
	key_free_fn *free;   /* KT_CUSTOM */
	key_eq_fn *eq;       /* KT_CUSTOM, when !reload */
};

/*
 * Every number has an upper bound, documented in cutover.conf(5): a value
 * past it would overflow or wrap somewhere at run time (a clock plus a
 * window, a count narrowed to 32 bits) rather than fail here. Durations in
 * milliseconds.
 */
#define MS_HOUR (3600.0 * 1000)
#define MS_DAY (24 * MS_HOUR)
#define MS_MAX_TIMEOUT MS_DAY        /* timeouts.*, drain, hooks, windows */
#define MS_MAX_SAFETY_WINDOW (30 * MS_DAY)
#define MS_MAX_CHECK MS_HOUR         /* health interval/timeout, smoke timeout */
#define LATENCY_FACTOR_MAX 1000.0
#define KEEPALIVE_MAX 100000 /* upstream.keepalive, besides "auto" */
#define SPLICE_MAX    (1ULL << 40) /* upstream.splice: 1 TiB, "never" in practice */

static void cerr(struct ctx *ctx, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void err_push(struct ctx *ctx, const char *file, int lineno,
    const char *msg);
static char *ctx_strdup(struct ctx *ctx, const char *s);
static void *ctx_calloc(struct ctx *ctx, size_t n, size_t size);
static void keypath(char *buf, const char *parent, const char *name);
static const struct key *key_find(const struct key *keys, const char *name);
static void parse_group(struct ctx *ctx, const config_setting_t *grp,
    const char *gpath, const struct key *keys, void *base);
static int parse_value(struct ctx *ctx, const struct key *k,
    const config_setting_t *s, const char *path, void *field);
static int convert_string(const struct key *k, const char *v, void *field,
    char *why, size_t whylen);
static void apply_default(const struct key *k, void *field);
static void keys_free(const struct key *keys, void *base);
static void keys_diff(struct ctx *ctx, const struct key *keys, const void *a,
    const void *b, const char *gpath, bool fixed);
static bool field_eq(const struct key *k, const void *fa, const void *fb);
static bool streq_null(const char *a, const char *b);
static bool is_token(const char *s);
static int resolve_path(struct ctx *ctx, char **field);
static void validate_whole(struct ctx *ctx, const config_t *lc, struct config *cfg);
static const config_setting_t *lookup_line(const config_t *lc, const char *a,
    const char *b);
static const config_setting_t *reload_line(const struct ctx *ctx, const char *path);
static int group_list(struct ctx *ctx, const config_setting_t *s,
    const char *path, const char *example, const struct key *keys, size_t size,
    void *arrp, size_t *np);
static void group_list_free(const struct key *keys, size_t size, void *arrp,
    size_t *np);
static void scan_literals(struct ctx *ctx, const config_t *lc, FILE *main);
static void scan_files(const config_setting_t *s, const char ***files,
    size_t *n, bool *oom);
static char *read_all(FILE *fp, size_t *len);
static config_scan_fn scan_hit;
static bool scan_flagged(const struct ctx *ctx, const config_setting_t *s,
    long long v);

static key_check_fn check_abs_path;
static key_check_fn check_http_path;
static key_check_fn check_readable;
static key_check_fn check_executable;
static key_check_fn check_socket_path;
static key_check_fn check_group_name;
static key_check_fn check_token;
static key_check_fn check_header_value;
static key_check_fn check_nonempty;
static key_check_fn check_tls_version;
static key_check_fn check_error_rate;
static key_check_fn check_latency_factor;
static key_check_fn check_ramp_by;
static key_check_fn check_ramp_cookie;

static key_parse_fn parse_listens;
static key_free_fn free_listens;
static key_eq_fn eq_listens;
static key_parse_fn parse_certs;
static key_free_fn free_certs;
static key_parse_fn parse_pools;
static void pool_tls_warn(struct ctx *ctx, const config_setting_t *m,
    const char *path, struct config *cfg, const struct config_pool *p);
static key_free_fn free_pools;
static key_parse_fn parse_servers;
static key_free_fn free_servers;
static key_parse_fn parse_smoke;
static key_free_fn free_smoke;
static key_parse_fn parse_headers;
static key_free_fn free_headers;
static key_parse_fn parse_cidrs;
static key_free_fn free_cidrs;
static key_parse_fn parse_trusted;
static key_free_fn free_trusted;
static void cidr_list(struct ctx *ctx, const config_setting_t *s, const char *path,
    struct addr_cidr **out, size_t *nout);
static key_parse_fn parse_keepalive;
static key_parse_fn parse_etcd;
static key_free_fn free_etcd;
static key_eq_fn eq_etcd;
static key_check_fn check_fleet_key;
static key_check_fn check_fleet_node;
static key_free_fn free_nothing;
static key_parse_fn parse_nameservers;
static key_free_fn free_nameservers;
static bool eq_nameservers(const void *a, const void *b);

/*
 * The key tables. Every key of cutover.conf(5) is one row here; keep the man
 * page and conf/cutover.conf in step with them.
 */
#define C(m) offsetof(struct config, m)
#define CERT(m) offsetof(struct config_tls_cert, m)
#define LSN(m) offsetof(struct config_listen, m)
#define POOL(m) offsetof(struct config_pool, m)
#define SMOKE(m) offsetof(struct config_smoke, m)
#define HDR(m) offsetof(struct config_header, m)
#define KEY(n, t, o, d) .name = (n), .type = (t), .off = (o), .def = (d)
#define RANGE(lo, hi) .min = (lo), .max = (hi)

static const struct key cert_keys[] = {
	{KEY("cert", KT_STRING, CERT(cert), NULL),
	    .check = check_readable, .required = true},
	{KEY("key", KT_STRING, CERT(key), NULL),
	    .check = check_readable, .required = true},
	{.name = NULL},
};

static const struct key listen_tls_keys[] = {
	{KEY("certs", KT_CUSTOM, 0, NULL), .parse = parse_certs,
	    .free = free_certs},
	{KEY("min_version", KT_STRING, LSN(tls_min_version), "TLSv1.2"),
	    .check = check_tls_version},
	{KEY("ciphers", KT_STRING, LSN(tls_ciphers), NULL),
	    .check = check_nonempty},
	{.name = NULL},
};

static const struct key listen_keys[] = {
	{KEY("address", KT_ADDR, LSN(addr), NULL),
	    .required = true},
	{KEY("tls", KT_GROUP, 0, NULL), .sub = listen_tls_keys},
	{KEY("proxy_protocol", KT_BOOL, LSN(proxy_protocol), "false")},
	/* No default here: it depends on 'tls' (parse_listens). */
	{KEY("http2", KT_BOOL, LSN(http2), NULL)},
	{.name = NULL},
};

static const struct key pool_tls_keys[] = {
	{KEY("verify", KT_BOOL, POOL(tls.verify), "true"),
	    .reload = true},
	{KEY("ca", KT_STRING, POOL(tls.ca), NULL),
	    .check = check_readable, .reload = true},
	{KEY("sni", KT_STRING, POOL(tls.sni), NULL),
	    .check = check_nonempty, .reload = true},
	{.name = NULL},
};

static const struct key pool_keys[] = {
	{KEY("servers", KT_CUSTOM, 0, NULL), .reload = true,
	    .parse = parse_servers, .free = free_servers},
	{KEY("tls", KT_GROUP, 0, NULL), .reload = true, .sub = pool_tls_keys,
	    .has_present = true,
	    .present = POOL(tls.enabled)},
	{.name = NULL},
};

static const struct key health_keys[] = {
	{KEY("path", KT_STRING, C(health.path), "/healthz"),
	    .check = check_http_path, .reload = true},
	{KEY("interval", KT_DURATION, C(health.interval_ms), "2s"),
	    RANGE(1, MS_MAX_CHECK), .reload = true},
	{KEY("timeout", KT_DURATION, C(health.timeout_ms), "1s"),
	    RANGE(1, MS_MAX_CHECK), .reload = true},
	{KEY("rise", KT_UINT, C(health.rise), "2"), RANGE(1, 1000),
	    .reload = true},
	{KEY("fall", KT_UINT, C(health.fall), "3"), RANGE(1, 1000),
	    .reload = true},
	{KEY("expect_status", KT_INT, C(health.expect_status), "200"),
	    RANGE(100, 599), .reload = true},
	{.name = NULL},
};

static const struct key switch_keys[] = {
	{KEY("min_healthy", KT_UINT, C(sw.min_healthy), "1"), RANGE(0, 100000),
	    .reload = true},
	{KEY("drain_timeout", KT_DURATION, C(sw.drain_timeout_ms), "30s"),
	    RANGE(0, MS_MAX_TIMEOUT), .reload = true},
	{KEY("safety_window", KT_DURATION, C(sw.safety_window_ms), "5m"),
	    RANGE(0, MS_MAX_SAFETY_WINDOW), .reload = true},
	{KEY("ramp_step", KT_DURATION, C(sw.ramp_step_ms), "1m"),
	    RANGE(1, MS_MAX_SAFETY_WINDOW), .reload = true},
	{KEY("ramp_cookie", KT_STRING, C(sw.ramp_cookie), "cutover_bucket"),
	    .check = check_ramp_cookie, .reload = true},
	{KEY("ramp_by", KT_STRING, C(sw.ramp_by), "cookie"),
	    .check = check_ramp_by, .reload = true},
	{.name = NULL},
};

static const struct key auto_rollback_keys[] = {
	{KEY("enabled", KT_BOOL, C(auto_rollback.enabled), "true"),
	    .reload = true},
	{KEY("error_rate", KT_REAL, C(auto_rollback.error_rate), "0.05"),
	    .check = check_error_rate, .reload = true},
	{KEY("min_requests", KT_UINT, C(auto_rollback.min_requests), "50"),
	    RANGE(1, 1e9), .reload = true},
	{KEY("window", KT_DURATION, C(auto_rollback.window_ms), "30s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("latency_factor", KT_REAL, C(auto_rollback.latency_factor), "0"),
	    .check = check_latency_factor, .reload = true},
	{.name = NULL},
};

static const struct key header_keys[] = {
	{KEY("name", KT_STRING, HDR(name), NULL),
	    .check = check_token, .required = true},
	{KEY("value", KT_STRING, HDR(value), NULL),
	    .check = check_header_value, .required = true},
	{.name = NULL},
};

static const struct key smoke_keys[] = {
	{KEY("method", KT_STRING, SMOKE(method), "GET"),
	    .check = check_token},
	{KEY("path", KT_STRING, SMOKE(path), NULL),
	    .check = check_http_path, .required = true},
	{KEY("headers", KT_CUSTOM, 0, NULL), .parse = parse_headers,
	    .free = free_headers},
	{KEY("expect_status", KT_INT, SMOKE(expect_status), "200"),
	    RANGE(100, 599)},
	{KEY("expect_body", KT_STRING, SMOKE(expect_body), NULL)},
	{KEY("timeout", KT_DURATION, SMOKE(timeout_ms), "2s"),
	    RANGE(1, MS_MAX_CHECK)},
	{.name = NULL},
};

static const struct key preview_keys[] = {
	{KEY("header", KT_STRING, C(preview.header), NULL),
	    .check = check_token, .reload = true, .required = true},
	{KEY("from", KT_CUSTOM, 0, NULL), .reload = true, .parse = parse_cidrs,
	    .free = free_cidrs},
	{.name = NULL},
};

static const struct key hooks_keys[] = {
	{KEY("pre_switch", KT_STRING, C(hooks.pre_switch), NULL),
	    .check = check_executable, .reload = true},
	{KEY("post_switch", KT_STRING, C(hooks.post_switch), NULL),
	    .check = check_executable, .reload = true},
	{KEY("rollback", KT_STRING, C(hooks.rollback), NULL),
	    .check = check_executable, .reload = true},
	{KEY("window_end", KT_STRING, C(hooks.window_end), NULL),
	    .check = check_executable, .reload = true},
	{KEY("timeout", KT_DURATION, C(hooks.timeout_ms), "30s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{.name = NULL},
};

static const struct key control_keys[] = {
	{KEY("socket", KT_STRING, C(control.socket), RUNSTATEDIR "/cutover/control.sock"),
	    .check = check_socket_path},
	{KEY("mode", KT_MODE, C(control.mode), "0660")},
	{KEY("group", KT_STRING, C(control.group), NULL),
	    .check = check_group_name},
	{KEY("admin_group", KT_STRING, C(control.admin_group), NULL),
	    .check = check_group_name, .reload = true},
	{.name = NULL},
};

static const struct key metrics_keys[] = {
	{KEY("listen", KT_ADDR, C(metrics.listen), "127.0.0.1:9180")},
	{.name = NULL},
};

static const struct key limits_keys[] = {
	/* http-parser refuses a head past HTTP_MAX_HEADER_SIZE (80 KiB as
	 * Debian builds it): a larger limit would answer valid heads 400. */
	{KEY("header_size", KT_SIZE, C(limits.header_size), "16384"),
	    RANGE(1024, HTTP_MAX_HEADER_SIZE), .reload = true},
	{KEY("header_count", KT_UINT, C(limits.header_count), "100"),
	    RANGE(1, 10000), .reload = true},
	{KEY("max_connections", KT_UINT, C(limits.max_connections), "10000"),
	    RANGE(1, 1000000), .reload = true},
	{KEY("h2_max_streams", KT_UINT, C(limits.h2_max_streams), "100"),
	    RANGE(1, 10000), .reload = true},
	{.name = NULL},
};

static const struct key timeouts_keys[] = {
	{KEY("client_header", KT_DURATION, C(timeouts.client_header_ms), "10s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("client_idle", KT_DURATION, C(timeouts.client_idle_ms), "60s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("connect", KT_DURATION, C(timeouts.connect_ms), "5s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("response", KT_DURATION, C(timeouts.response_ms), "60s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("upstream_idle", KT_DURATION, C(timeouts.upstream_idle_ms), "30s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{KEY("handshake", KT_DURATION, C(timeouts.handshake_ms), "10s"),
	    RANGE(1, MS_MAX_TIMEOUT), .reload = true},
	{.name = NULL},
};

static const struct key upstream_keys[] = {
	{KEY("keepalive", KT_CUSTOM, 0, NULL), .reload = true, .parse = parse_keepalive,
	    .free = free_nothing},
	{KEY("purge_delay", KT_DURATION, C(upstream.purge_delay_ms), "5s"),
	    RANGE(1, MS_HOUR), .reload = true},
	{KEY("splice", KT_SIZE, C(upstream.splice), "262144"), RANGE(0, SPLICE_MAX), .reload = true},
	{.name = NULL},
};

static const struct key fleet_tls_keys[] = {
	{KEY("ca", KT_STRING, C(fleet.tls_ca), NULL), .check = check_abs_path},
	{KEY("cert", KT_STRING, C(fleet.tls_cert), NULL), .check = check_abs_path},
	{KEY("key", KT_STRING, C(fleet.tls_key), NULL), .check = check_abs_path},
	{.name = NULL},
};

static const struct key fleet_keys[] = {
	{KEY("etcd", KT_CUSTOM, 0, NULL), .parse = parse_etcd, .free = free_etcd,
	    .eq = eq_etcd},
	{KEY("key", KT_STRING, C(fleet.key), NULL), .check = check_fleet_key,
	    .required = true},
	{KEY("node", KT_STRING, C(fleet.node), NULL), .check = check_fleet_node},
	{KEY("lease", KT_DURATION, C(fleet.lease_ms), "10s"), RANGE(2000, MS_HOUR)},
	{KEY("timeout", KT_DURATION, C(fleet.timeout_ms), "2s"), RANGE(100, MS_HOUR)},
	{KEY("tls", KT_GROUP, 0, NULL), .sub = fleet_tls_keys},
	{.name = NULL},
};

static const struct key dns_keys[] = {
	{KEY("refresh", KT_DURATION, C(dns.refresh_ms), "30s"),
	    RANGE(1000, MS_HOUR)},
	{KEY("timeout", KT_DURATION, C(dns.timeout_ms), "5s"),
	    RANGE(100, 60000)},
	{KEY("allow_unresolved", KT_BOOL, C(dns.allow_unresolved), "false")},
	{KEY("nameservers", KT_CUSTOM, 0, NULL), .parse = parse_nameservers,
	    .free = free_nameservers, .eq = eq_nameservers},
	{.name = NULL},
};

static const struct key top_keys[] = {
	{KEY("listen", KT_CUSTOM, 0, NULL), .reload = true, .parse = parse_listens,
	    .free = free_listens, .eq = eq_listens},
	{KEY("workers", KT_UINT, C(workers), "0"), RANGE(0, 256)},
	{KEY("log_level", KT_LOGLEVEL, C(log_level), "info"), .reload = true},
	{KEY("initial", KT_COLOR, C(initial), "blue"), .reload = true},
	{KEY("state_file", KT_STRING, C(state_file), LOCALSTATEDIR "/lib/cutover/state"),
	    .check = check_abs_path},
	{KEY("access_log", KT_STRING, C(access_log), NULL), .check = check_abs_path},
	{KEY("pools", KT_CUSTOM, 0, NULL), .reload = true, .parse = parse_pools,
	    .free = free_pools},
	{KEY("health", KT_GROUP, 0, NULL), .reload = true, .sub = health_keys},
	{KEY("switch", KT_GROUP, 0, NULL), .reload = true, .sub = switch_keys},
	{KEY("auto_rollback", KT_GROUP, 0, NULL), .reload = true,
	    .sub = auto_rollback_keys},
	{KEY("smoke", KT_CUSTOM, 0, NULL), .reload = true, .parse = parse_smoke,
	    .free = free_smoke},
	{KEY("preview", KT_GROUP, 0, NULL), .reload = true,
	    .sub = preview_keys},
	{KEY("trusted_proxies", KT_CUSTOM, 0, NULL), .reload = true,
	    .parse = parse_trusted, .free = free_trusted},
	{KEY("hooks", KT_GROUP, 0, NULL), .reload = true, .sub = hooks_keys},
	{KEY("control", KT_GROUP, 0, NULL), .reload = true,
	    .sub = control_keys},
	{KEY("metrics", KT_GROUP, 0, NULL), .sub = metrics_keys,
	    .has_present = true, .present = C(metrics.enabled)},
	{KEY("limits", KT_GROUP, 0, NULL), .reload = true, .sub = limits_keys},
	{KEY("timeouts", KT_GROUP, 0, NULL), .reload = true,
	    .sub = timeouts_keys},
	{KEY("upstream", KT_GROUP, 0, NULL), .reload = true,
	    .sub = upstream_keys},
	{KEY("fleet", KT_GROUP, 0, NULL), .sub = fleet_keys,
	    .has_present = true, .present = C(fleet.enabled)},
	{KEY("dns", KT_GROUP, 0, NULL), .sub = dns_keys},
	{.name = NULL},
};

static const char *const log_level_names[] = {"error", "warn", "info", "debug"};

/* ---- errors and allocation ---------------------------------------------- */

static void
cerr(struct ctx *ctx, const config_setting_t *s, const char *fmt, ...)
{
	char msg[1024];
	const char *file = NULL;
	int lineno = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (s != NULL) {
		file = config_setting_source_file(s);
		lineno = (int)config_setting_source_line(s);
	}
	err_push(ctx, file, lineno, msg);
}

/* Appends "FILE:LINE: msg" (or "FILE: msg" without a line). file is NULL for
 * the main file; libconfig names an @include'd one as written, relative to
 * the include directory, which is the main file's. */
static void
err_push(struct ctx *ctx, const char *file, int lineno, const char *msg)
{
	char **msgs;
	char *line;
	int rc;

	if (file == NULL)
		file = ctx->path;
	if (file[0] != '/' && file != ctx->path && ctx->dir != NULL &&
	    strcmp(ctx->dir, ".") != 0)
		rc = lineno > 0 ?
		    asprintf(&line, "%s/%s:%d: %s", ctx->dir, file, lineno, msg) :
		    asprintf(&line, "%s/%s: %s", ctx->dir, file, msg);
	else
		rc = lineno > 0 ? asprintf(&line, "%s:%d: %s", file, lineno, msg) :
		    asprintf(&line, "%s: %s", file, msg);
	if (rc == -1) {
		ctx->oom = true;
		return;
	}
	msgs = realloc(ctx->errs->msgs, (ctx->errs->n + 1) * sizeof(*msgs));
	if (msgs == NULL) {
		free(line);
		ctx->oom = true;
		return;
	}
	msgs[ctx->errs->n++] = line;
	ctx->errs->msgs = msgs;
}

static char *
ctx_strdup(struct ctx *ctx, const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		ctx->oom = true;
	return p;
}

static void *
ctx_calloc(struct ctx *ctx, size_t n, size_t size)
{
	void *p = calloc(n == 0 ? 1 : n, size);

	if (p == NULL)
		ctx->oom = true;
	return p;
}

void
config_errors_print(const struct config_errors *errs, FILE *fp)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		fprintf(fp, "%s\n", errs->msgs[i]);
}

void
config_errors_add(struct config_errors *errs, const char *fmt, ...)
{
	char **msgs, *line;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (rc < 0)
		return;
	if ((msgs = realloc(errs->msgs, (errs->n + 1) * sizeof(*msgs))) == NULL) {
		free(line);
		return;
	}
	msgs[errs->n++] = line;
	errs->msgs = msgs;
}

void
config_errors_free(struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		free(errs->msgs[i]);
	free(errs->msgs);
	errs->msgs = NULL;
	errs->n = 0;
}

/* ---- the table walker --------------------------------------------------- */

static void
keypath(char *buf, const char *parent, const char *name)
{
	if (parent[0] == '\0')
		snprintf(buf, KEYPATH_MAX, "%s", name);
	else
		snprintf(buf, KEYPATH_MAX, "%s.%s", parent, name);
}

static const struct key *
key_find(const struct key *keys, const char *name)
{
	for (; keys->name != NULL; keys++) {
		if (strcmp(keys->name, name) == 0)
			return keys;
	}
	return NULL;
}

/*
 * Applies the defaults of keys to base, then reads grp (NULL when the group
 * is absent: defaults only) over them. Every problem is reported; parsing
 * goes on after one so that a single run lists them all.
 */
static void
parse_group(struct ctx *ctx, const config_setting_t *grp, const char *gpath,
    const struct key *keys, void *base)
{
	const struct key *k;
	char path[KEYPATH_MAX];
	int i, n;

	if (grp != NULL) {
		n = config_setting_length(grp);
		for (i = 0; i < n; i++) {
			const config_setting_t *m = config_setting_get_elem(grp, (unsigned)i);
			const char *name = config_setting_name(m);

			if (name == NULL || key_find(keys, name) != NULL)
				continue;
			if (gpath[0] == '\0')
				cerr(ctx, m, "unknown key '%s'", name);
			else
				cerr(ctx, m, "unknown key '%s' in '%s'", name, gpath);
		}
	}
	for (k = keys; k->name != NULL; k++) {
		void *field = (char *)base + k->off;
		const config_setting_t *s = NULL;

		if (grp != NULL)
			s = config_setting_get_member(grp, k->name);
		keypath(path, gpath, k->name);
		switch (k->type) {
		case KT_GROUP:
			if (s != NULL && !config_setting_is_group(s)) {
				cerr(ctx, s, "'%s' must be a group { ... }", path);
				s = NULL;
			}
			if (k->has_present)
				*(bool *)((char *)base + k->present) = s != NULL;
			parse_group(ctx, s, path, k->sub, base);
			continue;
		case KT_CUSTOM:
			k->parse(ctx, s, grp, path, base);
			continue;
		default:
			break;
		}
		apply_default(k, field);
		if (s == NULL) {
			if (k->required && grp != NULL)
				cerr(ctx, grp, "'%s' is required", path);
			continue;
		}
		if (parse_value(ctx, k, s, path, field) == 0 && k->check != NULL)
			k->check(ctx, s, path, field);
	}
}

/* Converts a string-valued kind; shared by defaults and the file. */
static int
convert_string(const struct key *k, const char *v, void *field, char *why,
    size_t whylen)
{
	uint64_t ms;
	size_t i;

	switch (k->type) {
	case KT_DURATION:
		if (duration_parse(v, &ms) == -1) {
			snprintf(why, whylen, "invalid duration \"%s\" (use e.g. "
			    "\"250ms\", \"2s\", \"5m\")", v);
			return -1;
		}
		*(uint64_t *)field = ms;
		return 0;
	case KT_COLOR:
		if (color_parse(v, field) == -1) {
			snprintf(why, whylen, "must be \"blue\" or \"green\", not \"%s\"", v);
			return -1;
		}
		return 0;
	case KT_LOGLEVEL:
		for (i = 0; i < sizeof(log_level_names) / sizeof(log_level_names[0]); i++) {
			if (strcmp(v, log_level_names[i]) == 0) {
				*(int *)field = (int)i;
				return 0;
			}
		}
		snprintf(why, whylen, "must be \"error\", \"warn\", \"info\" or "
		    "\"debug\", not \"%s\"", v);
		return -1;
	case KT_MODE: {
		unsigned mode = 0;
		const char *p;

		for (p = v; *p >= '0' && *p <= '7'; p++)
			mode = mode * 8 + (unsigned)(*p - '0');
		if (p == v || *p != '\0' || p - v > 4 || mode > 0777) {
			snprintf(why, whylen, "must be octal digits like \"0660\", "
			    "not \"%s\"", v);
			return -1;
		}
		*(unsigned *)field = mode;
		return 0;
	}
	case KT_ADDR: {
		char err[128];

		if (addr_parse(v, field, err, sizeof(err)) == -1) {
			snprintf(why, whylen, "invalid address \"%s\": %s", v, err);
			return -1;
		}
		return 0;
	}
	default:
		snprintf(why, whylen, "internal error: not a string kind");
		return -1;
	}
}

/* Defaults are compile-time constants checked by the unit tests, so a
 * failure here is a bug in the table. */
static void
apply_default(const struct key *k, void *field)
{
	char why[256];

	if (k->type == KT_STRING) {
		free(*(char **)field);
		*(char **)field = NULL;
	}
	if (k->def == NULL)
		return;
	switch (k->type) {
	case KT_UINT:
		*(unsigned *)field = (unsigned)strtoul(k->def, NULL, 10);
		break;
	case KT_INT:
		*(int *)field = (int)strtol(k->def, NULL, 10);
		break;
	case KT_SIZE:
		*(size_t *)field = (size_t)strtoull(k->def, NULL, 10);
		break;
	case KT_REAL:
		*(double *)field = strtod(k->def, NULL);
		break;
	case KT_BOOL:
		*(bool *)field = strcmp(k->def, "true") == 0;
		break;
	case KT_STRING:
		/* On allocation failure the field stays NULL; the caller's
		 * validation of required values catches what matters. */
		*(char **)field = strdup(k->def);
		break;
	default:
		if (convert_string(k, k->def, field, why, sizeof(why)) == -1)
			abort();
		break;
	}
}

/* Reads one scalar setting into field. Returns 0, or -1 after reporting. */
static int
parse_value(struct ctx *ctx, const struct key *k, const config_setting_t *s,
    const char *path, void *field)
{
	int type = config_setting_type(s);
	union {
		uint64_t ms;
		unsigned u;
		int i;
		enum color color;
		struct addr addr;
	} tmp;
	char why[512], maxs[32];
	long long iv;

	switch (k->type) {
	case KT_UINT:
	case KT_INT:
	case KT_SIZE:
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			cerr(ctx, s, "'%s' must be an integer", path);
			return -1;
		}
		/* Read as 64 bits and checked against the range (every
		 * range fits the narrowest field) before narrowing. A plain
		 * literal past 32 bits was already wrapped by libconfig 1.5:
		 * config_scan_ints() reported its line, say nothing more. */
		iv = config_setting_get_int64(s);
		if (type == CONFIG_TYPE_INT && scan_flagged(ctx, s, iv))
			return -1;
		if (iv < (long long)k->min || iv > (long long)k->max) {
			cerr(ctx, s, "'%s' must be from %.0f to %.0f, not %lld", path,
			    k->min, k->max, iv);
			return -1;
		}
		if (k->type == KT_UINT)
			*(unsigned *)field = (unsigned)iv;
		else if (k->type == KT_INT)
			*(int *)field = (int)iv;
		else
			*(size_t *)field = (size_t)iv;
		return 0;
	case KT_REAL:
		if (type == CONFIG_TYPE_FLOAT) {
			*(double *)field = config_setting_get_float(s);
		} else if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
			*(double *)field = (double)config_setting_get_int64(s);
		} else {
			cerr(ctx, s, "'%s' must be a number", path);
			return -1;
		}
		return 0;
	case KT_BOOL:
		if (type != CONFIG_TYPE_BOOL) {
			cerr(ctx, s, "'%s' must be true or false", path);
			return -1;
		}
		*(bool *)field = config_setting_get_bool(s);
		return 0;
	default:
		break;
	}
	if (type != CONFIG_TYPE_STRING) {
		if (k->type == KT_DURATION)
			cerr(ctx, s, "'%s' must be a duration string like \"2s\"", path);
		else if (k->type == KT_MODE)
			cerr(ctx, s, "'%s' must be a string of octal digits like "
			    "\"0660\"", path);
		else
			cerr(ctx, s, "'%s' must be a string", path);
		return -1;
	}
	if (k->type == KT_STRING) {
		free(*(char **)field);
		*(char **)field = ctx_strdup(ctx, config_setting_get_string(s));
		return *(char **)field == NULL ? -1 : 0;
	}
	/* Into a temporary first: a rejected value leaves the default in
	 * place, so checks across keys do not report it a second time. */
	if (convert_string(k, config_setting_get_string(s), &tmp, why,
	    sizeof(why)) == -1) {
		cerr(ctx, s, "'%s': %s", path, why);
		return -1;
	}
	if (k->type == KT_DURATION && (double)tmp.ms < k->min) {
		if (k->min > 1) {
			duration_format((uint64_t)k->min, maxs, sizeof(maxs));
			cerr(ctx, s, "'%s' must be at least %s, not \"%s\"", path, maxs,
			    config_setting_get_string(s));
		} else {
			cerr(ctx, s, "'%s' must be greater than 0", path);
		}
		return -1;
	}
	if (k->type == KT_DURATION && (double)tmp.ms > k->max) {
		duration_format((uint64_t)k->max, maxs, sizeof(maxs));
		cerr(ctx, s, "'%s' must be at most %s, not \"%s\"", path, maxs,
		    config_setting_get_string(s));
		return -1;
	}
	switch (k->type) {
	case KT_DURATION:
		*(uint64_t *)field = tmp.ms;
		break;
	case KT_COLOR:
		*(enum color *)field = tmp.color;
		break;
	case KT_LOGLEVEL:
		*(int *)field = tmp.i;
		break;
	case KT_MODE:
		*(unsigned *)field = tmp.u;
		break;
	default:
		*(struct addr *)field = tmp.addr;
		break;
	}
	return 0;
}

static void
keys_free(const struct key *keys, void *base)
{
	const struct key *k;

	for (k = keys; k->name != NULL; k++) {
		void *field = (char *)base + k->off;

		if (k->type == KT_STRING) {
			free(*(char **)field);
			*(char **)field = NULL;
		} else if (k->type == KT_GROUP) {
			keys_free(k->sub, base);
		} else if (k->type == KT_CUSTOM) {
			k->free(base);
		}
	}
}

static bool
streq_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool
field_eq(const struct key *k, const void *fa, const void *fb)
{
	switch (k->type) {
	case KT_UINT:
	case KT_MODE:
		return *(const unsigned *)fa == *(const unsigned *)fb;
	case KT_INT:
	case KT_LOGLEVEL:
		return *(const int *)fa == *(const int *)fb;
	case KT_SIZE:
		return *(const size_t *)fa == *(const size_t *)fb;
	case KT_REAL:
		return !(*(const double *)fa < *(const double *)fb ||
		    *(const double *)fa > *(const double *)fb);
	case KT_BOOL:
		return *(const bool *)fa == *(const bool *)fb;
	case KT_DURATION:
		return *(const uint64_t *)fa == *(const uint64_t *)fb;
	case KT_COLOR:
		return *(const enum color *)fa == *(const enum color *)fb;
	case KT_ADDR:
		return strcmp(((const struct addr *)fa)->text,
		    ((const struct addr *)fb)->text) == 0;
	case KT_STRING:
		return streq_null(*(char *const *)fa, *(char *const *)fb);
	default:
		return true;
	}
}

/* Reports each key that a reload may not change but b changes. fixed: the
 * enclosing group is itself not reloadable, so nothing inside may change. */
static void
keys_diff(struct ctx *ctx, const struct key *keys, const void *a, const void *b,
    const char *gpath, bool fixed)
{
	const struct key *k;
	char path[KEYPATH_MAX];

	for (k = keys; k->name != NULL; k++) {
		bool frozen = fixed || !k->reload;
		const void *fa = (const char *)a + k->off;
		const void *fb = (const char *)b + k->off;

		keypath(path, gpath, k->name);
		if (k->type == KT_GROUP) {
			if (frozen && k->has_present &&
			    *(const bool *)((const char *)a + k->present) !=
			    *(const bool *)((const char *)b + k->present))
				cerr(ctx, reload_line(ctx, path), "'%s' cannot be added or removed by "
				    "a reload; restart cutoverd", path);
			else
				keys_diff(ctx, k->sub, a, b, path, frozen);
			continue;
		}
		if (!frozen)
			continue;
		if (k->type == KT_CUSTOM ? (k->eq != NULL && !k->eq(a, b))
		    : !field_eq(k, fa, fb))
			cerr(ctx, reload_line(ctx, path), "'%s' cannot be changed by a reload; "
			    "restart cutoverd", path);
	}
}

/* ---- validators --------------------------------------------------------- */

static bool
is_token(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(tchar, c) != NULL))
			return false;
	}
	return true;
}

static void
check_token(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;

	if (!is_token(v))
		cerr(ctx, s, "'%s': \"%s\" is not a valid HTTP token", path, v);
}

static void
check_header_value(struct ctx *ctx, const config_setting_t *s,
    const char *path, void *field)
{
	const unsigned char *p = *(unsigned char **)field;

	for (; *p != '\0'; p++) {
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
			cerr(ctx, s, "'%s' contains a control character", path);
			return;
		}
	}
}

static void
check_nonempty(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	if (**(char **)field == '\0')
		cerr(ctx, s, "'%s' must not be empty", path);
}

static void
check_abs_path(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	if (**(char **)field != '/')
		cerr(ctx, s, "'%s' must be an absolute path", path);
}

static void
check_http_path(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const unsigned char *p = *(unsigned char **)field;

	if (*p != '/') {
		cerr(ctx, s, "'%s' must start with \"/\"", path);
		return;
	}
	for (; *p != '\0'; p++) {
		if (*p <= 0x20 || *p >= 0x7f) {
			cerr(ctx, s, "'%s' contains a space or a non-ASCII "
			    "character (percent-encode it)", path);
			return;
		}
	}
}

static void
check_socket_path(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;

	if (*v != '/')
		cerr(ctx, s, "'%s' must be an absolute path", path);
	else if (strlen(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
		cerr(ctx, s, "'%s' is longer than a socket path may be (%zu)",
		    path, sizeof(((struct sockaddr_un *)NULL)->sun_path) - 1);
}

/* Relative certificate paths name files next to the configuration, not in
 * whatever directory the daemon was started from. */
static int
resolve_path(struct ctx *ctx, char **field)
{
	char *p;

	if (**field == '/' || ctx->dir == NULL)
		return 0;
	if (asprintf(&p, "%s/%s", ctx->dir, *field) == -1) {
		ctx->oom = true;
		return -1;
	}
	free(*field);
	*field = p;
	return 0;
}

static void
check_readable(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	char ebuf[128];
	struct stat st;
	int fd;

	if (**(char **)field == '\0') {
		cerr(ctx, s, "'%s' must not be empty", path);
		return;
	}
	if (resolve_path(ctx, field) == -1)
		return;
	/* open(2) rather than access(2): the effective ids decide, as they
	 * will when the file is loaded. */
	fd = open(*(char **)field, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd == -1) {
		cerr(ctx, s, "'%s': cannot read %s: %s", path, *(char **)field,
		    strerror_r(errno, ebuf, sizeof(ebuf)));
		return;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
		cerr(ctx, s, "'%s': %s is not a regular file", path, *(char **)field);
	close(fd);
}

static void
check_executable(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;
	char ebuf[128];
	struct stat st;

	if (*v != '/') {
		cerr(ctx, s, "'%s' must be an absolute path", path);
		return;
	}
	if (stat(v, &st) == -1) {
		cerr(ctx, s, "'%s': %s: %s", path, v,
		    strerror_r(errno, ebuf, sizeof(ebuf)));
		return;
	}
	if (!S_ISREG(st.st_mode) || access(v, X_OK) == -1)
		cerr(ctx, s, "'%s': %s is not an executable file", path, v);
}

static void
check_group_name(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;
	struct group gr, *res = NULL;
	char buf[4096];
	int rc;

	if (*v == '\0') {
		cerr(ctx, s, "'%s' must not be empty", path);
		return;
	}
	rc = getgrnam_r(v, &gr, buf, sizeof(buf), &res);
	if (rc == 0 && res == NULL)
		cerr(ctx, s, "'%s': no such group \"%s\"", path, v);
}

static void
check_tls_version(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;

	if (strcmp(v, "TLSv1.2") != 0 && strcmp(v, "TLSv1.3") != 0)
		cerr(ctx, s, "'%s' must be \"TLSv1.2\" or \"TLSv1.3\", not \"%s\"",
		    path, v);
}

static void
check_ramp_cookie(struct ctx *ctx, const config_setting_t *s, const char *path, void *field)
{
	const char *v = *(char **)field;

	if (!is_token(v) || strlen(v) > 64)
		cerr(ctx, s, "'%s': \"%s\" is not a cookie name (an HTTP token of at most 64 characters)",
		    path, v);
}

static void
check_ramp_by(struct ctx *ctx, const config_setting_t *s, const char *path, void *field)
{
	const char *v = *(char **)field;

	if (strcmp(v, "cookie") != 0 && strcmp(v, "address") != 0)
		cerr(ctx, s, "'%s' must be \"cookie\" or \"address\", not \"%s\"", path, v);
}

static void
check_error_rate(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	double v = *(double *)field;

	if (!(v > 0 && v <= 1))
		cerr(ctx, s, "'%s' must be greater than 0 and at most 1, not %g",
		    path, v);
}

/* A factor below 1 would roll back on a color merely as fast as the old. */
static void
check_latency_factor(struct ctx *ctx, const config_setting_t *s,
    const char *path, void *field)
{
	double v = *(double *)field;

	if (!(v == 0 || (v >= 1 && v <= LATENCY_FACTOR_MAX)))
		cerr(ctx, s, "'%s' must be 0 (off) or from 1 to %.0f, not %g", path,
		    LATENCY_FACTOR_MAX, v);
}

/* ---- lists -------------------------------------------------------------- */

/*
 * Lists of groups ( { ... }, { ... } ): allocates *arrp (an array of n
 * elements of size bytes, zeroed), sets *np and parses each element with
 * keys. Returns n, or -1 after reporting when s is not a list of groups.
 */
static int
group_list(struct ctx *ctx, const config_setting_t *s, const char *path,
    const char *example, const struct key *keys, size_t size, void *arrp,
    size_t *np)
{
	char epath[KEYPATH_MAX];
	char *arr;
	int i, n;

	if (!config_setting_is_list(s)) {
		cerr(ctx, s, "'%s' must be a list of groups: %s", path, example);
		return -1;
	}
	n = config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (!config_setting_is_group(e)) {
			cerr(ctx, e, "'%s[%d]' must be a group { ... }", path, i);
			return -1;
		}
	}
	if (n <= 0)
		return 0;
	arr = ctx_calloc(ctx, (size_t)n, size);
	if (arr == NULL)
		return -1;
	*(void **)arrp = arr;
	*np = (size_t)n;
	for (i = 0; i < n; i++) {
		snprintf(epath, sizeof(epath), "%s[%d]", path, i);
		parse_group(ctx, config_setting_get_elem(s, (unsigned)i), epath, keys,
		    arr + (size_t)i * size);
	}
	return n;
}

static void
group_list_free(const struct key *keys, size_t size, void *arrp, size_t *np)
{
	char *arr = *(void **)arrp;
	size_t i;

	for (i = 0; i < *np; i++)
		keys_free(keys, arr + i * size);
	free(arr);
	*(void **)arrp = NULL;
	*np = 0;
}

static void
parse_listens(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;
	size_t i, j;
	int n;

	if (s == NULL) {
		cerr(ctx, parent, "'listen' is required: at least one listener, "
		    "e.g. listen = ( { address = \"0.0.0.0:8080\"; } );");
		return;
	}
	n = group_list(ctx, s, path, "( { address = \"0.0.0.0:8080\"; } )",
	    listen_keys, sizeof(*cfg->listens), &cfg->listens, &cfg->nlistens);
	if (n == 0)
		cerr(ctx, s, "'listen' needs at least one listener");
	for (i = 0; i < cfg->nlistens; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct config_listen *l = &cfg->listens[i];

		l->line = (int)config_setting_source_line(e);
		/* HTTP/2 is on by default where ALPN can offer it. */
		if (config_setting_get_member(e, "http2") == NULL)
			l->http2 = l->ncerts > 0;
		for (j = 0; j < i && l->addr.text[0] != '\0'; j++) {
			if (strcmp(cfg->listens[j].addr.text, l->addr.text) == 0) {
				cerr(ctx, config_setting_get_member(e, "address"),
				    "'%s[%zu].address': duplicate listener %s (also "
				    "at line %d)", path, i, l->addr.text,
				    cfg->listens[j].line);
				break;
			}
		}
	}
}

static void
free_listens(void *base)
{
	struct config *cfg = base;

	group_list_free(listen_keys, sizeof(*cfg->listens), &cfg->listens,
	    &cfg->nlistens);
}

/* Listening sockets are bound once, at start. */
static bool
eq_listens(const void *a, const void *b)
{
	const struct config *ca = a, *cb = b;
	size_t i, j;

	if (ca->nlistens != cb->nlistens)
		return false;
	for (i = 0; i < ca->nlistens; i++) {
		const struct config_listen *la = &ca->listens[i], *lb = &cb->listens[i];

		if (strcmp(la->addr.text, lb->addr.text) != 0 ||
		    la->ncerts != lb->ncerts)
			return false;
		for (j = 0; j < la->ncerts; j++) {
			if (strcmp(la->certs[j].cert, lb->certs[j].cert) != 0 ||
			    strcmp(la->certs[j].key, lb->certs[j].key) != 0)
				return false;
		}
		if (!streq_null(la->tls_min_version, lb->tls_min_version) ||
		    !streq_null(la->tls_ciphers, lb->tls_ciphers) ||
		    la->proxy_protocol != lb->proxy_protocol || la->http2 != lb->http2)
			return false;
	}
	return true;
}

static void
parse_certs(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config_listen *l = base;

	if (parent == NULL)
		return;
	if (s == NULL)
		cerr(ctx, parent, "'%s' is required when 'tls' is set", path);
	else if (group_list(ctx, s, path, "( { cert = \"a.pem\"; key = "
	    "\"a.key\"; } )", cert_keys, sizeof(*l->certs), &l->certs,
	    &l->ncerts) == 0)
		cerr(ctx, s, "'%s' needs at least one certificate", path);
}

static void
free_certs(void *base)
{
	struct config_listen *l = base;

	group_list_free(cert_keys, sizeof(*l->certs), &l->certs, &l->ncerts);
}

static void
parse_pools(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;
	char cpath[KEYPATH_MAX];
	enum color c;
	int i, n;

	if (s == NULL) {
		cerr(ctx, parent, "'pools' is required: pools = { blue = { servers "
		    "= ( ... ); }; green = { servers = ( ... ); }; };");
	} else if (!config_setting_is_group(s)) {
		cerr(ctx, s, "'pools' must be a group { blue = { ... }; "
		    "green = { ... }; }");
		s = NULL;
	} else {
		n = config_setting_length(s);
		for (i = 0; i < n; i++) {
			const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);

			if (color_parse(config_setting_name(m), &c) == -1)
				cerr(ctx, m, "pools: unknown color '%s' (use blue or "
				    "green)", config_setting_name(m));
		}
	}
	for (i = 0; i < COLOR_COUNT; i++) {
		const config_setting_t *m = NULL;

		keypath(cpath, path, color_name((enum color)i));
		if (s != NULL) {
			m = config_setting_get_member(s, color_name((enum color)i));
			if (m == NULL) {
				cerr(ctx, s, "pools: missing pool '%s'", color_name((enum color)i));
			} else if (!config_setting_is_group(m)) {
				cerr(ctx, m, "'%s' must be a group { servers = ( ... ); }",
				    cpath);
				m = NULL;
			}
		}
		parse_group(ctx, m, cpath, pool_keys, &cfg->pools[i]);
		pool_tls_warn(ctx, m, cpath, cfg, &cfg->pools[i]);
	}
}

/* verify = false is allowed (a test setup, a private network) but never
 * silently: -t says what it costs. */
static void
pool_tls_warn(struct ctx *ctx, const config_setting_t *m, const char *path,
    struct config *cfg, const struct config_pool *p)
{
	const config_setting_t *t, *v;
	struct config_errors *errs = ctx->errs;

	if (m == NULL || !p->tls.enabled || p->tls.verify ||
	    (t = config_setting_get_member(m, "tls")) == NULL ||
	    (v = config_setting_get_member(t, "verify")) == NULL)
		return;
	ctx->errs = &cfg->warnings;
	cerr(ctx, v, "warning: '%s.tls.verify' is false: the servers' "
	    "certificates are not checked, so anyone on the path to them can "
	    "read and change the traffic", path);
	ctx->errs = errs;
}

static void
free_pools(void *base)
{
	struct config *cfg = base;
	int i;

	for (i = 0; i < COLOR_COUNT; i++)
		keys_free(pool_keys, &cfg->pools[i]);
}

static void
parse_servers(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config_pool *p = base;
	int i, j, n;

	if (parent == NULL)
		return;
	if (s == NULL) {
		cerr(ctx, parent, "'%s' is required (an empty list () is allowed)",
		    path);
		return;
	}
	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		cerr(ctx, s, "'%s' must be a list of \"ip:port\" or \"host:port\" strings", path);
		return;
	}
	n = config_setting_length(s);
	p->servers = ctx_calloc(ctx, (size_t)n, sizeof(*p->servers));
	p->names = ctx_calloc(ctx, (size_t)n, sizeof(*p->names));
	if (p->servers == NULL || p->names == NULL)
		return;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct addr *a = &p->servers[p->nservers];
		struct config_name *nm = &p->names[p->nnames];
		char err[128], herr[128];
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cerr(ctx, e, "'%s[%d]' must be an \"ip:port\" or \"host:port\" string", path, i);
			continue;
		}
		v = config_setting_get_string(e);
		if (addr_parse(v, a, err, sizeof(err)) == -1) {
			/* Not numeric: a name, resolved with DNS. */
			if (strchr(v, '[') != NULL ||
			    dnsname_parse(v, nm->host, &nm->port, herr, sizeof(herr)) == -1) {
				cerr(ctx, e, "'%s[%d]': invalid address \"%s\": %s", path, i,
				    v, strchr(v, '[') != NULL || strchr(v, ':') == NULL ? err : herr);
				continue;
			}
			snprintf(nm->text, sizeof(nm->text), "%s:%u", nm->host, nm->port);
			nm->line = (int)config_setting_source_line(e);
			nm->index = i;
			for (j = 0; j < (int)p->nnames; j++)
				if (strcmp(p->names[j].text, nm->text) == 0)
					break;
			if (j < (int)p->nnames) {
				cerr(ctx, e, "'%s[%d]': duplicate server %s", path, i, nm->text);
				continue;
			}
			p->nnames++;
			continue;
		}
		if (a->ss.ss_family == AF_INET &&
		    ((struct sockaddr_in *)&a->ss)->sin_addr.s_addr == htonl(INADDR_ANY)) {
			cerr(ctx, e, "'%s[%d]': a server needs a real address, not %s",
			    path, i, a->text);
			continue;
		}
		for (j = 0; j < (int)p->nservers; j++) {
			if (strcmp(p->servers[j].text, a->text) == 0)
				break;
		}
		if (j < (int)p->nservers) {
			cerr(ctx, e, "'%s[%d]': duplicate server %s", path, i, a->text);
			continue;
		}
		p->nservers++;
	}
}

static void
free_servers(void *base)
{
	struct config_pool *p = base;

	free(p->servers);
	p->servers = NULL;
	p->nservers = 0;
	free(p->names);
	p->names = NULL;
	p->nnames = 0;
}

/* dns.nameservers = ( "127.0.0.1:5353", "[::1]" ): port 53 unless given. */
static void
parse_nameservers(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;
	int i, n;

	(void)parent;
	if (s == NULL)
		return;
	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		cerr(ctx, s, "'%s' must be a list of \"ip[:port]\" strings", path);
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		cerr(ctx, s, "'%s' needs at least one name server (leave it out for resolv.conf's)", path);
		return;
	}
	cfg->dns.nameservers = ctx_calloc(ctx, (size_t)n, sizeof(*cfg->dns.nameservers));
	if (cfg->dns.nameservers == NULL)
		return;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		struct addr *a = &cfg->dns.nameservers[cfg->dns.nnameservers];
		char err[128], buf[96];
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cerr(ctx, e, "'%s[%d]' must be an \"ip[:port]\" string", path, i);
			continue;
		}
		v = config_setting_get_string(e);
		snprintf(buf, sizeof(buf), strchr(v, ':') == NULL || (v[0] != '[' && strchr(v, ':') != strrchr(v, ':'))
		    ? (strchr(v, ':') == NULL ? "%s:53" : "[%s]:53") : "%s", v);
		if (addr_parse(buf, a, err, sizeof(err)) == -1 || strncmp(buf, "*:", 2) == 0) {
			cerr(ctx, e, "'%s[%d]': invalid name server \"%s\": %s", path, i, v,
			    strncmp(buf, "*:", 2) == 0 ? "needs a real address" : err);
			continue;
		}
		cfg->dns.nnameservers++;
	}
}

static void
free_nameservers(void *base)
{
	struct config *cfg = base;

	free(cfg->dns.nameservers);
	cfg->dns.nameservers = NULL;
	cfg->dns.nnameservers = 0;
}

static bool
eq_nameservers(const void *a, const void *b)
{
	const struct config *x = a, *y = b;
	size_t i;

	if (x->dns.nnameservers != y->dns.nnameservers)
		return false;
	for (i = 0; i < x->dns.nnameservers; i++)
		if (strcmp(x->dns.nameservers[i].text, y->dns.nameservers[i].text) != 0)
			return false;
	return true;
}

size_t
config_nnames(const struct config *cfg)
{
	return cfg->pools[COLOR_BLUE].nnames + cfg->pools[COLOR_GREEN].nnames;
}

static void
parse_smoke(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;

	(void)parent;
	if (s != NULL)
		(void)group_list(ctx, s, path, "( { path = \"/\"; } )", smoke_keys,
		    sizeof(*cfg->smoke), &cfg->smoke, &cfg->nsmoke);
}

static void
free_smoke(void *base)
{
	struct config *cfg = base;

	group_list_free(smoke_keys, sizeof(*cfg->smoke), &cfg->smoke,
	    &cfg->nsmoke);
}

/* upstream.keepalive: "auto" (the default, CONFIG_KEEPALIVE_AUTO) or a count. */
static void
parse_keepalive(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	static const struct key count = {KEY("keepalive", KT_UINT, 0, NULL),
	    RANGE(0, KEEPALIVE_MAX)};
	struct config *cfg = base;
	int type;

	(void)parent;
	cfg->upstream.keepalive = CONFIG_KEEPALIVE_AUTO;
	if (s == NULL)
		return;
	type = config_setting_type(s);
	if (type == CONFIG_TYPE_INT || type == CONFIG_TYPE_INT64) {
		(void)parse_value(ctx, &count, s, path, &cfg->upstream.keepalive);
		return;
	}
	if (type != CONFIG_TYPE_STRING || strcmp(config_setting_get_string(s), "auto") != 0)
		cerr(ctx, s, "'%s' must be \"auto\" or an integer from 0 to %d", path,
		    KEEPALIVE_MAX);
}

/* For a KT_CUSTOM key that allocates nothing. */
static void
free_nothing(void *base)
{
	(void)base;
}

static void
parse_headers(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config_smoke *sm = base;

	(void)parent;
	if (s != NULL)
		(void)group_list(ctx, s, path, "( { name = \"Host\"; value = "
		    "\"example.com\"; } )", header_keys, sizeof(*sm->headers),
		    &sm->headers, &sm->nheaders);
}

static void
free_headers(void *base)
{
	struct config_smoke *sm = base;

	group_list_free(header_keys, sizeof(*sm->headers), &sm->headers,
	    &sm->nheaders);
}

/* A list of "address/prefix" strings into a fresh array *out of *nout networks. */
static void
cidr_list(struct ctx *ctx, const config_setting_t *s, const char *path,
    struct addr_cidr **out, size_t *nout)
{
	char why[128];
	int i, n;

	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		cerr(ctx, s, "'%s' must be a list of \"address/prefix\" strings",
		    path);
		return;
	}
	n = config_setting_length(s);
	if (n == 0) {
		cerr(ctx, s, "'%s' needs at least one network", path);
		return;
	}
	*out = ctx_calloc(ctx, (size_t)n, sizeof(**out));
	if (*out == NULL)
		return;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v;

		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			cerr(ctx, e, "'%s[%d]' must be an \"address/prefix\" string",
			    path, i);
			continue;
		}
		v = config_setting_get_string(e);
		if (addr_cidr_parse(v, &(*out)[*nout], why, sizeof(why)) == -1) {
			cerr(ctx, e, "'%s[%d]': invalid network \"%s\": %s", path, i,
			    v, why);
			continue;
		}
		(*nout)++;
	}
}

static void
parse_cidrs(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;

	if (parent == NULL)
		return;
	if (s == NULL) {
		cerr(ctx, parent, "'%s' is required: the client networks that may "
		    "pick a color, e.g. ( \"127.0.0.1/32\" )", path);
		return;
	}
	cidr_list(ctx, s, path, &cfg->preview.from, &cfg->preview.nfrom);
}

static void
free_cidrs(void *base)
{
	struct config *cfg = base;

	free(cfg->preview.from);
	cfg->preview.from = NULL;
	cfg->preview.nfrom = 0;
}

/* trusted_proxies: optional; absent, no peer is trusted. */
static void
parse_trusted(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;

	(void)parent;
	if (s != NULL)
		cidr_list(ctx, s, path, &cfg->trusted_proxies, &cfg->ntrusted_proxies);
}

static void
free_trusted(void *base)
{
	struct config *cfg = base;

	free(cfg->trusted_proxies);
	cfg->trusted_proxies = NULL;
	cfg->ntrusted_proxies = 0;
}

/*
 * fleet.etcd: a non-empty list of "http://host:port" or "https://host:port"
 * (no path), required when the group is written.
 */
static void
parse_etcd(struct ctx *ctx, const config_setting_t *s,
    const config_setting_t *parent, const char *path, void *base)
{
	struct config *cfg = base;
	int i, n;

	if (s == NULL) {
		if (parent != NULL)
			cerr(ctx, parent, "'%s' is required in group 'fleet'", path);
		return;
	}
	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		cerr(ctx, s, "'%s' must be a list of URLs such as (\"http://127.0.0.1:2379\")", path);
		return;
	}
	if ((n = config_setting_length(s)) == 0) {
		cerr(ctx, s, "'%s' must name at least one etcd endpoint", path);
		return;
	}
	if ((cfg->fleet.etcd = ctx_calloc(ctx, (size_t)n, sizeof(char *))) == NULL)
		return;
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		const char *hp;

		if (v == NULL) {
			cerr(ctx, e, "'%s' item %d must be a string", path, i + 1);
			continue;
		}
		hp = strncmp(v, "http://", 7) == 0 ? v + 7 : strncmp(v, "https://", 8) == 0 ? v + 8 : NULL;
		if (hp == NULL || *hp == '\0' || strchr(hp, '/') != NULL || strchr(hp, ':') == NULL ||
		    strpbrk(hp, " \t") != NULL) {
			cerr(ctx, e, "'%s' item %d: \"%s\" is not an etcd endpoint "
			    "(\"http://host:port\" or \"https://host:port\")", path, i + 1, v);
			continue;
		}
		if ((cfg->fleet.etcd[cfg->fleet.netcd] = ctx_strdup(ctx, v)) != NULL)
			cfg->fleet.netcd++;
	}
}

static void
free_etcd(void *base)
{
	struct config *cfg = base;
	size_t i;

	for (i = 0; i < cfg->fleet.netcd; i++)
		free(cfg->fleet.etcd[i]);
	free(cfg->fleet.etcd);
	cfg->fleet.etcd = NULL;
	cfg->fleet.netcd = 0;
}

static bool
eq_etcd(const void *a, const void *b)
{
	const struct config *ca = a, *cb = b;
	size_t i;

	if (ca->fleet.netcd != cb->fleet.netcd)
		return false;
	for (i = 0; i < ca->fleet.netcd; i++)
		if (strcmp(ca->fleet.etcd[i], cb->fleet.etcd[i]) != 0)
			return false;
	return true;
}

/* fleet.key: an absolute key prefix without a trailing '/'. */
static void
check_fleet_key(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;
	size_t len = strlen(v);

	if (v[0] != '/' || len < 2 || v[len - 1] == '/' || strpbrk(v, " \t\n") != NULL)
		cerr(ctx, s, "'%s' must be a key prefix such as \"/cutover/shop\" "
		    "(starting with '/', not ending with one, no blanks)", path);
}

/* fleet.node: a name made of letters, digits, '-', '_' and '.'. */
static void
check_fleet_node(struct ctx *ctx, const config_setting_t *s, const char *path,
    void *field)
{
	const char *v = *(char **)field;

	if (*v == '\0' || strlen(v) > 64 ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(v))
		cerr(ctx, s, "'%s' must be 1 to 64 letters, digits, '-', '_' or '.'", path);
}

/* ---- whole-configuration checks ----------------------------------------- */

/* The first of the settings a, b that exists, for an error's line. */
static const config_setting_t *
lookup_line(const config_t *lc, const char *a, const char *b)
{
	const config_setting_t *s = config_lookup(lc, a);

	if (s == NULL && b != NULL)
		s = config_lookup(lc, b);
	return s;
}

static void
validate_whole(struct ctx *ctx, const config_t *lc, struct config *cfg)
{
	size_t i;

	if (cfg->health.timeout_ms >= cfg->health.interval_ms)
		cerr(ctx, lookup_line(lc, "health.timeout", "health.interval"),
		    "'health.timeout' must be shorter than 'health.interval'");
	if (cfg->fleet.enabled && (cfg->fleet.tls_cert == NULL) != (cfg->fleet.tls_key == NULL))
		cerr(ctx, lookup_line(lc, "fleet.tls", "fleet"),
		    "'fleet.tls': cert and key go together");
	if (cfg->fleet.enabled && cfg->fleet.timeout_ms >= cfg->fleet.lease_ms)
		cerr(ctx, lookup_line(lc, "fleet.timeout", "fleet"),
		    "'fleet.timeout' must be shorter than 'fleet.lease'");
	if (cfg->metrics.enabled) {
		for (i = 0; i < cfg->nlistens; i++) {
			if (strcmp(cfg->listens[i].addr.text,
			    cfg->metrics.listen.text) == 0)
				cerr(ctx, lookup_line(lc, "metrics.listen", "metrics"),
				    "'metrics.listen': %s is also a proxy listener "
				    "(line %d)", cfg->metrics.listen.text,
				    cfg->listens[i].line);
		}
	}
}

/* ---- integers libconfig wraps -------------------------------------------- */

struct scan_arg {
	struct ctx *ctx;
	const char *file; /* as libconfig names it; NULL: the main file */
};

/*
 * Reports every plain integer literal past 32 bits in the main file and in
 * each @include'd file that holds settings (libconfig names them; an
 * included file without settings cannot hold a number), and remembers its
 * line so that the key's own range check stays quiet about the wrapped
 * value.
 */
static void
scan_literals(struct ctx *ctx, const config_t *lc, FILE *main)
{
	const char **files = NULL;
	size_t nfiles = 0, i, len;
	struct scan_arg sa = {.ctx = ctx};
	char *text, *p;
	FILE *fp;

	scan_files(config_root_setting(lc), &files, &nfiles, &ctx->oom);
	for (i = 0; i <= nfiles; i++) {
		sa.file = i < nfiles ? files[i] : NULL;
		if (sa.file == NULL) {
			rewind(main);
			fp = main;
		} else {
			if (sa.file[0] == '/' || ctx->dir == NULL)
				p = strdup(sa.file);
			else if (asprintf(&p, "%s/%s", ctx->dir, sa.file) == -1)
				p = NULL;
			if (p == NULL) {
				ctx->oom = true;
				continue;
			}
			fp = fopen(p, "re");
			free(p);
			if (fp == NULL)
				continue; /* libconfig read it; gone since: no matter */
		}
		if ((text = read_all(fp, &len)) == NULL)
			ctx->oom = true;
		else
			config_scan_ints(text, len, scan_hit, &sa);
		free(text);
		if (fp != main)
			fclose(fp);
	}
	free(files);
}

/* Collects the distinct included files (not the main one, NULL) that
 * settings under s come from. */
static void
scan_files(const config_setting_t *s, const char ***files, size_t *n,
    bool *oom)
{
	const char *f = config_setting_source_file(s);
	const char **more;
	int i, len;
	size_t j;

	if (f != NULL) {
		for (j = 0; j < *n && strcmp((*files)[j], f) != 0; j++)
			;
		if (j == *n) {
			if ((more = realloc(*files, (*n + 1) * sizeof(*more))) == NULL) {
				*oom = true;
				return;
			}
			more[(*n)++] = f;
			*files = more;
		}
	}
	len = config_setting_is_aggregate(s) ? config_setting_length(s) : 0;
	for (i = 0; i < len; i++)
		scan_files(config_setting_get_elem(s, (unsigned)i), files, n, oom);
}

static char *
read_all(FILE *fp, size_t *len)
{
	size_t cap = 4096, n = 0, r;
	char *buf = malloc(cap), *more;

	while (buf != NULL && (r = fread(buf + n, 1, cap - n, fp)) > 0) {
		n += r;
		if (n == cap) {
			if ((more = realloc(buf, cap * 2)) == NULL) {
				free(buf);
				return NULL;
			}
			buf = more;
			cap *= 2;
		}
	}
	*len = n;
	return buf;
}

static void
scan_hit(void *arg, int line, const char *lit, size_t len)
{
	struct scan_arg *sa = arg;
	struct ctx *ctx = sa->ctx;
	struct scan_flag *more;
	char msg[256], num[48];
	unsigned long long v;

	/* What libconfig made of it: strtoll/strtoull (saturating), then the
	 * low 32 bits as an int. */
	snprintf(num, sizeof(num), "%.*s", (int)(len < sizeof(num) ? len : sizeof(num) - 1), lit);
	v = strpbrk(num, "xX") != NULL ? strtoull(num, NULL, 16) :
	    (unsigned long long)strtoll(num, NULL, 10);
	snprintf(msg, sizeof(msg), "integer %.*s is out of range: libconfig reads "
	    "an integer without the L suffix as 32 bits and would silently wrap it",
	    (int)(len > 40 ? 40 : len), lit);
	err_push(ctx, sa->file, line, msg);
	if ((more = realloc(ctx->flags, (ctx->nflags + 1) * sizeof(*more))) == NULL) {
		ctx->oom = true;
		return;
	}
	more[ctx->nflags].file = sa->file;
	more[ctx->nflags].line = line;
	more[ctx->nflags].wrapped = (int32_t)(uint32_t)v;
	ctx->flags = more;
	ctx->nflags++;
}

/* Whether s (read as v) is a wrapped integer scan_hit() reported: one on
 * its line that libconfig turned into v. */
static bool
scan_flagged(const struct ctx *ctx, const config_setting_t *s, long long v)
{
	const char *f = config_setting_source_file(s);
	int line = (int)config_setting_source_line(s);
	size_t i;

	for (i = 0; i < ctx->nflags; i++)
		if (ctx->flags[i].line == line && ctx->flags[i].wrapped == v &&
		    (f == NULL ?
		    ctx->flags[i].file == NULL : ctx->flags[i].file != NULL &&
		    strcmp(ctx->flags[i].file, f) == 0))
			return true;
	return false;
}

/* ---- public ------------------------------------------------------------- */

int
config_load(const char *path, struct config **out, struct config_errors *errs)
{
	struct ctx ctx = {.errs = errs, .path = path};
	size_t nerr0 = errs->n;
	struct config *cfg = NULL;
	char ebuf[128];
	struct stat st;
	config_t lc;
	FILE *fp;
	const char *slash;

	*out = NULL;
	/* Opened here, not by config_read_file(), for errno: libconfig
	 * reports only "file I/O error". */
	fp = fopen(path, "re");
	if (fp == NULL) {
		cerr(&ctx, NULL, "cannot read: %s",
		    strerror_r(errno, ebuf, sizeof(ebuf)));
		return -1;
	}
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		cerr(&ctx, NULL, "cannot read: %s",
		    strerror_r(EISDIR, ebuf, sizeof(ebuf)));
		fclose(fp);
		return -1;
	}
	slash = strrchr(path, '/');
	if (slash == NULL)
		ctx.dir = strdup(".");
	else if (slash == path)
		ctx.dir = strdup("/");
	else
		ctx.dir = strndup(path, (size_t)(slash - path));
	config_init(&lc);
	/* @include "x" is relative to the including file's directory. */
	if (ctx.dir != NULL)
		config_set_include_dir(&lc, ctx.dir);
	if (config_read(&lc, fp) == CONFIG_FALSE) {
		/* A syntax error has a line but no setting. */
		err_push(&ctx, config_error_file(&lc), config_error_line(&lc),
		    config_error_text(&lc));
		goto fail;
	}
	scan_literals(&ctx, &lc, fp);
	cfg = ctx_calloc(&ctx, 1, sizeof(*cfg));
	if (cfg == NULL)
		goto fail;
	cfg->path = ctx_strdup(&ctx, path);
	parse_group(&ctx, config_root_setting(&lc), "", top_keys, cfg);
	validate_whole(&ctx, &lc, cfg);
	if (ctx.oom)
		cerr(&ctx, NULL, "out of memory");
	if (errs->n > nerr0 || ctx.oom)
		goto fail;
	config_destroy(&lc);
	fclose(fp);
	free(ctx.dir);
	free(ctx.flags);
	*out = cfg;
	return 0;
fail:
	if (errs->n == nerr0)
		cerr(&ctx, NULL, "out of memory");
	config_free(cfg);
	config_destroy(&lc);
	fclose(fp);
	free(ctx.dir);
	free(ctx.flags);
	return -1;
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	keys_free(top_keys, cfg);
	config_errors_free(&cfg->warnings);
	free(cfg->path);
	free(cfg);
}

unsigned
config_workers(const struct config *cfg)
{
	long n;

	if (cfg->workers != 0)
		return cfg->workers;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int
config_reload_check(const struct config *old, const struct config *next,
    struct config_errors *errs)
{
	struct ctx ctx = {.errs = errs, .path = next->path};
	size_t nerr0 = errs->n;
	config_t lc;
	const char *slash = strrchr(next->path, '/');
	char *dir = slash != NULL && slash != next->path
	    ? strndup(next->path, (size_t)(slash - next->path)) : NULL;

	/* Read the new file once more, only to point errors at their lines
	 * (the parsed settings are gone once config_load returns). */
	config_init(&lc);
	if (dir != NULL)
		config_set_include_dir(&lc, dir);
	if (config_read_file(&lc, next->path) == CONFIG_TRUE)
		ctx.lc = &lc;
	keys_diff(&ctx, top_keys, old, next, "", false);
	config_destroy(&lc);
	free(dir);
	return errs->n > nerr0 ? -1 : 0;
}

/*
 * The setting at path in the file being reloaded, or its nearest enclosing
 * group that is there (a removed key has no line of its own), or NULL.
 */
static const config_setting_t *
reload_line(const struct ctx *ctx, const char *path)
{
	char buf[KEYPATH_MAX];
	const config_setting_t *st;
	char *dot;

	if (ctx->lc == NULL)
		return NULL;
	snprintf(buf, sizeof(buf), "%s", path);
	for (;;) {
		if ((st = config_lookup(ctx->lc, buf)) != NULL)
			return st;
		if ((dot = strrchr(buf, '.')) == NULL)
			return NULL;
		*dot = '\0';
	}
}
