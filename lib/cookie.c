/* mac1, mac2 and cookie replies (protocol.md "Macs and cookies"). */
#include <errno.h>
#include <string.h>

#include "noisetun/cookie.h"

static const char label_mac1[8] = { 'm', 'a', 'c', '1', '-', '-', '-', '-' };
static const char label_cookie[8] = { 'c', 'o', 'o', 'k', 'i', 'e', '-', '-' };

/* Both handshake messages end in mac1[16] mac2[16]; nothing else carries macs. */
static bool is_handshake_len(size_t len)
{
	return len == NT_INIT_LEN || len == NT_RESP_LEN;
}

static size_t mac1_off(size_t len)
{
	return len - 2 * NT_MAC_LEN;
}

static size_t mac2_off(size_t len)
{
	return len - NT_MAC_LEN;
}

/* Strictly younger than max_age; a clock that went backwards counts as expired. */
static bool is_fresh(uint64_t birth, uint64_t max_age, uint64_t now)
{
	return now >= birth && now - birth < max_age;
}

static void derive_keys(uint8_t mac1_key[static NT_KEY_LEN], uint8_t cookie_key[static NT_KEY_LEN],
			const uint8_t public_key[static NT_KEY_LEN])
{
	nt_hash2(mac1_key, label_mac1, sizeof(label_mac1), public_key, NT_KEY_LEN);
	nt_hash2(cookie_key, label_cookie, sizeof(label_cookie), public_key, NT_KEY_LEN);
}

void nt_cookie_checker_init(struct nt_cookie_checker *checker)
{
	memset(checker, 0, sizeof(*checker));
}

void nt_cookie_checker_set_public_key(struct nt_cookie_checker *checker, const uint8_t *our_public)
{
	if (our_public) {
		derive_keys(checker->mac1_key, checker->cookie_encryption_key, our_public);
		checker->has_key = true;
	} else {
		nt_wipe(checker->mac1_key, sizeof(checker->mac1_key));
		nt_wipe(checker->cookie_encryption_key, sizeof(checker->cookie_encryption_key));
		checker->has_key = false;
	}
}

void nt_cookie_checker_wipe(struct nt_cookie_checker *checker)
{
	nt_wipe(checker, sizeof(*checker));
}

/* The secret R, or NULL when there is none younger than 120 s (an old one dies here). */
static const uint8_t *current_secret(struct nt_cookie_checker *checker, uint64_t now)
{
	if (checker->has_secret && !is_fresh(checker->secret_birth, NT_COOKIE_SECRET_MAX_AGE, now)) {
		nt_wipe(checker->secret, sizeof(checker->secret));
		checker->has_secret = false;
	}
	return checker->has_secret ? checker->secret : NULL;
}

enum nt_cookie_mac_state nt_cookie_validate(struct nt_cookie_checker *checker, const uint8_t *msg, size_t len,
					    const uint8_t *src, size_t src_len, uint64_t now, bool check_mac2)
{
	enum nt_cookie_mac_state state = NT_COOKIE_MAC_INVALID;
	uint8_t computed[NT_MAC_LEN];
	uint8_t cookie[NT_COOKIE_LEN];
	const uint8_t *secret;

	if (!checker->has_key || !msg || !is_handshake_len(len))
		goto out;

	nt_mac(computed, checker->mac1_key, NT_KEY_LEN, msg, mac1_off(len));
	if (!nt_equal(computed, msg + mac1_off(len), NT_MAC_LEN))
		goto out;
	state = NT_COOKIE_MAC1_VALID;

	if (!check_mac2 || (!src && src_len))
		goto out;
	secret = current_secret(checker, now);
	if (!secret)
		goto out;
	nt_mac(cookie, secret, NT_HASH_LEN, src, src_len);
	nt_mac(computed, cookie, NT_COOKIE_LEN, msg, mac2_off(len));
	if (nt_equal(computed, msg + mac2_off(len), NT_MAC_LEN))
		state = NT_COOKIE_MAC2_VALID;
out:
	nt_wipe(cookie, sizeof(cookie));
	nt_wipe(computed, sizeof(computed));
	return state;
}

int nt_cookie_create_reply(struct nt_cookie_checker *checker, uint8_t out[static NT_COOKIE_MSG_LEN],
			   const uint8_t *msg, size_t len, const uint8_t *src, size_t src_len, uint64_t now,
			   const struct nt_rng *rng)
{
	uint8_t cookie[NT_COOKIE_LEN];
	uint8_t reply[NT_COOKIE_MSG_LEN];
	int ret = -EINVAL;

	if (!msg || !is_handshake_len(len) || (!src && src_len))
		goto out;
	ret = -ENOKEY;
	if (!checker->has_key)
		goto out;

	if (!current_secret(checker, now)) {
		nt_rng_fill(rng, checker->secret, sizeof(checker->secret));
		checker->secret_birth = now;
		checker->has_secret = true;
	}
	nt_mac(cookie, checker->secret, NT_HASH_LEN, src, src_len);

	memset(reply, 0, sizeof(reply));
	reply[0] = NT_MSG_COOKIE;
	/* The sender index sits at offset 4 in both the initiation and the response. */
	_Static_assert(NT_INIT_OFF_SENDER == 4 && NT_RESP_OFF_SENDER == 4, "sender index at 4");
	nt_store_le32(reply + NT_COOKIE_OFF_RECEIVER, nt_load_le32(msg + NT_INIT_OFF_SENDER));
	nt_rng_fill(rng, reply + NT_COOKIE_OFF_NONCE, NT_COOKIE_NONCE_LEN);
	nt_xaead_seal(reply + NT_COOKIE_OFF_COOKIE, cookie, sizeof(cookie), msg + mac1_off(len), NT_MAC_LEN,
		      reply + NT_COOKIE_OFF_NONCE, checker->cookie_encryption_key);
	memcpy(out, reply, sizeof(reply));
	ret = 0;
out:
	nt_wipe(cookie, sizeof(cookie));
	return ret;
}

void nt_cookie_maker_init(struct nt_cookie_maker *maker, const uint8_t peer_public[static NT_KEY_LEN])
{
	memset(maker, 0, sizeof(*maker));
	derive_keys(maker->mac1_key, maker->cookie_decryption_key, peer_public);
}

void nt_cookie_maker_wipe(struct nt_cookie_maker *maker)
{
	nt_wipe(maker, sizeof(*maker));
}

int nt_cookie_add_macs(struct nt_cookie_maker *maker, uint8_t *msg, size_t len, uint64_t now)
{
	if (!msg || !is_handshake_len(len))
		return -EINVAL;

	nt_mac(msg + mac1_off(len), maker->mac1_key, NT_KEY_LEN, msg, mac1_off(len));
	memcpy(maker->last_mac1_sent, msg + mac1_off(len), NT_MAC_LEN);
	maker->has_sent_mac1 = true;

	if (maker->has_cookie && !is_fresh(maker->cookie_birth, NT_COOKIE_MAKER_MAX_AGE, now)) {
		nt_wipe(maker->cookie, sizeof(maker->cookie));
		maker->has_cookie = false;
	}
	if (maker->has_cookie)
		nt_mac(msg + mac2_off(len), maker->cookie, NT_COOKIE_LEN, msg, mac2_off(len));
	else
		memset(msg + mac2_off(len), 0, NT_MAC_LEN);
	return 0;
}

int nt_cookie_consume_reply(struct nt_cookie_maker *maker, const uint8_t *reply, size_t len, uint64_t now)
{
	uint8_t cookie[NT_COOKIE_LEN];
	int ret = -EINVAL;

	if (!reply || len != NT_COOKIE_MSG_LEN || nt_message_type(reply, len) != NT_MSG_COOKIE)
		goto out;
	ret = -EBADMSG;
	if (!maker->has_sent_mac1)
		goto out;
	if (nt_xaead_open(cookie, reply + NT_COOKIE_OFF_COOKIE, NT_COOKIE_LEN + NT_AEAD_TAG_LEN,
			  maker->last_mac1_sent, NT_MAC_LEN, reply + NT_COOKIE_OFF_NONCE,
			  maker->cookie_decryption_key) != 0)
		goto out;

	memcpy(maker->cookie, cookie, sizeof(cookie));
	maker->cookie_birth = now;
	maker->has_cookie = true;
	/* One reply per mac1: a replayed reply must not restart the cookie's clock. */
	maker->has_sent_mac1 = false;
	ret = 0;
out:
	nt_wipe(cookie, sizeof(cookie));
	return ret;
}

bool nt_cookie_under_load(size_t handshake_queue_len, size_t queue_max, uint64_t now,
			  uint64_t *last_under_load)
{
	/* len >= max/8, rounded so that "1/8 full" is exact and an empty queue never counts. */
	if (handshake_queue_len > 0 && handshake_queue_len >= queue_max / 8 + (queue_max % 8 != 0)) {
		*last_under_load = now;
		return true;
	}
	return *last_under_load != 0 && is_fresh(*last_under_load, NT_COOKIE_UNDER_LOAD_HOLD, now);
}
