#include "autoconf.h"

#include <string.h>

#include "bucket.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME 0x100000001b3ULL

static bool id_char(unsigned char c);

uint64_t
bucket_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = FNV64_OFFSET;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FNV64_PRIME;
	}
	/* fmix64 (MurmurHash3): every input bit reaches every output bit. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

unsigned
bucket_of(const void *key, size_t len)
{
	return (unsigned)(bucket_hash(key, len) % BUCKET_COUNT);
}

bool
bucket_on_target(const void *key, size_t len, unsigned weight_bp)
{
	return bucket_of(key, len) < weight_bp;
}

bool
bucket_cookie_find(const char *field, size_t len, const char *name, const char **value,
    size_t *vlen)
{
	size_t nlen = strlen(name), i = 0, start, eq, end, v, vl;

	while (i < len) {
		while (i < len && (field[i] == ' ' || field[i] == '\t' || field[i] == ';'))
			i++;
		start = i;
		while (i < len && field[i] != ';')
			i++;
		end = i;
		while (end > start && (field[end - 1] == ' ' || field[end - 1] == '\t'))
			end--;
		for (eq = start; eq < end && field[eq] != '='; eq++)
			;
		if (eq == end || eq - start != nlen || memcmp(field + start, name, nlen) != 0)
			continue;
		v = eq + 1;
		vl = end - v;
		/* A quoted value ("id") is RFC 6265's; the quotes are not the key. */
		if (vl >= 2 && field[v] == '"' && field[end - 1] == '"') {
			v++;
			vl -= 2;
		}
		if (vl == 0 || vl > BUCKET_ID_MAX)
			return false;
		for (size_t k = 0; k < vl; k++)
			if (!id_char((unsigned char)field[v + k]))
				return false;
		*value = field + v;
		*vlen = vl;
		return true;
	}
	return false;
}

void
bucket_id_hex(const unsigned char bytes[16], char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned i;

	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[bytes[i] >> 4];
		out[2 * i + 1] = hex[bytes[i] & 15];
	}
	out[BUCKET_ID_LEN] = '\0';
}

static bool
id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	    c == '-';
}
