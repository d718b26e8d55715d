/* Packet surgery for the offloaded data path (shared/docs/speed.md steps 3 and 6), pure so
 * it can be unit-tested and fuzzed: checksums, splitting a TUN TSO super-packet into
 * segments, and coalescing received TCP segments into one super-packet for the TUN. */
#ifndef NOISETUN_OFFLOAD_H
#define NOISETUN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The virtio_net_hdr a TUN opened with IFF_VNET_HDR puts before every packet (host order). */
#define NT_VNET_HDR_LEN 10
#define NT_VNET_F_NEEDS_CSUM 1
#define NT_VNET_GSO_NONE  0
#define NT_VNET_GSO_TCPV4 1
#define NT_VNET_GSO_TCPV6 4
#define NT_VNET_GSO_UDP_L4 5 /* UDP segmentation (TUN_F_USO4/USO6, Linux >= 6.2) */
#define NT_VNET_GSO_ECN   0x80

struct nt_vnet_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
};

void nt_vnet_hdr_load(struct nt_vnet_hdr *h, const uint8_t p[static NT_VNET_HDR_LEN]);
void nt_vnet_hdr_store(uint8_t p[static NT_VNET_HDR_LEN], const struct nt_vnet_hdr *h);

/* Ones'-complement sum of len bytes added to sum (unfolded, 64-bit accumulator). */
uint64_t nt_csum_add(uint64_t sum, const void *buf, size_t len);
/* Fold to 16 bits (not complemented). */
uint16_t nt_csum_fold(uint64_t sum);
/* The unfolded pseudo-header sum for TCP/UDP over IPv4 or IPv6 (pkt is the IP packet). */
uint64_t nt_csum_pseudo(const uint8_t *pkt, uint8_t proto, uint32_t l4_len);

/* Complete a packet handed over with NEEDS_CSUM and no GSO: fold the sum from csum_start to
 * the end into csum_start + csum_offset. 0, or -1 when the offsets do not fit len. */
int nt_offload_finish_csum(uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h);

/* Split a TCP TSO super-packet (gso_type TCPV4/TCPV6) into segments of at most gso_size
 * payload bytes, each a complete IP packet with fixed lengths, IPv4 ids and header
 * checksum, advanced sequence numbers, FIN/PSH on the last segment only, CWR on the first
 * only, and a full TCP checksum. Segment i goes to out[i] (room for hdr + gso_size bytes),
 * its length to seg_len[i]. Returns the count, or -1 when malformed or more than max.
 * A UDP super-datagram (gso_type UDP_L4: IPv4 without fragment bits, or IPv6 with UDP as
 * the next header; IP and UDP lengths equal to len) is cut the same way into datagrams of
 * gso_size payload bytes (the last may be shorter), each with its own IP and UDP lengths,
 * IPv4 id and header checksum, and a full UDP checksum. */
int nt_offload_split(const uint8_t *pkt, size_t len, const struct nt_vnet_hdr *h, uint8_t *const out[],
		     size_t seg_len[], size_t max);

/* One IP packet to be written to the TUN: data has `headroom` bytes before it (at least
 * NT_VNET_HDR_LEN) and cap bytes from data on. After nt_offload_coalesce, len 0 means
 * "merged into an earlier packet: skip", and hdr is what to write before data. */
struct nt_gro_packet {
	uint8_t *data;
	size_t len;
	size_t cap;
	struct nt_vnet_hdr hdr;
};

/* Merge TCP segments of one flow within pkts (in order) when they are ACK or ACK|PSH data,
 * headers and options match, sequence numbers are adjacent, sizes equal (the last may be
 * shorter), nothing follows a PSH, and every segment's checksum verifies. A merged head is
 * marked for GSO (NEEDS_CSUM, pseudo-header sum in the TCP checksum). Returns how many
 * packets remain to write. adjacent_only: merge only runs of consecutive packets, for
 * callers whose heads grow in place over the buffers of the packets they absorb. */
size_t nt_offload_coalesce(struct nt_gro_packet *pkts, size_t n, bool adjacent_only);

/* nt_offload_coalesce with flags: NT_GRO_ADJACENT is adjacent_only; NT_GRO_UDP also merges
 * UDP datagrams (only for a TUN that took TUN_F_USO4|USO6): runs of consecutive datagrams
 * of one flow (addresses, ports), IPv4 without options or fragment bits (IPv6 without
 * extension headers), equal TOS/TTL/DF (traffic class, flow label, hop limit), without DF
 * consecutive IPv4 ids, all of the first one's payload size but the last (which may be
 * shorter and ends the run), at most NT_GRO_UDP_SEGMENTS and 65535 bytes, each with a
 * checksum that verifies (none, in IPv4, never merges). A merged head is marked for USO
 * (gso_type UDP_L4, NEEDS_CSUM, the pseudo-header sum of its whole length in the UDP
 * checksum, the whole length in the UDP length). */
#define NT_GRO_ADJACENT 1u
#define NT_GRO_UDP      2u
#define NT_GRO_UDP_SEGMENTS 64 /* UDP_MAX_SEGMENTS of older kernels (newer take 128) */
size_t nt_offload_coalesce_flags(struct nt_gro_packet *pkts, size_t n, unsigned flags);

#endif
