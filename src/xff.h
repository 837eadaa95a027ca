#ifndef CUTOVER_SRC_XFF_H
#define CUTOVER_SRC_XFF_H

/*
 * The client address behind trusted proxies (trusted_proxies): from a peer
 * in those networks, the incoming X-Forwarded-For is believed hop by hop
 * from the right, and the client is its last untrusted hop. Pure.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "addr.h"
#include "http.h"

/* True when sa lies in one of the n networks of nets. */
bool xff_trusted(const struct addr_cidr *nets, size_t n, const struct sockaddr *sa);

/*
 * The request's client when its peer is trusted: walks the X-Forwarded-For
 * fields of req (in order, skipping those flagged HTTP_HDR_HOP; elements
 * separated by commas) from the right: the first address not in nets is
 * the client; a hop that is not a numeric IPv4/IPv6 address ends the walk
 * (nothing left of it can be believed) and the last address judged stands;
 * when every hop is trusted, the leftmost one. Writes the client to *out and
 * returns true, or returns false (out unchanged) when the field names no
 * address before a bad hop, in which case the peer stands.
 */
bool xff_client(const struct http_head *req, const struct addr_cidr *nets, size_t n,
    struct sockaddr_storage *out);

#endif
