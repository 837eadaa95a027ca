#include "autoconf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "etcd.h"
#include "log.h"

#define ETCD_MESSAGE_MAX (64 * 1024 * 1024) /* a watch message, at most */
#define ETCD_WATCH_TIMEOUT_S 3600 /* an idle watch is normal; the keepalives judge etcd */

struct endpoint {
	char *url;
	char *host;
	unsigned short port;
	bool https;
};

struct call {
	TAILQ_ENTRY(call) link;
	struct etcd *c;
	struct evhttp_connection *evcon;
	etcd_cb *cb;
	void *arg;
	size_t ep;
	char *path;
};

struct etcd_watch {
	TAILQ_ENTRY(etcd_watch) link;
	struct etcd *c;
	struct evhttp_connection *evcon;
	struct evbuffer *buf;
	etcd_msg_cb *on_msg;
	etcd_end_cb *on_end;
	void *arg;
	size_t ep;
	bool stopped, ended;
	struct event *reaper;
};

TAILQ_HEAD(call_list, call);
TAILQ_HEAD(watch_list, etcd_watch);

struct etcd {
	struct event_base *base;
	struct endpoint *eps;
	size_t neps;
	size_t cur;
	uint64_t timeout_ms;
	SSL_CTX *ssl;
	struct call_list calls;
	struct watch_list watches;
	/* Connections of finished calls, freed from the loop (not from
	 * their own callbacks). */
	struct evhttp_connection **dead;
	size_t ndead, dead_cap;
	struct event *reaper;
};

static struct evhttp_connection *connect_ep(struct etcd *c, size_t ep, uint64_t timeout_ms);
static struct evhttp_request *new_post(const struct endpoint *e,
    json_t *body, void (*cb)(struct evhttp_request *, void *), void *arg);
static void on_call_done(struct evhttp_request *req, void *arg);
static void on_watch_chunk(struct evhttp_request *req, void *arg);
static void on_watch_done(struct evhttp_request *req, void *arg);
static void watch_end(struct etcd_watch *w, const char *why);
static void on_reap(evutil_socket_t fd, short what, void *arg);
static void fail_over(struct etcd *c, size_t ep);
static void on_dead(evutil_socket_t fd, short what, void *arg);
static void bury(struct etcd *c, struct evhttp_connection *evcon);

struct etcd *
etcd_new(struct event_base *base, char *const *endpoints, size_t n, uint64_t timeout_ms,
    const struct etcd_tls *tls, char *err, size_t errlen)
{
	struct etcd *c = calloc(1, sizeof(*c));
	bool any_https = false;
	size_t i;

	if (c == NULL || (c->eps = calloc(n, sizeof(*c->eps))) == NULL) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->timeout_ms = timeout_ms;
	if ((c->reaper = evtimer_new(base, on_dead, c)) == NULL) {
		free(c->eps);
		free(c);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	TAILQ_INIT(&c->calls);
	TAILQ_INIT(&c->watches);
	for (i = 0; i < n; i++) {
		const char *u = endpoints[i];
		const char *hp = strncmp(u, "https://", 8) == 0 ? u + 8 : u + 7;
		const char *colon = strrchr(hp, ':');
		struct endpoint *e = &c->eps[c->neps];

		e->https = hp == u + 8;
		any_https |= e->https;
		if (colon == NULL || (e->url = strdup(u)) == NULL ||
		    (e->host = strndup(hp, (size_t)(colon - hp))) == NULL) {
			free(e->url);
			snprintf(err, errlen, "%s: not an etcd endpoint", u);
			goto fail;
		}
		e->port = (unsigned short)strtoul(colon + 1, NULL, 10);
		/* [::1]:2379 */
		if (e->host[0] == '[' && e->host[strlen(e->host) - 1] == ']') {
			memmove(e->host, e->host + 1, strlen(e->host));
			e->host[strlen(e->host) - 1] = '\0';
		}
		c->neps++;
	}
	if (any_https) {
		if ((c->ssl = SSL_CTX_new(TLS_client_method())) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
		SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
		if (tls != NULL && tls->ca != NULL) {
			if (SSL_CTX_load_verify_locations(c->ssl, tls->ca, NULL) != 1) {
				snprintf(err, errlen, "fleet.tls.ca %s: cannot load", tls->ca);
				goto fail;
			}
		} else if (SSL_CTX_set_default_verify_paths(c->ssl) != 1) {
			snprintf(err, errlen, "cannot load the system's CA certificates");
			goto fail;
		}
		if (tls != NULL && tls->cert != NULL &&
		    (SSL_CTX_use_certificate_chain_file(c->ssl, tls->cert) != 1 ||
		        SSL_CTX_use_PrivateKey_file(c->ssl, tls->key, SSL_FILETYPE_PEM) != 1 ||
		        SSL_CTX_check_private_key(c->ssl) != 1)) {
			snprintf(err, errlen, "fleet.tls.cert %s / key %s: cannot load", tls->cert,
			    tls->key);
			goto fail;
		}
	}
	return c;
fail:
	ERR_clear_error();
	etcd_free(c);
	return NULL;
}

void
etcd_free(struct etcd *c)
{
	struct call *k;
	struct etcd_watch *w;
	size_t i;

	if (c == NULL)
		return;
	while ((k = TAILQ_FIRST(&c->calls)) != NULL) {
		TAILQ_REMOVE(&c->calls, k, link);
		evhttp_connection_free(k->evcon);
		free(k->path);
		free(k);
	}
	while ((w = TAILQ_FIRST(&c->watches)) != NULL) {
		TAILQ_REMOVE(&c->watches, w, link);
		if (w->evcon != NULL)
			evhttp_connection_free(w->evcon);
		if (w->reaper != NULL)
			event_free(w->reaper);
		evbuffer_free(w->buf);
		free(w);
	}
	on_dead(-1, 0, c);
	free(c->dead);
	event_free(c->reaper);
	for (i = 0; i < c->neps; i++) {
		free(c->eps[i].url);
		free(c->eps[i].host);
	}
	free(c->eps);
	if (c->ssl != NULL)
		SSL_CTX_free(c->ssl);
	free(c);
}

const char *
etcd_endpoint(const struct etcd *c)
{
	return c->eps[c->cur].url;
}

size_t
etcd_nendpoints(const struct etcd *c)
{
	return c->neps;
}

static struct evhttp_connection *
connect_ep(struct etcd *c, size_t ep, uint64_t timeout_ms)
{
	const struct endpoint *e = &c->eps[ep];
	struct bufferevent *bev = NULL;
	struct evhttp_connection *evcon;
	struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};

	if (e->https) {
		SSL *ssl = SSL_new(c->ssl);
		X509_VERIFY_PARAM *vp;

		if (ssl == NULL)
			return NULL;
		vp = SSL_get0_param(ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, e->host) != 1) {
			ERR_clear_error();
			SSL_set_tlsext_host_name(ssl, e->host);
			X509_VERIFY_PARAM_set1_host(vp, e->host, 0);
		}
		bev = bufferevent_openssl_socket_new(c->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			SSL_free(ssl);
			return NULL;
		}
	}
	evcon = evhttp_connection_base_bufferevent_new(c->base, NULL, bev, e->host, e->port);
	if (evcon == NULL) {
		if (bev != NULL)
			bufferevent_free(bev);
		return NULL;
	}
	evhttp_connection_set_timeout_tv(evcon, &tv);
	evhttp_connection_set_retries(evcon, 0);
	return evcon;
}

static struct evhttp_request *
new_post(const struct endpoint *e, json_t *body,
    void (*cb)(struct evhttp_request *, void *), void *arg)
{
	struct evhttp_request *req;
	char *text = json_dumps(body, JSON_COMPACT);
	char hostport[300];

	json_decref(body);
	if (text == NULL || (req = evhttp_request_new(cb, arg)) == NULL) {
		free(text);
		return NULL;
	}
	snprintf(hostport, sizeof(hostport), "%s:%u", e->host, e->port);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostport);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
	free(text);
	return req;
}

int
etcd_call(struct etcd *c, const char *path, json_t *body, etcd_cb *cb, void *arg)
{
	struct call *k = calloc(1, sizeof(*k));
	struct evhttp_request *req;

	if (k == NULL || (k->path = strdup(path)) == NULL) {
		free(k);
		json_decref(body);
		return -1;
	}
	k->c = c;
	k->cb = cb;
	k->arg = arg;
	k->ep = c->cur;
	if ((k->evcon = connect_ep(c, k->ep, c->timeout_ms)) == NULL) {
		json_decref(body);
		goto fail;
	}
	if ((req = new_post(&c->eps[k->ep], body, on_call_done, k)) == NULL)
		goto fail;
	if (evhttp_make_request(k->evcon, req, EVHTTP_REQ_POST, path) < 0)
		goto fail; /* req was freed */
	TAILQ_INSERT_TAIL(&c->calls, k, link);
	return 0;
fail:
	if (k->evcon != NULL)
		evhttp_connection_free(k->evcon);
	free(k->path);
	free(k);
	return -1;
}

/* A failed call moves the client on to the next endpoint (once per failure). */
static void
fail_over(struct etcd *c, size_t ep)
{
	if (c->neps > 1 && c->cur == ep) {
		c->cur = (c->cur + 1) % c->neps;
		log_debug("etcd: %s failed; trying %s next", c->eps[ep].url, c->eps[c->cur].url);
	}
}

static void
on_call_done(struct evhttp_request *req, void *arg)
{
	struct call *k = arg;
	struct etcd *c = k->c;
	json_t *resp = NULL;
	json_error_t jerr;
	char err[512];
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

	TAILQ_REMOVE(&c->calls, k, link);
	err[0] = '\0';
	if (code == 0) {
		snprintf(err, sizeof(err), "%s%s: no answer (unreachable or timed out)",
		    c->eps[k->ep].url, k->path);
	} else {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		const char *body = (const char *)evbuffer_pullup(in, -1);

		resp = body != NULL ? json_loadb(body, len, 0, &jerr) : NULL;
		if (code != 200) {
			json_t *m = resp != NULL ? json_object_get(resp, "message") : NULL;

			if (m == NULL && resp != NULL)
				m = json_object_get(resp, "error");
			snprintf(err, sizeof(err), "%s%s: HTTP %d%s%s", c->eps[k->ep].url, k->path, code,
			    json_is_string(m) ? ": " : "", json_is_string(m) ? json_string_value(m) : "");
			json_decref(resp);
			resp = NULL;
		} else if (resp == NULL) {
			snprintf(err, sizeof(err), "%s%s: answer is not JSON: %s", c->eps[k->ep].url,
			    k->path, jerr.text);
		}
	}
	if (resp == NULL && code == 0)
		fail_over(c, k->ep);
	/* The connection goes once this callback returns. */
	bury(c, k->evcon);
	k->cb(k->arg, resp, resp != NULL ? NULL : err);
	json_decref(resp);
	free(k->path);
	free(k);
}

struct etcd_watch *
etcd_watch_start(struct etcd *c, json_t *body, etcd_msg_cb *on_msg, etcd_end_cb *on_end, void *arg)
{
	struct etcd_watch *w = calloc(1, sizeof(*w));
	struct evhttp_request *req;

	if (w == NULL || (w->buf = evbuffer_new()) == NULL ||
	    (w->reaper = evtimer_new(c->base, on_reap, w)) == NULL) {
		if (w != NULL && w->buf != NULL)
			evbuffer_free(w->buf);
		free(w);
		json_decref(body);
		return NULL;
	}
	w->c = c;
	w->on_msg = on_msg;
	w->on_end = on_end;
	w->arg = arg;
	w->ep = c->cur;
	TAILQ_INSERT_TAIL(&c->watches, w, link);
	if ((w->evcon = connect_ep(c, w->ep, (uint64_t)ETCD_WATCH_TIMEOUT_S * 1000)) == NULL) {
		json_decref(body);
		goto fail;
	}
	if ((req = new_post(&c->eps[w->ep], body, on_watch_done, w)) == NULL)
		goto fail;
	evhttp_request_set_chunked_cb(req, on_watch_chunk);
	if (evhttp_make_request(w->evcon, req, EVHTTP_REQ_POST, "/v3/watch") < 0)
		goto fail;
	return w;
fail:
	/* Reported through on_end from the loop, like any other failure. */
	w->ended = false;
	event_active(w->reaper, EV_TIMEOUT, 0);
	return w;
}

static void
on_watch_chunk(struct evhttp_request *req, void *arg)
{
	struct etcd_watch *w = arg;
	json_t *msg;
	char err[256];
	int rc;

	if (w->stopped)
		return;
	evbuffer_add_buffer(w->buf, evhttp_request_get_input_buffer(req));
	while (!w->stopped && (rc = etcd_stream_next(w->buf, &msg, err, sizeof(err))) != 0) {
		if (rc < 0) {
			evbuffer_drain(w->buf, evbuffer_get_length(w->buf));
			watch_end(w, err);
			return;
		}
		w->on_msg(w->arg, msg);
		json_decref(msg);
	}
}

static void
on_watch_done(struct evhttp_request *req, void *arg)
{
	struct etcd_watch *w = arg;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
	char why[256];

	if (code == 0)
		fail_over(w->c, w->ep);
	snprintf(why, sizeof(why), "%s/v3/watch: %s", w->c->eps[w->ep].url,
	    code == 0 ? "connection lost" : code == 200 ? "stream ended" : "refused");
	if (code != 0 && code != 200)
		snprintf(why, sizeof(why), "%s/v3/watch: HTTP %d", w->c->eps[w->ep].url, code);
	/* The connection itself goes in etcd_watch_stop, from the loop. */
	watch_end(w, why);
}

static void
watch_end(struct etcd_watch *w, const char *why)
{
	if (w->stopped || w->ended)
		return;
	w->ended = true;
	w->on_end(w->arg, why);
}

void
etcd_watch_stop(struct etcd_watch *w)
{
	if (w == NULL)
		return;
	w->stopped = true;
	/* Perhaps called from one of its own callbacks: freed from the loop. */
	event_active(w->reaper, EV_TIMEOUT, 0);
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct etcd_watch *w = arg;
	struct etcd *c = w->c;

	(void)fd;
	(void)what;
	if (!w->stopped) {
		/* A watch that could not start: say so. */
		watch_end(w, "cannot start the watch: out of memory");
		return;
	}
	TAILQ_REMOVE(&c->watches, w, link);
	if (w->evcon != NULL)
		evhttp_connection_free(w->evcon);
	event_free(w->reaper);
	evbuffer_free(w->buf);
	free(w);
}

static void
bury(struct etcd *c, struct evhttp_connection *evcon)
{
	if (c->ndead == c->dead_cap) {
		size_t cap = c->dead_cap ? 2 * c->dead_cap : 8;
		struct evhttp_connection **v = realloc(c->dead, cap * sizeof(*v));

		if (v == NULL) {
			/* Out of memory: let libevent free it when done. */
			evhttp_connection_free_on_completion(evcon);
			return;
		}
		c->dead = v;
		c->dead_cap = cap;
	}
	c->dead[c->ndead++] = evcon;
	event_active(c->reaper, EV_TIMEOUT, 0);
}

static void
on_dead(evutil_socket_t fd, short what, void *arg)
{
	struct etcd *c = arg;
	size_t i;

	(void)fd;
	(void)what;
	for (i = 0; i < c->ndead; i++)
		evhttp_connection_free(c->dead[i]);
	c->ndead = 0;
}

/*
 * A message is one JSON object: its end is found by counting brackets
 * outside strings (a cut literal such as "tru" is not an error, only not
 * complete yet), then jansson parses exactly that slice.
 */
int
etcd_stream_next(struct evbuffer *buf, json_t **out, char *err, size_t errlen)
{
	size_t len, skip = 0, i, end = 0;
	unsigned depth = 0;
	bool in_str = false, esc = false;
	const char *p;
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	len = evbuffer_get_length(buf);
	if (len == 0)
		return 0;
	p = (const char *)evbuffer_pullup(buf, -1);
	while (skip < len && (p[skip] == ' ' || p[skip] == '\n' || p[skip] == '\r' || p[skip] == '\t'))
		skip++;
	if (skip == len) {
		evbuffer_drain(buf, len);
		return 0;
	}
	if (p[skip] != '{') {
		snprintf(err, errlen, "watch stream is not JSON: '%c' where a message should start",
		    p[skip] >= 0x20 && p[skip] < 0x7f ? p[skip] : '?');
		return -1;
	}
	for (i = skip; i < len && end == 0; i++) {
		char c = p[i];

		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (--depth == 0)
				end = i + 1;
		}
	}
	if (end == 0) {
		if (len > ETCD_MESSAGE_MAX) {
			snprintf(err, errlen, "watch stream message larger than %d bytes", ETCD_MESSAGE_MAX);
			return -1;
		}
		return 0;
	}
	v = json_loadb(p + skip, end - skip, 0, &jerr);
	if (v == NULL) {
		snprintf(err, errlen, "watch stream is not JSON: %s", jerr.text);
		return -1;
	}
	evbuffer_drain(buf, end);
	*out = v;
	return 1;
}

char *
etcd_b64(const char *s, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
	return out;
}

char *
etcd_unb64(const char *s, size_t *len)
{
	size_t n = strlen(s);
	char *out;
	int r;

	if (n % 4 != 0 || (out = malloc(3 * (n / 4) + 1)) == NULL)
		return NULL;
	r = n == 0 ? 0 : EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
	if (r < 0) {
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (n > 0 && s[n - 1] == '=')
		r--;
	if (n > 1 && s[n - 2] == '=')
		r--;
	out[r] = '\0';
	*len = (size_t)r;
	return out;
}

int64_t
etcd_int(const json_t *v)
{
	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (json_is_string(v))
		return (int64_t)strtoll(json_string_value(v), NULL, 10);
	return 0;
}
