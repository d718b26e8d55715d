/* Wire format and protocol constants of WireGuard (see shared/docs/protocol.md).
 * Every integer on the wire is little-endian; messages are read and written with the
 * explicit loads and stores below, never by casting packed structs onto buffers. */
#ifndef NOISETUN_MESSAGES_H
#define NOISETUN_MESSAGES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NT_KEY_LEN        32
#define NT_HASH_LEN       32
#define NT_MAC_LEN        16
#define NT_AEAD_TAG_LEN   16
#define NT_TAI64N_LEN     12
#define NT_COOKIE_LEN     16
#define NT_COOKIE_NONCE_LEN 24

enum nt_message_type {
	NT_MSG_INITIATION = 1,
	NT_MSG_RESPONSE   = 2,
	NT_MSG_COOKIE     = 3,
	NT_MSG_DATA       = 4,
};

/* type 1: type, reserved[3], sender, ephemeral[32], static[32+16], timestamp[12+16], mac1, mac2 */
#define NT_INIT_OFF_SENDER     4
#define NT_INIT_OFF_EPHEMERAL  8
#define NT_INIT_OFF_STATIC     40
#define NT_INIT_OFF_TIMESTAMP  88
#define NT_INIT_OFF_MAC1       116
#define NT_INIT_OFF_MAC2       132
#define NT_INIT_LEN            148

/* type 2: type, reserved[3], sender, receiver, ephemeral[32], empty[0+16], mac1, mac2 */
#define NT_RESP_OFF_SENDER     4
#define NT_RESP_OFF_RECEIVER   8
#define NT_RESP_OFF_EPHEMERAL  12
#define NT_RESP_OFF_EMPTY      44
#define NT_RESP_OFF_MAC1       60
#define NT_RESP_OFF_MAC2       76
#define NT_RESP_LEN            92

/* type 3: type, reserved[3], receiver, nonce[24], cookie[16+16] */
#define NT_COOKIE_OFF_RECEIVER 4
#define NT_COOKIE_OFF_NONCE    8
#define NT_COOKIE_OFF_COOKIE   32
#define NT_COOKIE_MSG_LEN      64

/* type 4: type, reserved[3], receiver, counter u64, packet[n+16] */
#define NT_DATA_OFF_RECEIVER   4
#define NT_DATA_OFF_COUNTER    8
#define NT_DATA_OFF_PACKET     16
#define NT_DATA_HEADER_LEN     16
#define NT_DATA_MIN_LEN        (NT_DATA_HEADER_LEN + NT_AEAD_TAG_LEN) /* a keepalive: 32 */
#define NT_DATA_PAD            16

_Static_assert(NT_INIT_OFF_MAC2 + NT_MAC_LEN == NT_INIT_LEN, "initiation is 148 bytes");
_Static_assert(NT_RESP_OFF_MAC2 + NT_MAC_LEN == NT_RESP_LEN, "response is 92 bytes");
_Static_assert(NT_COOKIE_OFF_COOKIE + NT_COOKIE_LEN + NT_AEAD_TAG_LEN == NT_COOKIE_MSG_LEN,
	       "cookie reply is 64 bytes");
_Static_assert(NT_DATA_MIN_LEN == 32, "a keepalive is 32 bytes");

/* Timers and limits (whitepaper section 6). Times are in nanoseconds. */
#define NT_NSEC_PER_SEC          1000000000ULL
#define NT_REKEY_AFTER_MESSAGES  (1ULL << 60)
#define NT_REJECT_AFTER_MESSAGES (UINT64_MAX - (1ULL << 13)) /* 2^64 - 2^13 - 1 */
#define NT_REKEY_AFTER_TIME      (120 * NT_NSEC_PER_SEC)
#define NT_REJECT_AFTER_TIME     (180 * NT_NSEC_PER_SEC)
#define NT_REKEY_ATTEMPT_TIME    (90 * NT_NSEC_PER_SEC)
#define NT_REKEY_TIMEOUT         (5 * NT_NSEC_PER_SEC)
#define NT_REKEY_TIMEOUT_JITTER_MAX (NT_NSEC_PER_SEC / 3)
#define NT_KEEPALIVE_TIMEOUT     (10 * NT_NSEC_PER_SEC)
#define NT_COOKIE_SECRET_MAX_AGE (120 * NT_NSEC_PER_SEC)
#define NT_COOKIE_SECRET_LATENCY (5 * NT_NSEC_PER_SEC)
#define NT_INITIATIONS_PER_SECOND 50
#define NT_MAX_TIMER_HANDSHAKES  (NT_REKEY_ATTEMPT_TIME / NT_REKEY_TIMEOUT) /* 18 */
#define NT_MAX_STAGED_PACKETS    128
#define NT_DEFAULT_MTU           1420

static inline uint32_t nt_load_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t nt_load_le64(const uint8_t *p)
{
	return (uint64_t)nt_load_le32(p) | (uint64_t)nt_load_le32(p + 4) << 32;
}

static inline void nt_store_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static inline void nt_store_le64(uint8_t *p, uint64_t v)
{
	nt_store_le32(p, (uint32_t)v);
	nt_store_le32(p + 4, (uint32_t)(v >> 32));
}

/* The message type of a datagram, or 0 when its first word is not a valid header. */
static inline enum nt_message_type nt_message_type(const uint8_t *buf, size_t len)
{
	if (len < 4 || buf[1] | buf[2] | buf[3])
		return 0;
	if (buf[0] < NT_MSG_INITIATION || buf[0] > NT_MSG_DATA)
		return 0;
	return (enum nt_message_type)buf[0];
}

/* Why the core refused a message: a named result that feeds drop counters and debug logs.
 * 0 is success; never an errno (errno belongs to syscalls and the control wire). */
enum nt_status {
	NT_OK = 0,
	NT_DROP_SIZE,          /* wrong length for its type */
	NT_DROP_NO_KEY,        /* no private key, or the peer's key gives a low-order DH */
	NT_DROP_DH,            /* a DH result was all zeros */
	NT_DROP_DECRYPT,       /* an AEAD tag did not verify */
	NT_DROP_UNKNOWN_PEER,  /* no peer has that static key */
	NT_DROP_TIMESTAMP,     /* initiation not newer than the last one accepted (replay) */
	NT_DROP_FLOOD,         /* initiation within 1/50 s of the last accepted one */
	NT_DROP_STATE,         /* the handshake is not in the state this message needs */
	NT_DROP_INDEX,         /* the receiver index does not match */
	NT_DROP_EXPIRED,       /* the keypair is too old or past its message limit */
	NT_DROP_REPLAY,        /* counter seen before or too old for the window */
	NT_DROP_MALFORMED,     /* the inner packet is not a valid IP packet */
	NT_STATUS_MAX
};

/* A short name for a status, for logs ("ok", "size", "decrypt", ...). */
static inline const char *nt_status_name(enum nt_status s)
{
	static const char *const names[NT_STATUS_MAX] = {
		"ok", "size", "no-key", "dh", "decrypt", "unknown-peer", "timestamp",
		"flood", "state", "index", "expired", "replay", "malformed",
	};
	return (unsigned)s < NT_STATUS_MAX ? names[s] : "?";
}

/* Randomness enters the core only through this callback, so tests can be deterministic. */
struct nt_rng {
	void (*fill)(void *ctx, void *buf, size_t len);
	void *ctx;
};

static inline void nt_rng_fill(const struct nt_rng *rng, void *buf, size_t len)
{
	rng->fill(rng->ctx, buf, len);
}

#endif
