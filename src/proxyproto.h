#ifndef CUTOVER_SRC_PROXYPROTO_H
#define CUTOVER_SRC_PROXYPROTO_H

/*
 * The PROXY protocol header (HAProxy's proxy-protocol.txt, versions 1 and 2)
 * that an L4 balancer sends before the client's bytes. Pure: parses a
 * buffer, does no I/O; the caller reads, calls again with more bytes while
 * the answer is PROXYPROTO_NEED_MORE, and consumes exactly info.len bytes
 * once it is PROXYPROTO_DONE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A v1 header is at most 107 bytes with its CRLF (the spec's bound). */
#define PROXYPROTO_V1_MAX 107
/* A v2 header (16-byte fixed part + its length) is at most 4 KiB (contract). */
#define PROXYPROTO_V2_MAX 4096
/* What a caller needs to buffer at most before the answer is known. */
#define PROXYPROTO_MAX PROXYPROTO_V2_MAX

enum proxyproto_result {
	PROXYPROTO_NEED_MORE, /* a valid prefix: read more */
	PROXYPROTO_INVALID,   /* not a valid header: close the connection */
	PROXYPROTO_DONE,      /* a whole valid header: see struct proxyproto_info */
};

struct proxyproto_info {
	size_t len;    /* bytes of the header, to consume */
	int version;   /* 1 or 2 */
	/* false: v1 UNKNOWN or v2 LOCAL, the connection's own peer stands;
	 * true: src holds the client's address (TCP over IPv4 or IPv6). */
	bool has_addr;
	struct sockaddr_storage src;
	socklen_t srclen;
};

/*
 * Parses the len bytes at buf, the first bytes of a connection. Exact
 * signatures; v1 "PROXY TCP4|TCP6 src dst sport dport\r\n" with single
 * spaces, numeric addresses of the named family and ports 0..65535 without
 * leading zeros, or "PROXY UNKNOWN...\r\n"; v2 version 2, command LOCAL (any
 * family, address ignored) or PROXY with TCP over IPv4/IPv6 only (UDP, UNIX
 * and UNSPEC are refused), the address block long enough, TLVs well framed
 * and skipped. On PROXYPROTO_DONE fills *info; otherwise *info is unchanged.
 */
enum proxyproto_result proxyproto_parse(const void *buf, size_t len, struct proxyproto_info *info)
    __attribute__((warn_unused_result));

#endif
