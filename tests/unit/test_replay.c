/* Replay window (lib/replay.c): a numbered table of edge cases, then a seeded randomized
 * comparison of 10^6 operations with a deliberately naive model (a set of every counter
 * ever accepted plus the greatest). Both apply the rule in replay.h. Reproduce a run with
 * NT_TEST_SEED=<n>. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/replay.h"

#define W   NT_REPLAY_WINDOW
#define REJ NT_REJECT_AFTER_MESSAGES
#define BLK NT_REPLAY_BLOCKS

_Static_assert(W == 8128, "window is 8192 - 64 counters");

/* ---- table of edge cases ---- */

enum op { END, UPD, CHK };

struct step {
	enum op op;
	uint64_t counter;
	bool accept;
};

#define U(c, a) { UPD, (c), (a) }  /* update: check() first must agree, then update() */
#define C(c, a) { CHK, (c), (a) }  /* check only */
#define T true
#define F false

struct edge_case {
	const char *name;
	struct step steps[32];
};

static const struct edge_case edge_cases[] = {
	/* 1 */ { "in order", {
		U(0, T), U(1, T), U(2, T), U(3, T), U(4, T), U(5, T),
		U(0, F), U(3, F), U(5, F), C(6, T), U(6, T), U(6, F) } },
	/* 2 */ { "reordered inside the window", {
		U(10, T), U(5, T), U(7, T), U(6, T), U(9, T), U(8, T), U(7, F), U(0, T), U(0, F),
		U(200, T), U(100, T), U(199, T), U(11, T), U(10, F), U(201, T), U(150, T), U(150, F) } },
	/* 3 */ { "window edge from a first counter of W", {
		U(W, T), C(0, F), U(0, F), C(1, T), U(1, T), U(1, F), U(W - 1, T), U(W - 1, F),
		U(W + 1, T), C(1, F), C(2, T), U(2, T), U(2, F), C(3, T), U(3, T) } },
	/* 4 */ { "exactly at the edge and one past it", {
		U(100000, T), C(100000 - (W - 1), T), C(100000 - W, F), C(100000 - W - 1, F),
		U(100000 - (W - 1), T), U(100000 - (W - 1), F), U(100000 - W, F),
		U(100001, T), C(100000 - (W - 1), F), C(100001 - (W - 1), T),
		U(100001 - (W - 1), T), U(100001 - (W - 1), F), U(100001 - W, F) } },
	/* 5 */ { "duplicate", {
		U(42, T), U(42, F), C(42, F), U(43, T), U(42, F), U(43, F),
		U(42 + W - 1, T), U(42, F), U(42 + W, T), U(42, F), C(43, F), U(42 + W, F),
		C(44, T), U(44, T), U(44, F) } },
	/* 6 */ { "wrap to the next 64-bit block", {
		U(62, T), U(63, T), U(64, T), U(63, F), U(64, F), U(65, T), U(127, T), U(128, T),
		U(126, T), U(126, F), U(191, T), U(192, T), U(1, T), U(62, F), U(0, T), U(0, F) } },
	/* 7 */ { "moderate jump clears only the blocks it skips", {
		U(100, T), U(100 + 64 * 50, T), U(100, F), U(101, T), U(100 + 64 * 50 - 1, T),
		U(64 * 1000 + 63, T), U(64 * 1127, T), U(64 * 1000 + 63, F), U(64 * 1000 + 62, T),
		U(64 * 1000 + 1, T), U(64 * 1000, F), U(64 * 1127 - 1, T) } },
	/* 8 */ { "wrap to the start of the ring", {
		U(0, T), U(5, T), U(63, T), U(8191, T), U(0, F), U(63, F), U(64, T),
		U(8192 + 63, T), U(8192, T), U(8192 + 5, T), U(8192, F), U(8192 + 5, F), U(64, F),
		U(128, T), U(127, F), U(8191, F), U(8190, T),
		U(8192 * 2 + 5, T), U(8192 + 5, F), U(8192 * 2 + 5 - (W - 1), T), U(8192 * 2 + 5 - W, F),
		U(8192 + 64 * 2, T), U(8192 + 63, F) } },
	/* 9 */ { "second lap of the ring, short jumps", {
		U(8192 + 64 * 3, T), U(8192 * 2 + 64 * 3 - 64, T), U(8192 * 2 + 64 * 3, T),
		U(8192 * 2 + 64 * 3 - 1, T), U(8192 * 2 + 64 * 3 - 64, F), U(8192 * 2 + 64 * 3 - 65, T) } },
	/* 10 */ { "far jump", {
		U(1, T), U(2, T), U(3, T), U(1000000, T), U(3, F), U(0, F),
		C(1000000 - (W - 1), T), C(1000000 - W, F), U(999999, T), U(999999, F),
		U(1000000 + 8192, T), U(999999, F), U(1000000 + 8192 - (W - 1), T),
		U(1000000 + 64, F), U(1000000 + 66, T), U(1000000 + 8192 - W, F),
		U(1ULL << 62, T), U(1000000 + 8192, F), U((1ULL << 62) - 1, T),
		U((1ULL << 62) - (W - 1), T), U((1ULL << 62) - W, F), U(1ULL << 62, F) } },
	/* 11 */ { "REJECT_AFTER_MESSAGES", {
		U(REJ, F), C(REJ, F), U(UINT64_MAX, F), C(REJ - 1, T),
		U(REJ - 1, T), U(REJ - 1, F), U(REJ, F), U(REJ + 1, F), U(UINT64_MAX, F),
		U(REJ - 2, T), U(REJ - 1 - (W - 1), T), U(REJ - 1 - W, F), C(0, F) } },
	/* 12 */ { "jump from 0 to the last counter", {
		U(0, T), U(REJ, F), U(REJ - 1, T), U(0, F), U(REJ - 1, F), U(REJ - 64, T) } },
	/* 13 */ { "first counter large, then older ones", {
		U(5000, T), U(0, T), U(4999, T), U(5000, F), U(1, T), U(0, F), U(5001, T) } },
	/* 14 */ { "greatest counter in the middle of a block", {
		U(64 * 7 + 31, T), U(64 * 7 + 32, T), U(64 * 7 + 30, T), U(64 * 7, T), U(64 * 7 - 1, T),
		U(64 * 7 + 31, F), U(64 * 8 - 1, T), U(64 * 8 - 2, T), U(64 * 8 - 1, F) } },
};

static void snapshot(struct nt_replay *copy, const struct nt_replay *r)
{
	memcpy(copy, r, sizeof(*copy));
}

static bool same(const struct nt_replay *a, const struct nt_replay *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

START_TEST(test_edge_cases)
{
	const struct edge_case *ec = &edge_cases[_i];
	struct nt_replay r, before;

	nt_replay_init(&r);
	for (size_t s = 0; s < sizeof(ec->steps) / sizeof(ec->steps[0]) && ec->steps[s].op != END; s++) {
		const struct step *st = &ec->steps[s];
		bool got;

		snapshot(&before, &r);
		got = nt_replay_check(&r, st->counter);
		ck_assert_msg(got == st->accept, "case %d (%s) step %zu: check(%" PRIu64 ") = %d, want %d",
			      _i + 1, ec->name, s + 1, st->counter, got, st->accept);
		ck_assert_msg(same(&before, &r), "case %d step %zu: check() changed the window", _i + 1, s + 1);
		if (st->op == CHK)
			continue;

		got = nt_replay_update(&r, st->counter);
		ck_assert_msg(got == st->accept, "case %d (%s) step %zu: update(%" PRIu64 ") = %d, want %d",
			      _i + 1, ec->name, s + 1, st->counter, got, st->accept);
		if (!got) {
			ck_assert_msg(same(&before, &r), "case %d step %zu: rejected update changed the window",
				      _i + 1, s + 1);
		} else {
			uint64_t want_greatest = before.any && before.greatest > st->counter ? before.greatest
											  : st->counter;
			ck_assert(r.any);
			ck_assert_uint_eq(r.greatest, want_greatest);
			ck_assert_msg(!nt_replay_check(&r, st->counter), "case %d step %zu: accepted twice",
				      _i + 1, s + 1);
		}
	}
}
END_TEST

START_TEST(test_zero_initialized_is_empty)
{
	static struct nt_replay zeroed; /* never passed to nt_replay_init */
	struct nt_replay initialized;

	memset(&initialized, 0xa5, sizeof(initialized));
	nt_replay_init(&initialized);
	ck_assert(same(&zeroed, &initialized));

	ck_assert(nt_replay_check(&zeroed, 0));
	ck_assert(nt_replay_check(&zeroed, REJ - 1));
	ck_assert(!nt_replay_check(&zeroed, REJ));
	ck_assert(nt_replay_update(&zeroed, 0));
	ck_assert(!nt_replay_update(&zeroed, 0));
	ck_assert(!nt_replay_check(&zeroed, 0));
	ck_assert(nt_replay_update(&zeroed, 1));
}
END_TEST

START_TEST(test_init_empties_a_used_window)
{
	struct nt_replay r;

	nt_replay_init(&r);
	for (uint64_t c = 0; c < 3 * NT_REPLAY_BITS; c += 3)
		ck_assert(nt_replay_update(&r, c));
	nt_replay_init(&r);
	for (uint64_t c = 0; c < 3 * NT_REPLAY_BITS; c += 3)
		ck_assert(nt_replay_update(&r, c));
}
END_TEST

/* ---- seeded PRNG (xorshift64*) ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n; /* the tiny modulo bias does not matter here */
}

static uint64_t test_seed(void)
{
	const char *s = getenv("NT_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : 0x5eed6479ULL;
}

START_TEST(test_check_never_mutates)
{
	struct nt_replay r, before;

	rng_state = test_seed() | 1;
	nt_replay_init(&r);
	for (int i = 0; i < 20000; i++)
		(void)nt_replay_update(&r, 1000000 + rnd_below(3 * NT_REPLAY_BITS));
	snapshot(&before, &r);
	for (int i = 0; i < 100000; i++) {
		uint64_t c = i % 4 == 0 ? rnd() : r.greatest - W - 100 + rnd_below(W + 300);
		(void)nt_replay_check(&r, c);
	}
	ck_assert(same(&before, &r));
}
END_TEST

/* ---- the naive reference: every accepted counter, in an open-addressing set ---- */

#define SET_BITS 18
#define SET_SIZE (1u << SET_BITS)

struct ref_model {
	bool any;
	uint64_t greatest;
	uint64_t *slots; /* counter + 1; 0 is empty (counters stay below REJ, so no wrap) */
	size_t count;
};

static size_t set_home(uint64_t key)
{
	return (size_t)((key * 0x9e3779b97f4a7c15ULL) >> (64 - SET_BITS));
}

static bool set_has(const struct ref_model *m, uint64_t counter)
{
	for (size_t i = set_home(counter + 1);; i = (i + 1) % SET_SIZE) {
		if (m->slots[i] == 0)
			return false;
		if (m->slots[i] == counter + 1)
			return true;
	}
}

static void set_add(struct ref_model *m, uint64_t counter)
{
	size_t i = set_home(counter + 1);

	while (m->slots[i] != 0)
		i = (i + 1) % SET_SIZE;
	m->slots[i] = counter + 1;
	m->count++;
	ck_assert_uint_lt(m->count, SET_SIZE / 2);
}

static void ref_reset(struct ref_model *m)
{
	m->any = false;
	m->greatest = 0;
	m->count = 0;
	memset(m->slots, 0, SET_SIZE * sizeof(m->slots[0]));
}

/* The rule of replay.h, written out literally. */
static bool ref_accepts(const struct ref_model *m, uint64_t c)
{
	if (c >= REJ || set_has(m, c))
		return false;
	if (!m->any || c > m->greatest)
		return true;
	return m->greatest - c < W;
}

static bool ref_update(struct ref_model *m, uint64_t c)
{
	if (!ref_accepts(m, c))
		return false;
	set_add(m, c);
	if (!m->any || c > m->greatest)
		m->greatest = c;
	m->any = true;
	return true;
}

/* ---- the randomized comparison ---- */

enum kind { K_STEP, K_BEHIND, K_EDGE, K_DUP, K_FAR_BEHIND, K_JUMP, K_BLOCK_JUMP, K_BIG_JUMP,
	    K_TOO_BIG, K_ANY, K_COUNT };

static const char *const kind_names[K_COUNT] = {
	"small step", "reordered", "window edge", "duplicate", "far behind", "jump",
	"block jump", "big jump", ">= REJECT", "any value",
};

static uint64_t behind(uint64_t g, uint64_t off)
{
	return off <= g ? g - off : g - off % (g + 1);
}

static uint64_t next_counter(const struct ref_model *m, uint64_t base, const uint64_t *recent,
			     size_t nrecent, enum kind *kind)
{
	uint64_t g = m->any ? m->greatest : base;
	uint64_t r = rnd_below(100);

	if (r < 35) {
		*kind = K_STEP;
		return g + 1 + rnd_below(3);
	} else if (r < 55) {
		*kind = K_BEHIND;
		return behind(g, rnd_below(W));
	} else if (r < 65) {
		*kind = K_EDGE;
		return behind(g, W - 3 + rnd_below(6));
	} else if (r < 75 && nrecent > 0) {
		*kind = K_DUP;
		return recent[rnd_below(nrecent)];
	} else if (r < 75) {
		*kind = K_STEP;
		return g + 1;
	} else if (r < 82) {
		*kind = K_FAR_BEHIND;
		return behind(g, rnd_below(4 * (uint64_t)NT_REPLAY_BITS));
	} else if (r < 90) {
		*kind = K_JUMP;
		return g + 1 + rnd_below(3 * (uint64_t)NT_REPLAY_BITS);
	} else if (r < 93) {
		*kind = K_BLOCK_JUMP; /* around one lap of the ring */
		return g + 64 * (BLK - 2 + rnd_below(4)) + rnd_below(5) - 2;
	} else if (r < 96) {
		*kind = K_BIG_JUMP;
		return g + 1 + rnd_below(1ULL << 40);
	} else if (r < 98) {
		*kind = K_TOO_BIG;
		return rnd_below(2) ? REJ + rnd_below(16) : UINT64_MAX - rnd_below(16);
	}
	*kind = K_ANY;
	return rnd();
}

#define OPS    1000000
#define EPOCHS 16

START_TEST(test_randomized_against_reference)
{
	/* Each epoch restarts both models from empty, first counter near base. */
	static const uint64_t bases[EPOCHS] = {
		0, 0, 1, 63, 64, W - 1, W, 8191, 8192, 1000000, (1ULL << 32) - 5, 1ULL << 63,
		REJ - 3 * (uint64_t)NT_REPLAY_BITS, REJ - 200000, REJ - 1, UINT64_MAX,
	};
	struct ref_model m = { .slots = calloc(SET_SIZE, sizeof(uint64_t)) };
	struct nt_replay r, before;
	uint64_t recent[64] = { 0 };
	uint64_t seed = test_seed(), mismatches = 0, sweeps = 0, ops = 0;
	uint64_t seen[K_COUNT][2] = { { 0 } }; /* [kind][accepted] */

	ck_assert_ptr_nonnull(m.slots);
	rng_state = seed | 1;
	for (int epoch = 0; epoch < EPOCHS; epoch++) {
		size_t nrecent = 0;

		ref_reset(&m);
		nt_replay_init(&r);
		for (int i = 0; i < OPS / EPOCHS; i++, ops++) {
			enum kind kind;
			uint64_t c = i == 0 ? bases[epoch] : next_counter(&m, bases[epoch], recent, nrecent, &kind);
			bool want, got, only_check = i > 0 && rnd_below(4) == 0;

			if (i == 0)
				kind = K_ANY;

			/* Now and then compare every counter around the window's edges and top. */
			if (m.any && i % 4096 == 0) {
				uint64_t lo = m.greatest > W + 70 ? m.greatest - W - 70 : 0;

				sweeps++;
				for (uint64_t x = lo; x <= m.greatest + 70 && x >= lo; x++) {
					if (nt_replay_check(&r, x) != ref_accepts(&m, x) && mismatches++ < 10)
						fprintf(stderr, "seed %#" PRIx64 " epoch %d op %d sweep: check(%" PRIu64
							") disagrees (greatest %" PRIu64 ")\n",
							seed, epoch, i, x, m.greatest);
				}
			}

			snapshot(&before, &r);
			want = ref_accepts(&m, c);
			got = nt_replay_check(&r, c);
			if (!same(&before, &r) || got != want) {
				if (mismatches++ < 10)
					fprintf(stderr, "seed %#" PRIx64 " epoch %d op %d: check(%" PRIu64
						") = %d, want %d (greatest %" PRIu64 ")\n",
						seed, epoch, i, c, got, want, m.greatest);
			}
			if (only_check)
				continue;

			want = ref_update(&m, c);
			got = nt_replay_update(&r, c);
			seen[kind][got]++;
			if (got != want || (!got && !same(&before, &r)) || (want && r.greatest != m.greatest)) {
				if (mismatches++ < 10)
					fprintf(stderr, "seed %#" PRIx64 " epoch %d op %d: update(%" PRIu64
						") = %d, want %d (greatest %" PRIu64 ")\n",
						seed, epoch, i, c, got, want, m.greatest);
			}
			if (want)
				recent[nrecent < 64 ? nrecent++ : rnd_below(64)] = c;

		}
	}
	free(m.slots);

	if (getenv("NT_TEST_VERBOSE")) {
		for (int k = 0; k < K_COUNT; k++)
			fprintf(stderr, "%-12s accepted %7" PRIu64 "  rejected %7" PRIu64 "\n", kind_names[k],
				seen[k][1], seen[k][0]);
		fprintf(stderr, "%" PRIu64 " ops, %" PRIu64 " sweeps, %" PRIu64 " mismatches\n", ops, sweeps,
			mismatches);
	}
	ck_assert_uint_eq(ops, OPS);
	ck_assert_msg(mismatches == 0, "%" PRIu64 " mismatches with seed %#" PRIx64, mismatches, seed);
	ck_assert_uint_gt(sweeps, 200);
	/* The mix must really reach both outcomes where both are possible (a duplicate or a
	 * counter >= REJECT never is). */
	for (int k = 0; k < K_COUNT; k++) {
		bool one_sided = k == K_TOO_BIG || k == K_DUP;

		ck_assert_msg(seen[k][1] > 0 || one_sided, "no %s accepted", kind_names[k]);
		ck_assert_msg(seen[k][0] > 0, "no %s rejected", kind_names[k]);
	}
	ck_assert_uint_eq(seen[K_TOO_BIG][1], 0);
	ck_assert_uint_eq(seen[K_DUP][1], 0);
}
END_TEST

static Suite *replay_suite(void)
{
	Suite *s = suite_create("replay");
	TCase *tc = tcase_create("edge cases");
	TCase *tr = tcase_create("randomized");

	tcase_add_loop_test(tc, test_edge_cases, 0, (int)(sizeof(edge_cases) / sizeof(edge_cases[0])));
	tcase_add_test(tc, test_zero_initialized_is_empty);
	tcase_add_test(tc, test_init_empties_a_used_window);
	tcase_add_test(tc, test_check_never_mutates);
	suite_add_tcase(s, tc);

	tcase_set_timeout(tr, 300); /* valgrind runs it about 50 times slower */
	tcase_add_test(tr, test_randomized_against_reference);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(replay_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
