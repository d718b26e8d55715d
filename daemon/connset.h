/* A listening stream socket and its bounded set of connections, served from the loop's
 * epoll without ever blocking: the control socket (uapi.c) and the metrics endpoint
 * (metrics.c) are each one, with their own protocol on top.
 *
 * What a set does for its owner:
 *   - at most max connections; past that, or when accept fails for want of fds or
 *     memory, the listener leaves the epoll set's interest (clients wait in the backlog)
 *     and is retried on every tick and whenever a connection closes. Such an episode is
 *     logged once when it starts and once when a whole tick passed without one;
 *   - a tick (a timerfd, every tick_ns) runs while there are connections or the listener
 *     is paused: the owner closes what it finds expired on it (its own rule);
 *   - a connection is the owner's struct of conn_size bytes that begins with a struct
 *     conn_base, zeroed at accept and registered for EPOLLIN with data.ptr = itself.
 *
 * The owner frees what its connection holds, then connset_close(). An epoll event's
 * data.ptr is checked with connset_has() before use: a connection closed earlier in the
 * same batch of events is no longer in the set. */
#ifndef NOISETUN_CONNSET_H
#define NOISETUN_CONNSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_base {
	int fd;
	struct conn_base *next;
	uint32_t events;                /* the epoll mask registered */
};

struct connset {
	/* set by the owner before connset_adopt */
	const char *name;               /* for logs: "control socket" */
	size_t max, conn_size;
	uint64_t tick_ns;
	/* the set's own */
	int epoll, listen_fd, timer;
	uint64_t listen_tag;
	struct conn_base *conns;
	size_t count;
	bool paused, paused_in_tick, episode, timer_armed;
};

#define CONNSET_INIT(NAME, MAX, TYPE, TICK_NS)                                                      \
	{ .name = (NAME), .max = (MAX), .conn_size = sizeof(TYPE), .tick_ns = (TICK_NS), .epoll = -1, \
	  .listen_fd = -1, .timer = -1 }

/* Serve fd (a listening socket; made non-blocking here) from epoll: the listener's events
 * come with data.u64 listen_tag, the tick's with timer_tag. 0 or -errno (fd stays the
 * caller's then). */
int connset_adopt(struct connset *s, int epoll, int fd, uint64_t listen_tag, uint64_t timer_tag);

/* The listener is readable: the next new connection, or NULL when there is none now or
 * the set is full (the listener is paused then). Call until NULL. */
struct conn_base *connset_accept(struct connset *s);

/* Close c (its fd, its place in the set) and free it; a paused listener is resumed. */
void connset_close(struct connset *s, struct conn_base *c);

/* The tick's event: read the timer, end a logged episode, resume a paused listener. The
 * owner then closes what expired. */
void connset_tick(struct connset *s);

/* Register events for c (no call when they are those registered). false: epoll failed. */
bool connset_want(struct connset *s, struct conn_base *c, uint32_t events);

bool connset_has(const struct connset *s, const void *ptr);

/* Close every connection (release(c) first frees what the owner's struct holds), the
 * tick and the listener. The set can be adopted again. */
void connset_shed(struct connset *s, void (*release)(struct conn_base *c));

#endif
