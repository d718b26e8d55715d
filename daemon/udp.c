/* The UDP sockets: one IPv4 and one IPv6 (V6ONLY) on the same port, so both families
 * work whatever net.ipv6.bindv6only says. A rebind builds the new pair first and swaps
 * only on success, so a port in use changes nothing. */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "noisetund.h"
#include "privsep.h"

#define SOCKET_BUFFER (7 << 20)

static int udp_socket(int family, uint16_t port, uint32_t fwmark)
{
	union nt_endpoint ep = { 0 };
	int fd, one = 1, size = SOCKET_BUFFER, err;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	/* Big buffers keep bursts from being dropped; the FORCE variants pass rmem_max when
	 * we hold CAP_NET_ADMIN, the plain ones are the fallback. Neither is fatal. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)!setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)!setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (fwmark && setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0)
		goto fail;
	/* GRO: the kernel may hand us runs of same-sized datagrams as one (speed.md 5). The
	 * receive path splits at the size it reports; without GRO it never reports one. */
	(void)!setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
	/* Learn which local address each datagram reached, to reply from it. */
	if (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0
			      : setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
		goto fail;
	ep.sa.sa_family = (sa_family_t)family;
	if (family == AF_INET)
		ep.in4.sin_port = htons(port);
	else
		ep.in6.sin6_port = htons(port);
	if (bind(fd, &ep.sa, endpoint_len(&ep)) < 0)
		goto fail;
	return fd;
fail:
	err = -errno;
	close(fd);
	return err;
}

static uint16_t bound_port(int fd)
{
	union nt_endpoint ep;
	socklen_t len = sizeof(ep);

	if (getsockname(fd, &ep.sa, &len) < 0)
		return 0;
	return ntohs(ep.sa.sa_family == AF_INET ? ep.in4.sin_port : ep.in6.sin6_port);
}

static int epoll_swap(struct device *dev, int old_fd, int new_fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	if (old_fd >= 0) {
		epoll_ctl(dev->epoll, EPOLL_CTL_DEL, old_fd, NULL);
		close(old_fd);
	}
	if (new_fd >= 0 && epoll_ctl(dev->epoll, EPOLL_CTL_ADD, new_fd, &ev) < 0)
		return -errno;
	return 0;
}

int udp_open_pair(uint16_t port, uint32_t fwmark, int *v4_out, int *v6_out)
{
	int v4 = -1, v6 = -1;

	/* With port 0 the kernel picks for IPv4; IPv6 must then get the same port, which
	 * another program may hold: try a few times. */
	for (int attempt = 0; attempt < 10; attempt++) {
		v4 = udp_socket(AF_INET, port, fwmark);
		if (v4 < 0)
			return v4;
		v6 = udp_socket(AF_INET6, bound_port(v4), fwmark);
		if (v6 >= 0 || v6 == -EAFNOSUPPORT)
			break;
		close(v4);
		v4 = -1;
		if (port || v6 != -EADDRINUSE)
			return v6;
	}
	if (v4 < 0)
		return -EADDRINUSE;
	*v4_out = v4;
	*v6_out = v6 >= 0 ? v6 : -1;
	return 0;
}

int udp_bind(struct device *dev, uint16_t port)
{
	int v4 = -1, v6 = -1, err;

	/* The worker holds no capability: the monitor opens, marks and binds for it. */
	err = dev->role == ROLE_WORKER ? privsep_udp_open(port, dev->fwmark, &v4, &v6)
				  : udp_open_pair(port, dev->fwmark, &v4, &v6);
	if (err)
		return err;
	dev->listen_port = bound_port(v4);
	{
		/* GSO on send (speed.md 4): probe; a send failing with EIO turns it off later. */
		int size = 0;
		socklen_t len = sizeof(size);
		const char *env = getenv("NOISETUN_OFFLOAD");
		dev->udp_gso = getsockopt(v4, IPPROTO_UDP, UDP_SEGMENT, &size, &len) == 0 && !(env && !strcmp(env, "0"));
	}
	if (epoll_swap(dev, dev->udp4, v4, 2) < 0 || epoll_swap(dev, dev->udp6, v6 >= 0 ? v6 : -1, 3) < 0) {
		dev->udp4 = v4;
		dev->udp6 = v6 >= 0 ? v6 : -1;
		return -errno;
	}
	dev->udp4 = v4;
	dev->udp6 = v6 >= 0 ? v6 : -1;
	log_verbose("listening on UDP port %u", dev->listen_port);
	return 0;
}

void udp_close(struct device *dev)
{
	if (dev->udp4 >= 0)
		close(dev->udp4);
	if (dev->udp6 >= 0)
		close(dev->udp6);
	dev->udp4 = dev->udp6 = -1;
}

int udp_set_fwmark(struct device *dev, uint32_t mark)
{
	int fds[2] = { dev->udp4, dev->udp6 }, err;

	if (dev->role == ROLE_WORKER) { /* SO_MARK needs CAP_NET_ADMIN: the monitor's */
		if ((err = privsep_udp_mark(fds[0], fds[1], mark)))
			return err;
		dev->fwmark = mark;
		return 0;
	}
	for (int i = 0; i < 2; i++)
		if (fds[i] >= 0 && setsockopt(fds[i], SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0)
			return -errno;
	dev->fwmark = mark;
	return 0;
}

size_t udp_cmsg(void *buf, int family, const struct nt_endpoint_src *src, uint16_t gso_size)
{
	struct msghdr m = { .msg_control = buf, .msg_controllen = UDP_CMSG_SPACE };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	size_t used = 0;

	memset(buf, 0, UDP_CMSG_SPACE);
	if (src && src->set) {
		if (family == AF_INET) {
			struct in_pktinfo pi = { .ipi_spec_dst = src->v4 };
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			used += CMSG_SPACE(sizeof(pi));
		} else {
			struct in6_pktinfo pi = { .ipi6_addr = src->v6, .ipi6_ifindex = (unsigned)src->ifindex };
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			used += CMSG_SPACE(sizeof(pi));
		}
		c = (struct cmsghdr *)((char *)buf + used);
	}
	if (gso_size) {
		c->cmsg_level = IPPROTO_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(gso_size));
		memcpy(CMSG_DATA(c), &gso_size, sizeof(gso_size));
		used += CMSG_SPACE(sizeof(gso_size));
	}
	return used;
}

void udp_cmsg_src(struct msghdr *msg, struct nt_endpoint_src *src)
{
	memset(src, 0, sizeof(*src));
	for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			src->v4 = pi.ipi_addr;
			src->ifindex = pi.ipi_ifindex;
			src->set = true;
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;
			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			src->v6 = pi.ipi6_addr;
			/* the interface matters only where the address is link-scoped */
			src->ifindex = IN6_IS_ADDR_LINKLOCAL(&pi.ipi6_addr) ? (int)pi.ipi6_ifindex : 0;
			src->set = true;
		}
	}
}

int udp_send(struct device *dev, const union nt_endpoint *to, struct nt_endpoint_src *src, const void *buf, size_t len)
{
	int fd = to->sa.sa_family == AF_INET6 ? dev->udp6 : to->sa.sa_family == AF_INET ? dev->udp4 : -1;
	union {
		char buf[UDP_CMSG_SPACE];
		struct cmsghdr align;
	} ctrl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr m = { .msg_name = (void *)to, .msg_namelen = endpoint_len(to), .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = ctrl.buf };

	if (fd < 0)
		return -EAFNOSUPPORT;
	m.msg_controllen = udp_cmsg(ctrl.buf, to->sa.sa_family, src, 0);
	if (!m.msg_controllen)
		m.msg_control = NULL;
	if (sendmsg(fd, &m, 0) >= 0)
		return 0;
	/* Our address went away (EINVAL) or is not usable: forget it and let routing choose. */
	if (src && src->set && (errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENETUNREACH)) {
		src->set = false;
		m.msg_control = NULL;
		m.msg_controllen = 0;
		if (sendmsg(fd, &m, 0) >= 0)
			return 0;
	}
	return -errno;
}
