/* Receive-side replay protection for transport data: a sliding window over the 64-bit
 * counters of one keypair (RFC 6479 ring of 64-bit blocks; protocol.md "Transport").
 *
 * Acceptance rule, exact: with g the greatest counter accepted so far, counter c is
 * accepted iff
 *     c < NT_REJECT_AFTER_MESSAGES, and c was never accepted before, and
 *     (nothing was accepted yet, or c > g, or g - c < NT_REPLAY_WINDOW).
 * Everything else is rejected, even when the ring could still tell. */
#ifndef NOISETUN_REPLAY_H
#define NOISETUN_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "noisetun/messages.h"

#define NT_REPLAY_BITS   8192
#define NT_REPLAY_BLOCKS (NT_REPLAY_BITS / 64)
/* One block of the ring is the one being filled, so only BITS - 64 behind g are always kept. */
#define NT_REPLAY_WINDOW (NT_REPLAY_BITS - 64)

_Static_assert((NT_REPLAY_BLOCKS & (NT_REPLAY_BLOCKS - 1)) == 0, "ring size is a power of two");

/* Embed by value; all-zero (or nt_replay_init) is an empty window. */
struct nt_replay {
	uint64_t greatest;                  /* meaningful only when any */
	bool any;                           /* false until the first counter is accepted */
	uint64_t bitmap[NT_REPLAY_BLOCKS];  /* counter c is bit c % 64 of block (c / 64) % BLOCKS */
};

/* Empty the window: the next counter (0 included) is accepted if below
 * NT_REJECT_AFTER_MESSAGES. */
void nt_replay_init(struct nt_replay *r);

/* Whether counter would be accepted now, by the rule above; changes nothing.
 * Call before decrypting, to skip the AEAD for replays and stale counters. */
bool nt_replay_check(const struct nt_replay *r, uint64_t counter);

/* Mark counter seen once its tag verified. false, and no change, when the rule rejects it.
 * Cost is O(blocks skipped), bounded by NT_REPLAY_BLOCKS. */
bool nt_replay_update(struct nt_replay *r, uint64_t counter);

#endif
