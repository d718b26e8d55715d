/* DNS for config mode (dns.c). */
#ifndef NOISETUN_DNS_H
#define NOISETUN_DNS_H

#include <stdbool.h>
#include <stddef.h>

struct nt_config;

/* The DNS entries of cfg for ifname; full: the config routes a /0 (resolved's `~.`).
 * 0, or -errno with what says which step failed. No DNS entries: nothing, 0. */
int dns_up(const char *ifname, const struct nt_config *cfg, bool full, char *what, size_t what_size);
/* Undo what dns_up set, if anything. */
void dns_down(const char *ifname);
/* Whether a and b list the same DNS entries in the same order. */
bool dns_equal(const struct nt_config *a, const struct nt_config *b);

#endif
