#ifndef CUTOVER_SRC_BUCKET_H
#define CUTOVER_SRC_BUCKET_H

/*
 * Ramp buckets: which color a request goes to while a progressive shift
 * (ramp) is on. A client's key (its ramp cookie's value, or its IP address
 * as text) is hashed to a bucket in [0, 10000); the client goes to the
 * ramp's target when its bucket is below the weight in basis points. The
 * bucket depends on the key alone, so a client on the target at one step
 * stays there at every later (higher) step, and every node of a fleet
 * agrees: the hash is FNV-1a 64 with its standard offset and prime,
 * finished with MurmurHash3's 64-bit mix (fmix64) so that keys differing in
 * their last bytes (addresses) spread over all buckets; no seed, no
 * per-process key. Pure: no I/O, no globals, any thread.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BUCKET_COUNT 10000u /* basis points */
#define BUCKET_ID_MAX 64    /* longest cookie value taken as a key */
#define BUCKET_ID_LEN 32    /* a new id: 16 random bytes in hex */

/* FNV-1a 64 of key, finished with fmix64. */
uint64_t bucket_hash(const void *key, size_t len);

/* The key's bucket, in [0, BUCKET_COUNT). */
unsigned bucket_of(const void *key, size_t len);

/* true when the key goes to the target at weight_bp basis points. */
bool bucket_on_target(const void *key, size_t len, unsigned weight_bp);

/*
 * Finds cookie `name` in one Cookie field value (RFC 6265 "a=1; b=2",
 * blanks around each pair tolerated). The value is taken only when it is
 * 1..BUCKET_ID_MAX characters of [A-Za-z0-9_-] (anything else is as if the
 * cookie were absent: it gets a new id). Returns true with *value, *vlen
 * pointing into field.
 */
bool bucket_cookie_find(const char *field, size_t len, const char *name, const char **value,
    size_t *vlen);

/* Writes 16 bytes as BUCKET_ID_LEN lowercase hex digits and a NUL into out
 * (BUCKET_ID_LEN + 1 bytes). */
void bucket_id_hex(const unsigned char bytes[16], char *out);

#endif
