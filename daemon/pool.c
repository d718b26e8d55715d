/* Fixed-size object pools in sodium_malloc'd slabs. Peers and keypairs hold secrets, so
 * they live in guarded, mlock'd memory; one sodium_malloc per object costs guard pages and
 * three mappings each (10,000 peers would use 30,000 of the 65,530 the kernel allows), so
 * objects are carved from slabs instead. Freed objects are wiped and reused. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "noisetund.h"

void pool_init(struct pool *p, size_t obj_size, size_t per_slab)
{
	memset(p, 0, sizeof(*p));
	p->obj_size = (obj_size + 15) & ~(size_t)15;
	p->per_slab = per_slab;
}

void *pool_alloc(struct pool *p)
{
	void *obj;

	if (!p->free_list) {
		uint8_t *slab;
		void **slabs;

		if (p->slab_count == p->slab_cap) {
			size_t cap = p->slab_cap ? p->slab_cap * 2 : 8;
			if (!(slabs = realloc(p->slabs, cap * sizeof(*slabs))))
				return NULL;
			p->slabs = slabs;
			p->slab_cap = cap;
		}
		if (!(slab = sodium_malloc(p->obj_size * p->per_slab)))
			return NULL;
		p->slabs[p->slab_count++] = slab;
		for (size_t i = p->per_slab; i-- > 0;) {
			void **o = (void **)(slab + i * p->obj_size);
			*o = p->free_list;
			p->free_list = o;
		}
	}
	obj = p->free_list;
	p->free_list = *(void **)obj;
	memset(obj, 0, p->obj_size);
	p->live++;
	return obj;
}

void pool_free(struct pool *p, void *obj)
{
	if (!obj)
		return;
	sodium_memzero(obj, p->obj_size);
	*(void **)obj = p->free_list;
	p->free_list = obj;
	p->live--;
}

void pool_destroy(struct pool *p)
{
	for (size_t i = 0; i < p->slab_count; i++)
		sodium_free(p->slabs[i]); /* wipes */
	free(p->slabs);
	memset(p, 0, sizeof(*p));
}
