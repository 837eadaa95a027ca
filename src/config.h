#ifndef CUTOVER_SRC_CONFIG_H
#define CUTOVER_SRC_CONFIG_H

#ifdef CUTOVER_PURE
#error "config.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * The configuration: parsed from a libconfig file into a fresh struct config,
 * validated whole, and only then handed to the daemon. A running daemon never
 * mutates a struct config; a reload builds a new one. Every key is listed in
 * one table in config.c (name, type, default, validator) and documented in
 * cutover.conf(5).
 */

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "addr.h"
#include "color.h"
#include "dnsname.h"

struct config_tls_cert {
	char *cert; /* PEM path, chain included */
	char *key;
};

struct config_listen {
	struct addr addr;
	int line;
	struct config_tls_cert *certs; /* NULL/0 for plain HTTP */
	size_t ncerts;
	char *tls_min_version; /* "TLSv1.2" (default) or "TLSv1.3"; set even without TLS */
	char *tls_ciphers;     /* OpenSSL cipher list for TLS 1.2; NULL: the built-in ECDHE AES-GCM/ChaCha20 list */
	bool proxy_protocol;   /* each connection begins with a PROXY protocol header */
	bool http2;            /* HTTP/2: ALPN "h2" with TLS, h2c with prior knowledge without;
	                        * default true with TLS, false without */
};

/* Upstream TLS of a pool (issue #5; parsed and validated now). */
struct config_pool_tls {
	bool enabled;
	bool verify;
	char *ca;
	char *sni;
};

/* A server written as "host:port": resolved with DNS (see resolver.h). */
struct config_name {
	char host[DNSNAME_HOST_MAX];
	unsigned port;
	char text[DNSNAME_HOST_MAX + 8]; /* "host:port" */
	int line;
	int index; /* position in servers = ( ... ) */
};

struct config_pool {
	struct addr *servers; /* the numeric ones */
	size_t nservers;
	struct config_name *names; /* the ones by name */
	size_t nnames;
	struct config_pool_tls tls;
};

/* Group "dns" { refresh; timeout; allow_unresolved; nameservers; }. */
struct config_dns {
	uint64_t refresh_ms;   /* default 30s (or the TTL when shorter) */
	uint64_t timeout_ms;   /* one lookup attempt, default 5s */
	bool allow_unresolved; /* start even when a name does not resolve */
	struct addr *nameservers; /* replace resolv.conf's when set */
	size_t nnameservers;
};

struct config_health {
	char *path;           /* default "/healthz" */
	uint64_t interval_ms; /* default 2s */
	uint64_t timeout_ms;  /* default 1s */
	unsigned rise;        /* default 2 */
	unsigned fall;        /* default 3 */
	int expect_status;    /* default 200 */
};

struct config_switch {
	unsigned min_healthy;      /* default 1 */
	uint64_t drain_timeout_ms; /* default 30s */
	uint64_t safety_window_ms; /* default 5m */
	uint64_t ramp_step_ms;     /* default 1m: how long a ramp step holds */
	char *ramp_cookie;         /* default "cutover_bucket" */
	char *ramp_by;             /* "cookie" (default) or "address" */
};

struct config_auto_rollback {
	bool enabled;          /* default true */
	double error_rate;     /* default 0.05, in (0,1] */
	unsigned min_requests; /* default 50 */
	uint64_t window_ms;    /* default 30s */
	double latency_factor; /* default 0 = latency trigger off */
};

struct config_header {
	char *name;
	char *value;
};

struct config_smoke {
	char *method; /* default "GET" */
	char *path;   /* required */
	struct config_header *headers;
	size_t nheaders;
	int expect_status;   /* default 200 */
	char *expect_body;   /* substring, NULL for any */
	uint64_t timeout_ms; /* default 2s */
};

struct config_preview {
	char *header; /* NULL: preview routing off */
	struct addr_cidr *from;
	size_t nfrom;
};

struct config_hooks {
	char *pre_switch;
	char *post_switch;
	char *rollback;
	char *window_end;
	uint64_t timeout_ms; /* default 30s */
};

struct config_control {
	char *socket; /* default RUNSTATEDIR "/cutover/control.sock" */
	unsigned mode; /* default 0660 */
	char *group;
	char *admin_group;
};

struct config_metrics {
	bool enabled;
	struct addr listen;
};

/* Request limits: group "limits" { header_size; header_count; max_connections;
 * h2_max_streams; }. */
struct config_limits {
	size_t header_size;       /* max bytes of a request/response head, default 16384 -> 431 */
	unsigned header_count;    /* max header fields, default 100 -> 431 */
	unsigned max_connections; /* max client connections, whole daemon, default 10000 */
	unsigned h2_max_streams;  /* max concurrent streams of an HTTP/2 connection, default 100 */
};

/* Timeouts, all in milliseconds: group "timeouts" { client_header; client_idle;
 * connect; response; upstream_idle; } as duration strings. */
struct config_timeouts {
	uint64_t client_header_ms; /* a request head must arrive within, default 10s -> 408 */
	uint64_t client_idle_ms;   /* idle keep-alive client connection closed after, default 60s */
	uint64_t connect_ms;       /* upstream connect, default 5s */
	uint64_t response_ms;      /* upstream silent for this long while a response is due, default 60s -> 504 */
	uint64_t upstream_idle_ms; /* idle pooled upstream connection closed after, default 30s */
	uint64_t handshake_ms;     /* a TLS handshake must finish within, default 10s */
};

/* upstream.keepalive = "auto" (the default): no fixed cap on idle connections. */
#define CONFIG_KEEPALIVE_AUTO UINT_MAX

/* Group "upstream" { keepalive; purge_delay; splice; }. */
struct config_upstream {
	unsigned keepalive;      /* most idle connections kept per server per worker; 0 disables
	                            reuse; CONFIG_KEEPALIVE_AUTO (default): only demand decides */
	uint64_t purge_delay_ms; /* idle connections unused this long are surplus, half of them
	                            closed every purge_delay; default 5s */
	size_t splice;           /* Content-Length bodies with at least this many bytes to go
	                            move upstream -> client by splice(2) on plain
	                            connections; 0 disables; default 262144 */
};

/* Collected errors, each already formatted as "FILE:LINE: message". */
/* Group "fleet" (DESIGN.md "A fleet of cutoverd on etcd"); absent: no fleet. */
struct config_fleet {
	bool enabled;
	char **etcd;   /* endpoints "http://host:port" or "https://host:port" */
	size_t netcd;
	char *key;     /* key prefix, "/cutover/shop" (no trailing '/') */
	char *node;    /* this node's name; NULL: the host name */
	uint64_t lease_ms;   /* default 10s */
	uint64_t timeout_ms; /* default 2s */
	char *tls_ca, *tls_cert, *tls_key; /* group fleet.tls */
};

struct config_errors {
	char **msgs;
	size_t n;
};

struct config {
	char *path;
	/* Accepted but unsafe settings, "FILE:LINE: warning: ...": cutoverd -t
	 * prints them, the daemon logs them at start. */
	struct config_errors warnings;
	struct config_listen *listens;
	size_t nlistens;
	unsigned workers;  /* as written; 0 means one per CPU (see config_workers()) */
	int log_level;     /* enum log_level; key log_level = "error"|"warn"|"info"|"debug", default "info" */
	enum color initial; /* default blue */
	char *state_file;   /* default LOCALSTATEDIR "/lib/cutover/state" */
	char *access_log;   /* NULL: no access log */
	struct config_pool pools[COLOR_COUNT];
	struct config_health health;
	struct config_switch sw;
	struct config_auto_rollback auto_rollback;
	struct config_smoke *smoke;
	size_t nsmoke;
	struct config_preview preview;
	/* trusted_proxies: peers whose X-Forwarded-For is kept and extended */
	struct addr_cidr *trusted_proxies;
	size_t ntrusted_proxies;
	struct config_hooks hooks;
	struct config_control control;
	struct config_metrics metrics;
	struct config_limits limits;
	struct config_timeouts timeouts;
	struct config_upstream upstream;
	struct config_fleet fleet;
	struct config_dns dns;
};

/*
 * Reads and validates path. On success returns 0 and *out owns a new config
 * (free with config_free). On failure returns -1, *out is NULL, and every
 * problem found (not just the first) is appended to errs as
 * "FILE:LINE: message"; errors without a line (unreadable file) are
 * "FILE: message". Callable from any thread; touches no global state.
 */
int config_load(const char *path, struct config **out, struct config_errors *errs)
    __attribute__((warn_unused_result));

void config_free(struct config *cfg);

/*
 * Compares a running configuration with a freshly loaded one and appends an
 * error ("FILE: 'workers' cannot be changed by a reload; restart cutoverd")
 * for each key that a reload may not change (listen, workers, state_file,
 * control.socket/mode/group, metrics). Returns 0 when the reload may proceed,
 * -1 otherwise.
 */
int config_reload_check(const struct config *old, const struct config *next,
    struct config_errors *errs) __attribute__((warn_unused_result));

/* Number of servers written by name, in both pools. */
size_t config_nnames(const struct config *cfg);

/* Number of worker threads to run: cfg->workers, or the CPU count when 0. */
unsigned config_workers(const struct config *cfg);

void config_errors_print(const struct config_errors *errs, FILE *fp);
/* Appends one formatted message (already "FILE:LINE: ..." or "FILE: ..."). */
void config_errors_add(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void config_errors_free(struct config_errors *errs);

#endif
