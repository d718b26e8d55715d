/* Per-peer protocol timers as deadlines (whitepaper section 6; rules listed in lib/timers.c).
 *
 * The core never reads a clock: `now` is monotonic nanoseconds (0 is a valid time) and
 * `jitter` is a caller-chosen random value, reduced modulo NT_REKEY_TIMEOUT_JITTER_MAX, so a
 * raw 64-bit random number may be passed. The daemon calls the event hooks below as packets
 * move, arms one device timerfd at the minimum of nt_timers_next_deadline() over its peers,
 * and when it fires calls nt_timers_expire(now) on each peer whose deadline is <= now.
 * Any hook may move a peer's deadline earlier: re-read nt_timers_next_deadline() after
 * handling an event and re-arm the timerfd if it is sooner than what is armed.
 *
 * Which hooks to call for each packet (mirrors the Linux kernel):
 *   initiation sent        any_authenticated_packet_sent, _traversal, handshake_initiated
 *   response sent          any_authenticated_packet_sent, _traversal, session_derived
 *   data or keepalive sent any_authenticated_packet_sent, _traversal; data_sent if payload > 0
 *   initiation received    any_authenticated_packet_received, _traversal (valid ones only)
 *   response received      any_authenticated_packet_received, _traversal, handshake_complete,
 *                          session_derived
 *   data or keepalive rcvd any_authenticated_packet_received, _traversal; data_received if
 *                          payload > 0; handshake_complete if it confirmed the `next` keypair
 * Keepalives and initiations that expire() asked for are packets like any other: call their
 * hooks too (so a keepalive cancels a re-armed "another keepalive", as in the kernel).
 * A deadline may be <= now, even 0: expire at once (timerfd_settime treats 0 as "disarm").
 */
#ifndef NOISETUN_TIMERS_H
#define NOISETUN_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#include "noisetun/messages.h"

struct nt_deadline {
	uint64_t at;
	bool armed;
};

struct nt_timers {
	struct nt_deadline retransmit_handshake;  /* initiation sent, no response yet */
	struct nt_deadline send_keepalive;        /* passive keepalive after received data */
	struct nt_deadline new_handshake;         /* data sent, nothing received back */
	struct nt_deadline zero_key_material;     /* erase every key of the peer */
	struct nt_deadline persistent_keepalive;
	uint64_t last_initiation_sent;
	bool initiation_sent;                     /* last_initiation_sent is meaningful */
	uint64_t last_traversal;
	bool traversed;                           /* last_traversal is meaningful */
	unsigned handshake_attempts;              /* retries of the current handshake */
	bool need_another_keepalive;
	bool sent_lastminute_handshake;           /* rekey_on_receive already answered true */
	uint16_t persistent_keepalive_interval;   /* seconds, 0 = off */
};

/* Bits of nt_timers_expire()'s result. SEND_INITIATION and RETRY_INITIATION are never both
 * set: pass is_retry = false and true respectively to nt_timers_may_send_initiation(). */
enum nt_timer_action {
	NT_TIMER_NONE                  = 0,
	NT_TIMER_SEND_INITIATION       = 1 << 0, /* start a new handshake (not a retry) */
	NT_TIMER_RETRY_INITIATION      = 1 << 1, /* retransmit with a fresh ephemeral */
	NT_TIMER_SEND_KEEPALIVE        = 1 << 2,
	NT_TIMER_DROP_STAGED           = 1 << 3, /* gave up after REKEY_ATTEMPT_TIME */
	NT_TIMER_ERASE_KEYS            = 1 << 4, /* keypairs and handshake state */
	NT_TIMER_CLEAR_ENDPOINT_SOURCE = 1 << 5, /* forget the cached local source address */
};

/* All timers disarmed, no initiation sent yet, persistent keepalive off. */
void nt_timers_init(struct nt_timers *t);

/* Set the persistent keepalive interval in seconds, 0 = off (disarms it). Turning it on from
 * off arms it at `now`, so one keepalive goes out at once (as the kernel does); changing a
 * running interval re-arms it at last traversal + the new interval (now + it if none yet). */
void nt_timers_set_persistent_keepalive(struct nt_timers *t, uint16_t seconds, uint64_t now);

/* Event hooks, named after the protocol events; see the table at the top for when. */
void nt_timers_data_sent(struct nt_timers *t, uint64_t now, uint64_t jitter);
void nt_timers_data_received(struct nt_timers *t, uint64_t now);
void nt_timers_any_authenticated_packet_sent(struct nt_timers *t);
void nt_timers_any_authenticated_packet_received(struct nt_timers *t);
void nt_timers_any_authenticated_packet_traversal(struct nt_timers *t, uint64_t now);
void nt_timers_handshake_initiated(struct nt_timers *t, uint64_t now, uint64_t jitter);
void nt_timers_handshake_complete(struct nt_timers *t);
void nt_timers_session_derived(struct nt_timers *t, uint64_t now);

/* Peer removed or interface down: disarm every timer, forget attempts and pending keepalive
 * needs. Not sticky: a later hook arms timers again. */
void nt_timers_stop(struct nt_timers *t);

/* May an initiation be sent now? False while the last one is less than REKEY_TIMEOUT old.
 * is_retry = false (new data, rekey, new-handshake timer) first resets the attempt count,
 * whatever the answer. Records nothing: call handshake_initiated once it is sent. */
bool nt_timers_may_send_initiation(struct nt_timers *t, uint64_t now, bool is_retry);

/* Earliest armed deadline, UINT64_MAX when nothing is armed. */
uint64_t nt_timers_next_deadline(const struct nt_timers *t);

/* Fire every timer due at `now` (deadline <= now); returns the OR of nt_timer_action bits.
 * Each fired timer is disarmed or re-armed strictly after `now`. */
unsigned nt_timers_expire(struct nt_timers *t, uint64_t now);

/* Data-path rekey decisions on the current keypair. send_counter is the number of messages
 * sent on it (the next nonce). Rekey on send when send_counter > REKEY_AFTER_MESSAGES, or
 * we initiated it and it is REKEY_AFTER_TIME old. */
bool nt_timers_rekey_on_send(uint64_t now, uint64_t keypair_birth, uint64_t send_counter,
			     bool we_initiated);

/* Rekey on receive when we initiated the current keypair and it is REJECT_AFTER_TIME -
 * KEEPALIVE_TIMEOUT - REKEY_TIMEOUT (165 s) old; true at most once until handshake_complete. */
bool nt_timers_rekey_on_receive(struct nt_timers *t, uint64_t now, uint64_t keypair_birth,
				bool we_initiated);

/* A keypair may send or receive while younger than REJECT_AFTER_TIME and counter (next
 * send nonce, or the received counter) < REJECT_AFTER_MESSAGES. */
bool nt_timers_keypair_usable(uint64_t now, uint64_t keypair_birth, uint64_t counter);

#endif
