/* lib/noise.c: an exact-bytes vector from an independent implementation
 * (tests/vectors/gen_handshake.py), two in-process peers completing handshakes and
 * exchanging data both ways, and every way a handshake message must be refused. */
#include <check.h>
#include <stdio.h>

#include "noisetun/cookie.h"
#include "noisetun/keypair.h"
#include "noisetun/noise.h"
#include "util.h"

/* A byte stream: byte n of a stream started at base is (base + n) * 37 + 11. */
struct stream_rng { unsigned n; };
static void stream_fill(void *ctx, void *buf, size_t len)
{
	struct stream_rng *s = ctx;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = (uint8_t)((s->n++) * 37 + 11);
}

#define WALL0 (1700000000ULL * NT_NSEC_PER_SEC + 123456789ULL)
#define MS (NT_NSEC_PER_SEC / 1000)

/* One side of a conversation: a device with one peer. */
struct side {
	struct nt_noise_static dev;
	struct nt_handshake hs;
	struct nt_keypairs kps;
	struct nt_cookie_maker maker;
	struct nt_cookie_checker checker;
	struct nt_rng rng;
	struct test_rng rng_state;
};

static struct nt_handshake *lookup_one(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	struct side *s = ctx;
	return nt_equal(s->hs.remote_static, key, NT_KEY_LEN) ? &s->hs : NULL;
}

static void side_init(struct side *s, uint8_t fill, const uint8_t *peer_public, const uint8_t *psk, uint64_t seed)
{
	uint8_t priv[32];
	memset(s, 0, sizeof(*s));
	memset(priv, fill, sizeof(priv));
	nt_noise_static_init(&s->dev, priv);
	nt_cookie_checker_init(&s->checker);
	nt_cookie_checker_set_public_key(&s->checker, s->dev.public_key);
	s->rng = test_rng(&s->rng_state, seed);
	nt_keypairs_init(&s->kps);
	if (peer_public) {
		nt_handshake_init(&s->hs, &s->dev, peer_public, psk);
		nt_cookie_maker_init(&s->maker, peer_public);
	}
}

static void pair_init(struct side *a, struct side *b, const uint8_t *psk)
{
	side_init(a, 0x11, NULL, NULL, 1);
	side_init(b, 0x22, a->dev.public_key, psk, 2);
	nt_handshake_init(&a->hs, &a->dev, b->dev.public_key, psk);
	nt_cookie_maker_init(&a->maker, b->dev.public_key);
}

/* a initiates at monotonic time now, b answers; both derive keypairs. */
static void handshake(struct side *a, struct side *b, uint64_t now, uint64_t wall, uint32_t ia, uint32_t ib)
{
	uint8_t m1[NT_INIT_LEN], m2[NT_RESP_LEN];
	struct nt_handshake *found;
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a->hs, &a->dev, ia, wall, &a->rng), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&a->maker, m1, sizeof(m1), now), 0);
	ck_assert_int_eq(nt_cookie_validate(&b->checker, m1, sizeof(m1), (const uint8_t *)"src", 3, now, false),
			 NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b->dev, lookup_one, b, now), NT_OK);
	ck_assert_ptr_eq(found, &b->hs);
	ck_assert_int_eq(nt_noise_create_response(m2, &b->hs, &b->dev, ib, &b->rng), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&b->maker, m2, sizeof(m2), now), 0);
	ck_assert_int_eq(nt_noise_begin_session(&b->hs, &b->kps, now, NULL), NT_OK);
	ck_assert_int_eq(nt_cookie_validate(&a->checker, m2, sizeof(m2), (const uint8_t *)"src", 3, now, false),
			 NT_COOKIE_MAC1_VALID);
	ck_assert_int_eq(nt_noise_consume_response(&a->hs, m2, sizeof(m2), &a->dev), NT_OK);
	ck_assert_int_eq(nt_noise_begin_session(&a->hs, &a->kps, now, NULL), NT_OK);
}

/* Seal pkt on from's current keypair and open it on to's keypair by index. */
static enum nt_status transfer(struct side *from, struct side *to, const uint8_t *pkt, size_t len, uint64_t now,
			       uint8_t *plain, size_t *plainlen)
{
	uint8_t wire[2048];
	size_t wirelen;
	struct nt_keypair *kp = nt_keypairs_current(&from->kps), *rk;
	if (!kp)
		return NT_DROP_NO_KEY;
	ck_assert_int_eq(nt_keypair_seal(kp, wire, &wirelen, pkt, len, 1420, now), NT_OK);
	rk = nt_keypairs_find(&to->kps, nt_load_le32(wire + NT_DATA_OFF_RECEIVER));
	if (!rk)
		return NT_DROP_INDEX;
	enum nt_status st = nt_keypair_open(rk, plain, plainlen, wire, wirelen, now);
	if (st == NT_OK)
		nt_keypairs_confirm(&to->kps, rk, NULL);
	return st;
}

START_TEST(vector_exact_bytes)
{
	uint8_t si[32], sr[32], psk[32], m1[NT_INIT_LEN], m2[NT_RESP_LEN], wire[64], zeros[16] = { 0 };
	struct nt_noise_static di, dr;
	struct nt_handshake hi, hr, *found;
	struct nt_keypairs ki, kr;
	struct nt_cookie_maker mi, mr;
	struct stream_rng sa = { 0 }, sb = { 100 };
	struct nt_rng ra = { stream_fill, &sa }, rb = { stream_fill, &sb };
	size_t wirelen;

	memset(si, 0x11, 32);
	memset(sr, 0x22, 32);
	for (int i = 0; i < 32; i++)
		psk[i] = (uint8_t)(0xa0 + i);
	nt_noise_static_init(&di, si);
	nt_noise_static_init(&dr, sr);
	ck_assert_hex(di.public_key, "7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13");
	ck_assert_hex(dr.public_key, "0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20");
	memset(&hi, 0, sizeof(hi));
	memset(&hr, 0, sizeof(hr));
	nt_handshake_init(&hi, &di, dr.public_key, psk);
	nt_handshake_init(&hr, &dr, di.public_key, psk);
	nt_cookie_maker_init(&mi, dr.public_key);
	nt_cookie_maker_init(&mr, di.public_key);
	nt_keypairs_init(&ki);
	nt_keypairs_init(&kr);

	ck_assert_int_eq(nt_noise_create_initiation(m1, &hi, &di, 0x01020304, WALL0, &ra), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&mi, m1, sizeof(m1), 0), 0);
	ck_assert_hex(m1, "01000000040302015e9d342b7ca9dd7483c1617c8d07c3e99bff21c855a89951e548c85df975b94d312ddb"
			  "4538220a8ae1bd4e9dc4717c658a67d5766a647cfe05029d47a59ce580e55d5489ef60a414ef11332ddacf"
			  "849efb8de819c06e2745c5734fcf1db22d6e7e0d27872dacdd7f44b164b5d17bafa7d37d7f253066cd2dff"
			  "f87a4e00000000000000000000000000000000");

	struct side resp = { .hs = hr };
	resp.dev = dr;
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &dr, lookup_one, &resp, 0), NT_OK);
	ck_assert_int_eq(nt_noise_create_response(m2, found, &dr, 0x0a0b0c0d, &rb), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&mr, m2, sizeof(m2), 0), 0);
	ck_assert_hex(m2, "020000000d0c0b0a040302011f5c274954e6cc0786ad1ec967b74bf7c9f57cffd98a531c4f8a3c6cfbf27a"
			  "30c0c045c1cd921e15be18498c2f8fba94cc8cd0dc7a8df1cb68a6551d5b69835a000000000000000000000000"
			  "00000000");
	ck_assert_int_eq(nt_noise_begin_session(found, &kr, 0, NULL), NT_OK);
	ck_assert_int_eq(nt_noise_consume_response(&hi, m2, sizeof(m2), &di), NT_OK);
	ck_assert_int_eq(nt_noise_begin_session(&hi, &ki, 0, NULL), NT_OK);

	struct nt_keypair *a = nt_keypairs_current(&ki), *b = &kr.slot[kr.next];
	ck_assert_hex(a->send_key, "be1407a6d33009dca6078eca2d0fbfd4d4799832a01ea070a83434d9ebff96e1");
	ck_assert_hex(a->recv_key, "b6c30b543b01477feacdfefa198e57de2904c580850a5d5cff52f9495d737825");
	ck_assert_mem_eq(a->send_key, b->recv_key, 32);
	ck_assert_mem_eq(a->recv_key, b->send_key, 32);
	ck_assert_uint_eq(a->remote_index, 0x0a0b0c0d);
	ck_assert_uint_eq(b->remote_index, 0x01020304);
	ck_assert_int_eq(nt_keypair_seal(a, wire, &wirelen, zeros, 16, 1420, 0), NT_OK);
	ck_assert_uint_eq(wirelen, 48);
	ck_assert_hex(wire, "040000000d0c0b0a00000000000000000ada1f5cd50f2ecfc576d95e81cafa94dd63d53dc72171cd21a14f3d"
			    "05887291");
	/* the handshake's secrets are gone */
	ck_assert(nt_is_zero(&hi.secrets, sizeof(hi.secrets)));
	ck_assert(nt_is_zero(&resp.hs.secrets, sizeof(resp.hs.secrets)));
	ck_assert_int_eq(hi.state, NT_HS_ZEROED);
	nt_keypairs_clear(&ki, NULL);
	nt_keypairs_clear(&kr, NULL);
}
END_TEST

static void two_way(const uint8_t *psk)
{
	struct side a, b;
	uint8_t pkt[100], plain[2048];
	size_t plainlen;

	pair_init(&a, &b, psk);
	handshake(&a, &b, 0, WALL0, 1, 2);
	/* key confirmation: the responder holds the keypair as next and cannot send on it */
	ck_assert_ptr_null(nt_keypairs_current(&b.kps));
	ck_assert_int_ge(b.kps.next, 0);
	for (int i = 0; i < 5; i++) {
		memset(pkt, 0, sizeof(pkt));
		pkt[0] = 0x45; /* IPv4, 20-byte header, total length = 100 */
		pkt[3] = sizeof(pkt);
		pkt[20] = (uint8_t)i;
		ck_assert_int_eq(transfer(&a, &b, pkt, sizeof(pkt), MS * (uint64_t)i, plain, &plainlen), NT_OK);
		ck_assert_uint_eq(plainlen, 112);
		ck_assert_uint_eq(nt_ip_packet_len(plain, plainlen), 100);
		ck_assert_mem_eq(plain, pkt, 100);
		/* confirmed by the first message: now the responder can answer */
		ck_assert_ptr_nonnull(nt_keypairs_current(&b.kps));
		ck_assert_int_eq(transfer(&b, &a, pkt, sizeof(pkt), MS * (uint64_t)i, plain, &plainlen), NT_OK);
		ck_assert_mem_eq(plain, pkt, 100);
	}
	/* a keepalive */
	ck_assert_int_eq(transfer(&a, &b, NULL, 0, 10 * MS, plain, &plainlen), NT_OK);
	ck_assert_uint_eq(plainlen, 0);
	nt_keypairs_clear(&a.kps, NULL);
	nt_keypairs_clear(&b.kps, NULL);
}

START_TEST(two_peers_with_psk)
{
	uint8_t psk[32];
	memset(psk, 0x5a, 32);
	two_way(psk);
}
END_TEST

START_TEST(two_peers_without_psk)
{
	two_way(NULL);
}
END_TEST

START_TEST(psk_mismatch_refused)
{
	struct side a, b;
	uint8_t psk[32], m1[NT_INIT_LEN], m2[NT_RESP_LEN];
	struct nt_handshake *found;
	memset(psk, 0x5a, 32);
	pair_init(&a, &b, psk);
	nt_handshake_set_psk(&b.hs, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_OK);
	ck_assert_int_eq(nt_noise_create_response(m2, &b.hs, &b.dev, 2, &b.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_DROP_DECRYPT);
	ck_assert_int_eq(a.hs.state, NT_HS_CREATED_INITIATION);
}
END_TEST

START_TEST(wrong_static_keys_refused)
{
	struct side a, b, c;
	uint8_t m1[NT_INIT_LEN], m2[NT_RESP_LEN];
	struct nt_handshake *found;

	/* b does not know c: unknown peer */
	pair_init(&a, &b, NULL);
	side_init(&c, 0x33, b.dev.public_key, NULL, 3);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &c.hs, &c.dev, 1, WALL0, &c.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0),
			 NT_DROP_UNKNOWN_PEER);
	ck_assert_ptr_null(found);

	/* a believes c's key is b's: b cannot even decrypt the static */
	nt_handshake_init(&a.hs, &a.dev, c.dev.public_key, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_DROP_DECRYPT);
	ck_assert_int_eq(b.hs.state, NT_HS_ZEROED);

	/* a response from a responder with the wrong static key: c answers an initiation a
	 * made to c, with the receiver index of a's pending handshake with b */
	pair_init(&a, &b, NULL);
	side_init(&c, 0x33, a.dev.public_key, NULL, 3);
	struct nt_handshake to_c;
	memset(&to_c, 0, sizeof(to_c));
	nt_handshake_init(&to_c, &a.dev, c.dev.public_key, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &to_c, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &c.dev, lookup_one, &c, 0), NT_OK);
	ck_assert_int_eq(nt_noise_create_response(m2, &c.hs, &c.dev, 2, &c.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_DROP_DECRYPT);
	ck_assert_int_eq(a.hs.state, NT_HS_CREATED_INITIATION);
	ck_assert_int_eq(nt_noise_consume_response(&to_c, m2, sizeof(m2), &a.dev), NT_OK);
}
END_TEST

START_TEST(initiation_replay_and_timestamps)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN], m1b[NT_INIT_LEN];
	struct nt_handshake *found;
	int accepted = 0;

	pair_init(&a, &b, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_OK);
	/* the same message 1,000 times, spread over time: all refused by the timestamp */
	for (int i = 1; i <= 1000; i++)
		accepted += nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b,
							 (uint64_t)i * NT_NSEC_PER_SEC) == NT_OK;
	ck_assert_int_eq(accepted, 0);
	/* an older timestamp */
	ck_assert_int_eq(nt_noise_create_initiation(m1b, &a.hs, &a.dev, 2, WALL0 - 1, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1b, sizeof(m1b), &b.dev, lookup_one, &b, 2000 * NT_NSEC_PER_SEC),
			 NT_DROP_TIMESTAMP);
	/* newer: accepted */
	ck_assert_int_eq(nt_noise_create_initiation(m1b, &a.hs, &a.dev, 3, WALL0 + 1, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1b, sizeof(m1b), &b.dev, lookup_one, &b, 2000 * NT_NSEC_PER_SEC),
			 NT_OK);
}
END_TEST

START_TEST(initiation_flood_guard)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN];
	struct nt_handshake *found;
	uint64_t now = 5 * NT_NSEC_PER_SEC, step = NT_NSEC_PER_SEC / 50;
	int accepted = 0;

	pair_init(&a, &b, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, now), NT_OK);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 2, WALL0 + 1, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, now + step - 1),
			 NT_DROP_FLOOD);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, now + step), NT_OK);
	/* one second of fresh initiations every millisecond: at most 50 accepted */
	now += NT_NSEC_PER_SEC;
	for (int i = 0; i < 1000; i++) {
		ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 3, WALL0 + 10 + (uint64_t)i, &a.rng), NT_OK);
		accepted += nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b,
							 now + (uint64_t)i * MS) == NT_OK;
	}
	ck_assert_int_le(accepted, 50);
	ck_assert_int_ge(accepted, 49);
}
END_TEST

/* Every single-bit flip of either message is refused once mac1 is checked, and a flip in
 * the authenticated body is refused by the handshake itself even with a recomputed mac1. */
START_TEST(bit_flips_refused)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN], m2[NT_RESP_LEN], bad[NT_INIT_LEN];
	struct nt_handshake *found;

	pair_init(&a, &b, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 7, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&a.maker, m1, sizeof(m1), 0), 0);
	for (size_t bit = 0; bit < NT_INIT_OFF_MAC2 * 8; bit++) {
		memcpy(bad, m1, sizeof(m1));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(nt_cookie_validate(&b.checker, bad, sizeof(bad), (const uint8_t *)"s", 1, 0, false),
				 NT_COOKIE_MAC_INVALID);
		if (bit / 8 >= NT_INIT_OFF_MAC1 || (bit / 8 >= 4 && bit / 8 < 8))
			continue; /* mac1 itself, and the sender index, are covered by mac1 alone */
		ck_assert_int_ne(nt_noise_consume_initiation(&found, bad, sizeof(bad), &b.dev, lookup_one, &b, 0), NT_OK);
	}
	ck_assert_int_eq(b.hs.state, NT_HS_ZEROED);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_OK);
	ck_assert_int_eq(nt_noise_create_response(m2, &b.hs, &b.dev, 8, &b.rng), NT_OK);
	ck_assert_int_eq(nt_cookie_add_macs(&b.maker, m2, sizeof(m2), 0), 0);
	for (size_t bit = 0; bit < NT_RESP_OFF_MAC2 * 8; bit++) {
		memcpy(bad, m2, sizeof(m2));
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(nt_cookie_validate(&a.checker, bad, sizeof(m2), (const uint8_t *)"s", 1, 0, false),
				 NT_COOKIE_MAC_INVALID);
		if (bit / 8 >= NT_RESP_OFF_MAC1 || (bit / 8 >= 4 && bit / 8 < 8))
			continue;
		ck_assert_int_ne(nt_noise_consume_response(&a.hs, bad, sizeof(m2), &a.dev), NT_OK);
		ck_assert_int_eq(a.hs.state, NT_HS_CREATED_INITIATION);
	}
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_OK);
}
END_TEST

START_TEST(wrong_sizes_refused)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN], buf[256] = { 0 };
	struct nt_handshake *found;

	pair_init(&a, &b, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	memcpy(buf, m1, sizeof(m1));
	for (size_t len = 0; len <= 200; len++) {
		/* a heap copy of exactly len bytes, so ASan sees any read past the end */
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, buf, len);
		if (len != NT_INIT_LEN)
			ck_assert_int_eq(nt_noise_consume_initiation(&found, exact, len, &b.dev, lookup_one, &b, 0), NT_DROP_SIZE);
		if (len != NT_RESP_LEN) {
			exact[0 % (len ? len : 1)] = len ? 2 : exact[0];
			ck_assert_int_eq(nt_noise_consume_response(&a.hs, exact, len, &a.dev), NT_DROP_SIZE);
		}
		free(exact);
	}
	/* a nonzero reserved byte */
	m1[2] = 1;
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_DROP_SIZE);
}
END_TEST

START_TEST(low_order_peer_key)
{
	struct side a;
	uint8_t low[32] = { 0 }, m1[NT_INIT_LEN];
	side_init(&a, 0x11, NULL, NULL, 1);
	nt_handshake_init(&a.hs, &a.dev, low, NULL);
	ck_assert(!a.hs.static_static_valid);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_DROP_NO_KEY);
	low[0] = 1; /* u = 1, order 1 */
	nt_handshake_init(&a.hs, &a.dev, low, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_DROP_NO_KEY);
}
END_TEST

START_TEST(no_device_key)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN];
	struct nt_handshake *found;
	pair_init(&a, &b, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	nt_noise_static_init(&b.dev, NULL);
	ck_assert(!b.dev.has_key);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_DROP_NO_KEY);
	nt_noise_static_init(&a.dev, NULL);
	nt_handshake_init(&a.hs, &a.dev, b.hs.remote_static, NULL);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_DROP_NO_KEY);
}
END_TEST

/* The test plan's key-confirmation row: in 100 handshakes the responder never has a
 * current keypair to send on before it received data on the new one. */
START_TEST(key_confirmation_100_handshakes)
{
	struct side a, b;
	uint8_t plain[2048];
	size_t plainlen;
	int violations = 0;

	pair_init(&a, &b, NULL);
	for (int i = 0; i < 100; i++) {
		uint64_t now = (uint64_t)i * NT_NSEC_PER_SEC;
		struct nt_keypair *before = nt_keypairs_current(&b.kps);
		uint32_t before_idx = before ? before->local_index : 0;
		handshake(&a, &b, now, WALL0 + now, 1000 + (uint32_t)i, 5000 + (uint32_t)i);
		struct nt_keypair *cur = nt_keypairs_current(&b.kps);
		if (cur && cur->local_index == 5000u + (uint32_t)i)
			violations++;
		if (cur)
			ck_assert_uint_eq(cur->local_index, before_idx);
		ck_assert_int_eq(transfer(&a, &b, NULL, 0, now, plain, &plainlen), NT_OK);
		ck_assert_uint_eq(nt_keypairs_current(&b.kps)->local_index, 5000u + (uint32_t)i);
		ck_assert_int_eq(transfer(&b, &a, NULL, 0, now, plain, &plainlen), NT_OK);
	}
	ck_assert_int_eq(violations, 0);
	nt_keypairs_clear(&a.kps, NULL);
	nt_keypairs_clear(&b.kps, NULL);
}
END_TEST

START_TEST(response_state_and_index)
{
	struct side a, b;
	uint8_t m1[NT_INIT_LEN], m2[NT_RESP_LEN];
	struct nt_handshake *found;
	pair_init(&a, &b, NULL);
	/* no initiation consumed: no response */
	ck_assert_int_eq(nt_noise_create_response(m2, &b.hs, &b.dev, 2, &b.rng), NT_DROP_STATE);
	ck_assert_int_eq(nt_noise_create_initiation(m1, &a.hs, &a.dev, 1, WALL0, &a.rng), NT_OK);
	ck_assert_int_eq(nt_noise_consume_initiation(&found, m1, sizeof(m1), &b.dev, lookup_one, &b, 0), NT_OK);
	ck_assert_int_eq(nt_noise_create_response(m2, &b.hs, &b.dev, 2, &b.rng), NT_OK);
	/* a response for another index */
	a.hs.local_index = 99;
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_DROP_INDEX);
	a.hs.local_index = 1;
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_OK);
	/* the same response twice */
	ck_assert_int_eq(nt_noise_consume_response(&a.hs, m2, sizeof(m2), &a.dev), NT_DROP_STATE);
	/* begin_session needs a finished handshake */
	nt_handshake_clear(&a.hs);
	ck_assert_int_eq(nt_noise_begin_session(&a.hs, &a.kps, 0, NULL), NT_DROP_STATE);
}
END_TEST

int main(void)
{
	if (nt_crypto_init())
		return EXIT_FAILURE;
	Suite *s = suite_create("noise");
	TCase *tc = tcase_create("handshake");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, vector_exact_bytes);
	tcase_add_test(tc, two_peers_with_psk);
	tcase_add_test(tc, two_peers_without_psk);
	tcase_add_test(tc, psk_mismatch_refused);
	tcase_add_test(tc, wrong_static_keys_refused);
	tcase_add_test(tc, initiation_replay_and_timestamps);
	tcase_add_test(tc, initiation_flood_guard);
	tcase_add_test(tc, bit_flips_refused);
	tcase_add_test(tc, wrong_sizes_refused);
	tcase_add_test(tc, low_order_peer_key);
	tcase_add_test(tc, no_device_key);
	tcase_add_test(tc, key_confirmation_100_handshakes);
	tcase_add_test(tc, response_state_and_index);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
