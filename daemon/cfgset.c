/* The wg settings of config mode's FILE as one set request (uapi_apply_set, or set=1 over
 * the control socket from the monitor): setconf for a fresh device, syncconf against a
 * running one (cfgset.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "noisetun/config.h"
#include "noisetun/encoding.h"
#include "noisetun/uapi.h"
#include "noisetund.h"
#include "cfgset.h"
#include "ctlclient.h"
#include "watch.h"

/* The set request FILE stands for. cur NULL: a fresh device (setconf); else syncconf
 * against the running device: live peers FILE lacks are removed, and only what differs
 * from the device is set at device level (a private key set again would drop every
 * session). */
int config_build_set(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps,
		      const struct nt_uapi_device *cur, uint32_t fwmark)
{
	size_t n = 0;

	memset(set, 0, sizeof(*set));
	set->peers = calloc(cfg->peers_count + (cur ? cur->peers_count : 0) + 1, sizeof(*set->peers));
	if (!set->peers)
		return -ENOMEM;
	/* in the set, so that a reload reaches the worker that holds it */
	set->has_mss_clamp = true;
	set->mss_clamp = !cfg->no_mss_clamp;

	if (!cur) {
		set->has_private_key = cfg->has_private_key;
		memcpy(set->private_key, cfg->private_key, NT_KEY_LEN);
		set->has_listen_port = cfg->has_listen_port;
		set->listen_port = cfg->listen_port;
		set->has_fwmark = fwmark != 0;
	} else {
		uint8_t want[NT_KEY_LEN] = { 0 }, have[NT_KEY_LEN] = { 0 };

		if (cfg->has_private_key) {
			memcpy(want, cfg->private_key, NT_KEY_LEN);
			nt_key_clamp(want);
		}
		if (cur->has_private_key)
			memcpy(have, cur->private_key, NT_KEY_LEN);
		set->has_private_key = !nt_equal(want, have, NT_KEY_LEN);
		memcpy(set->private_key, cfg->has_private_key ? cfg->private_key : want, NT_KEY_LEN);
		explicit_bzero(want, sizeof(want));
		explicit_bzero(have, sizeof(have));
		/* listen_port=0 takes a new random port (as in the kernel): a file without
		 * ListenPort keeps the bound one by not sending it. */
		set->has_listen_port = cfg->has_listen_port;
		set->listen_port = cfg->listen_port;
		set->has_fwmark = fwmark != cur->fwmark;

		for (size_t j = 0; j < cur->peers_count; j++) {
			bool kept = false;
			for (size_t i = 0; i < cfg->peers_count && !kept; i++)
				kept = nt_equal(cur->peers[j].public_key, cfg->peers[i].public_key, NT_KEY_LEN);
			if (!kept) {
				memcpy(set->peers[n].public_key, cur->peers[j].public_key, NT_KEY_LEN);
				set->peers[n++].remove = true;
			}
		}
	}
	set->fwmark = fwmark;

	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		struct nt_uapi_peer *up = &set->peers[n++];

		memcpy(up->public_key, cp->public_key, NT_KEY_LEN);
		/* On reload, a key or keepalive the file no longer has is removed (zero). */
		up->has_preshared_key = cp->has_preshared_key || cur;
		if (cp->has_preshared_key)
			memcpy(up->preshared_key, cp->preshared_key, NT_KEY_LEN);
		if (cp->psk_file) {
			const char *why = "";

			/* Until the file holds a key: a random one, so that no handshake succeeds
			 * without it (watch.c says why once it watches the file). */
			up->has_preshared_key = true;
			if (psk_file_read(cp->psk_file, up->preshared_key, &why))
				randombytes_buf(up->preshared_key, NT_KEY_LEN);
		}
		/* noisetun's own keys: on reload always, so that removing the comment enables. */
		up->has_lifecycle_disabled = cp->disabled || cur;
		up->lifecycle_disabled = cp->disabled;
		up->has_valid_until = cp->valid_until || cur;
		up->valid_until = cp->valid_until;
		up->has_endpoint = eps[i].family != 0;
		up->endpoint = eps[i];
		up->has_persistent_keepalive = cp->has_persistent_keepalive || cur;
		up->persistent_keepalive = cp->has_persistent_keepalive ? cp->persistent_keepalive : 0;
		up->replace_allowed_ips = true;
		up->allowed_ips = cp->allowed_ips; /* borrowed: freed with cfg */
		up->allowed_ips_count = cp->allowed_ips_count;
		/* The file's "# friendly_name =" (or "# Name ="); on reload a name the file no
		 * longer has is removed (""). A name alone never touches a session. */
		up->has_name = cp->name || cur;
		if (cp->name)
			snprintf(up->name, sizeof(up->name), "%s", cp->name);
	}
	set->peers_count = n;
	return 0;
}

void config_free_set(struct nt_uapi_set *set)
{
	if (set->peers) {
		for (size_t i = 0; i < set->peers_count; i++)
			explicit_bzero(set->peers[i].preshared_key, NT_KEY_LEN);
		free(set->peers);
	}
	explicit_bzero(set, sizeof(*set));
}

uint32_t config_fwmark_for(const struct nt_config *cfg, uint32_t policy_table)
{
	return cfg->has_fwmark && cfg->fwmark ? cfg->fwmark : policy_table;
}
