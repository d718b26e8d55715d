/* lib/mss.c: MSS clamping of TCP SYNs, v4 and v6, with the TCP checksum checked by a full
 * recompute (written here, independent of lib/offload.c) after every clamp. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>

#include "noisetun/config.h"
#include "noisetun/mss.h"
#include "util.h"

#define MTU 1280

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static unsigned get16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }

/* The folded one's complement sum of the pseudo header and the TCP segment, naively. */
static unsigned tcp_sum(const uint8_t *p)
{
	uint32_t sum = 0;
	size_t l3, end;

	if ((p[0] >> 4) == 4) {
		l3 = (size_t)(p[0] & 15) * 4;
		end = get16(p + 2);
		for (int i = 12; i < 20; i += 2)
			sum += get16(p + i);
		sum += 6 + (uint32_t)(end - l3);
	} else {
		l3 = 40;
		end = 40 + get16(p + 4);
		for (int i = 8; i < 40; i += 2)
			sum += get16(p + i);
		sum += 6 + (uint32_t)(end - l3);
	}
	for (size_t i = l3; i < end; i += 2)
		sum += (uint32_t)p[i] << 8 | (i + 1 < end ? p[i + 1] : 0);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static size_t l3_len(const uint8_t *p)
{
	return (p[0] >> 4) == 4 ? (size_t)(p[0] & 15) * 4 : 40;
}

/* The checksum field equals a full recompute (with the field zeroed). */
static bool checksum_exact(uint8_t *p)
{
	uint8_t *c = p + l3_len(p) + 16;
	unsigned have = get16(c), want;

	put16(c, 0);
	want = ~tcp_sum(p) & 0xffff;
	put16(c, have);
	return have == want;
}

/* A TCP packet: v 4 or 6, ip_opts bytes of IPv4 options (NOPs, a multiple of 4), the
 * given TCP options (padded with EOL to a multiple of 4) and payload bytes; correct
 * lengths and checksum. Returns the length. */
static size_t build(uint8_t *p, int v, size_t ip_opts, uint8_t flags, const uint8_t *opts, size_t opts_len,
		    size_t payload)
{
	size_t l3 = v == 4 ? 20 + ip_opts : 40, thl = 20 + ((opts_len + 3) & ~(size_t)3), len = l3 + thl + payload;

	memset(p, 0, len);
	if (v == 4) {
		p[0] = (uint8_t)(0x40 | l3 / 4);
		put16(p + 2, (unsigned)len);
		put16(p + 4, 0x4242);
		p[6] = 0x40; /* DF */
		p[8] = 64;
		p[9] = 6;
		p[12] = 10, p[13] = 1, p[14] = 0, p[15] = 2;
		p[16] = 10, p[17] = 0, p[18] = 0, p[19] = 2;
		memset(p + 20, 1, ip_opts);
	} else {
		p[0] = 0x60;
		put16(p + 4, (unsigned)(len - 40));
		p[6] = 6;
		p[7] = 64;
		p[8] = 0xfd, p[9] = 1, p[23] = 2;
		p[24] = 0xfd, p[39] = 2;
	}
	uint8_t *t = p + l3;
	put16(t, 40000);
	put16(t + 2, 443);
	put16(t + 4, 0x1234), put16(t + 6, 0x5678);
	t[12] = (uint8_t)(thl / 4 << 4);
	t[13] = flags;
	put16(t + 14, 64240);
	if (opts_len)
		memcpy(t + 20, opts, opts_len);
	for (size_t i = 0; i < payload; i++)
		t[thl + i] = (uint8_t)(i * 31 + 7);
	put16(t + 16, ~tcp_sum(p) & 0xffff);
	return len;
}

#define SYN 0x02
#define ACK 0x10
/* Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale. */
#define LINUX_OPTS(mss) { 2, 4, (mss) >> 8, (mss) & 0xff, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7 }

/* The MSS value of the first MSS option, found by a simple walk; -1 if none. */
static int mss_of(const uint8_t *p)
{
	const uint8_t *t = p + l3_len(p);
	size_t thl = (size_t)(t[12] >> 4) * 4;

	for (size_t i = 20; i < thl;) {
		if (t[i] == 0)
			break;
		if (t[i] == 1) {
			i++;
			continue;
		}
		if (t[i] == 2 && t[i + 1] == 4)
			return (int)get16(t + i + 2);
		i += t[i + 1];
	}
	return -1;
}

/* Clamp p and check: the result, the MSS after, the checksum, and that nothing else moved. */
static void check_clamp(uint8_t *p, size_t len, unsigned mtu, int want_ret, int want_mss)
{
	uint8_t before[2048];
	int ret;

	memcpy(before, p, len);
	ret = nt_mss_clamp(p, len, mtu);
	ck_assert_int_eq(ret, want_ret);
	ck_assert_int_eq(mss_of(p), want_mss);
	ck_assert_msg(checksum_exact(p), "TCP checksum wrong after clamping");
	if (!ret)
		ck_assert_mem_eq(p, before, len);
	else {
		size_t differ = 0;
		for (size_t i = 0; i < len; i++)
			differ += p[i] != before[i];
		ck_assert_uint_le(differ, 4); /* two MSS bytes, two checksum bytes */
	}
}

START_TEST(limits)
{
	ck_assert_uint_eq(nt_mss_limit(1280, 4), 1240);
	ck_assert_uint_eq(nt_mss_limit(1280, 6), 1220);
	ck_assert_uint_eq(nt_mss_limit(1420, 4), 1380);
	ck_assert_uint_eq(nt_mss_limit(40, 4), 0);
	ck_assert_uint_eq(nt_mss_limit(60, 6), 0);
	ck_assert_uint_eq(nt_mss_limit(200000, 4), 0xffff);
}
END_TEST

START_TEST(v4_syn_and_syn_ack)
{
	static const uint8_t hi[] = LINUX_OPTS(1460), lo[] = LINUX_OPTS(1200), at[] = LINUX_OPTS(1240);
	uint8_t p[256];
	size_t len;

	len = build(p, 4, 0, SYN, hi, sizeof(hi), 0);
	ck_assert(checksum_exact(p));
	check_clamp(p, len, MTU, 1, 1240);
	len = build(p, 4, 0, SYN | ACK, hi, sizeof(hi), 0);
	check_clamp(p, len, MTU, 1, 1240);
	len = build(p, 4, 0, SYN, lo, sizeof(lo), 0);
	check_clamp(p, len, MTU, 0, 1200); /* never raised */
	len = build(p, 4, 0, SYN | ACK, at, sizeof(at), 0);
	check_clamp(p, len, MTU, 0, 1240);
	len = build(p, 4, 0, SYN, hi, sizeof(hi), 0);
	check_clamp(p, len, 0, 0, 1460); /* mtu 0: off */
	check_clamp(p, len, 40, 0, 1460); /* no room for any MSS: left alone */
	check_clamp(p, len, 1500, 0, 1460);
	check_clamp(p, len, 1499, 1, 1459);
}
END_TEST

START_TEST(v4_header_options)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];

	for (size_t o = 4; o <= 40; o += 4) {
		size_t len = build(p, 4, o, SYN, hi, sizeof(hi), 0);
		check_clamp(p, len, MTU, 1, 1240);
	}
}
END_TEST

START_TEST(v6_syn_and_syn_ack)
{
	static const uint8_t hi[] = LINUX_OPTS(1440), lo[] = LINUX_OPTS(1000);
	uint8_t p[256];
	size_t len;

	len = build(p, 6, 0, SYN, hi, sizeof(hi), 0);
	ck_assert(checksum_exact(p));
	check_clamp(p, len, MTU, 1, 1220);
	len = build(p, 6, 0, SYN | ACK, hi, sizeof(hi), 0);
	check_clamp(p, len, MTU, 1, 1220);
	len = build(p, 6, 0, SYN, lo, sizeof(lo), 0);
	check_clamp(p, len, MTU, 0, 1000);
	len = build(p, 6, 0, SYN, hi, sizeof(hi), 0);
	check_clamp(p, len, 1500, 0, 1440);
}
END_TEST

START_TEST(extension_headers_left_alone)
{
	static const uint8_t hi[] = LINUX_OPTS(1440);
	uint8_t p[256];
	size_t len = build(p, 6, 0, SYN, hi, sizeof(hi), 0);

	for (unsigned nh = 0; nh < 256; nh++) {
		if (nh == 6)
			continue;
		p[6] = (uint8_t)nh; /* hop-by-hop, routing, fragment (44), ...: not TCP directly */
		ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
		ck_assert_int_eq(mss_of(p), 1440);
	}
}
END_TEST

START_TEST(no_mss_option)
{
	static const uint8_t ts[] = { 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0 };
	static const uint8_t sack_ws[] = { 4, 2, 1, 3, 3, 7 };
	uint8_t p[256];
	size_t len;

	len = build(p, 4, 0, SYN, NULL, 0, 0);
	check_clamp(p, len, MTU, 0, -1);
	len = build(p, 4, 0, SYN, ts, sizeof(ts), 0);
	check_clamp(p, len, MTU, 0, -1);
	len = build(p, 6, 0, SYN | ACK, sack_ws, sizeof(sack_ws), 0);
	check_clamp(p, len, MTU, 0, -1);
}
END_TEST

START_TEST(nop_padding_and_odd_offsets)
{
	/* the MSS value at every alignment: 0 to 3 NOPs before it, and after other options */
	uint8_t opts[40], p[256];

	for (int v = 4; v <= 6; v += 2)
		for (size_t nops = 0; nops < 8; nops++) {
			size_t n = 0, len;

			memset(opts, 1, nops);
			n = nops;
			if (nops & 4) {
				opts[n++] = 4, opts[n++] = 2; /* SACK permitted */
				opts[n++] = 3, opts[n++] = 3, opts[n++] = 9; /* window scale: odd again */
			}
			opts[n++] = 2, opts[n++] = 4, opts[n++] = 0xff, opts[n++] = 0xd7; /* 65495, loopback's */
			len = build(p, v, 0, SYN, opts, n, 0);
			check_clamp(p, len, MTU, 1, v == 4 ? 1240 : 1220);
			len = build(p, v, 0, SYN | ACK, opts, n, 17); /* a SYN with data: odd length too */
			check_clamp(p, len, MTU, 1, v == 4 ? 1240 : 1220);
		}
}
END_TEST

START_TEST(not_a_syn)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];
	size_t len;

	for (unsigned flags = 0; flags < 256; flags++) {
		if (flags & SYN)
			continue;
		len = build(p, 4, 0, (uint8_t)flags, hi, sizeof(hi), 5);
		check_clamp(p, len, MTU, 0, 1460);
	}
}
END_TEST

START_TEST(malformed_options)
{
	static const struct {
		uint8_t opts[12];
		size_t len;
		int ret;
	} cases[] = {
		{ { 0, 2, 4, 5, 0xb4 }, 5, 0 },                       /* EOL first: the rest is not parsed */
		{ { 8, 0, 2, 4, 5, 0xb4 }, 6, 0 },                    /* a length 0: stop (no endless loop) */
		{ { 8, 1, 2, 4, 5, 0xb4 }, 6, 0 },                    /* a length 1 */
		{ { 8, 40, 2, 4, 5, 0xb4 }, 6, 0 },                   /* a length past the header */
		{ { 2, 3, 5, 0xb4 }, 4, 0 },                          /* MSS with length 3 */
		{ { 2, 5, 5, 0xb4, 0 }, 5, 0 },                       /* MSS with length 5 */
		{ { 1, 1, 1, 2 }, 4, 0 },                             /* MSS kind as the header's last byte */
		{ { 1, 1, 2, 4 }, 4, 0 },                             /* MSS whose value is past the header */
		{ { 2, 4, 5, 0xb4, 2, 4, 5, 0xb4 }, 8, 1 },           /* two MSS options: both lowered */
		{ { 1, 2, 4, 5, 0xb4, 8, 200 }, 7, 1 },               /* a bad option after a good MSS */
	};
	uint8_t p[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = build(p, 4, 0, SYN, cases[i].opts, cases[i].len, 0);
		uint8_t before[256];

		memcpy(before, p, len);
		ck_assert_msg(nt_mss_clamp(p, len, MTU) == cases[i].ret, "case %zu", i);
		ck_assert_msg(checksum_exact(p), "case %zu: checksum", i);
		if (!cases[i].ret)
			ck_assert_mem_eq(p, before, len);
		else
			ck_assert_int_eq(mss_of(p), 1240);
	}
}
END_TEST

START_TEST(bad_headers)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];
	size_t len = build(p, 4, 0, SYN, hi, sizeof(hi), 0);
	uint8_t keep[256];

	memcpy(keep, p, len);
	p[12 + 20] = 0x40; /* data offset 4 (< 5) */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	p[12 + 20] = 0xf0; /* data offset 15: 60 bytes, past the packet */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	memcpy(p, keep, len);
	p[0] = 0x44; /* IHL 4 */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	p[0] = 0x4f; /* IHL 15: header past the TCP start */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	memcpy(p, keep, len);
	put16(p + 2, (unsigned)len + 1); /* total length beyond what was read */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	put16(p + 2, 30); /* total length cuts the TCP header */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	memcpy(p, keep, len);
	p[0] = 0x55; /* IP version 5 */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	memcpy(p, keep, len);
	p[9] = 17; /* UDP, whose bytes happen to look the same */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	memcpy(p, keep, len);
	/* a jumbogram-style IPv6 payload length 0 */
	len = build(p, 6, 0, SYN, hi, sizeof(hi), 0);
	put16(p + 4, 0);
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
}
END_TEST

START_TEST(fragments_left_alone)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];
	size_t len = build(p, 4, 0, SYN, hi, sizeof(hi), 0);

	p[6] = 0x20; /* MF: a first fragment, so a fragmented SYN */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	p[6] = 0x00, p[7] = 0x01; /* offset 8: a later fragment whose bytes look like a SYN */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	p[6] = 0x5f, p[7] = 0xff; /* DF + MF + largest offset */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 0);
	ck_assert_int_eq(mss_of(p), 1460);
	p[6] = 0x40, p[7] = 0; /* DF alone: not a fragment */
	ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 1);
}
END_TEST

/* Every cut of a clampable SYN, in a buffer of exactly that size (ASan sees any read
 * past it); a cut packet's lengths no longer match, so nothing changes. */
START_TEST(truncated)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];

	for (int v = 4; v <= 6; v += 2) {
		size_t len = build(p, v, v == 4 ? 8 : 0, SYN, hi, sizeof(hi), 3);

		for (size_t cut = 0; cut < len; cut++) {
			uint8_t *q = malloc(cut ? cut : 1);

			ck_assert_ptr_nonnull(q);
			memcpy(q, p, cut);
			ck_assert_int_eq(nt_mss_clamp(q, cut, MTU), 0);
			ck_assert(!cut || !memcmp(q, p, cut));
			free(q);
		}
		ck_assert_int_eq(nt_mss_clamp(p, len, MTU), 1);
	}
}
END_TEST

/* A packet as the TUN gives it with IFF_VNET_HDR, virtio_net_hdr first: not an IP packet
 * (version 0 or 1), so it is never taken for one. */
START_TEST(vnet_header_not_misparsed)
{
	static const uint8_t hi[] = LINUX_OPTS(1460);
	uint8_t p[256];
	size_t len = build(p + 10, 4, 0, SYN, hi, sizeof(hi), 0);

	for (unsigned flags = 0; flags < 2; flags++) {
		memset(p, 0, 10);
		p[0] = (uint8_t)flags; /* NEEDS_CSUM or none */
		ck_assert_int_eq(nt_mss_clamp(p, len + 10, MTU), 0);
		ck_assert_int_eq(mss_of(p + 10), 1460);
	}
	ck_assert_int_eq(nt_mss_clamp(p + 10, len, MTU), 1);
}
END_TEST

/* Random SYNs: random options around the MSS, random MSS, MTU and payload; after the
 * clamp the checksum must be exactly a full recompute, the MSS min(old, limit). */
START_TEST(random_checksums_exact)
{
	struct test_rng rng = { 0x6d7373 };
	uint8_t p[2048], opts[40];
	unsigned clamped = 0;

	for (int iter = 0; iter < 200000; iter++) {
		uint64_t r = test_rand64(&rng);
		int v = r & 1 ? 6 : 4;
		size_t n = 0, nops = (r >> 1) % 4, ip_opts = v == 4 ? ((r >> 3) % 11) * 4 : 0;
		size_t payload = (r >> 7) % 1200;
		unsigned mss = (unsigned)(test_rand64(&rng) & 0xffff);
		unsigned mtu = 68 + (unsigned)(test_rand64(&rng) % 9000);
		uint8_t flags = (uint8_t)(SYN | ((r >> 20) & 1 ? ACK : 0) | ((r >> 21) & 0x08));
		unsigned limit = nt_mss_limit(mtu, v);

		if ((r >> 22) & 1)
			opts[n++] = 4, opts[n++] = 2;
		memset(opts + n, 1, nops);
		n += nops;
		opts[n++] = 2, opts[n++] = 4, opts[n++] = (uint8_t)(mss >> 8), opts[n++] = (uint8_t)mss;
		if ((r >> 23) & 1)
			opts[n++] = 1, opts[n++] = 3, opts[n++] = 3, opts[n++] = (uint8_t)(r >> 24);
		if ((r >> 32) & 1) {
			opts[n++] = 8, opts[n++] = 10;
			for (int k = 0; k < 8; k++)
				opts[n++] = (uint8_t)(r >> (k * 3));
		}
		size_t len = build(p, v, ip_opts, flags, opts, n, payload);
		/* random sequence numbers and ports put the checksum anywhere, 0 and 0xffff too */
		uint64_t s = test_rand64(&rng);
		uint8_t *t = p + l3_len(p);
		memcpy(t, &s, 8);
		put16(t + 16, 0);
		put16(t + 16, ~tcp_sum(p) & 0xffff);
		check_clamp(p, len, mtu, limit && mss > limit, limit && mss > limit ? (int)limit : (int)mss);
		clamped += limit && mss > limit;
	}
	ck_assert_uint_gt(clamped, 100000); /* both branches well covered */
}
END_TEST

/* Random bytes of random lengths (exactly allocated, for ASan): never a crash, and a
 * change only to a packet that is a well-formed IP + TCP SYN. */
START_TEST(random_garbage_is_safe)
{
	struct test_rng rng = { 0x6a756e6b };

	for (int iter = 0; iter < 100000; iter++) {
		size_t len = test_rand64(&rng) % 120;
		uint8_t *q = malloc(len ? len : 1);

		ck_assert_ptr_nonnull(q);
		test_rng_fill(&rng, q, len);
		if (len && (iter & 1))
			q[0] = (uint8_t)((iter & 2 ? 0x40 : 0x60) | (q[0] & 0x0f));
		if (len > 9 && (iter & 4))
			q[(q[0] >> 4) == 4 ? 9 : 6] = 6;
		(void)nt_mss_clamp(q, len, (unsigned)(test_rand64(&rng) % 2000));
		free(q);
	}
}
END_TEST

/* The switch in a config file: "# noisetun-mss-clamp = off" in [Interface], a comment so
 * wg and wg-quick read the file as before; on by default; a wrong value or place fails. */
#define CONF_KEY "yFxSy/c3mPGMLtn52cSC8OpfBVeWoJP43oyQyL2OWk0="
#define CONF_PUB "71ijKzQYRpA6TEOHXexD5mXTm7ddWZKd6yHUM8Q2ino="

static int parse_conf(const char *text, int flags, struct nt_config *cfg, struct nt_config_error *err)
{
	return nt_config_parse(cfg, text, strlen(text), flags, err);
}

START_TEST(config_switch)
{
	static const struct {
		const char *text;
		int ret;      /* 0 or -EINVAL */
		bool off;
	} cases[] = {
		{ "[Interface]\nPrivateKey = " CONF_KEY "\n", 0, false },
		{ "[Interface]\n# noisetun-mss-clamp = off\nPrivateKey = " CONF_KEY "\n", 0, true },
		{ "[Interface]\n  #NoiseTun-MSS-Clamp=OFF  \r\n", 0, true },
		{ "[Interface]\n# noisetun-mss-clamp = false\n", 0, true },
		{ "[Interface]\n# noisetun-mss-clamp = off\n# noisetun-mss-clamp = on\n", 0, false },
		{ "[Interface]\n# noisetun-mss-clamp = true\n", 0, false },
		{ "[Interface]\nListenPort = 1 # noisetun-mss-clamp = off\n", 0, false }, /* not a whole line */
		{ "[Interface]\n# noisetun-mss-clamps = off\n", 0, false },            /* another key */
		{ "[Interface]\n# noisetun-mss-clamp = of\n", -EINVAL, false },
		{ "[Interface]\n# noisetun-mss-clamp =\n", -EINVAL, false },
		{ "[Interface]\n[Peer]\nPublicKey = " CONF_PUB "\n# noisetun-mss-clamp = off\n", -EINVAL, false },
		{ "# noisetun-mss-clamp = off\n[Interface]\n", -EINVAL, false },
	};
	struct nt_config cfg;
	struct nt_config_error err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int flags = NT_CONFIG_WG_QUICK; flags <= NT_CONFIG_WG_ONLY; flags++) {
			int ret = parse_conf(cases[i].text, flags, &cfg, &err);

			ck_assert_msg(ret == cases[i].ret, "case %zu: %d (%u: %s)", i, ret, err.line, err.message);
			if (!ret) {
				ck_assert_msg(cfg.no_mss_clamp == cases[i].off, "case %zu", i);
				nt_config_free(&cfg);
			} else {
				ck_assert_ptr_nonnull(strstr(err.message, "noisetun-mss-clamp"));
			}
		}
	}
	ck_assert(nt_config_is_noisetun_comment("# noisetun-mss-clamp = off\n", 27));
	ck_assert(nt_config_is_noisetun_comment("#noisetun-mss-clamp=on", 22));
	ck_assert(!nt_config_is_noisetun_comment("# noisetun-endpoint = a:1\n", 26));
	ck_assert(!nt_config_is_noisetun_comment("MTU = 1 # noisetun-mss-clamp = off", 34));
	ck_assert(!nt_config_is_noisetun_comment("# noisetun-mss-clamp off", 24));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("mss");
	TCase *tc = tcase_create("mss");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, limits);
	tcase_add_test(tc, v4_syn_and_syn_ack);
	tcase_add_test(tc, v4_header_options);
	tcase_add_test(tc, v6_syn_and_syn_ack);
	tcase_add_test(tc, extension_headers_left_alone);
	tcase_add_test(tc, no_mss_option);
	tcase_add_test(tc, nop_padding_and_odd_offsets);
	tcase_add_test(tc, not_a_syn);
	tcase_add_test(tc, malformed_options);
	tcase_add_test(tc, bad_headers);
	tcase_add_test(tc, fragments_left_alone);
	tcase_add_test(tc, truncated);
	tcase_add_test(tc, vnet_header_not_misparsed);
	tcase_add_test(tc, random_checksums_exact);
	tcase_add_test(tc, random_garbage_is_safe);
	tcase_add_test(tc, config_switch);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
