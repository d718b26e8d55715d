/* Sockets for the worker, which may not open or mark them (sandbox.c): it asks over the
 * channel ('U', 'M', 'L'; channel.h), the monitor opens, marks or looks up and answers. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "noisetund.h"
#include "channel.h"
#include "ctlclient.h"
#include "handover.h"
#include "privsep.h"

/* Worker: send the request, wait (the loop stalls: a set is being applied) for its reply. */
static int worker_call(char type, const void *req, size_t len, const int *fds_in, int nin, int fds[CHAN_MAX_FDS],
		       int *nfds, void *out, size_t out_len)
{
	static uint32_t seq;
	char buf[64];
	struct sock_reply rep;
	uint32_t want = ++seq;
	int64_t deadline = (int64_t)(now_ns() / 1000000) + UAPI_TIMEOUT_SEC * 1000;
	int err;

	*nfds = 0;
	buf[0] = type;
	memcpy(buf + 1, &want, sizeof(want)); /* every request starts with its seq */
	memcpy(buf + 1 + sizeof(want), (const char *)req + sizeof(want), len - sizeof(want));
	if (privsep_channel() < 0)
		return -EPIPE;
	if ((err = chan_sendfds(privsep_channel(), buf, 1 + len, fds_in, nin)))
		return err;
	for (;;) {
		struct pollfd pfd = { .fd = privsep_channel(), .events = POLLIN };
		int64_t left = deadline - (int64_t)(now_ns() / 1000000);
		ssize_t n;
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		if ((r = poll(&pfd, 1, (int)left)) < 0 && errno != EINTR)
			return -errno;
		if (r <= 0)
			continue;
		n = chan_recv(privsep_channel(), buf, sizeof(buf), MSG_DONTWAIT, fds, nfds);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE; /* the monitor is gone */
		if ((size_t)n == 1 + sizeof(rep) + (out ? out_len : 0) && buf[0] == type + ('a' - 'A')) {
			memcpy(&rep, buf + 1, sizeof(rep));
			if (rep.seq == want) {
				if (!rep.err) {
					if (out)
						memcpy(out, buf + 1 + sizeof(rep), out_len);
					return 0;
				}
				close_fds(fds, *nfds);
				*nfds = 0;
				return rep.err < 0 && rep.err > -4096 ? rep.err : -EPROTO;
			}
		}
		if (n == 1 && buf[0] == 'T' && privsep_is_handover())
			privsep_set_stop_asked(); /* the loop acts on it */
		close_fds(fds, *nfds); /* a late reply to an abandoned request */
		*nfds = 0;
	}
}

int privsep_udp_open(uint16_t port, uint32_t fwmark, int *v4, int *v6)
{
	struct req_open req = { .fwmark = fwmark, .port = port };
	int fds[CHAN_MAX_FDS], nfds, err;

	if ((err = worker_call('U', &req, sizeof(req), NULL, 0, fds, &nfds, NULL, 0)))
		return err;
	if (nfds < 1) /* the reply said yes but brought no socket */
		return -EPROTO;
	*v4 = fds[0];
	*v6 = nfds > 1 ? fds[1] : -1;
	return 0;
}

int privsep_udp_mark(int v4, int v6, uint32_t fwmark)
{
	struct req_mark req = { .fwmark = fwmark };
	int in[2], nin = 0, fds[CHAN_MAX_FDS], nfds, err;

	if (v4 >= 0)
		in[nin++] = v4;
	if (v6 >= 0)
		in[nin++] = v6;
	if (!nin)
		return 0;
	err = worker_call('M', &req, sizeof(req), in, nin, fds, &nfds, NULL, 0);
	close_fds(fds, nfds);
	return err;
}

/* An interface by index (name NULL) or by name: its index and name. 0 or -errno. */
int privsep_link_lookup(uint32_t index, const char *name, uint32_t *index_out, char name_out[IF_NAMESIZE])
{
	struct req_link req = { .index = index }, got;
	int fds[CHAN_MAX_FDS], nfds, err;

	if (name && snprintf(req.name, sizeof(req.name), "%s", name) >= (int)sizeof(req.name))
		return -ENODEV;
	err = worker_call('L', &req, sizeof(req), NULL, 0, fds, &nfds, &got, sizeof(got));
	close_fds(fds, nfds);
	if (err)
		return err;
	if (!got.index || !memchr(got.name, 0, sizeof(got.name)))
		return -EPROTO;
	*index_out = got.index;
	memcpy(name_out, got.name, IF_NAMESIZE);
	return 0;
}

/* Monitor: SO_MARK on an fd of the worker's, if it is a UDP socket (and nothing else). */
static int mark_udp(int fd, uint32_t fwmark)
{
	int domain, type, proto;
	socklen_t len = sizeof(int);

	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 || (len = sizeof(int),
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) || (len = sizeof(int),
	    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0))
		return errno == ENOTSOCK ? -EINVAL : -errno;
	if ((domain != AF_INET && domain != AF_INET6) || type != SOCK_DGRAM || proto != IPPROTO_UDP)
		return -EINVAL;
	return setsockopt(fd, SOL_SOCKET, SO_MARK, &fwmark, sizeof(fwmark)) < 0 ? -errno : 0;
}

/* Monitor: a message of the worker's ('U', 'M'; hostile bytes and fds) answered on the
 * channel. True if it was one of those. */
bool privsep_monitor_serve(const char *msg, size_t n, const int *fds, int nfds)
{
	struct sock_reply rep = { 0 };
	struct req_link link = { 0 };
	int out[2] = { -1, -1 }, nout = 0;
	char reply[1 + sizeof(rep) + sizeof(link)];
	size_t reply_len = 1 + sizeof(rep);

	if (msg[0] == 'V') { /* no reply, no fds */
		if (privsep_ready_seen())
			privsep_monitor_hook_event(msg, n);
		return true;
	}
	if (msg[0] == 'U' && n == 1 + sizeof(struct req_open)) {
		struct req_open req;

		memcpy(&req, msg + 1, sizeof(req));
		rep.seq = req.seq;
		if (!(rep.err = udp_open_pair(req.port, req.fwmark, &out[0], &out[1])))
			nout = out[1] >= 0 ? 2 : 1;
		if (rep.err)
			log_error("cannot open UDP port %u for the worker: %s", req.port, strerror(-rep.err));
		else
			log_verbose("opened UDP port %u for the worker", req.port);
	} else if (msg[0] == 'L' && n == 1 + sizeof(struct req_link)) {
		memcpy(&link, msg + 1, sizeof(link));
		rep.seq = link.seq;
		link.seq = 0;
		if (!link.index) {
			link.name[IF_NAMESIZE - 1] = 0; /* the worker's bytes: a string only up to here */
			link.index = if_nametoindex(link.name);
			rep.err = link.index ? 0 : -ENODEV;
		} else if (!if_indextoname(link.index, link.name)) {
			rep.err = -ENODEV;
		}
		if (rep.err)
			memset(&link, 0, sizeof(link));
		reply_len += sizeof(link);
	} else if (msg[0] == 'M' && n == 1 + sizeof(struct req_mark)) {
		struct req_mark req;

		memcpy(&req, msg + 1, sizeof(req));
		rep.seq = req.seq;
		rep.err = nfds ? 0 : -EINVAL;
		for (int i = 0; i < nfds && !rep.err; i++)
			rep.err = mark_udp(fds[i], req.fwmark);
		if (rep.err)
			log_error("cannot set the worker's fwmark: %s", strerror(-rep.err));
	} else {
		return false;
	}
	reply[0] = (char)(msg[0] + ('a' - 'A'));
	memcpy(reply + 1, &rep, sizeof(rep));
	if (reply_len > 1 + sizeof(rep))
		memcpy(reply + 1 + sizeof(rep), &link, sizeof(link));
	if (chan_sendfds(privsep_channel(), reply, reply_len, out, nout))
		log_error("cannot answer the worker: %s", strerror(errno));
	close_fds(out, nout); /* the worker has its own now */
	return true;
}
