/* Key codecs (lib/encoding.c): known encodings, round trips and a differential check
 * against a naive bit-stream reference, every bad length and character, padding and
 * canonical-form rules, clamping known answers (RFC 7748 section 5.2). Every decode reads
 * from an exact-size heap copy, so ASan flags any read past the NUL, and every rejected
 * decode must return -EINVAL and leave the key all zero. Under valgrind the encoders also
 * run on keys marked undefined: a branch or table index on key bits is then reported. */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define HAVE_MEMCHECK 1
#endif
#endif

#include "noisetun/encoding.h"

#define B64 NT_KEY_B64_LEN
#define HEX NT_KEY_HEX_LEN

/* For hot loops: Check's ck_assert records a location on every call, which dominates the
 * run time under valgrind; this only calls into Check on failure. */
#define EXPECT(cond, ...)                          \
	do {                                       \
		if (!(cond))                       \
			ck_abort_msg(__VA_ARGS__); \
	} while (0)

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* ---- seeded PRNG (xorshift64*) ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static void rnd_key(uint8_t key[static 32])
{
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(rnd() >> 56);
}

static void seed_rng(void)
{
	const char *s = getenv("NT_TEST_SEED");

	rng_state = (s && *s ? strtoull(s, NULL, 0) : 0x4648ULL) | 1;
}

/* ---- naive references: base64 as a bit stream, hex by table ---- */

static int ref_b64_value(uint8_t c)
{
	const char *p = c ? memchr(b64_alphabet, c, 64) : NULL;

	return p ? (int)(p - b64_alphabet) : -1;
}

static int key_bit(const uint8_t key[static 32], int bit) /* MSB first; 0 past the end */
{
	return bit < 256 ? key[bit / 8] >> (7 - bit % 8) & 1 : 0;
}

static void ref_to_base64(char out[static B64 + 1], const uint8_t key[static 32])
{
	for (int j = 0; j < 43; j++) {
		int v = 0;

		for (int b = 0; b < 6; b++)
			v = v << 1 | key_bit(key, 6 * j + b);
		out[j] = b64_alphabet[v];
	}
	out[43] = '=';
	out[44] = '\0';
}

static bool ref_from_base64(uint8_t key[static 32], const char *s)
{
	int bits[43 * 6];

	if (strlen(s) != B64 || s[43] != '=')
		return false;
	for (int j = 0; j < 43; j++) {
		int v = ref_b64_value((uint8_t)s[j]);

		if (v < 0)
			return false;
		for (int b = 0; b < 6; b++)
			bits[6 * j + b] = v >> (5 - b) & 1;
	}
	if (bits[256] || bits[257])
		return false;
	memset(key, 0, 32);
	for (int i = 0; i < 256; i++)
		key[i / 8] |= (uint8_t)(bits[i] << (7 - i % 8));
	return true;
}

static void ref_to_hex(char out[static HEX + 1], const uint8_t key[static 32])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[key[i] / 16];
		out[2 * i + 1] = digits[key[i] % 16];
	}
	out[HEX] = '\0';
}

static int ref_hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool ref_from_hex(uint8_t key[static 32], const char *s)
{
	if (strlen(s) != HEX)
		return false;
	for (int i = 0; i < 32; i++) {
		int hi = ref_hex_value((uint8_t)s[2 * i]), lo = ref_hex_value((uint8_t)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static void parse_hex(uint8_t key[static 32], const char *hex)
{
	ck_assert_msg(ref_from_hex(key, hex), "bad test vector %s", hex);
}

/* ---- the codecs under test, called on exact-size copies, with the error contract checked ---- */

static bool all_zero(const uint8_t *p, size_t len)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < len; i++)
		acc |= p[i];
	return acc == 0;
}

static int decode(int (*fn)(uint8_t *, const char *), uint8_t key[static 32], const char *s, size_t len)
{
	char *copy = malloc(len + 1);
	int ret;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, s, len);
	copy[len] = '\0';
	memset(key, 0xa5, 32);
	ret = fn(key, copy);
	free(copy);
	if (ret != 0) {
		EXPECT(ret == -EINVAL, "returned %d for \"%.*s\"", ret, (int)len, s);
		EXPECT(all_zero(key, 32), "key not wiped after rejecting \"%.*s\"", (int)len, s);
	}
	return ret;
}

static int from_b64(uint8_t key[static 32], const char *s)
{
	return decode(nt_key_from_base64, key, s, strlen(s));
}

static int from_hex(uint8_t key[static 32], const char *s)
{
	return decode(nt_key_from_hex, key, s, strlen(s));
}

/* ---- known answers ---- */

static const struct {
	const char *hex, *b64;
} known[] = {
	{ "0000000000000000000000000000000000000000000000000000000000000000",
	  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" },
	{ "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
	  "//////////////////////////////////////////8=" },
	{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" },
	{ "0000000000000000000000000000000000000000000000000000000000000001",
	  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE=" },
	{ "fbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbefbef",
	  "++++++++++++++++++++++++++++++++++++++++++8=" },
	/* RFC 7748 section 6.1: Alice's private key, Alice's and Bob's public keys. */
	{ "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
	  "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=" },
	{ "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
	  "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=" },
	{ "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
	  "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=" },
};

START_TEST(test_key_file_parse)
{
	static const char k[] = "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqo=";
	uint8_t key[NT_KEY_LEN], want[NT_KEY_LEN];
	char text[128];
	size_t bad = 0;

	memset(want, 0xaa, sizeof(want));
	ck_assert_int_eq(nt_key_file_parse(key, k, 44, &bad), 0);
	ck_assert_mem_eq(key, want, NT_KEY_LEN);
	/* every whitespace wg allows after it */
	snprintf(text, sizeof(text), "%s \t\n\v\f\r\n", k);
	ck_assert_int_eq(nt_key_file_parse(key, text, strlen(text), &bad), 0);
	ck_assert_mem_eq(key, want, NT_KEY_LEN);
	ck_assert_int_eq(nt_key_file_parse(key, "", 0, &bad), -ENODATA);
	ck_assert_int_eq(nt_key_file_parse(key, "\n", 1, &bad), -EMSGSIZE);
	ck_assert_int_eq(nt_key_file_parse(key, k, 43, &bad), -EMSGSIZE);
	snprintf(text, sizeof(text), "%s\nx", k);
	ck_assert_int_eq(nt_key_file_parse(key, text, strlen(text), &bad), -EINVAL);
	ck_assert_uint_eq(bad, 45);
	snprintf(text, sizeof(text), " %s", k); /* a leading space: the 44 are not a key */
	ck_assert_int_eq(nt_key_file_parse(key, text, 44, &bad), -EBADMSG);
	ck_assert_int_eq(nt_key_file_parse(key, text, strlen(text), &bad), -EINVAL);
	memcpy(text, k, 44);
	text[10] = '\0'; /* a NUL inside */
	ck_assert_int_eq(nt_key_file_parse(key, text, 44, &bad), -EBADMSG);
}
END_TEST

START_TEST(test_known_encodings)
{
	uint8_t key[32], got[32];
	char b64[B64 + 1], hex[HEX + 1];

	parse_hex(key, known[_i].hex);

	memset(b64, 'x', sizeof(b64));
	nt_key_to_base64(b64, key);
	ck_assert_str_eq(b64, known[_i].b64);
	ck_assert_int_eq(from_b64(got, known[_i].b64), 0);
	ck_assert_mem_eq(got, key, 32);

	memset(hex, 'x', sizeof(hex));
	nt_key_to_hex(hex, key);
	ck_assert_str_eq(hex, known[_i].hex);
	ck_assert_int_eq(from_hex(got, known[_i].hex), 0);
	ck_assert_mem_eq(got, key, 32);
}
END_TEST

#define ROUND_TRIPS 100000

START_TEST(test_round_trip_random_keys)
{
	uint8_t key[32], got[32];
	char b64[B64 + 1], ref_b64[B64 + 1], hex[HEX + 1], ref_hex[HEX + 1];

	seed_rng();
	for (int n = 0; n < ROUND_TRIPS; n++) {
		rnd_key(key);

		nt_key_to_base64(b64, key);
		ref_to_base64(ref_b64, key);
		EXPECT(strcmp(b64, ref_b64) == 0, "%s, want %s", b64, ref_b64);
		EXPECT(from_b64(got, b64) == 0, "rejected %s", b64);
		EXPECT(memcmp(got, key, 32) == 0, "%s decoded wrong", b64);

		nt_key_to_hex(hex, key);
		ref_to_hex(ref_hex, key);
		EXPECT(strcmp(hex, ref_hex) == 0, "%s, want %s", hex, ref_hex);
		EXPECT(from_hex(got, hex) == 0, "rejected %s", hex);
		EXPECT(memcmp(got, key, 32) == 0, "%s decoded wrong", hex);
	}
}
END_TEST

/* Random strings of base64 characters (and a few others): the codec agrees with the reference. */
START_TEST(test_random_strings_against_reference)
{
	static const char extra[] = "=-_ .\n";
	uint8_t got[32], want[32];
	char s[B64 + 1];
	int accepted = 0;

	seed_rng();
	for (int n = 0; n < 100000; n++) {
		for (int j = 0; j < B64; j++) {
			uint64_t r = rnd();

			s[j] = r % 50 ? b64_alphabet[(r >> 8) % 64] : extra[(r >> 8) % (sizeof(extra) - 1)];
		}
		if (n % 2)
			s[43] = '=';
		s[B64] = '\0';
		bool ok = ref_from_base64(want, s);
		EXPECT(from_b64(got, s) == (ok ? 0 : -EINVAL), "\"%s\": want %s", s, ok ? "accept" : "reject");
		if (ok) {
			accepted++;
			EXPECT(memcmp(got, want, 32) == 0, "%s decoded wrong", s);
		}
	}
	ck_assert_int_gt(accepted, 1000);
}
END_TEST

/* ---- lengths ---- */

START_TEST(test_every_length)
{
	uint8_t key[32];
	char s[101];

	for (int len = 0; len <= 100; len++) {
		/* "AAA…A=": padded-looking at every length, and "AAA…A" */
		memset(s, 'A', len);
		if (len > 0)
			s[len - 1] = '=';
		s[len] = '\0';
		ck_assert_int_eq(from_b64(key, s), len == B64 ? 0 : -EINVAL);
		memset(s, 'A', len);
		ck_assert_int_eq(from_b64(key, s), -EINVAL);

		for (int j = 0; j < len; j++)
			s[j] = "0123456789abcdef"[j % 16];
		ck_assert_int_eq(from_hex(key, s), len == HEX ? 0 : -EINVAL);
	}
}
END_TEST

START_TEST(test_truncated_and_oversized)
{
	static const char *const suffixes[] = { "=", "A", "AAAA", "A===", "\n", " ", "\r\n", "\t", "0" };
	uint8_t key[32], got[32];
	char b64[B64 + 1], hex[HEX + 1], s[256], *big;

	seed_rng();
	rnd_key(key);
	nt_key_to_base64(b64, key);
	nt_key_to_hex(hex, key);

	for (int len = 0; len < B64; len++)
		ck_assert_int_eq(decode(nt_key_from_base64, got, b64, len), -EINVAL);
	for (int len = 0; len < HEX; len++)
		ck_assert_int_eq(decode(nt_key_from_hex, got, hex, len), -EINVAL);

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(s, sizeof(s), "%s%s", b64, suffixes[i]);
		ck_assert_int_eq(from_b64(got, s), -EINVAL);
		snprintf(s, sizeof(s), "%s%s", suffixes[i], b64);
		ck_assert_int_eq(from_b64(got, s), -EINVAL);
		snprintf(s, sizeof(s), "%s%s", hex, suffixes[i]);
		ck_assert_int_eq(from_hex(got, s), -EINVAL);
		snprintf(s, sizeof(s), "%s%s", suffixes[i], hex);
		ck_assert_int_eq(from_hex(got, s), -EINVAL);
	}

	/* A NUL inside makes the string shorter: the bytes after it are never looked at. */
	for (int p = 0; p < B64; p++) {
		memcpy(s, b64, B64 + 1);
		s[p] = '\0';
		ck_assert_int_eq(nt_key_from_base64(got, s), -EINVAL);
		ck_assert(all_zero(got, 32));
	}

	/* Two keys back to back, and a long string. */
	snprintf(s, sizeof(s), "%s%s", b64, b64);
	ck_assert_int_eq(from_b64(got, s), -EINVAL);
	snprintf(s, sizeof(s), "%s%s", hex, hex);
	ck_assert_int_eq(from_hex(got, s), -EINVAL);
	big = malloc(1 << 20);
	ck_assert_ptr_nonnull(big);
	memset(big, 'A', (1 << 20) - 1);
	big[(1 << 20) - 1] = '\0';
	ck_assert_int_eq(nt_key_from_base64(got, big), -EINVAL);
	ck_assert_int_eq(nt_key_from_hex(got, big), -EINVAL);
	free(big);
}
END_TEST

/* ---- characters ---- */

START_TEST(test_each_character_at_each_position_base64)
{
	uint8_t key[32], got[32], want[32];
	char good[B64 + 1], s[B64 + 1];

	seed_rng();
	rnd_key(key);
	nt_key_to_base64(good, key);
	for (int pos = 0; pos < B64; pos++) {
		int accepted = 0;

		for (int c = 1; c < 256; c++) {
			memcpy(s, good, sizeof(s));
			s[pos] = (char)c;

			int v = ref_b64_value((uint8_t)c);
			bool ok = pos < 42 ? v >= 0 : pos == 42 ? v >= 0 && (v & 3) == 0 : c == '=';

			EXPECT(ref_from_base64(want, s) == ok, "reference disagrees: char %#x at %d", c, pos);
			EXPECT(from_b64(got, s) == (ok ? 0 : -EINVAL), "char %#x at %d", c, pos);
			if (ok) {
				accepted++;
				EXPECT(memcmp(got, want, 32) == 0, "char %#x at %d decoded wrong", c, pos);
			}
		}
		ck_assert_int_eq(accepted, pos < 42 ? 64 : pos == 42 ? 16 : 1);
	}
}
END_TEST

START_TEST(test_each_character_at_each_position_hex)
{
	uint8_t key[32], got[32], want[32];
	char good[HEX + 1], s[HEX + 1];

	seed_rng();
	rnd_key(key);
	nt_key_to_hex(good, key);
	for (int pos = 0; pos < HEX; pos++) {
		int accepted = 0;

		for (int c = 1; c < 256; c++) {
			memcpy(s, good, sizeof(s));
			s[pos] = (char)c;

			bool ok = ref_hex_value((uint8_t)c) >= 0;

			EXPECT(from_hex(got, s) == (ok ? 0 : -EINVAL), "char %#x at %d", c, pos);
			if (ok) {
				accepted++;
				EXPECT(ref_from_hex(want, s), "reference disagrees: char %#x at %d", c, pos);
				EXPECT(memcmp(got, want, 32) == 0, "char %#x at %d decoded wrong", c, pos);
			}
		}
		ck_assert_int_eq(accepted, 22);
	}
}
END_TEST

START_TEST(test_bad_padding)
{
	static const char *const bad[] = {
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",  /* "==" ending, 44 chars */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==", /* one '=' too many */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* missing '=' */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* data where '=' belongs */
		"AAAAAAAAAAAAAAAAAAAA=AAAAAAAAAAAAAAAAAAAAAA=",  /* '=' in the middle */
		"=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  /* '=' first */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=A=",  /* '=' among the last group */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",   /* "==" form cut short */
		"============================================",  /* nothing but padding */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.",  /* other padding characters */
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA====", /* 48 chars, 4-aligned */
		"__________________________________________8=",  /* base64url alphabet */
		"------------------------------------------8=",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", /* trailing newline */
		" AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  /* leading space, right length */
		"AAAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAA=",  /* inner space, right length */
	};
	uint8_t key[32];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(from_b64(key, bad[i]) == -EINVAL, "accepted bad[%zu] \"%s\"", i, bad[i]);
}
END_TEST

START_TEST(test_non_canonical_last_character)
{
	uint8_t key[32], want[32] = { 0 };
	char s[B64 + 1] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

	/* The last data character carries 4 key bits and 2 that must be zero. */
	for (int v = 0; v < 64; v++) {
		s[42] = b64_alphabet[v];
		want[31] = (uint8_t)(v >> 2);
		if (v & 3) {
			ck_assert_msg(from_b64(key, s) == -EINVAL, "accepted non-canonical \"%s\"", s);
		} else {
			ck_assert_int_eq(from_b64(key, s), 0);
			ck_assert_mem_eq(key, want, 32);
		}
	}
	ck_assert_int_eq(from_b64(key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB="), -EINVAL);
	ck_assert_int_eq(from_b64(key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD="), -EINVAL);
	ck_assert_int_eq(from_b64(key, "//////////////////////////////////////////9="), -EINVAL);
	ck_assert_int_eq(from_b64(key, "///////////////////////////////////////////="), -EINVAL);
	ck_assert_int_eq(from_b64(key, "//////////////////////////////////////////8="), 0);
}
END_TEST

START_TEST(test_hex_case)
{
	static const char lower[] = "0123456789abcdefabcdef0123456789fedcba9876543210aaaaaaaaaaaaaaaa";
	static const char upper[] = "0123456789ABCDEFABCDEF0123456789FEDCBA9876543210AAAAAAAAAAAAAAAA";
	static const char mixed[] = "0123456789aBcDeFAbCdEf0123456789fEdCbA9876543210aAaAaAaAaAaAaAaA";
	uint8_t a[32], b[32], key[32];
	char hex[HEX + 1], up[HEX + 1];

	ck_assert_int_eq(from_hex(a, lower), 0);
	ck_assert_int_eq(from_hex(b, upper), 0);
	ck_assert_mem_eq(a, b, 32);
	ck_assert_int_eq(from_hex(b, mixed), 0);
	ck_assert_mem_eq(a, b, 32);
	ck_assert_uint_eq(a[0], 0x01);
	ck_assert_uint_eq(a[5], 0xab);
	ck_assert_uint_eq(a[31], 0xaa);
	nt_key_to_hex(hex, a);
	ck_assert_str_eq(hex, lower);

	/* The output is always lowercase; the uppercase form of any key decodes to the same key. */
	seed_rng();
	for (int n = 0; n < 1000; n++) {
		rnd_key(key);
		nt_key_to_hex(hex, key);
		for (int j = 0; j < HEX; j++) {
			EXPECT(strchr("0123456789abcdef", hex[j]) != NULL, "%s not lowercase hex", hex);
			up[j] = hex[j] >= 'a' ? (char)(hex[j] - 'a' + 'A') : hex[j];
		}
		up[HEX] = '\0';
		EXPECT(from_hex(b, up) == 0, "rejected %s", up);
		EXPECT(memcmp(b, key, 32) == 0, "%s decoded wrong", up);
	}
	/* Letters next to the hex ranges. */
	ck_assert_int_eq(from_hex(b, "g000000000000000000000000000000000000000000000000000000000000000"), -EINVAL);
	ck_assert_int_eq(from_hex(b, "G000000000000000000000000000000000000000000000000000000000000000"), -EINVAL);
	ck_assert_int_eq(from_hex(b, "@000000000000000000000000000000000000000000000000000000000000000"), -EINVAL);
	ck_assert_int_eq(from_hex(b, "`000000000000000000000000000000000000000000000000000000000000000"), -EINVAL);
	ck_assert_int_eq(from_hex(b, "0x00000000000000000000000000000000000000000000000000000000000000"), -EINVAL);
}
END_TEST

/* ---- clamping ---- */

START_TEST(test_clamp_known_answers)
{
	/* RFC 7748 section 5.2: the two input scalars and their decoded (clamped) values, the
	 * latter given there in base 10 as 3102984249…406496 and 3515689181…359304. */
	static const char *const in_out[][2] = {
		{ "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
		  "a046e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449a44" },
		{ "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
		  "4866e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba4d" },
		{ "0000000000000000000000000000000000000000000000000000000000000000",
		  "0000000000000000000000000000000000000000000000000000000000000040" },
		{ "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		  "f8ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f" },
	};
	uint8_t key[32], want[32], before[32];

	for (size_t i = 0; i < sizeof(in_out) / sizeof(in_out[0]); i++) {
		parse_hex(key, in_out[i][0]);
		parse_hex(want, in_out[i][1]);
		nt_key_clamp(key);
		ck_assert_mem_eq(key, want, 32);
		nt_key_clamp(key);
		ck_assert_mem_eq(key, want, 32);
	}

	/* Only bits 0-2 and 255 are cleared and bit 254 set; nothing else moves. */
	seed_rng();
	for (int n = 0; n < 10000; n++) {
		rnd_key(key);
		memcpy(before, key, 32);
		nt_key_clamp(key);
		EXPECT(key[0] == (before[0] & 0xf8), "byte 0: %#x from %#x", key[0], before[0]);
		EXPECT(key[31] == ((before[31] & 0x3f) | 0x40), "byte 31: %#x from %#x", key[31], before[31]);
		EXPECT(memcmp(key + 1, before + 1, 30) == 0, "bytes 1-30 changed");
	}
}
END_TEST

/* ---- constant time, checked by memcheck when running under valgrind ---- */

START_TEST(test_encoders_do_not_branch_on_the_key)
{
#ifdef HAVE_MEMCHECK
	uint8_t key[32], copy[32];
	char b64[B64 + 1], hex[HEX + 1], ref[HEX + 1];

	if (!RUNNING_ON_VALGRIND)
		return;
	seed_rng();
	for (int n = 0; n < 64; n++) {
		rnd_key(key);
		memcpy(copy, key, 32);
		/* Undefined key bits make memcheck report any branch or address derived from them. */
		VALGRIND_MAKE_MEM_UNDEFINED(key, 32);
		nt_key_to_base64(b64, key);
		nt_key_to_hex(hex, key);
		nt_key_clamp(key);
		VALGRIND_MAKE_MEM_DEFINED(b64, sizeof(b64));
		VALGRIND_MAKE_MEM_DEFINED(hex, sizeof(hex));
		VALGRIND_MAKE_MEM_DEFINED(key, 32);

		ref_to_base64(ref, copy);
		ck_assert_str_eq(b64, ref);
		ref_to_hex(ref, copy);
		ck_assert_str_eq(hex, ref);
		nt_key_clamp(copy);
		ck_assert_mem_eq(key, copy, 32);
	}
#endif
}
END_TEST

/* The event stream's strings (daemon/events.c): names may hold '"' and '\\'. */
START_TEST(test_json_string)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "", "\"\"" },
		{ "laptop", "\"laptop\"" },
		{ "c\"q\\x", "\"c\\\"q\\\\x\"" },
		{ "a\nb\x01\x7f\xc3\xa9", "\"a\\u000ab\\u0001\\u007f\\u00c3\\u00a9\"" },
	};
	char out[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_uint_eq(nt_json_string(out, sizeof(out), cases[i].in), strlen(cases[i].out));
		ck_assert_str_eq(out, cases[i].out);
	}
	/* too small: cut at a whole escape, still a closed string */
	ck_assert_uint_eq(nt_json_string(out, 5, "a\"bcd"), 3);
	ck_assert_str_eq(out, "\"a\"");
	ck_assert_uint_eq(nt_json_string(out, 6, "a\"bcd"), 5);
	ck_assert_str_eq(out, "\"a\\\"\"");
	ck_assert_uint_eq(nt_json_string(out, 2, "a"), 0);
}
END_TEST

static Suite *encoding_suite(void)
{
	Suite *s = suite_create("encoding");
	TCase *tc = tcase_create("codecs");

	tcase_set_timeout(tc, 120); /* valgrind */
	tcase_add_loop_test(tc, test_known_encodings, 0, (int)(sizeof(known) / sizeof(known[0])));
	tcase_add_test(tc, test_round_trip_random_keys);
	tcase_add_test(tc, test_random_strings_against_reference);
	tcase_add_test(tc, test_every_length);
	tcase_add_test(tc, test_truncated_and_oversized);
	tcase_add_test(tc, test_each_character_at_each_position_base64);
	tcase_add_test(tc, test_each_character_at_each_position_hex);
	tcase_add_test(tc, test_bad_padding);
	tcase_add_test(tc, test_non_canonical_last_character);
	tcase_add_test(tc, test_hex_case);
	tcase_add_test(tc, test_clamp_known_answers);
	tcase_add_test(tc, test_encoders_do_not_branch_on_the_key);
	tcase_add_test(tc, test_json_string);
	tcase_add_test(tc, test_key_file_parse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(encoding_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
