/* The monitor's life after the fork (privsep.c has the split itself): root, no key and no
 * data-path fd; it relays signals to the worker, serves its socket requests and checked
 * messages, runs PostUp, PreDown, the reload and the teardown of config mode, and exits
 * with the worker's status. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "noisetun/config.h"
#include "noisetun/encoding.h"
#include "noisetund.h"
#include "cfghooks.h"
#include "channel.h"
#include "handover.h"
#include "privsep.h"
#include "savecfg.h"
#include "setup.h"
#include "watch.h"

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
		      dev->inotify, dev->signalfd };
	size_t peers = dev->peer_count;

	uapi_shed(dev); /* the listener and its timer: the worker's */
	metrics_shed(dev); /* --metrics-listen: the worker's too */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	dev->tun = dev->udp4 = dev->udp6 = dev->epoll = dev->timerfd = dev->netlink = -1;
	dev->inotify = dev->signalfd = -1;
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

int privsep_monitor(struct device *dev, pid_t worker, int ready_fd, bool foreground)
{
	char msg[512], err_msg[sizeof(msg)] = "", why[sizeof(((struct nt_config_error *)0)->message) + 96];
	bool ready = false, stopping = false, orderly, worker_gone = false;
	struct pollfd pfd[4];
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
		privsep_signal_worker(worker, SIGTERM);
		sfd = -1;
		goto wait_blocking;
	}
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = privsep_channel(), .events = POLLIN };
	pfd[2] = (struct pollfd){ .fd = -1, .events = POLLIN }; /* watch.c: PSK files */
	pfd[3] = (struct pollfd){ .fd = privsep_worker_pidfd(), .events = POLLIN }; /* a worker unit's */
	for (;;) {
		pfd[2].fd = ready && !stopping ? watch_fd() : -1;
		/* A worker unit is gone, and all it said before is read. */
		if (worker_gone && pfd[1].fd < 0) {
			status = privsep_handover_status();
			break;
		}
		/* Channel closed: the worker is exiting, or closed it to leave us deaf. Either way
		 * signals are still ours to relay; SIGCHLD ends this, a poll each second makes sure. */
		int hook_ms = hooks_poll_timeout(), wait_ms = pfd[1].fd < 0 ? 1000 : -1;
		int ready_n;

		if (hook_ms >= 0 && (wait_ms < 0 || hook_ms < wait_ms))
			wait_ms = hook_ms;
		ready_n = poll(pfd, 4, wait_ms);
		hooks_check_timeouts();

		if (ready_n < 0) {
			if (errno == EINTR)
				continue;
			log_error("monitor: poll: %s; stopping the worker", strerror(errno));
			privsep_signal_worker(worker, SIGTERM);
			goto wait_blocking;
		}
		if (!ready_n) {
			if (waitpid(worker, &status, WNOHANG) == worker)
				break;
			continue;
		}
		if (pfd[2].fd >= 0 && (pfd[2].revents & POLLIN))
			watch_event(dev);
		if (pfd[3].fd >= 0 && (pfd[3].revents & (POLLIN | POLLHUP | POLLERR))) {
			worker_gone = true;
			pfd[3].fd = -1;
		}
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGCHLD) {
				hooks_reap();
				if (waitpid(worker, &status, WNOHANG) == worker)
					break;
			} else if (si.ssi_signo == SIGHUP && config_active()) {
				if (ready && !stopping)
					config_reload(dev, true);
			} else if (!stopping) { /* TERM, INT; HUP outside config mode, as before the split */
				stopping = true;
				log_notice("received signal %u (SIG%s), stopping the worker (pid %d)", si.ssi_signo,
					   signal_name((int)si.ssi_signo), (int)worker);
				if (ready) {
					notify_stopping();
					config_pre_down(); /* PreDown while the link still exists, as wg-quick */
				}
				if ((err = privsep_signal_worker(worker, (int)si.ssi_signo)) && err != -ESRCH)
					log_error("monitor: cannot signal the worker (pid %d): %s", (int)worker, strerror(-err));
			}
		}
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			/* MSG_TRUNC: the real length, so an oversized message is refused, not cut. */
			int fds[CHAN_MAX_FDS], nfds;
			ssize_t n = chan_recv(privsep_channel(), msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_TRUNC, fds, &nfds);
			bool served;
			size_t len;

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n < 0 || (n == 0 && (pfd[1].revents & (POLLHUP | POLLERR)))) {
				close_fds(fds, nfds);
				pfd[1].fd = -1; /* the end of the channel, not an empty message */
				continue;
			}
			/* The socket requests first: binary, so they may hold NULs. Whatever the
			 * message, every descriptor the worker sent is closed here. */
			served = n > 0 && (size_t)n <= sizeof(msg) - 1 && privsep_monitor_serve(msg, (size_t)n, fds, nfds);
			close_fds(fds, nfds);
			if (served)
				continue;
			if (!chan_message_ok(msg, n, sizeof(msg) - 1, privsep_ready_seen(), privsep_is_handover()))
				continue;
			len = (size_t)n;
			switch (msg[0]) {
			case 'R': {
				const char *what;

				if (stopping)
					break;
				privsep_set_ready_seen(); /* a hook may run while we wait: its 'R' is a second */
				/* PostUp now, while the worker serves the socket: a hook may run `wg`. */
				if (config_post_up(&what)) {
					snprintf(err_msg, sizeof(err_msg), "noisetund: %s: %s", dev->ifname, what);
					stopping = true;
					/* signal_worker: under the unit there is no CAP_KILL. */
					if ((err = privsep_signal_worker(worker, SIGTERM)) && err != -ESRCH)
						log_error("cannot signal the worker: %s", strerror(-err));
					break;
				}
				ready = true;
				if (config_current())
					watch_start(dev, config_current());
				notify_ready(dev);
				log_verbose("ready: worker pid %d runs as %s; control socket %s", (int)worker, privsep_user(),
					    privsep_uapi_path());
				tell_launcher(&ready_fd, foreground, "ok");
				if (!foreground)
					log_daemonized();
				break;
			}
			case 'E':
				/* The launcher prints it to a terminal: no escape sequences get there. */
				for (size_t i = 1; i < len; i++)
					if (msg[i] < 0x20 || msg[i] > 0x7e)
						msg[i] = '?';
				snprintf(err_msg, sizeof(err_msg), "%s", msg + 1);
				break;
			case 'H':
				if (ready && !stopping)
					config_reload(dev, true);
				break;
			case 'Q':
				privsep_set_worker_bye();
				break;
			case 'N':
				notify_relay(msg + 1);
				break;
			case 'F': {
				uint8_t key[NT_KEY_LEN];

				if (ready && !stopping && !nt_key_from_hex(key, msg + 1))
					watch_handshake_failed(key);
				break;
			}
			}
		}
	}
	goto exited;
wait_blocking:
	if (privsep_is_handover()) {
		struct pollfd p = { .fd = privsep_worker_pidfd(), .events = POLLIN };
		while (poll(&p, 1, -1) < 0 && errno == EINTR)
			;
		status = privsep_handover_status();
	}
	while (!privsep_is_handover() && waitpid(worker, &status, 0) < 0 && errno == EINTR)
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
	hooks_shutdown();
	watch_stop();
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
	why[0] = 0;
	if (orderly && (text = saved_device_text(privsep_save_fd(), &mtu, &text_size, why, sizeof(why))))
		dev->mtu = mtu;
	/* No text: config_down says why, once, if SaveConfig wanted one. */
	config_set_device_text(text, why);
	config_down(dev, orderly, true);
	config_set_device_text(NULL, NULL);
	if (text) {
		explicit_bzero(text, text_size);
		free(text);
	}
	if (privsep_save_fd() >= 0) {
		if (ftruncate(privsep_save_fd(), 0) < 0)
			log_error("SaveConfig memfd: %s", strerror(errno));
		close(privsep_save_fd());
	}
	/* The socket file goes last but for PostDown: `noisetun down` waits for it. */
	if (unlink(privsep_uapi_path()) < 0 && errno != ENOENT)
		log_error("cannot remove %s: %s", privsep_uapi_path(), strerror(errno));
	config_post_down();
	notify_close();
	if (sfd >= 0)
		close(sfd);
	if (privsep_worker_pidfd() >= 0)
		close(privsep_worker_pidfd());
	close(privsep_channel());
	if (ready_fd >= 0)
		close(ready_fd);
	return rc;
}
