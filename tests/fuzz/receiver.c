/* The receiver of fuzz_datagram (see harness.h for the scenario and the input format):
 * the real engine of lib/engine.c, the one the daemon runs, as device D, with a host
 * around it that does what daemon/receive.c and device.c do with its outputs. What D
 * sends (responses, cookie replies, keepalives, initiations from its timers) lands in an
 * outbox instead of a socket; what it decrypts goes through the TUN queue, coalesced with
 * the vnet header on. Its peer P is a second engine, used to build the scenario, and as a
 * toolbox for crafted messages. Each delivery is one receive batch, flushed at its end (a
 * full TUN queue is written mid-batch, as in the daemon).
 *
 * After every step the harness checks what must hold whatever the input:
 *   - a keypair slot no one references is all zeros, a zeroed handshake holds no secret,
 *     keypairs the engine gave back are wiped;
 *   - every index in the index table is still used by the handshake or a keypair, and
 *     every index in use is in the table (the engine releases what the core drops);
 *   - nothing reaches the TUN twice (same receiver index, same counter), nothing from
 *     outside the peer's allowed IPs, nothing longer than what was decrypted;
 *   - a packet nt_offload_coalesce merged carries exactly the payloads of the segments it
 *     absorbed, in order, is a consistent IP packet, and nt_offload_split cuts it back
 *     into as many segments with the same payloads;
 *   - a response or keepalive D sends after accepting a crafted initiation or response
 *     verifies at P (the two sides agree on every key).
 * A violation aborts with a message: a finding. */
#include <arpa/inet.h>
#include <sanitizer/asan_interface.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/allowedips.h"
#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/engine.h"
#include "noisetun/index.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"
#include "noisetun/offload.h"
#include "noisetun/ratelimiter.h"
#include "noisetun/timers.h"

#include "harness.h"

#define MTU             1420
#define INDEX_SLOTS     NT_INDEX_MIN_SLOTS /* the cap: 32 live, far more than one input can use */
#define OUTBOX          16
/* The longest message a device sends: a sealed TUN packet of fuzz_tun (the engine pads
 * within the MTU, so a packet longer than it grows by the header and tag alone). */
#define OUT_MAX         (65535 + NT_DATA_MIN_LEN + NT_DATA_PAD)
#define DELIVERED_MAX   64
#define RL_CAPACITY     64
#define MAX_PACKET      65536 /* daemon/noisetund.h: a receive buffer per datagram */
#define BUF_SIZE        (MAX_PACKET + NT_DATA_MIN_LEN + NT_DATA_PAD)
/* Smaller than what one input can queue (a super-datagram of up to FZ_GRO_MAX_SEGMENTS,
 * or a raw one split at any size): as in the daemon, the queue is written out when full,
 * mid-datagram, and that path gets fuzzed too. */
#define TUNQ_MAX        64
#define SENDS_MAX       16
#define EVENTS_MAX      16

#define NOW0  (1000 * NT_NSEC_PER_SEC)
#define WALL0 (1700000000ULL * NT_NSEC_PER_SEC)
#define MSEC  (NT_NSEC_PER_SEC / 1000)

#define FAIL(...)                                                          \
	do {                                                               \
		fprintf(stderr, "fuzz_datagram: invariant violated: " __VA_ARGS__); \
		fputc('\n', stderr);                                       \
		abort();                                                   \
	} while (0)

static const uint64_t time_steps[FZ_TIME_STEPS] = {
	0, 1 * MSEC, 30 * MSEC, 1500 * MSEC, 11 * NT_NSEC_PER_SEC, 125 * NT_NSEC_PER_SEC,
	170 * NT_NSEC_PER_SEC, 545 * NT_NSEC_PER_SEC,
};

struct endpoint {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint16_t port;
};

static const struct endpoint sources[4] = {
	[FZ_SRC_PEER] = { AF_INET, { 192, 0, 2, 2 }, 51820 },
	[FZ_SRC_OTHER4] = { AF_INET, { 198, 51, 100, 7 }, 4444 },
	[FZ_SRC_V6] = { AF_INET6, { 0x20, 0x01, 0x0d, 0xb8, [15] = 2 }, 51820 },
	[FZ_SRC_V6_SAME64] = { AF_INET6, { 0x20, 0x01, 0x0d, 0xb8, [15] = 3 }, 1 },
};
static const struct endpoint d_endpoint = { AF_INET, { 192, 0, 2, 1 }, 51820 };

struct sent {
	size_t len;
	union nt_endpoint to;
	uint8_t buf[OUT_MAX];
};

/* An engine and its one peer. Everything an input can change lives in here (or in the
 * index slots, rate limiter arrays and timer heap, which restore() copies apart), so that
 * a struct copy of the world is a snapshot: every pointer inside points into the world. */
struct device {
	struct nt_noise_static id;
	struct nt_engine eng;
	struct nt_peer peer;
	struct nt_keypairs kps;   /* the peer's keypairs, when the engine asks for them */
	bool kps_taken;
	uint64_t rng;
	struct nt_rng rng_obj;    /* the engine's host.rng: fills from rng */
	struct sent outbox[OUTBOX];
	unsigned sent; /* total; outbox[(sent - 1) % OUTBOX] is the latest */
};

struct delivered {
	uint32_t receiver;
	uint64_t counter;
};

/* Everything an input may change. */
struct world {
	struct device d, p;
	uint64_t now;
	uint64_t craft_counter[2];
	struct delivered delivered[DELIVERED_MAX];
	unsigned delivered_count;
};

static struct world W, baseline;
static struct nt_allowedips_owner other_owner; /* prefixes of "another peer" */
/* The baseline's rate limiter tables, per device: [0] handshakes, [1] cookie replies. */
static struct nt_ratelimiter_entry *rl_entries_saved[2][2];
static uint32_t *rl_buckets_saved[2][2];

static struct nt_ratelimiter *rl_of(struct device *dev, int k)
{
	return k ? &dev->eng.cookie_ratelimiter : &dev->eng.ratelimiter;
}
static struct fz_outcome *outcome, outcome_sink;
static bool vnet;
static bool tun_mode; /* fuzz_tun: D's TUN packets are the input */

/* The engine's output queues, one set per device (empty between deliveries). */
static struct {
	struct nt_send sends[SENDS_MAX];
	struct nt_gro_packet tunq[TUNQ_MAX];
	struct nt_event events[EVENTS_MAX];
	uint8_t bytes[NT_ENGINE_MIN_BYTES];
	struct nt_engine_out out;
} outq[2];

/* The batch in flight (daemon/receive.c rx_bufs): each datagram's receive buffer stays
 * until the TUN queue that points into it is flushed. Bytes past each datagram are
 * poisoned while the engine reads it, so an over-read shows; the coalescer may then grow
 * packets into them. A program with FZ_F_BATCH gathers D's datagrams into one batch until
 * a timer step or the end of the input; otherwise each delivery is a batch of its own. */
#define HELD_MAX FZ_MAX_STEPS
static struct {
	uint8_t *buf;
	size_t len;
} held[HELD_MAX];
static struct nt_datagram pending[HELD_MAX];
static size_t held_count;
static bool batching, pending_load;

/* Immutable after setup. */
static struct {
	uint8_t buf[MTU + NT_DATA_MIN_LEN];
	size_t len;
	int keypair; /* data templates: 0 A, 1 B; -1 for handshake messages */
	uint64_t counter;
	uint8_t plain[MTU];
	size_t plain_len;
} tpl[FZ_TPL_COUNT];
static struct {
	uint8_t send_key[NT_KEY_LEN];
	uint32_t receiver; /* D's local index of it */
	uint64_t craft_base;
} p_keypair[2];
static struct nt_handshake p_hs_consumed_b; /* P right after consuming D's initiation B */
static uint64_t tpl_init_wall;

static const uint8_t low_order[8][NT_KEY_LEN] = {
	{ 0 },
	{ 1 },
	{ 0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	  0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00 },
	{ 0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
	  0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57 },
	{ 0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, /* p - 1 */
	{ 0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, /* p */
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f }, /* p + 1 */
	{ 0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, /* p + 1, bit 255 set */
};


/* ---- deterministic randomness and clocks ---- */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_fill(void *ctx, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t v = splitmix64(ctx);
		size_t n = len < 8 ? len : 8;

		memcpy(p, &v, n);
		p += n;
		len -= n;
	}
}

static struct nt_rng dev_rng(struct device *dev)
{
	return (struct nt_rng){ rng_fill, &dev->rng };
}

static uint64_t wall_ns(void)
{
	return WALL0 + W.now;
}

static struct nt_now now_of(void)
{
	return (struct nt_now){ .mono = W.now, .wall = wall_ns() };
}

/* ---- endpoints ---- */

static size_t cookie_src(const struct endpoint *ep, uint8_t out[18])
{
	size_t n = ep->family == AF_INET ? 4 : 16;

	memcpy(out, ep->addr, n);
	out[n] = (uint8_t)(ep->port >> 8);
	out[n + 1] = (uint8_t)ep->port;
	return n + 2;
}

static union nt_endpoint to_nt(const struct endpoint *ep)
{
	union nt_endpoint u;

	memset(&u, 0, sizeof(u));
	if (ep->family == AF_INET) {
		u.in4.sin_family = AF_INET;
		u.in4.sin_port = htons(ep->port);
		memcpy(&u.in4.sin_addr, ep->addr, 4);
	} else {
		u.in6.sin6_family = AF_INET6;
		u.in6.sin6_port = htons(ep->port);
		memcpy(&u.in6.sin6_addr, ep->addr, 16);
	}
	return u;
}

static const struct sent *last_sent(const struct device *dev, unsigned since)
{
	return dev->sent > since ? &dev->outbox[(dev->sent - 1) % OUTBOX] : NULL;
}

/* P's handshake lookup, for crafting: P knows D alone. */
static struct nt_handshake *lookup_handshake(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	struct device *dev = ctx;

	return nt_equal(dev->peer.public_key, key, NT_KEY_LEN) ? &dev->peer.hs : NULL;
}

/* ---- the host: keypair memory, and the engine's outputs ---- */

static void *kps_alloc(void *ctx)
{
	struct device *dev = ctx;

	if (dev->kps_taken)
		FAIL("the engine asked for a second keypair set for one peer");
	dev->kps_taken = true;
	return &dev->kps;
}

static void kps_free(void *ctx, void *kps)
{
	struct device *dev = ctx;

	if (kps != &dev->kps || !dev->kps_taken)
		FAIL("the engine gave back keypairs it never had");
	for (int s = 0; s < 3; s++)
		if (!nt_is_zero(&dev->kps.slot[s], sizeof(dev->kps.slot[s])))
			FAIL("keypairs given back with a key in them");
	memset(&dev->kps, 0, sizeof(dev->kps));
	dev->kps_taken = false;
}

static void write_tunq(struct nt_gro_packet *tunq, size_t tunq_len);
static void check_sealed_at_p(const uint8_t *msg, size_t len);
static size_t ip_packet(uint8_t *pkt, int family, const char *src, const char *dst, size_t total);

static void host_flush(void *ctx, struct nt_engine_out *out)
{
	struct device *dev = ctx;
	bool is_d = dev == &W.d;

	for (size_t i = 0; i < out->events_len && is_d; i++) {
		switch (out->events[i].type) {
		case NT_EV_INITIATION_RECEIVED: outcome->initiations_accepted++; break;
		case NT_EV_SESSION_ESTABLISHED: outcome->responses_accepted++; break;
		case NT_EV_COOKIE_RECEIVED: outcome->cookies_accepted++; break;
		case NT_EV_SESSION_CONFIRMED: outcome->confirmed++; break;
		default: break;
		}
		if (out->events[i].peer && out->events[i].peer != &dev->peer)
			FAIL("an event about a peer D does not have");
	}
	for (size_t i = 0; i < out->sends_len; i++) {
		const struct nt_send *s = &out->sends[i];
		struct sent *o = &dev->outbox[dev->sent++ % OUTBOX];

		if (s->len > OUT_MAX || !s->len)
			FAIL("the engine sent %zu bytes", s->len);
		if (s->peer && s->peer != &dev->peer)
			FAIL("a send for a peer D does not have");
		if (s->count_tx)
			s->peer->tx_bytes += s->len;
		o->len = s->len;
		o->to = s->to;
		memcpy(o->buf, s->data, s->len);
		if (!is_d)
			continue;
		switch (s->data[0]) {
		case NT_MSG_INITIATION: outcome->sent_initiations++; break;
		case NT_MSG_RESPONSE: outcome->sent_responses++; break;
		case NT_MSG_COOKIE:
			outcome->sent_cookie_replies++;
			if (s->len != NT_COOKIE_MSG_LEN || s->peer)
				FAIL("a cookie reply of %zu bytes, or for a peer", s->len);
			break;
		case NT_MSG_DATA:
			if (tun_mode && s->len > NT_DATA_MIN_LEN) {
				check_sealed_at_p(s->data, s->len);
				break;
			}
			outcome->sent_keepalives++;
			if (s->len != NT_DATA_MIN_LEN)
				FAIL("a keepalive sealed to %zu bytes", s->len);
			break;
		}
	}
	if (is_d)
		write_tunq(out->tun, out->tun_len);
}

static struct nt_engine_out *out_of(struct device *dev)
{
	return &outq[dev == &W.p].out;
}

/* ---- delivery: one datagram, one receive batch ---- */

static bool is_handshake_len(const uint8_t *msg, size_t len)
{
	enum nt_message_type t = nt_message_type(msg, len);

	return (t == NT_MSG_INITIATION && len == NT_INIT_LEN) || (t == NT_MSG_RESPONSE && len == NT_RESP_LEN);
}

static void poison_held(bool poison)
{
	for (size_t i = 0; i < held_count; i++) {
		if (poison)
			ASAN_POISON_MEMORY_REGION(held[i].buf + held[i].len, BUF_SIZE - held[i].len);
		else
			ASAN_UNPOISON_MEMORY_REGION(held[i].buf + held[i].len, BUF_SIZE - held[i].len);
	}
}

/* Hand the datagrams gathered so far to dev's engine as one batch, as receive_udp does
 * after a recvmmsg, and write out what it queued. */
static void deliver_batch(struct device *dev)
{
	uint64_t rx_before = dev->peer.rx_bytes, tun_before = outcome->tun_writes;
	uint64_t src_before = dev->eng.drops_source, mal_before = dev->eng.drops[NT_DROP_MALFORMED];
	unsigned init_before = outcome->initiations_accepted, resp_before = outcome->responses_accepted;
	bool only_keepalives = held_count > 0;

	if (!held_count)
		return;
	for (size_t i = 0; i < held_count; i++) {
		size_t len = pending[i].len, seg = pending[i].segment && pending[i].segment < len ? pending[i].segment : len;

		if (!len)
			only_keepalives = false;
		for (size_t off = 0; off < len; off += seg) {
			size_t mlen = len - off < seg ? len - off : seg;

			if (mlen != NT_DATA_MIN_LEN && !is_handshake_len(held[i].buf + off, mlen))
				only_keepalives = false;
		}
	}
	if (pending_load)
		dev->eng.last_under_load = W.now; /* fresh: under load for this batch */
	nt_engine_receive(&dev->eng, pending, held_count, now_of(), out_of(dev));
	nt_engine_flush(out_of(dev));
	poison_held(false);
	for (size_t i = 0; i < held_count; i++)
		free(held[i].buf);
	held_count = 0;
	pending_load = false;
	if (dev != &W.d)
		return;
	/* What opened: TUN writes, and the data the inner checks refused; keepalives by the
	 * bytes received where nothing else could account for them. */
	outcome->data_accepted += (unsigned)(outcome->tun_writes - tun_before + dev->eng.drops_source - src_before +
					     dev->eng.drops[NT_DROP_MALFORMED] - mal_before);
	outcome->drops_source += (unsigned)(dev->eng.drops_source - src_before);
	outcome->drops_malformed += (unsigned)(dev->eng.drops[NT_DROP_MALFORMED] - mal_before);
	if (only_keepalives) {
		uint64_t hs_bytes = (uint64_t)(outcome->initiations_accepted - init_before) * NT_INIT_LEN +
				    (uint64_t)(outcome->responses_accepted - resp_before) * NT_RESP_LEN;

		outcome->keepalives_accepted += (unsigned)((dev->peer.rx_bytes - rx_before - hs_bytes) / NT_DATA_MIN_LEN);
	}
}

/* One datagram (seg < len: a UDP GRO super-datagram of seg-byte datagrams, the last maybe
 * shorter), in a receive buffer of the daemon's size, as receive_udp hands it to the
 * engine. load: the rest of the batch was handshakes (as if a flood rode along). */
static void deliver_gro(struct device *dev, const uint8_t *data, size_t len, size_t seg, const struct endpoint *src,
			bool load)
{
	struct nt_datagram *d = &pending[held_count];
	uint8_t *buf;

	if (held_count == HELD_MAX)
		FAIL("the harness holds too many receive buffers");
	buf = malloc(BUF_SIZE);
	if (!buf)
		abort();
	*d = (struct nt_datagram){ .data = buf, .cap = BUF_SIZE, .segment = seg, .from = to_nt(src) };
	if (len > BUF_SIZE) {
		d->truncated = true; /* MSG_TRUNC */
		len = 0;
	}
	if (len)
		memcpy(buf, data, len);
	d->len = len;
	held[held_count].buf = buf;
	held[held_count++].len = len;
	ASAN_POISON_MEMORY_REGION(buf + len, BUF_SIZE - len);
	pending_load |= load;
	if (!batching || dev != &W.d)
		deliver_batch(dev);
}

static void deliver(struct device *dev, const uint8_t *data, size_t len, const struct endpoint *src, bool load)
{
	deliver_gro(dev, data, len, len, src, load);
}

static void run_timers(struct device *dev)
{
	nt_engine_timers(&dev->eng, now_of(), out_of(dev));
	nt_engine_flush(out_of(dev));
}

/* P's prefixes at D, written out plainly: 10.0.0.2/32, 10.0.1.0/24, fd00::/64. */
static bool naive_source_of_p(const uint8_t *pkt)
{
	static const uint8_t fd00[8] = { 0xfd, 0 };

	if ((pkt[0] >> 4) == 4)
		return !memcmp(pkt + 12, "\x0a\x00\x00\x02", 4) || !memcmp(pkt + 12, "\x0a\x00\x01", 3);
	return !memcmp(pkt + 8, fd00, 8);
}

/* The receiver index and counter in front of a decrypted packet: nothing twice. */
static void record_delivery(const uint8_t *plain)
{
	uint32_t receiver = nt_load_le32(plain - NT_DATA_HEADER_LEN + NT_DATA_OFF_RECEIVER);
	uint64_t counter = nt_data_counter(plain - NT_DATA_HEADER_LEN);

	for (unsigned i = 0; i < W.delivered_count; i++)
		if (W.delivered[i].counter == counter && W.delivered[i].receiver == receiver)
			FAIL("counter %llu accepted twice on one keypair", (unsigned long long)counter);
	if (W.delivered_count < DELIVERED_MAX) {
		W.delivered[W.delivered_count].receiver = receiver;
		W.delivered[W.delivered_count++].counter = counter;
	}
}

/* ---- the TUN queue ---- */

static bool tcp_headers(const uint8_t *pkt, size_t len, size_t *l3, size_t *l4)
{
	if ((pkt[0] >> 4) == 4) {
		*l3 = (size_t)(pkt[0] & 0x0f) * 4;
		if (*l3 < 20 || len < *l3 + 20 || pkt[9] != 6)
			return false;
	} else {
		*l3 = 40;
		if (len < 60 || pkt[6] != 6)
			return false;
	}
	*l4 = (size_t)(pkt[*l3 + 12] >> 4) * 4;
	return *l4 >= 20 && *l3 + *l4 <= len;
}

/* A head nt_offload_coalesce built from orig[0..n): payloads concatenated, the first
 * segment's sequence number, a consistent length, and nt_offload_split undoes it. */
static void check_merge(const struct nt_gro_packet *head, uint8_t *const orig[], const size_t orig_len[], size_t n)
{
	size_t l3, l4, off, hl3, hl4, seg_len[TUNQ_MAX];
	uint8_t *segs[TUNQ_MAX];
	int count;

	if (!tcp_headers(head->data, head->len, &hl3, &hl4))
		FAIL("a merged packet is not TCP");
	if (nt_ip_packet_len(head->data, head->len) != head->len)
		FAIL("a merged packet of %zu bytes claims %zu", head->len, nt_ip_packet_len(head->data, head->len));
	if (head->hdr.gso_type == NT_VNET_GSO_NONE || !head->hdr.gso_size || head->hdr.hdr_len != hl3 + hl4 ||
	    head->hdr.csum_start != hl3 || head->hdr.csum_offset != 16 || !(head->hdr.flags & NT_VNET_F_NEEDS_CSUM))
		FAIL("a merged packet's vnet header does not describe it");
	if (memcmp(head->data + hl3 + 4, orig[0] + hl3 + 4, 4))
		FAIL("a merged packet does not start at its first segment's sequence number");
	off = hl3 + hl4;
	for (size_t i = 0; i < n; i++) {
		if (!tcp_headers(orig[i], orig_len[i], &l3, &l4) || l3 != hl3 || l4 != hl4)
			FAIL("a segment of another shape was merged");
		if (off + orig_len[i] - l3 - l4 > head->len ||
		    memcmp(head->data + off, orig[i] + l3 + l4, orig_len[i] - l3 - l4))
			FAIL("a merged packet does not carry segment %zu's payload", i);
		off += orig_len[i] - l3 - l4;
	}
	if (off != head->len)
		FAIL("a merged packet carries %zu bytes more than its segments", head->len - off);

	for (size_t i = 0; i < n; i++) {
		segs[i] = malloc(hl3 + hl4 + head->hdr.gso_size);
		if (!segs[i])
			abort();
	}
	count = nt_offload_split(head->data, head->len, &head->hdr, segs, seg_len, n);
	if (count != (int)n)
		FAIL("nt_offload_split cuts a merge of %zu segments into %d", n, count);
	for (size_t i = 0; i < n; i++) {
		if (seg_len[i] != orig_len[i] || memcmp(segs[i] + hl3 + hl4, orig[i] + hl3 + hl4, seg_len[i] - hl3 - hl4))
			FAIL("split segment %zu differs from the one merged", i);
		free(segs[i]);
	}
}

/* daemon/receive.c receive_write_tun: coalesce (vnet), then write each remaining packet.
 * The receive buffer stays (a full queue is written mid-datagram); its tail is poisoned
 * again for what is left of the batch. */
static void write_tunq(struct nt_gro_packet *tunq, size_t tunq_len)
{
	uint8_t *orig[TUNQ_MAX];
	size_t orig_len[TUNQ_MAX];

	if (tunq_len > TUNQ_MAX)
		FAIL("a TUN queue of %zu past its bound", tunq_len);
	for (size_t i = 0; i < tunq_len; i++) {
		size_t h = 0;

		while (h < held_count && (tunq[i].data < held[h].buf || tunq[i].data >= held[h].buf + BUF_SIZE))
			h++;
		if (h == held_count || tunq[i].data < held[h].buf + NT_DATA_HEADER_LEN || !tunq[i].len ||
		    tunq[i].data + tunq[i].len > held[h].buf + held[h].len ||
		    tunq[i].data + tunq[i].cap != held[h].buf + BUF_SIZE)
			FAIL("a TUN write of %zu bytes outside what was decrypted", tunq[i].len);
		if (!naive_source_of_p(tunq[i].data))
			FAIL("a packet from outside the peer's allowed IPs reached the TUN");
		record_delivery(tunq[i].data);
	}
	poison_held(false);
	if (vnet && tunq_len) {
		for (size_t i = 0; i < tunq_len; i++) {
			orig_len[i] = tunq[i].len;
			orig[i] = malloc(tunq[i].len);
			if (!orig[i])
				abort();
			memcpy(orig[i], tunq[i].data, tunq[i].len);
		}
		nt_offload_coalesce(tunq, tunq_len, true);
		for (size_t i = 0; i < tunq_len; i++) {
			size_t n = 1;

			if (!tunq[i].len)
				continue;
			if (tunq[i].len > tunq[i].cap)
				FAIL("a packet grew past its buffer");
			while (i + n < tunq_len && !tunq[i + n].len)
				n++;
			if (n > 1) {
				check_merge(&tunq[i], orig + i, orig_len + i, n);
				outcome->coalesced += (unsigned)(n - 1);
			} else if (tunq[i].len != orig_len[i] || memcmp(tunq[i].data, orig[i], orig_len[i]) ||
				   tunq[i].hdr.gso_type != NT_VNET_GSO_NONE || tunq[i].hdr.flags) {
				FAIL("a packet nothing merged into was changed");
			}
		}
		for (size_t i = 0; i < tunq_len; i++)
			free(orig[i]);
	}
	for (size_t i = 0; i < tunq_len; i++) {
		if (!tunq[i].len)
			continue;
		if (!naive_source_of_p(tunq[i].data))
			FAIL("a packet from outside the peer's allowed IPs reached the TUN");
		if (vnet) /* write_tun: the header goes where the transport header was */
			nt_vnet_hdr_store(tunq[i].data - NT_VNET_HDR_LEN, &tunq[i].hdr);
		outcome->tun_writes++;
	}
	poison_held(true);
}

/* The end of a batch: write the queue, give the receive buffers back. */
/* ---- invariants ---- */

static bool slot_referenced(const struct nt_keypairs *kps, int i)
{
	return kps->next == i || kps->current == i || kps->previous == i;
}

static bool index_in_use(const struct nt_peer *peer, uint32_t index)
{
	if (peer->hs.state != NT_HS_ZEROED && peer->hs.local_index == index)
		return true;
	return peer->kps && nt_keypairs_find(peer->kps, index) != NULL;
}

/* The table's own bookkeeping, and every live index still used by the peer. */
static void check_index_table(struct device *dev)
{
	const struct nt_index_table *t = &dev->eng.indices;
	size_t live = 0, tombstones = 0;

	if (t->size & (t->size - 1) || t->size > INDEX_SLOTS || (t->size && !t->slots))
		FAIL("index table of %zu slots", t->size);
	for (size_t i = 0; i < t->size; i++) {
		const struct nt_index_slot *slot = &t->slots[i];

		if (slot->owner) {
			live++;
			if (slot->owner != &dev->peer || !slot->index)
				FAIL("index slot %zu: index %08x, a stranger owner", i, slot->index);
			if (!index_in_use(&dev->peer, slot->index))
				FAIL("index %08x stays in the table with nothing using it", slot->index);
			if (nt_index_lookup(t, slot->index) != &dev->peer)
				FAIL("index %08x is in the table but not found", slot->index);
		} else if (slot->index) {
			tombstones++;
		}
	}
	if (dev->eng.heap_len > 1 || (dev->eng.heap_len && (dev->eng.heap[0] != &dev->peer || dev->peer.heap_pos)))
		FAIL("the timer heap holds %zu entries", dev->eng.heap_len);
	if (live != t->live || tombstones != t->tombstones || 2 * (live + tombstones) > t->size)
		FAIL("index table counts %zu live %zu tombstones, holds %zu and %zu in %zu slots",
		     t->live, t->tombstones, live, tombstones, t->size);
}

static void check_device(struct device *dev)
{
	struct nt_peer *peer = &dev->peer;
	const struct nt_keypairs *kps = &dev->kps;
	const int8_t refs[3] = { kps->next, kps->current, kps->previous };

	if (peer->kps != (dev->kps_taken ? &dev->kps : NULL))
		FAIL("the peer's keypairs are not the ones the host gave");
	if (!peer->kps) {
		if (!nt_is_zero(kps, sizeof(*kps)))
			FAIL("keypairs given back were not wiped");
		goto handshake;
	}

	for (int i = 0; i < 3; i++) {
		if (refs[i] < -1 || refs[i] > 2)
			FAIL("keypair slot number %d", refs[i]);
		for (int j = 0; j < i; j++)
			if (refs[i] >= 0 && refs[i] == refs[j])
				FAIL("one keypair slot in two roles");
	}
	for (int i = 0; i < 3; i++) {
		if (slot_referenced(kps, i)) {
			if (!kps->slot[i].valid)
				FAIL("an invalid keypair is referenced");
			if (nt_index_lookup(&dev->eng.indices, kps->slot[i].local_index) != peer)
				FAIL("keypair index %08x is not in the index table", kps->slot[i].local_index);
		} else if (!nt_is_zero(&kps->slot[i], sizeof(kps->slot[i]))) {
			FAIL("a dropped keypair was not wiped");
		}
	}
handshake:
	if (peer->hs.state == NT_HS_ZEROED) {
		if (!nt_is_zero(&peer->hs.secrets, sizeof(peer->hs.secrets)))
			FAIL("a finished handshake kept its secrets");
	} else if (nt_index_lookup(&dev->eng.indices, peer->hs.local_index) != peer) {
		FAIL("handshake index %08x is not in the index table", peer->hs.local_index);
	}
	check_index_table(dev);
}

/* ---- input reading ---- */

struct reader {
	const uint8_t *p;
	size_t n;
};

static uint8_t rd_u8(struct reader *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

static uint16_t rd_u16(struct reader *r)
{
	uint16_t lo = rd_u8(r);

	return (uint16_t)(lo | rd_u8(r) << 8);
}

static uint32_t rd_u32(struct reader *r)
{
	uint32_t lo = rd_u16(r);

	return lo | (uint32_t)rd_u16(r) << 16;
}

static uint64_t rd_u64(struct reader *r)
{
	uint64_t lo = rd_u32(r);

	return lo | (uint64_t)rd_u32(r) << 32;
}

/* Up to len bytes, in place. */
static const uint8_t *rd_bytes(struct reader *r, size_t *len)
{
	const uint8_t *p = r->p;

	if (*len > r->n)
		*len = r->n;
	r->p += *len;
	r->n -= *len;
	return p;
}

/* ---- building messages ---- */

static void set_macs(uint8_t *msg, size_t len, bool mac1, bool mac2)
{
	if (len != NT_INIT_LEN && len != NT_RESP_LEN)
		return;
	/* Messages to D: mac1 keyed by D's public key, mac2 by the cookie D gave P. */
	if (mac1)
		nt_mac(msg + len - 2 * NT_MAC_LEN, W.d.eng.cookie_checker.mac1_key, NT_KEY_LEN, msg, len - 2 * NT_MAC_LEN);
	if (mac2)
		nt_mac(msg + len - NT_MAC_LEN, W.p.peer.cookie.cookie, NT_COOKIE_LEN, msg, len - NT_MAC_LEN);
}

/* A type-4 message from P on its keypair k (0: A, 1: B) into out (plain_len + 32 bytes). */
static void seal_data(uint8_t *out, int k, uint64_t counter, const uint8_t *plain, size_t plain_len)
{
	out[0] = NT_MSG_DATA;
	out[1] = out[2] = out[3] = 0;
	nt_store_le32(out + NT_DATA_OFF_RECEIVER, p_keypair[k].receiver);
	nt_store_le64(out + NT_DATA_OFF_COUNTER, counter);
	nt_aead_seal(out + NT_DATA_OFF_PACKET, plain, plain_len, NULL, 0, counter, p_keypair[k].send_key);
}

static void step_template(struct reader *r, const struct endpoint *src, bool load)
{
	uint8_t t = rd_u8(r), buf[MTU + 2 * NT_DATA_MIN_LEN + 128];
	unsigned id = t % FZ_TPL_COUNT, edits;
	size_t len = tpl[id].len;
	bool reseal = (t & FZ_T_RESEAL) && tpl[id].keypair >= 0;

	if (t & FZ_T_RESIZE) {
		long n = (long)len + (int8_t)rd_u8(r);

		len = n < 0 ? 0 : (size_t)n;
	}
	edits = rd_u8(r) % 65;
	if (reseal && len >= NT_DATA_MIN_LEN) {
		uint8_t plain[sizeof(buf)];
		size_t plain_len = len - NT_DATA_MIN_LEN;

		memset(plain, 0, plain_len);
		memcpy(plain, tpl[id].plain, plain_len < tpl[id].plain_len ? plain_len : tpl[id].plain_len);
		for (unsigned i = 0; i < edits; i++) {
			uint16_t pos = rd_u16(r);
			uint8_t x = rd_u8(r);

			if (plain_len)
				plain[pos % plain_len] ^= x;
		}
		seal_data(buf, tpl[id].keypair, tpl[id].counter, plain, plain_len);
	} else {
		memset(buf, 0, len);
		memcpy(buf, tpl[id].buf, len < tpl[id].len ? len : tpl[id].len);
		for (unsigned i = 0; i < edits; i++) {
			uint16_t pos = rd_u16(r);
			uint8_t x = rd_u8(r);

			if (len)
				buf[pos % len] ^= x;
		}
		set_macs(buf, len, t & FZ_T_MAC1, t & FZ_T_MAC2);
	}
	deliver(&W.d, buf, len, src, load);
}

/* P's side of an exchange with D: open what D sent since `since` and demand that it
 * verifies. With resp_hs, D's responses must complete that handshake of P's and its cookie
 * replies must open at P; with kp, D's keepalives on it must open. */
static void check_answers_at_p(unsigned since, struct nt_handshake *resp_hs, struct nt_keypair *kp)
{
	for (unsigned i = since; i < W.d.sent; i++) {
		const struct sent *s = &W.d.outbox[i % OUTBOX];
		uint8_t plain[OUT_MAX];
		size_t plainlen;

		if (i + OUTBOX < W.d.sent)
			continue;
		if (s->buf[0] == NT_MSG_RESPONSE && resp_hs) {
			uint8_t src[18];
			size_t src_len = cookie_src(&d_endpoint, src);
			enum nt_status st;

			if (nt_cookie_validate(&W.p.eng.cookie_checker, s->buf, s->len, src, src_len, W.now, false) ==
			    NT_COOKIE_MAC_INVALID)
				FAIL("D's response has a bad mac1");
			st = nt_noise_consume_response(resp_hs, s->buf, s->len, &W.p.id);
			if (st != NT_OK)
				FAIL("D's response to P's initiation does not verify at P: %s", nt_status_name(st));
		} else if (s->buf[0] == NT_MSG_DATA && kp &&
			   nt_load_le32(s->buf + NT_DATA_OFF_RECEIVER) == kp->local_index) {
			enum nt_status st = nt_keypair_open(kp, plain, &plainlen, s->buf, s->len, W.now);

			if (st != NT_OK)
				FAIL("D's keepalive on the new session does not open at P: %s", nt_status_name(st));
		} else if (s->buf[0] == NT_MSG_COOKIE && resp_hs) {
			if (nt_cookie_consume_reply(&W.p.peer.cookie, s->buf, s->len, W.now))
				FAIL("D's cookie reply to P's initiation does not open at P");
		}
	}
}

static uint64_t craft_counter(struct reader *r, uint8_t k)
{
	int kp = k & FZ_CD_KEYPAIR_B;

	switch ((k >> FZ_CD_COUNTER_SHIFT) & 3) {
	case 0: {
		uint64_t c = p_keypair[kp].craft_base + W.craft_counter[kp];

		W.craft_counter[kp] += FZ_GRO_MAX_SEGMENTS;
		return c;
	}
	case 1: return p_keypair[kp].craft_base + rd_u8(r);
	case 2: return p_keypair[kp].craft_base - 1 - rd_u8(r);
	default: return rd_u64(r);
	}
}

static void store_be16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Make a plaintext's IP length fields and IPv4 and TCP checksums right, as a real sender
 * would, so that the coalescer's checks can pass. */
static void fix_checksums(uint8_t *pkt, size_t len)
{
	size_t l3;

	if (len >= 20 && (pkt[0] >> 4) == 4) {
		l3 = (size_t)(pkt[0] & 0x0f) * 4;
		if (l3 < 20 || l3 > len || len > 0xffff)
			return;
		store_be16(pkt + 2, len);
		store_be16(pkt + 10, 0);
		store_be16(pkt + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, pkt, l3)));
		if (pkt[9] != 6)
			return;
	} else if (len >= 40 && (pkt[0] >> 4) == 6) {
		l3 = 40;
		if (len - 40 > 0xffff)
			return;
		store_be16(pkt + 4, len - 40);
		if (pkt[6] != 6)
			return;
	} else {
		return;
	}
	if (len < l3 + 20)
		return;
	store_be16(pkt + l3 + 16, 0);
	store_be16(pkt + l3 + 16, (uint16_t)~nt_csum_fold(nt_csum_pseudo(pkt, 6, (uint32_t)(len - l3)) +
							 nt_csum_add(0, pkt + l3, len - l3)));
}

static void step_craft(struct reader *r, const struct endpoint *src, bool load)
{
	uint8_t c = rd_u8(r), msg[NT_INIT_LEN];
	struct nt_rng p_rng = dev_rng(&W.p);
	unsigned since = W.d.sent;

	switch (c % FZ_C_COUNT) {
	case FZ_C_DATA:
	case FZ_C_GRO: {
		uint8_t k = rd_u8(r), *buf, *plain;
		int kp = k & FZ_CD_KEYPAIR_B;
		uint64_t counter = craft_counter(r, k);
		unsigned count = c % FZ_C_COUNT == FZ_C_GRO ? rd_u8(r) % FZ_GRO_MAX_SEGMENTS + 1 : 1;
		size_t seg_len = rd_u16(r), last_len = count > 1 ? rd_u16(r) : seg_len, off = 0;

		/* One datagram: as long as the input has bytes. A super-datagram: zero-filled past
		 * them, segments of one size but a shorter last, within one receive buffer. */
		if (count == 1 && seg_len > r->n)
			seg_len = last_len = r->n;
		if (count * (seg_len + NT_DATA_MIN_LEN) > BUF_SIZE)
			count = (unsigned)(BUF_SIZE / (seg_len + NT_DATA_MIN_LEN));
		if (!count)
			count = 1;
		if (last_len > seg_len)
			last_len = seg_len;
		buf = malloc(count * (seg_len + NT_DATA_MIN_LEN));
		plain = malloc(seg_len + 1);
		if (!buf || !plain)
			abort();
		for (unsigned i = 0; i < count; i++) {
			size_t want = i + 1 < count ? seg_len : last_len, got = want;
			const uint8_t *p = rd_bytes(r, &got);

			memset(plain, 0, want);
			if (got)
				memcpy(plain, p, got);
			if (k & FZ_CD_FIX_CSUM)
				fix_checksums(plain, want);
			seal_data(buf + off, kp, counter + i, plain, want);
			off += want + NT_DATA_MIN_LEN;
		}
		deliver_gro(&W.d, buf, off, seg_len + NT_DATA_MIN_LEN, src, load);
		free(plain);
		free(buf);
		break;
	}
	case FZ_C_INIT: {
		int32_t seconds = (int32_t)rd_u32(r);
		uint32_t sender = rd_u32(r);
		uint8_t flags = rd_u8(r);
		int64_t wall = (int64_t)tpl_init_wall + (int64_t)seconds * (int64_t)NT_NSEC_PER_SEC;
		struct nt_handshake *hs = &W.p.peer.hs;

		if (nt_noise_create_initiation(msg, hs, &W.p.id, sender, wall < 0 ? 0 : (uint64_t)wall, &p_rng) != NT_OK)
			FAIL("P cannot create an initiation");
		if (nt_cookie_add_macs(&W.p.peer.cookie, msg, sizeof(msg), W.now))
			FAIL("P cannot add macs");
		if (flags & 1)
			memset(msg + NT_INIT_OFF_MAC2, 0, NT_MAC_LEN);
		deliver(&W.d, msg, sizeof(msg), src, load);
		check_answers_at_p(since, hs, NULL);
		break;
	}
	case FZ_C_LOWORDER: {
		uint8_t v = rd_u8(r);
		enum fz_template t = v & 1 ? FZ_TPL_RESP : FZ_TPL_INIT;
		size_t off = v & 1 ? NT_RESP_OFF_EPHEMERAL : NT_INIT_OFF_EPHEMERAL;

		memcpy(msg, tpl[t].buf, tpl[t].len);
		memcpy(msg + off, low_order[(v >> 1) & 7], NT_KEY_LEN);
		set_macs(msg, tpl[t].len, true, true);
		deliver(&W.d, msg, tpl[t].len, src, load);
		break;
	}
	case FZ_C_RESP: {
		uint32_t sender = rd_u32(r);
		uint8_t flags = rd_u8(r);
		struct nt_keypair_drops drops = { .count = 0 };
		struct nt_peer *p = &W.p.peer;

		p->hs = p_hs_consumed_b;
		if (flags & 2) {
			/* Answer D's latest initiation instead (say, one its timers sent). */
			const struct sent *init = NULL;
			struct nt_handshake *hs;

			for (unsigned i = W.d.sent; i-- > 0 && i + OUTBOX >= W.d.sent;)
				if (W.d.outbox[i % OUTBOX].buf[0] == NT_MSG_INITIATION) {
					init = &W.d.outbox[i % OUTBOX];
					break;
				}
			if (!init || nt_noise_consume_initiation(&hs, init->buf, init->len, &W.p.id, lookup_handshake,
								 &W.p, W.now) != NT_OK)
				break;
		}
		if (nt_noise_create_response(msg, &p->hs, &W.p.id, sender, &p_rng) != NT_OK ||
		    nt_cookie_add_macs(&p->cookie, msg, NT_RESP_LEN, W.now) ||
		    nt_noise_begin_session(&p->hs, p->kps, W.now, &drops) != NT_OK)
			FAIL("P cannot answer D's initiation");
		if (flags & 1)
			memset(msg + NT_RESP_OFF_MAC2, 0, NT_MAC_LEN);
		deliver(&W.d, msg, NT_RESP_LEN, src, load);
		check_answers_at_p(since, NULL, &p->kps->slot[p->kps->next]);
		break;
	}
	}
}

/* ---- the input ---- */

/* Keypairs own the OpenSSL ciphers their first seal or open makes, so a struct copy of
 * the world would share them: the baseline holds none, and each restore frees what the
 * last input made before the copy. */
static void free_ciphers(struct world *w)
{
	struct nt_keypairs *all[2] = { &w->d.kps, &w->p.kps };

	for (int i = 0; i < 2; i++) {
		for (int s = 0; s < 3; s++) {
			struct nt_keypair *kp = &all[i]->slot[s];

			nt_cipher_free(kp->send_cipher);
			nt_cipher_free(kp->recv_cipher);
			kp->send_cipher = kp->recv_cipher = NULL;
		}
	}
}

/* A copy of the baseline's index table with its own slots. */
static void index_copy(struct nt_index_table *to, const struct nt_index_table *from)
{
	*to = *from;
	if (!from->slots)
		return;
	to->slots = malloc(from->size * sizeof(*from->slots));
	if (!to->slots)
		FAIL("out of memory");
	memcpy(to->slots, from->slots, from->size * sizeof(*from->slots));
}

/* A copy of the baseline's timer heap (pointers into the world) in memory of its own. */
static void heap_copy(struct nt_engine *to, const struct nt_engine *from)
{
	to->heap = NULL;
	if (!from->heap_cap)
		return;
	to->heap = malloc(from->heap_cap * sizeof(*from->heap));
	if (!to->heap)
		FAIL("out of memory");
	memcpy(to->heap, from->heap, from->heap_cap * sizeof(*from->heap));
}

static void restore_device(struct device *dev, const struct device *base, int i)
{
	index_copy(&dev->eng.indices, &base->eng.indices);
	heap_copy(&dev->eng, &base->eng);
	if (i < 0)
		return; /* the baseline's own copy, at setup */
	for (int k = 0; k < 2; k++) {
		struct nt_ratelimiter *rl = rl_of(dev, k);

		memcpy(rl->entries, rl_entries_saved[i][k], rl->capacity * sizeof(*rl->entries));
		memcpy(rl->buckets, rl_buckets_saved[i][k], (rl->bucket_mask + 1) * sizeof(*rl->buckets));
	}
}

/* Packets the engine staged during the last input (the baseline stages none). */
static void free_staged(struct nt_peer *peer)
{
	if (!peer->staged)
		return;
	for (unsigned i = 0; i < NT_MAX_STAGED_PACKETS; i++)
		free(peer->staged[i]);
	free(peer->staged);
	peer->staged = NULL;
}

static void restore(void)
{
	free_staged(&W.d.peer);
	free_staged(&W.p.peer);
	free_ciphers(&W);
	nt_index_free(&W.d.eng.indices);
	nt_index_free(&W.p.eng.indices);
	free(W.d.eng.heap);
	free(W.p.eng.heap);
	W = baseline;
	restore_device(&W.d, &baseline.d, 0);
	restore_device(&W.p, &baseline.p, 1);
}

void fz_run_input(const uint8_t *data, size_t size, struct fz_outcome *out)
{
	struct reader r = { data, size };
	uint8_t flags;

	outcome = out ? out : &outcome_sink;
	memset(outcome, 0, sizeof(*outcome));
	restore();
	if (!size)
		return;
	flags = rd_u8(&r);
	vnet = !(flags & FZ_F_PROGRAM) || !(flags & FZ_F_NO_VNET);
	batching = (flags & FZ_F_PROGRAM) && (flags & FZ_F_BATCH);
	if (!(flags & FZ_F_PROGRAM)) {
		W.now += time_steps[(flags >> FZ_F_TIME_SHIFT) & 7];
		deliver(&W.d, r.p, r.n, &sources[(flags >> FZ_F_SRC_SHIFT) & 3], flags & FZ_F_LOAD);
		check_device(&W.d);
		if (flags & FZ_F_TIMERS) {
			run_timers(&W.d);
			check_device(&W.d);
		}
	} else {
		for (int step = 0; step < FZ_MAX_STEPS && r.n; step++) {
			uint8_t op = rd_u8(&r);
			const struct endpoint *src = &sources[(op >> FZ_OP_SRC_SHIFT) & 3];
			bool load = op & FZ_OP_LOAD;

			W.now += time_steps[(op >> FZ_OP_TIME_SHIFT) & 7];
			switch (op & 3) {
			case FZ_STEP_RAW: {
				size_t len = rd_u16(&r), seg = 0;
				const uint8_t *p;

				if (len & FZ_RAW_GRO) { /* the UDP_GRO size the kernel reports with it */
					len &= ~(size_t)FZ_RAW_GRO;
					seg = rd_u16(&r);
				}
				p = rd_bytes(&r, &len);
				deliver_gro(&W.d, p, len, seg, src, load);
				break;
			}
			case FZ_STEP_TEMPLATE:
				step_template(&r, src, load);
				break;
			case FZ_STEP_CRAFT:
				step_craft(&r, src, load);
				break;
			case FZ_STEP_TIMERS:
				deliver_batch(&W.d); /* a timer wakes the loop: the batch before it is done */
				run_timers(&W.d);
				break;
			}
			check_device(&W.d);
		}
	}
	deliver_batch(&W.d);
	check_device(&W.d);
	for (int i = 0; i < NT_STATUS_MAX && i < 16; i++)
		outcome->drops[i] = (unsigned)(W.d.eng.drops[i] - baseline.d.eng.drops[i]);
	outcome->drops_index = outcome->drops[NT_DROP_INDEX];
}

const uint8_t *fz_template(enum fz_template t, size_t *len)
{
	*len = tpl[t].len;
	return tpl[t].buf;
}

/* ---- fuzz_tun: packets read from D's TUN ---- */

/* Every packet given to D's engine in this input, so that a sealed one met later (sent at
 * once, or staged and sent after a handshake) can be matched to what went in. */
static struct {
	uint8_t data[65535];
	size_t len;
} tun_given[FZ_MAX_STEPS];
static unsigned tun_given_count;

/* P's prefixes at D, written out plainly, by destination (fuzz_tun routes only to P). */
static bool naive_dest_of_p(const uint8_t *pkt)
{
	static const uint8_t fd00[8] = { 0xfd, 0 };

	if ((pkt[0] >> 4) == 4)
		return !memcmp(pkt + 16, "\x0a\x00\x00\x02", 4) || !memcmp(pkt + 16, "\x0a\x00\x01", 3);
	return !memcmp(pkt + 24, fd00, 8);
}

/* A data message D sent: it opens at P on the keypair its receiver index names, and holds
 * exactly the IP packet of one TUN packet given (as long as its header claims), padded with
 * zeros, addressed to one of P's prefixes. */
static void check_sealed_at_p(const uint8_t *msg, size_t len)
{
	static uint8_t plain[OUT_MAX];
	struct nt_keypair *kp;
	size_t plain_len;

	if (!W.p.peer.kps || !(kp = nt_keypairs_find(W.p.peer.kps, nt_load_le32(msg + NT_DATA_OFF_RECEIVER))))
		FAIL("D sealed data on a keypair P does not have");
	/* P's session B dates from the baseline; an input may complete it at D (the response
	 * template) long after, which a P living in time would have expired. The content is
	 * what is checked here, so P's keypair is opened as if it were fresh. */
	uint64_t birth = kp->birth;
	if (W.now - kp->birth >= NT_REJECT_AFTER_TIME)
		kp->birth = W.now;
	enum nt_status st = nt_keypair_open(kp, plain, &plain_len, msg, len, W.now);
	kp->birth = birth;
	if (st != NT_OK)
		FAIL("data D sealed does not open at P (%zu bytes, status %d, now %llu)", len, (int)st, (unsigned long long)W.now);
	for (unsigned i = 0; i < tun_given_count; i++) {
		size_t iplen = nt_ip_packet_len(tun_given[i].data, tun_given[i].len);

		if (!iplen || iplen > plain_len || memcmp(plain, tun_given[i].data, iplen))
			continue;
		if (!nt_is_zero(plain + iplen, plain_len - iplen))
			FAIL("padding of a sealed packet is not zero");
		if (!naive_dest_of_p(plain))
			FAIL("a packet for outside P's allowed IPs was sent to P");
		return;
	}
	FAIL("D sent P a packet it was never given (%zu bytes)", plain_len);
}

/* One IP packet: raw bytes, or a header the harness builds (so the fuzzer need not find
 * the lengths): a destination from a small set, a length, then the payload. */
static void step_tun_packet(struct reader *r, bool build)
{
	static const char *const dst4[] = { "10.0.0.2", "10.0.1.9", "10.0.2.1", "192.0.2.7" };
	static const char *const dst6[] = { "fd00::2", "fd00::1:2", "fd01::2", "2001:db8::1" };
	uint8_t *buf, *pkt;
	size_t len;

	if (tun_given_count == FZ_MAX_STEPS)
		return;
	pkt = tun_given[tun_given_count].data;
	if (build) {
		uint8_t sel = rd_u8(r);
		bool v6 = sel & 4;
		size_t total = rd_u16(r) % 2048, hdr = v6 ? 40 : 20;
		const uint8_t *payload;
		size_t plen;

		if (total < hdr)
			total = hdr;
		if (total > sizeof(tun_given[0].data))
			total = sizeof(tun_given[0].data);
		ip_packet(pkt, v6 ? AF_INET6 : AF_INET, v6 ? "fd00::1" : "10.0.0.1", v6 ? dst6[sel & 3] : dst4[sel & 3],
			  total);
		plen = total - hdr;
		payload = rd_bytes(r, &plen);
		memcpy(pkt + hdr, payload, plen);
		len = total;
		if (sel & 8 && len > hdr) /* a short read: fewer bytes than the header claims */
			len -= 1 + (sel >> 4) % (len - hdr);
	} else {
		const uint8_t *raw;

		len = rd_u16(r);
		raw = rd_bytes(r, &len);
		memcpy(pkt, raw, len);
	}
	tun_given[tun_given_count++].len = len;
	/* As the daemon reads it: room for the data header before, the tail room after. */
	buf = malloc(NT_DATA_HEADER_LEN + len + NT_ENGINE_TAIL_ROOM + NT_DATA_PAD);
	if (!buf)
		abort();
	memcpy(buf + NT_DATA_HEADER_LEN, pkt, len);
	nt_engine_tun_packet(&W.d.eng, buf + NT_DATA_HEADER_LEN, len, now_of(), out_of(&W.d));
	nt_engine_flush(out_of(&W.d));
	free(buf);
}

/* D's latest initiation (if its latest send was one) answered by P, and the answer
 * delivered: the staged packets then go out on the new session. */
static void step_tun_handshake(void)
{
	const struct sent *s = last_sent(&W.d, 0);
	unsigned since = W.p.sent;
	static uint8_t msg[NT_INIT_LEN];

	if (!s || s->len != NT_INIT_LEN || s->buf[0] != NT_MSG_INITIATION)
		return;
	memcpy(msg, s->buf, NT_INIT_LEN);
	deliver(&W.p, msg, NT_INIT_LEN, &d_endpoint, false);
	if ((s = last_sent(&W.p, since)) && s->buf[0] == NT_MSG_RESPONSE)
		deliver(&W.d, s->buf, s->len, &sources[FZ_SRC_PEER], false);
}

void fz_run_tun_input(const uint8_t *data, size_t size)
{
	struct reader r = { data, size };

	outcome = &outcome_sink;
	memset(outcome, 0, sizeof(*outcome));
	restore();
	tun_given_count = 0;
	vnet = true;
	batching = false;
	for (int step = 0; step < FZ_MAX_STEPS && r.n; step++) {
		uint8_t op = rd_u8(&r);

		W.now += time_steps[(op >> FZ_OP_TIME_SHIFT) & 7];
		if (getenv("FZ_DEBUG"))
			fprintf(stderr, "step %d op %d now %llu\n", step, op & 7, (unsigned long long)W.now);
		switch (op & 7) {
		case 0: case 1: case 2:
			step_tun_packet(&r, op & 3);
			break;
		case 3:
			run_timers(&W.d);
			break;
		case 4:
			step_tun_handshake();
			break;
		case 5: /* P's answer to D's initiation B, from the baseline: D's session B begins */
			deliver(&W.d, tpl[FZ_TPL_RESP].buf, tpl[FZ_TPL_RESP].len, &sources[FZ_SRC_PEER], false);
			break;
		case 6: /* the link goes down and up again */
			nt_engine_set_up(&W.d.eng, false, now_of());
			nt_engine_set_up(&W.d.eng, true, now_of());
			break;
		default: /* a keepalive from P on A: traffic both ways */
			deliver(&W.d, tpl[FZ_TPL_DATA_KEEPALIVE].buf, tpl[FZ_TPL_DATA_KEEPALIVE].len,
				&sources[FZ_SRC_PEER], false);
			break;
		}
		check_device(&W.d);
	}
}

void fz_setup_tun(void)
{
	tun_mode = true;
	fz_setup();
}

/* ---- setup ---- */

#define SETUP_CHECK(cond)                                                          \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "fuzz_datagram setup: %s failed (%s:%d)\n", #cond, \
				__FILE__, __LINE__);                               \
			abort();                                                   \
		}                                                                  \
	} while (0)

static void device_init(struct device *dev, uint8_t key_byte, uint64_t seed)
{
	struct nt_engine_host host = { .keypairs_alloc = kps_alloc, .keypairs_free = kps_free, .ctx = dev };
	struct nt_engine_out *out = &outq[dev == &W.p].out;
	uint8_t key[NT_KEY_LEN];
	int i = dev == &W.p;

	memset(dev, 0, sizeof(*dev));
	memset(key, key_byte, sizeof(key));
	nt_noise_static_init(&dev->id, key);
	SETUP_CHECK(dev->id.has_key);
	dev->rng = seed;
	dev->rng_obj = dev_rng(dev);
	host.rng = &dev->rng_obj;
	SETUP_CHECK(nt_engine_init(&dev->eng, &dev->id, &host, INDEX_SLOTS, RL_CAPACITY) == 0);
	dev->eng.mtu = MTU;
	dev->eng.up = true;
	*out = (struct nt_engine_out){ .sends = outq[i].sends, .sends_cap = SENDS_MAX, .tun = outq[i].tunq,
				       .tun_cap = TUNQ_MAX, .events = outq[i].events, .events_cap = EVENTS_MAX,
				       .bytes = outq[i].bytes, .bytes_cap = sizeof(outq[i].bytes),
				       .flush = host_flush, .ctx = dev };
}

static void peer_init(struct device *dev, const struct device *remote, const uint8_t *psk,
		      const struct endpoint *ep)
{
	struct nt_peer *peer = &dev->peer;

	SETUP_CHECK(nt_engine_peer_add(&dev->eng, peer, remote->id.public_key) == 0);
	nt_handshake_set_psk(&peer->hs, psk);
	peer->endpoint = to_nt(ep);
}

/* An IPv4 packet from P's tunnel address to D's, read from P's TUN: no session yet, so P
 * stages it and sends an initiation. */
static void p_tun_packet(void)
{
	uint8_t buf[NT_DATA_HEADER_LEN + 40 + NT_ENGINE_TAIL_ROOM] = { 0 }, *pkt = buf + NT_DATA_HEADER_LEN;

	pkt[0] = 0x45;
	pkt[3] = 40;
	pkt[8] = 64;
	pkt[9] = 17;
	memcpy(pkt + 12, "\x0a\x00\x00\x02", 4);
	memcpy(pkt + 16, "\x0a\x00\x00\x01", 4);
	nt_engine_tun_packet(&W.p.eng, pkt, 40, now_of(), out_of(&W.p));
	nt_engine_flush(out_of(&W.p));
}

static void insert_prefix(struct nt_allowedips *t, int family, const char *text, uint8_t cidr,
			  struct nt_allowedips_owner *owner)
{
	uint8_t addr[16];

	SETUP_CHECK(inet_pton(family, text, addr) == 1);
	SETUP_CHECK(nt_allowedips_insert(t, family, addr, cidr, owner) == 0);
}

/* Deliver the latest message `from` sent (since `since`) to `to`. */
static void relay(struct device *from, unsigned since, struct device *to, const struct endpoint *src, bool load)
{
	const struct sent *s = last_sent(from, since);

	SETUP_CHECK(s);
	deliver(to, s->buf, s->len, src, load);
}

static void save_template(enum fz_template t, const uint8_t *buf, size_t len)
{
	SETUP_CHECK(len <= sizeof(tpl[t].buf));
	memcpy(tpl[t].buf, buf, len);
	tpl[t].len = len;
	tpl[t].keypair = -1;
}

static void data_template(enum fz_template t, int kp, uint64_t counter, const uint8_t *plain, size_t plain_len)
{
	SETUP_CHECK(plain_len <= sizeof(tpl[t].plain));
	if (plain_len)
		memcpy(tpl[t].plain, plain, plain_len);
	tpl[t].plain_len = plain_len;
	tpl[t].keypair = kp;
	tpl[t].counter = counter;
	seal_data(tpl[t].buf, kp, counter, plain, plain_len);
	tpl[t].len = plain_len + NT_DATA_MIN_LEN;
}

/* An IPv4 or IPv6 header with these addresses and total length (the rest zero). */
static size_t ip_packet(uint8_t *pkt, int family, const char *src, const char *dst, size_t total)
{
	memset(pkt, 0, total);
	if (family == AF_INET) {
		pkt[0] = 0x45;
		pkt[2] = (uint8_t)(total >> 8);
		pkt[3] = (uint8_t)total;
		pkt[8] = 64;
		pkt[9] = 17;
		SETUP_CHECK(inet_pton(AF_INET, src, pkt + 12) == 1 && inet_pton(AF_INET, dst, pkt + 16) == 1);
	} else {
		pkt[0] = 0x60;
		pkt[4] = (uint8_t)((total - 40) >> 8);
		pkt[5] = (uint8_t)(total - 40);
		pkt[6] = 17;
		pkt[7] = 64;
		SETUP_CHECK(inet_pton(AF_INET6, src, pkt + 8) == 1 && inet_pton(AF_INET6, dst, pkt + 24) == 1);
	}
	return total;
}

void fz_setup(void)
{
	static const uint8_t psk[NT_KEY_LEN] = { 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44,
						 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44,
						 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44,
						 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44, 0x44 };
	struct device *d = &W.d, *p = &W.p;
	struct nt_noise_static q_id;
	struct nt_handshake q_hs;
	struct nt_cookie_maker q_maker;
	struct nt_keypair *kp;
	static struct device p_before_b;
	struct nt_handshake *hs;
	struct nt_rng rng;
	uint8_t msg[NT_INIT_LEN], pkt[MTU], src[18], key[NT_KEY_LEN];
	unsigned since;

	SETUP_CHECK(nt_crypto_init() == 0);
	outcome = &outcome_sink;
	memset(&W, 0, sizeof(W));
	W.now = NOW0;
	device_init(d, 0x11, 1);
	device_init(p, 0x22, 2);
	peer_init(d, p, psk, &sources[FZ_SRC_PEER]);
	peer_init(p, d, psk, &d_endpoint);
	insert_prefix(d->eng.aips, AF_INET, "10.0.0.2", 32, &d->peer.aips);
	insert_prefix(d->eng.aips, AF_INET, "10.0.1.0", 24, &d->peer.aips);
	insert_prefix(d->eng.aips, AF_INET6, "fd00::", 64, &d->peer.aips);
	if (!tun_mode) { /* in fuzz_tun every route must lead to a peer */
		insert_prefix(d->eng.aips, AF_INET, "10.0.0.0", 8, &other_owner);
		insert_prefix(d->eng.aips, AF_INET6, "::", 0, &other_owner);
	}
	insert_prefix(p->eng.aips, AF_INET, "10.0.0.1", 32, &p->peer.aips);

	/* A cookie for P: its first initiation (for a packet it staged) meets D under load. */
	since = p->sent;
	p_tun_packet();
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_INITIATION);
	since = d->sent;
	relay(p, p->sent - 1, d, &sources[FZ_SRC_PEER], true);
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_COOKIE);
	relay(d, since, p, &d_endpoint, false);
	SETUP_CHECK(p->peer.cookie.has_cookie);

	/* Handshake A: P's retransmit, once its timer and D's load have passed. */
	W.now += 6 * NT_NSEC_PER_SEC;
	since = p->sent;
	run_timers(p);
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_INITIATION);
	save_template(FZ_TPL_INIT_REPLAY, last_sent(p, since)->buf, NT_INIT_LEN);
	since = d->sent;
	relay(p, p->sent - 1, d, &sources[FZ_SRC_PEER], false);
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_RESPONSE);
	W.now += MSEC;
	since = p->sent;
	relay(d, d->sent - 1, p, &d_endpoint, false);
	/* P's staged packet, the first on the new session: it confirms A at D */
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_DATA);
	save_template(FZ_TPL_DATA_REPLAY, last_sent(p, since)->buf, last_sent(p, since)->len);
	tpl[FZ_TPL_DATA_REPLAY].keypair = 0;
	tpl[FZ_TPL_DATA_REPLAY].counter = 0;
	W.now += MSEC;
	relay(p, p->sent - 1, d, &sources[FZ_SRC_PEER], false);
	SETUP_CHECK(d->peer.kps && d->peer.kps->current >= 0 && d->peer.kps->next < 0);
	kp = nt_keypairs_current(p->peer.kps);
	SETUP_CHECK(kp && kp->initiator && kp->send_counter == 1);
	memcpy(p_keypair[0].send_key, kp->send_key, NT_KEY_LEN);
	p_keypair[0].receiver = kp->remote_index;

	/* Handshake B, initiated by D: P answers, D has not read the answer yet. */
	W.now += MSEC;
	since = d->sent;
	nt_engine_initiate(&d->eng, &d->peer, now_of(), out_of(d));
	nt_engine_flush(out_of(d));
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_INITIATION);
	memcpy(msg, last_sent(d, since)->buf, NT_INIT_LEN);
	rng = dev_rng(p);
	cookie_src(&d_endpoint, src);
	{
		uint8_t reply[NT_COOKIE_MSG_LEN];

		SETUP_CHECK(nt_cookie_create_reply(&p->eng.cookie_checker, reply, msg, NT_INIT_LEN, src, 6, W.now,
						   &rng) == 0);
		save_template(FZ_TPL_COOKIE, reply, sizeof(reply));
	}
	p_before_b = *p;
	since = p->sent;
	deliver(p, msg, NT_INIT_LEN, &d_endpoint, false);
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_RESPONSE);
	save_template(FZ_TPL_RESP, last_sent(p, since)->buf, NT_RESP_LEN);
	SETUP_CHECK(nt_noise_consume_initiation(&hs, msg, NT_INIT_LEN, &p_before_b.id, lookup_handshake,
						&p_before_b, W.now) == NT_OK);
	p_hs_consumed_b = *hs;
	SETUP_CHECK(p->peer.kps->next >= 0);
	kp = &p->peer.kps->slot[p->peer.kps->next];
	memcpy(p_keypair[1].send_key, kp->send_key, NT_KEY_LEN);
	p_keypair[1].receiver = kp->remote_index;

	/* A newer initiation from P, not yet sent. */
	W.now += MSEC;
	{
		struct nt_handshake hs_copy = p->peer.hs;
		struct nt_cookie_maker maker = p->peer.cookie;

		tpl_init_wall = wall_ns();
		SETUP_CHECK(nt_noise_create_initiation(msg, &hs_copy, &p->id, 0x1c1c1c1c, tpl_init_wall, &rng) == NT_OK);
		SETUP_CHECK(nt_cookie_add_macs(&maker, msg, NT_INIT_LEN, W.now) == 0);
		nt_handshake_destroy(&hs_copy);
		save_template(FZ_TPL_INIT, msg, NT_INIT_LEN);
		memset(msg + NT_INIT_OFF_MAC2, 0, NT_MAC_LEN);
		save_template(FZ_TPL_INIT_NOMAC2, msg, NT_INIT_LEN);
	}
	save_template(FZ_TPL_RESP_NOMAC2, tpl[FZ_TPL_RESP].buf, NT_RESP_LEN);
	memset(tpl[FZ_TPL_RESP_NOMAC2].buf + NT_RESP_OFF_MAC2, 0, NT_MAC_LEN);

	/* An initiation from a key D does not know. */
	memset(key, 0x33, sizeof(key));
	nt_noise_static_init(&q_id, key);
	nt_handshake_init(&q_hs, &q_id, d->id.public_key, NULL);
	nt_cookie_maker_init(&q_maker, d->id.public_key);
	rng = dev_rng(p);
	SETUP_CHECK(nt_noise_create_initiation(msg, &q_hs, &q_id, 0x0badcafe, wall_ns(), &rng) == NT_OK);
	SETUP_CHECK(nt_cookie_add_macs(&q_maker, msg, NT_INIT_LEN, W.now) == 0);
	save_template(FZ_TPL_INIT_UNKNOWN, msg, NT_INIT_LEN);
	nt_handshake_destroy(&q_hs);

	/* Data from P, each with its own counter so that a program can send them all. */
	data_template(FZ_TPL_DATA_KEEPALIVE, 0, 1, NULL, 0);
	data_template(FZ_TPL_DATA_V4, 0, 2, pkt, ip_packet(pkt, AF_INET, "10.0.0.2", "10.0.0.1", 84));
	data_template(FZ_TPL_DATA_V6, 0, 3, pkt, ip_packet(pkt, AF_INET6, "fd00::2", "fd00::1", 104));
	data_template(FZ_TPL_DATA_SPOOF4, 0, 4, pkt, ip_packet(pkt, AF_INET, "10.9.9.9", "10.0.0.1", 64));
	data_template(FZ_TPL_DATA_SPOOF6, 0, 5, pkt, ip_packet(pkt, AF_INET6, "2001:db8::9", "fd00::1", 80));
	data_template(FZ_TPL_DATA_BIG, 0, 6, pkt, ip_packet(pkt, AF_INET, "10.0.1.77", "10.0.0.1", MTU));
	ip_packet(pkt, AF_INET, "10.0.0.2", "10.0.0.1", 48);
	pkt[2] = 0x05; /* claims 1328 bytes */
	data_template(FZ_TPL_DATA_BADLEN, 0, 7, pkt, 48);
	data_template(FZ_TPL_DATA_B, 1, 0, pkt, ip_packet(pkt, AF_INET, "10.0.0.2", "10.0.0.1", 40));
	p_keypair[0].craft_base = 16;
	p_keypair[1].craft_base = 16;
	for (int t = 0; t < FZ_TPL_COUNT; t++)
		SETUP_CHECK(tpl[t].len);

	check_device(d);
	/* Past the 1/50 s flood guard of initiation A. */
	W.now += 100 * MSEC;
	free_ciphers(&W);
	baseline = W;
	restore_device(&baseline.d, &W.d, -1);
	restore_device(&baseline.p, &W.p, -1);
	for (int i = 0; i < 2; i++) {
		for (int k = 0; k < 2; k++) {
			struct nt_ratelimiter *rl = rl_of(i ? p : d, k);
			size_t e = rl->capacity * sizeof(*rl->entries), b = (rl->bucket_mask + 1) * sizeof(*rl->buckets);

			rl_entries_saved[i][k] = malloc(e);
			rl_buckets_saved[i][k] = malloc(b);
			SETUP_CHECK(rl_entries_saved[i][k] && rl_buckets_saved[i][k]);
			memcpy(rl_entries_saved[i][k], rl->entries, e);
			memcpy(rl_buckets_saved[i][k], rl->buckets, b);
		}
	}
}
