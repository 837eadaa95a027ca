#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "xff.h"

static bool hop_parse(const char *s, size_t len, struct sockaddr_storage *out);

bool
xff_trusted(const struct addr_cidr *nets, size_t n, const struct sockaddr *sa)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (addr_cidr_match(&nets[i], sa))
			return true;
	return false;
}

/* One hop, "1.2.3.4" or "2001:db8::1", with optional spaces around it. */
static bool
hop_parse(const char *s, size_t len, struct sockaddr_storage *out)
{
	char buf[INET6_ADDRSTRLEN + 1];

	while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, &((struct sockaddr_in *)out)->sin_addr) == 1) {
		out->ss_family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, buf, &((struct sockaddr_in6 *)out)->sin6_addr) == 1) {
		out->ss_family = AF_INET6;
		return true;
	}
	return false;
}

bool
xff_client(const struct http_head *req, const struct addr_cidr *nets, size_t n,
    struct sockaddr_storage *out)
{
	struct sockaddr_storage hop;
	bool any = false;
	size_t i;

	for (i = req->nheaders; i-- > 0;) {
		const struct http_header *h = &req->headers[i];
		size_t end;

		if ((h->flags & HTTP_HDR_HOP) || h->value_len == 0 ||
		    !http_header_is(h, "x-forwarded-for"))
			continue;
		end = h->value_len;
		for (;;) {
			size_t start = end;

			while (start > 0 && h->value[start - 1] != ',')
				start--;
			if (!hop_parse(h->value + start, end - start, &hop))
				return any;
			*out = hop;
			any = true;
			if (!xff_trusted(nets, n, (const struct sockaddr *)&hop))
				return true;
			if (start == 0)
				break;
			end = start - 1;
		}
	}
	return any;
}
