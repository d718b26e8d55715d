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
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"

#define MAX_REQUEST (64u << 20) /* far above 1,000 peers x 100 allowed IPs (~4 MiB) */

struct conn {
	int fd;
	struct conn *next;
	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;
	bool closing;
	bool oom;
	bool may_set;
	bool refusal_logged;
	uid_t uid;
};

static struct conn *conns;

bool uapi_is_conn(struct device *dev, void *ptr)
{
	(void)dev;
	for (struct conn *c = conns; c; c = c->next)
		if (c == ptr)
			return true;
	return false;
}

int uapi_listen(struct device *dev, const char *dir)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 5 };
	mode_t old_umask;
	gid_t group;
	int fd, err;

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
	    listen(fd, 16) < 0 || epoll_ctl(dev->epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	dev->uapi_listen = fd;
	return 0;
}

static void conn_free(struct device *dev, struct conn *c)
{
	struct conn **pp = &conns;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp)
		*pp = c->next;
	epoll_ctl(dev->epoll, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	/* Both buffers may have carried keys (a set with private_key, a get reply). */
	if (c->in)
		explicit_bzero(c->in, c->in_cap);
	if (c->out)
		explicit_bzero(c->out, c->out_cap);
	free(c->in);
	free(c->out);
	free(c);
}

void uapi_close(struct device *dev)
{
	while (conns)
		conn_free(dev, conns);
	if (dev->uapi_listen >= 0) {
		close(dev->uapi_listen);
		dev->uapi_listen = -1;
		if (!privsep_is_worker()) /* the monitor removes it: the directory is root's */
			unlink(dev->uapi_path);
	}
}

/* Root, or the configured group as the peer's primary or a supplementary group. */
static bool peer_may_set(int fd, uid_t *uid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	gid_t group, groups[64], *list = groups;
	bool ok = false;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	*uid = cred.uid;
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
	for (;;) {
		int fd = accept4(dev->uapi_listen, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_error("control socket accept: %s", strerror(errno));
			return;
		}
		c = calloc(1, sizeof(*c));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		if (!c || epoll_ctl(dev->epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->uid = (uid_t)-1;
		c->may_set = peer_may_set(fd, &c->uid);
		c->next = conns;
		conns = c;
	}
}

/* ---- replies ---- */

static bool out_reserve(struct conn *c, size_t more)
{
	if (c->out_len + more <= c->out_cap)
		return true;
	size_t cap = c->out_cap ? c->out_cap : 4096;
	while (cap < c->out_len + more)
		cap *= 2;
	char *p = malloc(cap);
	if (!p) {
		c->oom = true;
		return false;
	}
	if (c->out) {
		memcpy(p, c->out, c->out_len);
		explicit_bzero(c->out, c->out_cap);
		free(c->out);
	}
	c->out = p;
	c->out_cap = cap;
	return true;
}

static void out_printf(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !out_reserve(c, (size_t)n + 1))
		return;
	va_start(ap, fmt);
	vsnprintf(c->out + c->out_len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	c->out_len += (size_t)n;
}

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
	out_printf(ctx, "allowed_ip=%s/%u\n", buf, cidr);
	return 0;
}

static void reply_get(struct device *dev, struct conn *c)
{
	const struct nt_noise_static *id = dev->static_identity;

	if (id->has_key)
		out_key(c, "private_key", id->private_key);
	if (dev->listen_port)
		out_printf(c, "listen_port=%u\n", dev->listen_port);
	if (dev->fwmark)
		out_printf(c, "fwmark=%u\n", dev->fwmark);
	for (struct peer *p = dev->peers_first; p; p = p->next) {
		out_key(c, "public_key", p->public_key);
		out_key(c, "preshared_key", p->hs.preshared_key);
		out_printf(c, "protocol_version=1\n");
		if (p->endpoint.sa.sa_family != AF_UNSPEC) {
			char ep[80];
			endpoint_format(ep, sizeof(ep), &p->endpoint);
			out_printf(c, "endpoint=%s\n", ep);
		}
		out_printf(c, "last_handshake_time_sec=%llu\nlast_handshake_time_nsec=%llu\n",
			   (unsigned long long)(p->last_handshake_wall / NT_NSEC_PER_SEC),
			   (unsigned long long)(p->last_handshake_wall % NT_NSEC_PER_SEC));
		out_printf(c, "tx_bytes=%llu\nrx_bytes=%llu\npersistent_keepalive_interval=%u\n",
			   (unsigned long long)p->tx_bytes, (unsigned long long)p->rx_bytes, p->persistent_keepalive);
		nt_allowedips_foreach(&p->aips, out_allowed_ip, c);
	}
	out_printf(c, "errno=0\n\n");
}

/* ---- set ---- */

static int apply_peer(struct device *dev, const struct nt_uapi_peer *op)
{
	struct peer *peer;

	/* A peer with the device's own key is ignored, as the stock daemons do. */
	if (dev->static_identity->has_key && nt_equal(op->public_key, dev->static_identity->public_key, NT_KEY_LEN))
		return 0;
	peer = peer_lookup(dev, op->public_key);
	if (op->remove) {
		if (peer)
			peer_remove(peer);
		return 0;
	}
	if (!peer) {
		if (op->update_only)
			return 0;
		peer = peer_create(dev, op->public_key);
		if (!peer)
			return -ENOMEM;
	}
	if (op->has_preshared_key)
		nt_handshake_set_psk(&peer->hs, nt_is_zero(op->preshared_key, NT_KEY_LEN) ? NULL : op->preshared_key);
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
			nt_timers_set_persistent_keepalive(&peer->timers, op->persistent_keepalive, now_ns());
		peer_timers_changed(peer);
	}
	return 0;
}

int uapi_apply_set(struct device *dev, const struct nt_uapi_set *set)
{
	int err;

	/* The one step that can fail for reasons outside the request goes first, so a port in
	 * use leaves everything as it was. Port 0 means "any": a bound port already is one. */
	if (set->has_listen_port && set->listen_port != dev->listen_port && (set->listen_port || !dev->listen_port)) {
		err = udp_bind(dev, set->listen_port);
		if (err)
			return err;
	}
	if (set->has_fwmark && set->fwmark != dev->fwmark && (err = udp_set_fwmark(dev, set->fwmark)))
		return err;
	if (set->has_private_key)
		device_set_private_key(dev, nt_is_zero(set->private_key, NT_KEY_LEN) ? NULL : set->private_key);
	if (set->replace_peers)
		device_remove_all_peers(dev);
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
		err = uapi_apply_set(dev, &set);
		nt_uapi_set_free(&set);
	}
	if (err)
		log_verbose("control: set request failed: %s", strerror(-err));
	out_printf(c, "errno=%d\n\n", err);
}

/* Handle every complete request in the input buffer. false: close the connection. */
static bool process(struct device *dev, struct conn *c)
{
	size_t off = 0;
	bool ok = true;

	while (ok) {
		char *start = c->in + off, *end = memmem(start, c->in_len - off, "\n\n", 2);
		char *nl;

		if (!end) {
			/* "get=1\n\n" or "set=1\n\n" with nothing between is found above; a request
			 * that has not ended yet waits for more bytes. */
			break;
		}
		nl = memchr(start, '\n', (size_t)(end - start) + 1);
		if ((size_t)(nl - start) == 5 && !memcmp(start, "get=1", 5)) {
			reply_get(dev, c);
		} else if ((size_t)(nl - start) == 5 && !memcmp(start, "set=1", 5)) {
			/* body: the lines after "set=1\n", each ending in '\n' */
			size_t body_len = nl == end ? 0 : (size_t)(end + 1 - (nl + 1));
			handle_set(dev, c, nl + 1, body_len);
		} else {
			ok = false; /* an unknown operation: close without a reply */
		}
		off = (size_t)(end - c->in) + 2;
	}
	if (off) {
		explicit_bzero(c->in, off);
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return ok && !c->oom;
}

static bool flush_out(struct device *dev, struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0) {
			if (errno == EAGAIN) {
				struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
				epoll_ctl(dev->epoll, EPOLL_CTL_MOD, c->fd, &ev);
				return true;
			}
			return false;
		}
		c->out_off += (size_t)n;
	}
	if (!c->out_len)
		return true;
	explicit_bzero(c->out, c->out_len);
	c->out_len = c->out_off = 0;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	epoll_ctl(dev->epoll, EPOLL_CTL_MOD, c->fd, &ev);
	return true;
}

void uapi_event(struct device *dev, void *ptr, uint32_t events)
{
	struct conn *c = ptr;
	bool eof = false;

	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			if (c->in_cap - c->in_len < 4096) {
				size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
				char *p;
				if (cap > MAX_REQUEST || !(p = malloc(cap))) {
					conn_free(dev, c);
					return;
				}
				if (c->in) {
					memcpy(p, c->in, c->in_len);
					explicit_bzero(c->in, c->in_cap);
					free(c->in);
				}
				c->in = p;
				c->in_cap = cap;
			}
			ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
			if (n > 0) {
				c->in_len += (size_t)n;
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				eof = true;
			if (n < 0 && errno == EINTR)
				continue;
			break;
		}
		if (!process(dev, c)) {
			conn_free(dev, c);
			return;
		}
	}
	if (!flush_out(dev, c) || (eof && c->out_off >= c->out_len)) {
		conn_free(dev, c);
		return;
	}
	if (eof)
		c->closing = true;
}
