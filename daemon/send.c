/* The send half: TUN read (a batch) -> longest-prefix match on the destination -> seal on
 * the peer's current keypair, in place -> UDP sendmmsg; or stage and start a handshake.
 * Also handshake initiations and keepalives. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noisetund.h"

struct out_batch {
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	union endpoint to[BATCH];
	unsigned n;
};

static uint8_t tx_bufs[BATCH][BUF_SIZE];

static void flush_family(struct device *dev, struct out_batch *b, int family)
{
	struct mmsghdr msgs[BATCH];
	int fd = family == AF_INET ? dev->udp4 : dev->udp6;
	unsigned n = 0, sent = 0;

	for (unsigned i = 0; i < b->n; i++)
		if (b->to[i].sa.sa_family == family)
			msgs[n++] = b->msgs[i];
	if (!n || fd < 0)
		return;
	while (sent < n) {
		int r = sendmmsg(fd, msgs + sent, n - sent, 0);
		if (r < 0) {
			/* A full socket buffer or an unreachable network costs these packets, like
			 * a lossy link would; skip the one that failed and go on. */
			if (errno != EAGAIN && errno != ENOBUFS)
				log_verbose("sendmmsg: %s", strerror(errno));
			sent++;
			continue;
		}
		sent += (unsigned)r;
	}
}

static void flush(struct device *dev, struct out_batch *b)
{
	flush_family(dev, b, AF_INET);
	flush_family(dev, b, AF_INET6);
	b->n = 0;
}

static void batch_add(struct out_batch *b, const union endpoint *to, void *buf, size_t len)
{
	unsigned i = b->n++;

	b->to[i] = *to;
	b->iov[i] = (struct iovec){ .iov_base = buf, .iov_len = len };
	b->msgs[i] = (struct mmsghdr){ .msg_hdr = {
		.msg_name = &b->to[i], .msg_namelen = endpoint_len(to), .msg_iov = &b->iov[i], .msg_iovlen = 1 } };
}

/* The peer's current keypair if it may still send at now, else NULL. */
static struct nt_keypair *sending_keypair(struct peer *peer, uint64_t now)
{
	struct nt_keypair *kp = nt_keypairs_current(&peer->kps);

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
	struct staged *s = malloc(sizeof(*s) + len);

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
		    udp_send(peer->dev, &peer->endpoint, buf, len) == 0)
			after_data_sent(peer, kp, len, s->len, now);
		free(s);
	}
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

void send_tun_batch(struct device *dev)
{
	static struct out_batch out;
	uint64_t now = now_ns();

	for (unsigned i = 0; i < BATCH; i++) {
		uint8_t *buf = tx_bufs[i], *pkt = buf + NT_DATA_HEADER_LEN;
		struct nt_keypair *kp;
		struct peer *peer;
		size_t iplen, wire_len;
		ssize_t n = read(dev->tun, pkt, MAX_PACKET);

		if (n < 0) {
			if (errno == EBADFD || errno == EIO) {
				log_verbose("TUN device is gone, exiting");
				dev->stopping = true;
			} else if (errno != EAGAIN && errno != EINTR) {
				log_error("TUN read: %s", strerror(errno));
			}
			break;
		}
		iplen = route(dev, pkt, (size_t)n, &peer);
		if (!iplen || !peer) {
			dev->drops_no_peer++;
			continue;
		}
		if (peer->endpoint.sa.sa_family == AF_UNSPEC) {
			dev->drops_no_endpoint++;
			continue;
		}
		kp = sending_keypair(peer, now);
		if (!kp) {
			stage(peer, pkt, iplen);
			send_initiation(peer, false);
			continue;
		}
		if (nt_keypair_seal(kp, buf, &wire_len, pkt, iplen, dev->mtu, now) != NT_OK)
			continue;
		batch_add(&out, &peer->endpoint, buf, wire_len);
		after_data_sent(peer, kp, wire_len, iplen, now);
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
	err = udp_send(dev, &peer->endpoint, msg, sizeof(msg));
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
	if (udp_send(peer->dev, &peer->endpoint, buf, len) == 0)
		after_data_sent(peer, kp, len, 0, now);
}
