#ifndef CUTOVER_SRC_ADDR_H
#define CUTOVER_SRC_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A numeric socket address as written in the configuration. */
struct addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64]; /* canonical "1.2.3.4:80" or "[::1]:80" */
};

/*
 * Parses "IPv4:port", "[IPv6]:port" or "*:port" (all IPv4 addresses) into
 * *out. Host names are refused: a proxy must not depend on DNS at startup.
 * Port must be 1..65535. Returns 0, or -1 with a reason in err (may be NULL).
 */
int addr_parse(const char *s, struct addr *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Formats a socket address (IPv4/IPv6) as "ip" without port into buf. */
void addr_ip_string(const struct sockaddr *sa, char *buf, size_t len);

/* A client network as written in the configuration: "10.0.0.0/8". */
struct addr_cidr {
	struct sockaddr_storage net; /* AF_INET or AF_INET6, port 0 */
	unsigned prefix;             /* 0..32 or 0..128 */
};

/*
 * Parses "10.0.0.0/8" or "::1/128"; a bare address means that one host.
 * Host bits set under the prefix are refused: "10.0.0.1/8" is more likely a
 * typo for /32 than a way to write 10.0.0.0/8. Returns 0, or -1 with a
 * reason in why.
 */
int addr_cidr_parse(const char *s, struct addr_cidr *out, char *why, size_t whylen)
    __attribute__((warn_unused_result));

/*
 * True when sa (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv4)
 * lies within the network c.
 */
bool addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa);

#endif
