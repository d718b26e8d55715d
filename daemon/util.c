/* Time, randomness and endpoint helpers: the daemon's side of what the core takes as
 * parameters. */
#include <arpa/inet.h>
#include <sodium.h>
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

/* Timer jitter needs spread, not secrecy, and is drawn for every data packet sent: a
 * getrandom(2) each time showed at the top of the sender's profile. xorshift64*, seeded
 * once from the system. Session indices and keys still come from randombytes. */
uint64_t random_jitter(void)
{
	static uint64_t state;

	while (!state)
		randombytes_buf(&state, sizeof(state));
	state ^= state >> 12;
	state ^= state << 25;
	state ^= state >> 27;
	return (state * 0x2545F4914F6CDD1DULL) % NT_REKEY_TIMEOUT_JITTER_MAX;
}

socklen_t endpoint_len(const union endpoint *ep)
{
	return ep->sa.sa_family == AF_INET6 ? sizeof(ep->in6) : sizeof(ep->in4);
}

bool endpoint_equal(const union endpoint *a, const union endpoint *b)
{
	if (a->sa.sa_family != b->sa.sa_family)
		return false;
	if (a->sa.sa_family == AF_INET)
		return a->in4.sin_port == b->in4.sin_port && a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
	if (a->sa.sa_family == AF_INET6)
		return a->in6.sin6_port == b->in6.sin6_port &&
		       !memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof(a->in6.sin6_addr)) &&
		       a->in6.sin6_scope_id == b->in6.sin6_scope_id;
	return true;
}

size_t endpoint_cookie_src(const union endpoint *ep, uint8_t out[18])
{
	if (ep->sa.sa_family == AF_INET) {
		memcpy(out, &ep->in4.sin_addr, 4);
		memcpy(out + 4, &ep->in4.sin_port, 2);
		return 6;
	}
	memcpy(out, &ep->in6.sin6_addr, 16);
	memcpy(out + 16, &ep->in6.sin6_port, 2);
	return 18;
}

void endpoint_normalize(union endpoint *ep)
{
	if (ep->sa.sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&ep->in6.sin6_addr)) {
		struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = ep->in6.sin6_port };

		memcpy(&in4.sin_addr, &ep->in6.sin6_addr.s6_addr[12], 4);
		memset(ep, 0, sizeof(*ep));
		ep->in4 = in4;
	}
}

void endpoint_from_uapi(union endpoint *ep, const struct nt_uapi_endpoint *u)
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

/* One text form for endpoints, the control protocol's (lib/uapi.c). */
size_t endpoint_format(char *buf, size_t size, const union endpoint *ep)
{
	struct nt_uapi_endpoint u = { .family = (uint8_t)ep->sa.sa_family };

	if (ep->sa.sa_family == AF_INET) {
		u.port = ntohs(ep->in4.sin_port);
		memcpy(u.addr, &ep->in4.sin_addr, 4);
	} else if (ep->sa.sa_family == AF_INET6) {
		u.port = ntohs(ep->in6.sin6_port);
		memcpy(u.addr, &ep->in6.sin6_addr, 16);
		u.scope_id = ep->in6.sin6_scope_id;
	}
	return nt_uapi_format_endpoint(buf, size, &u);
}
