/* setconf, addconf, syncconf IFACE FILE: a wg config file (no wg-quick keys) applied in
 * one set request.
 *   setconf:  as wg, the device's private key, port and fwmark are always sent (absent
 *             means none), and replace_peers: the file becomes the whole configuration.
 *   addconf:  only what the file names; peers are added or updated.
 *   syncconf: the file becomes the whole configuration without disturbing what did not
 *             change. Unlike wg it sends a device field only when its value differs (the
 *             daemon may reset sessions on a re-sent private key), and it sends every
 *             file peer's preshared key and keepalive, zero when absent, so that a key
 *             or keepalive deleted from the file goes away; peers the file no longer has
 *             are removed. A peer whose lines are unchanged keeps its sessions.
 * A peer's "# friendly_name = NAME" (or "# Name = NAME") is sent as its name; syncconf
 * also removes the running name of a file peer that has none. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum mode { SETCONF, ADDCONF, SYNCCONF };

int cmd_setconf(int argc, char *argv[])
{
	enum mode mode = !strcmp(argv[0], "addconf") ? ADDCONF : !strcmp(argv[0], "syncconf") ? SYNCCONF : SETCONF;
	/* as wg: setconf and syncconf send the device keys (absent means none) */
	int flags = mode == ADDCONF ? 0 : mode == SETCONF ? NT_CONFIG_SET_WG | NT_CONFIG_SET_REPLACE_PEERS : NT_CONFIG_SET_WG;
	struct nt_uapi_endpoint *eps = NULL;
	struct nt_uapi_device dev = { 0 };
	struct nt_uapi_set set;
	struct nt_config cfg;
	int ret = 1, err;

	if (argc != 3) {
		fprintf(stderr, "Usage: %s %s <interface> <configuration filename>\n", prog_name, argv[0]);
		return 1;
	}
	if (load_config(argv[2], NT_CONFIG_WG_ONLY, &cfg))
		return 1;
	if (config_resolve(&cfg, argv[2], &eps))
		goto out_cfg;
	if (mode == SYNCCONF && (err = ipc_get(argv[1], &dev))) {
		fprintf(stderr, "Unable to retrieve current interface configuration: %s\n", strerror(-err));
		goto out_cfg;
	}
	err = nt_config_to_set(&set, &cfg, eps, mode == SYNCCONF ? &dev : NULL, flags);
	nt_uapi_device_free(&dev);
	if (err) {
		fprintf(stderr, "%s: out of memory\n", prog_name);
		goto out_cfg;
	}
	err = ipc_set(argv[1], &set);
	nt_config_set_free(&set);
	if (err) {
		fprintf(stderr, "Unable to modify interface: %s\n", strerror(-err));
		goto out_cfg;
	}
	ret = 0;
out_cfg:
	free(eps);
	nt_config_free(&cfg);
	return ret;
}
