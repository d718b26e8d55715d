/* Text forms of 32-byte keys, as in wg(8) configs and the control protocol: standard
 * base64 (RFC 4648 section 4, padded) and hex. Constant time in the key material: branch-free
 * arithmetic character classes, no table lookups, no locale; only the input's length and
 * whether it was valid at all are visible. */
#ifndef NOISETUN_ENCODING_H
#define NOISETUN_ENCODING_H

#include <stddef.h>
#include <stdint.h>

#include "noisetun/messages.h"

#define NT_KEY_B64_LEN 44 /* chars, without the NUL: 10 groups of 4, then "xxx=" for 2 bytes */
#define NT_KEY_HEX_LEN 64

/* Base64 of a key into out, NUL-terminated. */
void nt_key_to_base64(char out[static NT_KEY_B64_LEN + 1], const uint8_t key[static NT_KEY_LEN]);

/* Parse a NUL-terminated canonical base64 key: exactly 44 chars, standard alphabet, one
 * final '=', zero unused bits. 0, or -EINVAL with key wiped. */
int nt_key_from_base64(uint8_t key[static NT_KEY_LEN], const char *in);

/* A key file's text (len bytes), as wg reads `private-key FILE` and as PSK files are read:
 * the base64 key, then only whitespace (" \t\n\v\f\r"). 0 with *key; -ENODATA when
 * empty; -EMSGSIZE when shorter than a key; -EINVAL when a character after the key is not
 * whitespace (its offset in *bad); -EBADMSG when the key's characters are not a key. */
int nt_key_file_parse(uint8_t key[static NT_KEY_LEN], const char *text, size_t len, size_t *bad);

/* Lowercase hex of a key into out, NUL-terminated. */
void nt_key_to_hex(char out[static NT_KEY_HEX_LEN + 1], const uint8_t key[static NT_KEY_LEN]);

/* Parse a NUL-terminated hex key of exactly 64 digits, either case.
 * 0, or -EINVAL with key wiped. */
int nt_key_from_hex(uint8_t key[static NT_KEY_LEN], const char *in);

/* X25519 clamping of a private key (RFC 7748 section 5): clear bits 0-2 and 255, set 254. */
void nt_key_clamp(uint8_t key[static NT_KEY_LEN]);

/* s as a JSON string, quotes included, NUL-terminated in out (size >= 3): '"' and '\\'
 * escaped, bytes below 0x20 and above 0x7e as \u00XX (so the result is ASCII and valid
 * whatever the input). Cut at a whole character when out is too small. The length. Not
 * for key material (it branches on the bytes). */
size_t nt_json_string(char *out, size_t size, const char *s);

#endif
