#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "tls.h"

/*
 * Server side. Each certificate gets its own SSL_CTX, all configured alike;
 * an SSL starts on the first (default) one and the SNI callback moves it to
 * the one whose names match. The name table lives in the default SSL_CTX's
 * ex_data, owned by it, so that an SSL keeps everything it may still need
 * (the table, the other contexts) alive after the last tls_server_unref: a
 * reload may drop the old tls_server while handshakes are still running.
 */

/* TLS 1.2 ciphers when the configuration names none: forward secrecy and
 * AEAD only. TLS 1.3 suites stay at OpenSSL's defaults. */
#define TLS_DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5:!DSS"

/* Same on every context of a listener so that SSL_set_SSL_CTX keeps the
 * session id context and resumption works after an SNI switch. */
#define TLS_SID_CTX "cutover"

static const unsigned char alpn_http11[] = "\x08http/1.1";
#define ALPN_HTTP11_LEN (sizeof(alpn_http11) - 1)
static const unsigned char alpn_h2[] = "\x02h2";
#define ALPN_H2_LEN (sizeof(alpn_h2) - 1)

struct tls_name {
	char *name; /* lower case; "*.example.com" for a wildcard */
	bool wildcard;
};

struct tls_cert {
	SSL_CTX *ctx; /* certs[0].ctx is the default and not owned here */
	struct tls_name *names;
	size_t nnames;
};

struct sni_table {
	struct tls_cert *certs;
	size_t ncerts;
};

struct tls_server {
	atomic_uint refs;
	SSL_CTX *ctx; /* the default context; one reference */
};

struct tls_client {
	atomic_uint refs;
	SSL_CTX *ctx;
	char *sni;     /* NULL: no SNI; the server's IP is the name checked */
	bool sni_ip;   /* sni is an IP literal: checked, not sent */
	bool verify;
	/* Rejected certificates are logged at most once per VERIFY_LOG_MS per
	 * pool (health checks would repeat the line every interval), with a
	 * count of the ones left out. Any thread. */
	_Atomic uint64_t verify_logged_ms;
	atomic_uint verify_unlogged;
};

/* What the verify callback of an upstream SSL reports with: held in the
 * SSL's ex_data, freed with it; holds a reference to its tls_client. */
struct tls_peer {
	struct tls_client *c;
	char addr[64];  /* the server, "ip:port" */
	char name[256]; /* the name its certificate must be for */
};

#define VERIFY_LOG_MS 10000

static int min_version_parse(const char *s, int *out);
static int ctx_settings(SSL_CTX *ctx, const struct config_listen *l,
    char *err, size_t errlen);
static int ctx_load(SSL_CTX *ctx, const struct config_tls_cert *c,
    char *err, size_t errlen);
static int file_readable(const char *path, char *err, size_t errlen,
    const char *what);
static int cert_dates(X509 *x, const char *path, int depth, char *err,
    size_t errlen);
static void asn1_time_text(const ASN1_TIME *t, char *buf, size_t len);
static const char *ossl_reason(void);
static void errs_add(struct config_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static SSL_CTX *server_ctx_new(const struct config_listen *l,
    const struct config_tls_cert *c, char *err, size_t errlen);
static int cert_names(SSL_CTX *ctx, struct tls_cert *tc);
static int name_add(struct tls_cert *tc, const char *s, size_t len);
static bool name_match(const struct tls_name *n, const char *host);
static int sni_cb(SSL *ssl, int *ad, void *arg);
static const struct tls_cert *sni_find(const struct sni_table *tab,
    const char *host, bool wildcard);
static int alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg);
static bool alpn_find(const unsigned char *in, unsigned int inlen,
    const unsigned char *proto, const unsigned char **out, unsigned char *outlen);
static void sni_table_free(struct sni_table *tab);
static void sni_table_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
    int idx, long argl, void *argp);
static void sni_index_init(void);

static int verify_cb(int ok, X509_STORE_CTX *xs);
static bool verify_log_allowed(struct tls_client *c, unsigned *unlogged);
static void peer_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad,
    int idx, long argl, void *argp);
static void peer_index_init(void);

static pthread_once_t sni_index_once = PTHREAD_ONCE_INIT;
static int sni_index = -1;
static pthread_once_t peer_index_once = PTHREAD_ONCE_INIT;
static int peer_index = -1;

/* ---- checks -------------------------------------------------------------- */

int
tls_check_listen(const struct config *cfg, const struct config_listen *l,
    struct config_errors *errs)
{
	char err[512];
	SSL_CTX *ctx = NULL;
	size_t i;
	int rc = 0;

	if (l->ncerts == 0)
		return 0;
	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		errs_add(errs, "%s:%d: listen %s: cannot create a TLS context: %s",
		    cfg->path, l->line, l->addr.text, tls_error_string());
		return -1;
	}
	if (ctx_settings(ctx, l, err, sizeof(err)) == -1) {
		errs_add(errs, "%s:%d: listen %s: %s", cfg->path, l->line,
		    l->addr.text, err);
		rc = -1;
	}
	SSL_CTX_free(ctx);
	for (i = 0; i < l->ncerts; i++) {
		ctx = SSL_CTX_new(TLS_server_method());
		if (ctx == NULL || ctx_load(ctx, &l->certs[i], err,
		    sizeof(err)) == -1) {
			if (ctx == NULL)
				snprintf(err, sizeof(err), "cannot create a TLS "
				    "context: %s", tls_error_string());
			errs_add(errs, "%s:%d: listen %s: %s", cfg->path, l->line,
			    l->addr.text, err);
			rc = -1;
		}
		SSL_CTX_free(ctx);
	}
	return rc;
}

static int
min_version_parse(const char *s, int *out)
{
	if (s == NULL || strcmp(s, "TLSv1.2") == 0)
		*out = TLS1_2_VERSION;
	else if (strcmp(s, "TLSv1.3") == 0)
		*out = TLS1_3_VERSION;
	else
		return -1;
	return 0;
}

/* The listener-wide settings: protocol floor and TLS 1.2 cipher list. */
static int
ctx_settings(SSL_CTX *ctx, const struct config_listen *l, char *err,
    size_t errlen)
{
	const char *ciphers = l->tls_ciphers != NULL ? l->tls_ciphers :
	    TLS_DEFAULT_CIPHERS;
	int v;

	if (min_version_parse(l->tls_min_version, &v) == -1) {
		snprintf(err, errlen, "min_version \"%s\": must be \"TLSv1.2\" or "
		    "\"TLSv1.3\"", l->tls_min_version);
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(ctx, v) != 1) {
		snprintf(err, errlen, "min_version \"%s\": %s",
		    l->tls_min_version, tls_error_string());
		goto fail;
	}
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1) {
		snprintf(err, errlen, "ciphers \"%s\": OpenSSL accepts none of "
		    "them (%s)", ciphers, ossl_reason());
		goto fail;
	}
	return 0;
fail:
	ERR_clear_error();
	return -1;
}

/*
 * Loads one certificate chain and key into ctx and checks them: both files
 * readable PEM, the key matching the leaf, every certificate in the file
 * within its validity period. On failure err names the file at fault.
 */
static int
ctx_load(SSL_CTX *ctx, const struct config_tls_cert *c, char *err,
    size_t errlen)
{
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *pkey = NULL;
	X509 *leaf;
	FILE *fp = NULL;
	int i;

	ERR_clear_error();
	if (file_readable(c->cert, err, errlen, "certificate") == -1)
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1) {
		snprintf(err, errlen, "certificate %s: not a PEM certificate (%s)",
		    c->cert, ossl_reason());
		goto fail;
	}
	if (file_readable(c->key, err, errlen, "key") == -1)
		goto fail;
	/* Parsed here rather than by SSL_CTX_use_PrivateKey_file, which
	 * reports a key of the certificate's type that does not match it as
	 * a load error: we want to tell "not a key" from "not its key". */
	if ((fp = fopen(c->key, "r")) == NULL) {
		snprintf(err, errlen, "key %s: cannot read: %s", c->key,
		    strerror(errno));
		goto fail;
	}
	pkey = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	fp = NULL;
	if (pkey == NULL) {
		snprintf(err, errlen, "key %s: not a PEM private key (%s)", c->key,
		    ossl_reason());
		goto fail;
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (leaf == NULL || X509_check_private_key(leaf, pkey) != 1) {
		snprintf(err, errlen, "key %s does not match certificate %s",
		    c->key, c->cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "key %s does not match certificate %s (%s)",
		    c->key, c->cert, ossl_reason());
		goto fail;
	}
	EVP_PKEY_free(pkey);
	pkey = NULL;
	if (cert_dates(leaf, c->cert, 0, err, errlen) == -1)
		goto fail;
	if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1 && chain != NULL)
		for (i = 0; i < sk_X509_num(chain); i++)
			if (cert_dates(sk_X509_value(chain, i), c->cert, i + 1, err,
			    errlen) == -1)
				goto fail;
	return 0;
fail:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return -1;
}

/* Opens and reads a byte, so that a directory or an unreadable file is
 * reported as such rather than as a PEM parse error. */
static int
file_readable(const char *path, char *err, size_t errlen, const char *what)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL)
		goto fail;
	(void)fgetc(fp);
	if (ferror(fp))
		goto fail;
	fclose(fp);
	return 0;
fail:
	snprintf(err, errlen, "%s %s: cannot read: %s", what, path,
	    strerror(errno));
	if (fp != NULL)
		fclose(fp);
	return -1;
}

/* depth 0 is the leaf; others are "chain certificate N" of the file. */
static int
cert_dates(X509 *x, const char *path, int depth, char *err, size_t errlen)
{
	char when[64], which[64] = "";
	const ASN1_TIME *t;

	if (depth > 0)
		snprintf(which, sizeof(which), " chain certificate %d", depth);
	t = X509_get0_notAfter(x);
	if (X509_cmp_current_time(t) != 1) { /* 0: unreadable, as bad */
		asn1_time_text(t, when, sizeof(when));
		snprintf(err, errlen, "certificate %s:%s expired on %s", path,
		    which, when);
		return -1;
	}
	t = X509_get0_notBefore(x);
	if (X509_cmp_current_time(t) != -1) {
		asn1_time_text(t, when, sizeof(when));
		snprintf(err, errlen, "certificate %s:%s not valid before %s", path,
		    which, when);
		return -1;
	}
	return 0;
}

static void
asn1_time_text(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "(unreadable date)");
}

/* The reason of the oldest queued OpenSSL error, without the codes that
 * mean nothing to an operator; clears the queue. */
static const char *
ossl_reason(void)
{
	unsigned long e = ERR_get_error();
	const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return r != NULL ? r : "unknown error";
}

/* Same shape as config.c's own list: one strdup'ed line per problem. Out of
 * memory drops the message; the caller still sees the -1. */
static void
errs_add(struct config_errors *errs, const char *fmt, ...)
{
	char **msgs;
	char *line;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (rc == -1)
		return;
	msgs = realloc(errs->msgs, (errs->n + 1) * sizeof(*msgs));
	if (msgs == NULL) {
		free(line);
		return;
	}
	msgs[errs->n++] = line;
	errs->msgs = msgs;
}

/* ---- server -------------------------------------------------------------- */

struct tls_server *
tls_server_new(const struct config_listen *l, char *err, size_t errlen)
{
	struct tls_server *t = NULL;
	struct sni_table *tab = NULL;
	bool owned = false; /* tab hangs off t->ctx */
	char why[512];
	size_t i;

	if (l->ncerts == 0) {
		snprintf(err, errlen, "listen %s: no certificate", l->addr.text);
		return NULL;
	}
	if (pthread_once(&sni_index_once, sni_index_init) != 0 ||
	    sni_index == -1) {
		snprintf(err, errlen, "listen %s: OpenSSL ex_data: %s",
		    l->addr.text, tls_error_string());
		return NULL;
	}
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (tab = calloc(1, sizeof(*tab))) == NULL ||
	    (tab->certs = calloc(l->ncerts, sizeof(*tab->certs))) == NULL) {
		snprintf(err, errlen, "listen %s: out of memory", l->addr.text);
		goto fail;
	}
	atomic_init(&t->refs, 1);
	for (i = 0; i < l->ncerts; i++) {
		SSL_CTX *ctx = server_ctx_new(l, &l->certs[i], why, sizeof(why));

		if (ctx == NULL) {
			snprintf(err, errlen, "listen %s: %s", l->addr.text, why);
			goto fail;
		}
		tab->certs[i].ctx = ctx;
		tab->ncerts = i + 1;
		if (i == 0) {
			t->ctx = ctx;
			if (SSL_CTX_set_ex_data(ctx, sni_index, tab) != 1) {
				snprintf(err, errlen, "listen %s: OpenSSL ex_data: %s",
				    l->addr.text, tls_error_string());
				goto fail;
			}
			owned = true;
		}
		if (cert_names(ctx, &tab->certs[i]) == -1) {
			snprintf(err, errlen, "listen %s: out of memory",
			    l->addr.text);
			goto fail;
		}
	}
	SSL_CTX_set_tlsext_servername_callback(t->ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(t->ctx, tab);
	return t;
fail:
	if (!owned)
		sni_table_free(tab);
	if (t != NULL)
		SSL_CTX_free(t->ctx); /* frees tab when owned */
	free(t);
	return NULL;
}

void
tls_server_unref(struct tls_server *t)
{
	if (t == NULL)
		return;
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* The SSL holds its own references to the contexts (and through the default
 * one to the name table): it may outlive t. */
SSL *
tls_server_ssl(struct tls_server *t)
{
	SSL *ssl = SSL_new(t->ctx);

	if (ssl != NULL)
		SSL_set_accept_state(ssl);
	return ssl;
}

/* One certificate's context with every listener-wide setting applied. */
static SSL_CTX *
server_ctx_new(const struct config_listen *l, const struct config_tls_cert *c,
    char *err, size_t errlen)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
		    tls_error_string());
		goto fail;
	}
	if (ctx_settings(ctx, l, err, errlen) == -1 ||
	    ctx_load(ctx, c, err, errlen) == -1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	if (SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)TLS_SID_CTX, sizeof(TLS_SID_CTX) - 1) != 1) {
		snprintf(err, errlen, "session id context: %s", tls_error_string());
		goto fail;
	}
	/* The same on every context of the listener: the SNI switch does
	 * not change what ALPN may pick. */
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, (void *)(uintptr_t)l->http2);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The DNS names of the context's certificate: its subjectAltName DNS
 * entries, or the subject CN when there is no DNS SAN (as X509_check_host
 * does). */
static int
cert_names(SSL_CTX *ctx, struct tls_cert *tc)
{
	GENERAL_NAMES *gens = NULL;
	X509 *x = SSL_CTX_get0_certificate(ctx);
	X509_NAME *subj;
	const ASN1_STRING *s;
	int i, n;

	if (x == NULL)
		return 0;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
	for (i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		s = g->d.dNSName;
		if (name_add(tc, (const char *)ASN1_STRING_get0_data(s),
		    (size_t)ASN1_STRING_length(s)) == -1)
			goto fail;
	}
	GENERAL_NAMES_free(gens);
	gens = NULL;
	if (tc->nnames > 0)
		return 0;
	subj = X509_get_subject_name(x);
	i = -1;
	while ((i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0) {
		s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
		if (name_add(tc, (const char *)ASN1_STRING_get0_data(s),
		    (size_t)ASN1_STRING_length(s)) == -1)
			goto fail;
	}
	return 0;
fail:
	GENERAL_NAMES_free(gens);
	return -1;
}

/* Keeps a name as lower case; skips ones that cannot be host names (empty,
 * embedded NUL, a '*' anywhere but a whole first label). */
static int
name_add(struct tls_cert *tc, const char *s, size_t len)
{
	struct tls_name *names;
	char *p;
	size_t i;

	if (len == 0 || memchr(s, '\0', len) != NULL)
		return 0;
	if (memchr(s, '*', len) != NULL &&
	    (len < 3 || s[0] != '*' || s[1] != '.' ||
	    memchr(s + 1, '*', len - 1) != NULL))
		return 0;
	if ((p = strndup(s, len)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (char)(p[i] - 'A' + 'a');
	names = realloc(tc->names, (tc->nnames + 1) * sizeof(*names));
	if (names == NULL) {
		free(p);
		return -1;
	}
	names[tc->nnames].name = p;
	names[tc->nnames].wildcard = p[0] == '*';
	tc->names = names;
	tc->nnames++;
	return 0;
}

/* Exact (case-insensitive), or "*.rest" against "label.rest" where label
 * is one non-empty label. */
static bool
name_match(const struct tls_name *n, const char *host)
{
	const char *dot;

	if (!n->wildcard)
		return strcasecmp(n->name, host) == 0;
	dot = strchr(host, '.');
	return dot != NULL && dot != host && strcasecmp(n->name + 1, dot) == 0;
}

/*
 * Runs once per handshake, in the thread of the connection, with the
 * ClientHello's server name. An exact name anywhere beats a wildcard; no
 * match (or no SNI) stays on the default certificate rather than failing,
 * as nginx and HAProxy do.
 */
static int
sni_cb(SSL *ssl, int *ad, void *arg)
{
	const struct sni_table *tab = arg;
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	const struct tls_cert *tc;

	(void)ad;
	if (host == NULL || host[0] == '\0')
		return SSL_TLSEXT_ERR_OK;
	if ((tc = sni_find(tab, host, false)) == NULL)
		tc = sni_find(tab, host, true);
	if (tc != NULL && tc != &tab->certs[0] &&
	    SSL_set_SSL_CTX(ssl, tc->ctx) == NULL)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	return SSL_TLSEXT_ERR_OK;
}

/* The first certificate with a matching exact (or wildcard) name. */
static const struct tls_cert *
sni_find(const struct sni_table *tab, const char *host, bool wildcard)
{
	size_t i, j;

	for (i = 0; i < tab->ncerts; i++)
		for (j = 0; j < tab->certs[i].nnames; j++)
			if (tab->certs[i].names[j].wildcard == wildcard &&
			    name_match(&tab->certs[i].names[j], host))
				return &tab->certs[i];
	return NULL;
}

/*
 * Picks from the client's ALPN list by our preference, whatever the client's
 * order: "h2" when the listener has http2 (arg non-NULL), else "http/1.1".
 * A client that offers only other protocols (say, "h2" alone where http2 is
 * off) gets no ALPN answer rather than a no_application_protocol alert: it
 * can still speak HTTP/1.1 to us or give up, and we keep serving the
 * clients that send odd lists.
 */
static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	(void)ssl;
	if ((arg != NULL && alpn_find(in, inlen, alpn_h2, out, outlen)) ||
	    alpn_find(in, inlen, alpn_http11, out, outlen))
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK;
}

/* Whether the wire-format list in holds proto (wire format too: length
 * byte, name); *out and *outlen then point at it inside in. A malformed
 * entry ends the search. */
static bool
alpn_find(const unsigned char *in, unsigned int inlen,
    const unsigned char *proto, const unsigned char **out, unsigned char *outlen)
{
	unsigned int i = 0;

	while (i < inlen) {
		unsigned int len = in[i];

		if (len == 0 || len > inlen - i - 1)
			break;
		if (len == proto[0] && memcmp(in + i + 1, proto + 1, len) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)len;
			return true;
		}
		i += len + 1;
	}
	return false;
}

bool
tls_alpn_is_h2(const SSL *ssl)
{
	const unsigned char *p = NULL;
	unsigned int len = 0;

	SSL_get0_alpn_selected(ssl, &p, &len);
	return len == ALPN_H2_LEN - 1 && memcmp(p, alpn_h2 + 1, len) == 0;
}

/* Frees the table and the non-default contexts; certs[0].ctx belongs to
 * whoever owns the table's reference to it (the context itself). */
static void
sni_table_free(struct sni_table *tab)
{
	size_t i, j;

	if (tab == NULL)
		return;
	for (i = 0; i < tab->ncerts; i++) {
		if (i > 0)
			SSL_CTX_free(tab->certs[i].ctx);
		for (j = 0; j < tab->certs[i].nnames; j++)
			free(tab->certs[i].names[j].name);
		free(tab->certs[i].names);
	}
	free(tab->certs);
	free(tab);
}

/* Called by SSL_CTX_free of the default context when its last reference
 * (tls_server's or an SSL's) goes. */
static void
sni_table_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	sni_table_free(ptr);
}

static void
sni_index_init(void)
{
	sni_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL,
	    sni_table_ex_free);
}

/* ---- client -------------------------------------------------------------- */

struct tls_client *
tls_client_new(const struct config_pool_tls *pt, char *err, size_t errlen)
{
	struct tls_client *c;
	unsigned char buf[sizeof(struct in6_addr)];

	ERR_clear_error();
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&c->refs, 1);
	c->verify = pt->verify;
	if (pt->sni != NULL) {
		if ((c->sni = strdup(pt->sni)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		c->sni_ip = inet_pton(AF_INET, pt->sni, buf) == 1 ||
		    inet_pton(AF_INET6, pt->sni, buf) == 1;
	}
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
		    tls_error_string());
		goto fail;
	}
	if (SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(c->ctx, TLS_DEFAULT_CIPHERS) != 1) {
		snprintf(err, errlen, "TLS settings: %s", tls_error_string());
		goto fail;
	}
	SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_COMPRESSION);
	/* Returns 0 on success, unlike its neighbours. */
	if (SSL_CTX_set_alpn_protos(c->ctx, alpn_http11, ALPN_HTTP11_LEN) != 0) {
		snprintf(err, errlen, "ALPN: %s", tls_error_string());
		goto fail;
	}
	if (c->verify) {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
		if (pt->ca != NULL ?
		    SSL_CTX_load_verify_locations(c->ctx, pt->ca, NULL) != 1 :
		    SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
			snprintf(err, errlen, "CA %s: %s", pt->ca != NULL ? pt->ca :
			    "(system default)", ossl_reason());
			goto fail;
		}
	} else {
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	}
	return c;
fail:
	ERR_clear_error();
	SSL_CTX_free(c->ctx);
	free(c->sni);
	free(c);
	return NULL;
}

void
tls_client_ref(struct tls_client *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void
tls_client_unref(struct tls_client *c)
{
	if (c == NULL)
		return;
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	SSL_CTX_free(c->ctx);
	free(c->sni);
	free(c);
}

/*
 * SNI is sent for a host name only (RFC 6066 forbids IP literals). With
 * verify, the certificate must be for sni (a DNS name, or an IP SAN when
 * sni is an IP literal) or, without sni, for the server's own IP address:
 * a chain check alone would take any certificate the CA ever issued. The
 * SSL holds its own references to the context and to c: it may outlive
 * the caller's.
 */
SSL *
tls_client_ssl(struct tls_client *c, const struct addr *peer)
{
	return tls_client_ssl_host(c, peer, NULL);
}

SSL *
tls_client_ssl_host(struct tls_client *c, const struct addr *peer, const char *host)
{
	char ip[INET6_ADDRSTRLEN];
	struct tls_peer *p = NULL;
	const char *name = c->sni != NULL ? c->sni : host;
	bool name_ip = c->sni != NULL ? c->sni_ip : false;
	SSL *ssl;

	if (c->verify && (pthread_once(&peer_index_once, peer_index_init) != 0 ||
	    peer_index == -1))
		return NULL;
	if ((ssl = SSL_new(c->ctx)) == NULL)
		return NULL;
	if (name != NULL && !name_ip) {
		/* OpenSSL's macro casts the const away; do it in one place. */
		union {
			const char *c;
			char *m;
		} sni = {.c = name};

		if (SSL_set_tlsext_host_name(ssl, sni.m) != 1)
			goto fail;
	}
	if (name == NULL && peer != NULL) {
		addr_ip_string((const struct sockaddr *)&peer->ss, ip, sizeof(ip));
		name = ip;
		name_ip = true;
	}
	if (c->verify) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

		if (name == NULL || name[0] == '\0')
			goto fail; /* nothing to check the certificate against */
		X509_VERIFY_PARAM_set_hostflags(param,
		    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (name_ip ?
		    X509_VERIFY_PARAM_set1_ip_asc(param, name) != 1 :
		    SSL_set1_host(ssl, name) != 1)
			goto fail;
		if ((p = calloc(1, sizeof(*p))) == NULL)
			goto fail;
		snprintf(p->addr, sizeof(p->addr), "%s",
		    peer != NULL ? peer->text : "(unknown)");
		snprintf(p->name, sizeof(p->name), "%s", name);
		if (SSL_set_ex_data(ssl, peer_index, p) != 1)
			goto fail;
		tls_client_ref(c);
		p->c = c; /* from here on freed with the SSL */
		p = NULL;
		SSL_set_verify(ssl, SSL_VERIFY_PEER, verify_cb);
	}
	SSL_set_connect_state(ssl);
	return ssl;
fail:
	free(p);
	SSL_free(ssl);
	ERR_clear_error();
	return NULL;
}

/*
 * OpenSSL's verdict on one certificate of the chain: a refusal is logged
 * (naming the server, the name expected and what the certificate is for)
 * and stands. Runs in the thread of the handshake.
 */
static int
verify_cb(int ok, X509_STORE_CTX *xs)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(xs,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	const struct tls_peer *p = ssl != NULL ?
	    SSL_get_ex_data(ssl, peer_index) : NULL;
	X509 *cert = X509_STORE_CTX_get_current_cert(xs);
	char subject[256] = "(none)", more[64] = "";
	unsigned unlogged;

	if (ok || p == NULL || !verify_log_allowed(p->c, &unlogged))
		return ok;
	if (cert != NULL)
		X509_NAME_oneline(X509_get_subject_name(cert), subject,
		    sizeof(subject));
	if (unlogged > 0)
		snprintf(more, sizeof(more), "; %u more rejections not logged",
		    unlogged);
	log_warn("%s: upstream %s: certificate rejected: %s (expected name %s; "
	    "certificate %s at depth %d%s)", __func__, p->addr,
	    X509_verify_cert_error_string(X509_STORE_CTX_get_error(xs)), p->name,
	    subject, X509_STORE_CTX_get_error_depth(xs), more);
	return 0;
}

/* One line per VERIFY_LOG_MS per client context; *unlogged gets the number
 * left out since the last one. */
static bool
verify_log_allowed(struct tls_client *c, unsigned *unlogged)
{
	uint64_t now = clock_mono_ms(), last;

	last = atomic_load_explicit(&c->verify_logged_ms, memory_order_relaxed);
	if ((last != 0 && now - last < VERIFY_LOG_MS) ||
	    !atomic_compare_exchange_strong(&c->verify_logged_ms, &last,
	    now == 0 ? 1 : now)) {
		atomic_fetch_add_explicit(&c->verify_unlogged, 1,
		    memory_order_relaxed);
		return false;
	}
	*unlogged = atomic_exchange(&c->verify_unlogged, 0);
	return true;
}

static void
peer_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct tls_peer *p = ptr;

	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	if (p == NULL)
		return;
	tls_client_unref(p->c);
	free(p);
}

static void
peer_index_init(void)
{
	peer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, peer_ex_free);
}

const char *
tls_client_verify_failure(SSL *ssl, char *buf, size_t len)
{
	const struct tls_peer *p;
	long v;

	/* Without verify OpenSSL still records a result, but nothing failed
	 * for it: only SSLs that verify carry a tls_peer. */
	if (ssl == NULL || peer_index == -1 ||
	    (p = SSL_get_ex_data(ssl, peer_index)) == NULL ||
	    (v = SSL_get_verify_result(ssl)) == X509_V_OK)
		return NULL;
	snprintf(buf, len, "certificate rejected: %s (expected name %s)",
	    X509_verify_cert_error_string(v), p->name);
	return buf;
}

/* ---- errors -------------------------------------------------------------- */

/* The oldest queued error of this thread, then the queue is cleared so the
 * next failure does not report a stale one. */
const char *
tls_error_string(void)
{
	static _Thread_local char buf[256];
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, sizeof(buf), "no OpenSSL error queued");
	else
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return buf;
}
