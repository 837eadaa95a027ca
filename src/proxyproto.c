#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>

#include "proxyproto.h"

static enum proxyproto_result parse_v1(const char *p, size_t len, struct proxyproto_info *info);
static enum proxyproto_result parse_v2(const unsigned char *p, size_t len,
    struct proxyproto_info *info);
static bool v1_word(const char **p, const char *end, char sep, char *out, size_t outlen);
static bool v1_port(const char *s, uint16_t *port);
static enum proxyproto_result prefix_of(const void *buf, size_t len, const char *sig,
    size_t siglen);

static const char V1_SIG[] = "PROXY ";
#define V1_SIGLEN (sizeof(V1_SIG) - 1)
static const char V2_SIG[] = "\r\n\r\n\0\r\nQUIT\n";
#define V2_SIGLEN (sizeof(V2_SIG) - 1) /* 12 */
#define V2_FIXED 16

enum proxyproto_result
proxyproto_parse(const void *buf, size_t len, struct proxyproto_info *info)
{
	const unsigned char *p = buf;

	if (len == 0)
		return PROXYPROTO_NEED_MORE;
	if (p[0] == 'P') {
		if (len < V1_SIGLEN)
			return prefix_of(buf, len, V1_SIG, V1_SIGLEN);
		if (memcmp(p, V1_SIG, V1_SIGLEN) != 0)
			return PROXYPROTO_INVALID;
		return parse_v1(buf, len, info);
	}
	if (p[0] == '\r') {
		if (len < V2_SIGLEN)
			return prefix_of(buf, len, V2_SIG, V2_SIGLEN);
		if (memcmp(p, V2_SIG, V2_SIGLEN) != 0)
			return PROXYPROTO_INVALID;
		return parse_v2(p, len, info);
	}
	return PROXYPROTO_INVALID;
}

/* NEED_MORE while the len bytes at buf begin sig, INVALID otherwise. */
static enum proxyproto_result
prefix_of(const void *buf, size_t len, const char *sig, size_t siglen)
{
	if (len > siglen)
		len = siglen;
	return memcmp(buf, sig, len) == 0 ? PROXYPROTO_NEED_MORE : PROXYPROTO_INVALID;
}

/*
 * Copies the bytes from *p up to the separator sep into out (at least one,
 * at most outlen - 1, none of them a space, CR or LF) and steps *p past sep.
 */
static bool
v1_word(const char **p, const char *end, char sep, char *out, size_t outlen)
{
	const char *s = *p;
	size_t n = 0;

	while (s < end && *s != sep) {
		if (*s == ' ' || *s == '\r' || *s == '\n' || n + 1 >= outlen)
			return false;
		out[n++] = *s++;
	}
	if (s == end || n == 0)
		return false;
	out[n] = '\0';
	*p = s + 1;
	return true;
}

static bool
v1_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	size_t i;

	if (s[0] == '0' && s[1] != '\0')
		return false; /* no leading zeros */
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 5)
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (i == 0 || v > 65535)
		return false;
	*port = (uint16_t)v;
	return true;
}

static enum proxyproto_result
parse_v1(const char *p, size_t len, struct proxyproto_info *info)
{
	const char *crlf, *s, *end;
	char proto[8], src[48], dst[48], sport[8], dport[8];
	uint16_t sp, dp;
	size_t hlen;
	int af;

	/* The line ends at its first LF, which must follow a CR; nothing
	 * else may hold a CR or LF. */
	crlf = memchr(p, '\n', len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX);
	if (crlf == NULL)
		return len >= PROXYPROTO_V1_MAX ? PROXYPROTO_INVALID : PROXYPROTO_NEED_MORE;
	if (crlf == p || crlf[-1] != '\r')
		return PROXYPROTO_INVALID;
	hlen = (size_t)(crlf - p) + 1;
	end = crlf - 1; /* the CR */
	s = p + V1_SIGLEN;
	if ((size_t)(end - s) >= 7 && memcmp(s, "UNKNOWN", 7) == 0 && (end - s == 7 || s[7] == ' ')) {
		/* The rest of the line is to be ignored (proxy-protocol.txt 2.1),
		 * but it is still one line. */
		if (memchr(s, '\r', (size_t)(end - s)) != NULL)
			return PROXYPROTO_INVALID;
		info->len = hlen;
		info->version = 1;
		info->has_addr = false;
		memset(&info->src, 0, sizeof(info->src));
		info->srclen = 0;
		return PROXYPROTO_DONE;
	}
	if (!v1_word(&s, end, ' ', proto, sizeof(proto)))
		return PROXYPROTO_INVALID;
	if (strcmp(proto, "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(proto, "TCP6") == 0)
		af = AF_INET6;
	else
		return PROXYPROTO_INVALID;
	if (!v1_word(&s, end, ' ', src, sizeof(src)) || !v1_word(&s, end, ' ', dst, sizeof(dst)) ||
	    !v1_word(&s, end, ' ', sport, sizeof(sport)))
		return PROXYPROTO_INVALID;
	/* The last word ends at the CR. */
	if (!v1_word(&s, end + 1, '\r', dport, sizeof(dport)) || s != end + 1)
		return PROXYPROTO_INVALID;
	if (!v1_port(sport, &sp) || !v1_port(dport, &dp))
		return PROXYPROTO_INVALID;
	memset(&info->src, 0, sizeof(info->src));
	if (af == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&info->src;
		struct in_addr d;

		if (inet_pton(AF_INET, src, &sin->sin_addr) != 1 || inet_pton(AF_INET, dst, &d) != 1)
			return PROXYPROTO_INVALID;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(sp);
		info->srclen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&info->src;
		struct in6_addr d;

		if (inet_pton(AF_INET6, src, &sin6->sin6_addr) != 1 || inet_pton(AF_INET6, dst, &d) != 1)
			return PROXYPROTO_INVALID;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(sp);
		info->srclen = sizeof(*sin6);
	}
	info->len = hlen;
	info->version = 1;
	info->has_addr = true;
	return PROXYPROTO_DONE;
}

static enum proxyproto_result
parse_v2(const unsigned char *p, size_t len, struct proxyproto_info *info)
{
	size_t body, hlen, alen, off;
	unsigned cmd, fam;

	if (len < V2_FIXED) {
		/* Check what is there already: version and command. */
		if (len > V2_SIGLEN && (p[12] >> 4 != 2 || (p[12] & 0xF) > 1))
			return PROXYPROTO_INVALID;
		return PROXYPROTO_NEED_MORE;
	}
	if (p[12] >> 4 != 2)
		return PROXYPROTO_INVALID;
	cmd = p[12] & 0xF;
	fam = p[13];
	body = ((size_t)p[14] << 8) | p[15];
	hlen = V2_FIXED + body;
	if (cmd > 1 || hlen > PROXYPROTO_V2_MAX)
		return PROXYPROTO_INVALID;
	if (cmd == 1) {
		/* PROXY: only TCP over IPv4 (0x11) or IPv6 (0x21). */
		if (fam == 0x11)
			alen = 12;
		else if (fam == 0x21)
			alen = 36;
		else
			return PROXYPROTO_INVALID;
		if (body < alen)
			return PROXYPROTO_INVALID;
	} else {
		alen = 0; /* LOCAL: the address block, if any, is ignored */
	}
	if (len < hlen)
		return PROXYPROTO_NEED_MORE;
	if (cmd == 1) {
		/* TLVs: type (1), length (2, big-endian), value; each must fit. */
		for (off = V2_FIXED + alen; off < hlen;) {
			size_t vlen;

			if (hlen - off < 3)
				return PROXYPROTO_INVALID;
			vlen = ((size_t)p[off + 1] << 8) | p[off + 2];
			if (hlen - off - 3 < vlen)
				return PROXYPROTO_INVALID;
			off += 3 + vlen;
		}
	}
	memset(&info->src, 0, sizeof(info->src));
	info->srclen = 0;
	info->has_addr = cmd == 1;
	if (fam == 0x11 && cmd == 1) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&info->src;

		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, p + V2_FIXED, 4);
		memcpy(&sin->sin_port, p + V2_FIXED + 8, 2);
		info->srclen = sizeof(*sin);
	} else if (fam == 0x21 && cmd == 1) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&info->src;

		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, p + V2_FIXED, 16);
		memcpy(&sin6->sin6_port, p + V2_FIXED + 32, 2);
		info->srclen = sizeof(*sin6);
	}
	info->len = hlen;
	info->version = 2;
	return PROXYPROTO_DONE;
}
