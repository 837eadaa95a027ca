#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "engine.h"
#include "etcd.h"
#include "fleet.h"
#include "history.h"
#define CUTOVER_JSON_WRITER_ONLY
#include "json.h"
#include "log.h"
#include "state.h"

#define FLEET_RETRY_MS 500 /* reconnect attempts while etcd is unreachable */
#define FLEET_POLL_MS 20   /* convergence checks of waiting callers */
#define FLEET_NODE_MAX 65

/* A node's presence, as read from KEY/nodes/NODE. */
struct fnode {
	char name[FLEET_NODE_MAX];
	int64_t revision; /* of KEY/state it applied */
	uint64_t generation;
	int active;
	unsigned healthy[COLOR_COUNT];
	char verdict[32];
	bool diverged;
	uint64_t seen_ms; /* monotonic, when its presence was last written */
};

/* A caller waiting for the fleet to apply a change. */
struct waiter {
	TAILQ_ENTRY(waiter) link;
	struct control_conn *conn;
	int64_t revision;
	uint64_t deadline_ms;
	char *prefix;
};
TAILQ_HEAD(waiter_list, waiter);

/* A change being written. */
struct proposal {
	TAILQ_ENTRY(proposal) link;
	struct fleet *f;
	fleet_written_cb *written;
	void *arg;
};
TAILQ_HEAD(proposal_list, proposal);

struct fleet {
	struct event_base *base;
	struct engine *engine;
	struct etcd *etcd;
	char *key_state, *key_nodes, *key_prefix, *node;
	uint64_t lease_ms, timeout_ms;
	bool connected, syncing, diverged, leaving, revoking;
	int64_t applied_rev; /* mod_revision of the KEY/state applied last (0: none) */
	int64_t lease_id;
	bool granting;
	struct etcd_watch *watch;
	struct fnode *nodes;
	size_t nnodes;
	struct event *tick, *poll;
	struct waiter_list waiters;
	struct proposal_list proposals;
	/* An automatic rollback made here, to write once etcd is back. */
	bool rb_pending, rb_writing;
	int64_t rb_base;
	char rb_reason[512];
	struct state rb_state;
	uint64_t apply[HISTOGRAM_BUCKETS];
	uint64_t apply_sum_us;
	unsigned put_healthy[COLOR_COUNT]; /* as the last presence said */
	int put_verdict;
	/* fleet_boot */
	int boot_rc;
	bool boot_done;
	const struct state *boot_local;
	int boot_local_rc;
	struct state *boot_out;
	unsigned boot_tries;
};

static void on_tick(evutil_socket_t fd, short what, void *arg);
static void on_revoked(void *arg, json_t *resp, const char *err);
static void on_poll(evutil_socket_t fd, short what, void *arg);
static void arm_tick(struct fleet *f, uint64_t ms);
static void lost(struct fleet *f, const char *why);
static void resync(struct fleet *f);
static void on_resync(void *arg, json_t *resp, const char *err);
static void start_watch(struct fleet *f, int64_t from);
static void on_watch_msg(void *arg, json_t *msg);
static void on_watch_end(void *arg, const char *why);
static void take_kv(struct fleet *f, const json_t *kv, bool deleted);
static void apply_state(struct fleet *f, const char *value, size_t len, int64_t rev);
static void put_presence(struct fleet *f);
static void on_put(void *arg, json_t *resp, const char *err);
static void on_grant(void *arg, json_t *resp, const char *err);
static void on_keepalive(void *arg, json_t *resp, const char *err);
static void on_txn(void *arg, json_t *resp, const char *err);
static void write_rollback(struct fleet *f);
static void on_rb_written(void *arg, int rc, int64_t revision, const char *err);
static json_t *range_body(const char *key, const char *end);
static json_t *encode_state(const struct state *st, const struct engine_origin *o, int64_t time_ms);
static int decode_state(const char *value, size_t len, struct state *st, json_t **doc, char *why,
    size_t whylen);
static struct fnode *node_find(struct fleet *f, const char *name);
static void node_drop(struct fleet *f, const char *name);
static bool converged(const struct fleet *f, int64_t rev, struct jbuf *lagging);
static void boot_range(struct fleet *f);
static void on_boot_range(void *arg, json_t *resp, const char *err);
static void on_boot_create(void *arg, json_t *resp, const char *err);
static json_t *b64_json(const char *s);
static char *prefix_end(const char *prefix);

struct fleet *
fleet_new(struct event_base *base, const struct config_fleet *cfg, struct engine *engine, char *err,
    size_t errlen)
{
	struct fleet *f = calloc(1, sizeof(*f));
	struct etcd_tls tls = {cfg->tls_ca, cfg->tls_cert, cfg->tls_key};
	char host[FLEET_NODE_MAX];
	size_t klen = strlen(cfg->key);

	if (f == NULL)
		goto oom;
	f->base = base;
	f->engine = engine;
	f->lease_ms = cfg->lease_ms;
	f->timeout_ms = cfg->timeout_ms;
	TAILQ_INIT(&f->waiters);
	TAILQ_INIT(&f->proposals);
	if (cfg->node != NULL) {
		snprintf(host, sizeof(host), "%s", cfg->node);
	} else if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0') {
		snprintf(err, errlen, "fleet.node is not set and the host name is unknown");
		free(f);
		return NULL;
	}
	host[sizeof(host) - 1] = '\0';
	/* The name goes into etcd keys and into the state a ramp writes: the
	 * host name must pass what fleet.node would have to. */
	if (cfg->node == NULL && (strlen(host) > 64 ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != strlen(host))) {
		snprintf(err, errlen, "the host name cannot name this node in the fleet (1 to 64 letters, "
		    "digits, '-', '_' or '.'): set fleet.node");
		free(f);
		return NULL;
	}
	if ((f->node = strdup(host)) == NULL || (f->key_state = malloc(klen + 8)) == NULL ||
	    (f->key_nodes = malloc(klen + 8)) == NULL || (f->key_prefix = malloc(klen + 2)) == NULL)
		goto oom;
	snprintf(f->key_state, klen + 8, "%s/state", cfg->key);
	snprintf(f->key_nodes, klen + 8, "%s/nodes/", cfg->key);
	snprintf(f->key_prefix, klen + 2, "%s/", cfg->key);
	if ((f->tick = evtimer_new(base, on_tick, f)) == NULL ||
	    (f->poll = event_new(base, -1, EV_PERSIST, on_poll, f)) == NULL)
		goto oom;
	if ((f->etcd = etcd_new(base, cfg->etcd, cfg->netcd, cfg->timeout_ms, &tls, err, errlen)) == NULL) {
		fleet_free(f);
		return NULL;
	}
	engine->node = f->node;
	return f;
oom:
	snprintf(err, errlen, "out of memory");
	fleet_free(f);
	return NULL;
}

void
fleet_free(struct fleet *f)
{
	struct proposal *p;
	struct waiter *w;

	if (f == NULL)
		return;
	/* Changes still being written are answered (their callers freed)
	 * before the calls go. */
	while ((p = TAILQ_FIRST(&f->proposals)) != NULL) {
		TAILQ_REMOVE(&f->proposals, p, link);
		p->written(p->arg, -1, 0, "etcd: cutoverd is stopping");
		free(p);
	}
	while ((w = TAILQ_FIRST(&f->waiters)) != NULL) {
		TAILQ_REMOVE(&f->waiters, w, link);
		free(w->prefix);
		free(w);
	}
	if (f->watch != NULL)
		etcd_watch_stop(f->watch);
	etcd_free(f->etcd);
	if (f->tick != NULL)
		event_free(f->tick);
	if (f->poll != NULL)
		event_free(f->poll);
	if (f->engine != NULL && f->engine->node == f->node)
		f->engine->node = NULL;
	free(f->nodes);
	free(f->node);
	free(f->key_state);
	free(f->key_nodes);
	free(f->key_prefix);
	free(f);
}

const char *
fleet_node(const struct fleet *f)
{
	return f->node;
}

bool
fleet_connected(const struct fleet *f)
{
	return f->connected;
}

bool
fleet_node_live(const struct fleet *f, const char *name)
{
	size_t i;

	if (strcmp(name, f->node) == 0)
		return f->connected;
	for (i = 0; i < f->nnodes; i++)
		if (strcmp(f->nodes[i].name, name) == 0)
			return true;
	return false;
}

void
fleet_diverge(struct fleet *f)
{
	if (!f->diverged)
		log_warn("fleet: %s changed with --local: diverged from the fleet until it applies "
		         "etcd's state again", f->node);
	f->diverged = true;
	if (f->connected)
		put_presence(f);
}

/* ---- start -------------------------------------------------------------- */

int
fleet_boot(struct fleet *f, int local_rc, const struct state *local, struct state *out)
{
	f->boot_local_rc = local_rc;
	f->boot_local = local;
	f->boot_out = out;
	f->boot_done = false;
	f->boot_tries = 0;
	boot_range(f);
	while (!f->boot_done)
		if (event_base_loop(f->base, EVLOOP_ONCE) < 0)
			break;
	if (!f->boot_done)
		f->boot_rc = 1;
	return f->boot_rc;
}

static void
boot_range(struct fleet *f)
{
	if (etcd_call(f->etcd, "/v3/kv/range", range_body(f->key_state, NULL), on_boot_range, f) < 0) {
		f->boot_rc = 1;
		f->boot_done = true;
	}
}

static void
on_boot_range(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;
	json_t *kvs, *kv;
	char why[256];

	if (resp == NULL) {
		log_warn("fleet: %s", err);
		/* Each endpoint once (the client moved on to the next). */
		if (++f->boot_tries < etcd_nendpoints(f->etcd)) {
			boot_range(f);
			return;
		}
		f->boot_rc = 1;
		f->boot_done = true;
		return;
	}
	kvs = json_object_get(resp, "kvs");
	if (json_array_size(kvs) > 0) {
		json_t *doc = NULL;
		const char *v;
		char *value;
		size_t len;

		kv = json_array_get(kvs, 0);
		v = json_string_value(json_object_get(kv, "value"));
		value = v != NULL ? etcd_unb64(v, &len) : NULL;
		if (value == NULL || decode_state(value, len, f->boot_out, &doc, why, sizeof(why)) < 0) {
			log_err("fleet: %s in etcd is not a cutover state (%s): refusing to guess",
			    f->key_state, value == NULL ? "not base64" : why);
			free(value);
			f->boot_rc = -1;
			f->boot_done = true;
			return;
		}
		json_decref(doc);
		free(value);
		f->applied_rev = etcd_int(json_object_get(kv, "mod_revision"));
		log_info("fleet: %s from etcd (%s): active %s, generation %" PRIu64, f->key_state,
		    etcd_endpoint(f->etcd), color_name(f->boot_out->active), f->boot_out->generation);
		f->boot_rc = 0;
		f->boot_done = true;
		return;
	}
	/* No fleet state yet: this node's becomes it. */
	{
		struct state st;
		struct engine_origin o = {f->node, "create", "manual", "fleet state created", -1, -1};
		json_t *txn, *val;
		char *text, *b64;

		memset(&st, 0, sizeof(st));
		if (f->boot_local_rc == 0)
			st = *f->boot_local;
		else
			engine_state(f->engine, &st);
		*f->boot_out = st;
		val = encode_state(&st, &o, clock_wall_ms());
		text = val != NULL ? json_dumps(val, JSON_COMPACT) : NULL;
		json_decref(val);
		b64 = text != NULL ? etcd_b64(text, strlen(text)) : NULL;
		free(text);
		txn = json_pack("{s:[{s:o,s:s,s:s,s:s}],s:[{s:{s:o,s:s}}]}", "compare", "key",
		    b64_json(f->key_state), "target", "CREATE", "result", "EQUAL", "create_revision", "0",
		    "success", "request_put", "key", b64_json(f->key_state), "value", b64 != NULL ? b64 : "");
		free(b64);
		if (txn == NULL || etcd_call(f->etcd, "/v3/kv/txn", txn, on_boot_create, f) < 0) {
			f->boot_rc = 1;
			f->boot_done = true;
		}
	}
}

static void
on_boot_create(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;

	if (resp == NULL) {
		log_warn("fleet: %s", err);
		f->boot_rc = 1;
		f->boot_done = true;
		return;
	}
	if (!json_is_true(json_object_get(resp, "succeeded"))) {
		/* Another node created it meanwhile: take theirs. */
		boot_range(f);
		return;
	}
	f->applied_rev = etcd_int(json_object_get(json_object_get(resp, "header"), "revision"));
	log_info("fleet: created %s from this node's state: active %s, generation %" PRIu64,
	    f->key_state, color_name(f->boot_out->active), f->boot_out->generation);
	f->boot_rc = 0;
	f->boot_done = true;
}

void
fleet_run(struct fleet *f)
{
	resync(f);
}

void
fleet_leave(struct fleet *f)
{
	char id[32];
	json_t *body;

	f->leaving = true;
	evtimer_del(f->tick);
	if (!f->connected || f->lease_id == 0)
		return;
	snprintf(id, sizeof(id), "%" PRId64, f->lease_id);
	if ((body = json_pack("{s:s}", "ID", id)) != NULL &&
	    etcd_call(f->etcd, "/v3/lease/revoke", body, on_revoked, f) == 0)
		f->revoking = true;
	f->lease_id = 0;
}

bool
fleet_leaving(const struct fleet *f)
{
	return f->revoking;
}

static void
on_revoked(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;

	f->revoking = false;
	if (resp == NULL)
		log_warn("fleet: leaving: cannot revoke the presence lease (%s); it expires by itself", err);
	else
		log_info("fleet: %s left the fleet (presence removed)", f->node);
}

/* ---- connection --------------------------------------------------------- */

static void
arm_tick(struct fleet *f, uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	evtimer_del(f->tick);
	evtimer_add(f->tick, &tv);
}

/* Every third of the lease: keepalive and presence; while cut off: reconnect. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	json_t *body;

	(void)fd;
	(void)what;
	if (f->leaving)
		return;
	if (!f->connected) {
		resync(f);
		return;
	}
	arm_tick(f, f->lease_ms / 3);
	if (f->lease_id == 0) {
		if (!f->granting) {
			f->granting = true;
			body = json_pack("{s:I}", "TTL", (json_int_t)((f->lease_ms + 999) / 1000));
			if (body == NULL || etcd_call(f->etcd, "/v3/lease/grant", body, on_grant, f) < 0)
				f->granting = false;
		}
		return;
	}
	{
		char id[32];

		snprintf(id, sizeof(id), "%" PRId64, f->lease_id);
		if ((body = json_pack("{s:s}", "ID", id)) != NULL)
			(void)etcd_call(f->etcd, "/v3/lease/keepalive", body, on_keepalive, f);
	}
	put_presence(f);
}

static void
on_grant(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;

	f->granting = false;
	if (resp == NULL) {
		lost(f, err);
		return;
	}
	f->lease_id = etcd_int(json_object_get(resp, "ID"));
	log_info("fleet: lease %" PRId64 " granted (TTL %" PRId64 "s)", f->lease_id,
	    etcd_int(json_object_get(resp, "TTL")));
	put_presence(f);
}

static void
on_keepalive(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;
	json_t *r;

	if (resp == NULL) {
		lost(f, err);
		return;
	}
	r = json_object_get(resp, "result");
	if (etcd_int(json_object_get(r != NULL ? r : resp, "TTL")) <= 0 && f->lease_id != 0) {
		log_warn("fleet: lease %" PRId64 " expired: granting a new one", f->lease_id);
		f->lease_id = 0;
		arm_tick(f, 0);
	}
}

/* etcd failed: serve the last applied state, reconnect in the background. */
static void
lost(struct fleet *f, const char *why)
{
	if (f->syncing)
		f->syncing = false;
	if (f->leaving)
		return;
	if (f->connected)
		log_err("fleet: etcd unreachable (%s): serving the last applied state (%s, generation "
		        "%" PRIu64 "); changes are refused unless --local",
		    why, color_name(f->engine->sw.active), f->engine->sw.generation);
	f->connected = false;
	if (f->watch != NULL) {
		etcd_watch_stop(f->watch);
		f->watch = NULL;
	}
	arm_tick(f, FLEET_RETRY_MS);
}

/* Reads all of KEY/ again (state and presences), then watches from there. */
static void
resync(struct fleet *f)
{
	if (f->syncing)
		return;
	f->syncing = true;
	if (etcd_call(f->etcd, "/v3/kv/range", range_body(f->key_prefix, "prefix"), on_resync, f) < 0) {
		f->syncing = false;
		arm_tick(f, FLEET_RETRY_MS);
	}
}

static void
on_resync(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;
	json_t *kvs = resp != NULL ? json_object_get(resp, "kvs") : NULL, *kv;
	int64_t rev;
	size_t i;

	if (!f->syncing)
		return;
	f->syncing = false;
	if (resp == NULL) {
		log_debug("fleet: still cut off from etcd: %s", err);
		lost(f, err);
		return;
	}
	rev = etcd_int(json_object_get(json_object_get(resp, "header"), "revision"));
	if (!f->connected)
		log_info("fleet: etcd reachable (%s), revision %" PRId64, etcd_endpoint(f->etcd), rev);
	f->connected = true;
	f->nnodes = 0;
	/* A rollback made while cut off goes first, unless etcd moved on. */
	for (i = 0; i < json_array_size(kvs); i++) {
		kv = json_array_get(kvs, i);
		const char *k64 = json_string_value(json_object_get(kv, "key"));
		size_t klen;
		char *key = k64 != NULL ? etcd_unb64(k64, &klen) : NULL;

		if (key != NULL && strcmp(key, f->key_state) == 0 && f->rb_pending) {
			int64_t mod = etcd_int(json_object_get(kv, "mod_revision"));

			if (mod == f->rb_base) {
				free(key);
				continue; /* written below; the watch brings it back */
			}
			log_warn("fleet: etcd moved on while cut off (revision %" PRId64 " -> %" PRId64
			         "): the local rollback is not written, etcd's state wins",
			    f->rb_base, mod);
			f->rb_pending = false;
		}
		free(key);
		take_kv(f, kv, false);
	}
	if (f->rb_pending)
		write_rollback(f);
	start_watch(f, rev + 1);
	arm_tick(f, 0);
}

static void
start_watch(struct fleet *f, int64_t from)
{
	char *end = prefix_end(f->key_prefix);
	char srev[32];
	json_t *body;

	if (f->watch != NULL)
		etcd_watch_stop(f->watch);
	f->watch = NULL;
	snprintf(srev, sizeof(srev), "%" PRId64, from);
	body = end != NULL ? json_pack("{s:{s:o,s:o,s:s}}", "create_request", "key",
	    b64_json(f->key_prefix), "range_end", b64_json(end), "start_revision", srev) : NULL;
	free(end);
	if (body == NULL || (f->watch = etcd_watch_start(f->etcd, body, on_watch_msg, on_watch_end, f)) == NULL)
		lost(f, "cannot start the watch: out of memory");
}

static void
on_watch_msg(void *arg, json_t *msg)
{
	struct fleet *f = arg;
	json_t *r = json_object_get(msg, "result"), *events;
	size_t i;

	if (r == NULL) {
		json_t *e = json_object_get(msg, "error");

		lost(f, json_is_object(e) && json_is_string(json_object_get(e, "message"))
		         ? json_string_value(json_object_get(e, "message"))
		         : "watch error");
		return;
	}
	if (etcd_int(json_object_get(r, "compact_revision")) > 0 || json_is_true(json_object_get(r, "canceled"))) {
		/* Revisions were compacted away: read the key again, never skip. */
		log_warn("fleet: watch canceled (compacted at revision %" PRId64 "): reading %s again",
		    etcd_int(json_object_get(r, "compact_revision")), f->key_prefix);
		etcd_watch_stop(f->watch);
		f->watch = NULL;
		resync(f);
		return;
	}
	events = json_object_get(r, "events");
	for (i = 0; i < json_array_size(events); i++) {
		json_t *ev = json_array_get(events, i);
		const char *type = json_string_value(json_object_get(ev, "type"));

		take_kv(f, json_object_get(ev, "kv"), type != NULL && strcmp(type, "DELETE") == 0);
	}
}

static void
on_watch_end(void *arg, const char *why)
{
	struct fleet *f = arg;

	lost(f, why);
}

/* One key of KEY/ as read or watched. */
static void
take_kv(struct fleet *f, const json_t *kv, bool deleted)
{
	const char *k64 = json_string_value(json_object_get(kv, "key"));
	const char *v64 = json_string_value(json_object_get(kv, "value"));
	char *key, *value = NULL;
	size_t klen, vlen = 0;
	json_t *doc;
	json_error_t jerr;

	if (k64 == NULL || (key = etcd_unb64(k64, &klen)) == NULL)
		return;
	if (!deleted && v64 != NULL && (value = etcd_unb64(v64, &vlen)) == NULL)
		goto out;
	if (strcmp(key, f->key_state) == 0) {
		if (!deleted && value != NULL)
			apply_state(f, value, vlen, etcd_int(json_object_get(kv, "mod_revision")));
	} else if (strncmp(key, f->key_nodes, strlen(f->key_nodes)) == 0) {
		const char *name = key + strlen(f->key_nodes), *act;
		struct fnode *n;
		const json_t *h;
		enum color col;

		if (deleted || value == NULL) {
			node_drop(f, name);
			goto out;
		}
		if ((doc = json_loadb(value, vlen, 0, &jerr)) == NULL || (n = node_find(f, name)) == NULL) {
			json_decref(doc);
			goto out;
		}
		n->revision = etcd_int(json_object_get(doc, "revision"));
		n->generation = (uint64_t)etcd_int(json_object_get(doc, "generation"));
		act = json_string_value(json_object_get(doc, "active"));
		n->active = act != NULL && color_parse(act, &col) == 0 ? (int)col : -1;
		h = json_object_get(doc, "healthy");
		n->healthy[COLOR_BLUE] = (unsigned)etcd_int(json_object_get(h, "blue"));
		n->healthy[COLOR_GREEN] = (unsigned)etcd_int(json_object_get(h, "green"));
		snprintf(n->verdict, sizeof(n->verdict), "%s",
		    json_string_value(json_object_get(doc, "verdict")) != NULL
		        ? json_string_value(json_object_get(doc, "verdict")) : "");
		n->diverged = json_is_true(json_object_get(doc, "diverged"));
		n->seen_ms = clock_mono_ms();
		json_decref(doc);
	}
out:
	free(key);
	free(value);
}

/* KEY/state changed (or was read): the one path of every fleet change. */
static void
apply_state(struct fleet *f, const char *value, size_t len, int64_t rev)
{
	struct engine_origin o;
	struct state st;
	json_t *doc = NULL;
	char why[256];
	bool was_diverged = f->diverged;

	if (rev <= f->applied_rev && !f->diverged)
		return;
	if (decode_state(value, len, &st, &doc, why, sizeof(why)) < 0) {
		log_err("fleet: %s revision %" PRId64 " is not a cutover state (%s): ignored, still "
		        "serving %s", f->key_state, rev, why, color_name(f->engine->sw.active));
		json_decref(doc);
		return;
	}
	memset(&o, 0, sizeof(o));
	o.node = json_string_value(json_object_get(doc, "node"));
	o.event = json_string_value(json_object_get(doc, "event"));
	o.trigger = json_string_value(json_object_get(doc, "trigger"));
	o.reason = json_string_value(json_object_get(doc, "reason"));
	o.uid = json_is_integer(json_object_get(doc, "uid")) ? (long)etcd_int(json_object_get(doc, "uid")) : -1;
	o.pid = json_is_integer(json_object_get(doc, "pid")) ? (long)etcd_int(json_object_get(doc, "pid")) : -1;
	if (o.event == NULL)
		o.event = "switch";
	f->applied_rev = rev;
	f->diverged = false;
	if (engine_apply(f->engine, &st, &o, was_diverged)) {
		int64_t t = etcd_int(json_object_get(doc, "time"));
		int64_t us = t > 0 ? (clock_wall_ms() - t) * 1000 : 0;

		if (us < 0)
			us = 0;
		f->apply[histogram_bucket((uint64_t)us)]++;
		f->apply_sum_us += (uint64_t)us;
	}
	if (was_diverged)
		log_info("fleet: etcd's state applied again (generation %" PRIu64 ", %s): no longer "
		         "diverged", st.generation, color_name(st.active));
	json_decref(doc);
	put_presence(f);
}

/* KEY/nodes/NODE under the lease. */
static void
put_presence(struct fleet *f)
{
	const struct engine *e = f->engine;
	struct engine_servers n[COLOR_COUNT];
	char key[512], lease[32], *text, *b64;
	json_t *doc, *body;
	int c;

	if (!f->connected || f->lease_id == 0 || f->leaving)
		return;
	for (c = 0; c < COLOR_COUNT; c++) {
		memset(&n[c], 0, sizeof(n[c]));
		e->fx->servers(e->arg, (enum color)c, &n[c]);
		f->put_healthy[c] = n[c].confirmed;
	}
	f->put_verdict = (int)e->verdict;
	doc = json_pack("{s:s,s:I,s:I,s:s,s:{s:i,s:i},s:s,s:b,s:s}", "node", f->node, "revision",
	    (json_int_t)f->applied_rev, "generation", (json_int_t)e->sw.generation, "active",
	    color_name(e->sw.active), "healthy", "blue", (int)n[COLOR_BLUE].confirmed, "green",
	    (int)n[COLOR_GREEN].confirmed, "verdict",
	    window_verdict_name(e->verdict) != NULL ? window_verdict_name(e->verdict) : "none", "diverged",
	    f->diverged, "version", PACKAGE_VERSION);
	text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	b64 = text != NULL ? etcd_b64(text, strlen(text)) : NULL;
	free(text);
	snprintf(key, sizeof(key), "%s%s", f->key_nodes, f->node);
	snprintf(lease, sizeof(lease), "%" PRId64, f->lease_id);
	body = b64 != NULL ? json_pack("{s:o,s:s,s:s}", "key", b64_json(key), "value", b64, "lease", lease)
	                   : NULL;
	free(b64);
	if (body != NULL)
		(void)etcd_call(f->etcd, "/v3/kv/put", body, on_put, f);
}

static void
on_put(void *arg, json_t *resp, const char *err)
{
	struct fleet *f = arg;

	if (resp == NULL) {
		/* A lease that expired while cut off: grant a new one. */
		if (strstr(err, "lease not found") != NULL) {
			f->lease_id = 0;
			arm_tick(f, 0);
			return;
		}
		lost(f, err);
	}
}

void
fleet_tick(struct fleet *f)
{
	const struct engine *e = f->engine;
	struct engine_servers n;
	int c;

	for (c = 0; c < COLOR_COUNT; c++) {
		memset(&n, 0, sizeof(n));
		e->fx->servers(e->arg, (enum color)c, &n);
		if (n.confirmed != f->put_healthy[c]) {
			put_presence(f);
			return;
		}
	}
	if ((int)e->verdict != f->put_verdict)
		put_presence(f);
}

/* ---- changes ------------------------------------------------------------ */

int
fleet_check_health(const struct fleet *f, enum color target, unsigned min_healthy, char *why,
    size_t whylen)
{
	size_t i;

	for (i = 0; i < f->nnodes; i++) {
		const struct fnode *n = &f->nodes[i];

		if (strcmp(n->name, f->node) == 0)
			continue;
		if (n->healthy[target] < min_healthy) {
			snprintf(why, whylen, "node %s sees %u healthy %s servers, needs %u", n->name,
			    n->healthy[target], color_name(target), min_healthy);
			return -1;
		}
	}
	return 0;
}

int
fleet_propose(struct fleet *f, const struct state *next, const struct engine_origin *o,
    fleet_written_cb *written, void *arg)
{
	struct proposal *p;
	char *text, *b64, srev[32];
	json_t *val, *txn;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->f = f;
	p->written = written;
	p->arg = arg;
	val = encode_state(next, o, clock_wall_ms());
	text = val != NULL ? json_dumps(val, JSON_COMPACT) : NULL;
	json_decref(val);
	b64 = text != NULL ? etcd_b64(text, strlen(text)) : NULL;
	free(text);
	snprintf(srev, sizeof(srev), "%" PRId64, f->applied_rev);
	/* Of two concurrent changes exactly one wins: the revision compared. */
	txn = b64 == NULL ? NULL : f->applied_rev > 0
	    ? json_pack("{s:[{s:o,s:s,s:s,s:s}],s:[{s:{s:o,s:s}}]}", "compare", "key",
	          b64_json(f->key_state), "target", "MOD", "result", "EQUAL", "mod_revision", srev,
	          "success", "request_put", "key", b64_json(f->key_state), "value", b64)
	    : json_pack("{s:[{s:o,s:s,s:s,s:s}],s:[{s:{s:o,s:s}}]}", "compare", "key",
	          b64_json(f->key_state), "target", "CREATE", "result", "EQUAL", "create_revision", "0",
	          "success", "request_put", "key", b64_json(f->key_state), "value", b64);
	free(b64);
	if (txn == NULL || etcd_call(f->etcd, "/v3/kv/txn", txn, on_txn, p) < 0) {
		free(p);
		return -1;
	}
	TAILQ_INSERT_TAIL(&f->proposals, p, link);
	return 0;
}

static void
on_txn(void *arg, json_t *resp, const char *err)
{
	struct proposal *p = arg;
	struct fleet *f = p->f;

	TAILQ_REMOVE(&f->proposals, p, link);
	if (resp == NULL) {
		char msg[600];

		snprintf(msg, sizeof(msg), "etcd: %s", err);
		lost(f, err);
		p->written(p->arg, -1, 0, msg);
	} else if (!json_is_true(json_object_get(resp, "succeeded"))) {
		p->written(p->arg, 1, 0,
		    "the fleet's state in etcd changed meanwhile (another change won); try again");
	} else {
		p->written(p->arg, 0, etcd_int(json_object_get(json_object_get(resp, "header"), "revision")),
		    NULL);
	}
	free(p);
}

void
fleet_await(struct fleet *f, struct control_conn *c, int64_t revision, char *prefix)
{
	struct waiter *w = calloc(1, sizeof(*w));
	struct timeval tv = {0, FLEET_POLL_MS * 1000};

	if (w == NULL) {
		free(prefix);
		control_reply_error(c, "out of memory");
		return;
	}
	w->conn = c;
	w->revision = revision;
	w->deadline_ms = clock_mono_ms() + f->timeout_ms;
	w->prefix = prefix;
	TAILQ_INSERT_TAIL(&f->waiters, w, link);
	if (!event_pending(f->poll, EV_TIMEOUT, NULL))
		event_add(f->poll, &tv);
	on_poll(-1, 0, f);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct fleet *f = arg;
	struct waiter *w, *next;
	uint64_t now = clock_mono_ms();

	(void)fd;
	(void)what;
	for (w = TAILQ_FIRST(&f->waiters); w != NULL; w = next) {
		struct jbuf lag, b;
		bool ok;

		next = TAILQ_NEXT(w, link);
		jbuf_init(&lag);
		ok = converged(f, w->revision, &lag);
		if (!ok && now < w->deadline_ms) {
			jbuf_free(&lag);
			continue;
		}
		jbuf_init(&b);
		jbuf_raw(&b, w->prefix);
		if (ok)
			jbuf_raw(&b, ",\"converged\":true}");
		else
			jbuf_printf(&b, ",\"converged\":false,\"lagging\":[%s]}", lag.s != NULL ? lag.s : "");
		if (!ok)
			log_warn("fleet: revision %" PRId64 " not applied by every live node within %" PRIu64
			         "ms: lagging [%s]", w->revision, f->timeout_ms, lag.s != NULL ? lag.s : "");
		control_reply_jbuf(w->conn, &b);
		jbuf_free(&lag);
		TAILQ_REMOVE(&f->waiters, w, link);
		free(w->prefix);
		free(w);
	}
	if (TAILQ_EMPTY(&f->waiters))
		event_del(f->poll);
}

/* Every live node applied rev (this one by its own count); the others are
 * listed in lagging as JSON strings. */
static bool
converged(const struct fleet *f, int64_t rev, struct jbuf *lagging)
{
	bool ok = true;
	size_t i;

	if (f->applied_rev < rev || f->diverged) {
		jbuf_str(lagging, f->node);
		ok = false;
	}
	for (i = 0; i < f->nnodes; i++) {
		const struct fnode *n = &f->nodes[i];

		if (strcmp(n->name, f->node) == 0 || (n->revision >= rev && !n->diverged))
			continue;
		if (!ok)
			jbuf_raw(lagging, ",");
		jbuf_str(lagging, n->name);
		ok = false;
	}
	return ok;
}

void
fleet_local_rollback(struct fleet *f, const char *reason)
{
	engine_state(f->engine, &f->rb_state);
	snprintf(f->rb_reason, sizeof(f->rb_reason), "%s", reason != NULL ? reason : "");
	f->rb_base = f->applied_rev;
	f->rb_pending = true;
	if (f->connected) {
		write_rollback(f);
	} else {
		/* This node left etcd's state on its own, like --local. */
		f->diverged = true;
		log_warn("fleet: automatic rollback made while etcd is unreachable: written once it is "
		         "back, unless the fleet moved on meanwhile");
	}
}

static void
write_rollback(struct fleet *f)
{
	struct engine_origin o = {f->node, "rollback", "auto-rollback", f->rb_reason, -1, -1};
	int64_t keep = f->applied_rev;

	if (f->rb_writing)
		return;
	f->rb_writing = true;
	f->applied_rev = f->rb_base;
	if (fleet_propose(f, &f->rb_state, &o, on_rb_written, f) < 0)
		f->rb_writing = false;
	f->applied_rev = keep;
}

static void
on_rb_written(void *arg, int rc, int64_t revision, const char *err)
{
	struct fleet *f = arg;

	f->rb_writing = false;
	if (rc < 0)
		return; /* still pending: written on reconnect */
	f->rb_pending = false;
	if (rc > 0) {
		log_warn("fleet: the automatic rollback was not written: %s; etcd's state wins", err);
		return;
	}
	log_info("fleet: automatic rollback written to etcd (revision %" PRId64 "): the fleet follows",
	    revision);
	f->diverged = false;
}

/* ---- status ------------------------------------------------------------- */

void
fleet_status(const struct fleet *f, struct jbuf *b)
{
	uint64_t now = clock_mono_ms();
	struct jbuf lag;
	size_t i;

	jbuf_init(&lag);
	jbuf_raw(b, ",\"fleet\":{\"node\":");
	jbuf_str(b, f->node);
	jbuf_printf(b, ",\"etcd\":\"%s\",\"endpoint\":", f->connected ? "ok" : "unreachable");
	jbuf_str(b, etcd_endpoint(f->etcd));
	jbuf_printf(b, ",\"diverged\":%s,\"converged\":%s,\"revision\":%" PRId64 ",\"timeout_ms\":%" PRIu64
	               ",\"nodes\":[",
	    f->diverged ? "true" : "false",
	    f->connected && converged(f, f->applied_rev, &lag) ? "true" : "false", f->applied_rev,
	    f->timeout_ms);
	jbuf_free(&lag);
	for (i = 0; i < f->nnodes; i++) {
		const struct fnode *n = &f->nodes[i];

		jbuf_raw(b, i ? ",{\"node\":" : "{\"node\":");
		jbuf_str(b, n->name);
		jbuf_printf(b, ",\"generation\":%" PRIu64 ",\"active\":", n->generation);
		jbuf_str(b, n->active >= 0 ? color_name((enum color)n->active) : NULL);
		jbuf_printf(b, ",\"revision\":%" PRId64 ",\"age_s\":%.1f,\"healthy\":{\"blue\":%u,"
		               "\"green\":%u},\"verdict\":",
		    n->revision, (double)(now - n->seen_ms) / 1000.0, n->healthy[COLOR_BLUE],
		    n->healthy[COLOR_GREEN]);
		jbuf_str(b, n->verdict);
		jbuf_printf(b, ",\"diverged\":%s}", n->diverged ? "true" : "false");
	}
	jbuf_raw(b, "]}");
}

void
fleet_get_metrics(const struct fleet *f, struct fleet_metrics *m)
{
	struct jbuf lag;

	memset(m, 0, sizeof(*m));
	m->connected = f->connected;
	m->nodes = (unsigned)f->nnodes;
	jbuf_init(&lag);
	m->converged = f->connected && converged(f, f->applied_rev, &lag);
	jbuf_free(&lag);
	memcpy(m->apply, f->apply, sizeof(m->apply));
	m->apply_sum_us = f->apply_sum_us;
}

/* ---- helpers ------------------------------------------------------------ */

/* KEY/state's value: the state file's text and who made the change. */
static json_t *
encode_state(const struct state *st, const struct engine_origin *o, int64_t time_ms)
{
	char text[1024];
	json_t *v;

	if (state_format(st, text, sizeof(text)) < 0)
		return NULL;
	v = json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:I}", "state", text, "node", o->node, "event",
	    o->event, "trigger", o->trigger, "reason", o->reason, "time", (json_int_t)time_ms);
	if (v != NULL && o->uid >= 0) {
		json_object_set_new(v, "uid", json_integer(o->uid));
		json_object_set_new(v, "pid", json_integer(o->pid));
	}
	return v;
}

static int
decode_state(const char *value, size_t len, struct state *st, json_t **doc, char *why, size_t whylen)
{
	json_error_t jerr;
	const char *text;

	*doc = json_loadb(value, len, 0, &jerr);
	if (*doc == NULL) {
		snprintf(why, whylen, "not JSON: %s", jerr.text);
		return -1;
	}
	if ((text = json_string_value(json_object_get(*doc, "state"))) == NULL) {
		snprintf(why, whylen, "no \"state\"");
		return -1;
	}
	return state_parse(text, strlen(text), st, why, whylen);
}

static json_t *
b64_json(const char *s)
{
	char *b = etcd_b64(s, strlen(s));
	json_t *v = b != NULL ? json_string(b) : NULL;

	free(b);
	return v;
}

/* The range end of a prefix: its last byte plus one. */
static char *
prefix_end(const char *prefix)
{
	char *end = strdup(prefix);

	if (end != NULL)
		end[strlen(end) - 1]++;
	return end;
}

static json_t *
range_body(const char *key, const char *prefix)
{
	char *end = prefix != NULL ? prefix_end(key) : NULL;
	json_t *v = json_pack("{s:o}", "key", b64_json(key));

	if (v != NULL && end != NULL)
		json_object_set_new(v, "range_end", b64_json(end));
	free(end);
	return v;
}

static struct fnode *
node_find(struct fleet *f, const char *name)
{
	struct fnode *v;
	size_t i;

	for (i = 0; i < f->nnodes; i++)
		if (strcmp(f->nodes[i].name, name) == 0)
			return &f->nodes[i];
	if (strlen(name) >= FLEET_NODE_MAX)
		return NULL;
	if ((v = realloc(f->nodes, (f->nnodes + 1) * sizeof(*v))) == NULL)
		return NULL;
	f->nodes = v;
	memset(&v[f->nnodes], 0, sizeof(v[0]));
	snprintf(v[f->nnodes].name, FLEET_NODE_MAX, "%s", name);
	v[f->nnodes].active = -1;
	return &v[f->nnodes++];
}

static void
node_drop(struct fleet *f, const char *name)
{
	size_t i;

	for (i = 0; i < f->nnodes; i++) {
		if (strcmp(f->nodes[i].name, name) == 0) {
			log_info("fleet: node %s left (its presence expired or was removed)", name);
			memmove(&f->nodes[i], &f->nodes[i + 1], (f->nnodes - i - 1) * sizeof(f->nodes[0]));
			f->nnodes--;
			return;
		}
	}
}
