/* lib/keypair.c: sealing and opening type-4 messages, padding, limits by age and count,
 * the replay window as seen through open, and the three-slot rotation. */
#include <check.h>

#include "noisetun/crypto.h"
#include "noisetun/keypair.h"
#include "util.h"

#define SEC NT_NSEC_PER_SEC

/* A matched pair of keypairs, as two peers would hold after a handshake. */
static void keypair_pair(struct nt_keypair *a, struct nt_keypair *b, uint64_t birth)
{
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	memset(a->send_key, 0xaa, 32);
	memset(a->recv_key, 0xbb, 32);
	memcpy(b->send_key, a->recv_key, 32);
	memcpy(b->recv_key, a->send_key, 32);
	a->local_index = 11, a->remote_index = 22;
	b->local_index = 22, b->remote_index = 11;
	a->birth = b->birth = birth;
	a->initiator = true;
	a->valid = b->valid = true;
	nt_replay_init(&a->replay);
	nt_replay_init(&b->replay);
}

static size_t ipv4_packet(uint8_t *buf, size_t len)
{
	memset(buf, 0, len);
	buf[0] = 0x45;
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	for (size_t i = 20; i < len; i++)
		buf[i] = (uint8_t)i;
	return len;
}

START_TEST(padding_multiple_of_16_capped_by_mtu)
{
	struct nt_keypair a, b;
	uint8_t pkt[1600], wire[1700], plain[1700];
	size_t wirelen, plainlen;

	keypair_pair(&a, &b, 0);
	for (size_t len = 20; len <= 1500; len++) {
		size_t mtu = 1420;
		ipv4_packet(pkt, len);
		ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, len, mtu, 0), NT_OK);
		size_t padded = wirelen - 32;
		ck_assert_uint_eq(wirelen, nt_keypair_sealed_len(len, mtu));
		if (len <= mtu) {
			ck_assert_uint_ge(padded, len);
			ck_assert(padded % 16 == 0 || padded == mtu);
			ck_assert_uint_le(padded, mtu);
			ck_assert_uint_lt(padded - len, 16);
		} else {
			ck_assert_uint_eq(padded, len);
		}
		ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_OK);
		ck_assert_uint_eq(plainlen, padded);
		ck_assert_uint_eq(nt_ip_packet_len(plain, plainlen), len);
		ck_assert_mem_eq(plain, pkt, len);
		for (size_t i = len; i < padded; i++)
			ck_assert_uint_eq(plain[i], 0);
	}
	/* keepalive: 32 bytes, empty plaintext */
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, NULL, 0, 1420, 0), NT_OK);
	ck_assert_uint_eq(wirelen, 32);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_OK);
	ck_assert_uint_eq(plainlen, 0);
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

/* Small messages go through libsodium's one-shot AEAD, larger ones through the OpenSSL
 * cipher (lib/keypair.c): on either side of the switch, and across it in a stream of
 * growing sizes on one keypair, the wire is exactly RFC 8439's AEAD of the padded packet
 * under the counter, and open takes exactly that back. */
START_TEST(wire_is_the_aead_at_every_size)
{
	struct nt_keypair a, b;
	uint8_t pkt[400], wire[500], ref[500], plain[500];
	size_t wirelen, plainlen;

	keypair_pair(&a, &b, 0);
	for (size_t len = 20; len <= 300; len++) {
		uint64_t counter = len - 20;
		size_t padded = (len + 15) & ~(size_t)15;

		ipv4_packet(pkt, len);
		ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, len, 1420, 0), NT_OK);
		ck_assert_uint_eq(wirelen, 16 + padded + 16);
		ck_assert_uint_eq(nt_load_le64(wire + NT_DATA_OFF_COUNTER), counter);
		memset(ref, 0, sizeof(ref));
		memcpy(ref, pkt, len);
		nt_aead_seal(ref, ref, padded, NULL, 0, counter, a.send_key);
		ck_assert_mem_eq(wire + 16, ref, padded + 16);
		/* b opens it, and refuses it with any bit of the tag flipped */
		wire[16 + padded + (len % 16)] ^= 1;
		ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_DROP_DECRYPT);
		wire[16 + padded + (len % 16)] ^= 1;
		ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_OK);
		ck_assert_uint_eq(plainlen, padded);
		ck_assert_mem_eq(plain, pkt, len);
	}
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

START_TEST(seal_and_open_in_place)
{
	struct nt_keypair a, b;
	uint8_t buf[256], orig[100];
	size_t wirelen, plainlen;

	keypair_pair(&a, &b, 0);
	ipv4_packet(orig, sizeof(orig));
	memcpy(buf + 16, orig, sizeof(orig));
	ck_assert_int_eq(nt_keypair_seal(&a, buf, &wirelen, buf + 16, sizeof(orig), 1420, 0), NT_OK);
	ck_assert_uint_eq(wirelen, 16 + 112 + 16);
	ck_assert_uint_eq(buf[0], 4);
	ck_assert_uint_eq(nt_load_le32(buf + 4), 22);
	ck_assert_uint_eq(nt_data_counter(buf), 0);
	ck_assert_int_eq(nt_keypair_open(&b, buf + 16, &plainlen, buf, wirelen, 0), NT_OK);
	ck_assert_mem_eq(buf + 16, orig, sizeof(orig));
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

START_TEST(replay_through_open)
{
	struct nt_keypair a, b;
	uint8_t pkt[40], wire[20][128], plain[128];
	size_t len[20], plainlen;

	keypair_pair(&a, &b, 0);
	ipv4_packet(pkt, sizeof(pkt));
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(nt_keypair_seal(&a, wire[i], &len[i], pkt, sizeof(pkt), 1420, 0), NT_OK);
	/* in order */
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[0], len[0], 0), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[1], len[1], 0), NT_OK);
	/* reordered inside the window */
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[10], len[10], 0), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[5], len[5], 0), NT_OK);
	/* duplicates */
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[5], len[5], 0), NT_DROP_REPLAY);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[0], len[0], 0), NT_DROP_REPLAY);
	/* a forged message with a fresh counter does not burn the counter */
	wire[6][40] ^= 1;
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[6], len[6], 0), NT_DROP_DECRYPT);
	wire[6][40] ^= 1;
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[6], len[6], 0), NT_OK);
	/* too old: push the window far ahead */
	a.send_counter = 100000;
	uint8_t far[128];
	size_t farlen;
	ck_assert_int_eq(nt_keypair_seal(&a, far, &farlen, pkt, sizeof(pkt), 1420, 0), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, far, farlen, 0), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire[15], len[15], 0), NT_DROP_REPLAY);
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

START_TEST(message_and_age_limits)
{
	struct nt_keypair a, b;
	uint8_t pkt[40], wire[128], plain[128];
	size_t wirelen, plainlen;

	keypair_pair(&a, &b, 10 * SEC);
	ipv4_packet(pkt, sizeof(pkt));
	/* the last counter allowed, then none */
	a.send_counter = NT_REJECT_AFTER_MESSAGES - 1;
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, sizeof(pkt), 1420, 10 * SEC), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 10 * SEC), NT_OK);
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, sizeof(pkt), 1420, 10 * SEC), NT_DROP_EXPIRED);
	/* a message claiming counter REJECT_AFTER_MESSAGES is refused before decrypting */
	nt_store_le64(wire + 8, NT_REJECT_AFTER_MESSAGES);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 10 * SEC), NT_DROP_EXPIRED);

	/* age: usable until just before REJECT_AFTER_TIME */
	nt_keypair_release(&a);
	nt_keypair_release(&b);
	keypair_pair(&a, &b, 10 * SEC);
	uint64_t last = 10 * SEC + NT_REJECT_AFTER_TIME - 1;
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, sizeof(pkt), 1420, last), NT_OK);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, last), NT_OK);
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, sizeof(pkt), 1420, last + 1), NT_DROP_EXPIRED);
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, last + 1), NT_DROP_EXPIRED);
	a.valid = false;
	ck_assert(!nt_keypair_usable(&a, 10 * SEC, 0));
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

START_TEST(open_refuses_malformed)
{
	struct nt_keypair a, b;
	uint8_t pkt[40], wire[128], plain[256];
	size_t wirelen, plainlen;

	keypair_pair(&a, &b, 0);
	ipv4_packet(pkt, sizeof(pkt));
	ck_assert_int_eq(nt_keypair_seal(&a, wire, &wirelen, pkt, sizeof(pkt), 1420, 0), NT_OK);
	for (size_t len = 0; len < NT_DATA_MIN_LEN; len++) {
		uint8_t *exact = malloc(len ? len : 1);
		memcpy(exact, wire, len);
		ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, exact, len, 0), NT_DROP_SIZE);
		free(exact);
	}
	/* truncated or extended: the tag fails */
	for (size_t len = NT_DATA_MIN_LEN; len < wirelen + 20 && len <= sizeof(wire); len++)
		if (len != wirelen)
			ck_assert_int_ne(nt_keypair_open(&b, plain, &plainlen, wire, len, 0), NT_OK);
	/* wrong receiver index, wrong type */
	wire[4] ^= 1;
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_DROP_INDEX);
	wire[4] ^= 1;
	wire[0] = 1;
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_DROP_SIZE);
	wire[0] = 4;
	/* every bit of the sealed body and tag */
	for (size_t bit = 16 * 8; bit < wirelen * 8; bit++) {
		wire[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_DROP_DECRYPT);
		wire[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	ck_assert_int_eq(nt_keypair_open(&b, plain, &plainlen, wire, wirelen, 0), NT_OK);
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}
END_TEST

START_TEST(ip_packet_len)
{
	uint8_t p[100] = { 0 };
	ck_assert_uint_eq(nt_ip_packet_len(p, 0), 0);
	ck_assert_uint_eq(nt_ip_packet_len(p, sizeof(p)), 0); /* version 0 */
	ipv4_packet(p, 60);
	ck_assert_uint_eq(nt_ip_packet_len(p, 64), 60);
	ck_assert_uint_eq(nt_ip_packet_len(p, 59), 0);   /* claims more than we have */
	ck_assert_uint_eq(nt_ip_packet_len(p, 19), 0);   /* short header */
	p[0] = 0x44;                                     /* IHL 4 */
	ck_assert_uint_eq(nt_ip_packet_len(p, 64), 0);
	p[0] = 0x4f;                                     /* IHL 15 = 60 bytes, total 60 */
	ck_assert_uint_eq(nt_ip_packet_len(p, 64), 60);
	p[3] = 59;                                       /* total below header */
	ck_assert_uint_eq(nt_ip_packet_len(p, 64), 0);
	memset(p, 0, sizeof(p));
	p[0] = 0x60;
	p[5] = 8;                                        /* payload 8 */
	ck_assert_uint_eq(nt_ip_packet_len(p, 48), 48);
	ck_assert_uint_eq(nt_ip_packet_len(p, 64), 48);
	ck_assert_uint_eq(nt_ip_packet_len(p, 47), 0);
	ck_assert_uint_eq(nt_ip_packet_len(p, 39), 0);
}
END_TEST

static struct nt_keypair *install(struct nt_keypairs *kps, bool initiator, uint32_t idx, struct nt_keypair_drops *d)
{
	struct nt_keypair *kp = nt_keypairs_install(kps, initiator, d);
	kp->valid = true;
	kp->initiator = initiator;
	kp->local_index = idx;
	return kp;
}

#define IDX(kps, which) ((kps).which >= 0 ? (kps).slot[(kps).which].local_index : 0)

START_TEST(rotation)
{
	struct nt_keypairs kps;
	struct nt_keypair_drops d = { .count = 0 };
	struct nt_keypair *kp;

	nt_keypairs_init(&kps);
	ck_assert_ptr_null(nt_keypairs_current(&kps));
	/* initiator: usable at once */
	install(&kps, true, 1, &d);
	ck_assert_uint_eq(IDX(kps, current), 1);
	ck_assert_uint_eq(d.count, 0);
	install(&kps, true, 2, &d);
	ck_assert_uint_eq(IDX(kps, current), 2);
	ck_assert_uint_eq(IDX(kps, previous), 1);
	install(&kps, true, 3, &d);
	ck_assert_uint_eq(IDX(kps, current), 3);
	ck_assert_uint_eq(IDX(kps, previous), 2);
	ck_assert_uint_eq(d.count, 1);
	ck_assert_uint_eq(d.index[0], 1);
	ck_assert_ptr_null(nt_keypairs_find(&kps, 1));

	/* responder: waits as next; current unchanged; previous dropped */
	d.count = 0;
	kp = install(&kps, false, 4, &d);
	ck_assert_uint_eq(IDX(kps, next), 4);
	ck_assert_uint_eq(IDX(kps, current), 3);
	ck_assert_int_eq(kps.previous, -1);
	ck_assert_uint_eq(d.count, 1);
	ck_assert_uint_eq(d.index[0], 2);
	/* a second unconfirmed responder keypair replaces the first */
	d.count = 0;
	kp = install(&kps, false, 5, &d);
	ck_assert_uint_eq(IDX(kps, next), 5);
	ck_assert_uint_eq(d.count, 1);
	ck_assert_uint_eq(d.index[0], 4);
	/* data on current confirms nothing */
	ck_assert(!nt_keypairs_confirm(&kps, nt_keypairs_current(&kps), &d));
	/* data on next promotes it */
	d.count = 0;
	ck_assert(nt_keypairs_confirm(&kps, kp, &d));
	ck_assert_uint_eq(IDX(kps, current), 5);
	ck_assert_uint_eq(IDX(kps, previous), 3);
	ck_assert_int_eq(kps.next, -1);
	ck_assert_uint_eq(d.count, 0);

	/* initiator while a next is pending: next becomes previous, current goes */
	install(&kps, false, 6, &d);
	d.count = 0;
	install(&kps, true, 7, &d);
	ck_assert_uint_eq(IDX(kps, current), 7);
	ck_assert_uint_eq(IDX(kps, previous), 6);
	ck_assert_int_eq(kps.next, -1);
	ck_assert_ptr_nonnull(nt_keypairs_find(&kps, 6));
	ck_assert_ptr_nonnull(nt_keypairs_find(&kps, 7));
	ck_assert_ptr_null(nt_keypairs_find(&kps, 5));

	/* clear drops all and wipes them */
	d.count = 0;
	nt_keypairs_clear(&kps, &d);
	ck_assert_uint_eq(d.count, 2);
	ck_assert_ptr_null(nt_keypairs_current(&kps));
	ck_assert(nt_is_zero(kps.slot, sizeof(kps.slot)));
}
END_TEST

/* Random sequences of installs and confirmations never lose track of a slot: the three
 * roles always point at distinct valid slots, and every dropped index was installed. */
START_TEST(rotation_random)
{
	struct nt_keypairs kps;
	struct test_rng r = { 12345 };
	uint32_t next_idx = 1;

	nt_keypairs_init(&kps);
	for (int i = 0; i < 100000; i++) {
		struct nt_keypair_drops d = { .count = 0 };
		uint64_t v = test_rand64(&r) % 3;
		if (v < 2) {
			install(&kps, v == 0, next_idx++, &d);
		} else if (kps.next >= 0) {
			ck_assert(nt_keypairs_confirm(&kps, &kps.slot[kps.next], &d));
		}
		int8_t roles[3] = { kps.next, kps.current, kps.previous };
		for (int x = 0; x < 3; x++) {
			if (roles[x] < 0)
				continue;
			ck_assert(kps.slot[roles[x]].valid);
			for (int y = x + 1; y < 3; y++)
				ck_assert(roles[x] != roles[y]);
		}
		for (unsigned k = 0; k < d.count; k++)
			ck_assert_uint_lt(d.index[k], next_idx);
	}
}
END_TEST

int main(void)
{
	if (nt_crypto_init())
		return EXIT_FAILURE;
	Suite *s = suite_create("keypair");
	TCase *tc = tcase_create("transport");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, padding_multiple_of_16_capped_by_mtu);
	tcase_add_test(tc, wire_is_the_aead_at_every_size);
	tcase_add_test(tc, seal_and_open_in_place);
	tcase_add_test(tc, replay_through_open);
	tcase_add_test(tc, message_and_age_limits);
	tcase_add_test(tc, open_refuses_malformed);
	tcase_add_test(tc, ip_packet_len);
	tcase_add_test(tc, rotation);
	tcase_add_test(tc, rotation_random);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
