/* The worker's sandbox: see sandbox.h and privsep.c. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox.h"

#define KEPT_CAPS ((1u << CAP_NET_ADMIN) | (1u << CAP_NET_BIND_SERVICE))

_Static_assert(CAP_NET_ADMIN < 32 && CAP_NET_BIND_SERVICE < 32, "both in the first capability word");

/* Everything outside CAP_NET_ADMIN and CAP_NET_BIND_SERVICE leaves the bounding set, so
 * not even an execve of a file with capabilities could bring it back. */
static int drop_bounding_set(void)
{
	for (unsigned long cap = 0; cap < 64; cap++) {
		int in;

		if (cap < 32 && (KEPT_CAPS & (1u << cap)))
			continue;
		if ((in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) < 0)
			return errno == EINVAL ? 0 : -errno; /* EINVAL: past the last capability */
		if (in && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

/* Permitted and effective: the two capabilities; inheritable: none. Read back to check. */
static int set_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { .effective = KEPT_CAPS, .permitted = KEPT_CAPS } };

	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	memset(data, 0xff, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	if (data[0].effective != KEPT_CAPS || data[0].permitted != KEPT_CAPS || data[0].inheritable ||
	    data[1].effective || data[1].permitted || data[1].inheritable)
		return -EPERM;
	return 0;
}

int sandbox_drop_user(const struct sandbox *sb, const char **what)
{
	int err;

	*what = "cannot clear the capability bounding set";
	if ((err = drop_bounding_set()))
		return err;
	*what = "cannot clear the ambient capabilities";
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return -errno;
	*what = "cannot keep capabilities across setuid";
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return -errno;
	*what = "cannot switch user";
	if (setgroups(0, NULL) < 0 || setresgid(sb->gid, sb->gid, sb->gid) < 0 || setresuid(sb->uid, sb->uid, sb->uid) < 0)
		return -errno;
	*what = "cannot set the capabilities to CAP_NET_ADMIN and CAP_NET_BIND_SERVICE";
	if ((err = set_capabilities()))
		return err;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return -errno;
	/* A process that can become root again has not dropped root. */
	*what = "root could be regained after the drop";
	if (setresuid(0, 0, 0) == 0 || setresgid(0, 0, 0) == 0)
		return -EPERM;
	*what = "cannot set no_new_privs";
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}

int sandbox_park_fd(int fd)
{
	struct rlimit rl;
	int high;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur > SANDBOX_MAX_FDS)
		rl.rlim_cur = SANDBOX_MAX_FDS;
	if (rl.rlim_cur < 16)
		return -EMFILE;
	high = (int)rl.rlim_cur - 1;
	if (fd != high) {
		int moved = fcntl(fd, F_DUPFD_CLOEXEC, high);
		if (moved < 0)
			return -errno;
		if (moved != high) { /* cannot happen once the limit is lowered; check anyway */
			close(moved);
			return -EMFILE;
		}
		close(fd);
	}
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	return high;
}

/* Exactly what the worker's event loop calls (strace -f -c over tests/net), plus what
 * glibc and libsodium may need on the way: allocation, randomness, clocks, exit. Calls
 * that could reach the kernel's network configuration are in the tables below, with
 * their arguments checked. */
static const char *const allowed_syscalls[] = {
	/* the loop, TUN, UDP, netlink, timers, signals, inotify, the control socket */
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "read", "readv", "recvmmsg", "recvmsg",
	"recvfrom", "accept4", "close", "getsockname", "timerfd_settime", "timerfd_gettime",
	/* memory (sodium_malloc: mmap, mprotect, mlock, madvise), randomness, time */
	"mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "mremap", "brk", "getrandom",
	"clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep", "futex",
	/* stdio on stderr and the SaveConfig memfd; glibc's qsort asks sysinfo for the RAM size */
	"fstat", "newfstatat", "lseek", "sysinfo",
	/* process */
	"getpid", "gettid", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "exit", "exit_group",
};

/* Allowed on any fd below the rtnetlink socket, parked on the highest number the worker
 * may hold (sandbox_park_fd): with CAP_NET_ADMIN, a message sent there changes any
 * interface, address or route of the namespace, and the worker only reads it. That rules
 * out a dup of it too (dup, fcntl F_DUPFD); no other fd-duplicating call and no
 * setrlimit are allowed. One unsigned 64-bit compare: a number with bits set above 32,
 * which the kernel would read as the low 32, is refused as well. */
static const char *const below_netlink[] = {
	"write", "writev", "sendmmsg", "sendmsg", "sendto", "bind", "dup", "fcntl",
};

/* The only socket options the worker sets (udp.c) and reads (uapi.c, udp.c). With
 * CAP_NET_ADMIN, other options on a mere UDP socket reach netfilter (IPT_SO_SET_REPLACE,
 * IP_VS), ipset and IPsec policies. */
static const struct sockopt {
	int level, name;
	bool set;
} sockopts[] = {
	{ SOL_SOCKET, SO_RCVBUFFORCE, true }, { SOL_SOCKET, SO_RCVBUF, true },
	{ SOL_SOCKET, SO_SNDBUFFORCE, true }, { SOL_SOCKET, SO_SNDBUF, true },
	{ SOL_SOCKET, SO_MARK, true },        { IPPROTO_IP, IP_PKTINFO, true },
	{ IPPROTO_IPV6, IPV6_V6ONLY, true },  { IPPROTO_IPV6, IPV6_RECVPKTINFO, true },
	{ IPPROTO_UDP, UDP_GRO, true },       { SOL_SOCKET, SO_PEERCRED, false },
	{ SOL_SOCKET, SO_PEERGROUPS, false }, { IPPROTO_UDP, UDP_SEGMENT, false },
};

int sandbox_filter(const struct sandbox *sb)
{
	static const int families[] = { AF_INET, AF_INET6 };
	const scmp_datum_t type_mask = ~(scmp_datum_t)(SOCK_NONBLOCK | SOCK_CLOEXEC);
	scmp_filter_ctx ctx = seccomp_init(sb->log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	int err = 0;

	if (!ctx)
		return -ENOMEM;
	/* A binary tree, not a chain of ~50 compares, on every syscall of the data path. */
	err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < sizeof(allowed_syscalls) / sizeof(allowed_syscalls[0]) && !err; i++) {
		int nr = seccomp_syscall_resolve_name(allowed_syscalls[i]);
		if (nr != __NR_SCMP_ERROR) /* a name this architecture lacks (epoll_wait on arm64) */
			err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	}
	for (size_t i = 0; i < sizeof(below_netlink) / sizeof(below_netlink[0]) && !err; i++) {
		int nr = seccomp_syscall_resolve_name(below_netlink[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		if (sb->netlink_fd < 0)
			err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		else
			err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
					       SCMP_A0(SCMP_CMP_LT, (scmp_datum_t)sb->netlink_fd));
	}
	for (size_t i = 0; i < sizeof(sockopts) / sizeof(sockopts[0]) && !err; i++)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sockopts[i].set ? SCMP_SYS(setsockopt) : SCMP_SYS(getsockopt),
				       2, SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)sockopts[i].level),
				       SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)sockopts[i].name));
	/* New UDP sockets on a listen-port change; nothing else may be opened: no netlink
	 * (netfilter, xfrm, a second rtnetlink), raw, packet, TCP or UNIX socket. */
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]) && !err; i++)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 3,
				       SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]),
				       SCMP_A1(SCMP_CMP_MASKED_EQ, type_mask, (scmp_datum_t)SOCK_DGRAM), SCMP_A2(SCMP_CMP_EQ, 0));
	if (!err)
		err = seccomp_load(ctx);
	seccomp_release(ctx);
	return err;
}
