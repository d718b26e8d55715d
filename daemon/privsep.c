/* Privilege separation, as OpenSSH and OpenVPN's down-root do it: one fork, once every
 * privileged step of the start is done (TUN, sockets, control socket; in config mode the
 * addresses, routes, rules, DNS and PostUp).
 *
 *   monitor: root, the main pid            worker: a uid of its own (or USER), the data
 *   holds no key and no data-path fd         path: TUN, UDP, control socket, netlink, timers
 *   TERM/INT: PreDown, then to the worker  no capability: asks the monitor for new UDP
 *   HUP: re-reads FILE, applies it as a      sockets and for SO_MARK ('U', 'M')
 *     set=1 over the control socket        no_new_privs, not dumpable, seccomp (sandbox.c)
 *   'U', 'M': opens (bound, marked,        SIGHUP: asks the monitor ('H')
 *     forced buffers) or marks the
 *     worker's UDP sockets
 *   worker gone: SaveConfig, routes, DNS,
 *     the socket file, PostDown; exits
 *     with the worker's status
 *
 * The channel is a SOCK_SEQPACKET pair, one message each; worker to monitor:
 *   'R'        dropped and filtered: the monitor says READY=1 and releases the launcher
 *   'E' text   the drop failed: what the launcher prints
 *   'H'        SIGHUP reached the worker (it cannot signal a root process)
 *   'N' text   an sd_notify message to relay (STATUS=, WATCHDOG=1, STOPPING=1 only), so
 *              the watchdog proves the worker's loop runs and NotifyAccess stays "main"
 *   'U', 'M'   a UDP pair to open, SO_MARK to set: answered 'u', 'm' (see below)
 *   'Q'        a worker unit's orderly exit (handover.c; a fork has an exit status)
 * and monitor to a worker unit, where a fork gets SIGTERM: 'T' stop.
 * Anything else (a payload where none belongs, a second 'R', 'E' once ready, a notify
 * message outside those three, control characters, a NUL, an empty or oversized message,
 * an unknown type) is refused with one log line and otherwise ignored; every descriptor
 * the worker sends is closed once its request is served.
 * SaveConfig's device part (keys, peers) travels in a memfd both hold: the worker fills it
 * on an orderly exit, the monitor reads it once the worker is gone, then empties it. The
 * worker may be compromised by then, so the monitor parses that text strictly and writes
 * only what it formats itself from the parsed values (saved_device_text).
 * This file holds the split's state and its steps (users, fork, adoption, the drop, the
 * worker's messages); the pieces: uidalloc.c (the worker's uid), channel.c (the messages
 * and their checks), sockreq.c (sockets for the worker), monitor.c (the monitor's loop),
 * ctlclient.c (its client of the control socket), savecfg.c (the worker's SaveConfig). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

#include "noisetun/config.h"
#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "handover.h"
#include "noisetund.h"
#include "privsep.h"
#include "setup.h"
#include "watch.h"
#include "sandbox.h"
#include "uidalloc.h"
#include "savecfg.h"
#include "cfghooks.h"
#include "channel.h"
#include "ctlclient.h"


#define SHARED_UID       65534u /* nobody */

static struct {
	bool split, worker, monitor;
	bool ready_seen;                /* the monitor has taken the worker's 'R' */
	char user[64];
	uid_t uid;
	gid_t gid;
	bool has_group;
	gid_t group;
	int chan;                       /* this side's end */
	int save_fd;                    /* memfd for SaveConfig; config mode only */
	pid_t monitor_pid;
	char uapi_path[108];
	int uid_lock;                   /* the monitor's claim on a dynamic uid; -1 none */
	bool dynamic;                   /* uid from the range, not a user's */
	bool handover;                  /* the worker is a unit of its own (handover.c) */
	bool worker_bye;                /* ... and said 'Q': it exits orderly */
	bool stop_asked;                /* a worker unit: the monitor said 'T', or is gone */
	int worker_pidfd;               /* ... and this tells when it is gone; -1 */
} ps = { .chan = -1, .save_fd = -1, .uid_lock = -1, .worker_pidfd = -1 };

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
	if (pw->pw_uid == SHARED_UID || !strcmp(user, "nobody"))
		log_error("user %s: uid %u is shared with other services, any of which may kill or stop the "
			  "worker; without -u and NOISETUN_USER the worker gets a uid of its own",
			  user, (unsigned)pw->pw_uid);
	snprintf(ps.user, sizeof(ps.user), "%s", user);
	ps.uid = pw->pw_uid;
	ps.gid = pw->pw_gid;
	ps.split = true;
	return 0;
}

int privsep_init(const char *user, const char *group)
{
	unsigned id;
	int err;

	if (!user || !*user)
		user = getenv("NOISETUN_USER");
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
	if (user && *user)
		return strcmp(user, "root") ? resolve_user(user) : 0;
	if (handover_wanted()) { /* systemd starts the worker, with a uid of its own */
		ps.split = ps.handover = true;
		snprintf(ps.user, sizeof(ps.user), "its unit's DynamicUser=");
		return 0;
	}
	if ((err = worker_uid_claim(&id, &ps.uid_lock))) {
		fprintf(stderr, "noisetund: no worker uid free in %u..%u (%s: %s); name one with -u USER\n",
			WORKER_UID_FIRST, WORKER_UID_FIRST + WORKER_UID_COUNT - 1, WORKER_LOCK_DIR, strerror(-err));
		return -1;
	}
	ps.dynamic = true;
	ps.uid = (uid_t)id;
	ps.gid = (gid_t)id;
	snprintf(ps.user, sizeof(ps.user), "dynamic uid %u", id);
	ps.split = true;
	return 0;
}

bool privsep_enabled(void)
{
	return ps.split;
}

bool privsep_is_handover(void)
{
	return ps.handover;
}

/* The monitor's view of the worker's control socket and channel, for ctlclient.c. */
const char *privsep_uapi_path(void)
{
	return ps.uapi_path;
}

int privsep_channel(void)
{
	return ps.chan;
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
		dev->role = ROLE_WORKER;
		ps.chan = sv[1];
		close(sv[0]);
		if (ready_fd >= 0)
			close(ready_fd); /* the monitor tells the launcher */
		config_forget();
		notify_worker(dev);
		return 0;
	}
	ps.monitor = true;
	dev->role = ROLE_MONITOR;
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

/* The monitor of a worker unit (handover.c): chan is the channel, save SaveConfig's memfd
 * (or -1); worker is not our child, a pidfd tells when it is gone. 0 or -errno. */
int privsep_monitor_adopt(struct device *dev, int chan, pid_t worker, int save_fd)
{
	int pidfd = (int)syscall(SYS_pidfd_open, worker, 0);

	if (pidfd < 0)
		return -errno;
	if (save_fd >= 0 && (ps.save_fd = fcntl(save_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		close(pidfd);
		return -errno;
	}
	ps.worker_pidfd = pidfd;
	ps.monitor = true;
	dev->role = ROLE_MONITOR;
	ps.chan = chan;
	ps.monitor_pid = getpid();
	snprintf(ps.uapi_path, sizeof(ps.uapi_path), "%s", dev->uapi_path);
	return 0;
}

/* The worker unit (handover.c), handed its channel and SaveConfig's memfd. */
void privsep_worker_adopt(struct device *dev, int chan, int save_fd)
{
	dev->role = ROLE_WORKER;
	ps.split = ps.worker = ps.handover = true;
	ps.chan = chan;
	ps.save_fd = save_fd;
	snprintf(ps.user, sizeof(ps.user), "its unit's DynamicUser=");
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

bool privsep_is_monitor_pid(pid_t pid)
{
	return ps.worker && pid > 0 && pid == ps.monitor_pid;
}

void privsep_hook_event(unsigned kind, const uint8_t key[NT_KEY_LEN], const union nt_endpoint *ep)
{
	struct hook_msg m = { .kind = kind, .family = AF_UNSPEC };
	char type = 'V';
	struct iovec iov[2] = { { &type, 1 }, { &m, sizeof(m) } };
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	if (!ps.worker || ps.chan < 0) {
		static bool said;
		size_t count = 0;

		/* One process (NOISETUN_USER=root): no monitor to run them. */
		if (!said && !ps.split && config_active() && (config_event_hooks(kind, &count), count)) {
			log_error("OnPeerUp, OnPeerDown, ... hooks run only with the privilege split: not run "
				  "(NOISETUN_USER=root)");
			said = true;
		}
		return;
	}
	memcpy(m.key, key, NT_KEY_LEN);
	if (ep && ep->sa.sa_family == AF_INET) {
		m.family = AF_INET;
		m.port = ntohs(ep->in4.sin_port);
		memcpy(m.addr, &ep->in4.sin_addr, 4);
	} else if (ep && ep->sa.sa_family == AF_INET6) {
		m.family = AF_INET6;
		m.port = ntohs(ep->in6.sin6_port);
		memcpy(m.addr, &ep->in6.sin6_addr, 16);
		m.scope_id = ep->in6.sin6_scope_id;
	}
	/* Never block the data path on the monitor: a full channel loses the event. */
	if (sendmsg(ps.chan, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_verbose("monitor channel: hook event lost: %s", strerror(errno));
}

/* Monitor: a 'V' message, hostile bytes: checked whole, then the hooks (hooks.c). */
void privsep_monitor_hook_event(const char *msg, size_t n)
{
	union nt_endpoint ep = { .sa.sa_family = AF_UNSPEC };
	struct hook_msg m;
	char epbuf[80] = "";

	if (n != 1 + sizeof(m)) {
		chan_refuse("'V' of the wrong size");
		return;
	}
	memcpy(&m, msg + 1, sizeof(m));
	if (m.kind >= HOOK_EV_COUNT) {
		chan_refuse("'V' with an unknown event");
		return;
	}
	if (m.family == AF_INET) {
		ep.in4.sin_family = AF_INET;
		ep.in4.sin_port = htons(m.port);
		memcpy(&ep.in4.sin_addr, m.addr, 4);
	} else if (m.family == AF_INET6) {
		ep.in6.sin6_family = AF_INET6;
		ep.in6.sin6_port = htons(m.port);
		memcpy(&ep.in6.sin6_addr, m.addr, 16);
		ep.in6.sin6_scope_id = m.scope_id;
	} else if (m.family != AF_UNSPEC) {
		chan_refuse("'V' with an unknown address family");
		return;
	}
	if (ep.sa.sa_family != AF_UNSPEC)
		endpoint_format(epbuf, sizeof(epbuf), &ep);
	hooks_event(m.kind, m.key, epbuf);
}

void privsep_notify_forward(const char *msg)
{
	chan_send('N', msg);
}

/* Worker: a handshake with the peer failed (a retry is due), for the monitor's endpoint
 * failover and re-resolution (watch.c): 'F' and the public key in hex. */
void privsep_handshake_failed(const uint8_t key[NT_KEY_LEN])
{
	char hex[NT_KEY_HEX_LEN + 1];

	nt_key_to_hex(hex, key);
	chan_send('F', hex);
}

#ifdef NT_TEST_SEAMS
/* ---- test seam: a compromised worker (tests/net/savecfg.sh) ----
 * Compiled only with -DNT_TEST_SEAMS (the scenario's own build/seams*), never in a release
 * or sanitizer build: the scenario checks that $BUILD/noisetund lacks the names below.
 * NOISETUN_TEST_HOSTILE_WORKER=CASE makes the worker do what code running in a compromised
 * worker could: lie in SaveConfig's memfd and on the channel. NOISETUN_TEST_PWNED=PREFIX
 * is where the forged hooks would leave their marks (PREFIX-postup, ...). */
static const char *seam_case(void)
{
	const char *c = getenv("NOISETUN_TEST_HOSTILE_WORKER");

	return c ? c : "";
}

static const char *seam_pwned(void)
{
	const char *p = getenv("NOISETUN_TEST_PWNED");

	return p ? p : "/nonexistent/pwned";
}

/* Raw channel messages (len bytes, 0 included), as a worker that owns its end may send. */
static __attribute__((noinline)) void nt_test_seam_hostile_channel(void)
{
	static const struct {
		const char *msg;
		size_t len;
	} msgs[] = {
#define M(s) { s, sizeof(s) - 1 }
		M("R"),                                 /* a second ready */
		M("Eforged error after ready"),         /* an error once ready */
		M("NREADY=1"),                          /* not STATUS=, WATCHDOG=1, STOPPING=1 */
		M("NSTATUS=ok\nMAINPID=1"),             /* a second notify line */
		M("NSTATUS=\x1b]0;pwned\x07"),          /* control characters */
		M("Hpayload"),                          /* 'H' carries nothing */
		M("X"),                                 /* no such message */
		{ NULL, 0 },                            /* oversized: the buffer below */
		M(""),                                  /* empty (last: it looked like EOF) */
#undef M
	};
	char big[2048];

	memset(big, 'x', sizeof(big));
	memcpy(big, "NSTATUS=", 8);
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		bool oversized = !msgs[i].msg;
		struct iovec iov = { (void *)(oversized ? big : msgs[i].msg), oversized ? sizeof(big) : msgs[i].len };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

		if (sendmsg(ps.chan, &msg, MSG_NOSIGNAL) < 0)
			log_error("test seam: channel: %s", strerror(errno));
	}
	/* Forged hook events: a short one, an unknown event, an unknown address family (three
	 * refusals), and a well-formed one for a key that is no peer of the file (no hook). */
	struct hook_msg forged[] = {
		{ .kind = HOOK_EV_COUNT + 7, .family = AF_UNSPEC },
		{ .kind = HOOK_EV_PEER_UP, .family = 99 },
		{ .kind = HOOK_EV_PEER_UP, .family = AF_INET, .port = 1 },
	};
	char buf[1 + sizeof(struct hook_msg)] = "V";

	memset(forged[2].key, 0x5a, sizeof(forged[2].key));
	if (send(ps.chan, buf, 5, MSG_NOSIGNAL) < 0)
		log_error("test seam: channel: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
		memcpy(buf + 1, &forged[i], sizeof(forged[i]));
		if (send(ps.chan, buf, sizeof(buf), MSG_NOSIGNAL) < 0)
			log_error("test seam: channel: %s", strerror(errno));
	}
}

/* 'E' with terminal escapes, then an exit before 'R': the launcher prints the text. */
static __attribute__((noinline)) void nt_test_seam_hostile_start(void)
{
	chan_send('E', "\x1b[2J\x1b]0;pwned\x07" "forged start error\r\n");
	_exit(1);
}

/* SaveConfig: the MTU the worker claims, text after the [Interface] line, text at the end. */
static __attribute__((noinline)) unsigned nt_test_seam_hostile_mtu(unsigned mtu)
{
	return !strcmp(seam_case(), "mtu") ? 70000 : mtu;
}

static __attribute__((noinline)) void nt_test_seam_hostile_save(FILE *f, bool head)
{
	const char *c = seam_case(), *p = seam_pwned();

	if (head && !strcmp(c, "hooks")) {
		fprintf(f, "PreUp = touch %s-preup\nPostUp = touch %s-postup\n", p, p);
		fprintf(f, "PreDown = touch %s-predown\nPostDown = touch %s-postdown\n", p, p);
	} else if (head && !strcmp(c, "wgquick")) {
		fprintf(f, "Address = 10.99.0.1/32\nTable = off\nDNS = 192.0.2.99\nSaveConfig = false\n");
	} else if (head && !strcmp(c, "nul")) {
		fwrite("ListenPort = 51820\0\n", 1, 20, f);
		fprintf(f, "PostUp = touch %s-nul\n", p);
	} else if (head && !strcmp(c, "big")) {
		for (size_t i = 0; i < (1u << 20); i++)
			fputc('A', f);
		fputc('\n', f);
	} else if (!head && !strcmp(c, "section")) {
		fprintf(f, "\n[Interface]\nPostUp = touch %s-section\n", p);
	} else if (!head && !strcmp(c, "names")) {
		/* in the last [Peer]: a name with terminal escapes, one of 65 bytes */
		fprintf(f, "# friendly_name = \x1b]0;pwned\x07\x1b[2J\n# Name = %065d\n", 0);
	}
}
#endif

void privsep_worker_ready(void)
{
#ifdef NT_TEST_SEAMS
	if (!strcmp(seam_case(), "chanstart"))
		nt_test_seam_hostile_start();
#endif
	chan_send('R', NULL);
#ifdef NT_TEST_SEAMS
	if (!strcmp(seam_case(), "chan"))
		nt_test_seam_hostile_channel();
#endif
}

bool privsep_stop_asked(void)
{
	return ps.stop_asked;
}

void privsep_worker_exit(int rc)
{
	if (ps.worker && ps.handover && rc == 0)
		chan_send('Q', NULL);
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

/* A worker unit's channel woke its loop: the monitor's 'T' (stop; it may not signal us),
 * or its end. Anything else is a reply nobody waits for any more: dropped. */
void privsep_worker_channel(void)
{
	for (;;) {
		char buf[64];
		int fds[CHAN_MAX_FDS], nfds;
		ssize_t n = chan_recv(ps.chan, buf, sizeof(buf), MSG_DONTWAIT, fds, &nfds);

		close_fds(fds, nfds);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			if (!ps.stop_asked)
				log_notice("the monitor is gone, exiting");
			ps.stop_asked = true;
			return;
		}
		if (n == 1 && buf[0] == 'T' && !ps.stop_asked) {
			log_notice("the monitor asks us to stop");
			ps.stop_asked = true;
		}
	}
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

int privsep_drop(struct device *dev, const char **what)
{
	static char what_buf[160];
	const char *seccomp_env = getenv("NOISETUN_SECCOMP");
	bool filter = !(seccomp_env && !strcmp(seccomp_env, "0"));
	struct sandbox sb = { .uid = ps.uid, .gid = ps.gid, .netlink_fd = dev->netlink,
			      .log_only = seccomp_env && !strcmp(seccomp_env, "log") };
	int err;

	/* The epoll registration follows the open file, not the number (its tag is
	 * EV_NETLINK), so moving the fd changes nothing for the loop. */
	/* The uid's claim is the monitor's to hold (flock: the open file's, shared). */
	if (ps.uid_lock >= 0) {
		close(ps.uid_lock);
		ps.uid_lock = -1;
	}
	*what = "cannot move the rtnetlink socket";
	if (dev->netlink >= 0) {
		if ((err = sandbox_park_fd(dev->netlink)) < 0)
			return err;
		dev->netlink = sb.netlink_fd = err;
	}
	if (ps.handover) {
		/* systemd made us another user with nothing to drop (noisetun-worker@.service);
		 * a unit changed to keep root or a capability is refused, not run. */
		*what = "the worker unit runs as root or with a capability (it needs DynamicUser= and "
			"an empty CapabilityBoundingSet=)";
		if (!getuid() || !geteuid() || !getgid() || !getegid())
			return -EPERM;
		for (unsigned long cap = 0; cap < 64; cap++) {
			int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
			if (in < 0 && errno == EINVAL)
				break; /* past the last capability */
			if (in != 0)
				return -EPERM;
		}
		*what = "cannot set no_new_privs";
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
			return -errno;
	} else if ((err = sandbox_drop_user(&sb, what))) {
		if (!strcmp(*what, "cannot switch user")) {
			snprintf(what_buf, sizeof(what_buf), "cannot switch to user %s (uid %u, gid %u)", ps.user,
				 (unsigned)ps.uid, (unsigned)ps.gid);
			*what = what_buf;
		}
		return err;
	}
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
	/* A worker unit has no parent to lose: it stops when the channel ends (main.c). */
	*what = "cannot set the parent-death signal";
	if (!ps.handover && prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0)
		return -errno;
	if (!ps.handover && getppid() != ps.monitor_pid)
		return -ESRCH;
	warm_up_libraries();
	*what = "cannot install the seccomp filter";
	if (filter && (err = sandbox_filter(&sb)))
		return err;
	log_verbose("worker: %s%s (uid %u, gid %u), no capabilities, seccomp %s",
		    ps.dynamic ? "" : "user ", ps.user, (unsigned)ps.uid, (unsigned)ps.gid,
		    !filter ? "off" : sb.log_only ? "logging only" : "on");
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
	/* "MTU = N", then what `wg setconf` would read: the monitor parses it as such. */
#ifdef NT_TEST_SEAMS
	fprintf(f, "MTU = %u\n[Interface]\n", nt_test_seam_hostile_mtu(dev->mtu));
	nt_test_seam_hostile_save(f, true);
	config_write_device(f, dev);
	nt_test_seam_hostile_save(f, false);
#else
	fprintf(f, "MTU = %u\n[Interface]\n", dev->mtu);
	config_write_device(f, dev);
#endif
	if (fclose(f))
		log_error("SaveConfig: %s", strerror(errno));
	explicit_bzero(buf, sizeof(buf));
}

/* ---- the monitor serves the channel while it waits ---- */

/* Monitor, busy with something that may need the worker (a reload's set, a hook that
 * runs `wg set`): one message of the channel. Socket requests and lookups are served
 * and notify messages relayed; the rest ('H': we are busy already) is dropped. false:
 * the channel has ended. */
bool privsep_serve_pending(void)
{
	char msg[512];
	int fds[CHAN_MAX_FDS], nfds;
	ssize_t m = chan_recv(ps.chan, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_TRUNC, fds, &nfds);
	bool served;

	if (m < 0 && (errno == EAGAIN || errno == EINTR))
		return true;
	if (m < 0)
		return false;
	/* Nothing read: the end of the channel (POLLHUP, as the loop tells it), else an empty
	 * message, refused as in the loop. */
	if (m == 0) {
		struct pollfd p = { .fd = ps.chan, .events = POLLIN };
		if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR)))
			return false;
	}
	served = m > 0 && (size_t)m <= sizeof(msg) - 1 && privsep_monitor_serve(msg, (size_t)m, fds, nfds);
	close_fds(fds, nfds);
	/* Acted on here: notify messages, a worker unit's 'Q'. 'H' waits: we are reloading or
	 * running a hook. */
	if (!served && chan_message_ok(msg, m, sizeof(msg) - 1, ps.ready_seen, ps.handover) && msg[0] == 'N')
		notify_relay(msg + 1);
	else if (!served && m == 1 && msg[0] == 'Q' && ps.handover)
		ps.worker_bye = true; /* checked just above */
	return true;
}

int privsep_wait_child(pid_t pid, int *status)
{
	int pidfd = ps.monitor && ps.chan >= 0 ? (int)syscall(SYS_pidfd_open, pid, 0) : -1;
	bool chan = true;

	/* Without a pidfd (or a channel) the plain wait below is all there is. */
	while (pidfd >= 0) {
		struct pollfd pfd[2] = { { .fd = pidfd, .events = POLLIN }, { .fd = chan ? ps.chan : -1, .events = POLLIN } };

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			chan = privsep_serve_pending();
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR))
			break;
	}
	if (pidfd >= 0)
		close(pidfd);
	while (waitpid(pid, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

/* ---- the monitor's side of the worker's life (monitor.c runs the loop) ---- */

/* A worker unit (not our child) is gone: its status is what it said ('Q'), else a failure. */
int privsep_handover_status(void)
{
	if (!ps.worker_bye)
		log_error("the worker unit ended without an orderly exit");
	return ps.worker_bye ? 0 : W_EXITCODE(1, 0);
}

/* The monitor may lack CAP_KILL (systemd's CapabilityBoundingSet= leaves it out): a
 * signal to the worker, another user, is then EPERM. kill(2) also allows a sender whose
 * effective uid is the target's real or saved uid, so the monitor sends it as the worker's
 * user for that one call (CAP_SETUID, which the drop needs anyway), then takes uid 0 back:
 * the real and saved uids stay 0, so the permitted set survives and the effective set is
 * restored from it. 0 or -errno. */
int privsep_signal_worker(pid_t worker, int sig)
{
	int err = 0;

	/* A worker unit is another user and the unit has no CAP_KILL: it is told, 'T'. */
	if (ps.handover) {
		if (send(ps.chan, "T", 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1)
			return 0;
		return errno == EPIPE || errno == ECONNRESET ? -ESRCH : -errno;
	}

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

/* The monitor's view of the split, for its loop (monitor.c). */
const char *privsep_user(void)
{
	return ps.user;
}

int privsep_save_fd(void)
{
	return ps.save_fd;
}

int privsep_worker_pidfd(void)
{
	return ps.worker_pidfd;
}

bool privsep_ready_seen(void)
{
	return ps.ready_seen;
}

void privsep_set_ready_seen(void)
{
	ps.ready_seen = true;
}

/* A worker unit's 'T' came while the worker waited for a reply: its loop acts on it. */
void privsep_set_stop_asked(void)
{
	ps.stop_asked = true;
}

void privsep_set_worker_bye(void)
{
	ps.worker_bye = true;
}
