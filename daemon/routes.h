/* Config mode's addresses, routes and policy rules (routes.c). */
#ifndef NOISETUN_ROUTES_H
#define NOISETUN_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct device;
struct nt_config;
struct nt_config_address;

/* addr/len as text, "ADDR/LEN"; buf. */
const char *fmt_prefix(char *buf, size_t size, int family, const uint8_t *addr, unsigned len);
/* Whether cfg routes a /0 of family through the tunnel. */
bool wants_default(const struct nt_config *cfg, int family);
/* The table (= fwmark) for a full tunnel with Table=auto, as wg-quick picks it; 0: none. */
uint32_t policy_table_for(const struct nt_config *cfg);
/* Remove the policy rules and nftables tables a killed instance left for table. */
void policy_cleanup(struct device *dev, uint32_t table);
/* Bring the addresses, and the routes and policy rules, in line with cfg. stop_on_error:
 * return at the first failure (up); else log each and go on (reload). 0, or -errno with
 * what saying which step failed. */
int addresses_sync(struct device *dev, const struct nt_config *cfg, bool stop_on_error, char *what, size_t what_size);
int routes_sync(struct device *dev, const char *ifname, const struct nt_config *cfg, uint32_t policy_table,
		bool stop_on_error, char *what, size_t what_size);
/* Remove the policy rules, the firewall and the routes we added. */
void routes_down(struct device *dev, const char *ifname);
/* The addresses we added; count of them in *count. */
const struct nt_config_address *routes_addresses(size_t *count);
/* Forget all of it (the worker, or after down). */
void routes_forget(void);

#endif
