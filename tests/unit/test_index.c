/* Tests for lib/index.c: the session-index table against a naive reference, and its size
 * under handshake churn, growth, shrinking and the cap. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/crypto.h"
#include "noisetun/index.h"
#include "util.h"

#define CHURN_HANDSHAKES 4194304 /* issue 20: "4,194,304 handshakes leave a 4,194,304-slot table" */
#define CHURN_LIVE       1000

/* Check's ck_assert writes a checkpoint per call: millions of them cost seconds of system
 * time, so the loops below assert through this instead. */
#define EXPECT(cond)                                                    \
	do {                                                            \
		if (!(cond))                                            \
			ck_abort_msg("line %d: %s", __LINE__, #cond);   \
	} while (0)

static char owners[8]; /* distinct non-NULL owner pointers */
static struct test_rng rng_state;

/* An rng that repeats a fixed list of 32-bit values. */
struct seq_rng {
	const uint32_t *values;
	size_t n, next;
};

static void seq_fill(void *ctx, void *buf, size_t len)
{
	struct seq_rng *r = ctx;

	EXPECT(len == sizeof(uint32_t));
	memcpy(buf, &r->values[r->next++ % r->n], len);
}

/* Indices in 0 .. 511 only: collisions, retries, 0, and neighbouring homes. */
static void narrow_fill(void *ctx, void *buf, size_t len)
{
	uint32_t v = (uint32_t)(test_rand64(ctx) >> 23) & 511;

	EXPECT(len == sizeof(v));
	memcpy(buf, &v, len);
}

static uint32_t assign_ok(struct nt_index_table *t, void *owner, const struct nt_rng *rng)
{
	uint32_t index = 0;

	EXPECT(nt_index_assign(t, owner, rng, &index) == 0);
	EXPECT(index != 0);
	EXPECT(nt_index_lookup(t, index) == owner);
	return index;
}

static size_t max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

/* ---- against a reference: a plain array of (index, owner) ---- */

struct ref {
	uint32_t index[4096];
	void *owner[4096];
	size_t n;
};

static void *ref_lookup(const struct ref *r, uint32_t index)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->index[i] == index)
			return r->owner[i];
	return NULL;
}

static void ref_remove(struct ref *r, size_t i)
{
	r->n--;
	r->index[i] = r->index[r->n];
	r->owner[i] = r->owner[r->n];
}

/* Loop 0: indices over all 32 bits, up to 3,000 live (growth to 16,384 slots and back).
 * Loop 1: indices in 0 .. 511, up to 200 live: retries, 0 drawn, long probe runs. */
START_TEST(test_reference_model)
{
	struct nt_index_table t;
	struct ref *r = calloc(1, sizeof(*r));
	struct test_rng ops_state, idx_state = { 0x51ed + (uint64_t)_i };
	struct nt_rng rng = _i ? (struct nt_rng){ narrow_fill, &idx_state } : test_rng(&rng_state, 0x1dea);
	size_t limit = _i ? 200 : 3000, peak = 0;
	uint32_t released[64] = { 0 };
	unsigned nreleased = 0;

	ck_assert_ptr_nonnull(r);
	test_rng(&ops_state, 0xabc + (uint64_t)_i);
	ck_assert_int_eq(nt_index_init(&t, 1u << 20), 0);
	for (int op = 0; op < 200000; op++) {
		uint64_t x = test_rand64(&ops_state);
		/* Phases of 20,000 operations lean towards assigning, then releasing. */
		bool filling = (op / 20000) % 2 == 0;
		unsigned what = (unsigned)(x % 100);

		if (what < (filling ? 50u : 30u) && r->n < limit) {
			void *owner = &owners[(x >> 8) % 8];
			uint32_t index = 0;

			EXPECT(nt_index_assign(&t, owner, &rng, &index) == 0);
			if (!index || ref_lookup(r, index))
				ck_abort_msg("op %d: index %u", op, index);
			r->index[r->n] = index;
			r->owner[r->n++] = owner;
		} else if (what < 80 && r->n) {
			size_t i = (x >> 8) % r->n;
			void *wrong = &owners[((x >> 16) + 1 + (uintptr_t)((char *)r->owner[i] - owners)) % 8];

			if (wrong != r->owner[i] && (x & (1u << 30)))
				EXPECT(!nt_index_release(&t, r->index[i], wrong));
			EXPECT(nt_index_release(&t, r->index[i], r->owner[i]));
			released[nreleased++ % 64] = r->index[i];
			ref_remove(r, i);
		} else {
			uint32_t probe = (uint32_t)(x >> 32);

			if (r->n && (x & 1))
				probe = r->index[(x >> 8) % r->n];
			else if (x & 2)
				probe = released[(x >> 8) % 64];
			if (_i)
				probe &= 511;
			EXPECT(nt_index_lookup(&t, probe) == ref_lookup(r, probe));
			if (!ref_lookup(r, probe))
				EXPECT(!nt_index_release(&t, probe, &owners[0]));
		}
		EXPECT(nt_index_count(&t) == r->n);
		peak = max_size(peak, r->n);
		if (nt_index_slots(&t) > max_size(NT_INDEX_MIN_SLOTS, 6 * peak))
			ck_abort_msg("op %d: %zu slots for a peak of %zu", op, nt_index_slots(&t), peak);
		if (op % 5000 == 0)
			for (size_t i = 0; i < r->n; i++)
				EXPECT(nt_index_lookup(&t, r->index[i]) == r->owner[i]);
	}
	for (size_t i = 0; i < r->n; i++)
		EXPECT(nt_index_lookup(&t, r->index[i]) == r->owner[i]);
	nt_index_free(&t);
	free(r);
}
END_TEST

/* Issue 20: every handshake leaves a tombstone; the table must not keep them. 4,194,304
 * handshakes with 1,000 sessions live: the table before the fix had grown to 4,194,304
 * slots (64 MiB); now it stays at 4,096 (64 KiB). */
START_TEST(test_churn_bounded)
{
	struct nt_index_table t;
	struct nt_rng rng = test_rng(&rng_state, 0xc4a2);
	uint32_t *live = calloc(CHURN_LIVE, sizeof(*live));
	size_t most = 0;

	ck_assert_ptr_nonnull(live);
	ck_assert_int_eq(nt_index_init(&t, NT_INDEX_DEFAULT_MAX_SLOTS), 0);
	for (int i = 0; i < CHURN_LIVE; i++)
		live[i] = assign_ok(&t, &owners[i % 8], &rng);
	for (int h = 0; h < CHURN_HANDSHAKES; h++) {
		int i = h % CHURN_LIVE;
		uint32_t index = 0;

		EXPECT(nt_index_release(&t, live[i], &owners[i % 8]));
		EXPECT(nt_index_assign(&t, &owners[i % 8], &rng, &index) == 0);
		live[i] = index;
		if (nt_index_slots(&t) > most)
			most = nt_index_slots(&t);
	}
	printf("index churn: %d handshakes, %d live: %zu slots, %zu bytes (largest %zu slots)\n",
	       CHURN_HANDSHAKES, CHURN_LIVE, nt_index_slots(&t), nt_index_bytes(&t), most);
	ck_assert_uint_le(most, 6 * CHURN_LIVE);
	ck_assert_uint_le(nt_index_bytes(&t), 6 * CHURN_LIVE * sizeof(struct nt_index_slot));
	ck_assert_uint_eq(nt_index_count(&t), CHURN_LIVE);
	for (int i = 0; i < CHURN_LIVE; i++)
		EXPECT(nt_index_lookup(&t, live[i]) == &owners[i % 8]);
	nt_index_free(&t);
	free(live);
}
END_TEST

/* 200,000 live sessions, then all but 10 go, then all. */
START_TEST(test_grow_then_shrink)
{
	enum { N = 200000 };
	struct nt_index_table t;
	struct nt_rng rng = test_rng(&rng_state, 0x9a0);
	uint32_t *idx = calloc(N, sizeof(*idx));

	ck_assert_ptr_nonnull(idx);
	ck_assert_int_eq(nt_index_init(&t, NT_INDEX_DEFAULT_MAX_SLOTS), 0);
	ck_assert_uint_eq(nt_index_slots(&t), 0); /* nothing until the first assign */
	for (int i = 0; i < N; i++) {
		idx[i] = assign_ok(&t, &owners[i % 8], &rng);
		EXPECT(nt_index_slots(&t) <= max_size(NT_INDEX_MIN_SLOTS, 6 * (size_t)(i + 1)));
		EXPECT(nt_index_slots(&t) >= 2 * (size_t)(i + 1)); /* at most half full */
	}
	ck_assert_uint_eq(nt_index_count(&t), N);
	ck_assert_uint_ge(nt_index_slots(&t), 2 * N);
	for (int i = 0; i < N; i++)
		EXPECT(nt_index_lookup(&t, idx[i]) == &owners[i % 8]);
	for (int i = N - 1; i >= 10; i--) {
		EXPECT(nt_index_release(&t, idx[i], &owners[i % 8]));
		/* shrunk whenever live entries fall under 1/16 */
		EXPECT(nt_index_slots(&t) <= max_size(NT_INDEX_MIN_SLOTS, 16 * (size_t)i));
	}
	ck_assert_uint_le(nt_index_slots(&t), 16 * 10);
	for (int i = 0; i < N; i++)
		EXPECT(nt_index_lookup(&t, idx[i]) == (i < 10 ? &owners[i % 8] : NULL));
	for (int i = 0; i < 10; i++)
		EXPECT(nt_index_release(&t, idx[i], &owners[i % 8]));
	ck_assert_uint_eq(nt_index_count(&t), 0);
	ck_assert_uint_eq(nt_index_slots(&t), NT_INDEX_MIN_SLOTS);
	nt_index_free(&t);
	free(idx);
}
END_TEST

/* A peer rekeying (one release, one assign) right after a resize, at the live count that
 * caused it, never resizes the table: loop 0 right after a grow, loop 1 after a shrink. */
START_TEST(test_no_flap_at_boundary)
{
	enum { N = 5000 };
	struct nt_index_table t;
	struct nt_rng rng = test_rng(&rng_state, 0xf1a9 + (uint64_t)_i);
	uint32_t *idx = calloc(N, sizeof(*idx));
	size_t n = 0, size;

	ck_assert_ptr_nonnull(idx);
	ck_assert_int_eq(nt_index_init(&t, NT_INDEX_DEFAULT_MAX_SLOTS), 0);
	if (_i == 0) {
		idx[n++] = assign_ok(&t, &owners[0], &rng);
		for (size = nt_index_slots(&t); nt_index_slots(&t) == size;)
			idx[n++] = assign_ok(&t, &owners[0], &rng);
	} else {
		while (n < N)
			idx[n++] = assign_ok(&t, &owners[0], &rng);
		for (size = nt_index_slots(&t); nt_index_slots(&t) == size;)
			EXPECT(nt_index_release(&t, idx[--n], &owners[0]));
	}
	size = nt_index_slots(&t);
	for (int round = 0; round < 100000; round++) {
		size_t i = (size_t)round % n;

		EXPECT(nt_index_release(&t, idx[i], &owners[0]));
		idx[i] = assign_ok(&t, &owners[0], &rng);
		EXPECT(nt_index_slots(&t) == size);
		/* and the other way round: a new session first */
		idx[n] = assign_ok(&t, &owners[0], &rng);
		EXPECT(nt_index_release(&t, idx[n], &owners[0]));
		EXPECT(nt_index_slots(&t) == size);
	}
	ck_assert_uint_eq(nt_index_count(&t), n);
	nt_index_free(&t);
	free(idx);
}
END_TEST

/* At max_slots the table holds max_slots / 2 and refuses the next with -ENOSPC, unchanged;
 * churn at the cap still works (tombstones are rebuilt away, not grown over). */
START_TEST(test_cap)
{
	struct nt_index_table t;
	struct nt_rng rng = test_rng(&rng_state, 0xca9);
	uint32_t idx[128], index = 0;

	ck_assert_int_eq(nt_index_init(&t, 256), 0);
	for (int i = 0; i < 128; i++)
		idx[i] = assign_ok(&t, &owners[1], &rng);
	ck_assert_int_eq(nt_index_assign(&t, &owners[1], &rng, &index), -ENOSPC);
	ck_assert_int_eq(nt_index_assign(&t, &owners[2], &rng, &index), -ENOSPC);
	ck_assert_uint_eq(nt_index_count(&t), 128);
	ck_assert_uint_eq(nt_index_slots(&t), 256);
	for (int i = 0; i < 128; i++)
		EXPECT(nt_index_lookup(&t, idx[i]) == &owners[1]);
	for (int h = 0; h < 100000; h++) {
		int i = h % 128;

		EXPECT(nt_index_release(&t, idx[i], &owners[1]));
		idx[i] = assign_ok(&t, &owners[1], &rng);
		EXPECT(nt_index_slots(&t) == 256);
	}
	ck_assert_int_eq(nt_index_assign(&t, &owners[1], &rng, &index), -ENOSPC);
	nt_index_free(&t);
	nt_index_free(&t); /* twice is safe */

	ck_assert_int_eq(nt_index_init(&t, 0), -EINVAL);
	ck_assert_int_eq(nt_index_init(&t, NT_INDEX_MIN_SLOTS / 2), -EINVAL);
	ck_assert_int_eq(nt_index_init(&t, 1000), -EINVAL);
	ck_assert_int_eq(nt_index_init(&t, (size_t)NT_INDEX_MAX_SLOTS_LIMIT * 2), -EINVAL);
	ck_assert_int_eq(nt_index_init(&t, NT_INDEX_MAX_SLOTS_LIMIT), 0);
	ck_assert_int_eq(nt_index_assign(&t, NULL, &rng, &index), -EINVAL);
	nt_index_free(&t);
}
END_TEST

/* The rng's zeros are skipped, never handed out; an rng that only repeats gives up. */
START_TEST(test_index_zero_never)
{
	static const uint32_t zeros_then_7[] = { 0, 0, 0, 7 };
	static const uint32_t zeros[] = { 0 };
	struct seq_rng a = { zeros_then_7, 4, 0 }, z = { zeros, 1, 0 };
	struct nt_rng rng_a = { seq_fill, &a }, rng_z = { seq_fill, &z };
	struct nt_index_table t;
	uint32_t index = 0;

	ck_assert_int_eq(nt_index_init(&t, 1024), 0);
	ck_assert_int_eq(nt_index_assign(&t, &owners[0], &rng_a, &index), 0);
	ck_assert_uint_eq(index, 7);
	ck_assert_uint_eq(a.next, 4);
	/* the next draws are 0, 0, 0, 7 again, and 7 is taken */
	ck_assert_int_eq(nt_index_assign(&t, &owners[0], &rng_a, &index), -EAGAIN);
	ck_assert_int_eq(nt_index_assign(&t, &owners[0], &rng_z, &index), -EAGAIN);
	ck_assert_uint_eq(nt_index_count(&t), 1);
	ck_assert_ptr_null(nt_index_lookup(&t, 0));
	ck_assert(!nt_index_release(&t, 0, &owners[0]));
	ck_assert(!nt_index_release(&t, 0, NULL));
	nt_index_free(&t);
}
END_TEST

/* A released index is gone; only its owner may release it; releasing twice is a no-op. */
START_TEST(test_release)
{
	struct nt_index_table t;
	struct nt_rng rng = test_rng(&rng_state, 0x4e1);
	uint32_t a, b;

	ck_assert_int_eq(nt_index_init(&t, 1024), 0);
	ck_assert_ptr_null(nt_index_lookup(&t, 12345)); /* empty, nothing allocated */
	ck_assert(!nt_index_release(&t, 12345, &owners[0]));
	a = assign_ok(&t, &owners[0], &rng);
	b = assign_ok(&t, &owners[1], &rng);
	ck_assert_uint_ne(a, b);
	ck_assert(!nt_index_release(&t, a, &owners[1]));
	ck_assert(!nt_index_release(&t, a, NULL));
	ck_assert_ptr_eq(nt_index_lookup(&t, a), &owners[0]);
	ck_assert(nt_index_release(&t, a, &owners[0]));
	ck_assert_ptr_null(nt_index_lookup(&t, a));
	ck_assert(!nt_index_release(&t, a, &owners[0]));
	ck_assert_ptr_eq(nt_index_lookup(&t, b), &owners[1]);
	ck_assert_uint_eq(nt_index_count(&t), 1);
	nt_index_free(&t);
	ck_assert_ptr_null(nt_index_lookup(&t, b));
}
END_TEST

static Suite *index_suite(void)
{
	Suite *s = suite_create("index");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_reference_model, 0, 2);
	tcase_add_test(tc, test_churn_bounded);
	tcase_add_test(tc, test_grow_then_shrink);
	tcase_add_loop_test(tc, test_no_flap_at_boundary, 0, 2);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_index_zero_never);
	tcase_add_test(tc, test_release);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (nt_crypto_init() != 0)
		return EXIT_FAILURE;
	return run_suite(index_suite());
}
