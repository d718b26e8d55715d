/* Per-source token bucket for handshake messages under load (protocol.md "Macs and cookies":
 * 20 per second with a burst of 5, as the kernel). IPv4 sources are keyed by address, IPv6
 * by their /64. Fixed memory: a table of `capacity` entries allocated once at init; when it
 * is full new sources are refused. Entries idle for more than 1 s are reclaimed lazily on
 * lookup and by nt_ratelimiter_gc. Pure: the caller passes the time (monotonic ns). */
#ifndef NOISETUN_RATELIMITER_H
#define NOISETUN_RATELIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/messages.h"

#define NT_RATELIMITER_PACKETS_PER_SECOND 20
#define NT_RATELIMITER_BURST              5
/* Tokens are nanoseconds of credit: one packet costs 50 ms, the bucket holds 250 ms. */
#define NT_RATELIMITER_PACKET_COST (NT_NSEC_PER_SEC / NT_RATELIMITER_PACKETS_PER_SECOND)
#define NT_RATELIMITER_TOKEN_MAX   (NT_RATELIMITER_PACKET_COST * NT_RATELIMITER_BURST)
/* An entry idle longer than this is forgotten (by then its bucket is long full again). */
#define NT_RATELIMITER_IDLE_TIMEOUT NT_NSEC_PER_SEC
#define NT_RATELIMITER_DEFAULT_CAPACITY 8192
#define NT_RATELIMITER_KEY_BYTES   8 /* an IPv4 address, or an IPv6 /64 */

struct nt_ratelimiter_entry {
	uint64_t last_time;
	uint64_t tokens; /* ns of credit, at most NT_RATELIMITER_TOKEN_MAX */
	uint32_t next;   /* next entry in the bucket chain or on the free list */
	uint8_t family;  /* 4 or 6 */
	uint8_t addr[NT_RATELIMITER_KEY_BYTES];
};

struct nt_ratelimiter {
	struct nt_ratelimiter_entry *entries; /* capacity slots */
	uint32_t *buckets;                    /* chain heads, bucket_mask + 1 of them */
	uint32_t bucket_mask;
	uint32_t capacity;
	uint32_t count;
	uint32_t free_head;
	uint8_t hash_key[16]; /* SipHash key from the rng: sources cannot aim at one chain */
};

/* Allocate a table of `capacity` entries (1 .. 2^24) and draw its hash key from rng.
 * 0, -EINVAL (capacity out of range) or -ENOMEM. */
int nt_ratelimiter_init(struct nt_ratelimiter *rl, size_t capacity, const struct nt_rng *rng) NT_WARN_UNUSED;

/* Free the table and wipe the key. Safe on a zeroed struct and twice. */
void nt_ratelimiter_free(struct nt_ratelimiter *rl);

/* May a handshake message from this source be processed now? family is AF_INET (addr: 4
 * bytes) or AF_INET6 (16 bytes; only the first 8 count). Any other family: false. False also
 * for a new source while the table is full. */
bool nt_ratelimiter_allow(struct nt_ratelimiter *rl, int family, const uint8_t *addr, uint64_t now) NT_WARN_UNUSED;

/* Forget every entry idle for more than NT_RATELIMITER_IDLE_TIMEOUT; call about once a second. */
void nt_ratelimiter_gc(struct nt_ratelimiter *rl, uint64_t now);

/* Sources currently remembered (for tests and statistics). */
size_t nt_ratelimiter_count(const struct nt_ratelimiter *rl);

#endif
