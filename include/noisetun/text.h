/* A growable text buffer for output that may hold keys (a get reply, a client's config):
 * grown by nt_wiped_realloc, so no stray copy is left behind, and wiped when freed. A
 * failure (out of memory, or past max) sticks: every later call does nothing, and the
 * caller checks `failed` once at the end. buf is NUL-terminated once anything was added.
 * Zero-initialise; max 0 means no bound. */
#ifndef NOISETUN_TEXT_H
#define NOISETUN_TEXT_H

#include <stdbool.h>
#include <stddef.h>

struct nt_text {
	char *buf;
	size_t len, cap;
	size_t max;                     /* len may not exceed it (0: unbounded) */
	bool failed;
};

/* Room for more bytes (and the NUL after them). false: failed. */
bool nt_text_reserve(struct nt_text *t, size_t more);
void nt_text_add(struct nt_text *t, const void *s, size_t len);
void nt_text_printf(struct nt_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empty again, keeping (wiped) memory up to keep bytes; more is given back. */
void nt_text_clear(struct nt_text *t, size_t keep);
void nt_text_free(struct nt_text *t);

#endif
