/* The control socket client (control-protocol.md): get=1 parsed into struct ipc_device,
 * set=1 written from struct nt_uapi_set in the order of lines wg uses. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

#define MAX_REPLY_LINE 512
#define EXTENDED_GET_TIMEOUT 3 /* s */

const char *ipc_run_dir(void)
{
	const char *dir = getenv("NOISETUN_RUN_DIR");

	return dir && *dir ? dir : DEFAULT_RUN_DIR;
}

int ipc_socket_path(char *buf, size_t size, const char *iface)
{
	if (!*iface || strlen(iface) >= 16 || strchr(iface, '/') || !strcmp(iface, ".") || !strcmp(iface, ".."))
		return -EINVAL;
	if ((size_t)snprintf(buf, size, "%s/%s.sock", ipc_run_dir(), iface) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A connected socket, or a negative errno; a missing socket is -ENODEV, as for a missing
 * kernel interface. */
static int ipc_connect(const char *iface)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, err;

	err = ipc_socket_path(addr.sun_path, sizeof(addr.sun_path), iface);
	if (err)
		return err == -EINVAL ? -ENODEV : err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = errno == ENOENT ? -ENODEV : -errno;
		close(fd);
		return err;
	}
	return fd;
}

int ipc_open(const char *iface)
{
	return ipc_connect(iface);
}

bool ipc_exists(const char *iface)
{
	int fd = ipc_connect(iface);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int ipc_daemon_pid(const char *iface, pid_t *pid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd = ipc_connect(iface), err = 0;

	if (fd < 0)
		return fd;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		err = -errno;
	else if (cred.pid <= 0)
		err = -ESRCH;
	else
		*pid = cred.pid;
	close(fd);
	return err;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Lines of a reply, buffered. */
struct reader {
	int fd;
	char buf[4096];
	size_t start, end;
};

/* One line without its '\n' into line (NUL-terminated). Its length, or -EPROTO for a line
 * too long or a connection closed mid-reply, or another negative errno. */
static int read_line(struct reader *r, char line[static MAX_REPLY_LINE])
{
	size_t n = 0;

	for (;;) {
		while (r->start < r->end) {
			char c = r->buf[r->start++];

			if (c == '\n') {
				line[n] = '\0';
				return (int)n;
			}
			if (n == MAX_REPLY_LINE - 1)
				return -EPROTO;
			line[n++] = c;
		}
		ssize_t got = recv(r->fd, r->buf, sizeof(r->buf), 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EPROTO;
		r->start = 0;
		r->end = (size_t)got;
	}
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EPROTO;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EPROTO;
	*out = v;
	return 0;
}

static int parse_hex_key(const char *s, uint8_t key[static 32])
{
	return strlen(s) == NT_KEY_HEX_LEN && !nt_key_from_hex(key, s) ? 0 : -EPROTO;
}

static int add_peer(struct ipc_device *dev)
{
	struct ipc_peer *bigger = realloc(dev->peers, (dev->peers_count + 1) * sizeof(*bigger));

	if (!bigger)
		return -ENOMEM;
	dev->peers = bigger;
	memset(&dev->peers[dev->peers_count++], 0, sizeof(*bigger));
	return 0;
}

static int add_allowed_ip(struct ipc_peer *peer, const char *value)
{
	struct nt_uapi_allowed_ip ip, *bigger;

	if (nt_uapi_parse_allowed_ip(&ip, value, strlen(value)))
		return -EPROTO;
	/* Doubling: a peer may hold thousands. */
	if (!(peer->allowed_ips_count & (peer->allowed_ips_count - 1))) {
		size_t cap = peer->allowed_ips_count ? peer->allowed_ips_count * 2 : 4;

		bigger = realloc(peer->allowed_ips, cap * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		peer->allowed_ips = bigger;
	}
	peer->allowed_ips[peer->allowed_ips_count++] = ip;
	return 0;
}

/* A noisetun_ line of a get=1 noisetun=1 reply (the metrics, a peer's name); unknown
 * ones are skipped. 0 or -EPROTO. */
static int get_line_noisetun(struct ipc_device *dev, struct ipc_peer *peer, const char *key, const char *value)
{
	struct ipc_device_metrics *dm = &dev->metrics;
	uint64_t v;
	int ret;

	if (peer && !strcmp(key, "noisetun_endpoint_name")) {
		if (strlen(value) <= NT_UAPI_ENDPOINT_NAME_MAX)
			memcpy(peer->endpoint_name, value, strlen(value) + 1);
		return 0;
	}
	if (peer && (!strcmp(key, "noisetun_disabled") || !strcmp(key, "noisetun_blocked"))) {
		*(key[9] == 'd' ? &peer->disabled : &peer->blocked) = !strcmp(value, "true");
		return 0;
	}
	if (peer && !strcmp(key, "noisetun_valid_until"))
		return parse_u64(value, UINT64_MAX, &peer->valid_until);
	if (peer && !strcmp(key, "noisetun_name")) {
		/* Printed to terminals and files: anything but a valid name is left out. */
		if (nt_config_valid_name(value, strlen(value)))
			snprintf(peer->name, sizeof(peer->name), "%s", value);
		return 0;
	}
	if ((ret = parse_u64(value, UINT64_MAX, &v)))
		return ret;
	if (peer) {
		struct ipc_peer_metrics *pm = &peer->metrics;

		if (!strcmp(key, "noisetun_rx_packets"))
			pm->rx_packets = v;
		else if (!strcmp(key, "noisetun_tx_packets"))
			pm->tx_packets = v;
		else if (!strcmp(key, "noisetun_handshakes"))
			pm->handshakes = v;
		else if (!strcmp(key, "noisetun_handshake_attempts"))
			pm->handshake_attempts = v;
		else if (!strcmp(key, "noisetun_handshake_failures"))
			pm->handshake_failures = v;
		else if (!strcmp(key, "noisetun_session_age_nsec"))
			pm->has_session = true, pm->session_age_ns = v;
		return 0;
	}
	if (!strcmp(key, "noisetun_up")) {
		dm->up = v != 0;
	} else if (!strcmp(key, "noisetun_under_load")) {
		dm->under_load = v != 0;
	} else if (!strcmp(key, "noisetun_cookie_replies_sent")) {
		dm->cookie_replies_sent = v;
	} else if (!strncmp(key, "noisetun_drops_", 15)) {
		const char *reason = key + 15;
		size_t len = strspn(reason, "abcdefghijklmnopqrstuvwxyz0123456789_");

		/* a label value of our own making: the daemon's word is not trusted for more */
		if (!len || reason[len] || len >= sizeof(dm->drop_reasons[0]))
			return -EPROTO;
		if (dm->drops_count < NT_METRICS_MAX_DROPS) {
			memcpy(dm->drop_reasons[dm->drops_count], reason, len + 1);
			dm->drops[dm->drops_count++] = v;
		}
	}
	return 0;
}

/* One key=value line of a get reply. Unknown keys are skipped, as wg does. 1 once the
 * errno line has been seen (with *daemon_errno), 0 to go on, or a negative errno. */
static int get_line(struct ipc_device *dev, char *line, int *daemon_errno)
{
	struct ipc_peer *peer = dev->peers_count ? &dev->peers[dev->peers_count - 1] : NULL;
	char *value = strchr(line, '=');
	uint64_t v;
	int ret = 0;

	if (!value)
		return -EPROTO;
	*value++ = '\0';
	if (!strcmp(line, "errno")) {
		long e;
		char *end;

		errno = 0;
		e = strtol(value, &end, 10);
		if (errno || *end || end == value)
			return -EPROTO;
		*daemon_errno = (int)(e < 0 ? -e : e);
		return 1;
	}
	if (!peer && !strcmp(line, "private_key")) {
		ret = parse_hex_key(value, dev->private_key);
		dev->has_private_key = !ret && !nt_is_zero(dev->private_key, 32);
		if (dev->has_private_key)
			dev->has_public_key = !nt_dh_public(dev->public_key, dev->private_key);
	} else if (!peer && !strcmp(line, "listen_port")) {
		if (!(ret = parse_u64(value, UINT16_MAX, &v)))
			dev->listen_port = (uint16_t)v;
	} else if (!peer && !strcmp(line, "fwmark")) {
		if (!(ret = parse_u64(value, UINT32_MAX, &v)))
			dev->fwmark = (uint32_t)v;
	} else if (!strcmp(line, "public_key")) {
		if (!(ret = add_peer(dev)))
			ret = parse_hex_key(value, dev->peers[dev->peers_count - 1].public_key);
	} else if (peer && !strcmp(line, "preshared_key")) {
		ret = parse_hex_key(value, peer->preshared_key);
		peer->has_preshared_key = !ret && !nt_is_zero(peer->preshared_key, 32);
	} else if (peer && !strcmp(line, "endpoint")) {
		ret = nt_uapi_parse_endpoint(&peer->endpoint, value, strlen(value)) ? -EPROTO : 0;
		peer->has_endpoint = !ret;
	} else if (peer && !strcmp(line, "last_handshake_time_sec")) {
		if (!(ret = parse_u64(value, INT64_MAX, &v)))
			peer->last_handshake_sec = (int64_t)v;
	} else if (peer && !strcmp(line, "last_handshake_time_nsec")) {
		if (!(ret = parse_u64(value, INT64_MAX, &v)))
			peer->last_handshake_nsec = (int64_t)v;
	} else if (peer && !strcmp(line, "rx_bytes")) {
		ret = parse_u64(value, UINT64_MAX, &peer->rx_bytes);
	} else if (peer && !strcmp(line, "tx_bytes")) {
		ret = parse_u64(value, UINT64_MAX, &peer->tx_bytes);
	} else if (peer && !strcmp(line, "persistent_keepalive_interval")) {
		if (!(ret = parse_u64(value, UINT16_MAX, &v)))
			peer->persistent_keepalive = (uint16_t)v;
	} else if (peer && !strcmp(line, "allowed_ip")) {
		ret = add_allowed_ip(peer, value);
	} else if (!strncmp(line, "noisetun_", 9)) {
		ret = get_line_noisetun(dev, peer, line, value);
	}
	return ret;
}

static int get_once(const char *iface, struct ipc_device *dev, bool noisetun)
{
	struct reader r = { 0 };
	char line[MAX_REPLY_LINE];
	int daemon_errno = -1, ret, n;

	memset(dev, 0, sizeof(*dev));
	snprintf(dev->name, sizeof(dev->name), "%s", iface);
	r.fd = ipc_connect(iface);
	if (r.fd < 0)
		return r.fd;
	/* A daemon that neither answers nor refuses a get with a line after it must not hang
	 * us: the plain get follows after a while. */
	if (noisetun &&
	    setsockopt(r.fd, SOL_SOCKET, SO_RCVTIMEO, &(struct timeval){ .tv_sec = EXTENDED_GET_TIMEOUT }, sizeof(struct timeval)) < 0) {
		close(r.fd);
		return -errno;
	}
	ret = noisetun ? write_all(r.fd, "get=1\nnoisetun=1\n\n", 18) : write_all(r.fd, "get=1\n\n", 7);
	while (!ret) {
		n = read_line(&r, line);
		if (n < 0) {
			ret = n;
		} else if (n == 0) {
			/* The empty line ends the reply; only after errno is it complete. */
			ret = daemon_errno < 0 ? -EPROTO : daemon_errno ? -daemon_errno : 0;
			break;
		} else if (daemon_errno >= 0) {
			ret = -EPROTO;
		} else {
			ret = get_line(dev, line, &daemon_errno);
			if (ret == 1)
				ret = 0;
		}
	}
	nt_wipe(line, sizeof(line));
	nt_wipe(r.buf, sizeof(r.buf));
	close(r.fd);
	if (ret)
		ipc_device_free(dev);
	return ret;
}

/* get=1 + noisetun=1 answers with the peers' names too (noisetund). Another daemon
 * refuses it (wireguard-go, an older noisetund: errno=-22), may close the connection
 * (-EPROTO) or may not answer (-EAGAIN once the timeout is over): then a plain get. */
int ipc_get(const char *iface, struct ipc_device *dev)
{
	int ret = get_once(iface, dev, true);

	if (ret == -EINVAL || ret == -EPROTO || ret == -EAGAIN || ret == -EWOULDBLOCK)
		ret = get_once(iface, dev, false);
	return ret;
}

/* With noisetun=1 only: a daemon that does not take it answers -EINVAL (also when it
 * closes or does not answer), and the caller decides what a plain get is worth. */
int ipc_get_noisetun(const char *iface, struct ipc_device *dev)
{
	int ret = get_once(iface, dev, true);

	if (ret == -EPROTO || ret == -EAGAIN || ret == -EWOULDBLOCK)
		ret = -EINVAL;
	return ret;
}

void ipc_device_free(struct ipc_device *dev)
{
	for (size_t i = 0; i < dev->peers_count; i++)
		free(dev->peers[i].allowed_ips);
	if (dev->peers)
		nt_wipe(dev->peers, dev->peers_count * sizeof(*dev->peers));
	free(dev->peers);
	nt_wipe(dev, sizeof(*dev));
}

/* ------------------------------------------------------------------ set */

struct text {
	char *buf;
	size_t len, cap;
	bool oom;
};

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		/* Grow by copying, so that the old buffer (with keys) is wiped, not left to realloc. */
		size_t cap = (t->cap + (size_t)n + 1) * 2;
		char *bigger = malloc(cap);
		if (!bigger) {
			t->oom = true;
			return;
		}
		if (t->buf) {
			memcpy(bigger, t->buf, t->len);
			nt_wipe(t->buf, t->cap);
			free(t->buf);
		}
		t->buf = bigger;
		t->cap = cap;
	}
}

static void text_key(struct text *t, const char *name, const uint8_t key[static 32])
{
	char hex[NT_KEY_HEX_LEN + 1];

	nt_key_to_hex(hex, key);
	text_printf(t, "%s=%s\n", name, hex);
	nt_wipe(hex, sizeof(hex));
}

static void text_allowed_ip(struct text *t, const struct nt_uapi_allowed_ip *ip)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(ip->family, ip->addr, addr, sizeof(addr));
	text_printf(t, "allowed_ip=%s/%u\n", addr, ip->cidr);
}

static int set_once(const char *iface, const struct nt_uapi_set *set, bool names, bool *sent_names)
{
	struct text t = { 0 };
	struct reader r = { 0 };
	char line[MAX_REPLY_LINE], ep[NT_UAPI_ENDPOINT_STRLEN];
	int ret, daemon_errno = -1, n;

	text_printf(&t, "set=1\n");
	if (set->has_private_key)
		text_key(&t, "private_key", set->private_key);
	if (set->has_listen_port)
		text_printf(&t, "listen_port=%u\n", set->listen_port);
	if (set->has_fwmark)
		text_printf(&t, "fwmark=%u\n", set->fwmark);
	if (set->replace_peers)
		text_printf(&t, "replace_peers=true\n");
	for (size_t i = 0; i < set->peers_count; i++) {
		const struct nt_uapi_peer *peer = &set->peers[i];

		text_key(&t, "public_key", peer->public_key);
		if (peer->remove) {
			text_printf(&t, "remove=true\n");
			continue;
		}
		if (peer->update_only)
			text_printf(&t, "update_only=true\n");
		if (peer->has_preshared_key)
			text_key(&t, "preshared_key", peer->preshared_key);
		if (peer->has_endpoint && nt_uapi_format_endpoint(ep, sizeof(ep), &peer->endpoint))
			text_printf(&t, "endpoint=%s\n", ep);
		if (peer->has_persistent_keepalive)
			text_printf(&t, "persistent_keepalive_interval=%u\n", peer->persistent_keepalive);
		if (peer->replace_allowed_ips)
			text_printf(&t, "replace_allowed_ips=true\n");
		for (size_t j = 0; j < peer->allowed_ips_count; j++)
			text_allowed_ip(&t, &peer->allowed_ips[j]);
		if (names && peer->has_name) {
			text_printf(&t, "noisetun_name=%.*s\n", NT_UAPI_NAME_MAX, peer->name);
			*sent_names = true;
		}
	}
	text_printf(&t, "\n");
	if (t.oom) {
		ret = -ENOMEM;
		goto out;
	}

	r.fd = ipc_connect(iface);
	if (r.fd < 0) {
		ret = r.fd;
		goto out;
	}
	ret = write_all(r.fd, t.buf, t.len);
	while (!ret) {
		n = read_line(&r, line);
		if (n < 0) {
			ret = n;
		} else if (n == 0) {
			ret = daemon_errno < 0 ? -EPROTO : daemon_errno ? -daemon_errno : 0;
			break;
		} else if (!strncmp(line, "errno=", 6) && daemon_errno < 0) {
			char *end;
			long e;

			errno = 0;
			e = strtol(line + 6, &end, 10);
			if (errno || *end || end == line + 6)
				ret = -EPROTO;
			else
				daemon_errno = (int)(e < 0 ? -e : e);
		} else {
			ret = -EPROTO;
		}
	}
	close(r.fd);
out:
	if (t.buf) {
		nt_wipe(t.buf, t.cap);
		free(t.buf);
	}
	return ret;
}

int ipc_set(const char *iface, const struct nt_uapi_set *set)
{
	bool sent_names = false;
	int ret = set_once(iface, set, true, &sent_names);

	if (ret != -EINVAL || !sent_names)
		return ret;
	/* noisetund accepts every name the CLI sends (checked before): this daemon keeps none. */
	ret = set_once(iface, set, false, &sent_names);
	if (!ret)
		fprintf(stderr, "Warning: the daemon of `%s' does not keep peer names; applied without them\n", iface);
	return ret;
}

/* ------------------------------------------------------------------ list */

void ipc_names_free(char **names)
{
	if (!names)
		return;
	for (char **n = names; *n; n++)
		free(*n);
	free(names);
}

/* A socket file that refuses connections belongs to a daemon that died: remove it, as wg
 * does when it lists interfaces. */
static bool socket_live(const char *dir, const char *file)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	bool live = false;
	int fd;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/%s", dir, file) >= sizeof(addr.sun_path))
		return false;
	if (stat(addr.sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
		live = true;
	else if (errno == ECONNREFUSED)
		unlink(addr.sun_path);
	close(fd);
	return live;
}

int ipc_list(char ***names_out, size_t *count_out)
{
	const char *dir = ipc_run_dir();
	char **names = calloc(1, sizeof(*names)), **bigger;
	size_t count = 0;
	struct dirent *ent;
	DIR *d;

	if (!names)
		return -ENOMEM;
	d = opendir(dir);
	if (!d) {
		int err = errno;

		if (err == ENOENT) {
			*names_out = names;
			*count_out = 0;
			return 0;
		}
		free(names);
		return -err;
	}
	while ((ent = readdir(d))) {
		size_t len = strlen(ent->d_name);

		if (len <= 5 || strcmp(ent->d_name + len - 5, ".sock") || !socket_live(dir, ent->d_name))
			continue;
		bigger = realloc(names, (count + 2) * sizeof(*names));
		if (!bigger)
			goto oom;
		names = bigger;
		names[count] = strndup(ent->d_name, len - 5);
		if (!names[count])
			goto oom;
		names[++count] = NULL;
	}
	closedir(d);
	*names_out = names;
	*count_out = count;
	return 0;
oom:
	closedir(d);
	ipc_names_free(names);
	return -ENOMEM;
}
