/* Endpoint names, resolved once as wg resolves them (resolve.h). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "noisetun/uapi.h"
#include "common/resolve.h"

#define DEFAULT_RETRIES 15
#define MAX_PAUSE_SEC 20.0

int nt_resolve_retries(void)
{
	const char *env = getenv("WG_ENDPOINT_RESOLUTION_RETRIES");
	char *end;
	long v;

	if (!env || !*env)
		return DEFAULT_RETRIES;
	if (!strcmp(env, "infinity"))
		return -1;
	errno = 0;
	v = strtol(env, &end, 10);
	return errno || *end || v < 0 || v > 1000000 ? DEFAULT_RETRIES : (int)v;
}

static void pause_for(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static const char *gai_why(int ret, int saved_errno)
{
	return ret == EAI_SYSTEM ? strerror(saved_errno) : gai_strerror(ret);
}

/* The first IPv4 or IPv6 answer. */
static int from_answers(struct nt_uapi_endpoint *out, const struct addrinfo *res, uint16_t port)
{
	for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		memset(out, 0, sizeof(*out));
		out->port = port;
		if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
			out->family = AF_INET;
			memcpy(out->addr, &((const struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
			return 0;
		}
		if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ai->ai_addr;

			out->family = AF_INET6;
			memcpy(out->addr, &in6->sin6_addr, 16);
			out->scope_id = in6->sin6_scope_id;
			return 0;
		}
	}
	memset(out, 0, sizeof(*out));
	return -EHOSTUNREACH;
}

int nt_resolve_endpoint(struct nt_uapi_endpoint *out, const char *host, uint16_t port, int retries,
			nt_resolve_announce_fn *announce, char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_protocol = IPPROTO_UDP };
	struct addrinfo *res = NULL;
	double pause = 1.0;
	char service[8];
	int ret, err;

	snprintf(service, sizeof(service), "%u", port);
	/* A numeric address never needs DNS, nor a retry. */
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(host, service, &hints, &res);
	hints.ai_flags = AI_NUMERICSERV;
	while (ret) {
		ret = getaddrinfo(host, service, &hints, &res);
		err = errno;
		if (!ret)
			break;
		if (ret == EAI_NONAME || ret == EAI_FAIL ||
#ifdef EAI_NODATA
		    ret == EAI_NODATA ||
#endif
		    (retries >= 0 && !retries--)) {
			snprintf(why, why_size, "%s", gai_why(ret, err));
			return -EHOSTUNREACH;
		}
		if (announce)
			announce(gai_why(ret, err), host, pause);
		pause_for(pause);
		pause = pause * 1.2 > MAX_PAUSE_SEC ? MAX_PAUSE_SEC : pause * 1.2;
	}
	err = from_answers(out, res, port);
	freeaddrinfo(res);
	if (err)
		snprintf(why, why_size, "neither an IPv4 nor an IPv6 address");
	return err;
}
