/* config mode's FILE as a set request (cfgset.c). */
#ifndef NOISETUN_CFGSET_H
#define NOISETUN_CFGSET_H

#include <stdint.h>

struct nt_uapi_device;
struct nt_config;
struct nt_uapi_endpoint;
struct nt_uapi_set;

/* The set request cfg stands for, eps its resolved endpoints. cur NULL: a fresh device
 * (setconf); else syncconf against the running device. 0 or -errno; free with
 * nt_config_set_free (lib), which wipes the keys. */
int config_build_set(struct nt_uapi_set *set, const struct nt_config *cfg, const struct nt_uapi_endpoint *eps,
		     const struct nt_uapi_device *cur, uint32_t fwmark);
/* The fwmark: FwMark when set, else the full tunnel's table (0: none). */
uint32_t config_fwmark_for(const struct nt_config *cfg, uint32_t policy_table);

#endif
