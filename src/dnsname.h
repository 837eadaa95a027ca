#ifndef CUTOVER_SRC_DNSNAME_H
#define CUTOVER_SRC_DNSNAME_H

/*
 * Upstreams by name, the pure parts: parsing "host:port", the label of a
 * server a name resolved to ("green1.internal:8080 (10.0.2.7)") and the
 * difference between two answers. No I/O; the resolver (resolver.c) and the
 * configuration use these.
 */

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

#define DNSNAME_HOST_MAX 254 /* 253 characters and the NUL */
/* "host:port (address)": the host, ":65535", " (", an IPv6 address, ")". */
#define DNSNAME_LABEL_MAX (DNSNAME_HOST_MAX + 6 + 2 + 46 + 1)

/*
 * Parses "host:port" where host is a DNS name (letters, digits, hyphens and
 * dots; labels of 1..63 characters, not starting or ending with a hyphen;
 * 253 characters at most; a trailing dot is dropped) whose last label is
 * not all digits (that would be a mistyped IPv4 address), and port is
 * 1..65535. The host is written lower-cased to host (DNSNAME_HOST_MAX
 * bytes). Returns 0, or -1 with a reason in err.
 */
int dnsname_parse(const char *s, char *host, unsigned *port, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * The label of the server that name ("host:port") resolved to at address a
 * (its port is not shown): "host:port (10.0.2.7)", "host:port (2001:db8::1)".
 */
void dnsname_label(char *buf, size_t len, const char *name, const struct addr *a);

/*
 * The server address for one resolved address (raw: 4 bytes of an A record
 * or 16 of an AAAA record) and port, with addr.text as addr_parse writes it.
 */
void dnsname_addr(struct addr *out, int family, const void *raw, unsigned port);

/* Orders addresses (family, then bytes, then port) for dnsname_sort/diff. */
int dnsname_addr_cmp(const struct addr *a, const struct addr *b);

/* Sorts v and drops duplicates; returns the new count. */
size_t dnsname_sort(struct addr *v, size_t n);

/*
 * Compares two sorted, duplicate-free answers: added[j] tells whether
 * next[j] is new (not in prev), removed[i] whether prev[i] is gone (either
 * array may be NULL). Returns true when the two sets differ.
 */
bool dnsname_diff(const struct addr *prev, size_t nprev, const struct addr *next, size_t nnext,
    bool *removed, bool *added);

#endif
