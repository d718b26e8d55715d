/* The monitor/worker channel: its messages and their checks (channel.c). */
#ifndef NOISETUN_CHANNEL_H
#define NOISETUN_CHANNEL_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "noisetun/messages.h"

/* 'V': an event for the hooks. Binary; the monitor checks every field. */
struct hook_msg {
	uint32_t kind;
	uint8_t key[NT_KEY_LEN];
	uint16_t family, port;          /* AF_UNSPEC, AF_INET, AF_INET6; port in host order */
	uint8_t addr[16];
	uint32_t scope_id;
};

/* 'U' req_open: a UDP pair on port with fwmark  -> 'u' reply, the fds (v4, then v6)
 * 'M' req_mark + the worker's UDP fds: SO_MARK   -> 'm' reply
 * A reply answers the request of the same seq; a late one (the worker gave up) is
 * dropped with its fds. */
struct req_open {
	uint32_t seq, fwmark;
	uint16_t port;
};
struct req_mark {
	uint32_t seq, fwmark;
};
struct sock_reply {
	uint32_t seq;
	int32_t err;
};
/* 'L' req_link: an interface by index (name empty) or by name -> 'l' reply + req_link with
 * both. The worker may not open sockets, and resolves endpoint scopes this way. */
struct req_link {
	uint32_t seq, index;
	char name[IF_NAMESIZE];
};

#define CHAN_MAX_FDS 2

#define CHAN_MAX_FDS 2

/* One message of the channel and the fds it carried (O_CLOEXEC; *nfds of them, the
 * caller closes them). Bytes as recv(). */
ssize_t chan_recv(int fd, char *buf, size_t size, int flags, int fds[CHAN_MAX_FDS], int *nfds);
/* One message with nfds fds; 0 or -errno (never blocks). */
int chan_sendfds(int fd, const void *buf, size_t len, const int *fds, int nfds);
void close_fds(int *fds, int nfds);
/* A message refused: one log line, up to a limit. */
void chan_refuse(const char *why);
/* A message of n bytes (n may exceed cap: recv's MSG_TRUNC) that is not a socket request:
 * true if it is one the monitor acts on, NUL-terminated in place; else refused, one log
 * line. ready_seen: the worker said 'R' already; handover: it is a unit of its own. */
bool chan_message_ok(char *msg, ssize_t n, size_t cap, bool ready_seen, bool handover);
/* What a notify message may be; printable ASCII only, one line. */
bool notify_allowed(const char *text, size_t len);

#endif
