/* --metrics-listen ADDR:PORT: the Prometheus exposition (lib/metrics.c) at GET /metrics.
 *
 * The listening socket is opened before the split (metrics_open, as root: the sandboxed
 * worker may open none) and served by the worker's loop, which must never wait on it.
 * Small and strict, since anyone who can reach the port is a client:
 *   - at most MAX_CONNS connections; past that the listener pauses (the backlog waits)
 *     until one closes;
 *   - a request is its head only, at most MAX_REQUEST bytes up to the blank line (CRLF
 *     CRLF, or LF LF); a longer one is answered 431 and closed;
 *   - every connection has DEADLINE from its accept to be done, reading and writing (a
 *     slowloris client, or a scraper that does not read, is closed then);
 *   - only GET /metrics (a query string is ignored): 200; another path 404, another method
 *     405, anything unparsable 400; always Connection: close, one request per connection;
 *   - the reply is formatted once, at most MAX_BODY bytes, and written as the socket takes
 *     it, without ever blocking. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "noisetun/metrics.h"
#include "noisetund.h"
#include "connset.h"

#define MAX_CONNS   8
#define MAX_REQUEST 4096
#define DEADLINE    (5 * NT_NSEC_PER_SEC)
#define MAX_BODY    (32u << 20)  /* ~12,000 peers */
#define BACKLOG     16

struct mconn {
	struct conn_base base;          /* first: the set's */
	uint64_t deadline;
	char in[MAX_REQUEST];
	size_t in_len, in_scan;         /* nt_metrics_http_head_end's */
	char *out;                      /* the whole reply, once the request is in */
	size_t out_len, out_off;
};

static struct connset set = CONNSET_INIT("metrics", MAX_CONNS, struct mconn, NT_NSEC_PER_SEC);

/* "a.b.c.d:port" or "[v6]:port" (the port required, 1-65535). 0 or -EINVAL. */
static int parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon = strrchr(spec, ':');
	unsigned long port;
	char *end;
	size_t hlen;

	if (!colon || !colon[1])
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || !port || port > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	hlen = (size_t)(colon - spec);
	if (hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return -EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*in6);
		return 0;
	}
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) != 1)
		return -EINVAL;
	in4->sin_family = AF_INET;
	in4->sin_port = htons((uint16_t)port);
	*len = sizeof(*in4);
	return 0;
}

/* Serve fd (a listening socket) from the loop of epoll. */
int metrics_adopt(int fd, int epoll, uint64_t listen_tag, uint64_t timer_tag)
{
	return connset_adopt(&set, epoll, fd, listen_tag, timer_tag);
}

int metrics_listen_fd(void)
{
	return set.listen_fd;
}

int metrics_open(const char *spec, int epoll, uint64_t listen_tag, uint64_t timer_tag)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, err;

	if ((err = parse_addr(spec, &ss, &len)))
		return err;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, BACKLOG) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	if ((err = metrics_adopt(fd, epoll, listen_tag, timer_tag)))
		close(fd);
	return err;
}

bool metrics_is_conn(const void *ptr)
{
	return connset_has(&set, ptr);
}

static void conn_release(struct conn_base *base)
{
	free(((struct mconn *)base)->out);
}

static void conn_free(struct mconn *c)
{
	conn_release(&c->base);
	connset_close(&set, &c->base);
}

void metrics_shed(struct device *dev)
{
	(void)dev;
	connset_shed(&set, conn_release);
}

void metrics_accept(struct device *dev)
{
	struct mconn *c;

	(void)dev;
	while ((c = (struct mconn *)connset_accept(&set)))
		c->deadline = now_ns() + DEADLINE;
}

/* Every connection has DEADLINE from its accept to be done. */
void metrics_tick(struct device *dev)
{
	uint64_t now = now_ns();

	(void)dev;
	connset_tick(&set);
	for (struct mconn *c = (struct mconn *)set.conns, *next; c; c = next) {
		next = (struct mconn *)c->base.next;
		if (now >= c->deadline) {
			log_verbose("metrics: closing a connection not done within %llu s",
				    (unsigned long long)(DEADLINE / NT_NSEC_PER_SEC));
			conn_free(c);
		}
	}
}

/* ---- the reply ---- */

/* The device as the formatter sees it. Endpoints in out_eps (64 bytes per peer). */
static int snapshot(struct device *dev, struct nt_metrics_device *d, struct nt_metrics_peer **peers_out,
		    char **eps_out)
{
	struct nt_metrics_peer *peers = calloc(dev->peer_count ? dev->peer_count : 1, sizeof(*peers));
	char *eps = calloc(dev->peer_count ? dev->peer_count : 1, 64);
	uint64_t now = now_ns();
	size_t i = 0;

	if (!peers || !eps) {
		free(peers);
		free(eps);
		return -ENOMEM;
	}
	memset(d, 0, sizeof(*d));
	d->ifname = dev->ifname;
	d->up = dev->up;
	d->under_load = nt_engine_under_load(&dev->eng, now);
	d->cookie_replies_sent = dev->cookie_replies_sent;
	d->handshake_jobs_pending = nt_engine_jobs_pending(&dev->eng);
	d->handshake_jobs_discarded = dev->hs_jobs_discarded;
	nt_metrics_engine_drops(&dev->eng, d);
	for (struct peer *p = dev->peers_first; p && i < dev->peer_count; p = p->next, i++) {
		struct nt_metrics_peer *q = &peers[i];

		memcpy(q->public_key, p->public_key, NT_KEY_LEN);
		q->name = p->name;
		endpoint_format(eps + 64 * i, 64, &p->endpoint);
		q->endpoint = eps + 64 * i;
		q->rx_bytes = p->rx_bytes;
		q->tx_bytes = p->tx_bytes;
		q->rx_packets = p->rx_packets;
		q->tx_packets = p->tx_packets;
		q->last_handshake_ns = p->last_handshake_wall;
		q->handshakes = p->handshakes;
		q->handshake_attempts = p->handshake_attempts;
		q->handshake_failures = p->handshake_failures;
		q->has_session = nt_engine_session_age(&p->np, now, &q->session_age_ns);
	}
	d->peers = peers;
	d->peers_count = i;
	*peers_out = peers;
	*eps_out = eps;
	return 0;
}

static void reply_simple(struct mconn *c, const char *status, const char *extra)
{
	char *buf = malloc(512);
	int n;

	if (!buf)
		return;
	n = snprintf(buf, 512,
		     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n%s\n",
		     status, strlen(status) + 1, extra, status);
	c->out = buf;
	c->out_len = n > 0 && n < 512 ? (size_t)n : 0;
}

static void reply_metrics(struct device *dev, struct mconn *c)
{
	struct nt_metrics_device d;
	struct nt_metrics_peer *peers;
	char head[256], *eps;
	size_t body;
	int hlen;

	if (snapshot(dev, &d, &peers, &eps)) {
		reply_simple(c, "503 Service Unavailable", "");
		return;
	}
	body = nt_metrics_format(NULL, 0, &d, 1);
	hlen = snprintf(head, sizeof(head),
			"HTTP/1.1 200 OK\r\nContent-Type: " NT_METRICS_CONTENT_TYPE "\r\nContent-Length: %zu\r\n"
			"Connection: close\r\n\r\n", body);
	if (body > MAX_BODY || hlen <= 0 || (size_t)hlen >= sizeof(head) || !(c->out = malloc((size_t)hlen + body + 1))) {
		log_error("metrics: a reply of %zu bytes: %s", body, body > MAX_BODY ? "too large" : "out of memory");
		reply_simple(c, "503 Service Unavailable", "");
	} else {
		memcpy(c->out, head, (size_t)hlen);
		nt_metrics_format(c->out + hlen, body + 1, &d, 1);
		c->out_len = (size_t)hlen + body;
	}
	free(peers);
	free(eps);
}

/* The request head is in (it ends at end): answer it. */
static void handle_request(struct device *dev, struct mconn *c, size_t end)
{
	switch (nt_metrics_http_status(c->in, end)) {
	case 200:
		reply_metrics(dev, c);
		break;
	case 404:
		reply_simple(c, "404 Not Found", "");
		break;
	case 405:
		reply_simple(c, "405 Method Not Allowed", "Allow: GET\r\n");
		break;
	default:
		reply_simple(c, "400 Bad Request", "");
		break;
	}
}

/* Whatever the client sends once its request is in is read and ignored (64 KiB a turn):
 * closing with unread bytes would reset the connection, and the reply with it. */
static void drain(struct mconn *c)
{
	char sink[4096];

	for (int i = 0; i < 16 && read(c->base.fd, sink, sizeof(sink)) > 0; i++)
		;
}

void metrics_event(struct device *dev, void *ptr)
{
	struct mconn *c = ptr;

	if (!c->out) {
		ssize_t n = read(c->base.fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
		size_t end;

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			goto close;
		if (n < 0)
			return;
		c->in_len += (size_t)n;
		if ((end = nt_metrics_http_head_end(c->in, c->in_len, &c->in_scan)))
			handle_request(dev, c, end);
		else if (c->in_len == sizeof(c->in))
			reply_simple(c, "431 Request Header Fields Too Large", "");
		else
			return;
		if (!c->out)
			goto close; /* out of memory for even a short answer */
		if (!connset_want(&set, &c->base, EPOLLOUT))
			goto close;
	}
	drain(c);
	while (c->out_off < c->out_len) {
		ssize_t n = write(c->base.fd, c->out + c->out_off, c->out_len - c->out_off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return; /* EPOLLOUT brings us back; the deadline bounds the wait */
		if (n <= 0)
			goto close;
		c->out_off += (size_t)n;
	}
close:
	drain(c);
	conn_free(c);
}
