/* Allowed IPs: one path-compressed binary trie per family.
 *
 * An address is held as two host-order 64-bit words, left-aligned (IPv4 in the top 32 bits
 * of word 0, word 1 zero), so both families share one code path and bit comparisons are
 * word XORs. A node is a prefix (key, cidr) whose key has every bit past cidr cleared; its
 * children extend it and are chosen by the bit at position cidr. Invariants:
 *   - along any path, cidr strictly increases and each node's key extends its parent's;
 *   - a node without an owner (a glue node) has exactly two children.
 * Together these make the tree unique for a given set of prefixes, so removal (which
 * drops a childless node and splices out a node left with one child) returns memory
 * to exactly what the remaining prefixes need: churn cannot grow the trie.
 * Depth is bounded by the address length (33 or 129 nodes), never by the peer count.
 */
#include "noisetun/allowedips.h"

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* 56 bytes for IPv4, 64 for IPv6 (LP64); the owner links cost 24 of them but make every
 * per-peer operation O(that peer's prefixes). */
struct nt_allowedips_node {
	struct nt_allowedips_node *child[2];
	struct nt_allowedips_owner *owner;      /* NULL: glue node */
	struct nt_allowedips_node *prev, *next; /* owner's prefixes, insertion order */
	uint8_t cidr;
	uint8_t v6;
	/* 1 word for IPv4, 2 for IPv6: an IPv4 node never reads key[1] (cidr <= 32). */
	uint64_t key[];
};

_Static_assert(offsetof(struct nt_allowedips_node, key) % sizeof(uint64_t) == 0, "key alignment");

struct nt_allowedips {
	struct nt_allowedips_node *root[2]; /* [0] IPv4, [1] IPv6 */
	size_t count;
	size_t memory;
};

static size_t node_size(bool v6)
{
	return offsetof(struct nt_allowedips_node, key) + (v6 ? 2 : 1) * sizeof(uint64_t);
}

/* 0 for AF_INET, 1 for AF_INET6, -1 otherwise. */
static int family_index(int family)
{
	return family == AF_INET ? 0 : family == AF_INET6 ? 1 : -1;
}

static unsigned max_bits(bool v6)
{
	return v6 ? 128 : 32;
}

/* The top `bits` bits set, bits in [0, 64]; branch-free. */
static inline uint64_t word_mask(unsigned bits)
{
	return -(uint64_t)(bits != 0) & (~UINT64_C(0) << ((64 - bits) & 63));
}

/* Bit i (0 = most significant) of a left-aligned address, i in [0, 127]. */
static inline unsigned bit_at(const uint64_t *a, unsigned i)
{
	return (unsigned)(a[i >> 6] >> (63 - (i & 63))) & 1;
}

static inline void load_addr(uint64_t a[2], bool v6, const uint8_t *addr)
{
	if (v6) {
		uint64_t w[2];
		memcpy(w, addr, 16);
		a[0] = be64toh(w[0]);
		a[1] = be64toh(w[1]);
	} else {
		uint32_t w;
		memcpy(&w, addr, 4);
		a[0] = (uint64_t)be32toh(w) << 32;
		a[1] = 0;
	}
}

static void store_addr(uint8_t *addr, bool v6, const uint64_t *key)
{
	if (v6) {
		uint64_t w[2] = { htobe64(key[0]), htobe64(key[1]) };
		memcpy(addr, w, 16);
	} else {
		uint32_t w = htobe32((uint32_t)(key[0] >> 32));
		memcpy(addr, &w, 4);
	}
}

static void mask_addr(uint64_t a[2], unsigned cidr)
{
	a[0] &= word_mask(cidr < 64 ? cidr : 64);
	a[1] &= word_mask(cidr > 64 ? cidr - 64 : 0);
}

/* Whether a falls inside node n's prefix. */
static inline bool prefix_match(const struct nt_allowedips_node *n, const uint64_t a[2])
{
	unsigned c = n->cidr;

	if (c <= 64)
		return ((n->key[0] ^ a[0]) & word_mask(c)) == 0;
	return n->key[0] == a[0] && ((n->key[1] ^ a[1]) & word_mask(c - 64)) == 0;
}

/* Leading bits key and a share, capped at limit (limit <= the key's family width). */
static unsigned common_bits(const uint64_t *key, const uint64_t a[2], unsigned limit)
{
	uint64_t d = key[0] ^ a[0];
	unsigned n;

	if (d)
		n = (unsigned)__builtin_clzll(d);
	else if (limit <= 64)
		n = 64;
	else if ((d = key[1] ^ a[1]))
		n = 64 + (unsigned)__builtin_clzll(d);
	else
		n = 128;
	return n < limit ? n : limit;
}

static struct nt_allowedips_node *node_new(struct nt_allowedips *t, bool v6, const uint64_t a[2],
					   unsigned cidr)
{
	size_t size = node_size(v6);
	struct nt_allowedips_node *n = malloc(size);
	uint64_t key[2] = { a[0], a[1] };

	if (!n)
		return NULL;
	mask_addr(key, cidr);
	n->child[0] = n->child[1] = NULL;
	n->owner = NULL;
	n->prev = n->next = NULL;
	n->cidr = (uint8_t)cidr;
	n->v6 = v6;
	n->key[0] = key[0];
	if (v6)
		n->key[1] = key[1];
	t->memory += size;
	return n;
}

static void node_free(struct nt_allowedips *t, struct nt_allowedips_node *n)
{
	t->memory -= node_size(n->v6);
	free(n);
}

static void owner_append(struct nt_allowedips_owner *o, struct nt_allowedips_node *n)
{
	n->owner = o;
	n->next = NULL;
	n->prev = o->last;
	if (o->last)
		o->last->next = n;
	else
		o->first = n;
	o->last = n;
	o->count++;
}

static void owner_unlink(struct nt_allowedips_owner *o, struct nt_allowedips_node *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		o->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		o->last = n->prev;
	o->count--;
	n->owner = NULL;
	n->prev = n->next = NULL;
}

struct nt_allowedips *nt_allowedips_new(void)
{
	return calloc(1, sizeof(struct nt_allowedips));
}

static void free_subtree(struct nt_allowedips_node *n)
{
	/* Recursion depth is bounded by the trie depth (<= 129). */
	if (!n)
		return;
	free_subtree(n->child[0]);
	free_subtree(n->child[1]);
	free(n);
}

void nt_allowedips_free(struct nt_allowedips *t)
{
	if (!t)
		return;
	free_subtree(t->root[0]);
	free_subtree(t->root[1]);
	free(t);
}

int nt_allowedips_insert(struct nt_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			 struct nt_allowedips_owner *owner)
{
	int fi = family_index(family);
	struct nt_allowedips_node **slot, *n, *leaf, *glue;
	unsigned common = 0;
	uint64_t a[2];

	if (fi < 0 || !t || !addr || !owner || cidr > max_bits(fi))
		return -EINVAL;
	load_addr(a, fi, addr);
	mask_addr(a, cidr);

	slot = &t->root[fi];
	while ((n = *slot)) {
		common = common_bits(n->key, a, n->cidr < cidr ? n->cidr : cidr);
		if (common < n->cidr)
			break;
		if (n->cidr == cidr) {
			/* Exact prefix: same owner keeps its place, a move goes last. */
			if (n->owner == owner)
				return 0;
			if (n->owner)
				owner_unlink(n->owner, n);
			else
				t->count++;
			owner_append(owner, n);
			return 0;
		}
		slot = &n->child[bit_at(a, n->cidr)];
	}

	leaf = node_new(t, fi, a, cidr);
	if (!leaf)
		return -ENOMEM;
	if (!n) {
		*slot = leaf;
	} else if (common == cidr) {
		/* The new prefix contains n: it takes n's place, n hangs below it. */
		leaf->child[bit_at(n->key, cidr)] = n;
		*slot = leaf;
	} else {
		/* They diverge at bit `common`: a glue node holds both. */
		glue = node_new(t, fi, a, common);
		if (!glue) {
			node_free(t, leaf);
			return -ENOMEM;
		}
		glue->child[bit_at(a, common)] = leaf;
		glue->child[bit_at(n->key, common)] = n;
		*slot = glue;
	}
	t->count++;
	owner_append(owner, leaf);
	return 0;
}

/* Drop n's owner and free whatever nodes that makes useless. slot points at n, pslot at
 * its parent (NULL for the root). */
static void remove_node(struct nt_allowedips *t, struct nt_allowedips_node **pslot,
			struct nt_allowedips_node **slot, struct nt_allowedips_node *n)
{
	struct nt_allowedips_node *only, *parent;

	owner_unlink(n->owner, n);
	t->count--;
	if (n->child[0] && n->child[1])
		return; /* becomes a glue node */
	only = n->child[0] ? n->child[0] : n->child[1];
	*slot = only;
	node_free(t, n);
	if (only || !pslot)
		return;
	/* n was a leaf: a glue parent now has one child and is spliced out. */
	parent = *pslot;
	if (!parent->owner) {
		*pslot = parent->child[0] ? parent->child[0] : parent->child[1];
		node_free(t, parent);
	}
}

int nt_allowedips_remove(struct nt_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
			 struct nt_allowedips_owner *owner)
{
	int fi = family_index(family);
	struct nt_allowedips_node **pslot = NULL, **slot, *n;
	uint64_t a[2];

	if (fi < 0 || !t || !addr || !owner || cidr > max_bits(fi))
		return -EINVAL;
	load_addr(a, fi, addr);
	mask_addr(a, cidr);

	slot = &t->root[fi];
	while ((n = *slot) && n->cidr < cidr) {
		if (common_bits(n->key, a, n->cidr) < n->cidr)
			return -ENOENT;
		pslot = slot;
		slot = &n->child[bit_at(a, n->cidr)];
	}
	if (!n || n->cidr != cidr || n->owner != owner || common_bits(n->key, a, cidr) < cidr)
		return -ENOENT;
	remove_node(t, pslot, slot, n);
	return 0;
}

void nt_allowedips_remove_owner(struct nt_allowedips *t, struct nt_allowedips_owner *owner)
{
	struct nt_allowedips_node **pslot, **slot, *n;

	if (!t || !owner)
		return;
	while ((n = owner->first)) {
		/* Walk down by n's own bits: O(depth), independent of the table's size. */
		pslot = NULL;
		slot = &t->root[n->v6];
		while (*slot != n) {
			pslot = slot;
			slot = &(*slot)->child[bit_at(n->key, (*slot)->cidr)];
		}
		remove_node(t, pslot, slot, n);
	}
}

struct nt_allowedips_owner *nt_allowedips_lookup(const struct nt_allowedips *t, int family,
						 const uint8_t *addr)
{
	int fi = family_index(family);
	const struct nt_allowedips_node *n;
	struct nt_allowedips_owner *best = NULL;
	uint64_t a[2];

	if (fi < 0)
		return NULL;
	load_addr(a, fi, addr);
	/* Descend by the address's bits, comparing only at owned nodes: a glue node that does
	 * not match is caught at the next owned node below it (every leaf is owned), and once
	 * an owned node does not match nothing below can (children extend its prefix). The
	 * child index reads bit cidr from a register: measurably faster than indexing a[]; at
	 * cidr 128 it reads bit 0, harmless since a full-length node has no children. */
	for (n = t->root[fi]; n;) {
		unsigned c = n->cidr;

		if (n->owner) {
			if (!prefix_match(n, a))
				break;
			best = n->owner;
		}
		n = n->child[((c & 64 ? a[1] : a[0]) >> (~c & 63)) & 1];
	}
	return best;
}

int nt_allowedips_foreach(const struct nt_allowedips_owner *owner,
			  int (*fn)(void *ctx, int family, const uint8_t *addr, uint8_t cidr), void *ctx)
{
	const struct nt_allowedips_node *n, *next;
	uint8_t addr[16];
	int ret;

	for (n = owner->first; n; n = next) {
		next = n->next;
		store_addr(addr, n->v6, n->key);
		ret = fn(ctx, n->v6 ? AF_INET6 : AF_INET, addr, n->cidr);
		if (ret)
			return ret;
	}
	return 0;
}

size_t nt_allowedips_count(const struct nt_allowedips *t)
{
	return t->count;
}

size_t nt_allowedips_memory(const struct nt_allowedips *t)
{
	return t->memory;
}
