/* nftables over nfnetlink (libnftnl + libmnl): the guard wg-quick puts around a full
 * tunnel (its add_default, with `nft -f`), built as the same kernel expressions:
 *
 *   table FAMILY noisetun-IFACE {
 *     chain preraw     { type filter hook prerouting priority raw;
 *                        iifname != "IFACE" FAMILY daddr ADDR fib saddr type != local drop }
 *                                                   (one rule per address of IFACE)
 *     chain premangle  { type filter hook prerouting priority mangle;
 *                        meta l4proto udp meta mark set ct mark }
 *     chain postmangle { type filter hook postrouting priority mangle;
 *                        meta l4proto udp meta mark FWMARK ct mark set meta mark }
 *   }
 *
 * preraw: a host on the LAN must not reach the tunnel's address through the outer link
 * (the /0 trick makes the kernel accept it there). The mangle pair keeps the fwmark on the
 * replies of the tunnel's own UDP, so they match the rules as the sent packets did.
 *
 * The table is named noisetun-IFACE, not wg-quick-IFACE: it is ours alone, so a start after
 * a crash may delete it by name, and neither tool removes or extends the other's.
 *
 * Each change is one nfnetlink batch (one transaction: all or nothing), every message
 * acked; the kernel handles the batch inside sendmsg, so the acks are queued when it
 * returns. One short-lived socket per change; 0 or a negative errno. */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h> /* before the linux/ headers, which would bring linux/in.h */
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "noisetund.h"
#include "nft.h"

#define NFT_TABLE_PREFIX "noisetun-"
#define NFT_MSG_ROOM     1024   /* the largest message here (an IPv6 preraw rule) is < 300 */
#define NFT_PRIO_RAW     (-300) /* NF_IP_PRI_RAW, nft's "raw" */
#define NFT_PRIO_MANGLE  (-150) /* NF_IP_PRI_MANGLE, nft's "mangle" */

struct batch {
	char *buf;
	size_t size;
	struct mnl_nlmsg_batch *b;
	uint32_t seq;
	unsigned acks;                  /* messages that asked for one */
	bool full;
};

static int batch_init(struct batch *bt, size_t messages)
{
	memset(bt, 0, sizeof(*bt));
	bt->size = (messages + 2) * NFT_MSG_ROOM;
	/* libmnl wants room for one message past the limit */
	if (!(bt->buf = calloc(1, bt->size + NFT_MSG_ROOM)))
		return -ENOMEM;
	if (!(bt->b = mnl_nlmsg_batch_start(bt->buf, bt->size))) {
		free(bt->buf);
		return -ENOMEM;
	}
	bt->seq = (uint32_t)time(NULL);
	nftnl_batch_begin(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	mnl_nlmsg_batch_next(bt->b);
	return 0;
}

static void batch_free(struct batch *bt)
{
	if (bt->b)
		mnl_nlmsg_batch_stop(bt->b);
	free(bt->buf);
}

static struct nlmsghdr *batch_msg(struct batch *bt, uint16_t type, int family, uint16_t flags)
{
	bt->acks++;
	return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(bt->b), type, (uint16_t)family, flags | NLM_F_ACK,
				     bt->seq++);
}

static void batch_next(struct batch *bt)
{
	if (!mnl_nlmsg_batch_next(bt->b))
		bt->full = true;
}

/* Send the batch, then read one ack per message (or the first error). */
static int batch_send(struct batch *bt)
{
	static char rbuf[16384]; /* an ack, or an error quoting one message */
	struct timeval tv = { .tv_sec = 2 };
	struct mnl_socket *nl;
	unsigned portid, got = 0;
	int err = 0, flags = 0;

	if (bt->full)
		return -E2BIG;
	nftnl_batch_end(mnl_nlmsg_batch_current(bt->b), bt->seq++);
	mnl_nlmsg_batch_next(bt->b);
	if (!(nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC)))
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0 ||
	    setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		goto fail;
	portid = mnl_socket_get_portid(nl);
	if (mnl_socket_sendto(nl, mnl_nlmsg_batch_head(bt->b), mnl_nlmsg_batch_size(bt->b)) < 0)
		goto fail;
	/* After an error the batch is void: take what is queued, do not wait for more. */
	while (got < bt->acks) {
		ssize_t n = recv(mnl_socket_get_fd(nl), rbuf, sizeof(rbuf), flags);
		int len;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && err && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0)
			goto fail;
		len = (int)n;
		for (const struct nlmsghdr *nlh = (const void *)rbuf; mnl_nlmsg_ok(nlh, len);
		     nlh = mnl_nlmsg_next(nlh, &len)) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

			if (nlh->nlmsg_pid != portid || nlh->nlmsg_type != NLMSG_ERROR ||
			    mnl_nlmsg_get_payload_len(nlh) < sizeof(*e))
				continue;
			got++;
			if (e->error && !err) {
				err = e->error < 0 ? e->error : -EPROTO;
				flags = MSG_DONTWAIT;
			}
		}
	}
	mnl_socket_close(nl);
	return err;
fail:
	err = errno ? -errno : -EIO;
	mnl_socket_close(nl);
	return err;
}

static int table_name(char *buf, size_t size, const char *ifname)
{
	return (size_t)snprintf(buf, size, NFT_TABLE_PREFIX "%s", ifname) < size ? 0 : -ENAMETOOLONG;
}

static int nf_family(int family)
{
	return family == AF_INET6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
}

static int put_table(struct batch *bt, uint16_t type, int nfproto, const char *name)
{
	struct nftnl_table *t = nftnl_table_alloc();

	/* the _set_str calls copy the string: they can fail */
	if (!t || nftnl_table_set_str(t, NFTNL_TABLE_NAME, name) < 0) {
		if (t) /* the _free calls take no NULL */
			nftnl_table_free(t);
		return -ENOMEM;
	}
	nftnl_table_set_u32(t, NFTNL_TABLE_FAMILY, (uint32_t)nfproto);
	nftnl_table_nlmsg_build_payload(batch_msg(bt, type, nfproto, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0), t);
	nftnl_table_free(t);
	batch_next(bt);
	return 0;
}

static int put_chain(struct batch *bt, int nfproto, const char *table, const char *name, uint32_t hook, int prio)
{
	struct nftnl_chain *c = nftnl_chain_alloc();

	if (!c || nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, table) < 0 || nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name) < 0 ||
	    nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, "filter") < 0) {
		if (c)
			nftnl_chain_free(c);
		return -ENOMEM;
	}
	nftnl_chain_set_u32(c, NFTNL_CHAIN_FAMILY, (uint32_t)nfproto);
	nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
	nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
	nftnl_chain_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWCHAIN, nfproto, NLM_F_CREATE), c);
	nftnl_chain_free(c);
	batch_next(bt);
	return 0;
}

/* Expression builders: each adds to r, false when out of memory. */
static bool add_expr(struct nftnl_rule *r, struct nftnl_expr *e)
{
	if (!e)
		return false;
	nftnl_rule_add_expr(r, e);
	return true;
}

static bool e_meta_load(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static bool e_meta_store(struct nftnl_rule *r, uint32_t key)
{
	struct nftnl_expr *e = nftnl_expr_alloc("meta");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
		nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static bool e_ct_mark(struct nftnl_rule *r, bool store)
{
	struct nftnl_expr *e = nftnl_expr_alloc("ct");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
		nftnl_expr_set_u32(e, store ? NFTNL_EXPR_CT_SREG : NFTNL_EXPR_CT_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static bool e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("cmp");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
		nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
		if (nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len) < 0) {
			nftnl_expr_free(e);
			return false;
		}
	}
	return add_expr(r, e);
}

static bool e_payload_network(struct nftnl_rule *r, uint32_t offset, uint32_t len)
{
	struct nftnl_expr *e = nftnl_expr_alloc("payload");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, offset);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
		nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static bool e_fib_saddr_type(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("fib");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_SADDR);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
		nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
	}
	return add_expr(r, e);
}

static bool e_drop(struct nftnl_rule *r)
{
	struct nftnl_expr *e = nftnl_expr_alloc("immediate");

	if (e) {
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
		nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_VERDICT, NF_DROP);
	}
	return add_expr(r, e);
}

enum rule_kind { RULE_PRERAW, RULE_PREMANGLE, RULE_POSTMANGLE };

static int put_rule(struct batch *bt, int family, const char *table, enum rule_kind kind, const char *ifname,
		    const uint8_t *addr, uint32_t fwmark)
{
	static const char *chains[] = { "preraw", "premangle", "postmangle" };
	int nfproto = nf_family(family);
	struct nftnl_rule *r = nftnl_rule_alloc();
	const uint8_t udp = IPPROTO_UDP;
	const uint32_t local = RTN_LOCAL;
	char name[IFNAMSIZ] = { 0 };
	bool ok;

	if (!r || nftnl_rule_set_str(r, NFTNL_RULE_TABLE, table) < 0 || nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chains[kind]) < 0) {
		if (r)
			nftnl_rule_free(r);
		return -ENOMEM;
	}
	nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, (uint32_t)nfproto);
	switch (kind) {
	case RULE_PRERAW:
		/* iifname != "IFACE" daddr ADDR fib saddr type != local drop */
		snprintf(name, sizeof(name), "%s", ifname);
		ok = e_meta_load(r, NFT_META_IIFNAME) && e_cmp(r, NFT_CMP_NEQ, name, sizeof(name)) &&
		     (family == AF_INET6 ? e_payload_network(r, 24, 16) : e_payload_network(r, 16, 4)) &&
		     e_cmp(r, NFT_CMP_EQ, addr, family == AF_INET6 ? 16 : 4) && e_fib_saddr_type(r) &&
		     e_cmp(r, NFT_CMP_NEQ, &local, sizeof(local)) && e_drop(r);
		break;
	case RULE_PREMANGLE:
		/* meta l4proto udp meta mark set ct mark */
		ok = e_meta_load(r, NFT_META_L4PROTO) && e_cmp(r, NFT_CMP_EQ, &udp, 1) && e_ct_mark(r, false) &&
		     e_meta_store(r, NFT_META_MARK);
		break;
	default:
		/* meta l4proto udp meta mark FWMARK ct mark set meta mark */
		ok = e_meta_load(r, NFT_META_L4PROTO) && e_cmp(r, NFT_CMP_EQ, &udp, 1) &&
		     e_meta_load(r, NFT_META_MARK) && e_cmp(r, NFT_CMP_EQ, &fwmark, sizeof(fwmark)) &&
		     e_meta_load(r, NFT_META_MARK) && e_ct_mark(r, true);
		break;
	}
	if (ok) {
		nftnl_rule_nlmsg_build_payload(batch_msg(bt, NFT_MSG_NEWRULE, nfproto, NLM_F_APPEND | NLM_F_CREATE), r);
		batch_next(bt);
	}
	nftnl_rule_free(r);
	return ok ? 0 : -ENOMEM;
}

int nft_guard_set(const char *ifname, int family, uint32_t fwmark, const uint8_t (*addrs)[16], size_t count)
{
	char table[IFNAMSIZ + sizeof(NFT_TABLE_PREFIX)];
	int nfproto = nf_family(family), err;
	struct batch bt;

	if (count > NFT_MAX_ADDRS)
		return -E2BIG;
	if ((err = table_name(table, sizeof(table), ifname)) || (err = batch_init(&bt, count + 9)))
		return err;
	/* `add table; delete table; add table ...`: one transaction that replaces whatever
	 * was there (a crashed instance's table) with exactly this. */
	if (!(err = put_table(&bt, NFT_MSG_NEWTABLE, nfproto, table)) &&
	    !(err = put_table(&bt, NFT_MSG_DELTABLE, nfproto, table)) &&
	    !(err = put_table(&bt, NFT_MSG_NEWTABLE, nfproto, table)) &&
	    !(err = put_chain(&bt, nfproto, table, "preraw", NF_INET_PRE_ROUTING, NFT_PRIO_RAW)) &&
	    !(err = put_chain(&bt, nfproto, table, "premangle", NF_INET_PRE_ROUTING, NFT_PRIO_MANGLE)) &&
	    !(err = put_chain(&bt, nfproto, table, "postmangle", NF_INET_POST_ROUTING, NFT_PRIO_MANGLE))) {
		for (size_t i = 0; i < count && !err; i++)
			err = put_rule(&bt, family, table, RULE_PRERAW, ifname, addrs[i], 0);
		if (!err)
			err = put_rule(&bt, family, table, RULE_POSTMANGLE, ifname, NULL, fwmark);
		if (!err)
			err = put_rule(&bt, family, table, RULE_PREMANGLE, ifname, NULL, 0);
	}
	if (!err)
		err = batch_send(&bt);
	batch_free(&bt);
	return err;
}

int nft_guard_del(const char *ifname, int family)
{
	char table[IFNAMSIZ + sizeof(NFT_TABLE_PREFIX)];
	struct batch bt;
	int err;

	if ((err = table_name(table, sizeof(table), ifname)) || (err = batch_init(&bt, 1)))
		return err;
	if (!(err = put_table(&bt, NFT_MSG_DELTABLE, nf_family(family), table)))
		err = batch_send(&bt);
	batch_free(&bt);
	return err;
}
