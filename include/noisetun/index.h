/* The table of local session indices: a random non-zero 32-bit index per handshake or
 * keypair, mapped to an opaque owner (the daemon's peer). Open addressing with linear
 * probing and tombstones. Memory follows the live count, not the history:
 *   - at most half the slots are occupied (live + tombstones), so a probe ends quickly;
 *   - when that limit is reached and live entries hold more than 3/8 of the slots, the
 *     table doubles (they then fill 3/16 .. 1/4); otherwise tombstones hold at least 1/8
 *     and it is rebuilt in place at the same size, without allocating;
 *   - when a release leaves live entries under 1/16 of the slots, it halves (they then
 *     fill about 1/8), not under NT_INDEX_MIN_SLOTS;
 *   - never more than max_slots slots: at that size, at most max_slots / 2 live entries.
 * So at least 1/16 of the slots in operations pass between two resizes, and 1/8 between
 * two rebuilds: a peer rekeying at a boundary cannot make the table flap, the cost is O(1)
 * amortized, and the slots stay under 6 times the peak of live entries (or the minimum).
 * Pure: no I/O, no clock; randomness comes from the caller's rng. */
#ifndef NOISETUN_INDEX_H
#define NOISETUN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/messages.h"

#define NT_INDEX_MIN_SLOTS 64             /* 1 KiB */
#define NT_INDEX_MAX_SLOTS_LIMIT (1u << 30)
/* The daemon's cap: 4,194,304 slots (64 MiB), so 2,097,152 live sessions. A peer holds at
 * most four (a handshake and three keypairs). */
#define NT_INDEX_DEFAULT_MAX_SLOTS (1u << 22)

struct nt_index_slot {
	uint32_t index; /* 0 and no owner: empty; non-zero and no owner: a tombstone */
	void *owner;
};

struct nt_index_table {
	struct nt_index_slot *slots; /* NULL until the first assign */
	size_t size;                 /* a power of two, or 0 */
	size_t live, tombstones;
	size_t max_slots;
};

/* An empty table that will never hold more than max_slots slots (a power of two,
 * NT_INDEX_MIN_SLOTS .. NT_INDEX_MAX_SLOTS_LIMIT). Allocates nothing. 0 or -EINVAL. */
int nt_index_init(struct nt_index_table *t, size_t max_slots) NT_WARN_UNUSED;

/* Free the slots. Safe on a zeroed table and twice. */
void nt_index_free(struct nt_index_table *t);

/* A fresh random non-zero index, not in use, now mapping to owner (not NULL), in *index.
 * 0; -ENOSPC at the cap; -ENOMEM; -EAGAIN if the rng kept giving indices in use (a broken
 * rng: 64 draws). On error the table is unchanged but for a rebuild. */
int nt_index_assign(struct nt_index_table *t, void *owner, const struct nt_rng *rng,
		    uint32_t *index) NT_WARN_UNUSED;

/* The owner of index, or NULL (never for 0). */
void *nt_index_lookup(const struct nt_index_table *t, uint32_t index);

/* Forget index if owner holds it; true if it did. May shrink the table. */
bool nt_index_release(struct nt_index_table *t, uint32_t index, const void *owner);

/* For tests and statistics. */
size_t nt_index_count(const struct nt_index_table *t);       /* live entries */
size_t nt_index_slots(const struct nt_index_table *t);       /* allocated slots */
size_t nt_index_bytes(const struct nt_index_table *t);       /* memory of the slots */

#endif
