/* lowpeer: handshake messages whose Diffie-Hellman results are all zeros, for
 * tests/net/lowkey.sh. A victim that does not reject an all-zero DH result would accept
 * them: an attacker who puts a low-order point where a public key belongs can compute the
 * zero "shared secret" without knowing any private key.
 *
 *   lowpeer init --to IP --port N --victim-pub B64 (--key FILE | --static-point B64)
 *                [--ephemeral-point B64] [--count N] [--interval-ms MS] [--wait-ms MS]
 *       Send N initiations (default 1), each with a fresh timestamp, MS apart (default 30,
 *       above the 1/50 s flood guard). The static key is the peer's (--key, its private
 *       key file) or a low-order point (--static-point: then DH(static, victim) is taken
 *       as zero); the ephemeral is fresh, or a low-order point (--ephemeral-point: then
 *       DH(ephemeral, victim) is taken as zero). Without either point this is a genuine
 *       initiation: the control that shows the message is otherwise right.
 *       Prints: init sent=N response=N cookie=N data=N other=N
 *
 *   lowpeer respond --port N --victim-pub B64 --key FILE [--ephemeral-point B64]
 *                   [--seconds S]
 *       Listen on UDP port N (IPv4) for S seconds (default 3) and answer every initiation
 *       from the victim (a peer the victim knows by this key) with a handshake response:
 *       genuine, or with the ephemeral a low-order point (DH(ephemeral, *) taken as zero).
 *       A victim that accepts the response sends transport data (a keepalive) next.
 *       Prints: respond initiations=N answered=N data=N other=N consume_errors=N
 *
 * Exit 0, or 2 on bad usage or setup failure. */
#define _GNU_SOURCE
#define TOOL_NAME "lowpeer"
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "noisetun/cookie.h"
#include "noisetun/crypto.h"
#include "noisetun/encoding.h"
#include "noisetun/messages.h"
#include "noisetun/noise.h"

#include "toolkit.h"

static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

static void parse_b64(uint8_t key[NT_KEY_LEN], const char *s, const char *what)
{
	if (nt_key_from_base64(key, s)) {
		fprintf(stderr, "lowpeer: bad base64 key for %s: %s\n", what, s);
		exit(2);
	}
}

/* H = HASH(H ‖ x) */
static void mix_hash(uint8_t h[NT_HASH_LEN], const void *x, size_t len)
{
	nt_hash2(h, h, NT_HASH_LEN, x, len);
}

/* An initiation built step by step (protocol.md "The handshake"), with es and ss given. */
static void build_initiation(uint8_t out[NT_INIT_LEN], const uint8_t victim_pub[NT_KEY_LEN],
			     const uint8_t static_pub[NT_KEY_LEN], const uint8_t eph_pub[NT_KEY_LEN],
			     const uint8_t es[NT_KEY_LEN], const uint8_t ss[NT_KEY_LEN])
{
	uint8_t c[NT_HASH_LEN], h[NT_HASH_LEN], k[NT_KEY_LEN], ts[NT_TAI64N_LEN];

	memset(out, 0, NT_INIT_LEN);
	out[0] = NT_MSG_INITIATION;
	nt_store_le32(out + NT_INIT_OFF_SENDER, random_index());
	nt_hash(c, construction, strlen(construction));
	nt_hash2(h, c, NT_HASH_LEN, identifier, strlen(identifier));
	mix_hash(h, victim_pub, NT_KEY_LEN);
	nt_kdf(c, NULL, NULL, c, eph_pub, NT_KEY_LEN);
	memcpy(out + NT_INIT_OFF_EPHEMERAL, eph_pub, NT_KEY_LEN);
	mix_hash(h, eph_pub, NT_KEY_LEN);
	nt_kdf(c, k, NULL, c, es, NT_KEY_LEN);
	nt_aead_seal(out + NT_INIT_OFF_STATIC, static_pub, NT_KEY_LEN, h, NT_HASH_LEN, 0, k);
	mix_hash(h, out + NT_INIT_OFF_STATIC, NT_KEY_LEN + NT_AEAD_TAG_LEN);
	nt_kdf(c, k, NULL, c, ss, NT_KEY_LEN);
	nt_tai64n(ts, wall_ns());
	nt_aead_seal(out + NT_INIT_OFF_TIMESTAMP, ts, NT_TAI64N_LEN, h, NT_HASH_LEN, 0, k);
	add_mac1(out, NT_INIT_LEN, victim_pub);
}

struct counts {
	unsigned long response, cookie, data, init, other;
};

static void count(struct counts *c, const uint8_t *b, ssize_t n)
{
	if (n == NT_RESP_LEN && b[0] == NT_MSG_RESPONSE)
		c->response++;
	else if (n == NT_COOKIE_MSG_LEN && b[0] == NT_MSG_COOKIE)
		c->cookie++;
	else if (n >= NT_DATA_MIN_LEN && b[0] == NT_MSG_DATA)
		c->data++;
	else if (n == NT_INIT_LEN && b[0] == NT_MSG_INITIATION)
		c->init++;
	else
		c->other++;
}

static int udp_socket(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

static int do_init(const char *to, unsigned port, const uint8_t victim_pub[NT_KEY_LEN], const char *key_path,
		   const char *static_point, const char *eph_point, unsigned n, unsigned interval_ms, unsigned wait_ms)
{
	uint8_t static_pub[NT_KEY_LEN], static_priv[NT_KEY_LEN], ss[NT_KEY_LEN] = { 0 };
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct counts c = { 0 };
	int fd = udp_socket();

	if (inet_pton(AF_INET, to, &dst.sin_addr) != 1)
		die("bad address");
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		die("connect");
	if (key_path) {
		read_key_file(static_priv, key_path);
		if (nt_dh_public(static_pub, static_priv) || nt_dh(ss, static_priv, victim_pub))
			die("the peer key gives a zero DH");
	} else {
		parse_b64(static_pub, static_point, "--static-point");
		/* DH(victim private, low-order point) is all zeros: ss stays zero */
	}
	for (unsigned i = 0; i < n; i++) {
		uint8_t msg[NT_INIT_LEN], eph_priv[NT_KEY_LEN], eph_pub[NT_KEY_LEN], es[NT_KEY_LEN] = { 0 };
		if (eph_point) {
			parse_b64(eph_pub, eph_point, "--ephemeral-point");
		} else {
			nt_dh_generate(eph_priv, eph_pub, &rng);
			if (nt_dh(es, eph_priv, victim_pub))
				die("zero DH with a fresh ephemeral");
		}
		build_initiation(msg, victim_pub, static_pub, eph_pub, es, ss);
		if (send(fd, msg, sizeof(msg), 0) < 0)
			die("send");
		uint64_t until = mono_ns() + (uint64_t)(i + 1 < n ? interval_ms : wait_ms) * 1000000ull;
		for (uint64_t t; (t = mono_ns()) < until;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			uint8_t buf[2048];
			if (poll(&p, 1, (int)((until - t) / 1000000) + 1) > 0) {
				ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (r >= 0)
					count(&c, buf, r);
			}
		}
	}
	printf("init sent=%u response=%lu cookie=%lu data=%lu other=%lu\n", n, c.response, c.cookie, c.data,
	       c.other + c.init);
	return 0;
}

static struct nt_handshake the_hs;
static uint8_t the_victim[NT_KEY_LEN];

static struct nt_handshake *lookup(void *ctx, const uint8_t key[NT_KEY_LEN])
{
	(void)ctx;
	return memcmp(key, the_victim, NT_KEY_LEN) ? NULL : &the_hs;
}

/* The response to the consumed initiation in hs, with a low-order ephemeral: ee and se
 * are then all zeros (protocol.md "Responder, message 2"). */
static void build_low_response(uint8_t out[NT_RESP_LEN], struct nt_handshake *hs, const uint8_t point[NT_KEY_LEN],
			       const uint8_t victim_pub[NT_KEY_LEN])
{
	uint8_t c[NT_HASH_LEN], h[NT_HASH_LEN], t[NT_HASH_LEN], k[NT_KEY_LEN], zero[NT_KEY_LEN] = { 0 };

	memcpy(c, hs->secrets.chaining_key, NT_HASH_LEN);
	memcpy(h, hs->secrets.hash, NT_HASH_LEN);
	memset(out, 0, NT_RESP_LEN);
	out[0] = NT_MSG_RESPONSE;
	nt_store_le32(out + NT_RESP_OFF_SENDER, random_index());
	nt_store_le32(out + NT_RESP_OFF_RECEIVER, hs->remote_index);
	nt_kdf(c, NULL, NULL, c, point, NT_KEY_LEN);
	memcpy(out + NT_RESP_OFF_EPHEMERAL, point, NT_KEY_LEN);
	mix_hash(h, point, NT_KEY_LEN);
	nt_kdf(c, NULL, NULL, c, zero, NT_KEY_LEN); /* ee */
	nt_kdf(c, NULL, NULL, c, zero, NT_KEY_LEN); /* se */
	nt_kdf(c, t, k, c, hs->preshared_key, NT_KEY_LEN);
	mix_hash(h, t, NT_HASH_LEN);
	nt_aead_seal(out + NT_RESP_OFF_EMPTY, NULL, 0, h, NT_HASH_LEN, 0, k);
	add_mac1(out, NT_RESP_LEN, victim_pub);
}

static int do_respond(unsigned port, const uint8_t victim_pub[NT_KEY_LEN], const char *key_path,
		      const char *eph_point, double seconds)
{
	struct sockaddr_in me_addr = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct nt_noise_static me;
	struct nt_cookie_maker maker;
	uint8_t priv[NT_KEY_LEN], point[NT_KEY_LEN];
	unsigned long answered = 0, errors = 0;
	struct counts c = { 0 };
	int fd = udp_socket();

	if (bind(fd, (struct sockaddr *)&me_addr, sizeof(me_addr)) < 0)
		die("bind");
	read_key_file(priv, key_path);
	nt_noise_static_init(&me, priv);
	nt_wipe(priv, sizeof(priv));
	memcpy(the_victim, victim_pub, NT_KEY_LEN);
	nt_handshake_init(&the_hs, &me, victim_pub, NULL);
	nt_cookie_maker_init(&maker, victim_pub);
	if (eph_point)
		parse_b64(point, eph_point, "--ephemeral-point");
	printf("respond listening port=%u\n", port);
	fflush(stdout);

	uint64_t until = mono_ns() + (uint64_t)(seconds * 1e9);
	for (uint64_t t; (t = mono_ns()) < until;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		struct sockaddr_in from;
		socklen_t fromlen = sizeof(from);
		uint8_t buf[2048], resp[NT_RESP_LEN];
		struct nt_handshake *hs;
		ssize_t r;

		if (poll(&p, 1, (int)((until - t) / 1000000) + 1) <= 0)
			continue;
		r = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (r < 0)
			continue;
		count(&c, buf, r);
		if (r != NT_INIT_LEN || buf[0] != NT_MSG_INITIATION)
			continue;
		if (nt_noise_consume_initiation(&hs, buf, (size_t)r, &me, lookup, NULL, mono_ns()) != NT_OK) {
			errors++;
			continue;
		}
		if (eph_point) {
			build_low_response(resp, hs, point, victim_pub);
		} else if (nt_noise_create_response(resp, hs, &me, random_index(), &rng) != NT_OK ||
			   nt_cookie_add_macs(&maker, resp, sizeof(resp), mono_ns())) {
			errors++;
			continue;
		}
		if (sendto(fd, resp, sizeof(resp), 0, (struct sockaddr *)&from, fromlen) == (ssize_t)sizeof(resp))
			answered++;
	}
	printf("respond initiations=%lu answered=%lu data=%lu other=%lu consume_errors=%lu\n", c.init, answered,
	       c.data, c.other + c.response + c.cookie, errors);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, 0, 't' },
		{ "port", required_argument, 0, 'p' },
		{ "victim-pub", required_argument, 0, 'v' },
		{ "key", required_argument, 0, 'k' },
		{ "static-point", required_argument, 0, 'S' },
		{ "ephemeral-point", required_argument, 0, 'E' },
		{ "count", required_argument, 0, 'n' },
		{ "interval-ms", required_argument, 0, 'i' },
		{ "wait-ms", required_argument, 0, 'w' },
		{ "seconds", required_argument, 0, 's' },
		{ 0, 0, 0, 0 },
	};
	const char *to = NULL, *victim_b64 = NULL, *key = NULL, *spoint = NULL, *epoint = NULL;
	unsigned port = 0, n = 1, interval = 30, wait = 1000;
	double seconds = 3;
	uint8_t victim_pub[NT_KEY_LEN];
	int opt;

	if (argc < 2)
		die("usage: see the top of tests/net/tools/lowpeer.c");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': to = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'v': victim_b64 = optarg; break;
		case 'k': key = optarg; break;
		case 'S': spoint = optarg; break;
		case 'E': epoint = optarg; break;
		case 'n': n = (unsigned)atoi(optarg); break;
		case 'i': interval = (unsigned)atoi(optarg); break;
		case 'w': wait = (unsigned)atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		default: die("usage: see the top of tests/net/tools/lowpeer.c");
		}
	}
	if (nt_crypto_init())
		die("crypto init failed");
	if (!victim_b64 || !port)
		die("--victim-pub and --port are required");
	parse_b64(victim_pub, victim_b64, "--victim-pub");
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(argv[1], "init")) {
		if (!to || (!key == !spoint))
			die("init needs --to and one of --key, --static-point");
		return do_init(to, port, victim_pub, key, spoint, epoint, n, interval, wait);
	}
	if (!strcmp(argv[1], "respond")) {
		if (!key)
			die("respond needs --key");
		return do_respond(port, victim_pub, key, epoint, seconds);
	}
	die("mode is init or respond");
	return 2;
}
