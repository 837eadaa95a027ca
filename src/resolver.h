#ifndef CUTOVER_SRC_RESOLVER_H
#define CUTOVER_SRC_RESOLVER_H

#ifdef CUTOVER_PURE
#error "resolver.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * Upstreams by name: the servers written "host:port" in the pools, resolved
 * with libevent's asynchronous resolver (evdns: resolv.conf, or
 * dns.nameservers, and the hosts file; A and AAAA) on the main thread's
 * loop, never blocking it. Each name is looked up again every dns.refresh,
 * or at the answer's TTL when shorter. A lookup that fails (timeout,
 * SERVFAIL, refused) or finds no address (NXDOMAIN, NODATA) keeps the last
 * good answer, with one warning per change of the problem. When a name's
 * set of addresses changes, the change callback runs: the daemon builds the
 * colors' servers anew from resolver_servers(). Main thread only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "color.h"
#include "config.h"

struct event_base;
struct jbuf;
struct pool_named;
struct resolver;

typedef void (*resolver_change_cb)(void *arg);

/*
 * A resolver on base for the names of cfg (copied: cfg may go), with
 * cfg->dns's settings. Lookups start at once. NULL on failure, logged.
 */
struct resolver *resolver_new(struct event_base *base, const struct config *cfg);

/* Called after a name's addresses changed (not during resolver_wait). */
void resolver_set_change_cb(struct resolver *r, resolver_change_cb cb, void *arg);

/*
 * Runs base until every name has had its first answer or failure, or
 * timeout_ms passed (names still pending count as failed). For the start
 * and for -t, before anything else runs on base.
 */
void resolver_wait(struct resolver *r, uint64_t timeout_ms);

/* How long the start and -t wait: two attempts of dns.timeout, and a second. */
#define RESOLVER_WAIT_MS(cfg) (2 * (cfg)->dns.timeout_ms + 1000)

/*
 * Appends "FILE:LINE: pools.COLOR.servers[i]: NAME does not resolve: WHY"
 * to errs for every name without an address. Returns how many.
 */
size_t resolver_unresolved(const struct resolver *r, struct config_errors *errs);

/*
 * The servers of color c that names resolved to, in the configuration's
 * order of names, each name's addresses sorted. *out is allocated (free()
 * it; its names point into r and stay valid until the next change or
 * resolver_set_names). Returns the count, or (size_t)-1 on ENOMEM.
 */
size_t resolver_servers(const struct resolver *r, enum color c, struct pool_named **out);

/*
 * A reload: resolve the names of cfg from now on. Names it shares with the
 * running set keep their answers; new names are looked up now (their
 * addresses join through the change callback). Returns 0 or -1 (ENOMEM).
 */
int resolver_set_names(struct resolver *r, const struct config *cfg);

/* Appends a JSON array of names: [{"color","name","addresses":[..],"problem"}]. */
void resolver_report(const struct resolver *r, struct jbuf *out);

void resolver_free(struct resolver *r);

#endif
