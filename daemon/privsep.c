/* Privilege separation, as OpenSSH and OpenVPN's down-root do it: one fork, once every
 * privileged step of the start is done (TUN, sockets, control socket; in config mode the
 * addresses, routes, rules, DNS and PostUp).
 *
 *   monitor: root, the main pid            worker: USER (nobody), the data path
 *   holds no key and no data-path fd       TUN, UDP, control socket, netlink, timers
 *   TERM/INT: PreDown, then to the worker  keeps CAP_NET_ADMIN (SO_MARK, SO_RCVBUFFORCE,
 *   HUP: re-reads FILE, applies it as a      new UDP sockets) and CAP_NET_BIND_SERVICE
 *     set=1 over the control socket        no_new_privs, not dumpable, seccomp allowlist
 *   worker gone: SaveConfig, routes, DNS,  SIGHUP: asks the monitor ('H')
 *     the socket file, PostDown; exits
 *     with the worker's status
 *
 * The channel is a SOCK_SEQPACKET pair, worker to monitor only, one message each:
 *   'R'        dropped and filtered: the monitor says READY=1 and releases the launcher
 *   'E' text   the drop failed: what the launcher prints
 *   'H'        SIGHUP reached the worker (it cannot signal a root process)
 *   'N' text   an sd_notify message to relay (STATUS=, WATCHDOG=1, STOPPING=1 only), so
 *              the watchdog proves the worker's loop runs and NotifyAccess stays "main"
 * SaveConfig's device part (keys, peers) travels in a memfd both hold: the worker fills it
 * on an orderly exit, the monitor reads it once the worker is gone, then empties it. */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"

#define KEPT_CAPS        ((1u << CAP_NET_ADMIN) | (1u << CAP_NET_BIND_SERVICE))
#define UAPI_TIMEOUT_SEC 5
#define MAX_SAVED_TEXT   (64u << 20)

_Static_assert(CAP_NET_ADMIN < 32 && CAP_NET_BIND_SERVICE < 32, "both in the first capability word");

static struct {
	bool split, worker, monitor;
	char user[64];
	uid_t uid;
	gid_t gid;
	bool has_group;
	gid_t group;
	int chan;                       /* this side's end */
	int save_fd;                    /* memfd for SaveConfig; config mode only */
	pid_t monitor_pid;
	char uapi_path[108];
} ps = { .chan = -1, .save_fd = -1 };

static int resolve_user(const char *user)
{
	struct passwd *pw;

	errno = 0;
	if (!(pw = getpwnam(user))) {
		fprintf(stderr, "noisetund: user `%s': %s\n", user, errno ? strerror(errno) : "no such user");
		return -1;
	}
	if (pw->pw_uid == 0) {
		fprintf(stderr, "noisetund: user `%s' has uid 0; say `root' to run as one root process\n", user);
		return -1;
	}
	snprintf(ps.user, sizeof(ps.user), "%s", user);
	ps.uid = pw->pw_uid;
	ps.gid = pw->pw_gid;
	ps.split = true;
	return 0;
}

int privsep_init(const char *user, const char *group)
{
	if (!user || !*user)
		user = getenv("NOISETUN_USER");
	if (!user || !*user)
		user = "nobody";
	if (!group || !*group)
		group = getenv("NOISETUN_GROUP");
	if (group && *group) {
		struct group *gr;

		errno = 0;
		if (!(gr = getgrnam(group))) {
			fprintf(stderr, "noisetund: group `%s': %s\n", group, errno ? strerror(errno) : "no such group");
			return -1;
		}
		ps.has_group = true;
		ps.group = gr->gr_gid;
	}
	return strcmp(user, "root") ? resolve_user(user) : 0;
}

bool privsep_enabled(void)
{
	return ps.split;
}

bool privsep_is_worker(void)
{
	return ps.worker;
}

bool privsep_is_monitor(void)
{
	return ps.monitor;
}

bool privsep_control_group(gid_t *gid)
{
	*gid = ps.group;
	return ps.has_group;
}

pid_t privsep_fork(struct device *dev, int ready_fd)
{
	int sv[2], err;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if (config_active() && (ps.save_fd = memfd_create("noisetund-saveconfig", MFD_CLOEXEC)) < 0)
		goto fail;
	ps.monitor_pid = getpid();
	if ((pid = fork()) < 0)
		goto fail;
	if (pid == 0) {
		ps.worker = true;
		ps.chan = sv[1];
		close(sv[0]);
		if (ready_fd >= 0)
			close(ready_fd); /* the monitor tells the launcher */
		config_forget();
		notify_worker(dev);
		return 0;
	}
	ps.monitor = true;
	ps.chan = sv[0];
	close(sv[1]);
	snprintf(ps.uapi_path, sizeof(ps.uapi_path), "%s", dev->uapi_path);
	return pid;
fail:
	err = -errno;
	close(sv[0]);
	close(sv[1]);
	if (ps.save_fd >= 0)
		close(ps.save_fd);
	ps.save_fd = -1;
	return err;
}

/* ---- the worker ---- */

static void chan_send(char type, const char *text)
{
	struct iovec iov[2] = { { &type, 1 }, { (void *)text, text ? strlen(text) : 0 } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	/* Never block the data path on the monitor; a lost STATUS= is the worst outcome. */
	if (ps.chan >= 0 && sendmsg(ps.chan, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_verbose("monitor channel: %s", strerror(errno));
}

void privsep_notify_forward(const char *msg)
{
	chan_send('N', msg);
}

void privsep_worker_ready(void)
{
	chan_send('R', NULL);
}

void privsep_worker_failed(const char *msg)
{
	chan_send('E', msg);
}

bool privsep_forward_reload(void)
{
	if (!ps.worker)
		return false;
	chan_send('H', NULL);
	return true;
}

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

/* Exactly what the worker's event loop calls (strace -f -c over tests/net), plus what
 * glibc and libsodium may need on the way: allocation, randomness, clocks, exit. */
static const char *const allowed_syscalls[] = {
	/* the loop, TUN, UDP, netlink, timers, signals, inotify, the control socket */
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "read", "readv", "write", "writev",
	"recvmmsg", "recvmsg", "recvfrom", "sendmmsg", "sendmsg", "sendto", "accept4", "close",
	"getsockopt", "setsockopt", "bind", "getsockname", "timerfd_settime", "timerfd_gettime",
	/* memory (sodium_malloc: mmap, mprotect, mlock, madvise), randomness, time */
	"mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "mremap", "brk", "getrandom",
	"clock_gettime", "clock_getres", "gettimeofday", "clock_nanosleep", "nanosleep", "futex",
	/* stdio on stderr and the SaveConfig memfd; glibc's qsort asks sysinfo for the RAM size */
	"fstat", "newfstatat", "lseek", "fcntl", "dup", "sysinfo",
	/* process */
	"getpid", "gettid", "rt_sigreturn", "rt_sigprocmask", "restart_syscall", "exit", "exit_group",
};

/* log_only (NOISETUN_SECCOMP=log): a violation is logged by the kernel (audit, dmesg)
 * instead of killing us, to find what the list lacks. */
static int install_seccomp(bool log_only)
{
	static const int families[] = { AF_INET, AF_INET6, AF_UNIX, AF_NETLINK };
	scmp_filter_ctx ctx = seccomp_init(log_only ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS);
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
	/* New UDP sockets on a listen-port change; nothing else may be opened. */
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]) && !err; i++)
		err = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)families[i]));
	if (!err)
		err = seccomp_load(ctx);
	seccomp_release(ctx);
	return err;
}

/* Libraries that set themselves up on first use do it now, not under the filter:
 * OpenSSL reads openssl.cnf and loads its provider on the first cipher. */
static void warm_up_libraries(void)
{
	static const uint8_t zero_key[NT_KEY_LEN];
	uint8_t text[16] = { 0 }, sealed[sizeof(text) + NT_AEAD_TAG_LEN];
	struct nt_cipher *c = nt_cipher_new(zero_key);

	if (c) {
		if (nt_cipher_seal(c, sealed, text, sizeof(text), 0))
			log_verbose("OpenSSL ChaCha20 unavailable: libsodium's is used");
		nt_cipher_free(c);
	}
}

int privsep_drop(const char **what)
{
	static char what_buf[160];
	const char *seccomp_env = getenv("NOISETUN_SECCOMP");
	bool filter = !(seccomp_env && !strcmp(seccomp_env, "0"));
	bool log_only = seccomp_env && !strcmp(seccomp_env, "log");
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
	snprintf(what_buf, sizeof(what_buf), "cannot switch to user %s (uid %u, gid %u)", ps.user, (unsigned)ps.uid,
		 (unsigned)ps.gid);
	*what = what_buf;
	if (setgroups(0, NULL) < 0 || setresgid(ps.gid, ps.gid, ps.gid) < 0 || setresuid(ps.uid, ps.uid, ps.uid) < 0)
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
#ifdef NT_SANITIZE
	/* LeakSanitizer stops the world from a ptrace()ing clone at exit: an unprivileged
	 * tracee must be dumpable for that, and ptrace must pass the filter. Test builds only. */
	*what = "cannot set PR_SET_DUMPABLE";
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -errno;
	log_verbose("sanitizer build: the worker stays dumpable and runs without seccomp");
	filter = false;
#else
	/* setuid reset it to the system default; the keys must stay out of core dumps. */
	*what = "cannot set PR_SET_DUMPABLE";
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	if (!filter)
		log_error("NOISETUN_SECCOMP=0: the worker runs without its seccomp filter");
#endif
	/* setuid cleared this too. A worker without its monitor must not live on: nobody
	 * would remove the routes and the socket after it. */
	*what = "cannot set the parent-death signal";
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		return -errno;
	if (getppid() != ps.monitor_pid)
		return -ESRCH;
	warm_up_libraries();
	*what = "cannot install the seccomp filter";
	if (filter && (err = install_seccomp(log_only)))
		return err;
	log_verbose("worker: user %s (uid %u), capabilities CAP_NET_ADMIN and CAP_NET_BIND_SERVICE, seccomp %s",
		    ps.user, (unsigned)ps.uid, !filter ? "off" : log_only ? "logging only" : "on");
	return 0;
}

void privsep_worker_save(const struct device *dev)
{
	char buf[4096];
	FILE *f;
	int fd;

	if (!ps.worker || ps.save_fd < 0)
		return;
	if ((fd = dup(ps.save_fd)) < 0 || !(f = fdopen(fd, "w"))) {
		log_error("SaveConfig: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	/* The buffer holds the private key: ours, on the stack, wiped below. */
	setvbuf(f, buf, _IOFBF, sizeof(buf));
	fprintf(f, "MTU = %u\n", dev->mtu);
	config_write_device(f, dev);
	if (fclose(f))
		log_error("SaveConfig: %s", strerror(errno));
	explicit_bzero(buf, sizeof(buf));
}

/* ---- the monitor's client side of the control socket ---- */

static int uapi_connect(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = UAPI_TIMEOUT_SEC };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", ps.uapi_path);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Send request (len bytes), read the reply through its final empty line into *reply
 * (NUL-terminated, malloc'd: the caller wipes and frees it). 0 or -errno. */
static int uapi_call(const char *request, size_t len, char **reply, size_t *reply_len)
{
	size_t cap = 4096, n = 0;
	char *buf = NULL;
	int fd, err = 0;

	*reply = NULL;
	if ((fd = uapi_connect()) < 0)
		return fd;
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	if (!(buf = malloc(cap))) {
		err = -ENOMEM;
		goto out;
	}
	while (n < 2 || buf[n - 1] != '\n' || buf[n - 2] != '\n') {
		if (n + 1 >= cap) {
			char *grown = cap * 2 > MAX_SAVED_TEXT ? NULL : malloc(cap * 2);
			if (!grown) {
				err = -ENOMEM;
				goto out;
			}
			memcpy(grown, buf, n);
			explicit_bzero(buf, cap);
			free(buf);
			buf = grown;
			cap *= 2;
		}
		ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EPIPE;
			goto out;
		}
		n += (size_t)r;
	}
	buf[n] = 0;
	*reply = buf;
	*reply_len = n;
	buf = NULL;
out:
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	close(fd);
	return err;
}

/* The errno=N of a reply: its last line. */
static int reply_errno(const char *reply, size_t len)
{
	const char *line = reply + len - 2;

	while (line > reply && line[-1] != '\n')
		line--;
	return strncmp(line, "errno=", 6) ? -EPROTO : (int)strtol(line + 6, NULL, 10);
}

void device_state_free(struct device_state *st)
{
	free(st->peers);
	explicit_bzero(st, sizeof(*st));
}

int privsep_get_state(struct device_state *st)
{
	char *reply, *line, *next;
	size_t len;
	int err;

	memset(st, 0, sizeof(*st));
	if ((err = uapi_call("get=1\n\n", 7, &reply, &len)))
		return err;
	if ((err = reply_errno(reply, len)))
		goto out;
	for (line = reply; line && *line; line = next) {
		char *value = strchr(line, '=');

		if ((next = strchr(line, '\n')))
			*next++ = 0;
		if (!value)
			continue;
		*value++ = 0;
		if (!strcmp(line, "private_key")) {
			st->has_private_key = !nt_key_from_hex(st->private_key, value);
		} else if (!strcmp(line, "listen_port")) {
			st->listen_port = (uint16_t)strtoul(value, NULL, 10);
		} else if (!strcmp(line, "fwmark")) {
			st->fwmark = (uint32_t)strtoul(value, NULL, 10);
		} else if (!strcmp(line, "public_key")) {
			uint8_t(*grown)[NT_KEY_LEN] = realloc(st->peers, (st->peers_count + 1) * sizeof(*grown));
			if (!grown) {
				err = -ENOMEM;
				break;
			}
			st->peers = grown;
			if (nt_key_from_hex(st->peers[st->peers_count++], value)) {
				err = -EPROTO;
				break;
			}
		}
	}
out:
	explicit_bzero(reply, len);
	free(reply);
	if (err)
		device_state_free(st);
	return err;
}

int privsep_send_set(const struct nt_uapi_set *set)
{
	size_t body = nt_uapi_format_set(set, NULL, 0), len = body + 7, reply_len;
	char *request = malloc(len + 1), *reply;
	int err;

	if (!request)
		return -ENOMEM;
	memcpy(request, "set=1\n", 6);
	nt_uapi_format_set(set, request + 6, body + 1);
	request[6 + body] = '\n';
	err = uapi_call(request, len, &reply, &reply_len);
	explicit_bzero(request, len + 1);
	free(request);
	if (err)
		return err;
	err = reply_errno(reply, reply_len);
	explicit_bzero(reply, reply_len);
	free(reply);
	return err;
}

/* ---- the monitor ---- */

/* The device part of SaveConfig the worker left, without its first line "MTU = N"
 * (which goes to *mtu); NULL if there is none. */
static char *read_saved_text(unsigned *mtu, size_t *size)
{
	struct stat st;
	char *text, *nl;
	size_t n = 0;

	*size = 0;
	if (ps.save_fd < 0 || fstat(ps.save_fd, &st) < 0 || st.st_size <= 0 || (size_t)st.st_size > MAX_SAVED_TEXT)
		return NULL;
	if (!(text = malloc((size_t)st.st_size + 1)))
		return NULL;
	while (n < (size_t)st.st_size) {
		ssize_t r = pread(ps.save_fd, text + n, (size_t)st.st_size - n, (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	text[n] = 0;
	*size = (size_t)st.st_size + 1;
	if (sscanf(text, "MTU = %u", mtu) != 1 || !(nl = strchr(text, '\n'))) {
		explicit_bzero(text, *size);
		free(text);
		return NULL;
	}
	memmove(text, nl + 1, strlen(nl + 1) + 1);
	return text;
}

static const char *signal_name(int sig)
{
	const char *abbrev = sigabbrev_np(sig);

	return abbrev ? abbrev : "?";
}

/* Shed what the worker took over: every data-path fd (the TUN above all: the link must
 * vanish with the worker) and every key. The epoll set is shared with the worker, so no
 * epoll_ctl here: closing our copies is all. */
static void monitor_shed(struct device *dev)
{
	int fds[] = { dev->tun, dev->udp4, dev->udp6, dev->epoll, dev->timerfd, dev->netlink,
		      dev->inotify, dev->signalfd, dev->uapi_listen };
	size_t peers = dev->peer_count;

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	dev->tun = dev->udp4 = dev->udp6 = dev->epoll = dev->timerfd = dev->netlink = -1;
	dev->inotify = dev->signalfd = dev->uapi_listen = -1;
	device_destroy(dev); /* peers, keypairs, the static identity: wiped */
	dev->peer_count = peers; /* for READY=1's STATUS= */
	config_wipe_secrets();
	notify_monitor();
}

static void tell_launcher(int *ready_fd, bool foreground, const char *msg)
{
	if (foreground) {
		if (strcmp(msg, "ok"))
			fprintf(stderr, "%s\n", msg);
	} else if (*ready_fd >= 0) {
		if (write(*ready_fd, msg, strlen(msg)) < 0) {
			/* the launcher is gone; nobody is left to tell */
		}
		close(*ready_fd);
	}
	*ready_fd = -1;
}

/* The monitor may lack CAP_KILL (systemd's CapabilityBoundingSet= leaves it out): a
 * signal to the worker, another user, is then EPERM. kill(2) also allows a sender whose
 * effective uid is the target's real or saved uid, so the monitor sends it as the worker's
 * user for that one call (CAP_SETUID, which the drop needs anyway), then takes uid 0 back:
 * the real and saved uids stay 0, so the permitted set survives and the effective set is
 * restored from it. 0 or -errno. */
static int signal_worker(pid_t worker, int sig)
{
	int err = 0;

	if (kill(worker, sig) == 0)
		return 0;
	if (errno != EPERM || !ps.split || !ps.uid)
		return -errno;
	if (setresuid((uid_t)-1, ps.uid, (uid_t)-1) < 0)
		return -EPERM;
	if (kill(worker, sig) < 0)
		err = -errno;
	if (setresuid((uid_t)-1, 0, (uid_t)-1) < 0) {
		/* Cannot happen (the real uid is 0); never carry on as another user. */
		log_error("monitor: cannot take uid 0 back: %s", strerror(errno));
		_exit(1);
	}
	return err;
}

int privsep_monitor(struct device *dev, pid_t worker, int ready_fd, bool foreground)
{
	char msg[512], err_msg[sizeof(msg)] = "";
	bool ready = false, stopping = false, orderly;
	struct pollfd pfd[2];
	int status = 0, rc, sfd, err;
	sigset_t mask;

	monitor_shed(dev);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
		log_error("monitor: signals: %s; stopping the worker", strerror(errno));
		signal_worker(worker, SIGTERM);
		sfd = -1;
		goto wait_blocking;
	}
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = ps.chan, .events = POLLIN };
	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("monitor: poll: %s; stopping the worker", strerror(errno));
			signal_worker(worker, SIGTERM);
			goto wait_blocking;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGCHLD) {
				if (waitpid(worker, &status, WNOHANG) == worker)
					break;
			} else if (si.ssi_signo == SIGHUP && config_active()) {
				if (ready && !stopping)
					config_reload(dev);
			} else if (!stopping) { /* TERM, INT; HUP outside config mode, as before the split */
				stopping = true;
				log_verbose("received signal %u, stopping the worker (pid %d)", si.ssi_signo, (int)worker);
				if (ready) {
					notify_stopping();
					config_pre_down(); /* PreDown while the link still exists, as wg-quick */
				}
				if ((err = signal_worker(worker, (int)si.ssi_signo)) && err != -ESRCH)
					log_error("monitor: cannot signal the worker (pid %d): %s", (int)worker, strerror(-err));
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(ps.chan, msg, sizeof(msg) - 1, MSG_DONTWAIT);

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0) {
				pfd[1].fd = -1; /* the worker is gone: SIGCHLD follows */
				goto wait_blocking;
			}
			msg[n] = 0;
			switch (msg[0]) {
			case 'R':
				if (ready || stopping)
					break;
				ready = true;
				notify_ready(dev);
				log_verbose("ready: worker pid %d runs as %s; control socket %s", (int)worker, ps.user,
					    ps.uapi_path);
				tell_launcher(&ready_fd, foreground, "ok");
				break;
			case 'E':
				snprintf(err_msg, sizeof(err_msg), "%s", msg + 1);
				break;
			case 'H':
				if (ready && !stopping)
					config_reload(dev);
				break;
			case 'N':
				notify_relay(msg + 1);
				break;
			}
		}
	}
	goto exited;
wait_blocking:
	while (waitpid(worker, &status, 0) < 0 && errno == EINTR)
		;
exited:
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		log_error("worker killed by signal %d (SIG%s)%s", sig, signal_name(sig), sig == SIGSYS ? ": seccomp" : "");
		rc = 128 + sig;
	} else {
		rc = WEXITSTATUS(status);
		if (rc)
			log_error("worker exited with status %d", rc);
	}
	orderly = ready && WIFEXITED(status) && rc == 0;
	if (!ready) {
		/* The worker's own message names the interface and the step. */
		snprintf(msg, sizeof(msg), "noisetund: %s: %s", dev->ifname,
			 stopping ? "stopped while starting" : "the worker died while starting");
		tell_launcher(&ready_fd, foreground, *err_msg ? err_msg : msg);
		if (!rc)
			rc = 1;
	} else if (!stopping) {
		notify_stopping();
	}

	char *text = NULL;
	size_t text_size = 0;
	unsigned mtu = 0;
	if (orderly && (text = read_saved_text(&mtu, &text_size))) {
		dev->mtu = mtu;
		config_set_device_text(text);
	}
	config_down(dev, orderly);
	config_set_device_text(NULL);
	if (text) {
		explicit_bzero(text, text_size);
		free(text);
	}
	if (ps.save_fd >= 0) {
		if (ftruncate(ps.save_fd, 0) < 0)
			log_error("SaveConfig memfd: %s", strerror(errno));
		close(ps.save_fd);
	}
	/* The socket file goes last but for PostDown: `noisetun down` waits for it. */
	if (unlink(ps.uapi_path) < 0 && errno != ENOENT)
		log_error("cannot remove %s: %s", ps.uapi_path, strerror(errno));
	config_post_down();
	notify_close();
	if (sfd >= 0)
		close(sfd);
	close(ps.chan);
	if (ready_fd >= 0)
		close(ready_fd);
	return rc;
}
