#ifndef NOISETUN_RTNL_H
#define NOISETUN_RTNL_H

#include <stdbool.h>
#include <stdint.h>


/* rtnl.c: rtnetlink requests (libmnl), each 0 or -errno. */
int rtnl_addr(bool add, int ifindex, int family, const uint8_t *addr, uint8_t prefixlen);
int rtnl_addr_list(int ifindex, int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t prefixlen), void *ctx);
int rtnl_link_set(int ifindex, unsigned mtu, bool up);  /* mtu 0: leave it */
int rtnl_link_mtu(int ifindex, unsigned *mtu);
int rtnl_route(bool add, int family, const uint8_t *dst, uint8_t dst_len, int ifindex, uint32_t table);
int rtnl_route_exists(int family, const uint8_t *addr, uint8_t len, int ifindex, uint32_t table, bool *found);
int rtnl_route_get_mtu(int family, const uint8_t *addr, unsigned *mtu);
int rtnl_default_route_mtu(unsigned *mtu);
/* The rtm_protocol / FRA_PROTOCOL of every route and rule config mode adds: how a later
 * start recognises what a crashed instance left (`ip rule` shows "proto 78"). Values from
 * RTPROT_STATIC (4) up are the kernel's to ignore; 78 ('N') is in no iproute2 or kernel
 * list. */
#define RTPROT_NOISETUN 78
struct rtnl_rule {
	int family;
	uint32_t priority, table;
	uint8_t protocol;
	bool invert;                    /* `not`: the fwmark does not match */
	bool has_fwmark;
	uint32_t fwmark;                /* with the full mask */
	bool suppress;                  /* suppress_prefixlength 0 */
	bool other;                     /* a dumped rule with selectors or an action not above */
};
int rtnl_rule(bool add, const struct rtnl_rule *r);
int rtnl_rule_list(int family, int (*fn)(void *ctx, const struct rtnl_rule *r), void *ctx);
int rtnl_addr_list_all(int ifindex, int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t prefixlen), void *ctx);

#endif
