/* The daemon's engine (lib/engine.c) as a receiver, for fuzz_datagram and gen_seeds.
 *
 * Two in-process engines: D, the one under test, and P, its only peer, which built a real
 * session with D at setup (handshake A, initiated by P for a packet it staged and
 * confirmed by that packet) and answered an initiation of D's (handshake B: D holds P's response and cookie
 * reply as valid, not yet consumed messages). Everything is deterministic: fixed keys, a
 * counter-based rng, a fake clock. The state after setup is the baseline; every input
 * starts from a memcpy of it, so an input's outcome depends on that input alone.
 *
 * Each delivery is one receive batch: decrypted packets queue up for the TUN as in the
 * daemon and are written at its end (or when the queue is full): with the TUN's vnet
 * header on, through nt_offload_coalesce first, whose merges are checked against the
 * segments they absorbed.
 *
 * Input format (fz_run_input):
 *   byte 0, flags: bit 0 clear: "single" form, the rest of the input is one datagram;
 *     bit 1 under load, bits 2-3 source, bits 4-6 time step, bit 7 run timers after;
 *     vnet on.
 *   bit 0 set: "program" form, bit 1 vnet off, bit 2 one batch (D's datagrams go to the
 *     engine together at a timer step or the end, as one recvmmsg's would); the rest is
 *     up to FZ_MAX_STEPS steps, each op byte: bits 0-1 kind, bit 2 under load, bits 3-4
 *     source, bits 5-7 time step (added to the clock before the step), then by kind:
 *     FZ_STEP_RAW:      u16 length (LE; bit 15 FZ_RAW_GRO: a u16 UDP_GRO segment size
 *                       follows, and the datagram is split at it as receive_udp does,
 *                       any count of segments), then the datagram (clipped to what is left)
 *     FZ_STEP_TEMPLATE: t byte (bits 0-3 template, FZ_T_* flags above), [i8 resize if
 *                       FZ_T_RESIZE], n byte (XOR edits, at most 64), n x (u16 pos, u8 xor)
 *     FZ_STEP_CRAFT:    c byte (FZ_C_*), then its arguments (see receiver.c)
 *     FZ_STEP_TIMERS:   nothing: fire D's due timers, as the daemon's timerfd would
 */
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FZ_MAX_STEPS 16

enum fz_flags {
	FZ_F_PROGRAM   = 1 << 0,
	FZ_F_LOAD      = 1 << 1, /* single form */
	FZ_F_NO_VNET   = 1 << 1, /* program form */
	FZ_F_BATCH     = 1 << 2, /* program form: D's datagrams form one batch up to a timer step */
	FZ_F_SRC_SHIFT = 2,
	FZ_F_TIME_SHIFT = 4,
	FZ_F_TIMERS    = 1 << 7,
};

enum fz_step_kind { FZ_STEP_RAW, FZ_STEP_TEMPLATE, FZ_STEP_CRAFT, FZ_STEP_TIMERS };
#define FZ_OP_LOAD       (1 << 2)
#define FZ_OP_SRC_SHIFT  3
#define FZ_OP_TIME_SHIFT 5

/* Sources: 0 is P's endpoint (the only source P's cookie, hence mac2, is valid for). */
enum fz_source { FZ_SRC_PEER, FZ_SRC_OTHER4, FZ_SRC_V6, FZ_SRC_V6_SAME64 };

/* Time steps, indexed by the 3-bit field. */
#define FZ_TIME_STEPS 8

/* Templates: valid messages from the baseline. */
enum fz_template {
	FZ_TPL_INIT,          /* P: new initiation, newer timestamp, mac1 + mac2 valid for source 0 */
	FZ_TPL_INIT_REPLAY,   /* P: initiation A again (its timestamp was consumed) */
	FZ_TPL_INIT_UNKNOWN,  /* from a key D does not know */
	FZ_TPL_RESP,          /* P: response B to D's pending initiation */
	FZ_TPL_COOKIE,        /* P: cookie reply to D's initiation B */
	FZ_TPL_DATA_KEEPALIVE,/* P on keypair A, fresh counters from here on */
	FZ_TPL_DATA_V4,       /* IPv4 from 10.0.0.2 (P's) */
	FZ_TPL_DATA_V6,       /* IPv6 from fd00::2 (P's) */
	FZ_TPL_DATA_SPOOF4,   /* IPv4 from 10.9.9.9 (another peer's prefix) */
	FZ_TPL_DATA_SPOOF6,   /* IPv6 from 2001:db8::9 (another peer's prefix) */
	FZ_TPL_DATA_REPLAY,   /* the data message that confirmed A: a replay */
	FZ_TPL_DATA_B,        /* P on keypair B (exists at D once FZ_TPL_RESP is consumed) */
	FZ_TPL_DATA_BIG,      /* a 1420-byte IPv4 packet */
	FZ_TPL_DATA_BADLEN,   /* IPv4 whose total length exceeds the packet */
	FZ_TPL_INIT_NOMAC2,   /* FZ_TPL_INIT with mac2 zeroed: under load, a cookie reply */
	FZ_TPL_RESP_NOMAC2,
	FZ_TPL_COUNT
};
#define FZ_T_MAC1    (1 << 4) /* recompute mac1 after the edits (handshake lengths) */
#define FZ_T_MAC2    (1 << 5) /* recompute mac2 with P's cookie */
#define FZ_T_RESIZE  (1 << 6) /* an i8 follows: new length = template length + it */
#define FZ_T_RESEAL  (1 << 7) /* data: edit the plaintext, then seal it again */

enum fz_craft {
	FZ_C_DATA,      /* u8 k (FZ_CD_*), [counter], u16 length, plaintext */
	FZ_C_INIT,      /* i32 seconds vs FZ_TPL_INIT's timestamp, u32 sender, u8 (bit 0: no mac2) */
	FZ_C_LOWORDER,  /* u8: bit 0 response (else initiation), bits 1-3 which low-order point */
	FZ_C_RESP,      /* u32 sender, u8 (bit 0: no mac2, bit 1: answer D's latest initiation
			 * in its outbox instead): P answers D's initiation B afresh */
	FZ_C_GRO,       /* u8 k (FZ_CD_*), [counter], u8 count, u16 segment length, u16 last
			 * length, plaintexts: one UDP GRO super-datagram of data messages */
	FZ_C_COUNT
};
/* Data crafting: keypair, counter, checksums. */
#define FZ_CD_KEYPAIR_B   (1 << 0)
#define FZ_CD_COUNTER_SHIFT 1 /* 0: next fresh, 1: base + u8, 2: base - 1 - u8, 3: raw u64 */
#define FZ_CD_FIX_CSUM    (1 << 3) /* fix IP lengths and IPv4/TCP checksums before sealing */
#define FZ_GRO_MAX_SEGMENTS 128 /* the kernel's UDP_MAX_SEGMENTS: what a GSO sender gets through */
#define FZ_RAW_GRO (1u << 15)

/* What one input did, for gen_seeds to check that its seeds reach where they should. */
struct fz_outcome {
	unsigned initiations_accepted, responses_accepted, cookies_accepted;
	unsigned data_accepted, keepalives_accepted, tun_writes, coalesced;
	unsigned sent_responses, sent_initiations, sent_cookie_replies, sent_keepalives;
	unsigned confirmed, drops_source, drops_malformed, drops_index;
	unsigned drops[16];
};

/* Build the scenario (calls nt_crypto_init); aborts on any failure. */
void fz_setup(void);
/* Run one input from the baseline; *out (may be NULL) gets what happened. */
void fz_run_input(const uint8_t *data, size_t size, struct fz_outcome *out);
/* fuzz_tun: the same scenario without "another peer" (every route leads to P), then
 * inputs of up to FZ_MAX_STEPS steps, each an op byte (bits 0-2 kind, bits 5-7 time
 * step): 0 a raw TUN packet (u16 length, bytes), 1-2 a packet whose IP header the harness
 * builds (u8 selector: bits 0-1 destination, bit 2 IPv6, bit 3 a short read; u16 total
 * length mod 2048; payload), 3 D's timers, 4 D's latest initiation answered by P, 5 P's
 * baseline response B, 6 the link down and up, 7 a keepalive from P. Every data message D
 * sends must open at P and hold a packet given, addressed to P's prefixes. */
void fz_setup_tun(void);
void fz_run_tun_input(const uint8_t *data, size_t size);
/* A template's bytes (for gen_seeds). */
const uint8_t *fz_template(enum fz_template t, size_t *len);

#endif
