/* cryptospeed: single-core speed of the primitives WireGuard's cost is made of, with
 * libsodium and OpenSSL as the daemon uses them (one thread, one core):
 *   ChaCha20-Poly1305 (IETF) seal of 1408-byte and 64-byte messages, in place;
 *   the same AEAD as noisetund seals transport data (nt_cipher: OpenSSL's ChaCha20 with
 *   libsodium's Poly1305, lib/crypto.c), 1408 bytes;
 *   X25519 with a variable base (crypto_scalarmult: DH) and with the fixed base
 *   (crypto_scalarmult_base: ephemeral key generation).
 * Usage: cryptospeed [SECONDS_PER_TEST]   (default 1). Prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "noisetun/crypto.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Operations per second of fn over about `secs` seconds (after a short warm-up). */
#define RATE(secs, body)                                                                     \
	({                                                                                   \
		double _t0, _t, _end;                                                        \
		unsigned long _n = 0;                                                        \
		for (int _w = 0; _w < 64; _w++) { body; }                                    \
		_t0 = now();                                                                 \
		_end = _t0 + (secs);                                                         \
		do {                                                                         \
			for (int _k = 0; _k < 64; _k++) { body; }                            \
			_n += 64;                                                            \
		} while ((_t = now()) < _end);                                               \
		(double)_n / (_t - _t0);                                                     \
	})

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	static unsigned char buf[1408 + crypto_aead_chacha20poly1305_ietf_ABYTES];
	unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
	unsigned char nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = { 0 };
	unsigned char sk[32], pk[32], out[32];
	unsigned long long clen;
	unsigned long ctr = 0;

	if (secs <= 0)
		secs = 1.0;
	if (sodium_init() < 0)
		return 1;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(buf, sizeof(buf));
	randombytes_buf(sk, sizeof(sk));
	crypto_scalarmult_base(pk, sk);

#define SEAL(len)                                                                                     \
	do {                                                                                          \
		ctr++;                                                                                \
		memcpy(nonce + 4, &ctr, sizeof(ctr));                                                 \
		crypto_aead_chacha20poly1305_ietf_encrypt(buf, &clen, buf, (len), NULL, 0, NULL, nonce, key); \
	} while (0)

	double seal1408 = RATE(secs, SEAL(1408));
	double seal64 = RATE(secs, SEAL(64));
	struct nt_cipher *cipher = nt_cipher_new(key);
	double fast1408 = cipher ? RATE(secs, { if (nt_cipher_seal(cipher, buf, buf, 1408, ++ctr)) return 1; }) : 0;
	nt_cipher_free(cipher);
	/* Feed each result back so nothing can be hoisted out of the loop. */
	double dh = RATE(secs, { if (crypto_scalarmult(out, sk, pk) == 0) memcpy(pk, out, 32); });
	double base = RATE(secs, { crypto_scalarmult_base(out, sk); sk[0] ^= out[1]; });
	/* A responder's handshake: ephemeral generation (base) + es, ee, se (variable base);
	 * the static-static DH is precomputed per peer. */
	double hs_bound = 1.0 / (3.0 / dh + 1.0 / base);

	printf("{\"seconds_per_test\": %.2f, \"libsodium\": \"%s\", "
	       "\"chacha20poly1305_1408_ops\": %.0f, \"chacha20poly1305_1408_gbps\": %.3f, "
	       "\"transport_aead_1408_gbps\": %.3f, \"chacha20poly1305_64_ops\": %.0f, \"chacha20poly1305_64_mpps\": %.3f, "
	       "\"x25519_ops\": %.0f, \"x25519_base_ops\": %.0f, \"x25519_ops_div4\": %.0f, "
	       "\"responder_handshake_bound_per_core\": %.0f}\n",
	       secs, sodium_version_string(), seal1408, seal1408 * 1408 * 8 / 1e9, fast1408 * 1408 * 8 / 1e9, seal64, seal64 / 1e6, dh, base,
	       dh / 4, hs_bound);
	return 0;
}
