/* lib/offload.c: checksums, TSO splitting and TCP coalescing; a 64 KiB super-packet goes
 * through split -> seal -> open -> coalesce and comes out as the same stream. */
#include <check.h>

#include "noisetun/keypair.h"
#include "noisetun/offload.h"
#include "util.h"

#define MSS 1380
#define BIG (65535 - 60) /* leaves room for headers in one IP packet */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* A TCP packet with a 12-byte timestamp option; payload bytes are a function of the
 * stream offset so any misplacement shows. */
static size_t tcp_packet(uint8_t *p, int v, uint32_t seq, size_t payload, uint8_t flags, uint16_t sport)
{
	size_t l3 = v == 4 ? 20 : 40, l4 = 32, len = l3 + l4 + payload;
	memset(p, 0, l3 + l4);
	if (v == 4) {
		p[0] = 0x45;
		put16(p + 2, (uint16_t)len);
		put16(p + 4, 0x1234);
		p[6] = 0x40; /* DF */
		p[8] = 64;
		p[9] = 6;
		put32(p + 12, 0x0a000001);
		put32(p + 16, 0x0a000002);
		uint16_t c = (uint16_t)~nt_csum_fold(nt_csum_add(0, p, 20));
		put16(p + 10, c);
	} else {
		p[0] = 0x60;
		put16(p + 4, (uint16_t)(len - 40));
		p[6] = 6;
		p[7] = 64;
		p[8] = 0xfd;
		p[23] = 1;
		p[24] = 0xfd;
		p[39] = 2;
	}
	put16(p + l3, sport);
	put16(p + l3 + 2, 5201);
	put32(p + l3 + 4, seq);
	put32(p + l3 + 8, 777);
	p[l3 + 12] = (uint8_t)((l4 / 4) << 4);
	p[l3 + 13] = flags;
	put16(p + l3 + 14, 512);
	p[l3 + 20] = 1, p[l3 + 21] = 1, p[l3 + 22] = 8, p[l3 + 23] = 10; /* NOP NOP TS */
	put32(p + l3 + 24, 1000);
	put32(p + l3 + 28, 2000);
	for (size_t i = 0; i < payload; i++)
		p[l3 + l4 + i] = (uint8_t)((seq + i) * 7 + 3);
	put16(p + l3 + 16, 0);
	uint16_t c = (uint16_t)~nt_csum_fold(nt_csum_pseudo(p, 6, (uint32_t)(l4 + payload)) + nt_csum_add(0, p + l3, l4 + payload));
	put16(p + l3 + 16, c);
	return len;
}

static bool tcp_csum_ok(const uint8_t *p, size_t len)
{
	size_t l3 = (p[0] >> 4) == 4 ? 20 : 40;
	return nt_csum_fold(nt_csum_pseudo(p, 6, (uint32_t)(len - l3)) + nt_csum_add(0, p + l3, len - l3)) == 0xffff;
}

START_TEST(checksum_rfc_example)
{
	/* The IPv4 header of the classic worked example; its checksum is 0xb861. */
	uint8_t h[20];
	unhex(h, "450000730000400040110000c0a80001c0a800c7");
	ck_assert_uint_eq((uint16_t)~nt_csum_fold(nt_csum_add(0, h, 20)), 0xb861);
	/* odd length: a trailing byte counts as the high byte of a word */
	uint8_t odd[3] = { 0x01, 0x02, 0x03 };
	ck_assert_uint_eq(nt_csum_fold(nt_csum_add(0, odd, 3)), 0x0102 + 0x0300);
}
END_TEST

/* The fast sum against the textbook one: 16-bit big-endian words, odd byte as high. */
START_TEST(checksum_matches_naive)
{
	struct test_rng r = { 99 };
	static uint8_t buf[2100];
	test_rng_fill(&r, buf, sizeof(buf));
	for (int i = 0; i < 20000; i++) {
		size_t off = (size_t)(test_rand64(&r) % 64), len = (size_t)(test_rand64(&r) % 2000);
		uint64_t init = test_rand64(&r) % 100000, naive = init;
		if (i % 7 == 0)
			memset(buf + off, 0xff, len); /* carries everywhere */
		for (size_t k = 0; k + 1 < len; k += 2)
			naive += (uint64_t)buf[off + k] << 8 | buf[off + k + 1];
		if (len & 1)
			naive += (uint64_t)buf[off + len - 1] << 8;
		ck_assert_uint_eq(nt_csum_fold(nt_csum_add(init, buf + off, len)), nt_csum_fold(naive));
		if (i % 7 == 0)
			test_rng_fill(&r, buf, sizeof(buf));
	}
}
END_TEST

START_TEST(finish_partial_checksum)
{
	uint8_t p[200];
	size_t len = tcp_packet(p, 4, 100, 60, 0x18, 1000);
	uint8_t want[2] = { p[36], p[37] };
	/* what the kernel hands over with NEEDS_CSUM: the pseudo-header sum in the field */
	put16(p + 36, nt_csum_fold(nt_csum_pseudo(p, 6, (uint32_t)(len - 20))));
	struct nt_vnet_hdr h = { .flags = NT_VNET_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 16 };
	ck_assert_int_eq(nt_offload_finish_csum(p, len, &h), 0);
	ck_assert_mem_eq(p + 36, want, 2);
	h.csum_start = (uint16_t)len;
	ck_assert_int_eq(nt_offload_finish_csum(p, len, &h), -1);
	h.csum_start = (uint16_t)(len - 1);
	h.csum_offset = 0;
	ck_assert_int_eq(nt_offload_finish_csum(p, len, &h), -1);
}
END_TEST

static uint8_t big[70000], segs[64][2048], wire[64][2100];

static void round_trip(int v)
{
	size_t l3 = v == 4 ? 20 : 40, len = tcp_packet(big, v, 5000, BIG - (v == 4 ? 0 : 20), 0x18 | 0x01, 40000);
	struct nt_vnet_hdr h = { .flags = NT_VNET_F_NEEDS_CSUM, .gso_type = v == 4 ? NT_VNET_GSO_TCPV4 : NT_VNET_GSO_TCPV6,
				 .hdr_len = 0 /* never trusted */, .gso_size = MSS, .csum_start = (uint16_t)l3, .csum_offset = 16 };
	uint8_t *out[64];
	size_t seg_len[64], payload = len - l3 - 32;
	static uint8_t orig[70000];
	memcpy(orig, big, len);
	put16(big + l3 + 16, nt_csum_fold(nt_csum_pseudo(big, 6, (uint32_t)(len - l3))));

	for (int i = 0; i < 64; i++)
		out[i] = segs[i];
	int n = nt_offload_split(big, len, &h, out, seg_len, 64);
	ck_assert_int_eq(n, (int)((payload + MSS - 1) / MSS));
	ck_assert_int_eq(nt_offload_split(big, len, &h, out, seg_len, (size_t)n - 1), -1);

	/* seal and open every segment, as the two daemons would */
	struct nt_keypair a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(a.send_key, 9, 32);
	memcpy(b.recv_key, a.send_key, 32);
	a.valid = b.valid = true;
	a.remote_index = b.local_index = 42;
	struct nt_gro_packet pk[64];
	for (int i = 0; i < n; i++) {
		uint8_t *s = segs[i];
		size_t wl, pl;
		ck_assert_uint_eq(nt_ip_packet_len(s, seg_len[i]), seg_len[i]);
		ck_assert(tcp_csum_ok(s, seg_len[i]));
		if (v == 4)
			ck_assert_uint_eq((uint16_t)~nt_csum_fold(nt_csum_add(0, s, 20)), 0);
		ck_assert_uint_eq(get32(s + l3 + 4), 5000 + (uint32_t)i * MSS);
		uint8_t flags = s[l3 + 13];
		ck_assert_uint_eq(flags & 0x09, i == n - 1 ? 0x09 : 0);
		ck_assert_int_eq(nt_keypair_seal(&a, wire[i], &wl, s, seg_len[i], 1420, 0), NT_OK);
		ck_assert_int_eq(nt_keypair_open(&b, wire[i] + 16, &pl, wire[i], wl, 0), NT_OK);
		pk[i] = (struct nt_gro_packet){ .data = wire[i] + 16, .len = nt_ip_packet_len(wire[i] + 16, pl), .cap = 70000 };
	}
	/* The head needs room for the whole stream: give it the big buffer. */
	memcpy(big, pk[0].data, pk[0].len);
	pk[0].data = big;
	ck_assert_uint_eq(nt_offload_coalesce(pk, (size_t)n, true), 2); /* the last (FIN) stays apart */
	ck_assert_uint_eq(pk[0].hdr.gso_type, v == 4 ? NT_VNET_GSO_TCPV4 : NT_VNET_GSO_TCPV6);
	ck_assert_uint_eq(pk[0].hdr.gso_size, MSS);
	ck_assert_uint_eq(pk[0].hdr.hdr_len, l3 + 32);
	ck_assert_uint_eq(pk[0].hdr.csum_start, l3);
	ck_assert_uint_eq(pk[0].hdr.csum_offset, 16);
	ck_assert_uint_eq(pk[0].len, l3 + 32 + (size_t)(n - 1) * MSS);
	ck_assert_uint_eq(nt_ip_packet_len(big, pk[0].len), pk[0].len);
	ck_assert_mem_eq(big + l3 + 32, orig + l3 + 32, (size_t)(n - 1) * MSS);
	/* pseudo-header sum over the full length, as CHECKSUM_PARTIAL wants */
	uint8_t want[2];
	put16(want, nt_csum_fold(nt_csum_pseudo(big, 6, (uint32_t)(pk[0].len - l3))));
	ck_assert_mem_eq(big + l3 + 16, want, 2);
	for (int i = 1; i < n - 1; i++)
		ck_assert_uint_eq(pk[i].len, 0);
	ck_assert_uint_gt(pk[n - 1].len, 0);
	ck_assert_uint_eq(pk[n - 1].hdr.gso_type, 0);
	nt_keypair_release(&a);
	nt_keypair_release(&b);
}

START_TEST(super_packet_v4)
{
	round_trip(4);
}
END_TEST

START_TEST(super_packet_v6)
{
	round_trip(6);
}
END_TEST

START_TEST(split_rejects_malformed)
{
	uint8_t p[300], *out[4] = { segs[0], segs[1], segs[2], segs[3] };
	size_t seg_len[4], len = tcp_packet(p, 4, 1, 100, 0x10, 1);
	struct nt_vnet_hdr h = { .gso_type = NT_VNET_GSO_TCPV4, .gso_size = 50 };
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 4), 2);
	h.gso_size = 0;
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 4), -1);
	h.gso_size = 50;
	h.gso_type = NT_VNET_GSO_TCPV6;
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 4), -1);
	h.gso_type = NT_VNET_GSO_TCPV4;
	for (size_t l = 0; l < 52; l++)
		ck_assert_int_eq(nt_offload_split(p, l, &h, out, seg_len, 4), -1);
	p[9] = 17; /* UDP */
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 4), -1);
}
END_TEST

static size_t batch(struct nt_gro_packet *pk, uint8_t bufs[][2048], const size_t *lens, size_t n)
{
	for (size_t i = 0; i < n; i++)
		pk[i] = (struct nt_gro_packet){ .data = bufs[i], .len = lens[i], .cap = 2048 };
	return nt_offload_coalesce(pk, n, false);
}

START_TEST(coalesce_rules)
{
	struct nt_gro_packet pk[8];
	size_t lens[8];

	/* two interleaved flows merge separately */
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 0, 100, 0x10, 2);
	lens[2] = tcp_packet(segs[2], 4, 100, 100, 0x10, 1);
	lens[3] = tcp_packet(segs[3], 4, 100, 100, 0x18, 2);
	ck_assert_uint_eq(batch(pk, segs, lens, 4), 2);
	ck_assert_uint_eq(pk[0].len, 20 + 32 + 200);
	ck_assert_uint_eq(pk[1].len, 20 + 32 + 200);
	ck_assert_uint_eq(pk[1].data[33] & 0x08, 0x08); /* PSH carried to the head */
	/* adjacent-only: the interleaving stops every merge */
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 0, 100, 0x10, 2);
	lens[2] = tcp_packet(segs[2], 4, 100, 100, 0x10, 1);
	lens[3] = tcp_packet(segs[3], 4, 200, 100, 0x10, 1);
	for (int i = 0; i < 4; i++)
		pk[i] = (struct nt_gro_packet){ .data = segs[i], .len = lens[i], .cap = 2048 };
	ck_assert_uint_eq(nt_offload_coalesce(pk, 4, true), 3);
	ck_assert_uint_eq(pk[2].len, 20 + 32 + 200);

	/* a gap in sequence numbers */
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 150, 100, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 2), 2);
	ck_assert_uint_eq(pk[0].hdr.gso_type, 0);

	/* a corrupted checksum never merges */
	lens[0] = tcp_packet(segs[0], 6, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 6, 100, 100, 0x10, 1);
	segs[1][100] ^= 1;
	ck_assert_uint_eq(batch(pk, segs, lens, 2), 2);

	/* nothing follows a PSH, and a short segment ends the run */
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x18, 1);
	lens[1] = tcp_packet(segs[1], 4, 100, 100, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 2), 2);
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 100, 50, 0x10, 1);
	lens[2] = tcp_packet(segs[2], 4, 150, 100, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 3), 2);
	ck_assert_uint_eq(pk[0].len, 20 + 32 + 150);

	/* different options, SYN, or a non-TCP packet in between */
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 100, 100, 0x10, 1);
	segs[1][20 + 27] ^= 1; /* timestamp differs */
	put16(segs[1] + 36, 0);
	put16(segs[1] + 36, (uint16_t)~nt_csum_fold(nt_csum_pseudo(segs[1], 6, 132) + nt_csum_add(0, segs[1] + 20, 132)));
	ck_assert_uint_eq(batch(pk, segs, lens, 2), 2);
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x02, 1);
	lens[1] = tcp_packet(segs[1], 4, 100, 100, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 2), 2);
	lens[0] = tcp_packet(segs[0], 4, 0, 100, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 100, 0, 0x10, 1); /* a pure ACK of the same flow */
	lens[2] = tcp_packet(segs[2], 4, 100, 100, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 3), 3);

	/* no room in the head's buffer */
	lens[0] = tcp_packet(segs[0], 4, 0, 900, 0x10, 1);
	lens[1] = tcp_packet(segs[1], 4, 900, 900, 0x10, 1);
	lens[2] = tcp_packet(segs[2], 4, 1800, 900, 0x10, 1);
	ck_assert_uint_eq(batch(pk, segs, lens, 3), 2);
	ck_assert_uint_eq(pk[0].len, 20 + 32 + 1800);
}
END_TEST

START_TEST(coalesce_garbage_is_safe)
{
	struct test_rng r = { 7 };
	struct nt_gro_packet pk[8];
	size_t lens[8];
	for (int round = 0; round < 20000; round++) {
		for (int i = 0; i < 8; i++) {
			lens[i] = (size_t)(test_rand64(&r) % 200);
			if (test_rand64(&r) & 1)
				lens[i] = tcp_packet(segs[i], test_rand64(&r) & 1 ? 4 : 6, (uint32_t)(test_rand64(&r) % 3) * 100,
						     100, 0x10, 1);
			else
				test_rng_fill(&r, segs[i], lens[i]);
			if (lens[i] && (test_rand64(&r) & 3) == 0)
				segs[i][test_rand64(&r) % lens[i]] ^= 0xff;
		}
		size_t left = batch(pk, segs, lens, 8), count = 0;
		for (int i = 0; i < 8; i++)
			count += pk[i].len != 0;
		ck_assert_uint_eq(left, count);
	}
}
END_TEST

int main(void)
{
	if (nt_crypto_init())
		return EXIT_FAILURE;
	Suite *s = suite_create("offload");
	TCase *tc = tcase_create("offload");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, checksum_rfc_example);
	tcase_add_test(tc, checksum_matches_naive);
	tcase_add_test(tc, finish_partial_checksum);
	tcase_add_test(tc, super_packet_v4);
	tcase_add_test(tc, super_packet_v6);
	tcase_add_test(tc, split_rejects_malformed);
	tcase_add_test(tc, coalesce_rules);
	tcase_add_test(tc, coalesce_garbage_is_safe);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
