#include "autoconf.h"

#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "resolver.h"
#include "tls.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG SYSCONFDIR "/cutover/cutover.conf"

static void usage(FILE *fp);

static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: cutoverd [-c FILE] [-t] [-V] [-h]\n"
	    "\n"
	    "Blue/green HTTP/1.1 and HTTP/2 reverse proxy. Runs in the foreground, logs to stderr.\n"
	    "\n"
	    "  -c, --config FILE  configuration file (default %s)\n"
	    "  -t, --test         check the configuration (server names are resolved),\n"
	    "                     print every error as FILE:LINE: message, exit 0 if\n"
	    "                     valid, 1 if not\n"
	    "  -V, --version      print the version and exit\n"
	    "  -h, --help         print this help and exit\n"
	    "\n"
	    "Signals: SIGTERM/SIGINT stop accepting and let requests in flight finish\n"
	    "(at most switch.drain_timeout), then exit 0.\n"
	    "See cutoverd(8) and cutover.conf(5).\n",
	    DEFAULT_CONFIG);
}

/* -t: resolves every name; 0 when all resolve or dns.allow_unresolved. */
static int
test_names(const struct config *cfg)
{
	struct config_errors errs = {0};
	struct event_base *base;
	struct resolver *r;
	size_t n, i;

	log_set_level(LOG_LVL_ERR);
	if ((base = event_base_new()) == NULL || (r = resolver_new(base, cfg)) == NULL) {
		fprintf(stderr, "%s: cannot start the resolver\n", cfg->path);
		if (base != NULL)
			event_base_free(base);
		return -1;
	}
	resolver_wait(r, RESOLVER_WAIT_MS(cfg));
	n = resolver_unresolved(r, &errs);
	for (i = 0; i < errs.n; i++)
		fprintf(stderr, "%s%s\n", errs.msgs[i],
		    cfg->dns.allow_unresolved ? " (allowed: dns.allow_unresolved)" : "");
	config_errors_free(&errs);
	resolver_free(r);
	event_base_free(base);
	return n > 0 && !cfg->dns.allow_unresolved ? -1 : 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"test", no_argument, NULL, 't'},
	    {"version", no_argument, NULL, 'V'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	struct config_errors errs = {0};
	struct config *cfg = NULL;
	bool test = false;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test = true;
			break;
		case 'V':
			printf("cutoverd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "cutoverd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (config_load(path, &cfg, &errs) < 0) {
		config_errors_print(&errs, stderr);
		config_errors_free(&errs);
		return 1;
	}
	/* Certificates are checked by -t too: a release must not find out at
	 * startup (or at a reload) that its key does not match. */
	for (size_t i = 0; i < cfg->nlistens; i++)
		if (cfg->listens[i].ncerts > 0)
			(void)tls_check_listen(cfg, &cfg->listens[i], &errs);
	if (errs.n > 0) {
		config_errors_print(&errs, stderr);
		config_errors_free(&errs);
		config_free(cfg);
		return 1;
	}
	config_errors_free(&errs);
	if (test) {
		config_errors_print(&cfg->warnings, stderr);
		/* Names are resolved too (each lookup bounded by dns.timeout),
		 * every one that does not resolve reported. */
		if (config_nnames(cfg) > 0 && test_names(cfg) < 0) {
			config_free(cfg);
			return 1;
		}
		fprintf(stderr, "%s: configuration is valid\n", path);
		config_free(cfg);
		return 0;
	}
	log_set_level((enum log_level)cfg->log_level);
	for (size_t i = 0; i < cfg->warnings.n; i++)
		log_warn("%s", cfg->warnings.msgs[i]);
	/*
	 * Fixed malloc thresholds: glibc's sliding ones make per-thread arenas
	 * trim and madvise() on the request path as buffers come and go.
	 */
	mallopt(M_MMAP_THRESHOLD, 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 32 * 1024 * 1024);
	return daemon_run(cfg);
}
