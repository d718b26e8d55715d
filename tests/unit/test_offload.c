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

/* ---- UDP (USO) ---- */

/* A UDP datagram; payload bytes are a function of (tag, offset) so a misplaced or swapped
 * byte shows. id is the IPv4 id, df the DF bit; the checksum is complete and correct. */
static size_t udp_packet(uint8_t *p, int v, size_t payload, uint16_t sport, uint16_t id, bool df, uint32_t tag)
{
	size_t l3 = v == 4 ? 20 : 40, len = l3 + 8 + payload;
	memset(p, 0, l3 + 8);
	if (v == 4) {
		p[0] = 0x45;
		put16(p + 2, (uint16_t)len);
		put16(p + 4, id);
		p[6] = df ? 0x40 : 0;
		p[8] = 64;
		p[9] = 17;
		put32(p + 12, 0x0a000001);
		put32(p + 16, 0x0a000002);
		put16(p + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, p, 20)));
	} else {
		p[0] = 0x60;
		p[1] = 0x01; /* a flow label */
		put16(p + 4, (uint16_t)(len - 40));
		p[6] = 17;
		p[7] = 64;
		p[8] = 0xfd;
		p[23] = 1;
		p[24] = 0xfd;
		p[39] = 2;
	}
	put16(p + l3, sport);
	put16(p + l3 + 2, 4433);
	put16(p + l3 + 4, (uint16_t)(8 + payload));
	for (size_t i = 0; i < payload; i++)
		p[l3 + 8 + i] = (uint8_t)((tag * 131 + i) * 7 + 3);
	uint16_t c = (uint16_t)~nt_csum_fold(nt_csum_pseudo(p, 17, (uint32_t)(8 + payload)) + nt_csum_add(0, p + l3, 8 + payload));
	put16(p + l3 + 6, c ? c : 0xffff);
	return len;
}

/* Make a datagram's checksum compute to 0 (sent as 0xffff) by choosing its first payload
 * word; returns the word. */
static uint16_t udp_csum_to_zero(uint8_t *p, size_t len)
{
	size_t l3 = (p[0] >> 4) == 4 ? 20 : 40;
	put16(p + l3 + 6, 0);
	put16(p + l3 + 8, 0);
	uint16_t w = (uint16_t)~nt_csum_fold(nt_csum_pseudo(p, 17, (uint32_t)(len - l3)) + nt_csum_add(0, p + l3, len - l3));
	put16(p + l3 + 8, w);
	put16(p + l3 + 6, 0xffff);
	return w;
}

/* The textbook check: the sum over pseudo-header, header and data is all ones. */
static bool udp_csum_ok(const uint8_t *p, size_t len)
{
	size_t l3 = (p[0] >> 4) == 4 ? 20 : 40;
	uint64_t sum = nt_csum_pseudo(p, 17, (uint32_t)(len - l3));
	for (size_t k = l3; k + 1 < len; k += 2)
		sum += (uint64_t)p[k] << 8 | p[k + 1];
	if ((len - l3) & 1)
		sum += (uint64_t)p[len - 1] << 8;
	return nt_csum_fold(sum) == 0xffff;
}

/* A super-datagram as the kernel hands one over with USO: IP and UDP lengths of the
 * whole, the pseudo-header sum of the whole in the checksum field. */
static size_t udp_super(uint8_t *p, int v, size_t payload, uint16_t id, struct nt_vnet_hdr *h, uint16_t gso)
{
	size_t l3 = v == 4 ? 20 : 40, len = udp_packet(p, v, payload, 40000, id, true, 0);
	put16(p + l3 + 6, nt_csum_fold(nt_csum_pseudo(p, 17, (uint32_t)(len - l3))));
	*h = (struct nt_vnet_hdr){ .flags = NT_VNET_F_NEEDS_CSUM, .gso_type = NT_VNET_GSO_UDP_L4, .hdr_len = 0,
				   .gso_size = gso, .csum_start = (uint16_t)l3, .csum_offset = 6 };
	return len;
}

static void uso_split(int v)
{
	static uint8_t p[70000], ref[70000];
	size_t l3 = v == 4 ? 20 : 40, payload = 40 * 1200 + 345, seg_len[64];
	struct nt_vnet_hdr h;
	size_t len = udp_super(p, v, payload, 0x4321, &h, 1200);
	uint8_t *out[64];

	udp_packet(ref, v, payload, 40000, 0, true, 0); /* the payload bytes to expect */
	for (int i = 0; i < 64; i++)
		out[i] = segs[i];
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 40), -1); /* 41 do not fit 40 */
	int n = nt_offload_split(p, len, &h, out, seg_len, 64);
	ck_assert_int_eq(n, 41);
	for (int i = 0; i < n; i++) {
		uint8_t *s = segs[i];
		size_t pl = i == n - 1 ? 345 : 1200;
		ck_assert_uint_eq(seg_len[i], l3 + 8 + pl);
		ck_assert_uint_eq(nt_ip_packet_len(s, seg_len[i]), seg_len[i]);
		ck_assert_uint_eq((size_t)(s[l3 + 4] << 8 | s[l3 + 5]), 8 + pl);
		ck_assert(udp_csum_ok(s, seg_len[i]));
		ck_assert_uint_ne(s[l3 + 6] | s[l3 + 7], 0);
		if (v == 4) {
			ck_assert_uint_eq((uint16_t)~nt_csum_fold(nt_csum_add(0, s, 20)), 0);
			ck_assert_uint_eq((unsigned)(s[4] << 8 | s[5]), 0x4321u + (unsigned)i);
		}
		ck_assert_mem_eq(s + (v == 4 ? 12 : 8), ref + (v == 4 ? 12 : 8), v == 4 ? 8 : 32); /* addresses */
		ck_assert_mem_eq(s + l3, ref + l3, 4);                                             /* ports */
		ck_assert_mem_eq(s + l3 + 8, ref + l3 + 8 + (size_t)i * 1200, pl);
	}
	/* a datagram whose checksum computes to 0 carries 0xffff (0 would mean "none") */
	len = udp_super(p, v, 3 * 1200, 1, &h, 1200);
	udp_packet(ref, v, 1200, 40000, 1, true, 0);
	put16(p + l3 + 8, udp_csum_to_zero(ref, l3 + 8 + 1200));
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 64), 3);
	ck_assert_uint_eq(segs[0][l3 + 6] << 8 | segs[0][l3 + 7], 0xffff);
	ck_assert_mem_eq(segs[0], ref, seg_len[0]);
	/* one segment: payload not above gso_size */
	len = udp_super(p, v, 1000, 1, &h, 1200);
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 64), 1);
	ck_assert(udp_csum_ok(segs[0], seg_len[0]));
	ck_assert_uint_eq(seg_len[0], len);
}

START_TEST(uso_split_v4)
{
	uso_split(4);
}
END_TEST

START_TEST(uso_split_v6)
{
	uso_split(6);
}
END_TEST

START_TEST(uso_split_rejects_malformed)
{
	static uint8_t p[4000];
	uint8_t *out[8];
	size_t seg_len[8], len;
	struct nt_vnet_hdr h;

	for (int i = 0; i < 8; i++)
		out[i] = segs[i];
	for (int v = 4; v <= 6; v += 2) {
		size_t l3 = v == 4 ? 20 : 40;
		len = udp_super(p, v, 3000, 7, &h, 1000);
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), 3);
		h.gso_size = 0;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		h.gso_size = 1;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1); /* 3000 segments */
		h.gso_size = 1000;
		h.gso_type = NT_VNET_GSO_UDP_L4 | NT_VNET_GSO_ECN;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		h.gso_type = NT_VNET_GSO_UDP_L4;
		/* every length short of the whole: IP length no longer matches */
		for (size_t l = 0; l < len; l += l < 100 ? 1 : 97)
			ck_assert_int_eq(nt_offload_split(p, l, &h, out, seg_len, 8), -1);
		/* the UDP length must be the whole's */
		put16(p + l3 + 4, (uint16_t)(len - l3 - 1));
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		put16(p + l3 + 4, 8 + 1000); /* a per-segment length: not the super-datagram's */
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		put16(p + l3 + 4, (uint16_t)(len - l3));
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), 3);
		/* an IP length that claims more or less */
		if (v == 4)
			put16(p + 2, (uint16_t)(len + 1));
		else
			put16(p + 4, (uint16_t)(len - 40 + 1));
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		len = udp_super(p, v, 3000, 7, &h, 1000);
		/* TCP's gso_type on a UDP packet, UDP's on a TCP protocol number */
		h.gso_type = v == 4 ? NT_VNET_GSO_TCPV4 : NT_VNET_GSO_TCPV6;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		h.gso_type = NT_VNET_GSO_UDP_L4;
		p[v == 4 ? 9 : 6] = 6;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
		p[v == 4 ? 9 : 6] = 17;
		ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), 3);
	}
	/* IPv4 fragments (MF, or an offset) and a bad IHL */
	len = udp_super(p, 4, 3000, 7, &h, 1000);
	p[6] = 0x20;
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
	p[6] = 0x00, p[7] = 0x01;
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
	p[6] = 0x40, p[7] = 0;
	p[0] = 0x44;
	ck_assert_int_eq(nt_offload_split(p, len, &h, out, seg_len, 8), -1);
}
END_TEST

/* Datagrams laid out as the receive path has them: one after another in one buffer, each
 * with room before it, every head's capacity running to the end of the buffer. */
static uint8_t rxbuf[200000];

static size_t udp_batch(struct nt_gro_packet *pk, const size_t *lens, uint8_t (*src)[2048], size_t n, unsigned flags)
{
	size_t off = 16;
	for (size_t i = 0; i < n; i++) {
		memcpy(rxbuf + off, src[i], lens[i]);
		pk[i] = (struct nt_gro_packet){ .data = rxbuf + off, .len = lens[i], .cap = sizeof(rxbuf) - off };
		off += lens[i] + 32;
	}
	return nt_offload_coalesce_flags(pk, n, flags);
}

#define UF (NT_GRO_ADJACENT | NT_GRO_UDP)

/* A merged head, checked as the kernel will use it: finish its partial checksum, verify
 * it over the whole, then cut it with its own header and compare each datagram with the
 * original byte for byte. */
static void check_head(struct nt_gro_packet *h, uint8_t (*orig)[2048], const size_t *lens, size_t first, size_t count)
{
	static uint8_t copy[70000];
	uint8_t *out[64];
	size_t seg_len[64], l3 = (h->data[0] >> 4) == 4 ? 20 : 40;

	ck_assert_uint_eq(h->hdr.gso_type, NT_VNET_GSO_UDP_L4);
	ck_assert_uint_eq(h->hdr.flags, NT_VNET_F_NEEDS_CSUM);
	ck_assert_uint_eq(h->hdr.csum_start, l3);
	ck_assert_uint_eq(h->hdr.csum_offset, 6);
	ck_assert_uint_eq(h->hdr.hdr_len, l3 + 8);
	ck_assert_uint_eq(h->hdr.gso_size, lens[first] - l3 - 8);
	ck_assert_uint_eq(nt_ip_packet_len(h->data, h->len), h->len);
	ck_assert_uint_eq((size_t)(h->data[l3 + 4] << 8 | h->data[l3 + 5]), h->len - l3);
	if (l3 == 20)
		ck_assert_uint_eq((uint16_t)~nt_csum_fold(nt_csum_add(0, h->data, 20)), 0);
	memcpy(copy, h->data, h->len);
	ck_assert_int_eq(nt_offload_finish_csum(copy, h->len, &h->hdr), 0);
	ck_assert(udp_csum_ok(copy, h->len));
	for (int i = 0; i < 64; i++)
		out[i] = wire[i];
	ck_assert_int_eq(nt_offload_split(h->data, h->len, &h->hdr, out, seg_len, 64), (int)count);
	for (size_t i = 0; i < count; i++) {
		ck_assert_uint_eq(seg_len[i], lens[first + i]);
		ck_assert_mem_eq(wire[i], orig[first + i], lens[first + i]);
	}
}

static uint8_t udps[80][2048];

START_TEST(coalesce_udp_runs)
{
	struct nt_gro_packet pk[80];
	size_t lens[80];

	for (int v = 4; v <= 6; v += 2) {
		/* 10 of one flow, the last shorter: one write */
		for (int i = 0; i < 10; i++)
			lens[i] = udp_packet(udps[i], v, i == 9 ? 77 : 1200, 1, (uint16_t)(100 + i), false, (uint32_t)i);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 10, UF), 1);
		check_head(&pk[0], udps, lens, 0, 10);
		/* without NT_GRO_UDP (a TUN without USO) nothing merges and nothing changes */
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 10, NT_GRO_ADJACENT), 10);
		for (int i = 0; i < 10; i++) {
			ck_assert_uint_eq(pk[i].hdr.gso_type, 0);
			ck_assert_mem_eq(pk[i].data, udps[i], lens[i]);
		}
		/* A1 A2 B1 B2 A3 A4: three writes in the order received */
		for (int i = 0; i < 6; i++)
			lens[i] = udp_packet(udps[i], v, 500, i == 2 || i == 3 ? 2 : 1, (uint16_t)i, true, (uint32_t)i);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 6, UF), 3);
		check_head(&pk[0], udps, lens, 0, 2);
		check_head(&pk[2], udps, lens, 2, 2);
		check_head(&pk[4], udps, lens, 4, 2);
		/* A B A B: interleaved flows never merge (even when not adjacent_only) */
		for (int i = 0; i < 4; i++)
			lens[i] = udp_packet(udps[i], v, 500, (uint16_t)(1 + (i & 1)), (uint16_t)i, true, (uint32_t)i);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 4, NT_GRO_UDP), 4);
		for (int i = 0; i < 4; i++)
			ck_assert_mem_eq(pk[i].data, udps[i], lens[i]);
		/* a larger second, or anything after a shorter one, starts anew */
		lens[0] = udp_packet(udps[0], v, 500, 1, 0, true, 0);
		lens[1] = udp_packet(udps[1], v, 501, 1, 1, true, 1);
		lens[2] = udp_packet(udps[2], v, 501, 1, 2, true, 2);
		lens[3] = udp_packet(udps[3], v, 100, 1, 3, true, 3);
		lens[4] = udp_packet(udps[4], v, 100, 1, 4, true, 4);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 5, UF), 3);
		ck_assert_uint_eq(pk[0].len, lens[0]);
		check_head(&pk[1], udps, lens, 1, 3);
		ck_assert_mem_eq(pk[4].data, udps[4], lens[4]);
		/* a TCP segment with the same addresses and ports is another flow */
		lens[0] = udp_packet(udps[0], v, 500, 1, 0, true, 0);
		lens[1] = tcp_packet(udps[1], v, 0, 468, 0x10, 1);
		udps[1][v == 4 ? 20 + 2 : 40 + 2] = 0x11, udps[1][v == 4 ? 23 : 43] = 0x51; /* dport 4433 */
		lens[2] = udp_packet(udps[2], v, 500, 1, 1, true, 1);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 3, UF), 3);
		/* a bad checksum, or another hop limit / TTL, does not merge */
		lens[0] = udp_packet(udps[0], v, 500, 1, 0, true, 0);
		lens[1] = udp_packet(udps[1], v, 500, 1, 1, true, 1);
		udps[1][lens[1] - 1] ^= 1;
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
		lens[1] = udp_packet(udps[1], v, 500, 1, 1, true, 1);
		udps[1][v == 4 ? 8 : 7]--;
		if (v == 4)
			put16(udps[1] + 10, 0), put16(udps[1] + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, udps[1], 20)));
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
		ck_assert_uint_eq(pk[0].hdr.gso_type, 0);
		ck_assert_mem_eq(pk[0].data, udps[0], lens[0]);
	}
}
END_TEST

START_TEST(coalesce_udp_v4_rules)
{
	struct nt_gro_packet pk[8];
	size_t lens[8];

	/* no checksum (IPv4 allows it): nothing to verify, so it goes alone */
	lens[0] = udp_packet(udps[0], 4, 500, 1, 0, true, 0);
	lens[1] = udp_packet(udps[1], 4, 500, 1, 1, true, 1);
	put16(udps[1] + 26, 0);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* nor when the data happen to sum so that 0 would verify */
	lens[1] = udp_packet(udps[1], 4, 500, 1, 1, true, 1);
	udp_csum_to_zero(udps[1], lens[1]);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 1);
	put16(udps[1] + 26, 0);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* a fragment (MF; or an offset) */
	lens[1] = udp_packet(udps[1], 4, 500, 1, 1, true, 1);
	udps[1][6] |= 0x20;
	put16(udps[1] + 10, 0), put16(udps[1] + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, udps[1], 20)));
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	ck_assert_uint_eq(pk[0].hdr.gso_type, 0);
	/* IP options (a 4-byte NOP option before the UDP header) */
	lens[0] = udp_packet(udps[0], 4, 500, 1, 0, true, 0);
	lens[1] = udp_packet(udps[1], 4, 500, 1, 1, true, 1);
	memmove(udps[1] + 24, udps[1] + 20, lens[1] - 20);
	memset(udps[1] + 20, 1, 4);
	udps[1][0] = 0x46;
	lens[1] += 4;
	put16(udps[1] + 2, (uint16_t)lens[1]);
	put16(udps[1] + 10, 0), put16(udps[1] + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, udps[1], 24)));
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* the same options on the head: neither merges */
	memcpy(udps[0], udps[1], lens[1]);
	lens[0] = lens[1];
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* without DF the ids must run on from the head's; with DF they are free */
	lens[0] = udp_packet(udps[0], 4, 500, 1, 10, false, 0);
	lens[1] = udp_packet(udps[1], 4, 500, 1, 12, false, 1);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	lens[1] = udp_packet(udps[1], 4, 500, 1, 11, false, 1);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 1);
	lens[0] = udp_packet(udps[0], 4, 500, 1, 10, true, 0);
	lens[1] = udp_packet(udps[1], 4, 500, 1, 99, true, 1);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 1);
	/* DF differs */
	lens[1] = udp_packet(udps[1], 4, 500, 1, 11, false, 1);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* a UDP length that disagrees with the IP length */
	lens[1] = udp_packet(udps[1], 4, 500, 1, 11, true, 1);
	put16(udps[1] + 24, 500);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
	/* an empty datagram neither merges nor heads */
	lens[0] = udp_packet(udps[0], 4, 0, 1, 0, true, 0);
	lens[1] = udp_packet(udps[1], 4, 0, 1, 1, true, 1);
	ck_assert_uint_eq(udp_batch(pk, lens, udps, 2, UF), 2);
}
END_TEST

START_TEST(coalesce_udp_bounds)
{
	struct nt_gro_packet pk[80];
	size_t lens[80];

	for (int v = 4; v <= 6; v += 2) {
		size_t l3 = v == 4 ? 20 : 40;
		/* 70 small ones: NT_GRO_UDP_SEGMENTS in the first write, the rest in a second */
		for (int i = 0; i < 70; i++)
			lens[i] = udp_packet(udps[i], v, 100, 1, (uint16_t)i, false, (uint32_t)i);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 70, UF), 2);
		check_head(&pk[0], udps, lens, 0, NT_GRO_UDP_SEGMENTS);
		check_head(&pk[NT_GRO_UDP_SEGMENTS], udps, lens, NT_GRO_UDP_SEGMENTS, 70 - NT_GRO_UDP_SEGMENTS);
		/* 50 of 1,400 bytes: a write stays within 65,535 bytes */
		for (int i = 0; i < 50; i++)
			lens[i] = udp_packet(udps[i], v, 1400, 1, (uint16_t)i, true, (uint32_t)i);
		size_t fit = (65535 - l3 - 8) / 1400;
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 50, UF), 2);
		ck_assert_uint_le(pk[0].len, 65535);
		check_head(&pk[0], udps, lens, 0, fit);
		check_head(&pk[fit], udps, lens, fit, 50 - fit);
		/* 70 single datagrams of 70 flows, then a run of one more: the flow table (64)
		 * reuses the slots of flows that merged nothing, so the run still merges */
		for (int i = 0; i < 70; i++)
			lens[i] = udp_packet(udps[i], v, 100, (uint16_t)(100 + i), 0, true, (uint32_t)i);
		for (int i = 70; i < 73; i++)
			lens[i] = udp_packet(udps[i], v, 100, 7, (uint16_t)i, true, (uint32_t)i);
		ck_assert_uint_eq(udp_batch(pk, lens, udps, 73, UF), 71);
		check_head(&pk[70], udps, lens, 70, 3);
		/* a head without room to grow takes nobody */
		for (int i = 0; i < 3; i++) {
			lens[i] = udp_packet(udps[i], v, 1000, 1, (uint16_t)i, true, (uint32_t)i);
			pk[i] = (struct nt_gro_packet){ .data = udps[i], .len = lens[i], .cap = 2048 };
		}
		ck_assert_uint_eq(nt_offload_coalesce_flags(pk, 3, UF), 2);
		ck_assert_uint_eq(pk[0].len, l3 + 8 + 1000 * 2);
	}
}
END_TEST

/* Random mixes of datagrams (some corrupted, some of another flow or size) through the UDP
 * merge: the count is right, and every merged head cuts back with its own header into
 * datagrams that verify; random bytes given to the USO split never crash it (ASan). */
START_TEST(coalesce_udp_garbage_is_safe)
{
	struct test_rng r = { 11 };
	struct nt_gro_packet pk[8];
	size_t lens[8], seg_len[64];
	uint8_t *out[64];

	for (int i = 0; i < 64; i++)
		out[i] = wire[i];
	for (int round = 0; round < 20000; round++) {
		int v = test_rand64(&r) & 1 ? 4 : 6;
		for (int i = 0; i < 8; i++) {
			size_t pl = test_rand64(&r) % 4 ? 300 : (size_t)(test_rand64(&r) % 400);
			lens[i] = udp_packet(udps[i], v, pl, (uint16_t)(1 + (test_rand64(&r) % 8 == 0)), (uint16_t)i,
					     test_rand64(&r) % 8 != 0, (uint32_t)i);
			if ((test_rand64(&r) & 7) == 0)
				udps[i][test_rand64(&r) % lens[i]] ^= (uint8_t)(1 + test_rand64(&r) % 255);
			if ((test_rand64(&r) & 15) == 0)
				lens[i] = (size_t)(test_rand64(&r) % lens[i]);
		}
		size_t left = udp_batch(pk, lens, udps, 8, test_rand64(&r) & 1 ? UF : NT_GRO_UDP), count = 0;
		for (int i = 0; i < 8; i++) {
			count += pk[i].len != 0;
			if (!pk[i].len || pk[i].hdr.gso_type != NT_VNET_GSO_UDP_L4)
				continue;
			int n = nt_offload_split(pk[i].data, pk[i].len, &pk[i].hdr, out, seg_len, 64);
			ck_assert_int_ge(n, 2);
			for (int k = 0; k < n; k++)
				ck_assert(udp_csum_ok(wire[k], seg_len[k]));
		}
		ck_assert_uint_eq(left, count);
		/* random bytes and a random header at the split */
		size_t l = (size_t)(test_rand64(&r) % 1500);
		struct nt_vnet_hdr h = { .gso_type = NT_VNET_GSO_UDP_L4, .gso_size = (uint16_t)(test_rand64(&r) % 1500) };
		test_rng_fill(&r, rxbuf, l);
		if (l >= 48 && (test_rand64(&r) & 1)) { /* a plausible header to get further */
			rxbuf[0] = v == 4 ? 0x45 : 0x60;
			if (v == 4)
				put16(rxbuf + 2, (uint16_t)l), rxbuf[6] = 0x40, rxbuf[7] = 0, rxbuf[9] = 17;
			else
				put16(rxbuf + 4, (uint16_t)(l - 40)), rxbuf[6] = 17;
			put16(rxbuf + (v == 4 ? 24 : 44), (uint16_t)(l - (v == 4 ? 20 : 40)));
		}
		int n = nt_offload_split(rxbuf, l, &h, out, seg_len, 64);
		ck_assert_int_le(n, 64);
		for (int k = 0; k < n; k++)
			ck_assert(udp_csum_ok(wire[k], seg_len[k]));
	}
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
	tcase_add_test(tc, uso_split_v4);
	tcase_add_test(tc, uso_split_v6);
	tcase_add_test(tc, uso_split_rejects_malformed);
	tcase_add_test(tc, coalesce_udp_runs);
	tcase_add_test(tc, coalesce_udp_v4_rules);
	tcase_add_test(tc, coalesce_udp_bounds);
	tcase_add_test(tc, coalesce_udp_garbage_is_safe);
	tcase_add_test(tc, coalesce_garbage_is_safe);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
