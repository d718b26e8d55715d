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

/* The set request FILE stands for: lib's nt_config_to_set (the CLI's too), then what only
 * config mode has. cur NULL: a fresh device (up); else syncconf against the running
 * device (reload), where a file without PrivateKey removes the key, as wg syncconf, but a
 * file without ListenPort keeps the bound port (listen_port=0 would take a new random
 * one, as in the kernel). */
int config_build_set(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps,
		     const struct nt_uapi_device *cur, uint32_t fwmark)
{
	size_t first;
	int err;

	if ((err = nt_config_to_set(set, cfg, eps, cur, cur ? NT_CONFIG_SET_ABSENT_KEY : 0)))
		return err;
	/* in the set, so that a reload reaches the worker that holds it */
	set->has_mss_clamp = true;
	set->mss_clamp = !cfg->no_mss_clamp;
	/* FwMark, or the full tunnel's table */
	set->fwmark = fwmark;
	set->has_fwmark = fwmark != (cur ? cur->fwmark : 0);

	first = set->peers_count - cfg->peers_count; /* after the removals */
	for (size_t i = 0; i < cfg->peers_count; i++) {
		const struct nt_config_peer *cp = &cfg->peers[i];
		struct nt_uapi_peer *up = &set->peers[first + i];

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
	}
	return 0;
}

uint32_t config_fwmark_for(const struct nt_config *cfg, uint32_t policy_table)
{
	return cfg->has_fwmark && cfg->fwmark ? cfg->fwmark : policy_table;
}
