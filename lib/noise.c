/* The Noise IKpsk2 handshake (protocol.md "The handshake"; whitepaper section 5.4).
 *
 *   initiator -> responder:  e, es, s, ss, {t}
 *   responder -> initiator:  e, ee, se, psk, {}
 *
 * Every consume function works on local copies of the chaining key and hash and commits
 * them to the peer only when the whole message verified, so a refused message changes
 * nothing. Each function wipes its stack secrets on its single way out. */
#include "noisetun/noise.h"

static const char CONSTRUCTION[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char IDENTIFIER[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/* H = HASH(H ‖ data) */
static void mix_hash(uint8_t hash[static NT_HASH_LEN], const void *data, size_t len)
{
	nt_hash2(hash, hash, NT_HASH_LEN, data, len);
}

/* (C, k) = KDF2(C, DH(priv, pub)); false when the DH result is all zeros. */
static bool mix_dh(uint8_t ck[static NT_HASH_LEN], uint8_t *key, const uint8_t priv[static NT_KEY_LEN],
		   const uint8_t pub[static NT_KEY_LEN])
{
	uint8_t shared[NT_KEY_LEN];
	bool ok = nt_dh(shared, priv, pub) == 0;

	if (ok)
		nt_kdf(ck, key, NULL, ck, shared, NT_KEY_LEN);
	nt_wipe(shared, sizeof(shared));
	return ok;
}

/* C = KDF1(C, E_pub); H = HASH(H ‖ E_pub): the "e" token with a PSK in the pattern. */
static void mix_ephemeral(uint8_t ck[static NT_HASH_LEN], uint8_t hash[static NT_HASH_LEN],
			  const uint8_t ephemeral[static NT_KEY_LEN])
{
	nt_kdf(ck, NULL, NULL, ck, ephemeral, NT_KEY_LEN);
	mix_hash(hash, ephemeral, NT_KEY_LEN);
}

/* ciphertext = AEAD(k, 0, plain, H); H = HASH(H ‖ ciphertext) */
static void encrypt_and_hash(uint8_t *dst, const uint8_t *plain, size_t len, const uint8_t key[static NT_KEY_LEN],
			     uint8_t hash[static NT_HASH_LEN])
{
	nt_aead_seal(dst, plain, len, hash, NT_HASH_LEN, 0, key);
	mix_hash(hash, dst, len + NT_AEAD_TAG_LEN);
}

static bool decrypt_and_hash(uint8_t *plain, const uint8_t *src, size_t len, const uint8_t key[static NT_KEY_LEN],
			     uint8_t hash[static NT_HASH_LEN])
{
	if (nt_aead_open(plain, src, len + NT_AEAD_TAG_LEN, hash, NT_HASH_LEN, 0, key))
		return false;
	mix_hash(hash, src, len + NT_AEAD_TAG_LEN);
	return true;
}

static void message_header(uint8_t *out, enum nt_message_type type)
{
	out[0] = (uint8_t)type;
	out[1] = out[2] = out[3] = 0;
}

void nt_noise_static_init(struct nt_noise_static *dev, const uint8_t private_key[NT_KEY_LEN])
{
	nt_wipe(dev, sizeof(*dev));
	nt_hash(dev->chaining_key0, CONSTRUCTION, sizeof(CONSTRUCTION) - 1);
	nt_hash2(dev->hash0, dev->chaining_key0, NT_HASH_LEN, IDENTIFIER, sizeof(IDENTIFIER) - 1);
	if (!private_key || nt_is_zero(private_key, NT_KEY_LEN))
		return;
	memcpy(dev->private_key, private_key, NT_KEY_LEN);
	dev->private_key[0] &= 248;
	dev->private_key[31] = (dev->private_key[31] & 127) | 64;
	if (nt_dh_public(dev->public_key, dev->private_key)) {
		nt_wipe(dev->private_key, NT_KEY_LEN);
		return;
	}
	nt_hash2(dev->responder_hash, dev->hash0, NT_HASH_LEN, dev->public_key, NT_KEY_LEN);
	dev->has_key = true;
}

void nt_noise_static_clear(struct nt_noise_static *dev)
{
	nt_wipe(dev, sizeof(*dev));
}

void nt_handshake_init(struct nt_handshake *hs, const struct nt_noise_static *dev,
		       const uint8_t remote_static[NT_KEY_LEN], const uint8_t *psk)
{
	uint8_t psk_copy[NT_KEY_LEN] = { 0 };
	uint8_t timestamp[NT_TAI64N_LEN];
	bool same_peer = nt_equal(hs->remote_static, remote_static, NT_KEY_LEN);

	/* Re-initialising the same peer (device key change) keeps its replay timestamp. The
	 * flood guard starts fresh: nothing made for the old key can be consumed any more, and
	 * the peer's first initiation to the new key must not wait out the old one's 1/50 s. */
	memcpy(timestamp, hs->latest_timestamp, NT_TAI64N_LEN);
	if (psk)
		memcpy(psk_copy, psk, NT_KEY_LEN);
	nt_wipe(hs, sizeof(*hs));
	memcpy(hs->remote_static, remote_static, NT_KEY_LEN);
	memcpy(hs->preshared_key, psk_copy, NT_KEY_LEN);
	nt_wipe(psk_copy, sizeof(psk_copy));
	if (same_peer)
		memcpy(hs->latest_timestamp, timestamp, NT_TAI64N_LEN);
	nt_hash2(hs->initiator_hash, dev->hash0, NT_HASH_LEN, remote_static, NT_KEY_LEN);
	hs->state = NT_HS_ZEROED;
	hs->static_static_valid = dev->has_key && nt_dh(hs->static_static, dev->private_key, remote_static) == 0;
}

void nt_handshake_set_psk(struct nt_handshake *hs, const uint8_t *psk)
{
	if (psk)
		memcpy(hs->preshared_key, psk, NT_KEY_LEN);
	else
		nt_wipe(hs->preshared_key, NT_KEY_LEN);
}

void nt_handshake_clear(struct nt_handshake *hs)
{
	nt_wipe(&hs->secrets, sizeof(hs->secrets));
	hs->state = NT_HS_ZEROED;
}

void nt_handshake_destroy(struct nt_handshake *hs)
{
	nt_wipe(hs, sizeof(*hs));
}

enum nt_status nt_noise_create_initiation(uint8_t out[static NT_INIT_LEN], struct nt_handshake *hs,
					  const struct nt_noise_static *dev, uint32_t sender_index,
					  uint64_t wall_ns, const struct nt_rng *rng)
{
	uint8_t key[NT_KEY_LEN], timestamp[NT_TAI64N_LEN];
	uint8_t *ephemeral = out + NT_INIT_OFF_EPHEMERAL;
	enum nt_status ret = NT_DROP_NO_KEY;

	nt_handshake_clear(hs);
	if (!dev->has_key || !hs->static_static_valid)
		goto out;

	memset(out, 0, NT_INIT_LEN);
	message_header(out, NT_MSG_INITIATION);
	nt_store_le32(out + NT_INIT_OFF_SENDER, sender_index);
	memcpy(hs->secrets.chaining_key, dev->chaining_key0, NT_HASH_LEN);
	memcpy(hs->secrets.hash, hs->initiator_hash, NT_HASH_LEN);

	/* e */
	nt_dh_generate(hs->secrets.ephemeral_private, ephemeral, rng);
	mix_ephemeral(hs->secrets.chaining_key, hs->secrets.hash, ephemeral);
	/* es */
	ret = NT_DROP_DH;
	if (!mix_dh(hs->secrets.chaining_key, key, hs->secrets.ephemeral_private, hs->remote_static))
		goto out;
	/* s */
	encrypt_and_hash(out + NT_INIT_OFF_STATIC, dev->public_key, NT_KEY_LEN, key, hs->secrets.hash);
	/* ss, precomputed */
	nt_kdf(hs->secrets.chaining_key, key, NULL, hs->secrets.chaining_key, hs->static_static, NT_KEY_LEN);
	/* {t} */
	nt_tai64n(timestamp, wall_ns);
	encrypt_and_hash(out + NT_INIT_OFF_TIMESTAMP, timestamp, NT_TAI64N_LEN, key, hs->secrets.hash);

	hs->local_index = sender_index;
	hs->state = NT_HS_CREATED_INITIATION;
	ret = NT_OK;
out:
	if (ret != NT_OK)
		nt_handshake_clear(hs);
	nt_wipe(key, sizeof(key));
	return ret;
}

enum nt_status nt_noise_consume_initiation(struct nt_handshake **hs_out, const uint8_t *msg, size_t len,
					   const struct nt_noise_static *dev, nt_peer_lookup_fn lookup,
					   void *lookup_ctx, uint64_t now)
{
	uint8_t ck[NT_HASH_LEN], hash[NT_HASH_LEN], key[NT_KEY_LEN];
	uint8_t remote_static[NT_KEY_LEN], timestamp[NT_TAI64N_LEN];
	const uint8_t *ephemeral = msg + NT_INIT_OFF_EPHEMERAL;
	struct nt_handshake *hs = NULL;
	enum nt_status ret = NT_DROP_SIZE;

	*hs_out = NULL;
	if (len != NT_INIT_LEN || nt_message_type(msg, len) != NT_MSG_INITIATION)
		goto out;
	ret = NT_DROP_NO_KEY;
	if (!dev->has_key)
		goto out;

	memcpy(ck, dev->chaining_key0, NT_HASH_LEN);
	memcpy(hash, dev->responder_hash, NT_HASH_LEN);
	/* e */
	mix_ephemeral(ck, hash, ephemeral);
	/* es */
	ret = NT_DROP_DH;
	if (!mix_dh(ck, key, dev->private_key, ephemeral))
		goto out;
	/* s */
	ret = NT_DROP_DECRYPT;
	if (!decrypt_and_hash(remote_static, msg + NT_INIT_OFF_STATIC, NT_KEY_LEN, key, hash))
		goto out;
	ret = NT_DROP_UNKNOWN_PEER;
	hs = lookup(lookup_ctx, remote_static);
	if (!hs)
		goto out;
	/* ss */
	ret = NT_DROP_NO_KEY;
	if (!hs->static_static_valid)
		goto out;
	nt_kdf(ck, key, NULL, ck, hs->static_static, NT_KEY_LEN);
	/* {t} */
	ret = NT_DROP_DECRYPT;
	if (!decrypt_and_hash(timestamp, msg + NT_INIT_OFF_TIMESTAMP, NT_TAI64N_LEN, key, hash))
		goto out;
	/* TAI64N is big-endian, so byte order is time order. */
	ret = NT_DROP_TIMESTAMP;
	if (memcmp(timestamp, hs->latest_timestamp, NT_TAI64N_LEN) <= 0)
		goto out;
	ret = NT_DROP_FLOOD;
	if (hs->has_consumed_initiation && now - hs->last_initiation_consumed < NT_NSEC_PER_SEC / NT_INITIATIONS_PER_SECOND)
		goto out;

	nt_handshake_clear(hs);
	memcpy(hs->secrets.remote_ephemeral, ephemeral, NT_KEY_LEN);
	memcpy(hs->secrets.chaining_key, ck, NT_HASH_LEN);
	memcpy(hs->secrets.hash, hash, NT_HASH_LEN);
	memcpy(hs->latest_timestamp, timestamp, NT_TAI64N_LEN);
	hs->last_initiation_consumed = now;
	hs->has_consumed_initiation = true;
	hs->remote_index = nt_load_le32(msg + NT_INIT_OFF_SENDER);
	hs->state = NT_HS_CONSUMED_INITIATION;
	*hs_out = hs;
	ret = NT_OK;
out:
	nt_wipe(ck, sizeof(ck));
	nt_wipe(hash, sizeof(hash));
	nt_wipe(key, sizeof(key));
	nt_wipe(remote_static, sizeof(remote_static));
	return ret;
}

/* The part both sides run after the ephemerals are known:
 * ee, se, psk: C = KDF1(C, ee); C = KDF1(C, se); (C, t, k) = KDF3(C, Q); H = HASH(H ‖ t). */
static void mix_response_keys(uint8_t ck[static NT_HASH_LEN], uint8_t hash[static NT_HASH_LEN],
			      uint8_t key[static NT_KEY_LEN], const uint8_t ee[static NT_KEY_LEN],
			      const uint8_t se[static NT_KEY_LEN], const uint8_t psk[static NT_KEY_LEN])
{
	uint8_t tau[NT_HASH_LEN];

	nt_kdf(ck, NULL, NULL, ck, ee, NT_KEY_LEN);
	nt_kdf(ck, NULL, NULL, ck, se, NT_KEY_LEN);
	nt_kdf(ck, tau, key, ck, psk, NT_KEY_LEN);
	mix_hash(hash, tau, NT_HASH_LEN);
	nt_wipe(tau, sizeof(tau));
}

enum nt_status nt_noise_create_response(uint8_t out[static NT_RESP_LEN], struct nt_handshake *hs,
					const struct nt_noise_static *dev, uint32_t sender_index,
					const struct nt_rng *rng)
{
	uint8_t key[NT_KEY_LEN], ee[NT_KEY_LEN], se[NT_KEY_LEN];
	uint8_t *ephemeral = out + NT_RESP_OFF_EPHEMERAL;
	enum nt_status ret = NT_DROP_STATE;

	(void)dev;
	if (hs->state != NT_HS_CONSUMED_INITIATION)
		goto out;

	memset(out, 0, NT_RESP_LEN);
	message_header(out, NT_MSG_RESPONSE);
	nt_store_le32(out + NT_RESP_OFF_SENDER, sender_index);
	nt_store_le32(out + NT_RESP_OFF_RECEIVER, hs->remote_index);

	/* e */
	nt_dh_generate(hs->secrets.ephemeral_private, ephemeral, rng);
	mix_ephemeral(hs->secrets.chaining_key, hs->secrets.hash, ephemeral);
	/* ee, se */
	ret = NT_DROP_DH;
	if (nt_dh(ee, hs->secrets.ephemeral_private, hs->secrets.remote_ephemeral) ||
	    nt_dh(se, hs->secrets.ephemeral_private, hs->remote_static))
		goto out;
	/* psk */
	mix_response_keys(hs->secrets.chaining_key, hs->secrets.hash, key, ee, se, hs->preshared_key);
	/* {} */
	encrypt_and_hash(out + NT_RESP_OFF_EMPTY, NULL, 0, key, hs->secrets.hash);

	hs->local_index = sender_index;
	hs->state = NT_HS_CREATED_RESPONSE;
	ret = NT_OK;
out:
	if (ret == NT_DROP_DH)
		nt_handshake_clear(hs);
	nt_wipe(key, sizeof(key));
	nt_wipe(ee, sizeof(ee));
	nt_wipe(se, sizeof(se));
	return ret;
}

void nt_noise_work_wipe(struct nt_initiation_work *w)
{
	nt_wipe(w, sizeof(*w));
}

void nt_noise_prepare_initiation(struct nt_initiation_work *w, const uint8_t *msg, size_t len,
				 const struct nt_noise_static *dev, nt_peer_lookup_fn lookup, void *lookup_ctx,
				 const struct nt_rng *rng)
{
	uint8_t key[NT_KEY_LEN], remote_static[NT_KEY_LEN], ee[NT_KEY_LEN], se[NT_KEY_LEN];
	const uint8_t *ephemeral = msg + NT_INIT_OFF_EPHEMERAL;
	struct nt_handshake *hs;

	nt_wipe(w, sizeof(*w));
	w->status = NT_DROP_SIZE;
	if (len != NT_INIT_LEN || nt_message_type(msg, len) != NT_MSG_INITIATION)
		goto out;
	w->status = NT_DROP_NO_KEY;
	if (!dev->has_key)
		goto out;

	memcpy(w->chaining_key, dev->chaining_key0, NT_HASH_LEN);
	memcpy(w->hash, dev->responder_hash, NT_HASH_LEN);
	/* e */
	mix_ephemeral(w->chaining_key, w->hash, ephemeral);
	/* es */
	w->status = NT_DROP_DH;
	if (!mix_dh(w->chaining_key, key, dev->private_key, ephemeral))
		goto out;
	/* s */
	w->status = NT_DROP_DECRYPT;
	if (!decrypt_and_hash(remote_static, msg + NT_INIT_OFF_STATIC, NT_KEY_LEN, key, w->hash))
		goto out;
	w->status = NT_DROP_UNKNOWN_PEER;
	hs = lookup(lookup_ctx, remote_static);
	if (!hs)
		goto out;
	/* ss */
	w->status = NT_DROP_NO_KEY;
	if (!hs->static_static_valid)
		goto out;
	nt_kdf(w->chaining_key, key, NULL, w->chaining_key, hs->static_static, NT_KEY_LEN);
	/* {t} */
	w->status = NT_DROP_DECRYPT;
	if (!decrypt_and_hash(w->timestamp, msg + NT_INIT_OFF_TIMESTAMP, NT_TAI64N_LEN, key, w->hash))
		goto out;
	memcpy(w->remote_ephemeral, ephemeral, NT_KEY_LEN);
	w->remote_index = nt_load_le32(msg + NT_INIT_OFF_SENDER);

	/* The response: e, ee, se (psk and {} wait for nt_noise_finish_response). */
	nt_dh_generate(w->ephemeral_private, w->ephemeral_public, rng);
	mix_ephemeral(w->chaining_key, w->hash, w->ephemeral_public);
	w->status = NT_DROP_DH;
	if (nt_dh(ee, w->ephemeral_private, w->remote_ephemeral) || nt_dh(se, w->ephemeral_private, remote_static))
		goto out;
	nt_kdf(w->chaining_key, NULL, NULL, w->chaining_key, ee, NT_KEY_LEN);
	nt_kdf(w->chaining_key, NULL, NULL, w->chaining_key, se, NT_KEY_LEN);
	w->hs = hs;
	w->status = NT_OK;
out:
	if (w->status != NT_OK) {
		enum nt_status st = w->status;
		nt_wipe(w, sizeof(*w));
		w->status = st;
	}
	nt_wipe(key, sizeof(key));
	nt_wipe(remote_static, sizeof(remote_static));
	nt_wipe(ee, sizeof(ee));
	nt_wipe(se, sizeof(se));
}

enum nt_status nt_noise_complete_initiation(struct nt_initiation_work *w, uint64_t now)
{
	struct nt_handshake *hs = w->hs;

	if (w->status != NT_OK || !hs)
		return w->status != NT_OK ? w->status : NT_DROP_STATE;
	/* TAI64N is big-endian, so byte order is time order. */
	if (memcmp(w->timestamp, hs->latest_timestamp, NT_TAI64N_LEN) <= 0)
		return NT_DROP_TIMESTAMP;
	if (hs->has_consumed_initiation && now - hs->last_initiation_consumed < NT_NSEC_PER_SEC / NT_INITIATIONS_PER_SECOND)
		return NT_DROP_FLOOD;
	nt_handshake_clear(hs);
	memcpy(hs->secrets.remote_ephemeral, w->remote_ephemeral, NT_KEY_LEN);
	memcpy(hs->secrets.ephemeral_private, w->ephemeral_private, NT_KEY_LEN);
	memcpy(hs->secrets.chaining_key, w->chaining_key, NT_HASH_LEN);
	memcpy(hs->secrets.hash, w->hash, NT_HASH_LEN);
	memcpy(hs->latest_timestamp, w->timestamp, NT_TAI64N_LEN);
	hs->last_initiation_consumed = now;
	hs->has_consumed_initiation = true;
	hs->remote_index = w->remote_index;
	hs->state = NT_HS_CONSUMED_INITIATION;
	return NT_OK;
}

enum nt_status nt_noise_finish_response(uint8_t out[static NT_RESP_LEN], struct nt_handshake *hs,
					const struct nt_initiation_work *w, uint32_t sender_index)
{
	uint8_t key[NT_KEY_LEN], tau[NT_HASH_LEN];

	if (hs->state != NT_HS_CONSUMED_INITIATION || hs != w->hs)
		return NT_DROP_STATE;
	memset(out, 0, NT_RESP_LEN);
	message_header(out, NT_MSG_RESPONSE);
	nt_store_le32(out + NT_RESP_OFF_SENDER, sender_index);
	nt_store_le32(out + NT_RESP_OFF_RECEIVER, hs->remote_index);
	memcpy(out + NT_RESP_OFF_EPHEMERAL, w->ephemeral_public, NT_KEY_LEN);
	/* psk: (C, t, k) = KDF3(C, Q); H = HASH(H ‖ t) */
	nt_kdf(hs->secrets.chaining_key, tau, key, hs->secrets.chaining_key, hs->preshared_key, NT_KEY_LEN);
	mix_hash(hs->secrets.hash, tau, NT_HASH_LEN);
	/* {} */
	encrypt_and_hash(out + NT_RESP_OFF_EMPTY, NULL, 0, key, hs->secrets.hash);
	hs->local_index = sender_index;
	hs->state = NT_HS_CREATED_RESPONSE;
	nt_wipe(key, sizeof(key));
	nt_wipe(tau, sizeof(tau));
	return NT_OK;
}

enum nt_status nt_noise_consume_response(struct nt_handshake *hs, const uint8_t *msg, size_t len,
					 const struct nt_noise_static *dev)
{
	uint8_t ck[NT_HASH_LEN], hash[NT_HASH_LEN], key[NT_KEY_LEN], ee[NT_KEY_LEN], se[NT_KEY_LEN];
	const uint8_t *ephemeral = msg + NT_RESP_OFF_EPHEMERAL;
	enum nt_status ret = NT_DROP_SIZE;

	if (len != NT_RESP_LEN || nt_message_type(msg, len) != NT_MSG_RESPONSE)
		goto out;
	ret = NT_DROP_STATE;
	if (hs->state != NT_HS_CREATED_INITIATION)
		goto out;
	ret = NT_DROP_INDEX;
	if (nt_load_le32(msg + NT_RESP_OFF_RECEIVER) != hs->local_index)
		goto out;
	ret = NT_DROP_NO_KEY;
	if (!dev->has_key)
		goto out;

	memcpy(ck, hs->secrets.chaining_key, NT_HASH_LEN);
	memcpy(hash, hs->secrets.hash, NT_HASH_LEN);
	/* e */
	mix_ephemeral(ck, hash, ephemeral);
	/* ee, se */
	ret = NT_DROP_DH;
	if (nt_dh(ee, hs->secrets.ephemeral_private, ephemeral) || nt_dh(se, dev->private_key, ephemeral))
		goto out;
	/* psk */
	mix_response_keys(ck, hash, key, ee, se, hs->preshared_key);
	/* {} */
	ret = NT_DROP_DECRYPT;
	if (!decrypt_and_hash(NULL, msg + NT_RESP_OFF_EMPTY, 0, key, hash))
		goto out;

	memcpy(hs->secrets.remote_ephemeral, ephemeral, NT_KEY_LEN);
	memcpy(hs->secrets.chaining_key, ck, NT_HASH_LEN);
	memcpy(hs->secrets.hash, hash, NT_HASH_LEN);
	hs->remote_index = nt_load_le32(msg + NT_RESP_OFF_SENDER);
	hs->state = NT_HS_CONSUMED_RESPONSE;
	ret = NT_OK;
out:
	nt_wipe(ck, sizeof(ck));
	nt_wipe(hash, sizeof(hash));
	nt_wipe(key, sizeof(key));
	nt_wipe(ee, sizeof(ee));
	nt_wipe(se, sizeof(se));
	return ret;
}

enum nt_status nt_noise_begin_session(struct nt_handshake *hs, struct nt_keypairs *kps, uint64_t now,
				      struct nt_keypair_drops *dropped)
{
	uint8_t first[NT_KEY_LEN], second[NT_KEY_LEN];
	struct nt_keypair *kp;
	bool initiator;

	if (hs->state == NT_HS_CONSUMED_RESPONSE)
		initiator = true;
	else if (hs->state == NT_HS_CREATED_RESPONSE)
		initiator = false;
	else
		return NT_DROP_STATE;

	/* (T_send_i, T_send_r) = KDF2(C, "") */
	nt_kdf(first, second, NULL, hs->secrets.chaining_key, NULL, 0);
	kp = nt_keypairs_install(kps, initiator, dropped);
	memcpy(kp->send_key, initiator ? first : second, NT_KEY_LEN);
	memcpy(kp->recv_key, initiator ? second : first, NT_KEY_LEN);
	kp->initiator = initiator;
	kp->birth = now;
	kp->send_counter = 0;
	kp->local_index = hs->local_index;
	kp->remote_index = hs->remote_index;
	nt_replay_init(&kp->replay);
	kp->valid = true;

	nt_handshake_clear(hs);
	nt_wipe(first, sizeof(first));
	nt_wipe(second, sizeof(second));
	return NT_OK;
}
