/* rtnetlink requests for config mode (libmnl), what wg-quick does with `ip`: addresses,
 * MTU and link state, routes, policy rules, and the lookups behind its choices ("route
 * get" for the MTU, "route show dev X match P", "is table T in use"). One short-lived
 * socket per request; every call returns 0 or a negative errno. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "noisetund.h"
#include "rtnl.h"

#define RTNL_REQUEST_SIZE 1024   /* the largest request here is a few attributes */
#define RTNL_RECV_SIZE    32768  /* a dump part is at most 32 KiB */

static unsigned rtnl_seq;

static size_t addr_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

/* Send one request and run cb on every reply until the ack (or NLMSG_DONE of a dump). */
static int rtnl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	static char buf[RTNL_RECV_SIZE];
	struct mnl_socket *nl;
	unsigned portid;
	int ret;

	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	portid = mnl_socket_get_portid(nl);
	if (!rtnl_seq)
		rtnl_seq = (unsigned)time(NULL);
	nlh->nlmsg_seq = ++rtnl_seq;
	if ((nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP)
		nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto fail;
	do {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		if (n < 0)
			goto fail;
		ret = mnl_cb_run(buf, (size_t)n, nlh->nlmsg_seq, portid, cb, data);
	} while (ret > MNL_CB_STOP);
	if (ret < 0)
		goto fail;
	mnl_socket_close(nl);
	return 0;
fail:
	ret = errno ? -errno : -EIO;
	mnl_socket_close(nl);
	return ret;
}

static struct nlmsghdr *put_header(char *buf, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	return nlh;
}

/* ---- addresses ---- */

int rtnl_addr(bool add, int ifindex, int family, const uint8_t *addr, uint8_t prefixlen)
{
	char buf[RTNL_REQUEST_SIZE];
	struct nlmsghdr *nlh = put_header(buf, add ? RTM_NEWADDR : RTM_DELADDR, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (unsigned)ifindex;
	/* As `ip address add` sends it: local and address are the same without a peer. */
	mnl_attr_put(nlh, IFA_LOCAL, addr_len(family), addr);
	mnl_attr_put(nlh, IFA_ADDRESS, addr_len(family), addr);
	return rtnl_talk(nlh, NULL, NULL);
}

struct addr_dump {
	int ifindex;
	bool link_scope;                /* also the link-local ones */
	int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t prefixlen);
	void *ctx;
};

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct addr_dump *d = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr, *local = NULL, *address = NULL;

	if (nlh->nlmsg_type != RTM_NEWADDR || (int)ifa->ifa_index != d->ifindex ||
	    (ifa->ifa_scope == RT_SCOPE_LINK && !d->link_scope))
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(*ifa)) {
		if (mnl_attr_get_type(attr) == IFA_LOCAL)
			local = attr;
		else if (mnl_attr_get_type(attr) == IFA_ADDRESS)
			address = attr;
	}
	if (!local)
		local = address;
	if (!local || mnl_attr_get_payload_len(local) != addr_len(ifa->ifa_family))
		return MNL_CB_OK;
	d->fn(d->ctx, ifa->ifa_family, mnl_attr_get_payload(local), ifa->ifa_prefixlen);
	return MNL_CB_OK;
}

int rtnl_addr_list(int ifindex, int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t prefixlen), void *ctx)
{
	char buf[RTNL_REQUEST_SIZE];
	struct addr_dump d = { .ifindex = ifindex, .fn = fn, .ctx = ctx };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = AF_UNSPEC;
	return rtnl_talk(nlh, addr_cb, &d);
}

/* `ip -o addr show dev X`, every scope, as wg-quick reads it for its firewall rules. */
int rtnl_addr_list_all(int ifindex, int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t prefixlen), void *ctx)
{
	char buf[RTNL_REQUEST_SIZE];
	struct addr_dump d = { .ifindex = ifindex, .link_scope = true, .fn = fn, .ctx = ctx };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = AF_UNSPEC;
	return rtnl_talk(nlh, addr_cb, &d);
}

/* ---- the link ---- */

int rtnl_link_set(int ifindex, unsigned mtu, bool up)
{
	char buf[RTNL_REQUEST_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_change = IFF_UP;
	ifi->ifi_flags = up ? IFF_UP : 0;
	if (mtu)
		mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return rtnl_talk(nlh, NULL, NULL);
}

static int link_mtu_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct nlattr *attr;

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_for_each(attr, nlh, sizeof(struct ifinfomsg))
		if (mnl_attr_get_type(attr) == IFLA_MTU && mnl_attr_get_payload_len(attr) == 4)
			*(unsigned *)data = mnl_attr_get_u32(attr);
	return MNL_CB_OK;
}

int rtnl_link_mtu(int ifindex, unsigned *mtu)
{
	char buf[RTNL_REQUEST_SIZE];
	struct nlmsghdr *nlh = put_header(buf, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	*mtu = 0;
	return rtnl_talk(nlh, link_mtu_cb, mtu);
}

/* ---- routes ---- */

static struct rtmsg *put_rtmsg(struct nlmsghdr *nlh, int family, uint8_t dst_len, uint32_t table)
{
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = dst_len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	return rtm;
}

int rtnl_route(bool add, int family, const uint8_t *dst, uint8_t dst_len, int ifindex, uint32_t table)
{
	char buf[RTNL_REQUEST_SIZE];
	struct nlmsghdr *nlh = put_header(buf, add ? RTM_NEWROUTE : RTM_DELROUTE, add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	struct rtmsg *rtm = put_rtmsg(nlh, family, dst_len, table);

	/* `ip route add P dev X [table T] proto noisetun`: a link-scope unicast route. The
	 * protocol marks it as ours, and a delete names it too, so that it never removes an
	 * equal route someone else added. */
	rtm->rtm_type = RTN_UNICAST;
	rtm->rtm_protocol = RTPROT_NOISETUN;
	rtm->rtm_scope = add ? RT_SCOPE_LINK : RT_SCOPE_NOWHERE;
	if (dst_len)
		mnl_attr_put(nlh, RTA_DST, addr_len(family), dst);
	mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)ifindex);
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	return rtnl_talk(nlh, NULL, NULL);
}

struct route_info {
	uint32_t table;
	int oif;
	unsigned mtu;
	bool has_dst;
	uint8_t dst[16];
};

static void route_parse(const struct nlmsghdr *nlh, struct route_info *ri)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr, *metric;

	memset(ri, 0, sizeof(*ri));
	ri->table = rtm->rtm_table;
	mnl_attr_for_each(attr, nlh, sizeof(*rtm)) {
		switch (mnl_attr_get_type(attr)) {
		case RTA_TABLE:
			if (mnl_attr_get_payload_len(attr) == 4)
				ri->table = mnl_attr_get_u32(attr);
			break;
		case RTA_OIF:
			if (mnl_attr_get_payload_len(attr) == 4)
				ri->oif = (int)mnl_attr_get_u32(attr);
			break;
		case RTA_DST:
			if (mnl_attr_get_payload_len(attr) == addr_len(rtm->rtm_family)) {
				memcpy(ri->dst, mnl_attr_get_payload(attr), addr_len(rtm->rtm_family));
				ri->has_dst = true;
			}
			break;
		case RTA_METRICS:
			mnl_attr_for_each_nested(metric, attr)
				if (mnl_attr_get_type(metric) == RTAX_MTU && mnl_attr_get_payload_len(metric) == 4)
					ri->mtu = mnl_attr_get_u32(metric);
			break;
		}
	}
}

/* Does prefix a/alen contain b/blen? */
static bool prefix_covers(int family, const uint8_t *a, uint8_t alen, const uint8_t *b, uint8_t blen)
{
	size_t bytes = alen / 8;
	unsigned bits = alen % 8;

	if (alen > blen || alen > addr_len(family) * 8)
		return false;
	if (memcmp(a, b, bytes))
		return false;
	return !bits || ((a[bytes] ^ b[bytes]) & (uint8_t)(0xff << (8 - bits))) == 0;
}

struct route_match {
	int family, ifindex;
	uint32_t table;
	const uint8_t *addr;
	uint8_t len;
	bool found;
};

static int route_match_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_match *m = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct route_info ri;
	static const uint8_t zero[16];

	if (nlh->nlmsg_type != RTM_NEWROUTE || rtm->rtm_family != m->family)
		return MNL_CB_OK;
	route_parse(nlh, &ri);
	if (ri.table != m->table)
		return MNL_CB_OK;
	if (m->ifindex && ri.oif != m->ifindex)
		return MNL_CB_OK;
	if (!m->addr || prefix_covers(m->family, ri.has_dst ? ri.dst : zero, rtm->rtm_dst_len, m->addr, m->len))
		m->found = true;
	return MNL_CB_OK;
}

/* `ip route show [dev X] [match P] table T` is not empty. With addr NULL: any route of the
 * family in T. */
int rtnl_route_exists(int family, const uint8_t *addr, uint8_t len, int ifindex, uint32_t table, bool *found)
{
	char buf[RTNL_REQUEST_SIZE];
	struct route_match m = { .family = family, .ifindex = ifindex, .table = table, .addr = addr, .len = len };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETROUTE, NLM_F_DUMP);
	int err;

	put_rtmsg(nlh, family, 0, 0);
	err = rtnl_talk(nlh, route_match_cb, &m);
	*found = m.found;
	return err;
}

struct route_mtu {
	bool default_only;
	unsigned mtu;
	int oif;
	bool done;
};

static int route_mtu_cb(const struct nlmsghdr *nlh, void *data)
{
	struct route_mtu *r = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct route_info ri;

	if (nlh->nlmsg_type != RTM_NEWROUTE || r->done)
		return MNL_CB_OK;
	route_parse(nlh, &ri);
	if (r->default_only && (rtm->rtm_dst_len || ri.table != RT_TABLE_MAIN || rtm->rtm_type != RTN_UNICAST))
		return MNL_CB_OK;
	r->mtu = ri.mtu;
	r->oif = ri.oif;
	r->done = true;
	return MNL_CB_OK;
}

/* The MTU wg-quick reads for a route: its "mtu" metric, else its device's MTU; 0 if none. */
static unsigned route_mtu(const struct route_mtu *r)
{
	unsigned mtu = r->mtu;

	if (!mtu && r->oif && rtnl_link_mtu(r->oif, &mtu))
		mtu = 0;
	return mtu;
}

/* `ip route get ADDR`. */
int rtnl_route_get_mtu(int family, const uint8_t *addr, unsigned *mtu)
{
	char buf[RTNL_REQUEST_SIZE];
	struct route_mtu r = { 0 };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETROUTE, 0);
	int err;

	put_rtmsg(nlh, family, (uint8_t)(addr_len(family) * 8), 0);
	mnl_attr_put(nlh, RTA_DST, addr_len(family), addr);
	*mtu = 0;
	if ((err = rtnl_talk(nlh, route_mtu_cb, &r)))
		return err;
	*mtu = route_mtu(&r);
	return 0;
}

/* The first line of `ip route show default` (IPv4, table main). */
int rtnl_default_route_mtu(unsigned *mtu)
{
	char buf[RTNL_REQUEST_SIZE];
	struct route_mtu r = { .default_only = true };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETROUTE, NLM_F_DUMP);
	int err;

	put_rtmsg(nlh, AF_INET, 0, 0);
	*mtu = 0;
	if ((err = rtnl_talk(nlh, route_mtu_cb, &r)))
		return err;
	*mtu = route_mtu(&r);
	return 0;
}

/* ---- policy rules ---- */

/* Add or delete one rule, named by all it is: family, priority, protocol, table, [not]
 * fwmark, suppress_prefixlength. A delete without the priority would take the first rule
 * with these selectors, which for `table main suppress_prefixlength 0` is as likely
 * another full tunnel's as ours (issue 21 #5). */
int rtnl_rule(bool add, const struct rtnl_rule *r)
{
	char buf[RTNL_REQUEST_SIZE];
	/* No NLM_F_EXCL: two full-tunnel interfaces may each own an identical suppress rule
	 * at the same priority (when they started at the same moment); each deletes one. */
	struct nlmsghdr *nlh = put_header(buf, add ? RTM_NEWRULE : RTM_DELRULE, add ? NLM_F_CREATE : 0);
	struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));

	frh->family = (uint8_t)r->family;
	frh->table = r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
	frh->action = FR_ACT_TO_TBL;
	if (r->invert)
		frh->flags |= FIB_RULE_INVERT;
	mnl_attr_put_u32(nlh, FRA_PRIORITY, r->priority);
	mnl_attr_put_u8(nlh, FRA_PROTOCOL, r->protocol);
	if (r->has_fwmark)
		mnl_attr_put_u32(nlh, FRA_FWMARK, r->fwmark);
	mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
	if (r->suppress)
		mnl_attr_put_u32(nlh, FRA_SUPPRESS_PREFIXLEN, 0);
	return rtnl_talk(nlh, NULL, NULL);
}

struct rule_dump {
	int (*fn)(void *ctx, const struct rtnl_rule *r);
	void *ctx;
	int err;
};

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct rule_dump *d = data;
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *attr;
	struct rtnl_rule r = { .family = frh->family, .table = frh->table };

	if (nlh->nlmsg_type != RTM_NEWRULE || mnl_nlmsg_get_payload_len(nlh) < sizeof(*frh))
		return MNL_CB_OK;
	r.invert = frh->flags & FIB_RULE_INVERT;
	/* Anything this struct cannot say makes the rule one of somebody else's. */
	r.other = frh->src_len || frh->dst_len || frh->tos || frh->action != FR_ACT_TO_TBL;
	mnl_attr_for_each(attr, nlh, sizeof(*frh)) {
		uint16_t type = mnl_attr_get_type(attr);
		size_t len = mnl_attr_get_payload_len(attr);

		if (type == FRA_PRIORITY && len == 4)
			r.priority = mnl_attr_get_u32(attr);
		else if (type == FRA_TABLE && len == 4)
			r.table = mnl_attr_get_u32(attr);
		else if (type == FRA_PROTOCOL && len == 1)
			r.protocol = mnl_attr_get_u8(attr);
		else if (type == FRA_FWMARK && len == 4) {
			r.has_fwmark = true;
			r.fwmark = mnl_attr_get_u32(attr);
		} else if (type == FRA_FWMASK && len == 4) {
			r.other |= mnl_attr_get_u32(attr) != UINT32_MAX;
		} else if (type == FRA_SUPPRESS_PREFIXLEN && len == 4) {
			uint32_t v = mnl_attr_get_u32(attr);
			r.suppress = v == 0;
			r.other |= v != 0 && v != UINT32_MAX;
		} else if (type == FRA_SUPPRESS_IFGROUP && len == 4) {
			r.other |= mnl_attr_get_u32(attr) != UINT32_MAX;
		} else if (type != FRA_UNSPEC && type != FRA_PAD) {
			r.other = true;
		}
	}
	if (!d->err)
		d->err = d->fn(d->ctx, &r);
	return MNL_CB_OK;
}

/* `ip rule show` for one family: fn on each rule, in priority order, until it returns
 * nonzero (an error, which this then returns). */
int rtnl_rule_list(int family, int (*fn)(void *ctx, const struct rtnl_rule *r), void *ctx)
{
	char buf[RTNL_REQUEST_SIZE];
	struct rule_dump d = { .fn = fn, .ctx = ctx };
	struct nlmsghdr *nlh = put_header(buf, RTM_GETRULE, NLM_F_DUMP);
	struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
	int err;

	frh->family = (uint8_t)family;
	err = rtnl_talk(nlh, rule_cb, &d);
	return err ? err : d.err;
}
