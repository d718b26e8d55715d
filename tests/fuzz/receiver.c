/* The daemon-like receiver of fuzz_datagram (see harness.h for the scenario and the input
 * format). The dispatch below follows daemon/receive.c step for step (type -> size ->
 * mac1, and under load mac2 / cookie reply / rate limit -> Noise or cookie or keypair ->
 * inner packet checks), and what the daemon sends in answer (responses, cookie replies,
 * keepalives, initiations from the timers) goes through the same core calls as
 * daemon/send.c, into an outbox instead of a socket. That includes the answer to issue 20:
 * the TUN queue written out when full (whatever the segment count), the handshake load
 * counted per GRO segment, and a per-delivery budget for handshake segments.
 *
 * After every step the harness checks what must hold whatever the input:
 *   - a keypair slot no one references is all zeros, a zeroed handshake holds no secret;
 *   - every index in the index table is still used by the handshake or a keypair, and
 *     every index in use is in the table (the core reports every keypair it drops);
 *   - nothing reaches the TUN twice (same key, same counter), nothing from outside the
 *     peer's allowed IPs, nothing longer than what was decrypted;
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
#include "noisetun/index.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"
#include "noisetun/offload.h"
#include "noisetun/ratelimiter.h"
#include "noisetun/timers.h"

#include "harness.h"

#define HANDSHAKE_QUEUE 64 /* as the daemon: the handshakes of one batch */
#define MTU             1420
#define INDEX_SLOTS     NT_INDEX_MIN_SLOTS /* the cap: 32 live, far more than one input can use */
#define OUTBOX          16
#define OUT_MAX         NT_INIT_LEN /* the longest message the harness ever sends */
#define DELIVERED_MAX   64
#define RL_CAPACITY     64
#define MAX_PACKET      65536 /* daemon/noisetund.h: a receive buffer per datagram */
#define BUF_SIZE        (MAX_PACKET + NT_DATA_MIN_LEN + NT_DATA_PAD)
#define HELD_MAX        (FZ_MAX_STEPS + 1)
/* Smaller than what one input can queue (FZ_MAX_STEPS super-datagrams of up to
 * FZ_GRO_MAX_SEGMENTS, or a raw one split at any size): as in the daemon, the queue is
 * written out when full, mid-datagram, and that path gets fuzzed too. */
#define TUNQ_MAX        64

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

struct peer {
	uint8_t public_key[NT_KEY_LEN];
	struct nt_handshake hs;
	struct nt_cookie_maker cookie;
	struct nt_keypairs kps;
	struct nt_timers timers;
	struct nt_allowedips_owner aips;
	struct endpoint endpoint;
	uint64_t rx_bytes, tx_bytes, last_handshake_wall;
};

struct sent {
	size_t len;
	struct endpoint to;
	uint8_t buf[OUT_MAX];
};

struct device {
	struct nt_noise_static id;
	struct nt_cookie_checker checker;
	struct nt_ratelimiter rl; /* its arrays are restored apart, see restore() */
	uint64_t last_under_load, next_ratelimiter_gc;
	uint64_t rng;
	struct nt_index_table indices; /* its slots are copied apart, see restore() */
	struct peer peer;      /* the one peer */
	struct nt_allowedips *aips;
	uint64_t drops[NT_STATUS_MAX], drops_source;
	struct sent outbox[OUTBOX];
	unsigned sent; /* total; outbox[(sent - 1) % OUTBOX] is the latest */
};

struct delivered {
	uint8_t key[8];
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
static struct nt_ratelimiter_entry *rl_entries_saved[2];
static uint32_t *rl_buckets_saved[2];
static struct fz_outcome *outcome, outcome_sink;

/* The batch in flight (daemon/receive.c rx_bufs and tunq): receive buffers stay until the
 * TUN queue that points into them is flushed. Bytes past each datagram are poisoned while
 * the core reads it, so an over-read shows; the coalescer may then grow packets into them. */
static struct {
	uint8_t *buf;
	size_t len;
} held[HELD_MAX];
static size_t held_count;
static struct nt_gro_packet tunq[TUNQ_MAX];
static size_t tunq_len;
static bool vnet;

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

static uint64_t random_jitter(struct device *dev)
{
	return splitmix64(&dev->rng);
}

/* ---- endpoints and the outbox ---- */

static size_t cookie_src(const struct endpoint *ep, uint8_t out[18])
{
	size_t n = ep->family == AF_INET ? 4 : 16;

	memcpy(out, ep->addr, n);
	out[n] = (uint8_t)(ep->port >> 8);
	out[n + 1] = (uint8_t)ep->port;
	return n + 2;
}

static void udp_send(struct device *dev, const struct endpoint *to, const uint8_t *buf, size_t len)
{
	struct sent *s = &dev->outbox[dev->sent++ % OUTBOX];

	if (len > OUT_MAX)
		FAIL("the harness sent %zu bytes", len);
	s->len = len;
	s->to = *to;
	memcpy(s->buf, buf, len);
	if (dev != &W.d)
		return;
	switch (buf[0]) {
	case NT_MSG_INITIATION: outcome->sent_initiations++; break;
	case NT_MSG_RESPONSE: outcome->sent_responses++; break;
	case NT_MSG_COOKIE: outcome->sent_cookie_replies++; break;
	case NT_MSG_DATA: outcome->sent_keepalives++; break;
	}
}

static const struct sent *last_sent(const struct device *dev, unsigned since)
{
	return dev->sent > since ? &dev->outbox[(dev->sent - 1) % OUTBOX] : NULL;
}

/* ---- the index table: lib/index.c, wrapped as daemon/device.c does ---- */

/* 0 when the table is full (the daemon's ENOMEM path). */
static uint32_t index_assign(struct device *dev)
{
	struct nt_rng rng = dev_rng(dev);
	uint32_t index = 0;

	return nt_index_assign(&dev->indices, &dev->peer, &rng, &index) ? 0 : index;
}

static struct peer *index_lookup(struct device *dev, uint32_t index)
{
	return nt_index_lookup(&dev->indices, index);
}

static void index_release(struct device *dev, struct peer *peer, uint32_t index)
{
	if (nt_index_lookup(&dev->indices, index) != peer)
		return;
	if (peer->hs.state != NT_HS_ZEROED && peer->hs.local_index == index)
		return;
	if (nt_keypairs_find(&peer->kps, index))
		return;
	nt_index_release(&dev->indices, index, peer);
}

static void index_release_drops(struct device *dev, struct peer *peer, const struct nt_keypair_drops *drops)
{
	for (unsigned i = 0; i < drops->count; i++)
		index_release(dev, peer, drops->index[i]);
}

static struct nt_handshake *lookup_handshake(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	struct device *dev = ctx;

	return nt_equal(dev->peer.public_key, key, NT_KEY_LEN) ? &dev->peer.hs : NULL;
}

/* ---- the send half (daemon/send.c) ---- */

static void send_initiation(struct device *dev, bool is_retry);

static struct nt_keypair *sending_keypair(struct peer *peer, uint64_t now)
{
	struct nt_keypair *kp = nt_keypairs_current(&peer->kps);

	return kp && nt_keypair_usable(kp, now, kp->send_counter) ? kp : NULL;
}

static void after_data_sent(struct device *dev, struct nt_keypair *kp, size_t wire_len)
{
	struct peer *peer = &dev->peer;

	peer->tx_bytes += wire_len;
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, W.now);
	if (nt_timers_rekey_on_send(W.now, kp->birth, kp->send_counter, kp->initiator))
		send_initiation(dev, false);
}

static void send_initiation(struct device *dev, bool is_retry)
{
	struct peer *peer = &dev->peer;
	struct nt_rng rng = dev_rng(dev);
	uint8_t msg[NT_INIT_LEN];
	uint32_t old_index = peer->hs.local_index, index;
	bool had = peer->hs.state != NT_HS_ZEROED;
	enum nt_status st;

	if (!nt_timers_may_send_initiation(&peer->timers, W.now, is_retry))
		return;
	index = index_assign(dev);
	if (!index)
		return;
	st = nt_noise_create_initiation(msg, &peer->hs, &dev->id, index, wall_ns(), &rng);
	if (had)
		index_release(dev, peer, old_index);
	if (st != NT_OK) {
		index_release(dev, peer, index);
		return;
	}
	if (nt_cookie_add_macs(&peer->cookie, msg, sizeof(msg), W.now))
		return;
	udp_send(dev, &peer->endpoint, msg, sizeof(msg));
	peer->tx_bytes += sizeof(msg);
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, W.now);
	nt_timers_handshake_initiated(&peer->timers, W.now, random_jitter(dev));
}

static void send_keepalive(struct device *dev)
{
	struct peer *peer = &dev->peer;
	struct nt_keypair *kp = sending_keypair(peer, W.now);
	uint8_t buf[NT_DATA_MIN_LEN];
	size_t len;

	if (!kp) {
		send_initiation(dev, false);
		return;
	}
	if (nt_keypair_seal(kp, buf, &len, NULL, 0, MTU, W.now) != NT_OK)
		return;
	if (len != NT_DATA_MIN_LEN)
		FAIL("a keepalive sealed to %zu bytes", len);
	udp_send(dev, &peer->endpoint, buf, len);
	after_data_sent(dev, kp, len);
}

static void peer_clear_sessions(struct device *dev)
{
	struct peer *peer = &dev->peer;
	struct nt_keypair_drops drops = { .count = 0 };
	uint32_t hs_index = peer->hs.local_index;
	bool had_hs = peer->hs.state != NT_HS_ZEROED;

	nt_keypairs_clear(&peer->kps, &drops);
	nt_handshake_clear(&peer->hs);
	index_release_drops(dev, peer, &drops);
	if (had_hs)
		index_release(dev, peer, hs_index);
}

/* daemon/device.c device_run_timers, for the one peer. */
static void run_timers(struct device *dev)
{
	struct peer *peer = &dev->peer;

	for (int guard = 0; nt_timers_next_deadline(&peer->timers) <= W.now; guard++) {
		unsigned actions = nt_timers_expire(&peer->timers, W.now);

		if (guard > 100)
			FAIL("timers keep expiring at the same time");
		if (actions & NT_TIMER_ERASE_KEYS)
			peer_clear_sessions(dev);
		if (actions & NT_TIMER_RETRY_INITIATION)
			send_initiation(dev, true);
		else if (actions & NT_TIMER_SEND_INITIATION)
			send_initiation(dev, false);
		if (actions & NT_TIMER_SEND_KEEPALIVE)
			send_keepalive(dev);
	}
	if (W.now >= dev->next_ratelimiter_gc) {
		nt_ratelimiter_gc(&dev->rl, W.now);
		dev->next_ratelimiter_gc = W.now + NT_NSEC_PER_SEC;
	}
}

/* ---- the receive half (daemon/receive.c) ---- */

static void authenticated_received(struct peer *peer, const struct endpoint *src, size_t len)
{
	peer->endpoint = *src;
	peer->rx_bytes += len;
	nt_timers_any_authenticated_packet_received(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, W.now);
}

static bool handshake_admitted(struct device *dev, const uint8_t *msg, size_t len, const struct endpoint *src,
			       bool under_load)
{
	uint8_t src_bytes[18], reply[NT_COOKIE_MSG_LEN];
	size_t src_len = cookie_src(src, src_bytes);
	struct nt_rng rng = dev_rng(dev);
	enum nt_cookie_mac_state mac =
		nt_cookie_validate(&dev->checker, msg, len, src_bytes, src_len, W.now, under_load);

	if (mac == NT_COOKIE_MAC_INVALID) {
		dev->drops[NT_DROP_DECRYPT]++;
		return false;
	}
	if (!under_load)
		return true;
	if (mac != NT_COOKIE_MAC2_VALID) {
		if (nt_cookie_create_reply(&dev->checker, reply, msg, len, src_bytes, src_len, W.now, &rng) == 0) {
			if (reply[0] != NT_MSG_COOKIE || nt_load_le32(reply + NT_COOKIE_OFF_RECEIVER) !=
							     nt_load_le32(msg + NT_INIT_OFF_SENDER))
				FAIL("a cookie reply that does not answer its message");
			udp_send(dev, src, reply, sizeof(reply));
		}
		return false;
	}
	return nt_ratelimiter_allow(&dev->rl, src->family, src->addr, W.now);
}

static void handle_initiation(struct device *dev, const uint8_t *msg, size_t len, const struct endpoint *src,
			      bool under_load)
{
	uint8_t resp[NT_RESP_LEN];
	struct nt_keypair_drops drops = { .count = 0 };
	struct nt_rng rng = dev_rng(dev);
	struct nt_handshake *hs;
	struct peer *peer = &dev->peer;
	uint32_t old_index, index;
	enum nt_status st;

	if (len != NT_INIT_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	if (!handshake_admitted(dev, msg, len, src, under_load))
		return;
	st = nt_noise_consume_initiation(&hs, msg, len, &dev->id, lookup_handshake, dev, W.now);
	if (st != NT_OK) {
		dev->drops[st]++;
		return;
	}
	if (hs != &peer->hs)
		FAIL("consume_initiation returned a handshake the lookup never gave");
	if (dev == &W.d)
		outcome->initiations_accepted++;
	old_index = hs->local_index;
	authenticated_received(peer, src, len);

	index = index_assign(dev);
	if (!index || nt_noise_create_response(resp, hs, &dev->id, index, &rng) != NT_OK ||
	    nt_cookie_add_macs(&peer->cookie, resp, sizeof(resp), W.now)) {
		nt_handshake_clear(hs);
		if (index)
			index_release(dev, peer, index);
		index_release(dev, peer, old_index);
		return;
	}
	index_release(dev, peer, old_index);
	if (nt_noise_begin_session(hs, &peer->kps, W.now, &drops) != NT_OK) {
		index_release(dev, peer, index);
		return;
	}
	index_release_drops(dev, peer, &drops);
	udp_send(dev, src, resp, sizeof(resp));
	peer->tx_bytes += sizeof(resp);
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, W.now);
	nt_timers_session_derived(&peer->timers, W.now);
}

static void handle_response(struct device *dev, const uint8_t *msg, size_t len, const struct endpoint *src,
			    bool under_load)
{
	struct nt_keypair_drops drops = { .count = 0 };
	struct peer *peer;
	enum nt_status st;

	if (len != NT_RESP_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	if (!handshake_admitted(dev, msg, len, src, under_load))
		return;
	peer = index_lookup(dev, nt_noise_response_receiver(msg));
	if (!peer) {
		dev->drops[NT_DROP_INDEX]++;
		return;
	}
	st = nt_noise_consume_response(&peer->hs, msg, len, &dev->id);
	if (st == NT_OK)
		st = nt_noise_begin_session(&peer->hs, &peer->kps, W.now, &drops);
	if (st != NT_OK) {
		dev->drops[st]++;
		return;
	}
	if (dev == &W.d)
		outcome->responses_accepted++;
	index_release_drops(dev, peer, &drops);
	authenticated_received(peer, src, len);
	nt_timers_handshake_complete(&peer->timers);
	nt_timers_session_derived(&peer->timers, W.now);
	peer->last_handshake_wall = wall_ns();
	send_keepalive(dev); /* nothing is ever staged here */
}

static void handle_cookie(struct device *dev, const uint8_t *msg, size_t len)
{
	struct peer *peer;

	if (len != NT_COOKIE_MSG_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	peer = index_lookup(dev, nt_load_le32(msg + NT_COOKIE_OFF_RECEIVER));
	if (!peer) {
		dev->drops[NT_DROP_INDEX]++;
		return;
	}
	if (nt_cookie_consume_reply(&peer->cookie, msg, len, W.now)) {
		dev->drops[NT_DROP_DECRYPT]++;
		return;
	}
	if (dev == &W.d)
		outcome->cookies_accepted++;
}

static bool source_allowed(struct device *dev, struct peer *peer, const uint8_t *pkt)
{
	struct nt_allowedips_owner *owner;

	if ((pkt[0] >> 4) == 4)
		owner = nt_allowedips_lookup(dev->aips, AF_INET, pkt + 12);
	else
		owner = nt_allowedips_lookup(dev->aips, AF_INET6, pkt + 8);
	return owner == &peer->aips;
}

/* P's prefixes at D, written out plainly: 10.0.0.2/32, 10.0.1.0/24, fd00::/64. */
static bool naive_source_of_p(const uint8_t *pkt)
{
	static const uint8_t fd00[8] = { 0xfd, 0 };

	if ((pkt[0] >> 4) == 4)
		return !memcmp(pkt + 12, "\x0a\x00\x00\x02", 4) || !memcmp(pkt + 12, "\x0a\x00\x01", 3);
	return !memcmp(pkt + 8, fd00, 8);
}

static void write_tunq(void);

/* The daemon queues decrypted packets and writes them at the end of the batch, or as soon
 * as the queue is full (daemon/receive.c handle_data). */
static void tun_enqueue(struct device *dev, uint8_t *pkt, size_t iplen, size_t plainlen, const uint8_t *buf_end)
{
	if (dev != &W.d)
		return;
	if (!iplen || iplen > plainlen)
		FAIL("TUN write of %zu bytes out of %zu decrypted", iplen, plainlen);
	if (!naive_source_of_p(pkt))
		FAIL("a packet from outside the peer's allowed IPs reached the TUN");
	if (tunq_len == TUNQ_MAX)
		write_tunq();
	tunq[tunq_len++] = (struct nt_gro_packet){ .data = pkt, .len = iplen, .cap = (size_t)(buf_end - pkt) };
}

static void record_delivery(const struct nt_keypair *kp, uint64_t counter)
{
	for (unsigned i = 0; i < W.delivered_count; i++)
		if (W.delivered[i].counter == counter && !memcmp(W.delivered[i].key, kp->recv_key, 8))
			FAIL("counter %llu accepted twice on one keypair", (unsigned long long)counter);
	if (W.delivered_count < DELIVERED_MAX) {
		memcpy(W.delivered[W.delivered_count].key, kp->recv_key, 8);
		W.delivered[W.delivered_count++].counter = counter;
	}
}

static void handle_data(struct device *dev, uint8_t *msg, size_t len, const struct endpoint *src,
			const uint8_t *buf_end)
{
	struct nt_keypair_drops drops = { .count = 0 };
	uint8_t *plain = msg + NT_DATA_HEADER_LEN;
	struct nt_keypair *kp;
	struct peer *peer;
	size_t plainlen, iplen;
	uint64_t counter;
	enum nt_status st;

	if (len < NT_DATA_MIN_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	peer = index_lookup(dev, nt_load_le32(msg + NT_DATA_OFF_RECEIVER));
	kp = peer ? nt_keypairs_find(&peer->kps, nt_load_le32(msg + NT_DATA_OFF_RECEIVER)) : NULL;
	if (!kp) {
		dev->drops[NT_DROP_INDEX]++;
		return;
	}
	counter = nt_data_counter(msg);
	st = nt_keypair_open(kp, plain, &plainlen, msg, len, W.now);
	if (st != NT_OK) {
		dev->drops[st]++;
		return;
	}
	if (plainlen != len - NT_DATA_MIN_LEN)
		FAIL("opened %zu bytes out of a %zu-byte message", plainlen, len);
	if (dev == &W.d) {
		record_delivery(kp, counter);
		if (plainlen)
			outcome->data_accepted++;
		else
			outcome->keepalives_accepted++;
	}
	authenticated_received(peer, src, len);
	if (nt_keypairs_confirm(&peer->kps, kp, &drops)) {
		if (dev == &W.d)
			outcome->confirmed++;
		index_release_drops(dev, peer, &drops);
		nt_timers_handshake_complete(&peer->timers);
		peer->last_handshake_wall = wall_ns();
		/* send_staged: nothing is ever staged here */
	}
	if (nt_timers_rekey_on_receive(&peer->timers, W.now, kp->birth, kp->initiator))
		send_initiation(dev, false);
	if (!plainlen)
		return;
	iplen = nt_ip_packet_len(plain, plainlen);
	if (!iplen) {
		dev->drops[NT_DROP_MALFORMED]++;
		if (dev == &W.d)
			outcome->drops_malformed++;
		return;
	}
	if (!source_allowed(dev, peer, plain)) {
		dev->drops_source++;
		if (dev == &W.d)
			outcome->drops_source++;
		return;
	}
	nt_timers_data_received(&peer->timers, W.now);
	tun_enqueue(dev, plain, iplen, plainlen, buf_end);
}

/* One message, as receive_udp dispatches it. */
static void dispatch(struct device *dev, uint8_t *msg, size_t len, const struct endpoint *src, bool under_load,
		     const uint8_t *buf_end)
{
	switch (nt_message_type(msg, len)) {
	case NT_MSG_INITIATION:
		handle_initiation(dev, msg, len, src, under_load);
		break;
	case NT_MSG_RESPONSE:
		handle_response(dev, msg, len, src, under_load);
		break;
	case NT_MSG_COOKIE:
		handle_cookie(dev, msg, len);
		break;
	case NT_MSG_DATA:
		handle_data(dev, msg, len, src, buf_end);
		break;
	default:
		dev->drops[NT_DROP_SIZE]++;
		break;
	}
}

/* One datagram (seg < len: a UDP GRO super-datagram of seg-byte datagrams, the last maybe
 * shorter), into a receive buffer of the daemon's size, as receive_udp handles it. */
static bool is_handshake(const uint8_t *msg, size_t len)
{
	enum nt_message_type t = nt_message_type(msg, len);

	return (t == NT_MSG_INITIATION && len == NT_INIT_LEN) || (t == NT_MSG_RESPONSE && len == NT_RESP_LEN);
}

/* As receive_udp: the load is counted per segment (the input's load flag stands for the
 * rest of a batch), and handshake messages after the first segment of a super-datagram
 * draw on a budget of HANDSHAKE_QUEUE per wakeup (one delivery here); the excess is
 * dropped and counted as NT_DROP_FLOOD. */
static void deliver_gro(struct device *dev, const uint8_t *data, size_t len, size_t seg, const struct endpoint *src,
			bool load_signal)
{
	size_t handshakes = 0, hs_budget = HANDSHAKE_QUEUE;
	bool under_load;
	uint8_t *buf;

	if (len > BUF_SIZE) {
		dev->drops[NT_DROP_SIZE]++; /* MSG_TRUNC */
		return;
	}
	if (held_count == HELD_MAX)
		FAIL("the harness holds too many receive buffers");
	buf = malloc(BUF_SIZE);
	if (!buf)
		abort();
	if (len)
		memcpy(buf, data, len);
	ASAN_POISON_MEMORY_REGION(buf + len, BUF_SIZE - len);
	held[held_count].buf = buf;
	held[held_count++].len = len;
	if (!seg || seg > len)
		seg = len;
	for (size_t off = 0; off < len; off += seg)
		handshakes += is_handshake(buf + off, len - off < seg ? len - off : seg);
	under_load = nt_cookie_under_load(load_signal ? HANDSHAKE_QUEUE : handshakes, HANDSHAKE_QUEUE, W.now,
					  &dev->last_under_load);
	for (size_t off = 0; off < len; off += seg) {
		size_t mlen = len - off < seg ? len - off : seg;
		enum nt_message_type t = nt_message_type(buf + off, mlen);

		if (t == NT_MSG_INITIATION || t == NT_MSG_RESPONSE) {
			if (off && !hs_budget) {
				dev->drops[NT_DROP_FLOOD]++;
				continue;
			}
			if (hs_budget)
				hs_budget--;
		}
		dispatch(dev, buf + off, mlen, src, under_load, buf + BUF_SIZE);
	}
}

static void deliver(struct device *dev, const uint8_t *data, size_t len, const struct endpoint *src, bool load)
{
	deliver_gro(dev, data, len, len, src, load);
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

/* daemon/receive.c flush_tun: coalesce (vnet), then write each remaining packet. The
 * receive buffers stay (a full queue is written mid-datagram); their tails are poisoned
 * again for what is left of the batch. */
static void write_tunq(void)
{
	uint8_t *orig[TUNQ_MAX];
	size_t orig_len[TUNQ_MAX];

	for (size_t i = 0; i < held_count; i++)
		ASAN_UNPOISON_MEMORY_REGION(held[i].buf + held[i].len, BUF_SIZE - held[i].len);
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
	tunq_len = 0;
	for (size_t i = 0; i < held_count; i++)
		ASAN_POISON_MEMORY_REGION(held[i].buf + held[i].len, BUF_SIZE - held[i].len);
}

/* The end of a batch: write the queue, give the receive buffers back. */
static void flush_tun(void)
{
	write_tunq();
	for (size_t i = 0; i < held_count; i++) {
		ASAN_UNPOISON_MEMORY_REGION(held[i].buf + held[i].len, BUF_SIZE - held[i].len);
		free(held[i].buf);
	}
	held_count = 0;
}

/* ---- invariants ---- */

static bool slot_referenced(const struct nt_keypairs *kps, int i)
{
	return kps->next == i || kps->current == i || kps->previous == i;
}

static bool index_in_use(const struct peer *peer, uint32_t index)
{
	if (peer->hs.state != NT_HS_ZEROED && peer->hs.local_index == index)
		return true;
	return nt_keypairs_find((struct nt_keypairs *)&peer->kps, index) != NULL;
}

/* The table's own bookkeeping, and every live index still used by the peer. */
static void check_index_table(struct device *dev)
{
	const struct nt_index_table *t = &dev->indices;
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
	if (live != t->live || tombstones != t->tombstones || 2 * (live + tombstones) > t->size)
		FAIL("index table counts %zu live %zu tombstones, holds %zu and %zu in %zu slots",
		     t->live, t->tombstones, live, tombstones, t->size);
}

static void check_device(struct device *dev)
{
	struct peer *peer = &dev->peer;
	const struct nt_keypairs *kps = &peer->kps;
	const int8_t refs[3] = { kps->next, kps->current, kps->previous };

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
			if (index_lookup(dev, kps->slot[i].local_index) != peer)
				FAIL("keypair index %08x is not in the index table", kps->slot[i].local_index);
		} else if (!nt_is_zero(&kps->slot[i], sizeof(kps->slot[i]))) {
			FAIL("a dropped keypair was not wiped");
		}
	}
	if (peer->hs.state == NT_HS_ZEROED) {
		if (!nt_is_zero(&peer->hs.secrets, sizeof(peer->hs.secrets)))
			FAIL("a finished handshake kept its secrets");
	} else if (index_lookup(dev, peer->hs.local_index) != peer) {
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
		nt_mac(msg + len - 2 * NT_MAC_LEN, W.d.checker.mac1_key, NT_KEY_LEN, msg, len - 2 * NT_MAC_LEN);
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

			if (nt_cookie_validate(&W.p.checker, s->buf, s->len, src, src_len, W.now, false) ==
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
		struct peer *p = &W.p.peer;

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
		    nt_noise_begin_session(&p->hs, &p->kps, W.now, &drops) != NT_OK)
			FAIL("P cannot answer D's initiation");
		if (flags & 1)
			memset(msg + NT_RESP_OFF_MAC2, 0, NT_MAC_LEN);
		deliver(&W.d, msg, NT_RESP_LEN, src, load);
		check_answers_at_p(since, NULL, &p->kps.slot[p->kps.next]);
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
	struct nt_keypairs *all[2] = { &w->d.peer.kps, &w->p.peer.kps };

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

static void restore(void)
{
	free_ciphers(&W);
	nt_index_free(&W.d.indices);
	nt_index_free(&W.p.indices);
	W = baseline;
	index_copy(&W.d.indices, &baseline.d.indices);
	index_copy(&W.p.indices, &baseline.p.indices);
	memcpy(W.d.rl.entries, rl_entries_saved[0], W.d.rl.capacity * sizeof(*W.d.rl.entries));
	memcpy(W.d.rl.buckets, rl_buckets_saved[0], (W.d.rl.bucket_mask + 1) * sizeof(*W.d.rl.buckets));
	memcpy(W.p.rl.entries, rl_entries_saved[1], W.p.rl.capacity * sizeof(*W.p.rl.entries));
	memcpy(W.p.rl.buckets, rl_buckets_saved[1], (W.p.rl.bucket_mask + 1) * sizeof(*W.p.rl.buckets));
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
	if (!(flags & FZ_F_PROGRAM)) {
		W.now += time_steps[(flags >> FZ_F_TIME_SHIFT) & 7];
		deliver(&W.d, r.p, r.n, &sources[(flags >> FZ_F_SRC_SHIFT) & 3], flags & FZ_F_LOAD);
		check_device(&W.d);
		if (flags & FZ_F_TIMERS) {
			flush_tun();
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
				flush_tun(); /* a timer wakes the loop: the batch before it is done */
				run_timers(&W.d);
				break;
			}
			check_device(&W.d);
		}
	}
	flush_tun();
	for (int i = 0; i < NT_STATUS_MAX && i < 16; i++)
		outcome->drops[i] = (unsigned)(W.d.drops[i] - baseline.d.drops[i]);
	outcome->drops_index = outcome->drops[NT_DROP_INDEX];
}

const uint8_t *fz_template(enum fz_template t, size_t *len)
{
	*len = tpl[t].len;
	return tpl[t].buf;
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
	uint8_t key[NT_KEY_LEN];
	struct nt_rng rng;

	memset(dev, 0, sizeof(*dev));
	memset(key, key_byte, sizeof(key));
	nt_noise_static_init(&dev->id, key);
	SETUP_CHECK(dev->id.has_key);
	nt_cookie_checker_init(&dev->checker);
	nt_cookie_checker_set_public_key(&dev->checker, dev->id.public_key);
	dev->rng = seed;
	rng = dev_rng(dev);
	SETUP_CHECK(nt_ratelimiter_init(&dev->rl, RL_CAPACITY, &rng) == 0);
	SETUP_CHECK(nt_index_init(&dev->indices, INDEX_SLOTS) == 0);
	dev->aips = nt_allowedips_new();
	SETUP_CHECK(dev->aips);
}

static void peer_init(struct device *dev, const struct device *remote, const uint8_t *psk,
		      const struct endpoint *ep)
{
	struct peer *peer = &dev->peer;

	memcpy(peer->public_key, remote->id.public_key, NT_KEY_LEN);
	nt_handshake_init(&peer->hs, &dev->id, peer->public_key, psk);
	nt_cookie_maker_init(&peer->cookie, peer->public_key);
	nt_keypairs_init(&peer->kps);
	nt_timers_init(&peer->timers);
	peer->endpoint = *ep;
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
	flush_tun();
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
	struct device *d = &W.d, *p = &W.p, q;
	struct nt_keypair *kp;
	struct device p_before_b;
	struct nt_handshake *hs;
	struct nt_rng rng;
	uint8_t msg[NT_INIT_LEN], pkt[MTU], src[18];
	unsigned since;

	SETUP_CHECK(nt_crypto_init() == 0);
	outcome = &outcome_sink;
	memset(&W, 0, sizeof(W));
	W.now = NOW0;
	device_init(d, 0x11, 1);
	device_init(p, 0x22, 2);
	peer_init(d, p, psk, &sources[FZ_SRC_PEER]);
	peer_init(p, d, psk, &d_endpoint);
	insert_prefix(d->aips, AF_INET, "10.0.0.2", 32, &d->peer.aips);
	insert_prefix(d->aips, AF_INET, "10.0.1.0", 24, &d->peer.aips);
	insert_prefix(d->aips, AF_INET6, "fd00::", 64, &d->peer.aips);
	insert_prefix(d->aips, AF_INET, "10.0.0.0", 8, &other_owner);
	insert_prefix(d->aips, AF_INET6, "::", 0, &other_owner);

	/* A cookie for P: its first initiation meets D under load. */
	since = p->sent;
	send_initiation(p, false);
	since = d->sent;
	relay(p, since, d, &sources[FZ_SRC_PEER], true);
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_COOKIE);
	relay(d, since, p, &d_endpoint, false);
	SETUP_CHECK(p->peer.cookie.has_cookie);

	/* Handshake A, initiated by P once its retransmit guard and D's load have passed. */
	W.now += 6 * NT_NSEC_PER_SEC;
	since = p->sent;
	send_initiation(p, false);
	SETUP_CHECK(last_sent(p, since));
	save_template(FZ_TPL_INIT_REPLAY, last_sent(p, since)->buf, NT_INIT_LEN);
	since = d->sent;
	relay(p, p->sent - 1, d, &sources[FZ_SRC_PEER], false);
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_RESPONSE);
	W.now += MSEC;
	since = p->sent;
	relay(d, d->sent - 1, p, &d_endpoint, false);
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_DATA); /* the keepalive */
	save_template(FZ_TPL_DATA_REPLAY, last_sent(p, since)->buf, NT_DATA_MIN_LEN);
	tpl[FZ_TPL_DATA_REPLAY].keypair = 0;
	tpl[FZ_TPL_DATA_REPLAY].counter = 0;
	W.now += MSEC;
	relay(p, p->sent - 1, d, &sources[FZ_SRC_PEER], false);
	SETUP_CHECK(d->peer.kps.current >= 0 && d->peer.kps.next < 0);
	kp = nt_keypairs_current(&p->peer.kps);
	SETUP_CHECK(kp && kp->initiator && kp->send_counter == 1);
	memcpy(p_keypair[0].send_key, kp->send_key, NT_KEY_LEN);
	p_keypair[0].receiver = kp->remote_index;

	/* Handshake B, initiated by D: P answers, D has not read the answer yet. */
	W.now += MSEC;
	since = d->sent;
	send_initiation(d, false);
	SETUP_CHECK(last_sent(d, since) && last_sent(d, since)->buf[0] == NT_MSG_INITIATION);
	memcpy(msg, last_sent(d, since)->buf, NT_INIT_LEN);
	rng = dev_rng(p);
	cookie_src(&d_endpoint, src);
	{
		uint8_t reply[NT_COOKIE_MSG_LEN];

		SETUP_CHECK(nt_cookie_create_reply(&p->checker, reply, msg, NT_INIT_LEN, src, 6, W.now, &rng) == 0);
		save_template(FZ_TPL_COOKIE, reply, sizeof(reply));
	}
	p_before_b = *p;
	since = p->sent;
	deliver(p, msg, NT_INIT_LEN, &d_endpoint, false);
	flush_tun();
	SETUP_CHECK(last_sent(p, since) && last_sent(p, since)->buf[0] == NT_MSG_RESPONSE);
	save_template(FZ_TPL_RESP, last_sent(p, since)->buf, NT_RESP_LEN);
	SETUP_CHECK(nt_noise_consume_initiation(&hs, msg, NT_INIT_LEN, &p_before_b.id, lookup_handshake,
						&p_before_b, W.now) == NT_OK);
	p_hs_consumed_b = *hs;
	SETUP_CHECK(p->peer.kps.next >= 0);
	kp = &p->peer.kps.slot[p->peer.kps.next];
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
	device_init(&q, 0x33, 3);
	peer_init(&q, d, NULL, &d_endpoint);
	rng = dev_rng(&q);
	SETUP_CHECK(nt_noise_create_initiation(msg, &q.peer.hs, &q.id, 0x0badcafe, wall_ns(), &rng) == NT_OK);
	SETUP_CHECK(nt_cookie_add_macs(&q.peer.cookie, msg, NT_INIT_LEN, W.now) == 0);
	save_template(FZ_TPL_INIT_UNKNOWN, msg, NT_INIT_LEN);
	nt_ratelimiter_free(&q.rl);
	nt_index_free(&q.indices);
	nt_allowedips_free(q.aips);

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
	index_copy(&baseline.d.indices, &W.d.indices);
	index_copy(&baseline.p.indices, &W.p.indices);
	for (int i = 0; i < 2; i++) {
		struct nt_ratelimiter *rl = i ? &p->rl : &d->rl;
		size_t e = rl->capacity * sizeof(*rl->entries), b = (rl->bucket_mask + 1) * sizeof(*rl->buckets);

		rl_entries_saved[i] = malloc(e);
		rl_buckets_saved[i] = malloc(b);
		SETUP_CHECK(rl_entries_saved[i] && rl_buckets_saved[i]);
		memcpy(rl_entries_saved[i], rl->entries, e);
		memcpy(rl_buckets_saved[i], rl->buckets, b);
	}
}
