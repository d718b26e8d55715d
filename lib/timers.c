/* Every timer rule of a peer (whitepaper section 6), as deadlines. "Arm" sets a deadline
 * (replacing a pending one), "disarm" clears it. j is the caller's jitter, in
 * [0, REKEY_TIMEOUT_JITTER_MAX).
 *
 * Handshake
 *   handshake_initiated          arm retransmit_handshake at now + REKEY_TIMEOUT + j;
 *                                remember now as the last initiation sent.
 *   retransmit_handshake fires   if handshake_attempts >= MAX_TIMER_HANDSHAKES (18 retries:
 *                                with the first send they span REKEY_ATTEMPT_TIME): give up:
 *                                DROP_STAGED, disarm send_keepalive, arm zero_key_material at
 *                                now + 3 * REJECT_AFTER_TIME unless it is armed; send nothing.
 *                                Else attempts++, RETRY_INITIATION | CLEAR_ENDPOINT_SOURCE
 *                                (the caller's handshake_initiated re-arms retransmit).
 *   handshake_complete           disarm retransmit_handshake; attempts = 0; allow the next
 *                                last-minute rekey on receive.
 *   may_send_initiation          false while the last initiation is < REKEY_TIMEOUT old;
 *                                !is_retry resets attempts = 0 first (new data restarts).
 * Keys
 *   session_derived              arm zero_key_material at now + 3 * REJECT_AFTER_TIME.
 *   zero_key_material fires      ERASE_KEYS.
 *   rekey_on_send                send_counter > REKEY_AFTER_MESSAGES, or we initiated and
 *                                age >= REKEY_AFTER_TIME.
 *   rekey_on_receive             we initiated and age >= REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT
 *                                - REKEY_TIMEOUT (165 s), once until handshake_complete.
 *   keypair_usable               age < REJECT_AFTER_TIME and counter < REJECT_AFTER_MESSAGES.
 * Passive keepalive
 *   data_received                if send_keepalive is armed, need_another_keepalive = true;
 *                                else arm it at now + KEEPALIVE_TIMEOUT.
 *   any_authenticated_packet_sent  disarm send_keepalive.
 *   send_keepalive fires         SEND_KEEPALIVE; if need_another_keepalive, clear it and arm
 *                                send_keepalive at now + KEEPALIVE_TIMEOUT.
 * Unanswered data
 *   data_sent                    unless new_handshake is armed, arm it at now +
 *                                KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + j.
 *   any_authenticated_packet_received  disarm new_handshake.
 *   new_handshake fires          SEND_INITIATION | CLEAR_ENDPOINT_SOURCE (not a retry; it
 *                                supersedes a RETRY_INITIATION due at the same time).
 * Persistent keepalive
 *   any_authenticated_packet_traversal  remember now; if interval > 0, arm
 *                                persistent_keepalive at now + interval.
 *   set_persistent_keepalive     0: disarm. Off -> on: arm at now. On -> on: arm at last
 *                                traversal + interval (now + interval if none).
 *   persistent_keepalive fires   SEND_KEEPALIVE if interval > 0.
 * Lifetime
 *   stop                         disarm everything; attempts = 0; no keepalive owed.
 *
 * expire(now) fires every deadline <= now (retransmit before zero_key, so a give-up does not
 * re-arm an erasure that is due at the same time) and ORs the actions.
 */
#include "noisetun/timers.h"

#include <string.h>

static uint64_t add_saturating(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t age(uint64_t now, uint64_t birth)
{
	return now > birth ? now - birth : 0;
}

static uint64_t reduce_jitter(uint64_t jitter)
{
	return jitter % NT_REKEY_TIMEOUT_JITTER_MAX;
}

static void arm(struct nt_deadline *d, uint64_t at)
{
	d->at = at;
	d->armed = true;
}

static void disarm(struct nt_deadline *d)
{
	d->armed = false;
	d->at = 0;
}

static bool due(const struct nt_deadline *d, uint64_t now)
{
	return d->armed && d->at <= now;
}

void nt_timers_init(struct nt_timers *t)
{
	memset(t, 0, sizeof(*t));
}

static uint64_t interval_ns(uint16_t seconds)
{
	return (uint64_t)seconds * NT_NSEC_PER_SEC;
}

void nt_timers_set_persistent_keepalive(struct nt_timers *t, uint16_t seconds, uint64_t now)
{
	uint16_t old = t->persistent_keepalive_interval;

	t->persistent_keepalive_interval = seconds;
	if (seconds == 0)
		disarm(&t->persistent_keepalive);
	else if (old == 0)
		arm(&t->persistent_keepalive, now);
	else if (t->traversed)
		arm(&t->persistent_keepalive, add_saturating(t->last_traversal, interval_ns(seconds)));
	else
		arm(&t->persistent_keepalive, add_saturating(now, interval_ns(seconds)));
}

void nt_timers_data_sent(struct nt_timers *t, uint64_t now, uint64_t jitter)
{
	if (t->new_handshake.armed)
		return;
	arm(&t->new_handshake, add_saturating(now, NT_KEEPALIVE_TIMEOUT + NT_REKEY_TIMEOUT +
					      reduce_jitter(jitter)));
}

void nt_timers_data_received(struct nt_timers *t, uint64_t now)
{
	if (t->send_keepalive.armed)
		t->need_another_keepalive = true;
	else
		arm(&t->send_keepalive, add_saturating(now, NT_KEEPALIVE_TIMEOUT));
}

void nt_timers_any_authenticated_packet_sent(struct nt_timers *t)
{
	disarm(&t->send_keepalive);
}

void nt_timers_any_authenticated_packet_received(struct nt_timers *t)
{
	disarm(&t->new_handshake);
}

void nt_timers_any_authenticated_packet_traversal(struct nt_timers *t, uint64_t now)
{
	t->last_traversal = now;
	t->traversed = true;
	if (t->persistent_keepalive_interval > 0)
		arm(&t->persistent_keepalive,
		    add_saturating(now, interval_ns(t->persistent_keepalive_interval)));
}

void nt_timers_handshake_initiated(struct nt_timers *t, uint64_t now, uint64_t jitter)
{
	t->last_initiation_sent = now;
	t->initiation_sent = true;
	arm(&t->retransmit_handshake,
	    add_saturating(now, NT_REKEY_TIMEOUT + reduce_jitter(jitter)));
}

void nt_timers_handshake_complete(struct nt_timers *t)
{
	disarm(&t->retransmit_handshake);
	t->handshake_attempts = 0;
	t->sent_lastminute_handshake = false;
}

void nt_timers_session_derived(struct nt_timers *t, uint64_t now)
{
	arm(&t->zero_key_material, add_saturating(now, 3 * NT_REJECT_AFTER_TIME));
}

void nt_timers_stop(struct nt_timers *t)
{
	disarm(&t->retransmit_handshake);
	disarm(&t->send_keepalive);
	disarm(&t->new_handshake);
	disarm(&t->zero_key_material);
	disarm(&t->persistent_keepalive);
	t->handshake_attempts = 0;
	t->need_another_keepalive = false;
}

bool nt_timers_may_send_initiation(struct nt_timers *t, uint64_t now, bool is_retry)
{
	if (!is_retry)
		t->handshake_attempts = 0;
	if (!t->initiation_sent)
		return true;
	/* A clock that went backwards counts as "too soon". */
	return now >= t->last_initiation_sent && now - t->last_initiation_sent >= NT_REKEY_TIMEOUT;
}

uint64_t nt_timers_next_deadline(const struct nt_timers *t)
{
	const struct nt_deadline *all[] = {
		&t->retransmit_handshake, &t->send_keepalive, &t->new_handshake,
		&t->zero_key_material, &t->persistent_keepalive,
	};
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i]->armed && all[i]->at < next)
			next = all[i]->at;
	return next;
}

unsigned nt_timers_expire(struct nt_timers *t, uint64_t now)
{
	unsigned actions = NT_TIMER_NONE;

	if (due(&t->retransmit_handshake, now)) {
		disarm(&t->retransmit_handshake);
		if (t->handshake_attempts >= NT_MAX_TIMER_HANDSHAKES) {
			actions |= NT_TIMER_DROP_STAGED;
			disarm(&t->send_keepalive);
			t->need_another_keepalive = false;
			if (!t->zero_key_material.armed)
				arm(&t->zero_key_material,
				    add_saturating(now, 3 * NT_REJECT_AFTER_TIME));
		} else {
			t->handshake_attempts++;
			actions |= NT_TIMER_RETRY_INITIATION | NT_TIMER_CLEAR_ENDPOINT_SOURCE;
		}
	}

	if (due(&t->zero_key_material, now)) {
		disarm(&t->zero_key_material);
		actions |= NT_TIMER_ERASE_KEYS;
	}

	if (due(&t->send_keepalive, now)) {
		disarm(&t->send_keepalive);
		actions |= NT_TIMER_SEND_KEEPALIVE;
		if (t->need_another_keepalive) {
			t->need_another_keepalive = false;
			arm(&t->send_keepalive, add_saturating(now, NT_KEEPALIVE_TIMEOUT));
		}
	}

	if (due(&t->new_handshake, now)) {
		disarm(&t->new_handshake);
		actions |= NT_TIMER_SEND_INITIATION | NT_TIMER_CLEAR_ENDPOINT_SOURCE;
	}

	if (due(&t->persistent_keepalive, now)) {
		disarm(&t->persistent_keepalive);
		if (t->persistent_keepalive_interval > 0)
			actions |= NT_TIMER_SEND_KEEPALIVE;
	}

	/* A fresh start resets the attempt count anyway; one initiation serves both. */
	if (actions & NT_TIMER_SEND_INITIATION)
		actions &= ~(unsigned)NT_TIMER_RETRY_INITIATION;
	return actions;
}

bool nt_timers_rekey_on_send(uint64_t now, uint64_t keypair_birth, uint64_t send_counter,
			     bool we_initiated)
{
	return send_counter > NT_REKEY_AFTER_MESSAGES ||
	       (we_initiated && age(now, keypair_birth) >= NT_REKEY_AFTER_TIME);
}

bool nt_timers_rekey_on_receive(struct nt_timers *t, uint64_t now, uint64_t keypair_birth,
				bool we_initiated)
{
	if (!we_initiated || t->sent_lastminute_handshake)
		return false;
	if (age(now, keypair_birth) <
	    NT_REJECT_AFTER_TIME - NT_KEEPALIVE_TIMEOUT - NT_REKEY_TIMEOUT)
		return false;
	t->sent_lastminute_handshake = true;
	return true;
}

bool nt_timers_keypair_usable(uint64_t now, uint64_t keypair_birth, uint64_t counter)
{
	return age(now, keypair_birth) < NT_REJECT_AFTER_TIME && counter < NT_REJECT_AFTER_MESSAGES;
}
