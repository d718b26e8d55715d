/* The monitor's client side of the worker's control socket: get=1 and set=1 as root, for
 * a reload and for watch.c, serving the channel while it waits (ctlclient.h). */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "noisetun/uapi.h"
#include "common/ctl.h"
#include "noisetund.h"
#include "privsep.h"
#include "ctlclient.h"
#include "savecfg.h"

/* The worker may need us to apply this very request (a new port, a fwmark): serve the
 * channel while waiting, or both would wait for the other. */
static int serve_while_waiting(int fd, void *ctx)
{
	int *chan = ctx;
	struct pollfd pfd[2] = { { .fd = fd, .events = POLLIN }, { .fd = *chan, .events = POLLIN } };
	int ready = poll(pfd, 2, UAPI_TIMEOUT_SEC * 1000);

	if (ready < 0 && errno == EINTR)
		return 0;
	if (ready <= 0)
		return ready < 0 ? -errno : -ETIMEDOUT;
	if ((pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) && !privsep_serve_pending())
		*chan = -1; /* the worker is gone: its reply ends too; the read sees it */
	return (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

/* One request to the worker, its reply whole (the caller frees it with nt_ctl_free). */
static int uapi_call(const char *request, size_t len, char **reply, size_t *reply_len)
{
	int fd, err, chan = privsep_channel();

	if ((fd = nt_ctl_connect(privsep_uapi_path(), UAPI_TIMEOUT_SEC)) < 0)
		return fd;
	err = nt_ctl_call(fd, request, len, MAX_SAVED_TEXT, serve_while_waiting, &chan, reply, reply_len);
	close(fd);
	return err;
}

int privsep_get_state(struct nt_uapi_device *st)
{
	char *reply;
	size_t len;
	int err;

	memset(st, 0, sizeof(*st));
	/* noisetun=1: with the peers' names, which a reload removes when the file drops them */
	if ((err = uapi_call("get=1\nnoisetun=1\n\n", 18, &reply, &len)))
		return err;
	err = nt_uapi_parse_get(st, reply, len);
	nt_ctl_free(reply, len);
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
	err = nt_uapi_parse_set_reply(reply, reply_len);
	nt_ctl_free(reply, reply_len);
	return err;
}
