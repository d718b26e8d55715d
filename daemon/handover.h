/* The worker as a unit of its own (handover.c; docs/threat-model.md, "The systemd unit's
 * exposure"): systemd starts it with a uid of its own (DynamicUser=), and the monitor hands
 * it what a fork would have left it. */
#ifndef NOISETUN_HANDOVER_H
#define NOISETUN_HANDOVER_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HANDOVER_ENV "NOISETUN_WORKER_SOCKET"

struct device;

/* The monitor: $NOISETUN_WORKER_SOCKET names the worker unit's socket. */
bool handover_wanted(void);

/* The monitor, once set up: connect to the worker's socket (systemd starts the worker),
 * hand it the device's descriptors and configuration, learn its pid. The worker's pid
 * (the channel is then privsep's, privsep_monitor_adopt()) or -errno; *what names the step. */
pid_t handover_start(struct device *dev, const char **what);

/* What the worker is handed. Every descriptor is O_CLOEXEC; -1 where there is none. */
struct handover_worker {
	char ifname[IF_NAMESIZE];
	char uapi_path[108];
	int ifindex;
	unsigned mtu;
	uint32_t fwmark;
	uint16_t listen_port;
	bool vnet, up, no_mss_clamp, tun_uso;
	uint64_t watchdog_usec;
	int chan, tun, udp4, udp6, uapi, netlink, save, metrics;
	char *set;                      /* a set=1 body (the private key: wipe it), NUL-terminated */
	size_t set_len;
};

/* The worker (noisetund --worker IFNAME), started by noisetun-worker@.socket: accept the
 * monitor's connection on fd 3 and take what it hands over. 0 or -errno, *what naming the
 * step; on failure nothing is left open. */
int handover_receive(const char *ifname, struct handover_worker *w, const char **what);

/* Elsewhere, for the handover only. */
int config_handover_set(char **text, size_t *len);      /* setup.c: keys and peers as set=1 */
uint64_t notify_watchdog_usec(void);                    /* notify.c: the monitor's interval */
int notify_worker_handover(int epoll, uint64_t watchdog_tag, uint64_t usec);
int privsep_monitor_adopt(struct device *dev, int chan, pid_t worker, int save_fd);
void privsep_worker_adopt(struct device *dev, int chan, int save_fd);
bool privsep_is_handover(void);                         /* the monitor or worker of one */
bool privsep_stop_asked(void);                          /* a worker unit: 'T' came, or the end */
void privsep_worker_channel(void);                      /* a worker unit: its channel woke the loop */
void privsep_worker_exit(int rc);                       /* an orderly exit says so: 'Q' */
int uapi_adopt(struct device *dev, int fd, const char *path, uint64_t listen_tag, uint64_t timer_tag);
int link_monitor_adopt(struct device *dev, int fd);

#endif
