/* Watch our own link over rtnetlink (libmnl): up/down gates the peers, the MTU bounds
 * padding, route changes reset sticky sources, and RTM_DELLINK (`ip link delete`, how
 * wg-quick down stops us) ends the daemon.
 *
 * The link may also move to another network namespace (`ip link set wg0 netns NAME`, as
 * with kernel WireGuard: the UDP sockets stay here, the tunnel serves the container).
 * The kernel then sends an RTM_DELLINK here too, but one that carries IFLA_NEW_NETNSID
 * (and IFLA_NEW_IFINDEX): the TUN fd stays valid, so we keep running. With
 * NETLINK_LISTEN_ALL_NSID (set while we are root) the socket also hears the namespaces
 * this one has an id for, each message tagged with that id; the move gives the new
 * namespace one, so we follow the link there: (nsid, ifindex) names it from then on.
 * Without that, or once it moves on again (the next id is relative to the namespace it
 * left), we no longer see it, and take it as up: a TUN fd whose link is down just
 * passes no packets. */
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "noisetund.h"
#include "handover.h"

#ifndef NETLINK_LISTEN_ALL_NSID
#define NETLINK_LISTEN_ALL_NSID 8
#endif

#define NSID_HERE INT_MIN               /* a message from our own namespace */
#define NSID_LOST (INT_MIN + 1)         /* the link is where we cannot follow */

static struct mnl_socket *nl;
static bool all_nsid;                   /* NETLINK_LISTEN_ALL_NSID is on */
static int link_nsid = NSID_HERE;       /* where the link is, as our namespace names it */

struct link_ctx {
	struct device *dev;
	int nsid;                       /* of the message: NSID_HERE or the peer's id */
};

static int attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, IFLA_MAX) < 0)
		return MNL_CB_OK;
	if ((type == IFLA_MTU || type == IFLA_NEW_NETNSID || type == IFLA_NEW_IFINDEX) &&
	    mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
		return MNL_CB_OK;
	tb[type] = attr;
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_ctx *ctx = data;
	struct device *dev = ctx->dev;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };

	if (nlh->nlmsg_type == RTM_NEWROUTE || nlh->nlmsg_type == RTM_DELROUTE) {
		if (ctx->nsid != NSID_HERE) /* our UDP sockets route here only */
			return MNL_CB_OK;
		/* A route changed: a cached source may no longer be the one routing would pick
		 * (the kernel re-checks the output device per send). Forget them; routing picks
		 * now, and the peer's next packet teaches us its address again. */
		for (struct peer *p = dev->peers_first; p; p = p->next)
			p->src.set = false;
		return MNL_CB_OK;
	}
	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(*ifi)) || ifi->ifi_index != dev->ifindex || ctx->nsid != link_nsid)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, tb);
	if (nlh->nlmsg_type == RTM_DELLINK) {
		if (!tb[IFLA_NEW_NETNSID]) {
			log_notice("interface deleted, exiting");
			dev->stopping = true;
			return MNL_CB_OK;
		}
		int nsid = (int)mnl_attr_get_u32(tb[IFLA_NEW_NETNSID]);
		if (tb[IFLA_NEW_IFINDEX])
			dev->ifindex = (int)mnl_attr_get_u32(tb[IFLA_NEW_IFINDEX]);
		if (link_nsid == NSID_HERE && all_nsid && nsid >= 0) {
			link_nsid = nsid;
			log_notice("interface moved to the network namespace with id %d (ifindex %d); UDP stays here",
				   nsid, dev->ifindex);
		} else {
			link_nsid = NSID_LOST;
			log_notice("interface moved to another network namespace; UDP stays here, and its link state "
				   "is no longer watched");
			device_set_up(dev, true);
		}
		return MNL_CB_OK;
	}
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	if (tb[IFLA_MTU]) {
		unsigned mtu = mnl_attr_get_u32(tb[IFLA_MTU]);
		if (mtu != dev->mtu && mtu <= MAX_PACKET) {
			log_verbose("MTU is now %u", mtu);
			dev->mtu = mtu;
		}
	}
	device_set_up(dev, (ifi->ifi_flags & IFF_UP) != 0);
	return MNL_CB_OK;
}

int link_monitor_open(struct device *dev)
{
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is at most 8192 */
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 6 };
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	unsigned seq = (unsigned)time(NULL);
	ssize_t n;
	int ret;

	nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	/* Needs CAP_NET_BROADCAST, which we have only now; without it a moved link is not
	 * followed (see above). */
	int on = 1;
	all_nsid = !setsockopt(mnl_socket_get_fd(nl), SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, &on, sizeof(on));
	if (!all_nsid)
		log_verbose("NETLINK_LISTEN_ALL_NSID: %s; a link moved to another namespace is not followed",
			    strerror(errno));

	/* The current state first, synchronously: the link may already be up. */
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = dev->ifindex;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		goto fail;
	/* A request for one link (not a dump) is answered by one RTM_NEWLINK. */
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	struct link_ctx ctx = { .dev = dev, .nsid = NSID_HERE };
	if (n < 0 || mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), link_cb, &ctx) < 0)
		goto fail;

	dev->netlink = mnl_socket_get_fd(nl);
	if (fcntl(dev->netlink, F_SETFL, O_NONBLOCK) < 0 || epoll_ctl(dev->epoll, EPOLL_CTL_ADD, dev->netlink, &ev) < 0)
		goto fail;
	return 0;
fail:
	ret = -errno;
	mnl_socket_close(nl);
	nl = NULL;
	dev->netlink = -1;
	return ret ? ret : -EIO;
}

/* The worker unit's (handover.c): the monitor's socket, read only; the link's state came
 * with it. */
int link_monitor_adopt(struct device *dev, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 6 };
	int on = 0;
	socklen_t len = sizeof(on);

	all_nsid = !getsockopt(fd, SOL_NETLINK, NETLINK_LISTEN_ALL_NSID, &on, &len) && on;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0 || epoll_ctl(dev->epoll, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	dev->netlink = fd;
	return 0;
}

void link_monitor_event(struct device *dev)
{
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is at most 8192 */
	char cbuf[CMSG_SPACE(sizeof(int))];

	for (;;) {
		struct iovec iov = { buf, sizeof(buf) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct link_ctx ctx = { .dev = dev, .nsid = NSID_HERE };
		ssize_t n = recvmsg(dev->netlink, &msg, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == ENOBUFS)
				continue; /* we missed events; the next ones still tell the state */
			return;
		}
		/* From another namespace: its id, as ours names it. */
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
			if (c->cmsg_level == SOL_NETLINK && c->cmsg_type == NETLINK_LISTEN_ALL_NSID &&
			    c->cmsg_len >= CMSG_LEN(sizeof(int)))
				memcpy(&ctx.nsid, CMSG_DATA(c), sizeof(int));
		mnl_cb_run(buf, (size_t)n, 0, 0, link_cb, &ctx);
		if (dev->stopping)
			return;
	}
}
