/* Config files from disk: read whole, parse with lib/config.c, report "FILE:LINE: reason",
 * and turn the result into a set request. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common/file.h"
#include "noisetun/crypto.h"

int parse_config_text(const char *path, const char *text, size_t len, int flags, struct nt_config *cfg)
{
	struct nt_config_error err;

	if (!nt_config_parse(cfg, text, len, flags, &err))
		return 0;
	if (err.line)
		fprintf(stderr, "%s:%u: %s\n", path, err.line, err.message);
	else
		fprintf(stderr, "%s: %s\n", path, err.message);
	return -1;
}

int load_config(const char *path, int flags, struct nt_config *cfg)
{
	char *text;
	size_t len;
	int ret;

	ret = nt_file_read(path, 0, NT_FILE_CONFIG_MAX, &text, &len);
	if (ret) {
		fprintf(stderr, "%s: %s\n", path, strerror(-ret));
		return -1;
	}
	ret = parse_config_text(path, text, len, flags, cfg);
	nt_file_free(text, len);
	return ret;
}

int config_to_set(struct nt_uapi_set *set, const struct nt_config *cfg, const char *path)
{
	memset(set, 0, sizeof(*set));
	set->has_private_key = cfg->has_private_key;
	memcpy(set->private_key, cfg->private_key, 32);
	set->has_listen_port = cfg->has_listen_port;
	set->listen_port = cfg->listen_port;
	set->has_fwmark = cfg->has_fwmark;
	set->fwmark = cfg->fwmark;
	if (cfg->peers_count) {
		set->peers = calloc(cfg->peers_count, sizeof(*set->peers));
		if (!set->peers) {
			fprintf(stderr, "%s: out of memory\n", path);
			return -1;
		}
	}
	set->peers_count = cfg->peers_count;
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *from = &cfg->peers[i];
		struct nt_uapi_peer *to = &set->peers[i];
		char why[256];

		memcpy(to->public_key, from->public_key, 32);
		to->has_preshared_key = from->has_preshared_key;
		memcpy(to->preshared_key, from->preshared_key, 32);
		to->has_persistent_keepalive = from->has_persistent_keepalive;
		to->persistent_keepalive = from->persistent_keepalive;
		/* As wg: every [Peer] of a file replaces the allowed IPs it had. */
		to->replace_allowed_ips = true;
		to->allowed_ips = from->allowed_ips;
		to->allowed_ips_count = from->allowed_ips_count;
		/* "# friendly_name =" / "# Name =", valid (the parser kept no other). */
		to->has_name = from->name != NULL;
		if (from->name)
			snprintf(to->name, sizeof(to->name), "%s", from->name);
		if (from->has_endpoint) {
			if (endpoint_resolve(&to->endpoint, from->endpoint_host, from->endpoint_port, why, sizeof(why))) {
				fprintf(stderr, "%s:%u: Endpoint: cannot resolve \"%s\": %s\n", path, from->endpoint_line,
					from->endpoint_host, why);
				config_set_free(set);
				return -1;
			}
			to->has_endpoint = true;
		}
	}
	return 0;
}

void config_set_free(struct nt_uapi_set *set)
{
	/* The allowed IPs are cfg's: only the peer array is ours. */
	if (set->peers)
		nt_wipe(set->peers, set->peers_count * sizeof(*set->peers));
	free(set->peers);
	nt_wipe(set, sizeof(*set));
}
