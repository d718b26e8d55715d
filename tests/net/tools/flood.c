/* flood: a handshake-initiation flood with valid mac1s, for tests/net/flood.sh.
 *
 *   flood --to IP --port N --victim-pub B64 [--peer-key FILE] [--seconds S] [--rate R]
 *         [--burst B] [--ports P] [--warmup S] [--probe S] [--probe-interval MS]
 *         [--stop-file PATH] [--ready-file PATH] [--kind init|garbage|data]
 *
 * --rate 0: as fast as one core sends (sendmmsg bursts back to back, rotating over the
 * sockets; replies are read, without waiting, every 64 bursts): the attacker's full rate.
 * Time it spends stopped (SIGSTOP) is left out of seconds= (and of the S seconds).
 * --kind garbage: random datagrams of random sizes (16-1400 bytes) and random first bytes;
 * --kind data: type-4 data messages (32-1400 bytes) with random, unknown receiver indices.
 * Both cost the victim no handshake work; they test that it drops them cheaply.
 *
 * Knowing only the victim's public key, anyone can compute mac1, so these initiations
 * pass the victim's first check and cost it a DH each unless it is under load (then it
 * owes only a cookie reply). The flood is mostly "garbage" initiations (random sender,
 * ephemeral, static and timestamp; mac1 right; mac2 zero) sent in bursts of B with
 * sendmmsg from P sockets (P source ports) at R datagrams per second for S seconds.
 * With --peer-key (the private key of a peer the victim has configured), after the
 * warm-up 1 in 16 datagrams is instead a genuine, fresh initiation from that peer: one the
 * victim would answer with a handshake response (type 2) if it were not under load.
 * The flood never uses the cookies it receives (mac2 stays zero).
 * Replies are read on every socket and counted by type.
 *
 * The flood ends after S seconds or as soon as --stop-file exists, whichever is first;
 * --ready-file is created once the sockets are open and the first burst is sent.
 *
 * After the flood, --probe S sends one garbage initiation every --probe-interval ms
 * (default 50) for S seconds, alone (so it cannot count as load by itself), and reports
 * when the last cookie reply came relative to the end of the flood: the victim's
 * under-load state should end about 1 s after the flood.
 *
 * Output (stdout, key=value):
 *   flood sent=N garbage=N genuine=N seconds=S rate=R ports=P burst=B send_errors=N
 *   replies cookie=N response=N other=N
 *   probe sent=N answered=N last_cookie_ms=T first_silent_ms=T answered_after_1500ms=N
 * Exit 0, or 2 on bad usage or setup failure. */
#define _GNU_SOURCE
#define TOOL_NAME "flood"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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

#define MAX_PORTS 1024
#define MAX_BURST 256
#define POOL 4096

struct counts {
	unsigned long cookie, response, other;
};

static int sockets[MAX_PORTS];
static int nsock;
static int ep;

/* Read everything waiting on the ready sockets; count by message type. When stamp is not
 * NULL, *stamp receives the time of the last cookie reply. */
static void drain(struct counts *c, int timeout_ms, uint64_t *stamp)
{
	static uint8_t bufs[64][256];
	static struct iovec iov[64];
	static struct mmsghdr mm[64];
	struct epoll_event evs[64];
	int n = epoll_wait(ep, evs, 64, timeout_ms);

	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		for (;;) {
			for (unsigned j = 0; j < 64; j++) {
				iov[j] = (struct iovec){ .iov_base = bufs[j], .iov_len = sizeof(bufs[j]) };
				mm[j] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[j], .msg_iovlen = 1 } };
			}
			int r = recvmmsg(fd, mm, 64, MSG_DONTWAIT, NULL);
			if (r <= 0)
				break;
			for (int j = 0; j < r; j++) {
				const uint8_t *buf = bufs[j];
				size_t len = mm[j].msg_len;
				if (len == NT_COOKIE_MSG_LEN && buf[0] == NT_MSG_COOKIE) {
					c->cookie++;
					if (stamp)
						*stamp = mono_ns();
				} else if (len == NT_RESP_LEN && buf[0] == NT_MSG_RESPONSE) {
					c->response++;
				} else {
					c->other++;
				}
			}
			if (r < 64)
				break;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, 0, 't' },       { "port", required_argument, 0, 'p' },
		{ "victim-pub", required_argument, 0, 'v' }, { "peer-key", required_argument, 0, 'k' },
		{ "seconds", required_argument, 0, 's' },  { "rate", required_argument, 0, 'r' },
		{ "burst", required_argument, 0, 'b' },    { "ports", required_argument, 0, 'n' },
		{ "warmup", required_argument, 0, 'w' },   { "probe", required_argument, 0, 'P' },
		{ "probe-interval", required_argument, 0, 'I' }, { "stop-file", required_argument, 0, 'x' },
		{ "ready-file", required_argument, 0, 'y' },      { "kind", required_argument, 0, 'K' },
		{ 0, 0, 0, 0 },
	};
	const char *kind = "init";
	const char *to = NULL, *victim_b64 = NULL, *peer_key_path = NULL, *stop_file = NULL, *ready_file = NULL;
	double seconds = 10, warmup = 0.3, probe = 0;
	unsigned rate = 10000, burst = 32, ports = 256, port = 0, probe_ms = 50;
	uint8_t victim_pub[NT_KEY_LEN], mac1_key[NT_HASH_LEN];
	static uint8_t pool[POOL][NT_INIT_LEN];
	static uint8_t junk[POOL][1400];
	static uint16_t junk_len[POOL];
	static uint8_t genuine_buf[MAX_BURST][NT_INIT_LEN];
	struct sockaddr_storage dst = { 0 };
	socklen_t dstlen;
	int family, opt;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': to = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'v': victim_b64 = optarg; break;
		case 'k': peer_key_path = optarg; break;
		case 's': seconds = atof(optarg); break;
		case 'r': rate = (unsigned)atoi(optarg); break;
		case 'b': burst = (unsigned)atoi(optarg); break;
		case 'n': ports = (unsigned)atoi(optarg); break;
		case 'w': warmup = atof(optarg); break;
		case 'P': probe = atof(optarg); break;
		case 'I': probe_ms = (unsigned)atoi(optarg); break;
		case 'x': stop_file = optarg; break;
		case 'y': ready_file = optarg; break;
		case 'K': kind = optarg; break;
		default: die("usage: see the top of tests/net/tools/flood.c");
		}
	}
	if (strcmp(kind, "init") && strcmp(kind, "garbage") && strcmp(kind, "data"))
		die("--kind: init, garbage or data");
	if (!to || !port || !victim_b64 || !burst || burst > MAX_BURST || !ports || ports > MAX_PORTS)
		die("usage: see the top of tests/net/tools/flood.c");
	if (nt_crypto_init())
		die("crypto init failed");
	if (nt_key_from_base64(victim_pub, victim_b64))
		die("bad victim public key");

	if (strchr(to, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&dst;
		family = AF_INET6;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, to, &s6->sin6_addr) != 1)
			die("bad address");
		dstlen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&dst;
		family = AF_INET;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, to, &s4->sin_addr) != 1)
			die("bad address");
		dstlen = sizeof(*s4);
	}

	/* mac1 key: HASH("mac1----" ‖ victim public) */
	nt_hash2(mac1_key, "mac1----", 8, victim_pub, NT_KEY_LEN);
	for (unsigned i = 0; i < POOL; i++) {
		uint8_t *m = pool[i];
		rng_fill(NULL, m, NT_INIT_LEN);
		m[0] = NT_MSG_INITIATION;
		m[1] = m[2] = m[3] = 0;
		nt_mac(m + NT_INIT_OFF_MAC1, mac1_key, NT_KEY_LEN, m, NT_INIT_OFF_MAC1);
		memset(m + NT_INIT_OFF_MAC2, 0, NT_MAC_LEN);
	}

	/* Garbage and unknown-index data messages. */
	for (unsigned i = 0; i < POOL; i++) {
		uint16_t r;
		rng_fill(NULL, junk[i], sizeof(junk[i]));
		rng_fill(NULL, &r, sizeof(r));
		if (!strcmp(kind, "data")) {
			junk_len[i] = (uint16_t)(32 + r % (1400 - 32 + 1));
			junk[i][0] = NT_MSG_DATA;
			junk[i][1] = junk[i][2] = junk[i][3] = 0;
		} else {
			junk_len[i] = (uint16_t)(16 + r % (1400 - 16 + 1));
		}
	}
	bool junk_mode = strcmp(kind, "init") != 0;

	/* A configured peer's genuine initiations: its static identity and a handshake. */
	struct nt_noise_static me;
	struct nt_handshake hs;
	struct nt_cookie_maker maker;
	bool have_peer = false;
	if (peer_key_path) {
		uint8_t priv[NT_KEY_LEN];
		read_key_file(priv, peer_key_path);
		nt_noise_static_init(&me, priv);
		nt_wipe(priv, sizeof(priv));
		nt_handshake_init(&hs, &me, victim_pub, NULL);
		nt_cookie_maker_init(&maker, victim_pub);
		have_peer = true;
	}

	ep = epoll_create1(0);
	if (ep < 0)
		die("epoll_create1");
	for (unsigned i = 0; i < ports; i++) {
		int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0), size = 1 << 20;
		struct epoll_event ev = { .events = EPOLLIN };
		if (fd < 0)
			die("socket");
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
		if (connect(fd, (struct sockaddr *)&dst, dstlen) < 0)
			die("connect");
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
		sockets[nsock++] = fd;
	}

	struct counts c = { 0 };
	unsigned long sent = 0, garbage = 0, genuine = 0, send_errors = 0;
	unsigned pool_pos = 0, sock_pos = 0;
	uint64_t start = mono_ns(), end = start + (uint64_t)(seconds * 1e9);
	uint64_t warm_end = start + (uint64_t)(warmup * 1e9);
	uint64_t period = rate ? (uint64_t)burst * 1000000000ull / rate : 0, next = start;
	static struct mmsghdr mm[MAX_BURST];
	static struct iovec iov[MAX_BURST];

	uint64_t last_burst = start, stopped = 0;

	for (unsigned long bursts = 0; mono_ns() < end + stopped; bursts++) {
		uint64_t now = mono_ns();

		/* A gap of over 50 ms at full rate: we were stopped (SIGSTOP, as flood-full.sh
		 * does for its paired baselines): that time is not flood time. */
		if (!rate && now - last_burst > 50000000ull)
			stopped += now - last_burst;
		last_burst = now;

		if (stop_file && bursts % 8 == 0 && access(stop_file, F_OK) == 0)
			break;
		if (ready_file && bursts == 1)
			close(open(ready_file, O_WRONLY | O_CREAT, 0600));
		unsigned k = 0;

		for (unsigned j = 0; j < burst; j++, k++) {
			uint8_t *m;
			size_t mlen = NT_INIT_LEN;
			if (junk_mode) {
				m = junk[pool_pos % POOL];
				mlen = junk_len[pool_pos++ % POOL];
				garbage++;
			} else if (have_peer && now >= warm_end && (sent + j) % 16 == 15) {
				m = genuine_buf[j];
				if (nt_noise_create_initiation(m, &hs, &me, random_index(), wall_ns(), &rng) != NT_OK ||
				    nt_cookie_add_macs(&maker, m, NT_INIT_LEN, now))
					die("cannot create a genuine initiation");
				/* The flood never holds a cookie: mac2 must be zero. */
				genuine++;
			} else {
				m = pool[pool_pos++ % POOL];
				garbage++;
			}
			iov[k] = (struct iovec){ .iov_base = m, .iov_len = mlen };
			mm[k] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[k], .msg_iovlen = 1 } };
		}
		int fd = sockets[sock_pos++ % (unsigned)nsock];
		unsigned done = 0;
		while (done < k) {
			int r = sendmmsg(fd, mm + done, k - done, 0);
			if (r < 0) {
				send_errors++;
				done++;
				continue;
			}
			done += (unsigned)r;
		}
		sent += k;
		if (!rate) { /* full rate: no pacing; read what came back now and then */
			if (bursts % 64 == 0)
				drain(&c, 0, NULL);
			continue;
		}
		next += period;
		/* Wait for the next burst, reading replies meanwhile. */
		for (;;) {
			uint64_t t = mono_ns();
			int ms = t >= next ? 0 : (int)((next - t) / 1000000);
			drain(&c, ms, NULL);
			if (mono_ns() >= next)
				break;
		}
		if (mono_ns() > next + 200000000ull)
			next = mono_ns(); /* fell far behind: do not try to catch up in one burst */
	}
	uint64_t flood_end = mono_ns();
	/* Replies still in flight. */
	for (int i = 0; i < 5; i++)
		drain(&c, 20, NULL);
	printf("flood sent=%lu garbage=%lu genuine=%lu seconds=%.2f rate=%u ports=%u burst=%u send_errors=%lu stopped=%.2f\n",
	       sent, garbage, genuine, (double)(flood_end - start - stopped) / 1e9, rate, ports, burst, send_errors,
	       (double)stopped / 1e9);
	printf("replies cookie=%lu response=%lu other=%lu\n", c.cookie, c.response, c.other);
	fflush(stdout);

	if (probe > 0) {
		struct counts pc = { 0 };
		unsigned long psent = 0, answered_late = 0;
		uint64_t pend = flood_end + (uint64_t)(probe * 1e9), last_cookie = 0, first_silent = 0;
		uint64_t pnext = mono_ns();

		while (mono_ns() < pend) {
			unsigned long before = pc.cookie;
			uint64_t sent_at = mono_ns();
			uint64_t stamp = 0;

			if (send(sockets[psent % (unsigned)nsock], pool[pool_pos++ % POOL], NT_INIT_LEN, 0) < 0)
				send_errors++;
			psent++;
			pnext += (uint64_t)probe_ms * 1000000ull;
			for (;;) {
				uint64_t t = mono_ns();
				int ms = t >= pnext ? 0 : (int)((pnext - t) / 1000000);
				drain(&pc, ms, &stamp);
				if (stamp)
					last_cookie = stamp;
				if (mono_ns() >= pnext)
					break;
			}
			if (pc.cookie == before) {
				if (!first_silent)
					first_silent = sent_at;
			} else if (sent_at >= flood_end + 1500000000ull) {
				answered_late++;
			}
		}
		printf("probe sent=%lu answered=%lu last_cookie_ms=%lld first_silent_ms=%lld answered_after_1500ms=%lu other=%lu\n",
		       psent, pc.cookie, last_cookie ? (long long)(last_cookie - flood_end) / 1000000 : -1,
		       first_silent ? (long long)(first_silent - flood_end) / 1000000 : -1, answered_late,
		       pc.response + pc.other);
	}
	return 0;
}
