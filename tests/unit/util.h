/* Small helpers shared by the unit tests: hex vectors and a deterministic RNG. */
#ifndef NOISETUN_TEST_UTIL_H
#define NOISETUN_TEST_UTIL_H

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/messages.h"

static inline size_t unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			abort();
		out[i] = (uint8_t)v;
	}
	return n;
}

#define ck_assert_hex(buf, hex)                                         \
	do {                                                            \
		uint8_t want_[512];                                     \
		size_t n_ = unhex(want_, (hex));                        \
		ck_assert_mem_eq((buf), want_, n_);                     \
	} while (0)

/* xorshift64*: reproducible randomness for tests. */
struct test_rng { uint64_t s; };

static inline uint64_t test_rand64(struct test_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1DULL;
}

static inline void test_rng_fill(void *ctx, void *buf, size_t len)
{
	uint8_t *p = buf;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(test_rand64(ctx) >> 56);
}

static inline struct nt_rng test_rng(struct test_rng *state, uint64_t seed)
{
	state->s = seed ? seed : 1;
	return (struct nt_rng){ .fill = test_rng_fill, .ctx = state };
}

static inline int run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
