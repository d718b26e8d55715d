/* A listener and its bounded connections (connset.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "connset.h"
#include "noisetund.h"

/* The tick runs while there is something to look after: connections (their expiry), a
 * paused listener (retried), or a logged episode (its end is logged after a quiet tick). */
static void timer_update(struct connset *s)
{
	bool want = s->count || s->paused || s->episode;
	struct itimerspec its = { 0 };

	if (want == s->timer_armed || s->timer < 0)
		return;
	if (want) {
		its.it_value.tv_sec = its.it_interval.tv_sec = (time_t)(s->tick_ns / NT_NSEC_PER_SEC);
		its.it_value.tv_nsec = its.it_interval.tv_nsec = (long)(s->tick_ns % NT_NSEC_PER_SEC);
	}
	if (timerfd_settime(s->timer, 0, &its, NULL) < 0) {
		log_error("%s: timer: %s", s->name, strerror(errno));
		return;
	}
	s->timer_armed = want;
}

static void listener_events(struct connset *s, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = s->listen_tag };

	if (epoll_ctl(s->epoll, EPOLL_CTL_MOD, s->listen_fd, &ev) < 0)
		log_error("%s: epoll_ctl: %s", s->name, strerror(errno));
}

static void listener_pause(struct connset *s, const char *why)
{
	if (!s->paused)
		listener_events(s, 0);
	s->paused = s->paused_in_tick = true;
	if (!s->episode)
		log_error("%s: %s; new connections wait (retried every second and when one closes)", s->name, why);
	s->episode = true;
	timer_update(s);
}

static void listener_resume(struct connset *s)
{
	if (!s->paused || s->listen_fd < 0 || s->count >= s->max)
		return;
	listener_events(s, EPOLLIN);
	s->paused = false;
	timer_update(s);
}

int connset_adopt(struct connset *s, int epoll, int fd, uint64_t listen_tag, uint64_t timer_tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = listen_tag };
	struct epoll_event tev = { .events = EPOLLIN, .data.u64 = timer_tag };
	int flags = fcntl(fd, F_GETFL), err;

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	s->timer = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->timer < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, s->timer, &tev) < 0) {
		err = -errno;
		goto fail;
	}
	if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
		err = -errno;
		epoll_ctl(epoll, EPOLL_CTL_DEL, s->timer, NULL);
		goto fail;
	}
	s->epoll = epoll;
	s->listen_fd = fd;
	s->listen_tag = listen_tag;
	return 0;
fail:
	if (s->timer >= 0)
		close(s->timer);
	s->timer = -1;
	return err;
}

struct conn_base *connset_accept(struct connset *s)
{
	while (!s->paused && s->listen_fd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN };
		struct conn_base *c;
		int fd;

		if (s->count >= s->max) {
			listener_pause(s, "connection limit reached");
			return NULL;
		}
		fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN) /* EMFILE, ENFILE, ENOBUFS, ENOMEM: the listener stays readable */
				listener_pause(s, strerror(errno));
			return NULL;
		}
		c = calloc(1, s->conn_size);
		ev.data.ptr = c;
		if (!c || epoll_ctl(s->epoll, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c);
			close(fd);
			listener_pause(s, "out of memory for a new connection");
			return NULL;
		}
		c->fd = fd;
		c->events = EPOLLIN;
		c->next = s->conns;
		s->conns = c;
		s->count++;
		timer_update(s);
		return c;
	}
	return NULL;
}

void connset_close(struct connset *s, struct conn_base *c)
{
	struct conn_base **pp = &s->conns;

	while (*pp && *pp != c)
		pp = &(*pp)->next;
	if (*pp) {
		*pp = c->next;
		s->count--;
	}
	if (epoll_ctl(s->epoll, EPOLL_CTL_DEL, c->fd, NULL) < 0)
		log_error("%s: epoll_ctl: %s", s->name, strerror(errno));
	close(c->fd);
	free(c);
	listener_resume(s); /* a slot, and an fd, are free again */
	timer_update(s);
}

void connset_tick(struct connset *s)
{
	uint64_t expirations;

	if (read(s->timer, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_error("%s: timer: %s", s->name, strerror(errno));
	if (s->episode && !s->paused && !s->paused_in_tick) {
		log_error("%s: accepting connections again", s->name);
		s->episode = false;
	}
	s->paused_in_tick = false;
	listener_resume(s);
	timer_update(s);
}

bool connset_want(struct connset *s, struct conn_base *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	if (c->events == events)
		return true;
	if (epoll_ctl(s->epoll, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
		log_error("%s: epoll_ctl: %s", s->name, strerror(errno));
		return false;
	}
	c->events = events;
	return true;
}

bool connset_has(const struct connset *s, const void *ptr)
{
	for (const struct conn_base *c = s->conns; c; c = c->next)
		if (c == ptr)
			return true;
	return false;
}

void connset_shed(struct connset *s, void (*release)(struct conn_base *c))
{
	while (s->conns) {
		struct conn_base *c = s->conns;

		if (release)
			release(c);
		connset_close(s, c);
	}
	if (s->timer >= 0)
		close(s->timer);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	s->timer = s->listen_fd = -1;
	s->timer_armed = s->paused = s->paused_in_tick = s->episode = false;
}
