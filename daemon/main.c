/* noisetund [-f|--foreground] [-c FILE] [-u USER] [-g GROUP] IFACE
 *
 * The contract of wireguard-go, so stock wg and wg-quick drive it: create the TUN device,
 * bind UDP, serve /var/run/wireguard/IFACE.sock, and (unless in the foreground) fork; the
 * launching process exits 0 only once all of that is ready, else non-zero with a reason.
 * Exits cleanly on SIGTERM/SIGINT, when the TUN device is deleted (not when it moves to
 * another network namespace: netlink.c), and when the socket file is deleted, saying why
 * at the default log level. With -c FILE (config mode, setup.c) it also does what
 * wg-quick does around it: addresses, routes, rules, DNS, hooks; SIGHUP reloads FILE.
 * Once all that exists it splits into a root monitor and an unprivileged worker
 * (privsep.c); the monitor runs PostUp once the worker serves the socket, or, unsplit,
 * the loop runs PostUp and PreDown itself (hooks may run `wg`). The launcher's answer
 * comes after PostUp; then the daemon lets go of its stdio (log.c: log_daemonized).
 * Under systemd ($NOISETUN_WORKER_SOCKET) the worker is not a fork but a unit of its own,
 * `noisetund --worker IFACE` (handover.c): worker_setup() below takes over from there. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include "handover.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "privsep.h"
#include "setup.h"
#include "watch.h"
#include "cfghooks.h"

enum { EV_TUN = 1, EV_UDP4 = 2, EV_UDP6 = 3, EV_TIMER = 4, EV_UAPI = 5, EV_NETLINK = 6, EV_INOTIFY = 7, EV_SIGNAL = 8,
       EV_WATCHDOG = 9 /* config mode: notify.c */, EV_HOOK = 10 /* config mode, unsplit: a hook's pidfd */,
       EV_METRICS = 11, EV_METRICS_TIMER = 12 /* --metrics-listen: metrics.c */,
       EV_CHANNEL = 13 /* a worker unit: the monitor's channel */,
       EV_UAPI_TIMER = 14 /* the control socket's tick: uapi.c */,
       EV_PEER_WATCH = 18 /* config mode, unsplit: watch.c */,
       EV_HANDSHAKES = 19 /* hspool.c: handshake jobs finished */ };

#define DEFAULT_RUN_DIR "/var/run/wireguard"
#define NT_EXIT_CONFIG  78 /* EX_CONFIG */

static void usage(FILE *f)
{
	fprintf(f, "Usage: noisetund [-f|--foreground] [-c|--config FILE] [-u|--user USER] [-g|--group GROUP]\n"
		   "                 INTERFACE\n"
		   "\n"
		   "Creates the TUN device INTERFACE and serves its control socket in\n"
		   DEFAULT_RUN_DIR "/INTERFACE.sock, for wg(8), wg-quick(8) and noisetun(8).\n"
		   "\n"
		   "  -f, --foreground   stay in the foreground (also: WG_PROCESS_FOREGROUND=1)\n"
		   "  -c, --config FILE  config mode: apply the wg-quick config FILE (addresses,\n"
		   "                     routes, DNS, hooks) and undo it on exit; SIGHUP reloads it\n"
		   "  -u, --user USER    once set up, the tunnel runs as USER (default: a uid of\n"
		   "                     its own from 2119041024-2119042047) with no capability\n"
		   "                     under a seccomp filter, while a root monitor opens its\n"
		   "                     sockets and undoes the setup at exit; `root' keeps one\n"
		   "                     root process (also: NOISETUN_USER)\n"
		   "  -g, --group GROUP  members of GROUP may change settings over the control\n"
		   "                     socket (mode 0770), not only root (also: NOISETUN_GROUP)\n"
		   "      --metrics-listen ADDR:PORT\n"
		   "                     serve Prometheus metrics at http://ADDR:PORT/metrics\n"
		   "                     (IPv6 as [ADDR]:PORT; also: NOISETUN_METRICS_LISTEN; off\n"
		   "                     by default)\n"
		   "  -h, --help         this text\n"
		   "\n"
		   "Environment: LOG_LEVEL=verbose|error|silent; NOISETUN_SECCOMP=0 runs the worker\n"
		   "without its seccomp filter (debugging, valgrind); NOISETUN_RUN_DIR moves the\n"
		   "socket directory (for tests; wg looks only in " DEFAULT_RUN_DIR ").\n"
		   "Under systemd (noisetun@.service), NOISETUN_WORKER_SOCKET=PATH hands the tunnel to\n"
		   "a worker that systemd starts with a uid of its own (noisetun-worker@.service,\n"
		   "which runs `noisetund --worker INTERFACE') instead of forking one.\n"
		   "\n"
		   "Exit status: 0; 78 (EX_CONFIG) when FILE is missing, unreadable or invalid;\n"
		   "2 for a bad command line; 1 for any other failure.\n");
}

/* Descriptors the launcher left open without O_CLOEXEC (a shell's pipe, a supervisor's
 * socket) would reach the worker, the monitor's hooks and everything they start: keep
 * only stdin, stdout and stderr, /dev/null where one is missing. Nothing else is open
 * yet. 0 or -errno. */
static int close_inherited_fds(int keep)
{
	for (int fd = 0; fd <= STDERR_FILENO; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int null = open("/dev/null", O_RDWR);
		if (null < 0)
			return -errno;
		if (null != fd) { /* the lowest free number: below fd is taken, so this cannot be */
			close(null);
			return -EBADF;
		}
	}
	/* Else walk /proc: before Linux 5.9 (ENOSYS), or a seccomp policy that refuses it
	 * (EPERM under an older systemd's SystemCallFilter=@system-service). */
	if (close_range((unsigned)keep + 1, ~0U, 0) == 0)
		return 0;
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;

	if (!dir)
		return -errno;
	while ((e = readdir(dir))) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		/* /proc/self/fd is listed in fd order, the position being the number: closing
		 * what was listed skips nothing still to come. */
		if (*e->d_name && !*end && fd > keep && fd != dirfd(dir))
			close((int)fd);
	}
	closedir(dir);
	return 0;
}

static int add_fd(struct device *dev, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(dev->epoll, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* The handshake threads and their eventfd, before the sandbox (which allows no new
 * thread); without them the loop runs each handshake job as it is submitted. */
static int start_handshakes(struct device *dev)
{
	hspool_start();
	datapool_start();
	return hspool_fd() >= 0 ? add_fd(dev, hspool_fd(), EV_HANDSHAKES) : 0;
}

/* A daemon that did not split runs PostUp and PreDown from its loop, serving the control
 * socket meanwhile (a hook may run `wg`); the launcher has its answer once PostUp is done. */
static struct {
	bool foreground;
	int ready_fd;                   /* to the launcher until it has its answer; else -1 */
	bool starting;                  /* PostUp runs: not ready yet */
	bool failed;                    /* the start failed after all (PostUp, a signal) */
	bool pre_down;                  /* a stop began with PreDown */
	int hook_pidfd;                 /* the hook that runs; -1: none */
} st = { .ready_fd = -1, .hook_pidfd = -1 };

static void tell_launcher(const char *msg)
{
	if (st.foreground) {
		if (strcmp(msg, "ok"))
			fprintf(stderr, "%s\n", msg);
	} else if (st.ready_fd >= 0) {
		if (write(st.ready_fd, msg, strlen(msg)) < 0) {
			/* the launcher is gone; nobody is left to tell */
		}
		close(st.ready_fd);
		st.ready_fd = -1;
	}
}

static void announce_ready(struct device *dev)
{
	st.starting = false;
	notify_ready(dev);
	tell_launcher("ok");
	if (!st.foreground)
		log_daemonized(); /* the launcher's pipe or terminal is not ours to hold */
	log_verbose("ready: UDP port %u, control socket %s", dev->listen_port, dev->uapi_path);
}

/* r from config_hooks_start/next: 1 another hook runs, 0 done, -1 a hook failed. */
static void hooks_progress(struct device *dev, int r)
{
	if (r == 1) {
		int err = add_fd(dev, st.hook_pidfd, EV_HOOK);
		if (!err)
			return;
		log_error("epoll: %s; the hooks are not waited for", strerror(-err));
		config_hooks_abort();
		r = -1;
	}
	st.hook_pidfd = -1;
	if (st.starting && r == 0) {
		announce_ready(dev);
	} else if (st.starting) {
		char msg[600];
		snprintf(msg, sizeof(msg), "noisetund: %s: %s", dev->ifname, config_hooks_error());
		tell_launcher(msg);
		st.failed = true;
		dev->stopping = true;
	} else { /* PreDown is done: now stop */
		dev->stopping = true;
	}
}

/* Everything the launching process waits for. On failure, *what names the step. */
static int setup(struct device *dev, const char *ifname, const char *run_dir, const char *metrics,
		 const char **what)
{
	sigset_t mask;
	int err;

	*what = "out of memory";
	if ((err = device_init(dev, ifname)))
		return err;
	*what = "epoll";
	if ((dev->epoll = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;

	*what = "cannot create TUN device";
	if ((dev->tun = tun_open(ifname, dev->ifname, &dev->vnet, &dev->tun_uso)) < 0)
		return dev->tun;
	log_ifname = dev->ifname;
	if (!(dev->ifindex = (int)if_nametoindex(dev->ifname)))
		return -errno;
	*what = "cannot set the MTU";
	if ((err = tun_set_mtu(dev->ifname, NT_DEFAULT_MTU)))
		return err;
	if ((err = add_fd(dev, dev->tun, EV_TUN)))
		return err;

	*what = "cannot bind UDP";
	if ((err = udp_bind(dev, 0)))
		return err;

	*what = "timerfd";
	if ((dev->timerfd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC)) < 0)
		return -errno;
	if ((err = add_fd(dev, dev->timerfd, EV_TIMER)))
		return err;

	*what = "cannot watch the link over rtnetlink";
	if ((err = link_monitor_open(dev)))
		return err;

	*what = "cannot serve the control socket";
	if ((err = uapi_listen(dev, run_dir, EV_UAPI, EV_UAPI_TIMER)))
		return err;
	/* Deleting the socket file is a way to stop us, as with wireguard-go. */
	if ((dev->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(dev->inotify, run_dir, IN_DELETE | IN_MOVED_FROM) < 0)
		return -errno;
	if ((err = add_fd(dev, dev->inotify, EV_INOTIFY)))
		return err;

	/* As root and before the split: the worker may open no socket. */
	*what = "cannot listen for metrics (--metrics-listen ADDR:PORT)";
	if (metrics && *metrics && (err = metrics_open(metrics, dev->epoll, EV_METRICS, EV_METRICS_TIMER)))
		return err;

	*what = "signals";
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (config_active())
		sigaddset(&mask, SIGHUP); /* config mode: reload */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (dev->signalfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	if ((err = add_fd(dev, dev->signalfd, EV_SIGNAL)))
		return err;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

/* A worker unit (handover.c): the device the monitor set up, from what it hands over, as
 * setup() and a fork would have left it. On failure *what names the step. */
static int worker_setup(struct device *dev, const char *ifname, const char **what)
{
	struct epoll_event chan_ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = EV_CHANNEL };
	const char *offload = getenv("NOISETUN_OFFLOAD");
	struct handover_worker w;
	struct nt_uapi_set set;
	char dir[sizeof(w.uapi_path)], *slash;
	socklen_t len = sizeof(int);
	int err, size = 0, chan;
	sigset_t mask;

	if ((err = handover_receive(ifname, &w, what)))
		return err;
	*what = "out of memory";
	if ((err = device_init(dev, w.ifname)))
		goto out;
	log_ifname = dev->ifname;
	dev->ifindex = w.ifindex;
	dev->mtu = w.mtu;
	dev->vnet = w.vnet;
	dev->listen_port = w.listen_port;
	dev->fwmark = w.fwmark;
	dev->no_mss_clamp = w.no_mss_clamp;
	dev->tun_uso = w.tun_uso;
	dev->tun = w.tun;
	dev->udp4 = w.udp4;
	dev->udp6 = w.udp6;
	w.tun = w.udp4 = w.udp6 = -1;
	chan = w.chan;
	privsep_worker_adopt(dev, w.chan, w.save);
	w.chan = w.save = -1;

	*what = "epoll";
	if ((dev->epoll = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = add_fd(dev, dev->tun, EV_TUN)) || (err = add_fd(dev, dev->udp4, EV_UDP4)) ||
	    (dev->udp6 >= 0 && (err = add_fd(dev, dev->udp6, EV_UDP6))))
		goto out;
	dev->udp_gso = getsockopt(dev->udp4, IPPROTO_UDP, UDP_SEGMENT, &size, &len) == 0 &&
		       !(offload && !strcmp(offload, "0"));
	*what = "timerfd";
	if ((dev->timerfd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = add_fd(dev, dev->timerfd, EV_TIMER)))
		goto out;
	*what = "cannot serve --metrics-listen";
	if (w.metrics >= 0) {
		if ((err = metrics_adopt(w.metrics, dev->epoll, EV_METRICS, EV_METRICS_TIMER)))
			goto out;
		w.metrics = -1;
	}
	*what = "cannot watch the link over rtnetlink";
	if ((err = link_monitor_adopt(dev, w.netlink)))
		goto out;
	w.netlink = -1;
	device_set_up(dev, w.up);
	*what = "cannot serve the control socket";
	if ((err = uapi_adopt(dev, w.uapi, w.uapi_path, EV_UAPI, EV_UAPI_TIMER)))
		goto out;
	w.uapi = -1;
	/* Deleting the socket file stops us, as it does a fork. */
	snprintf(dir, sizeof(dir), "%s", dev->uapi_path);
	if ((slash = strrchr(dir, '/')) && slash != dir)
		*slash = 0;
	if ((dev->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(dev->inotify, dir, IN_DELETE | IN_MOVED_FROM) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = add_fd(dev, dev->inotify, EV_INOTIFY)))
		goto out;
	*what = "signals";
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* asks the monitor to reload */
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (dev->signalfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    epoll_ctl(dev->epoll, EPOLL_CTL_ADD, chan, &chan_ev) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = add_fd(dev, dev->signalfd, EV_SIGNAL)))
		goto out;
	signal(SIGPIPE, SIG_IGN);
	*what = "sd_notify watchdog";
	if ((err = notify_worker_handover(dev->epoll, EV_WATCHDOG, w.watchdog_usec)))
		goto out;
	*what = "cannot apply the configuration handed over";
	if (w.set_len) {
		if (!(err = nt_uapi_parse_set(&set, w.set, w.set_len))) {
			err = uapi_apply_set(dev, &set);
			nt_uapi_set_free(&set);
		}
	}
out:
	if (w.set) {
		explicit_bzero(w.set, w.set_len);
		free(w.set);
	}
	{
		int left[] = { w.tun, w.udp4, w.udp6, w.uapi, w.netlink, w.chan, w.save, w.metrics };
		for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
			if (left[i] >= 0)
				close(left[i]);
	}
	return err;
}

/* A signalfd in an epoll set wakes it for the signals of the process that added it: the
 * worker of a split daemon needs its own, for the same signals. */
static int renew_signalfd(struct device *dev)
{
	sigset_t mask;
	int fd;

	if (sigprocmask(SIG_BLOCK, NULL, &mask) < 0 || (fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return -errno;
	if (epoll_ctl(dev->epoll, EPOLL_CTL_DEL, dev->signalfd, NULL) < 0) {
		close(fd);
		return -errno;
	}
	close(dev->signalfd);
	dev->signalfd = fd;
	return add_fd(dev, fd, EV_SIGNAL);
}

static void arm_timer(struct device *dev, uint64_t *armed)
{
	uint64_t deadline = device_next_deadline(dev);
	struct itimerspec its = { 0 };

	if (deadline == *armed)
		return;
	*armed = deadline;
	if (deadline != UINT64_MAX) {
		/* An absolute 0 would disarm; anything in the past fires at once. */
		deadline = proto_to_real_ns(deadline);
		if (!deadline)
			deadline = 1;
		its.it_value.tv_sec = (time_t)(deadline / NT_NSEC_PER_SEC);
		its.it_value.tv_nsec = (long)(deadline % NT_NSEC_PER_SEC);
	}
	if (timerfd_settime(dev->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		log_error("timerfd_settime: %s", strerror(errno));
}

static void socket_deleted(struct device *dev)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const char *name = strrchr(dev->uapi_path, '/') + 1;
	ssize_t n;

	while ((n = read(dev->inotify, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && !strcmp(ev->name, name)) {
				log_notice("control socket %s deleted, exiting", dev->uapi_path);
				dev->stopping = true;
			}
			p += sizeof(*ev) + ev->len;
		}
	}
}

static void run(struct device *dev)
{
	struct epoll_event events[32];
	uint64_t armed = 0;

	while (!dev->stopping) {
		/* A worker unit's stop: from its channel, here or inside a call to the monitor. */
		if (privsep_stop_asked()) {
			dev->stopping = true;
			break;
		}
		arm_timer(dev, &armed);
		if (watch_fd_changed() && watch_fd() >= 0 && add_fd(dev, watch_fd(), EV_PEER_WATCH))
			log_error("watching peer files: epoll: %s", strerror(errno));
		notify_status(dev); /* config mode: STATUS= when the peer count changed */
		int n = epoll_wait(dev->epoll, events, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < n && !dev->stopping; i++) {
			uint64_t tag = events[i].data.u64, expirations;
			struct signalfd_siginfo si;

			switch (tag) {
			case EV_TUN:
				send_tun_batch(dev);
				break;
			case EV_UDP4:
				receive_udp(dev, dev->udp4);
				break;
			case EV_UDP6:
				receive_udp(dev, dev->udp6);
				break;
			case EV_HANDSHAKES:
				hspool_ack();
				device_collect(dev);
				break;
			case EV_TIMER:
				if (read(dev->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
					log_error("timerfd read: %s", strerror(errno));
				armed = 0; /* fired: re-arm whatever is next */
				device_run_timers(dev, proto_now_ns());
				break;
			case EV_UAPI:
				uapi_accept(dev);
				break;
			case EV_UAPI_TIMER:
				uapi_tick(dev);
				break;
			case EV_NETLINK:
				link_monitor_event(dev);
				break;
			case EV_INOTIFY:
				socket_deleted(dev);
				break;
			case EV_PEER_WATCH:
				watch_event(dev);
				break;
			case EV_SIGNAL:
				if (read(dev->signalfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) { /* config mode; the worker asks the monitor */
						if (!privsep_forward_reload())
							config_reload(dev, false); /* a daemon without a monitor */
						break;
					}
					log_notice("received signal %u (SIG%s), exiting", si.ssi_signo,
						   sigabbrev_np((int)si.ssi_signo) ? sigabbrev_np((int)si.ssi_signo) : "?");
					/* Unsplit config mode: PreDown while we still serve the socket. */
					if (config_active() && !st.starting && !st.pre_down) {
						st.pre_down = true;
						notify_stopping();
						int r = config_hooks_start(HOOK_PRE_DOWN, &st.hook_pidfd);
						if (r == 1) {
							hooks_progress(dev, r);
							if (!dev->stopping)
								break;
						}
					}
				}
				dev->stopping = true;
				break;
			case EV_HOOK:
				if (epoll_ctl(dev->epoll, EPOLL_CTL_DEL, st.hook_pidfd, NULL) < 0)
					log_error("epoll: %s", strerror(errno));
				hooks_progress(dev, config_hooks_next(&st.hook_pidfd));
				break;
			case EV_WATCHDOG: /* config mode */
				notify_watchdog();
				break;
			case EV_METRICS:
				metrics_accept(dev);
				break;
			case EV_METRICS_TIMER:
				metrics_tick(dev);
				break;
			case EV_CHANNEL: /* a worker unit: the monitor says stop, or is gone */
				privsep_worker_channel();
				break;
			default:
				if (uapi_is_conn(events[i].data.ptr))
					uapi_event(dev, events[i].data.ptr, events[i].events);
				else if (metrics_is_conn(events[i].data.ptr))
					metrics_event(dev, events[i].data.ptr);
				break;
			}
		}
	}
}

static void teardown(struct device *dev)
{
	hspool_stop();
	datapool_stop();
	uapi_close(dev);
	metrics_shed(dev);
	udp_close(dev);
	device_destroy(dev);
	int fds[] = { dev->tun, dev->epoll, dev->timerfd, dev->netlink, dev->inotify, dev->signalfd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

int main(int argc, char *argv[])
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "group", required_argument, NULL, 'g' },
		{ "metrics-listen", required_argument, NULL, 'M' },
		{ "help", no_argument, NULL, 'h' },
		{ "worker", no_argument, NULL, 'W' },
		{ 0 },
	};
	const char *fg_env = getenv("WG_PROCESS_FOREGROUND");
	const char *run_dir = getenv("NOISETUN_RUN_DIR");
	const char *metrics = getenv("NOISETUN_METRICS_LISTEN");
	bool foreground = fg_env && !strcmp(fg_env, "1");
	static struct device dev;
	const char *what = "", *config_path = NULL, *user = NULL, *group = NULL;
	int c, err, ready[2] = { -1, -1 };
	bool worker = false;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "fc:u:g:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 'c':
			config_path = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'g':
			group = optarg;
			break;
		case 'M':
			metrics = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'W':
			worker = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	if (!run_dir || !*run_dir)
		run_dir = DEFAULT_RUN_DIR;
	/* A worker unit keeps fd 3: its socket (LISTEN_FDS). */
	if ((err = close_inherited_fds(worker ? 3 : STDERR_FILENO))) {
		fprintf(stderr, "noisetund: cannot close inherited file descriptors: %s\n", strerror(-err));
		return 1;
	}
	log_init();
	/* Keys live in this process: no core dumps, no ptrace by other users. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "noisetund: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
		return 1;
	}
	log_ifname = argv[optind];
	if (!worker && privsep_init(user, group))
		return 1;
	if (nt_crypto_init()) {
		fprintf(stderr, "noisetund: cannot initialise libsodium\n");
		return 1;
	}
	if (worker) {
		/* the handshake threads before the sandbox, which allows no new thread */
		if ((err = worker_setup(&dev, argv[optind], &what)) ||
		    (what = "handshake threads", err = start_handshakes(&dev)) || (err = privsep_drop(&dev, &what))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "noisetund: %s: %s: %s", argv[optind], what, strerror(-err));
			fprintf(stderr, "%s\n", msg);
			privsep_worker_failed(msg);
			teardown(&dev);
			return 1;
		}
		privsep_worker_ready();
		log_verbose("worker unit ready: UDP port %u, control socket %s", dev.listen_port, dev.uapi_path);
		run(&dev);
		privsep_worker_save(&dev);
		uapi_close(&dev);
		teardown(&dev);
		notify_close();
		privsep_worker_exit(0);
		return 0;
	}
	/* config mode: a bad FILE or a failing PreUp stops us before anything exists. A bad
	 * file is final (EX_CONFIG: systemd's RestartPreventExitStatus=, sysexits.h). */
	if (config_path && (err = config_prepare(config_path, argv[optind])))
		return err > 0 ? NT_EXIT_CONFIG : 1;

	if (!foreground) {
		if (pipe2(ready, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
			fprintf(stderr, "noisetund: %s: cannot start in the background: %s\n", argv[optind], strerror(errno));
			return 1;
		}
		if (pid > 0) {
			/* The launcher: wait for the daemon to say it is ready, or why not. */
			char msg[256] = { 0 };
			ssize_t n;

			close(ready[1]);
			while ((n = read(ready[0], msg, sizeof(msg) - 1)) < 0 && errno == EINTR)
				;
			if (n > 0 && !strcmp(msg, "ok"))
				return 0;
			fprintf(stderr, "%s\n", n > 0 ? msg : "noisetund: the daemon died while starting");
			return 1;
		}
		close(ready[0]);
		if (setsid() < 0)
			return 1;
	}

	err = setup(&dev, argv[optind], run_dir, metrics, &what);
	if (!err && config_path)
		err = config_up(&dev, &what);
	if (err) {
		char msg[256];
		snprintf(msg, sizeof(msg), "noisetund: %s: %s: %s", argv[optind], what, strerror(-err));
		if (foreground) {
			fprintf(stderr, "%s\n", msg);
		} else if (write(ready[1], msg, strlen(msg)) < 0) {
			/* the launcher is gone; nobody is left to tell */
		}
		config_down(&dev, false, false);
		teardown(&dev);
		return 1;
	}
	if (!err && config_path && !privsep_enabled())
		watch_start(&dev, config_current()); /* the monitor's, when split */
	if ((err = notify_init(dev.epoll, EV_WATCHDOG)))
		log_error("sd_notify: cannot use $NOTIFY_SOCKET: %s", strerror(-err));
	st.foreground = foreground;
	st.ready_fd = ready[1];
	if (privsep_enabled()) {
		/* The monitor runs PostUp once the worker serves the socket, then answers the
		 * launcher and lets go of its stdio. */
		pid = privsep_is_handover() ? handover_start(&dev, &what) : privsep_fork(&dev, ready[1]);
		if (pid > 0)
			return privsep_monitor(&dev, pid, ready[1], foreground);
		if (!pid)
			st.ready_fd = -1; /* closed: the monitor answers the launcher */
		if (!pid && !foreground)
			log_daemonized(); /* before the filter: it leaves no dup2 */
		if (!pid && (err = renew_signalfd(&dev)))
			what = "signals";
		if (!pid && !err && (err = start_handshakes(&dev)))
			what = "handshake threads";
		if (pid < 0 || err || (err = privsep_drop(&dev, &what))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "noisetund: %s: %s: %s", dev.ifname,
				 pid < 0 && !privsep_is_handover() ? "cannot start the worker" : what, strerror(pid < 0 ? (int)-pid : -err));
			if (pid < 0) {
				if (foreground)
					fprintf(stderr, "%s\n", msg);
				else if (write(ready[1], msg, strlen(msg)) < 0) {
					/* the launcher is gone */
				}
				config_down(&dev, false, false);
			} else {
				privsep_worker_failed(msg);
			}
			teardown(&dev);
			config_post_down();
			return 1;
		}
		privsep_worker_ready();
		log_verbose("ready: UDP port %u, control socket %s", dev.listen_port, dev.uapi_path);
	} else {
		if ((err = start_handshakes(&dev)))
			log_error("handshake threads: epoll: %s", strerror(-err));
		st.starting = true;
		hooks_progress(&dev, config_hooks_start(HOOK_POST_UP, &st.hook_pidfd));
	}
	run(&dev);
	if (st.starting) {
		char msg[256];
		snprintf(msg, sizeof(msg), "noisetund: %s: stopped while starting", dev.ifname);
		tell_launcher(msg);
		st.failed = true;
	}
	if (!st.failed)
		notify_stopping();
	privsep_worker_save(&dev);
	/* Hooks from here on run while nobody serves the socket: a `wg` in them must fail at
	 * once, not wait for an answer. */
	uapi_close(&dev);
	config_down(&dev, !st.failed, false);
	teardown(&dev);
	config_post_down();
	notify_close();
	return st.failed ? 1 : 0;
}
