/* showconf IFACE: the running configuration in the config file format, as wg prints it,
 * with each named peer's "# friendly_name = NAME" as the first line of its [Peer]
 * (lib's one writer, nt_uapi_format_config; endpoints as getnameinfo shows them). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "noisetun/crypto.h"

char *showconf_text(const struct nt_uapi_device *dev)
{
	size_t len = nt_uapi_format_config(dev, NT_UAPI_CONFIG_SHOWCONF, endpoint_display, NULL, 0);
	char *text = malloc(len + 1);

	if (!text)
		return NULL;
	nt_uapi_format_config(dev, NT_UAPI_CONFIG_SHOWCONF, endpoint_display, text, len + 1);
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
