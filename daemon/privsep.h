#ifndef NOISETUN_PRIVSEP_H
#define NOISETUN_PRIVSEP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "noisetun/messages.h"

struct device;
union nt_endpoint;

/* Privilege separation (privsep.c).
 * After setup the daemon forks: the worker (the data path, the control socket) drops to
 * an unprivileged user with CAP_NET_ADMIN and CAP_NET_BIND_SERVICE only, under a seccomp
 * filter; the monitor keeps root, holds no key and no data-path fd, forwards signals, does
 * the config-mode reload and teardown, and exits with the worker's status. */
/* -u/-g or NOISETUN_USER/NOISETUN_GROUP, resolved before anything exists; 0 or -1 having
 * printed why. user NULL: nobody; "root": one process, no drop. */
int privsep_init(const char *user, const char *group);
bool privsep_enabled(void);
/* Worker: is pid the monitor's (its set is a config-mode reload)? */
bool privsep_is_monitor_pid(pid_t pid);
/* Worker: tell the monitor a hook's event happened (it runs the config's hooks, if any;
 * hooks.c). Never blocks: a full channel loses it, logged. */
void privsep_hook_event(unsigned kind, const uint8_t key[NT_KEY_LEN], const union nt_endpoint *ep);
/* The group that may `set` over the control socket besides root; false if none. */
bool privsep_control_group(gid_t *gid);
/* Fork: >0 in the monitor (the worker's pid), 0 in the worker, -errno. */
pid_t privsep_fork(struct device *dev, int ready_fd);
/* The monitor's whole life after the fork; its exit status. */
int privsep_monitor(struct device *dev, pid_t worker, int ready_fd, bool foreground);
/* Worker: drop to the user, keep the two capabilities, install seccomp; 0 or -errno with
 * *what naming the step. Then privsep_worker_ready() (or privsep_worker_failed()). */
int privsep_drop(struct device *dev, const char **what);
void privsep_worker_ready(void);
/* Worker: the monitor's udp_open_pair (which needs CAP_NET_ADMIN and, below 1024,
 * CAP_NET_BIND_SERVICE), and SO_MARK on our sockets (v6 may be -1). 0 or -errno. */
int privsep_udp_open(uint16_t port, uint32_t fwmark, int *v4, int *v6);
int privsep_udp_mark(int v4, int v6, uint32_t fwmark);
/* waitpid(pid), and in the monitor the worker's requests served meanwhile: a hook may run
 * `wg set` that needs a new socket. 0 or -1 (errno). */
int privsep_wait_child(pid_t pid, int *status);
/* The worker has no socket() of its own: the monitor looks interfaces up for it. */
int privsep_link_lookup(uint32_t index, const char *name, uint32_t *index_out, char name_out[IF_NAMESIZE]);
void privsep_worker_failed(const char *msg);
/* Worker: SIGHUP asks the monitor to reload; false when not the worker. */
bool privsep_forward_reload(void);
/* Worker, orderly exit in config mode: the device part of SaveConfig for the monitor. */
void privsep_worker_save(const struct device *dev);
/* Worker: an sd_notify message to the monitor (notify.c, after notify_worker()). */
void privsep_notify_forward(const char *msg);

/* Worker: tell the monitor a handshake with the peer failed (watch.c acts on it). */
void privsep_handshake_failed(const uint8_t key[NT_KEY_LEN]);
/* Monitor: the worker's control socket and our end of the channel (ctlclient.c), and one
 * message of the channel served while we wait for something (false: it has ended). */
const char *privsep_uapi_path(void);
int privsep_channel(void);
bool privsep_serve_pending(void);

/* The monitor's side, for its loop (monitor.c): a socket request of the worker served
 * (false: not one), its status once a worker unit is gone, a signal to the worker (as its
 * user when we lack CAP_KILL; 0 or -errno), and what the loop reads and records. */
bool privsep_monitor_serve(const char *msg, size_t n, const int *fds, int nfds);
int privsep_handover_status(void);
int privsep_signal_worker(pid_t worker, int sig);
const char *privsep_user(void);
int privsep_save_fd(void);
int privsep_worker_pidfd(void);
bool privsep_ready_seen(void);
void privsep_set_ready_seen(void);
void privsep_set_worker_bye(void);
/* For sockreq.c: the worker's 'T' while it waits for a reply; the monitor's handling of
 * a worker's 'V' (an event for the hooks). */
void privsep_set_stop_asked(void);
void privsep_monitor_hook_event(const char *msg, size_t n);

#endif
