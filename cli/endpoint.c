/* Endpoints: host names resolved as wg does (common/resolve.c), and the text wg shows for
 * them. */
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
#include "common/resolve.h"

/* wg says so on stderr before each pause. */
static void announce(const char *why, const char *host, double pause_sec)
{
	fprintf(stderr, "%s: `%s'. Trying again in %.2f seconds...\n", why, host, pause_sec);
}

int endpoint_resolve(struct nt_uapi_endpoint *out, const char *host, uint16_t port, char *why, size_t why_size)
{
	return nt_resolve_endpoint(out, host, port, nt_resolve_retries(), announce, why, why_size) ? -1 : 0;
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
