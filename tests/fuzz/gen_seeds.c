/* Seeds for fuzz_datagram: valid messages of every type from the harness's own baseline,
 * in both input forms (harness.h), written one file each into DIR/fuzz_datagram/.
 * Each seed is also run here and must do what its name says (a seed that stopped reaching
 * its state would quietly make the fuzzer shallower), so this doubles as the harness's test.
 *
 *   gen_seeds DIR */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "noisetun/messages.h"

#include "noisetun/ratelimiter.h"

#include "harness.h"

struct seed {
	uint8_t buf[16384];
	size_t len;
};

static const char *dir;
static int failures, written;

static void put(struct seed *s, const void *p, size_t n)
{
	if (s->len + n > sizeof(s->buf)) {
		fprintf(stderr, "gen_seeds: seed too long\n");
		exit(1);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

static void put_u8(struct seed *s, uint8_t v)
{
	put(s, &v, 1);
}

static void put_u16(struct seed *s, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	put(s, b, 2);
}

static void put_u32(struct seed *s, uint32_t v)
{
	put_u16(s, (uint16_t)v);
	put_u16(s, (uint16_t)(v >> 16));
}

static uint8_t op(enum fz_step_kind kind, bool load, enum fz_source src, unsigned time_step)
{
	return (uint8_t)(kind | (load ? FZ_OP_LOAD : 0) | src << FZ_OP_SRC_SHIFT | time_step << FZ_OP_TIME_SHIFT);
}

/* A single-form seed: flags, then one template message. */
static struct seed *single(enum fz_template t, bool load, enum fz_source src, unsigned time_step, bool timers)
{
	static struct seed s;
	size_t len;
	const uint8_t *msg = fz_template(t, &len);

	s.len = 0;
	put_u8(&s, (uint8_t)((load ? FZ_F_LOAD : 0) | src << FZ_F_SRC_SHIFT | time_step << FZ_F_TIME_SHIFT |
			     (timers ? FZ_F_TIMERS : 0)));
	put(&s, msg, len);
	return &s;
}

static struct seed *program(void)
{
	static struct seed s;

	s.len = 0;
	put_u8(&s, FZ_F_PROGRAM);
	return &s;
}

static void template_step(struct seed *s, enum fz_template t, uint8_t tflags, bool load, enum fz_source src,
			  unsigned time_step)
{
	put_u8(s, op(FZ_STEP_TEMPLATE, load, src, time_step));
	put_u8(s, (uint8_t)(t | tflags));
	put_u8(s, 0); /* no edits */
}

static void craft_init(struct seed *s, int32_t seconds, uint32_t sender, bool no_mac2, bool load, unsigned time_step)
{
	put_u8(s, op(FZ_STEP_CRAFT, load, FZ_SRC_PEER, time_step));
	put_u8(s, FZ_C_INIT);
	put_u32(s, (uint32_t)seconds);
	put_u32(s, sender);
	put_u8(s, no_mac2);
}

/* A TCP segment (ACK) of P's flow 10.0.0.2:1000 -> 10.0.0.1:2000 or fd00::2 -> fd00::1,
 * with payload bytes of sequence number seq; lengths and checksums are left to the harness. */
static size_t tcp_segment(uint8_t *pkt, bool v6, uint32_t seq, size_t payload)
{
	size_t l3 = v6 ? 40 : 20, len = l3 + 20 + payload;
	uint8_t *tcp = pkt + l3;

	memset(pkt, 0, len);
	if (v6) {
		static const uint8_t src[16] = { 0xfd, [15] = 2 }, dst[16] = { 0xfd, [15] = 1 };

		pkt[0] = 0x60;
		pkt[6] = 6;
		pkt[7] = 64;
		memcpy(pkt + 8, src, 16);
		memcpy(pkt + 24, dst, 16);
	} else {
		static const uint8_t addrs[8] = { 10, 0, 0, 2, 10, 0, 0, 1 };

		pkt[0] = 0x45;
		pkt[6] = 0x40; /* DF */
		pkt[8] = 64;
		pkt[9] = 6;
		memcpy(pkt + 12, addrs, 8);
	}
	tcp[0] = 1000 >> 8, tcp[1] = 1000 & 0xff, tcp[2] = 2000 >> 8, tcp[3] = 2000 & 0xff;
	tcp[4] = (uint8_t)(seq >> 24), tcp[5] = (uint8_t)(seq >> 16), tcp[6] = (uint8_t)(seq >> 8), tcp[7] = (uint8_t)seq;
	tcp[11] = 1;    /* ack 1 */
	tcp[12] = 5 << 4;
	tcp[13] = 0x10; /* ACK */
	tcp[14] = 0xff; /* window */
	for (size_t i = 0; i < payload; i++)
		tcp[20 + i] = (uint8_t)(seq + i);
	return len;
}

static void craft_data(struct seed *s, const uint8_t *pkt, size_t len)
{
	put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
	put_u8(s, FZ_C_DATA);
	put_u8(s, FZ_CD_FIX_CSUM);
	put_u16(s, (uint16_t)len);
	put(s, pkt, len);
}

static void craft_gro(struct seed *s, uint8_t pkt[][200], const size_t *len, unsigned count)
{
	put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
	put_u8(s, FZ_C_GRO);
	put_u8(s, FZ_CD_FIX_CSUM);
	put_u8(s, (uint8_t)(count - 1));
	put_u16(s, (uint16_t)len[0]);
	put_u16(s, (uint16_t)len[count - 1]);
	for (unsigned i = 0; i < count; i++)
		put(s, pkt[i], len[i]);
}

/* Write the seed; ok says whether it did `what` when run. */
static void emit(const char *name, const struct seed *s, const char *what, bool ok)
{
	char path[4096];
	FILE *f;

	if (!ok) {
		fprintf(stderr, "gen_seeds: seed %s does not %s\n", name, what);
		failures++;
	}
	snprintf(path, sizeof(path), "%s/fuzz_datagram/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(s->buf, 1, s->len, f) != s->len || fclose(f)) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	written++;
}

static struct fz_outcome run(const struct seed *s)
{
	struct fz_outcome o;

	fz_run_input(s->buf, s->len, &o);
	return o;
}

int main(int argc, char **argv)
{
	char path[4096];
	struct fz_outcome o;
	struct seed *s;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_seeds DIR\n");
		return 2;
	}
	dir = argv[1];
	snprintf(path, sizeof(path), "%s/fuzz_datagram", dir);
	mkdir(dir, 0777);
	if (mkdir(path, 0777) && errno != EEXIST) {
		fprintf(stderr, "gen_seeds: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fz_setup();

	/* ---- single form: one message each ---- */
	s = single(FZ_TPL_INIT, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("init", s, "get a response", o.initiations_accepted == 1 && o.sent_responses == 1);
	s = single(FZ_TPL_INIT, true, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("init-load", s, "pass mac2 under load", o.initiations_accepted == 1 && !o.sent_cookie_replies);
	s = single(FZ_TPL_INIT_NOMAC2, true, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("init-load-nomac2", s, "get a cookie reply", !o.initiations_accepted && o.sent_cookie_replies == 1);
	s = single(FZ_TPL_INIT, true, FZ_SRC_V6, 0, false);
	o = run(s);
	emit("init-load-v6", s, "get a cookie reply (mac2 of another source)",
	     !o.initiations_accepted && o.sent_cookie_replies == 1);
	s = single(FZ_TPL_INIT, true, FZ_SRC_PEER, 5, false);
	o = run(s);
	emit("init-load-old-secret", s, "get a cookie reply (secret 120 s old)",
	     !o.initiations_accepted && o.sent_cookie_replies == 1);
	s = single(FZ_TPL_INIT_REPLAY, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("init-replay", s, "drop as a replay", o.drops[NT_DROP_TIMESTAMP] == 1);
	s = single(FZ_TPL_INIT_UNKNOWN, false, FZ_SRC_OTHER4, 0, false);
	o = run(s);
	emit("init-unknown", s, "drop as unknown", o.drops[NT_DROP_UNKNOWN_PEER] == 1);
	s = single(FZ_TPL_INIT, false, FZ_SRC_PEER, 0, false);
	s->len--;
	o = run(s);
	emit("init-short", s, "drop for its size", o.drops[NT_DROP_SIZE] == 1);
	s = single(FZ_TPL_RESP, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("resp", s, "complete the handshake", o.responses_accepted == 1 && o.sent_keepalives == 1);
	s = single(FZ_TPL_RESP, true, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("resp-load", s, "pass mac2 under load", o.responses_accepted == 1);
	s = single(FZ_TPL_RESP_NOMAC2, true, FZ_SRC_V6_SAME64, 0, false);
	o = run(s);
	emit("resp-load-nomac2", s, "get a cookie reply", !o.responses_accepted && o.sent_cookie_replies == 1);
	s = single(FZ_TPL_COOKIE, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("cookie", s, "be accepted", o.cookies_accepted == 1);
	s = single(FZ_TPL_DATA_KEEPALIVE, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-keepalive", s, "be accepted", o.keepalives_accepted == 1);
	s = single(FZ_TPL_DATA_V4, false, FZ_SRC_OTHER4, 0, false);
	o = run(s);
	emit("data-v4", s, "reach the TUN", o.tun_writes == 1);
	s = single(FZ_TPL_DATA_V6, false, FZ_SRC_V6, 0, false);
	o = run(s);
	emit("data-v6", s, "reach the TUN", o.tun_writes == 1);
	s = single(FZ_TPL_DATA_BIG, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-big", s, "reach the TUN", o.tun_writes == 1);
	s = single(FZ_TPL_DATA_SPOOF4, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-spoof4", s, "be dropped by source", o.drops_source == 1 && !o.tun_writes);
	s = single(FZ_TPL_DATA_SPOOF6, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-spoof6", s, "be dropped by source", o.drops_source == 1 && !o.tun_writes);
	s = single(FZ_TPL_DATA_BADLEN, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-badlen", s, "be dropped as malformed", o.drops_malformed == 1);
	s = single(FZ_TPL_DATA_REPLAY, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-replay", s, "be dropped as a replay", o.drops[NT_DROP_REPLAY] == 1);
	s = single(FZ_TPL_DATA_B, false, FZ_SRC_PEER, 0, false);
	o = run(s);
	emit("data-b-early", s, "be dropped (no such keypair yet)", o.drops_index == 1);
	s = single(FZ_TPL_DATA_V4, false, FZ_SRC_PEER, 7, true);
	o = run(s);
	emit("data-v4-expired-timers", s, "be dropped as expired", o.drops[NT_DROP_EXPIRED] == 1);
	s = single(FZ_TPL_DATA_KEEPALIVE, false, FZ_SRC_PEER, 4, true);
	o = run(s);
	emit("timers-retransmit", s, "retransmit D's initiation", o.sent_initiations == 1);

	/* ---- program form ---- */
	s = program();
	template_step(s, FZ_TPL_RESP, 0, false, FZ_SRC_PEER, 0);
	template_step(s, FZ_TPL_DATA_B, 0, false, FZ_SRC_PEER, 1);
	o = run(s);
	emit("p-resp-data-b", s, "deliver data on the new session", o.responses_accepted == 1 && o.tun_writes == 1);

	s = program();
	template_step(s, FZ_TPL_RESP, 0, false, FZ_SRC_PEER, 0);
	template_step(s, FZ_TPL_DATA_B, 0, false, FZ_SRC_PEER, 6);
	o = run(s);
	emit("p-rekey-on-receive", s, "rekey on receive at 170 s", o.tun_writes == 1 && o.sent_initiations == 1);

	s = program();
	for (enum fz_template t = FZ_TPL_DATA_KEEPALIVE; t <= FZ_TPL_DATA_BADLEN; t++)
		template_step(s, t, 0, false, FZ_SRC_PEER, 0);
	template_step(s, FZ_TPL_DATA_V4, 0, false, FZ_SRC_PEER, 0);
	o = run(s);
	emit("p-all-data", s, "deliver each once", o.tun_writes == 3 && o.drops[NT_DROP_REPLAY] == 2);

	s = program();
	template_step(s, FZ_TPL_INIT, FZ_T_MAC1 | FZ_T_MAC2, false, FZ_SRC_PEER, 0);
	s->len--; /* one edit: the sender index, macs recomputed */
	put_u8(s, 1);
	put_u16(s, NT_INIT_OFF_SENDER);
	put_u8(s, 0x5a);
	o = run(s);
	emit("p-init-edit-sender", s, "pass with recomputed macs", o.initiations_accepted == 1);

	s = program();
	template_step(s, FZ_TPL_INIT, FZ_T_MAC1, false, FZ_SRC_PEER, 0);
	s->len--;
	put_u8(s, 1);
	put_u16(s, NT_INIT_OFF_STATIC + 3);
	put_u8(s, 0x01);
	o = run(s);
	emit("p-init-edit-static", s, "fail to decrypt past mac1", o.drops[NT_DROP_DECRYPT] == 1);

	s = program();
	template_step(s, FZ_TPL_DATA_V4, FZ_T_RESEAL, false, FZ_SRC_PEER, 0);
	s->len--;
	put_u8(s, 1);
	put_u16(s, 15); /* source 10.0.0.2 -> 10.0.0.3 */
	put_u8(s, 0x01);
	o = run(s);
	emit("p-reseal-spoof", s, "be dropped by source", o.drops_source == 1);

	s = program();
	template_step(s, FZ_TPL_INIT_NOMAC2, 0, true, FZ_SRC_PEER, 0);
	template_step(s, FZ_TPL_INIT, 0, false, FZ_SRC_PEER, 1);
	o = run(s);
	emit("p-load-hold", s, "stay under load and pass mac2",
	     o.sent_cookie_replies == 1 && o.initiations_accepted == 1);

	s = program();
	template_step(s, FZ_TPL_COOKIE, 0, false, FZ_SRC_PEER, 0);
	put_u8(s, op(FZ_STEP_TIMERS, false, FZ_SRC_PEER, 4));
	o = run(s);
	emit("p-cookie-retransmit", s, "retransmit with the cookie", o.cookies_accepted == 1 && o.sent_initiations == 1);

	s = program();
	craft_init(s, 10, 0x12345678, false, false, 0);
	o = run(s);
	emit("p-craft-init", s, "be accepted", o.initiations_accepted == 1);

	s = program();
	craft_init(s, 10, 0x12345678, true, true, 0);
	o = run(s);
	emit("p-craft-init-cookie", s, "get a cookie reply", o.sent_cookie_replies == 1);

	s = program();
	craft_init(s, -100, 1, false, false, 0);
	o = run(s);
	emit("p-craft-init-old", s, "be dropped as old", o.drops[NT_DROP_TIMESTAMP] == 1);

	s = program();
	craft_init(s, 10, 1, false, false, 0);
	craft_init(s, 11, 2, false, false, 1);
	o = run(s);
	emit("p-craft-init-flood", s, "be dropped by the flood guard",
	     o.initiations_accepted == 1 && o.drops[NT_DROP_FLOOD] == 1);

	s = program();
	/* 30 ms apart: past the per-peer flood guard, faster than 20/s from one source. */
	for (int i = 0; i < FZ_MAX_STEPS; i++)
		craft_init(s, 10 + i, (uint32_t)i + 1, false, true, 2);
	o = run(s);
	emit("p-craft-init-ratelimit", s, "be rate limited",
	     o.initiations_accepted > 5 && o.initiations_accepted < FZ_MAX_STEPS);

	s = program();
	put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
	put_u8(s, FZ_C_RESP);
	put_u32(s, 0x01020304);
	put_u8(s, 0);
	o = run(s);
	emit("p-craft-resp", s, "be accepted", o.responses_accepted == 1 && o.sent_keepalives == 1);

	/* D responds to an initiation (a `next` keypair), then its own retransmitted
	 * initiation is answered: the initiator's install with a `next` pending. */
	s = program();
	template_step(s, FZ_TPL_INIT, 0, false, FZ_SRC_PEER, 0);
	put_u8(s, op(FZ_STEP_TIMERS, false, FZ_SRC_PEER, 4));
	put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
	put_u8(s, FZ_C_RESP);
	put_u32(s, 0x0a0b0c0d);
	put_u8(s, 2);
	o = run(s);
	emit("p-craft-resp-latest", s, "complete D's retransmitted handshake",
	     o.initiations_accepted == 1 && o.sent_initiations >= 1 && o.responses_accepted == 1);

	for (int i = 0; i < 4; i++) {
		char name[64];

		s = program();
		put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
		put_u8(s, FZ_C_LOWORDER);
		put_u8(s, (uint8_t)(i & 1 ? 1 | (i << 1) : i << 1));
		o = run(s);
		snprintf(name, sizeof(name), "p-low-order-%d", i);
		emit(name, s, "be refused at the DH", o.drops[NT_DROP_DH] == 1);
	}

	s = program();
	put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
	put_u8(s, FZ_C_DATA);
	put_u8(s, 0);
	{
		/* IPv4, 28 bytes, 10.0.1.9 -> 10.0.0.1 */
		static const uint8_t pkt[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 1, 9, 10, 0, 0, 1 };

		put_u16(s, sizeof(pkt));
		put(s, pkt, sizeof(pkt));
	}
	o = run(s);
	emit("p-craft-data", s, "reach the TUN", o.tun_writes == 1);

	s = program();
	put_u8(s, op(FZ_STEP_RAW, false, FZ_SRC_PEER, 0));
	put_u16(s, 4);
	put(s, "\x04\0\0\0", 4);
	o = run(s);
	emit("p-raw-short", s, "be dropped for its size", o.drops[NT_DROP_SIZE] == 1);

	/* ---- UDP GRO super-datagrams past 64 segments (security review, issue 20) ---- */
	{
		/* IPv4, 28 bytes, 10.0.1.9 -> 10.0.0.1: 128 of them in one datagram, twice the
		 * harness's TUN queue, so it is written out mid-datagram. */
		static const uint8_t pkt[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 1, 9, 10, 0, 0, 1 };
		size_t len;
		const uint8_t *init = fz_template(FZ_TPL_INIT_NOMAC2, &len);

		s = program();
		put_u8(s, op(FZ_STEP_CRAFT, false, FZ_SRC_PEER, 0));
		put_u8(s, FZ_C_GRO);
		put_u8(s, FZ_CD_FIX_CSUM);
		put_u8(s, FZ_GRO_MAX_SEGMENTS - 1);
		put_u16(s, sizeof(pkt));
		put_u16(s, sizeof(pkt));
		for (int i = 0; i < FZ_GRO_MAX_SEGMENTS; i++)
			put(s, pkt, sizeof(pkt));
		o = run(s);
		emit("p-gro-128", s, "deliver 128 segments through a full TUN queue",
		     o.data_accepted == FZ_GRO_MAX_SEGMENTS && o.tun_writes == FZ_GRO_MAX_SEGMENTS);

		/* 20 initiations without mac2 as one datagram, no load flag: they are the load. */
		s = program();
		put_u8(s, op(FZ_STEP_RAW, false, FZ_SRC_PEER, 0));
		put_u16(s, (uint16_t)(FZ_RAW_GRO | (20 * len)));
		put_u16(s, (uint16_t)len);
		for (int i = 0; i < 20; i++)
			put(s, init, len);
		o = run(s);
		/* one source: cookie replies up to its burst (the per-source cookie limit) */
		emit("p-raw-gro-init-load", s, "count its segments as load and get cookie replies",
		     o.sent_cookie_replies == NT_RATELIMITER_BURST && !o.initiations_accepted);

		/* 100 of them: HANDSHAKE_QUEUE (64) are handled, the rest dropped unread. */
		s = program();
		put_u8(s, op(FZ_STEP_RAW, false, FZ_SRC_PEER, 0));
		put_u16(s, (uint16_t)(FZ_RAW_GRO | (100 * len)));
		put_u16(s, (uint16_t)len);
		for (int i = 0; i < 100; i++)
			put(s, init, len);
		o = run(s);
		/* of the 64 handled, one source's burst answered, the rest dropped as flood */
		emit("p-raw-gro-init-budget", s, "handle 64 handshake segments and drop 36",
		     o.sent_cookie_replies == NT_RATELIMITER_BURST && o.drops[NT_DROP_FLOOD] == 36 + 64 - NT_RATELIMITER_BURST);

		/* Eight initiations in eight datagrams of one batch: an eighth of the queue, so
		 * the batch is the load, and every one gets a cookie reply; apart, none does. */
		s = program();
		s->buf[0] |= FZ_F_BATCH;
		for (int i = 0; i < 8; i++)
			template_step(s, FZ_TPL_INIT_NOMAC2, 0, false, FZ_SRC_OTHER4, 0);
		o = run(s);
		emit("p-batch-init-load", s, "count the batch's handshakes as load",
		     o.sent_cookie_replies == NT_RATELIMITER_BURST && !o.initiations_accepted);
		s->buf[0] &= (uint8_t)~FZ_F_BATCH;
		o = run(s);
		emit("p-apart-init-no-load", s, "not be load one at a time",
		     !o.sent_cookie_replies && o.initiations_accepted == 1);
	}

	/* ---- decrypted TCP segments for the coalescer ---- */
	{
		uint8_t pkt[4][200];
		size_t len[4];

		s = program();
		s->buf[0] |= FZ_F_BATCH;
		for (int i = 0; i < 3; i++) {
			len[i] = tcp_segment(pkt[i], false, 1000 + 100 * (uint32_t)i, 100);
			craft_data(s, pkt[i], len[i]);
		}
		o = run(s);
		emit("p-coalesce", s, "merge three datagrams of one batch", o.tun_writes == 1 && o.coalesced == 2);

		s->buf[0] |= FZ_F_NO_VNET;
		o = run(s);
		emit("p-coalesce-novnet", s, "write three packets", o.tun_writes == 3 && !o.coalesced);

		/* Three batches (three wakeups of the daemon): nothing to merge across them. */
		s->buf[0] &= (uint8_t)~(FZ_F_BATCH | FZ_F_NO_VNET);
		o = run(s);
		emit("p-coalesce-apart", s, "write three batches apart", o.tun_writes == 3 && !o.coalesced);

		s = program();
		len[0] = tcp_segment(pkt[0], false, 5000, 120);
		len[1] = tcp_segment(pkt[1], false, 5120, 120);
		len[2] = tcp_segment(pkt[2], false, 5240, 120);
		len[3] = tcp_segment(pkt[3], false, 5360, 50);
		craft_gro(s, pkt, len, 4);
		o = run(s);
		emit("p-gro-coalesce", s, "merge a GRO super-datagram", o.tun_writes == 1 && o.coalesced == 3);

		s = program();
		for (int i = 0; i < 3; i++)
			len[i] = tcp_segment(pkt[i], true, 7000 + 64 * (uint32_t)i, 64);
		craft_gro(s, pkt, len, 3);
		o = run(s);
		emit("p-gro-coalesce-v6", s, "merge IPv6 segments", o.tun_writes == 1 && o.coalesced == 2);

		s = program();
		len[0] = tcp_segment(pkt[0], false, 1000, 100);
		len[1] = tcp_segment(pkt[1], false, 1200, 100); /* a gap */
		craft_gro(s, pkt, len, 2);
		o = run(s);
		emit("p-gro-gap", s, "not merge across a gap", o.tun_writes == 2 && !o.coalesced);
	}

	if (failures) {
		fprintf(stderr, "gen_seeds: %d of %d seeds do not do what they should\n", failures, written);
		return 1;
	}
	printf("gen_seeds: %d seeds in %s/fuzz_datagram\n", written, dir);
	return 0;
}
