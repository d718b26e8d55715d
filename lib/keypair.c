/* Transport keypairs: seal/open of type-4 messages and the three-slot rotation.
 *
 * Rotation (protocol.md "Transport", key confirmation):
 *   initiator's new keypair: usable at once. If a `next` was pending it becomes `previous`
 *     and the old current is dropped; else current becomes previous. The old previous goes.
 *   responder's new keypair: waits as `next`; any old next and previous are dropped.
 *   data authenticated on `next`: next -> current -> previous; the old previous goes.
 */
#include "noisetun/keypair.h"

static void drop_slot(struct nt_keypairs *kps, int8_t *which, struct nt_keypair_drops *dropped)
{
	struct nt_keypair *kp;

	if (*which < 0)
		return;
	kp = &kps->slot[*which];
	if (dropped && dropped->count < 3)
		dropped->index[dropped->count++] = kp->local_index;
	nt_keypair_release(kp);
	*which = -1;
}

void nt_keypair_release(struct nt_keypair *kp)
{
	nt_cipher_free(kp->send_cipher);
	nt_cipher_free(kp->recv_cipher);
	nt_wipe(kp, sizeof(*kp));
}

void nt_keypairs_init(struct nt_keypairs *kps)
{
	nt_wipe(kps, sizeof(*kps));
	kps->next = kps->current = kps->previous = -1;
}

void nt_keypairs_clear(struct nt_keypairs *kps, struct nt_keypair_drops *dropped)
{
	drop_slot(kps, &kps->next, dropped);
	drop_slot(kps, &kps->current, dropped);
	drop_slot(kps, &kps->previous, dropped);
}

static int8_t free_slot(const struct nt_keypairs *kps)
{
	for (int8_t i = 0; i < 3; i++)
		if (i != kps->next && i != kps->current && i != kps->previous)
			return i;
	return -1;
}

struct nt_keypair *nt_keypairs_install(struct nt_keypairs *kps, bool initiator, struct nt_keypair_drops *dropped)
{
	int8_t slot;

	if (initiator) {
		drop_slot(kps, &kps->previous, dropped);
		if (kps->next >= 0) {
			drop_slot(kps, &kps->current, dropped);
			kps->previous = kps->next;
			kps->next = -1;
		} else {
			kps->previous = kps->current;
			kps->current = -1;
		}
		slot = free_slot(kps);
		kps->current = slot;
	} else {
		drop_slot(kps, &kps->next, dropped);
		drop_slot(kps, &kps->previous, dropped);
		slot = free_slot(kps);
		kps->next = slot;
	}
	/* At most two slots are referenced after the drops above, so one is always free. */
	nt_wipe(&kps->slot[slot], sizeof(kps->slot[slot]));
	return &kps->slot[slot];
}

struct nt_keypair *nt_keypairs_find(struct nt_keypairs *kps, uint32_t idx)
{
	const int8_t order[3] = { kps->current, kps->previous, kps->next };

	for (int i = 0; i < 3; i++)
		if (order[i] >= 0 && kps->slot[order[i]].valid && kps->slot[order[i]].local_index == idx)
			return &kps->slot[order[i]];
	return NULL;
}

bool nt_keypairs_confirm(struct nt_keypairs *kps, const struct nt_keypair *kp, struct nt_keypair_drops *dropped)
{
	if (kps->next < 0 || kp != &kps->slot[kps->next])
		return false;
	drop_slot(kps, &kps->previous, dropped);
	kps->previous = kps->current;
	kps->current = kps->next;
	kps->next = -1;
	return true;
}

bool nt_keypair_usable(const struct nt_keypair *kp, uint64_t now, uint64_t counter)
{
	return kp->valid && now - kp->birth < NT_REJECT_AFTER_TIME && counter < NT_REJECT_AFTER_MESSAGES;
}

static size_t padded_len(size_t len, size_t mtu)
{
	size_t padded = (len + NT_DATA_PAD - 1) & ~(size_t)(NT_DATA_PAD - 1);

	/* Padding never pushes a packet past the MTU; a packet already over it stays as is. */
	if (padded > mtu)
		padded = len > mtu ? len : mtu;
	return padded;
}

size_t nt_keypair_sealed_len(size_t len, size_t mtu)
{
	return NT_DATA_HEADER_LEN + padded_len(len, mtu) + NT_AEAD_TAG_LEN;
}

/* Up to this many padded bytes (a 64-byte UDP payload's 96, pings, TCP ACKs) libsodium's
 * one-shot AEAD (nt_aead_seal/open) costs less than the OpenSSL cipher, whose per-message
 * IV reset (EVP_EncryptInit_ex: a parameter lookup by name) and two updates outweigh a
 * two-block ChaCha20: 96 bytes 560 -> 484 ns sealing, 567 -> 473 opening (issue 19).
 * Same bytes on the wire either way (RFC 8439). */
#define NT_SMALL_AEAD_MAX 112

int nt_transport_seal(struct nt_cipher **c, const uint8_t key[static NT_KEY_LEN], uint8_t *body, size_t padded,
		      uint64_t counter)
{
	if (padded <= NT_SMALL_AEAD_MAX || (!*c && !(*c = nt_cipher_new(key)))) {
		nt_aead_seal(body, body, padded, NULL, 0, counter, key);
		return 0;
	}
	return nt_cipher_seal(*c, body, body, padded, counter);
}

int nt_transport_open(struct nt_cipher **c, const uint8_t key[static NT_KEY_LEN], uint8_t *dst, const uint8_t *src,
		      size_t len, uint64_t counter)
{
	if (len - NT_AEAD_TAG_LEN <= NT_SMALL_AEAD_MAX || (!*c && !(*c = nt_cipher_new(key))))
		return nt_aead_open(dst, src, len, NULL, 0, counter, key);
	return nt_cipher_open(*c, dst, src, len, counter);
}

enum nt_status nt_keypair_seal_prepare(struct nt_keypair *kp, uint8_t *out, size_t *outlen, const uint8_t *pkt,
				       size_t len, size_t mtu, uint64_t now, uint64_t *counter, size_t *padded)
{
	uint8_t *body = out + NT_DATA_OFF_PACKET;

	*padded = padded_len(len, mtu);
	*counter = kp->send_counter;
	if (!nt_keypair_usable(kp, now, *counter))
		return NT_DROP_EXPIRED;
	kp->send_counter++;

	if (len && pkt != body)
		memmove(body, pkt, len);
	memset(body + len, 0, *padded - len);
	out[0] = NT_MSG_DATA;
	out[1] = out[2] = out[3] = 0;
	nt_store_le32(out + NT_DATA_OFF_RECEIVER, kp->remote_index);
	nt_store_le64(out + NT_DATA_OFF_COUNTER, *counter);
	*outlen = NT_DATA_HEADER_LEN + *padded + NT_AEAD_TAG_LEN;
	return NT_OK;
}

enum nt_status nt_keypair_seal(struct nt_keypair *kp, uint8_t *out, size_t *outlen, const uint8_t *pkt,
			       size_t len, size_t mtu, uint64_t now)
{
	enum nt_status st;
	uint64_t counter;
	size_t padded;

	st = nt_keypair_seal_prepare(kp, out, outlen, pkt, len, mtu, now, &counter, &padded);
	if (st != NT_OK)
		return st;
	if (nt_transport_seal(&kp->send_cipher, kp->send_key, out + NT_DATA_OFF_PACKET, padded, counter))
		return NT_DROP_NO_KEY; /* OpenSSL failed mid-way: the body is not ours to resend */
	return NT_OK;
}

enum nt_status nt_keypair_open_check(const struct nt_keypair *kp, const uint8_t *msg, size_t len, uint64_t now,
				     uint64_t *counter)
{
	if (len < NT_DATA_MIN_LEN || nt_message_type(msg, len) != NT_MSG_DATA)
		return NT_DROP_SIZE;
	if (nt_load_le32(msg + NT_DATA_OFF_RECEIVER) != kp->local_index)
		return NT_DROP_INDEX;
	*counter = nt_data_counter(msg);
	if (!nt_keypair_usable(kp, now, *counter))
		return NT_DROP_EXPIRED;
	if (!nt_replay_check(&kp->replay, *counter))
		return NT_DROP_REPLAY;
	return NT_OK;
}

enum nt_status nt_keypair_open(struct nt_keypair *kp, uint8_t *plain, size_t *plainlen, const uint8_t *msg,
			       size_t len, uint64_t now)
{
	enum nt_status st;
	uint64_t counter;

	st = nt_keypair_open_check(kp, msg, len, now, &counter);
	if (st != NT_OK)
		return st;
	if (nt_transport_open(&kp->recv_cipher, kp->recv_key, plain, msg + NT_DATA_OFF_PACKET, len - NT_DATA_HEADER_LEN,
			      counter))
		return NT_DROP_DECRYPT;
	if (!nt_replay_update(&kp->replay, counter))
		return NT_DROP_REPLAY;
	*plainlen = len - NT_DATA_MIN_LEN;
	return NT_OK;
}

size_t nt_ip_packet_len(const uint8_t *pkt, size_t len)
{
	size_t claimed;

	if (len < 1)
		return 0;
	switch (pkt[0] >> 4) {
	case 4:
		if (len < 20 || (pkt[0] & 0x0f) < 5)
			return 0;
		claimed = (size_t)pkt[2] << 8 | pkt[3];
		if (claimed < (size_t)(pkt[0] & 0x0f) * 4)
			return 0;
		break;
	case 6:
		if (len < 40)
			return 0;
		claimed = 40 + ((size_t)pkt[4] << 8 | pkt[5]);
		break;
	default:
		return 0;
	}
	return claimed <= len ? claimed : 0;
}
