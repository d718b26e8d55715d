/* Primitives of the protocol: BLAKE2s (libb2), X25519 and the AEADs (libsodium), the
 * transport data's ChaCha20 (OpenSSL). */
#include "noisetun/crypto.h"

#include <blake2.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define BLAKE2S_BLOCK 64

int nt_crypto_init(void)
{
	return sodium_init() < 0 ? -1 : 0;
}

static void blake2s_update_maybe(blake2s_state *s, const void *in, size_t len)
{
	if (len)
		blake2s_update(s, in, len);
}

void nt_hash2(uint8_t out[static NT_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen)
{
	blake2s_state s;

	blake2s_init(&s, NT_HASH_LEN);
	blake2s_update_maybe(&s, a, alen);
	blake2s_update_maybe(&s, b, blen);
	blake2s_final(&s, out, NT_HASH_LEN);
	nt_wipe(&s, sizeof(s));
}

void nt_hash(uint8_t out[static NT_HASH_LEN], const void *in, size_t len)
{
	nt_hash2(out, in, len, NULL, 0);
}

void nt_mac(uint8_t out[static NT_MAC_LEN], const uint8_t *key, size_t keylen, const void *in, size_t len)
{
	blake2s_state s;

	blake2s_init_key(&s, NT_MAC_LEN, key, keylen);
	blake2s_update_maybe(&s, in, len);
	blake2s_final(&s, out, NT_MAC_LEN);
	nt_wipe(&s, sizeof(s));
}

/* RFC 2104: HMAC(K, m) = H((K ^ opad) ‖ H((K ^ ipad) ‖ m)), K padded to the 64-byte block. */
void nt_hmac(uint8_t out[static NT_HASH_LEN], const uint8_t *key, size_t keylen, const void *in, size_t len)
{
	uint8_t block[BLAKE2S_BLOCK] = { 0 };
	uint8_t inner[NT_HASH_LEN];
	blake2s_state s;

	if (keylen > BLAKE2S_BLOCK)
		nt_hash(block, key, keylen);
	else
		memcpy(block, key, keylen);

	for (size_t i = 0; i < BLAKE2S_BLOCK; i++)
		block[i] ^= 0x36;
	blake2s_init(&s, NT_HASH_LEN);
	blake2s_update(&s, block, BLAKE2S_BLOCK);
	blake2s_update_maybe(&s, in, len);
	blake2s_final(&s, inner, NT_HASH_LEN);

	for (size_t i = 0; i < BLAKE2S_BLOCK; i++)
		block[i] ^= 0x36 ^ 0x5c;
	blake2s_init(&s, NT_HASH_LEN);
	blake2s_update(&s, block, BLAKE2S_BLOCK);
	blake2s_update(&s, inner, NT_HASH_LEN);
	blake2s_final(&s, out, NT_HASH_LEN);

	nt_wipe(block, sizeof(block));
	nt_wipe(inner, sizeof(inner));
	nt_wipe(&s, sizeof(s));
}

/* t0 = HMAC(C, in); t1 = HMAC(t0, 0x1); t_i = HMAC(t0, t_{i-1} ‖ i). */
void nt_kdf(uint8_t *out1, uint8_t *out2, uint8_t *out3, const uint8_t chaining_key[static NT_HASH_LEN],
	    const void *in, size_t len)
{
	uint8_t t0[NT_HASH_LEN];
	uint8_t buf[NT_HASH_LEN + 1];
	uint8_t *outs[3] = { out1, out2, out3 };

	nt_hmac(t0, chaining_key, NT_HASH_LEN, in, len);
	buf[0] = 1;
	nt_hmac(buf, t0, NT_HASH_LEN, buf, 1);
	memcpy(out1, buf, NT_HASH_LEN);
	for (uint8_t i = 1; i < 3 && outs[i]; i++) {
		buf[NT_HASH_LEN] = (uint8_t)(i + 1);
		nt_hmac(buf, t0, NT_HASH_LEN, buf, sizeof(buf));
		memcpy(outs[i], buf, NT_HASH_LEN);
	}
	nt_wipe(t0, sizeof(t0));
	nt_wipe(buf, sizeof(buf));
}

static void wg_nonce(uint8_t nonce[static crypto_aead_chacha20poly1305_IETF_NPUBBYTES], uint64_t counter)
{
	memset(nonce, 0, 4);
	nt_store_le64(nonce + 4, counter);
}

void nt_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		  uint64_t counter, const uint8_t key[static NT_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];

	wg_nonce(nonce, counter);
	crypto_aead_chacha20poly1305_ietf_encrypt(dst, NULL, src, len, ad, adlen, NULL, nonce, key);
}

int nt_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		 uint64_t counter, const uint8_t key[static NT_KEY_LEN])
{
	uint8_t nonce[crypto_aead_chacha20poly1305_IETF_NPUBBYTES];

	if (len < NT_AEAD_TAG_LEN)
		return -1;
	wg_nonce(nonce, counter);
	return crypto_aead_chacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, ad, adlen, nonce, key) ? -1 : 0;
}

/* EVP_chacha20's 16-byte IV: the 32-bit little-endian block counter, then the nonce. */
static int cipher_start(struct nt_cipher *c, uint64_t counter, uint8_t poly_key[static 32])
{
	static const uint8_t zero[64];
	uint8_t iv[16] = { 0 }, block[64];
	int n;

	wg_nonce(iv + 4, counter);
	/* Block 0 is the one-time Poly1305 key; the text starts at block 1. */
	if (EVP_EncryptInit_ex((EVP_CIPHER_CTX *)c, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate((EVP_CIPHER_CTX *)c, block, &n, zero, sizeof(block)) != 1 || n != sizeof(block))
		return -1;
	memcpy(poly_key, block, 32);
	sodium_memzero(block, sizeof(block));
	return 0;
}

/* Poly1305 over the ciphertext as RFC 8439 lays it out with empty associated data:
 * text, zeros to a multiple of 16, le64(0), le64(len). */
static void cipher_tag(uint8_t tag[static NT_AEAD_TAG_LEN], const uint8_t *text, size_t len, const uint8_t poly_key[static 32])
{
	static const uint8_t zero[16];
	crypto_onetimeauth_poly1305_state st;
	uint8_t lens[16] = { 0 };

	crypto_onetimeauth_poly1305_init(&st, poly_key);
	crypto_onetimeauth_poly1305_update(&st, text, len);
	if (len % 16)
		crypto_onetimeauth_poly1305_update(&st, zero, 16 - len % 16);
	nt_store_le64(lens + 8, len);
	crypto_onetimeauth_poly1305_update(&st, lens, sizeof(lens));
	crypto_onetimeauth_poly1305_final(&st, tag);
	sodium_memzero(&st, sizeof(st));
}

struct nt_cipher *nt_cipher_new(const uint8_t key[static NT_KEY_LEN])
{
	static const uint8_t iv[16];
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();

	if (ctx && EVP_EncryptInit_ex(ctx, EVP_chacha20(), NULL, key, iv) != 1) {
		EVP_CIPHER_CTX_free(ctx);
		ctx = NULL;
	}
	return (struct nt_cipher *)ctx;
}

int nt_cipher_rekey(struct nt_cipher *c, const uint8_t key[static NT_KEY_LEN])
{
	return EVP_EncryptInit_ex((EVP_CIPHER_CTX *)c, NULL, NULL, key, NULL) == 1 ? 0 : -1;
}

void nt_cipher_free(struct nt_cipher *c)
{
	EVP_CIPHER_CTX_free((EVP_CIPHER_CTX *)c); /* cleanses the key */
}

int nt_cipher_seal(struct nt_cipher *c, uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter)
{
	uint8_t poly_key[32];
	int n, err = -1;

	if (len <= INT_MAX && !cipher_start(c, counter, poly_key) &&
	    EVP_EncryptUpdate((EVP_CIPHER_CTX *)c, dst, &n, src, (int)len) == 1 && (size_t)n == len) {
		cipher_tag(dst + len, dst, len, poly_key);
		err = 0;
	}
	sodium_memzero(poly_key, sizeof(poly_key));
	return err;
}

int nt_cipher_open(struct nt_cipher *c, uint8_t *dst, const uint8_t *src, size_t len, uint64_t counter)
{
	uint8_t poly_key[32], tag[NT_AEAD_TAG_LEN];
	int n, err = -1;

	if (len < NT_AEAD_TAG_LEN || len - NT_AEAD_TAG_LEN > INT_MAX || cipher_start(c, counter, poly_key))
		goto out;
	len -= NT_AEAD_TAG_LEN;
	cipher_tag(tag, src, len, poly_key);
	/* decrypt only what authenticated */
	if (crypto_verify_16(tag, src + len) == 0 && EVP_EncryptUpdate((EVP_CIPHER_CTX *)c, dst, &n, src, (int)len) == 1 &&
	    (size_t)n == len)
		err = 0;
out:
	sodium_memzero(poly_key, sizeof(poly_key));
	return err;
}

void nt_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		   const uint8_t nonce[static NT_COOKIE_NONCE_LEN], const uint8_t key[static NT_KEY_LEN])
{
	crypto_aead_xchacha20poly1305_ietf_encrypt(dst, NULL, src, len, ad, adlen, NULL, nonce, key);
}

int nt_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const void *ad, size_t adlen,
		  const uint8_t nonce[static NT_COOKIE_NONCE_LEN], const uint8_t key[static NT_KEY_LEN])
{
	if (len < NT_AEAD_TAG_LEN)
		return -1;
	return crypto_aead_xchacha20poly1305_ietf_decrypt(dst, NULL, NULL, src, len, ad, adlen, nonce, key) ? -1 : 0;
}

/* libsodium's crypto_scalarmult already fails on an all-zero result; the explicit test
 * keeps the protocol's rule visible and independent of the library version. */
int nt_dh(uint8_t out[static NT_KEY_LEN], const uint8_t priv[static NT_KEY_LEN],
	  const uint8_t pub[static NT_KEY_LEN])
{
	if (crypto_scalarmult(out, priv, pub) != 0 || nt_is_zero(out, NT_KEY_LEN)) {
		nt_wipe(out, NT_KEY_LEN);
		return -1;
	}
	return 0;
}

int nt_dh_public(uint8_t pub[static NT_KEY_LEN], const uint8_t priv[static NT_KEY_LEN])
{
	if (crypto_scalarmult_base(pub, priv) != 0 || nt_is_zero(pub, NT_KEY_LEN)) {
		memset(pub, 0, NT_KEY_LEN);
		return -1;
	}
	return 0;
}

void nt_dh_generate(uint8_t priv[static NT_KEY_LEN], uint8_t pub[static NT_KEY_LEN], const struct nt_rng *rng)
{
	/* A clamped random scalar never yields the all-zero public key (it is a multiple of 8 in
	 * [2^254, 2^255), times a generator of prime order), so the retry is belt and braces. */
	do {
		nt_rng_fill(rng, priv, NT_KEY_LEN);
		priv[0] &= 248;
		priv[31] = (priv[31] & 127) | 64;
	} while (nt_dh_public(pub, priv) != 0);
}

void nt_tai64n(uint8_t out[static NT_TAI64N_LEN], uint64_t unix_ns)
{
	uint64_t secs = 0x400000000000000aULL + unix_ns / NT_NSEC_PER_SEC;
	uint32_t nsec = (uint32_t)(unix_ns % NT_NSEC_PER_SEC);

	for (int i = 0; i < 8; i++)
		out[i] = (uint8_t)(secs >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		out[8 + i] = (uint8_t)(nsec >> (24 - 8 * i));
}

bool nt_equal(const void *a, const void *b, size_t len)
{
	/* Keys and MACs: libsodium's fixed-size compares, constant time as sodium_memcmp and
	 * a word at a time, not a byte (the data path compares a key per message). */
	if (len == 32)
		return crypto_verify_32(a, b) == 0;
	if (len == 16)
		return crypto_verify_16(a, b) == 0;
	return sodium_memcmp(a, b, len) == 0;
}

bool nt_is_zero(const void *a, size_t len)
{
	return sodium_is_zero(a, len) == 1;
}

void nt_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

void *nt_wiped_realloc(void *p, size_t old_size, size_t new_size)
{
	void *grown = malloc(new_size ? new_size : 1);

	if (!grown)
		return NULL;
	if (p) {
		memcpy(grown, p, old_size < new_size ? old_size : new_size);
		sodium_memzero(p, old_size);
		free(p);
	}
	return grown;
}
