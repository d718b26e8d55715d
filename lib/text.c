/* The growable text buffer (text.h). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "noisetun/crypto.h"
#include "noisetun/text.h"

bool nt_text_reserve(struct nt_text *t, size_t more)
{
	size_t cap = t->cap ? t->cap : 1024;
	char *bigger;

	if (t->failed)
		return false;
	if (more > SIZE_MAX / 4 - t->len || (t->max && t->len + more > t->max)) {
		t->failed = true;
		return false;
	}
	while (cap < t->len + more + 1)
		cap *= 2;
	if (cap == t->cap)
		return true;
	if (!(bigger = nt_wiped_realloc(t->buf, t->cap, cap))) {
		t->failed = true;
		return false;
	}
	t->buf = bigger;
	t->cap = cap;
	t->buf[t->len] = '\0';
	return true;
}

void nt_text_add(struct nt_text *t, const void *s, size_t len)
{
	if (!nt_text_reserve(t, len))
		return;
	memcpy(t->buf + t->len, s, len);
	t->len += len;
	t->buf[t->len] = '\0';
}

void nt_text_printf(struct nt_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->failed = true;
		return;
	}
	if (!nt_text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

void nt_text_clear(struct nt_text *t, size_t keep)
{
	if (t->buf)
		nt_wipe(t->buf, t->len);
	t->len = 0;
	t->failed = false;
	if (t->cap > keep) {
		nt_wipe(t->buf, t->cap);
		free(t->buf);
		t->buf = NULL;
		t->cap = 0;
	} else if (t->buf) {
		t->buf[0] = '\0';
	}
}

void nt_text_free(struct nt_text *t)
{
	nt_text_clear(t, 0);
}
