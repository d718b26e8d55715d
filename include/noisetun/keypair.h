/* Transport keypairs: sealing and opening type-4 messages, their limits by age and count,
 * and the next/current/previous rotation with key confirmation (protocol.md "Transport"). */
#ifndef NOISETUN_KEYPAIR_H
#define NOISETUN_KEYPAIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "noisetun/crypto.h"
#include "noisetun/messages.h"
#include "noisetun/replay.h"

struct nt_keypair {
	bool valid;
	bool initiator;            /* we sent the initiation that made it */
	uint8_t send_key[NT_KEY_LEN];
	uint8_t recv_key[NT_KEY_LEN];
	uint64_t send_counter;     /* next counter to use */
	uint64_t birth;            /* monotonic ns */
	uint32_t local_index;      /* ours: the receiver index peers put in type-4 messages */
	uint32_t remote_index;     /* theirs: what we put in ours */
	struct nt_replay replay;
	/* The keys as OpenSSL ciphers, made at the first seal/open; nt_keypair_release
	 * (and every drop from a struct nt_keypairs) frees them. NULL: not yet, or failed. */
	struct nt_cipher *send_cipher, *recv_cipher;
};

/* Free a keypair's ciphers and wipe it; for a keypair outside a struct nt_keypairs. */
void nt_keypair_release(struct nt_keypair *kp);

/* A peer's three slots, preallocated; next/current/previous are slot numbers or -1. */
struct nt_keypairs {
	struct nt_keypair slot[3];
	int8_t next, current, previous;
};

/* Local indices of keypairs a rotation or a clear dropped, so the caller can forget them. */
struct nt_keypair_drops {
	uint32_t index[3];
	unsigned count;
};

void nt_keypairs_init(struct nt_keypairs *kps);
/* Drop (and wipe) every keypair; their indices go to dropped (may be NULL). */
void nt_keypairs_clear(struct nt_keypairs *kps, struct nt_keypair_drops *dropped);

/* Make room for a new keypair and return the slot to fill; the rotation follows who
 * initiated: the initiator's new keypair becomes current at once, the responder's waits as
 * next until the peer confirms it by sending on it. Used by nt_noise_begin_session. */
struct nt_keypair *nt_keypairs_install(struct nt_keypairs *kps, bool initiator, struct nt_keypair_drops *dropped);

static inline struct nt_keypair *nt_keypairs_current(struct nt_keypairs *kps)
{
	return kps->current >= 0 ? &kps->slot[kps->current] : NULL;
}

/* The keypair (current, previous or next) whose local index is idx, or NULL. */
struct nt_keypair *nt_keypairs_find(struct nt_keypairs *kps, uint32_t idx);

/* A message was authenticated on kp: if kp is `next`, promote it to current (the old
 * current becomes previous; the old previous is dropped). true when this confirmed it. */
bool nt_keypairs_confirm(struct nt_keypairs *kps, const struct nt_keypair *kp, struct nt_keypair_drops *dropped);

/* May kp still carry traffic at now (age < REJECT_AFTER_TIME, counter < REJECT_AFTER_MESSAGES)? */
bool nt_keypair_usable(const struct nt_keypair *kp, uint64_t now, uint64_t counter);

/* The size a sealed packet of len bytes takes on the wire under mtu (header, padding, tag). */
size_t nt_keypair_sealed_len(size_t len, size_t mtu);

/* Seal an IP packet (len 0: a keepalive) into a type-4 message. out needs
 * nt_keypair_sealed_len(len, mtu) bytes; pkt may sit at out + 16 (sealed in place, then
 * the bytes up to the padded length must be writable). *outlen gets the message length. */
enum nt_status nt_keypair_seal(struct nt_keypair *kp, uint8_t *out, size_t *outlen, const uint8_t *pkt,
			       size_t len, size_t mtu, uint64_t now) NT_WARN_UNUSED;

/* The seal in two steps, for sealing in batches (lib/engine.c): prepare does all but the
 * AEAD (the limits, the counter taken, header, text moved and padded; *outlen as above)
 * and gives the counter and padded length; nt_transport_seal then seals the padded body
 * at out + 16 in place, on any thread, with the key the keypair had. */
enum nt_status nt_keypair_seal_prepare(struct nt_keypair *kp, uint8_t *out, size_t *outlen, const uint8_t *pkt,
				       size_t len, size_t mtu, uint64_t now, uint64_t *counter,
				       size_t *padded) NT_WARN_UNUSED;
/* The transport AEAD (no associated data): with *c, made from key at first use and kept by
 * the caller (a keypair's, a worker's: one key per cipher), or libsodium's one-shot for
 * bodies of a few blocks and when OpenSSL fails. Seal is in place (tag after the body);
 * open takes the body with its tag (len >= 16) and writes len - 16 bytes to dst. 0 or -1. */
int nt_transport_seal(struct nt_cipher **c, const uint8_t key[static NT_KEY_LEN], uint8_t *body, size_t padded,
		      uint64_t counter) NT_WARN_UNUSED;
int nt_transport_open(struct nt_cipher **c, const uint8_t key[static NT_KEY_LEN], uint8_t *dst, const uint8_t *src,
		      size_t len, uint64_t counter) NT_WARN_UNUSED;

/* The counter of a type-4 message, for the replay pre-check. */
static inline uint64_t nt_data_counter(const uint8_t *msg)
{
	return nt_load_le64(msg + NT_DATA_OFF_COUNTER);
}

/* Open a type-4 message on kp (the caller found kp by the receiver index): checks size,
 * age and count, the replay window before decrypting and marks it after. plain gets
 * len - 32 bytes (may be msg + 16: opened in place); *plainlen the padded length. */
enum nt_status nt_keypair_open(struct nt_keypair *kp, uint8_t *plain, size_t *plainlen, const uint8_t *msg,
			       size_t len, uint64_t now) NT_WARN_UNUSED;
/* The open in steps, for opening in batches: the checks before decrypting (size, index,
 * age, count, the replay window; *counter the message's), then nt_transport_open on any
 * thread, then nt_replay_update(&kp->replay, counter) once it authenticated. */
enum nt_status nt_keypair_open_check(const struct nt_keypair *kp, const uint8_t *msg, size_t len, uint64_t now,
				     uint64_t *counter) NT_WARN_UNUSED;

/* The length an inner IP packet claims for itself (IPv4 total length or IPv6 payload + 40),
 * checked against the len bytes we have; 0 when it is not a well-formed IP header. */
size_t nt_ip_packet_len(const uint8_t *pkt, size_t len);

#endif
