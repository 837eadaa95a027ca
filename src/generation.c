#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "generation.h"
#include "pool.h"
#include "tls.h"
#include "worker.h"

static void keep_health(struct pool *next, const struct pool *prev);
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
	int c;

	memset(g, 0, sizeof(*g));
	g->cfg = cfg;
	for (c = 0; c < COLOR_COUNT; c++) {
		if ((g->pools[c] = pool_new((enum color)c, &cfg->pools[c], nworkers)) == NULL)
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

void
generation_hand_over(struct generation *live, struct generation *next,
    struct generation *retired, unsigned epoch, struct worker *workers, unsigned nworkers)
{
	unsigned i;
	int c;

	*retired = *live;
	for (c = 0; c < COLOR_COUNT; c++)
		atomic_store(&retired->pools[c]->retired, true);
	*live = *next;
	live->epoch = epoch;
	memset(next, 0, sizeof(*next));
	for (i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		w->next_cfg = live->cfg;
		w->retire[COLOR_BLUE] = retired->pools[COLOR_BLUE];
		w->retire[COLOR_GREEN] = retired->pools[COLOR_GREEN];
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
	if (g->tls != NULL)
		free_tls_servers(g->tls, g->cfg->nlistens);
	config_free(g->cfg);
	memset(g, 0, sizeof(*g));
}

/* A server that stays (same address) keeps its health. */
static void
keep_health(struct pool *next, const struct pool *prev)
{
	size_t k, j;

	for (k = 0; k < next->nservers; k++) {
		struct server *ns = &next->servers[k];

		for (j = 0; j < prev->nservers; j++) {
			const struct server *os = &prev->servers[j];

			if (strcmp(os->addr.text, ns->addr.text) == 0) {
				atomic_store(&ns->up, atomic_load(&os->up));
				atomic_store(&ns->confirmed, atomic_load(&os->confirmed));
				break;
			}
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
