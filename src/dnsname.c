#include "autoconf.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsname.h"

int
dnsname_parse(const char *s, char *host, unsigned *port, char *err, size_t errlen)
{
	const char *colon = strrchr(s, ':'), *p;
	size_t hl, label = 0;
	bool all_digits = true;
	unsigned long v;
	char *end;

	if (colon == NULL) {
		snprintf(err, errlen, "missing \":port\"");
		return -1;
	}
	hl = (size_t)(colon - s);
	if (hl > 0 && s[hl - 1] == '.')
		hl--; /* the root: "host.example.:80" */
	if (hl == 0) {
		snprintf(err, errlen, "missing host name");
		return -1;
	}
	if (hl > DNSNAME_HOST_MAX - 1) {
		snprintf(err, errlen, "host name longer than 253 characters");
		return -1;
	}
	for (p = s; p < s + hl; p++) {
		unsigned char ch = (unsigned char)*p;

		if (ch == '.') {
			if (label == 0 || p[-1] == '-') {
				snprintf(err, errlen, "empty label or label ending with '-' in host name");
				return -1;
			}
			label = 0;
			all_digits = true;
			continue;
		}
		if (!isalnum(ch) && ch != '-') {
			snprintf(err, errlen, "'%c' is not allowed in a host name", isprint(ch) ? ch : '?');
			return -1;
		}
		if (ch == '-' && label == 0) {
			snprintf(err, errlen, "a label of the host name starts with '-'");
			return -1;
		}
		if (!isdigit(ch))
			all_digits = false;
		if (++label > 63) {
			snprintf(err, errlen, "a label of the host name is longer than 63 characters");
			return -1;
		}
	}
	if (p[-1] == '-') {
		snprintf(err, errlen, "the host name ends with '-'");
		return -1;
	}
	if (all_digits) {
		snprintf(err, errlen, "not a numeric address nor a host name");
		return -1;
	}
	if (colon[1] == '\0' || !isdigit((unsigned char)colon[1])) {
		snprintf(err, errlen, "missing port");
		return -1;
	}
	v = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535) {
		snprintf(err, errlen, "port must be 1..65535");
		return -1;
	}
	for (size_t i = 0; i < hl; i++)
		host[i] = (char)tolower((unsigned char)s[i]);
	host[hl] = '\0';
	*port = (unsigned)v;
	return 0;
}

void
dnsname_label(char *buf, size_t len, const char *name, const struct addr *a)
{
	char ip[64];

	addr_ip_string((const struct sockaddr *)&a->ss, ip, sizeof(ip));
	snprintf(buf, len, "%s (%s)", name, ip);
}

void
dnsname_addr(struct addr *out, int family, const void *raw, unsigned port)
{
	char ip[64];

	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		memcpy(&sin6->sin6_addr, raw, sizeof(sin6->sin6_addr));
		out->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		memcpy(&sin->sin_addr, raw, sizeof(sin->sin_addr));
		out->len = sizeof(*sin);
	}
	addr_ip_string((const struct sockaddr *)&out->ss, ip, sizeof(ip));
	snprintf(out->text, sizeof(out->text), family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
}

int
dnsname_addr_cmp(const struct addr *a, const struct addr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return a->ss.ss_family < b->ss.ss_family ? -1 : 1;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
		const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
		int c = memcmp(&x->sin_addr, &y->sin_addr, sizeof(x->sin_addr));

		if (c != 0)
			return c;
		return ntohs(x->sin_port) < ntohs(y->sin_port) ? -1 : ntohs(x->sin_port) > ntohs(y->sin_port);
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
		const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
		int c = memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr));

		if (c != 0)
			return c;
		return ntohs(x->sin6_port) < ntohs(y->sin6_port) ? -1 : ntohs(x->sin6_port) > ntohs(y->sin6_port);
	}
	return strcmp(a->text, b->text);
}

static int
cmp_qsort(const void *a, const void *b)
{
	return dnsname_addr_cmp(a, b);
}

size_t
dnsname_sort(struct addr *v, size_t n)
{
	size_t i, k = 0;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_qsort);
	for (i = 1; i < n; i++)
		if (dnsname_addr_cmp(&v[k], &v[i]) != 0)
			v[++k] = v[i];
	return k + 1;
}

bool
dnsname_diff(const struct addr *prev, size_t nprev, const struct addr *next, size_t nnext,
    bool *removed, bool *added)
{
	size_t i = 0, j = 0;
	bool differ = false;

	while (i < nprev || j < nnext) {
		int c = i >= nprev ? 1 : j >= nnext ? -1 : dnsname_addr_cmp(&prev[i], &next[j]);

		if (c == 0) {
			if (removed != NULL)
				removed[i] = false;
			if (added != NULL)
				added[j] = false;
			i++;
			j++;
		} else if (c < 0) {
			if (removed != NULL)
				removed[i] = true;
			i++;
			differ = true;
		} else {
			if (added != NULL)
				added[j] = true;
			j++;
			differ = true;
		}
	}
	return differ;
}
