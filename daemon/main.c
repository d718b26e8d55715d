/* noisetund [-f|--foreground] [-c FILE] [-u USER] [-g GROUP] IFACE
 *
 * The contract of wireguard-go, so stock wg and wg-quick drive it: create the TUN device,
 * bind UDP, serve /var/run/wireguard/IFACE.sock, and (unless in the foreground) fork; the
 * launching process exits 0 only once all of that is ready, else non-zero with a reason.
 * Exits cleanly on SIGTERM/SIGINT, when the TUN device is deleted, and when the socket
 * file is deleted. With -c FILE (config mode, setup.c) it also does what wg-quick does
 * around it: addresses, routes, rules, DNS, hooks; SIGHUP reloads FILE. Once all that
 * exists it splits into a root monitor and an unprivileged worker (privsep.c). */
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

#include "noisetund.h"

enum { EV_TUN = 1, EV_UDP4 = 2, EV_UDP6 = 3, EV_TIMER = 4, EV_UAPI = 5, EV_NETLINK = 6, EV_INOTIFY = 7, EV_SIGNAL = 8,
       EV_WATCHDOG = 9 /* config mode: notify.c */ };

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
		   "  -u, --user USER    once set up, the tunnel runs as USER (default nobody) with\n"
		   "                     CAP_NET_ADMIN and CAP_NET_BIND_SERVICE under a seccomp\n"
		   "                     filter, while a root monitor undoes the setup at exit;\n"
		   "                     `root' keeps one root process (also: NOISETUN_USER)\n"
		   "  -g, --group GROUP  members of GROUP may change settings over the control\n"
		   "                     socket (mode 0770), not only root (also: NOISETUN_GROUP)\n"
		   "  -h, --help         this text\n"
		   "\n"
		   "Environment: LOG_LEVEL=verbose|error|silent; NOISETUN_SECCOMP=0 runs the worker\n"
		   "without its seccomp filter (debugging, valgrind); NOISETUN_RUN_DIR moves the\n"
		   "socket directory (for tests; wg looks only in " DEFAULT_RUN_DIR ").\n"
		   "\n"
		   "Exit status: 0; 78 (EX_CONFIG) when FILE is missing, unreadable or invalid;\n"
		   "2 for a bad command line; 1 for any other failure.\n");
}

static int add_fd(struct device *dev, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(dev->epoll, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

/* Everything the launching process waits for. On failure, *what names the step. */
static int setup(struct device *dev, const char *ifname, const char *run_dir, const char **what)
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
	if ((dev->tun = tun_open(ifname, dev->ifname, &dev->vnet)) < 0)
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
	if ((err = uapi_listen(dev, run_dir)))
		return err;
	/* Deleting the socket file is a way to stop us, as with wireguard-go. */
	if ((dev->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0 ||
	    inotify_add_watch(dev->inotify, run_dir, IN_DELETE | IN_MOVED_FROM) < 0)
		return -errno;
	if ((err = add_fd(dev, dev->inotify, EV_INOTIFY)))
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
				log_verbose("control socket deleted, exiting");
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
		arm_timer(dev, &armed);
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
			case EV_TIMER:
				if (read(dev->timerfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
					log_error("timerfd read: %s", strerror(errno));
				armed = 0; /* fired: re-arm whatever is next */
				device_run_timers(dev, now_ns());
				break;
			case EV_UAPI:
				uapi_accept(dev);
				break;
			case EV_NETLINK:
				link_monitor_event(dev);
				break;
			case EV_INOTIFY:
				socket_deleted(dev);
				break;
			case EV_SIGNAL:
				if (read(dev->signalfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGHUP) { /* config mode; the worker asks the monitor */
						if (!privsep_forward_reload())
							config_reload(dev);
						break;
					}
					log_verbose("received signal %u, exiting", si.ssi_signo);
				}
				dev->stopping = true;
				break;
			case EV_WATCHDOG: /* config mode */
				notify_watchdog();
				break;
			default:
				if (uapi_is_conn(dev, events[i].data.ptr))
					uapi_event(dev, events[i].data.ptr, events[i].events);
				break;
			}
		}
	}
}

static void teardown(struct device *dev)
{
	uapi_close(dev);
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
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *fg_env = getenv("WG_PROCESS_FOREGROUND");
	const char *run_dir = getenv("NOISETUN_RUN_DIR");
	bool foreground = fg_env && !strcmp(fg_env, "1");
	static struct device dev;
	const char *what = "", *config_path = NULL, *user = NULL, *group = NULL;
	int c, err, ready[2] = { -1, -1 };
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
		case 'h':
			usage(stdout);
			return 0;
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
	log_init();
	/* Keys live in this process: no core dumps, no ptrace by other users. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
		fprintf(stderr, "noisetund: prctl(PR_SET_DUMPABLE): %s\n", strerror(errno));
		return 1;
	}
	log_ifname = argv[optind];
	if (privsep_init(user, group))
		return 1;
	if (nt_crypto_init()) {
		fprintf(stderr, "noisetund: cannot initialise libsodium\n");
		return 1;
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

	err = setup(&dev, argv[optind], run_dir, &what);
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
		config_down(&dev, false);
		teardown(&dev);
		return 1;
	}
	if ((err = notify_init(dev.epoll, EV_WATCHDOG)))
		log_error("sd_notify: cannot use $NOTIFY_SOCKET: %s", strerror(-err));
	if (!foreground) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			close(null);
		}
	}
	if (privsep_enabled()) {
		pid = privsep_fork(&dev, ready[1]);
		if (pid > 0)
			return privsep_monitor(&dev, pid, ready[1], foreground);
		if (!pid && (err = renew_signalfd(&dev)))
			what = "signals";
		if (pid < 0 || err || (err = privsep_drop(&what))) {
			char msg[256];
			snprintf(msg, sizeof(msg), "noisetund: %s: %s: %s", dev.ifname,
				 pid < 0 ? "cannot start the worker" : what, strerror(pid < 0 ? (int)-pid : -err));
			if (pid < 0) {
				if (foreground)
					fprintf(stderr, "%s\n", msg);
				else if (write(ready[1], msg, strlen(msg)) < 0) {
					/* the launcher is gone */
				}
				config_down(&dev, false);
			} else {
				privsep_worker_failed(msg);
			}
			teardown(&dev);
			config_post_down();
			return 1;
		}
		privsep_worker_ready();
	} else {
		notify_ready(&dev);
		if (!foreground) {
			if (write(ready[1], "ok", 2) != 2)
				return 1;
			close(ready[1]);
		}
	}
	log_verbose("ready: UDP port %u, control socket %s", dev.listen_port, dev.uapi_path);
	run(&dev);
	notify_stopping();
	privsep_worker_save(&dev);
	config_down(&dev, true);
	teardown(&dev);
	config_post_down();
	notify_close();
	return 0;
}
