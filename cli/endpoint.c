/* Endpoints: host names resolved with getaddrinfo, and the text wg shows for them. */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* wg retries a name that does not resolve yet (the network may still be coming up), unless
 * the answer was a definite "no such name"; WG_ENDPOINT_RESOLUTION_RETRIES (a number or
 * "infinity") sets how often, default 15, with a delay growing from 1 s by 1.2x. */
static int resolution_retries(void)
{
	const char *env = getenv("WG_ENDPOINT_RESOLUTION_RETRIES");
	char *end;
	long v;

	if (!env)
		return 15;
	if (!strcmp(env, "infinity"))
		return -1;
	v = strtol(env, &end, 10);
	return *end || v < 0 || v > 1000000 ? 15 : (int)v;
}

static void sleep_seconds(double s)
{
	struct timespec ts = { .tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int from_addrinfo(struct nt_uapi_endpoint *out, const struct addrinfo *ai)
{
	memset(out, 0, sizeof(*out));
	if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ai->ai_addr;

		out->family = AF_INET;
		out->port = ntohs(in->sin_port);
		memcpy(out->addr, &in->sin_addr, 4);
		return 0;
	}
	if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ai->ai_addr;

		out->family = AF_INET6;
		out->port = ntohs(in6->sin6_port);
		memcpy(out->addr, &in6->sin6_addr, 16);
		out->scope_id = in6->sin6_scope_id;
		return 0;
	}
	return -1;
}

int endpoint_resolve(struct nt_uapi_endpoint *out, const char *host, uint16_t port, char *why, size_t why_size)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM, .ai_protocol = IPPROTO_UDP };
	struct addrinfo *res = NULL;
	char service[8];
	int retries = resolution_retries(), ret;
	double delay = 1.0;

	snprintf(service, sizeof(service), "%u", port);
	/* A numeric address never needs DNS. */
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	ret = getaddrinfo(host, service, &hints, &res);
	hints.ai_flags = AI_NUMERICSERV;
	while (ret) {
		ret = getaddrinfo(host, service, &hints, &res);
		if (!ret)
			break;
		if (ret == EAI_NONAME || ret == EAI_FAIL ||
#ifdef EAI_NODATA
		    ret == EAI_NODATA ||
#endif
		    (retries >= 0 && !retries--)) {
			snprintf(why, why_size, "%s", ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret));
			return -1;
		}
		fprintf(stderr, "%s: `%s'. Trying again in %.2f seconds...\n",
			ret == EAI_SYSTEM ? strerror(errno) : gai_strerror(ret), host, delay);
		sleep_seconds(delay);
		delay *= 1.2;
	}
	ret = from_addrinfo(out, res);
	freeaddrinfo(res);
	if (ret)
		snprintf(why, why_size, "neither an IPv4 nor an IPv6 address");
	return ret;
}

int endpoint_parse_resolve(struct nt_uapi_endpoint *out, const char *text, char *why, size_t why_size)
{
	/* One [Peer] with one Endpoint line: the config parser is the one grammar. */
	static const char fake_key[] = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
	struct nt_config cfg;
	struct nt_config_error err;
	char *conf;
	int ret;

	if (asprintf(&conf, "[Peer]\nPublicKey=%s\nEndpoint=%s\n", fake_key, text) < 0) {
		snprintf(why, why_size, "out of memory");
		return -1;
	}
	ret = strchr(text, '\n') ? -EINVAL : nt_config_parse(&cfg, conf, strlen(conf), NT_CONFIG_WG_ONLY, &err);
	free(conf);
	if (ret) {
		snprintf(why, why_size, "not host:port or [IPv6 address]:port");
		return -1;
	}
	ret = endpoint_resolve(out, cfg.peers[0].endpoint_host, cfg.peers[0].endpoint_port, why, why_size);
	nt_config_free(&cfg);
	return ret;
}

void endpoint_display(char *buf, size_t size, const struct nt_uapi_endpoint *ep)
{
	struct sockaddr_storage ss = { 0 };
	char host[NI_MAXHOST], service[NI_MAXSERV];
	socklen_t len = 0;
	int ret;

	if (ep->family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(ep->port);
		memcpy(&in->sin_addr, ep->addr, 4);
		len = sizeof(*in);
	} else if (ep->family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(ep->port);
		memcpy(&in6->sin6_addr, ep->addr, 16);
		/* the daemon shows a scope by name, as stock wg does */
		in6->sin6_scope_id = ep->scope_name[0] ? if_nametoindex(ep->scope_name) : ep->scope_id;
		len = sizeof(*in6);
	}
	ret = getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), service, sizeof(service),
			  NI_DGRAM | NI_NUMERICSERV | NI_NUMERICHOST);
	if (ret)
		snprintf(buf, size, "%s", gai_strerror(ret));
	else
		snprintf(buf, size, ep->family == AF_INET6 && strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, service);
}
