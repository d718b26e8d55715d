/* Tests for lib/ratelimiter.c on a fake clock. */
#include <check.h>
#include <errno.h>
#include <stdio.h> /* util.h uses sscanf without including it */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "noisetun/crypto.h"
#include "noisetun/ratelimiter.h"
#include "util.h"

#define SEC NT_NSEC_PER_SEC
#define MS  1000000ULL
#define T0  (1000 * SEC)

static struct test_rng rng_state;

static void rl_setup(struct nt_ratelimiter *rl, size_t capacity)
{
	struct nt_rng rng = test_rng(&rng_state, 0xfeed);

	ck_assert_int_eq(nt_ratelimiter_init(rl, capacity, &rng), 0);
}

static void v4(uint8_t addr[4], uint32_t host)
{
	addr[0] = 10;
	addr[1] = (uint8_t)(host >> 16);
	addr[2] = (uint8_t)(host >> 8);
	addr[3] = (uint8_t)host;
}

static unsigned allow_n(struct nt_ratelimiter *rl, int family, const uint8_t *addr, uint64_t now, unsigned n)
{
	unsigned allowed = 0;

	for (unsigned i = 0; i < n; i++)
		allowed += nt_ratelimiter_allow(rl, family, addr, now);
	return allowed;
}

START_TEST(test_burst_then_rate)
{
	struct nt_ratelimiter rl;
	uint8_t a[4];

	rl_setup(&rl, 64);
	v4(a, 1);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0, 100), 5);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0 + 50 * MS - 1000)); /* +49.999 ms */
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, a, T0 + 50 * MS));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0 + 50 * MS));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0 + 100 * MS - 1));
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, a, T0 + 100 * MS));
	/* a quiet 250 ms refills the whole burst, and no more */
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0 + 350 * MS, 100), 5);
	/* a quiet 100 ms gives two */
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0 + 450 * MS, 100), 2);
	nt_ratelimiter_free(&rl);
}
END_TEST

/* Flooding every 1 ms over [T0, T0 + 10 s]: the burst, then one per 50 ms. */
START_TEST(test_flood_ten_seconds)
{
	struct nt_ratelimiter rl;
	uint8_t a[4];
	unsigned allowed = 0;

	rl_setup(&rl, 64);
	v4(a, 2);
	for (uint64_t t = T0; t <= T0 + 10 * SEC; t += MS)
		allowed += nt_ratelimiter_allow(&rl, AF_INET, a, t);
	ck_assert_uint_eq(allowed, 5 + 200);
	nt_ratelimiter_free(&rl);
}
END_TEST

/* The same with irregular gaps (each at most 50 ms, so credit is never capped): still exact. */
START_TEST(test_flood_irregular)
{
	struct nt_ratelimiter rl;
	struct test_rng rs;
	struct nt_rng r = test_rng(&rs, 77);
	uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8 };
	unsigned allowed = 0;
	uint64_t t = T0;

	rl_setup(&rl, 64);
	for (;;) {
		uint64_t step;

		allowed += nt_ratelimiter_allow(&rl, AF_INET6, a, t);
		if (t == T0 + 10 * SEC)
			break;
		nt_rng_fill(&r, &step, sizeof(step));
		step %= 50 * MS + 1;
		t = t + step > T0 + 10 * SEC ? T0 + 10 * SEC : t + step;
	}
	ck_assert_uint_eq(allowed, 5 + 200);
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_sources_independent)
{
	struct nt_ratelimiter rl;
	uint8_t a[4], b[4];

	rl_setup(&rl, 64);
	v4(a, 3);
	v4(b, 4);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0, 10), 5);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, b, T0, 10), 5);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0 + 50 * MS, 10), 1);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, b, T0 + 50 * MS, 10), 1);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 2);
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_ipv6_by_prefix)
{
	struct nt_ratelimiter rl;
	/* 2001:db8:0:1::1, 2001:db8:0:1:ffff:ee:dd:cc, 2001:db8:0:2::1 */
	uint8_t a[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t same64[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0xff, 0xff, 0, 0xee, 0, 0xdd, 0, 0xcc };
	uint8_t other64[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1 };
	/* an IPv4 address equal to the first bytes of an IPv6 one is still another source */
	uint8_t v4_alias[4] = { 0x20, 0x01, 0x0d, 0xb8 };
	uint8_t v6_alias[16] = { 0x20, 0x01, 0x0d, 0xb8 };

	rl_setup(&rl, 64);
	ck_assert_uint_eq(allow_n(&rl, AF_INET6, a, T0, 3), 3);
	ck_assert_uint_eq(allow_n(&rl, AF_INET6, same64, T0, 10), 2);
	ck_assert_uint_eq(allow_n(&rl, AF_INET6, a, T0, 10), 0);
	ck_assert_uint_eq(allow_n(&rl, AF_INET6, other64, T0, 10), 5);
	ck_assert_uint_eq(allow_n(&rl, AF_INET6, v6_alias, T0, 10), 5);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, v4_alias, T0, 10), 5);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 4);
	nt_ratelimiter_free(&rl);

	/* in a single chain too: the v6 alias is a new source, refused by the full table */
	rl_setup(&rl, 1);
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, v4_alias, T0));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET6, v6_alias, T0));
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_capacity_exhaustion)
{
	struct nt_ratelimiter rl;
	uint8_t addr[4];

	rl_setup(&rl, 4);
	for (uint32_t i = 0; i < 4; i++) {
		v4(addr, 100 + i);
		ck_assert(nt_ratelimiter_allow(&rl, AF_INET, addr, T0));
	}
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 4);
	for (uint32_t i = 0; i < 50; i++) {
		v4(addr, 200 + i);
		ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + i * MS));
	}
	/* known sources keep working: a quiet 500 ms refilled the burst, then the rate */
	for (uint32_t i = 0; i < 4; i++) {
		v4(addr, 100 + i);
		ck_assert_uint_eq(allow_n(&rl, AF_INET, addr, T0 + 500 * MS, 10), 5);
		ck_assert_uint_eq(allow_n(&rl, AF_INET, addr, T0 + 550 * MS, 10), 1);
	}
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 4);
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_gc_reclaims_idle)
{
	struct nt_ratelimiter rl;
	uint8_t addr[4];

	rl_setup(&rl, 4);
	for (uint32_t i = 0; i < 4; i++) {
		v4(addr, 300 + i);
		ck_assert(nt_ratelimiter_allow(&rl, AF_INET, addr, T0));
	}
	v4(addr, 303);
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + 500 * MS)); /* still busy */
	v4(addr, 400);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + SEC));

	nt_ratelimiter_gc(&rl, T0 + SEC); /* idle exactly 1 s: kept */
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 4);
	nt_ratelimiter_gc(&rl, T0 + SEC + 1);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 1);
	for (uint32_t i = 0; i < 3; i++) {
		v4(addr, 400 + i);
		ck_assert_uint_eq(allow_n(&rl, AF_INET, addr, T0 + SEC + 2, 10), 5);
	}
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 4);
	v4(addr, 500);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + SEC + 2));
	/* the survivor kept its state through gc */
	v4(addr, 303);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, addr, T0 + SEC + 2, 10), 5);

	nt_ratelimiter_gc(&rl, T0 + 10 * SEC);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 0);
	nt_ratelimiter_free(&rl);
}
END_TEST

/* With capacity 1 there is one chain, so a lookup meets the idle entry and reclaims it. */
START_TEST(test_lazy_reclaim)
{
	struct nt_ratelimiter rl;
	uint8_t a[4], b[4];

	rl_setup(&rl, 1);
	v4(a, 600);
	v4(b, 601);
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, a, T0));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, b, T0 + SEC));
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, b, T0 + SEC + 1));
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 1);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0 + SEC + 2));
	/* an idle source coming back is a new source: a full burst */
	ck_assert_uint_eq(allow_n(&rl, AF_INET, b, T0 + 5 * SEC, 10), 5);
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_clock_backwards)
{
	struct nt_ratelimiter rl;
	uint8_t a[4];

	rl_setup(&rl, 8);
	v4(a, 700);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0, 10), 5);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0 - SEC, 10), 0);
	nt_ratelimiter_gc(&rl, T0 - SEC);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 1);
	ck_assert_uint_eq(allow_n(&rl, AF_INET, a, T0 + 50 * MS, 10), 1);
	nt_ratelimiter_free(&rl);
}
END_TEST

START_TEST(test_bad_input)
{
	struct nt_ratelimiter rl;
	struct nt_rng rng = test_rng(&rng_state, 5);
	uint8_t a[16] = { 1, 2, 3, 4 };

	ck_assert_int_eq(nt_ratelimiter_init(&rl, 0, &rng), -EINVAL);
	nt_ratelimiter_free(&rl);
	ck_assert_int_eq(nt_ratelimiter_init(&rl, (1u << 24) + 1, &rng), -EINVAL);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0)); /* failed init: refuses, no crash */
	nt_ratelimiter_gc(&rl, T0);
	nt_ratelimiter_free(&rl);

	memset(&rl, 0, sizeof(rl));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, a, T0));
	nt_ratelimiter_free(&rl);

	rl_setup(&rl, 8);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_UNIX, a, T0));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_UNSPEC, a, T0));
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, NULL, T0));
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 0);
	nt_ratelimiter_free(&rl);
	nt_ratelimiter_free(&rl);
	ck_assert(nt_is_zero(&rl, sizeof(rl)));
}
END_TEST

/* Exactly the bytes of each family are read: addresses in heap blocks of 4 and 16 bytes. */
START_TEST(test_reads_only_the_address)
{
	struct nt_ratelimiter rl;
	uint8_t *a4 = malloc(4), *a6 = malloc(16);

	ck_assert(a4 && a6);
	memset(a4, 7, 4);
	memset(a6, 7, 16);
	rl_setup(&rl, 8);
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, a4, T0));
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET6, a6, T0));
	nt_ratelimiter_free(&rl);
	free(a4);
	free(a6);
}
END_TEST

START_TEST(test_hash_key_from_rng)
{
	struct nt_ratelimiter r1, r2;
	struct test_rng s1, s2;
	struct nt_rng g1 = test_rng(&s1, 1), g2 = test_rng(&s2, 2);

	ck_assert_int_eq(nt_ratelimiter_init(&r1, 16, &g1), 0);
	ck_assert_int_eq(nt_ratelimiter_init(&r2, 16, &g2), 0);
	ck_assert(!nt_is_zero(r1.hash_key, sizeof(r1.hash_key)));
	ck_assert(memcmp(r1.hash_key, r2.hash_key, sizeof(r1.hash_key)) != 0);
	nt_ratelimiter_free(&r1);
	nt_ratelimiter_free(&r2);
}
END_TEST

/* A full default-size table: 8192 sources fit, the next is refused, gc empties it. */
START_TEST(test_default_capacity)
{
	struct nt_ratelimiter rl;
	uint8_t addr[4];

	rl_setup(&rl, NT_RATELIMITER_DEFAULT_CAPACITY);
	for (uint32_t i = 0; i < NT_RATELIMITER_DEFAULT_CAPACITY; i++) {
		v4(addr, i);
		ck_assert(nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + i));
	}
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), NT_RATELIMITER_DEFAULT_CAPACITY);
	v4(addr, NT_RATELIMITER_DEFAULT_CAPACITY);
	ck_assert(!nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + SEC));
	for (uint32_t i = 0; i < NT_RATELIMITER_DEFAULT_CAPACITY; i++) {
		v4(addr, i);
		ck_assert_uint_eq(allow_n(&rl, AF_INET, addr, T0 + SEC, 6), 5);
	}
	nt_ratelimiter_gc(&rl, T0 + 2 * SEC + 1);
	ck_assert_uint_eq(nt_ratelimiter_count(&rl), 0);
	v4(addr, NT_RATELIMITER_DEFAULT_CAPACITY);
	ck_assert(nt_ratelimiter_allow(&rl, AF_INET, addr, T0 + 2 * SEC + 1));
	nt_ratelimiter_free(&rl);
}
END_TEST

/* Differential: random traffic from 40 sources against a naive token bucket that never
 * forgets anyone; reclaiming idle entries (lazily or by gc) must be invisible. */
struct naive_bucket {
	bool seen;
	uint64_t tokens, last;
};

static bool naive_allow(struct naive_bucket *b, uint64_t now)
{
	if (!b->seen) {
		b->seen = true;
		b->tokens = NT_RATELIMITER_TOKEN_MAX;
		b->last = now;
	}
	b->tokens += now - b->last;
	if (b->tokens > NT_RATELIMITER_TOKEN_MAX)
		b->tokens = NT_RATELIMITER_TOKEN_MAX;
	b->last = now;
	if (b->tokens < NT_RATELIMITER_PACKET_COST)
		return false;
	b->tokens -= NT_RATELIMITER_PACKET_COST;
	return true;
}

START_TEST(test_differential)
{
	enum { SOURCES = 40 };
	struct nt_ratelimiter rl;
	struct naive_bucket ref[SOURCES] = { { 0 } };
	struct test_rng rs;
	struct nt_rng r = test_rng(&rs, 4242 + _i);
	uint64_t t = T0;

	rl_setup(&rl, _i == 0 ? 1 : 64); /* one chain, or many */
	for (int op = 0; op < 200000; op++) {
		uint32_t x[3];
		uint8_t addr[16] = { 0x20, 0x01, 0x0d, 0xb8 };
		unsigned src;
		int family;

		nt_rng_fill(&r, x, sizeof(x));
		t += x[0] % 4 == 0 ? x[1] % (3 * SEC) : x[1] % (30 * MS);
		src = x[2] % (_i == 0 ? 1 : SOURCES);
		if (src % 2) {
			family = AF_INET;
			addr[3] = (uint8_t)src;
		} else {
			family = AF_INET6;
			addr[7] = (uint8_t)src;
			addr[8 + src % 8] = (uint8_t)x[2]; /* the host half must not matter */
		}
		if (x[0] % 997 == 0)
			nt_ratelimiter_gc(&rl, t);
		ck_assert_msg(nt_ratelimiter_allow(&rl, family, addr, t) == naive_allow(&ref[src], t), "op %d", op);
	}
	nt_ratelimiter_free(&rl);
}
END_TEST

static Suite *ratelimiter_suite(void)
{
	Suite *s = suite_create("ratelimiter");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_burst_then_rate);
	tcase_add_test(tc, test_flood_ten_seconds);
	tcase_add_test(tc, test_flood_irregular);
	tcase_add_test(tc, test_sources_independent);
	tcase_add_test(tc, test_ipv6_by_prefix);
	tcase_add_test(tc, test_capacity_exhaustion);
	tcase_add_test(tc, test_gc_reclaims_idle);
	tcase_add_test(tc, test_lazy_reclaim);
	tcase_add_test(tc, test_clock_backwards);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_reads_only_the_address);
	tcase_add_test(tc, test_hash_key_from_rng);
	tcase_add_test(tc, test_default_capacity);
	tcase_add_loop_test(tc, test_differential, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (nt_crypto_init() != 0)
		return EXIT_FAILURE;
	return run_suite(ratelimiter_suite());
}
