#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "dnsname.h"
#include "pool.h"
#include "tls.h"
#include "upstream.h"

static _Atomic(struct route *) active_route;

static void pool_free_servers(struct pool *p);

struct pool *
pool_new(enum color color, const struct config_pool *cp, unsigned nworkers)
{
	return pool_new_named(color, cp, NULL, 0, nworkers);
}

struct pool *
pool_new_named(enum color color, const struct config_pool *cp, const struct pool_named *named,
    size_t nnamed, unsigned nworkers)
{
	struct pool *p;
	size_t i;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	atomic_init(&p->refs, 1);
	atomic_init(&p->retired, false);
	p->color = color;
	p->nservers = cp->nservers + nnamed;
	if (p->nservers > 0 && (p->servers = calloc(p->nservers, sizeof(*p->servers))) == NULL)
		goto fail;
	for (i = 0; i < p->nservers; i++) {
		struct server *s = &p->servers[i];

		if (i < cp->nservers) {
			s->addr = cp->servers[i];
		} else {
			char label[DNSNAME_LABEL_MAX];
			const struct pool_named *nm = &named[i - cp->nservers];

			s->addr = nm->addr;
			dnsname_label(label, sizeof(label), nm->name, &nm->addr);
			if ((s->name = strdup(nm->name)) == NULL || (s->label = strdup(label)) == NULL)
				goto fail;
		}
		s->pool = p;
		s->color = color;
		s->index = (unsigned)i;
		/* Up until checked: a restart must not black-hole traffic. */
		atomic_init(&s->up, true);
		atomic_init(&s->confirmed, false);
		atomic_init(&s->passive_fails, 0);
		s->nidle = nworkers;
		if ((s->idle = calloc(nworkers, sizeof(*s->idle))) == NULL)
			goto fail;
		for (unsigned w = 0; w < nworkers; w++)
			upstream_idle_init(&s->idle[w]);
	}
	return p;
fail:
	pool_free_servers(p);
	free(p);
	return NULL;
}

static void
pool_free_servers(struct pool *p)
{
	size_t i;

	if (p->servers != NULL)
		for (i = 0; i < p->nservers; i++) {
			free(p->servers[i].idle);
			free(p->servers[i].name);
			free(p->servers[i].label);
		}
	free(p->servers);
}

void
pool_ref(struct pool *p)
{
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void
pool_unref(struct pool *p)
{

	if (p == NULL || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
		return;
	pool_free_servers(p);
	if (p->tls != NULL)
		tls_client_unref(p->tls);
	free(p);
}

struct server *
pool_pick(struct pool *p, unsigned *cursor, const struct server *skip)
{
	size_t n = p->nservers, i;

	for (i = 0; i < n; i++) {
		struct server *s = &p->servers[(*cursor)++ % n];

		if (s == skip && n > 1)
			continue;
		if (atomic_load_explicit(&s->up, memory_order_relaxed))
			return s;
	}
	return NULL;
}

size_t
pool_healthy(const struct pool *p)
{
	size_t i, up = 0;

	for (i = 0; i < p->nservers; i++)
		if (atomic_load_explicit(&p->servers[i].up, memory_order_relaxed))
			up++;
	return up;
}

size_t
pool_confirmed(const struct pool *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->nservers; i++)
		if (atomic_load_explicit(&p->servers[i].up, memory_order_relaxed) &&
		    atomic_load_explicit(&p->servers[i].confirmed, memory_order_relaxed))
			n++;
	return n;
}

size_t
pool_fresh(const struct pool *p)
{
	size_t i, n = 0;

	for (i = 0; i < p->nservers; i++)
		if (p->servers[i].fresh)
			n++;
	return n;
}

bool
server_passive_failure(struct server *s, unsigned fall)
{
	unsigned n = atomic_fetch_add_explicit(&s->passive_fails, 1, memory_order_relaxed) + 1;

	if (n < fall || fall == 0)
		return false;
	/* Only the caller that flips it reports it. */
	return atomic_exchange_explicit(&s->up, false, memory_order_relaxed);
}

void
server_passive_success(struct server *s)
{
	/* Read first: the common case writes nothing (no shared cache line
	 * traffic on every request). */
	if (atomic_load_explicit(&s->passive_fails, memory_order_relaxed) != 0)
		atomic_store_explicit(&s->passive_fails, 0, memory_order_relaxed);
}

struct route *
route_current(void)
{
	return atomic_load_explicit(&active_route, memory_order_acquire);
}

void
route_publish(struct route *r)
{
	atomic_store_explicit(&active_route, r, memory_order_release);
}

struct pool *
route_acquire_pool(enum color *color)
{
	struct route *r = atomic_load_explicit(&active_route, memory_order_acquire);
	struct pool *p;

	if (r == NULL)
		return NULL;
	p = r->pools[r->active];
	pool_ref(p);
	if (color != NULL)
		*color = r->active;
	return p;
}
