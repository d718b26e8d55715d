/* The send half: TUN read (a batch) -> longest-prefix match on the destination -> seal on
 * the peer's current keypair, in place -> UDP sendmmsg; or stage and start a handshake.
 * Also handshake initiations and keepalives. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/udp.h>

#include "noisetun/mss.h"
#include "noisetun/offload.h"
#include "noisetund.h"

/* Sealed messages waiting for the end of the batch, in order. */
#define OUT_MAX 1024
/* Segments of one TUN TSO super-packet: all of them go into one batch. */
#define TSO_SEGMENTS_MAX OUT_MAX
struct out_batch {
	struct {
		union endpoint to;
		struct peer *peer;  /* for its source address */
		uint8_t *buf;
		size_t len;
	} msg[OUT_MAX];
	unsigned n;
};

/* TUN reads and TSO segments are laid out one after another here, each with room for the
 * transport header before it and padding + tag after it, so sealing happens in place. */
#define ARENA_SIZE (2u << 20)
#define SLOT_OVERHEAD (NT_DATA_HEADER_LEN + NT_DATA_PAD + NT_AEAD_TAG_LEN + 16)
static uint8_t arena[ARENA_SIZE] __attribute__((aligned(64)));

/* Send msgs[0..n) of one family; with GSO, runs of equal-sized datagrams to one endpoint
 * (the last may be shorter) go as one super-datagram with a UDP_SEGMENT message. */
/* Send one super-datagram's segments one by one, without GSO: for when the kernel refuses
 * the whole (EMSGSIZE: a segment exceeds the path MTU and GSO does not fragment). */
static void send_segments(int fd, struct msghdr *h, const struct endpoint_src *src, int family)
{
	union {
		char buf[UDP_CMSG_SPACE];
		struct cmsghdr align;
	} ctrl;

	for (size_t k = 0; k < h->msg_iovlen; k++) {
		struct msghdr one = { .msg_name = h->msg_name, .msg_namelen = h->msg_namelen, .msg_iov = &h->msg_iov[k],
				      .msg_iovlen = 1, .msg_control = ctrl.buf };
		one.msg_controllen = udp_cmsg(ctrl.buf, family, src, 0);
		if (!one.msg_controllen)
			one.msg_control = NULL;
		(void)!sendmsg(fd, &one, 0);
	}
}

/* Send msgs[0..n) of one family; with GSO, runs of datagrams to one endpoint from one
 * source, all of the first one's size but the last (which may be shorter), go as one
 * super-datagram with a UDP_SEGMENT message. */
static void send_family(struct device *dev, struct out_batch *b, int family)
{
	static struct mmsghdr mm[OUT_MAX];
	static struct iovec iov[OUT_MAX];
	static struct peer *owner[OUT_MAX];
	static union {
		char buf[UDP_CMSG_SPACE];
		struct cmsghdr align;
	} ctrl[OUT_MAX];
	int fd = family == AF_INET ? dev->udp4 : dev->udp6;
	unsigned n = 0, v = 0, sent = 0;

	if (fd < 0)
		return;
	for (unsigned i = 0; i < b->n; i++) {
		struct msghdr *h;
		unsigned segs = 1;
		size_t total, first;

		if (b->msg[i].to.sa.sa_family != family)
			continue;
		h = &mm[n].msg_hdr;
		owner[n] = b->msg[i].peer;
		*h = (struct msghdr){ .msg_name = &b->msg[i].to, .msg_namelen = endpoint_len(&b->msg[i].to),
				      .msg_iov = &iov[v], .msg_iovlen = 1 };
		iov[v++] = (struct iovec){ .iov_base = b->msg[i].buf, .iov_len = b->msg[i].len };
		total = first = b->msg[i].len;
		while (dev->udp_gso && i + 1 < b->n && segs < MAX_SEGMENTS && b->msg[i + 1].peer == b->msg[i].peer &&
		       endpoint_equal(&b->msg[i + 1].to, &b->msg[i].to) && b->msg[i].len == first &&
		       b->msg[i + 1].len <= first && total + b->msg[i + 1].len <= 65000) {
			iov[v++] = (struct iovec){ .iov_base = b->msg[i + 1].buf, .iov_len = b->msg[i + 1].len };
			total += b->msg[++i].len;
			segs++;
		}
		h->msg_iovlen = segs;
		h->msg_control = ctrl[n].buf;
		h->msg_controllen = udp_cmsg(ctrl[n].buf, family, &owner[n]->src, segs > 1 ? (uint16_t)first : 0);
		if (!h->msg_controllen)
			h->msg_control = NULL;
		n++;
	}
	while (sent < n) {
		int r = sendmmsg(fd, mm + sent, n - sent, 0);
		if (r >= 0) {
			sent += (unsigned)r;
			continue;
		}
		struct msghdr *h = &mm[sent].msg_hdr;
		if (errno == EIO && dev->udp_gso) {
			/* GSO not possible on this path (e.g. no checksum offload): off for good */
			log_verbose("UDP GSO failed, turning it off");
			dev->udp_gso = false;
			send_family(dev, b, family); /* a repeat of any already sent is a replay: dropped */
			return;
		}
		if (errno == EMSGSIZE && h->msg_iovlen > 1) {
			send_segments(fd, h, &owner[sent]->src, family);
		} else if ((errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENETUNREACH) && owner[sent]->src.set) {
			/* our source address went away: forget it, let routing choose */
			owner[sent]->src.set = false;
			h->msg_controllen = udp_cmsg(h->msg_control, family, NULL,
						     h->msg_iovlen > 1 ? (uint16_t)h->msg_iov[0].iov_len : 0);
			if (!h->msg_controllen)
				h->msg_control = NULL;
			continue; /* retry this one */
		} else if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR) {
			/* an unreachable network costs these packets, as a lossy link would */
			log_verbose("sendmmsg: %s", strerror(errno));
		}
		sent++;
	}
}

static void flush(struct device *dev, struct out_batch *b)
{
	send_family(dev, b, AF_INET);
	send_family(dev, b, AF_INET6);
	b->n = 0;
}

static void batch_add(struct out_batch *b, struct peer *peer, uint8_t *buf, size_t len)
{
	b->msg[b->n].to = peer->endpoint;
	b->msg[b->n].peer = peer;
	b->msg[b->n].buf = buf;
	b->msg[b->n].len = len;
	b->n++;
}

/* The peer's current keypair if it may still send at now, else NULL. */
static struct nt_keypair *sending_keypair(struct peer *peer, uint64_t now)
{
	struct nt_keypair *kp = peer->kps ? nt_keypairs_current(peer->kps) : NULL;

	return kp && nt_keypair_usable(kp, now, kp->send_counter) ? kp : NULL;
}

/* Bookkeeping after a data or keepalive message went to the peer. */
static void after_data_sent(struct peer *peer, struct nt_keypair *kp, size_t wire_len, size_t payload, uint64_t now)
{
	peer->tx_bytes += wire_len;
	if (payload)
		nt_timers_data_sent(&peer->timers, now, random_jitter());
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, now);
	peer_timers_changed(peer);
	if (nt_timers_rekey_on_send(now, kp->birth, kp->send_counter, kp->initiator))
		send_initiation(peer, false);
}

static void stage(struct peer *peer, const uint8_t *pkt, size_t len)
{
	struct staged *s;

	if (!peer->staged && !(peer->staged = calloc(NT_MAX_STAGED_PACKETS, sizeof(*peer->staged)))) {
		peer->dev->drops_staged++;
		return;
	}
	s = malloc(sizeof(*s) + len);
	if (!s) {
		peer->dev->drops_staged++;
		return;
	}
	s->len = (uint16_t)len;
	memcpy(s->data, pkt, len);
	if (peer->staged_count == NT_MAX_STAGED_PACKETS) {
		/* the oldest goes first */
		free(peer->staged[peer->staged_head]);
		peer->staged_head = (peer->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		peer->staged_count--;
		peer->dev->drops_staged++;
	}
	peer->staged[(peer->staged_head + peer->staged_count++) % NT_MAX_STAGED_PACKETS] = s;
}

void peer_drop_staged(struct peer *peer)
{
	while (peer->staged_count) {
		free(peer->staged[peer->staged_head]);
		peer->staged[peer->staged_head] = NULL;
		peer->staged_head = (peer->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		peer->staged_count--;
	}
	peer->staged_head = 0;
	free(peer->staged);
	peer->staged = NULL;
}

/* Seal and send what waited for a session, now that one exists. */
void send_staged(struct peer *peer)
{
	static uint8_t buf[BUF_SIZE];
	uint64_t now = now_ns();

	while (peer->staged_count) {
		struct nt_keypair *kp = sending_keypair(peer, now);
		struct staged *s = peer->staged[peer->staged_head];
		size_t len;

		if (!kp || peer->endpoint.sa.sa_family == AF_UNSPEC)
			return;
		peer->staged[peer->staged_head] = NULL;
		peer->staged_head = (peer->staged_head + 1) % NT_MAX_STAGED_PACKETS;
		peer->staged_count--;
		if (nt_keypair_seal(kp, buf, &len, s->data, s->len, peer->dev->mtu, now) == NT_OK &&
		    udp_send(peer->dev, &peer->endpoint, &peer->src, buf, len) == 0)
			after_data_sent(peer, kp, len, s->len, now);
		free(s);
	}
	peer_drop_staged(peer); /* empty now: give the ring back */
}

static size_t route(struct device *dev, const uint8_t *pkt, size_t len, struct peer **out)
{
	struct nt_allowedips_owner *owner = NULL;
	size_t iplen = nt_ip_packet_len(pkt, len);

	if (!iplen)
		return 0;
	if ((pkt[0] >> 4) == 4)
		owner = nt_allowedips_lookup(dev->aips, AF_INET, pkt + 16);
	else
		owner = nt_allowedips_lookup(dev->aips, AF_INET6, pkt + 24);
	*out = owner ? (struct peer *)((char *)owner - offsetof(struct peer, aips)) : NULL;
	return iplen;
}

/* One IP packet at pkt, with NT_DATA_HEADER_LEN bytes of room before it and the tail room
 * of an arena slot after it: route it, then seal it in place or stage it. */
static void send_packet(struct device *dev, struct out_batch *out, uint8_t *pkt, size_t len, uint64_t now)
{
	uint8_t *buf = pkt - NT_DATA_HEADER_LEN;
	struct nt_keypair *kp;
	struct peer *peer;
	size_t iplen, wire_len;

	iplen = route(dev, pkt, len, &peer);
	if (!iplen || !peer) {
		dev->drops_no_peer++;
		return;
	}
	if (!dev->no_mss_clamp)
		nt_mss_clamp(pkt, iplen, dev->mtu); /* our hosts' SYNs: MSS to fit the tunnel */
	if (peer->endpoint.sa.sa_family == AF_UNSPEC) {
		dev->drops_no_endpoint++;
		return;
	}
	kp = sending_keypair(peer, now);
	if (!kp) {
		stage(peer, pkt, iplen);
		send_initiation(peer, false);
		return;
	}
	if (nt_keypair_seal(kp, buf, &wire_len, pkt, iplen, dev->mtu, now) != NT_OK)
		return;
	if (out->n == OUT_MAX)
		flush(dev, out); /* the batch's bound: sealed buffers stay in the arena meanwhile */
	batch_add(out, peer, buf, wire_len);
	after_data_sent(peer, kp, wire_len, iplen, now);
}

static size_t slot_size(size_t len)
{
	return (len + SLOT_OVERHEAD + 63) & ~(size_t)63;
}

void send_tun_batch(struct device *dev)
{
	static struct out_batch out;
	uint64_t now = now_ns();
	size_t used = 0;
	size_t hdr = dev->vnet ? NT_VNET_HDR_LEN : 0;

	size_t taken = 0;

	for (unsigned reads = 0; reads < BATCH && taken < TX_BUDGET; reads++) {
		/* room for one more read and all its segments, else flush first */
		if (ARENA_SIZE - used < slot_size(MAX_PACKET) + MAX_SEGMENTS * slot_size(dev->mtu + 120) ||
		    out.n + MAX_SEGMENTS > OUT_MAX) {
			flush(dev, &out);
			used = 0;
		}
		uint8_t *pkt = arena + used + NT_DATA_HEADER_LEN;
		ssize_t n = read(dev->tun, pkt - hdr, MAX_PACKET + hdr);
		struct nt_vnet_hdr vh = { 0 };
		size_t len;

		if (n < 0) {
			if (errno == EBADFD || errno == EIO) {
				log_notice("interface deleted (its TUN device is gone), exiting");
				dev->stopping = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				log_error("TUN read: %s", strerror(errno));
			}
			break;
		}
		if ((size_t)n < hdr)
			continue;
		len = (size_t)n - hdr;
		taken += len;
		if (hdr)
			nt_vnet_hdr_load(&vh, pkt - hdr);
		used += slot_size(len);

		if ((vh.gso_type & ~NT_VNET_GSO_ECN) == NT_VNET_GSO_TCPV4 || (vh.gso_type & ~NT_VNET_GSO_ECN) == NT_VNET_GSO_TCPV6) {
			/* The segment count is the sender's MSS's doing, not MAX_SEGMENTS: 64 KiB at
			 * an MSS of 536 is 123 segments (the kernel's TCP goes down to 88 bytes, 745).
			 * `most` bounds it from the length alone; arena and batch are checked for it. */
			static uint8_t *segs[TSO_SEGMENTS_MAX];
			static size_t seg_len[TSO_SEGMENTS_MAX];
			size_t seg_slot = slot_size((size_t)vh.gso_size + 120), most = vh.gso_size ? len / vh.gso_size + 1 : 0;
			int count;

			if (!most || most > TSO_SEGMENTS_MAX) {
				dev->drops[NT_DROP_MALFORMED]++;
				continue;
			}
			if (ARENA_SIZE - used < most * seg_slot || out.n + most > OUT_MAX) {
				/* send what is sealed; the super-packet itself stays where it is */
				flush(dev, &out);
				if (ARENA_SIZE - used < most * seg_slot) {
					dev->drops[NT_DROP_SIZE]++;
					continue;
				}
			}
			for (size_t i = 0; i < most; i++)
				segs[i] = arena + used + i * seg_slot + NT_DATA_HEADER_LEN;
			count = nt_offload_split(pkt, len, &vh, segs, seg_len, most);
			if (count < 0) {
				dev->drops[NT_DROP_MALFORMED]++;
				continue;
			}
			used += (size_t)count * seg_slot;
			for (int i = 0; i < count; i++)
				send_packet(dev, &out, segs[i], seg_len[i], now);
			continue;
		}
		if ((vh.flags & NT_VNET_F_NEEDS_CSUM) && nt_offload_finish_csum(pkt, len, &vh)) {
			dev->drops[NT_DROP_MALFORMED]++;
			continue;
		}
		send_packet(dev, &out, pkt, len, now);
	}
	flush(dev, &out);
}

int send_initiation(struct peer *peer, bool is_retry)
{
	struct device *dev = peer->dev;
	uint8_t msg[NT_INIT_LEN];
	uint64_t now = now_ns();
	uint32_t old_index = peer->hs.local_index, index;
	bool had = peer->hs.state != NT_HS_ZEROED;
	enum nt_status st;
	int err;

	if (!dev->up || peer->endpoint.sa.sa_family == AF_UNSPEC)
		return -ENETDOWN;
	if (!nt_timers_may_send_initiation(&peer->timers, now, is_retry))
		return -EAGAIN;
	index = index_assign(dev, peer);
	if (!index)
		return -ENOMEM;
	st = nt_noise_create_initiation(msg, &peer->hs, dev->static_identity, index, wall_ns(), &sys_rng);
	if (had)
		index_release(dev, peer, old_index);
	if (st != NT_OK) {
		index_release(dev, peer, index);
		peer_verbose(peer, "cannot create a handshake initiation: %s", nt_status_name(st));
		return -EINVAL;
	}
	if (nt_cookie_add_macs(&peer->cookie, msg, sizeof(msg), now))
		return -EINVAL;
	peer_verbose(peer, "sending handshake initiation%s", is_retry ? " (retry)" : "");
	err = udp_send(dev, &peer->endpoint, &peer->src, msg, sizeof(msg));
	if (err)
		peer_verbose(peer, "send initiation: %s", strerror(-err));
	else
		peer->tx_bytes += sizeof(msg);
	nt_timers_any_authenticated_packet_sent(&peer->timers);
	nt_timers_any_authenticated_packet_traversal(&peer->timers, now);
	nt_timers_handshake_initiated(&peer->timers, now, random_jitter());
	peer_timers_changed(peer);
	return err;
}

void send_keepalive(struct peer *peer)
{
	uint8_t buf[NT_DATA_MIN_LEN];
	uint64_t now = now_ns();
	struct nt_keypair *kp = sending_keypair(peer, now);
	size_t len;

	if (peer->endpoint.sa.sa_family == AF_UNSPEC)
		return;
	if (!kp) {
		send_initiation(peer, false);
		return;
	}
	if (nt_keypair_seal(kp, buf, &len, NULL, 0, peer->dev->mtu, now) != NT_OK)
		return;
	if (udp_send(peer->dev, &peer->endpoint, &peer->src, buf, len) == 0)
		after_data_sent(peer, kp, len, 0, now);
}
