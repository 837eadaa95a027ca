/*
 * The PROXY protocol parser (src/proxyproto.c), on the first bytes of a
 * connection. Input: the bytes a balancer (or anyone) sends.
 * Properties: fed the input one byte longer each time, the answers are
 * NEED_MORE, then either DONE with one and the same length from there on,
 * or INVALID from there on (more bytes never change a verdict); a header
 * is never longer than its version's bound (107 bytes for v1, 4 KiB for
 * v2) nor than the bytes given; NEED_MORE never outlives PROXYPROTO_MAX
 * bytes; a header with an address names an IPv4 or IPv6 one.
 */

#include "autoconf.h"

#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "proxyproto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_info info, first;
	enum proxyproto_result rc, verdict = PROXYPROTO_NEED_MORE;
	size_t n, limit = size < PROXYPROTO_MAX + 1 ? size : PROXYPROTO_MAX + 1;

	memset(&first, 0, sizeof(first));
	for (n = 0; n <= limit; n++) {
		rc = proxyproto_parse(data, n, &info);
		if (verdict == PROXYPROTO_NEED_MORE) {
			verdict = rc;
			if (rc == PROXYPROTO_DONE) {
				first = info;
				FUZZ_CHECK(info.len == n, "header of %zu bytes complete at %zu", info.len, n);
				FUZZ_CHECK(info.len <= (info.version == 1 ? 107u : 4096u),
				    "v%d header of %zu bytes", info.version, info.len);
				FUZZ_CHECK(!info.has_addr ||
				        (info.src.ss_family == AF_INET && info.srclen == sizeof(struct sockaddr_in)) ||
				        (info.src.ss_family == AF_INET6 &&
				            info.srclen == sizeof(struct sockaddr_in6)),
				    "address family %d", info.src.ss_family);
			}
			if (rc == PROXYPROTO_NEED_MORE)
				FUZZ_CHECK(n < PROXYPROTO_MAX, "still NEED_MORE after %zu bytes", n);
			continue;
		}
		FUZZ_CHECK(rc == verdict, "verdict changed from %d to %d at %zu bytes", verdict, rc, n);
		if (rc == PROXYPROTO_DONE)
			FUZZ_CHECK(info.len == first.len && info.has_addr == first.has_addr &&
			        memcmp(&info.src, &first.src, sizeof(info.src)) == 0,
			    "header changed with more bytes at %zu", n);
	}
	return 0;
}
