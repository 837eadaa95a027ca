#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "addr.h"
#include "config.h"
#include "tls.h"

/*
 * The certificates come from tests/tls/gen-certs.sh, run once into a
 * temporary directory before the suite; handshakes run in memory over BIO
 * pairs, so no socket or event loop is involved.
 */

#define MAXCERTS 4

/* A listener as config.c would build it, with paths into certdir. */
struct lsn {
	struct config_listen l;
	struct config_tls_cert certs[MAXCERTS];
	char paths[2 * MAXCERTS][PATH_MAX];
};

static char certdir[] = "/tmp/check_tls.XXXXXX";
/* The server address upstream SSLs are made for: its IP is the name
 * checked when there is no sni. Set by main(). */
static struct addr loopback;
static char cfgpath[] = "/etc/cutover/cutover.conf";
static const struct config cfg = {.path = cfgpath};

static void lsn_init(struct lsn *s, const char *min_version, const char *ciphers);
static void lsn_add(struct lsn *s, const char *cert, const char *key);
static void cpath(char *buf, size_t len, const char *name);
static void write_file(const char *name, const char *text, mode_t mode);
static void expect_one(const struct lsn *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static struct tls_server *server_new(const struct lsn *s);
static struct tls_client *client_new(bool verify, const char *ca, const char *sni);
static int handshake(SSL *cl, SSL *sv, char *who);
static bool want_more(SSL *ssl, int rc);
static X509 *load_cert(const char *name);
static void assert_peer(SSL *cl, const char *name);

static void
lsn_init(struct lsn *s, const char *min_version, const char *ciphers)
{
	char err[128];

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(addr_parse("0.0.0.0:8443", &s->l.addr, err,
	    sizeof(err)), 0);
	s->l.line = 7;
	s->l.certs = s->certs;
	/* Casts: config strings are not const, these are never written. */
	s->l.tls_min_version = (char *)(uintptr_t)min_version;
	s->l.tls_ciphers = (char *)(uintptr_t)ciphers;
}

/* Names without a '/' are files in certdir. */
static void
lsn_add(struct lsn *s, const char *cert, const char *key)
{
	size_t i = s->l.ncerts++;

	ck_assert_uint_lt(i, MAXCERTS);
	cpath(s->paths[2 * i], sizeof(s->paths[0]), cert);
	cpath(s->paths[2 * i + 1], sizeof(s->paths[0]), key);
	s->certs[i].cert = s->paths[2 * i];
	s->certs[i].key = s->paths[2 * i + 1];
}

static void
cpath(char *buf, size_t len, const char *name)
{
	if (strchr(name, '/') != NULL)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%s/%s", certdir, name);
}

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char p[PATH_MAX];
	FILE *fp;

	cpath(p, sizeof(p), name);
	fp = fopen(p, "w");
	ck_assert_msg(fp != NULL, "%s: %s", p, strerror(errno));
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(p, mode), 0);
}

/* tls_check_listen fails with exactly one message that starts with the
 * listener's "FILE:LINE: listen ADDR: " and then fmt. */
static void
expect_one(const struct lsn *s, const char *fmt, ...)
{
	struct config_errors errs = {NULL, 0};
	char want[2048], tail[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	snprintf(want, sizeof(want), "%s:7: listen 0.0.0.0:8443: %s", cfgpath,
	    tail);
	rc = tls_check_listen(&cfg, &s->l, &errs);
	ck_assert_int_eq(rc, -1);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_msg(strncmp(errs.msgs[0], want, strlen(want)) == 0,
	    "got  \"%s\"\nwant \"%s...\"", errs.msgs[0], want);
	config_errors_free(&errs);
}

static struct tls_server *
server_new(const struct lsn *s)
{
	char err[1024] = "";
	struct tls_server *t = tls_server_new(&s->l, err, sizeof(err));

	ck_assert_msg(t != NULL, "tls_server_new: %s", err);
	return t;
}

static struct tls_client *
client_new(bool verify, const char *ca, const char *sni)
{
	struct config_pool_tls pt = {.enabled = true, .verify = verify};
	char err[1024] = "", cap[PATH_MAX];
	struct tls_client *c;

	if (ca != NULL) {
		cpath(cap, sizeof(cap), ca);
		pt.ca = cap;
	}
	pt.sni = (char *)(uintptr_t)sni;
	c = tls_client_new(&pt, err, sizeof(err));
	ck_assert_msg(c != NULL, "tls_client_new: %s", err);
	return c;
}

/* Drives both ends until both finish or one fails; who is set to 'c' or 's'
 * for the side that failed. Returns 0 or -1. */
static int
handshake(SSL *cl, SSL *sv, char *who)
{
	BIO *bc, *bs;
	int i, rc = 0, rs = 0;

	ck_assert_int_eq(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(cl, bc, bc);
	SSL_set_bio(sv, bs, bs);
	*who = '-';
	for (i = 0; i < 64; i++) {
		if (rc != 1 && (rc = SSL_do_handshake(cl)) != 1 && !want_more(cl, rc)) {
			*who = 'c';
			return -1;
		}
		if (rs != 1 && (rs = SSL_do_handshake(sv)) != 1 && !want_more(sv, rs)) {
			*who = 's';
			return -1;
		}
		if (rc == 1 && rs == 1)
			return 0;
	}
	return -1;
}

static bool
want_more(SSL *ssl, int rc)
{
	int e = SSL_get_error(ssl, rc);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static X509 *
load_cert(const char *name)
{
	char p[PATH_MAX];
	X509 *x;
	FILE *fp;

	cpath(p, sizeof(p), name);
	fp = fopen(p, "r");
	ck_assert_msg(fp != NULL, "%s: %s", p, strerror(errno));
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	ck_assert_ptr_nonnull(x);
	return x;
}

/* The client was shown the (leaf) certificate in file name. */
static void
assert_peer(SSL *cl, const char *name)
{
	X509 *want = load_cert(name);
	X509 *got = SSL_get1_peer_certificate(cl);

	ck_assert_ptr_nonnull(got);
	ck_assert_msg(X509_cmp(got, want) == 0, "peer certificate is not %s",
	    name);
	X509_free(got);
	X509_free(want);
}

/* ---- tls_check_listen ---------------------------------------------------- */

START_TEST(test_check_good)
{
	struct config_errors errs = {NULL, 0};
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "a.key");
	lsn_add(&s, "b.pem", "b.key");
	lsn_add(&s, "a-chain.pem", "a.key");
	lsn_add(&s, "up.pem", "up.key");
	ck_assert_int_eq(tls_check_listen(&cfg, &s.l, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
	lsn_init(&s, "TLSv1.3", "ECDHE+AESGCM");
	lsn_add(&s, "cn.pem", "cn.key");
	ck_assert_int_eq(tls_check_listen(&cfg, &s.l, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
}
END_TEST

START_TEST(test_check_plain)
{
	struct config_errors errs = {NULL, 0};
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	ck_assert_int_eq(tls_check_listen(&cfg, &s.l, &errs), 0);
	ck_assert_uint_eq(errs.n, 0);
}
END_TEST

START_TEST(test_check_missing_cert)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "nope.pem", "a.key");
	expect_one(&s, "certificate %s/nope.pem: cannot read: No such file or "
	    "directory", certdir);
}
END_TEST

START_TEST(test_check_missing_key)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "nope.key");
	expect_one(&s, "key %s/nope.key: cannot read: No such file or "
	    "directory", certdir);
}
END_TEST

START_TEST(test_check_directory)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, certdir, "a.key");
	expect_one(&s, "certificate %s: cannot read: Is a directory", certdir);
}
END_TEST

/*
 * A mode 000 file: root reads it anyway, so as root the check runs in a
 * child that has become nobody (certdir is 0755 for this).
 */
START_TEST(test_check_unreadable)
{
	struct config_errors errs = {NULL, 0};
	char want[1024], got[1024] = "";
	struct lsn s;
	int fds[2], status;
	ssize_t n;
	pid_t pid;

	write_file("noread.key", "-----BEGIN PRIVATE KEY-----\n", 0);
	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "noread.key");
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(fds[0]);
		if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
			_exit(2);
		if (tls_check_listen(&cfg, &s.l, &errs) != -1 || errs.n != 1)
			_exit(3);
		if (write(fds[1], errs.msgs[0], strlen(errs.msgs[0])) < 0)
			_exit(4);
		_exit(0);
	}
	close(fds[1]);
	n = read(fds[0], got, sizeof(got) - 1);
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child status %d", status);
	ck_assert_int_gt(n, 0);
	snprintf(want, sizeof(want), "%s:7: listen 0.0.0.0:8443: key "
	    "%s/noread.key: cannot read: Permission denied", cfgpath, certdir);
	ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_check_garbage_cert)
{
	struct lsn s;

	write_file("garbage.pem", "this is not PEM\n", 0644);
	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "garbage.pem", "a.key");
	expect_one(&s, "certificate %s/garbage.pem: not a PEM certificate (",
	    certdir);
}
END_TEST

START_TEST(test_check_garbage_key)
{
	struct lsn s;

	write_file("garbage.key", "this is not PEM either\n", 0600);
	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "garbage.key");
	expect_one(&s, "key %s/garbage.key: not a PEM private key (", certdir);
}
END_TEST

START_TEST(test_check_key_is_cert)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "a.pem");
	expect_one(&s, "key %s/a.pem: not a PEM private key (", certdir);
}
END_TEST

/* Both a key of another type (EC cert, RSA key) and one of the same type. */
START_TEST(test_check_mismatch)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "b.key");
	expect_one(&s, "key %s/b.key does not match certificate %s/a.pem",
	    certdir, certdir);
	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "mismatch.pem", "b.key");
	expect_one(&s, "key %s/b.key does not match certificate %s/mismatch.pem",
	    certdir, certdir);
}
END_TEST

START_TEST(test_check_expired)
{
	struct lsn s;
	char want[1024];

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "expired.pem", "expired.key");
	snprintf(want, sizeof(want), "certificate %s/expired.pem: expired on "
	    "2024-01-01 00:00:00 UTC", certdir);
	expect_one(&s, "%s", want);
}
END_TEST

START_TEST(test_check_not_yet_valid)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "notyet.pem", "notyet.key");
	expect_one(&s, "certificate %s/notyet.pem: not valid before "
	    "2090-01-01 00:00:00 UTC", certdir);
}
END_TEST

START_TEST(test_check_bad_ciphers)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.2", "NOPE:ALSO-NOPE");
	lsn_add(&s, "a.pem", "a.key");
	expect_one(&s, "ciphers \"NOPE:ALSO-NOPE\": OpenSSL accepts none of them");
}
END_TEST

START_TEST(test_check_bad_min_version)
{
	struct lsn s;

	lsn_init(&s, "TLSv1.1", NULL);
	lsn_add(&s, "a.pem", "a.key");
	expect_one(&s, "min_version \"TLSv1.1\": must be \"TLSv1.2\" or "
	    "\"TLSv1.3\"");
}
END_TEST

/* Every problem is reported, after whatever errs already held. */
START_TEST(test_check_all_errors)
{
	struct config_errors errs = {NULL, 0};
	struct lsn s;

	errs.msgs = malloc(sizeof(*errs.msgs));
	ck_assert_ptr_nonnull(errs.msgs);
	errs.msgs[0] = strdup("earlier");
	errs.n = 1;
	lsn_init(&s, "TLSv1.2", "NOPE");
	lsn_add(&s, "a.pem", "a.key");
	lsn_add(&s, "nope.pem", "b.key");
	lsn_add(&s, "expired.pem", "expired.key");
	ck_assert_int_eq(tls_check_listen(&cfg, &s.l, &errs), -1);
	ck_assert_uint_eq(errs.n, 4);
	ck_assert_str_eq(errs.msgs[0], "earlier");
	ck_assert_ptr_nonnull(strstr(errs.msgs[1], ": ciphers \"NOPE\""));
	ck_assert_ptr_nonnull(strstr(errs.msgs[2], "/nope.pem: cannot read"));
	ck_assert_ptr_nonnull(strstr(errs.msgs[3], "/expired.pem: expired on"));
	config_errors_free(&errs);
}
END_TEST

/* tls_server_new refuses what the check refuses, naming the listener. */
START_TEST(test_server_new_refuses)
{
	char err[1024], want[1024];
	struct lsn s;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "a.key");
	lsn_add(&s, "expired.pem", "expired.key");
	ck_assert_ptr_null(tls_server_new(&s.l, err, sizeof(err)));
	snprintf(want, sizeof(want), "listen 0.0.0.0:8443: certificate "
	    "%s/expired.pem: expired on 2024-01-01 00:00:00 UTC", certdir);
	ck_assert_str_eq(err, want);
	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "b.pem", "a.key");
	ck_assert_ptr_null(tls_server_new(&s.l, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "does not match certificate"));
	lsn_init(&s, "TLSv1.2", NULL);
	ck_assert_ptr_null(tls_server_new(&s.l, err, sizeof(err)));
}
END_TEST

/* ---- server: SNI, ALPN, versions ----------------------------------------- */

struct sni_case {
	const char *sni; /* NULL: client sends none */
	const char *cert;
};

/* Listener order b, a, cn: b is the default. */
static const struct sni_case sni_cases[] = {
	{"a.test", "a.pem"},
	{"A.Test", "a.pem"},
	{"b.test", "b.pem"},
	{"x.wild.test", "a.pem"},
	{"X.WILD.TEST", "a.pem"},
	{"y.x.wild.test", "b.pem"}, /* a wildcard covers one label */
	{"wild.test", "b.pem"},
	{"cn.test", "cn.pem"},    /* no SAN: CN */
	{"nope.test", "b.pem"},
	{NULL, "b.pem"},
};

START_TEST(test_sni)
{
	const struct sni_case *c = &sni_cases[_i];
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "b.pem", "b.key");
	lsn_add(&s, "a.pem", "a.key");
	lsn_add(&s, "cn.pem", "cn.key");
	srv = server_new(&s);
	cli = client_new(false, NULL, c->sni);
	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_ptr_nonnull(cl);
	ck_assert_ptr_nonnull(sv);
	ck_assert_msg(handshake(cl, sv, &who) == 0, "SNI %s: handshake failed "
	    "(%c): %s", c->sni != NULL ? c->sni : "(none)", who,
	    tls_error_string());
	assert_peer(cl, c->cert);
	SSL_free(cl);
	SSL_free(sv);
	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

START_TEST(test_alpn)
{
	const unsigned char *p;
	unsigned int len;
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "a.pem", "a.key");
	srv = server_new(&s);
	cli = client_new(true, "ca.pem", "a.test");

	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	SSL_get0_alpn_selected(cl, &p, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(memcmp(p, "http/1.1", 8), 0);
	SSL_get0_alpn_selected(sv, &p, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(memcmp(p, "http/1.1", 8), 0);
	SSL_free(cl);
	SSL_free(sv);

	/* Offered among others. */
	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_alpn_protos(cl,
	    (const unsigned char *)"\x02h2\x08http/1.1\x08http/1.0", 21), 0);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	SSL_get0_alpn_selected(cl, &p, &len);
	ck_assert_uint_eq(len, 8);
	ck_assert_int_eq(memcmp(p, "http/1.1", 8), 0);
	ck_assert(!tls_alpn_is_h2(sv)); /* http2 is off on s */
	SSL_free(cl);
	SSL_free(sv);

	/* Only something else: the handshake goes on without ALPN. */
	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_alpn_protos(cl,
	    (const unsigned char *)"\x02h2", 3), 0);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	SSL_get0_alpn_selected(cl, &p, &len);
	ck_assert_uint_eq(len, 0);
	SSL_free(cl);
	SSL_free(sv);

	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

/* With http2 the server prefers "h2" whatever the client's order, on
 * every certificate's context; http/1.1 stays for clients without it. */
struct alpn_case {
	const char *sni;
	const char *offer; /* wire format */
	unsigned offerlen;
	const char *want;  /* "" when none */
};

static const struct alpn_case alpn_h2_cases[] = {
	{"a.test", "\x02h2\x08http/1.1", 12, "h2"},
	{"a.test", "\x08http/1.1\x02h2", 12, "h2"},
	{"b.test", "\x08http/1.1\x02h2", 12, "h2"}, /* after the SNI switch */
	{"a.test", "\x02h2", 3, "h2"},
	{"a.test", "\x08http/1.1", 9, "http/1.1"},
	{"b.test", "\x08http/1.1\x08http/1.0", 18, "http/1.1"},
	{"a.test", "\x08http/1.0", 9, ""},
};

START_TEST(test_alpn_h2)
{
	const struct alpn_case *c = &alpn_h2_cases[_i];
	const unsigned char *p;
	unsigned int len;
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.2", NULL);
	s.l.http2 = true;
	lsn_add(&s, "a.pem", "a.key");
	lsn_add(&s, "b.pem", "b.key");
	srv = server_new(&s);
	cli = client_new(true, "ca.pem", c->sni);
	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_alpn_protos(cl, (const unsigned char *)c->offer,
	    c->offerlen), 0);
	ck_assert_msg(handshake(cl, sv, &who) == 0, "handshake failed (%c): %s",
	    who, tls_error_string());
	assert_peer(cl, strcmp(c->sni, "b.test") == 0 ? "b.pem" : "a.pem");
	SSL_get0_alpn_selected(cl, &p, &len);
	ck_assert_uint_eq(len, strlen(c->want));
	if (len > 0) /* p is NULL when nothing was selected */
		ck_assert_int_eq(memcmp(p, c->want, len), 0);
	ck_assert(tls_alpn_is_h2(sv) == (strcmp(c->want, "h2") == 0));
	SSL_free(cl);
	SSL_free(sv);
	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

START_TEST(test_min_version)
{
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.3", NULL);
	lsn_add(&s, "a.pem", "a.key");
	srv = server_new(&s);
	cli = client_new(true, "ca.pem", "a.test");

	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_max_proto_version(cl, TLS1_2_VERSION), 1);
	ck_assert_int_eq(handshake(cl, sv, &who), -1);
	ck_assert_int_eq(who, 's');
	ck_assert_int_eq(ERR_GET_REASON(ERR_peek_last_error()),
	    SSL_R_UNSUPPORTED_PROTOCOL);
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);

	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	ck_assert_int_eq(SSL_version(sv), TLS1_3_VERSION);
	SSL_free(cl);
	SSL_free(sv);

	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

/* The default TLS 1.2 list has forward secrecy only. */
START_TEST(test_default_ciphers)
{
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "b.pem", "b.key");
	srv = server_new(&s);
	cli = client_new(false, NULL, "b.test");

	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_max_proto_version(cl, TLS1_2_VERSION), 1);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	ck_assert_int_eq(SSL_version(sv), TLS1_2_VERSION);
	ck_assert_msg(strncmp(SSL_get_cipher_name(sv), "ECDHE-RSA-", 10) == 0,
	    "cipher %s", SSL_get_cipher_name(sv));
	SSL_free(cl);
	SSL_free(sv);

	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(SSL_set_max_proto_version(cl, TLS1_2_VERSION), 1);
	ck_assert_int_eq(SSL_set_cipher_list(cl, "AES128-SHA:AES256-GCM-SHA384"), 1);
	ck_assert_int_eq(handshake(cl, sv, &who), -1);
	ck_assert_int_eq(who, 's');
	ck_assert_int_eq(ERR_GET_REASON(ERR_peek_last_error()),
	    SSL_R_NO_SHARED_CIPHER);
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);

	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

/* An SSL keeps what it needs: the server may be released mid-handshake
 * (a reload) and SNI still switches certificates. */
START_TEST(test_ssl_outlives_server)
{
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "b.pem", "b.key");
	lsn_add(&s, "a.pem", "a.key");
	srv = server_new(&s);
	cli = client_new(true, "ca.pem", "x.wild.test");
	cl = tls_client_ssl(cli, &loopback);
	sv = tls_server_ssl(srv);
	tls_server_unref(srv);
	tls_client_unref(cli);
	ck_assert_int_eq(handshake(cl, sv, &who), 0);
	assert_peer(cl, "a.pem");
	SSL_free(cl);
	SSL_free(sv);
}
END_TEST

/* ---- session resumption --------------------------------------------------- */

enum resume_mode { RESUME_TLS13, RESUME_TLS12_TICKET, RESUME_TLS12_ID };

/* Resumes on a certificate chosen by SNI (not the default), which needs the
 * session id context to survive SSL_set_SSL_CTX. */
START_TEST(test_resume)
{
	enum resume_mode mode = (enum resume_mode)_i;
	struct tls_server *srv;
	struct tls_client *cli;
	SSL_SESSION *sess;
	struct lsn s;
	SSL *cl, *sv;
	char who, byte;
	int round;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, "b.pem", "b.key");
	lsn_add(&s, "a.pem", "a.key");
	srv = server_new(&s);
	cli = client_new(true, "ca.pem", "a.test");
	sess = NULL;
	for (round = 0; round < 2; round++) {
		cl = tls_client_ssl(cli, &loopback);
		sv = tls_server_ssl(srv);
		if (mode != RESUME_TLS13)
			ck_assert_int_eq(SSL_set_max_proto_version(cl,
			    TLS1_2_VERSION), 1);
		if (mode == RESUME_TLS12_ID)
			SSL_set_options(cl, SSL_OP_NO_TICKET);
		if (sess != NULL) {
			ck_assert_int_eq(SSL_set_session(cl, sess), 1);
			SSL_SESSION_free(sess);
			sess = NULL;
		}
		ck_assert_int_eq(handshake(cl, sv, &who), 0);
		ck_assert_int_eq(SSL_session_reused(cl), round);
		ck_assert_int_eq(SSL_session_reused(sv), round);
		assert_peer(cl, "a.pem");
		/* TLS 1.3 tickets arrive after the handshake: read them. */
		ck_assert_int_eq(SSL_read(cl, &byte, 1), -1);
		ck_assert_int_eq(SSL_get_error(cl, -1), SSL_ERROR_WANT_READ);
		sess = SSL_get1_session(cl);
		ck_assert_ptr_nonnull(sess);
		ck_assert_int_eq(SSL_SESSION_is_resumable(sess), 1);
		/* Freed without a shutdown, OpenSSL would drop the session
		 * from both ends' caches as possibly compromised. */
		ck_assert_int_ge(SSL_shutdown(cl), 0);
		ck_assert_int_ge(SSL_shutdown(sv), 0);
		SSL_free(cl);
		SSL_free(sv);
	}
	SSL_SESSION_free(sess);
	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

/* ---- client verification ------------------------------------------------- */

struct verify_case {
	const char *cert, *key; /* the server's */
	bool verify;
	const char *ca;
	const char *sni;
	long result; /* X509_V_OK: handshake succeeds */
	const char *peer; /* the server's address; NULL: 127.0.0.1:443 */
};

static const struct verify_case verify_cases[] = {
	{"a.pem", "a.key", true, "ca.pem", "a.test", X509_V_OK, NULL},
	{"a.pem", "a.key", true, "ca.pem", "x.wild.test", X509_V_OK, NULL},
	/* No sni: the certificate must be for the server's IP (issue 9). */
	{"a.pem", "a.key", true, "ca.pem", NULL, X509_V_ERR_IP_ADDRESS_MISMATCH, NULL},
	{"evil.pem", "evil.key", true, "ca.pem", NULL,
	    X509_V_ERR_IP_ADDRESS_MISMATCH, NULL},
	{"up.pem", "up.key", true, "ca.pem", NULL, X509_V_OK, NULL},
	{"up.pem", "up.key", true, "ca.pem", NULL, X509_V_ERR_IP_ADDRESS_MISMATCH,
	    "127.0.0.2:443"},
	{"evil.pem", "evil.key", true, "ca.pem", "up.test",
	    X509_V_ERR_HOSTNAME_MISMATCH, NULL},
	{"evil.pem", "evil.key", true, "ca.pem", "evil.example", X509_V_OK, NULL},
	/* sni wins over the address. */
	{"up.pem", "up.key", true, "ca.pem", "up.test", X509_V_OK, "10.9.9.9:443"},
	{"evil.pem", "evil.key", false, "ca.pem", NULL, X509_V_OK, NULL},
	{"a-chain.pem", "a.key", true, "ca.pem", "a.test", X509_V_OK, NULL},
	{"a.pem", "a.key", true, "ca2.pem", "a.test",
	    X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, NULL},
	{"a.pem", "a.key", true, "ca.pem", "b.test", X509_V_ERR_HOSTNAME_MISMATCH, NULL},
	{"a.pem", "a.key", true, "ca.pem", "wild.test",
	    X509_V_ERR_HOSTNAME_MISMATCH, NULL},
	{"up.pem", "up.key", true, "ca.pem", "127.0.0.1", X509_V_OK, NULL},
	{"up.pem", "up.key", true, "ca.pem", "up.test", X509_V_OK, NULL},
	{"up.pem", "up.key", true, "ca.pem", "127.0.0.2",
	    X509_V_ERR_IP_ADDRESS_MISMATCH, NULL},
	{"a.pem", "a.key", true, "ca.pem", "127.0.0.1",
	    X509_V_ERR_IP_ADDRESS_MISMATCH, NULL},
	{"expired.pem", "expired.key", true, "ca.pem", "a.test",
	    X509_V_ERR_CERT_HAS_EXPIRED, NULL},
	{"a.pem", "a.key", false, "ca2.pem", "b.test", X509_V_OK, NULL},
};

START_TEST(test_client_verify)
{
	const struct verify_case *c = &verify_cases[_i];
	struct tls_server *srv;
	struct tls_client *cli;
	struct lsn s;
	SSL *cl, *sv;
	char who;
	int rc;

	lsn_init(&s, "TLSv1.2", NULL);
	lsn_add(&s, c->cert, c->key);
	if (strcmp(c->cert, "expired.pem") == 0) {
		/* tls_server_new refuses it; a peer that is not us may not. */
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

		ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(ctx,
		    s.certs[0].cert), 1);
		ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, s.certs[0].key,
		    SSL_FILETYPE_PEM), 1);
		srv = NULL;
		sv = SSL_new(ctx);
		SSL_set_accept_state(sv);
		SSL_CTX_free(ctx);
	} else {
		srv = server_new(&s);
		sv = tls_server_ssl(srv);
	}
	cli = client_new(c->verify, c->ca, c->sni);
	if (c->peer != NULL) {
		struct addr peer;
		char err[128];

		ck_assert_int_eq(addr_parse(c->peer, &peer, err, sizeof(err)), 0);
		cl = tls_client_ssl(cli, &peer);
	} else {
		cl = tls_client_ssl(cli, &loopback);
	}
	ck_assert_ptr_nonnull(cl);
	rc = handshake(cl, sv, &who);
	if (c->result == X509_V_OK) {
		ck_assert_msg(rc == 0, "handshake failed (%c): %s", who,
		    tls_error_string());
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_int_eq(who, 'c');
	}
	ck_assert_msg(SSL_get_verify_result(cl) == c->result || !c->verify,
	    "verify result %ld (%s), want %ld", SSL_get_verify_result(cl),
	    X509_verify_cert_error_string(SSL_get_verify_result(cl)), c->result);
	/* What health checks and smoke tests report. */
	{
		char why[256];
		const char *w = tls_client_verify_failure(cl, why, sizeof(why));

		if (c->result == X509_V_OK || !c->verify) {
			ck_assert_ptr_null(w);
		} else {
			char want[256];

			snprintf(want, sizeof(want), "certificate rejected: %s "
			    "(expected name %s)", X509_verify_cert_error_string(
			    c->result), c->sni != NULL ? c->sni : c->peer != NULL ?
			    "127.0.0.2" : "127.0.0.1");
			ck_assert_ptr_nonnull(w);
			ck_assert_str_eq(w, want);
		}
	}
	/* SNI goes out for names only, never for an IP literal. */
	if (rc == 0) {
		const char *name = SSL_get_servername(sv, TLSEXT_NAMETYPE_host_name);

		if (c->sni == NULL || strcmp(c->sni, "127.0.0.1") == 0)
			ck_assert_ptr_null(name);
		else
			ck_assert_str_eq(name, c->sni);
	}
	ERR_clear_error();
	SSL_free(cl);
	SSL_free(sv);
	tls_client_unref(cli);
	tls_server_unref(srv);
}
END_TEST

START_TEST(test_client_bad_ca)
{
	struct config_pool_tls pt = {.enabled = true, .verify = true};
	char err[1024], ca[] = "/nonexistent/ca.pem";
	struct tls_client *c;

	pt.ca = ca;
	c = tls_client_new(&pt, err, sizeof(err));
	ck_assert_ptr_null(c);
	ck_assert_msg(strncmp(err, "CA /nonexistent/ca.pem: ", 24) == 0, "%s", err);
	/* Without verification the CA is not read. */
	pt.verify = false;
	c = tls_client_new(&pt, err, sizeof(err));
	ck_assert_ptr_nonnull(c);
	tls_client_ref(c);
	tls_client_unref(c);
	tls_client_unref(c);
	tls_client_unref(NULL);
	tls_server_unref(NULL);
}
END_TEST

/* verify with nothing to check the certificate against: no SSL at all,
 * rather than one that takes any certificate of the CA. */
START_TEST(test_client_no_name_refused)
{
	struct tls_client *cli = client_new(true, "ca.pem", NULL);
	SSL *cl;

	ck_assert_ptr_null(tls_client_ssl(cli, NULL));
	ERR_clear_error();
	cl = tls_client_ssl(cli, &loopback);
	ck_assert_ptr_nonnull(cl);
	/* The SSL keeps the context alive past the last unref. */
	tls_client_unref(cli);
	ck_assert_ptr_null(tls_client_verify_failure(cl, NULL, 0));
	SSL_free(cl);
	cli = client_new(false, NULL, NULL);
	cl = tls_client_ssl(cli, NULL);
	ck_assert_ptr_nonnull(cl);
	SSL_free(cl);
	tls_client_unref(cli);
}
END_TEST

START_TEST(test_error_string)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *e;

	ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(ctx, "/nonexistent",
	    SSL_FILETYPE_PEM), 0);
	e = tls_error_string();
	ck_assert_msg(strncmp(e, "error:", 6) == 0, "%s", e);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	ck_assert_str_eq(tls_error_string(), "no OpenSSL error queued");
	SSL_CTX_free(ctx);
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("check");
	TCase *ts = tcase_create("server");
	TCase *tv = tcase_create("client");

	tcase_add_test(tc, test_check_good);
	tcase_add_test(tc, test_check_plain);
	tcase_add_test(tc, test_check_missing_cert);
	tcase_add_test(tc, test_check_missing_key);
	tcase_add_test(tc, test_check_directory);
	tcase_add_test(tc, test_check_unreadable);
	tcase_add_test(tc, test_check_garbage_cert);
	tcase_add_test(tc, test_check_garbage_key);
	tcase_add_test(tc, test_check_key_is_cert);
	tcase_add_test(tc, test_check_mismatch);
	tcase_add_test(tc, test_check_expired);
	tcase_add_test(tc, test_check_not_yet_valid);
	tcase_add_test(tc, test_check_bad_ciphers);
	tcase_add_test(tc, test_check_bad_min_version);
	tcase_add_test(tc, test_check_all_errors);
	tcase_add_test(tc, test_server_new_refuses);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(ts, test_sni, 0,
	    (int)(sizeof(sni_cases) / sizeof(sni_cases[0])));
	tcase_add_test(ts, test_alpn);
	tcase_add_loop_test(ts, test_alpn_h2, 0,
	    (int)(sizeof(alpn_h2_cases) / sizeof(alpn_h2_cases[0])));
	tcase_add_test(ts, test_min_version);
	tcase_add_test(ts, test_default_ciphers);
	tcase_add_test(ts, test_ssl_outlives_server);
	tcase_add_loop_test(ts, test_resume, RESUME_TLS13, RESUME_TLS12_ID + 1);
	suite_add_tcase(s, ts);

	tcase_add_loop_test(tv, test_client_verify, 0,
	    (int)(sizeof(verify_cases) / sizeof(verify_cases[0])));
	tcase_add_test(tv, test_client_bad_ca);
	tcase_add_test(tv, test_client_no_name_refused);
	tcase_add_test(tv, test_error_string);
	suite_add_tcase(s, tv);
	return s;
}

int
main(void)
{
	char cmd[PATH_MAX + 256];
	SRunner *sr;
	int failed;

	if (mkdtemp(certdir) == NULL) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	/* Readable by nobody for test_check_unreadable; nothing secret. */
	if (chmod(certdir, 0755) != 0) {
		perror(certdir);
		return EXIT_FAILURE;
	}
	snprintf(cmd, sizeof(cmd), "sh '%s/tls/gen-certs.sh' '%s' >/dev/null",
	    TEST_SRCDIR, certdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "check_tls: %s failed\n", cmd);
		failed = 1;
		goto out;
	}
	if (addr_parse("127.0.0.1:443", &loopback, NULL, 0) != 0)
		return EXIT_FAILURE;
	sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
out:
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
	if (system(cmd) != 0)
		fprintf(stderr, "check_tls: %s failed\n", cmd);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
