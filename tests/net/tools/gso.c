/* gso: UDP GSO super-datagrams (UDP_SEGMENT) at a noisetun daemon, for
 * tests/net/gso-attack.sh. A socket with UDP_GRO takes a locally sent GSO packet as it is,
 * so the receiver sees up to the sender kernel's UDP_MAX_SEGMENTS (128 on recent kernels)
 * messages in one datagram.
 *
 *   gso data --to IP --port N --victim-pub B64 --key FILE --inner-src A --inner-dst B
 *            [--rounds R] [--sends S] [--segs K] [--keepalives P] [--gap-ms MS]
 *       As a configured peer (--key: its private key file): a genuine handshake, then R
 *       rounds of: P keepalives as plain datagrams (a receiver sizing its next batch by
 *       the mean datagram size then asks for many), and one sendmmsg of S GSO sends of K
 *       64-byte transport messages each, every one a valid IPv4/UDP packet from A to B
 *       (A inside the peer's allowed IPs, so it is queued for the victim's TUN).
 *       Defaults: R 40, S 64, K 128, P 64, MS 5.
 *       Prints: data handshake=ok|failed rounds=N segments=N gso_sends=N send_errors=N
 *
 *   gso init --to IP --port N --victim-pub B64 [--rate R] [--segs K] [--seconds T]
 *            [--stop-file PATH] [--ready-file PATH]
 *       Handshake initiations with a valid mac1 (random otherwise; mac2 zero) at R per
 *       second (default 10000) for T seconds (default 5), K (default 64) per GSO send.
 *       Replies are counted by type.
 *       Prints: init sent=N gso_sends=N send_errors=N seconds=S cookie=N response=N other=N
 *
 * Exit 0 (counts tell the result), or 2 on bad usage or setup failure. */
#define _GNU_SOURCE
#define TOOL_NAME "gso"
#include <arpa/inet.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <unistd.h>

#include "toolkit.h"

#define MAX_SENDS 64
#define MAX_SEGS 128
#define DATA_PLAIN 32 /* IPv4 20 + UDP 8 + 4 bytes: seals to a 64-byte message */
#define SEG_BUF (NT_DATA_MIN_LEN + DATA_PLAIN + NT_DATA_PAD)

struct replies {
	unsigned long cookie, response, other;
};

static void drain(int fd, struct replies *c)
{
	uint8_t buf[2048];
	ssize_t r;

	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) >= 0) {
		if (r == NT_COOKIE_MSG_LEN && buf[0] == NT_MSG_COOKIE)
			c->cookie++;
		else if (r == NT_RESP_LEN && buf[0] == NT_MSG_RESPONSE)
			c->response++;
		else
			c->other++;
	}
}

static int open_socket(const char *to, unsigned port)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), size = 16 << 20;

	if (fd < 0)
		die("socket");
	if (inet_pton(AF_INET, to, &dst.sin_addr) != 1)
		die("bad --to address (IPv4)");
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
		(void)!setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		(void)!setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0)
		die("connect");
	return fd;
}

/* Send S super-datagrams of segs segments of seg bytes each (bufs[i], contiguous) in one
 * sendmmsg; returns how many sends failed. */
static unsigned gso_send(int fd, uint8_t *bufs[], unsigned sends, unsigned segs, uint16_t seg)
{
	static struct mmsghdr mm[MAX_SENDS];
	static struct iovec iov[MAX_SENDS];
	static union {
		char buf[CMSG_SPACE(sizeof(uint16_t))];
		struct cmsghdr align;
	} ctrl[MAX_SENDS];
	unsigned done = 0, errors = 0;

	for (unsigned i = 0; i < sends; i++) {
		struct cmsghdr *c;

		iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = (size_t)segs * seg };
		mm[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1, .msg_control = ctrl[i].buf,
						       .msg_controllen = sizeof(ctrl[i].buf) } };
		c = CMSG_FIRSTHDR(&mm[i].msg_hdr);
		c->cmsg_level = IPPROTO_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
	}
	while (done < sends) {
		int r = sendmmsg(fd, mm + done, sends - done, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (!errors++)
				fprintf(stderr, "gso: sendmmsg: %s\n", strerror(errno));
			done++;
			continue;
		}
		done += (unsigned)r;
	}
	return errors;
}

static uint16_t ip_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int do_data(int fd, const uint8_t victim_pub[NT_KEY_LEN], const char *key_path, const char *inner_src,
		   const char *inner_dst, unsigned rounds, unsigned sends, unsigned segs, unsigned keepalives,
		   unsigned gap_ms)
{
	static struct tk_session s;
	static uint8_t space[MAX_SENDS][MAX_SEGS * 64];
	uint8_t priv[NT_KEY_LEN], pkt[DATA_PLAIN] = { 0 }, *bufs[MAX_SENDS];
	unsigned long segments = 0, gso_sends = 0, errors = 0;
	struct replies c = { 0 };
	struct nt_keypair *kp;
	struct in_addr a, b;

	if (inet_pton(AF_INET, inner_src, &a) != 1 || inet_pton(AF_INET, inner_dst, &b) != 1)
		die("bad --inner-src/--inner-dst");
	read_key_file(priv, key_path);
	kp = tk_handshake(&s, fd, priv, victim_pub, 5);
	nt_wipe(priv, sizeof(priv));
	if (!kp) {
		printf("data handshake=failed rounds=0 segments=0 gso_sends=0 send_errors=0\n");
		return 0;
	}
	/* IPv4/UDP, 32 bytes, to the discard port */
	pkt[0] = 0x45;
	pkt[3] = DATA_PLAIN;
	pkt[8] = 64;
	pkt[9] = 17;
	memcpy(pkt + 12, &a, 4);
	memcpy(pkt + 16, &b, 4);
	pkt[20] = 0x27, pkt[21] = 0x0f; /* source port 9999 */
	pkt[23] = 9;
	pkt[25] = DATA_PLAIN - 20;
	for (unsigned i = 0; i < sends; i++)
		bufs[i] = space[i];
	for (unsigned r = 0; r < rounds; r++) {
		for (unsigned k = 0; k < keepalives; k++) {
			uint8_t ka[NT_DATA_MIN_LEN];
			size_t len;
			if (nt_keypair_seal(kp, ka, &len, NULL, 0, 1420, mono_ns()) != NT_OK)
				die("cannot seal a keepalive");
			if (send(fd, ka, len, 0) < 0)
				errors++;
		}
		for (unsigned i = 0; i < sends; i++) {
			for (unsigned k = 0; k < segs; k++) {
				uint8_t seg[SEG_BUF];
				size_t len;
				uint16_t id = (uint16_t)(r * sends * segs + i * segs + k);
				pkt[4] = (uint8_t)(id >> 8);
				pkt[5] = (uint8_t)id;
				pkt[10] = pkt[11] = 0;
				{
					uint16_t cs = ip_csum(pkt, 20);
					pkt[10] = (uint8_t)(cs >> 8);
					pkt[11] = (uint8_t)cs;
				}
				if (nt_keypair_seal(kp, seg, &len, pkt, sizeof(pkt), 1420, mono_ns()) != NT_OK || len != 64)
					die("cannot seal a 64-byte message");
				memcpy(space[i] + (size_t)k * 64, seg, 64);
			}
		}
		errors += gso_send(fd, bufs, sends, segs, 64);
		gso_sends += sends;
		segments += (unsigned long)sends * segs;
		drain(fd, &c);
		usleep(gap_ms * 1000);
	}
	drain(fd, &c);
	printf("data handshake=ok rounds=%u segments=%lu gso_sends=%lu send_errors=%lu replies_data=%lu\n", rounds,
	       segments, gso_sends, errors, c.other);
	return 0;
}

static int do_init(int fd, const uint8_t victim_pub[NT_KEY_LEN], unsigned rate, unsigned segs, double seconds,
		   const char *stop_file, const char *ready_file)
{
	static uint8_t space[MAX_SEGS * NT_INIT_LEN];
	uint8_t *bufs[1] = { space };
	unsigned long sent = 0, gso_sends = 0, errors = 0;
	struct replies c = { 0 };
	uint64_t t0 = mono_ns(), end = t0 + (uint64_t)(seconds * 1e9), now;
	bool ready = false;

	while ((now = mono_ns()) < end) {
		/* as many as the rate owes by now, a GSO send at a time */
		uint64_t owed = (uint64_t)((double)(now - t0) * rate / 1e9);
		while (sent + segs <= owed) {
			for (unsigned k = 0; k < segs; k++) {
				uint8_t *m = space + (size_t)k * NT_INIT_LEN;
				rng_fill(NULL, m, NT_INIT_LEN);
				m[0] = NT_MSG_INITIATION;
				m[1] = m[2] = m[3] = 0;
				add_mac1(m, NT_INIT_LEN, victim_pub);
			}
			errors += gso_send(fd, bufs, 1, segs, NT_INIT_LEN);
			gso_sends++;
			sent += segs;
		}
		if (!ready && ready_file) {
			FILE *f = fopen(ready_file, "w");
			if (f)
				fclose(f);
			ready = true;
		}
		drain(fd, &c);
		if (stop_file && access(stop_file, F_OK) == 0)
			break;
		usleep(1000);
	}
	usleep(200000);
	drain(fd, &c);
	printf("init sent=%lu gso_sends=%lu send_errors=%lu seconds=%.1f cookie=%lu response=%lu other=%lu\n", sent,
	       gso_sends, errors, (double)(mono_ns() - t0) / 1e9, c.cookie, c.response, c.other);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, 0, 't' },         { "port", required_argument, 0, 'p' },
		{ "victim-pub", required_argument, 0, 'v' }, { "key", required_argument, 0, 'k' },
		{ "inner-src", required_argument, 0, 'a' },  { "inner-dst", required_argument, 0, 'b' },
		{ "rounds", required_argument, 0, 'R' },     { "sends", required_argument, 0, 'S' },
		{ "segs", required_argument, 0, 'K' },       { "keepalives", required_argument, 0, 'P' },
		{ "gap-ms", required_argument, 0, 'g' },     { "rate", required_argument, 0, 'r' },
		{ "seconds", required_argument, 0, 's' },    { "stop-file", required_argument, 0, 'x' },
		{ "ready-file", required_argument, 0, 'y' }, { 0, 0, 0, 0 },
	};
	const char *to = NULL, *victim_b64 = NULL, *key = NULL, *isrc = NULL, *idst = NULL, *stop = NULL, *ready = NULL;
	unsigned port = 0, rounds = 40, sends = 64, segs = 0, keepalives = 64, gap = 5, rate = 10000;
	double seconds = 5;
	uint8_t victim_pub[NT_KEY_LEN];
	int opt, fd;

	if (argc < 2)
		die("usage: see the top of tests/net/tools/gso.c");
	optind = 2;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 't': to = optarg; break;
		case 'p': port = (unsigned)atoi(optarg); break;
		case 'v': victim_b64 = optarg; break;
		case 'k': key = optarg; break;
		case 'a': isrc = optarg; break;
		case 'b': idst = optarg; break;
		case 'R': rounds = (unsigned)atoi(optarg); break;
		case 'S': sends = (unsigned)atoi(optarg); break;
		case 'K': segs = (unsigned)atoi(optarg); break;
		case 'P': keepalives = (unsigned)atoi(optarg); break;
		case 'g': gap = (unsigned)atoi(optarg); break;
		case 'r': rate = (unsigned)atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		case 'x': stop = optarg; break;
		case 'y': ready = optarg; break;
		default: die("usage: see the top of tests/net/tools/gso.c");
		}
	}
	if (!to || !port || !victim_b64)
		die("--to, --port and --victim-pub are required");
	if (nt_crypto_init())
		die("crypto init failed");
	if (nt_key_from_base64(victim_pub, victim_b64))
		die("bad --victim-pub");
	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open_socket(to, port);
	if (!strcmp(argv[1], "data")) {
		segs = segs ? segs : MAX_SEGS;
		if (!key || !isrc || !idst || !sends || sends > MAX_SENDS || segs < 2 || segs > MAX_SEGS)
			die("data needs --key, --inner-src, --inner-dst; 1 <= sends <= 64, 2 <= segs <= 128");
		return do_data(fd, victim_pub, key, isrc, idst, rounds, sends, segs, keepalives, gap);
	}
	if (!strcmp(argv[1], "init")) {
		segs = segs ? segs : 64;
		if (!rate || segs < 2 || segs > MAX_SEGS || segs * NT_INIT_LEN > 65000)
			die("init needs --rate > 0 and 2 <= segs <= 128 (segs * 148 <= 65000)");
		return do_init(fd, victim_pub, rate, segs, seconds, stop, ready);
	}
	die("mode is data or init");
	return 2;
}
