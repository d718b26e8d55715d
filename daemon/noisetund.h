/* noisetund internals: the device, its peers, and the I/O around the pure core.
 * One thread, one epoll loop; every fd is non-blocking; time comes from now_ns(). */
#ifndef NOISETUND_H
#define NOISETUND_H

#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "noisetun/allowedips.h"
#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/config.h"
#include "noisetun/engine.h"
#include "noisetun/index.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"
#include "noisetun/ratelimiter.h"
#include "noisetun/timers.h"

#define BATCH            64      /* datagrams or TUN packets handled per wakeup */
#define MAX_PACKET       65536   /* TUN packets up to the largest MTU */
#define BUF_SIZE         (MAX_PACKET + NT_DATA_MIN_LEN + NT_DATA_PAD)
#define HANDSHAKE_QUEUE  BATCH   /* "queue" for the under-load rule: handshakes in one batch */
#define MAX_SEGMENTS     64      /* UDP GSO: datagrams per super-datagram we send. What we receive
				  * is the kernel's choice (a local GSO sender's 128 pass as they
				  * are), and a TUN TSO packet's count is its MSS's: neither is
				  * bounded by this, so no array may be sized by it alone. */
/* Bytes one wakeup of either half takes in before it returns to the loop. A batch is a
 * latency floor for the other half (a ping waits behind it) and must stay in cache: with
 * offloads 64 reads are 4 MiB, and a budget of two super-packets measured both faster
 * (3.55 -> 4.1 Gbit/s) and shorter queues (ping under load 2.3 -> 1.0 ms). */
#define TX_BUDGET        (64u << 10)
#define RX_BUDGET        (128u << 10)
/* Receive buffer sets with data threads: one being read and opened, one being written to
 * the TUN, one of slack (receive.c). Without, only set 0 is used, so only its pages are touched. */
#define RX_SETS          3
#define TUNQ_MAX         (BATCH * MAX_SEGMENTS) /* a wakeup's decrypted packets, whatever the GRO */

/* ---- log.c ---- */
enum log_level { LOG_SILENT, LOG_ERROR, LOG_VERBOSE };
extern enum log_level log_level;
extern const char *log_ifname;
void log_init(void);
void log_msg(enum log_level level, const char *peer, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* An exit's reason: shown at the default level (syslog priority notice). */
void log_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Once the launcher has its answer (not in the foreground): stdin and stdout become
 * /dev/null, and so does stderr unless it is a regular file (a log the operator chose);
 * then log lines go to syslog (/dev/log, connected now: no connect under seccomp). */
void log_daemonized(void);
/* fd >= 0: error lines also go to fd (the report of a down); -1: no more. */
void log_mirror(int fd);
#define log_error(...)       log_msg(LOG_ERROR, NULL, __VA_ARGS__)
#define log_verbose(...)     log_msg(LOG_VERBOSE, NULL, __VA_ARGS__)
/* A peer's lines name it by name and short key: "peer laptop (AbCdEfGh...): ...". */
struct peer;
void log_peer(enum log_level level, const struct peer *p, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#define peer_error(p, ...)   log_peer(LOG_ERROR, (p), __VA_ARGS__)
#define peer_verbose(p, ...) log_peer(LOG_VERBOSE, (p), __VA_ARGS__)
const char *log_peer_label(char *buf, size_t size, const struct peer *p);
/* The journal's fields of a line (any may be NULL; the interface is always there). */
struct log_fields {
	const char *peer;               /* base64 public key */
	const char *name, *endpoint, *event;
};
/* An event's line, shown at the default level (not with LOG_LEVEL=silent); priority as
 * syslog's (LOG_NOTICE, LOG_INFO, ...). */
void log_event_msg(int priority, const struct peer *p, const struct log_fields *f, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool log_to_journal(void);
/* The journal's native protocol: KEY=VALUE lines (newlines in values made spaces); the
 * length written, fields that do not fit left out whole. */
size_t log_journal_format(char *buf, size_t size, int priority, const char *message, const struct log_fields *f);

/* ---- time and randomness ---- */
uint64_t now_ns(void);       /* CLOCK_BOOTTIME: keeps counting across suspend */
uint64_t wall_ns(void);      /* CLOCK_REALTIME */
/* The engine's clock: now_ns() but for a test knob (util.c); and one of its times as a
 * CLOCK_BOOTTIME time, for the timerfd. */
uint64_t proto_now_ns(void);
uint64_t proto_to_real_ns(uint64_t t);
extern const struct nt_rng sys_rng;

/* ---- threads ---- */
/* Start up to want threads running fn, with every signal blocked (the loop's signalfd
 * takes them); returns how many started, each failure logged as what's. */
unsigned threads_start(pthread_t *th, unsigned want, void *(*fn)(void *), const char *what);

/* ---- endpoints: union nt_endpoint, struct nt_endpoint_src (noisetun/engine.h) ---- */
socklen_t endpoint_len(const union nt_endpoint *ep);
#define endpoint_equal     nt_endpoint_equal
#define endpoint_normalize nt_endpoint_normalize
/* The control protocol's form: "a.b.c.d:port", "[v6%scope]:port"; 0 and "" if unknown. */
size_t endpoint_format(char *buf, size_t size, const union nt_endpoint *ep);
struct nt_uapi_endpoint;
void endpoint_from_uapi(union nt_endpoint *ep, const struct nt_uapi_endpoint *u);
void endpoint_to_uapi(struct nt_uapi_endpoint *u, const union nt_endpoint *ep);

/* ---- pool.c: fixed-size objects in sodium_malloc'd slabs (secrets, few mappings) ---- */
struct pool {
	size_t obj_size, per_slab;
	void *free_list;
	void **slabs;
	size_t slab_count, slab_cap, live;
};
void pool_init(struct pool *p, size_t obj_size, size_t per_slab);
void *pool_alloc(struct pool *p);          /* zeroed; NULL when out of memory */
void pool_free(struct pool *p, void *obj); /* wiped */
void pool_destroy(struct pool *p);

/* ---- peers ---- */
/* A peer: the engine's part (np, whose fields read directly: peer->hs, peer->endpoint,
 * peer->timers, ...) and the daemon's. */
struct peer {
	union {
		struct nt_peer np;
		struct {
			NT_PEER_FIELDS
		};
	};
	struct device *dev;
	struct peer *prev, *next;       /* device list, in creation order */
	char short_key[12];             /* base64 prefix, for logs */
	char name[NT_CONFIG_NAME_MAX + 1]; /* the operator's name for it ("": none); no NUL inside */
	bool up;                        /* events.c: a session since the last peer_down */
	char *endpoint_name;            /* "host:port" the endpoint came from (malloc'd), NULL: none */
};
#define PEER(np_ptr) ((struct peer *)((char *)(np_ptr) - offsetof(struct peer, np)))

/* ---- the device ---- */
/* The engine's part (eng: the protocol state, dev->up, dev->mtu, dev->aips,
 * dev->static_identity, dev->drops, ...) and the daemon's: fds, peers in creation order. */
struct device {
	union {
		struct nt_engine eng;
		struct {
			NT_ENGINE_FIELDS
		};
	};
	char ifname[IFNAMSIZ];
	int ifindex;

	struct pool peer_pool, keypairs_pool;
	struct peer *peers_first, *peers_last;
	size_t peer_count;

	uint16_t listen_port;
	uint32_t fwmark;
	int udp4, udp6;
	unsigned rx_vlen[2];           /* recvmmsg size per socket (v4, v6), from RX_BUDGET */
	int tun;
	bool vnet;                      /* TUN packets carry a virtio_net_hdr (offloads) */
	bool tun_uso;                   /* ... and the TUN took TUN_F_USO4|USO6: UDP GSO both ways */
	bool udp_gso;                   /* UDP_SEGMENT works on our sockets */
	bool no_mss_clamp;              /* "# noisetun-mss-clamp = off": SYNs pass unclamped */
	int epoll;
	int timerfd;
	char uapi_path[108];
	int netlink;
	int inotify;
	int signalfd;
	bool stopping;
	/* Which process of the daemon this is, set where it becomes one (privsep.c): the
	 * code that acts differently in the worker asks the device, not a global. */
	enum dev_role { ROLE_ALONE, ROLE_MONITOR, ROLE_WORKER } role;
};

/* device.c */
int device_init(struct device *dev, const char *ifname);
void device_destroy(struct device *dev);
int device_set_private_key(struct device *dev, const uint8_t key[NT_KEY_LEN]);
struct peer *peer_lookup(struct device *dev, const uint8_t key[NT_KEY_LEN]);
struct peer *peer_create(struct device *dev, const uint8_t key[NT_KEY_LEN]);
void peer_remove(struct peer *peer);
void device_remove_all_peers(struct device *dev);
void peer_timers_changed(struct peer *peer);
uint64_t device_next_deadline(const struct device *dev);
void device_run_timers(struct device *dev, uint64_t now);
void device_collect(struct device *dev); /* finished handshake jobs (hspool_fd readable) */
void device_set_up(struct device *dev, bool up);
/* The engine's output queues (one set: one thread) and the time it is given. */
struct nt_engine_out *device_out(struct device *dev);

/* hspool.c: the handshake threads, the engine's host.submit and host.barrier */
unsigned hspool_start(void); /* before the sandbox; returns the worker threads started */
int hspool_fd(void);          /* the eventfd the loop polls (then: hspool_ack,
			       * device_collect); -1: none (no threads) */
void hspool_ack(void);
void hspool_submit(void *ctx, void (*fn)(void *job), void *job);
void hspool_barrier(void *ctx);
void hspool_stop(void);       /* at exit: the queue drained, the threads joined */
struct nt_now device_now(void);

/* datapool.c: the data threads, the engine's host.parallel (transport AEAD in chunks) */
unsigned datapool_threads(void); /* in all, the loop's included: NOISETUN_DATA_THREADS */
unsigned datapool_start(void);   /* before the sandbox; returns datapool_threads() started */
void datapool_parallel(void *ctx, void (*fn)(void *arg, size_t i), void *arg, size_t n);
void datapool_stop(void);        /* at exit: the TUN writes done, the threads joined */
unsigned datapool_helpers(void); /* started, besides the loop */
/* The TUN writer stage: queue a batch's TUN packets (they lie in receive set `set`) for a
 * helper to write, in order; false: no helpers, write them yourself. */
struct tun_params;
bool datapool_write_tun(const struct tun_params *t, const struct nt_gro_packet *q, size_t n, unsigned set);
void datapool_wait_written(unsigned set); /* until set's queued writes are done */

/* tun.c */
int tun_open(const char *ifname, char out_name[IFNAMSIZ], bool *vnet, bool *uso);
int tun_set_mtu(const char *ifname, unsigned mtu);

/* udp.c */
/* A bound, marked UDP pair on port (0: any, the same for both); *v6 is -1 where IPv6 is
 * unavailable. 0 or -errno. */
int udp_open_pair(uint16_t port, uint32_t fwmark, int *v4, int *v6);
int udp_bind(struct device *dev, uint16_t port);
void udp_close(struct device *dev);
int udp_set_fwmark(struct device *dev, uint32_t mark);
int udp_send(struct device *dev, const union nt_endpoint *to, struct nt_endpoint_src *src, const void *buf, size_t len);
/* Control messages for a send: the source address (if set) and a GSO size (if nonzero).
 * buf must hold UDP_CMSG_SPACE bytes; returns the length used. */
#define UDP_CMSG_SPACE (CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t)))
size_t udp_cmsg(void *buf, int family, const struct nt_endpoint_src *src, uint16_t gso_size);
/* The local address a received datagram was sent to, from its IP_PKTINFO/IPV6_PKTINFO. */
void udp_cmsg_src(struct msghdr *msg, struct nt_endpoint_src *src);

/* send.c */
void send_tun_batch(struct device *dev);
/* The engine's sends: handshake messages one by one, data as sendmmsg/GSO batches. */
void send_out(struct device *dev, struct nt_send *sends, size_t n);

/* receive.c */
void receive_udp(struct device *dev, int fd);
/* The engine's TUN queue: coalesced (with offloads), then written. */
void receive_write_tun(struct device *dev, struct nt_gro_packet *q, size_t n);
/* What a TUN write needs, copied from the device when a batch is queued, so the writer
 * thread reads nothing the loop may change. */
struct tun_params {
	int fd;
	unsigned mtu;
	bool vnet, uso, mss_clamp;
};
void tun_write_batch(const struct tun_params *t, struct nt_gro_packet *q, size_t n);

/* uapi.c */
int uapi_listen(struct device *dev, const char *dir, uint64_t listen_tag, uint64_t timer_tag);
int uapi_listen_fd(void);                     /* -1: none */
void uapi_close(struct device *dev);
void uapi_shed(struct device *dev);
void uapi_accept(struct device *dev);
void uapi_event(struct device *dev, void *conn, uint32_t events);
void uapi_tick(struct device *dev);
bool uapi_is_conn(const void *ptr);
/* Apply a parsed, validated set request (the control socket's path, also used for -c). */
struct nt_uapi_set;
int uapi_apply_set(struct device *dev, const struct nt_uapi_set *set);

/* metrics.c: --metrics-listen, GET /metrics over HTTP (lib/metrics.c's text). Opened
 * before the split (the worker may open no socket), served by the worker's loop; the
 * listener's and the timer's epoll tags are the caller's, connections carry data.ptr. */
int metrics_open(const char *addr_port, int epoll, uint64_t listen_tag, uint64_t timer_tag);
int metrics_adopt(int fd, int epoll, uint64_t listen_tag, uint64_t timer_tag); /* a worker unit's */
int metrics_listen_fd(void);                   /* -1: none */
void metrics_accept(struct device *dev);
void metrics_tick(struct device *dev);
bool metrics_is_conn(const void *ptr);
void metrics_event(struct device *dev, void *conn);
void metrics_shed(struct device *dev);   /* every fd of it closed */
/* Events (events.c; docs/events.md): JSON lines to the control socket's subscribers,
 * log lines, and the monitor's hooks. */
#define EVENT_LINE_MAX 1024
enum hook_event { HOOK_EV_PEER_UP, HOOK_EV_PEER_DOWN, HOOK_EV_HANDSHAKE_FAILED, HOOK_EV_ENDPOINT_CHANGED, HOOK_EV_COUNT };
const char *hook_event_name(unsigned kind); /* "peer_up", ...; NULL if out of range */
enum peer_change { PEER_ADDED, PEER_REMOVED, PEER_CHANGED, PEER_PSK_CHANGED };
#define PEER_CHANGED_ENDPOINT    1u
#define PEER_CHANGED_ALLOWED_IPS 2u
#define PEER_CHANGED_KEEPALIVE   4u
void events_engine(struct device *dev, const struct nt_event *ev);
void events_peer(struct device *dev, enum peer_change what, struct peer *p, unsigned changes);
void events_reload(struct device *dev, int err, size_t peers);
void events_link_down(struct device *dev);
void events_tick(struct device *dev);
void events_unauth_reset(struct device *dev);
size_t events_lost_line(struct device *dev, char *buf, size_t size, uint64_t count);
/* uapi.c: a line to every subscriber (unauth: only those that asked for them). */
void uapi_events_broadcast(struct device *dev, const char *line, size_t len, bool unauth);
size_t uapi_events_subscribers(void);
size_t uapi_events_unauth_subscribers(void);

/* netlink.c */
int link_monitor_open(struct device *dev);
void link_monitor_event(struct device *dev);

/* ==== config mode (noisetund -c FILE): setup.h, routes.h, rtnl.h, nft.h, notify.c ==== */

/* hooks.c: the monitor runs the event hooks (see there for the bounds). */
void hooks_event(unsigned kind, const uint8_t key[NT_KEY_LEN], const char *endpoint);
void hooks_reap(void);                                  /* SIGCHLD */
void hooks_check_timeouts(void);
int hooks_poll_timeout(void);                           /* ms, -1: none running */
void hooks_shutdown(void);

/* notify.c: sd_notify over $NOTIFY_SOCKET; every call is a no-op without it. notify_init
 * adds the watchdog timerfd (when $WATCHDOG_USEC is set) to epoll with watchdog_tag. */
int notify_init(int epoll, uint64_t watchdog_tag);
void notify_close(void);
void notify_ready(const struct device *dev);
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const struct device *dev);           /* STATUS= when the peer count moved */
void notify_status_text(const char *text);
void notify_watchdog(void);                             /* the watchdog timerfd fired */
/* ==== end of config mode ==== */

/* notify.c: the worker hands its messages (STATUS=, WATCHDOG=1) to the monitor;
 * the monitor sends what a worker may say, and closes its copy of the watchdog timer. */
void notify_worker(const struct device *dev);
void notify_monitor(void);
void notify_relay(const char *msg);
/* ==== end of privilege separation ==== */

#endif
