#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"

static int parse_port(const char *s, unsigned *port);
static void set_err(char *err, size_t errlen, const char *msg);

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", msg);
}

/* Decimal digits only, 1..65535: strtoul would accept " +80". */
static int
parse_port(const char *s, unsigned *port)
{
	unsigned v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > 65535)
			return -1;
	}
	if (v == 0)
		return -1;
	*port = v;
	return 0;
}

int
addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	char ip[INET6_ADDRSTRLEN];
	const char *colon, *port_s;
	size_t hostlen;
	unsigned port;
	struct addr a;
	bool v6 = false;

	memset(&a, 0, sizeof(a));
	if (s == NULL || *s == '\0') {
		set_err(err, errlen, "empty address");
		return -1;
	}
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL) {
			set_err(err, errlen, "missing ']' after IPv6 address");
			return -1;
		}
		if (close[1] != ':') {
			set_err(err, errlen, "missing port (use \"[::1]:8080\")");
			return -1;
		}
		hostlen = (size_t)(close - s - 1);
		memcpy(host, s + 1, hostlen < sizeof(host) ? hostlen : 0);
		port_s = close + 2;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			set_err(err, errlen, "missing port (use \"127.0.0.1:8080\")");
			return -1;
		}
		if (strchr(s, ':') != colon) {
			set_err(err, errlen, "IPv6 addresses need brackets: \"[::1]:8080\"");
			return -1;
		}
		hostlen = (size_t)(colon - s);
		memcpy(host, s, hostlen < sizeof(host) ? hostlen : 0);
		port_s = colon + 1;
	}
	if (hostlen == 0 || hostlen >= sizeof(host)) {
		set_err(err, errlen, "missing or overlong IP address");
		return -1;
	}
	host[hostlen] = '\0';
	if (parse_port(port_s, &port) == -1) {
		set_err(err, errlen, "port must be a number from 1 to 65535");
		return -1;
	}
	if (v6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			set_err(err, errlen, "not a numeric IPv6 address");
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		a.len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a.ss;

		if (strcmp(host, "*") == 0) {
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		} else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			set_err(err, errlen,
			    "not a numeric IPv4 address (host names are not allowed)");
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		a.len = sizeof(*sin);
	}
	addr_ip_string((const struct sockaddr *)&a.ss, ip, sizeof(ip));
	snprintf(a.text, sizeof(a.text), v6 ? "[%s]:%u" : "%s:%u", ip, port);
	*out = a;
	return 0;
}

void
addr_ip_string(const struct sockaddr *sa, char *buf, size_t len)
{
	const void *src;

	if (len == 0)
		return;
	switch (sa->sa_family) {
	case AF_INET:
		src = &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		break;
	case AF_INET6:
		src = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		break;
	default:
		snprintf(buf, len, "?");
		return;
	}
	if (inet_ntop(sa->sa_family, src, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "?");
}

bool
addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa)
{
	const struct sockaddr_storage *net = &c->net;
	unsigned prefix = c->prefix;
	const unsigned char *a, *n;
	unsigned char mapped[4];
	size_t len, full, i;

	if (sa->sa_family == AF_INET6 && net->ss_family == AF_INET) {
		/* A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d. */
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
			return false;
		memcpy(mapped, &s6->sin6_addr.s6_addr[12], 4);
		a = mapped;
		len = 4;
	} else if (sa->sa_family != net->ss_family) {
		return false;
	} else if (sa->sa_family == AF_INET) {
		a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		len = 4;
	} else if (sa->sa_family == AF_INET6) {
		a = (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		len = 16;
	} else {
		return false;
	}
	n = net->ss_family == AF_INET ? (const unsigned char *)&((const struct sockaddr_in *)net)->sin_addr
	                              : (const unsigned char *)&((const struct sockaddr_in6 *)net)->sin6_addr;
	if (prefix > len * 8)
		return false;
	full = prefix / 8;
	for (i = 0; i < full; i++)
		if (a[i] != n[i])
			return false;
	if (prefix % 8 != 0) {
		unsigned char mask = (unsigned char)(0xffu << (8 - prefix % 8));

		if ((a[full] & mask) != (n[full] & mask))
			return false;
	}
	return true;
}

int
addr_cidr_parse(const char *v, struct addr_cidr *out, char *why, size_t whylen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char bytes[16];
	const char *slash = strchr(v, '/');
	unsigned prefix = 0, maxp, i;
	size_t hostlen = slash != NULL ? (size_t)(slash - v) : strlen(v);
	int af;

	if (hostlen == 0 || hostlen >= sizeof(buf)) {
		snprintf(why, whylen, "missing address");
		return -1;
	}
	memcpy(buf, v, hostlen);
	buf[hostlen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, bytes) == 1) {
		af = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, buf, bytes) == 1) {
		af = AF_INET6;
		maxp = 128;
	} else {
		snprintf(why, whylen, "not a numeric IP address");
		return -1;
	}
	if (slash == NULL) {
		prefix = maxp;
	} else {
		const char *p = slash + 1;

		if (*p == '\0') {
			snprintf(why, whylen, "missing prefix length after '/'");
			return -1;
		}
		for (; *p >= '0' && *p <= '9' && prefix <= maxp; p++)
			prefix = prefix * 10 + (unsigned)(*p - '0');
		if (*p != '\0' || prefix > maxp) {
			snprintf(why, whylen, "prefix length must be 0 to %u", maxp);
			return -1;
		}
	}
	for (i = prefix; i < maxp; i++) {
		if (bytes[i / 8] & (0x80 >> (i % 8))) {
			snprintf(why, whylen, "address has bits set beyond /%u",
			    prefix);
			return -1;
		}
	}
	out->prefix = prefix;
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->net;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, bytes, 4);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->net;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, bytes, 16);
	}
	return 0;
}
