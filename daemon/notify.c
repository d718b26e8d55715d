/* sd_notify(3) without libsystemd: one datagram of "KEY=VALUE\n" lines to the AF_UNIX
 * socket named in $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * READY=1 once the tunnel is up, STATUS= with the peer count whenever it changes,
 * RELOADING=1 / READY=1 around a reload, STOPPING=1, and WATCHDOG=1 every half of
 * $WATCHDOG_USEC from a timerfd of its own in the daemon's epoll set. Without
 * $NOTIFY_SOCKET every call does nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "noisetund.h"
#include "privsep.h"
#include "handover.h"

static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;
static int watchdog_fd = -1;
static size_t status_peers = SIZE_MAX;
static bool forward;                    /* the worker: messages go to the monitor */

static void notify_send(const char *msg)
{
	if (forward) {
		privsep_notify_forward(msg);
		return;
	}
	if (notify_fd < 0)
		return;
	if (sendto(notify_fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr, notify_addr_len) < 0)
		log_verbose("sd_notify: %s", strerror(errno));
}

/* "interval" in microseconds, or 0: $WATCHDOG_USEC, when $WATCHDOG_PID (if set) is us. */
static uint64_t watchdog_interval(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	char *end;
	unsigned long long v;

	if (!usec || !*usec)
		return 0;
	if (pid && *pid && strtol(pid, NULL, 10) != (long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	return errno || *end ? 0 : v;
}

/* The watchdog keepalive timer, every interval microseconds (0: none). */
static int watchdog_start(int epoll, uint64_t watchdog_tag, uint64_t interval)
{
	if (interval) {
		struct itimerspec its = {
			.it_interval = { .tv_sec = (time_t)(interval / 1000000), .tv_nsec = (long)(interval % 1000000) * 1000 },
		};
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = watchdog_tag };

		its.it_value = its.it_interval;
		watchdog_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (watchdog_fd < 0 || timerfd_settime(watchdog_fd, 0, &its, NULL) < 0 ||
		    epoll_ctl(epoll, EPOLL_CTL_ADD, watchdog_fd, &ev) < 0)
			return -errno;
		log_verbose("sd_notify: watchdog keepalive every %llu ms", (unsigned long long)(interval / 1000));
	}
	return 0;
}

int notify_init(int epoll, uint64_t watchdog_tag)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	if (!path || (path[0] != '/' && path[0] != '@'))
		return 0; /* unset, or a kind (vsock) this daemon does not speak */
	len = strlen(path);
	if (len < 2 || len >= sizeof(notify_addr.sun_path))
		return -ENAMETOOLONG;
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = 0; /* abstract: no NUL at the end, the length says it */
	notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0)
		return -errno;

	return watchdog_start(epoll, watchdog_tag, watchdog_interval() / 2);
}

uint64_t notify_watchdog_usec(void)
{
	return notify_fd >= 0 ? watchdog_interval() : 0;
}

/* A worker that systemd started as a unit of its own (handover.c): no $NOTIFY_SOCKET of its
 * own; it says what it has to over the channel, and ticks the monitor's watchdog. */
int notify_worker_handover(int epoll, uint64_t watchdog_tag, uint64_t usec)
{
	forward = true;
	return watchdog_start(epoll, watchdog_tag, usec / 2);
}

void notify_close(void)
{
	if (watchdog_fd >= 0)
		close(watchdog_fd);
	if (notify_fd >= 0)
		close(notify_fd);
	watchdog_fd = notify_fd = -1;
}

/* The worker keeps the watchdog timer (its loop is what the watchdog must see run) and
 * hands every message to the monitor; only the main pid speaks to systemd. */
void notify_worker(const struct device *dev)
{
	if (notify_fd < 0)
		return;
	status_peers = dev->peer_count; /* the monitor's READY=1 says this count */
	close(notify_fd);
	notify_fd = -1;
	forward = true;
}

void notify_monitor(void)
{
	if (watchdog_fd >= 0)
		close(watchdog_fd);
	watchdog_fd = -1;
}

/* What a worker may say, one line: the rest (READY=1, MAINPID=...) is the monitor's. */
void notify_relay(const char *msg)
{
	if (strchr(msg, '\n'))
		return;
	if (!strncmp(msg, "STATUS=", 7) || !strcmp(msg, "WATCHDOG=1") || !strcmp(msg, "STOPPING=1"))
		notify_send(msg);
}

static void status_text(char *buf, size_t size, const struct device *dev)
{
	snprintf(buf, size, "%zu peer%s, UDP port %u", dev->peer_count, dev->peer_count == 1 ? "" : "s", dev->listen_port);
}

void notify_ready(const struct device *dev)
{
	char text[120], msg[160];

	status_peers = dev->peer_count;
	status_text(text, sizeof(text), dev);
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", text);
	notify_send(msg);
}

void notify_reloading(void)
{
	struct timespec ts;
	char msg[80];

	/* MONOTONIC_USEC is what systemd >= 253 wants with RELOADING=1; older ones ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
		 (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
	notify_send(msg);
}

void notify_stopping(void)
{
	notify_send("STOPPING=1");
}

void notify_status_text(const char *text)
{
	char msg[320];

	snprintf(msg, sizeof(msg), "STATUS=%s", text);
	notify_send(msg);
}

void notify_status(const struct device *dev)
{
	char text[120];

	if ((notify_fd < 0 && !forward) || status_peers == SIZE_MAX || dev->peer_count == status_peers)
		return;
	status_peers = dev->peer_count;
	status_text(text, sizeof(text), dev);
	notify_status_text(text);
}

void notify_watchdog(void)
{
	uint64_t expirations;

	if (read(watchdog_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_error("watchdog timerfd: %s", strerror(errno));
	notify_send("WATCHDOG=1");
}
