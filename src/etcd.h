#ifndef CUTOVER_SRC_ETCD_H
#define CUTOVER_SRC_ETCD_H

/*
 * A small etcd v3 client over its JSON gateway (/v3/...), on the main
 * thread's event loop and never blocking it: unary calls (range, put, txn,
 * lease grant and keepalive) and the watch, a long streaming POST whose
 * messages are split by etcd_stream_next (message boundaries are not chunk
 * boundaries: etcd#11372). Several endpoints: a call that fails moves the
 * client to the next one for the calls after it. http:// or https:// (with
 * a CA and optionally a client certificate). Main thread only.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;
struct evbuffer;
struct etcd;
struct etcd_watch;

struct etcd_tls {
	const char *ca, *cert, *key; /* paths or NULL */
};

/* A unary call's outcome: resp (borrowed) on success, else NULL and err. */
typedef void etcd_cb(void *arg, json_t *resp, const char *err);
/* A watch message (borrowed); the end of the stream with why (once). */
typedef void etcd_msg_cb(void *arg, json_t *msg);
typedef void etcd_end_cb(void *arg, const char *why);

/* NULL with err when an endpoint or the TLS files are unusable. */
struct etcd *etcd_new(struct event_base *base, char *const *endpoints, size_t n,
    uint64_t timeout_ms, const struct etcd_tls *tls, char *err, size_t errlen);
/* Frees the client, its calls in flight (never called back) and its watches. */
void etcd_free(struct etcd *c);

/* POSTs body (stolen) to path ("/v3/kv/range"); cb is called exactly once,
 * later, unless the client is freed first. -1 when out of memory. */
int etcd_call(struct etcd *c, const char *path, json_t *body, etcd_cb *cb, void *arg);

/* Starts a watch (body stolen: {"create_request":{...}}). */
struct etcd_watch *etcd_watch_start(struct etcd *c, json_t *body, etcd_msg_cb *on_msg,
    etcd_end_cb *on_end, void *arg);
/* Stops a watch; its callbacks are not called any more. */
void etcd_watch_stop(struct etcd_watch *w);

/* The endpoint calls go to now, and how many there are. */
const char *etcd_endpoint(const struct etcd *c);
size_t etcd_nendpoints(const struct etcd *c);

/*
 * The watch stream splitter (pure): takes the first complete JSON value
 * from buf (leading blanks skipped), removing its bytes. Returns 1 with
 * *out (a new reference), 0 when the value is not complete yet (buf
 * untouched), -1 when buf does not hold JSON (with err).
 */
int etcd_stream_next(struct evbuffer *buf, json_t **out, char *err, size_t errlen);

/* Base64 of len bytes (malloc'd), and back (malloc'd, NUL-terminated, *len
 * without it); NULL when out of memory or not base64. */
char *etcd_b64(const char *s, size_t len);
char *etcd_unb64(const char *s, size_t *len);

/* An int64 of the gateway's JSON (a string of digits, a number, or absent: 0). */
int64_t etcd_int(const json_t *v);

#endif
