/* Allowed IPs (cryptokey routing, protocol.md): a longest-prefix-match table from IPv4 and
 * IPv6 prefixes to peers. A path-compressed binary trie per family; pure (no I/O, no clock).
 * The caller embeds an nt_allowedips_owner in each peer and gets it back from a lookup
 * (container_of). Not thread-safe: the caller serialises writers against readers. */
#ifndef NOISETUN_ALLOWEDIPS_H
#define NOISETUN_ALLOWEDIPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h> /* AF_INET, AF_INET6 */

struct nt_allowedips_node;

/* Embed in a peer and zero-initialise. The list links the peer's prefixes, so every
 * per-peer operation costs O(that peer's prefixes); touch the fields read-only. */
struct nt_allowedips_owner {
	struct nt_allowedips_node *first, *last;
	size_t count; /* prefixes this owner holds */
};

struct nt_allowedips; /* opaque */

/* A new, empty table; NULL on ENOMEM. */
struct nt_allowedips *nt_allowedips_new(void);

/* Free the table and every node (NULL is a no-op). Owners' lists then dangle: the
 * caller must drop its owners or zero them before reusing them with another table. */
void nt_allowedips_free(struct nt_allowedips *t);

/* Insert addr/cidr (addr is 4 or 16 bytes by family) for owner. Non-canonical input
 * (10.0.0.1/24) is stored masked. A prefix already owned by another owner moves to this
 * one (to the end of its list). 0, -EINVAL (bad family/cidr/NULL), -ENOMEM (table unchanged). */
int nt_allowedips_insert(struct nt_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			 struct nt_allowedips_owner *owner);

/* Remove exactly this prefix (addr masked to cidr first) if owner holds it: 0, or -ENOENT
 * (also when another owner holds it), -EINVAL for a bad family/cidr. Frees useless nodes. */
int nt_allowedips_remove(struct nt_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			 struct nt_allowedips_owner *owner);

/* Remove every prefix owner holds, in O(its prefixes); owner is left zeroed and reusable. */
void nt_allowedips_remove_owner(struct nt_allowedips *t, struct nt_allowedips_owner *owner);

/* Longest-prefix match of addr (4 or 16 bytes by family); NULL when nothing matches or the
 * family is unknown. No allocation; safe to call on the packet path. */
struct nt_allowedips_owner *nt_allowedips_lookup(const struct nt_allowedips *t, int family,
						 const uint8_t *addr);

/* Call fn for each of owner's prefixes (canonical, masked) in insertion order: a prefix
 * re-inserted for the same owner keeps its place; one moved from another owner goes last.
 * Stops and returns fn's value if non-zero; else 0. fn must not modify the table. */
int nt_allowedips_foreach(const struct nt_allowedips_owner *owner,
			  int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t cidr), void *ctx);

/* Prefixes held, over both families. */
size_t nt_allowedips_count(const struct nt_allowedips *t);

/* Bytes requested from malloc for trie nodes (excludes the table struct and malloc's own
 * overhead); 0 when the table is empty. */
size_t nt_allowedips_memory(const struct nt_allowedips *t);

#endif
