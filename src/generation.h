#ifndef CUTOVER_SRC_GENERATION_H
#define CUTOVER_SRC_GENERATION_H

#ifdef CUTOVER_PURE
#error "generation.h is not for the pure modules (see libpure.la in Makefile.am)"
#endif

/*
 * A generation is what one configuration file builds: the configuration,
 * both colors' pools, the routes over them and the listeners' TLS contexts.
 * Start and reload take the same path: generation_check (validate against
 * the running generation, if any), generation_build, then at start the
 * workers are given it and at a reload generation_hand_over swaps it in and
 * tells the workers; the generation it replaced is retired, freed by
 * generation_retire once every worker has let go of it. Main thread only.
 */

#include <stdbool.h>

#include "color.h"
#include "config.h"

struct pool;
struct route;
struct tls_server;
struct worker;

struct generation {
	struct config *cfg;
	struct pool *pools[COLOR_COUNT];
	struct route *routes; /* routes[c]: c active */
	/* Ramp routes published in this generation, each kept (and reused)
	 * until the generation is freed: a worker may still be reading one
	 * a later step replaced. */
	struct route *ramp_routes;
	struct tls_server **tls; /* per listen[] entry, NULL for plain HTTP */
	unsigned epoch; /* the workers' cfg_epoch once they took it; 0 at start */
	bool shared; /* a respin not handed over yet: cfg and tls are the live generation's */
};

struct resolver;

/*
 * Validates next as a replacement of running (running NULL: at start, the
 * listeners only). Problems are appended to errs as "FILE:LINE: message"
 * (at start they are logged instead). Returns 0 or -1.
 */
int generation_check(const struct config *next, const struct config *running,
    struct config_errors *errs) __attribute__((warn_unused_result));

/*
 * Builds g from cfg (g takes cfg, even on failure): pools for nworkers,
 * routes, TLS servers and the pools' TLS clients; certificates are read
 * here. With prev, a server that stays keeps its health: a reload must not
 * send traffic to one known down, nor demote one known good. Returns 0, or
 * -1 with the cause in errs; g then holds what was built, for
 * generation_free.
 */
int generation_build(struct generation *g, struct config *cfg, const struct generation *prev,
    unsigned nworkers, struct config_errors *errs) __attribute__((warn_unused_result));

/* generation_build with the servers res's names resolve to (res may be NULL). */
int generation_build_named(struct generation *g, struct config *cfg, const struct generation *prev,
    const struct resolver *res, unsigned nworkers, struct config_errors *errs)
    __attribute__((warn_unused_result));

/*
 * A DNS answer changed a color's servers: g gets new pools and routes over
 * live's configuration (shared, as are live's TLS contexts) with the
 * servers res resolves to now; a server that stays keeps its health, a new
 * address starts down. A color whose servers did not change keeps its very
 * pool (its idle connections stay). Handed over like a reload (generation_hand_over),
 * so requests in flight keep the pools they hold. Returns 0 or -1 (ENOMEM;
 * g is then empty).
 */
int generation_respin(struct generation *g, const struct generation *live, const struct resolver *res,
    unsigned nworkers) __attribute__((warn_unused_result));

/*
 * The reload's swap: next becomes live (with epoch), live's previous
 * content moves to *retired and its pools are marked retired; each worker
 * is handed the new configuration, TLS and the pools to let go of. Cannot
 * fail. Publishing a route of the new generation is the engine's (see
 * engine_reconfigure).
 */
void generation_hand_over(struct generation *live, struct generation *next,
    struct generation *retired, unsigned epoch, struct worker *workers, unsigned nworkers);

/*
 * Frees retired once every worker has taken live (its cfg_epoch is live's
 * epoch): true when done. Requests still in flight hold their own
 * references on the retired pools.
 */
bool generation_retire(struct generation *retired, const struct generation *live,
    const struct worker *workers, unsigned nworkers);

/*
 * The route of a ramp on g: new requests to active, those whose bucket is
 * below weight_bp (1..9999) to target. An identical route published before
 * is reused. NULL when out of memory.
 */
struct route *generation_ramp_route(struct generation *g, enum color active, enum color target,
    unsigned weight_bp);

/* Frees g and everything it holds (nothing may use it any more); g is left empty. */
void generation_free(struct generation *g);

#endif
