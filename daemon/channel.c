/* The channel between the monitor and the worker (privsep.c): one SOCK_SEQPACKET message
 * each, fds with SCM_RIGHTS, and the monitor's checks of what the worker says, which may
 * be anything a compromised worker chooses (channel.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetund.h"
#include "channel.h"

#define MAX_LOGGED_REFUSALS 100 /* channel messages; a worker that lies more is ignored quietly */

static struct {
	unsigned refused;               /* channel messages refused, for the log's limit */
} chan;

/* One message of the channel and the fds it carried (O_CLOEXEC; *nfds of them, the
 * caller closes them). Bytes as recv(). */
ssize_t chan_recv(int fd, char *buf, size_t size, int flags, int fds[CHAN_MAX_FDS], int *nfds)
{
	union {
		char buf[CMSG_SPACE(CHAN_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { buf, size };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n = recvmsg(fd, &m, flags | MSG_CMSG_CLOEXEC);

	*nfds = 0;
	if (n < 0)
		return n;
	/* More fds than fit were closed by the kernel (MSG_CTRUNC); keep what came. */
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int got;
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*nfds < CHAN_MAX_FDS)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	return n;
}

int chan_sendfds(int fd, const void *buf, size_t len, const int *fds, int nfds)
{
	union {
		char buf[CMSG_SPACE(CHAN_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = { (void *)buf, len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds > 0) {
		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 ? -errno : 0;
}

void close_fds(int *fds, int nfds)
{
	for (int i = 0; i < nfds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* ---- the monitor's checks ---- */

void chan_refuse(const char *why)
{
	if (++chan.refused < MAX_LOGGED_REFUSALS)
		log_error("refused a message from the worker: %s", why);
	else if (chan.refused == MAX_LOGGED_REFUSALS)
		log_error("refused a message from the worker: %s; further refusals are not logged", why);
}

/* A message of n bytes (n may exceed cap: recv's MSG_TRUNC) that is not a socket request:
 * true if it is one the monitor acts on, NUL-terminated in place; else refused, one log
 * line. The same rules whether the monitor waits in its loop or on a hook or a reload. */
bool chan_message_ok(char *msg, ssize_t n, size_t cap, bool ready_seen, bool handover)
{
	char why[64];
	size_t len = (size_t)n;

	if (n <= 0) {
		chan_refuse("an empty message");
		return false;
	}
	if (len > cap) {
		snprintf(why, sizeof(why), "%zd bytes, more than %zu", n, cap);
		chan_refuse(why);
		return false;
	}
	msg[len] = 0;
	if (memchr(msg, 0, len)) {
		chan_refuse("a NUL byte");
		return false;
	}
	switch (msg[0]) {
	case 'R':
		if (len != 1 || ready_seen)
			chan_refuse(len != 1 ? "'R' with a payload" : "a second 'R'");
		return len == 1 && !ready_seen;
	case 'E':
		if (ready_seen)
			chan_refuse("'E' once ready");
		return !ready_seen;
	case 'H':
		if (len != 1)
			chan_refuse("'H' with a payload");
		return len == 1;
	case 'F': {
		uint8_t key[NT_KEY_LEN];
		bool ok = len == 1 + NT_KEY_HEX_LEN && !nt_key_from_hex(key, msg + 1);

		if (!ok)
			chan_refuse("'F' without one public key in hex");
		return ok;
	}
	case 'Q': /* a worker unit's orderly exit; a forked worker has its exit status */
		if (len != 1 || !handover)
			chan_refuse(!handover ? "'Q' from a forked worker" : "'Q' with a payload");
		return len == 1 && handover;
	case 'N':
		if (!notify_allowed(msg + 1, len - 1))
			chan_refuse("a notify message other than one line of STATUS=, WATCHDOG=1 or STOPPING=1");
		return notify_allowed(msg + 1, len - 1);
	default:
		snprintf(why, sizeof(why), "unknown type 0x%02x", (unsigned)(unsigned char)msg[0]);
		chan_refuse(why);
		return false;
	}
}

/* What a notify message may be; printable ASCII only, one line. */
bool notify_allowed(const char *text, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (text[i] < 0x20 || text[i] > 0x7e)
			return false;
	return (len >= 7 && !memcmp(text, "STATUS=", 7)) || (len == 10 && !memcmp(text, "WATCHDOG=1", 10)) ||
	       (len == 10 && !memcmp(text, "STOPPING=1", 10));
}
