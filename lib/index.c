/* The session-index table (include/noisetun/index.h for the sizing rules). A slot is empty
 * (index 0, no owner), live (an owner) or a tombstone (an index, no owner): index 0 is
 * never assigned, so the three cannot be confused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/index.h"

#define ASSIGN_DRAWS 64 /* at most half of 2^32 indices in use: 2^-64 odds for a sound rng */

static bool is_empty(const struct nt_index_slot *s)
{
	return !s->owner && !s->index;
}

/* Fibonacci hashing on the top bits: indices come from the rng, but a weak test rng or a
 * counter should not cluster either. */
static size_t home(uint32_t index, size_t size)
{
	unsigned bits = (unsigned)__builtin_ctzll((unsigned long long)size);

	return (size_t)(((uint64_t)index * 0x9e3779b97f4a7c15ULL) >> (64 - bits));
}

/* Put a live entry into a table without tombstones, and without that index. */
static void place(struct nt_index_slot *slots, size_t size, struct nt_index_slot entry)
{
	size_t s = home(entry.index, size);

	while (!is_empty(&slots[s]))
		s = (s + 1) & (size - 1);
	slots[s] = entry;
}

int nt_index_init(struct nt_index_table *t, size_t max_slots)
{
	memset(t, 0, sizeof(*t));
	if (max_slots < NT_INDEX_MIN_SLOTS || max_slots > NT_INDEX_MAX_SLOTS_LIMIT ||
	    (max_slots & (max_slots - 1)))
		return -EINVAL;
	t->max_slots = max_slots;
	return 0;
}

void nt_index_free(struct nt_index_table *t)
{
	free(t->slots);
	t->slots = NULL;
	t->size = t->live = t->tombstones = 0;
}

size_t nt_index_count(const struct nt_index_table *t)
{
	return t->live;
}

size_t nt_index_slots(const struct nt_index_table *t)
{
	return t->size;
}

size_t nt_index_bytes(const struct nt_index_table *t)
{
	return t->size * sizeof(*t->slots);
}

static int resize(struct nt_index_table *t, size_t size)
{
	struct nt_index_slot *slots = calloc(size, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (size_t i = 0; i < t->size; i++)
		if (t->slots[i].owner)
			place(slots, size, t->slots[i]);
	free(t->slots);
	t->slots = slots;
	t->size = size;
	t->tombstones = 0;
	return 0;
}

/* Drop the tombstones without allocating. Start right after a slot that was empty before
 * (no probe sequence runs across it) and take each live entry out and put it back: it
 * lands between its home and where it was, in slots already done, so every entry done is
 * found and the ones ahead are not disturbed. */
static void rebuild_in_place(struct nt_index_table *t)
{
	size_t mask = t->size - 1, start = 0;

	while (!is_empty(&t->slots[start])) /* there is one: at most half the slots are used */
		start++;
	for (size_t i = 0; i < t->size; i++)
		if (!t->slots[i].owner)
			t->slots[i].index = 0;
	for (size_t k = 1; k < t->size; k++) {
		size_t i = (start + k) & mask;
		struct nt_index_slot entry = t->slots[i];

		if (!entry.owner)
			continue;
		t->slots[i] = (struct nt_index_slot){ 0, NULL };
		place(t->slots, t->size, entry);
	}
	t->tombstones = 0;
}

/* Make room for one more entry while keeping at most half the slots used. */
static int make_room(struct nt_index_table *t)
{
	int err;

	if (!t->slots)
		return resize(t, NT_INDEX_MIN_SLOTS);
	if (t->live + t->tombstones + 1 <= t->size / 2)
		return 0;
	if (8 * (t->live + 1) <= 3 * t->size) {
		rebuild_in_place(t); /* tombstones fill at least 1/8 */
		return 0;
	}
	if (t->size * 2 > t->max_slots)
		err = -ENOSPC;
	else if (!(err = resize(t, t->size * 2)))
		return 0;
	if (t->tombstones)
		rebuild_in_place(t);
	return t->live + 1 <= t->size / 2 ? 0 : err;
}

static struct nt_index_slot *find(const struct nt_index_table *t, uint32_t index)
{
	if (!index || !t->slots)
		return NULL;
	for (size_t s = home(index, t->size);; s = (s + 1) & (t->size - 1)) {
		struct nt_index_slot *slot = &t->slots[s];

		if (is_empty(slot))
			return NULL;
		if (slot->owner && slot->index == index)
			return slot;
	}
}

int nt_index_assign(struct nt_index_table *t, void *owner, const struct nt_rng *rng, uint32_t *index)
{
	uint32_t candidate = 0;
	size_t s;
	int err, draws;

	if (!owner)
		return -EINVAL;
	if ((err = make_room(t)))
		return err;
	for (draws = 0; draws < ASSIGN_DRAWS; draws++) {
		nt_rng_fill(rng, &candidate, sizeof(candidate));
		if (candidate && !find(t, candidate))
			break;
	}
	if (draws == ASSIGN_DRAWS)
		return -EAGAIN;
	for (s = home(candidate, t->size); t->slots[s].owner; s = (s + 1) & (t->size - 1))
		;
	if (!is_empty(&t->slots[s]))
		t->tombstones--; /* reused */
	t->slots[s] = (struct nt_index_slot){ candidate, owner };
	t->live++;
	*index = candidate;
	return 0;
}

void *nt_index_lookup(const struct nt_index_table *t, uint32_t index)
{
	struct nt_index_slot *slot = find(t, index);

	return slot ? slot->owner : NULL;
}

bool nt_index_release(struct nt_index_table *t, uint32_t index, const void *owner)
{
	struct nt_index_slot *slot = find(t, index);

	if (!slot || slot->owner != owner)
		return false;
	slot->owner = NULL; /* the index stays: a tombstone */
	t->live--;
	t->tombstones++;
	/* Checked at every release, so this fires as live crosses 1/16 and leaves 1/8. */
	if (t->size > NT_INDEX_MIN_SLOTS && t->live < t->size / 16)
		(void)resize(t, t->size / 2); /* out of memory: the larger table still works */
	return true;
}
