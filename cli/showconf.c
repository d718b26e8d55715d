/* showconf IFACE: the running configuration in the config file format, as wg prints it,
 * with each named peer's "# friendly_name = NAME" as the first line of its [Peer]. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "noisetun/crypto.h"

char *showconf_text(const struct nt_uapi_device *dev)
{
	char *text = NULL, b64[45];
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	fprintf(f, "[Interface]\n");
	if (dev->listen_port)
		fprintf(f, "ListenPort = %u\n", dev->listen_port);
	if (dev->fwmark)
		fprintf(f, "FwMark = 0x%x\n", dev->fwmark);
	if (dev->has_private_key) {
		key_to_b64(b64, dev->private_key);
		fprintf(f, "PrivateKey = %s\n", b64);
	}
	fprintf(f, "\n");
	for (size_t i = 0; i < dev->peers_count; i++) {
		const struct nt_uapi_device_peer *peer = &dev->peers[i];

		key_to_b64(b64, peer->public_key);
		fprintf(f, "[Peer]\n");
		if (peer->name[0]) /* wg reads it as a comment */
			fprintf(f, "# friendly_name = %s\n", peer->name);
		fprintf(f, "PublicKey = %s\n", b64);
		if (peer->has_preshared_key) {
			key_to_b64(b64, peer->preshared_key);
			fprintf(f, "PresharedKey = %s\n", b64);
		}
		if (peer->allowed_ips_count)
			fprintf(f, "AllowedIPs = ");
		for (size_t j = 0; j < peer->allowed_ips_count; j++) {
			char addr[INET6_ADDRSTRLEN];

			if (!inet_ntop(peer->allowed_ips[j].family, peer->allowed_ips[j].addr, addr, sizeof(addr)))
				addr[0] = '\0';
			fprintf(f, "%s/%u%s", addr, peer->allowed_ips[j].cidr, j + 1 < peer->allowed_ips_count ? ", " : "\n");
		}
		if (peer->has_endpoint) {
			char ep[NI_MAXHOST + NI_MAXSERV + 4];

			endpoint_display(ep, sizeof(ep), &peer->endpoint);
			fprintf(f, "Endpoint = %s\n", ep);
		}
		if (peer->persistent_keepalive)
			fprintf(f, "PersistentKeepalive = %u\n", peer->persistent_keepalive);
		if (i + 1 < dev->peers_count)
			fprintf(f, "\n");
	}
	nt_wipe(b64, sizeof(b64));
	if (fclose(f)) {
		/* open_memstream may have left a partial buffer with a key in it. */
		if (text) {
			nt_wipe(text, len);
			free(text);
		}
		return NULL;
	}
	return text;
}

int cmd_showconf(int argc, char *argv[])
{
	struct nt_uapi_device dev;
	char *text;
	int err;

	if (argc != 2) {
		fprintf(stderr, "Usage: %s %s <interface>\n", prog_name, argv[0]);
		return 1;
	}
	err = ipc_get(argv[1], &dev);
	if (err) {
		fprintf(stderr, "Unable to access interface: %s\n", strerror(-err));
		return 1;
	}
	text = showconf_text(&dev);
	nt_uapi_device_free(&dev);
	if (!text) {
		perror("Unable to print configuration");
		return 1;
	}
	fputs(text, stdout);
	nt_wipe(text, strlen(text));
	free(text);
	return 0;
}
