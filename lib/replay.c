/* Sliding replay window, RFC 6479: a ring of NT_REPLAY_BLOCKS 64-bit blocks; block b of
 * the counter space (counters 64b .. 64b + 63) lives in ring slot b % NT_REPLAY_BLOCKS.
 * Invariant: for the BLOCKS blocks ending at g's, each slot holds exactly the counters
 * accepted in its block. Moving g forward zeroes the slots of the blocks it enters,
 * at most the whole ring, so a jump costs O(blocks) and never O(counters). */
#include <string.h>

#include "noisetun/replay.h"

static inline size_t slot_of_block(uint64_t block)
{
	return (size_t)(block % NT_REPLAY_BLOCKS);
}

static inline size_t slot_of(uint64_t counter)
{
	return slot_of_block(counter / 64);
}

static inline uint64_t bit_of(uint64_t counter)
{
	return 1ULL << (counter % 64);
}

void nt_replay_init(struct nt_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool nt_replay_check(const struct nt_replay *r, uint64_t counter)
{
	if (counter >= NT_REJECT_AFTER_MESSAGES)
		return false;
	if (!r->any || counter > r->greatest)
		return true;
	/* g - c < BITS - 64 keeps c's block among the BLOCKS - 1 before g's, so its slot
	 * has not been reused for a newer block. */
	if (r->greatest - counter >= NT_REPLAY_WINDOW)
		return false;
	return !(r->bitmap[slot_of(counter)] & bit_of(counter));
}

bool nt_replay_update(struct nt_replay *r, uint64_t counter)
{
	if (!nt_replay_check(r, counter))
		return false;

	if (!r->any) {
		memset(r->bitmap, 0, sizeof(r->bitmap));
		r->any = true;
		r->greatest = counter;
	} else if (counter > r->greatest) {
		uint64_t from = r->greatest / 64, to = counter / 64;

		if (to - from >= NT_REPLAY_BLOCKS) {
			memset(r->bitmap, 0, sizeof(r->bitmap));
		} else {
			for (uint64_t b = from + 1; b <= to; b++)
				r->bitmap[slot_of_block(b)] = 0;
		}
		r->greatest = counter;
	}
	r->bitmap[slot_of(counter)] |= bit_of(counter);
	return true;
}
