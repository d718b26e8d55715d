/* mac1, mac2 and cookie replies: the DoS defence of protocol.md "Macs and cookies".
 *
 * The checker (one per device) verifies the macs of handshake messages we receive and
 * answers with cookie replies when under load. The maker (one per peer) puts the macs on
 * handshake messages we send and keeps the cookie the peer last gave us.
 * Pure: the caller supplies the time (monotonic ns) and randomness. */
#ifndef NOISETUN_COOKIE_H
#define NOISETUN_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/messages.h"

/* A maker stops using a cookie this long after receiving it: the replier's secret was
 * born before the cookie was made, so the kernel keeps a 5 s margin under its 120 s. */
#define NT_COOKIE_MAKER_MAX_AGE (NT_COOKIE_SECRET_MAX_AGE - NT_COOKIE_SECRET_LATENCY) /* 115 s */

/* Under load for this long after the handshake queue was last long. */
#define NT_COOKIE_UNDER_LOAD_HOLD NT_NSEC_PER_SEC

enum nt_cookie_mac_state {
	NT_COOKIE_MAC_INVALID = 0, /* mac1 wrong, bad length or no device key: drop */
	NT_COOKIE_MAC1_VALID,      /* mac1 right; mac2 absent, wrong, stale or not checked */
	NT_COOKIE_MAC2_VALID,      /* mac1 and mac2 right */
};

struct nt_cookie_checker {
	uint8_t mac1_key[NT_KEY_LEN];              /* HASH("mac1----" ‖ our static public) */
	uint8_t cookie_encryption_key[NT_KEY_LEN]; /* HASH("cookie--" ‖ our static public) */
	uint8_t secret[NT_HASH_LEN];               /* R */
	uint64_t secret_birth;
	bool has_secret;
	bool has_key;
};

struct nt_cookie_maker {
	uint8_t mac1_key[NT_KEY_LEN];              /* HASH("mac1----" ‖ peer's static public) */
	uint8_t cookie_decryption_key[NT_KEY_LEN]; /* HASH("cookie--" ‖ peer's static public) */
	uint8_t cookie[NT_COOKIE_LEN];
	uint64_t cookie_birth;
	bool has_cookie;
	uint8_t last_mac1_sent[NT_MAC_LEN];
	bool has_sent_mac1;
};

/* A checker for a device with no key yet: every validation fails until
 * nt_cookie_checker_set_public_key. */
void nt_cookie_checker_init(struct nt_cookie_checker *checker);

/* Precompute both keys from the device's static public key; NULL removes the key.
 * The secret R is kept: cookies do not depend on the key. */
void nt_cookie_checker_set_public_key(struct nt_cookie_checker *checker, const uint8_t *our_public);

/* Wipe every key and the secret; the checker is then as after init. */
void nt_cookie_checker_wipe(struct nt_cookie_checker *checker);

/* Check mac1 of a handshake message (148 or 92 bytes; mac1 at len-32, mac2 at len-16) and,
 * when check_mac2, its mac2 against the cookie of src (the opaque source address ‖ port
 * bytes). A secret 120 s old or older is wiped here and no mac2 passes until a new one. */
enum nt_cookie_mac_state nt_cookie_validate(struct nt_cookie_checker *checker, const uint8_t *msg, size_t len,
					    const uint8_t *src, size_t src_len, uint64_t now,
					    bool check_mac2) NT_WARN_UNUSED;

/* Build the type-3 reply to a handshake message whose mac1 the caller has validated:
 * receiver = its sender index, cookie of src sealed with ad = its mac1. Rotates R when
 * absent or 120 s old. 0, -EINVAL (length not 148/92), -ENOKEY (no device key); out untouched on error. */
int nt_cookie_create_reply(struct nt_cookie_checker *checker, uint8_t out[static NT_COOKIE_MSG_LEN],
			   const uint8_t *msg, size_t len, const uint8_t *src, size_t src_len, uint64_t now,
			   const struct nt_rng *rng) NT_WARN_UNUSED;

/* A maker for the peer with this static public key, holding no cookie. */
void nt_cookie_maker_init(struct nt_cookie_maker *maker, const uint8_t peer_public[static NT_KEY_LEN]);

/* Wipe the keys, the cookie and the remembered mac1. */
void nt_cookie_maker_wipe(struct nt_cookie_maker *maker);

/* Fill mac1 and mac2 of an outgoing handshake message (148 or 92 bytes, everything before
 * mac1 final). mac2 is zero unless we hold a cookie younger than NT_COOKIE_MAKER_MAX_AGE.
 * Remembers mac1 for the cookie reply. 0, or -EINVAL on a bad length (msg untouched). */
int nt_cookie_add_macs(struct nt_cookie_maker *maker, uint8_t *msg, size_t len, uint64_t now) NT_WARN_UNUSED;

/* Take the cookie from a type-3 reply already matched to this peer by its receiver index.
 * Each mac1 sent authenticates one reply at most (a replay cannot refresh the cookie).
 * 0; -EINVAL (not 64 bytes of type 3); -EBADMSG (no mac1 outstanding, or auth failure). */
int nt_cookie_consume_reply(struct nt_cookie_maker *maker, const uint8_t *reply, size_t len,
			    uint64_t now) NT_WARN_UNUSED;

/* The under-load decision: the handshake queue is at least 1/8 of queue_max (and not empty),
 * or was so less than 1 s ago. *last_under_load is the last time it was (0: never; so a
 * clock reading of exactly 0 is not remembered) and is updated here. */
bool nt_cookie_under_load(size_t handshake_queue_len, size_t queue_max, uint64_t now,
			  uint64_t *last_under_load);

#endif
