/* The primitives of the protocol (protocol.md "Primitives"): BLAKE2s from libb2,
 * X25519 and the AEADs from libsodium, transport ChaCha20 from OpenSSL. Pure functions;
 * no state but the caller's, no clock. */
#ifndef NOISETUN_CRYPTO_H
#define NOISETUN_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/messages.h"

#define NT_WARN_UNUSED __attribute__((warn_unused_result))

/* Call once per process before anything else here (wraps sodium_init). 0 or -1. */
int nt_crypto_init(void);

/* HASH: BLAKE2s-256 of the concatenation a ‖ b (b may be NULL with blen 0). */
void nt_hash2(uint8_t out[static NT_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen);
void nt_hash(uint8_t out[static NT_HASH_LEN], const void *in, size_t len);

/* MAC: keyed BLAKE2s with a 16-byte output; the key is 32 bytes (mac1) or 16 (mac2, cookie). */
void nt_mac(uint8_t out[static NT_MAC_LEN], const uint8_t *key, size_t keylen, const void *in, size_t len);

/* HMAC-BLAKE2s (RFC 2104, block 64, output 32). */
void nt_hmac(uint8_t out[static NT_HASH_LEN], const uint8_t *key, size_t keylen, const void *in, size_t len);

/* KDF_n: out1..out3 receive t1..tn; out2, out3 may be NULL for KDF1/KDF2. */
void nt_kdf(uint8_t *out1, uint8_t *out2, uint8_t *out3, const uint8_t chaining_key[static NT_HASH_LEN],
	    const void *in, size_t len);

/* AEAD with the WireGuard nonce: 4 zero bytes then the little-endian counter.
 * dst receives len + 16 bytes (seal) or len - 16 (open). dst may equal src. */
void nt_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		  uint64_t counter, const uint8_t key[static NT_KEY_LEN]);
/* 0 when the tag verified, -1 otherwise (dst then holds nothing usable). */
int nt_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		 uint64_t counter, const uint8_t key[static NT_KEY_LEN]) NT_WARN_UNUSED;

/* The same AEAD for transport data (no associated data), faster: ChaCha20 from OpenSSL
 * (AVX-512 where the CPU has it: 1.8x libsodium's on this machine) and Poly1305 from
 * libsodium, composed as RFC 8439 section 2.8 says. Output is byte for byte nt_aead_seal's.
 * A cipher holds one key (in OpenSSL's memory, cleansed by nt_cipher_free); NULL when
 * OpenSSL fails, and the caller then uses nt_aead_seal/open. */
struct nt_cipher;
struct nt_cipher *nt_cipher_new(const uint8_t key[static NT_KEY_LEN]);
void nt_cipher_free(struct nt_cipher *c);
/* The same cipher on another key (a worker's, reused across keypairs); 0 or -1. */
int nt_cipher_rekey(struct nt_cipher *c, const uint8_t key[static NT_KEY_LEN]) NT_WARN_UNUSED;
/* 0, or -1 when OpenSSL failed (dst then holds nothing usable; seal again with nt_aead_seal). */
int nt_cipher_seal(struct nt_cipher *c, uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter) NT_WARN_UNUSED;
/* 0 when the tag verified and dst holds len - 16 bytes, -1 otherwise. */
int nt_cipher_open(struct nt_cipher *c, uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter) NT_WARN_UNUSED;

/* XChaCha20-Poly1305 with a 24-byte nonce, same conventions. */
void nt_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		   const uint8_t nonce[static NT_COOKIE_NONCE_LEN], const uint8_t key[static NT_KEY_LEN]);
int nt_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		  const uint8_t nonce[static NT_COOKIE_NONCE_LEN], const uint8_t key[static NT_KEY_LEN]) NT_WARN_UNUSED;

/* X25519. 0, or -1 when the result is all zeros (a low-order point). */
int nt_dh(uint8_t out[static NT_KEY_LEN], const uint8_t priv[static NT_KEY_LEN],
	  const uint8_t pub[static NT_KEY_LEN]) NT_WARN_UNUSED;
/* Public key of a private key (clamped by X25519 itself). -1 if the result were all zeros. */
int nt_dh_public(uint8_t pub[static NT_KEY_LEN], const uint8_t priv[static NT_KEY_LEN]) NT_WARN_UNUSED;
/* A fresh clamped private key from rng and its public key. */
void nt_dh_generate(uint8_t priv[static NT_KEY_LEN], uint8_t pub[static NT_KEY_LEN], const struct nt_rng *rng);

/* TAI64N label of a wall-clock time given as nanoseconds since the UNIX epoch. */
void nt_tai64n(uint8_t out[static NT_TAI64N_LEN], uint64_t unix_ns);

/* Constant-time equality and zero test. */
bool nt_equal(const void *a, const void *b, size_t len);
bool nt_is_zero(const void *a, size_t len);

/* Wipe a secret (sodium_memzero). */
void nt_wipe(void *p, size_t len);

/* realloc for a buffer that may hold secrets: a new block of new_size bytes with the
 * first min(old_size, new_size) bytes copied, the old block (old_size bytes) wiped and
 * freed, so that no copy is left behind in freed memory as realloc may leave one. NULL
 * (p untouched) when out of memory; p may be NULL. */
void *nt_wiped_realloc(void *p, size_t old_size, size_t new_size);

#endif
