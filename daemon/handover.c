/* The worker as a unit of its own (issue 15; docs/threat-model.md, "The systemd unit's
 * exposure"). Under systemd the monitor's unit may not change uids (no CAP_SETUID, no
 * @privileged): systemd starts the worker instead, noisetun-worker@.service with
 * DynamicUser=, no capability and its own sandbox, on the first connection to
 * noisetun-worker@.socket (root's, 0600). The monitor, set up as before, connects and hands
 * over in one message what a fork would have left the worker:
 *
 *   struct msg_info, then SCM_RIGHTS: TUN, UDP v4, control-socket listener, rtnetlink
 *   socket, a memfd with the device's keys and peers as a set=1 body, then UDP v6,
 *   SaveConfig's memfd and the --metrics-listen socket where there are.
 *
 * The worker answers 'P' with SCM_CREDENTIALS (the kernel checks the pid and uid it
 * claims): the monitor learns the pid it signals and watches (a pidfd: the worker is not its
 * child), and refuses a worker running as root. It then stops taking credentials (they
 * would crowd out the descriptors of later messages) and says so, 'p': only then does the
 * worker send anything else. From then on the connection is privsep's
 * channel, as the socketpair of a fork is; an orderly exit adds 'Q' before it closes, since
 * the monitor sees no exit status, and the monitor stops the worker with 'T' where it would
 * signal a fork (another user: that would need CAP_KILL). Outside systemd nothing of this
 * runs: the fork stays. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "handover.h"
#include "noisetund.h"
#include "setup.h"

#define MSG_MAGIC     0x4f48544eu /* "NTHO" */
#define MSG_VERSION   2u
#define MAX_FDS       8
#define MAX_SET_LEN   (16u << 20)
#define START_TIMEOUT 30 /* s: systemd starts the worker meanwhile */

struct msg_info {
	uint32_t magic, version;
	char ifname[IF_NAMESIZE];
	char uapi_path[108];
	int32_t ifindex;
	uint32_t mtu, fwmark;
	uint16_t listen_port;
	uint8_t vnet, up, no_mss_clamp, has_udp6, has_save, has_metrics, tun_uso;
	uint64_t watchdog_usec;
	uint64_t set_len;
};

bool handover_wanted(void)
{
	const char *path = getenv(HANDOVER_ENV);

	return path && *path;
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* A memfd holding len bytes of text. */
static int memfd_with(const char *name, const char *text, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? -errno : -EIO;
			close(fd);
			return err;
		}
		off += (size_t)w;
	}
	return fd;
}

/* ---- the monitor ---- */

pid_t handover_start(struct device *dev, const char **what)
{
	const char *path = getenv(HANDOVER_ENV);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = START_TIMEOUT };
	struct msg_info info = { .magic = MSG_MAGIC, .version = MSG_VERSION };
	int fds[MAX_FDS], nfds = 0, chan = -1, setfd = -1, save = -1, on = 1, off = 0, err;
	char *text = NULL, hello[2];
	size_t text_len = 0;
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} cred_ctl;
	struct ucred cred = { 0 };
	bool have_cred = false;
	ssize_t n;

	*what = "the worker's socket: $" HANDOVER_ENV " is too long";
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;

	*what = "cannot hand the configuration over";
	if (config_active() && (err = config_handover_set(&text, &text_len)))
		return err;
	if ((setfd = memfd_with("noisetund-handover", text ? text : "", text_len)) < 0) {
		err = setfd;
		goto out;
	}
	if (config_active() && (save = memfd_create("noisetund-saveconfig", MFD_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}

	snprintf(info.ifname, sizeof(info.ifname), "%s", dev->ifname);
	snprintf(info.uapi_path, sizeof(info.uapi_path), "%s", dev->uapi_path);
	info.ifindex = dev->ifindex;
	info.mtu = dev->mtu;
	info.fwmark = dev->fwmark;
	info.listen_port = dev->listen_port;
	info.vnet = dev->vnet;
	info.up = dev->up;
	info.no_mss_clamp = dev->no_mss_clamp;
	info.has_udp6 = dev->udp6 >= 0;
	info.has_save = save >= 0;
	info.has_metrics = metrics_listen_fd() >= 0;
	info.tun_uso = dev->tun_uso;
	info.watchdog_usec = notify_watchdog_usec();
	info.set_len = text_len;
	fds[nfds++] = dev->tun;
	fds[nfds++] = dev->udp4;
	fds[nfds++] = uapi_listen_fd();
	fds[nfds++] = dev->netlink;
	fds[nfds++] = setfd;
	if (dev->udp6 >= 0)
		fds[nfds++] = dev->udp6;
	if (save >= 0)
		fds[nfds++] = save;
	if (metrics_listen_fd() >= 0)
		fds[nfds++] = metrics_listen_fd();

	*what = "cannot reach the worker's socket (noisetun-worker@.socket)";
	if ((chan = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(chan, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0 ||
	    setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(chan, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(chan, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		goto out;
	}
	{
		struct iovec iov = { &info, sizeof(info) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
				      .msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int)) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		memset(&ctl, 0, sizeof(ctl));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
		*what = "cannot hand over to the worker";
		if (sendmsg(chan, &msg, MSG_NOSIGNAL) != (ssize_t)sizeof(info)) {
			err = -errno;
			goto out;
		}
	}

	/* The worker's answer: hostile like all it says. One byte 'P', the kernel's word on
	 * who sent it, nothing else. */
	*what = "no answer from the worker (see noisetun-worker@)";
	{
		struct iovec iov = { hello, sizeof(hello) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cred_ctl.buf,
				      .msg_controllen = sizeof(cred_ctl.buf) };

		while ((n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
			;
		if (n < 0) {
			err = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
			    c->cmsg_len == CMSG_LEN(sizeof(cred))) {
				memcpy(&cred, CMSG_DATA(c), sizeof(cred));
				have_cred = true;
			} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				close_all((int *)CMSG_DATA(c), (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)));
			}
		}
		*what = "the worker's answer is not one";
		if (n != 1 || hello[0] != 'P' || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || !have_cred) {
			err = -EPROTO;
			goto out;
		}
		*what = "the worker runs as root (noisetun-worker@ must have DynamicUser=)";
		if (cred.uid == 0 || cred.gid == 0 || cred.pid <= 1) {
			err = -EPERM;
			goto out;
		}
	}
	/* Read: its copy of the keys goes with the worker's; ours is wiped with the device. */
	if (ftruncate(setfd, 0) < 0)
		log_error("handover memfd: %s", strerror(errno));
	*what = "cannot set up the channel";
	tv.tv_sec = 0;
	if (setsockopt(chan, SOL_SOCKET, SO_PASSCRED, &off, sizeof(off)) < 0 ||
	    send(chan, "p", 1, MSG_NOSIGNAL) != 1 || setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(chan, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    (err = privsep_monitor_adopt(dev, chan, cred.pid, save)) < 0) {
		err = err < 0 ? err : -errno;
		goto out;
	}
	log_verbose("handed over to the worker: pid %d, uid %u", (int)cred.pid, (unsigned)cred.uid);
	chan = save = -1; /* privsep's now */
	err = (int)cred.pid;
out:
	if (text) {
		explicit_bzero(text, text_len);
		free(text);
	}
	if (setfd >= 0) {
		if (err < 0 && ftruncate(setfd, 0) < 0) {
			/* the fd goes anyway; a worker that has it keeps its copy */
		}
		close(setfd);
	}
	if (save >= 0)
		close(save);
	if (chan >= 0)
		close(chan);
	return err;
}

/* ---- the worker ---- */

static bool terminated(const char *s, size_t size)
{
	return memchr(s, 0, size) != NULL;
}

int handover_receive(const char *ifname, struct handover_worker *w, const char **what)
{
	const char *pid_env = getenv("LISTEN_PID"), *fds_env = getenv("LISTEN_FDS");
	struct msg_info info;
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	int fds[MAX_FDS], nfds = 0, want, setfd = -1, chan, err;
	struct ucred peer;
	socklen_t plen = sizeof(peer);
	struct stat st;
	ssize_t n;

	memset(w, 0, sizeof(*w));
	w->chan = w->tun = w->udp4 = w->udp6 = w->uapi = w->netlink = w->save = w->metrics = -1;

	*what = "not started by noisetun-worker@.socket (no $LISTEN_FDS=1 for this process)";
	if (!pid_env || strtol(pid_env, NULL, 10) != (long)getpid() || !fds_env || strcmp(fds_env, "1"))
		return -EBADF;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");

	/* One connection: root's (the socket is 0600 root's, and we check). */
	*what = "cannot accept the monitor's connection";
	while ((chan = accept4(3, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
		;
	err = -errno;
	close(3);
	if (chan < 0)
		return err;
	*what = "the connection is not root's";
	if (getsockopt(chan, SOL_SOCKET, SO_PEERCRED, &peer, &plen) < 0 || peer.uid != 0) {
		close(chan);
		return -EPERM;
	}

	*what = "cannot take the monitor's handover";
	{
		struct iovec iov = { &info, sizeof(info) };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };

		while ((n = recvmsg(chan, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
			;
		if (n < 0) {
			err = -errno;
			goto fail;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
				if (nfds + k > MAX_FDS) {
					close_all((int *)CMSG_DATA(c), k);
					nfds = MAX_FDS + 1;
					continue;
				}
				memcpy(fds + nfds, CMSG_DATA(c), (size_t)k * sizeof(int));
				nfds += k;
			}
		}
		err = -EPROTO;
		if (nfds > MAX_FDS) {
			nfds = 0;
			goto fail;
		}
		if (n != (ssize_t)sizeof(info) || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || info.magic != MSG_MAGIC ||
		    info.version != MSG_VERSION)
			goto fail;
	}
	want = 5 + !!info.has_udp6 + !!info.has_save + !!info.has_metrics;
	if (nfds != want || !terminated(info.ifname, sizeof(info.ifname)) || strcmp(info.ifname, ifname) ||
	    !terminated(info.uapi_path, sizeof(info.uapi_path)) || info.uapi_path[0] != '/' || info.ifindex <= 0 ||
	    info.mtu > MAX_PACKET || info.set_len > MAX_SET_LEN)
		goto fail;

	/* The set body: exactly set_len bytes in the memfd. */
	setfd = fds[4];
	if (fstat(setfd, &st) < 0 || (uint64_t)st.st_size != info.set_len) {
		err = -EPROTO;
		goto fail;
	}
	if (!(w->set = malloc(info.set_len + 1))) {
		err = -ENOMEM;
		goto fail;
	}
	w->set_len = info.set_len;
	for (size_t off = 0; off < info.set_len;) {
		ssize_t r = pread(setfd, w->set + off, info.set_len - off, (off_t)off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EPROTO;
			goto fail;
		}
		off += (size_t)r;
	}
	w->set[info.set_len] = 0;
	if (ftruncate(setfd, 0) < 0) {
		/* the monitor empties it too, once we answer */
	}
	close(setfd);
	fds[4] = -1;

	/* The answer, with who we are (the kernel checks it). */
	{
		struct ucred me = { .pid = getpid(), .uid = getuid(), .gid = getgid() };
		union {
			char buf[CMSG_SPACE(sizeof(struct ucred))];
			struct cmsghdr align;
		} cctl;
		struct iovec iov = { "P", 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cctl.buf, .msg_controllen = sizeof(cctl.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

		memset(&cctl, 0, sizeof(cctl));
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof(me));
		memcpy(CMSG_DATA(c), &me, sizeof(me));
		*what = "cannot answer the monitor";
		if (sendmsg(chan, &msg, MSG_NOSIGNAL) != 1) {
			err = -errno;
			goto fail;
		}
	}
	/* Its 'p': from here on the channel is privsep's. */
	{
		struct timeval tv = { .tv_sec = START_TIMEOUT }, none = { 0 };
		char ack[2];

		*what = "no word from the monitor after the handover";
		if (setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
			err = -errno;
			goto fail;
		}
		while ((n = recv(chan, ack, sizeof(ack), 0)) < 0 && errno == EINTR)
			;
		if (n != 1 || ack[0] != 'p') {
			err = n < 0 ? -errno : -EPROTO;
			goto fail;
		}
		if (setsockopt(chan, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof(none)) < 0) {
			err = -errno;
			goto fail;
		}
	}

	memcpy(w->ifname, info.ifname, sizeof(w->ifname));
	memcpy(w->uapi_path, info.uapi_path, sizeof(w->uapi_path));
	w->ifindex = info.ifindex;
	w->mtu = info.mtu;
	w->fwmark = info.fwmark;
	w->listen_port = info.listen_port;
	w->vnet = info.vnet;
	w->up = info.up;
	w->no_mss_clamp = info.no_mss_clamp;
	w->tun_uso = info.tun_uso;
	w->watchdog_usec = info.watchdog_usec;
	w->chan = chan;
	w->tun = fds[0];
	w->udp4 = fds[1];
	w->uapi = fds[2];
	w->netlink = fds[3];
	nfds = 5;
	if (info.has_udp6)
		w->udp6 = fds[nfds++];
	if (info.has_save)
		w->save = fds[nfds++];
	if (info.has_metrics)
		w->metrics = fds[nfds++];
	return 0;
fail:
	close_all(fds, nfds);
	if (w->set) {
		explicit_bzero(w->set, w->set_len);
		free(w->set);
		w->set = NULL;
	}
	close(chan);
	return err;
}
