#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <check.h>

#include "bucket.h"

/*
 * Fixed vectors: every node of a fleet, whatever its build, must put a key
 * in the same bucket. The values were computed independently (Python,
 * FNV-1a 64 + fmix64); tests/integration/test_ramp.py uses the same.
 */
static const struct {
	const char *key;
	uint64_t hash;
	unsigned bucket;
} vectors[] = {
	{"", 0xefd01f60ba992926ULL, 4342},
	{"a", 0x82a2a958a9bece5bULL, 8315},
	{"127.0.0.1", 0xcede3ba3b6417b22ULL, 3154},
	{"::1", 0xf1de37a93e96c77cULL, 7772},
	{"0123456789abcdef0123456789abcdef", 0x26d521498b2056f3ULL, 2947},
	{"cutover", 0x0ed4c57ca8848852ULL, 4690},
};

START_TEST(test_vectors)
{
	const char *k = vectors[_i].key;

	ck_assert_uint_eq(bucket_hash(k, strlen(k)), vectors[_i].hash);
	ck_assert_uint_eq(bucket_of(k, strlen(k)), vectors[_i].bucket);
	ck_assert(!bucket_on_target(k, strlen(k), vectors[_i].bucket));
	ck_assert(bucket_on_target(k, strlen(k), vectors[_i].bucket + 1));
	ck_assert(bucket_on_target(k, strlen(k), BUCKET_COUNT));
	ck_assert(!bucket_on_target(k, strlen(k), 0));
}
END_TEST

/* Monotonic: on the target at one weight, on it at every higher one. */
START_TEST(test_monotonic)
{
	char key[32];
	unsigned i, w, on1 = 0, on10 = 0, on50 = 0, backwards = 0;

	for (i = 0; i < 20000; i++) {
		int n = snprintf(key, sizeof(key), "client-%u", i);
		bool was = false;

		for (w = 0; w <= BUCKET_COUNT; w += 100) {
			bool on = bucket_on_target(key, (size_t)n, w);

			/* Counted, not asserted here: Check marks every passing
			 * assertion through its pipe, and two million of those
			 * outlast the test timeout on a busy machine. */
			backwards += was && !on;
			was = on;
		}
		on1 += bucket_on_target(key, (size_t)n, 100);
		on10 += bucket_on_target(key, (size_t)n, 1000);
		on50 += bucket_on_target(key, (size_t)n, 5000);
	}
	ck_assert_uint_eq(backwards, 0);
	/* The shares come close to the weights (20000 keys: a few tenths of a point). */
	ck_assert_uint_ge(on1, 140);
	ck_assert_uint_le(on1, 260);
	ck_assert_uint_ge(on10, 1800);
	ck_assert_uint_le(on10, 2200);
	ck_assert_uint_ge(on50, 9600);
	ck_assert_uint_le(on50, 10400);
}
END_TEST

/* Addresses differ in their last bytes: they spread all the same. */
START_TEST(test_addresses_spread)
{
	char key[32];
	unsigned i, on = 0;

	for (i = 0; i < 65536; i++) {
		int n = snprintf(key, sizeof(key), "10.0.%u.%u", i >> 8, i & 255);

		on += bucket_on_target(key, (size_t)n, 1000);
	}
	ck_assert_uint_ge(on, 6000);
	ck_assert_uint_le(on, 7100);
}
END_TEST

START_TEST(test_cookie_find)
{
	const char *v;
	size_t n;
	const char *f;

	f = "a=1; cutover_bucket=abc-DEF_09; b=2";
	ck_assert(bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	ck_assert_uint_eq(n, 10);
	ck_assert(memcmp(v, "abc-DEF_09", 10) == 0);
	f = "cutover_bucket=\"q1\"";
	ck_assert(bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	ck_assert_uint_eq(n, 2);
	ck_assert(memcmp(v, "q1", 2) == 0);
	f = "xcutover_bucket=1;cutover_bucketx=2";
	ck_assert(!bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	f = "cutover_bucket=";
	ck_assert(!bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	f = "cutover_bucket=a b";
	ck_assert(!bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	f = "cutover_bucket=a%2Fb";
	ck_assert(!bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	f = "cutover_bucket=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"; /* 65 */
	ck_assert(!bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	f = "  k=v ;\tcutover_bucket=z9  ";
	ck_assert(bucket_cookie_find(f, strlen(f), "cutover_bucket", &v, &n));
	ck_assert_uint_eq(n, 2);
	/* Only the bytes given count. */
	f = "cutover_bucket=abcdef";
	ck_assert(bucket_cookie_find(f, 17, "cutover_bucket", &v, &n));
	ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(test_id_hex)
{
	unsigned char b[16];
	char out[BUCKET_ID_LEN + 1];
	unsigned i;

	for (i = 0; i < 16; i++)
		b[i] = (unsigned char)(i * 17);
	bucket_id_hex(b, out);
	ck_assert_str_eq(out, "00112233445566778899aabbccddeeff");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("bucket");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_loop_test(tc, test_vectors, 0, (int)(sizeof(vectors) / sizeof(vectors[0])));
	tcase_add_test(tc, test_monotonic);
	tcase_add_test(tc, test_addresses_spread);
	tcase_add_test(tc, test_cookie_find);
	tcase_add_test(tc, test_id_hex);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
