/* The send half: TUN read (a batch) -> TSO split and checksums -> the engine (route by
 * destination, seal in place on the peer's current keypair, or stage and start a
 * handshake: lib/engine.c) -> UDP sendmmsg with GSO. Also what the engine sends from the
 * receive half and the timers (handshake messages, keepalives, staged data). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <netinet/udp.h>

#include "noisetun/mss.h"
#include "noisetun/offload.h"
#include "noisetund.h"

/* Sealed messages per batch: device.c's send queue holds as many. */
#define OUT_MAX 1024
/* Segments of one TUN TSO super-packet: all of them go into one batch. */
#define TSO_SEGMENTS_MAX OUT_MAX

/* A message the engine made (handshake, keepalive, staged data) rather than one a TUN
 * read sealed in place: sent on its own, at once, and counted once sent. Cookie replies
 * (no peer, nothing to count) go with the batch: under a flood a wakeup makes up to
 * NT_ENGINE_COOKIE_BUDGET of them, and one sendmmsg costs far less than as many sendmsg. */
static bool is_control(const struct nt_send *s)
{
	return s->count_tx;
}

/* TUN reads and TSO segments are laid out one after another here, each with room for the
 * transport header before it and padding + tag after it, so sealing happens in place. */
#define ARENA_SIZE (2u << 20)
#define SLOT_OVERHEAD (NT_DATA_HEADER_LEN + NT_DATA_PAD + NT_AEAD_TAG_LEN + 16)
static uint8_t arena[ARENA_SIZE] __attribute__((aligned(64)));

/* Send one super-datagram's segments one by one, without GSO: for when the kernel refuses
 * the whole (EMSGSIZE: a segment exceeds the path MTU and GSO does not fragment). */
static void send_segments(int fd, struct msghdr *h, const struct nt_endpoint_src *src, int family)
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
static void send_family(struct device *dev, struct nt_send *b, size_t count, int family)
{
	static struct mmsghdr mm[OUT_MAX];
	static struct iovec iov[OUT_MAX];
	static struct nt_endpoint_src *owner[OUT_MAX];
	static union {
		char buf[UDP_CMSG_SPACE];
		struct cmsghdr align;
	} ctrl[OUT_MAX];
	int fd = family == AF_INET ? dev->udp4 : dev->udp6;
	unsigned n = 0, v = 0, sent = 0;

	if (fd < 0)
		return;
	for (size_t i = 0; i < count; i++) {
		struct msghdr *h;
		unsigned segs = 1;
		size_t total, first;

		if (b[i].to.sa.sa_family != family || is_control(&b[i]))
			continue;
		h = &mm[n].msg_hdr;
		owner[n] = b[i].src;
		*h = (struct msghdr){ .msg_name = &b[i].to, .msg_namelen = endpoint_len(&b[i].to),
				      .msg_iov = &iov[v], .msg_iovlen = 1 };
		iov[v++] = (struct iovec){ .iov_base = b[i].data, .iov_len = b[i].len };
		total = first = b[i].len;
		while (dev->udp_gso && i + 1 < count && segs < MAX_SEGMENTS && !is_control(&b[i + 1]) &&
		       b[i].peer && b[i + 1].peer == b[i].peer && endpoint_equal(&b[i + 1].to, &b[i].to) && b[i].len == first &&
		       b[i + 1].len <= first && total + b[i + 1].len <= 65000) {
			iov[v++] = (struct iovec){ .iov_base = b[i + 1].data, .iov_len = b[i + 1].len };
			total += b[++i].len;
			segs++;
		}
		h->msg_iovlen = segs;
		h->msg_control = ctrl[n].buf;
		h->msg_controllen = udp_cmsg(ctrl[n].buf, family, owner[n], segs > 1 ? (uint16_t)first : 0);
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
			send_family(dev, b, count, family); /* a repeat of any already sent is a replay: dropped */
			return;
		}
		if (errno == EMSGSIZE && h->msg_iovlen > 1) {
			send_segments(fd, h, owner[sent], family);
		} else if ((errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENETUNREACH) && owner[sent]->set) {
			/* our source address went away: forget it, let routing choose */
			owner[sent]->set = false;
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

void send_out(struct device *dev, struct nt_send *sends, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct nt_send *s = &sends[i];
		int err;

		if (!is_control(s))
			continue;
		err = udp_send(dev, &s->to, s->src, s->data, s->len);
		if (!err && s->count_tx) {
			s->peer->tx_bytes += s->len;
			s->peer->tx_packets++;
		}
		else if (err && s->peer && s->len == NT_INIT_LEN && s->data[0] == NT_MSG_INITIATION)
			peer_verbose(PEER(s->peer), "send initiation: %s", strerror(-err));
	}
	send_family(dev, sends, n, AF_INET);
	send_family(dev, sends, n, AF_INET6);
}

static size_t slot_size(size_t len)
{
	return (len + SLOT_OVERHEAD + 63) & ~(size_t)63;
}

void send_tun_batch(struct device *dev)
{
	struct nt_engine_out *out = device_out(dev);
	struct nt_now now = device_now();
	size_t used = 0;
	size_t hdr = dev->vnet ? NT_VNET_HDR_LEN : 0;

	size_t taken = 0;

	for (unsigned reads = 0; reads < BATCH && taken < TX_BUDGET; reads++) {
		/* room for one more read and all its segments, else flush first */
		if (ARENA_SIZE - used < slot_size(MAX_PACKET) + MAX_SEGMENTS * slot_size(dev->mtu + 120) ||
		    out->sends_len + MAX_SEGMENTS > out->sends_cap) {
			nt_engine_flush(out);
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

		uint8_t gso = vh.gso_type & (uint8_t)~NT_VNET_GSO_ECN; /* UDP with ECN: the split refuses it */

		if (gso == NT_VNET_GSO_TCPV4 || gso == NT_VNET_GSO_TCPV6 || gso == NT_VNET_GSO_UDP_L4) {
			/* TSO, or USO (a UDP_SEGMENT sender's super-datagram, cut into its datagrams).
			 * The segment count is the sender's MSS's doing, not MAX_SEGMENTS: 64 KiB at
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
			if (ARENA_SIZE - used < most * seg_slot || out->sends_len + most > out->sends_cap) {
				/* send what is sealed; the super-packet itself stays where it is */
				nt_engine_flush(out);
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
				nt_engine_tun_packet(&dev->eng, segs[i], seg_len[i], now, out);
			continue;
		}
		if ((vh.flags & NT_VNET_F_NEEDS_CSUM) && nt_offload_finish_csum(pkt, len, &vh)) {
			dev->drops[NT_DROP_MALFORMED]++;
			continue;
		}
		if (!dev->no_mss_clamp) /* our hosts' SYNs (never TSO): MSS to fit the tunnel */
			nt_mss_clamp(pkt, len, dev->mtu);
		nt_engine_tun_packet(&dev->eng, pkt, len, now, out);
	}
	nt_engine_flush(out);
}

