#ifndef NOISETUN_NFT_H
#define NOISETUN_NFT_H

#include <stddef.h>
#include <stdint.h>


/* nft.c: wg-quick's nftables guard for a full tunnel, over nfnetlink (libnftnl): table
 * FAMILY noisetun-IFACE with a preraw drop of packets to the tunnel's addresses that do
 * not come in through it, and the connmark save/restore that keeps the fwmark on the
 * tunnel's own UDP. set replaces the table atomically (a stale one too); del is -ENOENT
 * when there is none. At most NFT_MAX_ADDRS addresses. */
#define NFT_MAX_ADDRS 256
int nft_guard_set(const char *ifname, int family, uint32_t fwmark, const uint8_t (*addrs)[16], size_t count);
int nft_guard_del(const char *ifname, int family);

#endif
