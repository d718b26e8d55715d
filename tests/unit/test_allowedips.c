/* Allowed IPs trie: fixed cases, then a randomized differential test against a naive
 * linear-scan list (test-plan.md: 2,000 peers, >= 10^6 lookups, removals in rounds,
 * 0 mismatches, empty at the end). NT_TEST_QUICK=1 (or running under valgrind) scales
 * the lookup count down; NT_TEST_SEED=n changes the seed. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/allowedips.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define NT_ON_VALGRIND() RUNNING_ON_VALGRIND
#endif
#endif
#ifndef NT_ON_VALGRIND
#define NT_ON_VALGRIND() 0
#endif

struct peer {
	int id;
	struct nt_allowedips_owner owner;
};

static struct peer *peer_of(struct nt_allowedips_owner *o)
{
	return o ? (struct peer *)((char *)o - offsetof(struct peer, owner)) : NULL;
}

static int family_of(const char *s)
{
	return strchr(s, ':') ? AF_INET6 : AF_INET;
}

static void parse(const char *s, uint8_t *out)
{
	ck_assert_msg(inet_pton(family_of(s), s, out) == 1, "bad address %s", s);
}

static int ins(struct nt_allowedips *t, const char *s, uint8_t cidr, struct peer *p)
{
	uint8_t a[16];

	parse(s, a);
	return nt_allowedips_insert(t, family_of(s), a, cidr, &p->owner);
}

static int rem(struct nt_allowedips *t, const char *s, uint8_t cidr, struct peer *p)
{
	uint8_t a[16];

	parse(s, a);
	return nt_allowedips_remove(t, family_of(s), a, cidr, &p->owner);
}

static struct peer *look(const struct nt_allowedips *t, const char *s)
{
	uint8_t a[16];

	parse(s, a);
	return peer_of(nt_allowedips_lookup(t, family_of(s), a));
}

struct listing {
	char buf[1024];
	int stop_after; /* 0: never */
	int seen;
};

static int list_fn(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	struct listing *l = ctx;
	char s[INET6_ADDRSTRLEN];
	size_t len = strlen(l->buf);

	ck_assert_ptr_nonnull(inet_ntop(family, addr, s, sizeof(s)));
	snprintf(l->buf + len, sizeof(l->buf) - len, "%s%s/%u", len ? " " : "", s, cidr);
	l->seen++;
	return l->stop_after && l->seen == l->stop_after ? 42 : 0;
}

static const char *list(struct peer *p)
{
	static struct listing l;

	memset(&l, 0, sizeof(l));
	ck_assert_int_eq(nt_allowedips_foreach(&p->owner, list_fn, &l), 0);
	ck_assert_int_eq(l.seen, (int)p->owner.count);
	return l.buf;
}

START_TEST(test_v4_overlapping)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } }, c = { 3, { 0 } }, d = { 4, { 0 } };

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_null(look(t, "10.0.0.1"));
	ck_assert_int_eq(ins(t, "10.1.2.3", 32, &d), 0);
	ck_assert_int_eq(ins(t, "10.0.0.0", 8, &a), 0);
	ck_assert_int_eq(ins(t, "10.1.2.0", 24, &c), 0);
	ck_assert_int_eq(ins(t, "10.1.0.0", 16, &b), 0);
	ck_assert_uint_eq(nt_allowedips_count(t), 4);

	ck_assert_ptr_eq(look(t, "10.2.3.4"), &a);
	ck_assert_ptr_eq(look(t, "10.255.255.255"), &a);
	ck_assert_ptr_eq(look(t, "10.1.3.4"), &b);
	ck_assert_ptr_eq(look(t, "10.1.2.4"), &c);
	ck_assert_ptr_eq(look(t, "10.1.2.2"), &c);
	ck_assert_ptr_eq(look(t, "10.1.2.3"), &d);
	ck_assert_ptr_null(look(t, "11.0.0.1"));
	ck_assert_ptr_null(look(t, "9.255.255.255"));
	ck_assert_ptr_null(look(t, "::a01:203")); /* families are separate */

	/* Siblings that diverge deep and shallow (glue nodes). */
	ck_assert_int_eq(ins(t, "10.1.2.2", 32, &a), 0);
	ck_assert_int_eq(ins(t, "192.168.0.0", 16, &b), 0);
	ck_assert_int_eq(ins(t, "128.0.0.0", 1, &c), 0);
	ck_assert_ptr_eq(look(t, "10.1.2.2"), &a);
	ck_assert_ptr_eq(look(t, "10.1.2.3"), &d);
	ck_assert_ptr_eq(look(t, "192.168.77.1"), &b);
	ck_assert_ptr_eq(look(t, "192.169.0.1"), &c);
	ck_assert_ptr_eq(look(t, "255.255.255.255"), &c);
	ck_assert_ptr_null(look(t, "127.255.255.255"));
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_v4_default_and_host)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } };

	ck_assert_int_eq(ins(t, "0.0.0.0", 0, &a), 0);
	ck_assert_ptr_eq(look(t, "0.0.0.0"), &a);
	ck_assert_ptr_eq(look(t, "255.255.255.255"), &a);
	ck_assert_ptr_eq(look(t, "1.2.3.4"), &a);
	ck_assert_int_eq(ins(t, "255.255.255.255", 32, &b), 0);
	ck_assert_int_eq(ins(t, "0.0.0.0", 32, &b), 0);
	ck_assert_ptr_eq(look(t, "255.255.255.255"), &b);
	ck_assert_ptr_eq(look(t, "255.255.255.254"), &a);
	ck_assert_ptr_eq(look(t, "0.0.0.0"), &b);
	ck_assert_ptr_eq(look(t, "0.0.0.1"), &a);
	ck_assert_int_eq(rem(t, "0.0.0.0", 0, &a), 0);
	ck_assert_ptr_null(look(t, "1.2.3.4"));
	ck_assert_ptr_eq(look(t, "255.255.255.255"), &b);
	ck_assert_str_eq(list(&b), "255.255.255.255/32 0.0.0.0/32");
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_v6)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } }, c = { 3, { 0 } }, d = { 4, { 0 } }, e = { 5, { 0 } };

	ck_assert_int_eq(ins(t, "::", 0, &a), 0);
	ck_assert_int_eq(ins(t, "2001:db8::", 32, &b), 0);
	ck_assert_int_eq(ins(t, "2001:db8:1:2::", 64, &c), 0);
	ck_assert_int_eq(ins(t, "2001:db8:1:2:8000::", 65, &d), 0); /* crosses the 64-bit word */
	ck_assert_int_eq(ins(t, "2001:db8:1:2::1", 128, &e), 0);
	ck_assert_int_eq(ins(t, "2001:db8:1:2::", 127, &d), 0);
	ck_assert_int_eq(ins(t, "2001:db8:1:2::", 63, &e), 0);

	ck_assert_ptr_eq(look(t, "fe80::1"), &a);
	ck_assert_ptr_eq(look(t, "2001:db8:ffff::1"), &b);
	ck_assert_ptr_eq(look(t, "2001:db8:1:3::1"), &e);       /* /63 */
	ck_assert_ptr_eq(look(t, "2001:db8:1:2:1234::"), &c);   /* /64, bit 64 clear */
	ck_assert_ptr_eq(look(t, "2001:db8:1:2:8234::"), &d);   /* /65 */
	ck_assert_ptr_eq(look(t, "2001:db8:1:2::1"), &e);       /* /128 */
	ck_assert_ptr_eq(look(t, "2001:db8:1:2::"), &d);        /* /127 */
	ck_assert_ptr_eq(look(t, "2001:db8:1:2::2"), &c);
	ck_assert_ptr_null(look(t, "10.0.0.1"));
	ck_assert_uint_eq(nt_allowedips_count(t), 7);

	ck_assert_int_eq(rem(t, "::", 0, &a), 0);
	ck_assert_ptr_null(look(t, "fe80::1"));
	ck_assert_int_eq(ins(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 128, &a), 0);
	ck_assert_ptr_eq(look(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), &a);
	ck_assert_ptr_null(look(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_masking)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } };

	ck_assert_int_eq(ins(t, "10.0.0.1", 24, &a), 0);
	ck_assert_int_eq(ins(t, "10.0.0.77", 24, &a), 0); /* the same prefix */
	ck_assert_int_eq(ins(t, "2001:db8::ffff", 64, &a), 0);
	ck_assert_int_eq(ins(t, "192.168.1.255", 0, &a), 0);
	ck_assert_uint_eq(nt_allowedips_count(t), 3);
	ck_assert_str_eq(list(&a), "10.0.0.0/24 2001:db8::/64 0.0.0.0/0");
	ck_assert_ptr_eq(look(t, "10.0.0.200"), &a);
	ck_assert_ptr_eq(look(t, "2001:db8::1:2:3:4"), &a);
	/* Removal masks the same way. */
	ck_assert_int_eq(rem(t, "10.0.0.99", 24, &a), 0);
	ck_assert_int_eq(rem(t, "2001:db8::abcd", 64, &a), 0);
	ck_assert_int_eq(rem(t, "1.2.3.4", 0, &a), 0);
	ck_assert_uint_eq(nt_allowedips_count(t), 0);
	ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_move_to_new_owner)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } };
	size_t mem;

	ck_assert_int_eq(ins(t, "10.0.0.0", 24, &a), 0);
	ck_assert_int_eq(ins(t, "10.0.1.0", 24, &a), 0);
	ck_assert_int_eq(ins(t, "10.9.0.0", 16, &b), 0);
	mem = nt_allowedips_memory(t);
	ck_assert_int_eq(ins(t, "10.0.0.0", 24, &b), 0);
	ck_assert_uint_eq(nt_allowedips_memory(t), mem);
	ck_assert_uint_eq(nt_allowedips_count(t), 3);
	ck_assert_ptr_eq(look(t, "10.0.0.5"), &b);
	ck_assert_ptr_eq(look(t, "10.0.1.5"), &a);
	ck_assert_uint_eq(a.owner.count, 1);
	ck_assert_uint_eq(b.owner.count, 2);
	ck_assert_str_eq(list(&a), "10.0.1.0/24");
	ck_assert_str_eq(list(&b), "10.9.0.0/16 10.0.0.0/24");
	ck_assert_int_eq(rem(t, "10.0.0.0", 24, &a), -ENOENT);
	ck_assert_ptr_eq(look(t, "10.0.0.5"), &b);
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_remove)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } };

	ck_assert_int_eq(rem(t, "10.0.0.0", 8, &a), -ENOENT); /* empty table */
	ck_assert_int_eq(ins(t, "10.0.0.0", 8, &a), 0);
	ck_assert_int_eq(ins(t, "10.1.0.0", 16, &b), 0);
	ck_assert_int_eq(ins(t, "10.1.1.0", 24, &a), 0);
	ck_assert_int_eq(ins(t, "10.1.2.0", 24, &a), 0);

	ck_assert_int_eq(rem(t, "10.1.0.0", 16, &a), -ENOENT); /* held by b */
	ck_assert_int_eq(rem(t, "10.1.0.0", 17, &b), -ENOENT); /* no such prefix */
	ck_assert_int_eq(rem(t, "10.1.0.0", 15, &b), -ENOENT);
	ck_assert_int_eq(rem(t, "10.1.3.0", 24, &a), -ENOENT);
	ck_assert_int_eq(rem(t, "10.1.0.0", 23, &a), -ENOENT); /* a glue node, owned by nobody */
	ck_assert_int_eq(rem(t, "11.0.0.0", 8, &a), -ENOENT);
	ck_assert_int_eq(rem(t, "10::", 8, &a), -ENOENT);
	ck_assert_uint_eq(nt_allowedips_count(t), 4);

	ck_assert_int_eq(rem(t, "10.1.0.0", 16, &b), 0); /* an inner node with children */
	ck_assert_int_eq(rem(t, "10.1.0.0", 16, &b), -ENOENT);
	ck_assert_ptr_eq(look(t, "10.1.3.1"), &a);
	ck_assert_ptr_eq(look(t, "10.1.1.1"), &a);
	ck_assert_uint_eq(b.owner.count, 0);
	ck_assert_ptr_null(b.owner.first);
	ck_assert_ptr_null(b.owner.last);
	ck_assert_int_eq(rem(t, "10.0.0.0", 8, &a), 0);
	ck_assert_ptr_null(look(t, "10.1.3.1"));
	ck_assert_ptr_eq(look(t, "10.1.2.1"), &a);
	ck_assert_str_eq(list(&a), "10.1.1.0/24 10.1.2.0/24");
	ck_assert_int_eq(rem(t, "10.1.2.0", 24, &a), 0);
	ck_assert_int_eq(rem(t, "10.1.1.0", 24, &a), 0);
	ck_assert_uint_eq(nt_allowedips_count(t), 0);
	ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_glue_becomes_owned)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } };
	size_t one, two;

	ck_assert_int_eq(ins(t, "10.0.0.0", 24, &a), 0);
	one = nt_allowedips_memory(t);
	ck_assert_int_eq(ins(t, "10.0.1.0", 24, &a), 0);
	two = nt_allowedips_memory(t);
	ck_assert_uint_eq(two, 3 * one); /* two leaves and a glue node at /23 */
	ck_assert_int_eq(ins(t, "10.0.0.0", 23, &b), 0); /* takes over the glue node */
	ck_assert_uint_eq(nt_allowedips_memory(t), two);
	ck_assert_ptr_eq(look(t, "10.0.1.9"), &a);
	ck_assert_int_eq(rem(t, "10.0.1.0", 24, &a), 0);
	ck_assert_ptr_eq(look(t, "10.0.1.9"), &b);
	ck_assert_uint_eq(nt_allowedips_memory(t), 2 * one);
	ck_assert_int_eq(rem(t, "10.0.0.0", 23, &b), 0); /* spliced out: one child left */
	ck_assert_uint_eq(nt_allowedips_memory(t), one);
	ck_assert_ptr_eq(look(t, "10.0.0.9"), &a);
	ck_assert_ptr_null(look(t, "10.0.1.9"));
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_remove_owner)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } }, c = { 3, { 0 } };
	size_t mem_b;

	ck_assert_int_eq(ins(t, "10.1.0.0", 16, &b), 0);
	ck_assert_int_eq(ins(t, "fd00::2", 128, &b), 0);
	mem_b = nt_allowedips_memory(t);
	ck_assert_int_eq(ins(t, "10.0.0.0", 8, &a), 0);
	ck_assert_int_eq(ins(t, "10.1.2.0", 24, &a), 0);
	ck_assert_int_eq(ins(t, "fd00::", 64, &a), 0);
	ck_assert_int_eq(ins(t, "fd00::1", 128, &a), 0);
	ck_assert_int_eq(ins(t, "0.0.0.0", 0, &a), 0);

	nt_allowedips_remove_owner(t, &c.owner); /* nothing to do */
	nt_allowedips_remove_owner(t, &a.owner);
	ck_assert_uint_eq(a.owner.count, 0);
	ck_assert_ptr_null(a.owner.first);
	ck_assert_ptr_null(a.owner.last);
	ck_assert_uint_eq(nt_allowedips_count(t), 2);
	ck_assert_uint_eq(nt_allowedips_memory(t), mem_b);
	ck_assert_ptr_eq(look(t, "10.1.2.3"), &b);
	ck_assert_ptr_eq(look(t, "fd00::2"), &b);
	ck_assert_ptr_null(look(t, "fd00::1"));
	ck_assert_ptr_null(look(t, "10.2.0.0"));
	ck_assert_ptr_null(look(t, "1.1.1.1"));

	/* The owner is reusable. */
	ck_assert_int_eq(ins(t, "10.2.0.0", 16, &a), 0);
	ck_assert_ptr_eq(look(t, "10.2.0.1"), &a);
	nt_allowedips_remove_owner(t, &a.owner);
	nt_allowedips_remove_owner(t, &b.owner);
	ck_assert_uint_eq(nt_allowedips_count(t), 0);
	ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_foreach_order)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } }, b = { 2, { 0 } };
	struct listing l;

	ck_assert_int_eq(ins(t, "10.0.0.0", 8, &a), 0);
	ck_assert_int_eq(ins(t, "fd00::", 8, &a), 0);
	ck_assert_int_eq(ins(t, "192.168.0.0", 16, &b), 0);
	ck_assert_int_eq(ins(t, "1.2.3.4", 32, &a), 0);
	ck_assert_int_eq(ins(t, "::", 0, &a), 0);
	ck_assert_str_eq(list(&a), "10.0.0.0/8 fd00::/8 1.2.3.4/32 ::/0");
	ck_assert_int_eq(ins(t, "fd00::", 8, &a), 0); /* re-insert: keeps its place */
	ck_assert_str_eq(list(&a), "10.0.0.0/8 fd00::/8 1.2.3.4/32 ::/0");
	ck_assert_int_eq(ins(t, "192.168.0.0", 16, &a), 0); /* moved from b: goes last */
	ck_assert_str_eq(list(&a), "10.0.0.0/8 fd00::/8 1.2.3.4/32 ::/0 192.168.0.0/16");
	ck_assert_str_eq(list(&b), "");
	ck_assert_int_eq(rem(t, "1.2.3.4", 32, &a), 0);
	ck_assert_int_eq(ins(t, "1.2.3.4", 32, &a), 0); /* removed then added: last */
	ck_assert_str_eq(list(&a), "10.0.0.0/8 fd00::/8 ::/0 192.168.0.0/16 1.2.3.4/32");

	memset(&l, 0, sizeof(l));
	l.stop_after = 2;
	ck_assert_int_eq(nt_allowedips_foreach(&a.owner, list_fn, &l), 42);
	ck_assert_str_eq(l.buf, "10.0.0.0/8 fd00::/8");
	nt_allowedips_free(t);
}
END_TEST

START_TEST(test_einval)
{
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer a = { 1, { 0 } };
	uint8_t addr[16] = { 10 };

	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, addr, 33, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET6, addr, 129, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET6, addr, 255, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_UNIX, addr, 8, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, NULL, 8, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, addr, 8, NULL), -EINVAL);
	ck_assert_int_eq(nt_allowedips_remove(t, AF_INET, addr, 33, &a.owner), -EINVAL);
	ck_assert_int_eq(nt_allowedips_remove(t, 12345, addr, 8, &a.owner), -EINVAL);
	ck_assert_uint_eq(nt_allowedips_count(t), 0);
	ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	ck_assert_uint_eq(a.owner.count, 0);
	ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, addr, 32, &a.owner), 0);
	ck_assert_ptr_null(nt_allowedips_lookup(t, AF_UNIX, addr));
	ck_assert_ptr_eq(nt_allowedips_lookup(t, AF_INET, addr), &a.owner);
	nt_allowedips_free(t);
	nt_allowedips_free(NULL);
}
END_TEST

/* ---- randomized differential test ---- */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	/* xorshift64* */
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * UINT64_C(0x2545F4914F6CDD1D);
}

static uint32_t below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rnd(r) >> 32) * n) >> 32);
}

static bool quick_mode(void)
{
	return getenv("NT_TEST_QUICK") || NT_ON_VALGRIND();
}

static uint64_t test_seed(void)
{
	const char *s = getenv("NT_TEST_SEED");

	return s ? strtoull(s, NULL, 0) | 1 : UINT64_C(0x9e3779b97f4a7c15);
}

/* The naive model: one flat list per family, kept sorted by cidr (longest first), so a
 * lookup is a linear scan that stops at the first entry containing the address. Words
 * and masks are built bit by bit, independently of the trie's code. */
struct ref_entry {
	uint64_t key[2], mask[2];
	uint64_t seq; /* insertion order for foreach */
	int owner;
	uint8_t cidr;
};

struct ref {
	struct ref_entry *e[2];
	size_t n[2], cap;
	uint64_t seq;
};

static void bytes_to_words(int v6, const uint8_t *addr, uint64_t w[2])
{
	int len = v6 ? 16 : 4;

	w[0] = w[1] = 0;
	for (int i = 0; i < len * 8; i++)
		if (addr[i / 8] & (0x80 >> (i % 8)))
			w[i / 64] |= UINT64_C(1) << (63 - i % 64);
}

static void words_to_bytes(int v6, const uint64_t w[2], uint8_t *addr)
{
	int len = v6 ? 16 : 4;

	memset(addr, 0, 16);
	for (int i = 0; i < len * 8; i++)
		if (w[i / 64] & (UINT64_C(1) << (63 - i % 64)))
			addr[i / 8] |= (uint8_t)(0x80 >> (i % 8));
}

static void ref_mask(unsigned cidr, uint64_t m[2])
{
	m[0] = m[1] = 0;
	for (unsigned i = 0; i < cidr; i++)
		m[i / 64] |= UINT64_C(1) << (63 - i % 64);
}

static struct ref_entry *ref_find(struct ref *r, int v6, const uint64_t key[2], unsigned cidr)
{
	for (size_t i = 0; i < r->n[v6]; i++) {
		struct ref_entry *e = &r->e[v6][i];

		if (e->cidr == cidr && e->key[0] == key[0] && e->key[1] == key[1])
			return e;
	}
	return NULL;
}

static void ref_insert(struct ref *r, int v6, const uint64_t addr[2], unsigned cidr, int owner)
{
	struct ref_entry ne = { .cidr = (uint8_t)cidr, .owner = owner };
	struct ref_entry *e;
	size_t i;

	ref_mask(cidr, ne.mask);
	ne.key[0] = addr[0] & ne.mask[0];
	ne.key[1] = addr[1] & ne.mask[1];
	e = ref_find(r, v6, ne.key, cidr);
	if (e) {
		if (e->owner != owner) {
			e->owner = owner;
			e->seq = ++r->seq;
		}
		return;
	}
	ne.seq = ++r->seq;
	ck_assert_uint_lt(r->n[v6], r->cap);
	for (i = 0; i < r->n[v6] && r->e[v6][i].cidr >= cidr; i++)
		;
	memmove(&r->e[v6][i + 1], &r->e[v6][i], (r->n[v6] - i) * sizeof(ne));
	r->e[v6][i] = ne;
	r->n[v6]++;
}

static void ref_delete(struct ref *r, int v6, size_t i)
{
	memmove(&r->e[v6][i], &r->e[v6][i + 1], (r->n[v6] - i - 1) * sizeof(struct ref_entry));
	r->n[v6]--;
}

static int ref_lookup(const struct ref *r, int v6, const uint64_t a[2])
{
	for (size_t i = 0; i < r->n[v6]; i++) {
		const struct ref_entry *e = &r->e[v6][i];

		if ((((a[0] ^ e->key[0]) & e->mask[0]) | ((a[1] ^ e->key[1]) & e->mask[1])) == 0)
			return e->owner;
	}
	return -1;
}

#define N_OWNERS 2000
#define N_BASES 6

struct world {
	struct rng rng;
	struct ref ref;
	struct nt_allowedips *t;
	struct peer *peers;
	uint64_t bases[2][N_BASES][2];
	unsigned long lookups, mismatches;
};

static unsigned max_bits(int v6)
{
	return v6 ? 128 : 32;
}

/* A random address near one of a few bases: equal to the base up to a random depth, so
 * prefixes nest and share long common runs. */
static void random_addr(struct world *w, int v6, uint64_t a[2])
{
	const uint64_t *base = w->bases[v6][below(&w->rng, N_BASES)];
	unsigned depth = below(&w->rng, max_bits(v6) + 1);
	uint64_t keep[2], r[2] = { rnd(&w->rng), rnd(&w->rng) };

	if (!v6)
		r[0] &= UINT64_C(0xffffffff00000000), r[1] = 0;
	if (below(&w->rng, 8) == 0) {
		/* Now and then, anywhere at all. */
		a[0] = r[0], a[1] = r[1];
		return;
	}
	ref_mask(depth, keep);
	a[0] = (base[0] & keep[0]) | (r[0] & ~keep[0]);
	a[1] = (base[1] & keep[1]) | (r[1] & ~keep[1]);
}

static unsigned random_cidr(struct world *w, int v6)
{
	static const uint8_t common4[] = { 8, 12, 16, 20, 23, 24, 25, 28, 30, 31, 32, 32, 32 };
	static const uint8_t common6[] = { 16, 32, 48, 56, 60, 63, 64, 64, 65, 96, 112, 120, 127, 128, 128 };
	uint32_t k = below(&w->rng, 1000);

	if (k == 0)
		return 0; /* a rare default route */
	if (k < 400)
		return 1 + below(&w->rng, max_bits(v6));
	return v6 ? common6[below(&w->rng, sizeof(common6))] : common4[below(&w->rng, sizeof(common4))];
}

static void random_insert(struct world *w, int owner)
{
	int v6 = (int)below(&w->rng, 2);
	unsigned cidr = random_cidr(w, v6);
	uint64_t a[2];
	uint8_t bytes[16];

	random_addr(w, v6, a); /* deliberately not masked: the trie must mask */
	words_to_bytes(v6, a, bytes);
	ck_assert_int_eq(nt_allowedips_insert(w->t, v6 ? AF_INET6 : AF_INET, bytes, (uint8_t)cidr,
					      &w->peers[owner].owner), 0);
	ref_insert(&w->ref, v6, a, cidr, owner);
}

static void check_lookups(struct world *w, unsigned long n)
{
	for (unsigned long i = 0; i < n; i++) {
		int v6 = (int)below(&w->rng, 2), want;
		uint64_t a[2];
		uint8_t bytes[16];
		struct peer *got;

		if (w->ref.n[v6] && below(&w->rng, 2)) {
			/* Inside a present prefix, with the host bits random. */
			const struct ref_entry *e = &w->ref.e[v6][below(&w->rng, (uint32_t)w->ref.n[v6])];
			uint64_t r[2] = { rnd(&w->rng), rnd(&w->rng) };

			a[0] = e->key[0] | (r[0] & ~e->mask[0]);
			a[1] = e->key[1] | (r[1] & ~e->mask[1]);
			if (!v6)
				a[0] &= UINT64_C(0xffffffff00000000), a[1] = 0;
		} else {
			random_addr(w, v6, a);
		}
		words_to_bytes(v6, a, bytes);
		got = peer_of(nt_allowedips_lookup(w->t, v6 ? AF_INET6 : AF_INET, bytes));
		want = ref_lookup(&w->ref, v6, a);
		w->lookups++;
		if ((got ? got->id : -1) != want) {
			if (w->mismatches++ < 5)
				fprintf(stderr, "mismatch: v6=%d %016llx%016llx got %d want %d\n", v6,
					(unsigned long long)a[0], (unsigned long long)a[1], got ? got->id : -1,
					want);
		}
	}
}

struct collect {
	struct ref_entry *out;
	size_t n, cap;
	int v6[4096];
};

static int collect_fn(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	struct collect *c = ctx;
	struct ref_entry *e;

	ck_assert_uint_lt(c->n, c->cap);
	e = &c->out[c->n];
	c->v6[c->n] = family == AF_INET6;
	bytes_to_words(family == AF_INET6, addr, e->key);
	e->cidr = cidr;
	c->n++;
	return 0;
}

struct ordered {
	struct ref_entry e;
	int v6;
};

static int cmp_owner_seq(const void *pa, const void *pb)
{
	const struct ordered *a = pa, *b = pb;

	if (a->e.owner != b->e.owner)
		return a->e.owner < b->e.owner ? -1 : 1;
	return a->e.seq < b->e.seq ? -1 : a->e.seq > b->e.seq;
}

/* Counts, every owner's foreach order, and that the trie is exactly as big as a fresh
 * one holding the same prefixes (the shape is unique, so churn must not leave glue). */
static void check_structure(struct world *w)
{
	size_t total = w->ref.n[0] + w->ref.n[1], k = 0;
	struct ordered *all = malloc((total + 1) * sizeof(*all));
	struct collect *c = malloc(sizeof(*c));
	struct nt_allowedips *fresh = nt_allowedips_new();
	struct nt_allowedips_owner dummy = { 0 };

	ck_assert_ptr_nonnull(all);
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_nonnull(fresh);
	ck_assert_uint_eq(nt_allowedips_count(w->t), total);
	for (int v6 = 0; v6 < 2; v6++)
		for (size_t i = 0; i < w->ref.n[v6]; i++) {
			uint8_t bytes[16];

			all[k].e = w->ref.e[v6][i];
			all[k++].v6 = v6;
			words_to_bytes(v6, w->ref.e[v6][i].key, bytes);
			ck_assert_int_eq(nt_allowedips_insert(fresh, v6 ? AF_INET6 : AF_INET, bytes,
							      w->ref.e[v6][i].cidr, &dummy), 0);
		}
	ck_assert_uint_eq(nt_allowedips_memory(fresh), nt_allowedips_memory(w->t));
	nt_allowedips_free(fresh);
	qsort(all, total, sizeof(*all), cmp_owner_seq);

	c->cap = sizeof(c->v6) / sizeof(c->v6[0]);
	c->out = malloc(c->cap * sizeof(*c->out));
	ck_assert_ptr_nonnull(c->out);
	k = 0;
	for (int o = 0; o < N_OWNERS; o++) {
		size_t start = k;

		while (k < total && all[k].e.owner == o)
			k++;
		c->n = 0;
		ck_assert_int_eq(nt_allowedips_foreach(&w->peers[o].owner, collect_fn, c), 0);
		ck_assert_uint_eq(w->peers[o].owner.count, k - start);
		ck_assert_uint_eq(c->n, k - start);
		for (size_t j = 0; j < c->n; j++) {
			ck_assert_int_eq(c->v6[j], all[start + j].v6);
			ck_assert_uint_eq(c->out[j].cidr, all[start + j].e.cidr);
			ck_assert(c->out[j].key[0] == all[start + j].e.key[0]);
			ck_assert(c->out[j].key[1] == all[start + j].e.key[1]);
		}
	}
	ck_assert_uint_eq(k, total);
	free(c->out);
	free(c);
	free(all);
}

START_TEST(test_random_differential)
{
	struct world *w = calloc(1, sizeof(*w));
	bool quick = quick_mode();
	unsigned long per_phase = quick ? 4000 : 210000;
	const int rounds = 4;

	ck_assert_ptr_nonnull(w);
	w->rng.s = test_seed();
	w->ref.cap = 3 * N_OWNERS * 3;
	for (int v6 = 0; v6 < 2; v6++) {
		w->ref.e[v6] = malloc(w->ref.cap * sizeof(struct ref_entry));
		ck_assert_ptr_nonnull(w->ref.e[v6]);
		for (int b = 0; b < N_BASES; b++) {
			w->bases[v6][b][0] = rnd(&w->rng) & (v6 ? ~UINT64_C(0) : UINT64_C(0xffffffff00000000));
			w->bases[v6][b][1] = v6 ? rnd(&w->rng) : 0;
		}
	}
	w->t = nt_allowedips_new();
	w->peers = calloc(N_OWNERS, sizeof(*w->peers));
	ck_assert_ptr_nonnull(w->t);
	ck_assert_ptr_nonnull(w->peers);
	for (int o = 0; o < N_OWNERS; o++)
		w->peers[o].id = o;

	for (int o = 0; o < N_OWNERS; o++)
		for (uint32_t k = 1 + below(&w->rng, 3); k; k--)
			random_insert(w, o);
	check_structure(w);
	check_lookups(w, per_phase);

	for (int round = 0; round < rounds; round++) {
		/* Remove ~15% of prefixes one by one, each first by a wrong owner. */
		for (int v6 = 0; v6 < 2; v6++) {
			for (size_t i = 0; i < w->ref.n[v6];) {
				struct ref_entry e = w->ref.e[v6][i];
				uint8_t bytes[16];
				int family = v6 ? AF_INET6 : AF_INET;

				if (below(&w->rng, 100) >= 15) {
					i++;
					continue;
				}
				words_to_bytes(v6, e.key, bytes);
				ck_assert_int_eq(nt_allowedips_remove(w->t, family, bytes, e.cidr,
								      &w->peers[(e.owner + 1) % N_OWNERS].owner),
						 -ENOENT);
				if (e.cidr < max_bits(v6) &&
				    !ref_find(&w->ref, v6, e.key, e.cidr + 1u))
					ck_assert_int_eq(nt_allowedips_remove(w->t, family, bytes, e.cidr + 1,
									      &w->peers[e.owner].owner),
							 -ENOENT);
				ck_assert_int_eq(nt_allowedips_remove(w->t, family, bytes, e.cidr,
								      &w->peers[e.owner].owner), 0);
				ref_delete(&w->ref, v6, i);
			}
		}
		/* Remove ~10% of owners entirely. */
		for (int o = 0; o < N_OWNERS; o++) {
			if (below(&w->rng, 10))
				continue;
			nt_allowedips_remove_owner(w->t, &w->peers[o].owner);
			ck_assert_uint_eq(w->peers[o].owner.count, 0);
			for (int v6 = 0; v6 < 2; v6++)
				for (size_t i = 0; i < w->ref.n[v6];)
					if (w->ref.e[v6][i].owner == o)
						ref_delete(&w->ref, v6, i);
					else
						i++;
		}
		check_structure(w);
		check_lookups(w, per_phase / 2);
		/* Churn back in: new prefixes, re-inserts by the holder, moves to other owners. */
		for (int k = 0; k < 800; k++) {
			int v6 = (int)below(&w->rng, 2);

			if (w->ref.n[v6] && below(&w->rng, 4) == 0) {
				struct ref_entry e = w->ref.e[v6][below(&w->rng, (uint32_t)w->ref.n[v6])];
				int o = below(&w->rng, 2) ? e.owner : (int)below(&w->rng, N_OWNERS);
				uint8_t bytes[16];

				words_to_bytes(v6, e.key, bytes);
				ck_assert_int_eq(nt_allowedips_insert(w->t, v6 ? AF_INET6 : AF_INET, bytes,
								      e.cidr, &w->peers[o].owner), 0);
				ref_insert(&w->ref, v6, e.key, e.cidr, o);
			} else {
				random_insert(w, (int)below(&w->rng, N_OWNERS));
			}
		}
		check_structure(w);
		check_lookups(w, per_phase / 2);
	}
	ck_assert_msg(w->mismatches == 0, "%lu mismatches in %lu lookups", w->mismatches, w->lookups);
	ck_assert_uint_ge(w->lookups, quick ? 1 : 1000000);

	for (int o = 0; o < N_OWNERS; o++)
		nt_allowedips_remove_owner(w->t, &w->peers[o].owner);
	w->ref.n[0] = w->ref.n[1] = 0;
	ck_assert_uint_eq(nt_allowedips_count(w->t), 0);
	ck_assert_uint_eq(nt_allowedips_memory(w->t), 0);
	check_lookups(w, 1000);
	ck_assert_uint_eq(w->mismatches, 0);

	nt_allowedips_free(w->t);
	free(w->peers);
	free(w->ref.e[0]);
	free(w->ref.e[1]);
	free(w);
}
END_TEST

/* 10,000 peers with an IPv4 /32 and an IPv6 /128 each, the usual road-warrior layout. */
START_TEST(test_memory_per_prefix)
{
	enum { PEERS = 10000 };
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer *peers = calloc(PEERS, sizeof(*peers));
	size_t per_prefix, per_peer;

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(peers);
	for (int i = 0; i < PEERS; i++) {
		uint8_t v4[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };
		uint8_t v6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(i >> 16),
				   (uint8_t)(i >> 8), (uint8_t)i };

		peers[i].id = i;
		ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, v4, 32, &peers[i].owner), 0);
		ck_assert_int_eq(nt_allowedips_insert(t, AF_INET6, v6, 128, &peers[i].owner), 0);
	}
	ck_assert_uint_eq(nt_allowedips_count(t), 2 * PEERS);
	for (int i = 0; i < PEERS; i += 97) {
		uint8_t v4[4] = { 10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i };

		ck_assert_ptr_eq(peer_of(nt_allowedips_lookup(t, AF_INET, v4)), &peers[i]);
	}
	per_prefix = nt_allowedips_memory(t) / (2 * PEERS);
	per_peer = nt_allowedips_memory(t) / PEERS;
	printf("allowedips: %zu bytes/prefix\n", per_prefix);
	fflush(stdout);
	ck_assert_uint_le(per_peer, 2048);
	for (int i = 0; i < PEERS; i++)
		nt_allowedips_remove_owner(t, &peers[i].owner);
	ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	nt_allowedips_free(t);
	free(peers);
}
END_TEST

/* replace_peers at scale: 1,000 peers x 100 prefixes in, all out, and in again. */
START_TEST(test_replace_peers_scale)
{
	enum { PEERS = 1000, PER = 100 };
	struct nt_allowedips *t = nt_allowedips_new();
	struct peer *peers = calloc(PEERS, sizeof(*peers));
	size_t mem = 0;

	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(peers);
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < PEERS; i++) {
			peers[i].id = i;
			for (int j = 0; j < PER; j++) {
				uint8_t v4[4] = { 10, (uint8_t)(i >> 8), (uint8_t)i, (uint8_t)(j * 2) };

				ck_assert_int_eq(nt_allowedips_insert(t, AF_INET, v4, 31, &peers[i].owner), 0);
			}
		}
		ck_assert_uint_eq(nt_allowedips_count(t), PEERS * PER);
		if (pass == 0)
			mem = nt_allowedips_memory(t);
		ck_assert_uint_eq(nt_allowedips_memory(t), mem);
		for (int i = 0; i < PEERS; i++) {
			uint8_t v4[4] = { 10, (uint8_t)(i >> 8), (uint8_t)i, 77 };

			ck_assert_ptr_eq(peer_of(nt_allowedips_lookup(t, AF_INET, v4)), &peers[i]);
			nt_allowedips_remove_owner(t, &peers[i].owner);
		}
		ck_assert_uint_eq(nt_allowedips_count(t), 0);
		ck_assert_uint_eq(nt_allowedips_memory(t), 0);
	}
	nt_allowedips_free(t);
	free(peers);
}
END_TEST

static Suite *allowedips_suite(void)
{
	Suite *s = suite_create("allowedips");
	TCase *fixed = tcase_create("fixed");
	TCase *random = tcase_create("random");

	tcase_add_test(fixed, test_v4_overlapping);
	tcase_add_test(fixed, test_v4_default_and_host);
	tcase_add_test(fixed, test_v6);
	tcase_add_test(fixed, test_masking);
	tcase_add_test(fixed, test_move_to_new_owner);
	tcase_add_test(fixed, test_remove);
	tcase_add_test(fixed, test_glue_becomes_owned);
	tcase_add_test(fixed, test_remove_owner);
	tcase_add_test(fixed, test_foreach_order);
	tcase_add_test(fixed, test_einval);
	suite_add_tcase(s, fixed);

	tcase_set_timeout(random, 120);
	tcase_add_test(random, test_random_differential);
	tcase_add_test(random, test_memory_per_prefix);
	tcase_add_test(random, test_replace_peers_scale);
	suite_add_tcase(s, random);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(allowedips_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0;
}
