/* What the adversarial tools share: dying on setup errors, clocks, randomness for the
 * core, key files, mac1, and a genuine handshake as the initiator (the core's own Noise
 * code, so a tool speaks exactly the protocol the daemon does). Header-only: adv_tool
 * (adversary-lib.sh) compiles one .c file per tool. Define TOOL_NAME before including. */
#ifndef NT_TOOLKIT_H
#define NT_TOOLKIT_H

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/keypair.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"

#ifndef TOOL_NAME
#error "define TOOL_NAME before including toolkit.h"
#endif

static inline void die(const char *what)
{
	fprintf(stderr, TOOL_NAME ": %s\n", what);
	exit(2);
}

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void rng_fill(void *ctx, void *buf, size_t len)
{
	(void)ctx;
	while (len) {
		ssize_t n = getrandom(buf, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("getrandom failed");
		}
		buf = (uint8_t *)buf + n;
		len -= (size_t)n;
	}
}

static const struct nt_rng rng = { .fill = rng_fill, .ctx = NULL };

static inline uint32_t random_index(void)
{
	uint32_t v;

	rng_fill(NULL, &v, sizeof(v));
	return v ? v : 1;
}

static inline void read_key_file(uint8_t key[NT_KEY_LEN], const char *path)
{
	char buf[128] = { 0 };
	FILE *f = fopen(path, "r");

	if (!f || !fgets(buf, sizeof(buf), f))
		die("cannot read the key file");
	fclose(f);
	buf[strcspn(buf, "\r\n")] = 0;
	if (nt_key_from_base64(key, buf))
		die("bad key in the key file");
}

/* mac1 over msg[0..len-32) with the victim's key; mac2 zero (no cookie). */
static inline void add_mac1(uint8_t *msg, size_t len, const uint8_t victim_pub[NT_KEY_LEN])
{
	uint8_t key[NT_HASH_LEN];

	nt_hash2(key, "mac1----", 8, victim_pub, NT_KEY_LEN);
	nt_mac(msg + len - 2 * NT_MAC_LEN, key, NT_KEY_LEN, msg, len - 2 * NT_MAC_LEN);
	memset(msg + len - NT_MAC_LEN, 0, NT_MAC_LEN);
}

/* One side of a session made by a genuine handshake. Holds secrets, but only test keys. */
struct tk_session {
	struct nt_noise_static me;
	struct nt_handshake hs;
	struct nt_cookie_maker cookie;
	struct nt_keypairs kps;
};

/* Handshake as the initiator on the connected UDP socket fd with the peer whose public
 * key is peer_pub, for up to `tries` initiations 1 s apart (a cookie reply is taken and
 * the next try carries mac2). The current keypair, or NULL. */
static inline struct nt_keypair *tk_handshake(struct tk_session *s, int fd, const uint8_t priv[NT_KEY_LEN],
				       const uint8_t peer_pub[NT_KEY_LEN], unsigned tries)
{
	nt_noise_static_init(&s->me, priv);
	nt_handshake_init(&s->hs, &s->me, peer_pub, NULL);
	nt_cookie_maker_init(&s->cookie, peer_pub);
	nt_keypairs_init(&s->kps);
	for (unsigned t = 0; t < tries; t++) {
		uint8_t msg[NT_INIT_LEN];
		uint32_t index = random_index();
		uint64_t until;

		if (nt_noise_create_initiation(msg, &s->hs, &s->me, index, wall_ns(), &rng) != NT_OK ||
		    nt_cookie_add_macs(&s->cookie, msg, sizeof(msg), mono_ns()))
			die("cannot create an initiation");
		if (send(fd, msg, sizeof(msg), 0) < 0)
			die("send initiation");
		until = mono_ns() + 1000000000ull;
		for (uint64_t now; (now = mono_ns()) < until;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint8_t buf[2048];
			ssize_t r;

			if (poll(&p, 1, (int)((until - now) / 1000000) + 1) <= 0)
				continue;
			r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == NT_COOKIE_MSG_LEN && buf[0] == NT_MSG_COOKIE) {
				(void)!nt_cookie_consume_reply(&s->cookie, buf, (size_t)r, mono_ns());
			} else if (r == NT_RESP_LEN && buf[0] == NT_MSG_RESPONSE && nt_noise_response_receiver(buf) == index) {
				struct nt_keypair_drops drops = { .count = 0 };
				if (nt_noise_consume_response(&s->hs, buf, (size_t)r, &s->me) != NT_OK ||
				    nt_noise_begin_session(&s->hs, &s->kps, mono_ns(), &drops) != NT_OK)
					continue;
				return nt_keypairs_current(&s->kps);
			}
		}
	}
	return NULL;
}

#endif
