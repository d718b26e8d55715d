/* show --json: the state for monitoring, with stable field names (listed in `noisetun
 * --help`). Never a private or preshared key. One interface: an object; all: an array. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_device(const struct nt_uapi_device *dev)
{
	char b64[45];

	printf("{\"interface\": ");
	json_string(dev->name);
	printf(", \"public_key\": ");
	if (dev->has_public_key) {
		key_to_b64(b64, dev->public_key);
		json_string(b64);
	} else {
		printf("null");
	}
	printf(", \"listen_port\": %u, \"fwmark\": %u, \"peers\": [", dev->listen_port, dev->fwmark);
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *peer = &dev->peers[i];
		char ep[NI_MAXHOST + NI_MAXSERV + 4], addr[INET6_ADDRSTRLEN + 8];

		key_to_b64(b64, peer->public_key);
		printf("%s\n  {\"public_key\": ", i ? "," : "");
		json_string(b64);
		printf(", \"name\": ");
		if (peer->name[0])
			json_string(peer->name);
		else
			printf("null");
		printf(", \"endpoint\": ");
		if (peer->has_endpoint) {
			endpoint_display(ep, sizeof(ep), &peer->endpoint);
			json_string(ep);
		} else {
			printf("null");
		}
		printf(", \"allowed_ips\": [");
		for (size_t j = 0; j < peer->allowed_ips_count; j++) {
			const struct nt_uapi_allowed_ip *ip = &peer->allowed_ips[j];

			if (!inet_ntop(ip->family, ip->addr, addr, sizeof(addr)))
				addr[0] = '\0';
			snprintf(addr + strlen(addr), sizeof(addr) - strlen(addr), "/%u", ip->cidr);
			printf("%s", j ? ", " : "");
			json_string(addr);
		}
		printf("], \"latest_handshake\": %" PRId64 ", \"rx_bytes\": %" PRIu64 ", \"tx_bytes\": %" PRIu64
		       ", \"persistent_keepalive\": %u}",
		       peer->last_handshake_sec, peer->rx_bytes, peer->tx_bytes, peer->persistent_keepalive);
	}
	printf("%s]}", dev->peers_count ? "\n" : "");
}

int show_json(const char *which)
{
	struct nt_uapi_device dev;
	char **names;
	size_t count;
	bool any_ok = false, first = true;
	int err;

	if (which && strcmp(which, "all")) {
		err = ipc_get(which, &dev);
		if (err) {
			fprintf(stderr, "Unable to access interface: %s\n", strerror(-err));
			return 1;
		}
		json_device(&dev);
		printf("\n");
		nt_uapi_device_free(&dev);
		return 0;
	}
	err = ipc_list(&names, &count);
	if (err) {
		fprintf(stderr, "Unable to list interfaces: %s\n", strerror(-err));
		return 1;
	}
	printf("[");
	for (size_t i = 0; i < count; i++) {
		err = ipc_get(names[i], &dev);
		if (err) {
			fprintf(stderr, "Unable to access interface %s: %s\n", names[i], strerror(-err));
			continue;
		}
		printf("%s", first ? "" : ",\n");
		json_device(&dev);
		nt_uapi_device_free(&dev);
		first = false;
		any_ok = true;
	}
	printf("]\n");
	ipc_names_free(names);
	return count && !any_ok ? 1 : 0;
}
