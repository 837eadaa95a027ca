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

/*
 * True when sa (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv4)
 * lies within net/prefix.
 */
bool addr_in_prefix(const struct sockaddr *sa, const struct sockaddr_storage *net, unsigned prefix);

#endif
