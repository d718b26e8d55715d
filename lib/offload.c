/* TSO/USO splitting and TCP/UDP coalescing for the TUN offloads (speed.md steps 3 and 6).
 * Lengths and offsets come from the packet's own headers, never from hdr_len. */
#include "noisetun/offload.h"

#include <endian.h>
#include <string.h>

#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define UDP_HLEN 8
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define MAX_IP_LEN 65535

static uint16_t load16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t load32(const uint8_t *p) { return (uint32_t)load16(p) << 16 | load16(p + 2); }
static void store16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void store32(uint8_t *p, uint32_t v) { store16(p, (uint16_t)(v >> 16)); store16(p + 2, (uint16_t)v); }

void nt_vnet_hdr_load(struct nt_vnet_hdr *h, const uint8_t p[static NT_VNET_HDR_LEN])
{
	h->flags = p[0];
	h->gso_type = p[1];
	h->hdr_len = (uint16_t)(p[2] | p[3] << 8);
	h->gso_size = (uint16_t)(p[4] | p[5] << 8);
	h->csum_start = (uint16_t)(p[6] | p[7] << 8);
	h->csum_offset = (uint16_t)(p[8] | p[9] << 8);
}

void nt_vnet_hdr_store(uint8_t p[static NT_VNET_HDR_LEN], const struct nt_vnet_hdr *h)
{
	const uint16_t v[4] = { h->hdr_len, h->gso_size, h->csum_start, h->csum_offset };

	p[0] = h->flags;
	p[1] = h->gso_type;
	for (int i = 0; i < 4; i++) {
		p[2 + 2 * i] = (uint8_t)v[i];
		p[3 + 2 * i] = (uint8_t)(v[i] >> 8);
	}
}

/* The ones'-complement sum is independent of byte order (RFC 1071): add native 64-bit
 * words with carry, fold to 16 bits, and swap once at the end into the big-endian-word
 * space the callers add pseudo-header fields in. Only the last chunk may be odd. */
uint64_t nt_csum_add(uint64_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	unsigned __int128 acc = 0;
	uint64_t folded, v;

	while (len >= 32) {
		uint64_t w[4];
		memcpy(w, p, 32);
		acc += (unsigned __int128)w[0] + w[1] + w[2] + w[3];
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		memcpy(&v, p, 8);
		acc += v;
		p += 8;
		len -= 8;
	}
	v = 0;
	memcpy(&v, p, len); /* the tail, zero-padded: an odd byte is the high byte of a BE word */
	acc += v;
	folded = (uint64_t)acc + (uint64_t)(acc >> 64);
	if (folded < (uint64_t)acc)
		folded++;
	folded = nt_csum_fold(folded);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	folded = (uint16_t)((folded >> 8) | (folded << 8));
#endif
	return sum + folded;
}

uint16_t nt_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint64_t nt_csum_pseudo(const uint8_t *pkt, uint8_t proto, uint32_t l4_len)
{
	if ((pkt[0] >> 4) == 4)
		return nt_csum_add(0, pkt + 12, 8) + proto + l4_len;
	return nt_csum_add(0, pkt + 8, 32) + proto + (l4_len >> 16) + (l4_len & 0xffff);
}

int nt_offload_finish_csum(uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h)
{
	size_t start = h->csum_start, field = (size_t)h->csum_start + h->csum_offset;

	if (start >= len || field + 2 > len)
		return -1;
	store16(pkt + field, (uint16_t)~nt_csum_fold(nt_csum_add(0, pkt + start, len - start)));
	return 0;
}

/* The IP and TCP header lengths of a TCP packet without IPv4 options' surprises or IPv6
 * extension headers; false when it is not such a packet within len. */
static bool tcp_headers(const uint8_t *pkt, size_t len, size_t *l3, size_t *l4)
{
	if (len < 1)
		return false;
	if ((pkt[0] >> 4) == 4) {
		*l3 = (size_t)(pkt[0] & 0x0f) * 4;
		if (*l3 < 20 || len < *l3 + 20 || pkt[9] != IPPROTO_TCP_)
			return false;
	} else if ((pkt[0] >> 4) == 6) {
		*l3 = 40;
		if (len < 60 || pkt[6] != IPPROTO_TCP_)
			return false;
	} else {
		return false;
	}
	*l4 = (size_t)(pkt[*l3 + 12] >> 4) * 4;
	return *l4 >= 20 && *l3 + *l4 <= len;
}

static void set_ip_len(uint8_t *pkt, size_t l3, size_t total)
{
	if ((pkt[0] >> 4) == 4) {
		store16(pkt + 2, (uint16_t)total);
		store16(pkt + 10, 0);
		store16(pkt + 10, (uint16_t)~nt_csum_fold(nt_csum_add(0, pkt, l3)));
	} else {
		store16(pkt + 4, (uint16_t)(total - 40));
	}
}

static uint16_t tcp_csum(const uint8_t *pkt, size_t l3, size_t tcp_len)
{
	return (uint16_t)~nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_TCP_, (uint32_t)tcp_len) +
				       nt_csum_add(0, pkt + l3, tcp_len));
}

/* The IP header length of a whole UDP datagram: IPv4 (options allowed) without fragment
 * bits or IPv6 with UDP as the next header, its IP length equal to len, and room for the
 * UDP header; false otherwise. */
static bool udp_headers(const uint8_t *pkt, size_t len, size_t *l3)
{
	if (len < 1)
		return false;
	if ((pkt[0] >> 4) == 4) {
		*l3 = (size_t)(pkt[0] & 0x0f) * 4;
		return *l3 >= 20 && len >= *l3 + UDP_HLEN && pkt[9] == IPPROTO_UDP_ && load16(pkt + 2) == len &&
		       !(load16(pkt + 6) & 0x3fff);
	}
	*l3 = 40;
	return (pkt[0] >> 4) == 6 && len >= 40 + UDP_HLEN && pkt[6] == IPPROTO_UDP_ && (size_t)load16(pkt + 4) + 40 == len;
}

/* A checksum of 0 goes out as 0xffff: 0 means "none" in IPv4 and is invalid in IPv6. */
static uint16_t udp_csum(const uint8_t *pkt, size_t l3, size_t udp_len)
{
	uint16_t c = (uint16_t)~nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_UDP_, (uint32_t)udp_len) +
					     nt_csum_add(0, pkt + l3, udp_len));

	return c ? c : 0xffff;
}

/* One segment of a super-packet: the headers (hdr bytes, the IP header l3 of them), n
 * payload bytes from off, the IP length and (IPv4) id set; the transport header is the
 * caller's to finish. */
static void segment_copy(uint8_t *s, const uint8_t *pkt, size_t l3, size_t hdr, size_t off, size_t n, uint16_t id)
{
	memcpy(s, pkt, hdr);
	memcpy(s + hdr, pkt + hdr + off, n);
	if ((pkt[0] >> 4) == 4)
		store16(s + 4, id);
	set_ip_len(s, l3, hdr + n);
}

static int split_udp(const uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h, uint8_t *const out[],
		     size_t seg_len[], size_t max)
{
	size_t l3, hdr, payload, mss = h->gso_size, count;
	uint16_t id;

	if (!udp_headers(pkt, len, &l3) || !mss || load16(pkt + l3 + 4) != len - l3)
		return -1;
	hdr = l3 + UDP_HLEN;
	payload = len - hdr;
	count = payload ? (payload + mss - 1) / mss : 1;
	if (count > max)
		return -1;
	id = load16(pkt + 4);
	for (size_t i = 0, off = 0; i < count; i++, off += mss) {
		size_t n = payload - off < mss ? payload - off : mss;
		uint8_t *s = out[i];

		segment_copy(s, pkt, l3, hdr, off, n, (uint16_t)(id + i));
		store16(s + l3 + 4, (uint16_t)(UDP_HLEN + n));
		store16(s + l3 + 6, 0);
		store16(s + l3 + 6, udp_csum(s, l3, UDP_HLEN + n));
		seg_len[i] = hdr + n;
	}
	return (int)count;
}

int nt_offload_split(const uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h, uint8_t *const out[],
		     size_t seg_len[], size_t max)
{
	size_t l3, l4, hdr, payload, mss = h->gso_size, count;
	uint32_t seq;
	uint16_t id;

	if ((h->gso_type & ~NT_VNET_GSO_ECN) == NT_VNET_GSO_UDP_L4)
		return h->gso_type == NT_VNET_GSO_UDP_L4 ? split_udp(pkt, len, h, out, seg_len, max) : -1;
	if (!tcp_headers(pkt, len, &l3, &l4) || !mss)
		return -1;
	if ((h->gso_type & ~NT_VNET_GSO_ECN) != ((pkt[0] >> 4) == 4 ? NT_VNET_GSO_TCPV4 : NT_VNET_GSO_TCPV6))
		return -1;
	hdr = l3 + l4;
	payload = len - hdr;
	count = payload ? (payload + mss - 1) / mss : 1;
	if (count > max)
		return -1;
	seq = load32(pkt + l3 + 4);
	id = load16(pkt + 4);

	for (size_t i = 0, off = 0; i < count; i++, off += mss) {
		size_t n = payload - off < mss ? payload - off : mss;
		uint8_t *s = out[i];

		segment_copy(s, pkt, l3, hdr, off, n, (uint16_t)(id + i));
		store32(s + l3 + 4, seq + (uint32_t)off);
		if (i + 1 < count)
			s[l3 + 13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
		if (i > 0)
			s[l3 + 13] &= (uint8_t)~TCP_CWR;
		store16(s + l3 + 16, 0);
		store16(s + l3 + 16, tcp_csum(s, l3, l4 + n));
		seg_len[i] = hdr + n;
	}
	return (int)count;
}

/* ---- coalescing ---- */

struct flow {
	size_t head;        /* index of the head packet */
	size_t last;        /* index of the last packet merged (or the head) */
	size_t l3, l4;
	size_t mss;         /* payload size of the head: every merged segment but the last */
	uint32_t next_seq;  /* TCP: the next sequence number; UDP: the next IPv4 id (no DF) */
	unsigned count;
	uint8_t proto;
	bool open;
};

static bool same_flow(const uint8_t *a, const uint8_t *b, size_t l3, uint8_t proto, uint8_t b_proto)
{
	size_t alen = (a[0] >> 4) == 4 ? 8 : 32, aoff = (a[0] >> 4) == 4 ? 12 : 8;

	return proto == b_proto && (a[0] >> 4) == (b[0] >> 4) && !memcmp(a + aoff, b + aoff, alen) &&
	       !memcmp(a + l3, b + l3, 4);
}

/* IP version/TOS/TTL/DF (v4) or traffic class/flow label/hop limit (v6) are equal. */
static bool ip_match(const uint8_t *h, const uint8_t *p)
{
	if ((h[0] >> 4) == 4)
		return h[0] == p[0] && h[1] == p[1] && h[8] == p[8] && (h[6] & 0xe0) == (p[6] & 0xe0);
	return !memcmp(h, p, 4) && h[7] == p[7];
}

/* The parts of the headers that must be equal for two segments to merge: those of
 * ip_match; TCP ack, flags but PSH, window and every option byte. */
static bool headers_match(const uint8_t *h, const uint8_t *p, size_t l3, size_t l4)
{
	if (!ip_match(h, p))
		return false;
	return !memcmp(h + l3 + 8, p + l3 + 8, 5) && (h[l3 + 13] | TCP_PSH) == (p[l3 + 13] | TCP_PSH) &&
	       !memcmp(h + l3 + 14, p + l3 + 14, 2) && !memcmp(h + l3 + 20, p + l3 + 20, l4 - 20);
}

/* A TCP data segment that may take part: only ACK or ACK|PSH, no IPv4 fragment bits or
 * options, payload present, and a checksum that verifies (a merged packet goes up as
 * checksummed, so nothing unverified may enter one). */
static bool mergeable(const uint8_t *pkt, size_t len, size_t *l3, size_t *l4)
{
	uint8_t flags;

	if (!tcp_headers(pkt, len, l3, l4) || len <= *l3 + *l4)
		return false;
	if ((pkt[0] >> 4) == 4 && (*l3 != 20 || (load16(pkt + 6) & 0x3fff) || load16(pkt + 2) != len))
		return false;
	if ((pkt[0] >> 4) == 6 && (size_t)load16(pkt + 4) + 40 != len)
		return false;
	flags = pkt[*l3 + 13];
	if ((flags & ~TCP_PSH) != TCP_ACK)
		return false;
	return nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_TCP_, (uint32_t)(len - *l3)) +
			    nt_csum_add(0, pkt + *l3, len - *l3)) == 0xffff;
}

/* A UDP datagram that may take part: whole (udp_headers), no IPv4 options, payload
 * present, its UDP length equal to what the IP length leaves, and a checksum present and
 * verifying (the merged datagrams go up as checksummed). */
static bool udp_mergeable(const uint8_t *pkt, size_t len, size_t *l3)
{
	if (!udp_headers(pkt, len, l3) || *l3 != ((pkt[0] >> 4) == 4 ? 20 : 40) || len <= *l3 + UDP_HLEN ||
	    load16(pkt + *l3 + 4) != len - *l3 || !load16(pkt + *l3 + 6))
		return false;
	return nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_UDP_, (uint32_t)(len - *l3)) +
			    nt_csum_add(0, pkt + *l3, len - *l3)) == 0xffff;
}

/* Without DF an IPv4 datagram's id matters to whoever reassembles its fragments later: the
 * kernel's segmentation numbers the datagrams from the head's id on, so only runs that were
 * numbered so merge. With DF (and in IPv6) the id is free. */
static bool udp_id_ok(const uint8_t *p, uint32_t want)
{
	return (p[0] >> 4) != 4 || (p[6] & 0x40) || load16(p + 4) == (uint16_t)want;
}

static void finish_head(struct nt_gro_packet *p, const struct flow *f)
{
	uint8_t *pkt = p->data;

	if (f->count < 2)
		return;
	set_ip_len(pkt, f->l3, p->len);
	if (f->proto == IPPROTO_UDP_) {
		/* the UDP length covers the whole: each datagram's is set when it is cut */
		store16(pkt + f->l3 + 4, (uint16_t)(p->len - f->l3));
		store16(pkt + f->l3 + 6, nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_UDP_, (uint32_t)(p->len - f->l3))));
		p->hdr = (struct nt_vnet_hdr){
			.flags = NT_VNET_F_NEEDS_CSUM,
			.gso_type = NT_VNET_GSO_UDP_L4,
			.hdr_len = (uint16_t)(f->l3 + UDP_HLEN),
			.gso_size = (uint16_t)f->mss,
			.csum_start = (uint16_t)f->l3,
			.csum_offset = 6,
		};
		return;
	}
	/* CHECKSUM_PARTIAL: the field holds the pseudo-header sum over the whole length. */
	store16(pkt + f->l3 + 16, nt_csum_fold(nt_csum_pseudo(pkt, IPPROTO_TCP_, (uint32_t)(p->len - f->l3))));
	p->hdr = (struct nt_vnet_hdr){
		.flags = NT_VNET_F_NEEDS_CSUM,
		.gso_type = (pkt[0] >> 4) == 4 ? NT_VNET_GSO_TCPV4 : NT_VNET_GSO_TCPV6,
		.hdr_len = (uint16_t)(f->l3 + f->l4),
		.gso_size = (uint16_t)f->mss,
		.csum_start = (uint16_t)f->l3,
		.csum_offset = 16,
	};
}

/* Whether p (a mergeable UDP datagram of f's flow) extends f: same header sizes and IP
 * fields, not larger than the head's payload, within the segment count and 64 KiB. */
static bool udp_extends(const struct flow *f, const struct nt_gro_packet *h, const struct nt_gro_packet *p,
			size_t l3, size_t payload)
{
	return l3 == f->l3 && payload <= f->mss && f->count < NT_GRO_UDP_SEGMENTS && h->len + payload <= MAX_IP_LEN &&
	       h->len + payload <= h->cap && ip_match(h->data, p->data) && udp_id_ok(p->data, f->next_seq);
}

size_t nt_offload_coalesce_flags(struct nt_gro_packet *pkts, size_t n, unsigned gro_flags)
{
	struct flow flows[64];
	size_t nflows = 0, remaining = 0;
	bool adjacent_only = gro_flags & NT_GRO_ADJACENT;

	for (size_t i = 0; i < n; i++) {
		struct nt_gro_packet *p = &pkts[i];
		struct flow *f = NULL;
		size_t l3, l4 = UDP_HLEN;
		uint8_t proto = IPPROTO_TCP_;
		bool ok;

		memset(&p->hdr, 0, sizeof(p->hdr));
		if (!p->len)
			continue;
		remaining++;
		ok = mergeable(p->data, p->len, &l3, &l4);
		if (!ok && !tcp_headers(p->data, p->len, &l3, &l4)) {
			if (!(gro_flags & NT_GRO_UDP) || !udp_headers(p->data, p->len, &l3))
				continue;
			proto = IPPROTO_UDP_;
			l4 = UDP_HLEN;
			ok = udp_mergeable(p->data, p->len, &l3);
		}
		/* UDP datagrams merge only in runs of consecutive ones: order across flows as received */
		for (size_t k = 0; k < nflows; k++)
			if ((adjacent_only || flows[k].proto == IPPROTO_UDP_) && flows[k].open && flows[k].last + 1 != i)
				flows[k].open = false;
		for (size_t k = 0; k < nflows; k++)
			if (flows[k].open && same_flow(pkts[flows[k].head].data, p->data, flows[k].l3, flows[k].proto, proto)) {
				f = &flows[k];
				break;
			}
		if (f && ok && proto == IPPROTO_UDP_) {
			struct nt_gro_packet *h = &pkts[f->head];
			size_t payload = p->len - l3 - UDP_HLEN;

			if (udp_extends(f, h, p, l3, payload)) {
				memmove(h->data + h->len, p->data + l3 + UDP_HLEN, payload);
				h->len += payload;
				f->next_seq++;
				f->count++;
				f->last = i;
				p->len = 0;
				remaining--;
				if (payload < f->mss)
					f->open = false;
				continue;
			}
		} else if (f && ok) {
			struct nt_gro_packet *h = &pkts[f->head];
			size_t payload = p->len - l3 - l4;
			uint8_t flags = p->data[l3 + 13];

			if (l3 == f->l3 && l4 == f->l4 && load32(p->data + l3 + 4) == f->next_seq && payload <= f->mss &&
			    h->len + payload <= MAX_IP_LEN && h->len + payload <= h->cap &&
			    headers_match(h->data, p->data, l3, l4)) {
				/* may overlap: a head grows in place over the packets it absorbs */
				memmove(h->data + h->len, p->data + l3 + l4, payload);
				h->len += payload;
				f->next_seq += (uint32_t)payload;
				f->count++;
				f->last = i;
				p->len = 0;
				remaining--;
				if (flags & TCP_PSH) {
					h->data[l3 + 13] |= TCP_PSH;
					f->open = false;
				}
				if (payload < f->mss)
					f->open = false;
				continue;
			}
		}
		/* Not merged: whatever this flow had open ends here, so order is kept. */
		if (f)
			f->open = false;
		if (!ok)
			continue;
		f = NULL;
		if (nflows < sizeof(flows) / sizeof(flows[0]))
			f = &flows[nflows++];
		else /* full: a closed flow that merged nothing has nothing left to finish */
			for (size_t k = 0; k < nflows && !f; k++)
				if (!flows[k].open && flows[k].count < 2)
					f = &flows[k];
		if (!f)
			continue;
		*f = (struct flow){ .head = i, .last = i, .l3 = l3, .l4 = l4, .mss = p->len - l3 - l4, .count = 1, .open = true,
				    .proto = proto };
		if (proto == IPPROTO_UDP_) {
			f->next_seq = (uint32_t)load16(p->data + 4) + 1;
			continue;
		}
		f->next_seq = load32(p->data + l3 + 4) + (uint32_t)(p->len - l3 - l4);
		if (p->data[l3 + 13] & TCP_PSH)
			f->open = false;
	}
	for (size_t k = 0; k < nflows; k++)
		finish_head(&pkts[flows[k].head], &flows[k]);
	return remaining;
}

size_t nt_offload_coalesce(struct nt_gro_packet *pkts, size_t n, bool adjacent_only)
{
	return nt_offload_coalesce_flags(pkts, n, adjacent_only ? NT_GRO_ADJACENT : 0);
}
