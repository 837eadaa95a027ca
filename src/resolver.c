#include "autoconf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "clock.h"
#include "dnsname.h"
#include "json.h"
#include "log.h"
#include "pool.h"
#include "resolver.h"

#define RESOLVER_MIN_TTL_MS 1000 /* a TTL of 0 must not make a busy loop */

struct rname {
	struct resolver *r;
	LIST_ENTRY(rname) zlink; /* on r->zombies once dropped with lookups pending */
	enum color color;
	struct config_name cn;
	char path[64]; /* "pools.green.servers[1]" */
	/* The last good answer, sorted. */
	struct addr *addrs;
	size_t naddrs;
	/* The lookup under way: A and AAAA. */
	unsigned pending;
	struct addr *got;
	size_t ngot;
	int err[2];
	int64_t ttl_ms; /* the shortest TTL in the answers, -1: none */
	bool done;      /* the first lookup ended */
	bool dead;      /* dropped by a reload: freed when its lookups end */
	int hosts;      /* in the hosts file: -1 not asked yet, 0 no, 1 yes */
	bool starting;  /* in lookup_start: callbacks leave lookup_end to it */
	char problem[96]; /* what went wrong last, "" after a good answer */
	struct event *timer;
};

LIST_HEAD(rname_list, rname);

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	char *file; /* the configuration's path, for FILE:LINE */
	uint64_t refresh_ms;
	struct rname **names;
	size_t nnames;
	struct rname_list zombies;
	resolver_change_cb cb;
	void *cb_arg;
	bool waiting; /* in resolver_wait: no change callbacks */
	bool changed; /* an answer changed since the last callback */
};

static struct rname *rname_new(struct resolver *r, enum color c, const struct config_name *cn);
static void rname_free(struct rname *n);
static void lookup_start(struct rname *n);
static void lookup_cb(int result, char type, int count, int ttl, void *addresses, void *arg);
static void lookup_end(struct rname *n);
static void timer_cb(evutil_socket_t fd, short what, void *arg);
static bool hosts_lookup(struct rname *n);
static int build_names(struct resolver *r, const struct config *cfg, struct rname ***out, size_t *nout);

/* evdns's own messages (a name server marked failed and back up): debug
 * lines; what matters to an operator is logged per name in lookup_end. */
static void
evdns_log(int is_warning, const char *msg)
{
	log_debug("evdns: %s%s", is_warning ? "warning: " : "", msg);
}

struct resolver *
resolver_new(struct event_base *base, const struct config *cfg)
{
	struct resolver *r;
	char tmo[32];
	size_t i;
	int rc;

	if ((r = calloc(1, sizeof(*r))) == NULL || (r->file = strdup(cfg->path)) == NULL)
		goto oom;
	LIST_INIT(&r->zombies);
	evdns_set_log_fn(evdns_log);
	r->base = base;
	r->refresh_ms = cfg->dns.refresh_ms;
	if ((r->dns = evdns_base_new(base, 0)) == NULL)
		goto oom;
	if (cfg->dns.nnameservers > 0) {
		for (i = 0; i < cfg->dns.nnameservers; i++)
			if (evdns_base_nameserver_ip_add(r->dns, cfg->dns.nameservers[i].text) != 0) {
				log_err("%s: dns.nameservers: cannot use %s", __func__, cfg->dns.nameservers[i].text);
				goto fail;
			}
	} else if ((rc = evdns_base_resolv_conf_parse(r->dns, DNS_OPTIONS_ALL, "/etc/resolv.conf")) != 0) {
		/* evdns falls back on 127.0.0.1 when resolv.conf names none. */
		log_warn("%s: /etc/resolv.conf: %s", __func__,
		    rc == 1 ? "cannot be read" : rc == 6 ? "names no name server; using 127.0.0.1"
		                                         : "not fully understood");
	}
	if (evdns_base_load_hosts(r->dns, NULL) != 0)
		log_warn("%s: the hosts file cannot be read; names are looked up with DNS only", __func__);
	snprintf(tmo, sizeof(tmo), "%.3f", (double)cfg->dns.timeout_ms / 1000.0);
	(void)evdns_base_set_option(r->dns, "timeout:", tmo);
	(void)evdns_base_set_option(r->dns, "attempts:", "2");
	if (build_names(r, cfg, &r->names, &r->nnames) < 0)
		goto oom;
	for (i = 0; i < r->nnames; i++)
		lookup_start(r->names[i]);
	return r;
oom:
	log_err("%s: out of memory", __func__);
fail:
	resolver_free(r);
	return NULL;
}

void
resolver_set_change_cb(struct resolver *r, resolver_change_cb cb, void *arg)
{
	r->cb = cb;
	r->cb_arg = arg;
}

static void
wait_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(bool *)arg = true;
}

void
resolver_wait(struct resolver *r, uint64_t timeout_ms)
{
	struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)((timeout_ms % 1000) * 1000)};
	bool expired = false, all;
	struct event *ev = evtimer_new(r->base, wait_timeout_cb, &expired);
	size_t i;

	if (ev == NULL)
		return;
	evtimer_add(ev, &tv);
	r->waiting = true;
	for (;;) {
		for (all = true, i = 0; i < r->nnames && all; i++)
			all = r->names[i]->done;
		if (all || expired)
			break;
		event_base_loop(r->base, EVLOOP_ONCE);
	}
	r->waiting = false;
	r->changed = false;
	event_free(ev);
	for (i = 0; i < r->nnames; i++)
		if (!r->names[i]->done && r->names[i]->problem[0] == '\0')
			snprintf(r->names[i]->problem, sizeof(r->names[i]->problem), "no answer within %llums",
			    (unsigned long long)timeout_ms);
}

size_t
resolver_unresolved(const struct resolver *r, struct config_errors *errs)
{
	size_t i, n = 0;

	for (i = 0; i < r->nnames; i++) {
		const struct rname *nm = r->names[i];

		if (nm->naddrs > 0)
			continue;
		config_errors_add(errs, "%s:%d: '%s': %s does not resolve: %s", r->file, nm->cn.line, nm->path,
		    nm->cn.text, nm->problem[0] != '\0' ? nm->problem : "no answer yet");
		n++;
	}
	return n;
}

size_t
resolver_servers(const struct resolver *r, enum color c, struct pool_named **out)
{
	size_t i, j, n = 0, k = 0;

	*out = NULL;
	for (i = 0; i < r->nnames; i++)
		if (r->names[i]->color == c)
			n += r->names[i]->naddrs;
	if ((*out = calloc(n + 1, sizeof(**out))) == NULL)
		return (size_t)-1;
	for (i = 0; i < r->nnames; i++) {
		const struct rname *nm = r->names[i];

		if (nm->color != c)
			continue;
		for (j = 0; j < nm->naddrs; j++, k++) {
			(*out)[k].addr = nm->addrs[j];
			(*out)[k].name = nm->cn.text;
		}
	}
	return n;
}

int
resolver_set_names(struct resolver *r, const struct config *cfg)
{
	struct rname **names;
	size_t n, i, j;
	char *file;

	if ((file = strdup(cfg->path)) == NULL)
		return -1;
	if (build_names(r, cfg, &names, &n) < 0) {
		free(file);
		return -1;
	}
	free(r->file);
	r->file = file;
	for (i = 0; i < n; i++) {
		for (j = 0; j < r->nnames; j++) {
			struct rname *o = r->names[j];

			if (o == NULL || o->color != names[i]->color || strcmp(o->cn.text, names[i]->cn.text) != 0)
				continue;
			/* Keep the running entry (its answer, its timer, its lookup). */
			o->cn = names[i]->cn;
			memcpy(o->path, names[i]->path, sizeof(o->path));
			rname_free(names[i]);
			names[i] = o;
			r->names[j] = NULL;
			break;
		}
		if (j == r->nnames)
			lookup_start(names[i]);
	}
	for (j = 0; j < r->nnames; j++) {
		struct rname *o = r->names[j];

		if (o == NULL)
			continue;
		if (o->pending > 0) {
			o->dead = true;
			evtimer_del(o->timer);
			LIST_INSERT_HEAD(&r->zombies, o, zlink);
		} else {
			rname_free(o);
		}
	}
	free(r->names);
	r->names = names;
	r->nnames = n;
	return 0;
}

void
resolver_report(const struct resolver *r, struct jbuf *out)
{
	size_t i, j;
	char ip[64];

	jbuf_raw(out, "[");
	for (i = 0; i < r->nnames; i++) {
		const struct rname *nm = r->names[i];

		jbuf_printf(out, "%s{\"color\":\"%s\",\"name\":", i ? "," : "", color_name(nm->color));
		jbuf_str(out, nm->cn.text);
		jbuf_raw(out, ",\"addresses\":[");
		for (j = 0; j < nm->naddrs; j++) {
			addr_ip_string((const struct sockaddr *)&nm->addrs[j].ss, ip, sizeof(ip));
			jbuf_printf(out, "%s", j ? "," : "");
			jbuf_str(out, ip);
		}
		jbuf_raw(out, "],\"problem\":");
		jbuf_str(out, nm->problem[0] != '\0' ? nm->problem : NULL);
		jbuf_raw(out, "}");
	}
	jbuf_raw(out, "]");
}

void
resolver_free(struct resolver *r)
{
	struct rname *z;
	size_t i;

	if (r == NULL)
		return;
	/* Lookups under way are dropped without their callbacks. */
	if (r->dns != NULL)
		evdns_base_free(r->dns, 0);
	for (i = 0; i < r->nnames; i++)
		rname_free(r->names[i]);
	free(r->names);
	while ((z = LIST_FIRST(&r->zombies)) != NULL) {
		LIST_REMOVE(z, zlink);
		rname_free(z);
	}
	free(r->file);
	free(r);
}

static int
build_names(struct resolver *r, const struct config *cfg, struct rname ***out, size_t *nout)
{
	size_t n = config_nnames(cfg), k = 0, i;
	int c;

	*out = calloc(n + 1, sizeof(**out));
	*nout = 0;
	if (*out == NULL)
		return -1;
	for (c = 0; c < COLOR_COUNT; c++)
		for (i = 0; i < cfg->pools[c].nnames; i++) {
			if (((*out)[k] = rname_new(r, (enum color)c, &cfg->pools[c].names[i])) == NULL) {
				while (k > 0)
					rname_free((*out)[--k]);
				free(*out);
				*out = NULL;
				return -1;
			}
			k++;
		}
	*nout = k;
	return 0;
}

static struct rname *
rname_new(struct resolver *r, enum color c, const struct config_name *cn)
{
	struct rname *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return NULL;
	n->r = r;
	n->color = c;
	n->cn = *cn;
	n->ttl_ms = -1;
	n->hosts = -1;
	snprintf(n->path, sizeof(n->path), "pools.%s.servers[%d]", color_name(c), cn->index);
	if ((n->timer = evtimer_new(r->base, timer_cb, n)) == NULL) {
		free(n);
		return NULL;
	}
	return n;
}

static void
rname_free(struct rname *n)
{
	if (n == NULL)
		return;
	if (n->timer != NULL)
		event_free(n->timer);
	free(n->addrs);
	free(n->got);
	free(n);
}

static void
schedule(struct rname *n, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(n->timer, &tv);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	lookup_start(arg);
}

static void
lookup_start(struct rname *n)
{
	struct evdns_request *q4, *q6;

	if (n->pending > 0)
		return;
	free(n->got);
	n->got = NULL;
	n->ngot = 0;
	n->err[0] = n->err[1] = DNS_ERR_NONE;
	n->ttl_ms = -1;
	/* evdns reads the hosts file once: a name is in it or not for good,
	 * so the file is asked once, and DNS only for names not in it. */
	if (n->hosts != 0) {
		n->hosts = hosts_lookup(n);
		if (n->hosts) {
			lookup_end(n);
			return;
		}
	}
	n->pending = 2;
	n->starting = true;
	q4 = evdns_base_resolve_ipv4(n->r->dns, n->cn.host, 0, lookup_cb, n);
	if (q4 == NULL) {
		n->pending--;
		n->err[0] = DNS_ERR_UNKNOWN;
	}
	q6 = evdns_base_resolve_ipv6(n->r->dns, n->cn.host, 0, lookup_cb, n);
	if (q6 == NULL) {
		n->pending--;
		n->err[1] = DNS_ERR_UNKNOWN;
	}
	n->starting = false;
	if (n->pending == 0)
		lookup_end(n);
}

/*
 * The hosts file: evdns_getaddrinfo answers from it at once, before it
 * returns; otherwise it starts lookups of its own, which are cancelled here
 * (the A and AAAA lookups that follow carry the TTLs it would not tell).
 */
static struct rname *hosts_target;
static bool hosts_found;

static void
hosts_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct rname *n = hosts_target;
	struct evutil_addrinfo *ai;

	(void)arg;
	if (n != NULL && result == 0) {
		size_t cnt = 0;

		for (ai = res; ai != NULL; ai = ai->ai_next)
			cnt++;
		if ((n->got = calloc(cnt + 1, sizeof(*n->got))) != NULL) {
			for (ai = res; ai != NULL; ai = ai->ai_next) {
				if (ai->ai_family == AF_INET)
					dnsname_addr(&n->got[n->ngot++], AF_INET,
					    &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, n->cn.port);
				else if (ai->ai_family == AF_INET6)
					dnsname_addr(&n->got[n->ngot++], AF_INET6,
					    &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr, n->cn.port);
			}
			hosts_found = n->ngot > 0;
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
}

static bool
hosts_lookup(struct rname *n)
{
	struct evutil_addrinfo hints;
	struct evdns_getaddrinfo_request *q;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hosts_target = n;
	hosts_found = false;
	q = evdns_getaddrinfo(n->r->dns, n->cn.host, NULL, &hints, hosts_cb, NULL);
	hosts_target = NULL;
	if (q != NULL)
		evdns_getaddrinfo_cancel(q);
	if (!hosts_found) {
		free(n->got);
		n->got = NULL;
		n->ngot = 0;
	}
	return hosts_found;
}

static void
lookup_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	struct rname *n = arg;
	int fam = type == DNS_IPv6_AAAA ? AF_INET6 : AF_INET;
	int i;

	n->pending--;
	if (n->dead) {
		if (n->pending == 0) {
			LIST_REMOVE(n, zlink);
			rname_free(n);
		}
		return;
	}
	if (result == DNS_ERR_NONE && count > 0 && (type == DNS_IPv4_A || type == DNS_IPv6_AAAA)) {
		struct addr *v = realloc(n->got, (n->ngot + (size_t)count) * sizeof(*v));

		if (v != NULL) {
			n->got = v;
			for (i = 0; i < count; i++)
				dnsname_addr(&n->got[n->ngot++], fam,
				    (const char *)addresses + (size_t)i * (fam == AF_INET6 ? 16 : 4), n->cn.port);
			if (ttl >= 0 && (n->ttl_ms < 0 || (int64_t)ttl * 1000 < n->ttl_ms))
				n->ttl_ms = (int64_t)ttl * 1000;
		}
	} else if (result != DNS_ERR_NONE) {
		n->err[fam == AF_INET6] = result;
	}
	if (n->pending == 0 && !n->starting)
		lookup_end(n);
}

/* NXDOMAIN and NODATA say "no address"; the rest say "no answer". */
static bool
hard_error(int e)
{
	return e != DNS_ERR_NONE && e != DNS_ERR_NOTEXIST
#ifdef DNS_ERR_NODATA
	    && e != DNS_ERR_NODATA
#endif
	    ;
}

static void
describe(char *buf, size_t len, const struct addr *v, size_t n)
{
	size_t i, off = 0;
	char ip[64];

	buf[0] = '\0';
	for (i = 0; i < n && off + 1 < len; i++) {
		addr_ip_string((const struct sockaddr *)&v[i].ss, ip, sizeof(ip));
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", ip);
	}
}

static void
lookup_end(struct rname *n)
{
	struct resolver *r = n->r;
	int hard = hard_error(n->err[0]) ? n->err[0] : hard_error(n->err[1]) ? n->err[1] : DNS_ERR_NONE;
	uint64_t next = r->refresh_ms;
	char list[512];

	n->ngot = dnsname_sort(n->got, n->ngot);
	if (n->ngot > 0 && (hard == DNS_ERR_NONE || n->naddrs == 0)) {
		bool differ = dnsname_diff(n->addrs, n->naddrs, n->got, n->ngot, NULL, NULL);

		if (n->problem[0] != '\0' && n->done)
			log_info("dns: %s %s resolves again", color_name(n->color), n->cn.text);
		n->problem[0] = '\0';
		if (differ) {
			describe(list, sizeof(list), n->got, n->ngot);
			log_info("dns: %s %s: %s", color_name(n->color), n->cn.text, list);
			free(n->addrs);
			n->addrs = n->got;
			n->naddrs = n->ngot;
			n->got = NULL;
			n->ngot = 0;
			r->changed = true;
		}
		if (n->ttl_ms >= 0 && (uint64_t)n->ttl_ms < next)
			next = n->ttl_ms < RESOLVER_MIN_TTL_MS ? RESOLVER_MIN_TTL_MS : (uint64_t)n->ttl_ms;
	} else {
		char why[96];

		if (hard != DNS_ERR_NONE)
			snprintf(why, sizeof(why), "lookup failed: %s", evdns_err_to_string(hard));
		else
			snprintf(why, sizeof(why), "%s",
			    n->err[0] == DNS_ERR_NOTEXIST || n->err[1] == DNS_ERR_NOTEXIST ? "no such name (NXDOMAIN)"
			                                                                  : "no A or AAAA record (NODATA)");
		if (strcmp(why, n->problem) != 0) {
			if (n->naddrs > 0) {
				describe(list, sizeof(list), n->addrs, n->naddrs);
				log_warn("%s: dns: %s %s: %s; keeping the last answer (%s)", __func__,
				    color_name(n->color), n->cn.text, why, list);
			} else {
				log_warn("%s: dns: %s %s: %s; no address yet", __func__, color_name(n->color),
				    n->cn.text, why);
			}
			snprintf(n->problem, sizeof(n->problem), "%s", why);
		}
	}
	free(n->got);
	n->got = NULL;
	n->ngot = 0;
	n->done = true;
	schedule(n, next);
	if (r->changed && !r->waiting && r->cb != NULL) {
		r->changed = false;
		r->cb(r->cb_arg);
	}
}
