/* The control socket's client side (ctl.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "noisetun/crypto.h"
#include "common/ctl.h"

int nt_ctl_connect(const char *path, unsigned timeout_sec)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = (time_t)timeout_sec };
	int fd, err;

	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path) >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if ((timeout_sec && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
			     setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)) ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Where the reply's empty line ends (the length through it), looking at the bytes from
 * `from` on; 0 while there is none yet. A reply may begin with its empty line. */
static size_t reply_end(const char *buf, size_t from, size_t n)
{
	if (n && buf[0] == '\n')
		return 1;
	for (size_t i = from ? from : 1; i < n; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\n')
			return i + 1;
	return 0;
}

int nt_ctl_call(int fd, const char *request, size_t len, size_t max, nt_ctl_wait_fn *wait, void *ctx, char **reply,
		size_t *reply_len)
{
	size_t cap = 4096, n = 0, end = 0;
	char *buf, *grown;
	int err;

	*reply = NULL;
	*reply_len = 0;
	if ((err = send_all(fd, request, len)))
		return err;
	if (!(buf = malloc(cap)))
		return -ENOMEM;
	while (!end) {
		ssize_t r;

		if (n + 1 == cap) {
			/* a reply holds keys: realloc could leave a copy behind */
			if (!(grown = nt_wiped_realloc(buf, cap, cap * 2))) {
				err = -ENOMEM;
				break;
			}
			buf = grown;
			cap *= 2;
		}
		if (wait && (err = wait(fd, ctx)) <= 0) {
			if (err < 0)
				break;
			continue;
		}
		err = 0;
		r = recv(fd, buf + n, cap - n - 1, wait ? MSG_DONTWAIT : 0);
		if (r < 0 && (errno == EINTR || (wait && errno == EAGAIN)))
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EPROTO;
			break;
		}
		end = reply_end(buf, n, n + (size_t)r);
		n += (size_t)r;
		if ((end ? end : n) > max) {
			err = -EFBIG;
			break;
		}
	}
	if (err) {
		nt_wipe(buf, cap);
		free(buf);
		return err;
	}
	/* anything after the empty line is not this reply's: dropped */
	nt_wipe(buf + end, n - end);
	buf[end] = '\0';
	*reply = buf;
	*reply_len = end;
	return 0;
}

void nt_ctl_free(char *reply, size_t reply_len)
{
	if (reply) {
		nt_wipe(reply, reply_len + 1);
		free(reply);
	}
}
