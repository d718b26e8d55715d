/* The receive half: UDP recvmmsg (a batch) -> by message type:
 *   1, 2: mac1 -> (under load: mac2 or a cookie reply, then the rate limiter) -> Noise
 *   3:    cookie reply for a pending handshake
 *   4:    keypair by receiver index -> replay -> open in place -> cryptokey routing on the
 *         inner source -> TUN write
 * The peer's endpoint follows the latest authenticated packet (roaming). */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <netinet/udp.h>

#include "noisetun/mss.h"
#include "noisetun/offload.h"
#include "noisetund.h"

static uint8_t rx_bufs[BATCH][BUF_SIZE];

/* Decrypted packets for the TUN, written together at the end of the batch, or earlier
 * when the queue is full: how many segments a datagram holds is the kernel's choice
 * (locally sent GSO keeps up to UDP_MAX_SEGMENTS, 128 on recent kernels), not
 * MAX_SEGMENTS, so the queue's bound is enforced at every append. */
#define TUNQ_MAX (BATCH * MAX_SEGMENTS)
static struct nt_gro_packet tunq[TUNQ_MAX];
static size_t tunq_len;

static void flush_tun(struct device *dev);

#define PEER_OF(field_ptr, field) ((struct peer *)((char *)(field_ptr) - offsetof(struct peer, field)))

static struct nt_handshake *lookup_handshake(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	struct peer *peer = peer_lookup(ctx, key);

	return peer ? &peer->hs : NULL;
}

static void set_endpoint(struct peer *peer, const union endpoint *src, const struct endpoint_src *local)
{
	peer->src = *local;
	if (!endpoint_equal(&peer->endpoint, src)) {
		char buf[64];

		peer->endpoint = *src;
		endpoint_format(buf, sizeof(buf), src);
		peer_verbose(peer, "endpoint is now %s", buf);
	}
}

static void authenticated_received(struct peer *peer, const union endpoint *src, const struct endpoint_src *local,
				   size_t len, uint64_t now)
{
	set_endpoint(peer, src, local);
	peer->rx_bytes += len;
	nt_timers_any_authenticated_packet_received(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, now);
}

/* mac1, and under load mac2 or a cookie reply, and the per-source rate limit.
 * true: go on and process the handshake message. */
static bool handshake_admitted(struct device *dev, const uint8_t *msg, size_t len, const union endpoint *src,
			       const struct endpoint_src *local, uint64_t now, bool under_load)
{
	uint8_t src_bytes[18], reply[NT_COOKIE_MSG_LEN];
	size_t src_len = endpoint_cookie_src(src, src_bytes);
	enum nt_cookie_mac_state mac =
		nt_cookie_validate(&dev->cookie_checker, msg, len, src_bytes, src_len, now, under_load);

	if (mac == NT_COOKIE_MAC_INVALID) {
		dev->drops[NT_DROP_DECRYPT]++;
		return false;
	}
	if (!under_load)
		return true;
	if (mac != NT_COOKIE_MAC2_VALID) {
		if (nt_cookie_create_reply(&dev->cookie_checker, reply, msg, len, src_bytes, src_len, now, &sys_rng) == 0)
		{
			struct endpoint_src from = *local;
			udp_send(dev, src, &from, reply, sizeof(reply));
		}
		return false;
	}
	if (src->sa.sa_family == AF_INET)
		return nt_ratelimiter_allow(&dev->ratelimiter, AF_INET, (const uint8_t *)&src->in4.sin_addr, now);
	return nt_ratelimiter_allow(&dev->ratelimiter, AF_INET6, src->in6.sin6_addr.s6_addr, now);
}

static void handle_initiation(struct device *dev, const uint8_t *msg, size_t len, const union endpoint *src,
			      const struct endpoint_src *local, uint64_t now, bool under_load)
{
	uint8_t resp[NT_RESP_LEN];
	struct nt_keypair_drops drops = { .count = 0 };
	struct nt_handshake *hs;
	struct peer *peer;
	uint32_t old_index, index;
	enum nt_status st;

	if (len != NT_INIT_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	if (!handshake_admitted(dev, msg, len, src, local, now, under_load))
		return;
	st = nt_noise_consume_initiation(&hs, msg, len, dev->static_identity, lookup_handshake, dev, now);
	if (st != NT_OK) {
		dev->drops[st]++;
		log_verbose("dropping handshake initiation: %s", nt_status_name(st));
		return;
	}
	peer = PEER_OF(hs, hs);
	old_index = hs->local_index; /* of a handshake this one replaced, if any */
	peer_verbose(peer, "received handshake initiation");
	authenticated_received(peer, src, local, len, now);
	peer_timers_changed(peer);

	index = index_assign(dev, peer);
	if (!index || nt_noise_create_response(resp, hs, dev->static_identity, index, &sys_rng) != NT_OK ||
	    nt_cookie_add_macs(&peer->cookie, resp, sizeof(resp), now)) {
		nt_handshake_clear(hs);
		if (index)
			index_release(dev, peer, index);
		index_release(dev, peer, old_index);
		return;
	}
	index_release(dev, peer, old_index);
	if (!peer_keypairs(peer) || nt_noise_begin_session(hs, peer->kps, now, &drops) != NT_OK) {
		index_release(dev, peer, index);
		return;
	}
	index_release_drops(dev, peer, &drops);
	peer_verbose(peer, "sending handshake response");
	if (udp_send(dev, src, &peer->src, resp, sizeof(resp)) == 0)
		peer->tx_bytes += sizeof(resp);
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, now);
	nt_timers_session_derived(&peer->timers, now);
	peer_timers_changed(peer);
}

static void handle_response(struct device *dev, const uint8_t *msg, size_t len, const union endpoint *src,
			    const struct endpoint_src *local, uint64_t now, bool under_load)
{
	struct nt_keypair_drops drops = { .count = 0 };
	struct peer *peer;
	enum nt_status st;

	if (len != NT_RESP_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	if (!handshake_admitted(dev, msg, len, src, local, now, under_load))
		return;
	peer = index_lookup(dev, nt_noise_response_receiver(msg));
	if (!peer) {
		dev->drops[NT_DROP_INDEX]++;
		return;
	}
	st = nt_noise_consume_response(&peer->hs, msg, len, dev->static_identity);
	if (st == NT_OK)
		st = peer_keypairs(peer) ? nt_noise_begin_session(&peer->hs, peer->kps, now, &drops) : NT_DROP_STATE;
	if (st != NT_OK) {
		dev->drops[st]++;
		peer_verbose(peer, "dropping handshake response: %s", nt_status_name(st));
		return;
	}
	index_release_drops(dev, peer, &drops);
	peer_verbose(peer, "received handshake response, session established");
	authenticated_received(peer, src, local, len, now);
	nt_timers_handshake_complete(&peer->timers);
	nt_timers_session_derived(&peer->timers, now);
	peer->last_handshake_wall = wall_ns();
	peer_timers_changed(peer);
	/* Key confirmation: the responder waits for our first message on the new keypair. */
	if (peer->staged_count)
		send_staged(peer);
	else
		send_keepalive(peer);
}

static void handle_cookie(struct device *dev, const uint8_t *msg, size_t len, uint64_t now)
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
	if (nt_cookie_consume_reply(&peer->cookie, msg, len, now)) {
		dev->drops[NT_DROP_DECRYPT]++;
		return;
	}
	peer_verbose(peer, "received cookie reply; the peer is under load");
}

/* Cryptokey routing on receive: the inner source must route back to the same peer. */
static bool source_allowed(struct device *dev, struct peer *peer, const uint8_t *pkt)
{
	struct nt_allowedips_owner *owner;

	if ((pkt[0] >> 4) == 4)
		owner = nt_allowedips_lookup(dev->aips, AF_INET, pkt + 12);
	else
		owner = nt_allowedips_lookup(dev->aips, AF_INET6, pkt + 8);
	return owner == &peer->aips;
}

static void handle_data(struct device *dev, uint8_t *msg, size_t len, const union endpoint *src,
			const struct endpoint_src *local, uint64_t now, const uint8_t *buf_end)
{
	struct nt_keypair_drops drops = { .count = 0 };
	uint8_t *plain = msg + NT_DATA_HEADER_LEN;
	struct nt_keypair *kp;
	struct peer *peer;
	size_t plainlen, iplen;
	enum nt_status st;

	if (len < NT_DATA_MIN_LEN) {
		dev->drops[NT_DROP_SIZE]++;
		return;
	}
	peer = index_lookup(dev, nt_load_le32(msg + NT_DATA_OFF_RECEIVER));
	kp = peer && peer->kps ? nt_keypairs_find(peer->kps, nt_load_le32(msg + NT_DATA_OFF_RECEIVER)) : NULL;
	if (!kp) {
		dev->drops[NT_DROP_INDEX]++;
		return;
	}
	st = nt_keypair_open(kp, plain, &plainlen, msg, len, now);
	if (st != NT_OK) {
		dev->drops[st]++;
		return;
	}
	authenticated_received(peer, src, local, len, now);
	if (nt_keypairs_confirm(peer->kps, kp, &drops)) {
		index_release_drops(dev, peer, &drops);
		nt_timers_handshake_complete(&peer->timers);
		peer->last_handshake_wall = wall_ns();
		peer_verbose(peer, "session confirmed by the initiator");
		send_staged(peer);
	}
	if (nt_timers_rekey_on_receive(&peer->timers, now, kp->birth, kp->initiator))
		send_initiation(peer, false);
	if (!plainlen) {
		peer_timers_changed(peer);
		return; /* a keepalive */
	}
	iplen = nt_ip_packet_len(plain, plainlen);
	if (!iplen) {
		dev->drops[NT_DROP_MALFORMED]++;
		peer_timers_changed(peer);
		return;
	}
	if (!source_allowed(dev, peer, plain)) {
		dev->drops_source++;
		peer_timers_changed(peer);
		return;
	}
	nt_timers_data_received(&peer->timers, now);
	peer_timers_changed(peer);
	if (!dev->no_mss_clamp)
		nt_mss_clamp(plain, iplen, dev->mtu); /* the peer's SYNs to hosts behind us */
	if (tunq_len == TUNQ_MAX)
		flush_tun(dev); /* full: write what is queued (its buffers stay valid), then go on */
	tunq[tunq_len++] = (struct nt_gro_packet){ .data = plain, .len = iplen, .cap = (size_t)(buf_end - plain) };
}

static void write_tun(struct device *dev, uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h)
{
	ssize_t n;

	if (dev->vnet) {
		/* every packet has room before it: it sat behind a 16-byte transport header */
		pkt -= NT_VNET_HDR_LEN;
		nt_vnet_hdr_store(pkt, h);
		len += NT_VNET_HDR_LEN;
	}
	n = write(dev->tun, pkt, len);
	if (n < 0 && errno != EAGAIN && errno != EIO)
		log_verbose("TUN write: %s", strerror(errno));
}

static void flush_tun(struct device *dev)
{
	static const struct nt_vnet_hdr none;

	if (dev->vnet)
		nt_offload_coalesce(tunq, tunq_len, true);
	for (size_t i = 0; i < tunq_len; i++)
		if (tunq[i].len)
			write_tun(dev, tunq[i].data, tunq[i].len, dev->vnet ? &tunq[i].hdr : &none);
	tunq_len = 0;
}

/* The UDP_GRO segment size of a received datagram of len bytes; len itself when the
 * kernel reports none (or one that does not split it). */
static size_t gro_segment(struct msghdr *m, size_t len)
{
	size_t seg = len;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
			int size;
			memcpy(&size, CMSG_DATA(c), sizeof(size));
			if (size > 0 && (size_t)size < len)
				seg = (size_t)size;
		}
	}
	return seg;
}

/* A handshake message of exactly its size: what counts as handshake load. Only
 * well-formed sizes count, or a burst of junk headers would force real peers through a
 * cookie round trip. */
static bool is_handshake(const uint8_t *msg, size_t len)
{
	enum nt_message_type t = nt_message_type(msg, len);

	return (t == NT_MSG_INITIATION && len == NT_INIT_LEN) || (t == NT_MSG_RESPONSE && len == NT_RESP_LEN);
}

void receive_udp(struct device *dev, int fd)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	static union endpoint src[BATCH];
	static union {
		char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctrl[BATCH];
	static size_t seg_size[BATCH];
	size_t handshakes = 0, hs_budget = HANDSHAKE_QUEUE;
	uint64_t now = now_ns();
	bool under_load;
	int n;

	for (unsigned i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = rx_bufs[i], .iov_len = BUF_SIZE };
		msgs[i] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &src[i], .msg_namelen = sizeof(src[i]), .msg_iov = &iov[i], .msg_iovlen = 1,
			.msg_control = ctrl[i].buf, .msg_controllen = sizeof(ctrl[i].buf) } };
	}
	unsigned *vlen = &dev->rx_vlen[fd == dev->udp6];
	size_t bytes = 0;

	if (!*vlen)
		*vlen = BATCH;
	n = recvmmsg(fd, msgs, *vlen, 0, NULL);
	if (n <= 0) {
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			log_error("recvmmsg: %s", strerror(errno));
		return;
	}
	/* Next time ask for as many datagrams as RX_BUDGET holds at this call's mean size:
	 * all 64 of 1,400 bytes, two GRO super-datagrams. */
	for (int i = 0; i < n; i++)
		bytes += msgs[i].msg_len;
	*vlen = bytes ? (unsigned)(RX_BUDGET * (size_t)n / bytes) : BATCH;
	*vlen = *vlen < 1 ? 1 : *vlen > BATCH ? BATCH : *vlen;
	if (!dev->up)
		return; /* the link's state gates the peers: nothing is processed while down */
	/* The load is counted per segment: a GRO super-datagram (the kernel's, or a sender's
	 * GSO handed over unchanged) of 64 initiations is 64 handshakes, not none. */
	for (int i = 0; i < n; i++) {
		size_t len = msgs[i].msg_len;

		seg_size[i] = gro_segment(&msgs[i].msg_hdr, len);
		if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
			continue;
		for (size_t off = 0; off < len; off += seg_size[i])
			handshakes += is_handshake(rx_bufs[i] + off, len - off < seg_size[i] ? len - off : seg_size[i]);
	}
	under_load = nt_cookie_under_load(handshakes, HANDSHAKE_QUEUE, now, &dev->last_under_load);

	for (int i = 0; i < n; i++) {
		size_t len = msgs[i].msg_len, seg = seg_size[i];
		struct endpoint_src local;

		endpoint_normalize(&src[i]);
		if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
			dev->drops[NT_DROP_SIZE]++;
			continue;
		}
		udp_cmsg_src(&msgs[i].msg_hdr, &local);
		/* A GRO super-datagram: same-sized datagrams back to back, the last maybe shorter. */
		for (size_t off = 0; off < len; off += seg) {
			uint8_t *msg = rx_bufs[i] + off;
			size_t mlen = len - off < seg ? len - off : seg;
			enum nt_message_type type = nt_message_type(msg, mlen);

			/* A wakeup handles at most HANDSHAKE_QUEUE handshake messages that ride in a
			 * super-datagram after its first segment: no more than a batch of plain
			 * datagrams could carry, so segmentation buys no extra Diffie-Hellman (or
			 * cookie reply) work, while the first segment of every datagram keeps its
			 * chance, as a plain datagram from a real peer would. The rest costs a compare. */
			if (type == NT_MSG_INITIATION || type == NT_MSG_RESPONSE) {
				if (off && !hs_budget) {
					dev->drops[NT_DROP_FLOOD]++;
					continue;
				}
				if (hs_budget)
					hs_budget--;
			}
			switch (type) {
			case NT_MSG_INITIATION:
				handle_initiation(dev, msg, mlen, &src[i], &local, now, under_load);
				break;
			case NT_MSG_RESPONSE:
				handle_response(dev, msg, mlen, &src[i], &local, now, under_load);
				break;
			case NT_MSG_COOKIE:
				handle_cookie(dev, msg, mlen, now);
				break;
			case NT_MSG_DATA:
				handle_data(dev, msg, mlen, &src[i], &local, now, rx_bufs[i] + BUF_SIZE);
				break;
			default:
				dev->drops[NT_DROP_SIZE]++;
				break;
			}
		}
	}
	flush_tun(dev);
}
