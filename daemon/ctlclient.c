/* The monitor's client side of the worker's control socket: get=1 and set=1 as root, for
 * a reload and for watch.c, serving the channel while it waits (ctlclient.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "privsep.h"
#include "ctlclient.h"
#include "savecfg.h"

static int uapi_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = UAPI_TIMEOUT_SEC };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Send request (len bytes), read the reply through its final empty line into *reply
 * (NUL-terminated, malloc'd: the caller wipes and frees it). 0 or -errno. */
static int uapi_call(const char *request, size_t len, char **reply, size_t *reply_len)
{
	size_t cap = 4096, n = 0;
	char *buf = NULL;
	int fd, err = 0, chan = privsep_channel();

	*reply = NULL;
	if ((fd = uapi_connect(privsep_uapi_path())) < 0)
		return fd;
	for (size_t off = 0; off < len;) {
		ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	if (!(buf = malloc(cap))) {
		err = -ENOMEM;
		goto out;
	}
	while (n < 2 || buf[n - 1] != '\n' || buf[n - 2] != '\n') {
		if (n + 1 >= cap) {
			char *grown = cap * 2 > MAX_SAVED_TEXT ? NULL : malloc(cap * 2);
			if (!grown) {
				err = -ENOMEM;
				goto out;
			}
			memcpy(grown, buf, n);
			explicit_bzero(buf, cap);
			free(buf);
			buf = grown;
			cap *= 2;
		}
		/* The worker may need us to apply this very request (a new port, a fwmark):
		 * serve the channel while waiting, or both would wait for the other. */
		struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = chan, .events = POLLIN } };
		int ready = poll(pfd, 2, UAPI_TIMEOUT_SEC * 1000);
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0) {
			err = ready < 0 ? -errno : -ETIMEDOUT;
			goto out;
		}
		if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && !privsep_serve_pending())
			chan = -1; /* the worker is gone: its reply ends too; the loop sees it */
		if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		ssize_t r = recv(fd, buf + n, cap - n - 1, MSG_DONTWAIT);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EPIPE;
			goto out;
		}
		n += (size_t)r;
	}
	buf[n] = 0;
	*reply = buf;
	*reply_len = n;
	buf = NULL;
out:
	if (buf) {
		explicit_bzero(buf, cap);
		free(buf);
	}
	close(fd);
	return err;
}

/* The errno=N of a reply: its last line. */
static int reply_errno(const char *reply, size_t len)
{
	const char *line = reply + len - 2;

	while (line > reply && line[-1] != '\n')
		line--;
	return strncmp(line, "errno=", 6) ? -EPROTO : (int)strtol(line + 6, NULL, 10);
}

void device_state_free(struct device_state *st)
{
	free(st->peers);
	explicit_bzero(st, sizeof(*st));
}

int privsep_get_state(struct device_state *st)
{
	char *reply, *line, *next;
	size_t len;
	int err;

	memset(st, 0, sizeof(*st));
	if ((err = uapi_call("get=1\n\n", 7, &reply, &len)))
		return err;
	if ((err = reply_errno(reply, len)))
		goto out;
	for (line = reply; line && *line; line = next) {
		char *value = strchr(line, '=');

		if ((next = strchr(line, '\n')))
			*next++ = 0;
		if (!value)
			continue;
		*value++ = 0;
		if (!strcmp(line, "private_key")) {
			st->has_private_key = !nt_key_from_hex(st->private_key, value);
		} else if (!strcmp(line, "listen_port")) {
			st->listen_port = (uint16_t)strtoul(value, NULL, 10);
		} else if (!strcmp(line, "fwmark")) {
			st->fwmark = (uint32_t)strtoul(value, NULL, 10);
		} else if (!strcmp(line, "public_key")) {
			uint8_t(*grown)[NT_KEY_LEN] = realloc(st->peers, (st->peers_count + 1) * sizeof(*grown));
			if (!grown) {
				err = -ENOMEM;
				break;
			}
			st->peers = grown;
			if (nt_key_from_hex(st->peers[st->peers_count++], value)) {
				err = -EPROTO;
				break;
			}
		}
	}
out:
	explicit_bzero(reply, len);
	free(reply);
	if (err)
		device_state_free(st);
	return err;
}

int privsep_send_set(const struct nt_uapi_set *set)
{
	size_t body = nt_uapi_format_set(set, NULL, 0), len = body + 7, reply_len;
	char *request = malloc(len + 1), *reply;
	int err;

	if (!request)
		return -ENOMEM;
	memcpy(request, "set=1\n", 6);
	nt_uapi_format_set(set, request + 6, body + 1);
	request[6 + body] = '\n';
	err = uapi_call(request, len, &reply, &reply_len);
	explicit_bzero(request, len + 1);
	free(request);
	if (err)
		return err;
	err = reply_errno(reply, reply_len);
	explicit_bzero(reply, reply_len);
	free(reply);
	return err;
}
