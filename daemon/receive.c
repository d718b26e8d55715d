/* The receive half: UDP recvmmsg (a batch) -> the engine (lib/engine.c decides what each
 * datagram is and does) -> its sends and the TUN queue, written together at the end of the
 * batch (coalesced with offloads), or earlier when the queue is full.
 *
 * With data threads (datapool.c), the TUN writes of a batch are a stage of their own: a
 * helper clamps, coalesces and writes them while the loop reads and opens the next batch
 * into another set of buffers. A set is only read into again once its writes are done. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <netinet/udp.h>

#include "noisetun/mss.h"
#include "noisetun/offload.h"
#include "noisetund.h"

static uint8_t rx_bufs[RX_SETS][BATCH][BUF_SIZE];
static unsigned rx_set;        /* the set of the batch being handled */
/* Where receive_udp is: TUN packets only come from a batch, and only its final flush
 * finds the engine done with the set's buffers. */
static enum { RX_IDLE, RX_OPENING, RX_FLUSHING } rx_stage;

static void write_tun(const struct tun_params *t, uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h)
{
	ssize_t n;

	if (t->vnet) {
		/* every packet has room before it: it sat behind a 16-byte transport header */
		pkt -= NT_VNET_HDR_LEN;
		nt_vnet_hdr_store(pkt, h);
		len += NT_VNET_HDR_LEN;
	}
	n = write(t->fd, pkt, len);
	if (n < 0 && errno != EAGAIN && errno != EIO)
		log_verbose("TUN write: %s", strerror(errno));
}

void tun_write_batch(const struct tun_params *t, struct nt_gro_packet *q, size_t n)
{
	static const struct nt_vnet_hdr none;

	if (t->mss_clamp) /* the peer's SYNs to hosts behind us */
		for (size_t i = 0; i < n; i++)
			nt_mss_clamp(q[i].data, q[i].len, t->mtu);
	if (t->vnet)
		nt_offload_coalesce_flags(q, n, NT_GRO_ADJACENT | (t->uso ? NT_GRO_UDP : 0));
	for (size_t i = 0; i < n; i++)
		if (q[i].len)
			write_tun(t, q[i].data, q[i].len, t->vnet ? &q[i].hdr : &none);
}

void receive_write_tun(struct device *dev, struct nt_gro_packet *q, size_t n)
{
	struct tun_params t = { .fd = dev->tun, .mtu = dev->mtu, .vnet = dev->vnet, .uso = dev->tun_uso,
				.mss_clamp = !dev->no_mss_clamp };

	if (!n)
		return;
	/* Only a batch's packets go to the writer: they lie in its set. A flush before the
	 * batch's end waits for its writes, since the engine goes on reading that set (and
	 * coalescing moves bytes within it). */
	if (rx_stage != RX_IDLE && datapool_write_tun(&t, q, n, rx_set)) {
		if (rx_stage == RX_OPENING)
			datapool_wait_written(rx_set);
		return;
	}
	tun_write_batch(&t, q, n);
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

void receive_udp(struct device *dev, int fd)
{
	static struct mmsghdr msgs[BATCH];
	static struct iovec iov[BATCH];
	static struct nt_datagram dg[BATCH];
	static union {
		char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo))];
		struct cmsghdr align;
	} ctrl[BATCH];
	struct nt_engine_out *out;
	unsigned set = datapool_helpers() ? (rx_set + 1) % RX_SETS : 0;
	int n;

	datapool_wait_written(set); /* its last batch's TUN writes */
	for (unsigned i = 0; i < BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = rx_bufs[set][i], .iov_len = BUF_SIZE };
		msgs[i] = (struct mmsghdr){ .msg_hdr = {
			.msg_name = &dg[i].from, .msg_namelen = sizeof(dg[i].from), .msg_iov = &iov[i], .msg_iovlen = 1,
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
	for (int i = 0; i < n; i++) {
		struct nt_datagram *d = &dg[i];

		d->data = rx_bufs[set][i];
		d->len = msgs[i].msg_len;
		d->cap = BUF_SIZE;
		d->segment = gro_segment(&msgs[i].msg_hdr, d->len);
		d->truncated = msgs[i].msg_hdr.msg_flags & MSG_TRUNC;
		nt_endpoint_normalize(&d->from);
		if (d->truncated)
			memset(&d->local, 0, sizeof(d->local));
		else
			udp_cmsg_src(&msgs[i].msg_hdr, &d->local);
	}
	out = device_out(dev);
	rx_set = set;
	rx_stage = RX_OPENING;
	nt_engine_receive(&dev->eng, dg, (size_t)n, device_now(), out);
	rx_stage = RX_FLUSHING;
	nt_engine_flush(out);
	rx_stage = RX_IDLE;
}
