/* Key codecs. Every character goes through the same arithmetic whatever its value: classes
 * are masks built from subtraction and sign bits, never a table indexed by secret data or a
 * branch on it, so timing and memory access show at most the length and overall validity.
 * The character functions below work on values below 2^31 only. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "noisetun/encoding.h"

_Static_assert(NT_KEY_LEN == 32 && NT_KEY_B64_LEN == 4 * (NT_KEY_LEN / 3) + 4, "32 bytes = 10 groups + 2");
_Static_assert(NT_KEY_HEX_LEN == 2 * NT_KEY_LEN, "two digits a byte");

/* All ones when a < b, else 0. */
static inline uint32_t mask_lt(uint32_t a, uint32_t b)
{
	return 0u - ((a - b) >> 31);
}

/* All ones when lo <= x <= hi, else 0. */
static inline uint32_t mask_range(uint32_t x, uint32_t lo, uint32_t hi)
{
	return ~mask_lt(x, lo) & ~mask_lt(hi, x);
}

/* All ones when a == b, else 0. */
static inline uint32_t mask_eq(uint32_t a, uint32_t b)
{
	return 0u - (((a ^ b) - 1) >> 31);
}

/* RFC 4648 table 1: A-Z a-z 0-9 + / for 0..63. */
static inline char b64_char(uint32_t v)
{
	return (char)((mask_lt(v, 26) & (v + 'A')) |
		      (mask_range(v, 26, 51) & (v - 26 + 'a')) |
		      (mask_range(v, 52, 61) & (v - 52 + '0')) |
		      (mask_eq(v, 62) & '+') |
		      (mask_eq(v, 63) & '/'));
}

/* Value 0..63 of a base64 character; ORs all ones into *invalid when c is not one. */
static inline uint32_t b64_value(uint8_t ch, uint32_t *invalid)
{
	uint32_t c = ch;
	uint32_t upper = mask_range(c, 'A', 'Z'), lower = mask_range(c, 'a', 'z');
	uint32_t digit = mask_range(c, '0', '9'), plus = mask_eq(c, '+'), slash = mask_eq(c, '/');

	*invalid |= ~(upper | lower | digit | plus | slash);
	return (upper & (c - 'A')) | (lower & (c - 'a' + 26)) | (digit & (c - '0' + 52)) |
	       (plus & 62) | (slash & 63);
}

static inline char hex_char(uint32_t v)
{
	return (char)(v + '0' + (mask_lt(9, v) & ('a' - '0' - 10)));
}

/* Value 0..15 of a hex digit of either case; ORs all ones into *invalid when c is not one. */
static inline uint32_t hex_value(uint8_t ch, uint32_t *invalid)
{
	uint32_t c = ch;
	uint32_t digit = mask_range(c, '0', '9'), lower = mask_range(c, 'a', 'f');
	uint32_t upper = mask_range(c, 'A', 'F');

	*invalid |= ~(digit | lower | upper);
	return (digit & (c - '0')) | (lower & (c - 'a' + 10)) | (upper & (c - 'A' + 10));
}

void nt_key_to_base64(char out[static NT_KEY_B64_LEN + 1], const uint8_t key[static NT_KEY_LEN])
{
	uint32_t group;
	size_t i;

	for (i = 0; i < NT_KEY_LEN / 3; i++) {
		group = (uint32_t)key[3 * i] << 16 | (uint32_t)key[3 * i + 1] << 8 | key[3 * i + 2];
		out[4 * i] = b64_char(group >> 18);
		out[4 * i + 1] = b64_char(group >> 12 & 63);
		out[4 * i + 2] = b64_char(group >> 6 & 63);
		out[4 * i + 3] = b64_char(group & 63);
	}
	/* The last two bytes: 16 bits in three characters, the low 2 bits zero, then '='. */
	group = (uint32_t)key[30] << 8 | key[31];
	out[40] = b64_char(group >> 10);
	out[41] = b64_char(group >> 4 & 63);
	out[42] = b64_char(group << 2 & 63);
	out[43] = '=';
	out[44] = '\0';
}

int nt_key_from_base64(uint8_t key[static NT_KEY_LEN], const char *in)
{
	const uint8_t *s = (const uint8_t *)in;
	uint32_t invalid = 0, group;
	int ret = -EINVAL;
	size_t i;

	/* The length is public; reading stops at the NUL or one past the expected length. */
	if (strnlen(in, NT_KEY_B64_LEN + 1) != NT_KEY_B64_LEN)
		goto out;

	for (i = 0; i < NT_KEY_LEN / 3; i++) {
		group = b64_value(s[4 * i], &invalid) << 18 | b64_value(s[4 * i + 1], &invalid) << 12 |
			b64_value(s[4 * i + 2], &invalid) << 6 | b64_value(s[4 * i + 3], &invalid);
		key[3 * i] = (uint8_t)(group >> 16);
		key[3 * i + 1] = (uint8_t)(group >> 8);
		key[3 * i + 2] = (uint8_t)group;
	}
	group = b64_value(s[40], &invalid) << 12 | b64_value(s[41], &invalid) << 6 |
		b64_value(s[42], &invalid);
	invalid |= ~mask_eq(group & 3, 0); /* canonical form only: one text per key */
	invalid |= ~mask_eq(s[43], '=');
	key[30] = (uint8_t)(group >> 10);
	key[31] = (uint8_t)(group >> 2);

	if (!invalid)
		ret = 0;
out:
	if (ret)
		sodium_memzero(key, NT_KEY_LEN);
	return ret;
}

void nt_key_to_hex(char out[static NT_KEY_HEX_LEN + 1], const uint8_t key[static NT_KEY_LEN])
{
	for (size_t i = 0; i < NT_KEY_LEN; i++) {
		out[2 * i] = hex_char(key[i] >> 4);
		out[2 * i + 1] = hex_char(key[i] & 15);
	}
	out[NT_KEY_HEX_LEN] = '\0';
}

int nt_key_from_hex(uint8_t key[static NT_KEY_LEN], const char *in)
{
	const uint8_t *s = (const uint8_t *)in;
	uint32_t invalid = 0;
	int ret = -EINVAL;

	if (strnlen(in, NT_KEY_HEX_LEN + 1) != NT_KEY_HEX_LEN)
		goto out;

	for (size_t i = 0; i < NT_KEY_LEN; i++)
		key[i] = (uint8_t)(hex_value(s[2 * i], &invalid) << 4 | hex_value(s[2 * i + 1], &invalid));

	if (!invalid)
		ret = 0;
out:
	if (ret)
		sodium_memzero(key, NT_KEY_LEN);
	return ret;
}

void nt_key_clamp(uint8_t key[static NT_KEY_LEN])
{
	key[0] &= 248;
	key[31] &= 127;
	key[31] |= 64;
}

size_t nt_json_string(char *out, size_t size, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (size < 3)
		return 0;
	out[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[6];
		size_t k = 0;

		if (c == '"' || c == '\\') {
			esc[k++] = '\\';
			esc[k++] = (char)c;
		} else if (c < 0x20 || c > 0x7e) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			k = 6;
		} else {
			esc[k++] = (char)c;
		}
		if (n + k + 2 > size)
			break;
		memcpy(out + n, esc, k);
		n += k;
	}
	out[n++] = '"';
	out[n] = 0;
	return n;
}

int nt_key_file_parse(uint8_t key[static NT_KEY_LEN], const char *text, size_t len, size_t *bad)
{
	char b64[NT_KEY_B64_LEN + 1];
	int ret;

	if (!len)
		return -ENODATA;
	if (len < NT_KEY_B64_LEN)
		return -EMSGSIZE;
	for (size_t i = NT_KEY_B64_LEN; i < len; i++) {
		char c = text[i];

		if (c != ' ' && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r') {
			*bad = i;
			return -EINVAL;
		}
	}
	memcpy(b64, text, NT_KEY_B64_LEN);
	b64[NT_KEY_B64_LEN] = '\0';
	ret = nt_key_from_base64(key, b64) ? -EBADMSG : 0;
	sodium_memzero(b64, sizeof(b64));
	return ret;
}
