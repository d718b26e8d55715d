/* The control socket (control-protocol.md): get=1 and set=1 over a stream UNIX socket.
 * A set request is parsed and validated whole (lib/uapi.c) before anything changes, so a
 * bad request changes nothing and answers errno=-22. Replies may be large (1,000 peers):
 * they are buffered and written as the socket accepts them.
 *
 * Who may do what (SO_PEERCRED, SO_PEERGROUPS: the kernel's record of the peer at
 * connect time, no /proc or NSS lookups): get, anyone who could connect; set, uid 0 or a
 * member of the -g group (primary or supplementary). The file's mode keeps the rest out
 * (0700 root, or 0770 root:GROUP); this check holds should the mode be loosened. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetun/metrics.h"
#include "noisetun/text.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "privsep.h"
#include "handover.h"
#include "connset.h"

/* Bounds (issue 20): the socket is root's and the -g group's, but a buggy or hostile
 * client there must not stall the tunnel nor eat the machine's memory or fds.
 *   - at most MAX_CONNS connections; past that the listener pauses (clients wait in the
 *     backlog) until one closes;
 *   - a request may grow to MAX_REQUEST, all buffered requests together to MAX_INPUT_TOTAL;
 *   - replies: one at a time. While one is not fully written, nothing more is read or
 *     handled on that connection, so output never exceeds one reply (and MAX_OUTPUT);
 *   - a connection that sends nothing and reads nothing for the idle timeout is closed;
 *   - the end of a request is searched for in the new bytes only, and one event does at
 *     most READ_BUDGET bytes and REQUEST_BUDGET requests, so a flood cannot hog the loop;
 *   - accept failing for want of fds or memory pauses the listener (retried on the next
 *     tick or when a connection closes), logged once per episode, not per attempt. */
#define MAX_CONNS 64
#define MAX_REQUEST (64u << 20) /* far above 1,000 peers x 100 allowed IPs (~4 MiB) */
#define MAX_INPUT_TOTAL (256u << 20)
#define MAX_OUTPUT (64u << 20)
#define READ_BUDGET (1u << 20)
#define REQUEST_BUDGET 64
#define IDLE_TIMEOUT_DEFAULT 30 /* s; $NOISETUN_CONTROL_TIMEOUT (1..3600) for tests */
#define BACKLOG 4096            /* as wireguard-go; the kernel caps it at net.core.somaxconn */
/* Event subscribers (`events=1`, docs/events.md): at most MAX_SUBSCRIBERS of the
 * MAX_CONNS connections; each has EVENTS_BUFFER bytes of lines waiting for it beyond what
 * its socket holds. A line that does not fit is dropped and counted; once there is room
 * again the subscriber gets {"event":"lost","count":N} first. A subscriber is never
 * closed for being idle (it has nothing to send), only when it goes away. */
#define MAX_SUBSCRIBERS 16
#define EVENTS_BUFFER (64u << 10)

struct conn {
	struct conn_base base;          /* first: the set's (fd, list, epoll mask) */
	char *in; /* unhandled bytes: in[in_off, in_len); "\n\n" is not in [in_off, in_scan) */
	size_t in_off, in_len, in_cap, in_scan;
	struct nt_text out;             /* replies, or event lines: bounded by MAX_OUTPUT */
	size_t out_off;
	uint64_t last_active;
	bool eof;        /* the client will send no more */
	bool closing;    /* an unknown operation: close once the replies before it are out */
	bool may_set;
	bool refusal_logged;
	bool subscribed;   /* events=1: a stream of event lines; nothing more is read */
	bool unauth;       /* unauthenticated=1 as well */
	uint64_t lost;     /* lines dropped since the last "lost" line */
	uid_t uid;
	pid_t pid;
};

static uint64_t tick_ns(uint64_t idle_ns)
{
	return idle_ns / 2 < NT_NSEC_PER_SEC ? idle_ns / 2 : NT_NSEC_PER_SEC;
}

static struct {
	struct connset set;
	size_t in_total;   /* sum of in_cap */
	uint64_t idle_ns;
	size_t subscribers, unauth_subscribers;
} uapi = { .set = CONNSET_INIT("control socket", MAX_CONNS, struct conn, NT_NSEC_PER_SEC) };

/* Each connection, as its own struct. */
#define FOR_EACH_CONN(c) for (struct conn *c = (struct conn *)uapi.set.conns; c; c = (struct conn *)c->base.next)

bool uapi_is_conn(const void *ptr)
{
	return connset_has(&uapi.set, ptr);
}

int uapi_listen_fd(void)
{
	return uapi.set.listen_fd;
}

int uapi_listen(struct device *dev, const char *dir, uint64_t listen_tag, uint64_t timer_tag)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	const char *env = getenv("NOISETUN_CONTROL_TIMEOUT");
	unsigned long idle = IDLE_TIMEOUT_DEFAULT;
	mode_t old_umask;
	gid_t group;
	int fd, err;

	if (env && *env) {
		char *end;
		idle = strtoul(env, &end, 10);
		if (*end || idle < 1 || idle > 3600)
			return -EINVAL;
	}
	uapi.idle_ns = (uint64_t)idle * NT_NSEC_PER_SEC;
	uapi.set.tick_ns = tick_ns(uapi.idle_ns);

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s.sock", dir, dev->ifname) >=
	    sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	snprintf(dev->uapi_path, sizeof(dev->uapi_path), "%s", addr.sun_path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* An existing socket that answers belongs to a live daemon; one that refuses is stale. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED)
		unlink(addr.sun_path);
	close(fd);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old_umask = umask(0077);
	err = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old_umask);
	if (err < 0 || (privsep_control_group(&group) &&
			(chown(addr.sun_path, 0, group) < 0 || chmod(addr.sun_path, 0770) < 0)) ||
	    listen(fd, BACKLOG < SOMAXCONN ? BACKLOG : SOMAXCONN) < 0)
		err = -errno;
	else
		err = connset_adopt(&uapi.set, dev->epoll, fd, listen_tag, timer_tag);
	if (err)
		close(fd);
	return err;
}

/* The worker unit's (handover.c): the listener the monitor bound, as uapi_listen leaves it. */
int uapi_adopt(struct device *dev, int fd, const char *path, uint64_t listen_tag, uint64_t timer_tag)
{
	uapi.idle_ns = (uint64_t)IDLE_TIMEOUT_DEFAULT * NT_NSEC_PER_SEC;
	uapi.set.tick_ns = tick_ns(uapi.idle_ns);
	snprintf(dev->uapi_path, sizeof(dev->uapi_path), "%s", path);
	return connset_adopt(&uapi.set, dev->epoll, fd, listen_tag, timer_tag);
}

/* What a connection holds, wiped and freed: both buffers may have carried keys (a set
 * with private_key, a get reply). */
static void conn_release(struct conn_base *base)
{
	struct conn *c = (struct conn *)base;

	if (c->subscribed)
		uapi.subscribers--;
	if (c->unauth)
		uapi.unauth_subscribers--;
	if (c->in)
		explicit_bzero(c->in, c->in_cap);
	uapi.in_total -= c->in_cap;
	free(c->in);
	nt_text_free(&c->out);
}

static void conn_free(struct conn *c)
{
	conn_release(&c->base);
	connset_close(&uapi.set, &c->base);
}

/* Every descriptor of the control socket closed; the socket file stays. */
void uapi_shed(struct device *dev)
{
	(void)dev;
	connset_shed(&uapi.set, conn_release);
}

void uapi_close(struct device *dev)
{
	bool listening = uapi.set.listen_fd >= 0;

	uapi_shed(dev);
	if (listening && dev->role != ROLE_WORKER) /* the monitor removes it: the directory is root's */
		unlink(dev->uapi_path);
}

/* Root, or the configured group as the peer's primary or a supplementary group. */
static bool peer_may_set(int fd, uid_t *uid, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t group, groups[64], *list = groups;
	bool ok = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid = cred.uid;
	*pid = cred.pid;
	if (cred.uid == 0)
		return true;
	if (!privsep_control_group(&group))
		return false;
	if (cred.gid == group)
		return true;
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, list, &len) < 0) {
		if (errno != ERANGE || !(list = malloc(len)) || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, list, &len) < 0) {
			if (list != groups)
				free(list);
			return false;
		}
	}
	for (size_t i = 0; i < len / sizeof(gid_t) && !ok; i++)
		ok = list[i] == group;
	if (list != groups)
		free(list);
	return ok;
}

void uapi_accept(struct device *dev)
{
	struct conn *c;

	(void)dev;
	while ((c = (struct conn *)connset_accept(&uapi.set))) {
		c->out.max = MAX_OUTPUT;
		c->uid = (uid_t)-1;
		c->may_set = peer_may_set(c->base.fd, &c->uid, &c->pid);
		c->last_active = now_ns();
	}
}

/* The tick: retry a paused listener, close idle connections. */
void uapi_tick(struct device *dev)
{
	uint64_t now = now_ns();
	size_t idle = 0;

	connset_tick(&uapi.set);
	events_tick(dev);
	for (struct conn *c = (struct conn *)uapi.set.conns, *next; c; c = next) {
		next = (struct conn *)c->base.next;
		if (!c->subscribed && now - c->last_active >= uapi.idle_ns) {
			conn_free(c);
			idle++;
		}
	}
	if (idle)
		log_verbose("control socket: closed %zu connection%s idle for %llu s (nothing sent, or the reply not read)",
			    idle, idle == 1 ? "" : "s", (unsigned long long)(uapi.idle_ns / NT_NSEC_PER_SEC));
}

/* ---- interface names and indices ---- */

/* Look a link up by index (name NULL) or by name; its index and name. 0 or -errno.
 * The sandboxed worker may open no socket (if_nametoindex needs one): the monitor
 * answers for it. */
static int link_lookup(const struct device *dev, uint32_t index, const char *name, uint32_t *index_out,
		       char name_out[IF_NAMESIZE])
{
	if (dev->role == ROLE_WORKER)
		return privsep_link_lookup(index, name, index_out, name_out);
	if (name) {
		if (!(index = if_nametoindex(name)))
			return -ENODEV;
	}
	if (!if_indextoname(index, name_out))
		return -ENODEV;
	*index_out = index;
	return 0;
}

/* Scope names of a parsed set, to indices; an unknown interface is -EINVAL. */
static int resolve_scopes(const struct device *dev, struct nt_uapi_set *set)
{
	for (size_t i = 0; i < set->peers_count; i++) {
		struct nt_uapi_endpoint *ep = &set->peers[i].endpoint;
		char name[IF_NAMESIZE];
		uint32_t index;
		int err;

		if (!set->peers[i].has_endpoint || !ep->scope_name[0])
			continue;
		err = link_lookup(dev, 0, ep->scope_name, &index, name);
		if (err) {
			log_verbose("control: endpoint scope %s: %s", ep->scope_name, strerror(-err));
			return -EINVAL;
		}
		ep->scope_id = index;
	}
	return 0;
}

/* ---- replies ---- */

#define out_printf(c, ...) nt_text_printf(&(c)->out, __VA_ARGS__)

static void out_key(struct conn *c, const char *name, const uint8_t key[NT_KEY_LEN])
{
	char hex[NT_KEY_HEX_LEN + 1];

	nt_key_to_hex(hex, key);
	out_printf(c, "%s=%s\n", name, hex);
	explicit_bzero(hex, sizeof(hex));
}

static int out_allowed_ip(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	char buf[INET6_ADDRSTRLEN];

	inet_ntop(family, addr, buf, sizeof(buf));
	out_printf((struct conn *)ctx, "allowed_ip=%s/%u\n", buf, cidr);
	return 0;
}

struct scope_cache {
	const struct device *dev;
	uint32_t index;
	char name[IF_NAMESIZE];
};

/* As stock wg and wireguard-go show it: a scope by its interface name while the interface
 * exists, else by its index. */
static void format_endpoint(char *buf, size_t size, const union nt_endpoint *ep, struct scope_cache *cache)
{
	uint32_t scope = ep->sa.sa_family == AF_INET6 ? ep->in6.sin6_scope_id : 0;
	struct nt_uapi_endpoint u = { .family = AF_INET6 };
	uint32_t index;

	if (!scope) {
		endpoint_format(buf, size, ep);
		return;
	}
	if (cache->index != scope) {
		cache->index = scope;
		if (link_lookup(cache->dev, scope, NULL, &index, cache->name) || index != scope)
			cache->name[0] = '\0';
	}
	u.port = ntohs(ep->in6.sin6_port);
	memcpy(u.addr, &ep->in6.sin6_addr, 16);
	u.scope_id = scope;
	if (cache->name[0])
		memcpy(u.scope_name, cache->name, sizeof(u.scope_name) < IF_NAMESIZE ? sizeof(u.scope_name) : IF_NAMESIZE);
	nt_uapi_format_endpoint(buf, size, &u);
}

/* noisetun=1 (the metrics): the device's counters, before the first public_key=. */
static void reply_get_metrics_device(struct device *dev, struct conn *c, uint64_t now)
{
	struct nt_metrics_device d = { 0 };

	out_printf(c, "noisetun_up=%d\nnoisetun_under_load=%d\nnoisetun_cookie_replies_sent=%llu\n", dev->up,
		   nt_engine_under_load(&dev->eng, now), (unsigned long long)dev->cookie_replies_sent);
	out_printf(c, "noisetun_handshake_jobs_pending=%llu\nnoisetun_handshake_jobs_discarded=%llu\n",
		   (unsigned long long)nt_engine_jobs_pending(&dev->eng),
		   (unsigned long long)dev->hs_jobs_discarded);
	nt_metrics_engine_drops(&dev->eng, &d);
	for (size_t i = 0; i < d.drops_count; i++)
		out_printf(c, "noisetun_drops_%s=%llu\n", d.drops[i].reason, (unsigned long long)d.drops[i].count);
}

/* noisetun=1 (the metrics): a peer's counters, inside its block. */
static void reply_get_metrics_peer(struct peer *p, struct conn *c, uint64_t now)
{
	uint64_t age;

	out_printf(c, "noisetun_rx_packets=%llu\nnoisetun_tx_packets=%llu\nnoisetun_handshakes=%llu\n"
		      "noisetun_handshake_attempts=%llu\nnoisetun_handshake_failures=%llu\n",
		   (unsigned long long)p->rx_packets, (unsigned long long)p->tx_packets,
		   (unsigned long long)p->handshakes, (unsigned long long)p->handshake_attempts,
		   (unsigned long long)p->handshake_failures);
	if (nt_engine_session_age(&p->np, now, &age))
		out_printf(c, "noisetun_session_age_nsec=%llu\n", (unsigned long long)age);
}

/* noisetun: the request's `noisetun=1` line (get=1\nnoisetun=1\n\n) adds the noisetun_
 * keys; a plain get=1 reply stays byte for byte what stock wg expects. */
/* noisetun's own lines of a peer in a get=1 reply with noisetun=1: its name.
 *
 * Stock `wg` (wireguard-tools v1.0.20210914, Debian's) on an unknown key in a get reply:
 * it ignores the line. Checked against a fake daemon whose reply had, in a peer's block,
 * "noisetun_name=My laptop (x=y)" and "noisetun_future=1": `wg show`, `wg showconf` and
 * `wg show IFACE dump` printed exactly what they print without those lines, exit 0. The
 * lines are still sent only when asked for (get=1, then noisetun=1), so that a plain get
 * stays byte for byte what every other client (wg, wg-quick, exporters) has always read. */
static void reply_get_peer_noisetun(struct conn *c, const struct peer *p)
{
	if (p->name[0])
		out_printf(c, "noisetun_name=%.*s\n", NT_CONFIG_NAME_MAX, p->name);
}

/* noisetun's own per-peer lines (get=1 with noisetun=1): the lifecycle. */
static void reply_get_lifecycle(struct conn *c, const struct peer *p)
{
	if (p->disabled)
		out_printf(c, "noisetun_disabled=true\n");
	if (p->valid_until)
		out_printf(c, "noisetun_valid_until=%llu\n", (unsigned long long)(p->valid_until / NT_NSEC_PER_SEC));
	if (p->blocked)
		out_printf(c, "noisetun_blocked=true\n");
	if (p->endpoint_name)
		out_printf(c, "noisetun_endpoint_name=%s\n", p->endpoint_name);
}

static void reply_get(struct device *dev, struct conn *c, bool noisetun)
{
	const struct nt_noise_static *id = dev->static_identity;
	struct scope_cache scope_cache = { .dev = dev };
	uint64_t now = noisetun ? proto_now_ns() : 0;

	if (id->has_key)
		out_key(c, "private_key", id->private_key);
	if (dev->listen_port)
		out_printf(c, "listen_port=%u\n", dev->listen_port);
	if (dev->fwmark)
		out_printf(c, "fwmark=%u\n", dev->fwmark);
	if (noisetun)
		reply_get_metrics_device(dev, c, now);
	for (struct peer *p = dev->peers_first; p; p = p->next) {
		out_key(c, "public_key", p->public_key);
		out_key(c, "preshared_key", p->hs.preshared_key);
		out_printf(c, "protocol_version=1\n");
		if (p->endpoint.sa.sa_family != AF_UNSPEC) {
			char ep[80];
			format_endpoint(ep, sizeof(ep), &p->endpoint, &scope_cache);
			out_printf(c, "endpoint=%s\n", ep);
		}
		out_printf(c, "last_handshake_time_sec=%llu\nlast_handshake_time_nsec=%llu\n",
			   (unsigned long long)(p->last_handshake_wall / NT_NSEC_PER_SEC),
			   (unsigned long long)(p->last_handshake_wall % NT_NSEC_PER_SEC));
		out_printf(c, "tx_bytes=%llu\nrx_bytes=%llu\npersistent_keepalive_interval=%u\n",
			   (unsigned long long)p->tx_bytes, (unsigned long long)p->rx_bytes, p->persistent_keepalive);
		nt_allowedips_foreach(&p->aips, out_allowed_ip, c);
		if (noisetun) {
			reply_get_metrics_peer(p, c, now);
			reply_get_peer_noisetun(c, p);
			reply_get_lifecycle(c, p);
		}
	}
	out_printf(c, "errno=0\n\n");
}

/* ---- set ---- */

/* An order-independent fingerprint of a peer's allowed IPs: whether a set changed them. */
struct aips_sum {
	uint64_t count, sum;
};

static int aips_sum_one(void *ctx, int family, const uint8_t *addr, uint8_t cidr)
{
	struct aips_sum *a = ctx;
	uint64_t h = 1469598103934665603ull ^ (uint64_t)family ^ ((uint64_t)cidr << 8);

	for (size_t i = 0; i < (family == AF_INET ? 4u : 16u); i++)
		h = (h ^ addr[i]) * 1099511628211ull;
	a->count++;
	a->sum += h;
	return 0;
}

static struct aips_sum aips_of(const struct peer *peer)
{
	struct aips_sum a = { 0, 0 };

	nt_allowedips_foreach(&peer->aips, aips_sum_one, &a);
	return a;
}

/* A name is a label: changing it touches no session, timer or counter. name was checked
 * by the parser (nt_config_valid_name, or "" to clear). */
static void apply_peer_name(struct peer *peer, const char *name)
{
	if (!strncmp(peer->name, name, sizeof(peer->name)))
		return;
	snprintf(peer->name, sizeof(peer->name), "%s", name);
	if (name[0])
		peer_verbose(peer, "named \"%s\"", peer->name);
	else
		peer_verbose(peer, "name removed");
}

/* noisetun_disabled / noisetun_valid_until: enforced in the engine, at once. */
static void apply_lifecycle(struct peer *peer, const struct nt_uapi_peer *op)
{
	struct nt_engine_out *out;
	bool disabled;
	uint64_t until;

	if (!op->has_lifecycle_disabled && !op->has_valid_until)
		return;
	disabled = op->has_lifecycle_disabled ? op->lifecycle_disabled : peer->disabled;
	until = op->has_valid_until ? op->valid_until * NT_NSEC_PER_SEC : peer->valid_until;
	out = device_out(peer->dev);
	nt_engine_peer_set_lifecycle(&peer->dev->eng, &peer->np, disabled, until, device_now(), out);
	nt_engine_flush(out);
}

static int apply_peer(struct device *dev, const struct nt_uapi_peer *op)
{
	struct aips_sum aips_before = { 0, 0 }, aips_after;
	union nt_endpoint ep_before;
	uint16_t keepalive_before;
	bool created = false, psk_changed = false;
	unsigned changes = 0;
	struct peer *peer;

	/* A peer with the device's own key is ignored, as the stock daemons do. */
	if (dev->static_identity->has_key && nt_equal(op->public_key, dev->static_identity->public_key, NT_KEY_LEN))
		return 0;
	peer = peer_lookup(dev, op->public_key);
	if (op->remove) {
		if (peer) {
			events_peer(dev, PEER_REMOVED, peer, 0);
			peer_remove(peer);
		}
		return 0;
	}
	if (!peer) {
		if (op->update_only)
			return 0;
		peer = peer_create(dev, op->public_key);
		if (!peer)
			return -ENOMEM;
		created = true;
	}
	ep_before = peer->endpoint;
	keepalive_before = peer->persistent_keepalive;
	if (!created && (op->replace_allowed_ips || op->allowed_ips_count))
		aips_before = aips_of(peer);
	if (op->has_preshared_key) {
		psk_changed = !nt_equal(peer->hs.preshared_key, op->preshared_key, NT_KEY_LEN);
		nt_handshake_set_psk(&peer->hs, nt_is_zero(op->preshared_key, NT_KEY_LEN) ? NULL : op->preshared_key);
	}
	if (op->has_endpoint)
		endpoint_from_uapi(&peer->endpoint, &op->endpoint);
	if (op->replace_allowed_ips)
		nt_allowedips_remove_owner(dev->aips, &peer->aips);
	for (size_t i = 0; i < op->allowed_ips_count; i++) {
		const struct nt_uapi_allowed_ip *a = &op->allowed_ips[i];
		int err = nt_allowedips_insert(dev->aips, a->family, a->addr, a->cidr, &peer->aips);
		if (err)
			return err;
	}
	if (op->has_persistent_keepalive) {
		peer->persistent_keepalive = op->persistent_keepalive;
		if (dev->up || !op->persistent_keepalive)
			nt_timers_set_persistent_keepalive(&peer->timers, op->persistent_keepalive, proto_now_ns());
		peer_timers_changed(peer);
	}
	if (op->has_name)
		apply_peer_name(peer, op->name);
	apply_lifecycle(peer, op);
	if (op->has_endpoint_name) {
		/* Only config mode's name endpoints have one: kept off the peer struct, which
		 * every peer pays for. */
		free(peer->endpoint_name);
		peer->endpoint_name = op->endpoint_name[0] ? strdup(op->endpoint_name) : NULL;
		if (op->endpoint_name[0] && !peer->endpoint_name)
			return -ENOMEM;
	}
	/* What changed, for the events (docs/events.md): never the key material itself. */
	if (created) {
		events_peer(dev, PEER_ADDED, peer, 0);
		return 0;
	}
	if (!endpoint_equal(&ep_before, &peer->endpoint))
		changes |= PEER_CHANGED_ENDPOINT;
	if (op->replace_allowed_ips || op->allowed_ips_count) {
		aips_after = aips_of(peer);
		if (aips_after.count != aips_before.count || aips_after.sum != aips_before.sum)
			changes |= PEER_CHANGED_ALLOWED_IPS;
	}
	if (keepalive_before != peer->persistent_keepalive)
		changes |= PEER_CHANGED_KEEPALIVE;
	if (changes)
		events_peer(dev, PEER_CHANGED, peer, changes);
	if (psk_changed)
		events_peer(dev, PEER_PSK_CHANGED, peer, 0);
	return 0;
}

int uapi_apply_set(struct device *dev, const struct nt_uapi_set *set)
{
	int err;

	/* The one step that can fail for reasons outside the request goes first, so a port in
	 * use leaves everything as it was. Port 0 takes a new random port even when one is
	 * bound, as the kernel and wireguard-go do (so `wg setconf` of a file without
	 * ListenPort behaves the same against all three); the same port again is a no-op. */
	if (set->has_listen_port && (!set->listen_port || set->listen_port != dev->listen_port)) {
		err = udp_bind(dev, set->listen_port);
		if (err)
			return err;
	}
	if (set->has_fwmark && set->fwmark != dev->fwmark && (err = udp_set_fwmark(dev, set->fwmark)))
		return err;
	if (set->has_mss_clamp && set->mss_clamp == dev->no_mss_clamp) {
		dev->no_mss_clamp = !set->mss_clamp;
		log_notice("TCP MSS clamping %s", set->mss_clamp ? "on" : "off");
	}
	if (set->has_private_key)
		device_set_private_key(dev, nt_is_zero(set->private_key, NT_KEY_LEN) ? NULL : set->private_key);
	if (set->replace_peers) {
		for (struct peer *p = dev->peers_first; p; p = p->next)
			events_peer(dev, PEER_REMOVED, p, 0);
		device_remove_all_peers(dev);
	}
	for (size_t i = 0; i < set->peers_count; i++)
		if ((err = apply_peer(dev, &set->peers[i])))
			return err;
	return 0;
}

static void handle_set(struct device *dev, struct conn *c, const char *body, size_t len)
{
	struct nt_uapi_set set;
	int err;

	if (!c->may_set) {
		if (!c->refusal_logged)
			log_error("control: set refused for uid %d: only root%s may change settings", (int)c->uid,
				  privsep_control_group(&(gid_t){ 0 }) ? " and the control group" : "");
		c->refusal_logged = true;
		out_printf(c, "errno=%d\n\n", -EPERM);
		return;
	}
	err = nt_uapi_parse_set(&set, body, len);
	if (!err) {
		err = resolve_scopes(dev, &set);
		if (!err)
			err = uapi_apply_set(dev, &set);
		nt_uapi_set_free(&set);
	}
	if (err)
		log_verbose("control: set request failed: %s", strerror(-err));
	/* The monitor's own set is a reload's (config mode, SIGHUP); hooks' `wg set` come
	 * from other processes. */
	if (dev->role == ROLE_WORKER && privsep_is_monitor_pid(c->pid))
		events_reload(dev, err, dev->peer_count);
	out_printf(c, "errno=%d\n\n", err);
}

/* ---- events ---- */

static void events_append(struct conn *c, const char *line, size_t len)
{
	if (c->out_off) { /* a partial write: what is left goes to the front, the room after it */
		memmove(c->out.buf, c->out.buf + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out.len + len > EVENTS_BUFFER || !nt_text_reserve(&c->out, len)) {
		c->out.failed = false; /* a full buffer loses lines, it does not end the stream */
		c->lost++;
		return;
	}
	nt_text_add(&c->out, line, len);
}

/* After a write made room: the count of what was lost, before anything newer. */
static void lost_line(struct device *dev, struct conn *c)
{
	char line[256];
	size_t n;

	if (!c->lost || c->out.len + sizeof(line) > EVENTS_BUFFER)
		return;
	n = events_lost_line(dev, line, sizeof(line), c->lost);
	c->lost = 0;
	if (n)
		events_append(c, line, n);
}

/* "events=1", then optionally "unauthenticated=1": the connection becomes a stream. */
static void handle_events(struct device *dev, struct conn *c, const char *body, size_t len)
{
	bool unauth = false;

	if (len == strlen("unauthenticated=1\n") && !memcmp(body, "unauthenticated=1\n", len))
		unauth = true;
	else if (len) {
		out_printf(c, "errno=%d\n\n", -EINVAL);
		return;
	}
	if (uapi.subscribers >= MAX_SUBSCRIBERS) {
		log_verbose("control: %d event subscribers already, refusing another", MAX_SUBSCRIBERS);
		out_printf(c, "errno=%d\n\n", -EBUSY);
		return;
	}
	c->subscribed = true;
	uapi.subscribers++;
	if (unauth) {
		if (!uapi.unauth_subscribers)
			events_unauth_reset(dev);
		c->unauth = true;
		uapi.unauth_subscribers++;
	}
}

size_t uapi_events_subscribers(void)
{
	return uapi.subscribers;
}

size_t uapi_events_unauth_subscribers(void)
{
	return uapi.unauth_subscribers;
}

static bool flush_out(struct conn *c);

/* Queue the line for every subscriber; the loop writes it at once (EPOLLOUT is asked for
 * here, level-triggered: the socket is writable), so the lines of one burst (a set of
 * many peers) leave in few writes per subscriber, not one each; past EVENTS_WRITE_AT
 * bytes waiting they are written now, so that a burst larger than the buffer fills the
 * socket's buffer too before anything is lost. A subscriber whose socket is full stays on
 * EPOLLOUT and loses what does not fit its buffer. */
#define EVENTS_WRITE_AT (16u << 10)
void uapi_events_broadcast(struct device *dev, const char *line, size_t len, bool unauth)
{
	(void)dev;
	FOR_EACH_CONN(c) {
		if (!c->subscribed || (unauth && !c->unauth))
			continue;
		events_append(c, line, len);
		if (c->out.len - c->out_off >= EVENTS_WRITE_AT && !flush_out(c))
			c->eof = true; /* gone: closed on its turn */
		connset_want(&uapi.set, &c->base, EPOLLIN | EPOLLOUT);
	}
}

/* A subscriber's turn: write, count what was lost, read and ignore what it sends (to see
 * it go). false: close it. */
static bool subscriber_event(struct device *dev, struct conn *c)
{
	char buf[4096];
	ssize_t n;

	if (c->eof || !flush_out(c))
		return false;
	lost_line(dev, c);
	if (!flush_out(c))
		return false;
	for (int i = 0; i < 16; i++) {
		n = read(c->base.fd, buf, sizeof(buf));
		if (n == 0)
			return false;
		if (n < 0) {
			if (errno == EAGAIN)
				break;
			if (errno != EINTR)
				return false;
		}
	}
	return connset_want(&uapi.set, &c->base, c->out_off < c->out.len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* The end of the first unhandled request (just past its "\n\n"), or 0 while it has not
 * arrived. Only bytes not searched before are searched: a request trickled in a byte at a
 * time costs O(its length), not O(length squared). */
static size_t request_end(struct conn *c)
{
	char *hit;

	if (c->in_len - c->in_scan < 2)
		return 0;
	hit = memmem(c->in + c->in_scan, c->in_len - c->in_scan, "\n\n", 2);
	if (!hit) {
		c->in_scan = c->in_len - 1; /* a '\n' at the end may pair with the next byte */
		return 0;
	}
	c->in_scan = (size_t)(hit - c->in);
	return c->in_scan + 2;
}

/* Handle the first request, which has arrived whole (end from request_end()). Every
 * request is answered in order; an unknown operation gets no answer and closes the
 * connection once the replies to the requests before it are written (control-protocol.md;
 * wireguard-go does the same). */
static void handle_request(struct device *dev, struct conn *c, size_t end)
{
	char *start = c->in + c->in_off, *nl = memchr(start, '\n', end - c->in_off);
	size_t op_len = (size_t)(nl - start);

	if (op_len == 5 && !memcmp(start, "get=1", 5)) {
		if (nl + 1 == c->in + end - 1)
			reply_get(dev, c, false);
		else if ((size_t)(c->in + end - 1 - (nl + 1)) == 11 && !memcmp(nl + 1, "noisetun=1\n", 11))
			reply_get(dev, c, true);
		else
			out_printf(c, "errno=%d\n\n", -EINVAL); /* a get takes no lines */
	} else if (op_len == 8 && !memcmp(start, "events=1", 8)) {
		handle_events(dev, c, nl + 1, (size_t)(c->in + end - 1 - (nl + 1)));
	} else if (op_len == 5 && !memcmp(start, "set=1", 5)) {
		/* body: the lines after "set=1\n", each ending in '\n'; none for "set=1\n\n" */
		handle_set(dev, c, nl + 1, (size_t)(c->in + end - 1 - (nl + 1)));
	} else {
		c->closing = true;
	}
	/* A set may have carried a private key. */
	explicit_bzero(start, end - c->in_off);
	c->in_off = c->in_scan = end;
	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = c->in_scan = 0;
		if (c->in_cap > (64u << 10)) { /* a big request is done: give its memory back */
			explicit_bzero(c->in, c->in_cap);
			free(c->in);
			uapi.in_total -= c->in_cap;
			c->in = NULL;
			c->in_cap = 0;
		}
	}
}

/* Room for READ_CHUNK more bytes: compact, then grow within the bounds. false: over them. */
#define READ_CHUNK 4096
static bool in_room(struct conn *c)
{
	size_t cap;
	char *p;

	if (c->in_off) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		explicit_bzero(c->in + c->in_len - c->in_off, c->in_off);
		c->in_len -= c->in_off;
		c->in_scan -= c->in_off;
		c->in_off = 0;
	}
	if (c->in_cap - c->in_len >= READ_CHUNK)
		return true;
	cap = c->in_cap ? c->in_cap * 2 : 8192;
	if (cap > MAX_REQUEST) {
		log_verbose("control: a request over %u MiB, closing the connection", MAX_REQUEST >> 20);
		return false;
	}
	if (uapi.in_total - c->in_cap + cap > MAX_INPUT_TOTAL) {
		log_verbose("control: requests buffered over %u MiB in all, closing the connection", MAX_INPUT_TOTAL >> 20);
		return false;
	}
	if (!(p = malloc(cap)))
		return false;
	if (c->in) {
		memcpy(p, c->in, c->in_len);
		explicit_bzero(c->in, c->in_cap);
		free(c->in);
	}
	uapi.in_total += cap - c->in_cap;
	c->in = p;
	c->in_cap = cap;
	return true;
}

/* Read until a whole request is buffered, the socket is drained, the client is done, or
 * READ_BUDGET bytes (the rest waits for the next round of the loop). false: close. */
static bool read_some(struct conn *c)
{
	size_t budget = READ_BUDGET;

	while (budget && !c->eof && !request_end(c)) {
		ssize_t n;

		if (!in_room(c))
			return false;
		n = read(c->base.fd, c->in + c->in_len, c->in_cap - c->in_len < budget ? c->in_cap - c->in_len : budget);
		if (n > 0) {
			c->in_len += (size_t)n;
			budget -= (size_t)n;
			c->last_active = now_ns();
		} else if (n == 0) {
			c->eof = true;
		} else if (errno == EAGAIN) {
			break;
		} else if (errno != EINTR) {
			return false;
		}
	}
	return true;
}

/* Write what the socket takes. false: the client is gone. */
static bool flush_out(struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = write(c->base.fd, c->out.buf + c->out_off, c->out.len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN)
				return true;
			if (errno == EINTR)
				continue;
			return false;
		}
		c->out_off += (size_t)n;
		c->last_active = now_ns();
	}
	if (c->out.len) {
		nt_text_clear(&c->out, 1u << 20); /* a big reply is out: give its memory back */
		c->out_off = 0;
	}
	return true;
}

/* One connection's turn: write what is pending; only when nothing is, handle the next
 * request, and only when none is buffered, read. Replies never pile up: a client that
 * pipelines requests and does not read gets one reply's worth, then nothing is read from
 * it until it reads (or the idle timeout closes it). */
void uapi_event(struct device *dev, void *ptr, uint32_t events)
{
	struct conn *c = ptr;
	unsigned requests = 0;
	uint32_t want;

	(void)events; /* level-triggered: the state below says what to do */
	if (c->subscribed) {
		if (!subscriber_event(dev, c))
			conn_free(c);
		return;
	}
	for (;;) {
		size_t end;

		if (!flush_out(c))
			goto close;
		if (c->out_off < c->out.len) {
			want = EPOLLOUT;
			break;
		}
		if (c->closing)
			goto close;
		if ((end = request_end(c))) {
			if (requests++ == REQUEST_BUDGET) {
				want = EPOLLOUT; /* writable: comes back next round, after the others */
				break;
			}
			handle_request(dev, c, end);
			if (c->out.failed)
				goto close;
			if (c->subscribed) { /* a stream from now on: what follows the request is ignored */
				want = EPOLLIN;
				break;
			}
			continue;
		}
		if (c->eof)
			goto close; /* done; a request cut short by the close is dropped */
		if (!read_some(c))
			goto close;
		if (!request_end(c) && !c->eof) {
			want = EPOLLIN; /* drained, or the read budget spent: level-triggered */
			break;
		}
	}
	if (connset_want(&uapi.set, &c->base, want))
		return;
close:
	conn_free(c);
}
