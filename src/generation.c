#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "pool.h"
#include "resolver.h"
#include "tls.h"
#include "worker.h"

static void keep_health(struct pool *next, const struct pool *prev);
static bool same_servers(const struct pool *a, const struct pool *b);
static struct pool *named_pool(enum color c, const struct config *cfg, const struct resolver *res,
    unsigned nworkers);
static struct tls_server **build_tls_servers(const struct config *cfg, struct config_errors *errs);
static void free_tls_servers(struct tls_server **tls, size_t n);
static int attach_pool_tls(struct pool *pools[COLOR_COUNT], const struct config *cfg,
    struct config_errors *errs);

int
generation_check(const struct config *next, const struct config *running,
    struct config_errors *errs)
{
	size_t k;

	if (running == NULL)
		return worker_probe_listeners(next);
	if (config_reload_check(running, next, errs) < 0)
		return -1;
	for (k = 0; k < next->nlistens; k++)
		if (next->listens[k].ncerts > 0)
			(void)tls_check_listen(next, &next->listens[k], errs);
	if (worker_probe_new_listeners(running, next, errs) < 0)
		return -1;
	return errs->n > 0 ? -1 : 0;
}

int
generation_build(struct generation *g, struct config *cfg, const struct generation *prev,
    unsigned nworkers, struct config_errors *errs)
{
	return generation_build_named(g, cfg, prev, NULL, nworkers, errs);
}

int
generation_build_named(struct generation *g, struct config *cfg, const struct generation *prev,
    const struct resolver *res, unsigned nworkers, struct config_errors *errs)
{
	int c;

	memset(g, 0, sizeof(*g));
	g->cfg = cfg;
	for (c = 0; c < COLOR_COUNT; c++) {
		if ((g->pools[c] = named_pool((enum color)c, cfg, res, nworkers)) == NULL)
			goto oom;
		if (prev != NULL)
			keep_health(g->pools[c], prev->pools[c]);
	}
	/* Certificates are read again at a reload: a bad one leaves the old ones serving. */
	if ((g->tls = build_tls_servers(cfg, errs)) == NULL || attach_pool_tls(g->pools, cfg, errs) < 0)
		return -1;
	if ((g->routes = calloc(COLOR_COUNT, sizeof(*g->routes))) == NULL)
		goto oom;
	for (c = 0; c < COLOR_COUNT; c++) {
		g->routes[c].pools[COLOR_BLUE] = g->pools[COLOR_BLUE];
		g->routes[c].pools[COLOR_GREEN] = g->pools[COLOR_GREEN];
		g->routes[c].active = (enum color)c;
	}
	return 0;
oom:
	config_errors_add(errs, "%s: out of memory", cfg->path);
	return -1;
}

struct route *
generation_ramp_route(struct generation *g, enum color active, enum color target, unsigned weight_bp)
{
	struct route *r;

	for (r = g->ramp_routes; r != NULL; r = r->next)
		if (r->active == active && r->ramp_target == target && r->weight_bp == weight_bp)
			return r;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->pools[COLOR_BLUE] = g->pools[COLOR_BLUE];
	r->pools[COLOR_GREEN] = g->pools[COLOR_GREEN];
	r->active = active;
	r->ramp_target = target;
	r->weight_bp = weight_bp;
	r->next = g->ramp_routes;
	g->ramp_routes = r;
	return r;
}

int
generation_respin(struct generation *g, const struct generation *live, const struct resolver *res,
    unsigned nworkers)
{
	int c;

	memset(g, 0, sizeof(*g));
	g->cfg = live->cfg;
	g->tls = live->tls;
	g->shared = true;
	for (c = 0; c < COLOR_COUNT; c++) {
		if ((g->pools[c] = named_pool((enum color)c, live->cfg, res, nworkers)) == NULL)
			goto fail;
		if (same_servers(g->pools[c], live->pools[c])) {
			/* This color's answer did not change: its pool (and the
			 * idle connections it holds) stays as it is. */
			pool_unref(g->pools[c]);
			g->pools[c] = live->pools[c];
			pool_ref(g->pools[c]);
			continue;
		}
		keep_health(g->pools[c], live->pools[c]);
		if ((g->pools[c]->tls = live->pools[c]->tls) != NULL)
			tls_client_ref(g->pools[c]->tls);
	}
	if ((g->routes = calloc(COLOR_COUNT, sizeof(*g->routes))) == NULL)
		goto fail;
	for (c = 0; c < COLOR_COUNT; c++) {
		g->routes[c].pools[COLOR_BLUE] = g->pools[COLOR_BLUE];
		g->routes[c].pools[COLOR_GREEN] = g->pools[COLOR_GREEN];
		g->routes[c].active = (enum color)c;
	}
	return 0;
fail:
	generation_free(g);
	return -1;
}

void
generation_hand_over(struct generation *live, struct generation *next,
    struct generation *retired, unsigned epoch, struct worker *workers, unsigned nworkers)
{
	unsigned i;
	int c;

	*retired = *live;
	/* A pool both have (a respin that left a color alone) is not retired. */
	for (c = 0; c < COLOR_COUNT; c++)
		if (retired->pools[c] != next->pools[c])
			atomic_store(&retired->pools[c]->retired, true);
	if (next->shared) {
		/* A respin: the configuration and listeners' TLS stay live. */
		retired->cfg = NULL;
		retired->tls = NULL;
		next->shared = false;
	}
	*live = *next;
	live->epoch = epoch;
	memset(next, 0, sizeof(*next));
	for (i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->next_cfg = live->cfg;
		for (c = 0; c < COLOR_COUNT; c++)
			w->retire[c] = retired->pools[c] != live->pools[c] ? retired->pools[c] : NULL;
		w->next_epoch = epoch;
		w->next_tls = live->tls;
		worker_post(w, WORKER_MSG_RELOAD);
	}
}

bool
generation_retire(struct generation *retired, const struct generation *live,
    const struct worker *workers, unsigned nworkers)
{
	unsigned i;

	for (i = 0; i < nworkers; i++)
		if (atomic_load(&workers[i].cfg_epoch) != live->epoch)
			return false;
	generation_free(retired);
	return true;
}

void
generation_free(struct generation *g)
{
	int c;

	for (c = 0; c < COLOR_COUNT; c++)
		pool_unref(g->pools[c]);
	while (g->ramp_routes != NULL) {
		struct route *r = g->ramp_routes;

		g->ramp_routes = r->next;
		free(r);
	}
	free(g->routes);
	if (g->shared) {
		/* A respin never handed over: cfg and TLS are the live ones'. */
		memset(g, 0, sizeof(*g));
		return;
	}
	if (g->tls != NULL)
		free_tls_servers(g->tls, g->cfg->nlistens);
	config_free(g->cfg);
	memset(g, 0, sizeof(*g));
}

/* The same servers, in the same order. */
static bool
same_servers(const struct pool *a, const struct pool *b)
{
	size_t i;

	if (a->nservers != b->nservers)
		return false;
	for (i = 0; i < a->nservers; i++)
		if (strcmp(server_label(&a->servers[i]), server_label(&b->servers[i])) != 0)
			return false;
	return true;
}

/* A color's pool: its numeric servers and those its names resolve to now. */
static struct pool *
named_pool(enum color c, const struct config *cfg, const struct resolver *res, unsigned nworkers)
{
	struct pool_named *named = NULL;
	struct pool *p;
	size_t n = 0;

	if (res != NULL && (n = resolver_servers(res, c, &named)) == (size_t)-1)
		return NULL;
	p = pool_new_named(c, &cfg->pools[c], named, n, nworkers);
	free(named);
	return p;
}

/*
 * A server that stays (same address, same label) keeps its health. One a
 * name resolved to anew starts down, as a new server must earn its traffic
 * (health.rise checks), and fresh: not counted against its color yet.
 */
static void
keep_health(struct pool *next, const struct pool *prev)
{
	size_t k, j;

	for (k = 0; k < next->nservers; k++) {
		struct server *ns = &next->servers[k];

		for (j = 0; j < prev->nservers; j++) {
			const struct server *os = &prev->servers[j];

			if (strcmp(server_label(os), server_label(ns)) == 0) {
				atomic_store(&ns->up, atomic_load(&os->up));
				atomic_store(&ns->confirmed, atomic_load(&os->confirmed));
				ns->fresh = os->fresh;
				break;
			}
		}
		if (j == prev->nservers && ns->name != NULL) {
			atomic_store(&ns->up, false);
			atomic_store(&ns->confirmed, false);
			ns->fresh = true;
		}
	}
}

/* One TLS server context per listen[] entry that has certificates. */
static struct tls_server **
build_tls_servers(const struct config *cfg, struct config_errors *errs)
{
	struct tls_server **tls;
	char err[512];
	size_t i;

	if ((tls = calloc(cfg->nlistens + 1, sizeof(*tls))) == NULL) {
		config_errors_add(errs, "%s: out of memory", cfg->path);
		return NULL;
	}
	for (i = 0; i < cfg->nlistens; i++) {
		if (cfg->listens[i].ncerts == 0)
			continue;
		if ((tls[i] = tls_server_new(&cfg->listens[i], err, sizeof(err))) == NULL) {
			config_errors_add(errs, "%s:%d: listen %s: %s", cfg->path, cfg->listens[i].line,
			    cfg->listens[i].addr.text, err);
			free_tls_servers(tls, cfg->nlistens);
			return NULL;
		}
	}
	return tls;
}

static void
free_tls_servers(struct tls_server **tls, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (tls[i] != NULL)
			tls_server_unref(tls[i]);
	free(tls);
}

static int
attach_pool_tls(struct pool *pools[COLOR_COUNT], const struct config *cfg, struct config_errors *errs)
{
	char err[512];
	int c;

	for (c = 0; c < COLOR_COUNT; c++) {
		if (!cfg->pools[c].tls.enabled)
			continue;
		if ((pools[c]->tls = tls_client_new(&cfg->pools[c].tls, err, sizeof(err))) == NULL) {
			config_errors_add(errs, "%s: pools.%s.tls: %s", cfg->path, color_name((enum color)c), err);
			return -1;
		}
	}
	return 0;
}
