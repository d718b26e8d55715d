/* TCP MSS clamping (issue 18): a SYN crossing the tunnel gets its MSS option lowered so
 * the connection's segments fit the tunnel MTU, since a host behind a 1500-byte LAN
 * advertises an MSS the tunnel cannot carry and PMTU discovery is often broken (ICMP
 * filtered: PPPoE, LTE). Pure: no I/O. */
#ifndef NOISETUN_MSS_H
#define NOISETUN_MSS_H

#include <stddef.h>
#include <stdint.h>

/* What an MSS may be at most under a tunnel MTU: mtu - 40 for IPv4 (IP 20 + TCP 20),
 * mtu - 60 for IPv6 (40 + 20); 0 when the MTU cannot hold even the headers. */
unsigned nt_mss_limit(unsigned mtu, int ip_version);

/* In the IP packet pkt (len bytes, a plain packet: no virtio_net_hdr before it), if it is
 * an unfragmented TCP segment with SYN set (a SYN or a SYN-ACK) whose MSS option exceeds
 * nt_mss_limit(mtu, version), lower that option to the limit and fix the TCP checksum
 * incrementally (RFC 1624). Never raises an MSS. Left alone: IPv4 fragments (first or
 * not), IPv6 with any extension header, anything truncated or malformed (header lengths
 * beyond len, an option whose length runs past the header), mtu 0. Reads and writes
 * only pkt[0, len). Returns 1 when the packet changed, else 0. */
int nt_mss_clamp(uint8_t *pkt, size_t len, unsigned mtu);

#endif
