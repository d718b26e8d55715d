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
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"

enum mode { SETCONF, ADDCONF, SYNCCONF };

static bool file_has_peer(const struct nt_config *cfg, const uint8_t key[static 32])
{
	for (size_t i = 0; i < cfg->peers_count; i++)
		if (!memcmp(cfg->peers[i].public_key, key, 32))
			return true;
	return false;
}

static bool running_name(const struct nt_uapi_device *dev, const uint8_t key[static 32])
{
	for (size_t i = 0; i < dev->peers_count; i++)
		if (!memcmp(dev->peers[i].public_key, key, 32))
			return dev->peers[i].name[0] != '\0';
	return false;
}

/* Turn set into a sync against the running device: removals appended, device fields only
 * when changed. The appended peers are plain entries of set->peers (no allowed IPs). */
static int sync_with(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_device *dev)
{
	size_t removals = 0, n;
	struct nt_uapi_peer *bigger;
	uint8_t clamped[32];

	/* The daemon keeps (and reports) its private key clamped. */
	memcpy(clamped, set->private_key, 32);
	nt_key_clamp(clamped);
	if (set->has_private_key && dev->has_private_key == !nt_is_zero(set->private_key, 32) &&
	    (!dev->has_private_key || nt_equal(clamped, dev->private_key, 32)))
		set->has_private_key = false;
	nt_wipe(clamped, sizeof(clamped));
	if (set->has_listen_port && set->listen_port == dev->listen_port)
		set->has_listen_port = false;
	if (set->has_fwmark && set->fwmark == dev->fwmark)
		set->has_fwmark = false;
	for (size_t i = 0; i < set->peers_count; i++) {
		set->peers[i].has_preshared_key = true; /* zeros (absent) remove the key */
		set->peers[i].has_persistent_keepalive = true;
		/* A running name the file does not have is removed ("" sent); a file without
		 * names against a device without names sends none, as before. */
		if (!set->peers[i].has_name)
			set->peers[i].has_name = running_name(dev, set->peers[i].public_key);
	}
	for (size_t i = 0; i < dev->peers_count; i++)
		if (!file_has_peer(cfg, dev->peers[i].public_key))
			removals++;
	if (!removals)
		return 0;
	n = set->peers_count;
	bigger = realloc(set->peers, (n + removals) * sizeof(*bigger));
	if (!bigger)
		return -ENOMEM;
	set->peers = bigger;
	for (size_t i = 0; i < dev->peers_count; i++) {
		if (file_has_peer(cfg, dev->peers[i].public_key))
			continue;
		memset(&set->peers[n], 0, sizeof(*bigger));
		memcpy(set->peers[n].public_key, dev->peers[i].public_key, 32);
		set->peers[n++].remove = true;
	}
	set->peers_count = n;
	return 0;
}

int cmd_setconf(int argc, char *argv[])
{
	enum mode mode = !strcmp(argv[0], "addconf") ? ADDCONF : !strcmp(argv[0], "syncconf") ? SYNCCONF : SETCONF;
	struct nt_config cfg;
	struct nt_uapi_set set;
	struct nt_uapi_device dev;
	int ret = 1, err;

	if (argc != 3) {
		fprintf(stderr, "Usage: %s %s <interface> <configuration filename>\n", prog_name, argv[0]);
		return 1;
	}
	if (load_config(argv[2], NT_CONFIG_WG_ONLY, &cfg))
		return 1;
	if (config_to_set(&set, &cfg, argv[2]))
		goto out_cfg;
	if (mode != ADDCONF) {
		set.has_private_key = true; /* zeros when absent: no key */
		set.has_listen_port = true;
		set.has_fwmark = true;
	}
	if (mode == SETCONF)
		set.replace_peers = true;
	if (mode == SYNCCONF) {
		err = ipc_get(argv[1], &dev);
		if (err) {
			fprintf(stderr, "Unable to retrieve current interface configuration: %s\n", strerror(-err));
			goto out_set;
		}
		err = sync_with(&set, &cfg, &dev);
		nt_uapi_device_free(&dev);
		if (err) {
			fprintf(stderr, "%s: out of memory\n", prog_name);
			goto out_set;
		}
	}
	err = ipc_set(argv[1], &set);
	if (err) {
		fprintf(stderr, "Unable to modify interface: %s\n", strerror(-err));
		goto out_set;
	}
	ret = 0;
out_set:
	config_set_free(&set);
out_cfg:
	nt_config_free(&cfg);
	return ret;
}
