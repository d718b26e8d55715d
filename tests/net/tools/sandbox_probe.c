/* sandbox_probe UID GID IFINDEX OP...: for each OP, a child opens what the worker holds
 * when it drops (an rtnetlink socket bound to the link groups, a UDP socket), enters the
 * daemon's own sandbox (daemon/sandbox.c: the same user switch, capabilities and seccomp
 * filter), then tries OP, as a subverted worker would. One line per OP:
 *   OP: ok | OP: errno NAME | OP: killed SIGNAME
 * OPs: netfilter, xfrm, rtnl (new netlink sockets), raw, packet, tcp, unix, udp (sockets
 * the worker no longer opens: the monitor does), addr (RTM_NEWADDR 10.254.0.1/32 on
 * IFINDEX over the kept rtnetlink socket), addr-dup (the same over a dup of it), addr-hi
 * (its fd number with bits set above 32), ipt (an iptables table replacement, setsockopt
 * on the UDP socket), mark (SO_MARK on it), and what the worker must still do: nlrecv
 * (read the rtnetlink socket). caps-OP tries OP with the user and capabilities of the
 * sandbox but without its seccomp filter: what the kernel itself refuses. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

#ifndef NETLINK_NETFILTER
#define NETLINK_NETFILTER 12
#endif
#define IPT_SO_SET_REPLACE 64
#define ETH_P_ALL_BE       0x0300

static int ifindex;

/* 0 when the kernel took the request (its ack says 0), else -errno. */
static int add_address(int fd, int mode)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		struct rtattr rta;
		struct in_addr addr;
	} req = { .nh = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_NEWADDR,
			  .nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, .nlmsg_seq = 1 },
		  .ifa = { .ifa_family = AF_INET, .ifa_prefixlen = 32, .ifa_index = (unsigned)ifindex },
		  .rta = { .rta_len = RTA_LENGTH(sizeof(struct in_addr)), .rta_type = IFA_LOCAL } };
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char buf[8192];
	long n;

	inet_pton(AF_INET, "10.254.0.1", &req.addr);
	if (mode == 1 && (fd = dup(fd)) < 0)
		return -errno;
	n = syscall(SYS_sendto, mode == 2 ? (long)fd | (1L << 32) : (long)fd, &req, sizeof(req), 0L, &kernel,
		    (long)sizeof(kernel));
	if (n < 0)
		return -errno;
	/* The ack, past any link event queued on the socket meanwhile. */
	for (;;) {
		struct nlmsghdr *nh = (struct nlmsghdr *)buf;
		if ((n = recv(fd, buf, sizeof(buf), 0)) < 0)
			return -errno;
		for (; NLMSG_OK(nh, (unsigned)n); nh = NLMSG_NEXT(nh, n))
			if (nh->nlmsg_type == NLMSG_ERROR && nh->nlmsg_seq == 1)
				return ((struct nlmsgerr *)NLMSG_DATA(nh))->error;
	}
}

static int try(const char *op, int nl, int udp)
{
	int fd = -1, mark = 1;
	char buf[512] = { 0 };

	if (!strcmp(op, "netfilter"))
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	else if (!strcmp(op, "xfrm"))
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_XFRM);
	else if (!strcmp(op, "rtnl"))
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	else if (!strcmp(op, "raw"))
		fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP);
	else if (!strcmp(op, "packet"))
		fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, ETH_P_ALL_BE);
	else if (!strcmp(op, "tcp"))
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	else if (!strcmp(op, "unix"))
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	else if (!strcmp(op, "addr"))
		return add_address(nl, 0);
	else if (!strcmp(op, "addr-dup"))
		return add_address(nl, 1);
	else if (!strcmp(op, "addr-hi"))
		return add_address(nl, 2);
	else if (!strcmp(op, "ipt"))
		return setsockopt(udp, IPPROTO_IP, IPT_SO_SET_REPLACE, buf, sizeof(buf)) < 0 ? -errno : 0;
	else if (!strcmp(op, "mark"))
		return setsockopt(udp, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0 ? -errno : 0;
	else if (!strcmp(op, "nlrecv"))
		return recv(nl, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno != EAGAIN ? -errno : 0;
	else if (!strcmp(op, "udp")) {
		struct sockaddr_in any = { .sin_family = AF_INET };
		if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) >= 0 &&
		    bind(fd, (struct sockaddr *)&any, sizeof(any)) < 0)
			return -errno;
	} else {
		fprintf(stderr, "sandbox_probe: unknown op %s\n", op);
		exit(2);
	}
	return fd < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: sandbox_probe UID GID IFINDEX OP...\n");
		return 2;
	}
	ifindex = atoi(argv[3]);
	for (int i = 4; i < argc; i++) {
		int status, pipefd[2], err = 0;
		bool nofilter = !strncmp(argv[i], "caps-", 5);
		pid_t pid;

		if (pipe(pipefd) < 0 || (pid = fork()) < 0) {
			perror("sandbox_probe");
			return 1;
		}
		if (pid == 0) {
			struct sockaddr_nl groups = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
			struct sandbox sb = { .uid = (uid_t)atol(argv[1]), .gid = (gid_t)atol(argv[2]) };
			const char *what = "socket";
			int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

			close(pipefd[0]);
			sb.netlink_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
			if (udp < 0 || sb.netlink_fd < 0 ||
			    bind(sb.netlink_fd, (struct sockaddr *)&groups, sizeof(groups)) < 0 ||
			    (what = "park", (sb.netlink_fd = sandbox_park_fd(sb.netlink_fd)) < 0 && (err = sb.netlink_fd)) ||
			    (err = sandbox_drop_user(&sb, &what)) ||
			    (!nofilter && (what = "seccomp", err = sandbox_filter(&sb)))) {
				fprintf(stderr, "sandbox_probe: %s: %s\n", what, strerror(err ? -err : errno));
				_exit(2);
			}
			err = try(nofilter ? argv[i] + 5 : argv[i], sb.netlink_fd, udp);
			if (write(pipefd[1], &err, sizeof(err)) != sizeof(err))
				_exit(3);
			_exit(0);
		}
		close(pipefd[1]);
		if (read(pipefd[0], &err, sizeof(err)) != sizeof(err))
			err = 1; /* no answer: it died first */
		close(pipefd[0]);
		while (waitpid(pid, &status, 0) < 0)
			if (errno != EINTR)
				return 1;
		if (WIFSIGNALED(status))
			printf("%s: killed SIG%s\n", argv[i], sigabbrev_np(WTERMSIG(status)));
		else if (WEXITSTATUS(status))
			return WEXITSTATUS(status);
		else if (err)
			printf("%s: errno %s\n", argv[i], strerrorname_np(-err));
		else
			printf("%s: ok\n", argv[i]);
	}
	return 0;
}
