/* Time, randomness and endpoint helpers: the daemon's side of what the core takes as
 * parameters. */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "noisetun/uapi.h"
#include "noisetund.h"

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for these clocks on Linux; a zero would only delay timers. */
	if (clock_gettime(id, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * NT_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t now_ns(void)
{
	return clock_ns(CLOCK_BOOTTIME);
}

/* The protocol's clock: now_ns(), or for the tests ($NOISETUN_TEST_CLOCK_SCALE=N, 2..100)
 * a clock that runs N times as fast from the first reading on, so that a scenario sees
 * REKEY_ATTEMPT_TIME (90 s) pass in 90/N s. Only the engine's timers read it; the control
 * socket's timeouts and the wall clock keep real time. */
static struct {
	bool init;
	uint64_t scale, base;
} pclock;

static void pclock_init(void)
{
	const char *env = getenv("NOISETUN_TEST_CLOCK_SCALE");
	unsigned long v = env && *env ? strtoul(env, NULL, 10) : 1;

	pclock.init = true;
	pclock.scale = v >= 2 && v <= 100 ? v : 1;
	pclock.base = now_ns();
}

uint64_t proto_now_ns(void)
{
	if (!pclock.init)
		pclock_init();
	if (pclock.scale == 1)
		return now_ns();
	return pclock.base + (now_ns() - pclock.base) * pclock.scale;
}

uint64_t proto_to_real_ns(uint64_t t)
{
	if (!pclock.init)
		pclock_init();
	if (pclock.scale == 1 || t == UINT64_MAX)
		return t;
	return t <= pclock.base ? t : pclock.base + (t - pclock.base) / pclock.scale;
}

uint64_t wall_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

static void sys_fill(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	randombytes_buf(buf, len);
}

const struct nt_rng sys_rng = { .fill = sys_fill, .ctx = NULL };

socklen_t endpoint_len(const union nt_endpoint *ep)
{
	return ep->sa.sa_family == AF_INET6 ? sizeof(ep->in6) : sizeof(ep->in4);
}

void endpoint_from_uapi(union nt_endpoint *ep, const struct nt_uapi_endpoint *u)
{
	memset(ep, 0, sizeof(*ep));
	if (u->family == AF_INET) {
		ep->in4.sin_family = AF_INET;
		ep->in4.sin_port = htons(u->port);
		memcpy(&ep->in4.sin_addr, u->addr, 4);
	} else {
		ep->in6.sin6_family = AF_INET6;
		ep->in6.sin6_port = htons(u->port);
		memcpy(&ep->in6.sin6_addr, u->addr, 16);
		ep->in6.sin6_scope_id = u->scope_id;
	}
	endpoint_normalize(ep);
}

void endpoint_to_uapi(struct nt_uapi_endpoint *u, const union nt_endpoint *ep)
{
	memset(u, 0, sizeof(*u));
	u->family = (uint8_t)ep->sa.sa_family;
	if (ep->sa.sa_family == AF_INET) {
		u->port = ntohs(ep->in4.sin_port);
		memcpy(u->addr, &ep->in4.sin_addr, 4);
	} else if (ep->sa.sa_family == AF_INET6) {
		u->port = ntohs(ep->in6.sin6_port);
		memcpy(u->addr, &ep->in6.sin6_addr, 16);
		u->scope_id = ep->in6.sin6_scope_id;
	}
}

/* One text form for endpoints, the control protocol's (lib/uapi.c). */
size_t endpoint_format(char *buf, size_t size, const union nt_endpoint *ep)
{
	struct nt_uapi_endpoint u;

	endpoint_to_uapi(&u, ep);
	return nt_uapi_format_endpoint(buf, size, &u);
}

unsigned threads_start(pthread_t *th, unsigned want, void *(*fn)(void *), const char *what)
{
	sigset_t all, old;
	unsigned n = 0;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; n < want; n++) {
		if ((err = pthread_create(&th[n], NULL, fn, NULL))) {
			log_error("%s: %s (%u started)", what, strerror(err), n);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return n;
}
