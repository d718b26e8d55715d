/* Tests for lib/cookie.c: mac1, mac2, cookie replies, the under-load rule. */
#include <check.h>
#include <errno.h>
#include <stdio.h> /* util.h uses sscanf without including it */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "noisetun/cookie.h"
#include "util.h"

#define SEC NT_NSEC_PER_SEC
#define T0 (1000 * SEC) /* fake monotonic clock start */

/* Known-answer inputs; the constants below were computed with Python's hashlib:
 *   pub = bytes((i*7+1) & 0xff for i in range(32))
 *   msg = 148 bytes: 01 00 00 00, then byte i = (i*13+5) & 0xff
 *   k = blake2s(b'mac1----' + pub).digest(); mac1 = blake2s(msg[:116], key=k, digest_size=16)
 *   kc = blake2s(b'cookie--' + pub).digest()
 *   R, nonce = the first 32 and next 24 bytes of test_rng seed 0x1234 (util.h's xorshift64*)
 *   cookie = blake2s(bytes([192,0,2,1,0x30,0x39]), key=R, digest_size=16)
 *   mac2 = blake2s(msg[:132] with that mac1, key=cookie, digest_size=16) */
#define KAT_MAC1_KEY   "dd4ffa235eacb8293a1035c050335c5959c5d38d42f32d0749a5b358952dd10c"
#define KAT_COOKIE_KEY "87b62a0b9f27feed068f67febab615c571fc4b56e516fa90030a09b20d94b67f"
#define KAT_MAC1       "d5d06ef9b122f68a374d24665d3b3d26"
#define KAT_NONCE      "5df703d9d2bd7af355d12f344107024c3aa80a379e24b573"
#define KAT_COOKIE     "7c7686493356028f98fff58beff243e0"
#define KAT_MAC2       "b670164de58ca90a4d5246cfe7a83497"

static const uint8_t src_a[6] = { 192, 0, 2, 1, 0x30, 0x39 };     /* 192.0.2.1:12345 */
static const uint8_t src_a_port[6] = { 192, 0, 2, 1, 0x30, 0x3a }; /* same host, other port */
static const uint8_t src_other[6] = { 192, 0, 2, 2, 0x30, 0x39 };

static void kat_public(uint8_t pub[32])
{
	for (int i = 0; i < 32; i++)
		pub[i] = (uint8_t)(i * 7 + 1);
}

static void kat_message(uint8_t msg[NT_INIT_LEN])
{
	memset(msg, 0, NT_INIT_LEN);
	msg[0] = NT_MSG_INITIATION;
	for (int i = 4; i < NT_INIT_LEN; i++)
		msg[i] = (uint8_t)(i * 13 + 5);
}

/* A handshake message of either size with random contents and a proper header. */
static void random_message(uint8_t *msg, size_t len, struct nt_rng *rng)
{
	nt_rng_fill(rng, msg, len);
	msg[0] = len == NT_INIT_LEN ? NT_MSG_INITIATION : NT_MSG_RESPONSE;
	msg[1] = msg[2] = msg[3] = 0;
}

/* Two parties: A holds a maker for B; B holds the checker for its own key. */
struct pair {
	struct test_rng rng_state;
	struct nt_rng rng;
	uint8_t pub_b[32];
	struct nt_cookie_maker a;
	struct nt_cookie_checker b;
};

static void pair_init(struct pair *p, uint64_t seed)
{
	p->rng = test_rng(&p->rng_state, seed);
	nt_rng_fill(&p->rng, p->pub_b, sizeof(p->pub_b));
	nt_cookie_maker_init(&p->a, p->pub_b);
	nt_cookie_checker_init(&p->b);
	nt_cookie_checker_set_public_key(&p->b, p->pub_b);
}

/* B answers msg with a cookie reply for src at `now`; A takes it. */
static void pair_give_cookie(struct pair *p, const uint8_t *msg, size_t len, const uint8_t *src, uint64_t now)
{
	uint8_t reply[NT_COOKIE_MSG_LEN];

	ck_assert_int_eq(nt_cookie_create_reply(&p->b, reply, msg, len, src, 6, now, &p->rng), 0);
	ck_assert_int_eq(nt_cookie_consume_reply(&p->a, reply, sizeof(reply), now), 0);
}

START_TEST(test_mac1_known_answer)
{
	uint8_t pub[32], msg[NT_INIT_LEN], zero[16] = { 0 };
	struct nt_cookie_maker maker;
	struct nt_cookie_checker checker;

	kat_public(pub);
	kat_message(msg);
	nt_cookie_maker_init(&maker, pub);
	ck_assert_hex(maker.mac1_key, KAT_MAC1_KEY);
	ck_assert_hex(maker.cookie_decryption_key, KAT_COOKIE_KEY);
	ck_assert_int_eq(nt_cookie_add_macs(&maker, msg, sizeof(msg), T0), 0);
	ck_assert_hex(msg + NT_INIT_OFF_MAC1, KAT_MAC1);
	ck_assert_mem_eq(msg + NT_INIT_OFF_MAC2, zero, 16);

	nt_cookie_checker_init(&checker);
	nt_cookie_checker_set_public_key(&checker, pub);
	ck_assert_hex(checker.mac1_key, KAT_MAC1_KEY);
	ck_assert_hex(checker.cookie_encryption_key, KAT_COOKIE_KEY);
	ck_assert_int_eq(nt_cookie_validate(&checker, msg, sizeof(msg), src_a, 6, T0, false), NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_cookie_validate(&checker, msg, sizeof(msg), src_a, 6, T0, true), NT_COOKIE_MAC1_VALID);
}
END_TEST

/* The whole exchange against independent vectors: the reply opens with libsodium under the
 * Python-derived key and AD = mac1, holds the Python cookie, and A's next mac2 matches. */
START_TEST(test_cookie_known_answer)
{
	uint8_t pub[32], msg[NT_INIT_LEN], reply[NT_COOKIE_MSG_LEN], key[32], nonce[24], cookie[16];
	unsigned long long cookie_len;
	struct test_rng rs;
	struct nt_rng rng = test_rng(&rs, 0x1234);
	struct nt_cookie_maker maker;
	struct nt_cookie_checker checker;

	kat_public(pub);
	kat_message(msg);
	nt_cookie_maker_init(&maker, pub);
	nt_cookie_checker_init(&checker);
	nt_cookie_checker_set_public_key(&checker, pub);
	ck_assert_int_eq(nt_cookie_add_macs(&maker, msg, sizeof(msg), T0), 0);
	ck_assert_int_eq(nt_cookie_create_reply(&checker, reply, msg, sizeof(msg), src_a, 6, T0, &rng), 0);

	ck_assert_int_eq(reply[0], 3);
	ck_assert_int_eq(reply[1] | reply[2] | reply[3], 0);
	ck_assert_mem_eq(reply + NT_COOKIE_OFF_RECEIVER, msg + NT_INIT_OFF_SENDER, 4);
	ck_assert_hex(reply + NT_COOKIE_OFF_NONCE, KAT_NONCE);
	unhex(key, KAT_COOKIE_KEY);
	unhex(nonce, KAT_NONCE);
	ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(cookie, &cookie_len, NULL,
								    reply + NT_COOKIE_OFF_COOKIE, 32,
								    msg + NT_INIT_OFF_MAC1, 16, nonce, key), 0);
	ck_assert_uint_eq(cookie_len, 16);
	ck_assert_hex(cookie, KAT_COOKIE);

	ck_assert_int_eq(nt_cookie_consume_reply(&maker, reply, sizeof(reply), T0 + 1), 0);
	ck_assert_hex(maker.cookie, KAT_COOKIE);
	ck_assert_int_eq(nt_cookie_add_macs(&maker, msg, sizeof(msg), T0 + 2), 0);
	ck_assert_hex(msg + NT_INIT_OFF_MAC1, KAT_MAC1);
	ck_assert_hex(msg + NT_INIT_OFF_MAC2, KAT_MAC2);
	ck_assert_int_eq(nt_cookie_validate(&checker, msg, sizeof(msg), src_a, 6, T0 + 3, true), NT_COOKIE_MAC2_VALID);
}
END_TEST

static const size_t handshake_lens[2] = { NT_INIT_LEN, NT_RESP_LEN };

START_TEST(test_roundtrip_without_cookie)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN];
	size_t len = handshake_lens[_i];

	pair_init(&p, 1 + _i);
	random_message(msg, len, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);
	ck_assert(nt_is_zero(msg + len - 16, 16));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0, false), NT_COOKIE_MAC1_VALID);
	/* under load, mac2 absent: mac1 only */
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0, true), NT_COOKIE_MAC1_VALID);
}
END_TEST

START_TEST(test_roundtrip_with_cookie)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN];
	size_t len = handshake_lens[_i];

	pair_init(&p, 10 + _i);
	random_message(msg, len, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0, true), NT_COOKIE_MAC1_VALID);
	pair_give_cookie(&p, msg, len, src_a, T0);

	random_message(msg, len, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0 + SEC), 0);
	ck_assert(!nt_is_zero(msg + len - 16, 16));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0 + SEC, true), NT_COOKIE_MAC2_VALID);
	/* not under load: mac2 is not looked at */
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0 + SEC, false), NT_COOKIE_MAC1_VALID);
	/* the cookie is for the source address and port */
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_other, 6, T0 + SEC, true), NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a_port, 6, T0 + SEC, true), NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 4, T0 + SEC, true), NT_COOKIE_MAC1_VALID);
	/* a checker for another device key rejects mac1 */
	{
		struct nt_cookie_checker other;
		uint8_t pub[32];

		memcpy(pub, p.pub_b, 32);
		pub[31] ^= 1;
		nt_cookie_checker_init(&other);
		nt_cookie_checker_set_public_key(&other, pub);
		ck_assert_int_eq(nt_cookie_validate(&other, msg, len, src_a, 6, T0 + SEC, false),
				 NT_COOKIE_MAC_INVALID);
	}
}
END_TEST

/* Every single-bit flip: in the body or mac1 it kills mac1; in mac2 it kills only mac2. */
START_TEST(test_bit_flips)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN], bad[NT_INIT_LEN];
	size_t len = handshake_lens[_i];

	pair_init(&p, 20 + _i);
	random_message(msg, len, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);
	pair_give_cookie(&p, msg, len, src_a, T0);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, len, src_a, 6, T0, true), NT_COOKIE_MAC2_VALID);

	for (size_t bit = 0; bit < len * 8; bit++) {
		enum nt_cookie_mac_state want = bit / 8 < len - 16 ? NT_COOKIE_MAC_INVALID : NT_COOKIE_MAC1_VALID;

		memcpy(bad, msg, len);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_msg(nt_cookie_validate(&p.b, bad, len, src_a, 6, T0, true) == want, "bit %zu", bit);
	}
}
END_TEST

/* Every byte of each MAC, every non-zero xor pattern. */
START_TEST(test_mac_byte_flips)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN], bad[NT_INIT_LEN];
	size_t len = handshake_lens[_i];

	pair_init(&p, 30 + _i);
	random_message(msg, len, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);
	pair_give_cookie(&p, msg, len, src_a, T0);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, len, T0), 0);

	for (size_t pos = len - 32; pos < len; pos++) {
		for (unsigned x = 1; x < 256; x++) {
			enum nt_cookie_mac_state want = pos < len - 16 ? NT_COOKIE_MAC_INVALID : NT_COOKIE_MAC1_VALID;

			memcpy(bad, msg, len);
			bad[pos] ^= (uint8_t)x;
			ck_assert_msg(nt_cookie_validate(&p.b, bad, len, src_a, 6, T0, true) == want,
				      "byte %zu xor %u", pos, x);
		}
	}
	/* and every body byte once with 0xff */
	for (size_t pos = 0; pos < len - 32; pos++) {
		memcpy(bad, msg, len);
		bad[pos] ^= 0xff;
		ck_assert_int_eq(nt_cookie_validate(&p.b, bad, len, src_a, 6, T0, true), NT_COOKIE_MAC_INVALID);
	}
}
END_TEST

/* R is born at the first reply; a cookie made from it passes until R is 120 s old, exactly. */
START_TEST(test_secret_rotation)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN], msg2[NT_INIT_LEN];

	pair_init(&p, 40);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	pair_give_cookie(&p, msg, NT_INIT_LEN, src_a, T0);
	ck_assert_uint_eq(p.b.secret_birth, T0);

	/* a second reply later reuses R: its age still counts from T0 */
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0 + 60 * SEC), 0);
	pair_give_cookie(&p, msg, NT_INIT_LEN, src_a, T0 + 60 * SEC);
	ck_assert_uint_eq(p.b.secret_birth, T0);

	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0 + 61 * SEC), 0);
	ck_assert(!nt_is_zero(msg + NT_INIT_OFF_MAC2, 16));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0 + 120 * SEC - 1, true),
			 NT_COOKIE_MAC2_VALID);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0 + 120 * SEC, true),
			 NT_COOKIE_MAC1_VALID);
	/* the old secret is gone, not resurrected by asking again */
	ck_assert(!p.b.has_secret);
	ck_assert(nt_is_zero(p.b.secret, sizeof(p.b.secret)));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0 + 120 * SEC - 1, true),
			 NT_COOKIE_MAC1_VALID);

	/* a new reply draws a new R: the old cookie stays dead, the new one works */
	memcpy(msg2, msg, sizeof(msg));
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg2, NT_INIT_LEN, T0 + 121 * SEC), 0);
	pair_give_cookie(&p, msg2, NT_INIT_LEN, src_a, T0 + 121 * SEC);
	ck_assert_uint_eq(p.b.secret_birth, T0 + 121 * SEC);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0 + 122 * SEC, true),
			 NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg2, NT_INIT_LEN, T0 + 122 * SEC), 0);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg2, NT_INIT_LEN, src_a, 6, T0 + 122 * SEC, true),
			 NT_COOKIE_MAC2_VALID);

	/* a reply is itself a use: an expired R is replaced even with no validation in between */
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg2, NT_INIT_LEN, T0 + 241 * SEC), 0);
	pair_give_cookie(&p, msg2, NT_INIT_LEN, src_a, T0 + 241 * SEC);
	ck_assert_uint_eq(p.b.secret_birth, T0 + 241 * SEC);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg2, NT_INIT_LEN, T0 + 241 * SEC), 0);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg2, NT_INIT_LEN, src_a, 6, T0 + 241 * SEC, true),
			 NT_COOKIE_MAC2_VALID);
}
END_TEST

/* The maker stops sending mac2 115 s after it received the cookie, exactly. */
START_TEST(test_maker_cookie_expiry)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN];
	uint64_t got = T0 + 7;

	pair_init(&p, 50);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	pair_give_cookie(&p, msg, NT_INIT_LEN, src_a, got);

	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, got + NT_COOKIE_MAKER_MAX_AGE - 1), 0);
	ck_assert(!nt_is_zero(msg + NT_INIT_OFF_MAC2, 16));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, got + NT_COOKIE_MAKER_MAX_AGE - 1, true),
			 NT_COOKIE_MAC2_VALID);

	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, got + NT_COOKIE_MAKER_MAX_AGE), 0);
	ck_assert(nt_is_zero(msg + NT_INIT_OFF_MAC2, 16));
	ck_assert(!p.a.has_cookie);
	ck_assert(nt_is_zero(p.a.cookie, sizeof(p.a.cookie)));
	/* and it does not come back at an earlier time (clock trouble) */
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, got + 1), 0);
	ck_assert(nt_is_zero(msg + NT_INIT_OFF_MAC2, 16));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, got + 1, true), NT_COOKIE_MAC1_VALID);
}
END_TEST

/* A reply authenticates against the last mac1 we sent; a newer message invalidates it. */
START_TEST(test_reply_wrong_ad)
{
	struct pair p;
	uint8_t m1[NT_INIT_LEN], m2[NT_INIT_LEN], reply[NT_COOKIE_MSG_LEN];

	pair_init(&p, 60);
	random_message(m1, NT_INIT_LEN, &p.rng);
	random_message(m2, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, m1, NT_INIT_LEN, T0), 0);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, reply, m1, NT_INIT_LEN, src_a, 6, T0, &p.rng), 0);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, m2, NT_INIT_LEN, T0 + 1), 0); /* retry before the reply */
	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, reply, sizeof(reply), T0 + 2), -EBADMSG);
	ck_assert(!p.a.has_cookie);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, m2, NT_INIT_LEN, T0 + 3), 0);
	ck_assert(nt_is_zero(m2 + NT_INIT_OFF_MAC2, 16));
	/* a failed reply does not use up the outstanding mac1: the right reply still works */
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, reply, m2, NT_INIT_LEN, src_a, 6, T0 + 4, &p.rng), 0);
	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, reply, sizeof(reply), T0 + 5), 0);
}
END_TEST

START_TEST(test_reply_unsolicited_and_replayed)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN], reply[NT_COOKIE_MSG_LEN];
	struct nt_cookie_maker fresh;

	pair_init(&p, 70);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, reply, msg, NT_INIT_LEN, src_a, 6, T0, &p.rng), 0);

	nt_cookie_maker_init(&fresh, p.pub_b); /* never sent anything */
	ck_assert_int_eq(nt_cookie_consume_reply(&fresh, reply, sizeof(reply), T0), -EBADMSG);
	ck_assert(!fresh.has_cookie);

	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, reply, sizeof(reply), T0 + 1), 0);
	ck_assert_uint_eq(p.a.cookie_birth, T0 + 1);
	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, reply, sizeof(reply), T0 + 100 * SEC), -EBADMSG);
	ck_assert_uint_eq(p.a.cookie_birth, T0 + 1);
}
END_TEST

/* Every byte of the reply: the header must be type 3, nonce and sealed cookie are
 * authenticated; the receiver index is not (the caller matched it), so it may change. */
START_TEST(test_reply_byte_flips)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN], reply[NT_COOKIE_MSG_LEN], bad[NT_COOKIE_MSG_LEN];
	struct nt_cookie_maker saved;

	pair_init(&p, 80);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, reply, msg, NT_INIT_LEN, src_a, 6, T0, &p.rng), 0);
	saved = p.a;

	for (size_t pos = 0; pos < sizeof(reply); pos++) {
		for (unsigned x = 1; x < 256; x++) {
			int want = pos < 4 ? -EINVAL : pos < NT_COOKIE_OFF_NONCE ? 0 : -EBADMSG;

			p.a = saved;
			memcpy(bad, reply, sizeof(reply));
			bad[pos] ^= (uint8_t)x;
			ck_assert_msg(nt_cookie_consume_reply(&p.a, bad, sizeof(bad), T0) == want,
				      "byte %zu xor %u", pos, x);
			ck_assert(p.a.has_cookie == (want == 0));
		}
	}
	p.a = saved;
	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, reply, sizeof(reply), T0), 0);
}
END_TEST

/* Every length 0..200 for every function, each input in a heap block of exactly that size
 * so that ASan/valgrind catch any read past it. */
START_TEST(test_lengths)
{
	struct pair p;
	uint8_t full[200], reply[NT_COOKIE_MSG_LEN], out[NT_COOKIE_MSG_LEN];
	uint8_t sentinel[NT_COOKIE_MSG_LEN], before[200];

	pair_init(&p, 90);
	random_message(full, sizeof(full), &p.rng);
	full[0] = NT_MSG_INITIATION;
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, full, NT_INIT_LEN, T0), 0);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, reply, full, NT_INIT_LEN, src_a, 6, T0, &p.rng), 0);
	memset(sentinel, 0xa5, sizeof(sentinel));

	for (size_t len = 0; len <= 200; len++) {
		bool handshake = len == NT_INIT_LEN || len == NT_RESP_LEN;
		uint8_t *buf = malloc(len);
		uint8_t *src = malloc(len);
		struct nt_cookie_maker saved = p.a;
		int ret;

		ck_assert(buf != NULL || len == 0);
		ck_assert(src != NULL || len == 0);
		memcpy(buf, full, len < sizeof(full) ? len : sizeof(full));
		if (len >= 4) {
			buf[0] = len == NT_RESP_LEN ? NT_MSG_RESPONSE : NT_MSG_INITIATION;
			memset(buf + 1, 0, 3);
		}
		memset(src, 0x42, len);

		/* as a handshake message */
		if (!handshake) {
			ck_assert_int_eq(nt_cookie_validate(&p.b, buf, len, src_a, 6, T0, true), NT_COOKIE_MAC_INVALID);
			memcpy(out, sentinel, sizeof(out));
			ck_assert_int_eq(nt_cookie_create_reply(&p.b, out, buf, len, src_a, 6, T0, &p.rng), -EINVAL);
			ck_assert_mem_eq(out, sentinel, sizeof(out));
		}
		memcpy(before, buf, len);
		ret = nt_cookie_add_macs(&p.a, buf, len, T0);
		ck_assert_int_eq(ret, handshake ? 0 : -EINVAL);
		if (len) /* a refused buffer is untouched, an accepted one only from mac1 on */
			ck_assert_mem_eq(buf, before, handshake ? len - 32 : len);
		if (handshake) {
			ck_assert_int_eq(nt_cookie_validate(&p.b, buf, len, src_a, 6, T0, true), NT_COOKIE_MAC1_VALID);
			ck_assert_int_eq(nt_cookie_create_reply(&p.b, out, buf, len, src_a, 6, T0, &p.rng), 0);
		}
		p.a = saved; /* keep the mac1 the reply was made for */

		/* as a cookie reply: the real reply cut or padded */
		memcpy(buf, reply, len < sizeof(reply) ? len : sizeof(reply));
		if (len > sizeof(reply))
			memset(buf + sizeof(reply), 0, len - sizeof(reply));
		ret = nt_cookie_consume_reply(&p.a, buf, len, T0);
		ck_assert_int_eq(ret, len == NT_COOKIE_MSG_LEN ? 0 : -EINVAL);
		p.a = saved;

		/* as the source address: any length is a valid source string */
		{
			uint8_t msg[NT_RESP_LEN];
			uint8_t r[NT_COOKIE_MSG_LEN];

			random_message(msg, sizeof(msg), &p.rng);
			ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, sizeof(msg), T0), 0);
			ck_assert_int_eq(nt_cookie_create_reply(&p.b, r, msg, sizeof(msg), src, len, T0, &p.rng), 0);
			ck_assert_int_eq(nt_cookie_consume_reply(&p.a, r, sizeof(r), T0), 0);
			ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, sizeof(msg), T0), 0);
			ck_assert_int_eq(nt_cookie_validate(&p.b, msg, sizeof(msg), src, len, T0, true),
					 NT_COOKIE_MAC2_VALID);
			if (len)
				ck_assert_int_eq(nt_cookie_validate(&p.b, msg, sizeof(msg), src, len - 1, T0, true),
						 NT_COOKIE_MAC1_VALID);
			p.a = saved;
		}
		free(buf);
		free(src);
	}
	/* NULL buffers */
	ck_assert_int_eq(nt_cookie_validate(&p.b, NULL, NT_INIT_LEN, src_a, 6, T0, true), NT_COOKIE_MAC_INVALID);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, NULL, NT_INIT_LEN, T0), -EINVAL);
	ck_assert_int_eq(nt_cookie_consume_reply(&p.a, NULL, NT_COOKIE_MSG_LEN, T0), -EINVAL);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, out, NULL, NT_INIT_LEN, src_a, 6, T0, &p.rng), -EINVAL);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, out, full, NT_INIT_LEN, NULL, 6, T0, &p.rng), -EINVAL);
}
END_TEST

START_TEST(test_no_key)
{
	struct pair p;
	struct nt_cookie_checker keyless;
	uint8_t msg[NT_INIT_LEN], out[NT_COOKIE_MSG_LEN];

	pair_init(&p, 100);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);

	nt_cookie_checker_init(&keyless);
	ck_assert_int_eq(nt_cookie_validate(&keyless, msg, NT_INIT_LEN, src_a, 6, T0, false), NT_COOKIE_MAC_INVALID);
	ck_assert_int_eq(nt_cookie_validate(&keyless, msg, NT_INIT_LEN, src_a, 6, T0, true), NT_COOKIE_MAC_INVALID);
	ck_assert_int_eq(nt_cookie_create_reply(&keyless, out, msg, NT_INIT_LEN, src_a, 6, T0, &p.rng), -ENOKEY);

	/* a message whose mac1 happens to be MAC(zero key) must not pass either */
	nt_mac(msg + NT_INIT_OFF_MAC1, keyless.mac1_key, 32, msg, NT_INIT_OFF_MAC1);
	ck_assert_int_eq(nt_cookie_validate(&keyless, msg, NT_INIT_LEN, src_a, 6, T0, false), NT_COOKIE_MAC_INVALID);

	/* key removed from a working device */
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0, false), NT_COOKIE_MAC1_VALID);
	nt_cookie_checker_set_public_key(&p.b, NULL);
	ck_assert(nt_is_zero(p.b.mac1_key, 32) && nt_is_zero(p.b.cookie_encryption_key, 32));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0, false), NT_COOKIE_MAC_INVALID);
	ck_assert_int_eq(nt_cookie_create_reply(&p.b, out, msg, NT_INIT_LEN, src_a, 6, T0, &p.rng), -ENOKEY);
	nt_cookie_checker_set_public_key(&p.b, p.pub_b);
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0, false), NT_COOKIE_MAC1_VALID);
}
END_TEST

START_TEST(test_wipe)
{
	struct pair p;
	uint8_t msg[NT_INIT_LEN];

	pair_init(&p, 110);
	random_message(msg, NT_INIT_LEN, &p.rng);
	ck_assert_int_eq(nt_cookie_add_macs(&p.a, msg, NT_INIT_LEN, T0), 0);
	pair_give_cookie(&p, msg, NT_INIT_LEN, src_a, T0);
	nt_cookie_maker_wipe(&p.a);
	nt_cookie_checker_wipe(&p.b);
	ck_assert(nt_is_zero(&p.a, sizeof(p.a)));
	ck_assert(nt_is_zero(&p.b, sizeof(p.b)));
	ck_assert_int_eq(nt_cookie_validate(&p.b, msg, NT_INIT_LEN, src_a, 6, T0, true), NT_COOKIE_MAC_INVALID);
}
END_TEST

START_TEST(test_under_load)
{
	uint64_t last = 0;
	uint64_t t = T0;

	ck_assert(!nt_cookie_under_load(0, 4096, t, &last));
	ck_assert(!nt_cookie_under_load(511, 4096, t, &last));
	ck_assert_uint_eq(last, 0);
	ck_assert(nt_cookie_under_load(512, 4096, t, &last)); /* 1/8 full */
	ck_assert_uint_eq(last, t);
	ck_assert(nt_cookie_under_load(0, 4096, t + SEC - 1, &last));
	ck_assert(!nt_cookie_under_load(0, 4096, t + SEC, &last));
	ck_assert_uint_eq(last, t);
	/* each long queue restarts the second */
	ck_assert(nt_cookie_under_load(4096, 4096, t + 2 * SEC, &last));
	ck_assert(nt_cookie_under_load(600, 4096, t + 2 * SEC + 500, &last));
	ck_assert(nt_cookie_under_load(3, 4096, t + 3 * SEC + 499, &last));
	ck_assert(!nt_cookie_under_load(3, 4096, t + 3 * SEC + 500, &last));
	/* 1/8 of a small queue rounds up; an empty queue is never long */
	last = 0;
	ck_assert(!nt_cookie_under_load(1, 10, t, &last));
	ck_assert(nt_cookie_under_load(2, 10, t, &last));
	last = 0;
	ck_assert(!nt_cookie_under_load(0, 0, t, &last));
	ck_assert(!nt_cookie_under_load(0, 7, t, &last));
	ck_assert(nt_cookie_under_load(1, 7, t, &last));
	ck_assert(nt_cookie_under_load(SIZE_MAX, SIZE_MAX, t, &last));
	ck_assert(!nt_cookie_under_load(SIZE_MAX / 8, SIZE_MAX, t + 5 * SEC, &last));
}
END_TEST

static Suite *cookie_suite(void)
{
	Suite *s = suite_create("cookie");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mac1_known_answer);
	tcase_add_test(tc, test_cookie_known_answer);
	tcase_add_loop_test(tc, test_roundtrip_without_cookie, 0, 2);
	tcase_add_loop_test(tc, test_roundtrip_with_cookie, 0, 2);
	tcase_add_loop_test(tc, test_bit_flips, 0, 2);
	tcase_add_loop_test(tc, test_mac_byte_flips, 0, 2);
	tcase_add_test(tc, test_secret_rotation);
	tcase_add_test(tc, test_maker_cookie_expiry);
	tcase_add_test(tc, test_reply_wrong_ad);
	tcase_add_test(tc, test_reply_unsolicited_and_replayed);
	tcase_add_test(tc, test_reply_byte_flips);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_no_key);
	tcase_add_test(tc, test_wipe);
	tcase_add_test(tc, test_under_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	if (nt_crypto_init() != 0)
		return EXIT_FAILURE;
	return run_suite(cookie_suite());
}
