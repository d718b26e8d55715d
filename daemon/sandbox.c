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

/* Every capability leaves the bounding set, so not even an execve of a file with
 * capabilities could bring one back. */
static int drop_bounding_set(void)
{
	for (unsigned long cap = 0; cap < 64; cap++) {
		int in;

		if ((in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0)) < 0)
			return errno == EINVAL ? 0 : -errno; /* EINVAL: past the last capability */
		if (in && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			return -errno;
	}
	return 0;
}

/* None permitted, effective or inheritable: set, and read back to check. */
static int clear_capabilities(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2] = { { 0 } };

	if (syscall(SYS_capset, &hdr, data) < 0)
		return -errno;
	memset(data, 0xff, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
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
	*what = "cannot switch user";
	if (setgroups(0, NULL) < 0 || setresgid(sb->gid, sb->gid, sb->gid) < 0 || setresuid(sb->uid, sb->uid, sb->uid) < 0)
		return -errno;
	*what = "cannot clear the capabilities";
	if ((err = clear_capabilities()))
		return err;
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
	/* waiting for the monitor's answer (privsep_udp_open, privsep_udp_mark) */
	"poll", "ppoll",
	/* stdio on stderr and the SaveConfig memfd; glibc's qsort asks sysinfo for the RAM size */
	"fstat", "newfstatat", "lseek", "sysinfo",
	/* process */
	"getpid", "gettid", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "exit", "exit_group",
};

/* Allowed on any fd below the rtnetlink socket, parked on the highest number the worker
 * may hold (sandbox_park_fd). The kernel already refuses a message that would change the
 * network to a process without CAP_NET_ADMIN; this keeps it refused should the worker
 * ever get the capability back. That rules out a dup of it too (dup, fcntl F_DUPFD); no
 * other fd-duplicating call and no setrlimit are allowed. One unsigned 64-bit compare: a
 * number with bits set above 32, which the kernel would read as the low 32, is refused
 * as well. */
static const char *const below_netlink[] = {
	"write", "writev", "sendmmsg", "sendmsg", "sendto", "dup", "fcntl",
};

/* The only socket options the worker reads (uapi.c: who is asking; udp.c: whether the
 * kernel segments UDP). It sets none: the monitor opens and marks its sockets. */
static const struct sockopt {
	int level, name;
} getsockopts[] = {
	{ SOL_SOCKET, SO_PEERCRED },
	{ SOL_SOCKET, SO_PEERGROUPS },
	{ IPPROTO_UDP, UDP_SEGMENT },
};

int sandbox_filter(const struct sandbox *sb)
{
	scmp_filter_ctx ctx = seccomp_init(sb->log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
	int err = 0;

	if (!ctx)
		return -ENOMEM;
	/* A binary tree, not a chain of ~50 compares, on every syscall of the data path. */
	err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	/* The handshake threads (hspool.c), started before, get the same filter (and
	 * no_new_privs) at the same instant. */
	if (!err)
		err = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
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
	for (size_t i = 0; i < sizeof(getsockopts) / sizeof(getsockopts[0]) && !err; i++)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(getsockopt), 2,
				       SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)getsockopts[i].level),
				       SCMP_A2(SCMP_CMP_EQ, (scmp_datum_t)getsockopts[i].name));
	/* No socket(), bind() or setsockopt() at all: no netlink socket (netfilter, xfrm, a
	 * second rtnetlink), raw, packet, TCP, UNIX or even UDP socket. */
	if (!err)
		err = seccomp_load(ctx);
	seccomp_release(ctx);
	return err;
}
