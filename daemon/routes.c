/* Config mode's addresses, routes and policy rules, over rtnetlink as wg-quick does them
 * with `ip` (see the top of setup.c): an address per Address, a route per allowed IP
 * (longest prefix first, skipped when a route on the interface in table main already
 * covers it), and for a /0 with Table=auto the fwmark table, its two rules and the
 * nftables guard (nft.c). Everything added is recorded here; down removes exactly that,
 * and a reload brings it in line with the file. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "noisetun/config.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "nft.h"
#include "rtnl.h"
#include "routes.h"

#define POLICY_TABLE_FIRST 51820   /* wg-quick's first choice of table and fwmark */
enum { POLICY_ROUTE = 1, POLICY_RULE_MARK = 2, POLICY_RULE_SUPPRESS = 4, POLICY_GUARD = 8 };

struct route {
	uint8_t family, len;
	uint8_t addr[16];               /* masked to len */
	uint32_t table;
};

/* What up added, so that down removes exactly that. */
static struct {
	struct nt_config_address *addrs;
	size_t addrs_count;
	struct route *routes;
	size_t routes_count;
	uint32_t policy_table;          /* 0: no policy routing */
	unsigned policy[2];             /* POLICY_* done, [0] IPv4, [1] IPv6 */
	uint32_t mark_prio[2];          /* the priorities of our two rules */
	uint32_t suppress_prio[2];
} rt;

static int family_slot(int family)
{
	return family == AF_INET6;
}

static size_t family_len(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

const char *fmt_prefix(char *buf, size_t size, int family, const uint8_t *addr, unsigned len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, a, sizeof(a));
	snprintf(buf, size, "%s/%u", a, len);
	return buf;
}

bool wants_default(const struct nt_config *cfg, int family)
{
	for (size_t i = 0; i < cfg->peers_count; i++)
		for (size_t j = 0; j < cfg->peers[i].allowed_ips_count; j++)
			if (cfg->peers[i].allowed_ips[j].family == family && cfg->peers[i].allowed_ips[j].cidr == 0)
				return true;
	return false;
}

static bool table_in_use(uint32_t table)
{
	bool v4 = false, v6 = false;

	rtnl_route_exists(AF_INET, NULL, 0, 0, table, &v4);
	rtnl_route_exists(AF_INET6, NULL, 0, 0, table, &v6);
	return v4 || v6;
}

/* wg-quick's add_default: the table (and fwmark) for the /0 trick is the fwmark already
 * set, else the first of 51820, 51821, ... with no routes. Kept across reloads. */
uint32_t policy_table_for(const struct nt_config *cfg)
{
	if (cfg->table != NT_TABLE_AUTO || (!wants_default(cfg, AF_INET) && !wants_default(cfg, AF_INET6)))
		return 0;
	if (cfg->has_fwmark && cfg->fwmark)
		return cfg->fwmark;
	if (rt.policy_table)
		return rt.policy_table;
	for (uint32_t t = POLICY_TABLE_FIRST;; t++)
		if (!table_in_use(t))
			return t;
}

/* ---- addresses ---- */

static bool address_equal(const struct nt_config_address *a, const struct nt_config_address *b)
{
	return a->family == b->family && a->cidr == b->cidr && !memcmp(a->addr, b->addr, family_len(a->family));
}

static bool address_listed(const struct nt_config_address *a, const struct nt_config_address *list, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (address_equal(a, &list[i]))
			return true;
	return false;
}

/* Remove the addresses we added that cfg no longer has; add those it has and we did not. */
int addresses_sync(struct device *dev, const struct nt_config *cfg, bool stop_on_error, char *what, size_t what_size)
{
	char buf[64];
	int err, ret = 0;

	for (size_t i = 0; i < rt.addrs_count;) {
		struct nt_config_address *a = &rt.addrs[i];
		if (address_listed(a, cfg->addresses, cfg->addresses_count)) {
			i++;
			continue;
		}
		fmt_prefix(buf, sizeof(buf), a->family, a->addr, a->cidr);
		if ((err = rtnl_addr(false, dev->ifindex, a->family, a->addr, a->cidr)) && err != -EADDRNOTAVAIL)
			log_error("cannot remove address %s: %s", buf, strerror(-err));
		else
			log_verbose("removed address %s", buf);
		rt.addrs[i] = rt.addrs[--rt.addrs_count];
	}
	for (size_t i = 0; i < cfg->addresses_count; i++) {
		const struct nt_config_address *a = &cfg->addresses[i];
		struct nt_config_address *grown;

		if (address_listed(a, rt.addrs, rt.addrs_count))
			continue;
		fmt_prefix(buf, sizeof(buf), a->family, a->addr, a->cidr);
		if ((err = rtnl_addr(true, dev->ifindex, a->family, a->addr, a->cidr))) {
			snprintf(what, what_size, "cannot add address %s", buf);
			if (stop_on_error)
				return err;
			log_error("%s: %s", what, strerror(-err));
			ret = err;
			continue;
		}
		log_verbose("added address %s", buf);
		if (!(grown = realloc(rt.addrs, (rt.addrs_count + 1) * sizeof(*grown))))
			return -ENOMEM;
		rt.addrs = grown;
		rt.addrs[rt.addrs_count++] = *a;
	}
	return ret;
}

/* ---- routes ---- */

static bool route_equal(const struct route *a, const struct route *b)
{
	return a->family == b->family && a->len == b->len && a->table == b->table &&
	       !memcmp(a->addr, b->addr, family_len(a->family));
}

static int route_order(const void *pa, const void *pb)
{
	const struct route *a = pa, *b = pb;

	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr, b->addr, 16);
}

/* The plain routes cfg asks for, longest prefix first; /0 with Table=auto is the policy
 * trick instead, and Table=off asks for none. */
static int wanted_routes(const struct nt_config *cfg, struct route **out, size_t *count)
{
	size_t cap = 0, n = 0;
	struct route *list = NULL;

	*out = NULL;
	*count = 0;
	if (cfg->table == NT_TABLE_OFF)
		return 0;
	for (size_t i = 0; i < cfg->peers_count; i++)
		cap += cfg->peers[i].allowed_ips_count;
	if (cap && !(list = calloc(cap, sizeof(*list))))
		return -ENOMEM;
	for (size_t i = 0; i < cfg->peers_count; i++) {
		for (size_t j = 0; j < cfg->peers[i].allowed_ips_count; j++) {
			const struct nt_uapi_allowed_ip *a = &cfg->peers[i].allowed_ips[j];
			struct route r = { .family = a->family, .len = a->cidr };
			bool dup = false;

			if (a->family != AF_INET && a->family != AF_INET6)
				continue;
			if (a->cidr == 0 && cfg->table == NT_TABLE_AUTO)
				continue;
			r.table = cfg->table == NT_TABLE_ID ? cfg->table_id : RT_TABLE_MAIN;
			for (unsigned b = 0; b < a->cidr && b < family_len(a->family) * 8; b++)
				if (a->addr[b / 8] & (0x80 >> (b % 8)))
					r.addr[b / 8] |= (uint8_t)(0x80 >> (b % 8));
			for (size_t k = 0; k < n && !dup; k++)
				dup = route_equal(&list[k], &r);
			if (!dup)
				list[n++] = r;
		}
	}
	if (n)
		qsort(list, n, sizeof(*list), route_order);
	*out = list;
	*count = n;
	return 0;
}

/* The two rules of a full tunnel, as wg-quick adds them, with the priority we chose and
 * our protocol: deleted by all of that, never by a lookalike (issue 21 #5). */
static struct rtnl_rule mark_rule(int family, uint32_t table, uint32_t priority)
{
	return (struct rtnl_rule){ .family = family, .priority = priority, .table = table, .protocol = RTPROT_NOISETUN,
				   .invert = true, .has_fwmark = true, .fwmark = table };
}

static struct rtnl_rule suppress_rule(int family, uint32_t priority)
{
	return (struct rtnl_rule){ .family = family, .priority = priority, .table = RT_TABLE_MAIN,
				   .protocol = RTPROT_NOISETUN, .suppress = true };
}

static bool rule_same(const struct rtnl_rule *a, const struct rtnl_rule *b)
{
	return !a->other && !b->other && a->family == b->family && a->priority == b->priority && a->table == b->table &&
	       a->protocol == b->protocol && a->invert == b->invert && a->has_fwmark == b->has_fwmark &&
	       (!a->has_fwmark || a->fwmark == b->fwmark) && a->suppress == b->suppress;
}

static const char *family_opt(int family)
{
	return family == AF_INET ? "-4" : "-6";
}

static const char *nft_family(int family)
{
	return family == AF_INET ? "ip" : "ip6";
}

static void policy_del(struct device *dev, const char *ifname, int family)
{
	static const uint8_t any[16];
	int slot = family_slot(family), err;
	unsigned *done = &rt.policy[slot];
	const char *v = family_opt(family);
	struct rtnl_rule r;

	if (*done & POLICY_GUARD) {
		if ((err = nft_guard_del(ifname, family)) && err != -ENOENT)
			log_error("cannot delete nftables table %s noisetun-%s: %s", nft_family(family), ifname,
				  strerror(-err));
		else
			log_verbose("nft delete table %s noisetun-%s", nft_family(family), ifname);
	}
	if (*done & POLICY_RULE_SUPPRESS) {
		r = suppress_rule(family, rt.suppress_prio[slot]);
		if ((err = rtnl_rule(false, &r)))
			log_error("cannot delete rule (%s) %u: table main suppress_prefixlength 0: %s", v, r.priority,
				  strerror(-err));
		else
			log_verbose("ip %s rule delete priority %u table main suppress_prefixlength 0", v, r.priority);
	}
	if (*done & POLICY_RULE_MARK) {
		r = mark_rule(family, rt.policy_table, rt.mark_prio[slot]);
		if ((err = rtnl_rule(false, &r)))
			log_error("cannot delete rule (%s) %u: not fwmark %u table %u: %s", v, r.priority, r.fwmark, r.table,
				  strerror(-err));
		else
			log_verbose("ip %s rule delete priority %u not fwmark %u table %u", v, r.priority, r.fwmark, r.table);
	}
	if (*done & POLICY_ROUTE)
		rtnl_route(false, family, any, 0, dev->ifindex, rt.policy_table);
	*done = 0;
}

/* The priority the kernel would give a rule added without one (just above the first rule
 * after `local`), so that ours go where wg-quick's go; we name it so that we can delete by
 * it. */
static int lowest_prio_cb(void *ctx, const struct rtnl_rule *r)
{
	uint32_t *lowest = ctx;

	if (r->priority && r->priority < *lowest)
		*lowest = r->priority;
	return 0;
}

static int free_priorities(int family, uint32_t *mark, uint32_t *suppress)
{
	uint32_t lowest = 32766; /* main's, should every rule but local be gone */
	int err;

	if ((err = rtnl_rule_list(family, lowest_prio_cb, &lowest)))
		return err;
	if (lowest < 3)
		return -ENOSPC;
	*mark = lowest - 1;
	*suppress = lowest - 2;
	return 0;
}

/* ---- what a crashed instance left (issue 15 #5) ----
 * The kernel takes our routes with the TUN device when the last process holding it dies,
 * but the policy rules and nftables tables stay. A start looks for them before it adds its
 * own: the table noisetun-IFACE by its name (IFACE is ours now: the device exists), and
 * rules with our protocol for TABLE, the table (= fwmark) this start is about to use, when
 * no route is in TABLE: a live instance always has its default route there before its
 * rules and removes the rules first, so those rules are a dead instance's. Its suppress
 * rule sits just below its fwmark rule (see free_priorities). */
#define STALE_MAX 64

struct stale {
	uint32_t table;
	struct rtnl_rule mark[STALE_MAX], suppress[STALE_MAX];
	size_t marks, suppresses;
};

static int stale_cb(void *ctx, const struct rtnl_rule *r)
{
	struct stale *st = ctx;
	struct rtnl_rule want = mark_rule(r->family, st->table, r->priority);
	struct rtnl_rule sup = suppress_rule(r->family, r->priority);

	if (rule_same(r, &want) && st->marks < STALE_MAX)
		st->mark[st->marks++] = *r;
	else if (rule_same(r, &sup) && st->suppresses < STALE_MAX)
		st->suppress[st->suppresses++] = *r;
	return 0;
}

void policy_cleanup(struct device *dev, uint32_t table)
{
	struct stale *st;
	int err;

	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		if (!(err = nft_guard_del(dev->ifname, family)))
			log_error("removed nftables table %s noisetun-%s, left by a dead instance", nft_family(family),
				  dev->ifname);
		else if (err != -ENOENT)
			log_verbose("nftables: cannot look for a stale table %s noisetun-%s: %s", nft_family(family),
				    dev->ifname, strerror(-err));
	}
	if (!table || table_in_use(table) || !(st = malloc(sizeof(*st))))
		return;
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		memset(st, 0, sizeof(*st));
		st->table = table;
		if (rtnl_rule_list(family, stale_cb, st))
			continue;
		for (size_t i = 0; i < st->marks; i++) {
			struct rtnl_rule *m = &st->mark[i];

			if (!rtnl_rule(false, m))
				log_error("removed rule (%s) %u: not fwmark %u table %u, left by a dead instance", family_opt(family),
					  m->priority, m->fwmark, m->table);
			for (size_t j = 0; j < st->suppresses; j++) {
				if (st->suppress[j].priority + 1 != m->priority)
					continue;
				if (!rtnl_rule(false, &st->suppress[j]))
					log_error("removed rule (%s) %u: table main suppress_prefixlength 0, left by a dead instance",
						  family_opt(family), st->suppress[j].priority);
				st->suppress[j].priority = UINT32_MAX; /* once: no rule of ours is at 0 */
				break;
			}
		}
	}
	free(st);
}

/* wg-quick's firewall for the /0 of one family: nftables table noisetun-IFACE (nft.c)
 * with the addresses the interface has now, of any scope, as wg-quick reads them. */
struct guard_addrs {
	int family;
	uint8_t (*addrs)[16];
	size_t count;
	bool too_many;
};

static int guard_addr_cb(void *ctx, int family, const uint8_t *addr, uint8_t len)
{
	struct guard_addrs *g = ctx;

	(void)len;
	if (family != g->family)
		return 0;
	if (g->count == NFT_MAX_ADDRS) {
		g->too_many = true;
		return 0;
	}
	memcpy(g->addrs[g->count++], addr, family_len(family));
	return 0;
}

static int guard_set(struct device *dev, int family, uint32_t fwmark)
{
	struct guard_addrs g = { .family = family };
	int err;

	if (!(g.addrs = calloc(NFT_MAX_ADDRS, sizeof(*g.addrs))))
		return -ENOMEM;
	if (!(err = rtnl_addr_list_all(dev->ifindex, guard_addr_cb, &g)))
		err = g.too_many ? -E2BIG : nft_guard_set(dev->ifname, family, fwmark, (const uint8_t(*)[16])g.addrs, g.count);
	free(g.addrs);
	if (!err)
		log_verbose("nftables table %s noisetun-%s: drop to the %zu address(es) of %s unless from it; "
			    "connmark for fwmark %u", nft_family(family), dev->ifname, g.count, dev->ifname, fwmark);
	return err;
}

static int policy_add(struct device *dev, int family, uint32_t table, char *what, size_t what_size)
{
	static const uint8_t any[16];
	int slot = family_slot(family);
	unsigned *done = &rt.policy[slot];
	const char *v = family_opt(family);
	struct rtnl_rule r;
	int err;

	rt.policy_table = table;
	if ((err = rtnl_route(true, family, any, 0, dev->ifindex, table))) {
		snprintf(what, what_size, "cannot add the default route (%s) to table %u", v, table);
		return err;
	}
	*done |= POLICY_ROUTE;
	if ((err = free_priorities(family, &rt.mark_prio[slot], &rt.suppress_prio[slot]))) {
		snprintf(what, what_size, "cannot choose the priorities of the rules (%s)", v);
		return err;
	}
	r = mark_rule(family, table, rt.mark_prio[slot]);
	if ((err = rtnl_rule(true, &r))) {
		snprintf(what, what_size, "cannot add rule (%s) not fwmark %u table %u", v, table, table);
		return err;
	}
	*done |= POLICY_RULE_MARK;
	r = suppress_rule(family, rt.suppress_prio[slot]);
	if ((err = rtnl_rule(true, &r))) {
		snprintf(what, what_size, "cannot add rule (%s) table main suppress_prefixlength 0", v);
		return err;
	}
	*done |= POLICY_RULE_SUPPRESS;
	log_verbose("full tunnel (%s): default route in table %u, rules %u `not fwmark %u table %u' and "
		    "%u `table main suppress_prefixlength 0'", v, table, rt.mark_prio[slot], table, table,
		    rt.suppress_prio[slot]);
	if ((err = guard_set(dev, family, table))) {
		snprintf(what, what_size, "cannot add nftables table %s noisetun-%s", nft_family(family),
			 dev->ifname);
		return err;
	}
	*done |= POLICY_GUARD;
	if (family == AF_INET) {
		/* Replies to our marked UDP must pass rp_filter: wg-quick sets this too and leaves it. */
		int fd = open("/proc/sys/net/ipv4/conf/all/src_valid_mark", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "1\n", 2) != 2)
			log_error("cannot set net.ipv4.conf.all.src_valid_mark=1: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

/* Bring routes and policy rules in line with cfg: drop ours that cfg no longer wants, then
 * add what is missing, longest prefix first, skipping a prefix that a route on our
 * interface in table main already covers (wg-quick's `ip route show dev X match P`). */
int routes_sync(struct device *dev, const char *ifname, const struct nt_config *cfg, uint32_t policy_table,
		bool stop_on_error, char *what, size_t what_size)
{
	struct route *want;
	size_t want_count;
	char buf[64];
	int err, ret = 0;

	if ((err = wanted_routes(cfg, &want, &want_count)))
		return err;
	for (size_t i = 0; i < rt.routes_count;) {
		struct route *r = &rt.routes[i];
		bool keep = false;
		for (size_t j = 0; j < want_count && !keep; j++)
			keep = route_equal(r, &want[j]);
		if (keep) {
			i++;
			continue;
		}
		rtnl_route(false, r->family, r->addr, r->len, dev->ifindex, r->table);
		log_verbose("removed route %s table %u", fmt_prefix(buf, sizeof(buf), r->family, r->addr, r->len), r->table);
		rt.routes[i] = rt.routes[--rt.routes_count];
	}
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		bool wanted = policy_table && wants_default(cfg, family);
		if (rt.policy[family_slot(family)] && (!wanted || policy_table != rt.policy_table))
			policy_del(dev, ifname, family);
	}
	if (!rt.policy[0] && !rt.policy[1])
		rt.policy_table = 0;

	for (size_t i = 0; i < want_count; i++) {
		struct route *r = &want[i], *grown;
		bool have = false;

		for (size_t j = 0; j < rt.routes_count && !have; j++)
			have = route_equal(r, &rt.routes[j]);
		if (have)
			continue;
		fmt_prefix(buf, sizeof(buf), r->family, r->addr, r->len);
		if (r->table == RT_TABLE_MAIN && cfg->table == NT_TABLE_AUTO &&
		    !rtnl_route_exists(r->family, r->addr, r->len, dev->ifindex, RT_TABLE_MAIN, &have) && have) {
			log_verbose("route %s: already routed through %s", buf, dev->ifname);
			continue;
		}
		if ((err = rtnl_route(true, r->family, r->addr, r->len, dev->ifindex, r->table))) {
			snprintf(what, what_size, "cannot add route %s table %u", buf, r->table);
			if (stop_on_error) {
				ret = err;
				goto out;
			}
			log_error("%s: %s", what, strerror(-err));
			ret = err;
			continue;
		}
		log_verbose("added route %s table %u", buf, r->table);
		if (!(grown = realloc(rt.routes, (rt.routes_count + 1) * sizeof(*grown)))) {
			ret = -ENOMEM;
			goto out;
		}
		rt.routes = grown;
		rt.routes[rt.routes_count++] = *r;
	}
	for (int family = AF_INET; family; family = family == AF_INET ? AF_INET6 : 0) {
		if (rt.policy[family_slot(family)] & POLICY_GUARD) {
			/* a reload: the addresses may have changed; set replaces the table whole */
			if ((err = guard_set(dev, family, rt.policy_table)))
				log_error("cannot update nftables table %s noisetun-%s: %s", nft_family(family),
					  dev->ifname, strerror(-err));
			continue;
		}
		if (!policy_table || !wants_default(cfg, family) || rt.policy[family_slot(family)])
			continue;
		if ((err = policy_add(dev, family, policy_table, what, what_size))) {
			if (stop_on_error) {
				ret = err;
				goto out;
			}
			log_error("%s: %s", what, strerror(-err));
			ret = err;
		}
	}
out:
	free(want);
	return ret;
}

/* ---- down ---- */

/* The full-tunnel rules and firewall, and the routes we added: the kernel takes the
 * routes with the link, but a Table=N route must not outlive us should the link stay. */
void routes_down(struct device *dev, const char *ifname)
{
	policy_del(dev, ifname, AF_INET);
	policy_del(dev, ifname, AF_INET6);
	rt.policy_table = 0;
	for (size_t i = 0; i < rt.routes_count; i++)
		rtnl_route(false, rt.routes[i].family, rt.routes[i].addr, rt.routes[i].len, dev->ifindex, rt.routes[i].table);
	rt.routes_count = 0;
}

/* The addresses up added (SaveConfig's, once the link is gone). */
const struct nt_config_address *routes_addresses(size_t *count)
{
	*count = rt.addrs_count;
	return rt.addrs;
}

void routes_forget(void)
{
	free(rt.routes);
	free(rt.addrs);
	memset(&rt, 0, sizeof(rt));
}
