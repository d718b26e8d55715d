/* Resolving an Endpoint's host name, as wg does, for both binaries (resolve.c): the CLI's
 * setconf/addconf/syncconf/set/up and config mode's FILE in the daemon. One policy:
 * WG_ENDPOINT_RESOLUTION_RETRIES. (The daemon's re-resolution of names in use, with its
 * threads and failover order, is another job: daemon/watch.c.) */
#ifndef NOISETUN_COMMON_RESOLVE_H
#define NOISETUN_COMMON_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

struct nt_uapi_endpoint;

/* WG_ENDPOINT_RESOLUTION_RETRIES: a decimal count, or "infinity" (-1: for ever); 15
 * without it or with anything else. */
int nt_resolve_retries(void);

/* Told before each pause: why the name did not resolve, and for how long we wait. */
typedef void nt_resolve_announce_fn(const char *why, const char *host, double pause_sec);

/* host:port with getaddrinfo (any family, UDP, no AI_ADDRCONFIG; a numeric address
 * without DNS), its first IPv4 or IPv6 answer into *out. A transient failure is retried
 * retries times (-1: for ever), pausing 1 s, then 1.2 times longer each time up to 20 s,
 * announce (may be NULL) told first; "no such name" is not retried. 0, or -EHOSTUNREACH
 * with why filled. */
int nt_resolve_endpoint(struct nt_uapi_endpoint *out, const char *host, uint16_t port, int retries,
			nt_resolve_announce_fn *announce, char *why, size_t why_size);

#endif
