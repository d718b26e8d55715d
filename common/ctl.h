/* The client of a control socket (control-protocol.md), for both binaries (ctl.c): the CLI
 * asks noisetund, wireguard-go or another noisetun; the monitor of a split daemon asks its
 * own worker. Connect, send one request, read one reply, bounded; what the reply says is
 * parsed in lib/uapi.c (nt_uapi_parse_get, nt_uapi_parse_set_reply). */
#ifndef NOISETUN_COMMON_CTL_H
#define NOISETUN_COMMON_CTL_H

#include <stddef.h>

/* The longest reply read: a get of a device with about 100,000 peers. */
#define NT_CTL_REPLY_MAX (64u << 20)

/* A connected stream socket to path. timeout_sec > 0 bounds each read and each write
 * (SO_RCVTIMEO, SO_SNDTIMEO: a read then fails with -EAGAIN); 0: no bound. fd or -errno. */
int nt_ctl_connect(const char *path, unsigned timeout_sec);

/* Called before each read of the reply, when the caller has more to watch than the socket
 * (the monitor serves its worker's channel while it waits). 1: fd is readable, 0: ask
 * again, or a negative errno that ends the call (-ETIMEDOUT). */
typedef int nt_ctl_wait_fn(int fd, void *ctx);

/* Send request (len bytes) whole, then read the reply through its empty line into *reply
 * (malloc'd, NUL-terminated, *reply_len bytes through the empty line; what a daemon sends
 * after it is not read further). 0, -EPROTO (closed before the empty line), -EFBIG (more
 * than max bytes), -EAGAIN (timeout_sec passed) or another -errno. wait may be NULL. Free
 * the reply with nt_ctl_free: it may hold keys. */
int nt_ctl_call(int fd, const char *request, size_t len, size_t max, nt_ctl_wait_fn *wait, void *ctx, char **reply,
		size_t *reply_len);
void nt_ctl_free(char *reply, size_t reply_len);

#endif
