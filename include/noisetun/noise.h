/* The Noise IKpsk2 handshake of WireGuard (protocol.md "The handshake").
 *
 *   IKpsk2:
 *     <- s
 *     ...
 *     -> e, es, s, ss, {t}
 *     <- e, ee, se, psk, {}
 *
 * Pure: the caller supplies the sender index, the time and the randomness. mac1/mac2 are
 * not touched here (cookie.h adds and checks them); create functions leave them zero. */
#ifndef NOISETUN_NOISE_H
#define NOISETUN_NOISE_H

#include <stdbool.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"

/* The device's static identity and what depends on it alone. Holds a secret: allocate
 * it where secrets belong (sodium_malloc) and wipe it with nt_noise_static_clear. */
struct nt_noise_static {
	bool has_key;
	uint8_t private_key[NT_KEY_LEN];
	uint8_t public_key[NT_KEY_LEN];
	uint8_t chaining_key0[NT_HASH_LEN]; /* HASH(CONSTRUCTION) */
	uint8_t hash0[NT_HASH_LEN];         /* HASH(C0 ‖ IDENTIFIER) */
	uint8_t responder_hash[NT_HASH_LEN]; /* HASH(hash0 ‖ our public key) */
};

enum nt_handshake_state {
	NT_HS_ZEROED,
	NT_HS_CREATED_INITIATION,
	NT_HS_CONSUMED_INITIATION,
	NT_HS_CREATED_RESPONSE,
	NT_HS_CONSUMED_RESPONSE,
};

/* Per-peer handshake state. The first group lives as long as the peer; `secrets` lives
 * for one handshake and is wiped when it ends or fails. */
struct nt_handshake {
	uint8_t remote_static[NT_KEY_LEN];
	uint8_t preshared_key[NT_KEY_LEN];
	uint8_t static_static[NT_KEY_LEN]; /* DH(our static, their static), precomputed */
	bool static_static_valid;
	uint8_t initiator_hash[NT_HASH_LEN]; /* HASH(hash0 ‖ their public key) */
	uint8_t latest_timestamp[NT_TAI64N_LEN];
	uint64_t last_initiation_consumed; /* monotonic ns */
	bool has_consumed_initiation;

	enum nt_handshake_state state;
	uint32_t local_index;
	uint32_t remote_index;
	struct {
		uint8_t ephemeral_private[NT_KEY_LEN];
		uint8_t remote_ephemeral[NT_KEY_LEN];
		uint8_t hash[NT_HASH_LEN];
		uint8_t chaining_key[NT_HASH_LEN];
	} secrets;
};

/* Set the device key (NULL or all zeros: no key) and precompute what depends on it. */
void nt_noise_static_init(struct nt_noise_static *dev, const uint8_t private_key[NT_KEY_LEN]);
void nt_noise_static_clear(struct nt_noise_static *dev);

/* Set up a peer's handshake for remote_static; psk may be NULL (none). Recomputes the
 * static-static DH, so call it again for every peer when the device key changes. */
void nt_handshake_init(struct nt_handshake *hs, const struct nt_noise_static *dev,
		       const uint8_t remote_static[NT_KEY_LEN], const uint8_t *psk);
/* Change the preshared key (NULL: none) without touching the rest. */
void nt_handshake_set_psk(struct nt_handshake *hs, const uint8_t *psk);
/* Forget the in-progress handshake (wipes its secrets; keeps the replay timestamp). */
void nt_handshake_clear(struct nt_handshake *hs);
/* Wipe everything, including the PSK. */
void nt_handshake_destroy(struct nt_handshake *hs);

/* Message 1 into out[148] with sender_index and the wall clock (ns since the epoch) for the
 * timestamp. NT_DROP_NO_KEY when there is no device key or the peer's key is low-order. */
enum nt_status nt_noise_create_initiation(uint8_t out[static NT_INIT_LEN], struct nt_handshake *hs,
					  const struct nt_noise_static *dev, uint32_t sender_index,
					  uint64_t wall_ns, const struct nt_rng *rng) NT_WARN_UNUSED;

/* Finds the peer's handshake for a static public key, or NULL. */
typedef struct nt_handshake *(*nt_peer_lookup_fn)(void *ctx, const uint8_t remote_static[NT_KEY_LEN]);

/* Consume message 1 (mac1 already checked). On NT_OK *hs_out is the peer's handshake, now
 * ready for nt_noise_create_response; on any refusal the peer's state is unchanged.
 * now (monotonic ns) drives the 1/50 s flood guard. */
enum nt_status nt_noise_consume_initiation(struct nt_handshake **hs_out, const uint8_t *msg, size_t len,
					   const struct nt_noise_static *dev, nt_peer_lookup_fn lookup,
					   void *lookup_ctx, uint64_t now) NT_WARN_UNUSED;

/* Message 2 into out[92], answering the consumed initiation. */
enum nt_status nt_noise_create_response(uint8_t out[static NT_RESP_LEN], struct nt_handshake *hs,
					const struct nt_noise_static *dev, uint32_t sender_index,
					const struct nt_rng *rng) NT_WARN_UNUSED;

/* The responder's handshake in two parts, so that the expensive one can run on any
 * thread (issue 16: handshakes on every core):
 *
 *   nt_noise_prepare_initiation  everything that depends on the message, the device's
 *       identity and the peer's precomputed static-static DH only: es, s, ss, {t} of the
 *       initiation, then the response's ephemeral, ee and se (4 X25519 of the 4 a
 *       responder does). Reads the peer (through lookup) but writes nothing but w: run it
 *       while nobody changes the peers, the identity or the peer table.
 *   nt_noise_complete_initiation  on the thread that owns the peer, in message order: the
 *       replay timestamp and the 1/50 s flood guard against the peer's state as it is now
 *       (an earlier message of the same batch may have moved it), then the commit.
 *   nt_noise_finish_response  psk, {} and the indices: message 2, as
 *       nt_noise_create_response makes it.
 *
 * w holds secrets: nt_noise_work_wipe it when done. rng must be safe to call from the
 * thread that prepares. */
struct nt_initiation_work {
	enum nt_status status;
	struct nt_handshake *hs;        /* the peer's, from lookup (read only in prepare) */
	uint32_t remote_index;
	uint8_t timestamp[NT_TAI64N_LEN];
	uint8_t remote_ephemeral[NT_KEY_LEN];
	uint8_t ephemeral_private[NT_KEY_LEN]; /* the response's */
	uint8_t ephemeral_public[NT_KEY_LEN];
	uint8_t chaining_key[NT_HASH_LEN];   /* after the response's e, ee, se */
	uint8_t hash[NT_HASH_LEN];           /* after the response's e */
};
void nt_noise_prepare_initiation(struct nt_initiation_work *w, const uint8_t *msg, size_t len,
				 const struct nt_noise_static *dev, nt_peer_lookup_fn lookup, void *lookup_ctx,
				 const struct nt_rng *rng);
/* NT_OK: w->hs is now in state NT_HS_CONSUMED_INITIATION (with the response's secrets
 * from w); else the peer's state is unchanged. */
enum nt_status nt_noise_complete_initiation(struct nt_initiation_work *w, uint64_t now) NT_WARN_UNUSED;
enum nt_status nt_noise_finish_response(uint8_t out[static NT_RESP_LEN], struct nt_handshake *hs,
					const struct nt_initiation_work *w, uint32_t sender_index) NT_WARN_UNUSED;
void nt_noise_work_wipe(struct nt_initiation_work *w);

/* Consume message 2 for hs, found by the caller through the message's receiver index
 * (nt_noise_response_receiver). On refusal hs is unchanged. */
enum nt_status nt_noise_consume_response(struct nt_handshake *hs, const uint8_t *msg, size_t len,
					 const struct nt_noise_static *dev) NT_WARN_UNUSED;

/* The receiver index of a response, or of a cookie reply (for the caller's lookup). */
static inline uint32_t nt_noise_response_receiver(const uint8_t msg[static NT_RESP_LEN])
{
	return nt_load_le32(msg + NT_RESP_OFF_RECEIVER);
}

/* Derive the transport keys once message 2 was sent (responder) or consumed (initiator),
 * install them in kps (responder: as `next`, awaiting confirmation; initiator: as `current`)
 * and wipe the handshake's secrets. `dropped` receives the local indices of keypairs this
 * displaced, for the caller's index table. */
enum nt_status nt_noise_begin_session(struct nt_handshake *hs, struct nt_keypairs *kps, uint64_t now,
				      struct nt_keypair_drops *dropped) NT_WARN_UNUSED;

#endif
