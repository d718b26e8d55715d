/* Timer rules of lib/timers.c, driven by a fake clock: exact actions and exact deadlines. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "noisetun/timers.h"

#define SEC(x)  ((uint64_t)(x) * NT_NSEC_PER_SEC)
#define MSEC(x) ((uint64_t)(x) * 1000000ULL)
#define NONE    ((unsigned)NT_TIMER_NONE)
#define RETRY   ((unsigned)(NT_TIMER_RETRY_INITIATION | NT_TIMER_CLEAR_ENDPOINT_SOURCE))
#define FRESH   ((unsigned)(NT_TIMER_SEND_INITIATION | NT_TIMER_CLEAR_ENDPOINT_SOURCE))
#define ZERO_KEY_AFTER (3 * NT_REJECT_AFTER_TIME)

/* Varied jitters covering both ends of [0, REKEY_TIMEOUT_JITTER_MAX). */
static uint64_t jitter_for(unsigned i)
{
	if (i == 0)
		return 0;
	if (i == 1)
		return NT_REKEY_TIMEOUT_JITTER_MAX - 1;
	return (i * 123456789ULL) % NT_REKEY_TIMEOUT_JITTER_MAX;
}

/* Sends the first initiation at `start`, answers every retransmit with a retry, and returns
 * the time retransmit will fire for the last time (the give-up), which it has not reached. */
static uint64_t retry_until_last(struct nt_timers *t, uint64_t start)
{
	uint64_t now = start;

	ck_assert(nt_timers_may_send_initiation(t, now, false));
	nt_timers_handshake_initiated(t, now, jitter_for(0));
	for (unsigned retry = 1; retry <= NT_MAX_TIMER_HANDSHAKES; retry++) {
		uint64_t deadline = now + NT_REKEY_TIMEOUT + jitter_for(retry - 1);

		ck_assert_uint_eq(t->retransmit_handshake.at, deadline);
		ck_assert_uint_eq(nt_timers_expire(t, deadline - 1), NONE);
		now = deadline;
		ck_assert_uint_eq(nt_timers_expire(t, now), RETRY);
		ck_assert_uint_eq(t->handshake_attempts, retry);
		ck_assert(!t->retransmit_handshake.armed);
		ck_assert_uint_eq(nt_timers_expire(t, now), NONE);
		ck_assert(nt_timers_may_send_initiation(t, now, true));
		nt_timers_handshake_initiated(t, now, jitter_for(retry));
	}
	return now + NT_REKEY_TIMEOUT + jitter_for(NT_MAX_TIMER_HANDSHAKES);
}

static uint64_t sum_of_jitters(unsigned n)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += jitter_for(i);
	return sum;
}

START_TEST(test_init_nothing_armed)
{
	struct nt_timers t;

	nt_timers_init(&t);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, 0), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, UINT64_MAX), NONE);
	ck_assert_uint_eq(t.handshake_attempts, 0);
	ck_assert_uint_eq(t.persistent_keepalive_interval, 0);
}
END_TEST

START_TEST(test_first_initiation_at_time_zero)
{
	struct nt_timers t;

	nt_timers_init(&t);
	ck_assert(nt_timers_may_send_initiation(&t, 0, false));
	nt_timers_handshake_initiated(&t, 0, 0);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), NT_REKEY_TIMEOUT);
	ck_assert(!nt_timers_may_send_initiation(&t, 0, false));
}
END_TEST

START_TEST(test_retransmit_18_retries_then_give_up)
{
	struct nt_timers t;
	uint64_t give_up;

	nt_timers_init(&t);
	give_up = retry_until_last(&t, 0);
	/* 1 + 18 initiations, 5 s + jitter apart; the give-up is one more interval later. */
	ck_assert_uint_eq(give_up, SEC(95) + sum_of_jitters(NT_MAX_TIMER_HANDSHAKES + 1));
	ck_assert_uint_eq(t.last_initiation_sent, SEC(90) + sum_of_jitters(NT_MAX_TIMER_HANDSHAKES));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), give_up);

	ck_assert_uint_eq(nt_timers_expire(&t, give_up - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, give_up), NT_TIMER_DROP_STAGED);
	ck_assert_uint_eq(t.handshake_attempts, NT_MAX_TIMER_HANDSHAKES);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), give_up + SEC(540));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up), NONE);

	ck_assert_uint_eq(nt_timers_expire(&t, give_up + SEC(540) - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, give_up + SEC(540)), NT_TIMER_ERASE_KEYS);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
}
END_TEST

START_TEST(test_new_data_restarts_after_give_up)
{
	struct nt_timers t;
	uint64_t give_up;

	nt_timers_init(&t);
	give_up = retry_until_last(&t, SEC(1000));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up), NT_TIMER_DROP_STAGED);
	ck_assert(nt_timers_may_send_initiation(&t, give_up + SEC(1), false));
	ck_assert_uint_eq(t.handshake_attempts, 0);
	nt_timers_handshake_initiated(&t, give_up + SEC(1), 0);
	ck_assert_uint_eq(nt_timers_expire(&t, give_up + SEC(6)), RETRY);
	ck_assert_uint_eq(t.handshake_attempts, 1);
}
END_TEST

START_TEST(test_give_up_disarms_passive_keepalive)
{
	struct nt_timers t;
	uint64_t give_up;

	nt_timers_init(&t);
	give_up = retry_until_last(&t, 0);
	nt_timers_data_received(&t, give_up - SEC(1));
	nt_timers_data_received(&t, give_up - MSEC(500));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), give_up);
	ck_assert_uint_eq(t.send_keepalive.at, give_up + SEC(9));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up), NT_TIMER_DROP_STAGED);
	ck_assert(!t.send_keepalive.armed);
	ck_assert(!t.need_another_keepalive);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), give_up + SEC(540));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up + SEC(9)), NONE);
}
END_TEST

START_TEST(test_give_up_keeps_pending_key_erasure)
{
	struct nt_timers t;
	uint64_t give_up;

	nt_timers_init(&t);
	nt_timers_session_derived(&t, SEC(10));
	give_up = retry_until_last(&t, SEC(20));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up), NT_TIMER_DROP_STAGED);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(550));
}
END_TEST

START_TEST(test_handshake_complete_mid_retries)
{
	struct nt_timers t;
	uint64_t now = SEC(1000);

	nt_timers_init(&t);
	ck_assert(nt_timers_may_send_initiation(&t, now, false));
	nt_timers_handshake_initiated(&t, now, jitter_for(1));
	for (unsigned retry = 1; retry <= 3; retry++) {
		now = nt_timers_next_deadline(&t);
		ck_assert_uint_eq(nt_timers_expire(&t, now), RETRY);
		nt_timers_handshake_initiated(&t, now, jitter_for(retry + 1));
	}
	ck_assert_uint_eq(t.handshake_attempts, 3);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), now + NT_REKEY_TIMEOUT + jitter_for(4));

	now += SEC(2);
	nt_timers_handshake_complete(&t);
	nt_timers_session_derived(&t, now);
	ck_assert_uint_eq(t.handshake_attempts, 0);
	ck_assert(!t.retransmit_handshake.armed);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), now + SEC(540));
	ck_assert_uint_eq(nt_timers_expire(&t, now + SEC(4)), NONE);
}
END_TEST

START_TEST(test_passive_keepalive_once)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_data_received(&t, SEC(100));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(110));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110) - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110)), NONE);
}
END_TEST

START_TEST(test_passive_keepalive_another_needed)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_data_received(&t, SEC(100));
	nt_timers_data_received(&t, SEC(103));
	ck_assert(t.need_another_keepalive);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(110)); /* not pushed out */
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert(!t.need_another_keepalive);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(120));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110)), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(120)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
}
END_TEST

START_TEST(test_sending_cancels_keepalive)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_data_received(&t, SEC(100));
	nt_timers_any_authenticated_packet_sent(&t);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(110)), NONE);

	/* Received again after the reply: a fresh 10 s from that packet. */
	nt_timers_data_received(&t, SEC(111));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(121));

	/* The re-armed "another" keepalive is also cancelled by whatever is sent next, including
	 * the keepalive the first expiry asked for. */
	nt_timers_data_received(&t, SEC(115));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(121)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(131));
	nt_timers_any_authenticated_packet_sent(&t);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
}
END_TEST

START_TEST(test_new_handshake_after_unanswered_data)
{
	struct nt_timers t;
	uint64_t j = jitter_for(7);
	uint64_t deadline = SEC(200) + SEC(15) + j;

	nt_timers_init(&t);
	nt_timers_data_sent(&t, SEC(200), j);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), deadline);
	nt_timers_data_sent(&t, SEC(205), jitter_for(8)); /* armed: not pushed out */
	ck_assert_uint_eq(nt_timers_next_deadline(&t), deadline);
	ck_assert_uint_eq(nt_timers_expire(&t, deadline - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, deadline), FRESH);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, deadline), NONE);
	ck_assert(nt_timers_may_send_initiation(&t, deadline, false));
}
END_TEST

START_TEST(test_new_handshake_cancelled_by_received_packet)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_data_sent(&t, SEC(200), 0);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(215));
	nt_timers_any_authenticated_packet_received(&t);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(215)), NONE);
	nt_timers_data_sent(&t, SEC(220), NT_REKEY_TIMEOUT_JITTER_MAX - 1);
	ck_assert_uint_eq(nt_timers_next_deadline(&t),
			  SEC(235) + NT_REKEY_TIMEOUT_JITTER_MAX - 1);
}
END_TEST

START_TEST(test_persistent_keepalive_rearmed_by_traversal)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_any_authenticated_packet_traversal(&t, SEC(50)); /* off: nothing armed */
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);

	nt_timers_set_persistent_keepalive(&t, 25, SEC(100)); /* off -> on: one at once */
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(100));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(100)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);

	nt_timers_any_authenticated_packet_traversal(&t, SEC(100));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(125));
	nt_timers_any_authenticated_packet_traversal(&t, SEC(110));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(135));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(135) - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(135)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(135)), NONE);
	nt_timers_any_authenticated_packet_traversal(&t, SEC(135));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(160));
}
END_TEST

START_TEST(test_persistent_keepalive_disarmed_by_zero)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_set_persistent_keepalive(&t, 25, 0); /* time 0 is a real time */
	ck_assert_uint_eq(nt_timers_next_deadline(&t), 0);
	ck_assert_uint_eq(nt_timers_expire(&t, 0), NT_TIMER_SEND_KEEPALIVE);
	nt_timers_any_authenticated_packet_traversal(&t, 0);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(25));

	nt_timers_set_persistent_keepalive(&t, 0, SEC(1));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(25)), NONE);
	nt_timers_any_authenticated_packet_traversal(&t, SEC(30));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
}
END_TEST

START_TEST(test_persistent_keepalive_interval_change)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_set_persistent_keepalive(&t, 25, SEC(1));
	/* on -> on before any traversal: counts from now. */
	nt_timers_set_persistent_keepalive(&t, 30, SEC(2));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(32));

	nt_timers_any_authenticated_packet_traversal(&t, SEC(200));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(230));
	nt_timers_set_persistent_keepalive(&t, 10, SEC(203));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(210));
	nt_timers_set_persistent_keepalive(&t, 60, SEC(204));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(260));
	/* Shortened below the time already idle: due at once. */
	nt_timers_set_persistent_keepalive(&t, 1, SEC(205));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(201));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(205)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	nt_timers_set_persistent_keepalive(&t, 65535, SEC(206));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(200) + SEC(65535));
}
END_TEST

START_TEST(test_key_erasure_after_last_session)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_session_derived(&t, SEC(10));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(10) + ZERO_KEY_AFTER);
	ck_assert_uint_eq(ZERO_KEY_AFTER, SEC(540));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(550) - 1), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(550)), NT_TIMER_ERASE_KEYS);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(550)), NONE);
}
END_TEST

START_TEST(test_key_erasure_pushed_by_new_session)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_session_derived(&t, 0);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(540));
	nt_timers_session_derived(&t, SEC(120));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(660));
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(540)), NONE);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(660)), NT_TIMER_ERASE_KEYS);
}
END_TEST

START_TEST(test_may_send_initiation_rate_limit)
{
	struct nt_timers t;

	nt_timers_init(&t);
	ck_assert(nt_timers_may_send_initiation(&t, SEC(1000), false));
	nt_timers_handshake_initiated(&t, SEC(1000), 0);
	ck_assert(!nt_timers_may_send_initiation(&t, SEC(1000), false));
	ck_assert(!nt_timers_may_send_initiation(&t, SEC(1000) + MSEC(4999), false));
	ck_assert(!nt_timers_may_send_initiation(&t, SEC(1005) - 1, true));
	ck_assert(nt_timers_may_send_initiation(&t, SEC(1005), false));
	ck_assert(nt_timers_may_send_initiation(&t, SEC(1005), true));
	ck_assert(!nt_timers_may_send_initiation(&t, SEC(999), false)); /* clock went back */
}
END_TEST

START_TEST(test_may_send_initiation_attempt_reset)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_handshake_initiated(&t, 0, 0);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(5)), RETRY);
	nt_timers_handshake_initiated(&t, SEC(5), 0);
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(10)), RETRY);
	ck_assert_uint_eq(t.handshake_attempts, 2);
	ck_assert(nt_timers_may_send_initiation(&t, SEC(10), true));
	ck_assert_uint_eq(t.handshake_attempts, 2);
	nt_timers_handshake_initiated(&t, SEC(10), 0);
	/* New data resets the count even while the rate limit says no. */
	ck_assert(!nt_timers_may_send_initiation(&t, SEC(11), false));
	ck_assert_uint_eq(t.handshake_attempts, 0);
}
END_TEST

START_TEST(test_rekey_on_send)
{
	const uint64_t birth = SEC(1000);

	ck_assert(!nt_timers_rekey_on_send(birth + MSEC(119999), birth, 1, true));
	ck_assert(nt_timers_rekey_on_send(birth + SEC(120), birth, 1, true));
	ck_assert(nt_timers_rekey_on_send(birth + SEC(179), birth, 1, true));
	/* The responder never rekeys on age. */
	ck_assert(!nt_timers_rekey_on_send(birth + SEC(120), birth, 1, false));
	ck_assert(!nt_timers_rekey_on_send(birth + SEC(100000), birth, 1, false));
	/* Counter, either side, young keypair. */
	ck_assert(!nt_timers_rekey_on_send(birth, birth, NT_REKEY_AFTER_MESSAGES, true));
	ck_assert(!nt_timers_rekey_on_send(birth, birth, NT_REKEY_AFTER_MESSAGES, false));
	ck_assert(nt_timers_rekey_on_send(birth, birth, NT_REKEY_AFTER_MESSAGES + 1, true));
	ck_assert(nt_timers_rekey_on_send(birth, birth, NT_REKEY_AFTER_MESSAGES + 1, false));
	/* Birth at time 0. */
	ck_assert(!nt_timers_rekey_on_send(SEC(120) - 1, 0, 0, true));
	ck_assert(nt_timers_rekey_on_send(SEC(120), 0, 0, true));
}
END_TEST

START_TEST(test_rekey_on_receive)
{
	struct nt_timers t;
	const uint64_t birth = SEC(50);

	ck_assert_uint_eq(NT_REJECT_AFTER_TIME - NT_KEEPALIVE_TIMEOUT - NT_REKEY_TIMEOUT, SEC(165));
	nt_timers_init(&t);
	ck_assert(!nt_timers_rekey_on_receive(&t, birth + SEC(165) - 1, birth, true));
	ck_assert(!nt_timers_rekey_on_receive(&t, birth + SEC(170), birth, false));
	ck_assert(nt_timers_rekey_on_receive(&t, birth + SEC(165), birth, true));
	ck_assert(!nt_timers_rekey_on_receive(&t, birth + SEC(166), birth, true)); /* once */
	nt_timers_handshake_complete(&t);
	ck_assert(nt_timers_rekey_on_receive(&t, birth + SEC(167), birth, true));
	nt_timers_handshake_complete(&t);
	ck_assert(!nt_timers_rekey_on_receive(&t, birth + SEC(168) + SEC(1), birth + SEC(168),
					      true));
}
END_TEST

START_TEST(test_keypair_usable)
{
	const uint64_t birth = SEC(7);

	ck_assert(nt_timers_keypair_usable(birth, birth, 0));
	ck_assert(nt_timers_keypair_usable(birth + SEC(180) - 1, birth, 0));
	ck_assert(!nt_timers_keypair_usable(birth + SEC(180), birth, 0));
	ck_assert(!nt_timers_keypair_usable(birth + SEC(100000), birth, 0));
	ck_assert(nt_timers_keypair_usable(birth, birth, NT_REJECT_AFTER_MESSAGES - 1));
	ck_assert(!nt_timers_keypair_usable(birth, birth, NT_REJECT_AFTER_MESSAGES));
	ck_assert(!nt_timers_keypair_usable(birth, birth, UINT64_MAX));
	ck_assert(nt_timers_keypair_usable(0, 0, 0));
	ck_assert(!nt_timers_keypair_usable(SEC(180), 0, 0));
}
END_TEST

static void arm_everything(struct nt_timers *t, uint64_t now)
{
	nt_timers_set_persistent_keepalive(t, 25, now);
	nt_timers_any_authenticated_packet_traversal(t, now);
	nt_timers_session_derived(t, now);
	nt_timers_data_sent(t, now, 0);
	nt_timers_data_received(t, now);
	nt_timers_data_received(t, now);
	nt_timers_handshake_initiated(t, now, 0);
	ck_assert(t->retransmit_handshake.armed && t->send_keepalive.armed &&
		  t->new_handshake.armed && t->zero_key_material.armed &&
		  t->persistent_keepalive.armed);
}

START_TEST(test_stop_disarms_all)
{
	struct nt_timers t;

	nt_timers_init(&t);
	arm_everything(&t, SEC(10));
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(15));
	nt_timers_stop(&t);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, UINT64_MAX), NONE);
	ck_assert(!t.need_another_keepalive);
	ck_assert_uint_eq(t.handshake_attempts, 0);
}
END_TEST

START_TEST(test_all_due_at_once)
{
	struct nt_timers t;
	const uint64_t at = SEC(1000);

	nt_timers_init(&t);
	nt_timers_session_derived(&t, at - SEC(540));
	nt_timers_data_sent(&t, at - SEC(15), 0);
	nt_timers_set_persistent_keepalive(&t, 10, at - SEC(10));
	nt_timers_any_authenticated_packet_traversal(&t, at - SEC(10));
	nt_timers_data_received(&t, at - SEC(10));
	nt_timers_handshake_initiated(&t, at - SEC(5), 0);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), at);
	ck_assert_uint_eq(nt_timers_expire(&t, at - 1), NONE);
	/* The new-handshake initiation supersedes the retry; one keepalive serves both timers. */
	ck_assert_uint_eq(nt_timers_expire(&t, at),
			  FRESH | NT_TIMER_SEND_KEEPALIVE | NT_TIMER_ERASE_KEYS);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, at), NONE);
}
END_TEST

START_TEST(test_give_up_and_erasure_at_once)
{
	struct nt_timers t;
	uint64_t give_up;

	nt_timers_init(&t);
	give_up = retry_until_last(&t, SEC(1000));
	nt_timers_session_derived(&t, give_up - SEC(540));
	ck_assert_uint_eq(nt_timers_expire(&t, give_up),
			  NT_TIMER_DROP_STAGED | NT_TIMER_ERASE_KEYS);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), UINT64_MAX);
}
END_TEST

START_TEST(test_late_expire_fires_once)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_data_received(&t, 0);
	nt_timers_data_received(&t, SEC(1));
	/* The daemon woke up late: the keepalive fires once and "another" counts from now. */
	ck_assert_uint_eq(nt_timers_expire(&t, SEC(35)), NT_TIMER_SEND_KEEPALIVE);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(45));
}
END_TEST

START_TEST(test_jitter_reduced_into_range)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_handshake_initiated(&t, 0, NT_REKEY_TIMEOUT_JITTER_MAX);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(5));
	nt_timers_handshake_initiated(&t, 0, UINT64_MAX);
	ck_assert_uint_eq(nt_timers_next_deadline(&t),
			  SEC(5) + UINT64_MAX % NT_REKEY_TIMEOUT_JITTER_MAX);
	nt_timers_stop(&t);
	nt_timers_data_sent(&t, 0, 3 * NT_REKEY_TIMEOUT_JITTER_MAX + 7);
	ck_assert_uint_eq(nt_timers_next_deadline(&t), SEC(15) + 7);
}
END_TEST

START_TEST(test_deadlines_saturate)
{
	struct nt_timers t;

	nt_timers_init(&t);
	nt_timers_session_derived(&t, UINT64_MAX - 1);
	ck_assert(t.zero_key_material.armed);
	ck_assert_uint_eq(t.zero_key_material.at, UINT64_MAX);
	ck_assert_uint_eq(nt_timers_expire(&t, UINT64_MAX), NT_TIMER_ERASE_KEYS);
}
END_TEST

/* Random walk over hooks with a monotonic clock, checking the invariants every expire must
 * keep: it acts iff something was due, never re-fires at the same now, leaves every deadline
 * in the future, never asks for a fresh and a retried initiation together. */
static uint64_t lcg(uint64_t *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return *state >> 33;
}

START_TEST(test_random_walk_invariants)
{
	struct nt_timers t;
	uint64_t rng = 0x5eed, now = 0;
	unsigned seen[6] = { 0 };

	nt_timers_init(&t);
	for (int step = 0; step < 200000; step++) {
		uint64_t r = lcg(&rng);

		now += (r % 4 == 0) ? lcg(&rng) % SEC(20) : lcg(&rng) % MSEC(300);
		switch (lcg(&rng) % 13) {
		case 0: nt_timers_data_sent(&t, now, lcg(&rng)); break;
		case 1: nt_timers_data_received(&t, now); break;
		case 2: nt_timers_any_authenticated_packet_sent(&t); break;
		case 3: nt_timers_any_authenticated_packet_received(&t); break;
		case 4: nt_timers_any_authenticated_packet_traversal(&t, now); break;
		case 5: /* new data restarting the handshake: rare, like the two below */
			if (lcg(&rng) % 40 == 0 && nt_timers_may_send_initiation(&t, now, false))
				nt_timers_handshake_initiated(&t, now, lcg(&rng));
			break;
		case 6:
			if (lcg(&rng) % 40 == 0)
				nt_timers_handshake_complete(&t);
			break;
		case 7:
			if (lcg(&rng) % 40 == 0)
				nt_timers_session_derived(&t, now);
			break;
		case 8:
			nt_timers_set_persistent_keepalive(&t, (uint16_t)(lcg(&rng) % 4 * 7), now);
			break;
		case 9:
			if (lcg(&rng) % 500 == 0)
				nt_timers_stop(&t);
			break;
		default: {
			uint64_t before = nt_timers_next_deadline(&t);
			unsigned actions = nt_timers_expire(&t, now);

			ck_assert_uint_eq(actions != NONE, before <= now);
			ck_assert(!((actions & NT_TIMER_SEND_INITIATION) &&
				    (actions & NT_TIMER_RETRY_INITIATION)));
			ck_assert(nt_timers_next_deadline(&t) > now);
			ck_assert_uint_eq(nt_timers_expire(&t, now), NONE);
			ck_assert_uint_le(t.handshake_attempts, NT_MAX_TIMER_HANDSHAKES);
			if ((actions & (NT_TIMER_SEND_INITIATION | NT_TIMER_RETRY_INITIATION)) &&
			    nt_timers_may_send_initiation(&t, now,
							  actions & NT_TIMER_RETRY_INITIATION))
				nt_timers_handshake_initiated(&t, now, lcg(&rng));
			for (unsigned bit = 0; bit < 6; bit++)
				seen[bit] += !!(actions & (1u << bit));
			break;
		}
		}
	}
	for (unsigned bit = 0; bit < 6; bit++)
		ck_assert_msg(seen[bit] > 10, "action bit %u fired %u times", bit, seen[bit]);
}
END_TEST

static Suite *timers_suite(void)
{
	Suite *s = suite_create("timers");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, test_init_nothing_armed);
	tcase_add_test(tc, test_first_initiation_at_time_zero);
	tcase_add_test(tc, test_retransmit_18_retries_then_give_up);
	tcase_add_test(tc, test_new_data_restarts_after_give_up);
	tcase_add_test(tc, test_give_up_disarms_passive_keepalive);
	tcase_add_test(tc, test_give_up_keeps_pending_key_erasure);
	tcase_add_test(tc, test_handshake_complete_mid_retries);
	tcase_add_test(tc, test_passive_keepalive_once);
	tcase_add_test(tc, test_passive_keepalive_another_needed);
	tcase_add_test(tc, test_sending_cancels_keepalive);
	tcase_add_test(tc, test_new_handshake_after_unanswered_data);
	tcase_add_test(tc, test_new_handshake_cancelled_by_received_packet);
	tcase_add_test(tc, test_persistent_keepalive_rearmed_by_traversal);
	tcase_add_test(tc, test_persistent_keepalive_disarmed_by_zero);
	tcase_add_test(tc, test_persistent_keepalive_interval_change);
	tcase_add_test(tc, test_key_erasure_after_last_session);
	tcase_add_test(tc, test_key_erasure_pushed_by_new_session);
	tcase_add_test(tc, test_may_send_initiation_rate_limit);
	tcase_add_test(tc, test_may_send_initiation_attempt_reset);
	tcase_add_test(tc, test_rekey_on_send);
	tcase_add_test(tc, test_rekey_on_receive);
	tcase_add_test(tc, test_keypair_usable);
	tcase_add_test(tc, test_stop_disarms_all);
	tcase_add_test(tc, test_all_due_at_once);
	tcase_add_test(tc, test_give_up_and_erasure_at_once);
	tcase_add_test(tc, test_late_expire_fires_once);
	tcase_add_test(tc, test_jitter_reduced_into_range);
	tcase_add_test(tc, test_deadlines_saturate);
	tcase_add_test(tc, test_random_walk_invariants);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(timers_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
