/* Loading config mode's FILE (cfgload.c). */
#ifndef NOISETUN_CFGLOAD_H
#define NOISETUN_CFGLOAD_H

#include <stddef.h>

struct nt_config;
struct nt_uapi_endpoint;

/* Parse path into cfg and resolve its endpoints into *eps (malloc'd, one per peer; family
 * 0: none), retrying a transient failure retries times. 0, or -errno with msg saying
 * `FILE:LINE: message` (-EINVAL, -EACCES, -ENOENT, -EISDIR, -EFBIG: the file itself;
 * -EHOSTUNREACH: an Endpoint did not resolve). retries: nt_resolve_endpoint's (-1: for
 * ever; nt_resolve_retries() reads WG_ENDPOINT_RESOLUTION_RETRIES). */
int config_load(const char *path, struct nt_config *cfg, struct nt_uapi_endpoint **eps, int retries, char *msg,
		size_t size);

#endif
