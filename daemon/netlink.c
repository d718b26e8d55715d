/* Watch our own link over rtnetlink (libmnl): up/down gates the peers, the MTU bounds
 * padding, route changes reset sticky sources, and RTM_DELLINK (`ip link delete`, how wg-quick down stops us) ends the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "noisetund.h"

static struct mnl_socket *nl;

static int attr_cb(const struct nlattr *attr, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(attr);

	if (mnl_attr_type_valid(attr, IFLA_MAX) < 0)
		return MNL_CB_OK;
	if (type == IFLA_MTU && mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
		return MNL_CB_OK;
	tb[type] = attr;
	return MNL_CB_OK;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct device *dev = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *tb[IFLA_MAX + 1] = { 0 };

	if (nlh->nlmsg_type == RTM_NEWROUTE || nlh->nlmsg_type == RTM_DELROUTE) {
		/* A route changed: a cached source may no longer be the one routing would pick
		 * (the kernel re-checks the output device per send). Forget them; routing picks
		 * now, and the peer's next packet teaches us its address again. */
		for (struct peer *p = dev->peers_first; p; p = p->next)
			p->src.set = false;
		return MNL_CB_OK;
	}
	if (ifi->ifi_index != dev->ifindex)
		return MNL_CB_OK;
	if (nlh->nlmsg_type == RTM_DELLINK) {
		log_verbose("interface deleted, exiting");
		dev->stopping = true;
		return MNL_CB_OK;
	}
	if (nlh->nlmsg_type != RTM_NEWLINK)
		return MNL_CB_OK;
	mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, tb);
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
	if (n < 0 || mnl_cb_run(buf, (size_t)n, seq, mnl_socket_get_portid(nl), link_cb, dev) < 0)
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

void link_monitor_event(struct device *dev)
{
	char buf[8192]; /* MNL_SOCKET_BUFFER_SIZE is at most 8192 */

	for (;;) {
		ssize_t n = recv(dev->netlink, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS)
				continue; /* we missed events; the next ones still tell the state */
			return;
		}
		mnl_cb_run(buf, (size_t)n, 0, 0, link_cb, dev);
	}
}
