#ifndef CUTOVER_SRC_TLS_H
#define CUTOVER_SRC_TLS_H

/*
 * TLS with OpenSSL 3: server contexts for listeners (several certificates
 * chosen by SNI against each certificate's names, the first as default),
 * client contexts for upstream pools. Contexts are reference-counted so a
 * reload can swap them while connections still use the old ones.
 */

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct tls_server;
struct tls_client;

/*
 * Checks a listener's TLS settings the way -t does: every cert/key pair
 * readable, parseable PEM, key matching the certificate, certificate not
 * expired (nor not yet valid), the cipher list and min version accepted by
 * OpenSSL. Appends each problem as "FILE:LINE: message" (FILE = cfg->path,
 * LINE = l->line) to errs. Returns 0 when all is well, -1 otherwise.
 */
int tls_check_listen(const struct config *cfg, const struct config_listen *l, struct config_errors *errs);

/*
 * Builds the server side for listener l: one SSL_CTX per certificate, SNI
 * callback choosing by the certificate's DNS names (SAN, else CN; wildcards
 * "*.example.com" match one label), min protocol from l->tls_min_version,
 * ciphers from l->tls_ciphers (TLS 1.2 list) or a sensible default, ALPN
 * "h2" (when l->http2) over "http/1.1" whatever the client's order, session
 * cache and tickets on. Returns NULL with a reason in err.
 */
struct tls_server *tls_server_new(const struct config_listen *l, char *err, size_t errlen);
void tls_server_unref(struct tls_server *t);
/*
 * A new SSL for an accepted connection (server mode), or NULL. The SSL holds
 * its own references to everything it uses and stays valid after the last
 * tls_server_unref(t). Any thread may call this and the ref/unref pair.
 * OpenSSL drops a session from the cache when its SSL is freed without
 * SSL_shutdown(): after a clean end (close, not error or timeout) call
 * SSL_shutdown(ssl) once before freeing so resumption keeps working.
 */
SSL *tls_server_ssl(struct tls_server *t);
/* Whether the handshake of ssl (server side, done) chose ALPN "h2": the
 * connection speaks HTTP/2 from its first byte. Any thread. */
bool tls_alpn_is_h2(const SSL *ssl);

/*
 * Builds an upstream client context from a pool's tls settings: verify peer
 * against ca (or the system store when ca is NULL) when verify is true, and
 * the name it is for (see tls_client_ssl). Returns NULL with a reason in err.
 */
struct tls_client *tls_client_new(const struct config_pool_tls *t, char *err, size_t errlen);
void tls_client_ref(struct tls_client *c);
void tls_client_unref(struct tls_client *c);
/*
 * A new SSL for an upstream connection to peer (client mode), or NULL. SNI
 * is sent only when sni is a host name. With verify, the certificate must
 * also be for a name: sni when set (a DNS name, or an IP literal checked
 * against the IP SANs), else peer's IP address (IP SAN); no name to check
 * (no sni, peer NULL) gives NULL. A rejected certificate fails the
 * handshake and is logged (rate-limited per c) with the server, the
 * expected name and the certificate's subject. The SSL holds references to
 * everything it uses and stays valid after the last tls_client_unref(c).
 * Any thread.
 */
struct addr;
SSL *tls_client_ssl(struct tls_client *c, const struct addr *peer);

/*
 * tls_client_ssl for a server written by name: without sni, host (the DNS
 * name, no port) is sent as SNI and is the name the certificate must be
 * for. host NULL: as tls_client_ssl.
 */
SSL *tls_client_ssl_host(struct tls_client *c, const struct addr *peer, const char *host);

/*
 * After a failed handshake of an SSL from tls_client_ssl: "certificate
 * rejected: REASON (expected name NAME)" in buf, or NULL when the
 * certificate was not what failed. For health and smoke reports.
 */
const char *tls_client_verify_failure(SSL *ssl, char *buf, size_t len);

/* Oldest queued OpenSSL error of this thread as text (for logs), in a
 * thread-local buffer valid until the next call; clears the queue. */
const char *tls_error_string(void);

#endif
