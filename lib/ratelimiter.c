/* Per-source token bucket for handshakes under load, in a fixed-size chained hash table.
 * The chains link entry indices; unused entries sit on a free list threaded through the
 * same `next` field, so nothing is allocated after init. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "noisetun/crypto.h"
#include "noisetun/ratelimiter.h"

#define NO_ENTRY UINT32_MAX
#define CAPACITY_MAX (1u << 24)

_Static_assert(crypto_shorthash_KEYBYTES == sizeof(((struct nt_ratelimiter *)0)->hash_key),
	       "SipHash key size");

int nt_ratelimiter_init(struct nt_ratelimiter *rl, size_t capacity, const struct nt_rng *rng)
{
	uint32_t nbuckets = 1;
	uint32_t i;

	memset(rl, 0, sizeof(*rl));
	if (capacity == 0 || capacity > CAPACITY_MAX)
		return -EINVAL;
	while (nbuckets < capacity)
		nbuckets <<= 1;

	rl->entries = calloc(capacity, sizeof(*rl->entries));
	rl->buckets = malloc((size_t)nbuckets * sizeof(*rl->buckets));
	if (!rl->entries || !rl->buckets) {
		nt_ratelimiter_free(rl);
		return -ENOMEM;
	}
	for (i = 0; i < nbuckets; i++)
		rl->buckets[i] = NO_ENTRY;
	for (i = 0; i < capacity; i++)
		rl->entries[i].next = i + 1 < capacity ? i + 1 : NO_ENTRY;
	rl->free_head = 0;
	rl->capacity = (uint32_t)capacity;
	rl->bucket_mask = nbuckets - 1;
	nt_rng_fill(rng, rl->hash_key, sizeof(rl->hash_key));
	return 0;
}

void nt_ratelimiter_free(struct nt_ratelimiter *rl)
{
	free(rl->entries);
	free(rl->buckets);
	nt_wipe(rl, sizeof(*rl));
}

size_t nt_ratelimiter_count(const struct nt_ratelimiter *rl)
{
	return rl->count;
}

static bool is_idle(const struct nt_ratelimiter_entry *entry, uint64_t now)
{
	return now > entry->last_time && now - entry->last_time > NT_RATELIMITER_IDLE_TIMEOUT;
}

static uint32_t bucket_of(const struct nt_ratelimiter *rl, uint8_t family,
			  const uint8_t addr[static NT_RATELIMITER_KEY_BYTES])
{
	uint8_t in[1 + NT_RATELIMITER_KEY_BYTES];
	uint8_t hash[crypto_shorthash_BYTES];

	in[0] = family;
	memcpy(in + 1, addr, NT_RATELIMITER_KEY_BYTES);
	crypto_shorthash(hash, in, sizeof(in), rl->hash_key);
	return (uint32_t)nt_load_le64(hash) & rl->bucket_mask;
}

/* Unlink the entry *link points at and put it on the free list; *link then names its successor. */
static void release(struct nt_ratelimiter *rl, uint32_t *link)
{
	uint32_t index = *link;
	struct nt_ratelimiter_entry *entry = &rl->entries[index];

	*link = entry->next;
	memset(entry, 0, sizeof(*entry));
	entry->next = rl->free_head;
	rl->free_head = index;
	rl->count--;
}

/* Refill by the time elapsed since the last packet, then spend one packet's cost if there is enough. */
static bool take_token(struct nt_ratelimiter_entry *entry, uint64_t now)
{
	if (now > entry->last_time) {
		uint64_t elapsed = now - entry->last_time;

		if (elapsed >= NT_RATELIMITER_TOKEN_MAX - entry->tokens)
			entry->tokens = NT_RATELIMITER_TOKEN_MAX;
		else
			entry->tokens += elapsed;
		entry->last_time = now;
	}
	if (entry->tokens < NT_RATELIMITER_PACKET_COST)
		return false;
	entry->tokens -= NT_RATELIMITER_PACKET_COST;
	return true;
}

bool nt_ratelimiter_allow(struct nt_ratelimiter *rl, int family, const uint8_t *addr, uint64_t now)
{
	uint8_t key[NT_RATELIMITER_KEY_BYTES] = { 0 };
	struct nt_ratelimiter_entry *entry;
	uint8_t tag;
	uint32_t bucket, index;
	uint32_t *link;

	if (!rl->entries || !addr)
		return false;
	if (family == AF_INET) {
		tag = 4;
		memcpy(key, addr, 4);
	} else if (family == AF_INET6) {
		tag = 6;
		memcpy(key, addr, 8); /* the /64 */
	} else {
		return false;
	}

	bucket = bucket_of(rl, tag, key);
	link = &rl->buckets[bucket];
	while (*link != NO_ENTRY) {
		entry = &rl->entries[*link];
		if (is_idle(entry, now)) {
			release(rl, link);
			continue;
		}
		if (entry->family == tag && !memcmp(entry->addr, key, sizeof(key)))
			return take_token(entry, now);
		link = &entry->next;
	}

	if (rl->free_head == NO_ENTRY)
		return false;
	index = rl->free_head;
	entry = &rl->entries[index];
	rl->free_head = entry->next;
	entry->family = tag;
	memcpy(entry->addr, key, sizeof(key));
	entry->last_time = now;
	entry->tokens = NT_RATELIMITER_TOKEN_MAX - NT_RATELIMITER_PACKET_COST; /* this packet spent one */
	entry->next = rl->buckets[bucket];
	rl->buckets[bucket] = index;
	rl->count++;
	return true;
}

void nt_ratelimiter_gc(struct nt_ratelimiter *rl, uint64_t now)
{
	uint32_t bucket;
	uint32_t *link;

	if (!rl->entries)
		return;
	for (bucket = 0; bucket <= rl->bucket_mask; bucket++) {
		link = &rl->buckets[bucket];
		while (*link != NO_ENTRY) {
			if (is_idle(&rl->entries[*link], now))
				release(rl, link);
			else
				link = &rl->entries[*link].next;
		}
	}
}
