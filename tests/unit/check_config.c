#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "config.h"
#include "config_scan.h"
#include "log.h"

/*
 * Each test writes its configuration into a fresh temporary directory, so
 * that file names (and thus the "FILE:LINE:" prefixes) are known exactly.
 */
static char tmpdir[512];
static char conf_path[PATH_MAX];

static void setup(void);
static void teardown(void);
static int rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw);
static void write_file(const char *name, const char *text, mode_t mode);
static char *expand(const char *fmt);
static int load(const char *text, struct config **cfg,
    struct config_errors *errs);
static void dump_errors(const struct config_errors *errs);

static void
setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/check_config.XXXXXX",
	    base != NULL ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof(conf_path), "%s/cutover.conf", tmpdir);
	write_file("a.pem", "cert\n", 0644);
	write_file("a.key", "key\n", 0600);
	write_file("ca.pem", "ca\n", 0644);
	write_file("hook", "#!/bin/sh\nexit 0\n", 0755);
	write_file("noexec", "#!/bin/sh\nexit 0\n", 0644);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
teardown(void)
{
	nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[PATH_MAX];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* Replaces each "@" in fmt with the temporary directory. Caller frees. */
static char *
expand(const char *fmt)
{
	size_t n = 1, dl = strlen(tmpdir);
	const char *p;
	char *out, *q;

	for (p = fmt; *p != '\0'; p++)
		n += *p == '@' ? dl : 1;
	out = malloc(n);
	ck_assert_ptr_nonnull(out);
	for (p = fmt, q = out; *p != '\0'; p++) {
		if (*p == '@') {
			memcpy(q, tmpdir, dl);
			q += dl;
		} else {
			*q++ = *p;
		}
	}
	*q = '\0';
	return out;
}

static int
load(const char *text, struct config **cfg, struct config_errors *errs)
{
	char *t = expand(text);

	write_file("cutover.conf", t, 0644);
	free(t);
	return config_load(conf_path, cfg, errs);
}

static void
dump_errors(const struct config_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		fprintf(stderr, "  error: %s\n", errs->msgs[i]);
}

/* Two lines that make a valid configuration; bad cases add line 3 on. */
#define BASE                                                                 \
	"listen = ( { address = \"127.0.0.1:8080\"; } );\n"                  \
	"pools = { blue = { servers = ( \"127.0.0.1:9001\" ); };"            \
	" green = { servers = ( ); }; };\n"

static const char full_conf[] =
    "# every key, none at its default\n"
    "listen = ( { address = \"127.0.0.1:8080\"; http2 = true; },\n"
    "           { address = \"[::1]:8443\"; proxy_protocol = true; http2 = false;\n"
    "             tls = { certs = ( { cert = \"@/a.pem\"; key = \"a.key\"; } );\n"
    "                     min_version = \"TLSv1.3\";\n"
    "                     ciphers = \"HIGH:!aNULL\"; }; } );\n"
    "workers = 4;\n"
    "log_level = \"debug\";\n"
    "initial = \"green\";\n"
    "state_file = \"@/state\";\n"
    "pools: {\n"
    "  blue:  { servers = ( \"10.0.0.11:8080\", \"10.0.0.12:8080\" ); };\n"
    "  green: { servers = [ \"10.0.0.21:8080\", \"[2001:db8::1]:80\" ];\n"
    "           tls = { verify = false; ca = \"ca.pem\"; sni = \"app.example\"; }; };\n"
    "};\n"
    "health: { path = \"/ready\"; interval = \"500ms\"; timeout = \"250ms\";\n"
    "          rise = 4; fall = 5; expect_status = 204; };\n"
    "switch: { min_healthy = 2; drain_timeout = \"10s\"; safety_window = \"1h\"; };\n"
    "auto_rollback: { enabled = false; error_rate = 1; min_requests = 7;\n"
    "                 window = \"1m\"; latency_factor = 2.5; };\n"
    "smoke = ( { path = \"/\"; },\n"
    "          { method = \"HEAD\"; path = \"/api?x=1\";\n"
    "            headers = ( { name = \"Host\"; value = \"app.example\"; },\n"
    "                        { name = \"X-Smoke\"; value = \"1\"; } );\n"
    "            expect_status = 204; expect_body = \"ok\"; timeout = \"3s\"; } );\n"
    "preview: { header = \"X-Cutover-Color\"; from = ( \"127.0.0.1/32\", \"::1/128\", \"10.0.0.0/8\" ); };\n"
    "trusted_proxies = ( \"10.0.0.0/8\", \"fd00::/8\" );\n"
    "hooks: { pre_switch = \"@/hook\"; post_switch = \"@/hook\"; rollback = \"@/hook\";\n"
    "         window_end = \"@/hook\"; timeout = \"45s\"; };\n"
    "control: { socket = \"@/control.sock\"; mode = \"0600\"; group = \"%GROUP%\";\n"
    "           admin_group = \"%GROUP%\"; };\n"
    "metrics: { listen = \"127.0.0.1:9999\"; };\n"
    "limits: { header_size = 8192; header_count = 50; max_connections = 20;\n"
    "          h2_max_streams = 7; };\n"
    "timeouts: { client_header = \"1s\"; client_idle = \"2s\"; connect = \"3s\";\n"
    "            response = \"4s\"; upstream_idle = \"5s\"; };\n"
    "upstream: { keepalive = 0; purge_delay = \"250ms\"; splice = 1048576; };\n";

/* full_conf with %GROUP% replaced by a group that exists here. */
static char *
full_conf_text(void)
{
	struct group *gr = getgrgid(getegid());
	const char *name = gr != NULL ? gr->gr_name : "root";
	size_t n = sizeof(full_conf) + 4 * strlen(name);
	char *out = malloc(n), *q = out;
	const char *p = full_conf;

	ck_assert_ptr_nonnull(out);
	while (*p != '\0') {
		if (strncmp(p, "%GROUP%", 7) == 0) {
			q += sprintf(q, "%s", name);
			p += 7;
		} else {
			*q++ = *p++;
		}
	}
	*q = '\0';
	return out;
}

START_TEST(test_full)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *text = full_conf_text(), *p;
	char ip[64];
	int rc;

	rc = load(text, &cfg, &errs);
	dump_errors(&errs);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->path, conf_path);

	ck_assert_uint_eq(cfg->nlistens, 2);
	ck_assert_str_eq(cfg->listens[0].addr.text, "127.0.0.1:8080");
	ck_assert_int_eq(cfg->listens[0].line, 2);
	ck_assert_uint_eq(cfg->listens[0].ncerts, 0);
	ck_assert_ptr_null(cfg->listens[0].certs);
	ck_assert(!cfg->listens[0].proxy_protocol);
	ck_assert(cfg->listens[1].proxy_protocol);
	/* An explicit http2 wins over the default of either kind of listener. */
	ck_assert(cfg->listens[0].http2);
	ck_assert(!cfg->listens[1].http2);
	ck_assert_str_eq(cfg->listens[1].addr.text, "[::1]:8443");
	ck_assert_int_eq(cfg->listens[1].line, 3);
	ck_assert_uint_eq(cfg->listens[1].ncerts, 1);
	p = expand("@/a.pem");
	ck_assert_str_eq(cfg->listens[1].certs[0].cert, p);
	free(p);
	/* Relative to the configuration file's directory. */
	p = expand("@/a.key");
	ck_assert_str_eq(cfg->listens[1].certs[0].key, p);
	free(p);
	ck_assert_str_eq(cfg->listens[1].tls_min_version, "TLSv1.3");
	ck_assert_str_eq(cfg->listens[1].tls_ciphers, "HIGH:!aNULL");

	ck_assert_uint_eq(cfg->workers, 4);
	ck_assert_uint_eq(config_workers(cfg), 4);
	ck_assert_int_eq(cfg->log_level, LOG_LVL_DEBUG);
	ck_assert_int_eq(cfg->initial, COLOR_GREEN);
	p = expand("@/state");
	ck_assert_str_eq(cfg->state_file, p);
	free(p);

	ck_assert_uint_eq(cfg->pools[COLOR_BLUE].nservers, 2);
	ck_assert_str_eq(cfg->pools[COLOR_BLUE].servers[0].text, "10.0.0.11:8080");
	ck_assert_str_eq(cfg->pools[COLOR_BLUE].servers[1].text, "10.0.0.12:8080");
	ck_assert(!cfg->pools[COLOR_BLUE].tls.enabled);
	ck_assert_uint_eq(cfg->pools[COLOR_GREEN].nservers, 2);
	ck_assert_str_eq(cfg->pools[COLOR_GREEN].servers[1].text,
	    "[2001:db8::1]:80");
	ck_assert(cfg->pools[COLOR_GREEN].tls.enabled);
	ck_assert(!cfg->pools[COLOR_GREEN].tls.verify);
	p = expand("@/ca.pem");
	ck_assert_str_eq(cfg->pools[COLOR_GREEN].tls.ca, p);
	free(p);
	ck_assert_str_eq(cfg->pools[COLOR_GREEN].tls.sni, "app.example");

	ck_assert_str_eq(cfg->health.path, "/ready");
	ck_assert_uint_eq(cfg->health.interval_ms, 500);
	ck_assert_uint_eq(cfg->health.timeout_ms, 250);
	ck_assert_uint_eq(cfg->health.rise, 4);
	ck_assert_uint_eq(cfg->health.fall, 5);
	ck_assert_int_eq(cfg->health.expect_status, 204);

	ck_assert_uint_eq(cfg->sw.min_healthy, 2);
	ck_assert_uint_eq(cfg->sw.drain_timeout_ms, 10000);
	ck_assert_uint_eq(cfg->sw.safety_window_ms, 3600000);

	ck_assert(!cfg->auto_rollback.enabled);
	ck_assert_double_eq(cfg->auto_rollback.error_rate, 1.0);
	ck_assert_uint_eq(cfg->auto_rollback.min_requests, 7);
	ck_assert_uint_eq(cfg->auto_rollback.window_ms, 60000);
	ck_assert_double_eq(cfg->auto_rollback.latency_factor, 2.5);

	ck_assert_uint_eq(cfg->nsmoke, 2);
	ck_assert_str_eq(cfg->smoke[0].method, "GET");
	ck_assert_str_eq(cfg->smoke[0].path, "/");
	ck_assert_uint_eq(cfg->smoke[0].nheaders, 0);
	ck_assert_int_eq(cfg->smoke[0].expect_status, 200);
	ck_assert_ptr_null(cfg->smoke[0].expect_body);
	ck_assert_uint_eq(cfg->smoke[0].timeout_ms, 2000);
	ck_assert_str_eq(cfg->smoke[1].method, "HEAD");
	ck_assert_str_eq(cfg->smoke[1].path, "/api?x=1");
	ck_assert_uint_eq(cfg->smoke[1].nheaders, 2);
	ck_assert_str_eq(cfg->smoke[1].headers[0].name, "Host");
	ck_assert_str_eq(cfg->smoke[1].headers[0].value, "app.example");
	ck_assert_str_eq(cfg->smoke[1].headers[1].name, "X-Smoke");
	ck_assert_str_eq(cfg->smoke[1].headers[1].value, "1");
	ck_assert_int_eq(cfg->smoke[1].expect_status, 204);
	ck_assert_str_eq(cfg->smoke[1].expect_body, "ok");
	ck_assert_uint_eq(cfg->smoke[1].timeout_ms, 3000);

	ck_assert_str_eq(cfg->preview.header, "X-Cutover-Color");
	ck_assert_uint_eq(cfg->preview.nfrom, 3);
	ck_assert_int_eq(cfg->preview.from[0].net.ss_family, AF_INET);
	ck_assert_uint_eq(cfg->preview.from[0].prefix, 32);
	addr_ip_string((const struct sockaddr *)&cfg->preview.from[0].net, ip,
	    sizeof(ip));
	ck_assert_str_eq(ip, "127.0.0.1");
	ck_assert_int_eq(cfg->preview.from[1].net.ss_family, AF_INET6);
	ck_assert_uint_eq(cfg->preview.from[1].prefix, 128);
	addr_ip_string((const struct sockaddr *)&cfg->preview.from[1].net, ip,
	    sizeof(ip));
	ck_assert_str_eq(ip, "::1");
	ck_assert_uint_eq(cfg->preview.from[2].prefix, 8);
	ck_assert_uint_eq(cfg->ntrusted_proxies, 2);
	ck_assert_uint_eq(cfg->trusted_proxies[0].prefix, 8);
	ck_assert_int_eq(cfg->trusted_proxies[1].net.ss_family, AF_INET6);

	p = expand("@/hook");
	ck_assert_str_eq(cfg->hooks.pre_switch, p);
	ck_assert_str_eq(cfg->hooks.post_switch, p);
	ck_assert_str_eq(cfg->hooks.rollback, p);
	ck_assert_str_eq(cfg->hooks.window_end, p);
	free(p);
	ck_assert_uint_eq(cfg->hooks.timeout_ms, 45000);

	p = expand("@/control.sock");
	ck_assert_str_eq(cfg->control.socket, p);
	free(p);
	ck_assert_uint_eq(cfg->control.mode, 0600);
	ck_assert_ptr_nonnull(cfg->control.group);
	ck_assert_ptr_nonnull(cfg->control.admin_group);

	ck_assert(cfg->metrics.enabled);
	ck_assert_str_eq(cfg->metrics.listen.text, "127.0.0.1:9999");

	ck_assert_uint_eq(cfg->limits.header_size, 8192);
	ck_assert_uint_eq(cfg->limits.header_count, 50);
	ck_assert_uint_eq(cfg->limits.max_connections, 20);
	ck_assert_uint_eq(cfg->limits.h2_max_streams, 7);
	ck_assert_uint_eq(cfg->timeouts.client_header_ms, 1000);
	ck_assert_uint_eq(cfg->timeouts.client_idle_ms, 2000);
	ck_assert_uint_eq(cfg->timeouts.connect_ms, 3000);
	ck_assert_uint_eq(cfg->timeouts.response_ms, 4000);
	ck_assert_uint_eq(cfg->timeouts.upstream_idle_ms, 5000);
	ck_assert_uint_eq(cfg->upstream.keepalive, 0);
	ck_assert_uint_eq(cfg->upstream.purge_delay_ms, 250);
	ck_assert_uint_eq(cfg->upstream.splice, 1048576);

	config_free(cfg);
	free(text);
}
END_TEST

/* listen[].http2 defaults to on where ALPN can offer h2 (TLS) and to off
 * on plain listeners, where it would mean h2c with prior knowledge. */
START_TEST(test_http2_default)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	int rc;

	rc = load("listen = ( { address = \"127.0.0.1:8080\"; },\n"
	    "  { address = \"127.0.0.1:8443\";\n"
	    "    tls = { certs = ( { cert = \"a.pem\"; key = \"a.key\"; } ); }; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    &cfg, &errs);
	dump_errors(&errs);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(cfg->nlistens, 2);
	ck_assert_uint_eq(cfg->listens[0].ncerts, 0);
	ck_assert(!cfg->listens[0].http2);
	ck_assert_uint_eq(cfg->listens[1].ncerts, 1);
	ck_assert(cfg->listens[1].http2);
	config_free(cfg);
}
END_TEST

START_TEST(test_defaults)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	int rc;

	rc = load(BASE, &cfg, &errs);
	dump_errors(&errs);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(cfg);

	ck_assert_uint_eq(cfg->nlistens, 1);
	ck_assert_uint_eq(cfg->listens[0].ncerts, 0);
	ck_assert_str_eq(cfg->listens[0].tls_min_version, "TLSv1.2");
	ck_assert_ptr_null(cfg->listens[0].tls_ciphers);
	ck_assert(!cfg->listens[0].http2);
	ck_assert_uint_eq(cfg->workers, 0);
	ck_assert_uint_ge(config_workers(cfg), 1);
	ck_assert_uint_eq(config_workers(cfg), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
	ck_assert_int_eq(cfg->log_level, LOG_LVL_INFO);
	ck_assert_int_eq(cfg->initial, COLOR_BLUE);
	ck_assert_str_eq(cfg->state_file, LOCALSTATEDIR "/lib/cutover/state");
	ck_assert_uint_eq(cfg->pools[COLOR_BLUE].nservers, 1);
	ck_assert_uint_eq(cfg->pools[COLOR_GREEN].nservers, 0);
	ck_assert(!cfg->pools[COLOR_GREEN].tls.enabled);
	ck_assert(cfg->pools[COLOR_GREEN].tls.verify);
	ck_assert_ptr_null(cfg->pools[COLOR_GREEN].tls.ca);
	ck_assert_ptr_null(cfg->pools[COLOR_GREEN].tls.sni);

	ck_assert_str_eq(cfg->health.path, "/healthz");
	ck_assert_uint_eq(cfg->health.interval_ms, 2000);
	ck_assert_uint_eq(cfg->health.timeout_ms, 1000);
	ck_assert_uint_eq(cfg->health.rise, 2);
	ck_assert_uint_eq(cfg->health.fall, 3);
	ck_assert_int_eq(cfg->health.expect_status, 200);
	ck_assert_uint_eq(cfg->sw.min_healthy, 1);
	ck_assert_uint_eq(cfg->sw.drain_timeout_ms, 30000);
	ck_assert_uint_eq(cfg->sw.safety_window_ms, 300000);
	ck_assert(cfg->auto_rollback.enabled);
	ck_assert_double_eq(cfg->auto_rollback.error_rate, 0.05);
	ck_assert_uint_eq(cfg->auto_rollback.min_requests, 50);
	ck_assert_uint_eq(cfg->auto_rollback.window_ms, 30000);
	ck_assert_double_eq(cfg->auto_rollback.latency_factor, 0);
	ck_assert_uint_eq(cfg->nsmoke, 0);
	ck_assert_ptr_null(cfg->smoke);
	ck_assert_ptr_null(cfg->preview.header);
	ck_assert_uint_eq(cfg->preview.nfrom, 0);
	ck_assert_ptr_null(cfg->hooks.pre_switch);
	ck_assert_ptr_null(cfg->hooks.post_switch);
	ck_assert_ptr_null(cfg->hooks.rollback);
	ck_assert_ptr_null(cfg->hooks.window_end);
	ck_assert_uint_eq(cfg->hooks.timeout_ms, 30000);
	ck_assert_str_eq(cfg->control.socket, RUNSTATEDIR "/cutover/control.sock");
	ck_assert_uint_eq(cfg->control.mode, 0660);
	ck_assert_ptr_null(cfg->control.group);
	ck_assert_ptr_null(cfg->control.admin_group);
	/* Metrics are off unless the group is written... */
	ck_assert(!cfg->metrics.enabled);
	ck_assert_str_eq(cfg->metrics.listen.text, "127.0.0.1:9180");
	ck_assert_uint_eq(cfg->limits.header_size, 16384);
	ck_assert_uint_eq(cfg->limits.header_count, 100);
	ck_assert_uint_eq(cfg->limits.max_connections, 10000);
	ck_assert_uint_eq(cfg->limits.h2_max_streams, 100);
	ck_assert_uint_eq(cfg->timeouts.client_header_ms, 10000);
	ck_assert_uint_eq(cfg->timeouts.client_idle_ms, 60000);
	ck_assert_uint_eq(cfg->timeouts.connect_ms, 5000);
	ck_assert_uint_eq(cfg->timeouts.response_ms, 60000);
	ck_assert_uint_eq(cfg->timeouts.upstream_idle_ms, 30000);
	ck_assert_uint_eq(cfg->upstream.keepalive, CONFIG_KEEPALIVE_AUTO);
	ck_assert_uint_eq(cfg->upstream.purge_delay_ms, 5000);
	ck_assert_uint_eq(cfg->upstream.splice, 262144);
	config_free(cfg);

	/* ...and on, at the default address, when it is. */
	rc = load(BASE "metrics: { };\n", &cfg, &errs);
	ck_assert_int_eq(rc, 0);
	ck_assert(cfg->metrics.enabled);
	ck_assert_str_eq(cfg->metrics.listen.text, "127.0.0.1:9180");
	config_free(cfg);

	/* The default can be written out. */
	rc = load(BASE "upstream: { keepalive = \"auto\"; };\n", &cfg, &errs);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(cfg->upstream.keepalive, CONFIG_KEEPALIVE_AUTO);
	config_free(cfg);
}
END_TEST

struct bad_case {
	const char *text;  /* "@" is the temporary directory */
	const char *error; /* expected, after "FILE:" ("@" expanded too) */
};

/* Each case has exactly one error. Lines 1-2 are BASE. */
static const struct bad_case bad_cases[] = {
	{BASE "workers = \"4\";\n", "3: 'workers' must be an integer"},
	{BASE "workers = 300;\n", "3: 'workers' must be from 0 to 256, not 300"},
	{BASE "workers = 10000000000L;\n",
	    "3: 'workers' must be from 0 to 256, not 10000000000"},
	{BASE "workers = 1.0;\n", "3: 'workers' must be an integer"},
	{BASE "foo = 1;\n", "3: unknown key 'foo'"},
	{BASE "trusted_proxies = ( \"10.0.0.1/8\" );\n",
	    "3: 'trusted_proxies[0]': invalid network \"10.0.0.1/8\": address has bits set beyond /8"},
	{BASE "trusted_proxies = ( );\n", "3: 'trusted_proxies' needs at least one network"},
	{BASE "trusted_proxies = \"10.0.0.0/8\";\n",
	    "3: 'trusted_proxies' must be a list of \"address/prefix\" strings"},
	{"listen = ( { address = \"127.0.0.1:8080\"; proxy_protocol = 1; } );\n"
	 "pools = { blue = { servers = ( \"127.0.0.1:9001\" ); }; green = { servers = ( ); }; };\n",
	    "1: 'listen[0].proxy_protocol' must be true or false"},
	{BASE "health = {\n  intervall = \"2s\"; };\n",
	    "4: unknown key 'intervall' in 'health'"},
	{BASE "health = {\n  interval = \"2x\"; };\n",
	    "4: 'health.interval': invalid duration \"2x\" (use e.g. \"250ms\", "
	    "\"2s\", \"5m\")"},
	{BASE "health = { interval = 2; };\n",
	    "3: 'health.interval' must be a duration string like \"2s\""},
	{BASE "health = { interval = \"0s\"; };\n",
	    "3: 'health.interval' must be greater than 0"},
	{BASE "health = {\n timeout = \"2s\"; };\n",
	    "4: 'health.timeout' must be shorter than 'health.interval'"},
	{BASE "health = { path = \"healthz\"; };\n",
	    "3: 'health.path' must start with \"/\""},
	{BASE "health = { path = \"/a b\"; };\n",
	    "3: 'health.path' contains a space or a non-ASCII character "
	    "(percent-encode it)"},
	{BASE "health = { rise = 0; };\n",
	    "3: 'health.rise' must be from 1 to 1000, not 0"},
	{BASE "health = { fall = 0; };\n",
	    "3: 'health.fall' must be from 1 to 1000, not 0"},
	{BASE "health = { expect_status = 600; };\n",
	    "3: 'health.expect_status' must be from 100 to 599, not 600"},
	{BASE "health = 5;\n", "3: 'health' must be a group { ... }"},
	{BASE "initial = \"red\";\n",
	    "3: 'initial': must be \"blue\" or \"green\", not \"red\""},
	{BASE "log_level = \"verbose\";\n",
	    "3: 'log_level': must be \"error\", \"warn\", \"info\" or \"debug\", "
	    "not \"verbose\""},
	{BASE "state_file = \"var/state\";\n",
	    "3: 'state_file' must be an absolute path"},
	{BASE "switch = { drain_timeout = \"1.5s\"; };\n",
	    "3: 'switch.drain_timeout': invalid duration \"1.5s\" (use e.g. "
	    "\"250ms\", \"2s\", \"5m\")"},
	{BASE "switch = { min_healthy = -1; };\n",
	    "3: 'switch.min_healthy' must be from 0 to 100000, not -1"},
	{BASE "auto_rollback = { error_rate = 0; };\n",
	    "3: 'auto_rollback.error_rate' must be greater than 0 and at most 1, "
	    "not 0"},
	{BASE "auto_rollback = { error_rate = 1.5; };\n",
	    "3: 'auto_rollback.error_rate' must be greater than 0 and at most 1, "
	    "not 1.5"},
	{BASE "auto_rollback = { error_rate = \"5%\"; };\n",
	    "3: 'auto_rollback.error_rate' must be a number"},
	{BASE "auto_rollback = { enabled = 1; };\n",
	    "3: 'auto_rollback.enabled' must be true or false"},
	{BASE "auto_rollback = { latency_factor = 0.5; };\n",
	    "3: 'auto_rollback.latency_factor' must be 0 (off) or from 1 to 1000, "
	    "not 0.5"},
	{BASE "auto_rollback = { latency_factor = 1e400; };\n",
	    "3: 'auto_rollback.latency_factor' must be 0 (off) or from 1 to 1000, "
	    "not inf"},
	{BASE "auto_rollback = { window = \"25h\"; };\n",
	    "3: 'auto_rollback.window' must be at most 24h, not \"25h\""},
	{BASE "auto_rollback = { min_requests = 0; };\n",
	    "3: 'auto_rollback.min_requests' must be from 1 to 1000000000, not 0"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; };\n",
	    "2: pools: missing pool 'green'"},
	{BASE "pools = 1;\n", "3: duplicate setting name"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); };\n"
	    "  red = { servers = ( ); }; };\n",
	    "3: pools: unknown color 'red' (use blue or green)"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { }; };\n",
	    "2: 'pools.green.servers' is required (an empty list () is allowed)"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n",
	    "'pools' is required: pools = { blue = { servers = ( ... ); }; "
	    "green = { servers = ( ... ); }; };"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = (\n"
	    "  \"127.0.0.1\" ); }; };\n",
	    "3: 'pools.green.servers[0]': invalid address \"127.0.0.1\": missing "
	    "port (use \"127.0.0.1:8080\")"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = (\n"
	    "  \"local_host:80\" ); }; };\n",
	    "3: 'pools.green.servers[0]': invalid address \"local_host:80\": '_' is "
	    "not allowed in a host name"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = (\n"
	    "  \"green.test:0\" ); }; };\n",
	    "3: 'pools.green.servers[0]': invalid address \"green.test:0\": port must be 1..65535"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = (\n"
	    "  \"10.0.0:80\" ); }; };\n",
	    "3: 'pools.green.servers[0]': invalid address \"10.0.0:80\": not a numeric address nor a host name"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( \"a.test:80\",\n"
	    "  \"A.test:80\" ); }; green = { servers = ( ); }; };\n",
	    "3: 'pools.blue.servers[1]': duplicate server a.test:80"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n"
	    "dns = { nameservers = ( \"ns.test:53\" ); };\n",
	    "3: 'dns.nameservers[0]': invalid name server \"ns.test:53\": not a numeric "
	    "IPv4 address (host names are not allowed)"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n"
	    "dns = { refresh = \"10ms\"; };\n",
	    "3: 'dns.refresh' must be at least 1s, not \"10ms\""},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( \"10.0.0.1:80\",\n"
	    "  \"10.0.0.1:80\" ); }; green = { servers = ( ); }; };\n",
	    "3: 'pools.blue.servers[1]': duplicate server 10.0.0.1:80"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( \"*:80\" ); }; green = { servers = ( ); }; };\n",
	    "2: 'pools.blue.servers[0]': a server needs a real address, not "
	    "0.0.0.0:80"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( 80 ); }; green = { servers = ( ); }; };\n",
	    "2: 'pools.blue.servers[0]' must be an \"ip:port\" or \"host:port\" string"},
	{"listen = ( { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( );\n"
	    "  tls = { ca = \"nope.pem\"; }; }; };\n",
	    "3: 'pools.green.tls.ca': cannot read @/nope.pem: No such file or "
	    "directory"},
	{"listen = ( { address = \"127.0.0.1:8080\"; },\n"
	    "  { address = \"127.0.0.1:8080\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "2: 'listen[1].address': duplicate listener 127.0.0.1:8080 (also at "
	    "line 1)"},
	{"listen = ( );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "1: 'listen' needs at least one listener"},
	{"pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "'listen' is required: at least one listener, e.g. listen = ( { "
	    "address = \"0.0.0.0:8080\"; } );"},
	{"listen = { address = \"127.0.0.1:8080\"; };\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "1: 'listen' must be a list of groups: ( { address = \"0.0.0.0:8080\"; } )"},
	{"listen = ( { address = \"127.0.0.1:99999\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "1: 'listen[0].address': invalid address \"127.0.0.1:99999\": port must "
	    "be a number from 1 to 65535"},
	{"listen = ( { address = \"127.0.0.1:80\"; port = 80; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "1: unknown key 'port' in 'listen[0]'"},
	{"listen = ( { address = \"127.0.0.1:8443\";\n"
	    "  tls = { certs = ( { cert = \"missing.pem\"; key = \"@/a.key\"; } ); }; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "2: 'listen[0].tls.certs[0].cert': cannot read @/missing.pem: No such "
	    "file or directory"},
	{"listen = ( { address = \"127.0.0.1:8443\";\n"
	    "  tls = { certs = ( { cert = \"@/a.pem\"; } ); }; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "2: 'listen[0].tls.certs[0].key' is required"},
	{"listen = ( { address = \"127.0.0.1:8443\";\n"
	    "  tls = { min_version = \"TLSv1.3\"; }; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "2: 'listen[0].tls.certs' is required when 'tls' is set"},
	{"listen = ( { address = \"127.0.0.1:8443\";\n"
	    "  tls = { certs = ( { cert = \"@/a.pem\"; key = \"@/a.key\"; } );\n"
	    "  min_version = \"TLSv1.0\"; }; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n",
	    "3: 'listen[0].tls.min_version' must be \"TLSv1.2\" or \"TLSv1.3\", not "
	    "\"TLSv1.0\""},
	{BASE "smoke = (\n { method = \"GET\"; } );\n",
	    "4: 'smoke[0].path' is required"},
	{BASE "smoke = { path = \"/\"; };\n",
	    "3: 'smoke' must be a list of groups: ( { path = \"/\"; } )"},
	{BASE "smoke = ( { path = \"/\";\n  headers = ( { name = \"X Bad\"; "
	    "value = \"v\"; } ); } );\n",
	    "4: 'smoke[0].headers[0].name': \"X Bad\" is not a valid HTTP token"},
	{BASE "smoke = ( { path = \"/\"; headers = { Host = \"x\"; }; } );\n",
	    "3: 'smoke[0].headers' must be a list of groups: ( { name = \"Host\"; "
	    "value = \"example.com\"; } )"},
	{BASE "smoke = ( { path = \"/\"; method = \"G T\"; } );\n",
	    "3: 'smoke[0].method': \"G T\" is not a valid HTTP token"},
	{BASE "smoke = ( { path = \"/\"; timeout = \"0ms\"; } );\n",
	    "3: 'smoke[0].timeout' must be greater than 0"},
	{BASE "smoke = ( { path = \"/\"; expect_status = 99; } );\n",
	    "3: 'smoke[0].expect_status' must be from 100 to 599, not 99"},
	{BASE "preview = { header = \"X-Color\"; };\n",
	    "3: 'preview.from' is required: the client networks that may pick a "
	    "color, e.g. ( \"127.0.0.1/32\" )"},
	{BASE "preview = { from = ( \"127.0.0.1/32\" ); };\n",
	    "3: 'preview.header' is required"},
	{BASE "preview = { header = \"X-Color\";\n from = ( \"10.0.0.1/8\" ); };\n",
	    "4: 'preview.from[0]': invalid network \"10.0.0.1/8\": address has bits "
	    "set beyond /8"},
	{BASE "preview = { header = \"X-Color\"; from = ( \"::1/129\" ); };\n",
	    "3: 'preview.from[0]': invalid network \"::1/129\": prefix length must "
	    "be 0 to 128"},
	{BASE "preview = { header = \"X-Color\"; from = ( \"me/32\" ); };\n",
	    "3: 'preview.from[0]': invalid network \"me/32\": not a numeric IP "
	    "address"},
	{BASE "hooks = { pre_switch = \"hook\"; };\n",
	    "3: 'hooks.pre_switch' must be an absolute path"},
	{BASE "hooks = { post_switch = \"@/noexec\"; };\n",
	    "3: 'hooks.post_switch': @/noexec is not an executable file"},
	{BASE "hooks = { rollback = \"@/absent\"; };\n",
	    "3: 'hooks.rollback': @/absent: No such file or directory"},
	{BASE "hooks = { window_end = \"@\"; };\n",
	    "3: 'hooks.window_end': @ is not an executable file"},
	{BASE "hooks = { timeout = \"0s\"; };\n",
	    "3: 'hooks.timeout' must be greater than 0"},
	{BASE "control = { mode = \"0999\"; };\n",
	    "3: 'control.mode': must be octal digits like \"0660\", not \"0999\""},
	{BASE "control = { mode = 660; };\n",
	    "3: 'control.mode' must be a string of octal digits like \"0660\""},
	{BASE "control = { group = \"no-such-group-cutover\"; };\n",
	    "3: 'control.group': no such group \"no-such-group-cutover\""},
	{BASE "control = { admin_group = \"\"; };\n",
	    "3: 'control.admin_group' must not be empty"},
	{BASE "control = { socket = \"control.sock\"; };\n",
	    "3: 'control.socket' must be an absolute path"},
	{BASE "metrics = { listen = \"9180\"; };\n",
	    "3: 'metrics.listen': invalid address \"9180\": missing port (use "
	    "\"127.0.0.1:8080\")"},
	{BASE "metrics = {\n listen = \"127.0.0.1:8080\"; };\n",
	    "4: 'metrics.listen': 127.0.0.1:8080 is also a proxy listener (line 1)"},
	{BASE "limits = { header_size = 100; };\n",
	    "3: 'limits.header_size' must be from 1024 to 81920, not 100"},
	/* Past http-parser's HTTP_MAX_HEADER_SIZE heads would get 400. */
	{BASE "limits = { header_size = 81921; };\n",
	    "3: 'limits.header_size' must be from 1024 to 81920, not 81921"},
	/* libconfig 1.5 reads this as 1: the text is checked. */
	{BASE "limits = { max_connections = 4294967297; };\n",
	    "3: integer 4294967297 is out of range: libconfig reads an integer "
	    "without the L suffix as 32 bits and would silently wrap it"},
	/* ...and this as -2147483648: one error, not a second one about it. */
	{BASE "limits = {\n max_connections = 2147483648; };\n",
	    "4: integer 2147483648 is out of range: libconfig reads an integer "
	    "without the L suffix as 32 bits and would silently wrap it"},
	{BASE "health = { rise = 0x100000002; };\n",
	    "3: integer 0x100000002 is out of range: libconfig reads an integer "
	    "without the L suffix as 32 bits and would silently wrap it"},
	{BASE "limits = { max_connections = 4294967297L; };\n",
	    "3: 'limits.max_connections' must be from 1 to 1000000, not 4294967297"},
	{BASE "limits = { max_connections = 1000001; };\n",
	    "3: 'limits.max_connections' must be from 1 to 1000000, not 1000001"},
	{BASE "upstream = { keepalive = 100001; };\n",
	    "3: 'upstream.keepalive' must be from 0 to 100000, not 100001"},
	{BASE "switch = { min_healthy = 100001; };\n",
	    "3: 'switch.min_healthy' must be from 0 to 100000, not 100001"},
	{BASE "switch = { safety_window = \"2562047788015h\"; };\n",
	    "3: 'switch.safety_window' must be at most 720h, not \"2562047788015h\""},
	{BASE "switch = { safety_window = \"18446744073709551615ms\"; };\n",
	    "3: 'switch.safety_window' must be at most 720h, not "
	    "\"18446744073709551615ms\""},
	{BASE "switch = { safety_window = \"18446744073709551616ms\"; };\n",
	    "3: 'switch.safety_window': invalid duration \"18446744073709551616ms\" "
	    "(use e.g. \"250ms\", \"2s\", \"5m\")"},
	{BASE "switch = { drain_timeout = \"1441m\"; };\n",
	    "3: 'switch.drain_timeout' must be at most 24h, not \"1441m\""},
	{BASE "health = { interval = \"61m\"; };\n",
	    "3: 'health.interval' must be at most 1h, not \"61m\""},
	{BASE "health = { timeout = \"3601s\"; };\n",
	    "3: 'health.timeout' must be at most 1h, not \"3601s\""},
	{BASE "smoke = ( { path = \"/\"; timeout = \"3600001ms\"; } );\n",
	    "3: 'smoke[0].timeout' must be at most 1h, not \"3600001ms\""},
	{BASE "hooks = { timeout = \"25h\"; };\n",
	    "3: 'hooks.timeout' must be at most 24h, not \"25h\""},
	{BASE "timeouts = { client_header = \"86400001ms\"; };\n",
	    "3: 'timeouts.client_header' must be at most 24h, not \"86400001ms\""},
	{BASE "timeouts = { client_idle = \"25h\"; };\n",
	    "3: 'timeouts.client_idle' must be at most 24h, not \"25h\""},
	{BASE "timeouts = { connect = \"25h\"; };\n",
	    "3: 'timeouts.connect' must be at most 24h, not \"25h\""},
	{BASE "timeouts = { response = \"25h\"; };\n",
	    "3: 'timeouts.response' must be at most 24h, not \"25h\""},
	{BASE "timeouts = { upstream_idle = \"25h\"; };\n",
	    "3: 'timeouts.upstream_idle' must be at most 24h, not \"25h\""},
	{BASE "timeouts = { handshake = \"25h\"; };\n",
	    "3: 'timeouts.handshake' must be at most 24h, not \"25h\""},
	{BASE "limits = { header_count = 10001; };\n",
	    "3: 'limits.header_count' must be from 1 to 10000, not 10001"},
	{BASE "limits = { h2_max_streams = 0; };\n",
	    "3: 'limits.h2_max_streams' must be from 1 to 10000, not 0"},
	{BASE "limits = {\n h2_max_streams = 10001; };\n",
	    "4: 'limits.h2_max_streams' must be from 1 to 10000, not 10001"},
	{BASE "limits = { h2_max_streams = \"100\"; };\n",
	    "3: 'limits.h2_max_streams' must be an integer"},
	{"listen = ( { address = \"127.0.0.1:8080\";\n http2 = \"yes\"; } );\n"
	 "pools = { blue = { servers = ( \"127.0.0.1:9001\" ); }; green = { servers = ( ); }; };\n",
	    "2: 'listen[0].http2' must be true or false"},
	{BASE "limits = { max_connections = 0; };\n",
	    "3: 'limits.max_connections' must be from 1 to 1000000, not 0"},
	{BASE "timeouts = { connect = \"0s\"; };\n",
	    "3: 'timeouts.connect' must be greater than 0"},
	{BASE "timeouts = { response = \"1d\"; };\n",
	    "3: 'timeouts.response': invalid duration \"1d\" (use e.g. \"250ms\", "
	    "\"2s\", \"5m\")"},
	{BASE "upstream = { keepalive = -1; };\n",
	    "3: 'upstream.keepalive' must be from 0 to 100000, not -1"},
	{BASE "upstream = { keepalive = 1; idle = \"5s\"; };\n",
	    "3: unknown key 'idle' in 'upstream'"},
	{BASE "upstream = { keepalive = \"none\"; };\n",
	    "3: 'upstream.keepalive' must be \"auto\" or an integer from 0 to 100000"},
	{BASE "upstream = { keepalive = true; };\n",
	    "3: 'upstream.keepalive' must be \"auto\" or an integer from 0 to 100000"},
	{BASE "upstream = { purge_delay = \"61m\"; };\n",
	    "3: 'upstream.purge_delay' must be at most 1h, not \"61m\""},
	{BASE "upstream = { purge_delay = \"0s\"; };\n",
	    "3: 'upstream.purge_delay' must be greater than 0"},
	{BASE "upstream = { splice = -1; };\n",
	    "3: 'upstream.splice' must be from 0 to 1099511627776, not -1"},
	{BASE "upstream = { splice = \"1m\"; };\n",
	    "3: 'upstream.splice' must be an integer"},
	/* A syntax error: libconfig's own text, its line. */
	{BASE "workers = = 4;\n", "3: syntax error"},
};

START_TEST(test_bad)
{
	const struct bad_case *c = &bad_cases[_i];
	struct config_errors errs = {0};
	struct config *cfg = (struct config *)&errs; /* must become NULL */
	char *want, *full;
	int rc;

	rc = load(c->text, &cfg, &errs);
	want = expand(c->error);
	/* "FILE:LINE: message", or "FILE: message" when there is no line. */
	ck_assert_int_ne(asprintf(&full, want[0] >= '0' && want[0] <= '9' ?
	    "%s:%s" : "%s: %s", conf_path, want), -1);
	if (errs.n != 1)
		dump_errors(&errs);
	ck_assert_msg(rc == -1, "case %d: accepted, want \"%s\"", _i, full);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(errs.n == 1, "case %d: %zu errors, want 1", _i, errs.n);
	ck_assert_str_eq(errs.msgs[0], full);
	free(want);
	free(full);
	config_errors_free(&errs);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_ptr_null(errs.msgs);
}
END_TEST

START_TEST(test_multiple_errors)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *line;
	int rc;

	rc = load("listen = ( { address = \"nowhere\"; } );\n"
	    "workers = \"two\";\n"
	    "health = {\n"
	    "  interval = \"2x\";\n"
	    "  colour = \"blue\";\n"
	    "};\n", &cfg, &errs);
	ck_assert_int_eq(rc, -1);
	ck_assert_ptr_null(cfg);
	if (errs.n != 5)
		dump_errors(&errs);
	ck_assert_uint_eq(errs.n, 5);
	/* In table order: listen, workers, pools, health. */
	ck_assert_int_ne(asprintf(&line, "%s:1: 'listen[0].address': invalid "
	    "address \"nowhere\": missing port (use \"127.0.0.1:8080\")",
	    conf_path), -1);
	ck_assert_str_eq(errs.msgs[0], line);
	free(line);
	ck_assert_int_ne(asprintf(&line, "%s:2: 'workers' must be an integer",
	    conf_path), -1);
	ck_assert_str_eq(errs.msgs[1], line);
	free(line);
	ck_assert_int_ne(asprintf(&line, "%s: 'pools' is required: pools = { "
	    "blue = { servers = ( ... ); }; green = { servers = ( ... ); }; };",
	    conf_path), -1);
	ck_assert_str_eq(errs.msgs[2], line);
	free(line);
	ck_assert_int_ne(asprintf(&line, "%s:5: unknown key 'colour' in 'health'",
	    conf_path), -1);
	ck_assert_str_eq(errs.msgs[3], line);
	free(line);
	ck_assert_int_ne(asprintf(&line, "%s:4: 'health.interval': invalid "
	    "duration \"2x\"", conf_path), -1);
	ck_assert_msg(strncmp(errs.msgs[4], line, strlen(line)) == 0, "got %s",
	    errs.msgs[4]);
	free(line);

	/* Errors are appended: earlier ones are kept. */
	rc = load("workers = -1;\n", &cfg, &errs);
	ck_assert_int_eq(rc, -1);
	ck_assert_uint_eq(errs.n, 8);
	config_errors_free(&errs);
}
END_TEST

START_TEST(test_missing_file)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *want;

	ck_assert_int_eq(config_load(conf_path, &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_int_ne(asprintf(&want, "%s: cannot read: No such file or "
	    "directory", conf_path), -1);
	ck_assert_str_eq(errs.msgs[0], want);
	free(want);
	config_errors_free(&errs);

	/* A directory opens, but is no configuration. */
	ck_assert_int_eq(config_load(tmpdir, &cfg, &errs), -1);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_int_ne(asprintf(&want, "%s: cannot read: Is a directory",
	    tmpdir), -1);
	ck_assert_str_eq(errs.msgs[0], want);
	free(want);
	config_errors_free(&errs);
}
END_TEST

START_TEST(test_syntax_error)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *want;

	ck_assert_int_eq(load(BASE "\n\nhealth = { path = \"/x\";\n"
	    "  rise = ; };\n", &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_int_ne(asprintf(&want, "%s:6: ", conf_path), -1);
	ck_assert_msg(strncmp(errs.msgs[0], want, strlen(want)) == 0,
	    "got \"%s\", want prefix \"%s\"", errs.msgs[0], want);
	free(want);
	config_errors_free(&errs);
}
END_TEST

START_TEST(test_include)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *want;

	/* @include is relative to the including file; errors name the
	 * included file. */
	write_file("pools.conf", "pools = { blue = { servers = ( \"10.0.0.1:80\" ); };\n"
	    "  green = { servers = ( \"10.0.0.2:80\" ); }; };\n", 0644);
	/* Not load(): it would expand the "@" of @include. */
	write_file("cutover.conf", "listen = ( { address = \"127.0.0.1:8080\"; "
	    "} );\n@include \"pools.conf\"\n", 0644);
	ck_assert_int_eq(config_load(conf_path, &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->pools[COLOR_GREEN].nservers, 1);
	config_free(cfg);

	write_file("pools.conf", "pools = { blue = { servers = ( ); };\n"
	    "  green = { servers = ( \"10.0.0.2\" ); }; };\n", 0644);
	ck_assert_int_eq(config_load(conf_path, &cfg, &errs), -1);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_int_ne(asprintf(&want, "%s/pools.conf:2: ", tmpdir), -1);
	ck_assert_msg(strncmp(errs.msgs[0], want, strlen(want)) == 0, "got %s",
	    errs.msgs[0]);
	free(want);
	config_errors_free(&errs);
}
END_TEST

/* Every maximum is itself accepted; big numbers in comments, strings and
 * 64-bit literals are not taken for wrapped integers. */
START_TEST(test_maxima_accepted)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	int rc;

	rc = load(BASE "# 99999999999 in a comment\n"
	    "/* 4294967297\n 8589934592 */ // 4294967297\n"
	    "limits = { header_size = 81920; header_count = 10000;\n"
	    "  max_connections = 1000000; h2_max_streams = 10000; };\n"
	    "switch = { safety_window = \"720h\"; drain_timeout = \"24h\";\n"
	    "  min_healthy = 100000; };\n"
	    "health = { interval = \"1h\"; timeout = \"59m\"; rise = 1000;\n"
	    "  fall = 1000; path = \"/h99999999999\"; };\n"
	    "auto_rollback = { window = \"24h\"; min_requests = 1000000000;\n"
	    "  latency_factor = 1000; error_rate = 1.5e-1; };\n"
	    "hooks = { timeout = \"24h\"; };\n"
	    "smoke = ( { path = \"/s?n=4294967297\"; timeout = \"1h\"; } );\n"
	    "timeouts = { client_header = \"24h\"; client_idle = \"24h\";\n"
	    "  connect = \"24h\"; response = \"24h\"; upstream_idle = \"24h\";\n"
	    "  handshake = \"86400000ms\"; };\n"
	    "upstream = { keepalive = 100000; purge_delay = \"1h\"; };\n"
	    "workers = 256;\n", &cfg, &errs);
	if (rc != 0)
		dump_errors(&errs);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(cfg->limits.header_size, 81920);
	ck_assert_uint_eq(cfg->limits.max_connections, 1000000);
	ck_assert_uint_eq(cfg->limits.h2_max_streams, 10000);
	ck_assert_uint_eq(cfg->sw.safety_window_ms, UINT64_C(720) * 3600 * 1000);
	ck_assert_uint_eq(cfg->timeouts.handshake_ms, 86400000);
	ck_assert_uint_eq(cfg->upstream.keepalive, 100000);
	ck_assert_uint_eq(cfg->upstream.purge_delay_ms, 3600000);
	ck_assert_uint_eq(cfg->auto_rollback.min_requests, 1000000000);
	config_free(cfg);
}
END_TEST

/* A wrapped integer in an @include'd file is reported at its own line. */
START_TEST(test_include_wrapped_integer)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char *want;

	write_file("limits.conf", "# limits\nlimits = {\n  max_connections = "
	    "4294967297; };\n", 0644);
	write_file("cutover.conf", "listen = ( { address = \"127.0.0.1:8080\"; "
	    "} );\npools = { blue = { servers = ( ); }; green = { servers = ( ); "
	    "}; };\n@include \"limits.conf\"\n", 0644);
	ck_assert_int_eq(config_load(conf_path, &cfg, &errs), -1);
	ck_assert_ptr_null(cfg);
	if (errs.n != 1)
		dump_errors(&errs);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_int_ne(asprintf(&want, "%s/limits.conf:3: integer 4294967297 "
	    "is out of range", tmpdir), -1);
	ck_assert_msg(strncmp(errs.msgs[0], want, strlen(want)) == 0, "got %s",
	    errs.msgs[0]);
	free(want);
	config_errors_free(&errs);
}
END_TEST

/* config_scan_ints on its own: which literals, at which lines. */
struct scan_case {
	const char *text;
	const char *want; /* "LINE:LITERAL " for each, in order */
};

static const struct scan_case scan_cases[] = {
	{"a = 2147483647; b = -2147483648; c = 0x7fffffff;", ""},
	{"a = 2147483648;", "1:2147483648 "},
	{"a = -2147483649;", "1:-2147483649 "},
	{"a = +4294967297;", "1:+4294967297 "},
	{"\n\na = 99999999999999999999999;", "3:99999999999999999999999 "},
	{"a = 0x80000000; b = 0X1ffffffff;", "1:0x80000000 1:0X1ffffffff "},
	{"a = 4294967297L; b = 0x1ffffffffL; c = 4294967297LL;", ""},
	{"a = 4294967297.0; b = 1e20; c = 5000000000e-3; d = .5e99;", ""},
	{"# 4294967297\n// 4294967297\n/* 4294967297\n*/ a = 4294967298;",
	    "4:4294967298 "},
	{"a = \"4294967297\"; b = \"x\\\" 4294967297\"; c = 4294967299;",
	    "1:4294967299 "},
	{"s = \"multi\nline\"; x = 5000000000;", "2:5000000000 "},
	{"name4294967297 = 1; n-4294967297 = 2; *4294967297 = 3;", ""},
	{"a = ( 4294967297, 1, [ -9999999999 ] );", "1:4294967297 1:-9999999999 "},
	{"a = 4294967297", "1:4294967297 "},
	{"/* unterminated 4294967297", ""},
	{"\"unterminated 4294967297", ""},
};

static void
scan_collect(void *arg, int line, const char *lit, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);

	snprintf(out + n, 512 - n, "%d:%.*s ", line, (int)len, lit);
}

START_TEST(test_scan_ints)
{
	const struct scan_case *c = &scan_cases[_i];
	char out[512] = "";
	size_t n, spaces = 0;
	const char *p;

	n = config_scan_ints(c->text, strlen(c->text), scan_collect, out);
	ck_assert_str_eq(out, c->want);
	for (p = c->want; *p != '\0'; p++)
		spaces += *p == ' ';
	ck_assert_uint_eq(n, spaces);
}
END_TEST

START_TEST(test_errors_print)
{
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char buf[512] = "", *want;
	FILE *fp;

	ck_assert_int_eq(load(BASE "workers = 1000;\nfoo = 1;\n", &cfg, &errs), -1);
	fp = fmemopen(buf, sizeof(buf) - 1, "w");
	ck_assert_ptr_nonnull(fp);
	config_errors_print(&errs, fp);
	fclose(fp);
	ck_assert_int_ne(asprintf(&want, "%s:4: unknown key 'foo'\n"
	    "%s:3: 'workers' must be from 0 to 256, not 1000\n", conf_path,
	    conf_path), -1);
	ck_assert_str_eq(buf, want);
	free(want);
	config_errors_free(&errs);
}
END_TEST

START_TEST(test_reload_check)
{
	struct config_errors errs = {0};
	struct config *old = NULL, *next = NULL;
	char *want;

	ck_assert_int_eq(load(BASE "workers = 2;\n", &old, &errs), 0);

	/* Pools, health, log level, listeners' keys, limits: a reload may
	 * change them. */
	ck_assert_int_eq(load("listen = ( { address = \"127.0.0.1:8080\"; http2 = true; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = "
	    "( \"127.0.0.1:9003\" ); }; };\n"
	    "workers = 2; log_level = \"debug\"; health = { rise = 9; };\n"
	    "limits = { h2_max_streams = 5; };\n",
	    &next, &errs), 0);
	ck_assert_int_eq(config_reload_check(old, next, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
	config_free(next);

	/* Workers, control socket, metrics: only a restart. Listeners may
	 * change (the workers open and close sockets). */
	ck_assert_int_eq(load("listen = ( { address = \"127.0.0.1:8081\"; } );\n"
	    "pools = { blue = { servers = ( ); }; green = { servers = ( ); }; };\n"
	    "workers = 3; metrics = { };\n"
	    "control = { socket = \"/run/other.sock\"; admin_group = \"root\"; };\n",
	    &next, &errs), 0);
	ck_assert_int_eq(config_reload_check(old, next, &errs), -1);
	if (errs.n != 3)
		dump_errors(&errs);
	ck_assert_uint_eq(errs.n, 3);
	/* Each error points at the key's line in the new file. */
	ck_assert_int_ne(asprintf(&want, "%s:3: 'workers' cannot be changed by a "
	    "reload; restart cutoverd", conf_path), -1);
	ck_assert_str_eq(errs.msgs[0], want);
	free(want);
	ck_assert_int_ne(asprintf(&want, "%s:4: 'control.socket' cannot be "
	    "changed by a reload; restart cutoverd", conf_path), -1);
	ck_assert_str_eq(errs.msgs[1], want);
	free(want);
	ck_assert_int_ne(asprintf(&want, "%s:3: 'metrics' cannot be added or "
	    "removed by a reload; restart cutoverd", conf_path), -1);
	ck_assert_str_eq(errs.msgs[2], want);
	free(want);
	config_errors_free(&errs);
	config_free(next);
	config_free(old);
}
END_TEST

START_TEST(test_colors)
{
	enum color c = COLOR_BLUE;

	ck_assert_str_eq(color_name(COLOR_BLUE), "blue");
	ck_assert_str_eq(color_name(COLOR_GREEN), "green");
	ck_assert_int_eq(color_parse("green", &c), 0);
	ck_assert_int_eq(c, COLOR_GREEN);
	ck_assert_int_eq(color_parse("blue", &c), 0);
	ck_assert_int_eq(c, COLOR_BLUE);
	ck_assert_int_eq(color_parse("Blue", &c), -1);
	ck_assert_int_eq(color_parse("", &c), -1);
	ck_assert_int_eq(c, COLOR_BLUE);
}
END_TEST

/* The shipped examples must load (the annotated one without its TLS and
 * hook files, which it keeps commented out). */
START_TEST(test_shipped_examples)
{
	static const char *const files[] = {"cutover.conf", "demo.conf"};
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/../conf/%s", TEST_SRCDIR, files[i]);
		if (config_load(path, &cfg, &errs) == -1)
			dump_errors(&errs);
		ck_assert_msg(errs.n == 0, "%s does not load", path);
		config_free(cfg);
		cfg = NULL;
	}
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");
	TCase *tb = tcase_create("bad");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_http2_default);
	tcase_add_test(tc, test_multiple_errors);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_include);
	tcase_add_test(tc, test_include_wrapped_integer);
	tcase_add_test(tc, test_maxima_accepted);
	tcase_add_loop_test(tc, test_scan_ints, 0,
	    (int)(sizeof(scan_cases) / sizeof(scan_cases[0])));
	tcase_add_test(tc, test_errors_print);
	tcase_add_test(tc, test_reload_check);
	tcase_add_test(tc, test_colors);
	tcase_add_test(tc, test_shipped_examples);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tb, setup, teardown);
	tcase_add_loop_test(tb, test_bad, 0,
	    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	suite_add_tcase(s, tb);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
